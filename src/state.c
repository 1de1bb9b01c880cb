#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define MAGIC_V1 "mailwatch-state 1\n"
#define MAGIC "mailwatch-state 2\n"
/* mkostemp's suffix of the temporary file written next to a state file. */
#define TMP_SUFFIX ".XXXXXX"
/* '~' and 16 hex digits: the end of a hashed file name. */
#define HASH_LEN 17
/* What a file may hold besides its magic and owner lines; more is not
 * ours. */
#define NUMBERS_MAX 256

/* fsync() of the directory path, so that entries created or renamed in it
 * survive a power loss. Returns 0 or a negative errno; a file system that
 * cannot sync directories (EINVAL) counts as success. */
static int
sync_dir_fd(int fd)
{
	if (fsync(fd) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

static void
sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || sync_dir_fd(fd) < 0)
		log_warn(NULL, "state: sync %s: %m", path);
	if (fd >= 0)
		close(fd);
}

/* mkdir path 0700; when it was created, syncs its parent so that it stays
 * created. */
static void
make_dir(const char *path)
{
	char *parent;

	if (mkdir(path, 0700) < 0) {
		if (errno != EEXIST)
			log_warn(NULL, "state: mkdir %s: %m", path);
		return;
	}
	parent = xstrdup(path);
	*strrchr(parent, '/') = 0;
	sync_dir(*parent ? parent : "/");
	free(parent);
}

char *
state_dir(void)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *dir, *parent;

	if (x && *x == '/') {
		parent = xstrdup(x);
	} else if (home && *home) {
		parent = xasprintf("%s/.local/state", home);
	} else {
		log_err(NULL, "state: neither XDG_STATE_HOME nor HOME is set");
		return NULL;
	}
	dir = xasprintf("%s/mailwatch", parent);
	/* The parent may be missing on a fresh account; 0700 like XDG asks. */
	make_dir(parent);
	make_dir(dir);
	free(parent);
	return dir;
}

/* How escape() writes a name. */
enum esc {
	ESC_ACCOUNT, /* in a file name: [A-Za-z0-9._-] kept */
	ESC_MAILBOX, /* in a file name: [A-Za-z0-9_-] kept */
	ESC_LINE,    /* in the file: all but controls, DEL and '%' kept */
};

static bool
keeps(enum esc how, unsigned char c)
{
	if (how == ESC_LINE)
		return c >= 0x20 && c != 0x7f && c != '%';
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       (how == ESC_ACCOUNT && c == '.');
}

/* Writes s at p, every byte how does not keep as %XX; p has room for
 * 3 * strlen(s). Returns the end (not NUL-terminated). */
static char *
escape(char *p, const char *s, enum esc how)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (keeps(how, *c)) {
			*p++ = *c;
		} else {
			*p++ = '%';
			*p++ = hex[*c >> 4];
			*p++ = hex[*c & 15];
		}
	}
	return p;
}

/* 64-bit FNV-1a of account, a NUL and mailbox. */
static uint64_t
names_hash(const char *account, const char *mailbox)
{
	uint64_t h = 14695981039346656037ull;

	for (const char *s = account;; s++) {
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
		if (!*s)
			break;
	}
	for (const char *s = mailbox; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The file name stays what earlier versions wrote whenever it fits (their
 * files keep loading); those that did not fit were never written. The
 * '.' before the mailbox part separates it from the account's dots: the
 * mailbox part never holds one. A hashed name is told from every other
 * by its '~', which no escaped name holds. */
char *
state_file_name(const char *account, const char *mailbox, long name_max)
{
	size_t n = strlen(account) + strlen(mailbox), len, keep, max;
	char *name = xmalloc(3 * n + 2 + HASH_LEN + 1), *p;

	max = name_max > 0 ? (size_t)name_max : NAME_MAX;
	p = escape(name, account, ESC_ACCOUNT);
	*p++ = '.';
	p = escape(p, mailbox, ESC_MAILBOX);
	*p = 0;
	len = (size_t)(p - name);
	if (len + strlen(TMP_SUFFIX) <= max)
		return name;
	keep = max > strlen(TMP_SUFFIX) + HASH_LEN
		   ? max - strlen(TMP_SUFFIX) - HASH_LEN
		   : 0;
	/* Not in the middle of a %XX. */
	if (keep >= 1 && name[keep - 1] == '%')
		keep -= 1;
	else if (keep >= 2 && name[keep - 2] == '%')
		keep -= 2;
	snprintf(name + keep, HASH_LEN + 1, "~%016" PRIx64,
		 names_hash(account, mailbox));
	return name;
}

/* "account A\nmailbox M\n": the lines naming whose state a file is.
 * Caller frees. */
static char *
owner_lines(const char *account, const char *mailbox)
{
	char *s = xmalloc(3 * (strlen(account) + strlen(mailbox)) + 20), *p;

	p = stpcpy(s, "account ");
	p = escape(p, account, ESC_LINE);
	p = stpcpy(p, "\nmailbox ");
	p = escape(p, mailbox, ESC_LINE);
	strcpy(p, "\n");
	return s;
}

/* Opens the state directory and names the file of account/mailbox in it.
 * Returns the directory fd (*dir_r and *path_r set, caller frees), or -1
 * after logging why (both NULL). */
static int
open_dir(const char *account, const char *mailbox, char **dir_r, char **path_r)
{
	char *dir = state_dir(), *name;
	int fd;

	*dir_r = *path_r = NULL;
	if (!dir)
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		log_warn(NULL, "state: %s: %m", dir);
		free(dir);
		return -1;
	}
	name = state_file_name(account, mailbox, fpathconf(fd, _PC_NAME_MAX));
	*path_r = xasprintf("%s/%s", dir, name);
	*dir_r = dir;
	free(name);
	return fd;
}

/* Reads "KEY N\n" at *p into *v_r (N decimal, at most 19 digits and at
 * most max) and moves *p past it; false when it is not there. */
static bool
number(const char **p, const char *key, uint64_t max, uint64_t *v_r)
{
	const char *s = *p;
	size_t k = strlen(key);
	uint64_t v = 0;
	int digits = 0;

	if (strncmp(s, key, k) || s[k] != ' ')
		return false;
	for (s += k + 1; *s >= '0' && *s <= '9' && digits < 19; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		digits++;
	}
	if (!digits || *s != '\n' || v > max)
		return false;
	*v_r = v;
	*p = s + 1;
	return true;
}

enum verdict { V_OK, V_CORRUPT, V_OTHER };

/* Parses text, the file named after owner's account and mailbox. A file
 * of version 1 (no owner lines) is taken on trust where those versions
 * wrote it, at a readable name; at a hashed name it cannot be told from
 * another mailbox's. */
static enum verdict
parse(const char *text, const char *owner, bool hashed, struct state *st)
{
	const char *p = text;
	uint64_t v;

	if (!strncmp(p, MAGIC_V1, strlen(MAGIC_V1)) && !hashed) {
		p += strlen(MAGIC_V1);
	} else if (!strncmp(p, MAGIC, strlen(MAGIC))) {
		p += strlen(MAGIC);
		if (strncmp(p, owner, strlen(owner)))
			return strncmp(p, "account ", 8) ? V_CORRUPT : V_OTHER;
		p += strlen(owner);
	} else {
		return V_CORRUPT;
	}
	if (!number(&p, "uidvalidity", UINT32_MAX, &v) || !v)
		return V_CORRUPT;
	st->uidvalidity = (uint32_t)v;
	if (!number(&p, "uid", UINT32_MAX, &v))
		return V_CORRUPT;
	st->uid = (uint32_t)v;
	st->seen = 0;
	st->messages = 0;
	if (number(&p, "seen", INT64_MAX / 2, &v)) {
		st->seen = (int64_t)v;
		if (!number(&p, "messages", UINT32_MAX, &v))
			return V_CORRUPT;
		st->messages = (uint32_t)v;
	}
	return *p ? V_CORRUPT : V_OK;
}

int
state_load(const char *account, const char *mailbox, struct state *st)
{
	char *dir, *path, *owner = NULL, *buf = NULL;
	size_t max, n = 0;
	ssize_t got = 1;
	enum verdict v;
	struct state s;
	struct stat sb;
	int dfd, fd, found = 0;

	dfd = open_dir(account, mailbox, &dir, &path);
	if (dfd < 0)
		return 0;
	close(dfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn(NULL, "state: %s: %m; starting without it",
				 path);
		goto out;
	}
	owner = owner_lines(account, mailbox);
	max = strlen(MAGIC) + strlen(owner) + NUMBERS_MAX;
	buf = xmalloc(max + 1);
	while (n <= max && got > 0) {
		got = read(fd, buf + n, max + 1 - n);
		if (got > 0)
			n += (size_t)got;
		else if (got < 0 && errno == EINTR)
			got = 1;
	}
	if (fstat(fd, &sb) < 0)
		sb.st_mtime = 0;
	close(fd);
	if (got < 0) {
		log_warn(NULL, "state: %s: %m; starting without it", path);
		goto out;
	}
	buf[n <= max ? n : max] = 0;
	v = n > max || strlen(buf) != n
		? V_CORRUPT
		: parse(buf, owner, strchr(strrchr(path, '/'), '~') != NULL,
			&s);
	if (v == V_OK && s.seen <= 0) {
		/* Version 1 had no seen time. The last write came after the
		 * last message handled, so the mailbox was seen whole no later
		 * than then: earlier means more is announced, never less. */
		s.seen = sb.st_mtime;
		s.messages = 1;
	}
	if (v == V_OK) {
		*st = s;
		found = 1;
	} else if (v == V_OTHER) {
		log_warn(NULL,
			 "state: %s holds another mailbox's state; "
			 "ignoring it (mail already there will not be "
			 "announced)",
			 path);
	} else {
		log_warn(NULL,
			 "state: %s is corrupt or not a mailwatch state "
			 "file; ignoring it (mail already there will not "
			 "be announced)",
			 path);
	}
out:
	free(buf);
	free(owner);
	free(path);
	free(dir);
	return found;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The order makes the replacement atomic and durable: the new file's
 * data reaches the disk before the rename makes it the state file, and
 * the directory after it, so that a power loss leaves the old file or
 * the new one, never an empty one, and does not bring the old one back
 * after the new one was reported written. */
int
state_save(const char *account, const char *mailbox, const struct state *st)
{
	char *dir, *path, *tmp = NULL, *owner = NULL, *text = NULL;
	const char *what = "open";
	int dfd, fd = -1, r = 0;

	dfd = open_dir(account, mailbox, &dir, &path);
	if (dfd < 0)
		return -ENOENT;
	what = "create a temporary file for";
	tmp = xasprintf("%s" TMP_SUFFIX, path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		freep(&tmp); /* nothing to remove */
		goto fail;
	}
	owner = owner_lines(account, mailbox);
	text = xasprintf(MAGIC "%suidvalidity %" PRIu32 "\nuid %" PRIu32
			       "\nseen %" PRId64 "\nmessages %" PRIu32 "\n",
			 owner, st->uidvalidity, st->uid,
			 st->seen > 0 ? st->seen : 0, st->messages);
	what = "write";
	if (write_all(fd, text, strlen(text)) < 0 || fchmod(fd, 0600) < 0 ||
	    fdatasync(fd) < 0)
		goto fail;
	r = close(fd);
	fd = -1;
	if (r < 0 || rename(tmp, path) < 0)
		goto fail;
	freep(&tmp); /* renamed: nothing to remove */
	what = "sync the directory of";
	if (sync_dir_fd(dfd) < 0)
		goto fail;
	r = 0;
	goto out;
fail:
	r = -errno;
	log_err(NULL, "state: cannot %s %s: %s", what, path, strerror(-r));
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
out:
	close(dfd);
	free(text);
	free(owner);
	free(tmp);
	free(path);
	free(dir);
	return r;
}
