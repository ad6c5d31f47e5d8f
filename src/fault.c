/* SPDX-License-Identifier: MIT */
/*
 * fault.c - serving one fault: zero fill with fault-around, and swap-in
 * with the region lock dropped while the I/O is in flight (the user-space
 * image of VM_FAULT_RETRY with the per-VMA lock dropped), readahead, and
 * poisoning of pages whose stored copy is bad.
 *
 * Called from handler threads and from the SIGBUS handler: everything here
 * is async-signal-safe (atomics, futex, ioctl, swb_load on the thread's own
 * I/O context; no malloc, no stdio, no pthread locks).
 *
 * Page-state protocol (p->pte[i], see ufp_internal.h):
 *  - a swap-in claims SWAPPED -> SWAPPED|INFLIGHT with a CAS under the
 *    region read lock, drops the lock, reads, re-locks, and installs only
 *    if the entry is still exactly what it claimed (generation included);
 *    otherwise the entry was discarded meanwhile and the claimer releases
 *    the stored copy (ownership passes to whoever holds INFLIGHT);
 *  - faults that find INFLIGHT drop their lock and wait on the page's
 *    futex (counted as RETRY), so one I/O serves every faulting thread.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "base.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "uffd.h"
#include "pte.h"
#include "reclaim.h"
#include "mm.h"
#include "fault.h"
#include "swap_backend.h"
#include "removes.h"
#include "park.h"

#define ZERO_BUF_PAGES 512
/* UFFDIO_COPY source for zero fill: never registered, never written. */
static const char zero_buf[ZERO_BUF_PAGES * UFP_PAGE_SIZE]
	__attribute__((aligned(UFP_PAGE_SIZE)));

/* ======================================================================
 * Zero fill.
 * ====================================================================== */

/*
 * With a parked ring, a page this thread brought back from swap is not
 * referenced yet: reclaim parks it first (the kernel puts such pages on
 * its inactive list), and only a fault on it while parked makes it a
 * resident one (PTE_REF). Without a ring a fault is the reference. The owner's ring,
 * no shared line: a signal handler nested here overwrites a hint at worst.
 */
static uint64_t fault_ref(struct ufp_pager *p)
{
	return p->park.pages ? 0 : PTE_REF;
}

static void probation_push(struct ufp_pager *p, struct ufp_tstats *ts, size_t i)
{
	uint32_t h;

	if (!p->park.pages || ts->shared)
		return;
	h = atomic_load_explicit(&ts->prob_head, memory_order_relaxed);
	atomic_store_explicit(&ts->prob[h % UFP_PROBATION], (uint64_t)i + 1,
			      memory_order_relaxed);
	/* release: pairs with the acquire in reclaim.c's probation_take */
	atomic_store_explicit(&ts->prob_head, h + 1, memory_order_release);
}

static int64_t mark_present(struct ufp_pager *p, uintptr_t start, size_t len)
{
	int64_t newly = 0;

	for (uintptr_t q = start; q < start + len; q += UFP_PAGE_SIZE) {
		_Atomic uint64_t *e = &p->pte[pte_index(p, q)];
		uint64_t v = atomic_load_explicit(e, memory_order_relaxed);

		/* relaxed: the entry is read under the region lock or by an op
		 * that write-locked the region; CAS keeps concurrent REF/claims */
		while (!(v & PTE_STATE_MASK) &&
		       !atomic_compare_exchange_weak_explicit(e, &v,
				(v & PTE_GEN_MASK) | PTE_PRESENT | PTE_REF,
				memory_order_relaxed, memory_order_relaxed))
			;
		newly += !(v & PTE_STATE_MASK);
	}
	return newly;
}

/* With handler threads the faulting thread sleeps until woken: install
 * without waking, record the page state, then wake (else it could run on,
 * and e.g. evict the page, before its state says present). The SIGBUS
 * handler's thread is the faulting thread itself. */
static bool handler_wakes(struct ufp_pager *p)
{
	return p->delivery == UFP_DELIVERY_HANDLER;
}

static int zero_fill(struct ufp_pager *p, struct ufp_tstats *ts, struct ufp_region *r,
		     uintptr_t page, bool write)
{
	uintptr_t end = region_end(r), limit;
	size_t n = 1;
	long ret;
	int64_t newly;

	/* Fault-around: extend forward over never-populated pages. */
	limit = page + (uintptr_t)p->opt.fault_around * UFP_PAGE_SIZE;
	if (limit > end || limit < page)
		limit = end;
	for (uintptr_t q = page + UFP_PAGE_SIZE; q < limit; q += UFP_PAGE_SIZE) {
		if (atomic_load_explicit(&p->pte[pte_index(p, q)], memory_order_relaxed) &
		    PTE_STATE_MASK)
			break;
		n++;
	}
	/* Write faults get private zeroed pages (no second fault for the
	 * write); read faults map the shared zero page. */
	ret = uffd_fill_mode(p, ts, page, write ? zero_buf : NULL, n * UFP_PAGE_SIZE, true,
			     handler_wakes(p));
	if (ret == -ENOENT && n > 1)
		/* the window crosses a kernel VMA edge (a foreign mprotect
		 * split the region): the kernel refuses the whole range, so
		 * fill the faulting page alone, or its thread never wakes */
		ret = uffd_fill_mode(p, ts, page, write ? zero_buf : NULL, UFP_PAGE_SIZE, true,
				     handler_wakes(p));
	if (ret < 0)
		return ret == -EAGAIN ? -EAGAIN : (ret == -ENOENT || ret == -ESRCH) ? 0 : (int)ret;
	/* referenced and not on probation: short-lived new memory (a buffer
	 * written and unmapped) was parked and dropped again and again, each
	 * park a move with its TLB shootdown (the headline's churn thread:
	 * more parks than accesses); the hand takes a page that lives on */
	newly = mark_present(p, page, (size_t)ret);
	region_count(p, ts, r, RC_FAULTS);
	STAT_INC(ts, faults);
	STAT_INC(ts, faults_missing);
	STAT_INC(ts, faults_zero);
	STAT_ADD(ts, fault_around_pages, (int64_t)(ret / (long)UFP_PAGE_SIZE) - 1);
	STAT_ADD(ts, resident_pages, newly);
	/* wake last: the woken thread may read the counters at once */
	if (handler_wakes(p))
		uffd_wake(p, page, (size_t)ret);
	return 0;
}

/* ======================================================================
 * Swap-in.
 * ====================================================================== */

struct claim {
	size_t idx;
	uint64_t v;          /* the entry as claimed (INFLIGHT set) */
	uint64_t handle;
};

/* Claim up to max entries starting at page (page itself already checked
 * SWAPPED): consecutive SWAPPED pages of the region, for readahead. */
static unsigned claim_window(struct ufp_pager *p, struct ufp_region *r, uintptr_t page,
			     uint64_t v0, unsigned max, struct claim *c)
{
	unsigned n = 0;
	uintptr_t end = region_end(r);

	for (uintptr_t q = page; q < end && n < max; q += UFP_PAGE_SIZE) {
		size_t i = pte_index(p, q);
		uint64_t v = q == page ? v0 : atomic_load_explicit(&p->pte[i], memory_order_relaxed);

		if ((v & (PTE_SWAPPED | PTE_INFLIGHT)) != PTE_SWAPPED)
			break;
		/* the program discarded it (removes.c): not read ahead */
		if (q != page && removes_covers(p, q))
			break;
		if (!pte_claim(p, i, &v, &c[n].handle))
			break;
		c[n].idx = i;
		c[n].v = v;
		n++;
	}
	return n;
}

/* Readahead window for a fault at page: grows while faults are sequential. */
static unsigned ra_window(struct ufp_region *r, uintptr_t page)
{
	uintptr_t last = atomic_exchange_explicit(&r->last_fault, page, memory_order_relaxed);
	unsigned w = atomic_load_explicit(&r->ra_pages, memory_order_relaxed);

	if (last + UFP_PAGE_SIZE == page || (last < page && page - last <= w * UFP_PAGE_SIZE))
		w = w ? (w * 2 > UFP_RA_MAX ? UFP_RA_MAX : w * 2) : 4;
	else
		w = 0;
	atomic_store_explicit(&r->ra_pages, w, memory_order_relaxed);
	return w ? w : 1;
}

static int swap_in(struct ufp_pager *p, struct ufp_tstats *ts, struct fault_lock *fl,
		   struct ufp_region *r, uintptr_t page, uint64_t v, bool rcu_ok)
{
	struct claim c[UFP_RA_MAX];
	uint64_t handles[UFP_RA_MAX], failed = 0;
	void *bufs[UFP_RA_MAX];
	struct swb_ctx *ctx;
	bool drop = p->lock_mode != UFP_LOCK_GLOBAL;   /* GLOBAL holds it: the convoy */
	bool ts_ctx_borrowed = false;
	unsigned n, max;
	uint64_t t0;
	int err, result = 0;

	ctx = reclaim_ctx_get(p, ts);
	if (!ctx) {
		fault_unlock_region(p, fl);
		sched_yield();     /* every shared context busy: look again */
		return -EINTR;
	}
	max = ra_window(r, page);
	if (max > swb_ctx_nbufs(ctx))
		max = swb_ctx_nbufs(ctx);
	n = claim_window(p, r, page, v, max, c);
	if (!n) {
		reclaim_ctx_put(p, ts, ctx);
		fault_unlock_region(p, fl);
		return -EINTR;     /* lost the race: look again */
	}
	if (drop) {
		/* count on the region while we still hold it: after the unlock
		 * it may be unmapped and freed */
		region_count(p, ts, r, RC_RETRY);
		fault_unlock_region(p, fl);
		STAT_INC(ts, lock_retry);
	}
	for (unsigned k = 0; k < n; k++) {
		handles[k] = c[k].handle;
		bufs[k] = swb_ctx_buf(ctx, k);
	}
	t0 = ufp_now_ns();
	err = swb_load(ctx, handles, n, bufs, &failed);
	for (unsigned tries = 0; err == -EBUSY && !failed && tries < 10000; tries++) {
		/* The context is in use by the code this signal handler
		 * interrupted (a nested fault from a signal handler): borrow a
		 * shared one; the interrupted code cannot release its own. */
		struct swb_ctx *alt = reclaim_ctx_get(p, NULL);

		if (!alt || swb_ctx_nbufs(alt) < n) {
			if (alt)
				reclaim_ctx_put(p, NULL, alt);
			sched_yield();
			continue;
		}
		reclaim_ctx_put(p, ts, ctx);
		ctx = alt;
		ts_ctx_borrowed = true;
		for (unsigned k = 0; k < n; k++)
			bufs[k] = swb_ctx_buf(ctx, k);
		err = swb_load(ctx, handles, n, bufs, &failed);
	}
	stats_hist_record(ts, UFP_L_io_lat, ufp_now_ns() - t0);
	if (err == -EBUSY && !failed) {
		/* nothing was read: give the claims back and let the fault retry */
		for (unsigned k = 0; k < n; k++) {
			uint64_t want = c[k].v;

			atomic_compare_exchange_strong_explicit(&p->pte[c[k].idx], &want,
					c[k].v & ~PTE_INFLIGHT, memory_order_release,
					memory_order_relaxed);
			pte_wake(p, c[k].idx);
		}
		reclaim_ctx_put(p, ts_ctx_borrowed ? NULL : ts, ctx);
		if (!drop)
			fault_unlock_region(p, fl);
		sched_yield();
		return -EINTR;
	}
	if (err && !failed)
		failed = n >= 64 ? ~0ull : (1ull << n) - 1;

	if (drop)
		r = fault_lock_region(p, page, ts, rcu_ok, fl);
	for (unsigned k = 0; k < n; k++) {
		size_t i = c[k].idx;
		uintptr_t a = p->arena_base + (i << UFP_PAGE_SHIFT);
		uint64_t cur = atomic_load_explicit(&p->pte[i], memory_order_relaxed);
		uint64_t gen = c[k].v & PTE_GEN_MASK;

		if (!r || cur != c[k].v) {
			/* discarded (unmap, DONTNEED) while we read: the copy is ours
			 * to release, nothing to install */
			swb_release(p->swb, c[k].handle);
			pte_wake(p, i);
			continue;
		}
		if (failed & (1ull << k)) {
			struct uffdio_poison po = { .range = { a, UFP_PAGE_SIZE },
						    .mode = UFFDIO_POISON_MODE_DONTWAKE };

			/* the program gets SIGBUS on this page, never wrong data;
			 * counted first: the faulting thread may read the count
			 * as soon as the page is poisoned */
			STAT_INC(ts, pages_poisoned);
			if (ioctl(p->uffd, UFFDIO_POISON, &po) && errno != EEXIST)
				STAT_ADD(ts, pages_poisoned, -1);
			atomic_store_explicit(&p->pte[i], gen | PTE_POISON, memory_order_release);
			swb_release(p->swb, c[k].handle);
			/* wake last: the woken thread may read the counters at once */
			if (handler_wakes(p))
				uffd_wake(p, a, UFP_PAGE_SIZE);
			pte_wake(p, i);
			continue;
		}
		long ret = uffd_fill_mode(p, ts, a, bufs[k], UFP_PAGE_SIZE, true,
					  (handler_wakes(p) ? UFP_FILL_DONTWAKE : 0) |
					  (dirty_tracked(p) ? UFP_FILL_WP : 0));

		if (ret < 0) {
			/* -EAGAIN: an event is pending; anything else (-ENOMEM):
			 * the page is not installed. Put the entry back as it was;
			 * the faulting page's caller retries (after reading events) */
			atomic_store_explicit(&p->pte[i], c[k].v & ~PTE_INFLIGHT,
					      memory_order_release);
			pte_wake(p, i);
			if (k == 0)
				result = -EAGAIN;
			continue;
		}
		/* the copy stays valid while the page is clean; its hash is the
		 * one the backend kept from the store and just verified (no
		 * second XXH3 of the page here) */
		atomic_store_explicit(&p->chash[i], swb_csum(p->swb, c[k].handle, bufs[k]),
				      memory_order_relaxed);
		/* release: pairs with acquire readers of the entry (evict_claim) */
		atomic_store_explicit(&p->pte[i], gen | PTE_PRESENT | PTE_CLEAN | fault_ref(p),
				      memory_order_release);
		/* the faulting page only: a readahead page parked before its
		 * first use came back with a parked fault each (sequential
		 * refault from the tier took 1.6-1.9x as long); unreferenced,
		 * the clock takes it if it stays unused */
		if (k == 0)
			probation_push(p, ts, i);
		STAT_INC(ts, swapins);
		STAT_ADD(ts, resident_pages, 1);
		if (swb_handle_is_file(c[k].handle))
			STAT_ADD(ts, bytes_read, UFP_PAGE_SIZE);
		/* wake last: the woken thread may read the counters at once.
		 * The faulting page (k == 0) after the readahead: a thread
		 * woken early could discard a readahead page (DONTNEED) whose
		 * copy then lands after the kernel's zap, reviving it */
		if (handler_wakes(p) && k)
			uffd_wake(p, a, UFP_PAGE_SIZE);
		pte_wake(p, i);
	}
	/* (also when the faulting page was discarded meanwhile: the thread
	 * faults again and finds what is there now; -EAGAIN: the retry serves it) */
	if (handler_wakes(p) && !result)
		uffd_wake(p, page, UFP_PAGE_SIZE);
	reclaim_ctx_put(p, ts_ctx_borrowed ? NULL : ts, ctx);
	if (r) {
		region_count(p, ts, r, RC_FAULTS);
		fault_unlock_region(p, fl);
	}
	if (result)
		return result;
	STAT_INC(ts, faults);
	STAT_INC(ts, faults_missing);
	if (swb_handle_is_ztier(c[0].handle))
		STAT_INC(ts, faults_ztier);
	else if (swb_handle_is_file(c[0].handle))
		STAT_INC(ts, faults_file);
	return 0;
}

/* ======================================================================
 * A parked page: a reference the clock could not have seen otherwise.
 * ====================================================================== */

/*
 * Move the parked page back (park_restore), under the region read lock
 * like a zero fill: no I/O, nothing to drop the lock for. The claim
 * (PARKED -> PARKED|INFLIGHT) keeps a drain from taking the slot's page
 * meanwhile; the page comes back referenced, and clean if it was (its
 * stored copy and hash stay valid: nothing wrote it while parked).
 * Returns 0, -EAGAIN (an event pending: the caller retries after events
 * are read), -EINTR (lost a race: look again), or -errno.
 */
static int unpark(struct ufp_pager *p, struct ufp_tstats *ts, struct ufp_region *r,
		  uintptr_t page, uint64_t v)
{
	size_t i = pte_index(p, page);
	uint64_t want = v;
	int ret;

	/* acquire: pairs with park_batch's release publish (park.at[i]) */
	if (!atomic_compare_exchange_strong_explicit(&p->pte[i], &want, v | PTE_INFLIGHT,
			memory_order_acquire, memory_order_relaxed))
		return -EINTR;
	ret = park_restore(p, ts, i, page,
			   UFP_MOVE_NOWAIT | (handler_wakes(p) ? UFP_MOVE_DONTWAKE : 0));
	if (ret) {
		/* nothing moved: parked as before (release: pairs with the
		 * acquire of a fault that waited on INFLIGHT) */
		atomic_store_explicit(&p->pte[i], v, memory_order_release);
		pte_wake(p, i);
		/* -ENOENT/-ESRCH: the range is gone (a foreign munmap whose
		 * event is not applied yet) or the process exits */
		return ret == -ENOENT || ret == -ESRCH ? 0 : ret;
	}
	region_count(p, ts, r, RC_FAULTS);
	STAT_INC(ts, faults);
	STAT_INC(ts, faults_missing);
	STAT_INC(ts, faults_parked);
	/* release: pairs with the acquire loads of fault paths and evictors */
	atomic_store_explicit(&p->pte[i], (v & ~PTE_PARKED) | PTE_PRESENT | PTE_REF,
			      memory_order_release);
	pte_wake(p, i);
	/* wake last: the woken thread may read the counters at once */
	if (handler_wakes(p))
		uffd_wake(p, page, UFP_PAGE_SIZE);
	return 0;
}

/* ======================================================================
 * Entry.
 * ====================================================================== */

bool fault_needs_read(struct ufp_pager *p, uintptr_t addr)
{
	size_t i;

	if (!p->swb || !pager_owns(p, addr))
		return false;
	i = pte_index(p, addr);
	/* relaxed: a hint for ordering a handler's batch; fault_serve decides */
	return (atomic_load_explicit(&p->pte[i], memory_order_relaxed) & PTE_SWAPPED) &&
	       swb_handle_is_file(atomic_load_explicit(&p->slots[i], memory_order_relaxed));
}

int fault_serve(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t addr,
		    bool write, bool rcu_ok)
{
	uintptr_t page = addr & UFP_PAGE_MASK;
	size_t i = pte_index(p, page);

	if (ufp_unlikely(remap_covers(p, page))) {
		/* the program mremapped this range: remap.c installs its pages
		 * and unregisters it, which wakes a thread held by the kernel;
		 * a SIGBUS-delivery thread waits here */
		if (p->delivery == UFP_DELIVERY_SIGBUS)
			remap_wait(p, page);
		return 0;
	}
	for (bool rm_waited = false;;) {
		struct fault_lock fl;
		struct ufp_region *r;
		uint64_t v;
		int ret;

		if (p->reclaim.budget_pages)
			reclaim_throttle(p, ts);
		r = fault_lock_region(p, page, ts, rcu_ok, &fl);
		if (!r)
			return -EFAULT;
		/* acquire: pairs with the release stores that end INFLIGHT */
		v = atomic_load_explicit(&p->pte[i], memory_order_acquire);
		if (v & PTE_INFLIGHT) {
			/* a swap-in or an eviction owns the page: wait for it
			 * without holding the lock, then look again */
			fault_unlock_region(p, &fl);
			STAT_INC(ts, lock_retry);
			pte_wait(p, i);
			continue;
		}
		if (v & PTE_POISON) {
			fault_unlock_region(p, &fl);
			return -EHWPOISON;   /* SIGBUS for this page, by design */
		}
		if ((v & (PTE_SWAPPED | PTE_PARKED)) &&
		    (rm_waited ? removes_covers(p, page) : removes_pending(p, page))) {
			/* The program may have discarded this page (its own
			 * DONTNEED, read and not applied yet): the old copy
			 * must not come back. Wait for the event, holding no
			 * lock; after one wait every REMOVE read before this
			 * fault is published, so only a range counts. */
			fault_unlock_region(p, &fl);
			removes_wait(p, page);
			rm_waited = true;
			continue;
		}
		if (v & PTE_SWAPPED)
			ret = swap_in(p, ts, &fl, r, page, v, rcu_ok);
		else if (v & PTE_PARKED) {
			ret = unpark(p, ts, r, page, v);
			fault_unlock_region(p, &fl);
		} else {
			ret = zero_fill(p, ts, r, page, write);
			fault_unlock_region(p, &fl);
		}
		if (ret == -EINTR)
			continue;         /* lost a race: look again */
		return ret;               /* 0, -EAGAIN (event pending), -errno */
	}
}
