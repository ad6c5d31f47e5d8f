/* SPDX-License-Identifier: MIT */
/*
 * test_locks.c - the per-region lock protocol, one test per race in
 * PROTOCOL.md ("Tests this protocol must have"), named after the race.
 * Races are forced deterministically where they can be: the test hooks
 * (hook_after_lookup between lookup and trylock, region_unlock_test_hook
 * after the reader's decrement) pause a thread at the exact point.
 * Run under ASan and TSan by scripts/test.sh.
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"

#define BASE 0x200000000000ull

static struct ufp_pager *bare(uint32_t seq)
{
	struct ufp_pager *p = pager_alloc_bare(BASE, 1ull << 40, UFP_LOCK_PER_REGION);

	ck_assert_ptr_nonnull(p);
	if (seq)
		pager_lock_init(p, seq);
	return p;
}

static struct ufp_region *add(struct ufp_pager *p, uintptr_t s, uintptr_t e, int prot)
{
	struct ufp_region *r;

	pager_write_lock(p);
	r = region_alloc(p, s, e, prot, 0);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(region_tree_insert(&p->tree, r), 0);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return r;
}

static struct ufp_stats st_of(struct ufp_pager *p)
{
	struct ufp_stats s = { .size = sizeof(s), .version = UFP_STATS_VERSION };

	ufp_stats_merge(p, &s);
	return s;
}

/* ---- 1. no false unlocked ---------------------------------------------- */

struct nfu {
	struct ufp_region *r;
	_Atomic bool stop;
	_Atomic int bad;
	_Atomic uint64_t got;
};

static void *nfu_reader(void *arg)
{
	struct nfu *n = arg;

	while (!atomic_load(&n->stop)) {
		if (region_read_trylock(n->r)) {
			/* while we hold it, no writer may have completed its mark */
			if (region_is_write_locked(n->r))
				atomic_fetch_add(&n->bad, 1);
			atomic_fetch_add(&n->got, 1);
			region_read_unlock(n->r);
		}
	}
	return NULL;
}

START_TEST(no_false_unlocked)
{
	struct ufp_pager *p = bare(0);
	struct nfu n = { .r = add(p, BASE, BASE + 4 * PAGE, UFP_PROT_ALL) };
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, nfu_reader, &n);
	for (int i = 0; i < 20000; i++) {
		pager_write_lock(p);
		region_write_lock(n.r);
		/* marked: no reader can get in (a failing trylock may bump the
		 * count for an instant; it never succeeds) */
		ck_assert(!region_read_trylock(n.r));
		pager_write_unlock(p);
	}
	atomic_store(&n.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&n.bad), 0);
	ck_assert_uint_gt(atomic_load(&n.got), 0);
	pager_free_bare(p);
}
END_TEST

/* ---- 2. bulk unlock ------------------------------------------------------ */

START_TEST(bulk_unlock)
{
	struct ufp_pager *p = bare(0);
	struct ufp_region *a = add(p, BASE, BASE + PAGE, UFP_PROT_ALL);
	struct ufp_region *b = add(p, BASE + 2 * PAGE, BASE + 3 * PAGE, UFP_PROT_ALL);

	pager_write_lock(p);
	region_write_lock(a);
	uint32_t seq = atomic_load(&a->lock_seq);
	region_write_lock(a);                     /* twice in a section: no-op */
	ck_assert_uint_eq(atomic_load(&a->lock_seq), seq);
	ck_assert_uint_eq(atomic_load(&a->readers), 0);
	region_write_lock(b);
	ck_assert(region_is_write_locked(a) && region_is_write_locked(b));
	pager_write_unlock(p);                    /* one bump releases both */
	ck_assert(!region_is_write_locked(a) && !region_is_write_locked(b));
	ck_assert(region_read_trylock(a));
	region_read_unlock(a);

	pager_write_lock(p);
	region_write_lock(a);
	region_write_lock(b);
	pager_write_downgrade(p);                 /* downgrade releases too */
	ck_assert(!region_is_write_locked(a) && !region_is_write_locked(b));
	ck_assert(region_read_trylock(b));
	region_read_unlock(b);
	ck_assert(!pager_read_trylock(p) || (pager_read_unlock(p), true));
	pager_read_unlock(p);
	pager_write_lock(p);                      /* fully released */
	pager_write_unlock(p);
	pager_free_bare(p);
}
END_TEST

/* ---- 3 / 4: a reader paused between lookup and lock ---------------------- */

struct paused {
	struct ufp_pager *p;
	uintptr_t addr;
	sem_t at_hook, go;
	int hits;
	struct ufp_region *got;
	bool aborted;
};

static struct paused *cur_paused;

static void pause_hook(struct ufp_pager *p, uintptr_t addr)
{
	(void)p; (void)addr;
	if (cur_paused->hits++ == 0) {      /* only the first lookup pauses */
		sem_post(&cur_paused->at_hook);
		sem_wait(&cur_paused->go);
	}
}

static void *paused_reader(void *arg)
{
	struct paused *pr = arg;

	urcu_memb_register_thread();
	pr->got = lock_region_under_rcu(pr->p, pr->addr, ufp_tstats_get(pr->p, true),
					&pr->aborted);
	if (pr->got)
		region_read_unlock(pr->got);
	urcu_memb_unregister_thread();
	return NULL;
}

static void start_paused(struct paused *pr, struct ufp_pager *p, uintptr_t addr, pthread_t *t)
{
	memset(pr, 0, sizeof(*pr));
	pr->p = p;
	pr->addr = addr;
	sem_init(&pr->at_hook, 0, 0);
	sem_init(&pr->go, 0, 0);
	cur_paused = pr;
	p->hook_after_lookup = pause_hook;
	pthread_create(t, NULL, paused_reader, pr);
	sem_wait(&pr->at_hook);             /* the reader holds a looked-up pointer */
}

START_TEST(split_merge_during_lookup)
{
	struct ufp_pager *p = bare(0);
	struct ufp_region *r = add(p, BASE, BASE + 8 * PAGE, UFP_PROT_ALL), *hi;
	struct paused pr;
	pthread_t t;

	/* split: the faulting address moves to the new upper half */
	start_paused(&pr, p, BASE + 6 * PAGE, &t);
	pager_write_lock(p);
	region_write_lock(r);
	hi = region_split(p, r, BASE + 4 * PAGE);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	sem_post(&pr.go);
	pthread_join(t, NULL);
	ck_assert_ptr_eq(pr.got, hi);               /* never the wrong region */
	ck_assert_uint_ge(st_of(p).lock_miss, 1);

	/* merge: the upper half is absorbed; the reader holds a dead pointer */
	uint64_t miss0 = st_of(p).lock_miss;
	start_paused(&pr, p, BASE + 6 * PAGE, &t);
	pager_write_lock(p);
	region_write_lock(r);
	region_write_lock(hi);
	region_merge(p, r, hi);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	sem_post(&pr.go);
	pthread_join(t, NULL);
	ck_assert_ptr_eq(pr.got, r);
	ck_assert_uint_gt(st_of(p).lock_miss, miss0);
	p->hook_after_lookup = NULL;
	pager_free_bare(p);
}
END_TEST

START_TEST(stale_pointer_after_unmap)
{
	struct ufp_pager *p = bare(0);
	struct ufp_region *r = add(p, BASE, BASE + 8 * PAGE, UFP_PROT_ALL);
	struct paused pr;
	pthread_t t;

	start_paused(&pr, p, BASE + PAGE, &t);
	pager_write_lock(p);
	region_write_lock(r);
	region_detach(p, r);                         /* unmap */
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	sem_post(&pr.go);
	pthread_join(t, NULL);
	/* the stale pointer locked fine but the re-walk rejected it */
	ck_assert_ptr_null(pr.got);
	ck_assert_uint_ge(st_of(p).lock_miss, 1);
	p->hook_after_lookup = NULL;
	urcu_memb_barrier();                         /* freed now: ASan watches */
	pager_free_bare(p);
}
END_TEST

/* ---- 5. unlock use-after-free -------------------------------------------- */

struct uaf {
	struct ufp_pager *p;
	struct ufp_region *r;
	sem_t freed;
};

static struct uaf *cur_uaf;

static void *uaf_freer(void *arg)
{
	struct uaf *u = arg;

	urcu_memb_register_thread();
	pager_write_lock(u->p);
	region_write_lock(u->r);          /* drained: the reader decremented */
	region_detach(u->p, u->r);
	region_tree_commit(&u->p->tree);
	pager_write_unlock(u->p);
	urcu_memb_barrier();              /* r is freed here */
	urcu_memb_unregister_thread();
	sem_post(&u->freed);
	return NULL;
}

static void uaf_hook(struct ufp_region *r)
{
	pthread_t t;

	region_unlock_test_hook = NULL;
	ck_assert_ptr_eq(r, cur_uaf->r);
	/* after the decrement, before the wakeup: free the region */
	pthread_create(&t, NULL, uaf_freer, cur_uaf);
	sem_wait(&cur_uaf->freed);
	pthread_join(t, NULL);
	/* returning: region_read_unlock must use only its cached pager */
}

START_TEST(unlock_use_after_free)
{
	struct uaf u;

	u.p = bare(0);
	u.r = add(u.p, BASE, BASE + PAGE, UFP_PROT_ALL);
	sem_init(&u.freed, 0, 0);
	cur_uaf = &u;
	ck_assert(region_read_trylock(u.r));
	region_unlock_test_hook = uaf_hook;
	region_read_unlock(u.r);      /* under ASan any use of r after free fails */
	ck_assert_ptr_null(region_tree_lookup(&u.p->tree, BASE));
	pager_free_bare(u.p);
}
END_TEST

/* ---- 6. reader-count overflow -------------------------------------------- */

START_TEST(reader_count_overflow)
{
	struct ufp_pager *p = bare(0);
	struct ufp_region *r = add(p, BASE, BASE + PAGE, UFP_PROT_ALL);
	uint32_t saved = region_readers_max;

	region_readers_max = 3;
	for (int i = 0; i < 3; i++)
		ck_assert(region_read_trylock(r));
	ck_assert(!region_read_trylock(r));          /* would overflow: refused */
	ck_assert_uint_eq(atomic_load(&r->readers) & REGION_READERS_MASK, 3);
	region_read_unlock(r);
	ck_assert(region_read_trylock(r));
	for (int i = 0; i < 3; i++)
		region_read_unlock(r);
	region_readers_max = saved;
	ck_assert_uint_eq(atomic_load(&r->readers), 0);
	pager_free_bare(p);
}
END_TEST

/* ---- 7. sequence wrap ------------------------------------------------------ */

START_TEST(sequence_wrap)
{
	struct ufp_pager *p = bare(UINT32_MAX - 20);
	struct ufp_region *a = add(p, BASE, BASE + PAGE, UFP_PROT_ALL);
	struct ufp_region *b = add(p, BASE + 2 * PAGE, BASE + 3 * PAGE, UFP_PROT_ALL);
	bool wrapped = false;

	for (int i = 0; i < 60; i++) {
		uint32_t before = atomic_load(&p->lock_seq);

		pager_write_lock(p);
		if (i % 2)
			region_write_lock(a);
		ck_assert(region_is_write_locked(a) == (i % 2 == 1));
		if (i % 2)
			ck_assert(!region_read_trylock(a));  /* never false unlocked */
		pager_write_unlock(p);
		wrapped |= atomic_load(&p->lock_seq) < before;
		/* after the section: unlocked (a spurious failure would be allowed
		 * only on a collision 2^31 sections later; none here) */
		ck_assert(region_read_trylock(a));
		region_read_unlock(a);
		ck_assert(region_read_trylock(b));
		region_read_unlock(b);
	}
	ck_assert(wrapped);
	pager_free_bare(p);
}
END_TEST

/* ---- 8. writer starvation ----------------------------------------------- */

static void *flood_reader(void *arg)
{
	struct nfu *n = arg;

	while (!atomic_load(&n->stop))
		if (region_read_trylock(n->r)) {
			atomic_fetch_add(&n->got, 1);
			region_read_unlock(n->r);
		}
	return NULL;
}

START_TEST(writer_starvation)
{
	struct ufp_pager *p = bare(0);
	struct nfu n = { .r = add(p, BASE, BASE + PAGE, UFP_PROT_ALL) };
	pthread_t t[3];
	uint64_t worst = 0;

	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, flood_reader, &n);
	while (atomic_load(&n.got) < 1000)
		sched_yield();
	for (int i = 0; i < 500; i++) {
		uint64_t t0 = ufp_now_ns();

		pager_write_lock(p);
		region_write_lock(n.r);   /* the announcement stops new readers */
		pager_write_unlock(p);
		if (ufp_now_ns() - t0 > worst)
			worst = ufp_now_ns() - t0;
	}
	atomic_store(&n.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	/* a writer waits for the readers inside, never for the flood */
	ck_assert_msg(worst < 200000000ull, "a writer waited %llu ns", (unsigned long long)worst);
	pager_free_bare(p);
}
END_TEST

/* ---- 9. memory ordering (for TSan) ---------------------------------------- */

struct mo {
	struct ufp_region *r;
	_Atomic bool stop;
	_Atomic int bad;
};

static void *mo_reader(void *arg)
{
	struct mo *m = arg;

	while (!atomic_load(&m->stop)) {
		if (!region_read_trylock(m->r))
			continue;
		/* alloc_size is a plain field written only under the mark: the
		 * protocol orders it (TSan reports a race otherwise) */
		size_t a = m->r->alloc_size;
		uintptr_t e = region_end(m->r) - region_start(m->r);

		if (a != e)
			atomic_fetch_add(&m->bad, 1);
		region_read_unlock(m->r);
	}
	return NULL;
}

START_TEST(memory_ordering)
{
	struct ufp_pager *p = bare(0);
	struct mo m = { .r = add(p, BASE, BASE + PAGE, UFP_PROT_ALL) };
	pthread_t t[2];

	m.r->alloc_size = PAGE;
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, mo_reader, &m);
	for (int i = 0; i < 5000; i++) {
		size_t len = (size_t)(1 + i % 7) * PAGE;

		pager_write_lock(p);
		region_write_lock(m.r);
		atomic_store_explicit(&m.r->end, BASE + len, memory_order_relaxed);
		m.r->alloc_size = len;
		pager_write_unlock(p);
	}
	atomic_store(&m.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&m.bad), 0);
	pager_free_bare(p);
}
END_TEST

/* ---- 10. registration race -------------------------------------------------- */

struct toucher {
	char *m;
	size_t pages;
	_Atomic bool stop;
	int bad;
	uint32_t gen;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	ufp_thread_register();
	while (!atomic_load(&t->stop)) {
		t->gen++;
		for (size_t i = 0; i < t->pages; i++)
			ufp_fill_page(t->m + i * PAGE, t->gen);
		for (size_t i = 0; i < t->pages; i++)
			t->bad += ufp_check_page(t->m + i * PAGE, t->gen) != 0;
	}
	return NULL;
}

START_TEST(registration_race)
{
	ufp_pager *p = ufp_test_pager(_i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS, 0, 0);
	struct toucher t = { .pages = 64 };
	pthread_t th;
	void *a, *b;

	ck_assert_int_eq(ufp_alloc(p, t.pages * PAGE, (void **)&t.m), 0);
	pthread_create(&th, NULL, toucher_main, &t);
	for (int i = 0; i < 300; i++) {
		/* new registrations (map, in-place growth) and unregistrations
		 * (unmap, shrink) next to the faulting object */
		ck_assert_int_eq(ufp_alloc(p, 4 * PAGE, &a), 0);
		ck_assert_int_eq(ufp_realloc(p, a, 64 * PAGE, &b), 0);
		ck_assert_int_eq(ufp_realloc(p, b, 2 * PAGE, &a), 0);
		ck_assert_int_eq(ufp_free(p, a), 0);
		/* and on the faulting object itself: protection round trip */
		ck_assert_int_eq(ufp_protect(p, t.m, t.pages * PAGE, UFP_PROT_ALL), 0);
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	ck_assert_int_eq(t.bad, 0);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- 11. blocking fault retries ------------------------------------------- */

START_TEST(blocking_fault_retry)
{
	unsigned mode = _i ? UFP_LOCK_GLOBAL : UFP_LOCK_PER_REGION;
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .lock_mode = mode,
		.budget = 4 << 20, .ztier_size = 4096, .flags = UFP_PF_NO_EXPORT,
	};
	struct ufp_stats s = { .size = sizeof(s), .version = UFP_STATS_VERSION };
	ufp_pager *p;
	char *m;

	ck_assert_int_eq(ufp_pager_create(&pr, &p), 0);
	ck_assert_int_eq(ufp_alloc(p, 64 * PAGE, (void **)&m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_page(m + (size_t)i * PAGE, 5);
	ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	ufp_stats_get(p, &s);
	uint64_t retry0 = s.lock_retry;
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(ufp_check_page(m + (size_t)i * PAGE, 5), 0);
	ufp_stats_get(p, &s);
	ck_assert_uint_gt(s.swapins, 0);
	if (mode == UFP_LOCK_PER_REGION)
		/* swap-in I/O dropped the region lock: VM_FAULT_RETRY's image */
		ck_assert_uint_gt(s.lock_retry, retry0);
	else
		/* global mode holds the lock across the I/O: mmap_lock's convoy */
		ck_assert_uint_eq(s.lock_retry, retry0);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- 12. lock order ------------------------------------------------------------ */

START_TEST(lock_order_checker)
{
#ifdef UFP_DEBUG
	struct ufp_pager *p = bare(0);
	struct ufp_region *r = add(p, BASE, BASE + PAGE, UFP_PROT_ALL);
	int st;
	pid_t c = fork();

	if (c == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 2);          /* the assertion message is expected */
		ck_assert(region_read_trylock(r));
		pager_write_lock(p);       /* inversion: must abort */
		_exit(0);
	}
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		      "an inversion went unnoticed (status %d)", st);
	pager_free_bare(p);
#else
	printf("lock_order_checker: not a UFP_DEBUG build; checker compiled out\n");
#endif
}
END_TEST

/* ---- 13. teardown flood ------------------------------------------------------ */

struct flood {
	ufp_pager *p;
	void **objs;
	int n;
	_Atomic bool stop;
};

static void *flood_toucher(void *arg)
{
	struct flood *f = arg;
	unsigned seed = 3;

	ufp_thread_register();
	while (!atomic_load(&f->stop)) {
		char *o = f->objs[rand_r(&seed) % f->n];

		__atomic_fetch_add(&o[rand_r(&seed) % (2 * PAGE)], 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

START_TEST(teardown_flood)
{
	ufp_pager *p = ufp_test_pager(_i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS, 0, 0);
	struct flood f = { .p = p, .n = 2000 };
	pthread_t t[2];

	f.objs = calloc((size_t)f.n, sizeof(void *));
	for (int i = 0; i < f.n; i++)
		ck_assert_int_eq(ufp_alloc(p, 2 * PAGE, &f.objs[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, flood_toucher, &f);
	usleep(100000);
	/* structural churn producing deferred frees right up to the end */
	for (int i = 0; i < f.n; i += 2)
		ck_assert_int_eq(ufp_protect(p, f.objs[i], 2 * PAGE, UFP_PROT_READ | UFP_PROT_WRITE), 0);
	atomic_store(&f.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_eq(((struct ufp_pager *)p)->tree.count, (size_t)f.n);
	ck_assert_int_eq(ufp_pager_destroy(p), 0);   /* drains call_rcu, frees all */
	free(f.objs);
}
END_TEST

/* ---- 14. small trees ------------------------------------------------------------ */

START_TEST(small_trees)
{
	struct ufp_pager *p = bare(0);
	struct ufp_tstats *ts;
	struct fault_lock fl;
	bool aborted;

	ufp_thread_register();
	ts = ufp_tstats_get(p, true);
	ck_assert_ptr_null(lock_region_under_rcu(p, BASE, ts, &aborted));
	ck_assert_ptr_null(fault_lock_region(p, BASE, ts, true, &fl));   /* definitive */
	struct ufp_region *r = add(p, BASE + PAGE, BASE + 2 * PAGE, UFP_PROT_ALL);
	ck_assert_ptr_eq(lock_region_under_rcu(p, BASE + PAGE, ts, &aborted), r);
	region_read_unlock(r);
	ck_assert_ptr_null(fault_lock_region(p, BASE, ts, true, &fl));
	ck_assert_ptr_null(fault_lock_region(p, BASE + 2 * PAGE, ts, true, &fl));
	ck_assert_ptr_eq(fault_lock_region(p, BASE + 2 * PAGE - 1, ts, true, &fl), r);
	fault_unlock_region(p, &fl);
	pager_free_bare(p);
}
END_TEST

/* ---- 15. data -------------------------------------------------------------------- */

struct dw {
	ufp_pager *p;
	char *m;
	size_t pages;
	uint32_t *gen;
	unsigned seed;
	int bad;
	_Atomic bool *stop;
};

static void *data_worker(void *arg)
{
	struct dw *w = arg;

	ufp_thread_register();
	while (!atomic_load(w->stop)) {
		size_t i = (size_t)rand_r(&w->seed) % w->pages;
		char *pg = w->m + i * PAGE;

		w->bad += ufp_check_page(pg, w->gen[i]) != (w->gen[i] ? 0 : 1);
		ufp_fill_page(pg, ++w->gen[i]);
	}
	return NULL;
}

START_TEST(data)
{
	enum { T = 2, PAGES = 512 };
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.delivery = _i & 1 ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS,
		.lock_mode = _i & 2 ? UFP_LOCK_GLOBAL : UFP_LOCK_PER_REGION,
		.budget = 2 << 20, .ztier_size = 512 << 10, .flags = UFP_PF_NO_EXPORT,
	};
	_Atomic bool stop = false;
	struct dw w[T];
	pthread_t th[T];
	ufp_pager *p;
	unsigned seed = 77;

	ck_assert_int_eq(ufp_pager_create(&pr, &p), 0);
	for (int i = 0; i < T; i++) {
		w[i] = (struct dw){ p, NULL, PAGES, calloc(PAGES, 4), (unsigned)i + 9, 0, &stop };
		ck_assert_int_eq(ufp_alloc(p, PAGES * PAGE, (void **)&w[i].m), 0);
		pthread_create(&th[i], NULL, data_worker, &w[i]);
	}
	/* structural ops on other regions, and PAGEOUT of the workers';
	 * UFP_STRESS_SECONDS bounds it (default 2 per mode, 4 modes) */
	const char *secs = getenv("UFP_STRESS_SECONDS");
	double d = secs ? atof(secs) / 4 : 2.0;
	uint64_t end = ufp_now_ns() + (uint64_t)((d > 0 ? d : 2.0) * 1e9);
	while (ufp_now_ns() < end) {
		void *a, *b;

		ck_assert_int_eq(ufp_map(p, NULL, 32 * PAGE, UFP_PROT_ALL, 0, &a), 0);
		memset(a, 1, 32 * PAGE);
		ck_assert_int_eq(ufp_protect(p, (char *)a + 8 * PAGE, 8 * PAGE, UFP_PROT_READ), 0);
		ck_assert_int_eq(ufp_advise(p, a, 8 * PAGE, UFP_ADV_DONTNEED), 0);
		ck_assert_int_eq(ufp_alloc(p, 8 * PAGE, &b), 0);
		memset(b, 2, 8 * PAGE);
		ck_assert_int_eq(ufp_realloc(p, b, 40 * PAGE, &b), 0);
		ck_assert_int_eq(((char *)b)[8 * PAGE - 1], 2);
		ck_assert_int_eq(ufp_free(p, b), 0);
		ck_assert_int_eq(ufp_unmap(p, a, 32 * PAGE), 0);
		ufp_advise(p, w[rand_r(&seed) % T].m, 64 * PAGE, UFP_ADV_PAGEOUT);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].bad, 0);
		for (size_t k = 0; k < PAGES; k++)
			ck_assert_int_eq(ufp_check_page(w[i].m + k * PAGE, w[i].gen[k]),
					 w[i].gen[k] ? 0 : 1);
		free(w[i].gen);
	}
	pager_check_invariants((struct ufp_pager *)p);
	ufp_pager_destroy(p);
}
END_TEST

static Suite *locks_suite(void)
{
	Suite *s = suite_create("locks");
	TCase *tc = tcase_create("protocol");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, no_false_unlocked);
	tcase_add_test(tc, bulk_unlock);
	tcase_add_test(tc, split_merge_during_lookup);
	tcase_add_test(tc, stale_pointer_after_unmap);
	tcase_add_test(tc, unlock_use_after_free);
	tcase_add_test(tc, reader_count_overflow);
	tcase_add_test(tc, sequence_wrap);
	tcase_add_test(tc, writer_starvation);
	tcase_add_test(tc, memory_ordering);
	tcase_add_loop_test(tc, registration_race, 0, 2);
	tcase_add_loop_test(tc, blocking_fault_retry, 0, 2);
	tcase_add_test(tc, lock_order_checker);
	tcase_add_loop_test(tc, teardown_flood, 0, 2);
	tcase_add_test(tc, small_trees);
	suite_add_tcase(s, tc);
	/* 15. data: also the stress test (its own case, longer under the
	 * stress label: CK_RUN_CASE=stress UFP_STRESS_SECONDS=N) */
	TCase *st = tcase_create("stress");
	tcase_set_timeout(st, 900);
	tcase_add_loop_test(st, data, 0, 4);
	suite_add_tcase(s, st);
	return s;
}

int main(void)
{
	ufp_test_require_uffd();
	return ufp_run_suite(locks_suite());
}
