/* SPDX-License-Identifier: MIT */
/* bench.h - ufpagerctl's benchmark suites and their shared helpers. */
#ifndef UFPAGERCTL_BENCH_H
#define UFPAGERCTL_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <ufpager.h>

#include "json.h"
#include "kbase.h"

int cmd_bench(int argc, char **argv);

/* The page size the library manages (it refuses to run on any other). */
#define BENCH_PAGE 4096ul

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Latency samples are recorded in the kernel baselines' histogram
 * (kbase.h: one per thread, merged after join), so that ufpager and the
 * kernel are measured with the same buckets; this gives its summary in
 * the library's struct. */
void lat_summary(const struct kb_hist *h, struct ufp_latency *out);

struct plot_state;

struct bench_opts {
	bool quick;
	double seconds;           /* per configuration */
	unsigned pages;           /* per faulting thread */
	unsigned threads[8], nthreads;
	unsigned writers[4], nwriters;
	unsigned delivery;        /* for churn */
	size_t writer_mb;         /* populated MiB the mmap_lock writer mprotects */
	struct json *json;        /* --json FILE; NULL without */
	const char *plot_dir;     /* --plot DIR: data files, plots.gp, PNGs */
	struct plot_state *plot;  /* what this run plots (bench_plot.c); NULL without --plot */
	struct { char key[64], text[96]; double v; } summary[64];
	unsigned nsummary;
	double soak_seconds;      /* soak: --minutes / --seconds (default 60) */
	unsigned soak_threads;    /* soak: first value of --threads (default 4) */
	const char *soak_inject;  /* soak: --inject SPEC ("" or "off": none) */
	const char *backend;      /* swap: --backend file (default) | nbd */
	const char *swap_uri;     /* swap --backend nbd: --swap URI, a server of the user's */
	const char *swap_only;    /* swap: --only refault | policy (NULL: both tables) */
	bool apps_full;           /* apps: --apps-full sizes */
	const char *apps_only;    /* apps: --app NAME (NULL: every program) */
	bool apps_no_cgroup;      /* apps: --no-cgroup (no kernel-cgroup column) */
};

/* The closing table of key ratios: num / den under a machine-readable key
 * ("faults.sigbus_over_kernel") with its sentence for people. A zero den
 * gives no number: "n/a" in the table, null plus a reason in the JSON. */
void summary_add(struct bench_opts *o, const char *key, const char *text, double num,
		 double den);

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
		     const struct kb_hist *l);
void plot_cdf(struct bench_opts *o, const char *series, const struct kb_hist *l);
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

/* JSON rows: {"suite":..., fields...} through the one writer (json.h);
 * no-ops without --json. json_kv_ratio writes num / den, or null and the
 * reason "<den_name> is 0". */
void json_row_begin(struct bench_opts *o, const char *suite);
void json_kv_str(struct bench_opts *o, const char *k, const char *v);
void json_kv_num(struct bench_opts *o, const char *k, double v);
void json_kv_ratio(struct bench_opts *o, const char *k, double num, double den,
		   const char *den_name);
void json_kv_lat(struct bench_opts *o, const char *k, const struct ufp_latency *l);
void json_row_end(struct bench_opts *o);

/* ---- readers against writers, per lock mode (bench_rows.c) -------------
 * locks_crew_run: run nt readers (array readers, elements of rsize bytes,
 * each beginning with its struct crew_member, filled in by the caller)
 * and nw writers for o->seconds; fills the rates and the readers'
 * latency in *res. locks_table: print what, then for every T and W of o
 * and both lock modes a row from run() (which fills res, stats included),
 * with JSON rows (suite "locks", "<ops>_per_s", "latency"). 0 or 1. */
struct locks_res {
	double rops_s, wops_s;
	struct ufp_latency lat;
	struct ufp_stats st;
};

int locks_crew_run(struct bench_opts *o, unsigned nt, void *readers, size_t rsize,
		   void *(*reader)(void *), unsigned nw, void *writers, size_t wsize,
		   void *(*writer)(void *), struct locks_res *res);
int locks_table(struct bench_opts *o, const char *what, const char *ops,
		int (*run)(struct bench_opts *o, enum ufp_lock_mode mode, unsigned nt,
			   unsigned nw, struct locks_res *res));

int bench_faults(struct bench_opts *o);
int bench_churn(struct bench_opts *o);
int bench_locks(struct bench_opts *o);
int bench_tree(struct bench_opts *o);
int bench_swap(struct bench_opts *o);
int bench_headline(struct bench_opts *o);
int bench_soak(struct bench_opts *o);
int bench_alloc(struct bench_opts *o);
int bench_apps(struct bench_opts *o);

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
	struct kb_hist lat;          /* one sample per timed operation */
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
void crew_collect(const struct bench_crew *c, unsigned first, unsigned n, struct kb_hist *lat,
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
	return (double)now_ns() / 1e9;
}

/* Progress on stderr: on a terminal one line rewritten in place ("\r"),
 * otherwise one line per step, so a log of stdout and stderr keeps the
 * tables whole. progress_done() clears the terminal line. */
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void progress_done(void);

#endif
