#!/usr/bin/python3
"""A real desktop notification, end to end: Xvfb on a free display, a
private session bus, dunst on both, a private Dovecot and mailwatch. A
message with a non-ASCII sender and markup in its subject is delivered;
the popup is captured from Xvfb's frame buffer (-fbdir, an XWD file),
cropped to the popup and written as a PNG in a temporary directory (and to
$MWTEST_SCREENSHOT when set: that is how docs/screenshot.png is made).

dunst runs with markup = full and format "<b>%s</b>\\n%b": the sender in
bold, and the subject shown as the literal text it is, because mailwatch
escapes it -- no bold, no link, "&" as "&".

Needs xvfb and dunst (scripts/deps.sh popup); skips without them. Python
standard library only: the XWD is decoded and the PNG encoded here."""

import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import mwtest  # noqa: E402
from mwtest import ok, comment  # noqa: E402

SENDER = "Zoë Ångström"
SUBJECT = ('<b>urgent</b> & <a href="http://example.com/?a=1&b=2">'
           'click here</a>')

DUNSTRC = """\
[global]
    monitor = 0
    follow = none
    width = 460
    height = 200
    origin = top-right
    offset = 24x24
    notification_limit = 5
    indicate_hidden = no
    separator_height = 2
    padding = 12
    horizontal_padding = 14
    text_icon_padding = 0
    frame_width = 2
    frame_color = "#7aa2f7"
    separator_color = frame
    sort = yes
    font = DejaVu Sans 11
    line_height = 2
    markup = full
    format = "<b>%s</b>\\n%b"
    alignment = left
    vertical_alignment = center
    show_age_threshold = -1
    ellipsize = end
    ignore_newline = no
    stack_duplicates = false
    show_indicators = no
    icon_position = off
    sticky_history = yes
    history_length = 5
    corner_radius = 0
    mouse_left_click = none
    mouse_middle_click = none
    mouse_right_click = none

[urgency_low]
    background = "#1a1b26"
    foreground = "#c0caf5"
    timeout = 0

[urgency_normal]
    background = "#1a1b26"
    foreground = "#c0caf5"
    timeout = 0

[urgency_critical]
    background = "#1a1b26"
    foreground = "#c0caf5"
    frame_color = "#f7768e"
    timeout = 0
"""


class Proc:
    """A helper process started here, stopped by pid (via mwtest)."""

    def __init__(self, name, argv, env, log_dir, **kw):
        self.name = name
        self.out = os.path.join(log_dir, name + ".log")
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True,
                                         **kw)
        mwtest._register(self)

    def __repr__(self):
        return "<%s pid=%d>" % (self.name, self.proc.pid)

    def log_tail(self, lines=30):
        return mwtest._tail(self.out, lines)

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        try:
            mwtest._stop_popen(self.proc, term_timeout=5)
        finally:
            mwtest._unregister(self)


def start_xvfb(tmp):
    """Xvfb on the first free display (-displayfd), 1024x600, black root,
    its screen mirrored to tmp/fb/Xvfb_screen0. Returns (proc, display,
    path of the XWD frame buffer)."""
    fbdir = os.path.join(tmp, "fb")
    os.mkdir(fbdir)
    r, w = os.pipe()
    try:
        x = Proc("Xvfb", ["Xvfb", "-displayfd", str(w), "-screen", "0",
                          "1024x600x24", "-fbdir", fbdir, "-nolisten", "tcp",
                          "-br", "-noreset"],
                 dict(os.environ), tmp, pass_fds=(w,))
    finally:
        os.close(w)
    data = b""
    deadline = time.monotonic() + mwtest._t(10)
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([r], [], [], 0.2)
        if ready:
            chunk = os.read(r, 64)
            if not chunk:
                break
            data += chunk
    os.close(r)
    if not data.strip().isdigit():
        raise RuntimeError("Xvfb gave no display: " + x.log_tail())
    return x, ":" + data.strip().decode(), os.path.join(fbdir,
                                                         "Xvfb_screen0")


def read_xwd(path):
    """(width, height, rows of RGB bytes) from a 24/32-bit TrueColor XWD
    file such as Xvfb's -fbdir screen."""
    with open(path, "rb") as f:
        data = f.read()
    hdr = struct.unpack(">25I", data[:100])
    (header_size, version, fmt, depth, width, height, _xoff, byte_order,
     _unit, _bit_order, _pad, bpp, bpl, _vclass, rmask, gmask, bmask,
     _bits, _cmap, ncolors) = hdr[:20]
    if version != 7 or fmt != 2 or bpp != 32:
        raise ValueError("unsupported XWD: version %d format %d bpp %d"
                         % (version, fmt, bpp))
    off = header_size + ncolors * 12
    shifts = []
    for mask in (rmask, gmask, bmask):
        s = 0
        while mask and not mask & 1:
            mask >>= 1
            s += 1
        shifts.append(s)
    order = "<" if byte_order == 0 else ">"
    rows = []
    for y in range(height):
        line = data[off + y * bpl: off + y * bpl + width * 4]
        px = struct.unpack(order + "%dI" % width, line)
        row = bytearray(width * 3)
        row[0::3] = bytes((p >> shifts[0]) & 0xff for p in px)
        row[1::3] = bytes((p >> shifts[1]) & 0xff for p in px)
        row[2::3] = bytes((p >> shifts[2]) & 0xff for p in px)
        rows.append(bytes(row))
    return width, height, rows


def bbox(width, rows, bg=b"\0\0\0"):
    """Bounding box (x0, y0, x1, y1) of the pixels that are not bg."""
    x0, y0, x1, y1 = width, len(rows), -1, -1
    blank = bg * width
    for y, row in enumerate(rows):
        if row == blank:
            continue
        xs = [x for x in range(width) if row[3 * x:3 * x + 3] != bg]
        x0, x1 = min(x0, xs[0]), max(x1, xs[-1])
        y0, y1 = min(y0, y), y
    return None if x1 < 0 else (x0, y0, x1 + 1, y1 + 1)


def write_png(path, width, rows):
    """rows (RGB bytes each) as an 8-bit RGB PNG, "Up" filtered."""
    def chunk(kind, body):
        c = kind + body
        return struct.pack(">I", len(body)) + c + struct.pack(
            ">I", zlib.crc32(c) & 0xffffffff)
    raw = bytearray()
    prev = bytes(width * 3)
    for row in rows:
        raw.append(2)  # Up
        raw += bytes((a - b) & 0xff for a, b in zip(row, prev))
        prev = row
    png = (b"\x89PNG\r\n\x1a\n" +
           chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0,
                                      0, 0)) +
           chunk(b"IDAT", zlib.compress(bytes(raw), 9)) +
           chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)
    return len(png)


def name_has_owner(bus, name):
    r = subprocess.run(["dbus-send", "--bus=" + bus.address,
                        "--print-reply", "--dest=org.freedesktop.DBus",
                        "/org/freedesktop/DBus",
                        "org.freedesktop.DBus.NameHasOwner",
                        "string:" + name], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=mwtest._t(5))
    return r.returncode == 0 and b"boolean true" in r.stdout


def test_popup_screenshot():
    missing = [p for p in ("Xvfb", "dunst", "dbus-send")
               if not shutil.which(p)]
    if missing:
        raise mwtest.Skip("%s not installed (as root: scripts/deps.sh "
                          "popup)" % ", ".join(missing))
    if not mwtest.Mailwatch.available():
        raise mwtest.Skip("build/asan/mailwatch is not built")
    tmp = tempfile.mkdtemp(prefix="mwtest-popup-")
    try:
        run_popup(tmp)
    finally:
        mwtest.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run_popup(tmp):
    xvfb, display, fb = start_xvfb(tmp)
    ok(xvfb.running(), "Xvfb on %s" % display)
    bus = mwtest.SessionBus()
    rc = os.path.join(tmp, "dunstrc")
    with open(rc, "w") as f:
        f.write(DUNSTRC)
    env = bus.env()
    env.update(DISPLAY=display, HOME=tmp, XDG_CONFIG_HOME=tmp,
               XDG_RUNTIME_DIR=tmp, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("WAYLAND_DISPLAY", None)
    dunst = Proc("dunst", ["dunst", "-config", rc], env, tmp)
    ok(mwtest.wait_until(lambda: name_has_owner(
        bus, "org.freedesktop.Notifications") or not dunst.running(), 10)
       and dunst.running(),
       "dunst owns org.freedesktop.Notifications", dunst.log_tail())

    dc = mwtest.Dovecot()
    mw = mwtest.Mailwatch({"general": {"notify": True},
                           "account work": dc.account("alice")},
                          bus=bus)
    ok(mw.wait_log(r"INBOX: watching \(IDLE\)", 10), "mailwatch idles")
    mark = mw.mark()
    # RFC 2047 words for the sender, the markup raw in the subject.
    msg = mwtest.make_message(
        subject=SUBJECT,
        from_="=?UTF-8?Q?Zo=C3=AB_=C3=85ngstr=C3=B6m?= <zoe@example.se>",
        body="Hej!\n")
    dc.append("alice", "INBOX", msg)
    shown = mw.wait_log(r"notification \d+ shown", 15, since=mark)
    ok(shown, "dunst answered mailwatch's Notify call",
       mw.log()[mark:][-2000:])

    # Wait for the popup to be drawn, and for two reads to agree.
    state = {"prev": None, "img": None}

    def drawn():
        try:
            w, h, rows = read_xwd(fb)
        except (OSError, ValueError, struct.error):
            return False
        box = bbox(w, rows)
        cur = (box, hash(b"".join(rows)))
        same = box and state["prev"] == cur
        state["prev"] = cur
        state["img"] = (w, h, rows, box)
        return same
    mwtest.wait_until(drawn, 10, interval=0.3)
    w, h, rows, box = state["img"] or (0, 0, [], None)
    ok(box is not None, "something was drawn on the screen (%s)" % (box,),
       dunst.log_tail())
    if not box:
        return
    x0, y0, x1, y1 = box
    ok(x1 - x0 >= 200 and 40 <= y1 - y0 <= 300 and x1 > w - 60 and y0 < 60,
       "a popup-sized box at the top right: %dx%d at %d,%d" % (
           x1 - x0, y1 - y0, x0, y0))
    crop = [row[3 * x0:3 * x1] for row in rows[y0:y1]]
    # The popup's background is its most common colour; text is the rest.
    counts = {}
    for row in crop:
        for i in range(0, len(row), 3):
            px = row[i:i + 3]
            counts[px] = counts.get(px, 0) + 1
    bg = max(counts, key=counts.get)
    ink = sum(n for px, n in counts.items() if px != bg)
    frame = counts.get(bytes.fromhex("7aa2f7"), 0)
    comment("popup %dx%d, background #%s, %d non-background pixels, "
            "%d colours, %d frame pixels" % (x1 - x0, y1 - y0, bg.hex(),
                                             ink, len(counts), frame))
    ok(bg == bytes.fromhex("1a1b26"), "dunst's background colour #1a1b26")
    ok(ink > 1500 and len(counts) > 20 and frame > 400,
       "not blank: text (%d pixels, %d colours) and the frame" % (
           ink, len(counts)))
    png = os.path.join(tmp, "popup.png")
    size = write_png(png, x1 - x0, crop)
    ok(size < 100 * 1024, "popup.png: %d bytes" % size)
    dest = os.environ.get("MWTEST_SCREENSHOT")
    if dest:
        shutil.copyfile(png, dest)
        comment("saved as " + dest)
    ok(mw.stop() == 0 and not mw.sanitizer_errors(), "mailwatch: clean exit",
       mw.sanitizer_errors())


if __name__ == "__main__":
    mwtest.main(test_popup_screenshot)
