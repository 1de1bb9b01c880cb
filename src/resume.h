/* resume: notices that the machine woke from suspend, so connections that
 * may have died in the meantime can be probed at once. Listens to logind's
 * PrepareForSleep signal on the system bus; without a system bus (or as a
 * second opinion) it notices a jump between CLOCK_BOOTTIME and
 * CLOCK_MONOTONIC (only the former runs during suspend) whenever the loop
 * wakes up anyway. Never wakes the loop by itself. */
#pragma once

#include <systemd/sd-event.h>

struct resume;

/* Calls resumed(ud) from the loop after each wake-up from suspend.
 * Returns NULL after logging when the loop cannot take it (never for a
 * missing system bus). */
struct resume *resume_new(sd_event *e, void (*resumed)(void *ud), void *ud);
void resume_free(struct resume **r);
