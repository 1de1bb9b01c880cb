/* state: per account and mailbox, the UIDVALIDITY and the highest UID
 * handled, in $XDG_STATE_HOME/mailwatch/ (else ~/.local/state/mailwatch/),
 * one small file each, mode 0600, replaced atomically (temporary file,
 * fsync, rename). Blocking file I/O of a few bytes. */
#pragma once

#include <stdint.h>

/* Reads the state of account/mailbox. Returns 1 and sets *uidvalidity_r
 * and *uid_r when there is state, 0 when there is none, and 0 after
 * logging a warning when the file is corrupt or foreign (it is then
 * treated as absent). */
int state_load(const char *account, const char *mailbox,
	       uint32_t *uidvalidity_r, uint32_t *uid_r);
/* Writes the state; returns 0 or a negative errno after logging why. */
int state_save(const char *account, const char *mailbox, uint32_t uidvalidity,
	       uint32_t uid);
/* The state directory (created 0700 if missing); caller frees. NULL
 * after logging when neither XDG_STATE_HOME nor HOME is set. */
char *state_dir(void);
