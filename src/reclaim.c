/* SPDX-License-Identifier: MIT */
/*
 * reclaim.c - the resident budget: the reclaim thread, victim selection
 * (CLOCK with second chance per region), eviction that never loses a
 * write, direct reclaim / throttling of faults, and the fork policy's
 * swap-in of everything.
 *
 * Eviction of a page (the "taken away atomically" rule):
 *  1. under the region read lock, claim PRESENT -> PRESENT|INFLIGHT (CAS):
 *     faults on it now wait;
 *  2. UFFDIO_MOVE the page out of the arena into a registered staging page:
 *     from that instant the arena page is missing, so any write faults and
 *     waits, and the content in staging is final. No copy, no window;
 *  3. drop the region lock; a page that was CLEAN and still hashes to the
 *     stored copy's hash keeps that copy (no write); others are stored;
 *  4. publish SWAPPED with the handle (release CAS). If the entry was
 *     discarded meanwhile (its generation changed), release the copy.
 *     If the store failed (swap full), move the page back: never dropped.
 *
 * Concurrency contract: the reclaim thread and handler threads doing
 * direct reclaim evict concurrently; the clock hand is a hint, claims are
 * CAS, each eviction uses its own staging set. Lock order: region read
 * lock, then backend queues (LL_SWAP); nothing here takes the pager lock
 * except reclaim_swapin_all_locked, whose caller holds it.
 */
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "base.h"
#include "sys.h"
#include "rcu.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "uffd.h"
#include "pte.h"
#include "reclaim.h"
#include "inject.h"
#include "swap_backend.h"
#include "sandbox.h"
#include "removes.h"
#include "park.h"


/* ======================================================================
 * I/O contexts.
 * ====================================================================== */

struct swb_ctx *reclaim_ctx_get(struct ufp_pager *p, struct ufp_tstats *ts)
{
	if (ts && !ts->shared && ts->swb_ctx)
		return ts->swb_ctx;
	for (unsigned k = 0; k < 4; k++) {
		bool f = false;

		/* acquire: pairs with the release in reclaim_ctx_put */
		if (p->reclaim.ctx_pool[k] &&
		    atomic_compare_exchange_strong_explicit(&p->reclaim.ctx_pool_busy[k], &f, true,
				memory_order_acquire, memory_order_relaxed))
			return p->reclaim.ctx_pool[k];
	}
	return NULL;
}

void reclaim_ctx_put(struct ufp_pager *p, struct ufp_tstats *ts, struct swb_ctx *c)
{
	if (ts && !ts->shared && ts->swb_ctx == c)
		return;
	for (unsigned k = 0; k < 4; k++)
		if (p->reclaim.ctx_pool[k] == c)
			atomic_store_explicit(&p->reclaim.ctx_pool_busy[k], false, memory_order_release);
}

void reclaim_ctx_ensure(struct ufp_pager *p, struct ufp_tstats *ts)
{
	/* a thread without its own context borrows from the pool: a warning,
	 * not a failure of the call that got here */
	if (p->swb && ts && !ts->shared && !ts->swb_ctx &&
	    swb_ctx_create(p->swb, &ts->swb_ctx)) {
		ufp_log("%s (this thread borrows the pool's I/O contexts)\n", ufp_last_error());
		ufp_clear_error();
	}
}

/*
 * Evictors and the fork handler's pause: an evictor announces itself in
 * `evicting`, then checks `reclaim_paused`; reclaim_pause sets the flag,
 * then waits for `evicting` to drain. Both sides are seq_cst (a store then
 * a load of the other variable, Dekker-style), so either the evictor sees
 * the pause and backs off, or the pause sees the evictor and waits for it.
 */
static bool evict_enter(struct ufp_pager *p)
{
	atomic_fetch_add(&p->reclaim.evicting, 1);         /* seq_cst: see above */
	if (!atomic_load(&p->reclaim.paused))      /* seq_cst: pairs with reclaim_pause */
		return true;
	atomic_fetch_sub(&p->reclaim.evicting, 1);
	return false;
}

static void evict_exit(struct ufp_pager *p)
{
	atomic_fetch_sub(&p->reclaim.evicting, 1);
}

/* A caller that must evict (PAGEOUT) waits out a pause (a fork). */
static void evict_enter_wait(struct ufp_pager *p)
{
	while (!evict_enter(p))
		usleep(100);
}


/* ======================================================================
 * Eviction.
 * ====================================================================== */

struct victim {
	size_t idx;
	uint64_t v;       /* claimed value (INFLIGHT set) */
	uint64_t handle;
	bool keep;        /* clean: the stored copy stays valid */
	unsigned stg;     /* its page in the staging batch */
};

/* Page k of the current batch of staging set `set`: each set holds
 * UFP_STAGING_ROUNDS batches, used in turn and discarded together. */
static uintptr_t staging_page(struct ufp_pager *p, unsigned set, unsigned k)
{
	unsigned round = p->reclaim.staging_round[set];

	return p->reclaim.staging +
	       (((uintptr_t)set * UFP_STAGING_ROUNDS + round) * UFP_STAGING_BATCH + k) *
	       UFP_PAGE_SIZE;
}

static void unclaim(struct ufp_pager *p, struct victim *v, uint64_t clear)
{
	uint64_t want = v->v;

	/* release: pairs with the acquire in fault paths that saw INFLIGHT */
	atomic_compare_exchange_strong_explicit(&p->pte[v->idx], &want,
			v->v & ~(PTE_INFLIGHT | clear), memory_order_release, memory_order_relaxed);
	pte_wake(p, v->idx);
}

struct scan_ctx {
	struct victim *vs;
	unsigned n;
	struct ufp_tstats *ts;
};

/*
 * A claimed victim the kernel saw written since its last scan (uffd-wp
 * cleared by WP_ASYNC): its stored copy, if any, is stale, so free it now
 * (as the kernel frees a swap cache copy on write) and mark the victim
 * dirty. We own the entry (INFLIGHT), so plain stores of our claim suffice.
 */
static void victim_written(struct ufp_pager *p, size_t i, void *arg)
{
	struct scan_ctx *sc = arg;

	for (unsigned k = 0; k < sc->n; k++) {
		struct victim *v = &sc->vs[k];
		uint64_t want = v->v;

		if (v->idx != i)
			continue;
		v->keep = true;          /* here: "written", consumed by the caller */
		if (!(v->v & PTE_CLEAN))
			return;
		v->v &= ~PTE_CLEAN;
		/* relaxed: the entry stays INFLIGHT and ours; the publish or
		 * unclaim that ends the claim is a release */
		atomic_compare_exchange_strong_explicit(&p->pte[i], &want, v->v,
				memory_order_relaxed, memory_order_relaxed);
		swb_release(p->swb, v->handle);
		v->handle = 0;
		STAT_INC(sc->ts, dirty_found);
		return;
	}
}

/*
 * Dirty tracking: one PAGEMAP_SCAN per run of consecutive claimed pages
 * reads which were written since the last scan and write-protects them
 * again. Only our own claimed pages are scanned: re-protecting a pte
 * clears it for a moment (ptep_modify_prot_start), and an UFFDIO_MOVE of
 * that page by another evictor that read the pte then would take it for a
 * hole and "move" nothing (seen in test_stress). A written page was
 * referenced: with second_chance it is given back (CLOCK with the dirty
 * bit as the reference bit). Returns the victims kept.
 */
static unsigned victims_scan_written(struct ufp_pager *p, struct ufp_tstats *ts,
				     struct victim *vs, unsigned n, bool second_chance)
{
	struct scan_ctx sc = { vs, n, ts };
	unsigned m = 0;

	for (unsigned k = 0; k < n; k++)
		vs[k].keep = false;
	for (unsigned k = 0; k < n;) {
		unsigned e = k + 1;

		while (e < n && vs[e].idx == vs[e - 1].idx + 1)
			e++;
		uffd_scan_written(p, p->arena_base + (vs[k].idx << UFP_PAGE_SHIFT),
				  p->arena_base + ((vs[e - 1].idx + 1) << UFP_PAGE_SHIFT),
				  victim_written, &sc);
		k = e;
	}
	for (unsigned k = 0; k < n; k++) {
		if (vs[k].keep && second_chance) {
			unclaim(p, &vs[k], PTE_REF);
			continue;
		}
		vs[k].keep = false;
		vs[m++] = vs[k];
	}
	return m;
}

/*
 * PAGEMAP_SCAN takes mmap_lock for read: beside a writer in the process
 * one scan now and then waits for milliseconds (p99 5 ms measured alone,
 * DESIGN.md), and throttled faults wait for the evictor. The scan is an
 * optimisation (early release of stale copies, the reference bit for the
 * second chance); correctness rests on the content hash after the move.
 * So a scan that took over 1 ms turns scanning off for 100 ms: the pages
 * evicted meanwhile are treated as possibly dirty (hashed, stored again
 * when changed) instead of waiting for the lock again.
 */
#define SCAN_STALL_NS 1000000ull
#define SCAN_PAUSE_NS 100000000ull

static bool scan_allowed(struct ufp_pager *p)
{
	/* relaxed: a hint shared by the evictors */
	return atomic_load_explicit(&p->reclaim.scan_off_until, memory_order_relaxed) <=
	       ufp_now_ns();
}

static void scan_took(struct ufp_pager *p, uint64_t ns)
{
	if (ns > SCAN_STALL_NS) {
		atomic_store_explicit(&p->reclaim.scan_off_until, ufp_now_ns() + SCAN_PAUSE_NS,
				      memory_order_relaxed);
	}
}

/*
 * Claim up to max victims in one region, advancing the hand: the clock
 * hand, or for a PAGEOUT of [*range_hand, range_end) the range's own hand
 * (then the second chance is not given: the caller asked for these pages).
 */
static unsigned claim_victims(struct ufp_pager *p, struct ufp_tstats *ts,
			      struct victim *vs, unsigned max, struct fault_lock *fl,
			      bool *wrapped, uintptr_t *range_hand, uintptr_t range_end,
			      bool chance)
{
	uintptr_t hand = range_hand ? *range_hand :
			 atomic_load_explicit(&p->reclaim.clock_hand, memory_order_relaxed);
	struct ufp_region *r;
	uintptr_t a, end;
	unsigned n = 0;

	/* Nothing locked until fault_lock_region: the early returns below
	 * leave it so, and the caller unlocks whatever fl says is held (it
	 * was stale stack, often the previous batch's lock: a second unlock) */
	fl->kind = FLK_NONE;
	fl->r = NULL;
	if (!range_hand && (hand < p->arena_base || hand >= p->arena_end)) {
		/* the last region ended at the arena's end: that is a lap too
		 * (it was not counted, and a full arena was swept forever) */
		hand = p->arena_base;
		*wrapped = true;
		atomic_fetch_add_explicit(&p->reclaim.clock_laps, 1, memory_order_relaxed);
	}
	urcu_memb_read_lock();
	r = region_tree_lookup(&p->tree, hand);
	if (!r)
		r = region_tree_next(&p->tree, hand);
	if (!r && !range_hand) {
		r = region_tree_next(&p->tree, p->arena_base);
		*wrapped = true;
		/* laps of the shared hand, by any evictor (see evict) */
		atomic_fetch_add_explicit(&p->reclaim.clock_laps, 1, memory_order_relaxed);
	}
	a = r ? (region_start(r) > hand || *wrapped ? region_start(r) : hand) : 0;
	end = r ? region_end(r) : 0;
	ufp_rcu_read_unlock();
	if (!r || (range_hand && a >= range_end)) {
		if (range_hand)
			*range_hand = range_end;
		return 0;
	}
	r = fault_lock_region(p, a, ts, true, fl);
	if (!r) {
		if (range_hand)
			*range_hand = end;
		else
			atomic_store_explicit(&p->reclaim.clock_hand, end, memory_order_relaxed);
		return 0;
	}
	end = region_end(r);
	if (range_hand && end > range_end)
		end = range_end;
	if (!(region_prot(r) & UFP_PROT_WRITE))
		/* UFFDIO_MOVE moves only between writable VMAs, and nothing
		 * else takes a page away without a window in which a fault
		 * would map zeros: read-only and PROT_NONE pages stay */
		a = end;
	for (; a < end && n < max; a += UFP_PAGE_SIZE) {
		size_t i = pte_index(p, a);
		uint64_t v = atomic_load_explicit(&p->pte[i], memory_order_relaxed);

		STAT_INC(ts, reclaim_scans);
		if ((v & (PTE_PRESENT | PTE_INFLIGHT | PTE_POISON)) != PTE_PRESENT)
			continue;
		if ((v & PTE_REF) && chance) {   /* second chance */
			atomic_compare_exchange_strong_explicit(&p->pte[i], &v, v & ~PTE_REF,
					memory_order_relaxed, memory_order_relaxed);
			continue;
		}
		if (!pte_claim(p, i, &v, &vs[n].handle))
			continue;
		vs[n].idx = i;
		vs[n].v = v;
		vs[n].keep = false;
		n++;
	}
	if (range_hand)
		*range_hand = a >= end ? end : a;
	else
		atomic_store_explicit(&p->reclaim.clock_hand, a >= end ? end : a, memory_order_relaxed);
	if (n && dirty_tracked(p) && scan_allowed(p)) {
		uint64_t t0 = ufp_now_ns();

		n = victims_scan_written(p, ts, vs, n, chance);
		scan_took(p, ufp_now_ns() - t0);
	}
	return n;
}

/*
 * Done with the current batch of a staging set: go on to the next one,
 * and once all of the set's batches are used, empty them for the next
 * round with one discard. Staging is registered with its own userfaultfd,
 * which has no events (uffd_open_staging): the discard raises no REMOVE
 * for anyone to read, and nothing is unregistered or registered again
 * (that took mmap_lock for write twice per batch: 40 ms each beside an
 * mmap_lock writer, and the budget did not hold). One MADV_DONTNEED per
 * UFP_STAGING_ROUNDS batches: beside a writer the discard was most of the
 * reclaim thread's time (its zap and TLB flush, per 32 pages). The copies
 * left in used batches meanwhile are RSS outside the budget (at most
 * UFP_STAGING_PAGES pages, 4 MiB), like the kernel's swap cache.
 * The caller holds the set (staging_busy).
 */
static void staging_next(struct ufp_pager *p, unsigned set)
{
	if (++p->reclaim.staging_round[set] < UFP_STAGING_ROUNDS)
		return;
	p->reclaim.staging_round[set] = 0;
	sys_madvise((void *)staging_page(p, set, 0),
		(size_t)UFP_STAGING_ROUNDS * UFP_STAGING_BATCH * UFP_PAGE_SIZE, MADV_DONTNEED);
}

/*
 * Put a page that could not be stored back with UFFDIO_COPY. UFFDIO_MOVE
 * refuses when the region's protection changed since the page was taken
 * (a protect while the store failed: src and dst VMAs differ); a copy
 * installs into any protection. Returns true when the page is back.
 */
static bool restore_by_copy(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t a,
			    uintptr_t staged)
{
	long r = -EAGAIN;

	for (int tries = 0; r == -EAGAIN && tries < 100000; tries++) {
		r = uffd_fill(p, ts, a, (const void *)staged, UFP_PAGE_SIZE, true);
		if (r == -EAGAIN)
			sched_yield();
	}
	return r == (long)UFP_PAGE_SIZE;
}

enum put_back { PB_RESTORED, PB_STORED, PB_DISCARDED };

/*
 * A victim that could not be stored goes back where it was. The range can
 * be unregistered for a moment (DONTNEED and realloc unregister under the
 * region write lock), or gone for good before its entry is discarded (a
 * foreign munmap or mremap whose event the worker has not applied yet):
 * then neither MOVE nor COPY can put it back (-ENOENT). Keep trying both
 * ways, and storing it again, until one works or the entry is discarded.
 * The page is never dropped (that aborted before, found by the soak).
 *
 * The check that the entry is still ours, the MOVE/COPY back and the
 * unclaim run under the region's fault lock (read), as a fault's fill does.
 * Without it a structural op could run between the check and the move: a
 * DONTNEED (unregister, discard, register, then discard the entries) or an
 * unmap and a new map at the same address, and the old content was put
 * back into memory the program had just been told is zero (found by the
 * soak: a page read back wrong after DONTNEED). Normal context; no lock
 * held on entry or return.
 */
static enum put_back put_back(struct ufp_pager *p, struct ufp_tstats *ts, struct swb_ctx *ctx,
			      struct victim *v, uintptr_t staged)
{
	uintptr_t a = p->arena_base + (v->idx << UFP_PAGE_SHIFT);
	uint64_t t0 = ufp_now_ns();

	for (unsigned tries = 0;; tries++) {
		const void *pg = (const void *)staged;
		struct fault_lock fl;
		struct ufp_region *r = fault_lock_region(p, a, ts, true, &fl);
		bool back = false;

		if (atomic_load_explicit(&p->pte[v->idx], memory_order_acquire) != v->v) {
			if (r)
				fault_unlock_region(p, &fl);
			pte_wake(p, v->idx);    /* discarded meanwhile: nothing to keep */
			return PB_DISCARDED;
		}
		/* The program's DONTNEED of the page, read but not applied: the
		 * kernel's zap found nothing to zap (the page was in staging);
		 * putting it back now would revive what the program was just
		 * promised is zero. The worker discards the entry (removes.c). */
		if (r && removes_pending(p, a)) {
			fault_unlock_region(p, &fl);
			r = NULL;
		}
		if (r) {
			/* one COPY, not restore_by_copy's EAGAIN loop: an event
			 * pending may need a handler thread that waits for a
			 * writer that waits for this read lock */
			back = uffd_move(p, ts, a, staged, UFP_PAGE_SIZE, UFP_MOVE_NOWAIT) ==
					(long)UFP_PAGE_SIZE ||
			       uffd_fill(p, ts, a, pg, UFP_PAGE_SIZE, true) == (long)UFP_PAGE_SIZE;
			if (back) {
				/* present again (a drained victim was PARKED) */
				uint64_t want = v->v;

				/* release: pairs with the acquire of fault paths */
				atomic_compare_exchange_strong_explicit(&p->pte[v->idx], &want,
					(v->v & ~(PTE_INFLIGHT | PTE_CLEAN | PTE_PARKED)) | PTE_PRESENT,
					memory_order_release, memory_order_relaxed);
				pte_wake(p, v->idx);
			}
			fault_unlock_region(p, &fl);
		}
		if (back)
			return PB_RESTORED;
		if (tries && swb_store(ctx, &pg, 1, &v->handle) == 1)
			return PB_STORED;
		if (ufp_now_ns() - t0 > 30000000000ull)
			ufp_bug("eviction could neither store nor restore a page for 30 s",
				__FILE__, __LINE__);
		usleep(tries < 10 ? 100 : 1000);
	}
}

/*
 * Move the run of consecutive victims that starts at vs[k] (at most up to
 * vs[n]) out of the arena to dst, with one UFFDIO_MOVE on the staging
 * userfaultfd (the staging batches and the parked ring both live there):
 * each call ends in one TLB shootdown, and per-page moves spent a quarter
 * of a refault benchmark's time in those IPIs. No ALLOW_SRC_HOLES: a
 * claimed page the kernel no longer has was zapped by the program's own
 * DONTNEED whose REMOVE the worker has not applied yet. Moving the hole
 * "succeeded" and left an empty staging page, which the hash then read: a
 * fault on registered memory inside the library (SIGBUS on this thread,
 * or a wait for a handler that never comes). Stopping at it (-ENOENT)
 * leaves the entry present: a fault there fills zeros, and the worker
 * discards it. A victim the move stopped at (that, or -EBUSY: shared with
 * a fork child, pinned) is given back. Returns the pages moved, vs[k] on;
 * *next is where the caller goes on.
 */
static unsigned move_run(struct ufp_pager *p, struct ufp_tstats *ts, struct victim *vs,
			 unsigned k, unsigned n, uintptr_t dst, unsigned *next)
{
	unsigned e = k + 1, moved;
	long r;

	while (e < n && vs[e].idx == vs[e - 1].idx + 1)
		e++;
	r = uffd_move(p, ts, dst, p->arena_base + (vs[k].idx << UFP_PAGE_SHIFT),
		      (size_t)(e - k) * UFP_PAGE_SIZE, UFP_MOVE_TO_STAGING);
	moved = r > 0 ? (unsigned)((size_t)r >> UFP_PAGE_SHIFT) : 0;
	*next = e;
	if (moved < e - k) {
		unclaim(p, &vs[k + moved], 0);      /* and try the rest of the run */
		*next = k + moved + 1;
	}
	return moved;
}

/*
 * Take up to max victims away from the arena into the current batch of
 * staging set `set` (the clock's, or a PAGEOUT range's): claim, then move;
 * after the move the arena page is missing. Returns the victims taken,
 * vs[k].stg their staging pages.
 */
static unsigned take_victims(struct ufp_pager *p, struct ufp_tstats *ts, unsigned set,
			     struct victim *vs, unsigned max, bool *wrapped, uintptr_t *range_hand,
			     uintptr_t range_end, bool chance)
{
	struct fault_lock fl;
	unsigned n, m = 0;

	n = claim_victims(p, ts, vs, max, &fl, wrapped, range_hand, range_end, chance);
	for (unsigned k = 0, next; k < n; k = next) {
		unsigned moved = move_run(p, ts, vs, k, n, staging_page(p, set, m), &next);

		for (unsigned j = 0; j < moved; j++) {
			vs[m] = vs[k + j];
			vs[m].stg = m;
			m++;
		}
	}
	if (fl.kind != FLK_NONE)
		fault_unlock_region(p, &fl);
	return m;
}

/*
 * Park n claimed victims of one region (its lock held by the caller; vs[]
 * ascending): move them out of the arena into the ring's head (one
 * UFFDIO_MOVE per run, as for eviction), and publish them PARKED while the
 * region is still read-locked (a discard, which write-locks it, then finds
 * a parked entry). Nothing is copied, hashed or written: a parked page
 * still counts against the budget. Victims that find no slot or do not
 * move go back. Returns the pages parked.
 */
static unsigned park_claimed(struct ufp_pager *p, struct ufp_tstats *ts, struct victim *vs,
			     unsigned n)
{
	unsigned parked = 0;
	uint32_t first = 0, room;

	if (!n)
		return 0;
	park_lock(p);
	room = park_reserve(p, n, &first);
	for (unsigned k = room; k < n; k++)
		unclaim(p, &vs[k], 0);          /* the ring filled up meanwhile */
	n = room;
	/* victim k goes to slot first + k (a slot whose move failed stays
	 * empty) */
	for (unsigned k = 0, next; k < n; k = next) {
		unsigned moved = move_run(p, ts, vs, k, n, park_slot_addr(p, first + k), &next);

		for (unsigned j = k; j < k + moved; j++) {
			park_record(p, first + j, vs[j].idx);
			/* release: pairs with the acquire loads of fault_serve
			 * and the drain, which then read park.at[i]; we own the
			 * entry (INFLIGHT) and hold the region: a plain store */
			atomic_store_explicit(&p->pte[vs[j].idx],
				(vs[j].v & ~(PTE_INFLIGHT | PTE_PRESENT | PTE_REF)) | PTE_PARKED,
				memory_order_release);
			pte_wake(p, vs[j].idx);
			parked++;
		}
	}
	park_unlock(p);
	STAT_ADD(ts, pages_parked, parked);
	return parked;
}

/* Park one batch of the clock's victims (pages resident for a lap of the
 * hand without a reference: the kernel's deactivation). */
static unsigned park_batch(struct ufp_pager *p, struct ufp_tstats *ts, bool *wrapped,
			   bool chance)
{
	struct victim vs[UFP_PARK_BATCH];
	struct fault_lock fl;
	unsigned n = claim_victims(p, ts, vs, UFP_PARK_BATCH, &fl, wrapped, NULL, 0, chance);
	unsigned parked = park_claimed(p, ts, vs, n);

	if (fl.kind != FLK_NONE)
		fault_unlock_region(p, &fl);
	return parked;
}

/*
 * Take up to max pages from the threads' probation rings (fault.c's
 * probation_push): page indices, oldest first per thread. A ring that ran
 * over loses its oldest (they are hints: the clock finds those pages
 * later). Normal context, no lock held.
 */
static unsigned probation_take(struct ufp_pager *p, size_t *idx, unsigned max)
{
	unsigned n = 0;

	ufp_mutex_lock(&p->stats.lock, LL_STATS);
	for (struct ufp_tstats *t = p->stats.blocks; t && n < max; t = t->next) {
		uint32_t tail = atomic_load_explicit(&t->prob_tail, memory_order_relaxed);

		for (;;) {
			/* acquire: pairs with probation_push's release */
			uint32_t head = atomic_load_explicit(&t->prob_head, memory_order_acquire);
			uint32_t from = head - tail > UFP_PROBATION ? head - UFP_PROBATION : tail;
			uint32_t take = head - from < max - n ? head - from : max - n;

			if (head == tail)
				break;
			for (uint32_t k = 0; k < take; k++)
				idx[n + k] = (size_t)atomic_load_explicit(
					&t->prob[(from + k) % UFP_PROBATION], memory_order_relaxed) - 1;
			/* relaxed: evictors share the tail; the entries are hints */
			if (atomic_compare_exchange_strong_explicit(&t->prob_tail, &tail, from + take,
					memory_order_relaxed, memory_order_relaxed)) {
				n += take;
				break;
			}
		}
	}
	ufp_mutex_unlock(&p->stats.lock, LL_STATS);
	return n;
}

/*
 * Park the pages brought in since the last look (probation_take), region
 * by region under its fault lock: a page still present, unreferenced and
 * in a writable region is claimed and parked. Returns the pages parked.
 */
static unsigned park_probation(struct ufp_pager *p, struct ufp_tstats *ts)
{
	size_t idx[UFP_PARK_BATCH];
	struct victim vs[UFP_PARK_BATCH];
	unsigned n = probation_take(p, idx, UFP_PARK_BATCH), parked = 0;

	for (unsigned k = 1; k < n; k++)        /* ascending: runs, one lock per region */
		for (unsigned j = k; j > 0 && idx[j - 1] > idx[j]; j--) {
			size_t t = idx[j];

			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	for (unsigned k = 0; k < n;) {
		uintptr_t a = p->arena_base + (idx[k] << UFP_PAGE_SHIFT);
		struct fault_lock fl;
		struct ufp_region *r;
		unsigned m = 0;
		uintptr_t end;
		bool w;

		if (idx[k] >= p->npages || !(r = fault_lock_region(p, a, ts, true, &fl))) {
			k++;
			continue;
		}
		end = region_end(r);
		w = (region_prot(r) & UFP_PROT_WRITE) != 0;   /* MOVE needs it (claim_victims) */
		for (; k < n && idx[k] < p->npages &&
		       p->arena_base + (idx[k] << UFP_PAGE_SHIFT) < end; k++) {
			size_t i = idx[k];
			uint64_t v = atomic_load_explicit(&p->pte[i], memory_order_relaxed);

			if (!w || (m && vs[m - 1].idx == i) ||
			    (v & (PTE_PRESENT | PTE_INFLIGHT | PTE_POISON | PTE_REF)) != PTE_PRESENT ||
			    !pte_claim(p, i, &v, &vs[m].handle))
				continue;
			vs[m].idx = i;
			vs[m].v = v;
			vs[m].keep = false;
			m++;
		}
		parked += park_claimed(p, ts, vs, m);
		fault_unlock_region(p, &fl);
	}
	return parked;
}

/*
 * Take up to max of the ring's oldest slots into the current batch of
 * staging set `set`: the pages that stayed parked while the whole ring
 * was filled after them. Live pages are claimed (PARKED|INFLIGHT); the
 * whole run of slots, stale content and holes included, moves with one
 * UFFDIO_MOVE (ALLOW_SRC_HOLES), so every slot behind the tail is a hole
 * again and a stale copy goes with the staging discard. A slot whose page
 * is being brought back (INFLIGHT by park_restore) ends the run: moving it
 * would take the page from under that move. No region lock: the entries
 * are claimed by CAS, and published under the region lock afterwards.
 * Returns the victims taken, vs[k].stg their staging pages.
 */
static unsigned drain_claim(struct ufp_pager *p, struct ufp_tstats *ts, unsigned set,
			    struct victim *vs, unsigned max)
{
	uint32_t first, n, len, moved = 0;
	unsigned m = 0, kept = 0;

	park_lock(p);
	n = park_oldest(p, max, &first);
	len = n;
	for (uint32_t j = 0; j < n && len == n; j++) {
		size_t i = park_slot_page(p, first + j);

		while (i != SIZE_MAX) {
			/* acquire: pairs with park_batch's release publish */
			uint64_t v = atomic_load_explicit(&p->pte[i], memory_order_acquire);

			if (!(v & PTE_PARKED) ||
			    atomic_load_explicit(&p->park.at[i], memory_order_relaxed) != first + j)
				break;                  /* stale: its content is dropped */
			if (v & PTE_INFLIGHT) {
				len = j;                /* on its way back: stop before it */
				break;
			}
			if (pte_claim(p, i, &v, &vs[m].handle)) {
				vs[m].idx = i;
				vs[m].v = v;
				vs[m].keep = false;
				vs[m].stg = j;
				m++;
				break;
			}
		}
	}
	if (len) {
		long r = uffd_move(p, ts, staging_page(p, set, 0), park_slot_addr(p, first),
				   (size_t)len * UFP_PAGE_SIZE,
				   UFP_MOVE_SRC_HOLES | UFP_MOVE_TO_STAGING);

		moved = r > 0 ? (uint32_t)((size_t)r >> UFP_PAGE_SHIFT) : 0;
		park_advance_tail(p, moved);
	}
	park_unlock(p);
	for (unsigned k = 0; k < m; k++) {
		if (vs[k].stg < moved) {
			vs[kept++] = vs[k];
			continue;
		}
		unclaim(p, &vs[k], 0);      /* not moved (-EBUSY): stays parked */
	}
	STAT_ADD(ts, parked_evictions, kept);
	if (!kept && moved)
		staging_next(p, set);   /* only stale copies in the batch: not empty */
	return kept;
}

static unsigned evict_store(struct ufp_pager *p, struct ufp_tstats *ts, struct swb_ctx *ctx,
			    unsigned set, struct victim *vs, unsigned m);

/*
 * PAGEOUT of a range: its parked pages too (the program asked for these
 * pages, not for a pass of the ring). Each is claimed and moved from its
 * slot into the staging batch; the slot is left empty. From *hand to end,
 * at most max. Returns the victims taken, vs[k].stg their staging pages.
 */
static unsigned take_parked(struct ufp_pager *p, struct ufp_tstats *ts, unsigned set,
			    struct victim *vs, unsigned max, uintptr_t *hand, uintptr_t end)
{
	unsigned m = 0;

	park_lock(p);
	for (; *hand < end && m < max; *hand += UFP_PAGE_SIZE) {
		size_t i = pte_index(p, *hand);
		/* acquire: pairs with park_batch's release publish */
		uint64_t v = atomic_load_explicit(&p->pte[i], memory_order_acquire);
		uint32_t k;

		if ((v & (PTE_PARKED | PTE_INFLIGHT)) != PTE_PARKED ||
		    !pte_claim(p, i, &v, &vs[m].handle))
			continue;
		k = atomic_load_explicit(&p->park.at[i], memory_order_relaxed);
		if (uffd_move(p, ts, staging_page(p, set, m), park_slot_addr(p, k), UFP_PAGE_SIZE,
			      UFP_MOVE_TO_STAGING) != (long)UFP_PAGE_SIZE) {
			struct victim v1 = { .idx = i, .v = v };

			unclaim(p, &v1, 0);
			continue;
		}
		park_forget(p, k);
		vs[m].idx = i;
		vs[m].v = v;
		vs[m].keep = false;
		vs[m].stg = m;
		m++;
	}
	park_unlock(p);
	return m;
}

/*
 * Evict one batch with staging set `set`. Returns pages evicted. With a
 * parked ring (and not for a PAGEOUT range, whose pages were asked for):
 * park the clock's victims while the ring has room, else store its
 * oldest (a step that only parks frees nothing and returns 0).
 */
static unsigned evict_batch(struct ufp_pager *p, struct ufp_tstats *ts, struct swb_ctx *ctx,
			    unsigned set, bool *wrapped, uintptr_t *range_hand, uintptr_t range_end,
			    bool chance)
{
	struct victim vs[UFP_STAGING_BATCH];
	unsigned m = 0, max = swb_ctx_nbufs(ctx);

	if (max > UFP_STAGING_BATCH)
		max = UFP_STAGING_BATCH;
	if (!range_hand && p->park.pages) {
		/* Keep the ring full: a step of the hand that found nothing to
		 * park (a stretch of referenced pages losing their bit) is no
		 * reason to drain; a whole lap without a victim is. Draining
		 * whenever one step came back empty kept the ring nearly
		 * empty (test_park saw 0 to 32 of 128 slots used). */
		if (park_room(p) >= UFP_PARK_BATCH &&
		    (park_probation(p, ts) || park_batch(p, ts, wrapped, chance) || !*wrapped))
			return 0;
		m = drain_claim(p, ts, set, vs, max);
	} else {
		m = take_victims(p, ts, set, vs, max, wrapped, range_hand, range_end, chance);
	}
	return evict_store(p, ts, ctx, set, vs, m);
}

/*
 * Store the m victims sitting in staging set `set`'s current batch (their
 * pages vs[k].stg), publish them SWAPPED, put back what could not be
 * stored, and go on to the set's next batch. Returns the pages evicted.
 */
static unsigned evict_store(struct ufp_pager *p, struct ufp_tstats *ts, struct swb_ctx *ctx,
			    unsigned set, struct victim *vs, unsigned m)
{
	const void *pages[UFP_STAGING_BATCH];
	uint64_t handles[UFP_STAGING_BATCH];
	unsigned idx[UFP_STAGING_BATCH];
	unsigned nd = 0, done = 0;
	int stored;

	if (!m)
		return 0;
	/*
	 * Clean pages whose content still matches their stored copy. With
	 * dirty tracking most written pages lost PTE_CLEAN in the scan; the
	 * hash still closes the window between that scan and the move (a
	 * write there clears uffd-wp, and UFFDIO_MOVE does not carry the
	 * bit to the staging page, so nothing else could tell).
	 */
	for (unsigned k = 0; k < m; k++) {
		const void *pg = (const void *)staging_page(p, set, vs[k].stg);

		if (vs[k].v & PTE_CLEAN) {
			STAT_INC(ts, swapouts_hashed);
			if (XXH3_64bits(pg, UFP_PAGE_SIZE) ==
			    atomic_load_explicit(&p->chash[vs[k].idx], memory_order_relaxed)) {
				vs[k].keep = true;
				continue;
			}
			/* written since: the old copy is stale */
			STAT_INC(ts, swapouts_raced);
			swb_release(p->swb, vs[k].handle);
		}
		idx[nd] = k;
		pages[nd++] = pg;
	}
	stored = nd ? swb_store(ctx, pages, nd, handles) : 0;
	if (stored < 0) {
		/* relaxed: a hint for the stats' note; any evictor's errno will do */
		atomic_store_explicit(&p->reclaim.swap_full_err, (int)-stored, memory_order_relaxed);
		stored = 0;
	}
	for (unsigned d = 0; d < nd; d++) {
		struct victim *v = &vs[idx[d]];

		if (d < (unsigned)stored) {
			v->handle = handles[d];
			STAT_INC(ts, swapouts);
			if (swb_handle_is_file(handles[d]))
				STAT_ADD(ts, bytes_written, UFP_PAGE_SIZE);
			continue;
		}
		/* Not stored (swap full, I/O error): put the page back. */
		enum put_back pb = put_back(p, ts, ctx, v, staging_page(p, set, v->stg));

		if (pb == PB_STORED) {
			STAT_INC(ts, swapouts);
			continue;
		}
		v->idx = SIZE_MAX;
		if (!atomic_exchange(&p->reclaim.swap_full, true)) {
			STAT_INC(ts, swap_full_events);
			/* said once per pager (verbose), and on every stats read */
			if (!atomic_exchange(&p->reclaim.swap_full_said, true))
				ufp_log("ufpager: pager %llu: swap is full (%s): pages over the "
					"budget stay resident; nothing is lost\n",
					(unsigned long long)p->id,
					strerror(atomic_load_explicit(&p->reclaim.swap_full_err,
								      memory_order_relaxed) ?: ENOSPC));
		}
	}
	/*
	 * Publish, under the region's fault lock (read). The entry can be
	 * discarded while the page is out (unmap, DONTNEED, realloc: they
	 * write-lock the region, so not while we hold it), and the page's
	 * next life evicted and published by another evictor. slots[i] is
	 * written before the entry's CAS (a swap-in reads it after seeing
	 * SWAPPED), so a loser that wrote it first clobbered the winner's
	 * handle with its own, which it then released: the next swap-in read
	 * a freed slot (-EBADMSG, the page poisoned: SIGBUS in the program;
	 * or another page's data). With the lock held and the entry still
	 * ours nothing can change it; otherwise we lost and touch nothing.
	 */
	struct fault_lock pl = { FLK_NONE, NULL };
	struct ufp_region *pr = NULL;

	for (unsigned k = 0; k < m; k++) {
		struct victim *v = &vs[k];
		uintptr_t a = p->arena_base + (v->idx << UFP_PAGE_SHIFT);
		uint64_t want = v->v;

		if (v->idx == SIZE_MAX)
			continue;
		if (!pr || a < region_start(pr) || a >= region_end(pr)) {
			if (pr)
				fault_unlock_region(p, &pl);
			pr = fault_lock_region(p, a, ts, true, &pl);
		}
		if (pr && atomic_load_explicit(&p->pte[v->idx], memory_order_relaxed) == want) {
			atomic_store_explicit(&p->slots[v->idx], v->handle, memory_order_relaxed);
			/* release: pairs with the acquire claim in fault.c, which
			 * then reads slots[i] */
			if (atomic_compare_exchange_strong_explicit(&p->pte[v->idx], &want,
					(v->v & PTE_GEN_MASK) | PTE_SWAPPED,
					memory_order_release, memory_order_relaxed)) {
				done++;
				if (v->keep)
					STAT_INC(ts, swapouts_clean);
				pte_wake(p, v->idx);
				continue;
			}
			ufp_bug("an evicted entry changed under its region lock", __FILE__, __LINE__);
		}
		swb_release(p->swb, v->handle);   /* discarded meanwhile */
		pte_wake(p, v->idx);
	}
	if (pr)
		fault_unlock_region(p, &pl);
	/* only what was published SWAPPED left the budget: a page put back is
	 * resident, and one discarded meanwhile was counted by its discard */
	STAT_ADD(ts, resident_pages, -(int64_t)done);
	staging_next(p, set);
	return done;
}

/* The reclaim thread's look at the real resident count (merged per-thread
 * counters): the estimate faults throttle on. Returns it. */
static uint64_t resident_refresh(struct ufp_pager *p)
{
	int64_t res = stats_counter_sum(p, UFP_C_resident_pages);
	uint64_t r = res < 0 ? 0 : (uint64_t)res;

	/* relaxed: an estimate; faults add to it between refreshes */
	atomic_store_explicit(&p->reclaim.resident_est, r, memory_order_relaxed);
	return r;
}

/* Evict about `want` pages. Returns pages evicted. */
static uint64_t evict(struct ufp_pager *p, struct ufp_tstats *ts, struct swb_ctx *ctx,
		      uint64_t want)
{
	uint64_t got = 0;
	unsigned wraps = 0, set;
	uint64_t laps0 = atomic_load_explicit(&p->reclaim.clock_laps, memory_order_relaxed);
	bool reclaim_thread = pthread_equal(pthread_self(), p->reclaim.worker.thread);

	for (set = 0; set < UFP_STAGING_SETS; set++) {
		bool f = false;

		/* acquire: pairs with the release at the end of evict */
		if (atomic_compare_exchange_strong_explicit(&p->reclaim.staging_busy[set], &f, true,
				memory_order_acquire, memory_order_relaxed))
			break;
	}
	if (set == UFP_STAGING_SETS)
		return 0;
	if (!evict_enter(p)) {
		atomic_store_explicit(&p->reclaim.staging_busy[set], false, memory_order_release);
		return 0;
	}
	while (got < want && wraps < 3 && !atomic_load(&p->reclaim.paused) &&
	       !atomic_load_explicit(&p->reclaim.swap_full, memory_order_relaxed)) {
		bool wrapped = false;
		/*
		 * The second chance (a reference or a write since the last
		 * look) for one lap of the hand per eviction, not more: when
		 * every page is written within a lap (two threads writing at
		 * random over 4x the budget) every victim was given back,
		 * three laps found nothing, and faults stopped waiting for
		 * reclaim: nothing was evicted at all (test_writer).
		 */
		bool chance = p->opt.second_chance && !wraps;
		unsigned n = evict_batch(p, ts, ctx, set, &wrapped, NULL, 0, chance);

		got += n;
		if (n)   /* relaxed: a progress count for throttled faults */
			atomic_fetch_add_explicit(&p->reclaim.progress, 1, memory_order_relaxed);
		if (reclaim_thread && n) {
			/* Faults keep adding pages while we evict: look at the
			 * real count after every batch (the estimate faults
			 * throttle on was a whole eviction old; beside an
			 * mmap_lock writer they ran to 4x the budget), stop at
			 * the low mark, and let throttled faults look again */
			uint64_t res = resident_refresh(p);

			futex_bump_wake(&p->reclaim.done_futex, INT32_MAX);
			if (res <= p->reclaim.low_pages)
				break;
			want = got + (res - p->reclaim.low_pages);
		}
		/* Laps of the hand by anyone: with two evictors (the reclaim
		 * thread, a handler's direct reclaim) sharing the hand, one of
		 * them may never be the one that wraps it, and looped forever
		 * over unevictable pages (found by the API fuzzer). relaxed: a
		 * count, no data hangs on it. */
		wraps = (unsigned)(atomic_load_explicit(&p->reclaim.clock_laps, memory_order_relaxed) - laps0);
		if (reclaim_thread)
			wd_beat(&p->wd.reclaim);   /* a long eviction is progress */
	}
	evict_exit(p);
	atomic_store_explicit(&p->reclaim.staging_busy[set], false, memory_order_release);
	/* Three sweeps and nothing evictable (read-only or PROT_NONE pages,
	 * pages shared with a fork child): stop throttling faults for a while,
	 * waiting would not free anything. Relaxed: a hint, read by
	 * reclaim_throttle. */
	if (!got && wraps >= 3)
		atomic_store_explicit(&p->reclaim.stuck_until, ufp_now_ns() + 100000000ull,
				      memory_order_relaxed);
	else if (got)
		atomic_store_explicit(&p->reclaim.stuck_until, 0, memory_order_relaxed);
	return got;
}

/* ======================================================================
 * The reclaim thread and throttling.
 * ====================================================================== */

static void *reclaim_main(void *arg)
{
	struct ufp_pager *p = arg;
	struct ufp_tstats *ts;
	uint64_t last_full = 0, last_maint = 0;

	thread_enter(p);
	ts = thread_stats(p, true);
	reclaim_ctx_ensure(p, ts);
	sandbox_enter(p, SB_RECLAIM);
	while (!atomic_load_explicit(&p->reclaim.stop, memory_order_acquire)) {
		uint32_t w = atomic_load_explicit(&p->reclaim.futex, memory_order_acquire);
		uint64_t res = resident_refresh(p);
		uint64_t now = ufp_now_ns();

		wd_beat(&p->wd.reclaim);
		if (ufp_unlikely(inject_on()) && inject_kill(INJ_T_RECLAIM))
			break;             /* injected death: the watchdog must see it */
		if (res <= p->reclaim.high_pages)
			futex_bump_wake(&p->reclaim.done_futex, INT32_MAX);
		if (atomic_load(&p->reclaim.swap_full) && now - last_full > 100000000ull) {
			last_full = now;          /* retry after frees */
			swb_maintain(p->swb);
			atomic_store(&p->reclaim.swap_full, false);
		}
		if (!atomic_load(&p->reclaim.paused) && ts->swb_ctx &&
		    (uint64_t)res > p->reclaim.high_pages && !atomic_load(&p->reclaim.swap_full)) {
			uint64_t got = evict(p, ts, ts->swb_ctx, (uint64_t)res - p->reclaim.low_pages);

			futex_bump_wake(&p->reclaim.done_futex, INT32_MAX);
			if (got)
				continue;
		}
		if (now - last_maint > 50000000ull) {
			last_maint = now;
			swb_maintain(p->swb);
		}
		futex_wait_ms(&p->reclaim.futex, w, 1);
	}
	return NULL;
}

/* Direct reclaim freed n pages: lower the estimate now (the reclaim
 * thread refreshes it from the counters on its next pass). Without this a
 * handler kept evicting against a stale estimate: up to 50 batches per
 * fault, evicting the pages the program was about to read (a livelock the
 * API fuzzer found). */
static void resident_est_sub(struct ufp_pager *p, uint64_t n)
{
	uint64_t v = atomic_load_explicit(&p->reclaim.resident_est, memory_order_relaxed);

	/* relaxed: an estimate; saturates at 0 */
	while (!atomic_compare_exchange_weak_explicit(&p->reclaim.resident_est, &v, v > n ? v - n : 0,
			memory_order_relaxed, memory_order_relaxed))
		;
}

/* A fault over the budget waits while reclaim makes progress, and gives
 * up (runs over the budget for now) after 200 ms without any: a reclaim
 * thread that is not scheduled or sits in one long call (an mmap_lock
 * wait beside a writer can take tens of ms). Nothing evictable, a full
 * swap and a dead reclaim thread end the wait at once (stuck_until,
 * swap_full, dead). Until a progress-blind 20 ms cap let faults run to
 * several times the budget whenever reclaim was merely slow. */
#define THROTTLE_STALL_NS 200000000ull

/*
 * The estimate faults throttle on is refreshed by the reclaim thread
 * between its batches; a fault thread that installed pages since then
 * adds them itself, in steps of 32 (one shared write per 32 faults, not
 * one per fault). Without it, faults ran far past the budget whenever the
 * reclaim thread sat in one long call (seen beside an mmap_lock writer).
 */
#define THROTTLE_STEP 32

static void throttle_account(struct ufp_pager *p, struct ufp_tstats *ts)
{
	int64_t now, d, mark;

	now = atomic_load_explicit(&ts->c[UFP_C_resident_pages], memory_order_relaxed);
	if (ts->shared) {
		/* the fallback block (threads that made no call with this
		 * pager fault through it in SIGBUS delivery) is everyone's:
		 * its mark is the pager's, taken by CAS. Without this their
		 * installs were never counted and faults ran to 3x the budget.
		 * relaxed: an estimate */
		mark = atomic_load_explicit(&p->reclaim.shared_mark, memory_order_relaxed);
		d = now - mark;
		if ((d >= THROTTLE_STEP || d < 0) &&
		    atomic_compare_exchange_strong_explicit(&p->reclaim.shared_mark, &mark, now,
				memory_order_relaxed, memory_order_relaxed) && d > 0)
			atomic_fetch_add_explicit(&p->reclaim.resident_est, (uint64_t)d,
						  memory_order_relaxed);
		return;
	}
	d = now - ts->throttle_mark;
	if (d >= THROTTLE_STEP) {
		/* relaxed: an estimate, overwritten by the reclaim thread */
		atomic_fetch_add_explicit(&p->reclaim.resident_est, (uint64_t)d,
					  memory_order_relaxed);
		ts->throttle_mark = now;
	} else if (d < 0) {
		ts->throttle_mark = now;   /* this thread evicted: counted there */
	}
}

void reclaim_throttle(struct ufp_pager *p, struct ufp_tstats *ts)
{
	uint64_t limit = p->reclaim.high_pages + p->reclaim.high_pages / 8 + 64;
	uint64_t deadline = 0, seen = 0;

	throttle_account(p, ts);
	for (;;) {
		uint32_t w = atomic_load_explicit(&p->reclaim.done_futex, memory_order_acquire);
		uint64_t now, prog;

		if (atomic_load_explicit(&p->reclaim.resident_est, memory_order_relaxed) < limit ||
		    atomic_load_explicit(&p->reclaim.swap_full, memory_order_relaxed) ||
		    atomic_load_explicit(&p->reclaim.paused, memory_order_relaxed))
			return;
		now = ufp_now_ns();
		if (atomic_load_explicit(&p->reclaim.stuck_until, memory_order_relaxed) > now)
			return;
		/* relaxed: a count; evictors bump it per batch that freed pages */
		prog = atomic_load_explicit(&p->reclaim.progress, memory_order_relaxed);
		if (!deadline || prog != seen) {
			deadline = now + THROTTLE_STALL_NS;
			seen = prog;
		} else if (now > deadline) {
			return;          /* reclaim makes no progress: over budget for now */
		}
		STAT_INC(ts, reclaim_waits);
		/* Direct reclaim where it is allowed (a handler thread: normal
		 * context, its own I/O context); elsewhere wake the reclaim
		 * thread and wait for it. */
		if (thread_is_service() && ts->swb_ctx && !ts->shared) {
			uint64_t got = evict(p, ts, ts->swb_ctx, UFP_STAGING_BATCH);

			if (!got)
				return;  /* nothing evictable now: do not spin */
			resident_est_sub(p, got);
			continue;
		}
		/* relaxed: set by the watchdog; a dead reclaim thread would
		 * make every fault over the budget wait in vain */
		if (atomic_load_explicit(&p->reclaim.dead, memory_order_relaxed))
			return;
		futex_bump_wake(&p->reclaim.futex, INT32_MAX);
		futex_wait_ms(&p->reclaim.done_futex, w, 1);
	}
}

/* PAGEOUT: evict every resident page of [s, e) now (the image of
 * MADV_PAGEOUT). Normal context, no lock held. Returns pages evicted, or
 * -EOPNOTSUPP without a budget (no backend), -ENOSPC if swap filled up. */
long reclaim_pageout(struct ufp_pager *p, uintptr_t s, uintptr_t e)
{
	struct ufp_tstats *ts = thread_stats(p, true);
	uintptr_t hand = s;
	long got = 0;
	unsigned set;

	if (!p->swb)
		return -EOPNOTSUPP;
	reclaim_ctx_ensure(p, ts);
	if (!ts->swb_ctx)
		return -ENOMEM;
	for (;;) {
		bool f = false;

		for (set = 0; set < UFP_STAGING_SETS; set++)
			if (atomic_compare_exchange_strong_explicit(&p->reclaim.staging_busy[set], &f, true,
					memory_order_acquire, memory_order_relaxed))
				break;
			else
				f = false;
		if (set < UFP_STAGING_SETS)
			break;
		sched_yield();
	}
	evict_enter_wait(p);
	while (hand < e && !atomic_load(&p->reclaim.swap_full)) {
		bool wrapped = false;

		if (atomic_load(&p->reclaim.paused)) {
			/* a fork is bringing every page back: let it, and go
			 * on from the same place afterwards */
			evict_exit(p);
			evict_enter_wait(p);
		}
		/* no second chance: the caller asked for these pages */
		got += evict_batch(p, ts, ts->swb_ctx, set, &wrapped, &hand, e, false);
	}
	for (hand = s; p->park.pages && hand < e && !atomic_load(&p->reclaim.swap_full);) {
		struct victim vs[UFP_STAGING_BATCH];
		unsigned max = swb_ctx_nbufs(ts->swb_ctx);

		if (atomic_load(&p->reclaim.paused)) {
			evict_exit(p);
			evict_enter_wait(p);
		}
		got += evict_store(p, ts, ts->swb_ctx, set, vs,
				   take_parked(p, ts, set, vs, max < UFP_STAGING_BATCH ? max :
					       UFP_STAGING_BATCH, &hand, e));
	}
	evict_exit(p);
	atomic_store_explicit(&p->reclaim.staging_busy[set], false, memory_order_release);
	return atomic_load(&p->reclaim.swap_full) ? -ENOSPC : got;
}

void reclaim_pause(struct ufp_pager *p)
{
	if (!p->swb)
		return;
	atomic_store(&p->reclaim.paused, true);    /* seq_cst: pairs with evict_enter */
	while (atomic_load(&p->reclaim.evicting))
		sched_yield();
}

void reclaim_resume(struct ufp_pager *p)
{
	if (!p->swb)
		return;
	atomic_store(&p->reclaim.paused, false);
	futex_bump_wake(&p->reclaim.futex, INT32_MAX);
}

/* Fork policy: bring every evicted page back (pager write lock held, so
 * no structural op runs; reclaim paused, so no eviction runs). A swap-in
 * in flight is taken over: the page is installed here and its generation
 * bumped, so the owner releases the copy and installs nothing. The forking
 * thread may never have called the library: it gets an I/O context here
 * (normal context), or borrows a shared one. */
struct swapin_all_ctx {
	struct ufp_tstats *ts;
	struct swb_ctx *ctx;
	long failed;
};

/*
 * A parked page goes back into the arena before the fork (the ring is
 * not inherited: MADV_DONTFORK). Evictions are paused; a fault may be
 * moving it back already (INFLIGHT, under its region read lock, no I/O):
 * let it finish.
 */
static void swapin_parked(struct ufp_pager *p, struct swapin_all_ctx *sa, size_t i,
			  uintptr_t a, uint64_t v)
{
	int err;

	for (;;) {
		if (!(v & PTE_PARKED))
			return;                  /* brought back meanwhile */
		/* acquire: pairs with park_batch's release publish */
		if (!(v & PTE_INFLIGHT) &&
		    atomic_compare_exchange_strong_explicit(&p->pte[i], &v, v | PTE_INFLIGHT,
				memory_order_acquire, memory_order_acquire))
			break;
		sched_yield();
		v = atomic_load_explicit(&p->pte[i], memory_order_acquire);
	}
	/* the program's DONTNEED, read and not applied: the page stays out
	 * of the arena (the child reads zeros, as the kernel promised) */
	err = removes_covers(p, a) ? -ENOENT : -EAGAIN;
	while (err == -EAGAIN)
		err = park_restore(p, sa->ts, i, a, 0);
	if (err) {
		if (!removes_covers(p, a))
			sa->failed++;
		/* parked as before; release: pairs with the acquire of a
		 * fault that waited on INFLIGHT */
		atomic_store_explicit(&p->pte[i], v, memory_order_release);
	} else {
		/* release: pairs with the acquire of fault paths */
		atomic_store_explicit(&p->pte[i], (v & ~PTE_PARKED) | PTE_PRESENT,
				      memory_order_release);
	}
	pte_wake(p, i);
}

static void swapin_region(struct ufp_region *r, void *arg)
{
	struct ufp_pager *p = r->pager;
	struct swapin_all_ctx *sa = arg;
	struct ufp_tstats *ts = sa->ts;
	void *buf = swb_ctx_buf(sa->ctx, 0);

	for (uintptr_t a = region_start(r); a < region_end(r); a += UFP_PAGE_SIZE) {
		size_t i = pte_index(p, a);
		uint64_t v = atomic_load_explicit(&p->pte[i], memory_order_acquire), h, failed = 0;
		int err = -EBUSY;

		if (v & PTE_PARKED) {
			swapin_parked(p, sa, i, a, v);
			continue;
		}
		if (!(v & PTE_SWAPPED))
			continue;
		/* discarded by the program (DONTNEED read, not applied: the
		 * worker waits for our write lock): not revived for the child */
		if (removes_covers(p, a))
			continue;
		h = atomic_load_explicit(&p->slots[i], memory_order_relaxed);
		for (int tries = 0; err == -EBUSY && tries < 1000; tries++)
			err = swb_load(sa->ctx, &h, 1, &buf, &failed);
		/* restore_by_copy: a UFFDIO_COPY that returns EAGAIN (an
		 * event pending: the event reader takes no pager lock, so
		 * it clears) is tried again, not given up at once (the
		 * child read zeros; found by the soak under EAGAIN storms) */
		if (err || failed || !restore_by_copy(p, ts, a, (uintptr_t)buf)) {
			/* the parent keeps the page (still swapped); the
			 * child will not see it: say so */
			sa->failed++;
			continue;
		}
		uint64_t nv = (v & PTE_GEN_MASK) + ((v & PTE_INFLIGHT) ? PTE_GEN_ONE : 0);

		/* acq_rel: pairs with the in-flight owner's CAS in swap_in */
		if (atomic_compare_exchange_strong_explicit(&p->pte[i], &v, nv | PTE_PRESENT,
				memory_order_acq_rel, memory_order_relaxed)) {
			if (!(v & PTE_INFLIGHT))
				swb_release(p->swb, h);
			STAT_ADD(ts, resident_pages, 1);
			STAT_INC(ts, swapins);
		}
	}
}

int reclaim_swapin_all_locked(struct ufp_pager *p)
{
	struct swapin_all_ctx sa;

	if (!p->swb)
		return 0;
	pager_assert_write_locked(p);
	sa.ts = thread_stats(p, true);
	sa.failed = 0;
	reclaim_ctx_ensure(p, sa.ts);
	while (!(sa.ctx = reclaim_ctx_get(p, sa.ts)))
		sched_yield();       /* every shared context busy: they are short-lived */
	region_tree_walk(&p->tree, swapin_region, &sa);
	reclaim_ctx_put(p, sa.ts, sa.ctx);
	if (sa.failed) {
		ufp_set_error("ufpager: fork: %ld evicted pages could not be read back; a "
			      "child process reads them as zeros", sa.failed);
		STAT_ADD(sa.ts, fork_swapin_failed, sa.failed);
	}
	return sa.failed ? -EIO : 0;
}

/* ======================================================================
 * Setup and teardown.
 * ====================================================================== */

int reclaim_init(struct ufp_pager *p)
{
	struct swb_params sp = {
		.dir = p->opt.swap_dir, .file_size = p->opt.swap_size,
		.ztier_size = p->opt.ztier_size,
	};
	size_t slen = (size_t)UFP_STAGING_PAGES * UFP_PAGE_SIZE;
	void *st;
	int err;

	p->reclaim.staging_len = slen;
	if (!p->opt.budget)
		return 0;
	if (!(p->features & UFFD_FEATURE_MOVE)) {
		ufp_set_error("ufpager: a resident budget needs UFFDIO_MOVE (Linux 6.8+) to take "
			      "pages away atomically; this kernel lacks it");
		return -EOPNOTSUPP;
	}
	p->reclaim.budget_pages = p->opt.budget >> UFP_PAGE_SHIFT;
	if (p->reclaim.budget_pages < 2 * UFP_STAGING_BATCH) {
		ufp_set_error("ufpager: budget must be at least %d KiB",
			      2 * UFP_STAGING_BATCH * 4);
		return -EINVAL;
	}
	p->reclaim.high_pages = p->reclaim.budget_pages;
	p->reclaim.low_pages = p->reclaim.high_pages - (p->reclaim.high_pages / 16 > UFP_STAGING_BATCH ?
					p->reclaim.high_pages / 16 : UFP_STAGING_BATCH);
	p->slots = sys_mmap(NULL, p->npages * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	p->chash = sys_mmap(NULL, p->npages * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->slots == MAP_FAILED || p->chash == MAP_FAILED)
		return -ENOMEM;
	err = swb_create(&sp, &p->swb);
	if (err) {
		return err;
	}
	for (unsigned k = 0; k < 4; k++)
		if (swb_ctx_create(p->swb, &p->reclaim.ctx_pool[k]))
			p->reclaim.ctx_pool[k] = NULL;
	/* Staging, and after it the parked ring's slots: outside the arena,
	 * never handed to the application, registered with a userfaultfd of
	 * its own (uffd_open_staging), not inherited by a fork child (parked
	 * pages are brought back before a fork; a copy shared with a child
	 * could not be moved again: UFFDIO_MOVE refuses shared pages) */
	err = park_init(p, p->reclaim.budget_pages, 0);
	if (err)
		return err;
	slen += (size_t)p->park.pages * UFP_PAGE_SIZE;
	p->reclaim.staging_len = slen;
	st = sys_mmap(NULL, slen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED)
		return -errno;
	p->reclaim.staging = (uintptr_t)st;
	p->park.area = p->reclaim.staging + (uintptr_t)UFP_STAGING_PAGES * UFP_PAGE_SIZE;
	sys_madvise(st, slen, MADV_DONTFORK);
	err = uffd_open_staging(p, p->reclaim.staging, slen);
	if (err)
		ufp_set_error("ufpager: cannot open the staging area's userfaultfd: %s",
			      strerror(-err));
	return err;
}

/* After the service threads run (eviction's uffd ioctls need them). */
int reclaim_start(struct ufp_pager *p)
{
	if (!p->swb)
		return 0;
	return service_start(&p->reclaim.worker, reclaim_main, p);
}

/* First step of pager destroy: the reclaim thread needs the handlers. */
void reclaim_stop_thread(struct ufp_pager *p)
{
	if (p->reclaim.worker.started)
		atomic_store_explicit(&p->reclaim.stop, true, memory_order_release);
	service_stop(&p->reclaim.worker, &p->reclaim.futex);
}

/* Called at pager destroy after the service threads stopped. */
void reclaim_fini(struct ufp_pager *p)
{
	reclaim_stop_thread(p);
	if (p->swb) {
		ufp_mutex_lock(&p->stats.lock, LL_STATS);
		for (struct ufp_tstats *ts = p->stats.blocks; ts; ts = ts->next)
			if (ts->swb_ctx) {
				swb_ctx_destroy(ts->swb_ctx);
				ts->swb_ctx = NULL;
			}
		ufp_mutex_unlock(&p->stats.lock, LL_STATS);
		for (unsigned k = 0; k < 4; k++)
			if (p->reclaim.ctx_pool[k])
				swb_ctx_destroy(p->reclaim.ctx_pool[k]);
		swb_destroy(p->swb);
		p->swb = NULL;
	}
	if (p->reclaim.staging)   /* its context has no events: nothing waits for a reader */
		sys_munmap((void *)p->reclaim.staging, p->reclaim.staging_len);
	park_fini(p);
	if (p->reclaim.staging_uffd >= 0)
		close(p->reclaim.staging_uffd);
	p->reclaim.staging_uffd = -1;
	if (p->slots && p->slots != MAP_FAILED)
		sys_munmap(p->slots, p->npages * sizeof(uint64_t));
	if (p->chash && p->chash != MAP_FAILED)
		sys_munmap(p->chash, p->npages * sizeof(uint64_t));
	p->reclaim.staging = 0;
	p->slots = p->chash = NULL;
}

/* A thread entering the library gets its own I/O context (normal context). */
