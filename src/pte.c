/* SPDX-License-Identifier: MIT */
/*
 * pte.c - the page-state table's shared operations (the entries are
 * described in ufp_internal.h): waiting for a page whose swap-in or
 * eviction is in flight, waking its waiters, and discarding an entry
 * (unmap, DONTNEED) with the release of its stored copy. Below fault.c,
 * reclaim.c and remap.c, which all wait on or wake pages; calls only the
 * swap backend. Async-signal-safe: atomics and futex(2).
 */
#include "base.h"
#include "futex.h"
#include "thread.h"
#include "region.h"
#include "pager.h"
#include "pte.h"
#include "swap_backend.h"

/* ======================================================================
 * Page wait table.
 * ====================================================================== */

static _Atomic uint32_t *page_wait_word(struct ufp_pager *p, size_t i)
{
	return &p->pwait[(i * 0x9E3779B1u >> 7) % UFP_PWAIT_WORDS];
}

void pte_wake(struct ufp_pager *p, size_t i)
{
	_Atomic uint32_t *w = page_wait_word(p, i);

	/* release: pairs with the acquire load in page_wait; the pte change
	 * that ended INFLIGHT happens before it */
	futex_bump_wake(w, INT32_MAX);
}

void pte_wait(struct ufp_pager *p, size_t i)
{
	_Atomic uint32_t *w = page_wait_word(p, i);
	struct timespec ts = { 0, 2000000 };  /* re-check every 2 ms */
	uint32_t seq = atomic_load_explicit(w, memory_order_acquire);

	assert_no_lock_held();   /* the owner may need any of them */
	if (!(atomic_load_explicit(&p->pte[i], memory_order_acquire) & PTE_INFLIGHT))
		return;
	futex_wait(w, seq, &ts);
}

/* ======================================================================
 * Discard (unmap, DONTNEED): caller has the region write-locked.
 * ====================================================================== */

bool pte_discard(struct ufp_pager *p, size_t i)
{
	uint64_t v = atomic_load_explicit(&p->pte[i], memory_order_relaxed), nv;

	pager_assert_write_locked(p);   /* and the region: write-locked */

	do {
		nv = (v & PTE_GEN_MASK) + PTE_GEN_ONE;   /* new generation, empty */
		/* acq_rel: pairs with the claimers' CAS; an INFLIGHT owner
		 * that later sees the new generation releases the copy */
	} while (!atomic_compare_exchange_weak_explicit(&p->pte[i], &v, nv,
			memory_order_acq_rel, memory_order_relaxed));
	if (p->swb && !(v & PTE_INFLIGHT) && (v & (PTE_SWAPPED | PTE_CLEAN)))
		swb_release(p->swb, atomic_load_explicit(&p->slots[i], memory_order_relaxed));
	if (v & PTE_INFLIGHT)
		pte_wake(p, i);
	/* a parked page counts against the budget until it leaves the ring;
	 * its slot is stale now, emptied when the ring's tail passes it */
	return (v & (PTE_PRESENT | PTE_PARKED)) != 0;
}

