#!/usr/bin/python3
"""mailwatch as a systemd service: the sd_notify protocol on a NOTIFY_SOCKET
of our own (READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1), SIGHUP
with an invalid configuration, SIGTERM, journald structured logging (against
a journal socket of our own, in a private mount namespace) and its plain
fallback, and `systemd-analyze verify` on the generated units. Loopback
only; every process is stopped by pid."""

import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment, skip  # noqa: E402

REPO = mwtest.REPO


def closed_port():
    """A loopback TCP port nothing listens on (bound, then closed)."""
    return mwtest.free_ports(1)[0]


def unreachable_account(port):
    return {"host": "127.0.0.1", "port": port, "tls": "none",
            "username": "alice", "password": "secret"}


def statuses(mw):
    """The STATUS= values sent so far, in order."""
    out = []
    for m in mw.sd_notify_messages():
        for line in m.split("\n"):
            if line.startswith("STATUS="):
                out.append(line[len("STATUS="):])
    return out


def assignments(mw, key):
    """How many times key=1 (READY, STOPPING, ...) was sent."""
    return sum(1 for m in mw.sd_notify_messages()
               for line in m.split("\n") if line == key + "=1")


def last_status_matches(mw, rx, timeout):
    """Waits (timeout seconds, scaled) until the last STATUS= matches
    rx."""
    r = re.compile(rx)
    return mwtest.wait_until(
        lambda: statuses(mw) and r.search(statuses(mw)[-1]), timeout)


def write_wrapper(mw, body):
    """Makes mw run through a /bin/sh wrapper (body, then exec of the real
    binary with the same pid) and returns its path."""
    path = os.path.join(mw.dir, "wrapper.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nset -eu\n%s\nexec \"$MWTEST_REAL_BIN\" \"$@\"\n"
                % body)
    os.chmod(path, 0o755)
    mw.extra_env["MWTEST_REAL_BIN"] = mw.bin
    mw.bin = path
    return path


def test_terminal_log():
    """stderr a terminal (mailwatch run by hand): each line starts with the
    time, and a warning or an error says so."""
    mw = mwtest.Mailwatch(start=False)
    mw.write_config_text("[account a]\nhost = 127.0.0.1\nusername = u\n"
                         "password_command = echo x\n"
                         "on_new_mail = /nonexistent/hook\n"
                         "colour = blue\n")
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(mw.argv()[0], mw.argv() + ["--check-config"],
                      mw.env())
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + mwtest._t(20)
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)

    def reaped():
        done, st = os.waitpid(pid, os.WNOHANG)
        return (st,) if done else None
    got = mwtest.wait_until(reaped, 10)
    if not got:  # still running: stopped, by pid
        os.kill(pid, signal.SIGKILL)
        got = (os.waitpid(pid, 0)[1],)
    status = got[0]
    text = out.decode(errors="replace").replace("\r\n", "\n")
    ok(re.search(r"(?m)^\d\d:\d\d:\d\d mailwatch: warning: \S+:5: "
                 r"on_new_mail: /nonexistent/hook: ", text),
       "on a terminal: the time and 'warning:'", text)
    ok(re.search(r"(?m)^\d\d:\d\d:\d\d mailwatch: error: \S+:6: unknown "
                 r"key 'colour'", text),
       "and 'error:' for an error", text)
    ok(os.WEXITSTATUS(status) == 78, "exit 78 (EX_CONFIG)",
       "status %d" % status)


# ---------------------------------------------------------------------------

def test_ready_without_server():
    """READY=1 once the config is loaded and the loop armed, not after a
    login: with the server unreachable it still comes, and the status
    says when the next attempt is."""
    mw = mwtest.Mailwatch({"general": {"notify": False},
                           "account down":
                           unreachable_account(closed_port())},
                          sd_notify=True, args=())
    ok(mw.wait_sd_notify(r"^READY=1$", 5),
       "READY=1 with the IMAP server unreachable")
    ok(last_status_matches(mw, r"^0/1 mailboxes watched; down/INBOX: "
                           r"reconnecting \(cannot connect: .*Connection "
                           r"refused\)$", 5),
       "STATUS says 'down/INBOX: reconnecting' and why (the first tries "
       "are seconds apart: no time that would change at each)",
       statuses(mw))
    ok(mw.running(), "still running while the server is down")
    ok(assignments(mw, "READY") == 1, "READY=1 sent once",
       mw.sd_notify_messages())
    ok(not any("WATCHDOG=1" in m for m in mw.sd_notify_messages()),
       "no WATCHDOG=1 without WATCHDOG_USEC")
    rc = mw.stop()
    ok(rc == 0, "SIGTERM: exit status 0 (%s)" % rc)
    ok(assignments(mw, "STOPPING") == 1, "STOPPING=1 on SIGTERM",
       mw.sd_notify_messages())
    ok(not mw.sanitizer_errors(), "no sanitizer reports",
       mw.sanitizer_errors())


def test_status_follows_the_server():
    """STATUS= is kept current: idle, reconnecting while the server is
    down, idle again; STOPPING=1 and exit 0 at SIGTERM."""
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({"general": {"notify": False},
                           "account test": dc.account("alice")},
                          sd_notify=True)
    ok(mw.wait_sd_notify(r"^READY=1$", 5), "READY=1")
    ok(last_status_matches(mw, r"^1/1 mailboxes watched$", 10),
       "STATUS=1/1 mailboxes watched once in IDLE", statuses(mw))
    dc.stop_server()
    ok(last_status_matches(mw, r"^0/1 mailboxes watched; test/INBOX: "
                           r"reconnecting \((?:server closed the connection|"
                           r"cannot connect: .*)\)$", 10),
       "server stopped: STATUS 'test/INBOX: reconnecting' and why",
       statuses(mw))
    dc.start()
    ok(last_status_matches(mw, r"^1/1 mailboxes watched$", 15),
       "server back: STATUS=1/1 mailboxes watched again", statuses(mw)[-5:])
    ok(assignments(mw, "READY") == 1, "READY=1 still sent only once")
    rc = mw.stop()
    msgs = mw.sd_notify_messages()
    ok(rc == 0 and msgs and msgs[-1] == "STOPPING=1",
       "SIGTERM: STOPPING=1 last, exit 0 (%s)" % rc, msgs[-3:])
    ok(not mw.sanitizer_errors(), "no sanitizer reports",
       mw.sanitizer_errors())


def test_watchdog():
    """WATCHDOG_USEC (and WATCHDOG_PID = mailwatch's pid, as systemd sets
    it) makes the loop send WATCHDOG=1 at least every half period; with
    WATCHDOG_PID naming another process, none."""
    cfg = {"general": {"notify": False},
           "account down": unreachable_account(closed_port())}
    mw = mwtest.Mailwatch(cfg, sd_notify=True, args=(), start=False,
                          env={"WATCHDOG_USEC": "2000000"})
    write_wrapper(mw, "export WATCHDOG_PID=$$")
    mw.start()
    t0 = time.monotonic()
    got = mwtest.wait_until(
        lambda: sum("WATCHDOG=1" in m.split("\n")
                    for m in mw.sd_notify_messages()) >= 3, 5)
    took = time.monotonic() - t0
    ok(got, "WATCHDOG_USEC=2000000, WATCHDOG_PID=pid: three WATCHDOG=1 "
       "in %.1f s" % took, mw.sd_notify_messages())
    ok(took < mwtest._t(4.5), "WATCHDOG=1 at least every 1.5 s (three in "
       "%.1f s)" % took)
    ok(mw.stop() == 0, "exit 0")

    other = mwtest.Mailwatch(cfg, sd_notify=True, args=(),
                             env={"WATCHDOG_USEC": "1000000",
                                  "WATCHDOG_PID": "1"})
    ok(other.wait_sd_notify(r"^READY=1$", 5), "READY=1 (WATCHDOG_PID=1)")
    mwtest.quiet(1.5)
    ok(not any("WATCHDOG=1" in m for m in other.sd_notify_messages()),
       "WATCHDOG_PID naming another process: no WATCHDOG=1",
       other.sd_notify_messages())
    ok(other.stop() == 0 and not mw.sanitizer_errors() and
       not other.sanitizer_errors(), "exit 0, no sanitizer reports")


def test_reload_invalid_config():
    """SIGHUP with an invalid configuration: the error is logged with file
    and line, the daemon keeps the running configuration, tells systemd
    RELOADING=1 then READY=1, and still announces mail."""
    dc = mwtest.Dovecot()
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus) if mwtest.Notifyd.available() else None
    sections = {"general": {"notify": True, "on_new_mail": "{hook}"},
                "account test": dc.account("alice")}
    mw = mwtest.Mailwatch(sections, bus=bus, sd_notify=True)
    ok(mw.wait_log(r"INBOX: watching \(IDLE\)", 10), "idling")
    mark = mw.mark()
    n_ready = assignments(mw, "READY")
    bad = {"general": dict(sections["general"], bogus_key=1),
           "account test": dc.account("alice"),
           "account test2": {"host": ""}}
    mw.reload(bad)
    m = mw.wait_log(r"new configuration is invalid", 5, since=mark)
    ok(m, "log: 'new configuration is invalid; keeping the running one'",
       mw.log()[mark:])
    ok(mw.wait_log(r"mailwatch\.ini:\d+:.*bogus_key", 1, since=mark),
       "log names the file, the line and the bad key", mw.log()[mark:])
    mwtest.wait_until(lambda: assignments(mw, "READY") > n_ready, 5)
    ok(mw.running(), "still running")
    msgs = mw.sd_notify_messages()
    ok("RELOADING=1" in msgs and assignments(mw, "READY") == n_ready + 1
       and msgs.index("RELOADING=1") < len(msgs) - 1,
       "RELOADING=1 then READY=1", msgs[-4:])
    ok(last_status_matches(mw, r"^1/1 mailboxes watched$", 5),
       "STATUS still 1/1 mailboxes watched", statuses(mw)[-3:])
    uid = dc.append("alice", "INBOX", mwtest.sample_message("01"))
    recs = mw.wait_hooks(1, 10)
    ok(recs and recs[0].get("MAILWATCH_UID") == str(uid),
       "new mail after the failed reload: hook ran (uid %s)" % uid, recs)
    if nd:
        ok(nd.wait_records(1, 10), "and a notification was sent")
    else:
        skip("and a notification was sent", "build/tests/notifyd not built")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "exit 0, no sanitizer reports", mw.sanitizer_errors())


def test_invalid_config_at_start():
    """An invalid configuration at start: exit 78 (the units'
    RestartPreventExitStatus), never READY=1."""
    mw = mwtest.Mailwatch({"general": {"notify": "perhaps"},
                           "account down":
                           unreachable_account(closed_port())},
                          sd_notify=True, args=())
    rc = mw.wait_exit(10)
    ok(rc == 78, "exit status 78 (%s)" % rc, mw.log_tail(5))
    ok(not any("READY=1" in m for m in mw.sd_notify_messages()),
       "no READY=1", mw.sd_notify_messages())
    ok(mw.wait_log(r"mailwatch\.ini:2: .*notify", 1),
       "the error names file, line and key", mw.log_tail(5))


# ---------------------------------------------------------------------------
# Logging

def parse_journal_datagram(data):
    """Fields of one native-protocol journal datagram: "KEY=value\\n" or
    "KEY\\n" + le64 length + value + "\\n"."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode("utf-8", "replace")
    return fields


def private_journal_supported(probe_dir):
    """Whether unshare can give a process a private /run with our
    directory as /run/systemd/journal (root, or user namespaces)."""
    if not shutil.which("unshare"):
        return False, "unshare is missing"
    cmd = unshare_prefix() + [
        "sh", "-c", 'mount -t tmpfs tmpfs /run && mkdir -p '
        '/run/systemd/journal && mount --bind "$1" /run/systemd/journal',
        "sh", probe_dir]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=mwtest._t(10))
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    if r.returncode != 0:
        return False, "cannot make a private /run: " + \
            " ".join(r.stderr.decode(errors="replace").split())
    return True, None


def unshare_prefix():
    return ["unshare", "-m", "--propagation", "private"] if \
        os.geteuid() == 0 else ["unshare", "-r", "-m",
                                "--propagation", "private"]


def test_journal_fields():
    """With JOURNAL_STREAM naming its stderr, mailwatch logs to the journal
    with PRIORITY, SYSLOG_IDENTIFIER, MAILWATCH_ACCOUNT and
    MAILWATCH_MAILBOX fields, and nothing on stderr. The journal is a
    datagram socket of ours, mounted as /run/systemd/journal/socket in a
    private mount namespace (never the machine's journald)."""
    jdir = tempfile.mkdtemp(prefix="mwtest-journal-")
    sock = None
    try:
        supported, why = private_journal_supported(jdir)
        if not supported:
            skip("journal fields", why)
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(os.path.join(jdir, "socket"))
        os.chmod(os.path.join(jdir, "socket"), 0o666)
        sock.setblocking(False)
        mw = mwtest.Mailwatch({"general": {"notify": False},
                               "account down":
                               unreachable_account(closed_port())},
                              args=(), start=False)
        write_wrapper(mw, """
JOURNAL_STREAM=$(stat -L -c %%d:%%i /proc/$$/fd/2)
export JOURNAL_STREAM
exec %s sh -c 'mount -t tmpfs tmpfs /run &&
	mkdir -p /run/systemd/journal &&
	mount --bind "$0" /run/systemd/journal &&
	exec "$MWTEST_REAL_BIN" "$@"' %s "$@"
""" % (" ".join(unshare_prefix()), jdir))
        mw.start()
        entries = []

        def drain():
            while True:
                try:
                    entries.append(parse_journal_datagram(sock.recv(65536)))
                except BlockingIOError:
                    return entries

        got = mwtest.wait_until(lambda: any(
            e.get("MAILWATCH_MAILBOX") == "INBOX" for e in drain()), 5)
        ok(got, "entries arrive on the journal socket",
           mw.log_tail(10))
        mw.signal(signal.SIGHUP)   # an unscoped message: "reloading ..."
        mwtest.wait_until(lambda: any(
            "reloading" in e.get("MESSAGE", "") for e in drain()), 5)
        # Two more tries refused (back-off 1 s, then ~2 s), which are
        # not logged at info level: they failed as the first did.
        mwtest.quiet(4)
        drain()
        rc = mw.stop()
        drain()
        ok(rc == 0, "exit 0 (%s)" % rc)
        scoped = [e for e in entries if e.get("MAILWATCH_MAILBOX")]
        e = scoped[0] if scoped else {}
        ok(e.get("MAILWATCH_ACCOUNT") == "down" and
           e.get("MAILWATCH_MAILBOX") == "INBOX" and
           e.get("MESSAGE", "").startswith("down/INBOX: ") and
           e.get("SYSLOG_IDENTIFIER") == "mailwatch",
           "MAILWATCH_ACCOUNT=down, MAILWATCH_MAILBOX=INBOX, "
           "SYSLOG_IDENTIFIER=mailwatch, MESSAGE 'down/INBOX: ...'", e)
        refused = [x for x in scoped if "Connection refused" in
                   x.get("MESSAGE", "")]
        ok(refused and refused[0].get("PRIORITY") in ("3", "4"),
           "'cannot connect' with PRIORITY err or warning (%s)" %
           (refused[0].get("PRIORITY") if refused else None), refused[:1])
        again = [x for x in scoped if "reconnecting in" in
                 x.get("MESSAGE", "")]
        ok(len(refused) == 1 and len(again) == 1,
           "the retries that fail as the first did are not logged (an "
           "outage of 40 s was 100 lines): %d 'Connection refused', %d "
           "'reconnecting in'" % (len(refused), len(again)),
           [x.get("MESSAGE") for x in scoped])
        info = [x for x in entries if "reloading" in x.get("MESSAGE", "")]
        ok(info and info[0].get("PRIORITY") == "6" and
           not info[0].get("MAILWATCH_ACCOUNT"),
           "'reloading ...' at PRIORITY=6 without an account", info[:1])
        ok(all(x.get("PRIORITY") in "01234567" and x.get("MESSAGE")
               for x in entries), "every entry has MESSAGE and PRIORITY")
        out = [ln for ln in mw.log().splitlines() if ln.strip()]
        ok(not out, "nothing on stderr while it is the journal", out[:5])
        comment("%d journal entries; e.g. %s" % (len(entries), e))
    finally:
        if sock:
            sock.close()
        shutil.rmtree(jdir, ignore_errors=True)


def test_plain_log_fallback():
    """JOURNAL_STREAM set but not naming stderr (a shell started from a
    service, stderr redirected): plain "mailwatch: account/mailbox: ..."
    lines on stderr."""
    mw = mwtest.Mailwatch({"general": {"notify": False},
                           "account down":
                           unreachable_account(closed_port())},
                          args=(), env={"JOURNAL_STREAM": "8:123456"})
    m = mw.wait_log(r"^mailwatch: down/INBOX: cannot connect: .*"
                    r"Connection refused$", 5)
    ok(m, "JOURNAL_STREAM for another file: plain lines on stderr",
       mw.log_tail(5))
    ok(mw.stop() == 0, "exit 0")
    ok(all(ln.startswith("mailwatch: ") for ln in mw.log().splitlines()),
       "every line starts with 'mailwatch: '", mw.log_tail(5))


# ---------------------------------------------------------------------------

def test_units_verify():
    """systemd-analyze verify on the units as make install generates them
    (sed @BINDIR@), with the built binary as ExecStart."""
    sa = shutil.which("systemd-analyze")
    if not sa:
        skip("systemd-analyze verify", "systemd-analyze is missing")
        return
    units = sorted(f for f in os.listdir(os.path.join(REPO, "systemd"))
                   if f.endswith(".service.in"))
    ok(units, "units: %s" % ", ".join(units))
    tmp = tempfile.mkdtemp(prefix="mwtest-units-")
    try:
        rt = os.path.join(tmp, "runtime")
        os.mkdir(rt, 0o700)
        for u in units:
            with open(os.path.join(REPO, "systemd", u)) as f:
                text = f.read().replace("@BINDIR@", REPO)
            with open(os.path.join(tmp, u[:-3]), "w") as f:
                f.write(text)
            ok(not re.search(r"@[A-Z_]+@", text),
               "%s: every @VAR@ replaced" % u[:-3])
            keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
            ok(keys.get("Type") == "notify" and
               keys.get("NotifyAccess") == "main" and
               keys.get("WatchdogSec") and
               keys.get("RestartPreventExitStatus") == "78" and
               keys.get("ExecReload", "").endswith("-HUP $MAINPID"),
               "%s: Type=notify, NotifyAccess=main, WatchdogSec, "
               "ExecReload SIGHUP, no restart on exit 78" % u[:-3], keys)
            system_only = re.findall(r"^(?:After|Wants|Requires|Before|"
                                     r"BindsTo|WantedBy)=.*?\b((?:network|"
                                     r"network-online|multi-user|"
                                     r"nss-lookup)\.target)", text, re.M)
            ok(not system_only, "%s: no system-only targets (a user "
               "manager has none)" % u[:-3], system_only)
        env = dict(os.environ, XDG_RUNTIME_DIR=rt)
        env.pop("SYSTEMD_UNIT_PATH", None)
        for u in units:
            name = u[:-3]
            if name.endswith("@.service"):
                name = name.replace("@.", "@work.")
            try:
                r = subprocess.run([sa, "--user", "verify", "--man=no",
                                    "./" + name], cwd=tmp,
                                   stdin=subprocess.DEVNULL,
                                   capture_output=True,
                                   timeout=mwtest._t(30), env=env)
            except subprocess.TimeoutExpired:
                skip("systemd-analyze --user verify %s" % name,
                     "it did not finish in %.0f s" % mwtest._t(30))
                continue
            err = r.stderr.decode(errors="replace").strip()
            if r.returncode != 0 and "Failed to initialize manager" in err:
                skip("systemd-analyze --user verify %s" % name,
                     "cannot run here: %s" % " ".join(err.split())[:200])
                continue
            ok(r.returncode == 0 and not err,
               "systemd-analyze --user verify %s: no complaints" % name,
               err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not mwtest.Mailwatch.available():
        print("ok - test_systemd # SKIP build/asan/mailwatch is not built")
        sys.exit(0)
    mwtest.main(test_ready_without_server, test_status_follows_the_server,
                test_watchdog, test_reload_invalid_config,
                test_invalid_config_at_start,
                test_journal_fields, test_plain_log_fallback,
                test_terminal_log,
                test_units_verify)
