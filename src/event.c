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

/* Returns the first address of l that is neither a group marker nor empty,
 * or NULL. RFC 3501 marks a group start with a NIL host and the group name
 * as mailbox, and its end with NIL mailbox and host. A NIL host with a
 * mailbox but no end marker after it is taken as an address without a
 * domain, which is what some servers send for "From: root". */
static const struct codec_address *
first_address(const struct codec_address_list *l)
{
	size_t i, last_end = 0;
	bool have_end = false;
	const struct codec_address *a;

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
		if (str_len(&a->name) || str_len(&a->mailbox) ||
		    str_len(&a->host))
			return a;
	}
	return NULL;
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

/* What servers put in an ENVELOPE for a part of an address the header
 * did not have or that could not be parsed: Dovecot's MISSING_MAILBOX and
 * MISSING_DOMAIN, and UW IMAP's host names that start with a dot
 * (.MISSING-HOST-NAME., .SYNTAX-ERROR.; no real host name does). */
static bool
no_mailbox(const char *s, size_t len)
{
	return len == 15 && !memcmp(s, "MISSING_MAILBOX", 15);
}

static bool
no_host(const char *s, size_t len)
{
	return (len == 14 && !memcmp(s, "MISSING_DOMAIN", 14)) ||
	       (len && s[0] == '.');
}

/* "mailbox@host", or the mailbox alone when there is no host, or "" when
 * there is no mailbox (a server's placeholder for one counts as none). */
static char *
address(const struct codec_address *a)
{
	size_t ml = str_len(&a->mailbox), hl = str_len(&a->host);
	char *raw, *r;

	if (no_host(str_ptr(&a->host), hl))
		hl = 0;
	if (ml == 0 || no_mailbox(str_ptr(&a->mailbox), ml))
		return xstrdup("");
	raw = xmalloc(ml + 1 + hl + 1);
	memcpy(raw, str_ptr(&a->mailbox), ml);
	if (hl) {
		raw[ml] = '@';
		memcpy(raw + ml + 1, str_ptr(&a->host), hl);
	}
	r = mime_sanitize(raw, hl ? ml + 1 + hl : ml, MIME_MAX_TEXT);
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

/* The first '<' of [v, end) outside a quoted string, or NULL. */
static const char *
angle_bracket(const char *v, const char *end)
{
	bool quoted = false;

	for (const char *p = v; p < end; p++) {
		if (quoted && *p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '<' && !quoted)
			return p;
	}
	return NULL;
}

/* Sets from_name and from_address from a From field's raw value, which
 * may be cut short (the fields are fetched up to a size): the first
 * "Name <address>", or a bare address. Whatever is not surely an address
 * (the address cut off, a quote left open) goes in the name, so that a
 * hook never gets a piece of the name as the address. */
static void
from_field(struct mail_event *ev, const char *v, size_t n)
{
	const char *end = v + n, *lt, *gt = NULL, *p;

	lt = angle_bracket(v, end);
	if (!lt)
		lt = memchr(v, '<', n); /* "Name <a@b> with a quote open */
	if (lt) {
		gt = memchr(lt, '>', end - lt);
		ev->from_name = unquote(mime_decode_header(v, lt - v,
							   MIME_MAX_TEXT));
		ev->from_address =
		    gt ? mime_sanitize(lt + 1, gt - lt - 1, MIME_MAX_TEXT)
		       : xstrdup("");
		return;
	}
	/* "addr", "addr (Name)", "addr, other": the first word, when it can
	 * be an address; else (an encoded-word, a quote) all of it is a
	 * name whose address was cut off. */
	while (v < end && strchr(" \t\r\n", *v))
		v++;
	for (p = v; p < end && !strchr(" \t\r\n,(", *p); p++)
		;
	if (memchr(v, '"', p - v) || memmem(v, p - v, "=?", 2)) {
		ev->from_name =
		    unquote(mime_decode_header(v, end - v, MIME_MAX_TEXT));
		ev->from_address = xstrdup("");
		return;
	}
	ev->from_name = xstrdup("");
	ev->from_address = mime_sanitize(v, p - v, MIME_MAX_TEXT);
}

void
mail_event_from_headers(struct mail_event *ev, const char *h, size_t len)
{
	const char *end = h + len, *v;
	size_t n = 0;

	v = header_field(h, end, "From", &n);
	if (!v)
		v = header_field(h, end, "Sender", &n);
	if (v) {
		from_field(ev, v, n);
	} else {
		ev->from_name = xstrdup("");
		ev->from_address = xstrdup("");
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
