/* Unit tests of mboxlist.c: LIST pattern matching, the special uses a
 * pattern leaves out, and the mailboxes selected from a server's LIST. */
#include <stdarg.h>
#include <string.h>

#include "mboxlist.h"
#include "tap.h"

static void
test_match(void)
{
	static const struct {
		const char *pattern, *name;
		char delim;
		bool match;
	} cases[] = {
	    {"*", "INBOX", '/', true},
	    {"*", "Lists/dev/daily", '/', true},
	    {"%", "Lists", '/', true},
	    {"%", "Lists/dev", '/', false},
	    {"Lists/*", "Lists/dev", '/', true},
	    {"Lists/*", "Lists/dev/daily", '/', true},
	    {"Lists/*", "Lists", '/', false},
	    {"Lists*", "Lists", '/', true},
	    {"Lists/%", "Lists/dev", '/', true},
	    {"Lists/%", "Lists/dev/daily", '/', false},
	    {"Lists/%/daily", "Lists/dev/daily", '/', true},
	    {"Lists/%/daily", "Lists/a/b/daily", '/', false},
	    {"Lists/*/daily", "Lists/a/b/daily", '/', true},
	    {"Lists.%", "Lists.dev", '.', true},
	    {"Lists.%", "Lists.dev.x", '.', false},
	    {"%", "a/b", 0, true}, /* no hierarchy */
	    {"*x*y", "axbxcy", '/', true},
	    {"*x*y", "axbxc", '/', false},
	    {"a%c", "abbc", '/', true},
	    {"a%c", "ab/c", '/', false},
	    {"lists/*", "Lists/dev", '/', false}, /* case counts */
	    {"inbox", "INBOX", '/', true},	  /* but not for INBOX */
	    {"inbox/*", "INBOX/x", '/', true},
	    {"INBOX/*", "inbox/x", '/', true},
	    {"INBOX/*", "INBOXES/x", '/', false},
	    {"INBOX*", "INBOXES", '/', true},
	    {"Sent", "Sent", '/', true}, /* a plain name: itself */
	    {"Sent", "Sent/x", '/', false},
	    {"\xc3\x9c*",
	     "\xc3\x9c"
	     "berweisungen",
	     '/', true},
	    {"", "", '/', true},
	    {"", "a", '/', false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		ok(mboxlist_match(cases[i].pattern, cases[i].name,
				  cases[i].delim) == cases[i].match,
		   "match: \"%s\" %s \"%s\"", cases[i].pattern,
		   cases[i].match ? "matches" : "does not match",
		   cases[i].name);
	{
		/* A long name a server chose against a pattern with many
		 * wildcards: no backtracking (this would not end). */
		size_t n = 65536;
		char *name = malloc(n + 1);

		memset(name, 'x', n);
		name[n] = 0;
		ok(!mboxlist_match("*x*x*x*x*x*x*y", name, '/') &&
		       mboxlist_match("*x*x*x*x*x*x*", name, '/') &&
		       !mboxlist_match("%x%x%x%x%x%/", name, '/'),
		   "match: a 64 KiB name against many wildcards");
		free(name);
	}
	ok(mboxlist_is_pattern("*") && mboxlist_is_pattern("a/%") &&
	       !mboxlist_is_pattern("INBOX") && !mboxlist_is_pattern("a/b"),
	   "is_pattern: '*' or '%%' make a pattern");
}

/* A strlist from NULL-terminated atoms. */
static struct codec_strlist
atoms(struct codec_str *v, const char *const *a)
{
	size_t n = 0;

	for (; a[n]; n++)
		v[n] = (struct codec_str){a[n], strlen(a[n]), false};
	return (struct codec_strlist){v, n};
}

static void
test_attrs(void)
{
	static const struct {
		const char *attrs[4];
		unsigned bits;
	} cases[] = {
	    {{NULL}, 0},
	    {{"\\HasNoChildren", NULL}, 0},
	    {{"\\Noselect", NULL}, MBOXLIST_NOSELECT},
	    {{"\\NoSelect", "\\HasChildren", NULL}, MBOXLIST_NOSELECT},
	    {{"\\NonExistent", NULL}, MBOXLIST_NOSELECT},
	    {{"\\Trash", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\HasNoChildren", "\\Junk", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\Sent", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\Drafts", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\All", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\Flagged", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\Important", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\trash", NULL}, MBOXLIST_SKIPPED_USE},
	    {{"\\Archive", NULL}, 0},
	    {{"\\Marked", "\\Subscribed", NULL}, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct codec_str v[4];
		struct codec_strlist l = atoms(v, cases[i].attrs);

		is_int(mboxlist_attrs(&l), cases[i].bits,
		       "attrs: case %zu (%s)", i,
		       cases[i].attrs[0] ? cases[i].attrs[0] : "none");
	}
}

/* True when the selection v of n names is exactly the NULL-terminated
 * names that follow; prints it when not. */
static bool
names_are(const char **v, size_t n, ...)
{
	va_list ap;
	const char *w;
	size_t i = 0;
	bool same = true;

	va_start(ap, n);
	while ((w = va_arg(ap, const char *))) {
		if (i >= n || strcmp(v[i], w))
			same = false;
		i++;
	}
	va_end(ap);
	same = same && i == n && !v[n];
	if (!same) {
		printf("#   got:");
		for (size_t j = 0; j < n; j++)
			printf(" [%s]", v[j]);
		putchar('\n');
	}
	return same;
}

#define ENTRY(n, a)                                                            \
	{                                                                      \
		(char *)(n), '/', (a)                                          \
	}

static const struct mboxlist_entry listed[] = {
    ENTRY("Trash", MBOXLIST_SKIPPED_USE),
    ENTRY("Lists", MBOXLIST_NOSELECT),
    ENTRY("Lists/dev", 0),
    ENTRY("Lists/announce", 0),
    ENTRY("Lists/dev/old", 0),
    ENTRY("Junk", MBOXLIST_SKIPPED_USE),
    ENTRY("Archive", 0),
    ENTRY("Archive/2020", 0),
    ENTRY("INBOX", 0),
    ENTRY("Sent", MBOXLIST_SKIPPED_USE),
    ENTRY("Work", 0),
};
#define N_LISTED (sizeof(listed) / sizeof(*listed))

static void
test_any_match(void)
{
	ok(mboxlist_any_match("Lists/*", listed, N_LISTED), "Lists/* matches");
	ok(mboxlist_any_match("Tr*", listed, N_LISTED),
	   "a match of a skipped special use counts");
	ok(!mboxlist_any_match("Lsts/*", listed, N_LISTED),
	   "a misspelled pattern matches nothing");
	ok(!mboxlist_any_match("*", listed, 0), "nothing listed: no match");
}

static void
test_select(void)
{
	char *star[] = {"*", NULL};
	char *lists[] = {"Lists/*", NULL};
	char *pct[] = {"Lists/%", NULL};
	char *mixed[] = {"Work", "Lists/*", "Sent", "*", NULL};
	char *plain[] = {"INBOX", "Gone", "Trash", NULL};
	char *ign[] = {"Archive*", "Lists/%/old", NULL};
	char *dup[] = {"Lists/dev", "Lists/*", "inbox", NULL};
	const char **v;
	size_t n;

	v = mboxlist_select(star, 1, NULL, 0, listed, N_LISTED, &n);
	ok(names_are(v, n, "INBOX", "Archive", "Archive/2020", "Lists/announce",
		     "Lists/dev", "Lists/dev/old", "Work", NULL),
	   "select *: INBOX first, then by name; no \\Noselect, no Trash, "
	   "Junk or Sent");
	free(v);

	v = mboxlist_select(star, 1, ign, 2, listed, N_LISTED, &n);
	ok(names_are(v, n, "INBOX", "Lists/announce", "Lists/dev", "Work",
		     NULL),
	   "select * less ignore_mailboxes");
	free(v);

	v = mboxlist_select(lists, 1, NULL, 0, listed, N_LISTED, &n);
	ok(names_are(v, n, "Lists/announce", "Lists/dev", "Lists/dev/old",
		     NULL),
	   "select Lists/*: no INBOX when it does not match");
	free(v);

	v = mboxlist_select(pct, 1, NULL, 0, listed, N_LISTED, &n);
	ok(names_are(v, n, "Lists/announce", "Lists/dev", NULL),
	   "select Lists/%%: one level");
	free(v);

	v = mboxlist_select(mixed, 4, ign, 2, listed, N_LISTED, &n);
	ok(names_are(v, n, "INBOX", "Work", "Lists/announce", "Lists/dev",
		     "Sent", NULL),
	   "select: the configured order, each name once, Sent named "
	   "explicitly watched, INBOX first");
	free(v);

	v = mboxlist_select(plain, 3, ign, 2, listed, 0, &n);
	ok(names_are(v, n, "INBOX", "Gone", "Trash", NULL),
	   "select: plain names as they are, listed or not");
	free(v);

	v = mboxlist_select(dup, 3, NULL, 0, listed, N_LISTED, &n);
	ok(names_are(v, n, "inbox", "Lists/dev", "Lists/announce",
		     "Lists/dev/old", NULL),
	   "select: a name a pattern matches again is taken once");
	free(v);

	v = mboxlist_select(star, 1, NULL, 0, NULL, 0, &n);
	ok(n == 0 && v[0] == NULL, "select: nothing listed, nothing taken");
	free(v);
}

int
main(void)
{
	test_match();
	test_attrs();
	test_select();
	test_any_match();
	return tap_failed ? 1 : 0;
}
