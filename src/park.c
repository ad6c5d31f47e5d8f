/* SPDX-License-Identifier: MIT */
/*
 * park.c - the parked (soft inactive) list's ring and the way back: the
 * ring of slots eviction parks pages in and drains from its tail, and
 * park_restore, which moves a parked page back where it belongs (the
 * fault path, fork, mremap). The policy, what is parked and when the tail
 * is stored, is reclaim.c's; park.h describes the states.
 *
 * The ring's head and tail, and every move of eviction into or out of the
 * ring, are under park.lock (LL_PARK): a drain's move of the tail's slots
 * must never see a page parked after its claim (it would take that page
 * with the stale ones and drop it). park_restore takes no lock: the entry's
 * INFLIGHT claim makes the slot its own, and a drain stops at a slot whose
 * page is claimed (reclaim.c).
 */
#include <sys/mman.h>

#include "base.h"
#include "sys.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "pager.h"
#include "uffd.h"
#include "park.h"

int park_init(struct ufp_pager *p, uint64_t budget_pages, uintptr_t area)
{
	uint64_t n = budget_pages * p->opt.park_pct / 100;

	n -= n % UFP_PARK_BATCH;
	p->park.pages = 0;
	p->park.area = area;
	if (n < 2 * UFP_PARK_BATCH)
		return 0;                  /* too small to be a list: off */
	p->park.ring = sys_mmap(NULL, n * sizeof(*p->park.ring), PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p->park.at = sys_mmap(NULL, p->npages * sizeof(*p->park.at), PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->park.ring == MAP_FAILED || p->park.at == MAP_FAILED) {
		park_fini(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->park.lock, NULL);
	p->park.pages = (uint32_t)n;
	return 0;
}

void park_fini(struct ufp_pager *p)
{
	if (p->park.ring && p->park.ring != MAP_FAILED)
		sys_munmap((void *)p->park.ring, p->park.pages * sizeof(*p->park.ring));
	if (p->park.at && p->park.at != MAP_FAILED)
		sys_munmap((void *)p->park.at, p->npages * sizeof(*p->park.at));
	p->park.ring = NULL;
	p->park.at = NULL;
	p->park.pages = 0;
}

uint32_t park_room(struct ufp_pager *p)
{
	/* relaxed: a hint; park_reserve decides under the lock */
	uint64_t used = atomic_load_explicit(&p->park.used, memory_order_relaxed);

	return used >= p->park.pages ? 0 : (uint32_t)(p->park.pages - used);
}

uintptr_t park_slot_addr(struct ufp_pager *p, uint32_t k)
{
	return p->park.area + ((uintptr_t)k << UFP_PAGE_SHIFT);
}

void park_lock(struct ufp_pager *p)
{
	ufp_mutex_lock(&p->park.lock, LL_PARK);
}

void park_unlock(struct ufp_pager *p)
{
	ufp_mutex_unlock(&p->park.lock, LL_PARK);
}

uint32_t park_reserve(struct ufp_pager *p, uint32_t n, uint32_t *first)
{
	uint64_t free = p->park.pages - (p->park.head - p->park.tail);
	uint32_t k = (uint32_t)(p->park.head % p->park.pages);

	UFP_ASSERT(lockdep_held(LL_PARK));
	if (n > free)
		n = (uint32_t)free;
	if (n > p->park.pages - k)
		n = p->park.pages - k;      /* never across the ring's end */
	*first = k;
	p->park.head += n;
	/* relaxed: a hint for park_room */
	atomic_store_explicit(&p->park.used, p->park.head - p->park.tail, memory_order_relaxed);
	return n;
}

void park_record(struct ufp_pager *p, uint32_t k, size_t i)
{
	UFP_ASSERT(lockdep_held(LL_PARK));
	/* relaxed: published by the release store of the entry (PARKED),
	 * which fault paths read with acquire before they look here */
	atomic_store_explicit(&p->park.at[i], k, memory_order_relaxed);
	atomic_store_explicit(&p->park.ring[k], (uint64_t)i + 1, memory_order_relaxed);
}

uint32_t park_oldest(struct ufp_pager *p, uint32_t n, uint32_t *first)
{
	uint64_t used = p->park.head - p->park.tail;
	uint32_t k = (uint32_t)(p->park.tail % p->park.pages);

	UFP_ASSERT(lockdep_held(LL_PARK));
	if (n > used)
		n = (uint32_t)used;
	if (n > p->park.pages - k)
		n = p->park.pages - k;
	*first = k;
	return n;
}

size_t park_slot_page(struct ufp_pager *p, uint32_t k)
{
	/* relaxed: the writers of a slot's entry hold the lock we hold, but
	 * park_restore's clear (no lock); a stale non-zero read is checked
	 * against the entry and park.at by the caller */
	uint64_t e = atomic_load_explicit(&p->park.ring[k], memory_order_relaxed);

	UFP_ASSERT(lockdep_held(LL_PARK));
	return e ? (size_t)(e - 1) : SIZE_MAX;
}

void park_forget(struct ufp_pager *p, uint32_t k)
{
	UFP_ASSERT(lockdep_held(LL_PARK));
	/* relaxed: ring entries are read under the lock, and a hole moves
	 * as nothing whatever a reader saw */
	atomic_store_explicit(&p->park.ring[k], 0, memory_order_relaxed);
}

void park_advance_tail(struct ufp_pager *p, uint32_t n)
{
	UFP_ASSERT(lockdep_held(LL_PARK));
	/* relaxed: under the lock (park_forget); `used` is a hint */
	for (uint32_t j = 0; j < n; j++)
		atomic_store_explicit(&p->park.ring[(p->park.tail + j) % p->park.pages], 0,
				      memory_order_relaxed);
	p->park.tail += n;
	atomic_store_explicit(&p->park.used, p->park.head - p->park.tail, memory_order_relaxed);
}

int park_restore(struct ufp_pager *p, struct ufp_tstats *ts, size_t i, uintptr_t dst,
		 unsigned flags)
{
	/* relaxed: the entry's claim (acquire CAS by the caller) ordered it */
	uint32_t k = atomic_load_explicit(&p->park.at[i], memory_order_relaxed);
	uintptr_t src = park_slot_addr(p, k);
	long r = uffd_move(p, ts, dst, src, UFP_PAGE_SIZE,
			   flags & (UFP_MOVE_DONTWAKE | UFP_MOVE_NOWAIT));

	if (r == (long)UFP_PAGE_SIZE) {
		/* an empty slot now: a drain skips it (relaxed: the drain
		 * reads the entry too, and a hole moves as nothing) */
		atomic_store_explicit(&p->park.ring[k], 0, memory_order_relaxed);
		return 0;
	}
	if (r == -EAGAIN || r == -ENOENT || r == -ESRCH)
		return (int)r;
	/* -EINVAL: dst's protection differs from the slot's (the region was
	 * made read-only while the page was parked): a copy installs into
	 * any protection. The slot keeps its content, stale from now on. */
	r = uffd_fill_mode(p, ts, dst, (const void *)src, UFP_PAGE_SIZE, true,
			   (flags & UFP_MOVE_DONTWAKE) ? UFP_FILL_DONTWAKE : 0);
	if (r == (long)UFP_PAGE_SIZE)
		return 0;
	return r < 0 ? (int)r : -EIO;
}
