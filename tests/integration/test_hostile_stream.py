#!/usr/bin/python3
"""Hostile server, byte-stream faults: a connection cut mid-line and
mid-literal, responses dribbled one byte at a time, a literal announced as
4 GiB, an endless line, binary garbage. Each against tests/lib/fakeimap.py
on 127.0.0.1 (tls = none). For every fault: a clear log line, peak RSS
bounded, a reconnect, and the good messages announced exactly once."""

import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import Hostile  # noqa: E402


def uid_of_fetch(args):
    """The first UID of a "UID FETCH n:* ..." argument string."""
    return int(re.match(r"(\d+)", args).group(1))


def fault_on_fetch(what, responder, log_rx, literal_subject=False):
    """The common scenario: mailwatch idles; a new message arrives; the
    UID FETCH for it gets responder's fault. Expect log_rx in the log, a
    reconnect that catches the message up, and a later message too."""
    h = Hostile()
    srv = h.srv
    srv.once("UID FETCH", responder)
    t = time.monotonic()
    uid = srv.add_message(subject="first good one",
                          literal=("subject",) if literal_subject else ())
    h.log_line(log_rx, what, timeout=15)
    h.reconnected(what)
    mwtest.comment("  reconnected %.1f s after the fault" %
                   (srv.conn(2).t_open - t if srv.connection_count() > 1
                    else -1))
    uid2 = srv.add_message(subject="second good one")
    h.announced([uid, uid2], what)
    h.memory_ok(what)
    h.finish(what)


def test_cut_mid_line():
    def cut(conn, tag, args):
        data = b"".join(conn.srv.fetch_responses(args.split()[0]))
        assert b"{" not in data
        conn.send(data[:len(data) // 2])  # "* 4 FETCH (UID 4 ... ENVEL"
        time.sleep(0.3)
        conn.close()
    fault_on_fetch("cut mid-line", cut,
                   r"server closed the connection|connection lost")


def test_cut_mid_literal():
    def cut(conn, tag, args):
        data = b"".join(conn.srv.fetch_responses(args.split()[0]))
        m = re.search(rb"\{(\d+)\}\r\n", data)
        assert m, data
        # Inside the subject literal: the header and half its bytes.
        conn.send(data[:m.end() + int(m.group(1)) // 2])
        time.sleep(0.3)
        conn.close()
    fault_on_fetch("cut mid-literal", cut,
                   r"server closed the connection|connection lost",
                   literal_subject=True)


def test_dribble():
    what = "dribbled one byte at a time"
    srv = fakeimap.FakeImap(password=Hostile.PASSWORD)

    def slow(conn):
        conn.dribble = 0.002
        return False  # then the default greeting, dribbled
    srv.on_connect = slow
    h = Hostile(srv=srv)
    uids = [srv.add_message(subject="dribbled literal \xe9t\xe9",
                            literal=("subject", "name")),
            srv.add_message(subject="dribbled quoted")]
    ok(h.announced(uids, what, timeout=30), "%s: announced" % what)
    recs = {int(r["MAILWATCH_UID"]): r for r in h.mw.hook_records()}
    ok(recs.get(uids[0], {}).get("MAILWATCH_SUBJECT") ==
       "dribbled literal \xe9t\xe9",
       "%s: literal subject intact" % what,
       repr(recs.get(uids[0])))
    ok(srv.connection_count() == 1, "%s: no reconnect needed" % what,
       "connections: %d" % srv.connection_count())
    ok(srv.conn(1).sent > 500, "%s: %d bytes dribbled" %
       (what, srv.conn(1).sent))
    h.memory_ok(what)
    h.finish(what)


def test_literal_4g():
    def huge(conn, tag, args):
        seq, _ = conn.srv.find(uid_of_fetch(args))
        conn.send(b"* %d FETCH (UID %d FLAGS () ENVELOPE (NIL "
                  b"{4294967296}\r\n" % (seq, uid_of_fetch(args)))
        # Then stream the "literal" until the client hangs up.
        chunk = b"x" * 65536
        for _ in range(160):  # up to 10 MiB
            if not conn.send(chunk):
                break
        conn.hang(timeout=30)
    fault_on_fetch("4 GiB literal", huge,
                   r"bad response: literal of 4294967296 bytes|literal.*"
                   r"(too big|exceeds|limit)")


def test_endless_line():
    def endless(conn, tag, args):
        seq, _ = conn.srv.find(uid_of_fetch(args))
        conn.send(b'* %d FETCH (UID %d FLAGS () ENVELOPE (NIL "' %
                  (seq, uid_of_fetch(args)))
        chunk = b"A" * 65536
        # 20 MiB without a newline: a line over the limit is skipped,
        # and one past max_skip (16 MiB) ends the session.
        for _ in range(320):
            if not conn.send(chunk):
                break
        conn.hang(timeout=30)  # and keep the socket open
    fault_on_fetch("endless line", endless,
                   r"bad response: response longer than \d+ bytes, too "
                   r"big even to skip")


def test_binary_garbage():
    rnd = random.Random(20240501)
    garbage = bytes(rnd.getrandbits(8) for _ in range(4096)) + b"\0\r\n"
    assert b"\0" in garbage[:-3]

    def junk(conn, tag, args):
        conn.send(garbage)
        conn.hang(timeout=30)
    fault_on_fetch("binary garbage", junk, r"bad response")


def test_unknown_tag():
    def wrong_tag(conn, tag, args):
        for r in conn.srv.fetch_responses(args.split()[0]):
            conn.send(r)
        conn.sendline("x%s OK UID FETCH completed" % tag)
        conn.hang(timeout=30)
    fault_on_fetch("completion with an unknown tag", wrong_tag,
                   r"unknown tag")


def test_continuation_in_fetch():
    def plus(conn, tag, args):
        conn.sendline("+ send me more")
        conn.hang(timeout=30)
    fault_on_fetch("continuation instead of FETCH data", plus,
                   r"unexpected continuation")


def test_garbage_greeting():
    what = "garbage greeting"
    h = Hostile()
    srv = h.srv
    rnd = random.Random(7)
    garbage = b"\0\x01\xff" + bytes(rnd.getrandbits(8)
                                    for _ in range(2048)) + b"\r\n"

    def junk(conn):
        if conn.no != 2:
            return False
        conn.send(garbage)
        conn.hang(timeout=30)
        return True
    srv.on_connect = junk
    # Cut the first connection while idle: the second gets garbage.
    mark = h.mw.mark()
    srv.conn(1).close()
    h.log_line(r"server closed the connection|connection lost", what)
    h.log_line(r"bad response|server refused", what + " (connection #2)",
               since=mark, timeout=15)
    h.reconnected(what, n=3, timeout=20)
    uid = srv.add_message(subject="after the garbage")
    h.announced([uid], what)
    h.memory_ok(what)
    h.finish(what)


mwtest.main(test_cut_mid_line, test_cut_mid_literal, test_dribble,
            test_literal_4g, test_endless_line, test_binary_garbage,
            test_unknown_tag, test_continuation_in_fetch,
            test_garbage_greeting)
