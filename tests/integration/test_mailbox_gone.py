#!/usr/bin/python3
"""A watched mailbox deleted or renamed in another client: a clear log
line, no fast retry loop (EXAMINE is retried at the slow mailbox pace), and
the account's other mailboxes keep working; the status line says the
mailbox cannot be opened. Dovecot ends the session of a deleted mailbox at
once; a renamed one stays selected under its new name (the server still
pushes its mail), so mailwatch finds out at the next connection, made here
by kicking the user. With NOTIFY, the server's MailboxName event tells of
a deletion at once."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402


def start(notify):
    """Dovecot with NOTIFY offered or not, and mailwatch on INBOX,
    Lists/dev and Lists/old."""
    dc = mwtest.Dovecot(notify=notify)
    dc.create_mailbox("alice", "Lists/dev")
    dc.create_mailbox("alice", "Lists/old")
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice",
                                mailboxes=["INBOX", "Lists/dev",
                                           "Lists/old"]),
    }, sd_notify=True)
    return dc, mw


def test_idle_each():
    dc, mw = start(notify=False)  # one IDLE connection per mailbox
    ok(wait_until(lambda: mw.log().count("watching (IDLE)") >= 3, 15),
       "three mailboxes watched")

    for what, change in (
            ("deleted", lambda: dc.delete_mailbox("alice", "Lists/dev")),
            ("renamed", lambda: (dc.rename_mailbox("alice", "Lists/old",
                                                   "Lists/older"),
                                 dc.kick("alice")))):
        name = "Lists/dev" if what == "deleted" else "Lists/old"
        mark = mw.mark()
        change()
        line = mw.wait_log(r"a/%s: cannot open mailbox %s \(misspelled, "
                           r"deleted or renamed\?\): EXAMINE: NO .*" % (
                               re.escape(name), re.escape(name)),
                           15, since=mark)
        ok(line, "%s: the log says the mailbox is gone (%r)" % (what, line))
        ok(mw.wait_log(r"a/%s: trying the mailbox again in 300\.0 s" %
                       re.escape(name), 5, since=mark),
           "%s: retried at the slow mailbox pace (minutes)" % what)
        mwtest.quiet(2)
        tries = len(re.findall(r"a/%s: C: m\d+ EXAMINE" % re.escape(name),
                               mw.log()[mark:]))
        ok(tries == 1, "%s: one EXAMINE, no retry loop (%d)" % (what, tries))
        # systemctl status: said as it is, not as a lost connection.
        status = mw.wait_sd_notify(r"a/%s: cannot open the mailbox; trying "
                                   r"again at (\d\d):(\d\d):(\d\d)" %
                                   re.escape(name), 5)
        ok(status, "%s: STATUS= says the mailbox cannot be opened, and "
           "when it is tried again (%r)"
           % (what, (mw.sd_notify_messages() or [""])[-1]))
        if status:
            # 300 s ahead, local time, modulo midnight.
            now = time.localtime()
            ahead = ((int(status.group(1)) * 3600 +
                      int(status.group(2)) * 60 + int(status.group(3))) -
                     (now.tm_hour * 3600 + now.tm_min * 60 +
                      now.tm_sec)) % 86400
            ok(250 <= ahead <= 310, "%s: the next try's time of day is "
               "about 5 minutes ahead (%d s)" % (what, ahead))

    uid = dc.append("alice", "INBOX", mwtest.make_message("still here"))
    recs = mw.wait_hooks(1, 10)
    ok([r["MAILWATCH_UID"] for r in recs] == [str(uid)],
       "the other mailbox still announces new mail")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_notify():
    """With NOTIFY, mailboxes named in full (no pattern): one deleted is
    said at once, from the server's MailboxName event, where trial AD's
    was watched on in silence, and the others are still followed; one
    renamed at the next connection (Dovecot 2.3 tells no rename of them);
    one created again is watched again and its mail announced."""
    dc, mw = start(notify=True)
    ok(mw.wait_log(r"a: watching 3 mailboxes with IDLE and NOTIFY", 15),
       "NOTIFY: three mailboxes watched", mw.log_tail(10))

    def gone(what, name):
        ok(mw.wait_log(r"a/%s: cannot open mailbox %s \(misspelled, "
                       r"deleted or renamed\?\)" % (
                           re.escape(name), re.escape(name)),
                       10, since=mark),
           "NOTIFY, %s: the log says the mailbox is gone" % what,
           mw.log_tail(10))
        ok(mw.wait_sd_notify(r"a/%s: cannot open the mailbox" %
                             re.escape(name), 5),
           "NOTIFY, %s: and so does STATUS=" % what)

    mark = mw.mark()
    dc.delete_mailbox("alice", "Lists/dev")
    gone("deleted", "Lists/dev")
    uid = dc.append("alice", "Lists/old", mwtest.make_message("still"))
    recs = mw.wait_hooks(1, 10)
    ok([(r["MAILWATCH_MAILBOX"], r["MAILWATCH_UID"]) for r in recs] ==
       [("Lists/old", str(uid))],
       "NOTIFY: the others still followed", mw.log_tail(10))
    mark = mw.mark()
    dc.rename_mailbox("alice", "Lists/old", "Lists/older")
    dc.kick("alice")
    gone("renamed", "Lists/old")
    mark = mw.mark()
    dc.create_mailbox("alice", "Lists/dev")
    ok(mw.wait_log(r"a/Lists/dev: watching", 10, since=mark),
       "NOTIFY: created again, watched again", mw.log_tail(10))
    uid = dc.append("alice", "Lists/dev", mwtest.make_message("back"))
    recs = mw.wait_hooks(2, 10)
    ok([(r["MAILWATCH_MAILBOX"], r["MAILWATCH_UID"]) for r in recs[1:]] ==
       [("Lists/dev", str(uid))], "NOTIFY: its new mail announced",
       mw.log_tail(10))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_notify_deleted_after_mail():
    """With NOTIFY, a mailbox deleted a second after its mail was pushed
    is said gone at once too (trial AF: the push's STATUS, from before
    the NOTIFY SET the deletion called for, was taken for the mailbox
    being there still, and it was watched on in silence for up to 25
    minutes). Its unseen count leaves the total."""
    dc = mwtest.Dovecot()
    dc.create_mailbox("alice", "Gone")
    bus = mwtest.SessionBus()
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice", mailboxes=["INBOX", "Gone"]),
    }, bus=bus, sd_notify=True)
    ok(mw.wait_log(r"a: watching 2 mailboxes with IDLE and NOTIFY", 15),
       "deleted after mail: both watched", mw.log_tail(10))
    dc.append_many("alice", "Gone", [mwtest.make_message("unread %d" % i)
                                     for i in range(2)])
    ok(len(mw.wait_hooks(2, 10)) == 2, "deleted after mail: announced",
       mw.log_tail(10))

    def total():
        r = subprocess.run([mw.bin, "status", "--format", "{unseen}"],
                           env=bus.env(), capture_output=True, text=True,
                           timeout=mwtest._t(10))
        return r.stdout.strip()
    ok(wait_until(lambda: total() == "2", 5), "deleted after mail: 2 unseen",
       total())
    time.sleep(1)  # well within the 5 s before NOTIFY is set again
    mark = mw.mark()
    dc.delete_mailbox("alice", "Gone")
    ok(mw.wait_log(r"a/Gone: cannot open mailbox Gone", 10, since=mark),
       "deleted after mail: said gone at once", mw.log_tail(10))
    ok(wait_until(lambda: total() == "0", 5),
       "deleted after mail: its count leaves the total", total())
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


mwtest.main(test_idle_each, test_notify, test_notify_deleted_after_mail)
