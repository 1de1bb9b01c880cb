#!/usr/bin/env python3
"""bench/fakeserver.py: mailwatch's own path, EXISTS -> hook start, against
a scripted IMAP server that answers at once, in one write or like Cyrus.

The server (FakeImapServer, Python standard library, plain TCP on
127.0.0.1; mailwatch runs with tls = none) greets with its capabilities,
accepts LOGIN and AUTHENTICATE PLAIN (with or without SASL-IR), answers
EXAMINE/SELECT with UIDVALIDITY and UIDNEXT, IDLE, DONE, UID FETCH (UID,
FLAGS, ENVELOPE), NOOP and LOGOUT. inject(mailbox) adds a message and, when
a connection idles on that mailbox, sends "* N EXISTS" right away, taking
time.monotonic() just before the send. Every socket has TCP_NODELAY and
every batch of replies goes out in one sendall(). FakeImapServer(nagle=True)
answers like Cyrus 3.6 instead: no TCP_NODELAY, so Nagle's algorithm holds
a small write while an earlier one is unacknowledged, and every reply goes
out in its own send() as soon as its command is read: the tagged OK that
ends IDLE, then the FETCH responses, then UID FETCH's tagged OK.

For each message the benchmark records, all on CLOCK_MONOTONIC:

  t0  EXISTS about to be sent (server)
  t1  DONE + UID FETCH received (server, right after recv returns)
  t2  the FETCH reply sent (server, right after sendall returns)
  t3  first instruction of the hook (the C stamping hook of latency.py)

and prints t3-t0 (the figure: mailwatch's path alone, target median <= 1
ms) split into mailwatch's reaction to EXISTS (t1-t0: wake-up, TLS-less
read, parse, DONE + UID FETCH written, plus one loopback hop), the Python
server's own reply time (t2-t1) and the rest (t3-t2: reading and parsing
the reply, the new-mail event, the spawn, exec of the hook). Messages
are injected one at a time, each after mailwatch is idling again plus a
short gap, so each is its own IDLE cycle. The same is timed against the
Cyrus-like server (--nagle-count messages, a second account of the same
mailwatch), one message each in turn so that other load on the machine falls
on both alike, and the difference of the two medians is printed: a client
that delays its ACKs (Linux: 40 ms at least) stalls every reply of that
server behind its first write.

Then, in --rounds bursts, "* N EXISTS" goes to --burst other mailboxes (one
connection each) at once; printed are each message's EXISTS -> hook start
and the first EXISTS -> last hook start of each round: how long the one
event loop takes to serve them all (each batch spawns its hook and writes
its state file on the loop).

It also times the spawn of the same hook from a small C program that
starts it as mailwatch does (launch() of build/libmailwatch.a: pipe
for output, /dev/null stdin, own process group, signal mask reset): the
floor of any hook start on this machine.

Only figures are printed; nothing is asserted.
"""

import argparse
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import latency  # noqa: E402  (shares the hook, stats and process handling)
from latency import mwtest  # noqa: E402
import fakeimap  # noqa: E402  (tests/lib: IMAP argument parsing)

CAPS = "IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN IDLE UIDPLUS ENABLE"


class _Box:
    def __init__(self, uidvalidity):
        self.uidvalidity = uidvalidity
        self.uids = []
        self.uidnext = 1


class _Conn:
    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.send_lock = threading.Lock()
        self.mailbox = None
        self.idle_tag = None   # while in IDLE
        self.auth_tag = None   # AUTHENTICATE waiting for its response
        self.literal_tag = None
        self.closed = False


class FakeImapServer:
    """A scripted IMAP server on 127.0.0.1 (see the module docstring).
    fetch_times[(mailbox, uid)] = (t1, t2) for every UID FETCH answer.
    nagle=True answers like Cyrus: Nagle's algorithm on (no TCP_NODELAY)
    and every reply in its own send() as soon as its command is read; the
    FETCH responses and the tagged OK of a UID FETCH are two sends."""

    def __init__(self, user="bench", password="bench",
                 mailboxes=("INBOX",), uidvalidity=1700000000, nagle=False):
        self.user, self.password = user, password
        self.nagle = nagle
        self.boxes = {m: _Box(uidvalidity) for m in mailboxes}
        self.lock = threading.Condition()
        self.conns = []
        self.fetch_times = {}
        self.commands = 0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self._stop = False
        self._threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def __repr__(self):
        return "<FakeImapServer 127.0.0.1:%d>" % self.port

    # -- the benchmark's side
    def inject(self, mailbox):
        """Adds a message to mailbox and pushes "* N EXISTS" to every
        connection idling on it. Returns (uid, t0): t0 is the monotonic
        time just before the first send, or None when nobody idled."""
        with self.lock:
            box = self.boxes[mailbox]
            uid = box.uidnext
            box.uidnext += 1
            box.uids.append(uid)
            line = b"* %d EXISTS\r\n" % len(box.uids)
            targets = [c for c in self.conns
                       if c.mailbox == mailbox and c.idle_tag is not None]
        t0 = None
        for c in targets:
            with c.send_lock:
                if t0 is None:
                    t0 = time.monotonic()
                try:
                    c.sock.sendall(line)
                except OSError:
                    pass
        return uid, t0

    def wait_idling(self, mailbox, timeout):
        """Waits until some connection idles on mailbox."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not any(c.mailbox == mailbox and c.idle_tag is not None
                          for c in self.conns):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def wait_fetch(self, key, timeout):
        """(t1, t2) of the UID FETCH that returned key, or None."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while key not in self.fetch_times:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)
            return self.fetch_times[key]

    def stop(self):
        if self._stop:
            return
        self._stop = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.sock.close()
        for t in self._threads:
            t.join(5)

    # -- the server's side
    def _accept(self):
        while not self._stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            if not self.nagle:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(self, s)
            with self.lock:
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, c):
        try:
            c.sock.sendall(b"* OK [CAPABILITY " + CAPS.encode() +
                           b"] fake IMAP server ready\r\n")
            buf = b""
            while not self._stop:
                data = c.sock.recv(65536)
                t1 = time.monotonic()
                if not data:
                    break
                buf += data
                out = []
                fetched = []
                sent = False
                while True:
                    line, buf = self._take_command(c, buf, out)
                    if line is None:
                        break
                    self._command(c, line, out, fetched)
                    if self.nagle and out:
                        self._send(c, out)
                        sent, out = True, []
                if out:
                    self._send(c, out)
                    sent = True
                if sent:
                    t2 = time.monotonic()
                    with self.lock:
                        for key in fetched:
                            self.fetch_times[key] = (t1, t2)
                        self.lock.notify_all()
                if c.closed:
                    break
        except OSError:
            pass
        finally:
            with self.lock:
                if c in self.conns:
                    self.conns.remove(c)
                self.lock.notify_all()
            c.sock.close()

    def _send(self, c, out):
        """Sends the replies in out: one sendall, or with nagle one each."""
        with c.send_lock:
            for chunk in (out if self.nagle else [b"".join(out)]):
                c.sock.sendall(chunk)

    @staticmethod
    def _take_command(c, buf, out):
        """One whole command line with its literals inlined, or None.
        Answers a synchronizing literal with "+"."""
        pos = 0
        while True:
            i = buf.find(b"\r\n", pos)
            if i < 0:
                return None, buf
            m = re.search(rb"\{(\d+)(\+?)\}$", buf[pos:i])
            if not m:
                return buf[:i], buf[i + 2:]
            n = int(m.group(1))
            if len(buf) < i + 2 + n:
                if not m.group(2) and c.literal_tag != i:
                    c.literal_tag = i
                    out.append(b"+ go ahead\r\n")
                return None, buf
            pos = i + 2 + n

    def _command(self, c, raw, out, fetched):
        self.commands += 1
        line = raw.decode("utf-8", "replace")
        if c.auth_tag is not None:
            tag, c.auth_tag = c.auth_tag, None
            self._auth_plain(c, tag, line, out)
            return
        if c.idle_tag is not None:
            if line.upper() == "DONE":
                out.append(b"%s OK Idle completed\r\n" % c.idle_tag.encode())
                with self.lock:
                    c.idle_tag = None
            else:
                out.append(b"* BAD expected DONE\r\n")
            return
        tag, _, rest = line.partition(" ")
        verb, _, args = rest.partition(" ")
        verb = verb.upper()
        if verb == "UID":
            sub, _, args = args.partition(" ")
            verb = "UID " + sub.upper()
        t = tag.encode()
        if verb == "CAPABILITY":
            out.append(b"* CAPABILITY " + CAPS.encode() + b"\r\n" + t +
                       b" OK done\r\n")
        elif verb == "NOOP":
            out.append(t + b" OK NOOP done\r\n")
        elif verb == "LOGIN":
            a = fakeimap.tokens(args)
            if a[:2] == [self.user, self.password]:
                out.append(t + b" OK [CAPABILITY " + CAPS.encode() +
                           b"] Logged in\r\n")
            else:
                out.append(t + b" NO [AUTHENTICATIONFAILED] bad login\r\n")
        elif verb == "AUTHENTICATE":
            a = args.split()
            if not a or a[0].upper() != "PLAIN":
                out.append(t + b" NO unsupported mechanism\r\n")
            elif len(a) > 1:
                self._auth_plain(c, tag, a[1], out)
            else:
                c.auth_tag = tag
                out.append(b"+ \r\n")
        elif verb in ("EXAMINE", "SELECT"):
            name = (fakeimap.tokens(args) or [""])[0]
            box = self.boxes.get(name)
            if box is None:
                out.append(t + b" NO [NONEXISTENT] no such mailbox\r\n")
                return
            with self.lock:
                c.mailbox = name
                n = len(box.uids)
                uidnext = box.uidnext
            out.append(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
                       b"\\Draft)\r\n* OK [PERMANENTFLAGS ()] none\r\n"
                       b"* %d EXISTS\r\n* 0 RECENT\r\n"
                       b"* OK [UIDVALIDITY %d] UIDs valid\r\n"
                       b"* OK [UIDNEXT %d] Predicted next UID\r\n"
                       % (n, box.uidvalidity, uidnext) + t +
                       (b" OK [READ-ONLY] %s completed\r\n" % verb.encode()))
        elif verb == "IDLE":
            out.append(b"+ idling\r\n")
            with self.lock:
                c.idle_tag = tag
        elif verb in ("UID FETCH", "FETCH"):
            self._fetch(c, t, verb == "UID FETCH", args, out, fetched)
        elif verb == "LOGOUT":
            out.append(b"* BYE logging out\r\n" + t +
                       b" OK Logout completed\r\n")
            c.closed = True
        elif verb == "ENABLE":
            out.append(t + b" OK enabled\r\n")
        else:
            out.append(t + b" BAD unknown command\r\n")

    def _auth_plain(self, c, tag, b64, out):
        t = tag.encode()
        try:
            _, user, pw = base64.b64decode(b64).decode().split("\0")
        except (ValueError, UnicodeDecodeError):
            out.append(t + b" BAD bad PLAIN response\r\n")
            return
        if (user, pw) == (self.user, self.password):
            out.append(t + b" OK [CAPABILITY " + CAPS.encode() +
                       b"] Logged in\r\n")
        else:
            out.append(t + b" NO [AUTHENTICATIONFAILED] bad login\r\n")

    def _fetch(self, c, t, by_uid, args, out, fetched):
        spec, _, items = args.partition(" ")
        with self.lock:
            box = self.boxes.get(c.mailbox)
            uids = list(box.uids) if box else []
        if not uids:
            out.append(t + b" OK Fetch completed\r\n")
            return
        if by_uid:
            ranges = fakeimap.parse_set(spec, uids[-1])
            want = [(i + 1, u) for i, u in enumerate(uids)
                    if any(lo <= u <= hi for lo, hi in ranges)]
            if not want:
                # "n:*" with n above every UID still names the last one.
                if spec.endswith(":*"):
                    want = [(len(uids), uids[-1])]
        else:
            ranges = fakeimap.parse_set(spec, len(uids))
            want = [(i + 1, u) for i, u in enumerate(uids)
                    if any(lo <= i + 1 <= hi for lo, hi in ranges)]
        envelope = "ENVELOPE" in items.upper()
        lines = []
        for seq, uid in want:
            if envelope:
                env = (b' ENVELOPE ("Mon, 1 Jan 2024 12:00:00 +0000" '
                       b'"Fake message %d" (("Fake Sender" NIL "sender" '
                       b'"example.org")) (("Fake Sender" NIL "sender" '
                       b'"example.org")) (("Fake Sender" NIL "sender" '
                       b'"example.org")) ((NIL NIL "bench" "example.org"))'
                       b' NIL NIL NIL "<fake-%d@example.org>")' % (uid, uid))
            else:
                env = b""
            lines.append(b"* %d FETCH (UID %d FLAGS ()%s)\r\n" %
                         (seq, uid, env))
            fetched.append((c.mailbox, uid))
        out.append(b"".join(lines))
        out.append(t + b" OK Fetch completed\r\n")


# ---------------------------------------------------------------------------
# spawn floor

SPAWN_C = r"""
/* Written by bench/fakeserver.py. Usage: spawn HOOK FILE N. Starts HOOK FILE
 * N times, one after the other, as mailwatch starts a hook (launch() of
 * launch.c: stdout/stderr on a pipe, stdin /dev/null, own process group,
 * empty signal mask, default SIGPIPE) and prints "i t0" per run: the
 * CLOCK_MONOTONIC time just before the spawn. The hook gets
 * MAILWATCH_UID=i and MAILWATCH_MAILBOX=spawn. On x86_64 it first prints
 * "cpuid SECONDS": what one CPUID instruction costs here (a virtual
 * machine may trap each one; the C library runs dozens at start-up). */
#define _GNU_SOURCE
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"

extern char **environ;

int
main(int argc, char **argv)
{
	int n = argc > 3 ? atoi(argv[3]) : 100;
	char uid[32];

	if (argc < 3)
		return 2;
#if defined(__x86_64__)
	{
		struct timespec a, b;
		unsigned eax, ebx, ecx, edx;

		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int i = 0; i < 200; i++)
			__cpuid(0, eax, ebx, ecx, edx);
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("cpuid %.9f\n", ((b.tv_sec - a.tv_sec) +
					(b.tv_nsec - a.tv_nsec) / 1e9) / 200);
	}
#endif
	setenv("MAILWATCH_MAILBOX", "spawn", 1);
	for (int i = 1; i <= n; i++) {
		struct timespec ts;
		char *args[] = {argv[1], argv[2], NULL};
		char buf[64];
		struct launch sp;
		int st;

		snprintf(uid, sizeof(uid), "%d", i);
		setenv("MAILWATCH_UID", uid, 1);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (launch(args, environ, true, -1, false, &sp) < 0)
			return 1;
		fcntl(sp.fd, F_SETFL, 0);
		while (read(sp.fd, buf, sizeof(buf)) > 0)
			;
		close(sp.fd);
		close(sp.pidfd);
		waitpid(sp.pid, &st, 0);
		launch_end(&sp, NULL, 0);
		printf("%d %lld.%09ld\n", i, (long long)ts.tv_sec, ts.tv_nsec);
		usleep(2000);
	}
	return 0;
}
"""


def spawn_floor(tmp, hook, n=200):
    """Times spawn -> hook start and -> hook main with the spawn program
    (linked with build/libmailwatch.a); returns the two lists of latencies
    (s) and the cost of one CPUID instruction (s, None when not
    measured)."""
    prog = os.path.join(tmp, "spawn")
    latency.compile_c(SPAWN_C, prog, static=False,
                      extra=["-I" + os.path.join(latency.REPO, "src"),
                             os.path.join(latency.REPO, "build",
                                          "libmailwatch.a"),
                             "-lsystemd"])
    out = os.path.join(tmp, "spawn-stamps")
    r = subprocess.run([prog, hook, out, str(n)], capture_output=True,
                       text=True, timeout=60, check=True)
    starts, cpuid = {}, None
    for a, b in (ln.split() for ln in r.stdout.splitlines()):
        if a == "cpuid":
            cpuid = float(b)
        else:
            starts[int(a)] = float(b)
    got = {}
    with open(out) as f:
        for ln in f:
            uid, t, tm, _ = ln.split(" ", 3)
            got[int(uid)] = (float(t), float(tm))
    done = [i for i in sorted(starts) if i in got]
    return ([got[i][0] - starts[i] for i in done],
            [got[i][1] - starts[i] for i in done], cpuid)


# ---------------------------------------------------------------------------
# The benchmark

def run_bursts(srv, stamps, boxes, opts):
    """Pushes EXISTS to every mailbox of boxes at once, opts.rounds times.
    Returns (per-message latencies, per-round first EXISTS -> last hook
    start, rounds done) or None."""
    if not boxes or not opts.rounds:
        return None
    each, last, done = [], [], 0
    for _ in range(opts.rounds):
        if not all(srv.wait_idling(b, 5) for b in boxes):
            continue
        time.sleep(opts.gap / 1000.0)
        sent = [(b,) + srv.inject(b) for b in boxes]
        starts = []
        for b, uid, t0 in sent:
            t3 = stamps.wait((b, uid), 5)
            if t0 is not None and t3 is not None:
                each.append(t3 - t0)
                starts.append(t3)
        if len(starts) == len(boxes):
            last.append(max(starts) - min(t0 for _, _, t0 in sent))
            done += 1
        # the hooks and the state files finish before the next round
        time.sleep(0.1)
    return (each, last, done) if last else None


def run_single(stamps, targets, opts):
    """Injects messages one at a time, each once mailwatch idles again plus
    opts.gap, taking turns over targets, (server, mailbox, count) each, so
    that other load on the machine falls on them alike; each target first
    gets opts.warmup untimed messages. Returns (samples, lost) per target:
    a sample is (t0, t1, t2, t3, hook main) of one timed message."""
    results = [([], [0]) for _ in targets]
    for i in range(opts.warmup + max(n for _, _, n in targets)):
        for (srv, mailbox, count), (samples, lost) in zip(targets, results):
            if i >= opts.warmup + count:
                continue
            if not srv.wait_idling(mailbox, 5):
                lost[0] += 1
                continue
            time.sleep(opts.gap / 1000.0)
            uid, t0 = srv.inject(mailbox)
            t3 = stamps.wait((mailbox, uid), 5)
            if t0 is None or t3 is None:
                lost[0] += 1
                continue
            if i < opts.warmup:
                continue
            ft = srv.wait_fetch((mailbox, uid), 5)
            if ft is None:
                lost[0] += 1
                continue
            samples.append((t0, ft[0], ft[1], t3,
                            stamps.mains[(mailbox, uid)]))
    return [(samples, lost[0]) for samples, lost in results]


def print_single(samples, lost, opts):
    """Prints run_single's figures for one target; returns the median
    EXISTS -> hook start (s)."""
    total = [t3 - t0 for t0, _, _, t3, _ in samples]
    print("  %d messages measured (%d warm-up, lost %d)" %
          (len(samples), opts.warmup, lost))
    print(latency.header(COLS))
    print(latency.row("EXISTS sent -> hook start", total, COLS))
    print(latency.row("  EXISTS -> DONE+UID FETCH recvd",
                      [t1 - t0 for t0, t1, _, _, _ in samples], COLS))
    print(latency.row("  server reply (recv -> sendall)",
                      [t2 - t1 for _, t1, t2, _, _ in samples], COLS))
    print(latency.row("  reply sent -> hook start",
                      [t3 - t2 for _, _, t2, t3, _ in samples], COLS))
    print(latency.row("EXISTS sent -> hook main",
                      [tm - t0 for t0, _, _, _, tm in samples], COLS))
    return latency.percentile(total, 50)


COLS = ("min", "median", "p90", "p99", "max")


def bench(opts):
    latency.need_mailwatch()
    tmp = tempfile.mkdtemp(prefix="mwbench-fake-")
    srv = nagle = trace = None
    try:
        hook, how = latency.build_hook(tmp)
        stamps = latency.HookStamps(tmp)
        burst_boxes = ["burst%d" % i for i in range(opts.burst)]
        srv = FakeImapServer(mailboxes=["INBOX"] + burst_boxes)
        config = {
            "general": {"notify": False, "log_level": "info",
                        "on_new_mail": latency.hook_command(hook,
                                                            stamps.path)},
            "account fake": {"host": "127.0.0.1", "port": srv.port,
                             "tls": "none", "username": srv.user,
                             "password": srv.password,
                             "mailboxes": ["INBOX"] + burst_boxes,
                             # An IDLE connection for each: the scripted
                             # server has no STATUS for the checks.
                             "max_connections": len(burst_boxes) + 1},
        }
        watched = ["INBOX"] + burst_boxes
        if opts.nagle_count:
            nagle = FakeImapServer(mailboxes=["Nagle"], nagle=True)
            config["account nagle"] = dict(config["account fake"],
                                           port=nagle.port,
                                           mailboxes=["Nagle"])
            watched.append("Nagle")
        mw = mwtest.Mailwatch(config, args=(), binary=latency.MAILWATCH,
                              sd_notify=True)
        if not latency.wait_watched(mw, len(watched), 10):
            print(mw.log_tail(30))
            raise RuntimeError("mailwatch did not reach IDLE")
        if opts.perf:
            trace = latency.PerfTrace(mw.pid(), tmp)

        print("fakeserver: EXISTS -> hook start, scripted IMAP server on "
              "127.0.0.1 (plain TCP, TCP_NODELAY, each batch of replies in "
              "one write), %d messages, one at a time, %.0f ms apart" %
              (opts.count, opts.gap), flush=True)
        print("  hook: %s" % how)
        if latency.MAILWATCH != latency.DEFAULT_MAILWATCH:
            print("  mailwatch: %s ($MAILWATCH_BIN)" % latency.MAILWATCH)
        targets = [(srv, "INBOX", opts.count)]
        if nagle:
            targets.append((nagle, "Nagle", opts.nagle_count))
        t_start = time.monotonic()
        single = run_single(stamps, targets, opts)
        elapsed = time.monotonic() - t_start
        if trace:
            trace.stop()
        burst = run_bursts(srv, stamps, burst_boxes, opts)
        rc_mw = mw.stop()
        stamps.close()
        srv.stop()
        if nagle:
            nagle.stop()
        if not all(samples for samples, _ in single):
            print("  no samples (lost %s)" % [lost for _, lost in single])
            print(mw.log_tail(30))
            return 1

        med = print_single(*single[0], opts)
        print("  target: median <= 1 ms: %s (%.3f ms)" % (
            latency.verdict(med, 0.001), med * 1000))
        if nagle:
            print("  the same against a Cyrus-like server (Nagle's "
                  "algorithm on; IDLE's tagged OK, the FETCH responses and "
                  "UID FETCH's tagged OK in three send()s), taking turns "
                  "with the one above:")
            med_nagle = print_single(*single[1], opts)
            diff = med_nagle - med
            print("  difference of the medians, Cyrus-like - one write: "
                  "%.3f ms (target: < 1 ms): %s" % (
                      diff * 1000, "met" if abs(diff) < 0.001 else "MISSED"))
        print("  %.1f s for the messages above; mailwatch exit status %s" %
              (elapsed, rc_mw), flush=True)
        spawn, spawn_main, cpuid = spawn_floor(tmp, hook, opts.spawn_count)
        if spawn:
            print("  the same hook started by a small C program alone:")
            print(latency.row("spawn -> hook start", spawn, COLS))
            print(latency.row("spawn -> hook main", spawn_main,
                              COLS))
        if cpuid is not None:
            print("  one CPUID instruction: %.1f us (hook start -> main is "
                  "mostly the C library's CPU feature probing)" %
                  (cpuid * 1e6))
        if burst:
            each, last, rounds = burst
            print("  bursts: EXISTS to %d mailboxes at once, %d rounds "
                  "(one connection each; the loop serves them in turn):"
                  % (len(burst_boxes), rounds))
            print(latency.header(COLS))
            print(latency.row("EXISTS sent -> hook start, each", each,
                              COLS))
            print(latency.row("first EXISTS -> last hook start", last,
                              COLS))
        if trace:
            latency.print_phases(trace, stamps.stamps.values())
        sys.stdout.flush()
        return 0
    finally:
        if trace:
            trace.stop()
        mwtest.stop_all()  # mailwatch first: it talks to the server
        for server in (srv, nagle):
            if server is not None:
                server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=500,
                    help="messages to time (default 500)")
    ap.add_argument("--warmup", type=int, default=10,
                    help="untimed messages first (default 10)")
    ap.add_argument("--nagle-count", type=int, default=200,
                    help="messages to time against the Cyrus-like server "
                    "(default 200; 0: none)")
    ap.add_argument("--gap", type=float, default=20,
                    help="ms to wait after mailwatch idles again "
                    "(default 20)")
    ap.add_argument("--burst", type=int, default=10,
                    help="mailboxes that get an EXISTS at once in the burst "
                    "rounds (default 10; 0: none)")
    ap.add_argument("--rounds", type=int, default=20,
                    help="burst rounds (default 20)")
    ap.add_argument("--spawn-count", type=int, default=200,
                    help="runs of the spawn floor (default 200)")
    ap.add_argument("--perf", action="store_true",
                    help="also trace mailwatch with perf and print where "
                    "the time goes (slightly slower)")
    opts = ap.parse_args()
    if opts.perf and not latency.PerfTrace.available():
        ap.error("--perf needs perf")
    if (opts.count < 1 or opts.nagle_count < 0 or opts.warmup < 0 or
            opts.gap < 0):
        ap.error("bad --count, --nagle-count, --warmup or --gap")
    return latency.run_bench(bench, opts)


if __name__ == "__main__":
    sys.exit(main())
