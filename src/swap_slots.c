/* SPDX-License-Identifier: MIT */
/*
 * swap_slots.c - the slot allocator of the swap file, and the per-slot
 * checksums and test flags. Calls swap_file.c to reserve and punch a
 * cluster's blocks; liburcu's lfstack for the punch queue.
 *
 * The file is cut into clusters of 64 slots (256 KiB, the kernel's swap
 * cluster). Each cluster has a bitmap word of used slots and a state:
 *
 *   FREE --take (freemap CAS)--> OWNED --full / ctx gone--> DETACHED
 *     ^                            ^                            |
 *     |                            +--take (state CAS, scan)----+
 *   punched <--maintain/store-- PUNCH <--last slot released-----+
 *
 * A context allocates from its OWNED cluster alone: setting a bit needs no
 * CAS loop, since only the owner sets bits (releases only clear them).
 * Free clusters sit in an atomic bitmap (lock-free take and put). A
 * release that empties a DETACHED cluster moves it to PUNCH and pushes it
 * on a liburcu lfstack (push is lock-free and signal-safe); the next
 * swb_store or swb_maintain pops the whole stack, punches each cluster and
 * returns it to the free bitmap. An OWNED cluster that empties stays with
 * its owner until detached; the detach checks for emptiness (see
 * slots_cluster_detach for the Dekker pairing with slots_free).
 *
 * Concurrency: take/detach/alloc/reap in normal context (alloc by the
 * owning context); slots_free from any context, signal-safe, lock-free.
 */
#include <errno.h>
#include <stdlib.h>
#include <urcu/compiler.h>

#include "base.h"
#include "swap_internal.h"

/* ======================================================================
 * The free bitmap: lock-free, normal context.
 * ====================================================================== */

static void slots_freemap_put(struct slots *sl, uint32_t k)
{
	/* release: pairs with the acquire in slots_freemap_take (punch done first) */
	atomic_fetch_or_explicit(&sl->freemap[k / 64], 1ull << (k % 64), memory_order_release);
}

static int64_t slots_freemap_take(struct slots *sl)
{
	uint32_t n = sl->nfreewords;
	/* relaxed: a search hint; pairs with nothing */
	uint32_t start = atomic_load_explicit(&sl->free_hint, memory_order_relaxed) % n;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t w = (start + i) % n;
		/* relaxed: only a guess; the CAS below acquires */
		uint64_t v = atomic_load_explicit(&sl->freemap[w], memory_order_relaxed);

		while (v) {
			uint64_t bit = v & -v;

			/* acquire: pairs with the release in slots_freemap_put */
			if (atomic_compare_exchange_weak_explicit(&sl->freemap[w], &v, v & ~bit,
					memory_order_acquire, memory_order_relaxed)) {
				/* relaxed: a search hint */
				atomic_store_explicit(&sl->free_hint, w, memory_order_relaxed);
				return (int64_t)w * 64 + __builtin_ctzll(bit);
			}
		}
	}
	return -1;
}

/* ======================================================================
 * Clusters. Normal context (the owning context, or a reaper).
 * ====================================================================== */

/* Punch the clusters that emptied and give them back to the free pool.
 * Normal context; concurrent callers get disjoint sets (pop_all is one
 * xchg). *nret: the number returned to the pool. Returns 0 or -errno of a
 * failed punch (the cluster is returned to the pool anyway). */
static int slots_reap_count(struct swb *s, unsigned *nret)
{
	struct slots *sl = &s->sl;
	struct cds_lfs_head *head;
	struct cds_lfs_node *node, *next;
	int err = 0;

	*nret = 0;
	if (cds_lfs_empty(&sl->punchq))
		return 0;
	head = __cds_lfs_pop_all(&sl->punchq);
	tsan_acquire(&sl->punchq_sync);
	/* not cds_lfs_for_each_safe: it takes &head->node of a NULL head
	 * when a concurrent reaper emptied the stack first (UBSan) */
	for (node = head ? &head->node : NULL; node; node = next) {
		struct cluster *cl = caa_container_of(node, struct cluster, punch);
		uint32_t k = (uint32_t)(cl - sl->cl);
		int r;

		next = node->next;      /* before the cluster can be queued again */
		r = s->nbd ? swnbd_cluster_trim(s->nbd, k) : swfile_cluster_punch(&s->f, k);
		if (r > 0)
			/* relaxed: a counter for swb_usage */
			atomic_fetch_add_explicit(&sl->punched, 1, memory_order_relaxed);
		else if (r < 0 && !err)
			err = r;
		/* relaxed: published by slots_freemap_put's release */
		atomic_store_explicit(&cl->state, CL_FREE, memory_order_relaxed);
		slots_freemap_put(sl, k);
		(*nret)++;
	}
	return err;
}

int slots_reap(struct swb *s)
{
	unsigned reaped;

	return slots_reap_count(s, &reaped);
}

/* The owner gives its cluster up (it is full, or the context goes). */
static void slots_cluster_detach(struct slots *sl, uint32_t k)
{
	struct cluster *cl = &sl->cl[k];
	uint32_t st = CL_DETACHED;

	/* seq_cst store then load: pairs with slots_free's seq_cst fetch_and
	 * then CAS on state (Dekker): if we see slots in use, the releaser of
	 * the last one sees DETACHED; if both see each other, the CAS picks
	 * one, so an emptied cluster is queued exactly once */
	atomic_store(&cl->state, CL_DETACHED);
	if (atomic_load(&cl->used) == 0 &&
	    atomic_compare_exchange_strong(&cl->state, &st, CL_PUNCH)) {
		tsan_release(&sl->punchq_sync);
		cds_lfs_push(&sl->punchq, &cl->punch);
	}
}

static int64_t slots_detached_take(struct slots *sl)
{
	uint32_t n = sl->nclusters;
	/* relaxed: a search hint; pairs with nothing */
	uint32_t start = atomic_load_explicit(&sl->scan_hint, memory_order_relaxed) % n;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = (start + i) % n;
		struct cluster *cl = &sl->cl[k];
		uint32_t st = CL_DETACHED;

		/* relaxed: a pre-check; the CAS below decides */
		if (atomic_load_explicit(&cl->state, memory_order_relaxed) != CL_DETACHED ||
		    !~atomic_load_explicit(&cl->used, memory_order_relaxed))
			continue;
		/* acquire: pairs with the seq_cst store in slots_cluster_detach */
		if (atomic_compare_exchange_strong_explicit(&cl->state, &st, CL_OWNED,
				memory_order_acquire, memory_order_relaxed)) {
			/* relaxed: a search hint */
			atomic_store_explicit(&sl->scan_hint, k + 1, memory_order_relaxed);
			return k;
		}
	}
	return -1;
}

/* Give context c a cluster with free slots: a free one (blocks reserved
 * with fallocate), else one from the punch queue, else a detached one with
 * holes. Returns 0 or -ENOSPC / -errno of fallocate. */
static int slots_cluster_get(struct swb_ctx *c)
{
	struct swb *s = c->s;
	struct slots *sl = &s->sl;
	unsigned reaped;
	int64_t k;

	k = slots_freemap_take(sl);
	if (k < 0) {
		slots_reap_count(s, &reaped);
		if (reaped)
			k = slots_freemap_take(sl);
	}
	if (k >= 0) {
		int err = swfile_cluster_reserve(&s->f, (uint32_t)k);

		if (err) {
			slots_freemap_put(sl, (uint32_t)k);
			return err;
		}
		/* relaxed: only we hold it (slots_freemap_take acquired it) */
		atomic_store_explicit(&sl->cl[k].state, CL_OWNED, memory_order_relaxed);
		c->cl = (uint32_t)k;
		return 0;
	}
	k = slots_detached_take(sl);
	if (k < 0)
		return -ENOSPC;
	c->cl = (uint32_t)k;
	return 0;
}

/* ======================================================================
 * Slots. alloc: normal context, the owning context; free: any context,
 * signal-safe, lock-free.
 * ====================================================================== */

int64_t slots_alloc(struct swb_ctx *c)
{
	struct slots *sl = &c->s->sl;

	for (;;) {
		if (c->cl != UINT32_MAX) {
			struct cluster *cl = &sl->cl[c->cl];
			/* acquire: pairs with the release in slots_free, so the last
			 * reader of a freed slot is done before we overwrite it */
			uint64_t u = atomic_load_explicit(&cl->used, memory_order_acquire);

			if (~u) {
				unsigned b = (unsigned)__builtin_ctzll(~u);
				int64_t slot = (int64_t)c->cl * CL_SLOTS + b;

				/* relaxed: only the owner sets bits; ordered by the load */
				u = atomic_fetch_or_explicit(&cl->used, 1ull << b, memory_order_relaxed);
				if (!~(u | 1ull << b)) {
					/* full: detach now, so that it can be punched
					 * as soon as its slots are released */
					slots_cluster_detach(sl, c->cl);
					c->cl = UINT32_MAX;
				}
				return slot;
			}
			slots_cluster_detach(sl, c->cl);
			c->cl = UINT32_MAX;
		}
		int err = slots_cluster_get(c);

		if (err)
			return err;
	}
}

void slots_free(struct swb *s, uint64_t slot)
{
	struct slots *sl = &s->sl;
	struct cluster *cl = &sl->cl[slot / CL_SLOTS];
	uint64_t bit = 1ull << (slot % CL_SLOTS);
	uint32_t st = CL_DETACHED;
	/* seq_cst: pairs with slots_cluster_detach (see there); also the
	 * release that slots_alloc's acquire load pairs with */
	uint64_t old = atomic_fetch_and(&cl->used, ~bit);

	if (!(old & bit))
		return;                     /* double release: ignore */
	if (old == bit && atomic_compare_exchange_strong(&cl->state, &st, CL_PUNCH)) {
		tsan_release(&sl->punchq_sync);
		cds_lfs_push(&sl->punchq, &cl->punch);
	}
}

void slots_ctx_release(struct swb_ctx *c)
{
	if (c->cl != UINT32_MAX)
		slots_cluster_detach(&c->s->sl, c->cl);
	c->cl = UINT32_MAX;
}

/* ======================================================================
 * Setup, teardown, counters (normal context).
 * ====================================================================== */

int slots_init(struct swb *s, uint64_t nclusters)
{
	struct slots *sl = &s->sl;

	sl->nclusters = (uint32_t)nclusters;
	sl->nslots = nclusters * CL_SLOTS;
	sl->nfreewords = (uint32_t)((nclusters + 63) / 64);
	__cds_lfs_init(&sl->punchq);
	sl->cl = slab_calloc(nclusters, sizeof(*sl->cl));
	sl->freemap = slab_calloc(sl->nfreewords, sizeof(*sl->freemap));
	sl->csum = slab_calloc(sl->nslots, sizeof(*sl->csum));
	sl->inject = slab_calloc(sl->nslots, sizeof(*sl->inject));
	if (!sl->cl || !sl->freemap || !sl->csum || !sl->inject)
		return -ENOMEM;
	for (uint32_t k = 0; k < nclusters; k++)
		slots_freemap_put(sl, k);
	return 0;
}

void slots_fini(struct swb *s)
{
	slab_free(s->sl.cl);
	slab_free(s->sl.freemap);
	slab_free(s->sl.csum);
	slab_free(s->sl.inject);
}

void slots_usage(struct slots *sl, struct swb_usage *u)
{
	/* relaxed: a snapshot of counters, pairing with nothing */
	u->file_slots_total = sl->nslots;
	for (uint32_t k = 0; k < sl->nclusters; k++)
		u->file_slots_used += (uint64_t)__builtin_popcountll(
			atomic_load_explicit(&sl->cl[k].used, memory_order_relaxed));
	u->punched_clusters = atomic_load_explicit(&sl->punched, memory_order_relaxed);
}
