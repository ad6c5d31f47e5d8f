/* SPDX-License-Identifier: MIT */
/*
 * test_park.c - the parked (soft inactive) list (issue 12, part 2): pages
 * the clock chose are moved out of the arena into the parked ring; a fault
 * moves one back, and only pages that stay parked through a pass of the
 * ring are stored. Every page carries a data pattern, checked after each
 * operation on pages that are parked at the time: read, written, split,
 * protected, unmapped, discarded, paged out, forked, mremapped; writers
 * racing park and unpark; the ring full under pressure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"
#include "inject.h"

static const unsigned deliveries[2] = { UFP_DELIVERY_SIGBUS, UFP_DELIVERY_HANDLER };

#define NPAGES 512            /* 2 MiB over a 1 MiB budget */

/* A pager with a 1 MiB budget whose ring holds half of it (128 pages). */
static ufp_pager *park_pager(unsigned delivery, const char *pct)
{
	ufp_pager *p;

	setenv("UFPAGER_PARK_PCT", pct, 1);
	p = ufp_test_budget_pager(delivery, 1 << 20);
	unsetenv("UFPAGER_PARK_PCT");
	return p;
}

static uint64_t entry(ufp_pager *p, const char *a)
{
	struct ufp_pager *ip = (struct ufp_pager *)p;

	return atomic_load(&ip->pte[pte_index(ip, (uintptr_t)a)]);
}

static bool parked(ufp_pager *p, const char *a)
{
	return (entry(p, a) & (PTE_PARKED | PTE_INFLIGHT)) == PTE_PARKED;
}

/* Fill n pages with generation gen, then wait until reclaim has parked at
 * least want of them and settled (no entry in flight). Returns the count. */
static size_t fill_and_park(ufp_pager *p, char *m, size_t n, uint32_t gen, size_t want)
{
	size_t np = 0;

	for (size_t i = 0; i < n; i++)
		ufp_fill_rand(m + i * PAGE, gen);
	for (int t = 0; t < 3000; t++) {
		bool busy = false;

		np = 0;
		for (size_t i = 0; i < n; i++) {
			uint64_t v = entry(p, m + i * PAGE);

			np += (v & PTE_PARKED) != 0;
			busy |= (v & PTE_INFLIGHT) != 0;
		}
		if (np >= want && !busy)
			break;
		usleep(1000);
	}
	ck_assert_msg(np >= want, "only %zu pages parked (want %zu); pages_parked %llu", np,
		      want, (unsigned long long)ufp_test_stats(p).pages_parked);
	return np;
}

/* The first parked page at or after page `from`, or n. */
static size_t next_parked(ufp_pager *p, char *m, size_t from, size_t n)
{
	while (from < n && !parked(p, m + from * PAGE))
		from++;
	return from;
}

static void check_all(char *m, size_t n, const uint32_t *gen)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(gen[i] ? ufp_check_rand(m + i * PAGE, gen[i]) :
				       ufp_check_page(m + i * PAGE, 0) == 1,
			      "page %zu (gen %u) read wrong", i, gen[i]);
}

/* A parked page read back: the same content, a parked fault (a
 * reference), present again; every other page intact. */
START_TEST(parked_page_comes_back_on_access)
{
	ufp_pager *p = park_pager(deliveries[_i], "50");
	uint32_t gen[NPAGES];
	size_t k;
	char *m;

	ck_assert_int_eq(ufp_map(p, NULL, NPAGES * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	fill_and_park(p, m, NPAGES, 3, 32);
	for (size_t i = 0; i < NPAGES; i++)
		gen[i] = 3;
	/* no eviction from here: the page stays parked until we touch it */
	reclaim_pause((struct ufp_pager *)p);
	k = next_parked(p, m, 0, NPAGES);
	ck_assert_uint_lt(k, NPAGES);
	uint64_t f0 = ufp_test_stats(p).faults_parked;

	ck_assert(ufp_check_rand(m + k * PAGE, 3));
	ck_assert_uint_eq(ufp_test_stats(p).faults_parked, f0 + 1);
	ck_assert(entry(p, m + k * PAGE) & PTE_PRESENT);
	ck_assert(entry(p, m + k * PAGE) & PTE_REF);
	reclaim_resume((struct ufp_pager *)p);
	check_all(m, NPAGES, gen);
	ck_assert_uint_gt(ufp_test_stats(p).pages_parked, 0);
	ufp_pager_destroy(p);
}
END_TEST

/*
 * Operations on pages while they are parked: a write; a protect that
 * splits the region (read-only: the way back is a copy, the slot goes
 * stale); an unmap and a new map at the same place (zeros, never the
 * parked copy); a DONTNEED (zeros); a PAGEOUT (stored, then read back).
 */
START_TEST(parked_pages_written_split_protected_unmapped_discarded)
{
	ufp_pager *p = park_pager(deliveries[_i], "50");
	uint32_t gen[NPAGES];
	size_t k, np;
	char *m, *m2;

	ck_assert_int_eq(ufp_map(p, NULL, NPAGES * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	np = fill_and_park(p, m, NPAGES, 4, 48);
	for (size_t i = 0; i < NPAGES; i++)
		gen[i] = 4;
	/* no eviction while we pick parked pages and act on them */
	reclaim_pause((struct ufp_pager *)p);

	/* written while parked */
	k = next_parked(p, m, 0, NPAGES);
	ck_assert_uint_lt(k, NPAGES);
	ufp_fill_rand(m + k * PAGE, 40);
	gen[k] = 40;
	ck_assert(ufp_check_rand(m + k * PAGE, 40));

	/* split and made read-only while parked: read it there */
	k = next_parked(p, m, k + 2, NPAGES);
	ck_assert_uint_lt(k, NPAGES - 1);
	ck_assert_int_eq(ufp_protect(p, m + k * PAGE, PAGE, UFP_PROT_READ), 0);
	ck_assert_msg(ufp_check_rand(m + k * PAGE, 4), "parked page %zu read-only", k);
	ck_assert_int_eq(ufp_protect(p, m + k * PAGE, PAGE, UFP_PROT_ALL), 0);
	ufp_fill_rand(m + k * PAGE, 41);
	gen[k] = 41;

	/* unmapped while parked, mapped again at the same place: zeros */
	k = next_parked(p, m, k + 2, NPAGES);
	ck_assert_uint_lt(k, NPAGES - 1);
	ck_assert_int_eq(ufp_unmap(p, m + k * PAGE, PAGE), 0);
	ck_assert_int_eq(ufp_map(p, m + k * PAGE, PAGE, UFP_PROT_ALL, UFP_MAP_FIXED,
				 (void **)&m2), 0);
	ck_assert_ptr_eq(m2, m + k * PAGE);
	gen[k] = 0;
	ck_assert_int_eq(ufp_check_page(m + k * PAGE, 0), 1);

	/* discarded while parked: zeros */
	k = next_parked(p, m, k + 2, NPAGES);
	ck_assert_uint_lt(k, NPAGES);
	ck_assert_int_eq(ufp_advise(p, m + k * PAGE, PAGE, UFP_ADV_DONTNEED), 0);
	gen[k] = 0;
	ck_assert_int_eq(ufp_check_page(m + k * PAGE, 0), 1);

	/* paged out while parked: the parked pages of the range are stored */
	reclaim_resume((struct ufp_pager *)p);
	{
		size_t in_range = 0;
		uint64_t out0 = ufp_test_stats(p).swapouts;

		for (size_t i = 0; i < NPAGES; i++)
			in_range += parked(p, m + i * PAGE);
		ck_assert_int_ge(ufp_advise(p, m, NPAGES * PAGE, UFP_ADV_PAGEOUT), 0);
		ck_assert_uint_ge(ufp_test_stats(p).swapouts - out0, in_range);
		for (size_t i = 0; i < NPAGES; i++)
			ck_assert_msg(!(entry(p, m + i * PAGE) & PTE_PARKED),
				      "page %zu still parked after PAGEOUT", i);
	}
	check_all(m, NPAGES, gen);
	(void)np;
	ufp_pager_destroy(p);
}
END_TEST

/* A fork while pages are parked: the child (which inherits neither the
 * ring nor the registration) reads every page; so does the parent. */
START_TEST(fork_with_parked_pages)
{
	ufp_pager *p = park_pager(deliveries[_i], "50");
	char *m;
	pid_t c;
	int st;

	ck_assert_int_eq(ufp_map(p, NULL, NPAGES * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	fill_and_park(p, m, NPAGES, 6, 32);
	c = fork();
	if (c == 0) {
		int bad = 0;

		for (size_t i = 0; i < NPAGES; i++)
			bad += !ufp_check_rand(m + i * PAGE, 6);
		_exit(bad > 250 ? 250 : bad);
	}
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child read %d wrong pages",
		      WEXITSTATUS(st));
	ck_assert_int_eq(ufp_test_stats(p).fork_swapin_failed, 0);
	for (size_t i = 0; i < NPAGES; i++)
		ck_assert_msg(ufp_check_rand(m + i * PAGE, 6), "parent page %zu", i);
	ufp_pager_destroy(p);
}
END_TEST

/* The program's own mremap of a range with parked pages: they arrive at
 * the new place (the event worker moves them from their slots). */
START_TEST(mremap_carries_parked_pages)
{
	ufp_pager *p = park_pager(deliveries[_i], "50");
	const size_t n = NPAGES;
	size_t np = 0;
	char *m, *to, *res;

	ck_assert_int_eq(ufp_map(p, NULL, n * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	fill_and_park(p, m, n, 9, 32);
	for (size_t i = 0; i < n; i++)
		np += parked(p, m + i * PAGE);
	ck_assert_uint_gt(np, 0);
	to = mmap(NULL, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(to, MAP_FAILED);
	res = mremap(m, n * PAGE, n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	ck_assert_ptr_eq(res, to);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(ufp_check_rand_at(to + i * PAGE, (uintptr_t)(m + i * PAGE), 9),
			      "page %zu lost by mremap (%zu were parked)", i, np);
	munmap(to, n * PAGE);
	ufp_pager_destroy(p);
}
END_TEST

/*
 * Writers racing park and unpark with the ring full: two threads write
 * random pages of a set 4x the budget (each write a new generation,
 * recorded per page), a third protects and unprotects pages in between
 * (splits and merges), while reclaim parks, drains and evicts. At the end
 * every page holds its last generation; pages were parked, came back and
 * were evicted from the ring.
 */
struct race {
	ufp_pager *p;
	char *m;
	size_t n;
	_Atomic uint32_t *gen;        /* last generation written, per page */
	pthread_mutex_t *locks;       /* per 64 pages: a write and its record */
	_Atomic bool stop;
	_Atomic uint64_t bad;
	char why[200];
};

/* Page i should hold generation g: say what it holds instead. */
static void race_bad(struct race *r, size_t i, uint32_t g, const char *who)
{
	const char *a = r->m + i * PAGE;
	int found = -1;

	for (uint32_t k = g > 4 ? g - 4 : 1; k <= g + 1 && found < 0; k++)
		if (ufp_check_rand(a, k))
			found = (int)k;
	if (atomic_fetch_add(&r->bad, 1) == 0)
		snprintf(r->why, sizeof(r->why), "%s: page %zu gen %u holds %s %d (entry %#llx)",
			 who, i, g, ufp_check_page(a, 0) == 1 ? "zeros" : "gen", found,
			 (unsigned long long)entry(r->p, a));
}

static void *race_writer(void *arg)
{
	struct race *r = arg;
	uint64_t x = (uint64_t)pthread_self() | 1;

	ufp_thread_register();
	while (!atomic_load(&r->stop)) {
		size_t i;
		uint32_t g;

		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		/* half the writes to a hot eighth: those pages come back from
		 * the ring, the others are evicted from it */
		i = (x & 1) ? (x >> 8) % (r->n / 8) : (x >> 8) % r->n;
		pthread_mutex_lock(&r->locks[i / 64]);
		g = atomic_load(&r->gen[i]);
		if (g && !ufp_check_rand(r->m + i * PAGE, g))
			race_bad(r, i, g, "writer");
		ufp_fill_rand(r->m + i * PAGE, g + 1);
		atomic_store(&r->gen[i], g + 1);
		pthread_mutex_unlock(&r->locks[i / 64]);
	}
	return NULL;
}

static void *race_protector(void *arg)
{
	struct race *r = arg;
	uint64_t x = 0x9E3779B97F4A7C15ull;

	ufp_thread_register();
	while (!atomic_load(&r->stop)) {
		size_t i;

		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		i = (x >> 8) % r->n;
		pthread_mutex_lock(&r->locks[i / 64]);
		ufp_protect(r->p, r->m + i * PAGE, PAGE, UFP_PROT_READ);
		if (atomic_load(&r->gen[i]) && !ufp_check_rand(r->m + i * PAGE, atomic_load(&r->gen[i])))
			race_bad(r, i, atomic_load(&r->gen[i]), "protector (read-only)");
		ufp_protect(r->p, r->m + i * PAGE, PAGE, UFP_PROT_ALL);
		pthread_mutex_unlock(&r->locks[i / 64]);
	}
	return NULL;
}

START_TEST(writers_race_park_and_unpark_with_the_ring_full)
{
	struct race r = { .p = park_pager(deliveries[_i], "75"), .n = 1024 };
	pthread_mutex_t locks[1024 / 64];
	pthread_t th[3];
	struct ufp_stats s;

	r.gen = calloc(r.n, sizeof(*r.gen));
	r.locks = locks;
	for (size_t k = 0; k < r.n / 64; k++)
		pthread_mutex_init(&locks[k], NULL);
	ck_assert_int_eq(ufp_map(r.p, NULL, r.n * PAGE, UFP_PROT_ALL, 0, (void **)&r.m), 0);
	ck_assert_int_eq(pthread_create(&th[0], NULL, race_writer, &r), 0);
	ck_assert_int_eq(pthread_create(&th[1], NULL, race_writer, &r), 0);
	ck_assert_int_eq(pthread_create(&th[2], NULL, race_protector, &r), 0);
	usleep(2500000);
	atomic_store(&r.stop, true);
	for (int k = 0; k < 3; k++)
		pthread_join(th[k], NULL);
	ck_assert_msg(atomic_load(&r.bad) == 0, "%llu bad reads; first: %s",
		      (unsigned long long)atomic_load(&r.bad), r.why);
	for (size_t i = 0; i < r.n; i++) {
		uint32_t g = atomic_load(&r.gen[i]);

		ck_assert_msg(g ? ufp_check_rand(r.m + i * PAGE, g) :
				  ufp_check_page(r.m + i * PAGE, 0) == 1,
			      "page %zu (gen %u) read wrong", i, g);
	}
	s = ufp_test_stats(r.p);
	ck_assert_msg(s.pages_parked > 0 && s.faults_parked > 0 && s.parked_evictions > 0,
		      "parked %llu, back %llu, evicted from the ring %llu",
		      (unsigned long long)s.pages_parked, (unsigned long long)s.faults_parked,
		      (unsigned long long)s.parked_evictions);
	free((void *)r.gen);
	ufp_pager_destroy(r.p);
}
END_TEST

/*
 * resident_pages counts what is in RAM: pages present in the arena or
 * parked. Eviction subtracted every victim it had moved out, also those
 * it put back because the store failed (here every store fails) and those
 * a discard had counted already: the count fell below the truth and the
 * budget stopped holding. Count the entries and compare.
 */
START_TEST(resident_count_matches_the_entries_when_stores_fail)
{
	ufp_pager *p = park_pager(deliveries[_i], "25");
	struct ufp_pager *ip = (struct ufp_pager *)p;
	int64_t counted = 0;
	char *m;

	ck_assert_int_eq(ufp_map(p, NULL, NPAGES * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	ck_assert_int_eq(inject_configure("eio=1@write,seed=4", NULL), 0);
	for (size_t i = 0; i < NPAGES; i++)
		ufp_fill_rand(m + i * PAGE, 7);
	ufp_advise(p, m, NPAGES * PAGE / 2, UFP_ADV_PAGEOUT);
	usleep(200000);
	inject_disarm();
	/* settle: nothing in flight */
	for (int t = 0; t < 2000; t++) {
		bool busy = false;

		for (size_t i = 0; i < NPAGES; i++)
			busy |= (entry(p, m + i * PAGE) & PTE_INFLIGHT) != 0;
		if (!busy)
			break;
		usleep(1000);
	}
	reclaim_pause(ip);
	for (size_t i = 0; i < NPAGES; i++)
		counted += (entry(p, m + i * PAGE) & (PTE_PRESENT | PTE_PARKED)) != 0;
	ck_assert_int_eq((int64_t)ufp_test_stats(p).resident_pages, counted);
	reclaim_resume(ip);
	for (size_t i = 0; i < NPAGES; i++)
		ck_assert(ufp_check_rand(m + i * PAGE, 7));
	ufp_pager_destroy(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("park");
	TCase *tc = tcase_create("park");

	ufp_test_require_swap();
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, parked_page_comes_back_on_access, 0, 2);
	tcase_add_loop_test(tc, parked_pages_written_split_protected_unmapped_discarded, 0, 2);
	tcase_add_loop_test(tc, fork_with_parked_pages, 0, 2);
	tcase_add_loop_test(tc, mremap_carries_parked_pages, 0, 2);
	tcase_add_loop_test(tc, writers_race_park_and_unpark_with_the_ring_full, 0, 2);
	tcase_add_loop_test(tc, resident_count_matches_the_entries_when_stores_fail, 0, 2);
	suite_add_tcase(s, tc);
	return ufp_run_suite(s);
}
