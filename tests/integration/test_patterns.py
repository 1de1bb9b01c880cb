#!/usr/bin/python3
"""mailboxes = * and patterns (issue 11), against the private Dovecot,
with NOTIFY and without (NOTIFY hidden, mailboxes checked every
poll_interval):

- "*" watches every mailbox the server lists but the special-use Trash,
  Junk, Sent and Drafts (named so in Dovecot's namespace) and those of
  ignore_mailboxes; new mail in a watched folder runs the hook once, mail
  in Trash never;
- a folder created while mailwatch runs (by another IMAP client) is
  watched and its mail announced, and so is mail delivered into a folder
  right after its creation, before mailwatch could know of it;
- a folder deleted while mailwatch runs stops being watched, with a line
  that says so and no warning;
- a folder renamed, while mailwatch runs or is stopped, announces none of
  its mail again, and mail in a folder created while it was stopped is
  announced once it starts;
- a pattern of one level ("Lists/%") takes only its level, and no
  INBOX;
- plain names beyond the budget are checked with one LIST-STATUS (RFC
  5819) rather than a STATUS each, and one the server does not have is
  said once."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402
from test_watch import finish, need_binaries  # noqa: E402

ACCOUNT = "a"
WATCHED = mwtest.WATCHED
FOLDERS = ["Lists/dev", "Lists/announce", "Lists/dev/daily", "Work",
           "Caf\u00e9", "Archive/2020", "Trash", "Junk", "Sent", "Drafts"]
# What "*" less ignore_mailboxes = Archive* takes.
TAKEN = ["INBOX", "Lists/announce", "Lists/dev", "Lists/dev/daily", "Work",
         "Caf\u00e9"]
LEFT_OUT = ["Archive/2020", "Trash", "Junk", "Sent", "Drafts"]
POLL = 10       # poll_interval: the smallest allowed
# Deadlines (wait_* scale them by MWTEST_TIMEOUT_SCALE):
WATCH_ALL = 20  # start -> every mailbox watched
PUSH = 5        # delivery -> hook for a pushed mailbox (Dovecot: ~0.5 s)
# A checked mailbox, or a change of the list without NOTIFY: the next
# sweep may come up to POLL s later, up to 5 s late (timer coalescing),
# then a check or a fetch.
CHECKED = POLL + 5 + 3


def watched(mw, names, since=0):
    """The names of names that mailwatch logged as watched."""
    log = mw.log()[since:]
    return [n for n in names
            if re.search(r"%s: %s" % (re.escape("%s/%s" % (ACCOUNT, n)),
                                      WATCHED), log)]


def wait_watched(mw, what, names, timeout=WATCH_ALL, since=0):
    wait_until(lambda: len(watched(mw, names, since)) == len(names) or
               not mw.running(), timeout)
    got = watched(mw, names, since)
    missing = [n for n in names if n not in got]
    return ok(not missing, "%s: %s watched" % (what, ", ".join(names)),
              "not watched: %s\nlog:\n%s" % (missing, mw.log_tail(20)))


def keys(recs):
    return sorted((r["MAILWATCH_MAILBOX"], int(r["MAILWATCH_UID"]))
                  for r in recs)


def deliver(dc, name, tag):
    """Delivers one message to name with dovecot-lda (no IMAP
    connection); returns (name, uid)."""
    dc.deliver("alice", mwtest.make_message("%s %s" % (tag, name)),
               mailbox=name)
    r = dc.doveadm("-f", "flow", "mailbox", "status", "-u", "alice",
                   "uidnext", name)
    return (name, int(re.search(r"uidnext=(\d+)", r.stdout)[1]) - 1)


def start(dc, mailboxes="*", **account):
    acct = dc.account("alice", mailboxes=mailboxes)
    acct.update(account)
    return mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account " + ACCOUNT: acct,
    }, sd_notify=True)


def warnings(mw, name, since=0):
    """Log lines about name that are warnings or errors."""
    return [line for line in mw.log()[since:].splitlines()
            if "%s/%s:" % (ACCOUNT, name) in line and
            re.search(r"(?i)warn|error|cannot|refused|fail", line)]


def star(notify):
    mode = "NOTIFY" if notify else "no NOTIFY"
    need_binaries()
    dc = mwtest.Dovecot(conn_limit=None, notify=notify)
    dc.create_mailboxes("alice", FOLDERS)
    opts = {"ignore_mailboxes": "Archive*"}
    if not notify:
        opts.update(max_connections=3, poll_interval=POLL)
    mw = start(dc, **opts)
    # With NOTIFY, new mail is pushed; without, the folders beyond the
    # budget are checked every POLL s.
    late = PUSH if notify else CHECKED
    wait_watched(mw, mode, TAKEN)
    ok(not watched(mw, LEFT_OUT), "%s: %s not watched" % (
        mode, ", ".join(LEFT_OUT)), "watched: %s" % watched(mw, LEFT_OUT))
    n = dc.connections("alice")
    ok(n <= (2 if notify else 3), "%s: %d connections" % (mode, n))

    # Dovecot 2.3's NOTIFY pushes the STATUS of Caf\u00e9 with its name in
    # UTF-8, not modified UTF-7.
    want = [deliver(dc, "Work", "work"), deliver(dc, "Lists/dev/daily",
                                                 "daily"),
            deliver(dc, "Caf\u00e9", "cafe")]
    deliver(dc, "Trash", "trash")
    recs = mw.wait_hooks(3, late)
    ok(keys(recs) == sorted(want), "%s: mail in three folders announced"
       % mode, "got %s" % keys(recs))
    ok("neither in modified UTF-7" not in mw.log(),
       "%s: no mailbox name refused" % mode)

    # Created by another client while running: watched, its mail
    # announced.
    mark = len(mw.log())
    dc.create_mailboxes("alice", ["New"])
    if wait_watched(mw, mode + ", created", ["New"], late + 5, mark):
        want.append(deliver(dc, "New", "new"))
        mw.wait_hooks(len(want), late)
    # Created and given mail at once, before mailwatch could know.
    dc.create_mailboxes("alice", ["Fresh"])
    want.append(deliver(dc, "Fresh", "fresh"))
    recs = mw.wait_hooks(len(want), late + 5)
    ok(keys(recs) == sorted(want), "%s: mail in created folders "
       "announced, that delivered at once too" % mode,
       "want %s\ngot  %s\n%s" % (sorted(want), keys(recs),
                                 mw.log_tail(20)))

    # Deleted: no longer watched, no warning.
    mark = len(mw.log())
    dc.delete_mailbox("alice", "Work")
    line = mw.wait_log(r"a/Work: no longer listed by the server: not "
                       r"watched", late + 5, since=mark)
    ok(line, "%s: a deleted folder is let go (%r)" % (mode, line))
    want.append(deliver(dc, "Lists/dev", "after"))
    mw.wait_hooks(len(want), late)
    mw.settle(late if notify else POLL + 2)
    ok(not warnings(mw, "Work", mark), "%s: no warning about the deleted "
       "folder" % mode, "\n".join(warnings(mw, "Work", mark)))
    got = keys(mw.hook_records())
    ok(got == sorted(want), "%s: each message announced once, nothing "
       "else (Trash neither)" % mode,
       "want %s\ngot  %s" % (sorted(want), got))

    # Deleted and created again before the next LIST: without NOTIFY, its
    # own connection found it missing, and the LIST that still lists it
    # makes it try again then, not 5 minutes later (a trial).
    idle = [n for n in TAKEN if n != "INBOX" and re.search(
        re.escape("%s/%s: " % (ACCOUNT, n)) + r"watching \(IDLE\)",
        mw.log())]
    box = idle[0] if idle else "Lists/announce"
    mark = len(mw.log())
    dc.delete_mailbox("alice", box)
    line = mw.wait_log(re.escape("%s/%s: " % (ACCOUNT, box)) +
                       r"(cannot open mailbox|no longer listed)",
                       late + 5, since=mark)
    ok(line, "%s: %s deleted (%r)" % (mode, box, line))

    def recreated(tag, what):
        """box created (again): mail delivered to it is announced."""
        dc.create_mailboxes("alice", [box])
        want.append(deliver(dc, box, tag))
        recs = mw.wait_hooks(len(want), late + 5)
        ok(keys(recs) == sorted(want), "%s: %s deleted and created again%s: "
           "its mail announced" % (mode, box, what),
           "want %s\ngot  %s\n%s" % (sorted(want), keys(recs),
                                     mw.log_tail(20)))

    recreated("recreated", ", at the next LIST")

    # Again, at once: Dovecot answers the IDLE session of the old one
    # with "NO Internal error" for good, and the next LIST-STATUS shows
    # the new UIDVALIDITY (trial L). The new mailbox is caught up with by
    # INTERNALDATE, in whole seconds: the delivery comes mostly in the
    # second the old one was last seen, which counts as new (trial N:
    # it counted as old, and the message was never announced).
    dc.delete_mailbox("alice", box)
    recreated("at once", " at once")
    finish(mw)
    dc.stop()


def test_star_notify():
    """mailboxes = * with NOTIFY."""
    star(True)


def test_star_without_notify():
    """mailboxes = * without NOTIFY: the list is read again at each
    sweep, with LIST-STATUS."""
    star(False)


def renames_and_restarts(notify):
    mode = "NOTIFY" if notify else "no NOTIFY"
    need_binaries()
    dc = mwtest.Dovecot(conn_limit=None, notify=notify)
    dc.create_mailboxes("alice", ["Work", "Old"])
    opts = {} if notify else {"max_connections": 2, "poll_interval": POLL}
    late = PUSH if notify else CHECKED
    mw = start(dc, **opts)
    wait_watched(mw, mode, ["INBOX", "Work", "Old"])
    want = [deliver(dc, "Work", "work")]
    mw.wait_hooks(1, late)

    # Renamed while watched: its mail is not announced again under the
    # new name, and new mail there is.
    mark = len(mw.log())
    dc.rename_mailbox("alice", "Work", "Work2")
    want.append(deliver(dc, "Work2", "renamed"))
    mw.wait_hooks(len(want), late + 5)
    line = mw.wait_log(r"a/Work2: renamed from Work", late, since=mark)
    ok(line, "%s: the rename is recognised (%r)" % (mode, line),
       mw.log_tail(20))
    mw.settle(2)
    got = keys(mw.hook_records())
    ok(got == sorted(want), "%s: a renamed folder's mail is not announced "
       "again" % mode, "want %s\ngot  %s" % (sorted(want), got))

    # While mailwatch is stopped: a folder is created and given mail,
    # one is renamed, mail comes to another. After the start, the new
    # mail is announced, in the new folder too, and nothing again.
    finish(mw)
    dc.create_mailboxes("alice", ["Down"])
    want.append(deliver(dc, "Down", "while stopped"))
    dc.rename_mailbox("alice", "Work2", "Work3")
    want.append(deliver(dc, "Old", "while stopped"))
    mark = len(mw.log())
    mw.start()
    mwtest._register(mw)
    line = mw.wait_log(r"a: \d+ mailboxes to watch.*", WATCH_ALL, since=mark)
    ok(line and line.group(0).endswith("to watch"),
       "%s: after the start, the first list is not called new (%r)" %
       (mode, line and line.group(0)))
    mw.wait_hooks(len(want), late + WATCH_ALL)
    mw.settle(2)
    got = keys(mw.hook_records())
    ok(got == sorted(want), "%s: after a restart, mail that came while "
       "stopped is announced once, in a folder created meanwhile too, "
       "and a folder renamed meanwhile announces nothing again" % mode,
       "want %s\ngot  %s\n%s" % (sorted(want), got, mw.log_tail(30)))
    finish(mw)
    dc.stop()


def test_renames_and_restarts_notify():
    """Renames and a restart, with NOTIFY."""
    renames_and_restarts(True)


def test_renames_and_restarts_without_notify():
    """Renames and a restart, without NOTIFY."""
    renames_and_restarts(False)


def renamed_twice(notify):
    """A folder created while mailwatch runs, renamed while still empty,
    given mail, renamed again, given mail: each message announced once
    (a trial's first rename was taken for a new folder, its old name's
    line stayed beside the new one's with the same UIDVALIDITY, the
    second rename could not be told, and the catch-up of a new folder
    announced the first message again)."""
    mode = "NOTIFY" if notify else "no NOTIFY"
    need_binaries()
    dc = mwtest.Dovecot(conn_limit=None, notify=notify)
    opts = {} if notify else {"max_connections": 5, "poll_interval": POLL}
    late = PUSH if notify else CHECKED
    mw = start(dc, **opts)
    wait_watched(mw, mode, ["INBOX"])
    steps = [("Dup1", None), ("Dup2", None), ("Dup2", "m1"),
             ("Dup3", None), ("Dup3", "m2")]
    want = []
    for i, (name, tag) in enumerate(steps):
        mark = len(mw.log())
        if tag:
            want.append(deliver(dc, name, tag))
            mw.wait_hooks(len(want), late)
            continue
        if i == 0:
            dc.create_mailboxes("alice", [name])
        else:
            dc.rename_mailbox("alice", steps[i - 1][0], name)
            # As the user's mail client does after a rename. Dovecot
            # 2.3.19 needs it: else the LIST on mailwatch's connection
            # may go on listing the old name, with no MailboxName push.
            with dc.imap("alice") as m:
                m.list('""', "*")
        wait_watched(mw, "%s: %s" % (mode, name), [name],
                     timeout=late + 5, since=mark)
    mw.settle(2)
    got = keys(mw.hook_records())
    ok(got == sorted(want), "%s: renamed twice, each message announced once"
       % mode, "want %s\ngot  %s\n%s" % (sorted(want), got,
                                         mw.log_tail(30)))
    finish(mw)
    dc.stop()


def test_renamed_twice_notify():
    renamed_twice(True)


def test_renamed_twice_without_notify():
    renamed_twice(False)


def test_one_level():
    """mailboxes = Lists/%: the one level under Lists, no INBOX; and a
    misspelled pattern beside it is warned of, as is an ignore_mailboxes
    name in the wrong case (names are matched in their case)."""
    need_binaries()
    dc = mwtest.Dovecot(conn_limit=None)
    dc.create_mailboxes("alice", FOLDERS)
    mw = start(dc, mailboxes="Lists/%, Lsts/*", ignore_mailboxes="lists/dev")
    wait_watched(mw, "Lists/%", ["Lists/announce", "Lists/dev"])
    ok(mw.wait_log(r"a: mailboxes: no mailbox on the server matches "
                   r"Lsts/\*", 5),
       "a pattern that matches nothing (a typo) is warned of")
    ok(not re.search(r"matches Lists/%", mw.log()),
       "one that matches is not")
    ok(mw.wait_log(r"a: ignore_mailboxes: no mailbox that mailboxes takes "
                   r"matches lists/dev", 5),
       "an ignore_mailboxes that matches nothing is warned of")
    ok(not watched(mw, ["INBOX", "Lists/dev/daily", "Work"]),
       "Lists/%: nothing else watched",
       "watched: %s" % watched(mw, ["INBOX", "Lists/dev/daily", "Work"]))
    deliver(dc, "INBOX", "inbox")
    want = [deliver(dc, "Lists/announce", "announce")]
    recs = mw.wait_hooks(1, PUSH)
    mw.settle(2)
    ok(keys(mw.hook_records()) == want, "Lists/%: only its mail announced",
       "got %s" % keys(recs))
    finish(mw)


def test_ampersand():
    """A folder with '&' in its name, with NOTIFY: Dovecot 2.3 names it as
    it is ("Friends & Co", not modified UTF-7 "Friends &- Co") in the
    STATUS its NOTIFY SET returns, and pushes nothing of it later. Its
    mail is announced (it gets a connection of its own), and at the
    default log level nothing says a name was refused: that warning came
    at every NOTIFY SET, naming no mailbox."""
    need_binaries()
    dc = mwtest.Dovecot(conn_limit=None)
    dc.create_mailboxes("alice", ["Friends & Co", "Work"])
    acct = dc.account("alice", mailboxes="*")
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account " + ACCOUNT: acct,
    }, args=())
    # At the default level the mailboxes NOTIFY follows are counted, not
    # named.
    wait_watched(mw, "'&'", ["INBOX", "Friends & Co"])
    ok(mw.wait_log(r"a: watching 2 mailboxes with IDLE and NOTIFY", 5),
       "'&': INBOX and Work with NOTIFY", mw.log_tail(10))
    want = [deliver(dc, "Friends & Co", "friends"),
            deliver(dc, "Work", "work")]
    recs = mw.wait_hooks(2, PUSH)
    mw.settle(1)
    ok(keys(mw.hook_records()) == sorted(want),
       "'&': mail in Friends & Co and Work announced once",
       "got %s" % keys(recs))
    ok("modified UTF-7" not in mw.log(),
       "'&': no warning of a name refused", mw.log_tail(10))
    finish(mw)


def test_list_status():
    """Plain names, no NOTIFY, max_connections = 2: INBOX pushed, the
    rest checked with one LIST ... RETURN (STATUS ...) each time."""
    need_binaries()
    dc = mwtest.Dovecot(conn_limit=None, notify=False)
    dc.create_mailboxes("alice", FOLDERS)
    mw = start(dc, mailboxes=["INBOX", "Work", "Lists/dev", "Sent",
                              "Missing"],
               max_connections=2, poll_interval=POLL)
    # Sent, named in full, is watched whatever its special use.
    wait_watched(mw, "LIST-STATUS", ["INBOX", "Work", "Lists/dev", "Sent"])
    line = mw.wait_log(r'a: C: m\d+ LIST "" \(Work Lists/dev Sent '
                       r'Missing\) RETURN \(SPECIAL-USE STATUS \(MESSAGES '
                       r'UIDNEXT UIDVALIDITY UNSEEN\)\)', 5)
    ok(line, "LIST-STATUS: one LIST checks the four", mw.log_tail(20))
    ok(not re.search(r"a: C: m\d+ STATUS ", mw.log()),
       "LIST-STATUS: no STATUS command")
    want = [deliver(dc, "Work", "work")]
    recs = mw.wait_hooks(1, CHECKED)
    ok(keys(recs) == want, "LIST-STATUS: mail in a checked folder "
       "announced", "got %s" % keys(recs))
    mw.settle(POLL + 2)
    said = re.findall(r"a/Missing: cannot watch this mailbox: the server "
                      r"does not list it", mw.log())
    ok(len(said) == 1, "LIST-STATUS: a mailbox the server does not have "
       "is said once (%d)" % len(said))
    status = mw.wait_sd_notify(r"STATUS=4/5 mailboxes watched; a: 1 mailbox with "
                               r"IDLE, "
                               r"4 checked every \d+ s; a/Missing: cannot "
                               r"open the mailbox$", 5)
    ok(status, "LIST-STATUS: the status line names the mailbox it cannot "
       "open", (mw.sd_notify_messages() or [""])[-1])
    ok("a/Sent: cannot watch" not in mw.log(),
       "LIST-STATUS: a special-use mailbox named in full is there")
    finish(mw)


def test_deleted_between_sweeps():
    """Without NOTIFY, with poll_interval = 3600: a folder a pattern took,
    deleted while its own connection watches it, is let go at once (its
    connection found it missing, and a LIST then did not list it), not at
    the next sweep an hour later; the others go on."""
    need_binaries()
    dc = mwtest.Dovecot(conn_limit=None, notify=False)
    dc.create_mailboxes("alice", ["Lists/dev", "Lists/announce"])
    # At the default log level: what the user reads.
    acct = dc.account("alice", mailboxes=["INBOX", "Lists/*"],
                      poll_interval=3600)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account " + ACCOUNT: acct,
    }, args=(), sd_notify=True)
    wait_watched(mw, "deleted", ["INBOX", "Lists/dev", "Lists/announce"])
    mark = len(mw.log())
    dc.delete_mailbox("alice", "Lists/dev")
    line = mw.wait_log(r"a/Lists/dev: no longer listed by the server: not "
                       r"watched", 10, since=mark)
    ok(line, "deleted: let go at once", mw.log_tail(10))
    ok(not re.search(r"a/Lists/dev: trying the mailbox again",
                     mw.log()[mark:]),
       "deleted: no retry in 5 minutes told", mw.log_tail(10))
    ok(mw.wait_sd_notify(r"STATUS=2/2 mailboxes watched", 5),
       "deleted: the status line counts the two left",
       (mw.sd_notify_messages() or [""])[-1])
    want = [deliver(dc, "Lists/announce", "after")]
    recs = mw.wait_hooks(1, PUSH)
    ok(keys(recs) == want, "deleted: the others' mail announced",
       "got %s" % keys(recs))
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_star_notify, test_star_without_notify,
                test_renames_and_restarts_notify,
                test_renames_and_restarts_without_notify,
                test_renamed_twice_notify, test_renamed_twice_without_notify,
                test_one_level,
                test_ampersand, test_list_status,
                test_deleted_between_sweeps)
