/* mailbox: what mailwatch knows and does about one watched mailbox of an
 * account, sans-IO. It keeps the UID bookkeeping (UIDVALIDITY, the highest
 * UID handled and when the mailbox was last seen whole, kept across
 * connections and in the state file), catches up with a UIDVALIDITY change
 * by INTERNALDATE, gathers the batch of new messages a fetch returns and
 * hands it to the sinks in UID order (one by one, or as one summary), and
 * withdraws what was announced once it is read or expunged.
 *
 * It is fed the events of whichever connection has it selected (or checks
 * it with STATUS) and the wall-clock time with them; it never touches a
 * socket, a timer or the event loop. Its outputs are the sinks, its
 * entry in the account's state store (state.c; no I/O: the owner writes
 * the store, but mailbox_new() may read the file an earlier version kept
 * for the mailbox alone) and log lines. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "session.h"
#include "util.h"

struct copies;
struct sink;
struct mailbox;
struct state;
struct state_store;

/* What the mailbox needs from its owner; all borrowed and outliving the
 * mailbox. */
struct mailbox_env {
	struct sink **sinks; /* n_sinks sinks, each gets every message */
	size_t n_sinks;
	/* The account's last announced messages: one of them again is not
	 * announced (copies.h). NULL: none is a copy. */
	struct copies *copies;
	/* The account's state: mailbox_new() gets the mailbox's entry,
	 * mailbox_save() puts it. */
	struct state_store *store;
	/* Called when the state should be saved: the owner calls
	 * mailbox_save() soon, once nothing more urgent is to be done, then
	 * writes the store (the write ends in fdatasync). Several calls may
	 * share one save, which may wait a while in a burst; not when now
	 * (the mailbox's first state, see start_afresh()). */
	void (*save_soon)(void *ud, bool now);
	/* Asked when a mailbox that appeared (mailbox_appeared()) and has no
	 * state shows its UIDVALIDITY: the name of a mailbox no longer
	 * watched whose state has the same UIDVALIDITY (the mailbox renamed
	 * to this one), its state in *st, and the UIDs it followed for
	 * withdrawal when it went (up to SESSION_MAX_KNOWN) in uids[*n_r];
	 * NULL when none. May be NULL. */
	const char *(*renamed)(void *ud, uint32_t uidvalidity,
			       struct state *st, uint32_t *uids, size_t *n_r);
	void *ud;
};

/* Creates the mailbox name (UTF-8, copied) of account a (borrowed; see
 * mailbox_rebind()) with its state from env->store. Never fails. */
struct mailbox *mailbox_new(const struct mailbox_env *env,
			    const struct account *a, const char *name);
/* Saves the state one last time (mailbox_save(mb, true, false, 0, 0))
 * and frees. The sinks and the store must still exist. */
void mailbox_free(struct mailbox **mb);

/* After a reload: a is the new configuration's account, equal in every
 * setting to the one the mailbox had. */
void mailbox_rebind(struct mailbox *mb, const struct account *a);
/* Its UIDVALIDITY as last seen (0: never). */
uint32_t mailbox_uidvalidity(const struct mailbox *mb);
/* The mailbox's UTF-8 name; borrowed, valid until mailbox_free(). */
const char *mailbox_name(const struct mailbox *mb);
/* How many messages are unseen, as last reported (mailbox_set_unseen),
 * or -1 before the first report or once found missing. Kept, as last
 * known, while no connection reports it. */
int64_t mailbox_unseen(const struct mailbox *mb);
/* The server says count messages are unseen now (SEARCH UNSEEN after
 * EXAMINE and the changes since, or a STATUS). Returns true when that
 * changed the count. */
bool mailbox_set_unseen(struct mailbox *mb, uint32_t count);
/* The mailbox is not there (deleted, or misspelt): its count is not
 * known (-1) until the server reports one again. */
void mailbox_forget_unseen(struct mailbox *mb);
/* Who log lines about the mailbox are about (its account and name);
 * borrowed, valid until mailbox_free(). */
const struct log_ctx *mailbox_log(const struct mailbox *mb);

/* Puts the state in the store when what it should say changed (the
 * mark, never past a message a sink has not acted on; when the mailbox
 * was last seen whole), and does nothing while a UIDVALIDITY change is
 * being caught up with. final (at the end) puts a change of the "seen
 * whole" time however small, and of the time watched up to: wall (the
 * time now) while the mailbox is caught up, else the start of the gap
 * (see mailbox_closed()); 0 keeps the one put last. idle_now and
 * exists_now tell whether the connection that last reported
 * mailbox_idle() is still idle, and the message count its server now
 * reports: the time of that mailbox_idle() counts as seen whole only
 * when it is, with the same count (no mail came with the IDLE's "+").
 * Without such a connection, pass false and 0. No I/O: the owner writes
 * the store. */
void mailbox_save(struct mailbox *mb, bool final, bool idle_now,
		  uint32_t exists_now, int64_t wall);

/* ---- events of a connection that has the mailbox selected ---- */

/* EXAMINE finished at wall (sel borrowed for the call). Returns the
 * first UID to announce, as session_cb.selected does: uidnext means only
 * new mail from now; lower, the connection fetches the messages in
 * between (catch-up). Sets *by_date_r instead when a UIDVALIDITY change,
 * or a UIDNEXT at or below the mark (a server restored from a backup),
 * needs the date scan (mailbox_dated() for each message, then
 * mailbox_dated_end()). What was announced before is learnt again from
 * the EXAMINE's QRESYNC answer (sel->qresync) or else from the fetch of
 * the mailbox_known() UIDs' flags: through mailbox_flags() and
 * mailbox_vanished(), and what that fetch does not return was deleted. */
uint32_t mailbox_selected(struct mailbox *mb,
			  const struct session_selected *sel, int64_t wall,
			  bool *by_date_r);
/* The UID mailbox_selected() returns when the UIDVALIDITY has not
 * changed: the first not handled yet. 0 when that cannot be told (no
 * state yet, or a UIDVALIDITY change is being caught up with). */
uint32_t mailbox_next_uid(const struct mailbox *mb);
/* What session_cb.known asks: the UIDs of the announced messages still
 * followed (ascending, at most max into uids), and the UIDVALIDITY and
 * HIGHESTMODSEQ at which their flags were last learnt (0: unknown). */
size_t mailbox_known(struct mailbox *mb, uint32_t *uids, size_t max,
		     uint32_t *uidvalidity_r, uint64_t *modseq_r);
/* One message of the date scan (UID, FLAGS, INTERNALDATE); f borrowed for
 * the call. */
void mailbox_dated(struct mailbox *mb, const struct codec_fetch *f);
/* The date scan completed: returns the first UID to announce. */
uint32_t mailbox_dated_end(struct mailbox *mb);
/* One message of a UID FETCH from the first UID to announce on (ENVELOPE,
 * or the header fields of one over the codec's limits, and INTERNALDATE
 * after a UIDVALIDITY change); f borrowed for the call. Kept for the
 * batch, unless \Seen, handled before, or older than the catch-up's
 * time. */
void mailbox_fetched(struct mailbox *mb, const struct codec_fetch *f);
/* The UID FETCH completed: announces the batch to the sinks in UID order,
 * moves the mark past it and asks for a save. */
void mailbox_batch_end(struct mailbox *mb);
/* A FETCH of flags (a change, or the answer about an announced
 * message); f borrowed for the call. \Seen on an announced message
 * withdraws it. With a UID it is matched by UID (and its sequence number
 * learnt), else by sequence number. */
void mailbox_flags(struct mailbox *mb, const struct codec_fetch *f);
/* EXPUNGE of sequence number seq: withdraws it if announced. */
void mailbox_expunge(struct mailbox *mb, uint32_t seq);
/* VANISHED: the messages of these UIDs were expunged (borrowed for the
 * call); withdraws the announced ones. */
void mailbox_vanished(struct mailbox *mb, const struct codec_seqset *uids);
/* The connection is idle (in IDLE or waiting to poll) at wall with exists
 * messages: any catch-up is over, and the mailbox counts as seen whole at
 * wall if it is still idle at the next mailbox_save(). */
void mailbox_idle(struct mailbox *mb, uint32_t exists, int64_t wall);
/* A clean stop that began at stop_at while the connection was idle with
 * messages messages ended with the server's answer to LOGOUT, and no new
 * mail in between: the mailbox was seen whole the second before
 * stop_at. */
void mailbox_logged_out(struct mailbox *mb, int64_t stop_at,
			uint32_t messages);
/* The connection that had the mailbox selected ended at wall, its server
 * last heard from at heard (0: not known): the batch in flight is dropped
 * (the next connection fetches it again), a UIDVALIDITY catch-up cut
 * short is undone (the next one starts it over), and mail of the second
 * it ended is not counted as seen. When it was caught up, the next
 * catch-up's mail whose INTERNALDATE is heard or earlier (but not
 * earlier than the mailbox was last seen whole) came while watched:
 * announced one by one (up to 1000), whatever catch_up says. */
void mailbox_closed(struct mailbox *mb, int64_t wall, int64_t heard);

/* ---- a connection that checks the mailbox without selecting it ---- */

/* A "* STATUS" response at wall, checked or pushed by NOTIFY (st
 * borrowed for the call; its UIDVALIDITY, when left out as NOTIFY's
 * pushes leave out one that did not change, is taken as the recorded
 * one). Returns true when the mailbox must be EXAMINEd and fetched: its
 * UIDNEXT moved past the mark, its UIDVALIDITY is not the recorded one,
 * or either is unknown; its UIDNEXT is below the mark in the first STATUS
 * since the following connection began (a restored server: the EXAMINE
 * tells); or, with announced messages still shown, its
 * UNSEEN went down or its HIGHESTMODSEQ moved since the last STATUS (one
 * may have been read or deleted elsewhere: the fetch re-reads them and
 * withdraws those). With no state yet, it starts afresh (what it holds
 * is taken as handled) and returns false; likewise when nothing moved,
 * recording it as seen whole at wall with its MESSAGES. Not while a
 * connection has it selected. */
bool mailbox_status(struct mailbox *mb, const struct session_status *st,
		    int64_t wall);
/* The connection that followed the mailbox (NOTIFY, or the checks) is
 * gone, its server last heard from at heard (0: not known): until a
 * STATUS shows it with nothing new again, mail an EXAMINE finds arrived
 * while nobody looked, and is caught up with as after a restart
 * (catch_up), but for what came while watched, as mailbox_closed()
 * says. While followed, it is announced as it came. */
void mailbox_unfollowed(struct mailbox *mb, int64_t heard);
/* The system slept (logind's resume, or the boot clock's jump). What a
 * connection that outlived the sleep reports next arrived while asleep,
 * and is caught up with (catch_up) as after a reconnect: new mail fetched
 * until mailbox_awake(), and for a mailbox followed without being
 * selected, what its next EXAMINE finds (mailbox_unfollowed()). */
void mailbox_slept(struct mailbox *mb);
/* The connections had the time to report what came during the sleep:
 * new mail is live again. */
void mailbox_awake(struct mailbox *mb);

/* The mailbox appeared (was created, or renamed to its name) at since or
 * later (wall-clock seconds): while the account was watched, or while
 * mailwatch was stopped. Without state, its first EXAMINE then takes the
 * state of the mailbox it was renamed from (env->renamed), else catches
 * up with the unseen mail whose INTERNALDATE is later than since, rather
 * than taking what it holds as handled (a first run). With state, nothing
 * changes: what was announced before is not announced again. */
void mailbox_appeared(struct mailbox *mb, int64_t since);
/* A first run: a connection meant to look at the mailbox was refused
 * before any did, so its first look may come much later. Until it has
 * state, the unseen mail whose INTERNALDATE is since (the start) or later
 * is caught up with at that look, as for one that appeared then, rather
 * than taken as there before the start. Nothing changes for a mailbox
 * with state or a time it appeared. */
void mailbox_looked_late(struct mailbox *mb, int64_t since);
