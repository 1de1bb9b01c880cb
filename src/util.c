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
