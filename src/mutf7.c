/* Modified UTF-7 mailbox names (RFC 3501 5.1.3), both ways.
 *
 * Printable US-ASCII other than '&' stands for itself, "&-" is '&', and any
 * other run of characters is UTF-16BE in base64 with ',' for '/', no '='
 * padding, between '&' and '-'. The decoder accepts only what the encoder
 * produces (shortest form, zero padding bits, no printable ASCII in base64,
 * no two runs back to back, surrogates paired), so names compare equal
 * exactly when their encodings do.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "util.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static bool
is_direct(uint32_t cp)
{
	return cp >= 0x20 && cp <= 0x7e;
}

/* Decodes one strict UTF-8 character at *p into *cp and advances *p.
 * Returns false on an invalid sequence (overlong, surrogate, > U+10FFFF,
 * truncated). */
static bool
utf8_next(const unsigned char **p, uint32_t *cp)
{
	const unsigned char *s = *p;
	uint32_t c = s[0], min;
	int n, i;

	if (c < 0x80) {
		*cp = c;
		*p = s + 1;
		return true;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		c &= 0x07;
		min = 0x10000;
	} else {
		return false;
	}
	for (i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return false;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return false;
	*cp = c;
	*p = s + n + 1;
	return true;
}

static char *
utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* State of a base64 run being written. */
struct enc {
	char *o;
	uint32_t bits;
	int nbits;
	bool open;
};

static void
enc_unit(struct enc *e, uint32_t u)
{
	e->bits = (e->bits << 16 | u) & 0x3fffff;
	e->nbits += 16;
	while (e->nbits >= 6) {
		e->nbits -= 6;
		*e->o++ = b64[e->bits >> e->nbits & 63];
	}
}

static void
enc_close(struct enc *e)
{
	if (!e->open)
		return;
	if (e->nbits > 0)
		*e->o++ = b64[e->bits << (6 - e->nbits) & 63];
	*e->o++ = '-';
	e->open = false;
	e->bits = 0;
	e->nbits = 0;
}

char *
codec_mutf7_encode(const char *utf8)
{
	const unsigned char *p = (const unsigned char *)utf8;
	size_t n = strlen(utf8);
	struct enc e = {0};
	uint32_t cp;
	char *out;

	/* Worst case, a lone control character: "&AAE-", 5 bytes for 1. */
	if (n > (SIZE_MAX - 1) / 5)
		return NULL;
	out = e.o = xmalloc(5 * n + 1);
	while (*p) {
		if (!utf8_next(&p, &cp)) {
			free(out);
			return NULL;
		}
		if (is_direct(cp)) {
			enc_close(&e);
			*e.o++ = (char)cp;
			if (cp == '&')
				*e.o++ = '-';
			continue;
		}
		if (!e.open) {
			*e.o++ = '&';
			e.open = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			enc_unit(&e, 0xd800 | cp >> 10);
			enc_unit(&e, 0xdc00 | (cp & 0x3ff));
		} else {
			enc_unit(&e, cp);
		}
	}
	enc_close(&e);
	*e.o = '\0';
	return out;
}

static int
b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == ',')
		return 63;
	return -1;
}

/* Decodes the base64 run at *p (after the '&') up to its '-' into o.
 * Returns the new end of o, or NULL when the run is invalid. */
static char *
dec_run(const unsigned char **p, char *o)
{
	const unsigned char *s = *p;
	uint32_t bits = 0, u, hi = 0;
	int nbits = 0, v;

	for (; *s != '-'; s++) {
		if ((v = b64_value(*s)) < 0)
			return NULL; /* also an unterminated run */
		bits = (bits << 6 | (uint32_t)v) & 0x3fffff;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		u = bits >> nbits & 0xffff;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (hi)
				return NULL;
			hi = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			if (!hi)
				return NULL;
			o = utf8_put(o, 0x10000 + ((hi - 0xd800) << 10) +
					    (u - 0xdc00));
			hi = 0;
		} else {
			if (hi || u == 0 || is_direct(u))
				return NULL;
			o = utf8_put(o, u);
		}
	}
	/* Shortest form: fewer than 6 leftover bits, all zero. A run with
	 * no complete unit ends up here with nbits >= 6. */
	if (hi || nbits >= 6 || (bits & ((1u << nbits) - 1)))
		return NULL;
	*p = s + 1;
	return o;
}

char *
codec_mutf7_decode(const char *mutf7)
{
	const unsigned char *p = (const unsigned char *)mutf7;
	size_t n = strlen(mutf7);
	bool after_run = false;
	char *out, *o;

	/* Each 8 base64 bytes give at most 3 UTF-16 units, 9 UTF-8 bytes;
	 * direct bytes give one. */
	if (n > (SIZE_MAX - 1) / 2)
		return NULL;
	out = o = xmalloc(2 * n + 1);
	while (*p) {
		if (*p == '&' && p[1] == '-') {
			*o++ = '&';
			p += 2;
			after_run = false;
		} else if (*p == '&') {
			p++;
			if (after_run || !(o = dec_run(&p, o)))
				goto fail;
			after_run = true;
		} else if (is_direct(*p)) {
			*o++ = (char)*p++;
			after_run = false;
		} else {
			goto fail;
		}
	}
	*o = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

char *
codec_mailbox_name(const char *raw)
{
	const unsigned char *p = (const unsigned char *)raw;
	bool eight = false;
	uint32_t cp;

	for (const unsigned char *q = p; *q; q++)
		eight |= *q >= 0x80;
	if (!eight)
		return codec_mutf7_decode(raw);
	while (*p)
		if (!utf8_next(&p, &cp) || cp < 0x20 || cp == 0x7f ||
		    (cp >= 0x80 && cp < 0xa0))
			return NULL;
	return xstrdup(raw);
}
