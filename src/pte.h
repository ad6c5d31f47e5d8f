/* SPDX-License-Identifier: MIT */
/*
 * pte.h - page-state entries: wait, wake, discard (pte.c), claim.
 */
#ifndef UFP_PTE_H
#define UFP_PTE_H

#include "pager.h"

struct ufp_pager;

/* pte.c: wait for / wake a page whose INFLIGHT bit is set; discard an
 * entry (region write-locked), releasing the stored copy it refers to (not
 * if INFLIGHT: its owner does). pte_discard returns whether it was resident
 * (present or parked). */
void pte_wait(struct ufp_pager *p, size_t i);
void pte_wake(struct ufp_pager *p, size_t i);
bool pte_discard(struct ufp_pager *p, size_t i);
/* Claim entry i, still equal to *v, for I/O: set INFLIGHT (swap-in of a
 * SWAPPED page, eviction of a PRESENT one). On success *v is the claimed
 * value and *handle the entry's stored copy. acquire: pairs with the
 * release CAS that published the entry and its slot (evict_finish). */
static inline bool pte_claim(struct ufp_pager *p, size_t i, uint64_t *v, uint64_t *handle)
{
	if (!atomic_compare_exchange_strong_explicit(&p->pte[i], v, *v | PTE_INFLIGHT,
			memory_order_acquire, memory_order_relaxed))
		return false;
	*v |= PTE_INFLIGHT;
	*handle = atomic_load_explicit(&p->slots[i], memory_order_relaxed);
	return true;
}

#endif /* UFP_PTE_H */
