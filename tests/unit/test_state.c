/* The state file: round trip, file mode, names kept apart, names of any
 * length, files of earlier versions, and corrupt, foreign or another
 * mailbox's files treated as absent with a warning. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture.h"
#include "state.h"
#include "tap.h"
#include "util.h"

static char dir[] = "/tmp/mailwatch-test-state.XXXXXX";
static char *sdir; /* dir/mailwatch */

/* The path of account/mailbox's state file. Caller frees. */
static char *
path_of(const char *account, const char *mailbox)
{
	char *name = state_file_name(account, mailbox,
				     pathconf(sdir, _PC_NAME_MAX));
	char *path = xasprintf("%s/%s", sdir, name);

	free(name);
	return path;
}

/* Writes text as the state file of account/mailbox. */
static void
put(const char *account, const char *mailbox, const char *text, size_t n)
{
	char *path = path_of(account, mailbox);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, n) != (ssize_t)n)
		perror(path);
	if (fd >= 0)
		close(fd);
	free(path);
}

static void
clobber(const char *account, const char *mailbox, const char *text)
{
	put(account, mailbox, text, strlen(text));
}

/* state_load() with stderr captured into *log_r (caller frees). */
static int
load_logged(const char *account, const char *mailbox, struct state *st,
	    char **log_r)
{
	char *path = xasprintf("%s/stderr", dir);
	int r;

	capture_begin(path);
	r = state_load(account, mailbox, st);
	*log_r = capture_end();
	free(path);
	return r;
}

static bool
saves(const char *account, const char *mailbox, uint32_t v, uint32_t u)
{
	struct state st = {.uidvalidity = v, .uid = u};

	return state_save(account, mailbox, &st) == 0;
}

static bool
loads(const char *account, const char *mailbox, uint32_t v, uint32_t u)
{
	struct state st = {0};

	return state_load(account, mailbox, &st) == 1 &&
	       st.uidvalidity == v && st.uid == u;
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

static size_t
count_files(void)
{
	DIR *dh = opendir(sdir);
	struct dirent *de;
	size_t n = 0;

	while (dh && (de = readdir(dh)))
		n += de->d_name[0] != '.';
	if (dh)
		closedir(dh);
	return n;
}

/* Names of every length: the file name always fits (with room for the
 * temporary file's suffix), is the readable one up to the limit and a
 * hashed one past it, never cut in the middle of a %XX. */
static void
test_name_lengths(void)
{
	char *name, *mbox;
	bool fits = true, cut_ok = true, short_ok = true, hashed_ok = true;

	for (long max = 24; max <= 255; max += 7) {
		for (size_t n = 1; n < 300; n++) {
			/* Every third byte escaped, so that every cut point
			 * meets a %XX somewhere. */
			mbox = repeat("\xd0\x96-", n);
			mbox[n] = 0;
			name = state_file_name("acct", mbox, max);
			size_t len = strlen(name);
			char *tilde = strchr(name, '~');

			fits = fits && len + 7 <= (size_t)max;
			if (tilde) {
				size_t k = (size_t)(tilde - name);

				cut_ok = cut_ok &&
					 !(k >= 1 && name[k - 1] == '%') &&
					 !(k >= 2 && name[k - 2] == '%') &&
					 strlen(tilde) == 17;
			}
			free(name);
			free(mbox);
		}
	}
	ok(fits, "every file name fits, with the temporary suffix");
	ok(cut_ok, "a hashed name never ends in half a %%XX");

	/* At the boundary (NAME_MAX 255, 7 for the suffix): 248 bytes stay
	 * readable, 249 are hashed. */
	mbox = repeat("x", 248 - strlen("acct."));
	name = state_file_name("acct", mbox, 255);
	short_ok = strlen(name) == 248 && !strchr(name, '~');
	free(name);
	ok(short_ok, "248 bytes: the readable name");
	ok(saves("acct", mbox, 3, 248) && loads("acct", mbox, 3, 248),
	   "248 bytes: saved and loaded");
	free(mbox);
	mbox = repeat("x", 249 - strlen("acct."));
	name = state_file_name("acct", mbox, 255);
	hashed_ok = strlen(name) <= 248 && strchr(name, '~');
	free(name);
	ok(hashed_ok, "249 bytes: a hashed name");
	ok(saves("acct", mbox, 3, 249) && loads("acct", mbox, 3, 249),
	   "249 bytes: saved and loaded");
	ok(loads("acct", mbox, 3, 249) &&
		   !loads("acct", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 3, 249),
	   "and kept apart from a shorter name");
	free(mbox);
}

int
main(void)
{
	struct state st;
	char *path, *log, *mbox, *acct;
	struct stat sb;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("XDG_STATE_HOME", dir, 1);
	sdir = state_dir();

	ok(state_load("acct", "INBOX", &st) == 0, "no state at first");
	ok(saves("acct", "INBOX", 1700000000, 4242), "saved");
	ok(loads("acct", "INBOX", 1700000000, 4242), "loaded what was saved");
	path = xasprintf("%s/acct.INBOX", sdir);
	ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	   "the file is acct.INBOX, mode 0600");
	ok(stat(sdir, &sb) == 0 && (sb.st_mode & 0777) == 0700,
	   "the directory is mode 0700");
	free(path);

	/* Names with dots, slashes and UTF-8 are kept apart. */
	saves("t.a", "b", 1, 10);
	saves("t", "a.b", 1, 20);
	saves("t", "a/b", 1, 30);
	saves("t", "R\xc3\xa9" "cus", 1, 40);
	ok(loads("t.a", "b", 1, 10), "t.a/b");
	ok(loads("t", "a.b", 1, 20), "t/a.b apart");
	ok(loads("t", "a/b", 1, 30), "t/a/b apart");
	ok(loads("t", "R\xc3\xa9" "cus", 1, 40), "UTF-8 mailbox");

	/* When the mailbox was last seen whole, and its message count. */
	{
		struct state in = {.uidvalidity = 3,
				   .uid = 30,
				   .seen = 1733400000,
				   .messages = 0},
			     out = {0};

		ok(state_save("acct", "Seen", &in) == 0 &&
			   state_load("acct", "Seen", &out) == 1 &&
			   out.seen == in.seen && out.messages == 0,
		   "seen time and an empty mailbox saved and loaded");
		in.messages = 4000000000u;
		ok(state_save("acct", "Seen", &in) == 0 &&
			   state_load("acct", "Seen", &out) == 1 &&
			   out.messages == 4000000000u && out.uid == 30,
		   "and a message count");
		clobber("acct", "Seen", "mailwatch-state 2\naccount acct\n"
					"mailbox Seen\nuidvalidity 3\n"
					"uid 30\nseen 17\n");
		ok(state_load("acct", "Seen", &out) == 0,
		   "a seen time without its message count: corrupt");
	}

	/* What mailwatch 0.1 wrote keeps loading: no repeats after an
	 * upgrade. */
	clobber("old", "Sent Items", "mailwatch-state 1\nuidvalidity 77\n"
				     "uid 1234\n");
	ok(loads("old", "Sent Items", 77, 1234),
	   "a version 1 file (old.Sent%%20Items) loads");
	{
		struct stat sb;
		char *p = path_of("old", "Sent Items");

		ok(stat(p, &sb) == 0 &&
			   state_load("old", "Sent Items", &st) == 1 &&
			   st.seen == sb.st_mtime && st.messages == 1,
		   "seen when it was written, not known to be empty");
		free(p);
	}
	ok(saves("old", "Sent Items", 77, 1235) &&
		   loads("old", "Sent Items", 77, 1235),
	   "and is replaced by the next save");

	/* A 45-letter Cyrillic name: 90 bytes of UTF-8, 270 escaped, past
	 * NAME_MAX. Every save failed (ENAMETOOLONG) and the mail was
	 * announced again at each start. */
	mbox = repeat("\xd0\x96", 45);
	ok(saves("acct", mbox, 9, 99), "a 45-letter Cyrillic mailbox: saved");
	ok(loads("acct", mbox, 9, 99), "and loaded");
	path = path_of("acct", mbox);
	ok(strlen(strrchr(path, '/') + 1) + 7 <= NAME_MAX,
	   "its file name fits: %s", strrchr(path, '/') + 1);
	{
		char buf[512] = "";
		int fd = open(path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = 0;
		ok(strstr(buf, "\nmailbox ") && strstr(buf, mbox),
		   "the file holds the full name");
	}
	free(path);

	/* A long account name too. */
	acct = repeat("a.", 32);
	ok(saves(acct, mbox, 5, 55) && loads(acct, mbox, 5, 55) &&
		   loads("acct", mbox, 9, 99),
	   "a 64-byte account name with it: its own file");

	/* Another mailbox's state where this one's should be (a hash
	 * collision, or a copied file): ignored with a warning. */
	clobber(acct, mbox, "mailwatch-state 2\naccount acct\nmailbox INBOX\n"
			    "uidvalidity 5\nuid 55\n");
	ok(load_logged(acct, mbox, &st, &log) == 0 &&
		   strstr(log, "another mailbox's state"),
	   "another mailbox's file: absent, and the log says so");
	free(log);
	/* At a hashed name a version 1 file cannot say whose it is. */
	clobber(acct, mbox, "mailwatch-state 1\nuidvalidity 5\nuid 55\n");
	ok(state_load(acct, mbox, &st) == 0,
	   "a version 1 file at a hashed name: absent");
	free(acct);
	free(mbox);

	/* Corrupt and foreign files: absent, not a crash. */
	clobber("bad", "INBOX", "mailwatch-state 1\nuidvalidity x\n");
	ok(load_logged("bad", "INBOX", &st, &log) == 0 &&
		   strstr(log, "is corrupt or not a mailwatch state file"),
	   "corrupt: treated as absent, with a warning");
	free(log);
	clobber("bad", "INBOX", "{\"json\": true}\n");
	ok(state_load("bad", "INBOX", &st) == 0, "foreign: treated as absent");
	clobber("bad", "INBOX",
		"mailwatch-state 1\nuidvalidity 5\nuid 99999999999\n");
	ok(state_load("bad", "INBOX", &st) == 0, "out of range: absent");
	clobber("bad", "INBOX", "mailwatch-state 1\nuidvalidity 0\nuid 9\n");
	ok(state_load("bad", "INBOX", &st) == 0, "UIDVALIDITY 0: absent");
	clobber("bad", "INBOX", "");
	ok(state_load("bad", "INBOX", &st) == 0, "empty: absent");
	put("bad", "INBOX", "mailwatch-state 1\nuidvalidity 5\0\nuid 9\n",
	    37);
	ok(state_load("bad", "INBOX", &st) == 0, "a NUL in it: absent");
	{
		char *big = repeat("mailwatch-state 2\n", 1000);

		clobber("bad", "INBOX", big);
		ok(state_load("bad", "INBOX", &st) == 0, "too big: absent");
		free(big);
	}
	clobber("bad", "INBOX", "mailwatch-state 2\naccount bad\nmailbox "
				"INBOX\nuidvalidity 5\nuid 9\nextra\n");
	ok(state_load("bad", "INBOX", &st) == 0, "trailing junk: absent");
	ok(saves("bad", "INBOX", 7, 8) && loads("bad", "INBOX", 7, 8),
	   "a corrupt file is replaced by the next save");

	test_name_lengths();

	/* No temporary file left behind. */
	is_int(count_files(), 12, "twelve state files, no temporary ones");
	{
		char *cmd = xasprintf("rm -rf %s", dir);

		if (system(cmd) != 0)
			perror("rm");
		free(cmd);
	}
	free(sdir);
	return tap_done();
}
