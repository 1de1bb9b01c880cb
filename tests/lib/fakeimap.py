"""fakeimap: a scripted IMAP server for the hostile-server tests.

Python 3 standard library only. Listens on 127.0.0.1 (plain TCP; with an
ssl.SSLContext implicit TLS, or STARTTLS with starttls=True; tls_context()
makes one from a fresh mwtest test CA), one thread per connection, and
serves one mailbox model to every connection:

    srv = fakeimap.FakeImap(password="s3cret")
    uid = srv.add_message(subject="hello", from_name="Ann",
                          from_addr="ann@example.org")   # pushes EXISTS
    srv.connection_count()         # connections accepted so far
    srv.commands                   # [(conn no, line text)], every command
    srv.logins                     # [(conn no, user, password, accepted)]

The default script is a well-behaved IMAP4rev1 server: greeting with
CAPABILITY (IMAP4rev1 IDLE AUTH=PLAIN SASL-IR LITERAL+ by default),
CAPABILITY, AUTHENTICATE PLAIN (with and without an initial response),
AUTHENTICATE XOAUTH2 and OAUTHBEARER (offer them in caps=; srv.tokens is
the set of access tokens accepted for user, and a refused one gets
Gmail's error challenge, base64 of {"status":"400",...}, before the NO;
srv.logins records the token as the password),
LOGIN, EXAMINE/SELECT (FLAGS, EXISTS, RECENT, UIDVALIDITY, UIDNEXT unless
send_uidnext=False), IDLE ("+ idling", DONE), UID FETCH <set> returning
UID FLAGS [INTERNALDATE] ENVELOPE of the matching messages (for "n:*" with
n above every UID, the last message, as RFC 3501 says), FETCH <seq set>
(UID) , NOOP
(flushing pending EXISTS), CLOSE, LOGOUT. New messages are announced with
"* N EXISTS" at once to connections in IDLE and with the next command
response to the others.

FakeImap(nagle=True) leaves Nagle's algorithm on (no TCP_NODELAY, like
Cyrus), so each reply's later small writes wait for the client's ACK; it
records in srv.ack_waits how long the client took to acknowledge each
tagged OK of an IDLE (the write that goes before the UID FETCH reply).

Faults are scripted per test:

  srv.handlers["UID FETCH"] = fn   fn(conn, tag, args) replaces the default
                                   handler of a command (names upper-case,
                                   "UID FETCH", "IDLE", "DONE", "EXAMINE",
                                   "AUTHENTICATE", "LOGIN", "NOOP", ...);
                                   srv.default(name, conn, tag, args) runs
                                   the default one from inside fn.
  srv.once("UID FETCH", fn)        the same, for the next call only.
  srv.on_connect = fn              fn(conn) instead of the greeting; return
                                   False to have the default greeting sent
                                   after all.
  srv.inject(point, data)          raw bytes (or fn(conn)) sent once at a
                                   point: "greeting" (instead of it),
                                   "idle" (after "+ idling"), "examine"
                                   (before the tagged OK of EXAMINE),
                                   "fetch" (before the tagged OK of UID
                                   FETCH).
  conn.send(b) / conn.sendline(s) / conn.close() / conn.dribble = seconds
                                   (every later byte written alone, with
                                   that sleep between bytes).
  srv.tls_cork = True              with implicit TLS, the end of the
                                   handshake and the greeting leave in one
                                   TCP segment (TCP_CORK until the
                                   greeting is sent).

More mailboxes than INBOX (NOTIFY, RFC 5465, and STATUS):

  srv.add_box("Work")              another mailbox (Box: messages,
                                   next_uid, uidvalidity); srv.messages,
                                   srv.next_uid, srv.uidvalidity are
                                   INBOX's. EXAMINE opens any of them
                                   (NO [NONEXISTENT] for others); UID
                                   FETCH and FETCH answer from the one
                                   the connection selected.
  srv.add_message(..., mailbox="Work")
                                   to connections that selected it as
                                   for INBOX; to connections that follow
                                   it with NOTIFY, "* STATUS Work
                                   (MESSAGES n UIDNEXT u UNSEEN k)" at
                                   once (srv.notify_pushes = False: not).
  STATUS name (items)              "* STATUS" of the items asked.
  SEARCH UNSEEN                    the selected mailbox's messages
                                   without \\Seen (other criteria: BAD).
  NOTIFY SET STATUS (selected ...) (mailboxes (a b) (...))
                                   a STATUS of each known mailbox
                                   followed, then OK; afterwards the
                                   selected mailbox's new mail comes in
                                   IDLE as "* N EXISTS" and its "* N
                                   FETCH (UID FLAGS ENVELOPE)" in one
                                   write. NOTIFY NONE stops it. Not
                                   offered unless caps say NOTIFY.
  srv.refuse_login = fn(conn)      a text (e.g. "[LIMIT] Too many") to
                                   answer a login with "NO text" whatever
                                   the credentials, or None to go on.
  srv.status_line(name, items)     the "* STATUS" line of a mailbox.

FETCH and UID FETCH also answer BODY.PEEK[HEADER.FIELDS (F)]<0.n> from
the message's headers (From, Subject, Date, Message-ID as add_message
was given them).

Timeouts (the wait_* methods, conn.hang) are in seconds, multiplied by
$MWTEST_TIMEOUT_SCALE as everywhere in mwtest.

Messages are Message(uid, flags, envelope, internaldate) where envelope is
the raw IMAP ENVELOPE text (bytes, literals included); envelope() builds
one; internaldate is seconds since the epoch (when it was added, unless
given; imap_date() formats it). Helpers
for the tests: fetch_line(), imap_string(), proc_memory(), and Hostile,
the shape every test_hostile_*.py scenario shares (mailwatch from mwtest
on a FakeImap, log/reconnect/announce/memory assertions).
"""

import base64
import os
import re
import socket
import ssl
import threading
import time

HOST = "127.0.0.1"
DEFAULT_CAPS = "IMAP4rev1 IDLE AUTH=PLAIN SASL-IR LITERAL+"


def _t(seconds):
    """seconds times $MWTEST_TIMEOUT_SCALE (mwtest's scale)."""
    import mwtest
    return mwtest._t(seconds)


# ---------------------------------------------------------------------------
# Wire helpers

def _b(x):
    if x is None:
        return None
    return x if isinstance(x, bytes) else str(x).encode("utf-8")


def imap_string(value, literal=False):
    """value (str or bytes, None for NIL) as an IMAP string: a quoted string
    when it is plain 7-bit text, else (or when literal) a literal."""
    v = _b(value)
    if v is None:
        return b"NIL"
    if not literal and all(0x20 <= c < 0x7f for c in v):
        return b'"' + v.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(v) + v


def address_list(name, mailbox, host, literal=()):
    """One address as an ENVELOPE address list, or NIL when all are None."""
    if name is None and mailbox is None and host is None:
        return b"NIL"
    return (b"((" + imap_string(name, "name" in literal) + b" NIL " +
            imap_string(mailbox, "mailbox" in literal) + b" " +
            imap_string(host, "host" in literal) + b"))")


def envelope(subject="test", from_name="Sender", from_addr="sender@example.org",
             date="Mon, 1 Jan 2024 10:00:00 +0000", message_id=None,
             literal=()):
    """The raw text of an ENVELOPE (RFC 3501 7.4.2). literal: names of
    fields ("subject", "name", "mailbox", "host", "date") to send as
    literals. from_addr None gives a NIL From."""
    if from_addr is None and from_name is None:
        frm = b"NIL"
    else:
        a = _b(from_addr) if from_addr is not None else None
        mbox, _, host = (a.partition(b"@") if a is not None
                         else (None, b"", None))
        frm = address_list(from_name, mbox, host or None, literal)
    return b"(" + b" ".join([
        imap_string(date, "date" in literal),
        imap_string(subject, "subject" in literal),
        frm, frm, frm,                       # from, sender, reply-to
        b'((NIL NIL "me" "example.net"))',   # to
        b"NIL", b"NIL", b"NIL",              # cc, bcc, in-reply-to
        imap_string(message_id, "message_id" in literal),
    ]) + b")"


NIL_ENVELOPE = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def imap_date(t):
    """Seconds since the epoch as an IMAP date-time, in UTC."""
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(t))


class Message:
    def __init__(self, uid, flags=(), envelope_bytes=None, internaldate=None,
                 headers=None):
        self.uid = uid
        self.flags = list(flags)
        self.envelope = envelope_bytes if envelope_bytes is not None \
            else envelope(subject="message %d" % uid)
        self.internaldate = (time.time() if internaldate is None
                             else internaldate)
        # Upper-case field name -> value (str), for HEADER.FIELDS.
        self.headers = dict(headers or
                            {"SUBJECT": "message %d" % uid})

    def __repr__(self):
        return "<Message uid=%d>" % self.uid


HEADER_FIELDS_RX = re.compile(
    r"BODY\.PEEK\[HEADER\.FIELDS \(([A-Za-z-]+)\)\](?:<0\.(\d+)>)?", re.I)


def fetch_line(seq, msg, items=("UID", "FLAGS", "ENVELOPE"), uid=None):
    """The untagged FETCH response for msg (bytes with CRLF). An item
    BODY.PEEK[HEADER.FIELDS (F)]<0.n> gives that header field (cut at n
    bytes) as a literal."""
    parts = []
    for it in items:
        m = HEADER_FIELDS_RX.fullmatch(it)
        if m:
            field = m.group(1).upper()
            v = msg.headers.get(field)
            text = (b"" if v is None else
                    _b("%s: %s\r\n" % (field.title(), v))) + b"\r\n"
            if m.group(2):
                text = text[:int(m.group(2))]
            parts.append(b"BODY[HEADER.FIELDS (%s)]<0> {%d}\r\n" %
                         (field.encode(), len(text)) + text)
        elif it == "UID":
            parts.append(b"UID %d" % (msg.uid if uid is None else uid))
        elif it == "FLAGS":
            parts.append(b"FLAGS (" + " ".join(msg.flags).encode() + b")")
        elif it == "INTERNALDATE":
            parts.append(b'INTERNALDATE "%s"' %
                         imap_date(msg.internaldate).encode())
        elif it == "ENVELOPE":
            parts.append(b"ENVELOPE " + msg.envelope)
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"


def parse_set(text, maxval):
    """A sequence set ("1:3,7,9:*") as a list of (lo, hi); '*' is maxval."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        lo = maxval if a == "*" else int(a)
        hi = lo if not b else (maxval if b == "*" else int(b))
        out.append((min(lo, hi), max(lo, hi)))
    return out


def tokens(args):
    """Splits IMAP arguments into atoms / strings (quoted unescaped,
    literals already inline as {n}\\r\\n...) and parenthesised groups as
    raw text. Returns a list of str (latin-1)."""
    out, i, n = [], 0, len(args)
    while i < n:
        c = args[i]
        if c == " ":
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while j < n and args[j] != '"':
                if args[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(args[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
        elif c == "{":
            m = re.match(r"\{(\d+)\+?\}\r\n", args[i:])
            if not m:
                out.append(args[i:])
                break
            k = int(m.group(1))
            start = i + m.end()
            out.append(args[start:start + k])
            i = start + k
        elif c == "(":
            depth, j = 0, i
            while j < n:
                if args[j] == "(":
                    depth += 1
                elif args[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out.append(args[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < n and args[j] != " ":
                j += 1
            out.append(args[i:j])
            i = j
    return out


def proc_memory(pid):
    """{"VmRSS": KiB, "VmHWM": KiB} of a live process, from
    /proc/PID/status ({} when it is gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "VmSize"):
                    out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


class Box:
    """One mailbox of the model."""

    def __init__(self, name, uidvalidity):
        self.name = name
        self.messages = []
        self.next_uid = 1
        self.uidvalidity = uidvalidity

    def __repr__(self):
        return "<Box %s: %d messages>" % (self.name, len(self.messages))

    def unseen(self):
        return sum(1 for m in self.messages if "\\Seen" not in m.flags)


# ---------------------------------------------------------------------------
# One connection

class Closed(Exception):
    pass


class Conn:
    def __init__(self, srv, sock, no):
        self.srv = srv
        self.sock = sock
        self.no = no                # 1 for the first connection
        self.t_open = time.monotonic()
        self.t_close = None
        self.wlock = threading.Lock()
        self.rbuf = b""
        self.closed = False
        self.selected = False
        self.box = None             # the Box selected (EXAMINE)
        self.notify_boxes = None    # names NOTIFY follows, else None
        self.notify_selected = False  # NOTIFY pushes FETCH of new mail
        self.idle_tag = None        # tag of the IDLE in progress
        self.reported = 0           # EXISTS count this client last heard
        self.dribble = 0            # > 0: send byte by byte, this sleep
        self.sent = 0               # bytes sent
        self.thread = None
        self.tls = False            # TLS is up on this connection
        self.lines = []             # (tls, line) of every command here

    def __repr__(self):
        return "<Conn #%d>" % self.no

    # -- output
    def send(self, data):
        """Sends bytes (str is UTF-8 encoded). Returns False once the
        peer is gone."""
        data = _b(data)
        with self.wlock:
            if self.closed:
                return False
            try:
                if self.dribble:
                    for i in range(len(data)):
                        self.sock.sendall(data[i:i + 1])
                        self.sent += 1
                        time.sleep(self.dribble)
                else:
                    self.sock.sendall(data)
                    self.sent += len(data)
            except (OSError, ValueError):
                return False
        return True

    def sendline(self, line):
        return self.send(_b(line) + b"\r\n")

    def ack_wait(self, limit=0.5):
        """Seconds until the client acknowledged every byte sent (the
        send queue, SIOCOUTQ, is empty), at most limit. A client that
        delays its ACK holds a Nagle server's next small write for
        Linux's delayed-ACK time, 40 ms at least."""
        import fcntl
        import struct
        import termios
        t0 = time.monotonic()
        while True:
            try:
                out = struct.unpack("i", fcntl.ioctl(
                    self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
            except OSError:
                return 0.0
            waited = time.monotonic() - t0
            if out == 0 or waited >= limit:
                return waited
            time.sleep(0.0005)

    def close(self):
        """Closes the connection at once (a cut, as the client sees it)."""
        with self.wlock:
            if self.closed:
                return
            self.closed = True
            self.t_close = time.monotonic()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass

    def hang(self, timeout=None):
        """Keeps the connection open, reading and discarding input, until
        the peer closes it, the server stops or timeout seconds (scaled)
        pass. (A server that never answers.)"""
        end = None if timeout is None else time.monotonic() + _t(timeout)
        while not self.closed and not self.srv.stopping:
            if end is not None and time.monotonic() >= end:
                return
            try:
                self._fill(0.2)
            except Closed:
                return
            self.rbuf = b""

    # -- input
    def _fill(self, timeout=None):
        """Reads more into rbuf. Raises Closed at EOF or error. With a
        timeout returns after it without data."""
        if self.closed:
            raise Closed()
        self.sock.settimeout(timeout if timeout is not None else 0.5)
        while True:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                if timeout is not None or self.srv.stopping:
                    if self.srv.stopping:
                        raise Closed()
                    return
                continue
            except (OSError, ValueError):
                raise Closed()
            if not d:
                raise Closed()
            self.rbuf += d
            return

    def readline(self):
        """One CRLF line (str, latin-1, without CRLF); literals the client
        sends ({n} after a "+", or {n+}) are inlined as {n}\\r\\n<bytes>."""
        line = b""
        while True:
            while b"\n" not in self.rbuf:
                self._fill()
            part, _, self.rbuf = self.rbuf.partition(b"\n")
            line += part + b"\n"
            # In what came after the last literal only: one whose text
            # ends in "{n}" announces nothing.
            m = re.search(rb"\{(\d+)(\+?)\}\r?\n$", part + b"\n")
            if not m:
                return line.rstrip(b"\r\n").decode("latin-1")
            n = int(m.group(1))
            if not m.group(2):
                self.sendline("+ go ahead")
            while len(self.rbuf) < n:
                self._fill()
            line += self.rbuf[:n]
            self.rbuf = self.rbuf[n:]

    # -- the loop
    def run(self):
        srv = self.srv
        try:
            if not srv._greet(self):
                return
            while not self.closed and not srv.stopping:
                line = self.readline()
                srv._record(self, line)
                srv._dispatch(self, line)
        except Closed:
            pass
        except Exception as e:  # a bug in a test script: keep it visible
            srv.errors.append("conn #%d: %r" % (self.no, e))
        finally:
            self.close()


# ---------------------------------------------------------------------------
# The server

class FakeImap:
    def __init__(self, user="alice", password="secret", caps=DEFAULT_CAPS,
                 uidvalidity=1000, send_uidnext=True, ssl_context=None,
                 starttls=False, host=HOST, register=True, nagle=False):
        self.user = user
        self.nagle = nagle
        self.ack_waits = []         # nagle: seconds each DONE's OK waited
        self.password = password
        self.caps = caps
        self.boxes = {"INBOX": Box("INBOX", uidvalidity)}
        self.notify_pushes = True
        self.refuse_login = None
        self.send_uidnext = send_uidnext
        self.ssl_context = ssl_context
        self.tls_cork = False
        self.starttls = starttls and ssl_context is not None
        if self.starttls and "STARTTLS" not in caps.split():
            caps += " STARTTLS"
            self.caps = caps
        self.lock = threading.RLock()
        self.conns = []
        self.commands = []          # (conn no, line)
        self.logins = []            # (conn no, user, password, accepted)
        self.tokens = set()         # OAuth2 access tokens accepted
        self.errors = []            # exceptions in handlers
        self.handlers = {}
        self._once = {}
        self._inject = {}
        self.on_connect = None
        self.stopping = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop,
                                       name="fakeimap-accept", daemon=True)
        self.thread.start()
        if register:
            try:
                import mwtest
                mwtest._register(self)
            except Exception:
                pass

    def __repr__(self):
        return "<FakeImap port=%d conns=%d>" % (self.port, len(self.conns))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- life
    def _accept_loop(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self.nagle:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None and not self.starttls:
                if self.tls_cork:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                try:
                    s.settimeout(_t(10))
                    s = self.ssl_context.wrap_socket(s, server_side=True)
                except (OSError, ssl.SSLError):
                    s.close()
                    continue
            with self.lock:
                c = Conn(self, s, len(self.conns) + 1)
                c.tls = self.ssl_context is not None and not self.starttls
                self.conns.append(c)
            c.thread = threading.Thread(target=c.run, daemon=True,
                                        name="fakeimap-conn-%d" % c.no)
            c.thread.start()

    def stop(self):
        """Closes the listener and every connection; joins the threads
        (bounded)."""
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            c.close()
        self.thread.join(_t(5))
        for c in list(self.conns):
            if c.thread:
                c.thread.join(_t(5))
        try:
            import mwtest
            mwtest._unregister(self)
        except Exception:
            pass

    # -- observing
    def connection_count(self):
        return len(self.conns)

    def conn(self, no=-1):
        """Connection number no (1-based), or the latest for -1."""
        with self.lock:
            if not self.conns:
                return None
            return self.conns[-1] if no == -1 else self.conns[no - 1]

    def open_conns(self):
        return [c for c in self.conns if not c.closed]

    def wait_connections(self, n, timeout=10):
        """Waits until at least n connections were accepted."""
        end = time.monotonic() + _t(timeout)
        while len(self.conns) < n and time.monotonic() < end:
            time.sleep(0.02)
        return len(self.conns) >= n

    def wait_idle(self, timeout=10, conn_no=None):
        """Waits until a connection (conn_no, else the latest) is in IDLE.
        Returns that connection or None."""
        end = time.monotonic() + _t(timeout)
        while time.monotonic() < end:
            c = self.conn(conn_no or -1)
            if c is not None and c.idle_tag is not None and not c.closed:
                return c
            time.sleep(0.02)
        return None

    def wait_command(self, regex, timeout=10, since=0):
        """Waits for a received command line matching regex (from index
        since of .commands); returns (conn no, line) or None."""
        rx = re.compile(regex)
        end = time.monotonic() + _t(timeout)
        while True:
            for no, line in self.commands[since:]:
                if rx.search(line):
                    return no, line
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)

    def commands_of(self, regex):
        rx = re.compile(regex)
        return [(no, ln) for no, ln in self.commands if rx.search(ln)]

    def _record(self, conn, line):
        with self.lock:
            self.commands.append((conn.no, line))
            conn.lines.append((conn.tls, line))

    # -- mailbox model (INBOX's messages, next_uid and uidvalidity are
    # the server's own, as before there were others)
    @property
    def inbox(self):
        return self.boxes["INBOX"]

    @property
    def messages(self):
        return self.inbox.messages

    @messages.setter
    def messages(self, value):
        self.inbox.messages = value

    @property
    def next_uid(self):
        return self.inbox.next_uid

    @next_uid.setter
    def next_uid(self, value):
        self.inbox.next_uid = value

    @property
    def uidvalidity(self):
        return self.inbox.uidvalidity

    @uidvalidity.setter
    def uidvalidity(self, value):
        self.inbox.uidvalidity = value

    def add_box(self, name, uidvalidity=None):
        """Creates mailbox name (UIDVALIDITY 1000 + its number unless
        given); returns its Box."""
        with self.lock:
            b = Box(name, uidvalidity if uidvalidity is not None
                    else 1000 + len(self.boxes))
            self.boxes[name] = b
            return b

    def box(self, name="INBOX"):
        """The Box called name (INBOX in any case), or None."""
        if name.upper() == "INBOX":
            name = "INBOX"
        return self.boxes.get(name)

    def add_message(self, subject=None, from_name="Sender",
                    from_addr="sender@example.org", flags=(),
                    envelope_bytes=None, notify=True, internaldate=None,
                    mailbox="INBOX", **kw):
        """Appends a message to mailbox (next UID; INTERNALDATE now, or
        internaldate seconds since the epoch) and tells every connection
        that selected it ("* N EXISTS" now in IDLE, else with the next
        response) and that follows it with NOTIFY ("* STATUS") unless
        notify=False. Returns its UID."""
        with self.lock:
            box = self.box(mailbox)
            uid = box.next_uid
            box.next_uid += 1
            if subject is None:
                subject = "message %d" % uid
            if envelope_bytes is None:
                envelope_bytes = envelope(
                    subject=subject, from_name=from_name,
                    from_addr=from_addr, **kw)
            headers = {"SUBJECT": subject,
                       "FROM": "%s <%s>" % (from_name, from_addr),
                       "DATE": kw.get("date",
                                      "Mon, 1 Jan 2024 10:00:00 +0000")}
            if kw.get("message_id"):
                headers["MESSAGE-ID"] = kw["message_id"]
            box.messages.append(Message(uid, flags, envelope_bytes,
                                        internaldate, headers))
        if notify:
            self.notify_all(mailbox)
        return uid

    def exists(self, mailbox="INBOX"):
        return len(self.box(mailbox).messages)

    def uidnext(self, mailbox="INBOX"):
        return self.box(mailbox).next_uid

    def status_line(self, name, items=("MESSAGES", "UIDNEXT", "UNSEEN")):
        """The "* STATUS" response (str, no CRLF) of mailbox name."""
        with self.lock:
            b = self.box(name)
            values = {"MESSAGES": len(b.messages), "UIDNEXT": b.next_uid,
                      "UIDVALIDITY": b.uidvalidity, "UNSEEN": b.unseen(),
                      "RECENT": 0}
            return "* STATUS %s (%s)" % (
                imap_string(b.name).decode(),
                " ".join("%s %d" % (i, values[i]) for i in items
                         if i in values))

    def find(self, uid):
        for i, m in enumerate(self.messages):
            if m.uid == uid:
                return i + 1, m
        return None, None

    def notify_all(self, mailbox="INBOX"):
        """Pushes "* N EXISTS" to every connection in IDLE in mailbox
        whose client has not heard of N messages yet (under NOTIFY with
        the new messages' FETCH), and "* STATUS" to those that follow it
        with NOTIFY (unless notify_pushes is False)."""
        box = self.box(mailbox)
        for c in list(self.conns):
            if c.closed:
                continue
            if c.box is box:
                if c.idle_tag is not None:
                    self._flush_exists(c)
            elif (c.notify_boxes is not None and self.notify_pushes and
                  box.name in c.notify_boxes):
                c.sendline(self.status_line(box.name))

    def _flush_exists(self, conn):
        if not conn.selected or conn.box is None:
            return
        with self.lock:
            msgs = list(conn.box.messages)
            n = len(msgs)
            if n == conn.reported:
                return
            was, conn.reported = conn.reported, n
        out = b"* %d EXISTS\r\n" % n
        if conn.notify_selected:
            for seq in range(was + 1, n + 1):
                out += fetch_line(seq, msgs[seq - 1])
        conn.send(out)

    def set_uidvalidity(self, value, renumber_from=None):
        """Changes UIDVALIDITY; with renumber_from, gives every message a
        new UID counting from it."""
        with self.lock:
            self.uidvalidity = value
            if renumber_from is not None:
                for i, m in enumerate(self.messages):
                    m.uid = renumber_from + i
                self.next_uid = renumber_from + len(self.messages)

    # -- scripting
    def once(self, name, fn):
        self._once.setdefault(name.upper(), []).append(fn)

    def inject(self, point, data):
        self._inject.setdefault(point, []).append(data)

    def _take_inject(self, conn, point):
        lst = self._inject.get(point)
        if not lst:
            return False
        d = lst.pop(0)
        if callable(d):
            d(conn)
        else:
            conn.send(d)
        return True

    def _greet(self, conn):
        if self.on_connect is not None:
            r = self.on_connect(conn)
            if r is not False:
                return not conn.closed
        if self._take_inject(conn, "greeting"):
            return not conn.closed
        sent = conn.sendline("* OK [CAPABILITY %s] fakeimap ready" %
                             self.caps)
        if self.tls_cork and conn.tls:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        return sent

    def _dispatch(self, conn, line):
        if conn.idle_tag is not None:
            # In IDLE only DONE is valid.
            name, tag, args = "DONE", conn.idle_tag, line
        else:
            parts = line.split(" ", 2)
            if len(parts) < 2:
                conn.sendline("* BAD no command")
                return
            tag, name = parts[0], parts[1].upper()
            args = parts[2] if len(parts) > 2 else ""
            if name == "UID":
                sub, _, args = args.partition(" ")
                name = "UID " + sub.upper()
        fns = self._once.get(name)
        if fns:
            fn = fns.pop(0)
        else:
            fn = self.handlers.get(name)
        if fn is not None:
            fn(conn, tag, args)
        else:
            self.default(name, conn, tag, args)

    def default(self, name, conn, tag, args):
        """Runs the default handler of command name."""
        m = getattr(self, "_cmd_" + name.replace(" ", "_").lower(), None)
        if m is None:
            conn.sendline("%s BAD unknown command" % tag)
            return
        m(conn, tag, args)

    def ok(self, conn, tag, text="done"):
        """The tagged OK, after any EXISTS the client has not heard."""
        if conn.selected:
            self._flush_exists(conn)
        conn.sendline("%s OK %s" % (tag, text))

    # -- default handlers
    def _cmd_capability(self, conn, tag, args):
        conn.sendline("* CAPABILITY %s" % self.caps)
        self.ok(conn, tag, "CAPABILITY completed")

    def start_tls(self, conn):
        """Wraps conn in TLS (server side) now; bytes the client sent in
        the clear before are dropped. Returns False when the handshake
        failed (the connection is closed)."""
        conn.rbuf = b""
        try:
            conn.sock.settimeout(_t(10))
            conn.sock = self.ssl_context.wrap_socket(conn.sock,
                                                     server_side=True)
        except (OSError, ssl.SSLError, ValueError):
            conn.close()
            return False
        conn.tls = True
        return True

    def _cmd_starttls(self, conn, tag, args):
        if not self.starttls or conn.tls:
            conn.sendline("%s BAD STARTTLS not available" % tag)
            return
        conn.sendline("%s OK Begin TLS negotiation now" % tag)
        self.start_tls(conn)

    def _cmd_noop(self, conn, tag, args):
        self.ok(conn, tag, "NOOP completed")

    def _cmd_logout(self, conn, tag, args):
        conn.sendline("* BYE logging out")
        conn.sendline("%s OK LOGOUT completed" % tag)
        conn.close()

    def _login_result(self, conn, tag, user, password):
        good = user == self.user and password == self.password
        refusal = self.refuse_login(conn) if self.refuse_login else None
        with self.lock:
            self.logins.append((conn.no, user, password,
                                good and refusal is None))
        if refusal is not None:
            conn.sendline("%s NO %s" % (tag, refusal))
        elif good:
            conn.sendline("%s OK [CAPABILITY %s] logged in" %
                          (tag, self.caps))
        else:
            conn.sendline("%s NO [AUTHENTICATIONFAILED] Authentication "
                          "failed." % tag)

    def _cmd_login(self, conn, tag, args):
        t = tokens(args)
        if len(t) != 2:
            conn.sendline("%s BAD LOGIN needs two arguments" % tag)
            return
        dec = [x.encode("latin-1").decode("utf-8", "surrogateescape")
               for x in t]
        self._login_result(conn, tag, dec[0], dec[1])

    def _oauth2(self, conn, tag, mech, t):
        """XOAUTH2 ("user=U^Aauth=Bearer T^A^A") or OAUTHBEARER
        ("n,a=U,^Aauth=Bearer T^A^A")."""
        if len(t) > 1:
            resp = t[1]
        else:
            conn.sendline("+ ")
            resp = conn.readline()
            self._record(conn, "<sasl response>")
        try:
            raw = base64.b64decode(resp, validate=True).decode()
            fields = raw.split("\x01")
            if mech == "OAUTHBEARER":
                user = fields[0].split("a=", 1)[1].rstrip(",")
            else:
                user = fields[0].split("=", 1)[1]
            token = [f for f in fields if f.startswith("auth=Bearer ")]
            token = token[0][len("auth=Bearer "):]
        except Exception:
            conn.sendline("%s BAD bad %s response" % (tag, mech))
            return
        good = user == self.user and token in self.tokens
        if not good:
            challenge = base64.b64encode(
                b'{"status":"400","schemes":"Bearer","scope":'
                b'"https://mail.google.com/"}').decode()
            conn.sendline("+ " + challenge)
            self._record(conn, "<challenge answer> " + conn.readline())
        with self.lock:
            self.logins.append((conn.no, user, token, good))
        if good:
            conn.sendline("%s OK [CAPABILITY %s] logged in" %
                          (tag, self.caps))
        else:
            conn.sendline("%s NO [AUTHENTICATIONFAILED] Invalid "
                          "credentials (Failure)" % tag)

    def _cmd_authenticate(self, conn, tag, args):
        t = args.split()
        if t and t[0].upper() in ("XOAUTH2", "OAUTHBEARER"):
            self._oauth2(conn, tag, t[0].upper(), t)
            return
        if not t or t[0].upper() != "PLAIN":
            conn.sendline("%s NO unsupported mechanism" % tag)
            return
        if len(t) > 1:
            resp = t[1]
        else:
            conn.sendline("+ ")
            resp = conn.readline()
            self._record(conn, "<sasl response>")
        try:
            raw = base64.b64decode(resp, validate=True)
            _authz, user, password = raw.split(b"\0")
            user, password = user.decode(), password.decode()
        except Exception:
            conn.sendline("%s BAD bad PLAIN response" % tag)
            return
        self._login_result(conn, tag, user, password)

    def _cmd_examine(self, conn, tag, args):
        name = (tokens(args) or ["INBOX"])[0]
        with self.lock:
            box = self.box(name)
            if box is None:
                conn.selected = False
                conn.box = None
                conn.sendline("%s NO [NONEXISTENT] Mailbox doesn't exist: "
                              "%s" % (tag, name))
                return
            n = len(box.messages)
            conn.reported = n
            conn.selected = True
            conn.box = box
            conn.sendline(r"* FLAGS (\Answered \Flagged \Deleted \Seen "
                          r"\Draft)")
            conn.sendline("* OK [PERMANENTFLAGS ()] read-only")
            conn.sendline("* %d EXISTS" % n)
            conn.sendline("* 0 RECENT")
            conn.sendline("* OK [UIDVALIDITY %d] UIDs valid" %
                          box.uidvalidity)
            if self.send_uidnext:
                conn.sendline("* OK [UIDNEXT %d] predicted next UID" %
                              box.next_uid)
        self._take_inject(conn, "examine")
        conn.sendline("%s OK [READ-ONLY] EXAMINE completed" % tag)

    _cmd_select = _cmd_examine

    def _cmd_close(self, conn, tag, args):
        with self.lock:
            conn.selected = False
            conn.box = None
        conn.sendline("%s OK CLOSE completed" % tag)

    def _cmd_idle(self, conn, tag, args):
        conn.idle_tag = tag
        conn.sendline("+ idling")
        self._take_inject(conn, "idle")
        self._flush_exists(conn)

    def _cmd_done(self, conn, tag, args):
        conn.idle_tag = None
        if args.upper() != "DONE":
            conn.sendline("%s BAD expected DONE" % tag)
            return
        self.ok(conn, tag, "IDLE terminated")
        if self.nagle:
            self.ack_waits.append(conn.ack_wait())

    def _status_of(self, conn, name, items):
        """Sends the STATUS of mailbox name; False when there is none."""
        if self.box(name) is None:
            return False
        conn.sendline(self.status_line(name, items))
        return True

    def _cmd_status(self, conn, tag, args):
        t = tokens(args)
        if len(t) != 2 or not t[1].startswith("("):
            conn.sendline("%s BAD STATUS needs a mailbox and items" % tag)
            return
        items = [i.upper() for i in t[1][1:-1].split()]
        if not self._status_of(conn, t[0], items):
            conn.sendline("%s NO [NONEXISTENT] Mailbox doesn't exist: %s"
                          % (tag, t[0]))
            return
        self.ok(conn, tag, "STATUS completed")

    def _cmd_search(self, conn, tag, args):
        if args.strip().upper() != "UNSEEN" or conn.box is None:
            conn.sendline("%s BAD only SEARCH UNSEEN, in a mailbox" % tag)
            return
        with self.lock:
            seqs = [" %d" % i for i, m in enumerate(conn.box.messages, 1)
                    if "\\Seen" not in m.flags]
        conn.sendline("* SEARCH" + "".join(seqs))
        self.ok(conn, tag, "SEARCH completed")

    def _cmd_notify(self, conn, tag, args):
        if "NOTIFY" not in self.caps.upper().split():
            conn.sendline("%s BAD unknown command" % tag)
            return
        t = tokens(args)
        if t and t[0].upper() == "NONE":
            conn.notify_boxes = None
            conn.notify_selected = False
            self.ok(conn, tag, "NOTIFY completed")
            return
        if len(t) < 2 or t[0].upper() != "SET":
            conn.sendline("%s BAD NOTIFY SET or NONE" % tag)
            return
        status = t[1].upper() == "STATUS"
        names, selected = [], False
        for group in t[1 + status:]:
            inner = tokens(group[1:-1])
            if not inner:
                continue
            if inner[0].lower() in ("selected", "selected-delayed"):
                selected = True
            elif inner[0].lower() == "mailboxes" and len(inner) > 1:
                names += (tokens(inner[1][1:-1])
                          if inner[1].startswith("(") else [inner[1]])
        conn.notify_boxes = set(n for n in names if self.box(n))
        conn.notify_selected = selected
        if status:
            for n in names:
                self._status_of(conn, n, ("MESSAGES", "UIDNEXT",
                                          "UIDVALIDITY", "UNSEEN"))
        self.ok(conn, tag, "NOTIFY completed")

    def iter_fetch_responses(self, uidset,
                             items=("UID", "FLAGS", "ENVELOPE"),
                             mailbox="INBOX"):
        """The untagged responses of UID FETCH uidset in mailbox, one
        bytes object each (RFC 3501: "n:*" matches the last message when
        n is above every UID)."""
        with self.lock:
            msgs = list(self.box(mailbox).messages)
        if not msgs:
            return
        top = msgs[-1].uid
        ranges = parse_set(uidset, top)
        for seq, m in enumerate(msgs, 1):
            if any(lo <= m.uid <= hi for lo, hi in ranges):
                yield fetch_line(seq, m, items)

    def fetch_responses(self, uidset, items=("UID", "FLAGS", "ENVELOPE"),
                        mailbox="INBOX"):
        """iter_fetch_responses() as a list."""
        return list(self.iter_fetch_responses(uidset, items, mailbox))

    @staticmethod
    def _fetch_items(what, uid):
        """The items of a FETCH's attribute list that the model answers,
        in the order fetch_line() sends them (UID always for UID FETCH)."""
        items = [i for i in ("UID", "FLAGS", "INTERNALDATE", "ENVELOPE")
                 if i in what.upper() or (uid and i == "UID")]
        return items + [m.group(0) for m in HEADER_FIELDS_RX.finditer(what)]

    def _cmd_uid_fetch(self, conn, tag, args):
        uidset, _, what = args.partition(" ")
        items = self._fetch_items(what, True)
        buf = []
        name = conn.box.name if conn.box is not None else "INBOX"
        for r in self.iter_fetch_responses(uidset, items, name):
            buf.append(r)
            if len(buf) >= 256:
                conn.send(b"".join(buf))
                buf = []
        if buf:
            conn.send(b"".join(buf))
        self._take_inject(conn, "fetch")
        self.ok(conn, tag, "UID FETCH completed")

    def _cmd_fetch(self, conn, tag, args):
        seqset, _, what = args.partition(" ")
        with self.lock:
            msgs = list((conn.box or self.inbox).messages)
        items = self._fetch_items(what, False)
        if msgs:
            for lo, hi in parse_set(seqset, len(msgs)):
                for seq in range(lo, min(hi, len(msgs)) + 1):
                    conn.send(fetch_line(seq, msgs[seq - 1], items))
        self.ok(conn, tag, "FETCH completed")


def tls_context():
    """A server ssl.SSLContext with a certificate for 127.0.0.1 from a
    fresh test CA (mwtest.make_ca); returns (context, CA file). The
    files live in a temporary directory removed at exit."""
    import atexit
    import shutil
    import tempfile
    import mwtest
    d = tempfile.mkdtemp(prefix="fakeimap-tls-")
    atexit.register(shutil.rmtree, d, True)
    ca_cert, ca_key = mwtest.make_ca(d)
    cert, key = mwtest.make_server_cert(d, ca_cert, ca_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx, ca_cert


# ---------------------------------------------------------------------------
# The shape every hostile-server test shares: mailwatch (from mwtest)
# watching INBOX of a FakeImap over plain TCP (tls = none).

TRACE_RX = re.compile(r": (S|C): |: transport [^:]*: received ")


class Hostile:
    """A FakeImap with n_old messages already there (arrived an hour
    ago), and mailwatch watching it with the recording hook (notify off
    unless bus is given).

        h = Hostile()                 # starts both, waits for IDLE
        h.srv.once("UID FETCH", fault)
        uid = h.srv.add_message()
        h.log_line(r"bad response")   # a log line that is not the trace
        h.reconnected()               # a second connection reached IDLE
        h.announced([uid, ...])       # each exactly once, nothing else
        h.memory_ok()                 # peak RSS below the bound
        h.restart()                   # SIGTERM, then start again
        h.finish()                    # clean exit, no sanitizer report,
                                      # no password in the log
    """

    PASSWORD = "pw-Zq7!hostile"
    MEM_LIMIT_KIB = 64 * 1024

    def __init__(self, n_old=3, srv=None, general=None, account=None,
                 bus=None, start=True, wait_idle=True, tls=False,
                 sd_notify=False, **srv_kw):
        import mwtest
        self.mwtest = mwtest
        self.ca_file = None
        if tls and srv is None:
            ctx, self.ca_file = tls_context()
            srv_kw["ssl_context"] = ctx
        self.srv = srv or FakeImap(password=self.PASSWORD, **srv_kw)
        for _ in range(n_old):
            self.srv.add_message(notify=False,
                                 internaldate=time.time() - 3600)
        gen = {"notify": bus is not None, "on_new_mail": "{hook}"}
        gen.update(general or {})
        acc = {"host": self.srv.host, "port": self.srv.port, "tls": "none",
               "username": self.srv.user, "password": self.PASSWORD,
               "mailboxes": "INBOX"}
        if self.srv.ssl_context is not None:
            acc.update(tls="starttls" if self.srv.starttls else "implicit",
                       ca_file=self.ca_file)
        acc.update(account or {})
        self.sections = {"general": gen, "account fake": acc}
        self.mw = mwtest.Mailwatch(self.sections, bus=bus, start=start,
                                   sd_notify=sd_notify)
        self.t0 = time.monotonic()
        if start and wait_idle:
            self.idle_ok()

    # -- waiting
    def idle_ok(self, conn_no=1, timeout=10, msg=None):
        c = self.srv.wait_idle(timeout, conn_no)
        self.mwtest.ok(c is not None, msg or "connection #%d reached IDLE"
                       % conn_no)
        return c

    def log_lines(self, regex, since=0):
        """Log lines (not protocol trace) matching regex."""
        rx = re.compile(regex)
        return [ln for ln in self.mw.log()[since:].splitlines()
                if rx.search(ln) and not TRACE_RX.search(ln)]

    def wait_log_line(self, regex, timeout=10, since=0):
        end = time.monotonic() + self.mwtest._t(timeout)
        while True:
            lines = self.log_lines(regex, since)
            if lines or time.monotonic() >= end or not self.mw.running():
                return lines[0] if lines else None
            time.sleep(0.05)

    def log_line(self, regex, what, timeout=10, since=0):
        line = self.wait_log_line(regex, timeout, since)
        self.mwtest.ok(line is not None, "%s: log says so" % what,
                       "no log line matching %r" % regex)
        if line:
            self.mwtest.comment("  " + line)
        return line

    def reconnected(self, what, n=2, timeout=15, idle=True):
        """Asserts that the client made connection number n (and that it
        reached IDLE when idle)."""
        got = self.srv.wait_connections(n, timeout)
        self.mwtest.ok(got, "%s: reconnected (connection #%d)" % (what, n),
                       "connections: %d" % self.srv.connection_count())
        if got and idle:
            return self.srv.wait_idle(timeout, n) is not None
        return got

    def uids(self):
        return [int(r["MAILWATCH_UID"]) for r in self.mw.hook_records()]

    def announced(self, expected, what, timeout=10, settle=1.0):
        """Waits for len(expected) hook runs and for every hook started so
        far to end, then settle seconds (scaled) more for duplicates;
        asserts the UIDs are expected, each once."""
        expected = sorted(expected)
        self.mw.wait_hooks(len(expected), timeout)
        self.mw.settle(settle, timeout)
        got = sorted(self.uids())
        return self.mwtest.ok(got == expected,
                              "%s: announced UIDs %s exactly once" %
                              (what, expected), "hook UIDs: %s" % got)

    def restart(self, what, between=None, idle=True):
        """Stops mailwatch (SIGTERM, asserting a clean exit), calls
        between() if given, and starts it again with the same state;
        returns once it connected again (asserted), and when idle once
        that connection reached IDLE."""
        n = self.srv.connection_count()
        rc = self.mw.stop()
        self.mwtest.ok(rc == 0, "%s: clean stop (status %s)" % (what, rc))
        if between:
            between()
        self.mw.start()
        self.mwtest._register(self.mw)  # stop() unregistered it
        return self.reconnected(what + ", started again", n + 1,
                                idle=idle)

    def memory(self):
        return proc_memory(self.mw.pid()) if self.mw.running() else {}

    def memory_ok(self, what):
        m = self.memory()
        peak = m.get("VmHWM", 0)
        return self.mwtest.ok(0 < peak < self.MEM_LIMIT_KIB,
                              "%s: peak RSS %d KiB < %d KiB" %
                              (what, peak, self.MEM_LIMIT_KIB),
                              "memory: %r" % m)

    def finish(self, what):
        ok = self.mwtest.ok
        ok(self.mw.running(), "%s: mailwatch still running" % what,
           self.mw.log_tail(20))
        rc = self.mw.stop()
        ok(rc == 0, "%s: clean exit (status %s)" % (what, rc))
        errs = self.mw.sanitizer_errors()
        ok(not errs, "%s: no sanitizer report" % what, "\n".join(errs[:20]))
        log = self.mw.log()
        b64 = base64.b64encode(("\0%s\0%s" % (self.srv.user, self.PASSWORD))
                               .encode()).decode()
        ok(self.PASSWORD not in log and b64 not in log,
           "%s: no password in the log" % what)
        ok(not self.srv.errors, "%s: fake server ran its script" % what,
           "\n".join(self.srv.errors))
        self.srv.stop()
