/* A minimal TAP producer for unit tests: each check prints "ok - ..." or
 * "not ok - ..." and tests/run counts them. */
#pragma once

#include <stdio.h>
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

static inline int
tap_done(void)
{
	fflush(stdout);
	return tap_failed ? 1 : 0;
}
