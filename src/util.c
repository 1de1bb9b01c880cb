#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
/* Our own call site in log_atv() would be every entry's location. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

int log_max_level = LOG_INFO;
static bool log_to_journal;

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

int
spawn_piped(char *const argv[], char *const envp[], bool with_stderr,
	    bool new_session, pid_t *pid_r, int *fd_r)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, reset;
	int p[2], err;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* The child's end stays blocking: many programs fail on EAGAIN. */
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		err = errno;
		close(p[0]);
		close(p[1]);
		return -err;
	}
	/* dup2 before the open, in case the pipe got fd 0. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	if (with_stderr)
		posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
					 O_RDONLY, 0);
	/* The loop blocks the signals it handles and ignores SIGPIPE, the
	 * only disposition exec keeps (resetting just it spares the child
	 * 60-odd sigaction calls on the latency path). A group of its own
	 * lets a timeout kill whatever the child started. */
	sigemptyset(&none);
	sigemptyset(&reset);
	sigaddset(&reset, SIGPIPE);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF |
					    (new_session ? POSIX_SPAWN_SETSID
							 : POSIX_SPAWN_SETPGROUP));
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &reset);
	posix_spawnattr_setpgroup(&attr, 0);
	if (strchr(argv[0], '/'))
		err = posix_spawn(pid_r, argv[0], &fa, &attr, argv, envp);
	else
		err = posix_spawnp(pid_r, argv[0], &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[1]);
	if (err) {
		close(p[0]);
		return -err;
	}
	/* The child's exec released us half-way (vfork): the kernel now runs
	 * us on the child's CPU and the child waits until we block, which is
	 * after the bookkeeping that follows (0.3 ms here). Let it finish
	 * starting first: a new-mail hook is what the user is waiting for. */
	sched_yield();
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
