#!/usr/bin/python3
"""mailwatch started with signals ignored, as `nohup` (SIGHUP) and a
non-interactive shell's background job (SIGINT, SIGQUIT) leave them, and
SIGCHLD too: against a real Dovecot it still reloads on SIGHUP, learns how
its hooks ended (a failing hook's exit status is logged), starts them with
no signal ignored, and stops cleanly on SIGINT."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402

# Runs mailwatch ($MWTEST_REAL_BIN) with those signals ignored: an ignored
# signal stays ignored across exec. (A shell's trap cannot ignore SIGCHLD.)
WRAPPER = """#!%s
import os, signal, sys
for s in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD):
    signal.signal(s, signal.SIG_IGN)
os.execv(os.environ["MWTEST_REAL_BIN"], sys.argv)
""" % sys.executable

# The hook: records which signals it found ignored, then fails.
HOOK = """#!/bin/sh
grep '^SigIgn:' /proc/self/status > "$1.tmp" && mv "$1.tmp" "$1"
exit 3
"""

# glibc's own signals 32 and 33 (bits 31 and 32): its sigaction() cannot
# change them, and glibc's posix_spawn ignores them in the children it
# starts (Python's subprocess may be one).
GLIBC_OWN = 3 << 31


def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def main():
    real = os.environ.get("MAILWATCH_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "asan", "mailwatch")
    if not mwtest.Mailwatch.available(real):
        raise mwtest.Skip("%s is not built" % real)
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch(None, start=False,
                          env={"MWTEST_REAL_BIN": os.path.abspath(real)})
    wrapper = os.path.join(mw.dir, "ignoring")
    hook = os.path.join(mw.dir, "hook.sh")
    found = os.path.join(mw.dir, "sigign")
    write_exec(wrapper, WRAPPER)
    write_exec(hook, HOOK)
    mw.bin = wrapper
    account = dict(dc.account("alice"), on_new_mail="%s %s" % (hook, found))
    mw.write_config({"account a": account})
    mw.start()
    ok(mw.wait_log(mwtest.WATCHED, 15), "mailwatch watches")

    dc.append("alice", "INBOX", mwtest.make_message("one"))
    ok(wait_until(lambda: os.path.exists(found), 10), "the hook ran")
    with open(found) as f:
        m = re.match(r"SigIgn:\s*([0-9a-f]+)", f.read())
    ignored = int(m.group(1), 16) & ~GLIBC_OWN if m else None
    ok(ignored == 0, "the hook found no signal ignored (SigIgn %s)" %
       (m.group(1) if m else "missing"))
    ok(mw.wait_log(r"a/INBOX: on_new_mail \S+ \(UID \d+\) exited with status 3", 10),
       "the hook's exit status is logged")

    mark = mw.mark()
    mw.signal(signal.SIGHUP)
    ok(mw.wait_log(r"reloading ", 10, since=mark),
       "SIGHUP reloads the configuration")

    mw.signal(signal.SIGINT)
    rc = mw.wait_exit(15)
    ok(rc == 0, "SIGINT stops mailwatch with status 0 (status %s)" % rc)
    errs = mw.sanitizer_errors()
    ok(not errs, "no ASan/UBSan/LSan report", "\n".join(errs[:30]))


mwtest.main(main)
