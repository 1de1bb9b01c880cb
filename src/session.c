#include "session.h"
#include "sasl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "unseen.h"

#define USEC_PER_SEC 1000000ULL
/* Tagged commands awaiting completion. The session pipelines at most
 * NOTIFY + EXAMINE + SEARCH, IDLE + UID FETCH + LOGOUT, or the owner's
 * STATUS checks; more means the
 * server stopped answering in order, which ends the session (never the
 * process). */
#define MAX_PENDING (SESSION_MAX_PIPELINE + 8)
/* Messages of one fetch whose responses were over the codec's limits and
 * are fetched again, headers only; more are left unannounced. */
#define MAX_SKIPPED 64
/* Ranges of unseen messages a date scan asks for, at most (a few KiB of
 * command); more: every message. */
#define DATES_RANGES 500
/* What is fetched of such a message: the header fields a notification
 * shows (Sender for a From that names no one), each cut at a size that
 * shows in one. */
#define HEADERS_ONLY                                                           \
	"(UID FLAGS INTERNALDATE "                                             \
	"BODY.PEEK[HEADER.FIELDS (FROM SENDER)]<0.2048> "                      \
	"BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.2048> "                          \
	"BODY.PEEK[HEADER.FIELDS (DATE)]<0.256> "                              \
	"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]<0.1024>)"

/* Bytes of a line shown in the -v protocol trace. */
#define TRACE_MAX 200
/* Seconds a message's FETCH may come after its EXISTS under NOTIFY before
 * the session asks for it itself. */
#define NOTIFY_GRACE 2
/* What NOTIFY asks of the selected mailbox: new mail comes with what a
 * notification shows, no round trip (RFC 5465 section 5.2). */
#define NOTIFY_SELECTED                                                        \
	"(selected (MessageNew (UID FLAGS ENVELOPE) MessageExpunge "          \
	"FlagChange))"
/* What a STATUS check asks (the same items NOTIFY's STATUS events carry):
 * UNSEEN, and HIGHESTMODSEQ where offered, tell when an announced message
 * may have been read. */
#define STATUS_ITEMS "MESSAGES UIDNEXT UIDVALIDITY UNSEEN"
#define STATUS_ITEMS_MODSEQ STATUS_ITEMS " HIGHESTMODSEQ"
/* What NOTIFY asks of the other mailboxes: a STATUS when mail arrives or
 * goes, and when flags change, so that a message read elsewhere is
 * withdrawn there too. Dovecot 2.3 then pushes "* STATUS box (UNSEEN n
 * HIGHESTMODSEQ m)", without UIDNEXT; without FlagChange it sends
 * nothing for a message read in another mailbox. */
#define NOTIFY_OTHERS "MessageNew MessageExpunge FlagChange"
/* NOTIFY follows the whole personal namespace, whose STATUS pushes of
 * mailboxes not watched are ignored: then every change Dovecot writes to
 * its mailbox list index is pushed, which NOTIFY_RESET_GAP needs. The
 * mailboxes are also named, for those outside that namespace, up to this
 * many: Dovecot 2.3 refuses more than 100 per namespace and kind of filter
 * (NOTIFICATIONOVERFLOW). */
#define NOTIFY_MAX_NAMES 100
/* Dovecot 2.3 watches its mailbox list index log by inode: once the log
 * has rotated (at 64 KiB, or at 8 KiB once 5 minutes old: every few dozen
 * changes), it pushes the STATUS of other mailboxes only from its own
 * check every mailbox_idle_check_interval (30 s by default), until NOTIFY
 * is set again. The change that rotates the log is written to the new
 * one, so it comes that late (trial O: 6 to 27 s). After a pushed change
 * NOTIFY is set again, once the pushes have been quiet for
 * NOTIFY_QUIET_USEC but no sooner than NOTIFY_RESET_GAP after the last
 * time: what came meanwhile is in the STATUS of each mailbox that NOTIFY
 * SET STATUS returns. Nothing is sent while nothing changes. */
#define NOTIFY_QUIET_USEC (USEC_PER_SEC / 2)
#define NOTIFY_RESET_GAP (5 * USEC_PER_SEC)
#ifndef MAILWATCH_VERSION
#define MAILWATCH_VERSION "unknown"
#endif
/* Patterns in one LIST-EXTENDED command: a command line of a few KiB. */
#define LIST_CHUNK 50
/* Without LIST-EXTENDED, more patterns than this are one LIST of "*"
 * (the caller matches what it gets) rather than a LIST each. */
#define LIST_EACH_MAX 8

enum state {
	S_GREETING,     /* waiting for the server's greeting */
	S_CAPABILITY,   /* CAPABILITY before login */
	S_STARTTLS,     /* STARTTLS sent */
	S_TLS,          /* handshake under way in the transport */
	S_LOGIN,        /* AUTHENTICATE or LOGIN sent */
	S_CAPABILITY2,  /* CAPABILITY after login */
	S_ENABLE,       /* ENABLE QRESYNC or CONDSTORE sent */
	S_EXAMINE,      /* EXAMINE sent */
	S_FIND_UIDNEXT, /* FETCH * (UID) for a server without UIDNEXT */
	S_FLAGS,        /* UID FETCH <known UIDs> (UID FLAGS) sent */
	S_DATES,        /* the date scan (send_dates()) sent or due */
	S_FETCH,        /* UID FETCH of new messages sent */
	S_IDLE_START,   /* IDLE sent, waiting for "+" */
	S_IDLE,         /* in IDLE */
	S_IDLE_DONE,    /* DONE sent to refresh IDLE */
	S_POLL_WAIT,    /* no IDLE: waiting to send NOOP */
	S_NOOP,         /* NOOP sent */
	S_READY,        /* fetch mode: waiting for the owner's next command */
	S_CHECKING,     /* fetch mode: STATUS commands sent */
	S_LOGOUT,       /* LOGOUT sent */
	S_DEAD,         /* failed or logged out; ignores input */
};

static const char *const state_names[] = {
	[S_GREETING] = "greeting",     [S_CAPABILITY] = "capability",
	[S_STARTTLS] = "starttls",     [S_TLS] = "tls-handshake",
	[S_LOGIN] = "login",           [S_CAPABILITY2] = "capability",
	[S_ENABLE] = "enable",
	[S_EXAMINE] = "examine",       [S_FIND_UIDNEXT] = "find-uidnext",
	[S_FLAGS] = "flags",
	[S_DATES] = "dates",
	[S_FETCH] = "fetch",           [S_IDLE_START] = "idle-start",
	[S_IDLE] = "idle",             [S_IDLE_DONE] = "idle-done",
	[S_POLL_WAIT] = "poll-wait",   [S_NOOP] = "noop",
	[S_READY] = "ready",           [S_CHECKING] = "checking",
	[S_LOGOUT] = "logout",         [S_DEAD] = "dead",
};

/* What a tagged command was, to act on its completion. */
enum cmd {
	CMD_CAPABILITY,
	CMD_STARTTLS,
	CMD_LOGIN,
	CMD_ID,
	CMD_NOTIFY,
	CMD_ENABLE,
	CMD_NOTIFY_NONE,
	CMD_EXAMINE,
	CMD_UNSEEN,
	CMD_STATUS,
	CMD_LIST,
	CMD_FIND_UIDNEXT,
	CMD_FLAGS,
	CMD_DATES,
	CMD_FETCH,
	CMD_VOID,	/* a UID FETCH whose answers are ignored */
	CMD_IDLE,
	CMD_NOOP,
	CMD_CLOSE,
	CMD_LOGOUT,
};

/* What the server did not answer, for a timeout's log line (a trial read
 * "state idle-done" in the status line). */
static const char *const cmd_words[] = {
    [CMD_CAPABILITY] = "CAPABILITY", [CMD_STARTTLS] = "STARTTLS",
    [CMD_LOGIN] = "the login",	     [CMD_ID] = "ID",
    [CMD_NOTIFY] = "NOTIFY",	     [CMD_ENABLE] = "ENABLE",
    [CMD_NOTIFY_NONE] = "NOTIFY",    [CMD_EXAMINE] = "EXAMINE",
    [CMD_UNSEEN] = "SEARCH",	     [CMD_STATUS] = "STATUS",
    [CMD_LIST] = "LIST",	     [CMD_FIND_UIDNEXT] = "FETCH",
    [CMD_FLAGS] = "UID FETCH",	     [CMD_DATES] = "FETCH",
    [CMD_FETCH] = "UID FETCH",	     [CMD_VOID] = "UID FETCH",
    [CMD_IDLE] = "IDLE's DONE",	     [CMD_NOOP] = "NOOP",
    [CMD_CLOSE] = "CLOSE",	     [CMD_LOGOUT] = "LOGOUT",
};

struct pending {
	unsigned tag;
	enum cmd cmd;
	uint64_t deadline; /* usec; 0 for IDLE, which has none */
	unsigned timeout;  /* seconds the deadline allowed, for the log */
	char *mailbox;     /* STATUS: the mailbox asked about; owned */
};

struct session {
	struct session_opts o;
	struct session_cb cb;
	void *ud;
	enum state state;
	/* The mailbox selected or being selected (UTF-8, owned); NULL in
	 * fetch mode before the first session_examine(). */
	char *mailbox;
	bool fetch_mode;      /* no mailbox of its own: see session.h */
	struct codec codec;
	struct codec_buf out;  /* may be sent now */
	struct codec_buf held; /* after a sync literal: waits for "+" */

	unsigned next_tag;
	struct pending *pending; /* oldest first */
	unsigned n_pending, cap_pending;

	/* Capabilities from the last CAPABILITY response or code. */
	bool have_caps, cap_idle, cap_starttls, cap_logindisabled;
	bool cap_auth_plain, cap_sasl_ir, cap_notify, cap_esearch;
	bool cap_condstore, cap_qresync;
	/* What ENABLE turned on (RFC 7162); enable_sent: asked once. */
	bool enable_sent, condstore_on, qresync_on;
	/* The EXAMINE under way carried the known UIDs (QRESYNC), and the
	 * [HIGHESTMODSEQ] it reported. */
	bool qresync_sent;
	uint64_t highestmodseq;
	bool cap_oauthbearer, cap_xoauth2;
	/* The login under way: how (never AUTH_AUTO), whether the client's
	 * response went, and what the server's error challenge said. */
	enum auth_mech mech;
	bool response_sent;
	struct sasl_error token_error;
	bool cap_list_extended, cap_list_status, cap_special_use;
	bool list_ok;         /* no LIST of the current session_list() was
				 refused */
	bool renotify;        /* others changed, or renotify_at came:
				 NOTIFY SET again before the next IDLE */
	/* When NOTIFY was last set, and when to set it again after a push
	 * (NOTIFY_RESET_GAP); 0: not due. */
	uint64_t notify_set_at;
	uint64_t renotify_at;

	/* NOTIFY is set: new mail in the selected mailbox comes with its
	 * envelope; awaiting counts the messages an EXISTS announced whose
	 * FETCH has not come yet (asked for after NOTIFY_GRACE). */
	bool notify_on;
	uint32_t awaiting;
	bool headers_due;     /* a pushed FETCH was skipped: its headers are
				 fetched before the next IDLE */
	bool pushed;          /* pushed mail reported, its batch_end due at
				 the end of the read: what came together is
				 one batch */
	uint64_t refresh_at;  /* usec: when IDLE is renewed */

	uint32_t uidvalidity, uidnext, exists;
	bool have_uidnext;
	/* The unseen messages of the selected mailbox, from SEARCH UNSEEN
	 * after EXAMINE, then kept up with flags and expunges: by UID with
	 * QRESYNC (which reports expunges by UID, VANISHED), else by
	 * sequence number. */
	struct unseen unseen;
	bool unseen_by_uid;
	uint32_t fetch_from;  /* first UID not yet reported */
	/* session_examine() sent the UID FETCH from this UID with its
	 * EXAMINE; 0: none, or selected() has decided on it. */
	uint32_t early_from;
	uint32_t batch_from;  /* fetch_from when the fetch was sent */
	bool dates_due;       /* the date scan waits for SEARCH UNSEEN */
	bool fetch_again;     /* EXISTS arrived while a fetch was under way */
	/* Sequence numbers of messages whose FETCH response was skipped as
	 * over the limits, to fetch again with HEADERS_ONLY; headers_only is
	 * true while that fetch is under way, and a message leaves the list
	 * when its answer is reported. */
	uint32_t skipped[MAX_SKIPPED];
	unsigned n_skipped;
	bool headers_only;
	bool reached_idle;
	uint64_t timer;       /* greeting deadline, idle refresh or poll
				 time, usec; 0 none */
	uint64_t now;         /* time of the current call */
	/* The -v trace of server lines: the start of the current line, which
	 * may arrive over several reads. */
	char trace[TRACE_MAX + 1];
	size_t trace_len;
};

/* True once EXAMINE completed, until LOGOUT: the states between, in the
 * order of enum state. */
static bool
is_selected(const struct session *s)
{
	return s->state >= S_FIND_UIDNEXT && s->state <= S_NOOP;
}

/* Moves to state to; a dead session stays dead, so that code running on
 * after a failure changes nothing. */
static void
set_state(struct session *s, enum state to)
{
	if (s->state == to || s->state == S_DEAD)
		return;
	log_debug(s->o.log, "session: %s -> %s", state_names[s->state],
		  state_names[to]);
	s->state = to;
}

static void
fail(struct session *s, enum session_fail why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void leave_idle(struct session *s, bool fetch);
static bool is_pending(const struct session *s, enum cmd cmd);
static void start_from(struct session *s, uint32_t uid);

static void
fail(struct session *s, enum session_fail why, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (s->state == S_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_state(s, S_DEAD);
	while (s->n_pending)
		free(s->pending[--s->n_pending].mailbox);
	s->timer = 0;
	s->cb.failed(s->ud, why, msg);
}

/* Moves the bytes of an encoded command into the output, holding back what
 * follows a sync literal until the server's "+". */
static void
queue(struct session *s, struct codec_buf *cmd)
{
	size_t sendable = cmd->n_splits && !s->held.len ? cmd->splits[0]
							: cmd->len;

	if (s->state == S_DEAD)
		return;
	if (s->held.len) {
		/* Already waiting for a "+": keep the order. */
		size_t base = s->held.len;

		codec_buf_add(&s->held, cmd->data, cmd->len);
		for (unsigned i = 0; i < cmd->n_splits &&
				     s->held.n_splits < CODEC_MAX_SPLITS;
		     i++)
			s->held.splits[s->held.n_splits++] =
				base + cmd->splits[i];
		return;
	}
	codec_buf_add(&s->out, cmd->data, sendable);
	if (sendable < cmd->len) {
		codec_buf_add(&s->held, cmd->data + sendable,
			      cmd->len - sendable);
		for (unsigned i = 1; i < cmd->n_splits; i++)
			s->held.splits[s->held.n_splits++] =
				cmd->splits[i] - sendable;
	}
}

/* Releases held bytes up to the next sync literal after a "+". */
static bool
release_held(struct session *s)
{
	size_t n;

	if (!s->held.len)
		return false;
	n = s->held.n_splits ? s->held.splits[0] : s->held.len;
	codec_buf_add(&s->out, s->held.data, n);
	codec_buf_consume(&s->held, n);
	return true;
}

/* Starts a tagged command: writes "mN " into a scratch buffer the caller
 * fills, and records what to do on completion. Returns the tag text. When
 * too many commands are unanswered the session fails instead, and what
 * the caller then queues is dropped (queue() and set_state() ignore a dead
 * session). */
static const char *
begin(struct session *s, enum cmd cmd, char tag[static 16])
{
	struct pending *p;

	snprintf(tag, 16, "m%u", ++s->next_tag);
	if (s->state == S_DEAD)
		return tag;
	if (s->n_pending == MAX_PENDING) {
		fail(s, SESSION_FAIL_PROTOCOL,
		     "server left %u commands unanswered", MAX_PENDING);
		return tag;
	}
	if (s->n_pending == s->cap_pending) {
		s->cap_pending = s->cap_pending ? 2 * s->cap_pending : 4;
		s->pending = xrealloc(s->pending,
				      s->cap_pending * sizeof(*s->pending));
	}
	p = &s->pending[s->n_pending++];
	p->tag = s->next_tag;
	p->cmd = cmd;
	p->timeout = s->o.command_timeout;
	p->mailbox = NULL;
	p->deadline = cmd == CMD_IDLE ? 0 : s->now + p->timeout * USEC_PER_SEC;
	return tag;
}

/* The SASL mechanism of an OAuth2 login. */
static enum sasl_mech
sasl_mech(const struct session *s)
{
	return s->mech == AUTH_OAUTHBEARER ? SASL_OAUTHBEARER : SASL_XOAUTH2;
}

static bool
is_oauth2(const struct session *s)
{
	return s->mech == AUTH_OAUTHBEARER || s->mech == AUTH_XOAUTH2;
}

/* Logs an outgoing command for the protocol trace; credentials are never
 * in what it logs. */
static void
trace_out(struct session *s, const struct codec_buf *b, enum cmd cmd)
{
	int n;

	if (log_max_level < LOG_DEBUG)
		return;
	n = (int)b->len;
	while (n > 0 && (b->data[n - 1] == '\n' || b->data[n - 1] == '\r'))
		n--;
	if (cmd == CMD_LOGIN && s->mech == AUTH_LOGIN)
		log_debug(s->o.log, "C: m%u <login, credentials redacted>",
			  s->next_tag);
	else if (cmd == CMD_LOGIN)
		log_debug(s->o.log,
			  "C: m%u <login AUTHENTICATE %s, credentials "
			  "redacted>",
			  s->next_tag,
			  s->mech == AUTH_PLAIN ? "PLAIN"
						: sasl_mech_name(sasl_mech(s)));
	else
		log_debug(s->o.log, "C: %.*s", n > 200 ? 200 : n, b->data);
}

static void
send_simple(struct session *s, enum cmd cmd, const char *verb)
{
	struct codec_buf b;
	char tag[16];

	codec_buf_init(&b);
	codec_enc_simple(&b, begin(s, cmd, tag), verb);
	trace_out(s, &b, cmd);
	queue(s, &b);
	codec_buf_finish(&b);
}

/* Sends the login s->mech chose, the credentials inline where the server
 * offers SASL-IR. */
static void
send_login(struct session *s)
{
	struct codec_buf b;
	char tag[16];

	codec_buf_init(&b);
	b.literal_plus = s->out.literal_plus;
	begin(s, CMD_LOGIN, tag);
	s->response_sent = s->cap_sasl_ir;
	memset(&s->token_error, 0, sizeof(s->token_error));
	switch (s->mech) {
	case AUTH_PLAIN:
		codec_enc_authenticate_plain(&b, tag, s->o.username,
					     s->o.password, s->cap_sasl_ir);
		break;
	case AUTH_OAUTHBEARER:
	case AUTH_XOAUTH2:
		codec_buf_addstr(&b, tag);
		codec_buf_addstr(&b, " AUTHENTICATE ");
		codec_buf_addstr(&b, sasl_mech_name(sasl_mech(s)));
		if (s->cap_sasl_ir) {
			codec_buf_addstr(&b, " ");
			sasl_oauth_response(&b, sasl_mech(s), s->o.username,
					    s->o.password);
		}
		codec_buf_addstr(&b, "\r\n");
		break;
	default:
		codec_enc_login(&b, tag, s->o.username, s->o.password);
		break;
	}
	trace_out(s, &b, CMD_LOGIN);
	queue(s, &b);
	wipe(b.data, b.len);
	codec_buf_finish(&b);
	set_state(s, S_LOGIN);
}

/* The ranges of v[0..n) (ascending) into r, at most max of them;
 * returns how many, or 0 when more would be needed. */
static size_t
to_ranges(const uint32_t *v, size_t n, struct codec_range *r, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k && r[k - 1].hi < UINT32_MAX && v[i] == r[k - 1].hi + 1)
			r[k - 1].hi = v[i];
		else if (k == max)
			return 0;
		else
			r[k++] = (struct codec_range){v[i], v[i]};
	}
	return k;
}

/* Appends the ranges of uids[0..n) (ascending) to b as a sequence set;
 * r has room for n. */
static void
add_uid_set(struct codec_buf *b, const uint32_t *uids, size_t n,
	    struct codec_range *r)
{
	codec_enc_seqset(b, r, to_ranges(uids, n, r, n));
}

/* EXAMINE, with QRESYNC enabled and the owner knowing what it announced
 * there: "(QRESYNC (uidvalidity modseq known-uids))", so that the server
 * reports only their changes since (RFC 7162 section 3.2.5). */
static void
send_examine(struct session *s)
{
	struct codec_buf b;
	char tag[16], num[48];
	uint32_t uids[SESSION_MAX_KNOWN], uidvalidity = 0;
	struct codec_range r[SESSION_MAX_KNOWN];
	uint64_t modseq = 0;
	size_t n = 0;

	if (s->qresync_on && s->cb.known)
		n = s->cb.known(s->ud, uids, SESSION_MAX_KNOWN, &uidvalidity,
				&modseq);
	s->qresync_sent = n && uidvalidity && modseq;
	codec_buf_init(&b);
	b.literal_plus = s->out.literal_plus;
	codec_buf_addstr(&b, begin(s, CMD_EXAMINE, tag));
	codec_buf_addstr(&b, " EXAMINE ");
	codec_enc_mailbox(&b, s->mailbox);
	if (s->qresync_sent) {
		snprintf(num, sizeof(num), " (QRESYNC (%u %llu ", uidvalidity,
			 (unsigned long long)modseq);
		codec_buf_addstr(&b, num);
		add_uid_set(&b, uids, n, r);
		codec_buf_addstr(&b, "))");
	}
	codec_buf_addstr(&b, "\r\n");
	trace_out(s, &b, CMD_EXAMINE);
	queue(s, &b);
	codec_buf_finish(&b);
	unseen_forget(&s->unseen);
	s->unseen_by_uid = s->qresync_on;
	/* In the same write: its answer comes before anything the
	 * session sends once the EXAMINE completed. ESEARCH (RFC 4731)
	 * answers with ranges: short however many are unseen. */
	if (!s->fetch_mode && s->cb.unseen) {
		static const char *const verb[2][2] = {
			{"SEARCH UNSEEN", "SEARCH RETURN (ALL) UNSEEN"},
			{"UID SEARCH UNSEEN", "UID SEARCH RETURN (ALL) UNSEEN"},
		};

		send_simple(s, CMD_UNSEEN,
			    verb[s->unseen_by_uid][s->cap_esearch]);
	}
	s->have_uidnext = false;
	s->uidvalidity = 0;
	s->highestmodseq = 0;
	s->exists = 0;
	s->awaiting = 0;
	set_state(s, S_EXAMINE);
}

/* Without QRESYNC's parameter: the flags of the messages the owner
 * follows, to learn which were read or deleted (not returned) and their
 * sequence numbers on this connection. Returns false when there are
 * none. */
static bool
send_known_flags(struct session *s)
{
	uint32_t uids[SESSION_MAX_KNOWN], uidvalidity;
	struct codec_range r[SESSION_MAX_KNOWN];
	struct codec_buf b;
	uint64_t modseq;
	char tag[16];
	size_t n;

	if (!s->cb.known || !s->exists)
		return false;
	n = s->cb.known(s->ud, uids, SESSION_MAX_KNOWN, &uidvalidity, &modseq);
	if (!n)
		return false;
	codec_buf_init(&b);
	codec_buf_addstr(&b, begin(s, CMD_FLAGS, tag));
	codec_buf_addstr(&b, " UID FETCH ");
	add_uid_set(&b, uids, n, r);
	codec_buf_addstr(&b, " (UID FLAGS)\r\n");
	trace_out(s, &b, CMD_FLAGS);
	queue(s, &b);
	codec_buf_finish(&b);
	set_state(s, S_FLAGS);
	return true;
}

/* NOTIFY SET STATUS for the selected mailbox and the others to follow,
 * sent before the EXAMINE: the server answers with a STATUS of each. In
 * fetch mode, the others alone: what it EXAMINEs is caught up and closed
 * at once, and what arrives meanwhile comes with the EXAMINE's answers
 * (Dovecot pushes nothing of the selected mailbox but under the selected
 * filter). */
static void
send_notify(struct session *s)
{
	size_t n = s->o.n_others < NOTIFY_MAX_NAMES ? s->o.n_others
						    : NOTIFY_MAX_NAMES;
	struct codec_buf b;
	char tag[16];

	s->notify_set_at = s->now;
	s->renotify_at = 0;
	codec_buf_init(&b);
	b.literal_plus = s->out.literal_plus;
	codec_buf_addstr(&b, begin(s, CMD_NOTIFY, tag));
	codec_buf_addstr(&b, " NOTIFY SET STATUS");
	if (!s->fetch_mode)
		codec_buf_addstr(&b, " " NOTIFY_SELECTED);
	if (n) {
		codec_buf_addstr(&b, " (mailboxes (");
		for (size_t i = 0; i < n; i++) {
			if (i)
				codec_buf_addstr(&b, " ");
			codec_enc_mailbox(&b, s->o.others[i]);
		}
		codec_buf_addstr(&b, ") (" NOTIFY_OTHERS "))");
	}
	if (s->o.mailbox_names)
		codec_buf_addstr(&b,
				 " (personal (" NOTIFY_OTHERS " MailboxName))");
	else if (n)
		codec_buf_addstr(&b, " (personal (" NOTIFY_OTHERS "))");
	codec_buf_addstr(&b, "\r\n");
	trace_out(s, &b, CMD_NOTIFY);
	queue(s, &b);
	codec_buf_finish(&b);
}

/* NOTIFY NONE, then NOTIFY SET again (renotify). NOTIFY NONE first:
 * Dovecot 2.3 sends no MailboxName event after a NOTIFY SET that replaced
 * another. */
static void
notify_again(struct session *s)
{
	s->renotify = false;
	send_simple(s, CMD_NOTIFY_NONE, "NOTIFY NONE");
	send_notify(s);
}

/* One LIST of patterns[0..n): LIST-EXTENDED's form where offered. */
static void
send_list(struct session *s, const char *const *patterns, size_t n,
	  bool status)
{
	struct codec_buf b;
	char tag[16];
	bool special = s->cap_list_extended && s->cap_special_use;

	status = status && s->cap_list_status;
	codec_buf_init(&b);
	b.literal_plus = s->out.literal_plus;
	codec_buf_addstr(&b, begin(s, CMD_LIST, tag));
	codec_buf_addstr(&b, " LIST \"\" ");
	if (s->cap_list_extended)
		codec_buf_addstr(&b, "(");
	for (size_t i = 0; i < n; i++) {
		if (i)
			codec_buf_addstr(&b, " ");
		codec_enc_mailbox(&b, patterns[i]);
	}
	if (s->cap_list_extended)
		codec_buf_addstr(&b, ")");
	if (special || status)
		codec_buf_addstr(&b, " RETURN (");
	if (special)
		codec_buf_addstr(&b, status ? "SPECIAL-USE " : "SPECIAL-USE");
	if (status)
		codec_buf_addstr(&b, "STATUS (" STATUS_ITEMS ")");
	if (special || status)
		codec_buf_addstr(&b, ")");
	codec_buf_addstr(&b, "\r\n");
	trace_out(s, &b, CMD_LIST);
	queue(s, &b);
	codec_buf_finish(&b);
}

static void
queue_fetch(struct session *s)
{
	struct codec_range r = {s->fetch_from, UINT32_MAX};
	struct codec_buf b;
	char tag[16];

	codec_buf_init(&b);
	/* INTERNALDATE tells a catch-up's mail that came before a gap or
	 * since a time from the rest (mailbox.h). */
	codec_enc_uid_fetch(&b, begin(s, CMD_FETCH, tag), &r, 1,
			    "(UID FLAGS INTERNALDATE ENVELOPE)");
	trace_out(s, &b, CMD_FETCH);
	queue(s, &b);
	codec_buf_finish(&b);
	s->fetch_again = false;
	s->awaiting = 0;
	s->batch_from = s->fetch_from;
	s->headers_only = false;
	s->n_skipped = 0;
}

/* UID FETCH fetch_from:* of the new messages' envelopes. */
static void
send_fetch(struct session *s)
{
	queue_fetch(s);
	set_state(s, S_FETCH);
}

/* The UID FETCH that session_examine() sent with its EXAMINE is not the
 * one selected() wants: its answers, which come before those of any
 * command sent from now on, are ignored (CMD_VOID). */
static void
void_early_fetch(struct session *s)
{
	for (unsigned i = 0; s->early_from && i < s->n_pending; i++)
		if (s->pending[i].cmd == CMD_FETCH)
			s->pending[i].cmd = CMD_VOID;
	s->early_from = 0;
}

/* The date scan: the UID, FLAGS and INTERNALDATE of each message that
 * may be new, for the owner to find where the new mail starts (a few
 * dozen bytes each, no envelopes). Only unseen messages can be: once
 * SEARCH UNSEEN has answered, those alone (in up to DATES_RANGES
 * ranges), else all. */
static void
send_dates(struct session *s)
{
	struct codec_range all = {1, UINT32_MAX}, *r = &all;
	const struct unseen *u = &s->unseen;
	struct codec_buf b;
	size_t n = 1;
	char tag[16];

	set_state(s, S_DATES);
	if (is_pending(s, CMD_UNSEEN)) {
		s->dates_due = true; /* at its answer */
		return;
	}
	if (u->known && !u->n) {
		start_from(s, s->cb.dated_end(s->ud));
		return;
	}
	if (u->known) {
		r = xmalloc(DATES_RANGES * sizeof(*r));
		n = to_ranges(u->seq, u->n, r, DATES_RANGES);
		if (!n) { /* too many: all */
			free(r);
			r = &all;
			n = 1;
		}
	}
	codec_buf_init(&b);
	codec_buf_addstr(&b, begin(s, CMD_DATES, tag));
	/* The unseen set is of UIDs or of this connection's sequence
	 * numbers. */
	codec_buf_addstr(&b, r == &all || s->unseen_by_uid ? " UID FETCH "
							   : " FETCH ");
	codec_enc_seqset(&b, r, n);
	codec_buf_addstr(&b, " (UID FLAGS INTERNALDATE)\r\n");
	trace_out(s, &b, CMD_DATES);
	queue(s, &b);
	codec_buf_finish(&b);
	if (r != &all)
		free(r);
}

/* Fetches the messages in skipped[] again, their header fields only. */
static void
send_headers_fetch(struct session *s)
{
	struct codec_range r[MAX_SKIPPED];
	struct codec_buf b;
	char tag[16];

	for (unsigned i = 0; i < s->n_skipped; i++)
		r[i] = (struct codec_range){s->skipped[i], s->skipped[i]};
	codec_buf_init(&b);
	codec_buf_addstr(&b, begin(s, CMD_FETCH, tag));
	codec_buf_addstr(&b, " FETCH ");
	codec_enc_seqset(&b, r, s->n_skipped);
	codec_buf_addstr(&b, " " HEADERS_ONLY "\r\n");
	trace_out(s, &b, CMD_FETCH);
	queue(s, &b);
	codec_buf_finish(&b);
	s->headers_only = true;
}

/* In IDLE with no FETCH awaited: when to renew it, or to set NOTIFY
 * again after pushes, whichever comes first. */
static uint64_t
idle_timer(const struct session *s)
{
	return s->renotify_at && s->renotify_at < s->refresh_at
		       ? s->renotify_at
		       : s->refresh_at;
}

/* The FETCH of one message an EXISTS announced under NOTIFY came: once
 * none is awaited, the IDLE's next deadline is its renewal again. */
static void
pushed_arrived(struct session *s)
{
	if (s->awaiting && !--s->awaiting && s->state == S_IDLE)
		s->timer = idle_timer(s);
}

/* A response the codec skipped as over its limits. In a fetch, a
 * message's: it is fetched again with its header fields only. A command's
 * completion cannot be skipped: that ends the session. */
static void
on_skipped(struct session *s, const struct codec_response *r)
{
	int64_t seq = r->u.skipped.number;
	/* New mail pushed under NOTIFY, outside a fetch of ours. */
	bool pushed = s->notify_on && is_selected(s) && s->state != S_FETCH &&
		      s->state != S_DATES;

	if (r->tag.len) {
		fail(s, SESSION_FAIL_PROTOCOL, "reply to a command over the "
					       "limits: %s",
		     r->text.ptr);
		return;
	}
	if ((s->state != S_FETCH && !pushed) ||
	    strcmp(r->u.skipped.keyword.ptr, "FETCH") || seq < 1 ||
	    seq > UINT32_MAX) {
		log_warn(s->o.log, "skipped a server response (%s): %s",
			 r->u.skipped.keyword.ptr, r->text.ptr);
		return;
	}
	if (pushed)
		pushed_arrived(s);
	if ((s->state == S_FETCH && s->headers_only) ||
	    s->n_skipped == MAX_SKIPPED) {
		log_warn(s->o.log, "message %lld: even its header fields are "
				   "over the limits (%s); not announced",
			 (long long)seq, r->text.ptr);
		return;
	}
	log_warn(s->o.log, "message %lld: its FETCH response is over the "
			   "limits (%s); fetching From, Subject, Date and "
			   "Message-ID only",
		 (long long)seq, r->text.ptr);
	s->skipped[s->n_skipped++] = (uint32_t)seq;
	if (pushed) {
		/* Fetched before the next IDLE (watch()). */
		s->headers_due = true;
		if (s->state == S_IDLE)
			leave_idle(s, false);
	}
}

/* Takes seq out of skipped[]; false when it was not there. */
static bool
skipped_take(struct session *s, uint32_t seq)
{
	for (unsigned i = 0; i < s->n_skipped; i++) {
		if (s->skipped[i] == seq) {
			s->skipped[i] = s->skipped[--s->n_skipped];
			return true;
		}
	}
	return false;
}

/* An EXPUNGE renumbers the messages waiting in skipped[]. */
static void
skipped_expunge(struct session *s, uint32_t seq)
{
	unsigned j = 0;

	for (unsigned i = 0; i < s->n_skipped; i++) {
		if (s->skipped[i] == seq)
			continue;
		s->skipped[j++] = s->skipped[i] - (s->skipped[i] > seq);
	}
	s->n_skipped = j;
}

static bool
is_pending(const struct session *s, enum cmd cmd)
{
	for (unsigned i = 0; i < s->n_pending; i++)
		if (s->pending[i].cmd == cmd)
			return true;
	return false;
}

/* Gives the pending command cmd timeout seconds from now. */
static void
set_timeout(struct session *s, enum cmd cmd, unsigned timeout)
{
	for (unsigned i = 0; i < s->n_pending; i++) {
		if (s->pending[i].cmd == cmd) {
			s->pending[i].timeout = timeout;
			s->pending[i].deadline = s->now + timeout * USEC_PER_SEC;
		}
	}
}

/* Leaves IDLE: DONE, and the UID FETCH in the same write when new mail is
 * the reason, so the server gets both in one packet. */
static void
leave_idle(struct session *s, bool fetch)
{
	struct codec_buf b;

	codec_buf_init(&b);
	codec_enc_done(&b);
	log_debug(s->o.log, "C: DONE");
	queue(s, &b);
	codec_buf_finish(&b);
	s->timer = 0;
	/* From now on the IDLE must complete in time: an unanswered DONE
	 * is how a dead connection shows. */
	set_timeout(s, CMD_IDLE, s->o.command_timeout);
	if (fetch && !s->headers_due) {
		send_fetch(s);
		return;
	}
	/* Skipped pushed messages first: watch() orders the two. */
	s->fetch_again = s->fetch_again || fetch;
	set_state(s, S_IDLE_DONE);
}

/* Fetch mode: nothing under way. A NOOP every idle_timeout keeps the
 * server from logging the connection out; with NOTIFY, NOTIFY SET again
 * does (session_timeout()), as at an IDLE renewal. */
static void
go_ready(struct session *s)
{
	set_state(s, S_READY);
	if (s->renotify)
		notify_again(s);
	s->refresh_at = s->now + s->o.idle_timeout * USEC_PER_SEC;
	s->timer = idle_timer(s);
	s->reached_idle = true;
	if (s->cb.ready)
		s->cb.ready(s->ud);
}

/* Goes to IDLE, or to the poll wait without IDLE; in fetch mode, to
 * ready. */
static void
watch(struct session *s)
{
	if (s->headers_due) {
		/* Skipped pushed messages (on_skipped), any UID, before
		 * what came after them (fetch_again). */
		s->headers_due = false;
		s->batch_from = 0;
		send_headers_fetch(s);
		set_state(s, S_FETCH);
		return;
	}
	if (s->fetch_again) {
		send_fetch(s);
		return;
	}
	if (s->fetch_mode) {
		/* Leaves the mailbox: a server answers STATUS of the selected
		 * one from the view it last synced (Dovecot: "[CLIENTBUG]
		 * Status on selected mailbox"), which would hide what
		 * changes there from the next checks. CLOSE after EXAMINE
		 * expunges nothing (RFC 3501 section 6.4.2). */
		send_simple(s, CMD_CLOSE, "CLOSE");
		go_ready(s); /* the next command need not wait for it */
		return;
	}
	/* Both complete before the IDLE's "+". */
	if (s->renotify)
		notify_again(s);
	if (s->cap_idle) {
		send_simple(s, CMD_IDLE, "IDLE");
		set_state(s, S_IDLE_START);
		return;
	}
	s->timer = s->now + s->o.poll_interval * USEC_PER_SEC;
	set_state(s, S_POLL_WAIT);
	if (!s->reached_idle) {
		log_info(s->o.log, "server has no IDLE: polling every %u s",
			 s->o.poll_interval);
	}
	s->reached_idle = true;
	s->cb.idle(s->ud);
}

static void
take_capabilities(struct session *s, const struct codec_strlist *l)
{
	s->have_caps = true;
	s->cap_idle = codec_strlist_has(l, "IDLE");
	s->cap_starttls = codec_strlist_has(l, "STARTTLS");
	s->cap_logindisabled = codec_strlist_has(l, "LOGINDISABLED");
	s->cap_auth_plain = codec_strlist_has(l, "AUTH=PLAIN");
	s->cap_sasl_ir = codec_strlist_has(l, "SASL-IR");
	s->cap_notify = codec_strlist_has(l, "NOTIFY");
	s->cap_esearch = codec_strlist_has(l, "ESEARCH");
	/* QRESYNC implies CONDSTORE (RFC 7162 section 3.2.3). */
	s->cap_qresync = codec_strlist_has(l, "QRESYNC");
	s->cap_condstore = codec_strlist_has(l, "CONDSTORE") || s->cap_qresync;
	s->cap_oauthbearer = codec_strlist_has(l, "AUTH=OAUTHBEARER");
	s->cap_xoauth2 = codec_strlist_has(l, "AUTH=XOAUTH2");
	s->cap_list_extended = codec_strlist_has(l, "LIST-EXTENDED");
	s->cap_list_status = codec_strlist_has(l, "LIST-STATUS");
	s->cap_special_use = codec_strlist_has(l, "SPECIAL-USE");
	s->out.literal_plus = codec_strlist_has(l, "LITERAL+");
}

/* Sets s->mech from opts.auth and what the server offers. Returns 0, or
 * -1 after failing the session when nothing fits (not retried: the
 * server will not change its mind). */
static int
choose_mech(struct session *s)
{
	switch (s->o.auth) {
	case AUTH_AUTO:
		if (s->o.oauth2 && (s->cap_oauthbearer || s->cap_xoauth2)) {
			s->mech = s->cap_oauthbearer ? AUTH_OAUTHBEARER
						     : AUTH_XOAUTH2;
			return 0;
		}
		if (s->o.oauth2) {
			fail(s, SESSION_FAIL_TLS,
			     "server offers neither AUTH=OAUTHBEARER nor "
			     "AUTH=XOAUTH2, which a token needs");
			return -1;
		}
		if (!s->cap_auth_plain && s->cap_logindisabled) {
			/* In the clear (tls = none) it wants STARTTLS
			 * first (trial AA). */
			fail(s, SESSION_FAIL_TLS,
			     "server allows no login mechanism mailwatch has "
			     "(LOGINDISABLED and no AUTH=PLAIN)%s",
			     s->cap_starttls ? "; it offers STARTTLS: set "
					       "tls = starttls"
					     : "");
			return -1;
		}
		s->mech = s->cap_auth_plain ? AUTH_PLAIN : AUTH_LOGIN;
		return 0;
	case AUTH_PLAIN:
	case AUTH_OAUTHBEARER:
	case AUTH_XOAUTH2: {
		static const char *const names[] = {
			[AUTH_PLAIN] = "PLAIN",
			[AUTH_OAUTHBEARER] = "OAUTHBEARER",
			[AUTH_XOAUTH2] = "XOAUTH2",
		};
		bool offered = s->o.auth == AUTH_PLAIN	     ? s->cap_auth_plain
			       : s->o.auth == AUTH_XOAUTH2 ? s->cap_xoauth2
							   : s->cap_oauthbearer;

		if (!offered) {
			fail(s, SESSION_FAIL_TLS,
			     "server does not offer AUTH=%s, which auth = "
			     "%s asks for; not logging in",
			     names[s->o.auth], names[s->o.auth]);
			return -1;
		}
		s->mech = s->o.auth;
		return 0;
	}
	case AUTH_LOGIN:
		if (s->cap_logindisabled) {
			fail(s, SESSION_FAIL_TLS,
			     "server does not allow LOGIN (LOGINDISABLED), "
			     "which auth = login asks for; not logging in");
			return -1;
		}
		s->mech = AUTH_LOGIN;
		return 0;
	}
	return -1;
}

/* With capabilities known before login: STARTTLS or authenticate. */
static void
pre_auth(struct session *s)
{
	if (!s->have_caps) {
		send_simple(s, CMD_CAPABILITY, "CAPABILITY");
		set_state(s, S_CAPABILITY);
		return;
	}
	if (s->o.starttls && s->state != S_TLS) {
		if (!s->cap_starttls) {
			fail(s, SESSION_FAIL_TLS,
			     "server does not offer STARTTLS, which tls = "
			     "starttls requires; not logging in");
			return;
		}
		send_simple(s, CMD_STARTTLS, "STARTTLS");
		set_state(s, S_STARTTLS);
		return;
	}
	if (choose_mech(s) < 0)
		return;
	send_login(s);
}

/* ID (RFC 2971) with mailwatch's name and version, pipelined with what
 * follows the login; its answer is only logged. */
static void
send_id(struct session *s)
{
	static const char *const kv[] = {
		"name", "mailwatch", "version", MAILWATCH_VERSION,
		"vendor", "mailwatch",
	};
	struct codec_buf b;
	char tag[16];

	codec_buf_init(&b);
	codec_enc_id(&b, begin(s, CMD_ID, tag), kv, 3);
	trace_out(s, &b, CMD_ID);
	queue(s, &b);
	codec_buf_finish(&b);
}

/* Logged in, with the capabilities known: EXAMINE the mailbox, with
 * NOTIFY SET before it when asked for and offered; in fetch mode, ready. */
static void
logged_in(struct session *s)
{
	if (!s->enable_sent && (s->cap_qresync || s->cap_condstore)) {
		struct codec_buf b;
		char tag[16];

		s->enable_sent = true;
		codec_buf_init(&b);
		codec_enc_enable(&b, begin(s, CMD_ENABLE, tag),
				 s->cap_qresync ? "QRESYNC" : "CONDSTORE");
		trace_out(s, &b, CMD_ENABLE);
		queue(s, &b);
		codec_buf_finish(&b);
		set_state(s, S_ENABLE);
		return;
	}
	if (s->o.notify && s->cap_notify)
		send_notify(s);
	else if (s->o.notify && s->cb.notify)
		s->cb.notify(s->ud, false);
	if (s->fetch_mode)
		go_ready(s);
	else
		send_examine(s);
}

static void
post_auth(struct session *s)
{
	if (s->cb.authenticated)
		s->cb.authenticated(s->ud);
	if (s->o.send_id)
		send_id(s);
	if (!s->have_caps) {
		send_simple(s, CMD_CAPABILITY, "CAPABILITY");
		set_state(s, S_CAPABILITY2);
		return;
	}
	logged_in(s);
}

/* Catches up from UID uid, or watches when there is nothing to fetch. */
static void
start_from(struct session *s, uint32_t uid)
{
	s->fetch_from = uid ? uid : 1;
	if (s->fetch_from < s->uidnext && s->exists > 0) {
		send_fetch(s);
		return;
	}
	/* In fetch mode, nothing to fetch ends the catch-up here (watching,
	 * the idle callback says it). */
	if (s->fetch_mode)
		s->cb.batch_end(s->ud);
	watch(s);
}

/* EXAMINE (and the UIDNEXT search, when needed) done: ask the owner where
 * to start, or to find that by date first; learn the flags of what it
 * follows unless QRESYNC told them; catch up or watch. */
static void
selected(struct session *s)
{
	bool by_date = false;
	struct session_selected sel = {
		.uidvalidity = s->uidvalidity,
		.uidnext = s->have_uidnext || s->exists ? s->uidnext : 0,
		.exists = s->exists,
		.highestmodseq = s->highestmodseq,
		.qresync = s->qresync_sent,
	};
	uint32_t uid = s->cb.selected(s->ud, &sel, &by_date);

	if (s->early_from && !by_date && uid == s->early_from &&
	    s->exists > 0 && uid < s->uidnext) {
		/* The UID FETCH that went with the EXAMINE is the catch-up. */
		s->early_from = 0;
		set_state(s, S_FETCH);
		return;
	}
	void_early_fetch(s);
	if (by_date && s->exists > 0) {
		send_dates(s);
		return;
	}
	if (by_date)
		uid = s->cb.dated_end(s->ud);
	s->fetch_from = uid ? uid : 1;
	if (s->qresync_sent || !send_known_flags(s))
		start_from(s, s->fetch_from);
}

/* Fetch mode: a STATUS or LIST was answered; ready once all are. */
static void
checked(struct session *s)
{
	if (s->state == S_CHECKING && !is_pending(s, CMD_STATUS) &&
	    !is_pending(s, CMD_LIST))
		go_ready(s);
}

/* "NO [LIMIT] text": the status, the response code's name and the text,
 * for log lines. */
static void
status_text(const struct codec_response *r, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s%s%s%s", codec_status_name(r->status),
		 r->code.name.len ? " [" : "", r->code.name.ptr,
		 r->code.name.len ? "]" : "", r->text.len ? " " : "",
		 r->text.ptr);
}

/* True when a NO to the login refuses the credentials themselves (RFC
 * 5530: a plain NO, [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED],
 * [EXPIRED]; or an [ALERT] the user has to read), which retrying cannot
 * fix. Other codes ([LIMIT], [UNAVAILABLE], ...) say "not now". */
static bool
refuses_credentials(const struct codec_response *r)
{
	static const char *const codes[] = {
		"AUTHENTICATIONFAILED",
		"AUTHORIZATIONFAILED",
		"EXPIRED",
	};

	if (r->code.kind == CODEC_CODE_NONE || r->code.kind == CODEC_CODE_ALERT)
		return true;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(r->code.name.ptr, codes[i]))
			return true;
	return false;
}

/* A tagged completion of command cmd; mailbox is the one a STATUS asked
 * about. */
static void
complete(struct session *s, enum cmd cmd, const char *mailbox,
	 const struct codec_response *r)
{
	char text[400];
	bool okay = r->status == CODEC_STATUS_OK;

	status_text(r, text, sizeof(text));
	if (r->code.kind == CODEC_CODE_CAPABILITY)
		take_capabilities(s, &r->code.u.list);

	switch (cmd) {
	case CMD_CAPABILITY:
		if (!okay)
			goto protocol;
		if (s->state == S_CAPABILITY)
			pre_auth(s);
		else if (s->state == S_CAPABILITY2)
			logged_in(s);
		break;
	case CMD_STARTTLS:
		if (!okay) {
			fail(s, SESSION_FAIL_TLS, "STARTTLS refused: %s",
			     text);
			break;
		}
		/* session_feed() starts the handshake once it knows that
		 * nothing followed this OK in the clear. */
		s->have_caps = false;
		set_state(s, S_TLS);
		break;
	case CMD_LOGIN:
		if (r->status == CODEC_STATUS_NO && refuses_credentials(r) &&
		    is_oauth2(s)) {
			fail(s, SESSION_FAIL_TOKEN,
			     "login as %s with %s failed: %s%s%s%s",
			     s->o.username, sasl_mech_name(sasl_mech(s)), text,
			     s->token_error.status[0] ? " (status " : "",
			     s->token_error.status,
			     s->token_error.status[0] ? ")" : "");
			break;
		}
		if (r->status == CODEC_STATUS_NO && refuses_credentials(r)) {
			bool plain = r->code.kind == CODEC_CODE_NONE ||
				     r->code.kind == CODEC_CODE_ALERT;

			fail(s, plain ? SESSION_FAIL_AUTH_PLAIN
				      : SESSION_FAIL_AUTH,
			     "login as %s failed: %s", s->o.username, text);
			break;
		}
		if (r->status == CODEC_STATUS_NO) {
			/* [LIMIT], [UNAVAILABLE], [INUSE], [SERVERBUG]...:
			 * the server cannot take us now; retried. */
			fail(s,
			     strcmp(r->code.name.ptr, "LIMIT")
				 ? SESSION_FAIL_REFUSED
				 : SESSION_FAIL_LIMIT,
			     "server refused the login for now: %s", text);
			break;
		}
		if (!okay)
			goto protocol;
		if (r->code.kind != CODEC_CODE_CAPABILITY)
			s->have_caps = false;
		post_auth(s);
		break;
	case CMD_ID:
		/* Some servers refuse ID: nothing depends on it. */
		if (r->status == CODEC_STATUS_NO ||
		    r->status == CODEC_STATUS_BAD)
			log_warn(s->o.log, "server refused ID: %s", text);
		else if (!okay)
			goto protocol;
		break;
	case CMD_NOTIFY:
		if (r->status == CODEC_STATUS_OK) {
			s->notify_on = true;
		} else if (r->status == CODEC_STATUS_NO ||
			   r->status == CODEC_STATUS_BAD) {
			log_warn(s->o.log, "server refused NOTIFY: %s", text);
		} else {
			goto protocol;
		}
		if (s->cb.notify)
			s->cb.notify(s->ud, s->notify_on);
		break;
	case CMD_NOTIFY_NONE:
		/* The NOTIFY SET after it says how that goes. */
		break;
	case CMD_STATUS:
		if (r->status == CODEC_STATUS_NO && s->cb.mailbox_failed)
			s->cb.mailbox_failed(s->ud, mailbox, text);
		else if (!okay)
			goto protocol;
		checked(s);
		break;
	case CMD_LIST:
		/* A BAD too: a server may offer LIST-EXTENDED and still not
		 * take all of it. The session goes on. */
		if (r->status == CODEC_STATUS_NO ||
		    r->status == CODEC_STATUS_BAD) {
			log_warn(s->o.log, "LIST refused: %s", text);
			s->list_ok = false;
		} else if (!okay) {
			goto protocol;
		}
		if (!is_pending(s, CMD_LIST)) {
			bool ok = s->list_ok;

			s->list_ok = true;
			if (s->cb.list_end)
				s->cb.list_end(s->ud, ok);
		}
		checked(s);
		break;
	case CMD_EXAMINE:
		if (r->status == CODEC_STATUS_NO && s->fetch_mode) {
			void_early_fetch(s);
			if (s->cb.mailbox_failed)
				s->cb.mailbox_failed(s->ud, s->mailbox, text);
			go_ready(s);
			break;
		}
		if (!okay) {
			fail(s, SESSION_FAIL_MAILBOX,
			     "cannot open mailbox %s (misspelled, deleted or "
			     "renamed?): EXAMINE: %s",
			     s->mailbox, text);
			break;
		}
		if (!s->uidvalidity) {
			fail(s, SESSION_FAIL_PROTOCOL,
			     "EXAMINE %s gave no UIDVALIDITY", s->mailbox);
			break;
		}
		if (!s->have_uidnext && s->exists > 0) {
			/* RFC 3501 requires UIDNEXT, but some servers
			 * leave it out: ask for the last message's UID. */
			struct codec_buf b;
			char tag[16];

			log_info(s->o.log, "server sent no UIDNEXT; "
					   "asking for the last UID");
			void_early_fetch(s);
			codec_buf_init(&b);
			begin(s, CMD_FIND_UIDNEXT, tag);
			codec_buf_addstr(&b, tag);
			codec_buf_addstr(&b, " FETCH * (UID)\r\n");
			trace_out(s, &b, CMD_FIND_UIDNEXT);
			queue(s, &b);
			codec_buf_finish(&b);
			s->uidnext = 1;
			set_state(s, S_FIND_UIDNEXT);
			break;
		}
		if (!s->have_uidnext)
			s->uidnext = 1;
		selected(s);
		break;
	case CMD_UNSEEN:
		/* Without an answer the count stays unknown: no harm. */
		if (!okay)
			log_debug(s->o.log, "SEARCH UNSEEN: %s", text);
		if (s->dates_due) {
			s->dates_due = false;
			send_dates(s);
		}
		break;
	case CMD_FIND_UIDNEXT:
		if (!okay)
			goto protocol;
		selected(s);
		break;
	case CMD_FLAGS:
		if (!okay)
			goto protocol;
		if (s->state == S_FLAGS)
			start_from(s, s->fetch_from);
		break;
	case CMD_ENABLE:
		/* A refusal only leaves the extensions off. */
		if (r->status != CODEC_STATUS_OK &&
		    r->status != CODEC_STATUS_NO &&
		    r->status != CODEC_STATUS_BAD)
			goto protocol;
		if (s->state == S_ENABLE)
			logged_in(s);
		break;
	case CMD_DATES:
		if (!okay)
			goto protocol;
		start_from(s, s->cb.dated_end(s->ud));
		break;
	case CMD_FETCH:
		if (!okay)
			goto protocol;
		/* DONE went before the fetch, so its IDLE completes first:
		 * a server that says otherwise would have IDLEs pile up. */
		if (is_pending(s, CMD_IDLE)) {
			fail(s, SESSION_FAIL_PROTOCOL,
			     "server completed UID FETCH before the IDLE it "
			     "followed");
			break;
		}
		/* Nor may the fetch sent with an EXAMINE complete first: the
		 * session would wait for it for ever. */
		if (is_pending(s, CMD_EXAMINE)) {
			fail(s, SESSION_FAIL_PROTOCOL,
			     "server completed UID FETCH before the EXAMINE "
			     "it followed");
			break;
		}
		if (s->n_skipped && !s->headers_only) {
			send_headers_fetch(s);
			break;
		}
		s->pushed = false;
		s->cb.batch_end(s->ud);
		if (s->state == S_FETCH)
			watch(s);
		break;
	case CMD_VOID:
		break;
	case CMD_IDLE:
		if (!okay)
			goto protocol;
		/* After DONE: re-IDLE when this was a refresh; when a fetch
		 * was pipelined its completion follows. */
		if (s->state == S_IDLE_DONE || s->state == S_IDLE) {
			s->timer = 0;
			watch(s);
		}
		break;
	case CMD_NOOP:
		if (!okay)
			goto protocol;
		if (s->state == S_NOOP && s->fetch_mode)
			go_ready(s); /* no mailbox selected */
		else if (s->state == S_NOOP)
			watch(s);
		break;
	case CMD_CLOSE:
		/* Refused, the mailbox stays selected: no harm but that its
		 * STATUS may lag until the next EXAMINE. */
		if (!okay)
			log_debug(s->o.log, "CLOSE: %s", text);
		break;
	case CMD_LOGOUT:
		set_state(s, S_DEAD);
		s->cb.failed(s->ud, SESSION_FAIL_BYE, "logged out");
		break;
	}
	return;
protocol:
	fail(s, SESSION_FAIL_PROTOCOL, "unexpected reply to %s: %s",
	     cmd == CMD_FETCH || cmd == CMD_DATES ? "UID FETCH"
						  : state_names[s->state],
	     text);
}

static void
on_tagged(struct session *s, const struct codec_response *r)
{
	unsigned tag;
	char *end;

	if (r->tag.len < 2 || r->tag.ptr[0] != 'm')
		goto unknown;
	tag = strtoul(r->tag.ptr + 1, &end, 10);
	if (*end)
		goto unknown;
	for (unsigned i = 0; i < s->n_pending; i++) {
		if (s->pending[i].tag != tag)
			continue;
		struct pending p = s->pending[i];

		memmove(&s->pending[i], &s->pending[i + 1],
			(s->n_pending - i - 1) * sizeof(s->pending[0]));
		s->n_pending--;
		complete(s, p.cmd, p.mailbox, r);
		free(p.mailbox);
		return;
	}
unknown:
	fail(s, SESSION_FAIL_PROTOCOL, "reply with unknown tag \"%.40s\"",
	     r->tag.ptr);
}

/* An untagged OK/NO/BAD/BYE/PREAUTH. */
static void
on_status(struct session *s, const struct codec_response *r)
{
	char text[400];

	status_text(r, text, sizeof(text));
	if (r->code.kind == CODEC_CODE_ALERT)
		log_warn(s->o.log, "server alert: %s", r->text.ptr);
	if (r->code.kind == CODEC_CODE_CAPABILITY)
		take_capabilities(s, &r->code.u.list);

	if (s->state == S_GREETING) {
		s->timer = 0;
		if (r->status == CODEC_STATUS_PREAUTH) {
			if (s->o.starttls) {
				/* STARTTLS is impossible once authenticated,
				 * and the connection is in the clear. */
				fail(s, SESSION_FAIL_TLS,
				     "server greeted PREAUTH on a connection "
				     "that needs STARTTLS");
				return;
			}
			post_auth(s);
		} else if (r->status == CODEC_STATUS_OK) {
			pre_auth(s);
		} else {
			fail(s, SESSION_FAIL_BYE, "server refused: %s", text);
		}
		return;
	}
	if (r->status == CODEC_STATUS_BYE) {
		if (s->state == S_LOGOUT)
			return;
		fail(s, SESSION_FAIL_BYE, "server closed: %s", text);
		return;
	}
	if (s->notify_on && r->code.kind == CODEC_CODE_OTHER &&
	    !strcmp(r->code.name.ptr, "NOTIFICATIONOVERFLOW")) {
		/* RFC 5465 5.8: the server stopped notifying. A new session
		 * learns what it did not tell: NOTIFY's STATUS of each
		 * mailbox, the catch-up of the selected one. */
		fail(s, SESSION_FAIL_PROTOCOL,
		     "server stopped notifying: %s; reconnecting to catch up",
		     text);
		return;
	}
	switch (r->code.kind) {
	case CODEC_CODE_UIDVALIDITY:
		if (s->state == S_EXAMINE) {
			s->uidvalidity = r->code.u.number;
		} else if (r->code.u.number != s->uidvalidity &&
			   is_selected(s)) {
			fail(s, SESSION_FAIL_PROTOCOL,
			     "UIDVALIDITY changed from %u to %llu",
			     s->uidvalidity,
			     (unsigned long long)r->code.u.number);
		}
		break;
	case CODEC_CODE_UIDNEXT:
		if (s->state == S_EXAMINE) {
			s->uidnext = r->code.u.number;
			s->have_uidnext = true;
		}
		break;
	case CODEC_CODE_HIGHESTMODSEQ:
		if (s->state == S_EXAMINE && s->condstore_on)
			s->highestmodseq = r->code.u.number;
		break;
	default:
		break;
	}
}

/* EXISTS: new mail when the count grew. A count that did not grow is no
 * reason to fetch (a server repeating itself must not start a loop); one
 * that shrank without EXPUNGE is the server's error, logged. */
static void
on_exists(struct session *s, uint32_t n)
{
	uint32_t was = s->exists;

	s->exists = n;
	if (n < was && is_selected(s))
		log_warn(s->o.log, "server's message count went down from %u "
				   "to %u without EXPUNGE",
			 was, n);
	if (n <= was)
		return;
	if (s->fetch_mode && s->state != S_DATES && s->state != S_FETCH)
		return; /* the owner checks with STATUS */
	if (s->notify_on && s->state != S_DATES && s->state != S_FETCH &&
	    is_selected(s)) {
		/* Each new message's FETCH follows (NOTIFY_SELECTED). */
		s->awaiting += n - was;
		if (s->state == S_IDLE)
			s->timer = s->now + NOTIFY_GRACE * USEC_PER_SEC;
		return;
	}
	switch (s->state) {
	case S_IDLE:
		leave_idle(s, true);
		break;
	case S_POLL_WAIT:
		send_fetch(s);
		break;
	case S_FLAGS:
	case S_DATES:
	case S_FETCH:
	case S_IDLE_START:
	case S_IDLE_DONE:
	case S_NOOP:
		s->fetch_again = true;
		break;
	default:
		break;
	}
}

/* Tells the owner the selected mailbox's unseen count. */
static void
unseen_changed(struct session *s)
{
	if (s->unseen.known)
		s->cb.unseen(s->ud, s->unseen.n);
}

static void
on_fetch(struct session *s, const struct codec_fetch *f)
{
	uint32_t key = !s->unseen_by_uid		 ? f->seq
		       : f->have & CODEC_FETCH_UID ? f->uid
						   : 0;

	if (is_pending(s, CMD_VOID))
		return; /* the answers of an unwanted early fetch */
	if (f->have & CODEC_FETCH_FLAGS &&
	    unseen_set(&s->unseen, key,
		       !codec_strlist_has(&f->flags, "\\Seen")))
		unseen_changed(s);
	if (s->state == S_FIND_UIDNEXT) {
		if (f->have & CODEC_FETCH_UID && f->uid >= s->uidnext)
			s->uidnext = f->uid + 1;
		return;
	}
	if (s->state == S_DATES && f->have & CODEC_FETCH_UID &&
	    f->have & CODEC_FETCH_INTERNALDATE) {
		/* A large mailbox takes a while: its deadline runs from the
		 * last answer, not from the command. */
		set_timeout(s, CMD_DATES, s->o.command_timeout);
		s->cb.dated(s->ud, f);
		return;
	}
	if (s->state == S_FETCH && f->have & CODEC_FETCH_UID &&
	    f->have & CODEC_FETCH_ENVELOPE && !s->headers_only) {
		/* n:* also returns the last message when its UID is below
		 * n; and a server may repeat itself: report each UID once.
		 * A catch-up of many messages over a slow link takes a
		 * while, like the scan: its deadline runs from the last new
		 * message. */
		if (f->uid < s->fetch_from)
			return;
		set_timeout(s, CMD_FETCH, s->o.command_timeout);
		s->fetch_from = f->uid == UINT32_MAX ? f->uid : f->uid + 1;
		s->cb.fetched(s->ud, f);
		return;
	}
	if (s->state == S_FETCH && f->have & CODEC_FETCH_UID &&
	    f->n_sections && s->headers_only) {
		/* A message skipped in the fetch before, once: its UID is
		 * in the range that fetch asked for, maybe below UIDs
		 * reported after it. */
		if (!skipped_take(s, f->seq) || f->uid < s->batch_from)
			return;
		if (f->uid >= s->fetch_from)
			s->fetch_from =
			    f->uid == UINT32_MAX ? f->uid : f->uid + 1;
		s->cb.fetched(s->ud, f);
		return;
	}
	if (s->notify_on && is_selected(s) && s->state != S_DATES &&
	    s->state != S_FETCH && f->have & CODEC_FETCH_UID &&
	    f->have & CODEC_FETCH_ENVELOPE) {
		/* New mail pushed under NOTIFY: the batch is what came in
		 * the same read (session_feed ends it). After a skipped one,
		 * fetched in UID order once its headers came. */
		if (f->uid < s->fetch_from)
			return;
		if (s->headers_due) {
			s->fetch_again = true;
			return;
		}
		s->fetch_from = f->uid == UINT32_MAX ? f->uid : f->uid + 1;
		pushed_arrived(s);
		s->cb.fetched(s->ud, f);
		s->pushed = true;
		return;
	}
	/* With QRESYNC, the EXAMINE reports what changed since (with UID). */
	if ((is_selected(s) || (s->state == S_EXAMINE && s->qresync_sent &&
				f->have & CODEC_FETCH_UID)) &&
	    f->have & CODEC_FETCH_FLAGS)
		s->cb.flags(s->ud, f);
}

/* VANISHED (RFC 7162 section 3.2.10): with QRESYNC enabled, EXPUNGE by
 * UID while selected; (EARLIER) in the EXAMINE that carried the known
 * UIDs, those gone since. */
static void
on_vanished(struct session *s, const struct codec_response *r)
{
	const struct codec_seqset *set = &r->u.vanished.uids;

	if (!s->qresync_on)
		return;
	if (r->u.vanished.earlier) {
		if (s->state == S_EXAMINE && s->qresync_sent && s->cb.vanished)
			s->cb.vanished(s->ud, set);
		return;
	}
	if (!is_selected(s) && s->state != S_EXAMINE)
		return;
	/* Each UID was a message of the mailbox: the count goes down by as
	 * many. */
	for (size_t i = 0; i < set->n; i++) {
		uint64_t k = (uint64_t)set->v[i].hi - set->v[i].lo + 1;

		s->exists = k < s->exists ? s->exists - (uint32_t)k : 0;
	}
	if (!s->unseen_by_uid)
		unseen_forget(&s->unseen); /* not ours to map to numbers */
	for (size_t i = 0; i < set->n; i++)
		if (unseen_remove(&s->unseen, set->v[i].lo, set->v[i].hi))
			unseen_changed(s);
	if (is_selected(s) && s->cb.vanished)
		s->cb.vanished(s->ud, set);
}

/* The UTF-8 name of a mailbox a what response names (caller frees), or
 * NULL, logged, when it is neither modified UTF-7 nor UTF-8 (a NUL in a
 * literal included): see codec_mailbox_name(). Dovecot 2.3 names a
 * mailbox with '&' as it is in the STATUS its NOTIFY SET returns (and
 * pushes nothing of it later): plain ASCII, not modified UTF-7. That is
 * only a debug line, at every NOTIFY SET: the mailbox then gets a
 * connection of its own, which is logged. */
static char *
decode_name(struct session *s, const struct codec_str *n, const char *what)
{
	char *name = strlen(n->ptr) == n->len ? codec_mailbox_name(n->ptr)
					      : NULL;
	bool ascii = true;

	if (name)
		return name;
	for (size_t i = 0; i < n->len; i++) {
		unsigned char c = (unsigned char)n->ptr[i];

		ascii = ascii && c && c < 0x80;
	}
	log_at(ascii ? LOG_DEBUG : LOG_WARNING, s->o.log,
	       "%s of \"%s\", a name neither in modified UTF-7 nor UTF-8: "
	       "ignored",
	       what, n->ptr);
	return NULL;
}

/* A STATUS response, asked for or pushed by NOTIFY (which says only what
 * changed): reported with the items it holds. */
static void
on_mailbox_status(struct session *s, const struct codec_response *r)
{
	struct session_status st = {0};
	char *name = decode_name(s, &r->u.status.mailbox, "STATUS");

	if (!name)
		return;
	for (size_t i = 0; i < r->u.status.n_items; i++) {
		const struct codec_status_item *it = &r->u.status.items[i];
		uint32_t v = it->value > UINT32_MAX ? 0 : (uint32_t)it->value;

		if (!strcasecmp(it->name.ptr, "MESSAGES")) {
			st.messages = v;
			st.have |= SESSION_ST_MESSAGES;
		} else if (!strcasecmp(it->name.ptr, "UIDNEXT") && v) {
			st.uidnext = v;
			st.have |= SESSION_ST_UIDNEXT;
		} else if (!strcasecmp(it->name.ptr, "UIDVALIDITY") && v) {
			st.uidvalidity = v;
			st.have |= SESSION_ST_UIDVALIDITY;
		} else if (!strcasecmp(it->name.ptr, "UNSEEN")) {
			st.unseen = v;
			st.have |= SESSION_ST_UNSEEN;
		} else if (!strcasecmp(it->name.ptr, "HIGHESTMODSEQ")) {
			st.highestmodseq = it->value;
			st.have |= SESSION_ST_HIGHESTMODSEQ;
		}
	}
	/* Untagged answers come before their command's completion, in
	 * order: a STATUS while a check is the oldest command under way is
	 * its answer (or a push that came then, which NOTIFY SET's next
	 * answer tells again). */
	st.asked = s->n_pending && (s->pending[0].cmd == CMD_STATUS ||
				    s->pending[0].cmd == CMD_LIST);
	/* Dovecot answers a NOTIFY SET sent right behind NOTIFY NONE
	 * before NOTIFY NONE's completion: no telling those from a push
	 * that came in the same moment. */
	st.notify_set = !st.asked && is_pending(s, CMD_NOTIFY);
	if (s->cb.status)
		s->cb.status(s->ud, name, &st);
	free(name);
}

/* A LIST response, asked for or pushed by NOTIFY (MailboxName). */
static void
on_list(struct session *s, const struct codec_response *r)
{
	char *name;

	if (r->u.list_.is_lsub || !s->cb.listed)
		return;
	name = decode_name(s, &r->u.list_.mailbox, "LIST");
	if (!name)
		return;
	s->cb.listed(s->ud, name, r->u.list_.delimiter, &r->u.list_.flags,
		     !is_pending(s, CMD_LIST));
	free(name);
}

/* The server's error challenge to an OAuth2 response: logged decoded,
 * and answered as the mechanism says (XOAUTH2: an empty line; OAUTHBEARER:
 * %x01, RFC 7628 section 3.2.3) so that the server ends the exchange with
 * its NO. */
static void
token_challenge(struct session *s, const struct codec_response *r)
{
	struct codec_buf b;

	if (sasl_oauth_error(r->text.ptr, r->text.len, &s->token_error) < 0)
		snprintf(s->token_error.json, sizeof(s->token_error.json),
			 "(not base64: %.100s)", r->text.ptr);
	else if (!s->token_error.json[0])
		snprintf(s->token_error.json, sizeof(s->token_error.json),
			 "(an empty challenge)");
	log_warn(s->o.log, "server refused the %s token: %s",
		 sasl_mech_name(sasl_mech(s)), s->token_error.json);
	codec_buf_init(&b);
	codec_buf_addstr(&b, s->mech == AUTH_OAUTHBEARER ? "AQ==\r\n" : "\r\n");
	log_debug(s->o.log, "C: %s",
		  s->mech == AUTH_OAUTHBEARER ? "AQ==" : "<empty line>");
	queue(s, &b);
	codec_buf_finish(&b);
}

static void
on_continuation(struct session *s, const struct codec_response *r)
{
	if (release_held(s))
		return;
	if (s->state == S_IDLE_START) {
		set_state(s, S_IDLE);
		s->refresh_at = s->now + s->o.idle_timeout * USEC_PER_SEC;
		s->timer = s->awaiting ? s->now + NOTIFY_GRACE * USEC_PER_SEC
				       : idle_timer(s);
		if (!s->reached_idle)
			log_info(s->o.log, "watching (IDLE)");
		s->reached_idle = true;
		s->cb.idle(s->ud);
		if (s->fetch_again || s->headers_due)
			leave_idle(s, s->fetch_again);
		return;
	}
	if (s->state == S_LOGIN && is_pending(s, CMD_LOGIN) &&
	    s->mech != AUTH_LOGIN && !s->response_sent) {
		struct codec_buf b;

		codec_buf_init(&b);
		if (s->mech == AUTH_PLAIN) {
			codec_enc_sasl_plain(&b, s->o.username, s->o.password);
		} else {
			sasl_oauth_response(&b, sasl_mech(s), s->o.username,
					    s->o.password);
			codec_buf_addstr(&b, "\r\n");
		}
		log_debug(s->o.log, "C: <SASL response, credentials redacted>");
		queue(s, &b);
		wipe(b.data, b.len);
		codec_buf_finish(&b);
		s->response_sent = true;
		return;
	}
	if (s->state == S_LOGIN && is_pending(s, CMD_LOGIN) && is_oauth2(s) &&
	    !s->token_error.json[0]) {
		token_challenge(s, r);
		return;
	}
	fail(s, SESSION_FAIL_PROTOCOL, "unexpected continuation in state %s",
	     state_names[s->state]);
}

static void
dispatch(struct session *s, const struct codec_response *r)
{
	switch (r->kind) {
	case CODEC_CONTINUATION:
		on_continuation(s, r);
		break;
	case CODEC_TAGGED:
		on_tagged(s, r);
		break;
	case CODEC_UNTAGGED_STATUS:
		on_status(s, r);
		break;
	case CODEC_CAPABILITY:
		take_capabilities(s, &r->u.list);
		break;
	case CODEC_EXISTS:
		on_exists(s, r->u.number);
		break;
	case CODEC_EXPUNGE:
		if (s->exists)
			s->exists--;
		skipped_expunge(s, r->u.number);
		if (s->unseen_by_uid)
			unseen_forget(&s->unseen); /* VANISHED was due */
		else if (unseen_expunge(&s->unseen, r->u.number))
			unseen_changed(s);
		if (is_selected(s))
			s->cb.expunge(s->ud, r->u.number);
		break;
	case CODEC_FETCH:
		on_fetch(s, &r->u.fetch);
		break;
	case CODEC_STATUS:
		on_mailbox_status(s, r);
		break;
	case CODEC_SEARCH:
		if (is_pending(s, CMD_UNSEEN)) {
			unseen_reset(&s->unseen, r->u.search.v, r->u.search.n);
			unseen_changed(s);
		}
		break;
	case CODEC_ESEARCH:
		if (is_pending(s, CMD_UNSEEN) &&
		    r->u.esearch.uid == s->unseen_by_uid &&
		    unseen_reset_ranges(&s->unseen, r->u.esearch.all.v,
					r->u.esearch.all.n))
			unseen_changed(s);
		break;
	case CODEC_VANISHED:
		on_vanished(s, r);
		break;
	case CODEC_ENABLED:
		if (codec_strlist_has(&r->u.list, "QRESYNC"))
			s->qresync_on = s->condstore_on = true;
		if (codec_strlist_has(&r->u.list, "CONDSTORE"))
			s->condstore_on = true;
		break;
	case CODEC_LIST:
		on_list(s, r);
		break;
	case CODEC_SKIPPED:
		on_skipped(s, r);
		break;
	default:
		/* FLAGS, RECENT, ID, ...: nothing to do. */
		break;
	}
}

struct session *
session_new(const struct session_opts *o, const struct session_cb *cb,
	    void *ud)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->o = *o;
	s->cb = *cb;
	s->ud = ud;
	s->state = S_GREETING;
	s->fetch_mode = !o->mailbox;
	s->list_ok = true;
	s->mailbox = o->mailbox ? xstrdup(o->mailbox) : NULL;
	codec_init(&s->codec, NULL);
	codec_buf_init(&s->out);
	codec_buf_init(&s->held);
	return s;
}

void
session_free(struct session **sp)
{
	struct session *s = *sp;

	if (!s)
		return;
	codec_finish(&s->codec);
	while (s->n_pending)
		free(s->pending[--s->n_pending].mailbox);
	free(s->pending);
	free(s->mailbox);
	unseen_free(&s->unseen);
	wipe(s->out.data, s->out.len);
	codec_buf_finish(&s->out);
	wipe(s->held.data, s->held.len);
	codec_buf_finish(&s->held);
	free(s);
	*sp = NULL;
}

/* The -v protocol trace of server bytes: one "S:" line per line the server
 * sent, however the reads cut it, without its CRLF and cut at TRACE_MAX
 * bytes. (No credentials come from the server.) */
static void
trace_in(struct session *s, const char *p, size_t len)
{
	const char *end = p + len;

	if (log_max_level < LOG_DEBUG)
		return;
	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t n = (nl ? nl : end) - p;
		size_t room = TRACE_MAX - s->trace_len;

		memcpy(s->trace + s->trace_len, p, n < room ? n : room);
		s->trace_len += n < room ? n : room;
		if (!nl)
			return;
		if (s->trace_len && s->trace[s->trace_len - 1] == '\r')
			s->trace_len--;
		log_debug(s->o.log, "S: %.*s", (int)s->trace_len, s->trace);
		s->trace_len = 0;
		p = nl + 1;
	}
}

/* Response r came in IDLE, or ready in fetch mode (was): under NOTIFY
 * of other mailboxes, a change Dovecot wrote to its list index (any but
 * INBOX's, which it keeps apart) sets NOTIFY again (NOTIFY_RESET_GAP). A
 * "* OK Still here" changes nothing. */
static void
note_pushed(struct session *s, const struct codec_response *r,
	    enum state was)
{
	uint64_t at = s->now + NOTIFY_QUIET_USEC;

	/* Not what left IDLE; nor the STATUS of each mailbox that a NOTIFY
	 * SET answers with (in fetch mode it comes while ready). */
	if (!s->notify_on || (was == S_IDLE && s->state != S_IDLE) ||
	    (!s->o.n_others && !s->o.mailbox_names) ||
	    is_pending(s, CMD_NOTIFY))
		return;
	switch (r->kind) {
	case CODEC_STATUS:
	case CODEC_LIST:
		break;
	case CODEC_EXISTS:
	case CODEC_RECENT:
	case CODEC_EXPUNGE:
	case CODEC_VANISHED:
	case CODEC_FETCH:
		/* Ready in fetch mode, no mailbox is selected. */
		if (was != S_IDLE || !strcasecmp(s->mailbox, "INBOX"))
			return;
		break;
	default:
		return;
	}
	if (at < s->notify_set_at + NOTIFY_RESET_GAP)
		at = s->notify_set_at + NOTIFY_RESET_GAP;
	s->renotify_at = at;
	/* Else go_ready() arms it. */
	if (!s->awaiting && s->state == was)
		s->timer = idle_timer(s);
}

void
session_feed(struct session *s, const char *data, size_t len, uint64_t now)
{
	const struct codec_response *r;
	size_t used;
	enum state was;
	int rc;

	s->now = now;
	trace_in(s, data, len);
	if (s->state == S_TLS && len) {
		fail(s, SESSION_FAIL_PROTOCOL,
		     "data during the STARTTLS handshake: refusing");
		return;
	}
	while (s->state != S_DEAD) {
		rc = codec_parse(&s->codec, data, len, &used, &r);
		data += used;
		len -= used;
		if (rc == 0)
			break;
		if (rc < 0) {
			fail(s, SESSION_FAIL_PROTOCOL, "bad response: %s",
			     codec_errmsg(&s->codec));
			break;
		}
		was = s->state;
		dispatch(s, r);
		if (was == S_IDLE || was == S_READY)
			note_pushed(s, r, was);
		if (s->state == S_TLS) {
			/* Bytes after the STARTTLS OK came in the clear,
			 * where anyone could have put them (CVE-2011-0411). */
			if (len)
				fail(s, SESSION_FAIL_PROTOCOL,
				     "data after the STARTTLS reply: refusing");
			else
				s->cb.starttls(s->ud);
			break;
		}
	}
	if (s->pushed && s->state != S_DEAD) {
		s->pushed = false;
		s->cb.batch_end(s->ud);
	}
}

void
session_connected(struct session *s, uint64_t now)
{
	s->now = now;
	if (s->state == S_GREETING)
		s->timer = now + s->o.command_timeout * USEC_PER_SEC;
}

void
session_tls_ready(struct session *s, uint64_t now)
{
	s->now = now;
	if (s->state != S_TLS)
		return;
	/* Capabilities from before TLS are not to be trusted. */
	s->have_caps = false;
	send_simple(s, CMD_CAPABILITY, "CAPABILITY");
	set_state(s, S_CAPABILITY);
	/* pre_auth() must not ask for STARTTLS again. */
	s->o.starttls = false;
}

void
session_timeout(struct session *s, uint64_t now)
{
	s->now = now;
	for (unsigned i = 0; i < s->n_pending; i++) {
		if (s->pending[i].deadline && s->pending[i].deadline <= now) {
			fail(s, SESSION_FAIL_TIMEOUT,
			     "no reply from the server in %u s (to %s)",
			     s->pending[i].timeout,
			     cmd_words[s->pending[i].cmd]);
			return;
		}
	}
	if (!s->timer || s->timer > now)
		return;
	s->timer = 0;
	if (s->state == S_GREETING) {
		/* A server waiting for a TLS handshake says nothing. */
		fail(s, SESSION_FAIL_TIMEOUT,
		     "no greeting from the server in %u s%s",
		     s->o.command_timeout,
		     s->o.starttls || s->o.plaintext
			 ? " (is the port one of implicit TLS? then "
			   "tls = implicit)"
			 : "");
	} else if (s->state == S_IDLE) {
		/* Under NOTIFY a FETCH an EXISTS announced did not come:
		 * fetch; else renew the IDLE when it is time. */
		if (s->awaiting) {
			log_info(s->o.log,
				 "%u new message%s came without a FETCH to "
				 "take (NOTIFY): fetching",
				 s->awaiting, s->awaiting == 1 ? "" : "s");
			leave_idle(s, true);
		} else if (now >= s->refresh_at) {
			/* Pushes that stopped without a word (Dovecot's after
			 * its mailbox list index broke) would hide mail in the
			 * other mailboxes until a restart: NOTIFY SET again,
			 * whose STATUS of each tells. */
			if (s->notify_on &&
			    (s->o.n_others || s->o.mailbox_names)) {
				log_debug(s->o.log, "renewing IDLE: NOTIFY SET "
						    "again");
				s->renotify = true;
			}
			leave_idle(s, false);
		} else if (s->renotify_at && now >= s->renotify_at) {
			log_debug(s->o.log, "after pushes: NOTIFY SET again");
			s->renotify = true;
			leave_idle(s, false);
		} else {
			s->timer = idle_timer(s);
		}
	} else if (s->state == S_READY && s->notify_on) {
		log_debug(s->o.log, "%s: NOTIFY SET again",
			  now >= s->refresh_at ? "keeping the connection"
					       : "after pushes");
		notify_again(s);
		s->refresh_at = now + s->o.idle_timeout * USEC_PER_SEC;
		s->timer = s->refresh_at;
	} else if (s->state == S_POLL_WAIT || s->state == S_READY) {
		send_simple(s, CMD_NOOP, "NOOP");
		set_state(s, S_NOOP);
	}
}

void
session_postpone(struct session *s, uint64_t usec)
{
	for (unsigned i = 0; i < s->n_pending; i++)
		if (s->pending[i].deadline)
			s->pending[i].deadline += usec;
	if (s->timer)
		s->timer += usec;
	if (s->renotify_at)
		s->renotify_at += usec;
	if (s->refresh_at)
		s->refresh_at += usec;
}

void
session_probe(struct session *s, uint64_t now, unsigned timeout)
{
	s->now = now;
	if (s->state == S_IDLE) {
		leave_idle(s, false);
		set_timeout(s, CMD_IDLE, timeout);
	} else if (s->state == S_POLL_WAIT || s->state == S_READY) {
		s->timer = now;
		session_timeout(s, now);
		set_timeout(s, CMD_NOOP, timeout);
	}
}

void
session_status(struct session *s, const char *mailbox, uint64_t now)
{
	struct codec_buf b;
	char tag[16];

	s->now = now;
	if (!s->fetch_mode || (s->state != S_READY && s->state != S_CHECKING))
		return;
	codec_buf_init(&b);
	b.literal_plus = s->out.literal_plus;
	codec_enc_status(&b, begin(s, CMD_STATUS, tag), mailbox,
			 s->cap_condstore ? STATUS_ITEMS_MODSEQ : STATUS_ITEMS);
	if (s->state != S_DEAD)
		s->pending[s->n_pending - 1].mailbox = xstrdup(mailbox);
	trace_out(s, &b, CMD_STATUS);
	queue(s, &b);
	codec_buf_finish(&b);
	s->timer = 0;
	set_state(s, S_CHECKING);
}

void
session_list(struct session *s, const char *const *patterns, size_t n,
	     bool status, uint64_t now)
{
	static const char *const all[] = {"*"};

	s->now = now;
	if (!s->fetch_mode || (s->state != S_READY && s->state != S_CHECKING) ||
	    !n)
		return;
	if (s->cap_list_extended) {
		for (size_t i = 0; i < n; i += LIST_CHUNK)
			send_list(s, patterns + i,
				  n - i < LIST_CHUNK ? n - i : LIST_CHUNK,
				  status);
	} else if (n > LIST_EACH_MAX) {
		send_list(s, all, 1, false);
	} else {
		for (size_t i = 0; i < n; i++)
			send_list(s, patterns + i, 1, false);
	}
	s->timer = 0;
	set_state(s, S_CHECKING);
}

bool
session_list_status(const struct session *s)
{
	return s->cap_list_extended && s->cap_list_status;
}

void
session_set_others(struct session *s, const char *const *others, size_t n,
		   uint64_t now)
{
	s->now = now;
	s->o.others = others;
	s->o.n_others = n;
	if (!s->notify_on && !is_pending(s, CMD_NOTIFY))
		return;
	s->renotify = true;
	if (s->state == S_IDLE)
		leave_idle(s, false);
	else if (s->state == S_READY)
		notify_again(s);
}

/* How many messages the owner follows (the known callback). */
static size_t
n_known(struct session *s)
{
	uint32_t uids[SESSION_MAX_KNOWN], uidvalidity;
	uint64_t modseq;

	return s->cb.known ? s->cb.known(s->ud, uids, SESSION_MAX_KNOWN,
					 &uidvalidity, &modseq)
			   : 0;
}

void
session_examine(struct session *s, const char *mailbox, uint32_t from,
		uint64_t now)
{
	s->now = now;
	if (!s->fetch_mode || s->state != S_READY)
		return;
	free(s->mailbox);
	s->mailbox = xstrdup(mailbox);
	s->timer = 0;
	send_examine(s);
	/* In the same write, unless the flags of followed messages are to
	 * be fetched first (no QRESYNC). */
	if (from && (s->qresync_sent || !n_known(s))) {
		s->fetch_from = from;
		queue_fetch(s);
		s->early_from = from;
	}
}

void
session_logout(struct session *s, uint64_t now)
{
	s->now = now;
	if (s->state == S_DEAD || s->state == S_LOGOUT)
		return;
	if (s->state == S_IDLE) {
		struct codec_buf b;

		codec_buf_init(&b);
		codec_enc_done(&b);
		queue(s, &b);
		codec_buf_finish(&b);
	}
	s->timer = 0;
	send_simple(s, CMD_LOGOUT, "LOGOUT");
	set_state(s, S_LOGOUT);
}

uint64_t
session_deadline(const struct session *s, uint64_t *accuracy_r)
{
	uint64_t t = s->timer;

	/* The idle refresh and poll timers may be late by a tenth of their
	 * period, at most 5 s, so the kernel can batch wake-ups; command
	 * deadlines by less. */
	unsigned period = s->cap_idle ? s->o.idle_timeout : s->o.poll_interval;

	*accuracy_r = period >= 50 ? 5 * USEC_PER_SEC : period * USEC_PER_SEC / 10;
	/* But new mail whose FETCH did not come under NOTIFY is not put off
	 * past NOTIFY_GRACE. */
	if ((s->state == S_IDLE || s->state == S_READY) &&
	    (s->awaiting || s->renotify_at))
		*accuracy_r = USEC_PER_SEC / 10;
	for (unsigned i = 0; i < s->n_pending; i++) {
		uint64_t d = s->pending[i].deadline;

		if (d && (!t || d < t)) {
			t = d;
			*accuracy_r = USEC_PER_SEC;
		}
	}
	return t;
}

struct codec_buf *
session_output(struct session *s)
{
	return &s->out;
}

uint32_t
session_exists(const struct session *s)
{
	return s->exists;
}

bool
session_is_idle(const struct session *s)
{
	return s->state == S_IDLE || s->state == S_POLL_WAIT ||
	       s->state == S_READY;
}

const char *
session_state_name(const struct session *s)
{
	return state_names[s->state];
}
