/* child: see child.h.
 *
 * Three sources: the command's pidfd, readable once it exited (then it is
 * reaped, and kill(-pgid, 0) tells at once whether it left anything in its
 * group), the output pipe, and the deadline timer. The exit goes before
 * the output in the loop's turn, and reads what is left in the pipe: a
 * command's exit and the end of its output take one turn. sd-event's own
 * child source would take three (it reaps only after its callback
 * returned, so the group can be looked at only in a later turn) and two
 * more system calls, in a burst of thousands of hooks.
 *
 * Killing a group by its id is safe while its leader is not reaped. After
 * that the id could in principle be taken by a new group once the old one
 * is empty; the deadline only signals a group found non-empty after the
 * reap, within at most the command's timeout, and PIDs are not reused
 * before the whole PID space went round. */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"

/* Reads of the pipe per wake-up, and when the command exits (that is 64
 * KiB, what a pipe holds): a command writing without end cannot hold the
 * loop. */
#define CHILD_READS 16

struct child {
	const struct child_ops *ops;
	void *ud;
	const char *name;	/* borrowed */
	struct log_ctx ctx;	/* borrowed strings */
	struct launch sp;	/* its pid (also its group), pidfd, pipe */
	bool detached;		/* own session: never killed */
	bool exited;		/* the command ended and was reaped */
	bool over;		/* nothing of the group is left to kill */
	bool termed;		/* SIGTERM sent at the deadline */
	bool capped;		/* output came beyond the cap */
	size_t cap, passed;	/* output bytes to pass on, passed so far */
	int fd;			/* read end of the output pipe, or -1 */
	sd_event_source *exit;	/* on the command's pidfd, which it owns */
	sd_event_source *out;	/* on fd */
	/* With error_lines: stderr's pipe, the line being read from it and
	 * the lines passed on so far. */
	int efd;
	sd_event_source *err;
	char eline[512];
	size_t elen;
	unsigned elines;
	sd_event_source *timer; /* the deadline; NULL without one */
	/* Set while the owner's event callback runs: child_free() then sets
	 * it true. */
	bool *freed_r;
};

static void
close_output(struct child *c)
{
	c->out = sd_event_source_disable_unref(c->out);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void
close_errors(struct child *c)
{
	c->err = sd_event_source_disable_unref(c->err);
	if (c->efd >= 0)
		close(c->efd);
	c->efd = -1;
}

/* Passes on the line in eline (a CR before its end dropped), up to
 * CHILD_ERROR_LINES of them, then one that says the rest is dropped. */
static void
pass_error_line(struct child *c)
{
	if (c->elen && c->eline[c->elen - 1] == '\r')
		c->elen--;
	c->eline[c->elen] = 0;
	c->elen = 0;
	if (c->elines > CHILD_ERROR_LINES || !c->ops->error_line)
		return;
	c->ops->error_line(c->ud, ++c->elines > CHILD_ERROR_LINES
					  ? "(more lines on stderr dropped)"
					  : c->eline);
}

/* Reads stderr into lines, at most CHILD_READS chunks; a line longer
 * than eline is cut there. Returns true at end of file or on an error,
 * after passing on what is left of the last line. */
static bool
read_errors(struct child *c)
{
	char buf[4096];

	for (unsigned i = 0; i < CHILD_READS;) {
		ssize_t n = read(c->efd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		if (n <= 0)
			break;
		for (ssize_t k = 0; k < n; k++) {
			if (buf[k] == '\n' || c->elen == sizeof(c->eline) - 1)
				pass_error_line(c);
			if (buf[k] != '\n')
				c->eline[c->elen++] = buf[k];
		}
		i++;
	}
	if (c->elen)
		pass_error_line(c);
	return true;
}

static int
on_errors(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct child *c = ud;

	(void)s;
	(void)fd;
	(void)revents;
	if (read_errors(c))
		close_errors(c);
	return 0;
}

static void
pass_output(struct child *c, const char *buf, size_t n)
{
	size_t take = c->cap - c->passed < n ? c->cap - c->passed : n;

	c->passed += take;
	if (take && c->ops->output)
		c->ops->output(c->ud, buf, take);
	if (take < n && !c->capped) {
		c->capped = true;
		if (c->ops->output)
			c->ops->output(c->ud, NULL, 0);
	}
}

/* Reads at most CHILD_READS chunks from the pipe. Returns true at end of
 * file or on an error, after which the pipe should be closed. */
static bool
read_output(struct child *c)
{
	char buf[4096];
	bool end = false;

	for (unsigned i = 0; i < CHILD_READS;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			end = true;
			break;
		}
		pass_output(c, buf, (size_t)n);
		i++;
	}
	explicit_bzero(buf, sizeof(buf));
	return end;
}

static int
on_output(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct child *c = ud;

	(void)s;
	(void)fd;
	(void)revents;
	if (read_output(c))
		close_output(c);
	return 0;
}

/* The group is empty or got SIGKILL after the command ended: the end. */
static void
over(struct child *c)
{
	c->over = true;
	c->timer = sd_event_source_disable_unref(c->timer);
	c->ops->event(c->ud, CHILD_OVER, NULL);
}

/* Tells the owner ev; returns false when the owner freed c meanwhile. */
static bool
tell(struct child *c, enum child_event ev, const siginfo_t *si)
{
	bool freed = false;

	c->freed_r = &freed;
	c->ops->event(c->ud, ev, si);
	if (freed)
		return false;
	c->freed_r = NULL;
	return true;
}

static int
on_exited(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct child *c = ud;
	siginfo_t si = {0};
	char interp[128];
	bool left;
	int err;

	(void)s;
	(void)fd;
	(void)revents;
	if (waitid(P_PID, c->sp.pid, &si, WEXITED | WNOHANG) < 0) {
		/* Reaped by someone else: an end of which nothing is
		 * known. */
		log_warn(&c->ctx, "%s: cannot reap pid %d: %m", c->name,
			 (int)c->sp.pid);
		si.si_code = CLD_KILLED;
		si.si_status = SIGKILL;
	} else if (!si.si_pid) {
		return 0; /* still running, whatever the pidfd said */
	}
	c->exited = true;
	c->exit = sd_event_source_disable_unref(c->exit);
	/* An exec that failed after launch() found the file: mostly what
	 * its "#!" line names (missing, not executable, a "\r" after it). */
	err = launch_end(&c->sp, interp, sizeof(interp));
	if (err && *interp)
		log_warn(&c->ctx, "%s: cannot start %s, which its #! line "
				  "names: %s",
			 c->name, interp, strerror(err));
	else if (err)
		log_warn(&c->ctx, "%s: %s", c->name, strerror(err));
	if (c->fd >= 0) {
		read_output(c);
		close_output(c);
	}
	if (c->efd >= 0) {
		read_errors(c);
		if (c->elen)
			pass_error_line(c);
		close_errors(c);
	}
	/* Reaped: only what it started can keep the group now. */
	left = !c->detached && c->timer && kill(-c->sp.pid, 0) == 0;
	if (tell(c, CHILD_EXITED, &si) && !left)
		over(c);
	return 0;
}

static int
on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct child *c = ud;

	(void)usec;
	if (!c->termed) {
		c->termed = true;
		if (kill(-c->sp.pid, SIGTERM) < 0) {
			if (c->exited) {
				over(c); /* what was left is gone */
				return 0;
			}
			(void)kill(c->sp.pid, SIGTERM);
		}
		(void)sd_event_source_set_time_relative(s,
							CHILD_KILL_DELAY_USEC);
		(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
		c->ops->event(c->ud, CHILD_TERM, NULL);
		return 0;
	}
	if (kill(-c->sp.pid, SIGKILL) < 0 && !c->exited)
		(void)kill(c->sp.pid, SIGKILL);
	if (c->exited)
		over(c);
	else
		c->ops->event(c->ud, CHILD_KILL, NULL);
	return 0;
}

/* A pipe for stderr: the read end (non-blocking) in *r_r, the write end
 * in *w_r, both close-on-exec and above fd 2 (launch()).
 * Returns 0 or a negative errno. */
static int
error_pipe(int *r_r, int *w_r)
{
	int p[2], r = 0;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	for (int i = 0; i < 2 && !r; i++) {
		int fd = p[i] > STDERR_FILENO ? p[i]
					       : fcntl(p[i], F_DUPFD_CLOEXEC, 3);

		if (fd < 0) {
			r = -errno;
		} else if (fd != p[i]) {
			close(p[i]);
			p[i] = fd;
		}
	}
	if (r < 0) {
		close(p[0]);
		close(p[1]);
		return r;
	}
	/* The child's end blocks, as its stdout does. */
	if (fcntl(p[1], F_SETFL, 0) < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	*r_r = p[0];
	*w_r = p[1];
	return 0;
}

int
child_start(sd_event *e, const struct child_spec *spec,
	    const struct child_ops *ops, void *ud, struct child **c_r)
{
	struct child *c = xcalloc(1, sizeof(*c));
	const char *what;
	int r, efd_w = -1;

	c->ops = ops;
	c->ud = ud;
	c->name = spec->name;
	c->ctx = spec->ctx;
	c->detached = spec->detached;
	c->cap = spec->cap;
	c->efd = -1;
	r = spec->error_lines ? error_pipe(&c->efd, &efd_w) : 0;
	if (r >= 0)
		r = launch(spec->argv, spec->envp, spec->with_stderr, efd_w,
			  spec->detached, &c->sp);
	if (efd_w >= 0)
		close(efd_w);
	if (r < 0) {
		/* Naming the program where the name does not (a trial's
		 * "oauth2_token_command: not found in PATH"), and saying
		 * it did not run (trial AC's read as if it had). */
		bool named = strstr(c->name, spec->argv[0]);

		if (c->efd >= 0)
			close(c->efd);
		log_warn(&c->ctx, "%s: cannot start%s%s: %s", c->name,
			 named ? "" : " ", named ? "" : spec->argv[0],
			 r == -ENOENT && !strchr(spec->argv[0], '/')
			     ? "not found in PATH"
			     : strerror(-r));
		free(c);
		return r;
	}
	c->fd = c->sp.fd;
	/* Let it start on this CPU before the bookkeeping that follows,
	 * when the scheduler put it here. */
	if (spec->yield)
		sched_yield();

	r = sd_event_add_io(e, &c->exit, c->sp.pidfd, EPOLLIN, on_exited, c);
	if (r < 0) {
		log_err(&c->ctx, "%s: cannot watch pid %d: %s", c->name,
			(int)c->sp.pid, strerror(-r));
		close(c->sp.pidfd);
		goto fail; /* which kills and reaps it */
	}
	(void)sd_event_source_set_io_fd_own(c->exit, true);
	/* Before the end of its output in the same turn (on_exited()). */
	(void)sd_event_source_set_priority(c->exit,
					   SD_EVENT_PRIORITY_IMPORTANT);
	what = "watch its output";
	r = sd_event_add_io(e, &c->out, c->fd, EPOLLIN, on_output, c);
	if (r >= 0 && c->efd >= 0)
		r = sd_event_add_io(e, &c->err, c->efd, EPOLLIN, on_errors, c);
	if (r >= 0 && spec->timeout) {
		what = "add its timer";
		r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC,
					       spec->timeout, 0, on_timer, c);
	}
	if (r < 0) {
		log_err(&c->ctx, "%s: cannot %s: %s", c->name, what,
			strerror(-r));
		goto fail;
	}
	*c_r = c;
	return 0;

fail:
	child_free(&c);
	return r;
}

int
child_pid(const struct child *c)
{
	return (int)c->sp.pid;
}

void
child_free(struct child **cp)
{
	struct child *c = *cp;

	if (!c)
		return;
	if (c->freed_r)
		*c->freed_r = true;
	/* Before the command is reaped, or while something it left may
	 * still be there. */
	if (!c->detached && !c->over)
		(void)kill(-c->sp.pid, SIGKILL);
	/* Reaped after SIGKILL (also when it left its group), so the wait
	 * is short; a detached command is left running. */
	if (!c->detached && !c->exited) {
		(void)kill(c->sp.pid, SIGKILL);
		(void)waitid(P_PID, c->sp.pid, &(siginfo_t){0}, WEXITED);
	}
	/* A detached command may still be before its exec: this waits for
	 * that moment. */
	(void)launch_end(&c->sp, NULL, 0);
	sd_event_source_disable_unref(c->exit);
	sd_event_source_disable_unref(c->timer);
	close_output(c);
	close_errors(c);
	free(c);
	*cp = NULL;
}
