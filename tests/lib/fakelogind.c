/* fakelogind: a stand-in for systemd-logind's suspend signal, for the
 * tests.
 *
 * Usage: fakelogind
 *
 * Connects to the system bus named by DBUS_SYSTEM_BUS_ADDRESS (a private
 * dbus-daemon in the tests: sd_bus_open_system honours the variable), owns
 * org.freedesktop.login1 and prints "ready" on stdout once it does. Then,
 * on each signal:
 *
 *   SIGUSR1  emits org.freedesktop.login1.Manager.PrepareForSleep(true)
 *            from /org/freedesktop/login1 ("going to sleep")
 *   SIGUSR2  emits PrepareForSleep(false) ("resumed")
 *   SIGTERM, SIGINT  exits 0
 *
 * and prints "sent sleep=1" or "sent sleep=0" once the signal was written
 * to the bus (flushed), so a test can wait for that line. Nothing else of
 * logind is offered: method calls get the bus's usual unknown-object
 * error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define NAME "org.freedesktop.login1"
#define PATH "/org/freedesktop/login1"
#define IFACE "org.freedesktop.login1.Manager"

/* Emits PrepareForSleep(sleeping) and flushes it. Returns 0 or a negative
 * errno. Blocks for as long as the flush takes (a local socket). */
static int
emit(sd_bus *bus, int sleeping)
{
	int r;

	r = sd_bus_emit_signal(bus, PATH, IFACE, "PrepareForSleep", "b",
			       sleeping);
	if (r < 0)
		return r;
	r = sd_bus_flush(bus);
	if (r < 0)
		return r;
	printf("sent sleep=%d\n", sleeping);
	fflush(stdout);
	return 0;
}

static int
on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	sd_bus *bus = ud;
	int r;

	if (si->ssi_signo == SIGTERM || si->ssi_signo == SIGINT)
		return sd_event_exit(sd_event_source_get_event(s), 0);
	r = emit(bus, si->ssi_signo == SIGUSR1);
	if (r < 0) {
		fprintf(stderr, "fakelogind: emitting PrepareForSleep: %s\n",
			strerror(-r));
		return sd_event_exit(sd_event_source_get_event(s), 1);
	}
	return 0;
}

int
main(void)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};
	sd_event *e = NULL;
	sd_bus *bus = NULL;
	sigset_t mask;
	int r, code = 1;

	sigemptyset(&mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
		sigaddset(&mask, sigs[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	r = sd_event_default(&e);
	if (r < 0)
		goto fail;
	r = sd_bus_open_system(&bus);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++) {
		r = sd_event_add_signal(e, NULL, sigs[i], on_signal, bus);
		if (r < 0)
			goto fail;
	}
	r = sd_bus_request_name(bus, NAME, 0);
	if (r < 0)
		goto fail;
	r = sd_bus_attach_event(bus, e, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		goto fail;
	puts("ready");
	fflush(stdout);
	r = sd_event_loop(e);
	if (r < 0)
		goto fail;
	code = r;
	goto out;
fail:
	fprintf(stderr, "fakelogind: %s\n", strerror(-r));
out:
	sd_bus_flush_close_unref(bus);
	sd_event_unref(e);
	return code;
}
