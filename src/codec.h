/* codec: a sans-IO IMAP4rev1 response parser and command encoder.
 *
 * The parser is fed bytes in arbitrary chunks and yields one parsed response
 * at a time. It never reads a socket and its memory is bounded by the limits
 * given at init: one response (its lines plus its literals) is framed into an
 * internal buffer, then parsed into a struct codec_response whose strings and
 * arrays live in a per-response arena. Everything a response points to is
 * borrowed and valid until the next call to codec_parse() or codec_finish().
 *
 * The encoder appends commands to a caller-owned struct codec_buf.
 *
 * This file knows nothing of sockets, OpenSSL or systemd.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum codec_error {
	CODEC_E_NONE = 0,
	CODEC_E_LINE_TOO_LONG,     /* a line exceeded limits.max_line */
	CODEC_E_LITERAL_TOO_BIG,   /* a literal exceeded limits.max_literal */
	CODEC_E_RESPONSE_TOO_BIG,  /* lines + literals exceeded max_response */
	CODEC_E_TOO_DEEP,          /* list nesting exceeded limits.max_depth */
	CODEC_E_LIST_TOO_LONG,     /* a list exceeded limits.max_list */
	CODEC_E_SYNTAX,            /* a response that does not parse */
};

struct codec_limits {
	size_t max_line;     /* one line, without literals (default 64 KiB) */
	size_t max_literal;  /* one literal (default 1 MiB) */
	size_t max_response; /* all lines and literals of a response (2 MiB) */
	unsigned max_depth;  /* parenthesised list nesting (default 32, at
				most 1024: the parser recurses per level) */
	unsigned max_list;   /* items in one list (default 10000) */
	/* A response over the limits above is skipped, not kept; one larger
	 * than this (default 16 MiB) is an error: no mail has a header that
	 * big, and skipping has to end somewhere. */
	size_t max_skip;
};

/* A string as the server sent it: atom, quoted (unescaped), or literal.
 * ptr is NUL-terminated (the NUL is not counted in len) and may contain NUL
 * bytes and invalid UTF-8 when it came from a literal. nil is true for NIL,
 * in which case ptr is NULL and len is 0. */
struct codec_str {
	const char *ptr;
	size_t len;
	bool nil;
};

/* One address of an ENVELOPE address list (RFC 3501 7.4.2). A group start is
 * host.nil with mailbox = group name; a group end is mailbox.nil and
 * host.nil. */
struct codec_address {
	struct codec_str name, adl, mailbox, host;
};

struct codec_address_list {
	struct codec_address *v; /* NULL and n = 0 for NIL */
	size_t n;
};

struct codec_envelope {
	struct codec_str date, subject;
	struct codec_address_list from, sender, reply_to, to, cc, bcc;
	struct codec_str in_reply_to, message_id;
};

/* A list of atoms or strings: flags, capabilities, labels. */
struct codec_strlist {
	struct codec_str *v;
	size_t n;
};

/* A sequence set: ranges in the order sent, each with lo <= hi ("5:3" is
 * stored as 3:5); '*' is UINT32_MAX. */
struct codec_range {
	uint32_t lo, hi;
};
struct codec_seqset {
	struct codec_range *v;
	size_t n;
};

enum codec_code_kind {
	CODEC_CODE_NONE = 0,
	CODEC_CODE_ALERT,
	CODEC_CODE_CAPABILITY,     /* u.list */
	CODEC_CODE_PERMANENTFLAGS, /* u.list */
	CODEC_CODE_READ_ONLY,
	CODEC_CODE_READ_WRITE,
	CODEC_CODE_TRYCREATE,
	CODEC_CODE_UIDNEXT,       /* u.number */
	CODEC_CODE_UIDVALIDITY,   /* u.number */
	CODEC_CODE_UNSEEN,        /* u.number */
	CODEC_CODE_HIGHESTMODSEQ, /* u.number */
	CODEC_CODE_NOMODSEQ,
	CODEC_CODE_CLOSED,
	CODEC_CODE_APPENDUID, /* u.uidplus: uidvalidity, dst */
	CODEC_CODE_COPYUID,   /* u.uidplus: uidvalidity, src, dst */
	CODEC_CODE_OTHER,     /* name and raw text after it in other */
};

/* The bracketed response code of a status response, e.g. [UIDNEXT 4392]. */
struct codec_code {
	enum codec_code_kind kind;
	struct codec_str name; /* as sent, upper-cased, e.g. "UIDNEXT" */
	union {
		uint64_t number;
		struct codec_strlist list;
		struct {
			uint32_t uidvalidity;
			struct codec_seqset src, dst;
		} uidplus;
		struct codec_str other; /* text after the name, may be empty */
	} u;
};

enum codec_status {
	CODEC_STATUS_OK,
	CODEC_STATUS_NO,
	CODEC_STATUS_BAD,
	CODEC_STATUS_BYE,
	CODEC_STATUS_PREAUTH,
};

/* One item of a STATUS response: name upper-cased, e.g. "UIDNEXT". */
struct codec_status_item {
	struct codec_str name;
	uint64_t value;
};

/* A BODY[section]<origin> or BINARY[section]<origin> item. The RFC822,
 * RFC822.HEADER and RFC822.TEXT items are stored here too, with that name as
 * spec (which no BODY[] section can be) and origin -1. */
struct codec_section {
	bool binary;
	struct codec_str spec; /* raw text between the brackets, e.g.
				  "HEADER.FIELDS (FROM)"; empty for BODY[] */
	int64_t origin;        /* -1 when absent */
	struct codec_str data; /* the payload, may be NIL */
};

/* Bits of codec_fetch.have. */
enum {
	CODEC_FETCH_UID = 1 << 0,
	CODEC_FETCH_FLAGS = 1 << 1,
	CODEC_FETCH_INTERNALDATE = 1 << 2,
	CODEC_FETCH_SIZE = 1 << 3,
	CODEC_FETCH_MODSEQ = 1 << 4,
	CODEC_FETCH_ENVELOPE = 1 << 5,
	CODEC_FETCH_BODYSTRUCTURE = 1 << 6, /* seen and skipped */
};

struct codec_fetch {
	uint32_t seq;
	unsigned have; /* CODEC_FETCH_* bits for the items present */
	uint32_t uid;
	struct codec_strlist flags;
	struct codec_str internaldate;
	uint64_t size;
	uint64_t modseq;
	struct codec_envelope envelope;
	struct codec_section *sections;
	size_t n_sections;
	unsigned n_skipped; /* unknown items skipped, e.g. X-GM-LABELS */
};

enum codec_kind {
	CODEC_CONTINUATION, /* "+ text": text (and code, if any) */
	CODEC_TAGGED,       /* tag, status, code, text */
	/* "* OK|NO|BAD|BYE|PREAUTH": status, code, text */
	CODEC_UNTAGGED_STATUS,
	CODEC_CAPABILITY,   /* u.list */
	CODEC_ENABLED,      /* u.list */
	CODEC_FLAGS,        /* u.list */
	CODEC_LIST,         /* u.list_: also used for LSUB (is_lsub) */
	CODEC_STATUS,       /* u.status */
	CODEC_SEARCH,       /* u.search */
	CODEC_ESEARCH,      /* u.esearch */
	CODEC_EXISTS,       /* u.number */
	CODEC_RECENT,       /* u.number */
	CODEC_EXPUNGE,      /* u.number */
	CODEC_VANISHED,     /* u.vanished */
	CODEC_FETCH,        /* u.fetch */
	CODEC_OTHER,        /* any other untagged data: u.other */
	/* A response over the limits (a line, a literal, the whole, list
	 * length or nesting), skipped whole without keeping it: the parser
	 * stays in step with the server. u.skipped tells what it was as far
	 * as its first bytes show; tag is set for a tagged one; text says
	 * which limit it crossed. */
	CODEC_SKIPPED,
};

struct codec_response {
	enum codec_kind kind;
	/* CODEC_TAGGED only; NUL-terminated. */
	struct codec_str tag;
	/* CODEC_TAGGED and CODEC_UNTAGGED_STATUS. */
	enum codec_status status;
	struct codec_code code;
	/* Human-readable text of status responses and continuations (raw
	 * bytes after the code; "" when absent). tag, text and code.name
	 * are never NULL, "" where they do not apply. */
	struct codec_str text;
	union {
		uint64_t number;
		struct codec_strlist list;
		struct {
			bool is_lsub;
			struct codec_strlist flags;
			char delimiter; /* 0 for NIL */
			/* As sent (modified UTF-7); see codec_mutf7_decode. */
			struct codec_str mailbox;
		} list_;
		struct {
			struct codec_str mailbox;
			struct codec_status_item *items;
			size_t n_items;
		} status;
		struct {
			uint32_t *v;
			size_t n;
			uint64_t modseq; /* 0 when absent */
		} search;
		struct {
			/* from (TAG "x"), NIL if absent */
			struct codec_str tag;
			bool uid;
			int64_t min, max, count; /* -1 when absent */
			struct codec_seqset all;
			uint64_t modseq; /* 0 when absent */
		} esearch;
		struct {
			bool earlier;
			struct codec_seqset uids;
		} vanished;
		struct codec_fetch fetch;
		struct {
			struct codec_str keyword; /* upper-cased, e.g. "ID" */
			/* Raw text after it, literals included as sent
			 * ("{n}\r\n" and n bytes). */
			struct codec_str rest;
			int64_t number; /* n of "* n KEYWORD ...", else -1 */
		} other;
		struct {
			/* Upper-cased, e.g. "FETCH"; "" when unknown. */
			struct codec_str keyword;
			int64_t number; /* n of "* n KEYWORD ...", else -1 */
		} skipped;
	} u;
};

struct codec_arena_block;

/* The parser. Embed it; codec_init() / codec_finish(). */
struct codec {
	struct codec_limits limits;
	/* framing */
	char *buf; /* one response being framed, NUL-terminated */
	size_t len, cap;
	size_t line_start;  /* offset where the current line began */
	uint64_t literal_left; /* > 0: inside a literal */
	bool done;          /* buf holds the response returned last; it is
			       cleared at the next call */
	/* Skipping a response over the limits: its bytes are looked at as
	 * they pass (for line ends and literal headers), not kept. */
	bool skipping;
	bool skip_first_line;  /* still on the response's first line */
	uint64_t skip_literal; /* literal bytes left to skip */
	uint64_t skip_left;    /* bytes that may still be skipped */
	char skip_head[64];    /* the response's first bytes */
	size_t skip_head_len;
	char skip_tail[32];    /* the current line's last bytes */
	size_t skip_tail_len;
	/* parsing */
	struct codec_arena_block *arena;
	size_t arena_bytes; /* allocated in arena blocks; capped */
	struct codec_response resp;
	enum codec_error error;
	char errmsg[160];
};

/* Initialise with the given limits, or the defaults when lim is NULL. */
void codec_init(struct codec *c, const struct codec_limits *lim);
void codec_finish(struct codec *c);
/* Forget any partial response (for a new connection). */
void codec_reset(struct codec *c);

/* Feed up to len bytes. Consumes bytes up to the end of at most one response
 * and stores the count in *consumed_r (the caller calls again with the rest).
 * Returns 1 with *resp_r set when a response is complete (borrowed, valid
 * until the next call), 0 when all len bytes were consumed and more are
 * needed, or a negative enum codec_error (see codec_errmsg). A response
 * over the limits is no error: it is skipped and returned as CODEC_SKIPPED.
 * After an error (a response that does not parse) the parser stays in error
 * until codec_reset(): the connection is out of sync and should be dropped.
 * Never blocks. */
int codec_parse(struct codec *c, const void *data, size_t len,
		size_t *consumed_r, const struct codec_response **resp_r);

/* A human-readable message for the last error, e.g. "line longer than
 * 65536 bytes". Borrowed from c. */
const char *codec_errmsg(const struct codec *c);

/* Names for logging: "OK", "EXISTS", ... */
const char *codec_status_name(enum codec_status s);
const char *codec_kind_name(enum codec_kind k);

/* True if the list contains the atom case-insensitively, e.g.
 * codec_strlist_has(&caps, "IDLE") or (&flags, "\\Seen"). */
bool codec_strlist_has(const struct codec_strlist *l, const char *atom);

/* An IMAP date-time without its quotes, such as INTERNALDATE's
 * "17-Jul-1996 02:44:25 -0700" (RFC 3501; the day may also be " 7" or
 * "7", the month in any case), as seconds since the epoch in *t_r. False
 * when s is not one, or names a day or time that does not exist. Reads at
 * most len bytes of s; it need not be NUL-terminated. */
bool codec_internaldate(const char *s, size_t len, int64_t *t_r);

/* ---- encoder ---- */

/* A caller-owned output buffer. Grows by xrealloc (allocation failure
 * aborts). Sync literals ({n} without LITERAL+) split a command: the encoder
 * records in splits[] each offset just after "{n}\r\n" where the sender must
 * wait for a "+" continuation before sending the rest. */
#define CODEC_MAX_SPLITS 8
struct codec_buf {
	char *data;
	size_t len, cap;
	size_t splits[CODEC_MAX_SPLITS];
	unsigned n_splits;
	/* Server offers LITERAL+ or LITERAL-: literals up to 4096 bytes
	 * are sent non-synchronising ({n+}), larger ones still wait. */
	bool literal_plus;
};

void codec_buf_init(struct codec_buf *b);
/* Frees the data and re-initialises. */
void codec_buf_finish(struct codec_buf *b);
/* Empties without freeing; keeps literal_plus. */
void codec_buf_clear(struct codec_buf *b);
/* Removes the first n bytes (already sent) and shifts the splits. */
void codec_buf_consume(struct codec_buf *b, size_t n);
void codec_buf_add(struct codec_buf *b, const void *p, size_t n);
void codec_buf_addstr(struct codec_buf *b, const char *s);

/* Appends s as an atom when it is a valid astring atom, else a quoted string
 * when it is 7-bit without CR/LF/NUL, else a literal ({n+} when
 * b->literal_plus, else {n} with a split). */
void codec_enc_astring(struct codec_buf *b, const char *s, size_t len);
/* Appends a UTF-8 mailbox name encoded as modified UTF-7, as an astring
 * (invalid UTF-8 is sent as it is, for the server to refuse). */
void codec_enc_mailbox(struct codec_buf *b, const char *utf8);
/* Appends a sequence set such as "1:3,7,9:*" (UINT32_MAX is '*'). */
void codec_enc_seqset(struct codec_buf *b, const struct codec_range *v,
		      size_t n);

/* Whole commands, each ending in CRLF. tag is e.g. "a7". A command may hold
 * at most CODEC_MAX_SPLITS sync literals (more aborts: a caller bug). */
void codec_enc_simple(struct codec_buf *b, const char *tag, const char *cmd);
/* codec_enc_simple covers CAPABILITY, STARTTLS, NOOP, IDLE, LOGOUT. */
void codec_enc_done(struct codec_buf *b); /* "DONE\r\n" */
void codec_enc_login(struct codec_buf *b, const char *tag, const char *user,
		     const char *pass);
/* AUTHENTICATE PLAIN with the initial response inline when sasl_ir, else
 * only the command line (send codec_enc_sasl_plain after the "+"). */
void codec_enc_authenticate_plain(struct codec_buf *b, const char *tag,
				  const char *user, const char *pass,
				  bool sasl_ir);
/* Appends base64 (RFC 4648, with padding) of n bytes of data; wipes the
 * copies it made on the stack (data may be a credential). */
void codec_buf_add_base64(struct codec_buf *b, const void *data, size_t n);
/* The base64 PLAIN response line: base64("\0user\0pass") CRLF. */
void codec_enc_sasl_plain(struct codec_buf *b, const char *user,
			  const char *pass);
/* ENABLE with space-separated extensions, e.g. "CONDSTORE QRESYNC". */
void codec_enc_enable(struct codec_buf *b, const char *tag, const char *exts);
/* ID with alternating key/value pairs (n_pairs pairs), or NIL if n is 0. */
void codec_enc_id(struct codec_buf *b, const char *tag,
		  const char *const *kv, size_t n_pairs);
void codec_enc_examine(struct codec_buf *b, const char *tag,
		       const char *mailbox_utf8);
/* STATUS mailbox (items), items e.g. "UIDNEXT UIDVALIDITY". */
void codec_enc_status(struct codec_buf *b, const char *tag,
		      const char *mailbox_utf8, const char *items);
/* LIST reference pattern; both UTF-8. */
void codec_enc_list(struct codec_buf *b, const char *tag, const char *ref,
		    const char *pattern_utf8);
/* UID SEARCH <criteria>; criteria is sent as is (caller builds it). */
void codec_enc_uid_search(struct codec_buf *b, const char *tag,
			  const char *criteria);
/* UID FETCH <set> <items>, items e.g. "(UID FLAGS ENVELOPE)". */
void codec_enc_uid_fetch(struct codec_buf *b, const char *tag,
			 const struct codec_range *set, size_t n,
			 const char *items);

/* Modified UTF-7 (RFC 3501 5.1.3). Both return a new NUL-terminated string
 * (caller frees) or NULL when the input is invalid (decode: bytes outside
 * printable ASCII, unterminated or non-shortest base64, non-zero padding
 * bits, unpaired surrogates, U+0000, printable ASCII or adjacent runs in
 * base64; encode: invalid UTF-8, overlongs, surrogates). Decoding accepts
 * only the form the encoder produces, so encode(decode(s)) == s. */
char *codec_mutf7_encode(const char *utf8);
char *codec_mutf7_decode(const char *mutf7);
/* The UTF-8 name of a mailbox as a server sent it (caller frees): raw
 * decoded from modified UTF-7; or, when raw has 8-bit bytes, raw itself
 * if it is strict UTF-8 without control characters, as Dovecot 2.3 names
 * mailboxes in the STATUS that NOTIFY pushes (modified UTF-7 is ASCII, so
 * no name reads two ways). NULL when it is neither. */
char *codec_mailbox_name(const char *raw);
