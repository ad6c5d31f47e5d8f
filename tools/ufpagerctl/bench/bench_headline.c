/* SPDX-License-Identifier: MIT */
/*
 * bench_headline.c - the workload ufpager exists for, side by side in one
 * run: T threads access a working set 4x the resident budget (so faults
 * need swap-in) while a thread splits, merges, protects and unmaps other
 * memory. Three systems:
 *   per-region: ufpager, per-VMA lock image;
 *   global:     ufpager, every fault under the pager lock (mmap_lock);
 *   kernel:     plain anonymous memory in a child process confined by a
 *               memory cgroup to the same budget, on kernel swap (a swap
 *               file set up for the run), with real mmap/mprotect/munmap
 *               churn threads in the same process.
 * A "fault" is an access slower than 1 us (a resident access costs tens of
 * ns here), measured the same way in all three.
 *
 * Each system runs twice: alone, and beside a real mmap_lock writer, a
 * thread of the same process looping mprotect over --writer-mb of
 * populated memory (mmap_writer_start; the kernel's child maps it before
 * it enters its cgroup, so it is charged outside the comparison). The
 * summary gives each system's ratio with / without the writer. A third
 * per-region run beside a thread that only burns CPU separates what the
 * writer costs through the CPU it takes (one of this machine's two cores)
 * from what it costs through mmap_lock.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "kbase.h"

#define HL_FAULT_NS 1000

struct hl_res {
	bool ok;
	double faults_s, accesses_s, struct_s, writer_s;
	struct ufp_latency lat, lock_wait;
	uint64_t swapins;
	double data_mib;              /* working-set pages in RAM at the end */
	double miss_k, soft_k;        /* faults that read swap, and parked pages
				       * moved back, per 1000 accesses */
	double over_mib;              /* kernel: the cgroup's charge besides data */
	char why[320];
	struct kb_hist hist;          /* for the CDF plot */
};

struct hl_thread {
	struct crew_member m;      /* lat: one sample per fault; ops: accesses */
	char *base;
	size_t pages;
	unsigned seed;
	uint64_t faults;
};

static void *hl_access(void *arg)
{
	struct hl_thread *t = arg;
	uint64_t x = t->seed * 0x9E3779B97F4A7C15ull + 1;

	ufp_thread_register();
	crew_ready(&t->m);
	while (!crew_stopping(&t->m)) {
		for (int k = 0; k < 64; k++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			/* 80% of accesses to a hot quarter, 20% anywhere */
			size_t i = (x % 5) ? (x >> 8) % (t->pages / 4) : (x >> 8) % t->pages;
			uint64_t *w = (uint64_t *)(t->base + i * BENCH_PAGE) + (x >> 40) % 512;
			uint64_t a = now_ns(), d;

			*w += 1;
			d = now_ns() - a;
			t->m.ops++;
			if (d >= HL_FAULT_NS) {
				kb_hist_record(&t->m.lat, d);
				t->faults++;
			}
		}
	}
	return NULL;
}

/* The structural thread for ufpager: split/merge/protect/unmap its own maps. */
struct hl_churn {
	struct crew_member m;      /* ops: structural operations */
	ufp_pager *p;
};

static void *hl_ufp_churn(void *arg)
{
	struct hl_churn *c = arg;
	size_t len = 64 * BENCH_PAGE;
	char *m;

	ufp_thread_register();
	ufp_map(c->p, NULL, len, UFP_PROT_ALL, 0, (void **)&m);
	crew_ready(&c->m);
	while (!crew_stopping(&c->m)) {
		memset(m, 1, len);
		ufp_protect(c->p, m + len / 4, len / 4, UFP_PROT_READ);
		ufp_protect(c->p, m + len / 4, len / 4, UFP_PROT_ALL);
		ufp_unmap(c->p, m, len);
		ufp_map(c->p, NULL, len, UFP_PROT_ALL, 0, (void **)&m);
		c->m.ops += 4;
	}
	ufp_unmap(c->p, m, len);
	return NULL;
}

/* Start the accessing threads t[0, nt) on the crew, their counts reset,
 * and with c the structural thread on pager p. */
static void hl_spawn(struct bench_crew *crew, struct hl_thread *t, unsigned nt,
		     struct hl_churn *c, ufp_pager *p)
{
	for (unsigned i = 0; i < nt; i++) {
		t[i].m = (struct crew_member){ 0 };
		t[i].faults = 0;
		crew_spawn(crew, &t[i].m, hl_access, &t[i]);
	}
	if (c) {
		*c = (struct hl_churn){ .p = p };
		crew_spawn(crew, &c->m, hl_ufp_churn, c);
	}
}

/* Fill pages [first, first + n) of a set, m pointing at page first. */
static void hl_fill_at(char *m, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++) {
		uint64_t *w = (uint64_t *)(m + (i - first) * BENCH_PAGE);

		for (unsigned k = 0; k < 512; k += 8)   /* half-compressible content */
			w[k] = i * 0x9E3779B97F4A7C15ull + k;
	}
}

/* Merge what the accessing threads t[] (crew members [0, nt)) measured
 * into r; after the crew has run. */
static void hl_collect(const struct bench_crew *crew, const struct hl_thread *t, unsigned nt,
		       struct hl_res *r)
{
	uint64_t acc = 0, f = 0;

	memset(&r->hist, 0, sizeof(r->hist));
	crew_collect(crew, 0, nt, &r->hist, &acc);
	for (unsigned i = 0; i < nt; i++)
		f += t[i].faults;
	lat_summary(&r->hist, &r->lat);
	r->faults_s = (double)f / crew->elapsed;
	r->accesses_s = (double)acc / crew->elapsed;
	r->ok = true;
}

/* What runs beside the measured threads. */
enum hl_beside { HL_ALONE, HL_WRITER, HL_BURNER };

struct hl_burner {
	pthread_t th;
	_Atomic bool stop;
};

/* A CPU-only thread: the control for the writer (no system calls). */
static void *hl_burner_main(void *arg)
{
	struct hl_burner *b = arg;
	volatile uint64_t x = 1;

	while (!atomic_load_explicit(&b->stop, memory_order_relaxed))
		for (int k = 0; k < 4096; k++)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
	return NULL;
}

static int hl_ufpager(struct bench_opts *o, unsigned mode, size_t pages, unsigned nt,
		      enum hl_beside beside, struct hl_res *r)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .lock_mode = mode,
		.budget = (uint64_t)pages * BENCH_PAGE / 4, .fault_around = 1,
		.swap_size = (uint64_t)pages * BENCH_PAGE * 2, .ztier_size = 4096,
		.flags = UFP_PF_NO_EXPORT,
	};
	struct hl_thread t[8];
	struct hl_churn c;
	struct mmap_writer w;
	struct hl_burner b = { 0 };
	struct bench_crew crew;
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION }, s0 = st;
	uint64_t struct_ops = 0, wops;
	bool writer = beside == HL_WRITER;
	ufp_pager *p;
	int err;

	if (beside == HL_BURNER && (err = -pthread_create(&b.th, NULL, hl_burner_main, &b))) {
		snprintf(r->why, sizeof(r->why), "cannot start the CPU burner (%s)", strerror(-err));
		return err;
	}
	if (writer && (err = mmap_writer_start(&w, o->writer_mb << 20))) {
		snprintf(r->why, sizeof(r->why), "cannot start the mmap_lock writer (%s)",
			 strerror(-err));
		return err;
	}
	err = ufp_pager_create(&pr, &p);
	if (err) {
		snprintf(r->why, sizeof(r->why), "%s", ufp_last_error());
		goto out_writer;
	}
	if ((err = crew_init(&crew, nt + 1))) {
		ufp_pager_destroy(p);
		goto out_writer;
	}
	for (unsigned i = 0; i < nt; i++) {
		t[i] = (struct hl_thread){ .pages = pages / nt, .seed = i + 1 };
		ufp_map(p, NULL, t[i].pages * BENCH_PAGE, UFP_PROT_ALL, 0, (void **)&t[i].base);
		hl_fill_at(t[i].base, 0, t[i].pages);
	}
	ufp_advise(p, t[0].base, 1, UFP_ADV_NORMAL);
	/* the same warm-up as the kernel's child (half a run, not timed),
	 * then the timed run */
	hl_spawn(&crew, t, nt, &c, p);
	err = crew_run_for(&crew, o->seconds / 2);
	crew_destroy(&crew);
	if (!err && !(err = crew_init(&crew, nt + 1)))
		hl_spawn(&crew, t, nt, &c, p);
	if (err) {
		snprintf(r->why, sizeof(r->why), "cannot start its threads (%s)", strerror(-err));
		ufp_pager_destroy(p);
		goto out_writer;
	}
	wops = writer ? atomic_load(&w.ops) : 0;
	ufp_stats_get(p, &s0);
	err = crew_run_for(&crew, o->seconds * 2);
	if (!err) {
		hl_collect(&crew, t, nt, r);
		crew_collect(&crew, nt, 1, NULL, &struct_ops);
		r->struct_s = (double)struct_ops / crew.elapsed;
		r->writer_s = writer ? (double)(atomic_load(&w.ops) - wops) / crew.elapsed : 0;
		ufp_stats_get(p, &st);
		r->lock_wait = st.lock_wait;
		r->swapins = st.swapins;
		if (r->accesses_s > 0) {
			double acc = r->accesses_s * crew.elapsed;

			r->miss_k = 1000.0 * (double)(st.faults_file + st.faults_ztier -
						      s0.faults_file - s0.faults_ztier) / acc;
			r->soft_k = 1000.0 * (double)(st.faults_parked - s0.faults_parked) / acc;
		}
		r->data_mib = (double)st.resident_pages * BENCH_PAGE / (1 << 20);
	} else {
		snprintf(r->why, sizeof(r->why), "cannot start its threads (%s)", strerror(-err));
	}
	crew_destroy(&crew);
	ufp_pager_destroy(p);
out_writer:
	if (writer)
		mmap_writer_stop(&w);
	if (beside == HL_BURNER) {
		atomic_store(&b.stop, true);
		pthread_join(b.th, NULL);
	}
	return err;
}

/* ---- the kernel, in a child confined by a memory cgroup ----------------- */

/* Put the calling process under a memory limit (kbase.c: cgroup v1 or v2). */
static int hl_cgroup_enter(uint64_t limit, char *dir, size_t dlen)
{
	int err = kb_cgroup_create(limit, dir, dlen);

	return err ? err : kb_cgroup_enter(dir);
}

/* Bytes of the accessing threads' data in RAM. */
static uint64_t hl_data_resident(const struct hl_thread *t, unsigned nt)
{
	uint64_t in = 0;

	for (unsigned i = 0; i < nt; i++)
		in += kb_resident_bytes(t[i].base, t[i].pages * BENCH_PAGE);
	return in;
}

static void hl_kernel_child(struct bench_opts *o, size_t pages, unsigned nt, uint64_t limit,
			    bool writer, int out)
{
	static struct hl_res r;
	struct hl_thread t[8];
	struct mmap_writer w;
	struct bench_crew crew;
	struct kb_churn churn;
	uint64_t wops = 0;
	char dir[256];
	int err;

	memset(&r, 0, sizeof(r));
	memset(&crew, 0, sizeof(crew));
	/* populated here, before the cgroup: charged outside the comparison
	 * (the child exits without stopping it) */
	if (writer && (err = mmap_writer_start(&w, o->writer_mb << 20))) {
		snprintf(r.why, sizeof(r.why), "cannot start the mmap_lock writer (%s)",
			 strerror(-err));
		goto out;
	}
	err = hl_cgroup_enter(limit, dir, sizeof(dir));
	if (err) {
		snprintf(r.why, sizeof(r.why), "skipped: cannot set a memory cgroup limit (%s)",
			 strerror(-err));
		goto out;
	}
	if ((err = crew_init(&crew, nt)))
		goto out;
	for (unsigned i = 0; i < nt; i++) {
		t[i] = (struct hl_thread){ .pages = pages / nt, .seed = i + 1 };
		t[i].base = mmap(NULL, t[i].pages * BENCH_PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		madvise(t[i].base, t[i].pages * BENCH_PAGE, MADV_NOHUGEPAGE);
		/* Fill in 4 MiB steps, each pushed to swap at once: filling
		 * the whole set first can outrun reclaim and OOM-kill us in
		 * the cgroup (ufpager's fill is throttled by its budget). */
		for (size_t at = 0; at < t[i].pages; at += 1024) {
			size_t np = t[i].pages - at < 1024 ? t[i].pages - at : 1024;
			char *c = t[i].base + at * BENCH_PAGE;

			hl_fill_at(c, at, np);
			madvise(c, np * BENCH_PAGE, MADV_PAGEOUT);
		}
	}
	/*
	 * Equal memory for the data. The limit so far is the budget plus 4
	 * MiB, so that the fill cannot be OOM-killed; most of those 4 MiB
	 * held working-set pages (11.7 MiB of data in RAM against an 8 MiB
	 * budget, --quick), which at this working set (the hot quarter is the
	 * budget) decided the comparison. Warm up, then measure what the
	 * cgroup is charged for besides the working set (page tables, stacks,
	 * the churn, the allocator) and limit it to the budget plus that.
	 */
	kb_churn_start(&churn, 1, 64 * BENCH_PAGE);
	hl_spawn(&crew, t, nt, NULL, NULL);
	err = crew_run_for(&crew, o->seconds / 2);
	crew_destroy(&crew);
	if (!err) {
		/* the threads' sets are one mapping each: the other charge is
		 * usage minus all of them in RAM */
		int64_t over = kb_cgroup_fit(dir, limit - (4ull << 20), hl_data_resident(t, nt));

		if (over >= 0)
			r.over_mib = (double)over / (1 << 20);
		err = crew_init(&crew, nt);
	}
	if (!err) {
		uint64_t maj0 = 0, maj1 = 0;

		hl_spawn(&crew, t, nt, NULL, NULL);
		wops = writer ? atomic_load(&w.ops) : 0;
		kb_cgroup_stat(dir, "pgmajfault", &maj0);
		err = crew_run_for(&crew, o->seconds * 2);
		if (!err) {
			kb_cgroup_stat(dir, "pgmajfault", &maj1);
			r.data_mib = (double)hl_data_resident(t, nt) / (1 << 20);
			hl_collect(&crew, t, nt, &r);
			if (r.accesses_s > 0)
				r.miss_k = 1000.0 * (double)(maj1 - maj0) /
					   (r.accesses_s * crew.elapsed);
			r.writer_s = writer ? (double)(atomic_load(&w.ops) - wops) / crew.elapsed : 0;
		}
		crew_destroy(&crew);
	}
	kb_churn_stop(&churn);
	r.struct_s = churn.ops_per_s;       /* over the warm-up and the run */
	if (err)
		snprintf(r.why, sizeof(r.why), "cannot start its threads (%s)", strerror(-err));
out:
	if (write(out, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(0);
}

static int hl_kernel(struct bench_opts *o, size_t pages, unsigned nt, bool writer,
		     struct hl_res *r)
{
	/* the budget plus 4 MiB while the set is filled; after a warm-up the
	 * child lowers it to the budget plus what it measured the cgroup is
	 * charged for besides the data (hl_kernel_child) */
	uint64_t limit = (uint64_t)pages * BENCH_PAGE / 4 + (4ull << 20);
	struct kb_swap sw = { 0 };
	int pfd[2], st;
	pid_t c;

	if (geteuid() != 0) {
		snprintf(r->why, sizeof(r->why), "skipped: needs root (swap and a memory cgroup)");
		return -EPERM;
	}
	if (kb_swap_file_setup("/var/tmp", (uint64_t)pages * BENCH_PAGE * 2, &sw)) {
		snprintf(r->why, sizeof(r->why), "skipped: %s", sw.why);
		return -ENOTSUP;
	}
	if (pipe(pfd)) {
		kb_swap_teardown(&sw);
		return -errno;
	}
	c = fork();
	if (c == 0) {
		close(pfd[0]);
		hl_kernel_child(o, pages, nt, limit, writer, pfd[1]);
	}
	close(pfd[1]);
	ssize_t got = read(pfd[0], r, sizeof(*r));

	close(pfd[0]);
	waitpid(c, &st, 0);
	if (got != (ssize_t)sizeof(*r))
		snprintf(r->why, sizeof(r->why), "the kernel run failed (child %s %d)",
			 WIFSIGNALED(st) ? "killed by signal" : "exited",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	kb_swap_teardown(&sw);
	{   /* remove the cgroup the child made */
		char dir[256];

		snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory/ufpager-bench-%d", (int)c);
		rmdir(dir);
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup/ufpager-bench-%d", (int)c);
		rmdir(dir);
	}
	return r->ok ? 0 : -EIO;
}

/* accesses/s a / b under key, and fault p99 under p99key: b / a when
 * p99_b_over_a (a slower b shows as a ratio above 1), else a / b */
static void hl_summary(struct bench_opts *o, const char *key, const char *p99key,
		       const char *text, const struct hl_res *a, const struct hl_res *b,
		       bool p99_b_over_a)
{
	char t[128];

	if (!a->ok || !b->ok)
		return;
	snprintf(t, sizeof(t), "headline: accesses/s %s", text);
	summary_add(o, key, t, a->accesses_s, b->accesses_s);
	snprintf(t, sizeof(t), "headline: fault p99 %s", text);
	if (p99_b_over_a)
		summary_add(o, p99key, t, (double)b->lat.p99, (double)a->lat.p99);
	else
		summary_add(o, p99key, t, (double)a->lat.p99, (double)b->lat.p99);
}

int bench_headline(struct bench_opts *o)
{
	/* [writer][system]; burn: per-region beside a CPU-only thread */
	static struct hl_res r[2][3], burn;
	static const char *name[3] = { "per-region", "global", "kernel" };
	static const char *key[3] = { "per_region", "global", "kernel" };
	size_t pages = o->quick ? 8192 : 32768;
	unsigned nt = 2;

	memset(r, 0, sizeof(r));
	memset(&burn, 0, sizeof(burn));
	printf("\n== headline: %u threads randomly access %zu MiB (80%% to a hot quarter) under a\n"
	       "   %zu MiB budget while a thread splits, merges, protects and unmaps other memory\n"
	       "   (ufpager: swap file; kernel: memory cgroup of the budget plus its measured\n"
	       "   other charge, swap file, real mmap churn);\n"
	       "   each system alone and beside a thread looping mprotect over %zu MiB of\n"
	       "   populated memory (a real mmap_lock writer, --writer-mb)\n",
	       nt, pages * BENCH_PAGE >> 20, pages * BENCH_PAGE / 4 >> 20, o->writer_mb);
	for (int wr = 0; wr < 2; wr++) {
		const char *tag = wr ? " + writer" : "";

		progress("[headline] per-region%s", tag);
		hl_ufpager(o, UFP_LOCK_PER_REGION, pages, nt, wr ? HL_WRITER : HL_ALONE, &r[wr][0]);
		progress("[headline] global%s", tag);
		hl_ufpager(o, UFP_LOCK_GLOBAL, pages, nt, wr ? HL_WRITER : HL_ALONE, &r[wr][1]);
		progress("[headline] kernel%s", tag);
		if (hl_kernel(o, pages, nt, wr, &r[wr][2]) == -EIO)   /* a memcg OOM kill: once more */
			hl_kernel(o, pages, nt, wr, &r[wr][2]);
		kb_swap_teardown_all();
	}
	progress("[headline] per-region + CPU burner");
	hl_ufpager(o, UFP_LOCK_PER_REGION, pages, nt, HL_BURNER, &burn);
	progress_done();
	printf("%-11s %-7s %11s %12s %9s %9s %9s %11s %9s %9s %8s %7s %7s\n", "system", "writer",
	       "faults/s", "accesses/s", "p50", "p99", "max", "lockwait99", "struct/s",
	       "mprot/s", "data MiB", "swap/k", "park/k");
	for (int wr = 0; wr < 2; wr++)
		for (int i = 0; i < 3; i++) {
			struct hl_res *x = &r[wr][i];
			char plot[48];

			if (!x->ok) {
				printf("%-11s %-7s %s\n", name[i], wr ? "mprot" : "none",
				       x->why[0] ? x->why : "failed");
				continue;
			}
			printf("%-11s %-7s %11.0f %12.0f %7.1fus %7.1fus %7.1fms %9.1fus %9.0f %9.0f %8.1f %7.1f %7.1f\n",
			       name[i], wr ? "mprot" : "none", x->faults_s, x->accesses_s,
			       x->lat.p50 / 1e3, x->lat.p99 / 1e3, x->lat.max / 1e6,
			       i < 2 ? x->lock_wait.p99 / 1e3 : 0.0, x->struct_s, x->writer_s,
			       x->data_mib, x->miss_k, x->soft_k);
			json_row_begin(o, "headline");
			json_kv_str(o, "system", name[i]);
			json_kv_str(o, "writer", wr ? "mprotect" : "none");
			json_kv_num(o, "faults_per_s", x->faults_s);
			json_kv_num(o, "accesses_per_s", x->accesses_s);
			json_kv_lat(o, "fault_latency", &x->lat);
			if (i < 2)
				json_kv_lat(o, "lock_wait", &x->lock_wait);
			json_kv_num(o, "structural_ops_per_s", x->struct_s);
			json_kv_num(o, "writer_mprotect_per_s", x->writer_s);
			json_kv_num(o, "data_resident_mib", x->data_mib);
			json_kv_num(o, "swap_faults_per_1000", x->miss_k);
			json_kv_num(o, "parked_faults_per_1000", x->soft_k);
			if (i == 2)
				json_kv_num(o, "cgroup_overhead_mib", x->over_mib);
			json_row_end(o);
			snprintf(plot, sizeof(plot), "%s%s", name[i], wr ? "+writer" : "");
			plot_cdf(o, plot, &x->hist);
		}
	if (burn.ok) {
		printf("%-11s %-7s %11.0f %12.0f %7.1fus %7.1fus %7.1fms %9.1fus %9.0f %9s %8.1f %7.1f %7.1f\n",
		       name[0], "cpu", burn.faults_s, burn.accesses_s, burn.lat.p50 / 1e3,
		       burn.lat.p99 / 1e3, burn.lat.max / 1e6, burn.lock_wait.p99 / 1e3,
		       burn.struct_s, "-", burn.data_mib, burn.miss_k, burn.soft_k);
		json_row_begin(o, "headline");
		json_kv_str(o, "system", name[0]);
		json_kv_str(o, "writer", "cpu-burner");
		json_kv_num(o, "faults_per_s", burn.faults_s);
		json_kv_num(o, "accesses_per_s", burn.accesses_s);
		json_kv_lat(o, "fault_latency", &burn.lat);
		json_kv_lat(o, "lock_wait", &burn.lock_wait);
		json_kv_num(o, "structural_ops_per_s", burn.struct_s);
		json_row_end(o);
	} else {
		printf("%-11s %-7s %s\n", name[0], "cpu", burn.why[0] ? burn.why : "failed");
	}
	for (int wr = 0; wr < 2; wr++)
		if (r[wr][2].ok)
			printf("kernel%s: cgroup limit = budget + %.1f MiB measured after a warm-up "
			       "(charged besides the data)\n", wr ? " + writer" : "",
			       r[wr][2].over_mib);
	printf("data MiB: working-set pages in RAM at the end (ufpager: resident_pages, parked "
	       "included; kernel: mincore)\nswap/k: faults that read swap per 1000 accesses "
	       "(ufpager: faults_file + faults_ztier; kernel: the cgroup's pgmajfault);\n"
	       "park/k: parked pages moved back per 1000 accesses (faults_parked)\n");
	/* per-region against global, then the kernel, without and with the writer */
	hl_summary(o, "headline.per_region_over_global", "headline.p99_global_over_per_region",
		   "per-region / global", &r[0][0], &r[0][1], true);
	hl_summary(o, "headline.per_region_over_kernel", "headline.p99_kernel_over_per_region",
		   "per-region / kernel", &r[0][0], &r[0][2], true);
	hl_summary(o, "headline_writer.per_region_over_global",
		   "headline_writer.p99_global_over_per_region",
		   "per-region / global, both beside the writer", &r[1][0], &r[1][1], true);
	hl_summary(o, "headline_writer.per_region_over_kernel",
		   "headline_writer.p99_kernel_over_per_region",
		   "per-region / kernel, both beside the writer", &r[1][0], &r[1][2], true);
	for (int i = 0; i < 3; i++) {
		char k[96], k99[96], t[96];

		snprintf(k, sizeof(k), "headline_writer.%s_with_over_without", key[i]);
		snprintf(k99, sizeof(k99), "headline_writer.%s_p99_with_over_without", key[i]);
		snprintf(t, sizeof(t), "%s with the writer / without", name[i]);
		hl_summary(o, k, k99, t, &r[1][i], &r[0][i], false);
	}
	/* the writer's cost beyond the CPU it takes */
	hl_summary(o, "headline_writer.per_region_writer_over_cpu_burner",
		   "headline_writer.per_region_p99_writer_over_cpu_burner",
		   "per-region with the writer / beside a CPU-only thread", &r[1][0], &burn, false);
	hl_summary(o, "headline_writer.per_region_cpu_burner_over_alone",
		   "headline_writer.per_region_p99_cpu_burner_over_alone",
		   "per-region beside a CPU-only thread / alone", &burn, &r[0][0], false);
	return 0;
}
