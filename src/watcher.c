#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"
#include "state.h"
#include "transport.h"

#define USEC_PER_SEC 1000000ULL
#define BACKOFF_MIN 1           /* seconds */
#define BACKOFF_MAX 300
/* While connections are refused (the host is up, its IMAP server is
 * restarting) in the first REFUSED_WINDOW seconds of an outage, retry at
 * least every REFUSED_MAX seconds: a refused connect costs nothing, and
 * the server is back within seconds. */
#define REFUSED_MAX 4
#define REFUSED_WINDOW 120
#define MAILBOX_RETRY 300       /* seconds, after EXAMINE failed */
#define COMMAND_TIMEOUT 30      /* seconds a command may take */
#define CONNECT_TIMEOUT 30
#define LOGOUT_TIMEOUT 2        /* seconds LOGOUT may take at stop */
#define PROBE_TIMEOUT 10        /* seconds a probe after resume may take */
#define MAX_LIVE 64             /* announced messages followed for withdraw */
#define LIVE_SPAN 200           /* UIDs below the mark re-read on reconnect */
#define BATCH_MAX 1000          /* more new messages at once: a summary */
/* Seconds by which the time the mailbox was last seen whole may advance
 * before it is written by itself (else it goes with the next write). */
#define SEEN_STEP 600

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
	/* Copies of what a live connection lends out (log lines, the
	 * session), so the configuration can be replaced under it. */
	char *name, *mailbox, *username;
	const char *password;
	struct log_ctx log;
	enum wstate state;

	struct transport *t;
	struct session *s;
	sd_event_source *timer;    /* session deadline, or reconnect time */
	sd_event_source *teardown; /* deferred close after a failure */
	sd_event_source *saver;    /* deferred state write (save_soon) */
	int teardown_err;          /* < 0: why; reconnect unless gave up */

	unsigned failures;         /* consecutive, for the back-off */
	uint64_t outage_start;     /* usec, when failures went from 0 to 1 */
	uint64_t retry_at;         /* usec, in W_WAITING */

	/* UID bookkeeping: everything up to mark was handled (announced or
	 * skipped) under uidvalidity. 0/0 when nothing is known. */
	uint32_t uidvalidity, mark;
	/* Wall-clock seconds up to which every message that arrived was
	 * handled, as the server was there to say (0: unknown), and the
	 * message count then: after a UIDVALIDITY change, mail with a later
	 * INTERNALDATE is what arrived since. */
	int64_t seen;
	uint32_t messages;
	/* What the state file says. */
	uint32_t saved_uidvalidity, saved_mark, saved_messages;
	int64_t saved_seen;
	bool catching_up;          /* the first batch after a gap */
	/* The session went idle at idle_at (0: not since the last state
	 * write) with idle_messages messages: seen once still idle when the
	 * loop has nothing else to do. */
	int64_t idle_at;
	uint32_t idle_messages;
	/* A clean stop from IDLE began at stop_at (0: not from IDLE) with
	 * stop_messages messages. */
	int64_t stop_at;
	uint32_t stop_messages;

	/* Catching up after a UIDVALIDITY change (see uidvalidity_changed):
	 * until it completes, the state file keeps the values from before
	 * (old_*), which come back if the connection ends first. since:
	 * only messages whose INTERNALDATE is later count as new (0:
	 * all); dated_from: the lowest such unseen UID the date scan found;
	 * uidnext: the mailbox's at EXAMINE. */
	bool rebasing;
	uint32_t old_uidvalidity, old_mark;
	int64_t since;
	uint32_t dated_from, uidnext;

	/* The batch being fetched: its unseen new messages, all of them
	 * until it is known to be summarised, then only the first
	 * SINK_SUMMARY_FIRST; batch_total counts them all. */
	struct mail_event *batch;
	size_t n_batch, cap_batch, batch_total;
	uint32_t batch_max;        /* highest UID in the batch, seen or not */
	uint32_t *batch_seq;       /* sequence numbers of batch[] */

	/* Messages announced and not read or deleted since, so that a \Seen
	 * flag or an EXPUNGE can withdraw their notification. Oldest (lowest
	 * UID) first. seq is 0 from a reconnect until the catch-up fetch
	 * tells the new connection's numbers (live_resync). */
	struct live {
		uint32_t seq, uid;
	} live[MAX_LIVE];
	size_t n_live;

	char describe[128];
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

/* t as local time for log lines, e.g. "2024-01-01 10:00:00 +0100". */
static const char *
time_text(int64_t t, char buf[static 32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm) ||
	    !strftime(buf, 32, "%Y-%m-%d %H:%M:%S %z", &tm))
		snprintf(buf, 32, "@%lld", (long long)t);
	return buf;
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
	log_debug(&w->log, "watcher: %s -> %s", wstate_names[w->state],
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
	if (w->s) {
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
	uint64_t t, acc;

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
	t = session_deadline(w->s, &acc);
	arm_timer(w, t, acc);
}

/* Takes the time the session went idle as the time the mailbox was seen
 * whole, when it is still idle (no EXISTS came with or after the IDLE's
 * "+" meanwhile). */
static void
take_idle_time(struct watcher *w)
{
	if (w->idle_at && w->s && session_is_idle(w->s) &&
	    session_exists(w->s) == w->idle_messages) {
		w->seen = w->idle_at;
		w->messages = w->idle_messages;
	}
	w->idle_at = 0;
}

/* Writes the state file when what it should say changed: the mark, but
 * never past a message a sink has not acted on (a queued hook; at a stop
 * also a running one), so that a kill loses nothing; and the time the
 * mailbox was seen whole, when it advanced by SEEN_STEP or the mailbox
 * became empty or not (at all, when final). Not while catching up after a
 * UIDVALIDITY change: the file keeps what came before until that
 * completes. */
static void
save_state(struct watcher *w, bool final)
{
	uint32_t m = w->mark, messages;
	int64_t seen;
	bool seen_moved;

	for (size_t i = 0; i < w->env.n_sinks; i++) {
		struct sink *k = w->env.sinks[i];
		uint32_t u = k->ops->unfinished
				     ? k->ops->unfinished(k, w->name, w->mailbox)
				     : 0;

		if (u && u - 1 < m)
			m = u - 1;
	}
	take_idle_time(w);
	/* A message held back was not handled: nor was the mailbox seen
	 * whole since. */
	seen = m == w->mark ? w->seen : w->saved_seen;
	messages = m == w->mark ? w->messages : w->saved_messages;
	if (final)
		seen_moved = seen != w->saved_seen ||
			     messages != w->saved_messages;
	else
		seen_moved = seen >= w->saved_seen + SEEN_STEP ||
			     seen < w->saved_seen ||
			     !messages != !w->saved_messages;
	if (w->rebasing || !w->uidvalidity ||
	    (m == w->saved_mark && w->uidvalidity == w->saved_uidvalidity &&
	     !seen_moved))
		return;
	if (state_save(w->name, w->mailbox,
		       &(struct state){.uidvalidity = w->uidvalidity,
				       .uid = m,
				       .seen = seen,
				       .messages = messages}) == 0) {
		w->saved_mark = m;
		w->saved_uidvalidity = w->uidvalidity;
		w->saved_seen = seen;
		w->saved_messages = messages;
	}
}

/* Writes the state file once the loop has nothing more urgent to do: the
 * write ends in fdatasync, which can block for milliseconds, so it comes
 * after every ready connection was served and the hooks have started, and
 * several batches share one write per mailbox. A kill in between only
 * means those messages are announced again at the next start. */
static void
save_soon(struct watcher *w)
{
	sd_event_source_set_enabled(w->saver, SD_EVENT_ONESHOT);
}

static int
on_save(sd_event_source *src, void *ud)
{
	(void)src;
	save_state(ud, false);
	return 0;
}

/* ---- announced messages (struct live) ---- */

static void
live_forget(struct watcher *w, size_t i)
{
	memmove(&w->live[i], &w->live[i + 1],
		(w->n_live - i - 1) * sizeof(*w->live));
	w->n_live--;
}

/* live[i] is no longer new: withdraw it everywhere and forget it. */
static void
live_withdraw(struct watcher *w, size_t i)
{
	for (size_t j = 0; j < w->env.n_sinks; j++) {
		struct sink *k = w->env.sinks[j];

		if (k->ops->withdraw)
			k->ops->withdraw(k, w->a, w->mailbox, w->uidvalidity,
					 w->live[i].uid);
	}
	live_forget(w, i);
}

static void
live_add(struct watcher *w, uint32_t seq, uint32_t uid)
{
	if (w->n_live == MAX_LIVE)
		live_forget(w, 0);
	w->live[w->n_live++] = (struct live){seq, uid};
}

/* The message at seq was read or deleted. When expunged, later sequence
 * numbers move down by one. */
static void
live_gone(struct watcher *w, uint32_t seq, bool expunged)
{
	for (size_t i = 0; i < w->n_live; i++) {
		if (w->live[i].seq == seq)
			live_withdraw(w, i--);
		else if (expunged && w->live[i].seq > seq)
			w->live[i].seq--;
	}
}

/* The catch-up fetch after a reconnect returned f, announced before: learn
 * its new sequence number, and withdraw it if it was read meanwhile. */
static void
live_resync(struct watcher *w, const struct codec_fetch *f)
{
	for (size_t i = 0; i < w->n_live; i++) {
		if (w->live[i].uid != f->uid)
			continue;
		w->live[i].seq = f->seq;
		if (codec_strlist_has(&f->flags, "\\Seen"))
			live_withdraw(w, i);
		return;
	}
}

/* After that fetch (or without one, when the mailbox is empty): what it did
 * not return was deleted meanwhile. */
static void
live_resync_done(struct watcher *w)
{
	for (size_t i = 0; i < w->n_live; i++)
		if (!w->live[i].seq)
			live_withdraw(w, i--);
}

/* ---- session callbacks ---- */

static void
s_starttls(void *ud)
{
	struct watcher *w = ud;

	if (transport_start_tls(w->t) < 0)
		schedule_teardown(w, -EPROTO);
}

/* Nothing known of the mailbox (or nothing to know, it being empty): what
 * it holds now is taken as handled, none of it is new, and it counts as
 * seen whole now. Returns the first UID to announce. */
static uint32_t
start_afresh(struct watcher *w, uint32_t uidvalidity, uint32_t exists)
{
	w->uidvalidity = uidvalidity;
	w->mark = w->uidnext - 1;
	w->seen = wall_now(w);
	w->messages = exists;
	w->catching_up = false;
	save_soon(w);
	return w->uidnext;
}

/* The mailbox's UIDVALIDITY is not the one of the state: its UIDs say
 * nothing of what was handled. What arrived since mailwatch last saw it
 * whole is caught up with: all of it when it was empty then (as servers
 * that give an empty mailbox a new UIDVALIDITY at every session have
 * it), else the unseen messages whose INTERNALDATE is later than that
 * time, found by the date scan. Without that time, only new mail from
 * now is announced. Hooks get the new UIDVALIDITY. */
static uint32_t
uidvalidity_changed(struct watcher *w, uint32_t uidvalidity, uint32_t exists,
		    bool *by_date_r)
{
	char when[32];

	/* Their notifications are of the old mailbox. */
	while (w->n_live)
		live_withdraw(w, 0);
	if (!exists || !w->seen) {
		if (exists)
			log_warn(&w->log,
				 "UIDVALIDITY changed from %u to %u: the "
				 "mailbox was recreated; not knowing when it "
				 "was last seen, announcing only new mail "
				 "from now",
				 w->uidvalidity, uidvalidity);
		else
			log_info(&w->log,
				 "UIDVALIDITY changed from %u to %u; the "
				 "mailbox is empty",
				 w->uidvalidity, uidvalidity);
		return start_afresh(w, uidvalidity, exists);
	}
	w->rebasing = true;
	w->old_uidvalidity = w->uidvalidity;
	w->old_mark = w->mark;
	w->uidvalidity = uidvalidity;
	w->mark = 0;
	w->catching_up = true;
	w->dated_from = 0;
	time_text(w->seen, when);
	if (!w->messages) {
		log_warn(&w->log,
			 "UIDVALIDITY changed from %u to %u; the mailbox was "
			 "empty when last seen (%s): catching up with all "
			 "it holds",
			 w->old_uidvalidity, uidvalidity, when);
		return 1;
	}
	log_warn(&w->log,
		 "UIDVALIDITY changed from %u to %u: the mailbox was "
		 "recreated or renumbered; catching up with the unseen mail "
		 "that arrived since it was last seen (%s)",
		 w->old_uidvalidity, uidvalidity, when);
	w->since = w->seen;
	*by_date_r = true;
	return 0;
}

/* The catch-up after a UIDVALIDITY change is over (or the connection that
 * made it): the state may be written again. */
static void
end_rebase(struct watcher *w)
{
	if (!w->rebasing)
		return;
	w->rebasing = false;
	w->since = 0;
	save_soon(w);
}

static uint32_t
s_selected(void *ud, uint32_t uidvalidity, uint32_t uidnext, uint32_t exists,
	   bool *by_date_r)
{
	struct watcher *w = ud;

	log_debug(&w->log, "UIDVALIDITY %u UIDNEXT %u EXISTS %u", uidvalidity,
		  uidnext, exists);
	w->uidnext = uidnext ? uidnext : 1;
	if (w->uidvalidity && w->uidvalidity != uidvalidity)
		return uidvalidity_changed(w, uidvalidity, exists, by_date_r);
	if (!w->uidvalidity)
		return start_afresh(w, uidvalidity, exists);
	w->catching_up = w->mark + 1 < w->uidnext;
	if (w->catching_up)
		log_info(&w->log, "catching up from UID %u (UIDNEXT %u)",
			 w->mark + 1, w->uidnext);
	/* Also re-read what was announced before, to learn whether it was
	 * read or deleted meanwhile; too far back, it is forgotten. */
	while (w->n_live && w->live[0].uid + LIVE_SPAN <= w->mark)
		live_forget(w, 0);
	return w->n_live ? w->live[0].uid : w->mark + 1;
}

/* True when the batch is shown as one summary rather than message by
 * message: mail that arrived while away beyond what catch_up allows one by
 * one, or more than BATCH_MAX at once. Once true it stays true, since the
 * count only grows. */
static bool
summarised(const struct watcher *w)
{
	const struct account_defaults *d = &w->a->d;
	size_t n = w->batch_total;

	if (n > BATCH_MAX)
		return true;
	if (!w->catching_up)
		return false;
	return d->catch_up == CATCH_UP_SUMMARY ? n > 1 : n > d->catch_up_max;
}

/* True when f's INTERNALDATE is later than w->since, or cannot be told
 * (absent, not a date): better announced than lost. */
static bool
arrived_since(const struct watcher *w, const struct codec_fetch *f)
{
	int64_t t;

	if (!w->since || !(f->have & CODEC_FETCH_INTERNALDATE) ||
	    f->internaldate.nil ||
	    !codec_internaldate(f->internaldate.ptr, f->internaldate.len, &t))
		return true;
	return t > w->since;
}

static void
s_dated(void *ud, const struct codec_fetch *f)
{
	struct watcher *w = ud;

	if (codec_strlist_has(&f->flags, "\\Seen") || !arrived_since(w, f))
		return;
	if (!w->dated_from || f->uid < w->dated_from)
		w->dated_from = f->uid;
}

/* The date scan is over: everything below the first new UID it found is
 * old. */
static uint32_t
s_dated_end(void *ud)
{
	struct watcher *w = ud;
	uint32_t from = w->dated_from ? w->dated_from : w->uidnext;
	char when[32];

	w->mark = from - 1;
	if (w->dated_from)
		log_info(&w->log, "catching up from UID %u (arrived since %s)",
			 from, time_text(w->since, when));
	else
		log_info(&w->log, "nothing unseen arrived since %s",
			 time_text(w->since, when));
	return from;
}

static void
s_fetched(void *ud, const struct codec_fetch *f)
{
	struct watcher *w = ud;
	struct mail_event *ev;

	if (f->uid <= w->mark) {
		live_resync(w, f); /* announced before this connection */
		return;
	}
	if (f->uid > w->batch_max)
		w->batch_max = f->uid;
	if (codec_strlist_has(&f->flags, "\\Seen")) {
		log_debug(&w->log, "UID %u is already seen", f->uid);
		return;
	}
	if (!arrived_since(w, f)) {
		log_debug(&w->log, "UID %u arrived before the mailbox was last "
				   "seen",
			  f->uid);
		return;
	}
	w->batch_total++;
	if (summarised(w)) {
		/* Keep only what the summary shows: memory stays bounded
		 * however much mail waited. */
		while (w->n_batch > SINK_SUMMARY_FIRST)
			mail_event_finish(&w->batch[--w->n_batch]);
		if (w->n_batch == SINK_SUMMARY_FIRST)
			return;
	}
	if (w->n_batch == w->cap_batch) {
		w->cap_batch = w->cap_batch ? 2 * w->cap_batch : 8;
		w->batch = xrealloc(w->batch,
				    w->cap_batch * sizeof(*w->batch));
		w->batch_seq = xrealloc(w->batch_seq,
					w->cap_batch * sizeof(*w->batch_seq));
	}
	w->batch_seq[w->n_batch] = f->seq;
	ev = &w->batch[w->n_batch++];
	memset(ev, 0, sizeof(*ev));
	ev->account = w->name;
	ev->mailbox = w->mailbox;
	ev->uid = f->uid;
	ev->uidvalidity = w->uidvalidity;
	mail_event_from_fetch(ev, f);
}

/* Sorts the batch by UID (servers send FETCH in sequence order, which is
 * UID order, so this is usually one pass). */
static void
sort_batch(struct watcher *w)
{
	for (size_t i = 1; i < w->n_batch; i++) {
		struct mail_event ev = w->batch[i];
		uint32_t seq = w->batch_seq[i];
		size_t j = i;

		for (; j > 0 && w->batch[j - 1].uid > ev.uid; j--) {
			w->batch[j] = w->batch[j - 1];
			w->batch_seq[j] = w->batch_seq[j - 1];
		}
		w->batch[j] = ev;
		w->batch_seq[j] = seq;
	}
}

/* Announces one batch to every sink, in UID order: each message, or one
 * summary (see summarised()) to sinks that have one, while hooks then get
 * only on_new_mail_post. catch_up = skip announces nothing that arrived
 * while away. */
static void
announce(struct watcher *w)
{
	size_t n = w->n_batch, total = w->batch_total;
	bool summary = summarised(w);

	sort_batch(w);
	if (w->catching_up && w->a->d.catch_up == CATCH_UP_SKIP) {
		log_info(&w->log, "not announcing %zu messages that arrived "
				  "while away (catch_up = skip)",
			 total);
		return;
	}
	for (size_t j = 0; j < w->env.n_sinks; j++) {
		struct sink *k = w->env.sinks[j];

		if (summary && k->ops->summary)
			k->ops->summary(k, w->a, w->mailbox, w->batch, n,
					total);
		for (size_t i = 0; i < n && !summary; i++)
			k->ops->send(k, w->a, &w->batch[i]);
		k->ops->batch_done(k, w->a, w->mailbox, total);
	}
	/* Logged after the sinks started: a slow journal must not delay
	 * the hooks. */
	if (summary)
		log_info(&w->log, "%zu new messages: announced a summary",
			 total);
	for (size_t i = 0; i < n && !summary; i++) {
		log_info(&w->log, "new mail UID %u from %s: %s",
			 w->batch[i].uid, w->batch[i].from,
			 w->batch[i].subject);
		live_add(w, w->batch_seq[i], w->batch[i].uid);
	}
}

static void
s_batch_end(void *ud)
{
	struct watcher *w = ud;

	if (w->batch_total)
		announce(w);
	for (size_t i = 0; i < w->n_batch; i++)
		mail_event_finish(&w->batch[i]);
	w->n_batch = 0;
	w->batch_total = 0;
	live_resync_done(w);
	if (w->batch_max > w->mark) {
		w->mark = w->batch_max;
		save_soon(w);
	}
	w->batch_max = 0;
	w->catching_up = false;
	end_rebase(w);
}

static void
s_flags(void *ud, const struct codec_fetch *f)
{
	struct watcher *w = ud;

	if (codec_strlist_has(&f->flags, "\\Seen"))
		live_gone(w, f->seq, false);
}

static void
s_expunge(void *ud, uint32_t seq)
{
	live_gone(ud, seq, true);
}

static void
s_idle(void *ud)
{
	struct watcher *w = ud;

	/* A session that got this far is healthy: reset the back-off. Any
	 * catch-up fetch came before (or none was needed: what arrived while
	 * away was expunged), so what comes now is live mail. */
	w->failures = 0;
	w->catching_up = false;
	end_rebase(w);
	live_resync_done(w);
	set_wstate(w, W_WATCHING);
	/* Everything the server reported was handled: the mailbox is seen
	 * whole now, unless mail comes with the IDLE's "+" (see
	 * take_idle_time). This runs at each IDLE renewal too: the time is
	 * kept current without a wake-up of its own. */
	w->idle_at = wall_now(w);
	w->idle_messages = session_exists(w->s);
	save_soon(w);
}

static void
s_failed(void *ud, enum session_fail why, const char *msg)
{
	struct watcher *w = ud;

	switch (why) {
	case SESSION_FAIL_AUTH:
	case SESSION_FAIL_TLS:
		log_err(&w->log, "%s; not retrying until the configuration "
				 "is reloaded",
			msg);
		set_wstate(w, W_GAVE_UP);
		break;
	case SESSION_FAIL_BYE:
		if (w->state == W_STOPPING) {
			log_debug(&w->log, "%s", msg);
			/* The server answered the LOGOUT sent from IDLE and
			 * reported no new mail meanwhile: the mailbox was
			 * seen whole when the stop began. Nothing that came
			 * later in that second is handled: the second before
			 * counts. */
			if (w->stop_at &&
			    session_exists(w->s) == w->stop_messages) {
				w->seen = w->stop_at - 1;
				w->messages = w->stop_messages;
			}
			break;
		}
		/* fall through */
	default:
		log_warn(&w->log, "%s", msg);
		break;
	}
	schedule_teardown(w, why == SESSION_FAIL_MAILBOX ? -ENOENT : -EIO);
}

static const struct session_cb session_cb = {
	.starttls = s_starttls,
	.selected = s_selected,
	.fetched = s_fetched,
	.batch_end = s_batch_end,
	.flags = s_flags,
	.expunge = s_expunge,
	.idle = s_idle,
	.failed = s_failed,
	.dated = s_dated,
	.dated_end = s_dated_end,
};

/* ---- transport callbacks ---- */

static void
t_connected(void *ud)
{
	struct watcher *w = ud;

	log_debug(&w->log, "connected to %s:%u%s", w->a->host, w->a->port,
		  transport_is_tls(w->t) ? " (TLS)" : "");
	session_connected(w->s, now_usec(w));
	pump(w);
}

static void
t_tls_ready(void *ud)
{
	struct watcher *w = ud;

	session_tls_ready(w->s, now_usec(w));
	pump(w);
}

static void
t_data(void *ud, const char *buf, size_t len)
{
	struct watcher *w = ud;

	if (!w->s)
		return;
	session_feed(w->s, buf, len, now_usec(w));
	pump(w);
}

static void
t_closed(void *ud, int err)
{
	struct watcher *w = ud;

	if (w->state == W_STOPPING) {
		schedule_teardown(w, 0);
		return;
	}
	if (w->state != W_GAVE_UP) {
		if (err)
			log_warn(&w->log, "connection lost: %s",
				 transport_errmsg(w->t));
		else
			log_warn(&w->log, "server closed the connection");
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

/* Back-off before the next attempt: 1 s doubling to 5 min (see also
 * REFUSED_MAX), each delay drawn between 75% and 100% so that many
 * watchers do not reconnect in step. */
static uint64_t
backoff_usec(struct watcher *w, int err)
{
	uint64_t s = BACKOFF_MIN;

	if (err == -ENOENT)
		return MAILBOX_RETRY * USEC_PER_SEC;
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

static void
close_connection(struct watcher *w)
{
	session_free(&w->s);
	transport_free(&w->t);
	for (size_t i = 0; i < w->n_batch; i++)
		mail_event_finish(&w->batch[i]);
	w->n_batch = 0;
	w->batch_total = 0;
	w->batch_max = 0;
	/* The next connection numbers messages afresh (live_resync). */
	for (size_t i = 0; i < w->n_live; i++)
		w->live[i].seq = 0;
	/* A catch-up after a UIDVALIDITY change cut short: the next
	 * connection starts it again. */
	if (w->rebasing) {
		w->uidvalidity = w->old_uidvalidity;
		w->mark = w->old_mark;
		w->rebasing = false;
		w->since = 0;
	}
	w->idle_at = 0;
	/* Nor is anything that comes later in the second it ends. */
	if (w->seen >= wall_now(w))
		w->seen = wall_now(w) - 1;
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
	if (w->state == W_GAVE_UP) {
		arm_timer(w, 0, 0);
		return 0;
	}
	if (!w->failures++)
		w->outage_start = now_usec(w);
	delay = backoff_usec(w, w->teardown_err);
	w->retry_at = now_usec(w) + delay;
	log_info(&w->log, "%s in %.1f s",
		 w->teardown_err == -ENOENT ? "trying the mailbox again"
					    : "reconnecting",
		 delay / 1e6);
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

static void
connect_now(struct watcher *w)
{
	struct transport_opts to = {
		.host = w->a->host,
		.port = w->a->port,
		.implicit_tls = w->a->tls == TLS_IMPLICIT,
		.ca_file = w->a->ca_file,
		.connect_timeout = CONNECT_TIMEOUT,
		.log = &w->log,
	};
	struct session_opts so = {
		.username = w->username,
		.password = w->password,
		.mailbox = w->mailbox,
		.starttls = w->a->tls == TLS_STARTTLS,
		.idle_timeout = w->a->d.idle_timeout,
		.poll_interval = w->a->d.poll_interval,
		.command_timeout = COMMAND_TIMEOUT,
		.log = &w->log,
	};
	int r;

	close_connection(w);
	arm_timer(w, 0, 0);
	set_wstate(w, W_CONNECTING);
	log_debug(&w->log, "connecting to %s:%u", w->a->host, w->a->port);
	w->s = session_new(&so, &session_cb, w);
	r = transport_new(w->env.event, &to, &transport_cb, w,
			  &w->t);
	if (r < 0) {
		log_warn(&w->log, "cannot connect: %s", strerror(-r));
		schedule_teardown(w, r);
	}
}

struct watcher *
watcher_new(const struct watcher_env *env, const struct account *a,
	    const char *mailbox, const char *password)
{
	struct watcher *w = xcalloc(1, sizeof(*w));
	struct state st;
	int r;

	w->env = *env;
	w->a = a;
	w->name = xstrdup(a->name);
	w->mailbox = xstrdup(mailbox);
	w->username = xstrdup(a->username);
	w->password = password;
	w->log.account = w->name;
	w->log.mailbox = w->mailbox;
	r = sd_event_add_time(env->event, &w->timer, CLOCK_BOOTTIME, 0, 0,
			      on_timer, w);
	if (r >= 0)
		r = sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(env->event, &w->teardown, on_teardown,
				       w);
	if (r >= 0)
		r = sd_event_source_set_enabled(w->teardown, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(env->event, &w->saver, on_save, w);
	if (r >= 0)
		r = sd_event_source_set_priority(w->saver,
						 SD_EVENT_PRIORITY_IDLE);
	if (r >= 0)
		r = sd_event_source_set_enabled(w->saver, SD_EVENT_OFF);
	if (r < 0) {
		log_err(&w->log, "event loop: %s", strerror(-r));
		abort();
	}
	if (state_load(a->name, mailbox, &st) > 0) {
		w->uidvalidity = st.uidvalidity;
		w->mark = st.uid;
		w->seen = st.seen;
		w->messages = st.messages;
		log_debug(&w->log,
			  "state: UIDVALIDITY %u, last UID %u, seen at %lld "
			  "with %u messages",
			  w->uidvalidity, w->mark, (long long)w->seen,
			  w->messages);
	}
	w->saved_uidvalidity = w->uidvalidity;
	w->saved_mark = w->mark;
	w->saved_seen = w->seen;
	w->saved_messages = w->messages;
	connect_now(w);
	return w;
}

void
watcher_free(struct watcher **wp)
{
	struct watcher *w = *wp;

	if (!w)
		return;
	save_state(w, true);
	close_connection(w);
	sd_event_source_disable_unref(w->timer);
	sd_event_source_disable_unref(w->teardown);
	sd_event_source_disable_unref(w->saver);
	free(w->batch);
	free(w->batch_seq);
	free(w->name);
	free(w->mailbox);
	free(w->username);
	free(w);
	*wp = NULL;
}

void
watcher_save(struct watcher *w)
{
	save_soon(w);
}

void
watcher_rebind(struct watcher *w, const struct account *a)
{
	w->a = a;
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

bool
watcher_gave_up(const struct watcher *w)
{
	return w->state == W_GAVE_UP;
}

bool
watcher_stopped(const struct watcher *w)
{
	return w->state == W_STOPPED;
}

void
watcher_probe(struct watcher *w)
{
	if (w->state == W_WAITING) {
		connect_now(w);
	} else if (w->state == W_WATCHING && w->s) {
		session_probe(w->s, now_usec(w), PROBE_TIMEOUT);
		pump(w);
	}
}

bool
watcher_is_idle(const struct watcher *w)
{
	return w->state == W_WATCHING && w->s && session_is_idle(w->s);
}

const char *
watcher_describe(struct watcher *w)
{
	if (w->state == W_WAITING) {
		uint64_t now = now_usec(w);
		unsigned secs = w->retry_at > now
					? (w->retry_at - now + 999999) /
						  USEC_PER_SEC
					: 0;

		snprintf(w->describe, sizeof(w->describe),
			 "reconnecting in %u s", secs);
	} else if (w->state == W_WATCHING && w->s) {
		snprintf(w->describe, sizeof(w->describe), "%s",
			 session_is_idle(w->s) ? "idle" : "fetching");
	} else {
		snprintf(w->describe, sizeof(w->describe), "%s",
			 wstate_names[w->state]);
	}
	return w->describe;
}
