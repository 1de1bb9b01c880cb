#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailbox.h"
#include "password.h"
#include "session.h"
#include "transport.h"

#define USEC_PER_SEC 1000000ULL
#define BACKOFF_MIN 1           /* seconds */
/* A trial's 150 s outage ended 4 minutes before a reconnect at 300; a
 * try a minute is nothing for a server, and one down for minutes (an
 * update, a router's restart) is back in use within one. */
#define BACKOFF_MAX 60
/* Seconds to the next try from which the status line says when it is. */
#define RETRY_TOLD 30
/* While connections are refused (the host is up, its IMAP server is
 * restarting) in the first REFUSED_WINDOW seconds of an outage, retry at
 * least every REFUSED_MAX seconds: a refused connect costs nothing, and
 * the server is back within seconds. */
#define REFUSED_MAX 2
#define REFUSED_WINDOW 120
#define MAILBOX_RETRY 300       /* seconds, after EXAMINE failed */
#define TOKEN_RETRY 300         /* seconds, after a new token was refused */
#define COMMAND_TIMEOUT 30      /* seconds a command may take */
#define CONNECT_TIMEOUT 30
#define LOGOUT_TIMEOUT 2        /* seconds LOGOUT may take at stop */

enum wstate {
	W_CONNECTING, /* connecting, logging in, examining */
	W_WATCHING,   /* the session is up */
	W_WAITING,    /* waiting to reconnect */
	W_GAVE_UP,    /* an error retrying cannot fix (password, TLS) */
	W_STOPPING,   /* LOGOUT sent */
	W_STOPPED,
};

static const char *const wstate_names[] = {
	[W_CONNECTING] = "connecting", [W_WATCHING] = "watching",
	[W_WAITING] = "waiting",       [W_GAVE_UP] = "stopped",
	[W_STOPPING] = "stopping",     [W_STOPPED] = "stopped",
};

struct watcher {
	struct watcher_env env;
	const struct account *a;   /* borrowed; see watcher_rebind() */
	/* The mailbox the connection feeds (borrowed): watched, or in fetch
	 * mode the one being caught up (NULL between). */
	struct mailbox *mb;
	bool fetch_mode;
	/* With NOTIFY: the mailboxes followed beside mb (borrowed). */
	bool notify;
	const char *const *others;
	size_t n_others;
	bool mailbox_names;  /* with notify: MailboxName events too */
	bool quiet_limit;    /* watcher_opts; cleared at the first login */
	/* Copies of what a live connection lends out (the session, log
	 * lines), so the configuration can be replaced under it. */
	char *username, *account;
	struct cred *cred;
	struct cred_req *req;	   /* asked before connecting; the login
				      under way */
	char *secret;		   /* the answer, for this connection; wiped
				      once logged in, freed when it closes */
	bool no_secret;		   /* the last request got none (the token
				      command failed) */
	/* The last login's token was refused and a new one is asked for:
	 * a second refusal in a row waits TOKEN_RETRY seconds. */
	bool token_retry;
	const struct log_ctx *log; /* the mailbox's, or own_log */
	struct log_ctx own_log;
	enum wstate state;
	const char *gave_up; /* in W_GAVE_UP: why, for the status line */

	struct transport *t;
	/* t connected (with STARTTLS, once TLS is up), else still
	 * connecting: a certificate refused after STARTTLS is "cannot
	 * connect", as with implicit TLS, not "connection lost". */
	bool reached;
	struct session *s;
	sd_event_source *timer;    /* session deadline, or reconnect time */
	sd_event_source *teardown; /* deferred close after a failure */
	int teardown_err;          /* < 0: why; reconnect unless gave up */

	unsigned failures;         /* consecutive, for the back-off */
	uint64_t outage_start;     /* usec, when failures went from 0 to 1 */
	uint64_t retry_at;         /* usec, in W_WAITING */
	/* What the last loss logged, and whether this try's was quiet
	 * (log_loss()). */
	char last_loss[256];
	bool quiet_try;

	/* watcher_pause(): nothing is read, and the session's deadlines
	 * wait, since paused_at (usec). */
	bool paused;
	uint64_t paused_at;

	/* Wall-clock seconds when this connection's server was last heard
	 * from: bytes, or its end of the connection (0: not yet). */
	int64_t heard;

	/* A clean stop from IDLE began at stop_at (0: not from IDLE) with
	 * stop_messages messages. */
	int64_t stop_at;
	uint32_t stop_messages;

	char describe[320];
};

/* Every time here is CLOCK_BOOTTIME, which runs during suspend: a deadline
 * or a reconnect due while the machine slept fires as soon as it wakes. */
static uint64_t
now_usec(const struct watcher *w)
{
	uint64_t t = 0;

	sd_event_now(w->env.event, CLOCK_BOOTTIME, &t);
	return t;
}

/* The wall clock, in seconds: what INTERNALDATE is compared with. */
static int64_t
wall_now(const struct watcher *w)
{
	uint64_t t = 0;

	sd_event_now(w->env.event, CLOCK_REALTIME, &t);
	return (int64_t)(t / USEC_PER_SEC);
}

static void
changed(struct watcher *w)
{
	if (w->env.changed)
		w->env.changed(w->env.ud);
}

static void
set_wstate(struct watcher *w, enum wstate to)
{
	if (w->state == to)
		return;
	log_debug(w->log, "watcher: %s -> %s", wstate_names[w->state],
		  wstate_names[to]);
	w->state = to;
	changed(w);
}

static void connect_now(struct watcher *w);
static void schedule_teardown(struct watcher *w, int err);
static void pump(struct watcher *w);

static int
on_timer(sd_event_source *src, uint64_t usec, void *ud)
{
	struct watcher *w = ud;

	(void)src;
	(void)usec;
	if (w->state == W_WAITING) {
		connect_now(w);
		return 0;
	}
	if (w->state == W_STOPPING) {
		/* LOGOUT took too long: close without it. */
		schedule_teardown(w, 0);
		return 0;
	}
	if (w->s && !w->paused) {
		session_timeout(w->s, now_usec(w));
		pump(w);
	}
	return 0;
}

/* Arms the one timer for t (usec, CLOCK_BOOTTIME), or turns it off for 0. */
static void
arm_timer(struct watcher *w, uint64_t t, uint64_t accuracy)
{
	if (!t) {
		sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(w->timer, t);
	sd_event_source_set_time_accuracy(w->timer, accuracy);
	sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

/* Sends what the session queued and re-arms its deadline. Called after
 * every call into the session. */
static void
pump(struct watcher *w)
{
	struct codec_buf *out;
	uint64_t t, acc = 0;

	if (!w->s)
		return;
	out = session_output(w->s);
	if (out->len && w->t) {
		if (transport_write(w->t, out->data, out->len) < 0)
			schedule_teardown(w, -EIO);
		wipe(out->data, out->len);
		codec_buf_consume(out, out->len);
	}
	/* While stopping, the timer is LOGOUT's deadline (watcher_stop). */
	if (w->state == W_STOPPING)
		return;
	/* Paused, no reply can come: the deadlines wait for the resume. */
	t = w->paused ? 0 : session_deadline(w->s, &acc);
	arm_timer(w, t, acc);
}

/* ---- session callbacks: the mailbox's events, forwarded ---- */

static void
s_starttls(void *ud)
{
	struct watcher *w = ud;

	if (transport_start_tls(w->t) < 0)
		schedule_teardown(w, -EPROTO);
}
/* In fetch mode the session reports only after session_examine(), with
 * w->mb set: every mailbox event below has its mailbox. */
static uint32_t
s_selected(void *ud, const struct session_selected *sel, bool *by_date_r)
{
	struct watcher *w = ud;

	return mailbox_selected(w->mb, sel, wall_now(w), by_date_r);
}

static size_t
s_known(void *ud, uint32_t *uids, size_t max, uint32_t *uidvalidity_r,
	uint64_t *modseq_r)
{
	struct watcher *w = ud;

	return mailbox_known(w->mb, uids, max, uidvalidity_r, modseq_r);
}

static void
s_vanished(void *ud, const struct codec_seqset *uids)
{
	struct watcher *w = ud;

	mailbox_vanished(w->mb, uids);
}

static void
s_dated(void *ud, const struct codec_fetch *f)
{
	struct watcher *w = ud;

	mailbox_dated(w->mb, f);
}

static uint32_t
s_dated_end(void *ud)
{
	struct watcher *w = ud;

	return mailbox_dated_end(w->mb);
}

static void
s_fetched(void *ud, const struct codec_fetch *f)
{
	struct watcher *w = ud;

	mailbox_fetched(w->mb, f);
}

static void
s_batch_end(void *ud)
{
	struct watcher *w = ud;

	mailbox_batch_end(w->mb);
}

static void
s_flags(void *ud, const struct codec_fetch *f)
{
	struct watcher *w = ud;

	mailbox_flags(w->mb, f);
}

static void
s_expunge(void *ud, uint32_t seq)
{
	struct watcher *w = ud;

	mailbox_expunge(w->mb, seq);
}

/* The session got past its login: a next refused token is a first one
 * again, the next connection of the account may log in, and the
 * credential is wiped (the session does not need it any more; the string
 * stays, empty, for the pointer it holds). */
static void
s_authenticated(void *ud)
{
	struct watcher *w = ud;

	w->token_retry = false;
	w->quiet_limit = false;
	cred_worked(w->cred);
	cred_cancel(&w->req);
	if (w->secret)
		wipe(w->secret, strlen(w->secret));
}

static void
s_unseen(void *ud, uint32_t count)
{
	struct watcher *w = ud;

	if (mailbox_set_unseen(w->mb, count))
		changed(w);
}

/* A session that got this far is healthy: the outage, if any, is over
 * (said, with its length, when its tries were logged at debug level
 * only), and the back-off starts again from its least. */
static void
healthy(struct watcher *w)
{
	if (w->failures > 1)
		log_info(w->log, "back after %.0f s (%u tries)",
			 (now_usec(w) - w->outage_start) / 1e6, w->failures);
	w->failures = 0;
	w->last_loss[0] = 0;
}

static void
s_idle(void *ud)
{
	struct watcher *w = ud;

	healthy(w);
	mailbox_idle(w->mb, session_exists(w->s), wall_now(w));
	set_wstate(w, W_WATCHING);
}

static void
s_ready(void *ud)
{
	struct watcher *w = ud;
	struct mailbox *done = w->mb;

	healthy(w);
	w->mb = NULL;
	set_wstate(w, W_WATCHING);
	w->env.ready(w->env.ud, w, done);
}

static void
s_notify(void *ud, bool on)
{
	struct watcher *w = ud;

	w->env.notify(w->env.ud, w, on);
}

static void
s_status(void *ud, const char *name, const struct session_status *st)
{
	struct watcher *w = ud;

	w->env.status(w->env.ud, w, name, st);
}

static void
s_mailbox_failed(void *ud, const char *name, const char *msg)
{
	struct watcher *w = ud;

	w->env.mailbox_failed(w->env.ud, name, msg);
}

static void
s_listed(void *ud, const char *name, char delimiter,
	 const struct codec_strlist *attrs, bool pushed)
{
	struct watcher *w = ud;

	if (w->env.listed)
		w->env.listed(w->env.ud, w, name, delimiter, attrs, pushed);
}

static void
s_list_end(void *ud, bool ok)
{
	struct watcher *w = ud;

	if (w->env.list_end)
		w->env.list_end(w->env.ud, w, ok);
}

/* Logs why the connection was lost or refused: a warning at the first
 * loss of an outage; for a retry that fails, info when it fails
 * otherwise than the try before, else debug only, its "reconnecting in"
 * line too (quiet_try). A 40 s outage logged 100 lines at info, and a
 * [LIMIT] refused at each retry a warning each time. */
static void
log_loss(struct watcher *w, const char *loss)
{
	int prio = w->failures ? LOG_INFO : LOG_WARNING;

	w->quiet_try = w->failures && !strcmp(loss, w->last_loss);
	log_at(w->quiet_try ? LOG_DEBUG : prio, w->log, "%s", loss);
	snprintf(w->last_loss, sizeof(w->last_loss), "%s", loss);
}

static void
s_failed(void *ud, enum session_fail why, const char *msg)
{
	struct watcher *w = ud;
	bool limit = why == SESSION_FAIL_LIMIT;

	switch (why) {
	case SESSION_FAIL_TOKEN:
		if (!w->token_retry) {
			log_warn(w->log,
				 "%s; asking oauth2_token_command for a new "
				 "token",
				 msg);
			w->token_retry = true;
			schedule_teardown(w, -EAGAIN);
			return;
		}
		/* Not for good, as a wrong password: a helper that gave a
		 * bad token may give a good one later (a trial's recovered,
		 * and only a reload brought the account back). */
		log_err(w->log,
			"%s, with a token just asked for; asking "
			"oauth2_token_command again in %d minutes (a reload "
			"asks at once)",
			msg, TOKEN_RETRY / 60);
		schedule_teardown(w, -EKEYREJECTED);
		return;
	case SESSION_FAIL_AUTH_PLAIN:
		/* The same credential let another connection in. */
		if (cred_has_worked(w->cred)) {
			char loss[sizeof(w->last_loss)];

			snprintf(loss, sizeof(loss),
				 "%s; the same password logged in before: "
				 "taken as a limit on connections",
				 msg);
			log_loss(w, loss);
			limit = true;
			break;
		}
		/* fall through */
	case SESSION_FAIL_AUTH:
	case SESSION_FAIL_TLS:
		log_err(w->log, "%s; not retrying until the configuration "
				 "is reloaded",
			msg);
		/* Nor on the account's other connections, which would each
		 * send it once more after a password change (trial AM): a
		 * server may lock the account after a few. */
		if (why != SESSION_FAIL_TLS)
			cred_refused(w->cred);
		w->gave_up = why == SESSION_FAIL_TLS
				     ? "the server does not offer the TLS "
				       "or login asked for"
				     : "the login was refused";
		set_wstate(w, W_GAVE_UP);
		break;
	case SESSION_FAIL_BYE:
		if (w->state == W_STOPPING) {
			log_debug(w->log, "%s", msg);
			/* The server answered the LOGOUT sent from IDLE and
			 * reported no new mail meanwhile: the mailbox was
			 * seen whole when the stop began. */
			if (w->stop_at && w->mb &&
			    session_exists(w->s) == w->stop_messages)
				mailbox_logged_out(w->mb, w->stop_at,
						   w->stop_messages);
			break;
		}
		/* fall through */
	default:
		if (limit && w->quiet_limit)
			log_debug(w->log, "%s", msg);
		else
			log_loss(w, msg);
		break;
	}
	if (limit)
		w->env.limited(w->env.ud, w);
	schedule_teardown(w, why == SESSION_FAIL_MAILBOX ? -ENOENT : -EIO);
}

static const struct session_cb session_cb = {
	.starttls = s_starttls,
	.authenticated = s_authenticated,
	.selected = s_selected,
	.fetched = s_fetched,
	.batch_end = s_batch_end,
	.flags = s_flags,
	.expunge = s_expunge,
	.unseen = s_unseen,
	.idle = s_idle,
	.failed = s_failed,
	.dated = s_dated,
	.dated_end = s_dated_end,
	.notify = s_notify,
	.status = s_status,
	.ready = s_ready,
	.mailbox_failed = s_mailbox_failed,
	.known = s_known,
	.vanished = s_vanished,
	.listed = s_listed,
	.list_end = s_list_end,
};

/* ---- transport callbacks ---- */

static void
t_connected(void *ud)
{
	struct watcher *w = ud;

	w->reached = w->a->tls != TLS_STARTTLS;
	log_debug(w->log, "connected to %s:%u%s", w->a->host, w->a->port,
		  transport_is_tls(w->t) ? " (TLS)" : "");
	session_connected(w->s, now_usec(w));
	pump(w);
}

static void
t_tls_ready(void *ud)
{
	struct watcher *w = ud;

	w->reached = true;
	session_tls_ready(w->s, now_usec(w));
	pump(w);
}

static void
t_data(void *ud, const char *buf, size_t len)
{
	struct watcher *w = ud;

	if (!w->s)
		return;
	w->heard = wall_now(w);
	session_feed(w->s, buf, len, now_usec(w));
	pump(w);
}

static void
t_closed(void *ud, int err)
{
	struct watcher *w = ud;

	if (!err)
		w->heard = wall_now(w);
	if (w->state == W_STOPPING) {
		schedule_teardown(w, 0);
		return;
	}
	if (w->state != W_GAVE_UP) {
		char loss[sizeof(w->last_loss)];

		if (err)
			snprintf(loss, sizeof(loss), "%s: %s",
				 w->reached ? "connection lost"
					    : "cannot connect",
				 transport_errmsg(w->t));
		else
			snprintf(loss, sizeof(loss),
				 "server closed the connection");
		log_loss(w, loss);
	}
	schedule_teardown(w, err ? err : -ECONNRESET);
}

static const struct transport_cb transport_cb = {
	.connected = t_connected,
	.tls_ready = t_tls_ready,
	.data = t_data,
	.closed = t_closed,
};

/* ---- connection life ---- */

/* Back-off before the next attempt: 1 s doubling to 1 min (see also
 * REFUSED_MAX), each delay drawn between 75% and 100% so that many
 * watchers do not reconnect in step. */
static uint64_t
backoff_usec(struct watcher *w, int err)
{
	uint64_t s = BACKOFF_MIN;

	if (err == -ENOENT)
		return MAILBOX_RETRY * USEC_PER_SEC;
	if (err == -EKEYREJECTED)
		return TOKEN_RETRY * USEC_PER_SEC;
	for (unsigned i = 1; i < w->failures && s < BACKOFF_MAX; i++)
		s *= 2;
	if (s > BACKOFF_MAX)
		s = BACKOFF_MAX;
	if (err == -ECONNREFUSED && s > REFUSED_MAX &&
	    now_usec(w) - w->outage_start < REFUSED_WINDOW * USEC_PER_SEC)
		s = REFUSED_MAX;
	s *= USEC_PER_SEC;
	return s - (uint64_t)(s / 4 * (random() / (double)RAND_MAX));
}

/* Wipes and frees the connection's credential. */
static void
drop_secret(struct watcher *w)
{
	cred_cancel(&w->req);
	if (w->secret) {
		wipe(w->secret, strlen(w->secret));
		freep(&w->secret);
	}
}

static void
close_connection(struct watcher *w)
{
	session_free(&w->s);
	transport_free(&w->t);
	drop_secret(w);
	if (w->mb)
		mailbox_closed(w->mb, wall_now(w), w->heard);
	if (w->fetch_mode)
		w->mb = NULL;
}

static int
on_teardown(sd_event_source *src, void *ud)
{
	struct watcher *w = ud;
	uint64_t delay;

	(void)src;
	close_connection(w);
	if (w->state == W_STOPPING || w->state == W_STOPPED) {
		arm_timer(w, 0, 0);
		set_wstate(w, W_STOPPED);
		return 0;
	}
	w->env.failed(w->env.ud, w);
	if (w->state == W_GAVE_UP) {
		arm_timer(w, 0, 0);
		return 0;
	}
	if (w->teardown_err == -EAGAIN) {
		/* A refused token: once, with a new one, at once. */
		connect_now(w);
		return 0;
	}
	if (!w->failures++)
		w->outage_start = now_usec(w);
	delay = backoff_usec(w, w->teardown_err);
	w->retry_at = now_usec(w) + delay;
	log_at(w->quiet_try ? LOG_DEBUG : LOG_INFO, w->log, "%s in %.1f s",
	       w->teardown_err == -ENOENT ? "trying the mailbox again"
					  : "reconnecting",
	       delay / 1e6);
	w->quiet_try = false;
	arm_timer(w, w->retry_at, USEC_PER_SEC / 10);
	set_wstate(w, W_WAITING);
	return 0;
}

/* Closes the connection from the loop, not from inside a transport or
 * session callback. */
static void
schedule_teardown(struct watcher *w, int err)
{
	w->teardown_err = err;
	sd_event_source_set_enabled(w->teardown, SD_EVENT_ONESHOT);
}

static void start_connection(struct watcher *w);

/* The credential provider answered w's request. */
static void
on_cred(void *ud, const char *secret)
{
	struct watcher *w = ud;

	if (!secret) {
		w->req = NULL; /* gone */
		if (cred_was_refused(w->cred)) {
			log_info(w->log, "not logging in: the server refused "
					 "the password on another connection "
					 "(reload to retry)");
			w->gave_up = "the login was refused";
			set_wstate(w, W_GAVE_UP);
		} else {
			/* Logged by the provider; retried with back-off. */
			w->no_secret = true;
		}
		schedule_teardown(w, -EIO);
		return;
	}
	w->no_secret = false;
	w->secret = xstrdup(secret);
	start_connection(w);
}

/* Asks for the credential, then connects (on_cred). */
static void
connect_now(struct watcher *w)
{
	close_connection(w);
	arm_timer(w, 0, 0);
	set_wstate(w, W_CONNECTING);
	w->req = cred_ask(w->cred, on_cred, w);
}

static void
start_connection(struct watcher *w)
{
	struct transport_opts to = {
		.host = w->a->host,
		.port = w->a->port,
		.implicit_tls = w->a->tls == TLS_IMPLICIT,
		.starttls = w->a->tls == TLS_STARTTLS,
		.ca_file = w->a->ca_file,
		.connect_timeout = CONNECT_TIMEOUT,
		.log = w->log,
		/* From the second retry of an outage on: healthy() says
		 * "back after" when one logs in. Nor for a try at one
		 * connection more, which may well be refused (quietly):
		 * the account says when it is not (trial N read "connected
		 * to" alone as the mailbox being watched). */
		.quiet = w->failures > 1 || w->quiet_limit,
	};
	struct session_opts so = {
		.username = w->username,
		.password = w->secret,
		.oauth2 = cred_is_token(w->cred),
		.auth = w->a->auth,
		.send_id = w->a->send_id,
		.mailbox = w->fetch_mode ? NULL : mailbox_name(w->mb),
		.notify = w->notify,
		.others = w->others,
		.n_others = w->n_others,
		.mailbox_names = w->mailbox_names,
		.starttls = w->a->tls == TLS_STARTTLS,
		.plaintext = w->a->tls == TLS_NONE,
		.idle_timeout = w->a->d.idle_timeout,
		.poll_interval = w->a->d.poll_interval,
		.command_timeout = COMMAND_TIMEOUT,
		.log = w->log,
	};
	int r;

	log_debug(w->log, "connecting to %s:%u", w->a->host, w->a->port);
	w->reached = false;
	w->heard = 0;
	w->s = session_new(&so, &session_cb, w);
	r = transport_new(w->env.event, &to, &transport_cb, w,
			  &w->t);
	if (r < 0) {
		log_warn(w->log, "cannot connect: %s", strerror(-r));
		schedule_teardown(w, r);
		return;
	}
	if (w->paused) {
		/* This session's deadlines wait from now. */
		w->paused_at = now_usec(w);
		transport_pause(w->t, true);
	}
}

struct watcher *
watcher_new(const struct watcher_env *env, const struct watcher_opts *o)
{
	struct watcher *w = xcalloc(1, sizeof(*w));
	int r;

	w->env = *env;
	w->a = o->a;
	w->mb = o->mb;
	w->fetch_mode = !o->mb;
	w->notify = o->notify;
	w->others = o->others;
	w->n_others = o->n_others;
	w->mailbox_names = o->mailbox_names;
	w->quiet_limit = o->quiet_limit;
	w->username = xstrdup(o->a->username);
	w->account = xstrdup(o->a->name);
	w->cred = o->cred;
	w->own_log.account = w->account;
	w->log = w->mb ? mailbox_log(w->mb) : &w->own_log;
	r = sd_event_add_time(env->event, &w->timer, CLOCK_BOOTTIME, 0, 0,
			      on_timer, w);
	if (r >= 0)
		r = sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(env->event, &w->teardown, on_teardown,
				       w);
	if (r >= 0)
		r = sd_event_source_set_enabled(w->teardown, SD_EVENT_OFF);
	if (r < 0) {
		log_err(w->log, "event loop: %s", strerror(-r));
		abort();
	}
	connect_now(w);
	return w;
}

void
watcher_free(struct watcher **wp)
{
	struct watcher *w = *wp;

	if (!w)
		return;
	/* The connection closes without the mailbox's bookkeeping: the
	 * owner saved the mailbox's state before, while the session could
	 * still say it was idle. */
	session_free(&w->s);
	transport_free(&w->t);
	drop_secret(w);
	sd_event_source_disable_unref(w->timer);
	sd_event_source_disable_unref(w->teardown);
	free(w->username);
	free(w->account);
	free(w);
	*wp = NULL;
}

void
watcher_rebind(struct watcher *w, const struct account *a)
{
	w->a = a;
}

uint32_t
watcher_exists(const struct watcher *w)
{
	return w->s ? session_exists(w->s) : 0;
}

bool
watcher_ready(const struct watcher *w)
{
	return w->fetch_mode && watcher_is_idle(w);
}

void
watcher_status(struct watcher *w, const char *mailbox)
{
	if (!w->fetch_mode || !watcher_connected(w))
		return;
	session_status(w->s, mailbox, now_usec(w));
	pump(w);
}

void
watcher_list(struct watcher *w, const char *const *patterns, size_t n,
	     bool status)
{
	if (!w->fetch_mode || !watcher_connected(w))
		return;
	session_list(w->s, patterns, n, status, now_usec(w));
	pump(w);
}

bool
watcher_list_status(const struct watcher *w)
{
	return watcher_connected(w) && session_list_status(w->s);
}

void
watcher_set_others(struct watcher *w, const char *const *others, size_t n)
{
	w->others = others;
	w->n_others = n;
	if (!w->s)
		return;
	session_set_others(w->s, others, n, now_usec(w));
	pump(w);
}

void
watcher_examine(struct watcher *w, struct mailbox *mb)
{
	if (!watcher_ready(w))
		return;
	w->mb = mb;
	session_examine(w->s, mailbox_name(mb), mailbox_next_uid(mb),
			now_usec(w));
	pump(w);
}

void
watcher_stop(struct watcher *w)
{
	if (w->state == W_STOPPING || w->state == W_STOPPED)
		return;
	if (!w->s || !w->t || w->state != W_WATCHING) {
		close_connection(w);
		arm_timer(w, 0, 0);
		set_wstate(w, W_STOPPED);
		return;
	}
	if (session_is_idle(w->s)) {
		w->stop_at = wall_now(w);
		w->stop_messages = session_exists(w->s);
	}
	set_wstate(w, W_STOPPING);
	session_logout(w->s, now_usec(w));
	pump(w);
	arm_timer(w, now_usec(w) + LOGOUT_TIMEOUT * USEC_PER_SEC,
		  USEC_PER_SEC / 10);
}

void
watcher_pause(struct watcher *w, bool paused)
{
	if (w->paused == paused)
		return;
	w->paused = paused;
	if (paused) {
		w->paused_at = now_usec(w);
		if (w->t)
			transport_pause(w->t, true);
		/* The session's deadline is off until the resume (pump());
		 * a reconnect's or LOGOUT's stays. */
		if (w->s && w->state != W_STOPPING)
			arm_timer(w, 0, 0);
		return;
	}
	if (w->s) {
		session_postpone(w->s, now_usec(w) - w->paused_at);
		pump(w);
	}
	if (w->t)
		transport_pause(w->t, false);
}

bool
watcher_gave_up(const struct watcher *w)
{
	return w->state == W_GAVE_UP ||
	       (w->state == W_WAITING && w->teardown_err == -EKEYREJECTED);
}

bool
watcher_stopped(const struct watcher *w)
{
	return w->state == W_STOPPED;
}

void
watcher_retry(struct watcher *w)
{
	if (w->state == W_WAITING)
		connect_now(w);
}

void
watcher_probe(struct watcher *w)
{
	if (w->state == W_WATCHING && w->s) {
		session_probe(w->s, now_usec(w), WATCHER_PROBE_TIMEOUT);
		pump(w);
	} else {
		watcher_retry(w);
	}
}

void
watcher_reopen(struct watcher *w)
{
	if (watcher_connected(w))
		schedule_teardown(w, -ESTALE);
}

bool
watcher_missing(const struct watcher *w)
{
	return w->state == W_WAITING && watcher_mailbox_refused(w);
}

bool
watcher_mailbox_refused(const struct watcher *w)
{
	return w->teardown_err == -ENOENT;
}

void
watcher_quiet_retry(struct watcher *w)
{
	w->quiet_try = true;
}

bool
watcher_connected(const struct watcher *w)
{
	return w->state == W_WATCHING && w->s;
}

int64_t
watcher_heard(const struct watcher *w)
{
	return w->heard;
}

bool
watcher_is_idle(const struct watcher *w)
{
	return w->state == W_WATCHING && w->s && session_is_idle(w->s);
}

/* The setting whose command gets the credential. */
static const char *
cred_command(const struct watcher *w)
{
	return cred_is_token(w->cred) ? "oauth2_token_command"
				      : "password_command";
}

/* "reconnecting" with when (" at 10:02:03", or "") and why: the last
 * loss, the same through the tries while it does not change (a trial's
 * status said "connecting" through two minutes of [LIMIT] refusals, and
 * of a port that does not speak the TLS asked for). */
static void
reconnecting(struct watcher *w, const char *when)
{
	if (w->last_loss[0])
		snprintf(w->describe, sizeof(w->describe),
			 "reconnecting%s (%s)", when, w->last_loss);
	else
		snprintf(w->describe, sizeof(w->describe), "reconnecting%s",
			 when);
}

const char *
watcher_describe(struct watcher *w)
{
	if (w->state == W_WAITING) {
		/* The time of day of a try far off, not "in N s": this text
		 * stays up (status --follow, systemctl status) until
		 * something changes. Of a try soon, nothing: a status bar
		 * would be redrawn at each try of an outage. */
		uint64_t now = now_usec(w);
		unsigned secs = w->retry_at > now ? (w->retry_at - now + 999999) /
							USEC_PER_SEC
						  : 0;
		time_t at = (time_t)wall_now(w) + (time_t)secs;
		struct tm tm;
		char hms[16] = "";

		if (secs >= RETRY_TOLD && localtime_r(&at, &tm))
			strftime(hms, sizeof(hms), " at %H:%M:%S", &tm);
		if (w->teardown_err == -ENOENT)
			snprintf(w->describe, sizeof(w->describe),
				 "cannot open the mailbox; trying again%s", hms);
		else if (w->teardown_err == -EKEYREJECTED)
			snprintf(w->describe, sizeof(w->describe),
				 "the token was refused; trying again%s", hms);
		else if (w->no_secret && *cred_failure(w->cred))
			snprintf(w->describe, sizeof(w->describe),
				 "%s failed (%s); trying again%s",
				 cred_command(w), cred_failure(w->cred), hms);
		else if (w->no_secret)
			snprintf(w->describe, sizeof(w->describe),
				 "%s failed; trying again%s", cred_command(w),
				 hms);
		else
			reconnecting(w, hms);
	} else if (w->state == W_GAVE_UP && w->gave_up) {
		snprintf(w->describe, sizeof(w->describe),
			 "stopped: %s (reload to retry)", w->gave_up);
	} else if (w->state == W_CONNECTING && w->req && !w->secret &&
		   cred_running(w->cred)) {
		/* A trial's status said "connecting" for the 30 s a hung
		 * helper ran. */
		snprintf(w->describe, sizeof(w->describe), "waiting for %s",
			 cred_command(w));
	} else if (w->state == W_CONNECTING && w->failures) {
		reconnecting(w, "");
	} else {
		snprintf(w->describe, sizeof(w->describe), "%s",
			 wstate_names[w->state]);
	}
	return w->describe;
}
