/* SPDX-License-Identifier: MIT */
/*
 * pager_stats.c - ufp_stats_get: the per-thread counters merged (stats.c)
 * with what other layers know (the tree's size, the tier's content, the
 * watchdog, injection), written at most out->size bytes. The export
 * thread (export.c) publishes the same view.
 */
#include "base.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "delivery.h"
#include "export.h"
#include "inject.h"
#include "swap_backend.h"

int pager_stats_fill(struct ufp_pager *p, struct ufp_stats *out)
{
	struct ufp_stats st;
	uint32_t size, version;

	if (!out)
		return ufp_error(-EINVAL, "ufp_stats_get: NULL out");
	size = out->size;
	version = out->version;
	if (out->version < 2 || out->version > UFP_STATS_VERSION)
		return ufp_error(-EINVAL, "ufp_stats_get: version %u unknown (this library "
				 "knows 2..%d)", out->version, UFP_STATS_VERSION);
	if (size < offsetof(struct ufp_stats, UFP_STATS_FIRST_V3))
		return ufp_error(-EINVAL, "ufp_stats_get: size %u is smaller than the "
				 "version-2 fields (%zu bytes)", size,
				 offsetof(struct ufp_stats, UFP_STATS_FIRST_V3));
	stats_merge(p, &st);
	inject_stats(&st);
	st.service_stalls = watchdog_stalls(p);
	st.foreign_sigbus = sigbus_foreign_count();
	if (!p->forked_child) {
		pager_read_lock(p);
		st.regions = p->tree.count;
		pager_read_unlock(p);
	}
	if (p->swb) {   /* the tier's content, from the backend */
		struct swb_usage u;

		swb_usage(p->swb, &u);
		st.ztier_bytes_in = u.ztier_raw_bytes;
		st.ztier_bytes_out = u.ztier_bytes_used;
		st.swap_reconnects = u.net_reconnects;
		st.swap_unreachable = u.net_down;
	}
	/* a call that succeeds may leave a note: over budget for want of swap */
	if (p->swb && atomic_load_explicit(&p->reclaim.swap_full, memory_order_relaxed) &&
	    st.resident_pages > p->reclaim.budget_pages)
		ufp_set_error("ufpager: swap is full (%s): %llu pages resident against a "
			      "budget of %llu; nothing is lost, eviction resumes when swap "
			      "frees (swap_full_events %llu)",
			      strerror(atomic_load_explicit(&p->reclaim.swap_full_err,
							    memory_order_relaxed) ?: ENOSPC),
			      (unsigned long long)st.resident_pages,
			      (unsigned long long)p->reclaim.budget_pages,
			      (unsigned long long)st.swap_full_events);
	/* an NBD server that went away: say which, since when, and why */
	if (p->swb) {
		char why[320];

		if (swb_status(p->swb, why, sizeof(why)))
			ufp_set_error("ufpager: swap: %s; pages over the budget stay resident, "
				      "pages stored there wait for it (swap_unreachable %llu)", why,
				      (unsigned long long)st.swap_unreachable);
	}
	/* never more than the caller's struct holds */
	memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
	out->size = size;
	out->version = version;
	return 0;
}

UFP_API int ufp_stats_get(ufp_pager *p, struct ufp_stats *out)
{
	struct api_guard g;
	int err;

	/* an inert fork child's counters are still readable */
	if (p && p->forked_child) {
		ufp_clear_error();
		return pager_stats_fill(p, out);
	}
	err = api_begin(p, &g);
	if (!err)
		err = pager_stats_fill(p, out);
	return api_end(&g, err, "ufp_stats_get");
}

