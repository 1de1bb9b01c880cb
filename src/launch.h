/* launch: starts a command the way hooks and password_command start.
 *
 * The command gets stdin from /dev/null; stdout, and stderr too when
 * with_stderr, into a pipe; an empty signal mask and default dispositions
 * (after signals_reset()); a process group of its own, or a session of
 * its own when new_session. argv[0] is looked up in PATH when it has no
 * '/', and an executable without "#!" runs under /bin/sh, as execvp(3)
 * has it.
 *
 * The caller goes on while the new process starts: see launch.c for how,
 * and why that matters in a burst of hooks. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct launch_lent;

struct launch {
	pid_t pid; /* the command, also its process group's id */
	int pidfd; /* readable once it exited; close-on-exec */
	int fd;	   /* the pipe's read end: non-blocking, close-on-exec */
	struct launch_lent *lent; /* for launch_end() */
};

/* Starts argv[0] with envp (both only read during the call); stderr goes
 * to the pipe with with_stderr, else to err_fd (above 2, as
 * fcntl(F_DUPFD_CLOEXEC, 3) gives) unless it is -1, else it is ours.
 * Returns 0 and fills *s, whose pidfd and fd are the caller's to close
 * and which goes to launch_end() once; or a negative errno, when nothing
 * was started (ENOENT: not found, EACCES: not executable). A failure of
 * the exec itself, which these checks leave rare, shows as exit status
 * 127, with its errno from launch_end(). */
int launch(char *const argv[], char *const envp[], bool with_stderr, int err_fd,
	   bool new_session, struct launch *s);

/* file's path into buf (size bytes), as launch() finds it: as it is
 * with a '/', else the first executable file of that name in PATH's
 * directories (glibc's default PATH without one; an empty entry is the
 * current directory), as execvp(3) takes it. Returns 0, or -ENOENT (not
 * there), -EACCES (there only as something that is not an executable
 * file) or another negative errno. */
int launch_find(const char *file, char *buf, size_t size);

/* Frees what the child was lent until its exec: best after the child was
 * reaped; before that, it waits until the child exec'd or exited (a
 * moment after launch()). Returns the errno of a failed exec, else 0;
 * then, unless interp is NULL, what the file's "#!" line names (as read,
 * up to n - 1 bytes; "" without one) in interp, since that is what the
 * errno is about. */
int launch_end(struct launch *s, char *interp, size_t n);
