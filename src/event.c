/* event: turning an IMAP ENVELOPE into the strings the sinks show. */
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

/* The decoded display name of a, without one pair of enclosing double
 * quotes (left by servers that return the phrase as sent). */
static char *
display_name(const struct codec_address *a)
{
	char *name = decode(&a->name), *inner;
	size_t n = strlen(name);

	if (n >= 2 && name[0] == '"' && name[n - 1] == '"') {
		inner = mime_sanitize(name + 1, n - 2, MIME_MAX_TEXT);
		free(name);
		name = inner;
	}
	return name;
}

/* "mailbox@host", or the mailbox alone when there is no host, or "" when
 * there is no mailbox. */
static char *
address(const struct codec_address *a)
{
	size_t ml = str_len(&a->mailbox), hl = str_len(&a->host);
	char *raw, *r;

	if (ml == 0)
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
	if (!*ev->from_name || !strcasecmp(ev->from_name, ev->from_address))
		ev->from = xstrdup(ev->from_address);
	else if (!*ev->from_address)
		ev->from = xstrdup(ev->from_name);
	else
		ev->from =
		    xasprintf("%s <%s>", ev->from_name, ev->from_address);
	ev->subject = decode(&env->subject);
	ev->date = sanitize(&env->date);
	ev->message_id = sanitize(&env->message_id);
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
