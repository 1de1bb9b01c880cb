#!/usr/bin/python3
"""The unseen count in a real status bar, end to end: Xvfb, i3 with its
i3bar, i3blocks running `mailwatch status --follow` (interval=persist, as
contrib/README.md sets it up), a private session bus, a private Dovecot and
mailwatch. The bar must show something once the count is known, and show
something else after new mail. The right end of the bar is
written as a PNG in a temporary directory (and to $MWTEST_SCREENSHOT when
set: that is how docs/statusbar.png is made).

Needs xvfb, i3-wm and i3blocks (scripts/deps.sh check); skips without
them."""

import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402
from test_popup import Proc, read_xwd, start_xvfb, write_png  # noqa: E402

BACKGROUND = "1a1b26"
CROP = 360  # pixels at the bar's right end: the status text

I3_CONFIG = """\
# i3 config file (v4)
font pango:DejaVu Sans 13
bar {
    position top
    workspace_buttons no
    status_command i3blocks -c %(blocks)s
    colors {
        background #%(bg)s
        statusline #c0caf5
        separator #565f89
    }
}
"""

BLOCKS = """\
[mail]
command=%(mw)s status --follow --format '\u2709 {unseen} unseen'
interval=persist
"""


def bar(fb):
    """(width, the bar's rows) read from the frame buffer: the rows at the
    top whose last pixel is the bar's background; or None."""
    try:
        w, h, rows = read_xwd(fb)
    except (OSError, ValueError, struct.error):
        return None
    bg = bytes.fromhex(BACKGROUND)
    n = 0
    while n < min(h, 60) and rows[n][-3:] == bg:
        n += 1
    return (w, rows[:n]) if n >= 10 else None


def ink(rows, width):
    """Pixels in the right end of rows that are not the background."""
    bg = bytes.fromhex(BACKGROUND)
    return sum(1 for row in rows
               for x in range(width - CROP, width)
               if row[3 * x:3 * x + 3] != bg)


def test_statusbar():
    missing = [p for p in ("Xvfb", "i3", "i3blocks") if not shutil.which(p)]
    if missing:
        raise mwtest.Skip("not installed: %s (scripts/deps.sh check)"
                          % " ".join(missing))
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")
    tmp = tempfile.mkdtemp(prefix="mwtest-statusbar-")
    try:
        run_bar(tmp)
    finally:
        mwtest.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run_bar(tmp):
    dc = mwtest.Dovecot()
    for i in range(3):
        dc.append("alice", "INBOX", mwtest.make_message("unread %d" % i))
    bus = mwtest.SessionBus()
    mw = mwtest.Mailwatch({"general": {"notify": False},
                           "account work": dc.account("alice")}, bus=bus)
    ok(mw.wait_log(r"INBOX: " + mwtest.WATCHED, 15), "mailwatch watches")

    xvfb, display, fb = start_xvfb(tmp)
    blocks = os.path.join(tmp, "i3blocks.conf")
    with open(blocks, "w") as f:
        f.write(BLOCKS % {"mw": mw.bin})
    conf = os.path.join(tmp, "i3.conf")
    with open(conf, "w") as f:
        f.write(I3_CONFIG % {"blocks": blocks, "bg": BACKGROUND})
    env = bus.env()
    env.update(DISPLAY=display, HOME=tmp, XDG_CONFIG_HOME=tmp,
               XDG_RUNTIME_DIR=tmp, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("WAYLAND_DISPLAY", None)
    i3 = Proc("i3", ["i3", "-c", conf], env, tmp)

    state = {"prev": None, "got": None}

    def settled(differs_from=None):
        """The bar drawn with text at its right end, the same in two
        reads in a row (and not differs_from)."""
        got = bar(fb)
        cur = got and (got[0], b"".join(got[1]))
        same = (cur and state["prev"] == cur and cur != differs_from and
                ink(got[1], got[0]) > 100)
        state["prev"], state["got"] = cur, got
        return same

    ok(mwtest.wait_until(settled, 15, interval=0.2),
       "i3bar shows the status text", i3.log_tail())
    first = state["prev"]
    if not first:
        return
    width, rows = state["got"]
    comment("bar %dx%d, %d text pixels at its right end" % (
        width, len(rows), ink(rows, width)))
    png = os.path.join(tmp, "statusbar.png")
    crop = [row[3 * (width - CROP):] for row in rows]
    write_png(png, CROP, crop)
    dest = os.environ.get("MWTEST_SCREENSHOT")
    if dest:
        shutil.copyfile(png, dest)
        comment("saved as " + dest)

    dc.append("alice", "INBOX", mwtest.make_message("one more"))
    # test_status.py holds --follow to a second; i3blocks and i3bar
    # redrawing is theirs, so this deadline is looser.
    ok(mwtest.wait_until(lambda: settled(first), 5, interval=0.1),
       "the bar changes after new mail")
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "mailwatch: clean exit",
       mw.sanitizer_errors())


if __name__ == "__main__":
    mwtest.main(test_statusbar)
