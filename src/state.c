#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define MAGIC "mailwatch-state 1"

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
	if (mkdir(parent, 0700) < 0 && errno != EEXIST)
		log_warn(NULL, "state: mkdir %s: %m", parent);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		log_warn(NULL, "state: mkdir %s: %m", dir);
	free(parent);
	return dir;
}

/* The file for account/mailbox: "ACCOUNT.MAILBOX" with every byte of the
 * mailbox name that is not [A-Za-z0-9_-] written as %XX, so any UTF-8 name
 * (with '/' in it) gives one flat file name, and the last '.' always
 * separates the account (whose name may hold dots) from the mailbox:
 * t.a/b and t/a.b get files of their own. */
static char *
state_path(const char *account, const char *mailbox)
{
	char *dir = state_dir(), *name, *p, *path;
	size_t n = strlen(mailbox);

	if (!dir)
		return NULL;
	name = p = xmalloc(3 * n + 1);
	for (const unsigned char *m = (const unsigned char *)mailbox; *m; m++) {
		if ((*m >= 'a' && *m <= 'z') || (*m >= 'A' && *m <= 'Z') ||
		    (*m >= '0' && *m <= '9') || *m == '_' || *m == '-')
			*p++ = *m;
		else
			p += sprintf(p, "%%%02X", *m);
	}
	*p = 0;
	path = xasprintf("%s/%s.%s", dir, account, name);
	free(name);
	free(dir);
	return path;
}

int
state_load(const char *account, const char *mailbox, uint32_t *uidvalidity_r,
	   uint32_t *uid_r)
{
	char *path = state_path(account, mailbox);
	char buf[256], *end;
	unsigned long long v, u;
	ssize_t n;
	int fd, found = 0;

	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn(NULL, "state: %s: %m; starting without it",
				 path);
		goto out;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		log_warn(NULL, "state: %s: %m; starting without it", path);
		goto out;
	}
	buf[n] = 0;
	if (strncmp(buf, MAGIC "\nuidvalidity ", strlen(MAGIC) + 13))
		goto corrupt;
	errno = 0;
	v = strtoull(buf + strlen(MAGIC) + 13, &end, 10);
	if (errno || !v || v > UINT32_MAX || strncmp(end, "\nuid ", 5))
		goto corrupt;
	u = strtoull(end + 5, &end, 10);
	if (errno || u > UINT32_MAX || strcmp(end, "\n"))
		goto corrupt;
	*uidvalidity_r = v;
	*uid_r = u;
	found = 1;
	goto out;
corrupt:
	log_warn(NULL, "state: %s is corrupt or not a mailwatch state file; "
		       "ignoring it (mail already there will not be announced)",
		 path);
out:
	free(path);
	return found;
}

int
state_save(const char *account, const char *mailbox, uint32_t uidvalidity,
	   uint32_t uid)
{
	char *path = state_path(account, mailbox), *tmp = NULL, buf[128];
	int fd = -1, len, r = 0;

	if (!path)
		return -ENOENT;
	tmp = xasprintf("%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		goto fail;
	len = snprintf(buf, sizeof(buf), MAGIC "\nuidvalidity %u\nuid %u\n",
		       uidvalidity, uid);
	if (write(fd, buf, len) != len || fchmod(fd, 0600) < 0 ||
	    fdatasync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	goto out;
fail:
	r = -errno;
	log_err(NULL, "state: cannot write %s: %s", path, strerror(-r));
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
out:
	free(tmp);
	free(path);
	return r;
}
