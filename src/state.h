/* state: what mailwatch knows of each mailbox of an account between runs:
 * its UIDVALIDITY, the highest UID handled, and when it was last seen
 * whole and how many messages it held then. Kept in
 * $XDG_STATE_HOME/mailwatch/ (else ~/.local/state/mailwatch/), one file per
 * account holding every mailbox's state (state_account_file_name()), mode
 * 0600, replaced whole, atomically and durably (temporary file, fdatasync,
 * rename, fsync of the directory).
 *
 * A store is that file in memory: read once when the account starts
 * (state_store_new()), asked and told each mailbox's state without any
 * I/O (state_store_get(), state_store_put()), and written by its owner
 * when it is dirty (state_store_write()), at most once a second in a
 * burst: one fdatasync and two fsyncs whatever the number of mailboxes
 * that moved. Entries of mailboxes no longer watched are kept, so that
 * one watched again does not announce its old mail again.
 *
 * The file:
 *
 *     mailwatch-state 5
 *     account ACCOUNT
 *     server HOST USER
 *     mailbox UIDVALIDITY UID SEEN MESSAGES MODSEQ NAME
 *     ...
 *
 * one mailbox line per mailbox, sorted by name, NAME last (it may hold
 * spaces) and, like ACCOUNT, HOST and USER, with controls, DEL and '%' as
 * %XX. A corrupt mailbox line is skipped with a warning (the others
 * load); a file that is not a state file of this version, another
 * account's, or this account name's for another host or user (the name
 * was used for another account before) is ignored with a warning, as is
 * one that cannot be read: its mailboxes start afresh. At most
 * STATE_FILE_MAX bytes are read. A file of version 4 (the same without
 * the server line) is taken as this host's and user's, and one of
 * version 3 (also without MODSEQ) as one whose MODSEQ is 0.
 *
 * Earlier versions kept one file per mailbox (state_file_name(), formats
 * "mailwatch-state 1" and "2"): a mailbox missing from the account file
 * is read from there, and that file is removed once the account file
 * holding its state was written durably. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The most bytes of an account file read: tens of thousands of
 * mailboxes. */
#define STATE_FILE_MAX (4 << 20)

/* What the state says of one mailbox. */
struct state {
	uint32_t uidvalidity; /* never 0 in a file */
	uint32_t uid;         /* every UID up to this one was handled */
	/* Wall-clock seconds since the epoch at which every message in the
	 * mailbox had been handled, and how many it held then. A state put
	 * without a seen time is stored with the time of the put and 1 (not
	 * known to be empty), as a per-mailbox file of version 1 loads with
	 * its modification time and 1. */
	int64_t seen;
	uint32_t messages;
	/* The highest HIGHESTMODSEQ (CONDSTORE) the server gave under
	 * uidvalidity, 0: not known. Mod-sequences only grow: one below it
	 * tells that the server was restored from a backup. A put that
	 * changes only this makes the store dirty too; one above 2^63 - 1
	 * (beyond RFC 7162's 63 bits) is stored as that. */
	uint64_t modseq;
	/* Not in the file: the highest UID announced by this process. It is
	 * above uid while a sink still holds one of those messages back (uid
	 * stays below such a message, so that a kill loses none). A mailbox
	 * watched again within the process (its account restarted by a
	 * reload, or listed again) resumes from here, so that nothing is
	 * announced twice. At least uid in what state_store_get() gives;
	 * below uid (0) in a put means uid. The file keeps the highest of
	 * it and owed.
	 */
	uint32_t announced;
	/* From the file: what the run that wrote it had announced (at least
	 * uid). The messages above uid up to it came while that run watched,
	 * and their hooks had not run when it was killed: they are
	 * announced one by one again, not as mail that came while away
	 * (catch_up). Kept by a put of the same uidvalidity. */
	uint32_t owed;
	/* Wall-clock seconds up to which the mail of the mailbox came while
	 * mailwatch watched it: that of a later INTERNALDATE came while
	 * away; that of this one or earlier, and not before seen, was not
	 * handled yet (a checked mailbox's since its last check) but came
	 * while watched (0: not known). */
	int64_t watched;
};

struct state_store;

/* Reads the state file of account (copied) on host for user (copied)
 * into a new store; one that cannot be read, is corrupt or is another
 * account's is logged and left out. A missing one is an empty store,
 * unless the file of a renamed account is found: one for the same host
 * and user whose account in_use(ud, name) says is not configured (NULL:
 * none is looked for), whose lock (state_lock_account()) is free, and
 * which was written from the same configuration file config (the file
 * says so; config NULL, or a file from before that was written: any).
 * Its state is then taken over (logged; the store is dirty), and its
 * file removed and its lock let go once the store is written.
 * dirtied(ud), when not NULL, is called each time the store turns dirty
 * (a put, or a state found in an earlier version's file): its owner
 * should state_store_write() it soon. Where an earlier store of account
 * in this process announced more than the file says (and the
 * UIDVALIDITY is the same), its announced UID comes back. Blocks on file
 * I/O. Never fails (without a state directory, after logging that,
 * every write fails). */
struct state_store *state_store_new(const char *account, const char *host,
				    const char *user, const char *config,
				    bool (*in_use)(void *ud, const char *account),
				    void (*dirtied)(void *ud), void *ud);
/* Frees without writing; NULL-safe. What it announced beyond the file
 * (struct state's announced) is kept for the account's next store in this
 * process. */
void state_store_free(struct state_store **s);

/* The state of mailbox into *st: returns 1 when there is some, 0 when
 * there is none. From the store, else from the mailbox's file of an
 * earlier version, whose state then joins the store (dirty) after a
 * log line (a corrupt, foreign or other mailbox's file: a warning, and
 * 0). Blocks only for that file. */
int state_store_get(struct state_store *s, const char *mailbox,
		    struct state *st);
/* When the account file read by state_store_new() was last written
 * (wall-clock seconds), or 0 when there was none or it was ignored (not
 * of this version, another account's): mailwatch watched the account
 * until about then. */
int64_t state_store_written(const struct state_store *s);
/* When a store of account was last freed in this process (wall-clock
 * seconds; 0: never): a reload restarts an account, which was watched
 * until then, later than its file says when nothing changed before. */
int64_t state_freed_at(const char *account);
/* The only mailbox whose state has UIDVALIDITY uidvalidity, with its
 * state in *st as state_store_get() gives it; NULL when none has it, or
 * more than one (a server whose mailboxes share one UIDVALIDITY).
 * Borrowed, valid until the next put. */
const char *state_store_find(const struct state_store *s,
			     uint32_t uidvalidity, struct state *st);
/* Drops the state of mailbox (renamed: its state went on under the new
 * name); kept when it still has a file of an earlier version. No I/O. */
void state_store_forget(struct state_store *s, const char *mailbox);
/* Records the state of mailbox (st->uidvalidity not 0): the store is
 * dirty when that changed what the file says. No I/O. */
void state_store_put(struct state_store *s, const char *mailbox,
		     const struct state *st);
/* True when a put (or a migrated state) has not been written yet. */
bool state_store_dirty(const struct state_store *s);
/* When dirty: writes the whole file (every mailbox's state), then
 * removes the earlier versions' files whose state it now holds. Returns
 * 0 (also when clean) or a negative errno; the store then stays dirty
 * and the next call tries again. A failure is logged as an error once,
 * the next ones at debug level until a write succeeds (logged then).
 * Blocks (fdatasync, fsync). */
int state_store_write(struct state_store *s);

/* The state directory (created 0700 if missing); caller frees. NULL
 * after logging when neither XDG_STATE_HOME nor HOME is set. */
char *state_dir(void);
/* The name of account's state file in a directory whose names may be
 * name_max bytes long; caller frees. '@' and the account with every byte
 * other than [A-Za-z0-9._-] as %XX; when that, or a temporary file next
 * to it, would be too long, its start, '~' and a hash of the account.
 * Its '@' keeps it apart from every name of state_file_name(), which
 * holds none. */
char *state_account_file_name(const char *account, long name_max);
/* The name of the per-mailbox file of account/mailbox that earlier
 * versions wrote, in a directory whose names may be name_max bytes long;
 * caller frees. "ACCOUNT.MAILBOX" with every byte other than
 * [A-Za-z0-9_-] (and '.' in the account) as %XX; when that, or a
 * temporary file next to it, would be too long, its start, '~' and a
 * hash of both names. */
char *state_file_name(const char *account, const char *mailbox,
		      long name_max);

/* ---- the account lock ---- */

/* Takes the lock that says this process watches account: an exclusive
 * flock() of the file named like its state file
 * (state_account_file_name()) plus "@lock" in the state directory,
 * created 0600, into which our pid is then written. Returns the locked
 * fd (O_CLOEXEC: hooks do not inherit it; closing it lets go), or
 * -EWOULDBLOCK when another process holds the lock, with its pid in
 * *holder_r (0 when it could not be read), or another negative errno
 * after logging a warning (no state directory, a lock file that cannot
 * be opened or locked): the caller watches without the lock. Blocks on
 * file I/O only. */
int state_lock_account(const char *account, pid_t *holder_r);
