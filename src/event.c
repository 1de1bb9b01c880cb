/* event: turning an IMAP ENVELOPE (or, for a message whose ENVELOPE was
 * too big, a few raw header fields) into the strings the sinks show. */
#include "event.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "util.h"

/* The bytes of s ("" for NIL). */
static const char *
str_ptr(const struct codec_str *s)
{
	return s->nil || !s->ptr ? "" : s->ptr;
}

static size_t
str_len(const struct codec_str *s)
{
	return s->nil || !s->ptr ? 0 : s->len;
}

/* Decodes an RFC 2047 header value into a new capped string. */
static char *
decode(const struct codec_str *s)
{
	return mime_decode_header(str_ptr(s), str_len(s), MIME_MAX_TEXT);
}

/* The len bytes at s made showable, or "" when they are over the cap: for
 * an identifier, which cut would name nothing or something else. */
static char *
whole_or_none(const char *s, size_t len)
{
	return len > MIME_MAX_TEXT ? xstrdup("")
				   : mime_sanitize(s, len, MIME_MAX_TEXT);
}

/* Makes a raw header value showable, without RFC 2047 decoding. */
static char *
sanitize(const struct codec_str *s)
{
	return mime_sanitize(str_ptr(s), str_len(s), MIME_MAX_TEXT);
}

/* What servers put in an ENVELOPE for a part of an address the header
 * did not have or that could not be parsed: Dovecot's MISSING_MAILBOX,
 * MISSING_DOMAIN and SYNTAX_ERROR, and UW IMAP's host names that start
 * with a dot (.MISSING-HOST-NAME., .SYNTAX-ERROR.; no real host name
 * does). */
static bool
no_mailbox(const char *s, size_t len)
{
	return len == 15 && !memcmp(s, "MISSING_MAILBOX", 15);
}

static bool
no_host(const char *s, size_t len)
{
	return (len == 14 && !memcmp(s, "MISSING_DOMAIN", 14)) ||
	       (len == 12 && !memcmp(s, "SYNTAX_ERROR", 12)) ||
	       (len && s[0] == '.');
}

static bool
real_mailbox(const struct codec_address *a)
{
	return str_len(&a->mailbox) &&
	       !no_mailbox(str_ptr(&a->mailbox), str_len(&a->mailbox));
}

/* Both parts there and neither a placeholder: an address to hand on. */
static bool
complete(const struct codec_address *a)
{
	return real_mailbox(a) && str_len(&a->host) &&
	       !no_host(str_ptr(&a->host), str_len(&a->host));
}

/* Returns the first complete address of l, else the first entry that is
 * neither a group marker nor empty, or NULL. RFC 3501 marks a group start
 * with a NIL host and the group name as mailbox, and its end with NIL
 * mailbox and host. A NIL host with a mailbox but no end marker after it
 * is taken as an address without a domain, which is what some servers
 * send for "From: root". A complete address goes first because a server
 * splits a From it cannot parse into pieces: "Doe, John <j@x.org>" is
 * Dovecot's (NIL NIL "Doe" "MISSING_DOMAIN")("John" NIL "j" "x.org"). */
static const struct codec_address *
first_address(const struct codec_address_list *l)
{
	size_t i, last_end = 0;
	bool have_end = false;
	const struct codec_address *a, *first = NULL;

	for (i = 0; i < l->n; i++) {
		a = &l->v[i];
		if (a->host.nil && a->mailbox.nil) {
			last_end = i;
			have_end = true;
		}
	}
	for (i = 0; i < l->n; i++) {
		a = &l->v[i];
		if (a->host.nil && a->mailbox.nil)
			continue; /* group end */
		if (a->host.nil && have_end && i < last_end)
			continue; /* group start */
		if (complete(a))
			return a;
		if (!first && (str_len(&a->name) || str_len(&a->mailbox) ||
			       str_len(&a->host)))
			first = a;
	}
	return first;
}

/* name (decoded, owned) without one pair of enclosing double quotes. */
static char *
unquote(char *name)
{
	size_t n = strlen(name);
	char *inner;

	if (n >= 2 && name[0] == '"' && name[n - 1] == '"') {
		inner = mime_sanitize(name + 1, n - 2, MIME_MAX_TEXT);
		free(name);
		name = inner;
	}
	return name;
}

/* The decoded display name of a, without one pair of enclosing double
 * quotes (left by servers that return the phrase as sent). */
static char *
display_name(const struct codec_address *a)
{
	return unquote(decode(&a->name));
}

/* Whether the local part s (n bytes) goes into an address as it is: its
 * characters are those of an atom (RFC 5322; UTF-8 as RFC 6532 allows),
 * dots anywhere (Japanese carriers' ".user..name" is common), control
 * characters aside (mime_sanitize() drops them). Else it is a quoted
 * string, whose quotes tell where it ends. */
static bool
plain_local(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c >= 0x80 || c == '.' ||
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c))
			continue;
		return false;
	}
	return true;
}

/* "mailbox@host" when a has both, else "": an address that could be
 * wrong is left out ("From: Ctl<ESC>..." gives Dovecot's "Ctl" and
 * MISSING_DOMAIN). A mailbox that is not an atom is quoted back, as the
 * header had it: without its quotes, "Bank <ceo@bank.example>"@evil.example
 * read as the bank's address (trial AL). */
static char *
address(const struct codec_address *a)
{
	const char *m = str_ptr(&a->mailbox);
	size_t ml = str_len(&a->mailbox), hl = str_len(&a->host), o = 0;
	bool plain = plain_local(m, ml);
	char *raw, *r;

	if (!complete(a))
		return xstrdup("");
	/* Each byte escaped at most, two quotes, '@', the host, a NUL. */
	raw = xmalloc(2 * ml + 2 + 1 + hl + 1);
	if (!plain)
		raw[o++] = '"';
	for (size_t i = 0; i < ml; i++) {
		if (!plain && (m[i] == '"' || m[i] == '\\'))
			raw[o++] = '\\';
		raw[o++] = m[i];
	}
	if (!plain)
		raw[o++] = '"';
	raw[o++] = '@';
	memcpy(raw + o, str_ptr(&a->host), hl);
	r = mime_sanitize(raw, o + hl, MIME_MAX_TEXT);
	free(raw);
	return r;
}

/* ev->from from ev->from_name and ev->from_address. */
static void
set_from(struct mail_event *ev)
{
	if (!*ev->from_name || !strcasecmp(ev->from_name, ev->from_address))
		ev->from = xstrdup(ev->from_address);
	else if (!*ev->from_address)
		ev->from = xstrdup(ev->from_name);
	else
		ev->from =
		    xasprintf("%s <%s>", ev->from_name, ev->from_address);
}

void
mail_event_from_envelope(struct mail_event *ev,
			 const struct codec_envelope *env)
{
	static const struct codec_envelope none = {
	    .date = {.nil = true},
	    .subject = {.nil = true},
	    .in_reply_to = {.nil = true},
	    .message_id = {.nil = true},
	};
	const struct codec_address *a;

	if (!env)
		env = &none;
	a = first_address(&env->from);
	if (!a)
		a = first_address(&env->sender);
	if (a) {
		ev->from_name = display_name(a);
		ev->from_address = address(a);
		/* "From: root": shown, as a name, since it is no address. */
		if (!*ev->from_name && !*ev->from_address && real_mailbox(a)) {
			free(ev->from_name);
			ev->from_name = sanitize(&a->mailbox);
		}
	} else {
		ev->from_name = xstrdup("");
		ev->from_address = xstrdup("");
	}
	set_from(ev);
	ev->subject = decode(&env->subject);
	ev->date = sanitize(&env->date);
	ev->message_id = whole_or_none(str_ptr(&env->message_id),
				       str_len(&env->message_id));
}

void
mail_event_finish(struct mail_event *ev)
{
	freep(&ev->from);
	freep(&ev->from_name);
	freep(&ev->from_address);
	freep(&ev->subject);
	freep(&ev->date);
	freep(&ev->message_id);
}

void
mail_event_copy(struct mail_event *dst, const struct mail_event *src)
{
	*dst = *src;
	dst->from = xstrdup(src->from);
	dst->from_name = xstrdup(src->from_name);
	dst->from_address = xstrdup(src->from_address);
	dst->subject = xstrdup(src->subject);
	dst->date = xstrdup(src->date);
	dst->message_id = xstrdup(src->message_id);
}

/* The raw value of the first field called name in the header block [h, end)
 * (continuation lines included, white space around it left out), or NULL;
 * *len_r is its length. */
static const char *
header_field(const char *h, const char *end, const char *name, size_t *len_r)
{
	size_t nl = strlen(name);

	while (h < end) {
		const char *eol = memchr(h, '\n', end - h), *v, *e;

		if ((size_t)(end - h) > nl && h[nl] == ':' &&
		    !strncasecmp(h, name, nl)) {
			/* Lines that start with a space or tab go on. */
			while (eol && eol + 1 < end &&
			       (eol[1] == ' ' || eol[1] == '\t'))
				eol = memchr(eol + 1, '\n', end - eol - 1);
			v = h + nl + 1;
			e = eol ? eol : end;
			while (v < e && strchr(" \t\r\n", *v))
				v++;
			while (e > v && strchr(" \t\r\n", e[-1]))
				e--;
			*len_r = e - v;
			return v;
		}
		h = eol ? eol + 1 : end;
	}
	return NULL;
}

/* Past the comment that starts at v (its '('), with the comments and
 * quoted pairs in it; end when it is left open. */
static const char *
past_comment(const char *v, const char *end)
{
	int depth = 0;

	for (const char *p = v; p < end; p++) {
		if (*p == '\\' && p + 1 < end)
			p++;
		else if (*p == '(')
			depth++;
		else if (*p == ')' && !--depth)
			return p + 1;
	}
	return end;
}

/* Past the blanks and comments at the start of [v, end). */
static const char *
past_cfws(const char *v, const char *end)
{
	while (v < end && (*v == '(' || strchr(" \t\r\n", *v)))
		v = *v == '(' ? past_comment(v, end) : v + 1;
	return v;
}

/* The first byte of [v, end) outside comments and (with quotes) quoted
 * strings that is one of find, or NULL when there is none, or one of
 * stop (or a NUL) comes first. Comments and quoted strings may hold
 * anything: "(see <fake@example.org>) real@example.org". *open_r (when
 * not NULL) says whether a quote was left open at the end. */
static const char *
unquoted(const char *v, const char *end, const char *find, const char *stop,
	 bool quotes, bool *open_r)
{
	bool quoted = false;

	if (open_r)
		*open_r = false;
	for (const char *p = v; p < end; p++) {
		if (quoted && *p == '\\' && p + 1 < end)
			p++;
		else if (quoted)
			quoted = *p != '"';
		else if (*p == '(')
			p = past_comment(p, end) - 1;
		else if (*p == '"' && quotes)
			quoted = true;
		else if (!*p || strchr(stop, *p))
			return NULL;
		else if (strchr(find, *p))
			return p;
	}
	if (open_r)
		*open_r = quoted;
	return NULL;
}

/* Past the quoted string at v (its '"'); v when there is none there, or
 * it is left open. */
static const char *
past_quoted(const char *v, const char *end)
{
	for (const char *p = v + 1; v < end && *v == '"' && p < end; p++) {
		if (*p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return v;
}

/* Whether [v, v + n) can be handed on as an address: one '@' with
 * something on both sides, and none of what a header puts around or
 * between addresses; or a quoted local part, '@' and such a domain
 * ("<fake@bank.example>"@example.org, which keeps its quotes, as the
 * ENVELOPE path gives it). */
static bool
plain_address(const char *v, size_t n)
{
	const char *end = v + n, *local_end = past_quoted(v, end);
	const char *at = local_end > v ? local_end : memchr(v, '@', n);

	if (!at || at == end || *at != '@' || at == v || at == end - 1 ||
	    memchr(at + 1, '@', end - at - 1))
		return false;
	for (const char *p = local_end; p < end; p++)
		if (!*p || strchr(" \t\r\n<>()\",;:", *p))
			return false;
	return true;
}

/* The display name in [v, end): quoted strings without their quotes and
 * backslashes, comments left out, RFC 2047 decoded. A quote left open
 * (the field cut short) runs to the end. */
static char *
phrase(const char *v, const char *end)
{
	char *buf = xmalloc(end - v + 1), *o = buf, *r;
	bool quoted = false;
	int depth = 0;

	for (const char *p = v; p < end; p++) {
		if ((quoted || depth) && *p == '\\' && p + 1 < end) {
			p++;
			if (quoted)
				*o++ = *p;
		} else if (quoted) {
			if (*p == '"')
				quoted = false;
			else
				*o++ = *p;
		} else if (depth) {
			depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
		} else if (*p == '"') {
			quoted = true;
		} else if (*p == '(') {
			depth = 1;
		} else {
			*o++ = *p;
		}
	}
	while (o > buf && strchr(" \t\r\n", o[-1]))
		o--;
	r = mime_decode_header(buf, o - buf, MIME_MAX_TEXT);
	free(buf);
	return r;
}

/* Past a group's "name:" when [v, end) starts with one ("Team: a@b,
 * c@d;", "Undisclosed:;"), else v. */
static const char *
past_group_name(const char *v, const char *end)
{
	const char *colon = unquoted(v, end, ":", "<@,", true, NULL);

	return colon ? colon + 1 : v;
}

/* Sets from_name and from_address from one member [v, end) of a From or
 * Sender field: "Name <address>", or a bare address; else a name alone.
 * Behind a quote left open (a field cut short, or a hostile one) may be
 * anything: the name up to a '<', no address (trial AN: a '<' in it gave
 * one). */
static void
from_member(struct mail_event *ev, const char *v, const char *end)
{
	const char *lt, *gt, *p, *route;
	bool open;

	v = past_cfws(v, end);
	lt = unquoted(v, end, "<", "", true, &open);
	if (!lt && open) {
		lt = unquoted(v, end, "<", "", false, NULL);
		ev->from_name = phrase(v, lt ? lt : end);
		ev->from_address = xstrdup("");
		return;
	}
	if (lt) {
		gt = memchr(lt, '>', end - lt);
		/* A route before the address: "<@relay.example:a@b>". */
		p = lt + 1;
		route = gt && *p == '@' ? memchr(p, ':', gt - p) : NULL;
		if (route)
			p = route + 1;
		ev->from_name = phrase(v, lt);
		ev->from_address = gt && plain_address(p, gt - p)
				       ? mime_sanitize(p, gt - p, MIME_MAX_TEXT)
				       : xstrdup("");
		return;
	}
	for (p = past_quoted(v, end); p < end && *p && !strchr(" \t\r\n(", *p);
	     p++)
		;
	if (plain_address(v, p - v)) {
		ev->from_name = xstrdup("");
		ev->from_address = mime_sanitize(v, p - v, MIME_MAX_TEXT);
		return;
	}
	ev->from_name = phrase(v, end);
	ev->from_address = xstrdup("");
}

/* The ',' or ';' that ends the member at v, outside quoted strings,
 * comments and an angle address (whose route may hold commas); NULL when
 * the member runs to the end. */
static const char *
member_end(const char *v, const char *end)
{
	const char *p = v;

	while ((p = unquoted(p, end, ",;<", "", true, NULL)) && *p == '<') {
		p = memchr(p, '>', end - p);
		if (!p)
			return NULL;
	}
	return p;
}

/* Sets from_name and from_address from a From or Sender field's raw
 * value, which may be cut short (the fields are fetched up to a size):
 * of its members (of a group's), the first with an address, as the
 * ENVELOPE path takes it ("Doe, John <j@x.org>" is John's), else the
 * first one's name. What is not surely an address (one cut off, "root",
 * a quote left open) is left out or taken as the name, so that a hook
 * never gets a piece of a name as the address. */
static void
from_field(struct mail_event *ev, const char *v, size_t n)
{
	const char *end = v + n, *next;
	char *name = NULL;

	for (v = past_group_name(v, end);; v = next + 1) {
		next = member_end(v, end);
		from_member(ev, v, next ? next : end);
		if (*ev->from_address) {
			free(name);
			return;
		}
		free(ev->from_address);
		if (!name)
			name = ev->from_name;
		else
			free(ev->from_name);
		if (!next)
			break;
	}
	ev->from_name = name;
	ev->from_address = xstrdup("");
}

void
mail_event_from_headers(struct mail_event *ev, const char *h, size_t len)
{
	static const char *const fields[] = {"From", "Sender"};
	const char *end = h + len, *v;
	size_t n = 0;

	ev->from_name = xstrdup("");
	ev->from_address = xstrdup("");
	/* Sender stands in for a From that names no one, as in the ENVELOPE
	 * (RFC 3501 section 7.4.2). */
	for (size_t i = 0; i < 2 && !*ev->from_name && !*ev->from_address;
	     i++) {
		v = header_field(h, end, fields[i], &n);
		if (v) {
			free(ev->from_name);
			free(ev->from_address);
			from_field(ev, v, n);
		}
	}
	set_from(ev);
	v = header_field(h, end, "Subject", &n);
	ev->subject = mime_decode_header(v ? v : "", v ? n : 0, MIME_MAX_TEXT);
	v = header_field(h, end, "Date", &n);
	ev->date = mime_sanitize(v ? v : "", v ? n : 0, MIME_MAX_TEXT);
	v = header_field(h, end, "Message-ID", &n);
	ev->message_id = whole_or_none(v ? v : "", v ? n : 0);
}

void
mail_event_from_fetch(struct mail_event *ev, const struct codec_fetch *f)
{
	struct codec_buf h;

	if (f->have & CODEC_FETCH_ENVELOPE) {
		mail_event_from_envelope(ev, &f->envelope);
		return;
	}
	/* The header fields, fetched one section each. */
	codec_buf_init(&h);
	for (size_t i = 0; i < f->n_sections; i++) {
		const struct codec_str *d = &f->sections[i].data;

		if (!d->nil && d->ptr) {
			codec_buf_add(&h, d->ptr, d->len);
			codec_buf_add(&h, "\n", 1);
		}
	}
	mail_event_from_headers(ev, h.data ? h.data : "", h.len);
	codec_buf_finish(&h);
}
