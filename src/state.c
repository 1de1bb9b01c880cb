#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAGIC "mailwatch-state 7\n"
/* The account file before the time watched up to was kept, before what
 * was announced was kept, before the server line, and before
 * HIGHESTMODSEQ was kept: read, never written. */
#define MAGIC_V6 "mailwatch-state 6\n"
#define MAGIC_V5 "mailwatch-state 5\n"
#define MAGIC_V4 "mailwatch-state 4\n"
#define MAGIC_V3 "mailwatch-state 3\n"
/* The per-mailbox files of earlier versions. */
#define MAGIC_V1 "mailwatch-state 1\n"
#define MAGIC_V2 "mailwatch-state 2\n"
/* mkostemp's suffix of the temporary file written next to an account
 * file: its second '@' keeps it apart from every account file, and from
 * every per-mailbox file. */
#define TMP_SUFFIX "@XXXXXX"
/* The suffix earlier versions used next to a per-mailbox file: their
 * names (state_file_name()) made room for it. */
#define V2_TMP_SUFFIX ".XXXXXX"
/* '~' and 16 hex digits: the end of a hashed file name. */
#define HASH_LEN 17
/* What a per-mailbox file may hold besides its magic and owner lines;
 * more is not ours. */
#define NUMBERS_MAX 256
/* Corrupt lines of an account file logged one by one; past that, one
 * line says how many more were skipped. */
#define CORRUPT_LOGGED 5
/* Room for "mailbox " and the seven numbers of an account file's line,
 * the space before its name included. */
#define LINE_NUMBERS 120

/* fsync() of the directory path, so that entries created, renamed or
 * removed in it survive a power loss. Returns 0 or a negative errno; a
 * file system that cannot sync directories (EINVAL) counts as
 * success. */
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
 * created. Returns 0 (also when it was there) or a negative errno. */
static int
make_dir(const char *path)
{
	char *parent;

	if (mkdir(path, 0700) < 0)
		return errno == EEXIST ? 0 : -errno;
	parent = xstrdup(path);
	*strrchr(parent, '/') = 0;
	sync_dir(*parent ? parent : "/");
	free(parent);
	return 0;
}

/* make_dir() of each directory on the way to dir, as mkdir -p does: a
 * fresh account may have no ~/.local yet (0700 for each, as XDG asks). */
static int
make_dirs(const char *dir)
{
	char *p = xstrdup(dir);
	int r = 0;

	for (char *s = strchr(p + 1, '/'); s && !r; s = strchr(s + 1, '/')) {
		*s = 0;
		r = make_dir(p);
		*s = '/';
	}
	if (!r)
		r = make_dir(p);
	free(p);
	return r;
}

char *
state_dir(void)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *dir;
	int r;

	if (x && *x == '/') {
		dir = xasprintf("%s/mailwatch", x);
	} else if (home && *home) {
		dir = xasprintf("%s/.local/state/mailwatch", home);
	} else {
		log_err(NULL, "state: neither XDG_STATE_HOME nor HOME is set");
		return NULL;
	}
	r = make_dirs(dir);
	if (r < 0)
		log_warn(NULL, "state: mkdir %s: %s", dir, strerror(-r));
	return dir;
}

/* ---- names ---- */

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

/* The name escape(ESC_LINE) wrote as s (NUL-terminated); caller frees.
 * NULL when s is not such a name, or one of no bytes or with a NUL. */
static char *
unescape_line(const char *s)
{
	char *name = xmalloc(strlen(s) + 1), *p = name;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int hi, lo;

		if (c == '%') {
			hi = hex_value((unsigned char)s[1]);
			lo = hi < 0 ? -1 : hex_value((unsigned char)s[2]);
			if (lo < 0 || (!hi && !lo))
				goto fail;
			*p++ = (char)(hi << 4 | lo);
			s += 2;
		} else if (keeps(ESC_LINE, c)) {
			*p++ = (char)c;
		} else {
			goto fail;
		}
	}
	*p = 0;
	if (p > name)
		return name;
fail:
	free(name);
	return NULL;
}

/* 64-bit FNV-1a of n bytes at s, continuing from h. */
static uint64_t
fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

#define FNV_START 14695981039346656037ull

/* name (len bytes, room for HASH_LEN + 1 more) as it fits in a directory
 * whose names are name_max long, with room for a temporary suffix: as it
 * is when it does; else its start, at least its first keep_min bytes and
 * not cut in the middle of a %XX, then '~' and hash in hex. */
static void
fit_name(char *name, size_t len, long name_max, uint64_t hash,
	 size_t keep_min)
{
	size_t max = name_max > 0 ? (size_t)name_max : NAME_MAX, keep;
	size_t tmp = strlen(TMP_SUFFIX);

	/* Both suffixes have the same length: the per-mailbox names stay
	 * what earlier versions wrote. */
	_Static_assert(sizeof(TMP_SUFFIX) == sizeof(V2_TMP_SUFFIX),
		       "one room for either temporary suffix");
	if (len + tmp <= max)
		return;
	keep = max > tmp + HASH_LEN ? max - tmp - HASH_LEN : 0;
	if (keep > len)
		keep = len;
	if (keep >= 1 && name[keep - 1] == '%')
		keep -= 1;
	else if (keep >= 2 && name[keep - 2] == '%')
		keep -= 2;
	if (keep < keep_min)
		keep = keep_min;
	snprintf(name + keep, HASH_LEN + 1, "~%016" PRIx64, hash);
}

/* The file name stays what earlier versions wrote whenever it fits (their
 * files keep loading); those that did not fit were never written. The
 * '.' before the mailbox part separates it from the account's dots: the
 * mailbox part never holds one. A hashed name is told from every other
 * by its '~', which no escaped name holds. */
char *
state_file_name(const char *account, const char *mailbox, long name_max)
{
	size_t n = strlen(account) + strlen(mailbox);
	char *name = xmalloc(3 * n + 2 + HASH_LEN + 1), *p;

	p = escape(name, account, ESC_ACCOUNT);
	*p++ = '.';
	p = escape(p, mailbox, ESC_MAILBOX);
	*p = 0;
	/* The hash of account, a NUL and mailbox. */
	fit_name(name, (size_t)(p - name), name_max,
		 fnv(fnv(FNV_START, account, strlen(account) + 1), mailbox,
		     strlen(mailbox)),
		 0);
	return name;
}

char *
state_account_file_name(const char *account, long name_max)
{
	char *name = xmalloc(3 * strlen(account) + 1 + HASH_LEN + 1), *p;

	name[0] = '@';
	p = escape(name + 1, account, ESC_ACCOUNT);
	*p = 0;
	fit_name(name, (size_t)(p - name), name_max,
		 fnv(FNV_START, account, strlen(account)), 1);
	return name;
}

/* "account A\n" (A as escape(ESC_LINE) writes it), then mailbox's line
 * likewise when mailbox is not NULL: the lines that name whose state a
 * file is. Caller frees. */
static char *
owner_lines(const char *account, const char *mailbox)
{
	size_t n = strlen(account) + (mailbox ? strlen(mailbox) : 0);
	char *s = xmalloc(3 * n + 20), *p;

	p = stpcpy(s, "account ");
	p = escape(p, account, ESC_LINE);
	*p++ = '\n';
	if (mailbox) {
		p = stpcpy(p, "mailbox ");
		p = escape(p, mailbox, ESC_LINE);
		*p++ = '\n';
	}
	*p = 0;
	return s;
}

/* "server HOST USER\n", both as escape(ESC_LINE) writes them: the line
 * of a version 5 file that says for which server and user it is. Caller
 * frees. */
static char *
server_line(const char *host, const char *user)
{
	char *s = xmalloc(3 * (strlen(host) + strlen(user)) + 16), *p;

	p = stpcpy(s, "server ");
	p = escape(p, host, ESC_LINE);
	*p++ = ' ';
	p = escape(p, user, ESC_LINE);
	*p++ = '\n';
	*p = 0;
	return s;
}

/* "config PATH\n", PATH as escape(ESC_LINE) writes it: the line after
 * the server line that says which configuration file the account was
 * in, so that only a rename in that file takes its state over (adopt()).
 * NULL when path is. Caller frees. */
static char *
config_line(const char *path)
{
	char *s, *p;

	if (!path)
		return NULL;
	s = xmalloc(3 * strlen(path) + 9);
	p = escape(stpcpy(s, "config "), path, ESC_LINE);
	*p++ = '\n';
	*p = 0;
	return s;
}

/* ---- files ---- */

/* Reads fd to its end, or max + 1 bytes when it holds more, into *buf_r
 * (NUL-terminated; caller frees) and *n_r. Returns 0 or a negative
 * errno (*buf_r NULL). */
static int
read_upto(int fd, size_t max, char **buf_r, size_t *n_r)
{
	size_t cap = max < 4096 ? max + 1 : 4096, n = 0;
	char *buf = xmalloc(cap + 1);
	ssize_t got;

	for (;;) {
		if (n == cap) {
			if (cap > max)
				break;
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int r = -errno;

			free(buf);
			*buf_r = NULL;
			return r;
		}
		if (!got)
			break;
		n += (size_t)got;
	}
	buf[n] = 0;
	*buf_r = buf;
	*n_r = n;
	return 0;
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

/* ---- the per-mailbox files of earlier versions ---- */

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
parse_v2(const char *text, const char *owner, bool hashed, struct state *st)
{
	const char *p = text;
	uint64_t v;

	if (!strncmp(p, MAGIC_V1, strlen(MAGIC_V1)) && !hashed) {
		p += strlen(MAGIC_V1);
	} else if (!strncmp(p, MAGIC_V2, strlen(MAGIC_V2))) {
		p += strlen(MAGIC_V2);
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

/* Reads the per-mailbox file of account/mailbox in dir. Returns 1 with
 * *st and its path in *path_r (caller frees), or 0 when there is none,
 * and 0 after logging a warning when it is corrupt, foreign or another
 * mailbox's (it is then treated as absent). */
static int
load_v2(const char *dir, long name_max, const char *account,
	const char *mailbox, struct state *st, char **path_r)
{
	char *name = state_file_name(account, mailbox, name_max);
	char *path = xasprintf("%s/%s", dir, name);
	char *owner = owner_lines(account, mailbox), *buf = NULL;
	size_t max = strlen(MAGIC_V2) + strlen(owner) + NUMBERS_MAX, n = 0;
	enum verdict v;
	struct state s = {0};
	struct stat sb;
	int fd, r, found = 0;

	*path_r = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn(NULL, "state: %s: %m; starting without it",
				 path);
		goto out;
	}
	r = read_upto(fd, max, &buf, &n);
	if (fstat(fd, &sb) < 0)
		sb.st_mtime = 0;
	close(fd);
	if (r < 0) {
		log_warn(NULL, "state: %s: %s; starting without it", path,
			 strerror(-r));
		goto out;
	}
	v = n > max || strlen(buf) != n
		? V_CORRUPT
		: parse_v2(buf, owner, strchr(name, '~') != NULL, &s);
	if (v == V_OK && s.seen <= 0) {
		/* Version 1 had no seen time. The last write came after the
		 * last message handled, so the mailbox was seen whole no later
		 * than then: earlier means more is announced, never less. */
		s.seen = sb.st_mtime;
		s.messages = 1;
	}
	if (v == V_OK) {
		*st = s;
		*path_r = path;
		path = NULL;
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
	free(name);
	return found;
}

/* ---- the store ---- */

struct entry {
	char *mailbox;
	struct state st;
	/* The per-mailbox file of an earlier version it was read from,
	 * removed once the account file holding it is written; else
	 * NULL. */
	char *old_path;
};

struct state_store {
	char *account;
	char *host, *user; /* the server's and the login's */
	char *config;	   /* "config PATH\n" of its configuration file; NULL */
	struct log_ctx log;
	char *dir;  /* NULL: no state directory */
	char *path; /* the account file */
	long name_max;
	/* Sorted by mailbox name (strcmp). */
	struct entry *v;
	size_t n, cap;
	bool dirty;
	int64_t written; /* the account file's mtime when read; 0: none */
	int failing; /* the last write failed with this errno: logged */
	bool (*in_use)(void *ud, const char *account);
	void (*dirtied)(void *ud);
	void *ud;
	/* The file of a renamed account whose state this one took over
	 * (adopt()), removed once the state is written here, and that
	 * account's lock, held until then; else NULL and -1. */
	char *adopted_path, *adopted_from;
	int adopted_lock;
};

/* What stores freed in this process announced beyond their files
 * (struct state's announced), for the next store of the same account:
 * a reload that restarts an account frees its store, and the new one
 * reads the file again. */
struct stashed {
	char *account, *mailbox;
	uint32_t uidvalidity, announced;
	struct stashed *next;
};
static struct stashed *stash;

/* When a store of an account was last freed in this process
 * (state_freed_at()). */
struct freed {
	char *account;
	int64_t at; /* wall-clock seconds */
	struct freed *next;
};
static struct freed *freed;

int64_t
state_freed_at(const char *account)
{
	for (struct freed *f = freed; f; f = f->next)
		if (!strcmp(f->account, account))
			return f->at;
	return 0;
}

static void
note_freed(const char *account)
{
	struct freed *f;

	for (f = freed; f && strcmp(f->account, account); f = f->next)
		;
	if (!f) {
		f = xcalloc(1, sizeof(*f));
		f->account = xstrdup(account);
		f->next = freed;
		freed = f;
	}
	f->at = (int64_t)time(NULL);
}

/* The index of mailbox in s->v, or where it would go; *found_r says
 * which. */
static size_t
find(const struct state_store *s, const char *mailbox, bool *found_r)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid].mailbox, mailbox);

		if (!c) {
			*found_r = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found_r = false;
	return lo;
}

/* Inserts an entry for mailbox (taken over) at i (from find()). */
static struct entry *
insert(struct state_store *s, size_t i, char *mailbox)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->n++;
	s->v[i] = (struct entry){.mailbox = mailbox};
	return &s->v[i];
}

static void
set_dirty(struct state_store *s)
{
	if (s->dirty)
		return;
	s->dirty = true;
	if (s->dirtied)
		s->dirtied(s->ud);
}

/* Reads " N" at *p (N decimal, at most 19 digits and at most max) into
 * *v_r and moves *p past it; false when it is not there. */
static bool
field(const char **p, uint64_t max, uint64_t *v_r)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;

	if (*s++ != ' ')
		return false;
	for (; *s >= '0' && *s <= '9' && digits < 19; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		digits++;
	}
	if (!digits || v > max)
		return false;
	*v_r = v;
	*p = s;
	return true;
}

/* What the file keeps of st as announced: st's own, or what the file it
 * was read from said (owed), at least uid. */
static uint32_t
announced_kept(const struct state *st)
{
	uint32_t a = st->announced > st->owed ? st->announced : st->owed;

	return a > st->uid ? a : st->uid;
}

/* Takes in a mailbox line, without its '\n', with n_numbers numbers (4
 * in version 3, no MODSEQ; 5 in versions 4 and 5, no ANNOUNCED; 6 in
 * version 6, no WATCHED): false when it is corrupt or names a mailbox
 * already read. */
static bool
take_line(struct state_store *s, const char *line, int n_numbers)
{
	uint64_t v[7] = {0};
	const char *p = line;
	struct entry *e;
	char *name;
	bool found;
	size_t i;

	if (strncmp(p, "mailbox", 7))
		return false;
	p += 7;
	if (!field(&p, UINT32_MAX, &v[0]) || !v[0] ||
	    !field(&p, UINT32_MAX, &v[1]) || !field(&p, INT64_MAX / 2, &v[2]) ||
	    !field(&p, UINT32_MAX, &v[3]) ||
	    (n_numbers > 4 && !field(&p, INT64_MAX, &v[4])) ||
	    (n_numbers > 5 && !field(&p, UINT32_MAX, &v[5])) ||
	    (n_numbers > 6 && !field(&p, INT64_MAX / 2, &v[6])) || *p != ' ')
		return false;
	name = unescape_line(p + 1);
	if (!name)
		return false;
	i = find(s, name, &found);
	if (found) {
		free(name);
		return false;
	}
	e = insert(s, i, name);
	e->st = (struct state){.uidvalidity = (uint32_t)v[0],
			       .uid = (uint32_t)v[1],
			       .seen = (int64_t)v[2],
			       .messages = (uint32_t)v[3],
			       .modseq = v[4],
			       .owed = (uint32_t)v[5],
			       .watched = (int64_t)v[6]};
	e->st.owed = announced_kept(&e->st);
	return true;
}

/* What a state file ignored as corrupt costs: its mailboxes catch up
 * with the unseen mail that came since poll_interval before it was
 * written (account.c's stopped_since), some of it announced again. */
#define CORRUPT_COST                                                           \
	"starting without it (unseen mail that came since shortly before it "  \
	"was last written is announced, some of it again)"

/* Takes in the text of the account file (n bytes; NUL-terminated).
 * Logs what is wrong with it. Returns false when the whole file was
 * ignored (not a state file of this version, or another account's);
 * *corrupt_r then says whether it was not a state file at all. */
static bool
parse(struct state_store *s, const char *path, const char *account,
      char *text, size_t n, bool *corrupt_r)
{
	char *owner = owner_lines(account, NULL), *p, *nl;
	char *server = server_line(s->host, s->user), *sp;
	size_t line = 2, corrupt = 0;
	bool v7 = !strncmp(text, MAGIC, strlen(MAGIC)), taken = false;
	bool v6 = v7 || !strncmp(text, MAGIC_V6, strlen(MAGIC_V6));
	bool has_server = v6 || !strncmp(text, MAGIC_V5, strlen(MAGIC_V5));
	int numbers = v7   ? 7
		      : v6 ? 6
		      : has_server || !strncmp(text, MAGIC_V4, strlen(MAGIC_V4))
			  ? 5
			  : 4;

	*corrupt_r = false;
	if (numbers == 4 && !strncmp(text, "mailwatch-state ", 16) &&
	    strncmp(text, MAGIC_V3, strlen(MAGIC_V3))) {
		log_warn(&s->log,
			 "state: %s is not a mailwatch state file of this "
			 "version; ignoring it (mail already there will not "
			 "be announced)",
			 path);
		goto out;
	}
	/* Emptied, garbage: what it said is lost, but not when. Better
	 * announced again than lost: a trial's mail that came while
	 * mailwatch was stopped was never announced. */
	if (numbers == 4 && strncmp(text, MAGIC_V3, strlen(MAGIC_V3))) {
		log_warn(&s->log, "state: %s is corrupt; " CORRUPT_COST, path);
		*corrupt_r = true;
		goto out;
	}
	p = text + strlen(MAGIC); /* as long as MAGIC_V3 to _V6 */
	if (strncmp(p, "account ", 8)) {
		log_warn(&s->log, "state: %s is corrupt; " CORRUPT_COST, path);
		*corrupt_r = true;
		goto out;
	}
	if (strncmp(p, owner, strlen(owner))) {
		log_warn(&s->log,
			 "state: %s holds another account's state; ignoring "
			 "it (mail already there will not be announced)",
			 path);
		goto out;
	}
	p += strlen(owner);
	/* Before version 5 there was no server line: taken as this one's. */
	if (has_server && strncmp(p, server, strlen(server))) {
		nl = strchr(p, '\n');
		if (strncmp(p, "server ", 7) || !nl) {
			log_warn(&s->log,
				 "state: %s is corrupt; " CORRUPT_COST, path);
			*corrupt_r = true;
			goto out;
		}
		*nl = 0;
		sp = strchr(p + 7, ' ');
		if (sp)
			*sp = 0;
		log_warn(&s->log,
			 "state: %s is for %s at %s, not %s at %s (the "
			 "account's name was used for another before); "
			 "starting afresh (mail already there will not be "
			 "announced)",
			 path, sp ? sp + 1 : "", p + 7, s->user, s->host);
		goto out;
	}
	if (has_server) {
		p += strlen(server);
		line++;
	}
	/* Which configuration file it was in: for adopt() only. */
	if (v6 && !strncmp(p, "config ", 7) && (nl = strchr(p, '\n'))) {
		p = nl + 1;
		line++;
	}
	if (n > STATE_FILE_MAX) {
		log_warn(&s->log,
			 "state: %s is longer than %d bytes; reading only "
			 "the lines within them",
			 path, STATE_FILE_MAX);
		nl = memrchr(p, '\n', (size_t)(text + STATE_FILE_MAX - p));
		n = (size_t)((nl ? nl + 1 : p) - text);
		text[n] = 0;
	}
	for (; p < text + n; p = nl + 1) {
		line++;
		nl = memchr(p, '\n', (size_t)(text + n - p));
		if (!nl)
			nl = text + n; /* its last line, cut short */
		*nl = 0;
		/* A NUL inside the line ends it early: corrupt. */
		if (strlen(p) == (size_t)(nl - p) && take_line(s, p, numbers))
			continue;
		if (++corrupt <= CORRUPT_LOGGED)
			log_warn(&s->log,
				 "state: %s, line %zu: corrupt, skipped (that "
				 "mailbox starts without its state)",
				 path, line);
	}
	if (corrupt > CORRUPT_LOGGED)
		log_warn(&s->log, "state: %s: %zu more corrupt lines skipped",
			 path, corrupt - CORRUPT_LOGGED);
	taken = true;
out:
	free(owner);
	free(server);
	return taken;
}

/* The account whose state the version 5 or 6 file text (NUL-terminated) is,
 * when it is for s's host and user and, when it names one, s's
 * configuration file; else NULL. Caller frees. */
static char *
same_server(const struct state_store *s, const char *text)
{
	char *server, *line, *name = NULL;
	const char *p = text + strlen(MAGIC), *nl, *conf;

	if (strncmp(text, MAGIC, strlen(MAGIC)) &&
	    strncmp(text, MAGIC_V6, strlen(MAGIC_V6)) &&
	    strncmp(text, MAGIC_V5, strlen(MAGIC_V5)))
		return NULL; /* and p may be past its end */
	server = server_line(s->host, s->user);
	nl = strchr(p, '\n');
	if (!nl || strncmp(p, "account ", 8) ||
	    strncmp(nl + 1, server, strlen(server)))
		goto out;
	/* Another configuration file's account: another instance's,
	 * stopped for now (trial R). A file without the line is from
	 * before it was written. */
	conf = nl + 1 + strlen(server);
	if (s->config && !strncmp(conf, "config ", 7) &&
	    strncmp(conf, s->config, strlen(s->config)))
		goto out;
	line = xstrndup(p + 8, (size_t)(nl - p - 8));
	name = unescape_line(line);
	free(line);
out:
	free(server);
	return name;
}

/* The newest file adopt() may take that is not among tried[0..n_tried)
 * (its account's name in *name_r, its path in *path_r; caller frees),
 * or false. */
static bool
adoptable(struct state_store *s, char *const *tried, size_t n_tried,
	  char **name_r, char **path_r)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	char *best = NULL, *best_path = NULL, *text;
	time_t best_time = 0;
	struct stat sb;
	size_t n;
	int fd;

	while (d && (e = readdir(d))) {
		char *path, *name = NULL;
		bool skip = false;

		if (e->d_name[0] != '@' || strchr(e->d_name + 1, '@'))
			continue;
		path = xasprintf("%s/%s", s->dir, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    read_upto(fd, 4096, &text, &n) == 0) {
			name = same_server(s, text);
			free(text);
		}
		if (fd >= 0)
			close(fd);
		for (size_t i = 0; name && i < n_tried; i++)
			skip = skip || !strcmp(tried[i], name);
		if (name && !skip && strcmp(name, s->account) &&
		    !s->in_use(s->ud, name) &&
		    (!best || sb.st_mtime > best_time)) {
			free(best);
			free(best_path);
			best = name;
			best_path = path;
			best_time = sb.st_mtime;
			continue;
		}
		free(name);
		free(path);
	}
	if (d)
		closedir(d);
	*name_r = best;
	*path_r = best_path;
	return best != NULL;
}

/* Takes over the state of account name in path when its lock is free:
 * true when it did. */
static bool
take_over(struct state_store *s, char *name, char *path)
{
	struct stat sb;
	char *text;
	size_t n;
	pid_t holder;
	bool corrupt, taken = false;
	int lock = state_lock_account(name, &holder);
	int fd = lock < 0 ? -1 : open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && fstat(fd, &sb) == 0 &&
	    read_upto(fd, STATE_FILE_MAX, &text, &n) == 0) {
		taken = parse(s, path, name, text, n, &corrupt);
		free(text);
	}
	if (fd >= 0)
		close(fd);
	if (!taken) {
		if (lock >= 0)
			close(lock);
		return false;
	}
	log_info(&s->log,
		 "state: taking over %s, the state of account %s, for the "
		 "same host and user and no longer configured (renamed?)",
		 path, name);
	s->written = sb.st_mtime;
	s->adopted_path = path;
	s->adopted_from = name;
	s->adopted_lock = lock;
	set_dirty(s);
	return true;
}

/* s's account file is not there: a new account, or one renamed in the
 * configuration. The state of the latter is in the file of its old
 * name, for the same host and user, a name no longer configured (two
 * accounts may share a server and user) nor locked by another process:
 * that file, the one written last if there are several, is taken over,
 * so that a rename neither loses the mail that came while mailwatch was
 * stopped nor announces again what was. One whose lock is held (another
 * account of this configuration renamed too, which took it: trial S) is
 * passed for the next. The old file is removed once this one is written
 * (state_store_write()). */
static void
adopt(struct state_store *s)
{
	char *tried[8], *name, *path;
	size_t n_tried = 0;

	while (s->in_use && n_tried < sizeof(tried) / sizeof(*tried) &&
	       adoptable(s, tried, n_tried, &name, &path)) {
		if (take_over(s, name, path))
			break;
		tried[n_tried++] = name;
		free(path);
	}
	for (size_t i = 0; i < n_tried; i++)
		free(tried[i]);
}

/* Reads the account file into the new store s. */
static void
load(struct state_store *s)
{
	char *name, *text;
	struct stat sb;
	size_t n;
	int dfd, fd, r;
	bool corrupt;

	s->name_max = NAME_MAX;
	s->dir = state_dir();
	if (!s->dir)
		return;
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		s->name_max = fpathconf(dfd, _PC_NAME_MAX);
		close(dfd);
	}
	name = state_account_file_name(s->account, s->name_max);
	s->path = xasprintf("%s/%s", s->dir, name);
	free(name);
	fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn(&s->log, "state: %s: %m; starting without it",
				 s->path);
		else
			adopt(s);
		return;
	}
	if (fstat(fd, &sb) < 0)
		sb.st_mtime = 0;
	r = read_upto(fd, STATE_FILE_MAX, &text, &n);
	close(fd);
	if (r < 0) {
		log_warn(&s->log, "state: %s: %s; starting without it", s->path,
			 strerror(-r));
		return;
	}
	/* A file ignored (another version's, another account's) says
	 * nothing of when the account was watched: its mailboxes start
	 * afresh, as at a first run, rather than catching up with what came
	 * since its time. A corrupt one's time is all that is left of it. */
	if (parse(s, s->path, s->account, text, n, &corrupt) || corrupt)
		s->written = sb.st_mtime;
	free(text);
}

/* Takes the stashed announced UIDs of account (s's, or the one whose
 * state it took over) out of the stash, into the entries they are still
 * ahead of. */
static void
unstash(struct state_store *s, const char *account)
{
	struct stashed **pp = &stash, *t;

	while ((t = *pp)) {
		bool found;
		size_t i;
		struct state *st;

		if (strcmp(t->account, account)) {
			pp = &t->next;
			continue;
		}
		i = find(s, t->mailbox, &found);
		st = found ? &s->v[i].st : NULL;
		if (st && st->uidvalidity == t->uidvalidity &&
		    st->uid < t->announced)
			st->announced = t->announced;
		*pp = t->next;
		free(t->account);
		free(t->mailbox);
		free(t);
	}
}

struct state_store *
state_store_new(const char *account, const char *host, const char *user,
		const char *config,
		bool (*in_use)(void *ud, const char *account),
		void (*dirtied)(void *ud), void *ud)
{
	struct state_store *s = xcalloc(1, sizeof(*s));

	s->in_use = in_use;
	s->adopted_lock = -1;
	s->account = xstrdup(account);
	s->host = xstrdup(host);
	s->user = xstrdup(user);
	s->config = config_line(config);
	s->log.account = s->account;
	s->dirtied = dirtied;
	s->ud = ud;
	load(s);
	unstash(s, s->account);
	if (s->adopted_from)
		unstash(s, s->adopted_from);
	return s;
}

void
state_store_free(struct state_store **sp)
{
	struct state_store *s = *sp;

	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		const struct state *st = &s->v[i].st;

		if (st->announced > st->uid) {
			struct stashed *t = xcalloc(1, sizeof(*t));

			t->account = xstrdup(s->account);
			t->mailbox = xstrdup(s->v[i].mailbox);
			t->uidvalidity = st->uidvalidity;
			t->announced = st->announced;
			t->next = stash;
			stash = t;
		}
		free(s->v[i].mailbox);
		free(s->v[i].old_path);
	}
	free(s->v);
	free(s->path);
	free(s->dir);
	free(s->adopted_path);
	free(s->adopted_from);
	if (s->adopted_lock >= 0)
		close(s->adopted_lock);
	note_freed(s->account);
	free(s->account);
	free(s->host);
	free(s->user);
	free(s->config);
	free(s);
	*sp = NULL;
}

int64_t
state_store_written(const struct state_store *s)
{
	return s->written;
}

const char *
state_store_find(const struct state_store *s, uint32_t uidvalidity,
		 struct state *st)
{
	const struct entry *e = NULL;

	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].st.uidvalidity != uidvalidity)
			continue;
		if (e)
			return NULL;
		e = &s->v[i];
	}
	if (!e)
		return NULL;
	*st = e->st;
	if (st->announced < st->uid)
		st->announced = st->uid;
	return e->mailbox;
}

void
state_store_forget(struct state_store *s, const char *mailbox)
{
	bool found;
	size_t i = find(s, mailbox, &found);

	if (!found || s->v[i].old_path)
		return;
	free(s->v[i].mailbox);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
	set_dirty(s);
}

int
state_store_get(struct state_store *s, const char *mailbox, struct state *st)
{
	struct state old;
	struct entry *e;
	char *old_path;
	bool found;
	size_t i = find(s, mailbox, &found);

	if (found) {
		*st = s->v[i].st;
		if (st->announced < st->uid)
			st->announced = st->uid;
		return 1;
	}
	if (!s->dir ||
	    !load_v2(s->dir, s->name_max, s->account, mailbox, &old, &old_path))
		return 0;
	log_debug(&(struct log_ctx){s->account, mailbox},
		  "state: moving %s into %s", old_path, s->path);
	e = insert(s, i, xstrdup(mailbox));
	e->st = old;
	e->old_path = old_path;
	set_dirty(s);
	*st = old;
	st->announced = st->uid;
	return 1;
}

void
state_store_put(struct state_store *s, const char *mailbox,
		const struct state *st)
{
	struct state v = *st, old;
	struct entry *e;
	bool found;
	size_t i = find(s, mailbox, &found);

	if (v.seen <= 0) {
		v.seen = time(NULL);
		v.messages = 1;
	}
	/* A mod-sequence has 63 bits (RFC 7162); a server's larger one
	 * goes in as the largest, which the file can hold. */
	if (v.modseq > INT64_MAX)
		v.modseq = INT64_MAX;
	e = found ? &s->v[i] : insert(s, i, xstrdup(mailbox));
	old = e->st;
	v.owed = found && old.uidvalidity == v.uidvalidity ? old.owed : 0;
	e->st = v;
	if (!found || old.uidvalidity != v.uidvalidity || old.uid != v.uid ||
	    old.seen != v.seen || old.messages != v.messages ||
	    old.modseq != v.modseq || old.watched != v.watched ||
	    announced_kept(&old) != announced_kept(&v))
		set_dirty(s);
}

bool
state_store_dirty(const struct state_store *s)
{
	return s->dirty;
}

/* The text of the account file. Caller frees. */
static char *
store_text(const struct state_store *s, size_t *len_r)
{
	char *owner = owner_lines(s->account, NULL), *text, *p;
	char *server = server_line(s->host, s->user);
	size_t cap = strlen(MAGIC) + strlen(owner) + strlen(server) +
		     (s->config ? strlen(s->config) : 0) + 1;

	for (size_t i = 0; i < s->n; i++)
		cap += 3 * strlen(s->v[i].mailbox) + LINE_NUMBERS;
	text = xmalloc(cap);
	p = stpcpy(stpcpy(stpcpy(text, MAGIC), owner), server);
	if (s->config)
		p = stpcpy(p, s->config);
	for (size_t i = 0; i < s->n; i++) {
		const struct state *st = &s->v[i].st;

		p += snprintf(p, LINE_NUMBERS,
			      "mailbox %" PRIu32 " %" PRIu32 " %" PRId64
			      " %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRId64
			      " ",
			      st->uidvalidity, st->uid, st->seen, st->messages,
			      st->modseq, announced_kept(st), st->watched);
		p = escape(p, s->v[i].mailbox, ESC_LINE);
		*p++ = '\n';
	}
	*p = 0;
	free(owner);
	free(server);
	*len_r = (size_t)(p - text);
	return text;
}

/* Removes the per-mailbox files whose state the account file now holds,
 * and syncs dfd, their directory, when it removed some. */
static void
remove_old_files(struct state_store *s, int dfd)
{
	size_t removed = 0;

	for (size_t i = 0; i < s->n; i++) {
		char *old = s->v[i].old_path;

		if (!old)
			continue;
		if (unlink(old) == 0)
			removed++;
		else if (errno != ENOENT)
			log_warn(&s->log, "state: cannot remove %s: %m", old);
		freep(&s->v[i].old_path);
	}
	if (!removed)
		return;
	if (sync_dir_fd(dfd) < 0)
		log_warn(&s->log, "state: sync %s: %m", s->dir);
	log_info(&s->log,
		 "state: %zu per-mailbox state files of an earlier version "
		 "removed, their state now in %s",
		 removed, s->path);
}

static char *lock_path(const char *dir, const char *account);

/* The state taken over from a renamed account (adopt()) is written here
 * now: its file goes, and its lock (its name may be used again). */
static void
forget_adopted(struct state_store *s, int dfd)
{
	char *lock;

	if (!s->adopted_path)
		return;
	if (unlink(s->adopted_path) < 0 && errno != ENOENT)
		log_warn(&s->log, "state: cannot remove %s: %m",
			 s->adopted_path);
	else if (sync_dir_fd(dfd) < 0)
		log_warn(&s->log, "state: sync %s: %m", s->dir);
	/* Its lock too, still held: whoever waits for it takes the one
	 * made anew (lock_file()). */
	lock = lock_path(s->dir, s->adopted_from);
	if (unlink(lock) < 0 && errno != ENOENT)
		log_warn(&s->log, "state: cannot remove %s: %m", lock);
	free(lock);
	freep(&s->adopted_path);
	freep(&s->adopted_from);
	close(s->adopted_lock);
	s->adopted_lock = -1;
}

/* The order makes the replacement atomic and durable: the new file's
 * data reaches the disk before the rename makes it the state file, and
 * the directory after it, so that a power loss leaves the old file or
 * the new one, never an empty one, and does not bring the old one back
 * after the new one was reported written. Only then may the per-mailbox
 * files go. */
int
state_store_write(struct state_store *s)
{
	char *tmp = NULL, *text = NULL;
	const char *what = "open the directory of";
	int dfd = -1, fd = -1, r;
	size_t len;

	if (!s->dirty)
		return 0;
	if (!s->dir) {
		errno = ENOENT;
		goto fail;
	}
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT) {
		/* Removed while running: made again. */
		r = make_dirs(s->dir);
		if (r < 0)
			errno = -r;
		else
			dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dfd < 0)
		goto fail;
	what = "create a temporary file for";
	tmp = xasprintf("%s" TMP_SUFFIX, s->path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		freep(&tmp); /* nothing to remove */
		goto fail;
	}
	what = "write";
	text = store_text(s, &len);
	if (write_all(fd, text, len) < 0 || fchmod(fd, 0600) < 0 ||
	    fdatasync(fd) < 0)
		goto fail;
	r = close(fd);
	fd = -1;
	if (r < 0 || rename(tmp, s->path) < 0)
		goto fail;
	freep(&tmp); /* renamed: nothing to remove */
	what = "sync the directory of";
	if (sync_dir_fd(dfd) < 0)
		goto fail;
	s->dirty = false;
	if (s->failing)
		log_info(&s->log, "state: %s written again", s->path);
	s->failing = 0;
	remove_old_files(s, dfd);
	forget_adopted(s, dfd);
	r = 0;
	goto out;
fail:
	r = -errno;
	if (!s->failing)
		log_err(&s->log,
			"state: cannot %s %s: %s; keeping the state in memory "
			"and trying again at the next write",
			what, s->path ? s->path : "the state file",
			strerror(-r));
	else
		log_debug(&s->log, "state: cannot %s %s: %s (again)", what,
			  s->path ? s->path : "the state file", strerror(-r));
	s->failing = r;
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
out:
	if (dfd >= 0)
		close(dfd);
	free(text);
	free(tmp);
	return r;
}

/* ---- the account lock ---- */

/* Appended to an account file's name: its '@' keeps the lock apart from
 * every account file (whose name has one '@') and every per-mailbox file
 * (none); and "lock" from the temporary files' six random characters. It
 * is no longer than TMP_SUFFIX, for which state_account_file_name() made
 * room, so the name fits in NAME_MAX. */
#define LOCK_SUFFIX "@lock"

_Static_assert(sizeof(LOCK_SUFFIX) <= sizeof(TMP_SUFFIX),
	       "the lock's name fits where the temporary file's does");

/* The path of account's lock in the state directory dir (caller frees). */
static char *
lock_path(const char *dir, const char *account)
{
	char *name = state_account_file_name(account,
					     pathconf(dir, _PC_NAME_MAX));
	char *path = xasprintf("%s/%s" LOCK_SUFFIX, dir, name);

	free(name);
	return path;
}

/* The pid written in the lock file fd, or 0 when it holds none (its
 * holder has not written it yet, or could not). */
static pid_t
lock_holder(int fd)
{
	char buf[24], *end;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = 0;
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno || end == buf || *end != '\n' || pid <= 0 || pid > INT_MAX)
		return 0;
	return (pid_t)pid;
}

/* Opens (creating) the lock file at path and takes its lock. The lock of
 * a renamed account's old name goes with its state (forget_adopted()): a
 * file locked after that removal is no longer the path's, and is let go
 * for the one there now. Returns the fd, or -1 and errno (EWOULDBLOCK:
 * another process holds it, its pid in *holder_r, 0 if unknown). */
static int
lock_file(const char *path, pid_t *holder_r)
{
	struct stat held, now;
	int fd, err;

	for (int tries = 0; tries < 8; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			  0600);
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			err = errno;
			if (err == EWOULDBLOCK)
				*holder_r = lock_holder(fd);
			close(fd);
			errno = err;
			return -1;
		}
		if (fstat(fd, &held) == 0 && stat(path, &now) == 0 &&
		    held.st_dev == now.st_dev && held.st_ino == now.st_ino)
			return fd;
		close(fd);
	}
	errno = EAGAIN;
	return -1;
}

int
state_lock_account(const char *account, pid_t *holder_r)
{
	struct log_ctx log = {account, NULL};
	char *dir = state_dir(), *path, pid[24];
	int fd, n;

	*holder_r = 0;
	if (!dir) {
		log_warn(&log, "state: no state directory to lock this account "
			       "in; watching it anyway (another mailwatch may "
			       "announce its mail too)");
		return -ENOENT;
	}
	path = lock_path(dir, account);
	fd = lock_file(path, holder_r);
	if (fd < 0) {
		fd = -errno;
		if (fd != -EWOULDBLOCK)
			log_warn(&log,
				 "state: cannot lock %s: %s; watching this "
				 "account anyway (another mailwatch may "
				 "announce its mail too)",
				 path, strerror(-fd));
		goto out;
	}
	/* A shorter pid over a longer one: the reader stops at the first
	 * '\n'. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (pwrite(fd, pid, (size_t)n, 0) != n || ftruncate(fd, n) < 0)
		log_debug(&log, "state: cannot write our pid into %s: %m",
			  path);
out:
	free(path);
	free(dir);
	return fd;
}
