/* SPDX-License-Identifier: MIT */
/*
 * test_soak_regress.c - regressions of what `ufpagerctl bench soak` found
 * (issue 9, item 16): a fork under an EAGAIN storm handed the child zeros
 * for evicted pages, and eagain=1 was accepted and spun for ever. Each
 * test runs in seconds.
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

/*
 * The fork handler brings every evicted page back (swapin_all_locked) so
 * that the child, which loses the registration, reads them. A UFFDIO_COPY
 * that returned EAGAIN (an event pending; injected here) counted the page
 * as "could not be read back" at once: the child read zeros (the soak's
 * "fork child found N bad pages").
 */
START_TEST(fork_under_eagain_storm_keeps_evicted_pages)
{
	ufp_pager *p = ufp_test_budget_pager(deliveries[_i], 1 << 20);
	const size_t n = 512;    /* 2 MiB over a 1 MiB budget */
	const uint32_t gen = 5;
	char *m;
	int st;
	pid_t c;

	ck_assert_int_eq(ufp_map(p, NULL, n * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (size_t i = 0; i < n; i++)
		ufp_fill_rand(m + i * PAGE, gen);
	ck_assert_int_eq(ufp_advise(p, m, n * PAGE, UFP_ADV_PAGEOUT), 0);
	ck_assert_int_gt(ufp_test_stats(p).swapouts, n / 2);
	ck_assert_int_eq(inject_configure("eagain=0.5,seed=3", NULL), 0);
	c = fork();
	if (c == 0) {
		int bad = 0;

		for (size_t i = 0; i < n; i++)
			bad += !ufp_check_rand(m + i * PAGE, gen);
		_exit(bad > 250 ? 250 : bad);
	}
	inject_disarm();
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "child read %d wrong pages (status %#x); fork_swapin_failed %llu",
		      WEXITSTATUS(st), st, (unsigned long long)ufp_test_stats(p).fork_swapin_failed);
	ck_assert_int_eq(ufp_test_stats(p).fork_swapin_failed, 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(ufp_check_rand(m + i * PAGE, gen), "parent page %zu", i);
	ufp_pager_destroy(p);
}
END_TEST

/*
 * A victim whose store failed goes back with put_back. It checked that
 * the entry was still its own and then moved the page back with no lock:
 * a DONTNEED in between (unregister, discard, register, then the entries)
 * got the old content back under an entry that says "empty", and the
 * program read old data where it had just been promised zeros. Here every
 * store fails (eio=1@write: every victim goes back), one thread pages the
 * object out again and again, and another writes it, discards it and
 * checks that it reads zeros.
 */
struct churn_arg {
	ufp_pager *p;
	char *m;
	size_t n;
	_Atomic bool stop;
};

static void *pageout_churn(void *arg)
{
	struct churn_arg *a = arg;

	ufp_thread_register();
	while (!atomic_load(&a->stop))
		ufp_advise(a->p, a->m, a->n * PAGE, UFP_ADV_PAGEOUT);
	return NULL;
}

START_TEST(failed_store_put_back_never_revives_discarded_pages)
{
	ufp_pager *p = ufp_test_budget_pager(deliveries[_i], 1 << 20);
	struct churn_arg a = { .p = p, .n = 64 };
	uint64_t t0 = ufp_now_ns(), rounds = 0, bad = 0;
	pthread_t th[2];

	ck_assert_int_eq(ufp_map(p, NULL, a.n * PAGE, UFP_PROT_ALL, 0, (void **)&a.m), 0);
	ck_assert_int_eq(inject_configure("eio=1@write,eagain=0.5,seed=9", NULL), 0);
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(pthread_create(&th[k], NULL, pageout_churn, &a), 0);
	while (ufp_now_ns() - t0 < 3000000000ull && !bad) {
		uint32_t gen = (uint32_t)++rounds;

		for (size_t i = 0; i < a.n; i++)
			ufp_fill_rand(a.m + i * PAGE, gen);
		ck_assert_int_eq(ufp_advise(p, a.m, a.n * PAGE, UFP_ADV_DONTNEED), 0);
		for (size_t i = 0; i < a.n; i++)
			for (size_t w = 0; w < PAGE / 8; w++)
				if (((uint64_t *)(a.m + i * PAGE))[w]) {
					bad++;
					break;
				}
	}
	atomic_store(&a.stop, true);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	inject_disarm();
	ck_assert_msg(!bad, "round %llu: %llu pages read old data after DONTNEED",
		      (unsigned long long)rounds, (unsigned long long)bad);
	ufp_pager_destroy(p);
}
END_TEST

/*
 * The program's own madvise(MADV_DONTNEED) of managed memory (a REMOVE
 * event, not ufp_advise) racing eviction. The kernel sends REMOVE, waits
 * only until a reader has dequeued it, zaps, and returns to the program
 * while the event worker has not applied it yet. Two failures:
 *  - an evictor that claimed a page the kernel had just zapped moved the
 *    hole (UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES) and then read the empty
 *    staging page: a fault on registered memory inside the library
 *    (SIGBUS on the reclaim thread in SIGBUS delivery, seen in CI as a
 *    sandbox kill for the handler's rt_sigaction; a hang in handler
 *    delivery);
 *  - a page evicted before the zap stayed SWAPPED until the worker ran,
 *    and the program's read right after madvise swapped the old content
 *    back in, where it had just been promised zeros.
 * Two threads page the object out again and again while the main thread
 * writes it, discards it with madvise, and checks that it reads zeros.
 */
START_TEST(foreign_dontneed_racing_eviction_reads_zeros)
{
	ufp_pager *p = ufp_test_budget_pager(deliveries[_i], 8 << 20);
	struct churn_arg a = { .p = p, .n = 512 };
	uint64_t t0 = ufp_now_ns(), rounds = 0, bad = 0;
	pthread_t th[2];
	struct ufp_stats s;

	ck_assert_int_eq(ufp_map(p, NULL, a.n * PAGE, UFP_PROT_ALL, 0, (void **)&a.m), 0);
	for (size_t i = 0; i < a.n; i++)
		ufp_fill_rand(a.m + i * PAGE, 1);
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(pthread_create(&th[k], NULL, pageout_churn, &a), 0);
	while (ufp_now_ns() - t0 < 3000000000ull && !bad) {
		uint32_t gen = (uint32_t)++rounds + 1;
		size_t at = (rounds * 8) % (a.n - 8);
		char *b = a.m + at * PAGE;

		for (size_t i = 0; i < 8; i++)
			ufp_fill_rand(b + i * PAGE, gen);
		ck_assert_int_eq(madvise(b, 8 * PAGE, MADV_DONTNEED), 0);
		for (size_t i = 0; i < 8; i++)
			for (size_t w = 0; w < PAGE / 8; w++)
				if (((uint64_t *)(b + i * PAGE))[w]) {
					bad++;
					break;
				}
	}
	atomic_store(&a.stop, true);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	s = ufp_test_stats(p);
	ck_assert_msg(!bad, "round %llu: %llu pages read old data after madvise(DONTNEED)",
		      (unsigned long long)rounds, (unsigned long long)bad);
	ck_assert_uint_gt(s.swapouts, 0);
	ck_assert_uint_gt(s.events_remove, 0);
	ck_assert_uint_eq(s.pages_poisoned, 0);
	ufp_pager_destroy(p);
}
END_TEST

/*
 * The REMOVE ranges read and not yet applied (removes.c): a reader never
 * waits for a slot (it may be in the read section the event worker waits
 * for: that deadlocked the test above in SIGBUS delivery, the reader
 * sleeping for a slot, the worker for the reader). With every slot taken
 * a range covers everything until it is applied.
 */
START_TEST(remove_ranges_overflow_covers_everything_until_applied)
{
	ufp_pager *p = ufp_test_budget_pager(UFP_DELIVERY_SIGBUS, 1 << 20);
	const uintptr_t base = 1ull << 40;
	unsigned slot[UFP_REMOVE_SLOTS + 1];

	ck_assert(!removes_covers(p, base));
	for (unsigned k = 0; k < UFP_REMOVE_SLOTS; k++)
		slot[k] = removes_publish(p, base + k * 2 * PAGE, base + k * 2 * PAGE + PAGE);
	ck_assert(removes_covers(p, base + 2 * PAGE));
	ck_assert(!removes_covers(p, base + PAGE));             /* a gap */
	slot[UFP_REMOVE_SLOTS] = removes_publish(p, base - PAGE, base);
	ck_assert_uint_eq(slot[UFP_REMOVE_SLOTS], UFP_REMOVE_SLOTS);   /* no slot left */
	ck_assert(removes_covers(p, base + PAGE));              /* covers everything */
	ck_assert(removes_pending(p, 0));
	removes_done(p, slot[UFP_REMOVE_SLOTS]);
	ck_assert(!removes_covers(p, base + PAGE));
	for (unsigned k = 0; k < UFP_REMOVE_SLOTS; k++)
		removes_done(p, slot[k]);
	ck_assert(!removes_covers(p, base + 2 * PAGE));
	removes_wait(p, base);                                 /* returns at once */
	ufp_pager_destroy(p);
}
END_TEST

/*
 * claim_victims returned early (no region at the PAGEOUT hand: the range
 * was unmapped after ufp_advise checked it) without setting its
 * fault_lock, and evict_batch unlocked whatever the stale stack held. In
 * debug builds the lock checker aborts; in release builds a pager or
 * region reader count went below zero and every structural op waited for
 * ever (the soak's hang: threads queued on the pager lock). The PAGEOUT
 * thread fills its stack with 2s (FLK_PAGER) before each call, as an
 * earlier deep call could leave it; another thread unmaps the range and
 * maps it back.
 */
static __attribute__((noinline)) void stack_poison(void)
{
	volatile int junk[16384];

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		junk[i] = 2;
}

static void *pageout_poisoned(void *arg)
{
	struct churn_arg *a = arg;

	ufp_thread_register();
	while (!atomic_load(&a->stop)) {
		stack_poison();
		ufp_advise(a->p, a->m, a->n * PAGE, UFP_ADV_PAGEOUT);
	}
	return NULL;
}

/* Six page-out threads (more than the staging sets) on one range while
 * this thread writes it, unmaps it and maps it back at the same place. */
static void pageout_vs_unmap_map(unsigned delivery, void *(*pageout)(void *))
{
	ufp_pager *p = ufp_test_budget_pager(delivery, 1 << 20);
	struct churn_arg a = { .p = p, .n = 32 };
	uint64_t t0 = ufp_now_ns();
	pthread_t th[6];
	void *q;

	ck_assert_int_eq(ufp_map(p, NULL, a.n * PAGE, UFP_PROT_ALL, 0, (void **)&a.m), 0);
	/* more page-out threads than staging sets: the ones that wait for a
	 * set have checked the range already, and the unmap gets in */
	for (int k = 0; k < 6; k++)
		ck_assert_int_eq(pthread_create(&th[k], NULL, pageout, &a), 0);
	while (ufp_now_ns() - t0 < 2000000000ull) {
		for (size_t i = 0; i < a.n; i += 2)
			ufp_fill_rand(a.m + i * PAGE, 2);
		ck_assert_int_eq(ufp_unmap(p, a.m, a.n * PAGE), 0);
		ck_assert_int_eq(ufp_map(p, a.m, a.n * PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &q), 0);
	}
	atomic_store(&a.stop, true);
	for (int k = 0; k < 6; k++)
		pthread_join(th[k], NULL);
	ck_assert_int_eq(ufp_test_stats(p).pages_poisoned, 0);
	/* every lock was given back: a structural op still gets in */
	ck_assert_int_eq(ufp_unmap(p, a.m, a.n * PAGE), 0);
	ufp_pager_destroy(p);
}

START_TEST(pageout_racing_unmap_never_unlocks_twice)
{
	pageout_vs_unmap_map(deliveries[_i], pageout_poisoned);
}
END_TEST

/*
 * evict_batch published a victim by storing its handle in slots[i] and
 * then CASing the entry to SWAPPED; when the CAS failed (the entry was
 * discarded while the page was out) it released its handle. But by then
 * the page's next life could have been evicted and published by another
 * evictor, whose handle the loser had just overwritten with its own,
 * freed one: the next swap-in read a freed slot, failed its checksum and
 * poisoned the page (SIGBUS in the program), or read another page's data.
 */
START_TEST(pageout_racing_unmap_never_publishes_a_freed_slot)
{
	pageout_vs_unmap_map(deliveries[_i], pageout_churn);
}
END_TEST

/* eagain=1 makes every UFFDIO_COPY/ZEROPAGE/MOVE fail: nothing can ever
 * be installed and the callers that retry spin for ever. Refused. */
START_TEST(inject_refuses_an_eagain_rate_of_one)
{
	const char *bad = NULL;

	ck_assert_int_eq(inject_configure("eagain=1", &bad), -EINVAL);
	ck_assert_ptr_nonnull(bad);
	ck_assert_int_eq(strncmp(bad, "eagain=1", 8), 0);
	ck_assert_int_eq(inject_configure("seed=2,eagain=1.0,eio=0.1", &bad), -EINVAL);
	ck_assert_int_eq(inject_configure("eagain=0.99", NULL), 0);
	inject_disarm();
}
END_TEST

static Suite *soak_regress_suite(void)
{
	Suite *s = suite_create("soak_regress");
	TCase *tc = tcase_create("soak_regress");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, fork_under_eagain_storm_keeps_evicted_pages, 0, 2);
	tcase_add_loop_test(tc, failed_store_put_back_never_revives_discarded_pages, 0, 2);
	tcase_add_loop_test(tc, foreign_dontneed_racing_eviction_reads_zeros, 0, 2);
	tcase_add_test(tc, remove_ranges_overflow_covers_everything_until_applied);
	tcase_add_loop_test(tc, pageout_racing_unmap_never_unlocks_twice, 0, 2);
	tcase_add_loop_test(tc, pageout_racing_unmap_never_publishes_a_freed_slot, 0, 2);
	tcase_add_test(tc, inject_refuses_an_eagain_rate_of_one);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ufp_test_require_swap();
	return ufp_run_suite(soak_regress_suite());
}
