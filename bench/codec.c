/* Benchmark of the IMAP response parser. Prints figures, asserts nothing.
 *
 * Builds two transcripts in memory and parses each several times in 16 KiB
 * chunks, as a socket read loop would:
 *   envelope: 20000 "* n FETCH (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ
 *             ENVELOPE BODY[HEADER.FIELDS (LIST-ID)])" responses of the
 *             sizes Dovecot sends for ordinary mail (some subjects and
 *             names as 8-bit literals, some with several recipients);
 *   body:     2000 FETCH responses carrying a 32 KiB BODY[] literal.
 * Reports MB/s and responses/s for the best and the mean run.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "util.h"

#define CHUNK (16 * 1024)
#define RUNS 7

struct out {
	char *p;
	size_t len, cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->p = xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void putf(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
putf(struct out *o, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	put(o, tmp, (size_t)n);
}

static uint64_t
rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ull;
}

static const char *const words[] = {
    "Re:",	  "Fwd:",     "meeting", "invoice", "quarterly", "report",
    "draft",	  "update",   "the",	 "for",	    "project",	 "release",
    "notes",	  "[list]",   "weekly",	 "build",   "failed",	 "passed",
    "review",	  "request",  "your",	 "order",   "has",	 "shipped",
    "newsletter", "November", "agenda",
};
static const char *const names[] = {
    "Alice Martin", "Bob Jones",    "Carol White",  "Dave Smith",
    "Erin Brown",   "Frank Miller", "Grace Wilson", "GitHub",
};

static void
subject(struct out *o, uint64_t *st)
{
	size_t n = 3 + rnd(st) % 9, i;
	char s[512];
	size_t len = 0;

	for (i = 0; i < n; i++) {
		const char *w = words[rnd(st) % (sizeof words / sizeof *words)];
		len += (size_t)snprintf(s + len, sizeof s - len, "%s%s",
					i ? " " : "", w);
	}
	if (rnd(st) % 5 == 0) {
		/* 8-bit subjects come as literals. */
		putf(o, "{%zu}\r\n%s \xc3\xbc\xc3\xa9", len + 5, s);
	} else {
		putf(o, "\"%s\"", s);
	}
}

static void
address(struct out *o, uint64_t *st)
{
	const char *n = names[rnd(st) % (sizeof names / sizeof *names)];

	putf(o, "(\"%s\" NIL \"user%u\" \"example%u.com\")", n,
	     (unsigned)(rnd(st) % 1000), (unsigned)(rnd(st) % 50));
}

static void
gen_envelopes(struct out *o, unsigned n)
{
	static const char list_id[] =
	    "List-Id: Dev list <dev.lists.example.com>\r\n\r\n";
	uint64_t st = 12345;
	unsigned i, j, to;

	for (i = 1; i <= n; i++) {
		putf(o,
		     "* %u FETCH (UID %u FLAGS (%s) INTERNALDATE "
		     "\"%02u-Nov-2023 %02u:%02u:%02u +0100\" RFC822.SIZE %u "
		     "MODSEQ (%" PRIu64 ") ENVELOPE (\"%s, %u Nov 2023 "
		     "%02u:%02u:%02u +0100\" ",
		     i, 1000 + i, i % 3 ? "\\Seen" : "\\Seen $NotJunk",
		     1 + i % 28, i % 24, i % 60, (i * 7) % 60,
		     (unsigned)(2000 + rnd(&st) % 200000),
		     (uint64_t)5000000 + i, "Tue", 1 + i % 28, i % 24, i % 60,
		     (i * 7) % 60);
		subject(o, &st);
		put(o, " (", 2);
		address(o, &st);
		put(o, ") (", 3);
		address(o, &st);
		put(o, ") NIL (", 7);
		to = 1 + rnd(&st) % 4;
		for (j = 0; j < to; j++)
			address(o, &st);
		putf(o,
		     ") %s NIL %s \"<%" PRIx64 ".%u@mail.example.com>\") "
		     "BODY[HEADER.FIELDS (LIST-ID)] ",
		     i % 4 ? "NIL" : "((NIL NIL \"team\" \"example.com\"))",
		     i % 2 ? "NIL" : "\"<parent@example.com>\"", rnd(&st), i);
		if (i % 3)
			put(o, "{2}\r\n\r\n)\r\n", 10);
		else
			putf(o, "{%zu}\r\n%s)\r\n", strlen(list_id), list_id);
	}
	put(o, "a1 OK Fetch completed (0.120 + 0.000 secs).\r\n", 45);
}

static void
gen_bodies(struct out *o, unsigned n)
{
	static char body[32 * 1024];
	unsigned i;
	size_t k;

	for (k = 0; k < sizeof body; k++)
		body[k] = k % 78 == 77 ? '\n' : (char)('a' + k % 26);
	for (i = 1; i <= n; i++) {
		putf(o, "* %u FETCH (UID %u BODY[] {%zu}\r\n", i, i,
		     sizeof body);
		put(o, body, sizeof body);
		put(o, ")\r\n", 3);
	}
	put(o, "a2 OK Fetch completed.\r\n", 24);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parses the whole transcript in CHUNK-byte reads. Returns the number of
 * responses, or -1 on a parse error. */
static long
parse_all(struct codec *c, const char *p, size_t len)
{
	const struct codec_response *r;
	size_t pos = 0, used, n;
	long count = 0;
	int rc;

	while (pos < len) {
		n = len - pos < CHUNK ? len - pos : CHUNK;
		while (n > 0) {
			rc = codec_parse(c, p + pos, n, &used, &r);
			if (rc < 0) {
				fprintf(stderr, "parse error: %s\n",
					codec_errmsg(c));
				return -1;
			}
			pos += used;
			n -= used;
			count += rc;
		}
	}
	return count;
}

static void
bench(const char *name, const struct out *o)
{
	double best = 1e9, sum = 0, t;
	long count = 0;
	struct codec c;
	int i;

	codec_init(&c, NULL);
	for (i = 0; i < RUNS; i++) {
		t = now();
		count = parse_all(&c, o->p, o->len);
		t = now() - t;
		if (count < 0)
			break;
		sum += t;
		if (t < best)
			best = t;
	}
	codec_finish(&c);
	if (count < 0)
		return;
	printf("%-9s %6.1f MB in %ld responses (%zu bytes each on average)\n",
	       name, o->len / 1e6, count, o->len / (size_t)count);
	printf("%-9s best %8.1f MB/s %10.0f responses/s; mean %8.1f MB/s "
	       "%10.0f responses/s (%d runs, %d KiB reads)\n",
	       "", o->len / best / 1e6, count / best,
	       o->len / (sum / RUNS) / 1e6, count / (sum / RUNS), RUNS,
	       CHUNK / 1024);
}

int
main(void)
{
	struct out env = {0}, bodies = {0};

	gen_envelopes(&env, 20000);
	gen_bodies(&bodies, 2000);
	bench("envelope", &env);
	bench("body", &bodies);
	free(env.p);
	free(bodies.p);
	return 0;
}
