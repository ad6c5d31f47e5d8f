/* SPDX-License-Identifier: MIT */
/*
 * bench_rows.c - what the suites share to report and to pit threads
 * against each other: JSON rows through the one writer (json.h), and the
 * locks table, T reader threads against W writer threads per lock mode
 * (bench_tree.c through the API, tests/bench_proto.c on the internals).
 * Main thread only, except the crews' workers.
 */
#include <stdarg.h>
#include <unistd.h>

#include "bench.h"

/* ======================================================================
 * Progress lines.
 * ====================================================================== */

static int progress_tty = -1;   /* unknown until the first line */

void progress(const char *fmt, ...)
{
	va_list ap;

	if (progress_tty < 0)
		progress_tty = isatty(STDERR_FILENO);
	if (progress_tty)
		fputc('\r', stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(progress_tty ? " ...        " : "\n", stderr);
}

void progress_done(void)
{
	if (progress_tty > 0)
		fprintf(stderr, "\r%70s\r", "");
}

/* ======================================================================
 * JSON rows (no-ops without --json).
 * ====================================================================== */

void json_row_begin(struct bench_opts *o, const char *suite)
{
	if (!o->json)
		return;
	json_object_begin(o->json, NULL);
	json_str(o->json, "suite", suite);
}

void json_kv_str(struct bench_opts *o, const char *k, const char *v)
{
	if (o->json)
		json_str(o->json, k, v);
}

void json_kv_num(struct bench_opts *o, const char *k, double v)
{
	if (o->json)
		json_num(o->json, k, v);
}

void json_kv_ratio(struct bench_opts *o, const char *k, double num, double den,
		   const char *den_name)
{
	if (o->json)
		json_ratio(o->json, k, num, den, den_name);
}

void json_kv_lat(struct bench_opts *o, const char *k, const struct ufp_latency *l)
{
	if (!o->json)
		return;
	json_object_begin(o->json, k);
	json_uint(o->json, "count", l->count);
	json_uint(o->json, "p50_ns", l->p50);
	json_uint(o->json, "p99_ns", l->p99);
	json_uint(o->json, "p999_ns", l->p999);
	json_uint(o->json, "max_ns", l->max);
	json_object_end(o->json);
}

void json_row_end(struct bench_opts *o)
{
	if (o->json)
		json_object_end(o->json);
}

/* ======================================================================
 * Readers against writers, per lock mode.
 * ====================================================================== */

int locks_crew_run(struct bench_opts *o, unsigned nt, void *readers, size_t rsize,
		   void *(*reader)(void *), unsigned nw, void *writers, size_t wsize,
		   void *(*writer)(void *), struct locks_res *res)
{
	struct bench_crew crew;
	struct kb_hist all = KB_HIST_INIT;
	uint64_t rops = 0, wops = 0;
	int err;

	if ((err = crew_init(&crew, nt + nw)))
		return err;
	for (unsigned i = 0; i < nt; i++) {
		void *r = (char *)readers + i * rsize;

		crew_spawn(&crew, r, reader, r);   /* each begins with its crew_member */
	}
	for (unsigned i = 0; i < nw; i++) {
		void *w = (char *)writers + i * wsize;

		crew_spawn(&crew, w, writer, w);
	}
	err = crew_run_for(&crew, o->seconds);
	crew_collect(&crew, 0, nt, &all, &rops);
	crew_collect(&crew, nt, nw, NULL, &wops);
	res->rops_s = (double)rops / crew.elapsed;
	res->wops_s = (double)wops / crew.elapsed;
	lat_summary(&all, &res->lat);
	crew_destroy(&crew);
	return err;
}

int locks_table(struct bench_opts *o, const char *what, const char *ops,
		int (*run)(struct bench_opts *o, enum ufp_lock_mode mode, unsigned nt,
			   unsigned nw, struct locks_res *res))
{
	static const enum ufp_lock_mode modes[2] = { UFP_LOCK_PER_REGION, UFP_LOCK_GLOBAL };
	static const char *mname[2] = { "per-region", "global" };
	char ops_s[32], ops_key[48];

	snprintf(ops_s, sizeof(ops_s), "%s/s", ops);
	snprintf(ops_key, sizeof(ops_key), "%s_per_s", ops);
	printf("%s", what);
	printf("%-10s %3s %3s %13s %9s %9s %9s %11s %9s %9s\n", "mode", "T", "W", ops_s,
	       "p50", "p99", "max", "updates/s", "fallback", "miss");
	for (unsigned ti = 0; ti < o->nthreads; ti++)
		for (unsigned wi = 0; wi < o->nwriters; wi++) {
			struct locks_res r[2];

			for (int m = 0; m < 2; m++) {
				unsigned T = o->threads[ti], W = o->writers[wi];

				memset(&r[m], 0, sizeof(r[m]));
				r[m].st = (struct ufp_stats){ .size = sizeof(r[m].st),
							      .version = UFP_STATS_VERSION };
				progress("[locks] %s T=%u W=%u", mname[m], T, W);
				if (run(o, modes[m], T, W, &r[m]))
					return 1;
				progress_done();
				printf("%-10s %3u %3u %13.0f %7lluns %7lluns %7.1fus %11.0f %9llu %9llu\n",
				       mname[m], T, W, r[m].rops_s, (unsigned long long)r[m].lat.p50,
				       (unsigned long long)r[m].lat.p99, (double)r[m].lat.max / 1e3,
				       r[m].wops_s, (unsigned long long)r[m].st.lock_fallback,
				       (unsigned long long)r[m].st.lock_miss);
				json_row_begin(o, "locks");
				json_kv_str(o, "mode", mname[m]);
				json_kv_num(o, "T", T);
				json_kv_num(o, "W", W);
				json_kv_num(o, ops_key, r[m].rops_s);
				json_kv_lat(o, "latency", &r[m].lat);
				json_kv_num(o, "updates_per_s", r[m].wops_s);
				json_kv_num(o, "lock_fallback", (double)r[m].st.lock_fallback);
				json_kv_num(o, "lock_miss", (double)r[m].st.lock_miss);
				json_row_end(o);
			}
			printf("%-10s %3s %3s %12.2fx %8.2fx (throughput per-region/global; "
			       "p99 global/per-region)\n", "ratio", "", "", r[0].rops_s / r[1].rops_s,
			       (double)r[1].lat.p99 / (double)(r[0].lat.p99 ? r[0].lat.p99 : 1));
		}
	return 0;
}
