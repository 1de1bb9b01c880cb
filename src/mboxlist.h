/* mboxlist: which mailboxes of an account are watched, when the
 * configuration names them with patterns ("*", "Lists/%") as well as
 * plain names. Sans-IO and pure: fed what the server's LIST returned, it
 * returns the names to watch. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "codec.h"

/* Bits of what a LIST response's attributes say of a mailbox. */
enum {
	MBOXLIST_NOSELECT = 1 << 0, /* \Noselect or \NonExistent */
	/* Special use (RFC 6154, RFC 8457) of a mailbox a pattern leaves
	 * out: where mail goes that is not new to its owner (\Trash,
	 * \Junk, \Sent, \Drafts), or a view that repeats other mailboxes'
	 * messages (\All, \Flagged, \Important: Gmail's "All Mail",
	 * "Starred" and "Important"). */
	MBOXLIST_SKIPPED_USE = 1 << 1,
};

/* One mailbox the server listed. */
struct mboxlist_entry {
	char *name;	/* UTF-8 */
	char delimiter; /* hierarchy delimiter, 0 for none */
	unsigned attrs; /* MBOXLIST_* bits */
};

/* True when s is a pattern (holds '*' or '%'), not a plain name. */
bool mboxlist_is_pattern(const char *s);
/* True when name (UTF-8) matches pattern as IMAP LIST matches it with an
 * empty reference (RFC 3501 6.3.8): '*' matches anything, '%' anything
 * but the hierarchy delimiter delim; the rest is compared byte for byte,
 * but for INBOX, which matches in any case (also as the first level of a
 * name such as "inbox/x"). */
bool mboxlist_match(const char *pattern, const char *name, char delim);
/* The MBOXLIST_* bits of a LIST response's attributes. */
unsigned mboxlist_attrs(const struct codec_strlist *attrs);

/* True when pattern matches the name of one of the n_listed mailboxes,
 * whatever its attributes: false for a pattern that can only be
 * misspelled. */
bool mboxlist_any_match(const char *pattern,
			const struct mboxlist_entry *listed, size_t n_listed);

/* The mailboxes to watch, given want (the configured names and patterns,
 * in order), ignore (patterns) and the n_listed mailboxes the server
 * listed: each plain name of want as it is (listed or not), and for each
 * pattern the listed mailboxes that match it, but not those that cannot
 * be selected, have a skipped special use, match a pattern of ignore, or
 * were taken already; a pattern's matches in byte order of their names.
 * INBOX, when taken, comes first. Returns a NULL-terminated array of
 * borrowed pointers into want and listed (caller frees the array only)
 * and its length in *n_r. */
const char **mboxlist_select(char *const *want, size_t n_want,
			     char *const *ignore, size_t n_ignore,
			     const struct mboxlist_entry *listed,
			     size_t n_listed, size_t *n_r);
