/* transport: see transport.h.
 *
 * Life of a connection, one state at a time (set_state() logs every edge):
 *
 *   RESOLVING   getaddrinfo_a(); the answer comes back through an
 *               eventfd watched by the loop (literal addresses skip it)
 *   CONNECTING  non-blocking connect() to each address in turn
 *   HANDSHAKE   SSL_do_handshake() (implicit TLS, or after STARTTLS)
 *   OPEN        bytes flow; TLS or not
 *   CLOSED      the socket is gone; the closed callback is pending or done
 *
 * One timer covers RESOLVING to OPEN (and a STARTTLS handshake).
 *
 * Re-entrancy: the owner may call transport_free() (and transport_write(),
 * transport_start_tls()) from inside any callback. Every loop handler wraps
 * its work in enter()/leave(); transport_free() inside a handler only
 * closes the socket and marks t dead, and the outermost leave() frees it.
 * Handlers check t->dead after each callback. Failures never call closed()
 * directly: fail() enables a defer source that calls it from the loop, so
 * transport_write() and transport_start_tls() never call back.
 *
 * OpenSSL reads and writes through a small BIO of our own so that a write
 * to a reset peer is send(MSG_NOSIGNAL) and cannot raise SIGPIPE. */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_USEC_PER_SEC 1000000ULL
#define DEFAULT_TIMEOUT 30  /* seconds, when opts.connect_timeout is 0 */
#define MAX_ADDRS 16	    /* addresses tried per connect */
#define READ_CHUNK 16384    /* bytes per read and per data callback */
#define READS_PER_WAKEUP 16 /* then let the loop run other sources */
#define WRITE_CHUNK 16384   /* bytes per SSL_write */
#define OUT_MAX (4u << 20)  /* queued output beyond this is refused */
#define OUT_KEEP 65536	    /* an emptied queue larger than this shrinks */

enum state {
	ST_RESOLVING,
	ST_CONNECTING,
	ST_HANDSHAKE,
	ST_OPEN,
	ST_CLOSED,
};

static const char *const state_names[] = {
    [ST_RESOLVING] = "resolving", [ST_CONNECTING] = "connecting",
    [ST_HANDSHAKE] = "handshake", [ST_OPEN] = "open",
    [ST_CLOSED] = "closed",
};

/* One getaddrinfo_a() request, shared with its completion notification;
 * whoever drops the last reference frees it (see start_lookup()). */
struct lookup {
	atomic_int refs;
	int efd; /* eventfd written on completion */
	struct gaicb req;
	struct addrinfo hints;
	char *node;
	char service[8];
};

/* TLS contexts, one per CA file (NULL: the system store) shared by every
 * connection that trusts it: loading the system bundle costs about 1 MiB
 * and some milliseconds, so once rather than per mailbox and reconnect.
 * Freed with their last connection. One that failed to verify a server
 * is stale: the connections after it load the file again (a trial added
 * the CA to a ca_file that another account's connection kept in use, and
 * the new one was never read). */
struct shared_ctx {
	struct shared_ctx *next;
	char *ca_file;
	SSL_CTX *ctx;
	unsigned refs;
	bool stale;
};

struct transport {
	sd_event *event;
	sd_event_source *io;	    /* the socket; NULL while there is none */
	sd_event_source *timer;	    /* the connect (or STARTTLS) deadline */
	sd_event_source *defer;	    /* closed callback, or more reading */
	sd_event_source *lookup_io; /* the lookup's eventfd */
	struct lookup *lookup;
	bool lookup_notified; /* lookup_notify() ran or never will */
	int fd;
	enum state state;
	uint32_t events; /* what io currently waits for */

	char *host; /* as given, for messages */
	char *name; /* host without [] for lookup and checks */
	uint16_t port;
	bool implicit_tls;
	bool will_starttls;	/* opts.starttls, for the log */
	bool quiet;		/* opts.quiet */
	char *ca_file;
	X509 *bad_cert;   /* the server's, when it did not verify */
	unsigned timeout; /* seconds */
	const struct log_ctx *log;
	struct transport_cb cb;
	void *ud;

	struct sockaddr_storage addrs[MAX_ADDRS];
	socklen_t addr_lens[MAX_ADDRS];
	size_t n_addrs, next_addr;
	int connect_err;		  /* errno of the last failed attempt */
	char peer[INET6_ADDRSTRLEN + 10]; /* "[::1]:993" being tried/used */

	struct shared_ctx *ctx; /* NULL until TLS is first needed */
	SSL *ssl;
	bool starttls;	       /* the handshake is a STARTTLS one */
	bool is_tls;	       /* a handshake completed */
	bool hs_want_write;    /* the handshake waits for writability */
	bool read_wants_write; /* SSL_read wants the socket writable */
	bool write_wants_read; /* SSL_write wants the socket readable */
	bool bio_eof;	       /* our BIO saw the peer's FIN */
	bool read_more;	       /* reading yielded with bytes left */
	bool paused;	       /* transport_pause(): read nothing */
	bool parked;	       /* paused with the socket hung up: io off */

	/* Output queue: bytes ooff..olen pending. It carries credentials
	 * (LOGIN, AUTHENTICATE): it is wiped when it drains, and every
	 * copy before it is freed. */
	char *obuf;
	size_t ooff, olen, ocap;

	int err; /* for closed(); valid in ST_CLOSED */
	char *errmsg;
	bool notified; /* closed() was called */

	unsigned busy; /* nesting of loop handlers running */
	bool dead;     /* transport_free() was called while busy */
};

static void destroy(struct transport *t);
static void flush(struct transport *t);
static void tls_handshake(struct transport *t);

/* ---- small helpers ---- */

static void
set_state(struct transport *t, enum state s)
{
	if (t->state == s)
		return;
	log_debug(t->log, "transport %s:%u: %s -> %s", t->host, t->port,
		  state_names[t->state], state_names[s]);
	t->state = s;
}

/* A negative errno for a socket error; EPIPE is a reset peer too. */
static int
errno_to_err(int e)
{
	if (e == EPIPE)
		return -ECONNRESET;
	return e > 0 ? -e : -EIO;
}

static size_t
queued(const struct transport *t)
{
	return t->olen - t->ooff;
}

/* Enters a loop handler: see the re-entrancy note at the top. */
static void
enter(struct transport *t)
{
	t->busy++;
}

/* Leaves a loop handler; frees t when it was freed meanwhile (the
 * handler must not touch t after this). */
static void
leave(struct transport *t)
{
	if (--t->busy == 0 && t->dead)
		destroy(t);
}

/* Sets which events the socket waits for: always EPOLLIN (the peer may
 * close at any time) but while paused once open, EPOLLOUT only while
 * something waits to be written, so that an idle connection never wakes
 * the loop. Paused, a write that waits for the peer's bytes (or a read
 * that waits to write) waits for the resume. */
static void
update_events(struct transport *t)
{
	uint32_t ev = EPOLLIN;
	int r;

	if (!t->io)
		return;
	switch (t->state) {
	case ST_CONNECTING:
		ev = EPOLLOUT;
		break;
	case ST_HANDSHAKE:
		if (t->hs_want_write)
			ev |= EPOLLOUT;
		break;
	case ST_OPEN:
		if (t->paused)
			ev = queued(t) && !t->write_wants_read ? EPOLLOUT : 0;
		else if ((queued(t) && !t->write_wants_read) ||
			 t->read_wants_write)
			ev |= EPOLLOUT;
		break;
	default:
		break;
	}
	if (ev == t->events)
		return;
	r = sd_event_source_set_io_events(t->io, ev);
	if (r < 0)
		log_err(t->log, "transport: cannot set io events: %s",
			strerror(-r));
	else
		t->events = ev;
}

/* Closes the socket and its TLS state (no close_notify); t stays. */
static void
close_socket(struct transport *t)
{
	t->io = sd_event_source_disable_unref(t->io);
	if (t->ssl) {
		SSL_free(t->ssl); /* and its BIO */
		t->ssl = NULL;
	}
	X509_free(t->bad_cert);
	t->bad_cert = NULL;
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	t->events = 0;
	t->bio_eof = false;
	t->hs_want_write = false;
	t->read_wants_write = false;
	t->write_wants_read = false;
	t->read_more = false;
	t->parked = false;
}

static void lookup_unref(struct lookup *l);

/* Lets go of the lookup; one still running finishes on its own and its
 * notification frees it. */
static void
cancel_lookup(struct transport *t)
{
	struct lookup *l = t->lookup;

	t->lookup_io = sd_event_source_disable_unref(t->lookup_io);
	if (!l)
		return;
	t->lookup = NULL;
	/* Cancelled before it ran, glibc never notifies: drop that
	 * reference here. Otherwise lookup_notify() runs (or ran). */
	if (!t->lookup_notified && gai_cancel(&l->req) == EAI_CANCELED)
		lookup_unref(l);
	t->lookup_notified = true;
	lookup_unref(l);
}

/* Wipes and frees the output queue. */
static void
out_free(struct transport *t)
{
	wipe(t->obuf, t->ocap);
	freep(&t->obuf);
	t->ooff = t->olen = t->ocap = 0;
}

/* Ends the connection with err (0 for a clean EOF) and a message, and
 * schedules the closed callback from the loop. Does nothing once closed. */
static void __attribute__((format(printf, 3, 4)))
fail(struct transport *t, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int r;

	if (t->state == ST_CLOSED)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(t->errmsg);
	t->errmsg = xstrdup(msg);
	t->err = err;
	log_debug(t->log, "transport %s:%u: %s", t->host, t->port, msg);

	cancel_lookup(t);
	t->timer = sd_event_source_disable_unref(t->timer);
	close_socket(t);
	out_free(t);
	set_state(t, ST_CLOSED);
	r = sd_event_source_set_enabled(t->defer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_err(t->log, "transport: cannot schedule close: %s",
			strerror(-r));
}

/* ---- our socket BIO: send()/recv() on t->fd ---- */

static int
bio_sock_write(BIO *b, const char *buf, int len)
{
	struct transport *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return -1;
	}
	return (int)n;
}

static int
bio_sock_read(BIO *b, char *buf, int len)
{
	struct transport *t = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(t->fd, buf, (size_t)len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return -1;
	}
	if (n == 0)
		t->bio_eof = true;
	return (int)n;
}

/* BIO_CTRL_EOF lets OpenSSL tell the peer's FIN (no close_notify) from a
 * read error. */
static long
bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct transport *t = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return t && t->bio_eof;
	default:
		return 0;
	}
}

/* The BIO method, made once and kept for the life of the process.
 * Returns NULL when OpenSSL cannot allocate it. */
static BIO_METHOD *
bio_method(void)
{
	static BIO_METHOD *m;
	int type;

	if (m)
		return m;
	type = BIO_get_new_index();
	if (type < 0)
		return NULL;
	m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "mailwatch socket");
	if (!m)
		return NULL;
	if (!BIO_meth_set_write(m, bio_sock_write) ||
	    !BIO_meth_set_read(m, bio_sock_read) ||
	    !BIO_meth_set_ctrl(m, bio_sock_ctrl)) {
		BIO_meth_free(m);
		m = NULL;
	}
	return m;
}

/* ---- TLS ---- */

/* The reason of an OpenSSL error code, e.g. "wrong version number". */
static const char *
ssl_reason(unsigned long ec, char *buf, size_t size)
{
	const char *s = ec ? ERR_reason_error_string(ec) : NULL;

	if (s)
		return s;
	if (!ec)
		return "unknown error";
	ERR_error_string_n(ec, buf, size);
	return buf;
}

/* ---- what a certificate that did not verify says ---- */

/* " (issued by NAME)", or "" when it has none. */
static void
cert_issuer(X509 *cert, char *buf, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long len;

	if (!b)
		return;
	if (X509_NAME_print_ex(b, X509_get_issuer_name(cert), 0,
			       XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) > 0 &&
	    (len = BIO_get_mem_data(b, &p)) > 0)
		snprintf(buf, n, " (issued by %.*s)", (int)len, p);
	BIO_free(b);
}

/* ": it is for NAME, NAME..." from the subjectAltName DNS and IP
 * entries (at most 4 named), or "" when it has none. */
static void
cert_names(X509 *cert, char *buf, size_t n)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int count = gens ? sk_GENERAL_NAME_num(gens) : 0, shown = 0;
	size_t o = 0;

	for (int i = 0; i < count && o < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char ip[INET6_ADDRSTRLEN] = "";
		const unsigned char *d;
		int len;

		if (g->type == GEN_DNS) {
			d = ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
		} else if (g->type == GEN_IPADD) {
			d = ASN1_STRING_get0_data(g->d.iPAddress);
			len = ASN1_STRING_length(g->d.iPAddress);
			if ((len != 4 && len != 16) ||
			    !inet_ntop(len == 16 ? AF_INET6 : AF_INET, d, ip,
				       sizeof(ip)))
				continue;
			d = (const unsigned char *)ip;
			len = (int)strlen(ip);
		} else {
			continue;
		}
		if (shown == 4) {
			o += snprintf(buf + o, n - o, ", ...");
			break;
		}
		o += snprintf(buf + o, n - o, "%s",
			      shown++ ? ", " : ": it is for ");
		/* The server's bytes: what does not print is a '?'. */
		for (int k = 0; k < len && o + 1 < n; k++)
			buf[o++] = d[k] < 0x20 || d[k] >= 0x7f ? '?' : (char)d[k];
		if (o < n)
			buf[o] = 0;
	}
	GENERAL_NAMES_free(gens);
}

/* tm as "2026-12-07 02:00 UTC", or "" when it cannot be read. */
static void
cert_time(const ASN1_TIME *tm, char *buf, size_t n)
{
	struct tm t;

	if (tm && ASN1_TIME_to_tm(tm, &t) == 1)
		strftime(buf, n, "%Y-%m-%d %H:%M UTC", &t);
}

/* What to do about a certificate that did not verify (vr), for the log
 * line: into buf, "" when there is nothing to say. */
static void
verify_hint(const struct transport *t, long vr, char *buf, size_t n)
{
	X509 *cert = t->bad_cert;
	char what[160] = "";

	buf[0] = 0;
	switch (vr) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		if (t->ca_file)
			snprintf(buf, n, "; it is signed by itself, and ca_file "
					 "%s is not that certificate",
				 t->ca_file);
		else
			snprintf(buf, n, "; it is signed by itself: to trust "
					 "it, check its fingerprint and set "
					 "ca_file to that certificate");
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		if (cert)
			cert_issuer(cert, what, sizeof(what));
		if (t->ca_file)
			snprintf(buf, n, "; ca_file %s does not hold the CA "
					 "that issued it%s",
				 t->ca_file, what);
		else
			snprintf(buf, n, "; if the server's certificate comes "
					 "from a CA of its own, set ca_file "
					 "to that CA's certificate%s",
				 what);
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		if (cert)
			cert_names(cert, what, sizeof(what));
		snprintf(buf, n, "; host must be a name the certificate is "
				 "for%s",
			 what);
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		if (cert)
			cert_time(X509_get0_notAfter(cert), what,
				  sizeof(what));
		snprintf(buf, n, "; it expired%s%s", *what ? " on " : "",
			 what);
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		if (cert)
			cert_time(X509_get0_notBefore(cert), what,
				  sizeof(what));
		snprintf(buf, n, "; it is valid from %s: is this machine's "
				 "clock right?",
			 *what ? what : "a later date");
		break;
	}
}

/* Ends the connection after an SSL_* call failed with SSL_get_error() e;
 * saved_errno is errno right after the call. A close_notify or FIN from
 * the peer once the connection is open is a clean EOF (err 0; IMAP frames
 * its own data, so a missing close_notify truncates nothing unnoticed);
 * during the handshake it is -ECONNRESET. A socket error is its errno,
 * anything else (verification included) -EPROTO. */
static void
tls_fail(struct transport *t, int e, int saved_errno, const char *what)
{
	unsigned long ec = ERR_get_error();
	bool hs = t->state == ST_HANDSHAKE;
	bool eof = false;
	char buf[256];
	long vr;

	if (e == SSL_ERROR_ZERO_RETURN)
		eof = true;
	else if (e == SSL_ERROR_SYSCALL && !ec && saved_errno == 0)
		eof = true;
	else if (ERR_GET_LIB(ec) == ERR_LIB_SSL &&
		 ERR_GET_REASON(ec) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		eof = true;

	if (eof && hs)
		fail(t, -ECONNRESET, "%s with %s: connection closed by peer",
		     what, t->peer);
	else if (eof)
		fail(t, 0, "connection closed by %s", t->peer);
	else if (e == SSL_ERROR_SYSCALL && !ec)
		fail(t, errno_to_err(saved_errno), "%s with %s: %s", what,
		     t->peer, strerror(saved_errno));
	else if (hs && (vr = SSL_get_verify_result(t->ssl)) != X509_V_OK) {
		char hint[320];

		verify_hint(t, vr, hint, sizeof(hint));
		/* The CA file may change before the retry. */
		t->ctx->stale = true;
		fail(t, -EPROTO, "certificate verify failed: %s (host %s)%s",
		     X509_verify_cert_error_string(vr), t->name, hint);
	} else
		fail(t, -EPROTO, "%s with %s: %s%s", what, t->peer,
		     ssl_reason(ec, buf, sizeof(buf)),
		     /* What OpenSSL says of a server that answers in
		      * plain text: the port is not one of implicit TLS. */
		     hs && ERR_GET_LIB(ec) == ERR_LIB_SSL &&
			     ERR_GET_REASON(ec) == SSL_R_WRONG_VERSION_NUMBER
			 ? " (the server does not speak TLS on this port: is "
			   "it one for tls = starttls?)"
			 : "");
	ERR_clear_error();
}

/* The contexts in use (struct shared_ctx). */
static struct shared_ctx *shared_ctxs;

static bool
same_ca(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static void
ctx_release(struct shared_ctx **sp)
{
	struct shared_ctx *sc = *sp;

	*sp = NULL;
	if (!sc || --sc->refs)
		return;
	for (struct shared_ctx **p = &shared_ctxs; *p; p = &(*p)->next) {
		if (*p == sc) {
			*p = sc->next;
			break;
		}
	}
	SSL_CTX_free(sc->ctx);
	free(sc->ca_file);
	free(sc);
}

/* Keeps the server's certificate when it does not verify, for
 * verify_hint(): OpenSSL keeps nothing of a failed handshake. The result
 * is OpenSSL's own. */
static int
on_verify(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
	    x, SSL_get_ex_data_X509_STORE_CTX_idx());
	BIO *bio = ssl ? SSL_get_rbio(ssl) : NULL;
	struct transport *t = bio ? BIO_get_data(bio) : NULL;
	X509 *cert = X509_STORE_CTX_get0_cert(x);

	if (!ok && t && cert && !t->bad_cert && X509_up_ref(cert) == 1)
		t->bad_cert = cert;
	return ok;
}

/* Takes a reference to the context for t's CA file into t->ctx, making it
 * when no connection has it. Returns 0, or -EPROTO with errmsg set. */
static int
make_ctx(struct transport *t, char *errmsg, size_t size)
{
	struct shared_ctx *sc;
	SSL_CTX *ctx;
	char buf[256];
	int ok;

	if (t->ctx)
		return 0;
	for (sc = shared_ctxs; sc; sc = sc->next) {
		if (!sc->stale && same_ca(sc->ca_file, t->ca_file)) {
			sc->refs++;
			t->ctx = sc;
			return 0;
		}
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(errmsg, size, "SSL_CTX_new: %s",
			 ssl_reason(ERR_get_error(), buf, sizeof(buf)));
		return -EPROTO;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Idle connections give their buffers back (about 34 KiB each). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* One recv() for as much as its buffer holds, not one for each
	 * record's header and one for its body: a push costs one system call
	 * fewer. What it holds beyond the record wakes no epoll:
	 * read_pending_later() comes back for it. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify);
	if (t->ca_file)
		ok = SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL);
	else
		ok = SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		snprintf(errmsg, size, "loading CA certificates from %s: %s",
			 t->ca_file ? t->ca_file : "the system store",
			 ssl_reason(ERR_get_error(), buf, sizeof(buf)));
		SSL_CTX_free(ctx);
		return -EPROTO;
	}
	sc = xcalloc(1, sizeof(*sc));
	sc->ca_file = t->ca_file ? xstrdup(t->ca_file) : NULL;
	sc->ctx = ctx;
	sc->refs = 1;
	sc->next = shared_ctxs;
	shared_ctxs = sc;
	t->ctx = sc;
	return 0;
}

/* True when s is a literal IPv4 or IPv6 address. */
static bool
is_ip_literal(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 ||
	       inet_pton(AF_INET6, s, &a6) == 1;
}

/* Sets up the SSL object on the connected socket and enters HANDSHAKE:
 * host name (or IP address) verification, SNI for names. On failure ends
 * the connection and returns -EPROTO. */
static int
tls_begin(struct transport *t)
{
	X509_VERIFY_PARAM *param;
	char msg[384], buf[256];
	BIO_METHOD *m;
	BIO *bio;
	int r;

	ERR_clear_error();
	r = make_ctx(t, msg, sizeof(msg));
	if (r < 0)
		goto fail;
	m = bio_method();
	t->ssl = SSL_new(t->ctx->ctx);
	if (!m || !t->ssl) {
		snprintf(msg, sizeof(msg), "SSL_new: %s",
			 ssl_reason(ERR_get_error(), buf, sizeof(buf)));
		goto fail;
	}
	SSL_set_mode(t->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				 SSL_MODE_ENABLE_PARTIAL_WRITE);
	param = SSL_get0_param(t->ssl);
	X509_VERIFY_PARAM_set_hostflags(param,
					X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip_literal(t->name)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(param, t->name) != 1) {
			snprintf(msg, sizeof(msg), "bad IP address %s",
				 t->name);
			goto fail;
		}
	} else if (SSL_set_tlsext_host_name(t->ssl, t->name) != 1 ||
		   SSL_set1_host(t->ssl, t->name) != 1) {
		snprintf(msg, sizeof(msg), "bad TLS host name %s", t->name);
		goto fail;
	}
	bio = BIO_new(m);
	if (!bio) {
		snprintf(msg, sizeof(msg), "BIO_new: %s",
			 ssl_reason(ERR_get_error(), buf, sizeof(buf)));
		goto fail;
	}
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_connect_state(t->ssl);
	t->hs_want_write = true;
	set_state(t, ST_HANDSHAKE);
	update_events(t);
	return 0;

fail:
	ERR_clear_error();
	fail(t, -EPROTO, "%s", msg);
	return -EPROTO;
}

/* Bytes OpenSSL already holds (its read-ahead took more than a record)
 * wake no epoll: comes back for them from the loop. */
static void
read_pending_later(struct transport *t)
{
	if (!t->paused && t->ssl && SSL_has_pending(t->ssl)) {
		t->read_more = true;
		sd_event_source_set_enabled(t->defer, SD_EVENT_ONESHOT);
	}
}

/* The handshake finished and the peer verified: the connection is open.
 * Calls connected or tls_ready (the caller checks t->dead after). */
static void
tls_established(struct transport *t)
{
	t->is_tls = true;
	t->timer = sd_event_source_disable_unref(t->timer);
	set_state(t, ST_OPEN);
	log_at(t->quiet ? LOG_DEBUG : LOG_INFO, t->log, "%s %s: %s, %s",
	       t->starttls ? "STARTTLS with" : "connected to", t->peer,
	       SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	flush(t);
	if (t->state != ST_OPEN)
		return;
	/* The read that ended the handshake may have taken the greeting. */
	read_pending_later(t);
	if (t->starttls) {
		if (t->cb.tls_ready)
			t->cb.tls_ready(t->ud);
	} else if (t->cb.connected) {
		t->cb.connected(t->ud);
	}
}

/* One step of the handshake. */
static void
tls_handshake(struct transport *t)
{
	int r, e, saved;

	ERR_clear_error();
	errno = 0; /* SSL_ERROR_SYSCALL reads it */
	r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		tls_established(t);
		return;
	}
	saved = errno;
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		t->hs_want_write = e == SSL_ERROR_WANT_WRITE;
		update_events(t);
		return;
	}
	tls_fail(t, e, saved, "TLS handshake");
}

/* ---- reading and writing ---- */

/* Asks the kernel to acknowledge the next bytes from the server at once.
 * A server that answers in several small writes with Nagle's algorithm on
 * (Cyrus: the OK that ends IDLE, then the UID FETCH reply) holds each
 * write until the one before is acknowledged, and Linux delays an ACK by
 * 40 ms or more when it expects to send data soon, as after our own
 * writes. The kernel drops back to delayed ACKs by itself, so this is
 * re-armed after every write and every wake-up that read something. */
static void
quickack(struct transport *t)
{
	static const int one = 1;

	(void)setsockopt(t->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

/* Sends what the socket takes now. Failure ends the connection. */
static void
flush(struct transport *t)
{
	while (t->state == ST_OPEN && queued(t)) {
		const char *p = t->obuf + t->ooff;
		size_t n = queued(t);

		if (t->ssl) {
			int r, e, saved;

			/* A retried SSL_write() must not be shorter than the
			 * one that wanted a retry: the queue only grows at
			 * its end, so min(queued, WRITE_CHUNK) does not
			 * shrink. */
			ERR_clear_error();
			errno = 0;
			r = SSL_write(t->ssl, p,
				      (int)(n > WRITE_CHUNK ? WRITE_CHUNK : n));
			if (r > 0) {
				t->ooff += (size_t)r;
				t->write_wants_read = false;
				continue;
			}
			saved = errno;
			e = SSL_get_error(t->ssl, r);
			t->write_wants_read = e == SSL_ERROR_WANT_READ;
			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				break;
			tls_fail(t, e, saved, "TLS write");
			return;
		} else {
			ssize_t r =
			    send(t->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (r >= 0) {
				t->ooff += (size_t)r;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			fail(t, errno_to_err(errno), "send to %s: %s", t->peer,
			     strerror(errno));
			return;
		}
	}
	if (t->ooff)
		quickack(t);
	if (queued(t) && t->state == ST_OPEN)
		log_debug(t->log, "transport %s: %zu bytes wait for the socket",
			  t->peer, queued(t));
	if (t->ooff && t->ooff == t->olen) {
		wipe(t->obuf, t->olen);
		t->ooff = t->olen = 0;
		if (t->ocap > OUT_KEEP)
			out_free(t);
	}
	update_events(t);
}

/* Reads until the socket is drained (or READS_PER_WAKEUP chunks), handing
 * each chunk to the data callback. Returns early when a callback freed t
 * (check t->dead), closed it, started TLS or paused it. */
static void
do_read(struct transport *t)
{
	char buf[READ_CHUNK];
	bool acked = false;
	ssize_t n;
	int i;

	if (t->paused)
		return;
	t->read_wants_write = false;
	for (i = 0; i < READS_PER_WAKEUP && !t->paused; i++) {
		if (t->ssl) {
			int r, e, saved;

			ERR_clear_error();
			errno = 0;
			r = SSL_read(t->ssl, buf, sizeof(buf));
			if (r <= 0) {
				saved = errno;
				e = SSL_get_error(t->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					t->read_wants_write = true;
					return;
				}
				tls_fail(t, e, saved, "TLS read");
				return;
			}
			n = r;
		} else {
			n = recv(t->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (n < 0) {
				fail(t, errno_to_err(errno), "recv from %s: %s",
				     t->peer, strerror(errno));
				return;
			}
			if (n == 0) {
				fail(t, 0, "connection closed by %s", t->peer);
				return;
			}
		}
		/* Once a wake-up: the first call acknowledges what came. */
		if (!acked) {
			quickack(t);
			acked = true;
		}
		log_debug(t->log, "transport %s: received %zd bytes", t->peer,
			  n);
		if (t->cb.data)
			t->cb.data(t->ud, buf, (size_t)n);
		if (t->dead || t->state != ST_OPEN)
			return;
	}
	/* Yielded (or paused: transport_pause() comes back). */
	read_pending_later(t);
}

/* ---- connecting ---- */

/* Sets the socket options: no Nagle delay (the IDLE "DONE" must go out at
 * once), and keepalive plus a user timeout that find a silently dead peer
 * within two minutes. Failures only cost latency; they are logged. */
static void
tune_socket(struct transport *t)
{
	static const struct {
		int level, name, value;
		const char *what;
	} opts[] = {
	    {IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"},
	    {SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
	    {IPPROTO_TCP, TCP_KEEPIDLE, 60, "TCP_KEEPIDLE"},
	    {IPPROTO_TCP, TCP_KEEPINTVL, 10, "TCP_KEEPINTVL"},
	    {IPPROTO_TCP, TCP_KEEPCNT, 5, "TCP_KEEPCNT"},
	    {IPPROTO_TCP, TCP_USER_TIMEOUT, 90000, "TCP_USER_TIMEOUT"},
	};

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (setsockopt(t->fd, opts[i].level, opts[i].name,
			       &opts[i].value, sizeof(opts[i].value)) < 0)
			log_debug(t->log, "transport %s: setsockopt %s: %s",
				  t->peer, opts[i].what, strerror(errno));
}

/* Writes "1.2.3.4:993" or "[::1]:993" into t->peer. */
static void
format_peer(struct transport *t, const struct sockaddr *sa)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)sa)->sin6_addr, a,
			  sizeof(a));
		snprintf(t->peer, sizeof(t->peer), "[%s]:%u", a, t->port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  a, sizeof(a));
		snprintf(t->peer, sizeof(t->peer), "%s:%u", a, t->port);
	}
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *ud);

/* Starts a non-blocking connect to the next address; when none is left,
 * ends the connection with the last attempt's error. */
static void
connect_next(struct transport *t)
{
	while (t->next_addr < t->n_addrs) {
		size_t i = t->next_addr++;
		const struct sockaddr *sa = (const void *)&t->addrs[i];
		int r;

		format_peer(t, sa);
		t->fd = socket(sa->sa_family,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       IPPROTO_TCP);
		if (t->fd < 0) {
			t->connect_err = errno;
			log_debug(t->log, "transport %s: socket: %s", t->peer,
				  strerror(errno));
			continue;
		}
		tune_socket(t);
		if (connect(t->fd, sa, t->addr_lens[i]) < 0 &&
		    errno != EINPROGRESS && errno != EINTR) {
			t->connect_err = errno;
			log_debug(t->log, "transport: connect %s: %s", t->peer,
				  strerror(errno));
			close_socket(t);
			continue;
		}
		/* Even an immediate success is finished from the loop, where
		 * callbacks are safe. */
		r = sd_event_add_io(t->event, &t->io, t->fd, EPOLLOUT, on_io,
				    t);
		if (r < 0) {
			close_socket(t);
			fail(t, r, "sd_event_add_io: %s", strerror(-r));
			return;
		}
		(void)sd_event_source_set_description(t->io, "transport-io");
		t->events = EPOLLOUT;
		log_debug(t->log, "transport: connecting to %s", t->peer);
		set_state(t, ST_CONNECTING);
		return;
	}
	if (t->n_addrs == 0 || is_ip_literal(t->name))
		fail(t, errno_to_err(t->connect_err), "connect %s: %s",
		     t->peer[0] ? t->peer : t->host, strerror(t->connect_err));
	else
		fail(t, errno_to_err(t->connect_err), "connect %s (%s): %s",
		     t->host, t->peer, strerror(t->connect_err));
}

/* The socket became writable (or failed) in CONNECTING. */
static void
connect_done(struct transport *t, uint32_t revents)
{
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (!soerr && !(revents & EPOLLOUT))
		return; /* spurious */
	if (soerr) {
		t->connect_err = soerr;
		log_debug(t->log, "transport: connect %s: %s", t->peer,
			  strerror(soerr));
		close_socket(t);
		connect_next(t);
		return;
	}
	log_debug(t->log, "transport: TCP connected to %s", t->peer);
	if (t->implicit_tls) {
		if (tls_begin(t) == 0)
			tls_handshake(t);
		return;
	}
	t->timer = sd_event_source_disable_unref(t->timer);
	set_state(t, ST_OPEN);
	log_at(t->quiet ? LOG_DEBUG : LOG_INFO, t->log, "connected to %s (%s)",
	       t->peer,
	       t->will_starttls ? "plain text until STARTTLS" : "plain text");
	flush(t);
	if (t->state == ST_OPEN && t->cb.connected)
		t->cb.connected(t->ud);
}

/* The socket is ready: drives whatever the state needs. */
static int
on_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct transport *t = ud;

	(void)s;
	(void)fd;
	enter(t);
	switch (t->state) {
	case ST_CONNECTING:
		connect_done(t, revents);
		break;
	case ST_HANDSHAKE:
		tls_handshake(t);
		break;
	case ST_OPEN:
		if (queued(t))
			flush(t);
		if (t->state == ST_OPEN &&
		    ((revents & ~(uint32_t)EPOLLOUT) || t->read_wants_write))
			do_read(t);
		/* A write that wanted the peer's bytes can go on now. */
		if (!t->dead && t->state == ST_OPEN && queued(t))
			flush(t);
		/* Paused, a hang-up or error (which epoll reports whatever
		 * the events asked) would wake the loop for ever: stop
		 * watching until the resume reads what came before it. */
		if (!t->dead && t->state == ST_OPEN && t->paused &&
		    (revents & (EPOLLERR | EPOLLHUP))) {
			t->parked = true;
			sd_event_source_set_enabled(t->io, SD_EVENT_OFF);
		}
		break;
	default:
		break;
	}
	if (!t->dead)
		update_events(t);
	leave(t);
	return 0;
}

/* The deadline of resolve + connect + handshake (or of a STARTTLS
 * handshake) passed. */
static int
on_timeout(sd_event_source *s, uint64_t usec, void *ud)
{
	struct transport *t = ud;

	(void)s;
	(void)usec;
	switch (t->state) {
	case ST_RESOLVING:
		fail(t, -ETIMEDOUT, "timed out after %us resolving %s",
		     t->timeout, t->host);
		break;
	case ST_CONNECTING:
		fail(t, -ETIMEDOUT, "timed out after %us connecting to %s",
		     t->timeout, t->peer);
		break;
	case ST_HANDSHAKE:
		fail(t, -ETIMEDOUT,
		     "timed out after %us in the TLS handshake "
		     "with %s",
		     t->timeout, t->peer);
		break;
	default:
		break;
	}
	return 0;
}

/* Runs the closed callback, or reading that yielded with bytes left. */
static int
on_defer(sd_event_source *s, void *ud)
{
	struct transport *t = ud;

	(void)s;
	enter(t);
	if (t->state == ST_CLOSED) {
		if (!t->notified) {
			t->notified = true;
			if (t->cb.closed)
				t->cb.closed(t->ud, t->err);
		}
	} else if (t->read_more && t->state == ST_OPEN) {
		t->read_more = false;
		do_read(t);
		if (!t->dead && t->state == ST_OPEN && queued(t))
			flush(t);
		if (!t->dead)
			update_events(t);
	}
	leave(t);
	return 0;
}

/* Arms the deadline for what follows (resolve to handshake, or a STARTTLS
 * handshake). Coalesced: a second either way does not matter. */
static int
arm_timer(struct transport *t)
{
	int r;

	t->timer = sd_event_source_disable_unref(t->timer);
	r = sd_event_add_time_relative(t->event, &t->timer, CLOCK_MONOTONIC,
				       t->timeout * T_USEC_PER_SEC,
				       T_USEC_PER_SEC / 4, on_timeout, t);
	if (r < 0)
		return r;
	(void)sd_event_source_set_description(t->timer, "transport-timeout");
	return 0;
}

/* ---- name resolution ----
 *
 * getaddrinfo() blocks, so names go to glibc's getaddrinfo_a(). Its
 * completion runs lookup_notify() on a glibc thread, which writes an
 * eventfd the loop watches. The struct lookup is shared by reference
 * count between the transport and that notification, so the transport
 * may go away while the lookup still runs. */

static void
lookup_unref(struct lookup *l)
{
	if (atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	if (l->req.ar_result)
		freeaddrinfo(l->req.ar_result);
	if (l->efd >= 0)
		close(l->efd);
	free(l->node);
	free(l);
}

/* On a glibc thread, once per request that was not cancelled. */
static void
lookup_notify(union sigval sv)
{
	struct lookup *l = sv.sival_ptr;
	uint64_t one = 1;

	if (write(l->efd, &one, sizeof(one)) < 0) {
		/* Cannot fail on an eventfd we keep open; the timer would
		 * end the wait anyway. */
	}
	lookup_unref(l);
}

/* Copies the usable addresses of the answer, in the resolver's order. */
static void
take_addresses(struct transport *t, const struct addrinfo *res)
{
	t->n_addrs = 0;
	for (const struct addrinfo *ai = res; ai && t->n_addrs < MAX_ADDRS;
	     ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    !ai->ai_addr || ai->ai_addrlen > sizeof(t->addrs[0]))
			continue;
		memcpy(&t->addrs[t->n_addrs], ai->ai_addr, ai->ai_addrlen);
		t->addr_lens[t->n_addrs] = ai->ai_addrlen;
		t->n_addrs++;
	}
	t->next_addr = 0;
}

/* The lookup's eventfd fired: connect to what it found. */
static int
on_lookup_done(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct transport *t = ud;
	struct lookup *l = t->lookup;
	uint64_t n;
	int ret;

	(void)s;
	(void)revents;
	if (read(fd, &n, sizeof(n)) < 0 || !l)
		return 0; /* spurious */
	ret = gai_error(&l->req);
	if (ret == EAI_INPROGRESS)
		return 0;
	t->lookup_notified = true; /* lookup_notify() ran */
	if (ret == 0)
		take_addresses(t, l->req.ar_result);
	cancel_lookup(t);
	if (ret == EAI_SYSTEM) {
		fail(t, -EHOSTUNREACH, "resolve %s: system error", t->host);
		return 0;
	}
	if (ret != 0) {
		fail(t, ret == EAI_AGAIN ? -EHOSTUNREACH : -ENXIO,
		     "resolve %s: %s", t->host, gai_strerror(ret));
		return 0;
	}
	if (t->n_addrs == 0) {
		fail(t, -ENXIO, "resolve %s: no IPv4 or IPv6 address", t->host);
		return 0;
	}
	log_debug(t->log, "transport: %s has %zu address(es)", t->host,
		  t->n_addrs);
	connect_next(t);
	return 0;
}

/* Starts the lookup of t->name. Returns 0 or a negative errno. */
static int
start_lookup(struct transport *t)
{
	struct gaicb *list[1];
	struct sigevent sev;
	struct lookup *l;
	int r;

	l = xcalloc(1, sizeof(*l));
	atomic_init(&l->refs, 1);
	l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->efd < 0) {
		r = -errno;
		lookup_unref(l);
		return r;
	}
	l->node = xstrdup(t->name);
	snprintf(l->service, sizeof(l->service), "%u", t->port);
	l->hints.ai_family = AF_UNSPEC;
	l->hints.ai_socktype = SOCK_STREAM;
	l->hints.ai_protocol = IPPROTO_TCP;
	l->hints.ai_flags = AI_NUMERICSERV;
	l->req.ar_name = l->node;
	l->req.ar_service = l->service;
	l->req.ar_request = &l->hints;
	t->lookup = l;
	t->lookup_notified = false;

	r = sd_event_add_io(t->event, &t->lookup_io, l->efd, EPOLLIN,
			    on_lookup_done, t);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(t->lookup_io, "transport-dns");

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_value.sival_ptr = l;
	sev.sigev_notify_function = lookup_notify;
	list[0] = &l->req;
	atomic_fetch_add(&l->refs, 1); /* the notification's */
	r = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
	if (r != 0) {
		atomic_fetch_sub(&l->refs, 1);
		t->lookup_notified = true; /* no notification to wait for */
		log_debug(t->log, "transport: getaddrinfo_a %s: %s", t->name,
			  gai_strerror(r));
		r = r == EAI_MEMORY ? -ENOMEM : -EAGAIN;
		goto fail;
	}
	return 0;

fail:
	t->lookup_notified = true;
	cancel_lookup(t);
	return r;
}

/* Fills t->addrs when t->name is a literal address. Returns true then. */
static bool
literal_address(struct transport *t)
{
	struct sockaddr_in6 *s6 = (void *)&t->addrs[0];
	struct sockaddr_in *s4 = (void *)&t->addrs[0];

	memset(&t->addrs[0], 0, sizeof(t->addrs[0]));
	if (inet_pton(AF_INET, t->name, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(t->port);
		t->addr_lens[0] = sizeof(*s4);
	} else if (inet_pton(AF_INET6, t->name, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(t->port);
		t->addr_lens[0] = sizeof(*s6);
	} else {
		return false;
	}
	t->n_addrs = 1;
	t->next_addr = 0;
	return true;
}

/* ---- the API ---- */

int
transport_new(sd_event *e, const struct transport_opts *o,
	      const struct transport_cb *cb, void *ud, struct transport **t_r)
{
	struct transport *t;
	size_t n;
	int r;

	if (!e || !o || !o->host || !*o->host || !o->port || !cb || !t_r)
		return -EINVAL;
	t = xcalloc(1, sizeof(*t));
	t->event = sd_event_ref(e);
	t->fd = -1;
	t->lookup_notified = true;
	t->state = ST_RESOLVING;
	t->host = xstrdup(o->host);
	n = strlen(o->host);
	if (n > 2 && o->host[0] == '[' && o->host[n - 1] == ']')
		t->name = xstrndup(o->host + 1, n - 2);
	else
		t->name = xstrdup(o->host);
	t->port = o->port;
	t->implicit_tls = o->implicit_tls;
	t->will_starttls = o->starttls;
	t->quiet = o->quiet;
	t->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	t->timeout = o->connect_timeout ? o->connect_timeout : DEFAULT_TIMEOUT;
	t->log = o->log;
	t->cb = *cb;
	t->ud = ud;

	r = sd_event_add_defer(e, &t->defer, on_defer, t);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(t->defer, "transport-defer");
	r = sd_event_source_set_enabled(t->defer, SD_EVENT_OFF);
	if (r < 0)
		goto fail;
	r = arm_timer(t);
	if (r < 0)
		goto fail;
	if (literal_address(t)) {
		/* Failures here call closed() from the loop, not now. */
		connect_next(t);
	} else {
		r = start_lookup(t);
		if (r < 0)
			goto fail;
		log_debug(t->log, "transport: resolving %s", t->name);
	}
	*t_r = t;
	return 0;

fail:
	destroy(t);
	return r;
}

/* Frees everything; t must not be in use by a handler. */
static void
destroy(struct transport *t)
{
	cancel_lookup(t);
	t->timer = sd_event_source_disable_unref(t->timer);
	t->defer = sd_event_source_disable_unref(t->defer);
	close_socket(t);
	ctx_release(&t->ctx);
	out_free(t);
	free(t->errmsg);
	free(t->host);
	free(t->name);
	free(t->ca_file);
	sd_event_unref(t->event);
	free(t);
}

void
transport_free(struct transport **tp)
{
	struct transport *t = *tp;

	if (!t)
		return;
	*tp = NULL;
	/* Polite: a close_notify when TLS is up and nothing half-sent. */
	if (t->ssl && t->state == ST_OPEN && !queued(t)) {
		ERR_clear_error();
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
	}
	if (t->busy) {
		/* Inside one of our handlers: stop everything now, free when
		 * it unwinds. */
		t->dead = true;
		cancel_lookup(t);
		t->timer = sd_event_source_disable_unref(t->timer);
		sd_event_source_set_enabled(t->defer, SD_EVENT_OFF);
		close_socket(t);
		return;
	}
	destroy(t);
}

int
transport_write(struct transport *t, const void *buf, size_t len)
{
	if (t->dead || t->state == ST_CLOSED)
		return -ENOTCONN;
	if (!len)
		return 0;
	if (len > OUT_MAX - queued(t))
		return -ENOBUFS;
	if (t->olen + len > t->ocap) {
		size_t cap = t->ocap ? t->ocap : 1024;

		/* Moving queued bytes is fine even under a pending
		 * SSL_write (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
		if (t->ooff) {
			memmove(t->obuf, t->obuf + t->ooff, queued(t));
			wipe(t->obuf + queued(t), t->ooff);
			t->olen -= t->ooff;
			t->ooff = 0;
		}
		while (cap < t->olen + len)
			cap *= 2;
		if (cap != t->ocap) {
			/* Not realloc: the old copy is wiped first. */
			char *grown = xmalloc(cap);

			if (t->olen)
				memcpy(grown, t->obuf, t->olen);
			out_free(t);
			t->obuf = grown;
			t->ocap = cap;
		}
	}
	memcpy(t->obuf + t->olen, buf, len);
	t->olen += len;
	if (t->state != ST_OPEN)
		return 0; /* goes out once connected */
	if (!t->write_wants_read)
		flush(t);
	if (t->state == ST_CLOSED)
		return t->err < 0 ? t->err : -ENOTCONN;
	return 0;
}

size_t
transport_pending(const struct transport *t)
{
	return queued(t);
}

void
transport_pause(struct transport *t, bool paused)
{
	if (t->dead || t->paused == paused)
		return;
	t->paused = paused;
	if (t->state != ST_OPEN)
		return; /* connecting and handshakes go on */
	if (!paused) {
		if (t->parked) {
			t->parked = false;
			sd_event_source_set_enabled(t->io, SD_EVENT_ON);
		}
		/* What the socket or OpenSSL holds, from the loop. */
		t->read_more = true;
		sd_event_source_set_enabled(t->defer, SD_EVENT_ONESHOT);
	}
	update_events(t);
}

int
transport_start_tls(struct transport *t)
{
	int r;

	if (t->dead || t->state != ST_OPEN)
		return -ENOTCONN;
	if (t->ssl)
		return -EALREADY;
	if (queued(t))
		return -EBUSY; /* plain text bytes would go out encrypted */
	t->starttls = true;
	r = arm_timer(t);
	if (r < 0)
		return r;
	/* The handshake starts from the loop: EPOLLOUT fires at once. */
	return tls_begin(t);
}

const char *
transport_errmsg(const struct transport *t)
{
	return t->errmsg ? t->errmsg : "";
}

bool
transport_is_tls(const struct transport *t)
{
	return t->is_tls && t->state == ST_OPEN;
}
