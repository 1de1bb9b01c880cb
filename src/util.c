#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* Our own call site in log_atv() would be every entry's location. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

int log_max_level = LOG_INFO;
unsigned log_warnings;
static bool log_to_journal;
/* stderr is a terminal: lines get the time and, above info, the level. */
static bool log_to_tty;

static void *
check(void *p)
{
	if (!p) {
		fputs("mailwatch: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *
xmalloc(size_t n)
{
	return check(malloc(n ? n : 1));
}

void *
xcalloc(size_t n, size_t size)
{
	return check(calloc(n ? n : 1, size ? size : 1));
}

void *
xrealloc(void *p, size_t n)
{
	return check(realloc(p, n ? n : 1));
}

char *
xstrdup(const char *s)
{
	return check(strdup(s));
}

char *
xstrndup(const char *s, size_t n)
{
	return check(strndup(s, n));
}

void
wipe(void *p, size_t n)
{
	if (p)
		explicit_bzero(p, n);
}

void
signals_reset(void)
{
	struct sigaction sa;

	/* glibc refuses its own signals (32 and 33): those stay. */
	for (int sig = 1; sig < NSIG; sig++)
		if (!sigaction(sig, NULL, &sa) && sa.sa_handler == SIG_IGN)
			signal(sig, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
}

/* The child of spawn_piped(), between vfork() and exec: it shares the
 * parent's memory and runs on its stack, so it calls only what is safe
 * there (async-signal-safe functions, and execvpe(), as glibc's own
 * posix_spawnp() does) and never returns. A failure is left in *err_r,
 * which the parent reads once vfork() returns, and ends the child. */
static _Noreturn void
exec_child(char *const argv[], char *const envp[], int out, bool with_stderr,
	   int err_fd, bool new_session, volatile int *err_r)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int null;

	/* A group of its own lets a timeout kill whatever it started. */
	if ((new_session ? setsid() : setpgid(0, 0)) < 0)
		goto fail;
	/* Its end of the pipe blocks: many programs fail on EAGAIN. dup2
	 * clears close-on-exec, but does nothing when the pipe already is
	 * stdout (or stderr): then it is cleared here. */
	if (fcntl(out, F_SETFL, 0) < 0 ||
	    ((out == STDOUT_FILENO || (with_stderr && out == STDERR_FILENO)) &&
	     fcntl(out, F_SETFD, 0) < 0))
		goto fail;
	if (dup2(out, STDOUT_FILENO) < 0 ||
	    (with_stderr && dup2(out, STDERR_FILENO) < 0) ||
	    (err_fd > STDERR_FILENO && dup2(err_fd, STDERR_FILENO) < 0))
		goto fail;
	/* stdin last: stdout and stderr hold their fds, whichever the open
	 * gets (fd 0 may be our end of the pipe). */
	null = open("/dev/null", O_RDONLY);
	if (null < 0 || (null != STDIN_FILENO &&
			 (dup2(null, STDIN_FILENO) < 0 || close(null) < 0)))
		goto fail;
	/* The loop blocks the signals it handles and ignores SIGPIPE (see
	 * signals_reset()), the only disposition exec keeps. */
	sigemptyset(&none);
	if (sigaction(SIGPIPE, &dfl, NULL) < 0 ||
	    sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;
	/* Looks argv[0] up in PATH when it has no '/'; an executable without
	 * "#!" runs under /bin/sh, as execvp(3) has it. */
	execvpe(argv[0], argv, envp);
fail:
	*err_r = errno;
	_exit(127);
}

int
spawn_piped(char *const argv[], char *const envp[], bool with_stderr,
	    bool new_session, pid_t *pid_r, int *fd_r)
{
	return spawn_piped_err(argv, envp, with_stderr, -1, new_session, pid_r,
			       fd_r);
}

int
spawn_piped_err(char *const argv[], char *const envp[], bool with_stderr,
		int err_fd, bool new_session, pid_t *pid_r, int *fd_r)
{
	volatile int err = 0;
	pid_t pid;
	int p[2];

	/* Each end has its own O_NONBLOCK: the child clears its end's. */
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	/* vfork, not posix_spawn: the same start without the 9 system calls
	 * glibc's adds in the parent per child (the file actions' getrlimit
	 * calls, the child's stack, the signal mask around the clone), a
	 * third of what starting a hook costs mailwatch. Nothing runs in
	 * the parent until the child exec'd or exited. */
	pid = vfork();
	if (pid == 0)
		exec_child(argv, envp, p[1], with_stderr, err_fd, new_session,
			   &err);
	if (pid < 0)
		err = errno;
	close(p[1]);
	if (pid > 0 && err)
		(void)waitpid(pid, NULL, 0);
	if (err) {
		close(p[0]);
		return -err;
	}
	*pid_r = pid;
	*fd_r = p[0];
	return 0;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return check(s);
}

/* True when stderr is the journal stream systemd gave us (JOURNAL_STREAM
 * holds "dev:ino" of that stream). */
static bool
stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void
log_init(void)
{
	log_to_journal = stderr_is_journal();
	log_to_tty = !log_to_journal && isatty(STDERR_FILENO);
}

/* Bytes at p that log_escape() writes as \xNN: 1 for a control
 * character, 3 for a bidi override (U+202A..U+202E, U+2066..U+2069), 0
 * for anything else. Reads p[1] and p[2] only when the bytes before them
 * are not NUL. */
static size_t
escaped_len(const unsigned char *p)
{
	if (*p < 0x20 || *p == 0x7f)
		return 1;
	if (p[0] == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
			     (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)))
		return 3;
	return 0;
}

size_t
log_escape(const char *s, char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	if (!n)
		return 0;
	while (*p) {
		size_t esc = escaped_len(p);
		/* What this character takes in out, all or nothing. */
		size_t need = esc ? 4 * esc : 1;

		if (need >= n - o)
			break;
		if (!esc) {
			out[o++] = *p++;
			continue;
		}
		for (size_t i = 0; i < esc; i++, p++) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = 0;
	return o;
}

void
log_atv(int prio, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
	char raw[2048], msg[4096], prefix[512] = "";

	if (prio > log_max_level)
		return;
	if (prio == LOG_WARNING)
		log_warnings++;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	log_escape(raw, msg, sizeof(msg));
	if (ctx && ctx->account && ctx->mailbox)
		snprintf(prefix, sizeof(prefix), "%s/%s: ", ctx->account,
			 ctx->mailbox);
	else if (ctx && ctx->account)
		snprintf(prefix, sizeof(prefix), "%s: ", ctx->account);

	if (log_to_journal) {
		/* Structured: the account and mailbox as fields of their own,
		 * left out when the line is not about one. */
		char *f[5];
		struct iovec iov[5];
		int n = 0;

		f[n++] = xasprintf("MESSAGE=%s%s", prefix, msg);
		f[n++] = xasprintf("PRIORITY=%d", prio);
		f[n++] = xstrdup("SYSLOG_IDENTIFIER=mailwatch");
		if (ctx && ctx->account)
			f[n++] = xasprintf("MAILWATCH_ACCOUNT=%s", ctx->account);
		if (ctx && ctx->mailbox)
			f[n++] = xasprintf("MAILWATCH_MAILBOX=%s", ctx->mailbox);
		for (int i = 0; i < n; i++)
			iov[i] = (struct iovec){f[i], strlen(f[i])};
		int r = sd_journal_sendv(iov, n);

		for (int i = 0; i < n; i++)
			free(f[i]);
		if (r >= 0)
			return;
	}
	if (log_to_tty) {
		time_t now = time(NULL);
		struct tm tm;
		char hms[16] = "";

		if (localtime_r(&now, &tm))
			strftime(hms, sizeof(hms), "%H:%M:%S ", &tm);
		fprintf(stderr, "%smailwatch: %s%s%s\n", hms,
			prio <= LOG_ERR	      ? "error: "
			: prio == LOG_WARNING ? "warning: "
					      : "",
			prefix, msg);
		return;
	}
	fprintf(stderr, "mailwatch: %s%s\n", prefix, msg);
}

void
log_at(int prio, const struct log_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_atv(prio, ctx, fmt, ap);
	va_end(ap);
}

int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}
