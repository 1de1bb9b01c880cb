/* mime: RFC 2047 header decoding, sanitising and markup escaping.
 *
 * Everything ends in one writer (struct out) that validates UTF-8, drops
 * control and bidi override characters, folds whitespace, trims and cuts at
 * a byte cap. The decoder splits a header into raw text and encoded-words,
 * joins the decoded bytes of adjacent encoded-words in the same charset (so
 * a character split across two words survives) and converts each such run
 * to UTF-8 with iconv. See docs/decoding.md for the choices made. */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* ---- the output writer ---- */

/* A capped, sanitising UTF-8 writer. Whitespace is held back in spaces and
 * newline until a visible character follows, which trims both ends and
 * folds tab/CR/LF runs into one space. full is set when a visible character
 * did not fit: the result then ends in "…". */
struct out {
	char *buf;
	size_t len, cap, max;
	size_t spaces; /* pending U+0020 count */
	bool newline;  /* pending run held a tab, CR, LF or line separator */
	bool started;  /* a visible character was written */
	bool full;
};

static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026 */

static void
out_init(struct out *o, size_t max)
{
	memset(o, 0, sizeof(*o));
	o->max = max;
	o->cap = 64;
	o->buf = xmalloc(o->cap);
}

/* Makes room for n more bytes plus the ellipsis and the NUL. */
static void
out_reserve(struct out *o, size_t n)
{
	size_t need = o->len + n + sizeof(ellipsis);

	if (need <= o->cap)
		return;
	while (o->cap < need)
		o->cap *= 2;
	o->buf = xrealloc(o->buf, o->cap);
}

/* True for characters never shown: C0 controls other than whitespace, DEL,
 * C1 controls and the bidi embeddings, overrides and isolates that could
 * reorder a notification (U+202A-U+202E, U+2066-U+2069). */
static bool
is_dropped(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Writes cp as UTF-8 into p (4 bytes of room); returns the length. */
static size_t
utf8_encode(uint32_t cp, char *p)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xc0 | cp >> 6);
		p[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xe0 | cp >> 12);
		p[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		p[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | cp >> 18);
	p[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	p[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	p[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes the UTF-8 character at p (n > 0 bytes available) into *cp_r and
 * returns the bytes it used. An ill-formed sequence yields U+FFFD and uses
 * its maximal valid prefix, at least one byte (Unicode 3.9, "maximal
 * subpart"), so surrogates, overlongs and values above U+10FFFF are
 * replaced. */
static size_t
utf8_next(const unsigned char *p, size_t n, uint32_t *cp_r)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t need, i;
	uint32_t cp;

	if (c < 0x80) {
		*cp_r = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		cp = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		cp = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		*cp_r = 0xfffd;
		return 1;
	}
	for (i = 1; i <= need; i++) {
		if (i >= n || p[i] < lo || p[i] > hi) {
			*cp_r = 0xfffd;
			return i;
		}
		cp = cp << 6 | (p[i] & 0x3f);
		lo = 0x80;
		hi = 0xbf;
	}
	*cp_r = cp;
	return i;
}

/* True if all n bytes of p are well-formed UTF-8. */
static bool
utf8_valid(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t k;

	while (n > 0) {
		if (*p < 0x80) {
			p++;
			n--;
			continue;
		}
		k = utf8_next(p, n, &cp);
		if (cp == 0xfffd && (k < 3 || memcmp(p, "\xef\xbf\xbd", 3)))
			return false;
		p += k;
		n -= k;
	}
	return true;
}

/* Adds one character, applying the rules described at struct out. */
static void
out_put(struct out *o, uint32_t cp)
{
	char tmp[4];
	size_t n, ws;

	if (o->full)
		return;
	if (cp == ' ') {
		o->spaces++;
		return;
	}
	if (cp == '\t' || cp == '\n' || cp == '\r' || cp == 0x2028 ||
	    cp == 0x2029) {
		o->newline = true;
		return;
	}
	if (is_dropped(cp))
		return;
	n = utf8_encode(cp, tmp);
	ws = !o->started ? 0 : o->newline ? 1 : o->spaces;
	if (o->len > o->max || n > o->max - o->len ||
	    ws > o->max - o->len - n) {
		o->full = true;
		return;
	}
	out_reserve(o, ws + n);
	memset(o->buf + o->len, ' ', ws);
	memcpy(o->buf + o->len + ws, tmp, n);
	o->len += ws + n;
	o->started = true;
	o->spaces = 0;
	o->newline = false;
}

/* Adds n bytes of possibly ill-formed UTF-8. */
static void
out_feed(struct out *o, const void *data, size_t n)
{
	const unsigned char *p = data;
	uint32_t cp;
	size_t k;

	while (n > 0 && !o->full) {
		k = utf8_next(p, n, &cp);
		out_put(o, cp);
		p += k;
		n -= k;
	}
}

/* Ends the string and hands it over to the caller. */
static char *
out_finish(struct out *o)
{
	char *s;

	out_reserve(o, 0);
	if (o->full) {
		memcpy(o->buf + o->len, ellipsis, sizeof(ellipsis) - 1);
		o->len += sizeof(ellipsis) - 1;
	}
	o->buf[o->len] = '\0';
	s = o->buf;
	o->buf = NULL;
	return s;
}

char *
mime_sanitize(const char *s, size_t len, size_t max)
{
	struct out o;

	out_init(&o, max);
	if (s)
		out_feed(&o, s, len);
	return out_finish(&o);
}

char *
mime_escape_markup(const char *s)
{
	size_t n = 0;
	const char *p;
	char *r, *w;

	if (!s)
		s = "";
	for (p = s; *p; p++) {
		switch (*p) {
		case '&':
			n += 5;
			break;
		case '<':
		case '>':
			n += 4;
			break;
		case '"':
		case '\'':
			n += 6;
			break;
		default:
			n++;
		}
	}
	r = w = xmalloc(n + 1);
	for (p = s; *p; p++) {
		switch (*p) {
		case '&':
			w = stpcpy(w, "&amp;");
			break;
		case '<':
			w = stpcpy(w, "&lt;");
			break;
		case '>':
			w = stpcpy(w, "&gt;");
			break;
		case '"':
			w = stpcpy(w, "&quot;");
			break;
		case '\'':
			w = stpcpy(w, "&apos;");
			break;
		default:
			*w++ = *p;
		}
	}
	*w = '\0';
	return r;
}

/* ---- charsets ---- */

/* Longest charset name (without language) we look at. */
#define CHARSET_MAX 40

enum cs_kind {
	CS_ICONV,   /* iconv from the given name */
	CS_UTF8,    /* no conversion, only validation */
	CS_UNKNOWN, /* unknown-8bit: UTF-8 when valid, else windows-1252 */
	CS_JIS,	    /* ISO-2022-JP, transcoded to windows-31j by hand */
};

/* How a charset label is decoded. Labels are lower case. Most labels go to
 * iconv as they are; this table holds the ones glibc lacks and the ones
 * where mail (and the WHATWG Encoding Standard that Thunderbird follows)
 * means a superset: ISO-8859-1 and US-ASCII are decoded as windows-1252,
 * GB2312 as GB18030, Shift_JIS as windows-31j, EUC-KR as CP949. dbcs marks
 * multi-byte charsets, where an invalid pair is skipped whole. */
struct charset {
	const char *label;
	const char *iconv;
	enum cs_kind kind;
	bool dbcs;
};

static const struct charset charsets[] = {
    {"utf-8", NULL, CS_UTF8, false},
    {"utf8", NULL, CS_UTF8, false},
    {"unicode-1-1-utf-8", NULL, CS_UTF8, false},
    {"unknown-8bit", NULL, CS_UNKNOWN, false},
    {"x-unknown", NULL, CS_UNKNOWN, false},
    {"unknown", NULL, CS_UNKNOWN, false},
    {"iso-2022-jp", NULL, CS_JIS, true},
    {"iso-2022-jp-1", NULL, CS_JIS, true},
    {"iso-2022-jp-2", NULL, CS_JIS, true},
    {"iso-2022-jp-3", NULL, CS_JIS, true},
    {"csiso2022jp", NULL, CS_JIS, true},
    {"us-ascii", "WINDOWS-1252", CS_ICONV, false},
    {"ascii", "WINDOWS-1252", CS_ICONV, false},
    {"ansi_x3.4-1968", "WINDOWS-1252", CS_ICONV, false},
    {"iso-8859-1", "WINDOWS-1252", CS_ICONV, false},
    {"iso8859-1", "WINDOWS-1252", CS_ICONV, false},
    {"iso_8859-1", "WINDOWS-1252", CS_ICONV, false},
    {"latin1", "WINDOWS-1252", CS_ICONV, false},
    {"l1", "WINDOWS-1252", CS_ICONV, false},
    {"iso-8859-9", "WINDOWS-1254", CS_ICONV, false},
    {"latin5", "WINDOWS-1254", CS_ICONV, false},
    {"iso-8859-11", "WINDOWS-874", CS_ICONV, false},
    {"tis-620", "WINDOWS-874", CS_ICONV, false},
    {"iso-8859-6-i", "ISO-8859-6", CS_ICONV, false},
    {"iso-8859-6-e", "ISO-8859-6", CS_ICONV, false},
    {"iso-8859-8-i", "ISO-8859-8", CS_ICONV, false},
    {"iso-8859-8-e", "ISO-8859-8", CS_ICONV, false},
    {"x-mac-roman", "MACINTOSH", CS_ICONV, false},
    {"x-mac-cyrillic", "MAC-CYRILLIC", CS_ICONV, false},
    {"gb2312", "GB18030", CS_ICONV, true},
    {"gbk", "GB18030", CS_ICONV, true},
    {"x-gbk", "GB18030", CS_ICONV, true},
    {"cp936", "GB18030", CS_ICONV, true},
    {"euc-cn", "GB18030", CS_ICONV, true},
    {"csgb2312", "GB18030", CS_ICONV, true},
    {"gb_2312-80", "GB18030", CS_ICONV, true},
    {"chinese", "GB18030", CS_ICONV, true},
    {"gb18030", "GB18030", CS_ICONV, true},
    {"big5", "BIG5-HKSCS", CS_ICONV, true},
    {"x-x-big5", "BIG5-HKSCS", CS_ICONV, true},
    {"cn-big5", "BIG5-HKSCS", CS_ICONV, true},
    {"big5-hkscs", "BIG5-HKSCS", CS_ICONV, true},
    {"shift_jis", "WINDOWS-31J", CS_ICONV, true},
    {"shift-jis", "WINDOWS-31J", CS_ICONV, true},
    {"sjis", "WINDOWS-31J", CS_ICONV, true},
    {"x-sjis", "WINDOWS-31J", CS_ICONV, true},
    {"ms_kanji", "WINDOWS-31J", CS_ICONV, true},
    {"csshiftjis", "WINDOWS-31J", CS_ICONV, true},
    {"windows-31j", "WINDOWS-31J", CS_ICONV, true},
    {"cp932", "WINDOWS-31J", CS_ICONV, true},
    {"euc-jp", "EUC-JP", CS_ICONV, true},
    {"x-euc-jp", "EUC-JP", CS_ICONV, true},
    {"euc-kr", "CP949", CS_ICONV, true},
    {"ks_c_5601-1987", "CP949", CS_ICONV, true},
    {"ks_c_5601-1989", "CP949", CS_ICONV, true},
    {"ksc5601", "CP949", CS_ICONV, true},
    {"ksc_5601", "CP949", CS_ICONV, true},
    {"korean", "CP949", CS_ICONV, true},
    {"windows-949", "CP949", CS_ICONV, true},
    {"cp949", "CP949", CS_ICONV, true},
    {"euc-tw", "EUC-TW", CS_ICONV, true},
};

/* Looks label (lower case) up; labels not in the table go to iconv under
 * their own name (cs->iconv then points into label). */
static void
charset_lookup(const char *label, struct charset *cs)
{
	size_t i;

	for (i = 0; i < sizeof(charsets) / sizeof(charsets[0]); i++) {
		if (!strcmp(charsets[i].label, label)) {
			*cs = charsets[i];
			return;
		}
	}
	cs->label = label;
	cs->iconv = label;
	cs->kind = CS_ICONV;
	cs->dbcs = false;
}

/* ---- the decoder ---- */

/* Decoding state of one mime_decode_header() call. */
struct dec {
	struct out out;
	const char *end; /* end of the input */
	/* The run: decoded bytes of adjacent encoded-words in one charset,
	 * not yet converted. */
	bool in_run;
	char run_label[CHARSET_MAX + 1];
	struct charset run_cs;
	unsigned char *run;
	size_t run_len, run_cap;
	/* One open iconv descriptor, by name; cd is (iconv_t)-1 when the
	 * name is known not to open. cd_name is "" when there is none. */
	iconv_t cd;
	char cd_name[CHARSET_MAX + 1];
	/* Search caches that keep word parsing linear: the first "?=" and
	 * the first byte that cannot be in an encoded-word at or after the
	 * position they were last searched from (end when none; NULL before
	 * the first search). */
	const char *next_qe, *next_bad;
};

/* Returns an iconv descriptor from name to UTF-8, or (iconv_t)-1. Owned by
 * d; valid until the next call. */
static iconv_t
dec_iconv(struct dec *d, const char *name)
{
	if (d->cd_name[0] && !strcmp(d->cd_name, name))
		return d->cd;
	if (d->cd != (iconv_t)-1)
		iconv_close(d->cd);
	d->cd = iconv_open("UTF-8", name);
	snprintf(d->cd_name, sizeof(d->cd_name), "%s", name);
	return d->cd;
}

/* Converts n bytes of in from the charset name to UTF-8 into the output.
 * Input iconv rejects becomes U+FFFD: one byte is skipped, or in a
 * multi-byte charset (dbcs) a lead byte with an 8-bit trail byte (an ASCII
 * trail is read again, as the WHATWG decoders do). Falls back to treating
 * the bytes as UTF-8 when iconv cannot open the charset. */
static void
dec_convert(struct dec *d, const char *name, bool dbcs, const void *in,
	    size_t n)
{
	iconv_t cd = dec_iconv(d, name);
	char buf[256], *ip = (char *)in, *op;
	size_t il = n, ol, r, skip;

	if (cd == (iconv_t)-1) {
		out_feed(&d->out, in, n);
		return;
	}
	iconv(cd, NULL, NULL, NULL, NULL);
	while (il > 0 && !d->out.full) {
		const char *before = ip;

		op = buf;
		ol = sizeof(buf);
		r = iconv(cd, &ip, &il, &op, &ol);
		out_feed(&d->out, buf, (size_t)(op - buf));
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG && (ip != before || op != buf))
			continue;
		if (errno == EINVAL) { /* incomplete at the end */
			out_put(&d->out, 0xfffd);
			break;
		}
		/* EILSEQ, or no progress at all */
		out_put(&d->out, 0xfffd);
		skip = 1;
		if (dbcs && il >= 2 && (unsigned char)ip[0] >= 0x81 &&
		    (unsigned char)ip[0] <= 0xfe &&
		    (unsigned char)ip[1] >= 0x80 &&
		    (unsigned char)ip[1] <= 0xfe)
			skip = 2;
		ip += skip;
		il -= skip;
	}
	op = buf;
	ol = sizeof(buf);
	if (iconv(cd, NULL, NULL, &op, &ol) != (size_t)-1)
		out_feed(&d->out, buf, (size_t)(op - buf));
}

/* Appends the Shift_JIS (windows-31j) form of a JIS X 0208 pair (both bytes
 * 0x21-0x7e) to w; returns the new end. */
static unsigned char *
jis_pair_to_sjis(unsigned char *w, unsigned c1, unsigned c2)
{
	unsigned s1 = ((c1 - 0x21) >> 1) + 0x81;

	if (s1 > 0x9f)
		s1 += 0x40;
	*w++ = (unsigned char)s1;
	if (c1 & 1)
		*w++ = (unsigned char)(c2 + (c2 >= 0x60 ? 0x20 : 0x1f));
	else
		*w++ = (unsigned char)(c2 + 0x7e);
	return w;
}

/* Transcodes ISO-2022-JP (with JIS X 0201 katakana and the windows-31j
 * extensions that real mail uses, as CP50221 and WHATWG do) to windows-31j
 * in place: the output is never longer than the input. Characters of sets
 * windows-31j lacks (JIS X 0212, ISO-2022-JP-2's GB 2312 and KS C 5601)
 * become a 0xff byte, which windows-31j lacks, so the conversion turns it
 * into U+FFFD; so does half a pair. */
static size_t
jis_to_sjis(unsigned char *p, size_t n)
{
	enum { ASCII, KANJI, KANA, OTHER2 } mode = ASCII;
	unsigned char *w = p, c;
	bool shift_out = false;
	size_t i = 0;

	while (i < n) {
		c = p[i];
		if (c == 0x1b) {
			const unsigned char *e = p + i + 1;
			size_t left = n - i - 1;

			if (left >= 2 && e[0] == '(' &&
			    (e[1] == 'B' || e[1] == 'J' || e[1] == 'H')) {
				mode = ASCII;
				i += 3;
			} else if (left >= 2 && e[0] == '(' && e[1] == 'I') {
				mode = KANA;
				i += 3;
			} else if (left >= 2 && e[0] == '$' &&
				   (e[1] == '@' || e[1] == 'B')) {
				mode = KANJI;
				i += 3;
			} else if (left >= 3 && e[0] == '$' && e[1] == '(' &&
				   (e[2] == 'B' || e[2] == 'O' || e[2] == 'Q' ||
				    e[2] == '@')) {
				mode = KANJI;
				i += 4;
			} else if (left >= 3 && e[0] == '$' && e[1] == '(') {
				mode = OTHER2; /* JIS X 0212, KS C 5601, ... */
				i += 4;
			} else if (left >= 2 && e[0] == '$' && e[1] == 'A') {
				mode = OTHER2; /* GB 2312 */
				i += 3;
			} else if (left >= 2 && e[0] == '&' && e[1] == '@') {
				i += 3; /* JIS X 0208-1990 announcer */
			} else {
				i++; /* unknown: drop the ESC */
			}
			continue;
		}
		if (c == 0x0e || c == 0x0f) { /* SO / SI: katakana */
			shift_out = c == 0x0e;
			i++;
			continue;
		}
		if ((mode == KANA || shift_out) && c >= 0x21 && c <= 0x5f) {
			*w++ = c + 0x80;
			i++;
		} else if ((mode == KANJI || mode == OTHER2) && c >= 0x21 &&
			   c <= 0x7e) {
			if (i + 1 < n && p[i + 1] >= 0x21 && p[i + 1] <= 0x7e) {
				if (mode == KANJI)
					w = jis_pair_to_sjis(w, c, p[i + 1]);
				else
					*w++ = 0xff; /* invalid in windows-31j */
				i += 2;
			} else {
				*w++ = 0xff; /* half a pair */
				i++;
			}
		} else {
			*w++ = c;
			i++;
		}
	}
	return (size_t)(w - p);
}

/* Converts the run to UTF-8 into the output and empties it. in_run stays:
 * whether the next word is adjacent is the caller's business. */
static void
dec_flush(struct dec *d)
{
	struct charset *cs = &d->run_cs;

	if (!d->in_run || d->run_len == 0)
		goto done;
	switch (cs->kind) {
	case CS_UTF8:
		out_feed(&d->out, d->run, d->run_len);
		break;
	case CS_UNKNOWN:
		if (utf8_valid(d->run, d->run_len))
			out_feed(&d->out, d->run, d->run_len);
		else
			dec_convert(d, "WINDOWS-1252", false, d->run,
				    d->run_len);
		break;
	case CS_JIS:
		d->run_len = jis_to_sjis(d->run, d->run_len);
		dec_convert(d, "WINDOWS-31J", true, d->run, d->run_len);
		break;
	case CS_ICONV:
		dec_convert(d, cs->iconv, cs->dbcs, d->run, d->run_len);
		break;
	}
done:
	d->run_len = 0;
}

/* Decodes base64 text s..s+n onto w; returns the new end, or NULL when a
 * character is not base64. Padding may be missing, and '=' may end a
 * quantum in the middle (words glued together by broken mailers); left-over
 * bits are dropped. */
static unsigned char *
b64_decode(const char *s, size_t n, unsigned char *w)
{
	unsigned acc = 0, bits = 0;
	size_t i;
	int v;

	for (i = 0; i < n; i++) {
		if (s[i] == '=') {
			acc = bits = 0;
			continue;
		}
		v = base64_value((unsigned char)s[i]);
		if (v < 0)
			return NULL;
		acc = (acc << 6 | (unsigned)v) & 0xfff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*w++ = (unsigned char)(acc >> bits);
		}
	}
	return w;
}

/* Decodes Q text s..s+n onto w ('_' is a space, =XX a byte, an '=' without
 * two hex digits stays); returns the new end. */
static unsigned char *
q_decode(const char *s, size_t n, unsigned char *w)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '_') {
			*w++ = ' ';
		} else if (s[i] == '=' && i + 2 < n &&
			   (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
			   (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
			*w++ = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else {
			*w++ = (unsigned char)s[i];
		}
	}
	return w;
}

/* True for bytes allowed in a charset name: RFC 2047's token, narrowed to
 * what charset names use ('/' and ',' would pass options to iconv). '*'
 * starts the RFC 2231 language. */
static bool
is_charset_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == ':' || c == '+' || c == '*';
}

/* c in lower case when it is an ASCII letter. */
static char
lower_ascii(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* True for the linear whitespace that separates encoded-words. */
static bool
is_lwsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* True if a..b holds only linear whitespace. */
static bool
all_lwsp(const char *a, const char *b)
{
	for (; a < b; a++)
		if (!is_lwsp(*a))
			return false;
	return true;
}

/* The first "?=" at or after p, or d->end. */
static const char *
find_qe(struct dec *d, const char *p)
{
	const char *q;

	if (d->next_qe && d->next_qe >= p)
		return d->next_qe;
	q = memmem(p, (size_t)(d->end - p), "?=", 2);
	d->next_qe = q ? q : d->end;
	return d->next_qe;
}

/* The first byte at or after p that cannot be in encoded text (space and
 * controls; 8-bit bytes are let through as broken mailers send them), or
 * d->end. */
static const char *
find_bad(struct dec *d, const char *p)
{
	const char *q;

	if (d->next_bad && d->next_bad >= p)
		return d->next_bad;
	for (q = p; q < d->end; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f)
			break;
	d->next_bad = q;
	return q;
}

/* One encoded-word found by word_parse. */
struct word {
	char label[CHARSET_MAX + 1]; /* lower case, without language */
	char enc;		     /* 'B' or 'Q' */
	const char *text, *text_end;
	const char *end; /* just after "?=" */
};

/* Parses the syntax of an encoded-word at p (which starts with "=?").
 * Returns false when it is not one. */
static bool
word_parse(struct dec *d, const char *p, struct word *w)
{
	const char *q = p + 2, *cs = q, *qe;
	size_t n = 0;
	bool lang = false;

	while (q < d->end && is_charset_char((unsigned char)*q)) {
		if (*q == '*')
			lang = true;
		if (!lang) {
			if (n >= CHARSET_MAX)
				return false;
			w->label[n++] = lower_ascii(*q);
		}
		if (q - cs > 2 * CHARSET_MAX)
			return false;
		q++;
	}
	w->label[n] = '\0';
	if (n == 0 || d->end - q < 3 || q[0] != '?' || q[2] != '?')
		return false;
	if (q[1] == 'B' || q[1] == 'b')
		w->enc = 'B';
	else if (q[1] == 'Q' || q[1] == 'q')
		w->enc = 'Q';
	else
		return false;
	w->text = q + 3;
	qe = find_qe(d, w->text);
	if (qe == d->end || find_bad(d, w->text) < qe)
		return false;
	w->text_end = qe;
	w->end = qe + 2;
	return true;
}

/* Decodes the encoded text of w onto the run. Returns false (and leaves
 * the run as it was) when it is not valid base64. */
static bool
dec_word(struct dec *d, const struct word *w)
{
	size_t n = (size_t)(w->text_end - w->text);
	unsigned char *e;

	if (!d->run || d->run_len + n > d->run_cap) {
		d->run_cap = d->run_len + n > 2 * d->run_cap
				 ? d->run_len + n + 64
				 : 2 * d->run_cap;
		d->run = xrealloc(d->run, d->run_cap);
	}
	if (w->enc == 'B')
		e = b64_decode(w->text, n, d->run + d->run_len);
	else
		e = q_decode(w->text, n, d->run + d->run_len);
	if (!e)
		return false;
	d->run_len = (size_t)(e - d->run);
	return true;
}

char *
mime_decode_header(const char *s, size_t len, size_t max)
{
	struct dec d;
	struct charset cs;
	struct word w;
	const char *pos, *raw, *p;
	bool adjacent, same;

	memset(&d, 0, sizeof(d));
	out_init(&d.out, max);
	d.cd = (iconv_t)-1;
	if (!s)
		len = 0, s = "";
	d.end = s + len;
	pos = raw = s;
	while (!d.out.full &&
	       (p = memmem(pos, (size_t)(d.end - pos), "=?", 2))) {
		/* Only whitespace since the last decoded word? */
		adjacent = d.in_run && all_lwsp(raw, p);
		if (!word_parse(&d, p, &w))
			goto not_a_word;
		same = adjacent && !strcmp(w.label, d.run_label);
		if (!same) {
			dec_flush(&d);
			d.in_run = false;
			charset_lookup(w.label, &cs);
			if (cs.kind == CS_ICONV &&
			    dec_iconv(&d, cs.iconv) == (iconv_t)-1)
				goto not_a_word; /* unknown charset */
		}
		if (!dec_word(&d, &w))
			goto not_a_word;
		if (!adjacent)
			out_feed(&d.out, raw, (size_t)(p - raw));
		if (!same) {
			strcpy(d.run_label, w.label);
			charset_lookup(d.run_label, &d.run_cs);
			d.in_run = true;
		}
		raw = pos = w.end;
		continue;
	not_a_word:
		/* Keep it as text, up to the '=' it started with. */
		dec_flush(&d);
		d.in_run = false;
		out_feed(&d.out, raw, (size_t)(p + 1 - raw));
		raw = pos = p + 1;
	}
	dec_flush(&d);
	out_feed(&d.out, raw, (size_t)(d.end - raw));
	free(d.run);
	if (d.cd != (iconv_t)-1)
		iconv_close(d.cd);
	return out_finish(&d.out);
}
