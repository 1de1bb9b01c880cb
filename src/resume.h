/* resume: notices that the machine woke from suspend, so connections that
 * may have died in the meantime can be probed at once. Listens to logind's
 * PrepareForSleep signal on the system bus; without a system bus (or as a
 * second opinion) it notices a jump between CLOCK_BOOTTIME and
 * CLOCK_MONOTONIC (only the former runs during suspend) whenever the loop
 * wakes up anyway. Never wakes the loop by itself. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <time.h>

struct resume;

/* Calls resumed(ud) from the loop after each wake-up from suspend.
 * Returns NULL after logging when the loop cannot take it (never for a
 * missing system bus). */
struct resume *resume_new(sd_event *e, void (*resumed)(void *ud), void *ud);
void resume_free(struct resume **r);

/* CLOCK_BOOTTIME - CLOCK_MONOTONIC in microseconds from a reading of each,
 * boot first. Signed: the time between the two reads makes it a little
 * below 0 on a machine that never slept (as unsigned it wrapped to 2^64 -
 * 1 once that was a microsecond, a busy machine, and looked like a
 * wake). */
int64_t resume_offset_usec(const struct timespec *boot,
			   const struct timespec *mono);
/* With *largest the largest offset seen since the last wake: true when off
 * is more than 5 s past it (the machine slept; *largest becomes off).
 * Otherwise *largest keeps the larger of the two: a reading is only ever
 * below the true offset (a preemption between the two reads), so the
 * largest is the nearest, and one low reading must not make the next
 * look like a jump. */
bool resume_clock_gap(int64_t *largest, int64_t off);
