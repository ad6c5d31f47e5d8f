/* SPDX-License-Identifier: MIT */
/*
 * bench_alloc.c - `ufpagerctl bench alloc`: the heap (ufp_heap_*, jemalloc
 * arenas on pager memory) against glibc malloc and against the same
 * jemalloc on kernel memory (ufp_heap_create(NULL): an arena with
 * jemalloc's default extent hooks, the same thread caches), for a
 * small-object mix and a large-object mix, 1 and 2 threads, and the heap
 * again under a budget of half the working set (eviction, swap-in).
 *
 * Each thread owns an array of slots holding its share of the working
 * set. After filling them (populate: the first touches), it replaces
 * random slots for the run's time: read the old object's first word (an
 * evicted one comes back), free it, allocate a new one of a random size
 * of the mix and write it (small: all of it; large: its first and last
 * cache lines). One operation is one such replacement; every 32nd is
 * timed for p50/p99. Every configuration runs in a child process of its
 * own, so its RSS (VmRSS at the end, minus the child's before it started)
 * is its own.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

enum alloc_kind { AK_GLIBC, AK_JEMALLOC, AK_HEAP, AK_HEAP_BUDGET, AK_NR };
static const char *const ak_name[AK_NR] = {
	"glibc malloc", "jemalloc (kernel memory)", "ufpager heap", "ufpager heap, budget",
};
static const char *const ak_key[AK_NR] = { "glibc", "jemalloc", "heap", "heap_budget" };

struct mix {
	const char *name;
	size_t lo, hi;            /* object sizes, log-uniform in [lo, hi] */
	size_t ws, ws_quick;      /* working set, all threads together */
};
static const struct mix mixes[2] = {
	{ "small", 16, 1024, 128u << 20, 32u << 20 },
	{ "large", 16u << 10, 1u << 20, 512u << 20, 128u << 20 },
};

struct ab_thread {
	struct crew_member m;     /* first: the crew's view */
	const struct mix *mix;
	enum alloc_kind kind;
	ufp_heap *heap;
	unsigned nslots;
	uint64_t seed;
	uint64_t populate_ns;
	uint64_t bad;
	unsigned char **slot;     /* freed after the RSS is read */
};

struct ab_result {
	double ops_s;             /* replacements per second, all threads */
	uint64_t p50, p99;        /* ns per replacement */
	double populate_s;        /* the slowest thread's fill */
	double rss_mib;
	uint64_t swapouts, swapins, bad;
	int err;                  /* 0, or why the child could not run */
};

static uint64_t ab_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A size of the mix: log-uniform between lo and hi. */
static size_t ab_size(const struct mix *m, uint64_t *s)
{
	unsigned lo = 63 - (unsigned)__builtin_clzll(m->lo), hi = 63 - (unsigned)__builtin_clzll(m->hi);
	unsigned b = lo + (unsigned)(ab_rand(s) % (hi - lo));
	size_t base = (size_t)1 << b;

	return base + (size_t)(ab_rand(s) % base);
}

static void *ab_malloc(struct ab_thread *t, size_t n)
{
	return t->kind == AK_GLIBC ? malloc(n) : ufp_heap_malloc(t->heap, n);
}

static void ab_free(struct ab_thread *t, void *p)
{
	if (t->kind == AK_GLIBC)
		free(p);
	else
		ufp_heap_free(t->heap, p);
}

/* Write a new object: its size in its first word; all of a small one, the
 * first and last cache lines of a large one. */
static void ab_write(const struct mix *m, unsigned char *p, size_t n)
{
	if (m->hi <= 4096) {
		memset(p, (int)(n & 0x7f) | 1, n);
	} else {
		memset(p, 1, 64);
		memset(p + n - 64, 1, 64);
	}
	memcpy(p, &n, sizeof(n));
}

static void *ab_main(void *arg)
{
	struct ab_thread *t = arg;
	unsigned char **slot = calloc(t->nslots, sizeof(*slot));
	uint64_t t0 = now_ns(), ops = 0;

	if (!slot) {
		t->bad++;
		crew_ready(&t->m);
		return NULL;
	}
	for (unsigned i = 0; i < t->nslots; i++) {
		size_t n = ab_size(t->mix, &t->seed);

		slot[i] = ab_malloc(t, n);
		if (!slot[i]) {
			t->bad++;
			break;
		}
		ab_write(t->mix, slot[i], n);
	}
	t->populate_ns = now_ns() - t0;
	crew_ready(&t->m);
	while (!t->bad && !crew_stopping(&t->m)) {
		bool timed = (ops & 31) == 0;
		uint64_t s0 = timed ? now_ns() : 0;
		unsigned k = (unsigned)(ab_rand(&t->seed) % t->nslots);
		size_t n = ab_size(t->mix, &t->seed), old;

		memcpy(&old, slot[k], sizeof(old));   /* read the old object */
		if (old < t->mix->lo || old >= 2 * t->mix->hi)
			t->bad++;
		ab_free(t, slot[k]);
		slot[k] = ab_malloc(t, n);
		if (!slot[k]) {
			t->bad++;
			break;
		}
		ab_write(t->mix, slot[k], n);
		if (timed)
			kb_hist_record(&t->m.lat, now_ns() - s0);
		ops++;
	}
	t->m.ops = ops;
	t->slot = slot;
	return NULL;
}

static double rss_mib(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (double)res * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

/* One configuration, in this (child) process. */
static void ab_run(struct bench_opts *o, const struct mix *m, unsigned nt, enum alloc_kind kind,
		   struct ab_result *r)
{
	size_t ws = o->quick ? m->ws_quick : m->ws, avg = 0;
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
				 .flags = UFP_PF_NO_EXPORT };
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	struct ab_thread th[2];
	struct bench_crew crew;
	struct kb_hist lat = KB_HIST_INIT;
	ufp_pager *p = NULL;
	ufp_heap *h = NULL;
	double rss0 = rss_mib();
	uint64_t ops = 0;

	/* E[size] of the mix: the mean of each octave's 1.5 * 2^b */
	for (size_t b = m->lo; b < m->hi; b *= 2)
		avg += b + b / 2;
	avg /= (size_t)(63 - __builtin_clzll(m->hi) - (63 - __builtin_clzll(m->lo)));
	if (kind == AK_HEAP_BUDGET) {
		pr.budget = ws / 2;
		pr.swap_size = 2 * (uint64_t)ws;
	}
	if (kind >= AK_HEAP && (r->err = bench_pager_create(&pr, &p)))
		return;
	if (kind != AK_GLIBC && (r->err = ufp_heap_create(p, 0, &h))) {
		fprintf(stderr, "bench alloc: %s\n", ufp_last_error());
		return;
	}
	if ((r->err = -crew_init(&crew, nt)))
		return;
	for (unsigned i = 0; i < nt; i++) {
		th[i] = (struct ab_thread){ .mix = m, .kind = kind, .heap = h,
					    .nslots = (unsigned)(ws / avg / nt),
					    .seed = 0x9E3779B97F4A7C15ull * (i + 1) };
		kb_hist_init(&th[i].m.lat);
		crew_spawn(&crew, &th[i].m, ab_main, &th[i]);
	}
	r->err = crew_run_for(&crew, o->seconds);
	crew_collect(&crew, 0, nt, &lat, &ops);
	r->ops_s = crew.elapsed > 0 ? (double)ops / crew.elapsed : 0;
	r->p50 = kb_hist_p50(&lat);
	r->p99 = kb_hist_pct(&lat, 0.99);
	for (unsigned i = 0; i < nt; i++) {
		r->bad += th[i].bad;
		if ((double)th[i].populate_ns / 1e9 > r->populate_s)
			r->populate_s = (double)th[i].populate_ns / 1e9;
	}
	r->rss_mib = rss_mib() - rss0;   /* the working set still allocated */
	for (unsigned i = 0; i < nt; i++) {
		for (unsigned k = 0; th[i].slot && k < th[i].nslots; k++)
			if (th[i].slot[k])
				ab_free(&th[i], th[i].slot[k]);
		free(th[i].slot);
	}
	if (p && !ufp_stats_get(p, &st)) {
		r->swapouts = st.swapouts;
		r->swapins = st.swapins;
	}
	crew_destroy(&crew);
	/* no teardown: the child exits (a pager made in a fork child of a
	 * process that used RCU before must not wait for its grace periods) */
}

/* Run one configuration in a child; its result comes back through a pipe. */
static int ab_forked(struct bench_opts *o, const struct mix *m, unsigned nt, enum alloc_kind kind,
		     struct ab_result *r)
{
	int fd[2], status;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	fflush(NULL);
	if (pipe(fd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct ab_result cr = { 0 };

		close(fd[0]);
		ab_run(o, m, nt, kind, &cr);
		_exit(write(fd[1], &cr, sizeof(cr)) == (ssize_t)sizeof(cr) ? 0 : 1);
	}
	close(fd[1]);
	ssize_t got = read(fd[0], r, sizeof(*r));

	close(fd[0]);
	waitpid(pid, &status, 0);
	if (got != (ssize_t)sizeof(*r))
		return -EIO;
	return 0;
}

int bench_alloc(struct bench_opts *o)
{
	static const unsigned threads[2] = { 1, 2 };
	int rc = 0;

	printf("\n== alloc: malloc/free through the heap (jemalloc arenas on pager memory) vs\n"
	       "   glibc malloc vs the same jemalloc on kernel memory; each op frees a random\n"
	       "   live object and allocates another (%.1fs per run; RSS: the run's own)\n",
	       o->seconds);
	printf("%-6s %2s %-26s %8s %10s %8s %8s %10s %8s %10s\n", "mix", "T", "allocator",
	       "WS MiB", "Mops/s", "p50 ns", "p99 ns", "fill s", "RSS MiB", "swapouts");
	for (int mi = 0; mi < 2 && !rc; mi++) {
		const struct mix *m = &mixes[mi];
		size_t ws = o->quick ? m->ws_quick : m->ws;

		for (int ti = 0; ti < 2 && !rc; ti++) {
			struct ab_result res[AK_NR];

			for (int k = 0; k < AK_NR; k++) {
				struct ab_result *r = &res[k];

				progress("[alloc] %s, %u thread(s), %s", m->name, threads[ti], ak_name[k]);
				int err = ab_forked(o, m, threads[ti], (enum alloc_kind)k, r);

				progress_done();
				if (err || r->err) {
					fprintf(stderr, "bench alloc: %s %s: %s\n", m->name, ak_name[k],
						strerror(-(err ? err : r->err)));
					rc = 1;
					break;
				}
				if (r->bad) {
					fprintf(stderr, "bench alloc: %s %s: %llu failed allocations or "
						"damaged objects\n", m->name, ak_name[k],
						(unsigned long long)r->bad);
					rc = 1;
				}
				char wsb[32];

				snprintf(wsb, sizeof(wsb), "%zu%s", ws >> 20,
					 k == AK_HEAP_BUDGET ? "*" : "");
				printf("%-6s %2u %-26s %8s %10.2f %8llu %8llu %10.3f %8.0f %10llu\n",
				       m->name, threads[ti], ak_name[k], wsb, r->ops_s / 1e6,
				       (unsigned long long)r->p50, (unsigned long long)r->p99,
				       r->populate_s, r->rss_mib, (unsigned long long)r->swapouts);
				json_row_begin(o, "alloc");
				json_kv_str(o, "mix", m->name);
				json_kv_num(o, "threads", threads[ti]);
				json_kv_str(o, "allocator", ak_key[k]);
				json_kv_num(o, "working_set_mib", (double)(ws >> 20));
				json_kv_num(o, "budget_mib", k == AK_HEAP_BUDGET ? (double)(ws >> 21) : 0);
				json_kv_num(o, "ops_per_s", r->ops_s);
				json_kv_num(o, "p50_ns", (double)r->p50);
				json_kv_num(o, "p99_ns", (double)r->p99);
				json_kv_num(o, "populate_s", r->populate_s);
				json_kv_num(o, "rss_mib", r->rss_mib);
				json_kv_num(o, "swapouts", (double)r->swapouts);
				json_kv_num(o, "swapins", (double)r->swapins);
				json_row_end(o);
			}
			if (rc)
				break;
			char key[64], text[96];

			snprintf(key, sizeof(key), "alloc.%s_%ut.jemalloc_over_heap", m->name,
				 threads[ti]);
			snprintf(text, sizeof(text), "alloc %s %uT: heap time/op over jemalloc's "
				 "(aim <= 1.25)", m->name, threads[ti]);
			summary_add(o, key, text, res[AK_JEMALLOC].ops_s, res[AK_HEAP].ops_s);
			snprintf(key, sizeof(key), "alloc.%s_%ut.glibc_over_heap", m->name, threads[ti]);
			snprintf(text, sizeof(text), "alloc %s %uT: heap time/op over glibc's",
				 m->name, threads[ti]);
			summary_add(o, key, text, res[AK_GLIBC].ops_s, res[AK_HEAP].ops_s);
		}
	}
	printf("   (* budget: half the working set, so a share of the objects lives in swap;\n"
	       "    op = read the old object's first word, free it, malloc a new one and write\n"
	       "    it: small all of it, large its first and last cache line; p50/p99 of one op)\n");
	return rc;
}
