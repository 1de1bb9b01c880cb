/* Capturing what a unit under test logs on stderr, to assert on it. */
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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
