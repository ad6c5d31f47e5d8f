/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - faulting threads, structural-op threads and page-pattern
 * verification on a real pager, in both delivery modes (HANDLER, SIGBUS)
 * and both lock modes (PER_REGION, GLOBAL), with a resident budget so that
 * evictions and swap-ins interleave with everything else.
 *
 * Each worker owns a few objects (ufp_alloc objects and plain ufp_map
 * mappings) and keeps a model of every page: a generation (0 = must read
 * as zeros) and, for plain maps, whether it is read-only. A page's content
 * is derived from (object id, page index, generation), not from its
 * address, so that it survives ufp_realloc moving the object. Workers mix
 * touches (check, then write the next generation) with their own
 * structural ops: DONTNEED, protect, realloc, unmap/free and re-create,
 * PAGEOUT, WILLNEED. Plain maps of equal protection merge with the
 * neighbours of other workers, so one worker's ops split and merge regions
 * under another's faults.
 *
 * One region is shared: every worker faults on its own pages of it while
 * the structural thread splits it (protect of a spare tail), grows and
 * shrinks it (a FIXED map merging into its end, then unmapped), discards
 * the spare and pages it out.
 *
 * Bounded: UFP_STRESS_SECONDS per mode (default 10; 4 modes). A watchdog
 * aborts with a diagnostic when a thread makes no progress for 20 s (a
 * livelock or deadlock would otherwise only show as a timeout).
 * UFP_STRESS_SWAP=0 runs without a budget.
 */
#include <pthread.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"

#define NT 3              /* worker threads */
#define NOBJ 6            /* objects per worker */
#define MAXP 48           /* pages per object, at most */
#define SH 64             /* pages of the shared region per worker */
#define SPARE 32          /* shared region tail nobody writes */
#define NB 32             /* the neighbour mapped into the shared end */
#define STALL_NS (20ull * 1000000000ull)

/* ---- page content ---------------------------------------------------- */

static uint64_t pat(uint32_t id, uint32_t idx, uint32_t gen)
{
	uint64_t x = (((uint64_t)id << 32) | idx) * 0x9E3779B97F4A7C15ull;

	x ^= (uint64_t)gen * 0xD6E8FEB86659FD93ull;
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	return (x ^ (x >> 29)) | 1;     /* never 0: 0 is "never written" */
}

static void fill(char *page, uint32_t id, uint32_t idx, uint32_t gen)
{
	uint64_t *w = (uint64_t *)page, v = pat(id, idx, gen);

	for (unsigned k = 0; k < 8; k++)
		w[k * 64] = v + k;
	w[511] = ~v;
}

/* 0: holds gen; 1: all zero; -1: anything else (torn, stale, foreign). */
static int check(const char *page, uint32_t id, uint32_t idx, uint32_t gen)
{
	const uint64_t *w = (const uint64_t *)page;
	uint64_t v = pat(id, idx, gen);
	bool ok = w[511] == ~v, zero = w[511] == 0;

	for (unsigned k = 0; k < 8; k++) {
		ok &= w[k * 64] == v + k;
		zero &= w[k * 64] == 0;
	}
	return ok ? 0 : zero ? 1 : -1;
}

/* ---- the run ------------------------------------------------------------- */

struct sobj {
	char *base;               /* NULL: empty slot */
	size_t pages;
	bool alloc;               /* ufp_alloc object (else ufp_map) */
	uint32_t id;
	uint32_t *gen;
	uint8_t *ro;              /* plain maps: page is read-only */
};

struct srun;

struct sworker {
	struct srun *run;
	int idx;
	unsigned seed;
	struct sobj obj[NOBJ];
	uint32_t shgen[SH];       /* my pages of the shared region */
	_Atomic uint64_t ops;
	int bad;
	char msg[256];
};

struct srun {
	ufp_pager *p;
	bool swap;
	uint64_t deadline;
	_Atomic bool stop;
	char *shared;             /* NT * SH + SPARE pages, then NB free */
	uint32_t shared_id;
	struct sworker w[NT];
	_Atomic uint64_t sops;    /* structural thread progress */
	int sbad;
	char smsg[256];
};

static _Atomic uint32_t next_id = 1;

static void report(int *bad, char *msg, const char *what, uint32_t id, size_t idx,
		   uint32_t gen, int got)
{
	if ((*bad)++ == 0)
		snprintf(msg, 256, "%s: object %u page %zu expected %s (gen %u), got %s",
			 what, id, idx, gen ? "data" : "zeros", gen,
			 got == 0 ? "data" : got == 1 ? "zeros" : "garbage");
}

static void obj_create(struct srun *s, struct sworker *w, struct sobj *o)
{
	void *b;

	o->pages = 1 + (size_t)rand_r(&w->seed) % MAXP;
	o->alloc = rand_r(&w->seed) & 1;
	if (o->alloc)
		ck_assert_int_eq(ufp_alloc(s->p, o->pages * PAGE, &b), 0);
	else
		ck_assert_int_eq(ufp_map(s->p, NULL, o->pages * PAGE, UFP_PROT_ALL, 0, &b), 0);
	o->base = b;
	o->id = atomic_fetch_add(&next_id, 1);
	o->gen = calloc(MAXP, sizeof(*o->gen));
	o->ro = calloc(MAXP, 1);
}

static void obj_destroy(struct srun *s, struct sobj *o)
{
	if (o->alloc)
		ck_assert_int_eq(ufp_free(s->p, o->base), 0);
	else
		ck_assert_int_eq(ufp_unmap(s->p, o->base, o->pages * PAGE), 0);
	free(o->gen);
	free(o->ro);
	o->base = NULL;
}

static void obj_touch(struct sworker *w, struct sobj *o, size_t i)
{
	char *pg = o->base + i * PAGE;
	int c = check(pg, o->id, (uint32_t)i, o->gen[i]);

	if (c != (o->gen[i] ? 0 : 1))
		report(&w->bad, w->msg, "touch", o->id, i, o->gen[i], c);
	if (!o->ro[i])
		fill(pg, o->id, (uint32_t)i, ++o->gen[i]);
}

static bool obj_verify(int *bad, char *msg, struct sobj *o)
{
	for (size_t i = 0; i < o->pages; i++) {
		int c = check(o->base + i * PAGE, o->id, (uint32_t)i, o->gen[i]);

		if (c != (o->gen[i] ? 0 : 1)) {
			report(bad, msg, "final", o->id, i, o->gen[i], c);
			return false;
		}
	}
	return true;
}

/* One random op of a worker on its own objects. */
static void worker_op(struct srun *s, struct sworker *w)
{
	struct sobj *o = &w->obj[rand_r(&w->seed) % NOBJ];
	unsigned op = (unsigned)rand_r(&w->seed) % 100;
	size_t a, n;

	if (!o->base) {
		obj_create(s, w, o);
		return;
	}
	a = (size_t)rand_r(&w->seed) % o->pages;
	n = 1 + (size_t)rand_r(&w->seed) % (o->pages - a);
	if (op < 55) {                                   /* faults */
		for (size_t i = a; i < a + n && i < a + 4; i++)
			obj_touch(w, o, i);
	} else if (op < 65) {                            /* shared region */
		size_t k = (size_t)rand_r(&w->seed) % SH;
		char *pg = s->shared + (k * NT + (size_t)w->idx) * PAGE;
		int c = check(pg, s->shared_id, (uint32_t)(k * NT + (size_t)w->idx), w->shgen[k]);

		if (c != (w->shgen[k] ? 0 : 1))
			report(&w->bad, w->msg, "shared", s->shared_id, k * NT + (size_t)w->idx,
			       w->shgen[k], c);
		fill(pg, s->shared_id, (uint32_t)(k * NT + (size_t)w->idx), ++w->shgen[k]);
	} else if (op < 73) {                            /* discard */
		ck_assert_int_eq(ufp_advise(s->p, o->base + a * PAGE, n * PAGE,
					    UFP_ADV_DONTNEED), 0);
		memset(o->gen + a, 0, n * sizeof(*o->gen));
	} else if (op < 81 && !o->alloc) {               /* split / merge */
		int prot = rand_r(&w->seed) & 1 ? UFP_PROT_READ : UFP_PROT_ALL;

		ck_assert_int_eq(ufp_protect(s->p, o->base + a * PAGE, n * PAGE, prot), 0);
		memset(o->ro + a, prot == UFP_PROT_READ, n);
	} else if (op < 87 && o->alloc) {                /* grow / shrink / move */
		size_t np = 1 + (size_t)rand_r(&w->seed) % MAXP;
		void *nb;

		ck_assert_int_eq(ufp_realloc(s->p, o->base, np * PAGE, &nb), 0);
		if (np > o->pages)
			memset(o->gen + o->pages, 0, (np - o->pages) * sizeof(*o->gen));
		o->base = nb;
		o->pages = np;
	} else if (op < 90) {                            /* unmap and re-create */
		if (!obj_verify(&w->bad, w->msg, o))
			return;
		obj_destroy(s, o);
		obj_create(s, w, o);
	} else if (op < 96 && s->swap) {                 /* evict */
		ufp_advise(s->p, o->base, o->pages * PAGE, UFP_ADV_PAGEOUT);
	} else if (op < 98) {                            /* populate */
		ck_assert_int_eq(ufp_advise(s->p, o->base + a * PAGE, n * PAGE,
					    UFP_ADV_WILLNEED), 0);
	} else {
		for (size_t i = 0; i < o->pages; i++)
			obj_touch(w, o, i);
	}
}

static void *worker_main(void *arg)
{
	struct sworker *w = arg;
	struct srun *s = w->run;

	ufp_thread_register();
	while (!atomic_load_explicit(&s->stop, memory_order_relaxed) && !w->bad) {
		worker_op(s, w);
		atomic_fetch_add_explicit(&w->ops, 1, memory_order_relaxed);
	}
	return NULL;
}

/* The structural thread: the shared region's shape changes under faults. */
static void structural_round(struct srun *s, unsigned *seed)
{
	char *spare = s->shared + (size_t)NT * SH * PAGE;
	char *nbr = spare + SPARE * PAGE;
	void *got;
	int r;

	/* split off the spare (protect), merge it back */
	ck_assert_int_eq(ufp_protect(s->p, spare, SPARE * PAGE, UFP_PROT_READ), 0);
	for (size_t i = 0; i < SPARE; i += 7) {
		int c = check(spare + i * PAGE, 0, 0, 0);

		if (c != 1)
			report(&s->sbad, s->smsg, "spare", s->shared_id, NT * SH + i, 0, c);
	}
	ck_assert_int_eq(ufp_protect(s->p, spare, SPARE * PAGE, UFP_PROT_ALL), 0);
	/* grow: a fixed map merges into the region's end; then shrink */
	r = ufp_map(s->p, nbr, NB * PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &got);
	ck_assert_msg(r == 0 || r == -EEXIST, "map fixed: %d", r);
	if (r == 0) {
		for (size_t i = 0; i < NB; i += 5)
			fill(nbr + i * PAGE, 1, (uint32_t)i, 1);
		for (size_t i = 0; i < NB; i += 5)
			if (check(nbr + i * PAGE, 1, (uint32_t)i, 1) != 0)
				report(&s->sbad, s->smsg, "neighbour", 1, i, 1, -1);
		ck_assert_int_eq(ufp_unmap(s->p, nbr, NB * PAGE), 0);
	}
	ck_assert_int_eq(ufp_advise(s->p, spare, SPARE * PAGE, UFP_ADV_DONTNEED), 0);
	if (s->swap && rand_r(seed) % 4 == 0)
		ufp_advise(s->p, s->shared, (size_t)NT * SH * PAGE, UFP_ADV_PAGEOUT);
	/* tree churn: short-lived objects */
	ck_assert_int_eq(ufp_alloc(s->p, PAGE * (1 + rand_r(seed) % 8), &got), 0);
	((char *)got)[0] = 1;
	ck_assert_int_eq(ufp_free(s->p, got), 0);
}

/* Aborts (with the counters) when a thread stops making progress. A
 * finished thread's counter is set to UINT64_MAX. */
static void *watchdog_main(void *arg)
{
	struct srun *s = arg;
	uint64_t last[NT + 1] = { 0 }, since[NT + 1], now = ufp_now_ns();
	bool all_done = false;

	for (int i = 0; i <= NT; i++)
		since[i] = now;
	while (!all_done) {
		usleep(100000);
		now = ufp_now_ns();
		all_done = true;
		for (int i = 0; i <= NT; i++) {
			uint64_t v = i < NT ? atomic_load(&s->w[i].ops) : atomic_load(&s->sops);

			if (v == UINT64_MAX)
				continue;
			all_done = false;
			if (v != last[i]) {
				last[i] = v;
				since[i] = now;
			} else if (now - since[i] > STALL_NS) {
				struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };

				stats_merge((struct ufp_pager *)s->p, &st);
				fprintf(stderr, "stress: %s %d made no progress for %llu s "
					"(livelock or deadlock): faults %llu eexist %llu "
					"eagain %llu swapins %llu swapouts %llu\n",
					i < NT ? "worker" : "structural thread", i,
					(unsigned long long)(STALL_NS / 1000000000ull),
					(unsigned long long)st.faults,
					(unsigned long long)st.ioctl_eexist,
					(unsigned long long)st.ioctl_eagain,
					(unsigned long long)st.swapins,
					(unsigned long long)st.swapouts);
				if (getenv("UFP_STRESS_HOLD"))   /* debugging: attach */
					pause();
				abort();
			}
		}
	}
	return NULL;
}

static double stress_seconds(void)
{
	const char *e = getenv("UFP_STRESS_SECONDS");
	double d = e ? atof(e) : 10.0;

	return d > 0 ? d : 10.0;
}

START_TEST(stress_data)
{
	unsigned delivery = _i & 1 ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS;
	unsigned mode = _i & 2 ? UFP_LOCK_GLOBAL : UFP_LOCK_PER_REGION;
	const char *sw = getenv("UFP_STRESS_SWAP");
	struct srun *s = calloc(1, sizeof(*s));
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.delivery = delivery, .lock_mode = mode, .flags = UFP_PF_NO_EXPORT,
	};
	pthread_t th[NT], wd;
	unsigned seed = 1234u + (unsigned)_i;
	void *b;
	const char *only = getenv("UFP_STRESS_MODE");
	int r;

	if (only && atoi(only) != _i) {     /* debugging: one mode (0-3) */
		free(s);
		return;
	}
	s->swap = !(sw && !strcmp(sw, "0"));
	if (s->swap) {
		pr.budget = 2 << 20;
		pr.ztier_size = 1 << 20;
	}
	r = ufp_pager_create(&pr, &s->p);
	ck_assert_msg(r == 0, "create: %d %s", r, ufp_last_error());
	/* the shared region, its spare tail, and room for the neighbour */
	ck_assert_int_eq(ufp_map(s->p, NULL, ((size_t)NT * SH + SPARE + NB) * PAGE,
				 UFP_PROT_ALL, 0, &b), 0);
	s->shared = b;
	s->shared_id = atomic_fetch_add(&next_id, 1);
	ck_assert_int_eq(ufp_unmap(s->p, s->shared + ((size_t)NT * SH + SPARE) * PAGE,
				   NB * PAGE), 0);
	s->deadline = ufp_now_ns() + (uint64_t)(stress_seconds() * 1e9);
	for (int i = 0; i < NT; i++) {
		s->w[i].run = s;
		s->w[i].idx = i;
		s->w[i].seed = seed * 31u + (unsigned)i;
		pthread_create(&th[i], NULL, worker_main, &s->w[i]);
	}
	pthread_create(&wd, NULL, watchdog_main, s);
	while (ufp_now_ns() < s->deadline && !s->sbad) {
		structural_round(s, &seed);
		atomic_fetch_add(&s->sops, 1);
	}
	atomic_store(&s->stop, true);
	atomic_store(&s->sops, UINT64_MAX);
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		atomic_store(&s->w[i].ops, UINT64_MAX);   /* done: the watchdog may go */
	}
	pthread_join(wd, NULL);

	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	ck_assert_int_eq(ufp_stats_get(s->p, &st), 0);
	ck_assert_msg(!s->sbad, "structural thread: %s", s->smsg);
	for (int i = 0; i < NT; i++) {
		struct sworker *w = &s->w[i];

		ck_assert_msg(!w->bad, "worker %d: %s", i, w->msg);
		for (int k = 0; k < NOBJ; k++)
			if (w->obj[k].base)
				obj_verify(&w->bad, w->msg, &w->obj[k]);
		for (size_t k = 0; k < SH; k++) {
			size_t idx = k * NT + (size_t)i;
			int c = check(s->shared + idx * PAGE, s->shared_id, (uint32_t)idx, w->shgen[k]);

			if (c != (w->shgen[k] ? 0 : 1))
				report(&w->bad, w->msg, "final shared", s->shared_id, idx,
				       w->shgen[k], c);
		}
		ck_assert_msg(!w->bad, "worker %d after the run: %s", i, w->msg);
		for (int k = 0; k < NOBJ; k++)
			if (w->obj[k].base)
				obj_destroy(s, &w->obj[k]);
	}
	mm_check_invariants((struct ufp_pager *)s->p);
	printf("stress %s/%s: %llu faults, %llu splits, %llu merges, %llu swapins, "
	       "%llu lock misses, %llu fallbacks, %llu retries, %llu moves misreported\n",
	       delivery == UFP_DELIVERY_SIGBUS ? "sigbus" : "handler",
	       mode == UFP_LOCK_GLOBAL ? "global" : "per-region",
	       (unsigned long long)st.faults, (unsigned long long)st.splits,
	       (unsigned long long)st.merges, (unsigned long long)st.swapins,
	       (unsigned long long)st.lock_miss, (unsigned long long)st.lock_fallback,
	       (unsigned long long)st.lock_retry,
	       (unsigned long long)st.moves_misreported);
	ck_assert_uint_gt(st.faults, 0);
	ck_assert_uint_gt(st.splits, 0);
	ck_assert_uint_gt(st.merges, 0);
	ck_assert_int_eq(ufp_pager_destroy(s->p), 0);
	free(s);
}
END_TEST

static Suite *stress_suite(void)
{
	Suite *s = suite_create("stress");
	TCase *tc = tcase_create("stress");

	/* per mode: the run, the final check and teardown, slack for TSan */
	tcase_set_timeout(tc, stress_seconds() + 120);
	tcase_add_loop_test(tc, stress_data, 0, 4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	ufp_test_require_uffd();
	return ufp_run_suite(stress_suite());
}
