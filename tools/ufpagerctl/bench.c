/* SPDX-License-Identifier: MIT */
/*
 * bench.c - `ufpagerctl bench`: option parsing, shared helpers (latency
 * histograms, JSON rows, the real mmap_lock writer) and the end-to-end
 * suites through userfaultfd:
 *   faults: fault service per delivery mode and polling policy beside the
 *           kernel's own first-touch fault, with and without a real
 *           mmap_lock writer in the same process;
 *   churn:  faulting threads on their own regions while other threads
 *           split, merge, protect and unmap other regions, per lock mode.
 * Every figure is measured in this run; ratios compare rows of this run.
 */
#include <getopt.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

/* ======================================================================
 * Helpers.
 * ====================================================================== */

void lat_merge(struct lat *dst, const struct lat *src)
{
	for (unsigned i = 0; i < UFP_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->sum += src->sum;
	dst->n += src->n;
	if (src->max > dst->max)
		dst->max = src->max;
}

void lat_summary(const struct lat *l, struct ufp_latency *out)
{
	ufp_hist_summary(l->b, l->max, l->sum, out);
}

void json_row_begin(struct bench_opts *o, const char *suite)
{
	if (!o->json)
		return;
	fprintf(o->json, "%s\n  {\"suite\":\"%s\"", o->json_first ? "" : ",", suite);
	o->json_first = false;
}

void json_kv_str(struct bench_opts *o, const char *k, const char *v)
{
	if (o->json)
		fprintf(o->json, ",\"%s\":\"%s\"", k, v);
}

void json_kv_num(struct bench_opts *o, const char *k, double v)
{
	if (o->json)
		fprintf(o->json, ",\"%s\":%.6g", k, v);
}

void json_kv_lat(struct bench_opts *o, const char *k, const struct ufp_latency *l)
{
	if (o->json)
		fprintf(o->json, ",\"%s\":{\"count\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,"
			"\"p999_ns\":%llu,\"max_ns\":%llu}", k, (unsigned long long)l->count,
			(unsigned long long)l->p50, (unsigned long long)l->p99,
			(unsigned long long)l->p999, (unsigned long long)l->max);
}

void json_row_end(struct bench_opts *o)
{
	if (o->json)
		fprintf(o->json, "}");
}

void summary_add(struct bench_opts *o, const char *name, double v)
{
	if (o->nsummary < 32) {
		snprintf(o->summary[o->nsummary].name, sizeof(o->summary[0].name), "%s", name);
		o->summary[o->nsummary++].v = v;
	}
}

void plot_row(struct bench_opts *o, const char *file, const char *fmt, ...)
{
	char path[512];
	va_list ap;
	FILE *f;

	if (!o->plot_dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", o->plot_dir, file);
	f = fopen(path, "a");
	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

void plot_cdf(struct bench_opts *o, const char *name, const struct lat *l)
{
	char file[128];
	uint64_t acc = 0;

	if (!o->plot_dir || !l->n)
		return;
	snprintf(file, sizeof(file), "cdf-%s.dat", name);
	for (unsigned i = 0; i < UFP_HIST_BUCKETS; i++) {
		if (!l->b[i])
			continue;
		acc += l->b[i];
		plot_row(o, file, "%llu %.6f\n", (unsigned long long)ufp_hist_bucket_low(i + 1),
			 (double)acc / (double)l->n);
	}
}

/* Write the gnuplot script and run it when gnuplot is installed. */
static void plots_finish(struct bench_opts *o)
{
	char path[512], cmd[700];
	FILE *f;

	if (!o->plot_dir)
		return;
	snprintf(path, sizeof(path), "%s/plots.gp", o->plot_dir);
	f = fopen(path, "w");
	if (!f)
		return;
	snprintf(cmd, sizeof(cmd), "%s/churn.dat", o->plot_dir);
	bool churn = access(cmd, F_OK) == 0;

	fprintf(f,
		"set terminal pngcairo size 900,560\n"
		"set grid\n"
		"set output 'headline-cdf.png'\n"
		"set title 'headline: latency CDF of faulting accesses'\n"
		"set logscale x; set xlabel 'latency (ns)'; set ylabel 'fraction'; set key bottom right\n"
		"files = system('ls cdf-*.dat 2>/dev/null')\n"
		"plot for [f in files] f using 1:2 with steps title f\n"
		"unset logscale x\n");
	if (churn)
		fprintf(f,
		"set output 'churn-throughput.png'\n"
		"set title 'churn: faulting threads throughput vs threads (W = structural threads)'\n"
		"set xlabel 'faulting threads T'; set ylabel 'faults/s'; set key top left\n"
		"plot for [w in '0 1 2'] 'churn.dat' using ($2==w && strcol(1) eq 'per-region' ? $3 : 1/0):4 "
		"with linespoints title 'per-region W='.w, "
		"for [w in '0 1 2'] 'churn.dat' using ($2==w && strcol(1) eq 'global' ? $3 : 1/0):4 "
		"with linespoints dt 2 title 'global W='.w\n"
		"set output 'churn-p99.png'\n"
		"set title 'churn: fault p99 vs threads'; set ylabel 'p99 (us)'; set logscale y\n"
		"plot for [w in '0 1 2'] 'churn.dat' using ($2==w && strcol(1) eq 'per-region' ? $3 : 1/0):5 "
		"with linespoints title 'per-region W='.w, "
		"for [w in '0 1 2'] 'churn.dat' using ($2==w && strcol(1) eq 'global' ? $3 : 1/0):5 "
		"with linespoints dt 2 title 'global W='.w\n");
	fclose(f);
	if (!churn && access(path, F_OK) == 0)
		snprintf(cmd, sizeof(cmd), "%s/cdf-per-region.dat", o->plot_dir);
	if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
		printf("plots: data and %s written; install gnuplot-nox to draw them\n", path);
		return;
	}
	snprintf(cmd, sizeof(cmd), "cd '%s' && gnuplot plots.gp 2>/dev/null", o->plot_dir);
	if (system(cmd) == 0)
		printf("plots: %s/{headline-cdf,churn-throughput,churn-p99}.png\n", o->plot_dir);
	else
		printf("plots: gnuplot failed on %s\n", path);
}

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
	char *base;
	size_t pages;
	double deadline;
	size_t done;
	struct lat lat;
	pthread_barrier_t *bar;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	ufp_thread_register();
	pthread_barrier_wait(t->bar);
	for (size_t i = 0; i < t->pages; i++) {
		uint64_t t0 = ufp_now_ns();

		*(volatile char *)(t->base + i * UFP_PAGE_SIZE) = 1;
		lat_add(&t->lat, ufp_now_ns() - t0);
		t->done++;
		if ((i & 63) == 63 && now_s() > t->deadline)
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

static int run_fault_cfg(struct bench_opts *o, const struct fault_cfg *c, unsigned nt,
			 bool writer, struct fault_res *res)
{
	struct toucher t[16];
	pthread_t th[16];
	pthread_barrier_t bar;
	struct mmap_writer mw;
	ufp_pager *p = NULL;
	struct lat all = { 0 };
	size_t total = 0, len = (size_t)o->pages * UFP_PAGE_SIZE;
	char *mem[16];
	double t0, el;
	int err;

	memset(res, 0, sizeof(*res));
	if (!c->kernel) {
		struct ufp_params pr = {
			.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
			.delivery = c->delivery, .spin_us = c->spin_us,
			.fault_around = c->fault_around, .flags = UFP_PF_NO_EXPORT,
		};
		err = ufp_pager_create(&pr, &p);
		if (err) {
			fprintf(stderr, "bench: %s\n", ufp_last_error());
			return err;
		}
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
	pthread_barrier_init(&bar, NULL, nt + 1);
	for (unsigned i = 0; i < nt; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].base = mem[i];
		t[i].pages = o->pages;
		t[i].bar = &bar;
		t[i].deadline = now_s() + 3600;
		pthread_create(&th[i], NULL, toucher_main, &t[i]);
	}
	t0 = now_s();
	for (unsigned i = 0; i < nt; i++)
		t[i].deadline = t0 + o->seconds;
	pthread_barrier_wait(&bar);
	for (unsigned i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		lat_merge(&all, &t[i].lat);
		total += t[i].done;
	}
	el = now_s() - t0;
	pthread_barrier_destroy(&bar);
	if (writer)
		res->writer_ops = mmap_writer_stop(&mw);
	res->faults_s = (double)total / el;
	lat_summary(&all, &res->lat);
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
	return 0;
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

	printf("\n== faults: first-touch fault service, %u pages/thread, <= %.1fs per run, "
	       "fault-around 1 unless +faN\n", o->pages, o->seconds);
	printf("   writer: a thread of this process toggling mprotect over %zu MiB populated\n",
	       o->writer_mb);
	printf("%-18s %3s %6s %12s %10s %10s %10s %9s\n", "mode", "thr", "writer", "faults/s",
	       "p50", "p99", "max", "vs kernel");
	for (int w = 0; w < 2; w++)
		for (unsigned ti = 0; ti < 2; ti++)
			for (size_t c = 0; c < ncfg; c++) {
				struct fault_res *r = &res[w][ti][c];
				unsigned nt = ti + 1;

				fprintf(stderr, "\r[faults] %s threads=%u writer=%s ...        ",
					cfgs[c].name, nt, w ? "on" : "off");
				if (run_fault_cfg(o, &cfgs[c], nt, w, r)) {
					fprintf(stderr, "\nbench faults: %s failed\n", cfgs[c].name);
					return 1;
				}
				fprintf(stderr, "\r%70s\r", "");
				printf("%-18s %3u %6s %12.0f %8.1fus %8.1fus %8.1fus %8.2fx\n",
				       cfgs[c].name, nt, w ? "on" : "off", r->faults_s,
				       (double)r->lat.p50 / 1e3, (double)r->lat.p99 / 1e3,
				       (double)r->lat.max / 1e3, r->faults_s / res[w][ti][0].faults_s);
				if (c == 1 && ti == 0)
					summary_add(o, w ? "faults, mprotect writer: sigbus / kernel faults/s" :
						    "faults: sigbus / kernel faults/s (1 thread)",
						    r->faults_s / res[w][ti][0].faults_s);
				if (c == 2 && ti == 0 && w)
					summary_add(o, "faults, mprotect writer: handler / kernel faults/s",
						    r->faults_s / res[w][ti][0].faults_s);
				json_row_begin(o, "faults");
				json_kv_str(o, "mode", cfgs[c].name);
				json_kv_num(o, "threads", nt);
				json_kv_num(o, "writer", w);
				json_kv_num(o, "fault_around", cfgs[c].fault_around);
				json_kv_num(o, "faults_per_s", r->faults_s);
				json_kv_lat(o, "fault_latency", &r->lat);
				json_kv_num(o, "ratio_vs_kernel", r->faults_s / res[w][ti][0].faults_s);
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

struct churn_ctx {
	ufp_pager *p;
	_Atomic bool stop;
	pthread_barrier_t bar;
	unsigned fault_pages;
};

struct churn_fault {
	struct churn_ctx *c;
	struct lat lat;
	uint64_t faults;
	void *objs[256];
	unsigned nobjs;
};

static void *churn_fault_main(void *arg)
{
	struct churn_fault *f = arg;
	struct churn_ctx *c = f->c;
	size_t len = (size_t)c->fault_pages * UFP_PAGE_SIZE;

	ufp_thread_register();
	pthread_barrier_wait(&c->bar);
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed) && f->nobjs < 256) {
		char *m;

		/* a fresh object per round: one structural op per fault_pages faults */
		if (ufp_alloc(c->p, len, (void **)&m))
			break;
		f->objs[f->nobjs++] = m;
		for (size_t i = 0; i < c->fault_pages; i++) {
			uint64_t t0 = ufp_now_ns();

			*(volatile char *)(m + i * UFP_PAGE_SIZE) = 1;
			lat_add(&f->lat, ufp_now_ns() - t0);
			f->faults++;
			if ((i & 63) == 63 && atomic_load_explicit(&c->stop, memory_order_relaxed))
				break;
		}
	}
	return NULL;
}

struct churn_writer {
	struct churn_ctx *c;
	uint64_t ops;
	unsigned seed;
};

#define CW_OBJS 16
#define CW_PAGES 64
#define CW_LONG_MB 16

static void *churn_writer_main(void *arg)
{
	struct churn_writer *w = arg;
	struct churn_ctx *c = w->c;
	char *obj[CW_OBJS];
	size_t len = CW_PAGES * UFP_PAGE_SIZE;

	ufp_thread_register();
	for (int i = 0; i < CW_OBJS; i++) {
		ufp_map(c->p, NULL, len, UFP_PROT_ALL, 0, (void **)&obj[i]);
		memset(obj[i], 1, len);
		/* keep neighbours apart: a one-page read-only guard after each */
		ufp_protect(c->p, obj[i] + len - UFP_PAGE_SIZE, UFP_PAGE_SIZE, UFP_PROT_READ);
	}
	pthread_barrier_wait(&c->bar);
	for (uint64_t it = 0; !atomic_load_explicit(&c->stop, memory_order_relaxed); it++) {
		char *o = obj[it % CW_OBJS];

		switch (it % 4) {
		case 0:   /* split: middle read-only */
			ufp_protect(c->p, o + len / 4, len / 4, UFP_PROT_READ);
			break;
		case 1:   /* merge back */
			ufp_protect(c->p, o + len / 4, len / 4, UFP_PROT_ALL);
			break;
		case 2: { /* unmap + map: zaps populated pages under the lock */
			char *n;

			ufp_unmap(c->p, o, len);
			ufp_map(c->p, NULL, len, UFP_PROT_ALL, 0, (void **)&n);
			ufp_protect(c->p, n + len - UFP_PAGE_SIZE, UFP_PAGE_SIZE, UFP_PROT_READ);
			obj[it % CW_OBJS] = n;
			break;
		}
		case 3:
			if (it % 32 == 3) {  /* the long writer: a large populated unmap */
				char *big;

				if (!ufp_map(c->p, NULL, (size_t)CW_LONG_MB << 20, UFP_PROT_ALL, 0,
					     (void **)&big)) {
					ufp_advise(c->p, big, (size_t)CW_LONG_MB << 20, UFP_ADV_WILLNEED);
					ufp_unmap(c->p, big, (size_t)CW_LONG_MB << 20);
				}
			} else {
				ufp_advise(c->p, o, len / 2, UFP_ADV_DONTNEED);
			}
			break;
		}
		w->ops++;
	}
	for (int i = 0; i < CW_OBJS; i++)
		ufp_unmap(c->p, obj[i], len);
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
	struct churn_ctx c = { .fault_pages = 4096 };
	struct churn_fault *f = calloc(nt, sizeof(*f));
	struct churn_writer *w = calloc(nw ? nw : 1, sizeof(*w));
	pthread_t *th = calloc(nt + nw, sizeof(*th));
	struct lat all = { 0 };
	uint64_t faults = 0, wops = 0;
	double t0, el;
	int err;

	if (!f || !w || !th)
		return -ENOMEM;
	err = ufp_pager_create(&pr, &c.p);
	if (err) {
		fprintf(stderr, "bench: %s\n", ufp_last_error());
		return err;
	}
	pthread_barrier_init(&c.bar, NULL, nt + nw + 1);
	for (unsigned i = 0; i < nt; i++) {
		f[i].c = &c;
		pthread_create(&th[i], NULL, churn_fault_main, &f[i]);
	}
	for (unsigned i = 0; i < nw; i++) {
		w[i].c = &c;
		w[i].seed = i;
		pthread_create(&th[nt + i], NULL, churn_writer_main, &w[i]);
	}
	pthread_barrier_wait(&c.bar);
	t0 = now_s();
	usleep((useconds_t)(o->seconds * 1e6));
	atomic_store(&c.stop, true);
	for (unsigned i = 0; i < nt + nw; i++)
		pthread_join(th[i], NULL);
	el = now_s() - t0;
	for (unsigned i = 0; i < nt; i++) {
		lat_merge(&all, &f[i].lat);
		faults += f[i].faults;
		for (unsigned j = 0; j < f[i].nobjs; j++)
			ufp_free(c.p, f[i].objs[j]);
	}
	for (unsigned i = 0; i < nw; i++)
		wops += w[i].ops;
	res->faults_s = (double)faults / el;
	res->wops_s = (double)wops / el;
	lat_summary(&all, &res->lat);
	res->st = (struct ufp_stats){ .size = sizeof(res->st), .version = UFP_STATS_VERSION };
	ufp_stats_get(c.p, &res->st);
	res->lock_wait = res->st.lock_wait;
	ufp_pager_destroy(c.p);
	pthread_barrier_destroy(&c.bar);
	free(f);
	free(w);
	free(th);
	return 0;
}

int bench_churn(struct bench_opts *o)
{
	static const unsigned modes[2] = { UFP_LOCK_PER_REGION, UFP_LOCK_GLOBAL };
	static const char *mname[2] = { "per-region", "global" };
	struct churn_res r[2][8][4];

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

				fprintf(stderr, "\r[churn] %s T=%u W=%u ...        ", mname[m], T, W);
				if (run_churn(o, modes[m], T, W, x))
					return 1;
				fprintf(stderr, "\r%60s\r", "");
				printf("%-10s %3u %3u %11.0f %7.1fus %7.1fus %7.1fms %8.1fus %9.0f %8llu %8llu\n",
				       mname[m], T, W, x->faults_s, (double)x->lat.p50 / 1e3,
				       (double)x->lat.p99 / 1e3, (double)x->lat.max / 1e6,
				       (double)x->lock_wait.p99 / 1e3, x->wops_s,
				       (unsigned long long)x->st.lock_fallback,
				       (unsigned long long)x->st.lock_miss);
				plot_row(o, "churn.dat", "%s %u %u %.0f %.2f\n", mname[m], W, T,
					 x->faults_s, (double)x->lat.p99 / 1e3);
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
				summary_add(o, "churn T=2 W=2: faults/s per-region / global",
					    a->faults_s / b->faults_s);
			json_row_begin(o, "churn_ratio");
			json_kv_num(o, "T", o->threads[ti]);
			json_kv_num(o, "W", o->writers[wi]);
			json_kv_num(o, "throughput_ratio", a->faults_s / b->faults_s);
			json_kv_num(o, "p99_ratio", (double)a->lat.p99 / (double)(b->lat.p99 ? b->lat.p99 : 1));
			json_kv_num(o, "per_region_vs_w0", a->faults_s / a0->faults_s);
			json_kv_num(o, "global_vs_w0", b->faults_s / b0->faults_s);
			json_row_end(o);
		}
	return 0;
}

/* ======================================================================
 * Command line.
 * ====================================================================== */

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
		"  locks    the lock protocol alone (no userfaultfd): lookups+trylock vs\n"
		"           split/merge writers, per mode\n"
		"  tree     region lookup ns and structural update us at 1,000 and 100,000 regions\n"
		"  swap     refault after eviction (seq / random / zipf, text / random data):\n"
		"           ufpager swap file and lz4 tier vs kernel swap file and zram-lz4\n"
		"           (the kernel baselines need root)\n"
		"\n"
		"options:\n"
		"  --quick            shorter runs (CI smoke)\n"
		"  --seconds S        time per configuration (default 1.0; quick 0.3)\n"
		"  --pages N          pages per faulting thread in 'faults' (default 20000)\n"
		"  --threads LIST     e.g. 1,2,4,8 (default)\n"
		"  --writers LIST     e.g. 0,1,2 (default)\n"
		"  --delivery MODE    sigbus (default) or handler, for 'churn'\n"
		"  --writer-mb N      populated MiB the mmap_lock writer toggles (default 512)\n"
		"  --json FILE        also write every row as JSON (and the summary)\n"
		"  --plot DIR         write plot data there and draw PNGs with gnuplot\n"
		"  -h, --help         this text\n");
}

static int parse_list(const char *s, unsigned *out, unsigned max)
{
	unsigned n = 0;
	char *end;

	while (*s && n < max) {
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || v > 64)
			return -1;
		out[n++] = (unsigned)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return n ? (int)n : -1;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, 0, 'q' }, { "seconds", required_argument, 0, 's' },
		{ "pages", required_argument, 0, 'p' }, { "threads", required_argument, 0, 't' },
		{ "writers", required_argument, 0, 'w' }, { "json", required_argument, 0, 'j' },
		{ "delivery", required_argument, 0, 'd' }, { "writer-mb", required_argument, 0, 'm' },
		{ "plot", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
	};
	struct bench_opts o = {
		.seconds = 0, .pages = 20000, .threads = { 1, 2, 4, 8 }, .nthreads = 4,
		.writers = { 0, 1, 2 }, .nwriters = 3, .delivery = UFP_DELIVERY_SIGBUS,
		.writer_mb = 512, .json_first = true,
	};
	bool run_faults = false, run_churn_s = false, run_locks = false, run_tree = false;
	bool run_swap = false, run_head = false;
	int c, n, rc = 0;
	const char *json = NULL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o.quick = true; break;
		case 's': o.seconds = atof(optarg); break;
		case 'p': o.pages = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': o.writer_mb = strtoul(optarg, NULL, 10); break;
		case 't':
			if ((n = parse_list(optarg, o.threads, 8)) < 0)
				goto bad;
			o.nthreads = (unsigned)n;
			break;
		case 'w':
			if ((n = parse_list(optarg, o.writers, 4)) < 0)
				goto bad;
			o.nwriters = (unsigned)n;
			break;
		case 'd':
			if (!strcmp(optarg, "sigbus"))
				o.delivery = UFP_DELIVERY_SIGBUS;
			else if (!strcmp(optarg, "handler"))
				o.delivery = UFP_DELIVERY_HANDLER;
			else
				goto bad;
			break;
		case 'j': json = optarg; break;
		case 'P': o.plot_dir = optarg; break;
		case 'h': bench_usage(stdout); return 0;
		default: goto bad;
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
		if (!strcmp(argv[i], "faults")) run_faults = true;
		else if (!strcmp(argv[i], "churn")) run_churn_s = true;
		else if (!strcmp(argv[i], "locks")) run_locks = true;
		else if (!strcmp(argv[i], "tree")) run_tree = true;
		else if (!strcmp(argv[i], "swap")) run_swap = true;
		else if (!strcmp(argv[i], "headline")) run_head = true;
		else if (!strcmp(argv[i], "all"))
			run_head = run_faults = run_churn_s = run_locks = run_tree = run_swap = true;
		else {
			fprintf(stderr, "ufpagerctl bench: unknown suite '%s'\n", argv[i]);
			bench_usage(stderr);
			return 2;
		}
	}
	if (!run_faults && !run_churn_s && !run_locks && !run_tree && !run_swap && !run_head)
		run_head = run_faults = run_churn_s = run_locks = run_tree = run_swap = true;
	if (o.plot_dir) {
		char cmd[600];

		mkdir(o.plot_dir, 0755);
		snprintf(cmd, sizeof(cmd), "rm -f '%s'/*.dat", o.plot_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "ufpagerctl bench: cannot clean %s\n", o.plot_dir);
	}
	if (json) {
		o.json = fopen(json, "w");
		if (!o.json) {
			fprintf(stderr, "ufpagerctl bench: cannot write %s: %s\n", json, strerror(errno));
			return 1;
		}
		fprintf(o.json, "{\"ufpager_bench\":1,\"cpus\":%ld,\"rows\":[",
			sysconf(_SC_NPROCESSORS_ONLN));
	}
	printf("ufpager bench: %ld CPUs; every ratio compares rows of this run\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
	if (run_head && !rc)
		rc = bench_headline(&o);
	if (run_faults && !rc)
		rc = bench_faults(&o);
	if (run_churn_s && !rc)
		rc = bench_churn(&o);
	if (run_locks && !rc)
		rc = bench_locks(&o);
	if (run_tree && !rc)
		rc = bench_tree(&o);
	if (run_swap && !rc)
		rc = bench_swap(&o);
	if (o.nsummary) {
		printf("\n== summary: ratios measured side by side in this run\n");
		for (unsigned i = 0; i < o.nsummary; i++)
			printf("  %-58s %8.2fx\n", o.summary[i].name, o.summary[i].v);
	}
	plots_finish(&o);
	if (o.json) {
		fprintf(o.json, "\n],\"summary\":{");
		for (unsigned i = 0; i < o.nsummary; i++)
			fprintf(o.json, "%s\"%s\":%.4g", i ? "," : "", o.summary[i].name,
				o.summary[i].v);
		fprintf(o.json, "}}\n");
		fclose(o.json);
	}
	return rc;
bad:
	bench_usage(stderr);
	return 2;
}
