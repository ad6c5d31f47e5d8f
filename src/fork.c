/* SPDX-License-Identifier: MIT */
/*
 * fork.c - what a fork() does to the process's pagers (pthread_atfork).
 * Without UFFD_FEATURE_EVENT_FORK the child loses the registration: its
 * missing pages read as zeros. That is exactly right as long as every page
 * that ever held data is present at fork time, so the prepare handler
 * stops all structural work (pager write lock) and, with swap, brings
 * evicted pages back first. In the child the pager is inert: its memory is
 * ordinary memory, every ufp_ call returns -ECHILD.
 *
 * Calls down into pagers.c (the table), reclaim.c (pause, swap-in) and
 * vma_locks.c.
 */
#include <unistd.h>

#include "base.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "pager.h"
#include "pagers.h"
#include "reclaim.h"

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
	pagers_lock_all();
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *p = pagers_at(i);

		if (p) {
			reclaim_pause(p);
			pager_write_lock(p);
			reclaim_swapin_all_locked(p);
		}
	}
}

static void atfork_parent(void)
{
	for (unsigned i = UFP_MAX_PAGERS; i-- > 0;) {
		struct ufp_pager *p = pagers_at(i);

		if (p) {
			stats_add(&p->stats.shared, UFP_C_events_fork, 1);
			pager_write_unlock(p);
			reclaim_resume(p);
		}
	}
	pagers_unlock_all();
}

static void atfork_child(void)
{
	for (unsigned i = UFP_MAX_PAGERS; i-- > 0;) {
		struct ufp_pager *p = pagers_at(i);

		if (!p)
			continue;
		p->forked_child = true;
		/* The inherited fd is the parent's context: never use it here. */
		close(p->uffd);
		p->uffd = -1;
		if (p->pagemap_fd >= 0)
			close(p->pagemap_fd);   /* the parent's pagemap */
		p->pagemap_fd = -1;
		if (p->reclaim.staging_uffd >= 0)   /* its ioctls act on the parent's mm */
			close(p->reclaim.staging_uffd);
		p->reclaim.staging_uffd = -1;
		pager_write_unlock(p);
	}
	pagers_unlock_all();
}

static void atfork_setup(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void fork_handlers_install(void)
{
	pthread_once(&atfork_once, atfork_setup);
}
