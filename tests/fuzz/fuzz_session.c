/* libFuzzer target for the session state machine: arbitrary server bytes,
 * in chunks whose sizes come from the input, after an optional scripted
 * login so that the deeper states (EXAMINE, IDLE, FETCH) are reached. The
 * session must never crash, leak or loop, whatever the server says; what it
 * queues to send is drained and checked to be whole command lines. Bit 4
 * of the first byte has the owner ask for the date scan (a UIDVALIDITY
 * change), whose INTERNALDATEs go through the parser the watcher uses.
 * Bit 5 asks for NOTIFY (the script then offers it), bit 6 runs the
 * session in fetch mode, where each ready() checks two mailboxes with
 * STATUS, examines one or lists patterns (with LIST-STATUS), in turn.
 * Bit 7 turns on what came later: the unseen count (SEARCH UNSEEN after
 * EXAMINE) and, with NOTIFY, MailboxName events (each pushed LIST sets
 * new others; what is listed goes through mboxlist's matching, as the
 * account's). With bit 1 it feeds the LIST-EXTENDED script in fetch
 * mode; without, a script that offers and enables QRESYNC: the owner
 * always knows three UIDs (known()), so the EXAMINE with QRESYNC,
 * VANISHED and the fetch of their flags are reached. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mboxlist.h"
#include "session.h"

static int failed, by_date;
static struct session *cur;
static unsigned readies;
static uint64_t cur_now;

static void
starttls(void *ud)
{
	(void)ud;
}

static uint32_t
selected(void *ud, const struct session_selected *sel, bool *by_date_r)
{
	(void)ud;
	*by_date_r = by_date;
	/* Catch up from a little before UIDNEXT, to exercise the fetch. */
	return sel->uidnext > 3 ? sel->uidnext - 3 : 1;
}

static size_t
known(void *ud, uint32_t *uids, size_t max, uint32_t *uidvalidity_r,
      uint64_t *modseq_r)
{
	static const uint32_t mine[] = {2, 3, 7};

	(void)ud;
	if (max < 3)
		abort();
	memcpy(uids, mine, sizeof(mine));
	*uidvalidity_r = 9;
	*modseq_r = 5;
	return 3;
}

static void
vanished(void *ud, const struct codec_seqset *set)
{
	(void)ud;
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].lo > set->v[i].hi)
			abort();
}

static uint32_t dated_min;

static void
dated(void *ud, const struct codec_fetch *f)
{
	int64_t t;

	(void)ud;
	if (!(f->have & CODEC_FETCH_UID) ||
	    !(f->have & CODEC_FETCH_INTERNALDATE))
		abort();
	if (!f->internaldate.nil &&
	    codec_internaldate(f->internaldate.ptr, f->internaldate.len, &t) &&
	    (!dated_min || f->uid < dated_min))
		dated_min = f->uid;
}

static uint32_t
dated_end(void *ud)
{
	(void)ud;
	return dated_min;
}

static void
fetched(void *ud, const struct codec_fetch *f)
{
	(void)ud;
	/* Touch what a watcher reads. */
	if (f->envelope.subject.ptr && strlen(f->envelope.subject.ptr) >
					   f->envelope.subject.len)
		abort();
}

static void
batch_end(void *ud)
{
	(void)ud;
}

static void
flags(void *ud, const struct codec_fetch *f)
{
	(void)ud;
	(void)f;
}

static void
expunge(void *ud, uint32_t seq)
{
	(void)ud;
	(void)seq;
}

static void
idle(void *ud)
{
	(void)ud;
}

static void
fail_cb(void *ud, enum session_fail why, const char *msg)
{
	(void)ud;
	(void)why;
	(void)msg;
	failed = 1;
}

static void
notify(void *ud, bool on)
{
	(void)ud;
	(void)on;
}

static void
status(void *ud, const char *name, const struct session_status *st)
{
	(void)ud;
	/* An item is 0 unless the response held it. */
	if (strlen(name) > 65536 ||
	    (!(st->have & SESSION_ST_UIDNEXT) && st->uidnext) ||
	    (!(st->have & SESSION_ST_UNSEEN) && st->unseen))
		abort();
}

static void
ready(void *ud)
{
	static const char *const patterns[] = {"*", "Lists/%", "INBOX"};

	(void)ud;

	if (readies % 3 == 2) {
		session_list(cur, patterns, readies % 2 ? 3 : 1, true, cur_now);
	} else if (readies % 3 == 1) {
		session_examine(cur, "Lists/x", readies % 2 ? 5 : 0, cur_now);
	} else {
		session_status(cur, "a", cur_now);
		session_status(cur, "Caf\xc3\xa9", cur_now);
	}
	readies++;
}

static const char *const others2[] = {"a", "b", "c"};

static void
listed(void *ud, const char *name, char delimiter,
       const struct codec_strlist *attrs, bool pushed)
{
	(void)ud;
	if (strlen(name) > 65536)
		abort();
	mboxlist_attrs(attrs);
	mboxlist_match("*x%y", name, delimiter);
	mboxlist_match("inbox/%", name, delimiter);
	if (pushed)
		session_set_others(cur, others2, 1 + strlen(name) % 3,
				   cur_now);
}

static void
list_end(void *ud, bool ok)
{
	(void)ud;
	(void)ok;
}

static void
mailbox_failed(void *ud, const char *name, const char *msg)
{
	(void)ud;
	(void)name;
	(void)msg;
}

/* What the counting does with hostile SEARCH, FETCH and EXPUNGE
 * responses is for ASan and UBSan to judge. */
static void
unseen(void *ud, uint32_t count)
{
	(void)ud;
	(void)count;
}

/* Without unseen (no SEARCH UNSEEN: the scripts' tags hold); with it when
 * the first byte has 128 set. */
static const struct session_cb cb = {
	starttls, selected, fetched, batch_end, flags,
	expunge,  idle,     fail_cb, dated,     dated_end,
	notify,   status,   ready,   mailbox_failed,
	known,    vanished, NULL,    listed,
	list_end, NULL,
};

static const char *const others[] = {"a", "b"};

static const char script[] =
	"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ AUTH=PLAIN SASL-IR] hi\r\n"
	"m1 OK [CAPABILITY IMAP4rev1 IDLE] in\r\n"
	"* 5 EXISTS\r\n* OK [UIDVALIDITY 9] x\r\n* OK [UIDNEXT 9] x\r\n"
	"m2 OK [READ-ONLY] x\r\n";
/* With NOTIFY: its reply, then EXAMINE's. */
static const char script_notify[] =
	"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ AUTH=PLAIN SASL-IR] hi\r\n"
	"m1 OK [CAPABILITY IMAP4rev1 IDLE NOTIFY] in\r\n"
	"* STATUS a (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)\r\n"
	"m2 OK NOTIFY done\r\n"
	"* 5 EXISTS\r\n* OK [UIDVALIDITY 9] x\r\n* OK [UIDNEXT 9] x\r\n"
	"m3 OK [READ-ONLY] x\r\n";

/* With QRESYNC: ENABLE's reply, then an EXAMINE's with what changed. */
static const char script_qresync[] =
	"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ AUTH=PLAIN SASL-IR] hi\r\n"
	"m1 OK [CAPABILITY IMAP4rev1 IDLE CONDSTORE QRESYNC] in\r\n"
	"* ENABLED QRESYNC\r\nm2 OK x\r\n"
	"* 5 EXISTS\r\n* OK [UIDVALIDITY 9] x\r\n* OK [UIDNEXT 9] x\r\n"
	"* OK [HIGHESTMODSEQ 8] x\r\n* VANISHED (EARLIER) 3\r\n"
	"* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))\r\n"
	"m3 OK [READ-ONLY] x\r\n";
/* Fetch mode with the LIST extensions: ready() lists at the third. */
static const char script_list[] =
	"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ AUTH=PLAIN SASL-IR] hi\r\n"
	"m1 OK [CAPABILITY IMAP4rev1 IDLE LIST-EXTENDED LIST-STATUS "
	"SPECIAL-USE NOTIFY] in\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session_opts o = {
		.username = "u",
		.password = "p",
		.mailbox = size && data[0] & 64 ? NULL : "INBOX",
		.notify = size && data[0] & 32,
		.others = others,
		.n_others = 2,
		.mailbox_names = size && data[0] & 128,
		.starttls = size && data[0] & 1,
		.idle_timeout = 1500,
		.poll_interval = 60,
		.command_timeout = 30,
	};
	struct session *s;
	uint64_t now = 0;
	size_t pos = 1;

	if (!size)
		return 0;
	failed = 0;
	by_date = data[0] & 16;
	dated_min = 0;
	readies = 0;
	cur_now = now;
	if (data[0] & 128) {
		struct session_cb ucb = cb;

		ucb.unseen = unseen;
		s = cur = session_new(&o, &ucb, NULL);
	} else {
		s = cur = session_new(&o, &cb, NULL);
	}
	session_connected(s, now);
	if (data[0] & 128 && !(data[0] & 2))
		session_feed(s, script_qresync, sizeof(script_qresync) - 1,
			     now);
	else if (data[0] & 2 && data[0] & 128 && !o.mailbox)
		session_feed(s, script_list, sizeof(script_list) - 1, now);
	else if (data[0] & 2 && o.notify)
		session_feed(s, script_notify, sizeof(script_notify) - 1, now);
	else if (data[0] & 2)
		session_feed(s, script, sizeof(script) - 1, now);
	while (pos < size && !failed) {
		size_t chunk = 1 + data[pos++] % 64;
		struct codec_buf *out;
		uint64_t acc;

		if (chunk > size - pos)
			chunk = size - pos;
		session_feed(s, (const char *)data + pos, chunk, now);
		pos += chunk;
		out = session_output(s);
		if (out->len && out->data[out->len - 1] != '\n')
			abort(); /* a command cut in the middle */
		codec_buf_consume(out, out->len);
		if (data[0] & 4) {
			now += 31 * 1000000ULL;
			cur_now = now;
			if (session_deadline(s, &acc) <= now)
				session_timeout(s, now);
		}
		if (data[0] & 8)
			session_tls_ready(s, now);
	}
	session_logout(s, now);
	session_free(&s);
	return 0;
}
