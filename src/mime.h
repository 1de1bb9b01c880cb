/* mime: header text decoding (RFC 2047) and escaping for display. */
#pragma once

#include <stddef.h>

/* Default cap for decoded header values, in bytes. */
#define MIME_MAX_TEXT 512

/* Decodes RFC 2047 encoded-words (B and Q, any charset iconv knows;
 * whitespace between adjacent encoded-words dropped; malformed words left
 * as they are) in len bytes of s into UTF-8. Invalid UTF-8 becomes U+FFFD,
 * control characters are dropped (tabs and newlines become one space),
 * leading and trailing space trimmed, and the result cut at max bytes on a
 * character boundary (ending in "…" when cut). Returns a new string. */
char *mime_decode_header(const char *s, size_t len, size_t max);

/* Makes len bytes of s safe to show: invalid UTF-8 becomes U+FFFD, control
 * characters are dropped, cut at max bytes as above. Returns a new string. */
char *mime_sanitize(const char *s, size_t len, size_t max);

/* Escapes &, <, >, " and ' as XML entities for the notification body, which
 * servers may read as markup. Returns a new string. */
char *mime_escape_markup(const char *s);
