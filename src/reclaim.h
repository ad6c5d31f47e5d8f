/* SPDX-License-Identifier: MIT */
/*
 * reclaim.h - eviction, the budget, I/O contexts (reclaim.c).
 */
#ifndef UFP_RECLAIM_H
#define UFP_RECLAIM_H

#include <pthread.h>
#include <stdatomic.h>
#include "base.h"
#include "sandbox.h"

struct ufp_pager;
struct ufp_tstats;
struct swb_ctx;

/* The pager's reclaim state (reclaim.c; budget_pages == 0: no budget). */
#define UFP_STAGING_BATCH 32        /* pages per eviction batch */
#define UFP_STAGING_SETS 4          /* concurrent eviction batches */
#define UFP_STAGING_ROUNDS 8        /* batches per set between two discards */
#define UFP_STAGING_PAGES (UFP_STAGING_SETS * UFP_STAGING_ROUNDS * UFP_STAGING_BATCH)
struct pager_reclaim {
	uint64_t budget_pages, high_pages, low_pages;
	_Atomic uint64_t resident_est;  /* reclaim thread: from the counters; direct
					 * reclaim: lowered by what it freed */
	_Atomic uint32_t futex;         /* wakes the reclaim thread */
	_Atomic uint32_t done_futex;    /* wakes throttled faults */
	_Atomic bool paused;            /* fork: no eviction starts */
	_Atomic uint32_t evicting;      /* evictions in progress */
	_Atomic bool swap_full;
	_Atomic bool swap_full_said;    /* logged once */
	_Atomic int swap_full_err;      /* errno of the last failed store (a hint) */
	_Atomic uint64_t stuck_until;   /* ns: sweeps found nothing evictable */
	_Atomic uint64_t progress;      /* eviction batches that freed pages */
	_Atomic int64_t shared_mark;    /* throttle accounting of the shared stats block */
	_Atomic uint64_t scan_off_until; /* ns: dirty scans paused after a stall */
	_Atomic uintptr_t clock_hand;
	_Atomic uint64_t clock_laps;    /* times the hand wrapped around the arena */
	struct service_thread worker;
	_Atomic bool stop;
	_Atomic bool dead;              /* the watchdog found it stalled: faults stop waiting */
	uintptr_t staging;              /* UFP_STAGING_PAGES registered pages, then
					 * the parked ring's slots (park.c) */
	size_t staging_len;             /* bytes, both */
	unsigned staging_round[UFP_STAGING_SETS];   /* the set's holder only */
	int staging_uffd;               /* staging's own uffd (uffd_open_staging), or -1 */
	_Atomic bool staging_busy[UFP_STAGING_SETS];
	struct swb_ctx *ctx_pool[4];    /* for threads without their own */
	_Atomic bool ctx_pool_busy[4];
};

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

#endif /* UFP_RECLAIM_H */
