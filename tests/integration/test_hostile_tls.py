#!/usr/bin/python3
"""Hostile server over implicit TLS (fakeimap with a certificate from a
test CA): the TLS connection cut without close_notify inside a literal,
responses dribbled one byte per TLS record, an endless line. The same
expectations as on plain TCP: a clear log line, bounded memory, a
reconnect where one is needed, the good messages announced exactly once."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import Hostile  # noqa: E402


def test_tls_cut_mid_literal():
    what = "TLS cut mid-literal"
    h = Hostile(tls=True)
    srv = h.srv

    def cut(conn, tag, args):
        data = b"".join(srv.fetch_responses(args.split()[0]))
        m = re.search(rb"\{(\d+)\}\r\n", data)
        conn.send(data[:m.end() + int(m.group(1)) // 2])
        time.sleep(0.3)
        conn.close()  # no close_notify: a truncation attack, as seen
    srv.once("UID FETCH", cut)
    uid = srv.add_message(subject="literal over TLS", literal=("subject",))
    h.log_line(r"connection lost|server closed the connection", what)
    h.reconnected(what)
    uid2 = srv.add_message(subject="second")
    h.announced([uid, uid2], what)
    h.memory_ok(what)
    h.finish(what)


def test_tls_dribble():
    what = "TLS dribbled one byte per record"
    ctx, ca = fakeimap.tls_context()
    srv = fakeimap.FakeImap(password=Hostile.PASSWORD, ssl_context=ctx)

    def slow(conn):
        conn.dribble = 0.002
        return False
    srv.on_connect = slow
    h = Hostile(srv=srv, account={"tls": "implicit", "ca_file": ca})
    uids = [srv.add_message(subject="dribbled over TLS",
                            literal=("subject",)),
            srv.add_message(subject="and quoted")]
    h.announced(uids, what, timeout=30)
    ok(srv.connection_count() == 1, "%s: no reconnect needed" % what)
    h.memory_ok(what)
    h.finish(what)


def test_tls_endless_line():
    what = "TLS endless line"
    h = Hostile(tls=True)
    srv = h.srv

    def endless(conn, tag, args):
        conn.send(b'* 4 FETCH (UID 4 FLAGS () ENVELOPE (NIL "')
        chunk = b"A" * 16384
        for _ in range(640):  # 10 MiB, no newline
            if not conn.send(chunk):
                break
        conn.hang(timeout=30)
    srv.once("UID FETCH", endless)
    uid = srv.add_message(subject="behind the endless line")
    h.log_line(r"line longer than", what, timeout=15)
    h.reconnected(what)
    uid2 = srv.add_message(subject="second")
    h.announced([uid, uid2], what)
    h.memory_ok(what)
    h.finish(what)


mwtest.main(test_tls_cut_mid_literal, test_tls_dribble,
            test_tls_endless_line)
