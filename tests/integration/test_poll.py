#!/usr/bin/python3
"""A server without IDLE (Dovecot with imap_capability overridden): the man
page promises "Servers without IDLE are polled with NOOP". New mail must
be announced within about poll_interval, once."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
from test_watch import finish, need_binaries, uids_of  # noqa: E402

POLL = 10  # the smallest poll_interval
# A poll may come up to 5 s late (timer coalescing); then a fetch.
BOUND = POLL + 5 + 8


def test_polling_without_idle():
    need_binaries()
    dc = mwtest.Dovecot(extra_conf="imap_capability = IMAP4rev1 LITERAL+\n")
    with dc.client("alice") as c:
        caps = c.capabilities()
    ok("IDLE" not in caps, "the server offers no IDLE: %s" % sorted(caps))
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}",
                    "poll_interval": POLL},
        "account t": dc.account("alice"),
    })
    ok(mw.wait_log(r"t/INBOX: server has no IDLE: polling every %d s" % POLL,
                   15), "the log says it polls every %d s" % POLL,
       mw.log_tail(5))
    t0 = time.monotonic()
    uid = dc.append("alice", "INBOX", mwtest.make_message("polled"))
    recs = mw.wait_hooks(1, BOUND)
    dt = time.monotonic() - t0
    noops = re.findall(r"t/INBOX: C: \S+ NOOP", mw.log())
    ok(uids_of(recs) == [uid],
       "new mail announced within %d s by polling (%s)" % (
           BOUND, "%.1f s" % dt if recs else "not at all"),
       "%d NOOP in the trace, none answered: it is queued by "
       "session_timeout() but "
       "on_timer() in src/watcher.c never calls pump(), so it is never "
       "sent. Last lines:\n%s" % (len(noops), mw.log_tail(6)))
    if recs:
        n = len(mw.hook_records())
        uid2 = dc.append("alice", "INBOX", mwtest.make_message("polled 2"))
        recs = mw.wait_hooks(n + 1, BOUND)
        ok(uids_of(recs) == [uid, uid2],
           "the next one too, nothing twice: %s" % uids_of(recs))
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_polling_without_idle)
