/* SPDX-License-Identifier: MIT */
/*
 * swap_same.c - same-filled pages: a page whose 8-byte words are all equal
 * is stored as its word, in the handle's payload or in an insert-only
 * table of SWB_SAME_TABLE words (layout in swap_backend.h). No I/O, no
 * memory per page. Calls nothing in the backend; xxh3 for the table hash.
 *
 * Concurrency: same_put claims table entries with a CAS (normal context);
 * same_get and same_release are async-signal-safe and lock-free.
 */
#include <errno.h>
#include <stdatomic.h>
#include <xxhash.h>

#include "swap_internal.h"

#define SAME_TABLE_BIT (1ull << 61)  /* payload: an index into the table */
#define SAME_PROBES 64u

static bool same_page_word(const void *page, uint64_t *word)
{
	const uint64_t *w = page;
	uint64_t v = w[0];

	for (unsigned i = 1; i < PAGE / 8; i++)
		if (w[i] != v)
			return false;
	*word = v;
	return true;
}

static int same_encode(struct same_table *t, uint64_t word, uint64_t *payload)
{
	uint64_t sx = (uint64_t)((int64_t)(word << 3) >> 3);
	unsigned i = (unsigned)(XXH3_64bits(&word, sizeof(word)) % SWB_SAME_TABLE);

	if (sx == word) {
		*payload = word & (SAME_TABLE_BIT - 1);
		return 0;
	}
	for (unsigned n = 0; n < SAME_PROBES; n++, i = (i + 1) % SWB_SAME_TABLE) {
		/* acquire: pairs with the release that made the entry ready */
		uint8_t st = atomic_load_explicit(&t->state[i], memory_order_acquire);

		if (st == 0) {
			/* seq_cst CAS: claims the entry against other stores */
			if (!atomic_compare_exchange_strong(&t->state[i], &st, 1))
				continue;
			/* relaxed: published by the release store below */
			atomic_store_explicit(&t->word[i], word, memory_order_relaxed);
			/* release: pairs with the acquire above and in same_decode */
			atomic_store_explicit(&t->state[i], 2, memory_order_release);
			st = 2;
		}
		/* relaxed: ordered after the acquire load of state */
		if (st == 2 && atomic_load_explicit(&t->word[i], memory_order_relaxed) == word) {
			*payload = SAME_TABLE_BIT | i;
			return 0;
		}
	}
	return -ENOSPC;                     /* table crowded: store it elsewhere */
}

/* Signal-safe. */
static int same_decode(struct same_table *t, uint64_t payload, uint64_t *word)
{
	unsigned i = (unsigned)(payload & (SWB_SAME_TABLE - 1));

	if (!(payload & SAME_TABLE_BIT)) {
		*word = (uint64_t)((int64_t)(payload << 3) >> 3);
		return 0;
	}
	/* acquire: pairs with the release in same_encode */
	if ((payload & ~SAME_TABLE_BIT) >= SWB_SAME_TABLE ||
	    atomic_load_explicit(&t->state[i], memory_order_acquire) != 2)
		return -EINVAL;
	*word = atomic_load_explicit(&t->word[i], memory_order_relaxed);
	return 0;
}

int same_put(struct same_table *t, const void *page, uint64_t *payload)
{
	uint64_t word;
	int err;

	if (!same_page_word(page, &word))
		return -E2BIG;
	err = same_encode(t, word, payload);
	if (!err)
		/* relaxed: a counter for swb_usage */
		atomic_fetch_add_explicit(&t->live, 1, memory_order_relaxed);
	return err;
}

int same_get(struct same_table *t, uint64_t payload, void *dst)
{
	uint64_t word;

	if (same_decode(t, payload, &word))
		return -EINVAL;
	for (unsigned w = 0; w < PAGE / 8; w++)
		((uint64_t *)dst)[w] = word;
	return 0;
}

void same_release(struct same_table *t)
{
	/* relaxed: a counter for swb_usage */
	atomic_fetch_sub_explicit(&t->live, 1, memory_order_relaxed);
}

void same_usage(struct same_table *t, struct swb_usage *u)
{
	/* relaxed: a counter, pairing with nothing */
	int64_t live = atomic_load_explicit(&t->live, memory_order_relaxed);

	u->same_filled = live > 0 ? (uint64_t)live : 0;
}
