#!/usr/bin/python3
"""Hostile server, the responses NOTIFY (RFC 5465) and the fetch mode
brought (issue 11): pushed FETCH of the selected mailbox without a UID,
with UID 0, a UID below the mark, a UID of 2^32, a malformed or huge
ENVELOPE; pushed STATUS of a mailbox not asked about, UIDNEXT going
backwards, UIDVALIDITY 0 or changing, absurd numbers, missing items, an
unterminated list; 10,000 STATUS pushes in one burst; NOTIFY answered NO
or BAD, or OK with no STATUS; "* NO [NOTIFICATIONOVERFLOW]"; the
fetcher's EXAMINE answered NO; [LIMIT] at every login; BYE during NOTIFY.

What the user sees is asserted for each: the hook runs once for every
good message (never lost, never twice), the process lives, a log line
says what happened, and a variant costs at most one session (one
reconnect). Real Dovecot cannot be made to send these: each runs against
tests/lib/fakeimap.py on 127.0.0.1 (tls = none), watching INBOX (the
NOTIFY connection's selected mailbox) and two more, Work and Lists."""

import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment, wait_until  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import FakeImap, Hostile, envelope, fetch_line  # noqa: E402

CAPS = fakeimap.DEFAULT_CAPS + " NOTIFY"
OTHERS = ("Work", "Lists")
MAILBOXES = ["INBOX"] + list(OTHERS)
# Seconds (scaled) until an EXISTS whose FETCH did not come is fetched:
# NOTIFY_GRACE (2 s, src/session.c) plus a fetch.
GRACE = 2 + 8


def start(what, caps=CAPS, notify_ok=True, account=None, srv_setup=None,
          n_old=3, wait=True, sd_notify=False):
    """A FakeImap with INBOX (n_old old messages), Work and Lists (one old
    message each), and mailwatch watching the three with the recording
    hook; with wait, waits until the first connection is in IDLE (and,
    notify_ok, until the log says NOTIFY follows all three)."""
    srv = FakeImap(password=Hostile.PASSWORD, caps=caps)
    for name in OTHERS:
        srv.add_box(name)
        srv.add_message(mailbox=name, notify=False,
                        internaldate=time.time() - 3600)
    if srv_setup:
        srv_setup(srv)
    acc = {"mailboxes": MAILBOXES}
    acc.update(account or {})
    h = Hostile(srv=srv, n_old=n_old, account=acc, wait_idle=False,
                sd_notify=sd_notify)
    h.expected = []
    if not wait:
        return h
    if notify_ok:
        h.log_line(r"fake: watching 3 mailboxes with IDLE and NOTIFY",
                   what + ": NOTIFY follows the three")
    h.idle_ok(msg="%s: first connection reached IDLE" % what)
    return h


def deliver(h, mailbox, subject, notify=True):
    """A good message in mailbox, expected once; returns its UID."""
    uid = h.srv.add_message(subject=subject, mailbox=mailbox, notify=notify)
    h.expected.append((mailbox, uid))
    return uid


def max_open(srv):
    """The most connections that were open at once so far."""
    edges = []
    for c in list(srv.conns):
        edges.append((c.t_open, 1))
        if c.t_close is not None:
            edges.append((c.t_close, -1))
    cur = most = 0
    for _, d in sorted(edges):  # at the same time, a close first
        cur += d
        most = max(most, cur)
    return most


def in_idle(srv, n, timeout=10):
    """Waits (timeout s, scaled) until n of srv's connections are in
    IDLE."""
    return wait_until(lambda: len([c for c in srv.open_conns()
                                   if c.idle_tag]) == n, timeout)


def cpu_seconds(pid):
    """User + system CPU seconds process pid used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keys(h):
    return sorted((r["MAILWATCH_MAILBOX"], int(r["MAILWATCH_UID"]))
                  for r in h.mw.hook_records())


def announced(h, what, timeout=10, settle=0.5):
    """Waits for a hook run for every (mailbox, UID) in h.expected and for
    every hook started to end, then settle seconds (scaled) more; asserts
    each ran exactly once and nothing else did, and that mailwatch runs."""
    want = sorted(h.expected)
    wait_until(lambda: set(want) <= set(keys(h)) or not h.mw.running(),
               timeout)
    h.mw.settle(settle, timeout)
    got = keys(h)
    ok(got == want, "%s: the hook ran once for each good message %s" %
       (what, want), "hook runs: %s" % got)
    ok(h.mw.running(), "%s: mailwatch alive" % what, h.mw.log_tail(10))


def notify_sessions(srv):
    """Numbers of the connections that sent NOTIFY SET, in order, each
    once (a connection sets it again after a burst of pushes)."""
    return list(dict.fromkeys(
        no for no, ln in srv.commands_of(r"^m\d+ NOTIFY SET ")))


def notify_conn(h, what, timeout=10):
    """The connection of the latest NOTIFY session, once in IDLE."""
    nos = notify_sessions(h.srv)
    c = h.srv.wait_idle(timeout, nos[-1]) if nos else None
    ok(c is not None, "%s: the NOTIFY connection is in IDLE" % what)
    return c


def costs_at_most_one_session(h, what, before, reconnect):
    """Asserts that exactly one NOTIFY session (reconnect True) or none
    was lost since the list before (notify_sessions() then)."""
    after = notify_sessions(h.srv)
    lost = len(after) - len(before)
    want = 1 if reconnect else 0
    ok(lost == want, "%s: %s" % (what, "one reconnect" if reconnect
                                  else "no reconnect"),
       "NOTIFY sessions before %s, after %s" % (before, after))


def push_inbox(h, what, push, log_rx, reconnect=False, n=1, subject=None):
    """n good messages arrive in INBOX (the NOTIFY connection's selected
    mailbox) and the server pushes push([(seq, uid), ...]) (bytes) for
    them instead of their EXISTS and FETCH; asserts the log line, the hook
    once for each, and the cost in sessions."""
    srv = h.srv
    conn = notify_conn(h, what)
    before = notify_sessions(srv)
    mark = h.mw.mark()
    msgs = []
    with srv.lock:
        for _ in range(n):
            uid = srv.add_message(subject=subject or what, notify=False)
            msgs.append((srv.exists(), uid))
        conn.reported = srv.exists()
    h.expected += [("INBOX", uid) for _, uid in msgs]
    conn.send(push(msgs))
    h.log_line(log_rx, what, timeout=GRACE, since=mark)
    if reconnect:
        wait_until(lambda: len(notify_sessions(srv)) > len(before), 10)
        notify_conn(h, what)
    announced(h, what, timeout=GRACE)
    costs_at_most_one_session(h, what, before, reconnect)


# ---------------------------------------------------------------------------
# Pushed FETCH of the selected mailbox


def test_pushed_fetch():
    """Each bad push in turn on the same mailwatch. A FETCH it cannot
    take as the message's (no UID, UID 0, a UID below the mark) is ignored
    and the message fetched after NOTIFY_GRACE; one the codec refuses
    (UID 2^32, a malformed ENVELOPE) costs the session, and the
    reconnect's catch-up finds the message; one over the codec's limits
    (a 100 KB subject) is fetched again, header fields only."""
    what = "pushed FETCH"
    h = start(what)
    srv = h.srv

    def good(msgs):
        (seq, uid), = msgs
        return b"* %d EXISTS\r\n" % seq + fetch_line(seq, srv.find(uid)[1])
    push_inbox(h, "a good push", good, r"new mail UID \d+ .*a good push")
    ok(not srv.commands_of(r"^m\d+ UID FETCH"),
       "a good push: announced from the push, nothing fetched")

    def not_theirs(msgs):
        # Three new messages; the FETCH of the first has no UID, the
        # second's says UID 0, the third's an old UID (below the mark).
        (s1, _), (s2, _), (s3, _) = msgs
        return (b"* %d EXISTS\r\n" % s3 +
                b"* %d FETCH (FLAGS () ENVELOPE %s)\r\n" %
                (s1, envelope(subject="no UID")) +
                b"* %d FETCH (UID 0 FLAGS () ENVELOPE %s)\r\n" %
                (s2, envelope(subject="UID 0")) +
                b"* %d FETCH (UID 2 FLAGS () ENVELOPE %s)\r\n" %
                (s3, envelope(subject="UID 2, below the mark")))
    push_inbox(h, "pushed FETCH without UID, with UID 0, with a UID "
               "below the mark", not_theirs,
               r"3 new messages came without a FETCH to take \(NOTIFY\): "
               r"fetching", n=3)

    def uid_2_32(msgs):
        (seq, uid), = msgs
        return (b"* %d EXISTS\r\n* %d FETCH (UID 4294967296 FLAGS () "
                b"ENVELOPE " % (seq, seq) + envelope(subject="2^32") +
                b")\r\n")
    push_inbox(h, "pushed FETCH with UID 2^32", uid_2_32,
               r"bad response: .*number out of range", reconnect=True)

    def bad_envelope(msgs):
        (seq, uid), = msgs
        return (b"* %d EXISTS\r\n* %d FETCH (UID %d FLAGS () ENVELOPE "
                b'("Mon, 1 Jan 2024" "short" ((NIL NIL "a")) NIL))\r\n'
                % (seq, seq, uid))
    push_inbox(h, "pushed FETCH with a malformed ENVELOPE", bad_envelope,
               r"bad response: ", reconnect=True)

    def huge(msgs):
        (seq, uid), = msgs
        return (b"* %d EXISTS\r\n* %d FETCH (UID %d FLAGS () ENVELOPE "
                % (seq, seq, uid) +
                envelope(subject="huge " + "x" * 100000) + b")\r\n")
    push_inbox(h, "pushed FETCH with a huge ENVELOPE", huge,
               r"over the limits.*fetching From, Subject",
               subject="huge, headers only")
    recs = h.mw.hook_records()
    ok(recs and recs[-1].get("MAILWATCH_SUBJECT") == "huge, headers only",
       "pushed FETCH with a huge ENVELOPE: announced with the subject "
       "from its header fields", repr(recs[-1:]))
    h.memory_ok(what)
    h.finish(what)


# ---------------------------------------------------------------------------
# Pushed STATUS of the other mailboxes


def examined(srv):
    """The mailboxes EXAMINEd so far (every connection), in order."""
    return [ln.split(" ", 2)[2] for no, ln in srv.commands_of(
        r"^m\d+ EXAMINE ")]


def push_status(h, what, lines, log_rx, mailbox="Work", reconnect=False,
                then_good=True, trace=False):
    """A good message arrives in mailbox, and the server pushes lines
    (str, each a response; or a function that returns them, called once
    the message is there) on the NOTIFY connection, then (then_good) the
    mailbox's true STATUS; asserts the log line (trace: a line of the -v
    protocol trace, for what is ignored without a word), the hook once
    for the message, and the cost in sessions."""
    srv = h.srv
    conn = notify_conn(h, what)
    before = notify_sessions(srv)
    mark = h.mw.mark()
    uid = srv.add_message(subject=what, notify=False, mailbox=mailbox)
    h.expected.append((mailbox, uid))
    if callable(lines):
        lines = lines()
    conn.send("".join(ln + "\r\n" for ln in lines))
    if trace:
        ok(h.mw.wait_log(log_rx, 10, since=mark),
           "%s: the trace shows it" % what)
    else:
        h.log_line(log_rx, what, since=mark)
    if reconnect:
        wait_until(lambda: len(notify_sessions(srv)) > len(before), 10)
    elif then_good:
        srv.notify_all(mailbox)
    notify_conn(h, what)
    announced(h, what)
    costs_at_most_one_session(h, what, before, reconnect)


def test_pushed_status():
    """Each bad STATUS push in turn on the same mailwatch: what it can
    take (a mailbox not asked about, UIDNEXT going backwards, UIDVALIDITY
    0 or changing, absurd numbers, items missing) costs nothing, and what
    the codec refuses (a number over 64 bits, an unterminated list) costs
    the session; the good message is announced once either way."""
    what = "pushed STATUS"
    h = start(what)
    srv = h.srv
    srv.add_box("Spam")
    push_status(h, "STATUS of mailboxes not asked about",
                ["* STATUS Spam (MESSAGES 5 UIDNEXT 6 UIDVALIDITY 9 "
                 "UNSEEN 5)", "* STATUS INBOX (MESSAGES 50 UIDNEXT 51)",
                 "* STATUS Nowhere (MESSAGES 1 UIDNEXT 2)"],
                r"fake: STATUS of Spam, which is not watched: ignored")
    ok(not [m for m in examined(srv) if m not in ("INBOX", "Work")],
       "STATUS of mailboxes not asked about: nothing else EXAMINEd",
       repr(examined(srv)))

    n = len(examined(srv))
    # Without UNSEEN: a drop in it would rightly make mailwatch look at
    # the notifications it still shows there.
    push_status(h, "STATUS with UIDNEXT going backwards",
                ["* STATUS Work (MESSAGES 1 UIDNEXT 2)",
                 "* STATUS Work (MESSAGES 1 UIDNEXT 1)"],
                r"fake/Work: STATUS UIDNEXT 1 MESSAGES 1")
    ok(examined(srv)[n:] == ["Work"],
       "STATUS with UIDNEXT going backwards: no fetch for it",
       repr(examined(srv)[n:]))

    uidnext = srv.uidnext("Work")
    push_status(h, "STATUS with UIDVALIDITY 0",
                ["* STATUS Work (MESSAGES 9 UIDNEXT %d UIDVALIDITY 0 "
                 "UNSEEN 9)" % (uidnext + 1)],
                r"fake/Work: new mail UID %d " % uidnext,
                then_good=False)

    n = len(examined(srv))
    push_status(h, "STATUS with a UIDVALIDITY that is not the mailbox's",
                ["* STATUS Work (MESSAGES 3 UIDNEXT 2 UIDVALIDITY 3000 "
                 "UNSEEN 0)"],
                r"fake/Work: STATUS UIDVALIDITY 3000 UIDNEXT 2")
    ok(len(examined(srv)) - n <= 2 and not h.log_lines(
        r"UIDVALIDITY changed"),
       "STATUS with a UIDVALIDITY that is not the mailbox's: a look, "
       "no change", repr(examined(srv)[n:]))

    lists = srv.box("Lists")
    with srv.lock:
        lists.uidvalidity = 2000
        for i, m in enumerate(lists.messages):
            m.uid = 1 + i
        lists.next_uid = 1 + len(lists.messages)
    push_status(h, "STATUS with a new UIDVALIDITY (mailbox recreated)",
                lambda: [srv.status_line("Lists", (
                    "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"))],
                r"fake/Lists: UIDVALIDITY changed from 1002 to 2000",
                mailbox="Lists", then_good=False)
    recs = [r for r in h.mw.hook_records()
            if r["MAILWATCH_MAILBOX"] == "Lists"]
    ok([r.get("MAILWATCH_UIDVALIDITY") for r in recs] == ["2000"],
       "STATUS with a new UIDVALIDITY: announced with it", repr(recs))

    push_status(h, "STATUS with absurd numbers",
                ["* STATUS Work (MESSAGES 4294967296 UIDNEXT 4294967295 "
                 "UIDVALIDITY 4294967295 UNSEEN 18446744073709551615 "
                 "HIGHESTMODSEQ 18446744073709551615)",
                 "* STATUS Work (UIDNEXT 4294967296 UIDVALIDITY 1)"],
                r"fake/Work: STATUS UIDVALIDITY 4294967295 UIDNEXT "
                r"4294967295")

    push_status(h, "STATUS with items missing",
                ["* STATUS Work ()", "* STATUS Work (MESSAGES 3 UNSEEN 1)",
                 "* STATUS Work (UIDNEXT 0)",
                 "* STATUS Work (X-UNKNOWN (1 2) MESSAGES 3)"],
                r"S: \* STATUS Work \(X-UNKNOWN", trace=True)

    push_status(h, "STATUS with a number over 64 bits",
                ["* STATUS Work (MESSAGES 3 UIDNEXT 18446744073709551616)"],
                r"bad response: .*number out of range", reconnect=True)

    push_status(h, "STATUS with an unterminated list",
                ["* STATUS Work (MESSAGES 3 UIDNEXT 9"],
                r"bad response: .*unterminated STATUS", reconnect=True)
    h.memory_ok(what)
    h.finish(what)


FLOOD = 10000


def test_status_flood():
    """10,000 STATUS pushes in one burst: half of them the same news of
    Work (one new message), half of mailboxes nobody asked about. Memory
    and CPU stay bounded, Work is fetched a few times at most (not once
    per push), the connection is kept, and the message in Work and the
    one pushed in INBOX after the burst are announced once."""
    what = "%d STATUS pushes in one burst" % FLOOD
    h = start(what)
    srv = h.srv
    conn = notify_conn(h, what)
    before = notify_sessions(srv)
    n_examined = len(examined(srv))
    deliver(h, "Work", "amid the flood", notify=False)
    news = srv.status_line("Work")
    burst = "".join(
        news + "\r\n" if i % 2 else
        "* STATUS Box%05d (MESSAGES %d UIDNEXT %d UNSEEN 1)\r\n" %
        (i, i, i + 1) for i in range(FLOOD))
    cpu = cpu_seconds(h.mw.pid())
    conn.send(burst)
    deliver(h, "INBOX", "after the flood")
    announced(h, what, timeout=30)
    cpu = cpu_seconds(h.mw.pid()) - cpu
    comment("  %d bytes of STATUS; mailwatch's CPU time for them %.2f s" %
            (len(burst), cpu))
    ok(cpu < mwtest._t(10), "%s: bounded CPU time (%.2f s)" % (what, cpu))
    h.log_line(r"fake: STATUS of Box\d+, which is not watched: ignored",
               what)
    fetches = examined(srv)[n_examined:]
    ok(0 < len(fetches) <= 3, "%s: Work fetched %d times, not once per "
       "push" % (what, len(fetches)), repr(fetches[:10]))
    costs_at_most_one_session(h, what, before, False)
    h.memory_ok(what)
    h.finish(what)


# ---------------------------------------------------------------------------
# NOTIFY's reply


def test_notify_refused():
    """NOTIFY answered NO, then (another mailwatch) BAD: the other two
    mailboxes get an IDLE connection each, within max_connections = 3,
    and new mail in each of the three is announced once."""
    for verdict in ("NO [CANNOT] Too many mailboxes to follow",
                    "BAD Error in IMAP command NOTIFY: Invalid arguments"):
        what = "NOTIFY answered " + verdict.split()[0]

        def setup(srv, verdict=verdict):
            srv.handlers["NOTIFY"] = lambda c, t, a: c.sendline(
                "%s %s" % (t, verdict))
        h = start(what, notify_ok=False, srv_setup=setup,
                  account={"max_connections": 3})
        srv = h.srv
        h.log_line(r"fake/INBOX: server refused NOTIFY: %s" %
                   re.escape(verdict), what)
        for name in OTHERS:
            h.log_line(r"fake/%s: watching \(IDLE\)" % name, what +
                       ": %s has its own IDLE" % name)
        ok(in_idle(srv, 3),
           "%s: three connections in IDLE" % what)
        for name in MAILBOXES:
            deliver(h, name, "after " + what)
        announced(h, what)
        ok(max_open(srv) <= 3, "%s: at most max_connections = 3 "
           "connections (%d)" % (what, max_open(srv)))
        h.finish(what)


def answer_without_status(srv, conn, tag):
    """NOTIFY SET answered OK with no STATUS of the other mailboxes: the
    server follows only the selected one."""
    conn.notify_selected = True
    conn.notify_boxes = set()
    srv.ok(conn, tag, "NOTIFY completed")


def no_notify_status(srv):
    """srv_setup: every NOTIFY SET is answered without a STATUS."""
    srv.handlers["NOTIFY"] = (
        lambda conn, tag, args: answer_without_status(srv, conn, tag))


def test_notify_without_status():
    """NOTIFY answered OK with no STATUS of the other mailboxes (the
    server follows none of them): each gets an IDLE connection of its
    own, and new mail in each of the three is announced once."""
    what = "NOTIFY answered OK without a STATUS"

    h = start(what, notify_ok=False, srv_setup=no_notify_status)
    srv = h.srv
    for name in OTHERS:
        h.log_line(r"fake/%s: NOTIFY reported nothing of this mailbox" %
                   name, what + ": " + name)
        h.log_line(r"fake/%s: watching \(IDLE\)" % name, what +
                   ": %s has its own IDLE" % name)
    h.log_line(r"fake: watching 1 mailbox with IDLE and NOTIFY", what)
    ok(in_idle(srv, 3),
       "%s: three connections in IDLE" % what)
    for name in MAILBOXES:
        deliver(h, name, "after " + what)
    announced(h, what)
    ok(max_open(srv) <= 5, "%s: at most max_connections = 5 connections "
       "(%d)" % (what, max_open(srv)))
    h.finish(what)


def test_notify_status_back():
    """The first NOTIFY SET gets no STATUS of the other mailboxes (a
    server's passing fault: Dovecot's broken list index), the next ones
    do: the two go back from connections of their own to NOTIFY, and
    mail in each is announced once."""
    what = "NOTIFY's STATUS back"
    calls = []

    def setup(srv):
        def notify(conn, tag, args):
            calls.append(args)
            if len(calls) == 1:
                answer_without_status(srv, conn, tag)
            else:
                srv._cmd_notify(conn, tag, args)
        srv.handlers["NOTIFY"] = notify
    h = start(what, notify_ok=False, srv_setup=setup,
              account={"idle_timeout": 2})
    srv = h.srv
    h.log_line(r"fake: watching 1 mailbox with IDLE and NOTIFY",
               what + ": first, NOTIFY follows INBOX only")
    h.log_line(r"fake: watching 3 mailboxes with IDLE and NOTIFY",
               what + ": then the three again")
    ok(in_idle(srv, 1),
       "%s: one connection in IDLE again" % what)
    for name in MAILBOXES:
        deliver(h, name, "after " + what)
    announced(h, what)
    h.finish(what)


def test_checked_stay_watched():
    """NOTIFY follows only INBOX (no STATUS of the others at any NOTIFY
    SET) and max_connections leaves no room: the others are checked every
    poll_interval, and count as watched across the NOTIFY SETs repeated
    meanwhile (a status bar showed them as not watched between checks)."""
    what = "checked beside NOTIFY"

    h = start(what, notify_ok=False, srv_setup=no_notify_status, wait=False,
              account={"idle_timeout": 2, "max_connections": 2,
                       "poll_interval": 10}, sd_notify=True)
    h.log_line(r"fake: 2 mailboxes NOTIFY does not follow: 0 with IDLE, 2 "
               r"checked every 10 s", what)
    ok(h.mw.wait_sd_notify(r"^STATUS=3/3 mailboxes watched", 15),
       "%s: all three watched once checked" % what,
       (h.mw.sd_notify_messages() or [""])[-1])
    seen = len(h.mw.sd_notify_messages())
    mwtest.quiet(5)  # two NOTIFY SETs at least (idle_timeout = 2)
    later = [m for m in h.mw.sd_notify_messages()[seen:]
             if m.startswith("STATUS=")]
    ok(not [m for m in later if not re.match(r"STATUS=3/3 ", m)],
       "%s: all three still count, across the NOTIFY SETs (%s)" % (
           what, later))
    n = len(re.findall(r"2 checked every 10 s", h.mw.log()))
    ok(n == 1, "%s: how they are checked is logged once, not at each "
       "NOTIFY SET (%d)" % (what, n))
    h.finish(what)


def test_silent_notify():
    """The server stops pushing without a word (Dovecot 2.3 does once its
    mailbox list index broke): mail in the other mailboxes is announced
    at the next IDLE renewal (idle_timeout), which sets NOTIFY again and
    gets the STATUS of each."""
    what = "NOTIFY gone silent"
    h = start(what, account={"idle_timeout": 2})
    for name in OTHERS:
        deliver(h, name, "never pushed " + name, notify=False)
    announced(h, what, timeout=2 + GRACE)
    h.finish(what)


def test_notification_overflow():
    """"* NO [NOTIFICATIONOVERFLOW]" (RFC 5465 5.8): the server stopped
    notifying, and says nothing of what comes next in the other
    mailboxes. mailwatch takes a new session to learn what it missed:
    mail that arrived in Work and INBOX meanwhile is announced once, and
    so is mail after."""
    what = "NO [NOTIFICATIONOVERFLOW]"
    h = start(what)
    srv = h.srv
    conn = notify_conn(h, what)
    before = notify_sessions(srv)
    mark = h.mw.mark()
    with srv.lock:
        conn.notify_boxes = None      # as after NOTIFY NONE
        conn.notify_selected = False
    conn.sendline("* NO [NOTIFICATIONOVERFLOW] Too many events, "
                  "notifications stopped")
    deliver(h, "Work", "in Work after the overflow")
    deliver(h, "INBOX", "in INBOX after the overflow")
    h.log_line(r"NOTIFICATIONOVERFLOW", what, since=mark)
    announced(h, what, timeout=GRACE)
    costs_at_most_one_session(h, what, before, True)
    notify_conn(h, what)
    deliver(h, "Work", "in Work later")
    announced(h, what + ", then new mail")
    h.finish(what)


def test_fetcher_examine_refused():
    """The fetcher's EXAMINE of Work answered NO, twice: logged, the
    fetcher keeps its connection, and the message is announced (once)
    without more mail coming: a mailbox the server refused is tried again
    with STATUS every poll_interval (10 s here) until it is answered.
    Mail that comes after is announced as ever."""
    what = "the fetcher's EXAMINE answered NO"
    poll = 10
    h = start(what, account={"poll_interval": poll})
    srv = h.srv
    before = notify_sessions(srv)
    # Refused twice: at the push, and at the STATUS of the NOTIFY re-set
    # that follows a push.
    for _ in range(2):
        srv.once("EXAMINE", lambda c, t, a: c.sendline(
            "%s NO [UNAVAILABLE] Mailbox is being rebuilt, try later" % t))
    deliver(h, "Work", "first, its EXAMINE refused")
    h.log_line(r"fake/Work: cannot watch this mailbox: NO \[UNAVAILABLE\]",
               what)
    announced(h, what + ", tried again after poll_interval",
              timeout=poll + 10)
    deliver(h, "Work", "second")
    deliver(h, "Lists", "in Lists")
    announced(h, what + ", then new mail")
    ok(srv.connection_count() == 2,
       "%s: the fetcher kept its connection" % what,
       "connections: %d" % srv.connection_count())
    costs_at_most_one_session(h, what, before, False)
    h.finish(what)


LIMIT = ("[LIMIT] Maximum number of connections from user+IP exceeded "
         "(mail_max_userip_connections=%d)")


def limit_logins(allowed, reply=lambda live, most: LIMIT % most):
    """A srv_setup for start(): a login while allowed[0] or more logged-in
    connections are open is answered "NO " + reply(open, allowed[0])."""
    def setup(srv):
        def refuse(conn):
            live = [no for no, _, _, good in srv.logins
                    if good and not srv.conn(no).closed]
            if len(live) < allowed[0]:
                return None
            return reply(len(live), allowed[0])
        srv.refuse_login = refuse
    return setup


def test_limit_at_every_login():
    """A server that refuses logins with [LIMIT] beyond `allowed`
    connections: first every login (nothing watched yet: retried with
    growing back-off, never taken for a bad password), then every login
    but the NOTIFY connection's: the budget of 3 goes down to 1 at once,
    and that one connection watches every mailbox. INBOX's and Work's
    mail are announced; the logins stay few."""
    what = "[LIMIT] at every login"
    allowed = [0]
    h = start(what, srv_setup=limit_logins(allowed), wait=False,
              account={"max_connections": 3})
    srv = h.srv
    t0 = time.monotonic()
    h.log_line(r"fake/INBOX: server refused the login for now: "
               r"NO \[LIMIT\]", what)
    def delays():
        return [float(x) for x in re.findall(
            r"fake/INBOX: reconnecting in ([\d.]+) s", h.mw.log())]
    # The second back-off is logged once the second refusal came back.
    ok(wait_until(lambda: len(srv.logins) >= 2 and len(delays()) >= 2, 10),
       "%s: refused twice" % what, repr(srv.logins))
    delays = delays()
    ok(len(delays) >= 2 and delays[1] > delays[0],
       "%s: the back-off grows (%s s)" % (what, delays))
    ok(not h.log_lines(r"not retrying"),
       "%s: not taken for a wrong password" % what)

    # INBOX's login, the fetcher's (refused; it may come before the mail:
    # a first run whose logins were refused catches up by date), then
    # the one connection's.
    n = len(srv.logins)
    allowed[0] = 1
    h.log_line(r"fake: watching 3 mailboxes with IDLE and NOTIFY",
               what + ", one connection allowed: NOTIFY", timeout=15)
    deliver(h, "INBOX", "one connection allowed")
    deliver(h, "Work", "needs the fetcher")
    h.log_line(r"fake: the server limits connections: using at most 1",
               what + ": the fetcher refused, the budget lowered")
    h.log_line(r"fake: watching 3 mailboxes with NOTIFY over one "
               r"connection", what + ": one connection for all")
    announced(h, what, timeout=15)
    # The one connection logs in as INBOX's closes: a server that has not
    # seen the close yet (the fake counts as Dovecot does) refuses it
    # once more, and the reconnect gets in.
    goods = [good for _, _, _, good in srv.logins[n:]]
    ok(goods in ([True, False, True], [True, False, False, True]),
       "%s: logins after: INBOX's, the fetcher refused, the one "
       "connection" % what, repr(srv.logins[n:]))
    budgets = [int(x) for x in re.findall(
        r"the server limits connections: using at most (\d+)", h.mw.log())]
    ok(budgets == [1], "%s: the budget went down to 1 at once" % what,
       repr(budgets))
    # Two connections (INBOX's, the fetcher), each backing off from 1 s,
    # doubling: about log2(t) attempts each in t seconds.
    t = time.monotonic() - t0
    bound = 2 * (2 + math.log2(1 + t))
    ok(len(srv.logins) <= bound, "%s: %d logins in %.1f s (at most %.1f)" %
       (what, len(srv.logins), t, bound), repr(srv.logins))
    h.finish(what)


def test_plain_no_limit():
    """Cyrus refuses a login beyond its maxlogins_per_user with a plain
    "NO Too many open connections", no [LIMIT]. Once the same password
    logged in on another connection, that NO is a limit, not a wrong
    password: the budget is lowered, and one connection watches every
    mailbox: INBOX's and Work's mail is announced."""
    what = "plain NO beyond the logins allowed"
    allowed = [1]
    h = start(what, srv_setup=limit_logins(
        allowed, lambda live, most: "Too many open connections (%d of %d "
        "for alice)" % (live, most)), account={"max_connections": 3})
    srv = h.srv
    deliver(h, "INBOX", "one connection allowed")
    deliver(h, "Work", "needs the fetcher")
    h.log_line(r"fake: login as alice failed: NO Too many open connections"
               r".*taken as a limit on connections", what)
    h.log_line(r"fake: the server limits connections: using at most 1",
               what + ": the budget lowered")
    h.log_line(r"fake: watching 3 mailboxes with NOTIFY over one "
               r"connection", what + ": one connection for all")
    ok(not h.log_lines(r"not retrying"),
       "%s: not taken for a wrong password" % what, h.mw.log_tail(10))
    announced(h, what, timeout=15)
    h.finish(what)


def test_limit_one_connection():
    """One connection left to the account (the user's other clients hold
    the rest) and the idle fetcher holds it when the NOTIFY connection
    drops: the NOTIFY connection is refused with [LIMIT], and one
    connection watches every mailbox: INBOX's and Work's mail is
    announced."""
    what = "[LIMIT], the fetcher in the way"
    allowed = [100]
    h = start(what, srv_setup=limit_logins(allowed),
              account={"max_connections": 3})
    deliver(h, "Work", "the fetcher connects")
    announced(h, what + ", first")
    allowed[0] = 1
    conn = notify_conn(h, what)
    mark = h.mw.mark()
    conn.sendline("* BYE Shutting down")
    conn.close()
    h.log_line(r"fake/INBOX: server refused the login for now: "
               r"NO \[LIMIT\]", what, since=mark)
    h.log_line(r"fake: watching 3 mailboxes with NOTIFY over one "
               r"connection", what + ": NOTIFY back, on one connection",
               timeout=15, since=mark)
    deliver(h, "INBOX", "pushed again")
    announced(h, what + ", INBOX with one connection", timeout=15)
    deliver(h, "Work", "with one connection")
    announced(h, what + ", Work with one connection", timeout=15)
    h.finish(what)


def on_one_connection(what):
    """start() with every login beyond the first refused with [LIMIT]
    once mailwatch is up: mail in Work makes it watch the three over one
    connection. Returns the harness."""
    allowed = [100]
    h = start(what, srv_setup=limit_logins(allowed),
              account={"max_connections": 3})
    allowed[0] = 1
    deliver(h, "Work", "needs the fetcher")
    h.log_line(r"fake: watching 3 mailboxes with NOTIFY over one "
               r"connection", what + ": one connection for all")
    announced(h, what + ", on one connection", timeout=15)
    return h


def test_one_connection_notify_refused():
    """On one connection (the server takes no more), the server refuses
    NOTIFY after a reconnect. Without NOTIFY one connection cannot watch
    every mailbox: INBOX gets its IDLE back, the rest wait for the
    checking connection the server refuses; INBOX's mail is announced
    once, and mailwatch runs on."""
    what = "one connection, then NOTIFY refused"
    h = on_one_connection(what)
    srv = h.srv

    def refuse(conn, tag, args):
        conn.sendline("%s NO [CANNOT] Not now" % tag)
    for _ in range(10):
        srv.once("NOTIFY", refuse)
    mark = h.mw.mark()
    conn = srv.conn(notify_sessions(srv)[-1])
    conn.sendline("* BYE Shutting down, back soon")
    conn.close()
    h.log_line(r"fake: server refused NOTIFY: NO \[CANNOT\]", what,
               since=mark)
    h.log_line(r"fake/INBOX: watching \(IDLE\)",
               what + ": INBOX in IDLE again", timeout=15, since=mark)
    deliver(h, "INBOX", "without NOTIFY")
    announced(h, what + ", INBOX without NOTIFY", timeout=15)
    h.finish(what)


def test_one_connection_status_lies():
    """On one connection, a server whose STATUS of Work says a UIDNEXT
    that its EXAMINE does not bear out: Work is caught up after the push,
    asked again with STATUS (mail that came while it was open is not
    pushed), and not a third time in a row without new mail: no round
    trips without end. Real mail in Work is still announced once."""
    what = "one connection, STATUS lies"
    h = on_one_connection(what)
    srv = h.srv
    truth = srv.status_line

    def lie(name, items=("MESSAGES", "UIDNEXT", "UNSEEN")):
        line = truth(name, items)
        if name != "Work":
            return line
        return re.sub(r"UIDNEXT (\d+)",
                      lambda m: "UIDNEXT %d" % (int(m.group(1)) + 5), line)
    srv.status_line = lie
    examined = len(srv.commands_of(r"EXAMINE Work"))
    srv.notify_all("Work")  # a STATUS push, with the lie
    mwtest.quiet(3)
    more = len(srv.commands_of(r"EXAMINE Work")) - examined
    ok(1 <= more <= 3, "%s: Work EXAMINEd %d times after the push, not "
       "without end" % (what, more))
    srv.status_line = truth
    deliver(h, "Work", "real mail after")
    announced(h, what + ", then real mail", timeout=15)
    h.finish(what)


def test_bye_during_notify():
    """"* BYE" in IDLE with NOTIFY set, then in place of the reconnect's
    NOTIFY reply: each costs one session, and what arrived in Work and
    INBOX while the connection was down is announced once."""
    what = "BYE during NOTIFY"
    h = start(what)
    srv = h.srv

    def bye(conn, tag, args):
        conn.sendline("* BYE [UNAVAILABLE] Shutting down, back soon")
        conn.close()
    srv.once("NOTIFY", bye)
    conn = notify_conn(h, what)
    before = notify_sessions(srv)
    mark = h.mw.mark()
    deliver(h, "Work", "while the connection was down", notify=False)
    deliver(h, "INBOX", "while the connection was down", notify=False)
    conn.sendline("* BYE Idle for too long")
    conn.close()
    h.log_line(r"fake/INBOX: server closed: BYE Idle for too long",
               what + " (in IDLE)", since=mark)
    h.log_line(r"fake/INBOX: server closed: BYE \[UNAVAILABLE\] Shutting "
               r"down", what + " (in place of NOTIFY's reply)", since=mark)
    wait_until(lambda: len(notify_sessions(srv)) >= len(before) + 2, 10)
    notify_conn(h, what)
    announced(h, what)
    after = notify_sessions(srv)
    ok(len(after) == len(before) + 2, "%s: two BYEs, two reconnects" % what,
       "NOTIFY sessions before %s, after %s" % (before, after))
    deliver(h, "Work", "after")
    announced(h, what + ", then new mail")
    h.finish(what)
def test_patterns_when_notify_fails():
    """mailboxes = *, and NOTIFY follows none of the other mailboxes (a
    trial's Dovecot broke its list index: NOTIFY reported 150 of 154 no
    more, and pushed no MailboxName either): they are checked every
    poll_interval, and the mailboxes are listed again with each check, so
    a folder created meanwhile is watched and its mail announced. It
    used to be listed only at a NOTIFY push, which never came."""
    what = "patterns, NOTIFY failing"
    poll = 10
    names = ["INBOX", "Work"]
    caps = CAPS + " LIST-EXTENDED SPECIAL-USE"

    def on_list(conn, tag, args):
        for name in names:
            conn.sendline('* LIST () "/" %s' % name)
        conn.sendline("%s OK LIST completed" % tag)

    def setup(srv):
        no_notify_status(srv)
        srv.handlers["LIST"] = on_list
    h = start(what, caps=caps, notify_ok=False, srv_setup=setup,
              account={"mailboxes": "*", "max_connections": 2,
                       "poll_interval": poll}, wait=False)
    srv = h.srv
    h.log_line(r"fake/Work: NOTIFY reported nothing of this mailbox", what)
    h.log_line(r"checked every %d s" % poll, what)
    srv.add_box("New")
    names.append("New")
    deliver(h, "New", "in a folder created meanwhile", notify=False)
    # The next check: up to poll s, 5 s late at most (timer slack).
    h.log_line(r"fake/New: a new mailbox: watching it",
               what + ": listed again at a check", timeout=poll + 10)
    announced(h, what, timeout=poll + 10)
    h.finish(what)


TESTS = [test_pushed_fetch, test_pushed_status, test_status_flood,
         test_notify_refused, test_notify_without_status,
         test_notify_status_back, test_checked_stay_watched,
         test_silent_notify,
         test_notification_overflow, test_fetcher_examine_refused,
         test_limit_at_every_login, test_plain_no_limit,
         test_limit_one_connection, test_one_connection_notify_refused,
         test_one_connection_status_lies,
         test_bye_during_notify, test_patterns_when_notify_fails]
# Arguments: names of the tests to run (all by default).
mwtest.main(*[t for t in TESTS if t.__name__ in sys.argv[1:] or
              not sys.argv[1:]])
