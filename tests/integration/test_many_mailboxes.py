#!/usr/bin/python3
"""Every mailbox of an account watched within the server's connection
limit (issue 11), against the private Dovecot at its stock limit of 10
connections per user and address:

- with NOTIFY (RFC 5465): INBOX and 20 folders over at most 2
  connections, new mail in any of them announced once, nothing refused;
- without NOTIFY (hidden with imap_capability) and max_connections = 5:
  the first 4 mailboxes pushed (IDLE), the rest checked every
  poll_interval, at most 5 connections;
- mail that arrived while mailwatch was stopped announced once at the next
  start, in both modes; without NOTIFY, mail that came to a checked
  folder while the server was down announced once it is back;
- a server that allows fewer connections than max_connections: the
  logins it refuses with [LIMIT] lower the budget, nothing is lost;
- mailboxes the server says are not there give their connections to
  those that are;
- a notification withdrawn when its message is read elsewhere, in INBOX
  (the mailbox the NOTIFY connection has selected) and in a folder
  followed by NOTIFY's STATUS alone; without NOTIFY, in a folder checked
  every poll_interval."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402
from test_watch import finish, need_binaries  # noqa: E402


# The log line that says a mailbox is watched, after "ACCOUNT/MAILBOX: ":
# pushed by IDLE or NOTIFY, or checked every poll_interval.
WATCHED = mwtest.WATCHED

ACCOUNT = "a"
FOLDERS = ["Folder %02d" % i for i in range(1, 21)]
MAILBOXES = ["INBOX"] + FOLDERS
POLL = 10       # poll_interval: the smallest allowed
BUDGET = 5      # max_connections without NOTIFY
# Deadlines (wait_* scale them by MWTEST_TIMEOUT_SCALE):
WATCH_ALL = 20  # start -> every mailbox watched
PUSH = 5        # APPEND -> hook for a pushed mailbox (Dovecot: ~0.5 s)
# A checked mailbox: the next check may come up to POLL s later, up to
# 5 s late (timer coalescing), then a fetch.
CHECKED = POLL + 5 + 3


def watched(mw, names=MAILBOXES):
    """The names of names that mailwatch logged as watched."""
    log = mw.log()
    return [n for n in names
            if re.search(r"%s: %s" % (re.escape("%s/%s" % (ACCOUNT, n)),
                                      WATCHED), log)]


def wait_watched(mw, what, names=MAILBOXES):
    """ok() that every one of names is logged as watched within
    WATCH_ALL."""
    wait_until(lambda: len(watched(mw, names)) == len(names) or
               not mw.running(), WATCH_ALL)
    got = watched(mw, names)
    missing = [n for n in names if n not in got]
    return ok(not missing, "%s: all %d mailboxes watched" % (what, len(names)),
              "not watched: %s\nlog:\n%s" % (missing, mw.log_tail(15)))


def keys(recs):
    return sorted((r["MAILWATCH_MAILBOX"], int(r["MAILWATCH_UID"]))
                  for r in recs)


def start(dc, bus=None, notify=False, **account):
    """mailwatch on alice's INBOX and FOLDERS of dc, the recording hook."""
    acct = dc.account("alice", mailboxes=MAILBOXES)
    acct.update(account)
    return mwtest.Mailwatch({
        "general": {"notify": notify, "burst": 0, "on_new_mail": "{hook}"},
        "account " + ACCOUNT: acct,
    }, bus=bus, sd_notify=True)


def status_line(mw):
    """The last STATUS= mailwatch sent to systemd (its status line)."""
    lines = [ln[len("STATUS="):] for m in mw.sd_notify_messages()
             for ln in m.split("\n") if ln.startswith("STATUS=")]
    return lines[-1] if lines else ""


def restart(mw):
    """Starts a stopped Mailwatch again (same state and hook records);
    registered again so that a failing test stops it (as in
    test_restart.py)."""
    mw.start()
    mwtest._register(mw)
    return mw


def server(notify):
    dc = mwtest.Dovecot(conn_limit=None, notify=notify)
    dc.create_mailboxes("alice", FOLDERS)
    return dc


def no_limit_refusal(dc, mw, what):
    ok("[LIMIT]" not in mw.log() and "Maximum number of connections"
       not in dc.log(), "%s: no connection refused with [LIMIT]" % what,
       "\n".join(line for line in mw.log().splitlines()
                 if "[LIMIT]" in line)[:2000])


def append_each(dc, names, tag):
    """Delivers one message to each of names with dovecot-lda, which needs
    no IMAP connection (mailwatch may hold all of them, as it does before
    issue 11). The sorted (mailbox, uid) list."""
    out = []
    for n in names:
        dc.deliver("alice", mwtest.make_message("%s %s" % (tag, n)),
                   mailbox=n)
        r = dc.doveadm("-f", "flow", "mailbox", "status", "-u", "alice",
                       "uidnext", n)
        out.append((n, int(re.search(r"uidnext=(\d+)", r.stdout)[1]) - 1))
    return sorted(out)


def mark_seen(dc, name, uid):
    """Sets \\Seen on uid in name as another client would, with doveadm
    (no IMAP connection needed)."""
    dc.doveadm("flags", "add", "-u", "alice", "\\Seen", "mailbox", name,
               "uid", uid)


def exactly_once(mw, want, what):
    """ok() that the hook ran for want, each once, and nothing else, after
    a quiet window long enough for one more check of every mailbox."""
    mw.settle(POLL + 2)
    got = keys(mw.hook_records())
    ok(got == sorted(want), "%s: each announced once, nothing else" % what,
       "want %s\ngot  %s" % (sorted(want), got))


def test_notify_stock_limit():
    """(a) NOTIFY, stock limit: 21 mailboxes over <= 2 connections."""
    need_binaries()
    dc = server(notify=True)
    mw = start(dc)
    wait_watched(mw, "NOTIFY")
    n = dc.connections("alice")
    ok(n <= 2, "NOTIFY: at most 2 connections (%d)" % n)
    want = append_each(dc, ["INBOX", FOLDERS[0], FOLDERS[-1]], "notify")
    recs = mw.wait_hooks(3, PUSH)
    ok(len(recs) >= 3, "NOTIFY: INBOX, the first and the last folder "
       "announced within %d s" % PUSH, "got %s" % keys(recs))
    exactly_once(mw, want, "NOTIFY")
    # More at once than catch_up_max (10) in a followed folder is live
    # mail: a hook for each, not a catch-up summary.
    uids = dc.append_many("alice", FOLDERS[1], [
        mwtest.make_message("burst %d" % i) for i in range(12)],
        atomic=True)
    want += [(FOLDERS[1], u) for u in uids]
    recs = mw.wait_hooks(len(want), PUSH)
    exactly_once(mw, want, "NOTIFY, 12 at once in a folder")
    n = dc.connections("alice")
    ok(n <= 2, "NOTIFY: still at most 2 connections (%d)" % n)
    no_limit_refusal(dc, mw, "NOTIFY")
    finish(mw)


def test_budget_without_notify():
    """(b) No NOTIFY, max_connections = 5: INBOX and 3 folders pushed, 17
    folders checked every poll_interval over the fifth connection."""
    need_binaries()
    dc = server(notify=False)
    with dc.client("alice") as c:
        ok("NOTIFY" not in c.capabilities(), "the server hides NOTIFY")
    mw = start(dc, max_connections=BUDGET, poll_interval=POLL)
    wait_watched(mw, "budget")
    n = dc.connections("alice")
    ok(n <= BUDGET, "budget: at most %d connections (%d)" % (BUDGET, n))
    # What systemctl status shows now; the checked mailboxes count
    # while their connection is at work too.
    every = "%d/%d mailboxes watched" % (len(MAILBOXES), len(MAILBOXES))
    ok(wait_until(lambda: status_line(mw).startswith(every), 5),
       "budget: the status line counts every mailbox watched",
       status_line(mw))

    want = append_each(dc, ["INBOX", FOLDERS[0]], "pushed")
    recs = mw.wait_hooks(2, PUSH)
    ok(keys(recs) == want, "budget: INBOX and folder 1 pushed within %d s"
       % PUSH, "got %s" % keys(recs))
    want += append_each(dc, [FOLDERS[-1]], "checked")
    recs = mw.wait_hooks(3, CHECKED)
    ok(len(recs) >= 3, "budget: folder 20 announced within %d s (checked "
       "every %d s)" % (CHECKED, POLL), "got %s" % keys(recs))
    exactly_once(mw, want, "budget")
    n = dc.connections("alice")
    ok(n <= BUDGET, "budget: still at most %d connections (%d)" % (BUDGET,
                                                                    n))
    no_limit_refusal(dc, mw, "budget")
    finish(mw)


def test_restart_catch_up():
    """(c) Mail in folders 3 and 15 while mailwatch was stopped is
    announced once at the next start, with NOTIFY and without."""
    need_binaries()
    for notify in (True, False):
        what = "catch-up (%s)" % ("NOTIFY" if notify else "no NOTIFY")
        dc = server(notify)
        mw = start(dc, max_connections=BUDGET, poll_interval=POLL)
        if not wait_watched(mw, what + ", first start"):
            finish(mw)
            dc.stop()
            continue
        finish(mw, what + ": mailwatch")
        want = append_each(dc, [FOLDERS[2], FOLDERS[14]], "while stopped")
        restart(mw)
        wait_watched(mw, what + ", second start")
        recs = mw.wait_hooks(2, CHECKED)
        ok(len(recs) >= 2, "%s: both announced" % what,
           "got %s" % keys(recs))
        most = 2 if notify else BUDGET
        n = dc.connections("alice")
        ok(n <= most, "%s: at most %d connections (%d)" % (what, most, n))
        exactly_once(mw, want, what)
        no_limit_refusal(dc, mw, what)
        finish(mw, what + ": mailwatch")
        dc.stop()


def drop_in_maildir(dc, name, subject):
    """Writes a message straight into alice's Maildir folder name, as
    mail that came while Dovecot was down (no process of its needed)."""
    new = os.path.join(dc.maildir("alice"), "." + name, "new")
    path = os.path.join(new, "%d.M1P%d.outage" % (time.time(), os.getpid()))
    with open(path, "wb") as f:
        f.write(mwtest.crlf(mwtest.make_message(subject)))


def test_outage_checked():
    """(b) Without NOTIFY: mail that came to a checked folder while the
    server was down is announced once the checking connection is back,
    not at the next check (poll_interval = 3600 here; trial Q waited 38
    s)."""
    need_binaries()
    dc = server(notify=False)
    mw = start(dc, max_connections=BUDGET, poll_interval=3600)
    wait_watched(mw, "outage")
    dc.stop_server()
    drop_in_maildir(dc, FOLDERS[-1], "while the server was down")
    ok(mw.wait_log(r"cannot connect|server closed|connection lost|"
                   r"reconnecting", 10),
       "outage: mailwatch noticed", mw.log_tail(10))
    dc.start()
    recs = mw.wait_hooks(1, 20)
    ok(keys(recs) == [(FOLDERS[-1], 1)],
       "outage: the checked folder's mail announced after the outage",
       "got %s\nlog:\n%s" % (keys(recs), mw.log_tail(15)))
    finish(mw)
    dc.stop()


def start_checked_skip(what):
    """Without NOTIFY, catch_up = skip, and checks once an hour (the first
    only, in a test): the last folders are checked; all watched."""
    need_binaries()
    dc = server(notify=False)
    mw = start(dc, max_connections=BUDGET, poll_interval=3600,
               catch_up="skip")
    wait_watched(mw, what)
    return dc, mw


def test_checked_mail_before_loss():
    """(b) Without NOTIFY, catch_up = skip: mail that came to a checked
    folder after its last check, before the connection was lost (the user
    kicked), came while mailwatch watched: announced once the checking
    connection is back (trial AE had it skipped as mail from while away).
    Mail that came while the server was down is still skipped."""
    dc, mw = start_checked_skip("gap")
    want = append_each(dc, [FOLDERS[-1]], "between checks")
    dc.kick("alice")
    recs = mw.wait_hooks(1, 20)
    ok(keys(recs) == want,
       "gap: the mail from before the kick announced after it",
       "got %s\nlog:\n%s" % (keys(recs), mw.log_tail(15)))
    since = mw.mark()
    dc.stop_server()
    ok(mw.wait_log(r"cannot connect|server closed|connection lost|"
                   r"reconnecting", 10, since=since),
       "gap: the outage noticed", mw.log_tail(10))
    time.sleep(1.1)  # a later second than the server's last word
    drop_in_maildir(dc, FOLDERS[-1], "while the server was down")
    dc.start()
    ok(mw.wait_log(r"%s: not announcing 1 message that arrived while away"
                   % re.escape(FOLDERS[-1]), 20, since=since),
       "gap: the outage's mail skipped (catch_up = skip)", mw.log_tail(15))
    exactly_once(mw, want, "gap")
    finish(mw)
    dc.stop()


def test_checked_mail_before_stop():
    """(b) Without NOTIFY, catch_up = skip: mail that came to a checked
    folder after its last check, before mailwatch was stopped, came while
    it watched: announced at the next start. Mail that came while it was
    stopped is skipped."""
    dc, mw = start_checked_skip("stop")
    want = append_each(dc, [FOLDERS[-1]], "before the stop")
    finish(mw, "stop: mailwatch")
    time.sleep(1.1)  # and the next delivery in a later one than the stop
    append_each(dc, [FOLDERS[-1]], "while stopped")
    since = mw.mark()
    restart(mw)
    recs = mw.wait_hooks(1, 20)
    ok(keys(recs) == want,
       "stop: the mail from before the stop announced at the next start",
       "got %s\nlog:\n%s" % (keys(recs), mw.log_tail(15)))
    ok(mw.wait_log(r"%s: not announcing 1 message that arrived while away"
                   % re.escape(FOLDERS[-1]), 20, since=since),
       "stop: the mail from while stopped skipped (catch_up = skip)",
       mw.log_tail(15))
    exactly_once(mw, want, "stop")
    finish(mw)
    dc.stop()


def test_missing_gives_way():
    """(b) Without NOTIFY and max_connections = 4: two misspelt names
    before two real folders. The server says the misspelt ones are not
    there, and their connections go to the real folders, which are then
    pushed, not checked every poll_interval (trial R)."""
    need_binaries()
    dc = server(notify=False)
    real = FOLDERS[:2]
    mw = start(dc, mailboxes=["INBOX", "Typo1", "Typo2"] + real,
               max_connections=4, poll_interval=3600)
    for name in real:
        ok(mw.wait_log(r"%s: watching \(IDLE\)" %
                       re.escape("%s/%s" % (ACCOUNT, name)), 15),
           "missing: %s pushed" % name, mw.log_tail(15))
    want = append_each(dc, real, "pushed")
    recs = mw.wait_hooks(2, PUSH)
    ok(keys(recs) == want, "missing: the real folders' mail announced "
       "within %d s" % PUSH, "got %s" % keys(recs))
    ok(re.search(r"a/Typo1: cannot open the mailbox", status_line(mw)),
       "missing: the status line names a misspelt one", status_line(mw))
    n = dc.connections("alice")
    ok(n <= 4, "missing: at most 4 connections (%d)" % n)
    finish(mw)
    dc.stop()


def test_missing_in_a_row():
    """(b) max_connections = 3: one connection beside INBOX's and the
    checking one. A misspelt name before INBOX and two misspelt names in
    a row: INBOX is still first, and the connection goes on to the first
    real folder (trial S: it went from the first misspelt name to the
    second, then to none)."""
    need_binaries()
    dc = server(notify=False)
    mw = start(dc, mailboxes=["Typo1", "INBOX", "Typo2", "Typo3"] +
               FOLDERS[:3], max_connections=3, poll_interval=3600)
    for name in ("INBOX", FOLDERS[0]):
        ok(mw.wait_log(r"%s: watching \(IDLE\)" %
                       re.escape("%s/%s" % (ACCOUNT, name)), 20),
           "in a row: %s pushed" % name, mw.log_tail(15))
    want = append_each(dc, ["INBOX", FOLDERS[0]], "pushed")
    recs = mw.wait_hooks(2, PUSH)
    ok(keys(recs) == want, "in a row: their mail announced within %d s"
       % PUSH, "got %s" % keys(recs))
    finish(mw)
    dc.stop()


def test_missing_first_notify():
    """(a) NOTIFY, a misspelt name before INBOX: INBOX's connection is
    the one that pushes with NOTIFY (trial S: the misspelt name's was,
    and nothing of the account was watched)."""
    need_binaries()
    dc = server(notify=True)
    mw = start(dc, mailboxes=["Typo1", "INBOX", FOLDERS[0]])
    ok(mw.wait_log(r"a/INBOX: watching \(IDLE\)", 20), "first: INBOX pushed",
       mw.log_tail(10))
    ok(mw.wait_log(r"a/Typo1: trying the mailbox again", 10),
       "first: the misspelt one is not there", mw.log_tail(10))
    want = append_each(dc, ["INBOX", FOLDERS[0]], "pushed")
    recs = mw.wait_hooks(2, PUSH)
    ok(keys(recs) == want, "first: INBOX's and the folder's mail announced "
       "within %d s" % PUSH, "got %s" % keys(recs))
    # Created, with mail at once: found with NOTIFY, and the mail
    # announced (trial T).
    dc.create_mailbox("alice", "Typo1")
    want += append_each(dc, ["Typo1"], "filed at once")
    recs = mw.wait_hooks(3, 20)
    ok(keys(recs) == sorted(want), "first: the mail filed into it once "
       "created announced", "got %s" % keys(recs))
    finish(mw)
    dc.stop()


def test_missing_created():
    """(b) A misspelt mailbox created on the server later: found at the
    next check, and given back its connection (its place in the list
    comes before the folder that then gives way), once."""
    need_binaries()
    dc = server(notify=False)
    # 4 mailboxes for 2 connections beside INBOX's and the checking one.
    mw = start(dc, mailboxes=["INBOX", "Typo1"] + FOLDERS[:3],
               max_connections=4, poll_interval=POLL)
    ok(mw.wait_log(r"a/%s: watching \(IDLE\)" % re.escape(FOLDERS[1]),
                   15), "created: the folder after it pushed meanwhile",
       mw.log_tail(10))
    # Created, and mail filed into it before the check finds it
    # (trial T: that message was taken as there before, as at a first
    # run, and never announced).
    dc.create_mailbox("alice", "Typo1")
    want = append_each(dc, ["Typo1"], "filed at once")
    ok(mw.wait_log(r"a/Typo1: watching \(IDLE\)", CHECKED),
       "created: pushed once the check found it", mw.log_tail(10))
    recs = mw.wait_hooks(1, PUSH)
    ok(keys(recs) == want, "created: the mail filed at once announced",
       "got %s" % keys(recs))
    want += append_each(dc, ["Typo1"], "created")
    recs = mw.wait_hooks(2, PUSH)
    ok(keys(recs) == want, "created: its next mail announced within %d s"
       % PUSH, "got %s" % keys(recs))
    n = dc.connections("alice")
    ok(n <= 4, "created: at most 4 connections (%d)" % n)
    tries = len(re.findall(r"a/Typo1: C: \S+ EXAMINE", mw.log()))
    ok(tries <= 3, "created: no EXAMINE loop (%d)" % tries)
    finish(mw)
    dc.stop()


def test_missing_counted():
    """(a) NOTIFY and a misspelt name: the status line counts the
    mailboxes watched and the connections open, and names the one that
    is not there (trial R read "6 mailboxes over 5 connections" where 2
    were open)."""
    need_binaries()
    dc = server(notify=True)
    mw = start(dc, mailboxes=["INBOX", FOLDERS[0], "Typo1"])
    ok(mw.wait_log(r"a/Typo1: trying the mailbox again", 15),
       "counted: the misspelt one is not there", mw.log_tail(10))
    want = r"; a: 2 mailboxes over (\d) connections? \(NOTIFY\); " \
           r"a/Typo1: cannot open the mailbox"
    ok(wait_until(lambda: re.search(want, status_line(mw)), 5),
       "counted: 2 mailboxes watched, Typo1 named", status_line(mw))
    m = re.search(want, status_line(mw))
    n = dc.connections("alice")
    ok(m and int(m.group(1)) == n,
       "counted: the connections said are those open (%d)" % n,
       status_line(mw))
    finish(mw)
    dc.stop()


def test_limit_lowers_budget():
    """(e) A server that allows fewer connections than max_connections
    (Dovecot at 3, no NOTIFY): the logins refused with [LIMIT] lower the
    budget, every mailbox is still watched, mail in the last one is
    announced once."""
    need_binaries()
    names = ["INBOX"] + FOLDERS[:5]
    dc = mwtest.Dovecot(conn_limit=3, notify=False)
    dc.create_mailboxes("alice", names[1:])
    mw = start(dc, mailboxes=names, max_connections=BUDGET,
               poll_interval=POLL)
    wait_watched(mw, "[LIMIT]", names)
    # mailwatch logs in one connection at a time, so Dovecot's count is
    # exact (simultaneous logins once got all 5 through at 3).
    ok(mw.wait_log(r"%s: the server limits connections: using at "
                   r"most \d" % ACCOUNT, 10),
       "[LIMIT]: the lower budget is logged", mw.log_tail(10))
    n = dc.connections("alice")
    ok(n <= 3, "[LIMIT]: at most the server's 3 connections (%d)" % n)
    want = append_each(dc, [names[-1]], "limited")
    recs = mw.wait_hooks(1, CHECKED)
    ok(keys(recs) == want, "[LIMIT]: mail in the last mailbox announced",
       "got %s" % keys(recs))
    exactly_once(mw, want, "[LIMIT]")
    finish(mw)


def withdraw_each(dc, mw, nd, names, deadline, what):
    """For each of names: one message delivered, its notification shown,
    then the message marked read as another client would: ok() that the
    notification is closed within deadline."""
    for name in names:
        shown_before = len(nd.records())
        (_, uid), = append_each(dc, [name], "read")
        if not ok(nd.wait_records(shown_before + 1, deadline),
                  "%s: %s notified" % (what, name), mw.log_tail(10)):
            continue
        shown = nd.records()[-1]["id"]
        mark_seen(dc, name, uid)
        ok(wait_until(lambda: shown in {r["id"] for r in
                                        nd.records("CloseNotification")},
                      deadline),
           "%s: read elsewhere closes the notification (%s)" % (what, name),
           mw.log_tail(10))


def test_notify_over_100():
    """Dovecot refuses a NOTIFY SET naming more than 100 mailboxes: with
    more, NOTIFY follows the personal namespace and every mailbox is still
    pushed over one connection (and one to fetch), at the stock limit."""
    need_binaries()
    folders = ["Many %03d" % i for i in range(1, 111)]
    dc = mwtest.Dovecot(conn_limit=None)
    dc.create_mailboxes("alice", folders + ["Not watched"])
    acct = dc.account("alice", mailboxes=["INBOX"] + folders)
    acct.update(poll_interval=POLL)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "burst": 0, "on_new_mail": "{hook}"},
        "account " + ACCOUNT: acct,
    })
    ok(mw.wait_log(r"watching 111 mailboxes with IDLE and NOTIFY",
                   WATCH_ALL),
       "NOTIFY follows INBOX and all 110 folders", mw.log_tail(10))
    ok("NOTIFICATIONOVERFLOW" not in mw.log(),
       "NOTIFY is not refused for too many names")
    wait_watched(mw, "over 100", ["INBOX"] + folders)
    ok(not re.search(r"Many \d+: (?:checked every|watching \(IDLE\))",
                     mw.log()),
       "no folder is checked or has its own IDLE", mw.log_tail(10))
    dc.append("alice", "Not watched", mwtest.make_message())
    for rnd in (1, 2):
        want = append_each(dc, [folders[49], folders[-1]],
                           "over 100, round %d" % rnd)
        ok(wait_until(lambda: set(want) <= set(keys(mw.hook_records())),
                      PUSH),
           "round %d: folder 50 (named) and 110 (personal) pushed" % rnd,
           "got %s" % keys(mw.hook_records()))
    ok(len(mw.hook_records()) == 4 and "Not watched" not in
       {r["MAILWATCH_MAILBOX"] for r in mw.hook_records()},
       "each announced once; the folder not watched is not announced",
       "got %s" % keys(mw.hook_records()))
    n = dc.connections("alice")
    ok(n <= 2, "at most 2 connections (%d)" % n)
    finish(mw)


def list_log_inode(dc):
    """The inode of alice's mailbox list index log, which Dovecot renames
    away when it rotates it (at 64 KiB, or 8 KiB once 5 min old)."""
    return os.stat(os.path.join(dc.maildir("alice"),
                                "dovecot.list.index.log")).st_ino


def test_notify_after_rotation():
    """Dovecot 2.3 pushes no more STATUS of other mailboxes once its
    mailbox list index log has rotated: after 400 messages at once in a
    folder that is not watched (enough to rotate it), new mail in a
    watched folder is still announced, and again later."""
    need_binaries()
    dc = server(notify=True)
    dc.create_mailbox("alice", "Archive")
    mw = start(dc)
    wait_watched(mw, "rotation")
    ino = list_log_inode(dc)
    with dc.client("alice") as c:
        c.append_many("Archive", [mwtest.make_message("archived %d" % i)
                                  for i in range(400)])
    ok(list_log_inode(dc) != ino, "the list index log rotated")
    for rnd in (1, 2):
        want = append_each(dc, [FOLDERS[2]], "after rotation %d" % rnd)
        # The push may wait for NOTIFY to be set again (5 s after the
        # last time).
        ok(wait_until(lambda: set(want) <= set(keys(mw.hook_records())),
                      PUSH + 5),
           "after the rotation: new mail in a folder announced (%d)" % rnd,
           mw.log_tail(10))
    ok(len(mw.hook_records()) == 2, "each announced once; nothing from "
       "the folder not watched", "got %s" % keys(mw.hook_records()))
    finish(mw)


def test_notify_recreated():
    """A folder followed by NOTIFY's STATUS alone is deleted and created
    again (a new UIDVALIDITY) while mailwatch runs, then gets more mail
    than it had: the UID FETCH that the fetcher sends with its EXAMINE,
    from where the old folder ended, is not what the EXAMINE calls for
    (the date scan), and the scan's messages are announced, each once."""
    need_binaries()
    dc = server(notify=True)
    mw = start(dc)
    wait_watched(mw, "recreated")
    folder = FOLDERS[4]

    def announced():
        return sorted((r["MAILWATCH_UIDVALIDITY"], int(r["MAILWATCH_UID"]))
                      for r in mw.hook_records()
                      if r["MAILWATCH_MAILBOX"] == folder)

    append_each(dc, [folder], "old")
    mw.wait_hooks(1, PUSH)
    old = announced()
    # INTERNALDATE counts in seconds: the new mail must come in a later
    # second than the folder was last seen whole.
    mwtest.quiet(1.5)
    dc.delete_mailbox("alice", folder)
    dc.create_mailbox("alice", folder)
    uids = [u for _, u in append_each(dc, [folder] * 3, "new")]
    uv = str(dc.status("alice", folder)["UIDVALIDITY"])
    want = old + [(uv, u) for u in uids]
    wait_until(lambda: len(announced()) >= len(want), CHECKED)
    mw.settle(PUSH)
    ok(announced() == sorted(want), "recreated: the new folder's 3 "
       "messages announced once each, the old one not again",
       "want %s\ngot  %s\n%s" % (sorted(want), announced(),
                                  mw.log_tail(20)))
    ok(re.search(r"UIDVALIDITY changed", mw.log()),
       "recreated: the log says the UIDVALIDITY changed")
    no_limit_refusal(dc, mw, "recreated")
    finish(mw)


def test_withdraw_notify():
    """(d) NOTIFY: a notification is withdrawn when its message is read
    elsewhere, in INBOX (selected) and in a folder NOTIFY follows with
    STATUS alone."""
    need_binaries()
    dc = server(notify=True)
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    mw = start(dc, bus=bus, notify=True)
    wait_watched(mw, "withdraw")
    withdraw_each(dc, mw, nd, ["INBOX", FOLDERS[4]], PUSH,
                  "withdraw (NOTIFY)")
    finish(mw)


def test_withdraw_swept():
    """(d) Without NOTIFY: a notification is withdrawn when its message is
    read elsewhere in a folder checked every poll_interval."""
    need_binaries()
    dc = server(notify=False)
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    mw = start(dc, bus=bus, notify=True, max_connections=BUDGET,
               poll_interval=POLL)
    wait_watched(mw, "withdraw (checked)")
    withdraw_each(dc, mw, nd, [FOLDERS[-1]], CHECKED, "withdraw (checked)")
    # The folder was the last one the fetcher EXAMINEd: its checks must
    # not go by that stale view (Dovecot answers STATUS of a selected
    # mailbox from it).
    want = append_each(dc, [FOLDERS[-1]], "again")
    ok(wait_until(lambda: want[0] in keys(mw.hook_records()), CHECKED),
       "checked: more mail in the folder last fetched is announced",
       mw.log_tail(10))
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_notify_stock_limit, test_budget_without_notify,
                test_notify_over_100, test_notify_after_rotation,
                test_restart_catch_up, test_limit_lowers_budget,
                test_notify_recreated, test_withdraw_notify,
                test_withdraw_swept, test_outage_checked,
                test_checked_mail_before_loss, test_checked_mail_before_stop,
                test_missing_gives_way, test_missing_in_a_row,
                test_missing_first_notify, test_missing_created,
                test_missing_counted)
