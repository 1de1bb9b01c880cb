#include "account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "copies.h"
#include "mailbox.h"
#include "mboxlist.h"
#include "state.h"
#include "watcher.h"

#define USEC_PER_SEC 1000000ULL
/* The fewest connections the budget goes down to after [LIMIT]: one that
 * pushes, one that checks the rest. With NOTIFY, one does both (single:
 * the budget goes down to 1). */
#define BUDGET_MIN MAX_CONNECTIONS_MIN
/* Seconds after [LIMIT] lowered the budget until one connection more is
 * tried, doubled after each try the server refuses, up to
 * BUDGET_RETRY_MAX. What another client held may be free again (a phone
 * at boot), and a budget lowered for good left mailboxes checked every
 * poll_interval until a restart. */
#define BUDGET_RETRY (5 * 60)
#define BUDGET_RETRY_MAX (60 * 60)
/* The least time between two state writes in a burst (save_soon). */
#define SAVE_INTERVAL USEC_PER_SEC
/* After a resume, the time the connections that outlived the sleep have
 * to tell what came during it: the probe's, since one that does not
 * answer by then is replaced, and its catch-up is one anyway. */
#define SLEPT_WINDOW (WATCHER_PROBE_TIMEOUT * USEC_PER_SEC)
/* The most mailboxes one LIST may return that are kept: a bound on what
 * a server can make us hold. */
#define LISTED_MAX 100000
/* Mailboxes no longer listed kept for a rename (struct gone). */
#define GONE_MAX 4

enum mode {
	M_STARTING, /* the first connection has not logged in yet */
	M_NOTIFY,   /* one connection follows every mailbox with NOTIFY */
	M_BUDGET,   /* IDLE connections within max_connections, the rest
		       checked every poll_interval */
};

/* One mailbox of the account (named in mailboxes, or listed by the
 * server and matching a pattern there) and how it is watched. */
struct box {
	struct mailbox *mb;
	struct watcher *w; /* its own IDLE connection, or NULL */
	bool notified;     /* NOTIFY follows it */
	bool swept;        /* checked every poll_interval on the fetcher */
	bool check;        /* to be checked with STATUS on the fetcher */
	bool fetch;        /* to be EXAMINEd and fetched on the fetcher */
	struct box *fetch_next; /* in the fetch queue, while fetch */
	bool watched;      /* a STATUS came for it (or w is idle) */
	bool failed;       /* the server refused it (logged once) */
	/* STATUS answered for it after it failed on a connection of its
	 * own, which it was given again: not again until that holds. */
	bool regained;
	bool asked;        /* its STATUS asked of the LIST under way */
	bool plain;        /* named in mailboxes, not (only) by a pattern */
	bool kept;         /* apply_list(): listed again */
	bool relisted;     /* tried again at once, missing but listed */
	/* Single: STATUS asked after its catch-ups (w_ready()) since one
	 * found new mail or a STATUS showed nothing to fetch; bounds what a
	 * server whose STATUS and EXAMINE disagree can make go round. */
	unsigned rechecks;
	unsigned gen;      /* the NOTIFY session whose STATUS it had last */
};

struct account_run {
	struct account_env env;
	struct watcher_env wenv;  /* for its watchers */
	const struct account *a;  /* borrowed; see account_run_rebind() */
	struct cred *cred;        /* borrowed */
	char *name;               /* a copy for log lines */
	struct log_ctx log;
	struct box **box;         /* in the configured order; box[0] has
				     the connection that asks for NOTIFY
				     (but when single) */
	size_t n;
	struct box **by_name;     /* box[0..n) sorted by name_key() */
	const char **names;       /* the names of box[0..n), for NOTIFY */
	/* mailboxes has patterns: which mailboxes are watched comes from
	 * the server's LIST, at the start, after a NOTIFY MailboxName push
	 * and at each sweep. */
	bool dynamic;
	bool listed_once;         /* a LIST was applied */
	bool list_due;            /* LIST when the fetcher is ready */
	bool listing;             /* a LIST is under way on the fetcher */
	bool discovering;         /* ... of the patterns: applied at its end */
	/* wall: when the last LIST applied was sent, and when the one under
	 * way was: mailboxes first seen in it appeared after list_applied.
	 * One that was refused or lost moves neither, else a trial's
	 * mailboxes created while Dovecot's LISTs failed were taken as
	 * created after them, and their mail as older. */
	int64_t list_applied, list_sent;
	struct copies *copies;    /* the messages it announced last */
	/* wall: until when the account was last watched: its state's last
	 * write (at the stop, or the last change) or, if later, the end of
	 * its run before a reload; 0 on a first run. Mailboxes without
	 * state at the start may have appeared since (new_box()). */
	int64_t stopped_since;
	/* wall: a first run's start (0: not a first run), and whether a
	 * connection failed in it: the first look at a mailbox may then
	 * come long after the start (mailbox_looked_late()). */
	int64_t started;
	bool failed_first;
	struct mboxlist_entry *listed; /* what the LIST under way returned */
	size_t n_listed, cap_listed;
	bool listed_over;         /* more than LISTED_MAX: warned */
	struct watcher *fetcher;  /* fetch mode, once needed */
	struct box *fetching;     /* the box the fetcher is catching up */
	uint32_t fetch_mark;      /* its mailbox_next_uid() then */
	/* The boxes with fetch set, first come first, so that a push costs
	 * no scan of every mailbox. */
	struct box *fetch_head, *fetch_tail;
	bool check_due;           /* a box's check may be set */
	enum mode mode;
	unsigned budget;          /* connections, at most max_connections */
	/* M_NOTIFY with a budget of one connection: the fetcher asks for
	 * NOTIFY of every mailbox, box[0] too, which has no connection of
	 * its own (set_single()). */
	bool single;
	/* Single, a try at two connections: a fetch mode login that, once
	 * it holds, becomes the fetcher (on_grow()); nothing else changes
	 * while it may meet [LIMIT]. */
	struct watcher *probe;
	/* Below max_connections: one more is tried on this timer, after
	 * grow_wait seconds; probing while that try may still meet
	 * [LIMIT]. */
	sd_event_source *grow;
	unsigned grow_wait;
	bool probing;
	bool try_refused; /* in on_shrink(): the try met [LIMIT] */
	unsigned gen;             /* counts NOTIFY sessions */
	/* Mailboxes the last NOTIFY SET followed; SIZE_MAX after its
	 * connection went down, so that the next one is logged. */
	size_t n_notified;
	size_t n_checked; /* checked every poll_interval, as last logged */
	size_t n_own;     /* ... and those with a connection of their own */
	bool stopping;
	bool paused;              /* account_run_pause(): every watcher */
	bool notify_up, fetcher_up; /* for check_followers() */
	/* The fetcher went down: what it checks is checked once it is
	 * back (w_ready()), not at the next sweep. */
	bool recheck;
	struct state_store *store; /* every mailbox's state */
	sd_event_source *saver;   /* deferred state writes (save_soon) */
	uint64_t saved_at;        /* usec of the last one */
	uint64_t released_at;     /* of the last account_run_save() at once */
	sd_event_source *sweep;   /* the next STATUS check, M_BUDGET */
	sd_event_source *awake;   /* SLEPT_WINDOW after a resume */
	sd_event_source *shrink;  /* deferred: a login met [LIMIT] */
	/* deferred assign(): a mailbox of its own connection is not
	 * there */
	sd_event_source *reassign;
	char describe[512];
	/* The last mailboxes no longer listed, with the UIDs they followed
	 * for withdrawal: one renamed takes them (renamed()). */
	struct gone {
		char *name; /* NULL: a free slot */
		uint32_t uidvalidity;
		uint32_t uids[SESSION_MAX_KNOWN];
		size_t n;
	} gone[GONE_MAX];
	unsigned gone_next;
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

/* b is not there (misspelt, or deleted): one without state that is
 * created later announces what arrived in it since now (trial T: a
 * folder created for a filter lost its first message, taken as there
 * before, as at a first run); its unseen count is not counted (trial
 * AF's deleted folder kept its last one in the total). */
static void
gone_now(struct account_run *ar, struct box *b)
{
	mailbox_appeared(b->mb, wall_now(ar));
	mailbox_forget_unseen(b->mb);
}

/* The connection that asks for NOTIFY: the first mailbox's, or when
 * single the fetcher; NULL when there is none. */
static struct watcher *
notifier(const struct account_run *ar)
{
	if (ar->single)
		return ar->fetcher;
	return ar->n ? ar->box[0]->w : NULL;
}

/* The first of box[] that NOTIFY follows with STATUS: all when single,
 * else those after the first mailbox, which its connection selects. */
static size_t
first_other(const struct account_run *ar)
{
	return ar->single ? 0 : 1;
}

/* The time the server of a connection that follows mailboxes, now
 * down, was last heard from: w's (see watcher_heard()), or now when we
 * closed it (w freed, or the account stopping: the connection stops
 * being one at the LOGOUT, not at its answer). */
static int64_t
heard_last(const struct account_run *ar, const struct watcher *w)
{
	return w && !ar->stopping ? watcher_heard(w) : wall_now(ar);
}

/* When the connection that follows mailboxes with STATUS (the NOTIFY one
 * for the notified, the fetcher for the swept) goes down, what is found
 * in them next arrived while nobody looked, unless before its server was
 * last heard from. */
static void
check_followers(struct account_run *ar)
{
	struct watcher *nw = notifier(ar);
	bool notify_up = nw && watcher_connected(nw);
	bool fetcher_up = ar->fetcher && watcher_connected(ar->fetcher);
	bool notify_lost = ar->notify_up && !notify_up;
	bool fetcher_lost = ar->fetcher_up && !fetcher_up;

	ar->notify_up = notify_up;
	ar->fetcher_up = fetcher_up;
	if (notify_lost)
		ar->n_notified = SIZE_MAX;
	if (fetcher_lost)
		ar->recheck = true;
	for (size_t i = 0; (notify_lost || fetcher_lost) && i < ar->n; i++) {
		struct box *b = ar->box[i];

		if (b->notified && notify_lost)
			mailbox_unfollowed(b->mb, heard_last(ar, nw));
		else if (b->swept && fetcher_lost)
			mailbox_unfollowed(b->mb, heard_last(ar, ar->fetcher));
	}
}

/* True once every mailbox given a connection of its own is watched
 * through it: a try at one connection more held. */
static bool
own_all_up(const struct account_run *ar)
{
	for (size_t i = 1; i < ar->n; i++)
		if (ar->box[i]->w && !watcher_connected(ar->box[i]->w))
			return false;
	/* Single, the try is a login of its own. */
	return !ar->probe || watcher_connected(ar->probe);
}

static void
changed(void *ud)
{
	struct account_run *ar = ud;
	bool missing = false, short_of = false;

	check_followers(ar);
	/* A mailbox of its own connection that is not there: its place
	 * goes to one checked now (assign()), out of the watcher's
	 * callback. One there again (created: tried every MAILBOX_RETRY)
	 * keeps it. (Not looked for when none has one: with NOTIFY and
	 * 1000 mailboxes this runs at every push.) */
	for (size_t i = 1; ar->n_own && i < ar->n; i++) {
		struct box *b = ar->box[i];

		if (b->w && watcher_connected(b->w))
			b->failed = b->regained = false;
		if (b->w && watcher_missing(b->w)) {
			if (!b->failed)
				gone_now(ar, b);
			b->failed = true;
			missing = true;
		}
		short_of = short_of || (b->swept && !b->failed);
	}
	if (missing && short_of)
		sd_event_source_set_enabled(ar->reassign, SD_EVENT_ONESHOT);
	/* on_grow() goes on from there, out of the watcher's callback. */
	if (ar->probing && own_all_up(ar)) {
		sd_event_source_set_time_relative(ar->grow, 0);
		sd_event_source_set_enabled(ar->grow, SD_EVENT_ONESHOT);
	}
	if (ar->env.changed)
		ar->env.changed(ar->env.ud);
}

/* What a mailbox is found by: its name, with INBOX in any case spelt
 * "INBOX". */
static const char *
name_key(const char *name)
{
	return strcasecmp(name, "INBOX") ? name : "INBOX";
}

/* True when a and b name the same mailbox (INBOX in any case). */
static bool
same_name(const char *a, const char *b)
{
	return !strcmp(name_key(a), name_key(b));
}

static const char *
box_key(const struct box *b)
{
	return name_key(mailbox_name(b->mb));
}

static int
cmp_boxes(const void *a, const void *b)
{
	return strcmp(box_key(*(struct box *const *)a),
		      box_key(*(struct box *const *)b));
}

static int
cmp_key_box(const void *key, const void *b)
{
	return strcmp(key, box_key(*(struct box *const *)b));
}

/* Sorts the index find_box() searches: after every change of box[]. A
 * push names its mailbox, and a linear search of 1000 of them took 2 %
 * of mailwatch's CPU in a burst (perf). */
static void
index_boxes(struct account_run *ar)
{
	free(ar->by_name);
	ar->by_name = xcalloc(ar->n + 1, sizeof(*ar->by_name));
	memcpy(ar->by_name, ar->box, ar->n * sizeof(*ar->box));
	qsort(ar->by_name, ar->n, sizeof(*ar->by_name), cmp_boxes);
}

/* The box of mailbox name as a server spells it, or NULL. */
static struct box *
find_box(struct account_run *ar, const char *name)
{
	struct box **b = bsearch(name_key(name), ar->by_name, ar->n,
				 sizeof(*ar->by_name), cmp_key_box);

	return b ? *b : NULL;
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

static void save_soon(void *ud, bool now);
static void forget_listed(struct account_run *ar);
static void close_box(struct account_run *ar, struct box *b);

/* How many mailboxes NOTIFY follows with STATUS: box[first_other()..n). */
static size_t
n_others(const struct account_run *ar)
{
	return ar->n > first_other(ar) ? ar->n - first_other(ar) : 0;
}

static struct watcher *
new_watcher(struct account_run *ar, struct mailbox *mb, bool notify)
{
	struct watcher_opts o = {
		.a = ar->a,
		.mb = mb,
		.notify = notify,
		.others = notify ? ar->names + first_other(ar) : NULL,
		.n_others = notify ? n_others(ar) : 0,
		.cred = ar->cred,
		/* A pattern's list, or the mailboxes named besides the
		 * selected one: said gone when deleted (w_listed()). */
		.mailbox_names = notify && (ar->dynamic || n_others(ar)),
		.quiet_limit = ar->probing,
	};
	struct watcher *w = watcher_new(&ar->wenv, &o);

	/* Before it connected: it reads nothing. */
	watcher_pause(w, ar->paused);
	return w;
}

/* What a LIST asks: when discovering, the patterns of mailboxes; when
 * status, the names of the mailboxes to check (but those the patterns
 * list anyway), which it marks as asked. Returns an array the caller
 * frees (the strings borrowed) and its length in *n_r. */
static const char **
list_patterns(struct account_run *ar, bool discover, bool status,
	      size_t *n_r)
{
	const struct account *a = ar->a;
	const char **v = xcalloc(a->n_mailboxes + ar->n + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; discover && i < a->n_mailboxes; i++)
		if (mboxlist_is_pattern(a->mailboxes[i]))
			v[n++] = a->mailboxes[i];
	for (size_t i = 0; status && i < ar->n; i++) {
		struct box *b = ar->box[i];

		if (!b->check)
			continue;
		b->check = false;
		b->asked = true;
		if (b->plain || !discover)
			v[n++] = mailbox_name(b->mb);
	}
	*n_r = n;
	return v;
}

/* Sends the LIST that is due, or the STATUS checks as a LIST with
 * RETURN (STATUS) where the server offers LIST-STATUS. */
static void
start_list(struct account_run *ar, bool status)
{
	size_t n;
	bool discover = ar->list_due;
	const char **v = list_patterns(ar, discover, status, &n);

	ar->list_due = false;
	ar->listing = n > 0;
	ar->discovering = discover;
	/* What appears in this LIST appeared since the last one (and mail
	 * in it that arrived since is new: a push saying it was created can
	 * come late). */
	if (discover)
		ar->list_sent = wall_now(ar);
	watcher_list(ar->fetcher, v, n, status);
	free(v);
}

/* Queues b for the fetcher (once). */
static void
want_fetch(struct account_run *ar, struct box *b)
{
	if (b->fetch)
		return;
	b->fetch = true;
	b->fetch_next = NULL;
	if (ar->fetch_tail)
		ar->fetch_tail->fetch_next = b;
	else
		ar->fetch_head = b;
	ar->fetch_tail = b;
}

/* Queues the boxes of box[] with fetch set again, in their order: after
 * box[] changed, since gone ones must leave the queue. */
static void
requeue_fetches(struct account_run *ar)
{
	ar->fetch_head = ar->fetch_tail = NULL;
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->fetch) {
			ar->box[i]->fetch = false;
			want_fetch(ar, ar->box[i]);
		}
}

/* Gives the fetcher its next work: a LIST due, or the STATUS checks due
 * (as one LIST-STATUS where offered, else STATUS commands, pipelined),
 * else the first mailbox queued to catch up. */
static void
kick(struct account_run *ar)
{
	struct box *fetch = ar->fetch_head;
	size_t checks = 0, sent = 0;

	if (ar->stopping)
		return;
	/* Counted only while some may be due: with NOTIFY and 1000
	 * mailboxes this runs at every push. */
	for (size_t i = 0; ar->check_due && i < ar->n; i++)
		checks += ar->box[i]->check;
	ar->check_due = checks > 0;
	if (!ar->fetcher) {
		if (ar->single || checks || fetch || ar->list_due)
			ar->fetcher = new_watcher(ar, NULL, ar->single);
		return;
	}
	if (!watcher_ready(ar->fetcher))
		return;
	if (ar->list_due || (checks && watcher_list_status(ar->fetcher))) {
		start_list(ar, checks && watcher_list_status(ar->fetcher));
		return;
	}
	for (size_t i = 0; checks && i < ar->n && sent < SESSION_MAX_PIPELINE;
	     i++) {
		if (ar->box[i]->check) {
			ar->box[i]->check = false;
			watcher_status(ar->fetcher,
				       mailbox_name(ar->box[i]->mb));
			sent++;
		}
	}
	if (sent || !fetch)
		return;
	ar->fetch_head = fetch->fetch_next;
	if (!ar->fetch_head)
		ar->fetch_tail = NULL;
	fetch->fetch = false;
	ar->fetching = fetch;
	ar->fetch_mark = mailbox_next_uid(fetch->mb);
	watcher_examine(ar->fetcher, fetch->mb);
}

/* ---- the connection budget ---- */

/* A mailbox the server refused (its STATUS or the fetcher's EXAMINE) that
 * has no connection of its own, which would try it again itself. */
static bool
refused_on_fetcher(const struct box *b)
{
	return b->failed && !b->w;
}

/* True when the sweep lists the patterns' mailboxes again: without
 * NOTIFY, before the first LIST, and while NOTIFY does not follow some
 * of them (checked at the sweep). Its MailboxName events may then not
 * come either: a trial's Dovecot broke its list index, NOTIFY reported
 * 150 of 154 mailboxes no more, and folders created or renamed after
 * were never watched. */
static bool
list_at_sweep(const struct account_run *ar)
{
	if (!ar->dynamic)
		return false;
	if (ar->mode != M_NOTIFY || !ar->listed_once)
		return true;
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->swept)
			return true;
	return false;
}

/* True while the sweep has something to do: mailboxes checked every
 * poll_interval, refused ones to try again, or the LIST. */
static bool
sweep_needed(const struct account_run *ar)
{
	if (list_at_sweep(ar))
		return true;
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->swept || refused_on_fetcher(ar->box[i]))
			return true;
	return false;
}

static void
check_swept(struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->swept || refused_on_fetcher(ar->box[i]))
			ar->box[i]->check = ar->check_due = true;
	kick(ar);
}

static int
on_sweep(sd_event_source *src, uint64_t usec, void *ud)
{
	struct account_run *ar = ud;
	uint64_t p = ar->a->d.poll_interval * USEC_PER_SEC;

	if (!sweep_needed(ar)) {
		sd_event_source_set_enabled(src, SD_EVENT_OFF);
		return 0;
	}
	/* From when it was due, not from now: the timer's accuracy (p/10)
	 * would add up, every 16 s for poll_interval = 15 (trial N). After
	 * a suspend, from now. */
	usec += p;
	sd_event_source_set_time(src, usec > now_usec(ar) ? usec
							 : now_usec(ar) + p);
	sd_event_source_set_enabled(src, SD_EVENT_ON);
	/* Mailboxes created or deleted are found here, unless NOTIFY
	 * follows them all. */
	if (list_at_sweep(ar))
		ar->list_due = true;
	check_swept(ar);
	return 0;
}

/* Sweeps every poll_interval from now on, if not already. */
static void
start_sweeping(struct account_run *ar)
{
	unsigned p = ar->a->d.poll_interval;
	int on = SD_EVENT_OFF;

	sd_event_source_get_enabled(ar->sweep, &on);
	if (on != SD_EVENT_OFF)
		return;
	sd_event_source_set_time(ar->sweep, now_usec(ar) + p * USEC_PER_SEC);
	sd_event_source_set_time_accuracy(ar->sweep, p * USEC_PER_SEC / 10);
	sd_event_source_set_enabled(ar->sweep, SD_EVENT_ON);
}

/* Logs how the mailboxes are watched, when some are checked every
 * poll_interval: with NOTIFY, of those it does not follow only (a trial
 * read "1 mailbox with IDLE, 1 checked" after "watching 109 mailboxes
 * with IDLE and NOTIFY" as all that was watched). */
static void
say_assigned(struct account_run *ar, int prio)
{
	size_t own = ar->n_own, left = own + ar->n_checked;
	char limit[64];

	/* Not "the server allows": it allows more, others hold them. */
	if (ar->budget < ar->a->d.max_connections)
		snprintf(limit, sizeof(limit),
			 "%u connection%s: the server refused more", ar->budget,
			 ar->budget == 1 ? "" : "s");
	else
		snprintf(limit, sizeof(limit), "max_connections = %u",
			 ar->budget);
	if (ar->mode == M_NOTIFY)
		log_at(prio, &ar->log,
		       "%zu mailbox%s NOTIFY does not follow: %zu with IDLE, "
		       "%zu checked every %u s (%s)",
		       left, left == 1 ? "" : "es", own, ar->n_checked,
		       ar->a->d.poll_interval, limit);
	else
		log_at(prio, &ar->log,
		       "%zu mailbox%s with IDLE, %zu checked every %u s (%s)",
		       own + 1, own ? "es" : "", ar->n_checked,
		       ar->a->d.poll_interval, limit);
}

/* Gives the mailboxes NOTIFY does not follow (without NOTIFY, all but the
 * first) an IDLE connection each, in the configured order, as far as the
 * budget goes, and has the fetcher check the rest every poll_interval
 * (those that were not checked so far at once). Run when the mode is
 * known, when the budget went down and when the mailboxes changed. */
static void
assign(struct account_run *ar)
{
	size_t left = 0, failed = 0, own, given = 0, given_failed = 0;
	size_t spare;
	bool said;
	/* Beside the first mailbox's connection: with NOTIFY, or when the
	 * mailboxes are listed at each sweep, the fetcher is always there;
	 * else only for what does not fit. */
	bool fetcher = ar->single || ar->mode == M_NOTIFY || ar->dynamic;
	/* Single, the fetcher is all there is. */
	size_t room = ar->single || ar->budget < 1u + fetcher
			      ? 0
			      : ar->budget - 1 - fetcher;

	for (size_t i = first_other(ar); i < ar->n; i++) {
		left += !ar->box[i]->notified;
		failed += !ar->box[i]->notified && ar->box[i]->failed;
	}
	if (left <= room)
		own = left;
	else
		own = fetcher || !room ? room : room - 1;
	/* Mailboxes the server says are not there (a typo, one deleted)
	 * come last: they get the places the others leave (trial R: two
	 * misspelt names held two, and a real mailbox was checked every
	 * 60 s). */
	spare = own > left - failed ? own - (left - failed) : 0;
	for (size_t i = first_other(ar); i < ar->n; i++) {
		struct box *b = ar->box[i];
		bool was = b->swept;

		b->swept = !b->notified && (b->failed ? given_failed++ >= spare
						      : given++ >= own);
		if (b->swept && !was)
			b->check = ar->check_due = true;
		if (!b->swept && !b->notified && !b->w) {
			b->w = new_watcher(ar, b->mb, false);
		} else if ((b->swept || b->notified) && b->w) {
			close_box(ar, b);
			set_watched(ar, b, false);
		}
	}
	/* Said when it changes (assign() runs at each NOTIFY SET), quietly
	 * while one connection more is tried. */
	said = left > own && left - own != ar->n_checked;
	ar->n_own = own;
	ar->n_checked = left > own ? left - own : 0;
	if (said)
		say_assigned(ar, ar->probing || ar->try_refused ? LOG_DEBUG
								 : LOG_INFO);
	if (sweep_needed(ar))
		start_sweeping(ar);
	else
		sd_event_source_set_enabled(ar->sweep, SD_EVENT_OFF);
	kick(ar);
	changed(ar);
}

/* The fetcher has nothing under way any more: done is the mailbox it
 * caught up, else NULL (a new connection, checks answered, or the
 * fetcher freed). A catch-up cut short by a reconnect is done again, and
 * so is a LIST. */
static void
fetcher_done(struct account_run *ar, struct mailbox *done)
{
	if (ar->fetching && ar->fetching->mb != done)
		want_fetch(ar, ar->fetching);
	/* Single, what came while the mailbox was selected is not pushed
	 * (Dovecot pushes nothing of the selected mailbox but under the
	 * selected filter): its STATUS, now that it is closed, tells. Not
	 * a third time in a row without new mail. */
	else if (ar->fetching && ar->single) {
		struct box *b = ar->fetching;

		if (mailbox_next_uid(b->mb) != ar->fetch_mark)
			b->rechecks = 0;
		if (b->rechecks++ < 2)
			b->check = ar->check_due = true;
	}
	ar->fetching = NULL;
	if (ar->listing) {
		ar->listing = false;
		ar->list_due = ar->discovering;
		for (size_t i = 0; i < ar->n; i++) {
			ar->box[i]->check |= ar->box[i]->asked;
			ar->check_due |= ar->box[i]->asked;
			ar->box[i]->asked = false;
		}
		forget_listed(ar);
	}
}

/* Frees the fetcher; what it had under way is done again by the next. */
static void
drop_fetcher(struct account_run *ar)
{
	watcher_free(&ar->fetcher);
	fetcher_done(ar, NULL);
	check_followers(ar);
}

/* One connection for the account (on), with NOTIFY: the fetcher asks
 * for NOTIFY of every mailbox and catches up each one a STATUS shows new
 * mail in, the first mailbox too; or two again (off), the first
 * mailbox's asking for NOTIFY and selecting it, and the fetcher: the try
 * that held, if any. The connections whose roles change are closed and
 * opened again. */
static void
set_single(struct account_run *ar, bool on)
{
	struct box *first = ar->box[0];

	if (!ar->n || ar->single == on)
		return;
	close_box(ar, first);
	drop_fetcher(ar);
	ar->single = on;
	/* Single, it is one of those NOTIFY follows, until the NOTIFY SET's
	 * answer says otherwise (w_notify()). */
	first->notified = on;
	first->swept = first->check = false;
	set_watched(ar, first, false);
	if (on) {
		ar->fetcher = new_watcher(ar, NULL, true);
		return;
	}
	first->w = new_watcher(ar, first->mb, true);
	ar->fetcher = ar->probe;
	ar->probe = NULL;
	kick(ar);
}

/* Tries one connection more after grow_wait seconds. */
static void
grow_later(struct account_run *ar)
{
	sd_event_source_set_time_relative(ar->grow,
					  ar->grow_wait * USEC_PER_SEC);
	sd_event_source_set_enabled(ar->grow, SD_EVENT_ONESHOT);
}

/* The least connections the account can watch with: with NOTIFY one
 * watches every mailbox (single). */
static unsigned
least_budget(const struct account_run *ar)
{
	return ar->mode == M_NOTIFY ? 1 : BUDGET_MIN;
}

/* Whether a refusal can lower the budget. */
static bool
can_shrink(const struct account_run *ar)
{
	return !ar->stopping && ar->mode != M_STARTING &&
	       ar->budget > least_budget(ar);
}

/* A login met [LIMIT]: one connection fewer, and one more tried later.
 * The try's own refusal is expected: logged at debug level, and the next
 * try waits twice as long. */
static int
on_shrink(sd_event_source *src, void *ud)
{
	struct account_run *ar = ud;
	unsigned least = least_budget(ar);
	size_t need;

	(void)src;
	/* A try at two connections that met it: all stays as it is. */
	watcher_free(&ar->probe);
	if (!can_shrink(ar))
		return 0;
	/* The connections the mailboxes are given now: a budget above that
	 * says nothing of the server's limit, which is below it (with
	 * NOTIFY 2 watch them all, and a trial read "using at most 4",
	 * "3", then "2" at three refusals). */
	need = 1 + ar->n_own +
	       (ar->mode == M_NOTIFY || ar->dynamic || ar->n_checked);
	if (ar->budget > need)
		ar->budget = need - 1 > least ? (unsigned)need - 1 : least;
	else
		ar->budget--;
	/* Not probing any more before assign(), whose changes would take
	 * the try for one that held (changed()). */
	ar->try_refused = ar->probing;
	ar->probing = false;
	if (ar->try_refused) {
		ar->grow_wait = ar->grow_wait * 2 < BUDGET_RETRY_MAX
					? ar->grow_wait * 2
					: BUDGET_RETRY_MAX;
		log_debug(&ar->log, "the server still refuses more than %u "
				    "connection%s; trying again in %u s",
			  ar->budget, ar->budget == 1 ? "" : "s",
			  ar->grow_wait);
	} else {
		ar->grow_wait = BUDGET_RETRY;
		log_warn(&ar->log,
			 "the server limits connections: using at most %u",
			 ar->budget);
	}
	grow_later(ar);
	if (ar->budget == 1)
		set_single(ar, true);
	assign(ar);
	ar->try_refused = false;
	return 0;
}

static int
on_reassign(sd_event_source *src, void *ud)
{
	struct account_run *ar = ud;

	(void)src;
	if (ar->single && ar->mode == M_BUDGET)
		set_single(ar, false);
	if (!ar->stopping && ar->mode != M_STARTING)
		assign(ar);
	return 0;
}

/* grow_wait after [LIMIT] lowered the budget, or at once after a try
 * held, a resume or CheckNow: one connection more, if one would be used
 * (a budget no mailbox is short of goes back up whole). */
static int
on_grow(sd_event_source *src, uint64_t usec, void *ud)
{
	struct account_run *ar = ud;

	(void)src;
	(void)usec;
	if (ar->stopping || ar->mode == M_STARTING)
		return 0;
	if (ar->probing) {
		if (!own_all_up(ar)) {
			grow_later(ar); /* still trying, not refused */
			return 0;
		}
		ar->probing = false;
		ar->grow_wait = BUDGET_RETRY;
		set_single(ar, false);
		log_info(&ar->log, "the server takes %u connections again",
			 ar->budget);
		if (ar->n_checked)
			say_assigned(ar, LOG_INFO);
	}
	if (ar->budget >= ar->a->d.max_connections)
		return 0;
	if (!ar->n_checked && !ar->single) {
		ar->budget = ar->a->d.max_connections;
		return 0;
	}
	ar->budget++;
	ar->probing = true;
	log_debug(&ar->log, "trying %u connections", ar->budget);
	grow_later(ar);
	if (ar->single)
		ar->probe = new_watcher(ar, NULL, false);
	else
		assign(ar);
	return 0;
}

/* ---- watcher callbacks ---- */

static void
w_notify(void *ud, struct watcher *w, bool on)
{
	struct account_run *ar = ud;
	size_t got = 0;
	bool was;

	if (!ar->n || w != notifier(ar))
		return;
	if (!on) {
		if (ar->mode == M_BUDGET)
			return;
		ar->mode = M_BUDGET;
		for (size_t i = 0; i < ar->n; i++)
			ar->box[i]->notified = false;
		/* Without NOTIFY one connection cannot watch them all: two
		 * again, out of this watcher's callback (on_reassign()). */
		if (ar->single) {
			ar->budget = BUDGET_MIN;
			sd_event_source_set_enabled(ar->reassign,
						    SD_EVENT_ONESHOT);
			return;
		}
		assign(ar);
		return;
	}
	if (ar->mode == M_BUDGET)
		return; /* keeps the connections it has */
	was = ar->mode == M_NOTIFY;
	ar->mode = M_NOTIFY;
	/* What was created or deleted while it was away was not pushed. */
	if (ar->dynamic && ar->listed_once)
		ar->list_due = true;
	/* A mailbox NOTIFY sent no STATUS for may not exist (the fetcher's
	 * STATUS says), or the server does not follow it (Dovecot 2.3 does
	 * not for names with '&'): it is watched as without NOTIFY. */
	for (size_t i = first_other(ar); i < ar->n; i++) {
		struct box *b = ar->box[i];

		b->notified = b->gen == ar->gen;
		/* Debug: the next line says how it is watched, or that it
		 * cannot be opened (a misspelled name). */
		if (!b->notified && !b->w && !b->swept)
			log_debug(mailbox_log(b->mb),
				  "NOTIFY reported nothing of this mailbox");
		/* Checked by the fetcher it stays, until assign() says
		 * otherwise. */
		if (!b->swept)
			b->watched = false;
		if (b->notified) {
			got++;
			set_watched(ar, b, true);
		}
	}
	ar->gen++;
	/* NOTIFY is set again after pushes (session.c): said once, unless
	 * what it follows changed or its connection went down. */
	if ((!was || got != ar->n_notified) && ar->single)
		log_info(&ar->log, "watching %zu mailbox%s with NOTIFY over "
				   "one connection",
			 got, got == 1 ? "" : "es");
	else if (!was || got != ar->n_notified)
		log_info(&ar->log, "watching %zu mailbox%s with IDLE and NOTIFY",
			 got + 1, got ? "es" : "");
	ar->n_notified = got;
	assign(ar);
}

static void
w_status(void *ud, struct watcher *w, const char *name,
	 const struct session_status *st)
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
	/* NOTIFY SET's answer, in w_notify()'s count: also of a mailbox
	 * that has another connection now, because NOTIFY left it out
	 * before (a server's passing fault), so that it goes back to
	 * NOTIFY. Not the answer to a check on the same connection
	 * (single): a trial's "R&D", which Dovecot 2.3's NOTIFY does not
	 * follow, was taken for followed at the next NOTIFY SET and checked
	 * no more. Nor a push from before it: trial AF's mailbox, deleted 3
	 * s after its mail's push, was taken for there still. */
	if (w == notifier(ar) && st->notify_set)
		b->gen = ar->gen;
	/* Watched on its own connection. A UIDVALIDITY other than the one
	 * that connection has means the mailbox was deleted and created
	 * again: Dovecot then answers that session's IDLE with "NO
	 * Internal error" for good (trial L). Opened again, it catches up. */
	if (b->w && w != b->w && (st->have & SESSION_ST_UIDVALIDITY) &&
	    mailbox_uidvalidity(b->mb) &&
	    st->uidvalidity != mailbox_uidvalidity(b->mb) &&
	    watcher_connected(b->w)) {
		log_info(mailbox_log(b->mb),
			 "UIDVALIDITY is %u on the server, not %u: the "
			 "mailbox was created again; opening it again",
			 st->uidvalidity, mailbox_uidvalidity(b->mb));
		watcher_reopen(b->w);
	}
	/* There now, while its own connection waits minutes to try again
	 * (created: trial T's filed mail waited for that): tried now. */
	if (b->w && w != b->w && watcher_missing(b->w)) {
		log_info(mailbox_log(b->mb), "the server has it now: "
					     "opening it");
		watcher_probe(b->w);
	}
	if (b->w)
		return;
	unseen = mailbox_unseen(b->mb);
	/* There now (created): a connection of its own again, if its
	 * place in the list has one; once, until that holds (one that
	 * STATUS answers and EXAMINE does not would go round). */
	if (b->failed && !b->regained) {
		b->regained = true;
		sd_event_source_set_enabled(ar->reassign, SD_EVENT_ONESHOT);
	}
	b->failed = false;
	/* Before NOTIFY's reply, w_notify() says how it is watched. */
	if (ar->mode != M_STARTING)
		set_watched(ar, b, true);
	else
		b->watched = true;
	if (b == ar->fetching) {
		want_fetch(ar, b); /* being caught up: once more after */
		if (st->have & SESSION_ST_UNSEEN)
			mailbox_set_unseen(b->mb, st->unseen);
	} else if (mailbox_status(b->mb, st, wall_now(ar))) {
		want_fetch(ar, b);
	} else {
		b->rechecks = 0;
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
	fetcher_done(ar, done);
	/* Back after a drop: mail that came meanwhile to the mailboxes it
	 * checks is found now, not up to poll_interval later (trial Q: 38
	 * s after an outage, and status said "nothing unseen" meanwhile). */
	if (ar->recheck) {
		ar->recheck = false;
		check_swept(ar); /* which kicks */
		return;
	}
	kick(ar);
}

static void
w_mailbox_failed(void *ud, const char *name, const char *msg)
{
	struct account_run *ar = ud;
	struct box *b = find_box(ar, name);

	if (!b)
		return;
	if (!b->failed) {
		log_warn(mailbox_log(b->mb), "cannot watch this mailbox: %s",
			 msg);
		gone_now(ar, b);
	}
	b->failed = true;
	set_watched(ar, b, false);
	/* Tried again with STATUS at each sweep until it is answered. */
	if (!b->w)
		start_sweeping(ar);
}

/* ---- the list of mailboxes ---- */

/* Keeps what mb, no longer listed, followed for withdrawal. */
static void
keep_gone(struct account_run *ar, struct mailbox *mb)
{
	struct gone *g = &ar->gone[ar->gone_next];
	uint64_t modseq;

	ar->gone_next = (ar->gone_next + 1) % GONE_MAX;
	free(g->name);
	g->name = xstrdup(mailbox_name(mb));
	g->n = mailbox_known(mb, g->uids, SESSION_MAX_KNOWN, &g->uidvalidity,
			     &modseq);
}

/* The mailbox renamed to one that appeared (struct mailbox_env): the
 * only one whose state has the same UIDVALIDITY, if no longer watched,
 * with what it followed when it went. */
static const char *
renamed(void *ud, uint32_t uidvalidity, struct state *st, uint32_t *uids,
	size_t *n_r)
{
	struct account_run *ar = ud;
	const char *name = state_store_find(ar->store, uidvalidity, st);

	*n_r = 0;
	if (!name || find_box(ar, name))
		return NULL;
	for (unsigned i = 0; i < GONE_MAX; i++) {
		struct gone *g = &ar->gone[i];

		if (g->name && !strcmp(g->name, name) &&
		    g->uidvalidity == uidvalidity) {
			memcpy(uids, g->uids, g->n * sizeof(*uids));
			*n_r = g->n;
			freep(&g->name);
		}
	}
	return name;
}

static struct box *
new_box(struct account_run *ar, const char *name)
{
	struct box *b = xcalloc(1, sizeof(*b));
	struct mailbox_env me = {
		.sinks = ar->env.sinks,
		.n_sinks = ar->env.n_sinks,
		.copies = ar->copies,
		.store = ar->store,
		.save_soon = save_soon,
		.renamed = renamed,
		.ud = ar,
	};

	b->mb = mailbox_new(&me, ar->a, name);
	for (size_t i = 0; i < ar->a->n_mailboxes; i++) {
		const char *m = ar->a->mailboxes[i];

		b->plain = b->plain ||
			   (!mboxlist_is_pattern(m) && same_name(m, name));
	}
	/* Watched from the start: one without state may have been created
	 * (or renamed to its name) while mailwatch was stopped, a pattern's
	 * up to poll_interval before the stop, when the last LIST may not
	 * have shown it yet. One named in full was not watched before: its
	 * mail from before the stop is not announced (trial Q: a folder
	 * added at a reload with poll_interval = 3600 announced an hour of
	 * unread mail). */
	if (!ar->listed_once && ar->stopped_since)
		mailbox_appeared(b->mb, ar->stopped_since -
					    (b->plain ? 0
						      : ar->a->d.poll_interval));
	else if (ar->failed_first)
		mailbox_looked_late(b->mb, ar->started);
	return b;
}

/* Closes b's own connection, if any, saving its state first; its server
 * was heard from until now. */
static void
close_box(struct account_run *ar, struct box *b)
{
	if (!b->w)
		return;
	mailbox_save(b->mb, false, watcher_is_idle(b->w), watcher_exists(b->w),
		     wall_now(ar));
	watcher_free(&b->w);
	mailbox_closed(b->mb, wall_now(ar), wall_now(ar));
}

static void
free_box(struct box **bp)
{
	struct box *b = *bp;

	if (!b)
		return;
	watcher_free(&b->w);
	mailbox_free(&b->mb);
	free(b);
	*bp = NULL;
}

static void
forget_listed(struct account_run *ar)
{
	for (size_t i = 0; i < ar->n_listed; i++)
		free(ar->listed[i].name);
	ar->n_listed = 0;
}

/* Sets the names NOTIFY follows (n_others()) after box[] changed. */
static void
set_others(struct account_run *ar)
{
	const char **old = ar->names;

	ar->names = xcalloc(ar->n + 1, sizeof(*ar->names));
	for (size_t i = 0; i < ar->n; i++)
		ar->names[i] = mailbox_name(ar->box[i]->mb);
	if (notifier(ar))
		watcher_set_others(notifier(ar), ar->names + first_other(ar),
				   n_others(ar));
	free(old);
}

/* b, listed, has a connection of its own that waits MAILBOX_RETRY to
 * try it again after the server said there was no such mailbox: it was
 * deleted and created again between two LISTs (a trial waited 5
 * minutes for its mail). Tried at once, once; if that fails too, it
 * waits as before. */
static void
retry_listed(struct box *b)
{
	if (!b->w || !watcher_missing(b->w)) {
		b->relisted = false;
		return;
	}
	if (b->relisted)
		return;
	b->relisted = true;
	log_info(mailbox_log(b->mb), "listed by the server again: trying it "
				     "now");
	watcher_probe(b->w);
}

/* The LIST is answered: the mailboxes watched become those it selects
 * (mboxlist_select). A mailbox no longer listed is let go, its state
 * kept in the store (its mark comes back if it does); one listed for the
 * first time after the first LIST has appeared since the last one.
 * box[0], whose connection asks for NOTIFY, stays first while it is
 * listed. */
static void
apply_list(struct account_run *ar)
{
	const struct account *a = ar->a;
	size_t n, added = 0, removed = 0;
	const char **names = mboxlist_select(
	    a->mailboxes, a->n_mailboxes, a->ignore_mailboxes,
	    a->n_ignore_mailboxes, ar->listed, ar->n_listed, &n);
	struct box **old = ar->box, **v = xcalloc(n + 2, sizeof(*v));
	size_t n_old = ar->n;
	bool first_kept = false;

	/* Said once: a pattern that matches nothing is most likely a typo
	 * (names are matched in their case: "lists/dev" is not "Lists/dev"). */
	for (size_t i = 0; i < a->n_mailboxes && !ar->listed_once; i++)
		if (mboxlist_is_pattern(a->mailboxes[i]) &&
		    !mboxlist_any_match(a->mailboxes[i], ar->listed,
					ar->n_listed))
			log_warn(&ar->log,
				 "mailboxes: no mailbox on the server "
				 "matches %s",
				 a->mailboxes[i]);
	for (size_t i = 0; i < a->n_ignore_mailboxes && !ar->listed_once; i++)
		if (!mboxlist_any_match(a->ignore_mailboxes[i], ar->listed,
					ar->n_listed))
			log_warn(&ar->log,
				 "ignore_mailboxes: no mailbox that "
				 "mailboxes takes matches %s",
				 a->ignore_mailboxes[i]);

	for (size_t j = 0; j < n_old; j++)
		old[j]->kept = false;
	for (size_t i = 0; i < n; i++) {
		struct box *b = find_box(ar, names[i]);

		if (b && !b->kept) {
			b->kept = true;
			v[i] = b;
			retry_listed(b);
			continue;
		}
		v[i] = new_box(ar, names[i]);
		added++;
		if (ar->listed_once) {
			mailbox_appeared(v[i]->mb, ar->list_applied - 1);
			log_info(mailbox_log(v[i]->mb),
				 "a new mailbox: watching it");
		}
	}
	first_kept = n_old && old[0]->kept;
	for (size_t i = 1; first_kept && i < n; i++) {
		if (v[i] == old[0]) {
			memmove(&v[1], &v[0], i * sizeof(*v));
			v[0] = old[0];
			break;
		}
	}
	free(names);
	/* The one the fetcher is catching up stays till it is done. */
	for (size_t j = 0; j < n_old; j++) {
		if (!old[j]->kept && old[j] == ar->fetching) {
			old[j]->kept = true;
			v[n++] = old[j];
		}
		removed += !old[j]->kept;
	}
	ar->box = v;
	ar->n = n;
	index_boxes(ar);
	requeue_fetches(ar);
	if (!first_kept && n_old)
		close_box(ar, old[0]); /* before its others are changed */
	if (added || removed || !first_kept)
		set_others(ar);
	for (size_t j = 0; j < n_old; j++) {
		if (old[j]->kept)
			continue;
		log_info(mailbox_log(old[j]->mb),
			 "no longer listed by the server: not watched");
		close_box(ar, old[j]);
		keep_gone(ar, old[j]->mb);
		free_box(&old[j]);
	}
	free(old);
	forget_listed(ar);
	if (!ar->listed_once)
		log_info(&ar->log, "%zu mailbox%s to watch", n,
			 n == 1 ? "" : "es");
	else if (added || removed)
		log_info(&ar->log, "%zu mailbox%s to watch (%zu new, %zu gone)",
			 n, n == 1 ? "" : "es", added, removed);
	ar->listed_once = true;
	if (!n) {
		log_warn(&ar->log, "no mailbox matches mailboxes; listing "
				   "again every %u s",
			 a->d.poll_interval);
		ar->mode = M_STARTING;
		start_sweeping(ar);
		changed(ar);
		return;
	}
	if (!ar->single && (!ar->box[0]->w || !first_kept)) {
		/* A new first mailbox: its connection asks for NOTIFY. */
		close_box(ar, ar->box[0]);
		ar->box[0]->swept = ar->box[0]->notified = false;
		ar->box[0]->check = false;
		ar->box[0]->w = new_watcher(ar, ar->box[0]->mb, true);
		if (ar->mode == M_NOTIFY)
			ar->mode = M_STARTING;
	}
	if (ar->mode == M_BUDGET && (added || removed || !first_kept))
		assign(ar);
	changed(ar);
}

static void
w_listed(void *ud, struct watcher *w, const char *name, char delimiter,
	 const struct codec_strlist *attrs, bool pushed)
{
	struct account_run *ar = ud;
	struct mboxlist_entry *e;

	if (pushed) {
		/* NOTIFY's MailboxName: created, renamed or deleted. */
		if (!ar->n || w != notifier(ar))
			return;
		/* Named in full and deleted: NOTIFY SET again, whose STATUS
		 * of each tells that it is gone (trial AD's was watched on,
		 * in silence). Created: its STATUS tells (w_status()); a
		 * rename Dovecot 2.3 does not tell. */
		if (!ar->dynamic) {
			if (codec_strlist_has(attrs, "\\NonExistent") &&
			    find_box(ar, name))
				set_others(ar);
			return;
		}
		log_debug(&ar->log, "mailbox %s %s: listing again", name,
			  codec_strlist_has(attrs, "\\NonExistent")
				  ? "deleted"
				  : "created or renamed");
		ar->list_due = true;
		kick(ar);
		return;
	}
	if (w != ar->fetcher || !ar->listing)
		return;
	if (ar->n_listed == LISTED_MAX) {
		if (!ar->listed_over)
			log_warn(&ar->log,
				 "the server listed more than %d mailboxes; "
				 "the rest are left out",
				 LISTED_MAX);
		ar->listed_over = true;
		return;
	}
	if (ar->n_listed == ar->cap_listed) {
		ar->cap_listed = ar->cap_listed ? 2 * ar->cap_listed : 64;
		ar->listed = xrealloc(ar->listed,
				      ar->cap_listed * sizeof(*ar->listed));
	}
	e = &ar->listed[ar->n_listed++];
	e->name = xstrdup(name);
	e->delimiter = delimiter;
	e->attrs = mboxlist_attrs(attrs);
}

static void
w_list_end(void *ud, struct watcher *w, bool ok)
{
	struct account_run *ar = ud;

	if (w != ar->fetcher || !ar->listing)
		return;
	ar->listing = false;
	/* A mailbox checked by the LIST that it did not list is not there
	 * (a refused LIST says nothing: checked again at the next sweep). */
	for (size_t i = 0; i < ar->n; i++) {
		struct box *b = ar->box[i];
		bool there = false;

		if (!b->asked)
			continue;
		b->asked = false;
		for (size_t j = 0; ok && j < ar->n_listed && !there; j++)
			there = !(ar->listed[j].attrs & MBOXLIST_NOSELECT) &&
				same_name(ar->listed[j].name,
					  mailbox_name(b->mb));
		if (ok && !there && b->plain)
			w_mailbox_failed(ar, mailbox_name(b->mb),
					 "the server does not list it");
	}
	if (ar->discovering && ok) {
		apply_list(ar);
		ar->list_applied = ar->list_sent;
	}
	forget_listed(ar);
	/* Refused: listed again at the next sweep (with NOTIFY, at the
	 * next push). */
	if (ar->discovering && !ok && ar->mode != M_NOTIFY)
		start_sweeping(ar);
}

/* A connection failed (see watcher_env.failed). In a first run, the
 * mailboxes it was to look at may then be looked at only after minutes
 * of retries (the server down, the network not up yet, logins refused
 * while other clients hold every connection, a password fixed at a
 * reload). Mail that reaches them before is not taken as old, as what a
 * mailbox holds at its first look is at a first run
 * (mailbox_looked_late(); nothing for a box looked at already): a box's
 * own connection, its box; the others (NOTIFY's, the checking or
 * fetching connection), every box without its own and those a later LIST
 * shows. */
static void
w_failed(void *ud, struct watcher *w)
{
	struct account_run *ar = ud;

	/* The first mailbox's connection follows them all with NOTIFY (or
	 * may: before its login, the mode is not known); without, it is
	 * its own IDLE. */
	bool all = w == notifier(ar) && ar->mode != M_BUDGET;
	struct box *own = NULL;

	for (size_t i = 0; i < ar->n && !all; i++)
		if (ar->box[i]->w == w)
			own = ar->box[i];
	/* One a pattern took, that the server says is not there, was most
	 * likely deleted or renamed: a LIST now lets it go or finds its new
	 * name, where the next sweep's may come poll_interval later (and
	 * "trying the mailbox again in 300 s" is not what happens). */
	if (own && !own->plain && watcher_mailbox_refused(w)) {
		watcher_quiet_retry(w);
		ar->list_due = true;
		kick(ar);
	}
	if (!ar->started)
		return;
	if (own) {
		mailbox_looked_late(own->mb, ar->started);
		return;
	}
	ar->failed_first = true;
	for (size_t i = 0; i < ar->n; i++)
		if (!ar->box[i]->w || ar->box[i]->w == w)
			mailbox_looked_late(ar->box[i]->mb, ar->started);
}

static void
w_limited(void *ud, struct watcher *w)
{
	struct account_run *ar = ud;

	sd_event_source_set_enabled(ar->shrink, SD_EVENT_ONESHOT);
	/* Not a try at one connection more: one this account needs. The
	 * others of the same login make room (trial AD's second account
	 * kept two connections while the first had none). */
	if (!ar->probing && ar->env.limited)
		ar->env.limited(ar->env.ud, ar->a);
	/* The first mailbox's connection (NOTIFY's) comes first: an idle
	 * fetcher gives it its place, and connects again when there is
	 * work. Else, with one connection left to the account, the fetcher
	 * that got it first kept it and nothing was pushed. (Once NOTIFY is
	 * known, one connection does it all: on_shrink().) */
	if (ar->n && w == ar->box[0]->w && ar->mode != M_NOTIFY &&
	    ar->fetcher && watcher_ready(ar->fetcher) && !ar->list_due) {
		log_info(&ar->log, "closing the checking connection: %s "
				   "needs its place",
			 mailbox_name(ar->box[0]->mb));
		watcher_free(&ar->fetcher);
		check_followers(ar);
	}
}

void
account_run_give_way(struct account_run *ar)
{
	if (!can_shrink(ar))
		return;
	log_info(&ar->log, "another account of the same user and server was "
			   "refused a connection: giving one up");
	sd_event_source_set_enabled(ar->shrink, SD_EVENT_ONESHOT);
}

/* ---- state ---- */

/* Puts every mailbox's state in the store. */
static void
save_all(struct account_run *ar, bool final)
{
	for (size_t i = 0; i < ar->n; i++) {
		struct box *b = ar->box[i];
		bool idle = b->w && watcher_is_idle(b->w);

		mailbox_save(b->mb, final, idle,
			     idle ? watcher_exists(b->w) : 0, wall_now(ar));
	}
}

/* Writes the state once the loop is idle; in a burst, at most once per
 * SAVE_INTERVAL (each write is an fdatasync, a rename and a directory
 * fsync, of one file for every mailbox of the account), but a mailbox's
 * first state (now) without that wait. A clean stop writes it at once. */
static void
save_soon(void *ud, bool now)
{
	struct account_run *ar = ud;
	uint64_t t = now_usec(ar), at = ar->saved_at + SAVE_INTERVAL, due;
	int on = SD_EVENT_OFF;

	if (now || at < t)
		at = t;
	sd_event_source_get_enabled(ar->saver, &on);
	if (on != SD_EVENT_OFF &&
	    (sd_event_source_get_time(ar->saver, &due) < 0 || due <= at))
		return;
	sd_event_source_set_time(ar->saver, at);
	sd_event_source_set_enabled(ar->saver, SD_EVENT_ONESHOT);
}

/* The store turned dirty (an earlier version's file read into it, or a
 * renamed account's). */
static void
store_dirtied(void *ud)
{
	save_soon(ud, false);
}

static bool
store_name_in_use(void *ud, const char *name)
{
	struct account_run *ar = ud;

	return ar->env.configured(ar->env.ud, name);
}

static int
on_save(sd_event_source *src, uint64_t usec, void *ud)
{
	struct account_run *ar = ud;

	(void)src;
	(void)usec;
	ar->saved_at = now_usec(ar);
	save_all(ar, false);
	/* A failed write keeps the store dirty: tried again at the next
	 * save, not by a timer of its own. */
	state_store_write(ar->store);
	/* The puts above asked for this very write. */
	sd_event_source_set_enabled(ar->saver, SD_EVENT_OFF);
	return 0;
}

/* SLEPT_WINDOW after a resume: new mail is live again. */
static int
on_awake(sd_event_source *s, uint64_t usec, void *ud)
{
	struct account_run *ar = ud;

	(void)s;
	(void)usec;
	log_debug(&ar->log, "after the resume: new mail is live again");
	for (size_t i = 0; i < ar->n; i++)
		mailbox_awake(ar->box[i]->mb);
	return 0;
}

/* ---- life ---- */

struct account_run *
account_run_new(const struct account_env *env, const struct account *a,
		struct cred *cred)
{
	struct account_run *ar = xcalloc(1, sizeof(*ar));
	int r;

	ar->env = *env;
	ar->wenv = (struct watcher_env){
		.event = env->event,
		.changed = changed,
		.notify = w_notify,
		.status = w_status,
		.ready = w_ready,
		.mailbox_failed = w_mailbox_failed,
		.limited = w_limited,
		.failed = w_failed,
		.listed = w_listed,
		.list_end = w_list_end,
		.ud = ar,
	};
	ar->a = a;
	ar->cred = cred;
	ar->name = xstrdup(a->name);
	ar->log.account = ar->name;
	ar->budget = a->d.max_connections;
	ar->gen = 1;
	for (size_t i = 0; i < a->n_mailboxes; i++)
		ar->dynamic =
			ar->dynamic || mboxlist_is_pattern(a->mailboxes[i]);
	/* Before the mailboxes, which ask it for their state (and may
	 * dirty it, moving an earlier version's files into it). */
	r = sd_event_add_time(env->event, &ar->saver, CLOCK_BOOTTIME, 0,
			      SAVE_INTERVAL / 10, on_save, ar);
	if (r >= 0)
		r = sd_event_source_set_priority(ar->saver,
						 SD_EVENT_PRIORITY_IDLE);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->saver, SD_EVENT_OFF);
	ar->store = state_store_new(a->name, a->host, a->username,
				    ar->env.config_path,
				    ar->env.configured ? store_name_in_use
						       : NULL,
				    store_dirtied, ar);
	ar->copies = copies_new();
	/* At a reload, the run before watched until now (trial S: a folder
	 * added then announced mail from the second before), and from the
	 * second after: the mail of the reload's own second may have come
	 * before it (trial T). */
	ar->stopped_since = state_store_written(ar->store);
	if (state_freed_at(a->name) &&
	    state_freed_at(a->name) >= ar->stopped_since)
		ar->stopped_since = state_freed_at(a->name) + 1;
	if (!ar->stopped_since)
		ar->started = wall_now(ar);
	/* With patterns, the mailboxes come from the first LIST. */
	ar->n = ar->dynamic ? 0 : a->n_mailboxes;
	ar->box = xcalloc(ar->n + 1, sizeof(*ar->box));
	for (size_t i = 0; i < ar->n; i++)
		ar->box[i] = new_box(ar, a->mailboxes[i]);
	/* INBOX first, as after a LIST: the first mailbox's connection
	 * is the one that pushes with NOTIFY, and a trial's misspelt first
	 * name left the whole account unwatched. */
	for (size_t i = 1; i < ar->n; i++) {
		struct box *inbox = ar->box[i];

		if (strcmp(mailbox_name(inbox->mb), "INBOX"))
			continue;
		memmove(ar->box + 1, ar->box, i * sizeof(*ar->box));
		ar->box[0] = inbox;
		break;
	}
	index_boxes(ar);
	set_others(ar);
	if (r >= 0)
		r = sd_event_add_defer(env->event, &ar->shrink, on_shrink, ar);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->shrink, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(env->event, &ar->reassign, on_reassign,
				       ar);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->reassign, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_time(env->event, &ar->grow, CLOCK_BOOTTIME, 0,
				      USEC_PER_SEC, on_grow, ar);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->grow, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_time(env->event, &ar->sweep, CLOCK_BOOTTIME, 0,
				      0, on_sweep, ar);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->sweep, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_time(env->event, &ar->awake, CLOCK_BOOTTIME, 0,
				      USEC_PER_SEC, on_awake, ar);
	if (r >= 0)
		r = sd_event_source_set_enabled(ar->awake, SD_EVENT_OFF);
	if (r < 0) {
		log_err(&ar->log, "event loop: %s", strerror(-r));
		abort();
	}
	if (ar->dynamic) {
		ar->list_due = true;
		kick(ar);
	} else {
		ar->box[0]->w = new_watcher(ar, ar->box[0]->mb, true);
	}
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
		watcher_free(&ar->box[i]->w);
	watcher_free(&ar->fetcher);
	watcher_free(&ar->probe);
	for (size_t i = 0; i < ar->n; i++)
		free_box(&ar->box[i]);
	/* Said at warning level even when failing writes were quiet: the
	 * cost shows at the next start. */
	if (state_store_write(ar->store) < 0)
		log_warn(&ar->log, "state: the last state could not be "
				   "written: what was announced since it last "
				   "was will be announced again at the next "
				   "start");
	state_store_free(&ar->store);
	copies_free(&ar->copies);
	for (unsigned i = 0; i < GONE_MAX; i++)
		free(ar->gone[i].name);
	forget_listed(ar);
	free(ar->listed);
	sd_event_source_disable_unref(ar->saver);
	sd_event_source_disable_unref(ar->shrink);
	sd_event_source_disable_unref(ar->reassign);
	sd_event_source_disable_unref(ar->grow);
	sd_event_source_disable_unref(ar->sweep);
	sd_event_source_disable_unref(ar->awake);
	free(ar->box);
	free(ar->by_name);
	free(ar->names);
	free(ar->name);
	free(ar);
	*arp = NULL;
}

void
account_run_rebind(struct account_run *ar, const struct account *a)
{
	ar->a = a;
	for (size_t i = 0; i < ar->n; i++) {
		mailbox_rebind(ar->box[i]->mb, a);
		if (ar->box[i]->w)
			watcher_rebind(ar->box[i]->w, a);
	}
	if (ar->fetcher)
		watcher_rebind(ar->fetcher, a);
	if (ar->probe)
		watcher_rebind(ar->probe, a);
}

/* Connections waiting out a back-off try at once. */
static void
retry_waiting(struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->w)
			watcher_retry(ar->box[i]->w);
	if (ar->fetcher)
		watcher_retry(ar->fetcher);
}

/* A reload is the user's "try again now": the budget goes back to
 * max_connections, and connections waiting out a back-off (after
 * [LIMIT], a certificate refused, the server down) try at once. Trial
 * X's checking connection came back 18 to 34 s after the reload; trial
 * AA's, refused a certificate whose CA was since added to ca_file, went
 * on waiting. */
void
account_run_reloaded(struct account_run *ar)
{
	if (ar->stopping)
		return;
	if (ar->mode == M_STARTING || ar->budget >= ar->a->d.max_connections) {
		retry_waiting(ar);
		return;
	}
	log_info(&ar->log, "trying max_connections = %u again",
		 ar->a->d.max_connections);
	/* On one connection, a try at two first (on_grow()), which changes
	 * nothing while refused: a trial's reloads each handed the one
	 * connection to INBOX's IDLE and back, with the refusal logged. */
	if (ar->single) {
		if (!ar->probing) {
			sd_event_source_set_time_relative(ar->grow, 0);
			sd_event_source_set_enabled(ar->grow, SD_EVENT_ONESHOT);
		}
		return;
	}
	ar->budget = ar->a->d.max_connections;
	ar->probing = false;
	sd_event_source_set_enabled(ar->grow, SD_EVENT_OFF);
	assign(ar);
	retry_waiting(ar);
}

/* Hooks ended (or started): the messages whose running hooks held the
 * state back are handled now. Written at once, unless such a write came
 * less than SAVE_INTERVAL ago: the write at the announce, which the
 * running hook held back, may have just used up the interval, and a
 * trial's SIGKILL 0.3 s after a lone message's hook announced it again
 * at the next start. So at most two writes a second in a burst. */
void
account_run_save(struct account_run *ar)
{
	uint64_t t = now_usec(ar);
	bool now = t >= ar->released_at + SAVE_INTERVAL;

	if (now)
		ar->released_at = t;
	save_soon(ar, now);
}

void
account_run_stop(struct account_run *ar)
{
	ar->stopping = true;
	sd_event_source_set_enabled(ar->sweep, SD_EVENT_OFF);
	watcher_free(&ar->probe);
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->w)
			watcher_stop(ar->box[i]->w);
	if (ar->fetcher)
		watcher_stop(ar->fetcher);
}

void
account_run_pause(struct account_run *ar, bool paused)
{
	ar->paused = paused;
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->w)
			watcher_pause(ar->box[i]->w, paused);
	if (ar->fetcher)
		watcher_pause(ar->fetcher, paused);
	if (ar->probe)
		watcher_pause(ar->probe, paused);
}

bool
account_run_stopped(const struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->w && !watcher_stopped(ar->box[i]->w))
			return false;
	return !ar->fetcher || watcher_stopped(ar->fetcher);
}

void
account_run_probe(struct account_run *ar, bool slept)
{
	/* A trial's connection outlived a suspend, and the mail of the
	 * sleep ran its hooks one by one with catch_up = skip. */
	for (size_t i = 0; i < ar->n && slept; i++)
		mailbox_slept(ar->box[i]->mb);
	if (slept) {
		sd_event_source_set_time_relative(ar->awake, SLEPT_WINDOW);
		sd_event_source_set_enabled(ar->awake, SD_EVENT_ONESHOT);
	}
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->w)
			watcher_probe(ar->box[i]->w);
	if (ar->fetcher)
		watcher_probe(ar->fetcher);
	check_swept(ar);
	/* What other clients held may be free now: one connection more. */
	if (ar->budget < ar->a->d.max_connections && !ar->probing &&
	    !ar->stopping) {
		sd_event_source_set_time_relative(ar->grow, 0);
		sd_event_source_set_enabled(ar->grow, SD_EVENT_ONESHOT);
	}
}

bool
account_run_gave_up(const struct account_run *ar)
{
	for (size_t i = 0; i < ar->n; i++)
		if (ar->box[i]->w && watcher_gave_up(ar->box[i]->w))
			return true;
	return ar->fetcher && watcher_gave_up(ar->fetcher);
}

/* True when the connection that checks b (the NOTIFY one, or the
 * fetcher for one checked every poll_interval) is up: logged in, idle or
 * at work. */
static bool
checked_now(const struct account_run *ar, const struct box *b)
{
	const struct watcher *via = ar->mode == M_NOTIFY && !b->swept
					? notifier(ar)
					: ar->fetcher;

	return b->watched && !b->failed && via && watcher_connected(via);
}

/* A mailbox on its own connection is watched from its first IDLE on
 * while the connection lasts, also while it fetches new mail or sets
 * NOTIFY again between two IDLEs: a status bar should not blink at new
 * mail. */
static bool
box_watched(const struct account_run *ar, const struct box *b)
{
	return b->w ? watcher_connected(b->w) : checked_now(ar, b);
}

size_t
account_run_mailboxes(const struct account_run *ar)
{
	return ar->n;
}

size_t
account_run_watched(const struct account_run *ar)
{
	size_t n = 0;

	for (size_t i = 0; i < ar->n; i++)
		n += box_watched(ar, ar->box[i]);
	return n;
}

void
account_run_each(const struct account_run *ar,
		 void (*fn)(void *fud, const char *mailbox, bool watched,
			    int64_t unseen),
		 void *fud)
{
	for (size_t i = 0; i < ar->n; i++)
		fn(fud, mailbox_name(ar->box[i]->mb),
		   box_watched(ar, ar->box[i]),
		   mailbox_unseen(ar->box[i]->mb));
}

const char *
account_run_describe(struct account_run *ar, bool named)
{
	/* Unnamed (status's account line follows the name): "INBOX: ...",
	 * not "NAME/INBOX: ...". */
	const char *name = named ? ar->name : "", *colon = named ? ": " : "";
	const char *slash = named ? "/" : "";
	char *s = ar->describe;
	size_t size = sizeof(ar->describe), off = 0;
	/* Connections up (trial R read 5 where 2 were: the others waited
	 * to try mailboxes that were not there). */
	unsigned conns = ar->fetcher && watcher_connected(ar->fetcher);
	size_t swept = 0, idle = 0, down = 0, apart = 0;

	s[0] = 0;
	for (size_t i = 0; i < ar->n; i++)
		swept += ar->box[i]->swept;
	/* Those on a connection of their own that is up (apart: besides
	 * NOTIFY's); the others are told below with what is wrong. */
	for (size_t i = 0; i < ar->n; i++) {
		struct watcher *w = ar->box[i]->w;

		idle += w && watcher_connected(w);
		apart += w && watcher_connected(w) && w != notifier(ar);
		down += w && !watcher_connected(w);
	}
	conns += idle;
	/* How they are watched, while the first mailbox's connection (the
	 * NOTIFY one) is up; else only what is wrong is told. */
	if ((ar->n > 1 || ar->single) && notifier(ar) &&
	    watcher_connected(notifier(ar))) {
		if (ar->mode == M_NOTIFY) {
			off += snprintf(s, size,
					"%s%s%zu mailbox%s over %u "
					"connection%s (NOTIFY",
					name, colon, ar->n - swept - down,
					ar->n - swept - down == 1 ? "" : "es",
					conns, conns == 1 ? "" : "s");
			/* Why there may be more connections than
			 * mailboxes (a trial's "2 mailboxes over 3
			 * connections"). */
			if (apart && off < size)
				off += snprintf(s + off, size - off,
						"; IDLE for %zu it does not "
						"follow",
						apart);
			if (off < size)
				off += snprintf(s + off, size - off, ")");
		} else if (ar->mode == M_BUDGET) {
			off += snprintf(s, size, "%s%s%zu mailbox%s with IDLE",
					name, colon, idle,
					idle == 1 ? "" : "es");
		}
		if (swept && off < size)
			off += snprintf(s + off, size - off,
					", %zu checked every %u s", swept,
					ar->a->d.poll_interval);
		/* Why more are checked than max_connections would have
		 * (trial N read it in the log only). */
		if (swept && ar->budget < ar->a->d.max_connections &&
		    off < size)
			off += snprintf(s + off, size - off,
					" (%u connection%s: the server "
					"refused more)",
					ar->budget,
					ar->budget == 1 ? "" : "s");
	}
	for (size_t i = 0; i < ar->n && off < size; i++) {
		struct watcher *w = ar->box[i]->w;

		if (w && !watcher_connected(w))
			off += snprintf(s + off, size - off, "%s%s%s%s: %s",
					off ? "; " : "", name, slash,
					mailbox_name(ar->box[i]->mb),
					watcher_describe(w));
		else if (refused_on_fetcher(ar->box[i]))
			off += snprintf(s + off, size - off,
					"%s%s%s%s: cannot open the mailbox",
					off ? "; " : "", name, slash,
					mailbox_name(ar->box[i]->mb));
	}
	/* The fetcher at work is well; only trouble is told, and not again
	 * while the first mailbox's connection is down too (an outage: a
	 * trial read "INBOX: reconnecting; checking: reconnecting"). */
	if (ar->fetcher && !watcher_connected(ar->fetcher) &&
	    !(ar->n && ar->box[0]->w && !watcher_connected(ar->box[0]->w)) &&
	    off < size)
		snprintf(s + off, size - off, "%s%s%s%s connection: %s",
			 off ? "; " : "", name, colon,
			 ar->single		 ? "its"
			 : ar->mode == M_NOTIFY ? "fetching"
						: "checking",
			 watcher_describe(ar->fetcher));
	return s;
}
