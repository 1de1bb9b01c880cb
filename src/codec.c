/* codec: a sans-IO IMAP4rev1 response parser and command encoder.
 *
 * Parsing happens in two stages. Framing (codec_parse) copies the bytes of
 * one response into c->buf: a line, and when that line ends in a literal
 * header "{n}", "{n+}" or "~{n}", n bytes of literal counted down in
 * c->literal_left, then the next line, and so on. Line terminators between
 * the segments are kept so the parser finds "{n}\r\n" + n bytes; the
 * terminator of the last line is dropped. Limits are checked while framing,
 * a literal's size at its header. Then a recursive-descent parser reads the
 * complete response into c->resp, copying strings and arrays into an arena
 * that is emptied at the next call.
 */
#include "codec.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define KIB 1024u

static const struct codec_limits default_limits = {
    .max_line = 64 * KIB,
    .max_literal = 1024 * KIB,
    .max_response = 2048 * KIB,
    .max_depth = 32,
    .max_list = 10000,
    .max_skip = 16384 * KIB,
};

/* The parser recurses once per list level: cap the configured depth. */
#define DEPTH_CAP 1024u

/* Buffers larger than this are freed between responses, so that one big
 * response does not pin its memory for the life of the connection. */
#define KEEP_BYTES (256 * KIB)

/* Non-synchronising literals are used up to this size, which both LITERAL+
 * and LITERAL- (RFC 7888) allow. */
#define LITERAL_MINUS_MAX 4096u

#define ALIGN _Alignof(max_align_t)

/* Parsed data may take this many times max_response (plus 64 KiB). */
#define ARENA_FACTOR 8

static const struct codec_str empty_str = {"", 0, false};
static const struct codec_str nil_str = {NULL, 0, true};

/* ---- arena ---- */

struct codec_arena_block {
	struct codec_arena_block *next;
	size_t size, used;
	max_align_t data[];
};

/* Returns n bytes aligned to align (a power of two) from the arena, valid
 * until arena_reset(). Never fails (allocation failure aborts). */
static void *
arena_alloc(struct codec *c, size_t n, size_t align)
{
	struct codec_arena_block *b = c->arena;
	size_t off, size;

	if (b) {
		off = (b->used + align - 1) & ~(align - 1);
		if (off <= b->size && n <= b->size - off) {
			b->used = off + n;
			return (unsigned char *)b->data + off;
		}
	}
	size = b ? b->size * 2 : 4096;
	if (size < n)
		size = n;
	b = xmalloc(sizeof *b + size);
	c->arena_bytes += size;
	b->next = c->arena;
	b->size = size;
	b->used = n;
	c->arena = b;
	return b->data;
}

/* Frees all blocks but the newest (the largest), unless that one is big. */
static void
arena_reset(struct codec *c)
{
	struct codec_arena_block *b = c->arena, *next;

	if (!b)
		return;
	for (next = b->next; next;) {
		struct codec_arena_block *n = next->next;
		free(next);
		next = n;
	}
	b->next = NULL;
	b->used = 0;
	c->arena_bytes = b->size;
	if (b->size > KEEP_BYTES) {
		free(b);
		c->arena = NULL;
		c->arena_bytes = 0;
	}
}

static void
arena_free(struct codec *c)
{
	while (c->arena) {
		struct codec_arena_block *n = c->arena->next;
		free(c->arena);
		c->arena = n;
	}
}

/* ---- errors ---- */

static int set_error(struct codec *c, enum codec_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts the codec in error state e. Returns -e. */
static int
set_error(struct codec *c, enum codec_error e, const char *fmt, ...)
{
	va_list ap;

	c->error = e;
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
	va_end(ap);
	return -(int)e;
}

/* ---- lifecycle ---- */

void
codec_init(struct codec *c, const struct codec_limits *lim)
{
	memset(c, 0, sizeof *c);
	c->limits = default_limits;
	if (lim) {
		if (lim->max_line)
			c->limits.max_line = lim->max_line;
		if (lim->max_literal)
			c->limits.max_literal = lim->max_literal;
		if (lim->max_response)
			c->limits.max_response = lim->max_response;
		if (lim->max_depth)
			c->limits.max_depth = lim->max_depth;
		if (lim->max_list)
			c->limits.max_list = lim->max_list;
		if (lim->max_skip)
			c->limits.max_skip = lim->max_skip;
	}
	if (c->limits.max_depth > DEPTH_CAP)
		c->limits.max_depth = DEPTH_CAP;
}

void
codec_finish(struct codec *c)
{
	free(c->buf);
	arena_free(c);
	memset(c, 0, sizeof *c);
}

/* Forgets the response in buf, keeping the buffer unless it grew big. */
static void
clear_response(struct codec *c)
{
	c->len = 0;
	c->line_start = 0;
	c->literal_left = 0;
	c->done = false;
	c->skipping = false;
	c->skip_literal = 0;
	c->skip_head_len = c->skip_tail_len = 0;
	if (c->cap > KEEP_BYTES) {
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
	arena_reset(c);
	memset(&c->resp, 0, sizeof c->resp);
}

void
codec_reset(struct codec *c)
{
	clear_response(c);
	c->error = CODEC_E_NONE;
	c->errmsg[0] = '\0';
}

const char *
codec_errmsg(const struct codec *c)
{
	if (c->error == CODEC_E_NONE)
		return "no error";
	return c->errmsg;
}

/* ---- framing ---- */

static inline bool
is_ctl(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f;
}

/* Bytes that end an atom-like token. */
static inline bool
ends_token(unsigned char ch)
{
	return ch == ' ' || ch == '(' || ch == ')' || ch == '"' || is_ctl(ch);
}

/* Makes room for need bytes plus a NUL; need <= max_response. */
static void
reserve(struct codec *c, size_t need)
{
	size_t cap;

	if (need < c->cap)
		return;
	cap = c->cap ? c->cap * 2 : 4096;
	if (cap > c->limits.max_response + 1)
		cap = c->limits.max_response + 1;
	if (cap < need + 1)
		cap = need + 1;
	c->buf = xrealloc(c->buf, cap);
	c->cap = cap;
}

static void
append(struct codec *c, const char *p, size_t n)
{
	reserve(c, c->len + n);
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->buf[c->len] = '\0';
}

/* Checks the limits before n more bytes of the current line are appended;
 * lf tells whether they end with the line's LF. Of the line and response
 * limits, reports the one crossed at the earlier byte, so the message does
 * not depend on how the input was split. Returns 0, or -1 with the message
 * in errmsg when a limit is crossed. */
static int
check_line(struct codec *c, const char *p, size_t n, bool lf)
{
	size_t seg = c->len - c->line_start + n;
	size_t content = seg, line_at, resp_at;
	bool line_over, resp_over;
	char last;

	/* The terminator, or a CR that may be the start of one, is not
	 * part of the line. */
	if (lf)
		content--;
	if (content > 0) {
		size_t i = content - 1; /* the last byte, index in segment */
		size_t have = c->len - c->line_start;

		last = i < have ? c->buf[c->line_start + i] : p[i - have];
		if (last == '\r')
			content--;
	}
	line_over = content > c->limits.max_line;
	resp_over = c->len + n > c->limits.max_response;
	if (!line_over && !resp_over)
		return 0;
	line_at = c->line_start + c->limits.max_line;
	resp_at = c->limits.max_response;
	if (line_over && (!resp_over || line_at < resp_at))
		snprintf(c->errmsg, sizeof c->errmsg,
			 "line longer than %zu bytes", c->limits.max_line);
	else
		snprintf(c->errmsg, sizeof c->errmsg,
			 "response longer than %zu bytes",
			 c->limits.max_response);
	return -1;
}

/* If [p, end) begins with a status keyword followed by the end, a space or
 * '[', returns the keyword's length and sets *st; else returns 0. */
static size_t
status_word(const char *p, const char *end, enum codec_status *st)
{
	static const struct {
		const char *w;
		size_t n;
		enum codec_status st;
	} words[] = {
	    {"OK", 2, CODEC_STATUS_OK},		  {"NO", 2, CODEC_STATUS_NO},
	    {"BAD", 3, CODEC_STATUS_BAD},	  {"BYE", 3, CODEC_STATUS_BYE},
	    {"PREAUTH", 7, CODEC_STATUS_PREAUTH},
	};
	size_t i, n;

	for (i = 0; i < sizeof words / sizeof words[0]; i++) {
		n = words[i].n;
		if ((size_t)(end - p) < n || strncasecmp(p, words[i].w, n))
			continue;
		if (p + n == end || p[n] == ' ' || p[n] == '[' ||
		    p[n] == '\t') {
			*st = words[i].st;
			return n;
		}
	}
	return 0;
}

/* True for a continuation or status response: the grammar of their text
 * (RFC 3501 resp-text) has no literals, so a trailing "{5}" is text. */
static bool
is_status_line(const char *p, const char *end)
{
	enum codec_status st;

	if (p < end && *p == '+')
		return true;
	/* The same steps as parse_response(). */
	if (p < end && *p == '*') {
		p++;
	} else {
		while (p < end && !ends_token(*p))
			p++;
	}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return status_word(p, end, &st) > 0;
}

static bool
is_blank(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return false;
	return true;
}

/* If the line [line, e) (without its CRLF) ends in a literal header
 * "{n}", "{n+}" or "~{n}", returns true and sets *n_r (saturating at
 * UINT64_MAX). */
static bool
literal_header(const char *line, const char *e, uint64_t *n_r)
{
	const char *q = e;
	uint64_t n = 0;
	int digits = 0;

	if (q == line || q[-1] != '}')
		return false;
	q--;
	if (q > line && q[-1] == '+')
		q--;
	while (q > line && q[-1] >= '0' && q[-1] <= '9') {
		q--;
		digits++;
	}
	if (digits == 0 || q == line || q[-1] != '{')
		return false;
	for (; *q >= '0' && *q <= '9'; q++)
		n = n > (UINT64_MAX - 9) / 10 ? UINT64_MAX
					      : n * 10 + (*q - '0');
	*n_r = n;
	return true;
}

static int start_skip(struct codec *c, uint64_t literal);

/* Called with a line (ending in LF) appended. Returns 1 when the response
 * is complete (its last terminator removed), 0 when more follows (a
 * literal, or a blank line was skipped; or the literal is over the limits
 * and the response is being skipped), or a negative error when the
 * literal is too big even to skip. */
static int
end_of_line(struct codec *c)
{
	const char *line = c->buf + c->line_start;
	const char *e = c->buf + c->len - 1; /* at the LF */
	uint64_t n;

	if (e > line && e[-1] == '\r')
		e--;
	if (c->line_start == 0 && is_blank(line, e)) {
		c->len = 0;
		return 0;
	}
	if (c->line_start == 0 && is_status_line(line, e))
		goto complete;
	if (!literal_header(line, e, &n))
		goto complete;
	if (n > c->limits.max_literal) {
		snprintf(c->errmsg, sizeof c->errmsg,
			 "literal of %" PRIu64 " bytes exceeds the limit of "
			 "%zu bytes",
			 n, c->limits.max_literal);
		return start_skip(c, n);
	}
	if (n > c->limits.max_response - c->len) {
		snprintf(c->errmsg, sizeof c->errmsg,
			 "response longer than %zu bytes",
			 c->limits.max_response);
		return start_skip(c, n);
	}
	reserve(c, c->len + n);
	c->literal_left = n;
	if (n == 0)
		c->line_start = c->len;
	return 0;
complete:
	c->len = e - c->buf;
	c->buf[c->len] = '\0';
	return 1;
}

/* ---- skipping a response over the limits ---- */

/* Keeps the first bytes of the response in buf for skipped_response(). */
static void
keep_head(struct codec *c)
{
	c->skip_head_len = c->len < sizeof c->skip_head - 1
				   ? c->len
				   : sizeof c->skip_head - 1;
	if (c->skip_head_len)
		memcpy(c->skip_head, c->buf, c->skip_head_len);
}

/* Starts skipping a literal of n bytes. Returns 0, or a negative error
 * when that goes past max_skip. */
static int
skip_literal(struct codec *c, uint64_t n)
{
	if (n > c->skip_left)
		return set_error(c, CODEC_E_RESPONSE_TOO_BIG,
				 "literal of %" PRIu64 " bytes: a response "
				 "longer than %zu bytes, too big even to skip",
				 n, c->limits.max_skip);
	c->skip_literal = n;
	c->skip_left -= n;
	return 0;
}

/* Starts skipping the response in buf, whose limit check failed (the
 * message is in errmsg): keeps its first bytes and the current line's
 * last ones, forgets the rest. literal > 0: the line just ended in the
 * header of a literal of that size, to be skipped next. Returns 0, or a
 * negative error when the response is too big even to skip. */
static int
start_skip(struct codec *c, uint64_t literal)
{
	size_t line_len = c->len - c->line_start;

	keep_head(c);
	c->skip_tail_len = line_len < sizeof c->skip_tail
				   ? line_len
				   : sizeof c->skip_tail;
	if (c->skip_tail_len)
		memcpy(c->skip_tail, c->buf + c->len - c->skip_tail_len,
		       c->skip_tail_len);
	c->skip_first_line = c->line_start == 0 && !literal;
	c->skip_left = c->limits.max_skip > c->len ? c->limits.max_skip - c->len
						    : 0;
	c->skipping = true;
	c->len = c->line_start = 0;
	c->literal_left = 0;
	if (literal)
		c->skip_tail_len = 0;
	return skip_literal(c, literal);
}

/* Passes n bytes of a skipped line: the first line's go to the head while
 * it has room, and the last bytes of every line are kept in the tail. */
static void
skip_line_bytes(struct codec *c, const char *p, size_t n)
{
	size_t keep, room = sizeof c->skip_tail;

	if (c->skip_first_line && c->skip_head_len < sizeof c->skip_head - 1) {
		keep = sizeof c->skip_head - 1 - c->skip_head_len;
		if (keep > n)
			keep = n;
		memcpy(c->skip_head + c->skip_head_len, p, keep);
		c->skip_head_len += keep;
	}
	if (n >= room) {
		memcpy(c->skip_tail, p + n - room, room);
		c->skip_tail_len = room;
		return;
	}
	if (c->skip_tail_len + n > room) {
		size_t drop = c->skip_tail_len + n - room;

		memmove(c->skip_tail, c->skip_tail + drop,
			c->skip_tail_len - drop);
		c->skip_tail_len -= drop;
	}
	memcpy(c->skip_tail + c->skip_tail_len, p, n);
	c->skip_tail_len += n;
}

/* A skipped line ended (its LF is the tail's last byte). Returns 1 when
 * that was the response's end, 0 when a literal follows, or a negative
 * error when that literal is too big even to skip. */
static int
skip_end_of_line(struct codec *c)
{
	const char *t = c->skip_tail, *e = t + c->skip_tail_len;
	uint64_t n;

	if (e > t && e[-1] == '\n')
		e--;
	if (e > t && e[-1] == '\r')
		e--;
	if (c->skip_first_line &&
	    is_status_line(c->skip_head, c->skip_head + c->skip_head_len))
		return 1;
	/* The tail holds the line's last bytes: enough for any header
	 * whose size fits in 64 bits. */
	if (!literal_header(t, e, &n))
		return 1;
	c->skip_first_line = false;
	c->skip_tail_len = 0;
	return skip_literal(c, n);
}

/* The skipped response as a CODEC_SKIPPED one, from its first bytes. */
static void
skipped_response(struct codec *c)
{
	struct codec_response *r = &c->resp;
	char *head = c->skip_head, *end = head + c->skip_head_len;
	char *p = head, *w;

	memset(r, 0, sizeof *r);
	r->kind = CODEC_SKIPPED;
	r->tag = r->code.name = r->u.skipped.keyword = empty_str;
	r->text = (struct codec_str){c->errmsg, strlen(c->errmsg), false};
	r->u.skipped.number = -1;
	*end = '\0';
	if (*p == '+')
		return;
	if (*p != '*') {
		/* A tag, and then the status word is the keyword. */
		for (w = p; w < end && !ends_token(*w); w++)
			;
		if (w == p || w == end)
			return;
		*w = '\0';
		r->tag = (struct codec_str){p, (size_t)(w - p), false};
		p = w;
	}
	for (p++; p < end && *p == ' '; p++)
		;
	if (p < end && *p >= '0' && *p <= '9') {
		int64_t n = 0;

		for (; p < end && *p >= '0' && *p <= '9'; p++)
			n = n > (INT64_MAX - 9) / 10 ? INT64_MAX
						     : n * 10 + (*p - '0');
		r->u.skipped.number = n;
		for (; p < end && *p == ' '; p++)
			;
	}
	for (w = p; w < end && !ends_token(*w) && *w != '['; w++)
		if (*w >= 'a' && *w <= 'z')
			*w -= 'a' - 'A';
	*w = '\0';
	r->u.skipped.keyword = (struct codec_str){p, (size_t)(w - p), false};
}

/* After parse_response() failed on the whole response in buf: when it
 * failed on a limit (list length, nesting, memory), makes it a skipped
 * response and returns true; a syntax error stays an error. */
static bool
over_limits(struct codec *c)
{
	if (c->error != CODEC_E_LIST_TOO_LONG &&
	    c->error != CODEC_E_TOO_DEEP &&
	    c->error != CODEC_E_RESPONSE_TOO_BIG)
		return false;
	c->error = CODEC_E_NONE;
	keep_head(c);
	skipped_response(c);
	return true;
}

/* Goes on skipping with the input at [in, in + len): returns 1 with the
 * skipped response when it ended, 0 when all bytes were used, or a
 * negative error when the response is too big even to skip. */
static int
skip_more(struct codec *c, const char *in, size_t len, size_t *pos)
{
	while (*pos < len) {
		const char *lf;
		size_t n = len - *pos;
		int r;

		if (c->skip_literal > 0) {
			if (n > c->skip_literal)
				n = (size_t)c->skip_literal;
			c->skip_literal -= n;
			*pos += n;
			continue;
		}
		lf = memchr(in + *pos, '\n', n);
		if (lf)
			n = (size_t)(lf - (in + *pos)) + 1;
		if (n > c->skip_left)
			return set_error(c, CODEC_E_RESPONSE_TOO_BIG,
					 "response longer than %zu bytes, too "
					 "big even to skip",
					 c->limits.max_skip);
		c->skip_left -= n;
		skip_line_bytes(c, in + *pos, n);
		*pos += n;
		if (!lf)
			continue;
		r = skip_end_of_line(c);
		if (r < 0)
			return r;
		if (r == 1) {
			c->skipping = false;
			c->done = true;
			skipped_response(c);
			return 1;
		}
	}
	return 0;
}

static int parse_response(struct codec *c);

int
codec_parse(struct codec *c, const void *data, size_t len, size_t *consumed_r,
	    const struct codec_response **resp_r)
{
	const char *in = data;
	size_t pos = 0, n;
	const char *lf;
	int r;

	*consumed_r = 0;
	*resp_r = NULL;
	if (c->error)
		return -(int)c->error;
	if (c->done)
		clear_response(c);
	while (pos < len) {
		if (c->skipping) {
			r = skip_more(c, in, len, &pos);
			*consumed_r = pos;
			if (r <= 0)
				return r;
			*resp_r = &c->resp;
			return 1;
		}
		if (c->literal_left > 0) {
			n = len - pos;
			if (n > c->literal_left)
				n = c->literal_left;
			append(c, in + pos, n);
			pos += n;
			c->literal_left -= n;
			if (c->literal_left == 0)
				c->line_start = c->len;
			continue;
		}
		lf = memchr(in + pos, '\n', len - pos);
		n = lf ? (size_t)(lf - (in + pos)) + 1 : len - pos;
		if (check_line(c, in + pos, n, lf != NULL) < 0) {
			start_skip(c, 0);
			continue;
		}
		append(c, in + pos, n);
		pos += n;
		if (!lf)
			break;
		r = end_of_line(c);
		if (r < 0) {
			*consumed_r = pos;
			return r;
		}
		if (r == 0)
			continue;
		*consumed_r = pos;
		c->done = true;
		r = parse_response(c);
		if (r < 0 && !over_limits(c))
			return r;
		*resp_r = &c->resp;
		return 1;
	}
	*consumed_r = pos;
	return 0;
}

/* ---- parser ---- */

struct ps {
	struct codec *c;
	const char *start, *p, *end;
	unsigned depth;
};

#define TRY(e)                                                                 \
	do {                                                                   \
		int r_ = (e);                                                  \
		if (r_ < 0)                                                    \
			return r_;                                             \
	} while (0)

/* Records a syntax error at the current position. Returns the error. */
static int
syntax(struct ps *ps, const char *what)
{
	char near[20];
	size_t i;

	for (i = 0; i < sizeof near - 1 && ps->p + i < ps->end; i++) {
		unsigned char ch = ps->p[i];
		near[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '.';
	}
	near[i] = '\0';
	return set_error(ps->c, CODEC_E_SYNTAX,
			 "syntax error at byte %zu: %s (at \"%s\")",
			 (size_t)(ps->p - ps->start), what, near);
}

static inline bool
at_end(const struct ps *ps)
{
	return ps->p >= ps->end;
}

static inline int
peek(const struct ps *ps)
{
	return ps->p < ps->end ? (unsigned char)*ps->p : -1;
}

static inline void
skip_sp(struct ps *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
		ps->p++;
}

/* Reads an atom-like token, also stopping at '[' when stop_bracket. Returns
 * its length (0 when there is none) and sets *tok to it (borrowed). */
static size_t
token(struct ps *ps, const char **tok, bool stop_bracket)
{
	const char *p = ps->p;

	while (p < ps->end && !ends_token(*p) && !(stop_bracket && *p == '['))
		p++;
	*tok = ps->p;
	ps->p = p;
	return p - *tok;
}

static inline bool
tok_is(const char *tok, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(tok, word, n) == 0;
}

/* Copies n bytes into the arena as a NUL-terminated string. */
static struct codec_str
dup_str(struct ps *ps, const char *p, size_t n)
{
	char *s = arena_alloc(ps->c, n + 1, 1);

	memcpy(s, p, n);
	s[n] = '\0';
	return (struct codec_str){s, n, false};
}

static struct codec_str
dup_upper(struct ps *ps, const char *p, size_t n)
{
	struct codec_str s = dup_str(ps, p, n);
	char *w = (char *)s.ptr;
	size_t i;

	for (i = 0; i < n; i++)
		if (w[i] >= 'a' && w[i] <= 'z')
			w[i] -= 'a' - 'A';
	return s;
}

/* Fails with LIST_TOO_LONG if a list of n items may not take another.
 * Every array element passes here, so this also caps the arena: a response
 * of tiny items ("a a a ...") would otherwise cost ~25 times its size. */
static int
count_item(struct ps *ps, size_t n)
{
	struct codec *c = ps->c;

	if (n >= c->limits.max_list)
		return set_error(c, CODEC_E_LIST_TOO_LONG,
				 "list longer than %u items",
				 c->limits.max_list);
	if (c->arena_bytes > ARENA_FACTOR * c->limits.max_response + 64 * KIB)
		return set_error(c, CODEC_E_RESPONSE_TOO_BIG,
				 "response needs more than %zu bytes of "
				 "memory",
				 ARENA_FACTOR * c->limits.max_response +
				     64 * KIB);
	return 0;
}

/* Returns a copy of the n elements of size size at v in a new arena array
 * of twice the capacity *cap (at least 8), updating *cap. */
static void *
vec_grow(struct ps *ps, const void *v, size_t n, size_t *cap, size_t size)
{
	size_t nc = *cap ? *cap * 2 : 8;
	void *nv = arena_alloc(ps->c, nc * size, ALIGN);

	if (n)
		memcpy(nv, v, n * size);
	*cap = nc;
	return nv;
}

/* Appends an element to an arena array v of n elements and capacity cap;
 * evaluates to a pointer to the new, uninitialised element. */
#define VEC_PUSH(ps, v, n, cap)                                                \
	((n) == (cap)                                                          \
	     ? (void)((v) = vec_grow((ps), (v), (n), &(cap), sizeof *(v)))     \
	     : (void)0,                                                        \
	 &(v)[(n)++])

static int
open_list(struct ps *ps)
{
	if (peek(ps) != '(')
		return syntax(ps, "expected '('");
	if (ps->depth >= ps->c->limits.max_depth)
		return set_error(ps->c, CODEC_E_TOO_DEEP,
				 "lists nested deeper than %u",
				 ps->c->limits.max_depth);
	ps->depth++;
	ps->p++;
	return 0;
}

static int
close_list(struct ps *ps)
{
	skip_sp(ps);
	if (peek(ps) != ')')
		return syntax(ps, "expected ')'");
	ps->depth--;
	ps->p++;
	return 0;
}

/* Bytes that may follow a number. */
static inline bool
ends_number(unsigned char ch)
{
	return ends_token(ch) || ch == ',' || ch == ':' || ch == ']' ||
	       ch == '>';
}

/* Parses a decimal number no larger than max. */
static int
number(struct ps *ps, uint64_t max, uint64_t *out)
{
	const char *p = ps->p;
	uint64_t v = 0;

	if (p >= ps->end || *p < '0' || *p > '9')
		return syntax(ps, "expected a number");
	for (; p < ps->end && *p >= '0' && *p <= '9'; p++) {
		unsigned d = *p - '0';

		if (v > (max - d) / 10)
			return syntax(ps, "number out of range");
		v = v * 10 + d;
	}
	if (p < ps->end && !ends_number(*p)) {
		ps->p = p;
		return syntax(ps, "junk after a number");
	}
	ps->p = p;
	*out = v;
	return 0;
}

static int
number32(struct ps *ps, uint32_t *out)
{
	uint64_t v;

	TRY(number(ps, UINT32_MAX, &v));
	*out = (uint32_t)v;
	return 0;
}

/* Consumes "NIL" if it stands next as a whole token. */
static bool
take_nil(struct ps *ps)
{
	const char *p = ps->p;

	if (ps->end - p >= 3 && strncasecmp(p, "NIL", 3) == 0 &&
	    (p + 3 == ps->end || ends_token(p[3]))) {
		ps->p += 3;
		return true;
	}
	return false;
}

/* A quoted string; stores it unescaped in *out unless out is NULL. */
static int
quoted(struct ps *ps, struct codec_str *out)
{
	const char *p = ps->p + 1, *q;
	size_t n = 0;
	bool esc = false;
	char *s;

	for (q = p; q < ps->end; q++) {
		if (*q == '\r' || *q == '\n')
			break;
		if (*q == '\\') {
			if (++q == ps->end || *q == '\r' || *q == '\n')
				break;
			esc = true;
		} else if (*q == '"') {
			break;
		}
		n++;
	}
	if (q == ps->end || *q != '"') {
		ps->p = q;
		return syntax(ps, "unterminated quoted string");
	}
	ps->p = q + 1;
	if (!out)
		return 0;
	if (!esc) {
		*out = dup_str(ps, p, n);
		return 0;
	}
	s = arena_alloc(ps->c, n + 1, 1);
	*out = (struct codec_str){s, n, false};
	for (; p < q; p++) {
		if (*p == '\\')
			p++;
		*s++ = *p;
	}
	*s = '\0';
	return 0;
}

/* A literal "{n}", "{n+}" or literal8 "~{n}", then CRLF (or LF) and n
 * bytes; the framer has checked n against the limits. */
static int
literal(struct ps *ps, struct codec_str *out)
{
	const char *p = ps->p;
	uint64_t n = 0;

	if (*p == '~')
		p++;
	p++; /* '{' */
	if (p == ps->end || *p < '0' || *p > '9')
		return syntax(ps, "bad literal");
	for (; p < ps->end && *p >= '0' && *p <= '9'; p++)
		n = n > (UINT64_MAX - 9) / 10 ? UINT64_MAX
					      : n * 10 + (*p - '0');
	if (p < ps->end && *p == '+')
		p++;
	if (p < ps->end && *p == '}')
		p++;
	else
		return syntax(ps, "bad literal");
	if (p < ps->end && *p == '\r')
		p++;
	if (p == ps->end || *p != '\n')
		return syntax(ps, "literal not at the end of a line");
	p++;
	if (n > (uint64_t)(ps->end - p))
		return syntax(ps, "literal runs past the response");
	if (out)
		*out = dup_str(ps, p, n);
	ps->p = p + n;
	return 0;
}

/* A string where one may stand: quoted, literal, literal8, or (leniently)
 * an atom. "NIL" gives a nil string when nil_ok, else the string "NIL".
 * Stores it in *out unless out is NULL. */
static int
string(struct ps *ps, struct codec_str *out, bool nil_ok)
{
	const char *tok;
	size_t n;
	int ch = peek(ps);

	if (ch == '"')
		return quoted(ps, out);
	if (ch == '{' || (ch == '~' && ps->p + 1 < ps->end && ps->p[1] == '{'))
		return literal(ps, out);
	n = token(ps, &tok, false);
	if (n == 0)
		return syntax(ps, "expected a string");
	if (out) {
		if (nil_ok && tok_is(tok, n, "NIL"))
			*out = nil_str;
		else
			*out = dup_str(ps, tok, n);
	}
	return 0;
}

/* Skips one value of any shape: a string, atom, number or nested list. */
static int
skip_value(struct ps *ps)
{
	size_t n = 0;

	if (peek(ps) != '(')
		return string(ps, NULL, true);
	TRY(open_list(ps));
	for (;;) {
		skip_sp(ps);
		if (at_end(ps))
			return syntax(ps, "unterminated list");
		if (peek(ps) == ')')
			break;
		TRY(count_item(ps, n++));
		TRY(skip_value(ps));
	}
	return close_list(ps);
}

/* Strings up to ')' when parens (after a '('), else up to the end. */
static int
strlist(struct ps *ps, struct codec_strlist *l, bool parens)
{
	size_t cap = 0;

	l->v = NULL;
	l->n = 0;
	if (parens)
		TRY(open_list(ps));
	for (;;) {
		skip_sp(ps);
		if (at_end(ps)) {
			if (parens)
				return syntax(ps, "unterminated list");
			break;
		}
		if (parens && peek(ps) == ')')
			break;
		TRY(count_item(ps, l->n));
		TRY(string(ps, VEC_PUSH(ps, l->v, l->n, cap), false));
	}
	return parens ? close_list(ps) : 0;
}

/* A number or '*' (UINT32_MAX) in a sequence set. */
static int
seqnum(struct ps *ps, uint32_t *out)
{
	if (peek(ps) == '*') {
		ps->p++;
		if (!at_end(ps) && !ends_number(*ps->p))
			return syntax(ps, "junk after '*'");
		*out = UINT32_MAX;
		return 0;
	}
	return number32(ps, out);
}

/* A sequence set "1:3,7,9:*"; each range is stored with lo <= hi. */
static int
seqset(struct ps *ps, struct codec_seqset *s)
{
	size_t cap = 0;
	struct codec_range *r;
	uint32_t lo, hi;

	s->v = NULL;
	s->n = 0;
	for (;;) {
		TRY(seqnum(ps, &lo));
		hi = lo;
		if (peek(ps) == ':') {
			ps->p++;
			TRY(seqnum(ps, &hi));
		}
		TRY(count_item(ps, s->n));
		r = VEC_PUSH(ps, s->v, s->n, cap);
		r->lo = lo < hi ? lo : hi;
		r->hi = lo < hi ? hi : lo;
		if (peek(ps) != ',')
			return 0;
		ps->p++;
	}
}

/* Returns the position of the ']' closing a response code or section that
 * starts at p (after the '['), skipping quoted strings; NULL if none. */
static const char *
find_bracket(const char *p, const char *end)
{
	bool q = false;

	for (; p < end; p++) {
		if (*p == '\r' || *p == '\n')
			return NULL;
		if (q && *p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"')
			q = !q;
		else if (!q && *p == ']')
			return p;
	}
	return NULL;
}

/* The inside of a response code, ps->end set to its ']'. */
static int
code(struct ps *ps, struct codec_code *k)
{
	static const struct {
		const char *name;
		enum codec_code_kind kind;
	} codes[] = {
	    {"ALERT", CODEC_CODE_ALERT},
	    {"CAPABILITY", CODEC_CODE_CAPABILITY},
	    {"PERMANENTFLAGS", CODEC_CODE_PERMANENTFLAGS},
	    {"READ-ONLY", CODEC_CODE_READ_ONLY},
	    {"READ-WRITE", CODEC_CODE_READ_WRITE},
	    {"TRYCREATE", CODEC_CODE_TRYCREATE},
	    {"UIDNEXT", CODEC_CODE_UIDNEXT},
	    {"UIDVALIDITY", CODEC_CODE_UIDVALIDITY},
	    {"UNSEEN", CODEC_CODE_UNSEEN},
	    {"HIGHESTMODSEQ", CODEC_CODE_HIGHESTMODSEQ},
	    {"NOMODSEQ", CODEC_CODE_NOMODSEQ},
	    {"CLOSED", CODEC_CODE_CLOSED},
	    {"APPENDUID", CODEC_CODE_APPENDUID},
	    {"COPYUID", CODEC_CODE_COPYUID},
	};
	const char *name;
	size_t n, i;
	uint32_t u32;

	skip_sp(ps);
	n = token(ps, &name, false);
	if (n == 0)
		return syntax(ps, "expected a response code");
	k->name = dup_upper(ps, name, n);
	k->kind = CODEC_CODE_OTHER;
	for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (tok_is(name, n, codes[i].name))
			k->kind = codes[i].kind;
	skip_sp(ps);
	switch (k->kind) {
	case CODEC_CODE_CAPABILITY:
		return strlist(ps, &k->u.list, false);
	case CODEC_CODE_PERMANENTFLAGS:
		return strlist(ps, &k->u.list, peek(ps) == '(');
	case CODEC_CODE_UIDNEXT:
	case CODEC_CODE_UIDVALIDITY:
	case CODEC_CODE_UNSEEN:
		TRY(number32(ps, &u32));
		k->u.number = u32;
		return 0;
	case CODEC_CODE_HIGHESTMODSEQ:
		return number(ps, UINT64_MAX, &k->u.number);
	case CODEC_CODE_APPENDUID:
	case CODEC_CODE_COPYUID:
		TRY(number32(ps, &k->u.uidplus.uidvalidity));
		skip_sp(ps);
		if (k->kind == CODEC_CODE_COPYUID) {
			TRY(seqset(ps, &k->u.uidplus.src));
			skip_sp(ps);
		}
		return seqset(ps, &k->u.uidplus.dst);
	case CODEC_CODE_OTHER:
		k->u.other = dup_str(ps, ps->p, ps->end - ps->p);
		return 0;
	default:
		/* Codes without arguments; anything after is ignored. */
		return 0;
	}
}

/* resp-text: an optional "[code]" then the text, both after any spaces. */
static int
resp_text(struct ps *ps, struct codec_response *r)
{
	const char *close, *end = ps->end;

	skip_sp(ps);
	if (peek(ps) == '[' && (close = find_bracket(ps->p + 1, end))) {
		ps->p++;
		ps->end = close;
		TRY(code(ps, &r->code));
		ps->p = close + 1;
		ps->end = end;
		skip_sp(ps);
	}
	r->text = dup_str(ps, ps->p, end - ps->p);
	ps->p = end;
	return 0;
}

static int
address_list(struct ps *ps, struct codec_address_list *l)
{
	struct codec_address *a;
	size_t cap = 0;

	l->v = NULL;
	l->n = 0;
	if (take_nil(ps))
		return 0;
	TRY(open_list(ps));
	for (;;) {
		skip_sp(ps);
		if (peek(ps) == ')')
			break;
		TRY(count_item(ps, l->n));
		a = VEC_PUSH(ps, l->v, l->n, cap);
		TRY(open_list(ps));
		skip_sp(ps);
		TRY(string(ps, &a->name, true));
		skip_sp(ps);
		TRY(string(ps, &a->adl, true));
		skip_sp(ps);
		TRY(string(ps, &a->mailbox, true));
		skip_sp(ps);
		TRY(string(ps, &a->host, true));
		TRY(close_list(ps));
	}
	return close_list(ps);
}

static int
envelope(struct ps *ps, struct codec_envelope *e)
{
	struct codec_address_list *lists[] = {
	    &e->from, &e->sender, &e->reply_to, &e->to, &e->cc, &e->bcc,
	};
	size_t i;

	TRY(open_list(ps));
	skip_sp(ps);
	TRY(string(ps, &e->date, true));
	skip_sp(ps);
	TRY(string(ps, &e->subject, true));
	for (i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		skip_sp(ps);
		TRY(address_list(ps, lists[i]));
	}
	skip_sp(ps);
	TRY(string(ps, &e->in_reply_to, true));
	skip_sp(ps);
	TRY(string(ps, &e->message_id, true));
	/* Leniently skip anything a server appends. */
	for (;;) {
		skip_sp(ps);
		if (at_end(ps) || peek(ps) == ')')
			break;
		TRY(skip_value(ps));
	}
	return close_list(ps);
}

/* "BODY[spec]<origin> value" and the like, ps->p at the '['. */
static int
section(struct ps *ps, struct codec_section *s, bool binary)
{
	const char *close = find_bracket(ps->p + 1, ps->end);
	uint64_t origin;

	if (!close)
		return syntax(ps, "unterminated section");
	s->binary = binary;
	s->spec = dup_str(ps, ps->p + 1, close - ps->p - 1);
	s->origin = -1;
	ps->p = close + 1;
	if (peek(ps) == '<') {
		ps->p++;
		TRY(number(ps, UINT32_MAX, &origin));
		if (peek(ps) != '>')
			return syntax(ps, "expected '>'");
		ps->p++;
		s->origin = (int64_t)origin;
	}
	skip_sp(ps);
	return string(ps, &s->data, true);
}

static int
fetch(struct ps *ps, struct codec_fetch *f)
{
	size_t cap = 0, items = 0, n;
	const char *name;
	struct codec_section *s;

	skip_sp(ps);
	TRY(open_list(ps));
	for (;;) {
		skip_sp(ps);
		if (at_end(ps))
			return syntax(ps, "unterminated FETCH");
		if (peek(ps) == ')')
			break;
		TRY(count_item(ps, items++));
		n = token(ps, &name, true);
		if (n == 0)
			return syntax(ps, "expected a FETCH item");
		if (peek(ps) == '[') {
			bool body = tok_is(name, n, "BODY") ||
				    tok_is(name, n, "BODY.PEEK");
			bool bin = tok_is(name, n, "BINARY");

			if (body || bin) {
				TRY(count_item(ps, f->n_sections));
				s = VEC_PUSH(ps, f->sections, f->n_sections,
					     cap);
				TRY(section(ps, s, bin));
				continue;
			}
			/* e.g. BINARY.SIZE[1] 42: skip its name's tail. */
			const char *close = find_bracket(ps->p + 1, ps->end);
			if (!close)
				return syntax(ps, "unterminated section");
			ps->p = close + 1;
			if (peek(ps) == '<') {
				while (!at_end(ps) && *ps->p != '>')
					ps->p++;
				if (at_end(ps))
					return syntax(ps, "expected '>'");
				ps->p++;
			}
			skip_sp(ps);
			TRY(skip_value(ps));
			f->n_skipped++;
			continue;
		}
		skip_sp(ps);
		if (tok_is(name, n, "UID")) {
			TRY(number32(ps, &f->uid));
			f->have |= CODEC_FETCH_UID;
		} else if (tok_is(name, n, "FLAGS")) {
			TRY(strlist(ps, &f->flags, true));
			f->have |= CODEC_FETCH_FLAGS;
		} else if (tok_is(name, n, "INTERNALDATE")) {
			TRY(string(ps, &f->internaldate, true));
			f->have |= CODEC_FETCH_INTERNALDATE;
		} else if (tok_is(name, n, "RFC822.SIZE")) {
			TRY(number(ps, UINT64_MAX, &f->size));
			f->have |= CODEC_FETCH_SIZE;
		} else if (tok_is(name, n, "MODSEQ")) {
			TRY(open_list(ps));
			skip_sp(ps);
			TRY(number(ps, UINT64_MAX, &f->modseq));
			TRY(close_list(ps));
			f->have |= CODEC_FETCH_MODSEQ;
		} else if (tok_is(name, n, "ENVELOPE")) {
			TRY(envelope(ps, &f->envelope));
			f->have |= CODEC_FETCH_ENVELOPE;
		} else if (tok_is(name, n, "BODYSTRUCTURE") ||
			   tok_is(name, n, "BODY")) {
			TRY(skip_value(ps));
			f->have |= CODEC_FETCH_BODYSTRUCTURE;
		} else if (tok_is(name, n, "RFC822") ||
			   tok_is(name, n, "RFC822.HEADER") ||
			   tok_is(name, n, "RFC822.TEXT")) {
			TRY(count_item(ps, f->n_sections));
			s = VEC_PUSH(ps, f->sections, f->n_sections, cap);
			s->binary = false;
			s->spec = dup_upper(ps, name, n);
			s->origin = -1;
			TRY(string(ps, &s->data, true));
		} else {
			TRY(skip_value(ps));
			f->n_skipped++;
		}
	}
	return close_list(ps);
}

static int
list_response(struct ps *ps, struct codec_response *r)
{
	struct codec_str d;

	skip_sp(ps);
	TRY(strlist(ps, &r->u.list_.flags, true));
	skip_sp(ps);
	if (take_nil(ps)) {
		r->u.list_.delimiter = 0;
	} else {
		TRY(string(ps, &d, false));
		if (d.len > 1)
			return syntax(ps, "hierarchy delimiter too long");
		r->u.list_.delimiter = d.len ? d.ptr[0] : 0;
	}
	skip_sp(ps);
	TRY(string(ps, &r->u.list_.mailbox, false));
	/* LIST-EXTENDED data such as ("CHILDINFO" ("SUBSCRIBED")). */
	for (;;) {
		skip_sp(ps);
		if (at_end(ps))
			return 0;
		TRY(skip_value(ps));
	}
}

static int
status_response(struct ps *ps, struct codec_response *r)
{
	struct codec_status_item *it;
	size_t cap = 0, items = 0, n;
	const char *name;

	skip_sp(ps);
	TRY(string(ps, &r->u.status.mailbox, false));
	skip_sp(ps);
	TRY(open_list(ps));
	for (;;) {
		skip_sp(ps);
		if (at_end(ps))
			return syntax(ps, "unterminated STATUS");
		if (peek(ps) == ')')
			break;
		TRY(count_item(ps, items++));
		n = token(ps, &name, false);
		if (n == 0)
			return syntax(ps, "expected a STATUS item");
		skip_sp(ps);
		if (peek(ps) >= '0' && peek(ps) <= '9') {
			it = VEC_PUSH(ps, r->u.status.items,
				      r->u.status.n_items, cap);
			it->name = dup_upper(ps, name, n);
			TRY(number(ps, UINT64_MAX, &it->value));
		} else {
			TRY(skip_value(ps));
		}
	}
	return close_list(ps);
}

static int
search_response(struct ps *ps, struct codec_response *r)
{
	size_t cap = 0, n;
	const char *name;

	for (;;) {
		skip_sp(ps);
		if (at_end(ps))
			return 0;
		if (peek(ps) == '(') {
			/* RFC 7162: "(MODSEQ n)" after the numbers. */
			TRY(open_list(ps));
			skip_sp(ps);
			n = token(ps, &name, false);
			if (!tok_is(name, n, "MODSEQ"))
				return syntax(ps, "expected MODSEQ");
			skip_sp(ps);
			TRY(number(ps, UINT64_MAX, &r->u.search.modseq));
			TRY(close_list(ps));
			continue;
		}
		TRY(count_item(ps, r->u.search.n));
		TRY(number32(ps,
			     VEC_PUSH(ps, r->u.search.v, r->u.search.n, cap)));
	}
}

static int
esearch_response(struct ps *ps, struct codec_response *r)
{
	const char *name;
	size_t n, items = 0;
	uint32_t u32;

	r->u.esearch.tag = nil_str;
	r->u.esearch.min = r->u.esearch.max = r->u.esearch.count = -1;
	skip_sp(ps);
	if (peek(ps) == '(') {
		TRY(open_list(ps));
		skip_sp(ps);
		n = token(ps, &name, false);
		if (!tok_is(name, n, "TAG"))
			return syntax(ps, "expected TAG");
		skip_sp(ps);
		TRY(string(ps, &r->u.esearch.tag, false));
		TRY(close_list(ps));
	}
	for (;;) {
		skip_sp(ps);
		if (at_end(ps))
			return 0;
		TRY(count_item(ps, items++));
		n = token(ps, &name, false);
		if (n == 0)
			return syntax(ps, "expected an ESEARCH item");
		skip_sp(ps);
		if (tok_is(name, n, "UID")) {
			r->u.esearch.uid = true;
		} else if (tok_is(name, n, "MIN")) {
			TRY(number32(ps, &u32));
			r->u.esearch.min = u32;
		} else if (tok_is(name, n, "MAX")) {
			TRY(number32(ps, &u32));
			r->u.esearch.max = u32;
		} else if (tok_is(name, n, "COUNT")) {
			TRY(number32(ps, &u32));
			r->u.esearch.count = u32;
		} else if (tok_is(name, n, "ALL")) {
			TRY(seqset(ps, &r->u.esearch.all));
		} else if (tok_is(name, n, "MODSEQ")) {
			TRY(number(ps, UINT64_MAX, &r->u.esearch.modseq));
		} else {
			TRY(skip_value(ps));
		}
	}
}

static int
vanished_response(struct ps *ps, struct codec_response *r)
{
	const char *name;
	size_t n;

	skip_sp(ps);
	if (peek(ps) == '(') {
		TRY(open_list(ps));
		skip_sp(ps);
		n = token(ps, &name, false);
		if (!tok_is(name, n, "EARLIER"))
			return syntax(ps, "expected EARLIER");
		TRY(close_list(ps));
		r->u.vanished.earlier = true;
		skip_sp(ps);
	}
	return seqset(ps, &r->u.vanished.uids);
}

static int
other_response(struct ps *ps, struct codec_response *r, const char *kw,
	       size_t n)
{
	r->kind = CODEC_OTHER;
	r->u.other.number = -1;
	r->u.other.keyword = dup_upper(ps, kw, n);
	skip_sp(ps);
	r->u.other.rest = dup_str(ps, ps->p, ps->end - ps->p);
	ps->p = ps->end;
	return 0;
}

/* After "* " of an untagged response. */
static int
untagged(struct ps *ps, struct codec_response *r)
{
	static const struct {
		const char *kw;
		enum codec_kind kind;
	} kinds[] = {
	    {"CAPABILITY", CODEC_CAPABILITY},
	    {"ENABLED", CODEC_ENABLED},
	    {"FLAGS", CODEC_FLAGS},
	    {"LIST", CODEC_LIST},
	    {"LSUB", CODEC_LIST},
	    {"STATUS", CODEC_STATUS},
	    {"SEARCH", CODEC_SEARCH},
	    {"ESEARCH", CODEC_ESEARCH},
	    {"VANISHED", CODEC_VANISHED},
	};
	const char *kw;
	size_t n, i;
	uint32_t num;
	size_t sn;

	if (peek(ps) >= '0' && peek(ps) <= '9') {
		TRY(number32(ps, &num));
		skip_sp(ps);
		n = token(ps, &kw, false);
		if (n == 0)
			return syntax(ps, "expected a keyword after a number");
		if (tok_is(kw, n, "EXISTS")) {
			r->kind = CODEC_EXISTS;
		} else if (tok_is(kw, n, "RECENT")) {
			r->kind = CODEC_RECENT;
		} else if (tok_is(kw, n, "EXPUNGE")) {
			r->kind = CODEC_EXPUNGE;
		} else if (tok_is(kw, n, "FETCH")) {
			r->kind = CODEC_FETCH;
			r->u.fetch.seq = num;
			return fetch(ps, &r->u.fetch);
		} else {
			TRY(other_response(ps, r, kw, n));
			r->u.other.number = num;
			return 0;
		}
		r->u.number = num;
		return 0;
	}
	if ((sn = status_word(ps->p, ps->end, &r->status))) {
		r->kind = CODEC_UNTAGGED_STATUS;
		ps->p += sn;
		return resp_text(ps, r);
	}
	n = token(ps, &kw, false);
	if (n == 0)
		return syntax(ps, "expected a keyword");
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (tok_is(kw, n, kinds[i].kw))
			break;
	if (i == sizeof kinds / sizeof kinds[0])
		return other_response(ps, r, kw, n);
	r->kind = kinds[i].kind;
	switch (r->kind) {
	case CODEC_CAPABILITY:
	case CODEC_ENABLED:
		return strlist(ps, &r->u.list, false);
	case CODEC_FLAGS:
		skip_sp(ps);
		return strlist(ps, &r->u.list, true);
	case CODEC_LIST:
		r->u.list_.is_lsub = tok_is(kw, n, "LSUB");
		return list_response(ps, r);
	case CODEC_STATUS:
		return status_response(ps, r);
	case CODEC_SEARCH:
		return search_response(ps, r);
	case CODEC_ESEARCH:
		return esearch_response(ps, r);
	case CODEC_VANISHED:
		return vanished_response(ps, r);
	default:
		return syntax(ps, "internal error");
	}
}

static int
parse_response(struct codec *c)
{
	struct ps ps = {c, c->buf, c->buf, c->buf + c->len, 0};
	struct codec_response *r = &c->resp;
	const char *tag;
	size_t n;

	memset(r, 0, sizeof *r);
	r->tag = r->text = r->code.name = empty_str;
	if (peek(&ps) == '+') {
		ps.p++;
		r->kind = CODEC_CONTINUATION;
		return resp_text(&ps, r);
	}
	if (peek(&ps) == '*') {
		ps.p++;
		skip_sp(&ps);
		TRY(untagged(&ps, r));
		skip_sp(&ps);
		if (!at_end(&ps))
			return syntax(&ps, "junk at the end of the response");
		return 0;
	}
	n = token(&ps, &tag, false);
	if (n == 0)
		return syntax(&ps, "expected a tag, '*' or '+'");
	r->kind = CODEC_TAGGED;
	r->tag = dup_str(&ps, tag, n);
	skip_sp(&ps);
	n = status_word(ps.p, ps.end, &r->status);
	if (n == 0)
		return syntax(&ps, "expected OK, NO or BAD after the tag");
	ps.p += n;
	return resp_text(&ps, r);
}

/* ---- names and helpers ---- */

const char *
codec_status_name(enum codec_status s)
{
	switch (s) {
	case CODEC_STATUS_OK:
		return "OK";
	case CODEC_STATUS_NO:
		return "NO";
	case CODEC_STATUS_BAD:
		return "BAD";
	case CODEC_STATUS_BYE:
		return "BYE";
	case CODEC_STATUS_PREAUTH:
		return "PREAUTH";
	}
	return "?";
}

const char *
codec_kind_name(enum codec_kind k)
{
	static const char *const names[] = {
	    [CODEC_CONTINUATION] = "CONTINUATION",
	    [CODEC_TAGGED] = "TAGGED",
	    [CODEC_UNTAGGED_STATUS] = "STATUS-RESPONSE",
	    [CODEC_CAPABILITY] = "CAPABILITY",
	    [CODEC_ENABLED] = "ENABLED",
	    [CODEC_FLAGS] = "FLAGS",
	    [CODEC_LIST] = "LIST",
	    [CODEC_STATUS] = "STATUS",
	    [CODEC_SEARCH] = "SEARCH",
	    [CODEC_ESEARCH] = "ESEARCH",
	    [CODEC_EXISTS] = "EXISTS",
	    [CODEC_RECENT] = "RECENT",
	    [CODEC_EXPUNGE] = "EXPUNGE",
	    [CODEC_VANISHED] = "VANISHED",
	    [CODEC_FETCH] = "FETCH",
	    [CODEC_OTHER] = "OTHER",
	};

	if ((unsigned)k < sizeof names / sizeof names[0] && names[k])
		return names[k];
	return "?";
}

bool
codec_strlist_has(const struct codec_strlist *l, const char *atom)
{
	size_t n = strlen(atom), i;

	for (i = 0; i < l->n; i++)
		if (!l->v[i].nil && l->v[i].len == n &&
		    strncasecmp(l->v[i].ptr, atom, n) == 0)
			return true;
	return false;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* Reads n digits at *p (below end) into *v. */
static bool
date_digits(const char **p, const char *end, int n, unsigned *v)
{
	unsigned x = 0;

	for (; n > 0; n--, (*p)++) {
		if (*p >= end || **p < '0' || **p > '9')
			return false;
		x = x * 10 + (unsigned)(**p - '0');
	}
	*v = x;
	return true;
}

static bool
date_char(const char **p, const char *end, char c)
{
	if (*p >= end || **p != c)
		return false;
	(*p)++;
	return true;
}

bool
codec_internaldate(const char *s, size_t len, int64_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30,
					      31, 31, 30, 31, 30, 31};
	const char *p = s, *end = s + len;
	unsigned day, mon, year, hh, mm, ss, zh, zm, dmax;
	char sign;

	if (p < end && *p == ' ')
		p++;
	if (!date_digits(&p, end, 1, &day))
		return false;
	if (p < end && *p >= '0' && *p <= '9')
		day = day * 10 + (unsigned)(*p++ - '0');
	if (!date_char(&p, end, '-') || end - p < 3)
		return false;
	for (mon = 0; mon < 12; mon++)
		if (!strncasecmp(p, months + 3 * mon, 3))
			break;
	if (mon == 12)
		return false;
	p += 3;
	if (!date_char(&p, end, '-') || !date_digits(&p, end, 4, &year) ||
	    !date_char(&p, end, ' ') || !date_digits(&p, end, 2, &hh) ||
	    !date_char(&p, end, ':') || !date_digits(&p, end, 2, &mm) ||
	    !date_char(&p, end, ':') || !date_digits(&p, end, 2, &ss) ||
	    !date_char(&p, end, ' ') || p == end)
		return false;
	sign = *p++;
	if ((sign != '+' && sign != '-') || !date_digits(&p, end, 2, &zh) ||
	    !date_digits(&p, end, 2, &zm) || p != end)
		return false;
	dmax = mdays[mon] + (mon == 1 && year % 4 == 0 &&
			     (year % 100 != 0 || year % 400 == 0));
	if (day < 1 || day > dmax || hh > 23 || mm > 59 || ss > 60 || zh > 23 ||
	    zm > 59)
		return false;
	*t_r = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 +
	       mm * 60 + ss -
	       (sign == '-' ? -1 : 1) * (int64_t)(zh * 3600 + zm * 60);
	return true;
}

/* ---- encoder ---- */

void
codec_buf_init(struct codec_buf *b)
{
	memset(b, 0, sizeof *b);
}

void
codec_buf_finish(struct codec_buf *b)
{
	if (b->data) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	codec_buf_init(b);
}

void
codec_buf_clear(struct codec_buf *b)
{
	if (b->data) {
		explicit_bzero(b->data, b->len);
		b->data[0] = '\0';
	}
	b->len = 0;
	b->n_splits = 0;
}

void
codec_buf_consume(struct codec_buf *b, size_t n)
{
	unsigned i, j;

	if (n >= b->len) {
		codec_buf_clear(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	explicit_bzero(b->data + b->len - n, n);
	b->len -= n;
	b->data[b->len] = '\0';
	for (i = j = 0; i < b->n_splits; i++)
		if (b->splits[i] > n)
			b->splits[j++] = b->splits[i] - n;
	b->n_splits = j;
}

/* Grows for n more bytes and a NUL. The old copy is wiped before it is
 * freed, since buffers carry passwords. */
static void
buf_reserve(struct codec_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->len + n < b->cap)
		return;
	cap = b->cap ? b->cap * 2 : 256;
	if (cap < b->len + n + 1)
		cap = b->len + n + 1;
	p = xmalloc(cap);
	if (b->data) {
		memcpy(p, b->data, b->len);
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = cap;
}

void
codec_buf_add(struct codec_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
codec_buf_addstr(struct codec_buf *b, const char *s)
{
	codec_buf_add(b, s, strlen(s));
}

static void
add_u32(struct codec_buf *b, uint32_t v)
{
	char tmp[16];
	int n = snprintf(tmp, sizeof tmp, "%" PRIu32, v);

	codec_buf_add(b, tmp, (size_t)n);
}

static bool
is_astring_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && !strchr("(){%*\"\\", ch);
}

static bool
can_quote(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = s[i];
		if (ch == 0 || ch == '\r' || ch == '\n' || ch >= 0x80)
			return false;
	}
	return true;
}

static void
enc_literal(struct codec_buf *b, const char *s, size_t len)
{
	char hdr[32];
	bool plus = b->literal_plus && len <= LITERAL_MINUS_MAX;
	int n = snprintf(hdr, sizeof hdr, "{%zu%s}\r\n", len, plus ? "+" : "");

	codec_buf_add(b, hdr, (size_t)n);
	if (!plus) {
		/* More sync literals than splits is a caller bug. */
		if (b->n_splits == CODEC_MAX_SPLITS)
			abort();
		b->splits[b->n_splits++] = b->len;
	}
	codec_buf_add(b, s, len);
}

static void
enc_quoted(struct codec_buf *b, const char *s, size_t len)
{
	size_t i, start = 0;

	codec_buf_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			codec_buf_add(b, s + start, i - start);
			codec_buf_add(b, "\\", 1);
			start = i;
		}
	}
	codec_buf_add(b, s + start, len - start);
	codec_buf_add(b, "\"", 1);
}

/* A string (never an atom): quoted when possible, else a literal. */
static void
enc_string(struct codec_buf *b, const char *s, size_t len)
{
	if (can_quote(s, len))
		enc_quoted(b, s, len);
	else
		enc_literal(b, s, len);
}

void
codec_enc_astring(struct codec_buf *b, const char *s, size_t len)
{
	size_t i;
	bool atom = len > 0 && !(len == 3 && strncasecmp(s, "NIL", 3) == 0);

	for (i = 0; atom && i < len; i++)
		atom = is_astring_char((unsigned char)s[i]);
	if (atom)
		codec_buf_add(b, s, len);
	else
		enc_string(b, s, len);
}

void
codec_enc_mailbox(struct codec_buf *b, const char *utf8)
{
	char *m = codec_mutf7_encode(utf8);

	/* Invalid UTF-8 goes as it is; the server will refuse it. */
	if (m)
		codec_enc_astring(b, m, strlen(m));
	else
		codec_enc_astring(b, utf8, strlen(utf8));
	free(m);
}

void
codec_enc_seqset(struct codec_buf *b, const struct codec_range *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			codec_buf_add(b, ",", 1);
		if (v[i].lo == UINT32_MAX)
			codec_buf_add(b, "*", 1);
		else
			add_u32(b, v[i].lo);
		if (v[i].hi != v[i].lo) {
			codec_buf_add(b, ":", 1);
			if (v[i].hi == UINT32_MAX)
				codec_buf_add(b, "*", 1);
			else
				add_u32(b, v[i].hi);
		}
	}
}

/* Starts a command: "tag VERB". */
static void
begin(struct codec_buf *b, const char *tag, const char *verb)
{
	codec_buf_addstr(b, tag);
	codec_buf_add(b, " ", 1);
	codec_buf_addstr(b, verb);
}

static void
crlf(struct codec_buf *b)
{
	codec_buf_add(b, "\r\n", 2);
}

void
codec_enc_simple(struct codec_buf *b, const char *tag, const char *cmd)
{
	begin(b, tag, cmd);
	crlf(b);
}

void
codec_enc_done(struct codec_buf *b)
{
	codec_buf_addstr(b, "DONE\r\n");
}

void
codec_enc_login(struct codec_buf *b, const char *tag, const char *user,
		const char *pass)
{
	begin(b, tag, "LOGIN ");
	codec_enc_astring(b, user, strlen(user));
	codec_buf_add(b, " ", 1);
	codec_enc_astring(b, pass, strlen(pass));
	crlf(b);
}

void
codec_buf_add_base64(struct codec_buf *b, const void *data, size_t n)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char q[4];
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		q[0] = abc[p[i] >> 2];
		q[1] = abc[(p[i] & 3) << 4 | p[i + 1] >> 4];
		q[2] = abc[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
		q[3] = abc[p[i + 2] & 63];
		codec_buf_add(b, q, 4);
	}
	if (n - i == 1) {
		q[0] = abc[p[i] >> 2];
		q[1] = abc[(p[i] & 3) << 4];
		q[2] = q[3] = '=';
		codec_buf_add(b, q, 4);
	} else if (n - i == 2) {
		q[0] = abc[p[i] >> 2];
		q[1] = abc[(p[i] & 3) << 4 | p[i + 1] >> 4];
		q[2] = abc[(p[i + 1] & 15) << 2];
		q[3] = '=';
		codec_buf_add(b, q, 4);
	}
	explicit_bzero(q, sizeof q);
}

/* Appends base64("\0user\0pass"), wiping the plain copy. */
static void
add_plain(struct codec_buf *b, const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass), n = ul + pl + 2;
	unsigned char *raw = xmalloc(n);

	raw[0] = 0;
	memcpy(raw + 1, user, ul);
	raw[1 + ul] = 0;
	memcpy(raw + 2 + ul, pass, pl);
	codec_buf_add_base64(b, raw, n);
	explicit_bzero(raw, n);
	free(raw);
}

void
codec_enc_authenticate_plain(struct codec_buf *b, const char *tag,
			     const char *user, const char *pass, bool sasl_ir)
{
	begin(b, tag, "AUTHENTICATE PLAIN");
	if (sasl_ir) {
		codec_buf_add(b, " ", 1);
		add_plain(b, user, pass);
	}
	crlf(b);
}

void
codec_enc_sasl_plain(struct codec_buf *b, const char *user, const char *pass)
{
	add_plain(b, user, pass);
	crlf(b);
}

void
codec_enc_enable(struct codec_buf *b, const char *tag, const char *exts)
{
	begin(b, tag, "ENABLE ");
	codec_buf_addstr(b, exts);
	crlf(b);
}

void
codec_enc_id(struct codec_buf *b, const char *tag, const char *const *kv,
	     size_t n_pairs)
{
	size_t i;

	begin(b, tag, "ID ");
	if (n_pairs == 0) {
		codec_buf_addstr(b, "NIL");
	} else {
		codec_buf_add(b, "(", 1);
		for (i = 0; i < 2 * n_pairs; i++) {
			if (i)
				codec_buf_add(b, " ", 1);
			if (kv[i])
				enc_string(b, kv[i], strlen(kv[i]));
			else
				codec_buf_addstr(b, "NIL");
		}
		codec_buf_add(b, ")", 1);
	}
	crlf(b);
}

void
codec_enc_examine(struct codec_buf *b, const char *tag,
		  const char *mailbox_utf8)
{
	begin(b, tag, "EXAMINE ");
	codec_enc_mailbox(b, mailbox_utf8);
	crlf(b);
}

void
codec_enc_status(struct codec_buf *b, const char *tag, const char *mailbox_utf8,
		 const char *items)
{
	begin(b, tag, "STATUS ");
	codec_enc_mailbox(b, mailbox_utf8);
	codec_buf_addstr(b, " (");
	codec_buf_addstr(b, items);
	codec_buf_add(b, ")", 1);
	crlf(b);
}

void
codec_enc_list(struct codec_buf *b, const char *tag, const char *ref,
	       const char *pattern_utf8)
{
	begin(b, tag, "LIST ");
	codec_enc_mailbox(b, ref);
	codec_buf_add(b, " ", 1);
	codec_enc_mailbox(b, pattern_utf8);
	crlf(b);
}

void
codec_enc_uid_search(struct codec_buf *b, const char *tag, const char *criteria)
{
	begin(b, tag, "UID SEARCH ");
	codec_buf_addstr(b, criteria);
	crlf(b);
}

void
codec_enc_uid_fetch(struct codec_buf *b, const char *tag,
		    const struct codec_range *set, size_t n, const char *items)
{
	begin(b, tag, "UID FETCH ");
	codec_enc_seqset(b, set, n);
	codec_buf_add(b, " ", 1);
	codec_buf_addstr(b, items);
	crlf(b);
}
