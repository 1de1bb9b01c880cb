#!/usr/bin/python3
"""A clean stop (SIGTERM) while on_new_mail hooks run or wait, against a
private Dovecot: across the stop and the next start, every message's hook
completes, and none that completed runs again (mailwatch(1), SIGNALS).

The hook is a shell script that appends "start UID PID" when it starts and
"done UID" when it finishes to one file, so the order of runs across both
instances of mailwatch is on record."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
from test_watch import finish, need_binaries, wait_idle  # noqa: E402

# $1: the record file; $2: a directory for "ran once" marks. A message
# whose UID is in SLOW_ONCE sleeps 60 s on its first run only; the others
# take 0.5 to 1 s, depending on the UID, so that they end out of order.
HOOK = r"""#!/bin/sh
echo "start $MAILWATCH_UID $$" >> "$1"
case " $SLOW_ONCE " in
*" $MAILWATCH_UID "*)
	mkdir "$2/once.$MAILWATCH_UID" 2>/dev/null && sleep 60 ;;
*)
	sleep "0.$((5 + MAILWATCH_UID % 6))" ;;
esac
echo "done $MAILWATCH_UID" >> "$1"
"""


def start(dc, slow_once=()):
    """mailwatch on alice's INBOX with the recording hook; None unless it
    idles."""
    mw = mwtest.Mailwatch(start=False,
                          env={"SLOW_ONCE": " ".join(map(str, slow_once))})
    script = os.path.join(mw.dir, "hook.sh")
    mwtest._write(script, HOOK, 0o755)
    os.mkdir(os.path.join(mw.dir, "marks"))
    mw.write_config({
        "general": {"notify": False, "hook_timeout": 120,
                    "on_new_mail": "%s {dir}/runs {dir}/marks" % script},
        # What waited since the stop must run its hooks one by one.
        "account test": dc.account("alice", catch_up_max=1000),
    })
    mw.start()
    return mw if ok(wait_idle(mw, 1), "mailwatch reaches IDLE") else None


def runs(mw):
    """The hook's record: [("start", uid, pid) or ("done", uid, None)]."""
    try:
        with open(os.path.join(mw.dir, "runs")) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        w = line.split()
        out.append((w[0], int(w[1]), int(w[2]) if len(w) > 2 else None))
    return out


def done(mw):
    return [u for what, u, _ in runs(mw) if what == "done"]


def restart(mw):
    """Starts mw again on the same state (registered again, so that a
    failing test still stops it)."""
    mw.start()
    mwtest._register(mw)
    return wait_idle(mw, 2)


def check_once(mw, uids, what):
    """Every UID's hook completed exactly once, and no run started for a
    UID after its hook had completed."""
    seen, again = set(), []
    for kind, u, _ in runs(mw):
        if kind == "start" and u in seen:
            again.append(u)
        elif kind == "done":
            seen.add(u)
    counts = {u: done(mw).count(u) for u in uids}
    lost = [u for u in uids if counts[u] == 0]
    twice = [u for u in uids if counts[u] > 1]
    ok(not lost, "%s: no message lost (hooks never completed: %s)"
       % (what, lost))
    ok(not twice and not again,
       "%s: no completed hook runs again (completed twice: %s; started "
       "after completing: %s)" % (what, twice, again))


def test_sigterm_with_hooks_running_and_queued():
    """20 messages in one batch, hooks of 0.5-1 s (16 run at once, 4
    wait), SIGTERM once the first hook completed: mailwatch finishes what
    runs and what waits before it exits, and the next start runs none of
    them again."""
    need_binaries()
    dc = mwtest.Dovecot()
    mw = start(dc)
    if not mw:
        return
    uids = dc.append_many("alice", "INBOX", [
        mwtest.make_message("slow hook %d" % i) for i in range(20)],
        atomic=True)
    ok(mwtest.wait_until(lambda: done(mw), 15),
       "the first hook completed")
    mw.signal(signal.SIGTERM)
    rc = mw.wait_exit(20)
    ok(rc == 0, "SIGTERM: exit 0 (%s)" % rc)
    n_start = sum(1 for r in runs(mw) if r[0] == "start")
    comment("at the exit: %d hooks started, %d completed"
            % (n_start, len(done(mw))))
    ok(sorted(done(mw)) == sorted(uids),
       "every hook completed before mailwatch exited",
       "completed: %s" % sorted(done(mw)))
    n = len(runs(mw))
    if not ok(restart(mw), "started again: IDLE"):
        return
    sentinel = dc.append("alice", "INBOX", mwtest.make_message("sentinel"))
    mwtest.wait_until(lambda: sentinel in done(mw), 15)
    ok([u for _, u, _ in runs(mw)[n:]] == [sentinel, sentinel],
       "the next start runs only the next message's hook",
       "%s" % runs(mw)[n:])
    check_once(mw, uids + [sentinel], "SIGTERM with hooks queued")
    finish(mw)


def test_hook_still_running_at_the_deadline():
    """A hook still running when the stop's deadline passes is killed
    with what it started, and the next start runs it again (it did not
    complete). So does a hook killed from outside during the stop, as
    systemd does to every process of the unit (KillMode=control-group)."""
    need_binaries()
    dc = mwtest.Dovecot()
    # Two messages whose first runs hang.
    mw = start(dc, slow_once=(1, 2))
    if not mw:
        return
    uids = dc.append_many("alice", "INBOX", [
        mwtest.make_message("hangs %d" % i) for i in range(2)], atomic=True)
    if not ok(uids == [1, 2], "UIDs 1 and 2 (%s)" % uids):
        return
    ok(mwtest.wait_until(lambda: len(runs(mw)) == 2, 15),
       "both hooks started")
    pids = {u: p for _, u, p in runs(mw)}
    mark = mw.mark()
    mw.signal(signal.SIGTERM)
    # The hook of UID 2 dies of SIGTERM as systemd would send it.
    ok(mw.wait_log(r"stopping", 10, since=mark), "mailwatch is stopping")
    os.kill(pids[2], signal.SIGTERM)
    rc = mw.wait_exit(30)
    ok(rc == 0, "SIGTERM: exit 0 after the stop's deadline (%s)" % rc)
    ok(not mwtest.pid_alive(pids[1]),
       "the hook still running then was killed (pid %d)" % pids[1])
    log = mw.log()[mark:]
    ok(re.search(r"on_new_mail \S+ \(UID 1\) \(pid %d\) still running: "
                 r"killing it" % pids[1], log), "the log says so")
    ok(re.search(r"on_new_mail \S+ \(UID 2\).*announced again at the next "
                 r"start", log),
       "the log says the hook killed from outside runs again")
    ok(done(mw) == [], "neither hook completed")
    if not ok(restart(mw), "started again: IDLE"):
        return
    ok(mwtest.wait_until(lambda: sorted(done(mw)) == [1, 2],
                         15),
       "the next start runs both hooks again")
    sentinel = dc.append("alice", "INBOX", mwtest.make_message("sentinel"))
    mwtest.wait_until(lambda: sentinel in done(mw), 15)
    check_once(mw, uids + [sentinel], "hooks killed at the stop")
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_sigterm_with_hooks_running_and_queued,
                test_hook_still_running_at_the_deadline)
