#!/usr/bin/python3
"""Hostile server, login: a wrong password (NO [AUTHENTICATIONFAILED]:
logged, never retried), and the login variants a server may force (SASL
PLAIN without an initial response, LOGIN with a quoted string, LOGIN with
a synchronising literal). Against tests/lib/fakeimap.py on 127.0.0.1
(tls = none)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
from fakeimap import Hostile  # noqa: E402


def test_wrong_password():
    what = "wrong password"
    h = Hostile(account={"password": "not-the-pw"}, wait_idle=False,
                sd_notify=True)
    srv = h.srv
    h.log_line(r"login as alice failed: NO", what)
    h.log_line(r"not retrying", what + " (gives up)")
    ok(h.mw.wait_sd_notify(r"fake/INBOX: stopped: the login was refused "
                           r"\(reload to retry\)$", 5),
       "%s: the status line says why it stopped" % what,
       (h.mw.sd_notify_messages() or [""])[-1])
    # A retry would come after a back-off of about 1 s.
    mwtest.quiet(5)
    ok(len(srv.logins) == 1 and not srv.logins[0][3],
       "%s: exactly one login attempt" % what,
       "logins: %d" % len(srv.logins))
    ok(srv.connection_count() == 1, "%s: no reconnect" % what,
       "connections: %d" % srv.connection_count())
    ok("not-the-pw" not in h.mw.log(),
       "%s: the rejected password is not logged" % what)
    h.memory_ok(what)
    h.finish(what)


def login_variant(what, caps, password):
    Hostile.PASSWORD, saved = password, Hostile.PASSWORD
    try:
        h = Hostile(caps=caps)
    finally:
        Hostile.PASSWORD = saved
    h.PASSWORD = password
    ok(h.srv.logins and h.srv.logins[-1][1:] == ("alice", password, True),
       "%s: logged in" % what, repr(h.srv.logins))
    uid = h.srv.add_message(subject=what)
    h.announced([uid], what)
    h.finish(what)


def test_login_variants():
    login_variant("SASL PLAIN without initial response",
                  "IMAP4rev1 IDLE AUTH=PLAIN", "pw-no-ir")
    login_variant("LOGIN with a quoted password",
                  "IMAP4rev1 IDLE LITERAL+", 'pw "quoted" \\ and space')
    login_variant("LOGIN with a sync literal password",
                  "IMAP4rev1 IDLE", "pw-\u00e9\u00e8-8bit")


mwtest.main(test_wrong_password, test_login_variants)
