#!/usr/bin/env python3
"""bench/latency.py: APPEND-to-hook-start latency of mailwatch against the
private Dovecot (tests/lib/mwtest.py), beside a bare IDLE client. NOTIFY is
hidden: every mailbox has its own IDLE connection, as with most servers
(bench/many.py times NOTIFY). With --popup, desktop notifications are on
too, and the time each Notify call reached the notification server is
printed beside.

Every message is appended over one persistent IMAP connection (implicit
TLS). Its arrival is timed twice, both on CLOCK_MONOTONIC:

  floor      APPEND sent -> "* N EXISTS" read by a bare IDLE client
             (mwtest.IdleClient, same mailbox, same server, time.monotonic()
             in its reader thread)
  mailwatch  APPEND sent -> first instruction of the on_new_mail hook: a
             tiny C program compiled here (static when possible) that reads
             CLOCK_MONOTONIC at its entry point and again in main() and
             writes both to a FIFO this script reads (HOOK_C).

overhead = mailwatch - floor, message by message: what mailwatch adds on top
of the server's own push (DONE + UID FETCH round trip, parsing, the spawn,
exec of the hook). Since the floor's push comes from another Dovecot
process than mailwatch's, the same messages are also timed against the push
on mailwatch's own connection, as the kernel received it (PushTap).

Dovecot delays IDLE pushes by 0.5 s after the mailbox changes (and
coalesces changes within that window), so each mailbox can take one message
per ~0.6 s if every message is to be its own IDLE cycle. To keep the run
short the messages go round-robin to several mailboxes (--mailboxes, one
bare client each, one mailwatch watcher each), one APPEND every --spacing
ms; a mailbox gets its next message only after the bare client and the hook
both saw the previous one.

Only figures are printed; nothing is asserted. Exit status 1 only when the
benchmark could not run. Runs the non-sanitizer ./mailwatch (build it with
"make mailwatch"; $MAILWATCH_BIN names another), at log_level = info,
without -v.

This file also holds what the other benchmarks share: the stamping hook
(build_hook, HookStamps), the percentile helpers and the process
bookkeeping (run_bench).
"""

import argparse
import collections
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import mwtest  # noqa: E402

DEFAULT_MAILWATCH = os.path.join(REPO, "mailwatch")
# $MAILWATCH_BIN (as in the tests) runs another build, e.g. an older commit's
MAILWATCH = os.environ.get("MAILWATCH_BIN") or DEFAULT_MAILWATCH

# ---------------------------------------------------------------------------
# The stamping hook

HOOK_C = r"""
/* Written by bench/latency.py. Usage: stamp FILE. Appends
 * "UID ENTRY MAIN MAILBOX\n" to FILE (a FIFO or a regular file) in one
 * write, where ENTRY and MAIN are CLOCK_MONOTONIC seconds taken
 *   ENTRY: at the program's entry point, the first instruction after
 *          execve, before the C library starts (built with STAMP_ENTRY,
 *          static, x86_64; otherwise the same as MAIN);
 *   MAIN:  first thing in main(), after the C library's start-up. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct timespec entry_ts;

#if defined(__x86_64__) && defined(STAMP_ENTRY)
/* Linked with -Wl,-e,stamp_entry: clock_gettime as a raw system call (no
 * vDSO before the C library is up), then on to _start with the registers
 * it reads (%rdx, %rsp) as the kernel left them. */
__asm__(".text\n"
	".globl stamp_entry\n"
	"stamp_entry:\n"
	"	mov %rdx, %r12\n"
	"	mov $228, %eax\n"	/* SYS_clock_gettime */
	"	mov $1, %edi\n"	/* CLOCK_MONOTONIC */
	"	lea entry_ts(%rip), %rsi\n"
	"	syscall\n"
	"	mov %r12, %rdx\n"
	"	jmp _start\n");
#endif

int
main(int argc, char **argv)
{
	struct timespec ts;
	const char *uid, *mbox;
	char buf[512];
	int fd, n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (argc < 2)
		return 2;
	if (entry_ts.tv_sec == 0)
		entry_ts = ts;
	uid = getenv("MAILWATCH_UID");
	mbox = getenv("MAILWATCH_MAILBOX");
	n = snprintf(buf, sizeof(buf), "%s %lld.%09ld %lld.%09ld %s\n",
		     uid ? uid : "-", (long long)entry_ts.tv_sec,
		     entry_ts.tv_nsec, (long long)ts.tv_sec, ts.tv_nsec,
		     mbox ? mbox : "-");
	if (n < 0 || n >= (int)sizeof(buf))
		return 3;
	/* O_NONBLOCK: a FIFO nobody reads any more fails instead of hanging */
	fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK |
			       O_CLOEXEC, 0600);
	if (fd < 0)
		return 1;
	if (write(fd, buf, n) != n)
		return 1;
	close(fd);
	return 0;
}
"""


def compile_c(source, out, extra=(), static=True, fallback=True):
    """Compiles source (text) to out with cc -O2, statically when static
    and the toolchain can. Returns True when the result is static; when a
    static build fails and not fallback, returns None."""
    src = out + ".c"
    with open(src, "w") as f:
        f.write(source)
    cc = os.environ.get("CC", "cc")
    if static:
        r = subprocess.run([cc, "-O2", "-static", "-o", out, src] +
                           list(extra), capture_output=True, timeout=60)
        if r.returncode == 0:
            return True
        if not fallback:
            return None
    subprocess.run([cc, "-O2", "-o", out, src] + list(extra), check=True,
                   capture_output=True, timeout=60)
    return False


def build_hook(directory):
    """Compiles the stamping hook into directory. Returns (path, how): how
    says what its ENTRY stamp is, for the benchmarks' output."""
    path = os.path.join(directory, "stamp")
    if platform.machine() == "x86_64" and compile_c(
            HOOK_C, path, ["-DSTAMP_ENTRY", "-Wl,-e,stamp_entry"],
            fallback=False):
        return path, ("C, static; hook start = its entry point, the first "
                      "instruction after execve")
    static = compile_c(HOOK_C, path)
    return path, ("C, %s; hook start = first thing in main()" %
                  ("static" if static else "dynamic"))


class HookStamps:
    """A FIFO the stamping hook writes to, read by a thread: .stamps maps
    (mailbox, uid) to the hook's start time (its entry point) and .mains to
    the time its main() began (CLOCK_MONOTONIC seconds); .runs counts the
    hook runs for each (mailbox, uid), .last is when the latest came."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "stamps.fifo")
        os.mkfifo(self.path, 0o600)
        # O_RDWR: the FIFO always has a reader and a writer, so no EOF
        # and the hook's non-blocking open never fails while we run.
        self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        self.stamps = {}
        self.mains = {}
        self.runs = collections.Counter()
        self.last = 0.0
        self.bad = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self):
        buf = b""
        while True:
            data = os.read(self.fd, 65536)
            buf += data
            *lines, buf = buf.split(b"\n")
            with self._cond:
                for line in lines:
                    if line == b"quit":
                        self._stop = True
                        self._cond.notify_all()
                        return
                    try:
                        uid, t, tm, mbox = line.decode().split(" ", 3)
                        self.stamps[(mbox, int(uid))] = float(t)
                        self.mains[(mbox, int(uid))] = float(tm)
                        self.runs[(mbox, int(uid))] += 1
                        self.last = time.monotonic()
                    except ValueError:
                        self.bad.append(line)
                self._cond.notify_all()

    def wait(self, key, timeout):
        """The stamp for key, or None after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self.stamps:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop:
                    return None
                self._cond.wait(left)
            return self.stamps[key]

    def count(self):
        with self._cond:
            return len(self.stamps)

    def forget(self):
        """Drops the stamps so far: a new server numbers UIDs from 1
        again, and its (mailbox, UID) must not find an old stamp."""
        with self._cond:
            self.stamps.clear()
            self.runs.clear()

    def close(self):
        if self.fd < 0:
            return
        os.write(self.fd, b"quit\n")
        self._thread.join(5)
        os.close(self.fd)
        self.fd = -1


class NotifyTimes:
    """The time each message's Notify reached the recording notification
    server (tests/lib/notifyd.c stamps each call with CLOCK_MONOTONIC),
    by the number in its subject "bench N"."""

    def __init__(self, nd):
        self.nd = nd
        self.times = {}

    def wait(self, i, timeout):
        """The time of message i's Notify, or None after timeout seconds."""
        def seen():
            for r in self.nd.records():
                m = re.search(r"\bbench (\d+)\b",
                              r.get("summary", "") + " " + r.get("body", ""))
                if m and "t" in r:
                    self.times.setdefault(int(m.group(1)), r["t"])
            return i in self.times
        if i not in self.times:
            mwtest.wait_until(seen, timeout, 0.01)
        return self.times.get(i)


def hook_command(hook, fifo):
    for p in (hook, fifo):
        if not re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", p):
            raise ValueError("unsafe path for a hook command: %r" % p)
    return "%s %s" % (hook, fifo)


# ---------------------------------------------------------------------------
# Figures

def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of values."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(1, -(-len(v) * p // 100))  # ceil
    return v[int(k) - 1]


def ms(x):
    return "%8.3f" % (x * 1000.0)


def row(label, values, cols=("median", "p90", "p99", "max")):
    out = []
    for c in cols:
        if c == "median":
            out.append(ms(percentile(values, 50)))
        elif c == "max":
            out.append(ms(max(values)))
        elif c == "min":
            out.append(ms(min(values)))
        else:
            out.append(ms(percentile(values, int(c[1:]))))
    return "  %-34s%s" % (label, " ".join(out))


def header(cols=("median", "p90", "p99", "max")):
    return "  %-34s%s   (ms)" % ("", " ".join("%8s" % c for c in cols))


def verdict(value, limit):
    return "met" if value <= limit else "MISSED"


# ---------------------------------------------------------------------------
# The server's push on mailwatch's own connection, from the kernel.

SO_TIMESTAMPNS = 35  # Linux; also the SCM_ type of its control message
ETH_P_IP = 0x0800
PACKET_HOST = 0


class PushTap:
    """Receive times, on CLOCK_MONOTONIC, of every TCP segment carrying
    data from server_port on the loopback interface, taken by the kernel
    (AF_PACKET socket with SO_TIMESTAMPNS, needs CAP_NET_RAW) as the
    segment is received, just before TCP queues it on the client's socket.
    .segments is a list of (time, destination port). Only the lengths and
    ports are read, never the (encrypted) data."""

    def __init__(self, server_port):
        self.server_port = server_port
        self.segments = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                                  socket.htons(ETH_P_IP))
        self.sock.bind(("lo", ETH_P_IP))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self):
        while not self._stop:
            try:
                pkt, anc, _, addr = self.sock.recvmsg(128, 64)
            except socket.timeout:
                continue
            except OSError:
                return
            # the kernel's time is CLOCK_REALTIME: moved to the monotonic
            # clock with the offset between the two read right now
            off = time.clock_gettime(time.CLOCK_REALTIME) - time.monotonic()
            # every loopback segment shows twice: as sent and as received
            if addr[2] != PACKET_HOST or len(pkt) < 20 or pkt[9] != 6:
                continue
            ihl = (pkt[0] & 15) * 4
            total = struct.unpack("!H", pkt[2:4])[0]
            if len(pkt) < ihl + 13:
                continue
            sport, dport = struct.unpack("!HH", pkt[ihl:ihl + 4])
            data = total - ihl - (pkt[ihl + 12] >> 4) * 4
            if sport != self.server_port or data <= 0:
                continue
            for level, kind, val in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", val[:16])
                    with self._lock:
                        self.segments.append((sec + nsec / 1e9 - off,
                                              dport))

    def between(self, port, t0, t1):
        """The first segment to port received in [t0, t1], or None."""
        with self._lock:
            for t, p in self.segments:
                if p == port and t0 <= t <= t1:
                    return t
        return None

    def last_port_before(self, ports, t0, t1):
        """The destination port (among ports) of the last segment in
        [t0, t1], or None."""
        with self._lock:
            got = [(t, p) for t, p in self.segments
                   if p in ports and t0 <= t <= t1]
        return max(got)[1] if got else None

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def tcp_ports(pid, remote_port):
    """Local ports of pid's TCP connections (IPv4) to remote_port."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    with open("/proc/%d/net/tcp" % pid) as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.split(":")[1], 16) == \
                    remote_port:
                ports.add(int(local.split(":")[1], 16))
    return ports


def push_floor(tap, ports, msgs):
    """For each message (mailbox, t_append, t_hook): the time Dovecot's
    push reached mailwatch's connection for that mailbox, or None.

    Which connection serves which mailbox is learnt from the messages
    themselves: the FETCH answer is the last segment before each hook, so
    per mailbox the port most often last before its hooks is its own.
    The push is then the first segment on that port from 0.25 s after the
    APPEND (Dovecot holds every push back 0.5 s) to the hook."""
    votes = {}
    for b, t_app, th in msgs:
        p = tap.last_port_before(ports, th - 0.05, th)
        if p is not None:
            votes.setdefault(b, {}).setdefault(p, 0)
            votes[b][p] += 1
    port_of = {b: max(v, key=v.get) for b, v in votes.items()}
    return [tap.between(port_of[b], t_app + 0.25, th) if b in port_of
            else None for b, t_app, th in msgs]


# ---------------------------------------------------------------------------
# --perf: where the time goes inside mailwatch, from syscall tracepoints.

# x86_64 syscall numbers
NR_WRITE, NR_SENDTO, NR_RECVFROM, NR_EPOLL_WAIT = 1, 44, 45, 232
NR_CLONE, NR_VFORK, NR_CLONE3 = 56, 58, 435
NR_FDATASYNC, NR_RENAME = 75, 82
NR_SPAWN = (NR_CLONE, NR_VFORK, NR_CLONE3)


class PerfTrace:
    """perf record of mailwatch's own syscalls (not its children's, whose
    start tracing would slow) on CLOCK_MONOTONIC, so the times compare with
    the benchmark's. Adds a few microseconds per syscall: for attribution,
    not for the figures."""

    EVENTS = ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit")

    def __init__(self, pid, directory):
        self.pid = pid
        self.data = os.path.join(directory, "perf.data")
        argv = ["perf", "record", "-q", "-k", "CLOCK_MONOTONIC",
                "--no-inherit", "-o", self.data, "-p", str(pid)]
        for e in self.EVENTS:
            argv += ["-e", e]
        self.err = os.path.join(directory, "perf.err")
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        time.sleep(1.0)  # attaching takes a moment
        if self.proc.poll() is not None:
            with open(self.err, "rb") as f:
                raise RuntimeError("perf record failed: %s" %
                                   f.read().decode(errors="replace")[-500:])

    @staticmethod
    def available():
        return shutil.which("perf") is not None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def events(self):
        r = subprocess.run(["perf", "script", "-i", self.data, "-F",
                            "pid,tid,time,event,trace"],
                           capture_output=True, text=True, timeout=120)
        rx = re.compile(r"\s*(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)")
        for line in r.stdout.splitlines():
            m = rx.match(line)
            if m:
                pid, tid, t, ev, rest = m.groups()
                yield int(tid), float(t), ev, rest

    def phases(self):
        """One dict per hook spawn that followed an IDLE wake-up:
        wake (the idle epoll_wait returned: EXISTS arrived), send (first
        sendto: DONE + UID FETCH), reply (last recvfrom with data before
        the spawn), clone (clone entered), spawned (clone returned: the
        child is on its way to its exec); plus "blocking": durations of fdatasync/rename
        calls."""
        main = self.pid
        out, blocking = [], []
        epoll_enter = None
        cyc = None
        enter_t = {}
        for tid, t, ev, rest in self.events():
            if tid != main:
                continue
            m = re.match(r"NR (\d+)(?: = (-?\d+))?", rest)
            if not m:
                continue
            nr = int(m.group(1))
            if ev.endswith("sys_enter"):
                enter_t[nr] = t
                if nr == NR_EPOLL_WAIT:
                    epoll_enter = t
                elif nr == NR_SENDTO and cyc and cyc.get("send") is None:
                    cyc["send"] = t
                elif nr in NR_SPAWN and cyc and \
                        cyc.get("send") is not None:
                    cyc["clone"] = t
                    out.append(cyc)
                continue
            ret = int(m.group(2) or 0)
            if nr in NR_SPAWN and out and \
                    "spawned" not in out[-1]:
                out[-1]["spawned"] = t
                cyc = None
            if nr == NR_EPOLL_WAIT and epoll_enter is not None and \
                    t - epoll_enter > 0.005 and ret > 0:
                cyc = {"wake": t, "send": None, "reply": None}
            elif nr == NR_RECVFROM and ret > 0 and cyc and \
                    cyc.get("send") is not None:
                cyc["reply"] = t
            elif nr in (NR_FDATASYNC, NR_RENAME) and nr in enter_t:
                blocking.append(t - enter_t[nr])
        full = [c for c in out if c.get("reply") and c.get("spawned")]
        return full, blocking


def print_phases(trace, hook_times=(),
                 cols=("min", "median", "p90", "p99", "max")):
    """Prints the --perf breakdown; hook_times (the hooks' start times)
    give each message's EXISTS read -> hook start as well."""
    import bisect
    trace.stop()
    phases, blocking = trace.phases()
    hooks = sorted(hook_times)
    for p in phases:
        i = bisect.bisect_left(hooks, p["clone"])
        if i < len(hooks) and hooks[i] - p["clone"] < 1.0:
            p["hook"] = hooks[i]
    if not phases:
        print("  perf: no complete wake -> spawn sequences found")
        return
    print("  inside mailwatch, from perf syscall tracepoints (%d messages; "
          "tracing adds a little):" % len(phases))
    print(header(cols))
    print(row("  EXISTS read -> DONE+FETCH sent",
              [p["send"] - p["wake"] for p in phases], cols))
    print(row("  DONE+FETCH sent -> reply read",
              [p["reply"] - p["send"] for p in phases], cols))
    print(row("  reply read -> clone (spawn)",
              [p["clone"] - p["reply"] for p in phases], cols))
    print(row("  clone -> it returns",
              [p["spawned"] - p["clone"] for p in phases], cols))
    timed = [p for p in phases if "hook" in p]
    if timed:
        print(row("  clone -> hook start",
                  [p["hook"] - p["clone"] for p in timed], cols))
        print(row("EXISTS read -> hook start (all)",
                  [p["hook"] - p["wake"] for p in timed], cols))
    if blocking:
        print(row("  fdatasync/rename (loop blocked)", blocking, cols))


# ---------------------------------------------------------------------------
# Running a benchmark: SIGTERM/SIGINT stop everything by pid.

class _Stop(BaseException):
    pass


def _on_signal(signum, frame):
    raise _Stop("signal %d" % signum)


def run_bench(fn, *args):
    """Runs fn(*args) and stops every harness process afterwards (by pid,
    newest first). Returns the exit status: fn's, or 1 if it raised."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    status = 1
    try:
        status = fn(*args) or 0
    except mwtest.Skip as e:
        print("  skipped: %s" % e, flush=True)
        status = 0
    except BaseException as e:  # noqa: B902 -- report, then clean up
        import traceback
        print("  benchmark failed: %s: %s" % (type(e).__name__, e),
              flush=True)
        traceback.print_exc()
        status = 1
    finally:
        mwtest.stop_all()
    sys.stdout.flush()
    return status


def need_mailwatch():
    if not os.access(MAILWATCH, os.X_OK):
        raise mwtest.Skip("%s is not built (make mailwatch)" % MAILWATCH)


STATUS_RX = re.compile(r"^STATUS=(\d+)/(\d+) mailboxes watched", re.M)


def wait_watched(mw, n, timeout, since=0):
    """Waits until a status line mailwatch sent to systemd after its
    since-th message says "n/n mailboxes watched" (with IDLE, NOTIFY or
    checked; at log_level = info the log names only the IDLE ones). mw
    must be started with sd_notify=True."""
    def all_watched():
        return any(int(m.group(1)) == n == int(m.group(2))
                   for msg in mw.sd_notify_messages()[since:]
                   for m in STATUS_RX.finditer(msg)) or not mw.running()
    return mwtest.wait_until(all_watched, timeout, 0.02) and mw.running()


# ---------------------------------------------------------------------------
# The benchmark

def dovecot_version():
    r = subprocess.run(["dovecot", "--version"], capture_output=True,
                       text=True, timeout=10)
    return (r.stdout.split() or ["?"])[0]


def _append(client, mailbox, raw):
    """APPENDs raw with LITERAL+; returns (t_sent, uid)."""
    cmd = (b"APPEND " + mwtest.quote(mailbox).encode() +
           b" {%d+}\r\n" % len(raw) + raw)
    t = time.monotonic()
    tag = client.send_command(cmd)
    status, line, _ = client.wait_tagged(tag, 10)
    if status != "OK":
        raise mwtest.ImapError("APPEND -> %r" % line)
    m = re.search(rb"\[APPENDUID \d+ (\d+)\]", line)
    if not m:
        raise mwtest.ImapError("no APPENDUID in %r" % line)
    return t, int(m.group(1))


def bench(opts):
    need_mailwatch()
    count, nbox, spacing = opts.count, opts.mailboxes, opts.spacing / 1000.0
    tmp = tempfile.mkdtemp(prefix="mwbench-latency-")
    trace = tap = None
    try:
        hook, how = build_hook(tmp)
        stamps = HookStamps(tmp)
        bus = notes = None
        if opts.popup:
            bus = mwtest.SessionBus()
            notes = NotifyTimes(mwtest.Notifyd(bus))
        # NOTIFY hidden: every mailbox has its IDLE connection, as with
        # most servers (many.py times NOTIFY).
        dc = mwtest.Dovecot(notify=False)
        boxes = ["bench%d" % i for i in range(nbox)]
        c = dc.client("alice")
        for b in boxes:
            c.command("CREATE " + mwtest.quote(b))
        mw = mwtest.Mailwatch({
            # burst = 0: every message its own notification.
            "general": {"notify": opts.popup, "burst": 0,
                        "log_level": "info",
                        "on_new_mail": hook_command(hook, stamps.path)},
            "account bench": dc.account("alice", mailboxes=boxes),
        }, args=(), binary=MAILWATCH, bus=bus, sd_notify=True)
        if not wait_watched(mw, len(boxes), 20):
            print(mw.log_tail(30))
            raise RuntimeError("mailwatch did not reach IDLE")
        bare = {b: dc.idle_client("alice", b) for b in boxes}
        n_exists = {b: bare[b].initial_exists for b in boxes}
        mw_ports = tcp_ports(mw.pid(), dc.imaps_port)
        try:
            tap = PushTap(dc.imaps_port)
        except OSError as e:
            print("  (no packet times: %s; needs CAP_NET_RAW)" % e)
        if opts.perf:
            trace = PerfTrace(mw.pid(), tmp)

        print("latency: APPEND -> hook start, Dovecot %s on 127.0.0.1 "
              "(implicit TLS, NOTIFY hidden: an IDLE connection per "
              "mailbox), %d messages round-robin over %d mailboxes, "
              "one APPEND every %.0f ms" % (
                  dovecot_version(),
                  count, nbox, spacing * 1000), flush=True)
        print("  hook: %s" % how)
        if notes:
            print("  notifications on (burst = 0), to the recording "
                  "notification server on a private session bus")

        samples = []  # (floor, mailwatch, hook main, mailbox, t_append)
        notified = []  # (floor, Notify received), with notifications on
        lost_bare = lost_hook = lost_notify = 0
        pending = {}  # mailbox -> (t_append, uid, n, i)

        def settle(b, timeout=10):
            nonlocal lost_bare, lost_hook, lost_notify
            p = pending.pop(b, None)
            if p is None:
                return
            t_app, uid, n, i = p
            ex = bare[b].wait_exists(at_least=n, timeout=timeout)
            th = stamps.wait((b, uid), timeout)
            tn = notes.wait(i, timeout) if notes else None
            if ex is None:
                lost_bare += 1
            if th is None:
                lost_hook += 1
            if notes and tn is None:
                lost_notify += 1
            if ex is not None and th is not None:
                samples.append((ex[0] - t_app, th - t_app,
                                stamps.mains[(b, uid)] - t_app, b, t_app))
            if ex is not None and tn is not None:
                notified.append((ex[0] - t_app, tn - t_app))

        t_start = time.monotonic()
        deadline = t_start + opts.max_seconds
        last = 0.0
        for i in range(count):
            b = boxes[i % nbox]
            settle(b)
            if time.monotonic() > deadline:
                print("  (stopped after %d messages: --max-seconds)" % i)
                break
            wait = last + spacing - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            raw = mwtest.make_message(subject="bench %d" % i,
                                      body="message %d\n" % i)
            t_app, uid = _append(c, b, raw)
            last = t_app
            n_exists[b] += 1
            pending[b] = (t_app, uid, n_exists[b], i)
        for b in boxes:
            settle(b)
        elapsed = time.monotonic() - t_start
        if trace:
            trace.stop()
        if tap:
            tap.close()
        c.logout()
        rc_mw = mw.stop()
        stamps.close()

        if not samples:
            print("  no samples (lost: bare %d, hook %d)" % (lost_bare,
                                                            lost_hook))
            print(mw.log_tail(30))
            return 1
        floor = [f for f, *_ in samples]
        mwl = [m for _, m, *_ in samples]
        over = [m - f for f, m, *_ in samples]
        print("  %d messages measured in %.1f s (lost: bare client %d, "
              "hook %d); mailwatch exit status %s" % (
                  len(samples), elapsed, lost_bare, lost_hook, rc_mw))
        cols = ("min", "median", "p90", "p99", "max")
        print(header(cols))
        print(row("floor: bare IDLE client EXISTS", floor, cols))
        print(row("mailwatch: hook start", mwl, cols))
        print(row("overhead = mailwatch - floor", over, cols))
        print(row("  (to hook main: + C start-up)",
                  [hm - f for f, _, hm, *_ in samples], cols))
        med, p99 = percentile(over, 50), percentile(over, 99)
        print("  target: overhead median <= 2 ms: %s (%.3f ms); "
              "p99 <= 10 ms: %s (%.3f ms)" % (
                  verdict(med, 0.002), med * 1000,
                  verdict(p99, 0.010), p99 * 1000), flush=True)
        if notes:
            print_notified(notified, lost_notify, cols)
        if tap:
            print_push_floor(tap, mw_ports, samples, cols)
        if trace:
            print_phases(trace, stamps.stamps.values())
        return 0
    finally:
        if trace:
            trace.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def print_notified(notified, lost, cols):
    """The same messages' notifications: when each Notify call reached the
    notification server, against the bare client's EXISTS."""
    print("  notifications: %d Notify calls timed (lost %d):" % (
        len(notified), lost))
    if not notified:
        return
    over = [tn - f for f, tn in notified]
    print(header(cols))
    print(row("mailwatch: Notify received", [tn for _, tn in notified],
              cols))
    print(row("overhead = Notify - floor", over, cols))
    med = percentile(over, 50)
    print("  target: notification overhead median <= 2 ms: %s (%.3f ms; "
          "drawing the popup is the notification server's own time on "
          "top)" % (verdict(med, 0.002), med * 1000), flush=True)


def print_push_floor(tap, ports, samples, cols):
    """The same messages against the push on mailwatch's own connection
    (PushTap): what mailwatch adds with no second Dovecot process in the
    comparison."""
    pushes = push_floor(tap, ports, [(b, t_app, t_app + m)
                                     for _, m, _, b, t_app in samples])
    pairs = [(p - t_app, f, m) for p, (f, m, _, _, t_app) in
             zip(pushes, samples) if p is not None]
    print("  the push on mailwatch's own connection, as the kernel "
          "received it (%d of %d messages):" % (len(pairs), len(samples)))
    if not pairs:
        return
    print(header(cols))
    print(row("push reached mailwatch's socket", [p for p, _, _ in pairs],
              cols))
    print(row("hook start - that push", [m - p for p, _, m in pairs],
              cols))
    print(row("bare client's EXISTS - that push",
              [f - p for p, f, _ in pairs], cols))
    print("  (the last row is the two Dovecot processes' and the bare "
          "client's own jitter, which the overhead above also carries)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200,
                    help="messages to time (default 200)")
    ap.add_argument("--mailboxes", type=int, default=4,
                    help="mailboxes the messages rotate over (default 4)")
    ap.add_argument("--spacing", type=float, default=150,
                    help="ms between APPENDs (default 150)")
    ap.add_argument("--max-seconds", type=float, default=150,
                    help="stop appending after this long (default 150)")
    ap.add_argument("--popup", action="store_true",
                    help="desktop notifications on too, to the recording "
                    "notification server on a private session bus: also "
                    "prints when each Notify call reached it")
    ap.add_argument("--perf", action="store_true",
                    help="also trace mailwatch with perf and print where "
                    "the time goes (slightly slower)")
    opts = ap.parse_args()
    if opts.perf and not PerfTrace.available():
        ap.error("--perf needs perf")
    if opts.count < 1 or opts.mailboxes < 1 or opts.spacing < 0:
        ap.error("bad --count, --mailboxes or --spacing")
    return run_bench(bench, opts)


if __name__ == "__main__":
    sys.exit(main())
