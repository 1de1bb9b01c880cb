#!/usr/bin/python3
"""Fault soak: mail keeps arriving while everything around mailwatch breaks.

Against a private Dovecot, an appender thread delivers messages at a random
pace (single APPENDs and pipelined bursts) to five mailboxes: four of alice
(account "one": INBOX, Lists/dev, Work, Projekte/Straße) and bob's INBOX
(account "two"). About one in five is appended already \\Seen and must not
be announced. Meanwhile the main thread injects faults at random intervals,
each kind in turn in a shuffled order:

  restart  Dovecot stopped and started again on the same ports
  kick     doveadm kick of alice or bob (every session, the appender's too)
  sigkill  mailwatch SIGKILLed, started again on the same state directory
  sigterm  mailwatch SIGTERMed (its exit status is checked), started again

Mostly 2-6 s apart, a quarter of them only 0.2-1 s (a fault in the middle
of the recovery from the last one). The recording hook writes its record
as soon as it starts and then takes SOAK_HOOK_SECONDS (0.5 s), as a real
hook playing a sound would, so hooks overlap and queue during catch-ups.

An APPEND that fails is retried. A delivered message is counted by the
(account, mailbox, UIDVALIDITY, UID) of its APPENDUID; when a failure leaves
an APPEND's fate unknown, the message is looked up by its Message-ID and
counted only when the server has it (else appended again). At the end the
appender stops, mailwatch is waited for until every watcher is idle and no
hook has run for a while, the server's contents are checked against the
appends, and the announcements (the recording hook's MAILWATCH_ACCOUNT,
_MAILBOX, _UIDVALIDITY, _UID) are compared with what was delivered unseen.

Rules:
  - missed must be 0;
  - no \\Seen message and nothing that was not delivered is announced;
  - a UID may be announced again only as the batch in flight at a
    SIGKILL: each announcement but the last was made by an instance that
    was killed, at most KILL_WINDOW (2 s, scaled) before the kill (by the
    hook's clock; the hook may start up to HOOK_START_SLACK after it), the
    next by a later instance (two kills in a row may catch the same batch),
    and per killed instance and mailbox the repeated UIDs are the last ones
    that instance announced there (the batch whose state was not saved);
  - every exit after SIGTERM is 0, and the log has no sanitizer report.

Run directly ("make soak": SOAK_SECONDS, default 180, at least 500
messages) or through run() (test_soak.py: about 60 s, at least 150).
SOAK_SEED reproduces a run's random choices (printed at the start);
SOAK_LOG_DIR keeps mailwatch's log, the hook records and Dovecot's log
there. TAP on stdout, figures as "#" lines."""

import collections
import os
import random
import re
import shutil
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402

# s before a SIGKILL in which a batch may repeat
KILL_WINDOW = mwtest._t(2.0)
# s a hook may take to record after being spawned
HOOK_START_SLACK = mwtest._t(2.0)
FAULT_KINDS = ("restart", "kick", "sigkill", "sigterm")
# (account, user, mailbox)
TARGETS = (
    ("one", "alice", "INBOX"),
    ("one", "alice", "Lists/dev"),
    ("one", "alice", "Work"),
    ("one", "alice", "Projekte/Straße"),
    ("two", "bob", "INBOX"),
)
IMAP_ERRORS = (OSError, mwtest.ImapError, ssl.SSLError, socket.timeout,
               EOFError)


def log(msg):
    comment("t=%6.1f %s" % (time.monotonic() - T0, msg))


T0 = time.monotonic()


# ---------------------------------------------------------------------------
# Delivering mail

class Msg:
    __slots__ = ("n", "account", "user", "mailbox", "seen", "msgid", "raw",
                 "tries")

    def __init__(self, n, target, seen):
        self.n = n
        self.account, self.user, self.mailbox = target
        self.seen = seen
        self.msgid = "<soak-%d-%d@mwtest.example>" % (os.getpid(), n)
        self.raw = mwtest.make_message(
            subject="soak %d%s" % (n, " (seen)" if seen else ""),
            msgid=self.msgid)
        self.tries = 0


def _uidvalidity_uids(line):
    """(uidvalidity, [uids]) from a line with [APPENDUID v set]."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    m = re.search(r"\[APPENDUID (\d+) ([0-9:,]+)\]", line)
    if not m:
        raise mwtest.ImapError("no APPENDUID in %r" % line)
    uids = []
    for part in m.group(2).split(","):
        a, _, b = part.partition(":")
        uids += range(int(a), int(b or a) + 1)
    return int(m.group(1)), uids


def _mbox(name):
    return mwtest.quote(mwtest.imap_utf7_encode(name)).encode()


class Appender(threading.Thread):
    """Delivers messages until stopped; see the module docstring.

    .delivered {(account, mailbox, uidvalidity, uid): Msg}
    .counts    Counter of what happened (appended, errors, unsure, ...)"""

    def __init__(self, dc, rng, rate, seen_ratio=0.2):
        super().__init__(name="appender", daemon=True)
        self.dc = dc
        self.rng = rng
        self.rate = rate                # messages per second, on average
        self.seen_ratio = seen_ratio
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.delivered = {}
        self.by_msgid = {}
        self.todo = collections.deque()  # not sent yet, or to send again
        self.unsure = []                 # sent, outcome unknown
        self.conns = {}                  # user -> ImapClient
        self.counts = collections.Counter()
        self.anomalies = []
        self.error = None
        self.n = 0

    # -- connections
    def _conn(self, user):
        c = self.conns.get(user)
        if c is None:
            c = self.dc.client(user)
            self.conns[user] = c
        return c

    def _drop(self, user):
        c = self.conns.pop(user, None)
        if c is not None:
            c.close()

    def close(self):
        for user in list(self.conns):
            self._drop(user)

    # -- delivering
    def _record(self, m, uidvalidity, uid, how):
        key = (m.account, m.mailbox, uidvalidity, uid)
        with self.lock:
            if key in self.delivered:
                self.anomalies.append("UID %r delivered twice (%s and %s)"
                                      % (key, self.delivered[key].msgid,
                                         m.msgid))
            if m.msgid in self.by_msgid:
                self.anomalies.append("%s delivered twice (%r and %r)" % (
                    m.msgid, self.by_msgid[m.msgid], key))
            self.delivered[key] = m
            self.by_msgid[m.msgid] = key
            self.counts[how] += 1

    def _new_burst(self):
        target = self.rng.choice(TARGETS)
        size = 1 if self.rng.random() < 0.85 else self.rng.randint(2, 8)
        for _ in range(size):
            self.n += 1
            self.todo.append(Msg(self.n, target,
                                 self.rng.random() < self.seen_ratio))

    def _append_burst(self):
        """Sends the messages at the head of todo that share a target,
        pipelined, and records the ones the server confirmed."""
        first = self.todo[0]
        burst = []
        while self.todo and (self.todo[0].user, self.todo[0].mailbox) == \
                (first.user, first.mailbox) and len(burst) < 8:
            burst.append(self.todo.popleft())
        sent, done = [], 0
        try:
            c = self._conn(first.user)
            tags = []
            for m in burst:
                flags = b"(\\Seen) " if m.seen else b""
                m.tries += 1
                tags.append(c.send_command(
                    b"APPEND " + _mbox(m.mailbox) + b" " + flags +
                    b"{%d+}\r\n" % len(m.raw) + m.raw))
                sent.append(m)
            for tag, m in zip(tags, burst):
                status, line, _ = c.wait_tagged(tag, timeout=10)
                if status != "OK":
                    raise mwtest.ImapError("APPEND -> %r" % line)
                uidvalidity, uids = _uidvalidity_uids(line)
                self._record(m, uidvalidity, uids[0], "appended")
                done += 1
        except IMAP_ERRORS as e:
            self.counts["append errors"] += 1
            self._drop(first.user)
            # Sent but not confirmed: look them up later. Not sent: again.
            self.unsure += sent[done:]
            self.counts["unsure"] += len(sent) - done
            for m in reversed(burst[len(sent):]):
                self.todo.appendleft(m)
            return e
        return None

    def _resolve(self):
        """Looks up the unsure messages by Message-ID: recorded when the
        server has them, sent again when not. Returns False when the
        server could not be asked."""
        left = []
        for m in self.unsure:
            try:
                with self.dc.client(m.user) as c:
                    _, _, untagged = c.command(b"EXAMINE " +
                                               _mbox(m.mailbox))
                    uidvalidity = None
                    for ln in untagged:
                        mm = re.search(rb"\[UIDVALIDITY (\d+)\]", ln)
                        if mm:
                            uidvalidity = int(mm.group(1))
                    _, _, untagged = c.command(
                        'UID SEARCH HEADER Message-ID "%s"' % m.msgid)
                    uids = []
                    for ln in untagged:
                        if ln.startswith(b"* SEARCH"):
                            uids += [int(x) for x in ln.split()[2:]]
                    c.logout()
            except IMAP_ERRORS:
                left.append(m)
                continue
            if len(uids) > 1:
                self.anomalies.append("%s is there %d times: %r" % (
                    m.msgid, len(uids), uids))
            if uids:
                self._record(m, uidvalidity, uids[0], "found after error")
            else:
                self.counts["appended again"] += 1
                self.todo.appendleft(m)
        self.unsure = left
        return not left

    def run(self):
        try:
            while not self.stop_ev.is_set():
                if self.unsure and not self._resolve():
                    self.stop_ev.wait(0.2)
                    continue
                if not self.todo:
                    self.stop_ev.wait(self.rng.expovariate(self.rate / 1.5))
                    if self.stop_ev.is_set():
                        break
                    self._new_burst()
                if self._append_burst() is not None:
                    self.stop_ev.wait(0.2)
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, timeout=60):
        """Stops delivering and settles every unsure message (bounded).
        Messages never sent are dropped: they were not delivered."""
        self.stop_ev.set()
        self.join(mwtest._t(timeout))
        deadline = time.monotonic() + mwtest._t(timeout)
        while self.unsure and time.monotonic() < deadline:
            if not self._resolve():
                time.sleep(0.2)
        self.close()
        # Anything the lookups put back to send again was not delivered.
        self.counts["never sent"] = len(self.todo)
        self.todo.clear()
        return not self.unsure and not self.is_alive()


# ---------------------------------------------------------------------------
# mailwatch instances

class Instance:
    """One run of the mailwatch process."""

    def __init__(self, n, mw):
        self.n = n
        self.offset = mw.mark()  # where its part of the log starts
        mw.start()
        self.pid = mw.pid()
        self.t_start = time.monotonic()
        self.end = None          # "sigkill", "sigterm", "final"
        self.t_end = None        # when the signal was sent
        self.rc = None
        self.hook_pids = set()

    def __repr__(self):
        return "<instance %d pid %s %s>" % (self.n, self.pid, self.end)


def watcher_names():
    return ["%s/%s" % (a, mb) for a, _, mb in TARGETS]


def idle_state(mw, since):
    """{watcher: (last session state, last watcher state)} from the log
    since offset since (the current instance's part)."""
    text = mw.log()[since:]
    state = {}
    rx = re.compile(r"^mailwatch: (.+?): (session|watcher): (\S+) -> (\S+)$",
                    re.M)
    for m in rx.finditer(text):
        s = state.setdefault(m.group(1), [None, None])
        s[0 if m.group(2) == "session" else 1] = m.group(4)
    return {w: tuple(state.get(w, (None, None))) for w in watcher_names()}


def all_idle(mw, since):
    return all(s == ("idle", "watching")
               for s in idle_state(mw, since).values())


def hooks_running(sids):
    """Pids still alive in the sessions of the mailwatch processes (the
    hooks they started, the current mailwatch itself excluded)."""
    left = []
    for sid in sids:
        left += [p for p in mwtest._session_pids(sid) if p != sid]
    return left


# ---------------------------------------------------------------------------
# The server's contents

def server_contents(dc):
    """{(account, mailbox, uidvalidity, uid): (seen, msgid)} of every
    message in the targets, read over IMAP."""
    out = {}
    for account, user, mailbox in TARGETS:
        with dc.client(user) as c:
            _, _, untagged = c.command(b"EXAMINE " + _mbox(mailbox))
            uidvalidity = None
            for ln in untagged:
                m = re.search(rb"\[UIDVALIDITY (\d+)\]", ln)
                if m:
                    uidvalidity = int(m.group(1))
            _, _, untagged = c.command("UID FETCH 1:* (UID FLAGS ENVELOPE)",
                                       timeout=30)
            for ln in untagged:
                if b" FETCH " not in ln:
                    continue
                uid = re.search(rb"UID (\d+)", ln)
                flags = re.search(rb"FLAGS \(([^)]*)\)", ln)
                msgid = re.search(rb'"(<soak-[^"]+>)"', ln)
                if uid:
                    out[(account, mailbox, uidvalidity,
                         int(uid.group(1)))] = (
                        b"\\Seen" in (flags.group(1) if flags else b""),
                        msgid.group(1).decode() if msgid else None)
            c.logout()
    return out


# ---------------------------------------------------------------------------
# The soak

def run(seconds, min_delivered, seed=None, fault_gap=(2.0, 6.0),
        short_gap=(0.2, 1.0), short_share=0.25, hook_seconds=None):
    """Runs the soak for about seconds (longer, up to 1.5 times, until
    min_delivered messages were delivered) and prints TAP lines. Returns
    the figures (a dict). Faults come fault_gap seconds apart, a
    short_share of them only short_gap apart (faults in quick succession,
    e.g. during a catch-up). Each hook run records itself at once and then
    takes hook_seconds (SOAK_HOOK_SECONDS, default 0.5), like a real hook
    playing a sound, so that hooks overlap and queue in bursts."""
    seed = int(seed if seed is not None else
               os.environ.get("SOAK_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    # 1.5 times what is needed, at least 4 per second.
    rate = max(4.0, 1.5 * min_delivered / seconds)
    comment("soak: %.0f s, at least %d messages (about %.1f/s), seed %d" %
            (seconds, min_delivered, rate, seed))

    # Without NOTIFY each mailbox has an IDLE connection of its own, whose
    # states idle_state() reads.
    dc = mwtest.Dovecot(notify=False)
    for _, user, mailbox in TARGETS:
        if mailbox != "INBOX":
            dc.create_mailbox(user, mailbox)
    ports = (dc.imap_port, dc.imaps_port)
    if hook_seconds is None:
        hook_seconds = float(os.environ.get("SOAK_HOOK_SECONDS") or 0.5)
    sections = {"general": {"notify": False}}
    # Every message must reach the hook, also after a long gap: above
    # catch_up_max a catch-up is one summary, which runs no on_new_mail
    # per message (mailwatch.ini(5)) and would count as missed here.
    for account, user in (("one", "alice"), ("two", "bob")):
        sections["account " + account] = dc.account(
            user, mailboxes=[mb for a, _, mb in TARGETS if a == account],
            catch_up="notify", catch_up_max=10000)
    mw = mwtest.Mailwatch(start=False)
    slow = mw.hook_cmd(sleep=hook_seconds) if hook_seconds else \
        mw.hook_cmd()
    sections["general"]["on_new_mail"] = slow
    mw.write_config(sections)
    instances = [Instance(0, mw)]
    if not mwtest.wait_until(lambda: all_idle(mw, 0), 30):
        raise RuntimeError("mailwatch did not reach IDLE on every mailbox: "
                           "%r" % idle_state(mw, 0))

    # Its own generator: the appender's choices do not shift the faults'.
    appender = Appender(dc, random.Random(seed + 1), rate)
    faults = collections.Counter()
    fault_log = []
    term_rcs = []
    crashes = []
    bag = []

    def start_again():
        time.sleep(rng.uniform(0, 1.5))   # mail arrives while it is away
        instances.append(Instance(len(instances), mw))

    appender.start()
    t_begin = time.monotonic()
    deadline = t_begin + seconds
    hard_deadline = t_begin + 1.5 * seconds
    while True:
        now = time.monotonic()
        if now >= hard_deadline or (now >= deadline and
                                    len(appender.delivered) >=
                                    min_delivered):
            break
        gap = rng.uniform(*(short_gap if rng.random() < short_share
                            else fault_gap))
        if now < deadline:
            gap = min(gap, deadline - now)
        time.sleep(gap)
        if appender.error is not None:
            raise appender.error
        if not mw.running():
            # Died by itself: noted (a failure below) and started again.
            inst = instances[-1]
            inst.rc = mw.wait_exit(1)
            inst.end, inst.t_end = "died", time.monotonic()
            crashes.append((inst.pid, inst.rc))
            log("mailwatch pid %d died by itself (rc %s)" % (inst.pid,
                                                              inst.rc))
            instances.append(Instance(len(instances), mw))
        if not bag:
            bag = list(FAULT_KINDS)
            rng.shuffle(bag)
        kind = bag.pop()
        inst = instances[-1]
        t = time.monotonic()
        if kind == "restart":
            dc.restart()
            if (dc.imap_port, dc.imaps_port) != ports:
                raise RuntimeError("Dovecot came back on other ports %r "
                                   "(were %r)" % ((dc.imap_port,
                                                   dc.imaps_port), ports))
            detail = "took %.1f s" % (time.monotonic() - t)
        elif kind == "kick":
            user = rng.choice(("alice", "bob"))
            r = dc.kick(user)
            out = " ".join((r.stdout + r.stderr).split())
            detail = "%s: %s" % (user, "kicked" if "kicked" in out and
                                 user in out.split(":")[-1] else
                                 out[:80] or "rc %d" % r.returncode)
        elif kind == "sigkill":
            inst.t_end = time.monotonic()
            mw.signal(signal.SIGKILL)
            inst.rc = mw.wait_exit(10)
            inst.end = "sigkill"
            detail = "pid %d (rc %s)" % (inst.pid, inst.rc)
            start_again()
        else:
            inst.t_end = time.monotonic()
            mw.signal(signal.SIGTERM)
            inst.rc = mw.wait_exit(15)
            inst.end = "sigterm"
            if inst.rc is None:
                mw.signal(signal.SIGKILL)
                mw.wait_exit(10)
                inst.rc = "hung"
            term_rcs.append((inst.pid, inst.rc))
            detail = "pid %d exited %s" % (inst.pid, inst.rc)
            start_again()
        faults[kind] += 1
        fault_log.append((t, kind, detail))
        log("%-7s %s; delivered %d" % (kind, detail,
                                       len(appender.delivered)))

    ok(appender.finish(), "soak: the appender stopped and every unsure "
       "APPEND was settled", "unsure: %d, error: %r" % (
           len(appender.unsure), appender.error))
    if appender.error is not None:
        raise appender.error
    t_deliver_end = time.monotonic()
    delivered = dict(appender.delivered)
    unseen = {k for k, m in delivered.items() if not m.seen}
    log("delivering stopped: %d messages" % len(delivered))

    # Wait until mailwatch is idle everywhere and the hooks are quiet.
    inst = instances[-1]
    sids = [i.pid for i in instances]
    quiet_for = mwtest._t(3)
    wait_max = mwtest._t(120)
    last_n, last_change = -1, time.monotonic()
    settled = False
    while time.monotonic() - t_deliver_end < wait_max:
        recs = mw.hook_records()
        if len(recs) != last_n:
            last_n, last_change = len(recs), time.monotonic()
        announced_now = {_key(r) for r in recs}
        quiet = time.monotonic() - last_change >= quiet_for
        if quiet and all_idle(mw, inst.offset) and \
                not hooks_running(sids) and mw.running():
            # A watcher may still be catching up after a late reconnect:
            # give what is missing a little longer.
            if not (unseen - announced_now) or \
                    time.monotonic() - last_change >= mwtest._t(15):
                settled = True
                break
        time.sleep(0.2)
    ok(settled, "soak: mailwatch is idle on every mailbox and quiet "
       "(after %.1f s)" % (time.monotonic() - t_deliver_end),
       repr(idle_state(mw, inst.offset)))

    # The final SIGTERM.
    final_running = mw.running()
    if not final_running:
        crashes.append((inst.pid, mw.wait_exit(1)))
    inst.t_end = time.monotonic()
    mw.signal(signal.SIGTERM)
    inst.rc = mw.wait_exit(15)
    inst.end = "final"
    if inst.rc is None:
        inst.rc = "hung"
    term_rcs.append((inst.pid, inst.rc))
    mwtest.wait_until(lambda: not hooks_running(sids), 10)
    for sid in sids:
        left = mwtest._kill_session_leftovers(sid)
        if left:
            comment("killed what instance pid %d left: %r" % (sid, left))

    # What the server holds must be what the appender counted.
    server = server_contents(dc)
    server_only = sorted(set(server) - set(delivered))
    not_on_server = sorted(set(delivered) - set(server))
    flag_diff = sorted(k for k in set(server) & set(delivered)
                       if server[k][0] != delivered[k].seen or
                       server[k][1] != delivered[k].msgid)
    ok(not server_only and not not_on_server and not flag_diff and
       not appender.anomalies,
       "soak: the server holds exactly the counted appends (%d)" %
       len(server),
       "server only: %r\nnot on server: %r\nflags/msgid differ: %r\n%s" % (
           server_only[:10], not_on_server[:10], flag_diff[:10],
           "\n".join(appender.anomalies[:10])))

    # Attribute each hook run to the instance that started it.
    text = mw.log()
    bounds = [i.offset for i in instances] + [len(text)]
    for i, ins in enumerate(instances):
        ins.hook_pids = {int(p) for p in re.findall(
            r"on_new_mail \S+ \(UID \d+\) started \(pid (\d+)\)",
            text[bounds[i]:bounds[i + 1]])}

    recs = sorted(mw.hook_records(), key=lambda r: r["_t"])
    by_key = collections.defaultdict(list)
    for r in recs:
        by_key[_key(r)].append(r)
    announced = set(by_key)
    missed = sorted(unseen - announced)
    seen_announced = sorted(k for k in announced
                            if k in delivered and delivered[k].seen)
    unknown = sorted(k for k in announced if k not in delivered)
    unattributed = [r for r in recs if instance_of(r, instances) is None]
    dups, bad_dups = judge_duplicates(recs, instances)

    sanitizer = mw.sanitizer_errors()
    figures = {
        "seed": seed,
        "seconds": round(t_deliver_end - t_begin, 1),
        "delivered": len(delivered),
        "delivered unseen": len(unseen),
        "announced": len(announced),
        "hook runs": len(recs),
        "missed": len(missed),
        "duplicated": len(dups),
        "duplicates allowed": len(set(dups) - {k for k, _ in bad_dups}),
        "seen announced": len(seen_announced),
        "unknown announced": len(unknown),
        "faults": dict(faults),
        "mailwatch instances": len(instances),
        "appender": dict(appender.counts),
    }
    comment("delivered %d, delivered unseen %d, announced %d, missed %d, "
            "duplicated %d (%d within the SIGKILL allowance)" % (
                figures["delivered"], figures["delivered unseen"],
                figures["announced"], figures["missed"],
                figures["duplicated"], figures["duplicates allowed"]))
    comment("faults injected: " + ", ".join(
        "%s %d" % (k, faults[k]) for k in FAULT_KINDS) +
        " (total %d); mailwatch ran %d times" % (
            sum(faults.values()), len(instances)))
    comment("appender: " + ", ".join("%s %d" % kv for kv in
                                     sorted(appender.counts.items())))
    comment("hook runs %d, unattributed %d; seed %d" % (
        len(recs), len(unattributed), seed))
    for k, rs in sorted(dups.items()):
        comment("duplicate %r: at %s" % (k, ", ".join(
            "%.2f by instance %s" % (r["_t"] - T0, getattr(
                instance_of(r, instances), "n", "?")) for r in rs)))

    ok(len(delivered) >= min_delivered,
       "soak: delivered %d messages (at least %d)" % (len(delivered),
                                                      min_delivered))
    ok(all(faults[k] for k in FAULT_KINDS),
       "soak: every kind of fault was injected", dict(faults))
    ok(not missed, "soak: missed %d" % len(missed),
       _describe_keys(missed, delivered, instances, fault_log, text))
    ok(not seen_announced and not unknown,
       "soak: nothing \\Seen or never delivered was announced",
       "seen: %r\nunknown: %r" % (seen_announced[:10], unknown[:10]))
    ok(not bad_dups, "soak: duplicates within the SIGKILL allowance "
       "(%d duplicated, %d SIGKILLs)" % (len(dups), faults["sigkill"]),
       "\n".join("%r: %s" % (k, "; ".join(w)) for k, w in bad_dups[:20]))
    ok(not crashes and final_running,
       "soak: no mailwatch instance died by itself", repr(crashes))
    bad_rc = [(p, rc) for p, rc in term_rcs if rc != 0]
    ok(not bad_rc and not sanitizer,
       "soak: every exit after SIGTERM was 0 (%d) with no sanitizer "
       "errors" % len(term_rcs),
       "exits: %r\n%s" % (bad_rc, "\n".join(sanitizer[:30])))
    keep = os.environ.get("SOAK_LOG_DIR")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for src, name in ((mw.log_path, "mailwatch.log"),
                          (mw.hook_file(), "hooks.jsonl"),
                          (dc.log_path, "dovecot.log")):
            try:
                shutil.copy(src, os.path.join(keep, name))
            except OSError as e:
                comment("keeping %s: %s" % (src, e))
        comment("logs kept in " + keep)
    mw.stop()
    dc.stop()
    return figures


def instance_of(rec, instances):
    """The instance that started the hook that wrote rec: the one whose
    pid is the hook's session (a SIGKILL may come between the spawn and
    the "started" log line), else the one whose log says it started it."""
    for ins in instances:
        if rec.get("_sid") is not None and \
                rec.get("_sid") == getattr(ins, "pid", None):
            return ins
    for ins in instances:
        if rec.get("_pid") in ins.hook_pids:
            return ins
    return None


def judge_duplicates(recs, instances):
    """Applies the SIGKILL allowance to the hook records recs (sorted by
    _t). instances: objects with n (their index), end ("sigkill", ...),
    t_end (when the signal was sent) and hook_pids. Returns (dups, bad):
    {key: [records]} of everything announced more than once, and [(key,
    [reasons])] of what the allowance does not cover."""
    by_key = collections.defaultdict(list)
    for r in recs:
        by_key[_key(r)].append(r)
    dups = {k: v for k, v in by_key.items() if len(v) > 1}
    bad = []
    per_kill = collections.defaultdict(set)   # (instance n, acct, mbox)
    for k, rs in sorted(dups.items()):
        why = []
        # Each announcement but the last is the batch in flight at a
        # SIGKILL of the instance that made it (two kills in a row may
        # catch the same batch), repeated by a later instance.
        for r, again in zip(rs, rs[1:]):
            ins1 = instance_of(r, instances)
            if ins1 is None:
                why.append("announced by an unknown instance")
                continue
            if ins1.end != "sigkill":
                why.append("announced by instance %d, which ended by %s"
                           % (ins1.n, ins1.end))
                continue
            dt = ins1.t_end - r["_t"]
            if not (-HOOK_START_SLACK <= dt <= KILL_WINDOW):
                why.append("announced by instance %d %.2f s before the "
                           "SIGKILL" % (ins1.n, dt))
            ins2 = instance_of(again, instances)
            if ins2 is None or ins2.n <= ins1.n:
                why.append("repeated by instance %s" % (
                    ins2.n if ins2 else "?"))
            per_kill[(ins1.n, k[0], k[1])].add(k[3])
        if why:
            bad.append((k, why))
    # Per killed instance and mailbox, only its last batch may repeat.
    for (n, account, mailbox), uids in sorted(per_kill.items()):
        mine = sorted({int(r["MAILWATCH_UID"]) for r in recs
                       if instance_of(r, instances) is instances[n] and
                       (r["MAILWATCH_ACCOUNT"], r["MAILWATCH_MAILBOX"]) ==
                       (account, mailbox)})
        tail = [u for u in mine if u >= min(uids)]
        if sorted(uids) != tail:
            bad.append(((account, mailbox, n), [
                "repeated UIDs %r are not the last batch instance %d "
                "announced (its UIDs from there: %r)" % (
                    sorted(uids), n, tail)]))
    return dups, bad


def _key(r):
    try:
        return (r.get("MAILWATCH_ACCOUNT"), r.get("MAILWATCH_MAILBOX"),
                int(r.get("MAILWATCH_UIDVALIDITY", 0)),
                int(r.get("MAILWATCH_UID", 0)))
    except ValueError:
        return (r.get("MAILWATCH_ACCOUNT"), r.get("MAILWATCH_MAILBOX"),
                r.get("MAILWATCH_UIDVALIDITY"), r.get("MAILWATCH_UID"))


def _describe_keys(keys, delivered, instances, fault_log, text):
    """A few lines about missed messages: which instance logged them as new
    mail (then its hook never recorded them) and how that instance
    ended."""
    logged = {}
    bounds = [i.offset for i in instances] + [len(text)]
    rx = re.compile(r"^mailwatch: ([^/\n]+)/(.+?): new mail UID (\d+) ", re.M)
    for ins in instances:
        for m in rx.finditer(text, bounds[ins.n], bounds[ins.n + 1]):
            logged.setdefault((m.group(1), m.group(2), int(m.group(3))),
                              []).append(ins)
    out = []
    for k in keys[:15]:
        m = delivered.get(k)
        by = logged.get((k[0], k[1], k[3]), [])
        out.append("%r %s: %s" % (k, m.msgid if m else "", "; ".join(
            "logged as new mail by instance %d (pid %d, ended by %s)" % (
                i.n, i.pid, i.end) for i in by) or "never logged as new"))
    if len(keys) > 15:
        out.append("... %d more" % (len(keys) - 15))
    # What those instances said about hooks they could not run.
    hook_rx = re.compile(r"^mailwatch: [^\n]*: hook /\S+: [^\n]*$", re.M)
    for ins in sorted({i.n: i for k in keys for i in logged.get(
            (k[0], k[1], k[3]), [])}.values(), key=lambda i: i.n):
        lines = hook_rx.findall(text, bounds[ins.n], bounds[ins.n + 1])
        out += ["instance %d: %s" % (ins.n, ln) for ln in lines[:10]]
    if keys:
        out.append("instances: " + ", ".join(
            "%d pid %d %.1f-%s %s rc %s" % (
                i.n, i.pid, i.t_start - T0,
                "%.1f" % (i.t_end - T0) if i.t_end else "?", i.end, i.rc)
            for i in instances))
        out.append("faults: " + ", ".join("%.1f %s" % (t - T0, kind)
                                          for t, kind, _ in fault_log))
    return "\n".join(out)


def test_soak():
    seconds = float(os.environ.get("SOAK_SECONDS") or 180)
    run(seconds, 500)


if __name__ == "__main__":
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    os.environ.setdefault("UBSAN_OPTIONS",
                          "print_stacktrace=1:halt_on_error=1")
    mwtest.main(test_soak)
