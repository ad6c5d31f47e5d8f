/* SPDX-License-Identifier: MIT */
/*
 * uffd_loop.c - the fault-service loop in handler delivery: a pool of
 * handler threads that read the userfaultfd, spin adaptively before they
 * block, and serve each fault (fault.c); in SIGBUS delivery, the one event
 * reader. Foreign events go to events.c.
 *
 * Concurrency contract:
 *  - a handler thread never touches managed memory: UFFDIO_COPY sources are
 *    a static zero buffer (outside every registered range) and, with swap,
 *    bounce buffers; with UFFD_FEATURE_THREAD_ID every fault's thread id is
 *    checked against the handlers' (handler_self_faults must stay 0);
 *  - handler threads never block on the pager lock while holding an event
 *    unread: foreign events are queued to the event worker, which alone
 *    takes the pager lock for write on their behalf.
 */
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "region.h"
#include "pager.h"
#include "uffd.h"
#include "reclaim.h"
#include "fault.h"
#include "delivery.h"
#include "inject.h"
#include "sandbox.h"

/* ======================================================================
 * Handler threads.
 * ====================================================================== */

#define MSG_BATCH 32
#define RETRY_MAX 64

struct pending_fault {
	uintptr_t addr;
	bool write;
};

static bool is_handler_tid(struct ufp_pager *p, pid_t tid)
{
	for (unsigned i = 0; i < p->svc.nhandlers; i++)
		if (__atomic_load_n(&p->svc.handlers[i].tid, __ATOMIC_ACQUIRE) == tid)
			return true;
	return false;
}

static void serve_msg(struct ufp_pager *p, struct ufp_tstats *ts, const struct uffd_msg *m,
		      struct pending_fault *retry, unsigned *nretry)
{
	uint64_t t0 = ufp_now_ns();
	uintptr_t addr = m->arg.pagefault.address;
	bool write = m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
	int r;

	if ((p->features & UFFD_FEATURE_THREAD_ID) &&
	    is_handler_tid(p, (pid_t)m->arg.pagefault.feat.ptid)) {
		/* a handler touched managed memory: it would deadlock */
		STAT_INC(ts, handler_self_faults);
		UFP_ASSERT(!"handler thread faulted on managed memory");
	}
	r = fault_serve(p, ts, addr, write, true);
	if (r == -EAGAIN) {
		if (*nretry < RETRY_MAX)
			retry[(*nretry)++] = (struct pending_fault){ addr, write };
		return;
	}
	if (r == -EFAULT) {
		/* no region (a race with unmap): wake, the retry finds no VMA or
		 * a new registration */
		uffd_wake(p, addr & UFP_PAGE_MASK, UFP_PAGE_SIZE);
		return;
	}
	stats_hist_record(ts, UFP_L_fault_lat, ufp_now_ns() - t0);
}

/*
 * A handler does not keep faults waiting behind its own read. Of the
 * faults one read() returned, those served from RAM (zero fill, the tier,
 * the parked ring) go first; of those that need a read from the swap
 * file or NBD export, the handler keeps one and hands the others to the
 * pool (handoff slots, and a kick on kick_fd that wakes a blocked
 * handler). Before: every fault of the batch waited for each read before
 * it, while other handlers slept.
 */
static bool handoff_push(struct ufp_pager *p, uintptr_t addr, bool write)
{
	uint64_t v = (addr & UFP_PAGE_MASK) | (write ? 1 : 0) | 2;

	for (unsigned k = 0; k < UFP_HANDOFF_SLOTS; k++) {
		uint64_t z = 0;

		/* release: pairs with handoff_pop's acquire exchange */
		if (atomic_compare_exchange_strong_explicit(&p->svc.handoff[k], &z, v,
				memory_order_release, memory_order_relaxed))
			return true;
	}
	return false;
}

static bool handoff_pop(struct ufp_pager *p, struct uffd_msg *m)
{
	for (unsigned k = 0; k < UFP_HANDOFF_SLOTS; k++) {
		/* relaxed peek, then an acquire exchange (pairs with the push) */
		uint64_t v = atomic_load_explicit(&p->svc.handoff[k], memory_order_relaxed);

		if (v && (v = atomic_exchange_explicit(&p->svc.handoff[k], 0,
						       memory_order_acquire))) {
			memset(m, 0, sizeof(*m));
			m->event = UFFD_EVENT_PAGEFAULT;
			m->arg.pagefault.address = v & UFP_PAGE_MASK;
			m->arg.pagefault.flags = (v & 1) ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
			return true;
		}
	}
	return false;
}

static void handoff_kick(struct ufp_pager *p)
{
	uint64_t one = 1;

	if (p->svc.kick_fd >= 0 && write(p->svc.kick_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already huge, readers are awake */
	}
}

/* Serve the faults of one read: RAM first, then reads (see above). */
static void serve_batch(struct ufp_pager *p, struct ufp_handler *h, struct ufp_tstats *ts,
			const struct uffd_msg *msgs, size_t n, struct pending_fault *retry,
			unsigned *nretry)
{
	bool io[MSG_BATCH], kept = false, pushed = false;

	for (size_t i = 0; i < n; i++) {
		io[i] = msgs[i].event == UFFD_EVENT_PAGEFAULT &&
			fault_needs_read(p, (uintptr_t)msgs[i].arg.pagefault.address);
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT && !io[i]) {
			wd_beat(&h->wd);
			serve_msg(p, ts, &msgs[i], retry, nretry);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!io[i])
			continue;
		if (kept && handoff_push(p, (uintptr_t)msgs[i].arg.pagefault.address,
					 msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE)) {
			STAT_INC(ts, faults_handed_off);
			io[i] = false;          /* another handler's now */
			pushed = true;
			continue;
		}
		kept = true;
	}
	if (pushed)
		handoff_kick(p);
	for (size_t i = 0; i < n; i++)
		if (io[i]) {
			wd_beat(&h->wd);
			serve_msg(p, ts, &msgs[i], retry, nretry);
		}
}

/* Serve what other handlers handed off; returns whether there was any. */
static bool serve_handoffs(struct ufp_pager *p, struct ufp_tstats *ts,
			   struct pending_fault *retry, unsigned *nretry)
{
	struct uffd_msg m;
	bool any = false;

	while (handoff_pop(p, &m)) {
		serve_msg(p, ts, &m, retry, nretry);
		any = true;
	}
	return any;
}

static void *handler_main(void *arg)
{
	struct ufp_handler *h = arg;
	struct ufp_pager *p = h->pager;
	struct uffd_msg msgs[MSG_BATCH];
	struct pending_fault retry[RETRY_MAX];
	unsigned nretry = 0;
	struct ufp_tstats *ts;
	uint64_t spin_ns = p->opt.spin_us > 0 ? (uint64_t)p->opt.spin_us * 1000 : 0;

	thread_mark_service(true);
	ts = thread_stats(p, true);
	reclaim_ctx_ensure(p, ts);
	sandbox_enter(p, SB_HANDLER);

	while (!atomic_load_explicit(&p->svc.stopping, memory_order_acquire)) {
		ssize_t n;

		wd_beat(&h->wd);
		/* injected death, holding no consumed message */
		if (ufp_unlikely(inject_on()) && !nretry && inject_kill(INJ_T_HANDLER))
			break;
		if (serve_handoffs(p, ts, retry, &nretry))
			continue;
		/* seq_cst: the section is open before the read dequeues */
		atomic_fetch_add(&h->section, 1);
		n = read(p->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			atomic_fetch_add_explicit(&h->section, 1, memory_order_release);
			if (errno != EAGAIN && errno != EINTR)
				break;
			if (nretry) {
				/* events pending: give the triggering op a moment */
				struct pending_fault cur[RETRY_MAX];
				unsigned nc = nretry;

				memcpy(cur, retry, sizeof(cur[0]) * nc);
				nretry = 0;
				sched_yield();
				for (unsigned i = 0; i < nc; i++) {
					struct uffd_msg fake = { .event = UFFD_EVENT_PAGEFAULT };

					fake.arg.pagefault.address = cur[i].addr;
					fake.arg.pagefault.flags = cur[i].write ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
					serve_msg(p, ts, &fake, retry, &nretry);
				}
				continue;
			}
			/* Adaptive polling: spin on the non-blocking fd for a
			 * while after the last message, then block. */
			/* One spinner at a time: on a machine with few cores
			 * several spinning handlers starve the faulting threads. */
			if (spin_ns && !atomic_exchange_explicit(&p->svc.spinner, true,
								 memory_order_relaxed)) {
				uint64_t deadline = ufp_now_ns() + spin_ns;
				bool hit = false;

				while (ufp_now_ns() < deadline) {
					struct pollfd pf = { .fd = p->uffd, .events = POLLIN };

					if (poll(&pf, 1, 0) > 0) {
						hit = true;
						break;
					}
					caa_cpu_relax();
				}
				atomic_store_explicit(&p->svc.spinner, false, memory_order_relaxed);
				if (hit) {
					STAT_INC(ts, handler_spins_hit);
					continue;
				}
			}
			struct pollfd pfd[3] = {
				{ .fd = p->uffd, .events = POLLIN },
				{ .fd = p->svc.wake_fd, .events = POLLIN },
				{ .fd = p->svc.kick_fd, .events = POLLIN },
			};
			STAT_INC(ts, handler_blocks);
			wd_idle(&h->wd, true);
			poll(pfd, 3, -1);
			wd_idle(&h->wd, false);
			if (pfd[2].revents & POLLIN) {
				uint64_t k;

				if (read(p->svc.kick_fd, &k, sizeof(k)) < 0) {
					/* EAGAIN: another handler took the kick */
				}
			}
			continue;
		}
		/* events first, then the section ends (remap.c ordering) */
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				events_handle(p, &msgs[i]);
		/* release: pairs with the acquire in remap_carry_before_unmap */
		atomic_fetch_add_explicit(&h->section, 1, memory_order_release);
		serve_batch(p, h, ts, msgs, (size_t)n / sizeof(msgs[0]), retry, &nretry);
	}
	thread_unmark_service();
	return NULL;
}

/* Event-only reader for SIGBUS delivery: faults come as signals, but
 * non-cooperative events still arrive on the fd. */
static void *event_reader_main(void *arg)
{
	struct ufp_handler *h = arg;
	struct ufp_pager *p = h->pager;
	struct uffd_msg msgs[MSG_BATCH];

	thread_mark_service(false);
	sandbox_enter(p, SB_EVENT_READER);
	while (!atomic_load_explicit(&p->svc.stopping, memory_order_acquire)) {
		ssize_t n;

		wd_beat(&h->wd);
		/* Raised from before the read until the events are published:
		 * an mremap caller resumes once its REMAP is read, and a SIGBUS
		 * on the moved range must find it published (remap.c). seq_cst:
		 * the increment is visible before the read dequeues anything. */
		atomic_fetch_add(&p->ev.reading, 1);
		n = read(p->uffd, msgs, sizeof(msgs));
		for (size_t i = 0; n > 0 && i < (size_t)n / sizeof(msgs[0]); i++)
			events_handle(p, &msgs[i]);
		/* release: pairs with the acquire in remap_wait_reader */
		atomic_fetch_sub_explicit(&p->ev.reading, 1, memory_order_release);
		if (n < 0) {
			struct pollfd pfd[2] = {
				{ .fd = p->uffd, .events = POLLIN },
				{ .fd = p->svc.wake_fd, .events = POLLIN },
			};

			if (errno != EAGAIN && errno != EINTR)
				break;
			wd_idle(&h->wd, true);
			poll(pfd, 2, -1);
			wd_idle(&h->wd, false);
			continue;
		}
	}
	return NULL;
}

static void *handler_trampoline(void *arg)
{
	struct ufp_handler *h = arg;

	/* release: pairs with the acquire loads in uffd_start_threads and
	 * is_handler_tid */
	__atomic_store_n(&h->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	if (h->pager->delivery == UFP_DELIVERY_SIGBUS)
		return event_reader_main(arg);
	return handler_main(arg);
}

int uffd_start_threads(struct ufp_pager *p)
{
	int err;

	p->svc.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->svc.wake_fd < 0)
		return -errno;
	if (p->delivery == UFP_DELIVERY_HANDLER &&
	    (p->svc.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	p->svc.nhandlers = p->delivery == UFP_DELIVERY_SIGBUS ? 1 : (unsigned)p->opt.handler_threads;
	p->svc.handlers = slab_calloc(p->svc.nhandlers, sizeof(*p->svc.handlers));
	if (!p->svc.handlers)
		return -ENOMEM;
	/* service threads block every signal (sandbox_thread_create) */
	err = events_start(p);
	if (err)
		return err;
	for (unsigned i = 0; i < p->svc.nhandlers; i++) {
		p->svc.handlers[i].pager = p;
		if (sandbox_thread_create(&p->svc.handlers[i].thread, handler_trampoline,
					  &p->svc.handlers[i])) {
			p->svc.nhandlers = i;
			err = -EAGAIN;
			break;
		}
	}
	/* Handler tids are needed by the self-fault check: wait for them. */
	for (unsigned i = 0; i < p->svc.nhandlers; i++)
		while (!__atomic_load_n(&p->svc.handlers[i].tid, __ATOMIC_ACQUIRE))
			sched_yield();
	return err;
}

void uffd_stop_threads(struct ufp_pager *p)
{
	uint64_t one = 1;

	atomic_store_explicit(&p->svc.stopping, true, memory_order_release);
	if (p->svc.wake_fd >= 0 && write(p->svc.wake_fd, &one, sizeof(one)) < 0) {
		/* the eventfd counter cannot overflow from one write */
	}
	for (unsigned i = 0; i < p->svc.nhandlers; i++)
		pthread_join(p->svc.handlers[i].thread, NULL);
	events_stop(p);
	slab_free(p->svc.handlers);
	p->svc.handlers = NULL;
	p->svc.nhandlers = 0;
	if (p->svc.wake_fd >= 0)
		close(p->svc.wake_fd);
	p->svc.wake_fd = -1;
	if (p->svc.kick_fd >= 0)
		close(p->svc.kick_fd);
	p->svc.kick_fd = -1;
}

