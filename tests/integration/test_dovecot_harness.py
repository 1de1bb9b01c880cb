#!/usr/bin/python3
"""The integration harness alone (no mailwatch): a private Dovecot with TLS,
STARTTLS, appends and IDLE; the private session bus and notifyd; the
Mailwatch runner driven with a stand-in program. Every process started is
gone afterwards."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402


def all_gone(pids, timeout=5):
    return mwtest.wait_until(
        lambda: not any(mwtest.pid_alive(p) for p in pids), timeout)


def test_dovecot_tls_and_starttls():
    dc = mwtest.Dovecot()
    pids = dc.pids()
    ok(dc.running() and len(pids) > 1,
       "dovecot runs (master %d, %d processes)" % (dc.proc.pid, len(pids)))
    ok(dc.imap_port and dc.imaps_port and dc.imap_port != dc.imaps_port,
       "two distinct loopback ports")

    # Implicit TLS, verified against the test CA.
    with dc.imap("alice") as m:
        peer = m.sock.getpeercert()
        ok(m.state == "AUTH", "imaps login with CA verification")
    issuer = dict(x[0] for x in peer["issuer"])
    ok(issuer.get("commonName") == "mailwatch test CA",
       "certificate issued by 'mailwatch test CA'")
    ok(("IP Address", "127.0.0.1") in peer["subjectAltName"] and
       ("DNS", "localhost") in peer["subjectAltName"],
       "certificate names IP:127.0.0.1 and DNS:localhost")
    with socket.create_connection((mwtest.HOST, dc.imaps_port), 5) as s:
        ctx = ssl.create_default_context(cafile=dc.ca_file)
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            ok(t.version() in ("TLSv1.2", "TLSv1.3"),
               "TLS by the name localhost too (%s)" % t.version())

    # Another CA must not verify.
    tmp = os.path.dirname(dc.ca_file)
    other_ca, _ = mwtest.make_ca(tmp, "some other CA", name="other-ca")
    try:
        mwtest.ImapClient(mwtest.HOST, dc.imaps_port, ca_file=other_ca)
        refused = False
    except ssl.SSLCertVerificationError:
        refused = True
    ok(refused, "a certificate from another CA fails verification")

    # STARTTLS port, seen from a non-local source address.
    c = mwtest.ImapClient(mwtest.HOST, dc.imap_port, tls="none",
                          ca_file=dc.ca_file,
                          source_address=("127.0.0.2", 0))
    caps = c.capabilities()
    ok("STARTTLS" in caps, "plain port offers STARTTLS")
    ok("LOGINDISABLED" in caps, "LOGINDISABLED before STARTTLS")
    st, line, _ = c.command("LOGIN alice secret", check=False)
    ok(st == "NO" and b"PRIVACYREQUIRED" in line,
       "plaintext LOGIN refused before STARTTLS")
    c.starttls()
    caps = c.capabilities()
    ok("LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps,
       "after STARTTLS login is enabled")
    st, _, _ = c.login("alice", "secret")
    ok(st == "OK", "login after STARTTLS")
    c.logout()
    with mwtest.ImapClient(mwtest.HOST, dc.imap_port, tls="none") as c:
        caps = c.capabilities()
        comment("from 127.0.0.1 Dovecot counts the connection as secure: "
                "LOGINDISABLED %s" % ("shown" if "LOGINDISABLED" in caps
                                      else "not shown"))
        ok("STARTTLS" in caps, "STARTTLS offered to 127.0.0.1 too")

    # Appends return increasing UIDs.
    uids = [dc.append("alice", "INBOX", mwtest.make_message("m%d" % i))
            for i in range(3)]
    ok(uids == [1, 2, 3], "append returns UIDs 1, 2, 3 (%s)" % uids)
    many = dc.append_many("alice", "INBOX",
                          [mwtest.make_message("p%d" % i) for i in range(50)])
    ok(many == list(range(4, 54)), "50 pipelined appends: UIDs 4..53")
    batch = dc.append_many("alice", "INBOX",
                           [mwtest.make_message("b%d" % i) for i in range(20)],
                           atomic=True)
    ok(batch == list(range(54, 74)), "MULTIAPPEND of 20: UIDs 54..73")
    st = dc.status("alice", "INBOX")
    ok(st["MESSAGES"] == 73 and st["UIDNEXT"] == 74,
       "STATUS agrees: %s" % st)
    uid = dc.append("alice", "INBOX", mwtest.make_message("flagged"),
                    flags=("\\Seen", "\\Flagged"))
    ok(uid == 74 and dc.status("alice")["UNSEEN"] == 73,
       "append with flags (\\Seen not counted as unseen)")

    # Mailboxes, with "/" as separator and a non-ASCII name.
    dc.create_mailbox("alice", "Lists/dev")
    dc.create_mailbox("alice", "Lists/dev")  # existing: fine
    dc.create_mailbox("alice", "Zoë")
    ok(dc.append("alice", "Lists/dev", mwtest.make_message("dev")) == 1,
       "first append to Lists/dev gets UID 1")
    ok(dc.append("alice", "Zoë", mwtest.make_message("z")) == 1,
       "append to a non-ASCII mailbox")
    listed = dc.doveadm("mailbox", "list", "-u", "alice").stdout.split("\n")
    ok({"INBOX", "Lists/dev", "Zoë"} <= set(listed),
       "doveadm mailbox list shows them: %s" % listed)

    # The sample messages go in and their envelopes come back.
    expected = mwtest.sample_expected()
    names = mwtest.sample_names()
    ok(len(names) >= 4 and set(names) == set(expected),
       "%d sample messages, each with expectations" % len(names))
    dc.create_mailbox("alice", "Samples")
    suids = dc.append_many("alice", "Samples",
                           [mwtest.sample_message(n) for n in names])
    with dc.client("alice") as c:
        c.command('EXAMINE "Samples"')
        _, _, untagged = c.command("UID FETCH 1:* (ENVELOPE)")
    blob = b"\n".join(untagged)
    missing = [n for n in names
               if expected[n]["from_address"].split("@")[0].encode()
               not in blob]
    ok(len(suids) == len(names) and not missing,
       "sample envelopes carry their senders (missing: %s)" % missing)

    # IDLE: the bare client sees EXISTS after an append, and after an
    # MTA-style delivery straight into the Maildir.
    n0 = dc.status("alice")["MESSAGES"]
    with dc.idle_client("alice") as ic:
        ok(ic.initial_exists == n0, "EXAMINE reports %d messages" % n0)
        t0 = time.monotonic()
        dc.append("alice", "INBOX", mwtest.make_message("idle 1"))
        ev = ic.wait_exists(timeout=10)
        ok(ev is not None and ev[1] == n0 + 1,
           "IDLE client sees * %d EXISTS after an append" % (n0 + 1))
        if ev:
            comment("append -> EXISTS: %.0f ms (Dovecot batches changes "
                    "for ~0.5 s)" % ((ev[0] - t0) * 1000))
            ok(ev[0] - t0 < mwtest._t(5), "EXISTS within 5 s (inotify "
               "works here, not the 30 s mailbox_idle_check_interval "
               "poll)")
        t0 = time.monotonic()
        dc.deliver("alice", mwtest.sample_message("01"))
        ev = ic.wait_exists(timeout=10)
        ok(ev is not None and ev[1] == n0 + 2,
           "IDLE client sees EXISTS after dovecot-lda delivery")
        if ev:
            comment("deliver -> EXISTS: %.0f ms" % ((ev[0] - t0) * 1000))
        last = ic.done()
        ok(last is not None and b"OK" in last, "DONE ends IDLE with OK")
    with dc.idle_client("alice", "Lists/dev") as ic:
        dc.append("alice", "Lists/dev", mwtest.make_message("dev 2"))
        ev = ic.wait_exists(timeout=10)
        ok(ev is not None and ev[1] == 2, "IDLE on Lists/dev sees EXISTS")
        r = dc.kick("alice")
        ok(r.returncode == 0, "doveadm kick: %s" % r.stdout.strip())
        gone = mwtest.wait_until(
            lambda: ic.error is not None or
            any(b"BYE" in ln for _, ln in ic.lines), 10)
        ok(gone, "kicked IDLE client sees BYE / disconnect")

    # Restart on the same ports keeps the mail and UIDVALIDITY.
    before = dc.status("alice")
    ports = (dc.imap_port, dc.imaps_port)
    old = dc.pids()
    dc.stop_server()
    ok(all_gone(old), "stop_server stops every dovecot process")
    try:
        socket.create_connection((mwtest.HOST, dc.imaps_port), 1).close()
        refused = False
    except OSError:
        refused = True
    ok(refused, "port refuses connections while stopped")
    dc.start()
    ok((dc.imap_port, dc.imaps_port) == ports, "restart keeps the ports")
    ok(dc.status("alice") == before, "restart keeps mail and UIDVALIDITY")

    # Stop: every process gone, directory removed.
    pids = dc.pids()
    d = dc.dir
    dc.stop()
    ok(all_gone(pids), "stop leaves no dovecot process (%s)" % pids)
    ok(not os.path.exists(d), "temporary directory removed")


def test_dovecot_without_starttls():
    dc = mwtest.Dovecot(starttls=False)
    ok(dc.imaps_port is None, "no implicit-TLS port")
    for src in (None, ("127.0.0.2", 0)):
        with mwtest.ImapClient(mwtest.HOST, dc.imap_port, tls="none",
                               source_address=src) as c:
            caps = c.capabilities()
            ok("STARTTLS" not in caps and "LOGINDISABLED" not in caps,
               "no STARTTLS, no LOGINDISABLED (source %s)" %
               (src[0] if src else "127.0.0.1"))
            st, _, _ = c.login("bob", "hunter2")
            ok(st == "OK", "plain login allowed")
    ok(dc.append("bob", "INBOX", mwtest.make_message()) == 1,
       "append over the plain port")
    with dc.idle_client("bob") as ic:
        dc.append("bob", "INBOX", mwtest.make_message())
        ok(ic.wait_exists(timeout=10) is not None, "IDLE works too")
    acc = dc.account("bob", tls="none")
    ok(acc["port"] == dc.imap_port and acc["tls"] == "none",
       "account() section for tls = none")
    pids = dc.pids()
    dc.stop()
    ok(all_gone(pids), "stopped, no process left")


def test_dovecot_other_loopback():
    # Listening on 127.0.0.2 makes ordinary clients (source 127.0.0.1)
    # non-local, so LOGINDISABLED applies to mailwatch too.
    dc = mwtest.Dovecot(listen="127.0.0.2")
    with mwtest.ImapClient("127.0.0.2", dc.imap_port, tls="none") as c:
        ok("LOGINDISABLED" in c.capabilities(),
           "127.0.0.1 -> 127.0.0.2: LOGINDISABLED shown")
    with dc.imap("carol") as m:
        ok(m.state == "AUTH", "imaps to 127.0.0.2 verifies (SAN has it); "
           "a password with a space works")
    with mwtest.ImapClient("127.0.0.2", dc.imap_port, tls="starttls",
                           ca_file=dc.ca_file) as c:
        ok(c.login("alice", "secret")[0] == "OK", "STARTTLS then login")
    dc.stop()


def test_bus_and_notifyd():
    bus = mwtest.SessionBus()
    ok(bus.address.startswith("unix:path=" + bus.socket),
       "private bus at %s" % bus.address)
    if shutil.which("dbus-send"):
        r = subprocess.run(["dbus-send", "--bus=" + bus.address,
                            "--print-reply", "--dest=org.freedesktop.DBus",
                            "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.ListNames"],
                           capture_output=True, text=True,
                           timeout=mwtest._t(10))
        ok(r.returncode == 0 and "org.freedesktop.DBus" in r.stdout,
           "bus answers ListNames")
    else:
        mwtest.skip("bus answers ListNames", "no dbus-send")
    if not mwtest.Notifyd.available():
        mwtest.skip("notifyd records a Notify call",
                    "%s not built" % mwtest.Notifyd.binary())
    else:
        nd = mwtest.Notifyd(bus)
        gdbus = shutil.which("gdbus")
        if gdbus is None:
            mwtest.skip("notifyd records a Notify call", "no gdbus")
        else:
            r = subprocess.run(
                [gdbus, "call", "--address", bus.address,
                 "--dest", "org.freedesktop.Notifications",
                 "--object-path", "/org/freedesktop/Notifications",
                 "--method", "org.freedesktop.Notifications.Notify",
                 "mwtest", "0", "mail-unread", "Zoë Ångström",
                 "<b>urgent</b> & more", "[]",
                 "{'urgency': <byte 1>, 'category': <'email.arrived'>}",
                 "5000"], capture_output=True, text=True,
                timeout=mwtest._t(10))
            ok(r.returncode == 0, "Notify call answered: " +
               (r.stdout.strip() or r.stderr.strip()))
            recs = nd.wait_records(1, 5)
            ok(len(recs) == 1 and recs[0]["summary"] == "Zoë Ångström" and
               recs[0]["body"] == "<b>urgent</b> & more" and
               recs[0]["app_name"] == "mwtest",
               "notifyd recorded it: %s" % recs)
        npid = nd.proc.pid
        nd.stop()
        ok(not mwtest.pid_alive(npid), "notifyd stopped")
    bpid = bus.proc.pid
    bus.stop()
    ok(not mwtest.pid_alive(bpid) and not os.path.exists(bus.dir),
       "bus stopped, its directory removed")


# A stand-in for mailwatch that exercises the runner: reads -c FILE, logs
# its environment, runs on_new_mail (split like mailwatch would, no shell)
# with MAILWATCH_* set, stays up until SIGTERM.
FAKE = r'''#!/usr/bin/python3
import os, shlex, signal, subprocess, sys, time
conf = sys.argv[sys.argv.index("-c") + 1]
hook = None
for line in open(conf):
    if line.startswith("on_new_mail ="):
        hook = shlex.split(line.split("=", 1)[1])
for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR",
          "DBUS_SESSION_BUS_ADDRESS", "HOME"):
    print("fake: %s=%s" % (k, os.environ.get(k)), file=sys.stderr)
print("fake: JOURNAL_STREAM=%s" % os.environ.get("JOURNAL_STREAM"),
      file=sys.stderr, flush=True)
signal.signal(signal.SIGTERM, lambda *a: (print("fake: stopping",
              file=sys.stderr, flush=True), sys.exit(0)))
env = dict(os.environ, MAILWATCH_SUBJECT="Zoë", MAILWATCH_UID="7")
subprocess.run(hook, env=env, stdin=subprocess.DEVNULL)
print("fake: watching (IDLE)", file=sys.stderr, flush=True)
while True:
    time.sleep(1)
'''


def test_mailwatch_runner():
    bus = mwtest.SessionBus()
    d = os.path.join(mwtest.tempfile.mkdtemp(prefix="mwtest-fake-"))
    mwtest._cleanup_later.append(d)
    fake = os.path.join(d, "fake-mailwatch")
    mwtest._write(fake, FAKE, 0o755)
    os.environ["JOURNAL_STREAM"] = "8:12345"  # must not reach mailwatch
    mw = mwtest.Mailwatch({
        "general": {"notify": True, "on_new_mail": "{hook}"},
        "account test": {"host": "127.0.0.1", "port": 993,
                         "mailboxes": ["INBOX", "Lists/dev"]},
    }, bus=bus, binary=fake)
    text = mw.config_text()
    ok("[account test]" in text and "mailboxes = INBOX, Lists/dev" in text
       and "notify = yes" in text and mw.hook_script in text,
       "config written from sections")
    ok(oct(os.stat(mw.config_file).st_mode & 0o777) == "0o600",
       "config file mode 0600")
    ok(mw.wait_log(r"watching \(IDLE\)", 10) is not None, "wait_log matches")
    log = mw.log()
    ok("XDG_STATE_HOME=%s/state" % mw.dir in log and
       "HOME=%s/home" % mw.dir in log, "XDG dirs and HOME in the temp dir")
    ok("DBUS_SESSION_BUS_ADDRESS=%s" % bus.address in log,
       "private bus address passed")
    ok("JOURNAL_STREAM=None" in log, "JOURNAL_STREAM removed")
    recs = mw.wait_hooks(1, 10)
    ok(len(recs) == 1 and recs[0].get("MAILWATCH_SUBJECT") == "Zoë" and
       recs[0].get("MAILWATCH_UID") == "7" and recs[0]["_argv"] == [],
       "hook recorded its MAILWATCH_* environment: %s" % recs)
    pid = mw.pid()
    rc = mw.stop()
    ok(rc == 0 and not mwtest.pid_alive(pid), "SIGTERM stops it (rc %s)" % rc)
    ok("fake: stopping" in mw.log(), "log readable after stop")
    ok(mw.sanitizer_errors() == [], "no sanitizer reports")

    # A program that ignores SIGTERM is killed; a vanished binary skips.
    stubborn = os.path.join(d, "stubborn")
    mwtest._write(stubborn, "#!/bin/sh\ntrap '' TERM\necho up >&2\n"
                  "while :; do sleep 1; done\n", 0o755)
    mw2 = mwtest.Mailwatch({"general": {}}, binary=stubborn)
    mw2.wait_log("up", 5)
    t0 = time.monotonic()
    rc = mw2.stop(timeout=1)
    ok(rc == -signal.SIGKILL and time.monotonic() - t0 < mwtest._t(5),
       "SIGKILL after the bounded wait (rc %s)" % rc)
    try:
        mwtest.Mailwatch({"general": {}}, binary=os.path.join(d, "nope"))
        skipped = False
    except mwtest.Skip:
        skipped = True
    ok(skipped, "a missing binary raises Skip")
    bus.stop()


def test_dovecot_notify_hidden():
    # Dovecot(notify=False) shows the same capabilities without NOTIFY.
    shown = {}
    for notify in (True, False):
        dc = mwtest.Dovecot(notify=notify)
        c = dc.client()
        st, line, _ = c.login("alice", dc.users["alice"])
        caps = c.capabilities()
        shown[notify] = caps
        code = line.decode().split("[CAPABILITY ", 1)[-1].split("]")[0]
        ok(set(code.upper().split()) == caps,
           "notify=%s: LOGIN's [CAPABILITY] is CAPABILITY's list" % notify)
        st, line, _ = c.command(
            'NOTIFY SET STATUS (selected (MessageNew (UID FLAGS ENVELOPE) '
            'MessageExpunge FlagChange)) (mailboxes ("INBOX") '
            '(MessageNew MessageExpunge))', check=False)
        comment("notify=%s: NOTIFY SET -> %s" % (notify, line.decode()))
        c.logout()
        dc.stop()
    ok("NOTIFY" in shown[True] and "IDLE" in shown[True],
       "notify=True: NOTIFY and IDLE advertised after login")
    ok("NOTIFY" not in shown[False], "notify=False: NOTIFY not advertised")
    ok(shown[False] == shown[True] - {"NOTIFY"},
       "notify=False: everything else as usual (DOVECOT_CAPABILITY)",
       sorted(shown[True] ^ shown[False]))


def test_dovecot_many_mailboxes():
    dc = mwtest.Dovecot()
    names = ["Folder %04d" % i for i in range(1000)]
    names[1:1] = ["Lists", "Lists/dev", "\u00dcberweisungen"]
    t0 = time.monotonic()
    dc.create_mailboxes("alice", names)
    comment("create_mailboxes: %d in %.1f s" % (len(names),
                                                 time.monotonic() - t0))
    with dc.client("alice") as c:
        _, _, listed = c.command('LIST "" "*"')
        _, _, subscribed = c.command('LSUB "" "*"')
    want = set(mwtest.imap_utf7_encode(n).encode()
               for n in names + ["INBOX"])
    # '* LIST (\\HasNoChildren) "/" NAME', NAME quoted or an atom
    got = set(line.rsplit(b' "/" ', 1)[-1].strip(b'"') for line in listed)
    ok(got == want, "every mailbox created, and no other (%d)" % len(got),
       sorted(got ^ want)[:10])
    ok(len(subscribed) == len(names), "each subscribed (%d)" %
       len(subscribed))
    dc.create_mailboxes("alice", names[:3], subscribe=False)
    ok(True, "creating existing mailboxes again is fine")
    ok(dc.status("alice", "\u00dcberweisungen")["MESSAGES"] == 0,
       "a UTF-8 name is usable as such")


def test_dovecot_connections():
    # At Dovecot's stock limit (10 per user and address).
    dc = mwtest.Dovecot(conn_limit=None)
    ok(dc.connections("alice") == 0, "no connections at first")
    clients = [dc.client("alice") for _ in range(3)]
    others = [dc.client("bob"), dc.client()]  # another user; not logged in
    ok(dc.connections("alice") == 3, "3 clients logged in: 3 (%d)" %
       dc.connections("alice"))
    ok(dc.connections("bob") == 1, "bob's own: 1")
    clients.pop().logout()
    ok(mwtest.wait_until(lambda: dc.connections("alice") == 2, 5),
       "one logged out: 2")
    clients += [dc.client("alice") for _ in range(8)]
    ok(dc.connections("alice") == 10, "the stock limit: 10")
    c = dc.client()
    st, line, _ = c.command("LOGIN alice secret", check=False)
    c.close()
    ok(st == "NO" and b"[LIMIT]" in line,
       "the 11th is refused with [LIMIT] (%s)" % line.decode())
    ok(dc.connections("alice") == 10, "and not counted: 10")
    for c in clients + others:
        c.logout()
    ok(mwtest.wait_until(lambda: dc.connections("alice") == 0, 5),
       "all logged out: 0")


if __name__ == "__main__":
    mwtest.main(test_dovecot_tls_and_starttls, test_dovecot_without_starttls,
                test_dovecot_other_loopback, test_bus_and_notifyd,
                test_mailwatch_runner, test_dovecot_notify_hidden,
                test_dovecot_many_mailboxes, test_dovecot_connections)
