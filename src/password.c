/* password: an account's password, got on the loop; see password.h.
 *
 * A password_command job has three sources: the shell's exit (a child
 * source that owns the process, so freeing it kills and reaps), its output
 * (a non-blocking pipe) and a timer. It ends when the output reached end
 * of file and the shell was reaped, in either order: then the exit status
 * and the first line decide. All of the output is read, and all but the
 * first line dropped: closing the pipe early would kill e.g. "pass show"
 * with SIGPIPE. At the timeout the process group is killed and the job ends
 * with NULL once the shell is reaped (at once if it was already). */
#include "password.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

unsigned password_timeout_ms = 30000;

/* The first line of output is kept in a buffer this large (with the
 * terminating NUL): a longer one is an error. */
#define PASSWORD_MAX 4096
/* Reads of the pipe per wake-up, so that a command writing without end
 * cannot hold the loop. */
#define PASSWORD_READS 16

struct password_job {
	sd_event *event;
	void (*done)(void *ud, char *password); /* NULL once called */
	void *ud;
	char *account;		 /* the account's name, for log lines */
	char *password;		 /* `password =`: a copy, wiped when freed */
	unsigned timeout_ms;	 /* password_timeout_ms at the start */
	pid_t pid;		 /* the shell, also its process group; or 0 */
	bool exited;		 /* the shell was reaped (or never started) */
	int code, status;	 /* how it exited */
	bool timed_out;		 /* killed at the timeout */
	int fd;			 /* read end of the output pipe, or -1 */
	sd_event_source *child;	 /* owns the process */
	sd_event_source *out;	 /* on fd */
	sd_event_source *timer;	 /* the timeout */
	sd_event_source *defer;	 /* `password =` */
	bool have_line;		 /* the first newline was read */
	bool long_line;		 /* the first line did not fit */
	size_t len;		 /* of the first line in line */
	char line[PASSWORD_MAX]; /* wiped when the job ends */
};

static struct log_ctx
job_ctx(const struct password_job *j)
{
	return (struct log_ctx){.account = j->account};
}

static void
close_output(struct password_job *j)
{
	j->out = sd_event_source_disable_unref(j->out);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

/* Ends the job: stops its sources (the child source stays until freed, to
 * reap) and hands pw (owned; NULL after a logged failure) to done. Must be
 * the last thing a callback does with j: done may free it. */
static void
finish(struct password_job *j, char *pw)
{
	void (*done)(void *ud, char *password) = j->done;

	j->done = NULL;
	j->timer = sd_event_source_disable_unref(j->timer);
	j->defer = sd_event_source_disable_unref(j->defer);
	close_output(j);
	explicit_bzero(j->line, sizeof(j->line));
	j->len = 0;
	if (done) {
		done(j->ud, pw);
	} else if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
}

/* The password from a command that exited and closed its output, or NULL
 * after logging why not. */
static char *
command_result(struct password_job *j)
{
	struct log_ctx ctx = job_ctx(j);
	bool nul;

	j->line[j->len] = '\0';
	nul = strlen(j->line) != j->len;
	if (j->code != CLD_EXITED)
		log_err(&ctx, "password_command was killed by signal %d (%s)",
			j->status, strsignal(j->status));
	else if (j->status != 0)
		log_err(&ctx, "password_command failed with exit status %d",
			j->status);
	else if (j->long_line)
		log_err(&ctx,
			"password_command: first line of output is longer "
			"than %d bytes (exit status 0)",
			PASSWORD_MAX - 1);
	else if (nul)
		log_err(&ctx, "password_command: output holds a NUL byte "
			      "(exit status 0)");
	else if (!j->len)
		log_err(&ctx,
			"password_command printed %s (exit status 0); expected "
			"the password on the first line",
			j->have_line ? "an empty first line" : "nothing");
	else
		return xstrdup(j->line);
	return NULL;
}

/* Ends the job if it is over: the shell reaped and its output closed, or
 * the shell reaped after a timeout. */
static void
maybe_finish(struct password_job *j)
{
	if (!j->exited)
		return;
	if (j->timed_out)
		finish(j, NULL);
	else if (j->fd < 0)
		finish(j, command_result(j));
}

/* Takes n bytes just read into dst: the end of line, or scratch space
 * (in_line false) once the first line is complete or full. */
static void
take_output(struct password_job *j, const char *dst, size_t n, bool in_line)
{
	const char *nl;

	if (!in_line) {
		/* The line is full: unless it ends right here it is too
		 * long; later lines are dropped. */
		if (!j->have_line && !j->long_line) {
			if (dst[0] == '\n')
				j->have_line = true;
			else
				j->long_line = true;
		}
		return;
	}
	nl = memchr(dst, '\n', n);
	if (nl) {
		j->len = (size_t)(nl - j->line);
		j->have_line = true;
	} else {
		j->len += n;
	}
}

static int
on_output(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct password_job *j = ud;
	char scratch[4096];
	bool eof = false;

	(void)s;
	(void)revents;
	for (unsigned i = 0; i < PASSWORD_READS; i++) {
		bool in_line = !j->have_line && !j->long_line &&
			       j->len < sizeof(j->line) - 1;
		char *dst = in_line ? j->line + j->len : scratch;
		size_t room =
		    in_line ? sizeof(j->line) - 1 - j->len : sizeof(scratch);
		ssize_t n = read(fd, dst, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			eof = true; /* end of file, or an error: the end */
			break;
		}
		take_output(j, dst, (size_t)n, in_line);
	}
	explicit_bzero(scratch, sizeof(scratch));
	if (eof) {
		close_output(j);
		maybe_finish(j);
	}
	return 0;
}

static int
on_child(sd_event_source *s, const siginfo_t *si, void *ud)
{
	struct password_job *j = ud;

	(void)s;
	/* Reaped when this returns: the group may live on in processes the
	 * shell left behind. */
	j->exited = true;
	j->code = si->si_code;
	j->status = si->si_status;
	maybe_finish(j);
	return 0;
}

static int
on_timeout(sd_event_source *s, uint64_t usec, void *ud)
{
	struct password_job *j = ud;
	struct log_ctx ctx = job_ctx(j);

	(void)s;
	(void)usec;
	/* The group outlives a reaped shell while something it started
	 * still holds the output open. */
	if (kill(-j->pid, SIGKILL) < 0 && !j->exited)
		(void)kill(j->pid, SIGKILL);
	if (j->timeout_ms % 1000)
		log_err(&ctx,
			"password_command did not finish within %u ms; "
			"killed it",
			j->timeout_ms);
	else
		log_err(&ctx,
			"password_command did not finish within %u s; "
			"killed it",
			j->timeout_ms / 1000);
	j->timed_out = true;
	close_output(j);
	maybe_finish(j);
	return 0;
}

static int
on_defer(sd_event_source *s, void *ud)
{
	struct password_job *j = ud;
	char *pw = j->password;

	(void)s;
	j->password = NULL;
	finish(j, pw);
	return 0;
}

/* Runs /bin/sh -c line with its sources on the loop. Returns 0, or a
 * negative errno after logging why (the process, if any, is dealt with by
 * password_job_free). */
static int
start_command(struct password_job *j, const char *line)
{
	struct log_ctx ctx = job_ctx(j);
	char *argv[] = {"/bin/sh", "-c", (char *)line, NULL};
	int r;
	pid_t pid;

	/* stderr stays the daemon's: the command may say why it failed. */
	r = spawn_piped(argv, environ, false, false, &pid, &j->fd);
	if (r < 0) {
		log_err(&ctx, "password_command: cannot run /bin/sh: %s",
			strerror(-r));
		return r;
	}
	j->pid = pid;

	r = sd_event_add_child(j->event, &j->child, pid, WEXITED, on_child, j);
	if (r < 0) {
		log_err(&ctx, "password_command: cannot watch pid %d: %s%s",
			(int)pid, strerror(-r),
			r == -EBUSY ? " (SIGCHLD is not blocked)" : "");
		/* Nothing else will reap it; after SIGKILL that is quick. */
		(void)kill(-pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		j->exited = true;
		return r;
	}
	/* Freeing the source kills (if need be) and reaps the shell. */
	(void)sd_event_source_set_child_process_own(j->child, true);
	r = sd_event_add_io(j->event, &j->out, j->fd, EPOLLIN, on_output, j);
	if (r < 0) {
		log_err(&ctx, "password_command: cannot watch its output: %s",
			strerror(-r));
		return r;
	}
	j->timeout_ms = password_timeout_ms;
	r = sd_event_add_time_relative(j->event, &j->timer, CLOCK_MONOTONIC,
				       j->timeout_ms * UINT64_C(1000), 0,
				       on_timeout, j);
	if (r < 0) {
		log_err(&ctx, "password_command: cannot add its timer: %s",
			strerror(-r));
		return r;
	}
	log_debug(&ctx, "password_command started (pid %d)", (int)pid);
	return 0;
}

int
password_job_new(sd_event *e, const struct account *a,
		 void (*done)(void *ud, char *password), void *ud,
		 struct password_job **j_r)
{
	struct log_ctx ctx = {.account = a->name};
	struct password_job *j;
	int r;

	if (!a->password && !a->password_command) {
		log_err(&ctx, "neither password nor password_command is set");
		return -EINVAL;
	}
	j = xcalloc(1, sizeof(*j));
	j->event = sd_event_ref(e);
	j->done = done;
	j->ud = ud;
	j->account = a->name ? xstrdup(a->name) : NULL;
	j->fd = -1;
	if (a->password) {
		j->password = xstrdup(a->password);
		r = sd_event_add_defer(e, &j->defer, on_defer, j);
		if (r < 0)
			log_err(&ctx, "password: cannot add a defer source: %s",
				strerror(-r));
	} else {
		r = start_command(j, a->password_command);
	}
	if (r < 0) {
		password_job_free(&j);
		return r;
	}
	*j_r = j;
	return 0;
}

void
password_job_free(struct password_job **jp)
{
	struct password_job *j = *jp;

	if (!j)
		return;
	/* Not reaped yet, so the group id is still ours; the child source
	 * then reaps the shell. */
	if (j->pid > 0 && !j->exited)
		(void)kill(-j->pid, SIGKILL);
	sd_event_source_disable_unref(j->child);
	sd_event_source_disable_unref(j->timer);
	sd_event_source_disable_unref(j->defer);
	close_output(j);
	explicit_bzero(j->line, sizeof(j->line));
	if (j->password) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	free(j->account);
	sd_event_unref(j->event);
	free(j);
	*jp = NULL;
}
