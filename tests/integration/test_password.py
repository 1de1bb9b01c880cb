#!/usr/bin/python3
"""password_command runs on the loop against a real Dovecot: READY=1 does not
wait for a slow command, other accounts work meanwhile and the status line
says who waits; a failing command is logged (never its output) and leaves
only its own account out until a reload; a reload that replaces an account
whose command still runs kills that command, and so does SIGTERM."""

import imaplib
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until, pid_alive  # noqa: E402


def statuses(mw):
    """The STATUS= values sent so far, in order."""
    return [line[len("STATUS="):] for m in mw.sd_notify_messages()
            for line in m.split("\n") if line.startswith("STATUS=")]


def last_status(mw, rx, timeout):
    r = re.compile(rx)
    return wait_until(lambda: statuses(mw) and r.search(statuses(mw)[-1]),
                      timeout)


def read_pid(path, timeout=10):
    """The pid a password_command wrote to path, once it is there."""
    def probe():
        try:
            with open(path) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
    return wait_until(probe, timeout)


def main():
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch(None, start=False, sd_notify=True)
    hook = mw.hook_cmd("new")
    alice_pw, bob_pw = dc.users["alice"], dc.users["bob"]

    def account(user, **kw):
        return dict(dc.account(user, password=None), on_new_mail=hook, **kw)

    # a's command ends when the test creates the file go.
    go = os.path.join(mw.dir, "go")
    slow = account("alice", password_command="until [ -e %s ]; do sleep "
                   "0.05; done; echo %s" % (go, alice_pw))
    failing = account("bob", password_command="echo leaked-pw; exit 7")
    direct = dict(dc.account("bob"), on_new_mail=hook)
    mw.write_config({"account a": slow, "account b": failing,
                     "account c": direct})

    # Start: READY=1 and account c do not wait for a's command.
    mw.start()
    ok(mw.wait_sd_notify(r"^READY=1$", 10),
       "READY=1 while a's password_command runs")
    ok(not re.search(r"a/INBOX: ", mw.log()),
       "account a had not started connecting at READY=1", mw.log_tail(20))
    # The status line is recomputed once the loop is idle, which may come
    # after READY=1.
    ok(wait_until(lambda: any("a: waiting for password_command" in s
                                     for s in statuses(mw)), 10),
       "STATUS says 'a: waiting for password_command'", statuses(mw))
    ok(mw.wait_log(r"^mailwatch: b: password_command failed with exit "
                   r"status 7$", 10), "b's failing command is logged")
    ok(mw.wait_log(r"^mailwatch: b: no password, not watching this "
                   r"account; asking password_command again in 10 s \(a "
                   r"reload asks at once\)$", 10),
       "b is left out for now", mw.log_tail(20))
    ok(mw.wait_log(r"c/INBOX: watching \(IDLE\)", 15),
       "c watches while a's command runs")
    ok(not re.search(r"a/INBOX: ", mw.log()),
       "a does not connect before its command ended", mw.log_tail(20))
    open(go, "w").close()
    ok(mw.wait_log(r"a/INBOX: watching \(IDLE\)", 20),
       "a watches once its password came", mw.log_tail(20))
    ok(last_status(mw, r"^2/3 mailboxes watched; b: no password \(exit "
                   r"status 7\); asking password_command again at "
                   r"\d\d:\d\d:\d\d$", 10),
       "STATUS: 2/3 idle, b without a password, and why",
       statuses(mw)[-3:])

    uid_a = dc.append("alice", "INBOX", mwtest.make_message("for a"))
    uid_c = dc.append("bob", "INBOX", mwtest.make_message("for c"))
    recs = mw.wait_hooks(2, 15)
    got = sorted((r["MAILWATCH_ACCOUNT"], r["MAILWATCH_UID"]) for r in recs)
    ok(got == sorted([("a", str(uid_a)), ("c", str(uid_c))]),
       "a message announced on a and on c, nothing from b: %s" % got)

    # Reload: b fixed; a's command changed to one that never ends.
    pid1_path = os.path.join(mw.dir, "a1.pid")
    pid2_path = os.path.join(mw.dir, "a2.pid")
    hang = "echo $$ >%s; exec sleep 60"
    mark = mw.mark()
    mw.reload({"account a": dict(slow, password_command=hang % pid1_path),
               "account b": dict(failing,
                                 password_command="echo %s" % bob_pw),
               "account c": direct})
    ok(mw.wait_log(r"b/INBOX: watching \(IDLE\)", 15, since=mark),
       "after a reload, b gets its password and watches")
    pid1 = read_pid(pid1_path)
    ok(pid1 and pid_alive(pid1), "a's new command runs (pid %s)" % pid1)
    ok(last_status(mw, r"^2/3 mailboxes watched; a: waiting for "
                   r"password_command$", 10),
       "STATUS: a waits for password_command", statuses(mw)[-3:])

    # Reload: a replaced while its command runs: the command is killed.
    mw.reload({"account a": dict(slow, password_command=hang % pid2_path),
               "account b": dict(failing,
                                 password_command="echo %s" % bob_pw),
               "account c": direct})
    pid2 = read_pid(pid2_path)
    ok(pid2 and pid_alive(pid2), "a's third command runs (pid %s)" % pid2)
    ok(pid1 and wait_until(lambda: not pid_alive(pid1), 5),
       "the replaced account's command was killed")
    uid_b = dc.append("bob", "INBOX", mwtest.make_message("for b and c"))
    recs = mw.wait_hooks(4, 15)
    got = sorted(r["MAILWATCH_ACCOUNT"] for r in recs
                 if r["MAILWATCH_UID"] == str(uid_b))
    ok(got == ["b", "c"], "b and c announce bob's new message: %s" % got)

    # SIGTERM while a's command runs: it is killed, the exit is clean.
    t1 = time.monotonic()
    rc = mw.stop()
    ok(rc == 0 and time.monotonic() - t1 < mwtest._t(8),
       "SIGTERM with a command running: exit 0 in %.2f s (%s)" %
       (time.monotonic() - t1, rc))
    ok(pid2 and not pid_alive(pid2), "the running command was killed")
    ok("leaked-pw" not in mw.log() and alice_pw not in mw.log()
       and bob_pw not in mw.log(),
       "no password and no command output in the log")
    ok(not mw.sanitizer_errors(), "no sanitizer reports",
       mw.sanitizer_errors())


def test_retried():
    """A password_command that fails once (a pinentry not answered in
    time, or one started before the desktop session was up) is run again
    10 s later, and the account then watches without a reload; it used
    to be left out until one."""
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch(None, start=False)
    once = os.path.join(mw.dir, "failed-once")
    cmd = ("if [ -e %s ]; then echo %s; else touch %s; exit 1; fi" %
           (once, dc.users["alice"], once))
    mw.write_config({"account a": dict(dc.account("alice", password=None),
                                       password_command=cmd)})
    mw.start()
    ok(mw.wait_log(r"a: no password, not watching this account; asking "
                   r"password_command again in 10 s", 10),
       "the failure is logged, with the next try", mw.log_tail(10))
    ok(mw.wait_log(r"a/INBOX: watching \(IDLE\)", 10 + 15),
       "watching after the second run", mw.log_tail(10))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_changed_on_server():
    """The password changed on the server while mailwatch watched three
    mailboxes, each over a connection of its own (no NOTIFY): at the
    reconnect, the server refuses it once, and the other connections do
    not send it again (trial AM: each did, one after the other, which
    may get an account locked); the account is stopped until a reload,
    and a reload with the new password brings it back."""
    dc = mwtest.Dovecot(notify=False)
    for name in ("A", "B"):
        dc.create_mailbox("alice", name)
    acct = dc.account("alice", mailboxes=["INBOX", "A", "B"])
    mw = mwtest.Mailwatch({"account a": acct}, sd_notify=True)
    ok(wait_until(lambda: mw.log().count("watching (IDLE)") >= 3, 20),
       "changed: three connections watch", mw.log_tail(10))
    with open(dc.passwd_file) as f:
        users = f.read()
    with open(dc.passwd_file, "w") as f:
        f.write(users.replace("alice:{PLAIN}%s:" % dc.users["alice"],
                              "alice:{PLAIN}changed-pw:"))
    # Dovecot reads a changed passwd-file again up to a second later
    # (till then some reconnects get in with the old password).
    def new_password_works():
        try:
            with dc.imap("alice", password="changed-pw"):
                return True
        except imaplib.IMAP4.error:
            return False
    ok(wait_until(new_password_works, 10),
       "changed: the server takes the new password")
    mark = mw.mark()
    dc.kick("alice")
    ok(last_status(mw, r"^0/3 mailboxes watched; .*the login was refused",
                   20),
       "changed: the status line says the login was refused",
       statuses(mw)[-1:])
    # Dovecot answers a failed login 2 s late (auth_failure_delay).
    mwtest.quiet(5)
    sent = re.findall(r"a/\S+: C: \S+ <login", mw.log()[mark:])
    ok(len(sent) == 1, "changed: the password was sent once, and not "
       "again after the server refused it (%d logins)" % len(sent),
       mw.log_tail(20))
    ok(mw.log().count("the server refused the password on another "
                      "connection") == 2,
       "changed: the two other connections say why they stopped")
    mark = mw.mark()
    mw.reload({"account a": dict(acct, password="changed-pw")})
    ok(wait_until(lambda: mw.log()[mark:].count("watching (IDLE)") >= 3,
                  20),
       "changed: watching again after a reload with the new password",
       mw.log_tail(10))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "changed: clean exit")


mwtest.main(main, test_retried, test_changed_on_server)
