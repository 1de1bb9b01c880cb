#!/usr/bin/python3
"""One mailwatch per account: two mailwatch processes with the same state
directory (a `mailwatch -v` in a terminal while the user service runs, or
two instances of the template unit whose files both name an account
"main") must not both announce its mail nor both write its state file.
The second waits, says for whom (log, STATUS=, `mailwatch status`),
does not even run password_command, and takes over once the first
stops, or lets go of the account in a reload. Accounts of other names
run side by side. Against a private Dovecot over real TLS."""

import fcntl
import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402
from test_watch import finish, uids_of, wait_idle  # noqa: E402

# Deadlines (scaled by MWTEST_TIMEOUT_SCALE).
START = 15     # start -> watching; a waiting line logged
TAKEOVER = 15  # the first lets go -> the second watches (it tries every 3 s)
HOOK = 10      # delivery -> hook


def need_binary():
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")


def second(first, sections, **kw):
    """A Mailwatch with its own directory, log and hooks, but the state
    directory (XDG_STATE_HOME) of first."""
    env = {"XDG_STATE_HOME": os.path.join(first.dir, "state")}
    return mwtest.Mailwatch(sections, env=env, **kw)


def lock_path(mw, account):
    """The lock file of account (letters only) in mw's state directory."""
    return os.path.join(mw.state_dir(), "@%s@lock" % account)


def lock_held(path):
    """True when some process holds the flock() of path."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def file_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def waiting_rx(account, pid):
    return (r"%s: account is watched by another mailwatch \(pid %d\); "
            r"waiting for it to stop" % (account, pid))


def statuses(mw):
    """The STATUS= values mw sent so far, in order."""
    return [line[len("STATUS="):] for m in mw.sd_notify_messages()
            for line in m.split("\n") if line.startswith("STATUS=")]


def reloaded(mw, sections=None):
    """SIGHUP (after writing sections, when given); True once mw said
    READY=1 again (it needs sd_notify=True)."""
    n = len(mw.sd_notify_messages())
    mw.reload(sections)
    return wait_until(lambda: any(
        "READY=1" in m for m in mw.sd_notify_messages()[n:]), 10)


def announced_by_a_alone(dc, a, b, subject, what):
    """The first mail to alice's INBOX, while A and B both run: ok() that
    A's hook ran for it once and B's hook never ran. Returns its UID."""
    uid = dc.append("alice", "INBOX", mwtest.make_message(subject))
    a.wait_hooks(1, HOOK)
    a.settle()
    b.settle()
    ok(uids_of(a.hook_records()) == [uid] and not b.hook_records(), what,
       "A's hook UIDs %s, B's %s" % (uids_of(a.hook_records()),
                                    uids_of(b.hook_records())))
    return uid


def test_second_waits_then_takes_over():
    """A watches; B (same configuration and state directory) waits for A,
    says so once, with A's pid, in its log, its STATUS= and `mailwatch
    status`, and runs no password_command; mail is announced by A alone.
    A stops: B takes over, catches up with what came in between and
    announces the next message. Every message once over the whole run."""
    need_binary()
    dc = mwtest.Dovecot()
    bus = mwtest.SessionBus()
    # Each process's password_command leaves a line in its own directory.
    account = dc.account("alice", password=None, password_command=(
        "echo ran >> {dir}/password-runs; echo %s" % dc.users["alice"]))
    sections = {"general": {"notify": False, "on_new_mail": "{hook}"},
                "account main": account}
    a = mwtest.Mailwatch(sections, start=False)
    r = subprocess.run([a.bin, "-c", a.config_file, "--check-config"],
                       env=a.env(), capture_output=True, text=True,
                       timeout=mwtest._t(10))
    made = (os.listdir(a.state_dir()) if os.path.isdir(a.state_dir())
            else [])
    ok(r.returncode == 0 and not [f for f in made if "@lock" in f],
       "--check-config takes no lock (exit %d; state directory %s)" % (
           r.returncode, made))
    a.start()
    if not ok(wait_idle(a, 1, START), "A watches the account"):
        return
    lock = lock_path(a, "main")
    ok(file_text(lock) == "%d\n" % a.pid() and
       stat.S_IMODE(os.stat(lock).st_mode) == 0o600 and lock_held(lock),
       "A holds @main@lock, mode 0600, with its pid in it",
       "%r" % file_text(lock))

    b = second(a, sections, bus=bus, sd_notify=True)
    ok(b.wait_log(waiting_rx("main", a.pid()), START),
       "B logs that A (pid %d) watches the account and that it waits"
       % a.pid(), b.log_tail(15))
    ok(wait_until(lambda: statuses(b) and re.search(
        r"0/1 mailboxes watched; main: watched by another mailwatch "
        r"\(pid %d\), waiting$" % a.pid(), statuses(b)[-1]), START),
       "B's STATUS= says main waits for pid %d" % a.pid(),
       repr(statuses(b)[-3:]))

    def status_text():
        p = subprocess.run([b.bin, "status"], env=bus.env(),
                           capture_output=True, text=True,
                           timeout=mwtest._t(10))
        return p.stdout
    ok(wait_until(lambda: "main: watched by another mailwatch (pid %d), "
                  "waiting" % a.pid() in status_text(), START),
       "`mailwatch status` says so too", status_text())
    ok(not os.path.exists(os.path.join(b.dir, "password-runs")),
       "B did not run password_command")

    u1 = announced_by_a_alone(dc, a, b, "while both run",
                              "new mail: A's hook runs once, B's not "
                              "at all")
    waits = re.findall(r"watched by another mailwatch", b.log())
    ok(len(waits) == 1, "B logged one warning while waiting (%d)"
       % len(waits))

    finish(a, "A")
    u2 = dc.append("alice", "INBOX", mwtest.make_message("between"))
    ok(b.wait_log(r"main: the other mailwatch let go of this account: "
                  r"starting", TAKEOVER),
       "A stopped: B says it takes over", b.log_tail(15))
    ok(wait_idle(b, 1, START), "B watches the account")
    ok(wait_until(lambda: file_text(lock) == "%d\n" % b.pid(), 5),
       "B's pid in the lock file now", "%r" % file_text(lock))
    b.wait_hooks(1, HOOK)
    u3 = dc.append("alice", "INBOX", mwtest.make_message("after"))
    b.wait_hooks(2, HOOK)
    b.settle()
    got_a, got_b = uids_of(a.hook_records()), uids_of(b.hook_records())
    ok(got_b == [u2, u3],
       "B announces what came while it took over, then the next message",
       "B's hook UIDs %s, want %s" % (got_b, [u2, u3]))
    ok(sorted(got_a + got_b) == [u1, u2, u3],
       "over the whole run every message was announced once",
       "A %s, B %s, want %s" % (got_a, got_b, [u1, u2, u3]))
    ok(wait_until(lambda: statuses(b) and
                  "another" not in statuses(b)[-1], 5),
       "B's STATUS= no longer says it waits", repr(statuses(b)[-1:]))
    ok(file_text(os.path.join(b.dir, "password-runs")) == "ran\n",
       "B ran password_command once it held the account")
    finish(b, "B")


def test_other_names_run_side_by_side():
    """Two processes, one state directory, accounts "one" and "two":
    no false conflict; each watches and announces its own mail."""
    need_binary()
    dc = mwtest.Dovecot()
    gen = {"notify": False, "on_new_mail": "{hook}"}
    a = mwtest.Mailwatch({"general": gen,
                          "account one": dc.account("alice")})
    b = second(a, {"general": gen, "account two": dc.account("bob")})
    ok(wait_idle(a, 1, START) and wait_idle(b, 1, START),
       "both processes watch their account")
    ua = dc.append("alice", "INBOX", mwtest.make_message("to one"))
    ub = dc.append("bob", "INBOX", mwtest.make_message("to two"))
    a.wait_hooks(1, HOOK)
    b.wait_hooks(1, HOOK)
    a.settle()
    b.settle()
    got = [(r["MAILWATCH_ACCOUNT"], int(r["MAILWATCH_UID"]))
           for r in a.hook_records() + b.hook_records()]
    ok(got == [("one", ua), ("two", ub)],
       "each announces its own account's mail, once", "%s" % got)
    ok(not re.search(r"another mailwatch", a.log() + b.log()),
       "neither says the other watches its account")
    ok(lock_held(lock_path(a, "one")) and lock_held(lock_path(a, "two")),
       "a lock per account: %s" % sorted(os.listdir(a.state_dir())))
    finish(a, "A")
    finish(b, "B")


def test_reload():
    """A reload of the waiting process keeps it waiting (no second
    warning); one of the watching process that leaves the account alone
    keeps its lock; one that removes the account lets go of it, and the
    waiting process takes over while the other account stays with A."""
    need_binary()
    dc = mwtest.Dovecot()
    gen = {"notify": False, "on_new_mail": "{hook}"}
    main, other = dc.account("alice"), dc.account("bob")
    a = mwtest.Mailwatch({"general": gen, "account main": main,
                          "account other": other}, sd_notify=True)
    if not ok(wait_idle(a, 2, START), "A watches both accounts"):
        return
    b = second(a, {"general": gen, "account main": main}, sd_notify=True)
    ok(b.wait_log(waiting_rx("main", a.pid()), START), "B waits for A",
       b.log_tail(10))
    ok(reloaded(b), "B reloaded")
    ok(len(re.findall(r"another mailwatch", b.log())) == 1,
       "B, reloaded, waits on without a second warning", b.log_tail(10))
    ok(reloaded(a), "A reloaded with the same file")
    ok(lock_held(lock_path(a, "main")) and
       file_text(lock_path(a, "main")) == "%d\n" % a.pid(),
       "A still holds the lock of main")
    u1 = announced_by_a_alone(dc, a, b, "after reloads",
                              "mail to main: announced by A alone")

    mark = a.mark()
    ok(reloaded(a, {"general": gen, "account other": other}),
       "A reloaded without main")
    ok(b.wait_log(r"main: the other mailwatch let go of this account",
                  TAKEOVER), "B takes over main", b.log_tail(10))
    ok(wait_idle(b, 1, START), "B watches main")
    u2 = dc.append("alice", "INBOX", mwtest.make_message("to B"))
    u3 = dc.append("bob", "INBOX", mwtest.make_message("to other"))
    b.wait_hooks(1, HOOK)
    a.wait_hooks(2, HOOK)
    a.settle()
    b.settle()
    got_a = [(r["MAILWATCH_ACCOUNT"], int(r["MAILWATCH_UID"]))
             for r in a.hook_records()]
    ok(uids_of(b.hook_records()) == [u2] and
       got_a == [("main", u1), ("other", u3)],
       "main's mail announced by B, other's by A, once each",
       "A %s, B %s" % (got_a, uids_of(b.hook_records())))
    ok(not re.search(r"another mailwatch", a.log()[mark:]),
       "A's other account was never in conflict")
    finish(a, "A")
    finish(b, "B")


def test_no_lock_watches_anyway():
    """A lock file that cannot be opened (here a directory in its place):
    a warning, and the account is watched as before there were locks."""
    need_binary()
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({"general": {"notify": False,
                                       "on_new_mail": "{hook}"},
                           "account main": dc.account("alice")},
                          start=False)
    os.makedirs(lock_path(mw, "main"), 0o700)
    mw.start()
    ok(mw.wait_log(r"main: state: cannot lock .*@main@lock: Is a "
                   r"directory; watching this account anyway", START),
       "a warning says the account is watched without its lock",
       mw.log_tail(10))
    ok(wait_idle(mw, 1, START), "and it is watched")
    u = dc.append("alice", "INBOX", mwtest.make_message("unlocked"))
    ok(uids_of(mw.wait_hooks(1, HOOK)) == [u], "its mail is announced")
    finish(mw, "mailwatch")


if __name__ == "__main__":
    mwtest.main(test_second_waits_then_takes_over,
                test_other_names_run_side_by_side,
                test_reload,
                test_no_lock_watches_anyway)
