#!/usr/bin/python3
"""Resume after suspend, end to end: a private dbus-daemon stands in for the
system bus (DBUS_SYSTEM_BUS_ADDRESS), build/tests/fakelogind owns
org.freedesktop.login1 on it and emits PrepareForSleep(true/false) on
SIGUSR1/SIGUSR2, and mailwatch watches a private Dovecot.

A: a healthy idle connection. Sleep then resume: mailwatch logs the resume,
   probes (DONE, the server's completion, a new IDLE) without reconnecting,
   announces nothing again, and announces a message appended right after
   once.
B: a connection that died during sleep. The Dovecot imap process serving
   mailwatch is frozen with SIGSTOP, a message is appended over another
   connection, then sleep/resume: the probe gets no answer, so mailwatch
   must reconnect after the probe timeout (WATCHER_PROBE_TIMEOUT, 10 s) and
   announce the message exactly once, at most 5 s (scaled) later.

Everything on loopback, every process stopped by pid."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402

# watcher.h: WATCHER_PROBE_TIMEOUT; the bound asked of the reconnect: the probe
# timeout, not the 30 s command timeout, plus a (scaled) margin.
PROBE_TIMEOUT = 10
RESUME_TO_ANNOUNCE_MAX = PROBE_TIMEOUT + mwtest._t(5)


class FakeLogind:
    """build/tests/fakelogind on bus (its address is given to it as the
    system bus). .sleep(True/False) emits PrepareForSleep and waits until
    it was written to the bus."""

    def __init__(self, bus, timeout=10):
        self.bin = os.path.join(mwtest.REPO, "build", "tests", "fakelogind")
        if not os.access(self.bin, os.X_OK):
            raise mwtest.Skip("%s is not built" % self.bin)
        self.dir = tempfile.mkdtemp(prefix="mwtest-fakelogind-")
        self.out = os.path.join(self.dir, "fakelogind.out")
        self.proc = None
        self.sent = 0
        mwtest._register(self)
        try:
            env = dict(os.environ)
            env["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
            with open(self.out, "wb") as out:
                self.proc = subprocess.Popen(
                    [self.bin], stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, env=env,
                    start_new_session=True)
            if not mwtest.wait_until(
                    lambda: self._lines().count("ready") or
                    self.proc.poll() is not None, timeout) \
                    or "ready" not in self._lines():
                raise RuntimeError("fakelogind not ready: " +
                                   self.log_tail())
        except BaseException:
            self.stop()
            raise

    def __repr__(self):
        return "<FakeLogind pid=%s>" % (self.proc.pid if self.proc else None)

    def _lines(self):
        try:
            with open(self.out) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def log_tail(self, lines=20):
        return "\n".join(self._lines()[-lines:])

    def sleep(self, sleeping, timeout=5):
        """Emits PrepareForSleep(sleeping); True once it was sent."""
        want = "sent sleep=%d" % (1 if sleeping else 0)
        before = self._lines().count(want)
        os.kill(self.proc.pid, signal.SIGUSR1 if sleeping else
                signal.SIGUSR2)
        return mwtest.wait_until(
            lambda: self._lines().count(want) > before,
            timeout, interval=0.01)

    def stop(self):
        try:
            if self.proc is not None:
                rc = mwtest._stop_popen(self.proc, term_timeout=5)
                if rc != 0:
                    comment("fakelogind exited with %s: %s" %
                            (rc, self.log_tail()))
        finally:
            mwtest._unregister(self)
            shutil.rmtree(self.dir, ignore_errors=True)


def setup(**account):
    """Dovecot, a system bus with fakelogind, mailwatch watching alice's
    INBOX (and the account settings given) with the recording hook and the
    system bus; returns them once mailwatch idles and has seen (and
    announced) one message."""
    dc = mwtest.Dovecot()
    sysbus = mwtest.SessionBus()
    fl = FakeLogind(sysbus)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account test": dc.account("alice", mailboxes=["INBOX"],
                                   **account),
    }, env={"DBUS_SYSTEM_BUS_ADDRESS": sysbus.address})
    if not ok(mw.wait_log(r"test/INBOX: watching \(IDLE\)", 15),
              "mailwatch idles"):
        raise RuntimeError("mailwatch did not reach IDLE")
    ok(not re.search(r"no system bus", mw.log()),
       "mailwatch connected to the (private) system bus")
    uid = dc.append("alice", "INBOX", mwtest.make_message("before sleep"))
    recs = mw.wait_hooks(1, 10)
    ok([r.get("MAILWATCH_UID") for r in recs] == [str(uid)],
       "a message before the sleep is announced", recs)
    return dc, sysbus, fl, mw


def uid_counts(mw):
    counts = {}
    for r in mw.hook_records():
        counts[r.get("MAILWATCH_UID")] = counts.get(
            r.get("MAILWATCH_UID"), 0) + 1
    return counts


def wait_mailwatch_connections(dc, user, n, timeout=10):
    """Waits until exactly n IMAP sessions of user exist (doveadm who);
    returns their pids."""
    def pids():
        r = dc.doveadm("who", "-1", user, check=False)
        found = []
        for line in r.stdout.splitlines()[1:]:
            f = line.split()
            if len(f) >= 3 and f[0] == user and f[1] == "imap" and \
                    f[2].isdigit():
                found.append(int(f[2]))
        return found if len(found) == n else None
    return mwtest.wait_until(pids, timeout, interval=0.1)


def test_resume_healthy_connection():
    dc, sysbus, fl, mw = setup()
    t_start = time.monotonic()

    mark = mw.mark()
    ok(fl.sleep(True), "PrepareForSleep(true) emitted")
    ok(mw.wait_log(r"system is going to sleep", 5, since=mark),
       "mailwatch got PrepareForSleep(true)")
    time.sleep(0.3)
    mark = mw.mark()
    ok(fl.sleep(False), "PrepareForSleep(false) emitted")
    ok(mw.wait_log(r"resumed from suspend \(logind\)", 5, since=mark),
       "the log says it resumed (logind)")
    m = mw.wait_log(r"test/INBOX: C: DONE", 5, since=mark)
    ok(m, "it probes the connection: DONE")
    m2 = m and mw.wait_log(r"test/INBOX: S: \S+ OK Idle completed", 5,
                           since=m.end())
    ok(m2, "the server completes the IDLE")
    m3 = m2 and mw.wait_log(r"test/INBOX: C: \S+ IDLE", 5, since=m2.end())
    ok(m3, "and a new IDLE follows")
    m4 = m3 and mw.wait_log(r"test/INBOX: session: idle-start -> idle", 5,
                            since=m3.end())
    ok(m4, "back in IDLE")
    mwtest.quiet(1)
    after = mw.log()[mark:]
    ok(not re.search(r"connection lost|server closed|reconnecting|"
                     r"no reply from the server", after),
       "a healthy connection is kept (no reconnect)",
       after[-3000:])
    ok(uid_counts(mw) == {"1": 1}, "nothing is announced again",
       mw.hook_records())

    uid = dc.append("alice", "INBOX", mwtest.make_message("after resume"))
    recs = mw.wait_hooks(2, 10)
    ok(len(recs) >= 2 and recs[-1].get("MAILWATCH_UID") == str(uid),
       "a message appended right after the resume is announced", recs)
    mw.settle(1)
    ok(uid_counts(mw) == {"1": 1, str(uid): 1},
       "each message was announced exactly once", mw.hook_records())

    rc = mw.stop()
    ok(rc == 0 and not mw.sanitizer_errors(),
       "mailwatch exits 0 on SIGTERM with no sanitizer errors (rc %s)" % rc,
       "\n".join(mw.sanitizer_errors()[:20]))
    comment("scenario A took %.1f s" % (time.monotonic() - t_start))


def test_resume_dead_connection():
    dc, sysbus, fl, mw = setup()
    t_start = time.monotonic()

    # The only IMAP session of alice now is mailwatch's.
    pids = wait_mailwatch_connections(dc, "alice", 1)
    if not ok(pids, "exactly one IMAP session of alice (mailwatch's)",
              dc.doveadm("who", check=False).stdout):
        return
    frozen = pids[0]
    try:
        with open("/proc/%d/comm" % frozen) as f:
            comm = f.read().strip()
    except OSError:
        comm = None
    if not ok(comm == "imap" and frozen in dc.pids(),
              "its server process %d is an imap child of our Dovecot "
              "(%s)" % (frozen, comm)):
        return

    os.kill(frozen, signal.SIGSTOP)
    try:
        mark = mw.mark()
        uid = dc.append("alice", "INBOX",
                        mwtest.make_message("while the server froze"))
        mwtest.quiet(1)
        ok(uid_counts(mw) == {"1": 1},
           "nothing is announced while the server process is frozen",
           mw.hook_records())

        ok(fl.sleep(True), "PrepareForSleep(true) emitted")
        ok(mw.wait_log(r"system is going to sleep", 5, since=mark),
           "mailwatch got PrepareForSleep(true)")
        time.sleep(0.3)
        t_resume = time.monotonic()
        ok(fl.sleep(False), "PrepareForSleep(false) emitted")
        ok(mw.wait_log(r"resumed from suspend \(logind\)", 5, since=mark),
           "the log says it resumed (logind)")
        ok(mw.wait_log(r"test/INBOX: C: DONE", 5, since=mark),
           "it probes the connection: DONE")

        # The probe gets no answer: a reconnect and a catch-up follow.
        recs = mw.wait_hooks(2, PROBE_TIMEOUT + 10)
        mine = [r for r in recs if r.get("MAILWATCH_UID") == str(uid)]
        ok(mine, "the message appended during the sleep is announced",
           recs)
        if mine:
            took = mine[0]["_t"] - t_resume
            ok(took <= RESUME_TO_ANNOUNCE_MAX,
               "announced %.1f s after the resume signal (at most %.0f s)" %
               (took, RESUME_TO_ANNOUNCE_MAX))
        after = mw.log()[mark:]
        ok(re.search(r"no reply from the server in \d+ s", after),
           "the probe timed out", after[-3000:])
        m = re.search(r"no reply from the server in (\d+) s", after)
        ok(m and int(m.group(1)) == PROBE_TIMEOUT,
           "the log names the time it waited, the probe timeout (%d s), "
           "not the command timeout" % PROBE_TIMEOUT, m and m.group(0))
        ok(re.search(r"no reply from the server in \d+ s \(to IDLE's "
                     r"DONE\)", after),
           "and what was not answered, in IMAP's words, not a state of "
           "mailwatch's", m and m.group(0))
        ok(re.search(r"catching up from UID %d" % uid, after),
           "it reconnected and caught up from UID %d" % uid)
        mw.settle(1)
        ok(uid_counts(mw) == {"1": 1, str(uid): 1},
           "each message was announced exactly once", mw.hook_records())
    finally:
        # Thaw the frozen process: its client is gone, so it ends; kill it
        # by pid if it does not.
        try:
            os.kill(frozen, signal.SIGCONT)
        except ProcessLookupError:
            pass
    gone = mwtest.wait_until(lambda: not mwtest.pid_alive(frozen), 5)
    if not gone:
        comment("imap process %d still there after SIGCONT: killing it" %
                frozen)
        try:
            os.kill(frozen, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # Still healthy afterwards.
    uid2 = dc.append("alice", "INBOX", mwtest.make_message("afterwards"))
    recs = mw.wait_hooks(3, 10)
    ok([r.get("MAILWATCH_UID") for r in recs] == ["1", str(uid), str(uid2)],
       "a later message is announced once too", recs)

    rc = mw.stop()
    ok(rc == 0 and not mw.sanitizer_errors(),
       "mailwatch exits 0 on SIGTERM with no sanitizer errors (rc %s)" % rc,
       "\n".join(mw.sanitizer_errors()[:20]))
    comment("scenario B took %.1f s" % (time.monotonic() - t_start))


def test_resume_connection_outlived():
    """C: a connection that outlives the sleep. The server's imap process
    is frozen while two messages arrive and thawed just after the resume,
    as a server whose pushes waited for the sleeping machine: what it then
    reports arrived while away, and follows catch_up (here skip: not
    announced), as after a reconnect. A trial's ran every hook. A message
    after that is announced."""
    dc, sysbus, fl, mw = setup(catch_up="skip")
    pids = wait_mailwatch_connections(dc, "alice", 1)
    if not ok(pids, "exactly one IMAP session of alice (mailwatch's)",
              dc.doveadm("who", check=False).stdout):
        return
    frozen = pids[0]
    if not ok(frozen in dc.pids(), "its server process %d is our "
              "Dovecot's" % frozen):
        return
    mark = mw.mark()
    os.kill(frozen, signal.SIGSTOP)
    try:
        ok(fl.sleep(True), "PrepareForSleep(true) emitted")
        ok(mw.wait_log(r"system is going to sleep", 5, since=mark),
           "mailwatch got PrepareForSleep(true)")
        asleep = [dc.append("alice", "INBOX",
                            mwtest.make_message("while asleep %d" % i))
                  for i in range(2)]
        ok(fl.sleep(False), "PrepareForSleep(false) emitted")
        ok(mw.wait_log(r"test/INBOX: C: DONE", 5, since=mark),
           "it probes the connection: DONE")
    finally:
        os.kill(frozen, signal.SIGCONT)
    ok(mw.wait_log(r"test/INBOX: not announcing 2 messages that arrived "
                   r"while away \(catch_up = skip\)", 10, since=mark),
       "the mail of the sleep is mail from while away",
       mw.log()[mark:][-3000:])
    ok(not re.search(r"connection lost|reconnecting|no reply from the "
                     r"server", mw.log()[mark:]),
       "over the same connection", mw.log()[mark:][-3000:])
    # Mail of the 10 s after the resume counts as the sleep's.
    ok(mw.wait_log(r"test: after the resume: new mail is live again", 15,
                   since=mark), "10 s later, new mail is live again")
    uid = dc.append("alice", "INBOX", mwtest.make_message("after"))
    mw.wait_hooks(2, 10)
    mw.settle(1)
    ok(uid_counts(mw) == {"1": 1, str(uid): 1},
       "the one after announced, none of the sleep's %s" % asleep,
       mw.hook_records())
    rc = mw.stop()
    ok(rc == 0 and not mw.sanitizer_errors(),
       "mailwatch exits 0 on SIGTERM with no sanitizer errors (rc %s)" % rc,
       "\n".join(mw.sanitizer_errors()[:20]))


if __name__ == "__main__":
    mwtest.main(test_resume_healthy_connection, test_resume_dead_connection,
                test_resume_connection_outlived)
