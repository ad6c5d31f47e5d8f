/* SPDX-License-Identifier: MIT */
/*
 * bench_swap.c - `ufpagerctl bench swap`: refault after eviction, side by
 * side in one run: ufpager with its swap file, ufpager with the lz4 tier,
 * the kernel on a swap file and the kernel on zram/lz4 (kbase.c). Each
 * run fills a working set 4x the budget, pushes everything out (PAGEOUT /
 * MADV_PAGEOUT), then refaults it in sequential, random or zipf order,
 * timing each page's first access, and verifies every page.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "kbase.h"

/*
 * The kernel rows refault with no memory pressure (everything was pushed
 * out by MADV_PAGEOUT, nothing limits the refault), while ufpager's budget
 * of 1/4 makes every refault also evict a page. The "no-evict" rows give
 * ufpager a budget as large as the set, so they time the refault path
 * alone, like the kernel rows.
 */
enum { SW_UFP_FILE, SW_UFP_LZ4, SW_UFP_FILE_NE, SW_UFP_LZ4_NE, SW_KFILE, SW_ZRAM, SW_NR };
static const char *sw_name[SW_NR] = { "ufpager-file", "ufpager-lz4", "ufp-file-no-evict",
				      "ufp-lz4-no-evict", "kernel-file",
				      "kernel-zram-lz4" };

struct sw_res {
	bool ok;
	double pages_s, bytes_per_page;
	uint64_t p50, p99;
	const char *why;
};

/* Page content: an index tag, then compressible text or random words. */
static void sw_fill(uint64_t *w, uint64_t idx, bool compressible)
{
	static const char text[] = "ufpager swap benchmark page text, compresses well. ";
	uint64_t x = idx * 0x9E3779B97F4A7C15ull + 1;

	w[0] = idx;
	for (unsigned i = 1; i < BENCH_PAGE / 8; i++) {
		if (compressible) {
			memcpy(&w[i], text + (i * 8) % (sizeof(text) - 9), 8);
			if (i % 64 == 0)
				w[i] = idx + i;
		} else {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			w[i] = x;
		}
	}
}

/* Access order: pages indices (seq, random permutation, or zipf draws). */
static size_t sw_order(enum kb_pattern pat, size_t n, size_t *out, size_t cap)
{
	uint64_t s = 0x1234567ull;

	if (pat == KB_SEQ || pat == KB_RANDOM) {
		for (size_t i = 0; i < n; i++)
			out[i] = i;
		for (size_t i = n - 1; pat == KB_RANDOM && i > 0; i--) {
			s ^= s << 13; s ^= s >> 7; s ^= s << 17;
			size_t j = s % (i + 1), t = out[i];

			out[i] = out[j];
			out[j] = t;
		}
		return n;
	}
	/* zipf, theta 0.99: inverse CDF by binary search; hot pages spread */
	double *cdf = malloc(n * sizeof(double)), acc = 0;

	for (size_t i = 0; i < n; i++)
		cdf[i] = (acc += 1.0 / pow((double)(i + 1), 0.99));
	for (size_t k = 0; k < cap; k++) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		double u = (double)(s >> 11) / 9007199254740992.0 * acc;
		size_t lo = 0, hi = n - 1;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		out[k] = (lo * 2654435761u) % n;
	}
	free(cdf);
	return cap;
}

static int sw_ufpager(struct bench_opts *o, bool lz4, bool no_evict, enum kb_pattern pat,
		      bool compr, size_t pages, struct sw_res *res, const char *where)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.budget = (uint64_t)pages * BENCH_PAGE / (no_evict ? 1 : 4) +
			  (no_evict ? 1ull << 20 : 0),
		.fault_around = 1,
		.swap_size = (uint64_t)pages * BENCH_PAGE * 2,
		.ztier_size = lz4 ? (uint64_t)pages * BENCH_PAGE : 4096,
		.flags = UFP_PF_NO_EXPORT, .swap_dir = where,
	};
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION }, s0;
	size_t n, *order = malloc(pages * sizeof(size_t));
	uint8_t *seen = calloc(pages, 1);
	struct kb_hist lat = KB_HIST_INIT;
	uint64_t cnt = 0, bad = 0;
	ufp_pager *p;
	char *m;
	double t0, el;
	int err;

	(void)o;
	if (!order || !seen)
		return -ENOMEM;
	err = ufp_pager_create(&pr, &p);
	if (err) {
		res->why = "ufp_pager_create failed (see ufpagerctl check)";
		free(order);
		free(seen);
		return err;
	}
	ufp_map(p, NULL, pages * BENCH_PAGE, UFP_PROT_ALL, 0, (void **)&m);
	for (size_t i = 0; i < pages; i++)
		sw_fill((uint64_t *)(m + i * BENCH_PAGE), i, compr);
	ufp_advise(p, m, pages * BENCH_PAGE, UFP_ADV_PAGEOUT);
	s0 = st;
	ufp_stats_get(p, &s0);
	n = sw_order(pat, pages, order, pages);
	t0 = now_s();
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		uint64_t a = now_ns();
		uint64_t v = *(volatile uint64_t *)(m + i * BENCH_PAGE);

		if (!seen[i]) {
			kb_hist_record(&lat, now_ns() - a);
			seen[i] = 1;
			cnt++;
		}
		bad += v != i;
	}
	el = now_s() - t0;
	ufp_stats_get(p, &st);
	for (size_t i = 0; i < pages; i++)   /* verify every page */
		bad += *(uint64_t *)(m + i * BENCH_PAGE) != i;
	struct ufp_latency l;

	lat_summary(&lat, &l);
	res->ok = bad == 0;
	res->why = bad ? "CONTENT MISMATCH" : NULL;
	res->pages_s = (double)cnt / el;
	res->p50 = l.p50;
	res->p99 = l.p99;
	/* file bytes written plus the tier's memory for what it holds */
	res->bytes_per_page = s0.swapouts ? (double)(s0.bytes_written + s0.ztier_bytes_out) /
					    (double)s0.swapouts : 0;
	ufp_pager_destroy(p);
	free(order);
	free(seen);
	return bad ? -EIO : 0;
}

static int sw_kernel(bool zram, enum kb_pattern pat, bool compr, size_t pages,
		     struct sw_res *res)
{
	static char why[320];
	struct kb_swap sw = { 0 };
	struct kb_result kr;
	struct kb_refault_params rp = {
		.pages = pages, .threads = 1, .pattern = pat, .compressible = compr,
		.accesses = pages, .swap = &sw,
	};
	int err;

	err = zram ? kb_zram_setup((uint64_t)pages * BENCH_PAGE * 2, "lz4", &sw) :
		     kb_swap_file_setup("/var/tmp", (uint64_t)pages * BENCH_PAGE * 2, &sw);
	if (err) {
		snprintf(why, sizeof(why), "skipped: %s", sw.why);
		res->why = why;
		return err;
	}
	err = kb_refault(&rp, &kr);
	kb_swap_teardown(&sw);
	if (err && err != -EAGAIN) {
		snprintf(why, sizeof(why), "kb_refault: %s", strerror(-err));
		res->why = why;
		return err;
	}
	res->ok = kr.mismatches == 0;
	res->pages_s = kr.pages_per_s;
	res->p50 = kr.p50_ns;
	res->p99 = kr.p99_ns;
	res->bytes_per_page = kr.bytes_per_page;
	res->why = err == -EAGAIN ? "fewer than 90% of pages were pushed out" : NULL;
	return 0;
}

/*
 * Victim policy: a zipf hot set (theta 0.99) over a working set 4x the
 * budget, 8 accesses per page, one in four a write, after a warm-up pass.
 * Side by side: FIFO sweep (no second chance), CLOCK with references seen
 * at fault time, and CLOCK with writes seen by WP_ASYNC + PAGEMAP_SCAN,
 * each with the parked ring (its default size); and CLOCK without the
 * ring (UFPAGER_PARK_PCT=0), the policy before it.
 * What decides is the miss ratio: swap-ins per 1000 accesses.
 */
enum { POL_FIFO, POL_CLOCK, POL_CLOCK_WP, POL_CLOCK_NOPARK, POL_NR };
static const char *pol_name[POL_NR] = { "fifo", "clock", "clock+wp-scan", "clock, no ring" };

struct pol_res {
	bool ran, ok;
	double acc_s, miss_per_k, written_per_k, clean_per_k;
	uint64_t p99;
	const char *why;
};

/* Whether the kernel offers UFFD_FEATURE_WP_ASYNC (bit 15 of the UAPI),
 * which dirty tracking needs (the pager asks for it when it exists). */
static bool machine_has_wp_async(void)
{
	struct ufp_probe pr = { .size = sizeof(pr), .version = UFP_PROBE_VERSION };

	return !ufp_probe_machine(&pr) && (pr.uffd_features & (1ull << 15));
}

/* The table's accesses, the same for ufpager and the kernel row: read
 * the first n pages of order (the warm-up), and the timed pass, each
 * access timed into lat, one in four a write (word 0 is the tag, checked
 * by the reads). Return the pages that read wrong. */
static uint64_t pol_warm(const char *m, const size_t *order, size_t n)
{
	uint64_t bad = 0;

	for (size_t k = 0; k < n; k++)
		bad += *(const volatile uint64_t *)(m + order[k] * BENCH_PAGE) != order[k];
	return bad;
}

static uint64_t pol_access(char *m, const size_t *order, size_t n, struct kb_hist *lat)
{
	uint64_t bad = 0;

	for (size_t k = 0; k < n; k++) {
		uint64_t *w = (uint64_t *)(m + order[k] * BENCH_PAGE), a = now_ns();

		if (k % 4 == 3)
			w[1 + k % 500] = k;
		else
			bad += *(volatile uint64_t *)w != order[k];
		kb_hist_record(lat, now_ns() - a);
	}
	return bad;
}

static void pol_run(int pol, size_t pages, struct pol_res *res)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.budget = (uint64_t)pages * BENCH_PAGE / 4, .fault_around = 1,
		.swap_size = (uint64_t)pages * BENCH_PAGE * 2, .ztier_size = 4096,
		.flags = UFP_PF_NO_EXPORT,
	};
	struct ufp_stats s0 = { .size = sizeof(s0), .version = UFP_STATS_VERSION }, s1 = s0;
	size_t n = pages * 8, *order = malloc(n * sizeof(size_t));
	struct kb_hist lat = KB_HIST_INIT;
	uint64_t bad = 0;
	struct ufp_latency l;
	ufp_pager *p;
	double t0, el;
	char *m;

	if (!order) {
		res->why = "out of memory";
		return;
	}
	setenv("UFPAGER_SECOND_CHANCE", pol == POL_FIFO ? "0" : "1", 1);
	setenv("UFPAGER_DIRTY_TRACK", pol == POL_CLOCK_WP ? "1" : "0", 1);
	if (pol == POL_CLOCK_NOPARK)
		setenv("UFPAGER_PARK_PCT", "0", 1);
	int err = ufp_pager_create(&pr, &p);

	unsetenv("UFPAGER_SECOND_CHANCE");
	unsetenv("UFPAGER_DIRTY_TRACK");
	if (pol == POL_CLOCK_NOPARK)
		unsetenv("UFPAGER_PARK_PCT");
	if (err) {
		res->why = "ufp_pager_create failed (see ufpagerctl check)";
		free(order);
		return;
	}
	if (pol == POL_CLOCK_WP && !machine_has_wp_async()) {
		res->why = "skipped: no UFFD_FEATURE_WP_ASYNC / PAGEMAP_SCAN here";
		ufp_pager_destroy(p);
		free(order);
		return;
	}
	res->ran = true;
	ufp_map(p, NULL, pages * BENCH_PAGE, UFP_PROT_ALL, 0, (void **)&m);
	for (size_t i = 0; i < pages; i++)
		sw_fill((uint64_t *)(m + i * BENCH_PAGE), i, false);
	sw_order(KB_ZIPF, pages, order, n);
	bad += pol_warm(m, order, n / 4);   /* settle the resident set */
	ufp_stats_get(p, &s0);
	t0 = now_s();
	bad += pol_access(m, order, n, &lat);
	el = now_s() - t0;
	ufp_stats_get(p, &s1);
	for (size_t i = 0; i < pages; i++)
		bad += *(uint64_t *)(m + i * BENCH_PAGE) != i;
	lat_summary(&lat, &l);
	res->ok = bad == 0;
	res->why = bad ? "CONTENT MISMATCH" : NULL;
	res->acc_s = (double)n / el;
	res->miss_per_k = 1000.0 * (double)(s1.swapins - s0.swapins) / (double)n;
	res->written_per_k = 1000.0 * (double)(s1.swapouts - s0.swapouts) / (double)n;
	res->clean_per_k = 1000.0 * (double)(s1.swapouts_clean - s0.swapouts_clean) / (double)n;
	res->p99 = l.p99;
	ufp_pager_destroy(p);
	free(order);
}

/* ---- the kernel row: the same workload on plain anonymous memory -------
 * A child process (fork) confined by a memory cgroup of the same budget,
 * plus the headline's headroom, on kernel swap the parent set up; the
 * parent removes swap and cgroup whatever the child did. */

/* What the cgroup charges besides the data pages: page tables, the stack,
 * what the process touches after it entered. The headline's kernel run
 * gets the same (bench_headline.c: budget + 4 MiB). */
#define POL_KERNEL_HEADROOM (4ull << 20)
/* Runs of the child before the row fails: a memcg OOM kill (see the
 * stats flusher below) is retried, as the headline retries its own; the
 * row says how many runs were killed. */
#define POL_KERNEL_TRIES 3

/* Where the kernel row's misses come from: best first. */
enum { POL_SRC_PSWPIN, POL_SRC_REFAULT, POL_SRC_VMSTAT };
static const char *pol_src_name[3] = {
	"memory.stat pswpin", "memory.stat workingset_refault_anon",
	"/proc/vmstat pswpin (machine-wide)",
};

/* The kernel row, as the child reports it through a pipe. */
struct pol_kernel {
	bool ran, ok;
	double acc_s, miss_per_k, written_per_k, vmstat_in_per_k;
	double resident_mib;     /* the cgroup's anon memory after the timed loop */
	double over_mib;         /* its measured charge besides the data (-1: none) */
	uint64_t p99;
	int src;                 /* POL_SRC_* */
	char why[256];
	/* filled in by the parent: */
	uint64_t limit;          /* the cgroup's limit in bytes */
	char swap[16];           /* "zram-lz4" or "swap-file" */
	char zram_why[128];      /* why not zram, with a swap file */
	unsigned oom_kills;      /* runs OOM-killed before this one */
};

/* The cgroup's anonymous memory now: v1 "rss", v2 "anon". 0 if neither. */
static uint64_t pol_cgroup_anon(const char *dir)
{
	uint64_t v = 0;

	if (kb_cgroup_stat(dir, "rss", &v) && kb_cgroup_stat(dir, "anon", &v))
		v = 0;
	return v;
}

/*
 * The stats flusher: a thread of the child that reads the cgroup's
 * memory.stat every POL_FLUSH_US, from before the fill until the last
 * page is verified. Reading it flushes the memcg's statistics (rstat),
 * which the kernel otherwise flushes every 2 s, and here (6.18, cgroup
 * v1, classic LRU) memcg reclaim decides from those flushed counts
 * whether to deactivate anon pages. Without fresh ones the child was
 * OOM-killed in every run of the 64 MiB set (zram and swap file alike),
 * every resident page on the active list and none inactive (inactive_anon
 * 0 in the OOM report); a stand-alone program of the same accesses passed
 * when it read memory.stat every 1024 accesses and failed when it did
 * not. With the thread, runs pass, and the misses did not move with the
 * period (178-180 per 1000 reading back to back, every 0.2 ms and every
 * 1 ms): it keeps reclaim working without steering it.
 */
#define POL_FLUSH_US 1000

struct pol_flusher {
	pthread_t th;
	const char *dir;
	_Atomic bool stop;
};

static void *pol_flusher_main(void *arg)
{
	struct pol_flusher *f = arg;

	/* relaxed: a flag polled between reads; join orders the rest */
	while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
		pol_cgroup_anon(f->dir);
		usleep(POL_FLUSH_US);
	}
	return NULL;
}

/* The kernel row's miss counter now, from source src. 0 or -errno. */
static int pol_misses_read(const char *dir, int src, uint64_t *v)
{
	if (src == POL_SRC_PSWPIN)
		return kb_cgroup_stat(dir, "pswpin", v);
	if (src == POL_SRC_REFAULT)
		return kb_cgroup_stat(dir, "workingset_refault_anon", v);
	return kb_vmstat("pswpin", v);
}

/* The child: pol_run's workload on anonymous memory. Everything outside
 * the comparison (the order array, the histogram) is allocated and
 * touched before the cgroup is entered, so it is charged outside it, as
 * ufpager's budget counts only the data pages. Never returns. */
static void pol_kernel_child(size_t pages, uint64_t limit, int out)
{
	static struct pol_kernel r;
	static struct kb_hist lat;
	static struct pol_flusher fl;
	size_t n = pages * 8, *order = malloc(n * sizeof(size_t));
	uint64_t bad = 0, m0, m1, in0 = 0, in1 = 0, out0 = 0, out1 = 0;
	struct ufp_latency l;
	char dir[256];
	double t0, el;
	char *m;
	int err;

	memset(&r, 0, sizeof(r));
	kb_hist_init(&lat);
	m = mmap(NULL, pages * BENCH_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (!order || m == MAP_FAILED) {
		snprintf(r.why, sizeof(r.why), "out of memory");
		goto out;
	}
	madvise(m, pages * BENCH_PAGE, MADV_NOHUGEPAGE);
	sw_order(KB_ZIPF, pages, order, n);
	err = kb_cgroup_create(limit, dir, sizeof(dir));
	if (!err)
		err = kb_cgroup_enter(dir);
	if (err) {
		snprintf(r.why, sizeof(r.why), "skipped: cannot set a memory cgroup limit (%s)",
			 strerror(-err));
		goto out;
	}
	r.src = !kb_cgroup_stat(dir, "pswpin", &m0) ? POL_SRC_PSWPIN :
		!kb_cgroup_stat(dir, "workingset_refault_anon", &m0) ? POL_SRC_REFAULT :
		POL_SRC_VMSTAT;
	fl.dir = dir;
	err = -pthread_create(&fl.th, NULL, pol_flusher_main, &fl);
	if (err) {
		snprintf(r.why, sizeof(r.why), "cannot start the stats flusher (%s)",
			 strerror(-err));
		goto out;
	}
	r.ran = true;
	/* Fill in 4 MiB steps, each pushed to swap at once: filling the whole
	 * set first can outrun reclaim and OOM-kill us in the cgroup (as in
	 * bench_headline.c). The warm-up below settles the resident set. */
	for (size_t at = 0; at < pages; at += 1024) {
		size_t np = pages - at < 1024 ? pages - at : 1024;

		for (size_t i = at; i < at + np; i++)
			sw_fill((uint64_t *)(m + i * BENCH_PAGE), i, false);
		madvise(m + at * BENCH_PAGE, np * BENCH_PAGE, MADV_PAGEOUT);
	}
	bad += pol_warm(m, order, n / 4);
	/* Equal memory for the data: the headroom held working-set pages
	 * (19.5 MiB of them against a 16 MiB budget); now the budget plus
	 * what the cgroup measures it is charged for besides them, as the
	 * headline does, and the warm-up again under that limit */
	{
		int64_t over = kb_cgroup_fit(dir, limit - POL_KERNEL_HEADROOM,
					     kb_resident_bytes(m, pages * BENCH_PAGE));

		r.over_mib = over >= 0 ? (double)over / (1 << 20) : -1;
		bad += pol_warm(m, order, n / 4);
	}
	pol_misses_read(dir, r.src, &m0);
	kb_vmstat("pswpin", &in0);
	kb_vmstat("pswpout", &out0);
	t0 = now_s();
	bad += pol_access(m, order, n, &lat);
	el = now_s() - t0;
	m1 = m0;
	pol_misses_read(dir, r.src, &m1);
	kb_vmstat("pswpin", &in1);
	kb_vmstat("pswpout", &out1);
	r.resident_mib = (double)pol_cgroup_anon(dir) / (1 << 20);
	for (size_t i = 0; i < pages; i++)           /* verify every page */
		bad += *(uint64_t *)(m + i * BENCH_PAGE) != i;
	atomic_store_explicit(&fl.stop, true, memory_order_relaxed);
	pthread_join(fl.th, NULL);                   /* after the last fault */
	lat_summary(&lat, &l);
	r.ok = bad == 0;
	if (bad)
		snprintf(r.why, sizeof(r.why), "CONTENT MISMATCH");
	r.acc_s = (double)n / el;
	r.miss_per_k = 1000.0 * (double)(m1 - m0) / (double)n;
	r.vmstat_in_per_k = 1000.0 * (double)(in1 - in0) / (double)n;
	r.written_per_k = 1000.0 * (double)(out1 - out0) / (double)n;
	r.p99 = l.p99;
out:
	if (write(out, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(0);
}

/* The kernel row: swap (zram-lz4, else a swap file), the child, then
 * swap and cgroup removed on every path. Needs root. */
static void pol_kernel(size_t pages, struct pol_kernel *k)
{
	uint64_t limit = (uint64_t)pages * BENCH_PAGE / 4 + POL_KERNEL_HEADROOM;
	uint64_t bytes = (uint64_t)pages * BENCH_PAGE * 2;
	struct kb_swap sw = { 0 };
	char zwhy[sizeof(k->zram_why)] = "";
	int pfd[2], st;
	ssize_t got;
	pid_t c;

	memset(k, 0, sizeof(*k));
	if (geteuid() != 0) {
		snprintf(k->why, sizeof(k->why), "skipped: needs root (swap and a memory cgroup)");
		return;
	}
	if (kb_zram_setup(bytes, "lz4", &sw)) {
		snprintf(zwhy, sizeof(zwhy), "%.120s", sw.why);
		if (kb_swap_file_setup("/var/tmp", bytes, &sw)) {
			snprintf(k->why, sizeof(k->why), "skipped: no kernel swap (zram: %.100s; "
				 "swap file: %.100s)", zwhy, sw.why);
			return;
		}
	}
	for (int tries = 1; tries <= POL_KERNEL_TRIES; tries++) {
		if (pipe(pfd)) {
			snprintf(k->why, sizeof(k->why), "pipe: %s", strerror(errno));
			break;
		}
		fflush(NULL);        /* nothing buffered written twice */
		c = fork();
		if (c == 0) {
			close(pfd[0]);
			pol_kernel_child(pages, limit, pfd[1]);
		}
		close(pfd[1]);
		got = c < 0 ? -1 : read(pfd[0], k, sizeof(*k));
		close(pfd[0]);
		if (c < 0) {
			snprintf(k->why, sizeof(k->why), "fork: %s", strerror(errno));
			break;
		}
		waitpid(c, &st, 0);
		kb_cgroup_remove((int)c);
		k->oom_kills = tries - 1;
		if (got == (ssize_t)sizeof(*k))
			break;
		memset(k, 0, sizeof(*k));
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
			snprintf(k->why, sizeof(k->why), "failed: the child was OOM-killed in the "
				 "cgroup %d times (see dmesg)", tries);
			continue;    /* a memcg OOM kill: once more */
		}
		snprintf(k->why, sizeof(k->why), "the kernel run failed (child %s %d)",
			 WIFSIGNALED(st) ? "killed by signal" : "exited",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		break;
	}
	k->limit = limit;
	snprintf(k->swap, sizeof(k->swap), "%s", sw.kind == KB_SWAP_ZRAM ? "zram-lz4" : "swap-file");
	snprintf(k->zram_why, sizeof(k->zram_why), "%s", zwhy);
	kb_swap_teardown(&sw);
}

static void bench_policy(struct bench_opts *o, size_t pages)
{
	struct pol_res r[POL_NR] = { { 0 } };
	struct pol_kernel kr;

	printf("\n== swap: victim policy; zipf 0.99 over %zu MiB, budget 1/4, 8 accesses per page,\n"
	       "   1 in 4 a write; misses = swap-ins per 1000 accesses. kernel: the same\n"
	       "   accesses on anonymous memory (THP off) in a child in a memory cgroup:\n"
	       "   budget + %llu MiB for the fill, then, after the warm-up, the budget plus\n"
	       "   its measured charge besides the data (equal memory for the data), on\n"
	       "   kernel swap (zram-lz4, else a swap file); misses = the cgroup's swap-ins\n",
	       pages * BENCH_PAGE >> 20, POL_KERNEL_HEADROOM >> 20);
	printf("%-14s %12s %10s %14s %14s %9s\n", "policy", "accesses/s", "misses/k",
	       "page writes/k", "clean drops/k", "p99");
	for (int k = 0; k < POL_NR; k++) {
		progress("[swap] policy %s", pol_name[k]);
		pol_run(k, pages, &r[k]);
		progress_done();
		if (!r[k].ran) {
			printf("%-14s %s\n", pol_name[k], r[k].why ? r[k].why : "-");
			continue;
		}
		printf("%-14s %12.0f %10.1f %14.1f %14.1f %7.1fus%s%s\n", pol_name[k], r[k].acc_s,
		       r[k].miss_per_k, r[k].written_per_k, r[k].clean_per_k, r[k].p99 / 1e3,
		       r[k].why ? "  " : "",
		       r[k].why ? r[k].why : "");
		json_row_begin(o, "policy");
		json_kv_str(o, "policy", pol_name[k]);
		json_kv_num(o, "accesses_per_s", r[k].acc_s);
		json_kv_num(o, "misses_per_1000", r[k].miss_per_k);
		json_kv_num(o, "page_writes_per_1000", r[k].written_per_k);
		json_kv_num(o, "clean_drops_per_1000", r[k].clean_per_k);
		json_kv_num(o, "p99_ns", (double)r[k].p99);
		json_kv_num(o, "verified", r[k].ok);
		json_row_end(o);
	}
	progress("[swap] policy kernel");
	pol_kernel(pages, &kr);
	progress_done();
	if (!kr.ran) {
		printf("%-14s %s\n", "kernel", kr.why[0] ? kr.why : "-");
	} else {
		/* page writes: /proc/vmstat pswpout, machine-wide (only our swap
		 * is on, but any process may use it); clean drops: not counted */
		printf("%-14s %12.0f %10.1f %14.1f %14s %7.1fus  %s, resident %.1f MiB%s%s\n",
		       "kernel", kr.acc_s, kr.miss_per_k, kr.written_per_k, "-", kr.p99 / 1e3,
		       kr.swap, kr.resident_mib, kr.why[0] ? "  " : "", kr.why);
		if (kr.oom_kills)
			printf("%-14s (after %u run%s OOM-killed in the cgroup)\n", "", kr.oom_kills,
			       kr.oom_kills > 1 ? "s" : "");
		printf("%-14s misses: %s; /proc/vmstat pswpin %.1f/k; page writes: /proc/vmstat"
		       " pswpout\n", "", pol_src_name[kr.src], kr.vmstat_in_per_k);
		if (kr.over_mib >= 0)
			printf("%-14s limit: budget + %.1f MiB measured besides the data\n", "",
			       kr.over_mib);
		if (kr.zram_why[0])
			printf("%-14s swap file, not zram: %s\n", "", kr.zram_why);
		json_row_begin(o, "policy");
		json_kv_str(o, "policy", "kernel");
		json_kv_str(o, "swap", kr.swap);
		if (kr.zram_why[0])
			json_kv_str(o, "swap_not_zram_because", kr.zram_why);
		json_kv_num(o, "accesses_per_s", kr.acc_s);
		json_kv_num(o, "misses_per_1000", kr.miss_per_k);
		json_kv_str(o, "misses_source", pol_src_name[kr.src]);
		json_kv_num(o, "vmstat_pswpin_per_1000", kr.vmstat_in_per_k);
		json_kv_num(o, "page_writes_per_1000", kr.written_per_k);
		json_kv_num(o, "cgroup_limit_bytes", (double)kr.limit);
		json_kv_num(o, "resident_mib", kr.resident_mib);
		json_kv_num(o, "oom_killed_runs", kr.oom_kills);
		json_kv_num(o, "p99_ns", (double)kr.p99);
		json_kv_num(o, "verified", kr.ok);
		json_row_end(o);
	}
	if (r[POL_FIFO].ran && r[POL_CLOCK].ran && r[POL_CLOCK].miss_per_k > 0)
		summary_add(o, "policy.fifo_misses_over_clock", "victim policy: fifo misses / "
			    "clock misses (zipf)", r[POL_FIFO].miss_per_k, r[POL_CLOCK].miss_per_k);
	if (r[POL_CLOCK_NOPARK].ran && r[POL_CLOCK].ran && r[POL_CLOCK].miss_per_k > 0)
		summary_add(o, "policy.clock_no_ring_misses_over_clock", "victim policy: clock "
			    "without the parked ring / with it, misses (zipf)",
			    r[POL_CLOCK_NOPARK].miss_per_k, r[POL_CLOCK].miss_per_k);
	if (r[POL_CLOCK_WP].ran && r[POL_CLOCK].ran && r[POL_CLOCK_WP].miss_per_k > 0)
		summary_add(o, "policy.clock_misses_over_clock_wp", "victim policy: clock misses / "
			    "clock+wp-scan misses (zipf)", r[POL_CLOCK].miss_per_k,
			    r[POL_CLOCK_WP].miss_per_k);
	/* the goal: ufpager's misses within 10% of the kernel's */
	if (kr.ran && r[POL_CLOCK].ran)
		summary_add(o, "policy.clock_misses_over_kernel", "victim policy: clock misses / "
			    "kernel misses (zipf)", r[POL_CLOCK].miss_per_k, kr.miss_per_k);
	if (kr.ran && r[POL_CLOCK_WP].ran)
		summary_add(o, "policy.clock_wp_misses_over_kernel", "victim policy: clock+wp-scan "
			    "misses / kernel misses (zipf)", r[POL_CLOCK_WP].miss_per_k,
			    kr.miss_per_k);
}

/* The summary's swap ratios: num / den pages/s for data (0 text, 1
 * random) and pattern index pat. */
static const struct sw_sum {
	int data, pat, num, den;
	const char *key, *text;
} sw_sums[] = {
	{ 1, 0, SW_UFP_FILE, SW_KFILE, "swap.seq.file_over_kernel_file",
	  "swap seq refault: ufpager file / kernel file" },
	{ 0, 0, SW_UFP_LZ4, SW_ZRAM, "swap.seq.lz4_over_zram",
	  "swap seq refault: ufpager lz4 / kernel zram-lz4" },
	{ 0, 0, SW_UFP_LZ4_NE, SW_ZRAM, "swap.seq_no_eviction.lz4_over_zram",
	  "swap seq refault, no eviction: ufpager lz4 / zram-lz4" },
	{ 1, 0, SW_UFP_FILE_NE, SW_KFILE, "swap.seq_no_eviction.file_over_kernel_file",
	  "swap seq refault, no eviction: ufpager file / kernel file" },
	{ 1, 1, SW_UFP_FILE, SW_KFILE, "swap.random.file_over_kernel_file",
	  "swap random refault: ufpager file / kernel file" },
};


/* ======================================================================
 * --backend nbd: swap over NBD beside the local swap file.
 * ====================================================================== */

extern char **environ;

/* An nbdkit (memory plugin) this bench starts: on a Unix socket or
 * loopback TCP, with latency_us per request (tools/nbdkit's filter). */
struct nbd_srv {
	pid_t pid;
	char sock[96], uri[160], why[200];
};

/* The latency filter: built beside ufpagerctl (CMake), or where
 * UFPAGER_BENCH_LATENCY_FILTER says. NULL when it is not there. */
static const char *latency_filter(void)
{
	static char path[4200];
	const char *env = getenv("UFPAGER_BENCH_LATENCY_FILTER");
	char exe[4096];
	ssize_t n;

	if (env && access(env, R_OK) == 0)
		return env;
#ifdef UFP_LATENCY_FILTER
	if (access(UFP_LATENCY_FILTER, R_OK) == 0)
		return UFP_LATENCY_FILTER;
#endif
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		if (strrchr(exe, '/'))
			*strrchr(exe, '/') = 0;
		snprintf(path, sizeof(path), "%s/ufp-latency-filter.so", exe);
		if (access(path, R_OK) == 0)
			return path;
	}
	return NULL;
}

static int nbd_srv_start(struct nbd_srv *v, bool tcp, unsigned latency_us, size_t bytes)
{
	char size[32], lat[32], port[16], filt[4300];
	const char *argv[20];
	int n = 0, fd;
	static int seq;

	memset(v, 0, sizeof(*v));
	snprintf(size, sizeof(size), "%zu", bytes);
	argv[n++] = "nbdkit";
	argv[n++] = "-f";
	argv[n++] = "--exit-with-parent";
	if (tcp) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t l = sizeof(a);

		fd = socket(AF_INET, SOCK_STREAM, 0);   /* a free port */
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(fd, (struct sockaddr *)&a, &l)) {
			snprintf(v->why, sizeof(v->why), "no free loopback port: %s", strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
		argv[n++] = "-i";
		argv[n++] = "127.0.0.1";
		argv[n++] = "-p";
		argv[n++] = port;
		snprintf(v->uri, sizeof(v->uri), "nbd://127.0.0.1:%s/", port);
	} else {
		snprintf(v->sock, sizeof(v->sock), "/tmp/ufpagerctl-nbd.%d.%d.sock", (int)getpid(),
			 seq++);
		unlink(v->sock);
		argv[n++] = "-U";
		argv[n++] = v->sock;
		snprintf(v->uri, sizeof(v->uri), "nbd+unix:///?socket=%s", v->sock);
	}
	if (latency_us) {
		const char *f = latency_filter();

		if (!f) {
			snprintf(v->why, sizeof(v->why), "skipped: the latency filter "
				 "(ufp-latency-filter.so) was not built: Debian package "
				 "nbdkit-plugin-dev");
			return -1;
		}
		snprintf(filt, sizeof(filt), "--filter=%s", f);
		argv[n++] = filt;
	}
	argv[n++] = "memory";
	argv[n++] = size;
	if (latency_us) {
		snprintf(lat, sizeof(lat), "latency-us=%u", latency_us);
		argv[n++] = lat;
	}
	argv[n] = NULL;
	/* posix_spawn: no fork of a process that may hold pagers */
	posix_spawn_file_actions_t fa;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int e = posix_spawnp(&v->pid, "nbdkit", &fa, NULL, (char *const *)argv, environ);

	posix_spawn_file_actions_destroy(&fa);
	if (e) {
		snprintf(v->why, sizeof(v->why), "skipped: cannot start nbdkit (%s): Debian "
			 "package nbdkit", strerror(e));
		v->pid = 0;
		return -1;
	}
	for (int i = 0; i < 300; i++) {      /* up to 3 s for it to listen */
		uint64_t sz;

		if (ufp_swap_probe(v->uri, &sz) == 0)
			return 0;
		if (waitpid(v->pid, NULL, WNOHANG) == v->pid) {
			snprintf(v->why, sizeof(v->why), "skipped: nbdkit exited at start");
			v->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	snprintf(v->why, sizeof(v->why), "skipped: nbdkit did not listen within 3 s");
	return -1;
}

static void nbd_srv_stop(struct nbd_srv *v)
{
	if (v->pid > 0) {
		kill(v->pid, SIGTERM);
		waitpid(v->pid, NULL, 0);
	}
	if (v->sock[0])
		unlink(v->sock);
	v->pid = 0;
}

enum { NB_FILE, NB_UNIX, NB_TCP, NB_UNIX_50, NB_UNIX_500, NB_TCP_500, NB_USER, NB_NR };
static const struct {
	const char *name;
	bool tcp;
	unsigned latency_us;
} nb_rows[NB_NR] = {
	[NB_FILE] = { "local-file", false, 0 },
	[NB_UNIX] = { "nbd-unix", false, 0 },
	[NB_TCP] = { "nbd-tcp", true, 0 },
	[NB_UNIX_50] = { "nbd-unix+50us", false, 50 },
	[NB_UNIX_500] = { "nbd-unix+500us", false, 500 },
	[NB_TCP_500] = { "nbd-tcp+500us", true, 500 },
	[NB_USER] = { "nbd (--swap)", false, 0 },
};

static int bench_swap_nbd(struct bench_opts *o, size_t pages)
{
	static const enum kb_pattern pats[2] = { KB_SEQ, KB_RANDOM };

	printf("\n== swap over NBD: refault after eviction; working set %zu MiB of random\n"
	       "   (incompressible) pages, budget 1/4 of it, everything pushed out first;\n"
	       "   nbdkit (memory plugin) on a Unix socket / loopback TCP, latency added per\n"
	       "   request by a filter; the local swap file beside it. pages/RTT: pages\n"
	       "   served per request latency (1 = one page per round trip; more = what\n"
	       "   readahead, merged requests and several connections hide)\n",
	       pages * BENCH_PAGE >> 20);
	printf("%-7s %-16s %11s %9s %9s %9s %10s\n", "order", "swap", "pages/s", "p50", "p99",
	       "pages/RTT", "vs file");
	for (int pi = 0; pi < 2; pi++) {
		struct sw_res r[NB_NR] = { { 0 } };

		for (int k = 0; k < NB_NR; k++) {
			struct nbd_srv v = { 0 };
			const char *where = NULL;

			if (k == NB_USER && !o->swap_uri)
				continue;
			progress("[swap nbd] %s %s", kb_pattern_name(pats[pi]), nb_rows[k].name);
			if (k == NB_USER) {
				where = o->swap_uri;
			} else if (k != NB_FILE) {
				if (nbd_srv_start(&v, nb_rows[k].tcp, nb_rows[k].latency_us,
						  pages * BENCH_PAGE * 2)) {
					r[k].why = strdup(v.why);
					nbd_srv_stop(&v);
					progress_done();
					continue;
				}
				where = v.uri;
			}
			if (sw_ufpager(o, false, false, pats[pi], false, pages, &r[k], where) &&
			    !r[k].why)
				r[k].why = "failed";
			nbd_srv_stop(&v);
			progress_done();
		}
		for (int k = 0; k < NB_NR; k++) {
			double rtt = nb_rows[k].latency_us ? r[k].pages_s * nb_rows[k].latency_us / 1e6 : 0;

			if (k == NB_USER && !o->swap_uri)
				continue;
			if (!r[k].pages_s) {
				printf("%-7s %-16s %s\n", kb_pattern_name(pats[pi]), nb_rows[k].name,
				       r[k].why ? r[k].why : "-");
				continue;
			}
			char rttcol[16] = "-";

			if (rtt)
				snprintf(rttcol, sizeof(rttcol), "%.1f", rtt);
			printf("%-7s %-16s %11.0f %7.1fus %7.1fus %9s %9.2fx%s%s\n",
			       kb_pattern_name(pats[pi]), nb_rows[k].name, r[k].pages_s,
			       r[k].p50 / 1e3, r[k].p99 / 1e3, rttcol, r[NB_FILE].pages_s ?
			       r[k].pages_s / r[NB_FILE].pages_s : 0, r[k].why ? "  " : "",
			       r[k].why ? r[k].why : "");
			json_row_begin(o, "swap_nbd");
			json_kv_str(o, "order", kb_pattern_name(pats[pi]));
			json_kv_str(o, "swap", nb_rows[k].name);
			json_kv_num(o, "latency_us", nb_rows[k].latency_us);
			json_kv_num(o, "pages_per_s", r[k].pages_s);
			json_kv_num(o, "p50_ns", (double)r[k].p50);
			json_kv_num(o, "p99_ns", (double)r[k].p99);
			json_kv_num(o, "pages_per_rtt", rtt);
			json_kv_ratio(o, "vs_file", r[k].pages_s, r[NB_FILE].pages_s,
				      "local-file pages/s");
			json_kv_num(o, "verified", r[k].ok);
			json_row_end(o);
		}
		if (pi == 0) {
			summary_add(o, "swap_nbd.seq.unix_over_file", "swap seq refault: NBD (Unix "
				    "socket) / local file", r[NB_UNIX].pages_s, r[NB_FILE].pages_s);
			summary_add(o, "swap_nbd.seq.500us_over_file", "swap seq refault: NBD at "
				    "500 us per request / local file (goal >= 0.5)",
				    r[NB_UNIX_500].pages_s, r[NB_FILE].pages_s);
		} else {
			summary_add(o, "swap_nbd.random.500us_over_file", "swap random refault: NBD "
				    "at 500 us per request / local file", r[NB_UNIX_500].pages_s,
				    r[NB_FILE].pages_s);
		}
	}
	return 0;
}

int bench_swap(struct bench_opts *o)
{
	static const enum kb_pattern pats[3] = { KB_SEQ, KB_RANDOM, KB_ZIPF };
	size_t pages = o->quick ? 4096 : 16384;

	if (o->backend && !strcmp(o->backend, "nbd"))
		return bench_swap_nbd(o, pages);
	if (o->swap_only && !strcmp(o->swap_only, "policy")) {
		bench_policy(o, pages);
		return 0;
	}

	printf("\n== swap: refault after eviction; working set %zu MiB, ufpager budget 1/4 of it;\n"
	       "   everything pushed out first (PAGEOUT / MADV_PAGEOUT); first access timed\n",
	       pages * BENCH_PAGE >> 20);
	if (geteuid() != 0)
		printf("   (not root: the kernel swap baselines are skipped)\n");
	kb_swap_reap_stale();
	printf("%-7s %-6s %-18s %11s %9s %9s %11s %8s\n", "order", "data", "system", "pages/s",
	       "p50", "p99", "bytes/page", "vs kfile");
	for (int c = 0; c < 2; c++)
		for (int pi = 0; pi < 3; pi++) {
			struct sw_res r[SW_NR] = { { 0 } };

			for (int s = 0; s < SW_NR; s++) {
				progress("[swap] %s %s %s", kb_pattern_name(pats[pi]),
					c ? "random" : "text", sw_name[s]);
				if (s <= SW_UFP_LZ4_NE)
					sw_ufpager(o, s == SW_UFP_LZ4 || s == SW_UFP_LZ4_NE,
						   s >= SW_UFP_FILE_NE, pats[pi], !c, pages, &r[s], NULL);
				else
					sw_kernel(s == SW_ZRAM, pats[pi], !c, pages, &r[s]);
				progress_done();
			}
			for (int s = 0; s < SW_NR; s++) {
				if (!r[s].pages_s) {
					printf("%-7s %-6s %-18s %s\n", kb_pattern_name(pats[pi]),
					       c ? "random" : "text", sw_name[s], r[s].why ? r[s].why : "-");
					continue;
				}
				printf("%-7s %-6s %-18s %11.0f %7.1fus %7.1fus %11.0f %7.2fx%s%s\n",
				       kb_pattern_name(pats[pi]), c ? "random" : "text", sw_name[s],
				       r[s].pages_s, r[s].p50 / 1e3, r[s].p99 / 1e3, r[s].bytes_per_page,
				       r[SW_KFILE].pages_s ? r[s].pages_s / r[SW_KFILE].pages_s : 0,
				       r[s].why ? "  " : "", r[s].why ? r[s].why : "");
				json_row_begin(o, "swap");
				json_kv_str(o, "order", kb_pattern_name(pats[pi]));
				json_kv_str(o, "data", c ? "random" : "text");
				json_kv_str(o, "system", sw_name[s]);
				json_kv_num(o, "pages_per_s", r[s].pages_s);
				json_kv_num(o, "p50_ns", (double)r[s].p50);
				json_kv_num(o, "p99_ns", (double)r[s].p99);
				json_kv_num(o, "bytes_per_page", r[s].bytes_per_page);
				json_kv_num(o, "verified", r[s].ok);
				json_row_end(o);
			}
			for (size_t k = 0; k < sizeof(sw_sums) / sizeof(sw_sums[0]); k++) {
				const struct sw_sum *u = &sw_sums[k];

				if (u->data == c && u->pat == pi && r[u->num].pages_s && r[u->den].pages_s)
					summary_add(o, u->key, u->text, r[u->num].pages_s,
						    r[u->den].pages_s);
			}
			if (c == 0 && r[SW_ZRAM].pages_s && r[SW_UFP_LZ4].pages_s)
				/* random data: ufpager's tier sends incompressible
				 * pages to the file by design, zram keeps them in RAM */
				printf("%-7s %-6s %-18s %11s %30.2fx\n", "", "", "lz4 vs zram", "",
				       r[SW_UFP_LZ4].pages_s / r[SW_ZRAM].pages_s);
		}
	kb_swap_teardown_all();
	if (!o->swap_only)
		bench_policy(o, pages);
	return 0;
}
