#!/usr/bin/python3
"""A mail server restored from a backup, against the private Dovecot: its
Maildir is put back as it was before two messages arrived, UIDVALIDITY
and all, so the server numbers the next mail with UIDs mailwatch has
already announced. That mail is announced, whether it came before
mailwatch was back or after (it used to be taken as handled until the
UIDs passed the old ones, which could be never), and the mail of the
backup is not.

The restore shows when mailwatch first looks at the mailbox after it,
while fewer messages than were lost have arrived (see docs/design.md):
here one, of two lost. With NOTIFY (INBOX selected, a folder followed by
its STATUS pushes) and without (INBOX in IDLE, the folder checked with
STATUS every poll_interval)."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
from test_many_mailboxes import append_each, wait_watched  # noqa: E402
from test_restart import restart  # noqa: E402
from test_watch import finish, need_binaries  # noqa: E402

ACCOUNT = "a"
MAILBOXES = ["INBOX", "Work"]
POLL = 10       # poll_interval without NOTIFY (the smallest allowed)
PUSH = 5        # delivery -> hook (Dovecot: < 1 s)
# Dovecot back -> new mail announced: the back-off, then (without NOTIFY)
# the next check of Work, up to POLL s later, 5 s late at most.
RECONNECT = 25 + POLL


def announced(mw):
    """(mailbox, uid, subject) of every hook run, in order."""
    return [(r["MAILWATCH_MAILBOX"], int(r["MAILWATCH_UID"]),
             r["MAILWATCH_SUBJECT"]) for r in mw.hook_records()]


def copy_maildir(src, dst):
    """cp -a: the mail user's ownership and modes stay."""
    subprocess.run(["rm", "-rf", dst], check=True, timeout=30)
    subprocess.run(["cp", "-a", src, dst], check=True, timeout=30)


def watch(dc, notify, what, mailboxes):
    """mailwatch on mailboxes, once MAILBOXES are watched; without NOTIFY
    two connections: INBOX in IDLE, the others checked every
    poll_interval. None (mailwatch and Dovecot stopped) when they are
    not."""
    acct = dc.account("alice", mailboxes=mailboxes)
    if not notify:
        acct.update(max_connections=2, poll_interval=POLL)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account " + ACCOUNT: acct,
    })
    if wait_watched(mw, what + ": start", MAILBOXES):
        return mw
    finish(mw)
    dc.stop()
    return None


def restore_case(notify):
    what = "NOTIFY" if notify else "no NOTIFY"
    dc = mwtest.Dovecot(conn_limit=None, notify=notify)
    dc.create_mailbox("alice", "Work")
    dc.create_mailbox("alice", "Spare")
    append_each(dc, MAILBOXES, "old")
    maildir = dc.maildir("alice")
    backup = os.path.join(dc.dir, "backup")
    before = {n: dc.status("alice", n) for n in MAILBOXES}
    dc.stop_server()
    copy_maildir(maildir, backup)
    dc.start()

    mw = watch(dc, notify, what, MAILBOXES + ["Spare"])
    if not mw:
        return
    lost = append_each(dc, MAILBOXES, "lost") + \
        append_each(dc, MAILBOXES, "lost too")
    mw.wait_hooks(len(lost), PUSH + (0 if notify else POLL + 5))
    ok(sorted((m, u) for m, u, _ in announced(mw)) == sorted(lost),
       "%s: before the restore, 4 messages announced" % what,
       "announced %s, delivered %s" % (announced(mw), lost))

    log0 = len(mw.log())
    dc.stop_server()
    copy_maildir(backup, maildir)
    dc.start()
    # Likely before mailwatch is back (its back-off), maybe not.
    early = append_each(dc, MAILBOXES, "right after the restore")
    after = {n: dc.status("alice", n) for n in MAILBOXES}
    premise = all(after[n]["UIDVALIDITY"] == before[n]["UIDVALIDITY"] and
                  after[n]["UIDNEXT"] == before[n]["UIDNEXT"] + 1
                  for n in MAILBOXES)
    ok(premise, "%s: the restored server has the old UIDVALIDITY, and "
       "UIDNEXT as before plus the mail since" % what,
       "before %s, after %s" % (before, after))
    # Back on the restored server, and the restore seen, before the next
    # mail: it shows at a look that finds no more messages than were
    # lost (UIDNEXT not past the old mark). Mail after this look would
    # hide it (see docs/design.md).
    for box in MAILBOXES:
        ok(mw.wait_log(r"%s/%s: .*restored from a backup" % (ACCOUNT, box),
                       RECONNECT, since=log0),
           "%s: the log says %s was restored" % (what, box),
           mw.log_tail(20))
    new = early + append_each(dc, MAILBOXES, "after the restore")
    ok(all(uid in (u for m, u in lost if m == box) for box, uid in new),
       "%s: the new mail got UIDs announced before the restore" % what,
       "new %s, before %s" % (new, lost))
    mw.wait_hooks(len(lost) + len(new), RECONNECT)
    mw.settle(1)
    got = announced(mw)[len(lost):]
    want = sorted([(box, uid, "right after the restore " + box)
                   for box, uid in early] +
                  [(box, uid, "after the restore " + box)
                   for box, uid in new[len(early):]])
    ok(sorted(got) == want,
       "%s: mail after the restore announced, once each" % what,
       "want %s\ngot %s\nlog:\n%s" % (want, got, mw.log_tail(30)))
    finish(mw)
    dc.stop()


def modseq_case(notify):
    """Restored while mailwatch was stopped, and as much mail came after
    the restore as it lost: UIDNEXT is where it was, so only the
    HIGHESTMODSEQ kept in the state file tells (the lost mail had been
    read, and flag changes take mod-sequences of their own)."""
    what = "HIGHESTMODSEQ, " + ("NOTIFY" if notify else "no NOTIFY")
    dc = mwtest.Dovecot(conn_limit=None, notify=notify)
    dc.create_mailbox("alice", "Work")
    append_each(dc, MAILBOXES, "old")
    maildir = dc.maildir("alice")
    backup = os.path.join(dc.dir, "backup")
    dc.stop_server()
    copy_maildir(maildir, backup)
    dc.start()

    mw = watch(dc, notify, what, MAILBOXES)
    if not mw:
        return
    lost = append_each(dc, MAILBOXES, "lost")
    mw.wait_hooks(len(lost), PUSH + (0 if notify else POLL + 5))
    ok(sorted((m, u) for m, u, _ in announced(mw)) == sorted(lost),
       "%s: before the restore, 2 messages announced" % what,
       "announced %s, delivered %s" % (announced(mw), lost))
    log0 = len(mw.log())
    for box, uid in lost:
        dc.store("alice", box, [uid], ["\\Seen"])
    # The change reached mailwatch: a FETCH in the selected INBOX, a
    # STATUS of Work (pushed, or the next check).
    r = dc.doveadm("-f", "flow", "mailbox", "status", "-u", "alice",
                   "highestmodseq", "Work")
    top = int(re.search(r"highestmodseq=(\d+)", r.stdout)[1])
    mwtest.wait_until(lambda: re.search(
        r"%s/Work: STATUS .*HIGHESTMODSEQ %d" % (ACCOUNT, top),
        mw.log()[log0:]), PUSH + (0 if notify else POLL + 5))
    mw.settle(1)
    ok(mw.stop() == 0, "%s: stopped" % what)

    dc.stop_server()
    copy_maildir(backup, maildir)
    dc.start()
    new = append_each(dc, MAILBOXES, "after the restore")
    ok(sorted(new) == sorted(lost),
       "%s: the new mail got the UIDs of the lost mail" % what,
       "new %s, lost %s" % (new, lost))
    log0 = len(mw.log())
    n = len(announced(mw))
    restart(mw)
    mw.wait_hooks(n + len(new), PUSH + (0 if notify else POLL + 5))
    mw.settle(1)
    got = announced(mw)[n:]
    want = sorted((box, uid, "after the restore " + box)
                  for box, uid in new)
    ok(sorted(got) == want,
       "%s: mail after the restore announced, once each" % what,
       "want %s\ngot %s\nlog:\n%s" % (want, got, mw.log_tail(30)))
    for box in MAILBOXES:
        ok(re.search(r"%s/%s: HIGHESTMODSEQ \d+ is below \d+.*restored "
                     r"from a backup" % (ACCOUNT, box), mw.log()[log0:]),
           "%s: the log says %s was restored" % (what, box),
           mw.log_tail(20))
    finish(mw)
    dc.stop()


def test_restore_with_notify():
    need_binaries()
    restore_case(True)


def test_restore_without_notify():
    need_binaries()
    restore_case(False)


def test_modseq_with_notify():
    need_binaries()
    modseq_case(True)


def test_modseq_without_notify():
    need_binaries()
    modseq_case(False)


if __name__ == "__main__":
    mwtest.main(test_restore_with_notify, test_restore_without_notify,
                test_modseq_with_notify, test_modseq_without_notify)
