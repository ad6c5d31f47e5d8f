/* SPDX-License-Identifier: MIT */
/*
 * vma_locks.c - the pager-wide lock (the mmap_lock image), the per-region
 * lock protocol (the kernel's per-VMA locks, 6.4+, with the 6.15 reader
 * count), lock_region_under_rcu, and the debug lock-order checker.
 *
 * Lock order (checked by lockdep_acquire() in UFP_DEBUG builds; every
 * level below is acquired through it, enum ufp_lock_level):
 *
 *     LL_PAGERS  pagers_lock (pagers.c: the process's pager table; the
 *                fork handlers hold it across fork)
 *       LL_PAGER   pager lock (read or write)
 *         LL_REGION  region write-lock (mark, in address order when
 *                    several) or region read-lock
 *           LL_PARK    park.lock (park.c: the parked ring's head and tail;
 *                      eviction's moves into and out of the ring)
 *             LL_STATS   stats_lock (a pager's list of counter blocks)
 *               LL_SWAP    swap backend mutexes (tier, context list)
 *
 * A page's INFLIGHT bit is an ownership claim, not a lock: its owner may
 * drop and retake region locks while it does I/O, and a thread waits for
 * it (pte_wait) only while it holds no lock at all (asserted).
 *
 * Readers take a region read-lock without the pager lock. They never take
 * the pager lock while holding a region lock, except through the fallback
 * (drop the region lock, then take the pager lock for read).
 *
 * A region is write-locked exactly when r->lock_seq == pager->lock.seq.
 * The pager's sequence is odd while the pager lock is held for write; the
 * bump at write-unlock (or downgrade) releases every region marked in that
 * section at once. There is no per-region write unlock.
 */
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "rcu.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"

uint32_t region_readers_max = REGION_READERS_MASK - 1;

/* ======================================================================
 * The pager lock: writer-preferring futex rwsem.
 * state: bits 0..29 readers, WAITING = a writer waits (blocks new readers),
 * WRITER = held for write.
 * ====================================================================== */
/* PL_WRITER, PL_WAITING, PL_READERS: ufp_internal.h (pager_is_write_locked) */

void pager_lock_init(struct ufp_pager *p, uint32_t initial_seq)
{
	atomic_init(&p->lock.state, 0);
	atomic_init(&p->lock.writer_seq, 0);
	/* even: no section open */
	atomic_init(&p->lock.seq, initial_seq & ~1u);
}

static bool pager_read_trylock_raw(struct ufp_pager *p)
{
	uint32_t s = atomic_load_explicit(&p->lock.state, memory_order_relaxed);

	while (!(s & (PL_WRITER | PL_WAITING))) {
		/* acquire: pairs with the release in pager_write_unlock */
		if (atomic_compare_exchange_weak_explicit(&p->lock.state, &s, s + 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

bool pager_read_trylock(struct ufp_pager *p)
{
	if (!pager_read_trylock_raw(p))
		return false;
	lockdep_acquire(LL_PAGER, 0);
	return true;
}

void pager_read_lock(struct ufp_pager *p)
{
	for (;;) {
		if (pager_read_trylock_raw(p))
			break;
		/* Sleep until the writer side changes: writer_seq is bumped
		 * (release) by every write unlock before the wake. */
		uint32_t seq = atomic_load_explicit(&p->lock.writer_seq,
						    memory_order_acquire);
		uint32_t s = atomic_load_explicit(&p->lock.state, memory_order_relaxed);
		if (s & (PL_WRITER | PL_WAITING))
			futex_wait(&p->lock.writer_seq, seq, NULL);
	}
	lockdep_acquire(LL_PAGER, 0);
}

void pager_read_unlock(struct ufp_pager *p)
{
	lockdep_release(LL_PAGER);
	/* release: our reads of the tree happen before a writer's changes */
	uint32_t s = atomic_fetch_sub_explicit(&p->lock.state, 1, memory_order_release);

	UFP_ASSERT((s & PL_READERS) > 0);
	if ((s & PL_READERS) == 1 && (s & PL_WAITING))
		futex_wake(&p->lock.state, INT_MAX);
}

void pager_write_lock(struct ufp_pager *p)
{
	lockdep_acquire(LL_PAGER, 0);
	for (;;) {
		uint32_t s = atomic_load_explicit(&p->lock.state, memory_order_relaxed);

		if (!(s & PL_WRITER) && !(s & PL_READERS)) {
			/* acquire: pairs with the release of the last unlock */
			if (atomic_compare_exchange_weak_explicit(&p->lock.state, &s,
					(s & ~PL_WAITING) | PL_WRITER,
					memory_order_acquire, memory_order_relaxed))
				break;
			continue;
		}
		/* announce: new readers back off (fair to writers, like rwsem) */
		if (!(s & PL_WAITING) &&
		    !atomic_compare_exchange_weak_explicit(&p->lock.state, &s,
				s | PL_WAITING, memory_order_relaxed, memory_order_relaxed))
			continue;
		futex_wait(&p->lock.state, s | PL_WAITING, NULL);
	}
	p->lock.owner = pthread_self();
	/* Open the section: odd sequence. Release pairs with the acquire
	 * loads in region_read_trylock (a reader seeing the new value sees
	 * the section as open). */
	atomic_fetch_add_explicit(&p->lock.seq, 1, memory_order_release);
	lockdep_reset_section();
}

/* Close the section: every region marked in it is released at once. */
static void pager_end_write_section(struct ufp_pager *p)
{
	UFP_ASSERT(atomic_load_explicit(&p->lock.seq, memory_order_relaxed) & 1);
	/* release: pairs with the acquire in region_read_trylock; readers that
	 * see the new sequence see every change made under the marks */
	atomic_fetch_add_explicit(&p->lock.seq, 1, memory_order_release);
	lockdep_reset_section();
}

static void pager_wake_all(struct ufp_pager *p)
{
	/* release: pairs with the acquire load of writer_seq in pager_read_lock */
	futex_bump_wake(&p->lock.writer_seq, INT_MAX);
	futex_wake(&p->lock.state, INT_MAX);
}

void pager_write_unlock(struct ufp_pager *p)
{
	pager_assert_write_locked(p);
	pager_end_write_section(p);
	p->lock.owner = 0;
	/* release: the tree changes happen before the next reader's acquire */
	atomic_fetch_and_explicit(&p->lock.state, ~PL_WRITER, memory_order_release);
	pager_wake_all(p);
	lockdep_release(LL_PAGER);
}

void pager_write_downgrade(struct ufp_pager *p)
{
	pager_assert_write_locked(p);
	pager_end_write_section(p);
	p->lock.owner = 0;
	/* WRITER -> one reader, atomically; keep a waiting writer's bit. Release
	 * pairs with the acquire of other readers' trylock. */
	uint32_t s = atomic_load_explicit(&p->lock.state, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&p->lock.state, &s,
			(s & ~PL_WRITER) + 1, memory_order_release, memory_order_relaxed))
		;
	pager_wake_all(p);
}

/* ======================================================================
 * Region locks. Writers: pager write lock held. Readers: never wait.
 * ====================================================================== */

void region_write_lock(struct ufp_region *r)
{
	struct ufp_pager *p = r->pager;
	uint32_t seq;

	pager_assert_write_locked(p);
	seq = atomic_load_explicit(&p->lock.seq, memory_order_relaxed);
	/* Already marked in this section: a no-op (bulk unlock semantics). */
	if (atomic_load_explicit(&r->lock_seq, memory_order_relaxed) == seq)
		return;
	lockdep_acquire(LL_REGION, region_start(r));
	lockdep_release(LL_REGION);  /* released in bulk, not tracked as held */

	/* Announce: the CAS in region_read_trylock sees the bit and fails.
	 * seq_cst RMW on the same word as the readers' count: no reader can
	 * increment past it. */
	uint32_t c = atomic_fetch_or_explicit(&r->readers, REGION_WRITER_ANNOUNCED,
					      memory_order_seq_cst);
	uint64_t t0 = 0;

	while (c & REGION_READERS_MASK) {
		/* Wait on the pager's writer futex (one writer at a time, like
		 * mm->vma_writer_wait). Load the futex word before re-reading
		 * the count so a wake between the two is not lost. Acquire:
		 * pairs with the release increment in region_read_unlock. */
		uint32_t w = atomic_load_explicit(&p->lock.writer_wait, memory_order_acquire);

		if (!t0)
			t0 = ufp_now_ns();
		/* acquire: pairs with the release decrement in region_read_unlock,
		 * so the readers' accesses happen before our changes */
		c = atomic_load_explicit(&r->readers, memory_order_acquire);
		if (!(c & REGION_READERS_MASK))
			break;
		futex_wait(&p->lock.writer_wait, w, NULL);
	}
	if (t0)
		stats_hist_record(thread_stats(p, true), UFP_L_lock_wait,
				ufp_now_ns() - t0);
	/* release: pairs with the acquire re-check in region_read_trylock */
	atomic_store_explicit(&r->lock_seq, seq, memory_order_release);
	/* withdraw: readers now fail on the sequence instead. Release orders
	 * the lock_seq store before it for a reader whose CAS reads this. */
	atomic_fetch_and_explicit(&r->readers, ~REGION_WRITER_ANNOUNCED,
				  memory_order_release);
}

static void region_read_unlock_raw(struct ufp_region *r);

bool region_read_trylock(struct ufp_region *r)
{
	struct ufp_pager *p = r->pager;
	/* acquire: pairs with the release bump in pager_end_write_section */
	uint32_t pseq = atomic_load_explicit(&p->lock.seq, memory_order_acquire);

	/* acquire: pairs with the release store in region_write_lock */
	if (atomic_load_explicit(&r->lock_seq, memory_order_acquire) == pseq)
		return false;

	uint32_t c = atomic_load_explicit(&r->readers, memory_order_relaxed);
	do {
		if ((c & REGION_WRITER_ANNOUNCED) ||
		    (c & REGION_READERS_MASK) >= region_readers_max)
			return false;
		/* acquire: pairs with the writer's release withdraw, so a reader
		 * that gets in after a writer sees its lock_seq store */
	} while (!atomic_compare_exchange_weak_explicit(&r->readers, &c, c + 1,
			memory_order_acquire, memory_order_relaxed));

	/* Re-check after the increment: a section may have opened and marked
	 * this region between the first check and the CAS. Both acquires. */
	pseq = atomic_load_explicit(&p->lock.seq, memory_order_acquire);
	if (atomic_load_explicit(&r->lock_seq, memory_order_acquire) == pseq) {
		region_read_unlock_raw(r);
		return false;
	}
	lockdep_acquire(LL_REGION, 0);
	return true;
}

/* Undo a read lock. After the decrement the region may be drained,
 * detached and freed by a writer, so the pager pointer is read into a local
 * before it and nothing of r is touched after it: the unlock use-after-free
 * the review of the kernel series found (vma_end_read). */
void (*region_unlock_test_hook)(struct ufp_region *r);

static void region_read_unlock_raw(struct ufp_region *r)
{
	struct ufp_pager *p = r->pager;
	/* release: our page-state accesses happen before the writer's
	 * acquire in region_write_lock */
	uint32_t c = atomic_fetch_sub_explicit(&r->readers, 1, memory_order_release);

	UFP_ASSERT((c & REGION_READERS_MASK) > 0);
#ifdef UFP_INTERNAL_TESTING
	if (region_unlock_test_hook)
		region_unlock_test_hook(r);   /* may free r: r is dead from here */
#endif
	if ((c & REGION_WRITER_ANNOUNCED) && (c & REGION_READERS_MASK) == 1) {
		/* release: pairs with the writer's acquire load of writer_wait */
		futex_bump_wake(&p->lock.writer_wait, 1);
	}
}

void region_read_unlock(struct ufp_region *r)
{
	lockdep_release(LL_REGION);
	region_read_unlock_raw(r);
}

/* ======================================================================
 * lock_region_under_rcu and the fault-side locking wrapper.
 * ====================================================================== */

#define LOCK_MISS_RETRIES 8

static void count_lock(struct ufp_pager *p, struct ufp_tstats *ts, struct ufp_region *r,
		       enum ufp_counter c, enum ufp_rcount k)
{
	stats_add(ts, c, 1);
	if (r)
		region_count(p, ts, r, k);
}

struct ufp_region *lock_region_under_rcu(struct ufp_pager *p, uintptr_t addr,
					 struct ufp_tstats *ts, bool *aborted)
{
	struct ufp_region *r;
	unsigned tries = 0;

	*aborted = false;
	urcu_memb_read_lock();
retry:
	r = region_tree_lookup(&p->tree, addr);
	if (!r) {
		/* Not an answer: a region's end shrinks in place before the
		 * split-off half is published, so an older root may miss it.
		 * Like the kernel, fall back to the pager lock, which does
		 * answer (lock_vma_under_rcu's "inval" path). */
		count_lock(p, ts, NULL, UFP_C_lock_abort, RC_ABORT);
		ufp_rcu_read_unlock();
		*aborted = true;
		return NULL;
	}
	if (r->flags & UFP_RF_HOLE) {
		ufp_rcu_read_unlock();
		return NULL;
	}
#ifdef UFP_INTERNAL_TESTING
	if (p->hook_after_lookup)
		p->hook_after_lookup(p, addr);
#endif
	if (!region_read_trylock(r)) {
		count_lock(p, ts, r, UFP_C_lock_abort, RC_ABORT);
		ufp_rcu_read_unlock();
		*aborted = true;
		return NULL;
	}
	/* Bounds may have changed before we got the lock (split, trim), and the
	 * region may have left the tree (unmap, merge): re-walk and require the
	 * same region. */
	if (atomic_load_explicit(&r->detached, memory_order_acquire) ||
	    addr < region_start(r) || addr >= region_end(r) ||
	    region_tree_lookup(&p->tree, addr) != r) {
		count_lock(p, ts, r, UFP_C_lock_miss, RC_MISS);   /* r still held */
		region_read_unlock(r);
		if (++tries < LOCK_MISS_RETRIES)
			goto retry;
		ufp_rcu_read_unlock();
		*aborted = true;
		return NULL;
	}
	ufp_rcu_read_unlock();
	count_lock(p, ts, r, UFP_C_lock_success, RC_SUCCESS);
	return r;
}

struct ufp_region *fault_lock_region(struct ufp_pager *p, uintptr_t addr,
				     struct ufp_tstats *ts, bool rcu_ok,
				     struct fault_lock *fl)
{
	struct ufp_region *r;
	uint64_t t0;

	fl->kind = FLK_NONE;
	fl->r = NULL;
	if (p->lock_mode == UFP_LOCK_PER_REGION && rcu_ok) {
		bool aborted;

		r = lock_region_under_rcu(p, addr, ts, &aborted);
		if (r) {
			fl->kind = FLK_REGION;
			fl->r = r;
			return r;
		}
		if (!aborted)
			return NULL;
	}
	if (p->lock_mode == UFP_LOCK_PER_REGION)   /* aborted, or no RCU here */
		stats_add(ts, UFP_C_lock_fallback, 1);
	/* The pager lock for read: global mode, an unregistered thread in
	 * signal context, or the per-region fallback. */
	t0 = ufp_now_ns();
	if (!pager_read_trylock(p)) {
		pager_read_lock(p);
		stats_hist_record(ts, UFP_L_lock_wait, ufp_now_ns() - t0);
	}
	r = region_tree_lookup(&p->tree, addr);
	if (!r || (r->flags & UFP_RF_HOLE)) {
		pager_read_unlock(p);
		return NULL;
	}
	fl->kind = FLK_PAGER;
	fl->r = r;
	return r;
}

void fault_unlock_region(struct ufp_pager *p, struct fault_lock *fl)
{
	if (fl->kind == FLK_REGION)
		region_read_unlock(fl->r);
	else if (fl->kind == FLK_PAGER)
		pager_read_unlock(p);
	fl->kind = FLK_NONE;
	fl->r = NULL;
}
