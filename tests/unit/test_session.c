/* The session state machine driven by server transcripts, no socket: each
 * scenario feeds server lines and checks what the client sends and which
 * events it reports. Every scenario runs twice: whole lines, and one byte
 * at a time. */
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "session.h"
#include "tap.h"

#define SEC 1000000ULL

struct rec {
	char sent[8192];  /* everything the session queued */
	char events[4096]; /* "selected 7/10/2; fetched 10 Subj; ..." */
	uint32_t start;   /* what selected() returns; 0: uidnext */
	bool by_date;     /* selected() asks for the date scan */
	uint32_t dated_from; /* what dated_end() returns */
	int failed;
	enum session_fail why;
	int starttls;
	uint32_t known[8];   /* what known() gives */
	size_t n_known;
	uint64_t modseq;
	unsigned asked;      /* status() answers to STATUS or LIST of ours */
	unsigned notify_set; /* status() answers to NOTIFY SET */
};

static void
ev(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(r->events);

	va_start(ap, fmt);
	vsnprintf(r->events + n, sizeof(r->events) - n, fmt, ap);
	va_end(ap);
	n = strlen(r->events);
	snprintf(r->events + n, sizeof(r->events) - n, "; ");
}

static void
c_starttls(void *ud)
{
	struct rec *r = ud;

	r->starttls++;
	ev(r, "starttls");
}

/* "selected uidvalidity/uidnext/exists[ modseq N][ qresync]". */
static uint32_t
c_selected(void *ud, const struct session_selected *sel, bool *by_date_r)
{
	struct rec *r = ud;
	char modseq[32] = "";

	if (sel->highestmodseq)
		snprintf(modseq, sizeof(modseq), " modseq %llu",
			 (unsigned long long)sel->highestmodseq);
	ev(r, "selected %u/%u/%u%s%s", sel->uidvalidity, sel->uidnext,
	   sel->exists, modseq, sel->qresync ? " qresync" : "");
	*by_date_r = r->by_date;
	return r->start ? r->start : sel->uidnext;
}

static void
c_fetched(void *ud, const struct codec_fetch *f)
{
	struct rec *r = ud;

	ev(r, "fetched %u %s%s", f->uid,
	   !(f->have & CODEC_FETCH_ENVELOPE) ? "(headers)"
	   : f->envelope.subject.nil	     ? "NIL"
					     : f->envelope.subject.ptr,
	   codec_strlist_has(&f->flags, "\\Seen") ? " seen" : "");
}

static void
c_batch_end(void *ud)
{
	ev(ud, "batch_end");
}

/* "flags SEQ[ uid UID][ seen]". */
static void
c_flags(void *ud, const struct codec_fetch *f)
{
	char uid[32] = "";

	if (f->have & CODEC_FETCH_UID)
		snprintf(uid, sizeof(uid), " uid %u", f->uid);
	ev(ud, "flags %u%s%s", f->seq, uid,
	   codec_strlist_has(&f->flags, "\\Seen") ? " seen" : "");
}

static void
c_expunge(void *ud, uint32_t seq)
{
	ev(ud, "expunge %u", seq);
}

static void
c_idle(void *ud)
{
	ev(ud, "idle");
}

static void
c_failed(void *ud, enum session_fail why, const char *msg)
{
	struct rec *r = ud;

	r->failed++;
	r->why = why;
	ev(r, "failed %d %s", why, msg);
}

static void
c_dated(void *ud, const struct codec_fetch *f)
{
	ev(ud, "dated %u %s%s", f->uid, f->internaldate.ptr,
	   codec_strlist_has(&f->flags, "\\Seen") ? " seen" : "");
}

static uint32_t
c_dated_end(void *ud)
{
	struct rec *r = ud;

	ev(r, "dated_end");
	return r->dated_from;
}

static void
c_notify(void *ud, bool on)
{
	ev(ud, "notify %s", on ? "on" : "off");
}

/* "status NAME uidvalidity/uidnext/messages/unseen [modseq N]", "?" for
 * an item the response left out. */
static void
c_status(void *ud, const char *name, const struct session_status *st)
{
	const unsigned bits[] = {SESSION_ST_UIDVALIDITY, SESSION_ST_UIDNEXT,
				 SESSION_ST_MESSAGES, SESSION_ST_UNSEEN};
	const uint32_t v[] = {st->uidvalidity, st->uidnext, st->messages,
			      st->unseen};
	char text[128], *p = text;

	for (size_t i = 0; i < 4; i++) {
		if (st->have & bits[i])
			p += sprintf(p, "%s%u", i ? "/" : "", v[i]);
		else
			p += sprintf(p, "%s?", i ? "/" : "");
	}
	if (st->have & SESSION_ST_HIGHESTMODSEQ)
		sprintf(p, " modseq %llu",
			(unsigned long long)st->highestmodseq);
	((struct rec *)ud)->asked += st->asked;
	((struct rec *)ud)->notify_set += st->notify_set;
	ev(ud, "status %s %s", name, text);
}

static void
c_ready(void *ud)
{
	ev(ud, "ready");
}

static void
c_mailbox_failed(void *ud, const char *name, const char *msg)
{
	ev(ud, "mailbox_failed %s %s", name, msg);
}

static void
c_unseen(void *ud, uint32_t count)
{
	ev(ud, "unseen %u", count);
}

/* What known() gives: rec.n_known UIDs from rec.known, HIGHESTMODSEQ
 * rec.modseq, UIDVALIDITY 7. */
static size_t
c_known(void *ud, uint32_t *uids, size_t max, uint32_t *uidvalidity_r,
	uint64_t *modseq_r)
{
	struct rec *r = ud;
	size_t n = r->n_known < max ? r->n_known : max;

	memcpy(uids, r->known, n * sizeof(*uids));
	*uidvalidity_r = 7;
	*modseq_r = r->modseq;
	return n;
}

/* "vanished lo:hi,...". */
static void
c_vanished(void *ud, const struct codec_seqset *set)
{
	char text[256] = "";
	size_t off = 0;

	for (size_t i = 0; i < set->n && off < sizeof(text); i++)
		off += snprintf(text + off, sizeof(text) - off, "%s%u:%u",
				i ? "," : "", set->v[i].lo, set->v[i].hi);
	ev(ud, "vanished %s", text);
}

static void
c_listed(void *ud, const char *name, char delimiter,
	 const struct codec_strlist *attrs, bool pushed)
{
	char a[256] = "";

	for (size_t i = 0; i < attrs->n; i++)
		snprintf(a + strlen(a), sizeof(a) - strlen(a), "%s%s",
			 i ? " " : "", attrs->v[i].ptr);
	ev(ud, "%slisted %s %c (%s)", pushed ? "pushed " : "", name,
	   delimiter ? delimiter : '0', a);
}

static void
c_list_end(void *ud, bool ok)
{
	ev(ud, "list_end %s", ok ? "ok" : "refused");
}

/* Without unseen: no SEARCH UNSEEN after EXAMINE (test_unseen has it). */
static const struct session_cb cb = {
	c_starttls, c_selected, c_fetched, c_batch_end, c_flags,
	c_expunge,  c_idle,     c_failed,  c_dated,     c_dated_end,
	c_notify,   c_status,   c_ready,   c_mailbox_failed,
	c_known,    c_vanished, NULL,       c_listed,
	c_list_end, NULL,
};

static struct session_opts opts = {
	.username = "alice",
	.password = "pa ss\"w",
	.mailbox = "INBOX",
	.idle_timeout = 1500,
	.poll_interval = 60,
	.command_timeout = 30,
};

/* Moves what the session queued into r->sent. */
static void
drain(struct session *s, struct rec *r)
{
	struct codec_buf *out = session_output(s);
	size_t n = strlen(r->sent);

	snprintf(r->sent + n, sizeof(r->sent) - n, "%.*s", (int)out->len,
		 out->data);
	codec_buf_consume(out, out->len);
}

static void
feed(struct session *s, struct rec *r, const char *text, int bytewise,
     uint64_t now)
{
	if (bytewise) {
		for (size_t i = 0; text[i]; i++)
			session_feed(s, text + i, 1, now);
	} else {
		session_feed(s, text, strlen(text), now);
	}
	drain(s, r);
}

/* Asserts that the client sent exactly want since the last check. */
static void
sent(struct rec *r, const char *want, const char *what)
{
	is_str(r->sent, want, "%s", what);
	r->sent[0] = 0;
}

static void
events(struct rec *r, const char *want, const char *what)
{
	is_str(r->events, want, "%s", what);
	r->events[0] = 0;
}

static const char greeting[] =
	"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	"LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n";

/* The whole main path: login, EXAMINE, IDLE, new mail, back to IDLE. */
static void
test_main_path(int bytewise)
{
	struct rec r = {0};
	struct session *s;
	const char *mode = bytewise ? "bytewise" : "whole";

	s = session_new(&opts, &cb, &r);
	feed(s, &r, greeting, bytewise, 0);
	/* base64("\0alice\0pa ss\"w") */
	sent(&r, "m1 AUTHENTICATE PLAIN AGFsaWNlAHBhIHNzInc=\r\n",
	     "AUTHENTICATE PLAIN with SASL-IR");
	feed(s, &r,
	     "m1 OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] Logged in\r\n",
	     bytewise, 0);
	sent(&r, "m2 EXAMINE INBOX\r\n", "EXAMINE, never SELECT");
	feed(s, &r,
	     "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	     "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
	     "* 2 EXISTS\r\n* 0 RECENT\r\n"
	     "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
	     "* OK [UIDNEXT 10] Predicted next UID\r\n"
	     "m2 OK [READ-ONLY] Examine completed (0.001 + 0.000 secs).\r\n",
	     bytewise, 0);
	events(&r, "selected 1700000000/10/2; ", mode);
	sent(&r, "m3 IDLE\r\n", "IDLE after EXAMINE");
	ok(!session_is_idle(s), "not idle before the continuation");
	feed(s, &r, "+ idling\r\n", bytewise, 0);
	ok(session_is_idle(s), "idle after the continuation (%s)", mode);
	events(&r, "idle; ", "idle reported");

	feed(s, &r, "* 3 EXISTS\r\n", bytewise, SEC);
	sent(&r, "DONE\r\nm4 UID FETCH 10:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "EXISTS: DONE and UID FETCH in one write");
	feed(s, &r,
	     "m3 OK Idle completed (0.001 + 1.000 secs).\r\n"
	     "* 3 FETCH (UID 10 FLAGS (\\Recent) ENVELOPE (\"Mon, 1 Jan "
	     "2024 10:00:00 +0000\" \"Hello\" ((\"Zoe\" NIL \"zoe\" "
	     "\"example.org\")) NIL NIL ((NIL NIL \"alice\" \"example.org\")) "
	     "NIL NIL NIL \"<1@example.org>\"))\r\n"
	     "m4 OK Fetch completed.\r\n",
	     bytewise, SEC);
	events(&r, "fetched 10 Hello; batch_end; ", "fetched and batch end");
	sent(&r, "m5 IDLE\r\n", "back to IDLE");
	feed(s, &r, "+ idling\r\n", bytewise, SEC);
	events(&r, "idle; ", "idle again");

	/* Flag changes and expunges while idle are reported, nothing else. */
	feed(s, &r, "* 3 FETCH (FLAGS (\\Seen))\r\n* 1 EXPUNGE\r\n", bytewise,
	     SEC);
	events(&r, "flags 3 seen; expunge 1; ", "flags and expunge while idle");
	sent(&r, "", "nothing sent for flags or expunge");

	/* The IDLE refresh before the server's inactivity timer. */
	{
		uint64_t acc, t = session_deadline(s, &acc);

		is_int(t, SEC + 1500 * SEC, "IDLE refresh deadline");
		session_timeout(s, t);
		drain(s, &r);
		sent(&r, "DONE\r\n", "refresh sends DONE");
		ok(session_deadline(s, &acc) == t + 30 * SEC,
		   "DONE has a command deadline");
		feed(s, &r, "m5 OK Idle completed.\r\n", bytewise, t);
		sent(&r, "m6 IDLE\r\n", "IDLE again after refresh");
	}
	ok(!r.failed, "no failure (%s)", mode);
	session_free(&s);
}

/* The unseen count: SEARCH UNSEEN in the EXAMINE's write, then kept by
 * flag changes, expunges (which renumber) and new mail. */
static void
test_unseen(void)
{
	struct session_cb ucb = cb;
	struct rec r = {0};
	struct session *s;

	ucb.unseen = c_unseen;
	s = session_new(&opts, &ucb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", 0, 0);
	sent(&r, "m1 AUTHENTICATE PLAIN AGFsaWNlAHBhIHNzInc=\r\n"
		 "m2 EXAMINE INBOX\r\nm3 SEARCH UNSEEN\r\n",
	     "SEARCH UNSEEN pipelined after EXAMINE");
	feed(s, &r,
	     "* 4 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 9] x\r\n"
	     "m2 OK [READ-ONLY] done\r\n* SEARCH 4 2 3\r\n"
	     "m3 OK Search completed\r\n",
	     0, 0);
	events(&r, "selected 7/9/4; unseen 3; ", "the count from SEARCH");
	sent(&r, "m4 IDLE\r\n", "IDLE while SEARCH was under way");
	feed(s, &r, "+ idling\r\n", 0, 0);
	r.events[0] = 0;
	feed(s, &r, "* 2 FETCH (FLAGS (\\Seen))\r\n", 0, SEC);
	events(&r, "unseen 2; flags 2 seen; ", "read elsewhere: one fewer");
	feed(s, &r, "* 2 FETCH (FLAGS (\\Seen))\r\n* 1 FETCH (FLAGS ())\r\n",
	     0, SEC);
	events(&r, "flags 2 seen; unseen 3; flags 1; ",
	       "a repeat changes nothing; marked unread: one more");
	feed(s, &r, "* 2 EXPUNGE\r\n", 0, SEC);
	events(&r, "expunge 2; ", "a read message deleted: no change");
	feed(s, &r, "* 2 FETCH (FLAGS (\\Seen))\r\n", 0, SEC);
	events(&r, "unseen 2; flags 2 seen; ",
	       "expunge renumbered: old 3 is now 2");
	feed(s, &r, "* 1 EXPUNGE\r\n", 0, SEC);
	events(&r, "unseen 1; expunge 1; ", "an unseen message deleted");
	feed(s, &r, "* 3 EXISTS\r\n", 0, SEC);
	feed(s, &r,
	     "m4 OK Idle completed.\r\n"
	     "* 3 FETCH (UID 9 FLAGS () ENVELOPE (NIL \"new\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm5 OK done\r\n",
	     0, SEC);
	events(&r, "unseen 2; fetched 9 new; batch_end; ",
	       "new unseen mail: one more");
	session_free(&s);

	/* A SEARCH refused or too long: the count stays unknown. */
	r = (struct rec){0};
	s = session_new(&opts, &ucb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", 0, 0);
	feed(s, &r,
	     "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 9] x\r\n"
	     "m2 OK [READ-ONLY] done\r\nm3 NO Search failed\r\n"
	     "+ idling\r\n* 1 FETCH (FLAGS ())\r\n",
	     0, 0);
	events(&r, "selected 7/9/1; idle; flags 1; ",
	       "SEARCH refused: no count, the watching goes on");
	ok(!r.failed, "no failure");
	session_free(&s);

	/* ESEARCH: ranges; more than UNSEEN_MAX leaves the count unknown. */
	for (int huge = 0; huge < 2; huge++) {
		r = (struct rec){0};
		s = session_new(&opts, &ucb, &r);
		feed(s, &r, greeting, 0, 0);
		r.sent[0] = 0;
		feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE ESEARCH] ok\r\n",
		     0, 0);
		sent(&r, "m2 EXAMINE INBOX\r\nm3 SEARCH RETURN (ALL) UNSEEN\r\n",
		     "ESEARCH offered: its RETURN (ALL) form");
		feed(s, &r,
		     "* 5 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n"
		     "* OK [UIDNEXT 9] x\r\nm2 OK [READ-ONLY] done\r\n",
		     0, 0);
		feed(s, &r,
		     huge ? "* ESEARCH (TAG \"m3\") ALL 1:4000000000\r\n"
			  : "* ESEARCH (TAG \"m3\") ALL 2:3,5\r\n",
		     0, 0);
		feed(s, &r, "m3 OK done\r\n+ idling\r\n", 0, 0);
		events(&r,
		       huge ? "selected 7/9/5; idle; "
			    : "selected 7/9/5; unseen 3; idle; ",
		       huge ? "an absurd ESEARCH set: no count, no harm"
			    : "the count from ESEARCH ranges");
		ok(!r.failed, "no failure");
		session_free(&s);
	}
}

/* A session on opts.mailbox past the greeting and its login (tag m1),
 * with its EXAMINE (m2) sent. */
static struct session *
logged_in(struct rec *r)
{
	struct session *s = session_new(&opts, &cb, r);

	feed(s, r, greeting, 0, 0);
	feed(s, r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", 0, 0);
	return s;
}

/* n:* returns the last message even below n; a FETCH repeated; \Seen. */
static void
test_fetch_edges(void)
{
	struct rec r = {0};
	struct session *s;

	r.start = 5; /* catch up from UID 5 */
	s = logged_in(&r);
	r.sent[0] = 0;
	feed(s, &r,
	     "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 8] x\r\n"
	     "m2 OK [READ-ONLY] done\r\n",
	     0, 0);
	sent(&r, "m3 UID FETCH 5:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "catch-up fetch from the given UID");
	feed(s, &r,
	     "* 1 FETCH (UID 4 FLAGS () ENVELOPE (NIL \"old\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\n"
	     "* 2 FETCH (UID 6 FLAGS (\\Seen) ENVELOPE (NIL \"six\" NIL NIL "
	     "NIL NIL NIL NIL NIL NIL))\r\n"
	     "* 3 FETCH (UID 7 FLAGS () ENVELOPE (NIL NIL NIL NIL NIL NIL "
	     "NIL NIL NIL NIL))\r\n"
	     "* 3 FETCH (UID 7 FLAGS () ENVELOPE (NIL NIL NIL NIL NIL NIL "
	     "NIL NIL NIL NIL))\r\n"
	     "m3 OK done\r\n",
	     0, 0);
	events(&r, "selected 7/8/3; fetched 6 six seen; fetched 7 NIL; "
		   "batch_end; ",
	       "below-start UID dropped, repeat reported once");
	sent(&r, "m4 IDLE\r\n", "IDLE after catch-up");
	session_free(&s);
}

/* The date scan after a UIDVALIDITY change: UID, FLAGS and INTERNALDATE
 * of the whole mailbox, then the catch-up from the UID the owner found,
 * with INTERNALDATE; an EXISTS during the scan is fetched after it. */
static void
test_date_scan(void)
{
	struct rec r = {0};
	struct session *s;

	r.by_date = true;
	r.dated_from = 9; /* nothing new: fetch from UIDNEXT */
	s = logged_in(&r);
	r.sent[0] = 0;
	feed(s, &r,
	     "* 2 EXISTS\r\n* OK [UIDVALIDITY 8] x\r\n* OK [UIDNEXT 9] x\r\n"
	     "m2 OK [READ-ONLY] done\r\n",
	     0, 0);
	sent(&r, "m3 UID FETCH 1:* (UID FLAGS INTERNALDATE)\r\n",
	     "the date scan, without envelopes");
	feed(s, &r,
	     "* 1 FETCH (UID 4 FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 "
	     "10:00:00 +0000\")\r\n"
	     "* 2 FETCH (UID 8 FLAGS () INTERNALDATE \" 2-Jan-2024 10:00:00 "
	     "+0000\")\r\n"
	     "* 2 FETCH (FLAGS (\\Seen))\r\n"
	     "* 3 EXISTS\r\n"
	     "m3 OK done\r\n",
	     0, SEC);
	events(&r, "selected 8/9/2; dated 4 01-Jan-2024 10:00:00 +0000 seen; "
		   "dated 8  2-Jan-2024 10:00:00 +0000; flags 2 seen; "
		   "dated_end; ",
	       "each message dated, then asked where to start");
	sent(&r, "m4 UID FETCH 9:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "the message that came during the scan is fetched after it");
	feed(s, &r, "m4 OK done\r\n", 0, SEC);
	sent(&r, "m5 IDLE\r\n", "then IDLE");
	feed(s, &r, "+ idling\r\n* 4 EXISTS\r\n", 0, SEC);
	sent(&r, "DONE\r\nm6 UID FETCH 9:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "later fetches as any other");
	ok(!r.failed, "date scan without failure");
	session_free(&s);

	/* An empty mailbox needs no scan: straight to dated_end. */
	memset(&r, 0, sizeof(r));
	r.by_date = true;
	r.dated_from = 3;
	s = logged_in(&r);
	r.sent[0] = 0;
	feed(s, &r,
	     "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] x\r\n* OK [UIDNEXT 3] x\r\n"
	     "m2 OK [READ-ONLY] done\r\n",
	     0, 0);
	events(&r, "selected 8/3/0; dated_end; ", "empty: no scan");
	sent(&r, "m3 IDLE\r\n", "empty: IDLE");
	session_free(&s);

	/* The scan's deadline runs from the last answer. */
	memset(&r, 0, sizeof(r));
	r.by_date = true;
	r.dated_from = 1;
	s = logged_in(&r);
	feed(s, &r,
	     "* 9 EXISTS\r\n* OK [UIDVALIDITY 8] x\r\n* OK [UIDNEXT 10] x\r\n"
	     "m2 OK [READ-ONLY] done\r\n",
	     0, 0);
	for (uint64_t t = 20; t <= 200; t += 20)
		feed(s, &r,
		     "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2024 "
		     "10:00:00 +0000\")\r\n",
		     0, t * SEC);
	{
		uint64_t acc;

		is_int(session_deadline(s, &acc), 230 * SEC,
		       "the scan's deadline: 30 s after its last answer");
	}
	ok(!r.failed, "a long scan that answers is not timed out");
	session_free(&s);

	/* So does a catch-up's: thousands of envelopes over a slow link. */
	memset(&r, 0, sizeof(r));
	r.start = 1;
	s = logged_in(&r);
	r.sent[0] = 0;
	feed(s, &r,
	     "* 9 EXISTS\r\n* OK [UIDVALIDITY 8] x\r\n* OK [UIDNEXT 10] x\r\n"
	     "m2 OK [READ-ONLY] done\r\n",
	     0, 0);
	sent(&r, "m3 UID FETCH 1:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n", "catch-up");
	for (uint64_t t = 20; t <= 180; t += 20) {
		char *line = xasprintf("* %u FETCH (UID %u FLAGS () ENVELOPE "
				       "(NIL \"slow\" NIL NIL NIL NIL NIL NIL "
				       "NIL NIL))\r\n",
				       (unsigned)(t / 20), (unsigned)(t / 20));

		feed(s, &r, line, 0, t * SEC);
		free(line);
	}
	{
		uint64_t acc;

		is_int(session_deadline(s, &acc), 210 * SEC,
		       "the catch-up's deadline: 30 s after its last answer");
	}
	ok(!r.failed, "a long catch-up that answers is not timed out");
	session_timeout(s, 211 * SEC);
	ok(r.failed && r.why == SESSION_FAIL_TIMEOUT,
	   "one that stops answering is");
	session_free(&s);

	/* A message over the limits in the catch-up is fetched again with
	 * its INTERNALDATE too, for the owner to tell whether it is new. */
	memset(&r, 0, sizeof(r));
	r.by_date = true;
	r.dated_from = 10;
	s = session_new(&opts, &cb, &r);
	feed(s, &r, "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] ready\r\n", 0, 0);
	feed(s, &r,
	     "* 2 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n* OK [UIDNEXT 11] x\r\n"
	     "m1 OK done\r\nm2 OK scanned\r\n",
	     0, 0);
	{
		char *big = xmalloc(80000);
		int n = snprintf(big, 80000,
				 "* 2 FETCH (UID 10 FLAGS () INTERNALDATE "
				 "\"01-Jan-2024 10:00:00 +0000\" ENVELOPE (NIL "
				 "\"big\" NIL NIL NIL ((\"");

		memset(big + n, 'x', 70000);
		n += 70000;
		snprintf(big + n, 80000 - n,
			 "\" NIL \"a\" \"b\")) NIL NIL NIL NIL))\r\n"
			 "m3 OK done\r\n");
		r.sent[0] = 0;
		feed(s, &r, big, 0, 0);
		free(big);
	}
	sent(&r,
	     "m4 FETCH 2 (UID FLAGS INTERNALDATE "
	     "BODY.PEEK[HEADER.FIELDS (FROM SENDER)]<0.2048> "
	     "BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.2048> "
	     "BODY.PEEK[HEADER.FIELDS (DATE)]<0.256> "
	     "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]<0.1024>)\r\n",
	     "over the limits in the catch-up: fetched again with its date");
	session_free(&s);
}

static void
test_refusals(void)
{
	struct rec r = {0};
	struct session *s;
	struct session_opts o = opts;

	/* tls = starttls against a server without STARTTLS. */
	o.starttls = true;
	s = session_new(&o, &cb, &r);
	feed(s, &r, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n", 0, 0);
	ok(r.failed && r.why == SESSION_FAIL_TLS, "no STARTTLS: fails");
	sent(&r, "", "no STARTTLS: nothing sent, no password");
	session_free(&s);

	/* STARTTLS offered: upgrade, capabilities asked again, then login. */
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r,
	     "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n", 0,
	     0);
	sent(&r, "m1 STARTTLS\r\n", "STARTTLS sent first");
	feed(s, &r, "m1 OK Begin TLS negotiation now.\r\n", 0, 0);
	ok(r.starttls == 1, "starttls callback");
	session_tls_ready(s, 0);
	drain(s, &r);
	sent(&r, "m2 CAPABILITY\r\n", "capabilities again after TLS");
	feed(s, &r,
	     "* CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN\r\nm2 OK done\r\n", 0,
	     0);
	sent(&r, "m3 AUTHENTICATE PLAIN\r\n", "PLAIN without SASL-IR");
	feed(s, &r, "+ \r\n", 0, 0);
	sent(&r, "AGFsaWNlAHBhIHNzInc=\r\n", "PLAIN response after +");
	ok(!r.failed, "STARTTLS path without failure");
	session_free(&s);

	/* Plaintext injected after the STARTTLS OK (CVE-2011-0411). */
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", 0, 0);
	r.sent[0] = 0;
	feed(s, &r, "m1 OK go\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN]\r\n",
	     0, 0);
	ok(r.failed && r.why == SESSION_FAIL_PROTOCOL && !r.starttls,
	   "data after STARTTLS OK refused");
	session_free(&s);

	/* LOGINDISABLED without AUTH=PLAIN. */
	memset(&r, 0, sizeof(r));
	s = session_new(&opts, &cb, &r);
	feed(s, &r, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n", 0, 0);
	ok(r.failed && r.why == SESSION_FAIL_TLS, "LOGINDISABLED: fails");
	sent(&r, "", "LOGINDISABLED: no LOGIN sent");
	ok(!strstr(r.events, "STARTTLS"), "LOGINDISABLED: no STARTTLS to "
	   "point to (%s)", r.events);
	session_free(&s);

	/* The same in the clear with STARTTLS offered: that is the fix. */
	memset(&r, 0, sizeof(r));
	s = session_new(&opts, &cb, &r);
	feed(s, &r, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n",
	     0, 0);
	ok(r.failed && r.why == SESSION_FAIL_TLS &&
	       strstr(r.events, "it offers STARTTLS: set tls = starttls"),
	   "LOGINDISABLED, STARTTLS offered: says tls = starttls (%s)",
	   r.events);
	sent(&r, "", "LOGINDISABLED, STARTTLS offered: nothing sent");
	session_free(&s);

	/* A rejected password. */
	memset(&r, 0, sizeof(r));
	s = session_new(&opts, &cb, &r);
	feed(s, &r, "* OK [CAPABILITY IMAP4rev1] hi\r\n", 0, 0);
	sent(&r, "m1 LOGIN alice \"pa ss\\\"w\"\r\n", "LOGIN, quoted password");
	feed(s, &r, "m1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
	     0, 0);
	ok(r.failed && r.why == SESSION_FAIL_AUTH, "wrong password: AUTH");
	ok(strstr(r.events, "pa ss") == NULL, "password not in the message");
	session_free(&s);

	/* Missing mailbox. */
	memset(&r, 0, sizeof(r));
	s = logged_in(&r);
	feed(s, &r, "m2 NO Mailbox doesn't exist: INBOX\r\n", 0, 0);
	ok(r.failed && r.why == SESSION_FAIL_MAILBOX, "EXAMINE NO: MAILBOX");
	session_free(&s);

	/* BYE in the middle. */
	memset(&r, 0, sizeof(r));
	s = session_new(&opts, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r, "* BYE Server shutting down.\r\n", 0, 0);
	ok(r.failed && r.why == SESSION_FAIL_BYE, "BYE: fails with BYE");
	session_free(&s);
}

/* Without IDLE: NOOP every poll_interval; EXISTS during NOOP fetches. */
static void
test_polling(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);
	uint64_t acc, t;

	feed(s, &r, "* PREAUTH [CAPABILITY IMAP4rev1] ready\r\n", 0, 0);
	sent(&r, "m1 EXAMINE INBOX\r\n", "PREAUTH skips login");
	feed(s, &r,
	     "* 0 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n* OK [UIDNEXT 1] x\r\n"
	     "m1 OK done\r\n",
	     0, 0);
	ok(session_is_idle(s), "polling counts as idle");
	t = session_deadline(s, &acc);
	is_int(t, 60 * SEC, "poll deadline");
	session_timeout(s, t);
	drain(s, &r);
	sent(&r, "m2 NOOP\r\n", "NOOP at the poll time");
	feed(s, &r, "* 1 EXISTS\r\nm2 OK done\r\n", 0, t);
	sent(&r, "m3 UID FETCH 1:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "EXISTS during NOOP fetches");
	session_free(&s);
}

/* No UIDNEXT in the EXAMINE reply: asks for the last UID. */
static void
test_no_uidnext(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);

	feed(s, &r, "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] ready\r\n", 0, 0);
	r.sent[0] = 0;
	feed(s, &r, "* 4 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\nm1 OK done\r\n",
	     0, 0);
	sent(&r, "m2 FETCH * (UID)\r\n", "FETCH * (UID) without UIDNEXT");
	feed(s, &r, "* 4 FETCH (UID 41)\r\nm2 OK done\r\n", 0, 0);
	events(&r, "selected 3/42/4; ", "UIDNEXT derived from the last UID");
	session_free(&s);
}

/* A command left unanswered fails at its deadline. */
static void
test_timeout(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);
	uint64_t acc, t;

	feed(s, &r, greeting, 0, 5 * SEC);
	t = session_deadline(s, &acc);
	is_int(t, 35 * SEC, "login deadline 30 s after sending");
	session_timeout(s, t - 1);
	ok(!r.failed, "not before the deadline");
	session_timeout(s, t);
	ok(r.failed && r.why == SESSION_FAIL_TIMEOUT, "timeout at deadline");
	session_free(&s);
}

/* Reading paused: the deadlines move by the time paused. A deadline that
 * would have passed during the pause does not fail the session; one after
 * the pause still does. */
static void
test_postpone(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);
	uint64_t acc, t;

	feed(s, &r, greeting, 0, 5 * SEC);
	t = session_deadline(s, &acc);
	is_int(t, 35 * SEC, "login deadline 30 s after sending");
	/* Paused from 10 s to 50 s: the deadline passed meanwhile. */
	session_postpone(s, 40 * SEC);
	is_int(session_deadline(s, &acc), 75 * SEC,
	       "postponed by the 40 s paused");
	session_timeout(s, 50 * SEC);
	ok(!r.failed, "no timeout for the time paused");
	session_timeout(s, 75 * SEC - 1);
	ok(!r.failed, "not before the postponed deadline");
	session_timeout(s, 75 * SEC);
	ok(r.failed && r.why == SESSION_FAIL_TIMEOUT,
	   "timeout at the postponed deadline");
	session_free(&s);

	/* The greeting's deadline too. */
	memset(&r, 0, sizeof(r));
	s = session_new(&opts, &cb, &r);
	session_connected(s, 2 * SEC);
	session_postpone(s, 10 * SEC);
	is_int(session_deadline(s, &acc), 42 * SEC,
	       "greeting deadline postponed");
	session_timeout(s, 32 * SEC);
	ok(!r.failed, "no greeting timeout for the time paused");
	session_free(&s);
}

/* A server that accepts the connection but never greets. */
static void
test_no_greeting(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);
	uint64_t acc;

	session_connected(s, 2 * SEC);
	is_int(session_deadline(s, &acc), 32 * SEC, "greeting deadline");
	session_timeout(s, 32 * SEC);
	ok(r.failed && r.why == SESSION_FAIL_TIMEOUT, "no greeting: timeout");
	ok(!strstr(r.events, "implicit TLS"),
	   "implicit TLS: no hint of it (%s)", r.events);
	session_free(&s);

	/* Without TLS (or before STARTTLS), a port of implicit TLS is the
	 * likeliest cause: its server waits for the handshake (trial R saw
	 * the hint with tls = starttls only). */
	for (int plain = 0; plain < 2; plain++) {
		struct session_opts o = opts;

		o.starttls = !plain;
		o.plaintext = plain;
		r = (struct rec){0};
		s = session_new(&o, &cb, &r);
		session_connected(s, 2 * SEC);
		session_timeout(s, 32 * SEC);
		ok(r.failed && strstr(r.events, "(is the port one of implicit "
						"TLS? then tls = implicit)"),
		   "tls = %s: the hint (%s)", plain ? "none" : "starttls",
		   r.events);
		session_free(&s);
	}

	/* A greeting in time clears the deadline. */
	memset(&r, 0, sizeof(r));
	s = session_new(&opts, &cb, &r);
	session_connected(s, 0);
	feed(s, &r, "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] hi\r\n", 0, SEC);
	session_timeout(s, 30 * SEC);
	ok(!r.failed, "greeted: no greeting timeout later");
	session_free(&s);
}

/* A response the codec rejects fails the session with its message. */
static void
test_garbage(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);

	feed(s, &r, greeting, 0, 0);
	feed(s, &r, "* 1 FETCH (UID 5\r\n", 0, 0);
	ok(r.failed && r.why == SESSION_FAIL_PROTOCOL,
	   "an unterminated FETCH fails");
	session_free(&s);
}

/* Brings s (PREAUTH, IDLE offered) into IDLE on a mailbox of exists
 * messages and that UIDNEXT (UIDVALIDITY 3), and forgets what it sent and
 * reported on the way: the IDLE's tag is m2. */
static void
to_idle(struct session *s, struct rec *r, unsigned exists, unsigned uidnext)
{
	char buf[160];

	feed(s, r, "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] ready\r\n", 0, 0);
	snprintf(buf, sizeof(buf),
		 "* %u EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n"
		 "* OK [UIDNEXT %u] x\r\nm1 OK done\r\n+ idling\r\n",
		 exists, uidnext);
	feed(s, r, buf, 0, 0);
	r->sent[0] = r->events[0] = 0;
}

/* A server that answers the UID FETCH but never completes the IDLE it
 * followed: IDLEs used to pile up until the session aborted the process.
 * Now the session ends there, before reporting the batch (the next
 * connection fetches it again), and nothing more is sent. */
static void
test_idle_never_done(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);

	to_idle(s, &r, 1, 2);
	feed(s, &r,
	     "* 2 EXISTS\r\n* 2 FETCH (UID 2 FLAGS () ENVELOPE (NIL NIL NIL "
	     "NIL NIL NIL NIL NIL NIL NIL))\r\nm3 OK done\r\n",
	     0, SEC);
	sent(&r, "DONE\r\nm3 UID FETCH 2:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "DONE + fetch, and no IDLE while the old one is open");
	ok(r.failed && r.why == SESSION_FAIL_PROTOCOL,
	   "fetch completed before its IDLE: a protocol error");
	ok(!strstr(r.events, "batch_end"), "the batch is not reported");
	feed(s, &r, "* 3 EXISTS\r\n+ idling\r\nm2 OK done\r\n", 0, SEC);
	sent(&r, "", "nothing sent once failed");
	ok(r.failed == 1, "failed once");
	session_free(&s);
}

/* A NO to the login: credentials refused (do not retry), the server
 * cannot take us now (retry), or a plain NO, which could be either (the
 * watcher decides), by the response code. */
static void
test_login_refusals(void)
{
	static const struct {
		const char *reply;
		enum session_fail why;
	} cases[] = {
		{"NO [AUTHENTICATIONFAILED] Authentication failed.",
		 SESSION_FAIL_AUTH},
		{"NO Login failed.", SESSION_FAIL_AUTH_PLAIN},
		{"NO Too many open connections (4 of 4 for alice)",
		 SESSION_FAIL_AUTH_PLAIN},
		{"NO [ALERT] Password expired.", SESSION_FAIL_AUTH_PLAIN},
		{"NO [EXPIRED] Password expired.", SESSION_FAIL_AUTH},
		{"NO [LIMIT] Maximum number of connections from user+IP "
		 "exceeded (mail_max_userip_connections=10)",
		 SESSION_FAIL_LIMIT},
		{"NO [UNAVAILABLE] [LIMIT] in the text only",
		 SESSION_FAIL_REFUSED},
		{"NO [UNAVAILABLE] Temporary authentication failure.",
		 SESSION_FAIL_REFUSED},
		{"NO [SERVERBUG] Internal error", SESSION_FAIL_REFUSED},
		{"NO [INUSE] Mailbox in use", SESSION_FAIL_REFUSED},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rec r = {0};
		struct session *s = session_new(&opts, &cb, &r);
		char buf[256];

		feed(s, &r, greeting, 0, 0);
		snprintf(buf, sizeof(buf), "m1 %s\r\n", cases[i].reply);
		feed(s, &r, buf, 0, 0);
		ok(r.failed == 1 && r.why == cases[i].why, "%s: %s",
		   cases[i].reply,
		   cases[i].why == SESSION_FAIL_LIMIT	  ? "a limit, retried"
		   : cases[i].why == SESSION_FAIL_REFUSED ? "retried"
		   : cases[i].why == SESSION_FAIL_AUTH	  ? "not retried"
							  : "plain NO");
		ok(strstr(r.events, cases[i].reply) != NULL,
		   "the reply with its code is in the message");
		session_free(&s);
	}
}

/* A FETCH response over the codec's limits costs the message's details,
 * not the session: it is fetched again with four header fields only, and
 * reported with them in the same batch. */
static void
test_fetch_over_limits(int bytewise)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);
	char *big = xmalloc(80000);
	int n;

	to_idle(s, &r, 2, 10);
	feed(s, &r, "* 4 EXISTS\r\n", 0, 0);
	sent(&r, "DONE\r\nm3 UID FETCH 10:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "fetch");
	/* A To list of 70000 bytes on one line. */
	n = snprintf(big, 80000, "m2 OK idle done\r\n* 3 FETCH (UID 10 FLAGS () "
				 "ENVELOPE (NIL \"big\" NIL NIL NIL ((\"");
	memset(big + n, 'x', 70000);
	n += 70000;
	n += snprintf(big + n, 80000 - n,
		      "\" NIL \"a\" \"b\")) NIL NIL NIL NIL))\r\n"
		      "* 4 FETCH (UID 11 FLAGS () ENVELOPE (NIL \"small\" NIL "
		      "NIL NIL NIL NIL NIL NIL NIL))\r\nm3 OK done\r\n");
	feed(s, &r, big, bytewise, 0);
	sent(&r,
	     "m4 FETCH 3 (UID FLAGS INTERNALDATE "
	     "BODY.PEEK[HEADER.FIELDS (FROM SENDER)]<0.2048> "
	     "BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.2048> "
	     "BODY.PEEK[HEADER.FIELDS (DATE)]<0.256> "
	     "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]<0.1024>)\r\n",
	     "the big one fetched again, header fields only");
	events(&r, "fetched 11 small; ", "the small one reported");
	feed(s, &r,
	     "* 3 FETCH (UID 10 FLAGS () BODY[HEADER.FIELDS (FROM SENDER)]<0> "
	     "{17}\r\nFrom: a@b.org\r\n\r\n BODY[HEADER.FIELDS (SUBJECT)]<0> "
	     "{16}\r\nSubject: big\r\n\r\n)\r\n"
	     "* 3 FETCH (UID 10 FLAGS () BODY[HEADER.FIELDS (FROM SENDER)]<0> "
	     "\"\")\r\nm4 OK done\r\n",
	     bytewise, 0);
	events(&r, "fetched 10 (headers); batch_end; ",
	       "reported once with its header fields, then the batch ends");
	sent(&r, "m5 IDLE\r\n", "back to IDLE");
	ok(!r.failed, "no failure (%s)", bytewise ? "bytewise" : "whole");
	free(big);
	session_free(&s);
}

/* The -v trace shows each server line whole, however the reads cut it. */
static void
test_trace_lines(void)
{
	struct rec r = {0};
	struct session *s = session_new(&opts, &cb, &r);
	char *out;

	log_max_level = LOG_DEBUG;
	capture_begin("build/test_session.stderr");
	session_feed(s, "* OK [CAPABILITY IMAP4rev1 IDLE] hel", 36, 0);
	session_feed(s, "lo\r", 3, 0);
	session_feed(s, "\n* 1 EXI", 8, 0);
	session_feed(s, "STS\r\n", 5, 0);
	out = capture_end();
	log_max_level = LOG_INFO;
	ok(strstr(out, "S: * OK [CAPABILITY IMAP4rev1 IDLE] hello\n") &&
	       strstr(out, "S: * 1 EXISTS\n") && !strstr(out, "S: lo") &&
	       !strstr(out, "S: STS"),
	   "trace lines whole across reads, without CR");
	if (!strstr(out, "S: * 1 EXISTS\n"))
		dump(out);
	free(out);
	session_free(&s);
}

static const char notify_caps[] =
	"m1 OK [CAPABILITY IMAP4rev1 IDLE NOTIFY LITERAL+] ok\r\n";

static const char *const others[] = {"a", "Lists/x", "Caf\xc3\xa9"};

static const char examined[] =
	"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
	"* 0 EXISTS\r\n* 0 RECENT\r\n"
	"* OK [UIDVALIDITY 1796502943] UIDs valid\r\n"
	"* OK [UIDNEXT 1] Predicted next UID\r\n"
	"* OK [HIGHESTMODSEQ 1] Highest\r\n";

/* NOTIFY, as Dovecot 2.3 answers it (lines taken from a real session):
 * NOTIFY SET before the EXAMINE in one write, a STATUS per other
 * mailbox, new mail in the selected one with its envelope inside the
 * push (no DONE, no UID FETCH), STATUS pushes for the others. */
static void
test_notify(int bytewise)
{
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;
	const char *mode = bytewise ? "bytewise" : "whole";

	o.notify = true;
	o.others = others;
	o.n_others = 3;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, bytewise, 0);
	r.sent[0] = 0;
	feed(s, &r, notify_caps, bytewise, 0);
	sent(&r,
	     "m2 NOTIFY SET STATUS (selected (MessageNew (UID FLAGS ENVELOPE) "
	     "MessageExpunge FlagChange)) (mailboxes (a Lists/x Caf&AOk-) "
	     "(MessageNew MessageExpunge FlagChange)) (personal (MessageNew "
	     "MessageExpunge FlagChange))\r\nm3 EXAMINE INBOX\r\n",
	     "NOTIFY SET and EXAMINE in one write, names in modified UTF-7, "
	     "and the personal namespace");
	feed(s, &r,
	     "* STATUS Lists/x (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1796502944 "
	     "UNSEEN 0 HIGHESTMODSEQ 1)\r\n"
	     "* STATUS \"Caf&AOk-\" (MESSAGES 2 UIDNEXT 9 UIDVALIDITY 5 "
	     "UNSEEN 1)\r\n"
	     "m2 OK NOTIFY completed (0.007 + 0.000 + 0.006 secs).\r\n",
	     bytewise, 0);
	events(&r, "status Lists/x 1796502944/1/0/0 modseq 1; "
		   "status Caf\xc3\xa9 5/9/2/1; notify on; ",
	       "initial STATUS of each, decoded; notify on");
	feed(s, &r, examined, bytewise, 0);
	feed(s, &r, "m3 OK [READ-ONLY] Examine completed.\r\n", bytewise, 0);
	events(&r, "selected 1796502943/1/0; ", mode);
	sent(&r, "m4 IDLE\r\n", "IDLE");
	feed(s, &r, "+ idling\r\n", bytewise, 0);
	events(&r, "idle; ", "idle");

	feed(s, &r, "* 1 EXISTS\r\n* 1 RECENT\r\n", bytewise, SEC);
	sent(&r, "", "EXISTS under NOTIFY: no DONE, the FETCH follows");
	feed(s, &r,
	     "* 1 FETCH (UID 1 FLAGS (\\Recent) ENVELOPE (\"Wed, 18 Nov "
	     "2026 07:45:10 +0100\" \"Hi\" ((\"Jos\" NIL \"jose\" "
	     "\"example.es\")) NIL NIL ((NIL NIL \"alice\" \"example.org\")) "
	     "NIL NIL NIL \"<2@example.es>\"))\r\n",
	     bytewise, SEC);
	events(&r, "fetched 1 Hi; batch_end; ",
	       "pushed FETCH announced at once, as its own batch");
	sent(&r, "", "still nothing sent");
	{
		uint64_t acc;

		is_int(session_deadline(s, &acc), 1500 * SEC,
		       "the IDLE refresh is the next deadline again");
	}
	feed(s, &r,
	     "* 1 FETCH (UID 1 FLAGS (\\Recent) ENVELOPE (NIL \"Hi\" NIL NIL "
	     "NIL NIL NIL NIL NIL NIL))\r\n"
	     "* 1 FETCH (FLAGS (\\Seen))\r\n"
	     "* STATUS a (MESSAGES 2 UIDNEXT 3 UNSEEN 2 HIGHESTMODSEQ 3)\r\n"
	     "* STATUS a (UNSEEN 1 HIGHESTMODSEQ 4)\r\n",
	     bytewise, SEC);
	events(&r, "flags 1 seen; status a ?/3/2/2 modseq 3; "
		   "status a ?/?/?/1 modseq 4; ",
	       "a repeated push is not new; flag change; pushed STATUS, of "
	       "new mail and of flags (FlagChange: no UIDNEXT)");
	if (!bytewise) {
		feed(s, &r,
		     "* 3 EXISTS\r\n* 2 FETCH (UID 2 FLAGS () ENVELOPE (NIL "
		     "\"two\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
		     "* 3 FETCH (UID 3 FLAGS () ENVELOPE (NIL \"three\" NIL NIL "
		     "NIL NIL NIL NIL NIL NIL))\r\n",
		     0, 2 * SEC);
		events(&r, "fetched 2 two; fetched 3 three; batch_end; ",
		       "what is pushed in one read is one batch");
	}
	ok(!r.failed, "no failure (%s)", mode);
	session_free(&s);
}

/* A session of o with NOTIFY, brought to IDLE (tags m1-m4). */
static struct session *
notify_to_idle(struct session_opts o, struct rec *r)
{
	struct session *s;

	o.notify = true;
	s = session_new(&o, &cb, r);
	feed(s, r, greeting, 0, 0);
	feed(s, r, notify_caps, 0, 0);
	feed(s, r, "m2 OK NOTIFY completed.\r\n", 0, 0);
	feed(s, r, examined, 0, 0);
	feed(s, r, "m3 OK [READ-ONLY] Examine completed.\r\n+ idling\r\n", 0,
	     0);
	return s;
}

/* A server that refuses NOTIFY: the session watches its mailbox alone. */
static void
test_notify_refused(void)
{
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;

	o.notify = true;
	o.others = others;
	o.n_others = 1;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r, notify_caps, 0, 0);
	r.sent[0] = 0;
	feed(s, &r, "m2 BAD Error in IMAP command NOTIFY: Invalid arguments\r\n",
	     0, 0);
	events(&r, "notify off; ", "refused NOTIFY reported");
	feed(s, &r, examined, 0, 0);
	feed(s, &r, "m3 OK [READ-ONLY] Examine completed.\r\n", 0, 0);
	feed(s, &r, "+ idling\r\n* 1 EXISTS\r\n", 0, SEC);
	sent(&r, "m4 IDLE\r\nDONE\r\nm5 UID FETCH 1:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "without NOTIFY, EXISTS is fetched as always");
	ok(!r.failed, "no failure");
	session_free(&s);

	/* Not offered: reported at once, nothing sent for it. */
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	r.sent[0] = 0;
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", 0, 0);
	events(&r, "notify off; ", "NOTIFY not offered: off");
	sent(&r, "m2 EXAMINE INBOX\r\n", "only EXAMINE");
	session_free(&s);
}

/* An EXISTS whose FETCH never comes: fetched after NOTIFY_GRACE. */
static void
test_notify_no_fetch(void)
{
	struct rec r = {0};
	struct session *s;
	uint64_t acc, t;

	s = notify_to_idle(opts, &r);
	r.sent[0] = 0;
	r.events[0] = 0;
	feed(s, &r, "* 1 EXISTS\r\n", 0, 10 * SEC);
	t = session_deadline(s, &acc);
	is_int(t, 12 * SEC, "a deadline NOTIFY_GRACE after the EXISTS");
	session_timeout(s, t);
	drain(s, &r);
	sent(&r, "DONE\r\nm5 UID FETCH 1:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "no FETCH came: fetched");
	feed(s, &r,
	     "m4 OK Idle completed.\r\n"
	     "* 1 FETCH (UID 1 FLAGS () ENVELOPE (NIL \"late\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm5 OK done\r\n",
	     0, t);
	events(&r, "fetched 1 late; batch_end; ", "the message announced");
	ok(!r.failed, "no failure");
	session_free(&s);
}

/* Reading paused after an EXISTS under NOTIFY: its FETCH may wait in the
 * socket, so the wait for it is postponed too. */
static void
test_notify_postponed(void)
{
	struct rec r = {0};
	struct session *s;
	uint64_t acc;

	s = notify_to_idle(opts, &r);
	r.sent[0] = 0;
	r.events[0] = 0;
	feed(s, &r, "* 1 EXISTS\r\n", 0, 10 * SEC);
	session_postpone(s, 5 * SEC);
	is_int(session_deadline(s, &acc), 17 * SEC,
	       "NOTIFY_GRACE postponed by the 5 s paused");
	session_timeout(s, 12 * SEC);
	drain(s, &r);
	sent(&r, "", "nothing fetched for the time paused");
	feed(s, &r,
	     "* 1 FETCH (UID 1 FLAGS () ENVELOPE (NIL \"pushed\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\n",
	     0, 15 * SEC);
	events(&r, "fetched 1 pushed; batch_end; ",
	       "the pushed FETCH read after the pause is taken");
	ok(!r.failed, "no failure");
	session_free(&s);
}

/* A pushed FETCH over the limits: DONE, its header fields by sequence
 * number, then the message pushed after it (fetched, not taken from the
 * push, so that UIDs stay in order); twice, the second time after a
 * headers-only fetch. */
static void
test_notify_over_limits(void)
{
	struct rec r = {0};
	struct session *s;
	char *big = xmalloc(80000);
	static const char headers[] =
		"(UID FLAGS INTERNALDATE "
		"BODY.PEEK[HEADER.FIELDS (FROM SENDER)]<0.2048> "
		"BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.2048> "
		"BODY.PEEK[HEADER.FIELDS (DATE)]<0.256> "
		"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]<0.1024>)\r\n";
	char want[512];
	int n;

	s = notify_to_idle(opts, &r);
	for (unsigned i = 0; i < 2; i++) {
		uint32_t seq = 2 * i + 1;
		unsigned tag = 4 + 3 * i; /* of the IDLE */

		r.sent[0] = 0;
		r.events[0] = 0;
		n = snprintf(big, 80000,
			     "* %u EXISTS\r\n* %u FETCH (UID %u FLAGS () "
			     "ENVELOPE (NIL \"big\" NIL NIL NIL ((\"",
			     seq, seq, seq);
		memset(big + n, 'x', 70000);
		n += 70000;
		snprintf(big + n, 80000 - n,
			 "\" NIL \"a\" \"b\")) NIL NIL NIL NIL))\r\n"
			 "* %u EXISTS\r\n* %u FETCH (UID %u FLAGS () ENVELOPE "
			 "(NIL \"small\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n",
			 seq + 1, seq + 1, seq + 1);
		feed(s, &r, big, 0, SEC);
		sent(&r, "DONE\r\n", "a skipped push leaves IDLE");
		events(&r, "", "nothing announced out of UID order");
		snprintf(want, sizeof(want), "m%u OK Idle completed.\r\n", tag);
		feed(s, &r, want, 0, SEC);
		snprintf(want, sizeof(want), "m%u FETCH %u %s", tag + 1, seq,
			 headers);
		sent(&r, want, "its header fields by sequence number");
		snprintf(big, 80000,
			 "* %u FETCH (UID %u FLAGS () BODY[HEADER.FIELDS "
			 "(SUBJECT)]<0> {16}\r\nSubject: big\r\n\r\n)\r\n"
			 "m%u OK done\r\n",
			 seq, seq, tag + 1);
		feed(s, &r, big, 0, SEC);
		snprintf(want, sizeof(want),
			 "m%u UID FETCH %u:* "
			 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n", tag + 2,
			 seq + 1);
		sent(&r, want, "then what came after it");
		snprintf(big, 80000,
			 "* %u FETCH (UID %u FLAGS () ENVELOPE (NIL \"small\" "
			 "NIL NIL NIL NIL NIL NIL NIL NIL))\r\nm%u OK done\r\n",
			 seq + 1, seq + 1, tag + 2);
		feed(s, &r, big, 0, SEC);
		snprintf(want, sizeof(want),
			 "fetched %u (headers); batch_end; fetched %u small; "
			 "batch_end; ",
			 seq, seq + 1);
		events(&r, want, "both announced, in UID order");
		snprintf(want, sizeof(want), "m%u IDLE\r\n", tag + 3);
		sent(&r, want, "back to IDLE");
		feed(s, &r, "+ idling\r\n", 0, SEC);
	}
	ok(!r.failed, "no failure");
	free(big);
	session_free(&s);
}

/* Fetch mode: no mailbox of its own; STATUS checks pipelined, a refused
 * one reported, then one mailbox caught up and ready again. */
static void
test_fetch_mode(int bytewise)
{
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;
	uint64_t acc;

	o.mailbox = NULL;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, bytewise, 0);
	r.sent[0] = 0;
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE CONDSTORE] ok\r\n",
	     bytewise, 0);
	sent(&r, "m2 ENABLE CONDSTORE\r\n",
	     "CONDSTORE enabled after login");
	feed(s, &r, "* ENABLED CONDSTORE\r\nm2 OK Enabled.\r\n", bytewise,
	     0);
	events(&r, "ready; ", "ready after login");
	sent(&r, "", "nothing sent by itself");
	ok(session_is_idle(s), "ready counts as idle");
	is_int(session_deadline(s, &acc), 1500 * SEC, "keep-alive deadline");

	session_status(s, "a", SEC);
	session_status(s, "gone", SEC);
	drain(s, &r);
	sent(&r,
	     "m3 STATUS a (MESSAGES UIDNEXT UIDVALIDITY UNSEEN "
	     "HIGHESTMODSEQ)\r\n"
	     "m4 STATUS gone (MESSAGES UIDNEXT UIDVALIDITY UNSEEN "
	     "HIGHESTMODSEQ)\r\n",
	     "STATUS pipelined, with HIGHESTMODSEQ where CONDSTORE is "
	     "offered");
	feed(s, &r,
	     "* STATUS a (MESSAGES 3 UIDNEXT 12 UIDVALIDITY 7 UNSEEN 1)\r\n"
	     "m3 OK Status completed.\r\n"
	     "m4 NO Mailbox doesn't exist: gone\r\n",
	     bytewise, SEC);
	events(&r, "status a 7/12/3/1; mailbox_failed gone NO Mailbox "
		   "doesn't exist: gone; ready; ",
	       "status, refusal, ready");
	r.start = 10;
	session_examine(s, "a", 0, 2 * SEC);
	drain(s, &r);
	sent(&r, "m5 EXAMINE a\r\n", "EXAMINE on demand");
	feed(s, &r,
	     "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 12] x\r\n"
	     "m5 OK [READ-ONLY] done\r\n",
	     bytewise, 2 * SEC);
	sent(&r, "m6 UID FETCH 10:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n", "catch-up");
	feed(s, &r,
	     "* 3 FETCH (UID 11 FLAGS () ENVELOPE (NIL \"eleven\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm6 OK done\r\n"
	     "* 4 EXISTS\r\n",
	     bytewise, 2 * SEC);
	events(&r, "selected 7/12/3; fetched 11 eleven; batch_end; ready; ",
	       "caught up, then ready instead of IDLE, without waiting for "
	       "the CLOSE");
	sent(&r, "m7 CLOSE\r\n",
	     "then CLOSE (a STATUS of the selected mailbox may be stale); "
	     "the EXISTS fetches nothing");
	session_examine(s, "missing", 0, 3 * SEC);
	drain(s, &r);
	sent(&r, "m8 EXAMINE missing\r\n", "EXAMINE another, CLOSE unanswered");
	feed(s, &r, "m7 OK Close completed.\r\n", bytewise, 3 * SEC);
	events(&r, "", "the CLOSE's completion changes nothing");
	feed(s, &r, "m8 NO Mailbox doesn't exist: missing\r\n", bytewise,
	     3 * SEC);
	events(&r, "mailbox_failed missing NO Mailbox doesn't exist: "
		   "missing; ready; ",
	       "a refused EXAMINE costs only that mailbox");
	session_timeout(s, 3 * SEC + 1500 * SEC);
	drain(s, &r);
	sent(&r, "m9 NOOP\r\n", "keep-alive NOOP");
	feed(s, &r, "m9 OK NOOP completed.\r\n", bytewise, 1504 * SEC);
	events(&r, "ready; ", "ready after the NOOP");
	ok(!r.failed, "no failure (%s)", bytewise ? "bytewise" : "whole");
	session_free(&s);
}

/* Fetch mode with the owner's guess of where to start: the UID FETCH goes
 * in the same write as the EXAMINE. When selected() agrees, its answers
 * are the catch-up; when it does not (another start, the date scan, an
 * empty mailbox, a refused EXAMINE), they are ignored and the session goes
 * on as without the guess. */
static void
test_fetch_early(int bytewise)
{
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;

	o.mailbox = NULL;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, bytewise, 0);
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", bytewise, 0);
	events(&r, "ready; ", "ready after login");
	r.sent[0] = 0;

	r.start = 10;
	session_examine(s, "a", 10, SEC);
	drain(s, &r);
	sent(&r,
	     "m2 EXAMINE a\r\nm3 UID FETCH 10:* "
	     "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "the UID FETCH goes with the EXAMINE");
	feed(s, &r,
	     "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 12] x\r\n"
	     "m2 OK [READ-ONLY] done\r\n"
	     "* 3 FETCH (UID 11 FLAGS () ENVELOPE (NIL \"eleven\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm3 OK done\r\n",
	     bytewise, SEC);
	events(&r, "selected 7/12/3; fetched 11 eleven; batch_end; ready; ",
	       "selected() agreed: its answers are the catch-up");
	sent(&r, "m4 CLOSE\r\n", "then CLOSE, nothing else");
	feed(s, &r, "m4 OK Close completed.\r\n", bytewise, SEC);

	r.start = 12;
	session_examine(s, "b", 10, 2 * SEC);
	drain(s, &r);
	sent(&r,
	     "m5 EXAMINE b\r\nm6 UID FETCH 10:* "
	     "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "a guess selected() will not share");
	feed(s, &r,
	     "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 13] x\r\n"
	     "m5 OK [READ-ONLY] done\r\n",
	     bytewise, 2 * SEC);
	sent(&r, "m7 UID FETCH 12:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "the catch-up from where selected() said");
	feed(s, &r,
	     "* 2 FETCH (UID 11 FLAGS () ENVELOPE (NIL \"old\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\n"
	     "* 3 FETCH (UID 12 FLAGS () ENVELOPE (NIL \"twelve\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm6 OK done\r\n",
	     bytewise, 2 * SEC);
	events(&r, "selected 7/13/3; ",
	       "the early fetch's answers are ignored, even UID 12");
	feed(s, &r,
	     "* 3 FETCH (UID 12 FLAGS () ENVELOPE (NIL \"twelve\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm7 OK done\r\nm8 OK Close done\r\n",
	     bytewise, 2 * SEC);
	events(&r, "fetched 12 twelve; batch_end; ready; ",
	       "those of the catch-up are not");

	r.start = 0;
	r.by_date = true;
	r.dated_from = 2;
	session_examine(s, "c", 10, 3 * SEC);
	drain(s, &r);
	sent(&r,
	     "m8 CLOSE\r\n"
	     "m9 EXAMINE c\r\nm10 UID FETCH 10:* "
	     "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "a guess made before a UIDVALIDITY change");
	feed(s, &r,
	     "* 2 EXISTS\r\n* OK [UIDVALIDITY 8] x\r\n* OK [UIDNEXT 3] x\r\n"
	     "m9 OK [READ-ONLY] done\r\n",
	     bytewise, 3 * SEC);
	sent(&r, "m11 UID FETCH 1:* (UID FLAGS INTERNALDATE)\r\n",
	     "the date scan instead");
	feed(s, &r,
	     "* 2 FETCH (UID 2 FLAGS () ENVELOPE (NIL \"two\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm10 OK done\r\n"
	     "* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE "
	     "\"01-Jan-2026 00:00:00 +0000\")\r\n"
	     "* 2 FETCH (UID 2 FLAGS () INTERNALDATE "
	     "\"02-Jan-2026 00:00:00 +0000\")\r\nm11 OK done\r\n",
	     bytewise, 3 * SEC);
	events(&r,
	       "selected 8/3/2; dated 1 01-Jan-2026 00:00:00 +0000 seen; "
	       "dated 2 02-Jan-2026 00:00:00 +0000; dated_end; ",
	       "the early answers are ignored, the scan's are not");
	sent(&r, "m12 UID FETCH 2:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "then the fetch from where the scan said");
	feed(s, &r,
	     "* 2 FETCH (UID 2 FLAGS () INTERNALDATE "
	     "\"02-Jan-2026 00:00:00 +0000\" ENVELOPE (NIL \"two\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL))\r\nm12 OK done\r\nm13 OK Close done\r\n",
	     bytewise, 3 * SEC);
	events(&r, "fetched 2 two; batch_end; ready; ", "announced once");
	r.by_date = false;

	session_examine(s, "empty", 10, 4 * SEC);
	drain(s, &r);
	sent(&r,
	     "m13 CLOSE\r\n"
	     "m14 EXAMINE empty\r\nm15 UID FETCH 10:* "
	     "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "a guess for a mailbox that turns out empty");
	feed(s, &r,
	     "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 1] x\r\n"
	     "m14 OK [READ-ONLY] done\r\n"
	     "m15 BAD Error in IMAP command UID FETCH: Invalid uidset\r\n",
	     bytewise, 4 * SEC);
	events(&r, "selected 7/1/0; batch_end; ready; ",
	       "an empty mailbox: a refusal of the early fetch is no failure");
	sent(&r, "m16 CLOSE\r\n", "CLOSE as ever");

	session_examine(s, "missing", 10, 5 * SEC);
	drain(s, &r);
	sent(&r,
	     "m17 EXAMINE missing\r\n"
	     "m18 UID FETCH 10:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "EXAMINE and early fetch of a mailbox that is gone");
	feed(s, &r,
	     "m16 OK Close completed.\r\n"
	     "m17 NO Mailbox doesn't exist: missing\r\n"
	     "m18 BAD No mailbox selected\r\n",
	     bytewise, 5 * SEC);
	events(&r, "mailbox_failed missing NO Mailbox doesn't exist: "
		   "missing; ready; ",
	       "a refused EXAMINE costs only that mailbox, early fetch or "
	       "not");
	ok(!r.failed, "no failure (%s)", bytewise ? "bytewise" : "whole");

	/* A server that completes the fetch before its EXAMINE. */
	session_examine(s, "a", 10, 6 * SEC);
	drain(s, &r);
	sent(&r, "m19 EXAMINE a\r\nm20 UID FETCH 10:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "EXAMINE and early fetch");
	feed(s, &r, "m20 OK done\r\n", bytewise, 6 * SEC);
	events(&r,
	       "failed 0 server completed UID FETCH before the EXAMINE it "
	       "followed; ",
	       "a fetch completed before its EXAMINE ends the session");
	session_free(&s);
}

/* QRESYNC (RFC 7162), as Dovecot offers it: enabled after login, the
 * EXAMINE carries the UIDs the owner follows with the UIDVALIDITY and
 * HIGHESTMODSEQ it knew them at, and the server answers with what changed
 * (FETCH with UID and MODSEQ) and what went (VANISHED (EARLIER)): no
 * fetch of their flags, no catch-up fetch when nothing is new. While
 * watching, expunges come as VANISHED, which lower the message count. */
static void
test_qresync(int bytewise)
{
	struct rec r = {.known = {11, 12, 13, 20}, .n_known = 4, .modseq = 40};
	struct session *s = session_new(&opts, &cb, &r);
	const char *mode = bytewise ? "bytewise" : "whole";

	feed(s, &r, greeting, bytewise, 0);
	r.sent[0] = 0;
	feed(s, &r,
	     "m1 OK [CAPABILITY IMAP4rev1 IDLE CONDSTORE QRESYNC] ok\r\n",
	     bytewise, 0);
	sent(&r, "m2 ENABLE QRESYNC\r\n", "ENABLE QRESYNC after login");
	feed(s, &r, "* ENABLED QRESYNC\r\nm2 OK Enabled.\r\n", bytewise, 0);
	sent(&r, "m3 EXAMINE INBOX (QRESYNC (7 40 11:13,20))\r\n",
	     "EXAMINE with what the owner knows");
	feed(s, &r,
	     "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	     "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
	     "* 30 EXISTS\r\n* 0 RECENT\r\n"
	     "* OK [UIDVALIDITY 7] UIDs valid\r\n"
	     "* OK [UIDNEXT 22] Predicted next UID\r\n"
	     "* OK [HIGHESTMODSEQ 45] Highest\r\n"
	     "* VANISHED (EARLIER) 12\r\n"
	     "* 9 FETCH (UID 11 FLAGS (\\Seen) MODSEQ (44))\r\n"
	     "m3 OK [READ-ONLY] Examine completed.\r\n",
	     bytewise, 0);
	events(&r, "vanished 12:12; flags 9 uid 11 seen; "
		   "selected 7/22/30 modseq 45 qresync; ",
	       "gone and changed reported, then selected");
	sent(&r, "m4 IDLE\r\n", "nothing fetched: straight to IDLE");
	feed(s, &r, "+ idling\r\n", bytewise, SEC);
	events(&r, "idle; ", mode);
	feed(s, &r,
	     "* VANISHED 13,20\r\n"
	     "* 10 FETCH (UID 14 FLAGS (\\Seen) MODSEQ (46))\r\n",
	     bytewise, SEC);
	events(&r, "vanished 13:13,20:20; flags 10 uid 14 seen; ",
	       "VANISHED and a flag change while idle");
	is_int(session_exists(s), 28, "VANISHED lowered the count");
	sent(&r, "", "nothing sent for them");
	feed(s, &r, "* 29 EXISTS\r\n", bytewise, 2 * SEC);
	sent(&r, "DONE\r\nm5 UID FETCH 22:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "the next EXISTS is new mail");
	feed(s, &r,
	     "m4 OK Idle completed.\r\nm5 OK done\r\n+ idling\r\n"
	     "* VANISHED 1:4294967295\r\n",
	     bytewise, 2 * SEC);
	events(&r, "batch_end; idle; vanished 1:4294967295; ",
	       "a VANISHED of more than there is");
	is_int(session_exists(s), 0, "the count stops at 0");
	ok(!r.failed, "no failure (%s)", mode);
	session_free(&s);
}

/* The date scan once SEARCH UNSEEN answered: only the unseen messages
 * can be new, so only their dates are asked for (by sequence number, or
 * by UID under QRESYNC); none unseen, no scan; the SEARCH refused, all. */
static struct session *
unseen_logged_in(const struct session_cb *ucb, struct rec *r)
{
	struct session *s = session_new(&opts, ucb, r);

	feed(s, r, greeting, 0, 0);
	feed(s, r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", 0, 0);
	r->sent[0] = 0;
	return s;
}

static void
test_date_scan_unseen(void)
{
	static const char *const examined6 =
	    "* 6 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 9] x\r\n"
	    "m2 OK [READ-ONLY] done\r\n";
	struct session_cb ucb = cb;
	struct rec r = {.by_date = true, .dated_from = 6};
	struct session *s;

	ucb.unseen = c_unseen;
	s = unseen_logged_in(&ucb, &r);
	feed(s, &r, examined6, 0, 0);
	sent(&r, "", "the scan waits for the SEARCH's answer");
	feed(s, &r, "* SEARCH 2 4 5 6\r\nm3 OK done\r\n", 0, 0);
	sent(&r, "m4 FETCH 2,4:6 (UID FLAGS INTERNALDATE)\r\n",
	     "the dates of the unseen ones, by sequence number");
	feed(s, &r,
	     "* 2 FETCH (UID 2 FLAGS () INTERNALDATE \"01-Jan-2024 10:00:00 "
	     "+0000\")\r\n"
	     "* 6 FETCH (UID 6 FLAGS () INTERNALDATE \"02-Jan-2024 10:00:00 "
	     "+0000\")\r\nm4 OK done\r\n",
	     0, SEC);
	events(&r,
	       "selected 7/9/6; unseen 4; dated 2 01-Jan-2024 10:00:00 +0000; "
	       "dated 6 02-Jan-2024 10:00:00 +0000; dated_end; ",
	       "dated, then asked where to start");
	sent(&r, "m5 UID FETCH 6:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "the catch-up from there");
	ok(!r.failed, "unseen scan: no failure");
	session_free(&s);

	/* Nothing unseen: nothing to date. */
	r = (struct rec){.by_date = true, .dated_from = 9};
	s = unseen_logged_in(&ucb, &r);
	feed(s, &r, examined6, 0, 0);
	feed(s, &r, "* SEARCH\r\nm3 OK done\r\n", 0, 0);
	events(&r, "selected 7/9/6; unseen 0; dated_end; ",
	       "none unseen: straight to dated_end");
	sent(&r, "m4 IDLE\r\n", "none unseen: IDLE");
	session_free(&s);

	/* The SEARCH refused: every message. */
	r = (struct rec){.by_date = true, .dated_from = 9};
	s = unseen_logged_in(&ucb, &r);
	feed(s, &r, examined6, 0, 0);
	feed(s, &r, "m3 NO Search failed\r\n", 0, 0);
	sent(&r, "m4 UID FETCH 1:* (UID FLAGS INTERNALDATE)\r\n",
	     "SEARCH refused: all dated");
	session_free(&s);

	/* More than DATES_RANGES ranges (every other message unseen): all,
	 * rather than a command of kilobytes. */
	{
		char search[8192] = "* SEARCH";
		size_t len = strlen(search);

		for (unsigned i = 1; i <= 1001; i += 2)
			len += (size_t)snprintf(search + len,
						sizeof(search) - len, " %u", i);
		snprintf(search + len, sizeof(search) - len,
			 "\r\nm3 OK done\r\n");
		r = (struct rec){.by_date = true, .dated_from = 9};
		s = unseen_logged_in(&ucb, &r);
		feed(s, &r,
		     "* 1001 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n"
		     "* OK [UIDNEXT 1002] x\r\nm2 OK [READ-ONLY] done\r\n",
		     0, 0);
		feed(s, &r, search, 0, 0);
		sent(&r, "m4 UID FETCH 1:* (UID FLAGS INTERNALDATE)\r\n",
		     "501 ranges unseen: all dated");
		session_free(&s);
	}

	/* QRESYNC: the unseen set is of UIDs. */
	r = (struct rec){.by_date = true, .dated_from = 16};
	s = session_new(&opts, &ucb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r,
	     "m1 OK [CAPABILITY IMAP4rev1 IDLE QRESYNC ESEARCH] ok\r\n"
	     "* ENABLED QRESYNC\r\nm2 OK Enabled.\r\n",
	     0, 0);
	r.sent[0] = 0;
	feed(s, &r,
	     "* 4 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 16] x\r\n"
	     "m3 OK [READ-ONLY] done\r\n"
	     "* ESEARCH (TAG \"m4\") UID ALL 11,14:15\r\nm4 OK done\r\n",
	     0, 0);
	sent(&r, "m5 UID FETCH 11,14:15 (UID FLAGS INTERNALDATE)\r\n",
	     "QRESYNC: the unseen UIDs dated");
	session_free(&s);
}

/* The unseen count under QRESYNC: kept by UID (UID SEARCH), since
 * expunges come as VANISHED by UID. */
static void
test_unseen_qresync(void)
{
	struct session_cb ucb = cb;
	struct rec r = {0};
	struct session *s;

	ucb.unseen = c_unseen;
	s = session_new(&opts, &ucb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r,
	     "m1 OK [CAPABILITY IMAP4rev1 IDLE QRESYNC ESEARCH] ok\r\n"
	     "* ENABLED QRESYNC\r\nm2 OK Enabled.\r\n",
	     0, 0);
	ok(strstr(r.sent, "m3 EXAMINE INBOX\r\n"
			  "m4 UID SEARCH RETURN (ALL) UNSEEN\r\n") != NULL,
	   "UID SEARCH with QRESYNC on");
	feed(s, &r,
	     "* 4 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 16] x\r\n"
	     "m3 OK [READ-ONLY] done\r\n",
	     0, 0);
	r.events[0] = 0;
	feed(s, &r,
	     "* ESEARCH (TAG \"m4\") UID ALL 11,14:15\r\nm4 OK done\r\n"
	     "+ idling\r\n",
	     0, 0);
	events(&r, "unseen 3; idle; ", "the count from UIDs");
	feed(s, &r, "* 3 FETCH (UID 14 FLAGS (\\Seen) MODSEQ (9))\r\n", 0,
	     SEC);
	events(&r, "unseen 2; flags 3 uid 14 seen; ", "read: by its UID");
	feed(s, &r, "* VANISHED 12:13,15\r\n", 0, SEC);
	events(&r, "unseen 1; vanished 12:13,15:15; ",
	       "VANISHED of an unseen one and of others");
	feed(s, &r, "* VANISHED 1:4294967295\r\n", 0, SEC);
	events(&r, "unseen 0; vanished 1:4294967295; ", "all gone");
	ok(!r.failed, "no failure");
	session_free(&s);
}

/* CONDSTORE without QRESYNC (Gmail): enabled after login, the EXAMINE
 * says HIGHESTMODSEQ but takes no parameter; the flags of the known UIDs
 * are fetched (whole: CHANGEDSINCE would leave out the unchanged ones,
 * and which were deleted would not be told), then the catch-up. */
static void
test_condstore_only(int bytewise)
{
	struct rec r = {.known = {11, 13}, .n_known = 2, .modseq = 40};
	struct session *s = session_new(&opts, &cb, &r);

	r.start = 14;
	feed(s, &r, greeting, bytewise, 0);
	r.sent[0] = 0;
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE CONDSTORE] ok\r\n",
	     bytewise, 0);
	sent(&r, "m2 ENABLE CONDSTORE\r\n", "ENABLE CONDSTORE after login");
	feed(s, &r, "* ENABLED CONDSTORE\r\nm2 OK Enabled.\r\n", bytewise, 0);
	sent(&r, "m3 EXAMINE INBOX\r\n", "a plain EXAMINE");
	feed(s, &r,
	     "* 12 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 16] x\r\n"
	     "* OK [HIGHESTMODSEQ 45] x\r\nm3 OK [READ-ONLY] done\r\n",
	     bytewise, 0);
	events(&r, "selected 7/16/12 modseq 45; ", "selected, with modseq");
	sent(&r, "m4 UID FETCH 11,13 (UID FLAGS)\r\n",
	     "the flags of the known UIDs");
	feed(s, &r,
	     "* 9 FETCH (UID 11 FLAGS (\\Seen) MODSEQ (44))\r\n"
	     "* 10 FETCH (UID 13 FLAGS () MODSEQ (3))\r\n"
	     "m4 OK Fetch completed.\r\n",
	     bytewise, 0);
	events(&r, "flags 9 uid 11 seen; flags 10 uid 13; ",
	       "reported through flags()");
	sent(&r, "m5 UID FETCH 14:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "then the catch-up");
	feed(s, &r,
	     "* 12 FETCH (UID 15 FLAGS () ENVELOPE (NIL \"new\" NIL NIL NIL "
	     "NIL NIL NIL NIL NIL) MODSEQ (45))\r\nm5 OK done\r\n",
	     bytewise, 0);
	events(&r, "fetched 15 new; batch_end; ", "caught up");
	sent(&r, "m6 IDLE\r\n", "IDLE");
	ok(!r.failed, "no failure (%s)", bytewise ? "bytewise" : "whole");
	session_free(&s);
}

/* A session in fetch mode logged in with capabilities caps (tags m1). */
static struct session *
fetch_ready(struct rec *r, const char *caps)
{
	struct session_opts o = opts;
	struct session *s;

	o.mailbox = NULL;
	s = session_new(&o, &cb, r);
	feed(s, r, greeting, 0, 0);
	feed(s, r, caps, 0, 0);
	r->sent[0] = 0;
	events(r, "ready; ", "ready after login");
	return s;
}

/* LIST in fetch mode: LIST-EXTENDED with RETURN (SPECIAL-USE STATUS)
 * where offered (lines as Dovecot 2.3 answers), plain LISTs where not. */
static void
test_list(int bytewise)
{
	static const char *const pats[] = {"*", "Lists/%", "Caf\xc3\xa9"};
	static const char *const many[] = {"a", "b", "c", "d", "e",
					   "f", "g", "h", "i*"};
	const char *mode = bytewise ? "bytewise" : "whole";
	struct rec r = {0};
	struct session *s;

	s = fetch_ready(&r, "m1 OK [CAPABILITY IMAP4rev1 IDLE LIST-EXTENDED "
			    "LIST-STATUS SPECIAL-USE] ok\r\n");
	ok(session_list_status(s), "LIST-STATUS offered");
	session_list(s, pats, 3, true, SEC);
	drain(s, &r);
	sent(&r,
	     "m2 LIST \"\" (\"*\" \"Lists/%\" Caf&AOk-) RETURN (SPECIAL-USE "
	     "STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN))\r\n",
	     "one LIST-EXTENDED command, names in modified UTF-7");
	feed(s, &r,
	     "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
	     "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 9 UNSEEN 1)\r\n"
	     "* LIST (\\Noselect \\HasChildren) \"/\" Lists\r\n"
	     "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
	     "* LIST () NIL \"Caf&AOk-\"\r\n"
	     "* STATUS \"Caf&AOk-\" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 4 "
	     "UNSEEN 0)\r\n"
	     /* Dovecot 2.3's NOTIFY names it in UTF-8. */
	     "* STATUS {5}\r\nCaf\xc3\xa9 (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 4 "
	     "UNSEEN 1)\r\n"
	     "* STATUS {4}\r\nca\xff\xfe (MESSAGES 1 UIDNEXT 2)\r\n"
	     "* STATUS {4}\r\nc\xc2\x85" "d (MESSAGES 1 UIDNEXT 2)\r\n"
	     "* LIST () \"/\" \"bad&-name&\"\r\n",
	     bytewise, SEC);
	{
		/* A NUL in a literal: not "in". */
		static const char nul[] =
			"* LIST () \"/\" {5}\r\nin\0ox\r\n"
			"* STATUS {5}\r\nin\0ox (MESSAGES 1 UIDNEXT 2)\r\n";

		session_feed(s, nul, sizeof(nul) - 1, SEC);
	}
	feed(s, &r, "m2 OK List completed.\r\n", bytewise, SEC);
	events(&r,
	       "listed INBOX / (\\HasNoChildren); status INBOX 9/3/2/1; "
	       "listed Lists / (\\Noselect \\HasChildren); "
	       "listed Trash / (\\HasNoChildren \\Trash); "
	       "listed Caf\xc3\xa9 0 (); status Caf\xc3\xa9 4/1/0/0; "
	       "status Caf\xc3\xa9 4/2/1/1; list_end ok; ready; ",
	       "each mailbox, its STATUS, the end, ready (names in UTF-8 "
	       "taken; names neither modified UTF-7 nor UTF-8, with a C1 "
	       "control, or with a NUL, left out)");
	session_list(s, pats, 1, false, 2 * SEC);
	drain(s, &r);
	sent(&r, "m3 LIST \"\" (\"*\") RETURN (SPECIAL-USE)\r\n",
	     "without status: RETURN (SPECIAL-USE) only");
	feed(s, &r, "m3 NO [CANNOT] no such thing\r\n", bytewise, 2 * SEC);
	events(&r, "list_end refused; ready; ", "a refused LIST: reported");
	ok(!r.failed, "LIST-EXTENDED: no failure (%s)", mode);
	session_free(&s);

	/* Neither LIST-EXTENDED nor SPECIAL-USE: a LIST per pattern. */
	memset(&r, 0, sizeof(r));
	s = fetch_ready(&r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n");
	ok(!session_list_status(s), "no LIST-STATUS");
	session_list(s, pats, 2, true, SEC);
	drain(s, &r);
	sent(&r, "m2 LIST \"\" \"*\"\r\nm3 LIST \"\" \"Lists/%\"\r\n",
	     "plain LISTs, pipelined, no RETURN");
	feed(s, &r,
	     "* LIST (\\HasNoChildren) \".\" INBOX\r\nm2 OK done\r\n"
	     "* LIST (\\HasNoChildren) \".\" Lists.x\r\nm3 OK done\r\n",
	     bytewise, SEC);
	events(&r, "listed INBOX . (\\HasNoChildren); "
		   "listed Lists.x . (\\HasNoChildren); list_end ok; ready; ",
	       "both LISTs, then one end");
	session_list(s, many, 9, false, 2 * SEC);
	drain(s, &r);
	sent(&r, "m4 LIST \"\" \"*\"\r\n", "many patterns: one LIST of *");
	ok(!r.failed, "plain LIST: no failure (%s)", mode);
	session_free(&s);
}

/* More others than a NOTIFY SET may name (Dovecot: 100): the first 100
 * are named, and the personal namespace is followed. After pushes
 * (Dovecot 2.3 pushes nothing more once its list index log rotated),
 * NOTIFY is set again once they have been quiet, 5 s apart at least. */
static void
test_notify_many(void)
{
	static char names[101][16];
	static const char *many[101];
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;
	uint64_t acc, t;
	char *p;

	for (int i = 0; i < 101; i++) {
		snprintf(names[i], sizeof(names[i]), "F%d", i);
		many[i] = names[i];
	}
	o.notify = true;
	o.others = many;
	o.n_others = 101;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	r.sent[0] = 0;
	feed(s, &r, notify_caps, 0, 0);
	ok(strstr(r.sent, "F98 F99) (MessageNew MessageExpunge FlagChange)) "
			  "(personal (MessageNew MessageExpunge "
			  "FlagChange))\r\n") &&
		   !strstr(r.sent, "F100"),
	   "101 others: 100 named, the personal namespace followed");
	feed(s, &r, "m2 OK NOTIFY completed.\r\n", 0, 0);
	feed(s, &r, examined, 0, 0);
	feed(s, &r, "m3 OK [READ-ONLY] Examine completed.\r\n+ idling\r\n", 0,
	     0);
	r.sent[0] = 0;
	is_int(session_deadline(s, &acc), 1500 * SEC, "idle: the refresh");

	/* Nothing while nothing is pushed; a push at 1 s: set again 5 s
	 * after the last NOTIFY SET (at 0). */
	feed(s, &r, "* STATUS F1 (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n", 0, SEC);
	t = session_deadline(s, &acc);
	ok(t == 5 * SEC && acc <= SEC / 10,
	   "a push: NOTIFY set again 5 s after the last (%llu)",
	   (unsigned long long)t);
	/* More at 4.8 s: put off until they have been quiet 0.5 s. */
	feed(s, &r, "* STATUS F2 (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n", 0,
	     4800 * SEC / 1000);
	t = session_deadline(s, &acc);
	is_int(t, 5300 * SEC / 1000, "more pushes put it off to 0.5 s quiet");
	session_timeout(s, t - 1);
	drain(s, &r);
	sent(&r, "", "not before");
	session_timeout(s, t);
	drain(s, &r);
	sent(&r, "DONE\r\n", "quiet: out of IDLE");
	feed(s, &r, "m4 OK Idle completed.\r\n", 0, t);
	p = strstr(r.sent, "m6 NOTIFY SET STATUS");
	ok(!strncmp(r.sent, "m5 NOTIFY NONE\r\n", 16) && p &&
		   strstr(p, "(personal (MessageNew") &&
		   strstr(p, "\r\nm7 IDLE\r\n"),
	   "NOTIFY NONE, SET again, IDLE");
	r.sent[0] = 0;
	feed(s, &r, "m5 OK done.\r\n", 0, t);
	feed(s, &r,
	     "* STATUS F1 (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
	     "m6 OK NOTIFY completed.\r\n+ idling\r\n",
	     0, t);
	is_int(session_deadline(s, &acc), t + 1500 * SEC,
	       "its own STATUS answers are no push: the refresh");
	/* A push 10 s later: the gap has passed, 0.5 s of quiet. */
	feed(s, &r, "* STATUS F3 (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n", 0,
	     t + 10 * SEC);
	is_int(session_deadline(s, &acc), t + 10500 * SEC / 1000,
	       "later: set again after 0.5 s of quiet");
	ok(!r.failed, "no failure");
	session_free(&s);
}

/* Fetch mode with NOTIFY (one connection watches the account): NOTIFY SET
 * of the others alone, with no selected filter, then ready at once; its
 * own STATUS answers are no push; a STATUS push while ready sets NOTIFY
 * again once quiet, 5 s after the last; quiet, NOTIFY SET again at
 * idle_timeout instead of a NOOP; an EXISTS while ready (nothing
 * selected) changes nothing; set_others sets it again at once. */
static void
test_fetch_notify(void)
{
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;
	uint64_t acc, t;
	const char *set = "NOTIFY SET STATUS (mailboxes (a Lists/x Caf&AOk-) "
			  "(MessageNew MessageExpunge FlagChange)) (personal "
			  "(MessageNew MessageExpunge FlagChange))\r\n";
	char want[512];

	o.mailbox = NULL;
	o.notify = true;
	o.others = others;
	o.n_others = 3;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	r.sent[0] = 0;
	feed(s, &r, notify_caps, 0, 0);
	snprintf(want, sizeof(want), "m2 %s", set);
	sent(&r, want, "NOTIFY SET of the others, no selected filter");
	events(&r, "ready; ", "ready at once");
	feed(s, &r,
	     "* STATUS a (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 5 UNSEEN 0)\r\n"
	     "m2 OK NOTIFY completed.\r\n",
	     0, 0);
	events(&r, "status a 5/1/0/0; notify on; ", "its STATUS, notify on");
	is_int(r.asked, 0, "NOTIFY's, not asked");
	is_int(r.notify_set, 1, "NOTIFY SET's answer");
	is_int(session_deadline(s, &acc), 1500 * SEC,
	       "its own STATUS answers are no push: NOTIFY SET again at "
	       "idle_timeout");

	feed(s, &r, "* 3 EXISTS\r\n", 0, SEC / 2);
	is_int(session_deadline(s, &acc), 1500 * SEC,
	       "an EXISTS while ready changes nothing");
	feed(s, &r, "* STATUS a (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n", 0,
	     SEC);
	events(&r, "status a ?/2/1/1; ", "a push");
	is_int(r.notify_set, 1, "a push is not NOTIFY SET's answer");
	t = session_deadline(s, &acc);
	ok(t == 5 * SEC && acc <= SEC / 10,
	   "a push while ready: NOTIFY set again 5 s after the last (%llu)",
	   (unsigned long long)t);
	r.sent[0] = 0;
	session_timeout(s, t);
	drain(s, &r);
	snprintf(want, sizeof(want), "m3 NOTIFY NONE\r\nm4 %s", set);
	sent(&r, want, "then NOTIFY NONE and SET again, still ready");
	/* Meanwhile the owner's work goes out behind it. */
	session_examine(s, "a", 2, t);
	drain(s, &r);
	sent(&r, "m5 EXAMINE a\r\nm6 UID FETCH 2:* "
		 "(UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "an EXAMINE goes out behind it");
	/* In Dovecot's order: NOTIFY SET's answers before NOTIFY NONE's
	 * completion. */
	feed(s, &r,
	     "* STATUS a (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 5 UNSEEN 1)\r\n"
	     "m3 OK done.\r\n"
	     "m4 OK NOTIFY completed.\r\n",
	     0, t);
	events(&r, "status a 5/2/1/1; notify on; ", "its answers");
	is_int(r.asked, 0, "NOTIFY's answers, ahead of the EXAMINE: not asked");
	is_int(r.notify_set, 2,
	       "NOTIFY SET's answer, also before NOTIFY NONE's completion "
	       "(trial AH)");
	r.sent[0] = 0;
	feed(s, &r,
	     "* 1 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n* OK [UIDNEXT 2] x\r\n"
	     "m5 OK [READ-ONLY] Examine completed.\r\n"
	     "* 1 FETCH (UID 1 FLAGS ())\r\nm6 OK Fetch completed.\r\n",
	     0, t + SEC);
	sent(&r, "m7 CLOSE\r\n", "caught up: CLOSE");
	is_int(session_deadline(s, &acc), t + 1 * SEC + 30 * SEC,
	       "its answer due");
	feed(s, &r, "m7 OK Close completed.\r\n", 0, t + 2 * SEC);
	is_int(session_deadline(s, &acc), t + 1 * SEC + 1500 * SEC,
	       "then NOTIFY SET again at idle_timeout");
	session_status(s, "a", t + 3 * SEC);
	feed(s, &r,
	     "* STATUS a (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 5 UNSEEN 1)\r\n"
	     "m8 OK STATUS completed.\r\n",
	     0, t + 3 * SEC);
	is_int(r.asked, 1, "a STATUS check's answer: asked");
	is_int(r.notify_set, 2, "nor is it NOTIFY SET's");

	session_free(&s);
	memset(&r, 0, sizeof(r));
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r, notify_caps, 0, 0);
	feed(s, &r, "m2 OK NOTIFY completed.\r\n", 0, 0);
	r.sent[0] = 0;
	session_set_others(s, others, 2, SEC);
	drain(s, &r);
	sent(&r,
	     "m3 NOTIFY NONE\r\nm4 NOTIFY SET STATUS (mailboxes (a Lists/x) "
	     "(MessageNew MessageExpunge FlagChange)) (personal (MessageNew "
	     "MessageExpunge FlagChange))\r\n",
	     "new others while ready: NOTIFY SET again at once");
	ok(!r.failed, "no failure");
	session_free(&s);
}

/* A selected mailbox other than INBOX under NOTIFY: its changes are
 * written to Dovecot's list index, so they set NOTIFY again too, but
 * Dovecot's "* OK Still here" in IDLE changes nothing and does not. */
static void
test_notify_keepalive(void)
{
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;
	uint64_t acc, t;

	o.mailbox = "Lists/a";
	o.others = others;
	o.n_others = 1;
	s = notify_to_idle(o, &r);
	feed(s, &r, "* OK Still here\r\n", 0, 10 * SEC);
	is_int(session_deadline(s, &acc), 1500 * SEC,
	       "\"* OK Still here\" in IDLE: no NOTIFY SET again");
	feed(s, &r, "* 1 RECENT\r\n", 0, 20 * SEC);
	t = session_deadline(s, &acc);
	is_int(t, 20500 * SEC / 1000,
	       "a change in the selected mailbox (not INBOX): set again "
	       "after 0.5 s of quiet");
	ok(!r.failed, "no failure");
	session_free(&s);
}

/* NOTIFY with MailboxName: a mailbox created, renamed or deleted comes as
 * a pushed LIST; new others are set again with NOTIFY SET between two
 * IDLEs. */
static void
test_notify_mailbox_names(int bytewise)
{
	static const char *const more[] = {"a", "C"};
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;

	o.notify = true;
	o.others = others;
	o.n_others = 1;
	o.mailbox_names = true;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, bytewise, 0);
	r.sent[0] = 0;
	feed(s, &r, notify_caps, bytewise, 0);
	sent(&r,
	     "m2 NOTIFY SET STATUS (selected (MessageNew (UID FLAGS ENVELOPE) "
	     "MessageExpunge FlagChange)) (mailboxes (a) (MessageNew "
	     "MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge "
	     "FlagChange MailboxName))\r\n"
	     "m3 EXAMINE INBOX\r\n",
	     "MailboxName for the others and the rest of personal");
	feed(s, &r, "m2 OK NOTIFY completed.\r\n", bytewise, 0);
	feed(s, &r, examined, bytewise, 0);
	feed(s, &r, "m3 OK [READ-ONLY] Examine completed.\r\n+ idling\r\n",
	     bytewise, 0);
	r.sent[0] = 0;
	r.events[0] = 0;
	/* As Dovecot 2.3 pushes them. */
	feed(s, &r,
	     "* LIST () \"/\" C\r\n"
	     "* LIST (\\NonExistent) \"/\" a\r\n"
	     "* LIST () \"/\" B2 (\"OLDNAME\" (B))\r\n",
	     bytewise, SEC);
	events(&r,
	       "pushed listed C / (); pushed listed a / (\\NonExistent); "
	       "pushed listed B2 / (); ",
	       "created, deleted, renamed: pushed LISTs");
	sent(&r, "", "nothing sent for them");
	session_set_others(s, more, 2, 2 * SEC);
	drain(s, &r);
	sent(&r, "DONE\r\n", "new others: out of IDLE");
	feed(s, &r, "m4 OK Idle completed.\r\n", bytewise, 2 * SEC);
	sent(&r,
	     "m5 NOTIFY NONE\r\n"
	     "m6 NOTIFY SET STATUS (selected (MessageNew (UID FLAGS ENVELOPE) "
	     "MessageExpunge FlagChange)) (mailboxes (a C) (MessageNew "
	     "MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge "
	     "FlagChange MailboxName))\r\n"
	     "m7 IDLE\r\n",
	     "NOTIFY NONE and SET again, then IDLE, in one write");
	feed(s, &r,
	     "m5 OK NOTIFY completed.\r\n"
	     "* STATUS C (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7 UNSEEN 0)\r\n"
	     "m6 OK NOTIFY completed.\r\n+ idling\r\n",
	     bytewise, 2 * SEC);
	events(&r, "status C 7/1/0/0; notify on; idle; ",
	       "the new one's STATUS, notify on again, idle");
	ok(!r.failed, "no failure (%s)", bytewise ? "bytewise" : "whole");
	session_free(&s);

	/* Without NOTIFY set, new others only wait for the next login. */
	memset(&r, 0, sizeof(r));
	s = session_new(&opts, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	feed(s, &r, notify_caps, 0, 0);
	feed(s, &r, examined, 0, 0);
	feed(s, &r, "m2 OK [READ-ONLY] Examine completed.\r\n+ idling\r\n",
	     0, 0);
	r.sent[0] = 0;
	session_set_others(s, more, 2, SEC);
	drain(s, &r);
	sent(&r, "", "no NOTIFY: nothing sent");
	session_free(&s);
}

/* Fetch mode on a server without CONDSTORE: no ENABLE, and the STATUS
 * checks do not ask for HIGHESTMODSEQ. */
static void
test_fetch_mode_plain(void)
{
	struct session_opts o = opts;
	struct rec r = {0};
	struct session *s;

	o.mailbox = NULL;
	s = session_new(&o, &cb, &r);
	feed(s, &r, greeting, 0, 0);
	r.sent[0] = 0;
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", 0, 0);
	events(&r, "ready; ", "ready after login, no ENABLE");
	session_status(s, "a", SEC);
	drain(s, &r);
	sent(&r, "m2 STATUS a (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)\r\n",
	     "STATUS without HIGHESTMODSEQ");
	session_free(&s);
}

/* Neither extension: no ENABLE; the known UIDs' flags are fetched; an
 * EXISTS while that fetch runs is fetched after it, though the catch-up
 * had nothing to fetch. */
static void
test_neither(void)
{
	struct rec r = {.known = {5}, .n_known = 1};
	struct session *s = session_new(&opts, &cb, &r);

	feed(s, &r, greeting, 0, 0);
	r.sent[0] = 0;
	feed(s, &r, "m1 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n", 0, 0);
	sent(&r, "m2 EXAMINE INBOX\r\n", "no ENABLE");
	feed(s, &r,
	     "* 9 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 10] x\r\n"
	     "* OK [HIGHESTMODSEQ 45] x\r\n* VANISHED (EARLIER) 1:*\r\n"
	     "* VANISHED 1:*\r\n* 3 FETCH (UID 5 FLAGS (\\Seen))\r\n"
	     "m2 OK [READ-ONLY] done\r\n",
	     0, 0);
	events(&r, "selected 7/10/9; ",
	       "a server that sends QRESYNC's responses unasked is not "
	       "believed: no modseq, nothing vanished, no flags before "
	       "selected");
	is_int(session_exists(s), 9, "nor does VANISHED lower the count");
	sent(&r, "m3 UID FETCH 5 (UID FLAGS)\r\n", "the known UID's flags");
	feed(s, &r, "* 10 EXISTS\r\nm3 OK Fetch completed.\r\n", 0, 0);
	events(&r, "", "UID 5 not returned: nothing reported (gone)");
	sent(&r, "m4 UID FETCH 10:* (UID FLAGS INTERNALDATE ENVELOPE)\r\n",
	     "the message that came meanwhile is fetched");
	ok(!r.failed, "no failure");
	session_free(&s);
}

int
main(void)
{
	test_main_path(0);
	test_main_path(1);
	test_fetch_edges();
	test_unseen();
	test_unseen_qresync();
	test_date_scan_unseen();
	test_date_scan();
	test_refusals();
	test_polling();
	test_no_uidnext();
	test_timeout();
	test_postpone();
	test_no_greeting();
	test_garbage();
	test_idle_never_done();
	test_login_refusals();
	test_fetch_over_limits(0);
	test_fetch_over_limits(1);
	test_trace_lines();
	test_notify(0);
	test_notify(1);
	test_notify_refused();
	test_notify_no_fetch();
	test_notify_postponed();
	test_notify_over_limits();
	test_notify_many();
	test_notify_keepalive();
	test_fetch_mode(0);
	test_fetch_mode(1);
	test_fetch_early(0);
	test_fetch_early(1);
	test_qresync(0);
	test_qresync(1);
	test_condstore_only(0);
	test_condstore_only(1);
	test_neither();
	test_fetch_mode_plain();
	test_fetch_notify();
	test_list(0);
	test_list(1);
	test_notify_mailbox_names(0);
	test_notify_mailbox_names(1);
	return tap_done();
}
