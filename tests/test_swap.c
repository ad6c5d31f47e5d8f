/* SPDX-License-Identifier: MIT */
/*
 * test_swap.c - the resident budget and the swap path: working sets
 * several times the budget under concurrent faults, evictions and
 * structural ops; writes racing eviction; swap-in racing unmap / split /
 * merge; one read for concurrent faults on one page; readahead stopping at
 * region edges; checksum and I/O errors poisoning exactly one page; the
 * O_TMPFILE swap file leaving nothing behind; swap full; fork; DONTNEED and
 * realloc of evicted pages. Every test carries page patterns.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"
#include "inject.h"
#include "swap_backend.h"

static const unsigned deliveries[2] = { UFP_DELIVERY_SIGBUS, UFP_DELIVERY_HANDLER };
static const unsigned modes[2] = { UFP_LOCK_PER_REGION, UFP_LOCK_GLOBAL };

static ufp_pager *swap_pager(unsigned delivery, unsigned mode, uint64_t budget,
			     uint64_t swap, uint64_t ztier, const char *dir)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .delivery = delivery,
		.lock_mode = mode, .budget = budget, .swap_size = swap, .ztier_size = ztier,
		.swap_dir = dir, .flags = UFP_PF_NO_EXPORT,
	};
	ufp_pager *p = NULL;
	int r = ufp_pager_create(&pr, &p);

	ck_assert_msg(r == 0, "create: %d %s", r, ufp_last_error());
	return p;
}

static ufp_pager *current_pager;   /* for short_lived_main */

/* ---- working set 4x the budget, with structural churn -------------- */

struct ws_worker {
	ufp_pager *p;
	char *base;
	size_t pages;
	unsigned seed;
	int errors;
	uint32_t *gen;
};

static void *ws_main(void *arg)
{
	struct ws_worker *w = arg;

	ufp_thread_register();
	for (int it = 0; it < 4000; it++) {
		size_t i = (size_t)rand_r(&w->seed) % w->pages;
		char *pg = w->base + i * PAGE;

		if (w->gen[i] && !ufp_check_rand(pg, w->gen[i]))
			w->errors++;
		if (!w->gen[i] && ufp_check_page(pg, 0) != 1)
			w->errors++;
		w->gen[i]++;
		ufp_fill_rand(pg, w->gen[i]);
	}
	return NULL;
}

struct churner {
	ufp_pager *p;
	_Atomic bool stop;
	uint64_t ops;
};

static void *churn_main(void *arg)
{
	struct churner *c = arg;
	char *m;

	ufp_thread_register();
	ck_assert_int_eq(ufp_map(c->p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	while (!atomic_load(&c->stop)) {
		memset(m, 1, 64 * PAGE);
		ufp_protect(c->p, m + 16 * PAGE, 16 * PAGE, UFP_PROT_READ);   /* split */
		ufp_protect(c->p, m + 16 * PAGE, 16 * PAGE, UFP_PROT_ALL);    /* merge */
		ufp_unmap(c->p, m, 64 * PAGE);
		ufp_map(c->p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m);
		c->ops++;
	}
	ufp_unmap(c->p, m, 64 * PAGE);
	return NULL;
}

START_TEST(working_set_four_times_budget_keeps_patterns)
{
	enum { T = 3, PAGES = 1024 };      /* 3 x 4 MiB against a 3 MiB budget */
	ufp_pager *p = swap_pager(deliveries[_i & 1], modes[_i >> 1], 3 << 20, 64 << 20,
				  _i & 1 ? 1 << 20 : 4096, NULL);
	struct ws_worker w[T];
	struct churner c = { .p = p };
	pthread_t th[T], ct;

	pthread_create(&ct, NULL, churn_main, &c);
	for (int i = 0; i < T; i++) {
		ck_assert_int_eq(ufp_alloc(p, PAGES * PAGE, (void **)&w[i].base), 0);
		w[i] = (struct ws_worker){ p, w[i].base, PAGES, (unsigned)i + 1, 0,
					   calloc(PAGES, sizeof(uint32_t)) };
		pthread_create(&th[i], NULL, ws_main, &w[i]);
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	atomic_store(&c.stop, true);
	pthread_join(ct, NULL);
	for (int i = 0; i < T; i++) {
		ck_assert_int_eq(w[i].errors, 0);
		for (size_t k = 0; k < PAGES; k++)   /* every page, once more */
			ck_assert(w[i].gen[k] ? ufp_check_rand(w[i].base + k * PAGE, w[i].gen[k]) :
				  ufp_check_page(w[i].base + k * PAGE, 0) == 1);
		free(w[i].gen);
	}
	struct ufp_stats s = ufp_test_stats(p);
	ck_assert_uint_gt(s.swapouts, 0);
	ck_assert_uint_gt(s.swapins, 0);
	ck_assert_uint_eq(s.pages_poisoned, 0);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- writes racing eviction ------------------------------------------ */

struct writer {
	char *base;
	size_t pages;
	_Atomic bool stop;
	uint32_t gen;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	ufp_thread_register();
	while (!atomic_load(&w->stop)) {
		uint32_t g = __atomic_load_n(&w->gen, __ATOMIC_RELAXED) + 1;

		for (size_t i = 0; i < w->pages; i++)
			ufp_fill_page(w->base + i * PAGE, g);
		__atomic_store_n(&w->gen, g, __ATOMIC_RELAXED);
	}
	return NULL;
}

START_TEST(writes_during_eviction_are_never_lost)
{
	ufp_pager *p = swap_pager(deliveries[_i], UFP_LOCK_PER_REGION, 1 << 20, 64 << 20,
				  4096, NULL);
	struct writer w = { .pages = 128 };
	pthread_t t;

	ck_assert_int_eq(ufp_map(p, NULL, w.pages * PAGE, UFP_PROT_ALL, 0, (void **)&w.base), 0);
	pthread_create(&t, NULL, writer_main, &w);
	/* evict the writer's pages over and over while it writes, for at
	 * least 200 rounds and 20 of its passes */
	for (int i = 0; i < 200 || __atomic_load_n(&w.gen, __ATOMIC_RELAXED) < 20; i++)
		ck_assert_int_ge(ufp_advise(p, w.base, w.pages * PAGE, UFP_ADV_PAGEOUT), 0);
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	ufp_advise(p, w.base, w.pages * PAGE, UFP_ADV_PAGEOUT);
	for (size_t i = 0; i < w.pages; i++) {
		int c = ufp_check_page(w.base + i * PAGE, w.gen);
		uint32_t found = 0;

		for (uint32_t g = 0; c && g <= w.gen; g++)
			if (ufp_check_page(w.base + i * PAGE, g) == 0)
				found = g;
		ck_assert_msg(c == 0, "page %zu lost a write: has gen %u (check %d), want %u",
			      i, found, c, w.gen);
	}
	ck_assert_uint_gt(ufp_test_stats(p).swapouts, 0);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- swap-in racing unmap / split / merge of the same region --------- */

struct racer {
	ufp_pager *p;
	char *base;
	size_t pages;
	_Atomic bool stop;
	int errors;
};

static void *fault_racer(void *arg)
{
	struct racer *r = arg;
	unsigned seed = 5;

	ufp_thread_register();
	while (!atomic_load(&r->stop)) {
		size_t i = 8 + (size_t)rand_r(&seed) % (r->pages - 8);   /* never unmapped */
		int c = ufp_check_page(r->base + i * PAGE, 9);

		if (c != 0)
			r->errors++;
	}
	return NULL;
}

START_TEST(swapin_races_unmap_split_and_merge)
{
	ufp_pager *p = swap_pager(deliveries[_i], UFP_LOCK_PER_REGION, 1 << 20, 64 << 20,
				  4096, NULL);
	struct racer r = { .p = p, .pages = 256 };
	pthread_t t;
	char *x;

	ck_assert_int_eq(ufp_map(p, NULL, r.pages * PAGE, UFP_PROT_ALL, 0, (void **)&r.base), 0);
	for (size_t i = 0; i < r.pages; i++)
		ufp_fill_page(r.base + i * PAGE, 9);
	pthread_create(&t, NULL, fault_racer, &r);
	for (int it = 0; it < 300; it++) {
		ufp_advise(p, r.base, r.pages * PAGE, UFP_ADV_PAGEOUT);
		/* split and merge the faulting region */
		ck_assert_int_eq(ufp_protect(p, r.base + 64 * PAGE, 64 * PAGE, UFP_PROT_READ), 0);
		ck_assert_int_eq(ufp_protect(p, r.base + 64 * PAGE, 64 * PAGE, UFP_PROT_ALL), 0);
		/* unmap and remap its head (pages the racer never reads) */
		ck_assert_int_eq(ufp_unmap(p, r.base, 8 * PAGE), 0);
		ck_assert_int_eq(ufp_map(p, r.base, 8 * PAGE, UFP_PROT_ALL, UFP_MAP_FIXED,
					 (void **)&x), 0);
		ck_assert_int_eq(ufp_check_page(x, 0), 1);   /* fresh: zeros, not old data */
	}
	atomic_store(&r.stop, true);
	pthread_join(t, NULL);
	ck_assert_int_eq(r.errors, 0);
	mm_check_invariants((struct ufp_pager *)p);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- concurrent faults on one evicted page: one read ---------------- */

struct same_page {
	char *page;
	pthread_barrier_t *bar;
	int ok;
};

static void *same_page_main(void *arg)
{
	struct same_page *s = arg;

	ufp_thread_register();
	pthread_barrier_wait(s->bar);
	s->ok = ufp_check_page(s->page, 4) == 0;
	return NULL;
}

START_TEST(concurrent_faults_on_one_page_read_it_once)
{
	enum { T = 6 };
	ufp_pager *p = swap_pager(deliveries[_i], UFP_LOCK_PER_REGION, 1 << 20, 64 << 20,
				  4096, NULL);
	struct ufp_pager *ip = (struct ufp_pager *)p;
	struct same_page sp[T];
	pthread_barrier_t bar;
	pthread_t th[T];
	struct swb_usage u0, u1;
	char *m;

	/* a one-page object: readahead cannot add pages */
	ck_assert_int_eq(ufp_alloc(p, PAGE, (void **)&m), 0);
	ufp_fill_rand(m, 1);
	ufp_fill_page(m, 4);
	ck_assert_int_eq(ufp_advise(p, m, PAGE, UFP_ADV_PAGEOUT), 0);
	ck_assert(atomic_load(&ip->pte[pte_index(ip, (uintptr_t)m)]) & PTE_SWAPPED);
	swb_usage(ip->swb, &u0);
	pthread_barrier_init(&bar, NULL, T);
	for (int i = 0; i < T; i++) {
		sp[i] = (struct same_page){ m, &bar, 0 };
		pthread_create(&th[i], NULL, same_page_main, &sp[i]);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		ck_assert(sp[i].ok);
	}
	swb_usage(ip->swb, &u1);
	ck_assert_uint_eq(u1.loads_file + u1.loads_ztier + u1.loads_same -
			  (u0.loads_file + u0.loads_ztier + u0.loads_same), 1);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- readahead stays inside the region ------------------------------- */

START_TEST(readahead_stops_at_region_edges)
{
	ufp_pager *p = swap_pager(deliveries[_i], UFP_LOCK_PER_REGION, 4 << 20, 64 << 20,
				  4096, NULL);
	struct ufp_pager *ip = (struct ufp_pager *)p;
	char *a, *b;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&a), 0);
	b = a + 32 * PAGE;
	ck_assert_int_eq(ufp_protect(p, b, 32 * PAGE, UFP_PROT_READ), 0);   /* two regions */
	for (int i = 0; i < 32; i++)
		ufp_fill_rand(a + (size_t)i * PAGE, 2);
	ck_assert_int_eq(ufp_advise(p, a, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	for (int i = 0; i < 32; i++)     /* sequential: the window grows */
		ck_assert(ufp_check_rand(a + (size_t)i * PAGE, 2));
	for (int i = 0; i < 32; i++) {
		uint64_t v = atomic_load(&ip->pte[pte_index(ip, (uintptr_t)b) + (size_t)i]);
		ck_assert_msg(!(v & PTE_PRESENT), "readahead crossed into the next region (page %d)", i);
	}
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(ufp_check_page(b + (size_t)i * PAGE, 0), 1);
	struct ufp_stats s = ufp_test_stats(p);
	ck_assert_uint_eq(s.swapins, 32);
	/* readahead: fewer swap-in faults than pages */
	ck_assert_uint_lt(s.faults - s.faults_zero, 32);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- corruption and I/O errors poison exactly one page ------------- */


START_TEST(bad_copies_poison_only_their_page)
{
	struct sigaction sa = { .sa_sigaction = ufp_test_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };
	ufp_pager *p;
	struct ufp_pager *ip;
	char *m;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	/* ztier: 0 means default; 4096 leaves no room, so pages go to the file */
	p = swap_pager(deliveries[_i], UFP_LOCK_PER_REGION, 1 << 20, 64 << 20,
		       _i ? 1 << 20 : 4096, NULL);
	ip = (struct ufp_pager *)p;
	ck_assert_int_eq(ufp_alloc(p, 8 * PAGE, (void **)&m), 0);
	for (int i = 0; i < 8; i++)
		ufp_fill_page(m + (size_t)i * PAGE, 6);   /* compressible: tier when asked */
	ck_assert_int_eq(ufp_advise(p, m, 8 * PAGE, UFP_ADV_PAGEOUT), 0);
	uint64_t h2 = atomic_load(&ip->slots[pte_index(ip, (uintptr_t)m) + 2]);
	uint64_t h5 = atomic_load(&ip->slots[pte_index(ip, (uintptr_t)m) + 5]);
	ck_assert_int_eq(swb_inject(ip->swb, h2, SWB_INJECT_CORRUPT), 0);
	ck_assert_int_eq(swb_inject(ip->swb, h5, SWB_INJECT_EIO), 0);
	for (int i = 0; i < 8; i++) {
		bool bad = i == 2 || i == 5;

		ck_assert_msg(ufp_test_read_faults(m + (size_t)i * PAGE) == bad, "page %d", i);
		if (!bad)
			ck_assert_int_eq(ufp_check_page(m + (size_t)i * PAGE, 6), 0);
	}
	ck_assert_uint_eq(ufp_test_stats(p).pages_poisoned, 2);
	ck_assert(ufp_test_read_faults(m + 2 * PAGE));     /* stays poisoned */
	ck_assert_int_eq(ufp_free(p, m), 0);
	ufp_pager_destroy(p);
	signal(SIGBUS, SIG_DFL);
}
END_TEST

/* ---- the swap file leaves nothing behind ---------------------------- */

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

START_TEST(o_tmpfile_leaves_no_file_behind)
{
	char dir[] = "/var/tmp/ufp-swapdir-XXXXXX";
	ufp_pager *p;
	char *m;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	p = swap_pager(UFP_DELIVERY_SIGBUS, 0, 1 << 20, 16 << 20, 4096, dir);
	ck_assert_int_eq(ufp_map(p, NULL, 512 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 512; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 3);
	ck_assert_int_eq(ufp_advise(p, m, 512 * PAGE, UFP_ADV_PAGEOUT), 0);
	ck_assert_uint_gt(ufp_test_stats(p).bytes_written, 0);
	ck_assert_int_eq(count_entries(dir), 0);     /* never visible, even in use */
	ufp_pager_destroy(p);
	ck_assert_int_eq(count_entries(dir), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- swap full: eviction stops, nothing is dropped ------------------- */

START_TEST(swap_full_stops_eviction_and_keeps_data)
{
	/* 1 MiB of swap (256 slots), no tier, a 512 KiB budget, 4 MiB of data */
	ufp_pager *p = swap_pager(deliveries[_i], 0, 512 << 10, 1 << 20, 4096, NULL);
	char *m;

	ck_assert_int_eq(ufp_map(p, NULL, 1024 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 1024; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 8);
	/* 4 MiB cannot go into 1 MiB of swap */
	ck_assert_int_eq(ufp_advise(p, m, 1024 * PAGE, UFP_ADV_PAGEOUT), -ENOSPC);
	for (int i = 0; i < 1024; i++)
		ck_assert_msg(ufp_check_rand(m + (size_t)i * PAGE, 8), "page %d lost", i);
	struct ufp_stats s = ufp_test_stats(p);
	ck_assert_uint_gt(s.swap_full_events, 0);
	ck_assert_uint_gt(s.resident_pages, 128);    /* over budget: nothing dropped */
	ufp_pager_destroy(p);
}
END_TEST

/* ---- fork with evicted pages ----------------------------------------- */

START_TEST(fork_child_sees_evicted_pages)
{
	ufp_pager *p = swap_pager(deliveries[_i], 0, 1 << 20, 64 << 20, 4096, NULL);
	char *m;
	int st;

	ck_assert_int_eq(ufp_map(p, NULL, 256 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 256; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 11);
	ck_assert_int_eq(ufp_advise(p, m, 256 * PAGE, UFP_ADV_PAGEOUT), 0);
	pid_t c = fork();
	if (c == 0) {
		int bad = 0;

		for (int i = 0; i < 256; i++)
			bad += !ufp_check_rand(m + (size_t)i * PAGE, 11);
		_exit(bad ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw wrong data (%d)", st);
	for (int i = 0; i < 256; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 11));
	ufp_pager_destroy(p);
}
END_TEST

/* ---- DONTNEED and realloc of evicted pages --------------------------- */

START_TEST(dontneed_and_realloc_handle_evicted_pages)
{
	ufp_pager *p = swap_pager(deliveries[_i], 0, 1 << 20, 64 << 20, 4096, NULL);
	struct ufp_pager *ip = (struct ufp_pager *)p;
	struct swb_usage u0, u1;
	char *m, *o, *n;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 12);
	ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	swb_usage(ip->swb, &u0);
	ck_assert_int_eq(ufp_advise(p, m, 32 * PAGE, UFP_ADV_DONTNEED), 0);
	swb_usage(ip->swb, &u1);
	ck_assert_uint_eq(u0.file_slots_used - u1.file_slots_used, 32);   /* copies freed */
	for (int i = 0; i < 64; i++)
		ck_assert(i < 32 ? ufp_check_page(m + (size_t)i * PAGE, 0) == 1 :
			  ufp_check_rand(m + (size_t)i * PAGE, 12));

	ck_assert_int_eq(ufp_alloc(p, 64 * PAGE, (void **)&o), 0);
	ck_assert_int_eq(ufp_alloc(p, PAGE, (void **)&n), 0);   /* blocks growth in place */
	for (int i = 0; i < 64; i++)
		ufp_fill_rand(o + (size_t)i * PAGE, 13);
	ck_assert_int_eq(ufp_advise(p, o, 32 * PAGE, UFP_ADV_PAGEOUT), 0);
	char *o2;
	ck_assert_int_eq(ufp_realloc(p, o, 128 * PAGE, (void **)&o2), 0);
	ck_assert_ptr_ne(o2, o);
	for (int i = 0; i < 64; i++) {   /* patterns depend on the old address */
		uint64_t *w = (uint64_t *)(o2 + (size_t)i * PAGE), x = ufp_pattern(
			(uintptr_t)(o + (size_t)i * PAGE), 13);
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		ck_assert_uint_eq(w[0], x);
	}
	ufp_pager_destroy(p);
}
END_TEST

/*
 * Clean pages are dropped without a write; written ones are written again.
 * _i = 0: content-hash check only; _i = 1: WP_ASYNC + PAGEMAP_SCAN dirty
 * tracking (UFPAGER_DIRTY_TRACK=1; skipped where the kernel lacks it),
 * which must also see the writes and free the stale copies at once.
 */
START_TEST(clean_pages_are_dropped_without_a_write)
{
	struct ufp_stats s0, s1, s2;
	ufp_pager *p;
	char *m;

	setenv("UFPAGER_DIRTY_TRACK", _i ? "1" : "0", 1);
	p = swap_pager(UFP_DELIVERY_SIGBUS, 0, 1 << 20, 64 << 20, 4096, NULL);
	unsetenv("UFPAGER_DIRTY_TRACK");
	if (_i && !dirty_tracked((struct ufp_pager *)p)) {
		printf("SKIP dirty tracking: this kernel lacks UFFD_FEATURE_WP_ASYNC or PAGEMAP_SCAN\n");
		ufp_pager_destroy(p);
		return;
	}
	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 21);
	ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	for (int i = 0; i < 64; i++)           /* swap in: clean copies */
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 21));
	s0 = ufp_test_stats(p);
	ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	s1 = ufp_test_stats(p);
	ck_assert_uint_eq(s1.swapouts_clean - s0.swapouts_clean, 64);
	ck_assert_uint_eq(s1.bytes_written, s0.bytes_written);
	for (int i = 0; i < 64; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 21));
	for (int i = 0; i < 64; i += 2)       /* dirty every other page */
		ufp_fill_rand(m + (size_t)i * PAGE, 22);
	ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	s2 = ufp_test_stats(p);
	ck_assert_uint_eq(s2.swapouts_clean - s1.swapouts_clean, 32);
	ck_assert_uint_eq(s2.bytes_written - s1.bytes_written, 32 * PAGE);
	if (_i) {   /* the scan saw every write: no hash needed to find them */
		ck_assert_uint_eq(s2.dirty_found - s1.dirty_found, 32);
		ck_assert_uint_eq(s2.swapouts_raced, s1.swapouts_raced);
	} else {
		ck_assert_uint_eq(s2.swapouts_raced - s1.swapouts_raced, 32);
	}
	for (int i = 0; i < 64; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, i % 2 ? 21 : 22));
	ufp_pager_destroy(p);
}
END_TEST

/*
 * UFFDIO_MOVE moves only between writable VMAs: pages of read-only and
 * PROT_NONE regions stay resident (and reclaim passes over them without
 * claiming them); everything keeps its content.
 */
START_TEST(read_only_and_none_regions_stay_resident)
{
	ufp_pager *p = swap_pager(deliveries[_i], 0, 1 << 20, 64 << 20, 4096, NULL);
	struct ufp_stats s0, s1;
	char *m;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 31);
	ck_assert_int_eq(ufp_protect(p, m, 32 * PAGE, UFP_PROT_READ), 0);
	ck_assert_int_eq(ufp_protect(p, m + 32 * PAGE, 16 * PAGE, UFP_PROT_NONE), 0);
	s0 = ufp_test_stats(p);
	ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	s1 = ufp_test_stats(p);
	ck_assert_uint_eq(s1.swapouts - s0.swapouts, 16);        /* the writable ones */
	ck_assert_uint_eq(s1.ioctl_eexist, s0.ioctl_eexist);
	for (int i = 0; i < 32; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 31));
	ck_assert_int_eq(ufp_protect(p, m + 32 * PAGE, 16 * PAGE, UFP_PROT_READ), 0);
	for (int i = 32; i < 64; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 31));
	ufp_pager_destroy(p);
}
END_TEST

/*
 * More unevictable (read-only) pages than the budget: faults elsewhere must
 * not be throttled for nothing (each would wait up to 50 ms).
 */
START_TEST(unevictable_pages_over_budget_do_not_throttle_faults)
{
	ufp_pager *p = swap_pager(deliveries[_i], 0, 1 << 20, 64 << 20, 4096, NULL);
	struct ufp_stats s0, s1;
	struct timespec t0, t1;
	char *ro, *m;
	double el;

	ck_assert_int_eq(ufp_map(p, NULL, 512 * PAGE, UFP_PROT_ALL, 0, (void **)&ro), 0);
	for (int i = 0; i < 512; i++)
		ro[(size_t)i * PAGE] = (char)i;         /* resident: 2x the budget */
	ck_assert_int_eq(ufp_protect(p, ro, 512 * PAGE, UFP_PROT_READ), 0);
	ck_assert_int_eq(ufp_map(p, NULL, 256 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	s0 = ufp_test_stats(p);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 512; i++)           /* swapped back in, now unevictable */
		ck_assert_int_eq(ro[(size_t)i * PAGE], (char)i);
	for (int i = 0; i < 256; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 41);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	s1 = ufp_test_stats(p);
	/* once reclaim found nothing evictable, faults stop waiting for it
	 * (before: up to 50 waits per fault, each a reclaim pass) */
	ck_assert_msg(s1.reclaim_waits - s0.reclaim_waits < 64,
		      "%llu waits for 768 faults in %.2f s",
		      (unsigned long long)(s1.reclaim_waits - s0.reclaim_waits), el);
	for (int i = 0; i < 256; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 41));
	for (int i = 0; i < 512; i++)
		ck_assert_int_eq(ro[(size_t)i * PAGE], (char)i);
	ufp_pager_destroy(p);
}
END_TEST

static void *short_lived_main(void *arg)
{
	char *m = arg;

	/* an API call gives this thread its own swap I/O context */
	ck_assert_int_eq(ufp_advise(current_pager, m, 8 * PAGE, UFP_ADV_WILLNEED), 0);
	for (int i = 0; i < 8; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 51));
	return NULL;
}

static int count_fds(void)
{
	return count_entries("/proc/self/fd");
}

/* Threads that exit give their io_uring contexts back (one fd each). */
START_TEST(exiting_threads_release_their_io_contexts)
{
	ufp_pager *p = swap_pager(UFP_DELIVERY_SIGBUS, 0, 1 << 20, 64 << 20, 4096, NULL);
	char *m;
	int fd0, fd1;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 51);
	current_pager = p;
	fd0 = count_fds();
	for (int t = 0; t < 40; t++) {
		pthread_t th;

		ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
		ck_assert_int_eq(pthread_create(&th, NULL, short_lived_main,
						m + (size_t)(t % 8) * 8 * PAGE), 0);
		pthread_join(th, NULL);
	}
	fd1 = count_fds();
	ck_assert_msg(fd1 - fd0 < 8, "%d fds before 40 threads, %d after", fd0, fd1);
	ufp_pager_destroy(p);
}
END_TEST

/*
 * Handler delivery: a handler that read several faults at once waited for
 * each one's read in turn while the other handlers slept. Four threads
 * fault first and keep the four handlers in 100 ms reads (injected delay);
 * eight more fault meanwhile, so their messages queue up, and the first
 * handler back reads them all in one go. Handed off, the other handlers
 * take seven of them (two rounds of reads, ~300 ms in all); kept, they
 * were read one after another (~900 ms). Every page is checked.
 */
struct par_fault {
	char *pg;
	bool ok;
};

static void *par_fault_main(void *arg)
{
	struct par_fault *f = arg;

	ufp_thread_register();
	f->ok = ufp_check_rand(f->pg, 61);
	return NULL;
}

START_TEST(faults_needing_reads_do_not_wait_behind_each_other)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.delivery = UFP_DELIVERY_HANDLER, .handler_threads = 4, .budget = 1 << 20,
		.swap_size = 64 << 20, .ztier_size = 4096, .flags = UFP_PF_NO_EXPORT,
	};
	struct par_fault f[12];
	pthread_t th[12];
	uint64_t t0, best = UINT64_MAX;
	ufp_pager *p;
	char *m;

	ck_assert_int_eq(ufp_pager_create(&pr, &p), 0);
	ck_assert_int_eq(ufp_map(p, NULL, 96 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int round = 0; round < 3 && best > 600000000ull; round++) {
		for (int i = 0; i < 96; i++)
			ufp_fill_rand(m + (size_t)i * PAGE, 61);
		ck_assert_int_eq(ufp_advise(p, m, 96 * PAGE, UFP_ADV_PAGEOUT), 0);
		ck_assert_int_eq(inject_configure("delay_us=100000:1", NULL), 0);
		/* pages 8 apart: no readahead joins two of them */
		for (int i = 0; i < 12; i++)
			f[i] = (struct par_fault){ m + (size_t)i * 8 * PAGE, false };
		for (int i = 0; i < 4; i++)          /* the handlers' first reads */
			ck_assert_int_eq(pthread_create(&th[i], NULL, par_fault_main, &f[i]), 0);
		usleep(20000);
		t0 = ufp_now_ns();
		for (int i = 4; i < 12; i++)         /* queued behind them */
			ck_assert_int_eq(pthread_create(&th[i], NULL, par_fault_main, &f[i]), 0);
		for (int i = 0; i < 12; i++)
			pthread_join(th[i], NULL);
		if (ufp_now_ns() - t0 < best)
			best = ufp_now_ns() - t0;
		inject_disarm();
		for (int i = 0; i < 12; i++)
			ck_assert_msg(f[i].ok, "page %d read wrong", i * 8);
	}
	ck_assert_msg(best < 600000000ull, "8 faults queued behind 4 handlers' reads, 100 ms "
		      "each: %.0f ms at best of 3 (handed off: %llu)", best / 1e6,
		      (unsigned long long)ufp_test_stats(p).faults_handed_off);
	ufp_pager_destroy(p);
}
END_TEST

static Suite *swap_suite(void)
{
	Suite *s = suite_create("swap");
	TCase *tc = tcase_create("swap");

	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, working_set_four_times_budget_keeps_patterns, 0, 4);
	tcase_add_loop_test(tc, writes_during_eviction_are_never_lost, 0, 2);
	tcase_add_loop_test(tc, swapin_races_unmap_split_and_merge, 0, 2);
	tcase_add_loop_test(tc, concurrent_faults_on_one_page_read_it_once, 0, 2);
	tcase_add_loop_test(tc, readahead_stops_at_region_edges, 0, 2);
	tcase_add_loop_test(tc, bad_copies_poison_only_their_page, 0, 2);
	tcase_add_test(tc, o_tmpfile_leaves_no_file_behind);
	tcase_add_loop_test(tc, swap_full_stops_eviction_and_keeps_data, 0, 2);
	tcase_add_loop_test(tc, fork_child_sees_evicted_pages, 0, 2);
	tcase_add_loop_test(tc, dontneed_and_realloc_handle_evicted_pages, 0, 2);
	tcase_add_loop_test(tc, clean_pages_are_dropped_without_a_write, 0, 2);
	tcase_add_loop_test(tc, read_only_and_none_regions_stay_resident, 0, 2);
	tcase_add_loop_test(tc, unevictable_pages_over_budget_do_not_throttle_faults, 0, 2);
	tcase_add_test(tc, exiting_threads_release_their_io_contexts);
	tcase_add_test(tc, faults_needing_reads_do_not_wait_behind_each_other);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ufp_test_require_swap();
	return ufp_run_suite(swap_suite());
}
