#!/usr/bin/python3
"""The TLS mode and the port do not match, against a real Dovecot: a
common slip when setting up an account. mailwatch must say what is wrong
in bounded time, send no credentials, and retry with back-off.

  tls = implicit on the plain port: the server greets in clear text where
      a TLS handshake was expected.
  tls = starttls on the implicit-TLS port: the server waits for a TLS
      ClientHello and mailwatch for a greeting; nobody speaks. Only a
      greeting deadline ends this (Dovecot keeps such a connection for
      minutes).

And a configuration file written wrong, or long: every bad line named as
FILE:LINE, and a mailboxes list longer than a line's worth (continued on
indented lines) watched in full."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
from test_watch import finish, need_binaries, wait_warning  # noqa: E402

# mailwatch's command timeout (src/watcher.c COMMAND_TIMEOUT), plus slack.
GREETING_BOUND = 40


def sent_credentials(log, account):
    return [ln for ln in log.splitlines()
            if re.search(r"\b%s/[^:]*: C: " % re.escape(account), ln) and
            re.search(r"LOGIN|AUTHENTICATE|<login", ln, re.I)]


def test_implicit_tls_on_plain_port():
    need_binaries()
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({
        "general": {"notify": False},
        "account imp": dc.account("alice", port=dc.imap_port),
    })
    m = wait_warning(mw, "imp/INBOX", r"TLS handshake", 10)
    ok(m, "a clear line about the failed TLS handshake", mw.log_tail(10))
    ok(m and "is it one for tls = starttls?" in m.group(0),
       "with a hint at the likely slip", m and m.group(0))
    if m:
        comment(m.group(0))
    # Three attempts take about 1 + 2 s of back-off.
    mwtest.wait_until(lambda: len(re.findall(r"imp/INBOX: reconnecting in",
                                             mw.log())) >= 3, 10)
    delays = [float(x) for x in re.findall(
        r"imp/INBOX: reconnecting in ([\d.]+) s", mw.log())]
    ok(len(delays) >= 3 and delays[0] < delays[1] < delays[2],
       "it retries with a growing back-off: %s" % delays)
    ok(not sent_credentials(mw.log(), "imp"), "no credentials sent")
    finish(mw)


def test_starttls_on_implicit_port():
    need_binaries()
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({
        "general": {"notify": False},
        "account st": dc.account("alice", tls="starttls",
                                 port=dc.imaps_port),
    })
    ok(mw.wait_log(r"st/INBOX: connected to \S+ \(plain text until "
                   r"STARTTLS\)", 10),
       "TCP connected; the line says TLS is still to come")
    t0 = time.monotonic()
    # A warning, not the debug trace ("session: greeting -> dead").
    m = wait_warning(mw, "st/INBOX", r"greet|no reply|timed? ?out|"
                     r"server closed|connection lost", GREETING_BOUND)
    dt = time.monotonic() - t0
    ok(m, "the silent server is reported within %d s (%s)" % (
        GREETING_BOUND, "after %.1f s: %s" % (dt, m.group(0)) if m
        else "nothing logged"),
       "mailwatch waits for a greeting with no deadline: the session has "
       "no timer in state 'greeting'. Last lines:\n" + mw.log_tail(5))
    if m:
        ok("then tls = implicit" in m.group(0),
           "with a hint at the likely slip", m.group(0))
        ok(mw.wait_log(r"st/INBOX: reconnecting in", 5),
           "and it will try again")
    ok(not sent_credentials(mw.log(), "st"), "no credentials sent")
    finish(mw)


def check_config(mw, text, cwd=None):
    """Writes text as mw's file and runs --check-config on it (in cwd):
    (exit status, output)."""
    mw.write_config_text(text)
    r = subprocess.run(mw.argv() + ["--check-config"],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=mw.env(), timeout=mwtest._t(20),
                       cwd=cwd)
    return r.returncode, r.stdout + r.stderr


def test_bad_lines_named():
    """Each bad line is reported as FILE:LINE, and the lines after a too
    long one keep their numbers."""
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")
    mw = mwtest.Mailwatch(start=False)
    f = re.escape(mw.config_file)
    text = ("[account a]\n"                       # 1
            "host = 127.0.0.1\n"                  # 2
            "username = alice\n"                  # 3
            "  password = x\n"                    # 4: continues username
            "password_command = echo x\n"         # 5
            "icon = " + "i" * 5000 + "\n"          # 6: too long
            "port = 99999\n"                      # 7: out of range
            "mailboxes = INBOX,\n"                # 8
            "    Lists/dev,\n"                    # 9
            "    Lists/dev\n"                     # 10: duplicate
            "notify maybe\n")                     # 11: no '='
    rc, out = check_config(mw, text)
    ok(rc == 78, "exit status 78 (%d)" % rc, out)
    for line, rx in ((4, r"indented line continues 'username'"),
                     (6, r"line longer than 4096 bytes"),
                     (7, r"port: 99999 is out of range"),
                     (10, r"duplicate mailbox 'Lists/dev'"),
                     (11, r"expected 'key = value'")):
        ok(re.search(r"%s:%d: .*%s" % (f, line, rx), out),
           "line %d reported: %s" % (line, rx), out)
    errors = [ln for ln in out.splitlines() if mw.config_file + ":" in ln]
    ok(len(errors) == 5, "one message per bad line (%d)" % len(errors),
       out)
    ok("i" * 100 not in out, "the long value is not echoed")


def test_check_config_counts():
    """--check-config counts mailboxes named in full apart from patterns,
    which stand for what the server lists."""
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")
    mw = mwtest.Mailwatch(start=False)
    base = ("[account a]\nhost = 127.0.0.1\nusername = alice\n"
            "password_command = echo x\n")
    rc, out = check_config(mw, base + "mailboxes = *\n")
    ok(rc == 0 and re.search(r": OK, 1 account, 1 pattern \(which mailboxes "
                             r"it takes, the server's list tells\)$",
                             out.strip()),
       "mailboxes = *: one pattern, no mailbox (%s)" % out.strip())
    rc, out = check_config(mw, base + "mailboxes = INBOX, Work, Lists/*\n")
    ok(rc == 0 and re.search(r": OK, 1 account, 2 mailboxes and 1 pattern",
                             out), "two names and a pattern (%s)" %
       out.strip())
    rc, out = check_config(mw, base + "mailboxes = INBOX\n"
                           "on_new_mail = /nonexistent/hook\n")
    ok(rc == 0 and re.search(r"on_new_mail: /nonexistent/hook: No such file "
                             r"or directory; it cannot run as things are",
                             out) and
       ": OK, 1 account, 1 mailbox; but see the warning above\n" in out,
       "a hook that cannot run: a warning, and OK points at it (%s)" %
       out.strip())
    rc, out = check_config(mw, base + "mailboxes = INBOX\n")
    ok(rc == 0 and out.strip().endswith(": OK, 1 account, 1 mailbox"),
       "one name, no pattern said (%s)" % out.strip())


def test_new_user_mistakes():
    """Mistakes a trial made that --check-config used to pass: a host
    with its port or as a URL (errors, with the fix), quotes around a
    mailbox name, "~" in a hook's argument, a password program that is
    not installed, a relative hook path, a pipe after "sh -c '...'"
    (warnings, at their lines); and a stray argument."""
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")
    mw = mwtest.Mailwatch(start=False)
    f = re.escape(mw.config_file)
    rc, out = check_config(mw, "[account a]\n"                     # 1
                           "host = 127.0.0.1:993\n"                # 2
                           "username = alice\n"                    # 3
                           "password = x\n"                        # 4
                           "[account b]\n"                         # 5
                           "host = imaps://mail.example.org\n"     # 6
                           "username = alice\n"                    # 7
                           "password = x\n")                       # 8
    ok(rc == 78, "bad hosts: exit status 78 (%d)" % rc, out)
    ok(re.search(r"%s:2: host: '127\.0\.0\.1:993' holds a port; write "
                 r"the port as port = 993" % f, out),
       "host with a port: an error that says port =", out)
    ok(re.search(r"%s:6: host: 'imaps://mail\.example\.org' is a URL" % f,
                 out), "host as a URL: an error", out)
    rc, out = check_config(mw, "[account a]\nhost = [::1]:993\n"
                           "username = alice\npassword = x\n")
    ok(rc == 78 and re.search(r"%s:2: host: '\[::1\]:993' is not a host "
                              r"name or address" % f, out),
       "host as [::1]:993: an error", out)
    # A hook by a path relative to the directory it is started in,
    # there: warned of all the same.
    here = os.path.dirname(mw.config_file)
    os.makedirs(os.path.join(here, "hooks"), exist_ok=True)
    with open(os.path.join(here, "hooks", "new.sh"), "w") as hook:
        hook.write("#!/bin/sh\n")
    os.chmod(os.path.join(here, "hooks", "new.sh"), 0o755)
    rc, out = check_config(mw, "[account a]\n"                     # 1
                           "host = ::1\n"                          # 2
                           "username = alice\n"                    # 3
                           "password_command = nosuch-pass-tool "
                           "show mail\n"                          # 4
                           "[account b]\n"                         # 5
                           "host = fe80::1%eth0\n"                 # 6
                           "username = alice\n"                    # 7
                           "password_command = . ~/.pw && echo x\n"  # 8
                           "[account c]\n"                         # 9
                           "host = 127.0.0.1\n"                    # 10
                           "username = alice\n"                    # 11
                           "password_command = echo x\n"           # 12
                           "mailboxes = INBOX, \"Work Stuff\"\n"     # 13
                           "on_new_mail = echo ~/x\n"              # 14
                           "[account d]\n"                         # 15
                           "host = 127.0.0.1\n"                    # 16
                           "username = bob\n"                      # 17
                           "password_command = echo x\n"           # 18
                           "on_new_mail = hooks/new.sh\n"          # 19
                           "on_click = sh -c 'echo' | tee x\n",    # 20
                           cwd=here)
    ok(rc == 0, "warnings only: exit status 0 (%d)" % rc, out)
    for line, rx in ((4, r"password_command: nosuch-pass-tool: not found "
                         r"in PATH"),
                     (13, r"mailboxes: the quotes around \"Work Stuff\" are "
                          r"part of the name"),
                     (14, r"on_new_mail: ~/x is passed on as it is"),
                     (19, r"on_new_mail: hooks/new.sh is a relative path"),
                     (20, r"on_click: \| is passed on as it is")):
        ok(re.search(r"%s:%d: .*%s" % (f, line, rx), out),
           "line %d warned of: %s" % (line, rx), out)
    ok("host" not in out and ":8:" not in out,
       "IPv6 addresses are hosts; '.' is the shell's own", out)
    warnings = [ln for ln in out.splitlines()
                if ln.startswith("mailwatch: %s:" % mw.config_file)]
    ok(len(warnings) == 5, "five warnings, no more (%d)" % len(warnings),
       out)
    r = subprocess.run(mw.argv() + ["foo"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=mw.env(),
                       timeout=mwtest._t(20))
    ok(r.returncode == 2 and "unexpected argument 'foo'" in r.stderr,
       "a stray argument is named", r.stderr)
    r = subprocess.run(mw.argv() + ["--bogus"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=mw.env(),
                       timeout=mwtest._t(20))
    ok(r.returncode == 2 and
       r.stderr.startswith("mailwatch: unrecognized option '--bogus'"),
       "an unknown option is named, by mailwatch as the other errors "
       "(not by the path it was started as)", r.stderr)


def test_mailboxes_on_several_lines():
    """A mailboxes list longer than a line may be (the old limit was 199
    bytes) written one name per indented line: every mailbox is
    watched, the last one too."""
    need_binaries()
    dc = mwtest.Dovecot()
    boxes = ["Lists/a-mailing-list-with-a-long-name-%02d" % i
             for i in range(6)]
    for b in boxes:
        dc.create_mailbox("alice", b)
    acct = dc.account("alice", mailboxes=None)
    body = "".join("%s = %s\n" % (k, v) for k, v in acct.items())
    body += "mailboxes = INBOX,\n"
    body += "".join("    %s,\n" % b for b in boxes)
    comment("the names alone hold %d bytes" % len("".join(boxes)))
    mw = mwtest.Mailwatch(start=False)
    mw.write_config_text("[general]\nnotify = no\non_new_mail = %s\n"
                         "[account many]\n%s" % (mw.hook_cmd(), body))
    mw.start()
    for b in ["INBOX"] + boxes:
        ok(mw.wait_log(r"many/%s: %s" % (re.escape(b), mwtest.WATCHED), 20),
           "%s watched" % b, mw.log_tail(10))
    uid = dc.append("alice", boxes[-1], mwtest.sample_message("02"))
    recs = mw.wait_hooks(1, 10)
    ok(any(r.get("MAILWATCH_MAILBOX") == boxes[-1] and
           r.get("MAILWATCH_UID") == str(uid) for r in recs),
       "new mail in the last mailbox of the list announced", recs)
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_implicit_tls_on_plain_port,
                test_starttls_on_implicit_port,
                test_bad_lines_named,
                test_check_config_counts,
                test_new_user_mistakes,
                test_mailboxes_on_several_lines)
