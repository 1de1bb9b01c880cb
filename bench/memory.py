#!/usr/bin/env python3
"""bench/memory.py: mailwatch's memory and idle wake-ups against the private
Dovecot (tests/lib/mwtest.py), non-sanitizer ./mailwatch at log_level =
info, implicit TLS.

Memory is read from /proc/PID/smaps_rollup: Rss (resident) and
Private_Dirty (the pages this process alone has written: heap, stacks,
library data; what it really costs). Each figure is the last of a few
samples taken once mailwatch's status line said every mailbox was watched
(Dovecot offers NOTIFY: the first mailbox in IDLE, the others followed
over the same connection, with a second for fetching), and again after
mail was delivered (so the FETCH, event and hook paths ran once at least).

Runs, each a fresh mailwatch:
  1 mailbox,    ca_file = the test CA
  50 mailboxes, ca_file = the test CA         (+ wake-ups, + largest maps)
  1 and 50 mailboxes, no ca_file: the system trust store, the default a
    user gets (SSL_CERT_FILE = the system bundle plus the test CA, so the
    same number of certificates is parsed as with /etc/ssl/certs)

Idle wake-ups: context switches (voluntary + involuntary, summed over every
thread in /proc/PID/task) and CPU time over a --idle-window (default 20 s)
with 50 idle mailboxes, from 10 s after they were all watched (past the
start-up's NOTIFY re-set); ideally 0. Dovecot's IDLE keepalive ("* OK Still
here", every 2 min by default) is moved to 10 min here so that the window
measures mailwatch alone.

Only figures are printed; nothing is asserted.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import latency  # noqa: E402  (shares the hook and process handling)
from latency import mwtest  # noqa: E402

MIB = 1024.0 * 1024.0
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt",
                  "/etc/pki/tls/certs/ca-bundle.crt",
                  "/etc/ssl/cert.pem")


SETTLE = 10  # seconds after start-up before the wake-ups are counted


def rollup(pid):
    """{field: bytes} from /proc/pid/smaps_rollup."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * 1024
    return out


def sample(pid, n=3, interval=0.5):
    """The last of n smaps_rollup samples interval s apart."""
    r = None
    for i in range(n):
        if i:
            time.sleep(interval)
        r = rollup(pid)
    return r


def largest_maps(pid, n=6):
    """[(Private_Dirty bytes, mapping name)], largest first, mappings of
    the same name summed."""
    sums, name = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split(None, 5)
                name = parts[5].strip() if len(parts) > 5 else "[anon]"
                name = os.path.basename(name) if name.startswith("/") \
                    else name
            else:
                m = re.match(r"Private_Dirty:\s+(\d+) kB", line)
                if m and name is not None:
                    sums[name] = sums.get(name, 0) + int(m.group(1)) * 1024
    return sorted(((v, k) for k, v in sums.items() if v), reverse=True)[:n]


def task_counters(pid):
    """(context switches summed over threads, threads, CPU ticks)."""
    switches, threads = 0, 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        threads += 1
        for key in ("voluntary_ctxt_switches",
                    "nonvoluntary_ctxt_switches"):
            m = re.search(r"^%s:\s+(\d+)" % key, st, re.M)
            if m:
                switches += int(m.group(1))
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return switches, threads, ticks


def fmt(r):
    return "Rss %6.2f MiB   Private_Dirty %6.2f MiB" % (
        r.get("Rss", 0) / MIB, r.get("Private_Dirty", 0) / MIB)


def system_bundle(dc, tmp):
    """A CA file with the system's trusted certificates plus the test CA,
    or None when there is no system bundle."""
    for b in SYSTEM_BUNDLES:
        if os.path.exists(b):
            path = os.path.join(tmp, "bundle.pem")
            with open(path, "wb") as out:
                for src in (b, dc.ca_file):
                    with open(src, "rb") as f:
                        out.write(f.read().rstrip(b"\n") + b"\n")
            with open(b, "rb") as f:
                n = f.read().count(b"BEGIN CERTIFICATE")
            return path, n
    return None, 0


def run_one(dc, tmp, hook, label, boxes, opts, system_store=None,
            deliver=0, idle_window=0):
    """Starts mailwatch on boxes, prints its memory when idle (and after
    deliver messages per mailbox, and its wake-ups over idle_window s),
    stops it. Returns the idle and after-mail samples."""
    stamps = os.path.join(tmp, "stamps-%s" % re.sub(r"\W", "_", label))
    sections = {"general": {"notify": False, "log_level": "info",
                            "on_new_mail": latency.hook_command(hook,
                                                                stamps)}}
    acct = dc.account("alice", mailboxes=boxes)
    if system_store:
        del acct["ca_file"]
    sections["account bench"] = acct
    env = {}
    if system_store:
        env["SSL_CERT_FILE"] = system_store
        env["SSL_CERT_DIR"] = os.path.join(tmp, "no-cert-dir")
    mw = mwtest.Mailwatch(sections, args=(), binary=latency.MAILWATCH,
                          env=env, sd_notify=True)
    try:
        t = time.monotonic()
        if not latency.wait_watched(mw, len(boxes), 60):
            print(mw.log_tail(20))
            raise RuntimeError("%s: mailwatch did not reach IDLE" % label)
        up = time.monotonic() - t
        time.sleep(1.0)
        pid = mw.pid()
        idle = sample(pid)
        print("  %-30s idle:       %s   (all idle after %.1f s)" % (
            label, fmt(idle), up), flush=True)

        if idle_window:
            # Past the start-up's NOTIFY re-set (its STATUS pushes set
            # NOTIFY again once, about 5 s in; see docs/design.md).
            time.sleep(SETTLE)
            s0, threads, c0 = task_counters(pid)
            time.sleep(idle_window)
            s1, threads, c1 = task_counters(pid)
            hz = os.sysconf("SC_CLK_TCK")
            print("  %-30s wake-ups:   %d context switches in %.0f s "
                  "idle (%d thread%s), CPU %.2f s" % (
                      label, s1 - s0, idle_window, threads,
                      "" if threads == 1 else "s", (c1 - c0) / hz),
                  flush=True)

        after = None
        if deliver:
            c = dc.client("alice")
            n = 0
            for i in range(deliver):
                for b in boxes:
                    raw = mwtest.make_message(subject="mem %d %s" % (i, b))
                    c.command(b"APPEND " + mwtest.quote(b).encode() +
                              b" {%d+}\r\n" % len(raw) + raw)
                    n += 1
            c.logout()

            def hooks():
                try:
                    with open(stamps) as f:
                        return sum(1 for _ in f)
                except OSError:
                    return 0
            mwtest.wait_until(lambda: hooks() >= n, 60)
            # Let the batches finish (state files, hook exits), then idle.
            time.sleep(1.5)
            after = sample(pid)
            print("  %-30s after mail: %s   (%d messages, %d hooks ran)" % (
                label, fmt(after), n, hooks()), flush=True)
        if opts.maps:
            maps = largest_maps(pid)
            print("    largest Private_Dirty: " + ", ".join(
                "%s %.0f KiB" % (k, v / 1024.0) for v, k in maps))
        return idle, after
    finally:
        mw.stop()


def bench(opts):
    latency.need_mailwatch()
    tmp = tempfile.mkdtemp(prefix="mwbench-memory-")
    try:
        hook, _ = latency.build_hook(tmp)
        dc = mwtest.Dovecot(
            extra_conf="imap_idle_notify_interval = 10 mins\n")
        many = ["box%02d" % i for i in range(opts.mailboxes)]
        c = dc.client("alice")
        for b in many:
            c.command("CREATE " + mwtest.quote(b))
        c.logout()
        print("memory: ./mailwatch against Dovecot %s on 127.0.0.1 "
              "(implicit TLS), log_level = info, no notifications" %
              latency.dovecot_version(), flush=True)

        one, one_after = run_one(dc, tmp, hook, "1 mailbox", ["INBOX"],
                                 opts, deliver=10)
        run_one(dc, tmp, hook, "%d mailboxes" % len(many), many, opts,
                deliver=1, idle_window=opts.idle_window)
        bundle, ncerts = system_bundle(dc, tmp)
        if bundle:
            print("  system trust store: %d certificates (plus the test CA)"
                  % ncerts)
            run_one(dc, tmp, hook, "1 mailbox, system store", ["INBOX"],
                    opts, system_store=bundle)
            run_one(dc, tmp, hook, "%d mailboxes, system store" % len(many),
                    many, opts, system_store=bundle)
        else:
            print("  (no system CA bundle found: system-store runs skipped)")
        pd = max(one["Private_Dirty"], one_after["Private_Dirty"])
        print("  target: <= 3 MiB private dirty with 1 mailbox: %s "
              "(%.2f MiB, the larger of idle and after mail)" % (
                  latency.verdict(pd, 3 * MIB), pd / MIB), flush=True)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mailboxes", type=int, default=50,
                    help="mailboxes in the large runs (default 50)")
    ap.add_argument("--idle-window", type=float, default=20,
                    help="seconds to count idle wake-ups (default 20)")
    ap.add_argument("--no-maps", dest="maps", action="store_false",
                    help="do not print the largest private dirty mappings")
    opts = ap.parse_args()
    if opts.mailboxes < 1 or opts.idle_window < 0:
        ap.error("bad --mailboxes or --idle-window")
    return latency.run_bench(bench, opts)


if __name__ == "__main__":
    sys.exit(main())
