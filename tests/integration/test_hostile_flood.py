#!/usr/bin/python3
"""Hostile (or merely huge) server: a catch-up UID FETCH answered with
20000 messages, every ENVELOPE field near the 512-byte display cap. With
catch_up = skip none of them is announced; the daemon's memory must stay
bounded however many messages the server lists, and new mail afterwards
is announced as usual. The same for 20000 messages arriving at once while
idle."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import Hostile, Message, envelope  # noqa: E402

N = 20000


def test_catch_up_flood():
    what = "catch-up of %d messages" % N
    h = Hostile(general={"catch_up": "skip"})
    srv = h.srv
    env = envelope(subject="S" * 500, from_name="N" * 500,
                   from_addr="a" * 200 + "@" + "b" * 200 + ".example",
                   message_id="<" + "m" * 480 + "@x>",
                   date="Mon, 1 Jan 2024 10:00:00 +0000 " + "d" * 450)
    # They arrived while away: dated after the connection's end (mail
    # dated before it came while mailwatch watched).
    away = time.time() + 2
    with srv.lock:
        first = srv.next_uid
        srv.messages.extend(Message(first + i, (), env, internaldate=away)
                            for i in range(N))
        srv.next_uid += N
    srv.conn(1).close()
    peak = 0
    end = time.monotonic() + mwtest._t(60)
    t = time.monotonic()
    # The messages are alike (one Message-ID, sender and subject): the
    # first 512 are copies of one another, not counted (copies.h).
    skipped = r"\d+ messages.*(away|skip)"
    while time.monotonic() < end and not h.log_lines(skipped):
        peak = max(peak, h.memory().get("VmRSS", 0))
        time.sleep(0.1)
    comment("  caught up after %.1f s" % (time.monotonic() - t))
    h.log_line(skipped, what)
    ok(not h.uids(), "%s: none announced (catch_up = skip)" % what,
       "%d hook runs" % len(h.uids()))
    h.reconnected(what, timeout=5)
    mem = h.memory()
    comment("  RSS sampled peak %d KiB, VmHWM %d KiB" %
            (peak, mem.get("VmHWM", 0)))
    h.memory_ok(what)
    uid = srv.add_message(subject="after the flood")
    h.announced([uid], what)
    h.finish(what)


def test_live_flood():
    what = "%d new messages at once" % N
    h = Hostile()
    srv = h.srv
    env = envelope(subject="S" * 500, from_name="N" * 500,
                   from_addr="a" * 200 + "@" + "b" * 200 + ".example",
                   message_id="<" + "m" * 480 + "@x>")
    with srv.lock:
        first = srv.next_uid
        srv.messages.extend(Message(first + i, (), env) for i in range(N))
        srv.next_uid += N
    t = time.monotonic()
    srv.notify_all()  # one "* N EXISTS" for all of them
    # One summary. The messages are alike (one Message-ID, sender and
    # subject): the first 512 are copies of one another, not counted
    # (copies.h), so it counts fewer than N.
    h.log_line(r"\d+ new messages: announced a summary", what, timeout=60)
    comment("  announced after %.1f s" % (time.monotonic() - t))
    h.memory_ok(what)
    h.mw.settle(1)
    n_hooks = len(h.uids())
    ok(n_hooks <= 1100, "%s: a bounded number of hook runs (%d)" %
       (what, n_hooks))
    uid = srv.add_message(subject="after the flood")
    h.mw.wait_hooks(n_hooks + 1, 10)
    h.mw.settle(1)
    ok(h.uids().count(uid) == 1 and len(h.uids()) == n_hooks + 1,
       "%s: the next message announced exactly once" % what,
       "last hook UIDs: %s" % h.uids()[-5:])
    ok(srv.connection_count() == 1, "%s: no reconnect needed" % what)
    h.finish(what)


mwtest.main(test_catch_up_flood, test_live_flood)
