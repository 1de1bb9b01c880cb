/* status: `mailwatch status`, the client of the running daemon's D-Bus
 * interface (service.h): prints the unseen counts once, or at each change
 * with --follow, as text, a --format template or JSON for status bars. */
#pragma once

/* Exit status when no mailwatch owns the bus name (as LSB's "program is
 * not running"). */
#define STATUS_NOT_RUNNING 3

/* Runs `mailwatch status ARGS`; argv[0] is "status". Returns the exit
 * status. */
int status_main(int argc, char **argv);
