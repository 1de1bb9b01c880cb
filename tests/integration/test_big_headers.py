#!/usr/bin/python3
"""A message whose FETCH response is over mailwatch's limits costs its
details, never the mailbox: against the real Dovecot, a message with a
35 KB To header (3,000 addresses) and one with a subject over 1 MiB, each
followed by a normal message, are all announced once (the big ones with
their From and Subject, cut), within a second of the next, and new mail
after them still is. The log says what happened. A sender whose address
is past what is fetched of the From field, or that Dovecot could not
parse, gives the hooks no address rather than a wrong one; a From that
Dovecot splits gives its whole address; and for a message over the limits
with a From naming no one, the Sender is read, as for any other."""

import base64
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402


def big_to():
    addrs = ", ".join("user%04d@example.org" % i for i in range(3000))
    return mwtest.make_message("many recipients",
                               from_="Ann Big <ann@example.org>", to=addrs)


def big_subject():
    words = " ".join("w%06d" % i for i in range(140000))  # ~1.1 MB
    return mwtest.make_message("huge " + words,
                               from_="Bob Huge <bob@example.org>")


def main():
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account a": dc.account("alice"),
    })
    ok(mw.wait_log(r"watching \(IDLE\)", 15), "watching")
    n = 0
    for what, raw, sender, subject in (
            ("35 KB To", big_to(), "Ann Big <ann@example.org>",
             "many recipients"),
            ("1 MiB Subject", big_subject(), "Bob Huge <bob@example.org>",
             "huge w000000")):
        mark = mw.mark()
        dc.deliver("alice", raw)
        dc.deliver("alice", mwtest.make_message("normal after " + what))
        recs = mw.wait_hooks(n + 2, 15)
        # Hooks run side by side: their records may come in any order.
        got = sorted(recs[n:n + 2], key=lambda r: int(r["MAILWATCH_UID"]))
        ok(len(got) == 2, "%s: it and the next message announced" % what,
           mw.log_tail(10))
        if len(got) == 2:
            big, normal = got
            ok(big["MAILWATCH_FROM"] == sender and
               big["MAILWATCH_SUBJECT"].startswith(subject),
               "%s: announced with its sender and subject" % what,
               "%r %r" % (big["MAILWATCH_FROM"],
                          big["MAILWATCH_SUBJECT"][:40]))
            ok(normal["MAILWATCH_SUBJECT"] == "normal after " + what,
               "%s: the next message announced after it" % what)
            gap = abs(normal["_t"] - big["_t"])
            ok(gap < mwtest._t(1),
               "%s: both within a second (%.3f s)" % (what, gap))
        ok(mw.wait_log(r"over the limits .*fetching From, Subject, Date "
                       r"and Message-ID only", 1, since=mark),
           "%s: the log says so" % what)
        n += 2
    time.sleep(mwtest._t(1))
    ok(len(mw.hook_records()) == n, "each announced once")
    ok(not mw.wait_log(r"connection lost|reconnecting", 0),
       "no reconnect: one message cost its details, not the connection")
    dc.deliver("alice", mwtest.make_message("later"))
    ok(len(mw.wait_hooks(n + 1, 10)) == n + 1, "new mail still announced")
    n += 1
    check_senders(dc, mw, n)
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def announced(dc, mw, raw, n, what):
    """Delivers raw after n announced messages: the hook record of it, or
    None (said) when it was not announced."""
    dc.deliver("alice", raw)
    recs = mw.wait_hooks(n + 1, 10)
    ok(len(recs) == n + 1, "%s: announced" % what)
    return recs[n] if len(recs) == n + 1 else None


def check_senders(dc, mw, n):
    # One encoded-word of 430 KB before the address: the ENVELOPE is over
    # the limits, and the From field is fetched only up to 2 KB.
    huge = "=?UTF-8?B?%s?= <bigname@example.org>" % base64.b64encode(
        ("\u00dcn\u00efc\u00f8d\u00e9 " * 20000).encode()).decode()
    for what, sender in (("huge encoded name", huge),
                         ("From: <>", "<>"),
                         ("a quote left open", '"quote <q@example.org>')):
        r = announced(dc, mw, mwtest.make_message(what, from_=sender), n,
                      what)
        if not r:
            return
        n += 1
        ok(r["MAILWATCH_FROM_ADDRESS"] == "" and
           r["MAILWATCH_FROM"] == r["MAILWATCH_FROM_NAME"] and
           "MISSING" not in r["MAILWATCH_FROM"],
           "%s: no address, rather than a wrong one (%r, %r)" % (
               what, r["MAILWATCH_FROM"][:60],
               r["MAILWATCH_FROM_ADDRESS"][:60]))
    # Dovecot's ENVELOPE for these: ((NIL NIL "Doe" "MISSING_DOMAIN")
    # ("John" NIL "john" "acme.example")), (("Foo" NIL "foo"
    # "SYNTAX_ERROR")). Then one over the limits (3,000 Cc) whose From is
    # an empty group: its Sender, as the ENVELOPE gives it for a small one.
    cc = ", ".join("cc%04d@example.org" % i for i in range(3000))
    over = mwtest.make_message("over, sender only", from_="Undisclosed:;")
    over = over.replace(b"\r\nTo:", b"\r\nSender: Lis <l@lists.example>"
                        b"\r\nCc: " + cc.encode() + b"\r\nTo:", 1)
    mark = mw.mark()
    for what, raw, name, address in (
            ("Doe, John", mwtest.make_message(
                "split", from_="Doe, John <john@acme.example>"),
             "John", "john@acme.example"),
            ("two @", mwtest.make_message(
                "two", from_="Foo <foo@bar@baz.example>"), "Foo", ""),
            ("over the limits, Sender only", over,
             "Lis", "l@lists.example")):
        r = announced(dc, mw, raw, n, what)
        if not r:
            return
        n += 1
        ok(r["MAILWATCH_FROM_NAME"] == name and
           r["MAILWATCH_FROM_ADDRESS"] == address,
           "%s: from %r <%r>" % (what, r["MAILWATCH_FROM_NAME"],
                                r["MAILWATCH_FROM_ADDRESS"]))
    ok(len(re.findall(r"over the limits", mw.log()[mark:])) == 1,
       "only the last one was over the limits")


mwtest.main(main)
