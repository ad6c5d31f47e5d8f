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
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"
#include "ufp_tree_test.h"

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

	stats_merge(p, &s);
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
	pr->got = lock_region_under_rcu(pr->p, pr->addr, thread_stats(pr->p, true),
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
	hi = mm_split(p, r, BASE + 4 * PAGE);
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
	mm_merge(p, r, hi);
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

/* Phase 2: a writer is announced and asleep when the last reader leaves, so
 * region_read_unlock takes its wakeup path after the region is gone. */
struct uaf2 {
	struct ufp_pager *p;
	struct ufp_region *r;
	sem_t freed;
	_Atomic bool marked;
};

static struct uaf2 *cur_uaf2;

static void *uaf2_writer(void *arg)
{
	struct uaf2 *u = arg;

	urcu_memb_register_thread();
	pager_write_lock(u->p);
	region_write_lock(u->r);          /* announces, sleeps until woken */
	atomic_store(&u->marked, true);
	region_detach(u->p, u->r);
	region_tree_commit(&u->p->tree);
	pager_write_unlock(u->p);
	urcu_memb_barrier();              /* r is freed here */
	urcu_memb_unregister_thread();
	sem_post(&u->freed);
	return NULL;
}

static void uaf2_hook(struct ufp_region *r)
{
	struct timespec ts;

	region_unlock_test_hook = NULL;
	ck_assert_ptr_eq(r, cur_uaf2->r);
	/* The count is 0 but the wakeup has not been sent: wake the writer
	 * spuriously (futex wake without a change, as a signal would) so that
	 * it sees the drained count, marks, detaches and frees r. */
	do {
		syscall(SYS_futex, &cur_uaf2->p->lock.writer_wait, FUTEX_WAKE_PRIVATE, INT_MAX,
			NULL, NULL, 0);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	} while (sem_timedwait(&cur_uaf2->freed, &ts) != 0);
	/* returning: the wakeup must use the cached pager, never r */
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
	ck_assert_ptr_null(t_lookup(&u.p->tree, BASE));
	pager_free_bare(u.p);

	/* the wakeup path: writer announced and waiting */
	struct uaf2 w = { .p = bare(0) };
	pthread_t t;

	w.r = add(w.p, BASE, BASE + PAGE, UFP_PROT_ALL);
	sem_init(&w.freed, 0, 0);
	cur_uaf2 = &w;
	ck_assert(region_read_trylock(w.r));
	pthread_create(&t, NULL, uaf2_writer, &w);
	while (!(atomic_load(&w.r->readers) & REGION_WRITER_ANNOUNCED))
		sched_yield();                 /* the writer announced itself */
	usleep(20000);                     /* and (very likely) sleeps */
	ck_assert(!atomic_load(&w.marked));   /* a reader holds it: no mark */
	region_unlock_test_hook = uaf2_hook;
	region_read_unlock(w.r);           /* decrement, hook frees, wake via p */
	pthread_join(t, NULL);
	ck_assert(atomic_load(&w.marked));
	ck_assert_ptr_null(t_lookup(&w.p->tree, BASE));
	pager_free_bare(w.p);
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

	/* the real limit: start the count one below it; the next reader gets
	 * in, the one after is refused, and the count never reaches the
	 * writer-announcement bit */
	atomic_store(&r->readers, region_readers_max - 1);
	ck_assert(region_read_trylock(r));
	ck_assert_uint_eq(atomic_load(&r->readers), region_readers_max);
	ck_assert(!region_read_trylock(r));
	ck_assert(!(atomic_load(&r->readers) & REGION_WRITER_ANNOUNCED));
	region_read_unlock(r);
	atomic_store(&r->readers, 0);
	pager_free_bare(p);
}
END_TEST

/* ---- 7. sequence wrap ------------------------------------------------------ */

START_TEST(sequence_wrap)
{
	struct ufp_pager *p = bare(UINT32_MAX - 4000);
	struct ufp_region *a = add(p, BASE, BASE + PAGE, UFP_PROT_ALL);
	struct ufp_region *b = add(p, BASE + 2 * PAGE, BASE + 3 * PAGE, UFP_PROT_ALL);
	bool wrapped = false;
	struct nfu n = { .r = a };
	pthread_t t;

	/* a reader hammering a region marked in every other section, across
	 * the wrap: never a success while marked */
	pthread_create(&t, NULL, nfu_reader, &n);
	for (int i = 0; i < 1980; i++) {     /* to 40 below the wrap */
		pager_write_lock(p);
		if (i % 2)
			region_write_lock(a);
		pager_write_unlock(p);
	}

	for (int i = 0; i < 60; i++) {
		uint32_t before = atomic_load(&p->lock.seq);

		pager_write_lock(p);
		if (i % 2)
			region_write_lock(a);
		ck_assert(region_is_write_locked(a) == (i % 2 == 1));
		if (i % 2)
			ck_assert(!region_read_trylock(a));  /* never false unlocked */
		pager_write_unlock(p);
		wrapped |= atomic_load(&p->lock.seq) < before;
		/* after the section: unlocked (a spurious failure would be allowed
		 * only on a collision 2^31 sections later; none here) */
		ck_assert(region_read_trylock(a));
		region_read_unlock(a);
		ck_assert(region_read_trylock(b));
		region_read_unlock(b);
	}
	ck_assert(wrapped);
	for (int i = 0; i < 2000; i++) {
		pager_write_lock(p);
		if (i % 2)
			region_write_lock(a);
		pager_write_unlock(p);
	}
	atomic_store(&n.stop, true);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&n.bad), 0);
	pager_free_bare(p);
}
END_TEST

/* ---- 8. writer starvation ----------------------------------------------- */

static void *flood_reader(void *arg)
{
	struct nfu *n = arg;

	/* readers overlap (each holds for a moment), so the count never
	 * drains by itself: a reader-preferring lock would starve the writer */
	while (!atomic_load(&n->stop))
		if (region_read_trylock(n->r)) {
			atomic_fetch_add(&n->got, 1);
			for (volatile int k = 0; k < 200; k++)
				;
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

/*
 * The lock-mode switch and a bare re-registration call do not exist as API;
 * what re-registers ranges today is map (register), unmap (unregister) and
 * DONTNEED (unregister, discard, register, under the region's write lock).
 * Two touchers own halves of one plain region R and each keeps discarding
 * its own half (a re-registration of part of R while the other faults on
 * R), rewriting and checking it; the main thread maps a FIXED neighbour that
 * merges into R's end and unmaps it (R grows and shrinks), splits R with a
 * protect of a spare tail, and registers/unregisters allocator objects
 * elsewhere (faults in flight on other regions).
 */
#define RR_HALF 32
#define RR_SPARE 16
#define RR_NB 16

struct toucher {
	ufp_pager *p;
	char *m;                 /* my half of R */
	_Atomic bool *stop;
	int bad;
	_Atomic uint64_t rounds;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;
	uint32_t gen = 0;

	ufp_thread_register();
	while (!atomic_load(t->stop) && !t->bad) {
		gen++;
		for (size_t i = 0; i < RR_HALF; i++)     /* faults (missing) */
			t->bad += ufp_check_page(t->m + i * PAGE, 0) != 1;
		for (size_t i = 0; i < RR_HALF; i++)
			ufp_fill_page(t->m + i * PAGE, gen);
		for (size_t i = 0; i < RR_HALF; i++)
			t->bad += ufp_check_page(t->m + i * PAGE, gen) != 0;
		/* re-register my half while the other toucher faults on R */
		ck_assert_int_eq(ufp_advise(t->p, t->m, RR_HALF * PAGE, UFP_ADV_DONTNEED), 0);
		atomic_fetch_add(&t->rounds, 1);
	}
	return NULL;
}

START_TEST(registration_race)
{
	ufp_pager *p = ufp_test_pager(_i & 1 ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS,
				      _i & 2 ? UFP_LOCK_GLOBAL : UFP_LOCK_PER_REGION, 0);
	struct toucher t[2];
	_Atomic bool stop = false;
	pthread_t th[2];
	char *m, *spare, *nbr;
	void *a, *b, *got;
	int neigh = 0;

	ck_assert_int_eq(ufp_map(p, NULL, (2 * RR_HALF + RR_SPARE + RR_NB) * PAGE,
				 UFP_PROT_ALL, 0, &a), 0);
	m = a;
	spare = m + 2 * RR_HALF * PAGE;
	nbr = spare + RR_SPARE * PAGE;
	ck_assert_int_eq(ufp_unmap(p, nbr, RR_NB * PAGE), 0);
	for (int i = 0; i < 2; i++) {
		t[i] = (struct toucher){ .p = p, .m = m + (size_t)i * RR_HALF * PAGE, .stop = &stop };
		pthread_create(&th[i], NULL, toucher_main, &t[i]);
	}
	uint64_t end = ufp_now_ns() + 1500000000ull;
	while (ufp_now_ns() < end || atomic_load(&t[0].rounds) < 20 ||
	       atomic_load(&t[1].rounds) < 20) {
		/* grow R by a merging neighbour (register), shrink it (unregister) */
		int r = ufp_map(p, nbr, RR_NB * PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &got);

		ck_assert_msg(r == 0 || r == -EEXIST, "map fixed: %d", r);
		if (r == 0) {
			neigh++;
			ufp_fill_page(nbr, 7);
			ck_assert_int_eq(ufp_check_page(nbr, 7), 0);
			ck_assert_int_eq(ufp_unmap(p, nbr, RR_NB * PAGE), 0);
		}
		/* split R, merge it back */
		ck_assert_int_eq(ufp_protect(p, spare, RR_SPARE * PAGE, UFP_PROT_READ), 0);
		ck_assert_int_eq(ufp_check_page(spare, 0), 1);
		ck_assert_int_eq(ufp_protect(p, spare, RR_SPARE * PAGE, UFP_PROT_ALL), 0);
		/* registrations elsewhere */
		ck_assert_int_eq(ufp_alloc(p, 4 * PAGE, &a), 0);
		ufp_fill_page(a, 3);
		ck_assert_int_eq(ufp_realloc(p, a, 64 * PAGE, &b), 0);
		/* grown in place or moved: the content came along */
		ck_assert(((uint64_t *)b)[0] == ufp_pattern((uintptr_t)a, 3));
		ck_assert_int_eq(ufp_free(p, b), 0);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(t[i].bad == 0, "toucher %d saw %d bad pages", i, t[i].bad);
	}
	ck_assert_int_gt(neigh, 0);
	mm_check_invariants((struct ufp_pager *)p);
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
	int st, fd[2];
	char msg[512] = "";
	ssize_t n, got = 0;

	ck_assert_int_eq(pipe(fd), 0);
	pid_t c = fork();

	if (c == 0) {
		dup2(fd[1], 2);            /* the assertion message comes to us */
		close(fd[0]);
		if (!region_read_trylock(r))
			_exit(3);
		pager_write_lock(p);       /* inversion: must abort */
		_exit(0);
	}
	close(fd[1]);
	while ((n = read(fd[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
		got += n;
	close(fd[0]);
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		      "an inversion went unnoticed (status %d)", st);
	ck_assert_msg(strstr(msg, "lock order") != NULL,
		      "aborted without the lock-order message: \"%s\"", msg);

	/* the right order in the same process is fine */
	pager_write_lock(p);
	region_write_lock(r);
	pager_write_unlock(p);
	ck_assert(region_read_trylock(r));
	region_read_unlock(r);
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

	/* the protocol alone: a reader paused inside its RCU section on a region
	 * that is detached (free deferred) together with a thousand others
	 * right before teardown; the reader is rejected, its region is still
	 * valid memory until it leaves the section, and teardown drains every
	 * deferred free (ASan: no leak, no use after free) */
	struct ufp_pager *bp = bare(0);
	struct paused pr;
	pthread_t bt;

	pager_write_lock(bp);
	for (int i = 0; i < 1000; i++) {
		struct ufp_region *r = region_alloc(bp, BASE + (uintptr_t)i * 2 * PAGE,
						    BASE + (uintptr_t)i * 2 * PAGE + PAGE,
						    UFP_PROT_ALL, 0);

		ck_assert_int_eq(region_tree_insert(&bp->tree, r), 0);
	}
	region_tree_commit(&bp->tree);
	pager_write_unlock(bp);
	start_paused(&pr, bp, BASE + 500 * 2 * PAGE, &bt);
	pager_write_lock(bp);
	for (int i = 0; i < 1000; i += 2) {
		struct ufp_region *r = t_lookup(&bp->tree, BASE + (uintptr_t)i * 2 * PAGE);

		region_write_lock(r);
		region_detach(bp, r);
	}
	region_tree_commit(&bp->tree);
	pager_write_unlock(bp);
	sem_post(&pr.go);
	pthread_join(bt, NULL);
	ck_assert_ptr_null(pr.got);
	bp->hook_after_lookup = NULL;
	ck_assert_uint_eq(bp->tree.count, 500);
	pager_free_bare(bp);
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
	ts = thread_stats(p, true);
	/* empty */
	ck_assert_ptr_null(t_lookup(&p->tree, BASE));
	ck_assert_ptr_null(t_next(&p->tree, 0));
	ck_assert_ptr_null(t_prev(&p->tree, UINTPTR_MAX));
	ck_assert_ptr_null(lock_region_under_rcu(p, BASE, ts, &aborted));
	ck_assert_ptr_null(fault_lock_region(p, BASE, ts, true, &fl));   /* definitive */
	struct ufp_region *r = add(p, BASE + PAGE, BASE + 2 * PAGE, UFP_PROT_ALL);
	/* one region: next/prev at and around its edges */
	ck_assert_ptr_eq(t_next(&p->tree, 0), r);
	ck_assert_ptr_eq(t_next(&p->tree, BASE + PAGE), r);
	ck_assert_ptr_null(t_next(&p->tree, BASE + PAGE + 1));
	ck_assert_ptr_null(t_prev(&p->tree, BASE + PAGE));
	ck_assert_ptr_eq(t_prev(&p->tree, BASE + PAGE + 1), r);
	ck_assert_ptr_eq(t_prev(&p->tree, UINTPTR_MAX), r);
	ck_assert_ptr_null(t_lookup(&p->tree, BASE + PAGE - 1));
	ck_assert_ptr_eq(t_lookup(&p->tree, BASE + 2 * PAGE - 1), r);
	ck_assert_ptr_null(t_lookup(&p->tree, BASE + 2 * PAGE));
	ck_assert_uint_eq(region_tree_check(&p->tree), 1);
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
		struct timespec lim;

		/* bounded: a worker stuck in a fault (lost wakeup, livelock)
		 * fails the test instead of hanging it */
		clock_gettime(CLOCK_REALTIME, &lim);
		lim.tv_sec += 20;
		ck_assert_msg(pthread_timedjoin_np(th[i], NULL, &lim) == 0,
			      "worker %d stuck for 20 s (a fault never completes)", i);
		ck_assert_int_eq(w[i].bad, 0);
		for (size_t k = 0; k < PAGES; k++)
			ck_assert_int_eq(ufp_check_page(w[i].m + k * PAGE, w[i].gen[k]),
					 w[i].gen[k] ? 0 : 1);
		free(w[i].gen);
	}
	mm_check_invariants((struct ufp_pager *)p);
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
	tcase_add_loop_test(tc, registration_race, 0, 4);
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
