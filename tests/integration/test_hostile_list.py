#!/usr/bin/python3
"""Hostile server, LIST (mailboxes = *): names that are not modified
UTF-7, \\NonExistent and \\Noselect entries, special uses, a NIL
delimiter and a LIST refused with BAD. mailwatch ignores what it cannot
use, logs a refused LIST and lists again at the next check, and watches
what it can. Against tests/lib/fakeimap.py on 127.0.0.1 (tls = none),
which offers LIST-EXTENDED and LIST-STATUS but not NOTIFY."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import Hostile  # noqa: E402

POLL = 10  # poll_interval: when a refused LIST is tried again
CAPS = fakeimap.DEFAULT_CAPS + " LIST-EXTENDED LIST-STATUS SPECIAL-USE"
HOSTILE = [
    '* LIST () "/" "bad&-name&"',          # not modified UTF-7
    '* LIST (\\NonExistent) "/" Gone',
    '* LIST (\\Noselect \\HasChildren) "/" Lists',
    '* LIST (\\HasNoChildren \\Trash) "/" Trash',
    '* LIST (\\All) "/" "[Gmail]/All Mail"',
    '* LIST () NIL INBOX',
    '* LIST () "/" {5}\r\nin\x00ox',         # a NUL in a literal
]


def test_hostile_list():
    what = "hostile LIST"
    listed = []

    def on_list(conn, tag, args):
        listed.append(args)
        if len(listed) == 1:
            conn.sendline("%s BAD not today" % tag)
            return
        for line in HOSTILE:
            conn.sendline(line)
        conn.sendline("%s OK LIST completed" % tag)

    srv = fakeimap.FakeImap(password=Hostile.PASSWORD, caps=CAPS)
    srv.handlers["LIST"] = on_list
    h = Hostile(srv=srv, wait_idle=False,
                account={"mailboxes": "*", "poll_interval": POLL})
    h.log_line(r"LIST refused: BAD not today", what)
    # Listed again at the next check (up to POLL s, 5 s late at most).
    c = srv.wait_idle(POLL + 10)
    ok(c is not None, "%s: INBOX watched after the second LIST" % what,
       h.mw.log_tail(20))
    ok(listed and listed[0].startswith('"" ("*") RETURN (SPECIAL-USE'),
       "%s: LIST-EXTENDED with RETURN (SPECIAL-USE)" % what, repr(listed))
    h.log_line(r'LIST of ".*", a name neither in modified UTF-7 nor UTF-8',
               what)
    log = h.mw.log()
    for name in ("Gone", "Lists", "Trash", "[Gmail]/All Mail", "bad", "in"):
        ok("fake/%s: watching" % name not in log and
           "fake/%s: checked" % name not in log,
           "%s: %s not watched" % (what, name))
    uid = srv.add_message(subject="still works")
    h.announced([uid], what)
    h.finish(what)


def test_list_fails_between():
    """A mailbox created between two LISTs, one that fails between them:
    its mail came after the last LIST that was applied, so it is new. The
    time new mailboxes are taken to have appeared after moved with the
    failed LIST too, and such mail was taken as old (a trial's Dovecot,
    its list index broken, failed LISTs while folders were created)."""
    what = "LIST failing between two"
    listed = []
    names = ["INBOX"]

    def on_list(conn, tag, args):
        listed.append(args)
        if len(listed) == 2:
            conn.sendline("%s NO [SERVERBUG] list index broken" % tag)
            return
        for name in names:
            conn.sendline('* LIST (\\HasNoChildren) "/" %s' % name)
        conn.sendline("%s OK LIST completed" % tag)

    srv = fakeimap.FakeImap(password=Hostile.PASSWORD,
                            caps=fakeimap.DEFAULT_CAPS + " LIST-EXTENDED")
    srv.handlers["LIST"] = on_list
    h = Hostile(srv=srv, wait_idle=False,
                account={"mailboxes": "*", "poll_interval": POLL})
    ok(srv.wait_idle(15) is not None, "%s: INBOX watched" % what)
    srv.add_box("New")
    uid = srv.add_message(subject="in a new folder", mailbox="New")
    # The second LIST (the next sweep) fails; New is listed from the third.
    ok(mwtest.wait_until(lambda: len(listed) >= 2, POLL + 10),
       "%s: the second LIST was sent" % what)
    names.append("New")
    h.log_line(r"fake/New: a new mailbox: watching it", what,
               timeout=POLL + 10)
    recs = h.mw.wait_hooks(1, 15)
    ok([(r["MAILWATCH_MAILBOX"], int(r["MAILWATCH_UID"])) for r in recs] ==
       [("New", uid)],
       "%s: its mail, which came after the last LIST applied, announced" %
       what, h.mw.log_tail(15))
    h.finish(what)


if __name__ == "__main__":
    mwtest.main(test_hostile_list, test_list_fails_between)
