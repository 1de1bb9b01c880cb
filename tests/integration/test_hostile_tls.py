#!/usr/bin/python3
"""Hostile server over TLS (fakeimap with a certificate from a test CA).
Implicit TLS: the connection cut without close_notify inside a literal,
responses dribbled one byte per TLS record, an endless line; the same
expectations as on plain TCP (a clear log line, bounded memory, a
reconnect where one is needed, the good messages announced exactly once).
STARTTLS: plaintext injected after the STARTTLS OK (CVE-2011-0411), no
STARTTLS offered, STARTTLS refused, PREAUTH in the clear: never a password
in the clear, and no retry where retrying cannot help."""

import os
import re
import ssl
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


def test_tls12_greeting_in_handshake_read():
    """TLS 1.2: the server's Finished and its greeting in one segment, so
    that OpenSSL's read-ahead takes the greeting while it ends the
    handshake. Nothing more comes from the socket, so nothing wakes the
    loop for it: the session must still start at once."""
    what = "TLS 1.2 greeting read with the handshake"
    ctx, ca = fakeimap.tls_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    srv = fakeimap.FakeImap(password=Hostile.PASSWORD, ssl_context=ctx)
    srv.tls_cork = True
    h = Hostile(srv=srv, account={"tls": "implicit", "ca_file": ca})
    ok(h.mw.wait_log(r"connected to 127\.0\.0\.1:\d+: TLSv1\.2", 10),
       "%s: TLS 1.2 negotiated" % what, h.mw.log_tail(10))
    uid = srv.add_message(subject="after a TLS 1.2 greeting")
    h.announced([uid], what, timeout=10)
    ok(srv.connection_count() == 1, "%s: no reconnect needed" % what)
    h.finish(what)


def test_tls_endless_line():
    what = "TLS endless line"
    h = Hostile(tls=True)
    srv = h.srv

    def endless(conn, tag, args):
        conn.send(b'* 4 FETCH (UID 4 FLAGS () ENVELOPE (NIL "')
        chunk = b"A" * 16384
        for _ in range(1280):  # 20 MiB, no newline: past max_skip
            if not conn.send(chunk):
                break
        conn.hang(timeout=30)
    srv.once("UID FETCH", endless)
    uid = srv.add_message(subject="behind the endless line")
    h.log_line(r"response longer than \d+ bytes, too big even to skip",
               what, timeout=15)
    h.reconnected(what)
    uid2 = srv.add_message(subject="second")
    h.announced([uid, uid2], what)
    h.memory_ok(what)
    h.finish(what)


def no_cleartext_login(h, what):
    bad = [(c.no, ln) for c in h.srv.conns for tls, ln in c.lines
           if not tls and re.match(r"\S+ (AUTHENTICATE|LOGIN)\b", ln, re.I)]
    ok(not bad, "%s: no login in the clear" % what, repr(bad))


def test_starttls_works():
    what = "STARTTLS"
    h = Hostile(tls=True, starttls=True)
    uid = h.srv.add_message(subject="over STARTTLS")
    h.announced([uid], what)
    ok(h.srv.conn(1).tls, "%s: the connection is TLS" % what)
    no_cleartext_login(h, what)
    h.finish(what)


def test_starttls_injection():
    what = "plaintext injected after the STARTTLS OK"
    ctx, ca = fakeimap.tls_context()
    srv = fakeimap.FakeImap(password=Hostile.PASSWORD, ssl_context=ctx,
                            starttls=True)

    def inject(conn, tag, args):
        # The OK and a forged response in one segment, as a man in the
        # middle would add it; then a TLS handshake as usual.
        conn.send(b"%s OK Begin TLS\r\n* 9 EXISTS\r\n" % tag.encode())
        srv.start_tls(conn)
        conn.hang(timeout=20)
    srv.once("STARTTLS", inject)
    h = Hostile(srv=srv, wait_idle=False,
                account={"tls": "starttls", "ca_file": ca})
    h.log_line(r"data after the STARTTLS reply", what)
    h.reconnected(what)
    ok(srv.conn(2).tls, "%s: the new connection is TLS" % what)
    no_cleartext_login(h, what)
    uid = srv.add_message(subject="after the injection")
    h.announced([uid], what)
    h.finish(what)


def refused(what, srv_kw, log_rx, account=None, on_connect=None):
    acc = {"tls": "starttls"}
    acc.update(account or {})
    h = Hostile(wait_idle=False, account=acc, **srv_kw)
    if on_connect:
        h.srv.on_connect = on_connect
    h.log_line(log_rx, what)
    h.log_line(r"not retrying", what + " (gives up)")
    # A retry would come after a back-off of about 1 s.
    mwtest.quiet(3)
    ok(h.srv.connection_count() == 1, "%s: no retry" % what,
       "connections: %d" % h.srv.connection_count())
    ok(not h.srv.logins, "%s: no login attempt" % what, repr(h.srv.logins))
    no_cleartext_login(h, what)
    h.finish(what)


def test_starttls_missing():
    refused("STARTTLS not offered", {}, r"does not offer STARTTLS")


def test_starttls_refused():
    srv_kw = {"tls": True, "starttls": True}

    def no(conn, tag, args):
        conn.sendline("%s NO STARTTLS unavailable right now" % tag)
    what = "STARTTLS refused"
    acc = {"tls": "starttls"}
    h = Hostile(wait_idle=False, start=False, account=acc, **srv_kw)
    h.srv.handlers["STARTTLS"] = no
    h.mw.start()
    h.log_line(r"STARTTLS refused", what)
    line = h.wait_log_line(r"not retrying|reconnecting in")
    if line and "not retrying" in line:
        # A retry would come after a back-off of about 1 s.
        mwtest.quiet(3)
        ok(h.srv.connection_count() == 1, "%s: stopped, no retry" % what,
           "connections: %d" % h.srv.connection_count())
    else:
        ok(line, "%s: stopped or backs off" % what, h.mw.log_tail(10))
    ok(not h.srv.logins, "%s: no login attempt" % what, repr(h.srv.logins))
    no_cleartext_login(h, what)
    h.finish(what)


def test_preauth_in_the_clear():
    def preauth(conn):
        conn.sendline("* PREAUTH [CAPABILITY IMAP4rev1 IDLE STARTTLS] "
                      "logged in already")
        return True
    refused("PREAUTH on a STARTTLS account", {}, r"PREAUTH",
            on_connect=preauth)


mwtest.main(test_tls_cut_mid_literal, test_tls_dribble,
            test_tls12_greeting_in_handshake_read,
            test_tls_endless_line, test_starttls_works,
            test_starttls_injection, test_starttls_missing,
            test_starttls_refused, test_preauth_in_the_clear)
