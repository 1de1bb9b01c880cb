#include "account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailbox.h"
#include "watcher.h"

#define USEC_PER_SEC 1000000ULL
/* The fewest connections the budget goes down to after [LIMIT]: one that
 * pushes, one that checks the rest. */
#define BUDGET_MIN 2

enum mode {
	M_STARTING, /* the first connection has not logged in yet */
	M_NOTIFY,   /* one connection follows every mailbox with NOTIFY */
	M_BUDGET,   /* IDLE connections within max_connections, the rest
		       checked every poll_interval */
};

/* One configured mailbox and how it is watched. */
struct box {
	struct mailbox *mb;
	struct watcher *w; /* its own IDLE connection, or NULL */
	bool notified;     /* NOTIFY follows it */
	bool swept;        /* checked every poll_interval on the fetcher */
	bool check;        /* to be checked with STATUS on the fetcher */
	bool fetch;        /* to be EXAMINEd and fetched on the fetcher */
	bool watched;      /* a STATUS came for it (or w is idle) */
	bool failed;       /* the server refused it (logged once) */
	unsigned gen;      /* the NOTIFY session whose STATUS it had last */
};

struct account_run {
	struct account_env env;
	struct watcher_env wenv;  /* for its watchers */
	const struct account *a;  /* borrowed; see account_run_rebind() */
	struct cred *cred;        /* borrowed */
	char *name;               /* a copy for log lines */
	struct log_ctx log;
	struct box *box;          /* in the configured order */
	size_t n;
	const char **others;      /* the names of box[1..n), for NOTIFY */
	struct watcher *fetcher;  /* fetch mode, once needed */
	struct box *fetching;     /* the box the fetcher is catching up */
	enum mode mode;
	unsigned budget;          /* connections, at most max_connections */
	unsigned gen;             /* counts NOTIFY sessions */
	bool stopping;
	bool notify_up, fetcher_up; /* for check_followers() */
	sd_event_source *saver;   /* deferred state writes */
	sd_event_source *sweep;   /* the next STATUS check, M_BUDGET */
	sd_event_source *shrink;  /* deferred: a login met [LIMIT] */
	char describe[512];
};

static uint64_t
now_usec(const struct account_run *ar)
{
	uint64_t t = 0;

	sd_event_now(ar->env.event, CLOCK_BOOTTIME, &t);
	return t;
}

static int64_t
wall_now(const struct account_run *ar)
{
	uint64_t t = 0;

	sd_event_now(ar->env.event, CLOCK_REALTIME, &t);
	return (int64_t)(t / USEC_PER_SEC);
}

/* When the connection that follows mailboxes with STATUS (the NOTIFY one
 * for the notified, the fetcher for the swept) goes down, what is found
 * in them next arrived while nobody looked. */
static void
check_followers(struct account_run *ar)
{
	bool notify_up = ar->box[0].w && watcher_connected(ar->box[0].w);
	bool fetcher_up = ar->fetcher && watcher_connected(ar->fetcher);

	for (size_t i = 0; i < ar->n; i++) {
		struct box *b = &ar->box[i];

		if ((b->notified && ar->notify_up && !notify_up) ||
		    (b->swept && ar->fetcher_up && !fetcher_up))
			mailbox_unfollowed(b->mb);
	}
	ar->notify_up = notify_up;
	ar->fetcher_up = fetcher_up;
}

static void
changed(void *ud)
{
	struct account_run *ar = ud;

	check_followers(ar);
	if (ar->env.changed)
		ar->env.changed(ar->env.ud);
}

/* The box of mailbox name as a server spells it (INBOX in any case), or
 * NULL. */
static struct box *
find_box(struct account_run *ar, const char *name)
{
	for (size_t i = 0; i < ar->n; i++) {
		const char *m = mailbox_name(ar->box[i].mb);

		if (!strcmp(m, name) ||
		    (!strcasecmp(m, "INBOX") && !strcasecmp(name, "INBOX")))
			return &ar->box[i];
	}
	return NULL;
}

/* The mailbox reached a state worth telling: watched or refused. */
static void
set_watched(struct account_run *ar, struct box *b, bool watched)
{
	if (b->watched == watched)
		return;
	b->watched = watched;
	if (watched && b->swept)
		log_debug(mailbox_log(b->mb), "checked every %u s",
			  ar->a->d.poll_interval);
	else if (watched && ar->mode == M_NOTIFY)
		log_debug(mailbox_log(b->mb), "watching (NOTIFY)");
	changed(ar);
}

static struct watcher *
new_watcher(struct account_run *ar, struct mailbox *mb, bool notify)
{
	struct watcher_opts o = {
		.a = ar->a,
		.mb = mb,
		.notify = notify,
		.others = notify ? ar->others : NULL,
		.n_others = notify && ar->n ? ar->n - 1 : 0,
		.cred = ar->cred,
	};

	return watcher_new(&ar->wenv, &o);
}

/* Gives the fetcher its next work: the STATUS checks due (pipelined),
 * else one mailbox to catch up. */
static void
kick(struct account_run *ar)
{
	size_t sent = 0;

	if (ar->stopping)
		return;
	if (!ar->fetcher) {
		for (size_t i = 0; i < ar->n; i++) {
			if (ar->box[i].check || ar->box[i].fetch) {
				ar->fetcher = new_watcher(ar, NULL, false);
				break;
			}
		}
		return;
	}
	if (!watcher_ready(ar->fetcher))
		return;
	for (size_t i = 0; i < ar->n && sent < SESSION_MAX_PIPELINE; i++) {
		if (ar->box[i].check) {
			ar->box[i].check = false;
			watcher_status(ar->fetcher, mailbox_name(ar->box[i].mb));
			sent++;
		}
	}
	if (sent)
		return;
	for (size_t i = 0; i < ar->n; i++) {
		if (ar->box[i].fetch) {
			ar->box[i].fetch = false;
			ar->fetching = &ar->box[i];
			watcher_examine(ar->fetcher, ar->box[i].mb);
			return;
		}
	}
}

/* ---- the connection budget ---- */

static void
check_swept(struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i].swept)
			ar->box[i].check = true;
	kick(ar);
}

static int
on_sweep(sd_event_source *src, uint64_t usec, void *ud)
{
	struct account_run *ar = ud;
	unsigned p = ar->a->d.poll_interval;

	(void)usec;
	sd_event_source_set_time(src, now_usec(ar) + p * USEC_PER_SEC);
	sd_event_source_set_enabled(src, SD_EVENT_ON);
	check_swept(ar);
	return 0;
}

/* Checks the swept mailboxes now and every poll_interval. */
static void
start_sweeping(struct account_run *ar)
{
	unsigned p = ar->a->d.poll_interval;

	sd_event_source_set_time(ar->sweep, now_usec(ar) + p * USEC_PER_SEC);
	sd_event_source_set_time_accuracy(ar->sweep, p * USEC_PER_SEC / 10);
	sd_event_source_set_enabled(ar->sweep, SD_EVENT_ON);
	check_swept(ar);
}

/* Gives the mailboxes NOTIFY does not follow (without NOTIFY, all but the
 * first) an IDLE connection each, in the configured order, as far as the
 * budget goes, and has the fetcher check the rest every poll_interval.
 * Run when the mode is known, and again when the budget went down. */
static void
assign(struct account_run *ar)
{
	size_t left = 0, own, given = 0;
	/* Beside the first mailbox's connection: with NOTIFY the fetcher
	 * is always there; without, only for what does not fit. */
	size_t room = ar->budget - 1;

	for (size_t i = 1; i < ar->n; i++)
		left += !ar->box[i].notified;
	if (ar->mode == M_NOTIFY)
		room--;
	own = left <= room ? left : room - (ar->mode == M_BUDGET);
	for (size_t i = 1; i < ar->n; i++) {
		struct box *b = &ar->box[i];

		b->swept = !b->notified && given++ >= own;
		if (!b->swept && !b->notified && !b->w) {
			b->w = new_watcher(ar, b->mb, false);
		} else if ((b->swept || b->notified) && b->w) {
			mailbox_save(b->mb, false, watcher_is_idle(b->w),
				     watcher_exists(b->w));
			watcher_free(&b->w);
			mailbox_closed(b->mb, wall_now(ar));
			set_watched(ar, b, false);
		}
	}
	if (left > own) {
		log_info(&ar->log,
			 "%zu mailbox%s with IDLE, %zu checked every %u s "
			 "(max_connections = %u)",
			 own + 1, own ? "es" : "", left - own,
			 ar->a->d.poll_interval, ar->budget);
		start_sweeping(ar);
	} else {
		sd_event_source_set_enabled(ar->sweep, SD_EVENT_OFF);
	}
	changed(ar);
}

/* A login met [LIMIT]: one connection fewer for this session. */
static int
on_shrink(sd_event_source *src, void *ud)
{
	struct account_run *ar = ud;

	(void)src;
	if (ar->stopping || ar->budget <= BUDGET_MIN || ar->mode == M_STARTING)
		return 0;
	ar->budget--;
	log_warn(&ar->log, "the server limits connections: using at most %u",
		 ar->budget);
	assign(ar);
	return 0;
}

/* ---- watcher callbacks ---- */

static void
w_notify(void *ud, struct watcher *w, bool on)
{
	struct account_run *ar = ud;
	size_t got = 0;

	if (w != ar->box[0].w)
		return;
	if (!on) {
		if (ar->mode == M_BUDGET)
			return;
		ar->mode = M_BUDGET;
		for (size_t i = 0; i < ar->n; i++)
			ar->box[i].notified = false;
		assign(ar);
		return;
	}
	if (ar->mode == M_BUDGET)
		return; /* keeps the connections it has */
	ar->mode = M_NOTIFY;
	/* A mailbox NOTIFY sent no STATUS for may not exist (the fetcher's
	 * STATUS says), or the server does not follow it (Dovecot 2.3 does
	 * not for names with '&'): it is watched as without NOTIFY. */
	for (size_t i = 1; i < ar->n; i++) {
		struct box *b = &ar->box[i];

		b->notified = b->gen == ar->gen;
		if (!b->notified && !b->w)
			log_info(mailbox_log(b->mb),
				 "NOTIFY reported nothing of this mailbox");
		b->watched = false;
		if (b->notified) {
			got++;
			set_watched(ar, b, true);
		}
	}
	ar->gen++;
	log_info(&ar->log, "watching %zu mailbox%s with IDLE and NOTIFY",
		 got + 1, got ? "es" : "");
	assign(ar);
}

static void
w_status(void *ud, const char *name, const struct session_status *st)
{
	struct account_run *ar = ud;
	struct box *b = find_box(ar, name);
	int64_t unseen;

	if (!b) {
		log_debug(&ar->log, "STATUS of %s, which is not watched: "
				    "ignored",
			  name);
		return;
	}
	if (b->w)
		return; /* watched on its own connection */
	unseen = mailbox_unseen(b->mb);
	if (!b->swept)
		b->gen = ar->gen; /* NOTIFY's, in w_notify()'s count */
	b->failed = false;
	/* Before NOTIFY's reply, w_notify() says how it is watched. */
	if (ar->mode != M_STARTING)
		set_watched(ar, b, true);
	else
		b->watched = true;
	if (b == ar->fetching) {
		b->fetch = true; /* being caught up: once more after */
		if (st->have & SESSION_ST_UNSEEN)
			mailbox_set_unseen(b->mb, st->unseen);
	} else if (mailbox_status(b->mb, st, wall_now(ar))) {
		b->fetch = true;
	}
	if (mailbox_unseen(b->mb) != unseen)
		changed(ar); /* for the D-Bus service */
	kick(ar);
}

static void
w_ready(void *ud, struct watcher *w, struct mailbox *done)
{
	struct account_run *ar = ud;

	if (w != ar->fetcher)
		return;
	/* A catch-up cut short by a reconnect is done again. */
	if (ar->fetching && ar->fetching->mb != done)
		ar->fetching->fetch = true;
	ar->fetching = NULL;
	kick(ar);
}

static void
w_mailbox_failed(void *ud, const char *name, const char *msg)
{
	struct account_run *ar = ud;
	struct box *b = find_box(ar, name);

	if (!b)
		return;
	if (!b->failed)
		log_warn(mailbox_log(b->mb), "cannot watch this mailbox: %s",
			 msg);
	b->failed = true;
	set_watched(ar, b, false);
}

static void
w_refused(void *ud, struct watcher *w, const char *msg)
{
	struct account_run *ar = ud;

	(void)w;
	if (strstr(msg, "[LIMIT]"))
		sd_event_source_set_enabled(ar->shrink, SD_EVENT_ONESHOT);
}

/* ---- state ---- */

static void
save_all(struct account_run *ar, bool final)
{
	for (size_t i = 0; i < ar->n; i++) {
		struct box *b = &ar->box[i];
		bool idle = b->w && watcher_is_idle(b->w);

		mailbox_save(b->mb, final, idle, idle ? watcher_exists(b->w) : 0);
	}
}

static void
save_soon(void *ud)
{
	struct account_run *ar = ud;

	sd_event_source_set_enabled(ar->saver, SD_EVENT_ONESHOT);
}

static int
on_save(sd_event_source *src, void *ud)
{
	(void)src;
	save_all(ud, false);
	return 0;
}

/* ---- life ---- */

struct account_run *
account_run_new(const struct account_env *env, const struct account *a,
		struct cred *cred)
{
	struct account_run *ar = xcalloc(1, sizeof(*ar));
	struct mailbox_env me = {
		.sinks = env->sinks,
		.n_sinks = env->n_sinks,
		.save_soon = save_soon,
		.ud = ar,
	};
	int r;

	ar->env = *env;
	ar->wenv = (struct watcher_env){
		.event = env->event,
		.changed = changed,
		.notify = w_notify,
		.status = w_status,
		.ready = w_ready,
		.mailbox_failed = w_mailbox_failed,
		.refused = w_refused,
		.ud = ar,
	};
	ar->a = a;
	ar->cred = cred;
	ar->name = xstrdup(a->name);
	ar->log.account = ar->name;
	ar->budget = a->d.max_connections;
	ar->gen = 1;
	ar->n = a->n_mailboxes;
	ar->box = xcalloc(ar->n, sizeof(*ar->box));
	ar->others = xcalloc(ar->n, sizeof(*ar->others));
	for (size_t i = 0; i < ar->n; i++) {
		ar->box[i].mb = mailbox_new(&me, a, a->mailboxes[i]);
		if (i)
			ar->others[i - 1] = mailbox_name(ar->box[i].mb);
	}
	r = sd_event_add_defer(env->event, &ar->saver, on_save, ar);
	if (r >= 0)
		r = sd_event_source_set_priority(ar->saver,
						 SD_EVENT_PRIORITY_IDLE);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->saver, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(env->event, &ar->shrink, on_shrink, ar);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->shrink, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_time(env->event, &ar->sweep, CLOCK_BOOTTIME, 0,
				      0, on_sweep, ar);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->sweep, SD_EVENT_OFF);
	if (r < 0) {
		log_err(&ar->log, "event loop: %s", strerror(-r));
		abort();
	}
	ar->box[0].w = new_watcher(ar, ar->box[0].mb, true);
	return ar;
}

void
account_run_free(struct account_run **arp)
{
	struct account_run *ar = *arp;

	if (!ar)
		return;
	/* The last writes while the sessions can still say they are idle. */
	save_all(ar, true);
	for (size_t i = 0; i < ar->n; i++)
		watcher_free(&ar->box[i].w);
	watcher_free(&ar->fetcher);
	for (size_t i = 0; i < ar->n; i++)
		mailbox_free(&ar->box[i].mb);
	sd_event_source_disable_unref(ar->saver);
	sd_event_source_disable_unref(ar->shrink);
	sd_event_source_disable_unref(ar->sweep);
	free(ar->box);
	free(ar->others);
	free(ar->name);
	free(ar);
	*arp = NULL;
}

void
account_run_rebind(struct account_run *ar, const struct account *a)
{
	ar->a = a;
	for (size_t i = 0; i < ar->n; i++) {
		mailbox_rebind(ar->box[i].mb, a);
		if (ar->box[i].w)
			watcher_rebind(ar->box[i].w, a);
	}
	if (ar->fetcher)
		watcher_rebind(ar->fetcher, a);
}

void
account_run_save(struct account_run *ar)
{
	save_soon(ar);
}

void
account_run_stop(struct account_run *ar)
{
	ar->stopping = true;
	sd_event_source_set_enabled(ar->sweep, SD_EVENT_OFF);
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i].w)
			watcher_stop(ar->box[i].w);
	if (ar->fetcher)
		watcher_stop(ar->fetcher);
}

bool
account_run_stopped(const struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i].w && !watcher_stopped(ar->box[i].w))
			return false;
	return !ar->fetcher || watcher_stopped(ar->fetcher);
}

void
account_run_probe(struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i].w)
			watcher_probe(ar->box[i].w);
	if (ar->fetcher)
		watcher_probe(ar->fetcher);
	check_swept(ar);
}

bool
account_run_gave_up(const struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i].w && watcher_gave_up(ar->box[i].w))
			return true;
	return ar->fetcher && watcher_gave_up(ar->fetcher);
}

/* True when the connection that checks b (the NOTIFY one, or the
 * fetcher) is up: logged in, idle or at work. */
static bool
checked_now(const struct account_run *ar, const struct box *b)
{
	const struct watcher *via =
		ar->mode == M_NOTIFY ? ar->box[0].w : ar->fetcher;

	return b->watched && !b->failed && via && watcher_connected(via);
}

static bool
box_watched(const struct account_run *ar, const struct box *b)
{
	return b->w ? watcher_is_idle(b->w) : checked_now(ar, b);
}

size_t
account_run_watched(const struct account_run *ar)
{
	size_t n = 0;

	for (size_t i = 0; i < ar->n; i++)
		n += box_watched(ar, &ar->box[i]);
	return n;
}

void
account_run_each(const struct account_run *ar,
		 void (*fn)(void *fud, const char *mailbox, bool watched,
			    int64_t unseen),
		 void *fud)
{
	for (size_t i = 0; i < ar->n; i++)
		fn(fud, mailbox_name(ar->box[i].mb),
		   box_watched(ar, &ar->box[i]),
		   mailbox_unseen(ar->box[i].mb));
}

const char *
account_run_describe(struct account_run *ar)
{
	char *s = ar->describe;
	size_t size = sizeof(ar->describe), off = 0;
	unsigned conns = !!ar->fetcher;
	size_t swept = 0;

	s[0] = 0;
	for (size_t i = 0; i < ar->n; i++)
		conns += !!ar->box[i].w;
	for (size_t i = 0; i < ar->n; i++)
		swept += ar->box[i].swept;
	if (ar->n > 1 && ar->mode == M_NOTIFY)
		off += snprintf(s, size,
				"%s: %zu mailboxes over %u connection%s "
				"(NOTIFY)",
				ar->name, ar->n - swept, conns,
				conns == 1 ? "" : "s");
	else if (ar->n > 1 && ar->mode == M_BUDGET)
		off += snprintf(s, size, "%s: %zu pushed", ar->name,
				ar->n - swept);
	if (swept && off < size)
		off += snprintf(s + off, size - off, ", %zu checked every %u s",
				swept, ar->a->d.poll_interval);
	for (size_t i = 0; i < ar->n && off < size; i++) {
		struct watcher *w = ar->box[i].w;

		if (w && !watcher_is_idle(w))
			off += snprintf(s + off, size - off, "%s%s/%s: %s",
					off ? "; " : "", ar->name,
					mailbox_name(ar->box[i].mb),
					watcher_describe(w));
	}
	/* The fetcher at work is well; only trouble is told. */
	if (ar->fetcher && !watcher_connected(ar->fetcher) && off < size)
		snprintf(s + off, size - off, "%s%s: checking: %s",
			 off ? "; " : "", ar->name,
			 watcher_describe(ar->fetcher));
	return s;
}
