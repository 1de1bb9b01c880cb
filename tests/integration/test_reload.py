#!/usr/bin/python3
"""SIGHUP against a real Dovecot: accounts whose settings did not change keep
their connections, changed ones reconnect with the new settings, removed
ones stop; an account that gave up on a wrong password tries again."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, wait_until  # noqa: E402


def logins(dc, user):
    return len(re.findall(r"Login: user=<%s>" % user, dc.log()))


def main():
    dc = mwtest.Dovecot()
    dc.create_mailbox("bob", "Lists/dev")
    mw = mwtest.Mailwatch(None, start=False)
    hook = mw.hook_cmd("new")
    alice = dict(dc.account("alice"), on_new_mail=hook)
    bob = dict(dc.account("bob"), on_new_mail=hook)
    mw.write_config({"account a": alice, "account b": bob})
    mw.start()
    ok(wait_until(lambda: len(re.findall(r"watching \(IDLE\)", mw.log()))
                  == 2, 15), "both accounts idle")
    a0, b0 = logins(dc, "alice"), logins(dc, "bob")

    # bob gains a mailbox; alice is untouched.
    bob2 = dict(bob, mailboxes=["INBOX", "Lists/dev"])
    mark = mw.mark()
    mw.reload({"account a": alice, "account b": bob2})
    ok(mw.wait_log(r"b/Lists/dev: " + mwtest.WATCHED, 15, since=mark),
       "the new mailbox is watched after the reload")
    ok(wait_until(lambda: logins(dc, "bob") >= b0 + 1, 10),
       "the changed account reconnected (%d -> %d bob logins)" %
       (b0, logins(dc, "bob")))
    ok(logins(dc, "alice") == a0,
       "the unchanged account kept its connection (%d alice logins)" %
       logins(dc, "alice"))
    uid = dc.append("alice", "INBOX", mwtest.make_message("after reload"))
    uid2 = dc.append("bob", "Lists/dev", mwtest.make_message("to dev"))
    recs = mw.wait_hooks(2, 10)
    got = sorted((r["MAILWATCH_ACCOUNT"], r["MAILWATCH_MAILBOX"],
                  r["MAILWATCH_UID"]) for r in recs)
    ok(got == sorted([("a", "INBOX", str(uid)), ("b", "Lists/dev",
                                                 str(uid2))]),
       "mail on both accounts announced once after the reload: %s" % got)

    # Only hook and notification settings change on alice: taken
    # without reconnecting.
    alice = dict(alice, hook_timeout=7, burst=5)
    a0 = logins(dc, "alice")
    mark = mw.mark()
    mw.reload({"account a": alice, "account b": bob2})
    ok(mw.wait_log(r"a: settings of hooks, notifications or catch-up "
                   r"changed: taken without reconnecting", 10, since=mark),
       "hook_timeout and burst changed: said so", mw.log_tail(10))
    mw.settle(1)
    a1 = logins(dc, "alice")  # before the APPEND's own login
    ok(a1 == a0 and "settings changed: reconnecting" not in mw.log()[mark:],
       "without a reconnect (%d -> %d alice logins)" % (a0, a1))
    uid = dc.append("alice", "INBOX", mwtest.make_message("same conn"))
    recs = mw.wait_hooks(3, 10)
    ok(any(r["MAILWATCH_UID"] == str(uid) for r in recs),
       "and mail announced after it")

    # An invalid file keeps the running configuration.
    mark = mw.mark()
    mw.write_config_text("[account broken\n")
    mw.signal(1)
    ok(mw.wait_log(r"invalid; keeping the running one", 10, since=mark),
       "an invalid configuration is reported and not applied")
    uid3 = dc.append("alice", "INBOX", mwtest.make_message("still here"))
    ok(any(r["MAILWATCH_UID"] == str(uid3) for r in mw.wait_hooks(4, 10)),
       "still announcing after the invalid reload")

    # Removing bob stops it; a wrong password gives up until a reload.
    bye = len(re.findall(r"imap\(bob\).*Disconnected", dc.log()))
    mark = mw.mark()
    mw.reload({"account a": dict(alice, password="wrong")})
    ok(mw.wait_log(r"a/INBOX: login as alice failed.*not retrying", 15,
                   since=mark), "wrong password: gives up")
    ok(wait_until(lambda: len(re.findall(r"imap\(bob\).*Disconnected",
                                         dc.log())) >= bye + 2, 10),
       "the removed account's two connections closed")
    ok(re.search(r"b: no longer in the configuration: not watched",
                 mw.log()[mark:]), "and the log says it is not watched")
    # The same file again: tried again, and said so (nothing changed).
    mark = mw.mark()
    mw.reload()
    ok(mw.wait_log(r"a: trying again at once", 10, since=mark) and
       mw.wait_log(r"a/INBOX: login as alice failed.*not retrying", 15,
                   since=mark),
       "a reload of the same file tries again, and says why",
       mw.log_tail(10))
    mark = mw.mark()
    mw.reload({"account a": alice})
    ok(mw.wait_log(r"a/INBOX: watching \(IDLE\)", 15, since=mark),
       "the fixed password works after the reload")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


mwtest.main(main)
