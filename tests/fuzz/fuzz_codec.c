/* libFuzzer target for the IMAP codec.
 *
 * Input: one configuration byte, then server bytes. Bit 0 of the first byte
 * picks small limits (to reach every limit path) or the defaults; the other
 * bits mix into the chunk sizes. The server bytes are parsed twice, whole
 * and in chunks whose sizes come from the data itself, and the two runs
 * must give the same responses and the same error. Every string of every
 * response is checked for its NUL terminator and hashed (so ASan sees every
 * byte). LIST names and the input itself also go through modified UTF-7
 * both ways, and the input is encoded as an astring and parsed back.
 * Every INTERNALDATE, and the input itself, goes through the date-time
 * parser: what it accepts must print and parse back to the same time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"

static const struct codec_limits small_limits = {
    .max_line = 128,
    .max_literal = 256,
    .max_response = 1024,
    .max_depth = 6,
    .max_list = 16,
};

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond,   \
				__FILE__, __LINE__);                           \
			abort();                                               \
		}                                                              \
	} while (0)

static void
h_bytes(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n--) {
		*h ^= *s++;
		*h *= 1099511628211ull;
	}
}

static void
h_u64(uint64_t *h, uint64_t v)
{
	h_bytes(h, &v, sizeof v);
}

static void
h_str(uint64_t *h, const struct codec_str *s)
{
	if (s->nil) {
		CHECK(s->ptr == NULL && s->len == 0);
		h_u64(h, 0xdead);
		return;
	}
	CHECK(s->ptr != NULL);
	CHECK(s->ptr[s->len] == '\0');
	h_u64(h, s->len);
	h_bytes(h, s->ptr, s->len);
}

static void
h_list(uint64_t *h, const struct codec_strlist *l)
{
	size_t i;

	h_u64(h, l->n);
	for (i = 0; i < l->n; i++)
		h_str(h, &l->v[i]);
	if (l->n)
		(void)codec_strlist_has(l, "IDLE");
}

static void
h_set(uint64_t *h, const struct codec_seqset *s)
{
	size_t i;

	h_u64(h, s->n);
	for (i = 0; i < s->n; i++) {
		CHECK(s->v[i].lo <= s->v[i].hi);
		h_u64(h, s->v[i].lo);
		h_u64(h, s->v[i].hi);
	}
}

static void
h_addrs(uint64_t *h, const struct codec_address_list *l)
{
	size_t i;

	h_u64(h, l->n);
	for (i = 0; i < l->n; i++) {
		h_str(h, &l->v[i].name);
		h_str(h, &l->v[i].adl);
		h_str(h, &l->v[i].mailbox);
		h_str(h, &l->v[i].host);
	}
}

/* A modified UTF-7 name that decodes must encode back to itself. */
static void
check_mutf7(const char *m)
{
	char *d = codec_mutf7_decode(m), *e;

	if (!d)
		return;
	e = codec_mutf7_encode(d);
	CHECK(e != NULL);
	CHECK(strcmp(e, m) == 0);
	free(e);
	free(d);
}

/* A mailbox name that is taken (modified UTF-7 or UTF-8) is one the
 * encoder can write back: strict UTF-8. */
static void
check_name(const char *raw)
{
	char *d = codec_mailbox_name(raw), *e;

	if (!d)
		return;
	e = codec_mutf7_encode(d);
	CHECK(e != NULL);
	free(e);
	free(d);
}

/* A date-time the parser accepts, printed in UTC, parses back to the
 * same time (when its year still has four digits). */
static void
check_date(const char *s, size_t n)
{
	static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char buf[64];
	int64_t t, t2;
	time_t tt;
	struct tm tm;

	if (!codec_internaldate(s, n, &t))
		return;
	tt = (time_t)t;
	CHECK(gmtime_r(&tt, &tm) != NULL);
	if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return;
	snprintf(buf, sizeof buf, "%02d-%.3s-%04d %02d:%02d:%02d +0000",
		 tm.tm_mday, mon + 3 * tm.tm_mon, tm.tm_year + 1900,
		 tm.tm_hour, tm.tm_min, tm.tm_sec);
	CHECK(codec_internaldate(buf, strlen(buf), &t2));
	CHECK(t2 == t);
}

static void
h_response(uint64_t *h, const struct codec_response *r)
{
	const struct codec_fetch *f = &r->u.fetch;
	size_t i;

	h_u64(h, r->kind);
	(void)codec_kind_name(r->kind);
	h_str(h, &r->tag);
	h_str(h, &r->text);
	h_str(h, &r->code.name);
	if (r->kind == CODEC_TAGGED || r->kind == CODEC_UNTAGGED_STATUS) {
		h_u64(h, r->status);
		(void)codec_status_name(r->status);
	}
	h_u64(h, r->code.kind);
	switch (r->code.kind) {
	case CODEC_CODE_CAPABILITY:
	case CODEC_CODE_PERMANENTFLAGS:
		h_list(h, &r->code.u.list);
		break;
	case CODEC_CODE_UIDNEXT:
	case CODEC_CODE_UIDVALIDITY:
	case CODEC_CODE_UNSEEN:
	case CODEC_CODE_HIGHESTMODSEQ:
		h_u64(h, r->code.u.number);
		break;
	case CODEC_CODE_COPYUID:
		h_set(h, &r->code.u.uidplus.src);
		/* fall through */
	case CODEC_CODE_APPENDUID:
		h_u64(h, r->code.u.uidplus.uidvalidity);
		h_set(h, &r->code.u.uidplus.dst);
		break;
	case CODEC_CODE_OTHER:
		h_str(h, &r->code.u.other);
		break;
	default:
		break;
	}
	switch (r->kind) {
	case CODEC_CAPABILITY:
	case CODEC_ENABLED:
	case CODEC_FLAGS:
		h_list(h, &r->u.list);
		break;
	case CODEC_LIST:
		h_u64(h, r->u.list_.is_lsub);
		h_list(h, &r->u.list_.flags);
		h_u64(h, (unsigned char)r->u.list_.delimiter);
		h_str(h, &r->u.list_.mailbox);
		check_mutf7(r->u.list_.mailbox.ptr);
		check_name(r->u.list_.mailbox.ptr);
		break;
	case CODEC_STATUS:
		h_str(h, &r->u.status.mailbox);
		check_name(r->u.status.mailbox.ptr);
		for (i = 0; i < r->u.status.n_items; i++) {
			h_str(h, &r->u.status.items[i].name);
			h_u64(h, r->u.status.items[i].value);
		}
		break;
	case CODEC_SEARCH:
		h_bytes(h, r->u.search.v, r->u.search.n * sizeof(uint32_t));
		h_u64(h, r->u.search.modseq);
		break;
	case CODEC_ESEARCH:
		h_str(h, &r->u.esearch.tag);
		h_u64(h, r->u.esearch.uid);
		h_u64(h, (uint64_t)r->u.esearch.min);
		h_u64(h, (uint64_t)r->u.esearch.max);
		h_u64(h, (uint64_t)r->u.esearch.count);
		h_set(h, &r->u.esearch.all);
		h_u64(h, r->u.esearch.modseq);
		break;
	case CODEC_EXISTS:
	case CODEC_RECENT:
	case CODEC_EXPUNGE:
		CHECK(r->u.number <= UINT32_MAX);
		h_u64(h, r->u.number);
		break;
	case CODEC_VANISHED:
		h_u64(h, r->u.vanished.earlier);
		h_set(h, &r->u.vanished.uids);
		break;
	case CODEC_FETCH:
		h_u64(h, f->seq);
		h_u64(h, f->have);
		h_u64(h, f->uid);
		if (f->have & CODEC_FETCH_FLAGS)
			h_list(h, &f->flags);
		if (f->have & CODEC_FETCH_INTERNALDATE) {
			h_str(h, &f->internaldate);
			if (!f->internaldate.nil)
				check_date(f->internaldate.ptr,
					   f->internaldate.len);
		}
		h_u64(h, f->size);
		h_u64(h, f->modseq);
		if (f->have & CODEC_FETCH_ENVELOPE) {
			h_str(h, &f->envelope.date);
			h_str(h, &f->envelope.subject);
			h_addrs(h, &f->envelope.from);
			h_addrs(h, &f->envelope.sender);
			h_addrs(h, &f->envelope.reply_to);
			h_addrs(h, &f->envelope.to);
			h_addrs(h, &f->envelope.cc);
			h_addrs(h, &f->envelope.bcc);
			h_str(h, &f->envelope.in_reply_to);
			h_str(h, &f->envelope.message_id);
		}
		for (i = 0; i < f->n_sections; i++) {
			h_u64(h, f->sections[i].binary);
			h_str(h, &f->sections[i].spec);
			h_u64(h, (uint64_t)f->sections[i].origin);
			h_str(h, &f->sections[i].data);
		}
		h_u64(h, f->n_skipped);
		break;
	case CODEC_OTHER:
		h_str(h, &r->u.other.keyword);
		h_str(h, &r->u.other.rest);
		h_u64(h, (uint64_t)r->u.other.number);
		break;
	default:
		break;
	}
}

struct run {
	uint64_t hash;
	size_t responses;
	int error; /* 0 or a negative enum codec_error */
};

/* Parses data in chunks: all of it when salt is 0, else sizes taken from
 * the data bytes mixed with salt. */
static struct run
parse(const uint8_t *data, size_t size, const struct codec_limits *lim,
      unsigned salt)
{
	struct run run = {1469598103934665603ull, 0, 0};
	const struct codec_response *r;
	struct codec c;
	size_t pos = 0, used, n;
	int rc;

	codec_init(&c, lim);
	while (pos < size) {
		n = size - pos;
		if (salt) {
			size_t want = 1 + ((data[pos] ^ salt) & 0x3f);
			if (n > want)
				n = want;
		}
		while (n > 0) {
			rc = codec_parse(&c, data + pos, n, &used, &r);
			CHECK(used <= n);
			pos += used;
			n -= used;
			if (rc < 0) {
				CHECK(codec_errmsg(&c)[0] != '\0');
				CHECK(r == NULL);
				run.error = rc;
				/* It stays in error until reset. */
				rc = codec_parse(&c, "* 1 EXISTS\r\n", 12,
						 &used, &r);
				CHECK(rc == run.error && used == 0);
				codec_finish(&c);
				return run;
			}
			if (rc == 1) {
				CHECK(r != NULL);
				h_response(&run.hash, r);
				run.responses++;
			} else {
				CHECK(rc == 0 && n == 0 && r == NULL);
			}
		}
	}
	/* Reset and parse something: the codec must work again. */
	codec_reset(&c);
	rc = codec_parse(&c, "* 1 EXISTS\r\n", 12, &used, &r);
	CHECK(rc == 1 && r->kind == CODEC_EXISTS && r->u.number == 1);
	codec_finish(&c);
	return run;
}

/* The input as a C string through modified UTF-7, and as an astring
 * through the encoder and back through the parser. */
static void
check_strings(const uint8_t *data, size_t size)
{
	char s[512], *e, *d;
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
	struct codec_buf b;
	const struct codec_response *r;
	struct codec c;
	size_t used;
	int rc;

	memcpy(s, data, n);
	s[n] = '\0';
	check_mutf7(s);
	e = codec_mutf7_encode(s);
	if (e) {
		d = codec_mutf7_decode(e);
		CHECK(d != NULL && strcmp(d, s) == 0);
		free(d);
		free(e);
	}

	codec_buf_init(&b);
	b.literal_plus = data[0] & 1;
	codec_buf_addstr(&b, "* LIST () \"/\" ");
	codec_enc_astring(&b, (const char *)data, n);
	codec_buf_addstr(&b, "\r\n");
	codec_init(&c, NULL);
	rc = codec_parse(&c, b.data, b.len, &used, &r);
	CHECK(rc == 1 && used == b.len);
	CHECK(r->kind == CODEC_LIST && r->u.list_.mailbox.len == n &&
	      memcmp(r->u.list_.mailbox.ptr, data, n) == 0);
	codec_finish(&c);
	codec_buf_consume(&b, b.len / 2);
	codec_buf_finish(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct codec_limits *lim;
	struct run whole, chunked;
	unsigned cfg;

	if (size < 1)
		return 0;
	cfg = data[0];
	lim = cfg & 1 ? &small_limits : NULL;
	data++;
	size--;

	whole = parse(data, size, lim, 0);
	chunked = parse(data, size, lim, cfg | 0x100);
	CHECK(whole.error == chunked.error);
	CHECK(whole.responses == chunked.responses);
	CHECK(whole.hash == chunked.hash);
	if (size > 0)
		check_strings(data, size);
	check_date((const char *)data, size < 64 ? size : 64);
	return 0;
}
