/* config: the ini file, validated into plain structs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit status for configuration errors (sysexits.h EX_CONFIG). */
#define CONFIG_EXIT 78

enum tls_mode { TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE };
enum catch_up_mode { CATCH_UP_NOTIFY, CATCH_UP_SUMMARY, CATCH_UP_SKIP };
/* How to log in (auth =). AUTH_AUTO: with a password, AUTHENTICATE PLAIN
 * where offered, else LOGIN; with a token, OAUTHBEARER where offered, else
 * XOAUTH2. */
enum auth_mech {
	AUTH_AUTO,
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_OAUTHBEARER,
	AUTH_XOAUTH2,
};

/* max_connections: the default, and the least (one IDLE connection plus
 * one that checks the rest). */
#define MAX_CONNECTIONS_DEFAULT 5
#define MAX_CONNECTIONS_MIN 2

/* Settings an [account] may override from [general]. */
struct account_defaults {
	bool notify;               /* desktop notifications (default yes) */
	char **on_new_mail;        /* argv, NULL-terminated; NULL if unset */
	char **on_new_mail_post;   /* argv; NULL if unset */
	char **on_click;           /* argv; NULL if unset */
	unsigned hook_timeout;     /* seconds, default 30 */
	unsigned idle_timeout;     /* seconds before IDLE is re-issued, default
				      1500 (25 min), at most 1740 (29 min) */
	unsigned poll_interval;    /* seconds between NOOPs without IDLE, and
				      between STATUS checks of the mailboxes
				      beyond the IDLE budget; default 60 */
	unsigned max_connections;  /* the most connections open at once to
				      the account's server:
				      MAX_CONNECTIONS_MIN..100, default
				      MAX_CONNECTIONS_DEFAULT, shared by the
				      accounts of one login */
	enum catch_up_mode catch_up; /* default CATCH_UP_NOTIFY */
	unsigned catch_up_max;     /* above it one summary, default 10 */
	char *icon;                /* notification icon name or path; NULL */
	int urgency;               /* 0 low, 1 normal (default), 2 critical */
	unsigned burst;            /* more notifications than this within
				      SINK_BURST_WINDOW seconds become one
				      summary per account; 0: never (default
				      3) */
};

struct account {
	char *name;         /* the section's name: [account NAME] */
	char *host;
	uint16_t port;      /* default 993 for implicit, else 143 */
	enum tls_mode tls;  /* default TLS_IMPLICIT */
	char *ca_file;      /* NULL: the system store */
	char *username;
	char *password;         /* from the file; NULL if password_command */
	char *password_command; /* a shell line; NULL if password */
	/* argv of oauth2_token_command (no shell), NULL-terminated; NULL
	 * unless the account signs in with an OAuth2 access token, when
	 * password and password_command are NULL. */
	char **oauth2_token_command;
	enum auth_mech auth; /* default AUTH_AUTO */
	bool send_id;        /* ID (RFC 2971) after login; default no */
	/* UTF-8 names and patterns ('*' or '%' as in IMAP LIST),
	 * NULL-terminated, at least one */
	char **mailboxes;
	size_t n_mailboxes;
	/* Patterns of mailboxes the patterns of mailboxes leave out;
	 * NULL-terminated, NULL when unset */
	char **ignore_mailboxes;
	size_t n_ignore_mailboxes;
	struct account_defaults d;
	unsigned line;      /* line of the [account] header, for messages */
};

struct config {
	char *path;
	int log_level;      /* syslog priority: LOG_ERR..LOG_DEBUG */
	struct account_defaults d; /* [general] */
	struct account *accounts;
	size_t n_accounts;
};

/* $XDG_CONFIG_HOME/mailwatch/mailwatch.ini, else
 * ~/.config/mailwatch/mailwatch.ini. Caller frees. NULL when there is no
 * home directory to be found. */
char *config_default_path(void);

/* Loads and validates path. On error logs "path:line: message" for each
 * problem (log_err) and returns a negative errno; *cfg_r is set only on
 * success (caller frees with config_free). Warns when a file holding a
 * password is readable by others. Does not run password_command. */
int config_load(const char *path, struct config **cfg_r);
/* Whether accounts a and b log in as one user of one server, whose
 * limit on connections they then share. */
bool config_same_login(const struct account *a, const struct account *b);
void config_free(struct config **cfg);

/* True when the two accounts' settings are the same (for reload). */
bool config_account_equal(const struct account *a, const struct account *b);
/* True when they differ at most in what is read each time mail is
 * announced (hooks, notifications, catch-up), which a running account
 * takes from its rebound configuration without reconnecting. */
bool config_account_same_watch(const struct account *a,
			       const struct account *b);

/* Splits a command line into a NULL-terminated argv with simple quoting:
 * whitespace separates words; '...' is literal; "..." allows \" and \\;
 * a backslash outside quotes escapes the next character. No shell, no
 * expansion. Returns 0 and a new argv (free with config_argv_free), or
 * -EINVAL with *err_r set to a static message. */
int config_split_argv(const char *line, char ***argv_r, const char **err_r);
void config_argv_free(char ***argv);
char **config_argv_dup(char *const *argv);
