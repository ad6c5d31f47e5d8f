/* SPDX-License-Identifier: MIT */
/*
 * region.h - regions and the RCU-read region tree (region.c).
 */
#ifndef UFP_REGION_H
#define UFP_REGION_H

#include <stdatomic.h>
#include "rcu.h"
#include "base.h"
#include "stats.h"

struct ufp_pager;
struct ufp_tstats;

/* ======================================================================
 * Regions and the region tree (region.c).
 * ====================================================================== */

#define UFP_RF_ALLOC   (1u << 0)  /* an allocator object: never merges */
#define UFP_RF_HOLE    (1u << 1)  /* placeholder for a foreign unmap */

/*
 * A region: a contiguous, page-aligned range with one set of attributes.
 * Invariants (checked by region_tree_check in debug builds):
 *  - start < end, both page aligned, inside the arena;
 *  - regions in the tree never overlap; a tree node's key == region start
 *    for every region reachable from the current root;
 *  - start/end/prot/flags change only while the region is write-locked
 *    (lock_seq == pager.lock.seq), under the pager write lock;
 *  - a detached region is never linked again and is freed only after an
 *    RCU grace period, with no reader holding it.
 */
struct ufp_region {
	_Atomic uintptr_t start;
	_Atomic uintptr_t end;
	_Atomic int prot;
	unsigned flags;
	size_t alloc_size;             /* requested size of allocator objects */
	struct ufp_pager *pager;
	_Atomic bool detached;
	uint64_t id;                   /* unique in the process, never reused */

	/* lock word and sequence: on their own line, the only fault-path
	 * writes to a region apart from its own counters */
	_Atomic uint32_t readers ufp_cacheline_aligned;
	_Atomic uint32_t lock_seq;
	/* readahead state: sequential detection (region state, not a counter) */
	_Atomic uintptr_t last_fault ufp_cacheline_aligned;
	_Atomic uint32_t ra_pages;
	/* counts spilled from per-thread slots (rare: region_count) */
	_Atomic uint64_t spill[RC_NR];
	struct rcu_head rcu;
	struct ufp_region *free_next;  /* writer: detached in this update */
};

struct rtree_node;

struct region_tree {
	struct rtree_node *_Atomic root;  /* rcu_assign_pointer / rcu_dereference */
	uint64_t gen;                     /* update generation (writer only) */
	struct rtree_node *retired;       /* old nodes of this update */
	struct ufp_region *detached;      /* regions detached in this update */
	size_t count;
};

void region_tree_init(struct region_tree *t);
/* Region containing addr (or NULL). Caller: RCU read side or pager lock. */
struct ufp_region *region_tree_lookup(struct region_tree *t, uintptr_t addr);
/* First region with start >= addr / last region with start < addr. */
struct ufp_region *region_tree_next(struct region_tree *t, uintptr_t addr);
struct ufp_region *region_tree_prev(struct region_tree *t, uintptr_t addr);
/* Writer side, pager write lock held. Keyed by region start at the time
 * of the call. Changes are visible to readers only after commit. */
int region_tree_insert(struct region_tree *t, struct ufp_region *r);
int region_tree_erase(struct region_tree *t, uintptr_t key);
void region_tree_commit(struct region_tree *t);
void region_tree_destroy(struct region_tree *t, void (*fn)(struct ufp_region *));
/* Debug: check order, balance and keys; returns the region count. */
size_t region_tree_check(struct region_tree *t);
/* Iterate in address order (writer side or pager lock held). */
void region_tree_walk(struct region_tree *t,
		      void (*fn)(struct ufp_region *, void *), void *arg);

struct ufp_region *region_alloc(struct ufp_pager *p, uintptr_t start,
				uintptr_t end, int prot, unsigned flags);
/* Detach: mark, unlink from the tree (caller commits), defer the free. */
void region_detach(struct ufp_pager *p, struct ufp_region *r);
void region_free_now(struct ufp_region *r);
/* Count event k on r for this thread. Caller holds r (region read lock,
 * or the pager lock). Async-signal-safe. */
void region_count(struct ufp_pager *p, struct ufp_tstats *ts, struct ufp_region *r,
		  enum ufp_rcount k);
/* A thread leaves p: spill its slots into their regions. No lock held. */
void region_counts_spill(struct ufp_pager *p, struct ufp_tstats *ts);
/* Readers: a snapshot of every thread's live slots (stats_lock inside),
 * then the sum for one region. Normal context. */
struct rc_snap {
	uint64_t rid;
	uint64_t n[RC_NR];
};
size_t region_counts_snapshot(struct ufp_pager *p, struct rc_snap **out);
void region_counts_sum(const struct ufp_region *r, const struct rc_snap *s, size_t n,
		       uint64_t out[RC_NR]);

static inline uintptr_t region_start(const struct ufp_region *r)
{
	return atomic_load_explicit(&r->start, memory_order_relaxed);
}
static inline uintptr_t region_end(const struct ufp_region *r)
{
	return atomic_load_explicit(&r->end, memory_order_relaxed);
}
static inline int region_prot(const struct ufp_region *r)
{
	return atomic_load_explicit(&r->prot, memory_order_relaxed);
}

#endif /* UFP_REGION_H */
