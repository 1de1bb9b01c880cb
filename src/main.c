/* main: command line, configuration, the sd-event loop, signals and
 * sd_notify. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "config.h"
#include "mboxlist.h"
#include "password.h"
#include "resume.h"
#include "service.h"
#include "status.h"
#include "sink.h"
#include "state.h"
#include "util.h"

/* Seconds a clean stop waits for every LOGOUT and hook; then what runs is
 * killed. Below the units' TimeoutStopSec (10), after which systemd would
 * kill everything before the state is written. */
#define STOP_TIMEOUT 8
/* Seconds between tries of the lock of an account another mailwatch
 * watches. */
#define LOCK_RETRY 3
/* Seconds before password_command is run again after it failed: doubling
 * from the first to the last. */
#define PASSWORD_RETRY_MIN 10
#define PASSWORD_RETRY_MAX 1800

struct daemon;

/* An account of the configuration: waiting for another mailwatch to let
 * go of it, for its password, watching (account.c), or without a password
 * until a reload. An account with oauth2_token_command starts watching at
 * once: its connections ask the provider for a token before each
 * login. */
struct running {
	struct daemon *d;
	const struct account *a;  /* in d->cfg */
	int lock;		  /* the account's lock (state.c), or -1 */
	/* While another process holds the lock: what the status line says
	 * ("" otherwise), and the timer that tries it again every LOCK_RETRY
	 * seconds. */
	char waiting[96];
	sd_event_source *lock_retry;
	struct password_job *job; /* while waiting for the password */
	struct cred *cred;	  /* once the password came, or a token
				     account's */
	struct account_run *acct; /* with cred */
	/* The job failed: run again by password_retry, or at a reload, as
	 * password_text says; failed password_fails times in a row. */
	bool no_password;
	sd_event_source *password_retry;
	char password_text[160];
	char password_why[48]; /* password_job_why() of the last failure */
	unsigned password_fails;
};

struct daemon {
	sd_event *event;
	struct config *cfg;
	const char *config_path;
	char *config_real; /* its absolute path (the state's); NULL */
	bool verbose;
	struct running **run; /* one per account, owned */
	size_t n_run;
	struct sink *sinks[3];
	struct service *service; /* owned by its sink in sinks[] */
	struct resume *resume;
	size_t n_sinks;
	/* Reading from the servers is paused: SINK_HOOK_HIGH hooks waited,
	 * and not yet down to SINK_HOOK_LOW. */
	bool reading_paused;
	bool stopping;
	uint64_t stop_deadline; /* usec, monotonic */
	char status[512];
	char status_sent[512]; /* the last STATUS= sent */
	sd_event_source *status_due; /* update_status() once the loop is
					idle: a burst is one update */
};

static void
usage(FILE *f)
{
	fputs("usage: mailwatch [-c FILE] [-v] [--check-config]\n"
	      "       mailwatch status [--json] [--follow] "
	      "[--format TEMPLATE] [--pango]\n"
	      "Tells you the moment new mail arrives in IMAP mailboxes.\n\n"
	      "  -c, --config FILE   configuration (default "
	      "$XDG_CONFIG_HOME/mailwatch/mailwatch.ini)\n"
	      "  -v, --verbose       debug logging with a protocol trace\n"
	      "                      (credentials redacted)\n"
	      "      --check-config  validate the configuration and exit\n"
	      "  -h, --help          this help\n"
	      "  -V, --version       print the version\n\n"
	      "See mailwatch(1) and mailwatch.ini(5).\n",
	      f);
}

/* Why r is not watching, for the status line. */
static const char *
running_describe(const struct running *r)
{
	if (*r->waiting)
		return r->waiting;
	if (r->no_password)
		return r->password_text;
	return r->a->password_command ? "waiting for password_command"
				      : "starting";
}

/* Keeps systemd's STATUS= current: "3/4 mailboxes watched; work/INBOX:
 * reconnecting in 30 s", and for an account of several mailboxes how they
 * are watched ("lists: 20 mailboxes over 2 connections (NOTIFY)"). The
 * mailboxes of an account not watching count as not watched. Sent only
 * when it changed (an unseen count moving comes here too, for the D-Bus
 * service). */
static void
update_status(void *ud)
{
	struct daemon *d = ud;
	size_t watched = 0, total = 0, off;
	char *s = d->status;

	if (d->stopping)
		return;
	for (size_t i = 0; i < d->n_run; i++) {
		/* With patterns, what the server's LIST selected. */
		total += d->run[i]->acct
				 ? account_run_mailboxes(d->run[i]->acct)
				 : d->run[i]->a->n_mailboxes;
		if (d->run[i]->acct)
			watched += account_run_watched(d->run[i]->acct);
	}
	off = snprintf(s, sizeof(d->status),
		       "STATUS=%zu/%zu mailboxes watched", watched, total);
	for (size_t i = 0; i < d->n_run && off < sizeof(d->status); i++) {
		struct running *r = d->run[i];

		const char *how =
			r->acct ? account_run_describe(r->acct, true) : "";

		if (!r->acct)
			off += snprintf(s + off, sizeof(d->status) - off,
					"; %s: %s", r->a->name,
					running_describe(r));
		else if (*how)
			off += snprintf(s + off, sizeof(d->status) - off,
					"; %s", how);
	}
	if (strcmp(s, d->status_sent)) {
		sd_notify(0, s);
		memcpy(d->status_sent, s, sizeof(d->status_sent));
	}
	if (d->service)
		service_changed(d->service);
}

static int
on_status_due(sd_event_source *src, void *ud)
{
	(void)src;
	update_status(ud);
	return 0;
}

/* Something the status line or the D-Bus service shows may have
 * changed: update_status() when the loop has nothing else to do, once
 * however many changes came (a burst of mail moves the counts at every
 * message). */
static void
status_changed(void *ud)
{
	struct daemon *d = ud;

	sd_event_source_set_enabled(d->status_due, SD_EVENT_ONESHOT);
}

/* Stops and frees r: its password job or its watching. */
static void
stop_running(struct running **rp)
{
	struct running *r = *rp;

	if (!r)
		return;
	password_job_free(&r->job);
	/* Writes the last state: only then may another process take over. */
	account_run_free(&r->acct);
	cred_free(&r->cred);
	sd_event_source_disable_unref(r->lock_retry);
	sd_event_source_disable_unref(r->password_retry);
	if (r->lock >= 0)
		close(r->lock);
	freep(rp);
}

static void start_password(struct running *r);

/* struct account_env's: whether the configuration has an account name. */
static bool
configured(void *ud, const char *name)
{
	struct daemon *d = ud;

	for (size_t i = 0; i < d->cfg->n_accounts; i++)
		if (!strcmp(d->cfg->accounts[i].name, name))
			return true;
	return false;
}

/* struct account_env's: a's login met a limit on connections; the other
 * accounts of its user and server give way. */
static void
limited(void *ud, const struct account *a)
{
	struct daemon *d = ud;

	for (size_t i = 0; i < d->n_run; i++)
		if (d->run[i]->acct && d->run[i]->a != a &&
		    config_same_login(d->run[i]->a, a))
			account_run_give_way(d->run[i]->acct);
}

static int
on_password_retry(sd_event_source *s, uint64_t usec, void *ud)
{
	struct running *r = ud;

	(void)usec;
	r->password_retry = sd_event_source_disable_unref(s);
	r->no_password = false;
	start_password(r);
	update_status(r->d);
	return 0;
}

/* password_command failed (logged): it runs again later, each time after
 * twice the wait before. Not for good: a pinentry nobody answered in
 * time, or one that could not show before the desktop session was up,
 * may well work later (a trial lost an account until a reload). */
static void
retry_password(struct running *r)
{
	unsigned delay = PASSWORD_RETRY_MIN;
	time_t at;
	struct tm tm;
	char hms[16] = "?";
	int e;

	for (unsigned i = 0; i < r->password_fails && delay < PASSWORD_RETRY_MAX;
	     i++)
		delay *= 2;
	if (delay > PASSWORD_RETRY_MAX)
		delay = PASSWORD_RETRY_MAX;
	r->password_fails++;
	r->no_password = true;
	at = time(NULL) + delay;
	if (localtime_r(&at, &tm))
		strftime(hms, sizeof(hms), "%H:%M:%S", &tm);
	snprintf(r->password_text, sizeof(r->password_text),
		 "no password%s%s%s; asking password_command again at %s",
		 *r->password_why ? " (" : "", r->password_why,
		 *r->password_why ? ")" : "", hms);
	e = sd_event_add_time_relative(r->d->event, &r->password_retry,
				       CLOCK_BOOTTIME, delay * 1000000ULL,
				       1000000, on_password_retry, r);
	if (e < 0) {
		log_err(&(struct log_ctx){r->a->name, NULL},
			"no password, and cannot wait to ask again (%s): not "
			"watching this account until a reload",
			strerror(-e));
		snprintf(r->password_text, sizeof(r->password_text),
			 "no password (reload to retry)");
		return;
	}
	log_err(&(struct log_ctx){r->a->name, NULL},
		"no password, not watching this account; asking "
		"password_command again in %u s (a reload asks at once)",
		delay);
}

/* Watches every mailbox of r with password (taken over; NULL for a token
 * account), or, when the password could not be got, asks again later
 * (retry_password()). */
static void
start_watching(struct running *r, char *password)
{
	struct daemon *d = r->d;
	struct account_env env = {
		.event = d->event,
		.sinks = d->sinks,
		.n_sinks = d->n_sinks,
		.changed = status_changed,
		.configured = configured,
		.config_path = d->config_real,
		.limited = limited,
		.ud = d,
	};

	if (!password && !r->a->oauth2_token_command) {
		retry_password(r);
	} else {
		r->password_fails = 0;
		r->cred = cred_new(d->event, r->a, password);
		r->acct = account_run_new(&env, r->a, r->cred);
		if (d->reading_paused)
			account_run_pause(r->acct, true);
	}
}

/* The password job of r (a struct running) is done. */
static void
on_password(void *ud, char *password)
{
	struct running *r = ud;

	snprintf(r->password_why, sizeof(r->password_why), "%s",
		 password_job_why(r->job));
	password_job_free(&r->job);
	start_watching(r, password);
	update_status(r->d);
}

/* Starts r's password job: watching starts when the password comes
 * (on_password); a token account's at once. */
static void
start_password(struct running *r)
{
	r->password_why[0] = '\0';
	if (r->a->oauth2_token_command ||
	    password_job_new(r->d->event, r->a, on_password, r, &r->job) < 0)
		start_watching(r, NULL);
}

/* Tries r's lock. Returns true when r may go on: the lock is taken, or
 * cannot be had at all (logged by state.c; watching anyway, as without
 * a lock). False when another process holds it: logged when that is a
 * holder not logged before. */
static bool
take_lock(struct running *r)
{
	pid_t holder;
	int fd = state_lock_account(r->a->name, &holder);
	char pid[32] = "";

	if (fd != -EWOULDBLOCK) {
		r->lock = fd >= 0 ? fd : -1;
		return true;
	}
	if (holder)
		snprintf(pid, sizeof(pid), " (pid %ld)", (long)holder);
	if (!*r->waiting || (holder && !strstr(r->waiting, pid)))
		log_warn(&(struct log_ctx){r->a->name, NULL},
			 "account is watched by another mailwatch%s; waiting "
			 "for it to stop",
			 pid);
	/* An unknown holder (it has not written its pid yet) does not
	 * replace a known one. */
	if (holder || !*r->waiting)
		snprintf(r->waiting, sizeof(r->waiting),
			 "watched by another mailwatch%s, waiting", pid);
	return false;
}

static int
on_lock_retry(sd_event_source *s, uint64_t usec, void *ud)
{
	struct running *r = ud;

	(void)usec;
	if (!take_lock(r)) {
		sd_event_source_set_time_relative(s, LOCK_RETRY * 1000000ULL);
		sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
		return 0;
	}
	r->lock_retry = sd_event_source_disable_unref(r->lock_retry);
	*r->waiting = 0;
	log_info(&(struct log_ctx){r->a->name, NULL},
		 "the other mailwatch let go of this account: starting");
	start_password(r);
	update_status(r->d);
	return 0;
}

/* A new running account a: once it holds a's lock, waiting for its
 * password (start_password()); until then trying the lock again every
 * LOCK_RETRY seconds. Does not block. */
static struct running *
start_running(struct daemon *d, const struct account *a)
{
	struct running *r = xcalloc(1, sizeof(*r));
	int e;

	r->d = d;
	r->a = a;
	r->lock = -1;
	if (take_lock(r)) {
		start_password(r);
		return r;
	}
	/* 1 s of slack: the tries coalesce with other wake-ups. */
	e = sd_event_add_time_relative(d->event, &r->lock_retry, CLOCK_BOOTTIME,
				       LOCK_RETRY * 1000000ULL, 1000000,
				       on_lock_retry, r);
	if (e < 0)
		log_err(&(struct log_ctx){a->name, NULL},
			"cannot wait for the other mailwatch (%s): not "
			"watching this account",
			strerror(-e));
	return r;
}

static void
start_all(struct daemon *d)
{
	d->run = xcalloc(d->cfg->n_accounts, sizeof(*d->run));
	d->n_run = d->cfg->n_accounts;
	for (size_t i = 0; i < d->n_run; i++)
		d->run[i] = start_running(d, &d->cfg->accounts[i]);
}

static void
stop_all(struct daemon *d)
{
	for (size_t i = 0; i < d->n_run; i++)
		stop_running(&d->run[i]);
	freep(&d->run);
	d->n_run = 0;
}

static void
apply_log_level(struct daemon *d)
{
	log_max_level = d->verbose ? LOG_DEBUG : d->cfg->log_level;
}

/* True when r got no password, or a watcher of r stopped for good (say,
 * a rejected password): a reload retries it even when its settings did not
 * change, since the password may come from a command. */
static bool
running_gave_up(const struct running *r)
{
	return r->no_password || (r->acct && account_run_gave_up(r->acct));
}

/* Takes the running account of the old configuration named like a out of
 * d->run; NULL if there is none. */
static struct running *
take_running(struct daemon *d, const struct account *a)
{
	struct running *r;

	for (size_t i = 0; i < d->n_run; i++) {
		r = d->run[i];
		if (r && !strcmp(r->a->name, a->name)) {
			d->run[i] = NULL;
			return r;
		}
	}
	return NULL;
}

/* SIGHUP: load the configuration again. An invalid one is reported and
 * the running one kept. Accounts whose settings did not change keep their
 * connections (or their password_command still running); changed ones
 * start over with a new password job; removed ones stop. */
static int
on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	struct daemon *d = ud;
	struct running **run;
	struct config *cfg;

	(void)s;
	(void)si;
	log_info(NULL, "reloading %s", d->config_path);
	sd_notify(0, "RELOADING=1");
	if (config_load(d->config_path, &cfg) < 0) {
		log_err(NULL, "new configuration is invalid; keeping the "
			      "running one");
		sd_notify(0, "READY=1");
		return 0;
	}
	run = xcalloc(cfg->n_accounts, sizeof(*run));
	for (size_t i = 0; i < cfg->n_accounts; i++) {
		const struct account *a = &cfg->accounts[i];
		struct running *old = take_running(d, a);

		if (old && config_account_same_watch(old->a, a) &&
		    !running_gave_up(old)) {
			if (!config_account_equal(old->a, a))
				log_info(&(struct log_ctx){a->name, NULL},
					 "settings of hooks, notifications or "
					 "catch-up changed: taken without "
					 "reconnecting");
			old->a = a;
			if (old->acct) {
				account_run_rebind(old->acct, a);
				account_run_reloaded(old->acct);
			}
			run[i] = old;
			continue;
		}
		if (old) {
			log_info(&(struct log_ctx){a->name, NULL}, "%s",
				 config_account_equal(old->a, a)
					 ? "trying again at once"
					 : "settings changed: reconnecting");
			stop_running(&old);
		}
		run[i] = start_running(d, a);
	}
	/* What is left of the old ones was removed from the file. */
	for (size_t i = 0; i < d->n_run; i++)
		if (d->run[i])
			log_info(&(struct log_ctx){d->run[i]->a->name, NULL},
				 "no longer in the configuration: not "
				 "watched");
	stop_all(d);
	config_free(&d->cfg);
	d->cfg = cfg;
	d->run = run;
	d->n_run = cfg->n_accounts;
	apply_log_level(d);
	sd_notify(0, "READY=1");
	update_status(d);
	return 0;
}

/* ---- the D-Bus interface (service.c) ---- */

/* service_ops.each's walk over one account's mailboxes. */
struct each_box {
	const char *account;
	void *fud;
	void (*box)(void *fud, const struct service_box *b);
	uint64_t unseen; /* the sum of the known counts */
};

static void
each_box(void *ud, const char *mailbox, bool watched, int64_t unseen)
{
	struct each_box *e = ud;
	struct service_box b = {e->account, mailbox, watched, unseen};

	if (unseen > 0)
		e->unseen += (uint64_t)unseen;
	e->box(e->fud, &b);
}

static void
service_each(void *ud, void *fud,
	     void (*box)(void *fud, const struct service_box *b),
	     void (*account)(void *fud, const char *name, bool ok,
			     const char *state, uint64_t unseen))
{
	struct daemon *d = ud;

	for (size_t i = 0; i < d->n_run; i++) {
		struct running *r = d->run[i];
		struct each_box e = {r->a->name, fud, box, 0};
		bool ok = r->acct && account_run_watched(r->acct) ==
					       account_run_mailboxes(r->acct);
		/* The name is a field of its own here. */
		const char *how = r->acct ? account_run_describe(r->acct, false)
					  : running_describe(r);

		if (r->acct)
			account_run_each(r->acct, each_box, &e);
		else
			for (size_t j = 0; j < r->a->n_mailboxes; j++)
				each_box(&e, r->a->mailboxes[j], false, -1);
		/* The status line says nothing of an account that is well. */
		account(fud, r->a->name, ok,
			*how ? how : ok ? "watching" : "connecting", e.unseen);
	}
}

static void on_check_now(void *ud);

static void
service_reload(void *ud)
{
	(void)ud;
	raise(SIGHUP); /* blocked: the loop's signal source takes it */
}

static const struct service_ops service_ops = {
    .each = service_each,
    .check_now = on_check_now,
    .reload = service_reload,
};

/* Waiting hooks started, or (stopping) one ended: the state may move.
 * Or SINK_HOOK_HIGH hooks wait: new mail would only make the queue
 * longer, so nothing more is read from the servers (their bytes wait in
 * the sockets, then at the servers) until it is down to SINK_HOOK_LOW. */
static void
on_hooks_changed(void *ud)
{
	struct daemon *d = ud;
	unsigned waiting = sink_hook_waiting(d->sinks[1]);
	bool pause = d->reading_paused ? waiting > SINK_HOOK_LOW
				       : waiting >= SINK_HOOK_HIGH;

	for (size_t i = 0; i < d->n_run; i++)
		if (d->run[i] && d->run[i]->acct)
			account_run_save(d->run[i]->acct);
	if (pause == d->reading_paused)
		return;
	d->reading_paused = pause;
	log_info(NULL, "%u hooks waiting: reading from the servers %s",
		 waiting, pause ? "paused" : "resumed");
	for (size_t i = 0; i < d->n_run; i++)
		if (d->run[i] && d->run[i]->acct)
			account_run_pause(d->run[i]->acct, pause);
}

/* Probes every connection, reconnecting the dead ones now. */
static void
probe_all(struct daemon *d, bool slept)
{
	for (size_t i = 0; i < d->n_run; i++)
		if (d->run[i]->acct)
			account_run_probe(d->run[i]->acct, slept);
}

/* After suspend: what the connections report next arrived while
 * asleep. */
static void
on_resume(void *ud)
{
	probe_all(ud, true);
}

/* CheckNow over D-Bus: a probe, as after a resume, but nothing is taken
 * as having arrived while asleep. */
static void
on_check_now(void *ud)
{
	probe_all(ud, false);
}

/* True once every watcher has logged out and no sink is busy. */
static bool
all_stopped(const struct daemon *d)
{
	for (size_t i = 0; i < d->n_run; i++)
		if (d->run[i]->acct && !account_run_stopped(d->run[i]->acct))
			return false;
	for (size_t i = 0; i < d->n_sinks; i++)
		if (d->sinks[i]->ops->busy &&
		    d->sinks[i]->ops->busy(d->sinks[i]))
			return false;
	return true;
}

/* While stopping, every 50 ms: exit once every watcher has logged out and
 * every hook ended, or the deadline passed. Only armed at SIGTERM, never
 * while idle. */
static int
on_stop_check(sd_event_source *s, uint64_t now, void *ud)
{
	struct daemon *d = ud;

	if (all_stopped(d) || now >= d->stop_deadline) {
		sd_event_exit(d->event, 0);
		return 0;
	}
	sd_event_source_set_time(s, now + 50000);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* SIGTERM / SIGINT: LOGOUT everywhere, start the waiting hooks and let
 * every hook end, with a deadline, then exit. */
static int
on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	struct daemon *d = ud;
	uint64_t now;

	(void)s;
	if (d->stopping)
		return 0;
	log_info(NULL, "stopping (signal %u)", si->ssi_signo);
	sd_notify(0, "STOPPING=1");
	d->stopping = true;
	for (size_t i = 0; i < d->n_run; i++) {
		/* An account still waiting for its lock or its password
		 * stops now. */
		d->run[i]->lock_retry =
		    sd_event_source_disable_unref(d->run[i]->lock_retry);
		d->run[i]->password_retry =
		    sd_event_source_disable_unref(d->run[i]->password_retry);
		password_job_free(&d->run[i]->job);
		if (d->run[i]->acct)
			account_run_stop(d->run[i]->acct);
	}
	for (size_t i = 0; i < d->n_sinks; i++)
		if (d->sinks[i]->ops->stop)
			d->sinks[i]->ops->stop(d->sinks[i]);
	sd_event_now(d->event, CLOCK_MONOTONIC, &now);
	d->stop_deadline = now + STOP_TIMEOUT * 1000000ULL;
	sd_event_add_time(d->event, NULL, CLOCK_MONOTONIC, now, 1000,
			  on_stop_check, d);
	return 0;
}

/* Handles sig with on_sigterm ahead of everything else pending, so that a
 * hook that dies of the same stop (systemd signals the whole unit) is seen
 * after it. Returns 0 or a negative errno. */
static int
add_stop_signal(struct daemon *d, int sig)
{
	sd_event_source *s;
	int r = sd_event_add_signal(d->event, &s, sig, on_sigterm, d);

	if (r < 0)
		return r;
	r = sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IMPORTANT);
	/* The loop keeps it (floating). */
	sd_event_source_set_floating(s, true);
	sd_event_source_unref(s);
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"verbose", no_argument, NULL, 'v'},
		{"check-config", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct daemon d = {0};
	char *default_path = NULL;
	bool check_only = false;
	sigset_t mask;
	int c, r, status = EXIT_FAILURE;

	if (argc > 1 && !strcmp(argv[1], "status"))
		return status_main(argc - 1, argv + 1);
	/* getopt's messages name it as the others do, not "./mailwatch". */
	argv[0] = (char *)"mailwatch";
	while ((c = getopt_long(argc, argv, "c:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'v':
			d.verbose = true;
			break;
		case 'C':
			check_only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mailwatch %s\n", MAILWATCH_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mailwatch: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	log_init();
	if (d.verbose)
		log_max_level = LOG_DEBUG;
	if (!d.config_path)
		d.config_path = default_path = config_default_path();
	if (config_load(d.config_path, &d.cfg) < 0) {
		free(default_path);
		return CONFIG_EXIT;
	}
	apply_log_level(&d);
	if (check_only) {
		size_t n = 0, patterns = 0;

		for (size_t i = 0; i < d.cfg->n_accounts; i++) {
			const struct account *a = &d.cfg->accounts[i];

			for (size_t j = 0; j < a->n_mailboxes; j++)
				patterns += mboxlist_is_pattern(a->mailboxes[j]);
			n += a->n_mailboxes;
		}
		n -= patterns;
		printf("%s: OK, %zu account%s, ", d.config_path,
		       d.cfg->n_accounts, d.cfg->n_accounts == 1 ? "" : "s");
		if (n || !patterns)
			printf("%zu mailbox%s%s", n, n == 1 ? "" : "es",
			       patterns ? " and " : "");
		if (patterns)
			printf("%zu pattern%s (which mailboxes %s, the "
			       "server's list tells)",
			       patterns, patterns == 1 ? "" : "s",
			       patterns == 1 ? "it takes" : "they take");
		if (log_warnings)
			printf("; but see the warning%s above",
			       log_warnings == 1 ? "" : "s");
		putchar('\n');
		config_free(&d.cfg);
		free(default_path);
		return 0;
	}
	d.config_real = realpath(d.config_path, NULL);

	/* Signals arrive through the loop (child.c watches hooks through
	 * their pidfds, not SIGCHLD). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	signals_reset();
	sigprocmask(SIG_BLOCK, &mask, NULL);
	srandom(time(NULL) ^ getpid());

	/* Not sd_event_default(): its every turn asks the kernel for the
	 * thread id, to check it runs on the thread that made it. */
	r = sd_event_new(&d.event);
	if (r >= 0)
		r = add_stop_signal(&d, SIGTERM);
	if (r >= 0)
		r = add_stop_signal(&d, SIGINT);
	if (r >= 0)
		r = sd_event_add_signal(d.event, NULL, SIGHUP, on_sighup, &d);
	if (r >= 0)
		r = sd_event_add_defer(d.event, &d.status_due, on_status_due,
				       &d);
	if (r >= 0)
		r = sd_event_source_set_priority(d.status_due,
						 SD_EVENT_PRIORITY_IDLE);
	if (r >= 0)
		r = sd_event_source_set_enabled(d.status_due, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_set_watchdog(d.event, true);
	if (r < 0) {
		log_err(NULL, "event loop: %s", strerror(-r));
		goto out;
	}
	d.resume = resume_new(d.event, on_resume, &d);
	/* Hooks first: a click on a notification runs on_click through
	 * them. Announcing goes through the sinks in this order. */
	d.sinks[1] = sink_hook_new(d.event, on_hooks_changed, &d);
	d.sinks[0] = sink_notify_new(d.event, d.sinks[1]);
	d.service = service_new(d.event, &service_ops, &d);
	d.sinks[2] = service_sink(d.service);
	d.n_sinks = 3;

	/* The passwords come later, through the loop: ready now. */
	start_all(&d);
	sd_notify(0, "READY=1");
	update_status(&d);
	r = sd_event_loop(d.event);
	status = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
out:
	/* The accounts write their last state while the sinks still say what
	 * they did not finish (hooks past the deadline); freeing the hook
	 * sink then kills those hooks, so the next start runs them once. */
	stop_all(&d);
	d.service = NULL; /* freed with its sink */
	/* The notification sink borrows the hook sink: free it first. */
	for (size_t i = 0; i < d.n_sinks; i++)
		sink_free(&d.sinks[i]);
	resume_free(&d.resume);
	sd_event_source_disable_unref(d.status_due);
	sd_event_unref(d.event);
	config_free(&d.cfg);
	free(d.config_real);
	free(default_path);
	return status;
}
