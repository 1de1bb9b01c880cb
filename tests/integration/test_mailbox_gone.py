#!/usr/bin/python3
"""A watched mailbox deleted or renamed in another client: a clear log
line, no fast retry loop (EXAMINE is retried at the slow mailbox pace), and
the account's other mailboxes keep working; the status line says the
mailbox cannot be opened. Dovecot ends the session of a deleted mailbox at
once; a renamed one stays selected under its new name (the server still
pushes its mail), so mailwatch finds out at the next connection, made here
by kicking the user."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402


def main():
    dc = mwtest.Dovecot(notify=False)  # one IDLE connection per mailbox
    dc.create_mailbox("alice", "Lists/dev")
    dc.create_mailbox("alice", "Lists/old")
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice",
                                mailboxes=["INBOX", "Lists/dev",
                                           "Lists/old"]),
    }, sd_notify=True)
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


mwtest.main(main)
