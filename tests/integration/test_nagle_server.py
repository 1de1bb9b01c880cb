#!/usr/bin/python3
"""A server that answers in small separate writes with Nagle's algorithm on
(Cyrus does): the tagged OK that ends IDLE, then the UID FETCH reply. Its
second write waits until mailwatch acknowledges the first, so a client
that delays its ACKs (Linux: 40 ms at least) adds that to every message.
mailwatch acknowledges at once: each OK is acknowledged well inside the
delayed-ACK time, and every message is announced. (The bound is Linux's
delayed-ACK minimum, not a speed: a quick ACK leaves on the server's own
send, on loopback, whatever the load.)"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
from fakeimap import FakeImap, Hostile  # noqa: E402

DELAYED_ACK_MIN = 0.040


def main():
    what = "Nagle server, two writes"
    srv = FakeImap(password=Hostile.PASSWORD, nagle=True)
    h = Hostile(srv=srv)
    uids = []
    for i in range(5):
        uids.append(srv.add_message(subject="nagle %d" % i))
        h.mw.wait_hooks(i + 1, 10)
        h.srv.wait_idle(10, 1)
    h.announced(uids, what)
    waits = srv.ack_waits
    mwtest.comment("  ACK waits: %s ms" % ", ".join(
        "%.2f" % (w * 1e3) for w in waits))
    ok(len(waits) == 5 and max(waits) < DELAYED_ACK_MIN / 2,
       "%s: each IDLE's OK acknowledged at once, not after the "
       "delayed-ACK time" % what, repr(waits))
    h.finish(what)


mwtest.main(main)
