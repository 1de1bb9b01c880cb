/* The state file: round trip, file mode, names kept apart, and corrupt or
 * foreign files treated as absent with a warning. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "tap.h"
#include "util.h"

static char dir[] = "/tmp/mailwatch-test-state.XXXXXX";

/* Writes text over the state file of account/mailbox. */
static void
clobber(const char *account, const char *mailbox, const char *text)
{
	char *d = state_dir(), *path;
	int fd;

	/* Save once so the file exists, then find it by its one name. */
	state_save(account, mailbox, 1, 1);
	path = xasprintf("%s/%s.%s", d, account, mailbox);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror("write");
		close(fd);
	}
	free(path);
	free(d);
}

int
main(void)
{
	uint32_t v = 0, u = 0;
	char *d, *path;
	struct stat st;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("XDG_STATE_HOME", dir, 1);

	ok(state_load("acct", "INBOX", &v, &u) == 0, "no state at first");
	ok(state_save("acct", "INBOX", 1700000000, 4242) == 0, "saved");
	ok(state_load("acct", "INBOX", &v, &u) == 1 && v == 1700000000 &&
		   u == 4242,
	   "loaded what was saved");
	d = state_dir();
	path = xasprintf("%s/acct.INBOX", d);
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	   "the file is mode 0600");
	ok(stat(d, &st) == 0 && (st.st_mode & 0777) == 0700,
	   "the directory is mode 0700");
	free(path);

	/* Names with dots, slashes and UTF-8 are kept apart. */
	state_save("t.a", "b", 1, 10);
	state_save("t", "a.b", 1, 20);
	state_save("t", "a/b", 1, 30);
	state_save("t", "R\xc3\xa9" "cus", 1, 40);
	ok(state_load("t.a", "b", &v, &u) == 1 && u == 10, "t.a/b");
	ok(state_load("t", "a.b", &v, &u) == 1 && u == 20, "t/a.b apart");
	ok(state_load("t", "a/b", &v, &u) == 1 && u == 30, "t/a/b apart");
	ok(state_load("t", "R\xc3\xa9" "cus", &v, &u) == 1 && u == 40,
	   "UTF-8 mailbox");

	/* Corrupt and foreign files: absent, not a crash. */
	clobber("bad", "INBOX", "mailwatch-state 1\nuidvalidity x\n");
	ok(state_load("bad", "INBOX", &v, &u) == 0, "corrupt: treated as absent");
	clobber("bad", "INBOX", "{\"json\": true}\n");
	ok(state_load("bad", "INBOX", &v, &u) == 0, "foreign: treated as absent");
	clobber("bad", "INBOX",
		"mailwatch-state 1\nuidvalidity 5\nuid 99999999999\n");
	ok(state_load("bad", "INBOX", &v, &u) == 0, "out of range: absent");
	clobber("bad", "INBOX", "");
	ok(state_load("bad", "INBOX", &v, &u) == 0, "empty: absent");
	ok(state_save("bad", "INBOX", 7, 8) == 0 &&
		   state_load("bad", "INBOX", &v, &u) == 1 && v == 7 && u == 8,
	   "a corrupt file is replaced by the next save");

	/* Exactly the six state files: no temporary file left behind. */
	{
		DIR *dh = opendir(d);
		struct dirent *de;
		int n = 0;

		while (dh && (de = readdir(dh)))
			n += de->d_name[0] != '.';
		if (dh)
			closedir(dh);
		is_int(n, 6, "six state files, no temporary ones left");
	}
	{
		char *cmd = xasprintf("rm -rf %s", dir);

		if (system(cmd) != 0)
			perror("rm");
		free(cmd);
	}
	free(d);
	return tap_done();
}
