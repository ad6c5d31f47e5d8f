/* SPDX-License-Identifier: MIT */
/*
 * swapin_cost.c - a swap-in on every access, for perf: one thread writes
 * uniformly random pages of 64 MiB under a 16 MiB budget (lz4 tier, SIGBUS
 * delivery, fault-around 1), so nearly every access is a swap-in and every
 * swap-in an eviction. Prints the wall time per swap-in; run it under
 * `perf record` to split that time (README "Per-fault costs on the real
 * path"). Every page is verified at the end (exit 1 on a mismatch).
 *
 *   swapin_cost [ACCESSES]     (default 400000)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "ufpager.h"

#define PAGES 16384
#define PAGE 4096

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 400000;
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.budget = (uint64_t)PAGES * PAGE / 4, .fault_around = 1,
		.swap_size = (uint64_t)PAGES * PAGE * 2, .flags = UFP_PF_NO_EXPORT,
	};
	struct ufp_stats s0 = { .size = sizeof(s0), .version = UFP_STATS_VERSION }, s1 = s0;
	uint32_t *adds = calloc(PAGES, sizeof(*adds));
	uint64_t x = 88172645463325252ull, bad = 0, si;
	ufp_pager *p;
	double t0, el;
	char *m;
	int err;

	if (!adds || (err = ufp_pager_create(&pr, &p))) {
		fprintf(stderr, "swapin_cost: %s\n", adds ? ufp_last_error() : "out of memory");
		return adds && (err == -EPERM || err == -ENOSYS || err == -EOPNOTSUPP) ? 77 : 1;
	}
	if (ufp_map(p, NULL, (size_t)PAGES * PAGE, UFP_PROT_ALL, 0, (void **)&m)) {
		fprintf(stderr, "swapin_cost: %s\n", ufp_last_error());
		return 1;
	}
	for (size_t i = 0; i < PAGES; i++) {          /* half-compressible: the tier */
		uint64_t *w = (uint64_t *)(m + i * PAGE);

		for (int k = 0; k < 512; k += 8)
			w[k] = i * 0x9E3779B97F4A7C15ull + (uint64_t)k;
	}
	ufp_stats_get(p, &s0);
	t0 = now_s();
	for (size_t k = 0; k < n; k++) {
		size_t i;

		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		i = (x >> 8) % PAGES;
		((volatile uint64_t *)(m + i * PAGE))[1] += 1;   /* word 1: not a k*8 word */
		adds[i]++;
	}
	el = now_s() - t0;
	ufp_stats_get(p, &s1);
	for (size_t i = 0; i < PAGES; i++) {
		const uint64_t *w = (const uint64_t *)(m + i * PAGE);

		bad += w[1] != adds[i] || w[0] != i * 0x9E3779B97F4A7C15ull;
	}
	si = s1.swapins - s0.swapins;
	printf("accesses/s %.0f  swap-ins %llu  us per swap-in %.2f  from the tier %llu  "
	       "fault p50 %.1f us p99 %.1f us  bad pages %llu\n", (double)n / el,
	       (unsigned long long)si, si ? el * 1e6 / (double)si : 0.0,
	       (unsigned long long)(s1.faults_ztier - s0.faults_ztier),
	       (double)s1.fault_lat.p50 / 1e3, (double)s1.fault_lat.p99 / 1e3,
	       (unsigned long long)bad);
	ufp_pager_destroy(p);
	free(adds);
	return bad || !si ? 1 : 0;
}
