/* password: gets an account's credential on the sd-event loop without
 * blocking it: the configured password, the first line of
 * password_command's output, or an OAuth2 access token, the first line of
 * oauth2_token_command's output. A job gets one; the provider (cred_*)
 * is what an account's connections ask before each login. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"

struct password_job;

/* Starts getting the credential of a. oauth2_token_command is run as it
 * was split (argv, no shell), as password_command is otherwise.
 *
 * password_command is run with /bin/sh
 * -c as a child (child.h): stdin /dev/null, stdout on a pipe read by the
 * loop, stderr inherited, in a process group of its own. The password is
 * the first line of its output once the shell exited with status 0; what
 * it left running in its group is killed when the job is freed. After
 * password_timeout_ms the job fails, and the group gets SIGTERM. With
 * `password =` nothing is run, and the password still comes from the loop
 * (a defer source).
 *
 * a is only read during the call (what the job needs is copied); e is
 * referenced. done(ud, password) is called once, from the loop, unless the
 * job is freed first: password is a new string the callee owns (wipe it
 * with explicit_bzero, then free), or NULL after the failure was logged.
 * The password and the command's output are never logged. done may free
 * the job; otherwise the owner frees it later.
 *
 * Returns 0 and the job in *j_r, or a negative errno after logging why
 * (then *j_r is untouched and done is never called). Does not block. */
int password_job_new(sd_event *e, const struct account *a,
		     void (*done)(void *ud, char *password), void *ud,
		     struct password_job **j_r);

/* After done(ud, NULL): why the job failed, in a few words ("exit status
 * 2", "no output"), for a status line; "" before. Valid until the job is
 * freed. */
const char *password_job_why(const struct password_job *j);

/* Frees *j (NULL is fine) and sets it to NULL; done is not called after
 * this. What is left of the command's process group is killed, and a
 * command still running is reaped (after SIGKILL, so the wait is
 * short). */
void password_job_free(struct password_job **j);

/* How long password_command may run, in milliseconds (default 30000). Only
 * tests change it; it applies to jobs started afterwards. */
extern unsigned password_timeout_ms;

/* An account's credential provider. */
struct cred;
/* One request to it, until answered or cancelled. */
struct cred_req;

/* Creates the provider of a's credential (a is read during the call
 * only: what it needs is copied; e is referenced). password, if given, is
 * the password already got (taken over; NULL for a token account, or to
 * get it at the first request). */
struct cred *cred_new(sd_event *e, const struct account *a, char *password);
/* Frees *c (NULL is fine) and sets it to NULL: a command still running is
 * killed, the password wiped. No request may be left. */
void cred_free(struct cred **c);
/* True when the credential is an OAuth2 access token. */
bool cred_is_token(const struct cred *c);
/* True while oauth2_token_command (or password_command) runs for a
 * request. */
bool cred_running(const struct cred *c);
/* A connection logged in with the credential; cred_has_worked() says so
 * from then on. */
void cred_worked(struct cred *c);
bool cred_has_worked(const struct cred *c);
/* A login with the credential was refused for good (a wrong password):
 * it is not sent again. Requests waiting and later ones are answered
 * with NULL, and cred_was_refused() says why. */
void cred_refused(struct cred *c);
bool cred_was_refused(const struct cred *c);
/* Why the last request answered with NULL got nothing (see
 * password_job_why()); "" when it was refused (cred_was_refused()) or
 * none was. */
const char *cred_failure(const struct cred *c);

/* Asks for the credential: done(ud, secret) is called once, from the loop
 * and never from within this call, with secret borrowed for the call
 * (copy it; it is wiped afterwards), or NULL after the failure was logged.
 * A password is got once and kept; a token is asked of
 * oauth2_token_command for each login (the helper refreshes it).
 *
 * One login at a time: the requests are answered in turn, each once the
 * login of the one before is over, i.e. once that request is cancelled.
 * So the server counts the account's connections one by one: a limit on
 * them is met exactly, not by several logins at once (Dovecot let five
 * simultaneous logins through at a limit of three).
 *
 * Returns the request. cred_cancel() withdraws it until done is called;
 * after done with a secret, the request stands for the login under way,
 * and cred_cancel() ends it (call it when the login succeeded or the
 * connection ended); after done with NULL it is gone (do not cancel). */
struct cred_req *cred_ask(struct cred *c, void (*done)(void *ud,
						       const char *secret),
			  void *ud);
/* Withdraws *r or ends its login (NULL is fine) and sets it to NULL; done
 * is not called. */
void cred_cancel(struct cred_req **r);
