/* sink: where new-mail events go. A small ops table; one file per backend
 * (sink_notify.c: desktop notification over D-Bus; sink_hook.c: hook
 * commands). A sink never blocks the loop and never stops the watching:
 * its failures are logged and forgotten. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "event.h"

struct copy_origin;
struct sink;

/* Seconds in which more than account_defaults.burst notifications for one
 * account become one summary. */
#define SINK_BURST_WINDOW 10
/* Messages of a summarised batch passed to summary() (for its senders). */
#define SINK_SUMMARY_FIRST 3

struct sink_ops {
	/* One new message of account a (borrowed for the call). */
	void (*send)(struct sink *s, const struct account *a,
		     const struct mail_event *ev);
	/* Optional: n messages of a/mailbox follow now, each through
	 * send(), with batch_done() after them. */
	void (*batch_start)(struct sink *s, const struct account *a,
			    const char *mailbox, size_t n);
	/* Optional: total messages shown as one summary (mail that arrived
	 * while mailwatch was away, or more at once than is sensible to
	 * show one by one); first holds the first n_first of them in UID
	 * order (borrowed). Sinks without it get nothing but batch_done. */
	void (*summary)(struct sink *s, const struct account *a,
			const char *mailbox, const struct mail_event *first,
			size_t n_first, size_t total);
	/* Optional: ev is a copy of the message announced at orig
	 * (copies.h); sinks without it get nothing. What is still shown
	 * for orig stands for it too, until both are withdrawn. */
	void (*copy)(struct sink *s, const struct account *a,
		     const struct copy_origin *orig,
		     const struct mail_event *ev);
	/* Optional: the message is no longer new: take back what was
	 * shown for it. read: it was marked \Seen elsewhere (else it was
	 * expunged, or its mailbox replaced), so a copy of it is no news
	 * either. */
	void (*withdraw)(struct sink *s, const struct account *a,
			 const char *mailbox, uint32_t uidvalidity,
			 uint32_t uid, bool read);
	/* Optional: mailbox from of a was renamed to to (the same
	 * UIDVALIDITY): what was shown for messages in from is for to's. */
	void (*rename)(struct sink *s, const struct account *a,
		       const char *from, const char *to);
	/* A batch of n messages for a/mailbox ended (n >= 1). */
	void (*batch_done)(struct sink *s, const struct account *a,
			   const char *mailbox, unsigned n);
	/* Optional: the lowest UID of account/mailbox that the sink took and
	 * has not acted on (a hook waiting; after stop() also one running,
	 * or one killed during the stop), or 0. The watcher never records a
	 * message as announced beyond it. */
	uint32_t (*unfinished)(struct sink *s, const char *account,
			       const char *mailbox);
	/* Optional: mailwatch is stopping: act on what is held back now,
	 * and count what is under way as unfinished until it ends; the loop
	 * runs on while busy() (up to a deadline). */
	void (*stop)(struct sink *s);
	/* Optional: true while the sink has work that should end before
	 * mailwatch exits (hooks waiting or running). */
	bool (*busy)(struct sink *s);
	/* Frees the sink: hooks still running are killed (after stop(),
	 * unfinished() said so), on_click commands left running. */
	void (*free)(struct sink *s);
};

struct sink {
	const struct sink_ops *ops;
};

/* Hooks waiting to start at which the owner should stop reading from the
 * servers, and at which it may read again (see sink_hook_waiting()). */
#define SINK_HOOK_HIGH 1024
#define SINK_HOOK_LOW 256

/* Runs on_new_mail per message and on_new_mail_post per batch
 * (a fixed argv, no shell; environment MAILWATCH_*; stdin /dev/null;
 * output logged, capped; the process group killed at hook_timeout, also
 * what a hook left running after it exited). At most 16 run at once; the
 * rest wait, until stop() starts them all. changed(ud) is called when
 * unfinished() may have changed (waiting hooks started; after stop(), a
 * hook ended) and when SINK_HOOK_HIGH hooks wait; it may be NULL, and it
 * may be called from inside send(). */
struct sink *sink_hook_new(sd_event *e, void (*changed)(void *ud), void *ud);
/* How many hooks of hooks (a sink from sink_hook_new()) wait to start. */
unsigned sink_hook_waiting(struct sink *hooks);
/* Runs argv once for a click on a message's notification, with the
 * message's MAILWATCH_* environment: no timeout, in a session of its own,
 * and left running when mailwatch exits (it is usually a mail client).
 * hooks must be a sink from sink_hook_new(). */
void sink_hook_launch(struct sink *hooks, const struct account *a,
		      char *const *argv, const struct mail_event *ev);

/* Sends org.freedesktop.Notifications.Notify asynchronously on the user's
 * session bus (connected lazily through the loop). Without a bus or a
 * notification server it logs once and keeps working. More than the
 * account's burst messages (in any of its mailboxes) within
 * SINK_BURST_WINDOW become one summary that replaces itself; a withdrawn
 * message's notification is closed; a click runs on_click through hooks
 * (borrowed, may be NULL). */
struct sink *sink_notify_new(sd_event *e, struct sink *hooks);

static inline void
sink_free(struct sink **s)
{
	if (*s) {
		(*s)->ops->free(*s);
		*s = NULL;
	}
}
