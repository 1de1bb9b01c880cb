/* copies: a message with the same Message-ID, sender address and subject
 * is a copy of the first, in any mailbox, and says where that was; one
 * that differs in any of the three is not; one without a Message-ID never
 * is; the oldest is forgotten beyond COPIES_MAX. */
#include <stdio.h>

#include "copies.h"
#include "tap.h"

static struct mail_event
message(const char *mailbox, uint32_t uid, const char *id, const char *from,
	const char *subject)
{
	return (struct mail_event){.account = "a",
				   .mailbox = mailbox,
				   .uid = uid,
				   .uidvalidity = 7,
				   .from_address = (char *)from,
				   .subject = (char *)subject,
				   .message_id = (char *)id};
}

static void
test_copies(void)
{
	struct copies *c = copies_new();
	struct copy_origin o = {0};
	struct mail_event ev = message("INBOX", 3, "<1@x>", "a@x", "hi");

	ok(!copies_check(c, &ev, &o), "first: not a copy");
	ev = message("Label", 9, "<1@x>", "a@x", "hi");
	ok(copies_check(c, &ev, &o), "same three in another mailbox: a copy");
	is_str(o.mailbox, "INBOX", "copy: of the one in INBOX");
	is_int(o.uid, 3, "copy: its UID");
	is_int(o.uidvalidity, 7, "copy: its UIDVALIDITY");
	ev = message("INBOX", 4, "<1@x>", "a@x", "hi");
	ok(copies_check(c, &ev, &o), "again in the same mailbox: a copy");
	ev = message("INBOX", 3, "<1@x>", "a@x", "hi");
	ok(!copies_check(c, &ev, &o), "the very message again: not a copy");

	ev = message("INBOX", 5, "<1@x>", "a@x", "hi again");
	ok(!copies_check(c, &ev, &o), "another subject: not a copy");
	ev = message("INBOX", 6, "<1@x>", "b@x", "hi");
	ok(!copies_check(c, &ev, &o), "another sender: not a copy");
	ev = message("INBOX", 7, "<2@x>", "a@x", "hi");
	ok(!copies_check(c, &ev, &o), "another Message-ID: not a copy");
	/* The NUL after each part keeps "ab" + "c" apart from "a" + "bc". */
	ev = message("INBOX", 8, "<1@x>", "a@xh", "i");
	ok(!copies_check(c, &ev, &o), "parts moved across: not a copy");

	ev = message("INBOX", 10, "", "a@x", "none");
	ok(!copies_check(c, &ev, &o), "no Message-ID: not a copy");
	ev.uid = 11;
	ok(!copies_check(c, &ev, &o), "no Message-ID, again: still not");
	copies_free(&c);
	ok(!c, "freed");
}

static void
test_forgotten(void)
{
	struct copies *c = copies_new();
	struct copy_origin o;
	struct mail_event ev;
	char id[32];
	int copies = 0;

	for (unsigned i = 0; i <= COPIES_MAX; i++) {
		snprintf(id, sizeof(id), "<%u@x>", i);
		ev = message("INBOX", i + 1, id, "a@x", "s");
		copies += copies_check(c, &ev, &o);
	}
	is_int(copies, 0, "forgotten: %u different messages", COPIES_MAX + 1);
	snprintf(id, sizeof(id), "<%u@x>", 1);
	ev = message("Label", 1, id, "a@x", "s");
	ok(copies_check(c, &ev, &o) && o.uid == 2,
	   "forgotten: the second is still known");
	snprintf(id, sizeof(id), "<%u@x>", 0);
	ev = message("Label", 2, id, "a@x", "s");
	ok(!copies_check(c, &ev, &o), "forgotten: the first is not");
	copies_free(&c);
}

int
main(void)
{
	test_copies();
	test_forgotten();
	return tap_done();
}
