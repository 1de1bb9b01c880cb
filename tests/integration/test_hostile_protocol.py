#!/usr/bin/python3
"""Hostile server, protocol faults with well-framed responses: EXISTS going
backwards, FETCH responses for UIDs never asked, the same FETCH twice, an
ENVELOPE that is NIL everywhere, control characters / invalid UTF-8 / bidi
overrides / markup in From and Subject, and a server without UIDNEXT.
Each against tests/lib/fakeimap.py on 127.0.0.1 (tls = none)."""

import json
import os
import sys
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import Hostile, fetch_line, Message, envelope  # noqa: E402


def test_exists_backwards():
    what = "EXISTS going backwards"
    h = Hostile()
    srv = h.srv
    conn = srv.conn(1)
    a = srv.add_message(subject="four", notify=False)
    b = srv.add_message(subject="five", notify=False)
    # "* 5 EXISTS" and then "* 3 EXISTS" with no EXPUNGE in between.
    mark = h.mw.mark()
    conn.reported = 3
    conn.sendline("* 5 EXISTS")
    conn.sendline("* 3 EXISTS")
    conn.reported = 3
    h.log_line(r"(?i)(EXISTS|count).*(backwards|decreas|fewer|went down|"
               r"shr|from 5 to 3)|(backwards|decreas|fewer|shr).*EXISTS",
               what, since=mark)
    # Whatever it makes of it: nothing lost, nothing twice, and the
    # next new message still arrives, once the two were fetched and the
    # client is back in IDLE.
    h.mw.wait_hooks(2, 10)
    srv.wait_idle(10)
    c = srv.add_message(subject="six")
    h.announced([a, b, c], what, timeout=15)
    comment("  connections: %d" % srv.connection_count())
    h.memory_ok(what)
    h.finish(what)


def test_exists_repeated():
    what = "the same EXISTS in every response"
    h = Hostile()
    srv = h.srv

    def with_exists(conn, tag, args):
        # Dovecot-style "* N EXISTS" before every tagged OK, N unchanged.
        for r in srv.fetch_responses(args.split()[0]):
            conn.send(r)
        conn.sendline("* %d EXISTS" % srv.exists())
        srv.ok(conn, tag)
    srv.handlers["UID FETCH"] = with_exists
    uid = srv.add_message(subject="one new")
    h.mw.wait_hooks(1, 10)
    # Looping, it would send UID FETCH after UID FETCH, never IDLE.
    ok(srv.wait_idle(10, 1), "%s: back in IDLE" % what)
    n = len(srv.commands_of(r"^m\d+ UID FETCH "))
    ok(n <= 3, "%s: no fetch loop (%d UID FETCH)" % (what, n))
    uid2 = srv.add_message(subject="next")
    h.announced([uid, uid2], what)
    h.memory_ok(what)
    h.finish(what)


def test_fetch_below_range():
    what = "FETCH of UIDs below the asked range"
    h = Hostile()
    srv = h.srv

    def extra(conn, tag, args):
        # The old messages 1 and 2 first (never asked), then the answer.
        for seq in (1, 2):
            conn.send(fetch_line(seq, srv.messages[seq - 1]))
        srv.default("UID FETCH", conn, tag, args)
    srv.once("UID FETCH", extra)
    uid = srv.add_message(subject="asked for")
    h.mw.wait_hooks(1, 10)
    uid2 = srv.add_message(subject="next")
    h.announced([uid, uid2], what)
    ok(srv.connection_count() == 1, "%s: no reconnect needed" % what)
    h.memory_ok(what)
    h.finish(what)


def test_unsolicited_fetch_while_idle():
    what = "unsolicited FETCH with ENVELOPE while idle"
    h = Hostile()
    srv = h.srv
    conn = srv.conn(1)
    # An old message (UID 2), and one the server never had (UID 77),
    # both with an ENVELOPE, while the client is in IDLE. The real
    # message comes after them on the connection: were 2 or 77
    # announced, that would show by then.
    conn.send(fetch_line(2, srv.messages[1]))
    conn.send(fetch_line(3, Message(77, (), envelope(subject="ghost 77"))))
    uid = srv.add_message(subject="real one")
    h.announced([uid], what)
    ok(srv.connection_count() == 1, "%s: kept the connection" % what,
       "connections: %d" % srv.connection_count())
    h.memory_ok(what)
    h.finish(what)


def test_same_fetch_twice():
    what = "the same FETCH twice"
    h = Hostile()
    srv = h.srv

    def twice(conn, tag, args):
        r = srv.fetch_responses(args.split()[0])
        conn.send(b"".join(r) + b"".join(r))
        srv.ok(conn, tag)
    srv.once("UID FETCH", twice)
    uid = srv.add_message(subject="only once please")
    h.mw.wait_hooks(1, 10)
    # A message arrives and is expunged before the client fetches it:
    # "UID FETCH 5:*" then matches the last message (UID 4) by RFC 3501,
    # which is not new.
    def expunged_first(conn, tag, args):
        with srv.lock:
            seq, _ = srv.find(gone)
            del srv.messages[seq - 1]
            conn.reported = srv.exists()
        conn.sendline("* %d EXPUNGE" % seq)
        srv.default("UID FETCH", conn, tag, args)
    srv.once("UID FETCH", expunged_first)
    gone = srv.add_message(subject="expunged before the fetch")
    ok(srv.wait_command(r"UID FETCH %d:\*" % gone, 10),
       "%s: asked for %d:*" % (what, gone))
    srv.wait_idle(10)  # the answer was read
    uid2 = srv.add_message(subject="and the next")
    h.announced([uid, uid2], what)
    h.memory_ok(what)
    h.finish(what)


def test_nil_envelope():
    what = "ENVELOPE NIL everywhere"
    h = Hostile()
    srv = h.srv
    uid = srv.add_message(envelope_bytes=fakeimap.NIL_ENVELOPE)
    ok(h.announced([uid], what), "%s: still announced" % what)
    recs = h.mw.hook_records()
    r = recs[0] if recs else {}
    ok(r.get("MAILWATCH_FROM") == "" and r.get("MAILWATCH_SUBJECT") == "",
       "%s: From and Subject are empty strings" % what, json.dumps(r))
    ok(r.get("MAILWATCH_FROM_NAME") == "" and
       r.get("MAILWATCH_FROM_ADDRESS") == "" and
       r.get("MAILWATCH_DATE") == "" and
       r.get("MAILWATCH_MESSAGE_ID") == "",
       "%s: the other fields are empty strings" % what, json.dumps(r))
    uid2 = srv.add_message(subject="normal")
    h.announced([uid, uid2], what)
    h.memory_ok(what)
    h.finish(what)


BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def bad_chars(s):
    """The characters of s no notification or hook should get: controls
    (C0 incl. CR/LF/ESC/BEL, DEL, C1), bidi embeddings/overrides/isolates,
    lone surrogates (how Python shows invalid UTF-8 from the env)."""
    return [c for c in s if unicodedata.category(c) in ("Cc", "Cs") or
            ord(c) in BIDI]


def test_sanitised_fields():
    what = "hostile From and Subject"
    if not mwtest.Notifyd.available():
        raise mwtest.Skip("build/tests/notifyd is not built")
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    h = Hostile(bus=bus)
    srv = h.srv
    subject = (b"Hi \x07bell \x1b[31mred\x1b[0m cr\rhere \xff\xfe bad "
               b"\xe2\x80\xaeevil\xe2\x80\xac <b>bold</b> & "
               b"<a href=\"http://x.example/\">link</a> \x00nul")
    name = (b"Mallory \x1b]0;title\x07 \xe2\x80\xae<i>rev</i> \xc3 \x9b1m "
            b"end")
    uid = srv.add_message(subject=subject, from_name=name,
                          from_addr="mallory@evil.example",
                          literal=("subject", "name"))
    ok(h.announced([uid], what), "%s: announced" % what)
    recs = h.mw.hook_records()
    r = recs[0] if recs else {}
    for k in ("MAILWATCH_SUBJECT", "MAILWATCH_FROM", "MAILWATCH_FROM_NAME"):
        v = r.get(k, "")
        ok(v and not bad_chars(v),
           "%s: hook %s has no control/bidi chars, valid UTF-8" % (what, k),
           "%s=%r bad=%r" % (k, v, bad_chars(v)))
    s = r.get("MAILWATCH_SUBJECT", "")
    ok(all(w in s for w in ("bell", "red", "cr", "here", "bad", "evil",
                            "<b>bold</b>")),
       "%s: hook subject keeps the text" % what, repr(s))
    ok("Mallory" in r.get("MAILWATCH_FROM_NAME", "") and
       "mallory@evil.example" in r.get("MAILWATCH_FROM", ""),
       "%s: hook From keeps the text" % what, repr(r))

    notes = nd.wait_records(1, 10)
    n = notes[0] if notes else {}
    body, summary = n.get("body", ""), n.get("summary", "")
    ok(notes, "%s: notification sent" % what)
    ok(body and not bad_chars(body) and not bad_chars(summary),
       "%s: notification has no control/bidi chars" % what,
       "summary=%r body=%r" % (summary, body))
    ok("<b>" not in body and "<a " not in body and "&lt;b&gt;bold&lt;/b&gt;"
       in body and " &amp; " in body,
       "%s: notification body markup escaped" % what, repr(body))

    # The log is for a terminal or the journal: server text in it must
    # not carry escapes either, in the messages or in the -v trace.
    lines = h.mw.log().split("\n")
    trace = [ln for ln in lines if fakeimap.TRACE_RX.search(ln)]
    other = [ln for ln in lines if not fakeimap.TRACE_RX.search(ln)]
    for kind, ls in (("log messages", other), ("-v protocol trace", trace)):
        # (The trace keeps each line's CR of CRLF: not the point here.)
        bad = [ln for ln in ls if bad_chars(ln[:-1] if ln.endswith("\r")
                                            else ln)]
        ok(not bad, "%s: no control or bidi characters in the %s" %
           (what, kind), "\n".join(repr(ln) for ln in bad[:6]))
    h.memory_ok(what)
    h.finish(what)


def test_no_uidnext():
    what = "no UIDNEXT in EXAMINE"
    h = Hostile(send_uidnext=False)
    srv = h.srv
    ok(srv.wait_command(r"^m\d+ FETCH \* \(UID\)$", 5),
       "%s: asked FETCH * (UID)" % what, repr(srv.commands))
    h.log_line(r"no UIDNEXT", what)
    a = srv.add_message(subject="new on the first connection")
    h.mw.wait_hooks(1, 10)
    # Cut while idle; two messages arrive while away.
    srv.conn(1).close()
    b = srv.add_message(subject="while away 1", notify=False)
    c = srv.add_message(subject="while away 2", notify=False)
    h.reconnected(what)
    d = srv.add_message(subject="after the reconnect")
    h.announced([a, b, c, d], what)
    ok(len(srv.commands_of(r"^m\d+ FETCH \* \(UID\)$")) == 2,
       "%s: FETCH * (UID) on each connection" % what)
    h.memory_ok(what)
    h.finish(what)


def test_no_uidnext_empty():
    what = "no UIDNEXT, empty mailbox"
    h = Hostile(n_old=0, send_uidnext=False)
    srv = h.srv
    a = srv.add_message(subject="the very first")
    h.announced([a], what)
    h.memory_ok(what)
    h.finish(what)


mwtest.main(test_exists_backwards, test_exists_repeated,
            test_fetch_below_range,
            test_unsolicited_fetch_while_idle, test_same_fetch_twice,
            test_nil_envelope, test_sanitised_fields, test_no_uidnext,
            test_no_uidnext_empty)
