#!/usr/bin/python3
"""mailwatch's own timers against a real Dovecot: the IDLE refresh
(idle_timeout) is sent and answered, and a connection whose server stops
answering (the Dovecot imap process frozen with SIGSTOP, as a NAT that
silently drops the connection would look) is detected by the unanswered
DONE, dropped and reconnected, and the mail that arrived meanwhile is
announced once."""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing test_watch: no __pycache__
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402
from test_watch import (finish, need_binaries, sentinel,  # noqa: E402
                        uids_of, wait_idle, wait_warning)

# idle_timeout = 1 may fire up to 5 s late (timer coalescing), then the
# DONE has mailwatch's 30 s command timeout, then ~1 s of back-off.
DEAD_BOUND = 45


def imap_pids(dc, user):
    """Pids of user's imap processes, from Dovecot's "Login: ... mpid=N"
    lines, oldest first."""
    return [int(p) for p in re.findall(
        r"Login: user=<%s>.*?mpid=(\d+)" % re.escape(user), dc.log())]


def test_idle_refresh_is_sent():
    """idle_timeout = 2: mailwatch ends IDLE with DONE and re-issues it;
    the server answers each DONE (it was really sent)."""
    need_binaries()
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}",
                    "idle_timeout": 2},
        "account t": dc.account("alice"),
    })
    if not ok(wait_idle(mw, 1), "mailwatch reaches IDLE"):
        return
    mark = mw.mark()
    # Up to 2 + 5 s per refresh with coalescing: two in 16 s.
    mwtest.wait_until(
        lambda: len(re.findall(r"S: m\d+ OK Idle completed",
                               mw.log()[mark:])) >= 2, 16)
    log = mw.log()[mark:]
    dones = len(re.findall(r"session: idle -> idle-done", log))
    answered = len(re.findall(r"S: m\d+ OK Idle completed", log))
    ok(dones >= 2 and answered >= 2,
       "IDLE refreshed and answered at least twice in 16 s (%d DONE, %d "
       "answered)" % (dones, answered),
       "the DONE is queued by session_timeout() but on_timer() in "
       "src/watcher.c never calls pump(), so it is not sent until the "
       "server happens to send something:\n" + mw.log_tail(8))
    s, recs = sentinel(dc, mw, "alice", "INBOX", 0, "after refreshes")
    ok(uids_of(recs) == [s], "mail still announced once after refreshes")
    finish(mw)


def test_frozen_server_detected():
    """The server stops answering while mailwatch idles: within about
    idle_timeout + the command timeout mailwatch gives up on the
    connection, reconnects, and announces the mail that came meanwhile
    once."""
    need_binaries()
    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}",
                    "idle_timeout": 1},
        "account t": dc.account("alice"),
    })
    if not ok(wait_idle(mw, 1), "mailwatch reaches IDLE"):
        return
    pids = imap_pids(dc, "alice")
    if not ok(len(pids) == 1, "mailwatch's imap process: %s" % pids):
        return
    pid = pids[0]
    mark = mw.mark()
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        uid = dc.append("alice", "INBOX", mwtest.make_message("while frozen"))
        m = wait_warning(mw, "t/INBOX", r"no reply|timed? ?out|lost|"
                         r"closed", DEAD_BOUND, since=mark)
        dt = time.monotonic() - t0
        ok(m, "the dead connection is noticed within %d s (%s)" % (
            DEAD_BOUND, "%.1f s: %s" % (dt, m.group(0)) if m
            else "not at all"),
           "state: %s" % mw.log_tail(6))
        if m:
            recs = mw.wait_hooks(1, 15)
            ok(uids_of(recs) == [uid],
               "after reconnecting, the mail from meanwhile is announced",
               "hook UIDs %s" % uids_of(recs))
            s, recs = sentinel(dc, mw, "alice", "INBOX", 1, "after freeze")
            ok(uids_of(recs) == [uid, s], "and nothing twice",
               "hook UIDs %s" % uids_of(recs))
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_idle_refresh_is_sent,
                test_frozen_server_detected)
