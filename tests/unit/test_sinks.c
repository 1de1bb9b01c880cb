/* The two sinks on a real sd-event loop.
 *
 * sink_notify talks to build/tests/notifyd on a private dbus-daemon (with
 * no service activation), and to a bus without a notification server, and
 * to no bus at all. sink_hook runs shell scripts written to a temporary
 * directory that record their environment. Log lines are caught by
 * pointing stderr (the FILE) at a file, so that sanitizer reports still
 * reach fd 2. Every wait on the loop is for a condition, bounded by a
 * deadline scaled by MWTEST_TIMEOUT_SCALE. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "copies.h"
#include "event.h"
#include "mime.h"
#include "sink.h"
#include "tap.h"
#include "util.h"

extern char **environ;

static char tmpdir[] = "/tmp/mailwatch-test-sinks.XXXXXX";
static char *log_path;
static FILE *real_stderr;

/* Milliseconds on the monotonic clock. */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static char *
path_in(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

/* The whole file, or NULL when it does not exist. Caller frees. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	{
		FILE *m = open_memstream(&buf, &len);
		int c;

		while ((c = fgetc(f)) != EOF)
			fputc(c, m);
		fclose(m);
	}
	fclose(f);
	return buf;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		printf("Bail out! %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static bool
exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int
count_str(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static int
count_lines(const char *s)
{
	return s ? count_str(s, "\n") : 0;
}

/* --- log capture ------------------------------------------------------ */

/* Where the log file is now: pass to log_since(). */
static long
log_mark(void)
{
	struct stat st;

	fflush(stderr);
	return stat(log_path, &st) == 0 ? (long)st.st_size : 0;
}

/* What was logged after mark. Caller frees. */
static char *
log_since(long mark)
{
	char *all = slurp(log_path);
	char *r = xstrdup(all && (long)strlen(all) >= mark ? all + mark : "");

	free(all);
	return r;
}

/* Shows the log lines since mark as TAP comments. */
static void
log_show(long mark)
{
	char *s = log_since(mark), *line, *save = NULL;

	for (line = strtok_r(s, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("#   log: %s\n", line);
	free(s);
}

/* --- running the loop ------------------------------------------------- */

/* Runs the loop until cond(arg) holds or ms (scaled) pass. Returns
 * cond(arg). */
static bool
run_until(sd_event *e, bool (*cond)(void *), void *arg, int ms)
{
	long long end = now_ms() + scaled_ms(ms);

	while (!cond(arg) && now_ms() < end)
		sd_event_run(e, 50 * 1000);
	return cond(arg);
}

static bool
never(void *arg)
{
	(void)arg;
	return false;
}

/* Runs the loop for ms (scaled): a time in which something must not
 * happen. */
static void
run_for(sd_event *e, int ms)
{
	run_until(e, never, NULL, ms);
}

/* Runs what is ready on the loop now, and what that makes ready, until
 * nothing is. */
static void
run_ready(sd_event *e)
{
	while (sd_event_run(e, 0) > 0)
		;
}

/* Runs the loop for ms and returns how many times it woke up for an
 * event. */
static int
count_wakeups(sd_event *e, int ms)
{
	long long end = now_ms() + ms, left;
	int n = 0;

	while ((left = end - now_ms()) > 0)
		n += sd_event_run(e, (uint64_t)left * 1000) > 0;
	return n;
}

struct log_wait {
	long mark;
	const char *needle;
	int n; /* at least this many times */
};

static bool
log_has(void *arg)
{
	struct log_wait *w = arg;
	char *s = log_since(w->mark);
	bool r = count_str(s, w->needle) >= w->n;

	free(s);
	return r;
}

/* Runs the loop until needle was logged n times since mark. */
static bool
wait_log(sd_event *e, long mark, const char *needle, int n, int ms)
{
	struct log_wait w = {mark, needle, n};

	return run_until(e, log_has, &w, ms);
}

struct file_wait {
	const char *path;
	int lines; /* at least this many lines; 0: just exists */
};

static bool
file_has(void *arg)
{
	struct file_wait *w = arg;
	char *s = slurp(w->path);
	bool r = s && count_lines(s) >= w->lines;

	free(s);
	return r;
}

static bool
wait_file(sd_event *e, const char *path, int lines, int ms)
{
	struct file_wait w = {path, lines};

	return run_until(e, file_has, &w, ms);
}

/* --- helper processes ------------------------------------------------- */

/* Starts argv with a clean signal mask and stdout on a pipe whose read end
 * goes to *out_r. Returns the pid, or -1. */
static pid_t
spawn_helper(char *const *argv, int *out_r)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	pid_t pid;
	int p[2], err;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigmask(&attr, &none);
	err = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[1]);
	if (err) {
		printf("# %s: %s\n", argv[0], strerror(err));
		close(p[0]);
		return -1;
	}
	*out_r = p[0];
	return pid;
}

/* Reads one line (without its newline) from fd within ms (scaled).
 * Returns a new string or NULL. */
static char *
read_line(int fd, int ms)
{
	char buf[1024];
	size_t n = 0;
	long long end = now_ms() + scaled_ms(ms);

	while (n < sizeof(buf) - 1) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = end - now_ms();

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return NULL;
		if (read(fd, buf + n, 1) != 1)
			return NULL;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return xstrdup(buf);
}

static void
stop_helper(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	waitpid(*pid, NULL, 0);
	*pid = -1;
}

/* Starts a dbus-daemon listening on TMPDIR/name with no service
 * activation, and points DBUS_SESSION_BUS_ADDRESS at it. Calls awaiting
 * their reply are limited as on a desktop's session bus (session.conf;
 * dbus-daemon's own default is 128). */
static pid_t
start_bus(const char *name)
{
	char *sock = path_in(name), *conf_path = xasprintf("%s.conf", sock);
	char *conf = xasprintf(
	    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus "
	    "Configuration 1.0//EN\"\n"
	    " \"http://www.freedesktop.org/standards/dbus/1.0/"
	    "busconfig.dtd\">\n"
	    "<busconfig>\n"
	    "  <type>session</type>\n"
	    "  <listen>unix:path=%s</listen>\n"
	    "  <auth>EXTERNAL</auth>\n"
	    "  <limit name=\"max_replies_per_connection\">50000</limit>\n"
	    "  <policy context=\"default\">\n"
	    "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
	    "    <allow eavesdrop=\"true\"/>\n"
	    "    <allow own=\"*\"/>\n"
	    "  </policy>\n"
	    "</busconfig>\n",
	    sock);
	char *conf_arg = xasprintf("--config-file=%s", conf_path);
	char *argv[] = {"dbus-daemon", conf_arg, "--nofork",
			"--print-address=1", NULL};
	char *addr;
	pid_t pid;
	int fd;

	write_file(conf_path, conf, 0644);
	pid = spawn_helper(argv, &fd);
	addr = pid > 0 ? read_line(fd, 5000) : NULL;
	ok(addr && !strncmp(addr, "unix:path=", 10), "dbus-daemon %s started",
	   name);
	if (addr)
		setenv("DBUS_SESSION_BUS_ADDRESS", addr, 1);
	if (pid > 0)
		close(fd);
	free(addr);
	free(conf_arg);
	free(conf);
	free(conf_path);
	free(sock);
	return pid;
}

/* Starts build/tests/notifyd recording into json and waits for its
 * "ready". */
static pid_t
start_notifyd(const char *json)
{
	char *argv[] = {"build/tests/notifyd", (char *)json, NULL};
	char *line = NULL;
	pid_t pid;
	int fd;

	pid = spawn_helper(argv, &fd);
	if (pid > 0) {
		line = read_line(fd, 5000);
		close(fd);
	}
	is_str(line, "ready", "notifyd started (make build/tests/notifyd)");
	free(line);
	return pid;
}

/* --- JSON lines from notifyd ------------------------------------------ */

/* The value of "key" in one JSON line of notifyd: a string unescaped, else
 * the raw token (number, [...] or {...}). Caller frees; NULL if missing. */
static char *
json_get(const char *line, const char *key)
{
	char *pat = xasprintf("\"%s\":", key), *r;
	const char *p = strstr(line, pat);
	size_t n;

	free(pat);
	if (!p)
		return NULL;
	p += strlen(key) + 3;
	if (*p == '"') {
		char *w = r = xmalloc(strlen(p));

		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1] == 'u') {
				*w++ = (char)strtol(
				    (char[]){p[2], p[3], p[4], p[5], 0}, NULL,
				    16);
				p += 5;
			} else {
				if (*p == '\\')
					p++;
				*w++ = *p;
			}
		}
		*w = '\0';
		return r;
	}
	if (*p == '[' || *p == '{')
		n = strcspn(p, "]}") + 1;
	else
		n = strcspn(p, ",}");
	return xstrndup(p, n);
}

/* Line i (from 0) of text. Caller frees; NULL if there is none. */
static char *
line_at(const char *text, int i)
{
	const char *p = text;

	for (; p && i > 0; i--) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p || !*p)
		return NULL;
	return xstrndup(p, strcspn(p, "\n"));
}

#define is_json(line, key, want, ...)                                          \
	do {                                                                   \
		char *v_ = (line) ? json_get((line), (key)) : NULL;            \
		is_str(v_, (want), __VA_ARGS__);                               \
		free(v_);                                                      \
	} while (0)

/* --- fixtures --------------------------------------------------------- */

static struct account
account_init(const char *name)
{
	struct account a = {0};

	a.name = (char *)name;
	a.d.notify = true;
	a.d.hook_timeout = 30;
	a.d.urgency = 1;
	return a;
}

static struct mail_event
event_init(uint32_t uid, const char *from_name, const char *from_address,
	   const char *subject)
{
	struct mail_event ev = {0};

	ev.account = "acct";
	ev.mailbox = "INBOX";
	ev.uid = uid;
	ev.uidvalidity = 1700000000;
	ev.from_name = (char *)from_name;
	ev.from_address = (char *)from_address;
	ev.from = (char *)(*from_name ? "Alice Example <alice@example.org>"
				      : from_address);
	ev.subject = (char *)subject;
	ev.date = "Mon, 1 Jan 2024 10:00:00 +0000";
	ev.message_id = "<1@example.org>";
	return ev;
}

/* --- sink_notify ------------------------------------------------------ */

/* A private bus with notifyd recording into TMPDIR/NAME.json, and a
 * notify sink on it. */
struct rig {
	char *json;
	pid_t bus, notifyd;
	struct sink *s;
};

static struct rig
rig_start(sd_event *e, const char *name)
{
	char *bus = xasprintf("bus-%s", name);
	char *json = xasprintf("%s.json", name);
	struct rig r;

	r.json = path_in(json);
	r.bus = start_bus(bus);
	r.notifyd = start_notifyd(r.json);
	r.s = sink_notify_new(e, NULL);
	free(bus);
	free(json);
	return r;
}

static void
rig_stop(struct rig *r)
{
	log_max_level = LOG_INFO;
	sink_free(&r->s);
	stop_helper(&r->notifyd);
	stop_helper(&r->bus);
	free(r->json);
}


static void
test_notify(sd_event *e)
{
	const char *subject = "<b>Hi</b> & <a href='x'>";
	char *json = path_in("notify.json"), *text, *line, *escaped;
	struct account a = account_init("acct"), quiet = account_init("quiet");
	struct mail_event ev1 =
	    event_init(1, "Alice Example", "alice@example.org", subject);
	struct mail_event ev2 = event_init(2, "", "bob@example.org", "");
	struct mail_event ev3 = event_init(3, "", "", "");
	/* A name that is an address of its own: the real one is shown. */
	struct mail_event ev4 =
	    event_init(4, "ceo@bank.example", "x@evil.example", "Pay");
	/* Or one with an '@' that only looks like it (U+FF20, U+FE6B). */
	struct mail_event ev5 = event_init(5, "ceo\xef\xbc\xa0" "bank.example",
					   "y@evil.example", "Pay");
	struct mail_event ev6 = event_init(6, "ceo\xef\xb9\xab" "bank.example",
					   "z@evil.example", "Pay");
	struct sink *s;
	pid_t bus, notifyd;
	long mark = log_mark(), m2;
	char *l;

	bus = start_bus("bus");
	notifyd = start_notifyd(json);
	s = sink_notify_new(e, NULL);

	/* ev1: urgency 2, the default icon; ev2: a custom icon, urgency 0;
	 * an account with notify = false sends nothing. */
	log_max_level = LOG_DEBUG;
	a.d.urgency = 2;
	s->ops->send(s, &a, &ev1);
	quiet.d.notify = false;
	s->ops->send(s, &quiet, &ev1);
	a.d.urgency = 0;
	a.d.icon = "custom-icon";
	s->ops->send(s, &a, &ev2);
	a.d.icon = NULL;
	a.d.urgency = 1;
	s->ops->send(s, &a, &ev3);
	s->ops->send(s, &a, &ev4);
	s->ops->send(s, &a, &ev5);
	s->ops->send(s, &a, &ev6);
	s->ops->batch_done(s, &a, "INBOX", 6);
	ok(wait_file(e, json, 6, 5000), "six notifications recorded");
	ok(wait_log(e, mark, " shown", 6, 5000), "six replies received");
	log_max_level = LOG_INFO;
	text = slurp(json);
	is_int(count_lines(text), 6, "notify = false sends nothing");

	line = text ? line_at(text, 0) : NULL;
	printf("# %s\n", line ? line : "(no line)");
	is_json(line, "method", "Notify", "Notify called");
	is_json(line, "app_name", "mailwatch", "app_name");
	is_json(line, "replaces_id", "0", "replaces_id 0");
	is_json(line, "icon", "mail-unread", "default icon");
	is_json(line, "summary", "Alice Example", "summary is the sender name");
	escaped = mime_escape_markup(subject);
	is_json(line, "body", escaped, "body is the escaped subject");
	{
		char *body = line ? json_get(line, "body") : NULL;

		ok(body && !strpbrk(body, "<>'\""),
		   "no markup characters survive in the body");
		ok(body &&
		       !strncmp(body,
				"&lt;b&gt;Hi&lt;/b&gt; &amp; &lt;a href=", 39),
		   "body escapes tags and ampersands");
		free(body);
	}
	is_json(line, "actions", "[\"default\",\"Dismiss\"]",
		"without on_click, a default action that dismisses (so "
		"that no server opens a URL of the mail's at a click)");
	is_json(line, "category", "email.arrived", "category email.arrived");
	is_json(line, "urgency", "2", "urgency from the account");
	is_json(line, "expire", "-1", "server default expiry");
	free(line);
	free(escaped);

	line = text ? line_at(text, 1) : NULL;
	is_json(line, "summary", "bob@example.org",
		"summary is the address without a name");
	is_json(line, "body", "(no subject)", "empty subject");
	is_json(line, "icon", "custom-icon", "account icon");
	is_json(line, "urgency", "0", "low urgency");
	free(line);
	line = text ? line_at(text, 2) : NULL;
	is_json(line, "summary", "New mail", "summary without a sender");
	is_json(line, "urgency", "1", "normal urgency");
	free(line);
	line = text ? line_at(text, 3) : NULL;
	is_json(line, "summary", "x@evil.example",
		"a name with an '@': the address, not the name");
	free(line);
	line = text ? line_at(text, 4) : NULL;
	is_json(line, "summary", "y@evil.example",
		"a name with a fullwidth '@': the address");
	free(line);
	line = text ? line_at(text, 5) : NULL;
	is_json(line, "summary", "z@evil.example",
		"a name with a small '@': the address");
	free(line);
	free(text);
	{
		char *l = log_since(mark);

		ok(!strstr(l, "no notification server") &&
		       !strstr(l, "notification failed"),
		   "no failure logged");
		free(l);
	}
	is_int(count_wakeups(e, 300), 0, "connected and idle: no wake-ups");

	/* The server goes away: one warning, send() does not wait for the
	 * reply, and the watching goes on. */
	stop_helper(&notifyd);
	m2 = log_mark();
	log_max_level = LOG_DEBUG;
	for (uint32_t uid = 10; uid < 13; uid++) {
		ev1.uid = uid;
		s->ops->send(s, &a, &ev1);
	}
	l = log_since(m2);
	ok(!strstr(l, "no notification server"),
	   "send() returns before the error reply comes (from the loop)");
	free(l);
	ok(wait_log(e, m2, "no notification server on the session bus", 1,
		    5000),
	   "a missing server is logged");
	ok(wait_log(e, m2, "notification dropped", 2, 5000),
	   "the other two error replies came");
	log_max_level = LOG_INFO;
	l = log_since(m2);
	is_int(count_str(l, "no notification server"), 1,
	       "... once for three messages");
	ok(strstr(l, "ServiceUnknown") != NULL, "... saying why");
	ok(strstr(l, "mailwatch: no notification server") != NULL,
	   "... not as one account's trouble");
	ok(strstr(l, "will keep watching") != NULL,
	   "... and that watching goes on");
	free(l);

	/* Back: the next message is shown, then a new failure is logged
	 * again. */
	notifyd = start_notifyd(json);
	m2 = log_mark();
	s->ops->send(s, &a, &ev2);
	ok(wait_file(e, json, 4, 5000), "shown again once the server is back");
	ok(wait_log(e, m2, "desktop notifications work again", 1, 2000),
	   "recovery logged");
	stop_helper(&notifyd);
	s->ops->send(s, &a, &ev2);
	ok(wait_log(e, m2, "no notification server", 1, 5000),
	   "a new failure after a success is logged again");

	/* The bus itself goes (its end is on the socket at once), then comes
	 * back at another address. */
	stop_helper(&bus);
	run_ready(e);
	is_int(count_wakeups(e, 300), 0, "lost bus: no wake-ups");
	m2 = log_mark();
	log_max_level = LOG_DEBUG;
	s->ops->send(s, &a, &ev2);
	ok(wait_log(e, m2, "notification dropped", 1, 5000),
	   "lost bus: the notification is dropped");
	log_max_level = LOG_INFO;
	bus = start_bus("bus2");
	notifyd = start_notifyd(json);
	s->ops->send(s, &a, &ev3);
	ok(wait_file(e, json, 5, 5000), "reconnects to a new session bus");
	log_show(mark);
	sink_free(&s);
	ok(!s, "sink_free clears the pointer");
	stop_helper(&notifyd);
	stop_helper(&bus);
	free(json);
}

/* Lines of the recording with method, in text. */
static int
calls(const char *path, const char *method)
{
	char *text = slurp(path), needle[64];
	int n;

	snprintf(needle, sizeof(needle), "\"method\":\"%s\"", method);
	n = text ? count_str(text, needle) : 0;
	free(text);
	return n;
}

/* Copies (copies.h): one told of before its message is sent is added to
 * its notification, which stays until both are withdrawn; a moved message
 * (withdrawn, then its copy) is shown again, twice over, and not counted
 * in a burst again; with burst = 0 a summary closes nothing shown; one
 * read is not shown again for a copy. */
static void
test_notify_copies(sd_event *e)
{
	struct account a = account_init("acct");
	struct mail_event ev = event_init(1, "Ann", "ann@example.org", "One");
	struct mail_event moved = ev;
	struct copy_origin orig = {"INBOX", ev.uidvalidity, 1};
	long mark = log_mark();
	struct rig r = rig_start(e, "copies");
	struct sink *s = r.s;
	char *json = r.json;

	log_max_level = LOG_DEBUG;
	a.d.burst = 3;

	/* The same message twice in one batch: the copy comes first. */
	moved.uid = 2;
	s->ops->copy(s, &a, &orig, &moved);
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, " shown\n", 1, 5000), "copies: one notification");
	s->ops->withdraw(s, &a, "INBOX", ev.uidvalidity, 1, true);
	run_ready(e);
	is_int(calls(json, "CloseNotification"), 0,
	       "copies: one read, it stays for the other");
	s->ops->withdraw(s, &a, "INBOX", ev.uidvalidity, 2, true);
	ok(wait_file(e, json, 2, 5000) &&
	       calls(json, "CloseNotification") == 1,
	   "copies: both read, closed");

	/* Moved twice: closed and shown again each time. */
	ev.uid = 10;
	orig.uid = 10;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, " shown\n", 2, 5000), "moves: shown");
	for (int i = 0; i < 2; i++) {
		moved.mailbox = i ? "G" : "F";
		moved.uid = 20 + i;
		s->ops->withdraw(s, &a, i ? "F" : "INBOX", ev.uidvalidity,
				 i ? 20 : 10, false);
		s->ops->copy(s, &a, &orig, &moved);
		ok(wait_log(e, mark, " shown\n", 3 + i, 5000),
		   "moves: shown again after move %d", i + 1);
	}
	is_int(calls(json, "Notify"), 4, "moves: 4 notifications in all");
	{
		char *l = log_since(mark);

		ok(!strstr(l, "shown as one summary"),
		   "moves: a message shown again is not counted again");
		free(l);
	}

	/* burst = 0: a summary of mail that came while away stands alone. */
	a.d.burst = 0;
	ev.uid = 30;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, " shown\n", 5, 5000), "burst 0: one shown");
	s->ops->summary(s, &a, "INBOX", &ev, 1, 5);
	ok(wait_log(e, mark, " shown\n", 6, 5000), "burst 0: the summary");
	is_int(calls(json, "CloseNotification"), 3,
	       "burst 0: the summary closes nothing (the moves closed 2)");
	{
		char *l = log_since(mark);

		ok(!strstr(l, "new messages within"),
		   "burst 0: mail that came while away is not logged as a "
		   "burst (trial M)");
		free(l);
	}

	/* Read, then copied (delivered again, or copied by a filter): it
	 * was seen, so it is not shown again (trial L). */
	ev.uid = 40;
	orig.uid = 40;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, " shown\n", 7, 5000), "read, then copied: shown");
	s->ops->withdraw(s, &a, "INBOX", ev.uidvalidity, 40, true);
	moved.mailbox = "H";
	moved.uid = 41;
	s->ops->copy(s, &a, &orig, &moved);
	ok(!wait_log(e, mark, " shown\n", 8, 500),
	   "read, then copied: not shown again");
	rig_stop(&r);
}

/* The burst window slides (trial L): 1 message, then 2 just within
 * SINK_BURST_WINDOW and a batch of 2 just after it are 4 within a second,
 * more than burst = 3: one summary for those 4 (closing the 2 shown), the
 * first left alone. And a copy of a message deleted 10 s before is not
 * taken for a move. Takes SINK_BURST_WINDOW + 0.5 s of real time. */
static void
test_notify_sliding(sd_event *e)
{
	char *text;
	struct account a = account_init("acct");
	struct account other = account_init("other");
	struct mail_event ev = event_init(1, "Ann", "ann@example.org", "One");
	struct mail_event gone = event_init(7, "Bo", "bo@example.org", "Bye");
	struct mail_event moved = gone;
	struct copy_origin orig = {"INBOX", gone.uidvalidity, gone.uid};
	long mark = log_mark();
	struct rig r = rig_start(e, "sliding");
	struct sink *s = r.s;
	char *json = r.json;

	log_max_level = LOG_DEBUG;
	a.d.burst = 3;
	/* Meanwhile, in another account: a message deleted (removed, not
	 * read), whose copy comes only after the window. */
	s->ops->send(s, &other, &gone);
	ok(wait_log(e, mark, " shown\n", 1, 5000), "deleted later: shown");
	s->ops->withdraw(s, &other, "INBOX", gone.uidvalidity, gone.uid, false);
	s->ops->send(s, &a, &ev);
	s->ops->batch_done(s, &a, "INBOX", 1);
	ok(wait_log(e, mark, " shown\n", 2, 5000), "sliding: the first shown");
	usleep((SINK_BURST_WINDOW - 1) * 1000000 + 500000);
	run_ready(e);
	for (ev.uid = 2; ev.uid <= 3; ev.uid++) {
		s->ops->send(s, &a, &ev);
		s->ops->batch_done(s, &a, "INBOX", 1);
	}
	ok(wait_log(e, mark, " shown\n", 4, 5000),
	   "sliding: 3 within the window, shown one by one");
	usleep(1000000);
	run_ready(e); /* the loop's time is now's */
	s->ops->batch_start(s, &a, "INBOX", 2);
	for (ev.uid = 4; ev.uid <= 5; ev.uid++) {
		ev.from_name = ev.uid == 4 ? "Bea" : "Cy";
		s->ops->send(s, &a, &ev);
	}
	s->ops->batch_done(s, &a, "INBOX", 2);
	ok(wait_log(e, mark, " shown\n", 5, 5000), "sliding: then a summary");
	ok(wait_file(e, json, 8, 5000), "... which closed two");
	text = slurp(json);
	is_int(text ? count_str(text, "\"summary\":\"4 new messages in "
					 "acct/INBOX\"") : 0,
	       1, "sliding: the summary counts the last 4");
	is_int(calls(json, "CloseNotification"), 3,
	       "sliding: it closed UIDs 2 and 3, not the first (and the "
	       "other account's deleted one was closed)");
	free(text);
	text = NULL;
	/* Ann's two read: the summary names who is left (trial O: the
	 * senders of read mail stayed). */
	s->ops->withdraw(s, &a, "INBOX", ev.uidvalidity, 2, true);
	s->ops->withdraw(s, &a, "INBOX", ev.uidvalidity, 3, true);
	ok(wait_log(e, mark, " shown\n", 7, 5000), "read: the summary updated");
	{
		char *all = slurp(json);
		char *last = all ? line_at(all, count_lines(all) - 1) : NULL;

		is_json(last, "summary", "2 new messages in acct/INBOX",
			"read: the count");
		is_json(last, "body", "Bea, Cy", "read: and the senders left");
		free(last);
		free(all);
	}
	/* The deleted message's copy, more than 10 s after: the user saw
	 * it and deleted it; it is not shown again (trial O). */
	moved.mailbox = "Lists";
	moved.uid = 9;
	mark = log_mark();
	s->ops->copy(s, &other, &orig, &moved);
	ok(!wait_log(e, mark, " shown\n", 1, 500),
	   "a copy of a message deleted 10 s before: not shown again");
	free(text);
	rig_stop(&r);
}

/* A notification server that stops answering for longer than sd-bus's
 * default call timeout (25 s), as a frozen session does. Past
 * NOTIFY_MAX_PENDING (1024) calls awaiting their reply, new notifications
 * are dropped with one warning, and one more says how many once the
 * server caught up (trial M: a warning per drop). What it showed late is
 * closed when read (trial O: the calls had timed out, so their ids never
 * came, and popups of read mail stayed). Takes 26 s of real time. */
static void
test_notify_behind(sd_event *e)
{
	char *l;
	struct account a = account_init("acct");
	struct mail_event ev = event_init(1, "", "bob@example.org", "Hi");
	long mark = log_mark();
	struct rig r = rig_start(e, "behind");
	struct sink *s = r.s;
	char *json = r.json;

	log_max_level = LOG_DEBUG;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, " shown", 1, 5000), "the first one shown");
	log_max_level = LOG_INFO;
	kill(r.notifyd, SIGSTOP);
	for (ev.uid = 2; ev.uid <= 1031; ev.uid++)
		s->ops->send(s, &a, &ev);
	s->ops->batch_done(s, &a, "INBOX", 1030);
	count_wakeups(e, 26000);
	l = log_since(mark);
	is_int(count_str(l, "notifications unanswered: dropping new ones"), 1,
	       "1030 more while the server is stopped: one warning");
	ok(!strstr(l, "no notification server"),
	   "26 s without a reply is no failure");
	free(l);
	/* The last one sent (the table keeps the newest 128). */
	s->ops->withdraw(s, &a, "INBOX", ev.uidvalidity, 1025, true);
	kill(r.notifyd, SIGCONT);
	log_max_level = LOG_DEBUG;
	ok(wait_log(e, mark, "acct: 6 notifications dropped while the "
			     "notification server was behind", 1, 20000),
	   "once it caught up: how many were dropped");
	/* The replies come one per turn of the loop. */
	ok(wait_log(e, mark, "notification 1025 shown", 1, 30000),
	   "every reply read");
	l = log_since(mark);
	is_int(count_str(l, "notifications were shown late"), 1,
	       "the stall said once, when the replies came (trial P: no "
	       "word of it)");
	free(l);
	log_max_level = LOG_INFO;
	ok(wait_file(e, json, 1026, 5000) &&
	       calls(json, "Notify") == 1025 &&
	       calls(json, "CloseNotification") == 1,
	   "1024 of the 1030 shown, and the one read meanwhile closed");
	log_show(mark);
	rig_stop(&r);
}

/* No bus at all: one warning. */
static void
test_notify_no_bus(sd_event *e)
{
	char *nobus = path_in("no-such-bus");
	char *addr = xasprintf("unix:path=%s", nobus);
	struct account a = account_init("acct");
	struct mail_event ev = event_init(1, "Alice", "alice@example.org", "x");
	struct sink *s;
	long mark = log_mark();
	char *l;

	setenv("DBUS_SESSION_BUS_ADDRESS", addr, 1);
	s = sink_notify_new(e, NULL);
	s->ops->send(s, &a, &ev);
	run_for(e, 100);
	s->ops->send(s, &a, &ev);
	run_for(e, 100);
	l = log_since(mark);
	is_int(count_str(l, "no notification server on the session bus"), 1,
	       "no bus: logged once");
	ok(strstr(l, "No such file or directory") != NULL,
	   "no bus: the reason is given");
	free(l);
	log_show(mark);
	sink_free(&s);

	/* Nowhere to look for a bus. */
	unsetenv("DBUS_SESSION_BUS_ADDRESS");
	unsetenv("XDG_RUNTIME_DIR");
	mark = log_mark();
	s = sink_notify_new(e, NULL);
	s->ops->send(s, &a, &ev);
	l = log_since(mark);
	ok(strstr(l, "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR "
		     "is set") != NULL,
	   "no bus address: said so");
	free(l);
	sink_free(&s);
	free(addr);
	free(nobus);
}

/* --- sink_hook -------------------------------------------------------- */

/* The value of NAME in env output, or NULL. Caller frees. */
static char *
env_value(const char *env, const char *name)
{
	char *pat = xasprintf("\n%s=", name);
	char *full = xasprintf("\n%s", env ? env : "");
	const char *p = strstr(full, pat);
	char *r = p ? xstrndup(p + strlen(pat), strcspn(p + strlen(pat), "\n"))
		    : NULL;

	free(pat);
	free(full);
	return r;
}

static int
count_vars(const char *env, const char *prefix)
{
	char *pat = xasprintf("\n%s", prefix);
	char *full = xasprintf("\n%s", env ? env : "");
	int n = count_str(full, pat);

	free(pat);
	free(full);
	return n;
}

#define is_env(env, name, want)                                                \
	do {                                                                   \
		char *v_ = env_value((env), (name));                           \
		is_str(v_, (want), "%s", (name));                              \
		free(v_);                                                      \
	} while (0)

/* True when the process is gone (or a zombie no one reaps). */
static bool
pid_dead(pid_t pid)
{
	char *p = xasprintf("/proc/%d/stat", (int)pid), *s = slurp(p);
	const char *st = s ? strrchr(s, ')') : NULL;
	bool dead = !s || (st && st[1] == ' ' && st[2] == 'Z');

	free(s);
	free(p);
	return dead;
}

static int n_changed;

/* sink_hook_new's changed callback: counts calls. */
static void
count_changed(void *ud)
{
	(*(int *)ud)++;
}

static pid_t
read_pid(const char *name)
{
	char *p = path_in(name), *s = slurp(p);
	pid_t pid = s ? (pid_t)atoi(s) : 0;

	free(s);
	free(p);
	return pid;
}

static bool
pid_file_dead(void *arg)
{
	pid_t pid = read_pid(arg);

	return pid > 0 && pid_dead(pid);
}

static void
test_hook_env(sd_event *e)
{
	char *script = path_in("hook.sh"), *pwned = path_in("pwned");
	char *victim = path_in("victim");
	char *subj1 = xasprintf("$(touch %s)", pwned);
	char *subj2 = xasprintf("; rm -rf %s", victim);
	char *subj3 = xasprintf("`touch %s` \"q\" 'a' \\ | > %s", pwned, pwned);
	char *from_name = "Mallory $(id) `id`";
	char *argv[] = {script, tmpdir, "msg", NULL};
	char *post_argv[] = {script, tmpdir, "post", NULL};
	struct account a = account_init("acct");
	struct mail_event ev[3] = {
	    event_init(101, "Alice Example", "alice@example.org", subj1),
	    event_init(102, from_name, "mallory@example.org", subj2),
	    event_init(103, "", "carol@example.org", subj3),
	};
	const char *subjects[] = {subj1, subj2, subj3};
	struct sink *s;
	long mark = log_mark();
	char *f, *env;

	write_file(script,
		   "#!/bin/sh\n"
		   "# $1: directory, $2: kind\n"
		   "f=\"$1/$2.${MAILWATCH_UID:-post}\"\n"
		   "env > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\n"
		   "echo \"out ${MAILWATCH_UID:-post}\"\n"
		   "echo \"err ${MAILWATCH_UID:-post}\" >&2\n",
		   0755);
	write_file(victim, "still here\n", 0644);
	/* Inherited: kept, except the names the sink sets. tests/run
	 * exports MAILWATCH_BIN: start from none, to count them. */
	for (char **v = environ; v && *v;) {
		if (!strncmp(*v, "MAILWATCH_", 10)) {
			char *name = xstrndup(*v, strcspn(*v, "="));

			unsetenv(name);
			free(name);
			continue;
		}
		v++;
	}
	setenv("MAILWATCH_TEST_INHERITED", "kept", 1);
	setenv("MAILWATCH_SUBJECT", "stale", 1);
	setenv("MAILWATCH_COUNT", "stale", 1);

	a.d.on_new_mail = argv;
	a.d.on_new_mail_post = post_argv;
	ev[1].from = "Mallory $(id) `id` <mallory@example.org>";
	s = sink_hook_new(e, count_changed, &n_changed);
	for (int i = 0; i < 3; i++)
		s->ops->send(s, &a, &ev[i]);
	s->ops->batch_done(s, &a, "INBOX", 3);
	ok(wait_log(e, mark, "): err 10", 3, 5000) &&
	       wait_log(e, mark, "hook.sh: err post", 1, 5000),
	   "four hooks ran and their output was logged");
	f = path_in("post.post");
	ok(wait_file(e, f, 1, 2000), "on_new_mail_post ran");
	free(f);

	for (int i = 0; i < 3; i++) {
		char *name = xasprintf("msg.%u", (unsigned)ev[i].uid);
		char uid[16];

		f = path_in(name);
		env = slurp(f);
		ok(env != NULL, "hook for UID %u ran", (unsigned)ev[i].uid);
		snprintf(uid, sizeof(uid), "%u", (unsigned)ev[i].uid);
		is_int(count_vars(env, "MAILWATCH_"), 11,
		       "ten MAILWATCH_ variables and the inherited one");
		is_env(env, "MAILWATCH_ACCOUNT", "acct");
		is_env(env, "MAILWATCH_MAILBOX", "INBOX");
		is_env(env, "MAILWATCH_UID", uid);
		is_env(env, "MAILWATCH_UIDVALIDITY", "1700000000");
		is_env(env, "MAILWATCH_FROM", ev[i].from);
		is_env(env, "MAILWATCH_FROM_NAME", ev[i].from_name);
		is_env(env, "MAILWATCH_FROM_ADDRESS", ev[i].from_address);
		is_env(env, "MAILWATCH_SUBJECT", subjects[i]);
		is_env(env, "MAILWATCH_DATE", "Mon, 1 Jan 2024 10:00:00 +0000");
		is_env(env, "MAILWATCH_MESSAGE_ID", "<1@example.org>");
		is_env(env, "MAILWATCH_TEST_INHERITED", "kept");
		is_int(count_vars(env, "MAILWATCH_COUNT="), 0,
		       "no inherited MAILWATCH_COUNT");
		free(env);
		free(f);
		free(name);
	}
	f = path_in("post.post");
	env = slurp(f);
	is_int(count_vars(env, "MAILWATCH_"), 4,
	       "post: three MAILWATCH_ variables and the inherited one");
	is_env(env, "MAILWATCH_ACCOUNT", "acct");
	is_env(env, "MAILWATCH_MAILBOX", "INBOX");
	is_env(env, "MAILWATCH_COUNT", "3");
	is_int(count_vars(env, "MAILWATCH_SUBJECT="), 0,
	       "post: no inherited MAILWATCH_SUBJECT");
	free(env);
	free(f);

	ok(!exists(pwned), "command substitution in a subject stays inert");
	ok(exists(victim), "'; rm -rf' in a subject stays inert");
	{
		char *l = log_since(mark);

		ok(strstr(l, "acct/INBOX: on_new_mail ") &&
		       strstr(l, "/hook.sh (UID 101): out 101\n"),
		   "stdout logged with the account, mailbox, hook and UID");
		ok(strstr(l, "/hook.sh (UID 102): err 102\n") != NULL,
		   "stderr logged");
		ok(strstr(l, "acct/INBOX: on_new_mail_post ") &&
		       strstr(l, "/hook.sh: out post\n"),
		   "the post hook's output logged, named as such");
		is_int(count_str(l, "exited with status"), 0,
		       "no failures logged");
		free(l);
	}
	log_show(mark);
	sink_free(&s);
	unsetenv("MAILWATCH_TEST_INHERITED");
	unsetenv("MAILWATCH_SUBJECT");
	unsetenv("MAILWATCH_COUNT");
	free(subj1);
	free(subj2);
	free(subj3);
	free(victim);
	free(pwned);
	free(script);
}

static void
test_hook_failures(sd_event *e)
{
	char *fail3[] = {"/bin/sh", "-c", "exit 3", NULL};
	char *killed[] = {"/bin/sh", "-c", "kill -USR1 $$", NULL};
	char *missing[] = {"/nonexistent/hook", NULL};
	char *missing_path[] = {"mailwatch-no-such-hook", "x", NULL};
	struct account a = account_init("acct");
	struct mail_event ev = event_init(7, "A", "a@example.org", "s");
	struct sink *s = sink_hook_new(e, count_changed, &n_changed);
	long mark = log_mark();
	char *l;

	a.d.on_new_mail = fail3;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "on_new_mail /bin/sh (UID 7) exited with status 3", 1, 5000),
	   "a failing hook is logged with its status");
	a.d.on_new_mail = killed;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "on_new_mail /bin/sh (UID 7) killed by signal 10", 1, 5000),
	   "a hook killed by a signal is logged");

	/* Logged by send() itself: the loop does not run in between. */
	a.d.on_new_mail = missing;
	s->ops->send(s, &a, &ev);
	a.d.on_new_mail = missing_path;
	s->ops->send(s, &a, &ev);
	l = log_since(mark);
	ok(strstr(l, "acct/INBOX: on_new_mail /nonexistent/hook (UID 7): "
		     "cannot start: No such file or directory") != NULL,
	   "a missing executable is logged at once");
	ok(strstr(l, "on_new_mail mailwatch-no-such-hook (UID 7): cannot "
		     "start: not found in PATH") != NULL,
	   "a command not in PATH is logged at once");
	free(l);

	/* The sink goes on after all that. */
	a.d.on_new_mail = fail3;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "exited with status 3", 2, 5000),
	   "hooks still run afterwards");
	log_show(mark);
	sink_free(&s);
}

static void
test_hook_output_cap(sd_event *e)
{
	char *chatty[] = {"/bin/sh", "-c",
			  "i=0; while [ $i -lt 300 ]; do "
			  "echo \"line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\";"
			  " i=$((i+1)); done; printf 'no newline'",
			  NULL};
	char *yes_pid = path_in("yes.pid");
	char *yes =
	    xasprintf("yes mailwatch-yes & echo $! > %s; exit 0", yes_pid);
	char *endless[] = {"/bin/sh", "-c", yes, NULL};
	struct account a = account_init("acct");
	struct mail_event ev = event_init(8, "A", "a@example.org", "s");
	struct sink *s = sink_hook_new(e, count_changed, &n_changed);
	long mark = log_mark();
	int before = log_max_level;
	char *l;

	log_max_level = LOG_DEBUG;
	a.d.on_new_mail = chatty;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "on_new_mail /bin/sh (UID 8) (pid", 1, 5000),
	   "chatty hook done");
	log_max_level = before;
	l = log_since(mark);
	is_int(count_str(l, "(output truncated)"), 1, "output truncated once");
	ok(strstr(l, ": on_new_mail /bin/sh (UID 8): line-0-x") != NULL,
	   "the start is logged, with the hook and its message");
	ok(strstr(l, "line-299") == NULL && strstr(l, "no newline") == NULL,
	   "the rest is not");
	{
		/* 4096 bytes with the newlines: 10 lines of 42 bytes, 85
		 * of 43 and a piece. */
		int n = count_str(l, "(UID 8): line-");

		is_int(n, 96, "4 KiB logged");
	}
	free(l);

	/* A hook that leaves a process writing without end behind: the
	 * loop takes what is there when the hook exits and moves on. */
	mark = log_mark();
	log_max_level = LOG_DEBUG;
	a.d.on_new_mail = endless;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "on_new_mail /bin/sh (UID 8) (pid", 1, 5000),
	   "a hook that leaves an endless writer behind is done");
	a.d.on_new_mail = chatty;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "on_new_mail /bin/sh (UID 8) (pid", 2, 5000),
	   "... and the loop goes on");
	log_max_level = before;
	ok(run_until(e, pid_file_dead, "yes.pid", 3000),
	   "... and the writer ends (SIGPIPE) once the pipe is closed");
	sink_free(&s);
	free(yes);
	free(yes_pid);
}

static void
test_hook_timeout(sd_event *e)
{
	char *hang = path_in("hang.sh"), *stubborn = path_in("stubborn.sh");
	char *argv[] = {hang, tmpdir, NULL};
	char *argv2[] = {stubborn, tmpdir, NULL};
	struct account a = account_init("acct");
	struct mail_event ev = event_init(9, "A", "a@example.org", "s");
	struct sink *s = sink_hook_new(e, count_changed, &n_changed);
	long mark = log_mark();
	long long t0, t;
	pid_t sh, child;

	write_file(hang,
		   "#!/bin/sh\n"
		   "echo $$ > \"$1/hang.pid.tmp\"\n"
		   "sleep 30 &\n"
		   "echo $! > \"$1/sleep.pid\"\n"
		   "mv \"$1/hang.pid.tmp\" \"$1/hang.pid\"\n"
		   "wait\n",
		   0755);
	write_file(stubborn,
		   "#!/bin/sh\n"
		   "trap '' TERM\n"
		   "echo $$ > \"$1/stubborn.pid\"\n"
		   "sleep 30\n",
		   0755);

	a.d.hook_timeout = 1;
	a.d.on_new_mail = argv;
	t0 = now_ms();
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "still running after 1 s: terminating it", 1,
		    5000),
	   "a hanging hook is terminated after hook_timeout");
	ok(run_until(e, pid_file_dead, "hang.pid", 3000), "... and it is gone");
	t = now_ms() - t0;
	ok(t >= 900, "... not before hook_timeout = 1 s (%lld ms)", t);
	child = read_pid("sleep.pid");
	ok(child > 0 && run_until(e, pid_file_dead, "sleep.pid", 2000),
	   "... and so is the process it started");

	a.d.on_new_mail = argv2;
	t0 = now_ms();
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "ignored SIGTERM: killing it", 1, 6000),
	   "a hook that ignores SIGTERM gets SIGKILL");
	ok(run_until(e, pid_file_dead, "stubborn.pid", 3000),
	   "... and it is gone");
	t = now_ms() - t0;
	ok(t >= 2900, "... not before 1 + 2 s (%lld ms)", t);

	/* free() kills what runs, and what it started: its message is
	 * announced again at the next start. */
	a.d.hook_timeout = 30;
	a.d.on_new_mail = argv;
	{
		char *p = path_in("hang.pid");

		unlink(p);
		s->ops->send(s, &a, &ev);
		ok(wait_file(e, p, 1, 5000), "a long hook started");
		free(p);
	}
	sh = read_pid("hang.pid");
	child = read_pid("sleep.pid");
	is_int(s->ops->unfinished(s, "acct", "INBOX"), 9,
	       "unfinished: the running hook's UID (a kill of mailwatch may "
	       "take the hook with it)");
	s->ops->stop(s);
	is_int(s->ops->unfinished(s, "acct", "INBOX"), 9,
	       "... also while stopping");
	sink_free(&s);
	ok(sh > 0 && pid_dead(sh), "sink_free kills a running hook");
	ok(child > 0 &&
	       run_until(e, pid_file_dead, "sleep.pid", 2000),
	   "... and what it started");
	{
		char *l = log_since(mark);

		ok(strstr(l, "hang.sh (UID 9) (pid ") &&
		       strstr(l, "still running: killing it; it is announced "
				 "again at the next start"),
		   "... and says so");
		free(l);
	}
	log_show(mark);
	free(hang);
	free(stubborn);
}

/* A hook that exits at once, leaving a process in its group: the hook is
 * finished when it exits, and what it left is killed at hook_timeout. */
static void
test_hook_left_behind(sd_event *e)
{
	char *cmd = xasprintf("sleep 1000 & echo $! > %s/left.pid.tmp; "
			      "mv %s/left.pid.tmp %s/left.pid; exit 0",
			      tmpdir, tmpdir, tmpdir);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	struct account a = account_init("acct");
	struct mail_event ev = event_init(11, "A", "a@example.org", "s");
	struct sink *s = sink_hook_new(e, count_changed, &n_changed);
	long mark = log_mark();
	int before = log_max_level;
	pid_t left;

	log_max_level = LOG_DEBUG;
	a.d.hook_timeout = 1;
	a.d.on_new_mail = argv;
	s->ops->send(s, &a, &ev);
	ok(wait_log(e, mark, "on_new_mail /bin/sh (UID 11) (pid", 1, 5000),
	   "the hook exits at once");
	log_max_level = before;
	left = read_pid("left.pid");
	ok(left > 0, "it left a process behind (pid %d)", (int)left);
	ok(left > 0 && run_until(e, pid_file_dead, "left.pid", 5000),
	   "which is killed at hook_timeout");
	ok(wait_log(e, mark,
		    "on_new_mail /bin/sh (UID 11) left processes running "
		    "after 1 s: terminating them",
		    1, 0),
	   "... and the log says so");
	log_show(mark);
	sink_free(&s);
	if (left > 0 && !pid_dead(left))
		(void)kill(left, SIGKILL);
	free(cmd);
}

static bool
one_changed(void *arg)
{
	(void)arg;
	return n_changed >= 1;
}

/* At a stop: the waiting hooks start, and running ones are unfinished
 * until they end; one that dies of a signal the sink did not send (as
 * systemd sends one to every process of the unit) stays so, as does one
 * that free() kills; one that exits does not. busy() holds while hooks
 * run. */
static void
test_hook_stop(sd_event *e)
{
	char *script = path_in("stop.sh"), *p38 = path_in("stop.38");
	char *argv[] = {script, tmpdir, NULL};
	struct account a = account_init("acct");
	struct sink *s = sink_hook_new(e, count_changed, &n_changed);
	long mark = log_mark();
	pid_t p21, p22;
	char *l;

	/* UID 23 exits at once, the others wait to be killed. */
	write_file(script,
		   "#!/bin/sh\n"
		   "[ \"$MAILWATCH_UID\" = 23 ] && exit 0\n"
		   "echo $$ > \"$1/stop.$MAILWATCH_UID.tmp\"\n"
		   "mv \"$1/stop.$MAILWATCH_UID.tmp\" "
		   "\"$1/stop.$MAILWATCH_UID\"\n"
		   "exec sleep 30\n",
		   0755);
	a.d.on_new_mail = argv;
	ok(!s->ops->busy(s), "busy: not before any hook");
	n_changed = 0;
	/* 16 start; when 23 has exited, 37 starts and 38 waits. */
	for (uint32_t uid = 21; uid <= 38; uid++) {
		struct mail_event ev = event_init(uid, "A", "a@b", "s");

		s->ops->send(s, &a, &ev);
	}
	ok(run_until(e, one_changed, NULL, 5000),
	   "a waiting hook starts when one exits");
	is_int(s->ops->unfinished(s, "acct", "INBOX"), 21,
	       "unfinished: the lowest running or waiting");
	ok(!exists(p38), "... which has not started");
	s->ops->stop(s);
	ok(wait_file(e, p38, 1, 5000), "stop starts it");
	is_int(s->ops->unfinished(s, "acct", "INBOX"), 21,
	       "unfinished at a stop: the lowest UID running");
	p21 = read_pid("stop.21");
	p22 = read_pid("stop.22");
	ok(s->ops->busy(s), "busy: while hooks run");
	(void)kill(p21, SIGTERM);
	ok(wait_log(e, mark, "(UID 21): announced again at the next start", 1,
		    5000),
	   "a hook killed from outside while stopping is announced again");
	is_int(s->ops->unfinished(s, "acct", "INBOX"), 21,
	       "unfinished: still its UID");
	ok(s->ops->busy(s), "busy: while the others run");
	sink_free(&s);
	ok(pid_dead(p22) && pid_dead(read_pid("stop.38")),
	   "free kills those still running");
	l = log_since(mark);
	ok(strstr(l, "(UID 22) (pid ") &&
	       strstr(l, "still running: killing it; it is announced again "
			 "at the next start"),
	   "... and says their messages are announced again");
	ok(!strstr(l, "(UID 23) (pid "), "the hook that exited is not");
	free(l);
	log_show(mark);
	free(p38);
	free(script);
}

static void
test_hook_bound(sd_event *e)
{
	char *script = path_in("conc.sh"), *log = path_in("conc");
	char *argv[] = {script, log, NULL};
	struct account a = account_init("acct");
	struct sink *s = sink_hook_new(e, count_changed, &n_changed);
	long mark = log_mark();
	int before = log_max_level, cur = 0, max = 0;
	long long t;
	char *text;

	write_file(script,
		   "#!/bin/sh\n"
		   "echo start >> \"$1\"\n"
		   "sleep 1\n"
		   "echo end >> \"$1\"\n",
		   0755);
	log_max_level = LOG_DEBUG;
	a.d.on_new_mail = argv;
	n_changed = 0;
	t = now_ms();
	for (uint32_t uid = 1; uid <= 20; uid++) {
		struct mail_event ev = event_init(uid, "A", "a@b", "s");

		s->ops->send(s, &a, &ev);
	}
	t = now_ms() - t;
	is_int(s->ops->unfinished(s, "acct", "INBOX"), 1,
	       "unfinished: the lowest UID still running or waiting");
	is_int(s->ops->unfinished(s, "acct", "Other"), 0,
	       "unfinished: nothing for another mailbox");
	ok(wait_log(e, mark, ") done", 20, 15000), "twenty hooks ran");
	log_max_level = before;
	text = slurp(log);
	for (const char *p = text; p && *p; p = strchr(p, '\n') + 1) {
		cur += !strncmp(p, "start", 5) ? 1 : -1;
		max = cur > max ? cur : max;
	}
	is_int(count_str(text, "start"), 20, "all started");
	is_int(count_str(text, "end"), 20, "all ended");
	is_int(max, 16, "at most 16 at once (and that many)");
	ok(n_changed >= 1, "the owner heard that waiting hooks started");
	is_int(s->ops->unfinished(s, "acct", "INBOX"), 0,
	       "unfinished: 0 once all started");
	printf("# sending 20 took %lld ms\n", t);
	free(text);
	sink_free(&s);
	free(log);
	free(script);
}

int
main(void)
{
	sd_event *e = NULL;
	FILE *cap;

	/* As main does before it creates the loop. */
	signals_reset();

	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	log_path = path_in("log");
	cap = fopen(log_path, "w");
	if (!cap || sd_event_new(&e) < 0) {
		printf("Bail out! setup failed\n");
		return 1;
	}
	setvbuf(cap, NULL, _IONBF, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	real_stderr = stderr;
	stderr = cap;

	test_notify(e);
	test_notify_copies(e);
	test_notify_sliding(e);
	test_notify_behind(e);
	test_notify_no_bus(e);
	test_hook_env(e);
	test_hook_failures(e);
	test_hook_output_cap(e);
	test_hook_timeout(e);
	test_hook_left_behind(e);
	test_hook_stop(e);
	test_hook_bound(e);

	sd_event_unref(e);
	stderr = real_stderr;
	fclose(cap);
	if (!tap_failed) {
		char *cmd = xasprintf("rm -rf '%s'", tmpdir);

		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
		free(cmd);
	} else {
		printf("# files kept in %s\n", tmpdir);
	}
	free(log_path);
	return tap_done();
}
