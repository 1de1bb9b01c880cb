/* Unit tests of the IMAP codec: transcripts fed whole, one byte at a time
 * and at random split points must render exactly as their .expect files;
 * limits and errors; the encoder; modified UTF-7.
 *
 * Run from the top of the tree (tests/run does). CODEC_WRITE_EXPECT=1
 * rewrites the .expect files from the whole-feed rendering; read the diff
 * before committing one. */
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "tap.h"
#include "util.h"

#define TRANSCRIPTS "tests/transcripts"

/* ---- a growable string ---- */

struct sb {
	char *p;
	size_t len, cap;
};

static void
sb_add(struct sb *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->p = xrealloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void sb_printf(struct sb *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sb *s, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	sb_add(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static const char *
sb_str(struct sb *s)
{
	return s->p ? s->p : "";
}

/* ---- rendering a response as canonical text ---- */

static uint32_t
fnv1a(const char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--) {
		h ^= (unsigned char)*p++;
		h *= 16777619u;
	}
	return h;
}

/* NIL, or a C-like quoted string; long ones are cut and summarised. */
static void
put_str(struct sb *s, const struct codec_str *v)
{
	size_t i, n;

	if (v->nil) {
		sb_add(s, "NIL", 3);
		return;
	}
	if (!v->ptr) {
		sb_add(s, "(null)", 6);
		return;
	}
	if (v->ptr[v->len] != '\0')
		sb_add(s, "(not NUL-terminated)", 20);
	n = v->len > 160 ? 64 : v->len;
	sb_add(s, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = v->ptr[i];

		if (ch == '"' || ch == '\\')
			sb_printf(s, "\\%c", ch);
		else if (ch >= 0x20 && ch < 0x7f)
			sb_add(s, (const char *)&ch, 1);
		else
			sb_printf(s, "\\x%02x", ch);
	}
	sb_add(s, "\"", 1);
	if (n < v->len)
		sb_printf(s, "...(%zu bytes, fnv %08" PRIx32 ")", v->len,
			  fnv1a(v->ptr, v->len));
}

/* Flags and capabilities bare when that is unambiguous, else quoted. */
static void
put_word(struct sb *s, const struct codec_str *v)
{
	size_t i;
	bool bare = !v->nil && v->len > 0 &&
		    !(v->len == 3 && !strncasecmp(v->ptr, "NIL", 3));

	for (i = 0; bare && i < v->len; i++) {
		unsigned char ch = v->ptr[i];
		bare = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '(' &&
		       ch != ')';
	}
	if (bare)
		sb_add(s, v->ptr, v->len);
	else
		put_str(s, v);
}

static void
put_list(struct sb *s, const struct codec_strlist *l)
{
	size_t i;

	sb_add(s, "(", 1);
	for (i = 0; i < l->n; i++) {
		if (i)
			sb_add(s, " ", 1);
		put_word(s, &l->v[i]);
	}
	sb_add(s, ")", 1);
}

static void
put_seqset(struct sb *s, const struct codec_seqset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++) {
		if (i)
			sb_add(s, ",", 1);
		if (set->v[i].lo == UINT32_MAX)
			sb_add(s, "*", 1);
		else
			sb_printf(s, "%" PRIu32, set->v[i].lo);
		if (set->v[i].hi == set->v[i].lo)
			continue;
		if (set->v[i].hi == UINT32_MAX)
			sb_add(s, ":*", 2);
		else
			sb_printf(s, ":%" PRIu32, set->v[i].hi);
	}
	if (set->n == 0)
		sb_add(s, "(empty)", 7);
}

static void
put_code(struct sb *s, const struct codec_code *k)
{
	if (k->kind == CODEC_CODE_NONE)
		return;
	sb_printf(s, " [%s", k->name.ptr);
	switch (k->kind) {
	case CODEC_CODE_CAPABILITY:
	case CODEC_CODE_PERMANENTFLAGS:
		sb_add(s, " ", 1);
		put_list(s, &k->u.list);
		break;
	case CODEC_CODE_UIDNEXT:
	case CODEC_CODE_UIDVALIDITY:
	case CODEC_CODE_UNSEEN:
	case CODEC_CODE_HIGHESTMODSEQ:
		sb_printf(s, " %" PRIu64, k->u.number);
		break;
	case CODEC_CODE_COPYUID:
		sb_printf(s, " %" PRIu32 " ", k->u.uidplus.uidvalidity);
		put_seqset(s, &k->u.uidplus.src);
		sb_add(s, " ", 1);
		put_seqset(s, &k->u.uidplus.dst);
		break;
	case CODEC_CODE_APPENDUID:
		sb_printf(s, " %" PRIu32 " ", k->u.uidplus.uidvalidity);
		put_seqset(s, &k->u.uidplus.dst);
		break;
	case CODEC_CODE_OTHER:
		sb_add(s, " other=", 7);
		put_str(s, &k->u.other);
		break;
	default:
		break;
	}
	sb_add(s, "]", 1);
}

static void
put_addrs(struct sb *s, const char *name, const struct codec_address_list *l)
{
	size_t i;

	sb_printf(s, "\n    %s=", name);
	if (l->n == 0)
		sb_add(s, "NIL", 3);
	for (i = 0; i < l->n; i++) {
		sb_add(s, "(", 1);
		put_str(s, &l->v[i].name);
		sb_add(s, " ", 1);
		put_str(s, &l->v[i].adl);
		sb_add(s, " ", 1);
		put_str(s, &l->v[i].mailbox);
		sb_add(s, " ", 1);
		put_str(s, &l->v[i].host);
		sb_add(s, ")", 1);
	}
}

static void
put_fetch(struct sb *s, const struct codec_fetch *f)
{
	const struct codec_envelope *e = &f->envelope;
	size_t i;

	sb_printf(s, "* %" PRIu32 " FETCH", f->seq);
	if (f->have & CODEC_FETCH_UID)
		sb_printf(s, " uid=%" PRIu32, f->uid);
	if (f->have & CODEC_FETCH_SIZE)
		sb_printf(s, " size=%" PRIu64, f->size);
	if (f->have & CODEC_FETCH_MODSEQ)
		sb_printf(s, " modseq=%" PRIu64, f->modseq);
	if (f->have & CODEC_FETCH_FLAGS) {
		sb_add(s, " flags=", 7);
		put_list(s, &f->flags);
	}
	if (f->have & CODEC_FETCH_BODYSTRUCTURE)
		sb_add(s, " bodystructure", 14);
	if (f->n_skipped)
		sb_printf(s, " skipped=%u", f->n_skipped);
	if (f->have & CODEC_FETCH_INTERNALDATE) {
		sb_add(s, "\n  internaldate=", 16);
		put_str(s, &f->internaldate);
	}
	if (f->have & CODEC_FETCH_ENVELOPE) {
		sb_add(s, "\n  envelope date=", 17);
		put_str(s, &e->date);
		sb_add(s, "\n    subject=", 13);
		put_str(s, &e->subject);
		put_addrs(s, "from", &e->from);
		put_addrs(s, "sender", &e->sender);
		put_addrs(s, "reply-to", &e->reply_to);
		put_addrs(s, "to", &e->to);
		put_addrs(s, "cc", &e->cc);
		put_addrs(s, "bcc", &e->bcc);
		sb_add(s, "\n    in-reply-to=", 17);
		put_str(s, &e->in_reply_to);
		sb_add(s, " message-id=", 12);
		put_str(s, &e->message_id);
	}
	for (i = 0; i < f->n_sections; i++) {
		const struct codec_section *sec = &f->sections[i];

		sb_printf(s, "\n  %s[", sec->binary ? "BINARY" : "BODY");
		sb_add(s, sec->spec.ptr, sec->spec.len);
		sb_add(s, "]", 1);
		if (sec->origin >= 0)
			sb_printf(s, "<%" PRId64 ">", sec->origin);
		sb_add(s, " ", 1);
		put_str(s, &sec->data);
	}
}

static void
render(struct sb *s, const struct codec_response *r)
{
	size_t i;

	switch (r->kind) {
	case CODEC_CONTINUATION:
		sb_add(s, "+", 1);
		put_code(s, &r->code);
		sb_add(s, " ", 1);
		put_str(s, &r->text);
		break;
	case CODEC_TAGGED:
		sb_printf(s, "TAG %s %s", r->tag.ptr,
			  codec_status_name(r->status));
		put_code(s, &r->code);
		sb_add(s, " ", 1);
		put_str(s, &r->text);
		break;
	case CODEC_UNTAGGED_STATUS:
		sb_printf(s, "* %s", codec_status_name(r->status));
		put_code(s, &r->code);
		sb_add(s, " ", 1);
		put_str(s, &r->text);
		break;
	case CODEC_CAPABILITY:
	case CODEC_ENABLED:
	case CODEC_FLAGS:
		sb_printf(s, "* %s ", codec_kind_name(r->kind));
		put_list(s, &r->u.list);
		break;
	case CODEC_LIST:
		sb_printf(s, "* %s ", r->u.list_.is_lsub ? "LSUB" : "LIST");
		put_list(s, &r->u.list_.flags);
		if (r->u.list_.delimiter)
			sb_printf(s, " '%c' ", r->u.list_.delimiter);
		else
			sb_add(s, " NIL ", 5);
		put_str(s, &r->u.list_.mailbox);
		break;
	case CODEC_STATUS:
		sb_add(s, "* STATUS ", 9);
		put_str(s, &r->u.status.mailbox);
		sb_add(s, " (", 2);
		for (i = 0; i < r->u.status.n_items; i++)
			sb_printf(s, "%s%s %" PRIu64, i ? " " : "",
				  r->u.status.items[i].name.ptr,
				  r->u.status.items[i].value);
		sb_add(s, ")", 1);
		break;
	case CODEC_SEARCH:
		sb_add(s, "* SEARCH", 8);
		for (i = 0; i < r->u.search.n; i++)
			sb_printf(s, " %" PRIu32, r->u.search.v[i]);
		if (r->u.search.modseq)
			sb_printf(s, " modseq=%" PRIu64, r->u.search.modseq);
		break;
	case CODEC_ESEARCH:
		sb_add(s, "* ESEARCH tag=", 14);
		put_str(s, &r->u.esearch.tag);
		if (r->u.esearch.uid)
			sb_add(s, " uid", 4);
		if (r->u.esearch.min >= 0)
			sb_printf(s, " min=%" PRId64, r->u.esearch.min);
		if (r->u.esearch.max >= 0)
			sb_printf(s, " max=%" PRId64, r->u.esearch.max);
		if (r->u.esearch.count >= 0)
			sb_printf(s, " count=%" PRId64, r->u.esearch.count);
		if (r->u.esearch.all.n) {
			sb_add(s, " all=", 5);
			put_seqset(s, &r->u.esearch.all);
		}
		if (r->u.esearch.modseq)
			sb_printf(s, " modseq=%" PRIu64, r->u.esearch.modseq);
		break;
	case CODEC_EXISTS:
	case CODEC_RECENT:
	case CODEC_EXPUNGE:
		sb_printf(s, "* %" PRIu64 " %s", r->u.number,
			  codec_kind_name(r->kind));
		break;
	case CODEC_VANISHED:
		sb_printf(s, "* VANISHED%s ",
			  r->u.vanished.earlier ? " (EARLIER)" : "");
		put_seqset(s, &r->u.vanished.uids);
		break;
	case CODEC_FETCH:
		put_fetch(s, &r->u.fetch);
		break;
	case CODEC_OTHER:
		sb_add(s, "* ", 2);
		if (r->u.other.number >= 0)
			sb_printf(s, "%" PRId64 " ", r->u.other.number);
		sb_printf(s, "%s (other) rest=", r->u.other.keyword.ptr);
		put_str(s, &r->u.other.rest);
		break;
	}
	sb_add(s, "\n", 1);
}

/* ---- feeding ---- */

/* xorshift64*, for reproducible split points. */
static uint64_t
rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ull;
}

static const char *const error_names[] = {
	[CODEC_E_NONE] = "none",
	[CODEC_E_LINE_TOO_LONG] = "line-too-long",
	[CODEC_E_LITERAL_TOO_BIG] = "literal-too-big",
	[CODEC_E_RESPONSE_TOO_BIG] = "response-too-big",
	[CODEC_E_TOO_DEEP] = "too-deep",
	[CODEC_E_LIST_TOO_LONG] = "list-too-long",
	[CODEC_E_SYNTAX] = "syntax",
};

/* Feeds data in chunks: all at once (chunk 0), in chunks of `chunk` bytes,
 * or at random sizes up to 64 (and now and then a large one) from seed.
 * Renders every response, an error line, and a trailing partial
 * response into out. Returns the number of responses. */
static size_t
feed(struct codec *c, const char *data, size_t len, size_t chunk,
     uint64_t seed, struct sb *out)
{
	size_t pos = 0, used, n_resp = 0;
	uint64_t st = seed;

	while (pos < len) {
		size_t n = len - pos;
		const struct codec_response *r;
		int rc;

		if (seed) {
			uint64_t x = rnd(&st);
			size_t want = x % 16 == 0 ? 1 + (x >> 8) % 4096
						  : 1 + (x >> 8) % 64;
			if (n > want)
				n = want;
		} else if (chunk && n > chunk) {
			n = chunk;
		}
		/* Offer the same chunk until the codec has taken it. */
		while (n > 0) {
			rc = codec_parse(c, data + pos, n, &used, &r);
			if (rc < 0) {
				sb_printf(out, "ERROR %s: %s\n",
					  error_names[-rc], codec_errmsg(c));
				return n_resp;
			}
			if (used > n) {
				sb_printf(out, "BUG consumed %zu of %zu\n",
					  used, n);
				return n_resp;
			}
			pos += used;
			n -= used;
			if (rc == 1) {
				render(out, r);
				n_resp++;
			} else if (n != 0) {
				sb_printf(out, "BUG returned 0 with %zu left\n",
					  n);
				return n_resp;
			}
		}
	}
	if (c->len > 0 || c->literal_left > 0)
		if (!c->done)
			sb_printf(out, "PARTIAL %zu bytes\n", c->len);
	return n_resp;
}

static char *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 > cap) {
			cap = (len + 4096) * 2;
			p = xrealloc(p, cap + 1);
		}
		n = fread(p + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	p[len] = '\0';
	*len_r = len;
	return p;
}

/* Parses a string with the default limits into a rendering. */
static char *
parse_all(const char *data, size_t len, const struct codec_limits *lim)
{
	struct codec c;
	struct sb out = {0};

	codec_init(&c, lim);
	feed(&c, data, len, 0, 0, &out);
	codec_finish(&c);
	if (!out.p)
		return xstrdup("");
	return out.p;
}

#define PARSE(s) parse_all((s), sizeof(s) - 1, NULL)

/* Parses one response and hands it to the caller to inspect; the codec
 * stays alive until done_one(). */
static struct codec one_c;
static const struct codec_response *
one(const char *s)
{
	const struct codec_response *r = NULL;
	size_t used;
	int rc;

	codec_init(&one_c, NULL);
	rc = codec_parse(&one_c, s, strlen(s), &used, &r);
	if (rc != 1) {
		printf("# one(): rc %d: %s\n", rc, codec_errmsg(&one_c));
		return NULL;
	}
	return r;
}

static void
done_one(void)
{
	codec_finish(&one_c);
}

/* ---- transcripts ---- */

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_transcript(const char *name)
{
	char path[512], *data, *expect;
	size_t len, elen;
	struct sb whole = {0};
	struct codec c;
	size_t n, k;

	snprintf(path, sizeof path, "%s/%s.imap", TRANSCRIPTS, name);
	data = read_file(path, &len);
	ok(data != NULL, "%s: read", path);
	if (!data)
		return;
	codec_init(&c, NULL);
	n = feed(&c, data, len, 0, 0, &whole);
	codec_finish(&c);
	ok(n > 0, "%s: %zu responses", name, n);

	snprintf(path, sizeof path, "%s/%s.expect", TRANSCRIPTS, name);
	if (getenv("CODEC_WRITE_EXPECT")) {
		FILE *f = fopen(path, "wb");
		if (f) {
			fputs(sb_str(&whole), f);
			fclose(f);
		}
	}
	expect = read_file(path, &elen);
	ok(expect != NULL, "%s: has an expect file", name);
	is_str(sb_str(&whole), expect ? expect : "",
	       "%s: whole feed renders as %s", name, path);

	/* One byte at a time, small fixed chunks, random split points. */
	for (k = 0; k < 10; k++) {
		struct sb out = {0};
		size_t chunk = k == 0 ? 1 : k == 1 ? 2 : k == 2 ? 7 : 0;
		uint64_t seed = chunk ? 0 : 0x9e3779b97f4a7c15ull * k;

		codec_init(&c, NULL);
		feed(&c, data, len, chunk, seed, &out);
		codec_finish(&c);
		ok(!strcmp(sb_str(&out), sb_str(&whole)),
		   "%s: %s %zu renders the same", name,
		   chunk ? "chunks of" : "random splits, seed", chunk ? chunk : k);
		free(out.p);
	}
	free(whole.p);
	free(expect);
	free(data);
}

static void
test_transcripts(void)
{
	DIR *d = opendir(TRANSCRIPTS);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, i;

	ok(d != NULL, "open %s (run from the top of the tree)", TRANSCRIPTS);
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 5 && !strcmp(de->d_name + l - 5, ".imap")) {
			names = xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = xstrndup(de->d_name, l - 5);
		}
	}
	closedir(d);
	ok(n >= 5, "found %zu transcripts", n);
	qsort(names, n, sizeof *names, cmp_name);
	for (i = 0; i < n; i++) {
		test_transcript(names[i]);
		free(names[i]);
	}
	free(names);
}

int
main(void)
{
	test_transcripts();
	return tap_done();
}
