#!/usr/bin/python3
"""The TLS mode and the port do not match, against a real Dovecot: a
common slip when setting up an account. mailwatch must say what is wrong
in bounded time, send no credentials, and retry with back-off.

  tls = implicit on the plain port: the server greets in clear text where
      a TLS handshake was expected.
  tls = starttls on the implicit-TLS port: the server waits for a TLS
      ClientHello and mailwatch for a greeting; nobody speaks. Only a
      greeting deadline ends this (Dovecot keeps such a connection for
      minutes)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
from test_watch import finish, need_binaries, wait_warning  # noqa: E402

# mailwatch's command timeout (src/watcher.c COMMAND_TIMEOUT), plus slack.
GREETING_BOUND = 40


def sent_credentials(log, account):
    return [ln for ln in log.splitlines()
            if re.search(r"\b%s/[^:]*: C: " % re.escape(account), ln) and
            re.search(r"LOGIN|AUTHENTICATE|<login", ln, re.I)]


def test_implicit_tls_on_plain_port():
    need_binaries()
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({
        "general": {"notify": False},
        "account imp": dc.account("alice", port=dc.imap_port),
    })
    m = wait_warning(mw, "imp/INBOX", r"TLS handshake", 10)
    ok(m, "a clear line about the failed TLS handshake", mw.log_tail(10))
    if m:
        comment(m.group(0))
    # Three attempts take about 1 + 2 s of back-off.
    mwtest.wait_until(lambda: len(re.findall(r"imp/INBOX: reconnecting in",
                                             mw.log())) >= 3, 10)
    delays = [float(x) for x in re.findall(
        r"imp/INBOX: reconnecting in ([\d.]+) s", mw.log())]
    ok(len(delays) >= 3 and delays[0] < delays[1] < delays[2],
       "it retries with a growing back-off: %s" % delays)
    ok(not sent_credentials(mw.log(), "imp"), "no credentials sent")
    finish(mw)


def test_starttls_on_implicit_port():
    need_binaries()
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({
        "general": {"notify": False},
        "account st": dc.account("alice", tls="starttls",
                                 port=dc.imaps_port),
    })
    ok(mw.wait_log(r"st/INBOX: connected to", 10), "TCP connected")
    t0 = time.monotonic()
    # A warning, not the debug trace ("session: greeting -> dead").
    m = wait_warning(mw, "st/INBOX", r"greet|no reply|timed? ?out|"
                     r"server closed|connection lost", GREETING_BOUND)
    dt = time.monotonic() - t0
    ok(m, "the silent server is reported within %d s (%s)" % (
        GREETING_BOUND, "after %.1f s: %s" % (dt, m.group(0)) if m
        else "nothing logged"),
       "mailwatch waits for a greeting with no deadline: the session has "
       "no timer in state 'greeting'. Last lines:\n" + mw.log_tail(5))
    if m:
        ok(mw.wait_log(r"st/INBOX: reconnecting in", 5),
           "and it will try again")
    ok(not sent_credentials(mw.log(), "st"), "no credentials sent")
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_implicit_tls_on_plain_port,
                test_starttls_on_implicit_port)
