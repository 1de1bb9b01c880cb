#!/usr/bin/python3
"""The fault soak (soak.py) in its short setting for "make check": about
60 s (SOAK_SHORT_SECONDS) of mail to five mailboxes while Dovecot restarts,
sessions are kicked and mailwatch is SIGKILLed and SIGTERMed; at least 150
messages; nothing missed, duplicates only within the SIGKILL allowance,
clean exits. "make soak" runs the long one."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
import soak  # noqa: E402


def test_soak_short():
    seconds = float(os.environ.get("SOAK_SHORT_SECONDS") or 60)
    soak.run(seconds, 150)


if __name__ == "__main__":
    mwtest.main(test_soak_short)
