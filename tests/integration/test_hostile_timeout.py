#!/usr/bin/python3
"""Hostile server that never answers: DONE left unanswered, a UID FETCH
never completed (its FETCH data sent, the tagged OK never), and the DONE
of an IDLE refresh left unanswered. Each must end in a reconnect after the
command deadline, with the mail caught up exactly once.

SLOW ON PURPOSE: the deadline is COMMAND_TIMEOUT in src/watcher.c (30 s)
and mailwatch has no configuration key to shorten it, so this is the one
slow hostile test (about 40 s). The three servers run in parallel under
one mailwatch (three accounts) to pay the 30 s only once."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
import fakeimap  # noqa: E402
from fakeimap import FakeImap, Hostile  # noqa: E402

COMMAND_TIMEOUT = 30  # src/watcher.c


def test_never_answers():
    pw = Hostile.PASSWORD
    srvs = {name: FakeImap(password=pw)
            for name in ("nodone", "nofetch", "refresh")}
    for srv in srvs.values():
        for _ in range(3):
            srv.add_message(notify=False)
    sections = {"general": {"notify": False, "on_new_mail": "{hook}"}}
    for name, srv in srvs.items():
        sections["account " + name] = {
            "host": srv.host, "port": srv.port, "tls": "none",
            "username": srv.user, "password": pw, "mailboxes": "INBOX"}
    # The refresh account re-issues IDLE every 2 s (the minimum is 1).
    sections["account refresh"]["idle_timeout"] = 2
    mw = mwtest.Mailwatch(sections)

    def hang(conn, tag, args):
        conn.hang()

    def fetch_without_ok(conn, tag, args):
        for r in conn.srv.fetch_responses(args.split()[0]):
            conn.send(r)
        conn.hang()
    srvs["nodone"].once("DONE", hang)
    srvs["nofetch"].once("UID FETCH", fetch_without_ok)
    srvs["refresh"].once("DONE", hang)

    for name, srv in srvs.items():
        ok(srv.wait_idle(10, 1), "%s: connection #1 in IDLE" % name)
    t0 = time.monotonic()
    new = {"nodone": srvs["nodone"].add_message(subject="behind a DONE"),
           "nofetch": srvs["nofetch"].add_message(subject="in a FETCH")}

    # The refresh: DONE after idle_timeout (2 s, the timer may be 5 s
    # late for coalescing).
    r = srvs["refresh"].wait_command(r"^DONE$", 12)
    ok(r, "refresh: DONE sent after idle_timeout = 2 s",
       "commands: %r" % srvs["refresh"].commands)
    t_done = time.monotonic()

    # Everyone reconnects after the command deadline, not much later
    # (the slack is scaled).
    for name, srv in srvs.items():
        got = srv.wait_connections(2, COMMAND_TIMEOUT + 15) and \
            srv.wait_idle(10, 2) is not None
        ok(got, "%s: reconnected after the command deadline" % name,
           "connections: %d" % srv.connection_count())
        if srv.connection_count() > 1:
            start = t_done if name == "refresh" else t0
            dt = srv.conn(2).t_open - start
            comment("  %s: connection #2 %.1f s after the command" %
                    (name, dt))
            ok(COMMAND_TIMEOUT - 1 <= dt <= COMMAND_TIMEOUT + mwtest._t(8),
               "%s: reconnect about %d s after the command (%.1f s)" %
               (name, COMMAND_TIMEOUT, dt))
    for name in srvs:
        line = next((ln for ln in mw.log().splitlines()
                     if ln.startswith("mailwatch: %s/INBOX: no reply" % name)
                     ), None)
        ok(line, "%s: log says the server did not answer" % name)
        if line:
            comment("  " + line)

    # New mail on the new connections; everything exactly once.
    for name in ("nodone", "nofetch", "refresh"):
        srvs[name].add_message(subject="after the reconnect")
    want = {"nodone": [new["nodone"], new["nodone"] + 1],
            "nofetch": [new["nofetch"], new["nofetch"] + 1],
            "refresh": [4]}
    mw.wait_hooks(5, 10)
    mw.settle(1)
    recs = mw.hook_records()
    for name, uids in want.items():
        got = sorted(int(r["MAILWATCH_UID"]) for r in recs
                     if r.get("MAILWATCH_ACCOUNT") == name)
        ok(got == uids, "%s: announced UIDs %s exactly once" % (name, uids),
           "hook UIDs: %s" % got)
    mem = fakeimap.proc_memory(mw.pid()) if mw.running() else {}
    ok(0 < mem.get("VmHWM", 0) < Hostile.MEM_LIMIT_KIB,
       "peak RSS %d KiB" % mem.get("VmHWM", 0))
    ok(mw.running(), "mailwatch still running")
    rc = mw.stop()
    ok(rc == 0, "clean exit (status %s)" % rc)
    errs = mw.sanitizer_errors()
    ok(not errs, "no sanitizer report", "\n".join(errs[:20]))
    ok(pw not in mw.log(), "no password in the log")
    for srv in srvs.values():
        srv.stop()


mwtest.main(test_never_answers)
