/* SPDX-License-Identifier: MIT */
/*
 * bench_proto.c - a test-side program (linked with ufpager_internal, not
 * part of ufpagerctl, which links only libufpager.so): benchmarks of the
 * lock protocol and the region tree alone, on a bare pager (no
 * userfaultfd, nothing mapped, no API entry). `ufpagerctl bench locks` and
 * `tree` measure the same through the public API (bench_tree.c).
 *   locks: T reader threads doing lookup + read-trylock + unlock on their
 *          own regions while W writer threads split and merge other
 *          regions, per lock mode;
 *   tree:  lookup ns and structural update us at 1,000 and 100,000 regions.
 */
#include <pthread.h>
#include <unistd.h>

#include "ufp_internal.h"
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
		uint64_t t0 = now_ns();

		if (fault_lock_region(p, a, ts, true, &fl))
			fault_unlock_region(p, &fl);
		else
			r->fails++;
		kb_hist_record(&r->m.lat, now_ns() - t0);
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

static int pb_run_locks(struct bench_opts *o, enum ufp_lock_mode mode, unsigned nt,
			unsigned nw, struct locks_res *res)
{
	enum { PER_THREAD = 64 };
	struct pb_reader *rd = calloc(nt ? nt : 1, sizeof(*rd));
	struct pb_writer *wr = calloc(nw ? nw : 1, sizeof(*wr));
	struct ufp_pager *p = NULL;
	int err = -ENOMEM;

	if (!rd || !wr)
		goto out;
	p = pager_alloc_bare(PB_BASE, 1ull << 44, mode);
	if (!p || pb_populate(p, (nt + nw) * PER_THREAD))
		goto out;
	for (unsigned i = 0; i < nt; i++)
		rd[i] = (struct pb_reader){ .p = p, .first = i * PER_THREAD, .count = PER_THREAD };
	for (unsigned i = 0; i < nw; i++)
		wr[i] = (struct pb_writer){ .p = p, .first = (nt + i) * PER_THREAD,
					    .count = PER_THREAD };
	err = locks_crew_run(o, nt, rd, sizeof(*rd), pb_reader_main, nw, wr, sizeof(*wr),
			     pb_writer_main, res);
	stats_merge(p, &res->st);
out:
	if (p)
		pager_free_bare(p);
	free(rd);
	free(wr);
	return err;
}

static int proto_locks(struct bench_opts *o)
{
	char what[256];

	snprintf(what, sizeof(what), "\n== locks: the protocol alone; readers lookup+trylock+"
		 "unlock their own regions,\n   writers split+merge other regions (%.1fs per "
		 "run)\n", o->seconds);
	return locks_table(o, what, "lookups", pb_run_locks);
}

/* ---- tree -------------------------------------------------------------- */

static int proto_tree(struct bench_opts *o)
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
		t0 = now_ns();
		if (!p || pb_populate(p, n))
			return 1;
		insert_us = (double)(now_ns() - t0) / 1e3 / n;

		urcu_memb_read_lock();
		t0 = now_ns();
		for (unsigned i = 0; i < iters; i++) {
			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			hits += region_tree_lookup(&p->tree, pb_addr((unsigned)(seed % n))) != NULL;
		}
		lookup_ns = (double)(now_ns() - t0) / iters;
		urcu_memb_read_unlock();

		t0 = now_ns();
		for (unsigned i = 0; i < iters / 4; i++) {
			struct fault_lock fl;

			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			if (fault_lock_region(p, pb_addr((unsigned)(seed % n)), ts, true, &fl))
				fault_unlock_region(p, &fl);
		}
		locked_ns = (double)(now_ns() - t0) / (iters / 4);

		t0 = now_ns();
		for (unsigned i = 0; i < upd; i++) {
			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			pb_split_merge(p, (unsigned)(seed % n));
		}
		update_us = (double)(now_ns() - t0) / 1e3 / (2.0 * upd);
		if (hits != iters)
			fprintf(stderr, "bench tree: %llu of %u lookups missed\n",
				(unsigned long long)(iters - hits), iters);
		printf("%9u %12.1f %14.1f %16.2f %14.2f\n", n, lookup_ns, locked_ns, update_us,
		       insert_us);
		pager_free_bare(p);
	}
	printf("   (update = one write section: lock, split or merge, publish, unlock; the old\n"
	       "    nodes go to call_rcu; no update copies more than O(log n) nodes)\n");
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

/* bench_proto [--quick] [locks] [tree]: both suites by default, with
 * ufpagerctl bench's default threads 1,2,4,8 and writers 0,1,2 (--quick:
 * 0.3 s per run instead of 1, T 1,2 and W 0,1, as the ctest smoke). */
int main(int argc, char **argv)
{
	struct bench_opts o = {
		.seconds = 1.0, .threads = { 1, 2, 4, 8 }, .nthreads = 4,
		.writers = { 0, 1, 2 }, .nwriters = 3,
	};
	bool locks = false, tree = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o.quick = true;
			o.seconds = 0.3;
			o.nthreads = 2;
			o.nwriters = 2;
		} else if (!strcmp(argv[i], "locks")) {
			locks = true;
		} else if (!strcmp(argv[i], "tree")) {
			tree = true;
		} else {
			fprintf(stderr, "usage: bench_proto [--quick] [locks] [tree]\n");
			return 2;
		}
	}
	if (!locks && !tree)
		locks = tree = true;
	if (locks && proto_locks(&o))
		return 1;
	if (tree && proto_tree(&o))
		return 1;
	return 0;
}
