/* SPDX-License-Identifier: MIT */
/*
 * ufp_internal.h - what the library's files share: the pager and region
 * objects, the lock protocol, the region tree, the uffd service and the
 * per-thread statistics. Nothing here is exported.
 */
#ifndef UFP_INTERNAL_H
#define UFP_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu/urcu-memb.h>
#include <urcu/call-rcu.h>
#include <urcu/wfcqueue.h>

#include "ufpager.h"
#include "uffd_compat.h"
#include "watchdog.h"

/*
 * ThreadSanitizer cannot see liburcu's grace periods (its atomics and
 * futexes are not instrumented), so it would report every deferred free as
 * a race with the readers that preceded it. In TSan builds the RCU
 * primitives are wrapped to state the real happens-before edges: the end of
 * every read section, and every call_rcu, "release" a token that each
 * callback "acquires" (a grace period orders all earlier read sections
 * before the callback). No effect in other builds.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char ufp_tsan_rcu_token;
#define ufp_rcu_read_unlock() \
	do { __tsan_release(&ufp_tsan_rcu_token); urcu_memb_read_unlock(); } while (0)
#define ufp_call_rcu(head, fn) \
	do { __tsan_release(&ufp_tsan_rcu_token); urcu_memb_call_rcu(head, fn); } while (0)
#define ufp_rcu_callback_begin() __tsan_acquire(&ufp_tsan_rcu_token)
#else
#define ufp_rcu_read_unlock() urcu_memb_read_unlock()
#define ufp_call_rcu(head, fn) urcu_memb_call_rcu(head, fn)
#define ufp_rcu_callback_begin() ((void)0)
#endif

#include "base.h"


/* ======================================================================
 * Options (options.c): one table, UFPAGER_<NAME> environment variables.
 * ====================================================================== */

enum ufp_opt_source { UFP_SRC_DEFAULT, UFP_SRC_ENV, UFP_SRC_API };

struct ufp_options {
	uint64_t arena_size;
	uint64_t budget;
	uint64_t handler_threads;
	uint64_t lock_mode;
	uint64_t delivery;
	int64_t spin_us;
	uint64_t fault_around;
	uint64_t export_stats;
	uint64_t swap_size;
	uint64_t ztier_size;
	const char *swap_dir;
	uint64_t dirty_track;
	uint64_t second_chance;
	uint64_t verbose;
	const char *inject;            /* fault injection spec (inject.h) */
	uint64_t sandbox;
	enum ufp_opt_source src[16];
};

/* Resolve params (may be NULL) + environment into *o. Returns 0 or -EINVAL
 * for a bad API value (a bad environment value is reported and ignored). */
int options_resolve(const struct ufp_params *p, struct ufp_options *o);
/* Print the effective options and their sources, one per line. */
void options_print(FILE *f, const struct ufp_options *o);
/* Parse a size with an optional K/M/G/T suffix. Returns 0 or -EINVAL. */
int options_parse_size(const char *s, uint64_t *out);

/* ======================================================================
 * Statistics (stats.c). Per-thread blocks, written only by their thread
 * with relaxed atomics, merged on read. Nothing shared is written on the
 * fault path.
 * ====================================================================== */

#define UFP_HIST_SUB 8                   /* linear sub-buckets per power of 2 */
#define UFP_HIST_BUCKETS (64 * UFP_HIST_SUB)

struct ufp_hist {
	_Atomic uint64_t b[UFP_HIST_BUCKETS];
	_Atomic uint64_t max;
	_Atomic uint64_t sum;
};

enum ufp_counter {
#define UFP_X_ENUM(name, kind, desc) UFP_C_##name,
	UFP_STAT_COUNTERS(UFP_X_ENUM)
#undef UFP_X_ENUM
	UFP_C_NR
};

enum ufp_latency_id {
#define UFP_X_ENUM(name, desc) UFP_L_##name,
	UFP_STAT_LATENCIES(UFP_X_ENUM)
#undef UFP_X_ENUM
	UFP_L_NR
};

/*
 * Per-region counters, kept per thread like the others (a fault writes no
 * shared line): each counter block holds a small direct-mapped table of the
 * regions its thread faulted in lately, keyed by region id (never reused).
 * A slot taken over by another region spills its counts into the old
 * region's own counters, if that region still exists; an exiting thread
 * spills all of its slots. Readers add the region's spilled counts and
 * every live slot for it (region_counts_*, region.c).
 */
enum ufp_rcount { RC_FAULTS, RC_SUCCESS, RC_ABORT, RC_RETRY, RC_MISS, RC_NR };
#define UFP_RC_SLOTS 16

struct ufp_rc_slot {
	_Atomic uint64_t rid;          /* 0: free; changes only through 0 */
	uintptr_t addr;                /* a page of the region, to find it again */
	_Atomic uint64_t n[RC_NR];
};

struct swb_ctx;
struct ufp_tstats {
	_Atomic int64_t c[UFP_C_NR];   /* gauges may go below 0 per thread */
	struct ufp_hist h[UFP_L_NR];
	struct ufp_rc_slot rc[UFP_RC_SLOTS];   /* written by the owner only */
	struct swb_ctx *swb_ctx;       /* this thread's swap I/O context */
	struct ufp_tstats *next;       /* pager's list, under stats_lock */
	bool shared;                   /* the fallback block: atomic adds */
} ufp_cacheline_aligned;

struct ufp_pager;
/* This thread's block for pager p, or the pager's shared fallback block
 * when none exists and may not be created (signal context). thread.c */
struct ufp_tstats *thread_stats(struct ufp_pager *p, bool may_alloc);
/* A new block on p's list (stats.c; normal context). */
struct ufp_tstats *stats_block_new(struct ufp_pager *p);
/* Fold a dead thread's block into p's totals and free it; stats_lock held. */
void stats_block_retire(struct ufp_pager *p, struct ufp_tstats *ts);
void stats_add(struct ufp_tstats *ts, enum ufp_counter c, int64_t v);
void stats_hist_record(struct ufp_tstats *ts, enum ufp_latency_id l, uint64_t ns);
void stats_merge(struct ufp_pager *p, struct ufp_stats *out);
void stats_free_all(struct ufp_pager *p);
int64_t stats_counter_sum(struct ufp_pager *p, enum ufp_counter c);
/* Summaries of one merged histogram. */
void ufp_hist_summary(const uint64_t *b, uint64_t max, uint64_t sum,
		      struct ufp_latency *out);
unsigned stats_hist_bucket(uint64_t ns);
uint64_t stats_hist_bucket_low(unsigned idx);
/* Text and JSON printers generated from the X-macro list. */
void ufp_stats_print_text(FILE *f, const struct ufp_stats *s);
void ufp_stats_print_json(FILE *f, const struct ufp_stats *s);

#define STAT_INC(ts, name) stats_add((ts), UFP_C_##name, 1)
#define STAT_ADD(ts, name, v) stats_add((ts), UFP_C_##name, (v))

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
};

/* Lock-order checker (debug builds; the order is at the top of vma_locks.c). */
enum ufp_lock_level { LL_PAGERS, LL_PAGER, LL_REGION, LL_STATS, LL_SWAP, LL_NR };
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

/* ======================================================================
 * Regions and the region tree (region.c).
 * ====================================================================== */

#define UFP_RF_ALLOC   (1u << 0)  /* an allocator object: never merges */
#define UFP_RF_HOLE    (1u << 1)  /* placeholder for a foreign unmap */

/*
 * A region: a contiguous, page-aligned range with one set of attributes.
 * Invariants (checked by region_tree_check in debug builds):
 *  - start < end, both page aligned, inside the arena;
 *  - regions in the tree never overlap; a tree node's key == region start
 *    for every region reachable from the current root;
 *  - start/end/prot/flags change only while the region is write-locked
 *    (lock_seq == pager.lock_seq), under the pager write lock;
 *  - a detached region is never linked again and is freed only after an
 *    RCU grace period, with no reader holding it.
 */
struct ufp_region {
	_Atomic uintptr_t start;
	_Atomic uintptr_t end;
	_Atomic int prot;
	unsigned flags;
	size_t alloc_size;             /* requested size of allocator objects */
	struct ufp_pager *pager;
	_Atomic bool detached;
	uint64_t id;                   /* unique in the process, never reused */

	/* lock word and sequence: on their own line, the only fault-path
	 * writes to a region apart from its own counters */
	_Atomic uint32_t readers ufp_cacheline_aligned;
	_Atomic uint32_t lock_seq;
	/* readahead state: sequential detection (region state, not a counter) */
	_Atomic uintptr_t last_fault ufp_cacheline_aligned;
	_Atomic uint32_t ra_pages;
	/* counts spilled from per-thread slots (rare: region_count) */
	_Atomic uint64_t spill[RC_NR];
	struct rcu_head rcu;
	struct ufp_region *free_next;  /* writer: detached in this update */
};

struct rtree_node;

struct region_tree {
	struct rtree_node *_Atomic root;  /* rcu_assign_pointer / rcu_dereference */
	uint64_t gen;                     /* update generation (writer only) */
	struct rtree_node *retired;       /* old nodes of this update */
	struct ufp_region *detached;      /* regions detached in this update */
	size_t count;
};

void region_tree_init(struct region_tree *t);
/* Region containing addr (or NULL). Caller: RCU read side or pager lock. */
struct ufp_region *region_tree_lookup(struct region_tree *t, uintptr_t addr);
/* First region with start >= addr / last region with start < addr. */
struct ufp_region *region_tree_next(struct region_tree *t, uintptr_t addr);
struct ufp_region *region_tree_prev(struct region_tree *t, uintptr_t addr);
/* Writer side, pager write lock held. Keyed by region start at the time
 * of the call. Changes are visible to readers only after commit. */
int region_tree_insert(struct region_tree *t, struct ufp_region *r);
int region_tree_erase(struct region_tree *t, uintptr_t key);
void region_tree_commit(struct region_tree *t);
void region_tree_destroy(struct region_tree *t, void (*fn)(struct ufp_region *));
/* Debug: check order, balance and keys; returns the region count. */
size_t region_tree_check(struct region_tree *t);
/* Iterate in address order (writer side or pager lock held). */
void region_tree_walk(struct region_tree *t,
		      void (*fn)(struct ufp_region *, void *), void *arg);

struct ufp_region *region_alloc(struct ufp_pager *p, uintptr_t start,
				uintptr_t end, int prot, unsigned flags);
/* Detach: mark, unlink from the tree (caller commits), defer the free. */
void region_detach(struct ufp_pager *p, struct ufp_region *r);
void region_free_now(struct ufp_region *r);
/* Count event k on r for this thread. Caller holds r (region read lock,
 * or the pager lock). Async-signal-safe. */
void region_count(struct ufp_pager *p, struct ufp_tstats *ts, struct ufp_region *r,
		  enum ufp_rcount k);
/* A thread leaves p: spill its slots into their regions. No lock held. */
void region_counts_spill(struct ufp_pager *p, struct ufp_tstats *ts);
/* Readers: a snapshot of every thread's live slots (stats_lock inside),
 * then the sum for one region. Normal context. */
struct rc_snap {
	uint64_t rid;
	uint64_t n[RC_NR];
};
size_t region_counts_snapshot(struct ufp_pager *p, struct rc_snap **out);
void region_counts_sum(const struct ufp_region *r, const struct rc_snap *s, size_t n,
		       uint64_t out[RC_NR]);

static inline uintptr_t region_start(const struct ufp_region *r)
{
	return atomic_load_explicit(&r->start, memory_order_relaxed);
}
static inline uintptr_t region_end(const struct ufp_region *r)
{
	return atomic_load_explicit(&r->end, memory_order_relaxed);
}
static inline int region_prot(const struct ufp_region *r)
{
	return atomic_load_explicit(&r->prot, memory_order_relaxed);
}

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
 * The bits above PTE_GEN_SHIFT count discards, so that an owner of
 * INFLIGHT can tell "still mine" from "discarded and reused" (no ABA).
 * Invariants: PRESENT and SWAPPED never together; CLEAN implies PRESENT;
 * whoever holds INFLIGHT owns the stored copy's release.
 */
#define PTE_PRESENT   (1ull << 0)
#define PTE_SWAPPED   (1ull << 1)
#define PTE_INFLIGHT  (1ull << 2)
#define PTE_REF       (1ull << 3)
#define PTE_CLEAN     (1ull << 4)
#define PTE_POISON    (1ull << 5)
#define PTE_STATE_MASK (PTE_PRESENT | PTE_SWAPPED | PTE_INFLIGHT | PTE_POISON)
#define PTE_GEN_SHIFT 8
#define PTE_GEN_MASK  (~0ull << PTE_GEN_SHIFT)
#define PTE_GEN_ONE   (1ull << PTE_GEN_SHIFT)

#define UFP_RA_MAX 16               /* readahead window, pages */
#define UFP_PWAIT_WORDS 256         /* page wait futexes (hashed) */
#define UFP_STAGING_BATCH 32        /* pages per eviction batch */
#define UFP_STAGING_SETS 4          /* concurrent eviction batches */

struct ufp_handler {
	struct ufp_pager *pager;
	pthread_t thread;
	pid_t tid;
	/* odd from before a read of the uffd until the events it returned
	 * are published and queued (events.c ordering, see remap.c) */
	_Atomic uint64_t section ufp_cacheline_aligned;
	struct wd_beat wd;             /* heartbeat (watchdog.h) */
};

struct ufp_event {                  /* a foreign event for the event worker */
	struct cds_wfcq_node node;
	struct uffd_msg msg;
	unsigned slot;                  /* REMAP: the published range (remap.c) */
};

#define UFP_REMAP_SLOTS 4
#define UFP_REMAP_POISON (~0ull)    /* remap.c: a poisoned page moved */

struct ufp_pager {
	/* read-mostly */
	uintptr_t arena_base, arena_end;
	int uffd;
	int wake_fd;                   /* eventfd: stop the handlers */
	uint64_t features;             /* enabled uffd features */
	int pagemap_fd;                /* /proc/self/pagemap (WP_ASYNC dirty tracking) */
	enum ufp_lock_mode lock_mode;
	enum ufp_delivery delivery;
	struct ufp_options opt;
	_Atomic uint64_t *pte;         /* page-state table over the arena */
	_Atomic uint64_t *slots;       /* backend handle per page (SWAPPED/CLEAN) */
	_Atomic uint64_t *chash;       /* hash of the stored copy (CLEAN) */
	size_t npages;
	_Atomic uint32_t pwait[UFP_PWAIT_WORDS];  /* page wait futexes */

	/* swap (reclaim.c); budget_pages == 0: no budget, no swap */
	struct swb *swb;
	uint64_t budget_pages, high_pages, low_pages;
	_Atomic uint64_t resident_est;  /* reclaim thread: from the counters; direct
					 * reclaim: lowered by what it freed */
	_Atomic uint32_t reclaim_futex; /* wakes the reclaim thread */
	_Atomic uint32_t reclaimed_futex; /* wakes throttled faults */
	_Atomic bool reclaim_paused;
	_Atomic uint32_t evicting;     /* evictions in progress */
	_Atomic bool swap_full;
	_Atomic bool swap_full_said;   /* logged once */
	int swap_full_err;             /* errno of the last failed store (a hint) */
	_Atomic uint64_t reclaim_stuck_until;  /* ns: sweeps found nothing evictable */
	_Atomic uintptr_t clock_hand;
	_Atomic uint64_t clock_laps;    /* times the hand wrapped around the arena */
	pthread_t reclaim_thread;
	bool reclaim_started;
	_Atomic bool reclaim_stop;
	uintptr_t staging;             /* UFP_STAGING_SETS x BATCH registered pages */
	_Atomic bool staging_busy[UFP_STAGING_SETS];
	struct swb_ctx *ctx_pool[4];   /* for threads without their own */
	_Atomic bool ctx_pool_busy[4];
	unsigned slot;                 /* index in the SIGBUS pager table */
	bool forked_child;

	/* the mmap_lock image and its sequence */
	struct pager_lock lock ufp_cacheline_aligned;
	_Atomic uint32_t lock_seq;     /* odd while write-locked */
	_Atomic uint32_t writer_wait;  /* futex: region writer waits for readers */

	struct region_tree tree ufp_cacheline_aligned;
	uintptr_t bump;                /* next-fit arena cursor (writer) */

	/* service threads */
	struct ufp_handler *handlers;
	unsigned nhandlers;
	_Atomic bool stopping;
	_Atomic bool spinner;          /* a handler is spinning (at most one) */
	pthread_t event_thread;
	bool event_thread_started;
	struct cds_wfcq_head evq_head;
	struct cds_wfcq_tail evq_tail;
	_Atomic uint32_t evq_futex;
	_Atomic uint32_t ev_reading;   /* SIGBUS delivery: the event reader is between
					* reading messages and publishing them */
	struct {                       /* mremapped ranges being carried over */
		_Atomic uintptr_t to, end;
		uintptr_t from;            /* set before end is published */
		_Atomic bool carried;      /* event worker: done early (an UNMAP of
					    * the old range came first) */
	} remaps[UFP_REMAP_SLOTS];
	_Atomic uint32_t remap_futex;  /* bumped when a range is done */

	/* statistics */
	pthread_mutex_t stats_lock;
	struct ufp_tstats *tstats;     /* list of per-thread blocks */
	struct ufp_tstats shared_ts;   /* unregistered threads (signal ctx) */
	struct ufp_tstats exited_ts;   /* folded blocks of exited threads */
	uint64_t merge_buckets[UFP_L_NR][UFP_HIST_BUCKETS];  /* merge scratch, stats_lock */
	uint64_t id;                   /* unique per pager in the process */

	/* live stats export (export.c) */
	struct ufp_export *export_seg;
	char export_name[64];
	pthread_t export_thread;
	bool export_started;
	_Atomic bool export_stop;
	_Atomic uint32_t export_futex;

	/* the watchdog (watchdog.c): heartbeats of the threads above */
	struct wd_beat wd_reclaim, wd_events;
	_Atomic bool reclaim_dead;     /* reclaim stalled: faults stop waiting */
	struct ufp_watchdog *watchdog;

	/* test hooks (UFP_INTERNAL_TESTING) */
	void (*hook_after_lookup)(struct ufp_pager *, uintptr_t addr);
};

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
/* Is r write-locked in the current pager write section? (Inline, like
 * mmap_assert_write_locked: region.c asserts it without calling up into
 * vma_locks.c.) acquire: pairs with the release stores of region_write_lock
 * and pager_write_unlock. */
static inline bool region_is_write_locked(struct ufp_region *r)
{
	return atomic_load_explicit(&r->lock_seq, memory_order_acquire) ==
	       atomic_load_explicit(&r->pager->lock_seq, memory_order_acquire);
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


/* uffd.c: open, probe, register, and the one ioctl wrapper */
int uffd_open_probe(struct ufp_probe *pr);
int uffd_open(struct ufp_pager *p);
int uffd_register(struct ufp_pager *p, uintptr_t start, size_t len);
int uffd_unregister(struct ufp_pager *p, uintptr_t start, size_t len);
/*
 * The one wrapper for UFFDIO_COPY / UFFDIO_ZEROPAGE (src == NULL).
 * Installs [dst, dst+len). EAGAIN with progress resumes from the partial
 * count; EEXIST on the first page counts that page as resolved (it is
 * woken) and continues unless stop_on_exist. Returns the bytes resolved
 * (> 0), or -EAGAIN (event pending, nothing done: drop locks and retry),
 * -ENOENT (range gone), -ESRCH (process exiting), other -errno.
 */
long uffd_fill(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
	       const void *src, size_t len, bool stop_on_exist);
/* As uffd_fill; with dontwake the caller wakes (uffd_wake) after it has
 * recorded the page state, so a woken thread never sees a stale entry. */
#define UFP_FILL_DONTWAKE 1u   /* the caller wakes (handler delivery) */
#define UFP_FILL_WP 2u         /* install write-protected (dirty tracking) */
long uffd_fill_mode(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
		    const void *src, size_t len, bool stop_on_exist, unsigned flags);
/* Pages of [start, end) written since the last scan, write-protected
 * again; fn(p, index, arg) per page. Needs UFFD_FEATURE_WP_ASYNC. */
long uffd_scan_written(struct ufp_pager *p, uintptr_t start, uintptr_t end,
		       void (*fn)(struct ufp_pager *, size_t, void *), void *arg);
int uffd_wake(struct ufp_pager *p, uintptr_t start, size_t len);
bool uffd_move_landed(struct ufp_pager *p, uintptr_t dst, uintptr_t src);
long uffd_move(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
	       uintptr_t src, size_t len);
/* uffd_loop.c: the handler pool (handler delivery) or the event reader */
int uffd_start_threads(struct ufp_pager *p);
void uffd_stop_threads(struct ufp_pager *p);
/* events.c: foreign events; events_handle queues one (any reader thread) */
int events_start(struct ufp_pager *p);
void events_stop(struct ufp_pager *p);
void events_handle(struct ufp_pager *p, const struct uffd_msg *m);
/* sigbus.c: self-paging */
int sigbus_install(struct ufp_pager *p);
/* SIGBUS passed on to the application (process-wide count). */
uint64_t sigbus_foreign_count(void);
void sigbus_remove(struct ufp_pager *p);
/* fault.c: serve one missing fault at addr (handler thread or SIGBUS
 * handler). Returns 0, -EAGAIN (retry later), -EFAULT (not ours). */
int fault_serve(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t addr,
		    bool write, bool rcu_ok);
/* pte.c: wait for / wake a page whose INFLIGHT bit is set; discard an
 * entry (region write-locked), releasing the stored copy it refers to (not
 * if INFLIGHT: its owner does). pte_discard returns whether it was resident. */
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

/* reclaim.c */
int reclaim_init(struct ufp_pager *p);       /* budget, backend: before threads */
int reclaim_start(struct ufp_pager *p);      /* the reclaim thread: after */
void reclaim_stop_thread(struct ufp_pager *p);
void reclaim_fini(struct ufp_pager *p);
void reclaim_throttle(struct ufp_pager *p, struct ufp_tstats *ts);
/* The thread's I/O context (or one from the shared pool; NULL if none is
 * free). Async-signal-safe. */
struct swb_ctx *reclaim_ctx_get(struct ufp_pager *p, struct ufp_tstats *ts);
/* Give the calling thread its own I/O context for p (normal context; a
 * thread without one borrows from the pool). */
void reclaim_ctx_ensure(struct ufp_pager *p, struct ufp_tstats *ts);
void reclaim_ctx_put(struct ufp_pager *p, struct ufp_tstats *ts, struct swb_ctx *c);
/* Fork prepare: stop reclaim and bring every evicted page back. Pager
 * write lock held. */
long reclaim_pageout(struct ufp_pager *p, uintptr_t s, uintptr_t e);
void reclaim_pause(struct ufp_pager *p);
void reclaim_resume(struct ufp_pager *p);
int reclaim_swapin_all_locked(struct ufp_pager *p);
bool reclaim_is_staging(struct ufp_pager *p, uintptr_t start, uintptr_t end);

/* Per-thread state (thread.c). thread_enter: register the calling
 * thread with RCU and give it its counter block for p (p may be NULL);
 * normal context. thread_mark_service: the calling thread is one of ours
 * (handler, event worker...), rcu: register it. */
void thread_enter(struct ufp_pager *p);
bool thread_rcu_registered(void);
/* The pager layer's answers, registered once (pagers.c). */
struct thread_hooks {
	bool (*id_alive)(uint64_t id);                      /* lock-free */
	void (*thread_exit)(uint64_t id, struct ufp_tstats *ts);
};
void thread_set_hooks(const struct thread_hooks *h);
/* The error detail's buffer (error.c); NULL if the block is missing. */
char *thread_error_buf(bool may_alloc, size_t *size);
bool thread_oom(void);
void thread_clear_oom(void);
bool thread_is_service(void);
int thread_mark_service(bool rcu);
void thread_unmark_service(void);
/* Public calls (api.c): api_begin checks the pager, blocks asynchronous
 * signals and enters the thread; api_end restores the mask and, for a failure
 * with no detail yet, writes "<fmt...>: <strerror>" to ufp_last_error. */
struct api_guard {
	sigset_t old;
	bool blocked;
};
int api_begin(struct ufp_pager *p, struct api_guard *g);
int api_end(struct api_guard *g, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

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
/* Validate [addr, addr+len) as an aligned, non-empty arena range. */
int mm_check_range(struct ufp_pager *p, const void *addr, size_t len);
/* Is every page of [start, end) covered by regions (no HOLE)? */
bool mm_range_mapped(struct ufp_pager *p, uintptr_t start, uintptr_t end);
/* Structural primitives, pager write lock held. */
int mm_map_locked(struct ufp_pager *p, uintptr_t start, size_t len, int prot,
		     unsigned rflags, struct ufp_region **out);
int mm_unmap_locked(struct ufp_pager *p, uintptr_t start, uintptr_t end,
		       bool kernel_done);
int mm_find_free(struct ufp_pager *p, size_t len, uintptr_t *out);
void mm_clear_ptes(struct ufp_pager *p, uintptr_t start, uintptr_t end);
/* Split r at addr (start < addr < end): r keeps [start, addr), the new
 * region [addr, end) is returned. r must be write-locked. */
struct ufp_region *mm_split(struct ufp_pager *p, struct ufp_region *r,
				uintptr_t addr);
/* Merge b into a (adjacent, a before b): b is detached. Both write-locked. */
void mm_merge(struct ufp_pager *p, struct ufp_region *a, struct ufp_region *b);
bool mm_mergeable(const struct ufp_region *a, const struct ufp_region *b);
void mm_check_invariants(struct ufp_pager *p);
/* No uffd, no arena, no threads: the tree and the lock protocol alone. */
struct ufp_pager *pager_alloc_bare(uintptr_t base, size_t size, enum ufp_lock_mode mode);
void pager_free_bare(struct ufp_pager *p);

/* remap.c: a program's mremap of managed memory. */
bool remap_covers(struct ufp_pager *p, uintptr_t addr);
unsigned remap_publish(struct ufp_pager *p, uintptr_t from, uintptr_t to, size_t len);
/* The REMAP event is done: free its slot, wake faults held back. */
void remap_end(struct ufp_pager *p, unsigned slot);
void remap_carry_before_unmap(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t s,
			      uintptr_t e);
void remap_wait(struct ufp_pager *p, uintptr_t addr);
bool remap_wait_reader(struct ufp_pager *p);
void remap_carry(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t from, uintptr_t to,
		 size_t len, unsigned slot);
/* The regions overlapping [s, e), in address order, in a malloc'd array
 * (pager lock held). Returns 0 or -ENOMEM. */
int mm_gather(struct ufp_pager *p, uintptr_t s, uintptr_t e, struct ufp_region ***out,
	      size_t *n);
/* Write-lock every region overlapping [s, e) (pager write lock held). */
void mm_lock_range(struct ufp_pager *p, uintptr_t s, uintptr_t e);

/* pager_stats.c: what ufp_stats_get returns, without the public-call
 * guard (the exporter's thread). */
int pager_stats_fill(struct ufp_pager *p, struct ufp_stats *out);

/* export.c */
struct ufp_export;
int export_start(struct ufp_pager *p);
void export_stop(struct ufp_pager *p);

/* pagers.c: the process's live pagers (below thread.c). */
int pagers_add(struct ufp_pager *p);
void pagers_del(struct ufp_pager *p);
/* Does the pager with this id still exist? Lock-free. */
bool pagers_id_alive(uint64_t id);
/* A thread is done with pager `id`: free its swap I/O context and retire
 * its counter block if the pager still lives. */
void pagers_thread_exit(uint64_t id, struct ufp_tstats *ts);
/* The table under its mutex (fork.c): lock, look at slot i, unlock. */
void pagers_lock_all(void);
void pagers_unlock_all(void);
struct ufp_pager *pagers_at(unsigned i);

/* fork.c: the pthread_atfork handlers, installed once. */
void fork_handlers_install(void);

/* Pagers per process (pagers.c, the SIGBUS table of sigbus.c). */
#define UFP_MAX_PAGERS 64

#endif /* UFP_INTERNAL_H */
