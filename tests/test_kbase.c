/* SPDX-License-Identifier: MIT */
/*
 * test_kbase.c - Check suite "kbase": the kernel baselines of
 * tools/ufpagerctl/kbase.c. Histogram percentiles against exact bucket
 * bounds; the kernel's first-touch fault (with and without mmap_lock
 * churn); refault through a swap file and through zram-lz4, with content
 * verified and the swap gone afterwards. Measured figures go to stdout.
 *
 * Skipping: the test cases form groups (hist, touch, swapfile, zram).
 * KBASE_TESTS=swapfile,zram (comma list; default all) picks the groups to
 * run. main() checks each picked group's prerequisites (root, no other
 * swap active, zram0 present and free) and leaves out a group that lacks
 * them, printing "SKIP kbase/<group>: <why>". If every picked group was
 * left out the binary exits 77, so a CTest entry per group
 * (KBASE_TESTS=zram, SKIP_RETURN_CODE 77) skips cleanly. A swap file that
 * swapon refuses on this filesystem is found only at setup: that test
 * prints SKIP and passes. KBASE_SWAPDIR (default /var/tmp) holds the file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* fallocate, mkostemp, MADV_PAGEOUT */
#endif
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kbase.h"

#define SWAP_BYTES (256ull << 20)
#define DATA_PAGES ((128ull << 20) / 4096)

/* ======================================================================
 * Histogram.
 * ====================================================================== */

START_TEST(test_hist_bucket_bounds_contain_value)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 5000; i++) {
		unsigned b = kb_hist_bucket(v);

		ck_assert_uint_le(kb_hist_bucket_lo(b), v);
		ck_assert_uint_ge(kb_hist_bucket_hi(b), v);
		v = v < 100 ? v + 1 : v + v / 7 + 1;
		if (v < 100)
			continue;
	}
	/* buckets tile the line: each starts right after the previous */
	for (unsigned b = 1; b < KB_HIST_BUCKETS; b++)
		ck_assert_uint_eq(kb_hist_bucket_lo(b), kb_hist_bucket_hi(b - 1) + 1);
	ck_assert_uint_eq(kb_hist_bucket(UINT64_MAX), KB_HIST_BUCKETS - 1);
	ck_assert_uint_eq(kb_hist_bucket_hi(KB_HIST_BUCKETS - 1), UINT64_MAX);
}
END_TEST

START_TEST(test_hist_percentiles_of_uniform_1_to_1000)
{
	static struct kb_hist h;

	kb_hist_init(&h);
	for (uint64_t v = 1000; v >= 1; v--)
		kb_hist_record(&h, v);
	ck_assert_uint_eq(h.count, 1000);
	ck_assert_uint_eq(h.min, 1);
	ck_assert_uint_eq(h.max, 1000);
	/* rank 500 = 500, bucket [496, 503]; rank 990 = 990, bucket [976,
	 * 991]; rank 999 = 999, bucket [992, 1007] clamped to max 1000 */
	ck_assert_uint_eq(kb_hist_bucket_lo(kb_hist_bucket(500)), 496);
	ck_assert_uint_eq(kb_hist_p50(&h), 503);
	ck_assert_uint_eq(kb_hist_p99(&h), 991);
	ck_assert_uint_eq(kb_hist_p999(&h), 1000);
	ck_assert_uint_eq(kb_hist_pct(&h, 1.0), 1000);
	ck_assert_uint_eq(kb_hist_pct(&h, 0.0), 1);
	ck_assert_uint_eq(h.sum, 500500);
}
END_TEST

START_TEST(test_hist_linear_region_is_exact)
{
	static struct kb_hist h;

	kb_hist_init(&h);
	for (uint64_t v = 0; v < 20; v++)
		kb_hist_record(&h, v);
	ck_assert_uint_eq(kb_hist_p50(&h), 9);     /* rank 10 of 0..19 */
	ck_assert_uint_eq(kb_hist_p99(&h), 19);
}
END_TEST

START_TEST(test_hist_three_modes_land_in_their_buckets)
{
	static struct kb_hist h;

	/* 90% at 100 ns, 9% at 10 us, 1% at 1 ms: p50 in 100's bucket,
	 * p99 in 10000's bucket, p999 and max at 1 ms */
	kb_hist_init(&h);
	for (int i = 0; i < 9000; i++)
		kb_hist_record(&h, 100);
	for (int i = 0; i < 900; i++)
		kb_hist_record(&h, 10000);
	for (int i = 0; i < 100; i++)
		kb_hist_record(&h, 1000000);
	ck_assert_uint_eq(kb_hist_p50(&h), 101);        /* bucket [100, 101] */
	ck_assert_uint_eq(kb_hist_p99(&h), kb_hist_bucket_hi(kb_hist_bucket(10000)));
	ck_assert_uint_eq(kb_hist_p99(&h), 10239);
	ck_assert_uint_eq(kb_hist_p999(&h), 1000000);
}
END_TEST

START_TEST(test_hist_merge_equals_recording_into_one)
{
	static struct kb_hist a, b, all;

	kb_hist_init(&a);
	kb_hist_init(&b);
	kb_hist_init(&all);
	for (uint64_t v = 1; v < 100000; v += 37) {
		kb_hist_record(v & 1 ? &a : &b, v);
		kb_hist_record(&all, v);
	}
	kb_hist_merge(&a, &b);
	ck_assert_int_eq(memcmp(&a, &all, sizeof(a)), 0);
}
END_TEST

START_TEST(test_hist_cdf_is_monotone_and_ends_at_max)
{
	static struct kb_hist h;
	struct kb_cdf_point pts[256];
	size_t n;

	kb_hist_init(&h);
	for (uint64_t v = 1; v <= 1000; v++)
		kb_hist_record(&h, v);
	ck_assert_int_eq(kb_hist_cdf(&h, pts, 4, &n), -ENOSPC);
	ck_assert_uint_gt(n, 4);
	ck_assert_int_eq(kb_hist_cdf(&h, pts, 256, &n), 0);
	for (size_t i = 1; i < n; i++) {
		ck_assert_uint_gt(pts[i].value_ns, pts[i - 1].value_ns);
		ck_assert(pts[i].frac > pts[i - 1].frac);
	}
	ck_assert_uint_eq(pts[n - 1].value_ns, 1000);
	ck_assert(pts[n - 1].frac == 1.0);
	ck_assert(pts[0].frac == 1.0 / 1000);   /* bucket [1,1] */
	{
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(kb_hist_cdf_write(&h, f), 0);
		fclose(f);
		ck_assert_ptr_nonnull(strstr(text, "1 0.001000\n"));
		ck_assert_ptr_nonnull(strstr(text, "\n1000 1.000000\n"));
		free(text);
	}
}
END_TEST

/* ======================================================================
 * First touch, with and without churn.
 * ====================================================================== */

static void print_touch(const char *label, const struct kb_result *r,
			const struct kb_churn *c)
{
	printf("kbase first-touch %-9s thr=%u pages=%llu faults/s=%.0f p50=%lluns "
	       "p99=%lluns p999=%lluns max=%lluns minflt=%llu wall=%.3fs clock=%lluns",
	       label, r->threads, (unsigned long long)r->count, r->pages_per_s,
	       (unsigned long long)r->p50_ns, (unsigned long long)r->p99_ns,
	       (unsigned long long)r->p999_ns, (unsigned long long)r->max_ns,
	       (unsigned long long)r->minflt, r->wall_s,
	       (unsigned long long)r->clock_ns);
	if (c)
		printf(" churn_ops/s=%.0f", c->ops_per_s);
	printf("\n");
	fflush(stdout);
}

static void check_touch(const struct kb_result *r, size_t pages)
{
	ck_assert_uint_eq(r->count, pages);
	ck_assert_uint_le(r->p50_ns, r->p99_ns);
	ck_assert_uint_le(r->p99_ns, r->max_ns);
	ck_assert(r->pages_per_s > 0);
	ck_assert(r->wall_s > 0);
	/* each touch faulted (rusage counts this process's faults) */
	ck_assert_uint_ge(r->minflt, pages * 9 / 10);
}

START_TEST(test_first_touch_counts_every_page)
{
	static struct kb_result r;
	size_t pages = 65536;           /* 256 MiB */
	unsigned threads = (unsigned)_i;

	ck_assert_int_eq(kb_first_touch(pages, threads, &r), 0);
	print_touch("plain", &r, NULL);
	check_touch(&r, pages);
	ck_assert_uint_eq(r.threads, threads);
}
END_TEST

START_TEST(test_first_touch_under_mmap_lock_churn)
{
	static struct kb_result r;
	struct kb_churn c;
	size_t pages = 65536;
	unsigned threads = (unsigned)_i;

	ck_assert_int_eq(kb_churn_start(&c, 1, 16 << 20), 0);
	ck_assert_int_eq(kb_first_touch(pages, threads, &r), 0);
	ck_assert_int_eq(kb_churn_stop(&c), 0);
	print_touch("churn", &r, &c);
	check_touch(&r, pages);
	ck_assert_uint_gt(c.ops, 0);
}
END_TEST

START_TEST(test_first_touch_rejects_zero)
{
	static struct kb_result r;

	ck_assert_int_eq(kb_first_touch(0, 1, &r), -EINVAL);
	ck_assert_int_eq(kb_first_touch(1, 0, &r), -EINVAL);
}
END_TEST

/* ======================================================================
 * Refault through kernel swap. Loop index -> configuration.
 * ====================================================================== */

struct refault_cfg {
	enum kb_pattern pattern;
	bool compressible;
	unsigned threads;
};

static const struct refault_cfg cfgs[] = {
	{ KB_SEQ, true, 1 }, { KB_RANDOM, true, 1 }, { KB_ZIPF, true, 1 },
	{ KB_SEQ, false, 1 }, { KB_RANDOM, false, 1 }, { KB_ZIPF, false, 1 },
	{ KB_SEQ, true, 2 }, { KB_RANDOM, true, 2 }, { KB_ZIPF, true, 2 },
};
#define NCFGS ((int)(sizeof(cfgs) / sizeof(cfgs[0])))

static void print_refault(const char *dev, const struct refault_cfg *cfg,
			  const struct kb_result *r)
{
	printf("kbase refault %-8s %-6s %-5s thr=%u timed=%llu pages/s=%.0f "
	       "p50=%lluns p99=%lluns max=%lluns pswpin=%llu pswpout=%llu out=%llu "
	       "rounds=%u B/page=%.0f majflt=%llu accesses=%llu wall=%.3fs mismatches=%llu\n",
	       dev, kb_pattern_name(cfg->pattern), cfg->compressible ? "compr" : "rand",
	       r->threads, (unsigned long long)r->count, r->pages_per_s,
	       (unsigned long long)r->p50_ns, (unsigned long long)r->p99_ns,
	       (unsigned long long)r->max_ns, (unsigned long long)r->pswpin_delta,
	       (unsigned long long)r->pswpout_delta, (unsigned long long)r->pages_out,
	       r->pageout_rounds, r->bytes_per_page, (unsigned long long)r->majflt,
	       (unsigned long long)r->accesses, r->wall_s,
	       (unsigned long long)r->mismatches);
	fflush(stdout);
}

static const char *swap_dir(void)
{
	const char *d = getenv("KBASE_SWAPDIR");

	return d && *d ? d : "/var/tmp";
}

static void refault_on(struct kb_swap *s, const struct refault_cfg *cfg)
{
	static struct kb_result r;
	struct kb_refault_params rp = {
		.pages = DATA_PAGES,
		.threads = cfg->threads,
		.pattern = cfg->pattern,
		.compressible = cfg->compressible,
		.swap = s,
	};
	char before[512], after[512], path[PATH_MAX];
	int ret, tret, n;

	snprintf(path, sizeof(path), "%s", s->path);
	if (s->zswap)
		printf("note: zswap is enabled: pages meet zswap before %s\n", path);
	n = kb_swap_active(before, sizeof(before));
	ck_assert_int_ge(n, 1);
	ret = kb_refault(&rp, &r);
	tret = kb_swap_teardown(s);
	print_refault(s->kind == KB_SWAP_ZRAM ? "zram-lz4" : "swapfile", cfg, &r);

	ck_assert_msg(ret == 0, "kb_refault: %s (mismatches %llu, out %llu)",
		      strerror(-ret), (unsigned long long)r.mismatches,
		      (unsigned long long)r.pages_out);
	ck_assert_int_eq(tret, 0);
	ck_assert_uint_eq(r.mismatches, 0);
	ck_assert_uint_gt(r.pswpin_delta, 0);
	ck_assert_uint_ge(r.pages_out, DATA_PAGES * 9 / 10);
	ck_assert_uint_le(r.p50_ns, r.p99_ns);
	ck_assert_uint_le(r.p99_ns, r.max_ns);
	/* cleaned up: /proc/swaps as before setup, no file left */
	ck_assert_int_eq(kb_swap_active(after, sizeof(after)), n - 1);
	ck_assert_ptr_null(strstr(after, path));
	if (s->kind == KB_SWAP_FILE)
		ck_assert_int_ne(access(path, F_OK), 0);
}

START_TEST(test_refault_swapfile_verifies_and_cleans_up)
{
	struct kb_swap s = { 0 };
	char before[512], after[512];
	int n0 = kb_swap_active(before, sizeof(before)), ret;

	ret = kb_swap_file_setup(swap_dir(), SWAP_BYTES, &s);
	if (ret == -ENOTSUP || ret == -EPERM) {
		printf("SKIP kbase/swapfile: %s\n", s.why);
		return;
	}
	ck_assert_msg(ret == 0, "swap file setup: %s: %s", strerror(-ret), s.why);
	refault_on(&s, &cfgs[_i]);
	ck_assert_int_eq(kb_swap_active(after, sizeof(after)), n0);
	ck_assert_str_eq(after, before);
}
END_TEST

START_TEST(test_refault_zram_lz4_verifies_and_cleans_up)
{
	struct kb_swap s = { 0 };
	char before[512], after[512], buf[64];
	int n0 = kb_swap_active(before, sizeof(before)), ret;
	FILE *f;

	ret = kb_zram_setup(SWAP_BYTES, "lz4", &s);
	ck_assert_msg(ret == 0, "zram setup: %s: %s", strerror(-ret), s.why);
	ck_assert_str_eq(s.algo, "lz4");
	refault_on(&s, &cfgs[_i]);
	ck_assert_int_eq(kb_swap_active(after, sizeof(after)), n0);
	ck_assert_str_eq(after, before);
	f = fopen("/sys/block/zram0/disksize", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "0\n");
}
END_TEST

START_TEST(test_swap_setup_refuses_when_other_swap_active)
{
	struct kb_swap a = { 0 }, b = { 0 };
	int ret;

	ret = kb_swap_file_setup(swap_dir(), 16 << 20, &a);
	if (ret == -ENOTSUP) {
		printf("SKIP kbase/swapfile: %s\n", a.why);
		return;
	}
	ck_assert_msg(ret == 0, "%s", a.why);
	ret = kb_swap_file_setup(swap_dir(), 16 << 20, &b);
	ck_assert_int_eq(ret, -EBUSY);
	ck_assert_ptr_nonnull(strstr(b.why, "other swap active"));
	ck_assert_ptr_nonnull(strstr(b.other, a.path));
	b.flags = KB_SWAP_ALLOW_OTHER;
	ret = kb_swap_file_setup(swap_dir(), 16 << 20, &b);
	ck_assert_msg(ret == 0, "%s", b.why);
	ck_assert_int_eq(kb_swap_teardown(&b), 0);
	ck_assert_int_eq(kb_swap_teardown(&a), 0);
	ck_assert_int_eq(kb_swap_teardown(&a), 0);      /* idempotent */
	ck_assert_int_ne(access(a.path, F_OK), 0);
	ck_assert_int_ne(access(b.path, F_OK), 0);
}
END_TEST

START_TEST(test_swap_file_on_tmpfs_is_refused_with_reason)
{
	struct kb_swap s = { 0 };
	struct statfs sf;
	int ret;

	if (statfs("/dev/shm", &sf) || sf.f_type != TMPFS_MAGIC) {
		printf("SKIP kbase/swapfile tmpfs case: /dev/shm is not tmpfs\n");
		return;
	}
	ret = kb_swap_file_setup("/dev/shm", 16 << 20, &s);
	if (ret == 0) {         /* a kernel that swaps to tmpfs files: fine */
		ck_assert_int_eq(kb_swap_teardown(&s), 0);
		return;
	}
	printf("kbase swap file on tmpfs: %d (%s)\n", ret, s.why);
	ck_assert_int_eq(ret, -ENOTSUP);
	ck_assert_int_ne(s.sys_errno, 0);
	ck_assert_ptr_nonnull(strstr(s.why, "swapon"));
	ck_assert_int_ne(access(s.path, F_OK), 0);
	ck_assert(!s.active);
}
END_TEST

START_TEST(test_swap_torn_down_on_sigterm)
{
	struct kb_swap s = { 0 };
	char path[PATH_MAX], after[512];
	int ret;

	/* CK_FORK gives a child per test; fork once more to die here. */
	int pfd[2];
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* a plain process: not Check's group-forwarding handlers */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		setpgid(0, 0);
		ret = kb_swap_file_setup(swap_dir(), 16 << 20, &s);
		if (write(pfd[1], s.path, sizeof(s.path)) < 0 || ret)
			_exit(1);
		pause();
		_exit(2);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], path, sizeof(path)), (ssize_t)sizeof(path));
	close(pfd[0]);
	kill(pid, SIGTERM);
	waitpid(pid, &ret, 0);
	ck_assert(WIFSIGNALED(ret) && WTERMSIG(ret) == SIGTERM);
	kb_swap_active(after, sizeof(after));
	ck_assert_ptr_null(strstr(after, path));
	ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* ======================================================================
 * Groups, prerequisites, main.
 * ====================================================================== */

static bool picked(const char *group)
{
	const char *sel = getenv("KBASE_TESTS");
	size_t n = strlen(group);

	if (!sel || !*sel || !strcmp(sel, "all"))
		return true;
	for (const char *p = sel; (p = strstr(p, group)); p += n)
		if ((p == sel || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

static bool swap_prereq(char *why, size_t len)
{
	char other[256];
	int n;

	if (geteuid() != 0) {
		snprintf(why, len, "needs root (swapon)");
		return false;
	}
	n = kb_swap_active(other, sizeof(other));
	if (n != 0) {
		snprintf(why, len, "other swap active (%s): one kernel swap device "
			 "at a time", n < 0 ? "unreadable /proc/swaps" : other);
		return false;
	}
	return true;
}

static bool zram_prereq(char *why, size_t len)
{
	char buf[64] = "";
	FILE *f;

	if (!swap_prereq(why, len))
		return false;
	f = fopen("/sys/block/zram0/disksize", "r");
	if (!f) {
		snprintf(why, len, "zram0 missing (no /sys/block/zram0)");
		return false;
	}
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	if (strcmp(buf, "0\n")) {
		snprintf(why, len, "zram0 busy (disksize %s)", strtok(buf, "\n"));
		return false;
	}
	return true;
}

int main(void)
{
	Suite *s = suite_create("kbase");
	SRunner *sr;
	TCase *tc;
	char why[512];
	int added = 0, failed;

	if (picked("hist")) {
		tc = tcase_create("hist");
		tcase_add_test(tc, test_hist_bucket_bounds_contain_value);
		tcase_add_test(tc, test_hist_percentiles_of_uniform_1_to_1000);
		tcase_add_test(tc, test_hist_linear_region_is_exact);
		tcase_add_test(tc, test_hist_three_modes_land_in_their_buckets);
		tcase_add_test(tc, test_hist_merge_equals_recording_into_one);
		tcase_add_test(tc, test_hist_cdf_is_monotone_and_ends_at_max);
		suite_add_tcase(s, tc);
		added++;
	}
	if (picked("touch")) {
		tc = tcase_create("touch");
		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, test_first_touch_rejects_zero);
		tcase_add_loop_test(tc, test_first_touch_counts_every_page, 1, 3);
		tcase_add_loop_test(tc, test_first_touch_under_mmap_lock_churn, 1, 3);
		suite_add_tcase(s, tc);
		added++;
	}
	if (picked("swapfile")) {
		if (swap_prereq(why, sizeof(why))) {
			tc = tcase_create("swapfile");
			tcase_set_timeout(tc, 600);
			tcase_add_test(tc, test_swap_setup_refuses_when_other_swap_active);
			tcase_add_test(tc, test_swap_torn_down_on_sigterm);
			tcase_add_test(tc, test_swap_file_on_tmpfs_is_refused_with_reason);
			tcase_add_loop_test(tc, test_refault_swapfile_verifies_and_cleans_up,
					    0, NCFGS);
			suite_add_tcase(s, tc);
			added++;
		} else {
			printf("SKIP kbase/swapfile: %s\n", why);
		}
	}
	if (picked("zram")) {
		if (zram_prereq(why, sizeof(why))) {
			tc = tcase_create("zram");
			tcase_set_timeout(tc, 600);
			tcase_add_loop_test(tc, test_refault_zram_lz4_verifies_and_cleans_up,
					    0, NCFGS);
			suite_add_tcase(s, tc);
			added++;
		} else {
			printf("SKIP kbase/zram: %s\n", why);
		}
	}
	if (!added) {
		printf("SKIP kbase: every picked group lacks its prerequisites\n");
		srunner_free(srunner_create(s));        /* frees the suite */
		return 77;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	/* A test killed by Check's timeout could not tear its swap down. */
	if (geteuid() == 0) {
		int reaped = kb_swap_reap_stale();

		if (reaped > 0)
			printf("kbase: reaped %d stale swap device(s)\n", reaped);
	}
	return failed ? 1 : 0;
}
