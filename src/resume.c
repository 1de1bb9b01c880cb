#include "resume.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "util.h"

/* A jump of the suspend clock larger than this means we slept. */
#define GAP_USEC (5 * INT64_C(1000000))

struct resume {
	sd_event *event;
	sd_bus *bus; /* system bus, NULL without one */
	sd_event_source *post;
	void (*resumed)(void *ud);
	void *ud;
	int64_t offset; /* CLOCK_BOOTTIME - CLOCK_MONOTONIC, usec */
};

int64_t
resume_offset_usec(const struct timespec *boot, const struct timespec *mono)
{
	return ((int64_t)boot->tv_sec - mono->tv_sec) * 1000000 +
	       (boot->tv_nsec - mono->tv_nsec) / 1000;
}

bool
resume_clock_gap(int64_t *largest, int64_t off)
{
	bool gap = off > *largest + GAP_USEC;

	if (off > *largest)
		*largest = off;
	return gap;
}

static int64_t
clock_offset(void)
{
	struct timespec b, m;

	clock_gettime(CLOCK_BOOTTIME, &b);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return resume_offset_usec(&b, &m);
}

static void
woke(struct resume *r, const char *how)
{
	r->offset = clock_offset();
	log_info(NULL, "resumed from suspend (%s): checking connections",
		 how);
	r->resumed(r->ud);
}

/* Runs after any event was dispatched: costs two clock reads. */
static int
on_post(sd_event_source *s, void *ud)
{
	struct resume *r = ud;
	(void)s;
	if (resume_clock_gap(&r->offset, clock_offset()))
		woke(r, "clock gap");
	return 0;
}

static int
on_prepare_for_sleep(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct resume *r = ud;
	int sleeping;

	(void)e;
	if (sd_bus_message_read(m, "b", &sleeping) < 0)
		return 0;
	if (sleeping)
		log_info(NULL, "system is going to sleep");
	else
		woke(r, "logind");
	return 0;
}

struct resume *
resume_new(sd_event *e, void (*resumed)(void *ud), void *ud)
{
	struct resume *r = xcalloc(1, sizeof(*r));
	int rc;

	r->event = e;
	r->resumed = resumed;
	r->ud = ud;
	r->offset = clock_offset();
	rc = sd_event_add_post(e, &r->post, on_post, r);
	if (rc < 0) {
		log_err(NULL, "event loop: %s", strerror(-rc));
		free(r);
		return NULL;
	}
	/* Asynchronous: sd_bus_open_system only connects; the match is
	 * installed without waiting for a reply. */
	rc = sd_bus_open_system(&r->bus);
	if (rc >= 0)
		rc = sd_bus_match_signal_async(
			r->bus, NULL, "org.freedesktop.login1",
			"/org/freedesktop/login1",
			"org.freedesktop.login1.Manager", "PrepareForSleep",
			on_prepare_for_sleep, NULL, r);
	if (rc >= 0)
		rc = sd_bus_attach_event(r->bus, e, 0);
	if (rc < 0) {
		log_debug(NULL, "no system bus (%s): noticing resume by the "
				"clock only",
			  strerror(-rc));
		r->bus = sd_bus_flush_close_unref(r->bus);
	}
	return r;
}

void
resume_free(struct resume **rp)
{
	struct resume *r = *rp;

	if (!r)
		return;
	sd_event_source_disable_unref(r->post);
	sd_bus_flush_close_unref(r->bus);
	free(r);
	*rp = NULL;
}
