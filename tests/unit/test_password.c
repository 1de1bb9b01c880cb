/* Unit tests for password.c: password jobs driven on an sd-event loop. The
 * first line of password_command's output, every failure with its message
 * (and never the output), the timeout, freeing a running job, `password =`
 * through the loop, jobs running side by side. stderr is captured around
 * each job. */
#include "password.h"
#include "capture.h"
#include "tap.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/mailwatch-test-password-XXXXXX";
static char *cap_path;

static long long
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One job under test and what its callback saw. */
struct run {
	sd_event *e;
	struct password_job *job;
	unsigned calls; /* of done */
	bool done;
	char *pw;
	char why[64];	   /* password_job_why() at the callback */
	long long t_done;  /* ms_now() at the callback */
	unsigned *pending; /* jobs not done yet; the loop exits at 0 */
};

/* The owner's callback: keeps the password, frees the job right here (as
 * main does) and stops the loop once every job of the loop is done. */
static void
on_done(void *ud, char *password)
{
	struct run *r = ud;

	r->calls++;
	r->done = true;
	r->pw = password;
	r->t_done = ms_now();
	snprintf(r->why, sizeof(r->why), "%s", password_job_why(r->job));
	password_job_free(&r->job);
	if (r->pending && --*r->pending == 0)
		sd_event_exit(r->e, 0);
}

/* A loop that gives up after 20 s (scaled), so that a broken job cannot
 * hang the test. */
static sd_event *
loop_new(void)
{
	sd_event *e = NULL;
	int r = sd_event_new(&e);

	if (r < 0) {
		printf("Bail out! sd_event_new: %s\n", strerror(-r));
		exit(1);
	}
	sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC,
				   (uint64_t)scaled_ms(20000) * 1000, 0, NULL,
				   (void *)(intptr_t)1);
	return e;
}

static void
run_finish(struct run *r)
{
	if (r->pw) {
		explicit_bzero(r->pw, strlen(r->pw));
		free(r->pw);
	}
	password_job_free(&r->job);
}

/* Runs a job for a (password_command or password) to its end; *out gets
 * stderr meanwhile (caller frees). Returns password_job_new's value. */
static int
run_account(const struct account *a, struct run *r, char **out)
{
	unsigned pending = 1;
	int rc;

	memset(r, 0, sizeof(*r));
	r->e = loop_new();
	r->pending = &pending;
	capture_begin(cap_path);
	rc = password_job_new(r->e, a, on_done, r, &r->job);
	if (rc >= 0)
		sd_event_loop(r->e);
	*out = capture_end();
	sd_event_unref(r->e);
	r->e = NULL;
	return rc;
}

static int
run_command(const char *command, struct run *r, char **out)
{
	struct account a = {.name = "acct",
			    .password_command = (char *)command};

	return run_account(&a, r, out);
}

static void
pw_ok(const char *command, const char *want, const char *want_err,
      const char *what)
{
	struct run r;
	char *out;
	int rc = run_command(command, &r, &out);

	is_int(rc, 0, "%s: job starts", what);
	is_int(r.calls, 1, "%s: done called once", what);
	is_str(r.pw, want, "%s: password", what);
	is_str(out, want_err, "%s: stderr", what);
	run_finish(&r);
	free(out);
}

static void
pw_fail(const char *command, const char *want_msg, const char *want_why,
	const char *what)
{
	struct run r;
	char *out;
	int rc = run_command(command, &r, &out);

	is_int(rc, 0, "%s: job starts", what);
	is_int(r.calls, 1, "%s: done called once", what);
	ok(r.done && !r.pw, "%s: no password", what);
	has(out, "acct: %s", want_msg);
	is_str(r.why, want_why, "%s: why, for the status line", what);
	ok(!strstr(out, "leaked"), "%s: output not logged", what);
	run_finish(&r);
	free(out);
}

static void
test_output(void)
{
	pw_ok("echo s3cret", "s3cret", "", "echo");
	pw_ok("printf 'a\\nb'", "a", "", "printf 'a\\nb': the first line");
	pw_ok("printf 'first line\\nsecond\\n'", "first line", "",
	      "first line of two");
	pw_ok("printf no-newline", "no-newline", "", "no newline");
	pw_ok("read x; echo \"got${x}end\"", "gotend", "",
	      "stdin is /dev/null");
	pw_ok("echo to-stderr >&2; echo pw", "pw",
	      "mailwatch: acct: password_command: to-stderr\n",
	      "stderr logged under the account's name");
	pw_ok("printf 'one\\r\\ntwo\\nthree' >&2; echo pw", "pw",
	      "mailwatch: acct: password_command: one\n"
	      "mailwatch: acct: password_command: two\n"
	      "mailwatch: acct: password_command: three\n",
	      "stderr: each line, CR dropped, the last without newline");
	pw_ok("i=0; while [ $i -lt 30 ]; do echo e$i >&2; i=$((i+1)); done; "
	      "echo pw",
	      "pw",
	      "mailwatch: acct: password_command: e0\n"
	      "mailwatch: acct: password_command: e1\n"
	      "mailwatch: acct: password_command: e2\n"
	      "mailwatch: acct: password_command: e3\n"
	      "mailwatch: acct: password_command: e4\n"
	      "mailwatch: acct: password_command: e5\n"
	      "mailwatch: acct: password_command: e6\n"
	      "mailwatch: acct: password_command: e7\n"
	      "mailwatch: acct: password_command: e8\n"
	      "mailwatch: acct: password_command: e9\n"
	      "mailwatch: acct: password_command: e10\n"
	      "mailwatch: acct: password_command: e11\n"
	      "mailwatch: acct: password_command: e12\n"
	      "mailwatch: acct: password_command: e13\n"
	      "mailwatch: acct: password_command: e14\n"
	      "mailwatch: acct: password_command: e15\n"
	      "mailwatch: acct: password_command: e16\n"
	      "mailwatch: acct: password_command: e17\n"
	      "mailwatch: acct: password_command: e18\n"
	      "mailwatch: acct: password_command: e19\n"
	      "mailwatch: acct: password_command: (more lines on stderr "
	      "dropped)\n",
	      "stderr: 20 lines, then one saying the rest is dropped");
	pw_ok("i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done",
	      "line0", "", "long output is drained");
	/* head would die of SIGPIPE (and the job fail) if the job stopped
	 * reading after the first line. */
	pw_ok("yes | head -c 1000000", "y", "", "a megabyte of output");
	pw_ok("yes | head -c 1000000; echo done-reading >&2", "y",
	      "mailwatch: acct: password_command: done-reading\n",
	      "a megabyte, then more on stderr");
	/* A CRLF line end is not the password's; blank space is. */
	pw_ok("printf 'hunter2\\r\\n'", "hunter2", "", "CRLF");
	pw_ok("printf ' two words \\n'", " two words ", "",
	      "spaces around a password kept");
	pw_fail("printf '\\r\\n'", "password_command printed an empty first line",
		"an empty first line", "only a CR");
}

/* A line of stderr longer than what is logged at once: cut in pieces,
 * nothing lost, nothing past the buffer. */
static void
test_long_error_line(void)
{
	struct run r;
	char *out, *p;
	size_t lines = 0, xs = 0;
	int rc = run_command("head -c 1200 /dev/zero | tr '\\0' x >&2; "
			     "echo >&2; echo pw",
			     &r, &out);

	is_int(rc, 0, "long stderr line: job starts");
	is_str(r.pw, "pw", "long stderr line: the password all the same");
	for (p = out; *p; p++) {
		lines += *p == '\n';
		xs += *p == 'x';
	}
	is_int(lines, 3, "long stderr line: 1200 bytes in 3 log lines");
	is_int(xs, 1200, "long stderr line: every byte of it logged");
	run_finish(&r);
	free(out);
}

/* A token: the first line without a CR at its end, nor blank space
 * around it (a token has none). */
static void
test_token_line(void)
{
	static const struct {
		const char *printf_arg, *want, *what;
	} cases[] = {
	    {"tok123\\r\\n", "tok123", "CRLF"},
	    {"  tok123 \\t\\n", "tok123", "blank space around"},
	    {" \\t \\n", NULL, "blank space only"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"printf", (char *)cases[i].printf_arg, NULL};
		struct account a = {.name = "acct", .oauth2_token_command = argv};
		struct run r;
		char *out;
		int rc = run_account(&a, &r, &out);

		is_int(rc, 0, "token, %s: job starts", cases[i].what);
		is_str(r.pw, cases[i].want, "token, %s", cases[i].what);
		if (!cases[i].want)
			has(out, "acct: oauth2_token_command printed an empty "
				 "first line");
		run_finish(&r);
		free(out);
	}
}

/* A token program that is not installed: the log line names it (a
 * trial's said "oauth2_token_command: not found in PATH"). */
static void
test_token_missing(void)
{
	char *argv[] = {"mailwatch-no-such-helper", "show", NULL};
	struct account a = {.name = "acct", .oauth2_token_command = argv};
	struct run r;
	char *out;
	int rc = run_account(&a, &r, &out);

	ok(rc < 0, "token program missing: no job");
	has(out, "acct: oauth2_token_command: cannot start "
		 "mailwatch-no-such-helper: not found in PATH");
	free(out);
}

static void
test_line_limits(void)
{
	struct run r;
	char *out, want[4096];

	memset(want, 'x', 4095);
	want[4095] = '\0';
	is_int(run_command("head -c 4095 /dev/zero | tr '\\0' x; echo; "
			   "echo second",
			   &r, &out),
	       0, "4095-byte line: job starts");
	is_str(r.pw, want, "4095-byte line: accepted whole");
	run_finish(&r);
	free(out);

	pw_fail("head -c 4096 /dev/zero | tr '\\0' x; echo",
		"password_command: first line of output is longer than 4095 "
		"bytes (exit status 0)",
		"a first line too long", "4096-byte line");
	pw_fail("printf 'ab\\0cd\\n'",
		"password_command: output holds a NUL byte (exit status 0)",
		"a NUL byte in its output", "NUL byte");
}

static void
test_failures(void)
{
	pw_fail("echo leaked; exit 3",
		"password_command failed with exit status 3", "exit status 3",
		"exit 3");
	pw_fail("true", "password_command printed nothing (exit status 0)",
		"no output", "no output");
	pw_fail("echo; echo leaked",
		"password_command printed an empty first line (exit status 0)",
		"an empty first line", "empty first line");
	pw_fail("echo leaked; kill -TERM $$",
		"password_command was killed by signal 15",
		"killed by signal 15", "signal");
	pw_fail("exec /nonexistent/x",
		"password_command failed with exit status 127",
		"exit status 127", "command not found");
}

/* pw_fail() with the command fmt, whose %lld becomes S seconds (10,
 * scaled) of sleep: also checks that the job ended before S seconds, that
 * is that the sleep was killed, not waited for. */
static void
pw_killed(const char *fmt, const char *want_msg, const char *what)
{
	long long s = scaled_ms(10000) / 1000, t0 = ms_now();
	char *command = xasprintf(fmt, s);

	pw_fail(command, want_msg, "no answer in 1 s", what);
	ok(ms_now() - t0 < s * 1000,
	   "%s: ended in %lld ms, before its sleep %lld", what, ms_now() - t0,
	   s);
	free(command);
}

static void
test_timeout(void)
{
	password_timeout_ms = 300;
	pw_killed("echo leaked; sleep %lld",
		  "password_command did not finish within 300 ms; killed it",
		  "slow command killed");
	pw_killed("echo leaked; exec >&-; sleep %lld",
		  "password_command did not finish within 300 ms",
		  "closes stdout, keeps running: killed");
	pw_fail("yes leaked", "password_command did not finish within 300 ms",
		"no answer in 1 s", "writes without end");
	password_timeout_ms = 2000;
	pw_fail("sleep 10", "password_command did not finish within 2 s",
		"no answer in 2 s", "timeout in whole seconds");
	password_timeout_ms = 30000;
}

/* True once pid is gone: reaped, or a zombie of someone else's. */
static bool
gone(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	bool zombie = false;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		zombie = p[1] == ' ' && p[2] == 'Z';
	fclose(f);
	return zombie;
}

/* Runs e for up to ms milliseconds, or until pred() is true. */
static void
run_for(sd_event *e, long long ms, bool (*pred)(void))
{
	long long end = ms_now() + ms;

	while (ms_now() < end && !(pred && pred()))
		sd_event_run(e, 20000);
}

static char *pids_path;

/* The pid in pids_path, or 0. */
static pid_t
read_pid(void)
{
	FILE *f = fopen(pids_path, "r");
	int pid = 0;

	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

/* A command that prints the password and exits, leaving a process in its
 * group that holds the output open: the password counts from the exit,
 * and freeing the job (on_done does) kills what was left. */
static void
test_left_behind(void)
{
	char *cmd, *out;
	struct run r;
	pid_t left;
	int rc;

	pids_path = xasprintf("%s/left", dir);
	cmd = xasprintf("echo pw; sleep 30 & echo $! >%s.tmp; mv %s.tmp %s",
			pids_path, pids_path, pids_path);
	rc = run_command(cmd, &r, &out);
	is_int(rc, 0, "left behind: job starts");
	is_str(r.pw, "pw", "left behind: the password, at the shell's exit");
	is_str(out, "", "left behind: nothing logged");
	left = read_pid();
	ok(left > 0, "left behind: the shell started a process (pid %d)",
	   (int)left);
	if (left > 0) {
		long long end = ms_now() + scaled_ms(3000);

		while (!gone(left) && ms_now() < end)
			usleep(10000);
		ok(gone(left), "left behind: killed when the job is freed");
	}
	run_finish(&r);
	free(out);
	unlink(pids_path);
	free(pids_path);
	free(cmd);
}

static bool
pids_written(void)
{
	struct stat st;

	return stat(pids_path, &st) == 0 && st.st_size > 0;
}

static void
test_free_running(void)
{
	char *cmd, *out;
	struct run r = {0};
	struct account a = {.name = "acct"};
	pid_t shell, child;
	long long t0, s = scaled_ms(30000) / 1000;
	FILE *f;
	int rc;

	pids_path = xasprintf("%s/pids", dir);
	/* The shell writes its pid and its child's only once both exist. */
	cmd = xasprintf("sleep %lld & echo $$ $! >%s.tmp; mv %s.tmp %s; wait",
			s, pids_path, pids_path, pids_path);
	a.password_command = cmd;
	r.e = loop_new();
	capture_begin(cap_path);
	rc = password_job_new(r.e, &a, on_done, &r, &r.job);
	is_int(rc, 0, "free while running: job starts");
	run_for(r.e, scaled_ms(5000), pids_written);
	f = fopen(pids_path, "r");
	shell = child = 0;
	if (f) {
		int s = 0, c = 0;

		if (fscanf(f, "%d %d", &s, &c) == 2)
			shell = s, child = c;
		fclose(f);
	}
	ok(shell > 0 && child > 0, "free while running: the command runs");
	t0 = ms_now();
	password_job_free(&r.job);
	ok(!r.job, "free sets the pointer to NULL");
	ok(ms_now() - t0 < s * 1000,
	   "free returns before the command would end (%lld ms)",
	   ms_now() - t0);
	if (shell > 0)
		ok(kill(shell, 0) < 0 && errno == ESRCH,
		   "free killed and reaped the shell");
	if (child > 0) {
		long long end = ms_now() + scaled_ms(3000);

		while (!gone(child) && ms_now() < end)
			usleep(10000);
		ok(gone(child), "free killed what the shell started");
	}
	run_for(r.e, 300, NULL);
	out = capture_end();
	is_int(r.calls, 0, "free while running: no callback");
	ok(!strstr(out, "password_command"), "free while running: no message");
	if (strstr(out, "password_command"))
		dump(out);
	free(out);
	sd_event_unref(r.e);
	unlink(pids_path);
	free(pids_path);
	free(cmd);
}

static void
test_password_value(void)
{
	struct account a = {.name = "acct", .password = "direct"};
	struct run r;
	char *out;
	int rc;

	rc = run_account(&a, &r, &out);
	is_int(rc, 0, "password =: job starts");
	is_int(r.calls, 1, "password =: done called once");
	is_str(r.pw, "direct", "password =: the value comes back");
	ok(r.pw != a.password, "password =: a new string");
	is_str(out, "", "password =: nothing logged");
	run_finish(&r);
	free(out);

	/* Not synchronous: done comes from the loop, and not after free. */
	memset(&r, 0, sizeof(r));
	r.e = loop_new();
	rc = password_job_new(r.e, &a, on_done, &r, &r.job);
	is_int(rc, 0, "password =: second job starts");
	is_int(r.calls, 0, "password =: no callback from password_job_new");
	password_job_free(&r.job);
	run_for(r.e, 100, NULL);
	is_int(r.calls, 0,
	       "password =: freed before the loop ran, no "
	       "callback");
	sd_event_unref(r.e);

	a.password = NULL;
	memset(&r, 0, sizeof(r));
	r.e = loop_new();
	capture_begin(cap_path);
	rc = password_job_new(r.e, &a, on_done, &r, &r.job);
	out = capture_end();
	is_int(rc, -EINVAL, "neither password nor command: -EINVAL");
	ok(!r.job, "neither: no job");
	has(out, "acct: neither password, password_command nor oauth2_token_command is set");
	run_for(r.e, 50, NULL);
	is_int(r.calls, 0, "neither: no callback");
	free(out);
	sd_event_unref(r.e);
}

static struct run *parallel_c;

static bool
parallel_c_done(void)
{
	return parallel_c->done;
}

static bool
parallel_both_started(void)
{
	char *a = xasprintf("%s/started.a", dir),
	     *b = xasprintf("%s/started.b", dir);
	bool r = access(a, F_OK) == 0 && access(b, F_OK) == 0;

	free(a);
	free(b);
	return r;
}

/* The loop is not blocked: password_job_new returns while the commands
 * run, `password =` does not wait behind them, and the commands run side
 * by side. Each command says it started, then waits until the test says
 * go: run one after the other, the second would never start. */
static void
test_parallel(void)
{
	char *go = xasprintf("%s/go", dir);
	char *cmd_a = xasprintf("touch %s/started.a; until [ -e %s ]; do "
				"sleep 0.02; done; echo A",
				dir, go);
	char *cmd_b = xasprintf("touch %s/started.b; until [ -e %s ]; do "
				"sleep 0.02; done; echo B",
				dir, go);
	struct account a = {.name = "a", .password_command = cmd_a};
	struct account b = {.name = "b", .password_command = cmd_b};
	struct account c = {.name = "c", .password = "C"};
	struct run ra = {0}, rb = {0}, rc = {0};
	unsigned pending = 3;
	sd_event *e = loop_new();
	FILE *f;

	ra.e = rb.e = rc.e = e;
	ra.pending = rb.pending = rc.pending = &pending;
	password_job_new(e, &a, on_done, &ra, &ra.job);
	password_job_new(e, &b, on_done, &rb, &rb.job);
	password_job_new(e, &c, on_done, &rc, &rc.job);
	ok(!ra.done && !rb.done,
	   "password_job_new returns while the commands run");
	parallel_c = &rc;
	run_for(e, scaled_ms(10000), parallel_c_done);
	ok(rc.done && !ra.done && !rb.done,
	   "parallel: password = comes while the commands run");
	run_for(e, scaled_ms(10000), parallel_both_started);
	ok(parallel_both_started(), "parallel: both commands run at once");
	f = fopen(go, "w");
	if (f)
		fclose(f);
	sd_event_loop(e);
	is_str(ra.pw, "A", "parallel: a");
	is_str(rb.pw, "B", "parallel: b");
	is_str(rc.pw, "C", "parallel: c");
	run_finish(&ra);
	run_finish(&rb);
	run_finish(&rc);
	sd_event_unref(e);
	for (const char *n = "abg"; *n; n++) {
		char *p = *n == 'g' ? xstrdup(go)
				    : xasprintf("%s/started.%c", dir, *n);

		unlink(p);
		free(p);
	}
	free(go);
	free(cmd_a);
	free(cmd_b);
}

/* A request of the provider and what its callback saw. */
struct turn {
	struct cred_req *req;
	unsigned calls;
	char got[16]; /* the secret, or "NULL" */
};

static void
on_turn(void *ud, const char *secret)
{
	struct turn *t = ud;

	t->calls++;
	snprintf(t->got, sizeof(t->got), "%s", secret ? secret : "NULL");
	if (!secret)
		t->req = NULL; /* gone */
}

/* Which of t[0..n) were answered, as a string like "10" (1: answered). */
static const char *
answered(const struct turn *t, size_t n)
{
	static char s[8];

	for (size_t i = 0; i < n; i++)
		s[i] = (char)('0' + t[i].calls);
	s[n] = 0;
	return s;
}

/* One login at a time: the provider answers the next request only when
 * the login of the one before is over (its request cancelled); a request
 * withdrawn while waiting is never answered; a failure answers everyone
 * waiting. */
static void
test_cred_turns(void)
{
	struct account a = {.name = "acct", .password = "pw"};
	struct turn t[3] = {0};
	sd_event *e = loop_new();
	struct cred *c = cred_new(e, &a, NULL);
	char *out;

	for (size_t i = 0; i < 3; i++)
		t[i].req = cred_ask(c, on_turn, &t[i]);
	is_str(answered(t, 3), "000", "turns: nothing answered from cred_ask");
	run_for(e, 100, NULL);
	is_str(answered(t, 3), "100", "turns: the first request only");
	is_str(t[0].got, "pw", "turns: with the password");
	cred_cancel(&t[2].req); /* withdrawn while waiting */
	cred_cancel(&t[0].req); /* the first login is over */
	run_for(e, 100, NULL);
	is_str(answered(t, 3), "110", "turns: then the second, not the "
				      "withdrawn third");
	cred_cancel(&t[1].req);
	run_for(e, 100, NULL);
	is_str(answered(t, 3), "110", "turns: nothing more");
	cred_free(&c);

	/* A command that fails answers every request waiting, at once. */
	memset(t, 0, sizeof(t));
	a.password = NULL;
	a.password_command = "exit 3";
	c = cred_new(e, &a, NULL);
	capture_begin(cap_path);
	for (size_t i = 0; i < 3; i++)
		t[i].req = cred_ask(c, on_turn, &t[i]);
	run_for(e, scaled_ms(5000), NULL);
	out = capture_end();
	is_str(answered(t, 3), "111", "turns: a failure answers all");
	ok(!strcmp(t[0].got, "NULL") && !strcmp(t[2].got, "NULL"),
	   "turns: with NULL");
	is_str(cred_failure(c), "exit status 3", "turns: and says why");
	has(out, "acct: ");
	free(out);
	cred_free(&c);

	/* A password the server refused is not handed out again: the
	 * requests waiting, and later ones, get NULL (trial AM: each of an
	 * account's connections sent it after a password change). */
	memset(t, 0, sizeof(t));
	a.password = "pw";
	a.password_command = NULL;
	c = cred_new(e, &a, NULL);
	for (size_t i = 0; i < 2; i++)
		t[i].req = cred_ask(c, on_turn, &t[i]);
	run_for(e, 100, NULL);
	is_str(t[0].got, "pw", "refused: the first login gets it");
	ok(!cred_was_refused(c), "refused: not yet");
	cred_refused(c);
	cred_cancel(&t[0].req); /* that login is over */
	run_for(e, 100, NULL);
	t[2].req = cred_ask(c, on_turn, &t[2]);
	run_for(e, 100, NULL);
	is_str(answered(t, 3), "111", "refused: the others are answered");
	ok(!strcmp(t[1].got, "NULL") && !strcmp(t[2].got, "NULL"),
	   "refused: with NULL, the one waiting and a later one");
	ok(cred_was_refused(c), "refused: cred_was_refused() says why");
	cred_free(&c);
	sd_event_unref(e);
}

int
main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	cap_path = xasprintf("%s/stderr", dir);

	test_output();
	test_token_line();
	test_token_missing();
	test_long_error_line();
	test_line_limits();
	test_failures();
	test_timeout();
	test_left_behind();
	test_free_running();
	test_password_value();
	test_parallel();
	test_cred_turns();

	unlink(cap_path);
	free(cap_path);
	rmdir(dir);
	return tap_done();
}
