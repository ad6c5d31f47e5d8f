/* SPDX-License-Identifier: MIT */
/* test_heap.c - ufp_heap_*: the malloc family on pager memory (jemalloc
 * arenas with ufpager extent hooks): sizes, alignment, realloc, data kept
 * through eviction, threads and their caches, fork, destroy, bad input. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ufp_test.h"

static const unsigned deliveries[] = { UFP_DELIVERY_SIGBUS, UFP_DELIVERY_HANDLER };

/* A byte pattern of object i (never all zero). */
static unsigned char pat(uintptr_t i, size_t k)
{
	return (unsigned char)((i * 131 + k * 7) | 1);
}

static void fill(void *p, size_t n, uintptr_t i)
{
	for (size_t k = 0; k < n; k++)
		((unsigned char *)p)[k] = pat(i, k);
}

static bool check(const void *p, size_t n, uintptr_t i)
{
	for (size_t k = 0; k < n; k++)
		if (((const unsigned char *)p)[k] != pat(i, k))
			return false;
	return true;
}

static struct ufp_heap_stats heap_stats(ufp_heap *h)
{
	struct ufp_heap_stats s = { .size = sizeof(s), .version = UFP_HEAP_STATS_VERSION };

	ck_assert_int_eq(ufp_heap_stats_get(h, &s), 0);
	return s;
}

/* Sizes from 0 to 4 MiB: usable size, alignment, contents, ownership,
 * and the memory is the pager's (its faults count). */
START_TEST(every_size_is_served_from_pager_memory)
{
	static const size_t sizes[] = { 0, 1, 8, 15, 16, 17, 100, 512, 1000, 4096, 5000,
					16384, 40000, 100000, 1 << 20, 4 << 20 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 1ull << 30);
	struct ufp_stats before = ufp_test_stats(p);
	ufp_heap *h;
	void *v[N];

	ck_assert_int_eq(ufp_heap_create(p, 0, &h), 0);
	for (unsigned i = 0; i < N; i++) {
		v[i] = ufp_heap_malloc(h, sizes[i]);
		ck_assert_ptr_nonnull(v[i]);
		ck_assert_uint_eq((uintptr_t)v[i] % (sizes[i] >= 16 ? 16 : 8), 0);
		ck_assert_uint_ge(ufp_heap_usable_size(h, v[i]), sizes[i]);
		ck_assert(ufp_heap_owns(h, v[i]));
		fill(v[i], sizes[i], i);
	}
	for (unsigned i = 0; i < N; i++)
		ck_assert_msg(check(v[i], sizes[i], i), "object %u (size %zu) changed", i, sizes[i]);
	struct ufp_stats after = ufp_test_stats(p);
	struct ufp_heap_stats hs = heap_stats(h);

	ck_assert_uint_gt(after.faults, before.faults);   /* pager memory */
	ck_assert_uint_gt(after.maps, before.maps);       /* extents from ufp_map */
	ck_assert_uint_ge(hs.mapped, (1 << 20) + (4 << 20));
	ck_assert_uint_ge(hs.allocated, (1 << 20) + (4 << 20));
	ck_assert_uint_eq(hs.thread_caches, 1);
	ck_assert(!ufp_heap_owns(h, &before));
	ck_assert(!ufp_heap_owns(h, NULL));
	for (unsigned i = 0; i < N; i++)
		ufp_heap_free(h, v[i]);
	ufp_heap_free(h, NULL);
	ck_assert_int_eq(ufp_heap_destroy(h), 0);
	/* every extent went back to the pager */
	ck_assert_uint_eq(ufp_test_stats(p).regions, 0);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(calloc_zeroes_and_checks_overflow)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 1ull << 30);
	ufp_heap *h;

	ck_assert_int_eq(ufp_heap_create(p, 0, &h), 0);
	/* dirty memory first, so calloc has something to zero */
	for (int round = 0; round < 2; round++) {
		void *a[64];

		for (int i = 0; i < 64; i++) {
			unsigned char *c = ufp_heap_calloc(h, 1 + i * 37, 3);

			ck_assert_ptr_nonnull(c);
			for (int k = 0; k < (1 + i * 37) * 3; k++)
				ck_assert_uint_eq(c[k], 0);
			memset(c, 0xee, (size_t)(1 + i * 37) * 3);
			a[i] = c;
		}
		for (int i = 0; i < 64; i++)
			ufp_heap_free(h, a[i]);
	}
	errno = 0;
	ck_assert_ptr_null(ufp_heap_calloc(h, SIZE_MAX / 2, 3));
	ck_assert_int_eq(errno, ENOMEM);
	ufp_heap_destroy(h);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(realloc_keeps_contents_across_size_classes)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 1ull << 30);
	ufp_heap *h;
	size_t n = 1;
	unsigned char *b;

	ck_assert_int_eq(ufp_heap_create(p, 0, &h), 0);
	b = ufp_heap_realloc(h, NULL, 1);         /* NULL: allocates */
	ck_assert_ptr_nonnull(b);
	fill(b, 1, 7);
	while (n < (8u << 20)) {
		size_t m = n * 3 + 1;

		b = ufp_heap_realloc(h, b, m);
		ck_assert_ptr_nonnull(b);
		ck_assert_msg(check(b, n, 7), "realloc %zu -> %zu lost the contents", n, m);
		fill(b, m, 7);
		n = m;
	}
	b = ufp_heap_realloc(h, b, 10);           /* shrink */
	ck_assert(check(b, 10, 7));
	ck_assert_ptr_null(ufp_heap_realloc(h, b, 0));   /* frees, as glibc */
	ufp_heap_destroy(h);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(aligned_alloc_honours_alignment_and_refuses_bad_ones)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 1ull << 30);
	ufp_heap *h;

	ck_assert_int_eq(ufp_heap_create(p, 0, &h), 0);
	for (size_t a = 1; a <= (4u << 20); a <<= 1)
		for (size_t s = 1; s < (1u << 20); s = s * 5 + 3) {
			void *x = ufp_heap_aligned_alloc(h, a, s);

			ck_assert_msg(x && (uintptr_t)x % a == 0, "aligned_alloc(%zu, %zu) = %p", a, s, x);
			memset(x, 0x5a, s);
			ufp_heap_free(h, x);
		}
	errno = 0;
	ck_assert_ptr_null(ufp_heap_aligned_alloc(h, 24, 100));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(ufp_heap_aligned_alloc(h, 0, 100));
	ck_assert_int_eq(errno, EINVAL);
	ufp_heap_destroy(h);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(bad_arguments_are_einval)
{
	ufp_pager *p = ufp_test_pager(UFP_DELIVERY_SIGBUS, 0, 1ull << 30);
	ufp_heap *h = (ufp_heap *)1;
	struct ufp_heap_stats s = { .size = sizeof(s), .version = 99 };

	ck_assert_int_eq(ufp_heap_create(p, 1u << 5, &h), -EINVAL);
	ck_assert_ptr_null(h);
	ck_assert(strstr(ufp_last_error(), "flags"));
	ck_assert_int_eq(ufp_heap_create(p, 0, NULL), -EINVAL);
	ck_assert_int_eq(ufp_heap_destroy(NULL), -EINVAL);
	ck_assert_int_eq(ufp_heap_create(p, 0, &h), 0);
	ck_assert_int_eq(ufp_heap_stats_get(h, &s), -EINVAL);
	ck_assert_int_eq(ufp_heap_stats_get(h, NULL), -EINVAL);
	ck_assert_uint_eq(ufp_heap_usable_size(h, NULL), 0);
	ck_assert(!ufp_heap_owns(NULL, p));
	ufp_heap_destroy(h);
	ufp_pager_destroy(p);
}
END_TEST

/* The objects outgrow the budget four times over: the heap's pages are
 * evicted and come back intact. */
START_TEST(objects_survive_eviction_under_a_budget)
{
	enum { N = 20000, SZ = 3000 };   /* ~60 MiB of objects */
	ufp_pager *p;
	ufp_heap *h;
	void **v;

	ufp_test_require_swap();
	p = ufp_test_budget_pager(deliveries[_i], 16 << 20);
	ck_assert_int_eq(ufp_heap_create(p, 0, &h), 0);
	v = calloc(N, sizeof(*v));
	for (uintptr_t i = 0; i < N; i++) {
		v[i] = ufp_heap_malloc(h, SZ - (i % 7) * 100);
		ck_assert_ptr_nonnull(v[i]);
		fill(v[i], SZ - (i % 7) * 100, i);
	}
	for (uintptr_t i = 0; i < N; i += 2) {     /* free half, reuse the holes */
		ufp_heap_free(h, v[i]);
		v[i] = ufp_heap_malloc(h, SZ - (i % 7) * 100);
		fill(v[i], SZ - (i % 7) * 100, i);
	}
	for (uintptr_t i = 0; i < N; i++)
		ck_assert_msg(check(v[i], SZ - (i % 7) * 100, i), "object %lu lost its data",
			      (unsigned long)i);
	struct ufp_stats st = ufp_test_stats(p);

	ck_assert_uint_gt(st.swapouts, 0);
	ck_assert_uint_gt(st.swapins, 0);
	/* the budget is a watermark that reclaim chases, not a hard cap: on a
	 * busy machine faults overshoot it for a while, but nowhere near the
	 * 60 MiB the objects take */
	ck_assert_uint_le(st.resident_pages * PAGE, 2 * (16u << 20) + (4u << 20));
	for (uintptr_t i = 0; i < N; i++)
		ufp_heap_free(h, v[i]);
	free(v);
	ufp_heap_destroy(h);
	ufp_pager_destroy(p);
}
END_TEST

/* Threads allocate and free across each other (a producer frees what a
 * consumer made), each through its own cache; caches go at thread exit. */
#define TT_THREADS 4
#define TT_SLOTS 4096
struct tt {
	ufp_heap *h;
	_Atomic(unsigned char *) slot[TT_SLOTS];
	_Atomic unsigned bad;
};

static void *tt_run(void *arg)
{
	struct tt *t = arg;
	unsigned seed = (unsigned)(uintptr_t)pthread_self();

	for (int it = 0; it < 60000; it++) {
		unsigned k = (unsigned)rand_r(&seed) % TT_SLOTS;
		size_t sz = 16 + (size_t)(rand_r(&seed) % (it % 97 == 0 ? 200000 : 600));
		unsigned char *n = ufp_heap_malloc(t->h, sz);

		if (!n) {
			t->bad++;
			continue;
		}
		memcpy(n, &sz, sizeof(sz));            /* its size first, */
		n[sz - 1] = (unsigned char)(k | 1);     /* its slot last */
		unsigned char *old = atomic_exchange(&t->slot[k], n);

		if (old) {
			size_t osz;

			memcpy(&osz, old, sizeof(osz));
			if (osz < 16 || osz > 200016 || old[osz - 1] != (unsigned char)(k | 1))
				t->bad++;
			ufp_heap_free(t->h, old);
		}
	}
	return NULL;
}

START_TEST(threads_share_a_heap_through_their_own_caches)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 4ull << 30);
	struct tt *t = calloc(1, sizeof(*t));
	pthread_t th[TT_THREADS];

	ck_assert_int_eq(ufp_heap_create(p, 0, &t->h), 0);
	for (int i = 0; i < TT_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, tt_run, t), 0);
	for (int i = 0; i < TT_THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_eq(t->bad, 0);
	/* the threads' caches went with them */
	ck_assert_uint_eq(heap_stats(t->h).thread_caches, 0);
	for (int k = 0; k < TT_SLOTS; k++)
		ufp_heap_free(t->h, t->slot[k]);
	/* SIGBUS delivery: the threads' faults went through RCU (the heap
	 * registered them); a fallback only where a region lock was taken by
	 * a structural op (a new extent merging next door) */
	struct ufp_stats st = ufp_test_stats(p);

	if (deliveries[_i] == UFP_DELIVERY_SIGBUS)
		ck_assert_uint_le(st.lock_fallback, st.lock_abort);
	ufp_heap_destroy(t->h);
	free(t);
	ufp_pager_destroy(p);
}
END_TEST

/* Two heaps on one pager never hand out each other's objects, and a heap
 * created in a slot a destroyed one had does not inherit its caches. */
START_TEST(heaps_are_separate_and_slots_are_reused_cleanly)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 4ull << 30);

	for (int round = 0; round < 3; round++) {
		ufp_heap *a, *b;
		void *x[256], *y[256];

		ck_assert_int_eq(ufp_heap_create(p, 0, &a), 0);
		ck_assert_int_eq(ufp_heap_create(p, 0, &b), 0);
		for (int i = 0; i < 256; i++) {
			x[i] = ufp_heap_malloc(a, 48);
			y[i] = ufp_heap_malloc(b, 48);
		}
		for (int i = 0; i < 256; i++)
			ufp_heap_free(a, x[i]);
		/* b must not get a's freed objects back */
		for (int i = 0; i < 256; i++) {
			void *z = ufp_heap_malloc(b, 48);

			for (int j = 0; j < 256; j++)
				ck_assert_ptr_ne(z, x[j]);
			ufp_heap_free(b, z);
		}
		for (int i = 0; i < 256; i++)
			ufp_heap_free(b, y[i]);
		ck_assert_int_eq(ufp_heap_destroy(a), 0);
		ck_assert_int_eq(ufp_heap_destroy(b), 0);
	}
	ck_assert_uint_eq(ufp_test_stats(p).regions, 0);
	ufp_pager_destroy(p);
}
END_TEST

/* A heap on kernel memory: the same calls, no pager. */
START_TEST(a_heap_without_pager_uses_kernel_memory)
{
	ufp_heap *h;
	void *v[100];

	ck_assert_int_eq(ufp_heap_create(NULL, 0, &h), 0);
	for (int i = 0; i < 100; i++) {
		v[i] = ufp_heap_malloc(h, (size_t)i * 999 + 1);
		fill(v[i], (size_t)i * 999 + 1, (uintptr_t)i);
		ck_assert(!ufp_heap_owns(h, v[i]));
	}
	for (int i = 0; i < 100; i++) {
		ck_assert(check(v[i], (size_t)i * 999 + 1, (uintptr_t)i));
		ufp_heap_free(h, v[i]);
	}
	ck_assert_int_eq(ufp_heap_destroy(h), 0);
}
END_TEST

/* A fork child keeps the parent's objects and allocates more (new
 * extents as plain memory inside the arena: the pager is inert there). */
START_TEST(a_fork_child_keeps_using_the_heap)
{
	ufp_pager *p = ufp_test_pager(deliveries[_i], 0, 1ull << 30);
	ufp_heap *h;
	void *v[64];
	pid_t pid;
	int status;

	ck_assert_int_eq(ufp_heap_create(p, 0, &h), 0);
	for (uintptr_t i = 0; i < 64; i++) {
		v[i] = ufp_heap_malloc(h, 1000 + i * 5000);
		fill(v[i], 1000 + i * 5000, i);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int bad = 0;

		for (uintptr_t i = 0; i < 64; i++)
			bad |= !check(v[i], 1000 + i * 5000, i);
		/* 64 MiB more: new extents */
		for (uintptr_t i = 0; i < 64; i++) {
			void *n = ufp_heap_malloc(h, 1 << 20);

			if (!n || !ufp_heap_owns(h, n)) {
				fprintf(stderr, "child: malloc %lu: %p\n", (unsigned long)i, n);
				bad |= 2;
				break;
			}
			fill(n, 1 << 20, i + 100);
			bad |= !check(n, 1 << 20, i + 100) << 2;
		}
		for (uintptr_t i = 0; i < 64; i++)
			ufp_heap_free(h, v[i]);
		_exit(bad);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	for (uintptr_t i = 0; i < 64; i++)
		ck_assert(check(v[i], 1000 + i * 5000, i));
	ufp_heap_destroy(h);
	ufp_pager_destroy(p);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;

	ufp_test_require_uffd();
	s = suite_create("heap");
	tc = tcase_create("heap");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, every_size_is_served_from_pager_memory, 0, 2);
	tcase_add_loop_test(tc, calloc_zeroes_and_checks_overflow, 0, 2);
	tcase_add_loop_test(tc, realloc_keeps_contents_across_size_classes, 0, 2);
	tcase_add_loop_test(tc, aligned_alloc_honours_alignment_and_refuses_bad_ones, 0, 2);
	tcase_add_test(tc, bad_arguments_are_einval);
	tcase_add_loop_test(tc, objects_survive_eviction_under_a_budget, 0, 2);
	tcase_add_loop_test(tc, threads_share_a_heap_through_their_own_caches, 0, 2);
	tcase_add_loop_test(tc, heaps_are_separate_and_slots_are_reused_cleanly, 0, 2);
	tcase_add_test(tc, a_heap_without_pager_uses_kernel_memory);
	tcase_add_loop_test(tc, a_fork_child_keeps_using_the_heap, 0, 2);
	suite_add_tcase(s, tc);
	return ufp_run_suite(s);
}
