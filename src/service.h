/* service: mailwatch's own D-Bus interface on the user's session bus, for
 * status bars and other programs (`mailwatch status` is its client).
 *
 *   bus name   org.mailwatch.Mailwatch
 *   object     /org/mailwatch/Mailwatch
 *   interface  org.mailwatch.Mailwatch1
 *
 * Properties (all emit PropertiesChanged with their values):
 *   Version    s          mailwatch's version
 *   Unseen     u          unseen messages over every mailbox whose count
 *                         is known
 *   Accounts   a(sbsu)    name; whether every mailbox is watched; how
 *                         (as the status line says); unseen messages
 *                         over its mailboxes whose count is known
 *   Mailboxes  a(ssbissx) account; mailbox (UTF-8); watched; unseen
 *                         (-1: not known yet); the last new message's
 *                         From and Subject, and when it was announced
 *                         (seconds since the epoch; 0: none since start)
 * Signals:
 *   NewMail    (ssuussssss) account, mailbox, uidvalidity, uid, from,
 *                         from_name, from_address, subject, date,
 *                         message_id: what the hooks get, per message
 * Methods:
 *   CheckNow   ()         probe every connection, as after a resume
 *   Reload     ()         load the configuration again (as SIGHUP)
 *
 * Changes are coalesced: PropertiesChanged goes out at most once per
 * SERVICE_COALESCE_MS, and only for properties whose value changed since
 * the last one sent. Nothing is sent, and no timer runs, while nothing
 * changes. Without a session bus the daemon works on without the
 * interface (logged once). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "sink.h"

#define SERVICE_NAME "org.mailwatch.Mailwatch"
#define SERVICE_PATH "/org/mailwatch/Mailwatch"
#define SERVICE_IFACE "org.mailwatch.Mailwatch1"
#define SERVICE_COALESCE_MS 100

/* One watched mailbox, as the daemon sees it; strings borrowed for the
 * call. */
struct service_box {
	const char *account, *mailbox;
	bool watched;
	int64_t unseen; /* -1: not known yet */
};

/* What the service asks of the daemon; called from the loop. */
struct service_ops {
	/* For every account: box() for each of its mailboxes, then
	 * account() (ok: every mailbox watched; state as the status line
	 * says it; unseen: the sum of its mailboxes' known counts). */
	void (*each)(void *ud, void *fud,
		     void (*box)(void *fud, const struct service_box *b),
		     void (*account)(void *fud, const char *name, bool ok,
				     const char *state, uint64_t unseen));
	void (*check_now)(void *ud);
	void (*reload)(void *ud);
};

struct service;

/* Connects to the session bus and offers the interface (asynchronously;
 * never blocks). ops and ud are borrowed and must outlive the service.
 * Never fails: without a bus it logs why and does nothing. */
struct service *service_new(sd_event *e, const struct service_ops *ops,
			    void *ud);
/* The service as a sink: each message sent becomes a NewMail signal and
 * its mailbox's last new message. The sink owns the service: sink_free()
 * on it disconnects and frees both. */
struct sink *service_sink(struct service *svc);
/* Something the properties show may have changed. */
void service_changed(struct service *svc);
