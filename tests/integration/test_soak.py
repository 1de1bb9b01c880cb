#!/usr/bin/python3
"""The fault soak (soak.py) in its short setting for "make check": about
60 s (SOAK_SHORT_SECONDS) of mail to five mailboxes while Dovecot restarts,
sessions are kicked and mailwatch is SIGKILLed and SIGTERMed; at least 150
messages; nothing missed, duplicates only within the SIGKILL allowance,
clean exits. "make soak" runs the long one.

First, the SIGKILL allowance itself on made-up hook records, so that a
soak without duplicates does not leave the rule untested. Then the sharpest
case of the soak's rule "nothing missed", which the random soak only
rarely hits: SIGTERM or SIGKILL while many hooks still wait to run."""

import os
import signal
import sys
import time
import types

sys.dont_write_bytecode = True  # no __pycache__ for soak.py in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
import soak  # noqa: E402


def _inst(n, end, t_end, pids):
    return types.SimpleNamespace(n=n, end=end, t_end=t_end,
                                 hook_pids=set(pids))


def _rec(uid, t, pid, mailbox="INBOX"):
    return {"MAILWATCH_ACCOUNT": "one", "MAILWATCH_MAILBOX": mailbox,
            "MAILWATCH_UIDVALIDITY": "7", "MAILWATCH_UID": str(uid),
            "_t": t, "_pid": pid}


def _judge(recs, instances):
    dups, bad = soak.judge_duplicates(sorted(recs, key=lambda r: r["_t"]),
                                      instances)
    return len(dups), len(bad)


def test_duplicate_rule():
    killed = [_inst(0, "sigkill", 100.0, range(1, 50)),
              _inst(1, "sigterm", 200.0, range(50, 100)),
              _inst(2, "final", 300.0, range(100, 150))]
    # UIDs 3, 4 were the batch in flight (the hook of 4 recorded just
    # after the kill); instance 1 announces them again.
    base = [_rec(1, 90.0, 1), _rec(2, 95.0, 2), _rec(3, 99.5, 3),
            _rec(4, 100.05, 4), _rec(3, 101.0, 50), _rec(4, 101.0, 51)]
    ok(_judge(base, killed) == (2, 0),
       "allowance: the last batch before a SIGKILL may repeat once")
    ok(_judge(base + [_rec(4, 102.0, 52)], killed)[1] > 0,
       "allowance: not three times for one SIGKILL")
    # Killed again before it saved the state: the batch repeats once more.
    twice = [_inst(0, "sigkill", 100.0, range(1, 50)),
             _inst(1, "sigkill", 103.0, range(50, 100)),
             _inst(2, "final", 300.0, range(100, 150))]
    ok(_judge(base + [_rec(3, 104.0, 100), _rec(4, 104.0, 101)],
              twice) == (2, 0),
       "allowance: once per SIGKILL when two come in a row")
    early = [_rec(1, 90.0, 1), _rec(2, 99.5 - soak.KILL_WINDOW, 2),
             _rec(2, 101.0, 50)]
    ok(_judge(early, killed)[1] > 0,
       "allowance: not when first announced more than KILL_WINDOW before "
       "the kill")
    gap = [_rec(5, 99.0, 5), _rec(6, 99.2, 6), _rec(5, 101.0, 50)]
    ok(_judge(gap, killed)[1] > 0,
       "allowance: only the last UIDs the killed instance announced")
    other_mbox = [_rec(5, 99.0, 5), _rec(6, 99.2, 6, "Work"),
                  _rec(5, 101.0, 50)]
    ok(_judge(other_mbox, killed) == (1, 0),
       "allowance: per mailbox (each watcher has its own batch)")
    term = [_rec(60, 199.5, 60), _rec(60, 201.0, 100)]
    ok(_judge(term, killed)[1] > 0, "allowance: not after a SIGTERM")
    same = [_rec(7, 99.5, 7), _rec(7, 99.6, 8)]
    ok(_judge(same, killed)[1] > 0,
       "allowance: not repeated by the killed instance itself")
    unknown = [_rec(8, 99.5, 999), _rec(8, 101.0, 50)]
    ok(_judge(unknown, killed)[1] > 0,
       "allowance: not for a hook no instance started")


def _hooks_queued_at(sig):
    """40 messages in one MULTIAPPEND, a hook that takes 1 s (so most of
    them wait in the hook queue), sig right after the batch was announced,
    then mailwatch again on the same state: every message must be
    announced (after SIGTERM exactly once)."""
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch(start=False)
    mw.write_config({
        "general": {"notify": False, "on_new_mail": mw.hook_cmd(sleep=1)},
        # The next start runs each message's hook, not one summary.
        "account one": dc.account("alice", mailboxes=["INBOX"],
                                  catch_up_max=1000)})
    mw.start()
    if not ok(mw.wait_log(r"one/INBOX: watching \(IDLE\)", 15),
              "%s: mailwatch idles" % sig.name):
        return
    uids = dc.append_many("alice", "INBOX", [
        mwtest.make_message("queued %d" % i) for i in range(40)],
        atomic=True)
    ok(mw.wait_log(r"one/INBOX: new mail UID %d " % uids[-1], 15),
       "%s: the batch of 40 is announced" % sig.name)
    # The signal comes while hooks of the batch run and the rest wait.
    ok(mwtest.wait_until(lambda: len(mw.hook_records()) >= 16, 10,
                         interval=0.005),
       "%s: 16 hooks run, the rest wait" % sig.name)
    t = time.monotonic()
    mw.signal(sig)
    rc = mw.wait_exit(15)
    started = mw.log().count(" started (pid")
    comment("%s %.2f s after the batch: rc %s, %d hooks started, %d "
            "recorded" % (sig.name, time.monotonic() - t, rc, started,
                          len(mw.hook_records())))
    if sig == signal.SIGTERM:
        ok(rc == 0, "SIGTERM: exit 0 (rc %s)" % rc)
    mark = mw.mark()
    mw.start()
    ok(mw.wait_log(r"one/INBOX: watching \(IDLE\)", 15, since=mark),
       "%s: mailwatch idles again" % sig.name)
    # Hooks take 1 s, 16 at a time at least: 40 are done within 4 s.
    mwtest.wait_until(lambda: len({r["MAILWATCH_UID"] for r in
                                   mw.hook_records()}) >= len(uids), 12)
    mw.settle(0.5, 15)
    counts = {}
    for r in mw.hook_records():
        counts[int(r["MAILWATCH_UID"])] = counts.get(
            int(r["MAILWATCH_UID"]), 0) + 1
    missing = [u for u in uids if u not in counts]
    ok(not missing, "%s with hooks queued: nothing missed (missing %d of "
       "%d: %s)" % (sig.name, len(missing), len(uids),
                    _ranges(missing)))
    if sig == signal.SIGTERM:
        twice = sorted(u for u, n in counts.items() if n > 1)
        ok(not twice, "SIGTERM with hooks queued: nothing announced twice",
           _ranges(twice))
    rc = mw.stop()
    ok(rc == 0 and not mw.sanitizer_errors(),
       "%s: clean exit at the end (rc %s)" % (sig.name, rc),
       "\n".join(mw.sanitizer_errors()[:20]))


def _ranges(uids):
    out, uids = [], sorted(uids)
    for u in uids:
        if out and out[-1][1] == u - 1:
            out[-1][1] = u
        else:
            out.append([u, u])
    return ",".join("%d" % a if a == b else "%d:%d" % (a, b)
                    for a, b in out)


def test_sigterm_with_hooks_queued():
    _hooks_queued_at(signal.SIGTERM)


def test_sigkill_with_hooks_queued():
    _hooks_queued_at(signal.SIGKILL)


def test_soak_short():
    seconds = float(os.environ.get("SOAK_SHORT_SECONDS") or 60)
    soak.run(seconds, 150)


if __name__ == "__main__":
    mwtest.main(test_duplicate_rule, test_sigterm_with_hooks_queued,
                test_sigkill_with_hooks_queued, test_soak_short)
