/* watcher: one IMAP connection (transport + session) that watches one
 * mailbox of an account with IDLE (or NOOP polling) and feeds what it
 * reports to that mailbox (mailbox.c: the UID bookkeeping, the state file,
 * the batches handed to the sinks). Owns the connection's life: connecting,
 * timers, reconnects with capped exponential back-off plus jitter, the
 * clean stop, and the deferred state writes the mailbox asks for. Runs on
 * an sd-event loop; never blocks. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "sink.h"

struct watcher;

/* What the watcher needs from its owner; all borrowed and outliving the
 * watcher. */
struct watcher_env {
	sd_event *event;
	struct sink **sinks; /* n_sinks sinks, each gets every message */
	size_t n_sinks;
	/* Called whenever the watcher's state changes (for the status line);
	 * may be NULL. */
	void (*changed)(void *ud);
	void *ud;
};

/* Creates the watcher for mailbox (UTF-8, copied) of account a (borrowed)
 * and starts connecting. password is borrowed and must outlive it. */
struct watcher *watcher_new(const struct watcher_env *env,
			    const struct account *a, const char *mailbox,
			    const char *password);
/* Saves state, closes the connection at once (no LOGOUT), frees. The
 * sinks must still exist. */
void watcher_free(struct watcher **w);

/* Brings the state file up to date (after queued hooks started) once the
 * loop is idle. */
void watcher_save(struct watcher *w);

/* After a reload: a is the new configuration's account, equal in every
 * setting (config_account_equal) to the one the watcher had. The
 * connection stays. */
void watcher_rebind(struct watcher *w, const struct account *a);

/* Starts a clean stop: LOGOUT, then close. watcher_stopped() turns true
 * when the connection is gone. */
void watcher_stop(struct watcher *w);
bool watcher_stopped(const struct watcher *w);

/* Checks a connection that may have died while the machine slept: sends a
 * NOOP-like probe if connected and reconnects now if waiting to. */
void watcher_probe(struct watcher *w);

/* True after an error retrying cannot fix (rejected password, missing
 * STARTTLS): the watcher waits for a reload. */
bool watcher_gave_up(const struct watcher *w);

/* True while in IDLE (or waiting to poll). */
bool watcher_is_idle(const struct watcher *w);
/* A short description for the status line, e.g. "reconnecting in 30 s";
 * borrowed, valid until the next call. */
const char *watcher_describe(struct watcher *w);
