/* notifyd: a desktop notification server for the tests.
 *
 * Usage: notifyd LOG
 *
 * Owns org.freedesktop.Notifications on the session bus named by
 * DBUS_SESSION_BUS_ADDRESS and appends one JSON line per call to LOG,
 * flushed at once:
 *
 *   {"method":"Notify","id":1,"app_name":"mailwatch","replaces_id":0,
 *    "icon":"mail-unread","summary":"...","body":"...","actions":[...],
 *    "hints":{"category":"email.arrived","urgency":1},"expire":-1,
 *    "t":1234.567890123}
 *   {"method":"CloseNotification","id":1}
 *
 * (one line each; hints other than category and urgency are left out, and
 * those two only when sent; t: CLOCK_MONOTONIC seconds when the call
 * reached this process, for bench/latency.py --notify). Prints "ready" on stdout once the name is
 * owned and exits 0 on SIGTERM or SIGINT. On SIGUSR1 it acts as if the
 * user clicked the last notification: ActionInvoked(id, "default"); on
 * SIGUSR2 as if the user dismissed it: NotificationClosed(id, 2), logged
 * as {"method":"Dismissed","id":N}. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define NAME "org.freedesktop.Notifications"
#define PATH "/org/freedesktop/Notifications"

/* Why a notification was closed (the specification's reasons). */
#define CLOSED_BY_USER 2
#define CLOSED_BY_CALL 3

static FILE *out;
static uint32_t last_id;

/* Writes s as a JSON string. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* Reads the actions array (as) and writes it as a JSON array. */
static int
write_actions(sd_bus_message *m)
{
	const char *s;
	bool first = true;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "s");
	if (r < 0)
		return r;
	fputc('[', out);
	while ((r = sd_bus_message_read(m, "s", &s)) > 0) {
		if (!first)
			fputc(',', out);
		first = false;
		json_str(out, s);
	}
	fputc(']', out);
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/* Reads the hints (a{sv}) and writes category and urgency as a JSON
 * object. */
static int
write_hints(sd_bus_message *m)
{
	const char *key, *category = NULL;
	int urgency = -1;
	bool first = true;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		r = sd_bus_message_read(m, "s", &key);
		if (r < 0)
			return r;
		if (!strcmp(key, "category")) {
			r = sd_bus_message_read(m, "v", "s", &category);
		} else if (!strcmp(key, "urgency")) {
			uint8_t u;

			r = sd_bus_message_read(m, "v", "y", &u);
			urgency = u;
		} else {
			r = sd_bus_message_skip(m, "v");
		}
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	fputc('{', out);
	if (category) {
		fputs("\"category\":", out);
		json_str(out, category);
		first = false;
	}
	if (urgency >= 0)
		fprintf(out, "%s\"urgency\":%d", first ? "" : ",", urgency);
	fputc('}', out);
	return sd_bus_message_exit_container(m);
}

static int
method_notify(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *app, *icon, *summary, *body;
	uint32_t replaces, id;
	int32_t expire;
	struct timespec t;
	int r;

	(void)userdata;
	(void)error;
	clock_gettime(CLOCK_MONOTONIC, &t);
	r = sd_bus_message_read(m, "susss", &app, &replaces, &icon, &summary,
				&body);
	if (r < 0)
		return r;
	id = replaces ? replaces : ++last_id;
	fprintf(out, "{\"method\":\"Notify\",\"id\":%u,\"app_name\":", id);
	json_str(out, app);
	fprintf(out, ",\"replaces_id\":%u,\"icon\":", replaces);
	json_str(out, icon);
	fputs(",\"summary\":", out);
	json_str(out, summary);
	fputs(",\"body\":", out);
	json_str(out, body);
	fputs(",\"actions\":", out);
	r = write_actions(m);
	if (r < 0)
		return r;
	fputs(",\"hints\":", out);
	r = write_hints(m);
	if (r < 0)
		return r;
	r = sd_bus_message_read(m, "i", &expire);
	if (r < 0)
		return r;
	fprintf(out, ",\"expire\":%d,\"t\":%lld.%09ld}\n", expire,
		(long long)t.tv_sec, t.tv_nsec);
	fflush(out);
	return sd_bus_reply_method_return(m, "u", id);
}

static int
method_close(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	uint32_t id;
	int r;

	(void)userdata;
	(void)error;
	r = sd_bus_message_read(m, "u", &id);
	if (r < 0)
		return r;
	fprintf(out, "{\"method\":\"CloseNotification\",\"id\":%u}\n", id);
	fflush(out);
	r = sd_bus_emit_signal(sd_bus_message_get_bus(m), PATH, NAME,
			       "NotificationClosed", "uu", id, CLOSED_BY_CALL);
	if (r < 0)
		return r;
	return sd_bus_reply_method_return(m, "");
}

static int
method_capabilities(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)userdata;
	(void)error;
	return sd_bus_reply_method_return(m, "as", 3, "body", "body-markup",
					  "actions");
}

static int
method_server_information(sd_bus_message *m, void *userdata,
			  sd_bus_error *error)
{
	(void)userdata;
	(void)error;
	return sd_bus_reply_method_return(m, "ssss", "mailwatch-test",
					  "mailwatch", "1", "1.2");
}

static const sd_bus_vtable notifications_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Notify", "susssasa{sv}i", "u", method_notify,
		  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("CloseNotification", "u", "", method_close,
		  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("GetCapabilities", "", "as", method_capabilities,
		  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("GetServerInformation", "", "ssss", method_server_information,
		  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL("NotificationClosed", "uu", 0),
    SD_BUS_SIGNAL("ActionInvoked", "us", 0),
    SD_BUS_VTABLE_END,
};

/* SIGUSR1: a click on the last notification shown. */
static int
on_click(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	sd_bus *bus = ud;

	(void)s;
	(void)si;
	fprintf(out, "{\"method\":\"ActionInvoked\",\"id\":%u}\n", last_id);
	fflush(out);
	return sd_bus_emit_signal(bus, PATH, NAME, "ActionInvoked", "us",
				  last_id, "default");
}

/* SIGUSR2: the user dismissed the last notification shown. */
static int
on_dismiss(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	sd_bus *bus = ud;

	(void)s;
	(void)si;
	fprintf(out, "{\"method\":\"Dismissed\",\"id\":%u}\n", last_id);
	fflush(out);
	return sd_bus_emit_signal(bus, PATH, NAME, "NotificationClosed", "uu",
				  last_id, CLOSED_BY_USER);
}

int
main(int argc, char **argv)
{
	sd_event *e = NULL;
	sd_bus *bus = NULL;
	sigset_t mask;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: notifyd LOG\n");
		return 2;
	}
	out = fopen(argv[1], "a");
	if (!out) {
		fprintf(stderr, "notifyd: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	r = sd_event_default(&e);
	if (r < 0)
		goto fail;
	/* NULL callbacks: exit the loop. */
	r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL);
	if (r < 0)
		goto fail;
	r = sd_event_add_signal(e, NULL, SIGINT, NULL, NULL);
	if (r < 0)
		goto fail;
	r = sd_bus_open_user(&bus);
	if (r < 0)
		goto fail;
	r = sd_bus_add_object_vtable(bus, NULL, PATH, NAME,
				     notifications_vtable, NULL);
	if (r < 0)
		goto fail;
	r = sd_bus_request_name(bus, NAME, 0);
	if (r < 0)
		goto fail;
	r = sd_bus_attach_event(bus, e, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		goto fail;
	r = sd_event_add_signal(e, NULL, SIGUSR1, on_click, bus);
	if (r >= 0)
		r = sd_event_add_signal(e, NULL, SIGUSR2, on_dismiss, bus);
	if (r < 0)
		goto fail;
	puts("ready");
	fflush(stdout);
	r = sd_event_loop(e);
	if (r < 0)
		goto fail;
	sd_bus_flush_close_unref(bus);
	sd_event_unref(e);
	fclose(out);
	return 0;

fail:
	fprintf(stderr, "notifyd: %s\n", strerror(-r));
	sd_bus_flush_close_unref(bus);
	sd_event_unref(e);
	fclose(out);
	return 1;
}
