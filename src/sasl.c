/* sasl: OAUTHBEARER and XOAUTH2 messages; see sasl.h. */
#include "sasl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *
sasl_mech_name(enum sasl_mech m)
{
	return m == SASL_OAUTHBEARER ? "OAUTHBEARER" : "XOAUTH2";
}

/* Appends user as a GS2 saslname (RFC 5801): ',' as "=2C", '=' as
 * "=3D". */
static void
add_saslname(struct codec_buf *b, const char *user)
{
	for (; *user; user++) {
		if (*user == ',')
			codec_buf_addstr(b, "=2C");
		else if (*user == '=')
			codec_buf_addstr(b, "=3D");
		else
			codec_buf_add(b, user, 1);
	}
}

void
sasl_oauth_response(struct codec_buf *b, enum sasl_mech m, const char *user,
		    const char *token)
{
	struct codec_buf raw;

	codec_buf_init(&raw);
	if (m == SASL_OAUTHBEARER) {
		/* gs2-header "n,a=USER," then kvpairs, each ended by ^A. */
		codec_buf_addstr(&raw, "n,a=");
		add_saslname(&raw, user);
		codec_buf_addstr(&raw, ",\001");
	} else {
		codec_buf_addstr(&raw, "user=");
		codec_buf_addstr(&raw, user);
		codec_buf_addstr(&raw, "\001");
	}
	codec_buf_addstr(&raw, "auth=Bearer ");
	codec_buf_addstr(&raw, token);
	codec_buf_addstr(&raw, "\001\001");
	codec_buf_add_base64(b, raw.data, raw.len);
	wipe(raw.data, raw.len);
	codec_buf_finish(&raw);
}

/* Decodes base64 text into out (room bytes; the rest is dropped).
 * Returns the bytes written, or -1 when text is not base64: a character
 * outside the alphabet, '=' other than at the end, or a lone digit. */
static long
b64_decode(const char *text, size_t len, unsigned char *out, size_t room)
{
	unsigned acc = 0, bits = 0, digits = 0;
	size_t n = 0, i = 0;

	while (len && text[len - 1] == '=')
		len--;
	for (; i < len; i++) {
		int v = base64_value((unsigned char)text[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		digits++;
		if (bits >= 8) {
			bits -= 8;
			if (n < room)
				out[n] = (unsigned char)(acc >> bits);
			n++;
		}
	}
	if (digits % 4 == 1)
		return -1;
	return (long)(n < room ? n : room);
}

/* Skips JSON white space from p; returns where it stops. */
static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p is at a '"': returns the end of that string (after its closing
 * quote), or end when it is not closed. */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return end;
}

/* Copies the value at p (a string without its quotes and escapes as
 * they are, or a bare token such as a number) into out (n bytes, cut). */
static void
copy_value(const char *p, const char *end, char *out, size_t n)
{
	const char *q;
	size_t len;

	if (p < end && *p == '"') {
		q = skip_string(p, end);
		p++;
		len = (size_t)(q - p);
		if (len && p[len - 1] == '"')
			len--;
	} else {
		for (q = p; q < end && *q != ',' && *q != '}' && *q != ' '; q++)
			;
		len = (size_t)(q - p);
	}
	if (len >= n)
		len = n - 1;
	memcpy(out, p, len);
	out[len] = '\0';
}

/* Finds the member "status" of the top-level object of json (n bytes) and
 * copies its value into out. A bounded scan, not a parser: strings are
 * skipped whole, so a "status" inside a value is not taken; nesting is
 * counted, so a member of an inner object is not either. */
static void
find_status(const char *json, size_t n, char *out, size_t out_n)
{
	const char *p = json, *end = json + n;
	int depth = 0;

	out[0] = '\0';
	while (p < end) {
		if (*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if (*p == '}' || *p == ']') {
			depth--;
			p++;
		} else if (*p == '"') {
			const char *q = skip_string(p, end);
			bool key = depth == 1 && q - p == 8 &&
				   !memcmp(p, "\"status\"", 8);

			p = skip_ws(q, end);
			if (key && p < end && *p == ':') {
				copy_value(skip_ws(p + 1, end), end, out,
					   out_n);
				return;
			}
		} else {
			p++;
		}
	}
}

int
sasl_oauth_error(const char *text, size_t len, struct sasl_error *e)
{
	unsigned char raw[SASL_ERROR_MAX];
	long n;

	memset(e, 0, sizeof(*e));
	if (len > 4 * SASL_ERROR_MAX)
		len = 4 * SASL_ERROR_MAX;
	n = b64_decode(text, len, raw, sizeof(raw));
	if (n < 0)
		return -EINVAL;
	for (long i = 0; i < n; i++)
		e->json[i] =
		    raw[i] >= 0x20 && raw[i] < 0x7f ? (char)raw[i] : '?';
	e->json[n] = '\0';
	find_status(e->json, (size_t)n, e->status, sizeof(e->status));
	for (char *s = e->status; *s; s++)
		if (*s == '?')
			*s = '_';
	return 0;
}
