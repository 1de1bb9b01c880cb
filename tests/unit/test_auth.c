/* OAuth2 sign-in without a socket: the SASL messages of OAUTHBEARER and
 * XOAUTH2 (sasl.c), the decoding of a server's error challenge at its
 * boundaries, and the session's login driven by transcripts: which
 * mechanism auth = picks from what the server offers, SASL-IR or not, the
 * error challenge answered as each mechanism requires, the refusal
 * reported as a token failure, ID after login, and a -v trace that never
 * holds the token. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "sasl.h"
#include "session.h"
#include "tap.h"

#define TOKEN "tok.en"

/* ---- sasl.c ---- */

static void
response_is(enum sasl_mech m, const char *user, const char *token,
	    const char *want, const char *what)
{
	struct codec_buf b;

	codec_buf_init(&b);
	sasl_oauth_response(&b, m, user, token);
	codec_buf_addstr(&b, "");
	is_str(b.len ? b.data : "", want, "%s", what);
	codec_buf_finish(&b);
}

static void
test_responses(void)
{
	/* base64("user=alice^Aauth=Bearer tok.en^A^A") */
	response_is(SASL_XOAUTH2, "alice", TOKEN,
		    "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2suZW4BAQ==",
		    "XOAUTH2 initial response");
	/* base64("n,a=alice,^Aauth=Bearer tok.en^A^A") */
	response_is(SASL_OAUTHBEARER, "alice", TOKEN,
		    "bixhPWFsaWNlLAFhdXRoPUJlYXJlciB0b2suZW4BAQ==",
		    "OAUTHBEARER initial response (RFC 7628)");
	/* base64("n,a=a=2Cb=3Dc,^Aauth=Bearer T^A^A") */
	response_is(SASL_OAUTHBEARER, "a,b=c", "T",
		    "bixhPWE9MkNiPTNEYywBYXV0aD1CZWFyZXIgVAEB",
		    "OAUTHBEARER: ',' and '=' escaped in the user name");
	is_str(sasl_mech_name(SASL_OAUTHBEARER), "OAUTHBEARER", "name");
	is_str(sasl_mech_name(SASL_XOAUTH2), "XOAUTH2", "name");
}

static void
error_is(const char *b64, int rc, const char *json, const char *status,
	 const char *what)
{
	struct sasl_error e;
	int r = sasl_oauth_error(b64, strlen(b64), &e);

	is_int(r, rc, "%s: return value", what);
	is_str(e.json, json, "%s: the JSON", what);
	is_str(e.status, status, "%s: the status", what);
}

static void
test_challenges(void)
{
	char b64[2 * 4 * SASL_ERROR_MAX], want[SASL_ERROR_MAX + 2];
	struct codec_buf b;
	struct sasl_error e;

	error_is("eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJt"
		 "YWlsIn0=",
		 0,
		 "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":"
		 "\"mail\"}",
		 "401", "Dovecot's XOAUTH2 challenge");
	error_is("eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=", 0,
		 "{\"status\":\"invalid_token\"}", "invalid_token",
		 "Dovecot's OAUTHBEARER challenge");
	error_is("eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0", 0,
		 "{\"status\":\"invalid_token\"}", "invalid_token",
		 "padding left out");
	error_is("eyJlcnJvciI6eyJzdGF0dXMiOiJpbm5lciJ9LCJzdGF0dXMiOiJvdXRlciJ9",
		 0, "{\"error\":{\"status\":\"inner\"},\"status\":\"outer\"}",
		 "outer", "a status in an inner object is not taken");
	error_is("eyJtc2ciOiJcInN0YXR1c1wiOiAxIiwic3RhdHVzIiA6IDQwMCB9", 0,
		 "{\"msg\":\"\\\"status\\\": 1\",\"status\" : 400 }", "400",
		 "a status inside a string is not taken; a number is");
	error_is("eyJhIjoiAf8ifQ==", 0, "{\"a\":\"??\"}", "",
		 "control and non-ASCII bytes shown as '?'; no status");
	error_is("", 0, "", "", "empty");
	error_is("e30*", -EINVAL, "", "", "not base64");
	error_is("e30=e30=", -EINVAL, "", "", "'=' inside");
	error_is("e30=e", -EINVAL, "", "", "a lone last digit");
	error_is("eyJzdGF0dXMiOiI0MDE", 0, "{\"status\":\"401", "401",
		 "a string cut short");

	/* At and over SASL_ERROR_MAX decoded bytes: cut, never overrun. */
	for (size_t n = SASL_ERROR_MAX - 1; n <= SASL_ERROR_MAX + 1; n++) {
		memset(want, 'x', n);
		want[0] = '{';
		codec_buf_init(&b);
		codec_buf_add_base64(&b, want, n);
		memcpy(b64, b.data, b.len);
		b64[b.len] = '\0';
		codec_buf_finish(&b);
		want[n < SASL_ERROR_MAX ? n : SASL_ERROR_MAX] = '\0';
		ok(sasl_oauth_error(b64, strlen(b64), &e) == 0 &&
		       !strcmp(e.json, want),
		   "%zu decoded bytes: %zu kept", n, strlen(want));
	}
	/* Text over 4 * SASL_ERROR_MAX is read up to there only. */
	memset(b64, 'Q', sizeof(b64) - 1);
	b64[sizeof(b64) - 1] = '\0';
	ok(sasl_oauth_error(b64, strlen(b64), &e) == 0 &&
	       strlen(e.json) == SASL_ERROR_MAX,
	   "a long challenge: read up to its limit");
}

/* ---- the session's login ---- */

struct rec {
	char sent[4096];
	char events[2048];
	int failed;
	enum session_fail why;
};

static void
ev(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(r->events);

	va_start(ap, fmt);
	vsnprintf(r->events + n, sizeof(r->events) - n, fmt, ap);
	va_end(ap);
}

static uint32_t
c_selected(void *ud, const struct session_selected *sel, bool *by_date_r)
{
	*by_date_r = false;
	ev(ud, "selected; ");
	return sel->uidnext;
}

static void
c_idle(void *ud)
{
	ev(ud, "idle; ");
}

static void
c_failed(void *ud, enum session_fail why, const char *msg)
{
	struct rec *r = ud;

	r->failed++;
	r->why = why;
	ev(r, "failed %s; ", msg);
}

static void
c_authenticated(void *ud)
{
	ev(ud, "authenticated; ");
}

static const struct session_cb cb = {
    .selected = c_selected,
    .idle = c_idle,
    .failed = c_failed,
    .authenticated = c_authenticated,
};

static const struct session_opts token_opts = {
    .username = "alice",
    .password = TOKEN,
    .oauth2 = true,
    .mailbox = "INBOX",
    .idle_timeout = 1500,
    .poll_interval = 60,
    .command_timeout = 30,
};

static void
feed(struct session *s, struct rec *r, const char *text)
{
	struct codec_buf *out;
	size_t n;

	session_feed(s, text, strlen(text), 0);
	out = session_output(s);
	n = strlen(r->sent);
	snprintf(r->sent + n, sizeof(r->sent) - n, "%.*s", (int)out->len,
		 out->data);
	codec_buf_consume(out, out->len);
}

static void sent(struct rec *r, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Asserts that the client sent exactly want since the last check. */
static void
sent(struct rec *r, const char *want, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	is_str(r->sent, want, "%s", what);
	r->sent[0] = '\0';
}

#define CAPS "* OK [CAPABILITY IMAP4rev1 IDLE ID AUTH=PLAIN "
#define XOAUTH2_IR "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2suZW4BAQ=="
#define OAUTHBEARER_IR "bixhPWFsaWNlLAFhdXRoPUJlYXJlciB0b2suZW4BAQ=="
#define CHALLENGE_401                                                          \
	"+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsI"  \
	"n0=\r\n"
#define REFUSED "m1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"

/* Which mechanism is chosen, with SASL-IR: the first line sent. */
static void
test_choice(void)
{
	static const struct {
		enum auth_mech auth;
		bool oauth2;
		const char *caps;
		const char *want; /* NULL: fails, nothing sent */
	} cases[] = {
	    {AUTH_AUTO, true, "SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n",
	     "m1 AUTHENTICATE OAUTHBEARER " OAUTHBEARER_IR "\r\n"},
	    {AUTH_AUTO, true, "SASL-IR AUTH=XOAUTH2] hi\r\n",
	     "m1 AUTHENTICATE XOAUTH2 " XOAUTH2_IR "\r\n"},
	    {AUTH_XOAUTH2, true,
	     "SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n",
	     "m1 AUTHENTICATE XOAUTH2 " XOAUTH2_IR "\r\n"},
	    {AUTH_AUTO, true, "SASL-IR] hi\r\n", NULL},
	    {AUTH_OAUTHBEARER, true, "SASL-IR AUTH=XOAUTH2] hi\r\n", NULL},
	    {AUTH_XOAUTH2, true, "SASL-IR AUTH=OAUTHBEARER] hi\r\n", NULL},
	    {AUTH_LOGIN, false, "SASL-IR] hi\r\n", "m1 LOGIN alice tok.en\r\n"},
	    {AUTH_AUTO, false, "SASL-IR AUTH=XOAUTH2] hi\r\n",
	     "m1 AUTHENTICATE PLAIN AGFsaWNlAHRvay5lbg==\r\n"},
	    {AUTH_LOGIN, false, "LOGINDISABLED] hi\r\n", NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct session_opts o = token_opts;
		struct rec r = {0};
		struct session *s;
		char greeting[256];

		o.auth = cases[i].auth;
		o.oauth2 = cases[i].oauth2;
		s = session_new(&o, &cb, &r);
		snprintf(greeting, sizeof(greeting), "%s%s", CAPS,
			 cases[i].caps);
		feed(s, &r, greeting);
		if (cases[i].want) {
			sent(&r, cases[i].want, "case %zu: the login", i);
		} else {
			ok(r.failed == 1 && r.why == SESSION_FAIL_TLS,
			   "case %zu: not offered: fails, not retried (%s)", i,
			   r.events);
			sent(&r, "", "nothing sent");
		}
		session_free(&s);
	}
}

/* Without SASL-IR, and the error challenge answered per mechanism. */
static void
test_exchange(void)
{
	struct session_opts o = token_opts;
	struct rec r = {0};
	struct session *s;

	/* XOAUTH2 without SASL-IR: the response after "+", then the error
	 * challenge gets an empty line, and the NO is a token failure. */
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "AUTH=XOAUTH2] hi\r\n");
	sent(&r, "m1 AUTHENTICATE XOAUTH2\r\n", "no SASL-IR: command alone");
	feed(s, &r, "+ \r\n");
	sent(&r, XOAUTH2_IR "\r\n", "the response after +");
	feed(s, &r, CHALLENGE_401);
	sent(&r, "\r\n", "XOAUTH2: an empty line answers the challenge");
	ok(!r.failed, "no failure before the NO");
	feed(s, &r, REFUSED);
	ok(r.failed == 1 && r.why == SESSION_FAIL_TOKEN,
	   "the NO: a token failure");
	ok(strstr(r.events, "login as alice with XOAUTH2 failed: NO "
			    "[AUTHENTICATIONFAILED] Authentication failed. "
			    "(status 401)") != NULL,
	   "the message names the mechanism and the status: %s", r.events);
	session_free(&s);

	/* OAUTHBEARER with SASL-IR: the challenge gets AQ==. */
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=OAUTHBEARER] hi\r\n");
	sent(&r, "m1 AUTHENTICATE OAUTHBEARER " OAUTHBEARER_IR "\r\n", "IR");
	feed(s, &r, "+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n");
	sent(&r, "AQ==\r\n", "OAUTHBEARER: AQ== answers the challenge");
	feed(s, &r, REFUSED);
	ok(r.failed == 1 && r.why == SESSION_FAIL_TOKEN &&
	       strstr(r.events, "(status invalid_token)"),
	   "the NO: a token failure with its status");
	session_free(&s);

	/* An empty challenge and one that is not base64 are answered too,
	 * and said so. */
	memset(&r, 0, sizeof(r));
	log_max_level = LOG_INFO;
	capture_begin("build/test_auth.stderr");
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=XOAUTH2] hi\r\n");
	r.sent[0] = '\0';
	feed(s, &r, "+ \r\n");
	sent(&r, "\r\n", "an empty challenge: answered");
	feed(s, &r, REFUSED);
	session_free(&s);
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=XOAUTH2] hi\r\n");
	r.sent[0] = '\0';
	feed(s, &r, "+ {not base64}\r\n");
	sent(&r, "\r\n", "a challenge not in base64: answered");
	feed(s, &r, REFUSED);
	ok(r.why == SESSION_FAIL_TOKEN, "then a token failure");
	session_free(&s);
	{
		char *out = capture_end();

		ok(strstr(out, "server refused the XOAUTH2 token: (an empty "
			       "challenge)") &&
		       strstr(out, "server refused the XOAUTH2 token: (not "
				   "base64: {not base64})"),
		   "both are said so in the log");
		free(out);
	}

	/* A second challenge is a protocol error. */
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=OAUTHBEARER] hi\r\n");
	feed(s, &r, CHALLENGE_401);
	r.sent[0] = '\0';
	feed(s, &r, CHALLENGE_401);
	ok(r.failed == 1 && r.why == SESSION_FAIL_PROTOCOL,
	   "a second challenge ends the session");
	session_free(&s);

	/* "Not now" codes stay a refusal for now, retried with back-off. */
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=XOAUTH2] hi\r\n");
	feed(s, &r,
	     "m1 NO [UNAVAILABLE] Temporary authentication failure.\r\n");
	ok(r.failed == 1 && r.why == SESSION_FAIL_REFUSED,
	   "NO [UNAVAILABLE] to a token: refused for now");
	session_free(&s);

	/* Accepted: EXAMINE follows, as with a password. */
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=XOAUTH2] hi\r\n");
	r.sent[0] = '\0';
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n");
	sent(&r, "m2 EXAMINE INBOX\r\n", "accepted: EXAMINE");
	ok(!r.failed, "no failure");
	is_str(r.events, "authenticated; ", "the owner is told at once");
	session_free(&s);
}

/* send_id: ID after login, pipelined with EXAMINE; a refusal is only
 * logged. */
static void
test_id(void)
{
	struct session_opts o = token_opts;
	struct rec r = {0};
	struct session *s;

	o.send_id = true;
	s = session_new(&o, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=XOAUTH2] hi\r\n");
	r.sent[0] = '\0';
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE ID] Logged in\r\n");
#define ID_START "m2 ID (\"name\" \"mailwatch\" \"version\" "
	ok(!strncmp(r.sent, ID_START, strlen(ID_START)) &&
	       strstr(r.sent, "\r\nm3 EXAMINE INBOX\r\n"),
	   "ID, then EXAMINE in the same write");
	r.sent[0] = '\0';
	feed(s, &r, "m2 BAD Unknown command\r\n");
	ok(!r.failed, "a refused ID ends nothing");
	feed(s, &r,
	     "* 0 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n"
	     "* OK [UIDNEXT 1] x\r\nm3 OK done\r\n");
	sent(&r, "m4 IDLE\r\n", "IDLE follows");
	session_free(&s);

	/* Off by default. */
	memset(&r, 0, sizeof(r));
	s = session_new(&token_opts, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=XOAUTH2] hi\r\n");
	r.sent[0] = '\0';
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE ID] Logged in\r\n");
	sent(&r, "m2 EXAMINE INBOX\r\n", "no ID without send_id");
	session_free(&s);
}

/* The -v trace: the login line redacted, the responses after "+" not
 * shown, the challenge decoded; never the token. */
static void
test_trace(void)
{
	struct rec r = {0};
	struct session *s;
	char *out;

	log_max_level = LOG_DEBUG;
	capture_begin("build/test_auth.stderr");
	s = session_new(&token_opts, &cb, &r);
	feed(s, &r, CAPS "SASL-IR AUTH=XOAUTH2] hi\r\n");
	feed(s, &r, CHALLENGE_401);
	feed(s, &r, REFUSED);
	session_free(&s);
	memset(&r, 0, sizeof(r));
	s = session_new(&token_opts, &cb, &r);
	feed(s, &r, CAPS "AUTH=OAUTHBEARER] hi\r\n");
	feed(s, &r, "+ \r\n");
	session_free(&s);
	out = capture_end();
	log_max_level = LOG_INFO;
	ok(strstr(out, "C: m1 <login AUTHENTICATE XOAUTH2, credentials "
		       "redacted>") &&
	       strstr(out, "C: <SASL response, credentials redacted>"),
	   "the login and the response are shown redacted");
	ok(strstr(out, "server refused the XOAUTH2 token: {\"status\":\"401\","
		       "\"schemes\":\"bearer\",\"scope\":\"mail\"}") &&
	       strstr(out, "C: <empty line>"),
	   "the challenge is logged decoded, the answer shown");
	ok(!strstr(out, TOKEN) && !strstr(out, XOAUTH2_IR) &&
	       !strstr(out, OAUTHBEARER_IR),
	   "neither the token nor its base64 response is in the trace");
	free(out);
}

int
main(void)
{
	test_responses();
	test_challenges();
	test_choice();
	test_exchange();
	test_id();
	test_trace();
	return tap_done();
}
