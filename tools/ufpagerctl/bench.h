/* SPDX-License-Identifier: MIT */
/* bench.h - ufpagerctl's benchmark suites and their shared helpers. */
#ifndef UFPAGERCTL_BENCH_H
#define UFPAGERCTL_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ufp_internal.h"

int cmd_bench(int argc, char **argv);

/* A per-thread latency histogram (same buckets as the library's). */
struct lat {
	uint64_t b[UFP_HIST_BUCKETS];
	uint64_t max, sum, n;
};

static inline void lat_add(struct lat *l, uint64_t ns)
{
	l->b[ufp_hist_bucket(ns)]++;
	l->sum += ns;
	l->n++;
	if (ns > l->max)
		l->max = ns;
}

void lat_merge(struct lat *dst, const struct lat *src);
void lat_summary(const struct lat *l, struct ufp_latency *out);

struct bench_opts {
	bool quick;
	double seconds;           /* per configuration */
	unsigned pages;           /* per faulting thread */
	unsigned threads[8], nthreads;
	unsigned writers[4], nwriters;
	unsigned delivery;        /* for churn */
	size_t writer_mb;         /* populated MiB the mmap_lock writer mprotects */
	FILE *json;
	bool json_first;
	const char *plot_dir;    /* --plot DIR: data files + gnuplot PNGs */
	struct { char name[96]; double v; } summary[32];
	unsigned nsummary;
};

/* The closing table of key ratios. */
void summary_add(struct bench_opts *o, const char *name, double v);
/* Plot data: a latency CDF, and rows for throughput / p99 against threads. */
void plot_cdf(struct bench_opts *o, const char *name, const struct lat *l);
void plot_row(struct bench_opts *o, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* JSON rows: {"suite":..., fields...}. */
void json_row_begin(struct bench_opts *o, const char *suite);
void json_kv_str(struct bench_opts *o, const char *k, const char *v);
void json_kv_num(struct bench_opts *o, const char *k, double v);
void json_kv_lat(struct bench_opts *o, const char *k, const struct ufp_latency *l);
void json_row_end(struct bench_opts *o);

int bench_faults(struct bench_opts *o);
int bench_churn(struct bench_opts *o);
int bench_locks(struct bench_opts *o);
int bench_tree(struct bench_opts *o);
int bench_swap(struct bench_opts *o);
int bench_headline(struct bench_opts *o);

/* The real mmap_lock writer: a thread of this process toggling mprotect
 * over populated anonymous memory. */
struct mmap_writer {
	pthread_t th;
	void *mem;
	size_t len;
	_Atomic bool stop;
	_Atomic uint64_t ops;
};
int mmap_writer_start(struct mmap_writer *w, size_t len);
uint64_t mmap_writer_stop(struct mmap_writer *w);

static inline double now_s(void)
{
	return (double)ufp_now_ns() / 1e9;
}

#endif
