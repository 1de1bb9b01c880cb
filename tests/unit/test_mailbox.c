/* The mailbox's bookkeeping driven with no socket: FETCH responses parsed
 * by the codec from text, a fake sink that records what it is handed, and
 * the account's state store, written to a temporary $XDG_STATE_HOME. Each
 * scenario asserts what a user would see: what the sinks got, and what
 * the state file says after mailbox_save() and the store's write. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "event.h"
#include "copies.h"
#include "mailbox.h"
#include "sink.h"
#include "state.h"
#include "tap.h"
#include "util.h"

/* 2024-12-05 12:00:00 UTC, and INTERNALDATEs around it. */
#define T0 1733400000
#define BEFORE_T0 "05-Dec-2024 11:59:59 +0000"
#define AT_T0 "05-Dec-2024 12:00:00 +0000"
#define AFTER_T0 "05-Dec-2024 12:00:01 +0000"

/* ---- a sink that records its calls ---- */

struct fake {
	struct sink sink;
	char log[4096];      /* "send 11 v7 Hello; done 1; ..." */
	uint32_t unfinished; /* what unfinished() says */
};

static void
note(struct fake *f, const char *fmt, ...)
{
	size_t n = strlen(f->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->log + n, sizeof(f->log) - n, fmt, ap);
	va_end(ap);
	n = strlen(f->log);
	snprintf(f->log + n, sizeof(f->log) - n, "; ");
}

static void
f_send(struct sink *s, const struct account *a, const struct mail_event *ev)
{
	(void)a;
	note((struct fake *)s, "send %u v%u %s", ev->uid, ev->uidvalidity,
	     ev->subject);
}

static void
f_summary(struct sink *s, const struct account *a, const char *mailbox,
	  const struct mail_event *first, size_t n_first, size_t total)
{
	struct fake *f = (struct fake *)s;

	(void)a;
	(void)mailbox;
	note(f, "summary %zu of %zu from %u", n_first, total,
	     n_first ? first[0].uid : 0);
}

static void
f_withdraw(struct sink *s, const struct account *a, const char *mailbox,
	   uint32_t uidvalidity, uint32_t uid, bool read)
{
	(void)a;
	(void)mailbox;
	note((struct fake *)s, "withdraw %u v%u %s", uid, uidvalidity,
	     read ? "read" : "gone");
}

static void
f_copy(struct sink *s, const struct account *a, const struct copy_origin *o,
       const struct mail_event *ev)
{
	(void)a;
	note((struct fake *)s, "copy %u of %s %u", ev->uid, o->mailbox, o->uid);
}

static void
f_batch_done(struct sink *s, const struct account *a, const char *mailbox,
	     unsigned n)
{
	(void)a;
	(void)mailbox;
	note((struct fake *)s, "done %u", n);
}

static uint32_t
f_unfinished(struct sink *s, const char *account, const char *mailbox)
{
	(void)account;
	(void)mailbox;
	return ((struct fake *)s)->unfinished;
}

static void
f_free(struct sink *s)
{
	(void)s;
}

static const struct sink_ops fake_ops = {
	.send = f_send,
	.summary = f_summary,
	.copy = f_copy,
	.withdraw = f_withdraw,
	.batch_done = f_batch_done,
	.unfinished = f_unfinished,
	.free = f_free,
};

static struct fake fake = {.sink = {&fake_ops}};
static struct sink *sinks[] = {&fake.sink};
static int save_requests, save_now_requests;

static void
on_save_soon(void *ud, bool now)
{
	(void)ud;
	save_requests++;
	save_now_requests += now;
}

/* The account's state store; env.store once main() opened it. */
static struct state_store *store;
static struct mailbox_env env = {
	.sinks = sinks,
	.n_sinks = 1,
	.save_soon = on_save_soon,
};

static struct account account = {
	.name = "acct",
	.username = "user",
	.d = {.catch_up = CATCH_UP_NOTIFY, .catch_up_max = 10},
};

/* What the sink got since the last call; borrowed until the next one. */
static const char *
got(void)
{
	static char buf[sizeof(fake.log)];

	memcpy(buf, fake.log, sizeof(buf));
	fake.log[0] = '\0';
	return buf;
}

/* ---- feeding FETCH responses ---- */

/* Parses the untagged FETCH response text (without CRLF) and hands it to
 * fn. */
static void
feed(struct mailbox *mb,
     void (*fn)(struct mailbox *, const struct codec_fetch *),
     const char *text)
{
	char *line = xasprintf("%s\r\n", text);
	const struct codec_response *r;
	struct codec c;
	size_t used;

	codec_init(&c, NULL);
	if (codec_parse(&c, line, strlen(line), &used, &r) != 1 ||
	    r->kind != CODEC_FETCH) {
		printf("Bail out! does not parse as a FETCH: %s\n", text);
		exit(1);
	}
	fn(mb, &r->u.fetch);
	codec_finish(&c);
	free(line);
}

/* A message of a UID FETCH (UID FLAGS ENVELOPE), with its INTERNALDATE
 * too when date is not NULL. */
static void
fetched(struct mailbox *mb, uint32_t seq, uint32_t uid, const char *flags,
	const char *subject, const char *date)
{
	char *idate = date ? xasprintf(" INTERNALDATE \"%s\"", date)
			   : xstrdup("");
	char *text = xasprintf(
		"* %u FETCH (UID %u FLAGS (%s)%s ENVELOPE (NIL \"%s\" "
		"((\"Ann\" NIL \"ann\" \"example.org\")) NIL NIL NIL NIL NIL "
		"NIL NIL))",
		seq, uid, flags, idate, subject);

	feed(mb, mailbox_fetched, text);
	free(text);
	free(idate);
}

/* A new message with a Message-ID. */
static void
fetched_id(struct mailbox *mb, uint32_t seq, uint32_t uid,
	   const char *subject, const char *id)
{
	char *text = xasprintf(
		"* %u FETCH (UID %u FLAGS () ENVELOPE (NIL \"%s\" "
		"((\"Ann\" NIL \"ann\" \"example.org\")) NIL NIL NIL NIL NIL "
		"NIL \"%s\"))",
		seq, uid, subject, id);

	feed(mb, mailbox_fetched, text);
	free(text);
}

/* A message of the date scan (UID FLAGS INTERNALDATE). */
static void
dated(struct mailbox *mb, uint32_t seq, uint32_t uid, const char *flags,
      const char *date)
{
	char *text = xasprintf("* %u FETCH (UID %u FLAGS (%s) INTERNALDATE "
			       "\"%s\")",
			       seq, uid, flags, date);

	feed(mb, mailbox_dated, text);
	free(text);
}

/* An unsolicited FETCH of flags. */
static void
flags(struct mailbox *mb, uint32_t seq, const char *fl)
{
	char *text = xasprintf("* %u FETCH (FLAGS (%s))", seq, fl);

	feed(mb, mailbox_flags, text);
	free(text);
}

/* A FETCH of flags with the UID: the answer to the fetch of the known
 * UIDs' flags, or a change with CONDSTORE enabled. */
static void
uid_flags(struct mailbox *mb, uint32_t seq, uint32_t uid, const char *fl)
{
	char *text = xasprintf("* %u FETCH (UID %u FLAGS (%s) MODSEQ (99))",
			       seq, uid, fl);

	feed(mb, mailbox_flags, text);
	free(text);
}

/* mailbox_known() as "11,12 v7 m40"; borrowed until the next call. */
static const char *
known(struct mailbox *mb)
{
	static char buf[256];
	uint32_t uids[SESSION_MAX_KNOWN], v;
	uint64_t m;
	size_t n = mailbox_known(mb, uids, SESSION_MAX_KNOWN, &v, &m), off = 0;

	buf[0] = 0;
	for (size_t i = 0; i < n && off < sizeof(buf); i++)
		off += snprintf(buf + off, sizeof(buf) - off, "%s%u",
				i ? "," : "", uids[i]);
	if (off < sizeof(buf))
		snprintf(buf + off, sizeof(buf) - off, " v%u m%llu", v,
			 (unsigned long long)m);
	return buf;
}

/* VANISHED of the UIDs lo..hi. */
static void
vanished(struct mailbox *mb, uint32_t lo, uint32_t hi)
{
	struct codec_range r = {lo, hi};
	struct codec_seqset set = {&r, 1};

	mailbox_vanished(mb, &set);
}

/* ---- the state file ---- */

/* What a state file of an earlier run says of mailbox. */
static void
put_state(const char *mailbox, uint32_t uidvalidity, uint32_t uid,
	  int64_t seen, uint32_t messages)
{
	struct state st = {.uidvalidity = uidvalidity,
			   .uid = uid,
			   .seen = seen,
			   .messages = messages};

	state_store_put(store, mailbox, &st);
}

/* What the state file says of mailbox, once the store was written (as
 * the owner does after mailbox_save()), as "v7 uid 10 seen +0 messages
 * 10" (seen relative to T0), or "none"; borrowed until the next call. */
static const char *
state_of(const char *mailbox)
{
	static char buf[128];
	struct state_store *s;
	struct state st;
	int r;

	if (state_store_write(store) < 0) {
		printf("Bail out! cannot write the state\n");
		exit(1);
	}
	s = state_store_new("acct", "h", "u", NULL, NULL, NULL, NULL);
	r = state_store_get(s, mailbox, &st);
	state_store_free(&s);
	if (r <= 0)
		return "none";
	snprintf(buf, sizeof(buf), "v%u uid %u seen %+lld messages %u",
		 st.uidvalidity, st.uid, (long long)(st.seen - T0),
		 st.messages);
	return buf;
}

/* EXAMINE found uidvalidity, uidnext and exists, without CONDSTORE. */
static uint32_t
examined(struct mailbox *mb, uint32_t uidvalidity, uint32_t uidnext,
	 uint32_t exists, int64_t wall, bool *by_date_r)
{
	struct session_selected sel = {uidvalidity, uidnext, exists, 0, false};

	return mailbox_selected(mb, &sel, wall, by_date_r);
}

/* ---- scenarios ---- */

/* No state: what the mailbox holds is old; the state is written with
 * UIDNEXT - 1. Then new mail is announced in UID order, \Seen mail is
 * not, and the mark moves past both. */
static void
test_first_start_and_new_mail(void)
{
	struct mailbox *mb = mailbox_new(&env, &account, "INBOX");
	bool by_date = false;

	save_requests = save_now_requests = 0;
	is_int(examined(mb, 7, 11, 10, T0, &by_date), 11,
	       "first start: announce only from UIDNEXT on");
	ok(!by_date, "first start: no date scan");
	ok(save_now_requests > 0,
	   "first start: asks for a state write without the wait of a "
	   "burst (a kill before it would lose what comes meanwhile)");
	is_str(state_of("INBOX"), "none", "nothing written before the save");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("INBOX"), "v7 uid 10 seen +0 messages 10",
	       "first start: state is UIDNEXT - 1, seen now with 10");
	is_str(got(), "", "first start: nothing announced");

	mailbox_idle(mb, 10, T0 + 1);
	fetched(mb, 13, 13, "", "World", NULL);
	fetched(mb, 12, 12, "\\Seen", "Read elsewhere", NULL);
	fetched(mb, 11, 11, "\\Recent", "Hello", NULL);
	is_str(got(), "", "nothing announced before the batch ends");
	save_requests = save_now_requests = 0;
	mailbox_batch_end(mb);
	is_str(got(), "send 11 v7 Hello; send 13 v7 World; done 2; ",
	       "new mail announced in UID order, \\Seen mail not");
	ok(save_requests > 0 && !save_now_requests,
	   "a batch asks for a write that may wait");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("INBOX"), "v7 uid 13 seen +0 messages 10",
	       "the mark moved past the batch, \\Seen included");

	/* Withdrawal: \Seen on an announced message, then an EXPUNGE that
	 * shifts the sequence numbers of the messages after it. */
	flags(mb, 12, "\\Seen");
	is_str(got(), "", "\\Seen on a message never announced: nothing");
	flags(mb, 11, "\\Seen \\Recent");
	is_str(got(), "withdraw 11 v7 read; ", "\\Seen withdraws UID 11");
	mailbox_expunge(mb, 12);
	is_str(got(), "", "expunging UID 12 (not announced): nothing");
	mailbox_expunge(mb, 12);
	is_str(got(), "withdraw 13 v7 gone; ",
	       "UID 13 moved down to 12; its EXPUNGE withdraws it");
	mailbox_expunge(mb, 11);
	is_str(got(), "", "each is withdrawn once");
	mailbox_free(&mb);
	ok(!mb, "mailbox_free clears the pointer");
}

/* After a restart, the messages that arrived while away are caught up
 * with as catch_up says. */
static void
catch_up_case(const char *box, enum catch_up_mode mode, unsigned max,
	      const char *want, const char *what)
{
	struct mailbox *mb;
	bool by_date = false;

	account.d.catch_up = mode;
	account.d.catch_up_max = max;
	put_state(box, 7, 13, T0, 10);
	mb = mailbox_new(&env, &account, box);
	is_int(examined(mb, 7, 20, 16, T0 + 60, &by_date), 14,
	       "%s: catch up from the mark", what);
	for (uint32_t uid = 14; uid < 20; uid++) {
		char subject[16];

		snprintf(subject, sizeof(subject), "Away %u", uid);
		fetched(mb, uid - 3, uid, uid == 15 ? "\\Seen" : "", subject,
			NULL);
	}
	mailbox_batch_end(mb);
	is_str(got(), want, "%s", what);
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of(box), "v7 uid 19 seen +60 messages 16",
	       "%s: the mark moved past them, seen whole at the EXAMINE",
	       what);
	/* What comes now is live mail, one by one. */
	mailbox_idle(mb, 16, T0 + 61);
	fetched(mb, 17, 20, "", "Live", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 20 v7 Live; done 1; ",
	       "%s: then live mail one by one", what);
	mailbox_free(&mb);
	account.d.catch_up = CATCH_UP_NOTIFY;
	account.d.catch_up_max = 10;
}

static void
test_catch_up(void)
{
	catch_up_case("notify", CATCH_UP_NOTIFY, 10,
		      "send 14 v7 Away 14; send 16 v7 Away 16; "
		      "send 17 v7 Away 17; send 18 v7 Away 18; "
		      "send 19 v7 Away 19; done 5; ",
		      "catch_up = notify: one by one");
	catch_up_case("max", CATCH_UP_NOTIFY, 4,
		      "summary 3 of 5 from 14; done 5; ",
		      "catch_up = notify, over catch_up_max: a summary");
	catch_up_case("summary", CATCH_UP_SUMMARY, 10,
		      "summary 3 of 5 from 14; done 5; ",
		      "catch_up = summary");
	catch_up_case("skip", CATCH_UP_SKIP, 10, "", "catch_up = skip");
}

/* A connection that outlived a suspend: what it reports until
 * mailbox_awake(), also after the probe's IDLE began again, arrived while
 * asleep and follows catch_up (skip here); then mail is live again. */
static void
test_slept(void)
{
	struct mailbox *mb;
	bool by_date = false;

	account.d.catch_up = CATCH_UP_SKIP;
	put_state("slept", 7, 13, T0, 10);
	mb = mailbox_new(&env, &account, "slept");
	is_int(examined(mb, 7, 14, 10, T0 + 60, &by_date), 14,
	       "slept: nothing new at the EXAMINE");
	mailbox_idle(mb, 10, T0 + 61);
	mailbox_slept(mb);
	mailbox_idle(mb, 10, T0 + 900);
	fetched(mb, 11, 14, "", "Asleep", NULL);
	mailbox_batch_end(mb);
	fetched(mb, 12, 15, "", "Asleep too", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "", "slept: the sleep's mail follows catch_up = skip");
	mailbox_awake(mb);
	fetched(mb, 13, 16, "", "Awake", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 16 v7 Awake; done 1; ", "awake: live again");
	mailbox_free(&mb);
	account.d.catch_up = CATCH_UP_NOTIFY;
}

/* The last run announced up to UID 19 and was killed before the hooks of
 * 14..19 ran: its file says uid 13, announced 19. Those came while it
 * watched: they go one by one, though they are over catch_up_max; 20..23,
 * which came while away, as catch_up says (a summary over 2). A trial's
 * kill in a burst of 200 turned 136 hooks into one summary. */
static void
test_owed(void)
{
	struct state_store *saved = store;
	struct mailbox *mb;
	bool by_date = false;

	state_store_put(store, "owed",
			&(struct state){.uidvalidity = 7,
					.uid = 13,
					.seen = T0,
					.messages = 10,
					.announced = 19});
	is_str(state_of("owed"), "v7 uid 13 seen +0 messages 10",
	       "owed: the file's mark");
	/* A new run: a store read from the file. */
	store = env.store = state_store_new("acct", "h", "u", NULL, NULL, NULL, NULL);
	account.d.catch_up_max = 2;
	mb = mailbox_new(&env, &account, "owed");
	is_int(examined(mb, 7, 24, 20, T0 + 60, &by_date), 14,
	       "owed: catch up from the mark");
	for (uint32_t uid = 14; uid < 24; uid++) {
		char subject[16];

		snprintf(subject, sizeof(subject), "M%u", uid);
		fetched(mb, uid - 3, uid, uid == 15 ? "\\Seen" : "", subject,
			NULL);
	}
	mailbox_batch_end(mb);
	is_str(got(),
	       "send 14 v7 M14; send 16 v7 M16; send 17 v7 M17; "
	       "send 18 v7 M18; send 19 v7 M19; done 5; "
	       "summary 3 of 4 from 20; done 4; ",
	       "owed: one by one (but the one read since), then the rest "
	       "as a summary");
	mailbox_free(&mb);
	state_store_free(&store);
	store = env.store = saved;
	account.d.catch_up_max = 10;
}

/* With the account's copies (copies.h): a message announced in one
 * mailbox that shows up in another (or again) goes to the sinks' copy()
 * only, and is not counted in the batch; reading the copy still
 * withdraws it. */
static void
test_copies(void)
{
	struct mailbox_env e = env;
	struct mailbox *a, *b, *c, *d, *e_mb;
	bool by_date = false;

	e.copies = copies_new();
	put_state("copyA", 7, 10, T0, 10);
	put_state("copyB", 7, 20, T0, 20);
	a = mailbox_new(&e, &account, "copyA");
	b = mailbox_new(&e, &account, "copyB");
	examined(a, 7, 11, 10, T0, &by_date);
	examined(b, 7, 21, 20, T0, &by_date);
	mailbox_idle(a, 10, T0);
	mailbox_idle(b, 20, T0);
	fetched_id(a, 11, 11, "Labelled", "<1@x>");
	mailbox_batch_end(a);
	is_str(got(), "send 11 v7 Labelled; done 1; ", "copies: the first");
	fetched_id(b, 21, 21, "Labelled", "<1@x>");
	fetched_id(b, 22, 22, "Other", "<2@x>");
	mailbox_batch_end(b);
	is_str(got(), "copy 21 of copyA 11; send 22 v7 Other; done 1; ",
	       "copies: the copy goes to copy() only, the other is sent");
	fetched_id(b, 23, 23, "Labelled", "<1@x>");
	mailbox_batch_end(b);
	is_str(got(), "copy 23 of copyA 11; ",
	       "copies: a batch of copies only: nothing else");
	flags(b, 21, "\\Seen");
	is_str(got(), "withdraw 21 v7 read; ", "copies: the copy read: withdrawn");

	/* A summary of mail that came while away: copies are not counted,
	 * the first ones (kept for the summary) nor the rest. */
	account.d.catch_up_max = 2;
	put_state("copyC", 7, 30, T0, 30);
	c = mailbox_new(&e, &account, "copyC");
	is_int(examined(c, 7, 36, 35, T0 + 60, &by_date), 31,
	       "copies: catch up from the mark");
	fetched_id(c, 31, 31, "Labelled", "<1@x>");
	fetched_id(c, 32, 32, "Away 32", "<32@x>");
	fetched_id(c, 33, 33, "Away 33", "<33@x>");
	fetched_id(c, 34, 34, "Away 34", "<34@x>");
	fetched_id(c, 35, 35, "Other", "<2@x>");
	mailbox_batch_end(c);
	is_str(got(),
	       "copy 31 of copyA 11; copy 35 of copyB 22; summary 3 of 3 "
	       "from 32; done 3; ",
	       "copies: a summary of 5 less 2 copies, named by the others");
	/* A copy among those kept until the batch turned out summarised. */
	account.d.catch_up_max = 4;
	put_state("copyD", 7, 40, T0, 40);
	d = mailbox_new(&e, &account, "copyD");
	examined(d, 7, 47, 46, T0 + 60, &by_date);
	for (uint32_t uid = 41; uid < 47; uid++) {
		char subject[16], id[16];

		snprintf(subject, sizeof(subject), "Away %u", uid);
		snprintf(id, sizeof(id), "<%u@x>", uid);
		if (uid == 44)
			fetched_id(d, uid, uid, "Labelled", "<1@x>");
		else
			fetched_id(d, uid, uid, subject, id);
	}
	mailbox_batch_end(d);
	is_str(got(), "copy 44 of copyA 11; summary 3 of 5 from 41; done 5; ",
	       "copies: a summary of 6 less the copy");

	/* Copies do not make a batch a summary: 2 copies and 2 new ones
	 * are within catch_up_max = 3 (trial L: the new ones' hooks never
	 * ran). */
	account.d.catch_up_max = 3;
	put_state("copyE", 7, 50, T0, 50);
	e_mb = mailbox_new(&e, &account, "copyE");
	examined(e_mb, 7, 55, 54, T0 + 60, &by_date);
	fetched_id(e_mb, 51, 51, "Labelled", "<1@x>");
	fetched_id(e_mb, 52, 52, "Other", "<2@x>");
	fetched_id(e_mb, 53, 53, "New 53", "<53@x>");
	fetched_id(e_mb, 54, 54, "New 54", "<54@x>");
	mailbox_batch_end(e_mb);
	is_str(got(),
	       "copy 51 of copyA 11; copy 52 of copyB 22; send 53 v7 New 53; "
	       "send 54 v7 New 54; done 2; ",
	       "copies: 2 new after 2 copies, one by one");
	mailbox_free(&e_mb);

	/* Seen in this run, then deleted and created again (a new
	 * UIDVALIDITY): mail of the second it was last seen counts, as it
	 * may have come after (trial N); the one of it announced before is
	 * a copy. */
	put_state("copyF", 7, 60, T0 - 60, 60);
	e_mb = mailbox_new(&e, &account, "copyF");
	examined(e_mb, 7, 61, 60, T0, &by_date);
	mailbox_idle(e_mb, 60, T0);
	mailbox_save(e_mb, false, true, 60, T0);
	mailbox_closed(e_mb, T0 + 5, 0);
	is_int(examined(e_mb, 9, 3, 2, T0 + 60, &by_date), 0,
	       "copies: re-created, the date scan");
	dated(e_mb, 1, 1, "", AT_T0);
	dated(e_mb, 2, 2, "", AT_T0);
	is_int(mailbox_dated_end(e_mb), 1, "copies: both of the second");
	fetched_id(e_mb, 1, 1, "Labelled", "<1@x>");
	fetched_id(e_mb, 2, 2, "That second", "<60@x>");
	mailbox_batch_end(e_mb);
	is_str(got(),
	       "copy 1 of copyA 11; send 2 v9 That second; done 1; ",
	       "copies: the one announced before is a copy, the other new");
	mailbox_free(&e_mb);
	account.d.catch_up_max = 10;
	mailbox_free(&d);
	mailbox_free(&c);
	mailbox_free(&a);
	mailbox_free(&b);
	copies_free(&e.copies);
	got();
}

/* After a reconnect without QRESYNC, the flags of what was announced are
 * fetched (the session asks mailbox_known()): read meanwhile, or not
 * there any more, it is withdrawn; the rest is followed with its new
 * sequence number. The catch-up fetches only what is new. */
static void
test_reconnect_resync(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state("resync", 7, 10, T0, 10);
	mb = mailbox_new(&env, &account, "resync");
	examined(mb, 7, 11, 10, T0, &by_date);
	mailbox_idle(mb, 10, T0);
	is_str(known(mb), " v7 m0", "nothing announced: nothing known");
	fetched(mb, 11, 11, "", "One", NULL);
	fetched(mb, 12, 12, "", "Two", NULL);
	fetched(mb, 13, 13, "", "Three", NULL);
	mailbox_batch_end(mb);
	got();
	mailbox_closed(mb, T0 + 5, 0);
	is_int(examined(mb, 7, 15, 13, T0 + 10, &by_date), 14,
	       "reconnect: the catch-up fetches only what is new");
	is_str(known(mb), "11,12,13 v7 m0",
	       "the announced messages are asked about (no CONDSTORE)");
	uid_flags(mb, 10, 11, "\\Seen");
	uid_flags(mb, 11, 13, "");
	fetched(mb, 12, 14, "", "Four", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "withdraw 11 v7 read; send 14 v7 Four; done 1; "
		      "withdraw 12 v7 gone; ",
	       "read meanwhile (11) and deleted meanwhile (12) withdrawn");
	mailbox_expunge(mb, 11);
	is_str(got(), "withdraw 13 v7 gone; ",
	       "the new connection's sequence number of 13 was learnt");
	mailbox_free(&mb);
}

/* With QRESYNC the EXAMINE carries what mailbox_known() says; the server
 * reports what changed (FETCH with UID) and what went (VANISHED
 * (EARLIER)) before the EXAMINE completes, and the rest is there, its
 * sequence number unknown and not needed: expunges come as VANISHED. */
static void
test_reconnect_qresync(void)
{
	struct mailbox *mb;
	bool by_date = false;
	struct session_selected sel = {7, 11, 10, 40, false};

	put_state("qresync", 7, 10, T0, 10);
	mb = mailbox_new(&env, &account, "qresync");
	mailbox_selected(mb, &sel, T0, &by_date);
	fetched(mb, 11, 11, "", "One", NULL);
	fetched(mb, 12, 12, "", "Two", NULL);
	fetched(mb, 13, 13, "", "Three", NULL);
	fetched(mb, 14, 14, "", "Four", NULL);
	mailbox_batch_end(mb);
	mailbox_idle(mb, 14, T0);
	got();
	is_str(known(mb), "11,12,13,14 v7 m40",
	       "known: the announced UIDs and the EXAMINE's HIGHESTMODSEQ");
	mailbox_closed(mb, T0 + 5, 0);

	/* The server's answer to EXAMINE (QRESYNC (7 40 11:14)). */
	vanished(mb, 12, 12);
	uid_flags(mb, 10, 11, "\\Seen");
	sel = (struct session_selected){7, 15, 13, 45, true};
	is_int(mailbox_selected(mb, &sel, T0 + 10, &by_date), 15,
	       "QRESYNC: nothing to fetch");
	mailbox_idle(mb, 13, T0 + 10);
	is_str(got(), "withdraw 12 v7 gone; withdraw 11 v7 read; ",
	       "gone (VANISHED (EARLIER)) and read (FETCH) withdrawn, the "
	       "others kept though nothing was fetched");
	is_str(known(mb), "13,14 v7 m45", "in step as of HIGHESTMODSEQ 45");
	mailbox_expunge(mb, 11);
	is_str(got(), "", "an EXPUNGE by number does not guess");
	vanished(mb, 14, 20);
	is_str(got(), "withdraw 14 v7 gone; ", "VANISHED while watching");
	uid_flags(mb, 12, 13, "\\Seen \\Flagged");
	is_str(got(), "withdraw 13 v7 read; ", "a change with its UID");
	mailbox_free(&mb);
}

/* A message a sink has not acted on (a hook waiting) holds the saved mark
 * below it, and the time seen whole with it. */
static void
test_unfinished(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state("held", 7, 10, T0, 10);
	mb = mailbox_new(&env, &account, "held");
	examined(mb, 7, 11, 10, T0, &by_date);
	mailbox_idle(mb, 10, T0 + 1000);
	mailbox_save(mb, false, true, 10, T0);
	is_str(state_of("held"), "v7 uid 10 seen +1000 messages 10",
	       "idle and still idle at the save: seen whole then");
	fetched(mb, 11, 11, "", "One", NULL);
	fetched(mb, 12, 12, "", "Two", NULL);
	fetched(mb, 13, 13, "", "Three", NULL);
	mailbox_batch_end(mb);
	got();
	fake.unfinished = 12;
	mailbox_idle(mb, 13, T0 + 2000);
	mailbox_save(mb, false, true, 13, T0);
	is_str(state_of("held"), "v7 uid 11 seen +1000 messages 10",
	       "a hook waiting for UID 12: the mark stays at 11");
	fake.unfinished = 0;
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("held"), "v7 uid 13 seen +2000 messages 13",
	       "once it started, the mark moves to 13, and the time seen "
	       "whole with it");
	mailbox_free(&mb);
}

/* A mailbox watched again within the process while a hook of its mail
 * still waits (listed again; its account restarted by a reload, which
 * reads the file into a new store): it goes on after what it announced,
 * though the file's mark stays below the waiting hook. */
static void
test_watched_again(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state("again", 7, 10, T0, 10);
	mb = mailbox_new(&env, &account, "again");
	examined(mb, 7, 11, 10, T0, &by_date);
	fetched(mb, 11, 11, "", "One", NULL);
	fetched(mb, 12, 12, "", "Two", NULL);
	mailbox_batch_end(mb);
	got();
	fake.unfinished = 12;
	mailbox_free(&mb);
	is_str(state_of("again"), "v7 uid 11 seen +0 messages 10",
	       "let go with a hook waiting for UID 12: the file says 11");
	mb = mailbox_new(&env, &account, "again");
	ok(examined(mb, 7, 13, 12, T0, &by_date) == 13,
	   "watched again: it goes on from UID 13");
	is_str(got(), "", "nothing announced again");
	mailbox_free(&mb);
	state_store_free(&store);
	store = state_store_new("acct", "h", "u", NULL, NULL, NULL, NULL);
	env.store = store;
	mb = mailbox_new(&env, &account, "again");
	ok(examined(mb, 7, 13, 12, T0, &by_date) == 13,
	   "in a new store of the account: from UID 13 too");
	is_str(state_of("again"), "v7 uid 11 seen +0 messages 10",
	       "the file still says 11 while the hook waits");
	fake.unfinished = 0;
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("again"), "v7 uid 12 seen +0 messages 10",
	       "once it started, the file says 12");
	mailbox_free(&mb);
	mb = mailbox_new(&env, &account, "again");
	ok(examined(mb, 7, 14, 13, T0, &by_date) == 13,
	   "UID 13, which came meanwhile, is caught up");
	mailbox_free(&mb);
}

/* The seen-whole time: taken at an idle only when no mail came with it,
 * and at a clean stop from IDLE. */
static void
test_seen_time(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state("seen", 7, 10, T0, 10);
	mb = mailbox_new(&env, &account, "seen");
	examined(mb, 7, 11, 10, T0, &by_date);
	mailbox_idle(mb, 10, T0 + 1000);
	mailbox_save(mb, false, true, 11, T0);
	is_str(state_of("seen"), "v7 uid 10 seen +0 messages 10",
	       "mail came with the IDLE: not seen whole then");
	mailbox_idle(mb, 10, T0 + 1000);
	mailbox_save(mb, false, false, 10, T0);
	is_str(state_of("seen"), "v7 uid 10 seen +0 messages 10",
	       "no longer idle at the save: not seen whole then");
	mailbox_idle(mb, 10, T0 + 100);
	mailbox_save(mb, false, true, 10, T0);
	is_str(state_of("seen"), "v7 uid 10 seen +0 messages 10",
	       "seen 100 s later: not written by itself");
	mailbox_logged_out(mb, T0 + 3000, 10);
	mailbox_closed(mb, T0 + 3000, 0);
	mailbox_free(&mb);
	is_str(state_of("seen"), "v7 uid 10 seen +2999 messages 10",
	       "a clean stop from IDLE: seen whole the second before");

	put_state("seen2", 7, 10, T0, 10);
	mb = mailbox_new(&env, &account, "seen2");
	examined(mb, 7, 11, 10, T0 + 1000, &by_date);
	mailbox_idle(mb, 10, T0 + 1000);
	mailbox_save(mb, false, true, 10, T0);
	is_str(state_of("seen2"), "v7 uid 10 seen +1000 messages 10",
	       "idle and still idle at the save: seen whole then");
	mailbox_closed(mb, T0 + 1000, 0);
	mailbox_free(&mb);
	is_str(state_of("seen2"), "v7 uid 10 seen +999 messages 10",
	       "the connection ended in that second: the second before");
}

/* A UIDVALIDITY change: an empty mailbox starts afresh; one empty when
 * last seen is caught up with whole; else the date scan finds the unseen
 * mail that arrived since it was last seen. */
static void
test_uidvalidity_changed(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state("empty", 7, 13, T0, 5);
	mb = mailbox_new(&env, &account, "empty");
	is_int(examined(mb, 8, 1, 0, T0 + 60, &by_date), 1,
	       "new UIDVALIDITY, empty mailbox: from UID 1");
	ok(!by_date, "no date scan for an empty mailbox");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("empty"), "v8 uid 0 seen +60 messages 0",
	       "the new UIDVALIDITY, seen now, empty");
	mailbox_free(&mb);

	put_state("courier", 7, 13, T0, 0);
	mb = mailbox_new(&env, &account, "courier");
	is_int(examined(mb, 8, 3, 2, T0 + 60, &by_date), 1,
	       "empty when last seen: catch up with all it holds");
	ok(!by_date, "all of it: no date scan");
	fetched(mb, 1, 1, "", "First", NULL);
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("courier"), "v7 uid 13 seen +0 messages 0",
	       "until the catch-up completes, the old state stays");
	fetched(mb, 2, 2, "", "Second", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 1 v8 First; send 2 v8 Second; done 2; ",
	       "both announced with the new UIDVALIDITY");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("courier"), "v8 uid 2 seen +60 messages 2",
	       "then the new state is written, seen whole at the EXAMINE");
	mailbox_free(&mb);

	put_state("dated", 7, 50, T0, 5);
	mb = mailbox_new(&env, &account, "dated");
	/* An announced message of the old mailbox, withdrawn at the
	 * change. */
	examined(mb, 7, 52, 6, T0 - 10, &by_date);
	fetched(mb, 6, 51, "", "Old", NULL);
	mailbox_batch_end(mb);
	got();
	mailbox_closed(mb, T0 + 10, 0);
	is_int(examined(mb, 9, 8, 7, T0 + 60, &by_date), 0,
	       "renumbered mailbox: the date scan");
	ok(by_date, "by_date set");
	is_str(got(), "withdraw 51 v7 gone; ",
	       "what was announced of the old mailbox is withdrawn");
	dated(mb, 1, 1, "\\Seen", BEFORE_T0);
	dated(mb, 2, 2, "", BEFORE_T0);
	dated(mb, 3, 3, "", AT_T0);
	dated(mb, 4, 4, "\\Seen", AFTER_T0);
	dated(mb, 5, 5, "", AFTER_T0);
	dated(mb, 6, 6, "", BEFORE_T0);
	dated(mb, 7, 7, "", AFTER_T0);
	/* Last seen as the state file says (as after a restart): mail of
	 * that second counts as old, as the copies that would tell what of
	 * it was announced are forgotten. */
	is_int(mailbox_dated_end(mb), 5,
	       "catch up from the first unseen UID later than last seen");
	fetched(mb, 5, 5, "", "Since", AFTER_T0);
	fetched(mb, 6, 6, "", "Moved in", BEFORE_T0);
	fetched(mb, 7, 7, "", "Also since", AFTER_T0);
	mailbox_batch_end(mb);
	is_str(got(), "send 5 v9 Since; send 7 v9 Also since; done 2; ",
	       "mail that arrived since, not mail moved in with old dates");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("dated"), "v9 uid 7 seen +60 messages 7",
	       "the new UIDVALIDITY and mark written after the catch-up");
	mailbox_free(&mb);
}

/* A connection lost during the catch-up of a UIDVALIDITY change: the old
 * values come back, and the next connection starts it over. */
static void
test_rebase_cut_short(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state("cut", 7, 50, T0, 5);
	mb = mailbox_new(&env, &account, "cut");
	examined(mb, 9, 8, 7, T0 + 60, &by_date);
	dated(mb, 5, 5, "", AFTER_T0);
	is_int(mailbox_dated_end(mb), 5, "the date scan found UID 5");
	fetched(mb, 5, 5, "", "Since", AFTER_T0);
	mailbox_closed(mb, T0 + 70, 0);
	is_str(got(), "", "nothing announced from a batch cut short");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("cut"), "v7 uid 50 seen +0 messages 5",
	       "the state keeps the old values");
	by_date = false;
	is_int(examined(mb, 9, 8, 7, T0 + 80, &by_date), 0,
	       "the next connection starts the catch-up over");
	ok(by_date, "with the date scan");
	dated(mb, 5, 5, "", AFTER_T0);
	is_int(mailbox_dated_end(mb), 5, "from UID 5 again");
	fetched(mb, 5, 5, "", "Since", AFTER_T0);
	mailbox_batch_end(mb);
	is_str(got(), "send 5 v9 Since; done 1; ", "and announces it once");
	mailbox_free(&mb);
	is_str(state_of("cut"), "v9 uid 5 seen +80 messages 7",
	       "then the new state is written");
}

/* A STATUS with UIDVALIDITY (0: left out), UIDNEXT and MESSAGES, as a
 * check or NOTIFY's push of new mail says. */
static bool
status3(struct mailbox *mb, uint32_t uidvalidity, uint32_t uidnext,
	uint32_t messages, int64_t wall)
{
	struct session_status st = {
		.have = SESSION_ST_UIDNEXT | SESSION_ST_MESSAGES |
			(uidvalidity ? SESSION_ST_UIDVALIDITY : 0),
		.uidvalidity = uidvalidity,
		.uidnext = uidnext,
		.messages = messages,
	};

	return mailbox_status(mb, &st, wall);
}

/* STATUS from a connection that does not select the mailbox. */
static void
test_status(void)
{
	struct mailbox *mb = mailbox_new(&env, &account, "status");
	bool by_date = false;

	ok(status3(mb, 0, 21, 20, T0),
	   "no state and no UIDVALIDITY in the response: EXAMINE it");
	ok(!status3(mb, 5, 21, 20, T0),
	   "no state: start afresh, nothing to fetch");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("status"), "v5 uid 20 seen +0 messages 20",
	       "no state: written with UIDNEXT - 1, seen now");
	ok(!status3(mb, 5, 21, 19, T0 + 700),
	   "nothing moved: nothing to fetch");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("status"), "v5 uid 20 seen +700 messages 19",
	       "nothing moved: seen whole now");
	ok(status3(mb, 5, 23, 21, T0 + 800), "UIDNEXT moved: fetch");
	ok(status3(mb, 6, 21, 20, T0 + 800),
	   "UIDVALIDITY changed: EXAMINE");
	ok(!status3(mb, 0, 21, 20, T0 + 800),
	   "a NOTIFY push without UIDVALIDITY, nothing moved: no fetch");
	ok(status3(mb, 0, 22, 21, T0 + 800),
	   "a NOTIFY push without UIDVALIDITY, UIDNEXT moved: fetch");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("status"), "v5 uid 20 seen +700 messages 19",
	       "a STATUS that needs a fetch changes nothing");
	is_int(examined(mb, 5, 23, 21, T0 + 801, &by_date), 21,
	       "the EXAMINE then fetches from UID 21");
	fetched(mb, 20, 21, "", "New", NULL);
	fetched(mb, 21, 22, "", "Newer", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 21 v5 New; send 22 v5 Newer; done 2; ",
	       "and announces what arrived");
	mailbox_free(&mb);
	is_str(state_of("status"), "v5 uid 22 seen +801 messages 21",
	       "the mark moved, seen whole at the EXAMINE");
}

/* A mailbox followed by STATUS (NOTIFY, or the checks) that had mail
 * while away: the catch-up is one, and what the pushes announce after it
 * is live mail, one by one, even with catch_up = skip. */
static void
test_status_after_catch_up(void)
{
	struct mailbox *mb;
	bool by_date = false;

	account.d.catch_up = CATCH_UP_SKIP;
	put_state("pushed", 5, 20, T0, 20);
	mb = mailbox_new(&env, &account, "pushed");
	ok(status3(mb, 5, 23, 22, T0 + 60),
	   "mail while away: the first STATUS asks for a fetch");
	is_int(examined(mb, 5, 23, 22, T0 + 60, &by_date), 21,
	       "the catch-up fetches from the mark");
	fetched(mb, 21, 21, "", "Away", NULL);
	fetched(mb, 22, 22, "", "Away too", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "", "catch_up = skip: what came while away is skipped");
	ok(status3(mb, 0, 24, 23, T0 + 61),
	   "a push: UIDNEXT moved, fetch");
	is_int(examined(mb, 5, 24, 23, T0 + 61, &by_date), 23,
	       "the fetch starts past the catch-up");
	fetched(mb, 23, 23, "", "Live", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 23 v5 Live; done 1; ",
	       "mail pushed after the catch-up is live: announced");
	/* The follower lost: what the next look finds came while away. */
	mailbox_unfollowed(mb, 0);
	ok(status3(mb, 0, 25, 24, T0 + 62),
	   "after the follower's reconnect: UIDNEXT moved, fetch");
	is_int(examined(mb, 5, 25, 24, T0 + 62, &by_date), 24,
	       "the fetch starts at the mark");
	uid_flags(mb, 23, 23, ""); /* the one announced, still unread */
	fetched(mb, 24, 24, "", "Away again", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "", "mail from the follower's outage is a catch-up");
	mailbox_free(&mb);
	account.d.catch_up = CATCH_UP_NOTIFY;
}

/* A checked mailbox whose follower was lost after mail came and before
 * the next check (trial AE): the catch-up tells what came while watched,
 * by INTERNALDATE from the last check to the time the server was last
 * heard from, and announces it one by one, even with catch_up = skip. */
static void
test_gap_by_date(void)
{
	struct mailbox *mb;
	bool by_date = false;

	account.d.catch_up = CATCH_UP_SKIP;
	put_state("checked", 5, 20, T0, 20);
	mb = mailbox_new(&env, &account, "checked");
	ok(!status3(mb, 5, 21, 20, T0), "a check: nothing new");
	/* Mail at +0, +10 and +11 s; the server last heard from at +10 s. */
	mailbox_unfollowed(mb, T0 + 10);
	ok(status3(mb, 0, 25, 24, T0 + 30), "after the reconnect: fetch");
	is_int(examined(mb, 5, 25, 24, T0 + 30, &by_date), 21,
	       "from the mark");
	fetched(mb, 21, 21, "", "Watched", AT_T0);
	fetched(mb, 22, 22, "", "Its second", "05-Dec-2024 12:00:10 +0000");
	fetched(mb, 23, 23, "", "Away", "05-Dec-2024 12:00:11 +0000");
	fetched(mb, 24, 24, "", "Dated back", BEFORE_T0);
	mailbox_batch_end(mb);
	is_str(got(), "send 21 v5 Watched; send 22 v5 Its second; done 2; ",
	       "what came from the check to the last word's second is "
	       "announced; what came after, or is dated before the check "
	       "(APPENDed while away), is not");

	/* Lost twice before a catch-up: the first loss counts. */
	mailbox_unfollowed(mb, T0 + 40);
	mailbox_unfollowed(mb, T0 + 90);
	ok(status3(mb, 0, 27, 26, T0 + 100), "again: fetch");
	is_int(examined(mb, 5, 27, 26, T0 + 100, &by_date), 25, "past 24");
	uid_flags(mb, 21, 21, ""); /* the ones announced, still unread */
	uid_flags(mb, 22, 22, "");
	fetched(mb, 25, 25, "", "Between", "05-Dec-2024 12:01:00 +0000");
	fetched(mb, 26, 26, "", "Before", "05-Dec-2024 12:00:35 +0000");
	mailbox_batch_end(mb);
	is_str(got(), "",
	       "after the first loss: away, and so is an older one after it");

	/* Not known (a sleep; or 0): all of it is a catch-up. */
	ok(!status3(mb, 0, 27, 26, T0 + 110), "caught up");
	mailbox_slept(mb);
	mailbox_awake(mb);
	ok(status3(mb, 0, 28, 27, T0 + 120), "after the sleep: fetch");
	is_int(examined(mb, 5, 28, 27, T0 + 120, &by_date), 27, "past 26");
	uid_flags(mb, 21, 21, "");
	uid_flags(mb, 22, 22, "");
	fetched(mb, 27, 27, "", "Asleep", "05-Dec-2024 12:01:50 +0000");
	mailbox_batch_end(mb);
	is_str(got(), "", "a sleep's mail is away whatever its date");
	mailbox_free(&mb);
	account.d.catch_up = CATCH_UP_NOTIFY;
}

/* The time a run watched a checked mailbox up to, kept in the state
 * file: the next run announces the mail from before it one by one (trial
 * AE's mail between the last check and a stop), even with catch_up =
 * skip. */
static void
test_watched_restart(void)
{
	struct mailbox *mb;
	bool by_date = false;
	struct state st = {0};

	account.d.catch_up = CATCH_UP_SKIP;
	put_state("stopped", 5, 20, T0, 20);
	mb = mailbox_new(&env, &account, "stopped");
	ok(!status3(mb, 5, 21, 20, T0), "a check: nothing new");
	mailbox_save(mb, true, false, 0, T0 + 10); /* the stop */
	mailbox_free(&mb);
	ok(state_store_get(store, "stopped", &st) == 1 &&
		   st.watched == T0 + 10,
	   "caught up at the stop: its time is kept (%+lld)",
	   (long long)(st.watched - T0));
	mb = mailbox_new(&env, &account, "stopped");
	ok(status3(mb, 5, 23, 22, T0 + 60), "the next run: fetch");
	is_int(examined(mb, 5, 23, 22, T0 + 60, &by_date), 21,
	       "from the mark");
	fetched(mb, 21, 21, "", "Before", "05-Dec-2024 12:00:09 +0000");
	fetched(mb, 22, 22, "", "After", "05-Dec-2024 12:00:11 +0000");
	mailbox_batch_end(mb);
	is_str(got(), "send 21 v5 Before; done 1; ",
	       "what came before the stop is announced, the rest is not");
	mailbox_unfollowed(mb, T0 + 70);
	mailbox_save(mb, true, false, 0, T0 + 100);
	mailbox_free(&mb);
	ok(state_store_get(store, "stopped", &st) == 1 &&
		   st.watched == T0 + 70,
	   "stopped in a gap: the time it began is kept (%+lld)",
	   (long long)(st.watched - T0));
	account.d.catch_up = CATCH_UP_NOTIFY;
}

/* env.renamed as the account has it: the state of the only mailbox with
 * that UIDVALIDITY (test_watched_renamed's 77: no other test's). */
static const char *
renamed_from(void *ud, uint32_t uidvalidity, struct state *st, uint32_t *uids,
	     size_t *n_r)
{
	(void)ud;
	(void)uids;
	*n_r = 0;
	return state_store_find(store, uidvalidity, st);
}

/* test_watched_restart with the mailbox renamed while mailwatch was
 * stopped: under its new name it goes on from its old state, the time
 * it was watched up to included (trial AJ: what came before the stop
 * was skipped as mail from while away). */
static void
test_watched_renamed(void)
{
	struct mailbox *mb;
	bool by_date = false;

	account.d.catch_up = CATCH_UP_SKIP;
	env.renamed = renamed_from;
	put_state("before", 77, 20, T0, 20);
	mb = mailbox_new(&env, &account, "before");
	ok(!status3(mb, 77, 21, 20, T0), "a check: nothing new");
	mailbox_save(mb, true, false, 0, T0 + 10); /* the stop */
	mailbox_free(&mb);
	mb = mailbox_new(&env, &account, "after");
	mailbox_appeared(mb, T0 - 50);
	is_int(examined(mb, 77, 23, 22, T0 + 60, &by_date), 21,
	       "renamed: from the old name's mark");
	fetched(mb, 21, 21, "", "Before", "05-Dec-2024 12:00:09 +0000");
	fetched(mb, 22, 22, "", "After", "05-Dec-2024 12:00:11 +0000");
	mailbox_batch_end(mb);
	is_str(got(), "send 21 v77 Before; done 1; ",
	       "what came before the stop is announced, the rest is not");
	mailbox_free(&mb);
	env.renamed = NULL;
	account.d.catch_up = CATCH_UP_NOTIFY;
}

/* The connection that selected the mailbox was lost with mail in flight:
 * with catch_up = summary, the mail that came before is not summarised
 * with what came after. */
static void
test_gap_selected(void)
{
	struct mailbox *mb;
	bool by_date = false;

	account.d.catch_up = CATCH_UP_SUMMARY;
	put_state("selected", 5, 20, T0, 20);
	mb = mailbox_new(&env, &account, "selected");
	is_int(examined(mb, 5, 21, 20, T0, &by_date), 21, "nothing new");
	mailbox_idle(mb, 20, T0);
	mailbox_closed(mb, T0 + 5, T0 + 5);
	is_int(examined(mb, 5, 25, 24, T0 + 20, &by_date), 21,
	       "reconnected: from the mark");
	fetched(mb, 21, 21, "", "Pushed", "05-Dec-2024 12:00:04 +0000");
	fetched(mb, 22, 22, "", "Away 1", "05-Dec-2024 12:00:06 +0000");
	fetched(mb, 23, 23, "", "Away 2", "05-Dec-2024 12:00:07 +0000");
	fetched(mb, 24, 24, "", "Away 3", "05-Dec-2024 12:00:08 +0000");
	mailbox_batch_end(mb);
	is_str(got(),
	       "send 21 v5 Pushed; done 1; summary 3 of 3 from 22; done 3; ",
	       "one by one, then the summary of the rest");
	mailbox_free(&mb);
	account.d.catch_up = CATCH_UP_NOTIFY;
}

/* A checked mailbox, empty at its first check, then fetched: seen whole
 * at that fetch's EXAMINE, not at the first check. Else, recreated while
 * mailwatch was stopped, it counted as empty when last seen, and all it
 * holds was announced again (trial AG). */
static void
test_seen_at_fetch(void)
{
	struct mailbox *mb;
	bool by_date = false;

	mb = mailbox_new(&env, &account, "refilled");
	ok(!status3(mb, 5, 1, 0, T0), "first check: empty, taken as is");
	/* Checked at once (CheckNow, trial AI): the EXAMINE in the very
	 * second the message came. */
	ok(status3(mb, 0, 2, 1, T0 + 11), "then a message: fetch");
	is_int(examined(mb, 5, 2, 1, T0 + 11, &by_date), 1, "from UID 1");
	fetched(mb, 1, 1, "", "First", "05-Dec-2024 12:00:11 +0000");
	mailbox_batch_end(mb);
	is_str(got(), "send 1 v5 First; done 1; ", "announced");
	mailbox_free(&mb);
	is_str(state_of("refilled"), "v5 uid 1 seen +11 messages 1",
	       "seen whole at the EXAMINE, with its message");
	mb = mailbox_new(&env, &account, "refilled");
	examined(mb, 6, 3, 2, T0 + 100, &by_date);
	ok(by_date, "recreated: the date scan, not all it holds");
	dated(mb, 1, 1, "", "05-Dec-2024 12:00:11 +0000");
	dated(mb, 2, 2, "", "05-Dec-2024 12:01:00 +0000");
	is_int(mailbox_dated_end(mb), 2, "from the one that came since");
	fetched(mb, 2, 2, "", "New", "05-Dec-2024 12:01:00 +0000");
	mailbox_batch_end(mb);
	is_str(got(), "send 2 v6 New; done 1; ",
	       "the old message is not announced again");
	mailbox_free(&mb);
}

/* A STATUS of flags alone, as NOTIFY pushes it for FlagChange: UNSEEN
 * and, when modseq is not 0, HIGHESTMODSEQ. */
static bool
status_flags(struct mailbox *mb, uint32_t unseen, uint64_t modseq)
{
	struct session_status st = {
		.have = SESSION_ST_UNSEEN |
			(modseq ? SESSION_ST_HIGHESTMODSEQ : 0),
		.unseen = unseen,
		.highestmodseq = modseq,
	};

	return mailbox_status(mb, &st, T0 + 100);
}

/* A mailbox followed by STATUS alone (NOTIFY, or checked every
 * poll_interval): a message announced there and read or deleted
 * elsewhere is withdrawn. UNSEEN going down, or HIGHESTMODSEQ moving,
 * has the fetcher EXAMINE it and re-read what was announced. */
static void
test_status_withdraw(void)
{
	struct mailbox *mb;
	bool by_date = false;
	struct session_status st = {
		.have = SESSION_ST_UIDNEXT | SESSION_ST_MESSAGES |
			SESSION_ST_UIDVALIDITY | SESSION_ST_UNSEEN |
			SESSION_ST_HIGHESTMODSEQ,
		.uidvalidity = 7,
		.uidnext = 13,
		.messages = 12,
		.unseen = 2,
		.highestmodseq = 40,
	};

	put_state("far", 7, 10, T0, 10);
	mb = mailbox_new(&env, &account, "far");
	ok(mailbox_status(mb, &st, T0), "new mail: fetch");
	is_int(examined(mb, 7, 13, 12, T0, &by_date), 11,
	       "from the mark");
	fetched(mb, 11, 11, "", "One", NULL);
	fetched(mb, 12, 12, "", "Two", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 11 v7 One; send 12 v7 Two; done 2; ",
	       "both announced");

	ok(!status_flags(mb, 2, 40), "nothing changed: no fetch");
	ok(status_flags(mb, 1, 41), "UNSEEN went down: fetch");
	is_int(examined(mb, 7, 13, 12, T0 + 100, &by_date), 13,
	       "the EXAMINE: nothing new");
	is_str(known(mb), "11,12 v7 m0", "the announced messages' flags");
	uid_flags(mb, 11, 11, "\\Seen");
	uid_flags(mb, 12, 12, "");
	mailbox_batch_end(mb);
	is_str(got(), "withdraw 11 v7 read; ", "the one read elsewhere withdrawn");

	ok(status_flags(mb, 1, 42),
	   "HIGHESTMODSEQ moved, UNSEEN did not: fetch");
	is_int(examined(mb, 7, 13, 12, T0 + 100, &by_date), 13,
	       "the EXAMINE: nothing new");
	is_str(known(mb), "12 v7 m0", "the one still announced");
	mailbox_batch_end(mb);
	is_str(got(), "withdraw 12 v7 gone; ",
	       "not there any more: deleted elsewhere, withdrawn");
	ok(!status_flags(mb, 0, 43),
	   "nothing announced any more: no fetch however flags change");
	mailbox_free(&mb);
	is_str(got(), "", "nothing else");
}

/* A server restored from a backup keeps its UIDVALIDITY but numbers new
 * mail from an older UIDNEXT, below the mark: the EXAMINE that shows it
 * has the date scan find the unseen mail that arrived since the mailbox
 * was last seen, as after a UIDVALIDITY change, and what was announced
 * is withdrawn. The first STATUS of
 * a connection that says so has the mailbox EXAMINEd; later ones may be
 * older than a fetch that passed them. */
static void
test_renumbered(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state("restored", 7, 20, T0, 20);
	mb = mailbox_new(&env, &account, "restored");
	is_int(examined(mb, 7, 21, 20, T0, &by_date), 21,
	       "before the restore: nothing new");
	fetched(mb, 21, 21, "", "One", NULL);
	fetched(mb, 22, 22, "", "Two", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 21 v7 One; send 22 v7 Two; done 2; ",
	       "two messages announced");
	mailbox_save(mb, false, false, 0, T0);
	mailbox_closed(mb, T0 + 10, 0);
	ok(!status3(mb, 7, 23, 22, T0 + 10),
	   "a STATUS with nothing new: nothing to fetch");
	ok(!status3(mb, 7, 22, 21, T0 + 10),
	   "a later STATUS below the mark (older than the fetch): none");
	mailbox_unfollowed(mb, 0);
	ok(status3(mb, 7, 21, 20, T0 + 20),
	   "the first STATUS of a new connection below the mark: EXAMINE");

	is_int(examined(mb, 7, 22, 21, T0 + 30, &by_date), 0,
	       "restored (UIDNEXT 22 with the mark at 22): the date scan");
	ok(by_date, "by_date set");
	is_str(got(), "withdraw 21 v7 gone; withdraw 22 v7 gone; ",
	       "what was announced is withdrawn (its UIDs may be others')");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("restored"), "v7 uid 22 seen +0 messages 20",
	       "until the catch-up completes, the old state stays");
	/* Last seen at T0 + 10, by the STATUS with nothing new. */
	dated(mb, 20, 20, "", AFTER_T0);
	dated(mb, 21, 21, "", "05-Dec-2024 12:00:25 +0000");
	is_int(mailbox_dated_end(mb), 21,
	       "catch up from the first unseen UID later than last seen");
	fetched(mb, 21, 21, "", "After the restore",
		"05-Dec-2024 12:00:25 +0000");
	mailbox_batch_end(mb);
	is_str(got(), "send 21 v7 After the restore; done 1; ",
	       "new mail with a UID announced before is announced");
	mailbox_idle(mb, 21, T0 + 30);
	fetched(mb, 22, 22, "", "Next", NULL);
	mailbox_batch_end(mb);
	is_str(got(), "send 22 v7 Next; done 1; ",
	       "and the mail after it, though UID 22 was announced too");
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("restored"), "v7 uid 22 seen +0 messages 20",
	       "the mark follows the server's numbering");
	mailbox_closed(mb, T0 + 40, 0);
	is_int(examined(mb, 7, 23, 22, T0 + 40, &by_date), 23,
	       "an EXAMINE with UIDNEXT just past the mark: nothing new");
	is_str(got(), "", "nothing withdrawn or announced");
	mailbox_free(&mb);

	put_state("emptied", 7, 20, T0, 20);
	mb = mailbox_new(&env, &account, "emptied");
	by_date = false;
	is_int(examined(mb, 7, 5, 0, T0 + 50, &by_date), 5,
	       "restored empty: new mail from UIDNEXT on");
	ok(!by_date, "no date scan for an empty mailbox");
	mailbox_closed(mb, T0 + 60, 0);
	is_int(examined(mb, 7, 0, 0, T0 + 60, &by_date), 5,
	       "no UIDNEXT from the server, empty: the mark stays");
	mailbox_free(&mb);
}

/* A state file's line for mailbox: UIDVALIDITY 7, UID 22 handled, 22
 * messages seen at T0, HIGHESTMODSEQ modseq. */
static void
put_state_ms(const char *mailbox, uint64_t modseq)
{
	state_store_put(store, mailbox,
			&(struct state){.uidvalidity = 7,
					.uid = 22,
					.seen = T0,
					.messages = 22,
					.modseq = modseq});
}

/* EXAMINE with CONDSTORE: its [HIGHESTMODSEQ] too. */
static uint32_t
examined_ms(struct mailbox *mb, uint32_t uidnext, uint32_t exists,
	    uint64_t modseq, int64_t wall, bool *by_date_r)
{
	struct session_selected sel = {7, uidnext, exists, modseq, false};

	*by_date_r = false;
	return mailbox_selected(mb, &sel, wall, by_date_r);
}

/* A STATUS check of UIDVALIDITY 7 with HIGHESTMODSEQ. */
static bool
status_ms(struct mailbox *mb, uint32_t uidnext, uint64_t modseq)
{
	struct session_status st = {
		.have = SESSION_ST_UIDNEXT | SESSION_ST_MESSAGES |
			SESSION_ST_UIDVALIDITY | SESSION_ST_HIGHESTMODSEQ,
		.uidvalidity = 7,
		.uidnext = uidnext,
		.messages = uidnext - 1,
		.highestmodseq = modseq,
	};

	return mailbox_status(mb, &st, T0 + 5);
}

/* The HIGHESTMODSEQ the state file keeps for mailbox. */
static unsigned long long
modseq_of(const char *mailbox)
{
	struct state_store *s;
	struct state st = {0};

	state_store_write(store);
	s = state_store_new("acct", "h", "u", NULL, NULL, NULL, NULL);
	state_store_get(s, mailbox, &st);
	state_store_free(&s);
	return (unsigned long long)st.modseq;
}

/* A server restored from a backup after which as many messages came as
 * it lost: UIDNEXT is past the mark again, but HIGHESTMODSEQ is below
 * what the server gave before (the lost messages had been read). Kept
 * in the state file, it tells at the next start, and within a run once
 * the connection that saw the higher one ended: the date scan, as for
 * any restore. A STATUS on another connection that passes an EXAMINE
 * under way is no restore. */
static void
test_restored_modseq(void)
{
	struct mailbox *mb;
	bool by_date = false;

	put_state_ms("lost", 100);
	mb = mailbox_new(&env, &account, "lost");
	ok(status_ms(mb, 23, 90),
	   "a STATUS below the saved HIGHESTMODSEQ: EXAMINE it");
	is_int(examined_ms(mb, 23, 22, 90, T0 + 10, &by_date), 0,
	       "an EXAMINE below it, UIDNEXT past the mark: the date scan");
	ok(by_date, "by_date set");
	mailbox_closed(mb, T0 + 11, 0);
	is_int(examined_ms(mb, 23, 22, 90, T0 + 12, &by_date), 0,
	       "cut short: the next connection scans again");
	dated(mb, 21, 21, "", BEFORE_T0);
	dated(mb, 22, 22, "", AFTER_T0);
	is_int(mailbox_dated_end(mb), 22, "from the unseen one since T0");
	fetched(mb, 22, 22, "", "After the restore", AFTER_T0);
	mailbox_batch_end(mb);
	is_str(got(), "send 22 v7 After the restore; done 1; ",
	       "the mail after the restore is announced");
	mailbox_save(mb, false, false, 0, T0);
	is_int(modseq_of("lost"), 90, "the state keeps the server's now");

	is_int(examined_ms(mb, 23, 22, 95, T0 + 20, &by_date), 23,
	       "it moved on: nothing new");
	status_ms(mb, 23, 120); /* elsewhere: flags changed (re-read) */
	is_int(examined_ms(mb, 23, 22, 110, T0 + 21, &by_date), 23,
	       "an EXAMINE under way while it came: no restore");
	ok(!by_date, "no date scan");
	mailbox_closed(mb, T0 + 22, 0);
	ok(status_ms(mb, 23, 115),
	   "once that connection ended, a STATUS below 120: EXAMINE it");
	is_int(examined_ms(mb, 23, 22, 115, T0 + 23, &by_date), 0,
	       "and the EXAMINE below it: the date scan");
	mailbox_closed(mb, T0 + 24, 0);
	mailbox_free(&mb);
	is_int(modseq_of("lost"), 120,
	       "cut short, a stop writes the highest before the restore");
	got();

	put_state_ms("nomodseq", 100);
	mb = mailbox_new(&env, &account, "nomodseq");
	is_int(examined_ms(mb, 23, 22, 0, T0 + 30, &by_date), 23,
	       "NOMODSEQ: nothing to compare with");
	ok(!status_ms(mb, 23, 50), "and a STATUS after it: no restore");
	mailbox_free(&mb);
	is_int(modseq_of("nomodseq"), 50, "the state keeps the last one");

	put_state_ms("flagged", 90);
	mb = mailbox_new(&env, &account, "flagged");
	is_int(examined_ms(mb, 23, 22, 90, T0 + 40, &by_date), 23,
	       "selected: nothing new");
	uid_flags(mb, 22, 22, "\\Seen"); /* read elsewhere: MODSEQ 99 */
	mailbox_free(&mb);
	is_int(modseq_of("flagged"), 99,
	       "a flag change's MODSEQ while selected is kept too");

	/* A state file of before HIGHESTMODSEQ was kept. */
	put_state("upgraded", 7, 22, T0, 22);
	mb = mailbox_new(&env, &account, "upgraded");
	ok(!status_ms(mb, 23, 40), "a STATUS with nothing new");
	mailbox_save(mb, false, false, 0, T0);
	is_int(modseq_of("upgraded"), 40,
	       "the first HIGHESTMODSEQ known is written without a stop");
	mailbox_free(&mb);
}

/* A mailbox that appeared while the account was watched: without state,
 * its unseen mail that arrived since then is announced (not taken as
 * old, as at a first run); with state, nothing changes. */
static void
test_appeared(void)
{
	struct mailbox *mb;
	bool by_date = false;

	mb = mailbox_new(&env, &account, "appeared");
	mailbox_appeared(mb, T0);
	ok(status3(mb, 3, 4, 3, T0 + 5),
	   "appeared with mail in it: EXAMINE it");
	is_int(examined(mb, 3, 4, 3, T0 + 5, &by_date), 0,
	       "appeared: the date scan");
	ok(by_date, "by_date set");
	dated(mb, 1, 1, "", BEFORE_T0);
	dated(mb, 2, 2, "\\Seen", AFTER_T0);
	dated(mb, 3, 3, "", AFTER_T0);
	mailbox_save(mb, false, false, 0, T0);
	is_str(state_of("appeared"), "none", "no state during the scan");
	is_int(mailbox_dated_end(mb), 3, "from the first unseen since then");
	fetched(mb, 3, 3, "", "Fresh", AFTER_T0);
	mailbox_batch_end(mb);
	is_str(got(), "send 3 v3 Fresh; done 1; ",
	       "the mail that arrived since it appeared, not the moved-in "
	       "older one");
	mailbox_save(mb, false, false, 0, T0);
	ok(!strncmp(state_of("appeared"), "v3 uid 3 ", 9),
	   "then the state is written (%s)", state_of("appeared"));
	mailbox_free(&mb);

	mb = mailbox_new(&env, &account, "appeared-old");
	mailbox_appeared(mb, T0);
	ok(status3(mb, 4, 3, 2, T0 + 5), "EXAMINE it");
	examined(mb, 4, 3, 2, T0 + 5, &by_date);
	dated(mb, 1, 1, "", BEFORE_T0);
	dated(mb, 2, 2, "\\Seen", AT_T0);
	is_int(mailbox_dated_end(mb), 3, "nothing arrived since: from UIDNEXT");
	mailbox_save(mb, false, false, 0, T0);
	ok(!strncmp(state_of("appeared-old"), "v4 uid 2 ", 9),
	   "written at once: no fetch follows in fetch mode (%s)",
	   state_of("appeared-old"));
	is_str(got(), "", "nothing announced");
	mailbox_free(&mb);

	mb = mailbox_new(&env, &account, "appeared-empty");
	mailbox_appeared(mb, T0);
	ok(!status3(mb, 5, 1, 0, T0 + 5),
	   "appeared empty: nothing to fetch");
	mailbox_free(&mb);
	is_str(state_of("appeared-empty"), "v5 uid 0 seen +5 messages 0",
	       "appeared empty: started afresh");

	put_state("back", 6, 9, T0 - 100, 9);
	mb = mailbox_new(&env, &account, "back");
	mailbox_appeared(mb, T0);
	ok(!status3(mb, 6, 10, 9, T0 + 5),
	   "back with its state: nothing new, nothing fetched");
	is_str(got(), "", "what was announced before is not again");
	mailbox_free(&mb);
}

/* A first run whose login to the mailbox was refused: its first look may
 * come late, and the mail that arrived since the start is announced then,
 * by the date scan as for one that appeared then. Not for one with state,
 * nor for one known to have appeared later (whose time stays). */
static void
test_looked_late(void)
{
	struct mailbox *mb;
	bool by_date = false;

	mb = mailbox_new(&env, &account, "late");
	mailbox_looked_late(mb, T0);
	ok(status3(mb, 7, 4, 3, T0 + 300), "looked at late: EXAMINE it");
	examined(mb, 7, 4, 3, T0 + 300, &by_date);
	ok(by_date, "the date scan");
	dated(mb, 1, 1, "", BEFORE_T0);
	dated(mb, 2, 2, "", AT_T0);
	dated(mb, 3, 3, "", AFTER_T0);
	is_int(mailbox_dated_end(mb), 2, "from the first unseen of the start");
	fetched(mb, 2, 2, "", "At", AT_T0);
	fetched(mb, 3, 3, "", "After", AFTER_T0);
	mailbox_batch_end(mb);
	is_str(got(), "send 2 v7 At; send 3 v7 After; done 2; ",
	       "what arrived since the start, not what was there before");
	mailbox_free(&mb);

	mb = mailbox_new(&env, &account, "late-appeared");
	mailbox_appeared(mb, T0 + 100);
	mailbox_looked_late(mb, T0);
	status3(mb, 8, 3, 2, T0 + 300);
	examined(mb, 8, 3, 2, T0 + 300, &by_date);
	dated(mb, 1, 1, "", AFTER_T0);
	dated(mb, 2, 2, "", "05-Dec-2024 12:01:41 +0000");
	is_int(mailbox_dated_end(mb), 2, "appeared later: from then");
	mailbox_free(&mb);

	put_state("late-known", 9, 5, T0 - 100, 5);
	mb = mailbox_new(&env, &account, "late-known");
	mailbox_looked_late(mb, T0);
	ok(!status3(mb, 9, 6, 5, T0 + 300), "with state: nothing changes");
	is_str(got(), "", "nothing announced");
	mailbox_free(&mb);
}

int
main(void)
{
	static char dir[] = "/tmp/mailwatch-test-mailbox.XXXXXX";
	char *sdir;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("XDG_STATE_HOME", dir, 1);
	sdir = state_dir();
	store = state_store_new("acct", "h", "u", NULL, NULL, NULL, NULL);
	env.store = store;

	test_first_start_and_new_mail();
	test_catch_up();
	test_owed();
	test_copies();
	test_reconnect_resync();
	test_reconnect_qresync();
	test_unfinished();
	test_watched_again();
	test_seen_time();
	test_uidvalidity_changed();
	test_rebase_cut_short();
	test_status();
	test_status_withdraw();
	test_status_after_catch_up();
	test_seen_at_fetch();
	test_gap_by_date();
	test_watched_restart();
	test_watched_renamed();
	test_gap_selected();
	test_appeared();
	test_looked_late();
	test_slept();
	test_renumbered();
	test_restored_modseq();

	{
		char *cmd = xasprintf("rm -rf '%s'", dir);

		if (system(cmd) != 0)
			ok(0, "removing %s", dir);
		free(cmd);
	}
	state_store_free(&store);
	free(sdir);
	return tap_done();
}
