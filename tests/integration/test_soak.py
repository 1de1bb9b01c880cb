#!/usr/bin/python3
"""The fault soak (soak.py) in its short setting for "make check": about
60 s (SOAK_SHORT_SECONDS) of mail to five mailboxes while Dovecot restarts,
sessions are kicked and mailwatch is SIGKILLed and SIGTERMed; at least 150
messages; nothing missed, duplicates only within the SIGKILL allowance,
clean exits. "make soak" runs the long one.

First, the SIGKILL allowance itself on made-up hook records, so that a
soak without duplicates does not leave the rule untested."""

import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
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
       "allowance: not three times")
    early = [_rec(1, 90.0, 1), _rec(2, 97.5, 2), _rec(2, 101.0, 50)]
    ok(_judge(early, killed)[1] > 0,
       "allowance: not when first announced more than 2 s before the kill")
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


def test_soak_short():
    seconds = float(os.environ.get("SOAK_SHORT_SECONDS") or 60)
    soak.run(seconds, 150)


if __name__ == "__main__":
    mwtest.main(test_duplicate_rule, test_soak_short)
