#!/usr/bin/python3
"""Security behaviour end to end, against a private Dovecot: a wrong
password (said clearly, not retried, other accounts unaffected), TLS
certificate failures and a server without STARTTLS (nothing sent before the
connection is verified), STARTTLS that works, the password never in the log
(with -v and its protocol trace), and --check-config on bad files.

Dovecot quirk (see mwtest.Dovecot): from 127.0.0.1 to 127.0.0.1 it accepts
a plain-text LOGIN, so "no password sent" is checked on both sides: no
LOGIN/AUTHENTICATE in mailwatch's "C: ..." trace and no login attempt in
Dovecot's log."""

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
from test_watch import (finish, need_binaries, uids_of,  # noqa: E402
                        wait_idle, wait_warning)

# Passwords that stand out in a log.
PW_ALICE = "Alice-pw-7f3Kq9"
PW_BOB = "Bob-pw-Xw81mZ"
PW_ODD = 'Od"d\\ pw %s {5}'  # quote, backslash, space, printf, literal
USERS = {"alice": PW_ALICE, "bob": PW_BOB, "odd": PW_ODD}


def secret_forms(user, pw):
    """The password as it could leak: plain, and the SASL PLAIN blobs
    (with and without an authorization identity) in base64."""
    forms = [pw]
    for blob in ("\0%s\0%s" % (user, pw), "%s\0%s\0%s" % (user, user, pw)):
        forms.append(base64.b64encode(blob.encode()).decode())
    return forms


def no_password_in_log(mw, users=USERS, what="mailwatch"):
    log = mw.log()
    leaks = [(u, f) for u, pw in users.items()
             for f in secret_forms(u, pw) if f in log]
    ok(not leaks, "%s -v: no password (plain or SASL base64) in the log"
       % what, "found: %r" % leaks)


def trace_logins(log, account):
    """Protocol-trace lines where mailwatch (account) sent credentials or
    a login command."""
    return [ln for ln in log.splitlines()
            if re.search(r"\b%s/[^:]*: C: " % re.escape(account), ln) and
            re.search(r"LOGIN|AUTHENTICATE|<login", ln, re.I)]


def dovecot_login_attempts(dc, user):
    """Dovecot log lines showing that user logged in or tried to."""
    return [ln for ln in dc.log().splitlines()
            if "user=<%s>" % user in ln or
            ("auth failed" in ln and "user=<>" not in ln) or
            re.search(r"method=(PLAIN|LOGIN)", ln)]


# ---------------------------------------------------------------------------

def test_wrong_password():
    """A wrong password: one clear log line, one attempt (no retry loop),
    and the other account keeps working."""
    need_binaries()
    dc = mwtest.Dovecot(users=USERS)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account bad": dc.account("alice", password="Wrong-pw-3xQ"),
        "account good": dc.account("bob"),
    })
    m = wait_warning(mw, "bad/INBOX", r"login as alice failed", 10)
    ok(m, "a clear 'login as alice failed' line", m and m.group(0))
    if m:
        comment(m.group(0))
    ok(m and "not retrying" in m.group(0),
       "it says it does not retry")
    ok(wait_idle(mw, 1), "the good account reaches IDLE")
    # A retry would come after a back-off of about 1 s.
    mwtest.quiet(5)
    log = mw.log()
    attempts = trace_logins(log, "bad")
    ok(len(attempts) == 1,
       "one login attempt, no retry loop (%d)" % len(attempts),
       "\n".join(attempts))
    connects = re.findall(r"bad/INBOX: connecting to", log)
    ok(len(connects) == 1, "one connection for the bad account (%d)"
       % len(connects))
    failed = [ln for ln in dc.log().splitlines()
              if "auth failed" in ln or "Authentication failed" in ln]
    ok(len(failed) == 1, "Dovecot saw one failed login (%d)" % len(failed),
       "\n".join(failed))
    ok(mw.running(), "mailwatch keeps running")
    uid = dc.append("bob", "INBOX", mwtest.make_message("for bob"))
    recs = mw.wait_hooks(1, 10)
    ok([(r["MAILWATCH_ACCOUNT"], r["MAILWATCH_UID"]) for r in recs] ==
       [("good", str(uid))], "the other account still announces mail")
    ok("Wrong-pw-3xQ" not in mw.log(), "the wrong password is not logged")
    no_password_in_log(mw)
    finish(mw)


def test_untrusted_certificate():
    """The server's certificate does not verify: without ca_file (the
    system store does not know the test CA), for another host name, and
    expired, also after STARTTLS. Each gives a clear "cannot connect:
    certificate verify failed" line with what to do, and
    nothing is sent: no LOGIN/AUTHENTICATE, no login in Dovecot's log."""
    need_binaries()
    other = tempfile.mkdtemp(prefix="mwtest-ca-")
    other_ca, _ = mwtest.make_ca(other, cn="another CA")
    issuer = "(issued by CN = mailwatch test CA)"
    cases = [
        ("no ca_file", {}, {"ca_file": None},
         "set ca_file to that CA's certificate " + issuer),
        ("another CA in ca_file", {}, {"ca_file": other_ca},
         "ca_file %s does not hold the CA that issued it %s" % (other_ca,
                                                               issuer)),
        ("wrong host name", {"cert_san": "DNS:mail.example.org"}, {},
         "host must be a name the certificate is for: it is for "
         "mail.example.org"),
        ("expired", {"cert_days": -1}, {},
         "certificate has expired (host 127.0.0.1); it expired on 20"),
        ("STARTTLS, no ca_file", {}, {"ca_file": None, "tls": "starttls"},
         "set ca_file to that CA's certificate " + issuer),
    ]
    for label, dc_kw, acct_kw, hint in cases:
        dc = mwtest.Dovecot(users=USERS, **dc_kw)
        mw = mwtest.Mailwatch({
            "general": {"notify": False, "on_new_mail": "{hook}"},
            "account tls": dc.account("alice", **acct_kw),
        })
        m = wait_warning(mw, "tls/INBOX", r"certificate verify failed", 10)
        ok(m, "%s: a clear 'certificate verify failed' line" % label,
           mw.log_tail(15))
        # Not "connection lost", which reads as a network drop.
        ok(m and "cannot connect: certificate verify failed" in m.group(0),
           "%s: said as 'cannot connect'" % label)
        if m:
            comment(m.group(0))
        if m and hint:
            ok(hint in mw.log(), "%s: and what to do ('%s')" % (label, hint),
               m.group(0))
        # Give a wrong implementation the time to send something.
        mw.wait_log(r"reconnecting in", 5)
        mwtest.quiet(0.5)
        sent = trace_logins(mw.log(), "tls")
        ok(not sent, "%s: no LOGIN/AUTHENTICATE sent" % label,
           "\n".join(sent))
        seen = dovecot_login_attempts(dc, "alice")
        ok(not seen, "%s: Dovecot saw no login attempt" % label,
           "\n".join(seen))
        ok(not re.search(r"tls/INBOX: .*watching \(IDLE\)", mw.log()),
           "%s: never watching" % label)
        no_password_in_log(mw, what="mailwatch (%s)" % label)
        finish(mw, "mailwatch (%s)" % label)
        dc.stop()
    shutil.rmtree(other, ignore_errors=True)


def test_starttls_not_offered():
    """tls = starttls against a server without STARTTLS: a clear message,
    no password sent, no retry."""
    need_binaries()
    dc = mwtest.Dovecot(starttls=False, users=USERS)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account plain": dc.account("alice", tls="starttls"),
    })
    m = wait_warning(mw, "plain/INBOX", r"does not offer STARTTLS", 10)
    ok(m, "a clear 'does not offer STARTTLS' line", mw.log_tail(15))
    if m:
        comment(m.group(0))
    mwtest.quiet(3)
    log = mw.log()
    sent = trace_logins(log, "plain")
    ok(not sent, "no LOGIN/AUTHENTICATE sent", "\n".join(sent))
    seen = dovecot_login_attempts(dc, "alice")
    ok(not seen, "Dovecot saw no login attempt", "\n".join(seen))
    ok(re.search(r"no auth attempts", dc.log()),
       "Dovecot logged the connection with 'no auth attempts'")
    connects = re.findall(r"plain/INBOX: connecting to", log)
    ok(len(connects) == 1, "no retry (%d connections in 3 s)"
       % len(connects))
    ok(mw.running(), "mailwatch keeps running")
    no_password_in_log(mw)
    finish(mw)


def test_starttls_works():
    """tls = starttls against the STARTTLS port: TLS first, then the
    login, and mail is announced end to end. Also a server without SASL-IR
    (AUTHENTICATE PLAIN with a continuation) and a password with quotes,
    a backslash, a space, '%s' and '{5}' in it."""
    need_binaries()
    dc = mwtest.Dovecot(users=USERS)
    nosasl = mwtest.Dovecot(users=USERS,
                            extra_conf="imap_capability = IMAP4rev1 IDLE "
                            "LITERAL+\n")
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    mw = mwtest.Mailwatch({
        "general": {"notify": True, "on_new_mail": "{hook}"},
        "account st": dc.account("alice", tls="starttls"),
        "account odd": dc.account("odd"),
        "account nosasl": nosasl.account("bob"),
    }, bus=bus)
    if not ok(wait_idle(mw, 3), "all three accounts reach IDLE",
              mw.log_tail(30)):
        return
    log = mw.log()
    st = [ln for ln in log.splitlines() if re.search(r"\bst/INBOX: ", ln)]
    i_starttls = next((i for i, ln in enumerate(st)
                       if re.search(r"C: \S+ STARTTLS", ln)), None)
    i_tls = next((i for i, ln in enumerate(st)
                  if "STARTTLS with" in ln), None)
    i_login = next((i for i, ln in enumerate(st)
                    if re.search(r"C: .*(<login|AUTHENTICATE|LOGIN)", ln)),
                   None)
    ok(None not in (i_starttls, i_tls, i_login) and
       i_starttls < i_tls < i_login,
       "STARTTLS, then the TLS handshake, then the login",
       "lines %s %s %s" % (i_starttls, i_tls, i_login))
    logins = [ln for ln in dc.log().splitlines()
              if "Login: user=<alice>" in ln]
    ok(logins and all("TLS" in ln for ln in logins),
       "Dovecot: alice logged in over TLS", "\n".join(logins))
    uid = dc.append("alice", "INBOX", mwtest.make_message("over starttls"))
    recs = mw.wait_hooks(1, 10)
    ok([(r["MAILWATCH_ACCOUNT"], r["MAILWATCH_UID"]) for r in recs] ==
       [("st", str(uid))], "a message announced over STARTTLS")
    ok(nd.wait_records(1, 10), "and notified")
    uid2 = dc.append("odd", "INBOX", mwtest.make_message("odd password"))
    uid3 = nosasl.append("bob", "INBOX", mwtest.make_message("no SASL-IR"))
    recs = mw.wait_hooks(3, 10)
    got = sorted((r["MAILWATCH_ACCOUNT"], r["MAILWATCH_UID"])
                 for r in recs[1:])
    ok(got == sorted([("odd", str(uid2)), ("nosasl", str(uid3))]),
       "odd password and a server without SASL-IR both work: %s" % got)
    no_password_in_log(mw)
    finish(mw)


def test_password_command_not_logged():
    """password_command: the password from a command is not logged either,
    nor the command's output when it fails."""
    need_binaries()
    dc = mwtest.Dovecot(users=USERS)
    mw = mwtest.Mailwatch({"general": {}}, start=False)
    pwfile = os.path.join(mw.dir, "pw")
    with open(pwfile, "w") as f:
        f.write(PW_ALICE + "\nsecond line " + PW_BOB + "\n")
    failing = os.path.join(mw.dir, "fail.sh")
    with open(failing, "w") as f:
        f.write("#!/bin/sh\necho %s\nexit 3\n" % PW_BOB)
    os.chmod(failing, 0o755)
    acct = dc.account("alice", password=None,
                      password_command="cat " + pwfile)
    bad = dc.account("bob", password=None, password_command=failing)
    mw.write_config({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account cmd": acct,
        "account badcmd": bad,
    })
    mw.start()
    ok(wait_idle(mw, 1), "password_command: logged in and idle")
    ok(mw.wait_log(r"badcmd: .*password_command failed", 5),
       "a failing password_command is reported",
       mw.log_tail(10))
    uid = dc.append("alice", "INBOX", mwtest.make_message("cmd"))
    recs = mw.wait_hooks(1, 10)
    ok(uids_of(recs) == [uid], "mail announced")
    no_password_in_log(mw)
    finish(mw)


def test_check_config():
    """--check-config: exit 78 and FILE:LINE for each problem; 0 and a
    summary for a good file; nothing connects."""
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")
    mw = mwtest.Mailwatch(start=False)

    def check(text):
        mw.write_config_text(text)
        r = subprocess.run(mw.argv() + ["--check-config"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=mw.env(), timeout=mwtest._t(20))
        return r.returncode, r.stdout + r.stderr

    f = mw.config_file
    bad = ("[general]\n"              # 1
           "notify = yes\n"           # 2
           "colour = blue\n"          # 3: unknown key
           "\n"                       # 4
           "[account a]\n"            # 5
           "host = 127.0.0.1\n"       # 6
           "port = 99999\n"           # 7: out of range
           "username = alice\n"       # 8
           "password = x\n"           # 9
           "tls = sometimes\n")       # 10: bad choice
    rc, out = check(bad)
    ok(rc == 78, "bad file: exit status 78 (%d)" % rc, out)
    for line, what in ((3, "colour"), (7, "port"), (10, "tls")):
        ok(re.search(r"%s:%d: .*%s" % (re.escape(f), line, what), out),
           "bad file: '%s:%d: ...%s...' reported" % (
               os.path.basename(f), line, what), out)
    comment(out.strip())

    rc, out = check("[account a]\nhost = 127.0.0.1\nusername = alice\n"
                    "password = x\non_new_mail = 'unterminated\n")
    ok(rc == 78 and re.search(r"%s:5: " % re.escape(f), out),
       "unterminated quote in a hook command: 78 and line 5", out)

    rc, out = check("[account a]\nhost = 127.0.0.1\nusername = alice\n")
    ok(rc == 78 and re.search(re.escape(f) + r"(:\d+)?: .*password", out),
       "no password: 78, naming the file and the key", out)

    rc, out = check("[account a]\nhost = 127.0.0.1\nusername = alice\n"
                    "password = x\nmailboxes = INBOX, Lists/dev\n")
    ok(rc == 0 and "OK" in out,
       "good file: exit 0 and a summary (%s)" % out.strip())

    os.unlink(f)
    r = subprocess.run(mw.argv() + ["--check-config"],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=mw.env(), timeout=mwtest._t(20))
    ok(r.returncode == 78 and f in r.stderr + r.stdout,
       "missing file: 78 and the file named (%d)" % r.returncode,
       r.stderr)
    errs = [ln for ln in (out + r.stderr).splitlines()
            if "Sanitizer" in ln or "runtime error" in ln]
    ok(not errs, "no sanitizer reports", "\n".join(errs))

def test_ca_added_to_shared_file():
    """Two accounts share a ca_file that holds only the first server's
    CA: the second is refused, as it should be. The user adds its CA to
    the file and reloads: it connects at once. A trial's went on failing,
    saying the file did not hold the CA: the first account's connection
    kept the file's old contents in use, and the reload did not retry."""
    need_binaries()
    dc1 = mwtest.Dovecot(users=USERS)
    dc2 = mwtest.Dovecot(users=USERS)
    cas = os.path.join(tempfile.mkdtemp(prefix="mwtest-cas-"), "cas.pem")
    shutil.copy(dc1.ca_file, cas)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account one": dc1.account("alice", ca_file=cas),
        "account two": dc2.account("alice", ca_file=cas),
    })
    ok(mw.wait_log(r"one/INBOX: watching \(IDLE\)", 20),
       "the first account watched", mw.log_tail(10))
    ok(wait_warning(mw, "two/INBOX", r"certificate verify failed", 10),
       "the second refused: its CA is not in the file", mw.log_tail(10))
    # Until its retries wait 8 s or more: the reload must not wait.
    ok(mw.wait_log(r"two/INBOX: reconnecting in ([89]|[1-9]\d)", 40),
       "retried with back-off", mw.log_tail(10))
    with open(cas, "a") as f, open(dc2.ca_file) as ca2:
        f.write(ca2.read())
    mark = mw.mark()
    mw.reload()
    ok(mw.wait_log(r"two/INBOX: watching \(IDLE\)", 5, since=mark),
       "after the CA was added and a reload: watched at once",
       mw.log()[mark:][-2000:])
    finish(mw)
    shutil.rmtree(os.path.dirname(cas), ignore_errors=True)


if __name__ == "__main__":
    mwtest.main(test_wrong_password,
                test_untrusted_certificate,
                test_ca_added_to_shared_file,
                test_starttls_not_offered,
                test_starttls_works,
                test_password_command_not_logged,
                test_check_config)
