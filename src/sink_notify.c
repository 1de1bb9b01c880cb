/* sink_notify: a desktop notification per message, sent as an asynchronous
 * org.freedesktop.Notifications.Notify call with sd-bus on the sd-event
 * loop (not libnotify, whose show is a blocking round trip on GLib; see
 * docs/notifications.md).
 *
 * It remembers the notifications it showed (a bounded table) so that it can
 * close one when its message is read or deleted elsewhere (withdraw), run
 * on_click when one is clicked (ActionInvoked), and fold a burst of mail in
 * one mailbox into one summary that replaces itself.
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
#include "copies.h"
#include "event.h"
#include "mime.h"
#include "sink.h"
#include "util.h"

#define NOTIFY_NAME "org.freedesktop.Notifications"
#define NOTIFY_PATH "/org/freedesktop/Notifications"
#define NOTIFY_APP "mailwatch"
#define NOTIFY_ICON "mail-unread"
/* Calls awaiting their reply (each a few hundred bytes in sd-bus's
 * queue); beyond that notifications are dropped until the server answers
 * or the calls time out (NOTIFY_REPLY_USEC). Enough for a large batch shown
 * one by one (burst = 0); a hung server cannot make it grow without
 * bound. */
#define NOTIFY_MAX_PENDING 1024
/* How long a Notify call may await its reply. A server that stalls (a
 * frozen session, a stopped process) shows the notifications when it goes
 * on, and only the reply's id lets a notification be closed once its
 * message is read: sd-bus's default of 25 s left popups of read mail on
 * screen for good (trial O). A server that is gone is an error at once. */
#define NOTIFY_REPLY_USEC (10 * 60 * UINT64_C(1000000))
/* A reply later than this says the server stalled (logged once until one
 * comes in time again): sd-bus's default call timeout, which used to say
 * so with an error. */
#define NOTIFY_SLOW_USEC (25 * UINT64_C(1000000))

/* Notifications remembered for withdraw and on_click; the oldest is
 * forgotten beyond this. */
#define NOTIFY_MAX_SHOWN 128
/* Bytes of a sender's name in a notification: a whole line, not a page
 * that hides the subject. */
#define NOTIFY_SENDER_MAX 100
/* Senders, and mailboxes, a summary names. */
#define SUMMARY_NAMES SINK_SUMMARY_FIRST

/* Copies of a message (copies.h) one notification stands for beside its
 * own: a Gmail label or two, a folder a filter moved it to. */
#define SHOWN_COPIES 3
/* Notes kept of copies whose notification is not there (struct notes),
 * each for NOTE_USEC: a move is seen as its expunge and its copy within
 * a push or two, and a copy that comes later is of a message the user
 * deleted (trial O: it came back 15 s after). */
#define NOTES_MAX 16
#define NOTE_USEC (10 * UINT64_C(1000000))

/* Where a message is. */
struct place {
	char *mailbox;
	uint32_t uidvalidity, uid;
};

/* A note of account's message first announced at orig, and of a copy of
 * it (copy.mailbox NULL: none); account NULL: a free slot. */
struct note {
	char *account;
	struct place orig, copy;
	uint64_t at; /* usec, CLOCK_MONOTONIC, when it was put */
};

/* The last NOTES_MAX notes, a ring. */
struct notes {
	struct note v[NOTES_MAX];
	unsigned next;
};

/* Messages a summary counts, in the order they came, each mailbox and
 * sender owned (sender NULL: not kept); partial: not all of them (more
 * than SUMMARY_TRACKED, or mail that came while away, of which only the
 * first few are known). */
#define SUMMARY_TRACKED 64
struct places {
	struct place v[SUMMARY_TRACKED];
	char *sender[SUMMARY_TRACKED];
	unsigned n;
	bool partial;
};

/* A notification shown (or being shown) for one message, or a summary
 * (uid 0) for an account. */
struct shown {
	struct shown *next;
	char *account, *mailbox;
	uint32_t uidvalidity, uid;
	/* The message's copies; the notification is closed when it and
	 * they are all withdrawn. */
	struct place copies[SHOWN_COPIES];
	unsigned n_copies;
	/* Where the message was first announced (copies.h), when that is
	 * not mailbox/uid: a copy shown again after a move. */
	struct place origin;
	uint64_t at;	  /* usec, CLOCK_MONOTONIC, when it was sent */
	char *sender;	  /* a message's, as its summary would name it */
	/* A summary: the messages it counts that are left unread (it is
	 * closed when none is, unless partial); NULL for a message. */
	struct places *of;
	uint32_t id;	  /* the server's id, 0 until the reply */
	bool withdrawn;	  /* close it as soon as the id is known */
	struct notify_call *call; /* the Notify in flight, or NULL */
	char **on_click;  /* owned argv, NULL without a click action */
	struct mail_event ev; /* owned strings, for on_click */
};

/* The first few different names (senders, mailboxes) a summary names;
 * more: there were others. */
struct firsts {
	char *v[SUMMARY_NAMES];
	unsigned n;
	bool more;
};

/* Recent notifications of one account, to notice a burst: mail in several
 * mailboxes at once is one summary too, not a popup per mailbox. */
struct burst {
	struct burst *next;
	char *account;
	/* usec, CLOCK_MONOTONIC: the window's start and its last message.
	 * Once a summary is shown the window lasts while mail keeps coming
	 * (a trickle is one summary, not one every SINK_BURST_WINDOW). */
	uint64_t start, last;
	unsigned count;	   /* messages in the window */
	size_t coming;	   /* of the batch being sent, still to come */
	struct firsts senders, mailboxes;
	struct places of;  /* the messages it counts */
	struct shown *summary; /* the summary shown for this window */
	bool dirty;	   /* the summary must be (re)sent */
	char *icon;	   /* the account's look, for a summary sent later */
	int urgency;
};

struct notify_sink {
	struct sink sink;
	sd_event *event;
	struct sink *hooks; /* for on_click; borrowed, may be NULL */
	sd_bus *bus;	    /* NULL until the first message */
	unsigned n_pending; /* Notify calls awaiting their reply */
	unsigned dropped;   /* not sent since NOTIFY_MAX_PENDING was reached */
	bool failing;	    /* a failure was logged, no success since */
	bool slow;	    /* a late reply was logged, none in time since */
	struct shown *shown; /* newest first */
	unsigned n_shown;
	struct burst *bursts;
	/* Where the messages of the last notifications a withdraw closed
	 * were first announced: a copy of one shows it again (a move is
	 * often seen as the expunge first). */
	struct notes withdrawn;
	/* Copies of messages not shown yet: a batch with a message twice
	 * tells of the copy before the message is sent. */
	struct notes pending;
};

/* One Notify call in flight; freed with its (floating) bus slot. */
struct notify_call {
	struct notify_sink *ns;
	char *account; /* owned, for log lines */
	uint64_t sent;	/* usec, CLOCK_MONOTONIC */
	struct shown *shown; /* the entry whose id this reply gives, or NULL
				once the entry was forgotten */
};

/* Logs a failure to show a notification: the first one at warning level,
 * then nothing until a notification got through again. unavailable says
 * whether nobody is there to show it (as opposed to a refusal). */
static void __attribute__((format(printf, 4, 5)))
notify_failed(struct notify_sink *ns, const char *account, bool unavailable,
	      const char *fmt, ...)
{
	/* A missing server is nobody's account's: no account name then. */
	struct log_ctx ctx = {.account = unavailable ? NULL : account};
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

static uint64_t now_usec(struct notify_sink *ns);
static void close_shown(struct notify_sink *ns, struct shown *sh);
struct burst;
static void flush_summary(struct notify_sink *ns, struct burst *b);

static void
notify_call_free(void *userdata)
{
	struct notify_call *c = userdata;

	c->ns->n_pending--;
	if (c->ns->dropped && c->ns->n_pending < NOTIFY_MAX_PENDING / 2) {
		log_warn(&(struct log_ctx){c->account, NULL},
			 "%u notification%s dropped while the "
			 "notification server was behind",
			 c->ns->dropped, c->ns->dropped == 1 ? "" : "s");
		c->ns->dropped = 0;
	}
	if (c->shown)
		c->shown->call = NULL;
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
	struct shown *sh;
	uint32_t id = 0;

	(void)ret_error;
	if (e) {
		notify_failed(ns, c->account, error_is_unavailable(e), "%s: %s",
			      e->name, e->message ? e->message : "");
		return 0;
	}
	(void)sd_bus_message_read(m, "u", &id);
	if (ns->failing)
		log_info(NULL, "desktop notifications work again");
	ns->failing = false;
	if (now_usec(ns) - c->sent <= NOTIFY_SLOW_USEC) {
		ns->slow = false;
	} else if (!ns->slow) {
		ns->slow = true;
		log_warn(NULL,
			 "the notification server answered after %llu s: "
			 "notifications were shown late",
			 (unsigned long long)((now_usec(ns) - c->sent) /
					      1000000));
	}
	log_debug(&ctx, "notification %" PRIu32 " shown", id);
	sh = c->shown;
	if (!sh)
		return 0;
	sh->id = id;
	if (sh->withdrawn) {
		close_shown(ns, sh);
		return 0;
	}
	for (struct burst *b = ns->bursts; b; b = b->next)
		if (b->summary == sh && b->dirty)
			flush_summary(ns, b);
	return 0;
}

static int
urgency_byte(int urgency)
{
	return urgency < 0 ? 0 : urgency > 2 ? 2 : urgency;
}

/* ---- the table of notifications shown ---- */

static struct place
place_dup(const char *mailbox, uint32_t uidvalidity, uint32_t uid)
{
	return (struct place){xstrdup(mailbox), uidvalidity, uid};
}

static bool
place_is(const struct place *p, const char *mailbox, uint32_t uidvalidity,
	 uint32_t uid)
{
	return p->uid == uid && p->uidvalidity == uidvalidity &&
	       !strcmp(p->mailbox, mailbox);
}

static void
note_clear(struct note *n)
{
	freep(&n->account);
	freep(&n->orig.mailbox);
	freep(&n->copy.mailbox);
}

/* Notes account's orig and copy (owned from now), over the oldest note. */
static void
notes_put(struct notes *r, const char *account, struct place orig,
	  struct place copy, uint64_t now)
{
	struct note *n = &r->v[r->next];

	r->next = (r->next + 1) % NOTES_MAX;
	note_clear(n);
	*n = (struct note){xstrdup(account), orig, copy, now};
}

/* Takes a note of account's message first announced at orig, put less
 * than NOTE_USEC before now: true, with its copy (owned) in *copy_r, or
 * false when there is none. */
static bool
notes_take(struct notes *r, const char *account, const struct place *orig,
	   struct place *copy_r, uint64_t now)
{
	for (unsigned i = 0; i < NOTES_MAX; i++) {
		struct note *n = &r->v[i];

		if (!n->account || strcmp(n->account, account) ||
		    now - n->at >= NOTE_USEC ||
		    !place_is(&n->orig, orig->mailbox, orig->uidvalidity,
			      orig->uid))
			continue;
		*copy_r = n->copy;
		n->copy.mailbox = NULL;
		note_clear(n);
		return true;
	}
	return false;
}

static void
places_add(struct places *p, const char *sender, const char *mailbox,
	   uint32_t uidvalidity, uint32_t uid)
{
	if (p->n == SUMMARY_TRACKED) {
		p->partial = true;
		return;
	}
	p->sender[p->n] = sender ? xstrdup(sender) : NULL;
	p->v[p->n++] = place_dup(mailbox, uidvalidity, uid);
}

/* True when the message was in p: it is not any more. */
static bool
places_take(struct places *p, const char *mailbox, uint32_t uidvalidity,
	    uint32_t uid)
{
	for (unsigned i = 0; i < p->n; i++) {
		if (!place_is(&p->v[i], mailbox, uidvalidity, uid))
			continue;
		free(p->v[i].mailbox);
		free(p->sender[i]);
		p->n--;
		memmove(&p->v[i], &p->v[i + 1], (p->n - i) * sizeof(*p->v));
		memmove(&p->sender[i], &p->sender[i + 1],
			(p->n - i) * sizeof(*p->sender));
		return true;
	}
	return false;
}

static void
places_clear(struct places *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		free(p->v[i].mailbox);
		free(p->sender[i]);
	}
	p->n = 0;
	p->partial = false;
}

static struct places *
places_dup(const struct places *p)
{
	struct places *d = xcalloc(1, sizeof(*d));

	for (unsigned i = 0; i < p->n; i++)
		places_add(d, p->sender[i], p->v[i].mailbox,
			   p->v[i].uidvalidity, p->v[i].uid);
	d->partial = p->partial;
	return d;
}

static void
shown_free(struct shown *sh)
{
	if (sh->call)
		sh->call->shown = NULL;
	free(sh->account);
	free(sh->mailbox);
	for (unsigned i = 0; i < sh->n_copies; i++)
		free(sh->copies[i].mailbox);
	free(sh->origin.mailbox);
	free(sh->sender);
	if (sh->of)
		places_clear(sh->of);
	free(sh->of);
	config_argv_free(&sh->on_click);
	mail_event_finish(&sh->ev);
	free(sh);
}

/* Unlinks sh from the table (and from its burst) and frees it. */
static void
shown_remove(struct notify_sink *ns, struct shown *sh)
{
	for (struct shown **p = &ns->shown; *p; p = &(*p)->next) {
		if (*p == sh) {
			*p = sh->next;
			ns->n_shown--;
			break;
		}
	}
	for (struct burst *b = ns->bursts; b; b = b->next)
		if (b->summary == sh)
			b->summary = NULL;
	shown_free(sh);
}

/* Adds an entry for a notification about to be sent; forgets the oldest
 * beyond NOTIFY_MAX_SHOWN. */
static struct shown *
shown_add(struct notify_sink *ns, const struct account *a, const char *mailbox,
	  uint32_t uidvalidity, uint32_t uid)
{
	struct shown *sh = xcalloc(1, sizeof(*sh));

	sh->at = now_usec(ns);
	sh->account = xstrdup(a->name);
	sh->mailbox = xstrdup(mailbox);
	sh->uidvalidity = uidvalidity;
	sh->uid = uid;
	sh->next = ns->shown;
	ns->shown = sh;
	if (++ns->n_shown > NOTIFY_MAX_SHOWN) {
		struct shown *last = ns->shown;

		while (last->next)
			last = last->next;
		shown_remove(ns, last);
	}
	return sh;
}

static struct shown *
shown_by_id(struct notify_sink *ns, uint32_t id)
{
	for (struct shown *sh = ns->shown; sh; sh = sh->next)
		if (sh->id == id && id)
			return sh;
	return NULL;
}

static void
shown_clear(struct notify_sink *ns)
{
	while (ns->shown)
		shown_remove(ns, ns->shown);
}

/* Closes sh's notification (once its id is known) and forgets it. */
static void
close_shown(struct notify_sink *ns, struct shown *sh)
{
	if (!sh->id) {
		sh->withdrawn = true;
		return;
	}
	if (ns->bus)
		(void)sd_bus_call_method_async(ns->bus, NULL, NOTIFY_NAME,
					       NOTIFY_PATH, NOTIFY_NAME,
					       "CloseNotification", NULL, NULL,
					       "u", sh->id);
	shown_remove(ns, sh);
}

/* ---- signals from the notification server ---- */

static int
on_closed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct notify_sink *ns = userdata;
	struct shown *sh;
	uint32_t id, reason;

	(void)ret_error;
	if (sd_bus_message_read(m, "uu", &id, &reason) < 0)
		return 0;
	sh = shown_by_id(ns, id);
	if (!sh)
		return 0;
	/* Expired or dismissed: shown, a copy of it is not shown again. */
	log_debug(&(struct log_ctx){sh->account, NULL},
		  "notification %" PRIu32 " closed (reason %" PRIu32 ")", id,
		  reason);
	shown_remove(ns, sh);
	return 0;
}

static int
on_action(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct notify_sink *ns = userdata;
	const char *key;
	struct shown *sh;
	uint32_t id;

	(void)ret_error;
	if (sd_bus_message_read(m, "us", &id, &key) < 0)
		return 0;
	sh = shown_by_id(ns, id);
	if (!sh || !sh->on_click || strcmp(key, "default") || !ns->hooks)
		return 0;
	/* Only the name: the configuration may have been reloaded since. */
	struct account a = {.name = sh->account};

	log_debug(&(struct log_ctx){sh->account, sh->mailbox},
		  "notification for UID %u clicked", sh->uid);
	sink_hook_launch(ns->hooks, &a, sh->on_click, &sh->ev);
	return 0;
}

/* Connects to the session bus (DBUS_SESSION_BUS_ADDRESS, else
 * $XDG_RUNTIME_DIR/bus) unless still connected, attaches it to the loop
 * and subscribes to the server's signals. Returns 0 or a negative errno. */
static int
notify_connect(struct notify_sink *ns)
{
	sd_bus *bus = NULL;
	int r;

	if (ns->bus && sd_bus_is_open(ns->bus) > 0)
		return 0;
	/* Gone (the bus daemon exited or dropped us): start over. Pending
	 * calls got their error replies when the connection closed, and the
	 * ids we knew may belong to another server now. */
	ns->bus = sd_bus_close_unref(ns->bus);
	shown_clear(ns);

	r = sd_bus_open_user_with_description(&bus, "notify");
	if (r < 0)
		return r;
	/* We close the connection ourselves, without a (blocking) flush,
	 * and a lost session bus must not end the daemon. */
	r = sd_bus_set_close_on_exit(bus, false);
	if (r >= 0)
		r = sd_bus_set_exit_on_disconnect(bus, false);
	if (r >= 0)
		r = sd_bus_match_signal_async(bus, NULL, NULL, NOTIFY_PATH,
					      NOTIFY_NAME, "NotificationClosed",
					      on_closed, NULL, ns);
	if (r >= 0)
		r = sd_bus_match_signal_async(bus, NULL, NULL, NOTIFY_PATH,
					      NOTIFY_NAME, "ActionInvoked",
					      on_action, NULL, ns);
	if (r >= 0)
		r = sd_bus_attach_event(bus, ns->event,
					SD_EVENT_PRIORITY_NORMAL);
	if (r < 0) {
		sd_bus_close_unref(bus);
		return r;
	}
	ns->bus = bus;
	return 0;
}

/* True when a Notify can be sent now: the bus is connected (connecting it
 * if needed) and not too many calls await their reply. Logs why not. */
static bool
notify_ready(struct notify_sink *ns, const struct account *a)
{
	int r;

	if (ns->n_pending >= NOTIFY_MAX_PENDING) {
		if (!ns->dropped++)
			log_warn(&(struct log_ctx){a->name, NULL},
				 "%u notifications unanswered: dropping new "
				 "ones until the notification server answers; "
				 "will keep watching",
				 ns->n_pending);
		return false;
	}
	r = notify_connect(ns);
	if (r < 0) {
		/* sd-bus says ENOMEDIUM when it has no address to try. */
		notify_failed(
		    ns, a->name, true, "cannot connect to the session bus: %s",
		    r == -ENOMEDIUM ? "neither DBUS_SESSION_BUS_ADDRESS "
				      "nor XDG_RUNTIME_DIR is set"
				    : strerror(-r));
		return false;
	}
	return true;
}

/* Sends one Notify after notify_ready(). sh (may be NULL) gets the id from
 * the reply. Returns false when it could not be sent (logged). */
static bool
notify_call(struct notify_sink *ns, const struct account *a,
	    struct shown *sh, uint32_t replaces, const char *summary,
	    const char *body)
{
	/* A click runs on_click, else it only dismisses. A default action
	 * always: without one dunst opens a URL it finds in the summary or
	 * body at a click, and the mail wrote those (trial AK). */
	char *click[] = {"default", "Open", NULL};
	char *dismiss[] = {"default", "Dismiss", NULL};
	sd_bus_message *m = NULL;
	struct notify_call *c;
	sd_bus_slot *slot = NULL;
	int r;

	r = sd_bus_message_new_method_call(ns->bus, &m, NOTIFY_NAME,
					   NOTIFY_PATH, NOTIFY_NAME, "Notify");
	if (r >= 0)
		r = sd_bus_message_append(m, "susss", NOTIFY_APP, replaces,
					  a->d.icon ? a->d.icon : NOTIFY_ICON,
					  summary, body);
	if (r >= 0)
		r = sd_bus_message_append_strv(
		    m, sh && sh->on_click ? click : dismiss);
	if (r >= 0)
		r = sd_bus_message_append(m, "a{sv}i", 2, "category", "s",
					  "email.arrived", "urgency", "y",
					  urgency_byte(a->d.urgency),
					  (int32_t)-1);
	c = xcalloc(1, sizeof(*c));
	c->ns = ns;
	c->account = xstrdup(a->name);
	c->sent = now_usec(ns);
	if (r >= 0)
		r = sd_bus_call_async(ns->bus, &slot, m, on_notify_reply, c,
				      NOTIFY_REPLY_USEC);
	sd_bus_message_unref(m);
	if (r < 0) {
		free(c->account);
		free(c);
		notify_failed(ns, a->name, r == -ENOTCONN,
			      "cannot send Notify: %s", strerror(-r));
		return false;
	}
	/* The bus owns the slot from now; it frees c with it, after the
	 * reply or when the connection goes. */
	ns->n_pending++;
	if (sh) {
		c->shown = sh;
		sh->call = c;
	}
	sd_bus_slot_set_destroy_callback(slot, notify_call_free);
	sd_bus_slot_set_floating(slot, true);
	sd_bus_slot_unref(slot);
	return true;
}

/* ---- summaries ---- */

static struct burst *
burst_get(struct notify_sink *ns, const char *account)
{
	struct burst *b;

	for (b = ns->bursts; b; b = b->next)
		if (!strcmp(b->account, account))
			return b;
	b = xcalloc(1, sizeof(*b));
	b->account = xstrdup(account);
	b->next = ns->bursts;
	ns->bursts = b;
	return b;
}

/* Adds raw (sanitized, cut at NOTIFY_SENDER_MAX bytes) to f unless it is
 * there already or empty. */
static void
firsts_add(struct firsts *f, const char *raw)
{
	char *name;

	if (!*raw)
		return;
	name = mime_sanitize(raw, strlen(raw), NOTIFY_SENDER_MAX);
	for (unsigned i = 0; i < f->n; i++)
		if (!strcmp(f->v[i], name)) {
			free(name);
			return;
		}
	if (f->n == SUMMARY_NAMES) {
		f->more = true;
		free(name);
	} else {
		f->v[f->n++] = name;
	}
}

static void
firsts_clear(struct firsts *f)
{
	for (unsigned i = 0; i < f->n; i++)
		free(f->v[i]);
	f->n = 0;
	f->more = false;
}

/* "A, B, C, …", each name markup-escaped when markup is set. */
static char *
firsts_join(const struct firsts *f, bool markup)
{
	char *out = xstrdup(""), *name, *s;

	for (unsigned i = 0; i < f->n; i++) {
		name = markup ? mime_escape_markup(f->v[i]) : xstrdup(f->v[i]);
		s = xasprintf("%s%s%s", out, i ? ", " : "", name);
		free(name);
		free(out);
		out = s;
	}
	if (f->more) {
		s = xasprintf("%s%s…", out, f->n ? ", " : "");
		free(out);
		out = s;
	}
	return out;
}

/* Who a notification names: the sender's name, else the address. A name
 * with an '@' in it is the address instead: a name is the sender's to
 * choose, and '"ceo@bank.example" <x@evil.example>' popped up as
 * ceo@bank.example. So is one with an '@' look-alike, U+FF20 or U+FE6B
 * (a trial's "support\uff20paypal.com"). "" for no one. */
static const char *
sender_shown(const struct mail_event *ev)
{
	const char *n = ev->from_name;

	if (*n && !strchr(n, '@') && !strstr(n, "\xef\xbc\xa0") &&
	    !strstr(n, "\xef\xb9\xab"))
		return n;
	return *ev->from_address ? ev->from_address : ev->from_name;
}

/* Counts the message from sender at mailbox/uidvalidity/uid in b. */
static void
burst_count(struct burst *b, const char *sender, const char *mailbox,
	    uint32_t uidvalidity, uint32_t uid)
{
	b->count++;
	firsts_add(&b->senders, sender);
	firsts_add(&b->mailboxes, mailbox);
	places_add(&b->of, sender, mailbox, uidvalidity, uid);
}

static void
burst_add(struct burst *b, const struct mail_event *ev)
{
	burst_count(b, sender_shown(ev), ev->mailbox, ev->uidvalidity,
		    ev->uid);
}

/* Shows the summary of b, "N new messages in acct/mbox" (or "in acct
 * (mbox1, mbox2, …)") with the first senders, replacing the one shown
 * before. While the first summary's reply (its id) is still out, the
 * update waits for it (b->dirty). */
static void
flush_summary(struct notify_sink *ns, struct burst *b)
{
	struct account a = {.name = b->account,
			    .d = {.icon = b->icon, .urgency = b->urgency}};
	char *summary, *body;
	uint32_t replaces;

	if (b->summary && !b->summary->id)
		return; /* on_notify_reply() calls again */
	b->dirty = false;
	if (!notify_ready(ns, &a))
		return;
	replaces = b->summary ? b->summary->id : 0;
	if (b->summary)
		shown_remove(ns, b->summary);
	b->summary = shown_add(ns, &a, "", 0, 0);
	b->summary->of = places_dup(&b->of);
	if (b->mailboxes.n == 1 && !b->mailboxes.more) {
		summary = xasprintf("%u new message%s in %s/%s", b->count,
				    b->count == 1 ? "" : "s", b->account,
				    b->mailboxes.v[0]);
	} else {
		char *boxes = firsts_join(&b->mailboxes, false);

		summary = xasprintf("%u new message%s in %s (%s)", b->count,
				    b->count == 1 ? "" : "s", b->account,
				    boxes);
		free(boxes);
	}
	body = firsts_join(&b->senders, true);
	if (!notify_call(ns, &a, b->summary, replaces, summary, body))
		shown_remove(ns, b->summary);
	free(summary);
	free(body);
}

/* Replaces the single notifications of b's window (its account's since
 * its start, which it counts) by its summary. */
static void
show_summary(struct notify_sink *ns, const struct account *a, struct burst *b)
{
	for (struct shown *sh = ns->shown, *next; sh; sh = next) {
		next = sh->next;
		if (sh->uid && !strcmp(sh->account, b->account) &&
		    sh->at >= b->start)
			close_shown(ns, sh);
	}
	free(b->icon);
	b->icon = a->d.icon ? xstrdup(a->d.icon) : NULL;
	b->urgency = a->d.urgency;
	b->dirty = true;
	flush_summary(ns, b);
}

/* ---- the sink ---- */

static uint64_t
now_usec(struct notify_sink *ns)
{
	uint64_t t = 0;

	sd_event_now(ns->event, CLOCK_MONOTONIC, &t);
	return t;
}

/* Starts b's window afresh at now. */
static void
burst_reset(struct burst *b, uint64_t now)
{
	b->start = now;
	b->count = 0;
	b->coming = 0;
	firsts_clear(&b->senders);
	firsts_clear(&b->mailboxes);
	places_clear(&b->of);
	b->summary = NULL;
}

/* Whether sh is a message of account shown one by one and still there;
 * not a copy shown again, which was counted where it came first. */
static bool
counts_in_burst(const struct shown *sh, const char *account)
{
	return sh->uid && !sh->withdrawn && !sh->origin.mailbox &&
	       !strcmp(sh->account, account);
}

/* The burst of account, started afresh when its window is over. */
static struct burst *
burst_window(struct notify_sink *ns, const char *account)
{
	struct burst *b = burst_get(ns, account);
	uint64_t now = now_usec(ns), window = SINK_BURST_WINDOW * 1000000ULL;

	if (b->summary && now - b->last > window) {
		burst_reset(b, now);
	} else if (!b->summary && now - b->start > window) {
		/* It slides: the notifications still shown one by one
		 * from the last window on count in the next, which starts
		 * at the oldest of them (1 message, then 2 nine seconds
		 * later and 3 two seconds after that are 5 within 2 s). */
		struct shown *in[NOTIFY_MAX_SHOWN];
		size_t n = 0;

		burst_reset(b, now);
		for (struct shown *sh = ns->shown; sh; sh = sh->next)
			if (counts_in_burst(sh, account) &&
			    now - sh->at <= window && n < NOTIFY_MAX_SHOWN)
				in[n++] = sh; /* newest first */
		if (n)
			b->start = in[n - 1]->at;
		while (n--)
			burst_count(b, in[n]->sender, in[n]->mailbox,
				    in[n]->uidvalidity, in[n]->uid);
	}
	b->last = now;
	return b;
}

static void
notify_batch_start(struct sink *s, const struct account *a,
		   const char *mailbox, size_t n)
{
	(void)mailbox;
	if (a->d.notify)
		burst_window((struct notify_sink *)s, a->name)->coming = n;
}

static void show_single(struct notify_sink *ns, const struct account *a,
			const struct mail_event *ev,
			const struct copy_origin *origin);

static void
notify_send(struct sink *s, const struct account *a,
	    const struct mail_event *ev)
{
	struct notify_sink *ns = (struct notify_sink *)s;
	struct burst *b;

	if (!a->d.notify)
		return;
	b = burst_window(ns, a->name);
	burst_add(b, ev);
	if (b->coming)
		b->coming--;
	/* With the rest of the batch counted: when the whole of it is more
	 * than burst, none of it is shown one by one, and the summary
	 * waits for its last message. */
	if (a->d.burst && b->count + b->coming > a->d.burst) {
		if (b->coming)
			return;
		/* Mail that came while away has its summary logged by its
		 * mailbox. */
		if (!b->summary)
			log_info(&(struct log_ctx){a->name, NULL},
				 "%u new messages within %d s: shown as one "
				 "summary notification",
				 b->count, SINK_BURST_WINDOW);
		show_summary(ns, a, b);
		return;
	}
	show_single(ns, a, ev, NULL);
}

/* Where sh's message was first announced (borrowed). */
static struct place
shown_origin(const struct shown *sh)
{
	return sh->origin.mailbox
		   ? sh->origin
		   : (struct place){sh->mailbox, sh->uidvalidity, sh->uid};
}

/* Adds copy (owned from now) of sh's message to it. */
static void
shown_add_copy(struct shown *sh, struct place copy)
{
	if (sh->n_copies < SHOWN_COPIES)
		sh->copies[sh->n_copies++] = copy;
	else
		free(copy.mailbox);
}

/* Shows ev's message by itself, not counted in a burst (its caller did
 * that, or it was before); origin: where it was first announced when ev
 * is a copy shown again, else NULL. Copies told of before it are added
 * to it. */
static void
show_single(struct notify_sink *ns, const struct account *a,
	    const struct mail_event *ev, const struct copy_origin *origin)
{
	struct shown *sh;
	struct place o, copy;
	const char *who;
	char *summary, *body;

	if (!notify_ready(ns, a))
		return;
	who = sender_shown(ev);
	if (!*who)
		who = "New mail";
	summary = mime_sanitize(who, strlen(who), NOTIFY_SENDER_MAX);
	/* Servers may read the body as markup: mail must not format or
	 * link anything. */
	body = *ev->subject ? mime_escape_markup(ev->subject)
			    : xstrdup("(no subject)");
	sh = shown_add(ns, a, ev->mailbox, ev->uidvalidity, ev->uid);
	sh->sender = xstrdup(sender_shown(ev));
	if (origin)
		sh->origin = place_dup(origin->mailbox, origin->uidvalidity,
				       origin->uid);
	o = shown_origin(sh);
	while (notes_take(&ns->pending, a->name, &o, &copy, now_usec(ns)))
		shown_add_copy(sh, copy);
	if (a->d.on_click) {
		sh->on_click = config_argv_dup(a->d.on_click);
		mail_event_copy(&sh->ev, ev);
		sh->ev.account = sh->account;
		sh->ev.mailbox = sh->mailbox;
	}
	if (notify_call(ns, a, sh, 0, summary, body))
		log_debug(&(struct log_ctx){a->name, ev->mailbox},
			  "notification for UID %u sent", (unsigned)ev->uid);
	else
		shown_remove(ns, sh);
	free(summary);
	free(body);
}

static void
notify_summary(struct sink *s, const struct account *a, const char *mailbox,
	       const struct mail_event *first, size_t n_first, size_t total)
{
	struct notify_sink *ns = (struct notify_sink *)s;
	struct burst *b;

	if (!a->d.notify || !total)
		return;
	/* Added to the account's burst: it closes the singles of the
	 * window, which it counts, and shows with the rest of it. With
	 * burst = 0 (every message shown) it stands alone: its window
	 * starts after what was shown, in this turn of the loop too. */
	b = burst_window(ns, a->name);
	if (!a->d.burst)
		burst_reset(b, b->last + 1);
	b->coming = 0;
	b->count += total;
	for (size_t i = 0; i < n_first; i++) {
		firsts_add(&b->senders, sender_shown(&first[i]));
		places_add(&b->of, sender_shown(&first[i]), mailbox,
			   first[i].uidvalidity, first[i].uid);
	}
	/* The rest is not known: it never counts down to nothing. */
	b->of.partial = b->of.partial || total > n_first;
	firsts_add(&b->mailboxes, mailbox);
	/* Senders beyond the first few are not known: "…". */
	b->senders.more = b->senders.more || total > n_first;
	show_summary(ns, a, b);
}

/* The notification of account a that stands for mailbox/uidvalidity/uid
 * (its own message or a copy: *copy_r, -1 for its own), or NULL. */
static struct shown *
shown_find(struct notify_sink *ns, const struct account *a,
	   const char *mailbox, uint32_t uidvalidity, uint32_t uid,
	   int *copy_r)
{
	for (struct shown *sh = ns->shown; sh; sh = sh->next) {
		if (!sh->uid || strcmp(sh->account, a->name))
			continue;
		*copy_r = -1;
		if (sh->uid == uid && sh->uidvalidity == uidvalidity &&
		    !strcmp(sh->mailbox, mailbox))
			return sh;
		for (unsigned i = 0; i < sh->n_copies; i++) {
			*copy_r = (int)i;
			if (place_is(&sh->copies[i], mailbox, uidvalidity, uid))
				return sh;
		}
	}
	return NULL;
}

/* A copy of a message still shown is added to its notification (a Gmail
 * label). One whose notification closed as it was removed is shown
 * again: a filter that moves a message is often seen as the expunge, then
 * the copy. None is shown when the message was read, or its notification
 * expired, was dismissed, or went into a summary: the message was
 * shown. */
static void
notify_copy(struct sink *s, const struct account *a,
	    const struct copy_origin *orig, const struct mail_event *ev)
{
	struct notify_sink *ns = (struct notify_sink *)s;
	struct place at = {(char *)orig->mailbox, orig->uidvalidity,
			   orig->uid},
		     none;
	struct shown *sh;

	if (!a->d.notify)
		return;
	for (sh = ns->shown; sh; sh = sh->next) {
		struct place o = shown_origin(sh);

		if (sh->uid && !strcmp(sh->account, a->name) &&
		    place_is(&o, at.mailbox, at.uidvalidity, at.uid))
			break;
	}
	if (sh) {
		shown_add_copy(sh, place_dup(ev->mailbox, ev->uidvalidity,
					     ev->uid));
		return;
	}
	if (notes_take(&ns->withdrawn, a->name, &at, &none, now_usec(ns))) {
		log_info(&(struct log_ctx){a->name, ev->mailbox},
			 "UID %u: its notification was withdrawn from %s "
			 "(moved?): shown again",
			 ev->uid, orig->mailbox);
		show_single(ns, a, ev, orig);
		return;
	}
	/* Maybe the message itself is still to be sent. */
	notes_put(&ns->pending, a->name,
		  place_dup(orig->mailbox, orig->uidvalidity, orig->uid),
		  place_dup(ev->mailbox, ev->uidvalidity, ev->uid),
		  now_usec(ns));
}

/* A message counted in a summary was read or removed: it is counted no
 * more in its burst, and the summary that counts it is closed when it
 * was its last (and it knew them all), or else, while its burst goes
 * on, updated. */
static void
summaries_withdraw(struct notify_sink *ns, const struct account *a,
		   const char *mailbox, uint32_t uidvalidity, uint32_t uid)
{
	struct burst *b = burst_get(ns, a->name);

	if (places_take(&b->of, mailbox, uidvalidity, uid)) {
		if (b->count)
			b->count--;
		/* Its summary names those left (trial O: the senders of
		 * read mail stayed), when it knows them all. */
		if (!b->of.partial) {
			firsts_clear(&b->senders);
			firsts_clear(&b->mailboxes);
			for (unsigned i = 0; i < b->of.n; i++) {
				firsts_add(&b->senders, b->of.sender[i]);
				firsts_add(&b->mailboxes, b->of.v[i].mailbox);
			}
		}
	}
	for (struct shown *sh = ns->shown; sh; sh = sh->next) {
		if (!sh->of || strcmp(sh->account, a->name) ||
		    !places_take(sh->of, mailbox, uidvalidity, uid))
			continue;
		if (!sh->of->n && !sh->of->partial) {
			log_debug(&(struct log_ctx){a->name, NULL},
				  "every message of a summary read or "
				  "removed: closing it");
			close_shown(ns, sh);
		} else if (sh == b->summary) {
			b->dirty = true;
			flush_summary(ns, b);
		}
		return;
	}
}

/* Closes the message's notification, or when it stands for a copy
 * still there, takes it off that. One closed because its message went
 * (not read: maybe moved) is noted, for a copy to show it again. */
static void
notify_withdraw(struct sink *s, const struct account *a, const char *mailbox,
		uint32_t uidvalidity, uint32_t uid, bool read)
{
	struct notify_sink *ns = (struct notify_sink *)s;
	int copy;
	struct shown *sh =
	    shown_find(ns, a, mailbox, uidvalidity, uid, &copy);
	struct place last, o;

	if (!sh) {
		summaries_withdraw(ns, a, mailbox, uidvalidity, uid);
		return;
	}
	if (!sh->n_copies) {
		log_debug(&(struct log_ctx){a->name, mailbox},
			  "UID %u %s elsewhere: withdrawing its notification",
			  uid, read ? "read" : "removed");
		o = shown_origin(sh);
		if (!read)
			notes_put(&ns->withdrawn, a->name,
				  place_dup(o.mailbox, o.uidvalidity, o.uid),
				  (struct place){0}, now_usec(ns));
		close_shown(ns, sh);
		/* Nor counted by a summary of its burst later. */
		summaries_withdraw(ns, a, mailbox, uidvalidity, uid);
		return;
	}
	/* The last copy takes the place of the one gone. */
	last = sh->copies[--sh->n_copies];
	if (copy >= 0) {
		free(sh->copies[copy].mailbox);
		sh->copies[copy] = last;
	} else {
		/* Copies still name the first place. */
		if (!sh->origin.mailbox)
			sh->origin = (struct place){sh->mailbox,
						    sh->uidvalidity, sh->uid};
		else
			free(sh->mailbox);
		sh->mailbox = last.mailbox;
		sh->uidvalidity = last.uidvalidity;
		sh->uid = last.uid;
		/* A click is about where the message is now. */
		sh->ev.mailbox = sh->mailbox;
		sh->ev.uidvalidity = sh->uidvalidity;
		sh->ev.uid = sh->uid;
	}
	log_debug(&(struct log_ctx){a->name, mailbox},
		  "UID %u read or removed elsewhere: its notification stays "
		  "for a copy",
		  uid);
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
	shown_clear(ns);
	while (ns->bursts) {
		struct burst *b = ns->bursts;

		ns->bursts = b->next;
		free(b->account);
		firsts_clear(&b->senders);
		firsts_clear(&b->mailboxes);
		places_clear(&b->of);
		free(b->icon);
		free(b);
	}
	for (unsigned i = 0; i < NOTES_MAX; i++) {
		note_clear(&ns->withdrawn.v[i]);
		note_clear(&ns->pending.v[i]);
	}
	sd_event_unref(ns->event);
	free(ns);
}

/* p is now to when it was in from. */
static void
place_rename(struct place *p, const char *from, const char *to)
{
	if (p->mailbox && !strcmp(p->mailbox, from)) {
		free(p->mailbox);
		p->mailbox = xstrdup(to);
	}
}

static void
notes_rename(struct notes *r, const char *account, const char *from,
	     const char *to)
{
	for (unsigned i = 0; i < NOTES_MAX; i++) {
		if (!r->v[i].account || strcmp(r->v[i].account, account))
			continue;
		place_rename(&r->v[i].orig, from, to);
		place_rename(&r->v[i].copy, from, to);
	}
}

/* What is shown for messages of a's mailbox from is for to's now: a
 * withdraw names the new mailbox (trial N: a renamed folder's message,
 * read, left its notification). */
static void
notify_rename(struct sink *s, const struct account *a, const char *from,
	      const char *to)
{
	struct notify_sink *ns = (struct notify_sink *)s;
	struct burst *b = burst_get(ns, a->name);

	for (struct shown *sh = ns->shown; sh; sh = sh->next) {
		if (strcmp(sh->account, a->name))
			continue;
		if (sh->uid && !strcmp(sh->mailbox, from)) {
			free(sh->mailbox);
			sh->mailbox = xstrdup(to);
			if (sh->on_click)
				sh->ev.mailbox = sh->mailbox;
		}
		for (unsigned i = 0; i < sh->n_copies; i++)
			place_rename(&sh->copies[i], from, to);
		place_rename(&sh->origin, from, to);
		for (unsigned i = 0; sh->of && i < sh->of->n; i++)
			place_rename(&sh->of->v[i], from, to);
	}
	for (unsigned i = 0; i < b->of.n; i++)
		place_rename(&b->of.v[i], from, to);
	notes_rename(&ns->withdrawn, a->name, from, to);
	notes_rename(&ns->pending, a->name, from, to);
}

static const struct sink_ops notify_ops = {
    .batch_start = notify_batch_start,
    .send = notify_send,
    .summary = notify_summary,
    .copy = notify_copy,
    .withdraw = notify_withdraw,
    .rename = notify_rename,
    .batch_done = notify_batch_done,
    .free = notify_free,
};

struct sink *
sink_notify_new(sd_event *e, struct sink *hooks)
{
	struct notify_sink *ns = xcalloc(1, sizeof(*ns));

	ns->sink.ops = &notify_ops;
	ns->hooks = hooks;
	ns->event = sd_event_ref(e);
	return &ns->sink;
}
