#!/usr/bin/python3
"""Hostile server, session-level faults: UIDVALIDITY changing between
connections (and announced mid-session), BYE while idle with an [ALERT]
and reconnects with back-off, a server without IDLE (NOOP polling). Each against tests/lib/fakeimap.py on 127.0.0.1
(tls = none)."""

import os
import sys
import time
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import Hostile  # noqa: E402


def test_uidvalidity_between_connections():
    what = "UIDVALIDITY changed between connections"
    h = Hostile()
    srv = h.srv
    a = srv.add_message(subject="before the change")
    h.mw.wait_hooks(1, 10)
    # The mailbox is recreated: new UIDVALIDITY, every message renumbered
    # above the old UIDs, two more messages; then the connection drops.
    srv.set_uidvalidity(2000, renumber_from=101)
    srv.add_message(subject="recreated 1", notify=False)
    srv.add_message(subject="recreated 2", notify=False)
    mark = h.mw.mark()
    srv.conn(1).close()
    h.log_line(r"UIDVALIDITY changed from 1000 to 2000", what, since=mark)
    h.reconnected(what)
    # The new message comes after whatever the reconnect announced: the
    # mailbox announced again would show by then.
    b = srv.add_message(subject="new after the change")
    h.announced([a, b], what)
    recs = h.mw.hook_records()
    ok(recs and recs[-1].get("MAILWATCH_UIDVALIDITY") == "2000",
       "%s: new mail carries the new UIDVALIDITY" % what,
       repr(recs[-1] if recs else None))
    h.memory_ok(what)
    h.finish(what)


def test_uidvalidity_mid_session():
    what = "UIDVALIDITY changed in the session"
    h = Hostile()
    srv = h.srv
    srv.set_uidvalidity(3000, renumber_from=201)
    srv.add_message(subject="recreated", notify=False)
    mark = h.mw.mark()
    srv.conn(1).sendline("* OK [UIDVALIDITY 3000] mailbox recreated")
    h.log_line(r"UIDVALIDITY changed from 1000 to 3000", what, since=mark)
    h.reconnected(what)
    # As above: the new message is the sentinel.
    b = srv.add_message(subject="new after the change")
    h.announced([b], what)
    h.memory_ok(what)
    h.finish(what)


def test_bye_while_idle():
    what = "BYE while idle"
    h = Hostile()
    srv = h.srv
    conn = srv.conn(1)
    # An [ALERT] on its own first: logged, no reconnect.
    conn.sendline("* OK [ALERT] Quota at 95%, please tidy up")
    h.log_line(r"Quota at 95%, please tidy up", what + " (OK [ALERT])")

    def refuse(c):
        if c.no in (2, 3):  # the next two attempts are refused too
            c.sendline("* BYE [ALERT] Too busy, try later")
            time.sleep(0.1)
            c.close()
            return True
        return False
    srv.on_connect = refuse
    mark = h.mw.mark()
    t_bye = time.monotonic()
    conn.sendline("* BYE [ALERT] Maintenance \x1b[5mnow\x1b[0m, back soon")
    time.sleep(0.1)
    conn.close()
    h.log_line(r"Maintenance", what + " ([ALERT] text)", since=mark)
    h.log_line(r"server closed|BYE", what, since=mark)
    h.reconnected(what, n=4, timeout=20)
    t = [t_bye] + [srv.conn(i).t_open for i in (2, 3, 4)]
    gaps = [round(t[i + 1] - t[i], 2) for i in range(3)]
    comment("  reconnect gaps: %s s" % gaps)
    ok(gaps[0] >= 0.5 and gaps[1] >= 1.2 and gaps[2] >= 2.5 and
       gaps[0] < gaps[1] < gaps[2] and gaps[2] < 4 + mwtest._t(4),
       "%s: reconnects back off (about 1, 2, 4 s)" % what,
       "gaps: %s" % gaps)
    ok(len(h.log_lines(r"Too busy, try later", mark)) >= 2,
       "%s: the refusals' [ALERT] logged" % what)
    uid = srv.add_message(subject="after maintenance")
    h.announced([uid], what)
    bad = [ln for ln in h.mw.log()[mark:].split("\n")
           if not fakeimap.TRACE_RX.search(ln) and
           any(unicodedata.category(c) == "Cc" for c in ln)]
    ok(not bad, "%s: server text logged without control characters" % what,
       "\n".join(repr(ln) for ln in bad[:5]))
    h.memory_ok(what)
    h.finish(what)


def test_no_idle_polls():
    what = "server without IDLE"
    h = Hostile(caps="IMAP4rev1 AUTH=PLAIN SASL-IR LITERAL+",
                general={"poll_interval": 10}, wait_idle=False)
    srv = h.srv
    h.log_line(r"no IDLE: polling every 10 s", what)
    t = time.monotonic()
    a = srv.add_message(subject="polled 1")
    b = srv.add_message(subject="polled 2")
    ok(h.announced([a, b], what, timeout=25), "%s: still announced" % what)
    comment("  announced %.1f s after arrival" % (time.monotonic() - t))
    ok(srv.commands_of(r"^m\d+ NOOP$"), "%s: NOOP polling" % what)
    ok(not srv.commands_of(r"^m\d+ IDLE$"), "%s: never sent IDLE" % what)
    ok(srv.connection_count() == 1, "%s: one connection" % what)
    h.memory_ok(what)
    h.finish(what)


mwtest.main(test_uidvalidity_between_connections,
            test_uidvalidity_mid_session, test_bye_while_idle,
            test_no_idle_polls)
