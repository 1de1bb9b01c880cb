#!/usr/bin/python3
"""Hostile server, faults an outside review found that used to cost more
than one session: a server that completes the UID FETCH but never the IDLE
before it (the session used to abort the process), and an ALERT that used
to overrun the log's buffer. Each against tests/lib/fakeimap.py on
127.0.0.1 (tls = none)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
from fakeimap import Hostile  # noqa: E402


def test_idle_never_completed():
    what = "UID FETCH answered, IDLE never completed"
    h = Hostile()
    srv = h.srv
    def swallow_done(conn, tag, args):
        # The IDLE before each fetch stays open: no tagged OK for it.
        conn.idle_tag = None
    srv.handlers["DONE"] = swallow_done
    uids = []
    for i in range(5):
        mark = h.mw.mark()
        uids.append(srv.add_message(subject="round %d" % i))
        h.log_line(r"completed UID FETCH before the IDLE", what, since=mark)
        h.reconnected("%s, round %d" % (what, i), n=i + 2)
    ok(h.mw.running(), "%s: mailwatch survived five rounds" % what)
    h.announced(uids, what)
    h.finish(what)


def test_alert_overrun():
    what = "ALERT with 400 bidi overrides"
    for k in (2, 5, 8):
        h = Hostile(start=False)
        text = "a" * k + "\u202e" * 400
        h.srv.inject("greeting", ("* OK [ALERT] %s\r\n" % text)
                     .encode("utf-8"))
        h.mw.start()
        line = h.wait_log_line(r"server alert: a+(\\xe2\\x80\\xae)+$")
        ok(line is not None, "%s (%d ASCII): logged and escaped" %
           (what, k), h.mw.log_tail(5))
        h.idle_ok(msg="%s (%d ASCII): watching after it" % (what, k))
        h.finish("%s (%d ASCII)" % (what, k))


mwtest.main(test_idle_never_completed, test_alert_overrun)
