/* copies: see copies.h.
 *
 * The key is SHA-256 of Message-ID, sender address and subject (each
 * followed by a NUL), cut to 16 bytes: a fixed size whatever the headers
 * hold, and a sender cannot make another message's key without its
 * Message-ID, address and subject. The digest and its context are made
 * once: OpenSSL 3 looks the algorithm up at every EVP_sha256() init, a
 * tenth of mailwatch's own user time in a burst of mail. The entries are
 * a ring, searched from the newest. */
#include "copies.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KEY_LEN 16

struct entry {
	unsigned char key[KEY_LEN];
	char *mailbox; /* owned; NULL: free slot */
	uint32_t uidvalidity, uid;
};

struct copies {
	/* Either NULL (OpenSSL had no SHA-256, or no memory): no keys. */
	EVP_MD *sha256;
	EVP_MD_CTX *ctx;
	struct entry ring[COPIES_MAX];
	size_t next; /* the slot written next: the oldest when full */
};

struct copies *
copies_new(void)
{
	struct copies *c = xcalloc(1, sizeof(*c));

	c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	c->ctx = EVP_MD_CTX_new();
	return c;
}

void
copies_free(struct copies **c)
{
	if (!*c)
		return;
	for (size_t i = 0; i < COPIES_MAX; i++)
		free((*c)->ring[i].mailbox);
	EVP_MD_CTX_free((*c)->ctx);
	EVP_MD_free((*c)->sha256);
	free(*c);
	*c = NULL;
}

/* ev's key; false when it has none (no Message-ID) or hashing failed. */
static bool
make_key(struct copies *c, const struct mail_event *ev,
	 unsigned char key[KEY_LEN])
{
	const char *parts[] = {ev->message_id, ev->from_address, ev->subject};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	bool ok;

	if (!ev->message_id || !*ev->message_id || !c->sha256 || !c->ctx)
		return false;
	ok = EVP_DigestInit_ex2(c->ctx, c->sha256, NULL);
	for (size_t i = 0; ok && i < sizeof(parts) / sizeof(*parts); i++) {
		const char *p = parts[i] ? parts[i] : "";

		ok = EVP_DigestUpdate(c->ctx, p, strlen(p) + 1);
	}
	ok = ok && EVP_DigestFinal_ex(c->ctx, md, &len) && len >= KEY_LEN;
	if (ok)
		memcpy(key, md, KEY_LEN);
	return ok;
}

bool
copies_check(struct copies *c, const struct mail_event *ev,
	     struct copy_origin *orig)
{
	unsigned char key[KEY_LEN];
	struct entry *e;

	if (!make_key(c, ev, key))
		return false;
	for (size_t k = 1; k <= COPIES_MAX; k++) {
		e = &c->ring[(c->next + COPIES_MAX - k) % COPIES_MAX];
		if (!e->mailbox)
			break;
		if (memcmp(e->key, key, KEY_LEN))
			continue;
		/* The same message seen again (a fetch done over): no copy. */
		if (e->uid == ev->uid && e->uidvalidity == ev->uidvalidity &&
		    !strcmp(e->mailbox, ev->mailbox))
			return false;
		*orig = (struct copy_origin){e->mailbox, e->uidvalidity,
					     e->uid};
		return true;
	}
	e = &c->ring[c->next];
	c->next = (c->next + 1) % COPIES_MAX;
	free(e->mailbox);
	memcpy(e->key, key, KEY_LEN);
	e->mailbox = xstrdup(ev->mailbox);
	e->uidvalidity = ev->uidvalidity;
	e->uid = ev->uid;
	return false;
}
