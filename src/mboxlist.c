#include "mboxlist.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

bool
mboxlist_is_pattern(const char *s)
{
	return strpbrk(s, "*%") != NULL;
}

/* Matches pattern p against name n: a walk over the name with the set of
 * pattern positions reached (an NFA), so time is the product of the two
 * lengths whatever a server names its mailboxes, with no backtracking. */
static bool
match(const char *p, const char *n, char delim)
{
	size_t m = strlen(p);
	bool *cur = xcalloc(m + 1, sizeof(*cur));
	bool *next = xcalloc(m + 1, sizeof(*next));
	bool *swap, r;

	cur[0] = true;
	for (;;) {
		/* A wildcard may match nothing. */
		for (size_t j = 0; j < m; j++)
			if (cur[j] && (p[j] == '*' || p[j] == '%'))
				cur[j + 1] = true;
		if (!*n)
			break;
		memset(next, 0, (m + 1) * sizeof(*next));
		for (size_t j = 0; j < m; j++) {
			if (!cur[j])
				continue;
			if (p[j] == '*' ||
			    (p[j] == '%' && (!delim || *n != delim)))
				next[j] = true;
			else if (p[j] == *n)
				next[j + 1] = true;
		}
		swap = cur;
		cur = next;
		next = swap;
		n++;
	}
	r = cur[m];
	free(cur);
	free(next);
	return r;
}

/* The length of the first level of s ("INBOX" in "INBOX/x"), when it is
 * INBOX in any case; else 0. */
static size_t
inbox_prefix(const char *s, char delim)
{
	if (strncasecmp(s, "INBOX", 5) || (s[5] && (!delim || s[5] != delim)))
		return 0;
	return 5;
}

bool
mboxlist_match(const char *pattern, const char *name, char delim)
{
	size_t pi = inbox_prefix(pattern, delim);
	size_t ni = inbox_prefix(name, delim);

	/* INBOX is case-insensitive, and so is it as a parent. */
	if (pi && ni)
		return match(pattern + pi, name + ni, delim);
	return match(pattern, name, delim);
}

unsigned
mboxlist_attrs(const struct codec_strlist *attrs)
{
	static const char *const skipped[] = {
	    "\\Trash", "\\Junk",    "\\Sent",	   "\\Drafts",
	    "\\All",   "\\Flagged", "\\Important",
	};
	unsigned bits = 0;

	if (codec_strlist_has(attrs, "\\Noselect") ||
	    codec_strlist_has(attrs, "\\NonExistent"))
		bits |= MBOXLIST_NOSELECT;
	for (size_t i = 0; i < sizeof(skipped) / sizeof(*skipped); i++)
		if (codec_strlist_has(attrs, skipped[i]))
			bits |= MBOXLIST_SKIPPED_USE;
	return bits;
}

static bool
is_inbox(const char *s)
{
	return !strcasecmp(s, "INBOX");
}

/* True when name is among the n names of v (INBOX in any case). */
static bool
taken(const char **v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], name) || (is_inbox(v[i]) && is_inbox(name)))
			return true;
	return false;
}

static int
by_name(const void *a, const void *b)
{
	const struct mboxlist_entry *x =
	    *(const struct mboxlist_entry *const *)a;
	const struct mboxlist_entry *y =
	    *(const struct mboxlist_entry *const *)b;

	return strcmp(x->name, y->name);
}

bool
mboxlist_any_match(const char *pattern, const struct mboxlist_entry *listed,
		   size_t n_listed)
{
	for (size_t i = 0; i < n_listed; i++)
		if (mboxlist_match(pattern, listed[i].name,
				   listed[i].delimiter))
			return true;
	return false;
}

const char **
mboxlist_select(char *const *want, size_t n_want, char *const *ignore,
		size_t n_ignore, const struct mboxlist_entry *listed,
		size_t n_listed, size_t *n_r)
{
	const char **v = xcalloc(n_want + n_listed + 1, sizeof(*v));
	const struct mboxlist_entry **sorted =
	    xcalloc(n_listed + 1, sizeof(*sorted));
	size_t n = 0;

	for (size_t i = 0; i < n_listed; i++)
		sorted[i] = &listed[i];
	qsort(sorted, n_listed, sizeof(*sorted), by_name);
	for (size_t i = 0; i < n_want; i++) {
		if (!mboxlist_is_pattern(want[i])) {
			if (!taken(v, n, want[i]))
				v[n++] = want[i];
			continue;
		}
		for (size_t j = 0; j < n_listed; j++) {
			const struct mboxlist_entry *e = sorted[j];
			bool ignored = false;

			if (e->attrs || taken(v, n, e->name) ||
			    !mboxlist_match(want[i], e->name, e->delimiter))
				continue;
			for (size_t k = 0; k < n_ignore && !ignored; k++)
				ignored = mboxlist_match(ignore[k], e->name,
							 e->delimiter);
			if (!ignored)
				v[n++] = e->name;
		}
	}
	free(sorted);
	for (size_t i = 1; i < n; i++) {
		if (is_inbox(v[i])) {
			const char *inbox = v[i];

			memmove(&v[1], &v[0], i * sizeof(*v));
			v[0] = inbox;
			break;
		}
	}
	*n_r = n;
	return v;
}
