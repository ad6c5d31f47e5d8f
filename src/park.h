/* SPDX-License-Identifier: MIT */
/*
 * park.h - the parked (soft inactive) list: resident pages the clock chose
 * as victims, moved out of the arena into a ring of parked slots (park.c).
 */
#ifndef UFP_PARK_H
#define UFP_PARK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "base.h"

struct ufp_pager;
struct ufp_tstats;

#define UFP_PARK_BATCH 32           /* pages parked or drained per step */

/*
 * A parked page is still in RAM, and still counts against the budget;
 * only its arena pte is gone, so the next access faults and the page is
 * moved straight back (UFFDIO_MOVE, no copy): that fault is the reference
 * the clock cannot see otherwise (no accessed bit without page_idle). The
 * ring is a FIFO: pages are parked at head; eviction stores the ones that
 * reach the tail, i.e. that stayed parked while `pages` others were parked
 * after them. The area sits in the staging mapping (registered with the
 * staging userfaultfd, which has no events), so moves in and out need no
 * registration and no discard: a slot a page left is a hole again.
 *
 * Slot states: ring[k] = page index + 1, or 0 (empty, or its page moved
 * back). A slot whose ring entry names a page that is no longer PARKED at
 * k (discarded, or brought back by a copy) is stale: its content, if any,
 * is dropped when the tail passes it. Slots between tail and head are
 * never handed out again before the tail passes them, so a page is never
 * parked into a slot that still holds something.
 */
struct pager_park {
	uintptr_t area;                  /* `pages` slots in the staging mapping */
	uint32_t pages;                  /* slots (0: parking off) */
	_Atomic uint64_t *ring;          /* slot -> page index + 1 (0: none) */
	_Atomic uint32_t *at;            /* page index -> slot (while PARKED) */
	pthread_mutex_t lock;            /* LL_PARK: head, tail, and every move
					  * into or out of the ring by eviction */
	uint64_t head, tail;             /* under lock; slot = value % pages */
	_Atomic uint64_t used;           /* head - tail, for lock-free readers */
};

/* park.c */
/* Size the ring (budget_pages * park_pct / 100, whole eviction batches),
 * map the ring and the per-page slot array. The area itself is the
 * caller's (the staging mapping, after the staging sets). 0 or -errno. */
int park_init(struct ufp_pager *p, uint64_t budget_pages, uintptr_t area);
void park_fini(struct ufp_pager *p);
/* Pages the ring can take now (a hint), and slot k's address. */
uint32_t park_room(struct ufp_pager *p);
uintptr_t park_slot_addr(struct ufp_pager *p, uint32_t k);
/* Eviction (normal context): lock the ring; reserve up to n contiguous
 * slots at head (never across the ring's end; 0 when full); release. */
void park_lock(struct ufp_pager *p);
void park_unlock(struct ufp_pager *p);
uint32_t park_reserve(struct ufp_pager *p, uint32_t n, uint32_t *first);
/* Record page i as parked in slot k (lock held; before the entry says so). */
void park_record(struct ufp_pager *p, uint32_t k, size_t i);
/* The oldest up to n slots (contiguous, lock held): *first and the count. */
uint32_t park_oldest(struct ufp_pager *p, uint32_t n, uint32_t *first);
/* Page index parked in slot k, or SIZE_MAX (lock held). */
size_t park_slot_page(struct ufp_pager *p, uint32_t k);
/* Slot k was emptied out of turn (PAGEOUT): a hole now (lock held). */
void park_forget(struct ufp_pager *p, uint32_t k);
/* The tail passed n slots, emptied by the caller (lock held). */
void park_advance_tail(struct ufp_pager *p, uint32_t n);
/*
 * Bring the parked page of entry i back to dst (the arena page, or the new
 * place of an mremap). The caller owns the entry (it set INFLIGHT on a
 * PARKED entry) and holds what keeps dst's region from changing. Moves it
 * (UFFDIO_MOVE); where the move is refused (dst's protection differs from
 * the slot's: a read-only region) copies it and leaves the slot stale.
 * flags: UFP_MOVE_* of uffd.h (DONTWAKE, NOWAIT pass through). Returns 0,
 * or -EAGAIN (an event pending; nothing done), -ENOENT (dst is gone), or
 * another -errno from the kernel. Async-signal-safe.
 */
int park_restore(struct ufp_pager *p, struct ufp_tstats *ts, size_t i, uintptr_t dst,
		 unsigned flags);

#endif /* UFP_PARK_H */
