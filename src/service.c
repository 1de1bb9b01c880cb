/* service: the org.mailwatch.Mailwatch1 interface (see service.h). The
 * properties are not stored here: each Get walks the daemon's mailboxes
 * (service_ops.each) and builds the answer, so it can never drift from
 * what the daemon knows. What the service keeps is each mailbox's last
 * new message (it sees them as a sink) and, per property, the text of the
 * value it last announced, to send PropertiesChanged only for a real
 * change. */
#include "service.h"

#include <errno.h>
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "event.h"
#include "util.h"

/* After a failed connection to the session bus, the next try comes no
 * sooner than this (usec). */
#define RETRY_USEC (5 * 1000000ULL)

enum prop { P_UNSEEN, P_ACCOUNTS, P_MAILBOXES, N_PROPS };

static const char *const prop_name[N_PROPS] = {
	[P_UNSEEN] = "Unseen",
	[P_ACCOUNTS] = "Accounts",
	[P_MAILBOXES] = "Mailboxes",
};

/* The last new message announced in a mailbox; kept in a tsearch tree
 * by account and mailbox. */
struct last {
	char *account, *mailbox;
	char *from, *subject;
	/* Microseconds since the epoch; later than every other mailbox's,
	 * so that the newest is known also within one second. */
	int64_t when;
};

struct service {
	struct sink sink;
	sd_event *event;
	const struct service_ops *ops;
	void *ud;
	sd_bus *bus;              /* NULL while not connected */
	sd_event_source *flush;   /* the coalescing timer, armed on change */
	void *last;               /* tsearch tree of struct last */
	char *sent[N_PROPS];      /* each property's value last announced */
	int64_t last_when;        /* the latest struct last's when */
	bool warned;              /* "no session bus" logged */
	bool queued;              /* waiting for the name: said so */
	uint64_t retry_at;        /* CLOCK_MONOTONIC usec: no try before */
};

/* ---- the properties, walked from the daemon ---- */

/* One walk over the daemon's mailboxes for property which: appends to m
 * when set, else prints to f (the text compared between changes). */
struct walk {
	struct service *svc;
	enum prop which;
	sd_bus_message *m;
	FILE *f;
	uint64_t unseen;
	int r;
};

static int
last_cmp(const void *a, const void *b)
{
	const struct last *x = a, *y = b;
	int c = strcmp(x->account, y->account);

	return c ? c : strcmp(x->mailbox, y->mailbox);
}

static struct last *
last_find(struct service *svc, const char *account, const char *mailbox)
{
	struct last key = {.account = (char *)account,
			   .mailbox = (char *)mailbox};
	struct last *const *l = tfind(&key, &svc->last, last_cmp);

	return l ? *l : NULL;
}

static void
last_free(void *p)
{
	struct last *l = p;

	free(l->account);
	free(l->mailbox);
	free(l->from);
	free(l->subject);
	free(l);
}

static void
walk_box(void *fud, const struct service_box *b)
{
	struct walk *w = fud;
	const struct last *l;

	if (b->unseen > 0)
		w->unseen += (uint64_t)b->unseen;
	if (w->which != P_MAILBOXES || w->r < 0)
		return;
	l = last_find(w->svc, b->account, b->mailbox);
	if (w->m)
		w->r = sd_bus_message_append(
		    w->m, "(ssbissx)", b->account, b->mailbox, b->watched,
		    (int32_t)(b->unseen > INT32_MAX ? INT32_MAX : b->unseen),
		    l ? l->from : "", l ? l->subject : "",
		    (int64_t)(l ? l->when : 0));
	else
		fprintf(w->f, "%s\t%s\t%d\t%" PRId64 "\t%s\t%s\t%" PRId64 "\n",
			b->account, b->mailbox, b->watched, b->unseen,
			l ? l->from : "", l ? l->subject : "",
			l ? l->when : (int64_t)0);
}

static void
walk_account(void *fud, const char *name, bool ok, const char *state,
	     uint64_t unseen)
{
	struct walk *w = fud;
	uint32_t u = unseen > UINT32_MAX ? UINT32_MAX : (uint32_t)unseen;

	if (w->which != P_ACCOUNTS || w->r < 0)
		return;
	if (w->m)
		w->r = sd_bus_message_append(w->m, "(sbsu)", name, ok, state,
					     u);
	else
		fprintf(w->f, "%s\t%d\t%s\t%" PRIu32 "\n", name, ok, state,
			u);
}

static const char *const prop_sig[N_PROPS] = {
	[P_UNSEEN] = "u",
	[P_ACCOUNTS] = "(sbsu)",
	[P_MAILBOXES] = "(ssbissx)",
};

/* Appends property which to m. Returns 0 or a negative errno. */
static int
append_prop(struct service *svc, enum prop which, sd_bus_message *m)
{
	struct walk w = {.svc = svc, .which = which, .m = m};

	if (which == P_UNSEEN) {
		svc->ops->each(svc->ud, &w, walk_box, walk_account);
		return sd_bus_message_append(
		    m, "u", (uint32_t)(w.unseen > UINT32_MAX ? UINT32_MAX
							       : w.unseen));
	}
	w.r = sd_bus_message_open_container(m, 'a', prop_sig[which]);
	if (w.r < 0)
		return w.r;
	svc->ops->each(svc->ud, &w, walk_box, walk_account);
	if (w.r < 0)
		return w.r;
	return sd_bus_message_close_container(m);
}

/* Property which as text, to tell whether it changed; caller frees. */
static char *
prop_text(struct service *svc, enum prop which)
{
	struct walk w = {.svc = svc, .which = which};
	char *text = NULL;
	size_t len = 0;

	w.f = open_memstream(&text, &len);
	if (!w.f)
		abort();
	svc->ops->each(svc->ud, &w, walk_box, walk_account);
	if (which == P_UNSEEN)
		fprintf(w.f, "%" PRIu64, w.unseen);
	fclose(w.f);
	return text;
}

static int
get_prop(sd_bus *bus, const char *path, const char *iface, const char *prop,
	 sd_bus_message *reply, void *ud, sd_bus_error *err)
{
	(void)bus;
	(void)path;
	(void)iface;
	(void)err;
	for (int i = 0; i < N_PROPS; i++)
		if (!strcmp(prop, prop_name[i]))
			return append_prop(ud, i, reply);
	return -ENOENT;
}

static int
get_version(sd_bus *bus, const char *path, const char *iface,
	    const char *prop, sd_bus_message *reply, void *ud,
	    sd_bus_error *err)
{
	(void)bus;
	(void)path;
	(void)iface;
	(void)prop;
	(void)ud;
	(void)err;
	return sd_bus_message_append(reply, "s", MAILWATCH_VERSION);
}

static int
method_check_now(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct service *svc = ud;

	(void)err;
	log_info(NULL, "CheckNow over D-Bus: probing every connection");
	svc->ops->check_now(svc->ud);
	return sd_bus_reply_method_return(m, NULL);
}

static int
method_reload(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct service *svc = ud;

	(void)err;
	svc->ops->reload(svc->ud);
	return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Version", "s", get_version, 0,
		    SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Unseen", "u", get_prop, 0,
		    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Accounts", "a(sbsu)", get_prop, 0,
		    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Mailboxes", "a(ssbissx)", get_prop, 0,
		    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_METHOD("CheckNow", "", "", method_check_now, 0),
    SD_BUS_METHOD("Reload", "", "", method_reload, 0),
    SD_BUS_SIGNAL_WITH_NAMES("NewMail", "ssuussssss",
			     SD_BUS_PARAM(account) SD_BUS_PARAM(mailbox)
				 SD_BUS_PARAM(uidvalidity) SD_BUS_PARAM(uid)
				     SD_BUS_PARAM(from) SD_BUS_PARAM(from_name)
					 SD_BUS_PARAM(from_address)
					     SD_BUS_PARAM(subject)
						 SD_BUS_PARAM(date)
						     SD_BUS_PARAM(message_id),
			     0),
    SD_BUS_VTABLE_END,
};

/* ---- the bus connection ---- */

/* RequestName's answer when another connection owns the name and this
 * one waits in its queue (the D-Bus specification). */
#define REQUEST_NAME_IN_QUEUE 2

static int
on_name(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct service *svc = ud;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	uint32_t got = 0;

	(void)err;
	if (e)
		log_warn(NULL,
			 "cannot own %s on the session bus (%s): is another "
			 "mailwatch running?",
			 SERVICE_NAME, e->message ? e->message : e->name);
	else if (sd_bus_message_read(m, "u", &got) > 0 &&
		 got == REQUEST_NAME_IN_QUEUE) {
		log_warn(NULL,
			 "another mailwatch owns %s on the session bus: "
			 "'mailwatch status' shows that one; this one takes "
			 "the name over once it stops",
			 SERVICE_NAME);
		svc->queued = true;
	}
	return 0;
}

/* NameAcquired: after waiting in the queue, the name is ours. */
static int
on_acquired(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct service *svc = ud;
	const char *name = NULL;

	(void)err;
	if (svc->queued && sd_bus_message_read(m, "s", &name) > 0 &&
	    !strcmp(name, SERVICE_NAME)) {
		log_info(NULL, "took over %s on the session bus", SERVICE_NAME);
		svc->queued = false;
	}
	return 0;
}

/* Connects unless connected: the object, then the name (asynchronously).
 * Returns true when connected. After a failure, tries again only
 * RETRY_USEC later (a burst of new mail would try at each message). Logs
 * the first failure only. */
static bool
service_connect(struct service *svc)
{
	sd_bus *bus = NULL;
	uint64_t now = 0;
	int r;

	if (svc->bus && sd_bus_is_open(svc->bus) > 0)
		return true;
	svc->bus = sd_bus_close_unref(svc->bus);
	svc->queued = false;
	sd_event_now(svc->event, CLOCK_MONOTONIC, &now);
	if (now < svc->retry_at)
		return false;
	r = sd_bus_open_user_with_description(&bus, "service");
	if (r >= 0)
		r = sd_bus_set_close_on_exit(bus, false);
	if (r >= 0)
		r = sd_bus_set_exit_on_disconnect(bus, false);
	if (r >= 0)
		r = sd_bus_add_object_vtable(bus, NULL, SERVICE_PATH,
					     SERVICE_IFACE, vtable, svc);
	if (r >= 0)
		r = sd_bus_match_signal_async(
		    bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
		    "org.freedesktop.DBus", "NameAcquired", on_acquired, NULL,
		    svc);
	if (r >= 0)
		r = sd_bus_request_name_async(bus, NULL, SERVICE_NAME,
					      SD_BUS_NAME_QUEUE, on_name, svc);
	if (r >= 0)
		r = sd_bus_attach_event(bus, svc->event,
					SD_EVENT_PRIORITY_NORMAL);
	if (r < 0) {
		sd_bus_close_unref(bus);
		svc->retry_at = now + RETRY_USEC;
		if (!svc->warned)
			log_info(NULL,
				 "no session bus (%s): %s is not offered",
				 r == -ENOMEDIUM ? "neither "
						   "DBUS_SESSION_BUS_ADDRESS "
						   "nor XDG_RUNTIME_DIR is set"
						 : strerror(-r),
				 SERVICE_IFACE);
		svc->warned = true;
		return false;
	}
	svc->bus = bus;
	return true;
}

/* The coalescing timer: PropertiesChanged for what changed since the
 * last one. */
static int
on_flush(sd_event_source *src, uint64_t usec, void *ud)
{
	struct service *svc = ud;
	char *changed[N_PROPS + 1] = {0};
	size_t n = 0;

	(void)src;
	(void)usec;
	if (!service_connect(svc))
		return 0;
	for (int i = 0; i < N_PROPS; i++) {
		char *text = prop_text(svc, i);

		if (svc->sent[i] && !strcmp(text, svc->sent[i])) {
			free(text);
			continue;
		}
		free(svc->sent[i]);
		svc->sent[i] = text;
		changed[n++] = (char *)prop_name[i];
	}
	if (n)
		sd_bus_emit_properties_changed_strv(svc->bus, SERVICE_PATH,
						    SERVICE_IFACE, changed);
	return 0;
}

void
service_changed(struct service *svc)
{
	uint64_t now;
	int on = SD_EVENT_OFF;

	sd_event_source_get_enabled(svc->flush, &on);
	if (on != SD_EVENT_OFF)
		return;
	sd_event_now(svc->event, CLOCK_MONOTONIC, &now);
	sd_event_source_set_time(svc->flush,
				 now + SERVICE_COALESCE_MS * 1000ULL);
	sd_event_source_set_enabled(svc->flush, SD_EVENT_ONESHOT);
}

/* ---- the sink ---- */

static struct service *
service_of(struct sink *s)
{
	return (struct service *)s;
}

static void
service_send(struct sink *s, const struct account *a,
	     const struct mail_event *ev)
{
	struct service *svc = service_of(s);
	struct last *l = last_find(svc, a->name, ev->mailbox);
	uint64_t now;

	if (!l) {
		l = xcalloc(1, sizeof(*l));
		l->account = xstrdup(a->name);
		l->mailbox = xstrdup(ev->mailbox);
		if (!tsearch(l, &svc->last, last_cmp))
			abort(); /* out of memory, as in xmalloc() */
	}
	free(l->from);
	free(l->subject);
	l->from = xstrdup(ev->from);
	l->subject = xstrdup(ev->subject);
	sd_event_now(svc->event, CLOCK_REALTIME, &now);
	l->when = (int64_t)now > svc->last_when ? (int64_t)now
						 : svc->last_when + 1;
	svc->last_when = l->when;
	service_changed(svc);
	if (!service_connect(svc))
		return;
	sd_bus_emit_signal(svc->bus, SERVICE_PATH, SERVICE_IFACE, "NewMail",
			   "ssuussssss", a->name, ev->mailbox,
			   ev->uidvalidity, ev->uid, ev->from, ev->from_name,
			   ev->from_address, ev->subject, ev->date,
			   ev->message_id);
}

static void
service_batch_done(struct sink *s, const struct account *a,
		   const char *mailbox, unsigned n)
{
	(void)s;
	(void)a;
	(void)mailbox;
	(void)n;
}

static void
service_free(struct sink *s)
{
	struct service *svc = service_of(s);

	tdestroy(svc->last, last_free);
	for (int i = 0; i < N_PROPS; i++)
		free(svc->sent[i]);
	sd_event_source_disable_unref(svc->flush);
	sd_bus_close_unref(svc->bus);
	sd_event_unref(svc->event);
	free(svc);
}

/* The last new message of a's mailbox from is to's now. */
static void
service_rename(struct sink *s, const struct account *a, const char *from,
	       const char *to)
{
	struct service *svc = service_of(s);
	struct last *l = last_find(svc, a->name, from), *old;

	if (!l)
		return;
	tdelete(l, &svc->last, last_cmp);
	old = last_find(svc, a->name, to);
	if (old) {
		tdelete(old, &svc->last, last_cmp);
		last_free(old);
	}
	free(l->mailbox);
	l->mailbox = xstrdup(to);
	if (!tsearch(l, &svc->last, last_cmp))
		abort(); /* out of memory, as in xmalloc() */
	service_changed(svc);
}

static const struct sink_ops service_ops = {
    .send = service_send,
    .rename = service_rename,
    .batch_done = service_batch_done,
    .free = service_free,
};

struct sink *
service_sink(struct service *svc)
{
	return &svc->sink;
}

struct service *
service_new(sd_event *e, const struct service_ops *ops, void *ud)
{
	struct service *svc = xcalloc(1, sizeof(*svc));
	int r;

	svc->sink.ops = &service_ops;
	svc->event = sd_event_ref(e);
	svc->ops = ops;
	svc->ud = ud;
	r = sd_event_add_time(e, &svc->flush, CLOCK_MONOTONIC, 0,
			      SERVICE_COALESCE_MS * 1000ULL / 4, on_flush,
			      svc);
	if (r >= 0)
		r = sd_event_source_set_enabled(svc->flush, SD_EVENT_OFF);
	if (r < 0) {
		log_err(NULL, "event loop: %s", strerror(-r));
		abort();
	}
	service_connect(svc);
	return svc;
}
