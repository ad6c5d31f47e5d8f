/* SPDX-License-Identifier: MIT */
/*
 * test_preload - runs under `ufpagerctl run --budget 4M` (ctest) and checks
 * what the preload promises, from inside a program that knows nothing of
 * ufpager except how to read its own statistics segment: blocks of every
 * size (the heap) and large mappings land on the pager (its counters move) and keep their data
 * through eviction; munmap/mprotect/madvise/mremap are routed; read() into
 * untouched and evicted memory fills it; threads; the program's own
 * SIGSEGV handler; fork (the child keeps working, with a pager of its
 * own); dlopen; exec with and without the preload (UFP_TEST_EXEC_FOLLOW);
 * an exit without free leaves nothing in /dev/shm. No fork per test
 * (CK_NOFORK): the pager is the process's.
 */
#include <dlfcn.h>
#include <glob.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ufp_test.h"

#define MB (1ul << 20)

static char *self_exe;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This process's pager statistics, exported after now (the exporter
 * writes every 0.2 s). false when it has no segment. */
static bool own_stats(struct ufp_stats *out)
{
	char pat[64];
	glob_t g;
	uint64_t t0 = now_ns();

	snprintf(pat, sizeof(pat), UFP_SNAPSHOT_PATTERN, (int)getpid());
	for (int tries = 0; tries < 300; tries++) {
		if (!glob(pat, 0, NULL, &g)) {
			struct ufp_snapshot s = { .size = sizeof(s), .version = UFP_SNAPSHOT_VERSION };
			int r = ufp_snapshot_read(g.gl_pathv[0], &s);

			globfree(&g);
			if (!r && s.update_ns > t0) {
				*out = s.stats;
				return true;
			}
		}
		usleep(10000);
	}
	return false;
}

static void fill(void *p, size_t len, uint32_t gen)
{
	for (size_t o = 0; o + 8 <= len; o += 512)
		*(uint64_t *)((char *)p + o) = ufp_pattern((uintptr_t)o, gen);
}

static bool check(const void *p, size_t len, uint32_t gen)
{
	for (size_t o = 0; o + 8 <= len; o += 512)
		if (*(const uint64_t *)((const char *)p + o) != ufp_pattern((uintptr_t)o, gen))
			return false;
	return true;
}

START_TEST(large_blocks_are_paged_and_keep_data)
{
	struct ufp_stats s0, s1;
	size_t n = 24 * MB;   /* six times the budget */

	ck_assert(own_stats(&s0));
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(malloc_usable_size(p), n);
	fill(p, n, 1);
	ck_assert(check(p, n, 1));
	ck_assert(own_stats(&s1));
	ck_assert_uint_ge(s1.faults - s0.faults, n / PAGE / 16);
	ck_assert_uint_gt(s1.swapins, s0.swapins);   /* the check read evicted pages back */

	/* realloc grows and keeps the data; calloc is zeroed; memalign aligns */
	p = realloc(p, 2 * n);
	ck_assert_ptr_nonnull(p);
	ck_assert(check(p, n, 1));
	fill(p + n, n, 2);
	ck_assert(check(p + n, n, 2));
	free(p);
	unsigned char *z = calloc(MB, 3);
	for (size_t i = 0; i < 3 * MB; i += 777)
		ck_assert_uint_eq(z[i], 0);
	free(z);
	void *a = NULL;
	ck_assert_int_eq(posix_memalign(&a, 4096, 2 * MB), 0);
	ck_assert_uint_eq((uintptr_t)a % 4096, 0);
	fill(a, 2 * MB, 3);
	ck_assert(check(a, 2 * MB, 3));
	free(a);
	/* small blocks stay with the program's allocator and still work */
	char *s = malloc(100);
	strcpy(s, "small");
	s = realloc(s, 2 * MB);   /* moves onto the pager */
	ck_assert_str_eq(s, "small");
	s = realloc(s, 64);       /* and back */
	ck_assert_str_eq(s, "small");
	free(s);
}
END_TEST

/* A million small objects (the heap's slabs) three times the budget:
 * paged, swapped, every one read back. */
START_TEST(small_blocks_are_paged)
{
	enum { COUNT = 120000, SZ = 96 };
	struct ufp_stats s0, s1;
	uint64_t **v = malloc(COUNT * sizeof(*v));

	ck_assert(own_stats(&s0));
	for (size_t i = 0; i < COUNT; i++) {
		v[i] = malloc(SZ);
		ck_assert_ptr_nonnull(v[i]);
		for (size_t j = 0; j < SZ / 8; j++)
			v[i][j] = ufp_pattern(i, (uint32_t)j);
	}
	for (size_t i = 0; i < COUNT; i++)
		for (size_t j = 0; j < SZ / 8; j++)
			ck_assert_uint_eq(v[i][j], ufp_pattern(i, (uint32_t)j));
	ck_assert(own_stats(&s1));
	ck_assert_uint_gt(s1.swapouts, s0.swapouts);
	ck_assert_uint_gt(s1.swapins, s0.swapins);
	for (size_t i = 0; i < COUNT; i++)
		free(v[i]);
	free(v);
}
END_TEST

START_TEST(mappings_are_routed)
{
	struct ufp_stats s0, s1;
	size_t n = 16 * MB;

	ck_assert(own_stats(&s0));
	char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	fill(m, n, 4);
	ck_assert_int_eq(mprotect(m, MB, PROT_READ), 0);
	ck_assert(check(m, MB, 4));
	ck_assert_int_eq(mprotect(m, MB, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(madvise(m + MB, MB, MADV_DONTNEED), 0);
	for (size_t o = MB; o < 2 * MB; o += 4096)
		ck_assert_uint_eq(*(uint64_t *)(m + o), 0);
	char *r = mremap(m, n, 2 * n, MREMAP_MAYMOVE);
	ck_assert_ptr_ne(r, MAP_FAILED);
	ck_assert(check(r, MB, 4));
	for (size_t o = 2 * MB; o < n; o += 512)
		ck_assert_uint_eq(*(uint64_t *)(r + o), ufp_pattern((uintptr_t)o, 4));
	for (size_t o = n; o < 2 * n; o += 4096)
		ck_assert_uint_eq(*(uint64_t *)(r + o), 0);
	r = mremap(r, 2 * n, n, 0);   /* shrink in place */
	ck_assert_ptr_ne(r, MAP_FAILED);
	ck_assert_int_eq(munmap(r, n), 0);
	ck_assert(own_stats(&s1));
	ck_assert_uint_ge(s1.protects - s0.protects, 2);
	ck_assert_uint_ge(s1.advises - s0.advises, 1);
	ck_assert_uint_ge(s1.unmaps - s0.unmaps, 2);
	ck_assert_uint_ge(s1.maps - s0.maps, 2);
}
END_TEST

static void *pipe_writer(void *arg)
{
	int fd = *(int *)arg;
	char *buf = malloc(64 * 1024);

	for (size_t o = 0; o < 8 * MB; o += 64 * 1024) {
		for (size_t i = 0; i < 64 * 1024; i += 512)
			*(uint64_t *)(buf + i) = ufp_pattern((uintptr_t)(o + i), 5);
		ck_assert_int_eq(write(fd, buf, 64 * 1024), 64 * 1024);
	}
	free(buf);
	close(fd);
	return NULL;
}

/* A system call writes into never-touched and into evicted pages: the
 * kernel waits for the pager (handler delivery), no EFAULT, no loss. */
START_TEST(read_into_untouched_and_evicted_memory)
{
	size_t n = 8 * MB;
	char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *other = malloc(16 * MB);
	int fds[2];
	pthread_t t;

	for (int round = 0; round < 2; round++) {
		if (round == 1) {   /* evict m: touch twice the budget elsewhere */
			fill(m, n, 9);
			fill(other, 16 * MB, 6);
		}
		ck_assert_int_eq(pipe(fds), 0);
		pthread_create(&t, NULL, pipe_writer, &fds[1]);
		size_t got = 0;
		while (got < n) {
			ssize_t k = read(fds[0], m + got, n - got);

			ck_assert_msg(k > 0, "read: %zd %s", k, strerror(errno));
			got += (size_t)k;
		}
		pthread_join(t, NULL);
		close(fds[0]);
		ck_assert(check(m, n, 5));
	}
	ck_assert(check(other, 16 * MB, 6));
	free(other);
	munmap(m, n);
}
END_TEST

static void *thread_work(void *arg)
{
	uintptr_t id = (uintptr_t)arg;

	for (int i = 0; i < 6; i++) {
		char *p = malloc(2 * MB + id * 4096);

		fill(p, 2 * MB, (uint32_t)(id * 100 + i));
		if (!check(p, 2 * MB, (uint32_t)(id * 100 + i)))
			return (void *)1;
		free(p);
	}
	return NULL;
}

START_TEST(threads_of_the_program)
{
	pthread_t t[4];
	void *ret;

	for (uintptr_t i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, thread_work, (void *)i), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], &ret);
		ck_assert_ptr_null(ret);
	}
}
END_TEST

static char *guarded;
static volatile sig_atomic_t segvs;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	char *a = si->si_addr;

	if (a < guarded || a >= guarded + MB)
		abort();
	segvs++;
	mprotect(guarded, MB, PROT_READ | PROT_WRITE);   /* the GC-barrier pattern */
}

/* A program's own SIGSEGV handler sees its own protection faults on
 * paged memory, and its mprotect in the handler lets the access retry. */
START_TEST(programs_own_sigsegv_handler)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO }, old;

	guarded = mmap(NULL, MB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(guarded, MAP_FAILED);
	sigaction(SIGSEGV, &sa, &old);
	guarded[12345] = 7;
	sigaction(SIGSEGV, &old, NULL);
	ck_assert_int_eq(segvs, 1);
	ck_assert_int_eq(guarded[12345], 7);
	munmap(guarded, MB);
}
END_TEST

/* The child reads the parent's data, allocates from the heap it inherited
 * (plain memory now) and maps on a pager of its own, frees what it
 * inherited; the parent's memory is untouched by all that. */
START_TEST(fork_child_keeps_working)
{
	size_t n = 8 * MB;
	char *p = malloc(n);
	int st;

	fill(p, n, 11);
	pid_t c = fork();
	ck_assert_int_ge(c, 0);
	if (c == 0) {
		struct ufp_stats s;
		bool ok = check(p, n, 11);
		char *q = malloc(n);

		fill(q, n, 12);
		ok = ok && check(q, n, 12);
		/* a large mapping: on a pager of the child's own */
		char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		fill(m, n, 15);
		ok = ok && check(m, n, 15);
		ok = ok && own_stats(&s) && s.faults > 0 && s.maps > 0;
		munmap(m, n);
		free(p);
		free(q);
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	ck_assert(check(p, n, 11));
	free(p);
}
END_TEST

START_TEST(dlopen_library_allocates_through_preload)
{
	void *z = dlopen("libz.so.1", RTLD_NOW);

	if (!z) {
		printf("dlopen libz.so.1: %s (zlib missing): part skipped\n", dlerror());
		return;
	}
	int (*compress2)(unsigned char *, unsigned long *, const unsigned char *, unsigned long,
			 int) = (int (*)(unsigned char *, unsigned long *, const unsigned char *,
					 unsigned long, int))dlsym(z, "compress2");
	int (*uncompress)(unsigned char *, unsigned long *, const unsigned char *,
			  unsigned long) = (int (*)(unsigned char *, unsigned long *,
						    const unsigned char *, unsigned long))
		dlsym(z, "uncompress");
	ck_assert(compress2 && uncompress);
	size_t n = 4 * MB;
	unsigned char *src = malloc(n), *dst = malloc(n + MB), *back = malloc(n);
	unsigned long dl = n + MB, bl = n;

	fill(src, n, 13);
	ck_assert_int_eq(compress2(dst, &dl, src, n, 6), 0);
	ck_assert_int_eq(uncompress(back, &bl, dst, dl), 0);
	ck_assert_uint_eq(bl, n);
	ck_assert(!memcmp(src, back, n));
	free(src);
	free(dst);
	free(back);
	dlclose(z);
}
END_TEST

static int run_self(const char *mode, pid_t *pid)
{
	int st;
	pid_t c = fork();

	if (c == 0) {
		execl(self_exe, self_exe, mode, (char *)NULL);
		_exit(127);
	}
	*pid = c;
	waitpid(c, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(exec_follows_or_not)
{
	const char *f = getenv("UFP_TEST_EXEC_FOLLOW");
	int want = f && !strcmp(f, "0") ? 3 : 0;
	pid_t c;

	ck_assert_int_eq(run_self("probe", &c), want);
}
END_TEST

START_TEST(exit_without_free_leaves_nothing)
{
	const char *modes[] = { "leak", "leak_exit" };
	char pat[64];
	glob_t g;
	pid_t c;

	if (getenv("UFP_TEST_EXEC_FOLLOW") && !strcmp(getenv("UFP_TEST_EXEC_FOLLOW"), "0"))
		return;   /* the exec'd program runs without the preload */
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(run_self(modes[i], &c), 0);
		snprintf(pat, sizeof(pat), UFP_SNAPSHOT_PATTERN, (int)c);
		ck_assert_msg(glob(pat, 0, NULL, &g) == GLOB_NOMATCH, "%s left %s", modes[i],
			      g.gl_pathc ? g.gl_pathv[0] : "?");
	}
}
END_TEST

/*
 * Regression: the service threads resolved their PLT entries lazily, and
 * the dynamic linker's lookup walks the link maps of every library, which
 * it allocates with the program's malloc: the heap, pager memory. A
 * library dlopen'd after the heap started, its link map evicted, then the
 * first swap-in called LZ4_decompress_safe through the PLT on a handler
 * thread: the handler faulted on managed memory and every thread hung.
 * Fixed by binding at load (-z now for the library, LD_BIND_NOW in run).
 */
static int lazy_bind_child(void)
{
	size_t n = 32 * MB;   /* eight times the budget */

	alarm(60);            /* the hang: SIGALRM ends the child, the test fails */
	if (!dlopen("libz.so.1", RTLD_NOW | RTLD_GLOBAL))
		return 5;
	char *p = malloc(n);
	fill(p, n, 16);          /* evicts the link map's page too */
	return check(p, n, 16) ? 0 : 6;   /* the first swap-ins */
}

START_TEST(service_threads_never_bind_lazily)
{
	pid_t c;

	ck_assert_int_eq(run_self("lazybind", &c), 0);
}
END_TEST

static int child_mode(const char *mode)
{
	if (!strcmp(mode, "lazybind"))
		return lazy_bind_child();
	if (!strcmp(mode, "probe")) {
		FILE *f = fopen("/proc/self/maps", "r");
		char line[512];
		int found = 0;

		while (f && fgets(line, sizeof(line), f))
			found |= strstr(line, "libufpager_preload") != NULL;
		if (f)
			fclose(f);
		return found ? 0 : 3;
	}
	/* leak, leak_exit: a pager with a segment, then an end without free */
	char *p = malloc(4 * MB);
	struct ufp_stats s;

	fill(p, 4 * MB, 14);
	if (!own_stats(&s))
		return 4;
	if (!strcmp(mode, "leak_exit"))
		_exit(0);
	return 0;
}

int main(int argc, char **argv)
{
	struct ufp_stats s;

	self_exe = argv[0];
	if (argc > 1)
		return child_mode(argv[1]);
	/* a first large block starts the pager; without a segment there is none */
	free(malloc(2 * MB));
	if (!own_stats(&s)) {
		printf("SKIP: no ufpager segment for this process: not run under `ufpagerctl run`, "
		       "or userfaultfd unavailable (`ufpagerctl check`)\n");
		return UFP_SKIP;
	}
	Suite *su = suite_create("preload");
	TCase *tc = tcase_create("preload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, large_blocks_are_paged_and_keep_data);
	tcase_add_test(tc, small_blocks_are_paged);
	tcase_add_test(tc, mappings_are_routed);
	tcase_add_test(tc, read_into_untouched_and_evicted_memory);
	tcase_add_test(tc, threads_of_the_program);
	tcase_add_test(tc, programs_own_sigsegv_handler);
	tcase_add_test(tc, fork_child_keeps_working);
	tcase_add_test(tc, dlopen_library_allocates_through_preload);
	tcase_add_test(tc, exec_follows_or_not);
	tcase_add_test(tc, exit_without_free_leaves_nothing);
	tcase_add_test(tc, service_threads_never_bind_lazily);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
