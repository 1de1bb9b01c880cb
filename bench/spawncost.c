/* What starting hooks costs the process that starts them: runs a command
 * N times the way mailwatch starts a hook (launch() of launch.c: a pipe,
 * clone and exec, then reading the pipe to its end and reaping),
 * one after the other, and prints this process's own CPU time (utime +
 * stime; the children's is not in it). bench/many.py runs it beside its
 * burst so that mailwatch's CPU time can be read without the part that
 * belongs to the hooks' processes. mailwatch does more per hook (a pidfd
 * and epoll for each child, the environment); this is the least any
 * program pays to start one.
 *
 *   build/bench/spawncost N COMMAND [ARG...]
 *
 * Prints "spawned N in S s wall, C s CPU". Exit status 1 on a usage or
 * spawn error. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"

extern char **environ;

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
	long n = argc > 2 ? strtol(argv[1], NULL, 10) : 0;

	if (n <= 0) {
		fprintf(stderr, "usage: spawncost N COMMAND [ARG...]\n");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++) {
		char buf[4096];
		struct launch sp;
		int r = launch(argv + 2, environ, true, -1, false, &sp);

		if (r < 0) {
			fprintf(stderr, "spawncost: %s: %s\n", argv[2],
				strerror(-r));
			return 1;
		}
		/* Blocking reads to the end, then the reap: the least a
		 * loop can do to wait for a child. */
		fcntl(sp.fd, F_SETFL, 0);
		while (read(sp.fd, buf, sizeof(buf)) > 0)
			;
		close(sp.fd);
		close(sp.pidfd);
		waitpid(sp.pid, NULL, 0);
		launch_end(&sp, NULL, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &ru);
	printf("spawned %ld in %.2f s wall, %.2f s CPU\n", n,
	       (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       seconds(ru.ru_utime) + seconds(ru.ru_stime));
	return 0;
}
