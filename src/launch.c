/* launch: see launch.h.
 *
 * The new process is made with clone(CLONE_VM) without CLONE_VFORK: until
 * its execve() it runs in our memory, on a stack of its own, while we go
 * on. vfork(), and glibc's posix_spawn() that uses it, puts the caller to
 * sleep until the exec and wakes it then: two context switches per hook,
 * which cost mailwatch a third of its CPU time in a burst of 10,000 hooks
 * (bench/README.md).
 *
 * Sharing our memory while we run takes three rules:
 * - The child calls no libc function: glibc's system call wrappers set
 *   errno, which is ours (the child has our thread-local storage), and we
 *   may be about to read it. It makes its few system calls itself
 *   (sys()), and has nothing to look up: we found the path in PATH and
 *   laid out its argv, envp, and the argv that runs a script without
 *   "#!" under /bin/sh (execve's ENOEXEC).
 * - What it reads is its own: one block (struct launch_lent) holds its
 *   stack and copies of argv and envp, so the caller may free its own at
 *   once.
 * - The block is freed only once the kernel says the child left our
 *   memory: CLONE_CHILD_CLEARTID has it zero lent->tid at the exec or the
 *   exit, and wake a futex on it.
 *
 * The path is looked up here, before the start, also so that the usual
 * mistakes (not found, not executable) are told at once.
 *
 * Where sys() has no code for the architecture, vfork() starts the same
 * child, with syscall(2): errno is free to use while we sleep. */
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* The child's stack: it calls nothing but sys(), but a signal frame
 * (of a sanitizer's handler, say) takes a few KiB. */
#define CHILD_STACK 8192

struct launch_lent {
	pid_t tid;  /* nonzero until the child exec'd or exited */
	int err;    /* errno of a failed exec, from the child */
	char *path; /* argv[0] found */
	char **argv, **envp;
	char **sh_argv;	 /* "/bin/sh", path, argv[1]...: for ENOEXEC */
	int out, err_fd; /* see launch() */
	bool with_stderr, new_session;
	char stack[CHILD_STACK];
	alignas(char *) char data[]; /* argv, envp, sh_argv, strings */
};

#if defined(__x86_64__)
#define LAUNCH_SHARED 1
static inline long
sys(long n, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
#define LAUNCH_SHARED 1
static inline long
sys(long n, long a, long b, long c, long d)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;

	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
			 : "memory", "cc");
	return x0;
}
#else
#define LAUNCH_SHARED 0
static long
sys(long n, long a, long b, long c, long d)
{
	long r = syscall(n, a, b, c, d);

	return r < 0 ? -errno : r;
}
#endif

/* Gives the child fd `from` as `to`, open across the exec. */
__attribute__((no_sanitize("address", "undefined"))) static long
child_move(int from, int to)
{
	if (from == to)
		return sys(SYS_fcntl, to, F_SETFD, 0, 0);
	return sys(SYS_dup3, from, to, 0, 0);
}

/* The child, until its exec: system calls only (see above), on lent's
 * stack. A failure is left in lent->err and ends it with status 127. */
__attribute__((no_sanitize("address", "undefined"))) static int
child_main(void *arg)
{
	struct launch_lent *l = arg;
	/* A struct sigaction of the kernel's, whatever its layout on this
	 * architecture: SIG_DFL, no flags, nothing masked. */
	unsigned long dfl[4] = {0};
	uint64_t none = 0; /* the kernel's sigset_t */
	long r, null;

	/* A group of its own lets a timeout kill whatever it started. */
	r = l->new_session ? sys(SYS_setsid, 0, 0, 0, 0)
			   : sys(SYS_setpgid, 0, 0, 0, 0);
	/* Its end of the pipe blocks: many programs fail on EAGAIN. */
	if (r >= 0)
		r = sys(SYS_fcntl, l->out, F_SETFL, 0, 0);
	if (r >= 0)
		r = child_move(l->out, STDOUT_FILENO);
	if (r >= 0 && l->with_stderr)
		r = child_move(l->out, STDERR_FILENO);
	if (r >= 0 && l->err_fd > STDERR_FILENO)
		r = child_move(l->err_fd, STDERR_FILENO);
	/* stdin last: stdout and stderr hold their fds, whichever the open
	 * gets (fd 0 may be our end of the pipe). */
	if (r >= 0)
		r = null =
		    sys(SYS_openat, AT_FDCWD, (long)"/dev/null", O_RDONLY, 0);
	if (r >= 0 && null != STDIN_FILENO) {
		r = sys(SYS_dup3, null, STDIN_FILENO, 0, 0);
		if (r >= 0)
			r = sys(SYS_close, null, 0, 0, 0);
	}
	/* The loop blocks the signals it handles and ignores SIGPIPE (see
	 * signals_reset()), the only disposition exec keeps. */
	if (r >= 0)
		r = sys(SYS_rt_sigaction, SIGPIPE, (long)dfl, 0, sizeof(none));
	if (r >= 0)
		r = sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0,
			sizeof(none));
	if (r >= 0) {
		r = sys(SYS_execve, (long)l->path, (long)l->argv, (long)l->envp,
			0);
		if (r == -ENOEXEC)
			r = sys(SYS_execve, (long)l->sh_argv[0],
				(long)l->sh_argv, (long)l->envp, 0);
	}
	l->err = (int)-r;
	sys(SYS_exit_group, 127, 0, 0, 0);
	return 127;
}

/* 0 when path is an executable file, else a negative errno: what
 * execve() would say (EACCES for a directory too). */
static int
runnable(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	return access(path, X_OK) < 0 ? -errno : 0;
}

int
launch_find(const char *file, char *buf, size_t size)
{
	const char *p = getenv("PATH");
	bool denied = false;

	if (!*file)
		return -ENOENT;
	if (strchr(file, '/')) {
		if ((size_t)snprintf(buf, size, "%s", file) >= size)
			return -ENAMETOOLONG;
		return runnable(buf);
	}
	for (p = p ? p : "/bin:/usr/bin";; p++) {
		const char *end = strchrnul(p, ':');
		int dir = (int)(end - p);
		int n = snprintf(buf, size, "%.*s%s%s", dir, p, dir ? "/" : "",
				 file);

		if (n > 0 && (size_t)n < size) {
			int r = runnable(buf);

			if (r == 0)
				return 0;
			denied |= r == -EACCES;
		}
		p = end;
		if (!*p)
			return denied ? -EACCES : -ENOENT;
	}
}

/* Copies s to *at, moving it on; returns the copy. */
static char *
lend(char **at, const char *s)
{
	size_t n = strlen(s) + 1;
	char *copy = memcpy(*at, s, n);

	*at += n;
	return copy;
}

/* The block the child reads: argv and envp copied, argv[0] as found. */
static struct launch_lent *
lent_new(const char *path, char *const argv[], char *const envp[])
{
	size_t argc = 0, envc = 0, bytes = strlen(path) + 1;
	struct launch_lent *l;
	char *at;

	for (; argv[argc]; argc++)
		bytes += strlen(argv[argc]) + 1;
	for (; envp[envc]; envc++)
		bytes += strlen(envp[envc]) + 1;
	l = xmalloc(sizeof(*l) +
		    (argc + 1 + envc + 1 + argc + 2) * sizeof(char *) + bytes);
	l->argv = (char **)l->data;
	l->envp = l->argv + argc + 1;
	l->sh_argv = l->envp + envc + 1;
	at = (char *)(l->sh_argv + argc + 2);
	l->path = lend(&at, path);
	for (size_t i = 0; i < argc; i++)
		l->argv[i] = lend(&at, argv[i]);
	l->argv[argc] = NULL;
	for (size_t i = 0; i < envc; i++)
		l->envp[i] = lend(&at, envp[i]);
	l->envp[envc] = NULL;
	l->sh_argv[0] = (char *)"/bin/sh";
	l->sh_argv[1] = l->path;
	for (size_t i = 1; i <= argc; i++)
		l->sh_argv[i + 1] = l->argv[i];
	l->err = 0;
	/* Until the kernel clears it. */
	l->tid = -1;
	return l;
}

#if LAUNCH_SHARED
/* Starts the child on l; returns its pid and its pidfd in *pidfd_r, or -1
 * and errno. */
static pid_t
start(struct launch_lent *l, int *pidfd_r)
{
	/* The stack grows down, from a 16-byte boundary. */
	void *top =
	    (void *)((uintptr_t)(l->stack + CHILD_STACK) & ~(uintptr_t)15);

	return clone(child_main, top,
		     CLONE_VM | CLONE_PIDFD | CLONE_CHILD_CLEARTID | SIGCHLD, l,
		     pidfd_r, NULL, &l->tid);
}
#else
static pid_t
start(struct launch_lent *l, int *pidfd_r)
{
	pid_t pid = vfork();
	int err;

	if (pid == 0)
		child_main(l);
	/* Back here after its exec or exit. */
	l->tid = 0;
	if (pid > 0 && (*pidfd_r = pidfd_open(pid, 0)) < 0) {
		err = errno;
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		errno = err;
		return -1;
	}
	return pid;
}
#endif

int
launch(char *const argv[], char *const envp[], bool with_stderr, int err_fd,
       bool new_session, struct launch *s)
{
	char path[PATH_MAX];
	struct launch_lent *l;
	int p[2], pidfd = -1, r;
	pid_t pid;

	r = launch_find(argv[0], path, sizeof(path));
	if (r < 0)
		return r;
	/* Each end has its own O_NONBLOCK: the child clears its end's. */
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	l = lent_new(path, argv, envp);
	l->out = p[1];
	l->err_fd = err_fd;
	l->with_stderr = with_stderr;
	l->new_session = new_session;
	pid = start(l, &pidfd);
	r = pid < 0 ? -errno : 0;
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		free(l);
		return r;
	}
	*s = (struct launch){.pid = pid, .pidfd = pidfd, .fd = p[0], .lent = l};
	return 0;
}

/* What the "#!" line of the file at path names (its first word, up to n
 * - 1 bytes, a carriage return included) into buf; "" when it has none. */
static void
interpreter(const char *path, char *buf, size_t n)
{
	char head[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd < 0 ? -1 : read(fd, head, sizeof(head) - 1);
	size_t at = 2, len;

	if (fd >= 0)
		close(fd);
	buf[0] = 0;
	if (got < 2 || head[0] != '#' || head[1] != '!')
		return;
	head[got] = 0;
	at += strspn(head + at, " \t");
	len = strcspn(head + at, " \t\n");
	if (len >= n)
		len = n - 1;
	memcpy(buf, head + at, len);
	buf[len] = 0;
}

int
launch_end(struct launch *s, char *interp, size_t n)
{
	struct launch_lent *l = s->lent;
	pid_t tid;
	int err;

	if (interp && n)
		interp[0] = 0;
	if (!l)
		return 0;
	while ((tid = __atomic_load_n(&l->tid, __ATOMIC_ACQUIRE)) != 0)
		(void)syscall(SYS_futex, &l->tid, FUTEX_WAIT, tid, NULL, NULL,
			      0);
	err = l->err;
	if (err && interp && n)
		interpreter(l->path, interp, n);
	free(l);
	s->lent = NULL;
	return err;
}
