/* SPDX-License-Identifier: MIT */
/*
 * test_sandbox.c - the seccomp allowlist of the service threads
 * (src/sandbox.c): a forbidden call from each kind of service thread ends
 * that thread alone, with one line on stderr naming it, while the pager
 * keeps working and is destroyed without hanging; a full swap workload
 * (eviction, swap-in, foreign events, the exporter) runs under the filters
 * in both deliveries; the switch (flag and environment) turns it off; a
 * SIGSYS on an application thread still reaches the application's handler.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"
#include "sandbox.h"

static ufp_pager *make_pager(unsigned delivery, uint64_t budget, unsigned flags)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .delivery = delivery,
		.budget = budget, .swap_size = 64 << 20, .ztier_size = 4096,
		.handler_threads = 2, .arena_size = 1ull << 30, .flags = flags,
	};
	ufp_pager *p = NULL;
	int r = ufp_pager_create(&pr, &p);

	ck_assert_msg(r == 0, "create: %d %s", r, ufp_last_error());
	return p;
}

/* Threads of this process whose name is `name`. */
static int threads_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		int fd;
		ssize_t k;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		k = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (k > 0 && comm[k - 1] == '\n')
			comm[k - 1] = 0;
		if (!strcmp(comm, name))
			n++;
	}
	closedir(d);
	return n;
}

static bool wait_for(ufp_pager *p, bool (*cond)(ufp_pager *));
static bool evicted(ufp_pager *p);

/* Write and read back `pages` pages with patterns (faults, and with a
 * budget smaller than the set, evictions and swap-ins: with want_swap,
 * the first round waits for the reclaim thread to have evicted, so a
 * loaded machine that starves it still sees the swap path). */
static void touch_and_check(ufp_pager *p, size_t pages, int rounds, bool want_swap)
{
	char *b;

	ck_assert_int_eq(ufp_map(p, NULL, pages * PAGE, UFP_PROT_READ | UFP_PROT_WRITE, 0,
				 (void **)&b), 0);
	for (int g = 1; g <= rounds; g++) {
		for (size_t i = 0; i < pages; i++)
			ufp_fill_page(b + i * PAGE, (uint32_t)g);
		if (g == 1 && want_swap)
			ck_assert_msg(wait_for(p, evicted), "reclaim never evicted");
		for (size_t i = 0; i < pages; i++)
			ck_assert_msg(ufp_check_page(b + i * PAGE, (uint32_t)g) == 0,
				      "page %zu of round %d", i, g);
	}
	ck_assert_int_eq(ufp_unmap(p, b, pages * PAGE), 0);
}

/* stderr into a memfd, so the kill line can be read back. */
static int capture_stderr(int *saved)
{
	int fd = memfd_create("stderr", 0);

	ck_assert_int_ge(fd, 0);
	*saved = dup(2);
	dup2(fd, 2);
	return fd;
}

static void read_capture(int fd, int saved, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = 0;
	dup2(saved, 2);
	close(saved);
	close(fd);
	fputs(buf, stderr);   /* keep it visible in the test log */
}

static bool wait_for(ufp_pager *p, bool (*cond)(ufp_pager *))
{
	for (int i = 0; i < 1000; i++) {
		if (cond(p))
			return true;
		usleep(5000);
	}
	return false;
}

static bool evicted(ufp_pager *p)
{
	return ufp_test_stats(p).swapouts > 0;
}

static bool events_applied(ufp_pager *p)
{
	struct ufp_stats s = ufp_test_stats(p);

	return s.events_remove >= 1 && s.events_unmap >= 2 && s.events_remap >= 1;
}

static bool one_kill(ufp_pager *p)
{
	return ufp_test_stats(p).sandbox_kills >= 1;
}

static bool call_done(ufp_pager *p)
{
	(void)p;
	return atomic_load(&sandbox_test_call.done) != 0;
}

/* ---- a forbidden call ends that thread, and only that thread ---------- */

static const struct kill_case {
	enum sandbox_role role;
	unsigned delivery;
	uint64_t budget;
	enum sandbox_test_what what;
	long nr;                   /* the system call the line must name */
	const char *name;          /* its thread name */
} kill_cases[] = {
	{ SB_HANDLER, UFP_DELIVERY_HANDLER, 1 << 20, SB_TEST_SOCKET, SYS_socket, "ufp-handler" },
	{ SB_HANDLER, UFP_DELIVERY_HANDLER, 1 << 20, SB_TEST_IOCTL, SYS_ioctl, "ufp-handler" },
	{ SB_EVENT_READER, UFP_DELIVERY_SIGBUS, 0, SB_TEST_SOCKET, SYS_socket, "ufp-evreader" },
	{ SB_EVENT_WORKER, UFP_DELIVERY_SIGBUS, 0, SB_TEST_SOCKET, SYS_socket, "ufp-events" },
	{ SB_EVENT_WORKER, UFP_DELIVERY_HANDLER, 0, SB_TEST_WRITE_STDOUT, SYS_write, "ufp-events" },
	{ SB_RECLAIM, UFP_DELIVERY_SIGBUS, 1 << 20, SB_TEST_SOCKET, SYS_socket, "ufp-reclaim" },
	{ SB_RECLAIM, UFP_DELIVERY_HANDLER, 1 << 20, SB_TEST_MMAP_EXEC, SYS_mmap, "ufp-reclaim" },
	{ SB_EXPORTER, UFP_DELIVERY_SIGBUS, 0, SB_TEST_SOCKET, SYS_socket, "ufp-export" },
	{ SB_EXPORTER, UFP_DELIVERY_SIGBUS, 1 << 20, SB_TEST_IOCTL, SYS_ioctl, "ufp-export" },
	{ SB_WATCHDOG, UFP_DELIVERY_HANDLER, 0, SB_TEST_SOCKET, SYS_socket, "ufp-watchdog" },
};

START_TEST(forbidden_call_ends_only_that_thread_with_a_logged_reason)
{
	const struct kill_case *k = &kill_cases[_i];
	char line[4096], want[128];
	int saved, fd, before;
	ufp_pager *p;
	struct ufp_stats s;

	sandbox_test_call.what = k->what;
	atomic_store(&sandbox_test_call.armed_role, (int)k->role + 1);
	fd = capture_stderr(&saved);
	p = make_pager(k->delivery, k->budget, 0);
	ck_assert_msg(wait_for(p, one_kill), "the forbidden call was not stopped");
	read_capture(fd, saved, line, sizeof(line));
	ck_assert_int_eq(atomic_load(&sandbox_test_call.done), 0);   /* never returned */
	snprintf(want, sizeof(want), "sandbox: the %s thread", sandbox_role_name(k->role));
	ck_assert_msg(strstr(line, want), "no line naming the thread: %s", line);
	snprintf(want, sizeof(want), "forbidden system call %ld(", k->nr);
	ck_assert_msg(strstr(line, want), "no line naming call %ld: %s", k->nr, line);

	/* that thread is gone, its siblings are not */
	before = k->role == SB_HANDLER ? 1 : 0;
	for (int i = 0; i < 200 && threads_named(k->name) != before; i++)
		usleep(5000);
	ck_assert_int_eq(threads_named(k->name), before);
	s = ufp_test_stats(p);
	ck_assert_uint_eq(s.sandbox_kills, 1);
	ck_assert_uint_eq(s.sandbox_unavailable, 0);
	/* the pager still serves faults (no reclaim left to evict, when that
	 * was the one killed: stay under the budget) */
	touch_and_check(p, k->role == SB_RECLAIM ? 64 : 512, 2, false);
	ck_assert_int_eq(ufp_pager_destroy(p), 0);   /* joins the dead thread */
}
END_TEST

/* ---- what the threads do is allowed --------------------------------- */

START_TEST(swap_workload_runs_under_the_filters)
{
	unsigned delivery = _i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS;
	ufp_pager *p = make_pager(delivery, 1 << 20, 0);   /* 256 pages, export on */
	/* events, reclaim, export, watchdog, handlers/reader */
	unsigned expect = 4 + (_i ? 2 : 1);
	struct ufp_stats s;
	char *b, *m;

	touch_and_check(p, 2048, 3, true);                  /* 8x the budget */
	/* foreign events for the event worker: DONTNEED (REMOVE), munmap
	 * (UNMAP) and mremap (REMAP) of managed memory */
	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_READ | UFP_PROT_WRITE, 0,
				 (void **)&b), 0);
	memset(b, 7, 64 * PAGE);
	ck_assert_int_eq(madvise(b, 8 * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_eq(b[0], 0);
	ck_assert_int_eq(munmap(b + 8 * PAGE, 8 * PAGE), 0);
	m = mremap(b + 32 * PAGE, 8 * PAGE, 8 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		   b + 16 * PAGE);
	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_int_eq(m[0], 7);
	/* the event worker applies them: REMOVE, two UNMAPs (munmap and the
	 * mremap target), REMAP */
	ck_assert_msg(wait_for(p, events_applied), "foreign events not applied");
	usleep(400 * 1000);                                 /* two exporter rounds */
	for (int i = 0; i < 500 && ufp_test_stats(p).sandbox_threads < expect; i++)
		usleep(10000);   /* a loaded machine may start a thread late */
	s = ufp_test_stats(p);
	ck_assert_uint_gt(s.swapouts, 0);
	ck_assert_uint_gt(s.swapins, 0);
	ck_assert_uint_gt(s.events_remove + s.events_unmap + s.events_remap, 0);
	ck_assert_uint_eq(s.sandbox_threads, expect);
	ck_assert_uint_eq(s.sandbox_unavailable, 0);
	ck_assert_uint_eq(s.sandbox_kills, 0);
	ck_assert_uint_eq(s.pages_poisoned, 0);
	ck_assert_int_eq(ufp_pager_destroy(p), 0);
}
END_TEST

static bool unmap_applied(ufp_pager *p)
{
	return ufp_test_stats(p).events_unmap >= 1;
}

/* liburcu starts its call_rcu worker from the first thread to call_rcu:
 * here the event worker (a foreign munmap frees a region before the
 * application did any structural op). The worker inherits the event
 * worker's filter (and its name), and deferred frees still complete. */
START_TEST(event_worker_may_start_the_call_rcu_worker)
{
	ufp_pager *p = make_pager(_i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS, 0,
				  UFP_PF_NO_EXPORT);
	char *b;

	for (int i = 0; i < 400 && threads_named("ufp-events") < 1; i++)
		usleep(5000);                 /* named as it enters its filter */
	ck_assert_int_eq(threads_named("ufp-events"), 1);
	ck_assert_int_eq(ufp_map(p, NULL, 16 * PAGE, UFP_PROT_READ | UFP_PROT_WRITE, 0,
				 (void **)&b), 0);
	memset(b, 5, 16 * PAGE);
	ck_assert_int_eq(munmap(b + 4 * PAGE, 4 * PAGE), 0);   /* split, detach */
	ck_assert(wait_for(p, unmap_applied));
	for (int i = 0; i < 200 && threads_named("ufp-events") < 2; i++)
		usleep(5000);
	ck_assert_int_eq(threads_named("ufp-events"), 2);
	ck_assert_int_eq(b[15 * PAGE], 5);
	ck_assert_int_eq(ufp_unmap(p, b, 4 * PAGE), 0);
	usleep(50 * 1000);                  /* a grace period and its naps */
	ck_assert_uint_eq(ufp_test_stats(p).sandbox_kills, 0);
	ck_assert_int_eq(ufp_pager_destroy(p), 0);   /* waits for the deferred frees */
}
END_TEST

/* glibc's malloc opens /proc and /sys files lazily on whichever thread
 * comes first: a service thread gets EACCES and lives on. */
START_TEST(opening_a_file_fails_without_ending_the_thread)
{
	static const enum sandbox_role roles[] = { SB_RECLAIM, SB_EVENT_WORKER, SB_HANDLER };
	ufp_pager *p;
	struct ufp_stats s;

	sandbox_test_call.what = SB_TEST_OPEN;
	atomic_store(&sandbox_test_call.armed_role, (int)roles[_i] + 1);
	p = make_pager(UFP_DELIVERY_HANDLER, 1 << 20, UFP_PF_NO_EXPORT);
	ck_assert_msg(wait_for(p, call_done), "the call never returned");
#if defined(UFP_SANITIZE_BUILD) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* sanitizer runtimes read files to symbolize reports: allowed there */
	ck_assert_int_ge(atomic_load(&sandbox_test_call.result), 0);
#else
	ck_assert_int_eq(atomic_load(&sandbox_test_call.result), -EACCES);
#endif
	touch_and_check(p, 1024, 2, true);
	s = ufp_test_stats(p);
	ck_assert_uint_eq(s.sandbox_kills, 0);
	ck_assert_uint_eq(s.sandbox_threads, 5);   /* + the watchdog */
	ck_assert_msg(s.swapouts > 0, "no swapouts: resident %llu waits %llu unavailable %llu full %llu",
		      (unsigned long long)s.resident_pages, (unsigned long long)s.reclaim_waits,
		      (unsigned long long)s.sandbox_unavailable,
		      (unsigned long long)s.swap_full_events);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- the switch ------------------------------------------------------ */

START_TEST(the_switch_turns_the_sandbox_off)
{
	/* 0: UFP_PF_NO_SANDBOX; 1: UFPAGER_SANDBOX=0 */
	ufp_pager *p;
	struct ufp_stats s;

	if (_i)
		setenv("UFPAGER_SANDBOX", "0", 1);
	sandbox_test_call.what = SB_TEST_SOCKET;
	atomic_store(&sandbox_test_call.armed_role, SB_RECLAIM + 1);
	p = make_pager(UFP_DELIVERY_HANDLER, 1 << 20, _i ? 0 : UFP_PF_NO_SANDBOX);
	ck_assert_msg(wait_for(p, call_done), "the reclaim thread never made the call");
	ck_assert_int_ge(atomic_load(&sandbox_test_call.result), 0);   /* a socket */
	touch_and_check(p, 1024, 2, true);
	s = ufp_test_stats(p);
	ck_assert_uint_eq(s.sandbox_threads, 0);
	ck_assert_uint_eq(s.sandbox_kills, 0);
	ck_assert_uint_eq(s.sandbox_unavailable, 0);
	ck_assert_uint_gt(s.swapouts, 0);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- the application's own SIGSYS ------------------------------------ */

static _Atomic int app_sigsys_code = -1;

static void app_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	atomic_store(&app_sigsys_code, si->si_code);
}

static void *app_filtered_thread(void *arg)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	long *r = arg;

	/* the application's own filter: getppid traps */
	seccomp_rule_add(f, SCMP_ACT_TRAP, SCMP_SYS(getppid), 0);
	ck_assert_int_eq(seccomp_load(f), 0);
	seccomp_release(f);
	*r = syscall(SYS_getppid);
	return NULL;
}

START_TEST(sigsys_of_application_threads_reaches_their_handler)
{
	struct sigaction sa = { .sa_sigaction = app_sigsys, .sa_flags = SA_SIGINFO };
	ufp_pager *p;
	pthread_t t;
	long r = 0;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGSYS, &sa, NULL), 0);
	p = make_pager(UFP_DELIVERY_HANDLER, 1 << 20, UFP_PF_NO_EXPORT);
	touch_and_check(p, 64, 1, false);   /* the service threads are up: ours is installed */
	/* a seccomp trap on an application thread */
	pthread_create(&t, NULL, app_filtered_thread, &r);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&app_sigsys_code), 1);   /* SYS_SECCOMP */
	/* and a plain one */
	atomic_store(&app_sigsys_code, -1);
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
	ck_assert_int_eq(atomic_load(&app_sigsys_code), SI_TKILL);
	ck_assert_uint_eq(ufp_test_stats(p).sandbox_kills, 0);
	ufp_pager_destroy(p);
}
END_TEST

static Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, forbidden_call_ends_only_that_thread_with_a_logged_reason, 0,
			    sizeof(kill_cases) / sizeof(kill_cases[0]));
	tcase_add_loop_test(tc, swap_workload_runs_under_the_filters, 0, 2);
	tcase_add_loop_test(tc, event_worker_may_start_the_call_rcu_worker, 0, 2);
	tcase_add_loop_test(tc, opening_a_file_fails_without_ending_the_thread, 0, 3);
	tcase_add_loop_test(tc, the_switch_turns_the_sandbox_off, 0, 2);
	tcase_add_test(tc, sigsys_of_application_threads_reaches_their_handler);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct ufp_probe pr = { .size = sizeof(pr), .version = 1 };

	ufp_test_require_uffd();
	ufp_probe_machine(&pr);
	if (!(pr.uffd_features & UFFD_FEATURE_MOVE)) {
		printf("SKIP: kernel lacks UFFD_FEATURE_MOVE (the swap workload needs UFFDIO_MOVE)\n");
		return UFP_SKIP;
	}
	if (pr.io_uring_errno) {
		printf("SKIP: io_uring unavailable (%s)\n", strerror(pr.io_uring_errno));
		return UFP_SKIP;
	}
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
		printf("SKIP: this kernel has no seccomp (CONFIG_SECCOMP=n)\n");
		return UFP_SKIP;
	}
	return ufp_run_suite(sandbox_suite());
}
