/* sink: where new-mail events go. A small ops table; one file per backend
 * (sink_notify.c: desktop notification over D-Bus; sink_hook.c: hook
 * commands). A sink never blocks the loop and never stops the watching:
 * its failures are logged and forgotten. */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "event.h"

struct sink;

struct sink_ops {
	/* One new message of account a (borrowed for the call). */
	void (*send)(struct sink *s, const struct account *a,
		     const struct mail_event *ev);
	/* A batch of n messages for a/mailbox ended (n >= 1). */
	void (*batch_done)(struct sink *s, const struct account *a,
			   const char *mailbox, unsigned n);
	/* Frees the sink; pending work (running hooks) is dropped or
	 * killed. */
	void (*free)(struct sink *s);
};

struct sink {
	const struct sink_ops *ops;
};

/* Runs on_new_mail per message and on_new_mail_post per batch
 * (posix_spawn, no shell; environment MAILWATCH_*; stdin /dev/null;
 * output logged, capped; killed after hook_timeout). */
struct sink *sink_hook_new(sd_event *e);
/* Sends org.freedesktop.Notifications.Notify asynchronously on the user's
 * session bus (connected lazily through the loop). Without a bus or a
 * notification server it logs once and keeps working. */
struct sink *sink_notify_new(sd_event *e);

static inline void
sink_free(struct sink **s)
{
	if (*s) {
		(*s)->ops->free(*s);
		*s = NULL;
	}
}
