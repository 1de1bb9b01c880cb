"""mwtest: the integration-test harness for mailwatch.

Real parts on loopback only: a private Dovecot (implicit TLS and STARTTLS
listeners on 127.0.0.1, a test CA), a private D-Bus session bus, the
notification recorder (build/tests/notifyd) and mailwatch itself. Every
process is started by this module, kept by pid, bounded in time and stopped
by pid; temporary directories are removed.

    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
    import mwtest
    from mwtest import ok

    def test_new_mail():
        dc = mwtest.Dovecot()
        dc.create_mailbox("alice", "Lists/dev")
        bus = mwtest.SessionBus()
        nd = mwtest.Notifyd(bus)
        mw = mwtest.Mailwatch({
            "general": {"notify": True, "on_new_mail": "{hook}"},
            "account test": dc.account("alice",
                                       mailboxes=["INBOX", "Lists/dev"]),
        }, bus=bus)
        ok(mw.wait_log(r"INBOX: watching \(IDLE\)", 10), "idling")
        uid = dc.append("alice", "INBOX", mwtest.sample_message("02"))
        recs = mw.wait_hooks(1, 10)
        ok(recs and recs[0]["MAILWATCH_UID"] == str(uid), "hook ran")
        ok(nd.wait_records(1, 10), "notified")
        ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")

    mwtest.main(test_new_mail)   # TAP lines; stops everything; exit code

What is here:
  ok(cond, msg), skip(msg, why), comment(text), main(*tests), Skip,
  stop_all(), wait_until(pred, timeout), quiet(seconds), free_ports(n),
  pid_alive(pid)
  Dovecot(starttls=True, users=None, listen="127.0.0.1", extra_conf="",
          verbose=False, cert_days=3, cert_san=None, conn_limit=100,
          notify=True, oauth2=False)
      oauth2=True: XOAUTH2 and OAUTHBEARER too, checked by an OAuth2
      passdb that validates HS256 JWTs itself; .token(user, expires_in,
      key) mints one; .logins(mech) counts the logins it saw
      conn_limit: mail_max_userip_connections (None: Dovecot's stock 10);
      notify=False: NOTIFY left out of the capabilities shown after login
      (DOVECOT_CAPABILITY; Dovecot still accepts the command itself)
      .imaps_port .imap_port .ca_file .dir .conf .users .log()
      .wait_log(rx) .pids() .running() .account(user, tls, mailboxes, **kw)
      .imap(user) (imaplib, context manager) .client(user) (ImapClient)
      .idle_client(user, mailbox) .create_mailbox .create_mailboxes(user,
      names) (many, one connection) .delete_mailbox .rename_mailbox
      .append -> uid .append_many -> uids .deliver (LDA) .status .store
      .expunge .doveadm(*args) .kick(user) .connections(user) -> n
      .stop_server() .start() .restart() .stop()
  ImapClient(host, port, tls, ca_file, source_address): raw, pipelining
  IdleClient: EXAMINE + IDLE, .exists [(monotonic t, n)], .wait_exists()
  SessionBus() .address .env()       Notifyd(bus) .records() .wait_records()
  Mailwatch(sections, bus, args=("-v",), binary, env, start, sd_notify)
      .log() .mark() .wait_log(rx, timeout, since) .hook_cmd() .hook_records()
      .wait_hooks(n) .children() .settle() .reload(sections) .signal()
      .wait_exit() .stop() -> rc
      .sanitizer_errors() .sd_notify_messages() .wait_sd_notify(rx)
  make_ca(), make_server_cert(), make_message(), crlf(),
  sample_names(), sample_message(prefix), sample_expected()

Time: a test waits for a condition with a deadline (wait_until, the
wait_* methods), never for a fixed time, and asserts no speed (bench/ is
for that). Every timeout here is in seconds and multiplied by
$MWTEST_TIMEOUT_SCALE (default 1; tests/unit/tap.h reads the same
variable) on a slow or busy machine. quiet(seconds) is the one plain
sleep: a window in which something must NOT happen. Python 3 standard
library only.
"""

import atexit
import base64
import contextlib
import email.utils
import imaplib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SAMPLE_MAIL_DIR = os.path.join(REPO, "tests", "lib", "sample-mail")
HOST = "127.0.0.1"


# The log line that says a mailbox is watched, after "ACCOUNT/MAILBOX: ":
# pushed by IDLE (its own connection) or NOTIFY, or checked every
# poll_interval.
WATCHED = r"(?:watching \((?:IDLE|NOTIFY)\)|checked every \d+ s)"


def _timeout_scale():
    """$MWTEST_TIMEOUT_SCALE: what every timeout is multiplied by (slow or
    busy machines). Exits when it is not a positive number."""
    text = os.environ.get("MWTEST_TIMEOUT_SCALE", "")
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = 0
    if not scale > 0:
        print("Bail out! MWTEST_TIMEOUT_SCALE=%s is not a positive number"
              % text, flush=True)
        sys.exit(1)
    return scale


TIMEOUT_SCALE = _timeout_scale()


def _t(seconds):
    """seconds times $MWTEST_TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE


# ---------------------------------------------------------------------------
# TAP output

class Skip(Exception):
    """Raised by a test function to skip the rest of it (counts as ok)."""


_failures = 0
_test_failed = False


def ok(cond, msg, diag=None):
    """Prints "ok - msg" or "not ok - msg" (plus diag as "#" lines).
    Returns bool(cond) so a test can stop early on a failed precondition."""
    global _failures, _test_failed
    msg = " ".join(str(msg).split())
    if cond:
        print("ok - %s" % msg, flush=True)
    else:
        _failures += 1
        _test_failed = True
        print("not ok - %s" % msg, flush=True)
        if diag is not None:
            comment(diag)
    return bool(cond)


def skip(msg, reason):
    """Prints "ok - msg # SKIP reason"."""
    print("ok - %s # SKIP %s" % (" ".join(str(msg).split()), reason),
          flush=True)


def comment(text):
    """Prints text as TAP "#" lines."""
    for line in str(text).splitlines() or [""]:
        print("# " + line, flush=True)


diag = comment


def failures():
    """Number of "not ok" lines printed so far."""
    return _failures


# ---------------------------------------------------------------------------
# Process bookkeeping: everything started here is registered and stopped by
# main() (and at exit), most recently started first.

_live = []
_test_objs = []  # everything the current test started, for log dumps


def _register(obj):
    _live.append(obj)
    if obj not in _test_objs:
        _test_objs.append(obj)


def _unregister(obj):
    try:
        _live.remove(obj)
    except ValueError:
        pass


def stop_all():
    """Stops every harness object still running, newest first. Never
    raises; problems are printed as "#" lines."""
    while _live:
        obj = _live.pop()
        try:
            obj.stop()
        except Exception as e:  # keep stopping the others
            comment("stopping %r failed: %s" % (obj, e))


def _dump_logs(lines=60):
    """Prints the log tails of what the current test started (stopped
    ones too, while their logs exist)."""
    for obj in list(_test_objs):
        tail = getattr(obj, "log_tail", None)
        path = getattr(obj, "log_path", None) or getattr(obj, "out", None)
        if tail is None or (path and not os.path.exists(path)):
            continue
        comment("---- %r, last lines of its log:" % obj)
        comment(tail(lines))


class _Terminated(BaseException):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated("signal %d" % signum)


def main(*tests):
    """Runs each test function in turn. An exception becomes
    "not ok - <test> raised ..." with the traceback as "#" lines; Skip
    becomes "ok - <test> # SKIP ...". After each test (passing or not)
    every process it started is stopped; on failure the tails of their
    logs are printed first. Exits 1 when anything failed."""
    global _test_failed
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    for test in tests:
        name = test.__name__
        _test_failed = False
        del _test_objs[:]
        try:
            test()
        except Skip as e:
            skip(name, str(e) or "skipped")
        except BaseException as e:  # includes _Terminated, KeyboardInterrupt
            first = (str(e).splitlines() or [""])[0]
            ok(False, "%s raised %s: %s" % (name, type(e).__name__, first))
            comment(traceback.format_exc().rstrip())
            if isinstance(e, (_Terminated, KeyboardInterrupt)):
                _dump_logs()
                stop_all()
                break
        finally:
            if _test_failed:
                _dump_logs()
            stop_all()
    sys.exit(1 if _failures else 0)


atexit.register(stop_all)


# ---------------------------------------------------------------------------
# Small helpers

def free_ports(n, host=HOST):
    """n distinct free TCP ports on host, found by binding port 0. (Another
    process may take one before it is used: callers retry.)"""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def wait_until(pred, timeout, interval=0.05):
    """Calls pred() until it returns a true value (returned) or timeout
    seconds (scaled) pass (returns the last value)."""
    deadline = time.monotonic() + _t(timeout)
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def quiet(seconds):
    """Sleeps seconds (scaled): a window in which something must NOT happen
    (a retry, a second run of a hook), checked after it. Never use it to
    wait for something that should happen: wait_until that."""
    time.sleep(_t(seconds))


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] not in "ZX"


def _session_pids(sid):
    """Pids of the live processes in session sid (read from /proc)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        # fields: state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] not in "ZX":
            pids.append(int(d))
    return pids


def _stop_popen(proc, term_timeout=10, sig=signal.SIGTERM):
    """Sends sig to proc by pid, waits up to term_timeout, then SIGKILL.
    Returns the exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(_t(term_timeout))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(_t(10))
    return proc.returncode


def _kill_session_leftovers(sid, timeout=5):
    """SIGKILLs, one pid at a time, whatever still runs in session sid
    (children a stopped master left behind) and waits for them to go."""
    left = _session_pids(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not _session_pids(sid), timeout)
    return left


def _tail(path, lines):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(%s)" % e
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _write(path, text, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _run(argv, timeout=30, **kw):
    """Runs argv to completion (bounded); raises with its output when it
    fails."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=_t(timeout), **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (
            " ".join(argv), r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace")))
    return r


def crlf(raw):
    """raw (bytes or str) with every line ending turned into CRLF."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return re.sub(rb"\r?\n", b"\r\n", raw)


# ---------------------------------------------------------------------------
# Certificates (openssl CLI)

def make_ca(directory, cn="mailwatch test CA", name="ca"):
    """Creates a self-signed CA in directory; returns (cert_path, key_path)."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    _run(["openssl", "req", "-x509", "-newkey", "ec",
          "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", key, "-out", cert, "-days", "3", "-subj", "/CN=" + cn,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return cert, key


def make_server_cert(directory, ca_cert, ca_key, cn="localhost",
                     san="IP:127.0.0.1,DNS:localhost", name="server",
                     days=3):
    """Creates a key and a certificate signed by the CA; returns
    (cert_path, key_path). days < 0 gives an expired certificate."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    csr = os.path.join(directory, name + ".csr")
    ext = os.path.join(directory, name + ".ext")
    _write(ext, "basicConstraints=CA:FALSE\n"
           "keyUsage=critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=serverAuth\n"
           "subjectKeyIdentifier=hash\n"
           "authorityKeyIdentifier=keyid,issuer\n"
           "subjectAltName=%s\n" % san)
    _run(["openssl", "req", "-new", "-newkey", "ec",
          "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", key, "-out", csr, "-subj", "/CN=" + cn])
    # days < 0 works with OpenSSL 3: notAfter lies before notBefore.
    argv = ["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert,
            "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
            "-extfile", ext, "-days", str(days)]
    _run(argv)
    os.unlink(csr)
    return cert, key


# ---------------------------------------------------------------------------
# A raw IMAP client (line based; enough for IDLE and pipelined APPEND)

class ImapError(Exception):
    pass


class ImapClient:
    """A small blocking IMAP client on a raw socket: tagged commands,
    untagged responses, literals read whole. tls is "implicit", "starttls"
    or "none". source_address=("127.0.0.2", 0) makes the connection look
    non-local to Dovecot (see Dovecot's docstring)."""

    def __init__(self, host, port, tls="implicit", ca_file=None,
                 timeout=10, source_address=None, server_hostname=None):
        self.host, self.port = host, port
        self.ca_file = ca_file
        self.timeout = _t(timeout)
        self.server_hostname = server_hostname or host
        self._tag = 0
        self._buf = b""
        self.sock = socket.create_connection((host, port), self.timeout,
                                             source_address=source_address)
        try:
            if tls == "implicit":
                self._wrap()
            self.greeting = self.read_response()
            if not self.greeting.startswith(b"* OK"):
                raise ImapError("bad greeting: %r" % self.greeting)
            if tls == "starttls":
                self.starttls()
        except BaseException:
            self.sock.close()
            raise

    def _context(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx

    def _wrap(self):
        self.sock = self._context().wrap_socket(
            self.sock, server_hostname=self.server_hostname)

    def __repr__(self):
        return "<%s %s:%d>" % (type(self).__name__, self.host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- reading
    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ImapError("connection closed by server")
        self._buf += data

    def read_response(self, timeout=None):
        """One whole response line (with CRLF stripped); a literal {n}
        ends up inline, "{n}\\r\\n" plus its bytes. Raises socket.timeout
        when nothing complete arrives in time (timeout seconds, scaled;
        default the client's)."""
        timeout = self.timeout if timeout is None else _t(timeout)
        deadline = time.monotonic() + timeout
        out = b""
        while True:
            i = self._buf.find(b"\r\n")
            while i < 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("no response line in %.1fs" %
                                         timeout)
                self._fill(left)
                i = self._buf.find(b"\r\n")
            line, self._buf = self._buf[:i], self._buf[i + 2:]
            out += line
            m = re.search(rb"\{(\d+)\+?\}$", line)
            if not m:
                return out
            n = int(m.group(1))
            while len(self._buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("literal not complete")
                self._fill(left)
            out += b"\r\n" + self._buf[:n]
            self._buf = self._buf[n:]

    # -- writing
    def next_tag(self):
        self._tag += 1
        return "T%d" % self._tag

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def send_command(self, cmd):
        """Sends "TAG cmd\\r\\n" (cmd may hold LITERAL+ literals); returns
        the tag."""
        tag = self.next_tag()
        if isinstance(cmd, str):
            cmd = cmd.encode("utf-8")
        self.send(tag.encode() + b" " + cmd + b"\r\n")
        return tag

    def wait_tagged(self, tag, timeout=None):
        """Reads until tag's completion. Returns (status, line, untagged)
        where status is "OK"/"NO"/"BAD"."""
        untagged = []
        prefix = tag.encode() + b" "
        while True:
            line = self.read_response(timeout)
            if line.startswith(prefix):
                status = line[len(prefix):].split(b" ", 1)[0].decode()
                return status, line, untagged
            untagged.append(line)

    def command(self, cmd, timeout=None, check=True):
        """Sends cmd and waits for its completion; raises ImapError on NO or
        BAD when check."""
        tag = self.send_command(cmd)
        status, line, untagged = self.wait_tagged(tag, timeout)
        if check and status != "OK":
            raise ImapError("%s -> %r" % (_redact(cmd), line))
        return status, line, untagged

    def capabilities(self):
        _, _, untagged = self.command("CAPABILITY")
        for line in untagged:
            if line.upper().startswith(b"* CAPABILITY "):
                return set(line[13:].decode().upper().split())
        return set()

    def starttls(self):
        self.command("STARTTLS")
        if self._buf:
            raise ImapError("data after STARTTLS OK (injection?)")
        self._wrap()

    def login(self, user, password):
        return self.command("LOGIN %s %s" % (quote(user), quote(password)))

    def logout(self):
        try:
            self.command("LOGOUT", timeout=5, check=False)
        except (OSError, ImapError):
            pass
        self.close()

    def append_many(self, mailbox, messages, flags=(), atomic=False,
                    batch=200):
        """Appends messages (bytes) with LITERAL+, pipelined: either one
        APPEND per message sent back to back (atomic=False: separate
        transactions, one EXISTS each at best), or MULTIAPPEND in batches
        (atomic=True: each batch appears at once). Returns the UIDs."""
        uids = []
        fl = "(%s) " % " ".join(flags) if flags else ""
        messages = [crlf(m) for m in messages]
        for i in range(0, len(messages), batch):
            chunk = messages[i:i + batch]
            if atomic:
                cmd = b"APPEND " + quote(mailbox).encode()
                for m in chunk:
                    cmd += b" " + fl.encode() + b"{%d+}\r\n" % len(m) + m
                tags = [self.send_command(cmd)]
            else:
                tags = []
                for m in chunk:
                    tags.append(self.send_command(
                        b"APPEND " + quote(mailbox).encode() + b" " +
                        fl.encode() + b"{%d+}\r\n" % len(m) + m))
            for tag in tags:
                status, line, _ = self.wait_tagged(tag)
                if status != "OK":
                    raise ImapError("APPEND -> %r" % line)
                uids += _appenduids(line)
        return uids


def quote(s):
    """An IMAP quoted string (no CR/LF allowed)."""
    if any(c in s for c in "\r\n"):
        raise ValueError("CR/LF in a quoted string")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redact(cmd):
    if isinstance(cmd, bytes):
        cmd = cmd[:200].decode("utf-8", "replace")
    if cmd.upper().startswith("LOGIN "):
        return "LOGIN ***"
    return cmd


def _appenduids(line):
    """UIDs from an "[APPENDUID v set]" response code."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    m = re.search(r"\[APPENDUID \d+ ([0-9:,]+)\]", line)
    if not m:
        raise ImapError("no APPENDUID in %r" % line)
    uids = []
    for part in m.group(1).split(","):
        a, _, b = part.partition(":")
        uids += range(int(a), int(b or a) + 1)
    return uids


class IdleClient(ImapClient):
    """The bare floor client: LOGIN, EXAMINE mailbox, IDLE, and a reader
    thread that timestamps every untagged line with time.monotonic().
    Each EXISTS lands in .exists as (t, n).

        with dc.idle_client("alice") as ic:
            dc.append("alice", "INBOX", msg)
            t, n = ic.wait_exists(timeout=5)
    """

    def __init__(self, host, port, user, password, mailbox="INBOX",
                 tls="implicit", ca_file=None, timeout=10):
        super().__init__(host, port, tls=tls, ca_file=ca_file,
                         timeout=timeout)
        self.lines = []       # (t, bytes) of every line read while idling
        self.exists = []      # (t, n)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = None
        self.error = None
        try:
            self.login(user, password)
            _, _, untagged = self.command("EXAMINE " + quote(mailbox))
            self.initial_exists = 0
            for line in untagged:
                m = re.match(rb"\* (\d+) EXISTS", line)
                if m:
                    self.initial_exists = int(m.group(1))
            self.idle()
        except BaseException:
            self.close()
            raise
        _register(self)

    def idle(self):
        """Sends IDLE, waits for the continuation, starts the reader."""
        self._idle_tag = self.send_command("IDLE")
        while True:
            line = self.read_response()
            if line.startswith(b"+"):
                break
            if line.startswith(self._idle_tag.encode()):
                raise ImapError("IDLE refused: %r" % line)
        self._stop = False
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self):
        while not self._stop:
            try:
                line = self.read_response(timeout=0.2)
            except socket.timeout:
                continue
            except (OSError, ImapError) as e:
                with self._cond:
                    self.error = e
                    self._cond.notify_all()
                return
            t = time.monotonic()
            with self._cond:
                self.lines.append((t, line))
                m = re.match(rb"\* (\d+) EXISTS", line)
                if m:
                    self.exists.append((t, int(m.group(1))))
                self._cond.notify_all()
                if line.startswith(self._idle_tag.encode() + b" "):
                    return

    def wait_exists(self, at_least=None, timeout=10):
        """Waits for an EXISTS with n >= at_least (default: any EXISTS not
        yet returned by this method). Returns (t, n) or None on timeout."""
        deadline = time.monotonic() + _t(timeout)
        with self._cond:
            if at_least is None:
                start = getattr(self, "_seen", 0)
            while True:
                if at_least is None:
                    if len(self.exists) > start:
                        self._seen = start + 1
                        return self.exists[start]
                else:
                    for t, n in self.exists:
                        if n >= at_least:
                            return t, n
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None:
                    return None
                self._cond.wait(left)

    def done(self):
        """Ends IDLE (DONE) and waits for its completion."""
        self.send(b"DONE\r\n")
        if self._thread:
            self._thread.join(_t(10))
            self._thread = None
        return self.lines[-1][1] if self.lines else None

    def close(self):
        self._stop = True
        super().close()
        if self._thread:
            self._thread.join(_t(5))
            self._thread = None
        _unregister(self)

    def stop(self):
        self.close()


# ---------------------------------------------------------------------------
# Dovecot

def _lookup_user(name, fallback):
    import pwd
    try:
        pw = pwd.getpwnam(name)
        return pw.pw_name, pw.pw_uid, pw.pw_gid
    except KeyError:
        return fallback


DEFAULT_USERS = {"alice": "secret", "bob": "hunter2", "carol": "p4ss w0rd"}

# What Dovecot 2.3.19 (Debian) advertises after login with this module's
# configuration (SPECIAL-USE: the namespace names Trash, Junk, Sent and
# Drafts), less NOTIFY: the imap_capability of Dovecot(notify=False).
# test_dovecot_harness checks it against the running server's list.
DOVECOT_CAPABILITY = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
    "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND "
    "URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN "
    "CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY "
    "PREVIEW STATUS=SIZE SAVEDATE LITERAL+ SPECIAL-USE")
_instances = 0


class Dovecot:
    """A private Dovecot on 127.0.0.1, in a temporary directory.

    starttls=True (default): ssl = yes, an implicit-TLS listener
    (.imaps_port) and a plain one offering STARTTLS (.imap_port);
    disable_plaintext_auth = yes. starttls=False: ssl = no, only the plain
    listener, no STARTTLS, plain LOGIN allowed; .imaps_port is None.

    Quirk: Dovecot treats a connection whose remote IP equals its local IP
    as secure, so from 127.0.0.1 to 127.0.0.1 plain LOGIN works and no
    LOGINDISABLED is shown even though disable_plaintext_auth = yes. A
    client that binds 127.0.0.2 as its source (ImapClient source_address)
    sees LOGINDISABLED. listen="127.0.0.2" makes every client non-local
    (the certificate then names that address too).

    Users (DEFAULT_USERS unless users= is given) live in a passwd-file with
    {PLAIN} passwords; mail is Maildir++ under <dir>/home/<user>/Maildir
    with "/" as the hierarchy separator. Running as root, the mail uid is
    "nobody" (Dovecot refuses uid 0), logins run as dovenull and internal
    processes as dovecot; running as another user, everything is that
    user.

    The server certificate is signed by a fresh CA ("mailwatch test CA",
    .ca_file); cert_san replaces its subjectAltName (default
    "IP:127.0.0.1,DNS:localhost") and cert_days < 0 makes it expired, for
    verification-failure tests. extra_conf is appended to dovecot.conf.
    conn_limit is mail_max_userip_connections (None: Dovecot's stock 10).
    notify=False sets imap_capability to DOVECOT_CAPABILITY, the usual
    list without NOTIFY (RFC 5465), in CAPABILITY and in LOGIN's
    [CAPABILITY ...] alike: a client that goes by the list never uses
    NOTIFY. Dovecot 2.3 still accepts "NOTIFY SET ..." then (the setting
    changes what is shown, not what is implemented).

    oauth2=True adds the mechanisms XOAUTH2 and OAUTHBEARER and a second
    passdb, "driver = oauth2" with "introspection_mode = local": Dovecot
    validates a JWT itself, its signature with an HS256 key looked up in
    "local_validation_key_dict = fs:posix:prefix=<dir>/oauth2-keys/" as
    the file <azp>/<alg>/<kid> (azp and kid "default" when the token names
    none) holding the key in base64, then "exp" and "sub" (the user
    name). token() mints such tokens; a refused one gets the challenge
    {"status":"401","schemes":"bearer","scope":"mail"}. Dovecot delays
    each failed login from an address more than the last (anvil's auth
    penalty: 2, 4, 8, 15 s), whatever auth_failure_delay says.

    Stopped by stop() (or the context manager, or mwtest.main) by the
    master's pid; children left behind are killed by pid; the temporary
    directory is removed."""

    def __init__(self, starttls=True, users=None, listen=HOST,
                 extra_conf="", verbose=False, start=True,
                 cert_days=3, cert_san=None, conn_limit=100,
                 notify=True, oauth2=False):
        global _instances
        _instances += 1
        self.starttls = starttls
        self.users = dict(users or DEFAULT_USERS)
        self.listen = listen
        self.extra_conf = extra_conf
        self.conn_limit = conn_limit
        self.notify = notify
        self.oauth2 = oauth2
        self.oauth2_key = os.urandom(32)
        self.verbose = verbose
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="mwtest-dovecot-")
        os.chmod(self.dir, 0o711)  # the mail uid must reach home/
        self.instance = "mwtest-%d-%d" % (os.getpid(), _instances)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.base_dir = os.path.join(self.dir, "run")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.imap_port = self.imaps_port = None
        _register(self)
        try:
            self.ca_file, self.ca_key = make_ca(self.dir)
            san = cert_san or "IP:127.0.0.1,DNS:localhost"
            if listen != "127.0.0.1" and cert_san is None:
                san += ",IP:" + listen
            self.cert_file, self.key_file = make_server_cert(
                self.dir, self.ca_file, self.ca_key, san=san,
                days=cert_days)
            self._setup_users()
            if oauth2:
                self._setup_oauth2()
            if start:
                self.start()
        except BaseException:
            self.stop()
            raise

    def __repr__(self):
        return "<Dovecot %s imap=%s imaps=%s pid=%s>" % (
            self.dir, self.imap_port, self.imaps_port,
            self.proc.pid if self.proc else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- setup
    def _setup_users(self):
        if os.geteuid() == 0:
            self.mail_user = _lookup_user("nobody", ("nobody", 65534, 65534))
            self.login_user = _lookup_user("dovenull", self.mail_user)[0]
            self.internal_user = _lookup_user("dovecot", self.mail_user)[0]
            self.internal_group = "dovecot"
        else:
            import grp
            import pwd
            pw = pwd.getpwuid(os.geteuid())
            self.mail_user = (pw.pw_name, pw.pw_uid, pw.pw_gid)
            self.login_user = self.internal_user = pw.pw_name
            self.internal_group = grp.getgrgid(os.getegid()).gr_name
        _, uid, gid = self.mail_user
        homes = os.path.join(self.dir, "home")
        os.mkdir(homes, 0o711)
        lines = []
        for user, pw in self.users.items():
            if ":" in user + pw or "\n" in user + pw:
                raise ValueError("':' or newline in a test user/password")
            home = os.path.join(homes, user)
            os.mkdir(home, 0o700)
            os.chown(home, uid, gid)
            lines.append("%s:{PLAIN}%s:%d:%d::%s::\n" % (user, pw, uid, gid,
                                                         home))
        self.passwd_file = os.path.join(self.dir, "users")
        _write(self.passwd_file, "".join(lines), 0o644)

    def _setup_oauth2(self):
        keys = os.path.join(self.dir, "oauth2-keys")
        path = os.path.join(keys, "default", "HS256")
        os.makedirs(path, 0o755)
        for p in (keys, os.path.dirname(path), path):
            os.chmod(p, 0o755)
        _write(os.path.join(path, "default"),
               base64.b64encode(self.oauth2_key).decode(), 0o644)
        self.oauth2_conf = os.path.join(self.dir, "dovecot-oauth2.conf.ext")
        _write(self.oauth2_conf,
               "introspection_mode = local\n"
               "local_validation_key_dict = fs:posix:prefix=%s/\n"
               "username_attribute = sub\n" % keys, 0o644)

    def token(self, user="alice", expires_in=600, key=None):
        """A JWT (HS256) for user that this server accepts until
        expires_in seconds from now (negative: expired already); signed
        with key (bytes) instead of the server's, it is refused."""
        def b64u(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        now = int(time.time())
        head = b64u(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        body = b64u(json.dumps({"sub": user, "iat": now - 60,
                                "exp": now + expires_in}).encode())
        import hashlib
        import hmac
        sig = hmac.new(key or self.oauth2_key,
                       (head + "." + body).encode(), hashlib.sha256)
        return head + "." + body + "." + b64u(sig.digest())

    def logins(self, mech=None, user="alice"):
        """The logins of user this server saw end so far, successful or
        not, from its imap-login lines; with mech ("XOAUTH2"), only those
        with that mechanism."""
        rx = re.compile(r"imap-login: Info: (?:Login|Disconnected|Aborted "
                        r"login)\b.*user=<%s>.*method=(\w+)" %
                        re.escape(user))
        n = 0
        for line in self.log().splitlines():
            m = rx.search(line)
            if m and (mech is None or m.group(1) == mech):
                n += 1
        return n

    def home(self, user):
        return os.path.join(self.dir, "home", user)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def _write_conf(self):
        d = self.dir
        if self.starttls:
            tls = ("ssl = yes\n"
                   "ssl_cert = <%s\n"
                   "ssl_key = <%s\n"
                   "ssl_min_protocol = TLSv1.2\n"
                   "disable_plaintext_auth = yes\n" % (self.cert_file,
                                                      self.key_file))
            imaps = ("  inet_listener imaps {\n"
                     "    address = %s\n"
                     "    port = %d\n"
                     "    ssl = yes\n"
                     "  }\n" % (self.listen, self.imaps_port))
        else:
            tls = "ssl = no\ndisable_plaintext_auth = no\n"
            imaps = ""
        uid = self.mail_user[1]
        first_uid = "first_valid_uid = %d\n" % uid if uid < 500 else ""
        # Without root the chroots of anvil and the login processes fail.
        root = os.geteuid() == 0
        chroot = "" if root else "  chroot =\n"
        anvil = "" if root else "service anvil {\n  chroot =\n}\n"
        # Dovecot's own limit is 10 connections per user and IP.
        limit = ("" if self.conn_limit is None else
                 "protocol imap {\n  mail_max_userip_connections = %d\n}\n"
                 % self.conn_limit)
        caps = ("" if self.notify else
                "imap_capability = %s\n" % DOVECOT_CAPABILITY)
        oauth2_mechs = " xoauth2 oauthbearer" if self.oauth2 else ""
        oauth2_passdb = ("passdb {\n  driver = oauth2\n  args = %s\n}\n"
                         % self.oauth2_conf if self.oauth2 else "")
        debug = ("auth_verbose = yes\nauth_debug = yes\nmail_debug = yes\n"
                 "verbose_ssl = yes\n" if self.verbose else "")
        conf = f"""# Written by tests/lib/mwtest.py: a standalone test instance.
# Nothing from /etc/dovecot is included.
instance_name = {self.instance}
base_dir = {self.base_dir}
state_dir = {d}/state
log_path = {self.log_path}
protocols = imap
listen = {self.listen}
shutdown_clients = yes
default_internal_user = {self.internal_user}
default_login_user = {self.login_user}
default_internal_group = {self.internal_group}
{first_uid}{tls}auth_mechanisms = plain login{oauth2_mechs}
auth_failure_delay = 0
{debug}mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
  # RFC 6154 attributes in LIST (the mailboxes are not created).
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Drafts {{
    special_use = \\Drafts
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.passwd_file}
}}
{oauth2_passdb}userdb {{
  driver = passwd-file
  args = {self.passwd_file}
}}
# Keepalive "OK Still here" while idling (Dovecot's default).
imap_idle_notify_interval = 2 mins
{limit}{caps}{anvil}service imap-login {{
{chroot}  inet_listener imap {{
    address = {self.listen}
    port = {self.imap_port}
  }}
{imaps}}}
{self.extra_conf}
"""
        _write(self.conf, conf, 0o644)

    # -- running
    def start(self, timeout=15, attempts=3):
        """Starts "dovecot -F -c CONF" and waits (bounded) until every
        listener greets. Keeps the ports of an earlier start (restart);
        new free ports are chosen otherwise, and on a port clash."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        keep_ports = self.imap_port is not None
        for attempt in range(attempts):
            if not keep_ports or attempt > 0:
                ports = free_ports(2, self.listen)
                self.imap_port = ports[0]
                self.imaps_port = ports[1] if self.starttls else None
            self._write_conf()
            self.master_out = os.path.join(self.dir, "master.out")
            out = open(self.master_out, "ab")
            try:
                self.proc = subprocess.Popen(
                    ["dovecot", "-F", "-c", self.conf],
                    stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                    cwd=self.dir)
            finally:
                out.close()
            if self._wait_listening(_t(timeout)):
                return self
            err = self.log_tail(20) + "\n" + _tail(self.master_out, 20)
            self._stop_master()
            if "in use" not in err:
                raise RuntimeError("dovecot did not start:\n" + err)
        raise RuntimeError("dovecot did not start (ports in use?):\n" + err)

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        pending = [self.imap_port] + ([self.imaps_port]
                                      if self.imaps_port else [])
        while pending:
            if self.proc.poll() is not None:
                return False
            port = pending[0]
            try:
                with socket.create_connection((self.listen, port),
                                              _t(1)) as s:
                    # The plain port greets at once; for imaps a TCP
                    # accept proves the listener is there.
                    if port == self.imap_port:
                        s.settimeout(_t(2))
                        if not s.recv(100).startswith(b"* OK"):
                            raise OSError("no greeting")
                pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def pids(self):
        """The master's pid and its children's (all in its session)."""
        if self.proc is None:
            return []
        return _session_pids(self.proc.pid)

    def _stop_master(self):
        if self.proc is None:
            return
        sid = self.proc.pid
        _stop_popen(self.proc, term_timeout=10)
        _kill_session_leftovers(sid)

    def stop_server(self):
        """Stops Dovecot but keeps its files, ports and mail (start() brings
        it back on the same ports: a server restart)."""
        self._stop_master()

    def restart(self, timeout=15):
        self.stop_server()
        return self.start(timeout)

    def stop(self):
        """Stops Dovecot by pid and removes the temporary directory."""
        try:
            self._stop_master()
        finally:
            _unregister(self)
            if self.dir and os.path.isdir(self.dir):
                shutil.rmtree(self.dir, ignore_errors=True)

    close = stop

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """Dovecot's log so far."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def wait_log(self, regex, timeout=10):
        """Waits until Dovecot's log matches regex; the match or None."""
        rx = re.compile(regex, re.M)
        return wait_until(lambda: rx.search(self.log()), timeout)

    def doveadm(self, *args, check=True, timeout=30):
        """Runs "doveadm -c CONF args..." (bounded). Returns the
        CompletedProcess (stdout/stderr as str); raises on failure when
        check."""
        argv = ["doveadm", "-c", self.conf] + [str(a) for a in args]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=_t(timeout))
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def kick(self, user):
        """Disconnects every IMAP session of user (doveadm kick)."""
        return self.doveadm("kick", user, check=False)

    # -- mail
    def account(self, user="alice", tls="implicit", mailboxes="INBOX",
                **overrides):
        """A mailwatch [account] section (dict) for this server."""
        if tls == "implicit":
            port = self.imaps_port
        else:
            port = self.imap_port
        sec = {"host": self.listen, "port": port, "tls": tls,
               "ca_file": self.ca_file, "username": user,
               "password": self.users[user], "mailboxes": mailboxes}
        sec.update(overrides)
        return {k: v for k, v in sec.items() if v is not None}

    @contextlib.contextmanager
    def imap(self, user="alice", password=None):
        """A logged-in imaplib connection (implicit TLS verified against
        .ca_file; plain when starttls=False); logged out afterwards."""
        if self.imaps_port:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            m = imaplib.IMAP4_SSL(self.listen, self.imaps_port,
                                  ssl_context=ctx, timeout=_t(10))
        else:
            m = imaplib.IMAP4(self.listen, self.imap_port, timeout=_t(10))
        try:
            m.login(user, password or self.users[user])
            yield m
        finally:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def client(self, user=None, tls=None):
        """A raw ImapClient (logged in when user is given)."""
        if tls is None:
            tls = "implicit" if self.imaps_port else "none"
        port = self.imaps_port if tls == "implicit" else self.imap_port
        c = ImapClient(self.listen, port, tls=tls, ca_file=self.ca_file)
        if user:
            c.login(user, self.users[user])
        return c

    def idle_client(self, user="alice", mailbox="INBOX"):
        """An IdleClient on the imaps port (plain port when starttls=
        False), already idling."""
        tls = "implicit" if self.imaps_port else "none"
        port = self.imaps_port if self.imaps_port else self.imap_port
        return IdleClient(self.listen, port, user, self.users[user],
                          mailbox=mailbox, tls=tls, ca_file=self.ca_file)

    def create_mailbox(self, user, name, subscribe=True):
        """Creates mailbox name (UTF-8; "/" separates levels) over IMAP.
        An existing mailbox is fine."""
        with self.imap(user) as m:
            typ, data = m.create(_mbox(name))
            if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(
                    x for x in data if isinstance(x, bytes)):
                raise ImapError("CREATE %s: %r" % (name, data))
            if subscribe:
                m.subscribe(_mbox(name))

    def create_mailboxes(self, user, names, subscribe=True):
        """Creates many mailboxes (UTF-8 names, parents before children)
        over one connection: the CREATEs pipelined, then the SUBSCRIBEs
        (about 5 s for 1000 names here; "doveadm mailbox create" with the
        same names took 14 s). An existing mailbox is fine."""
        c = self.client(user)
        try:
            cmds = ["CREATE", "SUBSCRIBE"] if subscribe else ["CREATE"]
            for cmd in cmds:
                tags = [(c.send_command("%s %s" % (
                    cmd, quote(imap_utf7_encode(n)))), n) for n in names]
                for tag, name in tags:
                    status, line, _ = c.wait_tagged(tag)
                    if status != "OK" and b"[ALREADYEXISTS]" not in line:
                        raise ImapError("%s %s: %r" % (cmd, name, line))
        finally:
            c.logout()

    def connections(self, user):
        """How many IMAP sessions user has logged in now, as Dovecot's
        anvil counts them for mail_max_userip_connections ("doveadm who
        -1 user": one line per imap process). Connections still before
        login, or refused with [LIMIT], are not counted; a session that
        just ended may be counted for a few milliseconds more."""
        out = self.doveadm("who", "-1", user).stdout
        return sum(1 for line in out.splitlines()[1:]
                   if line.split()[:2] == [user, "imap"])

    def delete_mailbox(self, user, name):
        with self.imap(user) as m:
            typ, data = m.delete(_mbox(name))
            if typ != "OK":
                raise ImapError("DELETE %s: %r" % (name, data))

    def rename_mailbox(self, user, old, new):
        with self.imap(user) as m:
            typ, data = m.rename(_mbox(old), _mbox(new))
            if typ != "OK":
                raise ImapError("RENAME: %r" % data)

    def append(self, user, mailbox, raw, flags=(), date=None):
        """Appends one message (bytes or str; line ends become CRLF) with
        imaplib over implicit TLS; returns its UID (from APPENDUID)."""
        with self.imap(user) as m:
            typ, data = m.append(
                _mbox(mailbox), "(%s)" % " ".join(flags) if flags else None,
                date, crlf(raw))
            if typ != "OK":
                raise ImapError("APPEND: %r" % data)
            return _appenduids(data[-1])[0]

    def append_many(self, user, mailbox, messages, flags=(), atomic=False):
        """Appends many messages over one connection, pipelined (see
        ImapClient.append_many); returns their UIDs."""
        c = self.client(user)
        try:
            return c.append_many(imap_utf7_encode(mailbox), messages, flags,
                                 atomic)
        finally:
            c.logout()

    def deliver(self, user, raw, mailbox="INBOX", timeout=30):
        """Delivers raw like an MTA would, with dovecot-lda (straight into
        the Maildir, no IMAP session)."""
        lda = "/usr/lib/dovecot/dovecot-lda"
        r = subprocess.run([lda, "-c", self.conf, "-d", user, "-m",
                            mailbox], input=crlf(raw).replace(b"\r\n", b"\n"),
                           capture_output=True, timeout=_t(timeout))
        if r.returncode != 0:
            raise RuntimeError("dovecot-lda failed (%d): %s" % (
                r.returncode, r.stderr.decode(errors="replace")))

    def deliver_maildir(self, user, raw, mailbox="INBOX"):
        """Delivers raw as an MTA that writes the Maildir itself does
        (procmail, a Postfix virtual mailbox): a file renamed into new/,
        which needs no Dovecot running. Dovecot gives it its UID when it
        next looks, and takes its INTERNALDATE from the file's time.
        mailbox: INBOX or a top-level folder."""
        d = self.maildir(user)
        if mailbox != "INBOX":
            d = os.path.join(d, "." + mailbox)
        name = "%d.M%dP%d.mwtest" % (time.time(), time.monotonic_ns(),
                                     os.getpid())
        tmp = os.path.join(d, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(crlf(raw).replace(b"\r\n", b"\n"))
        os.rename(tmp, os.path.join(d, "new", name))

    def status(self, user, mailbox="INBOX"):
        """{"MESSAGES": n, "UIDNEXT": n, "UIDVALIDITY": n, "UNSEEN": n}"""
        with self.imap(user) as m:
            typ, data = m.status(_mbox(mailbox),
                                 "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
            if typ != "OK":
                raise ImapError("STATUS: %r" % data)
            text = data[0].decode()
            return {k: int(v) for k, v in
                    re.findall(r"([A-Z]+) (\d+)", text.rsplit("(", 1)[1])}

    def store(self, user, mailbox, uids, flags, op="+FLAGS"):
        """UID STORE uids op (flags)."""
        with self.imap(user) as m:
            m.select(_mbox(mailbox))
            typ, data = m.uid("STORE", ",".join(map(str, uids)), op,
                              "(%s)" % " ".join(flags))
            if typ != "OK":
                raise ImapError("STORE: %r" % data)

    def expunge(self, user, mailbox, uids=None):
        """Deletes uids (all messages when None) and expunges them."""
        with self.imap(user) as m:
            m.select(_mbox(mailbox))
            what = ",".join(map(str, uids)) if uids else "1:*"
            m.uid("STORE", what, "+FLAGS.SILENT", "(\\Deleted)")
            m.expunge()


def _mbox(name):
    """A mailbox name for imaplib: modified UTF-7, quoted."""
    return quote(imap_utf7_encode(name))


def imap_utf7_encode(s):
    """RFC 3501 modified UTF-7 for mailbox names."""
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=")
                       .replace("/", ",") + "-")
            buf.clear()
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


# ---------------------------------------------------------------------------
# D-Bus

class SessionBus:
    """A private dbus-daemon (session type) on a unix socket in a temporary
    directory, with no service activation: nothing on the system is
    started through it. .address is for DBUS_SESSION_BUS_ADDRESS."""

    def __init__(self, timeout=10):
        self.dir = tempfile.mkdtemp(prefix="mwtest-bus-")
        self.socket = os.path.join(self.dir, "bus")
        self.conf = os.path.join(self.dir, "bus.conf")
        self.proc = None
        _register(self)
        try:
            _write(self.conf, """<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
""" % self.socket)
            self.proc = subprocess.Popen(
                ["dbus-daemon", "--config-file=" + self.conf, "--nofork",
                 "--print-address=1"], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True)
            r, _, _ = select.select([self.proc.stdout], [], [], _t(timeout))
            line = self.proc.stdout.readline().decode().strip() if r else ""
            if not line.startswith("unix:"):
                raise RuntimeError("dbus-daemon gave no address")
            self.address = line
        except BaseException:
            self.stop()
            raise

    def __repr__(self):
        return "<SessionBus %s pid=%s>" % (self.dir,
                                           self.proc.pid if self.proc
                                           else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def env(self):
        """os.environ plus this bus as the session bus."""
        e = dict(os.environ)
        e["DBUS_SESSION_BUS_ADDRESS"] = self.address
        return e

    def stop(self):
        try:
            if self.proc is not None:
                _stop_popen(self.proc, term_timeout=5)
                self.proc.stdout.close()
        finally:
            _unregister(self)
            shutil.rmtree(self.dir, ignore_errors=True)


class Notifyd:
    """build/tests/notifyd RECORDFILE on a SessionBus: owns
    org.freedesktop.Notifications, prints "ready", and appends one JSON
    object per Notify call (app_name, replaces_id, icon, summary, body,
    actions, hints, expire; t: CLOCK_MONOTONIC seconds at its arrival). Notifyd.available() says whether it is
    built; $NOTIFYD_BIN overrides the path."""

    def __init__(self, bus, timeout=10, binary=None):
        self.bin = binary or self.binary()
        self.bus = bus
        self.dir = tempfile.mkdtemp(prefix="mwtest-notifyd-")
        self.record_file = os.path.join(self.dir, "notifications.jsonl")
        self.out = os.path.join(self.dir, "notifyd.out")
        self.proc = None
        _register(self)
        try:
            with open(self.out, "wb") as out:
                self.proc = subprocess.Popen(
                    [self.bin, self.record_file], stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, env=bus.env(),
                    start_new_session=True)
            if not wait_until(lambda: self._ready() or
                              self.proc.poll() is not None, timeout) \
                    or not self._ready():
                raise RuntimeError("notifyd not ready: " + self.log_tail())
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def binary():
        return os.environ.get("NOTIFYD_BIN") or os.path.join(
            REPO, "build", "tests", "notifyd")

    @classmethod
    def available(cls):
        return os.access(cls.binary(), os.X_OK)

    def _ready(self):
        try:
            with open(self.out, "rb") as f:
                return re.search(rb"^ready$", f.read(), re.M) is not None
        except OSError:
            return False

    def __repr__(self):
        return "<Notifyd pid=%s>" % (self.proc.pid if self.proc else None)

    def log_tail(self, lines=40):
        return _tail(self.out, lines)

    def records(self, method="Notify"):
        """The calls recorded so far (list of dicts), only those of method
        ("Notify", "CloseNotification"; None: all)."""
        return [r for r in _read_jsonl(self.record_file)
                if method is None or r.get("method", "Notify") == method]

    def wait_records(self, n, timeout=10, method="Notify"):
        """Waits until at least n records of method exist; returns them."""
        wait_until(lambda: len(self.records(method)) >= n, timeout)
        return self.records(method)

    def stop(self):
        try:
            if self.proc is not None:
                _stop_popen(self.proc, term_timeout=5)
        finally:
            _unregister(self)
            shutil.rmtree(self.dir, ignore_errors=True)


def _read_jsonl(path):
    """Complete JSON lines of path (a partly written last line is left
    out)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    recs = []
    for line in data.split(b"\n")[:-1]:
        if line.strip():
            recs.append(json.loads(line))
    return recs


# ---------------------------------------------------------------------------
# mailwatch

HOOK_SCRIPT = r'''#!/usr/bin/python3
# Written by tests/lib/mwtest.py. Usage: hook.py RECORDFILE [--sleep S]
# [--exit N] [--print TEXT] [--] ARGS... Appends one JSON line: every
# MAILWATCH_* variable, plus _argv (ARGS), _t (time.monotonic(), comparable
# across processes), _pid, _sid (its session: the pid of the mailwatch that
# started it, even once that is gone).
import json, os, sys, time
rec_file, args = sys.argv[1], sys.argv[2:]
sleep = code = 0
text = None
while args and args[0] in ("--sleep", "--exit", "--print"):
    opt, val, args = args[0], args[1], args[2:]
    if opt == "--sleep":
        sleep = float(val)
    elif opt == "--exit":
        code = int(val)
    else:
        text = val
if args and args[0] == "--":
    args = args[1:]
rec = {k: v for k, v in os.environ.items() if k.startswith("MAILWATCH_")}
rec["_argv"] = args
rec["_t"] = time.monotonic()
rec["_pid"] = os.getpid()
rec["_sid"] = os.getsid(0)
fd = os.open(rec_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, (json.dumps(rec) + "\n").encode())
os.close(fd)
if text is not None:
    print(text, flush=True)
if sleep:
    time.sleep(sleep)
sys.exit(code)
'''


def _ini_value(v):
    if v is True:
        return "yes"
    if v is False:
        return "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


class Mailwatch:
    """mailwatch under test, in its own temporary directory.

    sections: {"general": {...}, "account NAME": {...}, ...} written as the
    ini file (values: str, int, bool -> yes/no, list -> "a, b"; a section
    may also be given as a raw string). In string values "{hook}" and
    "{post_hook}" become the recording hook commands (see hook_cmd) and
    "{dir}" the temporary directory.

    Runs $MAILWATCH_BIN (default build/asan/mailwatch) with "-c FILE" plus
    args, with HOME, XDG_CONFIG_HOME, XDG_STATE_HOME, XDG_RUNTIME_DIR in the
    temporary directory, DBUS_SESSION_BUS_ADDRESS set to bus (or to a
    socket that does not exist), no JOURNAL_STREAM, and NOTIFY_SOCKET set
    to a socket recorded by sd_notify_messages() when sd_notify=True.
    stderr goes to a log file: log(), wait_log()."""

    def __init__(self, sections=None, bus=None, args=("-v",), binary=None,
                 env=None, start=True, sd_notify=False, config_text=None):
        self.bin = binary or os.environ.get("MAILWATCH_BIN") or os.path.join(
            REPO, "build", "asan", "mailwatch")
        self.bus = bus
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.proc = None
        self.returncode = None
        self.dir = tempfile.mkdtemp(prefix="mwtest-mailwatch-")
        self.config_file = os.path.join(self.dir, "mailwatch.ini")
        self.log_path = os.path.join(self.dir, "mailwatch.log")
        self.hook_script = os.path.join(self.dir, "hook.py")
        for sub in ("home", "config", "state", "runtime"):
            os.mkdir(os.path.join(self.dir, sub), 0o700)
        _write(self.hook_script, HOOK_SCRIPT, 0o755)
        self._notify_sock = None
        self._notify_msgs = []
        self._notify_lock = threading.Lock()
        _register(self)
        try:
            if sd_notify:
                self.notify_socket = os.path.join(self.dir, "notify")
                self._notify_sock = socket.socket(socket.AF_UNIX,
                                                  socket.SOCK_DGRAM)
                self._notify_sock.bind(self.notify_socket)
                self._notify_sock.settimeout(0.2)
                # Read at once, so that mailwatch never blocks in
                # sd_notify() on a full datagram queue.
                self._notify_thread = threading.Thread(
                    target=self._notify_reader, args=(self._notify_sock,),
                    daemon=True)
                self._notify_thread.start()
            if config_text is not None:
                self.write_config_text(config_text)
            elif sections is not None:
                self.write_config(sections)
            if start:
                self.start()
        except BaseException:
            self.stop()
            raise

    def __repr__(self):
        return "<Mailwatch %s pid=%s>" % (self.dir,
                                          self.proc.pid if self.proc
                                          else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @staticmethod
    def available(binary=None):
        b = binary or os.environ.get("MAILWATCH_BIN") or os.path.join(
            REPO, "build", "asan", "mailwatch")
        return os.access(b, os.X_OK)

    # -- hooks
    def hook_file(self, kind="new"):
        return os.path.join(self.dir, "hook-%s.jsonl" % kind)

    def hook_cmd(self, kind="new", args=(), sleep=0, exit=0, output=None):
        """A hook command line that records its environment into
        hook_file(kind); sleep/exit/output make it slow, fail or print."""
        cmd = [self.hook_script, self.hook_file(kind)]
        if sleep:
            cmd += ["--sleep", str(sleep)]
        if exit:
            cmd += ["--exit", str(exit)]
        if output is not None:
            cmd += ["--print", output]
        cmd += ["--"] + list(args)
        return " ".join(_ini_quote(a) for a in cmd)

    def hook_records(self, kind="new"):
        """One dict per hook run: the MAILWATCH_* variables, _argv, _t."""
        return _read_jsonl(self.hook_file(kind))

    def wait_hooks(self, n, timeout=10, kind="new"):
        """Waits until at least n hook records exist (or timeout, or
        mailwatch exited: then until the hooks it left are done); returns
        them all."""
        wait_until(lambda: len(self.hook_records(kind)) >= n or
                   not self.running(), timeout)
        if not self.running():
            wait_until(lambda: not self.children(), 5)
        return self.hook_records(kind)

    def children(self):
        """Pids of what mailwatch started that still runs (not zombies):
        hooks, password commands and what they started, that is its
        session but itself."""
        if self.proc is None:
            return []
        return [p for p in _session_pids(self.proc.pid)
                if p != self.proc.pid]

    def settle(self, seconds=0.5, timeout=10):
        """Before checking that something did not happen (a hook run
        twice): waits until every process mailwatch started has ended,
        so every hook started so far has written its record, then
        quiet(seconds) for what would come later."""
        wait_until(lambda: not self.children(), timeout)
        quiet(seconds)

    # -- config
    def _subst(self, v):
        if isinstance(v, str):
            return (v.replace("{hook}", self.hook_cmd("new"))
                     .replace("{post_hook}", self.hook_cmd("post"))
                     .replace("{dir}", self.dir))
        return v

    def write_config(self, sections, mode=0o600):
        """Writes sections as the ini file (see the class docstring)."""
        out = []
        for name, body in sections.items():
            out.append("[%s]" % name)
            if isinstance(body, str):
                out.append(body.rstrip("\n"))
            else:
                for k, v in body.items():
                    if v is None:
                        continue
                    out.append("%s = %s" % (k, self._subst(_ini_value(v))))
            out.append("")
        self.write_config_text("\n".join(out), mode)

    def write_config_text(self, text, mode=0o600):
        _write(self.config_file, text, mode)

    def config_text(self):
        with open(self.config_file) as f:
            return f.read()

    # -- running
    def env(self):
        e = {k: v for k, v in os.environ.items()
             if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                          "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                          "DISPLAY", "WAYLAND_DISPLAY")
             and not k.startswith("MAILWATCH_")}
        e["HOME"] = os.path.join(self.dir, "home")
        e["XDG_CONFIG_HOME"] = os.path.join(self.dir, "config")
        e["XDG_STATE_HOME"] = os.path.join(self.dir, "state")
        e["XDG_RUNTIME_DIR"] = os.path.join(self.dir, "runtime")
        e["DBUS_SESSION_BUS_ADDRESS"] = (
            self.bus.address if self.bus else
            "unix:path=" + os.path.join(self.dir, "no-bus"))
        if self._notify_sock is not None:
            e["NOTIFY_SOCKET"] = self.notify_socket
        e.update(self.extra_env)
        return e

    def argv(self):
        return [self.bin, "-c", self.config_file] + self.args

    def start(self):
        """Starts mailwatch (stderr and stdout appended to the log)."""
        if not os.access(self.bin, os.X_OK):
            raise Skip("%s is not built" % self.bin)
        if self.running():
            raise RuntimeError("already running")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=self.env(), cwd=self.dir,
                start_new_session=True)
        self.returncode = None
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid if self.proc else None

    def signal(self, sig):
        """Sends sig (e.g. signal.SIGHUP to reload) to mailwatch."""
        if self.running():
            os.kill(self.proc.pid, sig)

    def reload(self, sections=None):
        """Rewrites the config (when given) and sends SIGHUP."""
        if sections is not None:
            self.write_config(sections)
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout=10):
        """Waits for mailwatch to exit by itself; its status or None."""
        if self.proc is None:
            return None
        try:
            self.returncode = self.proc.wait(_t(timeout))
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=10):
        """SIGTERM, wait (bounded), then SIGKILL. Returns the exit status
        (negative: killed by that signal). The temporary directory stays
        until the process ends (log() keeps working); cleanup() removes
        it; mwtest.main does both."""
        try:
            if self.proc is not None:
                sid = self.proc.pid
                self.returncode = _stop_popen(self.proc, timeout)
                left = _kill_session_leftovers(sid)
                if left:
                    comment("mailwatch left processes behind: %s" % left)
        finally:
            if self._notify_sock is not None:
                sock, self._notify_sock = self._notify_sock, None
                self._notify_thread.join(_t(5))
                sock.close()
            _unregister(self)
            _cleanup_later.append(self.dir)
        return self.returncode

    def log(self):
        """Everything mailwatch wrote to stderr/stdout so far."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def mark(self):
        """The log's current length: pass as since= to wait_log to only
        look at what comes after."""
        return len(self.log())

    def wait_log(self, regex, timeout=10, since=0):
        """Waits until the log (from offset since) matches regex; returns
        the match, or None on timeout or when mailwatch exited without
        it."""
        rx = re.compile(regex, re.M)

        def probe():
            m = rx.search(self.log(), since)
            if m or not self.running():
                return m or "exited"
            return None
        r = wait_until(probe, timeout)
        return r if r and r != "exited" else None

    def sanitizer_errors(self):
        """Lines of the log where ASan/UBSan/LSan reported something."""
        rx = re.compile(r"(ERROR: (Address|Leak)Sanitizer|runtime error:|"
                        r"SUMMARY: \w+Sanitizer)")
        return [ln for ln in self.log().splitlines() if rx.search(ln)]

    def state_dir(self):
        return os.path.join(self.dir, "state", "mailwatch")

    # -- sd_notify
    def _notify_reader(self, sock):
        """Until stop(): every datagram into _notify_msgs."""
        while self._notify_sock is sock:
            try:
                msg = sock.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                continue
            except OSError:
                return
            with self._notify_lock:
                self._notify_msgs.append(msg)

    def sd_notify_messages(self):
        """Datagrams mailwatch sent to NOTIFY_SOCKET (needs sd_notify=
        True), e.g. ["READY=1\\nSTATUS=...", "WATCHDOG=1"]."""
        with self._notify_lock:
            return list(self._notify_msgs)

    def wait_sd_notify(self, regex, timeout=10):
        rx = re.compile(regex, re.M)
        return wait_until(lambda: next(
            (m for m in map(rx.search, self.sd_notify_messages()) if m),
            None), timeout)


_cleanup_later = []


def _remove_later_dirs():
    for d in _cleanup_later:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_remove_later_dirs)


def _ini_quote(s):
    """Quotes s for mailwatch's argv splitting (config_split_argv)."""
    if s and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", s):
        return s
    return "'" + s + "'" if "'" not in s else '"' + s.replace(
        "\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------
# Sample mail

def sample_names():
    """The sample messages' file names, sorted."""
    return sorted(f for f in os.listdir(SAMPLE_MAIL_DIR)
                  if f.endswith(".eml"))


def sample_message(name):
    """The raw bytes of a sample message, by file name or by a prefix of
    it ("01")."""
    for f in sample_names():
        if f == name or f.startswith(name):
            with open(os.path.join(SAMPLE_MAIL_DIR, f), "rb") as fh:
                return fh.read()
    raise KeyError(name)


def sample_expected():
    """{file name: {"from_name", "from_address", "subject"}}: what a
    correct decoder makes of each sample (tests/lib/sample-mail/
    expected.json)."""
    with open(os.path.join(SAMPLE_MAIL_DIR, "expected.json"),
              encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items()
                if not k.startswith("_")}


def make_message(subject="Test message", from_="Tester <tester@example.org>",
                 to="alice@example.org", body="Hello.\n", msgid=None,
                 date=None):
    """A small plain-text message (bytes, CRLF) with the given headers."""
    msgid = msgid or email.utils.make_msgid(domain="mwtest.example")
    date = date or email.utils.formatdate(localtime=False)
    text = ("From: %s\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: %s\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\n%s" % (
                from_, to, subject, date, msgid, body))
    return crlf(text)
