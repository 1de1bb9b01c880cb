#!/usr/bin/python3
"""make install / uninstall into a DESTDIR, the man pages (groff, man,
mandoc lint), and the contrib/ hooks: syntax, shellcheck, behaviour with a
fake environment and fake mbsync / notmuch / players, and two of them run
by mailwatch itself against Dovecot."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment, skip  # noqa: E402

REPO = mwtest.REPO
CONTRIB = os.path.join(REPO, "contrib")
HOOKS = sorted(f for f in os.listdir(CONTRIB) if f.startswith("mailwatch-"))
EXAMPLES = sorted(f for f in os.listdir(CONTRIB) if f.endswith(".example"))
MAN_PAGES = [("man1", "mailwatch.1"), ("man5", "mailwatch.ini.5")]
UNITS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "systemd"))
               if f.endswith(".service.in"))

_tmpdirs = []


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix="mwtest-%s-" % prefix)
    _tmpdirs.append(d)
    return d


def cleanup():
    while _tmpdirs:
        shutil.rmtree(_tmpdirs.pop(), ignore_errors=True)


def run(argv, timeout=60, **kw):
    """Runs argv (bounded: timeout seconds, scaled); returns (status,
    stdout, stderr) as text."""
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=mwtest._t(timeout),
                           **kw)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %d s" % mwtest._t(timeout)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def files_under(root):
    """Relative paths of every non-directory under root."""
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


# Settings a surrounding make or the caller's environment must not pass to
# the make under test.
MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR",
             "PREFIX", "BINDIR", "MANDIR", "DOCDIR", "CONTRIBDIR",
             "USERUNITDIR")


def make(*args, env=None):
    e = {k: v for k, v in (env or os.environ).items() if k not in MAKE_VARS}
    return run(["make", "-s", "-C", REPO] + list(args), timeout=120, env=e)


def ini_word(path):
    """path as one word of a mailwatch command line."""
    return "'%s'" % path if "'" not in path else path


# ---------------------------------------------------------------------------

def expected_files(prefix, unitdir):
    p = prefix.lstrip("/")
    want = {p + "/bin/mailwatch",
            p + "/share/man/man1/mailwatch.1",
            p + "/share/man/man5/mailwatch.ini.5",
            p + "/share/doc/mailwatch/mailwatch.ini.example",
            p + "/share/mailwatch/contrib/README.md"}
    want |= {p + "/share/mailwatch/contrib/" + h for h in HOOKS + EXAMPLES}
    want |= {unitdir.lstrip("/") + "/" + u for u in UNITS}
    return want


def test_install_uninstall():
    """make install DESTDIR=... PREFIX=/usr: binary, man pages, example
    config, contrib hooks and units with @BINDIR@ replaced; make uninstall
    removes every one of them."""
    dest = tmpdir("destdir")
    rc, out, err = make("install", "DESTDIR=" + dest, "PREFIX=/usr")
    if not ok(rc == 0, "make install DESTDIR=... PREFIX=/usr", out + err):
        return
    want = expected_files("/usr", "/usr/lib/systemd/user")
    got = files_under(dest)
    ok(got == want, "installed exactly the %d expected files" % len(want),
       "missing: %s\nunexpected: %s" % (sorted(want - got),
                                        sorted(got - want)))
    binary = os.path.join(dest, "usr/bin/mailwatch")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    ok(os.path.exists(binary) and mode(binary) == 0o755,
       "usr/bin/mailwatch, mode 755")
    rc, out, _ = run([binary, "--version"], timeout=10)
    ok(rc == 0 and re.match(r"mailwatch \d+\.\d+\.\d+$", out.strip()),
       "installed binary runs: %s" % out.strip())
    example = os.path.join(dest, "usr/share/doc/mailwatch/"
                           "mailwatch.ini.example")
    rc, out, err = run([binary, "--check-config", "-c", example],
                       timeout=10)
    ok(rc == 0, "the installed example configuration is valid: %s" %
       out.strip(), err)
    for sec, page in MAN_PAGES:
        p = os.path.join(dest, "usr/share/man", sec, page)
        with open(p, "rb") as a, open(os.path.join(REPO, "man", page),
                                      "rb") as b:
            # The example's and contrib's places are the prefix's.
            want = b.read().replace(
                b"/usr/local/share/doc/mailwatch",
                b"/usr/share/doc/mailwatch").replace(
                b"/usr/local/share/mailwatch/contrib",
                b"/usr/share/mailwatch/contrib")
            ok(a.read() == want and mode(p) == 0o644,
               "%s/%s, mode 644, as in man/ with the example and contrib "
               "under PREFIX" % (sec, page))
            if page == "mailwatch.ini.5":
                ok(b"/usr/share/mailwatch/contrib/" in want,
                   "mailwatch.ini(5) says where contrib/ was installed")
    if shutil.which("man"):
        rc, out, err = run(["man", "-M", os.path.join(dest, "usr/share/man"),
                            "5", "mailwatch.ini"], timeout=30,
                           env=dict(os.environ, MANWIDTH="80",
                                    MANPAGER="cat", PAGER="cat"))
        ok(rc == 0 and "mailwatch.ini" in out,
           "man -M DESTDIR/usr/share/man 5 mailwatch.ini finds the page",
           err)
    for u in UNITS:
        p = os.path.join(dest, "usr/lib/systemd/user", u)
        with open(p) as f:
            text = f.read()
        execs = re.findall(r"^ExecStart=(\S+)", text, re.M)
        ok(execs == ["/usr/bin/mailwatch"] and
           not re.search(r"@[A-Z_]+@", text) and mode(p) == 0o644,
           "%s: ExecStart=/usr/bin/mailwatch, no @VAR@ left, mode 644" % u,
           execs)
    for h in HOOKS:
        p = os.path.join(dest, "usr/share/mailwatch/contrib", h)
        ok(mode(p) == 0o755, "contrib %s installed, mode 755" % h)

    rc, out, err = make("uninstall", "DESTDIR=" + dest, "PREFIX=/usr")
    ok(rc == 0, "make uninstall DESTDIR=... PREFIX=/usr", out + err)
    left = files_under(dest)
    ok(not left, "nothing left after uninstall", sorted(left))
    gone = [d for d in ("usr/share/doc/mailwatch", "usr/share/mailwatch")
            if os.path.exists(os.path.join(dest, d))]
    ok(not gone, "its own directories are removed too", gone)


def test_install_home_prefix():
    """PREFIX=$HOME/.local: the units go where the user manager looks
    (~/.local/share/systemd/user, not ~/.local/lib) and run
    ~/.local/bin/mailwatch."""
    dest = tmpdir("destdir")
    home = "/home/mwtest-user"
    prefix = home + "/.local"
    env = dict(os.environ, HOME=home)
    rc, out, err = make("install", "DESTDIR=" + dest, "PREFIX=" + prefix,
                        env=env)
    if not ok(rc == 0, "make install PREFIX=$HOME/.local", out + err):
        return
    unitdir = prefix + "/share/systemd/user"
    got = files_under(dest)
    want = expected_files(prefix, unitdir)
    ok(got == want, "units in ~/.local/share/systemd/user",
       "missing: %s\nunexpected: %s" % (sorted(want - got),
                                        sorted(got - want)))
    p = os.path.join(dest + unitdir, "mailwatch.service")
    text = open(p).read() if os.path.exists(p) else ""
    ok("ExecStart=%s/bin/mailwatch\n" % prefix in text,
       "ExecStart=~/.local/bin/mailwatch (expanded)")
    rc, out, err = make("uninstall", "DESTDIR=" + dest, "PREFIX=" + prefix,
                        env=env)
    ok(rc == 0 and not files_under(dest), "uninstall leaves nothing",
       out + err + str(sorted(files_under(dest))))


def test_man_pages():
    """The man pages render without a warning."""
    for _, page in MAN_PAGES:
        src = os.path.join(REPO, "man", page)
        if shutil.which("groff"):
            rc, out, err = run(["groff", "-ww", "-man", "-Tutf8", "-z", src])
            ok(rc == 0 and not err.strip(),
               "groff -ww -man %s: no warnings" % page, err)
        else:
            skip("groff -ww -man %s" % page, "groff is missing")
        if shutil.which("man"):
            env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
            rc, out, err = run(["man", "--warnings", "-E", "UTF-8", "-l",
                                src], env=env)
            lines = out.splitlines()
            ok(rc == 0 and not err.strip() and "NAME" in lines and
               max(len(ln) for ln in lines) <= 80,
               "man --warnings -l %s (MANWIDTH=80): no warnings, fits"
               % page, err)
        else:
            skip("man -l %s" % page, "man is missing")
        if shutil.which("mandoc"):
            rc, out, err = run(["mandoc", "-T", "lint", "-W", "style", src])
            ok(rc == 0 and not (out + err).strip(),
               "mandoc -T lint %s: clean" % page, out + err)
        else:
            skip("mandoc -T lint %s" % page, "mandoc is missing")


# ---------------------------------------------------------------------------
# contrib/

def test_contrib_static():
    """Each hook: executable, a POSIX sh script with set -eu and a header
    comment saying how to use it in the ini, no eval; sh -n and
    shellcheck pass."""
    ok(len(HOOKS) >= 4, "contrib hooks: %s" % ", ".join(HOOKS))
    ok(os.path.exists(os.path.join(CONTRIB, "README.md")),
       "contrib/README.md")
    readme = open(os.path.join(CONTRIB, "README.md")).read()
    for h in HOOKS:
        p = os.path.join(CONTRIB, h)
        text = open(p).read()
        ok(os.access(p, os.X_OK) and text.startswith("#!/bin/sh\n"),
           "%s: executable, #!/bin/sh" % h)
        header = text.split("\nset -eu\n")[0]
        ok("\nset -eu\n" in text and "mailwatch.ini" in header and
           re.search(r"on_new_mail(_post)? = ", header),
           "%s: set -eu, header shows its mailwatch.ini line" % h)
        ok(not re.search(r"^\s*[^#\n]*\beval\b", text, re.M),
           "%s: no eval" % h)
        ok("`%s`" % h in readme, "%s: listed in contrib/README.md" % h)
        rc, _, err = run(["sh", "-n", p])
        ok(rc == 0, "sh -n %s" % h, err)
        if shutil.which("dash") and os.path.realpath(
                shutil.which("sh")) != os.path.realpath(
                shutil.which("dash")):
            rc, _, err = run(["dash", "-n", p])
            ok(rc == 0, "dash -n %s" % h, err)
    if shutil.which("shellcheck"):
        rc, out, err = run(["shellcheck", "-s", "sh"] +
                           [os.path.join(CONTRIB, h) for h in HOOKS])
        ok(rc == 0, "shellcheck -s sh: clean", out + err)
    else:
        skip("shellcheck -s sh contrib/*", "shellcheck is missing")


class Sandbox:
    """A PATH of fake programs that record their argv (one JSON list per
    line in log) plus links to the few real tools the hooks use, and an
    environment without any inherited MAILWATCH_ variable."""

    TOOLS = ("cat", "sed", "mkdir", "mv", "flock", "tr", "rm", "sleep")

    def __init__(self, fakes=(), fail=()):
        self.dir = tmpdir("contrib")
        self.fake = os.path.join(self.dir, "fake")
        self.tools = os.path.join(self.dir, "tools")
        self.runtime = os.path.join(self.dir, "runtime")
        self.log = os.path.join(self.dir, "calls.jsonl")
        for d in (self.fake, self.tools, self.runtime):
            os.mkdir(d, 0o700)
        for t in self.TOOLS:
            real = shutil.which(t)
            if real:
                os.symlink(real, os.path.join(self.tools, t))
        for name in fakes:
            self.add_fake(name, exit=1 if name in fail else 0)

    def add_fake(self, name, exit=0):
        p = os.path.join(self.fake, name)
        with open(p, "w") as f:
            f.write("#!%s\nimport json, os, sys\n"
                    "with open(%r, 'a') as f:\n"
                    "    f.write(json.dumps([os.path.basename(sys.argv[0])]"
                    " + sys.argv[1:]) + '\\n')\n"
                    "sys.exit(%d)\n" % (sys.executable, self.log, exit))
        os.chmod(p, 0o755)

    def calls(self):
        try:
            with open(self.log) as f:
                return [json.loads(ln) for ln in f if ln.strip()]
        except FileNotFoundError:
            return []

    def env(self, **mw):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("MAILWATCH_")}
        e["PATH"] = self.fake + ":" + self.tools
        e["XDG_RUNTIME_DIR"] = self.runtime
        e["HOME"] = self.dir
        e.update({"MAILWATCH_" + k.upper(): v for k, v in mw.items()})
        return e

    def run(self, hook, *args, env=None, **mw):
        e = env if env is not None else self.env(**mw)
        return run([os.path.join(CONTRIB, hook)] + list(args), timeout=20,
                   env=e, cwd=self.dir)


def test_unread_counter():
    sb = Sandbox()
    counter = os.path.join(sb.runtime, "mailwatch", "unread")
    # Twenty messages at once, as mailwatch may run them concurrently.
    procs = [subprocess.Popen([os.path.join(CONTRIB, "mailwatch-unread")],
                              env=sb.env(account="work", mailbox="INBOX",
                                         uid=str(i), subject="$(id)"),
                              stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
             for i in range(20)]
    codes = [p.wait(mwtest._t(20)) for p in procs]
    for p in procs:
        p.stderr.close()
    ok(codes == [0] * 20, "20 concurrent runs exit 0", codes)
    ok(open(counter).read() == "20\n", "the count is 20, none lost")
    ok(stat.S_IMODE(os.stat(counter).st_mode) == 0o600 and
       stat.S_IMODE(os.stat(os.path.dirname(counter)).st_mode) == 0o700,
       "$XDG_RUNTIME_DIR/mailwatch/unread mode 600, directory 700")
    rc, _, _ = sb.run("mailwatch-unread", account="work", mailbox="INBOX",
                      count="07")
    ok(rc == 0 and open(counter).read() == "27\n",
       "as on_new_mail_post: adds MAILWATCH_COUNT (07 -> 27)")
    rc, out, _ = sb.run("mailwatch-unread", "show")
    ok(rc == 0 and out == "27\n", "show prints 27")
    rc, _, _ = sb.run("mailwatch-unread", "reset")
    rc2, out, _ = sb.run("mailwatch-unread", "show")
    ok(rc == 0 and rc2 == 0 and out == "0\n" and
       open(counter).read() == "0\n", "reset sets it to 0")
    rc, _, _ = sb.run("mailwatch-unread", "add", "work",
                      account="work", mailbox="INBOX")
    work = os.path.join(sb.runtime, "mailwatch", "work")
    ok(rc == 0 and open(work).read() == "1\n", "add NAME: a second counter")
    with open(counter, "w") as f:
        f.write("garbage\n")
    rc, _, _ = sb.run("mailwatch-unread", account="a", mailbox="INBOX")
    ok(rc == 0 and open(counter).read() == "1\n",
       "a file that is not a number counts as 0")
    with open(counter, "w") as f:
        f.write("010\n")
    rc, _, _ = sb.run("mailwatch-unread", account="a", mailbox="INBOX")
    ok(rc == 0 and open(counter).read() == "11\n",
       "leading zeros are decimal (010 + 1 = 11)")
    for args, mw, what in (
            (("add", "../x"), {}, "a counter name with /"),
            (("add", ".hidden"), {}, "a counter name starting with ."),
            (("frob",), {}, "an unknown action"),
            (("add",), {"count": "1; rm -rf ~"}, "a MAILWATCH_COUNT that "
             "is not a number")):
        rc, _, err = sb.run("mailwatch-unread", *args, **mw)
        ok(rc not in (0, None) and err.startswith(("mailwatch-unread:",
                                                   "usage:")),
           "refused: %s (status %s)" % (what, rc), err)
    env = sb.env()
    del env["XDG_RUNTIME_DIR"]
    rc, _, err = sb.run("mailwatch-unread", env=env)
    ok(rc == 1 and "XDG_RUNTIME_DIR" in err,
       "without XDG_RUNTIME_DIR: status 1 and says so", err)
    ok(not os.path.exists(os.path.join(sb.dir, "x")) and
       sorted(os.listdir(os.path.join(sb.runtime, "mailwatch"))) ==
       ["unread", "unread.lock", "work", "work.lock"],
       "no other files written",
       os.listdir(os.path.join(sb.runtime, "mailwatch")))


def test_mbsync_hook():
    sb = Sandbox(fakes=("mbsync", "notmuch"))
    hostile = "Lists/$(touch pwned) `touch pwned2` ; x"
    cases = [
        ((), {"mailbox": "INBOX"}, ["-q", "work:INBOX"],
         "account and mailbox -> mbsync -q work:INBOX"),
        ((), {"mailbox": "inbox"}, ["-q", "work:INBOX"],
         "inbox in any case -> INBOX"),
        ((), {"mailbox": "Lists/dev"}, ["-q", "work:Lists/dev"],
         "Lists/dev as is"),
        (("-d", "."), {"mailbox": "Lists.dev.ü"},
         ["-q", "work:Lists/dev/ü"], "-d . : Lists.dev.ü -> Lists/dev/ü"),
        (("-s", "INBOX.", "-d", "."), {"mailbox": "INBOX.Lists.dev"},
         ["-q", "work:Lists/dev"], "-s INBOX. -d . : INBOX.Lists.dev -> "
         "Lists/dev"),
        (("-c", "/x/mbsyncrc", "chan"), {"mailbox": "Sent"},
         ["-q", "-c", "/x/mbsyncrc", "chan:Sent"],
         "-c FILE and a channel name"),
        (("-a",), {"mailbox": "Sent"}, ["-q", "work"],
         "-a: the whole channel"),
        ((), {"mailbox": hostile}, ["-q", "work:" + hostile],
         "a hostile mailbox name is one literal argument"),
    ]
    for args, mw, want, what in cases:
        before = len(sb.calls())
        env = dict(account="work", count="2", **mw)
        rc, out, err = sb.run("mailwatch-mbsync", *args, **env)
        got = sb.calls()[before:]
        ok(rc == 0 and got == [["mbsync"] + want], what, (rc, got, err))
    ok(not os.path.exists(os.path.join(sb.dir, "pwned")) and
       not os.path.exists(os.path.join(sb.dir, "pwned2")),
       "nothing in the mailbox name was run")
    before = len(sb.calls())
    rc, _, err = sb.run("mailwatch-mbsync", "-n", account="work",
                        mailbox="INBOX", count="1")
    ok(rc == 0 and sb.calls()[before:] ==
       [["mbsync", "-q", "work:INBOX"], ["notmuch", "new", "--quiet"]],
       "-n: notmuch new --quiet after the sync", sb.calls()[before:])
    for args, mw, what in (
            ((), {"account": "work", "mailbox": "a,b"}, "a mailbox with a "
             "comma"),
            ((), {"account": "-V", "mailbox": "INBOX"}, "a channel "
             "starting with -"),
            (("x:y",), {"account": "work", "mailbox": "INBOX"}, "a channel "
             "with :"),
            ((), {"account": "work"}, "no MAILWATCH_MAILBOX"),
            (("-d", ":"), {"account": "work", "mailbox": "a:b"}, "-d with "
             "another separator than . or /")):
        before = len(sb.calls())
        rc, _, err = sb.run("mailwatch-mbsync", *args, **mw)
        ok(rc not in (0, None) and not sb.calls()[before:] and err,
           "refused, mbsync not run: %s" % what, (rc, err))
    lock = os.path.join(sb.runtime, "mailwatch", "mbsync-work.lock")
    ok(os.path.exists(lock), "runs for a channel share a lock file")

    failing = Sandbox(fakes=("mbsync", "notmuch"), fail=("mbsync",))
    rc, _, _ = failing.run("mailwatch-mbsync", "-n", account="work",
                           mailbox="INBOX")
    ok(rc != 0 and [c[0] for c in failing.calls()] == ["mbsync"],
       "mbsync fails: the hook fails, notmuch is not run")


def test_notmuch_hook():
    sb = Sandbox(fakes=("notmuch",))
    rc, _, err = sb.run("mailwatch-notmuch", account="work",
                        mailbox="INBOX", count="3")
    ok(rc == 0 and sb.calls() == [["notmuch", "new", "--quiet"]],
       "notmuch new --quiet", (sb.calls(), err))
    rc, _, err = sb.run("mailwatch-notmuch", "-c", "/x/cfg")
    ok(rc == 0 and sb.calls()[-1] == ["notmuch", "--config=/x/cfg", "new",
                                      "--quiet"],
       "-c FILE: notmuch --config=FILE new --quiet", sb.calls()[-1:])
    rc, _, err = sb.run("mailwatch-notmuch", "extra")
    ok(rc == 2 and "usage" in err, "an extra argument is refused")
    bad = Sandbox(fakes=("notmuch",), fail=("notmuch",))
    rc, _, err = bad.run("mailwatch-notmuch", account="work",
                         mailbox="Lists/dev")
    ok(rc == 1 and "work/Lists/dev" in err,
       "notmuch fails: status 1, the log line names the mailbox", err)


def test_sound_hook():
    snd = os.path.join(tmpdir("sounds"), "ding.oga")
    with open(snd, "wb") as f:
        f.write(b"OggS")
    for player, want in (
            ("pw-play", ["pw-play", "--", snd]),
            ("paplay", ["paplay", "--", snd]),
            ("canberra-gtk-play", ["canberra-gtk-play", "-f", snd,
                                   "-d", "mailwatch"])):
        sb = Sandbox(fakes=(player,))
        rc, _, err = sb.run("mailwatch-sound", snd)
        ok(rc == 0 and sb.calls() == [want],
           "only %s installed: %s" % (player, " ".join(want[:2])),
           (sb.calls(), err))
    sb = Sandbox(fakes=("canberra-gtk-play", "pw-play"))
    rc, _, err = sb.run("mailwatch-sound")
    ok(rc == 0 and sb.calls() == [["canberra-gtk-play", "-i",
                                   "message-new-email", "-d", "mailwatch"]],
       "no argument, canberra-gtk-play there: the theme's "
       "message-new-email", sb.calls())
    # Without canberra: the file from the data directories, with the
    # naming spec's fallback message-new-email -> message.
    sb = Sandbox(fakes=("paplay",))
    data = os.path.join(sb.dir, "data")
    os.makedirs(os.path.join(data, "sounds", "freedesktop", "stereo"))
    msg = os.path.join(data, "sounds", "freedesktop", "stereo",
                       "message.oga")
    open(msg, "wb").close()
    env = sb.env()
    env["XDG_DATA_DIRS"] = "/nonexistent:" + data
    rc, _, err = sb.run("mailwatch-sound", env=env)
    ok(rc == 0 and sb.calls() == [["paplay", "--", msg]],
       "no canberra: message-new-email falls back to "
       "sounds/freedesktop/stereo/message.oga in XDG_DATA_DIRS",
       (sb.calls(), err))
    home_snd = os.path.join(sb.dir, "mine.wav")
    open(home_snd, "wb").close()
    rc, _, err = sb.run("mailwatch-sound", "~/mine.wav")
    ok(rc == 0 and sb.calls()[-1] == ["paplay", "--", home_snd],
       "~/FILE is in the home directory", (sb.calls(), err))
    sb = Sandbox()
    rc, _, err = sb.run("mailwatch-sound", snd)
    ok(rc == 1 and "no sound player" in err,
       "no player at all: status 1 and says so", err)
    rc, _, err = sb.run("mailwatch-sound", "/nonexistent/x.oga")
    ok(rc == 1 and "cannot read" in err, "a missing file: status 1", err)


def test_hooks_under_mailwatch():
    """mailwatch itself runs mailwatch-unread (per message) and
    mailwatch-mbsync (per batch) with a fake mbsync in its PATH."""
    sb = Sandbox(fakes=("mbsync",))
    dc = mwtest.Dovecot()
    dc.create_mailbox("alice", "Lists/dev")
    unread = os.path.join(CONTRIB, "mailwatch-unread")
    mbsync = os.path.join(CONTRIB, "mailwatch-mbsync")
    env = {"PATH": sb.fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
    mw = mwtest.Mailwatch({
        "general": {"notify": False, "on_new_mail": ini_word(unread),
                    "on_new_mail_post": ini_word(mbsync)},
        "account test": dc.account("alice", mailboxes=["INBOX",
                                                       "Lists/dev"]),
    }, env=env)
    ok(mw.wait_log(r"INBOX: watching \(IDLE\)", 10) and
       mw.wait_log(r"Lists/dev: " + mwtest.WATCHED, 10), "idling")
    dc.append_many("alice", "INBOX", [mwtest.make_message("m%d" % i)
                                      for i in range(3)])
    dc.append("alice", "Lists/dev", mwtest.make_message("$(reboot)"))
    counter = os.path.join(mw.dir, "runtime", "mailwatch", "unread")

    def count():
        try:
            return open(counter).read()
        except OSError:
            return None
    mwtest.wait_until(lambda: count() == "4\n" and len(sb.calls()) >= 2,
                      10)
    ok(count() == "4\n", "four messages: the unread count is 4",
       count())
    got = sorted(c[2] for c in sb.calls())
    ok(got == ["test:INBOX", "test:Lists/dev"],
       "mbsync -q test:INBOX and test:Lists/dev, once per batch",
       sb.calls())
    ok(not re.search(r"on_new_mail.* (exited with status|killed)", mw.log()),
       "no hook failed", mw.log_tail(10))
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "clean exit")


if __name__ == "__main__":
    tests = [test_install_uninstall, test_install_home_prefix,
             test_man_pages, test_contrib_static, test_unread_counter,
             test_mbsync_hook, test_notmuch_hook, test_sound_hook]
    if mwtest.Mailwatch.available():
        tests.append(test_hooks_under_mailwatch)
    else:
        print("ok - test_hooks_under_mailwatch # SKIP build/asan/mailwatch "
              "is not built")
    try:
        mwtest.main(*tests)
    finally:
        cleanup()
