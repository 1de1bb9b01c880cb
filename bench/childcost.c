/* What supervising hooks costs the loop: starts a command N times with
 * child.c on sd-event, K at a time (as the hook sink does: its output
 * read on the loop, its exit through a pidfd, a deadline timer), and
 * prints this process's own CPU time and context switches (the
 * children's are not in them). Beside spawncost (one at a time, blocking
 * reads), the difference is the supervision's share of a burst.
 *
 *   build/bench/childcost N K COMMAND [ARG...]
 *
 * Prints "supervised N (K at a time) in S s wall, C s CPU (user U, system
 * Y), W context switches". Exit status 1 on a usage or start error. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "child.h"

extern char **environ;

static sd_event *loop;
static char **cmd;
static long left, running;

static void start_one(void);

static void
on_event(void *ud, enum child_event ev, const siginfo_t *si)
{
	struct child **c = ud;

	(void)si;
	if (ev != CHILD_OVER)
		return;
	child_free(c);
	free(c);
	running--;
	if (left)
		start_one();
	else if (!running)
		sd_event_exit(loop, 0);
}

static const struct child_ops ops = {.event = on_event};

static void
start_one(void)
{
	struct child **c = malloc(sizeof(*c));
	struct child_spec spec = {
	    .argv = cmd,
	    .envp = environ,
	    .with_stderr = true,
	    .timeout = 60 * UINT64_C(1000000),
	    .cap = 4096,
	    .name = "childcost",
	};

	if (!c || child_start(loop, &spec, &ops, c, c) < 0)
		exit(1);
	left--;
	running++;
}

static double
seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	long n = argc > 3 ? strtol(argv[1], NULL, 10) : 0;
	long k = argc > 3 ? strtol(argv[2], NULL, 10) : 0;

	if (n <= 0 || k <= 0) {
		fprintf(stderr, "usage: childcost N K COMMAND [ARG...]\n");
		return 1;
	}
	cmd = argv + 3;
	left = n;
	if (sd_event_default(&loop) < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (left && running < k)
		start_one();
	sd_event_loop(loop);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &ru);
	printf("supervised %ld (%ld at a time) in %.2f s wall, %.2f s CPU "
	       "(user %.2f, system %.2f), %ld context switches\n",
	       n, k,
	       (double)(t1.tv_sec - t0.tv_sec) +
		   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       seconds(ru.ru_utime) + seconds(ru.ru_stime),
	       seconds(ru.ru_utime), seconds(ru.ru_stime),
	       ru.ru_nvcsw + ru.ru_nivcsw);
	sd_event_unref(loop);
	return 0;
}
