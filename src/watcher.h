/* watcher: one IMAP connection (transport + session) of an account. It
 * either watches one mailbox with IDLE (or NOOP polling), and with NOTIFY
 * where the server offers it follows other mailboxes too, reporting their
 * STATUS; or, in fetch mode, checks mailboxes with STATUS and catches one
 * up at a time with EXAMINE and UID FETCH when its owner asks. What the
 * session reports about a mailbox goes to that mailbox (mailbox.c: the UID
 * bookkeeping, the state file, the batches handed to the sinks); the rest
 * to the owner (account.c). Owns the connection's life: connecting,
 * timers, reconnects with capped exponential back-off plus jitter, the
 * clean stop. Runs on an sd-event loop; never blocks. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "session.h"

struct mailbox;
struct watcher;

/* What the watcher needs from its owner; all borrowed and outliving the
 * watcher. The callbacks may call watcher_status() and watcher_examine()
 * but must not free a watcher. */
struct watcher_env {
	sd_event *event;
	/* The watcher's state changed (for the status line); may be NULL. */
	void (*changed)(void *ud);
	/* Once per session of a watcher with NOTIFY asked for, after login:
	 * whether NOTIFY is set. */
	void (*notify)(void *ud, struct watcher *w, bool on);
	/* A STATUS of mailbox name (UTF-8) on w's connection, from a check
	 * or a NOTIFY push; name and st borrowed for the call. */
	void (*status)(void *ud, struct watcher *w, const char *name,
		       const struct session_status *st);
	/* Fetch mode: nothing under way; done is the mailbox whose
	 * watcher_examine() just completed, else NULL (a new connection,
	 * or STATUS checks answered). */
	void (*ready)(void *ud, struct watcher *w, struct mailbox *done);
	/* Fetch mode: STATUS or EXAMINE of name was refused. */
	void (*mailbox_failed)(void *ud, const char *name, const char *msg);
	/* Optional. A LIST response (session_cb.listed): from a
	 * watcher_list(), or pushed under NOTIFY with mailbox_names. */
	void (*listed)(void *ud, struct watcher *w, const char *name,
		       char delimiter, const struct codec_strlist *attrs,
		       bool pushed);
	/* Optional. The LIST of a watcher_list() is answered (ok: none
	 * refused). */
	void (*list_end)(void *ud, struct watcher *w, bool ok);
	/* The server refused the login for now because of a limit on
	 * connections ([LIMIT], or a plain NO to a password that let another
	 * connection in); the watcher retries with back-off. */
	void (*limited)(void *ud, struct watcher *w);
	/* A connection ended otherwise than by watcher_stop(): it could not
	 * be made, its login or mailbox was refused, or it was lost. The
	 * watcher retries with back-off, or gave up (watcher_gave_up()). */
	void (*failed)(void *ud, struct watcher *w);
	void *ud;
};

struct watcher_opts {
	const struct account *a; /* borrowed; see watcher_rebind() */
	/* The mailbox to watch (borrowed), or NULL for fetch mode. */
	struct mailbox *mb;
	/* Use NOTIFY where offered, following others[0..n_others) (UTF-8,
	 * borrowed) beside mb. */
	bool notify;
	const char *const *others;
	size_t n_others;
	/* Asked for the password or token before each login (password.h);
	 * borrowed, must outlive the watcher. */
	struct cred *cred;
	/* With notify: be told of mailboxes created, renamed or deleted
	 * (env.listed, pushed). */
	bool mailbox_names;
	/* A try at one connection more than the server took: a [LIMIT]
	 * before the first login is logged at debug level (the owner says
	 * what it means). */
	bool quiet_limit;
};

/* Creates the watcher and starts connecting. */
struct watcher *watcher_new(const struct watcher_env *env,
			    const struct watcher_opts *o);
/* Closes the connection at once (no LOGOUT) and frees; the mailboxes'
 * state is the owner's to save first. */
void watcher_free(struct watcher **w);

/* Fetch mode, when ready: sends STATUS for mailbox (UTF-8, copied); the
 * answer comes through env.status or env.mailbox_failed, then env.ready.
 * At most SESSION_MAX_PIPELINE at once. */
void watcher_status(struct watcher *w, const char *mailbox);
/* Fetch mode, when ready: lists patterns[0..n) (UTF-8, copied), with
 * the STATUS of each listed mailbox where status and the server offers
 * LIST-STATUS; see session_list(). env.listed for each, env.list_end,
 * then env.ready. */
void watcher_list(struct watcher *w, const char *const *patterns, size_t n,
		  bool status);
/* True when connected to a server that offers LIST-STATUS. */
bool watcher_list_status(const struct watcher *w);
/* With notify: follow others[0..n) (borrowed) from now on, this
 * connection and the next ones (NOTIFY SET again, then env.notify). */
void watcher_set_others(struct watcher *w, const char *const *others,
			size_t n);
/* Fetch mode, when ready: EXAMINEs mb (borrowed) and catches it up; then
 * env.ready with done = mb, or without it when the connection ended
 * first. */
void watcher_examine(struct watcher *w, struct mailbox *mb);
/* Fetch mode: true when ready for the next watcher_status or
 * watcher_examine. */
bool watcher_ready(const struct watcher *w);
/* The message count of the selected mailbox, as the server last said (0
 * without a connection). */
uint32_t watcher_exists(const struct watcher *w);

/* After a reload: a is the new configuration's account, equal in every
 * setting (config_account_equal) to the one the watcher had. The
 * connection stays. */
void watcher_rebind(struct watcher *w, const struct account *a);

/* Starts a clean stop: LOGOUT, then close. watcher_stopped() turns true
 * when the connection is gone. */
void watcher_stop(struct watcher *w);
bool watcher_stopped(const struct watcher *w);

/* Paused, the watcher reads nothing from the server (its connection and
 * those it makes meanwhile), which then waits on the full socket; writes
 * go on. The session's deadlines do not run while paused: on resume they
 * move later by the time paused (session_postpone()) and what waited is
 * read. Reconnect times and a stop's LOGOUT deadline are not paused. */
void watcher_pause(struct watcher *w, bool paused);

/* Seconds a probe may take before the connection is taken for dead. */
#define WATCHER_PROBE_TIMEOUT 10

/* Checks a connection that may have died while the machine slept: sends a
 * NOOP-like probe if connected and reconnects now if waiting to. */
void watcher_probe(struct watcher *w);
/* Reconnects now if waiting to (a back-off, or a mailbox not there). */
void watcher_retry(struct watcher *w);

/* Closes the connection, if up, and opens it again soon (after the first
 * step of the back-off): its mailbox changed under it. */
void watcher_reopen(struct watcher *w);

/* True while it waits to try its mailbox again after the server said
 * there is none (MAILBOX_RETRY): deleted, or renamed away. */
bool watcher_missing(const struct watcher *w);

/* In watcher_env.failed: true when the server said there is no such
 * mailbox (the wait for the next try is MAILBOX_RETRY). */
bool watcher_mailbox_refused(const struct watcher *w);

/* In watcher_env.failed: the next try's time is logged at debug level
 * only (the owner tells what happens instead). */
void watcher_quiet_retry(struct watcher *w);

/* True after an error retrying cannot fix (rejected password, missing
 * STARTTLS): the watcher waits for a reload; or while it waits
 * TOKEN_RETRY seconds after a token refused twice in a row, which a
 * reload cuts short. */
bool watcher_gave_up(const struct watcher *w);

/* True while in IDLE (or waiting to poll, or ready in fetch mode). */
bool watcher_is_idle(const struct watcher *w);
/* True while logged in, idle or at work. */
bool watcher_connected(const struct watcher *w);
/* Wall-clock seconds when the server of w's connection (the last one,
 * when it is gone) was last heard from: bytes, or its end of the
 * connection; 0: not yet. */
int64_t watcher_heard(const struct watcher *w);
/* A short description for the status line, e.g. "reconnecting at 10:02:03";
 * borrowed, valid until the next call. */
const char *watcher_describe(struct watcher *w);
