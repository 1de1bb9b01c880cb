/* unseen: which messages of a selected mailbox are unseen, by sequence
 * number, so that its unseen count stays exact as flags change and
 * messages come and go. Sans-IO; fed by the connection that has the
 * mailbox selected (sequence numbers are that connection's). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* The most unseen messages counted in one mailbox (4 bytes each); with
 * more the count is left unknown. */
#define UNSEEN_MAX 1000000

struct unseen {
	uint32_t *seq;   /* ascending, no duplicates */
	size_t n, cap;
	bool known;      /* false until unseen_reset(), after unseen_forget() */
};

/* The answer to SEARCH UNSEEN: the n sequence numbers in seqs (any
 * order, duplicates allowed) are the unseen messages. */
void unseen_reset(struct unseen *u, const uint32_t *seqs, size_t n);
/* The same from an ESEARCH ALL set (n ranges). Returns false, and leaves
 * the count unknown, when it holds more than UNSEEN_MAX numbers. */
bool unseen_reset_ranges(struct unseen *u, const struct codec_range *v,
			 size_t n);
/* Message seq is (unseen) or is not (!unseen) unseen now. Returns true
 * when the count changed. Does nothing while not known. */
bool unseen_set(struct unseen *u, uint32_t seq, bool unseen);
/* Message seq was expunged: later ones move down by one. Returns true
 * when the count changed. */
bool unseen_expunge(struct unseen *u, uint32_t seq);
/* The connection ended: nothing is known until the next reset. */
void unseen_forget(struct unseen *u);
void unseen_free(struct unseen *u);
