/* sasl: the messages of the OAuth2 SASL mechanisms, sans-IO. The client's
 * response of OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's, also
 * Microsoft's), and what a server's error challenge says when it refuses
 * a token: base64 of a JSON object such as {"status":"401",...} (XOAUTH2)
 * or {"status":"invalid_token",...} (OAUTHBEARER). */
#pragma once

#include <stddef.h>

#include "codec.h"

enum sasl_mech { SASL_OAUTHBEARER, SASL_XOAUTH2 };

/* "OAUTHBEARER" or "XOAUTH2". */
const char *sasl_mech_name(enum sasl_mech m);

/* Appends the base64 initial response of m for user and token to b, no
 * CRLF. The plain message is built in a buffer wiped before it is freed;
 * b holds the token then, for the caller to wipe. */
void sasl_oauth_response(struct codec_buf *b, enum sasl_mech m,
			 const char *user, const char *token);

/* The most bytes of a decoded error challenge kept for the log. */
#define SASL_ERROR_MAX 512

/* What an error challenge said. */
struct sasl_error {
	/* The decoded JSON, control characters and non-ASCII bytes shown
	 * as '?', cut at SASL_ERROR_MAX bytes. */
	char json[SASL_ERROR_MAX + 1];
	/* Its top-level "status" member (a string or a number), cut at 63
	 * bytes; "" when there is none. */
	char status[64];
};

/* Decodes the challenge text (len bytes of base64, padding optional) into
 * *e. Returns 0, or -EINVAL when text is not base64 (e is then empty). At
 * most 4 * SASL_ERROR_MAX bytes of text are read: the rest is ignored. */
int sasl_oauth_error(const char *text, size_t len, struct sasl_error *e);
