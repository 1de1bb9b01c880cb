/* sink_notify: a desktop notification per message, sent as an asynchronous
 * org.freedesktop.Notifications.Notify call with sd-bus on the sd-event
 * loop (not libnotify, whose show is a blocking round trip on GLib; see
 * docs/notifications.md).
 *
 * The session bus is connected on the first message and again on a later
 * message after it went away. Without a bus or a notification server the
 * sink logs one warning, drops the notification and keeps trying with the
 * next messages; it warns again only after a notification got through in
 * between. Nothing here blocks: connecting a unix socket does not wait for
 * the peer, and authentication, Hello and the reply all run on the loop. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "config.h"
#include "event.h"
#include "mime.h"
#include "sink.h"
#include "util.h"

#define NOTIFY_NAME "org.freedesktop.Notifications"
#define NOTIFY_PATH "/org/freedesktop/Notifications"
#define NOTIFY_APP "mailwatch"
#define NOTIFY_ICON "mail-unread"
/* Calls awaiting their reply; beyond that notifications are dropped until
 * the server answers (or the calls time out, after 25 s). */
#define NOTIFY_MAX_PENDING 64

struct notify_sink {
	struct sink sink;
	sd_event *event;
	sd_bus *bus;	    /* NULL until the first message */
	unsigned n_pending; /* Notify calls awaiting their reply */
	bool failing;	    /* a failure was logged, no success since */
};

/* One Notify call in flight; freed with its (floating) bus slot. */
struct notify_call {
	struct notify_sink *ns;
	char *account; /* owned, for log lines */
};

/* Logs a failure to show a notification: the first one at warning level,
 * then nothing until a notification got through again. unavailable says
 * whether nobody is there to show it (as opposed to a refusal). */
static void __attribute__((format(printf, 4, 5)))
notify_failed(struct notify_sink *ns, const char *account, bool unavailable,
	      const char *fmt, ...)
{
	struct log_ctx ctx = {.account = account};
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ns->failing) {
		log_debug(&ctx, "notification dropped: %s", msg);
		return;
	}
	ns->failing = true;
	if (unavailable)
		log_warn(&ctx,
			 "no notification server on the session bus: %s; "
			 "will keep watching",
			 msg);
	else
		log_warn(&ctx,
			 "desktop notification failed: %s; will keep watching",
			 msg);
}

/* True for errors that mean nobody is there to show notifications. */
static bool
error_is_unavailable(const sd_bus_error *e)
{
	return sd_bus_error_has_names(
		   e, SD_BUS_ERROR_SERVICE_UNKNOWN,
		   SD_BUS_ERROR_NAME_HAS_NO_OWNER, SD_BUS_ERROR_NO_REPLY,
		   SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_DISCONNECTED,
		   SD_BUS_ERROR_NO_SERVER) ||
	       (e->name &&
		!strncmp(e->name, "org.freedesktop.DBus.Error.Spawn.",
			 strlen("org.freedesktop.DBus.Error.Spawn.")));
}

static void
notify_call_free(void *userdata)
{
	struct notify_call *c = userdata;

	c->ns->n_pending--;
	free(c->account);
	free(c);
}

static int
on_notify_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct notify_call *c = userdata;
	struct notify_sink *ns = c->ns;
	struct log_ctx ctx = {.account = c->account};
	const sd_bus_error *e = sd_bus_message_get_error(m);
	uint32_t id = 0;

	(void)ret_error;
	if (e) {
		notify_failed(ns, c->account, error_is_unavailable(e), "%s: %s",
			      e->name, e->message ? e->message : "");
		return 0;
	}
	(void)sd_bus_message_read(m, "u", &id);
	if (ns->failing)
		log_info(&ctx, "desktop notifications work again");
	ns->failing = false;
	log_debug(&ctx, "notification %" PRIu32 " shown", id);
	return 0;
}

/* Connects to the session bus (DBUS_SESSION_BUS_ADDRESS, else
 * $XDG_RUNTIME_DIR/bus) unless still connected, and attaches it to the
 * loop. Returns 0 or a negative errno. */
static int
notify_connect(struct notify_sink *ns)
{
	sd_bus *bus = NULL;
	int r;

	if (ns->bus && sd_bus_is_open(ns->bus) > 0)
		return 0;
	/* Gone (the bus daemon exited or dropped us): start over. Pending
	 * calls got their error replies when the connection closed. */
	ns->bus = sd_bus_close_unref(ns->bus);

	r = sd_bus_open_user_with_description(&bus, "notify");
	if (r < 0)
		return r;
	/* We close the connection ourselves, without a (blocking) flush,
	 * and a lost session bus must not end the daemon. */
	r = sd_bus_set_close_on_exit(bus, false);
	if (r < 0)
		goto fail;
	r = sd_bus_set_exit_on_disconnect(bus, false);
	if (r < 0)
		goto fail;
	r = sd_bus_attach_event(bus, ns->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		goto fail;
	ns->bus = bus;
	return 0;

fail:
	sd_bus_close_unref(bus);
	return r;
}

static int
urgency_byte(int urgency)
{
	return urgency < 0 ? 0 : urgency > 2 ? 2 : urgency;
}

static void
notify_send(struct sink *s, const struct account *a,
	    const struct mail_event *ev)
{
	struct notify_sink *ns = (struct notify_sink *)s;
	struct log_ctx ctx = {.account = a->name, .mailbox = ev->mailbox};
	struct notify_call *c;
	sd_bus_slot *slot = NULL;
	const char *summary;
	char *body;
	int r;

	if (!a->d.notify)
		return;
	if (ns->n_pending >= NOTIFY_MAX_PENDING) {
		log_debug(&ctx, "%u notifications unanswered: dropping UID %u",
			  ns->n_pending, (unsigned)ev->uid);
		return;
	}
	r = notify_connect(ns);
	if (r < 0) {
		/* sd-bus says ENOMEDIUM when it has no address to try. */
		notify_failed(
		    ns, a->name, true, "cannot connect to the session bus: %s",
		    r == -ENOMEDIUM ? "neither DBUS_SESSION_BUS_ADDRESS "
				      "nor XDG_RUNTIME_DIR is set"
				    : strerror(-r));
		return;
	}

	summary = *ev->from_name      ? ev->from_name
		  : *ev->from_address ? ev->from_address
				      : "New mail";
	/* Servers may read the body as markup: mail must not format or
	 * link anything. */
	body = *ev->subject ? mime_escape_markup(ev->subject)
			    : xstrdup("(no subject)");
	c = xcalloc(1, sizeof(*c));
	c->ns = ns;
	c->account = xstrdup(a->name);

	r = sd_bus_call_method_async(
	    ns->bus, &slot, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_NAME, "Notify",
	    on_notify_reply, c, "susssasa{sv}i", NOTIFY_APP, (uint32_t)0,
	    a->d.icon ? a->d.icon : NOTIFY_ICON, summary, body, 0, 2,
	    "category", "s", "email.arrived", "urgency", "y",
	    urgency_byte(a->d.urgency), (int32_t)-1);
	free(body);
	if (r < 0) {
		free(c->account);
		free(c);
		notify_failed(ns, a->name, r == -ENOTCONN,
			      "cannot send Notify: %s", strerror(-r));
		return;
	}
	/* The bus owns the slot from now; it frees c with it, after the
	 * reply or when the connection goes. */
	ns->n_pending++;
	sd_bus_slot_set_destroy_callback(slot, notify_call_free);
	sd_bus_slot_set_floating(slot, true);
	sd_bus_slot_unref(slot);
	log_debug(&ctx, "notification for UID %u sent", (unsigned)ev->uid);
}

static void
notify_batch_done(struct sink *s, const struct account *a, const char *mailbox,
		  unsigned n)
{
	(void)s;
	(void)a;
	(void)mailbox;
	(void)n;
}

static void
notify_free(struct sink *s)
{
	struct notify_sink *ns = (struct notify_sink *)s;

	/* Frees the pending calls (they still point at ns). */
	sd_bus_close_unref(ns->bus);
	sd_event_unref(ns->event);
	free(ns);
}

static const struct sink_ops notify_ops = {
    .send = notify_send,
    .batch_done = notify_batch_done,
    .free = notify_free,
};

struct sink *
sink_notify_new(sd_event *e)
{
	struct notify_sink *ns = xcalloc(1, sizeof(*ns));

	ns->sink.ops = &notify_ops;
	ns->event = sd_event_ref(e);
	return &ns->sink;
}
