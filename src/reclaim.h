/* SPDX-License-Identifier: MIT */
/*
 * reclaim.h - eviction, the budget, I/O contexts (reclaim.c).
 */
#ifndef UFP_RECLAIM_H
#define UFP_RECLAIM_H

#include "base.h"

struct ufp_pager;
struct ufp_tstats;
struct swb_ctx;

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

#endif /* UFP_RECLAIM_H */
