/* SPDX-License-Identifier: MIT */
/*
 * bench_tree.c - the region tree and the lock modes, measured through the
 * public API on a real pager (the library users link):
 *   locks: T threads first-touch pages of their own regions (each fault:
 *          lookup, region or pager lock, zero fill) while W threads split
 *          and merge other regions with ufp_protect, per lock mode;
 *   tree:  at 1,000 and 100,000 regions, the cost of a call that looks a
 *          region up (ufp_advise WILLNEED on a resident page), of a first
 *          touch, of a split + merge (ufp_protect), and of a new region
 *          (ufp_map / ufp_alloc).
 * The same protocol without userfaultfd or the API, on the library's
 * internals, is tests/bench_proto.c (a test-side program).
 */
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

#define TB_REGION_PAGES 16

/*
 * A pager with n regions of TB_REGION_PAGES pages: even ones mapped with
 * ufp_map (they split and merge), odd ones allocator objects (which never
 * merge), so that no two mappings merge into one region. Holes would
 * keep them apart too, but each hole is a kernel VMA, and 100,000 of them
 * pass vm.max_map_count; here the kernel merges the VMAs. *insert_us:
 * time per region created.
 */
struct tb {
	ufp_pager *p;
	char **reg;
	unsigned n;
};

static int tb_setup(enum ufp_lock_mode mode, unsigned n, struct tb *t, double *insert_us)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .lock_mode = mode,
		.fault_around = 1, .flags = UFP_PF_NO_EXPORT,
	};
	size_t len = TB_REGION_PAGES * BENCH_PAGE;
	uint64_t t0;
	int err;

	t->n = n;
	t->reg = calloc(n, sizeof(*t->reg));
	if (!t->reg)
		return -ENOMEM;
	if ((err = bench_pager_create(&pr, &t->p))) {
		free(t->reg);
		return err;
	}
	t0 = now_ns();
	for (unsigned i = 0; i < n && !err; i++)
		err = i % 2 ? ufp_alloc(t->p, len, (void **)&t->reg[i]) :
			      ufp_map(t->p, NULL, len, UFP_PROT_ALL, 0, (void **)&t->reg[i]);
	if (insert_us)
		*insert_us = (double)(now_ns() - t0) / 1e3 / n;
	if (err) {
		fprintf(stderr, "bench: %s\n", ufp_last_error());
		ufp_pager_destroy(t->p);
		free(t->reg);
	}
	return err;
}

static void tb_destroy(struct tb *t)
{
	ufp_pager_destroy(t->p);
	free(t->reg);
}

/* Split mapping i (even: a ufp_map region) with its upper half read-only,
 * then merge it back: two structural calls, as the internal benchmark's
 * two write sections. */
static void tb_split_merge(const struct tb *t, unsigned i)
{
	char *half = t->reg[i & ~1u] + TB_REGION_PAGES / 2 * BENCH_PAGE;

	ufp_protect(t->p, half, TB_REGION_PAGES / 2 * BENCH_PAGE, UFP_PROT_READ);
	ufp_protect(t->p, half, TB_REGION_PAGES / 2 * BENCH_PAGE, UFP_PROT_ALL);
}

/* ---- locks ------------------------------------------------------------- */

enum { TB_PER_THREAD = 64 };

struct tb_reader {
	struct crew_member m;      /* lat: one sample per fault; ops: faults */
	const struct tb *t;
	unsigned first;
};

static void *tb_reader_main(void *arg)
{
	struct tb_reader *r = arg;

	ufp_thread_register();
	crew_ready(&r->m);
	while (!crew_stopping(&r->m)) {
		/* every page of the thread's regions once, then discard them
		 * (one structural call per region per TB_REGION_PAGES faults) */
		for (unsigned pg = 0; pg < TB_REGION_PAGES && !crew_stopping(&r->m); pg++)
			for (unsigned k = 0; k < TB_PER_THREAD; k++) {
				char *a = r->t->reg[r->first + k] + pg * BENCH_PAGE;
				uint64_t t0 = now_ns();

				*(volatile char *)a = 1;
				kb_hist_record(&r->m.lat, now_ns() - t0);
				r->m.ops++;
			}
		for (unsigned k = 0; k < TB_PER_THREAD; k++)
			ufp_advise(r->t->p, r->t->reg[r->first + k],
				   TB_REGION_PAGES * BENCH_PAGE, UFP_ADV_DONTNEED);
	}
	return NULL;
}

struct tb_writer {
	struct crew_member m;      /* ops: structural updates */
	const struct tb *t;
	unsigned first;
};

static void *tb_writer_main(void *arg)
{
	struct tb_writer *w = arg;
	unsigned k = 0;

	ufp_thread_register();
	crew_ready(&w->m);
	while (!crew_stopping(&w->m)) {
		tb_split_merge(w->t, w->first + k++ % TB_PER_THREAD);
		w->m.ops += 2;
	}
	return NULL;
}

static int tb_run_locks(struct bench_opts *o, enum ufp_lock_mode mode, unsigned nt,
			unsigned nw, struct locks_res *res)
{
	struct tb_reader *rd = calloc(nt ? nt : 1, sizeof(*rd));
	struct tb_writer *wr = calloc(nw ? nw : 1, sizeof(*wr));
	struct tb t;
	int err = -ENOMEM;

	if (rd && wr && !(err = tb_setup(mode, (nt + nw) * TB_PER_THREAD, &t, NULL))) {
		for (unsigned i = 0; i < nt; i++)
			rd[i] = (struct tb_reader){ .t = &t, .first = i * TB_PER_THREAD };
		for (unsigned i = 0; i < nw; i++)
			wr[i] = (struct tb_writer){ .t = &t, .first = (nt + i) * TB_PER_THREAD };
		err = locks_crew_run(o, nt, rd, sizeof(*rd), tb_reader_main, nw, wr, sizeof(*wr),
				     tb_writer_main, res);
		ufp_stats_get(t.p, &res->st);
		tb_destroy(&t);
	}
	free(rd);
	free(wr);
	return err;
}

int bench_locks(struct bench_opts *o)
{
	char what[256];

	snprintf(what, sizeof(what), "\n== locks: T threads first-touch their own regions "
		 "(lookup, lock, zero fill),\n   W threads split+merge other regions with "
		 "ufp_protect (%.1fs per run)\n", o->seconds);
	return locks_table(o, what, "faults", tb_run_locks);
}

/* ---- tree -------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int bench_tree(struct bench_opts *o)
{
	static const unsigned sizes[2] = { 1000, 100000 };

	printf("\n== tree: region lookup and structural update cost by tree size, through the API\n");
	printf("%9s %12s %12s %16s %14s\n", "regions", "lookup ns", "fault ns",
	       "split+merge us", "insert us");
	for (int s = 0; s < 2; s++) {
		unsigned n = sizes[s], iters = o->quick ? 200000 : 2000000, upd = o->quick ? 2000 : 20000;
		unsigned faults = iters / 4 < n * TB_REGION_PAGES / 2 ? iters / 4 :
				  n * TB_REGION_PAGES / 2;
		uint64_t t0, seed = 88172645463325252ull, fails = 0;
		double lookup_ns, fault_ns, update_us, insert_us;
		struct tb t;

		progress("[tree] %u regions", n);
		ufp_thread_register();
		if (tb_setup(UFP_LOCK_PER_REGION, n, &t, &insert_us))
			return 1;
		/* page 0 of every region resident: the lookups below find them */
		for (unsigned i = 0; i < n; i++)
			*(volatile char *)t.reg[i] = 1;

		t0 = now_ns();
		for (unsigned i = 0; i < iters; i++)
			fails += ufp_advise(t.p, t.reg[xorshift(&seed) % n], BENCH_PAGE,
					    UFP_ADV_WILLNEED) != 0;
		lookup_ns = (double)(now_ns() - t0) / iters;

		/* first touches of pages 1.. of the regions in a scattered order
		 * (7919 is prime to n), each page once */
		t0 = now_ns();
		for (unsigned i = 0; i < faults; i++) {
			unsigned r = (unsigned)((uint64_t)i * 7919 % n);

			*(volatile char *)(t.reg[r] + (1 + i / n) * BENCH_PAGE) = 1;
		}
		fault_ns = (double)(now_ns() - t0) / faults;

		t0 = now_ns();
		for (unsigned i = 0; i < upd; i++)
			tb_split_merge(&t, (unsigned)(xorshift(&seed) % n));
		update_us = (double)(now_ns() - t0) / 1e3 / (2.0 * upd);
		progress_done();
		if (fails)
			fprintf(stderr, "bench tree: %llu of %u lookups failed: %s\n",
				(unsigned long long)fails, iters, ufp_last_error());
		printf("%9u %12.1f %12.1f %16.2f %14.2f\n", n, lookup_ns, fault_ns, update_us,
		       insert_us);
		json_row_begin(o, "tree");
		json_kv_num(o, "regions", n);
		json_kv_num(o, "lookup_ns", lookup_ns);
		json_kv_num(o, "fault_ns", fault_ns);
		json_kv_num(o, "update_us", update_us);
		json_kv_num(o, "insert_us", insert_us);
		json_row_end(o);
		tb_destroy(&t);
	}
	printf("   (lookup: ufp_advise(WILLNEED) of a resident page, the API's entry and a tree\n"
	       "    lookup under the pager read lock; fault: a first touch, lookup + region lock\n"
	       "    + zero fill; update: one ufp_protect, a split or a merge; insert: one\n"
	       "    ufp_map or ufp_alloc, a new region in the tree)\n");
	return 0;
}
