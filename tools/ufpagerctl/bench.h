/* SPDX-License-Identifier: MIT */
/* bench.h - ufpagerctl's benchmark suites and their shared helpers. */
#ifndef UFPAGERCTL_BENCH_H
#define UFPAGERCTL_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
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
	l->b[stats_hist_bucket(ns)]++;
	l->sum += ns;
	l->n++;
	if (ns > l->max)
		l->max = ns;
}

void lat_merge(struct lat *dst, const struct lat *src);
void lat_summary(const struct lat *l, struct ufp_latency *out);

struct plot_state;

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
	const char *plot_dir;     /* --plot DIR: data files, plots.gp, PNGs */
	struct plot_state *plot;  /* what this run plots (bench_plot.c); NULL without --plot */
	struct { char name[96]; double v; } summary[32];
	unsigned nsummary;
	double soak_seconds;      /* soak: --minutes / --seconds (default 60) */
	unsigned soak_threads;    /* soak: first value of --threads (default 4) */
	const char *soak_inject;  /* soak: --inject SPEC ("" or "off": none) */
};

/* The closing table of key ratios. */
void summary_add(struct bench_opts *o, const char *name, double v);

/* ---- plots (--plot DIR; every call is a no-op without it) --------------
 * bench_plot.c; main thread only. Data files are truncated on their first
 * write of a run. */

/* Create DIR (o->plot_dir) and the run's plot state. Returns 0, or -errno
 * having said why on stderr. */
int plots_start(struct bench_opts *o);
/* Write DIR/plots.gp (every figure of this run), run gnuplot on it when it
 * is installed, say what was drawn, and free the plot state. */
void plots_finish(struct bench_opts *o);

/* One series of a latency figure: DIR/FIGURE-cdf-SERIES.dat, drawn in
 * FIGURE-cdf.png as the fraction of samples at least as slow as x
 * (1 - CDF; log x, log y). plot_cdf() adds to the "headline" figure. */
void plot_cdf_series(struct bench_opts *o, const char *figure, const char *series,
		     const struct lat *l);
void plot_cdf(struct bench_opts *o, const char *series, const struct lat *l);
/* Title of a latency figure (the suite and what was measured; the machine
 * is added). */
void plot_figure_title(struct bench_opts *o, const char *figure, const char *title);
/* Append one line to a data file in DIR. */
void plot_row(struct bench_opts *o, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Append gnuplot commands that draw png (in DIR) to plots.gp. */
void plot_script(struct bench_opts *o, const char *png, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "N CPUs, Linux X.Y.Z": the machine, for plot titles. */
const char *plot_machine(void);

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
int bench_soak(struct bench_opts *o);

/* ---- a crew: benchmark threads that start and stop together (bench_crew.c)
 * The caller spawns every worker with crew_spawn(); each worker does its
 * own set-up, then calls crew_ready(), which blocks until the caller's
 * crew_run_*() has seen every worker ready and opened the gate; the clock
 * starts there. crew_run_for() lets them run for a fixed time, then raises
 * stop (workers poll crew_stopping()) and joins them; crew_run_to_deadline()
 * joins workers that stop by themselves at crew->deadline or when their
 * work is done. Either returns 0, or the first spawn error after stopping
 * and joining the workers that did start. A worker owns a crew_member
 * (latency samples and an operation count) that crew_collect() merges. */
struct bench_crew;

struct crew_member {
	struct bench_crew *crew;
	struct lat lat;          /* one sample per timed operation */
	uint64_t ops;            /* operations done */
};

struct bench_crew {
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* ready count grew, or the gate opened */
	unsigned cap, spawned, ready;
	bool open;
	int err;                 /* first failed spawn */
	_Atomic bool stop;
	double deadline;         /* written before the gate opens (under mu) */
	double elapsed;          /* from the gate opening to the last join */
	pthread_t *th;
	struct crew_member **m;
};

int crew_init(struct bench_crew *c, unsigned cap);
void crew_destroy(struct bench_crew *c);
/* Start fn(arg) as a worker owning m. A failure is kept for crew_run_*(). */
void crew_spawn(struct bench_crew *c, struct crew_member *m, void *(*fn)(void *), void *arg);
/* Worker side: set-up is done; wait for the gate. */
void crew_ready(struct crew_member *m);
static inline bool crew_stopping(const struct crew_member *m)
{
	/* relaxed: a flag polled between operations; join orders the rest */
	return atomic_load_explicit(&m->crew->stop, memory_order_relaxed);
}
int crew_run_for(struct bench_crew *c, double seconds);
int crew_run_to_deadline(struct bench_crew *c, double seconds);
/* Merge the samples and sum the ops of members [first, first + n). */
void crew_collect(const struct bench_crew *c, unsigned first, unsigned n, struct lat *lat,
		  uint64_t *ops);

/* ufp_pager_create, saying why on stderr when it fails. */
int bench_pager_create(const struct ufp_params *pr, ufp_pager **p);

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
