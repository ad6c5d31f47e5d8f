/* SPDX-License-Identifier: MIT */
/*
 * pagers.c - the process's live pagers: a fixed table under one mutex,
 * with the ids readable lock-free. thread.c asks it, through the hooks
 * registered here (it calls no layer above it), whether a pager still
 * exists and hands it a dying thread's counter block; fork.c walks it at
 * fork. Calls region.c (counter spill), stats.c and the swap backend.
 */
#include "base.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "pagers.h"
#include "swap_backend.h"

static pthread_mutex_t pagers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ufp_pager *pagers[UFP_MAX_PAGERS];
/* ids of live pagers, readable without pagers_lock (thread.c prunes its
 * per-thread tables with it, also from under pagers_lock at fork) */
static _Atomic uint64_t live_ids[UFP_MAX_PAGERS];

static const struct thread_hooks pagers_hooks = {
	.id_alive = pagers_id_alive,
	.thread_exit = pagers_thread_exit,
};

int pagers_add(struct ufp_pager *p)
{
	int err = -ENOSPC;

	thread_set_hooks(&pagers_hooks);
	ufp_mutex_lock(&pagers_lock, LL_PAGERS);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (!pagers[i]) {
			pagers[i] = p;
			/* relaxed: a hint for pruning (pagers_id_alive) */
			atomic_store_explicit(&live_ids[i], p->id, memory_order_relaxed);
			err = 0;
			break;
		}
	ufp_mutex_unlock(&pagers_lock, LL_PAGERS);
	return err;
}

void pagers_del(struct ufp_pager *p)
{
	ufp_mutex_lock(&pagers_lock, LL_PAGERS);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (pagers[i] == p) {
			pagers[i] = NULL;
			/* relaxed: a hint for pruning; ids are never reused */
			atomic_store_explicit(&live_ids[i], 0, memory_order_relaxed);
		}
	ufp_mutex_unlock(&pagers_lock, LL_PAGERS);
}

bool pagers_id_alive(uint64_t id)
{
	/* relaxed: a hint for pruning; ids are never reused */
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (atomic_load_explicit(&live_ids[i], memory_order_relaxed) == id)
			return true;
	return false;
}

/*
 * A thread exits: destroy its swap I/O context for pager `id` if the pager
 * still exists (called from a TLS destructor: no lock held). Lock
 * order: pagers_lock, then stats_lock; pagers_lock keeps the pager (and its
 * backend: reclaim_fini runs before pagers_del) alive, stats_lock orders us
 * against reclaim_fini destroying the same context.
 */
void pagers_thread_exit(uint64_t id, struct ufp_tstats *ts)
{
	ufp_mutex_lock(&pagers_lock, LL_PAGERS);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *p = pagers[i];

		if (!p || p->id != id || p->forked_child)
			continue;
		region_counts_spill(p, ts);   /* RCU, not stats_lock */
		ufp_mutex_lock(&p->stats.lock, LL_STATS);
		if (ts->swb_ctx) {
			swb_ctx_destroy(ts->swb_ctx);
			ts->swb_ctx = NULL;
		}
		stats_block_retire(p, ts);
		ufp_mutex_unlock(&p->stats.lock, LL_STATS);
	}
	ufp_mutex_unlock(&pagers_lock, LL_PAGERS);
}

void pagers_lock_all(void)
{
	ufp_mutex_lock(&pagers_lock, LL_PAGERS);
}

void pagers_unlock_all(void)
{
	ufp_mutex_unlock(&pagers_lock, LL_PAGERS);
}

struct ufp_pager *pagers_at(unsigned i)
{
	return pagers[i];
}
