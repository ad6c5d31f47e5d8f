/* SPDX-License-Identifier: MIT */
/*
 * events.c - foreign userfaultfd events (the program's own munmap,
 * MADV_DONTNEED and mremap of managed memory: UNMAP, REMOVE, REMAP). The
 * thread that reads them (a handler, or the event reader in SIGBUS
 * delivery) only queues them (events_handle): it must never block on the
 * pager lock with an event unread. The event worker applies them under the
 * pager write lock with the structural primitives of mm.c and carries a
 * moved range's evicted pages (remap.c).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "base.h"
#include "rcu.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "reclaim.h"
#include "mm.h"
#include "delivery.h"
#include "inject.h"
#include "sandbox.h"
#include "removes.h"

/* ======================================================================
 * Event worker: applies foreign events under the pager write lock.
 * ====================================================================== */

static void apply_event(struct ufp_pager *p, const struct ufp_event *ev)
{
	const struct uffd_msg *m = &ev->msg;
	struct ufp_tstats *ts = thread_stats(p, true);

	if (m->event == UFFD_EVENT_REMAP) {
		/* counted first: remap_carry's end wakes the program */
		STAT_INC(ts, events_remap);
		/* carries the moved range's evicted pages over (remap.c),
		 * unless an UNMAP of the old range did it already */
		remap_carry(p, ts, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len,
			    ev->slot);
		remap_end(p, ev->slot);
		return;
	}
	/* an mremap's UNMAP of its old range may overtake its REMAP */
	remap_carry_before_unmap(p, ts, m->arg.remove.start, m->arg.remove.end);
	pager_write_lock(p);
	switch (m->event) {
	case UFFD_EVENT_REMOVE: {
		uintptr_t s = m->arg.remove.start, e = m->arg.remove.end;

		/* Pages are gone in the kernel: forget their state. Write-lock
		 * the regions so no fault in flight there races the reset. */
		mm_lock_range(p, s, e);
		mm_clear_ptes(p, s, e);
		STAT_INC(ts, events_remove);
		break;
	}
	case UFFD_EVENT_UNMAP:
		mm_unmap_locked(p, m->arg.remove.start, m->arg.remove.end, true);
		STAT_INC(ts, events_unmap);
		break;
	}
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	/* the entries are gone: faults held back may look again */
	if (m->event == UFFD_EVENT_REMOVE)
		removes_done(p, ev->slot);
}

static void *event_worker(void *arg)
{
	struct ufp_pager *p = arg;

	thread_mark_service(true);
	sandbox_enter(p, SB_EVENT_WORKER);
	for (;;) {
		struct cds_wfcq_node *node;
		uint32_t w = atomic_load_explicit(&p->ev.futex, memory_order_acquire);

		wd_beat(&p->wd.events);
		if (ufp_unlikely(inject_on()) && inject_kill(INJ_T_EVENTS))
			break;             /* injected death: the watchdog must see it */

		node = cds_wfcq_dequeue_blocking(&p->ev.head, &p->ev.tail);
		if (node) {
			struct ufp_event *ev = caa_container_of(node, struct ufp_event, node);

			ufp_tsan_handoff_acquire(node);
			apply_event(p, ev);
			slab_free(ev);
			continue;
		}
		if (atomic_load_explicit(&p->svc.stopping, memory_order_acquire))
			break;
		wd_idle(&p->wd.events, true);
		futex_wait(&p->ev.futex, w, NULL);
		wd_idle(&p->wd.events, false);
	}
	thread_unmark_service();
	return NULL;
}

static bool queue_event(struct ufp_pager *p, const struct uffd_msg *m, unsigned slot)
{
	struct ufp_event *ev = slab_alloc(sizeof(*ev));

	if (!ev) {
		ufp_log("ufpager: out of memory queueing a uffd event; region tree "
			"may disagree with the kernel for [%llx..)\n",
			(unsigned long long)m->arg.remove.start);
		return false;
	}
	cds_wfcq_node_init(&ev->node);
	ev->msg = *m;
	ev->slot = slot;
	ufp_tsan_handoff_release(&ev->node);
	cds_wfcq_enqueue(&p->ev.head, &p->ev.tail, &ev->node);
	/* release: pairs with the acquire load in event_worker */
	futex_bump_wake(&p->ev.futex, 1);
	return true;
}

/* Returns true if the message was an event (handled or queued). */
void events_handle(struct ufp_pager *p, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE: {
		unsigned slot;

		/* (staging is registered with its own userfaultfd, which has no
		 * events: whatever comes here is the program's) */
		/* published before our read section ends: swap-ins and
		 * put-backs of the range wait for the worker (removes.c) */
		slot = removes_publish(p, m->arg.remove.start, m->arg.remove.end);
		if (!queue_event(p, m, slot))
			removes_done(p, slot);
		return;
	}
	case UFFD_EVENT_UNMAP:
		queue_event(p, m, 0);
		return;
	case UFFD_EVENT_REMAP:
		/* publish the new range at once: faults there wait for it */
		queue_event(p, m, remap_publish(p, m->arg.remap.from, m->arg.remap.to,
						m->arg.remap.len));
		return;
	default:
		return;
	}
}


int events_start(struct ufp_pager *p)
{
	cds_wfcq_init(&p->ev.head, &p->ev.tail);
	return service_start(&p->ev.worker, event_worker, p);
}

/* After p->svc.stopping is set and every reader has ended. */
void events_stop(struct ufp_pager *p)
{
	service_stop(&p->ev.worker, &p->ev.futex);   /* svc.stopping is set */
	cds_wfcq_destroy(&p->ev.head, &p->ev.tail);
}
