/* child: a command run under the loop's supervision, for hooks and
 * password_command.
 *
 * The command is started with launch() in a process group of its own
 * (stdin /dev/null, stdout and optionally stderr on a pipe, or stderr on
 * a pipe of its own, passed on line by line). Its output is read on the
 * loop and passed on up to a cap; its exit is seen through its
 * pidfd, and it is reaped then. At the deadline the whole group gets
 * SIGTERM, and SIGKILL CHILD_KILL_DELAY_USEC later if anything of it is
 * still there.
 *
 * The command ends when its first process exits: what is in the pipe then
 * is read (as much as a pipe holds) and the pipe closed, since processes it
 * left behind may keep it open without end. Those processes are still its
 * group, and the deadline still applies to them: a command that starts
 * something in the background and exits at once does not outlive its
 * deadline (to outlive it, start it in a session of its own). */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

/* Lines of stderr passed on with error_lines; the rest is dropped, with
 * one line that says so. */
#define CHILD_ERROR_LINES 20

/* Time between SIGTERM and SIGKILL at the deadline. */
#define CHILD_KILL_DELAY_USEC (2 * UINT64_C(1000000))

struct child;

enum child_event {
	/* The command ended; si (borrowed) says how. All of its output was
	 * passed on before. Processes it left in its group are watched on
	 * until CHILD_OVER. */
	CHILD_EXITED,
	/* The deadline: SIGTERM was sent to the group. */
	CHILD_TERM,
	/* Still running CHILD_KILL_DELAY_USEC later: SIGKILL was sent. */
	CHILD_KILL,
	/* After CHILD_EXITED: nothing of the group is left (or what was left
	 * got SIGKILL at the deadline). Nothing more happens. When nothing
	 * was left at the exit, it comes right after CHILD_EXITED, in the
	 * same turn of the loop. */
	CHILD_OVER,
};

struct child_ops {
	/* n bytes of output (borrowed, wiped after the call, so the output
	 * may be a secret); buf NULL once, when more than the cap came: the
	 * rest is read and dropped. May be NULL. Must not free the child. */
	void (*output)(void *ud, const char *buf, size_t n);
	/* With spec.error_lines: a line of the command's stderr (borrowed,
	 * without its line end), at most CHILD_ERROR_LINES of them. May be
	 * NULL. Must not free the child. */
	void (*error_line)(void *ud, const char *line);
	/* What happened (si is NULL but for CHILD_EXITED). Called last: it
	 * may free the child. */
	void (*event)(void *ud, enum child_event ev, const siginfo_t *si);
};

struct child_spec {
	char *const *argv; /* argv[0] is looked up in PATH without a '/' */
	char *const *envp;
	bool with_stderr;   /* stderr on the pipe too, else inherited */
	bool error_lines;   /* stderr on a pipe of its own, to error_line */
	bool detached;	    /* a session of its own, never killed */
	bool yield;	    /* let it start before the caller goes on */
	uint64_t timeout;   /* usec from the start to the deadline; 0: none */
	size_t cap;	    /* output bytes passed on */
	const char *name;   /* for log lines: "hook /x/y", "password_command" */
	struct log_ctx ctx; /* for log lines */
};

/* Starts spec's command on e. spec is only read during the call, except
 * name and the strings of ctx, which must outlive the child. ops and ud
 * are the owner's: ops->event is called until CHILD_OVER, or until the
 * child is freed. Returns 0 and the child in *c_r, or a negative errno
 * after logging why, as "NAME: reason" (nothing is left running then).
 * Does not block, and calls nothing back before it returns. */
int child_start(sd_event *e, const struct child_spec *spec,
		const struct child_ops *ops, void *ud, struct child **c_r);

/* The command's pid, which is also its process group's id. */
int child_pid(const struct child *c);

/* Frees *c (NULL is fine) and sets it to NULL: whatever of its group may
 * still be there gets SIGKILL (not so for a detached command, which is
 * left running), and a command still running is reaped (after SIGKILL,
 * so the wait is short). No event is called after this. */
void child_free(struct child **c);
