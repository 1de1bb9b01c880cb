/* session: the IMAP client state machine for one connection, sans-IO. It is fed the bytes the server sent (session_feed) and
 * the passing of time (session_timeout), and in return queues bytes to send
 * (session_output), asks for a deadline (session_deadline) and reports what
 * happened through the callbacks it was handed. It never touches a socket,
 * a timer or OpenSSL.
 *
 * The path through the states: greeting -> [STARTTLS -> handshake] ->
 * [CAPABILITY] -> AUTHENTICATE PLAIN, OAUTHBEARER or XOAUTH2, or LOGIN ->
 * [ID] -> [CAPABILITY] -> [ENABLE] -> EXAMINE -> [the known UIDs' flags,
 * or the date scan] -> [catch-up UID FETCH] -> IDLE (or NOOP polling
 * without IDLE). On EXISTS it
 * sends DONE and the UID FETCH of the new messages in one write, reports the
 * fetched messages and goes back to IDLE. Server bytes can end a session
 * (the failed callback), never the process.
 *
 * After login, where the server offers QRESYNC (RFC 7162) it is enabled,
 * else CONDSTORE: the EXAMINE then says the mailbox's HIGHESTMODSEQ, and
 * with QRESYNC carries what the owner knows (known()), so that a
 * reconnect learns only what changed of the messages it announced
 * (FETCH, VANISHED (EARLIER)) instead of fetching them again.
 *
 * With opts.notify, where the server offers NOTIFY (RFC 5465), NOTIFY SET
 * goes before the EXAMINE: new mail in the selected mailbox then comes
 * with its envelope inside the push (no DONE, no UID FETCH), and changes
 * in opts.others come as STATUS responses (the status callback).
 *
 * Fetch mode (opts.mailbox NULL): after login the session waits in
 * "ready" for the owner, who checks mailboxes with session_status() and
 * catches one up with session_examine() (EXAMINE, the callbacks from
 * selected() to batch_end() as above, then ready again instead of IDLE).
 * Waiting, it sends a NOOP every idle_timeout seconds. With opts.notify
 * (one connection for the account), NOTIFY SET of opts.others alone goes
 * first, without the selected filter; it is set again every idle_timeout
 * instead of the NOOP, and after pushes as in IDLE.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "util.h"

enum session_fail {
	SESSION_FAIL_PROTOCOL, /* unparsable or unexpected response */
	SESSION_FAIL_TIMEOUT,  /* a command got no completion in time */
	SESSION_FAIL_BYE,      /* the server said BYE */
	SESSION_FAIL_AUTH,     /* credentials rejected: do not retry */
	/* The login answered with a NO that says nothing more: wrong
	 * credentials, or a limit the server does not name (Cyrus: "NO Too
	 * many open connections"). */
	SESSION_FAIL_AUTH_PLAIN,
	SESSION_FAIL_TOKEN,    /* the OAuth2 token refused: retry once with
				  a new one */
	SESSION_FAIL_LIMIT,    /* login refused with [LIMIT] (too many
				  connections): retry later */
	SESSION_FAIL_REFUSED,  /* login refused for now ([UNAVAILABLE],
				  ...): retry later */
	SESSION_FAIL_TLS,      /* STARTTLS required but not offered, or no
				  login method allowed: do not retry */
	SESSION_FAIL_MAILBOX,  /* EXAMINE refused (no such mailbox?) */
};

struct session_opts {
	const char *username;       /* borrowed, outlives the session */
	/* borrowed; never logged: the password, or with oauth2 the access
	 * token */
	const char *password;
	bool oauth2;                /* password is an OAuth2 access token */
	enum auth_mech auth;        /* how to log in (config.h) */
	bool send_id;               /* ID (RFC 2971) after login */
	const char *mailbox;        /* UTF-8 name, copied; NULL: fetch mode */
	/* Use NOTIFY where offered, for the selected mailbox (watch mode)
	 * and others[0..n_others) (UTF-8 names, borrowed; at least one in
	 * fetch mode). */
	bool notify;
	const char *const *others;
	size_t n_others;
	/* With notify: also ask for MailboxName events (RFC 5465 5.4) of
	 * every personal mailbox: the LIST responses the server pushes when
	 * one is created, renamed or deleted come to listed(). */
	bool mailbox_names;
	bool starttls;              /* upgrade with STARTTLS before login */
	bool plaintext;             /* tls = none: no TLS at all */
	unsigned idle_timeout;      /* seconds before IDLE is re-issued */
	unsigned poll_interval;     /* seconds between NOOPs without IDLE */
	unsigned command_timeout;   /* seconds a command may take */
	const struct log_ctx *log;  /* borrowed */
};

/* Bits of session_status.have. */
enum {
	SESSION_ST_MESSAGES = 1 << 0,
	SESSION_ST_UIDNEXT = 1 << 1,
	SESSION_ST_UIDVALIDITY = 1 << 2,
	SESSION_ST_UNSEEN = 1 << 3,
	SESSION_ST_HIGHESTMODSEQ = 1 << 4,
};

/* What a STATUS response said: the items in have, 0 for the others. A
 * NOTIFY push says only what changed: (UNSEEN n HIGHESTMODSEQ m) for a
 * flag change, no UIDNEXT. */
struct session_status {
	unsigned have; /* SESSION_ST_* */
	uint32_t messages, uidnext, uidvalidity, unseen;
	uint64_t highestmodseq;
	/* The answer to a STATUS or LIST of the owner's (session_status(),
	 * session_list()), not NOTIFY's: one of NOTIFY SET's answers or a
	 * push. */
	bool asked;
	/* It came while a NOTIFY SET was under way: one of its answers (the
	 * STATUS of each mailbox there now), not a push from before it. */
	bool notify_set;
};

/* The most STATUS commands an owner should have unanswered at once. */
#define SESSION_MAX_PIPELINE 32
/* The most UIDs the owner's known() gives. */
#define SESSION_MAX_KNOWN 64

/* What an EXAMINE found. uidnext is 0 when the server did not say and the
 * mailbox is empty (with messages, it is the last one's UID + 1). */
struct session_selected {
	uint32_t uidvalidity, uidnext, exists;
	/* Its [HIGHESTMODSEQ] with CONDSTORE or QRESYNC enabled; 0 without
	 * (or [NOMODSEQ]). */
	uint64_t highestmodseq;
	/* The EXAMINE carried the owner's known() UIDs as its QRESYNC
	 * parameter, with their UIDVALIDITY: those that changed since came
	 * through flags() and those gone through vanished() before this;
	 * the others are there unchanged. */
	bool qresync;
};

/* Callbacks. None of them may free the session; the owner acts on a
 * failure after session_feed() / session_timeout() returns. The ones
 * marked optional may be NULL. */
struct session_cb {
	/* The server accepted STARTTLS: start the TLS handshake, then call
	 * session_tls_ready(). */
	void (*starttls)(void *ud);
	/* EXAMINE finished (sel borrowed for the call). Returns the first
	 * UID to announce: messages with a lower UID are never reported as
	 * new. Returning uidnext means "only what arrives from now on"; a
	 * lower value makes the session fetch the messages in between first
	 * (catch-up). Setting *by_date_r instead asks for the date scan:
	 * every message's UID, FLAGS and INTERNALDATE through dated(), then
	 * the catch-up from the UID dated_end() returns. Unless
	 * sel->qresync, the flags of the UIDs known() then gives are fetched
	 * first (UID FETCH uids (UID FLAGS), through flags(); one not
	 * returned is gone). */
	uint32_t (*selected)(void *ud, const struct session_selected *sel,
			     bool *by_date_r);
	/* One message of a UID FETCH, UID >= the first UID to announce and
	 * not reported before in this session, with its ENVELOPE and its
	 * INTERNALDATE (not in NOTIFY's pushes); or, when its response was
	 * over the codec's limits, with only its From, Subject, Date and
	 * Message-ID fields, cut, and INTERNALDATE, in f->sections (fetched
	 * again after the others: UID order is the owner's to restore). f is
	 * borrowed for the call. */
	void (*fetched)(void *ud, const struct codec_fetch *f);
	/* The UID FETCH completed; everything it returned was reported. In
	 * fetch mode also after an EXAMINE that needed no fetch. */
	void (*batch_end)(void *ud);
	/* A FETCH of flags: a change while watching (with UID and MODSEQ
	 * once CONDSTORE is enabled), one of the changes an EXAMINE with
	 * QRESYNC reports, or an answer to the fetch of the known() UIDs'
	 * flags; borrowed. */
	void (*flags)(void *ud, const struct codec_fetch *f);
	/* EXPUNGE of a sequence number while watching. */
	void (*expunge)(void *ud, uint32_t seq);
	/* The session is idle (in IDLE, or waiting to poll). */
	void (*idle)(void *ud);
	/* The session ended; msg says why (borrowed for the call). */
	void (*failed)(void *ud, enum session_fail why, const char *msg);
	/* One message of the date scan (with UID and INTERNALDATE); f is
	 * borrowed for the call. Only needed with *by_date_r. */
	void (*dated)(void *ud, const struct codec_fetch *f);
	/* The date scan completed (or the mailbox is empty): returns the
	 * first UID to announce, as selected() does. */
	uint32_t (*dated_end)(void *ud);
	/* Optional. With opts.notify, once per session after login: whether
	 * NOTIFY is set (false: not offered, or refused). */
	void (*notify)(void *ud, bool on);
	/* Optional. A STATUS response for mailbox name (UTF-8; borrowed, as
	 * st is, for the call). */
	void (*status)(void *ud, const char *name,
		       const struct session_status *st);
	/* Fetch mode: nothing is under way; the owner may call
	 * session_status() or session_examine(), from this callback too. */
	void (*ready)(void *ud);
	/* Fetch mode, optional: STATUS or EXAMINE of name was refused (NO);
	 * msg says how. The session goes on. */
	void (*mailbox_failed)(void *ud, const char *name, const char *msg);
	/* Optional. The UIDs of the messages whose changes the owner follows
	 * (what it announced), ascending, at most max into uids; returns how
	 * many. *uidvalidity_r and *modseq_r: the UIDVALIDITY and
	 * HIGHESTMODSEQ at which it last learnt their flags (0: unknown).
	 * Asked before an EXAMINE with QRESYNC enabled, and after one
	 * without its QRESYNC parameter. */
	size_t (*known)(void *ud, uint32_t *uids, size_t max,
			uint32_t *uidvalidity_r, uint64_t *modseq_r);
	/* Optional. With QRESYNC enabled: messages expunged, by UID, while
	 * watching or (VANISHED (EARLIER)) since the known() modseq; set
	 * borrowed for the call. */
	void (*vanished)(void *ud, const struct codec_seqset *uids);
	/* Optional; not in fetch mode. The selected mailbox has count
	 * unseen messages: once SEARCH UNSEEN answered after EXAMINE, then
	 * at each change that flags, expunges and new mail make. */
	void (*unseen)(void *ud, uint32_t count);
	/* Optional. A LIST response: mailbox name (UTF-8), its hierarchy
	 * delimiter (0 for none) and attributes (e.g. \Noselect,
	 * \NonExistent, RFC 6154's \Trash), all borrowed for the call.
	 * pushed: no LIST of ours was under way (NOTIFY's MailboxName
	 * event: the mailbox was created, renamed or, with \NonExistent,
	 * deleted). */
	void (*listed)(void *ud, const char *name, char delimiter,
		       const struct codec_strlist *attrs, bool pushed);
	/* Optional. The LIST commands of a session_list() are answered;
	 * ok is false when one was refused (logged). */
	void (*list_end)(void *ud, bool ok);
	/* Optional. The login (or AUTHENTICATE) succeeded; the password is
	 * not read after this. */
	void (*authenticated)(void *ud);
};

struct session;

/* Creates a session for a fresh connection; nothing is sent until the
 * greeting arrives. o and its strings are borrowed. */
struct session *session_new(const struct session_opts *o,
			    const struct session_cb *cb, void *ud);
void session_free(struct session **s);

/* The connection is up (after TLS, for implicit TLS): the greeting must
 * come within command_timeout seconds of now. */
void session_connected(struct session *s, uint64_t now);
/* Feeds bytes received from the server at monotonic time now (usec). */
void session_feed(struct session *s, const char *data, size_t len,
		  uint64_t now);
/* The STARTTLS handshake finished. */
void session_tls_ready(struct session *s, uint64_t now);
/* Call when the deadline from session_deadline() has passed. */
void session_timeout(struct session *s, uint64_t now);
/* The owner read nothing from the server for usec (it paused reading):
 * moves every deadline later by as much, since no reply could arrive
 * meanwhile. The command deadlines, the greeting's, the wait for a
 * FETCH under NOTIFY, and the IDLE renewal and poll times with them. */
void session_postpone(struct session *s, uint64_t usec);
/* Checks that the connection is alive: in IDLE, sends DONE (to be answered
 * within timeout seconds) and IDLE again; while polling, sends the NOOP
 * now. Other states already wait for a reply with a deadline. */
void session_probe(struct session *s, uint64_t now, unsigned timeout);
/* Fetch mode, when ready or checking: sends STATUS for mailbox (UTF-8,
 * copied); its answer comes through status() or mailbox_failed(), and
 * ready() once every STATUS is answered. At most SESSION_MAX_PIPELINE at
 * once. */
void session_status(struct session *s, const char *mailbox, uint64_t now);
/* Fetch mode, when ready or checking: lists the mailboxes that match
 * patterns[0..n) (UTF-8, copied; '*' and '%' as in LIST): each through
 * listed(), then list_end(), then ready() once every check is answered.
 * With LIST-EXTENDED (RFC 5258) the patterns go in one command (a few
 * dozen per command), with RETURN (SPECIAL-USE) where offered and, when
 * status is true and LIST-STATUS (RFC 5819) is offered, RETURN (STATUS
 * ...): a STATUS of each listed mailbox then comes through status() as
 * session_status() would have it. Without LIST-EXTENDED, one LIST per
 * pattern, or one LIST of "*" for more than a few. */
void session_list(struct session *s, const char *const *patterns, size_t n,
		  bool status, uint64_t now);
/* True when the server offers LIST-STATUS (known once logged in). */
bool session_list_status(const struct session *s);
/* With opts.notify: follow others[0..n) (borrowed, as opts.others)
 * instead. Where NOTIFY is set, it is set again before the next IDLE
 * (leaving IDLE for it), and notify() says how that went. */
void session_set_others(struct session *s, const char *const *others,
			size_t n, uint64_t now);
/* Fetch mode, when ready: EXAMINEs mailbox (copied) and catches it up as
 * a watching session does; ready() follows. from, when not 0, is the UID
 * the owner expects selected() to return: the UID FETCH from there then
 * goes in the same write as the EXAMINE, saving a round trip (its answers
 * are ignored if selected() decides otherwise). */
void session_examine(struct session *s, const char *mailbox, uint32_t from,
		     uint64_t now);
/* Leaves IDLE and sends LOGOUT; failed(SESSION_FAIL_BYE) follows the
 * server's BYE, or the caller closes after its own deadline. */
void session_logout(struct session *s, uint64_t now);

/* The monotonic time (usec) at which session_timeout() must be called, or
 * 0 for none; *accuracy_r is how late it may be (for timer coalescing). */
uint64_t session_deadline(const struct session *s, uint64_t *accuracy_r);
/* Bytes queued for the server. The caller sends them and removes what it
 * sent with codec_buf_consume(). Sync literal splits are handled inside
 * the session: only bytes that may go now are in this buffer. */
struct codec_buf *session_output(struct session *s);

/* The number of messages in the mailbox, as the server last said. */
uint32_t session_exists(const struct session *s);
/* True while in IDLE (or waiting to poll, or ready in fetch mode). */
bool session_is_idle(const struct session *s);
/* The state name, for logs and status lines, e.g. "idle". */
const char *session_state_name(const struct session *s);
