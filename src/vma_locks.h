/* SPDX-License-Identifier: MIT */
/*
 * vma_locks.h - the lock protocol (vma_locks.c; the lock order is at the top of that
 * file), the lock-order checker (lockdep.c). The predicates that read the
 * pager object are in pager.h.
 */
#ifndef UFP_VMA_LOCKS_H
#define UFP_VMA_LOCKS_H

#include <pthread.h>
#include <stdatomic.h>
#include "base.h"
#include "stats.h"

struct ufp_pager;
struct ufp_region;
struct ufp_tstats;

/* ======================================================================
 * Lock protocol (vma_locks.c). See the lock order at the top of that file.
 * ====================================================================== */

/*
 * The pager lock: a futex rwsem on which a waiting writer blocks new readers
 * (the kernel's rwsem, unlike glibc's default reader-preferring rwlock).
 * Async-signal-safe: atomics and futex(2) only.
 */
#define PL_WRITER  (1u << 31)
#define PL_WAITING (1u << 30)
#define PL_READERS (PL_WAITING - 1)
struct pager_lock {
	_Atomic uint32_t state;        /* readers | WAITING | WRITER */
	_Atomic uint32_t writer_seq;   /* futex word for woken readers */
	pthread_t owner;               /* debug: the write holder */
	_Atomic uint32_t seq;          /* odd while write-locked (region marks) */
	_Atomic uint32_t writer_wait;  /* futex: a region writer waits for readers */
} ufp_cacheline_aligned;

/* Lock-order checker (debug builds; the order is at the top of vma_locks.c). */
enum ufp_lock_level { LL_PAGERS, LL_PAGER, LL_REGION, LL_PARK, LL_STATS, LL_SWAP, LL_NR };
#ifdef UFP_DEBUG
void lockdep_acquire(enum ufp_lock_level lvl, uintptr_t key);
void lockdep_release(enum ufp_lock_level lvl);
void lockdep_reset_section(void);
bool lockdep_held(enum ufp_lock_level lvl);   /* this thread, any instance */
bool lockdep_none_held(void);
#else
static inline void lockdep_acquire(enum ufp_lock_level lvl, uintptr_t key) { (void)lvl; (void)key; }
static inline void lockdep_release(enum ufp_lock_level lvl) { (void)lvl; }
static inline void lockdep_reset_section(void) {}
static inline bool lockdep_held(enum ufp_lock_level lvl) { (void)lvl; return true; }
static inline bool lockdep_none_held(void) { return true; }
#endif
/* A mutex at a level of the lock order (stats_lock, swap mutexes...). */
static inline void ufp_mutex_lock(pthread_mutex_t *m, enum ufp_lock_level lvl)
{
	lockdep_acquire(lvl, 0);
	pthread_mutex_lock(m);
}

static inline void ufp_mutex_unlock(pthread_mutex_t *m, enum ufp_lock_level lvl)
{
	pthread_mutex_unlock(m);
	lockdep_release(lvl);
}

/* Region reader-count word: count in the low bits, writer announcement on
 * top. A writer waits (futex) for the count to drain. */
#define REGION_WRITER_ANNOUNCED (1u << 31)
#define REGION_READERS_MASK (REGION_WRITER_ANNOUNCED - 1)
extern uint32_t region_readers_max;  /* tests lower it to force overflow */
struct ufp_region;
extern void (*region_unlock_test_hook)(struct ufp_region *r);

/* vma_locks.c */
void pager_lock_init(struct ufp_pager *p, uint32_t initial_seq);
void pager_read_lock(struct ufp_pager *p);
bool pager_read_trylock(struct ufp_pager *p);
void pager_read_unlock(struct ufp_pager *p);
void pager_write_lock(struct ufp_pager *p);
void pager_write_unlock(struct ufp_pager *p);
void pager_write_downgrade(struct ufp_pager *p);
void region_write_lock(struct ufp_region *r);
bool region_read_trylock(struct ufp_region *r);
void region_read_unlock(struct ufp_region *r);
/* How a fault's region was locked; unlock with fault_unlock_region. */
enum fault_lock_kind { FLK_NONE, FLK_REGION, FLK_PAGER };
struct fault_lock {
	enum fault_lock_kind kind;
	struct ufp_region *r;
};
/*
 * lock_region_under_rcu: RCU lookup + per-region read-trylock + bounds and
 * re-walk checks. Returns the region read-locked, or NULL (not mapped, or
 * the trylock failed: *aborted says which). Caller: an RCU-registered
 * thread, outside any RCU read section.
 */
struct ufp_region *lock_region_under_rcu(struct ufp_pager *p, uintptr_t addr,
					 struct ufp_tstats *ts, bool *aborted);
/* Lock the region holding addr for a fault in the pager's lock mode, with
 * the fallback to the pager lock. Returns the region or NULL (unmapped). */
struct ufp_region *fault_lock_region(struct ufp_pager *p, uintptr_t addr,
				     struct ufp_tstats *ts, bool rcu_ok,
				     struct fault_lock *fl);
void fault_unlock_region(struct ufp_pager *p, struct fault_lock *fl);

#endif /* UFP_VMA_LOCKS_H */
