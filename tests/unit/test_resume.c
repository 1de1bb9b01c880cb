/* resume.c's clock arithmetic: the offset between CLOCK_BOOTTIME and
 * CLOCK_MONOTONIC, and when a jump of it means the machine slept. A
 * reading taken across a preemption, or a microsecond apart, must not
 * look like a wake (it did: the offset was unsigned and wrapped). */
#include <stdint.h>
#include <time.h>

#include "resume.h"
#include "tap.h"

static int64_t
offset(time_t bs, long bns, time_t ms, long mns)
{
	struct timespec b = {bs, bns}, m = {ms, mns};

	return resume_offset_usec(&b, &m);
}

int
main(void)
{
	int64_t largest;

	is_int(offset(100, 500000, 100, 200000), 300, "300 us ahead");
	is_int(offset(100, 0, 100, 1500), -1,
	       "monotonic read 1.5 us later: -1 us, not 2^64 - 1");
	is_int(offset(99, 999999000, 100, 1000), -2,
	       "across a second boundary: -2 us");
	is_int(offset(3700, 0, 100, 0), 3600000000LL, "an hour asleep");

	largest = 0;
	ok(!resume_clock_gap(&largest, -1), "-1 us after 0: no wake");
	is_int(largest, 0, "the largest offset stays");
	ok(!resume_clock_gap(&largest, -6000000),
	   "a reading 6 s low (preempted between the reads): no wake");
	ok(!resume_clock_gap(&largest, 0),
	   "and the next, right again: no wake either");
	ok(!resume_clock_gap(&largest, 4000000), "4 s: not a sleep");
	is_int(largest, 4000000, "the largest moves up");
	ok(resume_clock_gap(&largest, 9100000), "5.1 s more: a wake");
	is_int(largest, 9100000, "from there on");
	ok(!resume_clock_gap(&largest, 9100000), "then quiet");
	return tap_failed ? 1 : 0;
}
