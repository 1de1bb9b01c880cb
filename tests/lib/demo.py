#!/usr/bin/python3
"""make demo: mailwatch against a private Dovecot, end to end.

Starts a Dovecot on 127.0.0.1 (its own CA, TLS), a private session bus with
the recording notification server (build/tests/notifyd), writes a config
with an example hook, runs ./mailwatch, delivers the sample messages one by
one, then shows mailwatch's log, the hook's output and the notifications.
Everything it starts is stopped by pid when it ends, however it ends.
Exits 0 when every message was reported."""

import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

# Which mailbox each sample goes to (the rest: INBOX).
TO_LISTS = ("05", "06")
PAUSE = float(os.environ.get("DEMO_PAUSE", "1.5"))

HOOK = """#!/bin/sh
# An on_new_mail hook: mailwatch passes the message in MAILWATCH_*
# variables (never on a command line) and runs this without a shell.
line="NEW MAIL: from $MAILWATCH_FROM subject $MAILWATCH_SUBJECT \
($MAILWATCH_ACCOUNT/$MAILWATCH_MAILBOX, UID $MAILWATCH_UID)"
printf '%s\\n' "$line" >> "$1"
printf '%s\\n' "$line"
"""


def say(text=""):
    print(text, flush=True)


def head(text):
    say()
    say("=== " + text)


def show_notification(i, r):
    hints = r.get("hints", {})
    urg = {0: "low", 1: "normal", 2: "critical"}.get(hints.get("urgency"),
                                                     "unset")
    say("  [%d] %s" % (i, r.get("summary", "")))
    say("      %s" % r.get("body", ""))
    say("      (app %s, icon %s, urgency %s, category %s, expire %s)" % (
        r.get("app_name"), r.get("icon") or "-", urg,
        hints.get("category", "-"), r.get("expire")))


def demo():
    binary = os.path.join(mwtest.REPO, "mailwatch")
    if not os.access(binary, os.X_OK):
        say("demo: %s is not built yet. Build it with 'make mailwatch' "
            "(or run 'make demo', which builds it first)." % binary)
        return 1
    missing = [p for p in ("dovecot", "doveadm", "openssl", "dbus-daemon")
               if shutil.which(p) is None and
               not os.access("/usr/sbin/" + p, os.X_OK)]
    if missing:
        say("demo: missing %s; 'scripts/deps.sh check' installs what the "
            "demo and the tests need." % ", ".join(missing))
        return 1

    head("A private Dovecot on 127.0.0.1")
    dc = mwtest.Dovecot()
    dc.create_mailbox("alice", "Lists/dev")
    say("imaps port %d, imap+STARTTLS port %d, CA %s" % (
        dc.imaps_port, dc.imap_port, dc.ca_file))
    say("user alice, mailboxes INBOX and Lists/dev (mail in %s)" % dc.dir)

    bus = mwtest.SessionBus()
    nd = None
    if mwtest.Notifyd.available():
        nd = mwtest.Notifyd(bus)
        say("private session bus with the recording notification server")
    else:
        say("(%s is not built: notifications go nowhere, mailwatch carries "
            "on without them)" % mwtest.Notifyd.binary())

    mw = mwtest.Mailwatch(None, bus=bus, binary=binary, args=(),
                          start=False)
    hook = os.path.join(mw.dir, "new-mail-hook.sh")
    hook_out = os.path.join(mw.dir, "hook-output.txt")
    mwtest._write(hook, HOOK, 0o755)
    mw.write_config({
        # burst = 5: the demo's four INBOX messages come within seconds,
        # and each should show on its own (the default, 3, would fold
        # the fourth into a "4 new messages" summary).
        "general": {"notify": True, "on_new_mail": "%s %s" % (hook, hook_out),
                    "log_level": "info", "burst": 5},
        "account demo": dc.account("alice", mailboxes="INBOX, Lists/dev"),
    })
    head("mailwatch.ini")
    for line in mw.config_text().splitlines():
        if line.startswith("password"):
            line = "password = ********"
        say("  " + line)

    head("Starting ./mailwatch")
    mw.start()
    idle = mwtest.wait_until(
        lambda: both_watched(mw.log()) or not mw.running(), 20)
    if not mw.running():
        say("demo: mailwatch exited (status %s):" % mw.proc.returncode)
        say(mw.log())
        return 1
    say("mailwatch is idling on both mailboxes" if idle else
        "(mailwatch has not said it is idling yet; delivering anyway)")

    head("Delivering the sample messages")
    expected = mwtest.sample_expected()
    names = mwtest.sample_names()
    for n, name in enumerate(names, 1):
        box = "Lists/dev" if name[:2] in TO_LISTS else "INBOX"
        exp = expected.get(name, {})
        say("--> %s into %s: from %s, subject %s" % (
            name, box, exp.get("from", "?"), exp.get("subject", "?")))
        dc.append("alice", box, mwtest.sample_message(name))
        seen = mwtest.wait_until(lambda: len(_lines(hook_out)) >= n, 10)
        if not seen:
            say("    (no hook run for it within 10 s)")
        time.sleep(PAUSE)

    nd_recs = nd.wait_records(len(names), 10) if nd else []
    mw.stop()

    head("mailwatch's log")
    say(mw.log().rstrip())
    head("Hook output (%s)" % hook_out)
    hook_lines = _lines(hook_out)
    for line in hook_lines:
        say("  " + line)
    if nd:
        head("Notifications recorded by notifyd")
        for i, r in enumerate(nd_recs, 1):
            show_notification(i, r)

    head("Result")
    problems = []
    if len(hook_lines) != len(names):
        problems.append("the hook ran %d times for %d messages" % (
            len(hook_lines), len(names)))
    if nd and len(nd_recs) != len(names):
        problems.append("%d notifications for %d messages" % (
            len(nd_recs), len(names)))
    if mw.returncode != 0:
        problems.append("mailwatch exited with status %s on SIGTERM" %
                        mw.returncode)
    if problems:
        say("demo: " + "; ".join(problems))
        return 1
    say("%d messages, %d hook runs, %d notifications; everything stopped."
        % (len(names), len(hook_lines), len(nd_recs)))
    return 0


def _lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def both_watched(log):
    """Whether the log says both mailboxes are watched: with NOTIFY (the
    test Dovecot has it) INBOX in IDLE and the other through NOTIFY, else
    each in IDLE on a connection of its own."""
    return ("watching 2 mailboxes with IDLE and NOTIFY" in log or
            log.count("watching (IDLE)") >= 2)


def main():
    signal.signal(signal.SIGTERM, mwtest._on_sigterm)
    signal.signal(signal.SIGHUP, mwtest._on_sigterm)
    rc = 1
    try:
        rc = demo()
    except KeyboardInterrupt:
        say("demo: interrupted")
    except mwtest._Terminated as e:
        say("demo: stopped by %s" % e)
    except Exception as e:
        import traceback
        traceback.print_exc()
        say("demo: failed: %s" % e)
    finally:
        mwtest.stop_all()
        mwtest._remove_later_dirs()
    return rc


if __name__ == "__main__":
    sys.exit(main())
