/* copies: the messages an account announced last, to know a copy of one
 * when it shows up in another mailbox (a Gmail label is a mailbox that
 * holds the same message as INBOX; a client's filter moves a message from
 * INBOX to a folder after it was announced), or again in the same one.
 * A copy is a message with the same Message-ID, sender address and
 * subject as one of the last COPIES_MAX announced; a message without a
 * Message-ID is never one. Only a digest of those is kept, with where the
 * message was announced. Sans-IO; in memory only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "event.h"

#define COPIES_MAX 512

struct copies;

/* Where a message was announced. */
struct copy_origin {
	const char *mailbox; /* borrowed, valid until the next copies_*() */
	uint32_t uidvalidity, uid;
};

struct copies *copies_new(void);
void copies_free(struct copies **c);
/* True when ev (announced in ev->mailbox) is a copy of a message
 * announced before: *orig then says where. Else remembers ev, forgetting
 * the oldest beyond COPIES_MAX, and returns false; also when ev is the
 * very message remembered (same mailbox, UIDVALIDITY and UID). */
bool copies_check(struct copies *c, const struct mail_event *ev,
		  struct copy_origin *orig);
