/* sink_hook: runs the account's on_new_mail command once per message and
 * on_new_mail_post once per batch.
 *
 * A hook is started with posix_spawn (posix_spawnp when argv[0] has no '/')
 * from the fixed argv of the configuration: there is no shell, and message
 * data reaches the hook only through MAILWATCH_* environment variables. Its
 * stdin is /dev/null; stdout and stderr share one pipe that is read on the
 * loop and logged line by line, capped per run. The hook gets its own
 * process group so that a timeout kills whatever it started too.
 *
 * The exit is seen through sd_event_add_child, which needs SIGCHLD blocked
 * in every thread before the loop is created (main does that). Up to
 * HOOK_MAX_RUNNING hooks run at once; the rest wait in a FIFO, so hooks
 * start in the order they were sent (UID order within a mailbox). Nothing
 * here blocks, except free(), which kills and reaps the hooks still
 * running. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "event.h"
#include "mime.h"
#include "sink.h"
#include "util.h"

extern char **environ;

/* Hooks running at once; more wait in the queue. */
#define HOOK_MAX_RUNNING 16
/* Hooks waiting to start; beyond that new ones are dropped (and logged). */
#define HOOK_MAX_QUEUED 1024
/* Output bytes logged per run; the rest is read and dropped. */
#define HOOK_OUTPUT_CAP 4096
/* Reads of 4 KiB that take what is left in the pipe when a hook exits. */
#define HOOK_DRAIN_READS 16
/* A longer output line is logged in pieces of this size. */
#define HOOK_LINE_MAX 1024
/* Time between SIGTERM and SIGKILL for a hook that timed out. */
#define HOOK_KILL_DELAY_USEC (2 * UINT64_C(1000000))

/* Every variable the sink sets: inherited ones of these names are dropped
 * so that a hook never sees a stale value. */
static const char *const hook_env_names[] = {
    "MAILWATCH_ACCOUNT",      "MAILWATCH_MAILBOX", "MAILWATCH_UID",
    "MAILWATCH_UIDVALIDITY",  "MAILWATCH_FROM",	   "MAILWATCH_FROM_NAME",
    "MAILWATCH_FROM_ADDRESS", "MAILWATCH_SUBJECT", "MAILWATCH_DATE",
    "MAILWATCH_MESSAGE_ID",   "MAILWATCH_COUNT",
};

struct hook_sink;

/* One hook command, waiting or running. */
struct hook_run {
	struct hook_sink *hs;
	struct hook_run *prev, *next; /* in hs->running or hs->queued */
	char *account, *mailbox;      /* owned copies, for log lines */
	char **argv;		      /* owned */
	char **envp;		      /* owned; NULL once started */
	unsigned timeout;	      /* seconds; 0: none */
	pid_t pid;		      /* 0 until started */
	sd_event_source *child, *out, *timer;
	int out_fd;	/* read end of the stdout/stderr pipe, or -1 */
	bool timed_out; /* SIGTERM sent after the timeout */
	bool detached;  /* on_click: own session, never killed by us */
	uint32_t uid;   /* the message of an on_new_mail run, else 0 */
	bool truncated; /* output was dropped after HOOK_OUTPUT_CAP */
	size_t logged;	/* output bytes logged so far */
	size_t line_len;
	char line[HOOK_LINE_MAX]; /* the output line being read */
};

struct run_list {
	struct hook_run *head, *tail;
	unsigned n;
};

struct hook_sink {
	struct sink sink;
	sd_event *event;
	struct run_list running, queued;
	void (*started)(void *ud); /* queued hooks started; may be NULL */
	void *ud;
};

static void
list_append(struct run_list *l, struct hook_run *r)
{
	r->prev = l->tail;
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void
list_remove(struct run_list *l, struct hook_run *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

static bool
env_is_ours(const char *entry)
{
	for (size_t i = 0; i < sizeof(hook_env_names) / sizeof(*hook_env_names);
	     i++) {
		size_t n = strlen(hook_env_names[i]);

		if (!strncmp(entry, hook_env_names[i], n) && entry[n] == '=')
			return true;
	}
	return false;
}

/* Returns a new environment (free with config_argv_free): the daemon's
 * own without the MAILWATCH_* names above, then the n "NAME=value" strings
 * of vars, which it takes over. */
static char **
env_build(char **vars, size_t n)
{
	size_t n_env = 0, k = 0;
	char **envp;

	while (environ && environ[n_env])
		n_env++;
	envp = xcalloc(n_env + n + 1, sizeof(*envp));
	for (size_t i = 0; i < n_env; i++)
		if (!env_is_ours(environ[i]))
			envp[k++] = xstrdup(environ[i]);
	for (size_t i = 0; i < n; i++)
		envp[k++] = vars[i];
	envp[k] = NULL;
	return envp;
}

/* The last path component of a hook's argv[0], for output lines. */
static const char *
run_name(const struct hook_run *r)
{
	const char *s = strrchr(r->argv[0], '/');

	return s && s[1] ? s + 1 : r->argv[0];
}

static struct log_ctx
run_ctx(const struct hook_run *r)
{
	return (struct log_ctx){.account = r->account, .mailbox = r->mailbox};
}

/* Stops the timer and the output pipe and, if the hook still runs, kills
 * its process group. The child source (owning the process) reaps it when
 * unreferenced. Frees r. */
static void
run_free(struct hook_run *r)
{
	if (r->pid > 0 && r->child && !r->detached) {
		/* Not reaped yet, so the group id is still ours. */
		(void)kill(-r->pid, SIGKILL);
	}
	sd_event_source_disable_unref(r->child);
	sd_event_source_disable_unref(r->out);
	sd_event_source_disable_unref(r->timer);
	if (r->out_fd >= 0)
		close(r->out_fd);
	config_argv_free(&r->argv);
	config_argv_free(&r->envp);
	free(r->account);
	free(r->mailbox);
	free(r);
}

/* Logs the output line collected in r->line, within the run's cap. */
static void
run_log_line(struct hook_run *r)
{
	struct log_ctx ctx = run_ctx(r);
	size_t len = r->line_len;
	char *s;

	r->line_len = 0;
	if (r->truncated)
		return;
	if (r->logged + len > HOOK_OUTPUT_CAP) {
		len = HOOK_OUTPUT_CAP - r->logged;
		r->truncated = true;
	}
	r->logged += len;
	s = mime_sanitize(r->line, len, 3 * HOOK_LINE_MAX);
	if (*s)
		log_info(&ctx, "%s: %s", run_name(r), s);
	free(s);
	if (r->truncated)
		log_info(&ctx, "%s: (output truncated)", run_name(r));
}

static void
run_take_output(struct hook_run *r, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			run_log_line(r);
			continue;
		}
		r->line[r->line_len++] = buf[i];
		if (r->line_len == sizeof(r->line))
			run_log_line(r);
	}
}

static void
run_close_output(struct hook_run *r)
{
	if (r->line_len)
		run_log_line(r);
	r->out = sd_event_source_disable_unref(r->out);
	if (r->out_fd >= 0)
		close(r->out_fd);
	r->out_fd = -1;
}

/* Reads at most max_reads chunks from the pipe, so that a hook (or what it
 * left behind) writing without end cannot hold the loop. Returns true at
 * end of file or on an error, after which the pipe should be closed. */
static bool
run_read_output(struct hook_run *r, unsigned max_reads)
{
	char buf[4096];

	while (max_reads > 0) {
		ssize_t n = read(r->out_fd, buf, sizeof(buf));

		if (n > 0) {
			run_take_output(r, buf, (size_t)n);
			max_reads--;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return !(n < 0 && errno == EAGAIN);
	}
	return false;
}

static int
on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct hook_run *r = userdata;

	(void)s;
	(void)fd;
	(void)revents;
	/* One chunk per wake-up: the source stays ready for the rest. */
	if (run_read_output(r, 1))
		run_close_output(r);
	return 0;
}

static void start_queued(struct hook_sink *hs);

static int
on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct hook_run *r = userdata;
	struct hook_sink *hs = r->hs;
	struct log_ctx ctx = run_ctx(r);

	(void)s;
	/* Whatever the hook wrote is in the pipe by now (a pipe holds 64 KiB
	 * unless resized); children it left behind may write more, which is
	 * not waited for. */
	if (r->out_fd >= 0) {
		run_read_output(r, HOOK_DRAIN_READS);
		run_close_output(r);
	}
	if (r->timed_out)
		log_debug(&ctx, "hook %s ended after the timeout", r->argv[0]);
	else if (si->si_code == CLD_EXITED && si->si_status != 0)
		log_warn(&ctx, "hook %s exited with status %d", r->argv[0],
			 si->si_status);
	else if (si->si_code != CLD_EXITED)
		log_warn(&ctx, "hook %s killed by signal %d (%s)", r->argv[0],
			 si->si_status, strsignal(si->si_status));
	else
		log_debug(&ctx, "hook %s (pid %d) done", r->argv[0],
			  (int)r->pid);

	/* Reaped once this callback returns: the process is not ours to
	 * kill any more. */
	r->pid = 0;
	list_remove(&hs->running, r);
	run_free(r);
	start_queued(hs);
	return 0;
}

static int
on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct hook_run *r = userdata;
	struct log_ctx ctx = run_ctx(r);

	(void)usec;
	if (!r->timed_out) {
		log_warn(&ctx,
			 "hook %s still running after %u s: terminating it",
			 r->argv[0], r->timeout);
		r->timed_out = true;
		(void)kill(-r->pid, SIGTERM);
		(void)sd_event_source_set_time_relative(s,
							HOOK_KILL_DELAY_USEC);
		(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
		return 0;
	}
	log_warn(&ctx, "hook %s ignored SIGTERM: killing it", r->argv[0]);
	(void)kill(-r->pid, SIGKILL);
	return 0;
}

/* Starts r's command with stdin /dev/null and stdout and stderr on a pipe
 * watched by the loop. Returns 0, or a negative errno after logging why. */
static int
run_start(struct hook_run *r)
{
	struct log_ctx ctx = run_ctx(r);
	int err, ret;

	err = -spawn_piped(r->argv, r->envp, true, r->detached, &r->pid,
			   &r->out_fd);
	config_argv_free(&r->envp);
	if (err) {
		r->pid = 0;
		log_warn(&ctx, "hook %s: %s", r->argv[0], strerror(err));
		return -err;
	}

	ret = sd_event_add_child(r->hs->event, &r->child, r->pid, WEXITED,
				 on_child_exit, r);
	if (ret < 0) {
		log_err(&ctx, "hook %s: cannot watch pid %d: %s%s", r->argv[0],
			(int)r->pid, strerror(-ret),
			ret == -EBUSY ? " (SIGCHLD is not blocked)" : "");
		goto fail;
	}
	/* The source owns a hook: freeing it kills and reaps. */
	(void)sd_event_source_set_child_process_own(r->child, !r->detached);
	ret = sd_event_add_io(r->hs->event, &r->out, r->out_fd, EPOLLIN,
			      on_output, r);
	if (ret < 0) {
		log_err(&ctx, "hook %s: cannot watch its output: %s",
			r->argv[0], strerror(-ret));
		goto fail;
	}
	if (r->timeout) {
		ret = sd_event_add_time_relative(
		    r->hs->event, &r->timer, CLOCK_MONOTONIC,
		    r->timeout * UINT64_C(1000000), 0, on_timeout, r);
		if (ret < 0) {
			log_err(&ctx, "hook %s: cannot add its timer: %s",
				r->argv[0], strerror(-ret));
			goto fail;
		}
	}
	log_debug(&ctx, "hook %s started (pid %d)", r->argv[0], (int)r->pid);
	return 0;

fail:
	if (!r->child) {
		/* Nothing will reap it: do it now, it cannot take long. */
		(void)kill(-r->pid, SIGKILL);
		(void)waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
	return ret;
}

/* Starts waiting hooks while there is room (all of them when all is
 * true), and tells the owner so (the messages count as announced now). */
static void
start_some(struct hook_sink *hs, bool all)
{
	bool any = hs->queued.head != NULL;

	while ((all || hs->running.n < HOOK_MAX_RUNNING) && hs->queued.head) {
		struct hook_run *r = hs->queued.head;

		list_remove(&hs->queued, r);
		if (run_start(r) < 0) {
			run_free(r);
			continue;
		}
		list_append(&hs->running, r);
	}
	if (any && hs->started)
		hs->started(hs->ud);
}

static void
start_queued(struct hook_sink *hs)
{
	start_some(hs, false);
}

/* Starts argv now when few enough hooks run, else queues it. Takes over
 * envp. A detached command (on_click) has no timeout and is not killed. */
static void
hook_submit(struct hook_sink *hs, const struct account *a, const char *mailbox,
	    char *const *argv, char **envp, bool detached, uint32_t uid)
{
	struct hook_run *r = xcalloc(1, sizeof(*r));

	r->uid = uid;
	r->hs = hs;
	r->account = xstrdup(a->name);
	r->mailbox = xstrdup(mailbox);
	r->argv = config_argv_dup(argv);
	r->envp = envp;
	r->detached = detached;
	r->timeout = detached ? 0 : a->d.hook_timeout;
	r->out_fd = -1;

	if (hs->running.n < HOOK_MAX_RUNNING && !hs->queued.head) {
		if (run_start(r) < 0) {
			run_free(r);
			return;
		}
		list_append(&hs->running, r);
		return;
	}
	if (hs->queued.n >= HOOK_MAX_QUEUED) {
		struct log_ctx ctx = run_ctx(r);

		log_warn(&ctx, "%u hooks waiting already: not running %s",
			 hs->queued.n, r->argv[0]);
		run_free(r);
		return;
	}
	list_append(&hs->queued, r);
}

/* The environment of a command about message ev (free with
 * config_argv_free). */
static char **
message_env(const struct account *a, const struct mail_event *ev)
{
	char *vars[10];
	size_t n = 0;

	vars[n++] = xasprintf("MAILWATCH_ACCOUNT=%s", a->name);
	vars[n++] = xasprintf("MAILWATCH_MAILBOX=%s", ev->mailbox);
	vars[n++] = xasprintf("MAILWATCH_UID=%" PRIu32, ev->uid);
	vars[n++] =
	    xasprintf("MAILWATCH_UIDVALIDITY=%" PRIu32, ev->uidvalidity);
	vars[n++] = xasprintf("MAILWATCH_FROM=%s", ev->from);
	vars[n++] = xasprintf("MAILWATCH_FROM_NAME=%s", ev->from_name);
	vars[n++] = xasprintf("MAILWATCH_FROM_ADDRESS=%s", ev->from_address);
	vars[n++] = xasprintf("MAILWATCH_SUBJECT=%s", ev->subject);
	vars[n++] = xasprintf("MAILWATCH_DATE=%s", ev->date);
	vars[n++] = xasprintf("MAILWATCH_MESSAGE_ID=%s", ev->message_id);
	return env_build(vars, n);
}

static void
hook_send(struct sink *s, const struct account *a, const struct mail_event *ev)
{
	if (a->d.on_new_mail)
		hook_submit((struct hook_sink *)s, a, ev->mailbox,
			    a->d.on_new_mail, message_env(a, ev), false,
			    ev->uid);
}

void
sink_hook_launch(struct sink *s, const struct account *a, char *const *argv,
		 const struct mail_event *ev)
{
	hook_submit((struct hook_sink *)s, a, ev->mailbox, argv,
		    message_env(a, ev), true, 0);
}

static void
hook_batch_done(struct sink *s, const struct account *a, const char *mailbox,
		unsigned count)
{
	struct hook_sink *hs = (struct hook_sink *)s;
	char *vars[3];

	if (!a->d.on_new_mail_post)
		return;
	vars[0] = xasprintf("MAILWATCH_ACCOUNT=%s", a->name);
	vars[1] = xasprintf("MAILWATCH_MAILBOX=%s", mailbox);
	vars[2] = xasprintf("MAILWATCH_COUNT=%u", count);
	hook_submit(hs, a, mailbox, a->d.on_new_mail_post, env_build(vars, 3),
		    false, 0);
}

static uint32_t
hook_unstarted(struct sink *s, const char *account, const char *mailbox)
{
	struct hook_sink *hs = (struct hook_sink *)s;
	uint32_t low = 0;

	for (struct hook_run *r = hs->queued.head; r; r = r->next)
		if (r->uid && (!low || r->uid < low) &&
		    !strcmp(r->account, account) && !strcmp(r->mailbox, mailbox))
			low = r->uid;
	return low;
}

static void
hook_flush(struct sink *s)
{
	start_some((struct hook_sink *)s, true);
}

static void
hook_free(struct sink *s)
{
	struct hook_sink *hs = (struct hook_sink *)s;
	struct hook_run *r;

	/* A started hook is an announced message, and the state file says
	 * so: at a stop, the waiting hooks start and all of them are left to
	 * finish on their own. */
	hs->started = NULL;
	start_some(hs, true);
	while ((r = hs->running.head)) {
		struct log_ctx ctx = run_ctx(r);

		log_debug(&ctx, "hook %s (pid %d) left running", r->argv[0],
			  (int)r->pid);
		r->detached = true;
		if (r->child)
			(void)sd_event_source_set_child_process_own(r->child,
								    false);
		list_remove(&hs->running, r);
		run_free(r);
	}
	sd_event_unref(hs->event);
	free(hs);
}

static const struct sink_ops hook_ops = {
    .send = hook_send,
    .batch_done = hook_batch_done,
    .unstarted = hook_unstarted,
    .flush = hook_flush,
    .free = hook_free,
};

struct sink *
sink_hook_new(sd_event *e, void (*started)(void *ud), void *ud)
{
	struct hook_sink *hs = xcalloc(1, sizeof(*hs));

	hs->sink.ops = &hook_ops;
	hs->started = started;
	hs->ud = ud;
	hs->event = sd_event_ref(e);
	return &hs->sink;
}
