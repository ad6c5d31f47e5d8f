/* SPDX-License-Identifier: MIT */
/*
 * lockdep.c - the lock-order checker of debug builds (UFP_DEBUG): every
 * lock of the library is acquired through lockdep_acquire at its level of
 * the order written at the top of vma_locks.c. Per thread, in two small
 * TLS arrays of debug builds only. Calls only log.c.
 */
#include "base.h"
#include "thread.h"
#include "vma_locks.h"

/* ======================================================================
 * Lock-order checker (debug builds). Per thread: the levels held, and the
 * last region address marked in this write section.
 * ====================================================================== */
#ifdef UFP_DEBUG
static __thread unsigned ld_held[LL_NR];  /* count per level */
static __thread uintptr_t ld_last_region; /* address order within a section */

void lockdep_acquire(enum ufp_lock_level lvl, uintptr_t key)
{
	for (unsigned l = lvl + 1; l < LL_NR; l++)
		if (ld_held[l])
			ufp_assert_fail("lock order: level taken under a deeper one",
					__FILE__, __LINE__);
	if (lvl == LL_REGION && key) {
		if (key < ld_last_region)
			ufp_assert_fail("lock order: regions not in address order",
					__FILE__, __LINE__);
		ld_last_region = key;
	}
	ld_held[lvl]++;
}

void lockdep_release(enum ufp_lock_level lvl)
{
	UFP_ASSERT(ld_held[lvl] > 0);
	ld_held[lvl]--;
}

void lockdep_reset_section(void)
{
	ld_last_region = 0;
}

bool lockdep_held(enum ufp_lock_level lvl)
{
	return ld_held[lvl] > 0;
}

bool lockdep_none_held(void)
{
	for (unsigned l = 0; l < LL_NR; l++)
		if (ld_held[l])
			return false;
	return true;
}
#endif

