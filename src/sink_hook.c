/* sink_hook: runs the account's on_new_mail command once per message and
 * on_new_mail_post once per batch.
 *
 * A hook is started as a child (child.h) from the fixed argv of the
 * configuration (looked up in PATH when argv[0] has no '/'): there is no
 * shell, and message data reaches the hook only through MAILWATCH_*
 * environment variables. Its stdin is /dev/null; stdout and stderr share
 * one pipe that is read on the loop and logged line by line, capped per
 * run. The hook's process group is killed at hook_timeout, also what the
 * hook left running after it exited.
 *
 * Up to HOOK_MAX_RUNNING hooks run at once; the rest wait in a FIFO, so
 * hooks start in the order they were sent (UID order within a mailbox).
 * The owner is told when SINK_HOOK_HIGH wait (and whenever waiting ones
 * start): main then stops reading from the servers until SINK_HOOK_LOW
 * are left, so the FIFO stays bounded without dropping hooks. Only beyond
 * HOOK_MAX_QUEUED, which one read cannot reach, is a hook dropped.
 * The watcher records no message as announced beyond one whose hook waits
 * or runs (unfinished()): a kill of mailwatch may take its hooks with it
 * (systemd ends every process of the unit; a hook writing to its stdout
 * pipe gets SIGPIPE), and the next start runs them again. One that
 * survived runs twice then.
 *
 * A clean stop (stop()) starts every waiting hook, and waits for them
 * and the running ones to exit: main runs the loop until none runs
 * or its deadline passes, writes the state, and frees the sink, which
 * kills what still runs. A hook that dies of a signal the sink did not
 * send during the stop (systemd signals every process of the unit) stays
 * unfinished as well. Those messages are announced again at the next
 * start. Nothing here blocks, except free(), which reaps what it kills. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "config.h"
#include "event.h"
#include "mime.h"
#include "sink.h"
#include "util.h"

extern char **environ;

/* Hooks running at once; more wait in the queue. */
#define HOOK_MAX_RUNNING 16
/* Hooks waiting to start; beyond that new ones are dropped (and logged):
 * a safety net far above SINK_HOOK_HIGH, where reading stops. The read
 * that reaches SINK_HOOK_HIGH ends at most one batch (1000 messages). */
#define HOOK_MAX_QUEUED 4096
/* Output bytes logged per run; the rest is read and dropped. */
#define HOOK_OUTPUT_CAP 4096
/* A longer output line is logged in pieces of this size. */
#define HOOK_LINE_MAX 1024

/* Every variable the sink sets: inherited ones of these names are dropped
 * so that a hook never sees a stale value. */
static const char *const hook_env_names[] = {
    "MAILWATCH_ACCOUNT",      "MAILWATCH_MAILBOX", "MAILWATCH_UID",
    "MAILWATCH_UIDVALIDITY",  "MAILWATCH_FROM",	   "MAILWATCH_FROM_NAME",
    "MAILWATCH_FROM_ADDRESS", "MAILWATCH_SUBJECT", "MAILWATCH_DATE",
    "MAILWATCH_MESSAGE_ID",   "MAILWATCH_COUNT",
};

struct hook_sink;

struct run_list {
	struct hook_run *head, *tail;
	unsigned n;
};

/* One hook command: waiting, running, exited with processes of its group
 * left (lingering), or killed at a stop (lost). */
struct hook_run {
	struct hook_sink *hs;
	struct run_list *list;	      /* the one of hs it is in */
	struct hook_run *prev, *next; /* in list */
	char *account, *mailbox;      /* owned copies, for log lines */
	char *name;		      /* "on_new_mail ARGV0 (UID N)": logs */
	char **argv;		      /* owned */
	char **vars;		      /* owned MAILWATCH_*; NULL once started */
	unsigned timeout;	      /* seconds; 0: none */
	struct child *child;	      /* from the start until it is over */
	bool timed_out;		      /* SIGTERM sent after the timeout */
	bool detached; /* on_click: own session, never killed by us */
	uint32_t uid;  /* the message of an on_new_mail run, else 0 */
	size_t line_len;
	char line[HOOK_LINE_MAX]; /* the output line being read */
};

struct hook_sink {
	struct sink sink;
	sd_event *event;
	/* The daemon's environment but the MAILWATCH_* names above
	 * (pointers into environ, which mailwatch never changes), once. */
	char **base_env;
	size_t n_base_env;
	struct run_list queued, running, lingering, lost;
	bool stopping;
	void (*changed)(void *ud); /* unfinished() may have changed; or NULL */
	void *ud;
};

static void
list_append(struct run_list *l, struct hook_run *r)
{
	r->list = l;
	r->prev = l->tail;
	r->next = NULL;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

/* Takes r out of its list. */
static void
list_remove(struct hook_run *r)
{
	struct run_list *l = r->list;

	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	r->list = NULL;
	l->n--;
}

static void
list_move(struct hook_run *r, struct run_list *to)
{
	list_remove(r);
	list_append(to, r);
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

/* The environment of a command (free the array only): hs->base_env,
 * then vars. Built when the command starts, so that a waiting hook holds
 * only its own variables. */
static char **
env_build(const struct hook_sink *hs, char *const *vars)
{
	size_t n_vars = 0;
	char **envp;

	while (vars[n_vars])
		n_vars++;
	envp = xcalloc(hs->n_base_env + n_vars + 1, sizeof(*envp));
	memcpy(envp, hs->base_env, hs->n_base_env * sizeof(*envp));
	memcpy(envp + hs->n_base_env, vars, (n_vars + 1) * sizeof(*envp));
	return envp;
}

static struct log_ctx
run_ctx(const struct hook_run *r)
{
	return (struct log_ctx){.account = r->account, .mailbox = r->mailbox};
}

/* Frees r (out of any list), killing what is left of its process group
 * unless it is detached. */
static void
run_free(struct hook_run *r)
{
	if (r->list)
		list_remove(r);
	child_free(&r->child);
	config_argv_free(&r->argv);
	config_argv_free(&r->vars);
	free(r->account);
	free(r->mailbox);
	free(r->name);
	free(r);
}

/* Logs the output line collected in r->line. */
static void
run_log_line(struct hook_run *r)
{
	struct log_ctx ctx = run_ctx(r);
	char *s = mime_sanitize(r->line, r->line_len, 3 * HOOK_LINE_MAX);

	r->line_len = 0;
	if (*s)
		log_info(&ctx, "%s: %s", r->name, s);
	free(s);
}

static void
on_output(void *ud, const char *buf, size_t n)
{
	struct hook_run *r = ud;

	if (!buf) {
		struct log_ctx ctx = run_ctx(r);

		if (r->line_len)
			run_log_line(r);
		log_info(&ctx, "%s: (output truncated)", r->name);
		return;
	}
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

static void start_queued(struct hook_sink *hs);

/* r's command ended. Returns true when its message's hook is done: not
 * when it died of a signal the sink did not send while mailwatch is
 * stopping (systemd ending the unit's processes), since it is announced
 * again at the next start then. */
static bool
run_exited(struct hook_run *r, const siginfo_t *si)
{
	struct log_ctx ctx = run_ctx(r);

	if (r->line_len)
		run_log_line(r);
	if (r->timed_out)
		log_debug(&ctx, "%s ended after the timeout", r->name);
	else if (si->si_code == CLD_EXITED && si->si_status != 0)
		log_warn(&ctx, "%s exited with status %d", r->name,
			 si->si_status);
	else if (si->si_code != CLD_EXITED)
		log_warn(&ctx, "%s killed by signal %d (%s)", r->name,
			 si->si_status, strsignal(si->si_status));
	else
		log_debug(&ctx, "%s (pid %d) done", r->name,
			  child_pid(r->child));
	if (r->hs->stopping && r->uid && si->si_code != CLD_EXITED &&
	    !r->timed_out) {
		log_info(&ctx, "%s: announced again at the next start",
			 r->name);
		return false;
	}
	return true;
}

static void
on_child(void *ud, enum child_event ev, const siginfo_t *si)
{
	struct hook_run *r = ud;
	struct hook_sink *hs = r->hs;
	struct log_ctx ctx = run_ctx(r);

	switch (ev) {
	case CHILD_EXITED:
		list_move(r, run_exited(r, si) ? &hs->lingering : &hs->lost);
		/* The running hooks held the mark. */
		if (r->uid && hs->changed)
			hs->changed(hs->ud);
		start_queued(hs);
		break;
	case CHILD_TERM:
		if (r->list == &hs->running) {
			log_warn(&ctx,
				 "%s still running after %u s: "
				 "terminating it",
				 r->name, r->timeout);
			r->timed_out = true;
		} else {
			log_warn(&ctx,
				 "%s left processes running after %u s: "
				 "terminating them",
				 r->name, r->timeout);
		}
		break;
	case CHILD_KILL:
		log_warn(&ctx, "%s ignored SIGTERM: killing it", r->name);
		break;
	case CHILD_OVER:
		child_free(&r->child);
		if (r->list == &hs->lingering)
			run_free(r);
		break;
	}
}

static const struct child_ops hook_child_ops = {
    .output = on_output,
    .event = on_child,
};

/* Starts r's command. Returns 0, or a negative errno after logging why. */
static int
run_start(struct hook_run *r)
{
	char **envp = env_build(r->hs, r->vars);
	struct child_spec spec = {
	    .argv = r->argv,
	    .envp = envp,
	    .with_stderr = true,
	    .detached = r->detached,
	    /* The first hook of new mail is what the user waits for; while
	     * others run (a burst), the yield is a context switch per hook
	     * for nothing. */
	    .yield = !r->hs->running.n,
	    .timeout = r->timeout * UINT64_C(1000000),
	    .cap = HOOK_OUTPUT_CAP,
	    .name = r->name,
	    .ctx = run_ctx(r),
	};
	int ret =
	    child_start(r->hs->event, &spec, &hook_child_ops, r, &r->child);

	free(envp);
	config_argv_free(&r->vars);
	if (ret < 0)
		return ret;
	log_debug(&spec.ctx, "%s started (pid %d)", r->name,
		  child_pid(r->child));
	return 0;
}

/* Starts waiting hooks while there is room (all of them at a stop), and
 * tells the owner: their messages count as announced now. */
static void
start_queued(struct hook_sink *hs)
{
	unsigned before = hs->queued.n;

	while ((hs->stopping || hs->running.n < HOOK_MAX_RUNNING) &&
	       hs->queued.head) {
		struct hook_run *r = hs->queued.head;

		if (run_start(r) < 0)
			run_free(r);
		else
			list_move(r, &hs->running);
	}
	if (hs->queued.n != before && hs->changed)
		hs->changed(hs->ud);
}

/* Starts argv, the setting key's command, now when few enough hooks run,
 * else queues it. Takes over vars (see env_build()). A detached command
 * (on_click) has no timeout and is not killed, and its message's UID (0:
 * none) is only named in log lines, since nothing waits for it. */
static void
hook_submit(struct hook_sink *hs, const struct account *a, const char *mailbox,
	    const char *key, char *const *argv, char **vars, bool detached,
	    uint32_t uid)
{
	struct hook_run *r = xcalloc(1, sizeof(*r));

	r->uid = detached ? 0 : uid;
	r->hs = hs;
	r->account = xstrdup(a->name);
	r->mailbox = xstrdup(mailbox);
	r->argv = config_argv_dup(argv);
	/* For log lines: which setting, which command, which message. */
	r->name = uid ? xasprintf("%s %s (UID %" PRIu32 ")", key, argv[0], uid)
		      : xasprintf("%s %s", key, argv[0]);
	r->vars = vars;
	r->detached = detached;
	r->timeout = detached ? 0 : a->d.hook_timeout;
	if ((hs->stopping || hs->running.n < HOOK_MAX_RUNNING) &&
	    !hs->queued.head) {
		if (run_start(r) < 0)
			run_free(r);
		else
			list_append(&hs->running, r);
		return;
	}
	if (hs->queued.n >= HOOK_MAX_QUEUED) {
		struct log_ctx ctx = run_ctx(r);

		log_warn(&ctx, "%u hooks waiting already: not running %s",
			 hs->queued.n, r->name);
		run_free(r);
		return;
	}
	list_append(&hs->queued, r);
	if (hs->queued.n == SINK_HOOK_HIGH && hs->changed)
		hs->changed(hs->ud);
}

/* "NAME=value" (value NULL: empty); without printf, which took a tenth of
 * mailwatch's user time in a burst of hooks. */
static char *
env_var(const char *name_eq, const char *value)
{
	size_t n = strlen(name_eq), v = value ? strlen(value) : 0;
	char *s = xmalloc(n + v + 1);

	memcpy(s, name_eq, n);
	if (v)
		memcpy(s + n, value, v);
	s[n + v] = 0;
	return s;
}

/* The variables of a command about message ev, NULL-terminated (free
 * with config_argv_free). */
static char **
message_vars(const struct account *a, const struct mail_event *ev)
{
	char **vars = xcalloc(11, sizeof(*vars));
	size_t n = 0;

	vars[n++] = env_var("MAILWATCH_ACCOUNT=", a->name);
	vars[n++] = env_var("MAILWATCH_MAILBOX=", ev->mailbox);
	vars[n++] = xasprintf("MAILWATCH_UID=%" PRIu32, ev->uid);
	vars[n++] =
	    xasprintf("MAILWATCH_UIDVALIDITY=%" PRIu32, ev->uidvalidity);
	vars[n++] = env_var("MAILWATCH_FROM=", ev->from);
	vars[n++] = env_var("MAILWATCH_FROM_NAME=", ev->from_name);
	vars[n++] = env_var("MAILWATCH_FROM_ADDRESS=", ev->from_address);
	vars[n++] = env_var("MAILWATCH_SUBJECT=", ev->subject);
	vars[n++] = env_var("MAILWATCH_DATE=", ev->date);
	vars[n++] = env_var("MAILWATCH_MESSAGE_ID=", ev->message_id);
	return vars;
}

static void
hook_send(struct sink *s, const struct account *a, const struct mail_event *ev)
{
	if (a->d.on_new_mail)
		hook_submit((struct hook_sink *)s, a, ev->mailbox,
			    "on_new_mail", a->d.on_new_mail,
			    message_vars(a, ev), false, ev->uid);
}

void
sink_hook_launch(struct sink *s, const struct account *a, char *const *argv,
		 const struct mail_event *ev)
{
	hook_submit((struct hook_sink *)s, a, ev->mailbox, "on_click", argv,
		    message_vars(a, ev), true, ev->uid);
}

static void
hook_batch_done(struct sink *s, const struct account *a, const char *mailbox,
		unsigned count)
{
	struct hook_sink *hs = (struct hook_sink *)s;
	char **vars;

	if (!a->d.on_new_mail_post)
		return;
	vars = xcalloc(4, sizeof(*vars));
	vars[0] = xasprintf("MAILWATCH_ACCOUNT=%s", a->name);
	vars[1] = xasprintf("MAILWATCH_MAILBOX=%s", mailbox);
	vars[2] = xasprintf("MAILWATCH_COUNT=%u", count);
	hook_submit(hs, a, mailbox, "on_new_mail_post", a->d.on_new_mail_post,
		    vars, false, 0);
}

/* The lowest UID of account/mailbox among runs in l, or 0. */
static uint32_t
lowest_uid(const struct run_list *l, const char *account, const char *mailbox,
	   uint32_t low)
{
	for (struct hook_run *r = l->head; r; r = r->next)
		if (r->uid && (!low || r->uid < low) &&
		    !strcmp(r->account, account) &&
		    !strcmp(r->mailbox, mailbox))
			low = r->uid;
	return low;
}

static uint32_t
hook_unfinished(struct sink *s, const char *account, const char *mailbox)
{
	struct hook_sink *hs = (struct hook_sink *)s;
	uint32_t low = lowest_uid(&hs->queued, account, mailbox, 0);

	low = lowest_uid(&hs->running, account, mailbox, low);
	return lowest_uid(&hs->lost, account, mailbox, low);
}

static void
hook_stop(struct sink *s)
{
	struct hook_sink *hs = (struct hook_sink *)s;

	hs->stopping = true;
	start_queued(hs);
	if (hs->changed)
		hs->changed(hs->ud);
}

static bool
hook_busy(struct sink *s)
{
	struct hook_sink *hs = (struct hook_sink *)s;

	if (hs->queued.head)
		return true;
	for (struct hook_run *r = hs->running.head; r; r = r->next)
		if (!r->detached)
			return true;
	return false;
}

static void
hook_free(struct sink *s)
{
	struct hook_sink *hs = (struct hook_sink *)s;
	struct hook_run *r;

	if (hs->queued.n) {
		unsigned msgs = 0;

		for (r = hs->queued.head; r; r = r->next)
			msgs += r->uid != 0;
		log_info(NULL,
			 "%u waiting hooks not started; %u messages are "
			 "announced again at the next start",
			 hs->queued.n, msgs);
	}
	while ((r = hs->running.head)) {
		struct log_ctx ctx = run_ctx(r);

		if (r->detached)
			log_debug(&ctx, "%s (pid %d) left running", r->name,
				  child_pid(r->child));
		else if (r->uid && hs->stopping)
			log_warn(&ctx,
				 "%s (pid %d) still running: killing it; it "
				 "is announced again at the next start",
				 r->name, child_pid(r->child));
		else
			log_warn(&ctx, "%s (pid %d) still running: killing it",
				 r->name, child_pid(r->child));
		run_free(r);
	}
	while (hs->queued.head)
		run_free(hs->queued.head);
	while (hs->lingering.head)
		run_free(hs->lingering.head);
	while (hs->lost.head)
		run_free(hs->lost.head);
	sd_event_unref(hs->event);
	free(hs->base_env);
	free(hs);
}

unsigned
sink_hook_waiting(struct sink *s)
{
	return ((struct hook_sink *)s)->queued.n;
}

static const struct sink_ops hook_ops = {
    .send = hook_send,
    .batch_done = hook_batch_done,
    .unfinished = hook_unfinished,
    .stop = hook_stop,
    .busy = hook_busy,
    .free = hook_free,
};

struct sink *
sink_hook_new(sd_event *e, void (*changed)(void *ud), void *ud)
{
	struct hook_sink *hs = xcalloc(1, sizeof(*hs));
	size_t n_env = 0;

	hs->sink.ops = &hook_ops;
	hs->changed = changed;
	hs->ud = ud;
	hs->event = sd_event_ref(e);
	while (environ && environ[n_env])
		n_env++;
	hs->base_env = xcalloc(n_env + 1, sizeof(*hs->base_env));
	for (size_t i = 0; i < n_env; i++)
		if (!env_is_ours(environ[i]))
			hs->base_env[hs->n_base_env++] = environ[i];
	return &hs->sink;
}
