#!/usr/bin/python3
"""What a reconnect and a restart cost, with QRESYNC, with CONDSTORE alone
(as Gmail) and with neither, against the private Dovecot (2.3 offers
both; its imap_capability setting hides them), INBOX holding 2000
messages:

- a reconnect while a notification is shown (its message announced and
  unread, 150 messages filed read after it) asks for what changed, not
  for every message since: at most a few FETCH responses in the -v trace
  where mailwatch used to fetch the 150 envelopes again; the notification
  is still withdrawn when its message is read elsewhere afterwards;
- a restart fetches next to nothing; new mail after either is announced
  once."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402
from test_watch import finish, need_binaries  # noqa: E402

ACCOUNT = "a"
PUSH = 5        # deadline: delivery -> notification (Dovecot: < 1 s)
RECONNECT = 20  # deadline: kicked -> watching again (back-off included)
MOST = 5        # FETCH responses a resync may cost: what changed
# Read messages filed after the one shown (mailwatch used to fetch their
# envelopes again at each reconnect, up to 200 UIDs back).
FILED = 150
# The server's capabilities in each mode (NOTIFY hidden in all three, so
# that only the extension under test differs).
FULL = mwtest.DOVECOT_CAPABILITY
MODES = {
    "QRESYNC": FULL,
    "CONDSTORE only": FULL.replace(" QRESYNC", ""),
    "neither": FULL.replace(" CONDSTORE QRESYNC", ""),
}
FETCH_LINE = re.compile(r"S: \* \d+ FETCH ", re.M)


def server(caps):
    dc = mwtest.Dovecot(conn_limit=None, notify=True,
                        extra_conf="imap_capability = %s\n" % caps)
    msgs = [mwtest.make_message("old %d" % i) for i in range(2000)]
    dc.append_many("alice", "INBOX", msgs, flags=("\\Seen",), atomic=True)
    return dc


def start(dc, bus):
    return mwtest.Mailwatch({
        "general": {"notify": True, "burst": 0, "on_new_mail": "{hook}"},
        "account " + ACCOUNT: dc.account("alice"),
    }, bus=bus)


def watching(mw):
    """How many times a connection reached IDLE."""
    return mw.log().count("watching (IDLE)")


def deliver(dc, subject):
    """Delivers one message to INBOX without IMAP; returns its UID."""
    dc.deliver("alice", mwtest.make_message(subject))
    r = dc.doveadm("-f", "flow", "mailbox", "status", "-u", "alice",
                   "uidnext", "INBOX")
    return int(re.search(r"uidnext=(\d+)", r.stdout)[1]) - 1


def fetches_since(mw, offset):
    """The FETCH responses in the -v trace after offset."""
    return FETCH_LINE.findall(mw.log()[offset:])


def new_uids(mw):
    return sorted(int(r["MAILWATCH_UID"]) for r in mw.hook_records())


def closed(nd, shown):
    return shown in {r["id"] for r in nd.records("CloseNotification")}


def check_mode(what, caps):
    dc = server(caps)
    with dc.client("alice") as c:
        got = c.capabilities()
    ok(("QRESYNC" in got, "CONDSTORE" in got) ==
       ("QRESYNC" in caps, "CONDSTORE" in caps),
       "%s: the server shows what it should" % what, sorted(got))
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    mw = start(dc, bus)
    if not ok(wait_until(lambda: watching(mw) >= 1, RECONNECT),
              "%s: watching" % what, mw.log_tail(10)):
        return
    # One message announced and left unread, then FILED read ones filed
    # after it: the notification stays.
    first = deliver(dc, "keep me")
    ok(nd.wait_records(1, PUSH), "%s: new mail notified" % what)
    shown = nd.records()[-1]["id"]
    dc.append_many("alice", "INBOX",
                   [mwtest.make_message("filed %d" % i) for i in range(FILED)],
                   flags=("\\Seen",), atomic=True)
    wait_until(lambda: "UID %d" % (first + FILED) in mw.log(), PUSH)
    mw.settle()

    offset = len(mw.log())
    dc.kick("alice")
    ok(wait_until(lambda: watching(mw) >= 2, RECONNECT),
       "%s: watching again after the server dropped the connection"
       % what, mw.log_tail(10))
    n = len(fetches_since(mw, offset))
    ok(n <= MOST, "%s: the reconnect fetched %d messages (at most %d), "
       "not the %d after the one shown" % (what, n, MOST, FILED),
       mw.log()[offset:][-3000:])
    if "QRESYNC" in caps:
        ok(re.search(r"C: m\d+ EXAMINE INBOX \(QRESYNC \(\d+ \d+ %d\)\)"
                     % first, mw.log()[offset:]),
           "%s: the EXAMINE carried the shown message's UID" % what)

    mw.settle()
    dc.store("alice", "INBOX", [first], ["\\Seen"])
    ok(wait_until(lambda: closed(nd, shown), PUSH),
       "%s: read elsewhere after the reconnect: withdrawn" % what,
       mw.log_tail(10))

    later = deliver(dc, "after the reconnect")
    ok(wait_until(lambda: later in new_uids(mw), PUSH),
       "%s: new mail after the reconnect announced" % what)
    finish(mw, what + ": mailwatch")

    offset = len(mw.log())  # appended to
    seen = watching(mw)
    mw.start()
    mwtest._register(mw)
    ok(wait_until(lambda: watching(mw) > seen, RECONNECT),
       "%s: watching after a restart" % what, mw.log_tail(10))
    n = len(fetches_since(mw, offset))
    ok(n <= MOST, "%s: the restart fetched %d messages (at most %d)"
       % (what, n, MOST), mw.log()[offset:][-3000:])
    last = deliver(dc, "after the restart")
    ok(wait_until(lambda: last in new_uids(mw), PUSH),
       "%s: new mail after the restart announced" % what)
    mw.settle(1)
    uids = new_uids(mw)
    ok(uids == sorted([first, later, last]),
       "%s: each announced once, nothing else" % what,
       "got %s" % uids)
    finish(mw, what + ": mailwatch")
    dc.stop()


def test_qresync():
    need_binaries()
    check_mode("QRESYNC", MODES["QRESYNC"])


def test_condstore_only():
    need_binaries()
    check_mode("CONDSTORE only", MODES["CONDSTORE only"])


def test_neither():
    need_binaries()
    check_mode("neither", MODES["neither"])


if __name__ == "__main__":
    mwtest.main(test_qresync, test_condstore_only, test_neither)
