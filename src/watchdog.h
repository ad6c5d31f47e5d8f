/* SPDX-License-Identifier: MIT */
/*
 * watchdog.h - heartbeats of the service threads and the watchdog that
 * reads them (watchdog.c).
 *
 * Each service thread (reclaim, fault handlers, the event reader, the
 * event worker) bumps its beat once per pass of its loop and says when it
 * blocks waiting for work (idle). The watchdog thread reports a thread as
 * stalled when its beat has not moved for the stall time while it was not
 * idle, or while it was idle with work waiting for it (messages on the
 * userfaultfd, events queued). A stall is a real failure: reported once on
 * stderr and counted in service_stalls; a dead reclaim thread also stops
 * faults from waiting for it (reclaim_throttle reads reclaim.dead).
 *
 * The beat helpers are inline so that the threads' files depend on nothing
 * here but this header.
 */
#ifndef UFP_WATCHDOG_H
#define UFP_WATCHDOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct wd_beat {
	_Atomic uint64_t beat;   /* passes of the thread's loop */
	_Atomic bool idle;       /* blocked waiting for work */
	/* the watchdog's own view (watchdog thread only) */
	uint64_t seen, since_ns;
	bool reported;
} __attribute__((aligned(64)));   /* no false sharing between handlers */

/* One pass done. Relaxed: the watchdog only compares values over time. */
static inline void wd_beat(struct wd_beat *b)
{
	atomic_fetch_add_explicit(&b->beat, 1, memory_order_relaxed);
}

/* About to block for work (true) / woken (false). Relaxed: a hint read
 * together with the beat; a stale read delays a report by one period. */
static inline void wd_idle(struct wd_beat *b, bool idle)
{
	atomic_store_explicit(&b->idle, idle, memory_order_relaxed);
}

/* watchdog.c's part of the pager: the beats of the threads it has one of */
struct ufp_watchdog;
struct pager_watchdog {
	struct wd_beat reclaim, events;
	struct ufp_watchdog *dog;       /* the watchdog thread's state */
};

struct ufp_pager;
/* Stall time in milliseconds (default 2000; tests lower it). 0: no
 * watchdog thread is started. */
extern _Atomic uint32_t watchdog_stall_ms;
/* Start / stop the watchdog thread of a pager (pager.c, normal context,
 * after the service threads started / before they stop). */
int watchdog_start(struct ufp_pager *p);
void watchdog_stop(struct ufp_pager *p);
/* Stalls reported so far (service_stalls). */
uint64_t watchdog_stalls(struct ufp_pager *p);

#endif /* UFP_WATCHDOG_H */
