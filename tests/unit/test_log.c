/* Unit tests for log escaping (util.c): control characters and bidi
 * overrides from servers and mail are written as \xNN, and no input, of
 * any length, makes the escaping write past its buffer. Buffers are
 * allocated at their exact size so that ASan catches any overrun. */
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "tap.h"
#include "util.h"

#define RLO "\xe2\x80\xae" /* U+202E RIGHT-TO-LEFT OVERRIDE */

/* The whole escaping of s, with room to spare (4 bytes per input byte). */
static char *
escape_all(const char *s)
{
	size_t n = 4 * strlen(s) + 1;
	char *out = xmalloc(n);

	log_escape(s, out, n);
	return out;
}

/* Escapes s into every buffer size from 1 to the full length + 2 and
 * checks each result: NUL-terminated within the buffer, the length
 * returned, a prefix of the full escaping that never cuts an escape in
 * two, and as long as the buffer allows. */
static void
check_every_size(const char *s, const char *what)
{
	char *full = escape_all(s);
	size_t full_len = strlen(full);
	bool good = true;

	for (size_t n = 1; n <= full_len + 2 && good; n++) {
		char *out = xmalloc(n);
		size_t got = log_escape(s, out, n);
		size_t next;

		good = got < n && strlen(out) == got &&
		       !strncmp(out, full, got);
		/* Cut only between whole characters: the next one, if any,
		 * did not fit. */
		if (good && got < full_len) {
			/* An escaped e2 starts a bidi override: 3
			 * escapes that go together. */
			next = full[got] != '\\'		  ? 1
			       : !strncmp(full + got, "\\xe2", 4) ? 12
								 : 4;
			good = got + next >= n;
		}
		if (!good)
			printf("#   %s: buffer of %zu bytes gave '%s'\n", what,
			       n, out);
		free(out);
	}
	ok(good, "%s: every buffer size from 1 to %zu", what, full_len + 2);
	free(full);
}

static void
test_escapes(void)
{
	char out[64];
	size_t n;

	n = log_escape("a\tb\x1b[31mc\x7f", out, sizeof(out));
	is_str(out, "a\\x09b\\x1b[31mc\\x7f", "control characters as \\xNN");
	is_int(n, strlen(out), "returns the length written");
	log_escape("x" RLO "y\xe2\x81\xa6z", out, sizeof(out));
	is_str(out, "x\\xe2\\x80\\xaey\\xe2\\x81\\xa6z", "bidi overrides");
	log_escape("Zo\xc3\xab \xe2\x80\x94 \xe2\x80\xa9", out, sizeof(out));
	is_str(out, "Zo\xc3\xab \xe2\x80\x94 \xe2\x80\xa9",
	       "other UTF-8 is kept");
	log_escape("\xe2\x80", out, sizeof(out));
	is_str(out, "\xe2\x80", "a cut sequence at the end is kept as is");
	n = log_escape("abc", out, 0);
	is_int(n, 0, "a buffer of 0 bytes is left alone");
}

static void
test_boundaries(void)
{
	char s[3 * 1400 + 32];

	check_every_size("", "empty");
	check_every_size("plain text", "plain");
	check_every_size("\x01\x02" RLO "a" RLO "\x7f", "mixed escapes");
	/* The reported attack: "* OK [ALERT] " text, 2 to 8 ASCII
	 * characters, then U+202E over and over. */
	for (int k = 2; k <= 8; k++) {
		char what[32];
		size_t o = 0;

		for (int i = 0; i < k; i++)
			s[o++] = 'a' + i;
		for (int i = 0; i < 400; i++, o += 3)
			memcpy(s + o, RLO, 3);
		s[o] = 0;
		snprintf(what, sizeof(what), "%d ASCII + 400 RLO", k);
		check_every_size(s, what);
	}
}

/* Through log_at(), whose line buffer is 4096 bytes: lines whose escaping
 * ends exactly at, just before and just after it. */
static void
test_log_line(void)
{
	static char s[2048];
	char *got;
	bool good = true;

	for (int k = 0; k <= 8 && good; k++) {
		for (int pad = 0; pad < 8 && good; pad++) {
			size_t o = 0;

			for (int i = 0; i < k; i++)
				s[o++] = 'a';
			while (o + 3 < sizeof(s) - 1 - pad) {
				memcpy(s + o, RLO, 3);
				o += 3;
			}
			s[o] = 0;
			capture_begin("build/test_log.stderr");
			log_warn(NULL, "server alert: %s", s);
			got = capture_end();
			/* Cut after a whole escape, within the buffer. */
			size_t n = strlen(got);

			good = !strncmp(got, "mailwatch: server alert: ", 25) &&
			       n - strlen("mailwatch: \n") < 4096 &&
			       n > 13 &&
			       !strcmp(got + n - 13, "\\xe2\\x80\\xae\n");
			if (!good)
				dump(got);
			free(got);
		}
	}
	ok(good, "log lines of every length near the 4096-byte buffer");
}

int
main(void)
{
	test_escapes();
	test_boundaries();
	test_log_line();
	return tap_done();
}
