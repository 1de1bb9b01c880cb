#!/usr/bin/python3
"""A burst of new mail larger than the hook queue: every message's hook
runs exactly once. At most 16 hooks run at once and the others wait in a
queue; when 1024 wait, mailwatch stops reading from its connections (the
server waits on the full socket) and reads again once 256 are left, so
nothing is dropped and mailwatch's memory stays bounded.

1500 messages are appended at once (pipelined, one connection) to the
INBOX mailwatch watches with NOTIFY. Each hook records its message, then
waits at a gate (opening a FIFO for reading blocks until the test opens
it for writing), so the queue grows whatever the machine's speed; the
gate opens once mailwatch says it paused reading (or, before the change,
dropped a hook). Asserted: each UID's hook ran once, none was dropped
("not running" in the log), reading paused and resumed (the log says
so), the connection stayed up (no reconnect, no second connection) and
no sanitizer report."""

import os
import re
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, comment, wait_until  # noqa: E402
from test_watch import finish, wait_idle  # noqa: E402

MESSAGES = 1500
# Deadlines (scaled by MWTEST_TIMEOUT_SCALE): the queue reaches the high
# mark (about 5 s here: the APPENDs), then every hook ran (about 2 s).
HIGH_MARK = 60
ALL_HOOKS = 120
DROPPED = r"hooks waiting already: not running"
PAUSED = r"\d+ hooks waiting: reading from the servers paused"
RESUMED = r"\d+ hooks waiting: reading from the servers resumed"
CONNECTED = r"\bconnected to \S+: TLS"
# test_reload_while_hooks_wait: more than the 16 hooks that run at once.
RELOAD_MESSAGES = 30
LOST = (r"^.*(?:connection lost|server closed the connection|"
        r"no reply from the server|reconnecting).*$")


def gated_hook(mw, gate):
    """A hook command that appends its UID to hook_file() and returns once
    gate (a FIFO) is open for writing."""
    script = ('echo "$MAILWATCH_UID" >>%s && : <%s' %
              (shlex.quote(mw.hook_file()), shlex.quote(gate)))
    return "/bin/sh -c %s" % mwtest._ini_quote(script)


def hook_uids(mw):
    try:
        with open(mw.hook_file()) as f:
            return [int(line) for line in f if line.strip()]
    except OSError:
        return []


def test_burst_beyond_hook_queue():
    with mwtest.Dovecot() as dc:
        mw = mwtest.Mailwatch(start=False)
        gate = os.path.join(mw.dir, "gate")
        os.mkfifo(gate, 0o600)
        mw.write_config({
            "general": {"notify": False, "burst": 0,
                        "on_new_mail": gated_hook(mw, gate)},
            "account a": dc.account("alice"),
        })
        mw.start()
        if not ok(wait_idle(mw, 1), "mailwatch watches INBOX"):
            return
        conns = len(re.findall(CONNECTED, mw.log()))
        msgs = [mwtest.make_message(subject="burst %d" % i,
                                    body="burst message %d\n" % i)
                for i in range(MESSAGES)]
        uids = dc.append_many("alice", "INBOX", msgs)
        ok(len(uids) == MESSAGES, "%d messages appended" % MESSAGES)
        full = wait_until(lambda: re.search(PAUSED + "|" + DROPPED,
                                            mw.log()) or not mw.running(),
                          HIGH_MARK)
        ok(full and mw.running(), "the hook queue filled up",
           mw.log_tail(10))
        # Open the gate for good: every hook, waiting or to come, passes.
        gate_fd = os.open(gate, os.O_RDWR | os.O_NONBLOCK)
        try:
            # Every hook ran but those dropped.
            def over():
                dropped = len(re.findall(DROPPED, mw.log()))
                return len(hook_uids(mw)) + dropped >= len(uids)
            wait_until(lambda: over() or not mw.running(), ALL_HOOKS)
            mw.settle(0.5)
        finally:
            os.close(gate_fd)
        got = hook_uids(mw)
        missing = sorted(set(uids) - set(got))
        twice = sorted(u for u in set(got) if got.count(u) > 1)
        ok(not missing, "every message's hook ran",
           "%d of %d missing, e.g. %s" % (len(missing), len(uids),
                                          missing[:10]))
        ok(not twice, "no hook ran twice", "twice: %s" % twice[:10])
        ok(set(got) <= set(uids), "hooks only for the appended messages")
        log = mw.log()
        dropped = re.findall(r"^.*%s.*$" % DROPPED, log, re.M)
        ok(not dropped, "no hook dropped",
           "%d drop warnings, e.g. %s" % (len(dropped), dropped[:2]))
        ok(re.search(PAUSED, log), "reading paused at the high mark",
           mw.log_tail(10))
        ok(re.search(RESUMED, log), "reading resumed at the low mark",
           mw.log_tail(10))
        lost = re.findall(LOST, log, re.M)
        ok(not lost, "the connection stayed up", "\n".join(lost[:5]))
        ok(len(re.findall(CONNECTED, log)) == conns,
           "no second connection",
           "connections %d -> %d" % (conns,
                                     len(re.findall(CONNECTED, log))))
        comment("%d hooks for %d messages; %s" % (
            len(got), len(uids),
            "; ".join(re.findall(r"\d+ hooks waiting: reading from the "
                                 r"servers \w+", log))))
        finish(mw)


def test_reload_while_hooks_wait():
    """A reload that restarts the account (its settings changed) while
    hooks wait in the queue: the new connection does not announce again
    what the old one announced. The state file stays below the waiting
    hooks (so that a kill loses none of them), and before the fix the
    restarted account caught up from there: every waiting hook ran
    twice, and a popup came again for each."""
    with mwtest.Dovecot() as dc:
        mw = mwtest.Mailwatch(start=False)
        gate = os.path.join(mw.dir, "gate")
        os.mkfifo(gate, 0o600)
        general = {"notify": False, "burst": 0,
                   "on_new_mail": gated_hook(mw, gate)}
        # Mail caught up is announced one by one (hooks), not summed up.
        account = dict(dc.account("alice"), catch_up_max=100)
        mw.write_config({"general": general, "account a": account})
        mw.start()
        if not ok(wait_idle(mw, 1), "mailwatch watches INBOX"):
            return
        # 16 hooks run (and wait at the gate), the rest wait in the queue.
        msgs = [mwtest.make_message(subject="queued %d" % i)
                for i in range(RELOAD_MESSAGES)]
        uids = dc.append_many("alice", "INBOX", msgs)
        ok(wait_until(lambda: len(hook_uids(mw)) >= 16, 20),
           "16 hooks run and wait at the gate")
        mark = mw.mark()
        mw.reload({"general": general,
                   "account a": dict(account, poll_interval=61)})
        ok(mw.wait_log(r"settings changed: reconnecting", 10, since=mark),
           "the reload restarts the account")
        ok(wait_until(lambda: len(re.findall(mwtest.WATCHED,
                                             mw.log()[mark:])) >= 1, 20),
           "the restarted account watches INBOX again", mw.log_tail(10))
        gate_fd = os.open(gate, os.O_RDWR | os.O_NONBLOCK)
        try:
            wait_until(lambda: len(hook_uids(mw)) >= len(uids), 30)
            mw.settle(1)
        finally:
            os.close(gate_fd)
        got = hook_uids(mw)
        twice = sorted(u for u in set(got) if got.count(u) > 1)
        ok(sorted(set(got)) == sorted(uids), "every message's hook ran",
           "missing %s" % sorted(set(uids) - set(got))[:10])
        ok(not twice, "no hook ran twice across the reload",
           "twice: %s" % twice[:10])
        finish(mw)


if __name__ == "__main__":
    mwtest.main(test_burst_beyond_hook_queue, test_reload_while_hooks_wait)
