/* SPDX-License-Identifier: MIT */
/*
 * test_sys_calls.c - the library's own memory system calls never go
 * through the mmap/munmap/mprotect/madvise/mremap symbols, which a program
 * (or `ufpagerctl run`'s preload) may interpose. This test interposes
 * them and counts every call it did not make itself, while a pager maps,
 * protects, discards, unmaps and evicts through a budget.
 *
 * Before src/sys.h the library called libc's symbols: under the preload a
 * MAP_FIXED that ufp_unmap made over an arena range became ufp_unmap again
 * inside ufp_unmap, which waited for its own pager lock (a JVM hung at
 * exit under `ufpagerctl run`, CI's app_java); and the library's slab and
 * staging would have been put on a pager.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "ufp_test.h"

static _Atomic long foreign;   /* calls this test did not make */
static __thread int mine;      /* the test's own calls */

static void count(void)
{
	if (!mine)
		atomic_fetch_add(&foreign, 1);
}

void *mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	count();
	return (void *)syscall(SYS_mmap, a, l, p, f, fd, o);
}

void *mmap64(void *a, size_t l, int p, int f, int fd, off_t o)
{
	count();
	return (void *)syscall(SYS_mmap, a, l, p, f, fd, o);
}

int munmap(void *a, size_t l)
{
	count();
	return (int)syscall(SYS_munmap, a, l);
}

int mprotect(void *a, size_t l, int p)
{
	count();
	return (int)syscall(SYS_mprotect, a, l, p);
}

int madvise(void *a, size_t l, int adv)
{
	count();
	return (int)syscall(SYS_madvise, a, l, adv);
}

void *mremap(void *o, size_t ol, size_t nl, int f, ...)
{
	va_list ap;
	void *n;

	va_start(ap, f);
	n = va_arg(ap, void *);
	va_end(ap);
	count();
	return (void *)syscall(SYS_mremap, o, ol, nl, f, n);
}

START_TEST(library_memory_calls_bypass_interposers)
{
	const size_t n = 1024;   /* 4 MiB over a 1 MiB budget */
	ufp_pager *p;
	char *m;
	long before;

	mine = 1;
	p = ufp_test_budget_pager(UFP_DELIVERY_SIGBUS, 1 << 20);
	mine = 0;
	before = atomic_load(&foreign);
	ck_assert_int_eq(ufp_map(p, NULL, n * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (size_t i = 0; i < n; i++)
		ufp_fill_rand(m + i * PAGE, 3);
	ck_assert_int_eq(ufp_advise(p, m, n * PAGE, UFP_ADV_PAGEOUT), 0);
	ck_assert_int_eq(ufp_protect(p, m + 8 * PAGE, 8 * PAGE, UFP_PROT_READ), 0);
	ck_assert_int_eq(ufp_protect(p, m + 8 * PAGE, 8 * PAGE, UFP_PROT_ALL), 0);
	ck_assert_int_eq(ufp_advise(p, m + 32 * PAGE, 8 * PAGE, UFP_ADV_DONTNEED), 0);
	for (size_t i = 0; i < n; i++)
		if (i < 32 || i >= 40)
			ck_assert(ufp_check_rand(m + i * PAGE, 3));
	ck_assert_int_eq(ufp_unmap(p, m + 64 * PAGE, 64 * PAGE), 0);
	ck_assert_int_eq(ufp_unmap(p, m, 64 * PAGE), 0);
	ck_assert_int_eq(ufp_unmap(p, m + 128 * PAGE, (n - 128) * PAGE), 0);
	ck_assert_msg(atomic_load(&foreign) == before,
		      "%ld memory calls of the library went through the interposable symbols",
		      atomic_load(&foreign) - before);
	mine = 1;
	ufp_pager_destroy(p);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;

	/* before the runner: an exit(77) inside a forked test is an error */
#if defined(UFP_SANITIZE_BUILD) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	printf("SKIP: sanitizer builds use libc's calls on purpose (src/sys.h)\n");
	return UFP_SKIP;
#endif
	mine = 1;
	ufp_test_require_swap();
	mine = 0;
	s = suite_create("sys_calls");
	tc = tcase_create("sys_calls");

	tcase_add_test(tc, library_memory_calls_bypass_interposers);
	suite_add_tcase(s, tc);
	return ufp_run_suite(s);
}
