#include "mailbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copies.h"
#include "event.h"
#include "sink.h"
#include "state.h"

/* Announced messages followed for withdrawal. */
#define MAX_LIVE SESSION_MAX_KNOWN
/* struct live's seq of a message known to be there whose sequence number
 * is not (QRESYNC reports changes by UID). */
#define SEQ_THERE UINT32_MAX
#define BATCH_MAX 1000          /* more new messages at once: a summary */
/* Seconds by which the time the mailbox was last seen whole may advance
 * before it is written by itself (else it goes with the next write). */
#define SEEN_STEP 600

struct mailbox {
	struct mailbox_env env;
	const struct account *a;   /* borrowed; see mailbox_rebind() */
	/* Copies, so the configuration can be replaced under a live
	 * connection (log lines, events, the session borrow them). */
	char *account, *name;
	struct log_ctx log;

	/* UID bookkeeping: everything up to mark was handled (announced or
	 * skipped) under uidvalidity. 0/0 when nothing is known. */
	uint32_t uidvalidity, mark;
	/* Wall-clock seconds up to which every message that arrived was
	 * handled, as the server was there to say (0: unknown), and the
	 * message count then: after a UIDVALIDITY change, mail with a later
	 * INTERNALDATE is what arrived since. */
	int64_t seen;
	uint32_t messages;
	/* seen was taken in this run, not read from the state file: what
	 * was announced of its second is known to the copies. */
	bool seen_now;
	int64_t unseen; /* unseen messages now, -1: not known */
	/* Restores that leave UIDNEXT above the mark (CONDSTORE):
	 * top_modseq is the highest HIGHESTMODSEQ the server gave under
	 * uidvalidity (EXAMINE, STATUS, a change's FETCH; 0: none),
	 * floor_modseq the one no new EXAMINE may be below unless the server
	 * was restored: the state file's, raised to top_modseq when a
	 * connection that selected the mailbox ends. Not top_modseq itself:
	 * a STATUS on another connection can pass an EXAMINE under way. */
	uint64_t top_modseq, floor_modseq;
	/* What was last put in the state store. */
	uint32_t saved_uidvalidity, saved_mark, saved_announced, saved_messages;
	int64_t saved_seen, saved_watched;
	uint64_t saved_modseq;
	bool catching_up;          /* the first batch after a gap */
	bool slept;                /* mailbox_slept() until mailbox_awake() */
	/* The state file's announced UID, when above the mark: the run that
	 * wrote it announced up to there, and was killed or stopped before
	 * the hooks of those messages ran. They came while it watched, so
	 * they are announced one by one whatever catch_up says; only what
	 * is above owed arrived while away. */
	uint32_t owed;
	/* A connection that does not select it follows it (NOTIFY, or the
	 * checks) and saw it with nothing new since: mail the next EXAMINE
	 * finds arrived while followed, and is announced as it came, not
	 * as a catch-up. */
	bool followed;
	/* Caught up: the connection that selects or follows it handled
	 * all the server had (a fetch ended, an IDLE began, a STATUS showed
	 * nothing new), and none of its connections was lost since. */
	bool current;
	/* Such a connection was lost, its server last heard from at
	 * gap_from (wall seconds; 0: not known, as after a sleep), or the
	 * last run watched it up to then (the state file's WATCHED): the
	 * catch-up's mail whose INTERNALDATE is no later, and not earlier
	 * than seen, came while watched (a checked mailbox's since its last
	 * check, trial AE), and is announced one by one, as the owed are.
	 * Of the very second of the last word too: better announced than
	 * skipped. */
	int64_t gap_from;
	/* The connection went idle at idle_at (0: not since the last state
	 * write) with idle_messages messages: seen once still idle when the
	 * owner saves. */
	int64_t idle_at;
	uint32_t idle_messages;
	/* The EXAMINE came at examined_at (0: no fetch since) with
	 * examined_exists messages: seen whole then, as at a STATUS with
	 * nothing new, once the fetch after it ended (trial AG: a checked
	 * mailbox, seen whole only by such a STATUS, kept the first check's
	 * time; trial AI: the second before it left the message fetched in
	 * that second to be announced again after a re-creation). */
	int64_t examined_at;
	uint32_t examined_exists;

	/* Catching up after a UIDVALIDITY change (see uidvalidity_changed):
	 * until it completes, the state keeps the values from before
	 * (old_*), which come back if the connection ends first. since:
	 * only messages whose INTERNALDATE is later count as new (0:
	 * all), or as late when since_now (arrived_since()); dated_from:
	 * the lowest such unseen UID the date scan found;
	 * uidnext: the mailbox's at EXAMINE. */
	bool rebasing, since_now;
	uint32_t old_uidvalidity, old_mark;
	/* mailbox_appeared(): with no state, mail that arrived after this
	 * time is new (0: none, a first run); late: set by
	 * mailbox_looked_late(), for the log line. */
	int64_t appeared;
	bool late;
	int64_t since;
	uint32_t dated_from, uidnext;

	/* The batch being fetched: its unseen new messages, all of them
	 * until it is known to be summarised, then only the owed ones and
	 * the first SINK_SUMMARY_FIRST others; batch_total counts them all,
	 * batch_owed the owed ones, batch_others the others in batch[],
	 * batch_checked how many of its messages were looked at for copies,
	 * batch_copies how many of those were. */
	struct mail_event *batch;
	size_t n_batch, cap_batch, batch_total, batch_owed, batch_others;
	size_t batch_checked, batch_copies;
	uint32_t batch_max;        /* highest UID in the batch, seen or not */
	uint32_t *batch_seq;       /* sequence numbers of batch[] */

	/* Messages announced and not read or deleted since, so that a \Seen
	 * flag or an EXPUNGE can withdraw their notification. Oldest (lowest
	 * UID) first. seq is 0 from an EXAMINE until the connection tells
	 * that the message is still there (the fetch of their flags, or
	 * QRESYNC: SEQ_THERE). modseq: the HIGHESTMODSEQ at which their flags
	 * were last learnt (0: unknown); examined_modseq: the EXAMINE's,
	 * which becomes modseq once the catch-up is over. */
	struct live {
		uint32_t seq, uid;
	} live[MAX_LIVE];
	size_t n_live;
	uint64_t modseq, examined_modseq;
	/* What the last STATUS said of HIGHESTMODSEQ (a connection that does
	 * not select the mailbox; 0: not known): a change, or unseen going
	 * down, tells that an announced message may have been read or
	 * deleted. */
	uint64_t status_modseq;
	/* The connection that follows it gave a STATUS with UIDNEXT since it
	 * began: one below the mark after that is older than a fetch that
	 * passed it, not a restored server (see renumbered()). */
	bool status_seen;
};

/* t as local time for log lines, e.g. "2024-01-01 10:00:00 +0100". */
static const char *
time_text(int64_t t, char buf[static 32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm) ||
	    !strftime(buf, 32, "%Y-%m-%d %H:%M:%S %z", &tm))
		snprintf(buf, 32, "@%lld", (long long)t);
	return buf;
}

/* Asks the owner for mailbox_save() once the loop is idle: the state
 * file's write ends in fdatasync, which can block for milliseconds, so it
 * comes after every ready connection was served and the hooks have
 * started, and several batches (of every mailbox of the account) share
 * one write. A kill in between only means those messages are announced
 * again at the next start. */
static void
save_soon(struct mailbox *mb)
{
	mb->env.save_soon(mb->env.ud, false);
}

/* Takes the time the connection went idle as the time the mailbox was
 * seen whole, when it is still idle (no EXISTS came with or after the
 * IDLE's "+" meanwhile). */
static void
take_idle_time(struct mailbox *mb, bool idle_now, uint32_t exists_now)
{
	if (mb->idle_at && idle_now && exists_now == mb->idle_messages) {
		mb->seen = mb->idle_at;
		mb->seen_now = true;
		mb->messages = mb->idle_messages;
	}
	mb->idle_at = 0;
}

/* Puts the state in the store (its owner writes the file) when what it
 * should say changed: the mark, but never past a message a sink has not
 * acted on (a queued hook; at a stop also a running one), so that a kill
 * loses nothing (the mark itself goes in as what was announced); and the
 * time the mailbox was seen whole, when it advanced by SEEN_STEP or the
 * mailbox became empty or not (at all, when final). Not while catching up
 * after a UIDVALIDITY change: the state keeps what came before until that
 * completes. */
void
mailbox_save(struct mailbox *mb, bool final, bool idle_now,
	     uint32_t exists_now, int64_t wall)
{
	uint32_t m = mb->mark, messages;
	int64_t seen, watched;
	bool seen_moved, modseq_due;

	for (size_t i = 0; i < mb->env.n_sinks; i++) {
		struct sink *k = mb->env.sinks[i];
		uint32_t u = k->ops->unfinished
				     ? k->ops->unfinished(k, mb->account,
							  mb->name)
				     : 0;

		if (u && u - 1 < m)
			m = u - 1;
	}
	take_idle_time(mb, idle_now, exists_now);
	/* A message held back was not handled: nor was the mailbox seen
	 * whole since. */
	seen = m == mb->mark ? mb->seen : mb->saved_seen;
	messages = m == mb->mark ? mb->messages : mb->saved_messages;
	if (final)
		seen_moved = seen != mb->saved_seen ||
			     messages != mb->saved_messages;
	else
		seen_moved = seen >= mb->saved_seen + SEEN_STEP ||
			     seen < mb->saved_seen ||
			     !messages != !mb->saved_messages;
	/* HIGHESTMODSEQ moves with every flag change: it goes with the next
	 * write, or the last. It is written at once when lower than the
	 * saved one (the server was restored, or gives none now), else the
	 * next start would take the saved one for a restore; and when it is
	 * the first one known (a file of before it was kept), else a kill
	 * before the stop would leave nothing to tell a restore by. */
	if (final)
		modseq_due = mb->top_modseq != mb->saved_modseq;
	else
		modseq_due = mb->top_modseq < mb->saved_modseq ||
			     (mb->top_modseq && !mb->saved_modseq);
	/* The time watched up to (see gap_from): now when caught up; not
	 * known (mailbox_free()), what was put last. */
	if (wall <= 0)
		watched = mb->saved_watched;
	else
		watched = mb->current ? wall : mb->gap_from;
	if (mb->rebasing || !mb->uidvalidity ||
	    (m == mb->saved_mark && mb->mark == mb->saved_announced &&
	     mb->uidvalidity == mb->saved_uidvalidity && !seen_moved &&
	     !modseq_due && (!final || watched == mb->saved_watched)))
		return;
	state_store_put(mb->env.store, mb->name,
			&(struct state){.uidvalidity = mb->uidvalidity,
					.uid = m,
					.seen = seen,
					.messages = messages,
					.modseq = mb->top_modseq,
					.announced = mb->mark,
					.watched = watched});
	mb->saved_mark = m;
	mb->saved_announced = mb->mark;
	mb->saved_uidvalidity = mb->uidvalidity;
	mb->saved_seen = seen;
	mb->saved_messages = messages;
	mb->saved_modseq = mb->top_modseq;
	mb->saved_watched = watched;
}

/* ---- announced messages (struct live) ---- */

static void
live_forget(struct mailbox *mb, size_t i)
{
	memmove(&mb->live[i], &mb->live[i + 1],
		(mb->n_live - i - 1) * sizeof(*mb->live));
	mb->n_live--;
}

/* live[i] is no longer new (read, else gone): withdraw it everywhere and
 * forget it. */
static void
live_withdraw(struct mailbox *mb, size_t i, bool read)
{
	for (size_t j = 0; j < mb->env.n_sinks; j++) {
		struct sink *k = mb->env.sinks[j];

		if (k->ops->withdraw)
			k->ops->withdraw(k, mb->a, mb->name, mb->uidvalidity,
					 mb->live[i].uid, read);
	}
	live_forget(mb, i);
}

static void
live_add(struct mailbox *mb, uint32_t seq, uint32_t uid)
{
	if (mb->n_live == MAX_LIVE)
		live_forget(mb, 0);
	mb->live[mb->n_live++] = (struct live){seq, uid};
}

/* The message at seq was read or deleted. When expunged, later sequence
 * numbers move down by one. */
static void
live_gone(struct mailbox *mb, uint32_t seq, bool expunged)
{
	for (size_t i = 0; i < mb->n_live; i++) {
		if (mb->live[i].seq == seq)
			live_withdraw(mb, i--, !expunged);
		else if (expunged && mb->live[i].seq > seq &&
			 mb->live[i].seq != SEQ_THERE)
			mb->live[i].seq--;
	}
}

/* The index of uid in live[], or -1. */
static int
live_find(const struct mailbox *mb, uint32_t uid)
{
	for (size_t i = 0; i < mb->n_live; i++)
		if (mb->live[i].uid == uid)
			return (int)i;
	return -1;
}

/* After the catch-up (or without one, when the mailbox is empty): what
 * was not found there was deleted meanwhile; the flags of the rest are
 * known as of the EXAMINE's HIGHESTMODSEQ. */
static void
live_resync_done(struct mailbox *mb)
{
	for (size_t i = 0; i < mb->n_live; i++)
		if (!mb->live[i].seq)
			live_withdraw(mb, i--, false);
	if (mb->examined_modseq)
		mb->modseq = mb->examined_modseq;
	mb->examined_modseq = 0;
}

/* ---- gaps ---- */

/* A connection that selected or followed mb was lost, its server last
 * heard from at heard (0: not known): a gap begins, unless one began
 * before mb was caught up again. */
static void
gap_begins(struct mailbox *mb, int64_t heard)
{
	if (mb->current)
		mb->gap_from = heard;
	mb->current = false;
}

/* Everything the server had was handled (see current). */
static void
caught_up(struct mailbox *mb)
{
	mb->current = true;
	mb->gap_from = 0;
}

/* ---- selecting the mailbox ---- */

/* Nothing known of the mailbox (or nothing to know, it being empty): what
 * it holds now is taken as handled, none of it is new, and it counts as
 * seen whole at wall. That state is saved without the wait of a burst:
 * until it is written, a kill would make the next start take the mailbox
 * as new again, and the mail that arrived meanwhile would never be
 * announced. Returns the first UID to announce. */
static uint32_t
start_afresh(struct mailbox *mb, uint32_t uidvalidity, uint32_t exists,
	     uint64_t modseq, int64_t wall)
{
	mb->uidvalidity = uidvalidity;
	mb->top_modseq = mb->floor_modseq = modseq;
	mb->mark = mb->uidnext - 1;
	mb->seen = wall;
	mb->seen_now = true;
	mb->messages = exists;
	mb->catching_up = false;
	mb->appeared = 0;
	mb->env.save_soon(mb->env.ud, true);
	return mb->uidnext;
}

/* The UIDs of the state say nothing of the mailbox now (see
 * uidvalidity_changed): the catch-up starts from nothing under
 * uidvalidity, and until it completes the state keeps what came before
 * (old_*, and floor_modseq), which comes back if the connection ends
 * first. */
static void
begin_rebase(struct mailbox *mb, uint32_t uidvalidity, uint64_t modseq)
{
	mb->rebasing = true;
	mb->top_modseq = modseq;
	mb->old_uidvalidity = mb->uidvalidity;
	mb->old_mark = mb->mark;
	mb->uidvalidity = uidvalidity;
	mb->mark = 0;
	mb->catching_up = true;
	mb->dated_from = 0;
}

/* The mailbox's UIDVALIDITY is not the one of the state: its UIDs say
 * nothing of what was handled. What arrived since mailwatch last saw it
 * whole is caught up with: all of it when it was empty then (as servers
 * that give an empty mailbox a new UIDVALIDITY at every session have
 * it), else the unseen messages whose INTERNALDATE is later than that
 * time, found by the date scan. Without that time, only new mail from
 * now is announced. Hooks get the new UIDVALIDITY. */
static uint32_t
uidvalidity_changed(struct mailbox *mb, uint32_t uidvalidity,
		    uint32_t exists, uint64_t modseq, int64_t wall,
		    bool *by_date_r)
{
	char when[32];

	/* Their notifications are of the old mailbox. */
	while (mb->n_live)
		live_withdraw(mb, 0, false);
	if (!exists || !mb->seen) {
		if (exists)
			log_warn(&mb->log,
				 "UIDVALIDITY changed from %u to %u: the "
				 "mailbox was recreated; not knowing when it "
				 "was last seen, announcing only new mail "
				 "from now",
				 mb->uidvalidity, uidvalidity);
		else
			log_info(&mb->log,
				 "UIDVALIDITY changed from %u to %u; the "
				 "mailbox is empty",
				 mb->uidvalidity, uidvalidity);
		return start_afresh(mb, uidvalidity, exists, modseq, wall);
	}
	begin_rebase(mb, uidvalidity, modseq);
	time_text(mb->seen, when);
	if (!mb->messages) {
		log_warn(&mb->log,
			 "UIDVALIDITY changed from %u to %u; the mailbox was "
			 "empty when last seen (%s): catching up with all "
			 "it holds",
			 mb->old_uidvalidity, uidvalidity, when);
		return 1;
	}
	log_warn(&mb->log,
		 "UIDVALIDITY changed from %u to %u: the mailbox was "
		 "recreated or renumbered; catching up with the unseen mail "
		 "that arrived since it was last seen (%s)",
		 mb->old_uidvalidity, uidvalidity, when);
	mb->since = mb->seen;
	mb->since_now = mb->seen_now;
	*by_date_r = true;
	return 0;
}

/* True when the EXAMINE shows that the server was restored from a backup
 * under the same UIDVALIDITY (logged): UIDNEXT at or below the mark (no
 * message above UIDNEXT - 1 is there, yet more were handled; or the
 * server once reported a UID it did not have), or HIGHESTMODSEQ below
 * floor_modseq (mod-sequences only grow). The second also tells a
 * restore after which as many messages came as it lost, when those had
 * changes of their own, such as being read. */
static bool
restored(struct mailbox *mb, const struct session_selected *sel)
{
	if (sel->uidnext && mb->mark >= sel->uidnext) {
		log_warn(&mb->log,
			 "UIDNEXT %u is not above UID %u, handled before "
			 "under the same UIDVALIDITY: the server was restored "
			 "from a backup (or reported a UID it does not have)",
			 sel->uidnext, mb->mark);
		return true;
	}
	if (sel->highestmodseq && sel->highestmodseq < mb->floor_modseq) {
		log_warn(&mb->log,
			 "HIGHESTMODSEQ %llu is below %llu, seen before under "
			 "the same UIDVALIDITY: the server was restored from "
			 "a backup",
			 (unsigned long long)sel->highestmodseq,
			 (unsigned long long)mb->floor_modseq);
		return true;
	}
	return false;
}

/* The server was restored from a backup under the same UIDVALIDITY
 * (restored()), and numbers new mail with UIDs handled before: the mark
 * says nothing of what is new. Like a UIDVALIDITY change, the date scan
 * finds the unseen mail that arrived since the mailbox was last seen. */
static uint32_t
renumbered(struct mailbox *mb, uint32_t exists, uint64_t modseq, int64_t wall,
	   bool *by_date_r)
{
	char when[32];

	/* Their UIDs may now be other messages'. */
	while (mb->n_live)
		live_withdraw(mb, 0, false);
	if (!exists || !mb->seen) {
		if (exists)
			log_info(&mb->log, "not knowing when the mailbox was "
					   "last seen, announcing only new mail "
					   "from now");
		return start_afresh(mb, mb->uidvalidity, exists, modseq, wall);
	}
	begin_rebase(mb, mb->uidvalidity, modseq);
	mb->since = mb->seen;
	mb->since_now = mb->seen_now;
	log_info(&mb->log, "catching up with the unseen mail that arrived "
			   "since the mailbox was last seen (%s)",
		 time_text(mb->seen, when));
	*by_date_r = true;
	return 0;
}

/* A mailbox that appeared while the account was watched, with no state:
 * its unseen mail that arrived since it appeared is new, found by the
 * date scan as after a UIDVALIDITY change; the state stays unwritten
 * until that is over (and is started over if the connection ends
 * first). */
static uint32_t
appeared_catch_up(struct mailbox *mb, uint32_t uidvalidity, uint64_t modseq,
		  bool *by_date_r)
{
	char when[32];

	begin_rebase(mb, uidvalidity, modseq);
	mb->since = mb->appeared;
	mb->since_now = true;
	log_info(&mb->log, "%s: catching up with the unseen mail that arrived "
			   "since %s",
		 mb->late ? "first looked at late" : "a new mailbox",
		 time_text(mb->since, when));
	*by_date_r = true;
	return 0;
}

/* Goes on from st, the state of mb or of the mailbox renamed to it. */
static void
take_state(struct mailbox *mb, const struct state *st)
{
	mb->uidvalidity = st->uidvalidity;
	/* Past the file's mark: announced before a reload, while hooks of
	 * its messages still wait. */
	mb->mark = st->announced;
	mb->owed = st->owed > mb->mark ? st->owed : 0;
	mb->seen = st->seen;
	mb->messages = st->messages;
	mb->top_modseq = mb->floor_modseq = st->modseq;
	mb->gap_from = st->watched;
}

/* A mailbox that appeared may be one renamed (the same UIDVALIDITY as
 * the state of a mailbox no longer watched): it goes on from that state,
 * so that what was announced under the old name is not announced again.
 * Returns true when it took that state. */
static bool
take_renamed(struct mailbox *mb, uint32_t uidvalidity, uint32_t uidnext,
	     bool qresync)
{
	struct state st;
	const char *from = NULL;
	uint32_t uids[MAX_LIVE];
	size_t n = 0;

	if (mb->env.renamed)
		from = mb->env.renamed(mb->env.ud, uidvalidity, &st, uids, &n);

	/* UIDs stay with a rename: a mailbox with fewer is another one. */
	if (!from || (uidnext && uidnext <= st.uid))
		return false;
	if (st.announced)
		log_info(&mb->log, "renamed from %s: going on after its UID %u",
			 from, st.announced);
	else
		log_info(&mb->log, "renamed from %s: going on with its state",
			 from);
	/* What is still shown for its messages is followed here, to be
	 * withdrawn when read (trial N: the notification stayed). Their
	 * flags are fetched now, as after a reconnect, unless the EXAMINE
	 * used QRESYNC: then changes come with their UID. */
	for (size_t i = 0; i < n; i++)
		live_add(mb, qresync ? SEQ_THERE : 0, uids[i]);
	for (size_t i = 0; i < mb->env.n_sinks; i++) {
		struct sink *k = mb->env.sinks[i];

		if (k->ops->rename)
			k->ops->rename(k, mb->a, from, mb->name);
	}
	/* Else the old name's line would make the UIDVALIDITY not unique
	 * at the next rename. */
	state_store_forget(mb->env.store, from);
	/* All of it: trial AJ's mail from before a stop was taken for mail
	 * from while away when the time watched up to stayed behind. */
	take_state(mb, &st);
	mb->seen_now = false;
	mb->appeared = 0;
	save_soon(mb);
	return true;
}

/* The catch-up after a UIDVALIDITY change is over (or the connection that
 * made it): the state may be written again. */
static void
end_rebase(struct mailbox *mb)
{
	if (!mb->rebasing)
		return;
	mb->rebasing = false;
	mb->floor_modseq = mb->top_modseq;
	mb->since = 0;
	mb->appeared = 0;
	save_soon(mb);
}

uint32_t
mailbox_selected(struct mailbox *mb, const struct session_selected *sel,
		 int64_t wall, bool *by_date_r)
{
	uint32_t uidvalidity = sel->uidvalidity, uidnext = sel->uidnext;
	uint64_t modseq = sel->highestmodseq;

	log_debug(&mb->log, "UIDVALIDITY %u UIDNEXT %u EXISTS %u%s",
		  uidvalidity, uidnext, sel->exists,
		  sel->qresync ? " (QRESYNC)" : "");
	mb->uidnext = uidnext ? uidnext : 1;
	/* Sequence numbers are the connection's. With QRESYNC what was
	 * announced is there unless reported gone (VANISHED (EARLIER)
	 * came first, and changes come with their UID); else the fetch of
	 * their flags tells (mailbox_flags()). */
	for (size_t i = 0; i < mb->n_live; i++)
		mb->live[i].seq = sel->qresync ? SEQ_THERE : 0;
	mb->examined_modseq = modseq;
	mb->examined_at = wall;
	mb->examined_exists = sel->exists;
	/* NOMODSEQ (or no CONDSTORE): nothing to compare with. */
	if (!modseq)
		mb->modseq = mb->top_modseq = mb->floor_modseq = 0;
	if (mb->uidvalidity && mb->uidvalidity != uidvalidity)
		return uidvalidity_changed(mb, uidvalidity, sel->exists, modseq,
					   wall, by_date_r);
	/* Empty, too: else its old name's line stays beside its own, with
	 * the same UIDVALIDITY, and the next rename cannot be told (a
	 * trial's folder, renamed empty then again with mail, announced
	 * that mail again). */
	if (!mb->uidvalidity && mb->appeared &&
	    !take_renamed(mb, uidvalidity, uidnext, sel->qresync) &&
	    sel->exists)
		return appeared_catch_up(mb, uidvalidity, modseq, by_date_r);
	if (!mb->uidvalidity)
		return start_afresh(mb, uidvalidity, sel->exists, modseq, wall);
	if (restored(mb, sel))
		return renumbered(mb, sel->exists, modseq, wall, by_date_r);
	if (modseq > mb->top_modseq)
		mb->top_modseq = modseq;
	mb->catching_up = mb->mark + 1 < mb->uidnext && !mb->followed;
	if (mb->catching_up)
		log_info(&mb->log, "catching up from UID %u (UIDNEXT %u)",
			 mb->mark + 1, mb->uidnext);
	return mb->mark + 1;
}

uint32_t
mailbox_next_uid(const struct mailbox *mb)
{
	return mb->uidvalidity && !mb->rebasing ? mb->mark + 1 : 0;
}

size_t
mailbox_known(struct mailbox *mb, uint32_t *uids, size_t max,
	      uint32_t *uidvalidity_r, uint64_t *modseq_r)
{
	size_t n = mb->n_live < max ? mb->n_live : max;

	for (size_t i = 0; i < n; i++)
		uids[i] = mb->live[i].uid;
	*uidvalidity_r = mb->uidvalidity;
	*modseq_r = mb->modseq;
	return n;
}

/* True when the batch is shown as one summary rather than message by
 * message: mail that arrived while away beyond what catch_up allows one by
 * one, or more than BATCH_MAX at once. Once true it stays true, since the
 * count only grows. */
static bool
summarised(const struct mailbox *mb)
{
	const struct account_defaults *d = &mb->a->d;
	size_t n = mb->batch_total - mb->batch_owed;

	if (n > BATCH_MAX)
		return true;
	if (!mb->catching_up)
		return false;
	return d->catch_up == CATCH_UP_SUMMARY ? n > 1 : n > d->catch_up_max;
}

/* True when f's INTERNALDATE is later than mb->since, or cannot be told
 * (absent, not a date): better announced than lost. Mail of that very
 * second too when since was taken in this run (since_now): some may have
 * come after the mailbox was last seen (a folder deleted, created again
 * and delivered to within it: trial N), and what was announced of it is
 * a copy (copies.h), not announced again. Not after a restart, when the
 * copies are forgotten: the last message announced is mostly of that
 * second. */
static bool
arrived_since(const struct mailbox *mb, const struct codec_fetch *f)
{
	int64_t t;

	if (!mb->since || !(f->have & CODEC_FETCH_INTERNALDATE) ||
	    f->internaldate.nil ||
	    !codec_internaldate(f->internaldate.ptr, f->internaldate.len, &t))
		return true;
	return t > mb->since || (t == mb->since && mb->since_now);
}

/* True when f came before the gap (see gap_from) by its INTERNALDATE,
 * and not before the mailbox was last seen whole: one APPENDed with an
 * older date while away came then (trial AH's, dated a week back). */
static bool
before_gap(const struct mailbox *mb, const struct codec_fetch *f)
{
	int64_t t;

	return mb->gap_from && !mb->rebasing &&
	       (f->have & CODEC_FETCH_INTERNALDATE) && !f->internaldate.nil &&
	       codec_internaldate(f->internaldate.ptr, f->internaldate.len,
				  &t) &&
	       t >= mb->seen && t <= mb->gap_from;
}

void
mailbox_dated(struct mailbox *mb, const struct codec_fetch *f)
{
	if (codec_strlist_has(&f->flags, "\\Seen") || !arrived_since(mb, f))
		return;
	if (!mb->dated_from || f->uid < mb->dated_from)
		mb->dated_from = f->uid;
}

/* The date scan is over: everything below the first new UID it found is
 * old. */
uint32_t
mailbox_dated_end(struct mailbox *mb)
{
	uint32_t from = mb->dated_from ? mb->dated_from : mb->uidnext;
	char when[32];

	mb->mark = from - 1;
	if (mb->dated_from)
		log_info(&mb->log, "catching up from UID %u (arrived since %s)",
			 from, time_text(mb->since, when));
	else
		log_info(&mb->log, "nothing unseen arrived since %s",
			 time_text(mb->since, when));
	/* Nothing to fetch: the catch-up is over here (a connection in
	 * fetch mode does not go idle after it). */
	if (!mb->dated_from)
		end_rebase(mb);
	return from;
}

/* ---- the batch ---- */

/* ev (at sequence number seq) is a copy of a message the account
 * announced before (copies.h): the sinks hear of it at once, its read or
 * removal is followed, and it is not part of the batch, nor counted. */
static bool
is_copy(struct mailbox *mb, const struct mail_event *ev, uint32_t seq)
{
	struct copy_origin o;

	if (!copies_check(mb->env.copies, ev, &o))
		return false;
	/* A move of many is not a page of the log. */
	log_at(mb->batch_copies++ < 10 ? LOG_INFO : LOG_DEBUG, &mb->log,
	       "new mail UID %u is the message %s UID %u announced before "
	       "(the same Message-ID, sender and subject): not announced "
	       "again",
	       ev->uid, o.mailbox, o.uid);
	for (size_t j = 0; j < mb->env.n_sinks; j++) {
		struct sink *k = mb->env.sinks[j];

		if (k->ops->copy)
			k->ops->copy(k, mb->a, &o, ev);
	}
	live_add(mb, seq, ev->uid);
	return true;
}

/* The batch turned out summarised: keeps the owed messages and the
 * first SINK_SUMMARY_FIRST others, all that is announced of it, so that
 * memory stays bounded however much mail waited. */
static void
trim_batch(struct mailbox *mb)
{
	size_t kept = 0, others = 0;

	for (size_t i = 0; i < mb->n_batch; i++) {
		if (mb->batch[i].uid > mb->owed &&
		    others++ >= SINK_SUMMARY_FIRST) {
			mail_event_finish(&mb->batch[i]);
			continue;
		}
		mb->batch[kept] = mb->batch[i];
		mb->batch_seq[kept++] = mb->batch_seq[i];
	}
	mb->n_batch = kept;
	mb->batch_others = SINK_SUMMARY_FIRST;
}

void
mailbox_fetched(struct mailbox *mb, const struct codec_fetch *f)
{
	struct mail_event ev = {.account = mb->account,
				.mailbox = mb->name,
				.uid = f->uid,
				.uidvalidity = mb->uidvalidity};
	bool owed, look;

	if (f->uid <= mb->mark) {
		mailbox_flags(mb, f); /* announced before this connection */
		return;
	}
	/* Dovecot tells of the sleep's mail once its IDLE began again after
	 * the probe: mailbox_idle() is not the end of it. */
	if (mb->slept)
		mb->catching_up = true;
	if (f->uid > mb->batch_max)
		mb->batch_max = f->uid;
	if (codec_strlist_has(&f->flags, "\\Seen")) {
		log_debug(&mb->log, "UID %u is already seen", f->uid);
		return;
	}
	if (!arrived_since(mb, f)) {
		log_debug(&mb->log,
			  "UID %u arrived before the mailbox was last seen",
			  f->uid);
		return;
	}
	/* Owed too: what came before the gap, while all before it in the
	 * batch did (the owed are its lowest UIDs), up to BATCH_MAX. */
	if (before_gap(mb, f) && f->uid > mb->owed &&
	    mb->batch_owed == mb->batch_total && mb->batch_owed < BATCH_MAX)
		mb->owed = f->uid;
	owed = f->uid <= mb->owed;
	/* Copies are not counted: whether the batch is summarised depends
	 * on the rest. Only the first COPIES_MAX messages of a batch are
	 * looked at: a server that sends a million alike costs their
	 * parsing, not decoding (of those a summary leaves out) and hashing
	 * each too, and they are counted. What is kept is decoded here. */
	look = mb->env.copies && mb->batch_checked < COPIES_MAX;
	if (look || owed || !summarised(mb) ||
	    mb->batch_others < SINK_SUMMARY_FIRST)
		mail_event_from_fetch(&ev, f);
	if (look) {
		mb->batch_checked++;
		if (is_copy(mb, &ev, f->seq)) {
			mail_event_finish(&ev);
			return;
		}
	}
	mb->batch_total++;
	mb->batch_owed += owed;
	if (!owed && summarised(mb) && mb->batch_others > SINK_SUMMARY_FIRST)
		trim_batch(mb);
	if (!owed && summarised(mb) &&
	    mb->batch_others == SINK_SUMMARY_FIRST) {
		mail_event_finish(&ev);
		return;
	}
	mb->batch_others += !owed;
	if (mb->n_batch == mb->cap_batch) {
		mb->cap_batch = mb->cap_batch ? 2 * mb->cap_batch : 8;
		mb->batch = xrealloc(mb->batch,
				     mb->cap_batch * sizeof(*mb->batch));
		mb->batch_seq =
			xrealloc(mb->batch_seq,
				 mb->cap_batch * sizeof(*mb->batch_seq));
	}
	mb->batch_seq[mb->n_batch] = f->seq;
	mb->batch[mb->n_batch++] = ev;
}

/* Sorts the batch by UID (servers send FETCH in sequence order, which is
 * UID order, so this is usually one pass). */
static void
sort_batch(struct mailbox *mb)
{
	for (size_t i = 1; i < mb->n_batch; i++) {
		struct mail_event ev = mb->batch[i];
		uint32_t seq = mb->batch_seq[i];
		size_t j = i;

		for (; j > 0 && mb->batch[j - 1].uid > ev.uid; j--) {
			mb->batch[j] = mb->batch[j - 1];
			mb->batch_seq[j] = mb->batch_seq[j - 1];
		}
		mb->batch[j] = ev;
		mb->batch_seq[j] = seq;
	}
}

/* Announces batch[from, from + n), total messages in all, to every
 * sink, in UID order: each message, or one summary to sinks that have
 * one, while hooks then get only on_new_mail_post. */
static void
announce_part(struct mailbox *mb, size_t from, size_t n, size_t total,
	      bool summary)
{
	const struct mail_event *v = mb->batch + from;

	for (size_t j = 0; j < mb->env.n_sinks; j++) {
		struct sink *k = mb->env.sinks[j];

		if (summary && k->ops->summary)
			k->ops->summary(k, mb->a, mb->name, v, n, total);
		if (!summary && k->ops->batch_start)
			k->ops->batch_start(k, mb->a, mb->name, n);
		for (size_t i = 0; i < n && !summary; i++)
			k->ops->send(k, mb->a, &v[i]);
		k->ops->batch_done(k, mb->a, mb->name, total);
	}
	/* Logged after the sinks started: a slow journal must not delay
	 * the hooks. */
	if (summary)
		log_info(&mb->log, "%zu new messages: announced a summary",
			 total);
	for (size_t i = 0; i < n && !summary; i++) {
		log_info(&mb->log, "new mail UID %u from %s: %s", v[i].uid,
			 *v[i].from ? v[i].from : "(no sender)",
			 *v[i].subject ? v[i].subject : "(no subject)");
		live_add(mb, mb->batch_seq[from + i], v[i].uid);
	}
}

/* Announces the batch (see summarised()); catch_up = skip announces
 * nothing that arrived while away. What the last run owed (the lowest
 * UIDs) goes one by one, as a batch of its own, when the rest does
 * not. */
static void
announce(struct mailbox *mb)
{
	size_t owed = mb->batch_owed, total = mb->batch_total;
	bool skip = mb->catching_up && mb->a->d.catch_up == CATCH_UP_SKIP;
	bool summary = summarised(mb);

	sort_batch(mb);
	if (owed && (summary || skip)) {
		log_info(&mb->log, "%zu message%s that came while watched: "
				   "one by one",
			 owed, owed == 1 ? "" : "s");
		announce_part(mb, 0, owed, owed, false);
	} else {
		owed = 0;
	}
	if (skip) {
		if (total > owed)
			log_info(&mb->log, "not announcing %zu message%s that "
					   "arrived while away (catch_up = "
					   "skip)",
				 total - owed, total - owed == 1 ? "" : "s");
		return;
	}
	announce_part(mb, owed, mb->n_batch - owed, total - owed, summary);
}

/* Forgets the batch being fetched. */
static void
drop_batch(struct mailbox *mb)
{
	for (size_t i = 0; i < mb->n_batch; i++)
		mail_event_finish(&mb->batch[i]);
	mb->n_batch = 0;
	mb->batch_total = 0;
	mb->batch_owed = 0;
	mb->batch_others = 0;
	mb->batch_checked = 0;
	mb->batch_copies = 0;
}

void
mailbox_batch_end(struct mailbox *mb)
{
	if (mb->batch_total)
		announce(mb);
	drop_batch(mb);
	live_resync_done(mb);
	if (mb->batch_max > mb->mark) {
		mb->mark = mb->batch_max;
		save_soon(mb);
	}
	mb->batch_max = 0;
	mb->catching_up = false;
	caught_up(mb);
	if (mb->examined_at > mb->seen) {
		mb->seen = mb->examined_at;
		mb->seen_now = true;
		mb->messages = mb->examined_exists;
		save_soon(mb);
	}
	mb->examined_at = 0;
	/* Caught up while a connection that does not select it follows it
	 * (a STATUS came since that one connected): it was seen whole, and
	 * what the next EXAMINE finds arrived while followed. */
	if (mb->status_seen)
		mb->followed = true;
	end_rebase(mb);
}

void
mailbox_flags(struct mailbox *mb, const struct codec_fetch *f)
{
	bool seen = codec_strlist_has(&f->flags, "\\Seen");
	int i;

	/* A change's MODSEQ is the mailbox's HIGHESTMODSEQ then. */
	if ((f->have & CODEC_FETCH_MODSEQ) && f->modseq > mb->top_modseq)
		mb->top_modseq = f->modseq;

	if (!(f->have & CODEC_FETCH_UID)) {
		if (seen)
			live_gone(mb, f->seq, false);
		return;
	}
	i = live_find(mb, f->uid);
	if (i < 0)
		return;
	mb->live[i].seq = f->seq ? f->seq : SEQ_THERE;
	if (seen)
		live_withdraw(mb, (size_t)i, true);
}

void
mailbox_vanished(struct mailbox *mb, const struct codec_seqset *uids)
{
	for (size_t i = 0; i < mb->n_live; i++) {
		for (size_t j = 0; j < uids->n; j++) {
			if (mb->live[i].uid >= uids->v[j].lo &&
			    mb->live[i].uid <= uids->v[j].hi) {
				live_withdraw(mb, i--, false);
				break;
			}
		}
	}
}

void
mailbox_expunge(struct mailbox *mb, uint32_t seq)
{
	live_gone(mb, seq, true);
}

void
mailbox_idle(struct mailbox *mb, uint32_t exists, int64_t wall)
{
	/* Any catch-up fetch came before (or none was needed: what arrived
	 * while away was expunged), so what comes now is live mail. */
	mb->catching_up = false;
	caught_up(mb);
	end_rebase(mb);
	live_resync_done(mb);
	/* Everything the server reported was handled: the mailbox is seen
	 * whole now, unless mail comes with the IDLE's "+" (see
	 * take_idle_time). This runs at each IDLE renewal too: the time is
	 * kept current without a wake-up of its own. */
	mb->idle_at = wall;
	mb->idle_messages = exists;
	save_soon(mb);
}

void
mailbox_logged_out(struct mailbox *mb, int64_t stop_at, uint32_t messages)
{
	/* Nothing that came later in that second is handled: the second
	 * before counts. */
	mb->seen = stop_at - 1;
	mb->seen_now = true;
	mb->messages = messages;
}

void
mailbox_closed(struct mailbox *mb, int64_t wall, int64_t heard)
{
	mb->followed = false;
	gap_begins(mb, heard);
	drop_batch(mb);
	mb->batch_max = 0;
	/* The next connection numbers messages afresh (live_resync). */
	for (size_t i = 0; i < mb->n_live; i++)
		mb->live[i].seq = 0;
	/* A catch-up after a UIDVALIDITY change cut short: the next
	 * connection starts it again. */
	if (mb->rebasing) {
		mb->uidvalidity = mb->old_uidvalidity;
		mb->mark = mb->old_mark;
		mb->top_modseq = mb->floor_modseq;
		mb->rebasing = false;
		mb->since = 0;
	}
	/* What it gave is past now: a new EXAMINE gives no less. */
	if (mb->top_modseq > mb->floor_modseq)
		mb->floor_modseq = mb->top_modseq;
	mb->idle_at = 0;
	mb->examined_at = 0;
	/* Nor is anything that comes later in the second it ends. */
	if (mb->seen >= wall)
		mb->seen = wall - 1;
}

/* ---- checking without selecting ---- */

void
mailbox_unfollowed(struct mailbox *mb, int64_t heard)
{
	mb->followed = false;
	mb->status_seen = false;
	gap_begins(mb, heard);
}

void
mailbox_slept(struct mailbox *mb)
{
	mb->slept = true;
	mailbox_unfollowed(mb, 0);
	/* Whatever the loss of a connection it found when it woke said:
	 * what came in the sleep was not watched. */
	mb->gap_from = 0;
}

void
mailbox_awake(struct mailbox *mb)
{
	mb->slept = false;
}

/* True when st says something changed since the last STATUS that may
 * concern what is still announced: UNSEEN went down (one was read, or
 * deleted unread) or HIGHESTMODSEQ moved (flags changed). Records both,
 * UNSEEN as the mailbox's unseen count. */
static bool
flags_moved(struct mailbox *mb, const struct session_status *st)
{
	bool moved = false;

	if (st->have & SESSION_ST_UNSEEN) {
		moved |= mb->unseen >= 0 && st->unseen < mb->unseen;
		mb->unseen = st->unseen;
	}
	if (st->have & SESSION_ST_HIGHESTMODSEQ) {
		moved |= mb->status_modseq &&
			 st->highestmodseq != mb->status_modseq;
		mb->status_modseq = st->highestmodseq;
	}
	return moved && mb->n_live;
}

/* True when st's HIGHESTMODSEQ is below floor_modseq under the same
 * UIDVALIDITY: the EXAMINE tells whether the server was restored
 * (restored()). Else records it. */
static bool
modseq_back(struct mailbox *mb, const struct session_status *st)
{
	if (!(st->have & SESSION_ST_HIGHESTMODSEQ) || !mb->uidvalidity ||
	    mb->rebasing ||
	    (st->uidvalidity && st->uidvalidity != mb->uidvalidity))
		return false;
	if (!st->highestmodseq) { /* NOMODSEQ */
		mb->top_modseq = mb->floor_modseq = 0;
		return false;
	}
	if (st->highestmodseq < mb->floor_modseq)
		return true;
	if (st->highestmodseq > mb->top_modseq)
		mb->top_modseq = st->highestmodseq;
	return false;
}

/* Logs at debug level what st holds: a push leaves out what did not
 * change (trial AE read "UIDVALIDITY 0" as a fault). */
static void
log_status(const struct mailbox *mb, const struct session_status *st)
{
	const struct {
		unsigned bit;
		const char *name;
		unsigned long long v;
	} items[] = {
	    {SESSION_ST_UIDVALIDITY, "UIDVALIDITY", st->uidvalidity},
	    {SESSION_ST_UIDNEXT, "UIDNEXT", st->uidnext},
	    {SESSION_ST_MESSAGES, "MESSAGES", st->messages},
	    {SESSION_ST_UNSEEN, "UNSEEN", st->unseen},
	    {SESSION_ST_HIGHESTMODSEQ, "HIGHESTMODSEQ", st->highestmodseq},
	};
	char text[160] = "STATUS";
	size_t len = strlen(text);

	if (log_max_level < LOG_DEBUG)
		return; /* a push for each new message: not built for nothing */
	for (size_t i = 0; i < sizeof(items) / sizeof(*items); i++)
		if (st->have & items[i].bit && len < sizeof(text))
			len += (size_t)snprintf(text + len, sizeof(text) - len,
						" %s %llu", items[i].name,
						items[i].v);
	log_debug(&mb->log, "%s", text);
}

bool
mailbox_status(struct mailbox *mb, const struct session_status *st,
	       int64_t wall)
{
	uint32_t uidvalidity = st->uidvalidity, uidnext = st->uidnext;
	bool withdraw = flags_moved(mb, st), back = modseq_back(mb, st), first;

	log_status(mb, st);
	if (withdraw)
		log_debug(&mb->log, "flags changed: re-reading the %zu "
				    "announced messages",
			  mb->n_live);
	if (!(st->have & SESSION_ST_UIDNEXT))
		/* A push of what changed: flags, or an expunge. */
		return withdraw || back;
	first = !mb->status_seen;
	mb->status_seen = true;
	if (!uidvalidity && !mb->uidvalidity)
		return true;
	/* NOTIFY's pushed STATUS leaves out a UIDVALIDITY that did not
	 * change. */
	if (!uidvalidity)
		uidvalidity = mb->uidvalidity;
	if (!mb->uidvalidity && mb->appeared &&
	    !take_renamed(mb, uidvalidity, uidnext, false) && st->messages)
		return true; /* mailbox_selected() catches up */
	if (!mb->uidvalidity) {
		mb->uidnext = uidnext;
		start_afresh(mb, uidvalidity, st->messages, st->highestmodseq,
			     wall);
		mb->followed = true;
		caught_up(mb);
		return false;
	}
	/* UIDNEXT below the mark in the first STATUS of a connection: the
	 * EXAMINE tells whether the server was restored (renumbered()). */
	if (uidvalidity != mb->uidvalidity || uidnext - 1 > mb->mark ||
	    (uidnext - 1 < mb->mark && first) || withdraw || back)
		return true;
	/* Nothing arrived since the last look: seen whole now. */
	mb->followed = true;
	caught_up(mb);
	if (st->have & SESSION_ST_MESSAGES) {
		mb->seen = wall;
		mb->seen_now = true;
		mb->messages = st->messages;
		save_soon(mb);
	}
	return false;
}

void
mailbox_appeared(struct mailbox *mb, int64_t since)
{
	if (mb->uidvalidity)
		return;
	mb->appeared = since;
	mb->late = false;
}

void
mailbox_looked_late(struct mailbox *mb, int64_t since)
{
	if (mb->uidvalidity || mb->appeared)
		return;
	mb->appeared = since;
	mb->late = true;
}

/* ---- life ---- */

struct mailbox *
mailbox_new(const struct mailbox_env *env, const struct account *a,
	    const char *name)
{
	struct mailbox *mb = xcalloc(1, sizeof(*mb));
	struct state st;

	mb->env = *env;
	mb->a = a;
	mb->account = xstrdup(a->name);
	mb->name = xstrdup(name);
	mb->log.account = mb->account;
	mb->log.mailbox = mb->name;
	mb->unseen = -1;
	if (state_store_get(env->store, mb->name, &st) > 0) {
		take_state(mb, &st);
		mb->saved_mark = st.uid;
		mb->saved_watched = st.watched;
		log_debug(&mb->log,
			  "state: UIDVALIDITY %u, last UID %u (announced up "
			  "to %u), seen at %lld with %u messages",
			  mb->uidvalidity, st.uid, mb->mark,
			  (long long)mb->seen, mb->messages);
	}
	mb->saved_uidvalidity = mb->uidvalidity;
	mb->saved_announced = mb->mark;
	mb->saved_seen = mb->seen;
	mb->saved_messages = mb->messages;
	mb->saved_modseq = mb->top_modseq;
	return mb;
}

void
mailbox_free(struct mailbox **mbp)
{
	struct mailbox *mb = *mbp;

	if (!mb)
		return;
	mailbox_save(mb, true, false, 0, 0);
	drop_batch(mb);
	free(mb->batch);
	free(mb->batch_seq);
	free(mb->account);
	free(mb->name);
	free(mb);
	*mbp = NULL;
}

void
mailbox_rebind(struct mailbox *mb, const struct account *a)
{
	mb->a = a;
}

uint32_t
mailbox_uidvalidity(const struct mailbox *mb)
{
	return mb->uidvalidity;
}

const char *
mailbox_name(const struct mailbox *mb)
{
	return mb->name;
}

int64_t
mailbox_unseen(const struct mailbox *mb)
{
	return mb->unseen;
}

bool
mailbox_set_unseen(struct mailbox *mb, uint32_t count)
{
	if (mb->unseen == count)
		return false;
	mb->unseen = count;
	return true;
}

void
mailbox_forget_unseen(struct mailbox *mb)
{
	mb->unseen = -1;
}

const struct log_ctx *
mailbox_log(const struct mailbox *mb)
{
	return &mb->log;
}
