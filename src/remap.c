/* SPDX-License-Identifier: MIT */
/*
 * remap.c - mremap(2) of managed memory by the program itself.
 *
 * The kernel moves the resident pages with the VMA and keeps the range
 * registered with our userfaultfd (UFFD_FEATURE_EVENT_REMAP), then sends a
 * REMAP event. Evicted pages live only in our swap store, indexed by arena
 * address: they would read as zeros at the new address. So the moved range
 * is carried over: its stored copies are taken out of the page table under
 * the pager write lock, installed at the new address with UFFDIO_COPY, and
 * the range is then unregistered: it is the program's own memory from then
 * on (outside the budget, like any memory the program maps itself).
 *
 * Faults on the new range before that is done are held back:
 *  - the event's reader publishes the range (remap_publish) as soon as it
 *    has read the message; until then `ev_reading` is raised, and a SIGBUS
 *    on an address no pager owns waits for it to drop (remap_wait_reader);
 *  - a SIGBUS in a published range waits until the range is done, then
 *    returns (the access is re-executed on a present page or on ordinary
 *    memory); a handler thread ignores such a fault: the UFFDIO_COPY of its
 *    page, or the final UFFDIO_UNREGISTER, wakes the faulting thread.
 *
 * Concurrency contract: slots are claimed by CAS (end 0 -> 1) by event
 * readers, filled (to, then end with release) and cleared by the event
 * worker (end, then to) after the range is unregistered; readers test end
 * (acquire) then to. Everything on the fault side is async-signal-safe.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

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
#include "swap_backend.h"
#include "removes.h"
#include "park.h"

#define SLOT_CLAIMED 1

bool remap_covers(struct ufp_pager *p, uintptr_t addr)
{
	for (unsigned k = 0; k < UFP_REMAP_SLOTS; k++) {
		/* acquire: pairs with the release store of end in remap_publish */
		uintptr_t end = atomic_load_explicit(&p->remap.slots[k].end, memory_order_acquire);

		if (end > SLOT_CLAIMED && addr < end &&
		    addr >= atomic_load_explicit(&p->remap.slots[k].to, memory_order_relaxed))
			return true;
	}
	return false;
}

/* Event reader (normal context): publish the moved range. Waits for a free
 * slot (the event worker frees them). Returns the slot. */
unsigned remap_publish(struct ufp_pager *p, uintptr_t from, uintptr_t to, size_t len)
{
	for (;;) {
		for (unsigned k = 0; k < UFP_REMAP_SLOTS; k++) {
			uintptr_t free_end = 0;

			if (!atomic_compare_exchange_strong_explicit(&p->remap.slots[k].end, &free_end,
					SLOT_CLAIMED, memory_order_relaxed, memory_order_relaxed))
				continue;
			atomic_store_explicit(&p->remap.slots[k].to, to, memory_order_relaxed);
			p->remap.slots[k].from = from;
			atomic_store_explicit(&p->remap.slots[k].carried, false, memory_order_relaxed);
			/* release: pairs with the acquire in remap_covers */
			atomic_store_explicit(&p->remap.slots[k].end, to + len, memory_order_release);
			return k;
		}
		usleep(100);
	}
}

void remap_end(struct ufp_pager *p, unsigned k)
{
	atomic_store_explicit(&p->remap.slots[k].end, 0, memory_order_release);
	atomic_store_explicit(&p->remap.slots[k].to, 0, memory_order_relaxed);
	/* release: pairs with the acquire load in remap_wait */
	futex_bump_wake(&p->remap.futex, INT32_MAX);
}

/* Fault side (async-signal-safe): wait until addr is no longer in a range
 * being carried over. */
void remap_wait(struct ufp_pager *p, uintptr_t addr)
{
	struct timespec ts = { 0, 1000000 };

	for (;;) {
		uint32_t w = atomic_load_explicit(&p->remap.futex, memory_order_acquire);

		if (!remap_covers(p, addr))
			return;
		futex_wait(&p->remap.futex, w, &ts);
	}
}

/* SIGBUS on an address no pager owns (async-signal-safe): if an event
 * reader is between reading a REMAP and publishing it, wait for it.
 * Returns whether it waited (the caller looks again). */
bool remap_wait_reader(struct ufp_pager *p)
{
	bool waited = false;

	/* acquire: pairs with the release decrement after publishing */
	while (atomic_load_explicit(&p->ev.reading, memory_order_acquire)) {
		waited = true;
		sched_yield();
	}
	return waited;
}

/* ======================================================================
 * The event worker's part (normal context, no lock held on entry).
 * ====================================================================== */

/*
 * Take the stored copies of [from, from+len) out of the page table and
 * remove the old range from the tree. Pages in flight (a swap-in that
 * started before the move, an eviction claim) settle first; they need the
 * locks we would hold, so wait for them without locks and look again.
 * handles[k]: the copy of page k, 0 (none), or UFP_REMAP_POISON.
 */
static void remap_take(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t from,
		       uintptr_t to, size_t len, uint64_t *handles)
{
	size_t n = len >> UFP_PAGE_SHIFT, first = pte_index(p, from);

	for (;;) {
		bool busy = false;

		for (size_t k = 0; k < n; k++)
			while (atomic_load_explicit(&p->pte[first + k], memory_order_acquire) &
			       PTE_INFLIGHT)
				pte_wait(p, first + k);
		pager_write_lock(p);
		mm_lock_range(p, from, from + len);
		/* Parked pages are claimed here: a drain claims them without
		 * region locks (reclaim.c), and one that got in first needs our
		 * region lock to finish: let go and wait for it. handles[k] = 1
		 * marks our own claims until then. */
		for (size_t k = 0; k < n && !busy; k++) {
			uint64_t v = atomic_load_explicit(&p->pte[first + k], memory_order_acquire);

			handles[k] = 0;
			if (v & PTE_INFLIGHT)
				busy = true;
			else if (v & PTE_PARKED) {
				/* acquire: pairs with park_batch's release publish */
				busy = !atomic_compare_exchange_strong_explicit(&p->pte[first + k], &v,
						v | PTE_INFLIGHT, memory_order_acquire,
						memory_order_relaxed);
				handles[k] = !busy;
			}
		}
		if (!busy)
			break;
		for (size_t k = 0; k < n; k++)
			if (handles[k]) {
				/* release: pairs with the acquire of the drain's claim */
				atomic_fetch_and_explicit(&p->pte[first + k], ~PTE_INFLIGHT,
							  memory_order_release);
				pte_wake(p, first + k);
			}
		region_tree_commit(&p->tree);
		pager_write_unlock(p);
	}
	for (size_t k = 0; k < n; k++) {
		_Atomic uint64_t *e = &p->pte[first + k];
		uint64_t v = atomic_load_explicit(e, memory_order_acquire);

		handles[k] = 0;
		if (v & PTE_PARKED) {
			/* ours (claimed above): its page goes straight to the new
			 * place; it left the budget (the entry is emptied here,
			 * so the unmap below does not count it) */
			int err;

			while ((err = park_restore(p, ts, first + k, to + (k << UFP_PAGE_SHIFT), 0)) ==
			       -EAGAIN)
				sched_yield();
			if (!err)
				STAT_INC(ts, remap_swapins);
			STAT_ADD(ts, resident_pages, -1);
			atomic_store_explicit(e, (v & PTE_GEN_MASK) + PTE_GEN_ONE, memory_order_release);
			pte_wake(p, first + k);
			continue;
		}
		if (v & PTE_POISON)
			handles[k] = UFP_REMAP_POISON;
		else if (!(v & PTE_SWAPPED))
			continue;        /* resident (moved by the kernel) or never touched */
		else
			handles[k] = atomic_load_explicit(&p->slots[first + k], memory_order_relaxed);
		/* empty, new generation: the copy is ours now, unmap must not
		 * release it (regions are write-locked: no claimer runs) */
		atomic_store_explicit(e, (v & PTE_GEN_MASK) + PTE_GEN_ONE, memory_order_release);
	}
}

void remap_carry(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t from, uintptr_t to,
		 size_t len, unsigned slot)
{
	size_t n = len >> UFP_PAGE_SHIFT;

	/* relaxed: only the event worker writes and reads `carried` */
	if (atomic_load_explicit(&p->remap.slots[slot].carried, memory_order_relaxed))
		return;                  /* an UNMAP of the old range came first */
	uint64_t *handles = NULL;
	struct swb_ctx *ctx = NULL;
	bool owned = pager_owns(p, from) && len <= p->arena_end - from;

	if (owned && p->swb)
		handles = slab_calloc(n, sizeof(*handles));
	if (owned && handles) {
		remap_take(p, ts, from, to, len, handles);
	} else {
		pager_write_lock(p);
		if (owned)
			ufp_log("ufpager: out of memory carrying %zu pages over an mremap; "
				"their evicted copies are dropped\n", n);
	}
	if (owned)
		mm_unmap_locked(p, from, from + len, true);
	if (pager_owns(p, to)) {
		/* moved into our arena's reservation: keep it out of use */
		struct ufp_region *h = region_alloc(p, to, to + len, 0, UFP_RF_HOLE);

		if (h && region_tree_insert(&p->tree, h) != 0)
			slab_free(h);
	}
	region_tree_commit(&p->tree);
	pager_write_unlock(p);

	if (handles) {
		ctx = reclaim_ctx_get(p, ts);
		while (!ctx) {
			sched_yield();
			ctx = reclaim_ctx_get(p, ts);
		}
	}
	for (size_t k = 0; handles && k < n; k++) {
		uintptr_t a = to + (k << UFP_PAGE_SHIFT);
		uint64_t h = handles[k], failed = 0;
		void *buf;
		long r;
		int err;

		if (!h)
			continue;
		if (h == UFP_REMAP_POISON) {
			struct uffdio_poison po = { .range = { a, UFP_PAGE_SIZE } };

			ioctl(p->uffd, UFFDIO_POISON, &po);
			continue;
		}
		buf = swb_ctx_buf(ctx, 0);
		err = swb_load(ctx, &h, 1, &buf, &failed);
		if (err || failed) {
			/* SIGBUS on this page, never wrong data */
			struct uffdio_poison po = { .range = { a, UFP_PAGE_SIZE } };

			if (ioctl(p->uffd, UFFDIO_POISON, &po) == 0)
				STAT_INC(ts, pages_poisoned);
			swb_release(p->swb, h);
			continue;
		}
		while ((r = uffd_fill(p, ts, a, buf, UFP_PAGE_SIZE, true)) == -EAGAIN)
			sched_yield();    /* another event pending: it is read elsewhere */
		swb_release(p->swb, h);
		if (r > 0)
			STAT_INC(ts, remap_swapins);
		/* -ENOENT: the program unmapped the new range meanwhile */
	}
	if (ctx)
		reclaim_ctx_put(p, ts, ctx);
	slab_free(handles);
	/* the program's own memory from now on; wakes faults held back */
	uffd_unregister(p, to, len);
	atomic_store_explicit(&p->remap.slots[slot].carried, true, memory_order_relaxed);
}

/*
 * mremap also unmaps the old range, and the kernel sends its UNMAP event
 * after the REMAP. With several handler threads the UNMAP can be queued
 * first (the thread that read the REMAP was preempted before it queued
 * it), and applying it would release the copies the REMAP must carry. So
 * before an UNMAP or REMOVE the event worker waits until every read that
 * was in progress has published its events (each handler's `section` is
 * odd from before its read until then), and carries over first every
 * published move whose old range the UNMAP touches. Event worker only.
 */
void remap_carry_before_unmap(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t s,
			      uintptr_t e)
{
	removes_wait_sections(p);
	for (unsigned k = 0; k < UFP_REMAP_SLOTS; k++) {
		uintptr_t end = atomic_load_explicit(&p->remap.slots[k].end, memory_order_acquire);
		uintptr_t to, from;

		if (end <= SLOT_CLAIMED ||
		    atomic_load_explicit(&p->remap.slots[k].carried, memory_order_relaxed))
			continue;
		/* only once the slot is seen published: a reader may be
		 * filling a claimed one (a data race TSan found) */
		to = atomic_load_explicit(&p->remap.slots[k].to, memory_order_relaxed);
		from = p->remap.slots[k].from;
		if (from < e && from + (end - to) > s)
			remap_carry(p, ts, from, to, end - to, k);
	}
}
