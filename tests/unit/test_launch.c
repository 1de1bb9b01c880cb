/* Unit tests for launch() (launch.c), how hooks and password_command
 * start. What the started command finds: stdin /dev/null, stdout
 * (blocking) and stderr on the pipe, no signal blocked or ignored although
 * the starter blocks some and was itself started with some ignored
 * (signals_reset()), a process group or a session of its own; the same
 * with the starter's fds 0 to 2 closed. A script without "#!" runs under
 * /bin/sh; a name is looked up in PATH as execvp(3) does. Its argv and
 * environment are its own copies: the starter may
 * free or change its own at once. A command that cannot start: its errno,
 * and nothing left running; one whose exec fails after the checks: status
 * 127 and the errno from launch_end(). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "launch.h"
#include "util.h"

extern char **environ;

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* What the command prints: its stdin, signal mask and ignored signals,
 * process group and session, whether its stdout blocks, then a line on
 * stderr. */
static const char report[] = "readlink /proc/self/fd/0; "
			     "grep -E '^Sig(Blk|Ign):' /proc/self/status; "
			     "echo \"pgrp $(cut -d' ' -f5 /proc/self/stat)"
			     " sid $(cut -d' ' -f6 /proc/self/stat)\"; "
			     "f=$(sed -n 's/^flags:[[:space:]]*//p' "
			     "/proc/$$/fdinfo/1); "
			     "[ $((f & 04000)) -eq 0 ] && echo stdout blocks; "
			     "echo to-stderr >&2";

/* Reads sp's pipe to its end within a deadline and reaps it, then ends
 * sp (the errno of a failed exec in *err_r when not NULL, and what the
 * file's "#!" line names in interp[128] then, when not NULL). Returns the
 * output (caller frees; NULL on a timeout) and the exit status in
 * *status_r. */
static char *
finish_named(struct launch *sp, int *status_r, int *err_r, char *interp)
{
	pid_t pid = sp->pid;
	int fd = sp->fd, err;
	long long end = now_ms() + scaled_ms(10000);
	size_t n = 0, cap = 4096;
	char *buf = xmalloc(cap);
	bool eof = false;

	while (!eof && n < cap - 1) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = end - now_ms();
		ssize_t got;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		got = read(fd, buf + n, cap - 1 - n);
		if (got < 0 && errno == EAGAIN)
			continue;
		eof = got <= 0;
		if (got > 0)
			n += (size_t)got;
	}
	buf[n] = 0;
	close(fd);
	if (!eof)
		kill(-pid, SIGKILL);
	*status_r = -1;
	if (waitpid(pid, status_r, 0) < 0)
		*status_r = -1;
	close(sp->pidfd);
	err = launch_end(sp, interp, interp ? 128 : 0);
	if (err_r)
		*err_r = err;
	if (!eof)
		freep(&buf);
	return buf;
}

static char *
finish(struct launch *sp, int *status_r, int *err_r)
{
	return finish_named(sp, status_r, err_r, NULL);
}

/* Writes text into path with the given mode. */
static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, mode);
}

/* Runs report's script through "sh" (found in PATH) and checks what it
 * printed. */
static void
check_report(bool new_session, const char *what)
{
	char *argv[] = {"sh", "-c", (char *)report, NULL};
	unsigned long long blocked = ~0ULL, ignored = ~0ULL;
	char *out, *want;
	struct launch sp;
	int status, r;

	r = launch(argv, environ, true, -1, new_session, &sp);
	is_int(r, 0, "%s: started", what);
	if (r < 0)
		return;
	ok(fcntl(sp.fd, F_GETFL) & O_NONBLOCK, "%s: our end is non-blocking",
	   what);
	ok(fcntl(sp.fd, F_GETFD) & FD_CLOEXEC, "%s: our end is close-on-exec",
	   what);
	ok(fcntl(sp.pidfd, F_GETFD) & FD_CLOEXEC,
	   "%s: its pidfd is close-on-exec", what);
	out = finish(&sp, &status, NULL);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit 0", what);
	if (out)
		sscanf(out, "/dev/null\nSigBlk:\t%llx\nSigIgn:\t%llx\n",
		       &blocked, &ignored);
	want = xasprintf("/dev/null\n"
			 "SigBlk:\t%016llx\n"
			 "SigIgn:\t%016llx\n"
			 "pgrp %d sid %d\n"
			 "stdout blocks\n"
			 "to-stderr\n",
			 blocked, ignored, (int)sp.pid,
			 new_session ? (int)sp.pid : (int)getsid(0));
	is_str(out, want,
	       "%s: stdin /dev/null, a %s of its own, a blocking stdout, "
	       "stderr on the pipe",
	       what, new_session ? "session" : "process group");
	is_int(blocked, 0, "%s: no signal blocked", what);
	/* Not glibc's own signals 32 and 33 (bits 31 and 32): its
	 * sigaction() cannot change them, and they are ignored when an
	 * ancestor was started by glibc's posix_spawn (make is). */
	is_int(ignored & ~(3ULL << 31), 0, "%s: no signal ignored", what);
	free(want);
	free(out);
}

/* With the starter's fds below max closed, the pipe takes their numbers:
 * the command still gets /dev/null as stdin and the pipe as stdout. */
static void
check_low_fds(int max)
{
	char *argv[] = {"/bin/sh", "-c",
			"readlink /proc/self/fd/0; echo out; echo err >&2",
			NULL};
	int saved[3], status, r;
	struct launch sp;
	char *out;

	fflush(stdout);
	for (int i = 0; i < max; i++) {
		saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
		close(i);
	}
	r = launch(argv, environ, true, -1, false, &sp);
	out = r < 0 ? NULL : finish(&sp, &status, NULL);
	for (int i = 0; i < max; i++) {
		dup2(saved[i], i);
		close(saved[i]);
	}
	is_int(r, 0, "fds 0 to %d closed: started", max - 1);
	is_str(out, "/dev/null\nout\nerr\n",
	       "fds 0 to %d closed: stdin /dev/null, output on the pipe",
	       max - 1);
	free(out);
}

/* An executable script without "#!" runs under /bin/sh, as a shell or
 * execvp(3) would run it. */
static void
check_no_shebang(const char *path)
{
	char *argv[] = {(char *)path, NULL};
	struct launch sp;
	int status, r;
	char *out = NULL;

	write_file(path, "echo \"$((6 * 7)) from a script without #!\"\n",
		   0755);
	r = launch(argv, environ, false, -1, false, &sp);
	if (r == 0)
		out = finish(&sp, &status, NULL);
	is_int(r, 0, "a script without #!: started");
	is_str(out, "42 from a script without #!\n",
	       "a script without #!: run by /bin/sh");
	free(out);
	unlink(path);
}

/* A command that cannot start: the errno, and no child left. */
static void
check_error(char *cmd, int want, const char *what)
{
	char *argv[] = {cmd, NULL};
	struct launch sp;

	is_int(launch(argv, environ, false, -1, false, &sp), -want, "%s: %s",
	       what, strerror(want));
	ok(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD,
	   "%s: no child left", what);
}

/* argv and envp are copied: the starter overwrites and frees its own
 * right after launch(), and ends sp at once (which waits for the exec);
 * the command still sees what it was given. */
static void
check_copies(void)
{
	char *argv[] = {xstrdup("/bin/sh"), xstrdup("-c"),
			xstrdup("echo \"$0 $MWTEST_SPAWN\""), xstrdup("arg0"),
			NULL};
	char *envp[] = {xstrdup("MWTEST_SPAWN=given"), NULL};
	struct launch sp;
	int status, r, err;
	char *out = NULL;

	r = launch(argv, envp, false, -1, false, &sp);
	is_int(r, 0, "copies: started");
	for (int i = 0; argv[i]; i++) {
		memset(argv[i], 'x', strlen(argv[i]));
		free(argv[i]);
	}
	memset(envp[0], 'x', strlen(envp[0]));
	free(envp[0]);
	if (r < 0)
		return;
	/* launch_end() waits for the exec before it frees what the command
	 * reads until then. */
	is_int(launch_end(&sp, NULL, 0), 0,
	       "copies: ended before the reap, no error");
	out = finish(&sp, &status, &err);
	is_str(out, "arg0 given\n",
	       "copies: the command got the argv and environment given");
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "copies: exit 0");
	free(out);
}

/* An exec that fails after the checks: a script whose "#!" names an
 * interpreter that is not there, or one with a carriage return after it
 * (a file saved with CRLF line ends). Exit status 127, the errno from
 * launch_end(), and what the line names, as it is. */
static void
check_exec_fails(const char *path, const char *line, const char *names,
		 const char *what)
{
	char *argv[] = {(char *)path, NULL};
	char interp[128] = "unset";
	struct launch sp;
	int status = 0, err = 0, r;
	char *out;

	write_file(path, line, 0755);
	r = launch(argv, environ, false, -1, false, &sp);
	is_int(r, 0, "exec fails, %s: started (the file is there)", what);
	if (r < 0)
		return;
	out = finish_named(&sp, &status, &err, interp);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 127,
	   "exec fails, %s: exit status 127", what);
	is_int(err, ENOENT, "exec fails, %s: launch_end() gives its errno",
	       what);
	is_str(interp, names, "exec fails, %s: and what its #! line names",
	       what);
	is_str(out, "", "exec fails, %s: nothing ran", what);
	free(out);
}

/* A name is looked up in PATH as execvp(3) does: past a directory of that
 * name and a file that is not executable, to the executable file. */
static void
check_path(const char *dir)
{
	char *old = getenv("PATH") ? xstrdup(getenv("PATH")) : NULL;
	char *shadow = xasprintf("%s/shadow", dir);
	char *as_dir = xasprintf("%s/shadow/mwtest-prog", dir);
	char *noexec = xasprintf("%s/noexec", dir);
	char *as_file = xasprintf("%s/noexec/mwtest-prog", dir);
	char *bin = xasprintf("%s/bin", dir);
	char *prog = xasprintf("%s/bin/mwtest-prog", dir);
	char *path = xasprintf("%s:%s/nothing:%s:%s", shadow, dir, noexec, bin);
	char *argv[] = {"mwtest-prog", NULL};
	struct launch sp;
	int status = 0, r;
	char *out = NULL;

	mkdir(shadow, 0755);
	mkdir(as_dir, 0755);
	mkdir(noexec, 0755);
	mkdir(bin, 0755);
	write_file(as_file, "echo not executable\n", 0644);
	write_file(prog, "#!/bin/sh\necho found\n", 0755);
	setenv("PATH", path, 1);
	r = launch(argv, environ, false, -1, false, &sp);
	if (r == 0)
		out = finish(&sp, &status, NULL);
	is_int(r, 0, "PATH: started");
	is_str(out, "found\n", "PATH: past a directory and a file that is "
				"not executable");
	/* Only those: refused at once, as not executable. */
	setenv("PATH", shadow, 1);
	is_int(launch(argv, environ, false, -1, false, &sp), -EACCES,
	       "PATH: only a directory of that name: EACCES");
	if (old)
		setenv("PATH", old, 1);
	else
		unsetenv("PATH");
	unlink(prog);
	unlink(as_file);
	rmdir(bin);
	rmdir(noexec);
	rmdir(as_dir);
	rmdir(shadow);
	free(out);
	free(old);
	free(shadow);
	free(as_dir);
	free(noexec);
	free(as_file);
	free(bin);
	free(prog);
	free(path);
}

int
main(void)
{
	char dir[] = "/tmp/mwtest-launch-XXXXXX", *plain, *script;
	sigset_t mask;

	/* As nohup or a shell's background job leaves them, then as
	 * mailwatch has them: signals_reset(), the loop's signals blocked. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signals_reset();
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	check_report(false, "a group of its own");
	check_report(true, "a session of its own");
	check_low_fds(1);
	check_low_fds(3);

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	plain = xasprintf("%s/plain", dir);
	write_file(plain, "", 0644);
	check_error("/nonexistent/hook", ENOENT, "a missing path");
	check_error("mailwatch-no-such-command", ENOENT, "not in PATH");
	check_error(plain, EACCES, "not executable");
	unlink(plain);
	script = xasprintf("%s/no-shebang", dir);
	check_no_shebang(script);
	check_error(dir, EACCES, "a directory");
	check_copies();
	check_path(dir);
	unlink(script);
	check_exec_fails(script, "#!/nonexistent/interpreter -x\necho ran\n",
			 "/nonexistent/interpreter", "a missing interpreter");
	check_exec_fails(script, "#! /bin/sh\r\necho ran\r\n", "/bin/sh\r",
			 "CRLF line ends");
	unlink(script);
	rmdir(dir);
	free(script);
	free(plain);
	return tap_done();
}
