/* SPDX-License-Identifier: MIT */
/* ufp_test.h - helpers shared by the Check suites: skipping when the
 * kernel lacks userfaultfd, pager construction, page patterns. */
#ifndef UFP_TEST_H
#define UFP_TEST_H

#include <check.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ufpager.h"

#define UFP_SKIP 77
#define PAGE 4096UL

/* Exit 77 (CTest skip) with the reason when userfaultfd is unusable here. */
static inline void ufp_test_require_uffd(void)
{
	ufp_pager *p;
	int r = ufp_pager_create(NULL, &p);

	if (r == -EPERM || r == -ENOSYS || r == -EACCES || r == -EOPNOTSUPP) {
		printf("SKIP: userfaultfd unavailable: %s\n", ufp_last_error());
		exit(UFP_SKIP);
	}
	if (r) {
		printf("FAIL: ufp_pager_create: %d %s\n", r, ufp_last_error());
		exit(1);
	}
	ufp_pager_destroy(p);
}

static inline ufp_pager *ufp_test_pager(unsigned delivery, unsigned lock_mode, uint64_t arena)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.delivery = delivery, .lock_mode = lock_mode, .arena_size = arena,
		.flags = UFP_PF_NO_EXPORT,
	};
	ufp_pager *p = NULL;
	int r = ufp_pager_create(&pr, &p);

	ck_assert_msg(r == 0, "ufp_pager_create: %d %s", r, ufp_last_error());
	return p;
}

/* A page pattern derived from its address and a generation. */
static inline uint64_t ufp_pattern(uintptr_t page, uint32_t gen)
{
	uint64_t x = (uint64_t)page * 0x9E3779B97F4A7C15ull ^ gen;

	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	return x ^ (x >> 29) ^ 1;  /* never 0: 0 means "never written" */
}

static inline void ufp_fill_page(void *page, uint32_t gen)
{
	uint64_t *w = page, v = ufp_pattern((uintptr_t)page, gen);

	for (unsigned i = 0; i < PAGE / 8; i += 64)
		w[i] = v + i;
}

/* 0 if the page holds generation gen, 1 if all zero, -1 otherwise. */
static inline int ufp_check_page(const void *page, uint32_t gen)
{
	const uint64_t *w = page;
	uint64_t v = ufp_pattern((uintptr_t)page, gen);
	bool zero = true, ok = true;

	for (unsigned i = 0; i < PAGE / 8; i += 64) {
		if (w[i])
			zero = false;
		if (w[i] != v + i)
			ok = false;
	}
	return ok ? 0 : zero ? 1 : -1;
}

/* Incompressible page content derived from an address and a generation
 * (xorshift seeded by ufp_pattern): goes to the swap file, not the tier. */
static inline void ufp_fill_rand(void *page, uint32_t gen)
{
	uint64_t *w = page, x = ufp_pattern((uintptr_t)page, gen);

	for (unsigned i = 0; i < PAGE / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		w[i] = x;
	}
}

/* Does page hold what ufp_fill_rand wrote at address orig? */
static inline bool ufp_check_rand_at(const void *page, uintptr_t orig, uint32_t gen)
{
	const uint64_t *w = page;
	uint64_t x = ufp_pattern(orig, gen);

	for (unsigned i = 0; i < PAGE / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		if (w[i] != x)
			return false;
	}
	return true;
}

static inline bool ufp_check_rand(const void *page, uint32_t gen)
{
	return ufp_check_rand_at(page, (uintptr_t)page, gen);
}

/* A pager with a resident budget and swap (256 MiB file, 4 MiB lz4 tier). */
static inline ufp_pager *ufp_test_budget_pager(unsigned delivery, uint64_t budget)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .delivery = delivery,
		.budget = budget, .arena_size = 1ull << 30, .swap_size = 256 << 20,
		.ztier_size = 4 << 20, .flags = UFP_PF_NO_EXPORT,
	};
	ufp_pager *p = NULL;
	int r = ufp_pager_create(&pr, &p);

	ck_assert_msg(r == 0, "create: %d %s", r, ufp_last_error());
	return p;
}

/* The pager's counters now (the current struct version). */
static inline struct ufp_stats ufp_test_stats(ufp_pager *p)
{
	struct ufp_stats s = { .size = sizeof(s), .version = UFP_STATS_VERSION };

	ck_assert_int_eq(ufp_stats_get(p, &s), 0);
	return s;
}


/* Exit 77 unless eviction can run here: UFFDIO_MOVE and io_uring. */
static inline void ufp_test_require_swap(void)
{
	struct ufp_probe pr = { .size = sizeof(pr), .version = UFP_PROBE_VERSION };

	ufp_test_require_uffd();
	ufp_probe_machine(&pr);
	if (!(pr.uffd_features & (1ull << 16) /* UFFD_FEATURE_MOVE */)) {
		printf("SKIP: kernel lacks UFFD_FEATURE_MOVE (eviction needs UFFDIO_MOVE)\n");
		exit(UFP_SKIP);
	}
	if (pr.io_uring_errno) {
		printf("SKIP: io_uring unavailable (%s)\n", strerror(pr.io_uring_errno));
		exit(UFP_SKIP);
	}
}

static inline int ufp_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? 1 : 0;
}


/* ---- SIGBUS probes (a poisoned page): install ufp_test_sigbus as the
 * SIGBUS handler (SA_SIGINFO | SA_NODEFER), then ask whether an access
 * faults. Each probe has its own frame: sigsetjmp clobbers the caller's
 * locals (-Wclobbered in optimised builds). */
static sigjmp_buf ufp_test_jb;
static volatile sig_atomic_t ufp_test_got_sigbus;

static inline void ufp_test_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)si; (void)uc;
	ufp_test_got_sigbus = 1;
	siglongjmp(ufp_test_jb, 1);
}

/* Read one byte of pg; true if that raised SIGBUS. */
static __attribute__((noinline, unused)) bool ufp_test_read_faults(const char *pg)
{
	ufp_test_got_sigbus = 0;
	if (sigsetjmp(ufp_test_jb, 1) == 0)
		(void)*(volatile const char *)pg;
	return ufp_test_got_sigbus;
}

/* Does a write to pg raise SIGBUS? */
static __attribute__((noinline, unused)) bool ufp_test_write_faults(char *pg)
{
	ufp_test_got_sigbus = 0;
	if (sigsetjmp(ufp_test_jb, 1) == 0)
		*(volatile char *)pg = 1;
	return ufp_test_got_sigbus;
}

#endif
