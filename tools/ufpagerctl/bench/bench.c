/* SPDX-License-Identifier: MIT */
/*
 * bench.c - `ufpagerctl bench`: option parsing, suite dispatch, shared
 * helpers (latency histograms, JSON rows, the summary, the real mmap_lock
 * writer) and the end-to-end suites through userfaultfd (plots are in
 * bench_plot.c, crews of benchmark threads in bench_crew.c):
 *   faults: fault service per delivery mode and polling policy beside the
 *           kernel's own first-touch fault, with and without a real
 *           mmap_lock writer in the same process;
 *   churn:  faulting threads on their own regions while other threads
 *           split, merge, protect and unmap other regions, per lock mode.
 * Every figure is measured in this run; ratios compare rows of this run.
 * Everything here runs on the bench's main thread except the workers the
 * crews start, which touch only their own struct and the crew's flags.
 */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

/* ======================================================================
 * Helpers: histograms, JSON rows, the summary, pager creation.
 * ====================================================================== */

void summary_add(struct bench_opts *o, const char *key, const char *text, double num,
		 double den)
{
	if (o->nsummary < sizeof(o->summary) / sizeof(o->summary[0])) {
		snprintf(o->summary[o->nsummary].key, sizeof(o->summary[0].key), "%s", key);
		snprintf(o->summary[o->nsummary].text, sizeof(o->summary[0].text), "%s", text);
		o->summary[o->nsummary++].v = den != 0 ? num / den : NAN;
	}
}

/* The summary table on stdout and, with --json, as "summary": {key:
 * {"value", "text"}}. */
static void summary_print(struct bench_opts *o)
{
	if (o->nsummary) {
		printf("\n== summary: ratios measured side by side in this run\n");
		for (unsigned i = 0; i < o->nsummary; i++)
			if (isfinite(o->summary[i].v))
				printf("  %-58s %8.2fx\n", o->summary[i].text, o->summary[i].v);
			else
				printf("  %-58s %9s\n", o->summary[i].text, "n/a");
	}
	if (!o->json)
		return;
	json_object_begin(o->json, "summary");
	for (unsigned i = 0; i < o->nsummary; i++) {
		json_object_begin(o->json, o->summary[i].key);
		json_num_why(o->json, "value", o->summary[i].v, isfinite(o->summary[i].v) ? NULL :
			     "the ratio's denominator was 0 (nothing measured on that side)");
		json_str(o->json, "text", o->summary[i].text);
		json_object_end(o->json);
	}
	json_object_end(o->json);
}

int bench_pager_create(const struct ufp_params *pr, ufp_pager **p)
{
	int err = ufp_pager_create(pr, p);

	if (err)
		fprintf(stderr, "bench: %s\n", ufp_last_error());
	return err;
}

/* ======================================================================
 * The real mmap_lock writer.
 * ====================================================================== */

static void *mmap_writer_main(void *arg)
{
	struct mmap_writer *w = arg;

	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		mprotect(w->mem, w->len, PROT_READ);
		mprotect(w->mem, w->len, PROT_READ | PROT_WRITE);
		atomic_fetch_add_explicit(&w->ops, 2, memory_order_relaxed);
	}
	return NULL;
}

int mmap_writer_start(struct mmap_writer *w, size_t len)
{
	w->len = len;
	w->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->mem == MAP_FAILED)
		return -errno;
	memset(w->mem, 1, len);   /* populated: mprotect walks every pte */
	atomic_store(&w->stop, false);
	atomic_store(&w->ops, 0);
	if (pthread_create(&w->th, NULL, mmap_writer_main, w)) {
		munmap(w->mem, len);
		return -EAGAIN;
	}
	return 0;
}

uint64_t mmap_writer_stop(struct mmap_writer *w)
{
	atomic_store(&w->stop, true);
	pthread_join(w->th, NULL);
	munmap(w->mem, w->len);
	return atomic_load(&w->ops);
}


/* ======================================================================
 * Suite "faults": first-touch fault service.
 * ====================================================================== */

struct toucher {
	struct crew_member m;
	char *base;
	size_t pages;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	ufp_thread_register();
	crew_ready(&t->m);
	for (size_t i = 0; i < t->pages; i++) {
		uint64_t t0 = now_ns();

		*(volatile char *)(t->base + i * BENCH_PAGE) = 1;
		kb_hist_record(&t->m.lat, now_ns() - t0);
		t->m.ops++;
		if ((i & 63) == 63 && now_s() > t->m.crew->deadline)
			break;
	}
	return NULL;
}

struct fault_cfg {
	const char *name;
	bool kernel;
	unsigned delivery;
	int spin_us;
	unsigned fault_around;
};

struct fault_res {
	double faults_s;
	struct ufp_latency lat;
	uint64_t writer_ops;
	uint64_t spins_hit, blocks;
};

/* One configuration: nt threads each touch o->pages fresh pages once (or
 * until o->seconds), optionally beside the mmap_lock writer. The merged
 * histogram goes to *hist for the plots. */
static int run_fault_cfg(struct bench_opts *o, const struct fault_cfg *c, unsigned nt,
			 bool writer, struct fault_res *res, struct kb_hist *hist)
{
	struct toucher t[2];
	struct bench_crew crew;
	struct mmap_writer mw;
	ufp_pager *p = NULL;
	uint64_t total = 0;
	size_t len = (size_t)o->pages * BENCH_PAGE;
	char *mem[2];
	int err;

	memset(res, 0, sizeof(*res));
	kb_hist_init(hist);
	if (nt > 2)
		return -EINVAL;
	if (!c->kernel) {
		struct ufp_params pr = {
			.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
			.delivery = c->delivery, .spin_us = c->spin_us,
			.fault_around = c->fault_around, .flags = UFP_PF_NO_EXPORT,
		};
		if ((err = bench_pager_create(&pr, &p)))
			return err;
	}
	for (unsigned i = 0; i < nt; i++) {
		if (p)
			err = ufp_map(p, NULL, len, UFP_PROT_ALL, 0, (void **)&mem[i]);
		else
			err = (mem[i] = mmap(NULL, len, PROT_READ | PROT_WRITE,
					     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED ? -errno : 0;
		if (err)
			return err;
	}
	if (writer && (err = mmap_writer_start(&mw, o->writer_mb << 20)))
		return err;
	if ((err = crew_init(&crew, nt)))
		return err;
	for (unsigned i = 0; i < nt; i++) {
		t[i] = (struct toucher){ .base = mem[i], .pages = o->pages };
		crew_spawn(&crew, &t[i].m, toucher_main, &t[i]);
	}
	err = crew_run_to_deadline(&crew, o->seconds);
	crew_collect(&crew, 0, nt, hist, &total);
	if (writer)
		res->writer_ops = mmap_writer_stop(&mw);
	res->faults_s = (double)total / crew.elapsed;
	lat_summary(hist, &res->lat);
	crew_destroy(&crew);
	if (p) {
		struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };

		ufp_stats_get(p, &st);
		res->spins_hit = st.handler_spins_hit;
		res->blocks = st.handler_blocks;
		ufp_pager_destroy(p);
	} else {
		for (unsigned i = 0; i < nt; i++)
			munmap(mem[i], len);
	}
	return err;
}

int bench_faults(struct bench_opts *o)
{
	static const struct fault_cfg cfgs[] = {
		{ "kernel", true, 0, 0, 1 },
		{ "sigbus", false, UFP_DELIVERY_SIGBUS, 0, 1 },
		{ "handler+spin", false, UFP_DELIVERY_HANDLER, 50, 1 },
		{ "handler-nospin", false, UFP_DELIVERY_HANDLER, -1, 1 },
		{ "sigbus+fa16", false, UFP_DELIVERY_SIGBUS, 0, 16 },
		{ "handler+spin+fa16", false, UFP_DELIVERY_HANDLER, 50, 16 },
	};
	const size_t ncfg = sizeof(cfgs) / sizeof(cfgs[0]);
	struct fault_res res[2][2][sizeof(cfgs) / sizeof(cfgs[0])];
	struct kb_hist hist;
	char title[160];

	printf("\n== faults: first-touch fault service, %u pages/thread, <= %.1fs per run, "
	       "fault-around 1 unless +faN\n", o->pages, o->seconds);
	printf("   writer: a thread of this process toggling mprotect over %zu MiB populated\n",
	       o->writer_mb);
	printf("%-18s %3s %6s %12s %10s %10s %10s %9s\n", "mode", "thr", "writer", "faults/s",
	       "p50", "p99", "max", "vs kernel");
	plot_figure_title(o, "faults", "faults: first-touch fault latency, 1 thread, no writer");
	snprintf(title, sizeof(title), "faults: first-touch fault latency, 1 thread, beside a "
		 "thread mprotecting %zu MiB (mmap_lock writer)", o->writer_mb);
	plot_figure_title(o, "faults-writer", title);
	for (int w = 0; w < 2; w++)
		for (unsigned ti = 0; ti < 2; ti++)
			for (size_t c = 0; c < ncfg; c++) {
				struct fault_res *r = &res[w][ti][c];
				unsigned nt = ti + 1;

				progress("[faults] %s threads=%u writer=%s", cfgs[c].name, nt,
					 w ? "on" : "off");
				if (run_fault_cfg(o, &cfgs[c], nt, w, r, &hist)) {
					fprintf(stderr, "\nbench faults: %s failed\n", cfgs[c].name);
					return 1;
				}
				progress_done();
				printf("%-18s %3u %6s %12.0f %8.1fus %8.1fus %8.1fus %8.2fx\n",
				       cfgs[c].name, nt, w ? "on" : "off", r->faults_s,
				       (double)r->lat.p50 / 1e3, (double)r->lat.p99 / 1e3,
				       (double)r->lat.max / 1e3, r->faults_s / res[w][ti][0].faults_s);
				if (ti == 0)
					plot_cdf_series(o, w ? "faults-writer" : "faults", cfgs[c].name,
							&hist);
				if (c == 1 && ti == 0)
					summary_add(o, w ? "faults_writer.sigbus_over_kernel" :
						    "faults.sigbus_over_kernel",
						    w ? "faults, mprotect writer: sigbus / kernel faults/s" :
						    "faults: sigbus / kernel faults/s (1 thread)",
						    r->faults_s, res[w][ti][0].faults_s);
				if (c == 2 && ti == 0 && w)
					summary_add(o, "faults_writer.handler_over_kernel",
						    "faults, mprotect writer: handler / kernel faults/s",
						    r->faults_s, res[w][ti][0].faults_s);
				json_row_begin(o, "faults");
				json_kv_str(o, "mode", cfgs[c].name);
				json_kv_num(o, "threads", nt);
				json_kv_num(o, "writer", w);
				json_kv_num(o, "fault_around", cfgs[c].fault_around);
				json_kv_num(o, "faults_per_s", r->faults_s);
				json_kv_lat(o, "fault_latency", &r->lat);
				json_kv_ratio(o, "ratio_vs_kernel", r->faults_s, res[w][ti][0].faults_s,
					      "the kernel's faults/s");
				json_kv_num(o, "writer_ops", (double)r->writer_ops);
				json_kv_num(o, "handler_spins_hit", (double)r->spins_hit);
				json_kv_num(o, "handler_blocks", (double)r->blocks);
				json_row_end(o);
			}
	printf("   (p50/p99/max: latency of one first touch as the faulting thread sees it)\n");
	return 0;
}

/* ======================================================================
 * Suite "churn": faults on own regions vs structural ops on other regions.
 * ====================================================================== */

struct churn_fault {
	struct crew_member m;      /* lat: one sample per fault; ops: faults */
	ufp_pager *p;
	void *objs[256];
	unsigned nobjs;
};

#define CHURN_FAULT_PAGES 4096

static void *churn_fault_main(void *arg)
{
	struct churn_fault *f = arg;
	size_t len = (size_t)CHURN_FAULT_PAGES * BENCH_PAGE;

	ufp_thread_register();
	crew_ready(&f->m);
	while (!crew_stopping(&f->m) && f->nobjs < 256) {
		char *m;

		/* a fresh object per round: one structural op per CHURN_FAULT_PAGES faults */
		if (ufp_alloc(f->p, len, (void **)&m))
			break;
		f->objs[f->nobjs++] = m;
		for (size_t i = 0; i < CHURN_FAULT_PAGES; i++) {
			uint64_t t0 = now_ns();

			*(volatile char *)(m + i * BENCH_PAGE) = 1;
			kb_hist_record(&f->m.lat, now_ns() - t0);
			f->m.ops++;
			if ((i & 63) == 63 && crew_stopping(&f->m))
				break;
		}
	}
	return NULL;
}

struct churn_writer {
	struct crew_member m;      /* ops: structural operations */
	ufp_pager *p;
};

#define CW_OBJS 16
#define CW_PAGES 64
#define CW_LONG_MB 16

static void *churn_writer_main(void *arg)
{
	struct churn_writer *w = arg;
	ufp_pager *p = w->p;
	char *obj[CW_OBJS];
	size_t len = CW_PAGES * BENCH_PAGE;

	ufp_thread_register();
	for (int i = 0; i < CW_OBJS; i++) {
		ufp_map(p, NULL, len, UFP_PROT_ALL, 0, (void **)&obj[i]);
		memset(obj[i], 1, len);
		/* keep neighbours apart: a one-page read-only guard after each */
		ufp_protect(p, obj[i] + len - BENCH_PAGE, BENCH_PAGE, UFP_PROT_READ);
	}
	crew_ready(&w->m);
	for (uint64_t it = 0; !crew_stopping(&w->m); it++) {
		char *o = obj[it % CW_OBJS];

		switch (it % 4) {
		case 0:   /* split: middle read-only */
			ufp_protect(p, o + len / 4, len / 4, UFP_PROT_READ);
			break;
		case 1:   /* merge back */
			ufp_protect(p, o + len / 4, len / 4, UFP_PROT_ALL);
			break;
		case 2: { /* unmap + map: zaps populated pages under the lock */
			char *n;

			ufp_unmap(p, o, len);
			ufp_map(p, NULL, len, UFP_PROT_ALL, 0, (void **)&n);
			ufp_protect(p, n + len - BENCH_PAGE, BENCH_PAGE, UFP_PROT_READ);
			obj[it % CW_OBJS] = n;
			break;
		}
		case 3:
			if (it % 32 == 3) {  /* the long writer: a large populated unmap */
				char *big;

				if (!ufp_map(p, NULL, (size_t)CW_LONG_MB << 20, UFP_PROT_ALL, 0,
					     (void **)&big)) {
					ufp_advise(p, big, (size_t)CW_LONG_MB << 20, UFP_ADV_WILLNEED);
					ufp_unmap(p, big, (size_t)CW_LONG_MB << 20);
				}
			} else {
				ufp_advise(p, o, len / 2, UFP_ADV_DONTNEED);
			}
			break;
		}
		w->m.ops++;
	}
	for (int i = 0; i < CW_OBJS; i++)
		ufp_unmap(p, obj[i], len);
	return NULL;
}

struct churn_res {
	double faults_s, wops_s;
	struct ufp_latency lat, lock_wait;
	struct ufp_stats st;
};

static int run_churn(struct bench_opts *o, unsigned mode, unsigned nt, unsigned nw,
		     struct churn_res *res)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .lock_mode = mode,
		.delivery = o->delivery, .fault_around = 1, .flags = UFP_PF_NO_EXPORT,
	};
	struct churn_fault *f = calloc(nt ? nt : 1, sizeof(*f));
	struct churn_writer *w = calloc(nw ? nw : 1, sizeof(*w));
	struct bench_crew crew;
	struct kb_hist all = KB_HIST_INIT;
	uint64_t faults = 0, wops = 0;
	ufp_pager *p = NULL;
	int err = -ENOMEM;

	if (!f || !w || (err = crew_init(&crew, nt + nw)))
		goto out;
	if ((err = bench_pager_create(&pr, &p))) {
		crew_destroy(&crew);
		goto out;
	}
	for (unsigned i = 0; i < nt; i++) {
		f[i].p = p;
		crew_spawn(&crew, &f[i].m, churn_fault_main, &f[i]);
	}
	for (unsigned i = 0; i < nw; i++) {
		w[i].p = p;
		crew_spawn(&crew, &w[i].m, churn_writer_main, &w[i]);
	}
	err = crew_run_for(&crew, o->seconds);
	crew_collect(&crew, 0, nt, &all, &faults);
	crew_collect(&crew, nt, nw, NULL, &wops);
	for (unsigned i = 0; i < nt; i++)
		for (unsigned j = 0; j < f[i].nobjs; j++)
			ufp_free(p, f[i].objs[j]);
	res->faults_s = (double)faults / crew.elapsed;
	res->wops_s = (double)wops / crew.elapsed;
	lat_summary(&all, &res->lat);
	res->st = (struct ufp_stats){ .size = sizeof(res->st), .version = UFP_STATS_VERSION };
	ufp_stats_get(p, &res->st);
	res->lock_wait = res->st.lock_wait;
	ufp_pager_destroy(p);
	crew_destroy(&crew);
out:
	free(f);
	free(w);
	return err;
}

/* churn.dat: one block per (mode, W) in thread order, so each becomes one
 * connected line; the throughput and p99 figures for plots.gp. */
static void churn_plot(struct bench_opts *o, const char *const mname[2],
		       struct churn_res r[2][8][4])
{
	unsigned order[8], block = 0;
	char xtics[160] = "";
	size_t xl = 0;

	if (!o->plot)
		return;
	for (unsigned i = 0; i < o->nthreads; i++)
		order[i] = i;
	for (unsigned i = 1; i < o->nthreads; i++)   /* insertion sort by T */
		for (unsigned j = i; j > 0 && o->threads[order[j]] < o->threads[order[j - 1]]; j--) {
			unsigned t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (unsigned i = 0; i < o->nthreads; i++)
		xl += (size_t)snprintf(xtics + xl, sizeof(xtics) - xl, "%s%u", i ? "," : "",
				       o->threads[order[i]]);
	for (int m = 0; m < 2; m++)
		for (unsigned wi = 0; wi < o->nwriters; wi++) {
			plot_row(o, "churn.dat", "%s# %s W=%u\n# T faults_per_s p99_us\n",
				 block++ ? "\n\n" : "", mname[m], o->writers[wi]);
			for (unsigned i = 0; i < o->nthreads; i++) {
				const struct churn_res *x = &r[m][order[i]][wi];

				plot_row(o, "churn.dat", "%u %.0f %.2f\n", o->threads[order[i]],
					 x->faults_s, (double)x->lat.p99 / 1e3);
			}
		}
	for (int fig = 0; fig < 2; fig++) {
		plot_script(o, fig ? "churn-p99.png" : "churn-throughput.png",
			    "\nset output '%s'\n"
			    "set title \"churn: %s against faulting threads T, W threads splitting/"
			    "merging/unmapping other regions\\n(%s delivery, %.2g s per run; %s)\"\n"
			    "set xlabel 'faulting threads T'; set logscale x 2; set xtics (%s)\n"
			    "set xrange [%g:%g]\n"
			    "set ylabel '%s'\n%s"
			    "set key outside right top title 'lock mode, W'\n"
			    "plot", fig ? "churn-p99.png" : "churn-throughput.png",
			    fig ? "fault latency p99" : "fault throughput",
			    o->delivery == UFP_DELIVERY_HANDLER ? "handler" : "sigbus", o->seconds,
			    plot_machine(), xtics, o->threads[order[0]] / 1.25,
			    o->threads[order[o->nthreads - 1]] * 1.25,
			    fig ? "fault latency p99 (µs, log scale)" :
			    "faults per second (all faulting threads)",
			    fig ? "set logscale y; set format y '%g'; set yrange [*:*]\n" :
			    "unset logscale y; set format y '%.0s%c'; set yrange [0:*]\n");
		for (int m = 0, b = 0; m < 2; m++)
			for (unsigned wi = 0; wi < o->nwriters; wi++, b++)
				plot_script(o, NULL, "%s 'churn.dat' index %d using 1:%d with "
					    "linespoints lw 2 pt %d lc %u dt %d title '%s, W=%u'",
					    b ? ", \\\n    " : "", b, fig ? 3 : 2, m ? 6 : 7, wi + 1,
					    m ? 2 : 1, mname[m], o->writers[wi]);
		plot_script(o, NULL, "\nunset logscale; unset format; set xtics auto; "
			    "set xrange [*:*]; set yrange [*:*]\n");
	}
}

int bench_churn(struct bench_opts *o)
{
	static const unsigned modes[2] = { UFP_LOCK_PER_REGION, UFP_LOCK_GLOBAL };
	static const char *const mname[2] = { "per-region", "global" };
	static struct churn_res r[2][8][4];

	printf("\n== churn: T faulting threads on their own regions, W threads splitting, "
	       "merging,\n   protecting and unmapping other regions (delivery %s, %.1fs per run)\n",
	       o->delivery == UFP_DELIVERY_HANDLER ? "handler" : "sigbus", o->seconds);
	printf("%-10s %3s %3s %11s %9s %9s %9s %9s %9s %8s %8s\n", "mode", "T", "W", "faults/s",
	       "p50", "p99", "max", "lockwait99", "struct/s", "fallback", "miss");
	for (unsigned ti = 0; ti < o->nthreads; ti++)
		for (unsigned wi = 0; wi < o->nwriters; wi++)
			for (int m = 0; m < 2; m++) {
				unsigned T = o->threads[ti], W = o->writers[wi];
				struct churn_res *x = &r[m][ti][wi];

				progress("[churn] %s T=%u W=%u", mname[m], T, W);
				if (run_churn(o, modes[m], T, W, x))
					return 1;
				progress_done();
				printf("%-10s %3u %3u %11.0f %7.1fus %7.1fus %7.1fms %8.1fus %9.0f %8llu %8llu\n",
				       mname[m], T, W, x->faults_s, (double)x->lat.p50 / 1e3,
				       (double)x->lat.p99 / 1e3, (double)x->lat.max / 1e6,
				       (double)x->lock_wait.p99 / 1e3, x->wops_s,
				       (unsigned long long)x->st.lock_fallback,
				       (unsigned long long)x->st.lock_miss);
				json_row_begin(o, "churn");
				json_kv_str(o, "mode", mname[m]);
				json_kv_num(o, "T", T);
				json_kv_num(o, "W", W);
				json_kv_num(o, "faults_per_s", x->faults_s);
				json_kv_lat(o, "fault_latency", &x->lat);
				json_kv_lat(o, "lock_wait", &x->lock_wait);
				json_kv_num(o, "structural_ops_per_s", x->wops_s);
				json_kv_num(o, "lock_success", (double)x->st.lock_success);
				json_kv_num(o, "lock_abort", (double)x->st.lock_abort);
				json_kv_num(o, "lock_miss", (double)x->st.lock_miss);
				json_kv_num(o, "lock_fallback", (double)x->st.lock_fallback);
				json_row_end(o);
			}
	churn_plot(o, mname, r);
	printf("\n   per-region / global, same T and W (throughput ratio; p99 ratio, lower is better);\n"
	       "   and each mode against its own W=0 run (the churn's cost):\n");
	printf("%3s %3s %12s %10s %16s %16s\n", "T", "W", "thr ratio", "p99 ratio",
	       "per-region/W=0", "global/W=0");
	for (unsigned ti = 0; ti < o->nthreads; ti++)
		for (unsigned wi = 0; wi < o->nwriters; wi++) {
			struct churn_res *a = &r[0][ti][wi], *b = &r[1][ti][wi];
			struct churn_res *a0 = &r[0][ti][0], *b0 = &r[1][ti][0];

			printf("%3u %3u %11.2fx %9.2fx %15.2fx %15.2fx\n", o->threads[ti],
			       o->writers[wi], a->faults_s / b->faults_s,
			       (double)a->lat.p99 / (double)(b->lat.p99 ? b->lat.p99 : 1),
			       a->faults_s / a0->faults_s, b->faults_s / b0->faults_s);
			if (o->threads[ti] == 2 && o->writers[wi] == 2)
				summary_add(o, "churn.t2_w2.per_region_over_global",
					    "churn T=2 W=2: faults/s per-region / global",
					    a->faults_s, b->faults_s);
			json_row_begin(o, "churn_ratio");
			json_kv_num(o, "T", o->threads[ti]);
			json_kv_num(o, "W", o->writers[wi]);
			json_kv_ratio(o, "throughput_ratio", a->faults_s, b->faults_s,
				      "global faults/s");
			json_kv_ratio(o, "p99_ratio", (double)a->lat.p99, (double)b->lat.p99,
				      "global p99");
			json_kv_ratio(o, "per_region_vs_w0", a->faults_s, a0->faults_s,
				      "per-region faults/s at W=0");
			json_kv_ratio(o, "global_vs_w0", b->faults_s, b0->faults_s,
				      "global faults/s at W=0");
			json_row_end(o);
		}
	return 0;
}

/* ======================================================================
 * Command line.
 * ====================================================================== */

/* The suites, in the order they run. */
static const struct {
	const char *name;
	int (*run)(struct bench_opts *o);
} suites[] = {
	{ "headline", bench_headline }, { "faults", bench_faults }, { "churn", bench_churn },
	{ "locks", bench_locks }, { "tree", bench_tree }, { "swap", bench_swap },
	{ "alloc", bench_alloc },
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: ufpagerctl bench [SUITE...] [options]\n"
		"\n"
		"suites (default: all of them, in this order):\n"
		"  headline T threads on a working set 4x the budget (swap-in faults) while a\n"
		"           thread splits/merges/protects/unmaps: per-region vs global vs the\n"
		"           kernel (memory cgroup + swap file + real mmap churn; root only)\n"
		"  faults   first-touch fault service: sigbus vs handler threads (with and without\n"
		"           adaptive polling, with and without fault-around) vs the kernel's own\n"
		"           fault, 1 and 2 threads, with and without a real mmap_lock writer\n"
		"  churn    faulting threads vs structural-op threads, per-region vs global lock\n"
		"           mode, T in --threads, W in --writers\n"
		"  locks    first-touch faults on own regions vs threads splitting and merging\n"
		"           other regions with ufp_protect, per lock mode\n"
		"  tree     lookup, first touch, split/merge and insert cost through the API at\n"
		"           1,000 and 100,000 regions (the internals alone: tests/bench_proto)\n"
		"  swap     refault after eviction (seq / random / zipf, text / random data):\n"
		"           ufpager swap file and lz4 tier vs kernel swap file and zram-lz4\n"
		"           (the kernel baselines need root); with --backend nbd: swap over\n"
		"           NBD (nbdkit on a Unix socket and loopback TCP, and with 50 us and\n"
		"           500 us per request) beside the local swap file\n"
		"  alloc    malloc/free throughput, p50/p99 and RSS: the heap (jemalloc on pager\n"
		"           memory) vs glibc malloc vs jemalloc on kernel memory, small and\n"
		"           large objects, 1 and 2 threads, and the heap under a budget of half\n"
		"           the working set\n"
		"  all      every suite (the same as none)\n"
		"  apps     not part of 'all': programs nobody here wrote (python3, sqlite3,\n"
		"           sort, stress-ng --vm and --malloc, redis-server, java), each run on\n"
		"           the kernel, under `ufpagerctl run --budget B` (B well below its\n"
		"           working set; output compared with the kernel run) and in a memory\n"
		"           cgroup of B with a swap file (root): wall times side by side and\n"
		"           the pager's fault, swap-in and lock counters; exits 1 when a\n"
		"           result differs\n"
		"  soak     not part of 'all': a data-integrity run of --minutes N (default 1):\n"
		"           T threads (first of --threads, default 4) write, read and verify\n"
		"           every page (content from object key + generation) under a 2 MiB\n"
		"           budget with structural churn (map/unmap/protect, DONTNEED,\n"
		"           PAGEOUT, alloc/realloc/free), fork children that verify a sample,\n"
		"           and injected faults that must not lose data (EAGAIN storms,\n"
		"           delays, write errors, short writes, ENOSPC); SIGBUS delivery for\n"
		"           half the time, handler threads for the other half. Prints the\n"
		"           totals and lost = 0; exits 1 when anything was lost\n"
		"\n"
		"options:\n"
		"  --quick            shorter runs (CI smoke)\n"
		"  --seconds S        time per configuration (default 1.0; quick 0.3);\n"
		"                     for 'soak' the whole run\n"
		"  --minutes N        length of the 'soak' run (fractions allowed)\n"
		"  --inject SPEC      the soak's fault injection (UFPAGER_INJECT syntax; 'off':\n"
		"                     none; default: EAGAIN, delays, write errors, ENOSPC)\n"
		"  --pages N          pages per faulting thread in 'faults' (default 20000)\n"
		"  --threads LIST     faulting threads T, e.g. 1,2,4,8 (default; up to 8 values)\n"
		"  --writers LIST     structural threads W, e.g. 0,1,2 (default; starts with 0)\n"
		"  --delivery MODE    sigbus (default) or handler, for 'churn'\n"
		"  --writer-mb N      populated MiB the mmap_lock writer toggles (default 512)\n"
		"  --backend B        swap: file (default: the suite above) or nbd (swap over\n"
		"                     NBD; starts nbdkit, Debian package nbdkit)\n"
		"  --swap URI         swap --backend nbd: also time this NBD server of yours\n"
		"  --only PART        swap: only the refault table (refault) or only the\n"
		"                     victim-policy table with its kernel row (policy)\n"
		"  --json FILE        also write every row as JSON (and the summary)\n"
		"  --plot DIR         write plot data and DIR/plots.gp there, and draw PNGs with\n"
		"                     gnuplot when it is installed: headline-cdf.png,\n"
		"                     faults-cdf.png, faults-writer-cdf.png (latency tails),\n"
		"                     churn-throughput.png, churn-p99.png (against T)\n"
		"  --apps-full        'apps' at its larger sizes (minutes; default: the CI sizes)\n"
		"  --app NAME         'apps' runs only program NAME (exit 77 if not installed)\n"
		"  --no-cgroup        'apps' without the kernel-cgroup column (no swapon)\n"
		"  -h, --help         this text\n");
}

/* A comma-separated list of at most max numbers in [lo, 64] for option
 * opt. Returns the count, or -1 after saying what is wrong. */
static int parse_list(const char *opt, const char *arg, unsigned *out, unsigned max,
		      unsigned lo)
{
	const char *s = arg;
	unsigned n = 0;
	char *end;

	while (*s) {
		unsigned long v = strtoul(s, &end, 10);

		if (*s < '0' || *s > '9' || v < lo || v > 64 || n == max ||
		    (*end && *end != ','))
			goto bad;
		out[n++] = (unsigned)v;
		s = *end == ',' ? end + 1 : end;
	}
	if (n)
		return (int)n;
bad:
	fprintf(stderr, "ufpagerctl bench: %s: '%s' is not a list of up to %u numbers from %u "
		"to 64\n", opt, arg, max, lo);
	return -1;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, 0, 'q' }, { "seconds", required_argument, 0, 's' },
		{ "pages", required_argument, 0, 'p' }, { "threads", required_argument, 0, 't' },
		{ "writers", required_argument, 0, 'w' }, { "json", required_argument, 0, 'j' },
		{ "delivery", required_argument, 0, 'd' }, { "writer-mb", required_argument, 0, 'm' },
		{ "plot", required_argument, 0, 'P' }, { "minutes", required_argument, 0, 'M' },
		{ "inject", required_argument, 0, 'I' }, { "backend", required_argument, 0, 'B' },
		{ "swap", required_argument, 0, 'S' }, { "only", required_argument, 0, 'O' },
		{ "apps-full", no_argument, 0, 'F' }, { "app", required_argument, 0, 'A' },
		{ "no-cgroup", no_argument, 0, 'C' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct bench_opts o = {
		.seconds = 0, .pages = 20000, .threads = { 1, 2, 4, 8 }, .nthreads = 4,
		.writers = { 0, 1, 2 }, .nwriters = 3, .delivery = UFP_DELIVERY_SIGBUS,
		.writer_mb = 512,
	};
	bool want[NSUITES] = { false }, named = false, soak = false, apps = false;
	int c, n, rc = 0;
	const char *json = NULL;
	struct json js;
	uint64_t u;
	double d;

	optind = 0;    /* glibc: full re-initialisation */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o.quick = true; break;
		case 's':
			if (cli_parse_positive("bench", "--seconds", optarg, 86400 * 7, &d))
				return 2;
			o.seconds = o.soak_seconds = d;
			break;
		case 'I': o.soak_inject = optarg; break;
		case 'B':
			if (strcmp(optarg, "file") && strcmp(optarg, "nbd")) {
				fprintf(stderr, "ufpagerctl bench: --backend: '%s' is not file or nbd\n",
					optarg);
				return 2;
			}
			o.backend = optarg;
			break;
		case 'S': o.swap_uri = optarg; break;
		case 'O':
			if (strcmp(optarg, "refault") && strcmp(optarg, "policy")) {
				fprintf(stderr, "ufpagerctl bench: --only: '%s' is not refault or "
					"policy\n", optarg);
				return 2;
			}
			o.swap_only = optarg;
			break;
		case 'F': o.apps_full = true; break;
		case 'A': o.apps_only = optarg; break;
		case 'C': o.apps_no_cgroup = true; break;
		case 'M':
			if (cli_parse_positive("bench", "--minutes", optarg, 60 * 24 * 7, &d))
				return 2;
			o.soak_seconds = d * 60;
			break;
		case 'p':
			if (cli_parse_uint("bench", "--pages", optarg, 1, 1u << 24, &u))
				return 2;
			o.pages = (unsigned)u;
			break;
		case 'm':
			if (cli_parse_uint("bench", "--writer-mb", optarg, 1, 1u << 20, &u))
				return 2;
			o.writer_mb = (size_t)u;
			break;
		case 't':
			if ((n = parse_list("--threads", optarg, o.threads, 8, 1)) < 0)
				return 2;
			o.nthreads = (unsigned)n;
			o.soak_threads = o.threads[0];
			break;
		case 'w':
			if ((n = parse_list("--writers", optarg, o.writers, 4, 0)) < 0)
				return 2;
			o.nwriters = (unsigned)n;
			break;
		case 'd':
			if (!strcmp(optarg, "sigbus")) {
				o.delivery = UFP_DELIVERY_SIGBUS;
			} else if (!strcmp(optarg, "handler")) {
				o.delivery = UFP_DELIVERY_HANDLER;
			} else {
				fprintf(stderr, "ufpagerctl bench: --delivery: '%s' is not sigbus or "
					"handler\n", optarg);
				return 2;
			}
			break;
		case 'j': json = optarg; break;
		case 'P': o.plot_dir = optarg; break;
		case 'h': bench_usage(stdout); return 0;
		default:
			cli_bad_option("bench", argc, argv);
			goto bad;
		}
	}
	if (o.seconds <= 0)
		o.seconds = o.quick ? 0.3 : 1.0;
	if (o.quick) {
		o.pages = o.pages > 5000 ? 5000 : o.pages;
		o.writer_mb = o.writer_mb > 128 ? 128 : o.writer_mb;
	}
	if (!o.pages || o.writer_mb == 0 || o.writers[0] != 0) {
		fprintf(stderr, "ufpagerctl bench: --pages and --writer-mb must be > 0; "
			"--writers must start with 0 (the baseline)\n");
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		size_t s = 0;

		while (s < NSUITES && strcmp(argv[i], suites[s].name))
			s++;
		if (!strcmp(argv[i], "soak")) {
			soak = named = true;
		} else if (!strcmp(argv[i], "apps")) {
			apps = named = true;
		} else if (s < NSUITES) {
			want[s] = named = true;
		} else if (!strcmp(argv[i], "all")) {
			for (s = 0; s < NSUITES; s++)
				want[s] = named = true;
		} else {
			fprintf(stderr, "ufpagerctl bench: unknown suite '%s'\n", argv[i]);
			bench_usage(stderr);
			return 2;
		}
	}
	for (size_t s = 0; s < NSUITES && !named; s++)
		want[s] = true;
	if (o.plot_dir && plots_start(&o))
		return 1;
	if (json) {
		FILE *f = fopen(json, "w");

		if (!f) {
			fprintf(stderr, "ufpagerctl bench: cannot write %s: %s\n", json, strerror(errno));
			return 1;
		}
		json_init(&js, f);
		js.newline_rows = true;
		o.json = &js;
		json_object_begin(o.json, NULL);
		json_uint(o.json, "ufpager_bench", 2);
		json_str(o.json, "library_version", ufp_version());
		json_uint(o.json, "cpus", (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
		json_array_begin(o.json, "rows");
	}
	printf("ufpager bench: %ld CPUs; every ratio compares rows of this run\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
	for (size_t s = 0; s < NSUITES && !rc; s++)
		if (want[s])
			rc = suites[s].run(&o);
	if (soak && !rc) {
		if (o.soak_seconds <= 0)
			o.soak_seconds = 60;
		rc = bench_soak(&o);
	}
	if (apps && !rc)
		rc = bench_apps(&o);
	if (o.json)
		json_array_end(o.json);
	summary_print(&o);
	plots_finish(&o);
	if (o.json) {
		json_object_end(o.json);
		fputc('\n', js.f);
		if (fclose(js.f)) {
			fprintf(stderr, "ufpagerctl bench: writing %s failed: %s\n", json,
				strerror(errno));
			rc = rc ? rc : 1;
		}
	}
	return rc;
bad:
	bench_usage(stderr);
	return 2;
}
