/* state: per account and mailbox, what mailwatch knows of the mailbox
 * between runs: its UIDVALIDITY, the highest UID handled, and when it was
 * last seen whole and how many messages it held then. Kept in
 * $XDG_STATE_HOME/mailwatch/ (else ~/.local/state/mailwatch/), one small
 * file each, mode 0600, replaced atomically and durably (temporary file,
 * fdatasync, rename, fsync of the directory). The file holds the account
 * and mailbox names it belongs to. Blocking file I/O of a few bytes. */
#pragma once

#include <stdint.h>

/* What the state file says of one mailbox. */
struct state {
	uint32_t uidvalidity; /* never 0 in a file */
	uint32_t uid;         /* every UID up to this one was handled */
	/* Wall-clock seconds since the epoch at which every message in the
	 * mailbox had been handled, and how many it held then. A file of
	 * version 1 loads with its modification time and 1 (not known to be
	 * empty). */
	int64_t seen;
	uint32_t messages;
};

/* Reads the state of account/mailbox into *st. Returns 1 when there is
 * state, 0 when there is none, and 0 after logging a warning when the
 * file is corrupt, foreign or another mailbox's (it is then treated as
 * absent). */
int state_load(const char *account, const char *mailbox, struct state *st);
/* Writes the state; returns 0 or a negative errno after logging why. */
int state_save(const char *account, const char *mailbox,
	       const struct state *st);
/* The state directory (created 0700 if missing); caller frees. NULL
 * after logging when neither XDG_STATE_HOME nor HOME is set. */
char *state_dir(void);
/* The name of account/mailbox's file in a directory whose names may be
 * name_max bytes long; caller frees. "ACCOUNT.MAILBOX" with every byte
 * other than [A-Za-z0-9_-] (and '.' in the account) as %XX; when that, or
 * a temporary file next to it, would be too long, its start, '~' and a
 * hash of both names. */
char *state_file_name(const char *account, const char *mailbox,
		      long name_max);
