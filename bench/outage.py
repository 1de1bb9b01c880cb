#!/usr/bin/python3
"""How long mailwatch takes to be back watching after a server outage.

Runs ./mailwatch (the optimised build) against the private Dovecot with a
few mailboxes (INBOX in IDLE, the others followed with NOTIFY), stops
Dovecot for --outage seconds (default 15), starts it again on the same
ports, and prints the time from the server being started again (its own
start-up included) to mailwatch's status line saying that every one is
watched again. Repeats --rounds times. Prints figures, asserts
nothing.

    bench/outage.py [--outage 15] [--rounds 3] [--mailboxes 4]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "lib"))
import mwtest  # noqa: E402
import latency  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outage", type=float, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mailboxes", type=int, default=4)
    args = ap.parse_args()

    dc = mwtest.Dovecot()
    names = ["INBOX"] + ["Box%d" % i for i in range(1, args.mailboxes)]
    for n in names[1:]:
        dc.create_mailbox("alice", n)
    mw = mwtest.Mailwatch(
        {"account a": dc.account("alice", mailboxes=names)}, args=(),
        binary=os.path.join(REPO, "mailwatch"), sd_notify=True)
    if not latency.wait_watched(mw, len(names), 30):
        print("mailwatch did not watch them all; log:\n" +
              mw.log()[-2000:])
        return 1
    delays = []
    for r in range(args.rounds):
        dc.stop_server()
        time.sleep(args.outage)
        since = len(mw.sd_notify_messages())
        # Counted from starting Dovecot, so its own start-up (a few
        # hundred ms) is included: the figure errs on the slow side.
        back = time.monotonic()
        dc.start()
        ok = latency.wait_watched(mw, len(names), args.outage + 330, since)
        took = time.monotonic() - back
        delays.append(took)
        print("round %d: %d mailboxes watched again %.2f s after starting "
              "the server%s" % (r + 1, len(names), took,
                              "" if ok else " (timed out)"))
    print("outage %.0f s, %d rounds: median %.2f s, max %.2f s "
          "(target: <= 3 s after the server is back)" %
          (args.outage, len(delays), statistics.median(delays),
           max(delays)))
    mw.stop()
    dc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
