#!/usr/bin/env python3
"""bench/status.py: the D-Bus interface (org.mailwatch.Mailwatch1) under a
burst, against the private Dovecot and a private session bus, with the
non-sanitizer ./mailwatch watching INBOX.

Prints:
  - the signals a burst of --count messages (default 1000, APPENDed
    pipelined on one connection) makes mailwatch send: PropertiesChanged
    (coalesced: the target is a handful, not one per message) and NewMail
    (one per message announced one by one), counted by dbus-monitor;
  - how long after the last APPEND's answer `Unseen` showed them all;
  - Private_Dirty of mailwatch idle with the interface on a bus, and with
    no session bus at all (the interface off), and the same after the
    burst.

Only figures are printed; nothing is asserted.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import latency  # noqa: E402  (shares the process handling)
import memory  # noqa: E402  (smaps_rollup sampling)
from latency import mwtest  # noqa: E402

MIB = 1024.0 * 1024.0


def unseen(bus):
    """The Unseen property, or None."""
    r = subprocess.run(
        ["busctl", "--user", "get-property", "org.mailwatch.Mailwatch",
         "/org/mailwatch/Mailwatch", "org.mailwatch.Mailwatch1", "Unseen"],
        env=bus.env(), capture_output=True, text=True, timeout=10)
    parts = r.stdout.split()
    return int(parts[1]) if r.returncode == 0 and len(parts) == 2 else None


def start(dc, bus, label):
    sections = {"general": {"notify": False, "log_level": "info",
                            "burst": 0},
                "account bench": dc.account("alice", mailboxes=["INBOX"])}
    mw = mwtest.Mailwatch(sections, bus=bus, args=(),
                          binary=latency.MAILWATCH, sd_notify=True)
    if not latency.wait_watched(mw, 1, 60):
        print(mw.log_tail(20))
        raise RuntimeError("%s: mailwatch did not reach IDLE" % label)
    time.sleep(1.0)
    return mw


def burst(dc, n):
    c = dc.client("alice")
    for i in range(n):
        raw = mwtest.make_message(subject="burst %d" % i)
        c.command(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
    c.logout()


def bench(opts):
    latency.need_mailwatch()
    tmp = tempfile.mkdtemp(prefix="mwbench-status-")
    monitor = None
    try:
        dc = mwtest.Dovecot(
            extra_conf="imap_idle_notify_interval = 10 mins\n")
        print("status: ./mailwatch on INBOX against Dovecot %s, a private "
              "session bus, a burst of %d messages" % (
                  latency.dovecot_version(), opts.count), flush=True)

        mw = start(dc, None, "no bus")
        off = memory.sample(mw.pid())
        print("  interface off (no bus):   idle %s" % memory.fmt(off))
        mw.stop()

        bus = mwtest.SessionBus()
        mw = start(dc, bus, "bus")
        on = memory.sample(mw.pid())
        print("  interface on:             idle %s" % memory.fmt(on))
        log = os.path.join(tmp, "monitor")
        with open(log, "wb") as out:
            monitor = subprocess.Popen(
                ["dbus-monitor", "--address", bus.address,
                 "type='signal',path='/org/mailwatch/Mailwatch'"],
                stdout=out, stderr=subprocess.DEVNULL,
                start_new_session=True)
        time.sleep(0.5)
        before = unseen(bus) or 0
        burst(dc, opts.count)
        t0 = time.monotonic()
        done = mwtest.wait_until(
            lambda: (unseen(bus) or 0) >= before + opts.count, 120)
        took = time.monotonic() - t0
        time.sleep(1.0)  # the last coalesced signal
        after = memory.sample(mw.pid())
        with open(log) as f:
            text = f.read()
        changed = text.count("member=PropertiesChanged")
        newmail = text.count("member=NewMail")
        print("  burst: Unseen %s %d after the last APPEND's answer "
              "(%.2f s)" % ("reached" if done else "did NOT reach",
                            before + opts.count, took))
        print("  signals for %d messages: %d PropertiesChanged (target: a "
              "handful), %d NewMail" % (opts.count, changed, newmail))
        print("  interface on, after:      %s" % memory.fmt(after))
        mw.stop()
        return 0
    finally:
        if monitor is not None:
            monitor.terminate()
            monitor.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000,
                    help="messages in the burst (default 1000)")
    opts = ap.parse_args()
    if opts.count < 1:
        ap.error("bad --count")
    return latency.run_bench(bench, opts)


if __name__ == "__main__":
    sys.exit(main())
