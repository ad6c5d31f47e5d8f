/* SPDX-License-Identifier: MIT */
/*
 * watchdog.c - one low-frequency thread per pager that reads the service
 * threads' heartbeats (watchdog.h) and reports a thread that stopped
 * making progress: dead (left its loop) or stuck (blocked for good).
 *
 * Concurrency contract: the beats are written by their threads with
 * relaxed atomics; this thread alone reads them and alone writes the
 * wd_beat private fields, reclaim_dead and its stall counter. It takes
 * no pager or region lock and never touches managed memory.
 */
#include <linux/futex.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "futex.h"
#include "thread.h"
#include "region.h"
#include "pager.h"
#include "sandbox.h"

_Atomic uint32_t watchdog_stall_ms = 2000;

struct ufp_watchdog {
	pthread_t thread;
	_Atomic bool stop;
	_Atomic uint32_t futex;
	_Atomic uint64_t stalls;       /* reports made: service_stalls */
};

/* Is there work that an idle thread of this kind would have woken for? */
static bool uffd_has_messages(struct ufp_pager *p)
{
	struct pollfd pf = { .fd = p->uffd, .events = POLLIN };

	return poll(&pf, 1, 0) > 0;
}

/* Check one thread; returns true when it was reported now. */
static bool check_one(struct ufp_pager *p, struct wd_beat *b,
		      const char *what, bool work_waiting, uint64_t now, uint64_t stall_ns)
{
	uint64_t beat = atomic_load_explicit(&b->beat, memory_order_relaxed);
	bool idle = atomic_load_explicit(&b->idle, memory_order_relaxed);

	if (beat != b->seen) {
		b->seen = beat;
		b->since_ns = now;
		b->reported = false;   /* it moved: a later stall is a new one */
		return false;
	}
	if (!b->since_ns || (idle && !work_waiting)) {
		b->since_ns = now;     /* waiting for work, rightly: the clock restarts */
		return false;
	}
	if (b->reported || now - b->since_ns < stall_ns)
		return false;
	b->reported = true;
	/* relaxed: a counter read by ufp_stats_get */
	atomic_fetch_add_explicit(&p->wd.dog->stalls, 1, memory_order_relaxed);
	ufp_log("ufpager: service thread \"%s\" made no progress for %llu ms%s "
		"(dead or stuck); the pager keeps running without it\n", what,
		(unsigned long long)((now - b->since_ns) / 1000000),
		idle ? " with work waiting" : "");
	return true;
}

static void check_all(struct ufp_pager *p, uint64_t stall_ns)
{
	uint64_t now = ufp_now_ns();
	bool msgs = false, checked_msgs = false;
	char name[32];

	if (p->reclaim.worker.started) {
		struct wd_beat *b = &p->wd.reclaim;

		check_one(p, b, "reclaim", false, now, stall_ns);
		/* relaxed: a hint for reclaim_throttle; the beat decides */
		atomic_store_explicit(&p->reclaim.dead, b->reported, memory_order_relaxed);
	}
	if (p->ev.worker.started)
		check_one(p, &p->wd.events, "events",
			  !cds_wfcq_empty(&p->ev.head, &p->ev.tail), now, stall_ns);
	for (unsigned i = 0; i < p->svc.nhandlers; i++) {
		struct wd_beat *b = &p->svc.handlers[i].wd;

		/* poll only when some thread is idle and its beat is stale */
		if (!checked_msgs && atomic_load_explicit(&b->idle, memory_order_relaxed) &&
		    atomic_load_explicit(&b->beat, memory_order_relaxed) == b->seen) {
			msgs = uffd_has_messages(p);
			checked_msgs = true;
		}
		snprintf(name, sizeof(name), "%s %u",
			 p->delivery == UFP_DELIVERY_SIGBUS ? "event reader" : "handler", i);
		check_one(p, b, name, msgs, now, stall_ns);
	}
}

static void *watchdog_main(void *arg)
{
	struct ufp_pager *p = arg;
	struct ufp_watchdog *w = p->wd.dog;

	sandbox_enter(p, SB_WATCHDOG);
	while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
		uint32_t ms = atomic_load_explicit(&watchdog_stall_ms, memory_order_relaxed);
		uint32_t period = ms / 4 < 5 ? 5 : ms / 4 > 500 ? 500 : ms / 4;
		uint32_t f = atomic_load_explicit(&w->futex, memory_order_acquire);
		struct timespec tmo = { period / 1000, (long)(period % 1000) * 1000000L };

		if (ms)
			check_all(p, (uint64_t)ms * 1000000ull);
		futex_wait(&w->futex, f, &tmo);
	}
	return NULL;
}

int watchdog_start(struct ufp_pager *p)
{
	struct ufp_watchdog *w;
	int err;

	if (!atomic_load_explicit(&watchdog_stall_ms, memory_order_relaxed))
		return 0;
	w = slab_calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	p->wd.dog = w;
	/* a service thread: no application signal handler may run on it */
	err = sandbox_thread_create(&w->thread, watchdog_main, p);
	if (err) {
		p->wd.dog = NULL;
		slab_free(w);
		return -err;
	}
	return 0;
}

uint64_t watchdog_stalls(struct ufp_pager *p)
{
	/* relaxed: a counter */
	return p->wd.dog ? atomic_load_explicit(&p->wd.dog->stalls, memory_order_relaxed) : 0;
}

void watchdog_stop(struct ufp_pager *p)
{
	struct ufp_watchdog *w = p->wd.dog;

	if (!w)
		return;
	atomic_store_explicit(&w->stop, true, memory_order_release);
	/* release: pairs with the acquire load of the futex word */
	futex_bump_wake(&w->futex, 1);
	pthread_join(w->thread, NULL);
	p->wd.dog = NULL;
	slab_free(w);
}
