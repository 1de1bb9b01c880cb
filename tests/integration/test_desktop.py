#!/usr/bin/python3
"""Desktop behaviour against a real Dovecot and the recording notification
server: a burst becomes one summary that replaces itself, a notification is
withdrawn when its message is read or deleted elsewhere (also while
mailwatch had no connection), a click runs
on_click with the message's environment, and mail that arrived while
mailwatch was away is summarised above catch_up_max."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402


def message(i, sender="Ann Example <ann@example.org>"):
    return mwtest.make_message(subject="message %d" % i, from_=sender)


def setup(dc, bus, post=False, **account):
    mw = mwtest.Mailwatch(None, bus=bus, start=False)
    acct = dc.account("alice")
    acct.update(account)
    acct.setdefault("on_new_mail", mw.hook_cmd("new"))
    if post:
        acct["on_new_mail_post"] = mw.hook_cmd("post")
    mw.write_config({"general": {"notify": True}, "account test": acct})
    mw.start()
    ok(mw.wait_log(r"INBOX: watching \(IDLE\)", 15), "idle")
    return mw


def summaries(nd, mailbox="test/INBOX"):
    return [r for r in nd.records() if r["summary"].endswith(mailbox)]


def test_burst(dc, bus, nd):
    """Messages that come one by one are shown until the burst is more than
    burst: then one summary closes them and replaces itself."""
    mw = setup(dc, bus, burst=3)
    senders = ["Ann <ann@example.org>", "Bob <bob@example.org>",
               "Cy <cy@example.org>", "Di <di@example.org>",
               "Ed <ed@example.org>", "Flo <flo@example.org>"]
    for i, s in enumerate(senders[:3]):
        dc.append("alice", "INBOX", message(i, s))
        ok(len(mw.wait_hooks(i + 1, 20)) == i + 1,
           "burst: message %d ran its hook" % i)
    uids = dc.append_many("alice", "INBOX",
                          [message(i + 3, s)
                           for i, s in enumerate(senders[3:])])
    ok(len(mw.wait_hooks(6, 20)) == 6, "burst: every message ran its hook")

    def summary_done():
        return any(r["summary"] == "6 new messages in test/INBOX"
                   for r in nd.records())
    ok(wait_until(summary_done, 10), "burst: one summary says 6 messages")
    singles = [r for r in nd.records()
               if not r["summary"].endswith("test/INBOX")]
    sums = summaries(nd)
    ok(len(singles) == 3, "burst: 3 single notifications, then the "
       "summary (%d singles)" % len(singles))
    ok(all(s["replaces_id"] == sums[i - 1]["id"]
           for i, s in enumerate(sums) if i) and sums[0]["replaces_id"] == 0,
       "burst: each summary replaces the previous one, not stacking")
    ok(sums[-1]["body"] == "Ann, Bob, Cy, …",
       "burst: the first senders in the body (%r)" % sums[-1]["body"])
    ok(wait_until(lambda: {r["id"] for r in singles} <=
                  {r["id"] for r in nd.records("CloseNotification")}, 5),
       "burst: the single notifications are closed")
    ok(len(uids) == 3, "burst: 3 appended at the end")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "burst: clean exit")


def test_burst_at_once(dc, bus, nd):
    """More than burst messages that appear at once: one summary, and no
    single notification flashes before it."""
    mw = setup(dc, bus, burst=3)
    base = len(nd.records())
    senders = ["Ann <ann@example.org>", "Bob <bob@example.org>",
               "Cy <cy@example.org>", "Di <di@example.org>"]
    dc.append_many("alice", "INBOX",
                   [message(i, s) for i, s in enumerate(senders)],
                   atomic=True)
    ok(len(mw.wait_hooks(4, 20)) == 4,
       "burst at once: every message ran its hook")
    ok(len(nd.wait_records(base + 1, 10)) > base, "burst at once: notified")
    mwtest.quiet(1)  # an update of the summary would come by now
    ok(len(nd.records()) == base + 1,
       "burst at once: one notification only (%r)" %
       [r["summary"] for r in nd.records()[base:]])
    first = nd.records()[base]
    ok(first["summary"] == "4 new messages in test/INBOX" and
       first["body"] == "Ann, Bob, Cy, …",
       "burst at once: it is the summary of all 4 (%r, %r)" % (
           first["summary"], first["body"]))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "burst at once: clean exit")


def test_burst_mailboxes(dc, bus, nd):
    """A burst counts an account's mail in every mailbox: one message in
    each of 4 folders is 3 single notifications, then one summary that
    names the folders and closes them; so is mail that came to 4 folders
    while mailwatch was stopped."""
    boxes = ["Ma", "Mb", "Mc", "Md"]
    dc.create_mailboxes("alice", boxes)
    mw = setup(dc, bus, burst=3, mailboxes="INBOX, " + ", ".join(boxes))
    for b in boxes:
        ok(mw.wait_log(re.escape("test/%s: " % b) + mwtest.WATCHED, 15),
           "burst over mailboxes: %s watched" % b)
    base = len(nd.records())
    senders = ["Ann <ann@example.org>", "Bob <bob@example.org>",
               "Cy <cy@example.org>", "Di <di@example.org>"]
    for i, (b, s) in enumerate(zip(boxes, senders)):
        dc.append("alice", b, message(i, s))
        ok(len(mw.wait_hooks(i + 1, 20)) == i + 1,
           "burst over mailboxes: the message in %s ran its hook" % b)
    want = "4 new messages in test (Ma, Mb, Mc, …)"
    ok(wait_until(lambda: any(r["summary"] == want
                              for r in nd.records()[base:]), 10),
       "burst over mailboxes: one summary for the 4 folders (%r)" %
       [r["summary"] for r in nd.records()[base:]])
    singles = [r for r in nd.records()[base:]
               if not r["summary"].startswith("4 new")]
    ok(len(singles) == 3, "burst over mailboxes: 3 single notifications "
       "before it (%d)" % len(singles))
    ok(nd.records()[-1]["body"] == "Ann, Bob, Cy, …",
       "burst over mailboxes: the first senders in the body (%r)" %
       nd.records()[-1]["body"])
    ok(wait_until(lambda: {r["id"] for r in singles} <=
                  {r["id"] for r in nd.records("CloseNotification")}, 5),
       "burst over mailboxes: the single notifications are closed")
    ok(mw.stop() == 0, "burst over mailboxes: stopped")

    for i, b in enumerate(boxes):
        dc.append("alice", b, message(10 + i))
    base = len(nd.records())
    mw.start()
    ok(len(mw.wait_hooks(8, 20)) == 8,
       "burst over mailboxes: mail that came while stopped ran its hooks")
    ok(wait_until(lambda: any(r["summary"].startswith("4 new messages in "
                                                      "test (")
                              for r in nd.records()[base:]), 10),
       "burst over mailboxes: what came while stopped is one summary (%r)"
       % [r["summary"] for r in nd.records()[base:]])
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "burst over mailboxes: clean exit")
    for b in boxes:
        dc.delete_mailbox("alice", b)


def test_copies(dc, bus, nd):
    """A message that is in two mailboxes (a Gmail label; here APPENDed to
    both) or that a client's filter moves after it was announced is one
    notification and one hook run; its notification stays until no copy
    is unread. A message with the same Message-ID but another subject is
    not a copy."""
    dc.create_mailbox("alice", "Label")
    mw = setup(dc, bus, burst=0, mailboxes="INBOX, Label")
    ok(mw.wait_log(re.escape("test/Label: ") + mwtest.WATCHED, 15),
       "copies: Label watched")
    base = len(nd.records())
    raw = mwtest.make_message(subject="labelled", msgid="<lab@mwtest>")
    inbox_uid = dc.append("alice", "INBOX", raw)
    label_uid = dc.append("alice", "Label", raw)
    ok(mw.wait_log(r"new mail UID \d+ is the message \S+ UID \d+ "
                   r"announced before", 10),
       "copies: the second copy is logged as a copy")
    mwtest.quiet(1)  # a second hook or popup would come by now
    ok(len(mw.hook_records()) == 1,
       "copies: one hook run (%d)" % len(mw.hook_records()))
    new = nd.records()[base:]
    ok(len(new) == 1, "copies: one notification (%r)" %
       [r["summary"] for r in new])
    shown = new[0]["id"] if new else None

    def closed():
        return shown in {r["id"] for r in nd.records("CloseNotification")}
    dc.store("alice", "INBOX", [inbox_uid], ["\\Seen"])
    mwtest.quiet(1)
    ok(not closed(), "copies: read in INBOX, it stays for the unread copy")
    dc.store("alice", "Label", [label_uid], ["\\Seen"])
    ok(wait_until(closed, 10), "copies: closed once both are read")

    base = len(nd.records())
    moved = dc.append("alice", "INBOX", mwtest.make_message(
        subject="filtered", msgid="<move@mwtest>"))
    ok(len(mw.wait_hooks(2, 10)) == 2, "copies: the next message ran its "
       "hook")
    c = dc.client("alice")
    try:
        c.wait_tagged(c.send_command("SELECT INBOX"))
        status, line, _ = c.wait_tagged(
            c.send_command("UID MOVE %d Label" % moved))
        ok(status == "OK", "copies: moved to Label (%r)" % line)
    finally:
        c.logout()
    ok(mw.wait_log(r"is the message INBOX UID %d announced before"
                   % moved, 10), "copies: the moved message is a copy")
    mwtest.quiet(1)
    ok(len(mw.hook_records()) == 2,
       "copies: moved, its hook does not run again (%d hooks)" %
       len(mw.hook_records()))

    def on_screen():
        closed = {r["id"] for r in nd.records("CloseNotification")}
        return [r["id"] for r in nd.records()[base:]
                if r["body"] == "filtered" and r["id"] not in closed]
    # The expunge may come first and close it; then the copy shows it.
    ok(len(on_screen()) == 1, "copies: moved, one notification for it on "
       "screen (%r)" % [(r["summary"], r["body"])
                        for r in nd.records()[base:]])
    dc.store("alice", "Label", [1, 2, 3], ["\\Seen"])
    ok(wait_until(lambda: not on_screen(), 10),
       "copies: read where it moved to, closed")

    dc.append("alice", "INBOX", mwtest.make_message(
        subject="another subject", msgid="<lab@mwtest>"))
    ok(len(mw.wait_hooks(3, 10)) == 3,
       "copies: the same Message-ID with another subject is announced")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "copies: clean exit")
    dc.delete_mailbox("alice", "Label")


def test_copy_after_shown(dc, bus, nd):
    """A copy of a message whose notification the user dismissed (or that
    expired) is not shown again; nor is one counted in a summary. A
    summary of a burst closes only the notifications of its window, not
    an older one it does not count."""
    dc.create_mailbox("alice", "Label")
    mw = setup(dc, bus, post=True, burst=3, mailboxes="INBOX, Label")
    ok(mw.wait_log(re.escape("test/Label: ") + mwtest.WATCHED, 15),
       "copy after shown: Label watched")
    base = len(nd.records())
    raw = message(1)
    dc.append("alice", "INBOX", raw)
    ok(nd.wait_records(base + 1, 10), "copy after shown: notified")
    os.kill(nd.proc.pid, signal.SIGUSR2)  # the user dismisses it
    ok(mw.wait_log(r"notification \d+ closed \(reason 2\)", 10),
       "copy after shown: dismissed")
    dc.append("alice", "Label", raw)
    ok(mw.wait_log(r"test/Label: new mail UID \d+ is the message INBOX",
                   10), "copy after shown: the copy is found")
    mwtest.quiet(1)  # a notification for it would come by now
    ok(len(nd.records()) == base + 1 and len(mw.hook_records()) == 1,
       "copy after shown: dismissed, it is not shown again (%r)" %
       [r["summary"] for r in nd.records()[base:]])

    # An older notification stays when a later burst is summarised.
    dc.append("alice", "INBOX", message(2))
    ok(nd.wait_records(base + 2, 10), "copy after shown: one more")
    old = nd.records()[-1]["id"]
    # The burst window is 10 s of real time, whatever the machine's speed:
    # this is the mail's timing, not a wait for mailwatch.
    time.sleep(11)
    dc.append_many("alice", "INBOX", [message(i) for i in range(3, 7)],
                   atomic=True)
    ok(wait_until(lambda: any(r["summary"] == "4 new messages in "
                              "test/INBOX" for r in nd.records()), 10),
       "copy after shown: the later burst is summarised")
    mwtest.quiet(1)
    ok(old not in {r["id"] for r in nd.records("CloseNotification")},
       "copy after shown: the older notification stays")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "copy after shown: clean exit")

    # Mail that came while away, a message in INBOX and Label among it:
    # counted once, in the summary or on its own, never both. In a later
    # second than the stop: mail of that one came while mailwatch
    # watched.
    time.sleep(1.1)
    for b in ("INBOX", "Label"):
        dc.expunge("alice", b)
    raws = [mwtest.make_message(subject="away %d" % i) for i in range(12)]
    dc.append_many("alice", "INBOX", raws)
    dc.append("alice", "Label", raws[5])
    base = len(nd.records())
    hooks = len(mw.hook_records())
    posts = len(mw.hook_records(kind="post"))
    mark = mw.mark()
    mw.start()
    ok(mw.wait_log(r"is the message \S+ UID \d+ announced before", 20,
                   since=mark), "away: the copy is found")
    ok(wait_until(lambda: any(r["summary"].startswith("12 new messages in "
                                                      "test")
                              for r in nd.records()[base:]), 10),
       "away: the summary counts 12 messages (%r)" %
       [r["summary"] for r in nd.records()[base:]])
    mwtest.quiet(1)
    runs = mw.hook_records()[hooks:]
    summarised = sum(int(r["MAILWATCH_COUNT"]) for r in
                     mw.hook_records(kind="post")[posts:]
                     if r["MAILWATCH_MAILBOX"] == "INBOX")
    ok(len(runs) + summarised == 12, "away: 12 announced in all, by hook "
       "or in a summary (hooks for %r, %d in the summary)" % (
           [(r["MAILWATCH_MAILBOX"], r["MAILWATCH_UID"]) for r in runs],
           summarised))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "away: clean exit")
    dc.delete_mailbox("alice", "Label")


def test_trickle(dc, bus, nd):
    """Once a burst is a summary, mail that keeps coming (here one message
    every 3 s) updates that summary, past the first 10 s, rather than
    starting single notifications again."""
    mw = setup(dc, bus, burst=2)
    base = len(nd.records())
    for i in range(5):
        if i:
            time.sleep(3)  # mail's pace, within the 10 s window: unscaled
        dc.append("alice", "INBOX", message(i))
        ok(len(mw.wait_hooks(i + 1, 10)) == i + 1,
           "trickle: message %d ran its hook" % i)
    ok(wait_until(lambda: any(r["summary"] == "5 new messages in "
                              "test/INBOX" for r in nd.records()), 10),
       "trickle: one summary counts all 5 (%r)" %
       [r["summary"] for r in nd.records()[base:]])
    singles = [r for r in nd.records()[base:]
               if "new messages" not in r["summary"]]
    ok(len(singles) == 2, "trickle: 2 single notifications, then the "
       "summary (%d)" % len(singles))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "trickle: clean exit")


def test_summary_read(dc, bus, nd):
    """A burst's summary counts down as its messages are read elsewhere,
    and is closed once all of them are."""
    mw = setup(dc, bus, burst=3)
    base = len(nd.records())
    uids = dc.append_many("alice", "INBOX", [message(i) for i in range(5)],
                          atomic=True)
    ok(wait_until(lambda: any(r["summary"] == "5 new messages in "
                              "test/INBOX" for r in nd.records()[base:]),
                  10), "summary read: 5 summarised")
    dc.store("alice", "INBOX", uids[:2], ["\\Seen"])
    ok(wait_until(lambda: nd.records()[-1]["summary"] ==
                  "3 new messages in test/INBOX", 10),
       "summary read: 2 read, it says 3 (%r)" %
       [r["summary"] for r in nd.records()[base:]])
    last = nd.records()[-1]["id"]
    dc.store("alice", "INBOX", uids[2:], ["\\Seen"])
    ok(wait_until(lambda: last in {r["id"] for r in
                                   nd.records("CloseNotification")}, 10),
       "summary read: all read, it is closed")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "summary read: clean exit")


def test_long_sender(dc, bus, nd):
    """A sender's name of 300 characters: the notification's title is cut
    to one line's worth, and the subject stays in the body."""
    mw = setup(dc, bus)
    base = len(nd.records())
    dc.append("alice", "INBOX", mwtest.make_message(
        "short subject", from_="%s <long@example.org>" % ("N" * 300)))
    ok(len(nd.wait_records(base + 1, 10)) > base, "long sender: notified")
    r = nd.records()[base]
    ok(len(r["summary"].encode()) <= 100 + len("…".encode()) and
       r["summary"].endswith("…") and r["body"] == "short subject",
       "long sender: a title of at most 100 bytes and '…', the "
       "subject in the body (%d bytes, %r)" % (len(r["summary"].encode()),
                                               r["body"]))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "long sender: clean exit")


def test_withdraw(dc, bus, nd):
    mw = setup(dc, bus)
    base = len(nd.records())
    uid = dc.append("alice", "INBOX", message(1))
    ok(nd.wait_records(base + 1, 10), "withdraw: notified")
    shown = nd.records()[-1]["id"]
    dc.store("alice", "INBOX", [uid], ["\\Seen"])
    ok(wait_until(lambda: shown in {r["id"] for r in
                                    nd.records("CloseNotification")}, 10),
       "withdraw: read elsewhere closes its notification")

    uid2 = dc.append("alice", "INBOX", message(2))
    ok(nd.wait_records(base + 2, 10), "withdraw: second notified")
    shown2 = nd.records()[-1]["id"]
    dc.expunge("alice", "INBOX", [uid2])
    ok(wait_until(lambda: shown2 in {r["id"] for r in
                                     nd.records("CloseNotification")}, 10),
       "withdraw: expunged elsewhere closes its notification")
    ok(len(mw.hook_records()) == 2, "withdraw: nothing announced twice")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "withdraw: clean exit")


def test_withdraw_after_reconnect(dc, bus, nd):
    """Read or deleted elsewhere while mailwatch had no connection (frozen,
    its session kicked): the new connection's catch-up learns it and
    closes those notifications, and only those."""
    mw = setup(dc, bus)
    base = len(nd.records())
    uids = []
    for i in range(3):
        uids.append(dc.append("alice", "INBOX", message(20 + i)))
        ok(nd.wait_records(base + i + 1, 10),
           "withdraw after reconnect: message %d notified" % i)
    ids = [r["id"] for r in nd.records()[base:]]
    mark = mw.mark()
    mw.signal(signal.SIGSTOP)
    try:
        r = dc.kick("alice")
        ok(r.returncode == 0, "withdraw after reconnect: kicked while "
           "frozen: %s" % r.stdout.strip())
        dc.store("alice", "INBOX", [uids[0]], ["\\Seen"])
        dc.expunge("alice", "INBOX", [uids[1]])
    finally:
        mw.signal(signal.SIGCONT)
    ok(mw.wait_log(r"INBOX: watching \(IDLE\)", 20, since=mark),
       "withdraw after reconnect: watching again")

    def closed():
        return {r["id"] for r in nd.records("CloseNotification")}
    ok(wait_until(lambda: {ids[0], ids[1]} <= closed(), 10),
       "withdraw after reconnect: the message read and the one deleted "
       "meanwhile are closed")
    ok(ids[2] not in closed(),
       "withdraw after reconnect: the unread one stays")
    ok(len(mw.hook_records()) == 3,
       "withdraw after reconnect: nothing announced twice (%d hook runs)"
       % len(mw.hook_records()))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "withdraw after reconnect: clean exit")


def test_click(dc, bus, nd):
    mw = mwtest.Mailwatch(None, bus=bus, start=False)
    acct = dc.account("alice")
    acct["on_click"] = mw.hook_cmd("click")
    mw.write_config({"general": {"notify": True}, "account test": acct})
    mw.start()
    ok(mw.wait_log(r"INBOX: watching \(IDLE\)", 15), "click: idle")
    base = len(nd.records())
    uid = dc.append("alice", "INBOX", message(7, "Zed <zed@example.org>"))
    ok(nd.wait_records(base + 1, 10), "click: notified")
    rec = nd.records()[-1]
    ok(rec["actions"] == ["default", "Open"], "click: a default action")
    os.kill(nd.proc.pid, signal.SIGUSR1)  # the user clicks it
    clicks = mw.wait_hooks(1, 10, kind="click")
    ok(clicks and clicks[0]["MAILWATCH_UID"] == str(uid) and
       clicks[0]["MAILWATCH_FROM"] == "Zed <zed@example.org>",
       "click: on_click ran with the message's environment")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "click: clean exit")


def test_catch_up(dc, bus, nd):
    mw = setup(dc, bus, catch_up_max=2)
    ok(mw.stop() == 0, "catch-up: first run stopped")
    mw.write_config({"general": {"notify": True}, "account test": dict(
        dc.account("alice"), catch_up_max=2, on_new_mail=mw.hook_cmd("new"),
        on_new_mail_post=mw.hook_cmd("post"))})
    time.sleep(1.1)  # in a later second than the stop
    dc.append_many("alice", "INBOX", [message(i) for i in range(4)])
    base = len(nd.records())
    mw.start()
    posts = mw.wait_hooks(1, 20, kind="post")
    ok(posts and posts[0]["MAILWATCH_COUNT"] == "4",
       "catch-up: on_new_mail_post once with the count of the 4 that came "
       "while away")
    ok(wait_until(lambda: len(nd.records()) > base, 10),
       "catch-up: notified")
    new = nd.records()[base:]
    ok(len(new) == 1 and new[0]["summary"] == "4 new messages in test/INBOX",
       "catch-up: one summary above catch_up_max (%r)" %
       [r["summary"] for r in new])
    ok(new and new[0]["body"] == "Ann Example, …",
       "catch-up: the summary names each sender once (%r)" %
       (new[0]["body"] if new else None))
    ok(not mw.hook_records(), "catch-up: no on_new_mail per message under "
       "a summary")
    uid = dc.append("alice", "INBOX", message(9))
    recs = mw.wait_hooks(1, 10)
    ok(len(recs) == 1 and recs[0]["MAILWATCH_UID"] == str(uid),
       "catch-up: the next message is announced as itself")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "catch-up: clean exit")


def test_renamed(dc, bus, nd):
    """A folder renamed with a message's notification still shown: read
    in the renamed folder, it is withdrawn, and `mailwatch status` names
    it as the folder's last (trial N: the notification stayed, and the
    last message was gone from the status). With NOTIFY, and without
    (the folder on a connection of its own)."""
    dc.create_mailbox("alice", "Old")
    # Without NOTIFY the rename is found at the next check's LIST.
    mw = setup(dc, bus, mailboxes="*", poll_interval=10)
    ok(mw.wait_log(re.escape("test/Old: ") + mwtest.WATCHED, 15),
       "renamed: Old watched")
    base = len(nd.records())
    uid = dc.append("alice", "Old", message(1, "Ann <ann@example.org>"))
    ok(nd.wait_records(base + 1, 10), "renamed: notified")
    shown = nd.records()[-1]["id"]
    dc.rename_mailbox("alice", "Old", "New")
    ok(mw.wait_log(r"test/New: renamed from Old", 10 + 15),
       "renamed: mailwatch goes on with it", mw.log_tail(10))
    r = subprocess.run([mw.bin, "status"], env=bus.env(),
                       capture_output=True, text=True,
                       timeout=mwtest._t(10))
    ok("test/New: 1 unseen; last from Ann <ann@example.org>" in r.stdout,
       "renamed: status names its last message", r.stdout)
    dc.store("alice", "New", [uid], ["\\Seen"])
    ok(wait_until(lambda: shown in {c["id"] for c in
                                    nd.records("CloseNotification")}, 10),
       "renamed: read there, its notification is closed",
       mw.log_tail(10))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(),
       "renamed: clean exit")
    dc.delete_mailbox("alice", "New")


def main():
    dc = mwtest.Dovecot()
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    for t in (test_burst, test_burst_at_once, test_burst_mailboxes,
              test_copies, test_copy_after_shown, test_trickle,
              test_summary_read,
              test_long_sender,
              test_withdraw, test_withdraw_after_reconnect, test_click,
              test_renamed):
        dc.expunge("alice", "INBOX")
        t(dc, bus, nd)
    dc.expunge("alice", "INBOX")
    test_catch_up(dc, bus, nd)
    test_renamed(mwtest.Dovecot(notify=False), bus, nd)


mwtest.main(main)
