/* config: the ini file, read line by line and validated into plain
 * structs.
 *
 * The parser is our own, not inih's: Debian 12's libinih (r55) is built
 * without line numbers for the handler, never tells it about a section
 * without keys or about a line that is not "key = value" (it returns the
 * first bad line only), silently cuts section names at 49 bytes and splits
 * lines longer than 199 bytes in two. docs/design.md has the details.
 *
 * Values are validated as they are read, so errors come out in file order;
 * [general] is merged into the accounts once the whole file is read.
 */
#include "config.h"
#include "launch.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The longest account name (it ends up in log prefixes and file names). */
#define ACCOUNT_NAME_MAX 64
/* The largest configuration file read: inputs are bounded. */
#define CONFIG_SIZE_MAX (1024 * 1024)
/* The longest line, in bytes without its "\n"; longer lines are errors. */
#define CONFIG_LINE_MAX 4096

enum key {
	/* struct account_defaults: [general] and [account NAME] */
	K_NOTIFY,
	K_ON_NEW_MAIL,
	K_ON_NEW_MAIL_POST,
	K_ON_CLICK,
	K_HOOK_TIMEOUT,
	K_IDLE_TIMEOUT,
	K_POLL_INTERVAL,
	K_MAX_CONNECTIONS,
	K_CATCH_UP,
	K_CATCH_UP_MAX,
	K_ICON,
	K_URGENCY,
	K_BURST,
	/* [account NAME] only */
	K_HOST,
	K_PORT,
	K_TLS,
	K_CA_FILE,
	K_USERNAME,
	K_PASSWORD,
	K_PASSWORD_COMMAND,
	K_OAUTH2_TOKEN_COMMAND,
	K_AUTH,
	K_SEND_ID,
	K_MAILBOXES,
	K_IGNORE_MAILBOXES,
	/* [general] only */
	K_LOG_LEVEL,
	N_KEYS
};

#define IN_GENERAL 1u
#define IN_ACCOUNT 2u
#define IN_BOTH (IN_GENERAL | IN_ACCOUNT)

static const struct {
	const char *name;
	unsigned where;
	bool empty_ok; /* an empty value means "none" */
} keys[N_KEYS] = {
    [K_NOTIFY] = {"notify", IN_BOTH, false},
    [K_ON_NEW_MAIL] = {"on_new_mail", IN_BOTH, true},
    [K_ON_NEW_MAIL_POST] = {"on_new_mail_post", IN_BOTH, true},
    [K_ON_CLICK] = {"on_click", IN_BOTH, true},
    [K_HOOK_TIMEOUT] = {"hook_timeout", IN_BOTH, false},
    [K_IDLE_TIMEOUT] = {"idle_timeout", IN_BOTH, false},
    [K_POLL_INTERVAL] = {"poll_interval", IN_BOTH, false},
    [K_MAX_CONNECTIONS] = {"max_connections", IN_BOTH, false},
    [K_CATCH_UP] = {"catch_up", IN_BOTH, false},
    [K_CATCH_UP_MAX] = {"catch_up_max", IN_BOTH, false},
    [K_ICON] = {"icon", IN_BOTH, true},
    [K_URGENCY] = {"urgency", IN_BOTH, false},
    [K_BURST] = {"burst", IN_BOTH, false},
    [K_HOST] = {"host", IN_ACCOUNT, false},
    [K_PORT] = {"port", IN_ACCOUNT, false},
    [K_TLS] = {"tls", IN_ACCOUNT, false},
    [K_CA_FILE] = {"ca_file", IN_ACCOUNT, false},
    [K_USERNAME] = {"username", IN_ACCOUNT, false},
    [K_PASSWORD] = {"password", IN_ACCOUNT, false},
    [K_PASSWORD_COMMAND] = {"password_command", IN_ACCOUNT, false},
    [K_OAUTH2_TOKEN_COMMAND] = {"oauth2_token_command", IN_ACCOUNT, false},
    [K_AUTH] = {"auth", IN_ACCOUNT, false},
    [K_SEND_ID] = {"send_id", IN_ACCOUNT, false},
    [K_MAILBOXES] = {"mailboxes", IN_ACCOUNT, false},
    [K_IGNORE_MAILBOXES] = {"ignore_mailboxes", IN_ACCOUNT, false},
    [K_LOG_LEVEL] = {"log_level", IN_GENERAL, false},
};

static const char *const tls_names[] = {"implicit", "starttls", "none", NULL};
static const char *const auth_names[] = {
    "auto", "plain", "login", "oauthbearer", "xoauth2", NULL,
};
static const char *const catch_up_names[] = {"notify", "summary", "skip", NULL};
static const char *const urgency_names[] = {"low", "normal", "critical", NULL};
static const char *const log_level_names[] = {"error", "warning", "info",
					      "debug", NULL};
static const int log_levels[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

/* One [general] or [account NAME] section as read from the file. */
struct section {
	unsigned line;		   /* of the header; 0: not in the file */
	unsigned key_line[N_KEYS]; /* where each key was set; 0: unset */
	struct account_defaults d; /* values of the keys that were set */
	struct account a;	   /* account-only values, name and line */
	unsigned mailbox_items;	   /* names in mailboxes, valid or not */
	unsigned ignore_items;	   /* patterns in ignore_mailboxes */
	int log_level;
};

enum section_kind { SEC_NONE, SEC_GENERAL, SEC_ACCOUNT, SEC_BAD };

/* What a line indented further than the line above it (a continuation
 * line) is. */
enum cont {
	CONT_NONE,	/* a line of its own: the line above was no key */
	CONT_MAILBOXES, /* more names for the mailboxes (or
			   ignore_mailboxes) above: cont_key says which */
	CONT_ERROR,	/* an error: the key above takes one line */
	CONT_UNKNOWN,	/* an error: the key above is none (cont_name);
			   only a line that is a key itself is told */
	CONT_SKIP,	/* part of a line that was reported */
};

struct parser {
	const char *path;
	FILE *f;
	char line[CONFIG_LINE_MAX + 2]; /* read_line()'s */
	unsigned lineno;		/* of the line in line */
	int read_errno;
	unsigned n_errors;
	bool has_password;
	enum section_kind kind;
	struct section *cur; /* NULL unless kind is SEC_GENERAL/SEC_ACCOUNT */
	struct section general;
	struct section **accounts;
	size_t n_accounts;
	enum cont cont;	    /* for a line indented further than */
	size_t cont_indent; /* this many blanks */
	enum key cont_key;  /* the key above, for CONT_ERROR */
	char cont_name[64]; /* the unknown one, for CONT_UNKNOWN */
};

static void perr(struct parser *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs "path:line: message" (or "path: message" for line 0) and counts it. */
static void
perr(struct parser *p, unsigned line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		log_err(NULL, "%s:%u: %s", p->path, line, msg);
	else
		log_err(NULL, "%s: %s", p->path, msg);
	p->n_errors++;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static char *
skip_space(char *s)
{
	while (is_space(*s))
		s++;
	return s;
}

static void
rstrip(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && is_space(s[n - 1]))
		s[--n] = '\0';
}

/* ---- argv helpers ---- */

void
config_argv_free(char ***argv)
{
	if (!*argv)
		return;
	for (char **a = *argv; *a; a++)
		free(*a);
	freep(argv);
}

char **
config_argv_dup(char *const *argv)
{
	size_t n = 0;
	char **r;

	if (!argv)
		return NULL;
	while (argv[n])
		n++;
	r = xcalloc(n + 1, sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i] = xstrdup(argv[i]);
	return r;
}

int
config_split_argv(const char *line, char ***argv_r, const char **err_r)
{
	size_t len = strlen(line), n = 0, w;
	/* A word takes at least one character and one separator, except ''
	 * and "" which take two characters. */
	char **argv = xcalloc(len / 2 + 2, sizeof(*argv));
	char *word = xmalloc(len + 1);
	const char *s = line, *err = NULL;

	for (;;) {
		while (is_space(*s))
			s++;
		if (!*s)
			break;
		w = 0;
		while (*s && !is_space(*s)) {
			if (*s == '\'') {
				const char *q = strchr(s + 1, '\'');

				if (!q) {
					err = "unterminated quote";
					goto fail;
				}
				memcpy(word + w, s + 1, (size_t)(q - s - 1));
				w += (size_t)(q - s - 1);
				s = q + 1;
			} else if (*s == '"') {
				for (s++; *s != '"'; s++) {
					if (!*s) {
						err = "unterminated quote";
						goto fail;
					}
					if (*s == '\\' &&
					    (s[1] == '"' || s[1] == '\\'))
						s++;
					word[w++] = *s;
				}
				s++;
			} else if (*s == '\\') {
				if (!s[1]) {
					err = "backslash at the end";
					goto fail;
				}
				word[w++] = s[1];
				s += 2;
			} else {
				word[w++] = *s++;
			}
		}
		argv[n++] = xstrndup(word, w);
	}
	if (!n) {
		err = "empty command line";
		goto fail;
	}
	free(word);
	*argv_r = argv;
	return 0;

fail:
	free(word);
	config_argv_free(&argv);
	if (err_r)
		*err_r = err;
	return -EINVAL;
}

/* ---- freeing, copying, comparing ---- */

static void
defaults_init(struct account_defaults *d)
{
	*d = (struct account_defaults){
	    .notify = true,
	    .hook_timeout = 30,
	    .idle_timeout = 1500,
	    .poll_interval = 60,
	    .max_connections = MAX_CONNECTIONS_DEFAULT,
	    .catch_up = CATCH_UP_NOTIFY,
	    .catch_up_max = 10,
	    .urgency = 1,
	    .burst = 3,
	};
}

static void
defaults_finish(struct account_defaults *d)
{
	config_argv_free(&d->on_new_mail);
	config_argv_free(&d->on_new_mail_post);
	config_argv_free(&d->on_click);
	freep(&d->icon);
}

static void
defaults_copy(struct account_defaults *dst, const struct account_defaults *src)
{
	*dst = *src;
	dst->on_new_mail = config_argv_dup(src->on_new_mail);
	dst->on_new_mail_post = config_argv_dup(src->on_new_mail_post);
	dst->on_click = config_argv_dup(src->on_click);
	dst->icon = src->icon ? xstrdup(src->icon) : NULL;
}

static void
wipe_free(char **s)
{
	if (*s)
		explicit_bzero(*s, strlen(*s));
	freep(s);
}

static void
account_finish(struct account *a)
{
	freep(&a->name);
	freep(&a->host);
	freep(&a->ca_file);
	freep(&a->username);
	wipe_free(&a->password);
	wipe_free(&a->password_command);
	config_argv_free(&a->oauth2_token_command);
	config_argv_free(&a->mailboxes);
	a->n_mailboxes = 0;
	config_argv_free(&a->ignore_mailboxes);
	a->n_ignore_mailboxes = 0;
	defaults_finish(&a->d);
}

static void
section_finish(struct section *s)
{
	defaults_finish(&s->d);
	account_finish(&s->a);
}

void
config_free(struct config **cfg)
{
	struct config *c = *cfg;

	if (!c)
		return;
	for (size_t i = 0; i < c->n_accounts; i++)
		account_finish(&c->accounts[i]);
	free(c->accounts);
	defaults_finish(&c->d);
	free(c->path);
	freep(cfg);
}

static bool
str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool
argv_eq(char *const *a, char *const *b)
{
	if (!a || !b)
		return a == b;
	for (; *a && *b; a++, b++)
		if (strcmp(*a, *b))
			return false;
	return !*a && !*b;
}

/* The settings read each time mail is announced (hooks, notifications,
 * catch-up). */
static bool
announce_eq(const struct account_defaults *a,
	    const struct account_defaults *b)
{
	return a->notify == b->notify &&
	       argv_eq(a->on_new_mail, b->on_new_mail) &&
	       argv_eq(a->on_new_mail_post, b->on_new_mail_post) &&
	       argv_eq(a->on_click, b->on_click) &&
	       a->hook_timeout == b->hook_timeout &&
	       a->catch_up == b->catch_up &&
	       a->catch_up_max == b->catch_up_max && str_eq(a->icon, b->icon) &&
	       a->urgency == b->urgency && a->burst == b->burst;
}

bool
config_account_equal(const struct account *a, const struct account *b)
{
	return config_account_same_watch(a, b) && announce_eq(&a->d, &b->d);
}

/* Not the line, so moving an account in the file is not a change. */
bool
config_account_same_watch(const struct account *a, const struct account *b)
{
	return str_eq(a->name, b->name) && str_eq(a->host, b->host) &&
	       a->port == b->port && a->tls == b->tls &&
	       str_eq(a->ca_file, b->ca_file) &&
	       str_eq(a->username, b->username) &&
	       str_eq(a->password, b->password) &&
	       str_eq(a->password_command, b->password_command) &&
	       argv_eq(a->oauth2_token_command, b->oauth2_token_command) &&
	       a->auth == b->auth && a->send_id == b->send_id &&
	       a->n_mailboxes == b->n_mailboxes &&
	       argv_eq(a->mailboxes, b->mailboxes) &&
	       a->n_ignore_mailboxes == b->n_ignore_mailboxes &&
	       argv_eq(a->ignore_mailboxes, b->ignore_mailboxes) &&
	       a->d.idle_timeout == b->d.idle_timeout &&
	       a->d.poll_interval == b->d.poll_interval &&
	       a->d.max_connections == b->d.max_connections;
}

/* ---- paths ---- */

/* $HOME, else the password database's; NULL if neither is absolute.
 * Borrowed. */
static const char *
home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && h[0] == '/')
		return h;
	pw = getpwuid(getuid());
	if (pw && pw->pw_dir && pw->pw_dir[0] == '/')
		return pw->pw_dir;
	return NULL;
}

char *
config_default_path(void)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *h;

	/* The XDG spec says to ignore a relative XDG_CONFIG_HOME. */
	if (x && x[0] == '/')
		return xasprintf("%s/mailwatch/mailwatch.ini", x);
	h = home_dir();
	if (!h)
		return NULL;
	return xasprintf("%s/.config/mailwatch/mailwatch.ini", h);
}

/* "~/x" as x in the home directory (caller frees); NULL without one. */
static char *
expand_home(const char *tilde)
{
	const char *h = home_dir();

	return h ? xasprintf("%s%s", h, tilde + 1) : NULL;
}

/* ---- values ---- */

static int
lookup(const char *const *names, const char *v)
{
	for (int i = 0; names[i]; i++)
		if (!strcasecmp(names[i], v))
			return i;
	return -1;
}

static bool
get_enum(struct parser *p, enum key k, const char *v, const char *const *names,
	 const char *expected, int *r)
{
	int i = lookup(names, v);

	if (i < 0) {
		perr(p, p->lineno, "invalid value '%s' for %s: expected %s", v,
		     keys[k].name, expected);
		return false;
	}
	*r = i;
	return true;
}

static bool
get_uint(struct parser *p, enum key k, const char *v, unsigned min,
	 unsigned max, unsigned *r)
{
	unsigned long long n = 0;
	const char *s;

	for (s = v; *s >= '0' && *s <= '9'; s++)
		if (n <= max)
			n = n * 10 + (unsigned)(*s - '0');
	if (s == v || *s) {
		perr(p, p->lineno,
		     "invalid value '%s' for %s: expected a whole number", v,
		     keys[k].name);
		return false;
	}
	if (n < min || n > max) {
		perr(p, p->lineno, "%s: %s is out of range (%u..%u)",
		     keys[k].name, v, min, max);
		return false;
	}
	*r = (unsigned)n;
	return true;
}

static void
get_bool(struct parser *p, enum key k, const char *v, bool *r)
{
	static const char *const yes[] = {"yes", "true", "on", "1", NULL};
	static const char *const no[] = {"no", "false", "off", "0", NULL};

	if (lookup(yes, v) >= 0)
		*r = true;
	else if (lookup(no, v) >= 0)
		*r = false;
	else
		perr(p, p->lineno,
		     "invalid value '%s' for %s: expected yes or no (true "
		     "or false, on or off, 1 or 0)",
		     v,
		     keys[k].name);
}

/* Warns, naming the line, when k's program cannot be run as things are:
 * every message would log the failure. Only a warning: the program may
 * come later, and a service may have another PATH. */
static void
check_program(struct parser *p, enum key k, const char *prog)
{
	char found[PATH_MAX];
	struct stat st;
	const char *why = NULL;
	int r;

	/* The lookup hooks get (launch.c). */
	if (!strchr(prog, '/')) {
		r = launch_find(prog, found, sizeof(found));
		why = r == 0	     ? NULL
		      : r == -EACCES ? "in PATH, but not as an executable file"
				     : "not found in PATH";
	} else if (stat(prog, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a file";
	else if (access(prog, X_OK) < 0)
		why = "not executable (chmod +x?)";
	if (why)
		log_warn(NULL, "%s:%u: %s: %s: %s; it cannot run as things are",
			 p->path, p->lineno, keys[k].name, prog, why);
	/* A trial's "hk/env.sh" ran from a terminal, in the directory it
	 * was started from; under systemd that is the home directory. */
	else if (strchr(prog, '/') && prog[0] != '/')
		log_warn(NULL,
			 "%s:%u: %s: %s is a relative path, taken from the "
			 "directory mailwatch runs in (the home directory "
			 "under systemd): give it in full, or with ~/",
			 p->path, p->lineno, keys[k].name, prog);
}

/* True when the n bytes at w are a shell variable assignment (NAME=...). */
static bool
is_assignment(const char *w, size_t n)
{
	size_t name = strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
				"TUVWXYZ0123456789_");

	return name && name < n && w[name] == '=' &&
	       !(w[0] >= '0' && w[0] <= '9');
}

/* True when the n bytes at w are the word s. */
static bool
word_is(const char *w, size_t n, const char *s)
{
	return strlen(s) == n && !strncmp(w, s, n);
}

/* Warns as check_program() of the program a shell line (password_command)
 * starts with, when that is a plain word (quoted or not, after any
 * "NAME=value", "exec", "command", "nohup" and "env") that is not one of
 * the shell's own: a trial's unedited example ran "pass", not installed,
 * and only the first login said so. */
static void
check_shell_program(struct parser *p, enum key k, const char *line)
{
	static const char *const own[] = {
	    "eval",    "builtin", "cd",	      "read",  "set",	 "export",
	    "unset",   "ulimit",  "umask",    "trap",  "if",	 "for",
	    "while",   "until",	  "case",     "echo",  "printf", "test",
	    "true",    "false",	  "type",     ".",     "exit",	 "return",
	    "wait",    "shift",	  "local",    "alias", "hash",	 "readonly",
	    "getopts", "break",	  "continue", "times", "jobs",	 NULL};
	size_t n;
	bool quoted = false, assignments = true;
	char *word, *full;

	/* Assignments count only before the program and after env: sh
	 * runs "exec X=1 pass" as a program named "X=1". */
	for (;; line += n) {
		while (is_space(*line))
			line++;
		n = strcspn(line, " \t");
		if (assignments && is_assignment(line, n))
			continue;
		if (word_is(line, n, "exec") || word_is(line, n, "command") ||
		    word_is(line, n, "nohup"))
			assignments = false;
		else if (word_is(line, n, "env"))
			assignments = true;
		else
			break;
	}
	if (*line == '-')
		return; /* an option of those: not worth following */
	/* "pass" or 'pass': the word within. */
	if (n > 2 && (*line == '"' || *line == '\'') && line[n - 1] == *line) {
		line++;
		n -= 2;
		quoted = true;
	}
	if (!n || strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
			       "TUVWXYZ0123456789._+-/~=") != n)
		return;
	word = xstrndup(line, n);
	for (size_t i = 0; own[i]; i++)
		if (!strcmp(word, own[i]))
			goto out;
	/* A quoted '~' is not the home directory: nothing to look for. */
	if (!quoted && !strncmp(word, "~/", 2)) {
		full = expand_home(word);
		if (!full)
			goto out;
		free(word);
		word = full;
	} else if (word[0] == '~') {
		goto out;
	}
	check_program(p, k, word);
out:
	free(word);
}

/* A word of a command line that a shell would have taken for one of its
 * own: a pipe, a redirection, a list operator, a variable. A trial wrote
 * "cat /tmp/tok | head -n 1" as mutt would, and --check-config said OK. */
static bool
shell_word(const char *w)
{
	static const char *const ops[] = {"|", "||", "&&", "&", NULL};

	size_t n = strlen(w);

	for (size_t i = 0; ops[i]; i++)
		if (!strcmp(w, ops[i]))
			return true;
	if (w[0] == '>' || w[0] == '<' || !strncmp(w, "2>", 2) ||
	    !strncmp(w, "1>", 2) || w[0] == '`' || (n && w[n - 1] == ';'))
		return true;
	/* "~/" is expanded in the program's name only (get_argv()): a
	 * trial's "python3 ~/bin/hook.py" would not find its script. */
	if (w[0] == '~')
		return true;
	/* $VAR, ${VAR} or $(...) anywhere: "New mail from $MAILWATCH_FROM"
	 * in quotes is the likeliest of these. */
	for (const char *p = strchr(w, '$'); p; p = strchr(p + 1, '$'))
		if (p[1] == '{' || p[1] == '(' || p[1] == '_' ||
		    isalpha((unsigned char)p[1]))
			return true;
	return false;
}

static void
check_shell_words(struct parser *p, enum key k, char *const *argv)
{
	const char *base = strrchr(argv[0], '/');
	size_t i = 0;

	base = base ? base + 1 : argv[0];
	/* sh -c '...': the shell is there, in the script; the words after
	 * it are its $0, $1...: a trial's "sh -c 'echo' | tee x" piped
	 * nothing. */
	if (!strcmp(base, "sh") || !strcmp(base, "bash") ||
	    !strcmp(base, "dash") || !strcmp(base, "zsh")) {
		if (!argv[1] || strcmp(argv[1], "-c"))
			return;
		if (!argv[2]) {
			perr(p, p->lineno, "%s: %s -c without a script",
			     keys[k].name, argv[0]);
			return;
		}
		i = 3;
	}
	for (; argv[i]; i++) {
		if (!shell_word(argv[i]))
			continue;
		log_warn(NULL,
			 "%s:%u: %s: %s is passed on as it is: the command "
			 "runs without a shell (for one, write sh -c '...')",
			 p->path, p->lineno, keys[k].name, argv[i]);
		return;
	}
}

/* A command line, split; a leading "~/" in the program is expanded. */
static void
get_argv(struct parser *p, enum key k, const char *v, char ***r)
{
	const char *err = "";
	char *prog;

	if (!*v)
		return; /* none: overrides a default from [general] */
	if (config_split_argv(v, r, &err) < 0) {
		perr(p, p->lineno, "%s: %s", keys[k].name, err);
		return;
	}
	if (!*(*r)[0]) {
		perr(p, p->lineno, "%s: the program's name is empty",
		     keys[k].name);
		config_argv_free(r);
		return;
	}
	if (!strncmp((*r)[0], "~/", 2)) {
		prog = expand_home((*r)[0]);
		if (!prog) {
			perr(p, p->lineno,
			     "%s: cannot expand '~': no home directory",
			     keys[k].name);
			config_argv_free(r);
			return;
		}
		free((*r)[0]);
		(*r)[0] = prog;
	}
	check_program(p, k, (*r)[0]);
	check_shell_words(p, k, *r);
}

/* Valid UTF-8 without control characters. */
static bool
valid_name(const unsigned char *s, size_t n)
{
	size_t i = 0, len, k;
	unsigned cp, min;

	while (i < n) {
		unsigned c = s[i];

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Adds the names in v, separated by commas, to the account's mailboxes
 * (or, for ignore_mailboxes, to its patterns to leave out). A comma at the
 * end is allowed (the list goes on in the next line), and v may be empty
 * (the list starts in the next line). */
static void
get_mailboxes(struct parser *p, struct section *sec, enum key k,
	      const char *v)
{
	struct account *a = &sec->a;
	bool ignore = k == K_IGNORE_MAILBOXES;
	char ***list = ignore ? &a->ignore_mailboxes : &a->mailboxes;
	size_t *n = ignore ? &a->n_ignore_mailboxes : &a->n_mailboxes;
	const char *key = keys[k].name;
	const char *s = v, *stop = v + strlen(v), *comma, *end;
	size_t item = 0;

	if (s == stop)
		return;
	if (stop[-1] == ',')
		stop--;
	for (;;) {
		item++;
		(*(ignore ? &sec->ignore_items : &sec->mailbox_items))++;
		comma = memchr(s, ',', (size_t)(stop - s));
		end = comma ? comma : stop;
		while (s < end && is_space(*s))
			s++;
		while (end > s && is_space(end[-1]))
			end--;
		if (s == end) {
			perr(p, p->lineno, "%s: empty mailbox name", key);
		} else if (!valid_name((const unsigned char *)s,
				       (size_t)(end - s))) {
			perr(p, p->lineno,
			     "%s: mailbox name %zu is not valid UTF-8 "
			     "or holds a control character",
			     key, item);
		} else {
			char *name = xstrndup(s, (size_t)(end - s));
			bool dup = false;

			/* INBOX is case-insensitive (RFC 3501, 5.1). */
			if (!strcasecmp(name, "INBOX"))
				memcpy(name, "INBOX", 5);
			for (size_t i = 0; i < *n; i++)
				dup = dup || !strcmp((*list)[i], name);
			if (end - s >= 2 && (*s == '"' || *s == '\'') &&
			    end[-1] == *s)
				log_warn(NULL,
					 "%s:%u: %s: the quotes around %s are "
					 "part of the name (names are taken as "
					 "written, spaces too)",
					 p->path, p->lineno, key, name);
			if (dup) {
				perr(p, p->lineno,
				     "%s: duplicate mailbox '%s'", key, name);
				free(name);
			} else {
				*list = xrealloc(*list,
						 (*n + 2) * sizeof(**list));
				(*list)[(*n)++] = name;
				(*list)[*n] = NULL;
			}
		}
		if (!comma)
			break;
		s = comma + 1;
	}
}

static bool valid_name(const unsigned char *s, size_t n);

static void
get_host(struct parser *p, struct account *a, const char *v)
{
	const char *colon = strchr(v, ':');

	for (const char *c = v; *c; c++) {
		if (is_space(*c) || (unsigned char)*c < 0x20 || *c == 0x7f) {
			perr(p, p->lineno,
			     "invalid value '%s' for host: no spaces allowed",
			     v);
			return;
		}
	}
	if (strlen(v) > 255) {
		perr(p, p->lineno, "host: longer than 255 characters");
		return;
	}
	if (!valid_name((const unsigned char *)v, strlen(v))) {
		perr(p, p->lineno, "host: not valid UTF-8");
		return;
	}
	/* A trial's "imaps://localhost" and "127.0.0.1:993" passed, then
	 * failed to resolve at every try. An IPv6 address has two colons
	 * or more. */
	if (strstr(v, "://")) {
		perr(p, p->lineno,
		     "host: '%s' is a URL; give the server's name alone "
		     "(and port = and tls = for the rest)",
		     v);
		return;
	}
	if (colon && !strchr(colon + 1, ':')) {
		perr(p, p->lineno,
		     "host: '%s' holds a port; write the port as port = %s", v,
		     colon + 1);
		return;
	}
	/* "[::1]:993", "mail.example.org/": no name or address. */
	if (strchr(v, '/') || strchr(v, '[') || strchr(v, ']')) {
		perr(p, p->lineno,
		     "host: '%s' is not a host name or address (an IPv6 "
		     "address goes without brackets, a port as port =)",
		     v);
		return;
	}
	a->host = xstrdup(v);
}

/* Whether OpenSSL takes certificates from path as it will at each
 * connection; else says why at the line. A file it cannot read failed
 * every connection, retried as if the network were down, while
 * --check-config said OK. */
static bool
ca_file_loads(struct parser *p, const char *path)
{
	X509_STORE *store = X509_STORE_new();
	bool ok = store && X509_STORE_load_file(store, path) == 1;

	if (!ok) {
		const char *why = ERR_reason_error_string(ERR_peek_last_error());

		perr(p, p->lineno,
		     "ca_file: %s: no certificate can be read from it (%s); "
		     "it must hold PEM certificates (-----BEGIN "
		     "CERTIFICATE-----)",
		     path, why ? why : "unknown error");
	}
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

/* ca_file: absolute or "~/...", and readable now. */
static void
get_ca_file(struct parser *p, struct account *a, const char *v)
{
	struct stat st;
	char *path;
	int fd;

	if (v[0] == '~' && v[1] == '/') {
		path = expand_home(v);
		if (!path) {
			perr(p, p->lineno,
			     "ca_file: cannot expand '~': no home directory");
			return;
		}
	} else if (v[0] == '/') {
		path = xstrdup(v);
	} else {
		perr(p, p->lineno,
		     "ca_file: '%s' must be absolute or start with '~/'", v);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		perr(p, p->lineno, "ca_file: %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		perr(p, p->lineno, "ca_file: %s: not a regular file", path);
		close(fd);
		goto fail;
	}
	close(fd);
	if (!ca_file_loads(p, path))
		goto fail;
	a->ca_file = path;
	return;

fail:
	free(path);
}

/* Validates v and stores it in s; errors name the key and line. Password
 * values are never echoed. */
static void
set_value(struct parser *p, struct section *s, enum key k, const char *v)
{
	unsigned u;
	int i;

	switch (k) {
	case K_NOTIFY:
		get_bool(p, k, v, &s->d.notify);
		break;
	case K_ON_NEW_MAIL:
		get_argv(p, k, v, &s->d.on_new_mail);
		break;
	case K_ON_NEW_MAIL_POST:
		get_argv(p, k, v, &s->d.on_new_mail_post);
		break;
	case K_ON_CLICK:
		get_argv(p, k, v, &s->d.on_click);
		break;
	case K_HOOK_TIMEOUT:
		get_uint(p, k, v, 1, 3600, &s->d.hook_timeout);
		break;
	case K_IDLE_TIMEOUT:
		/* RFC 2177: re-issue IDLE at least every 29 minutes. */
		get_uint(p, k, v, 1, 1740, &s->d.idle_timeout);
		break;
	case K_POLL_INTERVAL:
		get_uint(p, k, v, 10, 86400, &s->d.poll_interval);
		break;
	case K_MAX_CONNECTIONS:
		/* One IDLE connection plus one that checks the rest. */
		get_uint(p, k, v, MAX_CONNECTIONS_MIN, 100,
			 &s->d.max_connections);
		break;
	case K_CATCH_UP:
		if (get_enum(p, k, v, catch_up_names, "notify, summary or skip",
			     &i))
			s->d.catch_up = (enum catch_up_mode)i;
		break;
	case K_CATCH_UP_MAX:
		get_uint(p, k, v, 0, 10000, &s->d.catch_up_max);
		break;
	case K_ICON:
		if (*v)
			s->d.icon = xstrdup(v);
		break;
	case K_URGENCY:
		get_enum(p, k, v, urgency_names, "low, normal or critical",
			 &s->d.urgency);
		break;
	case K_BURST:
		get_uint(p, k, v, 0, 10000, &s->d.burst);
		break;
	case K_HOST:
		get_host(p, &s->a, v);
		break;
	case K_PORT:
		if (get_uint(p, k, v, 1, 65535, &u))
			s->a.port = (uint16_t)u;
		break;
	case K_TLS:
		if (get_enum(p, k, v, tls_names, "implicit, starttls or none",
			     &i))
			s->a.tls = (enum tls_mode)i;
		break;
	case K_CA_FILE:
		get_ca_file(p, &s->a, v);
		break;
	case K_USERNAME:
		s->a.username = xstrdup(v);
		break;
	case K_PASSWORD:
		s->a.password = xstrdup(v);
		/* Values are taken as written: quotes would be part of it. */
		if (strlen(v) >= 2 && (*v == '"' || *v == '\'') &&
		    v[strlen(v) - 1] == *v)
			log_warn(NULL,
				 "%s:%u: password: the quotes around it are "
				 "part of the password (values are taken as "
				 "written)",
				 p->path, p->lineno);
		break;
	case K_PASSWORD_COMMAND:
		s->a.password_command = xstrdup(v);
		check_shell_program(p, k, v);
		break;
	case K_OAUTH2_TOKEN_COMMAND:
		get_argv(p, k, v, &s->a.oauth2_token_command);
		break;
	case K_AUTH:
		if (get_enum(p, k, v, auth_names,
			     "auto, plain, login, oauthbearer or xoauth2", &i))
			s->a.auth = (enum auth_mech)i;
		break;
	case K_SEND_ID:
		get_bool(p, k, v, &s->a.send_id);
		break;
	case K_MAILBOXES:
	case K_IGNORE_MAILBOXES:
		get_mailboxes(p, s, k, v);
		break;
	case K_LOG_LEVEL:
		if (get_enum(p, k, v, log_level_names,
			     "error, warning, info or debug", &i))
			s->log_level = log_levels[i];
		break;
	case N_KEYS:
		break;
	}
}

/* ---- the parser ---- */

/* True for the keys whose value is a list that may go on in indented
 * lines. */
static bool
is_list(int k)
{
	return k == K_MAILBOXES || k == K_IGNORE_MAILBOXES;
}

/* The key whose name is within two edits of name (a typo), or NULL. */
static const char *
nearest_key(const char *name)
{
	const char *best = NULL;
	size_t best_d = 3;

	for (int k = 0; k < N_KEYS; k++) {
		const char *t = keys[k].name;
		size_t n = strlen(name), m = strlen(t), prev[64], cur[64];

		if (n >= 63 || m >= 63)
			continue;
		/* Levenshtein distance, one row at a time. */
		for (size_t j = 0; j <= m; j++)
			prev[j] = j;
		for (size_t i = 1; i <= n; i++) {
			cur[0] = i;
			for (size_t j = 1; j <= m; j++) {
				size_t sub =
				    prev[j - 1] + (name[i - 1] != t[j - 1]);
				size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

				cur[j] = sub < del ? (sub < ins ? sub : ins)
						   : (del < ins ? del : ins);
			}
			memcpy(prev, cur, (m + 1) * sizeof(*prev));
		}
		if (prev[m] < best_d) {
			best_d = prev[m];
			best = t;
		}
	}
	return best;
}

/* A "name = value" line; sets what a continuation line after it is. */
static void
handle_key(struct parser *p, const char *name, const char *value)
{
	struct section *s = p->cur;
	char where[160];
	int k;

	if (!strcmp(name, "password"))
		p->has_password = true;
	if (p->kind == SEC_BAD)
		return; /* the header was reported */
	if (p->kind == SEC_NONE) {
		perr(p, p->lineno,
		     "key '%s' outside of a section: put it under [general] or "
		     "[account NAME]",
		     name);
		return;
	}
	if (p->kind == SEC_GENERAL)
		snprintf(where, sizeof(where), "[general]");
	else
		snprintf(where, sizeof(where), "[account %s]", s->a.name);
	for (k = 0; k < N_KEYS; k++)
		if (!strcmp(keys[k].name, name))
			break;
	if (k == N_KEYS) {
		const char *near = nearest_key(name);

		perr(p, p->lineno, "unknown key '%s' in %s%s%s%s", name, where,
		     near ? " (did you mean '" : "", near ? near : "",
		     near ? "'?)" : "");
		/* Lines indented under it are told too: a trial's keys
		 * indented by mistake went unreported behind it. */
		p->cont = CONT_UNKNOWN;
		snprintf(p->cont_name, sizeof(p->cont_name), "%s", name);
		return;
	}
	if (!(keys[k].where &
	      (p->kind == SEC_GENERAL ? IN_GENERAL : IN_ACCOUNT))) {
		perr(p, p->lineno, "key '%s' is not allowed in %s (only in %s)",
		     name, where,
		     p->kind == SEC_GENERAL ? "[account NAME]" : "[general]");
		return;
	}
	if (s->key_line[k]) {
		perr(p, p->lineno,
		     "duplicate key '%s' (first set on line %u)%s", name,
		     s->key_line[k],
		     is_list(k) ? ": continue the list in indented lines"
				      : "");
		return;
	}
	s->key_line[k] = p->lineno;
	p->cont = is_list(k) ? CONT_MAILBOXES : CONT_ERROR;
	p->cont_key = (enum key)k;
	/* An empty mailboxes may go on in the next line: check_account(). */
	if (!*value && !keys[k].empty_ok && !is_list(k)) {
		perr(p, p->lineno, "%s: empty value", name);
		return;
	}
	set_value(p, s, (enum key)k, value);
}

/* Whether line is "KEY = ..." for a key mailwatch knows. */
static bool
is_key_line(const char *line)
{
	size_t n = strcspn(line, " \t=");

	if (line[n + strspn(line + n, " \t")] != '=')
		return false;
	for (int k = 0; k < N_KEYS; k++)
		if (strlen(keys[k].name) == n && !strncmp(keys[k].name, line, n))
			return true;
	return false;
}

/* A line indented further than the key line above it: value (trimmed, the
 * comment removed) continues that key. */
static void
continuation(struct parser *p, const char *value)
{
	switch (p->cont) {
	case CONT_MAILBOXES:
		set_value(p, p->cur, p->cont_key, value);
		break;
	case CONT_ERROR:
		perr(p, p->lineno,
		     "indented line continues '%s', which takes one line (only "
		     "mailboxes and ignore_mailboxes may go on over several "
		     "lines)",
		     keys[p->cont_key].name);
		p->cont = CONT_SKIP; /* reported once */
		break;
	case CONT_UNKNOWN:
		if (!is_key_line(value))
			break; /* part of the line reported */
		perr(p, p->lineno,
		     "indented line continues '%s', which is no key (a key "
		     "of its own is not indented further than the line "
		     "above)",
		     p->cont_name);
		p->cont = CONT_SKIP;
		break;
	case CONT_NONE:
	case CONT_SKIP:
		break;
	}
}

static bool
valid_account_name(const char *n)
{
	if (!*n || !strcmp(n, ".") || !strcmp(n, ".."))
		return false;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
		      (*n >= '0' && *n <= '9') || *n == '.' || *n == '_' ||
		      *n == '-'))
			return false;
	return true;
}

/* s: "[...]", trimmed. Sets the current section, or SEC_BAD after an error
 * so that the keys under a bad header are skipped silently. */
static void
section_header(struct parser *p, char *s)
{
	char *end = strchr(s, ']'), *rest, *type, *name;
	struct section *sec;

	p->kind = SEC_BAD;
	p->cur = NULL;
	if (!end) {
		perr(p, p->lineno, "missing ']' in section header");
		return;
	}
	rest = skip_space(end + 1);
	if (*rest && *rest != ';' && *rest != '#') {
		perr(p, p->lineno, "unexpected text after section header");
		return;
	}
	*end = '\0';
	type = skip_space(s + 1);
	rstrip(type);
	for (name = type; *name && !is_space(*name); name++)
		;
	if (*name)
		*name++ = '\0';
	name = skip_space(name);

	if (!strcmp(type, "general") && !*name) {
		if (p->general.line) {
			perr(p, p->lineno,
			     "duplicate section [general] (first on line %u)",
			     p->general.line);
			return;
		}
		p->general.line = p->lineno;
		p->kind = SEC_GENERAL;
		p->cur = &p->general;
		return;
	}
	if (strcmp(type, "account")) {
		perr(p, p->lineno,
		     "unknown section [%s%s%s]: expected [general] or "
		     "[account NAME]",
		     type, *name ? " " : "", name);
		return;
	}
	if (!*name) {
		perr(p, p->lineno, "missing account name: use [account NAME]");
		return;
	}
	if (!valid_account_name(name) || strlen(name) > ACCOUNT_NAME_MAX) {
		perr(p, p->lineno,
		     "invalid account name '%s': use at most %d letters, "
		     "digits, '.', '_' and '-'",
		     name, ACCOUNT_NAME_MAX);
		return;
	}
	for (size_t i = 0; i < p->n_accounts; i++) {
		if (!strcmp(p->accounts[i]->a.name, name)) {
			perr(p, p->lineno,
			     "duplicate section [account %s] (first on line "
			     "%u)",
			     name, p->accounts[i]->line);
			return;
		}
	}
	sec = xcalloc(1, sizeof(*sec));
	sec->line = p->lineno;
	sec->a.name = xstrdup(name);
	sec->a.line = p->lineno;
	p->accounts =
	    xrealloc(p->accounts, (p->n_accounts + 1) * sizeof(*p->accounts));
	p->accounts[p->n_accounts++] = sec;
	p->kind = SEC_ACCOUNT;
	p->cur = sec;
}

/* Whether key k's value is a command line (its words quoted as
 * config_split_argv() or, password_command, the shell reads them). */
static bool
is_command_key(const char *k)
{
	static const enum key commands[] = {
		K_ON_NEW_MAIL, K_ON_NEW_MAIL_POST, K_ON_CLICK,
		K_PASSWORD_COMMAND, K_OAUTH2_TOKEN_COMMAND,
	};

	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (!strcmp(k, keys[commands[i]].name))
			return true;
	return false;
}

/* Cuts s at an inline comment: a ';' at its start or after a blank, and
 * with command, not one quoted or escaped as config_split_argv() and the
 * shell read them ("sh -c 'a ; b'": trial AC's was cut at the ';', then
 * refused as an unterminated quote). Returns true when there was one after
 * some value. */
static bool
strip_comment(char *s, bool command)
{
	bool cut = false;
	char quote = 0;

	for (char *c = s; *c; c++) {
		if (command && quote) {
			if (*c == quote)
				quote = 0;
			else if (quote == '"' && *c == '\\' && c[1])
				c++;
			continue;
		}
		if (command && (*c == '\'' || *c == '"')) {
			quote = *c;
			continue;
		}
		if (command && *c == '\\' && c[1]) {
			c++;
			continue;
		}
		if (*c == ';' && (c == s || is_space(c[-1]))) {
			cut = c != s;
			*c = '\0';
			break;
		}
	}
	rstrip(s);
	return cut;
}

/* s: a trimmed line that is not a comment, a header or a continuation.
 * Reports it unless it is "key = value" (or "key: value"). */
static void
key_line(struct parser *p, char *s)
{
	char *sep, *value;
	bool cut;

	for (sep = s; *sep && *sep != '=' && *sep != ':'; sep++)
		if (*sep == ';' && sep > s && is_space(sep[-1]))
			break;
	if (*sep != '=' && *sep != ':') {
		perr(p, p->lineno, "expected 'key = value'");
		return;
	}
	if (sep == s) {
		perr(p, p->lineno, "missing key name before '%c'", *sep);
		return;
	}
	value = skip_space(sep + 1);
	*sep = '\0';
	rstrip(s);
	cut = strip_comment(value, is_command_key(s));
	/* password_command is a shell line, where " ; next" is the
	 * shell's: cut here, it would fail later, pointing nowhere. So
	 * would a password with " ;" in it (trial AA): "login failed". */
	if (cut && !strcmp(s, "password_command"))
		log_warn(NULL,
			 "%s:%u: %s: the text from ' ;' on is a comment, not "
			 "run; quote a ';' the command needs",
			 p->path, p->lineno, s);
	else if (cut && !strcmp(s, "password"))
		log_warn(NULL,
			 "%s:%u: %s: the text from ' ;' on is a comment, not "
			 "part of the password; give one with ' ;' in it by "
			 "password_command",
			 p->path, p->lineno, s);
	handle_key(p, s, value);
}

/* Reads the next line into p->line, without its "\n". Returns its length,
 * or -1 at the end of the file or on a read error (p->read_errno). Of a
 * line longer than CONFIG_LINE_MAX only the first CONFIG_LINE_MAX + 1
 * bytes are kept, and that is the length returned. */
static ssize_t
read_line(struct parser *p)
{
	size_t n = 0;
	int c;

	errno = 0;
	while ((c = getc(p->f)) != EOF && c != '\n')
		if (n <= CONFIG_LINE_MAX)
			p->line[n++] = (char)c;
	if (c == EOF && ferror(p->f)) {
		p->read_errno = errno ? errno : EIO;
		return -1;
	}
	if (c == EOF && !n)
		return -1;
	p->line[n] = '\0';
	return (ssize_t)n;
}

/* One line of n bytes, in p->line; p->lineno is its number. */
static void
parse_line(struct parser *p, size_t n)
{
	char *s = p->line;
	size_t indent = 0;
	bool cont;

	if (p->lineno == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
		s += 3; /* UTF-8 byte order mark */
	while (is_space(s[indent]))
		indent++;
	/* A line indented further than a key line continues it. */
	cont = p->cont != CONT_NONE && indent > p->cont_indent;
	if (n > CONFIG_LINE_MAX || strlen(p->line) != n) {
		if (n > CONFIG_LINE_MAX)
			perr(p, p->lineno,
			     "line longer than %d bytes (a long mailboxes list "
			     "can go on in indented lines)",
			     CONFIG_LINE_MAX);
		else
			perr(p, p->lineno, "NUL byte in line");
		if (!cont) {
			p->cont = CONT_SKIP;
			p->cont_indent = indent;
		}
		return;
	}
	s += indent;
	rstrip(s);
	if (!*s) {
		p->cont = CONT_NONE; /* a blank line ends a value */
		return;
	}
	if (*s == ';' || *s == '#')
		return;
	if (cont) {
		strip_comment(s, false);
		continuation(p, s);
		return;
	}
	p->cont_indent = indent;
	if (*s == '[') {
		section_header(p, s);
		p->cont = CONT_NONE;
		return;
	}
	p->cont = CONT_SKIP; /* unless handle_key() says otherwise */
	key_line(p, s);
}

static unsigned
max3(unsigned a, unsigned b, unsigned c)
{
	unsigned m = a > b ? a : b;

	return m > c ? m : c;
}

/* True when host names this machine (then nothing crosses a network):
 * localhost, or a loopback address in any spelling (trial S was warned
 * of "LOCALHOST", "0:0:0:0:0:0:0:1" and "::ffff:127.0.0.1"; trial AM of
 * "127.1", which inet_aton() reads as the resolver does). */
static bool
is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost."))
		return true;
	if (inet_aton(host, &a4))
		return ntohl(a4.s_addr) >> 24 == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* After the whole file: what a single line cannot tell. */
static void
check_account(struct parser *p, struct section *s)
{
	static const enum key required[] = {K_HOST, K_USERNAME};
	unsigned pw = s->key_line[K_PASSWORD];
	unsigned pc = s->key_line[K_PASSWORD_COMMAND];
	unsigned tc = s->key_line[K_OAUTH2_TOKEN_COMMAND];
	unsigned mb = s->key_line[K_MAILBOXES];

	if (mb && !s->mailbox_items)
		perr(p, mb, "mailboxes: empty value");
	if (s->key_line[K_IGNORE_MAILBOXES] && !s->ignore_items)
		perr(p, s->key_line[K_IGNORE_MAILBOXES],
		     "ignore_mailboxes: empty value");
	for (size_t i = 0; i < sizeof(required) / sizeof(*required); i++)
		if (!s->key_line[required[i]])
			perr(p, s->line,
			     "[account %s]: missing required key '%s'",
			     s->a.name, keys[required[i]].name);
	if (!pw && !pc && !tc)
		perr(p, s->line,
		     "[account %s]: missing required key 'password_command', "
		     "'password' or 'oauth2_token_command'",
		     s->a.name);
	else if (!!pw + !!pc + !!tc > 1)
		perr(p, max3(pw, pc, tc),
		     "[account %s]: set one of 'password', "
		     "'password_command' and 'oauth2_token_command', not two",
		     s->a.name);
	else if (tc && (s->a.auth == AUTH_PLAIN || s->a.auth == AUTH_LOGIN))
		perr(p, s->key_line[K_AUTH],
		     "[account %s]: auth = %s needs a password, not "
		     "oauth2_token_command",
		     s->a.name, auth_names[s->a.auth]);
	else if (!tc && (s->a.auth == AUTH_OAUTHBEARER ||
			 s->a.auth == AUTH_XOAUTH2))
		perr(p, s->key_line[K_AUTH],
		     "[account %s]: auth = %s needs oauth2_token_command",
		     s->a.name, auth_names[s->a.auth]);
	if (s->a.tls == TLS_NONE && s->a.host && !is_loopback(s->a.host))
		log_warn(NULL,
			 "%s:%u: [account %s]: tls = none: the login and the "
			 "mail's headers cross the network to %s in clear",
			 p->path, s->key_line[K_TLS], s->a.name, s->a.host);
	/* The other's well-known port: found out only after a timeout (the
	 * server and mailwatch wait for each other) or a TLS error. */
	if (s->key_line[K_PORT] && s->a.port == 993 &&
	    s->a.tls != TLS_IMPLICIT)
		log_warn(NULL,
			 "%s:%u: [account %s]: port 993 is for implicit TLS, "
			 "which tls = %s does not speak: the server will wait "
			 "for a TLS handshake (set tls = implicit)",
			 p->path, s->key_line[K_PORT], s->a.name,
			 s->a.tls == TLS_STARTTLS ? "starttls" : "none");
	else if (s->key_line[K_PORT] && s->a.port == 143 &&
		 s->a.tls == TLS_IMPLICIT)
		log_warn(NULL,
			 "%s:%u: [account %s]: port 143 is for plain IMAP and "
			 "STARTTLS, not implicit TLS (set tls = starttls, or "
			 "port = 993)",
			 p->path, s->key_line[K_PORT], s->a.name);
}

/* Moves the values set in s over those in d. */
static void
merge_defaults(struct account_defaults *d, struct section *s)
{
#define MOVE(key, field, free_fn)                                              \
	do {                                                                   \
		if (s->key_line[key]) {                                        \
			free_fn(&d->field);                                    \
			d->field = s->d.field;                                 \
			s->d.field = NULL;                                     \
		}                                                              \
	} while (0)
#define COPY(key, field)                                                       \
	do {                                                                   \
		if (s->key_line[key])                                          \
			d->field = s->d.field;                                 \
	} while (0)
	COPY(K_NOTIFY, notify);
	MOVE(K_ON_NEW_MAIL, on_new_mail, config_argv_free);
	MOVE(K_ON_NEW_MAIL_POST, on_new_mail_post, config_argv_free);
	MOVE(K_ON_CLICK, on_click, config_argv_free);
	COPY(K_HOOK_TIMEOUT, hook_timeout);
	COPY(K_IDLE_TIMEOUT, idle_timeout);
	COPY(K_POLL_INTERVAL, poll_interval);
	COPY(K_MAX_CONNECTIONS, max_connections);
	COPY(K_CATCH_UP, catch_up);
	COPY(K_CATCH_UP_MAX, catch_up_max);
	MOVE(K_ICON, icon, freep);
	COPY(K_URGENCY, urgency);
	COPY(K_BURST, burst);
#undef MOVE
#undef COPY
}

/* The first mailbox name a and b both list ("INBOX" in any case), or
 * NULL. */
static const char *
shared_mailbox(const struct account *a, const struct account *b)
{
	for (size_t i = 0; i < a->n_mailboxes; i++)
		for (size_t j = 0; j < b->n_mailboxes; j++)
			if (!strcmp(a->mailboxes[i], b->mailboxes[j]) ||
			    (!strcasecmp(a->mailboxes[i], "INBOX") &&
			     !strcasecmp(b->mailboxes[j], "INBOX")))
				return a->mailboxes[i];
	return NULL;
}

/* Whether a and b are one server: one host, on one port or on the two
 * standard ones (993 and 143 are mostly one server's two doors), not on
 * two ports of their own (a trial's two Dovecots on one address). */
static bool
same_server(const struct account *a, const struct account *b)
{
	bool a_std = a->port == 993 || a->port == 143;
	bool b_std = b->port == 993 || b->port == 143;

	return !strcasecmp(a->host, b->host) &&
	       (a->port == b->port || (a_std && b_std));
}

bool
config_same_login(const struct account *a, const struct account *b)
{
	return same_server(a, b) && !strcmp(a->username, b->username);
}

/* Two accounts for one user of one server that watch the same mailbox
 * announce each message there twice, and spend the server's connection
 * limit twice: a copied section, most likely. */
static void
warn_shared(const struct config *cfg)
{
	for (size_t j = 1; j < cfg->n_accounts; j++) {
		const struct account *b = &cfg->accounts[j];

		for (size_t i = 0; i < j; i++) {
			const struct account *a = &cfg->accounts[i];
			const char *box;

			if (!config_same_login(a, b) ||
			    !(box = shared_mailbox(a, b)))
				continue;
			log_warn(NULL,
				 "%s:%u: [account %s] is the same user of "
				 "the same server as [account %s] (line %u), "
				 "and both watch %s: each new message there "
				 "is announced twice",
				 cfg->path, b->line, b->name, a->name, a->line,
				 box);
			break;
		}
	}
}

/* Accounts that log in as one user of one server share its limit on
 * connections: where neither they nor [general] set max_connections,
 * they split the default, each at least the least allowed (trial AD's
 * two, at 5 each, took all of Dovecot's 10 and left the user's mail
 * client none). */
static void
share_budget(struct config *cfg, const struct parser *p)
{
	if (p->general.key_line[K_MAX_CONNECTIONS])
		return;
	for (size_t i = 0; i < cfg->n_accounts; i++) {
		struct account *a = &cfg->accounts[i];
		unsigned k = 0;

		if (p->accounts[i]->key_line[K_MAX_CONNECTIONS])
			continue;
		for (size_t j = 0; j < cfg->n_accounts; j++)
			k += config_same_login(a, &cfg->accounts[j]);
		if (k > 1)
			a->d.max_connections =
			    MAX_CONNECTIONS_DEFAULT / k > MAX_CONNECTIONS_MIN
				? MAX_CONNECTIONS_DEFAULT / k
				: MAX_CONNECTIONS_MIN;
	}
}

/* Builds the config from a parse without errors; moves values out of p. */
static struct config *
build(struct parser *p)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	cfg->path = xstrdup(p->path);
	cfg->log_level =
	    p->general.key_line[K_LOG_LEVEL] ? p->general.log_level : LOG_INFO;
	defaults_init(&cfg->d);
	merge_defaults(&cfg->d, &p->general);
	cfg->accounts = xcalloc(p->n_accounts, sizeof(*cfg->accounts));
	cfg->n_accounts = p->n_accounts;
	for (size_t i = 0; i < p->n_accounts; i++) {
		struct section *s = p->accounts[i];
		struct account *a = &cfg->accounts[i];

		*a = s->a;
		memset(&s->a, 0, sizeof(s->a));
		defaults_copy(&a->d, &cfg->d);
		merge_defaults(&a->d, s);
		if (!s->key_line[K_PORT])
			a->port = a->tls == TLS_IMPLICIT ? 993 : 143;
		if (!a->mailboxes) {
			a->mailboxes = xcalloc(2, sizeof(*a->mailboxes));
			a->mailboxes[0] = xstrdup("INBOX");
			a->n_mailboxes = 1;
		}
	}
	share_budget(cfg, p);
	warn_shared(cfg);
	return cfg;
}

int
config_load(const char *path, struct config **cfg_r)
{
	struct parser p = {.path = path};
	struct stat st;
	ssize_t n;
	int r;

	if (!path) {
		log_err(NULL, "no configuration file: no home directory to "
			      "look in");
		return -ENOENT;
	}
	p.f = fopen(path, "re");
	if (!p.f) {
		r = -errno;
		log_err(NULL, "%s: %s%s", path, strerror(-r),
			r == -ENOENT ? " (start from mailwatch.ini.example; "
				       "see mailwatch.ini(5))"
				     : "");
		return r;
	}
	if (fstat(fileno(p.f), &st) < 0) {
		r = -errno;
		log_err(NULL, "%s: %s", path, strerror(-r));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		log_err(NULL, "%s: %s", path, strerror(-r));
		goto fail;
	}
	if (S_ISREG(st.st_mode) && st.st_size > CONFIG_SIZE_MAX) {
		r = -EFBIG;
		log_err(NULL, "%s: larger than %d bytes; not a configuration",
			path, CONFIG_SIZE_MAX);
		goto fail;
	}

	while ((n = read_line(&p)) >= 0) {
		p.lineno++;
		parse_line(&p, (size_t)n);
	}
	if (p.read_errno) {
		r = -p.read_errno;
		log_err(NULL, "%s: %s", path, strerror(-r));
		goto fail;
	}

	if (p.has_password && (st.st_mode & 077))
		log_warn(NULL,
			 "%s: holds a password but is accessible by other "
			 "users: run 'chmod 600 %s' or use password_command",
			 path, path);

	for (size_t i = 0; i < p.n_accounts; i++)
		check_account(&p, p.accounts[i]);
	if (!p.n_accounts && !p.n_errors)
		perr(&p, 0, "no [account NAME] section: nothing to watch");
	if (p.n_errors) {
		r = -EINVAL;
		goto fail;
	}
	*cfg_r = build(&p);
	r = 0;

fail:
	section_finish(&p.general);
	for (size_t i = 0; i < p.n_accounts; i++) {
		section_finish(p.accounts[i]);
		free(p.accounts[i]);
	}
	free(p.accounts);
	explicit_bzero(p.line, sizeof(p.line));
	fclose(p.f);
	return r;
}
