/* transport against a real TLS server on loopback: tests/lib/tlsserver.py
 * (Python's ssl module) with a CA and server certificates made by the
 * openssl command in a temporary directory. Each case runs its own sd-event
 * loop with a safety timer (scaled by MWTEST_TIMEOUT_SCALE) that ends the
 * case when it fires; every server is started and killed by pid.
 * MAILWATCH_DEBUG=1 shows the transport's debug log. */
#include "transport.h"

#include "tap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PYTHON "/usr/bin/python3"
#define SAFETY_SEC 15 /* per run of a case's loop, scaled */

static char tmpdir[] = "/tmp/mwtransport.XXXXXX";
static char ca_pem[PATH_MAX], good_pem[PATH_MAX], good_key[PATH_MAX],
    other_pem[PATH_MAX], other_key[PATH_MAX];
static char server_py[PATH_MAX];

/* ---- setup: certificates and servers ---- */

/* Runs a fixed shell command line built from our own paths. */
static int
sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		printf("# command failed (%d): %s\n", r, cmd);
	return r;
}

/* A CA "mailwatch test CA", a server certificate for 127.0.0.1, ::1 and
 * localhost, and one for other.example only. Returns 0 or -1. */
static int
make_certs(void)
{
	static const char ec[] = "-newkey ec -pkeyopt "
				 "ec_paramgen_curve:prime256v1 -nodes";

	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", tmpdir);
	snprintf(good_pem, sizeof(good_pem), "%s/good.pem", tmpdir);
	snprintf(good_key, sizeof(good_key), "%s/good.key", tmpdir);
	snprintf(other_pem, sizeof(other_pem), "%s/other.pem", tmpdir);
	snprintf(other_key, sizeof(other_key), "%s/other.key", tmpdir);
	if (sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem "
	       "-days 2 -subj '/CN=mailwatch test CA' 2>/dev/null",
	       tmpdir, ec) ||
	    sh("cd %s && printf 'subjectAltName=IP:127.0.0.1,IP:::1,"
	       "DNS:localhost\\nbasicConstraints=CA:FALSE\\n' >good.ext && "
	       "printf 'subjectAltName=DNS:other.example\\n"
	       "basicConstraints=CA:FALSE\\n' >other.ext",
	       tmpdir))
		return -1;
	for (int i = 0; i < 2; i++) {
		const char *n = i ? "other" : "good";
		const char *cn = i ? "other.example" : "localhost";

		if (sh("cd %s && openssl req -new %s -keyout %s.key -out "
		       "%s.csr -subj '/CN=%s' 2>/dev/null && openssl x509 "
		       "-req -in %s.csr -CA ca.pem -CAkey ca.key "
		       "-CAcreateserial -out %s.pem -days 2 -extfile %s.ext "
		       "2>/dev/null",
		       tmpdir, ec, n, n, cn, n, n, n))
			return -1;
	}
	return 0;
}

struct server {
	pid_t pid;
	uint16_t port;
};

/* Starts tlsserver.py MODE on host and reads the port it prints. Returns
 * 0 or -1. */
static int
server_start(struct server *s, const char *mode, const char *cert,
	     const char *key, const char *host)
{
	char *argv[14];
	char line[32], lifetime[32];
	posix_spawn_file_actions_t fa;
	struct pollfd pfd;
	size_t len = 0;
	int p[2], n = 0;

	s->pid = -1;
	s->port = 0;
	argv[n++] = PYTHON;
	argv[n++] = server_py;
	argv[n++] = (char *)mode;
	if (cert) {
		argv[n++] = "--cert";
		argv[n++] = (char *)cert;
		argv[n++] = "--key";
		argv[n++] = (char *)key;
	}
	argv[n++] = "--host";
	argv[n++] = (char *)host;
	/* Killed by pid at the end; the lifetime is for a test that dies. */
	snprintf(lifetime, sizeof(lifetime), "%lld", scaled_ms(120000) / 1000);
	argv[n++] = "--lifetime";
	argv[n++] = lifetime;
	argv[n++] = "--rcvbuf";
	argv[n++] = "16384";
	argv[n] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	if (posix_spawn(&s->pid, PYTHON, &fa, NULL, argv, environ) != 0)
		s->pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (s->pid < 0) {
		close(p[0]);
		return -1;
	}
	pfd.fd = p[0];
	pfd.events = POLLIN;
	while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
		ssize_t r;

		if (poll(&pfd, 1, (int)scaled_ms(10000)) <= 0)
			break;
		r = read(p[0], line + len, sizeof(line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(p[0]);
	line[len] = 0;
	s->port = (uint16_t)atoi(line);
	if (!s->port) {
		printf("# %s server did not start\n", mode);
		return -1;
	}
	return 0;
}

static void
server_stop(struct server *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
	s->pid = -1;
}

/* A loopback port nobody listens on: bound, then closed. */
static uint16_t
closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (void *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (void *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* The socket of this process connected to 127.0.0.1:port, or -1: the
 * transport's, which its API does not give out. */
static int
client_fd(uint16_t port)
{
	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_in a;
		socklen_t len = sizeof(a);

		if (getpeername(fd, (struct sockaddr *)&a, &len) == 0 &&
		    len == sizeof(a) && a.sin_family == AF_INET &&
		    ntohs(a.sin_port) == port)
			return fd;
	}
	return -1;
}

/* True while this process has an eventfd open. */
static bool
eventfd_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	bool found = false;

	while (d && !found && (de = readdir(d))) {
		char path[300], target[64];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			found = !strcmp(target, "anon_inode:[eventfd]");
		}
	}
	if (d)
		closedir(d);
	return found;
}

static bool
ipv6_loopback(void)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6};
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok_;

	a.sin6_addr = in6addr_loopback;
	ok_ = fd >= 0 && bind(fd, (void *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok_;
}

/* ---- one connection on its own loop ---- */

struct run {
	sd_event *e;
	struct transport *t;
	/* what the callbacks do */
	const char *send_on_connect; /* written in connected() */
	const char *send_on_tls;     /* written in tls_ready() */
	bool starttls_on_ok;	     /* "OK" received: transport_start_tls() */
	size_t expect;		     /* done after this many bytes */
	bool free_in_data, free_in_closed;
	bool pause_in_data; /* transport_pause() in the next data(); done */
	/* what happened */
	int connected, tls_ready, closed;
	bool tls_at_connect, tls_at_ready;
	int starttls_r;
	int err;
	char errmsg[512];
	char *data;
	size_t len, cap;
	bool done, timed_out;
};

static void
c_connected(void *ud)
{
	struct run *r = ud;

	r->connected++;
	r->tls_at_connect = transport_is_tls(r->t);
	if (r->send_on_connect)
		transport_write(r->t, r->send_on_connect,
				strlen(r->send_on_connect));
}

static void
c_tls_ready(void *ud)
{
	struct run *r = ud;

	r->tls_ready++;
	r->tls_at_ready = transport_is_tls(r->t);
	if (r->send_on_tls)
		transport_write(r->t, r->send_on_tls, strlen(r->send_on_tls));
}

static void
c_data(void *ud, const char *buf, size_t len)
{
	struct run *r = ud;

	if (r->len + len + 1 > r->cap) {
		while (r->len + len + 1 > r->cap)
			r->cap = r->cap ? 2 * r->cap : 4096;
		r->data = realloc(r->data, r->cap);
	}
	memcpy(r->data + r->len, buf, len);
	r->len += len;
	r->data[r->len] = 0;
	if (r->starttls_on_ok && strstr(r->data, "OK begin TLS\r\n")) {
		r->starttls_on_ok = false;
		r->len = 0; /* count what follows */
		r->starttls_r = transport_start_tls(r->t);
	}
	if (r->free_in_data) {
		transport_free(&r->t);
		r->done = true;
		return;
	}
	if (r->pause_in_data) {
		r->pause_in_data = false;
		transport_pause(r->t, true);
		r->done = true;
		return;
	}
	/* With STARTTLS, only what comes over TLS counts. */
	if (r->expect && r->len >= r->expect &&
	    (!r->send_on_tls || r->tls_ready))
		r->done = true;
}

static void
c_closed(void *ud, int err)
{
	struct run *r = ud;

	r->closed++;
	r->err = err;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", transport_errmsg(r->t));
	if (r->free_in_closed)
		transport_free(&r->t);
	r->done = true;
}

static const struct transport_cb cbs = {
    .connected = c_connected,
    .tls_ready = c_tls_ready,
    .data = c_data,
    .closed = c_closed,
};

static int
on_safety(sd_event_source *s, uint64_t usec, void *ud)
{
	struct run *r = ud;

	(void)s;
	(void)usec;
	r->timed_out = r->done = true;
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs e until r is done. Returns false, with a failed check, when the
 * safety timer ended it first: the case stops there. */
static bool
run_loop(struct run *r, const char *what)
{
	sd_event_source *safety = NULL;
	long long ms = scaled_ms(SAFETY_SEC * 1000);

	r->timed_out = false;
	sd_event_add_time_relative(r->e, &safety, CLOCK_MONOTONIC,
				   (uint64_t)ms * 1000, 0, on_safety, r);
	while (!r->done)
		if (sd_event_run(r->e, UINT64_MAX) < 0)
			break;
	sd_event_source_disable_unref(safety);
	if (r->timed_out)
		ok(0, "%s: done within the %lld ms safety timer", what, ms);
	return !r->timed_out;
}

/* How many loop wake-ups happen in ms milliseconds. */
static int
wakeups(struct run *r, int ms)
{
	int n = 0;

	for (int i = 0; i < ms / 50; i++)
		if (sd_event_run(r->e, 50000) > 0)
			n++;
	return n;
}

/* Starts a run: a new loop and a transport to host:port. */
static int
start(struct run *r, const char *host, uint16_t port, bool tls, const char *ca,
      unsigned timeout)
{
	struct transport_opts o = {
	    .host = host,
	    .port = port,
	    .implicit_tls = tls,
	    .ca_file = ca,
	    .connect_timeout = timeout,
	};
	int ret;

	if (sd_event_new(&r->e) < 0)
		return -1;
	ret = transport_new(r->e, &o, &cbs, r, &r->t);
	if (ret < 0)
		printf("# transport_new: %s\n", strerror(-ret));
	return ret;
}

static void
finish(struct run *r)
{
	transport_free(&r->t);
	/* Let what the free left (nothing, we hope) run. */
	wakeups(r, 100);
	r->e = sd_event_unref(r->e);
	free(r->data);
	r->data = NULL;
	r->len = r->cap = 0;
}

static bool
has(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle);
}

/* ---- the cases ---- */

static void
test_echo(struct server *srv)
{
	struct run r = {.send_on_connect = "hello\r\n", .expect = 7};
	enum { LINES = 256, LINE = 1024 };
	char *big = NULL;
	int n, fd, sndbuf = 16384;

	if (start(&r, "127.0.0.1", srv->port, true, ca_pem, 5) < 0)
		return;
	if (!run_loop(&r, "implicit TLS"))
		goto out;
	ok(r.connected == 1 && r.tls_at_connect, "implicit TLS: connected");
	is_str(r.data, "hello\r\n", "implicit TLS: echo round trip");
	ok(!r.closed, "implicit TLS: still open");

	/* An idle connection does not wake the loop (no EPOLLOUT). */
	n = wakeups(&r, 500);
	ok(n <= 1, "idle: %d wake-ups in 0.5 s", n);

	/* 256 KiB at once while the server does not read: with a small send
	 * buffer (which also stops the kernel from growing it to megabytes)
	 * more than the socket takes, so the rest waits in the queue for
	 * EPOLLOUT. The server reads again on SIGUSR1. */
	fd = client_fd(srv->port);
	ok(fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
				 sizeof(sndbuf)) == 0,
	   "the transport's socket gets a %d-byte send buffer", sndbuf);
	big = malloc(LINES * LINE);
	for (int i = 0; i < LINES; i++) {
		memset(big + i * LINE, 'a' + i % 26, LINE - 1);
		big[i * LINE + LINE - 1] = '\n';
	}
	r.len = 0;
	r.expect = LINES * LINE;
	r.done = false;
	transport_write(r.t, "PAUSE\n", 6);
	ok(transport_write(r.t, big, LINES * LINE) == 0, "big write queued");
	ok(transport_pending(r.t) > 0, "%zu bytes wait for the socket",
	   transport_pending(r.t));
	kill(srv->pid, SIGUSR1);
	if (!run_loop(&r, "big write"))
		goto out;
	ok(r.len == LINES * LINE && !memcmp(r.data, big, LINES * LINE),
	   "big write echoed (%zu bytes)", r.len);
	is_int(transport_pending(r.t), 0, "nothing left queued");

	/* QUIT: the server sends BYE and a close_notify: a clean EOF. */
	r.len = 0;
	r.expect = 0;
	r.done = false;
	transport_write(r.t, "QUIT\r\n", 6);
	if (!run_loop(&r, "clean close"))
		goto out;
	ok(r.closed == 1 && r.err == 0, "clean close: err %d (%s)", r.err,
	   r.errmsg);
	is_str(r.data, "BYE\r\n", "clean close: BYE before EOF");
	ok(transport_write(r.t, "x", 1) == -ENOTCONN,
	   "write after close: -ENOTCONN");
out:
	free(big);
	finish(&r);
}

static void
test_reset(uint16_t port)
{
	struct run r = {.send_on_connect = "RESET\r\n"};

	if (start(&r, "127.0.0.1", port, true, ca_pem, 5) < 0)
		return;
	if (!run_loop(&r, "reset"))
		goto out;
	ok(r.closed == 1 && r.err == -ECONNRESET, "reset: err %d (%s)", r.err,
	   r.errmsg);
out:
	finish(&r);
}

static void
test_no_ca(uint16_t port)
{
	struct run r = {0};

	if (start(&r, "127.0.0.1", port, true, NULL, 5) < 0)
		return;
	if (!run_loop(&r, "system store"))
		goto out;
	ok(!r.connected && r.closed == 1 && r.err == -EPROTO,
	   "system store: closed with -EPROTO (%d)", r.err);
	ok(has(r.errmsg, "certificate verify failed") &&
	       has(r.errmsg, "(host 127.0.0.1)"),
	   "system store: errmsg '%s'", r.errmsg);
out:
	finish(&r);
}

static void
test_mismatch(uint16_t port, const char *host, const char *why)
{
	struct run r = {0};

	if (start(&r, host, port, true, ca_pem, 5) < 0)
		return;
	if (!run_loop(&r, "mismatch"))
		goto out;
	ok(!r.connected && r.closed == 1 && r.err == -EPROTO,
	   "%s with a cert for other.example: -EPROTO (%d)", host, r.err);
	ok(has(r.errmsg, "certificate verify failed") && has(r.errmsg, why),
	   "%s: errmsg '%s'", host, r.errmsg);
	ok(has(r.errmsg, "host must be a name the certificate is for: it is "
			 "for other.example"),
	   "%s: the names it is for", host);
out:
	finish(&r);
}

/* A server whose certificate is signed by itself (the CA's own): what to
 * do says so, whether ca_file is another file or none. */
static void
test_self_signed(uint16_t port, const char *ca_file)
{
	struct run r = {0};

	if (start(&r, "127.0.0.1", port, true, ca_file, 5) < 0)
		return;
	if (!run_loop(&r, "self-signed"))
		goto out;
	ok(!r.connected && r.err == -EPROTO, "self-signed: -EPROTO (%d)",
	   r.err);
	ok(has(r.errmsg, "certificate verify failed") &&
	       has(r.errmsg, ca_file ? "; it is signed by itself, and ca_file"
				     : "; it is signed by itself: to trust it"),
	   "self-signed, %s: errmsg '%s'", ca_file ? "ca_file" : "no ca_file",
	   r.errmsg);
out:
	finish(&r);
}

static void
test_localhost(uint16_t port)
{
	struct run r = {.expect = 7};

	if (start(&r, "localhost", port, true, ca_pem, 5) < 0)
		return;
	/* Queued before the connection exists: goes out once it does. */
	ok(transport_write(r.t, "early\r\n", 7) == 0, "write before connect");
	is_int(transport_pending(r.t), 7, "queued before connect");
	if (!run_loop(&r, "localhost"))
		goto out;
	ok(r.connected == 1, "localhost resolved and connected (%s)", r.errmsg);
	is_str(r.data, "early\r\n", "localhost: early bytes echoed");
out:
	finish(&r);
}

static void
test_refused(void)
{
	struct run r = {.free_in_closed = true};
	uint16_t port = closed_port();

	if (start(&r, "127.0.0.1", port, true, ca_pem, 5) < 0)
		return;
	if (!run_loop(&r, "refused"))
		goto out;
	ok(r.closed == 1 && r.err == -ECONNREFUSED, "refused: err %d", r.err);
	ok(has(r.errmsg, "Connection refused") && has(r.errmsg, "127.0.0.1"),
	   "refused: errmsg '%s'", r.errmsg);
	ok(r.t == NULL, "freed inside closed()");
out:
	finish(&r);
}

static void
test_starttls(uint16_t port)
{
	struct run r = {.starttls_on_ok = true,
			.send_on_connect = "STARTTLS\r\n",
			.send_on_tls = "secret\r\n",
			.expect = 8};

	if (start(&r, "127.0.0.1", port, false, ca_pem, 5) < 0)
		return;
	if (!run_loop(&r, "STARTTLS"))
		goto out;
	ok(r.connected == 1 && !r.tls_at_connect, "STARTTLS: plain connect");
	is_int(r.starttls_r, 0, "transport_start_tls() inside data()");
	ok(r.tls_ready == 1 && r.tls_at_ready, "STARTTLS: tls_ready (%s)",
	   r.errmsg);
	is_str(r.data, "secret\r\n", "STARTTLS: echo over TLS");
	ok(transport_start_tls(r.t) == -EALREADY, "second STARTTLS refused");
out:
	finish(&r);
}

static void
test_plain_eof(uint16_t port)
{
	struct run r = {.send_on_connect = "QUIT\r\n"};

	if (start(&r, "127.0.0.1", port, false, NULL, 5) < 0)
		return;
	if (!run_loop(&r, "plain text EOF"))
		goto out;
	ok(r.closed == 1 && r.err == 0, "plain text EOF: err %d (%s)", r.err,
	   r.errmsg);
	ok(has(r.data, "BYE\r\n"), "plain text: data before EOF");
out:
	finish(&r);
}

static void
test_timeout(uint16_t port)
{
	struct run r = {0};
	double t0 = now(), dt;

	if (start(&r, "127.0.0.1", port, true, ca_pem, 1) < 0)
		return;
	if (!run_loop(&r, "silent server"))
		goto out;
	dt = now() - t0;
	ok(r.closed == 1 && r.err == -ETIMEDOUT,
	   "silent server: -ETIMEDOUT "
	   "(%d: %s)",
	   r.err, r.errmsg);
	/* Not before connect_timeout; after it, within a deadline scaled like
	 * every other one (the safety timer is far longer). */
	ok(dt > 0.9 && dt < 1 + scaled_ms(3000) / 1000.0,
	   "timed out after %.2f s (connect_timeout 1 s)", dt);
out:
	finish(&r);
}

static void
test_free_in_data(uint16_t port)
{
	struct run r = {.send_on_connect = "hello\r\n", .free_in_data = true};

	if (start(&r, "127.0.0.1", port, true, ca_pem, 5) < 0)
		return;
	if (!run_loop(&r, "free in data()"))
		goto out;
	ok(r.t == NULL && r.len > 0, "freed inside data()");
	wakeups(&r, 200);
	ok(!r.closed, "no callback after free");
out:
	finish(&r);
}

/* Paused, the transport reads nothing (from before it is connected, and
 * from inside a data callback on), without waking the loop, even once the
 * peer reset the connection; resumed, it reads what waited, and the
 * reset. */
static void
test_pause(uint16_t port)
{
	struct run r = {.send_on_connect = "hello\r\n"};
	enum { LINES = 64, LINE = 1024 };
	char *big = malloc(LINES * LINE);
	int n;

	for (int i = 0; i < LINES; i++) {
		memset(big + i * LINE, 'a' + i % 26, LINE - 1);
		big[i * LINE + LINE - 1] = '\n';
	}
	if (start(&r, "127.0.0.1", port, true, ca_pem, 5) < 0)
		goto out;
	transport_pause(r.t, true);
	for (long long i = 0; i < scaled_ms(5000) / 50 && !r.connected; i++)
		wakeups(&r, 50);
	ok(r.connected == 1, "paused early: connected all the same");
	n = wakeups(&r, 300);
	ok(r.len == 0, "paused: the echo is not read (%zu bytes)", r.len);
	ok(n <= 1, "paused: %d wake-ups in 0.3 s", n);
	r.expect = 7;
	transport_pause(r.t, false);
	if (!run_loop(&r, "resumed"))
		goto out;
	is_str(r.data, "hello\r\n", "resumed: what waited is read");

	/* 64 KiB echoed back; paused inside the first data() of it. */
	r.len = 0;
	r.done = false;
	r.pause_in_data = true;
	ok(transport_write(r.t, big, LINES * LINE) == 0, "64 KiB written");
	if (!run_loop(&r, "pause in data()"))
		goto out;
	ok(r.len > 0 && r.len < LINES * LINE,
	   "paused inside data(): %zu bytes read, the rest waits", r.len);
	n = r.len;
	ok(wakeups(&r, 300) <= 1 && r.len == (size_t)n,
	   "paused: nothing more read (%zu bytes)", r.len);
	r.done = false;
	r.expect = LINES * LINE;
	transport_pause(r.t, false);
	if (!run_loop(&r, "resumed after data()"))
		goto out;
	ok(r.len == LINES * LINE && !memcmp(r.data, big, LINES * LINE),
	   "resumed: all 64 KiB read in order (%zu bytes)", r.len);

	/* The server resets the connection while we are paused: no busy
	 * loop on the hang-up epoll reports regardless, no callback. */
	r.len = 0;
	r.expect = 0;
	r.done = false;
	transport_pause(r.t, true);
	ok(transport_write(r.t, "RESET\r\n", 7) == 0,
	   "paused: writing goes on");
	n = wakeups(&r, 500);
	ok(!r.closed && r.len == 0, "paused: the reset is not seen yet");
	ok(n <= 2, "paused, reset: %d wake-ups in 0.5 s", n);
	transport_pause(r.t, false);
	if (!run_loop(&r, "resumed after the reset"))
		goto out;
	ok(r.closed == 1 && r.err == -ECONNRESET,
	   "resumed: the reset is seen: err %d (%s)", r.err, r.errmsg);
out:
	free(big);
	finish(&r);
}

static void
test_free_resolving(void)
{
	struct run r = {0};

	if (start(&r, "localhost", 1, true, ca_pem, 5) < 0)
		return;
	transport_free(&r.t);
	wakeups(&r, 200);
	ok(!r.connected && !r.closed, "freed while resolving: no callback");
	finish(&r);
}

static void
test_ipv6(void)
{
	struct server s;
	struct run r = {.send_on_connect = "six\r\n", .expect = 5};

	if (!ipv6_loopback()) {
		printf("ok - # SKIP no IPv6 loopback\n");
		return;
	}
	if (server_start(&s, "tls", good_pem, good_key, "::1") < 0) {
		ok(0, "IPv6 server started");
		return;
	}
	if (start(&r, "::1", s.port, true, ca_pem, 5) == 0) {
		if (run_loop(&r, "::1")) {
			ok(r.connected == 1, "::1: connected (%s)", r.errmsg);
			is_str(r.data, "six\r\n", "::1: echo");
		}
		finish(&r);
	}
	server_stop(&s);
}

static void
locate_server(const char *argv0)
{
	const char *src = getenv("MAILWATCH_SRCDIR");
	char *slash;

	if (src) {
		snprintf(server_py, sizeof(server_py),
			 "%s/tests/lib/tlsserver.py", src);
		return;
	}
	snprintf(server_py, sizeof(server_py), "tests/lib/tlsserver.py");
	if (access(server_py, R_OK) == 0)
		return;
	/* build/asan/test_transport -> ../../tests/lib */
	snprintf(server_py, sizeof(server_py), "%s", argv0);
	slash = strrchr(server_py, '/');
	if (slash)
		snprintf(slash, sizeof(server_py) - (size_t)(slash - server_py),
			 "/../../tests/lib/tlsserver.py");
}

int
main(int argc, char **argv)
{
	struct server tls = {-1, 0}, other = {-1, 0}, plain = {-1, 0},
		      silent = {-1, 0}, self = {-1, 0};
	char ca_key[PATH_MAX + 16];

	(void)argc;
	log_max_level = getenv("MAILWATCH_DEBUG") ? LOG_DEBUG : LOG_WARNING;
	locate_server(argv[0]);
	if (!mkdtemp(tmpdir) || make_certs() < 0) {
		ok(0, "test certificates made in %s", tmpdir);
		return tap_done();
	}
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", tmpdir);
	if (server_start(&tls, "tls", good_pem, good_key, "127.0.0.1") < 0 ||
	    server_start(&self, "tls", ca_pem, ca_key, "127.0.0.1") < 0 ||
	    server_start(&other, "tls", other_pem, other_key, "127.0.0.1") <
		0 ||
	    server_start(&plain, "starttls", good_pem, good_key, "127.0.0.1") <
		0 ||
	    server_start(&silent, "silent", NULL, NULL, "127.0.0.1") < 0) {
		ok(0, "servers started");
		goto out;
	}

	test_echo(&tls);
	test_reset(tls.port);
	test_no_ca(tls.port);
	test_mismatch(other.port, "127.0.0.1", "IP address mismatch");
	test_mismatch(other.port, "localhost", "hostname mismatch");
	test_self_signed(self.port, NULL);
	test_self_signed(self.port, good_pem);
	test_localhost(tls.port);
	test_refused();
	test_starttls(plain.port);
	test_plain_eof(plain.port);
	test_timeout(silent.port);
	test_free_in_data(tls.port);
	test_pause(tls.port);
	test_free_resolving();
	test_ipv6();

out:
	server_stop(&tls);
	server_stop(&other);
	server_stop(&plain);
	server_stop(&silent);
	server_stop(&self);
	sh("rm -rf %s", tmpdir);
	/* The lookup test_free_resolving left behind ends on a glibc thread,
	 * whose notification frees it and closes its eventfd (every loop
	 * here is gone, with theirs): wait for that before exiting. */
	for (double end = now() + scaled_ms(5000) / 1000.0;
	     eventfd_open() && now() < end;)
		usleep(10000);
	ok(!eventfd_open(), "the resolver's notification ran");
	return tap_done();
}
