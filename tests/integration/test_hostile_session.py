#!/usr/bin/python3
"""Hostile server, session-level faults: UIDVALIDITY changing between
connections (and announced mid-session, at every session of an empty
mailbox, while mailwatch was stopped, with the catch-up cut short), BYE
while idle with an [ALERT]
and reconnects with back-off, a server without IDLE (NOOP polling). Each against tests/lib/fakeimap.py on 127.0.0.1
(tls = none)."""

import os
import re
import signal
import sys
import time
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import Hostile  # noqa: E402


def records_of(h, uids):
    return [r for r in h.mw.hook_records() if int(r["MAILWATCH_UID"]) in uids]


def test_uidvalidity_between_connections():
    """The mailbox is recreated while the connection is down: a new
    UIDVALIDITY, its messages renumbered, and two more whose INTERNALDATE
    is after mailwatch last saw it. Those two are caught up with, carrying
    the new UIDVALIDITY; nothing that was there before is announced
    again."""
    what = "UIDVALIDITY changed between connections"
    h = Hostile()
    srv = h.srv
    a = srv.add_message(subject="before the change",
                        internaldate=time.time() - 60)
    h.mw.wait_hooks(1, 10)
    srv.set_uidvalidity(2000, renumber_from=101)
    later = time.time() + 2  # after mailwatch last saw the mailbox
    new = [srv.add_message(subject="recreated %d" % i, notify=False,
                           internaldate=later) for i in (1, 2)]
    mark = h.mw.mark()
    srv.conn(1).close()
    h.log_line(r"UIDVALIDITY changed from 1000 to 2000", what, since=mark)
    h.reconnected(what)
    h.announced([a] + new, what + ": what arrived since, once")
    recs = records_of(h, new)
    ok(recs and all(r.get("MAILWATCH_UIDVALIDITY") == "2000" for r in recs),
       "%s: caught-up mail carries the new UIDVALIDITY" % what,
       repr(recs))
    b = srv.add_message(subject="new after the change")
    h.announced([a, b] + new, what)
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
    r = srv.add_message(subject="recreated", notify=False,
                        internaldate=time.time() + 2)
    mark = h.mw.mark()
    srv.conn(1).sendline("* OK [UIDVALIDITY 3000] mailbox recreated")
    h.log_line(r"UIDVALIDITY changed from 1000 to 3000", what, since=mark)
    h.reconnected(what)
    h.announced([r], what + ": the new message, none of the old ones")
    b = srv.add_message(subject="new after the change")
    h.announced([r, b], what)
    h.memory_ok(what)
    h.finish(what)


def courier_like(srv):
    """srv gives its mailbox a new UIDVALIDITY at every EXAMINE while it is
    empty, as Courier does with a fresh maildir."""
    def examine(conn, tag, args):
        if not srv.exists():
            srv.uidvalidity += 1
        srv.default("EXAMINE", conn, tag, args)
    srv.handlers["EXAMINE"] = examine


def test_uidvalidity_of_empty_mailbox():
    """Courier with a fresh maildir gives an empty mailbox a new
    UIDVALIDITY at every session until its first message is stored (and
    then one more). The first message, delivered while mailwatch was
    stopped, is announced when it starts again, with the UIDVALIDITY the
    server uses now; the changes while empty are not worth a warning."""
    what = "empty mailbox, new UIDVALIDITY each session"
    h = Hostile(n_old=0, start=False)
    srv = h.srv
    courier_like(srv)
    h.mw.start()
    h.idle_ok()
    srv.conn(1).close()
    h.reconnected(what)
    ok(srv.uidvalidity == 1002, "%s: two sessions, two values" % what)
    ok(not h.log_lines(r"UIDVALIDITY changed.*new mail from now"),
       "%s: no warning while the mailbox is empty" % what)
    first = []

    def deliver():
        first.append(srv.add_message(subject="first ever", notify=False))
        srv.uidvalidity += 1  # stored: Courier writes its UID list
    h.restart(what, deliver)
    h.announced(first, what + ": the first message, once")
    recs = h.mw.hook_records()
    ok(recs and recs[0].get("MAILWATCH_UIDVALIDITY") == "1003",
       "%s: with the UIDVALIDITY the server uses now" % what, repr(recs))
    b = srv.add_message(subject="second")
    h.announced(first + [b], what + ": then live mail")
    h.finish(what)


def test_uidvalidity_after_sigkill():
    """What the state file says while mailwatch runs, not only after a
    clean stop: once the first message of a Courier-like mailbox was
    announced, the file says the mailbox is no longer empty and when it
    was last seen. Killed (SIGKILL), the server then switches UIDVALIDITY
    and a message arrives: on the next start that one is announced and
    the first is not again."""
    what = "UIDVALIDITY changed after a SIGKILL"
    h = Hostile(n_old=0, start=False)
    srv = h.srv
    courier_like(srv)
    h.mw.start()
    h.idle_ok()
    a = srv.add_message(subject="first")
    h.announced([a], what + ": the first message")
    state = os.path.join(h.mw.state_dir(), "@fake")

    def says():
        try:
            with open(state) as f:
                text = f.read()
        except OSError:
            return None
        # mailbox UIDVALIDITY UID SEEN MESSAGES MODSEQ ANNOUNCED WATCHED
        # NAME
        return text if re.search(r"^mailbox \d+ %d \d+ 1 \d+ %d \d+ INBOX$" %
                                 (a, a), text, re.M) else None
    ok(mwtest.wait_until(says, 10),
       "%s: the state file says UID %d, one message, while running"
       % (what, a), repr(says()))
    h.mw.signal(signal.SIGKILL)
    ok(h.mw.wait_exit(10) is not None, "%s: killed" % what)
    srv.uidvalidity += 1
    b = srv.add_message(subject="while dead", notify=False,
                        internaldate=time.time() + 2)
    n = srv.connection_count()
    h.mw.start()  # still registered: never stop()ped
    h.reconnected(what + ", started again", n + 1)
    h.announced([a, b], what + ": the one from while dead, once")
    h.finish(what)


def test_uidvalidity_while_stopped():
    """The mailbox was renumbered while mailwatch was stopped; it holds 20
    old messages (an hour old, unseen), one announced before the stop,
    and, since the stop, two unseen messages, one seen, and one unseen
    but dated two hours back (moved in from elsewhere). Exactly the two
    are announced, as catch-up. mailwatch fetches no envelope of the old
    ones: a date scan of UID, FLAGS and INTERNALDATE of the unseen ones
    (by sequence number, from SEARCH UNSEEN: not the read one, 23), then
    envelopes from the first new UID on."""
    what = "UIDVALIDITY changed while stopped"
    h = Hostile(n_old=20)
    srv = h.srv
    a = srv.add_message(subject="live", internaldate=time.time() - 60)
    h.announced([a], what + ": before the stop")
    new = []

    def meanwhile():
        srv.set_uidvalidity(5000, renumber_from=1)
        new.append(srv.add_message(subject="while stopped 1", notify=False))
        srv.add_message(subject="read elsewhere", flags=["\\Seen"],
                        notify=False)
        srv.add_message(subject="moved in", notify=False,
                        internaldate=time.time() - 7200)
        new.append(srv.add_message(subject="while stopped 2", notify=False))
    n_cmds = len(srv.commands)
    h.restart(what, meanwhile)
    h.announced([a] + new, what + ": what arrived since the stop, once")
    recs = records_of(h, new)
    ok(recs and all(r.get("MAILWATCH_UIDVALIDITY") == "5000" for r in recs),
       "%s: with the new UIDVALIDITY" % what, repr(recs))
    fetches = [ln.split(" ", 1)[1] for _, ln in srv.commands[n_cmds:]
               if " FETCH " in ln]
    ok(fetches[:2] == ["FETCH 1:22,24:25 (UID FLAGS INTERNALDATE)",
                       "UID FETCH %d:* (UID FLAGS INTERNALDATE ENVELOPE)"
                       % new[0]],
       "%s: a date scan, then envelopes from UID %d on" % (what, new[0]),
       repr(fetches))
    h.log_line(r"UIDVALIDITY changed from 1000 to 5000: .*since it was "
               r"last seen", what)
    b = srv.add_message(subject="live again")
    h.announced([a, b] + new, what + ": then live mail")
    h.finish(what)


def test_uidvalidity_catch_up_cut():
    """The connection drops during the date scan, then again while the
    new messages' envelopes come in: the catch-up starts over at each
    reconnect, and the message is announced once."""
    what = "catch-up after a UIDVALIDITY change cut short"
    h = Hostile()
    srv = h.srv
    new = []

    def meanwhile():
        srv.set_uidvalidity(7000, renumber_from=1)
        new.append(srv.add_message(subject="while stopped", notify=False))

    def cut(conn, tag, args):
        conn.close()

    def cut_after(conn, tag, args):
        uidset, _, _ = args.partition(" ")
        for r in srv.fetch_responses(uidset, ("UID", "FLAGS",
                                              "INTERNALDATE", "ENVELOPE")):
            conn.send(r)
        conn.close()
    # The date scan is by sequence number (the unseen ones), the
    # envelopes' fetch by UID.
    srv.once("FETCH", cut)
    srv.once("UID FETCH", cut_after)
    n = srv.connection_count()
    h.restart(what, meanwhile, idle=False)
    h.reconnected(what + " (twice)", n + 3)
    h.announced(new, what + ": once")
    scans = srv.commands_of(r" FETCH [\d:,]+ \(UID FLAGS INTERNALDATE\)$")
    ok(len(scans) == 3, "%s: a date scan on each of the 3 connections"
       % what, repr(scans))
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
            test_uidvalidity_mid_session, test_uidvalidity_of_empty_mailbox,
            test_uidvalidity_after_sigkill, test_uidvalidity_while_stopped, test_uidvalidity_catch_up_cut,
            test_bye_while_idle, test_no_idle_polls)
