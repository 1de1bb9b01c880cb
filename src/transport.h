/* transport: one TCP connection (name resolution, non-blocking connect,
 * TCP keepalive) and its TLS (non-blocking OpenSSL,
 * certificate chain and host name verification, SNI) on an sd-event loop.
 * The only file that includes <openssl/...>. Nothing here blocks: names
 * are resolved with glibc's getaddrinfo_a(), whose completion is passed to
 * the loop through an eventfd (libsystemd's sd-resolve is not public API in
 * Debian 12); literal addresses skip resolution. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

struct transport;

struct transport_opts {
	const char *host;    /* name or address; also the TLS name checked */
	uint16_t port;
	bool implicit_tls;   /* TLS right after connect (port 993 style) */
	bool starttls;	     /* else: TLS after STARTTLS, for the log */
	const char *ca_file; /* PEM bundle, or NULL for the system store */
	unsigned connect_timeout; /* seconds for resolve + connect + TLS */
	const struct log_ctx *log; /* borrowed; for log lines */
	/* "connected to ..." at debug level, not info: a retry in an
	 * outage, whose end the owner tells once logged in. */
	bool quiet;
};

/* Callbacks, all called from the event loop, never from inside a
 * transport_*() call. After closed() the transport does nothing more; the
 * owner frees it. The owner may call transport_free(), transport_write()
 * and transport_start_tls() from inside any callback. */
struct transport_cb {
	/* Connected; with implicit TLS, after the handshake verified. */
	void (*connected)(void *ud);
	/* The STARTTLS handshake finished and verified. */
	void (*tls_ready)(void *ud);
	/* Received bytes (decrypted). Borrowed for the call. */
	void (*data)(void *ud, const char *buf, size_t len);
	/* The connection failed or ended: err is a negative errno (-ECONNRESET,
	 * -ETIMEDOUT, -EPROTO for a TLS failure, 0 for a clean EOF);
	 * transport_errmsg() says more. */
	void (*closed)(void *ud, int err);
};

/* Creates and starts connecting. o's strings are copied. Returns 0 and
 * *t_r, or a negative errno. */
int transport_new(sd_event *e, const struct transport_opts *o,
		  const struct transport_cb *cb, void *ud,
		  struct transport **t_r);
/* Closes the connection (no callback) and frees; sets *t to NULL. */
void transport_free(struct transport **t);

/* Queues len bytes (copied) and sends what the socket takes now. Returns 0
 * or a negative errno (the closed callback follows from the loop). */
int transport_write(struct transport *t, const void *buf, size_t len);
/* Bytes queued and not yet sent. */
size_t transport_pending(const struct transport *t);
/* Paused, the transport reads nothing more (not even the rest of what it
 * was reading when a data callback paused it), so the peer's bytes wait
 * in the kernel and then at the peer; writes go on, but for a TLS write
 * that needs the peer's bytes first, which waits for the resume. A hang-up
 * is seen only then. Resumed, what waits is read from the loop. Connecting
 * and TLS handshakes are not paused; what follows them is. */
void transport_pause(struct transport *t, bool paused);

/* Starts the TLS handshake on a plaintext connection (after the server's
 * OK to STARTTLS); tls_ready or closed follows. */
int transport_start_tls(struct transport *t);

/* A description of why the connection closed, e.g. "certificate verify
 * failed: self-signed certificate" or "connect 127.0.0.1:993: Connection
 * refused". Borrowed from t. */
const char *transport_errmsg(const struct transport *t);

/* True when TLS is up (implicit or after STARTTLS). */
bool transport_is_tls(const struct transport *t);
