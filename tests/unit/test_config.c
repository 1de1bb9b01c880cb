/* Unit tests for config.c: loading, defaults, overrides, every error class
 * with its file:line, the password file-mode warning and config_split_argv
 * (password_command is tested in test_password.c). Files live in a mkdtemp
 * directory that is removed at the end; stderr is captured around each call
 * that logs. */
#include "config.h"
#include "capture.h"
#include "tap.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A certificate for ca_file, which must load (self-signed, valid until
 * 2126; made with openssl req -x509). */
static const char test_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlzCCAT2gAwIBAgIUMPQsMk0T2s4J3q7rPnQU5w8zQuUwCgYIKoZIzj0EAwIw\n"
    "IDEeMBwGA1UEAwwVbWFpbHdhdGNoIGNvbmZpZyB0ZXN0MCAXDTI2MTIwNzAyMjcz\n"
    "MVoYDzIxMjYxMTEzMDIyNzMxWjAgMR4wHAYDVQQDDBVtYWlsd2F0Y2ggY29uZmln\n"
    "IHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATa4Q4aanqMB2FxS1RxV3Bj\n"
    "R1mKZ1n8cEu05J4TLjpWCEOqU/9yDQJhS1qjUC8oRPf4Y8FMaPYOhQ9Q0uWoBIrZ\n"
    "o1MwUTAdBgNVHQ4EFgQUpiZuXCcH402UFPkJE9nc0j/cruMwHwYDVR0jBBgwFoAU\n"
    "piZuXCcH402UFPkJE9nc0j/cruMwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD\n"
    "AgNIADBFAiEA7AHoSjNXGSt0MG/lpnFH7g6C4E594A4JZa0p/Oks4JkCIHEgzLcj\n"
    "rrPe4mb3TvE3CSN10PubuS3om6aweHcj29QP\n"
    "-----END CERTIFICATE-----\n";

static char dir[] = "/tmp/mailwatch-test-config-XXXXXX";
static char *created[64];
static size_t n_created;
static char *cap_path;

/* Writes content to dir/name with mode; returns the path (owned here). */
static const char *
write_file(const char *name, mode_t mode, const char *content)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	size_t i;

	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(content, f);
	fclose(f);
	chmod(path, mode);
	for (i = 0; i < n_created; i++)
		if (!strcmp(created[i], path))
			break;
	if (i < n_created) {
		free(path);
		return created[i];
	}
	created[n_created++] = path;
	return path;
}

static int
load(const char *path, struct config **cfg, char **out)
{
	int r;

	*cfg = NULL;
	capture_begin(cap_path);
	r = config_load(path, cfg);
	*out = capture_end();
	return r;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* True when argv holds exactly the NULL-terminated words in ap. */
static bool
argv_matches(char **argv, va_list ap)
{
	const char *w;
	size_t i = 0;
	bool same = argv != NULL;

	while ((w = va_arg(ap, const char *))) {
		if (same && (!argv[i] || strcmp(argv[i], w)))
			same = false;
		if (same)
			i++;
	}
	return same && !argv[i];
}

static void
print_argv(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		printf(" [%s]", argv[i]);
	putchar('\n');
}

static bool
argv_is(char **argv, ...)
{
	va_list ap;
	bool same;

	va_start(ap, argv);
	same = argv_matches(argv, ap);
	va_end(ap);
	if (!same && argv) {
		printf("#   got:");
		print_argv(argv);
	}
	return same;
}

/* ---- loading ---- */

static void
test_full(void)
{
	const char *ca = write_file("ca.pem", 0644, test_pem);
	char *text =
	    xasprintf("; mailwatch test configuration\n"
		      "# every key\n"
		      "[general]\n"
		      "notify = no\n"
		      "on_new_mail = /usr/bin/hook --flag \"two words\"\n"
		      "on_new_mail_post = /usr/bin/post\n"
		      "on_click = xdg-open 'https://mail.example.org/'\n"
		      "hook_timeout = 12\n"
		      "idle_timeout = 1740\n"
		      "poll_interval = 120\n"
		      "catch_up = summary\n"
		      "catch_up_max = 5\n"
		      "icon = mail-unread\n"
		      "urgency = critical\n"
		      "log_level = debug\n"
		      "\n"
		      "[account work]\n"
		      "host = imap.example.org\n"
		      "port = 1993\n"
		      "tls = starttls\n"
		      "ca_file = %s\n"
		      "username = me@example.org\n"
		      "password_command = pass show mail/work\n"
		      "mailboxes = INBOX, Lists/dev ,\xc3\x9c"
		      "ber, inbox.sub\n"
		      "on_new_mail = /bin/true\n"
		      "on_new_mail_post =\n"
		      "on_click = /bin/echo clicked\n"
		      "notify = yes\n"
		      "hook_timeout = 3\n"
		      "idle_timeout = 600\n"
		      "poll_interval = 30\n"
		      "catch_up = skip\n"
		      "catch_up_max = 0\n"
		      "icon = /usr/share/icons/work.png\n"
		      "urgency = low\n"
		      "\n"
		      "[account home]\n"
		      "host = mail.example.net\n"
		      "tls = none\n"
		      "username = me\n"
		      "password = hunter2 ; not part of it\n",
		      ca);
	const char *path = write_file("full.ini", 0600, text);
	struct config *cfg;
	struct account *w, *h;
	char *out;
	size_t lines = 0;
	int r;

	free(text);
	r = load(path, &cfg, &out);
	is_int(r, 0, "full: loads");
	for (const char *q = out; *q; q++)
		lines += *q == '\n';
	ok(lines == 4 && strstr(out, "full.ini:39: [account home]: tls = none: "
				     "the login and the mail's headers cross "
				     "the network to mail.example.net in "
				     "clear\n"),
	   "full: the warning of tls = none to a host elsewhere, naming the "
	   "line");
	ok(strstr(out, ": on_new_mail: /usr/bin/hook: No such file or "
		       "directory; it cannot run as things are\n") &&
	       strstr(out, ": on_new_mail_post: /usr/bin/post: No such file"),
	   "full: and the two hooks that are not there");
	ok(strstr(out, "full.ini:41: password: the text from ' ;' on is a "
		       "comment") && !strstr(out, "hunter2"),
	   "full: and the comment after the password, which may have been "
	   "part of it");
	if (r < 0) {
		free(out);
		return;
	}
	is_str(cfg->path, path, "full: path");
	is_int(cfg->log_level, LOG_DEBUG, "full: log_level");
	ok(!cfg->d.notify, "general notify = no");
	ok(argv_is(cfg->d.on_new_mail, "/usr/bin/hook", "--flag", "two words",
		   NULL),
	   "general on_new_mail split");
	ok(argv_is(cfg->d.on_new_mail_post, "/usr/bin/post", NULL),
	   "general on_new_mail_post");
	ok(argv_is(cfg->d.on_click, "xdg-open", "https://mail.example.org/",
		   NULL),
	   "general on_click");
	is_int(cfg->d.hook_timeout, 12, "general hook_timeout");
	is_int(cfg->d.idle_timeout, 1740, "general idle_timeout");
	is_int(cfg->d.poll_interval, 120, "general poll_interval");
	is_int(cfg->d.catch_up, CATCH_UP_SUMMARY, "general catch_up");
	is_int(cfg->d.catch_up_max, 5, "general catch_up_max");
	is_str(cfg->d.icon, "mail-unread", "general icon");
	is_int(cfg->d.urgency, 2, "general urgency");

	is_int(cfg->n_accounts, 2, "two accounts");
	w = &cfg->accounts[0];
	h = &cfg->accounts[1];
	is_str(w->name, "work", "work: name");
	is_int(w->line, 17, "work: header line");
	is_str(w->host, "imap.example.org", "work: host");
	is_int(w->port, 1993, "work: port");
	is_int(w->tls, TLS_STARTTLS, "work: tls");
	is_str(w->ca_file, ca, "work: ca_file");
	is_str(w->username, "me@example.org", "work: username");
	ok(!w->password, "work: no password");
	is_str(w->password_command, "pass show mail/work",
	       "work: password_command");
	is_int(w->n_mailboxes, 4, "work: 4 mailboxes");
	ok(argv_is(w->mailboxes, "INBOX", "Lists/dev",
		   "\xc3\x9c"
		   "ber",
		   "inbox.sub", NULL),
	   "work: mailboxes trimmed, UTF-8 kept");
	ok(argv_is(w->d.on_new_mail, "/bin/true", NULL),
	   "work: on_new_mail overrides");
	ok(!w->d.on_new_mail_post, "work: empty on_new_mail_post is none");
	ok(argv_is(w->d.on_click, "/bin/echo", "clicked", NULL),
	   "work: on_click");
	ok(w->d.notify, "work: notify overrides");
	is_int(w->d.hook_timeout, 3, "work: hook_timeout");
	is_int(w->d.idle_timeout, 600, "work: idle_timeout");
	is_int(w->d.poll_interval, 30, "work: poll_interval");
	is_int(w->d.catch_up, CATCH_UP_SKIP, "work: catch_up");
	is_int(w->d.catch_up_max, 0, "work: catch_up_max");
	is_str(w->d.icon, "/usr/share/icons/work.png", "work: icon");
	is_int(w->d.urgency, 0, "work: urgency");

	is_str(h->name, "home", "home: name");
	is_int(h->port, 143, "home: tls=none defaults to port 143");
	is_int(h->tls, TLS_NONE, "home: tls");
	ok(!h->ca_file, "home: system CA store");
	is_str(h->password, "hunter2", "home: password, comment stripped");
	ok(!h->password_command, "home: no password_command");
	ok(argv_is(h->mailboxes, "INBOX", NULL), "home: default INBOX");
	ok(!h->d.notify, "home: inherits notify");
	ok(argv_is(h->d.on_new_mail, "/usr/bin/hook", "--flag", "two words",
		   NULL),
	   "home: inherits on_new_mail");
	ok(h->d.on_new_mail != cfg->d.on_new_mail, "home: argv is a copy");
	is_int(h->d.hook_timeout, 12, "home: inherits hook_timeout");
	is_int(h->d.catch_up, CATCH_UP_SUMMARY, "home: inherits catch_up");
	is_str(h->d.icon, "mail-unread", "home: inherits icon");
	is_int(h->d.urgency, 2, "home: inherits urgency");
	config_free(&cfg);
	ok(!cfg, "config_free clears the pointer");
	free(out);
}

/* A long mailboxes list goes on in lines indented further than the key;
 * lines indented alike are keys. */
static void
test_continuation(void)
{
	const char *path = write_file("cont.ini", 0600,
				      "[account a]\n"
				      "host = h\n"
				      "mailboxes = INBOX, A,\n"
				      "  B ; a comment\n"
				      "; a comment line between\n"
				      "\t[Gmail]/Sent Mail,\n"
				      "    C, D\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "\n"
				      "  [account b]\n"
				      "  host = h\n"
				      "  username = u\n"
				      "  password_command = echo pw\n"
				      "  mailboxes =\n"
				      "      X,\n"
				      "      Y\n"
				      "  notify = no\n");
	struct config *cfg;
	char *out;
	int r;

	r = load(path, &cfg, &out);
	is_int(r, 0, "continuation: loads");
	is_str(out, "", "continuation: nothing logged");
	free(out);
	if (r < 0)
		return;
	ok(argv_is(cfg->accounts[0].mailboxes, "INBOX", "A", "B",
		   "[Gmail]/Sent Mail", "C", "D", NULL) &&
	       cfg->accounts[0].n_mailboxes == 6,
	   "continuation: indented lines add to mailboxes, comments skipped");
	is_str(cfg->accounts[0].username, "u",
	       "continuation: a line not indented ends the list");
	ok(argv_is(cfg->accounts[1].mailboxes, "X", "Y", NULL),
	   "continuation: the list may start in the line after 'mailboxes ='");
	is_str(cfg->accounts[1].password_command, "echo pw",
	       "continuation: keys indented alike are keys");
	ok(!cfg->accounts[1].d.notify,
	   "continuation: the line after the list is a key");
	config_free(&cfg);
}

static void
test_continuation_errors(void)
{
	const char *path = write_file("cont-err.ini", 0600,
				      "[account a]\n"		       /* 1 */
				      "host = h\n"		       /* 2 */
				      "username = u\n"		       /* 3 */
				      "  password_command = echo pw\n" /* 4 */
				      "    more\n"		       /* 5 */
				      "password = p\n"		       /* 6 */
				      "mailboxes = INBOX\n"	       /* 7 */
				      "mailboxes = Other\n"	       /* 8 */
				      "   Skipped\n"		       /* 9 */
				      "[account b]\n"		       /* 10 */
				      "host = h\n"		       /* 11 */
				      "username = u\n"		       /* 12 */
				      "password = p\n"		       /* 13 */
				      "mailboxes = A,\n"	       /* 14 */
				      "  B\n"			       /* 15 */
				      "  A\n"			       /* 16 */
				      "\n"			       /* 17 */
				      "  C\n"			       /* 18 */
				      "colour = x\n"		       /* 19 */
				      "  D\n"			       /* 20 */
				      "[account c]\n"		       /* 21 */
				      "host = h\n"		       /* 22 */
				      "username = u\n"		       /* 23 */
				      "password = p\n"		       /* 24 */
				      "mailboxes =\n"		       /* 25 */
				      "; nothing follows\n"	       /* 26 */
				      "notify2 = x\n"		       /* 27 */
				      "  icon = y\n"		       /* 28 */
				      "  burst = 3\n");	       /* 29 */
	struct config *cfg;
	char *out;
	int r;

	r = load(path, &cfg, &out);
	is_int(r, -EINVAL, "continuation errors: -EINVAL");
	has(out,
	    "%s:4: indented line continues 'username', which takes one "
	    "line (only mailboxes and ignore_mailboxes may go on over several "
	    "lines)",
	    path);
	has(out,
	    "%s:8: duplicate key 'mailboxes' (first set on line 7): "
	    "continue the list in indented lines",
	    path);
	has(out, "%s:16: mailboxes: duplicate mailbox 'A'", path);
	has(out, "%s:18: expected 'key = value'", path);
	has(out, "%s:19: unknown key 'colour'", path);
	has(out, "%s:25: mailboxes: empty value", path);
	/* Keys indented under an unknown one (a trial's): the first told. */
	has(out, "%s:27: unknown key 'notify2'", path);
	has(out,
	    "%s:28: indented line continues 'notify2', which is no key (a "
	    "key of its own is not indented further than the line above)",
	    path);
	is_int(count_lines(out), 8,
	       "continuation errors: one message per problem, none for the "
	       "lines that go on a reported one");
	free(out);
}

static void
test_defaults(void)
{
	const char *path = write_file("defaults.ini", 0600,
				      "[account a]\n"
				      "host = h\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "[account b]\n"
				      "host = h2\n"
				      "tls = STARTTLS\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "[account c]\n"
				      "host = 127.0.0.1\n"
				      "tls = none\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "[account d]\n"
				      "host = localhost\n"
				      "tls = none\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "[account e]\n"
				      "host = LOCALHOST.\n"
				      "tls = none\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "[account f]\n"
				      "host = 0:0:0:0:0:0:0:1\n"
				      "tls = none\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "[account g]\n"
				      "host = ::ffff:127.0.0.2\n"
				      "tls = none\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "[account h]\n"
				      "host = 127.1\n"
				      "tls = none\n"
				      "username = u\n"
				      "password_command = echo pw\n");
	struct config *cfg;
	struct account *a;
	char *out;
	int r;

	r = load(path, &cfg, &out);
	is_int(r, 0, "defaults: loads");
	is_str(out, "", "defaults: nothing logged (tls = none to this "
			"machine included)");
	if (r < 0) {
		free(out);
		return;
	}
	is_int(cfg->log_level, LOG_INFO, "default log_level info");
	a = &cfg->accounts[0];
	is_int(a->port, 993, "default port 993");
	is_int(a->tls, TLS_IMPLICIT, "default tls implicit");
	ok(!a->ca_file, "default ca_file NULL");
	ok(argv_is(a->mailboxes, "INBOX", NULL), "default mailboxes INBOX");
	is_int(a->n_mailboxes, 1, "default n_mailboxes 1");
	ok(a->d.notify, "default notify yes");
	ok(!a->d.on_new_mail && !a->d.on_new_mail_post && !a->d.on_click,
	   "default hooks unset");
	is_int(a->d.hook_timeout, 30, "default hook_timeout");
	is_int(a->d.idle_timeout, 1500, "default idle_timeout");
	is_int(a->d.poll_interval, 60, "default poll_interval");
	is_int(a->d.max_connections, 5, "default max_connections");
	is_int(a->d.catch_up, CATCH_UP_NOTIFY, "default catch_up");
	is_int(a->d.catch_up_max, 10, "default catch_up_max");
	ok(!a->d.icon, "default icon NULL");
	is_int(a->d.urgency, 1, "default urgency normal");
	is_int(cfg->accounts[1].port, 143, "starttls defaults to port 143");
	is_int(cfg->accounts[1].tls, TLS_STARTTLS, "enum values ignore case");
	config_free(&cfg);
	free(out);
}

static void
test_override_order(void)
{
	const char *path = write_file("order.ini", 0600,
				      "[account early]\n"
				      "host = h\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "notify = off\n"
				      "on_new_mail =   ; none for this one\n"
				      "\n"
				      "[general]\n"
				      "notify = on\n"
				      "on_new_mail = /bin/true general\n"
				      "hook_timeout = 5\n"
				      "\n"
				      "[account late]\n"
				      "  host = h2\n"
				      "  username: u\n"
				      "  password_command = echo pw\n"
				      "hook_timeout = 7\n");
	struct config *cfg;
	char *out;
	int r;

	r = load(path, &cfg, &out);
	is_int(r, 0, "order: loads");
	is_str(out, "", "order: nothing logged");
	if (r < 0) {
		free(out);
		return;
	}
	ok(!cfg->accounts[0].d.notify,
	   "account before [general] keeps its override");
	ok(!cfg->accounts[0].d.on_new_mail,
	   "empty value (with comment) overrides the general hook with none");
	is_int(cfg->accounts[0].d.hook_timeout, 5,
	       "account before [general] still inherits");
	ok(cfg->accounts[1].d.notify, "account after [general] inherits");
	ok(argv_is(cfg->accounts[1].d.on_new_mail, "/bin/true", "general",
		   NULL),
	   "account after [general] inherits on_new_mail");
	is_int(cfg->accounts[1].d.hook_timeout, 7, "account overrides");
	is_str(cfg->accounts[1].username, "u", "'key: value' is accepted");
	is_str(cfg->accounts[1].password_command, "echo pw",
	       "an indented line is a key, not a continuation");
	config_free(&cfg);
	free(out);
}

struct bad_line {
	const char *text;
	const char *msg[2]; /* expected after "PATH:LINE: "; NULL: none */
};

static void
test_errors(void)
{
	static char long_line[4200];
	const struct bad_line lines[] = {
	    {"early = 1", {"key 'early' outside of a section"}},
	    {"[general]", {NULL}},
	    {"notify = maybe",
	     {"invalid value 'maybe' for notify: expected yes or no"}},
	    {"hook_timeout = -1",
	     {"invalid value '-1' for hook_timeout: expected a whole "
	      "number"}},
	    {"idle_timeout = 1741",
	     {"idle_timeout: 1741 is out of range (1..1740)"}},
	    {"log_level = loud",
	     {"invalid value 'loud' for log_level: expected error, "
	      "warning, info or debug"}},
	    {"host = x",
	     {"key 'host' is not allowed in [general] (only in [account "
	      "NAME])"}},
	    {"colour = blue", {"unknown key 'colour' in [general]"}},
	    {"notify = yes", {"duplicate key 'notify' (first set on line 3)"}},
	    {"this is not a key", {"expected 'key = value'"}},
	    {"[bogus]", {"unknown section [bogus]"}},
	    {"ignored = 1", {NULL}},
	    {"[account]", {"missing account name: use [account NAME]"}},
	    {"[account bad/name]", {"invalid account name 'bad/name'"}},
	    {"[account a]", {"[account a]: missing required key 'host'"}},
	    {"port = 0", {"port: 0 is out of range (1..65535)"}},
	    {"tls = ssl",
	     {"invalid value 'ssl' for tls: expected implicit, starttls or "
	      "none"}},
	    {"catch_up = all", {"invalid value 'all' for catch_up"}},
	    {"urgency = high", {"invalid value 'high' for urgency"}},
	    {"colour = red", {"unknown key 'colour' in [account a]"}},
	    {"log_level = debug",
	     {"key 'log_level' is not allowed in [account a] (only in "
	      "[general])"}},
	    {"username = me", {NULL}},
	    {"password = secret1", {NULL}},
	    {"password_command = pass x",
	     {"[account a]: set one of 'password', 'password_command' and "
	      "'oauth2_token_command', not two"}},
	    {"on_new_mail = \"unterminated",
	     {"on_new_mail: unterminated quote"}},
	    {"mailboxes = INBOX, , X", {"mailboxes: empty mailbox name"}},
	    {"[account a]",
	     {"duplicate section [account a] (first on line 15)"}},
	    {"[account b]",
	     {"[account b]: missing required key 'username'",
	      "[account b]: missing required key 'password_command', "
	      "'password' or 'oauth2_token_command'"}},
	    {"host = h", {NULL}},
	    {"mailboxes = INBOX, inbox",
	     {"mailboxes: duplicate mailbox 'INBOX'"}},
	    {"ca_file = /nonexistent/ca.pem",
	     {"ca_file: /nonexistent/ca.pem: No such file or directory"}},
	    {"port = 99999999999999999999999",
	     {"port: 99999999999999999999999 is out of range (1..65535)"}},
	    {"[account c]", {NULL}},
	    {"host = h", {NULL}},
	    {"username =", {NULL}},
	    {"password_command = x", {NULL}},
	    {"ca_file = relative.pem",
	     {"ca_file: 'relative.pem' must be absolute or start with '~/'"}},
	    {"on_click = ", {NULL}},
	    {"on_click = x",
	     {"duplicate key 'on_click' (first set on line 38)"}},
	    {"mailboxes = A, B\x01",
	     {"mailboxes: mailbox name 2 is not valid UTF-8"}},
	    {"  x, y, x", {"mailboxes: duplicate mailbox 'x'"}},
	    {"on_new_mial = x", {"unknown key 'on_new_mial' in [account c] "
				"(did you mean 'on_new_mail'?)"}},
	    {"mailbox = INBOX", {"unknown key 'mailbox' in [account c] (did "
				"you mean 'mailboxes'?)"}},
	    {"on_new_mail_post = '' x",
	     {"on_new_mail_post: the program's name is empty"}},
	    {"on_new_mail = /bin/sh -c",
	     {"on_new_mail: /bin/sh -c without a script"}},
	    {"[general", {"missing ']' in section header"}},
	    {"poll_interval = 5", {NULL}},
	    {"[general]", {"duplicate section [general] (first on line 2)"}},
	    {long_line, {"line longer than 4096 bytes"}},
	    {"= x", {"missing key name before '='"}},
	    {"[account d] trailing", {"unexpected text after section header"}},
	};
	/* username = (line 35) gets its own message: */
	const char *empty_user = "username: empty value";
	size_t n = sizeof(lines) / sizeof(*lines), len = 0;
	char *text = xcalloc(1, 16384), *out;
	const char *path;
	struct config *cfg;
	int r, n_msgs = 1;

	memcpy(long_line, "on_click = ", 11);
	memset(long_line + 11, 'x', sizeof(long_line) - 12);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "%s\n", lines[i].text);
	path = write_file("errors.ini", 0600, text);
	free(text);

	r = load(path, &cfg, &out);
	is_int(r, -EINVAL, "errors: -EINVAL");
	ok(!cfg, "errors: *cfg_r left alone");
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < 2; j++) {
			if (!lines[i].msg[j])
				continue;
			has(out, "%s:%zu: %s", path, i + 1, lines[i].msg[j]);
			n_msgs++;
		}
	}
	has(out, "%s:35: %s", path, empty_user);
	is_int(count_lines(out), n_msgs, "errors: one message per problem");
	ok(!strstr(out, "secret1"), "errors: password never logged");
	ok(!strstr(out, "[account c]: missing required key 'username'"),
	   "errors: a key with a bad value is not also reported missing");
	ok(!strstr(out, "accessible by other users"),
	   "errors: no mode warning for a 0600 file");
	free(out);
}

/* max_connections: [general] sets it for every account, an account
 * overrides it, and 2..100 is the range. */
static void
test_max_connections(void)
{
	const char *path = write_file("maxconn.ini", 0600,
				      "[general]\n"
				      "max_connections = 8\n"
				      "[account a]\n"
				      "host = h\n"
				      "username = u\n"
				      "password = p\n"
				      "[account b]\n"
				      "host = h2\n"
				      "username = u\n"
				      "password = p\n"
				      "max_connections = 2\n"
				      "[account c]\n"
				      "host = h3\n"
				      "username = u\n"
				      "password = p\n"
				      "max_connections = 100\n");
	struct config *cfg;
	char *out;
	int r;

	r = load(path, &cfg, &out);
	is_int(r, 0, "max_connections: loads");
	is_str(out, "", "max_connections: nothing logged");
	free(out);
	if (r == 0) {
		is_int(cfg->d.max_connections, 8, "[general] max_connections");
		is_int(cfg->accounts[0].d.max_connections, 8,
		       "max_connections inherited from [general]");
		is_int(cfg->accounts[1].d.max_connections, 2,
		       "max_connections 2 (the least) overrides");
		is_int(cfg->accounts[2].d.max_connections, 100,
		       "max_connections 100 (the most)");
	}
	config_free(&cfg);

	path = write_file("maxconn-bad.ini", 0600,
			  "[general]\n"
			  "max_connections = 1\n"
			  "[account a]\n"
			  "host = h\n"
			  "username = u\n"
			  "password = p\n"
			  "max_connections = 101\n"
			  "[account b]\n"
			  "host = h\n"
			  "username = u\n"
			  "password = p\n"
			  "max_connections = 0\n"
			  "[account c]\n"
			  "host = h\n"
			  "username = u\n"
			  "password = p\n"
			  "max_connections = five\n");
	r = load(path, &cfg, &out);
	is_int(r, -EINVAL, "max_connections out of range: -EINVAL");
	ok(!cfg, "max_connections out of range: no config");
	has(out, "%s:2: max_connections: 1 is out of range (2..100)", path);
	has(out, "%s:7: max_connections: 101 is out of range (2..100)", path);
	has(out, "%s:12: max_connections: 0 is out of range (2..100)", path);
	has(out,
	    "%s:17: invalid value 'five' for max_connections: expected a "
	    "whole number",
	    path);
	is_int(count_lines(out), 4, "max_connections: one message per line");
	free(out);
}

/* Byte order mark, line ends, blanks, comments and the line length. */
static void
test_lexing(void)
{
	static char buf[8192], icon[4096];
	const char *path;
	struct config *cfg;
	char *out, *want;
	size_t len;
	FILE *f;
	int r;

	path = write_file("lex.ini", 0600,
			  "\xef\xbb\xbf[account a]\r\n"
			  "host = h\r\n"
			  "username = u \t \r\n"
			  "password = p;w ; a comment\r\n"
			  "\t# an indented comment\r\n"
			  "icon    =    an icon    ; padded\r\n"
			  "[general] ; a comment after a header\r\n"
			  "on_click = true ;b\r\n");
	r = load(path, &cfg, &out);
	is_int(r, 0, "BOM, CRLF, padding, comments: loads");
	want = xasprintf("mailwatch: %s:4: password: the text from ' ;' on "
			 "is a comment, not part of the password; give one "
			 "with ' ;' in it by password_command\n",
			 path);
	is_str(out, want,
	       "BOM, CRLF: nothing logged but that the password's comment "
	       "may have been part of it");
	free(want);
	if (r == 0) {
		is_str(cfg->accounts[0].username, "u",
		       "CR and blanks stripped");
		is_str(cfg->accounts[0].password, "p;w",
		       "';' without a space before it is kept");
		is_str(cfg->accounts[0].d.icon, "an icon",
		       "blanks inside a value are kept");
		ok(argv_is(cfg->d.on_click, "true", NULL),
		   "' ;b' is a comment");
	}
	config_free(&cfg);
	free(out);

	/* "icon=" and 4091 characters: a line of 4096 bytes, the most. */
	memset(icon, 'i', 4091);
	icon[4091] = '\0';
	snprintf(buf, sizeof(buf),
		 "[account a]\nhost = h\nusername = u\npassword = p\n"
		 "icon=%s\n",
		 icon);
	path = write_file("long.ini", 0600, buf);
	r = load(path, &cfg, &out);
	is_int(r, 0, "a line of 4096 bytes: loads");
	if (r == 0)
		is_str(cfg->accounts[0].d.icon, icon,
		       "a line of 4096 bytes: the whole value");
	config_free(&cfg);
	free(out);

	/* One more byte is too long: reported, not cut, and the next line
	 * keeps its own number. */
	snprintf(buf, sizeof(buf),
		 "[account a]\nhost = h\nusername = u\npassword = p\n"
		 "icon=%si\n"
		 "port = none\n",
		 icon);
	path = write_file("long.ini", 0600, buf);
	r = load(path, &cfg, &out);
	is_int(r, -EINVAL, "a line of 4097 bytes: -EINVAL");
	has(out,
	    "%s:5: line longer than 4096 bytes (a long mailboxes list can go "
	    "on in indented lines)",
	    path);
	has(out, "%s:6: invalid value 'none' for port", path);
	is_int(count_lines(out), 2, "a line of 4097 bytes: two messages");
	free(out);

	path = write_file("no-eol.ini", 0600,
			  "[account a]\nhost = h\nusername = u\npassword = p");
	r = load(path, &cfg, &out);
	is_int(r, 0, "no line end after the last line: loads");
	if (r == 0)
		is_str(cfg->accounts[0].password, "p",
		       "no line end: the last value is whole");
	config_free(&cfg);
	free(out);

	/* A NUL byte. */
	len = (size_t)snprintf(buf, sizeof(buf),
			       "[account a]\nhost = h\nusername = u\n"
			       "password = p");
	buf[len++] = '\0';
	len += (size_t)sprintf(buf + len, "x\n");
	path = write_file("nul.ini", 0600, "");
	f = fopen(path, "w");
	fwrite(buf, 1, len, f);
	fclose(f);
	r = load(path, &cfg, &out);
	is_int(r, -EINVAL, "NUL byte: -EINVAL");
	has(out, "%s:4: NUL byte in line", path);
	has(out,
	    "%s:1: [account a]: missing required key 'password_command', "
	    "'password' or 'oauth2_token_command'",
	    path);
	free(out);
}

static void
test_file_errors(void)
{
	char *missing = xasprintf("%s/missing.ini", dir);
	const char *path;
	struct config *cfg;
	char *out;
	int r;

	r = load(missing, &cfg, &out);
	is_int(r, -ENOENT, "missing file: -ENOENT");
	has(out, "%s: No such file or directory (start from "
		 "mailwatch.ini.example; see mailwatch.ini(5))",
	    missing);
	free(out);
	free(missing);

	r = load(dir, &cfg, &out);
	is_int(r, -EISDIR, "directory: -EISDIR");
	has(out, "%s: Is a directory", dir);
	free(out);

	path = write_file("empty.ini", 0600, "");
	r = load(path, &cfg, &out);
	is_int(r, -EINVAL, "empty file: -EINVAL");
	has(out, "%s: no [account NAME] section", path);
	free(out);

	path = write_file("big.ini", 0600, "");
	truncate(path, 2 * 1024 * 1024);
	r = load(path, &cfg, &out);
	is_int(r, -EFBIG, "2 MiB file: -EFBIG");
	has(out, "%s: larger than 1048576 bytes", path);
	free(out);

	path = write_file("general.ini", 0600, "[general]\nnotify = yes\n");
	r = load(path, &cfg, &out);
	is_int(r, -EINVAL, "no account: -EINVAL");
	has(out, "%s: no [account NAME] section", path);
	free(out);
}

/* auth, oauth2_token_command and send_id: values, defaults, which
 * credential each mechanism needs, and reload equality. */
static void
test_auth(void)
{
	static const struct {
		const char *keys;
		const char *error; /* NULL: loads */
	} cases[] = {
		{"oauth2_token_command = pizauth show 'my mail'\n", NULL},
		{"oauth2_token_command = oama access me\nauth = xoauth2\n", NULL},
		{"oauth2_token_command = x\nauth = oauthbearer\n", NULL},
		{"password_command = p\nauth = login\nsend_id = yes\n", NULL},
		{"password = p\nauth = plain\n", NULL},
		{"password = p\nauth = xoauth2\n",
		 "[account a]: auth = xoauth2 needs oauth2_token_command"},
		{"oauth2_token_command = x\nauth = plain\n",
		 "[account a]: auth = plain needs a password, not "
		 "oauth2_token_command"},
		{"password = p\noauth2_token_command = x\n",
		 "[account a]: set one of 'password', 'password_command' and "
		 "'oauth2_token_command', not two"},
		{"oauth2_token_command = x\nauth = cram-md5\n",
		 "invalid value 'cram-md5' for auth: expected auto, plain, "
		 "login, oauthbearer or xoauth2"},
		{"oauth2_token_command = 'x\n", "oauth2_token_command: "
						  "unterminated quote"},
		{"oauth2_token_command = x\nsend_id = maybe\n",
		 "invalid value 'maybe' for send_id: expected yes or no"},
	};
	struct config *cfg, *cfg2;
	char *out, *body;
	const char *path;
	int r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		body = xasprintf("[account a]\nhost = h\nusername = u\n%s",
				 cases[i].keys);
		path = write_file("auth.ini", 0600, body);
		r = load(path, &cfg, &out);
		if (cases[i].error) {
			is_int(r, -EINVAL, "auth case %zu: refused", i);
			has(out, "%s", cases[i].error);
		} else {
			is_int(r, 0, "auth case %zu: loads", i);
			if (r < 0)
				dump(out);
			config_free(&cfg);
		}
		free(out);
		free(body);
	}

	path = write_file("auth.ini", 0600,
			  "[account a]\nhost = h\nusername = u\n"
			  "oauth2_token_command = pizauth show 'my mail'\n"
			  "[account b]\nhost = h\nusername = u\n"
			  "password = p\nauth = login\nsend_id = yes\n");
	r = load(path, &cfg, &out);
	free(out);
	if (r < 0) {
		ok(0, "the auth configuration loads");
		return;
	}
	ok(argv_is(cfg->accounts[0].oauth2_token_command, "pizauth", "show",
		   "my mail", NULL),
	   "oauth2_token_command is split like a hook");
	ok(cfg->accounts[0].auth == AUTH_AUTO && !cfg->accounts[0].send_id &&
		   !cfg->accounts[0].password &&
		   !cfg->accounts[0].password_command,
	   "defaults: auth = auto, send_id = no; no password");
	ok(cfg->accounts[1].auth == AUTH_LOGIN && cfg->accounts[1].send_id &&
		   !cfg->accounts[1].oauth2_token_command,
	   "auth = login, send_id = yes");
	r = load(path, &cfg2, &out);
	free(out);
	if (r == 0) {
		ok(config_account_equal(&cfg->accounts[0], &cfg2->accounts[0]),
		   "the same token command: equal");
		free(cfg2->accounts[0].oauth2_token_command[2]);
		cfg2->accounts[0].oauth2_token_command[2] = xstrdup("other");
		cfg2->accounts[1].send_id = false;
		ok(!config_account_equal(&cfg->accounts[0],
					 &cfg2->accounts[0]),
		   "another token command: a change");
		ok(!config_account_equal(&cfg->accounts[1],
					 &cfg2->accounts[1]),
		   "send_id changed: a change");
		cfg2->accounts[1].send_id = true;
		cfg2->accounts[1].auth = AUTH_PLAIN;
		ok(!config_account_equal(&cfg->accounts[1],
					 &cfg2->accounts[1]),
		   "auth changed: a change");
		ok(!config_account_same_watch(&cfg->accounts[1],
					      &cfg2->accounts[1]),
		   "auth changed: a change of how it is watched");
		cfg2->accounts[1].auth = AUTH_LOGIN;
		cfg2->accounts[1].d.hook_timeout++;
		cfg2->accounts[1].d.burst++;
		ok(!config_account_equal(&cfg->accounts[1],
					 &cfg2->accounts[1]) &&
			   config_account_same_watch(&cfg->accounts[1],
						     &cfg2->accounts[1]),
		   "hook_timeout and burst changed: a change, but not of "
		   "how it is watched");
		cfg2->accounts[1].d.poll_interval++;
		ok(!config_account_same_watch(&cfg->accounts[1],
					      &cfg2->accounts[1]),
		   "poll_interval changed: a change of how it is watched");
		config_free(&cfg2);
	}
	config_free(&cfg);
}

static void
test_password_mode(void)
{
	const char *body = "[account a]\n"
			   "host = h\n"
			   "username = u\n"
			   "password = topsecret\n";
	const char *path;
	struct config *cfg;
	char *out;
	int r;

	path = write_file("pw644.ini", 0644, body);
	r = load(path, &cfg, &out);
	is_int(r, 0, "0644 with password: loads");
	has(out,
	    "%s: holds a password but is accessible by other users: run "
	    "'chmod 600 %s' or use password_command",
	    path, path);
	ok(!strstr(out, "topsecret"), "0644: password not logged");
	config_free(&cfg);
	free(out);

	path = write_file("pw640.ini", 0640, body);
	r = load(path, &cfg, &out);
	is_int(r, 0, "0640 with password: loads");
	has(out, "%s: holds a password", path);
	config_free(&cfg);
	free(out);

	path = write_file("pw600.ini", 0600, body);
	r = load(path, &cfg, &out);
	is_int(r, 0, "0600 with password: loads");
	is_str(out, "", "0600: no warning");
	config_free(&cfg);
	free(out);

	path = write_file("pc644.ini", 0644,
			  "[account a]\nhost = h\nusername = u\n"
			  "password_command = pass show x\n");
	r = load(path, &cfg, &out);
	is_int(r, 0, "0644 with password_command: loads");
	is_str(out, "", "0644 with password_command: no warning");
	config_free(&cfg);
	free(out);
}

static void
test_example(void)
{
	struct config *cfg;
	char *out;
	int r;

	if (access("mailwatch.ini.example", R_OK) < 0) {
		ok(1,
		   "# SKIP mailwatch.ini.example not in the current directory");
		return;
	}
	r = load("mailwatch.ini.example", &cfg, &out);
	is_int(r, 0, "mailwatch.ini.example loads");
	if (r < 0)
		dump(out);
	config_free(&cfg);
	free(out);
}

/* ignore_mailboxes: patterns, a list like mailboxes (continuation lines
 * too), only in an account. */
static void
test_ignore_mailboxes(void)
{
	const char *path = write_file("ignore.ini", 0600,
				      "[account a]\n"
				      "host = h\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "mailboxes = *\n"
				      "ignore_mailboxes = Archive/*,\n"
				      "    Lists/%/old, Notes\n"
				      "[account b]\n"
				      "host = h\n"
				      "username = u\n"
				      "password_command = echo pw\n");
	const char *bad = write_file("ignore-bad.ini", 0600,
				     "[general]\n"
				     "ignore_mailboxes = X\n"
				     "[account a]\n"
				     "host = h\n"
				     "username = u\n"
				     "password_command = echo pw\n"
				     "ignore_mailboxes = A, A\n"
				     "[account b]\n"
				     "host = h\n"
				     "username = u\n"
				     "password_command = echo pw\n"
				     "ignore_mailboxes =\n");
	struct config *cfg, *c2;
	char *out;
	int r;

	r = load(path, &cfg, &out);
	is_int(r, 0, "ignore_mailboxes: loads");
	is_str(out, "", "ignore_mailboxes: nothing logged");
	free(out);
	if (r < 0)
		return;
	ok(argv_is(cfg->accounts[0].mailboxes, "*", NULL),
	   "mailboxes = *: one pattern");
	ok(argv_is(cfg->accounts[0].ignore_mailboxes, "Archive/*",
		   "Lists/%/old", "Notes", NULL) &&
	       cfg->accounts[0].n_ignore_mailboxes == 3,
	   "ignore_mailboxes: a list over indented lines");
	ok(!cfg->accounts[1].ignore_mailboxes &&
	       !cfg->accounts[1].n_ignore_mailboxes,
	   "ignore_mailboxes: none when unset");
	r = load(path, &c2, &out);
	free(out);
	if (r == 0) {
		char *saved = c2->accounts[0].ignore_mailboxes[2];

		ok(config_account_equal(&cfg->accounts[0], &c2->accounts[0]),
		   "ignore_mailboxes: same file, equal");
		c2->accounts[0].ignore_mailboxes[2] = "Other";
		ok(!config_account_equal(&cfg->accounts[0], &c2->accounts[0]),
		   "ignore_mailboxes: a change is a change");
		c2->accounts[0].ignore_mailboxes[2] = saved;
		config_free(&c2);
	}
	config_free(&cfg);

	r = load(bad, &cfg, &out);
	is_int(r, -EINVAL, "ignore_mailboxes errors: -EINVAL");
	has(out,
	    "%s:2: key 'ignore_mailboxes' is not allowed in [general] (only "
	    "in [account NAME])",
	    bad);
	has(out, "%s:7: ignore_mailboxes: duplicate mailbox 'A'", bad);
	has(out, "%s:12: ignore_mailboxes: empty value", bad);
	free(out);
}

static void
test_equal(void)
{
	const char *path = write_file("equal.ini", 0600,
				      "[general]\n"
				      "on_new_mail = /bin/hook a\n"
				      "[account a]\n"
				      "host = h\n"
				      "username = u\n"
				      "password_command = echo pw\n"
				      "mailboxes = INBOX, Sent\n"
				      "icon = i\n");
	struct config *c1, *c2;
	struct account *a, *b;
	char *out1, *out2, *saved;
	int r1, r2;

	r1 = load(path, &c1, &out1);
	r2 = load(path, &c2, &out2);
	free(out1);
	free(out2);
	if (r1 < 0 || r2 < 0) {
		ok(0, "equal: loads");
		config_free(&c1);
		config_free(&c2);
		return;
	}
	a = &c1->accounts[0];
	b = &c2->accounts[0];
	ok(config_account_equal(a, b), "same file: equal");
	b->line = 99;
	ok(config_account_equal(a, b), "the line does not count");

#define CHANGED(stmt, undo, what)                                              \
	do {                                                                   \
		stmt;                                                          \
		ok(!config_account_equal(a, b), "differs: %s", what);          \
		undo;                                                          \
		ok(config_account_equal(a, b), "equal again: %s", what);       \
	} while (0)
	CHANGED(b->port++, b->port--, "port");
	CHANGED(b->tls = TLS_NONE, b->tls = TLS_IMPLICIT, "tls");
	CHANGED(b->d.notify = false, b->d.notify = true, "notify");
	CHANGED(b->d.hook_timeout++, b->d.hook_timeout--, "hook_timeout");
	CHANGED(b->d.idle_timeout++, b->d.idle_timeout--, "idle_timeout");
	CHANGED(b->d.poll_interval++, b->d.poll_interval--, "poll_interval");
	CHANGED(b->d.max_connections++, b->d.max_connections--,
		"max_connections");
	CHANGED(b->d.catch_up = CATCH_UP_SKIP, b->d.catch_up = CATCH_UP_NOTIFY,
		"catch_up");
	CHANGED(b->d.catch_up_max++, b->d.catch_up_max--, "catch_up_max");
	CHANGED(b->d.urgency = 2, b->d.urgency = 1, "urgency");
	CHANGED(b->host[0] = 'x', b->host[0] = 'h', "host");
	CHANGED(b->username[0] = 'x', b->username[0] = 'u', "username");
	CHANGED(b->password_command[0] = 'x', b->password_command[0] = 'e',
		"password_command");
	CHANGED(b->d.icon[0] = 'x', b->d.icon[0] = 'i', "icon");
	CHANGED(b->mailboxes[1][0] = 'x', b->mailboxes[1][0] = 'S',
		"a mailbox name");
	CHANGED(b->d.on_new_mail[1][0] = 'b', b->d.on_new_mail[1][0] = 'a',
		"an on_new_mail argument");
	saved = b->d.on_new_mail[1];
	CHANGED(b->d.on_new_mail[1] = NULL, b->d.on_new_mail[1] = saved,
		"on_new_mail length");
	saved = b->ca_file;
	CHANGED(b->ca_file = "/x", b->ca_file = saved, "ca_file");
	saved = b->password;
	CHANGED(b->password = "pw", b->password = saved, "password");
	saved = b->mailboxes[1];
	CHANGED((b->mailboxes[1] = NULL, b->n_mailboxes = 1),
		(b->mailboxes[1] = saved, b->n_mailboxes = 2), "mailbox count");
#undef CHANGED
	config_free(&c1);
	config_free(&c2);
}

static void
test_default_path(void)
{
	char *old_xdg = getenv("XDG_CONFIG_HOME"), *old_home = getenv("HOME");
	char *p;

	old_xdg = old_xdg ? xstrdup(old_xdg) : NULL;
	old_home = old_home ? xstrdup(old_home) : NULL;
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	setenv("HOME", "/home/t", 1);
	p = config_default_path();
	is_str(p, "/xdg/mailwatch/mailwatch.ini", "default path: XDG");
	free(p);
	setenv("XDG_CONFIG_HOME", "relative", 1);
	p = config_default_path();
	is_str(p, "/home/t/.config/mailwatch/mailwatch.ini",
	       "default path: relative XDG_CONFIG_HOME ignored");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	p = config_default_path();
	is_str(p, "/home/t/.config/mailwatch/mailwatch.ini",
	       "default path: HOME");
	free(p);
	if (old_xdg)
		setenv("XDG_CONFIG_HOME", old_xdg, 1);
	if (old_home)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	free(old_xdg);
	free(old_home);
}

/* A ca_file OpenSSL cannot read is an error at its line: it failed
 * every connection, retried as if the network were down, while
 * --check-config said OK. */
static void
test_ca_file_not_pem(void)
{
	const char *pem = write_file("not-a-cert.pem", 0644, "not a pem\n");
	char *text = xasprintf("[account a]\nhost = h\nusername = u\n"
			       "password_command = x\nca_file = %s\n",
			       pem);
	const char *path = write_file("not-pem.ini", 0600, text);
	struct config *cfg = NULL;
	char *out = NULL, *want;
	int r = load(path, &cfg, &out);

	ok(r < 0 && !cfg, "a ca_file without certificates: an error");
	want = xasprintf("%s:5: ca_file: %s: no certificate can be read from "
			 "it (no certificate or crl found); it must hold PEM "
			 "certificates",
			 path, pem);
	ok(out && strstr(out, want), "... at its line, saying why: %s",
	   out ? out : "");
	free(want);
	free(text);
	free(out);
	config_free(&cfg);
}

/* Two accounts of one user of one server watching one mailbox: a
 * warning naming both (each message would be announced twice), on the
 * two standard ports too; none for another user, other mailboxes, or a
 * port of its own (another server on that host). */
static void
test_shared_mailbox(void)
{
	const char *path = write_file(
	    "shared.ini", 0600,
	    "[account a]\nhost = Mail.example.org\nusername = u\n"
	    "password_command = x\n\n"
	    "[account b]\nhost = mail.example.org\nusername = u\n"
	    "password_command = x\nmailboxes = Lists, inbox\n\n"
	    "[account c]\nhost = mail.example.org\nusername = v\n"
	    "password_command = x\n\n"
	    "[account d]\nhost = mail.example.org\nusername = u\n"
	    "password_command = x\nmailboxes = Other\n\n"
	    "[account e]\nhost = mail.example.org\nusername = u\n"
	    "password_command = x\nport = 10993\n\n"
	    "[account f]\nhost = mail.example.org\nusername = u\n"
	    "password_command = x\ntls = starttls\n");
	struct config *cfg = NULL;
	char *out = NULL, *want;
	int r = load(path, &cfg, &out);

	is_int(r, 0, "shared mailboxes: loads (a warning only)");
	want = xasprintf("%s:6: [account b] is the same user of the same "
			 "server as [account a] (line 1), and both watch "
			 "INBOX: each new message there is announced twice",
			 path);
	ok(out && strstr(out, want), "the second account named, and the "
	   "first: %s", out ? out : "");
	ok(out && !strstr(out, "[account c] is") &&
	       !strstr(out, "[account d] is") && !strstr(out, "[account e] is"),
	   "not for another user, other mailboxes, nor another port");
	ok(out && strstr(out, "[account f] is the same user"),
	   "for 143 beside 993: %s", out ? out : "");
	free(want);
	free(out);
	config_free(&cfg);
}

static void
test_ca_file_home(void)
{
	char *old_home = getenv("HOME"), *text;
	const char *path;
	struct config *cfg;
	char *out, *want;
	int r;

	old_home = old_home ? xstrdup(old_home) : NULL;
	setenv("HOME", dir, 1);
	write_file("home-ca.pem", 0644, test_pem);
	text = xasprintf("[account a]\nhost = h\nusername = u\n"
			 "password_command = x\nca_file = ~/home-ca.pem\n"
			 "on_click = ~/bin/click '~/x'\n");
	path = write_file("home-ca.ini", 0600, text);
	free(text);
	r = load(path, &cfg, &out);
	is_int(r, 0, "ca_file ~/: loads");
	want = xasprintf("%s/home-ca.pem", dir);
	if (r == 0)
		is_str(cfg->accounts[0].ca_file, want, "ca_file ~/ expanded");
	free(want);
	want = xasprintf("%s/bin/click", dir);
	if (r == 0) {
		is_str(cfg->accounts[0].d.on_click[0], want,
		       "command ~/ expanded");
		is_str(cfg->accounts[0].d.on_click[1], "~/x",
		       "arguments are not expanded");
	}
	free(want);
	config_free(&cfg);
	free(out);
	if (old_home)
		setenv("HOME", old_home, 1);
	free(old_home);
}

/* A password in quotes: kept as written, with a warning that does not
 * show it. */
static void
test_quoted_password(void)
{
	const char *path = write_file("quoted.ini", 0600,
				      "[account a]\nhost = h\nusername = u\n"
				      "password = \"s3cret\"\n");
	struct config *cfg;
	char *out;
	int r = load(path, &cfg, &out);

	is_int(r, 0, "quoted password: loads");
	has(out, "%s:4: password: the quotes around it are part of the "
		 "password",
	    path);
	ok(!strstr(out, "s3cret"), "quoted password: not in the warning");
	if (r == 0)
		is_str(cfg->accounts[0].password, "\"s3cret\"",
		       "quoted password: taken as written");
	config_free(&cfg);
	free(out);
}

/* A password_command or a password cut at " ;" (the shell's in a shell
 * line; a password with it in it): a warning naming file and line that
 * does not show what was cut; none for ';' inside a word, nor for a
 * comment after another key. In a command line, a " ;" quoted or
 * escaped is the command's. */
static void
test_command_comment(void)
{
	const char *path =
	    write_file("semicolon.ini", 0600,
		       "[general]\nnotify = yes ; on the desktop\n"
		       "on_new_mail = sh -c 'echo \"$A\" >> f ; b' ; both\n"
		       "on_click = printf \"a \\\" ; b\" c \\; d ; e\n"
		       "[account a]\nhost = h\nusername = u\n"
		       "password = abc ; s3cret too\n"
		       "[account b]\nhost = h\nusername = v\n"
		       "password_command = pass show mail ; echo s3cret\n"
		       "[account c]\nhost = h\nusername = w\n"
		       "password_command = pass show a;echo b\n"
		       "[account d]\nhost = h\nusername = x\n"
		       "password_command = sh -c 'pass a ; echo b'\n");
	struct config *cfg;
	char *out;
	int r = load(path, &cfg, &out);

	is_int(r, 0, "command comment: loads");
	has(out,
	    "%s:12: password_command: the text from ' ;' on is a comment, "
	    "not run",
	    path);
	has(out,
	    "%s:8: password: the text from ' ;' on is a comment, not part "
	    "of the password",
	    path);
	has(out,
	    "%s:4: on_click: ; is passed on as it is: the command runs "
	    "without a shell",
	    path);
	is_int(count_lines(out), 3, "command comment: three warnings (%s)",
	       out);
	ok(!strstr(out, "s3cret"), "command comment: not in the warning");
	if (r == 0) {
		is_str(cfg->accounts[1].password_command, "pass show mail",
		       "command comment: the command is what is before it");
		is_str(cfg->accounts[2].password_command, "pass show a;echo b",
		       "command comment: ';' after a word is kept");
		is_str(cfg->accounts[3].password_command,
		       "sh -c 'pass a ; echo b'",
		       "command comment: a quoted ' ;' is the command's");
		is_str(cfg->d.on_new_mail[2], "echo \"$A\" >> f ; b",
		       "command comment: a hook's quoted ' ;' is its own");
		ok(!cfg->d.on_new_mail[3],
		   "command comment: and the comment after it is not");
		is_str(cfg->d.on_click[1], "a \" ; b",
		       "command comment: in double quotes, past a \\\"");
		is_str(cfg->d.on_click[2], "c", "command comment: c");
		is_str(cfg->d.on_click[3], ";", "command comment: \\;");
		is_str(cfg->d.on_click[4], "d", "command comment: d");
		ok(!cfg->d.on_click[5],
		   "command comment: ' ; e' is a comment");
	}
	config_free(&cfg);
	free(out);
}

/* Accounts of one login (user, server) split the default max_connections
 * (trial AD's two at 5 each left the user's client none of Dovecot's 10);
 * a value set in the account or in [general] stands. */
static void
test_shared_budget(void)
{
	const char *path = write_file(
	    "budget.ini", 0600,
	    "[account a]\nhost = h\nusername = u\npassword = p\n"
	    "[account b]\nhost = H\nport = 143\ntls = starttls\n"
	    "username = u\npassword = p\nmailboxes = Lists\n"
	    "[account c]\nhost = h\nusername = v\npassword = p\n"
	    "[account d]\nhost = h\nusername = u\npassword = p\n"
	    "mailboxes = Work\nmax_connections = 4\n");
	struct config *cfg;
	char *out;
	int r = load(path, &cfg, &out);

	is_int(r, 0, "shared budget: loads");
	if (r == 0) {
		is_int((int)cfg->accounts[0].d.max_connections, 2,
		       "shared budget: a, one of three of one login");
		is_int((int)cfg->accounts[1].d.max_connections, 2,
		       "shared budget: b, the same server on 143");
		is_int((int)cfg->accounts[2].d.max_connections, 5,
		       "shared budget: c, another user, the default");
		is_int((int)cfg->accounts[3].d.max_connections, 4,
		       "shared budget: d's own value stands");
	}
	config_free(&cfg);
	free(out);

	path = write_file("budget.ini", 0600,
			  "[general]\nmax_connections = 3\n"
			  "[account a]\nhost = h\nusername = u\npassword = p\n"
			  "[account b]\nhost = h\nusername = u\npassword = p\n"
			  "mailboxes = Lists\n");
	r = load(path, &cfg, &out);
	is_int(r, 0, "shared budget, [general]: loads");
	if (r == 0)
		is_int((int)cfg->accounts[1].d.max_connections, 3,
		       "shared budget: [general]'s value stands");
	config_free(&cfg);
	free(out);
}

/* A host that is not UTF-8 (trial Z's passed, then failed to resolve at
 * every try): an error naming file and line. */
static void
test_host_not_utf8(void)
{
	const char *path = write_file("host.ini", 0600,
				      "[account a]\nhost = mail.\xff.example\n"
				      "username = u\npassword = p\n");
	struct config *cfg;
	char *out;
	int r = load(path, &cfg, &out);

	is_int(r, -EINVAL, "host not UTF-8: refused");
	has(out, "%s:2: host: not valid UTF-8", path);
	config_free(&cfg);
	free(out);
}

/* A command line with what a shell would take for its own (a pipe, a
 * redirection, a variable): a warning naming file, line and the word,
 * since there is no shell; none for sh -c '...' or quoted words. */
static void
test_shell_words(void)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
	    {"oauth2_token_command = cat /tmp/tok | head -n 1", "|"},
	    {"oauth2_token_command = pizauth show x 2>/dev/null", "2>/dev/null"},
	    {"oauth2_token_command = cat $HOME/tok", "$HOME/tok"},
	    {"on_new_mail = notify-send $MAILWATCH_FROM && true",
	     "$MAILWATCH_FROM"},
	    {"on_new_mail = logger \"New mail from $MAILWATCH_FROM\"",
	     "New mail from $MAILWATCH_FROM"},
	    {"on_new_mail = notify-send hi; rm -rf ~", "hi;"},
	    {"oauth2_token_command = pizauth show x", NULL},
	    {"on_new_mail = /bin/echo 'costs $5'", NULL},
	    {"on_new_mail = sh -c 'echo $MAILWATCH_FROM | logger'", NULL},
	    {"on_new_mail = /bin/echo 'a | b' 'x>y'", NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool token = !strncmp(cases[i].line, "oauth2", 6);
		char *text = xasprintf("[account a]\nhost = localhost\n"
				       "username = u\n%s\n%s\n",
				       token ? "" : "password_command = x",
				       cases[i].line);
		const char *path = write_file("shell.ini", 0600, text);
		struct config *cfg;
		char *out;
		int r = load(path, &cfg, &out);

		is_int(r, 0, "%s: loads", cases[i].line);
		if (cases[i].want)
			has(out, "%s:5: %.*s: %s is passed on as it is: the "
				 "command runs without a shell",
			    path, (int)strcspn(cases[i].line, " "),
			    cases[i].line, cases[i].want);
		else
			ok(!strstr(out, "without a shell"), "%s: no warning (%s)",
			   cases[i].line, out);
		config_free(&cfg);
		free(out);
		free(text);
	}
}

/* A port that is the other TLS mode's well-known one: a warning naming
 * file and line; the usual pairs and other ports say nothing. */
static void
test_port_mismatch(void)
{
	static const struct {
		const char *tls, *port, *want;
	} cases[] = {
	    {"starttls", "993", "port 993 is for implicit TLS, which tls = "
				"starttls does not speak"},
	    {"none", "993", "port 993 is for implicit TLS, which tls = none "
			    "does not speak"},
	    {"implicit", "143", "port 143 is for plain IMAP and STARTTLS, not "
				"implicit TLS"},
	    {"implicit", "993", NULL},
	    {"starttls", "143", NULL},
	    {"starttls", "1143", NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = xasprintf("[account a]\nhost = localhost\n"
				       "username = u\npassword_command = x\n"
				       "tls = %s\nport = %s\n",
				       cases[i].tls, cases[i].port);
		const char *path = write_file("port.ini", 0600, text);
		struct config *cfg;
		char *out;
		int r = load(path, &cfg, &out);

		is_int(r, 0, "port %s, tls = %s: loads", cases[i].port,
		       cases[i].tls);
		if (cases[i].want)
			has(out, "%s:6: [account a]: %s", path, cases[i].want);
		else
			is_str(out, "", "port %s, tls = %s: no warning",
			       cases[i].port, cases[i].tls);
		config_free(&cfg);
		free(out);
		free(text);
	}
}

/* A hook that cannot run as things are: a warning naming file, line,
 * setting and why; the file still loads. */
static void
test_programs(void)
{
	char *old_path = getenv("PATH"), *text, *out;
	const char *path;
	struct config *cfg;
	int r;

	old_path = old_path ? xstrdup(old_path) : NULL;
	write_file("noexec.sh", 0644, "echo hi\n");
	write_file("hook.sh", 0755, "echo hi\n");
	setenv("PATH", dir, 1);
	text = xasprintf("[general]\n"
			 "on_new_mail = %s/missing --x\n"
			 "on_new_mail_post = %s/noexec.sh\n"
			 "on_click = %s\n"
			 "[account a]\nhost = h\nusername = u\n"
			 "password_command = x\n"
			 "on_new_mail = not-a-command\n"
			 "on_new_mail_post = hook.sh\n"
			 "on_click = %s/hook.sh\n"
			 "[account b]\nhost = h\nusername = v\n"
			 "password_command = exit 1\n"
			 "on_new_mail = noexec.sh\n"
			 /* Line 17 on: the program of a shell line behind an
			  * exec, assignments or quotes (trial S). */
			 "[account c]\nhost = h\nusername = c\n"
			 "password_command = exec x\n"
			 "[account d]\nhost = h\nusername = d\n"
			 "password_command = GNUPGHOME=/g LC_ALL=C x --y\n"
			 "[account e]\nhost = h\nusername = e\n"
			 "password_command = \"x\" --y\n"
			 "[account f]\nhost = h\nusername = f\n"
			 "password_command = '~/x'\n"
			 /* Line 33: sh runs "exec X=1 x" as a program named
			  * "X=1" (trial V). */
			 "[account g]\nhost = h\nusername = g\n"
			 "password_command = exec GNUPGHOME=/g x\n"
			 "[account h]\nhost = h\nusername = h\n"
			 "password_command = readonly X=1\n"
			 "[account i]\nhost = h\nusername = i\n"
			 "password_command = env -i x\n"
			 "[account j]\nhost = h\nusername = j\n"
			 "password_command = command x\n",
			 dir, dir, dir, dir);
	path = write_file("programs.ini", 0600, text);
	free(text);
	r = load(path, &cfg, &out);
	is_int(r, 0, "programs: loads all the same");
	is_int(count_lines(out), 11, "programs: eleven warnings");
	has(out,
	    "%s:2: on_new_mail: %s/missing: No such file or directory; it "
	    "cannot run as things are\n",
	    path, dir);
	has(out, "%s:3: on_new_mail_post: %s/noexec.sh: not executable "
		 "(chmod +x?)",
	    path, dir);
	has(out, "%s:4: on_click: %s: not a file", path, dir);
	has(out, "%s:9: on_new_mail: not-a-command: not found in PATH", path);
	/* A shell line's first word (trial R: "pass" was not installed). */
	has(out, "%s:8: password_command: x: not found in PATH", path);
	/* As hooks find it (launch.c): in PATH only as a file that is not
	 * executable, which no hook would run. */
	has(out,
	    "%s:16: on_new_mail: noexec.sh: in PATH, but not as an executable "
	    "file",
	    path);
	ok(!strstr(out, "hook.sh"), "programs: none for one found in PATH or "
				    "by its path");
	ok(!strstr(out, ":15:"), "programs: none for a shell's own exit");
	/* Behind exec, assignments, quotes and command (trials S and V). */
	for (int line = 20; line <= 48; line += line == 28 ? 20 : 4)
		has(out, "%s:%d: password_command: x: not found in PATH", path,
		    line);
	ok(!strstr(out, ":32:"), "programs: none for a quoted '~/'");
	/* sh runs "exec X=1 x" as a program named "X=1". */
	has(out,
	    "%s:36: password_command: GNUPGHOME=/g: No such file or directory",
	    path);
	ok(!strstr(out, ":40:"), "programs: none for a shell's own readonly");
	ok(!strstr(out, ":44:"), "programs: none past an option");
	config_free(&cfg);
	free(out);
	if (old_path)
		setenv("PATH", old_path, 1);
	else
		unsetenv("PATH");
	free(old_path);
}

/* ---- config_split_argv ---- */

static void
split_ok(const char *line, const char *what, ...)
{
	va_list ap;
	const char *err = NULL;
	char **argv = NULL;
	bool same;
	int r;

	r = config_split_argv(line, &argv, &err);
	va_start(ap, what);
	same = r == 0 && argv_matches(argv, ap);
	va_end(ap);
	ok(same, "split_argv: %s", what);
	if (!same) {
		printf("#   line [%s] r=%d err=%s got:", line, r,
		       err ? err : "-");
		print_argv(argv);
	}
	config_argv_free(&argv);
}

static void
split_err(const char *line, const char *want_err)
{
	const char *err = NULL;
	char **argv = NULL;
	int r;

	r = config_split_argv(line, &argv, &err);
	is_int(r, -EINVAL, "split_argv: [%s] fails", line);
	is_str(err, want_err, "split_argv: [%s] says why", line);
	ok(!argv, "split_argv: [%s] no argv", line);
	config_argv_free(&argv);
}

static void
test_split_argv(void)
{
	char **argv, **dup;
	const char *err;

	split_ok("a b  c", "words", "a", "b", "c", NULL);
	split_ok("  \tlead and trail \t ", "outer whitespace", "lead", "and",
		 "trail", NULL);
	split_ok("'a b' \"c d\"", "quotes group", "a b", "c d", NULL);
	split_ok("'a\\b \"x\"'", "single quotes are literal", "a\\b \"x\"",
		 NULL);
	split_ok("\"say \\\"hi\\\" \\\\ \\n $HOME\"",
		 "double quotes: \\\" and \\\\ only", "say \"hi\" \\ \\n $HOME",
		 NULL);
	split_ok("a\\ b \\'c\\\"", "backslash outside quotes", "a b", "'c\"",
		 NULL);
	split_ok("x'y'\"z\"w", "adjacent parts join", "xyzw", NULL);
	split_ok("'' \"\"", "empty quoted words", "", "", NULL);
	split_ok("notify-send hi; rm -rf ~", "a ; is just a character",
		 "notify-send", "hi;", "rm", "-rf", "~", NULL);
	split_ok("echo \"; rm -rf ~\"", "\"; rm -rf ~\" stays one literal",
		 "echo", "; rm -rf ~", NULL);
	split_ok("echo '; rm -rf ~' $(id) `id` * > /tmp/x | y",
		 "no shell syntax", "echo", "; rm -rf ~", "$(id)", "`id`", "*",
		 ">", "/tmp/x", "|", "y", NULL);
	split_ok("\xc3\xa9t\xc3\xa9", "UTF-8 kept", "\xc3\xa9t\xc3\xa9", NULL);
	split_err("'unterminated", "unterminated quote");
	split_err("a \"unterminated \\\"", "unterminated quote");
	split_err("trailing \\", "backslash at the end");
	split_err("", "empty command line");
	split_err("  \t ", "empty command line");

	err = NULL;
	if (config_split_argv("a 'b c'", &argv, &err) == 0) {
		dup = config_argv_dup(argv);
		ok(dup && dup != argv && dup[0] != argv[0] &&
		       !strcmp(dup[1], "b c") && !dup[2],
		   "argv_dup copies");
		config_argv_free(&dup);
		config_argv_free(&argv);
		ok(!argv, "argv_free clears the pointer");
	}
	ok(config_argv_dup(NULL) == NULL, "argv_dup(NULL) is NULL");
}

int
main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	cap_path = xasprintf("%s/stderr", dir);
	/* The password programs the tests name, in PATH (test_programs()
	 * looks for one that is not). */
	{
		char *bin = xasprintf("%s/bin", dir), *path;
		const char *old = getenv("PATH");

		mkdir(bin, 0700);
		write_file("bin/x", 0755, "#!/bin/sh\necho x\n");
		write_file("bin/p", 0755, "#!/bin/sh\necho p\n");
		write_file("bin/pass", 0755, "#!/bin/sh\necho pass\n");
		path = xasprintf("%s%s%s", bin, old ? ":" : "", old ? old : "");
		setenv("PATH", path, 1);
		free(path);
		free(bin);
	}

	test_full();
	test_defaults();
	test_continuation();
	test_continuation_errors();
	test_ignore_mailboxes();
	test_override_order();
	test_errors();
	test_max_connections();
	test_lexing();
	test_file_errors();
	test_password_mode();
	test_auth();
	test_example();
	test_equal();
	test_default_path();
	test_ca_file_home();
	test_ca_file_not_pem();
	test_shared_mailbox();
	test_programs();
	test_quoted_password();
	test_command_comment();
	test_port_mismatch();
	test_shell_words();
	test_host_not_utf8();
	test_shared_budget();
	test_split_argv();

	for (size_t i = 0; i < n_created; i++) {
		unlink(created[i]);
		free(created[i]);
	}
	unlink(cap_path);
	free(cap_path);
	rmdir(dir);
	return tap_done();
}
