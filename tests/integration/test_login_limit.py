#!/usr/bin/python3
"""Dovecot at its stock connection limit (10 per user and IP) refuses an
eleventh login with NO [LIMIT]. mailwatch must take that for what it is,
a refusal for now: log it, retry with back-off, and watch as soon as a
connection is free; never "login failed ... not retrying", which is for
wrong credentials only."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402


def check_now(bus):
    """Calls CheckNow over the session bus (as a resume does); True when
    it answered."""
    return subprocess.run(
        ["busctl", "--user", "call", "org.mailwatch.Mailwatch",
         "/org/mailwatch/Mailwatch", "org.mailwatch.Mailwatch1",
         "CheckNow"], env=bus.env(), capture_output=True, text=True,
        timeout=mwtest._t(10)).returncode == 0


def main():
    dc = mwtest.Dovecot(conn_limit=None)
    held = [dc.client("alice") for _ in range(10)]
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice"),
    })
    line = mw.wait_log(r"a/INBOX: server refused the login for now: "
                       r"NO \[LIMIT\]", 15)
    ok(line, "the [LIMIT] refusal is logged as one (%r)" % line)
    ok(mw.wait_log(r"a/INBOX: reconnecting in", 5),
       "and retried with back-off")
    ok(not mw.wait_log(r"not retrying", 0),
       "not taken for a wrong password", mw.log_tail(10))

    for c in held[:2]:
        c.logout()
    ok(mw.wait_log(r"watching \(IDLE\)", 30),
       "watching once connections are free", mw.log_tail(10))
    dc.deliver("alice", mwtest.make_message("after the limit"))
    recs = mw.wait_hooks(1, 10)
    ok(len(recs) == 1, "new mail announced")
    for c in held[2:]:
        c.logout()
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")



def test_budget_lowered():
    """Without NOTIFY, with 7 of the 10 connections taken by other
    clients: max_connections = 5 meets [LIMIT] at the fourth login, and
    the budget goes down to the 3 the server allows. The log says so in
    those words (it used to say "max_connections = 3", which the
    configuration never said), and mail in a checked folder is
    announced."""
    folders = ["F%d" % i for i in range(1, 6)]
    dc = mwtest.Dovecot(conn_limit=None, notify=False)
    dc.create_mailboxes("alice", folders)
    held = [dc.client("alice") for _ in range(7)]
    acct = dc.account("alice", mailboxes=["INBOX"] + folders)
    acct.update(max_connections=5, poll_interval=10)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account a": acct,
    }, sd_notify=True)
    line = mw.wait_log(r"a: \d+ mailbox(?:es)? with IDLE, \d+ checked every "
                       r"10 s \(3 connections: the server refused more\)",
                       30)
    ok(line, "the budget lowered to what the server allows, in those "
       "words", "\n".join(re.findall(r".*(?:with IDLE|limits connections|"
                                      r"\[LIMIT\]).*", mw.log())))
    # The status line too (trial N: only the log said why).
    ok(mw.wait_sd_notify(r"STATUS=.*checked every 10 s \(3 connections: "
                         r"the server refused more\)", 10),
       "and the status line", (mw.sd_notify_messages() or [""])[-1])
    # Once F5 was checked: mail there before is old, at a first run.
    ok(mw.wait_log(r"a/F5: STATUS UIDVALIDITY", 10 + 10),
       "F5 checked", mw.log_tail(10))
    dc.deliver("alice", mwtest.make_message("checked"), mailbox="F5")
    recs = mw.wait_hooks(1, 10 + 10)
    ok([r["MAILWATCH_MAILBOX"] for r in recs] == ["F5"],
       "mail in a checked folder announced", mw.log_tail(10))
    for c in held:
        c.logout()
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")
def test_notify_one_left():
    """With NOTIFY and 9 of the 10 connections held by other clients:
    the second login (to fetch new mail in a folder) meets [LIMIT], and
    the budget goes straight to 1 (trial Q read "using at most 4", "3",
    then "2" at three refusals, of connections never used). That one
    connection then watches every mailbox with NOTIFY: the folder's mail
    is announced, and later mail in INBOX and another folder too, each
    once. Before, mail outside INBOX waited for a second connection.
    CheckNow (as after a resume) tries two again: refused, it stays on
    one; once the others let go, INBOX has its IDLE again."""
    dc = mwtest.Dovecot(conn_limit=None)
    dc.create_mailboxes("alice", ["F1", "F2"])
    held = [dc.client("alice") for _ in range(9)]
    acct = dc.account("alice", mailboxes=["INBOX", "F1", "F2"])
    bus = mwtest.SessionBus()
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": acct,
    }, sd_notify=True, bus=bus)
    ok(mw.wait_log(r"a/F1: watching \(NOTIFY\)", 20), "F1 followed",
       mw.log_tail(10))
    # New mail in F1: the connection to fetch it is refused.
    held[0].append_many("F1", [mwtest.make_message("in F1")])
    ok(mw.wait_log(r"a: the server limits connections: using at most 1",
                   20), "the budget lowered to 1 at once",
       "\n".join(re.findall(r".*(?:limits connections|\[LIMIT\]).*",
                             mw.log())))
    ok(mw.wait_log(r"a: watching 3 mailboxes with NOTIFY over one "
                   r"connection", 20), "one connection watches all three",
       mw.log_tail(10))
    recs = mw.wait_hooks(1, 20)
    ok([r["MAILWATCH_SUBJECT"] for r in recs] == ["in F1"],
       "the folder's mail announced over it", mw.log_tail(10))
    ok(mw.wait_sd_notify(r"STATUS=.*3 mailboxes over 1 connection "
                         r"\(NOTIFY\)", 10),
       "and the status line says so", (mw.sd_notify_messages() or [""])[-1])
    dc.deliver("alice", mwtest.make_message("in INBOX"))
    held[0].append_many("F2", [mwtest.make_message("in F2")])
    recs = mw.wait_hooks(3, 20)
    got = sorted((r["MAILWATCH_MAILBOX"], r["MAILWATCH_SUBJECT"])
                 for r in recs)
    ok(got == [("F1", "in F1"), ("F2", "in F2"), ("INBOX", "in INBOX")],
       "INBOX's and F2's mail announced too, each once (%r)" % got,
       mw.log_tail(10))
    ok(dc.connections("alice") == 10, "within the limit: 9 held and "
       "mailwatch's one (%d)" % dc.connections("alice"))
    mwtest.quiet(2)
    lines = re.findall(r".*using at most.*", mw.log())
    ok(len(lines) == 1, "said once (%d)" % len(lines), "\n".join(lines))
    ok(len(mw.hook_records()) == 3, "no mail announced twice (%d hooks)"
       % len(mw.hook_records()))

    refused = dc.log().count("Maximum number of connections")
    ok(check_now(bus), "CheckNow")
    ok(mwtest.wait_until(lambda: dc.log().count(
        "Maximum number of connections") > refused, 20),
       "CheckNow tried two connections, and Dovecot refused one")
    ok(mw.wait_sd_notify(r"STATUS=.*3 mailboxes over 1 connection "
                         r"\(NOTIFY\)", 20),
       "back on one", (mw.sd_notify_messages() or [""])[-1])
    # A reload too: a try at two first, quiet while refused (a trial's
    # reloads each handed the one connection over, with [LIMIT] logged).
    mark = mw.mark()
    refused = dc.log().count("Maximum number of connections")
    mw.reload()
    ok(mwtest.wait_until(lambda: dc.log().count(
        "Maximum number of connections") > refused, 20),
       "a reload tried two connections, and Dovecot refused one")
    mwtest.quiet(1)
    # (The refusal itself is at debug level, which this log shows.)
    ok(not re.search(r"IDLE and NOTIFY|limits connections|INBOX: watching",
                     mw.log()[mark:]),
       "nothing changed, nothing logged of it", mw.log()[mark:][-2000:])
    held[0].append_many("F1", [mwtest.make_message("F1 again")])
    recs = mw.wait_hooks(4, 20)
    ok([r["MAILWATCH_SUBJECT"] for r in recs[3:]] == ["F1 again"],
       "and announcing over it", mw.log_tail(10))
    for c in held:
        c.logout()
    mark = mw.mark()
    ok(check_now(bus), "CheckNow with the others gone")
    ok(mw.wait_log(r"a: the server takes 2 connections again", 30,
                   since=mark) and
       mw.wait_log(r"a: watching 3 mailboxes with IDLE and NOTIFY", 30,
                   since=mark),
       "two connections again: INBOX in IDLE, NOTIFY for the rest",
       "\n".join(re.findall(r".*(?:connections|watching).*",
                            mw.log()[mark:])))
    dc.deliver("alice", mwtest.make_message("INBOX again"))
    recs = mw.wait_hooks(5, 20)
    ok([r["MAILWATCH_SUBJECT"] for r in recs[4:]] == ["INBOX again"],
       "INBOX's mail announced once", mw.log_tail(10))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_one_left_unfollowed():
    """On one connection, a folder Dovecot 2.3's NOTIFY does not follow
    (a name with '&') is checked every poll_interval over that
    connection, and stays so when NOTIFY is set again after a push: a
    trial's "R&D" was taken for followed at the next NOTIFY SET (its
    check's answer counted as NOTIFY's) and its mail was not announced."""
    dc = mwtest.Dovecot(conn_limit=None)
    dc.create_mailboxes("alice", ["F1", "R&D"])
    held = [dc.client("alice") for _ in range(9)]
    acct = dc.account("alice", mailboxes=["INBOX", "F1", "R&D"])
    acct.update(poll_interval=10)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": acct,
    }, sd_notify=True)
    ok(mw.wait_log(r"a/F1: watching \(NOTIFY\)", 20), "F1 followed",
       mw.log_tail(10))
    held[0].append_many("F1", [mwtest.make_message("in F1")])
    ok(mw.wait_log(r"a: watching 2 mailboxes with NOTIFY over one "
                   r"connection", 20), "one connection, NOTIFY for two",
       mw.log_tail(10))
    checked = (r"STATUS=.*2 mailboxes over 1 connection \(NOTIFY\), 1 "
               r"checked every 10 s \(1 connection: the server refused "
               r"more\)")
    ok(mw.wait_sd_notify(checked, 20), "the status line: R&D checked",
       (mw.sd_notify_messages() or [""])[-1])
    # Once R&D's check is answered, its new mail's push (Dovecot names
    # it as it is, "R&D": dropped) has NOTIFY set again.
    ok(mw.wait_log(r"a/R&D: STATUS UIDVALIDITY", 20), "R&D checked",
       mw.log_tail(10))
    mark = mw.mark()
    held[0].append_many(mwtest.imap_utf7_encode("R&D"),
                        [mwtest.make_message("in R&D")])
    ok(mw.wait_log(r"a: after pushes: NOTIFY SET again", 15, since=mark),
       "NOTIFY set again after the push", mw.log_tail(10))
    recs = mw.wait_hooks(2, 10 + 10)
    got = sorted(r["MAILWATCH_SUBJECT"] for r in recs)
    ok(got == ["in F1", "in R&D"],
       "R&D's mail announced within poll_interval, each once (%r)" % got,
       mw.log_tail(10))
    ok(re.search(checked, (mw.sd_notify_messages() or [""])[-1]),
       "R&D still checked", (mw.sd_notify_messages() or [""])[-1])
    for c in held:
        c.logout()
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_reload_retries_now():
    """Without NOTIFY and one connection free: INBOX has it, and the
    checking connection is refused again and again, waiting longer each
    time. Once the other clients let go, a reload tries it at once: the
    mail that waited in a checked folder is announced within seconds. A
    trial's came 18 to 34 s after the reload, at the end of the
    back-off."""
    folders = ["F1", "F2", "F3", "F4"]
    dc = mwtest.Dovecot(conn_limit=None, notify=False)
    dc.create_mailboxes("alice", folders)
    acct = dc.account("alice", mailboxes=["INBOX"] + folders)
    acct.update(max_connections=3, poll_interval=10)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": acct,
    })
    # A first run, unlimited, so that F4 is known: its mail found at a
    # first check after this is new.
    ok(mw.wait_log(r"a/F4: STATUS UIDVALIDITY", 20), "F4 checked once",
       mw.log_tail(10))
    ok(mw.stop() == 0, "stopped")
    held = [dc.client("alice") for _ in range(9)]
    mark = mw.mark()
    mw.start()
    ok(mw.wait_log(r"a/INBOX: watching \(IDLE\)", 20, since=mark),
       "again, with one connection free: INBOX in IDLE", mw.log_tail(10))
    # Its waits: about 1, 2, 4, 8 s, then 16.
    refused = "Maximum number of connections"
    ok(mwtest.wait_until(lambda: dc.log().count(refused) >= 6, 60),
       "the checking connection refused again and again",
       "\n".join(re.findall(r".*%s.*" % refused, dc.log())))
    # F4 is checked even with max_connections (INBOX and F1 have IDLE):
    # its mail waits for the checking connection.
    dc.deliver("alice", mwtest.make_message("checked"), mailbox="F4")
    for c in held:
        c.logout()
    mark = mw.mark()
    mw.reload()
    ok(mw.wait_log(r"a: trying max_connections = 3 again", 10, since=mark),
       "the reload tries max_connections again", mw.log_tail(10))
    recs = mw.wait_hooks(1, 6)
    ok([r["MAILWATCH_MAILBOX"] for r in recs] == ["F4"],
       "the checked folder's mail announced within seconds",
       mw.log()[mark:][-3000:])
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def mail_then_let_go(dc, mw, held, boxes):
    """A message "new in BOX" to each of boxes, then the held clients
    let go and a reload, which tries the refused logins at once."""
    for box in boxes:
        dc.deliver("alice", mwtest.make_message("new in " + box),
                   mailbox=box)
    for c in held:
        c.logout()
    mw.reload()


def test_first_run_refused():
    """A first run without NOTIFY and one connection free: INBOX gets it,
    and the logins that are to look at F1 (its own IDLE) and F2 (checked)
    are refused for as long as the other clients hold theirs. Mail that
    reaches them meanwhile arrived after mailwatch started: once they are
    looked at, it is announced, and what they held before the start is
    not. It used to be taken as there before, as what a mailbox holds at
    its first look is at a first run."""
    dc = mwtest.Dovecot(conn_limit=None, notify=False)
    dc.create_mailboxes("alice", ["F1", "F2"])
    for box in ("F1", "F2"):
        dc.deliver("alice", mwtest.make_message("old in " + box),
                   mailbox=box)
    # INTERNALDATE has whole seconds: the old mail is of an earlier one.
    time.sleep(1.1)
    held = [dc.client("alice") for _ in range(9)]
    acct = dc.account("alice", mailboxes=["INBOX", "F1", "F2"])
    acct.update(max_connections=3, poll_interval=10)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": acct,
    })
    ok(mw.wait_log(r"a/INBOX: watching \(IDLE\)", 20),
       "INBOX in IDLE on the one connection free", mw.log_tail(10))
    refused = "Maximum number of connections"
    ok(mwtest.wait_until(lambda: dc.log().count(refused) >= 3, 30),
       "the other logins refused", mw.log_tail(10))
    mark = mw.mark()
    mail_then_let_go(dc, mw, held, ("F1", "F2"))
    recs = mw.wait_hooks(2, 20)
    ok(sorted(r["MAILWATCH_SUBJECT"] for r in recs) ==
       ["new in F1", "new in F2"],
       "the mail that came while they were refused announced, once each, "
       "and not the old", mw.log()[mark:][-3000:])
    ok(mw.wait_log(r"a/F2: first looked at late: catching up", 1,
                   since=mark), "the log says why", mw.log_tail(10))
    mw.settle()
    ok(len(mw.hook_records()) == 2, "nothing more")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_first_run_refused_notify():
    """The same with NOTIFY and no connection free at the start: the one
    that was to follow every mailbox is refused, and the mail that comes
    to INBOX and a folder meanwhile is announced once a client lets go,
    but not what they held before the start."""
    dc = mwtest.Dovecot(conn_limit=None)
    dc.create_mailboxes("alice", ["F1"])
    for box in ("INBOX", "F1"):
        dc.deliver("alice", mwtest.make_message("old in " + box),
                   mailbox=box)
    time.sleep(1.1)
    held = [dc.client("alice") for _ in range(10)]
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice", mailboxes=["INBOX", "F1"]),
    })
    refused = "Maximum number of connections"
    ok(mwtest.wait_until(lambda: dc.log().count(refused) >= 1, 20),
       "refused", mw.log_tail(10))
    mail_then_let_go(dc, mw, held, ("INBOX", "F1"))
    recs = mw.wait_hooks(2, 30)
    ok(sorted(r["MAILWATCH_SUBJECT"] for r in recs) ==
       ["new in F1", "new in INBOX"],
       "the mail that came while refused announced, and not the old",
       mw.log()[-3000:])
    mw.settle()
    ok(len(mw.hook_records()) == 2, "nothing more")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_two_accounts_one_login():
    """Two accounts log in as one user (their own mailboxes each) with
    NOTIFY, and the user's other clients hold 8 of Dovecot's 10: each
    account gets one of the two left and watches all its mailboxes. A
    trial's second account kept both (its NOTIFY connection and the
    fetching one) while the first had none for up to 98 s: now a refusal
    of one makes the other give one up."""
    dc = mwtest.Dovecot(conn_limit=None)
    dc.create_mailboxes("alice", ["F1", "F2", "F3"])
    held = [dc.client("alice") for _ in range(8)]
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice", mailboxes=["INBOX", "F1"]),
        "account b": dc.account("alice", mailboxes=["F2", "F3"]),
    }, sd_notify=True)
    ok(mwtest.wait_until(
        lambda: re.search(r"STATUS=4/4 mailboxes watched", "\n".join(
            mw.sd_notify_messages()[-1:])), 60),
       "both accounts watch all their mailboxes",
       (mw.sd_notify_messages() or [""])[-1] + "\n" + mw.log_tail(15))
    want = []
    for box in ("INBOX", "F1", "F2", "F3"):
        dc.deliver("alice", mwtest.make_message("new in " + box),
                   mailbox=box)
        want.append("new in " + box)
    recs = mw.wait_hooks(4, 30)
    got = sorted(r["MAILWATCH_SUBJECT"] for r in recs)
    ok(got == sorted(want), "each account announces its mail, once (%s)" % got,
       mw.log_tail(15))
    ok(mw.wait_log(r"another account of the same user and server was "
                   r"refused a connection: giving one up", 1),
       "the log says one gave way", mw.log_tail(15))
    for c in held:
        c.logout()
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_limit_logged_once():
    """At the default log level, a login refused with [LIMIT] at each
    retry is logged once, not at every retry (a trial's checking
    connection logged the whole line 6 times in 30 s)."""
    dc = mwtest.Dovecot(conn_limit=None)
    held = [dc.client("alice") for _ in range(10)]
    mw = mwtest.Mailwatch({
        "general": {"notify": False},
        "account a": dc.account("alice"),
    }, args=())
    refused = r"Maximum number of connections"
    ok(mwtest.wait_until(lambda: len(re.findall(refused, dc.log())) >= 3,
                         20),
       "Dovecot refused mailwatch's login three times",
       "\n".join(re.findall(r".*%s.*" % refused, dc.log())))
    lines = re.findall(r".*\[LIMIT\].*", mw.log())
    ok(len(lines) == 1, "the refusal logged once (%d)" % len(lines),
       "\n".join(lines))
    # A trial read seven "connected to" lines, and nothing else, as
    # working: from the second retry on they are at debug level too.
    lines = re.findall(r".*connected to.*", mw.log())
    ok(len(lines) <= 2, "'connected to' for the first try and retry only "
       "(%d)" % len(lines), "\n".join(lines))
    for c in held:
        c.logout()
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_budget_regrows():
    """A budget [LIMIT] lowered comes back once the other clients let go:
    CheckNow (as after a resume) tries one connection more, each that
    holds the next, until max_connections; a refused try is quiet; a
    reload goes back to max_connections at once. A trial's budget stayed
    at 2 after a phone's connections were gone, with 29 folders checked
    every poll_interval until a restart, which the reload did not
    bring."""
    folders = ["F%d" % i for i in range(1, 6)]
    dc = mwtest.Dovecot(conn_limit=None, notify=False)
    dc.create_mailboxes("alice", folders)
    held = [dc.client("alice") for _ in range(8)]
    acct = dc.account("alice", mailboxes=["INBOX"] + folders)
    acct.update(max_connections=5, poll_interval=10)
    bus = mwtest.SessionBus()
    # At the default log level: what a user reads.
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account a": acct,
    }, bus=bus, args=())
    squeezed = r"\(2 connections: the server refused more\)"
    ok(mw.wait_log(squeezed, 30), "squeezed to 2 connections",
       "\n".join(re.findall(r".*(?:with IDLE|limits connections).*",
                            mw.log())))

    # Still held: the try is refused, and nothing says so above debug.
    mark = mw.mark()
    refused = dc.log().count("Maximum number of connections")
    ok(check_now(bus), "CheckNow")
    ok(mwtest.wait_until(lambda: dc.log().count(
        "Maximum number of connections") > refused, 20),
       "CheckNow tried one connection more, and Dovecot refused it")
    mwtest.quiet(1)  # a window for a refusal line that must not come
    ok(not re.search(r"\[LIMIT\]|limits connections|refused more",
                     mw.log()[mark:]),
       "that refusal is not logged", mw.log()[mark:][-2000:])
    # Nor the try (trial N read "connected to" alone as one more
    # mailbox in IDLE).
    ok("connected to" not in mw.log()[mark:],
       "nor its 'connected to'", mw.log()[mark:][-2000:])
    for c in held[:4]:
        c.logout()
    mark = mw.mark()
    ok(check_now(bus), "CheckNow with four connections let go")
    ok(mw.wait_log(r"a: the server takes 4 connections again", 30,
                   since=mark) and
       mw.wait_log(r"\(max_connections = 5\)", 30, since=mark),
       "tried one by one, back to max_connections = 5",
       "\n".join(re.findall(r".*(?:connections).*", mw.log()[mark:])))
    ok(mwtest.wait_until(lambda: mw.log()[mark:].count(
        "watching (IDLE)") >= 3, 10), "their mailboxes in IDLE")

    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")

    # Squeezed again, by a new run; four let go; a reload.
    held[:4] = [dc.client("alice") for _ in range(4)]
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account a": acct,
    }, bus=bus)
    ok(mw.wait_log(squeezed, 30), "a new run: squeezed to 2 again")
    for c in held[:4]:
        c.logout()
    mark = mw.mark()
    mw.reload()
    ok(mw.wait_log(r"a: trying max_connections = 5 again", 10, since=mark)
       and mw.wait_log(r"\(max_connections = 5\)", 30, since=mark),
       "a reload goes back to max_connections at once",
       "\n".join(re.findall(r".*(?:connections).*", mw.log()[mark:])))
    # This run never checked F3: its first EXAMINE takes what is there
    # as old, so the mail goes in once it is watched.
    ok(mw.wait_log(r"a/F3: " + mwtest.WATCHED, 30, since=mark),
       "F3 watched on a connection of its own")
    dc.deliver("alice", mwtest.make_message("in F3"), mailbox="F3")
    recs = mw.wait_hooks(1, 10)
    ok([r["MAILWATCH_MAILBOX"] for r in recs] == ["F3"],
       "mail in a mailbox that was checked is announced")
    for c in held:
        c.logout()
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


mwtest.main(main, test_budget_lowered, test_notify_one_left,
            test_one_left_unfollowed, test_reload_retries_now,
            test_first_run_refused, test_first_run_refused_notify,
            test_limit_logged_once, test_two_accounts_one_login,
            test_budget_regrows)
