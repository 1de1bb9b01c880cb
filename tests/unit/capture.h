/* Capturing what a unit under test logs on stderr, to assert on it. */
#pragma once

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"

static int capture_saved_fd = -1;
static const char *capture_path;

/* Sends stderr to the file path (truncated) until capture_end(). */
static inline void
capture_begin(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	capture_path = path;
	fflush(stderr);
	capture_saved_fd = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Restores stderr and returns what was written to it since
 * capture_begin() (caller frees). */
static inline char *
capture_end(void)
{
	char *buf;
	long n;
	FILE *f;

	fflush(stderr);
	dup2(capture_saved_fd, STDERR_FILENO);
	close(capture_saved_fd);
	f = fopen(capture_path, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = xcalloc(1, (size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

/* Prints out as "#   | line" comment lines under a failed check. */
static inline void
dump(const char *out)
{
	const char *s = out, *nl;

	while (*s) {
		nl = strchr(s, '\n');
		if (!nl)
			nl = s + strlen(s);
		printf("#   | %.*s\n", (int)(nl - s), s);
		s = *nl ? nl + 1 : nl;
	}
}

static inline void has(const char *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checks that out (captured stderr) holds the formatted text. */
static inline void
has(const char *out, const char *fmt, ...)
{
	char want[1024];
	va_list ap;
	bool found;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	found = strstr(out, want) != NULL;
	ok(found, "stderr has \"%s\"", want);
	if (!found)
		dump(out);
}
