/* SPDX-License-Identifier: MIT */
/*
 * sigbus.c - self-paging through UFFD_FEATURE_SIGBUS: the faulting thread
 * serves its own fault in the SIGBUS handler (fault.c), chained in front
 * of the application's handler. Async-signal-safe: atomics, futex, ioctl,
 * RCU read side for registered threads (urcu-memb), the pager-lock
 * fallback for others; no malloc, no stdio, errno saved.
 */
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "base.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "mm.h"
#include "fault.h"
#include "delivery.h"

/* ======================================================================
 * Self-paging: the SIGBUS handler.
 * ====================================================================== */

static struct {
	struct ufp_pager *_Atomic p;
	_Atomic uint32_t refs;
} sig_pagers[UFP_MAX_PAGERS];
static struct sigaction old_sigbus;
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static bool sig_installed;

static void chain_sigbus(int sig, siginfo_t *si, void *uc)
{
	if (old_sigbus.sa_flags & SA_SIGINFO) {
		if (old_sigbus.sa_sigaction) {
			old_sigbus.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old_sigbus.sa_handler != SIG_DFL && old_sigbus.sa_handler != SIG_IGN) {
		old_sigbus.sa_handler(sig);
		return;
	}
	/* default action: restore it; returning re-executes the access and
	 * the kernel delivers SIGBUS with the default disposition */
	signal(SIGBUS, SIG_DFL);
}

static bool fault_was_write(void *ucv)
{
#if defined(__x86_64__)
	ucontext_t *uc = ucv;

	/* x86 page-fault error code: bit 1 set for a write access */
	return uc && (uc->uc_mcontext.gregs[REG_ERR] & 2);
#else
	(void)ucv;
	return true;
#endif
}

/* Async-signal-safe report of a fault we own but could not serve. */
static void sig_report(uintptr_t addr, int err)
{
	char buf[96] = "ufpager: cannot serve fault at 0x";
	size_t n = strlen(buf);

	for (int sh = 60; sh >= 0; sh -= 4)
		buf[n++] = "0123456789abcdef"[(addr >> sh) & 15];
	memcpy(buf + n, ": errno ", 8);
	n += 8;
	if (err < 0)
		err = -err;
	if (err >= 100)
		buf[n++] = (char)('0' + err / 100 % 10);
	if (err >= 10)
		buf[n++] = (char)('0' + err / 10 % 10);
	buf[n++] = (char)('0' + err % 10);
	buf[n++] = '\n';
	if (write(2, buf, n) < 0) {
		/* nothing more we can do from a signal handler */
	}
}

/* Take a reference on pager slot i; NULL if empty (async-signal-safe). */
static struct ufp_pager *sig_pager_get(unsigned i)
{
	struct ufp_pager *p;

	if (!atomic_load_explicit(&sig_pagers[i].p, memory_order_relaxed))
		return NULL;
	/* seq_cst: the ref is visible before we read p, pairs with
	 * sigbus_remove's clear-then-wait */
	atomic_fetch_add(&sig_pagers[i].refs, 1);
	p = atomic_load(&sig_pagers[i].p);
	if (!p || p->forked_child) {
		atomic_fetch_sub(&sig_pagers[i].refs, 1);
		return NULL;
	}
	return p;
}

static void sig_pager_put(unsigned i)
{
	atomic_fetch_sub(&sig_pagers[i].refs, 1);
}

enum sig_outcome { SIG_NOT_OURS, SIG_SERVED, SIG_FAILED };

static enum sig_outcome sigbus_serve(uintptr_t addr, void *uc)
{
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *p = sig_pager_get(i);
		int r;

		if (!p)
			continue;
		if (remap_covers(p, addr)) {
			/* a range the program mremapped: wait until it is carried
			 * over, then the access runs on present memory */
			remap_wait(p, addr);
			sig_pager_put(i);
			return SIG_SERVED;
		}
		if (!pager_owns(p, addr)) {
			sig_pager_put(i);
			continue;
		}
		struct ufp_tstats *ts = thread_stats(p, false);
		uint64_t t0 = ufp_now_ns();
		bool write = fault_was_write(uc);

		while ((r = fault_serve(p, ts, addr, write, thread_rcu_registered())) == -EAGAIN)
			sched_yield();
		if (r == 0) {
			stats_hist_record(ts, UFP_L_fault_lat, ufp_now_ns() - t0);
			STAT_INC(ts, sigbus_faults);
		}
		sig_pager_put(i);
		if (r == 0)
			return SIG_SERVED;
		if (r != -EHWPOISON)
			sig_report(addr, r);
		return SIG_FAILED;   /* ours but unmapped (or failed): not resolvable */
	}
	return SIG_NOT_OURS;
}

/* No pager owns addr: is an event reader between reading a REMAP and
 * publishing it? Then the address may be a moved range: wait, look again. */
static bool sigbus_remap_pending(void)
{
	bool waited = false;

	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *p = sig_pager_get(i);

		if (!p)
			continue;
		waited |= remap_wait_reader(p);
		sig_pager_put(i);
	}
	return waited;
}

/* SIGBUS that were not ours (chained), process-wide: read by ufp_stats_get. */
static _Atomic uint64_t foreign_count;

uint64_t sigbus_foreign_count(void)
{
	/* relaxed: a counter */
	return atomic_load_explicit(&foreign_count, memory_order_relaxed);
}

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uintptr_t addr = (uintptr_t)si->si_addr;

	if (si->si_code == BUS_ADRERR) {
		enum sig_outcome o = sigbus_serve(addr, uc);

		if (o == SIG_NOT_OURS && sigbus_remap_pending())
			o = sigbus_serve(addr, uc);
		if (o == SIG_SERVED) {
			errno = saved_errno;
			return;
		}
	}
	/* relaxed: a counter (lock-free atomic: async-signal-safe) */
	atomic_fetch_add_explicit(&foreign_count, 1, memory_order_relaxed);
	chain_sigbus(sig, si, uc);
	errno = saved_errno;
}

int sigbus_install(struct ufp_pager *p)
{
	int err = -ENOSPC;

	pthread_mutex_lock(&sig_lock);
	/* (Re)install when the current handler is not ours: the application
	 * may have replaced it since; chain to whatever it installed. */
	struct sigaction cur;
	if (sigaction(SIGBUS, NULL, &cur) == 0 &&
	    (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != sigbus_handler))
		sig_installed = false;
	if (!sig_installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sigbus_handler;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
		/* Asynchronous signals wait while we serve a fault: a handler of
		 * the program that touched managed memory here would need the
		 * region lock we may hold. SIGBUS stays deliverable (NODEFER),
		 * and so do the other synchronous signals. */
		sigfillset(&sa.sa_mask);
		sigdelset(&sa.sa_mask, SIGBUS);
		sigdelset(&sa.sa_mask, SIGSEGV);
		sigdelset(&sa.sa_mask, SIGILL);
		sigdelset(&sa.sa_mask, SIGFPE);
		sigdelset(&sa.sa_mask, SIGTRAP);
		/* and a seccomp trap, synchronous too: blocked, the kernel
		 * would force the default action and kill the process */
		sigdelset(&sa.sa_mask, SIGSYS);
		if (sigaction(SIGBUS, &sa, &old_sigbus)) {
			err = -errno;
			goto out;
		}
		sig_installed = true;
	}
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *expect = NULL;

		if (atomic_compare_exchange_strong(&sig_pagers[i].p, &expect, p)) {
			p->slot = i;
			err = 0;
			break;
		}
	}
	if (err)
		ufp_set_error("ufpager: more than %d SIGBUS-delivery pagers", UFP_MAX_PAGERS);
out:
	pthread_mutex_unlock(&sig_lock);
	return err;
}

void sigbus_remove(struct ufp_pager *p)
{
	unsigned i = p->slot;

	if (i >= UFP_MAX_PAGERS || atomic_load(&sig_pagers[i].p) != p)
		return;
	/* seq_cst store then wait for handlers that may have seen p */
	atomic_store(&sig_pagers[i].p, NULL);
	while (atomic_load(&sig_pagers[i].refs))
		sched_yield();
}
