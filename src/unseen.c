#include "unseen.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* The index of seq in u->seq, or where it would go; *found_r says which. */
static size_t
find(const struct unseen *u, uint32_t seq, bool *found_r)
{
	size_t lo = 0, hi = u->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u->seq[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found_r = lo < u->n && u->seq[lo] == seq;
	return lo;
}

void
unseen_reset(struct unseen *u, const uint32_t *seqs, size_t n)
{
	size_t out = 0;

	if (n > u->cap) {
		u->cap = n;
		u->seq = xrealloc(u->seq, n * sizeof(*u->seq));
	}
	if (n) {
		memcpy(u->seq, seqs, n * sizeof(*seqs));
		qsort(u->seq, n, sizeof(*u->seq), cmp_u32);
	}
	for (size_t i = 0; i < n; i++)
		if (u->seq[i] && (!out || u->seq[i] != u->seq[out - 1]))
			u->seq[out++] = u->seq[i];
	u->n = out;
	u->known = true;
}

bool
unseen_reset_ranges(struct unseen *u, const struct codec_range *v, size_t n)
{
	uint64_t total = 0;
	uint32_t *seqs;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t lo = v[i].lo < v[i].hi ? v[i].lo : v[i].hi;
		uint32_t hi = v[i].lo < v[i].hi ? v[i].hi : v[i].lo;

		total += (uint64_t)hi - lo + 1;
	}
	if (total > UNSEEN_MAX) {
		unseen_forget(u);
		return false;
	}
	seqs = xmalloc((total ? total : 1) * sizeof(*seqs));
	for (size_t i = 0; i < n; i++) {
		uint32_t lo = v[i].lo < v[i].hi ? v[i].lo : v[i].hi;
		uint32_t hi = v[i].lo < v[i].hi ? v[i].hi : v[i].lo;

		for (uint64_t x = lo; x <= hi; x++)
			seqs[k++] = (uint32_t)x;
	}
	unseen_reset(u, seqs, k);
	free(seqs);
	return true;
}

bool
unseen_set(struct unseen *u, uint32_t seq, bool unseen)
{
	bool found;
	size_t i;

	if (!u->known || !seq)
		return false;
	i = find(u, seq, &found);
	if (found == unseen)
		return false;
	if (found) {
		memmove(&u->seq[i], &u->seq[i + 1],
			(u->n - i - 1) * sizeof(*u->seq));
		u->n--;
		return true;
	}
	if (u->n == u->cap) {
		u->cap = u->cap ? 2 * u->cap : 16;
		u->seq = xrealloc(u->seq, u->cap * sizeof(*u->seq));
	}
	memmove(&u->seq[i + 1], &u->seq[i], (u->n - i) * sizeof(*u->seq));
	u->seq[i] = seq;
	u->n++;
	return true;
}

bool
unseen_expunge(struct unseen *u, uint32_t seq)
{
	bool found, changed;
	size_t i;

	if (!u->known || !seq)
		return false;
	changed = unseen_set(u, seq, false);
	i = find(u, seq, &found);
	for (; i < u->n; i++)
		u->seq[i]--;
	return changed;
}

void
unseen_forget(struct unseen *u)
{
	u->n = 0;
	u->known = false;
}

void
unseen_free(struct unseen *u)
{
	freep(&u->seq);
	u->n = u->cap = 0;
	u->known = false;
}
