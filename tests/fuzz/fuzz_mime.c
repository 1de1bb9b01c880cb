/* libFuzzer target for src/mime.c and src/event.c: the input is a header
 * value, and then a raw header block. Checks that every result is valid UTF-8 without control or bidi
 * override characters, trimmed, within its cap, that a cut result is a
 * prefix of an uncut one, and that escaped markup has no '<' or '>'. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "mime.h"

#define ELLIPSIS "\xe2\x80\xa6"

/* Checks s: strict UTF-8, no C0 (not even tab or newline), DEL, C1, bidi
 * embedding/override/isolate characters, no space at either end. */
static void
check_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k, j;
	uint32_t cp;

	if (n && (s[0] == ' ' || s[n - 1] == ' '))
		abort();
	while (i < n) {
		unsigned char c = p[i];

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				abort();
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			abort();
		}
		if (i + k >= n)
			abort();
		for (j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				abort();
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			abort();
		if ((cp >= 0x80 && cp <= 0x9f) ||
		    (cp >= 0x202a && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 ||
		    cp == 0x2029)
			abort();
		i += k + 1;
	}
}

/* Checks s against cap max: longer than max only when cut, with "…". */
static void
check_capped(const char *s, size_t max)
{
	size_t n = strlen(s);

	check_text(s);
	if (n > max && (n > max + 3 || strcmp(s + n - 3, ELLIPSIS)))
		abort();
}

/* Checks a small-cap result against the same input with a large cap: equal,
 * or cut: content within the cap, a prefix of the other, then "…", and only
 * when the other is longer than the cap. */
static void
check_prefix(const char *small, size_t small_max, const char *large)
{
	size_t n = strlen(small);

	check_text(small);
	if (!strcmp(small, large)) {
		if (n > small_max + 3)
			abort();
		return;
	}
	if (n < 3 || strcmp(small + n - 3, ELLIPSIS) || n - 3 > small_max ||
	    strncmp(small, large, n - 3) || strlen(large) <= small_max)
		abort();
}

static void
check_markup(const char *s)
{
	char *m = mime_escape_markup(s);

	if (strchr(m, '<') || strchr(m, '>') || strchr(m, '"'))
		abort();
	free(m);
}

/* Checks every text field of ev and frees them. */
static void
check_event(struct mail_event *ev)
{
	check_capped(ev->from_name, MIME_MAX_TEXT);
	check_capped(ev->from_address, MIME_MAX_TEXT);
	check_text(ev->from);
	check_capped(ev->subject, MIME_MAX_TEXT);
	check_capped(ev->date, MIME_MAX_TEXT);
	check_capped(ev->message_id, MIME_MAX_TEXT);
	mail_event_finish(ev);
}

static struct codec_str
str(const uint8_t *p, size_t n)
{
	return (struct codec_str){.ptr = (const char *)p, .len = n};
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t small = size ? data[0] % 80 : 0, large = 4096, third;
	char *a, *b;
	struct codec_address addr;
	struct codec_envelope env;
	struct mail_event ev = {0};

	a = mime_decode_header(s, size, small);
	b = mime_decode_header(s, size, large);
	check_capped(b, large);
	check_prefix(a, small, b);
	check_markup(b);
	free(a);
	free(b);

	a = mime_sanitize(s, size, small);
	b = mime_sanitize(s, size, large);
	check_capped(b, large);
	check_prefix(a, small, b);
	free(a);
	free(b);

	/* an envelope made of the input's thirds */
	third = size / 3;
	memset(&env, 0, sizeof(env));
	addr = (struct codec_address){
	    .name = str(data, third),
	    .adl = {.nil = true},
	    .mailbox = str(data + third, third),
	    .host = str(data + 2 * third, size - 2 * third),
	};
	if (size && data[0] & 1)
		addr.host.nil = true, addr.host.ptr = NULL, addr.host.len = 0;
	env.from.v = &addr;
	env.from.n = 1;
	env.subject = str(data, size);
	env.date = str(data, third);
	env.message_id = str(data + third, size - third);
	mail_event_from_envelope(&ev, &env);
	check_event(&ev);

	/* the input as a raw header block */
	mail_event_from_headers(&ev, s, size);
	check_event(&ev);
	return 0;
}
