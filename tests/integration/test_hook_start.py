#!/usr/bin/python3
"""How hooks are found and what the log says when one cannot start,
against a real Dovecot (trials U and V of src/launch.c):
- a hook named without a '/' runs the executable file of that name in
  PATH, past a directory and a file that is not executable of that name
  in directories before it, as execvp(3) would;
- a script saved with CRLF line ends (its "#!" line names "/bin/sh\\r")
  is logged as not starting, naming that interpreter, with exit status
  127; the watching goes on."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402


def write_file(path, text, mode):
    with open(path, "w", newline="") as f:
        f.write(text)
    os.chmod(path, mode)


def main():
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch(None, start=False)
    shadow, noexec, bin_dir = (os.path.join(mw.dir, d)
                               for d in ("shadow", "noexec", "bin"))
    for d in (shadow, noexec, bin_dir):
        os.mkdir(d)
    os.mkdir(os.path.join(shadow, "mwtest-hook"))
    write_file(os.path.join(noexec, "mwtest-hook"), "exit 0\n", 0o644)
    ran = os.path.join(mw.dir, "ran")
    write_file(os.path.join(bin_dir, "mwtest-hook"),
               '#!/bin/sh\necho "$MAILWATCH_UID" >> "%s"\n' % ran, 0o755)
    crlf = os.path.join(mw.dir, "crlf.sh")
    write_file(crlf, "#!/bin/sh\r\necho ran\r\n", 0o755)
    mw.extra_env["PATH"] = ":".join(
        [shadow, noexec, bin_dir, os.environ.get("PATH", "/usr/bin:/bin")])
    account = dict(dc.account("alice"), on_new_mail="mwtest-hook",
                   on_new_mail_post=crlf)
    mw.write_config({"account a": account})
    mw.start()
    ok(mw.wait_log(mwtest.WATCHED, 15), "mailwatch watches")

    dc.append("alice", "INBOX", mwtest.make_message("one"))
    ok(wait_until(lambda: os.path.exists(ran), 10),
       "the hook found in PATH past a directory and a file that is not "
       "executable ran")
    ok(mw.wait_log(r"a/INBOX: on_new_mail_post \S+crlf\.sh: cannot start "
                   r"/bin/sh\\x0d, which its #! line names: No such file "
                   r"or directory", 10),
       "a CRLF script: the log names the interpreter, carriage return "
       "shown")
    ok(mw.wait_log(r"on_new_mail_post \S+crlf\.sh exited with status 127",
                   10), "and its exit status 127")

    dc.append("alice", "INBOX", mwtest.make_message("two"))
    ok(wait_until(lambda: len(open(ran).read().split()) == 2, 10),
       "the watching goes on: the next message's hook ran too")
    ok(not re.search(r"mwtest-hook.*Permission denied", mw.log()),
       "no 'Permission denied' from the directory or the file before it")
    mw.stop()
    errs = mw.sanitizer_errors()
    ok(not errs, "no ASan/UBSan/LSan report", "\n".join(errs[:30]))


mwtest.main(main)
