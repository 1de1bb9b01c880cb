/* libFuzzer target for logging server text: arbitrary bytes go through
 * log_escape() into buffers of every small size (allocated exactly, so
 * that ASan sees an overrun), and through log_at() as a server's ALERT,
 * the way a greeting or a status response reaches the log. Output goes to
 * /dev/null. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1, saved = -1;
	char *text, *out;
	size_t n, got;

	if (devnull < 0) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		saved = dup(STDERR_FILENO);
		if (devnull < 0 || saved < 0)
			abort();
	}
	if (!size)
		return 0;
	/* The first byte picks the buffer size, the rest is the text. */
	n = 1 + data[0] % 64 + (data[0] & 0x80 ? 4000 : 0);
	text = xstrndup((const char *)data + 1, size - 1);
	out = xmalloc(n);
	got = log_escape(text, out, n);
	if (got >= n || strlen(out) != got)
		abort();
	free(out);
	/* The log lines go to /dev/null, libFuzzer's own to stderr. */
	log_max_level = LOG_DEBUG;
	fflush(stderr);
	dup2(devnull, STDERR_FILENO);
	log_warn(&(struct log_ctx){"acct", "INBOX"}, "server alert: %s", text);
	log_debug(NULL, "S: %s", text);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	free(text);
	return 0;
}
