/* password: an account's password or OAuth2 access token, got on the
 * loop; see password.h.
 *
 * password_command (through /bin/sh) and oauth2_token_command (its argv,
 * no shell) run as a child (child.c): the job keeps the first line of its
 * output (the rest is read and dropped: closing the pipe early would kill
 * e.g. "pass show" with SIGPIPE) and ends when the command exits, when its
 * exit status and the first line decide. At the timeout the job ends with
 * NULL; freeing it kills the process group.
 *
 * The provider (cred_*) keeps a password once it came and runs the token
 * command for every request, one run serving every request made while it
 * runs. */
#include "password.h"
#include "child.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

unsigned password_timeout_ms = 30000;

/* The first line of output is kept in a buffer this large (with the
 * terminating NUL): a longer one is an error. */
#define PASSWORD_MAX 4096

struct password_job {
	void (*done)(void *ud, char *password); /* NULL once called */
	void *ud;
	char *account;		 /* the account's name, for log lines */
	const char *what;	 /* "password_command" or
				    "oauth2_token_command" (static) */
	const char *expected;	 /* "the password", "an access token" */
	bool token;		 /* oauth2_token_command */
	char *password;		 /* `password =`: a copy, wiped when freed */
	unsigned timeout_ms;	 /* password_timeout_ms at the start */
	struct child *child;	 /* password_command */
	sd_event_source *defer;	 /* `password =` */
	bool have_line;		 /* the first newline was read */
	bool long_line;		 /* the first line did not fit */
	size_t len;		 /* of the first line in line */
	char line[PASSWORD_MAX]; /* wiped when the job ends */
	char why[48];		 /* password_job_why() */
};

static struct log_ctx
job_ctx(const struct password_job *j)
{
	return (struct log_ctx){.account = j->account};
}

/* Ends the job: hands pw (owned; NULL after a logged failure) to done.
 * Must be the last thing a callback does with j: done may free it. */
static void
finish(struct password_job *j, char *pw)
{
	void (*done)(void *ud, char *password) = j->done;

	j->done = NULL;
	j->defer = sd_event_source_disable_unref(j->defer);
	explicit_bzero(j->line, sizeof(j->line));
	j->len = 0;
	if (done) {
		done(j->ud, pw);
	} else if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
}

/* The password from a command that exited, or NULL after logging why
 * not. */
static char *
command_result(struct password_job *j, const siginfo_t *si)
{
	struct log_ctx ctx = job_ctx(j);
	bool nul;

	/* A CRLF line end (a helper written for another system) is not
	 * part of the secret, nor is blank space around a token, which has
	 * none: a trial's server refused both, and nothing said why. */
	if (j->len && j->line[j->len - 1] == '\r')
		j->len--;
	while (j->token && j->len &&
	       (j->line[j->len - 1] == ' ' || j->line[j->len - 1] == '\t'))
		j->len--;
	j->line[j->len] = '\0';
	if (j->token) {
		size_t lead = strspn(j->line, " \t");

		memmove(j->line, j->line + lead, j->len - lead + 1);
		j->len -= lead;
	}
	nul = strlen(j->line) != j->len;
	if (si->si_code != CLD_EXITED) {
		snprintf(j->why, sizeof(j->why), "killed by signal %d",
			 si->si_status);
		log_err(&ctx, "%s was killed by signal %d (%s)", j->what,
			si->si_status, strsignal(si->si_status));
	} else if (si->si_status != 0) {
		snprintf(j->why, sizeof(j->why), "exit status %d",
			 si->si_status);
		log_err(&ctx, "%s failed with exit status %d", j->what,
			si->si_status);
	} else if (j->long_line) {
		snprintf(j->why, sizeof(j->why), "a first line too long");
		log_err(&ctx,
			"%s: first line of output is longer than %d bytes "
			"(exit status 0)",
			j->what, PASSWORD_MAX - 1);
	} else if (nul) {
		snprintf(j->why, sizeof(j->why), "a NUL byte in its output");
		log_err(&ctx, "%s: output holds a NUL byte (exit status 0)",
			j->what);
	} else if (!j->len) {
		snprintf(j->why, sizeof(j->why), "%s",
			 j->have_line ? "an empty first line" : "no output");
		log_err(&ctx,
			"%s printed %s (exit status 0); expected %s on the "
			"first line",
			j->what,
			j->have_line ? "an empty first line" : "nothing",
			j->expected);
	} else {
		return xstrdup(j->line);
	}
	return NULL;
}

/* Takes output into the first line until its newline; the byte after a
 * full line says whether it was too long. The child passes no more than
 * PASSWORD_MAX bytes, enough to tell. */
static void
on_output(void *ud, const char *buf, size_t n)
{
	struct password_job *j = ud;
	size_t room = sizeof(j->line) - 1 - j->len;
	const char *nl;

	if (!buf || j->have_line || j->long_line)
		return;
	nl = memchr(buf, '\n', n < room ? n : room);
	if (nl) {
		memcpy(j->line + j->len, buf, (size_t)(nl - buf));
		j->len += (size_t)(nl - buf);
		j->have_line = true;
	} else if (n <= room) {
		memcpy(j->line + j->len, buf, n);
		j->len += n;
	} else {
		/* The line is full: unless it ends right here it is too
		 * long. */
		memcpy(j->line + j->len, buf, room);
		j->len += room;
		if (buf[room] == '\n')
			j->have_line = true;
		else
			j->long_line = true;
	}
}

static void
on_child(void *ud, enum child_event ev, const siginfo_t *si)
{
	struct password_job *j = ud;
	struct log_ctx ctx = job_ctx(j);

	if (!j->done)
		return; /* ended: what is left is the owner's to free */
	if (ev == CHILD_EXITED) {
		finish(j, command_result(j, si));
	} else if (ev == CHILD_TERM) {
		if (j->timeout_ms % 1000)
			log_err(&ctx,
				"%s did not finish within %u ms; killed it",
				j->what, j->timeout_ms);
		else
			log_err(&ctx,
				"%s did not finish within %u s; killed it",
				j->what, j->timeout_ms / 1000);
		snprintf(j->why, sizeof(j->why), "no answer in %u s",
			 (j->timeout_ms + 999) / 1000);
		/* The owner frees the job, which kills the group. */
		finish(j, NULL);
	}
}

/* A line the command wrote on stderr: "ACCOUNT: password_command: ...". */
static void
on_error_line(void *ud, const char *line)
{
	struct password_job *j = ud;
	struct log_ctx ctx = job_ctx(j);

	log_warn(&ctx, "%s: %s", j->what, line);
}

static const struct child_ops command_ops = {
    .output = on_output,
    .error_line = on_error_line,
    .event = on_child,
};

static int
on_defer(sd_event_source *s, void *ud)
{
	struct password_job *j = ud;
	char *pw = j->password;

	(void)s;
	j->password = NULL;
	finish(j, pw);
	return 0;
}

/* Runs argv (password_command: /bin/sh -c line). Returns 0, or a
 * negative errno after logging why. */
static int
start_command(sd_event *e, struct password_job *j, char *const *argv,
	      const char *name)
{
	struct child_spec spec = {
	    .argv = argv,
	    .envp = environ,
	    /* Its stderr is logged line by line under the account's name:
	     * the command may say why it failed, and a trial could not tell
	     * which account's helper said what. */
	    .with_stderr = false,
	    .error_lines = true,
	    .yield = true, /* a login waits for it */
	    .timeout = password_timeout_ms * UINT64_C(1000),
	    .cap = PASSWORD_MAX,
	    .name = name,
	    .ctx = job_ctx(j),
	};
	int r;

	j->timeout_ms = password_timeout_ms;
	r = child_start(e, &spec, &command_ops, j, &j->child);
	if (r < 0)
		return r;
	log_debug(&spec.ctx, "%s started (pid %d)", j->what,
		  child_pid(j->child));
	return 0;
}

int
password_job_new(sd_event *e, const struct account *a,
		 void (*done)(void *ud, char *password), void *ud,
		 struct password_job **j_r)
{
	struct log_ctx ctx = {.account = a->name};
	struct password_job *j;
	int r;

	if (!a->password && !a->password_command && !a->oauth2_token_command) {
		log_err(&ctx, "neither password, password_command nor "
			      "oauth2_token_command is set");
		return -EINVAL;
	}
	j = xcalloc(1, sizeof(*j));
	j->done = done;
	j->ud = ud;
	j->account = a->name ? xstrdup(a->name) : NULL;
	j->what = a->oauth2_token_command ? "oauth2_token_command"
					  : "password_command";
	j->token = a->oauth2_token_command != NULL;
	j->expected = j->token ? "an access token" : "the password";
	if (a->oauth2_token_command) {
		r = start_command(e, j, a->oauth2_token_command,
				  "oauth2_token_command");
	} else if (a->password) {
		j->password = xstrdup(a->password);
		r = sd_event_add_defer(e, &j->defer, on_defer, j);
		if (r < 0)
			log_err(&ctx, "password: cannot add a defer source: %s",
				strerror(-r));
	} else {
		char *argv[] = {"/bin/sh", "-c", a->password_command, NULL};

		r = start_command(e, j, argv, "password_command: /bin/sh");
	}
	if (r < 0) {
		password_job_free(&j);
		return r;
	}
	*j_r = j;
	return 0;
}

const char *
password_job_why(const struct password_job *j)
{
	return j->why;
}

void
password_job_free(struct password_job **jp)
{
	struct password_job *j = *jp;

	if (!j)
		return;
	child_free(&j->child);
	sd_event_source_disable_unref(j->defer);
	explicit_bzero(j->line, sizeof(j->line));
	if (j->password) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	free(j->account);
	free(j);
	*jp = NULL;
}

/* ---- the provider ---- */

struct cred_req {
	struct cred *c;
	void (*done)(void *ud, const char *secret);
	void *ud;
	struct cred_req *next;
};

struct cred {
	sd_event *e;
	struct account a;	  /* the keys a job reads: copies */
	bool token;		  /* oauth2_token_command */
	char *password;		  /* kept once got; wiped when freed */
	bool worked;		  /* a connection logged in with it */
	bool refused;		  /* a login with it was refused for good */
	char why[48];		  /* cred_failure() */
	struct password_job *job; /* running for reqs */
	struct cred_req *reqs;	  /* waiting, oldest first */
	struct cred_req *current; /* answered: its login under way */
	sd_event_source *defer;	  /* answers reqs from password */
};

/* Answers the oldest waiting request with secret, which makes it the
 * login under way; with NULL (failed), every waiting request. A request
 * made from a callback waits for the next answer; a callback must not
 * cancel another request. */
static void
answer(struct cred *c, const char *secret)
{
	struct cred_req *r = c->reqs;

	if (secret && r) {
		c->reqs = r->next;
		c->current = r;
		r->done(r->ud, secret);
		return;
	}
	c->reqs = NULL;
	while (r) {
		struct cred_req *next = r->next;

		r->done(r->ud, NULL);
		free(r);
		r = next;
	}
}

static void serve(struct cred *c);

static void
on_job(void *ud, char *secret)
{
	struct cred *c = ud;

	snprintf(c->why, sizeof(c->why), "%s", password_job_why(c->job));
	password_job_free(&c->job);
	if (secret && !c->token) {
		c->password = secret;
		secret = NULL;
		answer(c, c->password);
	} else {
		answer(c, secret);
	}
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	serve(c);
}

static int
on_cred_defer(sd_event_source *s, void *ud)
{
	struct cred *c = ud;

	(void)s;
	answer(c, c->password); /* NULL: the job could not start */
	return 0;
}

/* Gets the credential for the oldest waiting request, unless a login is
 * under way: the password kept, or a job. */
static void
serve(struct cred *c)
{
	if (c->job || c->current || !c->reqs)
		return;
	if (c->password || c->refused) { /* refused: no password kept */
		sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
		return;
	}
	if (password_job_new(c->e, &c->a, on_job, c, &c->job) < 0) {
		snprintf(c->why, sizeof(c->why), "could not start");
		sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
	}
}

struct cred *
cred_new(sd_event *e, const struct account *a, char *password)
{
	struct cred *c = xcalloc(1, sizeof(*c));

	c->e = sd_event_ref(e);
	c->a.name = a->name ? xstrdup(a->name) : NULL;
	c->a.password = a->password ? xstrdup(a->password) : NULL;
	c->a.password_command =
	    a->password_command ? xstrdup(a->password_command) : NULL;
	c->a.oauth2_token_command = config_argv_dup(a->oauth2_token_command);
	c->token = a->oauth2_token_command != NULL;
	c->password = password;
	if (sd_event_add_defer(e, &c->defer, on_cred_defer, c) < 0 ||
	    sd_event_source_set_enabled(c->defer, SD_EVENT_OFF) < 0)
		abort();
	return c;
}

static void
wipe_str(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void
cred_free(struct cred **cp)
{
	struct cred *c = *cp;

	if (!c)
		return;
	password_job_free(&c->job);
	while (c->reqs) {
		struct cred_req *r = c->reqs;

		c->reqs = r->next;
		free(r);
	}
	free(c->current);
	sd_event_source_disable_unref(c->defer);
	sd_event_unref(c->e);
	wipe_str(&c->password);
	wipe_str(&c->a.password);
	wipe_str(&c->a.password_command);
	config_argv_free(&c->a.oauth2_token_command);
	free(c->a.name);
	free(c);
	*cp = NULL;
}

void
cred_worked(struct cred *c)
{
	c->worked = true;
}

bool
cred_has_worked(const struct cred *c)
{
	return c->worked;
}

void
cred_refused(struct cred *c)
{
	c->refused = true;
	wipe_str(&c->password);
}

bool
cred_was_refused(const struct cred *c)
{
	return c->refused;
}

const char *
cred_failure(const struct cred *c)
{
	return c->refused ? "" : c->why;
}

bool
cred_is_token(const struct cred *c)
{
	return c->token;
}

bool
cred_running(const struct cred *c)
{
	return c->job != NULL;
}

struct cred_req *
cred_ask(struct cred *c, void (*done)(void *ud, const char *secret), void *ud)
{
	struct cred_req *r = xcalloc(1, sizeof(*r)), **tail = &c->reqs;

	r->c = c;
	r->done = done;
	r->ud = ud;
	while (*tail)
		tail = &(*tail)->next;
	*tail = r;
	serve(c);
	return r;
}

void
cred_cancel(struct cred_req **rp)
{
	struct cred_req *r = *rp, **p;

	if (!r)
		return;
	if (r == r->c->current) {
		r->c->current = NULL;
		serve(r->c);
	}
	for (p = &r->c->reqs; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	free(r);
	*rp = NULL;
}
