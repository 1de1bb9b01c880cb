#!/usr/bin/python3
"""OAuth2 sign-in against a real Dovecot that validates JWTs itself
(mwtest.Dovecot(oauth2=True)): XOAUTH2 and OAUTHBEARER with a token from
oauth2_token_command, asked before each login. A refused token (expired,
badly signed, another user's) is logged with the server's decoded
challenge, asked for again once and retried; a second refusal stops the
account until a reload, with no retry storm (the logins Dovecot saw are
counted). A command that fails or hangs is logged and retried with
back-off, never reaching the server. Mail is announced once a token is
good, and no token is ever in mailwatch's log (-v trace included).

A scripted server (tests/lib/fakeimap.py) ends an idle session with
"* BYE" when the token expires, which Dovecot does not do: mailwatch
reconnects with a new token and catches up with what arrived."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until, quiet  # noqa: E402
import fakeimap  # noqa: E402

# The token command: run N (from 1) prints line N of FILE (the last line
# for later runs); a line FAIL exits 3, HANG sleeps. Each run appends a
# line to FILE.runs.
TOKEN_CMD = r'''#!/usr/bin/python3
import os, sys, time
path = sys.argv[1]
with open(path + ".runs", "a") as f:
    f.write("run\n")
with open(path + ".runs") as f:
    n = len(f.read().splitlines())
with open(path) as f:
    lines = f.read().splitlines()
line = lines[min(n, len(lines)) - 1]
if line == "FAIL":
    sys.exit(3)
if line == "HANG":
    time.sleep(600)
print(line)
'''


class Tokens:
    """A token command for one account: set() the lines it prints."""

    def __init__(self, mw, name, directory=None):
        directory = directory or mw.dir
        self.path = os.path.join(directory, name + ".tokens")
        self.script = os.path.join(directory, "token.py")
        if not os.path.exists(self.script):
            with open(self.script, "w") as f:
                f.write(TOKEN_CMD)
            os.chmod(self.script, 0o755)
        self.printed = []

    def set(self, *lines):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        os.rename(tmp, self.path)
        self.printed += [x for x in lines if x not in ("FAIL", "HANG")]

    def runs(self):
        try:
            with open(self.path + ".runs") as f:
                return len(f.read().splitlines())
        except FileNotFoundError:
            return 0

    def command(self):
        return "%s %s" % (self.script, self.path)


def account(dc, mw, user, tokens, **kw):
    sec = dict(dc.account(user, password=None),
               oauth2_token_command=tokens.command(),
               on_new_mail=mw.hook_cmd("new"))
    sec.update(kw)
    return sec


def no_token_logged(mw, *token_sets):
    leaked = [t for ts in token_sets for t in ts.printed if t in mw.log()]
    ok(not leaked, "no token in mailwatch's log (-v trace included)")


def announced(dc, mw, user, acct, subject):
    """Delivers a message (LDA: no IMAP login, which Dovecot's penalty
    for the failed ones would delay) and waits for its hook."""
    dc.deliver(user, mwtest.make_message(subject))
    return wait_until(lambda: any(
        r["MAILWATCH_ACCOUNT"] == acct and r["MAILWATCH_SUBJECT"] == subject
        for r in mw.hook_records()), 15)


def test_valid():
    """Good tokens: XOAUTH2 when asked for, OAUTHBEARER by auto; ID sent
    after login with send_id."""
    dc = mwtest.Dovecot(oauth2=True, extra_conf="imap_id_log = *\n")
    mw = mwtest.Mailwatch(None, start=False)
    ta, tb = Tokens(mw, "a"), Tokens(mw, "b")
    ta.set(dc.token("alice"))
    tb.set(dc.token("bob"))
    mw.write_config({
        "account a": account(dc, mw, "alice", ta, auth="xoauth2",
                             send_id=True),
        "account b": account(dc, mw, "bob", tb),
    })
    mw.start()
    ok(mw.wait_log(r"a/INBOX: " + mwtest.WATCHED, 20) and
       mw.wait_log(r"b/INBOX: " + mwtest.WATCHED, 20),
       "both accounts watch with a token", mw.log_tail(30))
    ok(dc.logins("XOAUTH2", "alice") >= 1 and
       dc.logins("OAUTHBEARER", "bob") >= 1 and
       not dc.logins("OAUTHBEARER", "alice") and
       not dc.logins("XOAUTH2", "bob"),
       "alice logged in with XOAUTH2, bob with OAUTHBEARER (auto)",
       dc.log_tail(20))
    ok(mw.wait_log(r"C: m\d+ <login AUTHENTICATE XOAUTH2, credentials "
                   r"redacted>", 5),
       "the -v trace shows the login redacted")
    ok(announced(dc, mw, "alice", "a", "for a") and
       announced(dc, mw, "bob", "b", "for b"),
       "mail announced on both")
    ok(dc.wait_log(r"imap\(alice\).*ID sent: name=mailwatch, version=", 5)
       and not re.search(r"imap\(bob\).*ID sent", dc.log()),
       "send_id: Dovecot got ID from a, not from b", dc.log_tail(10))
    ok(not re.search(r"refused ID", mw.log()), "ID was not refused")
    ok(ta.runs() == dc.logins("XOAUTH2", "alice"),
       "the token command ran once per login (%d runs, %d logins)" %
       (ta.runs(), dc.logins("XOAUTH2", "alice")))
    no_token_logged(mw, ta, tb)
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit",
       mw.sanitizer_errors())
    dc.stop()


def test_expired_then_valid():
    """An expired token, then a good one: one refusal, one retry."""
    dc = mwtest.Dovecot(oauth2=True)
    mw = mwtest.Mailwatch(None, start=False)
    t = Tokens(mw, "a")
    t.set(dc.token("alice", expires_in=-600), dc.token("alice"))
    mw.write_config({"account a": account(dc, mw, "alice", t)})
    mw.start()
    # Dovecot's challenge: {"status":"401",...} to XOAUTH2,
    # {"status":"invalid_token"} to OAUTHBEARER.
    ok(mw.wait_log(r'a/INBOX: server refused the OAUTHBEARER token: '
                   r'\{"status":"invalid_token"\}', 20),
       "the server's challenge is logged decoded", mw.log_tail(20))
    ok(mw.wait_log(r"a/INBOX: login as alice with OAUTHBEARER failed: NO "
                   r"\[AUTHENTICATIONFAILED\] .*\(status invalid_token\); "
                   r"asking "
                   r"oauth2_token_command for a new token", 10),
       "the refusal is logged with the status, and a new token asked for",
       mw.log_tail(20))
    ok(mw.wait_log(r"a/INBOX: " + mwtest.WATCHED, 30),
       "watching with the new token", mw.log_tail(20))
    ok(announced(dc, mw, "alice", "a", "after a refusal"),
       "mail announced once the token is good")
    ok(t.runs() == 2, "the token command ran twice (%d)" % t.runs())
    ok(dc.logins("OAUTHBEARER") == 2,
       "Dovecot saw two logins (%d)" % dc.logins("OAUTHBEARER"),
       dc.log_tail(20))
    no_token_logged(mw, t)
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit",
       mw.sanitizer_errors())
    dc.stop()


def test_refused_twice():
    """Badly signed and wrong-user tokens: two logins, then a wait of 5
    minutes before the next (it used to stop until a reload, though the
    helper may be fixed meanwhile), which CheckNow or a reload cut short,
    starting over with the command's new token."""
    dc = mwtest.Dovecot(oauth2=True)
    bus = mwtest.SessionBus()
    mw = mwtest.Mailwatch(None, bus=bus, start=False, sd_notify=True)
    ta, tb = Tokens(mw, "a"), Tokens(mw, "b")
    ta.set(dc.token("alice", key=b"not the server's key, 32 bytes!"))
    tb.set(dc.token("alice"))   # bob's account, alice's token
    config = {
        "account a": account(dc, mw, "alice", ta, auth="xoauth2"),
        "account b": account(dc, mw, "bob", tb),
    }
    mw.write_config(config)
    mw.start()
    for name, user, mech, status in (("a", "alice", "XOAUTH2", "401"),
                                     ("b", "bob", "OAUTHBEARER",
                                      "invalid_token")):
        ok(mw.wait_log(r"%s/INBOX: login as %s with %s failed: NO "
                       r"\[AUTHENTICATIONFAILED\] .*\(status %s\), with a "
                       r"token just asked for; asking oauth2_token_command "
                       r"again in 5 minutes \(a reload asks at once\)"
                       % (name, user, mech, status),
                       40),
           "%s: a second refusal waits 5 minutes, said clearly" % name,
           mw.log_tail(20))
        ok(mw.wait_sd_notify(r"^STATUS=.*%s/INBOX: the token was refused; "
                             r"trying again at \d\d:\d\d:\d\d" % name, 10),
           "%s: and the status line says so" % name,
           mw.sd_notify_messages()[-3:])
    # Dovecot logs a failed login when the connection closes.
    wait_until(lambda: dc.logins("XOAUTH2", "alice") >= 2 and
               dc.logins("OAUTHBEARER", "bob") >= 2, 10)
    quiet(5)
    ok(dc.logins("XOAUTH2", "alice") == 2 and
       dc.logins("OAUTHBEARER", "bob") == 2,
       "no retry storm: two logins each (%d, %d)" %
       (dc.logins("XOAUTH2", "alice"), dc.logins("OAUTHBEARER", "bob")),
       dc.log_tail(20))
    ok(ta.runs() == 2 and tb.runs() == 2,
       "the token command ran twice each (%d, %d)" % (ta.runs(),
                                                      tb.runs()))
    ta.set(dc.token("alice"))
    mark = mw.mark()
    r = subprocess.run(["busctl", "--user", "call", "org.mailwatch.Mailwatch",
                        "/org/mailwatch/Mailwatch", "org.mailwatch.Mailwatch1",
                        "CheckNow"], env=bus.env(), capture_output=True,
                       text=True, timeout=mwtest._t(10))
    ok(r.returncode == 0 and
       mw.wait_log(r"a/INBOX: " + mwtest.WATCHED, 30, since=mark),
       "CheckNow tries again at once, with the command's new token",
       r.stderr + mw.log_tail(20))
    ok(announced(dc, mw, "alice", "a", "after CheckNow"),
       "mail announced after CheckNow")
    tb.set(dc.token("bob"))
    mark = mw.mark()
    mw.reload(config)
    ok(mw.wait_log(r"b/INBOX: " + mwtest.WATCHED, 30, since=mark),
       "a reload starts over, with the command's new token",
       mw.log_tail(20))
    ok(announced(dc, mw, "bob", "b", "after the reload"),
       "mail announced after the reload")
    no_token_logged(mw, ta, tb)
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit",
       mw.sanitizer_errors())
    dc.stop()


def test_command_fails_or_hangs():
    """A command that fails, or hangs past its 30 s: logged, retried with
    back-off, the server never asked; fine once the command is. The
    status line says which (a trial's said "connecting" while the
    command hung, and "reconnecting" after it failed)."""
    dc = mwtest.Dovecot(oauth2=True)
    mw = mwtest.Mailwatch(None, start=False, sd_notify=True)
    ta, tb = Tokens(mw, "a"), Tokens(mw, "b")
    ta.set("FAIL", "FAIL", dc.token("alice"))
    tb.set("HANG", dc.token("bob"))
    mw.write_config({
        "account a": account(dc, mw, "alice", ta),
        "account b": account(dc, mw, "bob", tb),
    })
    mw.start()
    ok(mw.wait_log(r"^mailwatch: a: oauth2_token_command failed with exit "
                   r"status 3$", 10),
       "a: the failure is logged", mw.log_tail(20))
    ok(mw.wait_sd_notify(r"^STATUS=.*a/INBOX: oauth2_token_command failed "
                         r"\(exit status 3\); trying again", 10),
       "a: the status line says the command failed, and why",
       mw.sd_notify_messages()[-3:])
    ok(mw.wait_sd_notify(r"^STATUS=.*b/INBOX: waiting for "
                         r"oauth2_token_command", 10),
       "b: the status line says it waits for the command",
       mw.sd_notify_messages()[-3:])
    ok(mw.wait_log(r"a/INBOX: " + mwtest.WATCHED, 30),
       "a: watching once the command printed a token", mw.log_tail(20))
    ok(ta.runs() == 3, "a: the command ran three times (%d)" % ta.runs())
    ok(dc.logins(user="alice") == 1,
       "a: the server saw one login (%d)" % dc.logins(user="alice"))
    ok(mw.wait_log(r"^mailwatch: b: oauth2_token_command did not finish "
                   r"within 30 s; killed it$", 45),
       "b: the hanging command is killed and logged", mw.log_tail(20))
    ok(mw.wait_log(r"b/INBOX: " + mwtest.WATCHED, 30),
       "b: watching with the next run's token", mw.log_tail(20))
    ok(dc.logins(user="bob") == 1,
       "b: the server saw one login (%d)" % dc.logins(user="bob"))
    ok(announced(dc, mw, "alice", "a", "for a") and
       announced(dc, mw, "bob", "b", "for b"),
       "mail announced on both")
    no_token_logged(mw, ta, tb)
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit",
       mw.sanitizer_errors())
    dc.stop()


def test_expiry_bye():
    """The token expires in IDLE: the server says BYE. A new token, a
    reconnect, the mail that came meanwhile caught up, once; one login
    with the new token, none with the old."""
    what = "BYE at token expiry"
    d = tempfile.mkdtemp(prefix="mwtest-oauth2-")
    srv = fakeimap.FakeImap(caps="IMAP4rev1 IDLE SASL-IR LITERAL+ "
                            "AUTH=XOAUTH2 AUTH=OAUTHBEARER")
    t = Tokens(None, "fake", d)
    t.set("tok-1.first", "tok-2.second")
    srv.tokens = {"tok-1.first"}
    h = fakeimap.Hostile(srv=srv, account={
        "password": None, "oauth2_token_command": t.command(),
        "auth": "xoauth2"})
    old = srv.add_message(subject="before the expiry")
    h.mw.wait_hooks(1, 10)
    # The first token expires; what arrives now is not pushed.
    srv.tokens = {"tok-2.second"}
    meanwhile = [srv.add_message(subject="meanwhile %d" % i, notify=False)
                 for i in (1, 2)]
    mark = h.mw.mark()
    srv.conn(1).sendline("* BYE Session invalidated - AccessTokenExpired")
    srv.conn(1).close()
    h.log_line(r"server closed: BYE Session invalidated - "
               r"AccessTokenExpired", what, since=mark)
    h.reconnected(what)
    h.announced([old] + meanwhile, what + ": the mail that came meanwhile")
    ok([(n, tok, good) for n, _, tok, good in srv.logins] ==
       [(1, "tok-1.first", True), (2, "tok-2.second", True)],
       "%s: the second connection logged in with a new token, once" % what,
       repr(srv.logins))
    ok(t.runs() == 2, "%s: the token command ran again (%d runs)" %
       (what, t.runs()))
    new = srv.add_message(subject="after the reconnect")
    h.announced([old, new] + meanwhile, what + ": new mail after it")
    no_token_logged(h.mw, t)
    h.finish(what)
    shutil.rmtree(d, ignore_errors=True)


mwtest.main(test_valid, test_expired_then_valid, test_refused_twice,
            test_command_fails_or_hangs, test_expiry_bye)
