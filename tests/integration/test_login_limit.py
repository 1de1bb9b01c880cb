#!/usr/bin/python3
"""Dovecot at its stock connection limit (10 per user and IP) refuses an
eleventh login with NO [LIMIT]. mailwatch must take that for what it is,
a refusal for now: log it, retry with back-off, and watch as soon as a
connection is free; never "login failed ... not retrying", which is for
wrong credentials only."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402


def main():
    dc = mwtest.Dovecot(conn_limit=None)
    held = [dc.client("alice") for _ in range(10)]
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice"),
    })
    line = mw.wait_log(r"a/INBOX: server refused the login for now: "
                       r"NO \[LIMIT\]", 15)
    ok(line, "the [LIMIT] refusal is logged as one (%r)" % line)
    ok(mw.wait_log(r"a/INBOX: reconnecting in", 5),
       "and retried with back-off")
    ok(not mw.wait_log(r"not retrying", 0),
       "not taken for a wrong password", mw.log_tail(10))

    for c in held[:2]:
        c.logout()
    ok(mw.wait_log(r"watching \(IDLE\)", 30),
       "watching once connections are free", mw.log_tail(10))
    dc.deliver("alice", mwtest.make_message("after the limit"))
    recs = mw.wait_hooks(1, 10)
    ok(len(recs) == 1, "new mail announced")
    for c in held[2:]:
        c.logout()
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


mwtest.main(main)
