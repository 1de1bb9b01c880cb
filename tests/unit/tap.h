/* A minimal TAP producer for unit tests: each check prints "ok - ..." or
 * "not ok - ..." and tests/run counts them. Also the one timing scale
 * every deadline of a test is multiplied by. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_failed;

#define ok(cond, ...)                                                          \
	do {                                                                   \
		if (cond) {                                                    \
			printf("ok - ");                                       \
		} else {                                                       \
			tap_failed++;                                          \
			printf("not ok - %s:%d: ", __FILE__, __LINE__);        \
		}                                                              \
		printf(__VA_ARGS__);                                           \
		putchar('\n');                                                 \
	} while (0)

/* Compares two C strings (NULL allowed) and prints both on failure. */
#define is_str(got, want, ...)                                                 \
	do {                                                                   \
		const char *g_ = (got), *w_ = (want);                          \
		int same_ = (!g_ && !w_) || (g_ && w_ && !strcmp(g_, w_));     \
		ok(same_, __VA_ARGS__);                                        \
		if (!same_)                                                    \
			printf("#   got  '%s'\n#   want '%s'\n",              \
			       g_ ? g_ : "(null)", w_ ? w_ : "(null)");        \
	} while (0)

#define is_int(got, want, ...)                                                 \
	do {                                                                   \
		long long g_ = (long long)(got), w_ = (long long)(want);       \
		ok(g_ == w_, __VA_ARGS__);                                     \
		if (g_ != w_)                                                  \
			printf("#   got  %lld\n#   want %lld\n", g_, w_);         \
	} while (0)

/* $MWTEST_TIMEOUT_SCALE (default 1), as tests/lib/mwtest.py reads it: what
 * every deadline a test waits against is multiplied by on a slow or busy
 * machine. A test waits for a condition up to a deadline, never for a
 * fixed time, and asserts no speed (that is bench/'s job). Ends the test
 * ("Bail out!") when the value is not a positive number. */
static inline double
timeout_scale(void)
{
	static double scale;
	const char *s;
	char *end;

	if (scale > 0)
		return scale;
	s = getenv("MWTEST_TIMEOUT_SCALE");
	if (!s || !*s)
		return scale = 1;
	scale = strtod(s, &end);
	if (*end || !(scale > 0)) {
		printf("Bail out! MWTEST_TIMEOUT_SCALE=%s is not a positive "
		       "number\n",
		       s);
		exit(1);
	}
	return scale;
}

/* A deadline of ms milliseconds, scaled by timeout_scale(). */
static inline long long
scaled_ms(long long ms)
{
	return (long long)(ms * timeout_scale());
}

static inline int
tap_done(void)
{
	fflush(stdout);
	return tap_failed ? 1 : 0;
}
