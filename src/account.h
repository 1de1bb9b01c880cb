/* account: watching every configured mailbox of one account within the
 * server's connection limit. Owns the account's mailboxes (mailbox.c) and
 * connections (watcher.c) and decides how each mailbox is watched:
 *
 * - With NOTIFY (RFC 5465): the first mailbox is watched with IDLE on one
 *   connection that follows all the others with NOTIFY; their STATUS
 *   pushes say when one has new mail, and a second connection (fetch
 *   mode) EXAMINEs it and fetches the envelopes. Two connections, however
 *   many mailboxes.
 * - Without: within max_connections, the first mailboxes in the
 *   configured order get an IDLE connection each; when there are more,
 *   the last connection checks the rest with STATUS every poll_interval
 *   and fetches where UIDNEXT moved. A login refused with [LIMIT] lowers
 *   the budget for the session.
 *
 * With patterns in mailboxes ("*", "Lists/%"), the mailboxes are those of
 * the server's LIST that they select (mboxlist.c), listed again when
 * NOTIFY says one was created, renamed or deleted, and without NOTIFY at
 * every check; a mailbox no longer listed is let go, its state kept.
 *
 * Runs on an sd-event loop; never blocks (but for the writes of the
 * account's state file, deferred until the loop is idle). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "sink.h"

struct account_run;
struct cred;

/* What an account needs from its owner; all borrowed and outliving it. */
struct account_env {
	sd_event *event;
	struct sink **sinks; /* n_sinks sinks, each gets every message */
	size_t n_sinks;
	/* Something the status line shows changed; may be NULL. */
	void (*changed)(void *ud);
	/* Whether an account called name is in the configuration; may be
	 * NULL. The state of one that is not, for the same host and user,
	 * is taken over by an account without state (renamed). */
	bool (*configured)(void *ud, const char *name);
	/* The configuration file's absolute path, for the state: another
	 * file's account (another instance) is not taken as renamed. May
	 * be NULL. */
	const char *config_path;
	/* A login of account a was refused for a limit on connections
	 * ([LIMIT]); may be NULL. The other accounts of its user and
	 * server are to give way (account_run_give_way()). */
	void (*limited)(void *ud, const struct account *a);
	void *ud;
};

/* Loads the mailboxes' state and starts connecting. a and cred (asked
 * for the credential before each login: password.h) are borrowed (see
 * account_run_rebind) and must outlive it. */
struct account_run *account_run_new(const struct account_env *env,
				    const struct account *a,
				    struct cred *cred);
/* Saves every mailbox's state, closes the connections at once (no
 * LOGOUT) and frees. The sinks must still exist. */
void account_run_free(struct account_run **ar);

/* After a reload: a is the new configuration's account, equal in every
 * setting (config_account_equal) to the old one. Connections stay. */
void account_run_rebind(struct account_run *ar, const struct account *a);
/* A reload kept the account: a connection budget that [LIMIT] lowered
 * goes back to max_connections, and connections waiting out a back-off
 * try, at once. */
void account_run_reloaded(struct account_run *ar);
/* Another account of the same user and server was refused a connection
 * for a limit on connections: one connection fewer, as at a refusal of
 * its own (tried again later), so that it gets one too. */
void account_run_give_way(struct account_run *ar);
/* Hooks ended or started: brings the state file up to date once the
 * loop is idle, at once unless it was so less than a second ago. */
void account_run_save(struct account_run *ar);
/* Starts a clean stop (LOGOUT everywhere); account_run_stopped() turns
 * true when every connection is gone. */
void account_run_stop(struct account_run *ar);
bool account_run_stopped(const struct account_run *ar);
/* Pauses (or resumes) reading from every connection of the account, those
 * it opens meanwhile too: see watcher_pause(). */
void account_run_pause(struct account_run *ar, bool paused);
/* After a resume (slept) or CheckNow: probes every connection, and checks
 * the mailboxes that are checked rather than pushed. After a resume, what
 * they report next is caught up with (mailbox_slept()). */
void account_run_probe(struct account_run *ar, bool slept);
/* True after an error retrying cannot fix (a rejected password or token,
 * missing STARTTLS): the account waits for a reload. */
bool account_run_gave_up(const struct account_run *ar);

/* How many mailboxes the account watches or tries to: those of
 * mailboxes, or those its patterns selected from the server's last LIST
 * (0 before the first). */
size_t account_run_mailboxes(const struct account_run *ar);
/* How many of the account's mailboxes are watched right now. */
size_t account_run_watched(const struct account_run *ar);
/* Calls fn for each of the account's mailboxes in the configured order:
 * its name (borrowed for the call), whether it is watched right now, and
 * its unseen count (mailbox_unseen(): -1 when not known yet). */
void account_run_each(const struct account_run *ar,
		      void (*fn)(void *fud, const char *mailbox, bool watched,
				 int64_t unseen),
		      void *fud);
/* For the status line: how the mailboxes are watched, e.g. "21 mailboxes
 * over 2 connections (NOTIFY)" or "4 pushed, 17 checked every 60 s"
 * (after "NAME: " when named); then what is not well, e.g. "NAME/INBOX:
 * reconnecting" ("INBOX: ..." when not named). Borrowed, valid until the
 * next call. */
const char *account_run_describe(struct account_run *ar, bool named);
