/* SPDX-License-Identifier: MIT */
/*
 * removes.c - the program's own madvise(MADV_DONTNEED) of managed memory,
 * between the kernel's zap and the event worker.
 *
 * The kernel sends the REMOVE event, waits only until a reader has
 * dequeued it (userfaultfd_event_wait_completion), zaps the range and
 * returns to the program. Our entries for the range are discarded later,
 * by the event worker under the pager write lock. In between, an entry
 * that says SWAPPED is stale: a fault there (the program reading what it
 * was just promised is zero) must not swap the old copy back in, and a
 * failed eviction must not put the old page back. So the reader publishes
 * the range as soon as it has read the message (removes_publish, in its
 * read section: handlers' `section` odd, or ev.reading raised), the
 * worker frees it once the entries are gone (removes_done), and the paths
 * that would install old content ask removes_pending first. A fault that
 * began after madvise returned began after the dequeue: it finds the
 * reader still in its section (and waits for it) or the range published.
 *
 * What this does not cover: a swap-in that another thread started before
 * the madvise and whose UFFDIO_COPY lands after the zap (a race of the
 * program's own threads on one page, and a readahead page of such a
 * swap-in). The kernel orders those under the page-table lock; we cannot.
 *
 * Concurrency contract: slots are claimed by CAS (end 0 -> 1) by readers,
 * filled (start, then end with release) and freed by the event worker (end
 * to 0, release); the fault side tests end (acquire), then start. The
 * fault side is async-signal-safe (atomics, sched_yield, futex).
 */
#include <sched.h>
#include <unistd.h>

#include "base.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "removes.h"

#define SLOT_CLAIMED 1

/* Never waits: a reader in its read section must not wait for the event
 * worker, which may be waiting for that section to end (remap.c). With
 * every slot taken the event covers everything until it is applied. */
unsigned removes_publish(struct ufp_pager *p, uintptr_t start, uintptr_t end)
{
	/* relaxed: the count is read only after a section ends or a slot
	 * is seen (release/acquire below) */
	atomic_fetch_add_explicit(&p->rm.published, 1, memory_order_relaxed);
	for (unsigned k = 0; k < UFP_REMOVE_SLOTS; k++) {
		uintptr_t free_end = 0;

		if (!atomic_compare_exchange_strong_explicit(&p->rm.slots[k].end, &free_end,
				SLOT_CLAIMED, memory_order_relaxed, memory_order_relaxed))
			continue;
		atomic_store_explicit(&p->rm.slots[k].start, start, memory_order_relaxed);
		/* release: pairs with the acquire in removes_covers */
		atomic_store_explicit(&p->rm.slots[k].end, end, memory_order_release);
		return k;
	}
	/* release: pairs with the acquire in removes_covers */
	atomic_fetch_add_explicit(&p->rm.overflow, 1, memory_order_release);
	return UFP_REMOVE_SLOTS;
}

void removes_done(struct ufp_pager *p, unsigned k)
{
	/* release: the discarded entries are visible to whoever sees the
	 * slot free (pairs with the acquire in removes_covers) */
	if (k == UFP_REMOVE_SLOTS)
		atomic_fetch_sub_explicit(&p->rm.overflow, 1, memory_order_release);
	else
		atomic_store_explicit(&p->rm.slots[k].end, 0, memory_order_release);
	atomic_fetch_sub_explicit(&p->rm.published, 1, memory_order_release);
	/* release: pairs with the acquire load in removes_wait */
	futex_bump_wake(&p->rm.futex, INT32_MAX);
}

bool removes_covers(struct ufp_pager *p, uintptr_t addr)
{
	/* acquire: pairs with the release decrement in removes_done; a
	 * count of 0 read after a reader's section closed means no range */
	if (!atomic_load_explicit(&p->rm.published, memory_order_acquire))
		return false;
	/* acquire: pairs with the release increment in removes_publish */
	if (atomic_load_explicit(&p->rm.overflow, memory_order_acquire))
		return true;
	for (unsigned k = 0; k < UFP_REMOVE_SLOTS; k++) {
		/* acquire: pairs with the release store of end in removes_publish */
		uintptr_t end = atomic_load_explicit(&p->rm.slots[k].end, memory_order_acquire);

		if (end > SLOT_CLAIMED && addr < end &&
		    addr >= atomic_load_explicit(&p->rm.slots[k].start, memory_order_relaxed))
			return true;
	}
	return false;
}

/* Is a reader between dequeueing messages and publishing their events? */
static bool readers_busy(struct ufp_pager *p)
{
	/* acquire: pairs with the release decrement after the SIGBUS-delivery
	 * reader published */
	if (atomic_load_explicit(&p->ev.reading, memory_order_acquire))
		return true;
	for (unsigned i = 0; i < p->svc.nhandlers; i++)
		/* acquire: pairs with the release increment that ends a section */
		if (atomic_load_explicit(&p->svc.handlers[i].section, memory_order_acquire) & 1)
			return true;
	return false;
}

bool removes_pending(struct ufp_pager *p, uintptr_t addr)
{
	return readers_busy(p) || removes_covers(p, addr);
}

void removes_wait_sections(struct ufp_pager *p)
{
	/* each section open now ends (it publishes what it read): the ones
	 * opened later read messages sent after the caller's look */
	for (unsigned i = 0; i < p->svc.nhandlers; i++) {
		uint64_t s0 = atomic_load_explicit(&p->svc.handlers[i].section, memory_order_acquire);

		while ((s0 & 1) && atomic_load_explicit(&p->svc.handlers[i].section,
							memory_order_acquire) == s0)
			sched_yield();
	}
}

void removes_wait(struct ufp_pager *p, uintptr_t addr)
{
	/* the SIGBUS-delivery reader, then the handlers */
	while (atomic_load_explicit(&p->ev.reading, memory_order_acquire))
		sched_yield();
	removes_wait_sections(p);
	for (;;) {
		uint32_t w = atomic_load_explicit(&p->rm.futex, memory_order_acquire);

		if (!removes_covers(p, addr))
			return;
		futex_wait_ms(&p->rm.futex, w, 1);
	}
}
