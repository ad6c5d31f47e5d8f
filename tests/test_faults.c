/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c - end-to-end fault service: many threads on many regions
 * with data patterns in every delivery and lock mode, the handler
 * self-fault check, fork, foreign munmap/madvise events, SIGBUS chaining,
 * system calls on untouched memory, unregistered threads.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"

static const unsigned deliveries[2] = { UFP_DELIVERY_SIGBUS, UFP_DELIVERY_HANDLER };
static const unsigned modes[2] = { UFP_LOCK_PER_REGION, UFP_LOCK_GLOBAL };

struct worker {
	ufp_pager *p;
	char *base;
	size_t len;
	int id;
	int errors;
	bool register_first;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	if (w->register_first)
		ufp_thread_register();
	for (uint32_t gen = 1; gen <= 3; gen++) {
		for (size_t o = 0; o < w->len; o += PAGE) {
			char *pg = w->base + o;

			if (ufp_check_page(pg, gen - 1) != (gen == 1 ? 1 : 0))
				w->errors++;
			ufp_fill_page(pg, gen);
		}
	}
	return NULL;
}

START_TEST(many_threads_many_regions_keep_patterns)
{
	enum { T = 4, R = 8, PAGES = 256 };
	ufp_pager *p = ufp_test_pager(deliveries[_i & 1], modes[_i >> 1], 0);
	struct worker w[T * R];
	pthread_t th[T * R];
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };

	for (int i = 0; i < T * R; i++) {
		void *m;
		/* alternate protections so the regions stay distinct */
		ck_assert_int_eq(ufp_alloc(p, PAGES * PAGE, &m), 0);
		w[i] = (struct worker){ p, m, PAGES * PAGE, i, 0, true };
	}
	for (int i = 0; i < T * R; i++)
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	for (int i = 0; i < T * R; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].errors, 0);
	}
	ck_assert_int_eq(ufp_stats_get(p, &st), 0);
	ck_assert_uint_gt(st.faults, 0);
	ck_assert_uint_eq(st.handler_self_faults, 0);
	ck_assert_uint_eq(st.resident_pages, T * R * PAGES);
	if (modes[_i >> 1] == UFP_LOCK_PER_REGION)
		ck_assert_uint_gt(st.lock_success, 0);
	ufp_pager_destroy(p);
}
END_TEST

/* The THREAD_ID check is live: a handler never faults on managed memory. */
START_TEST(handler_threads_never_fault_on_managed_memory)
{
	ufp_pager *p = ufp_test_pager(UFP_DELIVERY_HANDLER, 0, 0);
	struct ufp_pager *ip = (struct ufp_pager *)p;
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	char *m;

	if (!(ip->features & UFFD_FEATURE_THREAD_ID)) {
		ufp_pager_destroy(p);
		printf("SKIP part: kernel lacks UFFD_FEATURE_THREAD_ID\n");
		return;
	}
	ck_assert_int_eq(ufp_map(p, NULL, 1024 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 1024; i++)
		m[(size_t)i * PAGE] = 1;
	ufp_stats_get(p, &st);
	ck_assert_uint_gt(st.faults, 0);
	ck_assert_uint_eq(st.handler_self_faults, 0);
	/* and the check itself can fire: pretend this thread is a handler */
	pid_t me = (pid_t)syscall(SYS_gettid);
	pid_t saved = __atomic_load_n(&ip->svc.handlers[0].tid, __ATOMIC_ACQUIRE);
	__atomic_store_n(&ip->svc.handlers[0].tid, me, __ATOMIC_RELEASE);
#ifndef UFP_DEBUG
	m[1500 * PAGE / 2 & ~(PAGE - 1)] = 1;   /* a fresh page of the map */
	ufp_advise(p, m, 1024 * PAGE, UFP_ADV_DONTNEED);
	m[0] = 1;
	ufp_stats_get(p, &st);
	ck_assert_uint_gt(st.handler_self_faults, 0);
#endif
	__atomic_store_n(&ip->svc.handlers[0].tid, saved, __ATOMIC_RELEASE);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(fork_child_never_sees_zeros_where_data_was)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 0);
	enum { PAGES = 512 };
	char *m;
	int status;
	void *x;

	ck_assert_int_eq(ufp_map(p, NULL, PAGES * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < PAGES; i += 2)
		ufp_fill_page(m + (size_t)i * PAGE, 7);
	pid_t c = fork();
	if (c == 0) {
		int bad = 0;

		for (int i = 0; i < PAGES; i++)
			bad += ufp_check_page(m + (size_t)i * PAGE, 7) != (i % 2 ? 1 : 0);
		/* the child's memory is its own: writes work, the pager is inert */
		for (int i = 0; i < PAGES; i++)
			m[(size_t)i * PAGE] = 1;
		bad += ufp_map(p, NULL, PAGE, UFP_PROT_ALL, 0, &x) != -ECHILD;
		_exit(bad ? 10 : 0);
	}
	ck_assert_int_eq(waitpid(c, &status, 0), c);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	/* the parent's data is untouched by the child's writes */
	for (int i = 0; i < PAGES; i++)
		ck_assert_int_eq(ufp_check_page(m + (size_t)i * PAGE, 7), i % 2 ? 1 : 0);
	ck_assert_int_eq(ufp_unmap(p, m, PAGES * PAGE), 0);
	ufp_pager_destroy(p);
}
END_TEST

static bool wait_until_unmapped(struct ufp_pager *ip, uintptr_t a)
{
	for (int i = 0; i < 2000; i++) {
		pager_read_lock(ip);
		struct ufp_region *r = region_tree_lookup(&ip->tree, a);
		pager_read_unlock(ip);
		if (!r)
			return true;
		usleep(1000);
	}
	return false;
}

START_TEST(foreign_munmap_and_madvise_update_the_tree)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 0);
	struct ufp_pager *ip = (struct ufp_pager *)p;
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	char *m, *again;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_page(m + (size_t)i * PAGE, 3);
	/* the application bypasses the pager */
	ck_assert_int_eq(madvise(m, 4 * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_eq(munmap(m + 32 * PAGE, 8 * PAGE), 0);
	ck_assert(wait_until_unmapped(ip, (uintptr_t)m + 32 * PAGE));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(ufp_check_page(m + (size_t)i * PAGE, 3), 1);
	for (int i = 4; i < 32; i++)
		ck_assert_int_eq(ufp_check_page(m + (size_t)i * PAGE, 3), 0);
	mm_check_invariants(ip);
	ufp_stats_get(p, &st);
	ck_assert_uint_ge(st.events_unmap, 1);
	ck_assert_uint_ge(st.events_remove, 1);
	/* the hole is reusable through the pager */
	ck_assert_int_eq(ufp_map(p, m + 32 * PAGE, 8 * PAGE, UFP_PROT_ALL, UFP_MAP_FIXED,
				 (void **)&again), 0);
	ck_assert_int_eq(ufp_check_page(again, 3), 1);
	ufp_fill_page(again, 4);
	ck_assert_int_eq(ufp_check_page(again, 4), 0);
	ufp_pager_destroy(p);
}
END_TEST

static sigjmp_buf jb;
static volatile sig_atomic_t app_handler_ran;

static void app_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)si; (void)uc;
	app_handler_ran = 1;
	siglongjmp(jb, 1);
}

START_TEST(foreign_sigbus_goes_to_the_previous_handler)
{
	struct sigaction sa = { .sa_sigaction = app_sigbus, .sa_flags = SA_SIGINFO };
	char path[] = "/tmp/ufp-sigbus-XXXXXX";
	int fd = mkstemp(path);
	char *f, *m;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
	ufp_pager *p = ufp_test_pager(UFP_DELIVERY_SIGBUS, 0, 0);
	ck_assert_int_eq(ufp_map(p, NULL, 16 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	m[0] = 1;   /* ours: served, the application handler does not run */
	ck_assert_int_eq(app_handler_ran, 0);
	/* a real bus error: a file mapping past EOF */
	ck_assert_int_ge(fd, 0);
	unlink(path);
	f = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(f, MAP_FAILED);
	struct ufp_stats s0 = { .size = sizeof(s0), .version = UFP_STATS_VERSION }, s1 = s0;

	ck_assert_int_eq(ufp_stats_get(p, &s0), 0);
	if (sigsetjmp(jb, 1) == 0)
		(void)*(volatile char *)f;
	ck_assert_int_eq(app_handler_ran, 1);
	ck_assert_int_eq(ufp_stats_get(p, &s1), 0);
	ck_assert_uint_eq(s1.foreign_sigbus, s0.foreign_sigbus + 1);   /* was never counted */
	munmap(f, PAGE);
	close(fd);
	ufp_pager_destroy(p);
	signal(SIGBUS, SIG_DFL);
}
END_TEST

/* Handler delivery: the kernel waits for us; SIGBUS delivery: EFAULT (the
 * documented limit of self-paging). */
START_TEST(syscall_on_untouched_memory)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 0);
	int pfd[2];
	char *m;
	ssize_t n;

	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(ufp_map(p, NULL, 4 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	ck_assert_int_eq(write(pfd[1], "hello", 5), 5);
	n = read(pfd[0], m, 5);   /* the kernel writes to an untouched page */
	if (deliveries[_i] == UFP_DELIVERY_HANDLER) {
		ck_assert_int_eq(n, 5);
		ck_assert_int_eq(memcmp(m, "hello", 5), 0);
	} else {
		ck_assert_int_eq(n, -1);
		ck_assert_int_eq(errno, EFAULT);
		m[0] = 0;   /* touching it first makes the syscall work */
		ck_assert_int_eq(read(pfd[0], m, 5), 5);
	}
	close(pfd[0]);
	close(pfd[1]);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(unregistered_threads_use_the_pager_lock_fallback)
{
	ufp_pager *p = ufp_test_pager(UFP_DELIVERY_SIGBUS, UFP_LOCK_PER_REGION, 0);
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	struct worker w;
	pthread_t t;
	void *m;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, &m), 0);
	w = (struct worker){ p, m, 64 * PAGE, 0, 0, false };
	pthread_create(&t, NULL, worker_main, &w);
	pthread_join(t, NULL);
	ck_assert_int_eq(w.errors, 0);
	ufp_stats_get(p, &st);
	ck_assert_uint_gt(st.lock_fallback, 0);
	ufp_pager_destroy(p);
}
END_TEST

static void *touch_main(void *arg)
{
	volatile char *c = arg;

	(void)c[0];                                 /* read: zero page */
	c[UFP_PAGE_SIZE * 2] = 1;                   /* write: zeroed copy */
	return NULL;
}

/*
 * A foreign mprotect splits the kernel VMA under one of our regions; a
 * fault-around window that crosses the edge makes UFFDIO_ZEROPAGE/COPY
 * fail with ENOENT for the whole range. The faulting page must still be
 * filled (regression: in handler delivery the thread was never woken).
 */
START_TEST(fault_around_stops_at_a_foreign_vma_edge)
{
	ufp_pager *p = ufp_test_pager(_i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS,
				      UFP_LOCK_PER_REGION, 0);
	struct timespec ts;
	pthread_t th;
	char *m;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	/* behind ufpager's back: pages 8-9 read-only, the VMA is split at 8 */
	ck_assert_int_eq(mprotect(m + 8 * PAGE, 2 * PAGE, PROT_READ), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, touch_main, m + 5 * PAGE), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	ck_assert_msg(pthread_timedjoin_np(th, NULL, &ts) == 0,
		      "a fault next to a foreign VMA edge never completed");
	ck_assert_int_eq(m[5 * PAGE], 0);
	ck_assert_int_eq(m[7 * PAGE], 1);
	ck_assert_int_eq(m[8 * PAGE], 0);          /* the read-only side reads */
	ufp_pager_destroy(p);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, many_threads_many_regions_keep_patterns, 0, 4);
	tcase_add_test(tc, handler_threads_never_fault_on_managed_memory);
	tcase_add_loop_test(tc, fork_child_never_sees_zeros_where_data_was, 0, 2);
	tcase_add_loop_test(tc, foreign_munmap_and_madvise_update_the_tree, 0, 2);
	tcase_add_test(tc, foreign_sigbus_goes_to_the_previous_handler);
	tcase_add_loop_test(tc, syscall_on_untouched_memory, 0, 2);
	tcase_add_test(tc, unregistered_threads_use_the_pager_lock_fallback);
	tcase_add_loop_test(tc, fault_around_stops_at_a_foreign_vma_edge, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ufp_test_require_uffd();
	return ufp_run_suite(faults_suite());
}
