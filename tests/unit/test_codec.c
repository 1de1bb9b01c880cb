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
#include <time.h>

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
	case CODEC_SKIPPED:
		sb_printf(s, "SKIPPED tag=%s %" PRId64 " %s: %s", r->tag.ptr,
			  r->u.skipped.number, r->u.skipped.keyword.ptr,
			  r->text.ptr);
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
feed(struct codec *c, const char *data, size_t len, size_t chunk, uint64_t seed,
     struct sb *out)
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

/* Parses one response and hands it to the caller to inspect; the codec
 * stays alive until done_one(). */
static struct codec one_c;
static const struct codec_response *
one_n(const char *s, size_t len)
{
	const struct codec_response *r = NULL;
	size_t used;
	int rc;

	codec_init(&one_c, NULL);
	rc = codec_parse(&one_c, s, len, &used, &r);
	if (rc != 1 || used != len) {
		printf("# one(): rc %d: %s\n", rc, codec_errmsg(&one_c));
		return NULL;
	}
	return r;
}

#define one(s) one_n((s), sizeof(s) - 1)

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
		   chunk ? "chunks of" : "random splits, seed",
		   chunk ? chunk : k);
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

/* ---- parsed values, asserted directly ---- */

static bool
str_is(const struct codec_str *s, const char *want)
{
	return !s->nil && s->ptr && s->len == strlen(want) &&
	       !memcmp(s->ptr, want, s->len);
}

static void
test_values(void)
{
	const struct codec_response *r;
	const struct codec_fetch *f;

	r = one("* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ AUTH=PLAIN] hi\r\n");
	ok(r && r->kind == CODEC_UNTAGGED_STATUS &&
	       r->status == CODEC_STATUS_OK &&
	       r->code.kind == CODEC_CODE_CAPABILITY,
	   "greeting with CAPABILITY code");
	ok(r && codec_strlist_has(&r->code.u.list, "idle") &&
	       codec_strlist_has(&r->code.u.list, "LITERAL+") &&
	       !codec_strlist_has(&r->code.u.list, "STARTTLS"),
	   "codec_strlist_has is case-insensitive and exact");
	ok(r && str_is(&r->text, "hi") && str_is(&r->tag, ""),
	   "greeting text, empty tag");
	done_one();

	r = one("* PREAUTH IMAP4rev1 server logged in as Smith\r\n");
	ok(r && r->status == CODEC_STATUS_PREAUTH &&
	       r->code.kind == CODEC_CODE_NONE,
	   "PREAUTH greeting");
	done_one();

	r = one("* BYE\r\n");
	ok(r && r->status == CODEC_STATUS_BYE && r->text.ptr &&
	       r->text.len == 0,
	   "BYE without text has text \"\"");
	done_one();

	r = one("* OK The Microsoft Exchange IMAP4 service is ready. "
		"[TQBOADIAUABSADAANgBDAEEA]\r\n");
	ok(r && r->code.kind == CODEC_CODE_NONE &&
	       !strncmp(r->text.ptr, "The Microsoft", 13) &&
	       r->text.ptr[r->text.len - 1] == ']',
	   "Exchange greeting: brackets after text are text");
	done_one();

	r = one("a3 OK [UIDNEXT 4392] Predicted next UID\r\n");
	ok(r && r->kind == CODEC_TAGGED && str_is(&r->tag, "a3") &&
	       r->code.kind == CODEC_CODE_UIDNEXT && r->code.u.number == 4392 &&
	       str_is(&r->code.name, "UIDNEXT"),
	   "tagged OK with UIDNEXT");
	done_one();

	r = one("* OK [UIDVALIDITY 4294967295] UIDs valid\r\n");
	ok(r && r->code.kind == CODEC_CODE_UIDVALIDITY &&
	       r->code.u.number == UINT32_MAX,
	   "UIDVALIDITY 2^32-1");
	done_one();

	r = one("a9 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n");
	ok(r && r->code.kind == CODEC_CODE_COPYUID &&
	       r->code.u.uidplus.uidvalidity == 38505 &&
	       r->code.u.uidplus.src.n == 2 &&
	       r->code.u.uidplus.src.v[1].lo == 319 &&
	       r->code.u.uidplus.src.v[1].hi == 320 &&
	       r->code.u.uidplus.dst.n == 1 &&
	       r->code.u.uidplus.dst.v[0].hi == 3958,
	   "COPYUID");
	done_one();

	r = one("* OK [PERMANENTFLAGS (\\Seen \\Deleted \\*)] Limited\r\n");
	ok(r && r->code.kind == CODEC_CODE_PERMANENTFLAGS &&
	       r->code.u.list.n == 3 && str_is(&r->code.u.list.v[2], "\\*"),
	   "PERMANENTFLAGS with \\*");
	done_one();

	r = one("* 3 FETCH (UID 5 FLAGS (\\Seen))\r\n");
	f = r ? &r->u.fetch : NULL;
	ok(f && r->kind == CODEC_FETCH && f->seq == 3 && f->uid == 5 &&
	       f->have == (CODEC_FETCH_UID | CODEC_FETCH_FLAGS) &&
	       codec_strlist_has(&f->flags, "\\seen"),
	   "simple FETCH");
	done_one();

	r = one("* 12 FETCH (FLAGS () INTERNALDATE \"17-Jul-1996 02:44:25 "
		"-0700\" RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 "
		"02:23:25 -0700 (PDT)\" {20}\r\nIMAP4rev1 WG mtg \"x\" "
		"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) NIL "
		"NIL ((NIL NIL \"imap\" \"cac.washington.edu\")) ((NIL NIL "
		"\"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL "
		"\"KLENSIN\" \"MIT.EDU\")) NIL NIL "
		"\"<B27397-0100000@cac.washington.edu>\") "
		"BODY[HEADER.FIELDS (FROM)]<0> {6}\r\nab\0\r\n\xff X-GM-LABELS "
		"(\\Inbox \"a b\") UID 99 MODSEQ (12345678901))\r\n");
	f = r ? &r->u.fetch : NULL;
	ok(f && f->seq == 12 && f->uid == 99 && f->size == 4286 &&
	       f->modseq == 12345678901ull && f->n_skipped == 1,
	   "FETCH numbers");
	ok(f && str_is(&f->envelope.subject, "IMAP4rev1 WG mtg \"x\""),
	   "ENVELOPE subject from a literal");
	ok(f && f->envelope.from.n == 1 &&
	       str_is(&f->envelope.from.v[0].name, "Terry Gray") &&
	       f->envelope.from.v[0].adl.nil &&
	       str_is(&f->envelope.from.v[0].mailbox, "gray") &&
	       str_is(&f->envelope.from.v[0].host, "cac.washington.edu"),
	   "ENVELOPE from address");
	ok(f && f->envelope.sender.n == 0 && f->envelope.cc.n == 2 &&
	       str_is(&f->envelope.cc.v[1].mailbox, "KLENSIN") &&
	       f->envelope.in_reply_to.nil &&
	       str_is(&f->envelope.message_id,
		      "<B27397-0100000@cac.washington.edu>"),
	   "ENVELOPE NIL lists, cc, message-id");
	ok(f && f->n_sections == 1 && !f->sections[0].binary &&
	       str_is(&f->sections[0].spec, "HEADER.FIELDS (FROM)") &&
	       f->sections[0].origin == 0 && f->sections[0].data.len == 6 &&
	       !memcmp(f->sections[0].data.ptr, "ab\0\r\n\xff", 6),
	   "BODY[...]<0> payload with NUL and 8-bit bytes");
	done_one();

	r = one("a1\tOK {5}\r\n");
	ok(r && r->kind == CODEC_TAGGED && str_is(&r->text, "{5}"),
	   "a status line ending in {5} is text, not a literal");
	done_one();

	r = one("+\r\n");
	ok(r && r->kind == CODEC_CONTINUATION && r->text.len == 0,
	   "bare continuation");
	done_one();

	r = one("* 5 XYZZY foo\r\n");
	ok(r && r->kind == CODEC_OTHER && r->u.other.number == 5 &&
	       str_is(&r->u.other.keyword, "XYZZY") &&
	       str_is(&r->u.other.rest, "foo"),
	   "unknown numbered response");
	done_one();

	r = one("* id (\"name\" NIL)\r\n");
	ok(r && r->kind == CODEC_OTHER && r->u.other.number == -1 &&
	       str_is(&r->u.other.keyword, "ID") &&
	       str_is(&r->u.other.rest, "(\"name\" NIL)"),
	   "ID as CODEC_OTHER, keyword upper-cased");
	done_one();

	r = one("* LIST (\\HasNoChildren) NIL {5}\r\nA\"b\\c\r\n");
	ok(r && r->kind == CODEC_LIST && r->u.list_.delimiter == 0 &&
	       str_is(&r->u.list_.mailbox, "A\"b\\c"),
	   "LIST with NIL delimiter and literal name");
	done_one();

	/* RFC 6154 attributes, NOTIFY's MailboxName pushes (Dovecot 2.3):
	 * a deleted mailbox, a renamed one with its OLDNAME. */
	r = one("* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n");
	ok(r && r->kind == CODEC_LIST && r->u.list_.delimiter == '/' &&
	       r->u.list_.flags.n == 2 &&
	       codec_strlist_has(&r->u.list_.flags, "\\Trash") &&
	       str_is(&r->u.list_.mailbox, "Trash"),
	   "LIST with a special-use attribute");
	done_one();
	r = one("* LIST (\\NonExistent) \"/\" A\r\n");
	ok(r && r->kind == CODEC_LIST &&
	       codec_strlist_has(&r->u.list_.flags, "\\NonExistent") &&
	       str_is(&r->u.list_.mailbox, "A"),
	   "LIST of a deleted mailbox");
	done_one();
	r = one("* LIST () \"/\" B2 (\"OLDNAME\" (B))\r\n");
	ok(r && r->kind == CODEC_LIST && r->u.list_.flags.n == 0 &&
	       str_is(&r->u.list_.mailbox, "B2"),
	   "LIST of a renamed mailbox, its OLDNAME skipped");
	done_one();
	r = one("* LIST (\\Subscribed) \".\" \"Lists.dev\" (\"CHILDINFO\" "
		"(\"SUBSCRIBED\")) (\"X-EXT\" {3}\r\nabc)\r\n");
	ok(r && r->kind == CODEC_LIST && r->u.list_.delimiter == '.' &&
	       str_is(&r->u.list_.mailbox, "Lists.dev"),
	   "LIST-EXTENDED data skipped, a literal in it too");
	done_one();

	r = one("* STATUS \"Sent Items\" (MESSAGES 2 UIDNEXT 9 "
		"HIGHESTMODSEQ 18446744073709551615)\r\n");
	ok(r && r->kind == CODEC_STATUS && r->u.status.n_items == 3 &&
	       str_is(&r->u.status.mailbox, "Sent Items") &&
	       str_is(&r->u.status.items[1].name, "UIDNEXT") &&
	       r->u.status.items[1].value == 9 &&
	       r->u.status.items[2].value == UINT64_MAX,
	   "STATUS items");
	done_one();

	r = one("* VANISHED (EARLIER) 300:310,405,*\r\n");
	ok(r && r->kind == CODEC_VANISHED && r->u.vanished.earlier &&
	       r->u.vanished.uids.n == 3 &&
	       r->u.vanished.uids.v[2].lo == UINT32_MAX,
	   "VANISHED (EARLIER)");
	done_one();

	r = one("* SEARCH 2 84 882 (MODSEQ 917162500)\r\n");
	ok(r && r->kind == CODEC_SEARCH && r->u.search.n == 3 &&
	       r->u.search.v[2] == 882 && r->u.search.modseq == 917162500,
	   "SEARCH with MODSEQ");
	done_one();
}

/* ---- errors and limits ---- */

/* Feeds s whole; returns the codec_parse result of the last call. */
static int
feed_err(struct codec *c, const char *s, size_t len, size_t *consumed_r)
{
	const struct codec_response *r;
	size_t used, pos = 0;
	int rc = 0;

	while (pos < len) {
		rc = codec_parse(c, s + pos, len - pos, &used, &r);
		pos += used;
		if (rc <= 0)
			break;
	}
	if (consumed_r)
		*consumed_r = pos;
	return rc;
}

static void
expect_error(const char *what, const struct codec_limits *lim, const char *s,
	     size_t len, enum codec_error want)
{
	struct codec c;
	int rc;

	codec_init(&c, lim);
	rc = feed_err(&c, s, len, NULL);
	is_int(rc < 0 ? rc : 0, -(int)want, "%s: error %d (%s)", what,
	       (int)want, codec_errmsg(&c));
	codec_finish(&c);
}

#define EXPECT_ERROR(what, lim, s, want)                                       \
	expect_error(what, lim, s, sizeof(s) - 1, want)

/* Feeds s followed by "* 7 EXISTS" whole, a byte at a time, in chunks of
 * 7 and at random sizes: each must render want (when not NULL; else the
 * same as the first way) and then the EXISTS. */
static void
expect_skip(const char *what, const struct codec_limits *lim, const char *s,
	    size_t len, const char *want)
{
	static const char next[] = "* 7 EXISTS\r\n";
	char *in = xmalloc(len + sizeof(next));
	char *first = NULL;
	bool good = true;

	memcpy(in, s, len);
	memcpy(in + len, next, sizeof(next));
	for (int way = 0; way < 6 && good; way++) {
		static const size_t chunks[] = {0, 1, 7, 0, 0, 0};
		struct codec c;
		struct sb out = {0};
		char *w;

		codec_init(&c, lim);
		feed(&c, in, len + sizeof(next) - 1, chunks[way],
		     way >= 3 ? (uint64_t)way * 7919 : 0, &out);
		if (!first)
			first = xstrdup(out.p ? out.p : "");
		w = want ? xasprintf("%s* 7 EXISTS\n", want) : xstrdup(first);
		good = out.p && !strcmp(out.p, w) && !strncmp(w, "SKIPPED", 7);
		if (!good)
			printf("#   way %d got\n%s#   want\n%s", way,
			       out.p ? out.p : "", w);
		free(w);
		free(out.p);
		codec_finish(&c);
	}
	ok(good, "%s: skipped, in step after it", what);
	free(first);
	free(in);
}

#define EXPECT_SKIP(what, lim, s, want)                                        \
	expect_skip(what, lim, s, sizeof(s) - 1, want)

static void
test_errors(void)
{
	struct codec_limits small = {
	    .max_line = 64,
	    .max_literal = 100,
	    .max_response = 300,
	    .max_depth = 4,
	    .max_list = 5,
	};
	const struct codec_response *r;
	struct codec c;
	size_t used, i;
	int rc;
	char *big;

	/* Each limit: the response is skipped whole (reported with what
	 * its first bytes say) and the next one parses. */
	EXPECT_SKIP("line limit", &small,
		    "* OK 0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789\r\n",
		    "SKIPPED tag= -1 OK: line longer than 64 bytes\n");
	EXPECT_ERROR("line of exactly max_line is fine", &small,
		     "* OK 012345678901234567890123456789012345678901234"
		     "56789012345678\r\n",
		     CODEC_E_NONE);
	EXPECT_SKIP("literal limit", &small,
		    "* 1 FETCH (BODY[] {101}\r\n"
		    "01234567890123456789012345678901234567890123456789"
		    "01234567890123456789012345678901234567890123456789"
		    "0)\r\n",
		    "SKIPPED tag= 1 FETCH: literal of 101 bytes exceeds the "
		    "limit of 100 bytes\n");
	EXPECT_SKIP("a line over the limit after a literal", &small,
		    "* 2 FETCH (BODY[] {3}\r\nabc ENVELOPE "
		    "(0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789))\r\n",
		    "SKIPPED tag= 2 FETCH: line longer than 64 bytes\n");
	EXPECT_SKIP("literals after the limit are skipped as literals",
		    &small,
		    "* 3 FETCH (X {200}\r\n"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789"
		    "01234567890123456789012345\r\n* 9 EXISTS\r\n"
		    " Y {5}\r\n\r\n\r\n\r)\r\n",
		    "SKIPPED tag= 3 FETCH: literal of 200 bytes exceeds the "
		    "limit of 100 bytes\n");
	EXPECT_SKIP(
	    "response limit", &small,
	    "* 1 FETCH (BODY[1] {100}\r\n"
	    "0123456789012345678901234567890123456789012345678901234567"
	    "890123456789012345678901234567890123456789"
	    " BODY[2] {100}\r\n"
	    "0123456789012345678901234567890123456789012345678901234567"
	    "890123456789012345678901234567890123456789"
	    " BODY[3] {100}\r\n"
	    "0123456789012345678901234567890123456789012345678901234567"
	    "890123456789012345678901234567890123456789)\r\n",
	    "SKIPPED tag= 1 FETCH: response longer than 300 bytes\n");
	EXPECT_SKIP("a tagged status over the limit", &small,
		    "a7 OK 0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789 {5}\r\n",
		    "SKIPPED tag=a7 -1 OK: line longer than 64 bytes\n");
	EXPECT_SKIP("depth limit", &small, "* 1 FETCH (X-FOO ((((a)))))\r\n",
		    "SKIPPED tag= 1 FETCH: lists nested deeper than 4\n");
	EXPECT_SKIP("depth limit in BODYSTRUCTURE", &small,
		    "* 1 FETCH (BODYSTRUCTURE ((((\"text\")))))\r\n",
		    "SKIPPED tag= 1 FETCH: lists nested deeper than 4\n");
	EXPECT_ERROR("depth just inside the limit", &small,
		     "* 1 FETCH (X-FOO (((a))))\r\n", CODEC_E_NONE);
	EXPECT_SKIP("list limit, SEARCH", &small, "* SEARCH 1 2 3 4 5 6\r\n",
		    "SKIPPED tag= -1 SEARCH: list longer than 5 items\n");
	EXPECT_SKIP("list limit, CAPABILITY", &small,
		    "* CAPABILITY A B C D E F\r\n",
		    "SKIPPED tag= -1 CAPABILITY: list longer than 5 items\n");
	EXPECT_SKIP("list limit, FLAGS", &small,
		    "* FLAGS (\\A \\B \\C \\D \\E \\F)\r\n",
		    "SKIPPED tag= -1 FLAGS: list longer than 5 items\n");
	EXPECT_SKIP("list limit, sequence set", &small,
		    "* VANISHED 1,3,5,7,9,11\r\n",
		    "SKIPPED tag= -1 VANISHED: list longer than 5 items\n");
	EXPECT_SKIP("list limit, skipped value", &small,
		    "* 1 FETCH (X-GM-LABELS (a b c d e f))\r\n",
		    "SKIPPED tag= 1 FETCH: list longer than 5 items\n");
	EXPECT_ERROR("list of max_list items is fine", &small,
		     "* SEARCH 1 2 3 4 5\r\n", CODEC_E_NONE);

	/* Many tiny items would cost far more memory than their bytes:
	 * the arena is capped at 8 times max_response. */
	{
		struct codec_limits lim = {.max_line = 1 << 22,
					   .max_list = 1000000};
		struct sb s = {0};

		sb_add(&s, "* 1 FETCH (", 11);
		for (i = 0; i < 2000; i++) {
			size_t j;
			sb_add(&s, "FLAGS (", 7);
			for (j = 0; j < 400; j++)
				sb_add(&s, "a ", 2);
			sb_add(&s, ") ", 2);
		}
		sb_add(&s, ")\r\n", 3);
		expect_skip("arena cap", &lim, s.p, s.len,
			    "SKIPPED tag= 1 FETCH: response needs more than "
			    "16842752 bytes of memory\n");
		free(s.p);
	}

	/* Bad numbers. */
	EXPECT_ERROR("seq > 2^32-1", NULL, "* 4294967296 EXISTS\r\n",
		     CODEC_E_SYNTAX);
	EXPECT_ERROR("UID > 2^32-1", NULL, "* 1 FETCH (UID 4294967296)\r\n",
		     CODEC_E_SYNTAX);
	EXPECT_ERROR("UIDNEXT > 2^32-1", NULL,
		     "* OK [UIDNEXT 99999999999] x\r\n", CODEC_E_SYNTAX);
	EXPECT_ERROR("MODSEQ > 2^64-1", NULL,
		     "* 1 FETCH (MODSEQ (18446744073709551616))\r\n",
		     CODEC_E_SYNTAX);
	EXPECT_ERROR("negative UID", NULL, "* 1 FETCH (UID -1)\r\n",
		     CODEC_E_SYNTAX);
	EXPECT_ERROR("number with junk", NULL, "* 12a EXISTS\r\n",
		     CODEC_E_SYNTAX);
	EXPECT_ERROR("SEARCH with a word", NULL, "* SEARCH 1 two\r\n",
		     CODEC_E_SYNTAX);

	/* Bad syntax. */
	EXPECT_ERROR("binary garbage", NULL, "\x01\x02\xff\xfe\x80 \x00\n",
		     CODEC_E_SYNTAX);
	EXPECT_ERROR("unterminated FETCH", NULL, "* 1 FETCH (UID 5\r\n",
		     CODEC_E_SYNTAX);
	EXPECT_ERROR("unterminated quoted string", NULL,
		     "* LIST () \"/\" \"INBOX\r\n", CODEC_E_SYNTAX);
	EXPECT_ERROR("literal in mid-line", NULL,
		     "* 1 FETCH (BODY[] {3}abc)\r\n", CODEC_E_SYNTAX);
	EXPECT_ERROR("tagged data", NULL, "a1 FETCH 1\r\n", CODEC_E_SYNTAX);
	EXPECT_ERROR("short ENVELOPE", NULL,
		     "* 1 FETCH (ENVELOPE (NIL NIL))\r\n", CODEC_E_SYNTAX);
	EXPECT_ERROR("junk after a response", NULL, "* 3 EXISTS now\r\n",
		     CODEC_E_SYNTAX);

	/* A 4 GiB literal is too big even to skip (max_skip): an error at
	 * its header, even when the header comes in pieces, with nothing
	 * kept of it. */
	codec_init(&c, NULL);
	rc = codec_parse(&c, "* 1 FETCH (BODY[] {42949", 24, &used, &r);
	is_int(rc, 0, "4 GiB literal: first half of the header");
	rc = codec_parse(&c, "67296}\r\nxxxx", 12, &used, &r);
	is_int(rc, -CODEC_E_RESPONSE_TOO_BIG, "4 GiB literal: fails at {n}");
	is_int(used, 8, "4 GiB literal: consumed up to the header's LF");
	ok(c.cap <= 4096, "4 GiB literal: nothing allocated for it (%zu)",
	   c.cap);
	ok(strstr(codec_errmsg(&c), "4294967296") != NULL,
	   "4 GiB literal: the message names the size: %s", codec_errmsg(&c));
	codec_finish(&c);
	EXPECT_ERROR("literal size overflowing 64 bits", NULL,
		     "* 1 FETCH (BODY[] {99999999999999999999999}\r\n",
		     CODEC_E_RESPONSE_TOO_BIG);
	{
		struct codec_limits lim = {.max_line = 64, .max_skip = 300};

		EXPECT_ERROR("a literal past max_skip after a long line", &lim,
			     "* 1 FETCH (X 01234567890123456789012345678901"
			     "234567890123456789012345678901234567890123 "
			     "{250}\r\n",
			     CODEC_E_RESPONSE_TOO_BIG);
		EXPECT_ERROR("lines past max_skip", &lim,
			     "* OK 0123456789012345678901234567890123456789"
			     "0123456789012345678901234567890123456789"
			     "0123456789012345678901234567890123456789"
			     "0123456789012345678901234567890123456789"
			     "0123456789012345678901234567890123456789"
			     "0123456789012345678901234567890123456789"
			     "0123456789012345678901234567890123456789"
			     "0123456789012345678901234567890123456789\r\n",
			     CODEC_E_RESPONSE_TOO_BIG);
	}

	/* A line of 4 MiB (below max_skip) is skipped with bounded memory,
	 * and what follows its end parses. */
	codec_init(&c, NULL);
	big = xmalloc(4096);
	memset(big, 'x', 4096);
	memcpy(big, "* OK ", 5);
	for (i = 0, rc = 0; i < 1024 && rc == 0; i++)
		rc = codec_parse(&c, big, 4096, &used, &r);
	ok(rc == 0 && c.skipping, "endless line: skipped, 4 MiB of it");
	ok(c.cap <= 2 * 65536 + 1, "endless line: buffer bounded (%zu)", c.cap);
	rc = codec_parse(&c, "\r\n* 1 EXISTS\r\n", 14, &used, &r);
	ok(rc == 1 && used == 2 && r->kind == CODEC_SKIPPED,
	   "endless line: reported once it ends");
	rc = codec_parse(&c, "* 1 EXISTS\r\n", 12, &used, &r);
	ok(rc == 1 && used == 12 && r->kind == CODEC_EXISTS && r->u.number == 1,
	   "endless line: the next response parses");
	codec_finish(&c);
	free(big);

	/* Syntax errors stick too. */
	codec_init(&c, NULL);
	rc = codec_parse(&c, "* 1 FETCH (\r\n* 2 EXISTS\r\n", 25, &used, &r);
	ok(rc == -CODEC_E_SYNTAX && used == 13,
	   "syntax error consumes its response only");
	ok(!strncmp(codec_errmsg(&c), "syntax error", 12), "message: %s",
	   codec_errmsg(&c));
	rc = codec_parse(&c, "* 2 EXISTS\r\n", 12, &used, &r);
	ok(rc == -CODEC_E_SYNTAX && used == 0, "syntax error sticks");
	codec_reset(&c);
	rc = codec_parse(&c, "* 2 EXISTS\r\n", 12, &used, &r);
	ok(rc == 1 && r->u.number == 2, "and clears with codec_reset");
	codec_finish(&c);

	/* Responses one at a time: the rest is left to the next call. */
	codec_init(&c, NULL);
	rc = codec_parse(&c, "* 1 EXISTS\r\n* 2 EXISTS\r\n* 3 EX", 31, &used,
			 &r);
	ok(rc == 1 && used == 12 && r->u.number == 1, "first of three");
	rc = codec_parse(&c, "* 2 EXISTS\r\n* 3 EX", 19, &used, &r);
	ok(rc == 1 && used == 12 && r->u.number == 2, "second of three");
	rc = codec_parse(&c, "* 3 EX", 6, &used, &r);
	ok(rc == 0 && used == 6 && r == NULL, "partial third needs more");
	rc = codec_parse(&c, "ISTS\r\n", 6, &used, &r);
	ok(rc == 1 && used == 6 && r->u.number == 3, "third completes");
	codec_finish(&c);
}

/* ---- encoder ---- */

static void
test_encoder(void)
{
	struct codec_buf b;
	const char *kv[] = {"name", "mailwatch", "version", NULL};
	struct codec_range set[] = {{4392, UINT32_MAX}, {5, 5}, {7, 9}};
	const char *names[] = {
	    "INBOX",	   "",		 "NIL",
	    "Sent Items",  "a]b",	 "100%",
	    "back\\slash", "\"quoted\"", "line\r\nbreak",
	    "caf\xc3\xa9", "{5}",
	};
	size_t i;

	codec_buf_init(&b);
	codec_enc_simple(&b, "a1", "CAPABILITY");
	codec_enc_done(&b);
	is_str(b.data, "a1 CAPABILITY\r\nDONE\r\n", "simple command, DONE");
	codec_buf_clear(&b);

	codec_enc_login(&b, "a2", "joe", "p@ss w\"rd\\");
	is_str(b.data, "a2 LOGIN joe \"p@ss w\\\"rd\\\\\"\r\n",
	       "LOGIN quotes the password");
	is_int(b.n_splits, 0, "no literal, no split");
	codec_buf_clear(&b);

	codec_enc_login(&b, "a3", "jo\xc3\xab", "p\xc3\xa4ss");
	is_str(b.data, "a3 LOGIN {4}\r\njo\xc3\xab {5}\r\np\xc3\xa4ss\r\n",
	       "LOGIN with 8-bit: sync literals");
	ok(b.n_splits == 2 && b.splits[0] == 14 && b.splits[1] == 24,
	   "splits after each {n}\\r\\n (%u: %zu %zu)", b.n_splits, b.splits[0],
	   b.splits[1]);
	codec_buf_consume(&b, 14);
	ok(b.n_splits == 1 && b.splits[0] == 10 &&
	       !strncmp(b.data, "jo\xc3\xab {5}", 8),
	   "consume shifts the data and the splits");
	codec_buf_consume(&b, 100);
	ok(b.len == 0 && b.n_splits == 0, "consume all");

	b.literal_plus = true;
	codec_enc_login(&b, "a4", "jo\xc3\xab", "x");
	is_str(b.data, "a4 LOGIN {4+}\r\njo\xc3\xab x\r\n",
	       "LITERAL+: non-synchronising literal");
	is_int(b.n_splits, 0, "LITERAL+: no split");
	codec_buf_clear(&b);
	ok(b.literal_plus, "clear keeps literal_plus");
	{
		char *big = xmalloc(5001);
		memset(big, 'x', 5000);
		big[0] = '\n';
		big[5000] = '\0';
		codec_enc_login(&b, "a5", "u", big);
		ok(!strncmp(b.data, "a5 LOGIN u {5000}\r\n", 19) &&
		       b.n_splits == 1,
		   "literals over 4096 bytes stay synchronising");
		free(big);
	}
	codec_buf_clear(&b);
	b.literal_plus = false;

	codec_enc_authenticate_plain(&b, "a6", "tim", "tanstaaftanstaaf", true);
	is_str(b.data, "a6 AUTHENTICATE PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n",
	       "AUTHENTICATE PLAIN with SASL-IR (RFC 4616 example)");
	codec_buf_clear(&b);
	codec_enc_authenticate_plain(&b, "a6", "tim", "x", false);
	codec_enc_sasl_plain(&b, "a", "b");
	codec_enc_sasl_plain(&b, "ab", "c");
	is_str(b.data, "a6 AUTHENTICATE PLAIN\r\nAGEAYg==\r\nAGFiAGM=\r\n",
	       "AUTHENTICATE PLAIN without SASL-IR, base64 padding");
	codec_buf_clear(&b);

	codec_enc_enable(&b, "a7", "CONDSTORE QRESYNC");
	codec_enc_id(&b, "a8", kv, 2);
	codec_enc_id(&b, "a9", NULL, 0);
	is_str(b.data,
	       "a7 ENABLE CONDSTORE QRESYNC\r\n"
	       "a8 ID (\"name\" \"mailwatch\" \"version\" NIL)\r\n"
	       "a9 ID NIL\r\n",
	       "ENABLE, ID");
	codec_buf_clear(&b);

	codec_enc_examine(&b, "b1",
			  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
			  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	codec_enc_examine(&b, "b2", "Sent Items");
	codec_enc_status(&b, "b3", "INBOX", "UIDNEXT UIDVALIDITY");
	codec_enc_list(&b, "b4", "", "*");
	codec_enc_list(&b, "b5", "", "Entw\xc3\xbc%");
	is_str(b.data,
	       "b1 EXAMINE ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n"
	       "b2 EXAMINE \"Sent Items\"\r\n"
	       "b3 STATUS INBOX (UIDNEXT UIDVALIDITY)\r\n"
	       "b4 LIST \"\" \"*\"\r\n"
	       "b5 LIST \"\" \"Entw&APw-%\"\r\n",
	       "EXAMINE, STATUS, LIST with modified UTF-7");
	codec_buf_clear(&b);

	codec_enc_uid_search(&b, "c1", "UID 4392:*");
	codec_enc_uid_fetch(&b, "c2", set, 3, "(UID FLAGS ENVELOPE)");
	is_str(b.data,
	       "c1 UID SEARCH UID 4392:*\r\n"
	       "c2 UID FETCH 4392:*,5,7:9 (UID FLAGS ENVELOPE)\r\n",
	       "UID SEARCH, UID FETCH with a sequence set");
	codec_buf_clear(&b);

	/* astrings round-trip through the parser as LIST names. */
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		const struct codec_response *r;
		struct codec c;
		size_t used;
		int rc;

		codec_buf_clear(&b);
		codec_buf_addstr(&b, "* LIST () \"/\" ");
		codec_enc_astring(&b, names[i], strlen(names[i]));
		codec_buf_addstr(&b, "\r\n");
		codec_init(&c, NULL);
		rc = codec_parse(&c, b.data, b.len, &used, &r);
		ok(rc == 1 && used == b.len &&
		       str_is(&r->u.list_.mailbox, names[i]),
		   "astring round trip %zu", i);
		codec_finish(&c);
	}
	codec_buf_clear(&b);
	codec_enc_astring(&b, "NIL", 3);
	codec_enc_astring(&b, "a]b", 3);
	is_str(b.data, "\"NIL\"a]b", "NIL is quoted, ] is an astring char");
	codec_buf_finish(&b);
	ok(b.data == NULL && b.len == 0, "finish resets");
}

/* ---- modified UTF-7 ---- */

static void
mutf7_pair(const char *mutf7, const char *utf8)
{
	char *d = codec_mutf7_decode(mutf7), *e = codec_mutf7_encode(utf8);

	is_str(d, utf8, "decode %s", mutf7);
	is_str(e, mutf7, "encode to %s", mutf7);
	free(d);
	free(e);
}

/* codec_mailbox_name(): modified UTF-7, or UTF-8 as Dovecot's NOTIFY
 * sends it. */
static void
test_mailbox_name(void)
{
	static const struct {
		const char *raw, *want;
	} cases[] = {
	    {"Caf&AOk-", "Caf\xc3\xa9"}, /* modified UTF-7 */
	    {"Caf\xc3\xa9", "Caf\xc3\xa9"}, /* UTF-8 */
	    {"INBOX", "INBOX"},
	    {"&2D3eAA-", "\xf0\x9f\x98\x80"},
	    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
	    {"bad&-name&", NULL},   /* neither */
	    {"caf\xc3", NULL},      /* truncated UTF-8 */
	    {"\xc0\xaf", NULL},     /* overlong */
	    {"\xed\xa0\x80", NULL}, /* surrogate */
	    {"a\xc2\x85" "b", NULL}, /* C1 control */
	    {"\xc3\xa9\tx", NULL},  /* C0 control beside 8-bit */
	    {"\xc3\xa9\x7f", NULL}, /* DEL */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *got = codec_mailbox_name(cases[i].raw);

		if (cases[i].want)
			is_str(got, cases[i].want, "mailbox name %zu", i);
		else
			ok(!got, "mailbox name %zu refused", i);
		free(got);
	}
}

static void
test_mutf7(void)
{
	static const char *const bad_mutf7[] = {
	    "&",	   /* unterminated */
	    "&AGE",	   /* no '-' */
	    "&AOk-&AOk-",  /* two runs back to back */
	    "&AEE-",	   /* 'A' must stand for itself */
	    "&AOl-",	   /* padding bits not zero */
	    "&AOkA-",	   /* not the shortest form */
	    "&A-",	   /* no complete unit */
	    "&2D0-",	   /* lone high surrogate */
	    "&3gA-",	   /* lone low surrogate */
	    "&2D3YPQ-",	   /* high followed by high */
	    "&AAA-",	   /* U+0000 */
	    "&AO!-",	   /* not base64 */
	    "&AOk/-",	   /* '/' is ',' in modified base64 */
	    "caf\xc3\xa9", /* raw 8-bit */
	    "tab\there",   /* control character */
	};
	static const char *const bad_utf8[] = {
	    "\xc3",		/* truncated */
	    "\xc0\xaf",		/* overlong '/' */
	    "\xe0\x80\xaf",	/* overlong */
	    "\xed\xa0\x80",	/* surrogate */
	    "\xf4\x90\x80\x80", /* above U+10FFFF */
	    "\xff",
	    "ok\x80",
	};
	uint64_t st = 42;
	size_t i, j;
	char *p;

	mutf7_pair("~peter/mail/&U,BTFw-/&ZeVnLIqe-",
		   "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
		   "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	mutf7_pair("&-", "&");
	mutf7_pair("&-&-", "&&");
	mutf7_pair("Entw&APw-rfe", "Entw\xc3\xbcrfe");
	mutf7_pair("&AMk-t&AOk-", "\xc3\x89t\xc3\xa9");
	mutf7_pair("&AOk-&-", "\xc3\xa9&");
	mutf7_pair("&2D3eAA-", "\xf0\x9f\x98\x80");
	mutf7_pair("a&AAk-b", "a\tb");
	mutf7_pair("&BBIERQQ+BDQETwRJBDgENQ-",
		   "\xd0\x92\xd1\x85\xd0\xbe\xd0\xb4\xd1\x8f\xd1\x89\xd0\xb8"
		   "\xd0\xb5");
	mutf7_pair("[Gmail]/&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-",
		   "[Gmail]/\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2"
		   "\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5");
	mutf7_pair("", "");
	mutf7_pair("INBOX", "INBOX");

	for (i = 0; i < sizeof bad_mutf7 / sizeof bad_mutf7[0]; i++) {
		p = codec_mutf7_decode(bad_mutf7[i]);
		ok(p == NULL, "decode rejects \"%s\"", bad_mutf7[i]);
		free(p);
	}
	for (i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		p = codec_mutf7_encode(bad_utf8[i]);
		ok(p == NULL, "encode rejects invalid UTF-8 %zu", i);
		free(p);
	}

	/* Random strings of all kinds of characters round-trip, and the
	 * encoding is canonical: encode(decode(m)) == m. */
	for (i = 0; i < 2000; i++) {
		char utf8[200], *o = utf8, *m, *d, *m2;
		size_t n = rnd(&st) % 20;
		bool same = true;

		for (j = 0; j < n; j++) {
			uint64_t x = rnd(&st);
			uint32_t cp;

			switch (x % 4) {
			case 0:
				cp = 0x20 + (x >> 8) % 0x5f;
				break;
			case 1:
				cp = 1 + (x >> 8) % 0x7f;
				break;
			case 2:
				cp = 0x80 + (x >> 8) % 0xff80;
				break;
			default:
				cp = 0x10000 + (x >> 8) % 0x100000;
				break;
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = '&';
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
		}
		*o = '\0';
		m = codec_mutf7_encode(utf8);
		d = m ? codec_mutf7_decode(m) : NULL;
		m2 = d ? codec_mutf7_encode(d) : NULL;
		same = m && d && m2 && !strcmp(d, utf8) && !strcmp(m2, m);
		for (p = m; same && *p; p++)
			same = *p >= 0x20 && *p < 0x7f;
		if (!same || i == 1999)
			ok(same, "random round trip %zu: %s", i, m ? m : "-");
		free(m);
		free(d);
		free(m2);
		if (!same)
			break;
	}
}

/* INTERNALDATE comes from the server: every prefix of a good one, and
 * every impossible day or time, is refused without reading past len (each
 * is copied to a buffer of exactly its length, unterminated, for ASan). */
static bool
idate(const char *s, size_t len, int64_t *t)
{
	char *copy = xmalloc(len ? len : 1);
	bool r;

	memcpy(copy, s, len);
	r = codec_internaldate(copy, len, t);
	free(copy);
	return r;
}

static bool
idate_is(const char *s, int64_t want)
{
	int64_t t = 0;

	return idate(s, strlen(s), &t) && t == want;
}

static void
test_internaldate(void)
{
	static const char *const bad[] = {
		"",
		"17-Jul-1996 02:44:25",
		"17-Jly-1996 02:44:25 -0700",
		"17 Jul 1996 02:44:25 -0700",
		"17-Jul-96 02:44:25 -0700",
		"17-Jul-1996 2:44:25 -0700",
		"17-Jul-1996 02:44:25 0700",
		"17-Jul-1996 02:44:25 -07",
		"17-Jul-1996 02:44:25 -0700 ",
		"17-Jul-1996  02:44:25 -0700",
		"  7-Jul-1996 02:44:25 -0700",
		"117-Jul-1996 02:44:25 -0700",
		"00-Jan-2024 10:00:00 +0000",
		"32-Jan-2024 10:00:00 +0000",
		"31-Apr-2024 10:00:00 +0000",
		"29-Feb-2023 10:00:00 +0000",
		"29-Feb-1900 10:00:00 +0000",
		"01-Jan-2024 24:00:00 +0000",
		"01-Jan-2024 10:60:00 +0000",
		"01-Jan-2024 10:00:61 +0000",
		"01-Jan-2024 10:00:00 +2400",
		"01-Jan-2024 10:00:00 +0060",
		"01-Jan-2024 10:00:00 *0000",
		"01-Jan-2024 10:00:00 +00a0",
		"-1-Jan-2024 10:00:00 +0000",
	};
	const char *good = "17-Jul-1996 02:44:25 -0700";
	bool prefixes = true, days = true;
	int64_t t;
	char buf[64];

	ok(idate_is(good, 837596665), "RFC 3501's example");
	ok(idate_is(" 1-Jan-2024 10:00:00 +0000", 1704103200) &&
		   idate_is("01-Jan-2024 10:00:00 +0000", 1704103200) &&
		   idate_is("1-jan-2024 10:00:00 +0000", 1704103200) &&
		   idate_is("01-JAN-2024 11:30:00 +0130", 1704103200),
	   "day as \" 1\", \"01\" or \"1\"; month in any case; zones");
	ok(idate_is("29-Feb-2024 00:00:00 +0000", 1709164800) &&
		   idate_is("29-Feb-2000 00:00:00 +0000", 951782400),
	   "leap days");
	ok(idate_is("31-Dec-2016 23:59:60 +0000", 1483228800),
	   "a leap second is the next minute's first");
	ok(idate_is("01-Jan-0000 00:00:00 +0000", -62167219200) &&
		   idate_is("31-Dec-9999 23:59:59 -2359", 253402387139),
	   "the first and last years");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!idate(bad[i], strlen(bad[i]), &t), "refused: \"%s\"",
		   bad[i]);
	ok(!idate("01-Jan-2024 10:00:00 +0000", 27, &t),
	   "refused: a NUL after it");
	for (size_t n = 0; n < strlen(good); n++)
		prefixes = prefixes && !idate(good, n, &t);
	ok(prefixes, "every shorter prefix refused");
	/* Every day of 1900-2100 agrees with timegm(). */
	for (int y = 1900; y <= 2100 && days; y++) {
		static const char *const mon[] = {
			"Jan", "Feb", "Mar", "Apr", "May", "Jun",
			"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

		for (int m = 0; m < 12; m++) {
			for (int d = 1; d <= 31; d++) {
				struct tm tm = {.tm_year = y - 1900,
						.tm_mon = m,
						.tm_mday = d,
						.tm_hour = 12};
				time_t want = timegm(&tm);
				bool exists = tm.tm_mday == d;

				snprintf(buf, sizeof(buf),
					 "%02d-%s-%d 13:30:00 +0130", d,
					 mon[m], y);
				if (idate(buf, strlen(buf), &t) != exists ||
				    (exists && t != (int64_t)want)) {
					ok(0, "%s", buf);
					days = false;
				}
			}
		}
	}
	ok(days, "every day of 1900-2100 as timegm() has it, and no other");
}

int
main(void)
{
	test_values();
	test_errors();
	test_encoder();
	test_mutf7();
	test_mailbox_name();
	test_internaldate();
	test_transcripts();
	return tap_done();
}
