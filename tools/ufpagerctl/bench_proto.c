/* SPDX-License-Identifier: MIT */
/*
 * bench_proto.c - benchmarks of the lock protocol and the region tree
 * alone, on a bare pager (no userfaultfd, nothing mapped):
 *   locks: T reader threads doing lookup + read-trylock + unlock on their
 *          own regions while W writer threads split and merge other
 *          regions, per lock mode;
 *   tree:  lookup ns and structural update us at 1,000 and 100,000 regions.
 */
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

#define PB_BASE 0x100000000000ull
#define PB_REGION_PAGES 16

/* Regions [i*R, i*R + R) pages apart by one page so they never merge. */
static uintptr_t pb_addr(unsigned i)
{
	return PB_BASE + (uintptr_t)i * (PB_REGION_PAGES + 1) * UFP_PAGE_SIZE;
}

static int pb_populate(struct ufp_pager *p, unsigned n)
{
	pager_write_lock(p);
	for (unsigned i = 0; i < n; i++) {
		struct ufp_region *r = region_alloc(p, pb_addr(i),
				pb_addr(i) + PB_REGION_PAGES * UFP_PAGE_SIZE, UFP_PROT_ALL, 0);

		if (!r || region_tree_insert(&p->tree, r)) {
			pager_write_unlock(p);
			return -ENOMEM;
		}
	}
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return 0;
}

/* One structural update: split region i in the middle, then merge it back
 * (two write sections, as two mprotect calls would be). */
static void pb_split_merge(struct ufp_pager *p, unsigned i)
{
	uintptr_t a = pb_addr(i), mid = a + PB_REGION_PAGES / 2 * UFP_PAGE_SIZE;
	struct ufp_region *r, *h;

	pager_write_lock(p);
	r = region_tree_lookup(&p->tree, a);
	region_write_lock(r);
	h = mm_split(p, r, mid);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);

	pager_write_lock(p);
	r = region_tree_lookup(&p->tree, a);
	h = region_tree_lookup(&p->tree, mid);
	region_write_lock(r);
	region_write_lock(h);
	mm_merge(p, r, h);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
}

/* ---- locks ------------------------------------------------------------- */

struct pb_reader {
	struct crew_member m;      /* lat: one sample per lookup; ops: lookups */
	struct ufp_pager *p;
	unsigned first, count;
	uint64_t fails;
};

static void *pb_reader_main(void *arg)
{
	struct pb_reader *r = arg;
	struct ufp_pager *p = r->p;
	struct ufp_tstats *ts;
	unsigned k = 0;

	ufp_thread_register();
	ts = thread_stats(p, true);
	crew_ready(&r->m);
	while (!crew_stopping(&r->m)) {
		uintptr_t a = pb_addr(r->first + k++ % r->count) + UFP_PAGE_SIZE;
		struct fault_lock fl;
		uint64_t t0 = ufp_now_ns();

		if (fault_lock_region(p, a, ts, true, &fl))
			fault_unlock_region(p, &fl);
		else
			r->fails++;
		lat_add(&r->m.lat, ufp_now_ns() - t0);
		r->m.ops++;
	}
	return NULL;
}

struct pb_writer {
	struct crew_member m;      /* ops: structural updates */
	struct ufp_pager *p;
	unsigned first, count;
};

static void *pb_writer_main(void *arg)
{
	struct pb_writer *w = arg;
	unsigned k = 0;

	ufp_thread_register();
	crew_ready(&w->m);
	while (!crew_stopping(&w->m)) {
		pb_split_merge(w->p, w->first + k++ % w->count);
		w->m.ops += 2;
	}
	return NULL;
}

struct pb_res {
	double rops_s, wops_s;
	struct ufp_latency lat;
	struct ufp_stats st;
};

static int pb_run_locks(struct bench_opts *o, enum ufp_lock_mode mode, unsigned nt,
			unsigned nw, struct pb_res *res)
{
	enum { PER_THREAD = 64 };
	struct pb_reader *rd = calloc(nt ? nt : 1, sizeof(*rd));
	struct pb_writer *wr = calloc(nw ? nw : 1, sizeof(*wr));
	struct ufp_pager *p = NULL;
	struct bench_crew crew;
	struct lat all = { 0 };
	uint64_t rops = 0, wops = 0;
	int err = -ENOMEM;

	if (!rd || !wr || crew_init(&crew, nt + nw))
		goto out;
	p = pager_alloc_bare(PB_BASE, 1ull << 44, mode);
	if (!p || pb_populate(p, (nt + nw) * PER_THREAD))
		goto out_crew;
	for (unsigned i = 0; i < nt; i++) {
		rd[i] = (struct pb_reader){ .p = p, .first = i * PER_THREAD, .count = PER_THREAD };
		crew_spawn(&crew, &rd[i].m, pb_reader_main, &rd[i]);
	}
	for (unsigned i = 0; i < nw; i++) {
		wr[i] = (struct pb_writer){ .p = p, .first = (nt + i) * PER_THREAD,
					    .count = PER_THREAD };
		crew_spawn(&crew, &wr[i].m, pb_writer_main, &wr[i]);
	}
	err = crew_run_for(&crew, o->seconds);
	crew_collect(&crew, 0, nt, &all, &rops);
	crew_collect(&crew, nt, nw, NULL, &wops);
	res->rops_s = (double)rops / crew.elapsed;
	res->wops_s = (double)wops / crew.elapsed;
	lat_summary(&all, &res->lat);
	res->st = (struct ufp_stats){ .size = sizeof(res->st), .version = UFP_STATS_VERSION };
	stats_merge(p, &res->st);
out_crew:
	if (p)
		pager_free_bare(p);
	crew_destroy(&crew);
out:
	free(rd);
	free(wr);
	return err;
}

int bench_locks(struct bench_opts *o)
{
	static const enum ufp_lock_mode modes[2] = { UFP_LOCK_PER_REGION, UFP_LOCK_GLOBAL };
	static const char *mname[2] = { "per-region", "global" };

	printf("\n== locks: the protocol alone; readers lookup+trylock+unlock their own regions,\n"
	       "   writers split+merge other regions (%.1fs per run)\n", o->seconds);
	printf("%-10s %3s %3s %13s %9s %9s %9s %11s %9s %9s\n", "mode", "T", "W", "lookups/s",
	       "p50", "p99", "max", "updates/s", "fallback", "miss");
	for (unsigned ti = 0; ti < o->nthreads; ti++)
		for (unsigned wi = 0; wi < o->nwriters; wi++) {
			struct pb_res r[2];

			for (int m = 0; m < 2; m++) {
				unsigned T = o->threads[ti], W = o->writers[wi];

				if (pb_run_locks(o, modes[m], T, W, &r[m]))
					return 1;
				printf("%-10s %3u %3u %13.0f %7lluns %7lluns %7.1fus %11.0f %9llu %9llu\n",
				       mname[m], T, W, r[m].rops_s, (unsigned long long)r[m].lat.p50,
				       (unsigned long long)r[m].lat.p99, (double)r[m].lat.max / 1e3,
				       r[m].wops_s, (unsigned long long)r[m].st.lock_fallback,
				       (unsigned long long)r[m].st.lock_miss);
				json_row_begin(o, "locks");
				json_kv_str(o, "mode", mname[m]);
				json_kv_num(o, "T", T);
				json_kv_num(o, "W", W);
				json_kv_num(o, "lookups_per_s", r[m].rops_s);
				json_kv_lat(o, "lookup_latency", &r[m].lat);
				json_kv_num(o, "updates_per_s", r[m].wops_s);
				json_kv_num(o, "lock_fallback", (double)r[m].st.lock_fallback);
				json_kv_num(o, "lock_miss", (double)r[m].st.lock_miss);
				json_row_end(o);
			}
			printf("%-10s %3s %3s %12.2fx %8.2fx (throughput per-region/global; "
			       "p99 global/per-region)\n", "ratio", "", "", r[0].rops_s / r[1].rops_s,
			       (double)r[1].lat.p99 / (double)(r[0].lat.p99 ? r[0].lat.p99 : 1));
		}
	return 0;
}

/* ---- tree -------------------------------------------------------------- */

int bench_tree(struct bench_opts *o)
{
	static const unsigned sizes[2] = { 1000, 100000 };

	printf("\n== tree: region lookup and structural update cost by tree size\n");
	printf("%9s %12s %14s %16s %14s\n", "regions", "lookup ns", "lookup+lock ns",
	       "split+merge us", "insert us");
	for (int s = 0; s < 2; s++) {
		unsigned n = sizes[s], iters = o->quick ? 200000 : 2000000, upd = o->quick ? 2000 : 20000;
		struct ufp_pager *p = pager_alloc_bare(PB_BASE, 1ull << 44, UFP_LOCK_PER_REGION);
		struct ufp_tstats *ts;
		uint64_t t0, seed = 88172645463325252ull, hits = 0;
		double lookup_ns, locked_ns, update_us, insert_us;

		ufp_thread_register();
		ts = thread_stats(p, true);
		t0 = ufp_now_ns();
		if (!p || pb_populate(p, n))
			return 1;
		insert_us = (double)(ufp_now_ns() - t0) / 1e3 / n;

		urcu_memb_read_lock();
		t0 = ufp_now_ns();
		for (unsigned i = 0; i < iters; i++) {
			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			hits += region_tree_lookup(&p->tree, pb_addr((unsigned)(seed % n))) != NULL;
		}
		lookup_ns = (double)(ufp_now_ns() - t0) / iters;
		urcu_memb_read_unlock();

		t0 = ufp_now_ns();
		for (unsigned i = 0; i < iters / 4; i++) {
			struct fault_lock fl;

			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			if (fault_lock_region(p, pb_addr((unsigned)(seed % n)), ts, true, &fl))
				fault_unlock_region(p, &fl);
		}
		locked_ns = (double)(ufp_now_ns() - t0) / (iters / 4);

		t0 = ufp_now_ns();
		for (unsigned i = 0; i < upd; i++) {
			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			pb_split_merge(p, (unsigned)(seed % n));
		}
		update_us = (double)(ufp_now_ns() - t0) / 1e3 / (2.0 * upd);
		if (hits != iters)
			fprintf(stderr, "bench tree: %llu of %u lookups missed\n",
				(unsigned long long)(iters - hits), iters);
		printf("%9u %12.1f %14.1f %16.2f %14.2f\n", n, lookup_ns, locked_ns, update_us,
		       insert_us);
		json_row_begin(o, "tree");
		json_kv_num(o, "regions", n);
		json_kv_num(o, "lookup_ns", lookup_ns);
		json_kv_num(o, "lookup_lock_unlock_ns", locked_ns);
		json_kv_num(o, "update_us", update_us);
		json_kv_num(o, "insert_us", insert_us);
		json_row_end(o);
		pager_free_bare(p);
	}
	printf("   (update = one write section: lock, split or merge, publish, unlock; the old\n"
	       "    nodes go to call_rcu; no update copies more than O(log n) nodes)\n");
	return 0;
}
