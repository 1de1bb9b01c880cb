/* event: one new message, as the sinks see it. */
#pragma once

#include <stdint.h>

#include "codec.h"

/* All strings are UTF-8 without control characters, never NULL (empty
 * when unknown), capped in length, and owned by the event. */
struct mail_event {
	const char *account; /* borrowed from the config */
	const char *mailbox; /* borrowed; UTF-8 name */
	uint32_t uid, uidvalidity;
	char *from;         /* "Name <addr>", or "addr" when there is no name */
	char *from_name;    /* decoded display name, may be empty */
	char *from_address; /* "mailbox@host" */
	char *subject;      /* decoded */
	char *date;         /* the Date header as sent (sanitised) */
	char *message_id;   /* as sent (sanitised) */
};

/* Fills the text fields from an ENVELOPE (first From address, else Sender;
 * groups skipped; RFC 2047 decoded). Account, mailbox and UIDs are set by
 * the caller. */
void mail_event_from_envelope(struct mail_event *ev,
			      const struct codec_envelope *env);
/* Fills the text fields from a raw header block of len bytes (From, else
 * Sender; Subject; Date; Message-ID; the first of each; folded lines
 * joined; RFC 2047 decoded), for a message whose ENVELOPE was too big to
 * take. */
void mail_event_from_headers(struct mail_event *ev, const char *h,
			     size_t len);
/* From f's ENVELOPE when it has one, else from the header fields in its
 * BODY[HEADER.FIELDS ...] sections. */
void mail_event_from_fetch(struct mail_event *ev, const struct codec_fetch *f);
/* Copies src into dst with strings of its own; account and mailbox stay
 * borrowed from src's owner. */
void mail_event_copy(struct mail_event *dst, const struct mail_event *src);
/* Frees the owned strings. */
void mail_event_finish(struct mail_event *ev);
