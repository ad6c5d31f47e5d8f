/* SPDX-License-Identifier: MIT */
/*
 * stats.h - per-thread counter blocks and latency histograms (stats.c), merged on
 * read; the per-region slots (region.c) live in the blocks.
 */
#ifndef UFP_STATS_H
#define UFP_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include "base.h"
#include "ufpager.h"

struct ufp_pager;
struct swb_ctx;

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
#define UFP_PROBATION 64                /* pages per thread awaiting their park */
struct ufp_tstats {
	_Atomic int64_t c[UFP_C_NR];   /* gauges may go below 0 per thread */
	struct ufp_hist h[UFP_L_NR];
	struct ufp_rc_slot rc[UFP_RC_SLOTS];   /* written by the owner only */
	struct swb_ctx *swb_ctx;       /* this thread's swap I/O context */
	struct ufp_tstats *next;       /* pager's list, under stats_lock */
	bool shared;                   /* the fallback block: atomic adds */
	int64_t throttle_mark;         /* reclaim_throttle: resident_pages last told */
	/* Pages this thread brought in (swap-in, zero fill) with a parked
	 * ring on: reclaim parks them first, so that only a page referenced
	 * again while parked takes a place among the resident ones (the
	 * kernel's inactive list for new pages). Written by the owner only
	 * (page index + 1; prob_head release); evictors take them by
	 * advancing prob_tail (CAS), on a line of its own. */
	_Atomic uint64_t prob[UFP_PROBATION];
	_Atomic uint32_t prob_head;
	_Atomic uint32_t prob_tail ufp_cacheline_aligned;
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

/* stats.c's part of the pager */
struct pager_counters {
	pthread_mutex_t lock;           /* the list; LL_STATS, a leaf */
	struct ufp_tstats *blocks;      /* list of per-thread blocks */
	struct ufp_tstats shared;       /* unregistered threads (signal context) */
	struct ufp_tstats exited;       /* folded blocks of exited threads */
	uint64_t merge_buckets[UFP_L_NR][UFP_HIST_BUCKETS];  /* merge scratch, lock held */
};

#define STAT_INC(ts, name) stats_add((ts), UFP_C_##name, 1)
#define STAT_ADD(ts, name, v) stats_add((ts), UFP_C_##name, (v))

#endif /* UFP_STATS_H */
