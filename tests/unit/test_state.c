/* The state store: one file per account holding every mailbox's state.
 * Round trips of many mailboxes and of names of any bytes, file mode and
 * names, a corrupt line skipped with the others loading, foreign, another
 * account's and unreadable files treated as absent with a warning, the
 * per-mailbox files of earlier versions read and removed once the account
 * file holds their state, a failed write kept and tried again, and names
 * of any length. The account lock: held against another open file,
 * naming its holder, let go on close, at names that fit and stay apart. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "state.h"
#include "tap.h"
#include "util.h"

static char dir[] = "/tmp/mailwatch-test-state.XXXXXX";
static char *sdir; /* dir/mailwatch */
static int dirtied;

static void
on_dirtied(void *ud)
{
	(void)ud;
	dirtied++;
}

/* The server and user of the stores opened (open_store()), and their
 * configuration file (NULL: none said). */
static const char *host = "imap.example.com", *user = "alice";
static const char *config_file;

static struct state_store *
open_store(const char *account)
{
	return state_store_new(account, host, user, config_file, NULL,
			       on_dirtied, NULL);
}

/* state_store_new() with stderr captured into *log_r (caller frees). */
static struct state_store *
open_logged(const char *account, char **log_r)
{
	char *path = xasprintf("%s/stderr", dir);
	struct state_store *s;

	capture_begin(path);
	s = open_store(account);
	*log_r = capture_end();
	free(path);
	return s;
}

/* state_store_write() with stderr captured into *log_r (caller frees). */
static int
write_logged(struct state_store *s, char **log_r)
{
	char *path = xasprintf("%s/stderr", dir);
	int r;

	capture_begin(path);
	r = state_store_write(s);
	*log_r = capture_end();
	free(path);
	return r;
}

/* The path of account's state file. Caller frees. */
static char *
account_path(const char *account)
{
	char *name =
	    state_account_file_name(account, pathconf(sdir, _PC_NAME_MAX));
	char *path = xasprintf("%s/%s", sdir, name);

	free(name);
	return path;
}

/* The path of account/mailbox's file of an earlier version. Caller
 * frees. */
static char *
old_path(const char *account, const char *mailbox)
{
	char *name = state_file_name(account, mailbox,
				     pathconf(sdir, _PC_NAME_MAX));
	char *path = xasprintf("%s/%s", sdir, name);

	free(name);
	return path;
}

/* Writes n bytes of text at path. */
static void
put_file(const char *path, const char *text, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, n) != (ssize_t)n)
		perror(path);
	if (fd >= 0)
		close(fd);
}

static void
put_text(const char *path, const char *text)
{
	put_file(path, text, strlen(text));
}

/* The file at path, or "" when there is none. Caller frees. */
static char *
file_text(const char *path)
{
	char *buf = xcalloc(1, 1 << 16);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, (1 << 16) - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static bool
exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

static void
put_state(struct state_store *s, const char *mailbox, uint32_t v, uint32_t u)
{
	state_store_put(s, mailbox,
			&(struct state){.uidvalidity = v,
					.uid = u,
					.seen = 1733400000,
					.messages = u});
}

/* A store of account opened, given mailbox's state, written and freed. */
static void
save_one(const char *account, const char *mailbox, uint32_t v, uint32_t u)
{
	struct state_store *s = open_store(account);

	put_state(s, mailbox, v, u);
	state_store_write(s);
	state_store_free(&s);
}

static bool
holds(struct state_store *s, const char *mailbox, uint32_t v, uint32_t u)
{
	struct state st = {0};

	return state_store_get(s, mailbox, &st) == 1 && st.uidvalidity == v &&
	       st.uid == u;
}

/* True when a fresh store of account, read from its file, holds
 * mailbox's state v/u. */
static bool
file_has(const char *account, const char *mailbox, uint32_t v, uint32_t u)
{
	struct state_store *s = open_store(account);
	bool r = holds(s, mailbox, v, u);

	state_store_free(&s);
	return r;
}

/* A name of n copies of s. Caller frees. */
static char *
repeat(const char *s, size_t n)
{
	char *r = xmalloc(n * strlen(s) + 1), *p = r;

	while (n--)
		p = stpcpy(p, s);
	*p = 0;
	return r;
}

/* Files in the state directory whose name starts with prefix. */
static size_t
count_files(const char *prefix)
{
	DIR *dh = opendir(sdir);
	struct dirent *de;
	size_t n = 0;

	while (dh && (de = readdir(dh)))
		n += de->d_name[0] != '.' &&
		     !strncmp(de->d_name, prefix, strlen(prefix));
	if (dh)
		closedir(dh);
	return n;
}

/* put_state(), with announced past the mark. */
static void
put_announced(struct state_store *s, const char *mailbox, uint32_t v,
	      uint32_t u, uint32_t announced)
{
	state_store_put(s, mailbox,
			&(struct state){.uidvalidity = v,
					.uid = u,
					.seen = 1733400000,
					.messages = u,
					.announced = announced});
}

/* The UID last announced (not in the file) of mailbox in s, or 0. */
static uint32_t
announced(struct state_store *s, const char *mailbox)
{
	struct state st = {0};

	return state_store_get(s, mailbox, &st) == 1 ? st.announced : 0;
}

/* What a store announced past its mark (hooks waiting) is written, as
 * the file's announced column, and comes back as announced in the
 * account's next store of this process while the file still has that
 * UIDVALIDITY. */
static void
test_announced(void)
{
	struct state_store *s = open_store("ann");
	char *path = account_path("ann"), *text;

	put_state(s, "Plain", 4, 5);
	is_int(announced(s, "Plain"), 5, "announced is the mark by default");
	put_announced(s, "Held", 4, 5, 9);
	put_announced(s, "Renumbered", 4, 5, 7);
	ok(state_store_write(s) == 0, "written");
	put_announced(s, "Held", 4, 5, 10);
	ok(state_store_dirty(s), "only announced moved: dirty");
	is_int(announced(s, "Held"), 10, "the store tells it");
	ok(state_store_write(s) == 0, "written again");
	text = file_text(path);
	ok(strstr(text, "mailbox 4 5 1733400000 5 0 10 0 Held\n") &&
	       strstr(text, "mailbox 4 5 1733400000 5 0 5 0 Plain\n"),
	   "the file holds what was announced, at least the mark");
	free(text);
	state_store_free(&s);
	/* The file as written, but Renumbered's UIDVALIDITY changed. */
	save_one("ann2", "Held", 4, 5);
	put_text(path, "mailwatch-state 3\naccount ann\n"
		       "mailbox 4 5 1733400000 5 Held\n"
		       "mailbox 4 5 1733400000 5 Plain\n"
		       "mailbox 8 5 1733400000 5 Renumbered\n");
	s = open_store("ann");
	is_int(announced(s, "Held"), 10, "the next store of the account "
					 "goes on from there");
	is_int(announced(s, "Plain"), 5, "the others from their mark");
	is_int(announced(s, "Renumbered"), 5,
	       "not where the file has another UIDVALIDITY now");
	state_store_free(&s);
	s = open_store("ann2");
	is_int(announced(s, "Held"), 5, "not in another account's store");
	state_store_free(&s);
	s = open_store("ann");
	is_int(announced(s, "Held"), 10, "kept by each store that had it");
	state_store_free(&s);
	free(path);
}

/* A file's announced column above the mark: what the run that wrote it
 * announced and did not finish (a kill while hooks waited). A new store
 * starts from the mark, told what is owed; a put of the same UIDVALIDITY
 * keeps it, another drops it. A version 5 file owes nothing. */
static void
test_owed(void)
{
	char *path = account_path("owe");
	struct state_store *s;
	struct state st = {0};
	char *text;

	put_text(path, "mailwatch-state 6\naccount owe\n"
		       "server imap.example.com alice\n"
		       "mailbox 4 5 1733400000 5 0 9 Held\n"
		       "mailbox 4 5 1733400000 5 0 5 Plain\n"
		       "mailbox 6 7 1733400000 7 0 8 Renumbered\n");
	s = open_store("owe");
	ok(state_store_get(s, "Held", &st) == 1 && st.uid == 5 &&
	       st.announced == 5 && st.owed == 9,
	   "from the file: announced is the mark, 9 is owed (%u, %u, %u)",
	   st.uid, st.announced, st.owed);
	ok(state_store_get(s, "Plain", &st) == 1 && st.owed == 5,
	   "nothing owed past the mark");
	put_announced(s, "Held", 4, 6, 6);
	put_announced(s, "Renumbered", 7, 1, 1);
	ok(state_store_write(s) == 0, "written");
	text = file_text(path);
	ok(strstr(text, "mailbox 4 6 1733400000 6 0 9 0 Held\n") != NULL,
	   "still owed after a put of the same UIDVALIDITY");
	ok(strstr(text, "mailbox 7 1 1733400000 1 0 1 0 Renumbered\n") !=
		   NULL,
	   "not after a put of another");
	free(text);
	state_store_free(&s);
	put_text(path, "mailwatch-state 5\naccount owe\n"
		       "server imap.example.com alice\n"
		       "mailbox 4 5 1733400000 5 0 Held\n");
	s = open_store("owe");
	ok(state_store_get(s, "Held", &st) == 1 && st.uid == 5 && st.owed == 5,
	   "version 5: read, nothing owed");
	state_store_free(&s);
	free(path);
}

/* The time the mailbox was watched up to: written, read back, changed
 * by a put; a version 6 file has none. */
static void
test_watched(void)
{
	char *path = account_path("watch");
	struct state_store *s = open_store("watch");
	struct state st = {0};
	char *text;

	state_store_put(s, "INBOX",
			&(struct state){.uidvalidity = 4,
					.uid = 5,
					.seen = 1733400000,
					.messages = 5,
					.watched = 1733400100});
	ok(state_store_write(s) == 0, "written");
	state_store_put(s, "INBOX",
			&(struct state){.uidvalidity = 4,
					.uid = 5,
					.seen = 1733400000,
					.messages = 5,
					.watched = 1733400200});
	ok(state_store_dirty(s), "only the time watched up to moved: dirty");
	ok(state_store_write(s) == 0, "written again");
	state_store_free(&s);
	text = file_text(path);
	ok(strstr(text, "mailbox 4 5 1733400000 5 0 5 1733400200 INBOX\n") !=
		   NULL,
	   "the file holds it after ANNOUNCED");
	free(text);
	s = open_store("watch");
	ok(state_store_get(s, "INBOX", &st) == 1 && st.watched == 1733400200,
	   "read back (%lld)", (long long)st.watched);
	state_store_free(&s);
	put_text(path, "mailwatch-state 6\naccount watch\n"
		       "server imap.example.com alice\n"
		       "mailbox 4 5 1733400000 5 0 5 INBOX\n");
	s = open_store("watch");
	ok(state_store_get(s, "INBOX", &st) == 1 && st.uid == 5 &&
		   st.watched == 0,
	   "version 6: read, not known");
	state_store_free(&s);
	free(path);
}

static void
test_round_trip(void)
{
	struct state_store *s = open_store("acct");
	struct state st = {0};
	struct stat sb;
	char *path = account_path("acct"), *text;
	bool all = true;

	ok(state_store_get(s, "INBOX", &st) == 0, "no state at first");
	ok(!state_store_dirty(s) && state_store_write(s) == 0 &&
		   !exists(path),
	   "nothing to write: no file");
	dirtied = 0;
	put_state(s, "INBOX", 1700000000, 4242);
	ok(state_store_dirty(s) && dirtied == 1, "a put: dirty, owner told");
	put_state(s, "INBOX", 1700000000, 4242);
	put_state(s, "Sent", 1700000001, 7);
	is_int(dirtied, 1, "told once until written");
	ok(holds(s, "INBOX", 1700000000, 4242), "got from memory");
	ok(!exists(path), "no file before the write");
	ok(state_store_write(s) == 0 && !state_store_dirty(s),
	   "written: clean");
	text = file_text(path);
	is_str(text,
	       "mailwatch-state 7\naccount acct\n"
	       "server imap.example.com alice\n"
	       "mailbox 1700000000 4242 1733400000 4242 0 4242 0 INBOX\n"
	       "mailbox 1700000001 7 1733400000 7 0 7 0 Sent\n",
	       "the file: magic, account, a line per mailbox");
	free(text);
	ok(strcmp(strrchr(path, '/'), "/@acct") == 0 && stat(path, &sb) == 0 &&
		   (sb.st_mode & 0777) == 0600,
	   "the file is @acct, mode 0600");
	ok(stat(sdir, &sb) == 0 && (sb.st_mode & 0777) == 0700,
	   "the directory is mode 0700");
	dirtied = 0;
	put_state(s, "INBOX", 1700000000, 4242);
	ok(!state_store_dirty(s) && !dirtied, "the same state again: clean");
	state_store_free(&s);
	ok(file_has("acct", "INBOX", 1700000000, 4242) &&
		   file_has("acct", "Sent", 1700000001, 7),
	   "read back by the next store");

	/* 1500 mailboxes, put in reverse order. */
	s = open_store("many");
	for (int i = 1500; i > 0; i--) {
		char *name = xasprintf("Folder %04d/sub", i);

		put_state(s, name, (uint32_t)i, (uint32_t)(i * 7));
		free(name);
	}
	ok(state_store_write(s) == 0, "1500 mailboxes written");
	state_store_free(&s);
	s = open_store("many");
	for (int i = 1; i <= 1500; i++) {
		char *name = xasprintf("Folder %04d/sub", i);

		all = all && holds(s, name, (uint32_t)i, (uint32_t)(i * 7));
		free(name);
	}
	ok(all, "and all 1500 read back");
	ok(!holds(s, "Folder 0000/sub", 0, 0) && !holds(s, "Folder", 0, 0),
	   "and no other");
	ok(!state_store_dirty(s), "reading does not dirty");
	state_store_free(&s);

	/* Seen, the message count and HIGHESTMODSEQ at their limits. */
	s = open_store("acct");
	state_store_put(s, "Seen",
			&(struct state){.uidvalidity = UINT32_MAX,
					.uid = UINT32_MAX,
					.seen = 1733400000,
					.messages = 0,
					.modseq = INT64_MAX});
	state_store_write(s);
	state_store_free(&s);
	s = open_store("acct");
	ok(state_store_get(s, "Seen", &st) == 1 &&
		   st.uidvalidity == UINT32_MAX && st.uid == UINT32_MAX &&
		   st.seen == 1733400000 && st.messages == 0 &&
		   st.modseq == INT64_MAX,
	   "largest UIDs and modseq, seen time, an empty mailbox: read "
	   "back");
	state_store_put(s, "Huge",
			&(struct state){.uidvalidity = 1,
					.uid = 2,
					.seen = 1733400000,
					.messages = 3,
					.modseq = UINT64_MAX});
	state_store_write(s);
	state_store_free(&s);
	s = open_store("acct");
	ok(state_store_get(s, "Huge", &st) == 1 && st.uid == 2 &&
		   st.modseq == INT64_MAX,
	   "a server's modseq past 63 bits: kept as 2^63 - 1, the line "
	   "still read");
	dirtied = 0;
	state_store_put(s, "Seen",
			&(struct state){.uidvalidity = UINT32_MAX,
					.uid = UINT32_MAX,
					.seen = 1733400000,
					.messages = 0,
					.modseq = 12});
	ok(state_store_dirty(s) && dirtied == 1,
	   "a put that changes only HIGHESTMODSEQ: dirty");
	/* No seen time: as a file of version 1, when it was put and 1. */
	{
		time_t before = time(NULL);

		state_store_put(s, "Unseen",
				&(struct state){.uidvalidity = 3, .uid = 4});
		ok(state_store_get(s, "Unseen", &st) == 1 &&
			   st.seen >= before && st.seen <= time(NULL) &&
			   st.messages == 1,
		   "no seen time: the time of the put, not known empty");
	}
	state_store_free(&s);
	free(path);
}

/* Names of any bytes but NUL: spaces (also at the ends), '%', controls,
 * newlines, UTF-8, a name that looks like a mailbox line. */
static void
test_names(void)
{
	static const char *const names[] = {
	    "Sent Items",
	    " lead and trail ",
	    "100% done",
	    "%41 not A",
	    "line\nbreak",
	    "tab\there\r\x7f",
	    "R\xc3\xa9" "cus/\xd0\x96",
	    "mailbox 1 2 3 4 x",
	    "\xff\xfe",
	    ".",
	    "a/b",
	    "a.b",
	};
	size_t n = sizeof(names) / sizeof(*names);
	struct state_store *s = open_store("names");
	char *path = account_path("names"), *text;
	bool all = true;
	size_t lines = 0;

	for (size_t i = 0; i < n; i++)
		put_state(s, names[i], 1, (uint32_t)i + 1);
	ok(state_store_write(s) == 0, "odd names written");
	state_store_free(&s);
	s = open_store("names");
	for (size_t i = 0; i < n; i++)
		all = all && holds(s, names[i], 1, (uint32_t)i + 1);
	ok(all, "and each read back as itself");
	state_store_free(&s);
	text = file_text(path);
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	is_int(lines, 3 + n, "one line each: controls written as %%XX");
	ok(strstr(text, " 100%25 done\n") && strstr(text, " line%0Abreak\n") &&
		   strstr(text, "  lead and trail \n"),
	   "'%%' and newlines escaped, spaces kept");
	free(text);
	free(path);
}

/* A corrupt line costs its mailbox's state, with a warning naming the
 * file and the line; the other mailboxes load. */
static void
test_corrupt_lines(void)
{
	char *path = account_path("bad"), *log;
	struct state_store *s;

	put_text(path, "mailwatch-state 3\naccount bad\n"
		       "mailbox 1 10 1733400000 5 First\n"
		       "mailbox 1 x 1733400000 5 Letters\n"
		       "mailbox 0 10 1733400000 5 Zero\n"
		       "mailbox 1 10 1733400000 5\n"
		       "mailbox 1 10 1733400000 5 Bad%4\n"
		       "mailbox 1 10 1733400000 5 Nul%00\n"
		       "mailbox 1 10 1733400000 5 Tab\there\n"
		       "mailbox 1 99999999999 1733400000 5 Big\n"
		       "mailbox 1 11 1733400000 5 First\n"
		       "folder 1 10 1733400000 5 Other\n"
		       "\n"
		       "mailbox 1 20 1733400000 5 Last\n");
	s = open_logged("bad", &log);
	ok(holds(s, "First", 1, 10) && holds(s, "Last", 1, 20),
	   "the good lines load, the first of a repeated mailbox");
	ok(!holds(s, "Letters", 1, 10) && !holds(s, "Zero", 0, 10) &&
		   !holds(s, "Bad%4", 1, 10) && !holds(s, "Nul", 1, 10) &&
		   !holds(s, "Tab\there", 1, 10) && !holds(s, "Big", 1, 10) &&
		   !holds(s, "Other", 1, 10),
	   "the corrupt ones do not");
	ok(strstr(log, "@bad, line 4: corrupt") &&
		   strstr(log, "@bad, line 8: corrupt") &&
		   !strstr(log, "line 3:") && !strstr(log, "line 9:") &&
		   strstr(log, "5 more corrupt lines skipped"),
	   "the log names the file and the first lines, then counts");
	if (!strstr(log, "@bad, line 4: corrupt"))
		dump(log);
	free(log);
	ok(!state_store_dirty(s), "not written back by itself");
	put_state(s, "Last", 1, 21);
	ok(state_store_write(s) == 0 && file_has("bad", "First", 1, 10) &&
		   file_has("bad", "Last", 1, 21),
	   "the next write keeps the good ones");
	state_store_free(&s);
	s = open_logged("bad", &log);
	ok(!*log, "and drops the corrupt ones: no warning after it");
	free(log);
	state_store_free(&s);

	/* A NUL inside a line, and a last line without its newline. */
	{
		static const char t[] = "mailwatch-state 3\naccount bad\n"
					"mailbox 1 10 1733400000 5 A\0B\n"
					"mailbox 1 10 1733400000 5 C";

		put_file(path, t, sizeof(t) - 1);
	}
	s = open_logged("bad", &log);
	ok(!holds(s, "A", 1, 10) && holds(s, "C", 1, 10) &&
		   strstr(log, "line 3: corrupt"),
	   "a NUL in a line: that line skipped");
	free(log);
	state_store_free(&s);

	/* Version 4: HIGHESTMODSEQ before the name, at most 2^63 - 1. */
	put_text(path, "mailwatch-state 4\naccount bad\n"
		       "mailbox 1 10 1733400000 5 9223372036854775807 Top\n"
		       "mailbox 1 10 1733400000 5 9223372036854775808 Over\n"
		       "mailbox 1 10 1733400000 5 First\n"
		       "mailbox 1 10 1733400000 5 7\n");
	s = open_logged("bad", &log);
	ok(holds(s, "Top", 1, 10) && !holds(s, "Over", 1, 10) &&
		   !holds(s, "First", 1, 10) && !holds(s, "7", 1, 10) &&
		   strstr(log, "line 4: corrupt") &&
		   strstr(log, "line 5: corrupt") &&
		   strstr(log, "line 6: corrupt"),
	   "version 4: a modseq past 2^63 - 1, or none, is corrupt");
	free(log);
	state_store_free(&s);
	free(path);
}

/* A file of version 3, before HIGHESTMODSEQ was kept, loads with modseq
 * 0, and the next write makes it version 5. */
static void
test_version_3(void)
{
	char *path = account_path("three"), *text;
	struct state_store *s;
	struct state st = {0};

	put_text(path, "mailwatch-state 3\naccount three\n"
		       "mailbox 1 10 1733400000 5 2024 Reports\n"
		       "mailbox 2 20 1733400000 6 INBOX\n");
	s = open_store("three");
	ok(state_store_get(s, "2024 Reports", &st) == 1 && st.uid == 10 &&
		   st.messages == 5 && st.modseq == 0,
	   "version 3: read, modseq 0 (a name that starts with a number)");
	ok(holds(s, "INBOX", 2, 20), "and its other line");
	ok(!state_store_dirty(s), "not written back by itself");
	state_store_put(s, "INBOX",
			&(struct state){.uidvalidity = 2,
					.uid = 21,
					.seen = 1733400000,
					.messages = 6,
					.modseq = 99});
	ok(state_store_write(s) == 0, "written");
	state_store_free(&s);
	text = file_text(path);
	is_str(text,
	       "mailwatch-state 7\naccount three\n"
	       "server imap.example.com alice\n"
	       "mailbox 1 10 1733400000 5 0 10 0 2024 Reports\n"
	       "mailbox 2 21 1733400000 6 99 21 0 INBOX\n",
	       "written as version 7");
	free(text);
	free(path);
}

/* The accounts test_rename's predicate says are configured. */
static const char *const *configured_names;

static bool
in_use(void *ud, const char *account)
{
	(void)ud;
	for (size_t i = 0; configured_names[i]; i++)
		if (!strcmp(configured_names[i], account))
			return true;
	return false;
}

static struct state_store *
open_renamed(const char *account, char **log_r)
{
	char *path = xasprintf("%s/stderr", dir);
	struct state_store *s;

	capture_begin(path);
	s = state_store_new(account, host, user, config_file, in_use,
			    on_dirtied, NULL);
	*log_r = capture_end();
	free(path);
	return s;
}

/* An account renamed in the configuration takes over its old name's
 * state, when that file is for the same host and user, its name is no
 * longer configured, and no other process holds its lock; the old file
 * goes once the new one is written. */
static void
test_rename(void)
{
	static const char *const none[] = {NULL};
	static const char *const both[] = {"old1", "new1", NULL};
	static const char *const new1[] = {"new1", NULL};
	char *old = account_path("old1"), *new = account_path("new1"), *log;
	char *old_lock = xasprintf("%s@lock", old);
	struct state_store *s;
	pid_t holder;
	int lock;

	/* A server of this test's own: the other tests' files are for
	 * imap.example.com. */
	host = "imap.rename.example";
	s = open_store("old1");
	put_state(s, "INBOX", 7, 42);
	ok(state_store_write(s) == 0 && exists(old), "rename: old1 written");
	state_store_free(&s);

	configured_names = both;
	s = open_renamed("new1", &log);
	ok(!holds(s, "INBOX", 7, 42) && !*log,
	   "rename: old1 still configured (two accounts on one server): "
	   "nothing taken");
	free(log);
	state_store_free(&s);

	configured_names = none;
	lock = state_lock_account("old1", &holder);
	s = open_renamed("new1", &log);
	ok(!holds(s, "INBOX", 7, 42), "rename: old1 locked by another: nothing "
				       "taken");
	free(log);
	state_store_free(&s);
	close(lock);

	host = "imap.elsewhere.example";
	s = open_renamed("new1", &log);
	ok(!holds(s, "INBOX", 7, 42), "rename: another host: nothing taken");
	free(log);
	state_store_free(&s);
	host = "imap.rename.example";

	/* Files that are no account's state do not stop it (read safely:
	 * one shorter than the magic line). */
	{
		char *tiny = account_path("tiny");

		put_text(tiny, "x");
		free(tiny);
	}
	dirtied = 0;
	s = open_renamed("new1", &log);
	ok(holds(s, "INBOX", 7, 42) && state_store_written(s) > 0,
	   "rename: old1's state taken over, with its time");
	has(log, "new1: state: taking over %s, the state of account old1, for "
		 "the same host and user and no longer configured (renamed?)",
	    old);
	ok(state_store_dirty(s) && dirtied == 1, "rename: dirty, owner told");
	ok(exists(old) && !exists(new), "rename: old1's file kept until the "
				       "write");
	ok(state_store_write(s) == 0 && !exists(old) && exists(new),
	   "rename: written as new1's, old1's removed");
	ok(!exists(old_lock), "rename: and old1's lock file too (trial T)");
	state_store_free(&s);
	ok(file_has("new1", "INBOX", 7, 42), "rename: and new1's file has it");
	lock = state_lock_account("old1", &holder);
	ok(lock >= 0, "rename: old1's lock let go");
	if (lock >= 0)
		close(lock);
	free(log);
	free(old);
	free(old_lock);
	free(new);

	/* Another configuration file's account is another instance's, not
	 * one renamed (trial R: one took over the other's state, which
	 * then missed mail); the file says which. new1 is configured. */
	configured_names = new1;
	old = account_path("old2");
	config_file = "/home/u/.config/mailwatch/a b.ini";
	s = open_store("old2");
	put_state(s, "INBOX", 8, 43);
	ok(state_store_write(s) == 0 && exists(old), "rename: old2 written");
	state_store_free(&s);
	config_file = "/home/u/.config/mailwatch/a b.ini.other";
	s = open_renamed("new2", &log);
	ok(!holds(s, "INBOX", 8, 43) && !*log,
	   "rename: old2 of another configuration file: nothing taken");
	free(log);
	state_store_free(&s);
	config_file = "/home/u/.config/mailwatch/a b.ini";
	s = open_renamed("new2", &log);
	ok(holds(s, "INBOX", 8, 43) && !strstr(log, "corrupt"),
	   "rename: old2 of the same file taken over");
	state_store_free(&s);
	free(log);
	free(old);

	/* Two accounts renamed at once: the first took the newest file
	 * and holds its lock; the second takes the other one (trial S: it
	 * took none, and lost the mail that came while stopped). */
	host = "imap.twice.example";
	s = open_store("old4");
	put_state(s, "Lists", 4, 4);
	ok(state_store_write(s) == 0, "rename: old4 written");
	state_store_free(&s);
	/* old3 newer by its time: old4's put 10 s back. */
	{
		char *old4 = account_path("old4");
		struct timespec when[2] = {{.tv_nsec = UTIME_OMIT},
					   {.tv_sec = time(NULL) - 10}};

		ok(utimensat(AT_FDCWD, old4, when, 0) == 0,
		   "rename: old4 made older");
		free(old4);
	}
	s = open_store("old3");
	put_state(s, "INBOX", 3, 3);
	ok(state_store_write(s) == 0, "rename: old3 written");
	state_store_free(&s);
	lock = state_lock_account("old3", &holder);
	s = open_renamed("new4", &log);
	ok(lock >= 0 && holds(s, "Lists", 4, 4),
	   "rename: the newest file's lock held: the next one taken");
	state_store_free(&s);
	free(log);
	if (lock >= 0)
		close(lock);
	config_file = NULL;
	host = "imap.example.com";
}

/* Files that are not this account's state: absent, with a warning, and
 * replaced by the next write. */
static void
test_foreign(void)
{
	char *path = account_path("f"), *log;
	struct state_store *s;

	put_text(path, "{\"json\": true}\nmailbox 1 10 1733400000 5 INBOX\n");
	s = open_logged("f", &log);
	ok(!holds(s, "INBOX", 1, 10) &&
		   strstr(log, "is corrupt; starting without it (unseen mail "
			       "that came since shortly before it was last "
			       "written is announced, some of it again)"),
	   "not a state file: absent, with a warning saying what follows");
	ok(state_store_written(s) > 0,
	   "... and its time kept: the mailboxes catch up since then");
	free(log);
	state_store_free(&s);

	put_text(path, "mailwatch-state 2\naccount f\nmailbox INBOX\n"
		       "uidvalidity 1\nuid 10\n");
	s = open_logged("f", &log);
	ok(!holds(s, "INBOX", 1, 10) && strstr(log, "not a mailwatch state"),
	   "a per-mailbox file's format: absent");
	free(log);
	state_store_free(&s);

	put_text(path, "mailwatch-state 3\naccount g\n"
		       "mailbox 1 10 1733400000 5 INBOX\n");
	s = open_logged("f", &log);
	ok(!holds(s, "INBOX", 1, 10) &&
		   strstr(log, "holds another account's state"),
	   "another account's (a hash collision): absent, with a warning");
	free(log);
	put_state(s, "INBOX", 2, 3);
	ok(state_store_write(s) == 0 && file_has("f", "INBOX", 2, 3),
	   "and replaced by the next write");
	state_store_free(&s);

	/* The account's name used before for another server or user: its
	 * mailboxes start afresh (a record of other UIDs would announce
	 * their unseen mail again, as "UIDVALIDITY changed"). */
	put_text(path, "mailwatch-state 5\naccount f\n"
		       "server imap.old.example alice\n"
		       "mailbox 1 10 1733400000 5 0 INBOX\n");
	s = open_logged("f", &log);
	ok(!holds(s, "INBOX", 1, 10) && !state_store_written(s),
	   "another server: absent, as at a first run");
	has(log, "f: state: %s is for alice at imap.old.example, not alice at "
		 "imap.example.com (the account's name was used for another "
		 "before); starting afresh",
	    path);
	free(log);
	state_store_free(&s);
	put_text(path, "mailwatch-state 5\naccount f\n"
		       "server imap.example.com bob\n"
		       "mailbox 1 10 1733400000 5 0 INBOX\n");
	s = open_logged("f", &log);
	ok(!holds(s, "INBOX", 1, 10) &&
		   strstr(log, "is for bob at imap.example.com, not alice"),
	   "another user: absent, with a warning");
	free(log);
	put_state(s, "INBOX", 2, 3);
	ok(state_store_write(s) == 0 && file_has("f", "INBOX", 2, 3),
	   "and replaced by the next write");
	state_store_free(&s);
	s = open_logged("f", &log);
	ok(!*log && holds(s, "INBOX", 2, 3), "which is this server's");
	free(log);
	state_store_free(&s);
	put_text(path, "mailwatch-state 5\naccount f\n"
		       "mailbox 1 10 1733400000 5 0 INBOX\n");
	s = open_logged("f", &log);
	ok(!holds(s, "INBOX", 1, 10) && strstr(log, "is corrupt"),
	   "version 5 without its server line: corrupt");
	free(log);
	state_store_free(&s);
	put_text(path, "mailwatch-state 4\naccount f\n"
		       "mailbox 1 10 1733400000 5 0 INBOX\n");
	s = open_logged("f", &log);
	ok(!*log && holds(s, "INBOX", 1, 10),
	   "version 4 (no server line): taken as this server's");
	free(log);
	state_store_free(&s);

	put_text(path, "mailwatch-state 3\naccount f\n");
	s = open_logged("f", &log);
	ok(!*log && !holds(s, "INBOX", 2, 3), "no mailbox: empty, no warning");
	free(log);
	state_store_free(&s);

	unlink(path);
	mkdir(path, 0700);
	s = open_logged("f", &log);
	ok(strstr(log, "starting without it") != NULL,
	   "unreadable (a directory): a warning");
	free(log);
	state_store_free(&s);
	rmdir(path);
	free(path);
}

/* More than STATE_FILE_MAX bytes: the lines within them are read, with a
 * warning. Lines of 55 bytes: "mailbox 1 UID 1733400000 5 NAME\n", UID
 * 10 digits and NAME 20. */
static void
test_too_big(void)
{
	static const char head[] = "mailwatch-state 3\naccount big\n";
	size_t n = STATE_FILE_MAX / 55 + 100, last;
	char *path = account_path("big"), *log, *text, *p, name[32];
	struct state_store *s;

	text = xmalloc(n * 55 + sizeof(head));
	p = stpcpy(text, head);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "mailbox 1 %010zu 1733400000 5 %020zu\n", i, i);
	put_file(path, text, (size_t)(p - text));
	free(text);
	/* The last line that ends within the first STATE_FILE_MAX bytes. */
	last = (STATE_FILE_MAX - strlen(head)) / 55 - 1;
	s = open_logged("big", &log);
	snprintf(name, sizeof(name), "%020d", 0);
	ok(holds(s, name, 1, 0), "its first line is read");
	snprintf(name, sizeof(name), "%020zu", last);
	ok(holds(s, name, 1, (uint32_t)last),
	   "and its last within the first %d bytes", STATE_FILE_MAX);
	snprintf(name, sizeof(name), "%020zu", last + 1);
	ok(!holds(s, name, 1, (uint32_t)last + 1),
	   "not the one across that bound");
	snprintf(name, sizeof(name), "%020zu", n - 1);
	ok(!holds(s, name, 1, (uint32_t)n - 1), "nor the last");
	ok(strstr(log, "is longer than") && !strstr(log, "corrupt"),
	   "a warning says so (and no line is called corrupt)");
	if (!strstr(log, "is longer than"))
		dump(log);
	free(log);
	state_store_free(&s);
	unlink(path);
	free(path);
}

/* The per-mailbox files of earlier versions (1 and 2, readable and
 * hashed names) are read for a mailbox the account file does not hold,
 * and removed once the account file holding their state was written. */
static void
test_migration(void)
{
	char *v2 = old_path("old", "INBOX"), *v1 = old_path("old", "Sent Items");
	char *longname = repeat("\xd0\x96", 45), *hashed;
	char *path = account_path("old"), *other, *log;
	struct state_store *s;
	struct state st;
	struct stat sb;

	hashed = old_path("old", longname);
	other = old_path("old", "Other");
	put_text(v2, "mailwatch-state 2\naccount old\nmailbox INBOX\n"
		     "uidvalidity 5\nuid 50\nseen 1733400000\nmessages 9\n");
	put_text(v1, "mailwatch-state 1\nuidvalidity 6\nuid 60\n");
	{
		char *t = xasprintf("mailwatch-state 2\naccount old\nmailbox "
				    "%s\nuidvalidity 7\nuid 70\n",
				    longname);

		put_text(hashed, t);
		free(t);
	}
	put_text(other, "mailwatch-state 2\naccount old\nmailbox Another\n"
			"uidvalidity 8\nuid 80\n");
	ok(strchr(strrchr(hashed, '/'), '~') != NULL, "a hashed name: %s",
	   strrchr(hashed, '/') + 1);

	s = open_store("old");
	dirtied = 0;
	ok(state_store_get(s, "INBOX", &st) == 1 && st.uidvalidity == 5 &&
		   st.uid == 50 && st.seen == 1733400000 && st.messages == 9,
	   "version 2: read from old.INBOX");
	ok(stat(v1, &sb) == 0 && state_store_get(s, "Sent Items", &st) == 1 &&
		   st.uidvalidity == 6 && st.uid == 60 &&
		   st.seen == sb.st_mtime && st.messages == 1,
	   "version 1: read, seen when it was written, not known empty");
	ok(holds(s, longname, 7, 70), "version 2 at a hashed name: read");
	ok(state_store_dirty(s) && dirtied == 1,
	   "dirty, owner told: the account file is to hold them");
	ok(exists(v1) && exists(v2) && exists(hashed),
	   "the old files stay until it does");
	ok(state_store_get(s, "Other", &st) == 0 && exists(other),
	   "another mailbox's file: absent, and left alone");

	/* A write that fails keeps the old files, and the store dirty. */
	mkdir(path, 0700);
	ok(write_logged(s, &log) < 0 && state_store_dirty(s) &&
		   strstr(log, "cannot") && strstr(log, "trying again"),
	   "a failed write: an error, still dirty");
	free(log);
	ok(exists(v1) && exists(v2) && exists(hashed),
	   "and the old files stay");
	ok(write_logged(s, &log) < 0 && state_store_dirty(s) && !*log,
	   "failing again: not logged again");
	free(log);
	put_state(s, "New", 1, 1);
	rmdir(path);
	ok(write_logged(s, &log) == 0 && !state_store_dirty(s) &&
		   strstr(log, "written again") &&
		   strstr(log, "3 per-mailbox state files"),
	   "the next write succeeds, and says so");
	free(log);
	ok(!exists(v1) && !exists(v2) && !exists(hashed) && exists(other),
	   "then the old files are gone (but another mailbox's)");
	state_store_free(&s);
	ok(file_has("old", "INBOX", 5, 50) &&
		   file_has("old", "Sent Items", 6, 60) &&
		   file_has("old", longname, 7, 70) &&
		   file_has("old", "New", 1, 1),
	   "their state in the account file");

	/* Old files that are not what they should be: absent, as before. */
	{
		char *h2, *bad = old_path("old", "Bad"), *l2;

		l2 = repeat("\xd0\x97", 45);
		h2 = old_path("old", l2);
		put_text(h2, "mailwatch-state 1\nuidvalidity 5\nuid 55\n");
		put_text(bad, "mailwatch-state 2\naccount old\nmailbox Bad\n"
			      "uidvalidity 3\nuid 30\nseen 17\n");
		s = open_store("old");
		ok(!holds(s, l2, 5, 55) && exists(h2),
		   "version 1 at a hashed name (whose?): absent, left alone");
		char *cap = xasprintf("%s/stderr", dir);

		capture_begin(cap);
		ok(state_store_get(s, "Bad", &st) == 0, "a corrupt old file: absent");
		log = capture_end();
		free(cap);
		ok(strstr(log, "is corrupt or not a mailwatch state file") != NULL,
		   "with a warning");
		free(log);
		ok(!state_store_dirty(s), "nothing moved: clean");
		state_store_free(&s);
		unlink(h2);
		unlink(bad);
		free(h2);
		free(l2);
		free(bad);
	}

	/* The account file wins over an old file left behind. */
	put_text(v2, "mailwatch-state 2\naccount old\nmailbox INBOX\n"
		     "uidvalidity 5\nuid 1\n");
	s = open_store("old");
	ok(holds(s, "INBOX", 5, 50) && !state_store_dirty(s),
	   "the account file first");
	state_store_free(&s);
	unlink(v2);
	unlink(other);
	free(other);
	free(hashed);
	free(longname);
	free(path);
	free(v1);
	free(v2);
}

/* Mailboxes not asked for (no longer watched) keep their state. */
static void
test_kept(void)
{
	struct state_store *s = open_store("kept");

	put_state(s, "A", 1, 1);
	put_state(s, "B", 1, 2);
	state_store_write(s);
	state_store_free(&s);
	save_one("kept", "A", 1, 3);
	ok(file_has("kept", "A", 1, 3) && file_has("kept", "B", 1, 2),
	   "a mailbox not watched any more keeps its state");
}

/* What a rename needs: when the file was written, the one state with a
 * UIDVALIDITY (none when two share it), and dropping the old name's. */
static void
test_renamed(void)
{
	struct state_store *s = open_store("renamed");
	struct state st = {0};
	time_t before = time(NULL);
	const char *name;

	is_int(state_store_written(s), 0, "no file: written 0");
	put_state(s, "Old", 7, 40);
	put_state(s, "A", 8, 1);
	put_state(s, "B", 8, 2);
	state_store_write(s);
	state_store_free(&s);

	ok(state_freed_at("renamed") >= before &&
	       state_freed_at("renamed") <= time(NULL) &&
	       !state_freed_at("never-opened"),
	   "freed: when a store of the account was freed in this process");
	s = open_store("renamed");
	/* The file's mtime, from the kernel's clock for file times, which
	 * time() may not agree with across a second's edge (a CI run's
	 * failure): a second either way. */
	ok(state_store_written(s) >= before - 1 &&
	       state_store_written(s) <= time(NULL) + 1,
	   "written: when the file was written");
	{
		char *path = account_path("ignored");
		struct state_store *t;

		put_text(path, "mailwatch-state 9\naccount ignored\n");
		t = open_store("ignored");
		is_int(state_store_written(t), 0,
		       "a file of another version: written 0 (ignored)");
		state_store_free(&t);
		put_text(path, "mailwatch-state 4\naccount other\n");
		t = open_store("ignored");
		is_int(state_store_written(t), 0,
		       "another account's file: written 0");
		state_store_free(&t);
		put_text(path, "");
		t = open_store("ignored");
		ok(state_store_written(t) > 0,
		   "an emptied file: its time, the last known (a trial's "
		   "mail that came while stopped was lost)");
		state_store_free(&t);
		free(path);
	}
	name = state_store_find(s, 7, &st);
	ok(name && !strcmp(name, "Old") && st.uid == 40 && st.announced == 40,
	   "the only state with that UIDVALIDITY is found");
	ok(!state_store_find(s, 8, &st),
	   "none when two mailboxes share the UIDVALIDITY");
	ok(!state_store_find(s, 9, &st), "none when no state has it");
	dirtied = 0;
	state_store_forget(s, "Old");
	ok(dirtied == 1 && state_store_dirty(s), "forget makes it dirty");
	ok(!state_store_find(s, 7, &st), "forgotten");
	state_store_write(s);
	state_store_free(&s);
	ok(!file_has("renamed", "Old", 7, 40) &&
	       file_has("renamed", "A", 8, 1),
	   "the file no longer has it, and keeps the others");
}

/* Account files never meet the per-mailbox files' names, and names of
 * any length fit. */
static void
test_file_names(void)
{
	static const char *const accounts[] = {
	    "acct", "a.b", "me@example.com", ".", "..", "a~b", "-x",
	};
	bool apart = true, fits = true, cut_ok = true, short_ok, hashed_ok;
	char *name, *acct, *acct2;

	for (size_t i = 0; i < sizeof(accounts) / sizeof(*accounts); i++) {
		char *a = state_account_file_name(accounts[i], 255);
		char *m = state_file_name(accounts[i], "@INBOX", 255);

		apart = apart && a[0] == '@' && !strchr(a + 1, '@') &&
			!strchr(m, '@');
		free(a);
		free(m);
	}
	ok(apart, "an account file's name has one '@', the old ones none");
	name = state_account_file_name("me@example.com", 255);
	is_str(name, "@me%40example.com", "readable when it fits");
	free(name);

	for (long max = 32; max <= 255; max += 7) {
		for (size_t n = 1; n < 300; n++) {
			char *a = repeat("\xd0\x96-", n);
			size_t len;
			char *tilde;

			a[n] = 0;
			name = state_account_file_name(a, max);
			len = strlen(name);
			tilde = strchr(name, '~');
			fits = fits && len + 7 <= (size_t)max;
			if (tilde) {
				size_t k = (size_t)(tilde - name);

				cut_ok = cut_ok &&
					 !(k >= 1 && name[k - 1] == '%') &&
					 !(k >= 2 && name[k - 2] == '%') &&
					 strlen(tilde) == 17;
			}
			free(name);
			free(a);
			/* The old names, as earlier versions wrote them. */
			a = repeat("\xd0\x96-", n);
			a[n] = 0;
			name = state_file_name("acct", a, max);
			fits = fits && strlen(name) + 7 <= (size_t)max;
			free(name);
			free(a);
		}
	}
	ok(fits, "every file name fits, with the temporary suffix");
	ok(cut_ok, "a hashed name never ends in half a %%XX");

	/* At the boundary (NAME_MAX 255, 7 for the suffix): 248 bytes stay
	 * readable, 249 are hashed. */
	acct = repeat("x", 247);
	name = state_account_file_name(acct, 255);
	short_ok = strlen(name) == 248 && !strchr(name, '~');
	free(name);
	ok(short_ok, "248 bytes: the readable name");
	acct2 = repeat("x", 248);
	name = state_account_file_name(acct2, 255);
	hashed_ok = strlen(name) <= 248 && strchr(name, '~');
	free(name);
	ok(hashed_ok, "249 bytes: a hashed name");
	save_one(acct, "INBOX", 3, 248);
	save_one(acct2, "INBOX", 3, 249);
	ok(file_has(acct, "INBOX", 3, 248) && file_has(acct2, "INBOX", 3, 249),
	   "both written and read back, apart");
	free(acct);
	free(acct2);

	/* Two long account names that differ only past the cut. */
	acct = repeat("\xd0\x96", 200);
	acct2 = xasprintf("%s!", acct);
	{
		char *p1 = account_path(acct), *p2 = account_path(acct2);

		ok(strcmp(p1, p2) != 0 && strchr(strrchr(p1, '/'), '~'),
		   "long account names: hashed, apart");
		save_one(acct, "INBOX", 4, 40);
		save_one(acct2, "INBOX", 4, 41);
		ok(file_has(acct, "INBOX", 4, 40) &&
			   file_has(acct2, "INBOX", 4, 41),
		   "and each keeps its own state");
		/* One's file at the other's name (a hash collision):
		 * another account's, ignored. */
		rename(p1, p2);
		ok(!file_has(acct2, "INBOX", 4, 40) &&
			   !file_has(acct2, "INBOX", 4, 41),
		   "another account's file at its name: ignored");
		free(p1);
		free(p2);
	}
	free(acct);
	free(acct2);
}

/* The path of account's lock file. Caller frees. */
static char *
lock_path(const char *account)
{
	char *path = account_path(account), *lock;

	lock = xasprintf("%s@lock", path);
	free(path);
	return lock;
}

/* One process's lock of an account: held against any other open file
 * of it (another process's, as another open file description here),
 * naming its holder; let go when closed. */
static void
test_lock(void)
{
	char *path = lock_path("lk"), *text, *want;
	pid_t holder = -1;
	struct stat sb;
	int fd, fd2, other;

	/* A longer pid left by an earlier holder. */
	put_text(path, "2147483647\n");
	fd = state_lock_account("lk", &holder);
	ok(fd >= 0, "the lock is taken");
	want = xasprintf("%ld\n", (long)getpid());
	text = file_text(path);
	is_str(text, want, "our pid in it, nothing left of the earlier one");
	free(text);
	ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	   "mode 0600 (%o)", (unsigned)(sb.st_mode & 0777));
	ok(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
	   "close-on-exec: hooks do not inherit it");

	fd2 = state_lock_account("lk", &holder);
	is_int(fd2, -EWOULDBLOCK, "held: not taken twice");
	is_int(holder, getpid(), "and the holder's pid is told");
	close(fd);
	fd2 = state_lock_account("lk", &holder);
	ok(fd2 >= 0, "closed: taken again");
	close(fd2);

	/* Held by someone who has not written a pid. */
	unlink(path);
	other = open(path, O_RDWR | O_CREAT, 0600);
	flock(other, LOCK_EX);
	fd = state_lock_account("lk", &holder);
	ok(fd == -EWOULDBLOCK && holder == 0,
	   "a holder without a pid in the file: 0 (%d, %ld)", fd,
	   (long)holder);
	close(other);

	/* The state file beside it is read and written as ever. */
	fd = state_lock_account("lk", &holder);
	save_one("lk", "INBOX", 5, 50);
	ok(file_has("lk", "INBOX", 5, 50), "the state file works beside it");
	close(fd);
	free(want);
	free(path);
}

/* state_lock_account() with stderr captured into *log_r (caller
 * frees). */
static int
lock_logged(const char *account, char **log_r)
{
	char *path = xasprintf("%s/stderr", dir);
	pid_t holder;
	int fd;

	capture_begin(path);
	fd = state_lock_account(account, &holder);
	*log_r = capture_end();
	free(path);
	return fd;
}

/* No lock to be had: a warning, and the caller watches anyway. */
static void
test_lock_fails(void)
{
	char *path = lock_path("nolock"), *log, *home = getenv("HOME");
	bool good;
	int fd;

	mkdir(path, 0700); /* a directory where the lock file goes */
	fd = lock_logged("nolock", &log);
	good = fd < 0 && fd != -EWOULDBLOCK &&
	       strstr(log, "nolock: state: cannot lock") &&
	       strstr(log, "watching this account anyway");
	ok(good, "a lock file that cannot be opened: an error (%d), and a "
		 "warning",
	   fd);
	if (!good)
		printf("# %s", log);
	free(log);
	rmdir(path);
	free(path);

	home = home ? xstrdup(home) : NULL;
	unsetenv("XDG_STATE_HOME");
	unsetenv("HOME");
	fd = lock_logged("nolock", &log);
	good = fd < 0 && fd != -EWOULDBLOCK &&
	       strstr(log, "no state directory to lock this account in; "
			   "watching it anyway");
	ok(good, "no state directory: an error (%d), and a warning", fd);
	if (!good)
		printf("# %s", log);
	free(log);
	setenv("XDG_STATE_HOME", dir, 1);
	if (home)
		setenv("HOME", home, 1);
	free(home);
}

/* Lock names of odd and long account names: apart from the account
 * file (and its temporary files) and from other accounts' locks, within
 * NAME_MAX. */
static void
test_lock_names(void)
{
	char *long1 = repeat("x", 248), *long2 = repeat("\xd0\x96", 200);
	char *long3 = xasprintf("%s!", long2);
	const char *const accounts[] = {
	    "me@example.com", ".", "..", "a~b", "-x", "a@lock", long1,
	    long2,	      long3,
	};
	size_t n = sizeof(accounts) / sizeof(*accounts);
	long name_max = pathconf(sdir, _PC_NAME_MAX);
	bool fits = true, apart = true, held = true;
	int fds[sizeof(accounts) / sizeof(*accounts)];
	pid_t holder;

	for (long max = 32; max <= 255; max += 7)
		for (size_t i = 0; i < n; i++) {
			char *name = state_account_file_name(accounts[i], max);

			fits = fits && strlen(name) + 5 <= (size_t)max;
			free(name);
		}
	ok(fits, "'@lock' after every account file name fits NAME_MAX");
	for (size_t i = 0; i < n; i++) {
		char *file = account_path(accounts[i]);
		char *lock = lock_path(accounts[i]);
		const char *base = strrchr(lock, '/') + 1;

		fds[i] = state_lock_account(accounts[i], &holder);
		held = held && fds[i] >= 0 && exists(lock);
		fits = fits && strlen(base) <= (size_t)name_max;
		/* The account file has one '@', a temporary one two and six
		 * characters after the second. */
		apart = apart && strcmp(file, lock) &&
			strchr(strrchr(file, '/') + 1, '@') ==
			    strrchr(file, '@') &&
			!strcmp(strrchr(base, '@'), "@lock");
		free(file);
		free(lock);
	}
	ok(held, "the locks of odd and long names are taken together: none "
		 "holds another's");
	ok(fits, "within the directory's NAME_MAX (%ld)", name_max);
	ok(apart, "apart from the account files and their temporary files");
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(long1);
	free(long2);
	free(long3);
}

/* HOME without ~/.local (a fresh account): the whole path is made, each
 * directory 0700. */
static void
test_fresh_home(void)
{
	char *home = getenv("HOME"), *x = getenv("XDG_STATE_HOME");
	char *fresh = xasprintf("%s/fresh-home", dir), *d, *want;
	struct stat st;

	home = home ? xstrdup(home) : NULL;
	x = x ? xstrdup(x) : NULL;
	mkdir(fresh, 0700);
	setenv("HOME", fresh, 1);
	unsetenv("XDG_STATE_HOME");
	d = state_dir();
	want = xasprintf("%s/.local/state/mailwatch", fresh);
	is_str(d, want, "fresh HOME: the state directory");
	ok(stat(want, &st) == 0 && S_ISDIR(st.st_mode) &&
	       (st.st_mode & 0777) == 0700,
	   "fresh HOME: made, with ~/.local and ~/.local/state, 0700");
	free(want);
	want = xasprintf("%s/.local", fresh);
	ok(stat(want, &st) == 0 && (st.st_mode & 0777) == 0700,
	   "fresh HOME: ~/.local 0700");
	free(want);
	free(d);
	free(fresh);
	if (home)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	if (x)
		setenv("XDG_STATE_HOME", x, 1);
	free(home);
	free(x);
}

int
main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("XDG_STATE_HOME", dir, 1);
	sdir = state_dir();

	test_round_trip();
	test_names();
	test_corrupt_lines();
	test_version_3();
	test_foreign();
	test_rename();
	test_too_big();
	test_migration();
	test_kept();
	test_renamed();
	test_file_names();
	test_announced();
	test_owed();
	test_watched();
	test_lock();
	test_lock_fails();
	test_lock_names();
	test_fresh_home();

	is_int(count_files(""), count_files("@"),
	       "only account files left, no temporary ones");
	{
		char *cmd = xasprintf("rm -rf %s", dir);

		if (system(cmd) != 0)
			perror("rm");
		free(cmd);
	}
	free(sdir);
	return tap_done();
}
