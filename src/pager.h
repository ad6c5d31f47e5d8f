/* SPDX-License-Identifier: MIT */
/*
 * pager.h - the pager object: the page-state table, and one struct per subsystem
 * composed into struct ufp_pager; the inline predicates that read it.
 */
#ifndef UFP_PAGER_H
#define UFP_PAGER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include "rcu.h"
#include "base.h"
#include "ufpager.h"
#include "uffd_compat.h"
#include "watchdog.h"
#include "options.h"
#include "stats.h"
#include "vma_locks.h"
#include "region.h"
#include "reclaim.h"
#include "park.h"
#include "delivery.h"
#include "mm.h"
#include "removes.h"
#include "export.h"

/* ======================================================================
 * The pager.
 * ====================================================================== */

/*
 * Page-state table entry (one per arena page, like a pte):
 *  PRESENT   installed in the arena by us, not discarded since
 *  SWAPPED   not present; the content is in the backend at slots[i]
 *  INFLIGHT  a swap-in or an eviction owns the entry (faults wait)
 *  REF       referenced since the last clock pass (second chance)
 *  CLEAN     present, and slots[i] still holds its content (chash[i] is
 *            the hash of that content): eviction may drop it without I/O
 *  POISON    the stored copy was bad; the page is poisoned (SIGBUS)
 *  PARKED    resident, but moved out of the arena into the parked ring
 *            (park.h: slot park.at[i]); the next fault moves it back
 * The bits above PTE_GEN_SHIFT count discards, so that an owner of
 * INFLIGHT can tell "still mine" from "discarded and reused" (no ABA).
 * Invariants: at most one of PRESENT, SWAPPED, PARKED; CLEAN implies
 * PRESENT or PARKED;
 * whoever holds INFLIGHT owns the stored copy's release.
 */
#define PTE_PRESENT   (1ull << 0)
#define PTE_SWAPPED   (1ull << 1)
#define PTE_INFLIGHT  (1ull << 2)
#define PTE_REF       (1ull << 3)
#define PTE_CLEAN     (1ull << 4)
#define PTE_POISON    (1ull << 5)
#define PTE_PARKED    (1ull << 6)
#define PTE_STATE_MASK (PTE_PRESENT | PTE_SWAPPED | PTE_INFLIGHT | PTE_POISON | PTE_PARKED)
#define PTE_GEN_SHIFT 8
#define PTE_GEN_MASK  (~0ull << PTE_GEN_SHIFT)
#define PTE_GEN_ONE   (1ull << PTE_GEN_SHIFT)

#define UFP_RA_MAX 16               /* readahead window, pages */
#define UFP_PWAIT_WORDS 256         /* page wait futexes (hashed) */




struct ufp_pager {
	/* read-mostly */
	uintptr_t arena_base, arena_end;
	int uffd;
	uint64_t features;             /* enabled uffd features */
	int pagemap_fd;                /* /proc/self/pagemap (WP_ASYNC dirty tracking) */
	enum ufp_lock_mode lock_mode;
	enum ufp_delivery delivery;
	struct ufp_options opt;
	_Atomic uint64_t *pte;         /* page-state table over the arena */
	_Atomic uint64_t *slots;       /* backend handle per page (SWAPPED/CLEAN) */
	_Atomic uint64_t *chash;       /* hash of the stored copy (CLEAN) */
	size_t npages;
	_Atomic uint32_t pwait[UFP_PWAIT_WORDS];  /* page wait futexes (pte.c) */
	struct swb *swb;               /* the swap backend; NULL: no budget, no swap */
	struct service_thread swap_io; /* pager.c: the backend's I/O loop (NBD only) */
	unsigned slot;                 /* index in the SIGBUS pager table */
	bool forked_child;
	uint64_t id;                   /* unique per pager in the process */

	/* one part per subsystem, each written by its own file */
	struct pager_lock lock;        /* vma_locks.c: the mmap_lock image */
	struct region_tree tree ufp_cacheline_aligned;   /* region.c */
	uintptr_t bump;                /* mm.c: next-fit arena cursor (writer) */
	struct pager_reclaim reclaim;  /* reclaim.c */
	struct pager_park park;        /* park.c */
	struct pager_service svc;      /* uffd_loop.c */
	struct pager_events ev;        /* events.c */
	struct pager_remap remap;      /* remap.c */
	struct pager_removes rm;       /* removes.c */
	struct pager_counters stats;   /* stats.c */
	struct pager_export exp;       /* export.c */
	struct pager_watchdog wd;      /* watchdog.c */

	/* test hooks (UFP_INTERNAL_TESTING) */
	void (*hook_after_lookup)(struct ufp_pager *, uintptr_t addr);
};


/* Is r write-locked in the current pager write section? (Inline, like
 * mmap_assert_write_locked: region.c asserts it without calling up into
 * vma_locks.c.) acquire: pairs with the release stores of region_write_lock
 * and pager_write_unlock. */
static inline bool region_is_write_locked(struct ufp_region *r)
{
	return atomic_load_explicit(&r->lock_seq, memory_order_acquire) ==
	       atomic_load_explicit(&r->pager->lock.seq, memory_order_acquire);
}
/* Does this thread hold p's lock for write? Inline like the kernel's
 * mmap_assert_write_locked, so lower layers can assert it. relaxed: only
 * the owner's own store matters, and it is this thread's. */
static inline bool pager_is_write_locked(struct ufp_pager *p)
{
	return (atomic_load_explicit(&p->lock.state, memory_order_relaxed) & PL_WRITER) &&
	       pthread_equal(p->lock.owner, pthread_self());
}
/* Assertions at the top of every function that needs a lock (debug
 * builds; the "held" checks are per thread, not per pager). */
#define pager_assert_write_locked(p) UFP_ASSERT(pager_is_write_locked(p))
#define pager_assert_locked(p) \
	UFP_ASSERT(pager_is_write_locked(p) || lockdep_held(LL_PAGER))
#define region_assert_write_locked(r) UFP_ASSERT(region_is_write_locked(r))
/* Region read lock, region write mark, or the pager lock. */
#define region_assert_held(r) \
	UFP_ASSERT(region_is_write_locked(r) || lockdep_held(LL_REGION) || \
		   lockdep_held(LL_PAGER))
#define tree_pager(t) caa_container_of((t), struct ufp_pager, tree)
/* The tree's writers: the pager write lock. */
#define tree_assert_write_locked(t) pager_assert_write_locked(tree_pager(t))
/* The tree's readers: an RCU read section or the pager lock. */
#define tree_assert_readable(t) \
	UFP_ASSERT(urcu_memb_read_ongoing() || lockdep_held(LL_PAGER) || \
		   pager_is_write_locked(tree_pager(t)))
#define assert_no_lock_held() UFP_ASSERT(lockdep_none_held())


/* pager.c */
/* Writes are tracked by the kernel (WP_ASYNC + PAGEMAP_SCAN). */
static inline bool dirty_tracked(const struct ufp_pager *p)
{
	return (p->features & UFFD_FEATURE_WP_ASYNC) != 0;
}

/* UFP_PROT_* to mmap's PROT_* (write implies read). */
static inline int prot_to_mmap(int prot)
{
	return (prot & UFP_PROT_READ ? 0x1 /* PROT_READ */ : 0) |
	       (prot & UFP_PROT_WRITE ? 0x3 /* PROT_READ | PROT_WRITE */ : 0);
}

static inline size_t pte_index(struct ufp_pager *p, uintptr_t addr)
{
	return (addr - p->arena_base) >> UFP_PAGE_SHIFT;
}
static inline bool pager_owns(struct ufp_pager *p, uintptr_t addr)
{
	return addr >= p->arena_base && addr < p->arena_end;
}

/* No uffd, no arena, no threads: the tree and the lock protocol alone. */
struct ufp_pager *pager_alloc_bare(uintptr_t base, size_t size, enum ufp_lock_mode mode);
void pager_free_bare(struct ufp_pager *p);


/* Pagers per process (pagers.c, the SIGBUS table of sigbus.c). */
#define UFP_MAX_PAGERS 64

#endif /* UFP_PAGER_H */
