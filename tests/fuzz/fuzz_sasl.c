/* libFuzzer target for an OAuth2 server's error challenge: the bytes go
 * to sasl_oauth_error() from an allocation of their exact size (so that
 * ASan sees a read past them), and, as the text of a "+ " continuation,
 * to a session logging in with XOAUTH2 or OAUTHBEARER (bit 0 of the
 * first byte), the way a server's challenge reaches it. The decoded JSON
 * must stay within SASL_ERROR_MAX printable bytes and the status within
 * its buffer; the session must answer or fail, never crash. Log lines go
 * to /dev/null. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sasl.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
selected(void *ud, const struct session_selected *sel, bool *by_date_r)
{
	(void)ud;
	*by_date_r = false;
	return sel->uidnext;
}

static void
nothing(void *ud)
{
	(void)ud;
}

static void
failed(void *ud, enum session_fail why, const char *msg)
{
	(void)ud;
	(void)why;
	if (strlen(msg) > 511)
		abort();
}

static const struct session_cb cb = {
    .selected = selected,
    .idle = nothing,
    .batch_end = nothing,
    .failed = failed,
};

static void
check_decoding(const char *text, size_t n)
{
	struct sasl_error e;

	if (sasl_oauth_error(text, n, &e) < 0)
		return;
	if (strlen(e.json) > SASL_ERROR_MAX || strlen(e.status) >= 64)
		abort();
	for (const char *p = e.json; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			abort();
}

/* The greeting and login, then the input as a challenge, then the NO. */
static const char before[] = "* OK [CAPABILITY IMAP4rev1 SASL-IR "
			     "AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n+ ";
static const char after[] = "\r\nm1 NO [AUTHENTICATIONFAILED] no\r\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1, saved = -1;
	struct session_opts o = {
	    .username = "alice",
	    .password = "token",
	    .oauth2 = true,
	    .mailbox = "INBOX",
	    .idle_timeout = 1500,
	    .poll_interval = 60,
	    .command_timeout = 30,
	};
	struct session *s;
	char *text;

	if (devnull < 0) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		saved = dup(STDERR_FILENO);
		if (devnull < 0 || saved < 0)
			abort();
	}
	if (!size)
		return 0;
	text = malloc(size - 1 ? size - 1 : 1);
	memcpy(text, data + 1, size - 1);
	check_decoding(text, size - 1);
	free(text);

	o.auth = data[0] & 1 ? AUTH_OAUTHBEARER : AUTH_XOAUTH2;
	fflush(stderr);
	dup2(devnull, STDERR_FILENO);
	s = session_new(&o, &cb, NULL);
	session_feed(s, before, sizeof(before) - 1, 0);
	session_feed(s, (const char *)data + 1, size - 1, 0);
	session_feed(s, after, sizeof(after) - 1, 0);
	session_free(&s);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	return 0;
}
