#!/usr/bin/python3
"""Credentials do not linger in mailwatch's memory once they are sent: with
mailwatch idling after AUTHENTICATE PLAIN (and after LOGIN) against the
real Dovecot, its writable memory is read through /proc/PID/mem and must
not hold the base64 PLAIN response or the LOGIN command line. (The
password itself is kept for reconnects, so it is not looked for.) An
OAuth2 access token is not kept at all: once idle, neither the token nor
any piece of its XOAUTH2 response is in memory."""

import base64
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok  # noqa: E402


def memory_holds(pid, needles):
    """The needles (bytes) found in the writable mappings of pid."""
    found = set()
    with open("/proc/%d/maps" % pid) as maps, \
            open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            lo, hi, perms = int(m[1], 16), int(m[2], 16), m[3]
            if not perms.startswith("rw") or hi - lo > 1 << 30:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            found.update(n for n in needles if n in data)
    return found


def main():
    dc = mwtest.Dovecot()
    pw = dc.users["alice"]
    plain = base64.b64encode(b"\0alice\0" + pw.encode())
    mw = mwtest.Mailwatch({
        "general": {"notify": False},
        "account a": dc.account("alice"),
    })
    ok(mw.wait_log(r"watching \(IDLE\)", 15), "watching")
    # Later commands overwrite the start of a reused buffer: look for
    # every 12-byte piece of the response.
    pieces = [plain[i:i + 12] for i in range(0, len(plain) - 11, 4)]
    for when in ("idle after login", "idle after new mail"):
        left = memory_holds(mw.pid(), pieces)
        ok(not left, "%s: no piece of the AUTHENTICATE PLAIN response in "
           "memory" % when, "found: %r" % sorted(left))
        dc.deliver("alice", mwtest.make_message("one"))
        ok(mw.wait_log(r"new mail UID", 10), "mail announced")
    ok(memory_holds(mw.pid(), [b"alice"]),
       "the memory reading works (the user name is found)")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


def test_token():
    dc = mwtest.Dovecot(oauth2=True)
    token = dc.token("alice")
    mw = mwtest.Mailwatch(None, start=False)
    # The command reads the token from a file: in the command line it
    # would be in the configuration, which mailwatch keeps.
    path = os.path.join(mw.dir, "token")
    with open(path, "w") as f:
        f.write(token + "\n")
    mw.write_config({
        "general": {"notify": False},
        "account a": dict(dc.account("alice", password=None),
                          auth="xoauth2",
                          oauth2_token_command="/bin/cat " + path),
    })
    mw.start()
    ok(mw.wait_log(r"watching \(IDLE\)", 15), "watching with a token")
    resp = base64.b64encode(("user=alice\x01auth=Bearer %s\x01\x01" %
                             token).encode())
    pieces = [resp[i:i + 12] for i in range(0, len(resp) - 11, 4)]
    pieces += [token.encode()[i:i + 12]
               for i in range(0, len(token) - 11, 4)]
    for when in ("idle after login", "idle after new mail"):
        left = memory_holds(mw.pid(), pieces)
        ok(not left, "%s: no piece of the token or of its XOAUTH2 "
           "response in memory" % when, "found: %r" % sorted(left))
        dc.deliver("alice", mwtest.make_message("one"))
        ok(mw.wait_log(r"new mail UID", 10), "mail announced")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


mwtest.main(main, test_token)
