/* util: allocation wrappers that abort on failure, and logging. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <syslog.h>

/* Allocation failure aborts: inputs are bounded instead. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string (caller frees). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value of a hex digit (either case), or -1. */
int hex_value(unsigned char c);
/* The value of a base64 digit (RFC 4648: A-Z a-z 0-9 + /), or -1. */
int base64_value(unsigned char c);

/* explicit_bzero() that accepts NULL (with n 0): for secrets. */
void wipe(void *p, size_t n);

/* Sets every ignored signal back to its default, then ignores SIGPIPE (a
 * write to a closed connection returns EPIPE). An ignored signal is
 * inherited through exec (nohup ignores SIGHUP, a non-interactive shell's
 * background job SIGINT and SIGQUIT): an ignored SIGCHLD would have the
 * kernel reap the hooks before their status is known, and the hooks would
 * inherit the others, where launch() resets only SIGPIPE. */
void signals_reset(void);

/* Frees *p and sets it to NULL. */
#define freep(p)                                                               \
	do {                                                                   \
		free(*(p));                                                    \
		*(p) = NULL;                                                   \
	} while (0)

/* Who a log line is about; either field may be NULL. Borrowed. */
struct log_ctx {
	const char *account;
	const char *mailbox;
};

/* Messages above this syslog priority (LOG_ERR..LOG_DEBUG) are dropped. */
extern int log_max_level;
/* Warnings written so far (for --check-config's verdict). */
extern unsigned log_warnings;

/* Detects journald (JOURNAL_STREAM) and chooses structured entries through
 * sd-journal, else plain lines on stderr: on a terminal with the time and,
 * for warnings and errors, the level ("12:00:01 mailwatch: warning: ..."). */
void log_init(void);

/* Copies the NUL-terminated s into out (n bytes, always NUL-terminated
 * when n > 0) with control characters and the Unicode bidi overrides
 * written as \xNN, so that text from servers and mail cannot rewrite a
 * terminal or reorder a log line. Stops before a character whose escape
 * does not fit. Returns the length written, at most n - 1. */
size_t log_escape(const char *s, char *out, size_t n);

/* Logs at prio with "account/mailbox: " as prefix when ctx names them. */
void log_at(int prio, const struct log_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_atv(int prio, const struct log_ctx *ctx, const char *fmt,
	     va_list ap) __attribute__((format(printf, 3, 0)));

#define log_err(ctx, ...) log_at(LOG_ERR, ctx, __VA_ARGS__)
#define log_warn(ctx, ...) log_at(LOG_WARNING, ctx, __VA_ARGS__)
#define log_info(ctx, ...) log_at(LOG_INFO, ctx, __VA_ARGS__)
#define log_debug(ctx, ...)                                                    \
	do {                                                                   \
		if (log_max_level >= LOG_DEBUG)                                \
			log_at(LOG_DEBUG, ctx, __VA_ARGS__);                   \
	} while (0)
