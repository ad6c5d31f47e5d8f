/* SPDX-License-Identifier: MIT */
/*
 * api.c - the guard around every public call: check the pager, block the
 * thread's asynchronous signals, enter the thread (RCU, counter block, I/O
 * context) and, on failure, make sure ufp_last_error() explains it.
 */
#include <stdarg.h>

#include "base.h"
#include "stats.h"
#include "thread.h"
#include "pager.h"
#include "reclaim.h"

/* ======================================================================
 * Entry and exit of public calls.
 * ====================================================================== */

/*
 * Every public call that takes the pager's locks runs with the thread's
 * asynchronous signals blocked, the way a system call is atomic with
 * respect to the program's signal handlers: a handler that touches managed
 * memory would otherwise fault while its own thread holds the lock that
 * the fault needs (a self-deadlock, found from outside with ufp_protect).
 * Synchronous signals stay deliverable (a fault can never be blocked).
 */
int api_begin(struct ufp_pager *p, struct api_guard *g)
{
	sigset_t block;

	g->blocked = false;
	ufp_clear_error();
	if (!p)
		return ufp_error(-EINVAL, "ufpager: NULL pager");
	if (p->forked_child)
		return ufp_error(-ECHILD, "ufpager: this pager was inherited across fork(); "
				 "it is inert in the child (its memory is plain memory)");
	sigfillset(&block);
	sigdelset(&block, SIGBUS);
	sigdelset(&block, SIGSEGV);
	sigdelset(&block, SIGILL);
	sigdelset(&block, SIGFPE);
	sigdelset(&block, SIGTRAP);
	sigdelset(&block, SIGSYS);
	g->blocked = pthread_sigmask(SIG_BLOCK, &block, &g->old) == 0;
	thread_enter(p);
	/* the thread's own swap I/O context: its faults (SIGBUS delivery)
	 * and swap-ins need one */
	if (!thread_is_service())
		reclaim_ctx_ensure(p, thread_stats(p, true));
	return 0;
}

int api_end(struct api_guard *g, int err, const char *fmt, ...)
{
	if (g->blocked)
		pthread_sigmask(SIG_SETMASK, &g->old, NULL);
	if (err < 0) {
		/* every failed call explains itself, at least with its arguments */
		va_list ap;

		va_start(ap, fmt);
		ufp_error_fallback(err, fmt, ap);
		va_end(ap);
	}
	return err;
}

