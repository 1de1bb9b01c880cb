#!/usr/bin/python3
"""Watching mail end to end: a private Dovecot over real TLS, a private
session bus with the recording notification server, and mailwatch (the
ASan/UBSan build) with recording hooks. What is asserted is what a user
sees: the hook environment, the notification text, how many times each
message is announced and in which order.

Every "nothing else was announced" is checked with a sentinel: one more
unseen message is appended afterwards and, once its hook has run, the list
of hook runs must be exactly what was expected (mailwatch handles the
events of a mailbox in order, so anything wrongly announced earlier would
be there by then). No fixed sleeps decide a result."""

import html
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402

# Every variable on_new_mail gets (mailwatch(1), HOOKS), COUNT excepted.
MSG_KEYS = {"MAILWATCH_ACCOUNT", "MAILWATCH_MAILBOX", "MAILWATCH_UID",
            "MAILWATCH_UIDVALIDITY", "MAILWATCH_FROM", "MAILWATCH_FROM_NAME",
            "MAILWATCH_FROM_ADDRESS", "MAILWATCH_SUBJECT", "MAILWATCH_DATE",
            "MAILWATCH_MESSAGE_ID"}
POST_KEYS = {"MAILWATCH_ACCOUNT", "MAILWATCH_MAILBOX", "MAILWATCH_COUNT"}


# ---------------------------------------------------------------------------
# Local helpers (not in mwtest)

def env_of(rec):
    """The MAILWATCH_* variables of a hook record."""
    return {k: v for k, v in rec.items() if k.startswith("MAILWATCH_")}


# Debug trace lines of -v (transitions, protocol), as opposed to the
# warnings and errors a user sees without -v.
NOT_TRACE = r"(?!transport|session: |watcher: |[SC]: )"


def wait_warning(mw, where, rx, timeout=10, since=0):
    """Waits for a log line of where ("account/mailbox") matching rx that
    is not part of the -v debug trace; the match or None."""
    return mw.wait_log(r"^.*%s: %s.*(?:%s).*$" % (re.escape(where),
                                                  NOT_TRACE, rx),
                       timeout, since=since)


def idle_count(mw):
    return len(re.findall(mwtest.WATCHED, mw.log()))


def wait_idle(mw, n, timeout=20):
    """Waits until mailwatch logged n mailboxes watched in all."""
    mwtest.wait_until(lambda: idle_count(mw) >= n or not mw.running(),
                      timeout)
    return idle_count(mw) >= n


def watch_inbox(dc):
    """mailwatch on alice's INBOX of dc, with a session bus and the
    recording notification server: notifications on, bursts off, the
    recording hook. Returns (bus, nd, mw) once it idles, else None."""
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    mw = mwtest.Mailwatch({
        "general": {"notify": True, "burst": 0, "on_new_mail": "{hook}"},
        "account test": dc.account("alice"),
    }, bus=bus)
    if not ok(wait_idle(mw, 1), "mailwatch reaches IDLE"):
        return None
    return bus, nd, mw


def uids_of(recs):
    return [int(r["MAILWATCH_UID"]) for r in recs]


def spawn_order(mw, recs):
    """recs sorted by the order mailwatch started them (its "on_new_mail
    ... started (pid N)" debug lines), not by the order the hook processes,
    which run in parallel, happened to write their records."""
    pids = [int(p) for p in
            re.findall(r"on_new_mail \S+ \(UID \d+\) started \(pid (\d+)\)", mw.log())]
    pos = {}
    for i, p in enumerate(pids):
        pos.setdefault(p, i)  # a pid is not reused within a test
    missing = [r["_pid"] for r in recs if r["_pid"] not in pos]
    return sorted(recs, key=lambda r: pos.get(r["_pid"], 1 << 30)), missing


def sentinel(dc, mw, user, mailbox, before, tag, timeout=15):
    """Appends one more unseen message and waits for its hook run.
    Returns (uid, every hook record); the last record should be the
    sentinel's and there should be exactly before + 1."""
    uid = dc.append(user, mailbox, mwtest.make_message("sentinel " + tag))
    mw.wait_hooks(before + 1, timeout)
    # Give a wrongly repeated run the chance to show up too.
    mw.settle(0.3)
    return uid, mw.hook_records()


def finish(mw, what="mailwatch"):
    """SIGTERM: exit status 0 and nothing from the sanitizers."""
    rc = mw.stop()
    ok(rc == 0, "%s exits 0 on SIGTERM (status %s)" % (what, rc))
    errs = mw.sanitizer_errors()
    ok(not errs, "%s: no ASan/UBSan/LSan report" % what,
       "\n".join(errs[:30]))


def need_binaries():
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")
    if not mwtest.Notifyd.available():
        raise mwtest.Skip("build/tests/notifyd is not built")


def screen(nd):
    """What the notification server shows after every call so far:
    {id: Notify record}, replaying Notify (a new id, or replaces_id) and
    CloseNotification in order."""
    shown = {}
    for r in nd.records(None):
        if r.get("method", "Notify") == "Notify":
            shown[r["id"]] = r
        elif r.get("method") == "CloseNotification":
            shown.pop(r["id"], None)
    return shown


def represented(shown, account, mailbox):
    """How many messages of account/mailbox the notifications on screen
    stand for: one each, or N for a summary "N new messages in A/M"."""
    n = 0
    for r in shown.values():
        m = re.match(r"(\d+) new messages in (.*)$", r.get("summary", ""))
        if m:
            if m.group(2) == "%s/%s" % (account, mailbox):
                n += int(m.group(1))
        else:
            n += 1
    return n


def escape_markup(s):
    """What a correct sink makes of text for a notification body."""
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def raw_message(headers, body="Hello.\n"):
    """A message from raw header lines (bytes or str), CRLF."""
    if isinstance(headers, str):
        headers = headers.encode("utf-8")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return mwtest.crlf(headers.rstrip(b"\n") + b"\nMIME-Version: 1.0\n"
                       b"Content-Type: text/plain; charset=utf-8\n\n" + body)


# ---------------------------------------------------------------------------

def extra_messages(pwn_path):
    """Messages beyond the sample files: (label, raw, expected). The
    expected dict has the keys of expected.json."""
    import base64
    latin_name = "François Léger"
    b_latin = base64.b64encode(latin_name.encode("latin-1")).decode()
    out = []
    out.append(("latin1-B-name, utf8-Q-subject", raw_message(
        "From: =?ISO-8859-1?B?%s?= <francois@example.fr>\n"
        "To: alice@example.org\n"
        "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln_=E2=80=94_?="
        "=?utf-8?q?=E2=82=AC_5?=\n"
        "Date: Sun, 22 Nov 2026 12:00:00 +0100\n"
        "Message-ID: <latin1-name@example.fr>\n" % b_latin), {
        "from": "%s <francois@example.fr>" % latin_name,
        "from_name": latin_name,
        "from_address": "francois@example.fr",
        "subject": "Grüße aus Köln — € 5",
        "message_id": "<latin1-name@example.fr>",
        "date": "Sun, 22 Nov 2026 12:00:00 +0100"}))
    subj = "<b>x</b> & <a href='http://evil'>y</a>"
    out.append(("markup subject", raw_message(
        "From: Eve <eve@example.net>\n"
        "To: alice@example.org\n"
        "Subject: %s\n"
        "Date: Sun, 22 Nov 2026 12:01:00 +0100\n"
        "Message-ID: <markup-evil@example.net>\n" % subj), {
        "from": "Eve <eve@example.net>", "from_name": "Eve",
        "from_address": "eve@example.net", "subject": subj,
        "message_id": "<markup-evil@example.net>",
        "date": "Sun, 22 Nov 2026 12:01:00 +0100"}))
    subj = "$(touch %s) `touch %s.bt` ; | && * ~ $HOME" % (pwn_path,
                                                          pwn_path)
    out.append(("shell metacharacters in subject and name", raw_message(
        "From: \"$(touch %s.name)\" <shell@example.net>\n"
        "To: alice@example.org\n"
        "Subject: %s\n"
        "Date: Sun, 22 Nov 2026 12:02:00 +0100\n"
        "Message-ID: <shell@example.net>\n" % (pwn_path, subj)), {
        "from": "$(touch %s.name) <shell@example.net>" % pwn_path,
        "from_name": "$(touch %s.name)" % pwn_path,
        "from_address": "shell@example.net", "subject": subj,
        "message_id": "<shell@example.net>",
        "date": "Sun, 22 Nov 2026 12:02:00 +0100"}))
    # Control characters, a CR LF TAB run and a bidi override inside an
    # encoded word: dropped, one space, dropped (docs/decoding.md).
    ctl = "Invoice\x1b[31m due\r\n\tnow\u202egnp.exe"
    out.append(("control and bidi characters", raw_message(
        "From: =?UTF-8?B?%s?= <ctl@example.com>\n"
        "To: alice@example.org\n"
        "Subject: =?UTF-8?B?%s?=\n"
        "Date: Sun, 22 Nov 2026 12:03:00 +0100\n"
        "Message-ID: <ctl@example.com>\n" % (
            base64.b64encode("Bob\x07\u202e Smith".encode()).decode(),
            base64.b64encode(ctl.encode()).decode())), {
        "from": "Bob Smith <ctl@example.com>", "from_name": "Bob Smith",
        "from_address": "ctl@example.com",
        "subject": "Invoice[31m due nowgnp.exe",
        "message_id": "<ctl@example.com>",
        "date": "Sun, 22 Nov 2026 12:03:00 +0100"}))
    # A group as From: the sender comes from Sender.
    out.append(("group From, Sender fallback", raw_message(
        "From: undisclosed-recipients:;\n"
        "Sender: Real Person <real@example.org>\n"
        "To: alice@example.org\n"
        "Subject: via Sender\n"
        "Date: Sun, 22 Nov 2026 12:04:00 +0100\n"
        "Message-ID: <group@example.org>\n"), {
        "from": "Real Person <real@example.org>",
        "from_name": "Real Person", "from_address": "real@example.org",
        "subject": "via Sender", "message_id": "<group@example.org>",
        "date": "Sun, 22 Nov 2026 12:04:00 +0100"}))
    return out


def test_hook_env_and_notification():
    """Each message's hook environment and notification, exactly."""
    need_binaries()
    dc = mwtest.Dovecot()
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    # Hook arguments a shell would act on; mailwatch must pass them as is.
    hook_args = ["a b", "$HOME", "`id`", "$(touch pwned-arg)", "*", ";x",
                 "|", "&&", ">out", "'", '"', "\\"]
    mw = mwtest.Mailwatch({"general": {"notify": True}}, bus=bus,
                          start=False)
    mw.write_config({
        "general": {"notify": True, "burst": 0,
                    "on_new_mail": mw.hook_cmd(args=hook_args)},
        "account test": dc.account("alice"),
    })
    pwn = os.path.join(mw.dir, "pwned-subject")
    mw.start()
    if not ok(wait_idle(mw, 1), "mailwatch reaches IDLE"):
        return
    uidvalidity = str(dc.status("alice")["UIDVALIDITY"])

    expected = mwtest.sample_expected()
    cases = [(n, mwtest.sample_message(n), expected[n])
             for n in mwtest.sample_names()] + extra_messages(pwn)
    for i, (label, raw, exp) in enumerate(cases):
        uid = dc.append("alice", "INBOX", raw)
        recs = mw.wait_hooks(i + 1, 10)
        notes = nd.wait_records(i + 1, 10)
        if not ok(len(recs) == i + 1 and len(notes) == i + 1,
                  "%s: one hook run and one notification" % label,
                  "hooks %d, notifications %d" % (len(recs), len(notes))):
            break
        rec, note = recs[i], notes[i]
        want = {
            "MAILWATCH_ACCOUNT": "test", "MAILWATCH_MAILBOX": "INBOX",
            "MAILWATCH_UID": str(uid), "MAILWATCH_UIDVALIDITY": uidvalidity,
            "MAILWATCH_FROM": exp["from"],
            "MAILWATCH_FROM_NAME": exp["from_name"],
            "MAILWATCH_FROM_ADDRESS": exp["from_address"],
            "MAILWATCH_SUBJECT": exp["subject"],
            "MAILWATCH_DATE": exp["date"],
            "MAILWATCH_MESSAGE_ID": exp["message_id"],
        }
        got = env_of(rec)
        diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want)
                if got.get(k) != want.get(k)}
        ok(not diff, "%s: hook environment exactly as expected" % label,
           "\n".join("%s: got %r, want %r" % (k, g, w)
                     for k, (g, w) in sorted(diff.items())))
        ok(rec["_argv"] == hook_args,
           "%s: hook arguments literal" % label,
           "got %r" % rec["_argv"])
        summary = exp["from_name"] or exp["from_address"]
        body = escape_markup(exp["subject"])
        got_n = (note.get("app_name"), note.get("summary"), note.get("body"),
                 note.get("hints", {}).get("category"))
        want_n = ("mailwatch", summary, body, "email.arrived")
        ok(got_n == want_n,
           "%s: notification (app, summary, escaped body, category)" % label,
           "got  %r\nwant %r" % (got_n, want_n))
        ok(html.unescape(note.get("body", "")) == exp["subject"] and
           not re.search(r"[<>]|&(?!(amp|lt|gt|quot|apos);)",
                         note.get("body", "")),
           "%s: notification body has no live markup" % label)
    # No From, Subject, Date or Message-ID at all: every variable is
    # still set (empty), and the notification still says something.
    n = len(mw.hook_records())
    bare_uid = dc.append("alice", "INBOX", mwtest.crlf(
        "To: alice@example.org\n\nNo headers to speak of.\n"))
    recs = mw.wait_hooks(n + 1, 10)
    notes = nd.wait_records(n + 1, 10)
    if ok(len(recs) == n + 1 and len(notes) == n + 1,
          "bare message: one hook run and one notification"):
        got = env_of(recs[-1])
        ok(set(got) == MSG_KEYS and got["MAILWATCH_UID"] == str(bare_uid)
           and all(got[k] == "" for k in (
               "MAILWATCH_FROM", "MAILWATCH_FROM_NAME",
               "MAILWATCH_FROM_ADDRESS", "MAILWATCH_SUBJECT",
               "MAILWATCH_MESSAGE_ID")),
           "bare message: all variables set, the missing ones empty",
           repr(got))
        ok(notes[-1].get("summary", "").strip() and
           notes[-1].get("body", "").strip(),
           "bare message: notification summary and body not empty (%r, %r)"
           % (notes[-1].get("summary"), notes[-1].get("body")))
        line = mw.wait_log(r"new mail UID %d .*" % bare_uid, 5)
        ok(line and line.group(0).endswith(
            "from (no sender): (no subject)"),
           "bare message: the log line says it has no sender or subject",
           line and line.group(0))
    # A 5000-character subject (folded, 2-byte characters): capped on a
    # character boundary, still valid UTF-8, the start kept.
    long_subj = " ".join(["Überlänge%03d" % i for i in range(400)])
    n = len(mw.hook_records())
    words = long_subj.split(" ")
    folded = "\n ".join(" ".join(words[i:i + 5])
                        for i in range(0, len(words), 5))
    dc.append("alice", "INBOX", raw_message(
        "From: long@example.org\nSubject: %s\n" % folded))
    recs = mw.wait_hooks(n + 1, 10)
    notes = nd.wait_records(n + 1, 10)
    if ok(len(recs) == n + 1 and len(notes) == n + 1,
          "long subject: one hook run and one notification"):
        got = recs[-1]["MAILWATCH_SUBJECT"]
        stem = got[:-1] if got.endswith("\u2026") else got
        ok(100 <= len(got.encode()) <= 1024 and long_subj.startswith(stem)
           and len(stem) < len(long_subj),
           "long subject capped (%d bytes), a prefix of the original"
           % len(got.encode()), got[-40:])
        ok(html.unescape(notes[-1]["body"]) == got,
           "long subject: the notification shows the same text")
    ok(all(r.get("icon") == "mail-unread" and
           r.get("hints", {}).get("urgency") == 1 and
           r.get("replaces_id") == 0 for r in nd.records()),
       "notifications: icon mail-unread, urgency normal (defaults)")
    markup = [n for n in nd.records() if "evil" in n.get("body", "")]
    ok(markup and markup[0]["body"].startswith("&lt;b&gt;x&lt;/b&gt; &amp; "
                                               "&lt;a href="),
       "the <b>/<a> subject is shown as &lt;b&gt;... text",
       markup and markup[0]["body"])
    left = [f for f in os.listdir(mw.dir) if f.startswith("pwned")] + \
        [f for f in os.listdir(os.path.join(mw.dir, "home"))
         if f.startswith("pwned")]
    ok(not left, "$(touch ...) in subject, name and arguments is inert "
       "(nothing created: %s)" % left)
    ok(not os.path.exists(os.path.join(mw.dir, "out")),
       "'>out' argument redirected nothing")
    finish(mw)


def test_burst_of_100():
    """100 messages appended back to back on one connection: 100 hook
    runs, in UID order, none twice."""
    need_binaries()
    dc = mwtest.Dovecot()
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    mw = mwtest.Mailwatch({
        "general": {"notify": True, "on_new_mail": "{hook}",
                    "on_new_mail_post": "{post_hook}"},
        "account test": dc.account("alice"),
    }, bus=bus)
    if not ok(wait_idle(mw, 1), "mailwatch reaches IDLE"):
        return
    msgs = [mwtest.make_message("burst %03d" % i,
                                msgid="<burst-%03d@mwtest.example>" % i)
            for i in range(100)]
    t0 = time.monotonic()
    uids = dc.append_many("alice", "INBOX", msgs)
    t_app = time.monotonic() - t0
    ok(len(set(uids)) == 100, "100 appended in %.2f s" % t_app)
    recs = mw.wait_hooks(100, 60)
    t_all = time.monotonic() - t0
    comment("100 hook runs after %.2f s" % t_all)
    suid, recs = sentinel(dc, mw, "alice", "INBOX", 100, "after burst")
    got = uids_of(recs)
    ok(len(recs) == 101 and got.count(suid) == 1,
       "exactly 100 hook runs for the burst, then the sentinel (%d runs)"
       % len(recs))
    burst = [u for u in got if u != suid]
    ok(len(burst) == 100 and set(burst) == set(uids),
       "hook UIDs == appended UIDs, none twice",
       "missing %s, extra %s, duplicates %s" % (
           sorted(set(uids) - set(burst)), sorted(set(burst) - set(uids)),
           sorted(u for u in set(burst) if burst.count(u) > 1)))
    ordered, missing = spawn_order(mw, recs)
    ok(not missing and uids_of(ordered) == sorted(uids_of(ordered)),
       "hooks started in UID order",
       "start order %s; no start line for pids %s" % (
           uids_of(ordered), missing))
    subjects = {r["MAILWATCH_UID"]: r["MAILWATCH_SUBJECT"] for r in recs}
    ok(all(subjects.get(str(u)) == "burst %03d" % i
           for i, u in enumerate(uids)),
       "each UID carries its own subject")
    posts = mw.hook_records("post")
    counts = [int(p["MAILWATCH_COUNT"]) for p in posts]
    ok(sum(counts) == 101 and all(c > 0 for c in counts),
       "on_new_mail_post counts add up to 101 over %d batches %s" % (
           len(posts), counts))
    # With the default burst setting a burst is folded into one summary
    # that replaces itself. Whatever the form, what is on screen at the
    # end must stand for the 101 messages, each once.
    mwtest.wait_until(lambda: represented(screen(nd), "test", "INBOX")
                      >= 101, 10)
    mw.settle(0.3)
    shown = screen(nd)
    ok(represented(shown, "test", "INBOX") == 101,
       "the notifications on screen stand for the 101 messages (%d)"
       % represented(shown, "test", "INBOX"),
       "\n".join("%s: %s / %s" % (i, r.get("summary"), r.get("body"))
                 for i, r in sorted(shown.items())))
    comment("%d Notify calls, %d on screen at the end" % (
        len(nd.records()), len(shown)))
    finish(mw)


def test_batch_of_100_burst_off():
    """burst = 0 (no summaries): 100 messages that appear at once
    (MULTIAPPEND, one batch) give 100 notifications, one per message."""
    need_binaries()
    dc = mwtest.Dovecot()
    started = watch_inbox(dc)
    if not started:
        return
    _, nd, mw = started
    uids = dc.append_many("alice", "INBOX",
                          [mwtest.make_message("batch %03d" % i)
                           for i in range(100)], atomic=True)
    recs = mw.wait_hooks(100, 60)
    ok(sorted(uids_of(recs)) == sorted(uids), "100 hook runs")
    notes = nd.wait_records(100, 5)
    dropped = re.findall(r"notifications unanswered: dropping", mw.log())
    bodies = set(n.get("body") for n in notes)
    ok(len(notes) == 100 and bodies == set("batch %03d" % i
                                           for i in range(100)),
       "100 notifications, one per message (got %d)" % len(notes),
       "mailwatch dropped %d (\"64 notifications unanswered: dropping "
       "...\", logged at debug level only): announce() in src/watcher.c "
       "sends the whole batch in one go, so no Notify reply can be read "
       "before NOTIFY_MAX_PENDING (64, src/sink_notify.c) is reached"
       % len(dropped))
    finish(mw)


def test_idle_refresh_races():
    """idle_timeout = 1 (IDLE ended and re-issued after a second of
    quiet) while messages arrive one by one at uneven intervals: each is
    announced exactly once, in UID order."""
    need_binaries()
    import random
    dc = mwtest.Dovecot()
    bus = mwtest.SessionBus()
    mwtest.Notifyd(bus)
    mw = mwtest.Mailwatch({
        "general": {"notify": True, "on_new_mail": "{hook}",
                    "idle_timeout": 1},
        "account test": dc.account("alice"),
    }, bus=bus)
    if not ok(wait_idle(mw, 1), "mailwatch reaches IDLE"):
        return
    rnd = random.Random(4711)
    uids = []
    with dc.client("alice") as c:
        for i in range(20):
            uids += c.append_many("INBOX", [mwtest.make_message("r%d" % i)])
            time.sleep(rnd.uniform(0, 0.35))
    suid, recs = sentinel(dc, mw, "alice", "INBOX", 20, "after races")
    uids.append(suid)
    ordered, missing = spawn_order(mw, recs)
    ok(uids_of(ordered) == uids,
       "20 messages across IDLE refreshes: each announced once, in order",
       "hook UIDs %s\nappended  %s" % (uids_of(ordered), uids))
    # A refresh is a DONE not caused by new mail (idle -> idle-done);
    # whether one fell among the appends depends on timer coalescing
    # (test_timers checks that refreshes are sent and answered).
    refreshes = len(re.findall(r"session: idle -> idle-done", mw.log()))
    comment("%d IDLE refreshes meanwhile" % refreshes)
    finish(mw)


def test_two_accounts_three_mailboxes():
    """alice and bob, INBOX + Lists/dev + a non-ASCII name each, all at
    once: one message into each of the 6 gives 6 runs, each naming its
    account and mailbox."""
    need_binaries()
    boxes = ["INBOX", "Lists/dev", "Reçus/日本"]
    dc = mwtest.Dovecot()
    for user in ("alice", "bob"):
        for b in boxes[1:]:
            dc.create_mailbox(user, b)
    bus = mwtest.SessionBus()
    nd = mwtest.Notifyd(bus)
    mw = mwtest.Mailwatch({
        "general": {"notify": True, "on_new_mail": "{hook}"},
        "account work": dc.account("alice", mailboxes=boxes),
        "account home": dc.account("bob", mailboxes=boxes,
                                   urgency="critical",
                                   icon="mail-message-new"),
    }, bus=bus)
    if not ok(wait_idle(mw, 6), "all 6 mailboxes reach IDLE (%d)"
              % idle_count(mw)):
        return
    want = set()
    for acct, user in (("work", "alice"), ("home", "bob")):
        for b in boxes:
            subj = "to %s %s" % (user, b)
            uid = dc.append(user, b, mwtest.make_message(subj))
            uv = dc.status(user, b)["UIDVALIDITY"]
            want.add((acct, b, str(uid), str(uv), subj))
    mw.wait_hooks(6, 20)
    mw.settle()
    recs = mw.hook_records()
    got = set((r["MAILWATCH_ACCOUNT"], r["MAILWATCH_MAILBOX"],
               r["MAILWATCH_UID"], r["MAILWATCH_UIDVALIDITY"],
               r["MAILWATCH_SUBJECT"]) for r in recs)
    ok(len(recs) == 6 and got == want,
       "6 hook runs, each with its account, mailbox (UTF-8), UID, "
       "UIDVALIDITY",
       "got %s\nwant %s" % (sorted(got), sorted(want)))
    notes = nd.wait_records(6, 10)
    ok(len(notes) == 6, "6 notifications (%d)" % len(notes))
    per = sorted((n.get("body", "").split()[1], n.get("icon"),
                  n.get("hints", {}).get("urgency")) for n in notes)
    want_per = sorted([("alice", "mail-unread", 1)] * 3 +
                      [("bob", "mail-message-new", 2)] * 3)
    ok(per == want_per, "per-account icon and urgency (critical = 2)",
       "got %s" % per)
    finish(mw)


def test_odd_mailbox_names():
    """Mailbox names that need quoting or modified UTF-7: quotes and a
    backslash, '&', an emoji (a UTF-16 surrogate pair) and a '.'."""
    need_binaries()
    names = ['Say "hi" \\ bye', "R&D", "Post 🎉 Ünï", "a.b"]
    # LAYOUT=fs: Maildir++ forbids '.' in names.
    dc = mwtest.Dovecot(extra_conf="mail_location = "
                        "maildir:~/Maildir:LAYOUT=fs\n")
    for n in names:
        dc.create_mailbox("alice", n)
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": "{hook}"},
        "account t": dc.account("alice", mailboxes=names),
    }, sd_notify=True)
    if not ok(wait_idle(mw, len(names)), "all %d mailboxes reach IDLE"
              % len(names), mw.log_tail(20)):
        return
    # Dovecot 2.3's NOTIFY does not follow a name with '&' (R&D): it has
    # IDLE apart, which the status line says (a trial read "2 mailboxes
    # over 3 connections (NOTIFY)").
    apart = sum("&" in n for n in names)
    ok(mw.wait_sd_notify(r"STATUS=.*: %d mailboxes over \d connections "
                         r"\(NOTIFY; IDLE for %d it does not follow\)"
                         % (len(names), apart), 10),
       "the status line says why there are more connections",
       (mw.sd_notify_messages() or [""])[-1])
    want = set()
    for n in names:
        uid = dc.append("alice", n, mwtest.make_message("to " + n))
        want.add((n, str(uid), "to " + n))
    mw.wait_hooks(len(names), 10)
    mw.settle(0.3)
    got = set((r["MAILWATCH_MAILBOX"], r["MAILWATCH_UID"],
               r["MAILWATCH_SUBJECT"]) for r in mw.hook_records())
    ok(got == want and len(mw.hook_records()) == len(names),
       "one run per mailbox, MAILWATCH_MAILBOX in UTF-8 as configured",
       "got %s" % sorted(got))
    finish(mw)


def test_seen_expunge_flags():
    """Mail appended already \\Seen is not announced; EXPUNGE and flag
    changes while idling announce nothing, and the next new message is
    announced exactly once."""
    need_binaries()
    dc = mwtest.Dovecot()
    old = dc.append_many("alice", "INBOX",
                         [mwtest.make_message("old %d" % i)
                          for i in range(4)])
    started = watch_inbox(dc)
    if not started:
        return
    _, nd, mw = started
    announced = []

    # \Seen on arrival.
    seen_uid = dc.append("alice", "INBOX", mwtest.make_message("read"),
                         flags=("\\Seen",))
    seen_many = dc.append_many("alice", "INBOX",
                               [mwtest.make_message("read %d" % i)
                                for i in range(3)], flags=("\\Seen",))
    uid, recs = sentinel(dc, mw, "alice", "INBOX", 0, "after seen")
    announced.append(uid)
    ok(uids_of(recs) == announced,
       "already-\\Seen mail not announced, the next unseen one once",
       "hook UIDs %s (seen %s, sentinel %d)" % (uids_of(recs),
                                               [seen_uid] + seen_many, uid))

    # EXPUNGE of an old message while idling.
    mark = mw.mark()
    dc.expunge("alice", "INBOX", [old[1]])
    # With QRESYNC enabled (Dovecot) it comes as VANISHED.
    ok(mw.wait_log(r"S: \* (\d+ EXPUNGE|VANISHED )", 10, since=mark),
       "mailwatch saw the EXPUNGE")
    uid, recs = sentinel(dc, mw, "alice", "INBOX", len(announced),
                         "after expunge")
    announced.append(uid)
    ok(uids_of(recs) == announced,
       "EXPUNGE announces nothing; next message announced once",
       "hook UIDs %s" % uids_of(recs))

    # Flag changes while idling, including one that makes a message
    # unseen again: not new mail.
    mark = mw.mark()
    dc.store("alice", "INBOX", [old[0], old[2]], ("\\Flagged",))
    dc.store("alice", "INBOX", [seen_uid], ("\\Seen",), op="-FLAGS")
    dc.store("alice", "INBOX", [announced[0]], ("\\Seen",))
    ok(mw.wait_log(r"S: \* \d+ FETCH \(.*FLAGS", 10, since=mark),
       "mailwatch saw the flag changes")
    uid, recs = sentinel(dc, mw, "alice", "INBOX", len(announced),
                         "after flags")
    announced.append(uid)
    ok(uids_of(recs) == announced,
       "flag changes announce nothing; next message announced once",
       "hook UIDs %s" % uids_of(recs))

    # Expunging the newest message (the one just announced), then a new
    # one: "UID n:*" quirks must not replay anything.
    dc.expunge("alice", "INBOX", [announced[-1]])
    uid, recs = sentinel(dc, mw, "alice", "INBOX", len(announced),
                         "after expunging the newest")
    announced.append(uid)
    ok(uids_of(recs) == announced,
       "after expunging the newest message the next one is announced "
       "once", "hook UIDs %s" % uids_of(recs))

    # Expunge everything and deliver at once.
    dc.expunge("alice", "INBOX")
    uid, recs = sentinel(dc, mw, "alice", "INBOX", len(announced),
                         "after emptying")
    announced.append(uid)
    ok(uids_of(recs) == announced,
       "after emptying the mailbox the next one is announced once",
       "hook UIDs %s" % uids_of(recs))
    notes = nd.wait_records(len(announced), 10)
    ok(len(notes) == len(announced),
       "one notification per announced message (%d)" % len(notes))
    finish(mw)


def test_post_hook_per_batch():
    """on_new_mail per message, on_new_mail_post once per batch with
    MAILWATCH_COUNT (and only ACCOUNT, MAILBOX, COUNT)."""
    need_binaries()
    dc = mwtest.Dovecot()
    dc.create_mailbox("alice", "Lists/dev")
    bus = mwtest.SessionBus()
    mwtest.Notifyd(bus)
    mw = mwtest.Mailwatch({
        "general": {"notify": True, "on_new_mail": "{hook}",
                    "on_new_mail_post": "{post_hook}"},
        "account test": dc.account("alice", mailboxes="Lists/dev"),
    }, bus=bus)
    if not ok(wait_idle(mw, 1), "mailwatch reaches IDLE"):
        return
    # MULTIAPPEND: the three appear at once, one EXISTS, one batch.
    uids = dc.append_many("alice", "Lists/dev",
                          [mwtest.make_message("multi %d" % i)
                           for i in range(3)], atomic=True)
    mwtest.wait_until(lambda: len(mw.hook_records("post")) >= 1, 10)
    recs = mw.wait_hooks(3, 10)
    ok(sorted(uids_of(recs)) == sorted(uids) and len(recs) == 3,
       "on_new_mail ran once per message of the batch %s" % uids_of(recs))
    uid, recs = sentinel(dc, mw, "alice", "Lists/dev", 3, "single")
    mwtest.wait_until(lambda: len(mw.hook_records("post")) >= 2, 10)
    mw.settle(0.3)
    posts = mw.hook_records("post")
    ok([env_of(p) for p in posts] == [
        {"MAILWATCH_ACCOUNT": "test", "MAILWATCH_MAILBOX": "Lists/dev",
         "MAILWATCH_COUNT": "3"},
        {"MAILWATCH_ACCOUNT": "test", "MAILWATCH_MAILBOX": "Lists/dev",
         "MAILWATCH_COUNT": "1"}],
       "on_new_mail_post: once per batch, COUNT 3 then 1, nothing else",
       "post runs: %s" % [env_of(p) for p in posts])
    ok(len(recs) == 4, "4 on_new_mail runs in all (%d)" % len(recs))
    # A batch of only \Seen mail is not a batch of new mail.
    dc.append_many("alice", "Lists/dev", [mwtest.make_message("seen")],
                   flags=("\\Seen",))
    uid, recs = sentinel(dc, mw, "alice", "Lists/dev", 4, "after seen")
    mwtest.wait_until(lambda: len(mw.hook_records("post")) >= 3, 10)
    mw.settle(0.3)
    counts = [p["MAILWATCH_COUNT"] for p in mw.hook_records("post")]
    ok(counts == ["3", "1", "1"],
       "no on_new_mail_post for a batch of already-seen mail: %s" % counts)
    finish(mw)


def test_no_notification_server():
    """A session bus without a notification server, and no bus at all:
    hooks still run, the log says so once."""
    need_binaries()
    dc = mwtest.Dovecot()
    bus = mwtest.SessionBus()
    for label, b in (("bus without a notification server", bus),
                     ("no session bus at all", None)):
        mw = mwtest.Mailwatch({
            "general": {"notify": True, "on_new_mail": "{hook}"},
            "account test": dc.account("alice"),
        }, bus=b)
        if not ok(wait_idle(mw, 1), "%s: mailwatch reaches IDLE" % label):
            return
        uids = []
        for i in range(3):
            uids.append(dc.append("alice", "INBOX",
                                  mwtest.make_message("%s %d" % (label, i))))
            mw.wait_hooks(i + 1, 10)
        recs = mw.wait_hooks(3, 10)
        ok(uids_of(recs) == uids, "%s: hooks ran for all 3" % label,
           "hook UIDs %s, appended %s" % (uids_of(recs), uids))
        # The warning comes with the D-Bus error reply; a second one
        # would come soon after.
        mw.wait_log(r"notification server|session bus", 10)
        mwtest.quiet(0.5)
        warn = re.findall(r"^.*(?:no notification server|cannot connect to "
                          r"the session bus).*$", mw.log(), re.M)
        warn = [w for w in warn if "notification dropped" not in w]
        ok(len(warn) == 1, "%s: said once in the log" % label,
           "\n".join(warn) or "(no such line)")
        ok(mw.running(), "%s: still running" % label)
        finish(mw, "mailwatch (%s)" % label)


def test_notification_server_comes_and_goes():
    """The notification server goes away while mailwatch runs, comes back,
    then the whole session bus goes away: hooks run throughout, the log
    says once that notifications fail and once that they work again, and
    mailwatch keeps running."""
    need_binaries()
    dc = mwtest.Dovecot()
    started = watch_inbox(dc)
    if not started:
        return
    bus, nd, mw = started
    n = 0

    def one(label):
        nonlocal n
        uid = dc.append("alice", "INBOX", mwtest.make_message(label))
        n += 1
        recs = mw.wait_hooks(n, 10)
        return ok(len(recs) == n and recs[-1]["MAILWATCH_UID"] == str(uid),
                  "%s: the hook ran" % label)

    one("with a server")
    ok(len(nd.wait_records(1, 10)) == 1, "with a server: notified")
    nd.stop()
    for i in range(3):
        one("server gone %d" % i)
    mw.wait_log(r"no notification server|notification failed", 10)
    nd2 = mwtest.Notifyd(bus)
    one("server back")
    ok(len(nd2.wait_records(1, 10)) == 1, "server back: notified again")
    ok(mw.wait_log(r"notifications work again", 10),
       "the log says notifications work again")
    bus.stop()
    for i in range(2):
        one("bus gone %d" % i)

    def failures():
        return [f for f in re.findall(
            r"^.*(?:no notification server|desktop notification failed|"
            r"cannot connect to the session bus).*$", mw.log(), re.M)
            if "notification dropped" not in f]
    # The second line comes when the bus's loss is noticed; a third would
    # come soon after.
    mwtest.wait_until(lambda: len(failures()) >= 2, 10)
    mwtest.quiet(0.5)
    fails = failures()
    ok(len(fails) == 2,
       "a failure line when the server went and when the bus went, no "
       "more (%d)" % len(fails), "\n".join(fails))
    ok(mw.running(), "mailwatch keeps running without a bus")
    finish(mw)


if __name__ == "__main__":
    mwtest.main(test_hook_env_and_notification,
                test_burst_of_100,
                test_batch_of_100_burst_off,
                test_idle_refresh_races,
                test_two_accounts_three_mailboxes,
                test_odd_mailbox_names,
                test_seen_expunge_flags,
                test_post_hook_per_batch,
                test_no_notification_server,
                test_notification_server_comes_and_goes)
