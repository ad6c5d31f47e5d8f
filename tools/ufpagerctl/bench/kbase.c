/* SPDX-License-Identifier: MIT */
/*
 * kbase.c - kernel baselines (see kbase.h): the log-linear latency
 * histogram; the kernel's first-touch anonymous fault; kernel swap set up
 * on a swap file or on zram0 (swap header written here, torn down on every
 * exit path but SIGKILL); refault through that swap in sequential, random
 * and zipf order with every page's content verified; and a real mmap_lock
 * writer (mmap/mprotect/munmap churn) in this process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* fallocate, mkostemp, MADV_PAGEOUT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <time.h>
#include <unistd.h>

#include "kbase.h"

#define KB_PAGE 4096u

/* ======================================================================
 * Histogram. Plain per-thread data: no locking, no atomics.
 * ====================================================================== */

void kb_hist_init(struct kb_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned kb_hist_bucket(uint64_t v)
{
	unsigned e;

	if (v < KB_HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);            /* >= SUB_BITS */
	return (e - KB_HIST_SUB_BITS + 1) * KB_HIST_SUB +
	       (unsigned)((v >> (e - KB_HIST_SUB_BITS)) - KB_HIST_SUB);
}

uint64_t kb_hist_bucket_lo(unsigned idx)
{
	unsigned g = idx >> KB_HIST_SUB_BITS, sub = idx & (KB_HIST_SUB - 1);

	if (g == 0)
		return idx;
	return ((uint64_t)KB_HIST_SUB + sub) << (g - 1);
}

uint64_t kb_hist_bucket_hi(unsigned idx)
{
	unsigned g = idx >> KB_HIST_SUB_BITS;

	if (g == 0)
		return idx;
	if (idx == KB_HIST_BUCKETS - 1)
		return UINT64_MAX;
	return kb_hist_bucket_lo(idx) + (1ull << (g - 1)) - 1;
}

void kb_hist_merge(struct kb_hist *dst, const struct kb_hist *src)
{
	for (unsigned i = 0; i < KB_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum = dst->sum + src->sum < dst->sum ? UINT64_MAX : dst->sum + src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t kb_hist_pct(const struct kb_hist *h, double q)
{
	uint64_t rank, seen = 0, v;

	if (!h->count)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			v = kb_hist_bucket_hi(i);
			if (v > h->max)
				v = h->max;
			return v < h->min ? h->min : v;
		}
	}
	return h->max;
}

int kb_hist_cdf(const struct kb_hist *h, struct kb_cdf_point *pts, size_t cap,
		size_t *n)
{
	uint64_t seen = 0;
	size_t k = 0;

	for (unsigned i = 0; i < KB_HIST_BUCKETS && seen < h->count; i++) {
		if (!h->b[i])
			continue;
		seen += h->b[i];
		if (k < cap) {
			uint64_t v = kb_hist_bucket_hi(i);

			pts[k].value_ns = v > h->max ? h->max : v;
			pts[k].frac = (double)seen / (double)h->count;
		}
		k++;
	}
	*n = k;
	return k > cap ? -ENOSPC : 0;
}

int kb_hist_cdf_write(const struct kb_hist *h, FILE *f)
{
	struct kb_cdf_point *pts;
	size_t n;
	int ret = 0;

	kb_hist_cdf(h, NULL, 0, &n);
	pts = calloc(n ? n : 1, sizeof(*pts));
	if (!pts)
		return -ENOMEM;
	kb_hist_cdf(h, pts, n, &n);
	for (size_t i = 0; i < n; i++)
		if (fprintf(f, "%llu %.6f\n", (unsigned long long)pts[i].value_ns,
			    pts[i].frac) < 0)
			ret = -EIO;
	free(pts);
	return ret;
}

/* ======================================================================
 * Helpers: clocks, counters, sysfs, PRNG. Callable from any thread.
 * ====================================================================== */

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Cheapest of many empty timing brackets: the floor every sample carries. */
static uint64_t clock_cost_ns(void)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 2000; i++) {
		uint64_t a = now_ns(), b = now_ns();

		if (b - a < best)
			best = b - a;
	}
	return best;
}

static void rusage_faults(uint64_t *minflt, uint64_t *majflt)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*minflt = (uint64_t)ru.ru_minflt;
	*majflt = (uint64_t)ru.ru_majflt;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Read a small text file; 0 or -errno. Async-signal-unsafe (stdio-free,
 * but used only from normal context). */
static int read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	buf[n] = 0;
	close(fd);
	return 0;
}

/* Write a string to a sysfs/proc file. Async-signal-safe. 0 or -errno. */
static int write_text(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* The value of "name value" line `name` of a file such as /proc/vmstat or
 * a cgroup's memory.stat. 0, -ENOENT (no such line) or -errno. */
static int kv_file_get(const char *path, const char *name, uint64_t *val)
{
	char line[256];
	size_t nl = strlen(name);
	FILE *f = fopen(path, "re");
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, nl) && line[nl] == ' ') {
			*val = strtoull(line + nl + 1, NULL, 10);
			err = 0;
			break;
		}
	fclose(f);
	return err;
}

int kb_vmstat(const char *name, uint64_t *val)
{
	return kv_file_get("/proc/vmstat", name, val);
}

/* ---- memory cgroups ------------------------------------------------------ */

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -errno;
	close(fd);
	return ok;
}

int kb_cgroup_create(uint64_t limit, char *dir, size_t dlen)
{
	char path[320], val[64];

	snprintf(val, sizeof(val), "%llu", (unsigned long long)limit);
	if (access("/sys/fs/cgroup/memory/cgroup.procs", F_OK) == 0) {
		snprintf(dir, dlen, "/sys/fs/cgroup/memory/ufpager-bench-%d", (int)getpid());
		if (mkdir(dir, 0700) && errno != EEXIST)
			return -errno;
		snprintf(path, sizeof(path), "%s/memory.swappiness", dir);
		write_str(path, "100");    /* swap rather than OOM */
		snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", dir);
	} else {
		snprintf(dir, dlen, "/sys/fs/cgroup/ufpager-bench-%d", (int)getpid());
		if (mkdir(dir, 0700) && errno != EEXIST)
			return -errno;
		snprintf(path, sizeof(path), "%s/memory.max", dir);
	}
	if (write_str(path, val)) {
		rmdir(dir);
		return -EPERM;
	}
	return 0;
}

/* The cgroup's own file of v1 (name1) or v2 (name2) at dir. */
static void cg_file(const char *dir, const char *name1, const char *name2, char *path,
		    size_t len)
{
	snprintf(path, len, "%s/%s", dir, strstr(dir, "/memory/") ? name1 : name2);
}

int kb_cgroup_set_limit(const char *dir, uint64_t limit)
{
	char path[320], val[64];

	snprintf(val, sizeof(val), "%llu", (unsigned long long)limit);
	cg_file(dir, "memory.limit_in_bytes", "memory.max", path, sizeof(path));
	return write_str(path, val);
}

int kb_cgroup_usage(const char *dir, uint64_t *bytes)
{
	char path[320];
	unsigned long long v;
	FILE *f;
	int n;

	cg_file(dir, "memory.usage_in_bytes", "memory.current", path, sizeof(path));
	if (!(f = fopen(path, "r")))
		return -errno;
	n = fscanf(f, "%llu", &v);
	fclose(f);
	if (n != 1)
		return -EIO;
	*bytes = v;
	return 0;
}

uint64_t kb_resident_bytes(const void *addr, size_t len)
{
	size_t n = (len + 4095) / 4096;
	unsigned char *v = malloc(n ? n : 1);
	uint64_t in = 0;

	if (v && !mincore((void *)addr, len, v))
		for (size_t k = 0; k < n; k++)
			in += v[k] & 1;
	free(v);
	return in * 4096;
}

int64_t kb_cgroup_fit(const char *dir, uint64_t budget, uint64_t data_in_ram)
{
	uint64_t used = 0, over;
	int err = kb_cgroup_usage(dir, &used);

	if (err)
		return err;
	over = used > data_in_ram ? used - data_in_ram : 0;
	err = kb_cgroup_set_limit(dir, budget + over);
	return err ? err : (int64_t)over;
}

int kb_cgroup_enter(const char *dir)
{
	char path[320], val[32];

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	snprintf(val, sizeof(val), "%d", (int)getpid());
	return write_str(path, val);
}

int kb_cgroup_stat(const char *dir, const char *name, uint64_t *val)
{
	char path[320];

	snprintf(path, sizeof(path), "%s/memory.stat", dir);
	return kv_file_get(path, name, val);
}

int kb_cgroup_remove(int pid)
{
	static const char *const roots[2] = { "/sys/fs/cgroup/memory", "/sys/fs/cgroup" };
	char dir[96];

	for (int i = 0; i < 2; i++) {   /* v1's hierarchy first, as kb_cgroup_create */
		snprintf(dir, sizeof(dir), "%s/ufpager-bench-%d", roots[i], pid);
		if (!rmdir(dir))
			return 0;
		if (errno != ENOENT)
			return -errno;
	}
	return -ENOENT;
}

int kb_swap_active(char *buf, size_t len)
{
	char line[512], name[PATH_MAX];
	int count = 0;
	size_t used = 0;
	FILE *f = fopen("/proc/swaps", "re");

	if (buf && len)
		buf[0] = 0;
	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {    /* header */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%4095s", name) != 1)
			continue;
		count++;
		if (buf && used + strlen(name) + 2 < len)
			used += (size_t)snprintf(buf + used, len - used, "%s%s",
						 used ? " " : "", name);
	}
	fclose(f);
	return count;
}

static void fill_result(struct kb_result *r, uint64_t wall)
{
	r->count = r->hist.count;
	r->wall_s = (double)wall / 1e9;
	r->pages_per_s = wall ? (double)r->count / r->wall_s : 0;
	r->p50_ns = kb_hist_p50(&r->hist);
	r->p99_ns = kb_hist_p99(&r->hist);
	r->p999_ns = kb_hist_p999(&r->hist);
	r->max_ns = r->hist.max;
	r->mean_ns = r->count ? (double)r->hist.sum / (double)r->count : 0;
}

/* Start line for timed threads: they and the controller meet here, so the
 * controller's clock read after the barrier starts the wall time. */
struct kb_team {
	pthread_barrier_t go;
	unsigned threads;
};

/* ======================================================================
 * Kernel first-touch fault. Each thread owns its share of the mapping and
 * its own histogram; histograms are merged after join.
 * ====================================================================== */

struct touch_arg {
	struct kb_team *team;
	char *base;
	size_t first, n;
	struct kb_hist hist;
};

static void *touch_thread(void *p)
{
	struct touch_arg *a = p;
	char *page = a->base + a->first * KB_PAGE;

	pthread_barrier_wait(&a->team->go);
	for (size_t i = 0; i < a->n; i++, page += KB_PAGE) {
		uint64_t t0 = now_ns();

		*(volatile char *)page = 1;
		kb_hist_record(&a->hist, now_ns() - t0);
	}
	return NULL;
}

/* Run fn on threads args, timing from the shared start to the last join. */
static int run_team(struct kb_team *team, void *(*fn)(void *), void *args,
		    size_t argsz, uint64_t *wall)
{
	pthread_t th[64];
	unsigned started = 0;
	int ret = 0;
	uint64_t t0;

	if (team->threads > 64)
		return -EINVAL;
	ret = -pthread_barrier_init(&team->go, NULL, team->threads + 1);
	if (ret)
		return ret;
	for (; started < team->threads; started++) {
		ret = -pthread_create(&th[started], NULL, fn,
				      (char *)args + started * argsz);
		if (ret)
			break;
	}
	if (ret) {
		/* Can't release a barrier short of its count: run the
		 * started ones anyway by filling in for the missing. */
		for (unsigned i = started; i < team->threads; i++)
			pthread_barrier_wait(&team->go);
	}
	pthread_barrier_wait(&team->go);
	t0 = now_ns();
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	*wall = now_ns() - t0;
	pthread_barrier_destroy(&team->go);
	return ret;
}

int kb_first_touch(size_t pages, unsigned threads, struct kb_result *r)
{
	struct kb_team team = { .threads = threads };
	struct touch_arg *args;
	uint64_t wall, mn0, mj0, mn1, mj1;
	char *mem;
	int ret;

	if (!pages || !threads || threads > 64)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	kb_hist_init(&r->hist);
	r->threads = threads;
	r->pages = pages;
	r->clock_ns = clock_cost_ns();

	mem = mmap(NULL, pages * KB_PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	madvise(mem, pages * KB_PAGE, MADV_NOHUGEPAGE);
	args = calloc(threads, sizeof(*args));
	if (!args) {
		munmap(mem, pages * KB_PAGE);
		return -ENOMEM;
	}
	for (unsigned t = 0; t < threads; t++) {
		args[t].team = &team;
		args[t].base = mem;
		args[t].first = pages * t / threads;
		args[t].n = pages * (t + 1) / threads - args[t].first;
		kb_hist_init(&args[t].hist);
	}
	rusage_faults(&mn0, &mj0);
	ret = run_team(&team, touch_thread, args, sizeof(*args), &wall);
	rusage_faults(&mn1, &mj1);
	for (unsigned t = 0; t < threads; t++)
		kb_hist_merge(&r->hist, &args[t].hist);
	r->accesses = r->hist.count;
	r->minflt = mn1 - mn0;
	r->majflt = mj1 - mj0;
	fill_result(r, wall);
	free(args);
	munmap(mem, pages * KB_PAGE);
	return ret;
}

/* ======================================================================
 * Kernel swap devices. The slot table is written under table_lock in
 * normal context; a slot's state is claimed with an atomic exchange, so
 * exactly one of teardown / signal handler / atexit tears a device down.
 * The raw teardown uses async-signal-safe calls only.
 * ====================================================================== */

#define KB_SLOTS 4
#define ZRAM_SYS "/sys/block/zram0"
#define ZRAM_DEV "/dev/zram0"
#define ZRAM_MARK "/run/kbase-zram0.pid"
#define SWAPFILE_PREFIX "kbase-swap."

enum { SLOT_FREE, SLOT_ACTIVE, SLOT_BUSY };

struct kb_slot {
	_Atomic int state;
	enum kb_swap_kind kind;
	char path[PATH_MAX];
};

static struct kb_slot slots[KB_SLOTS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static bool handlers_installed;
static struct sigaction old_int, old_term;

static int zram_reset_raw(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int ret = 0;

	/* Right after swapoff the device may still be held for a moment. */
	for (int i = 0; i < 50; i++) {
		ret = write_text(ZRAM_SYS "/reset", "1");
		if (ret != -EBUSY)
			break;
		nanosleep(&ts, NULL);
	}
	return ret;
}

/* Async-signal-safe. */
static int teardown_raw(enum kb_swap_kind kind, const char *path)
{
	int ret = 0;

	if (swapoff(path) && errno != EINVAL)   /* EINVAL: not swapped on */
		ret = -errno;
	if (kind == KB_SWAP_FILE) {
		if (unlink(path) && errno != ENOENT && !ret)
			ret = -errno;
	} else if (kind == KB_SWAP_ZRAM) {
		int r2 = zram_reset_raw();

		if (r2 && !ret)
			ret = r2;
		unlink(ZRAM_MARK);
	}
	return ret;
}

static int slot_teardown(int i)
{
	int expect = SLOT_ACTIVE;

	if (!atomic_compare_exchange_strong(&slots[i].state, &expect, SLOT_BUSY))
		return 0;
	/* The slot stays SLOT_BUSY until its owner frees it. */
	return teardown_raw(slots[i].kind, slots[i].path);
}

static void on_fatal_signal(int sig)
{
	int saved = errno;

	for (int i = 0; i < KB_SLOTS; i++)
		slot_teardown(i);
	/* Hand the signal to whoever had it (often: the default, death). */
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	errno = saved;
	raise(sig);
}

/* A signal the process ignores (a background job's SIGINT) stays ignored:
 * catching it would tear swap down under a process that goes on running. */
static void catch_unless_ignored(int sig, const struct sigaction *sa,
				 struct sigaction *old)
{
	if (sigaction(sig, NULL, old) || old->sa_handler == SIG_IGN)
		return;
	sigaction(sig, sa, old);
}

static void on_exit_teardown(void)
{
	kb_swap_teardown_all();
}

/* Called with table_lock held. */
static void install_handlers(void)
{
	struct sigaction sa;

	if (handlers_installed)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGTERM);
	catch_unless_ignored(SIGINT, &sa, &old_int);
	catch_unless_ignored(SIGTERM, &sa, &old_term);
	atexit(on_exit_teardown);
	handlers_installed = true;
}

/* Claim a slot for a device about to be swapped on. -ENOSPC if full. */
static int slot_claim(struct kb_swap *s)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&table_lock);
	install_handlers();
	for (int i = 0; i < KB_SLOTS; i++) {
		if (atomic_load(&slots[i].state) != SLOT_FREE)
			continue;
		slots[i].kind = s->kind;
		memcpy(slots[i].path, s->path, sizeof(slots[i].path));
		/* release: pairs with the seq_cst CAS in slot_teardown(), so a
		 * handler that claims the slot sees its path and kind */
		atomic_store_explicit(&slots[i].state, SLOT_ACTIVE, memory_order_release);
		s->slot = i;
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&table_lock);
	return ret;
}

int kb_swap_teardown(struct kb_swap *s)
{
	int ret;

	if (!s->active)
		return 0;
	pthread_mutex_lock(&table_lock);
	ret = slot_teardown(s->slot);
	atomic_store(&slots[s->slot].state, SLOT_FREE);
	pthread_mutex_unlock(&table_lock);
	s->active = false;
	return ret;
}

int kb_swap_teardown_all(void)
{
	int ret = 0;

	pthread_mutex_lock(&table_lock);
	for (int i = 0; i < KB_SLOTS; i++) {
		int r = slot_teardown(i);

		if (r && !ret)
			ret = r;
		atomic_store(&slots[i].state, SLOT_FREE);
	}
	pthread_mutex_unlock(&table_lock);
	return ret;
}

/*
 * The swap header (linux/swap.h union swap_header, version 1): magic
 * "SWAPSPACE2" in the last 10 bytes of page 0; at offset 1024 version,
 * last_page, nr_badpages, a 16-byte UUID and a 16-byte label.
 */
static int write_swap_header(int fd, uint64_t bytes)
{
	unsigned char page[KB_PAGE];
	uint32_t info[3];
	uint64_t x = now_ns() ^ (uint64_t)getpid() << 32;

	if (bytes / KB_PAGE < 10 || bytes / KB_PAGE - 1 > UINT32_MAX)
		return -EINVAL;
	memset(page, 0, sizeof(page));
	info[0] = 1;                                   /* version */
	info[1] = (uint32_t)(bytes / KB_PAGE - 1);     /* last_page */
	info[2] = 0;                                   /* nr_badpages */
	memcpy(page + 1024, info, sizeof(info));
	for (int i = 0; i < 16; i += 8) {              /* sws_uuid, v4 */
		uint64_t v = splitmix64(&x);

		memcpy(page + 1036 + i, &v, 8);
	}
	page[1036 + 6] = (page[1036 + 6] & 0x0f) | 0x40;
	page[1036 + 8] = (page[1036 + 8] & 0x3f) | 0x80;
	memcpy(page + 1052, "kbase", 5);               /* sws_volume */
	memcpy(page + KB_PAGE - 10, "SWAPSPACE2", 10);
	if (pwrite(fd, page, sizeof(page), 0) != (ssize_t)sizeof(page))
		return errno ? -errno : -EIO;
	if (fsync(fd))
		return -errno;
	return 0;
}

static int swapon_prio(const char *path)
{
	int flags = SWAP_FLAG_PREFER |
		    ((KB_SWAP_PRIO << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK);

	return swapon(path, flags) ? -errno : 0;
}

/* Common checks: root, other swap. Fills s->other. */
static int swap_precheck(struct kb_swap *s)
{
	char buf[16];
	int n;

	if (geteuid() != 0) {
		snprintf(s->why, sizeof(s->why), "not root (swapon needs CAP_SYS_ADMIN)");
		return -EPERM;
	}
	if (!read_text("/sys/module/zswap/parameters/enabled", buf, sizeof(buf)))
		s->zswap = buf[0] == 'Y' || buf[0] == '1';
	n = kb_swap_active(s->other, sizeof(s->other));
	if (n < 0) {
		snprintf(s->why, sizeof(s->why), "cannot read /proc/swaps: %s",
			 strerror(-n));
		return n;
	}
	if (n > 0 && !(s->flags & KB_SWAP_ALLOW_OTHER)) {
		snprintf(s->why, sizeof(s->why),
			 "other swap active (%.160s); set KB_SWAP_ALLOW_OTHER to measure anyway",
			 s->other);
		return -EBUSY;
	}
	return 0;
}

static void swap_reset_out(struct kb_swap *s, enum kb_swap_kind kind)
{
	unsigned flags = s->flags;

	memset(s, 0, sizeof(*s));
	s->flags = flags;
	s->kind = kind;
	s->slot = -1;
}

int kb_swap_file_setup(const char *dir, uint64_t bytes, struct kb_swap *s)
{
	int fd, ret;

	swap_reset_out(s, KB_SWAP_FILE);
	s->bytes = bytes & ~(uint64_t)(KB_PAGE - 1);
	ret = swap_precheck(s);
	if (ret)
		return ret;
	if (snprintf(s->path, sizeof(s->path), "%s/" SWAPFILE_PREFIX "XXXXXX",
		     dir) >= (int)sizeof(s->path))
		return -ENAMETOOLONG;
	fd = mkostemp(s->path, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(s->why, sizeof(s->why), "mkstemp in %.160s: %s", dir, strerror(errno));
		return ret;
	}
	fchmod(fd, 0600);
	if (fallocate(fd, 0, 0, (off_t)s->bytes)) {
		ret = -errno;
		s->sys_errno = errno;
		snprintf(s->why, sizeof(s->why), "fallocate %llu bytes: %s",
			 (unsigned long long)s->bytes, strerror(errno));
		goto fail;
	}
	ret = write_swap_header(fd, s->bytes);
	if (ret) {
		snprintf(s->why, sizeof(s->why), "swap header: %s", strerror(-ret));
		goto fail;
	}
	close(fd);
	fd = -1;
	ret = slot_claim(s);
	if (ret) {
		snprintf(s->why, sizeof(s->why), "all %d swap slots in use", KB_SLOTS);
		goto fail;
	}
	ret = swapon_prio(s->path);
	if (ret) {
		s->sys_errno = -ret;
		snprintf(s->why, sizeof(s->why), "swapon(%.160s): %s (no swap-file support here?)",
			 s->path, strerror(-ret));
		s->active = true;           /* let teardown free slot + file */
		kb_swap_teardown(s);
		return -ENOTSUP;
	}
	s->active = true;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(s->path);
	return ret;
}

static int zram_algo_current(char *out, size_t len)
{
	char buf[512], *a, *b;
	int ret = read_text(ZRAM_SYS "/comp_algorithm", buf, sizeof(buf));

	if (ret)
		return ret;
	a = strchr(buf, '[');
	b = a ? strchr(a, ']') : NULL;
	if (!b)
		return -EINVAL;
	*b = 0;
	snprintf(out, len, "%s", a + 1);
	return 0;
}

/* Is algo offered (a space-separated token, maybe bracketed)? */
static bool zram_algo_offered(const char *algo)
{
	char buf[512], *tok, *save;

	if (read_text(ZRAM_SYS "/comp_algorithm", buf, sizeof(buf)))
		return false;
	for (tok = strtok_r(buf, " \n[]", &save); tok; tok = strtok_r(NULL, " \n[]", &save))
		if (!strcmp(tok, algo))
			return true;
	return false;
}

int kb_zram_setup(uint64_t bytes, const char *algo, struct kb_swap *s)
{
	char buf[64];
	int fd, ret;

	swap_reset_out(s, KB_SWAP_ZRAM);
	s->bytes = bytes & ~(uint64_t)(KB_PAGE - 1);
	snprintf(s->path, sizeof(s->path), ZRAM_DEV);
	if (access(ZRAM_SYS, F_OK)) {
		snprintf(s->why, sizeof(s->why), "zram0 missing (%s absent; modprobe zram)",
			 ZRAM_SYS);
		return -ENODEV;
	}
	ret = swap_precheck(s);
	if (ret) {
		if (strstr(s->other, ZRAM_DEV))
			snprintf(s->why, sizeof(s->why), "zram0 busy: already swapped on");
		return ret;
	}
	ret = read_text(ZRAM_SYS "/disksize", buf, sizeof(buf));
	if (ret) {
		snprintf(s->why, sizeof(s->why), "read disksize: %s", strerror(-ret));
		return ret;
	}
	if (strtoull(buf, NULL, 10) != 0) {
		snprintf(s->why, sizeof(s->why),
			 "zram0 busy: already initialised (disksize %llu), not ours",
			 strtoull(buf, NULL, 10));
		return -EBUSY;
	}
	ret = write_text(ZRAM_SYS "/reset", "1");
	if (ret) {
		snprintf(s->why, sizeof(s->why), "zram0 busy: reset: %s", strerror(-ret));
		return ret == -EBUSY ? -EBUSY : ret;
	}
	if (!zram_algo_offered(algo)) {
		snprintf(s->why, sizeof(s->why), "zram0 does not offer %s", algo);
		return -ENOTSUP;
	}
	ret = write_text(ZRAM_SYS "/comp_algorithm", algo);
	if (ret) {
		snprintf(s->why, sizeof(s->why), "comp_algorithm %s: %s", algo, strerror(-ret));
		goto fail;
	}
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)s->bytes);
	ret = write_text(ZRAM_SYS "/disksize", buf);
	if (ret) {
		snprintf(s->why, sizeof(s->why), "disksize %s: %s", buf, strerror(-ret));
		goto fail;
	}
	zram_algo_current(s->algo, sizeof(s->algo));
	/* Marker for kb_swap_reap_stale(); best effort. */
	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	fd = open(ZRAM_MARK, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		ssize_t w = write(fd, buf, strlen(buf));

		(void)w;
		close(fd);
	}
	fd = open(ZRAM_DEV, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(s->why, sizeof(s->why), "open %s: %s", ZRAM_DEV, strerror(errno));
		goto fail;
	}
	ret = write_swap_header(fd, s->bytes);
	close(fd);
	if (ret) {
		snprintf(s->why, sizeof(s->why), "swap header: %s", strerror(-ret));
		goto fail;
	}
	ret = slot_claim(s);
	if (ret) {
		snprintf(s->why, sizeof(s->why), "all %d swap slots in use", KB_SLOTS);
		goto fail;
	}
	ret = swapon_prio(s->path);
	if (ret) {
		s->sys_errno = -ret;
		snprintf(s->why, sizeof(s->why), "swapon(%.160s): %s", s->path, strerror(-ret));
		s->active = true;
		kb_swap_teardown(s);
		return ret;
	}
	s->active = true;
	return 0;
fail:
	zram_reset_raw();
	unlink(ZRAM_MARK);
	return ret;
}

int kb_swap_reap_stale(void)
{
	char line[512], name[PATH_MAX], buf[64];
	int reaped = 0, pid = 0;
	FILE *f;

	if (geteuid() != 0)
		return -EPERM;
	f = fopen("/proc/swaps", "re");
	if (!f)
		return -errno;
	if (!read_text(ZRAM_MARK, buf, sizeof(buf)))
		pid = atoi(buf);
	while (fgets(line, sizeof(line), f)) {
		const char *base;

		if (sscanf(line, "%4095s", name) != 1 || name[0] != '/')
			continue;
		base = strrchr(name, '/') + 1;
		if (!strncmp(base, SWAPFILE_PREFIX, strlen(SWAPFILE_PREFIX))) {
			if (!teardown_raw(KB_SWAP_FILE, name))
				reaped++;
		}
	}
	fclose(f);
	/* A zram0 set up by a process of ours that no longer exists. */
	if (pid > 0 && pid != getpid() && kill(pid, 0) && errno == ESRCH) {
		if (!teardown_raw(KB_SWAP_ZRAM, ZRAM_DEV))
			reaped++;
	}
	return reaped;
}

/* ======================================================================
 * Refault. Page content: a 16-byte header {tag(index), index} then either
 * 64-byte lines of 12 PRNG bytes + 52 bytes of fixed text (lz4 finds the
 * text as matches: ~3.5x, never same-filled) or PRNG bytes throughout.
 * Threads own their slice of the access order and their histogram; in
 * zipf order a page's first access is claimed with an atomic exchange.
 * ====================================================================== */

static const char kb_text[53] =
	"ufpager kernel baseline: swap refault, text line 01.";

static uint64_t page_tag(uint64_t idx)
{
	uint64_t x = idx ^ 0x6b62617365746167ull;

	return splitmix64(&x);
}

static void page_fill(unsigned char *p, uint64_t idx, bool compressible)
{
	uint64_t x = page_tag(idx), hdr[2] = { x, idx };

	memcpy(p, hdr, sizeof(hdr));
	if (compressible) {
		for (unsigned off = 16; off < KB_PAGE; off += 64) {
			uint64_t a = splitmix64(&x), b = splitmix64(&x);

			memcpy(p + off, &a, 8);         /* 12 random bytes */
			memcpy(p + off + 8, &b, 4);
			memcpy(p + off + 12, kb_text,
			       off + 64 <= KB_PAGE ? 52 : KB_PAGE - off - 12);
		}
	} else {
		for (unsigned off = 16; off < KB_PAGE; off += 8) {
			uint64_t a = splitmix64(&x);

			memcpy(p + off, &a, 8);
		}
	}
}

const char *kb_pattern_name(enum kb_pattern p)
{
	switch (p) {
	case KB_SEQ: return "seq";
	case KB_RANDOM: return "random";
	case KB_ZIPF: return "zipf";
	}
	return "?";
}

/* zram mm_stat: orig_data_size, compr_data_size. */
static int zram_mm_stat(uint64_t *orig, uint64_t *compr)
{
	char buf[256];
	unsigned long long o, c;
	int ret = read_text(ZRAM_SYS "/mm_stat", buf, sizeof(buf));

	if (ret)
		return ret;
	if (sscanf(buf, "%llu %llu", &o, &c) != 2)
		return -EINVAL;
	*orig = o;
	*compr = c;
	return 0;
}

/* YCSB-style zipf (Gray et al. "Quickly generating billion-record
 * synthetic databases"): rank 0 is the hottest. */
struct zipf {
	double theta, alpha, zetan, eta, half_pow;
	uint64_t n;
};

static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1.0 + pow(0.5, theta);

	z->n = n;
	z->theta = theta;
	z->zetan = 0;
	for (uint64_t i = 1; i <= n; i++)
		z->zetan += pow((double)i, -theta);
	z->alpha = 1.0 / (1.0 - theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z->zetan);
	z->half_pow = 1.0 + pow(0.5, theta);
}

static uint64_t zipf_next(const struct zipf *z, uint64_t *x)
{
	double u = (double)(splitmix64(x) >> 11) * 0x1.0p-53, uz = u * z->zetan;
	uint64_t v;

	if (uz < 1.0)
		return 0;
	if (uz < z->half_pow)
		return 1 % z->n;
	v = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return v >= z->n ? z->n - 1 : v;
}

struct refault_arg {
	struct kb_team *team;
	unsigned char *base;
	const uint32_t *order;       /* page indices, this thread's slice */
	size_t n;
	_Atomic unsigned char *first; /* KB_ZIPF: per-page first-access flags */
	struct kb_hist hist;
	uint64_t accesses;
};

static void *refault_thread(void *p)
{
	struct refault_arg *a = p;

	pthread_barrier_wait(&a->team->go);
	for (size_t i = 0; i < a->n; i++) {
		volatile uint64_t *w = (volatile uint64_t *)(a->base +
					(size_t)a->order[i] * KB_PAGE);
		uint64_t t0;

		a->accesses++;
		/* relaxed: the flag only elects the one timed access */
		if (a->first && atomic_exchange_explicit(&a->first[a->order[i]], 1,
							 memory_order_relaxed)) {
			(void)*w;
			continue;
		}
		t0 = now_ns();
		(void)*w;
		kb_hist_record(&a->hist, now_ns() - t0);
	}
	return NULL;
}

static int make_order(const struct kb_refault_params *rp, uint32_t **orderp,
		      size_t *np)
{
	uint64_t x = rp->seed ? rp->seed : 0x5eed5eedull;
	uint32_t *perm, *order;
	size_t n = rp->pages;

	perm = malloc(n * sizeof(*perm));
	if (!perm)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	if (rp->pattern == KB_SEQ) {
		*orderp = perm;
		*np = n;
		return 0;
	}
	for (size_t i = n - 1; i > 0; i--) {          /* Fisher-Yates */
		size_t j = splitmix64(&x) % (i + 1);
		uint32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	if (rp->pattern == KB_RANDOM) {
		*orderp = perm;
		*np = n;
		return 0;
	}
	/* zipf: ranks scattered over the range through perm */
	{
		struct zipf z;
		size_t acc = rp->accesses ? rp->accesses : n;

		zipf_init(&z, n, rp->zipf_theta > 0 ? rp->zipf_theta : 0.99);
		order = malloc(acc * sizeof(*order));
		if (!order) {
			free(perm);
			return -ENOMEM;
		}
		for (size_t i = 0; i < acc; i++)
			order[i] = perm[zipf_next(&z, &x)];
		free(perm);
		*orderp = order;
		*np = acc;
	}
	return 0;
}

#define PAGEOUT_CHUNK 2048u   /* pages per MADV_PAGEOUT call (8 MiB) */
#define PAGEOUT_RETRIES 3

/* Pages of [mem, mem + pages) still in memory: mapped, or unmapped but in
 * the swap cache (mincore reports swap-cache folios of swap entries). */
static int count_resident(unsigned char *mem, size_t pages, unsigned char *vec,
			  uint64_t *resident)
{
	uint64_t n = 0;

	if (mincore(mem, pages * KB_PAGE, vec))
		return -errno;
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	*resident = n;
	return 0;
}

static int pageout_range(unsigned char *mem, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i += PAGEOUT_CHUNK) {
		size_t k = first + n - i < PAGEOUT_CHUNK ? first + n - i : PAGEOUT_CHUNK;

		if (madvise(mem + i * KB_PAGE, k * KB_PAGE, MADV_PAGEOUT))
			return -errno;
	}
	return 0;
}

/*
 * Push every page to the device. MADV_PAGEOUT writes a page and unmaps it,
 * but a page whose write is asynchronous (a swap file) stays in the swap
 * cache once written, and a later refault of it is a minor fault that reads
 * nothing. So after the first pass, wait for writeback, map such pages
 * again with a read (a minor fault: the folio stays clean and keeps its
 * swap slot) and page them out again: clean now, they are dropped without
 * another write. Rounds repeat while pswpout is short of 90% of the pages
 * or mincore still finds more than 1/1000 of them in memory (a page or
 * two can stay behind: reported in pages_out).
 */
static int pageout_all(unsigned char *mem, size_t pages, uint64_t out0,
		       struct kb_result *r)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	uint64_t out = out0, resident = pages;
	unsigned char *vec = malloc(pages);
	int ret;

	if (!vec)
		return -ENOMEM;
	ret = pageout_range(mem, 0, pages);
	r->pageout_rounds = 1;
	for (unsigned round = 0; !ret; round++) {
		ret = kb_vmstat("pswpout", &out);
		if (!ret)
			ret = count_resident(mem, pages, vec, &resident);
		if (ret || round == PAGEOUT_RETRIES ||
		    ((out - out0) * 10 >= (uint64_t)pages * 9 &&
		     resident * 1000 <= pages))
			break;
		nanosleep(&ts, NULL);           /* let writeback finish */
		r->pageout_rounds++;
		for (size_t i = 0; i < pages; i++) {
			size_t j = i;

			if (!(vec[i] & 1))
				continue;
			while (j < pages && (vec[j] & 1)) {
				(void)*(volatile unsigned char *)(mem + j * KB_PAGE);
				j++;
			}
			ret = pageout_range(mem, i, j - i);
			if (ret)
				break;
			i = j;
		}
	}
	free(vec);
	r->pswpout_delta = out - out0;
	r->pages_out = pages - resident;
	return ret;
}

int kb_refault(const struct kb_refault_params *rp, struct kb_result *r)
{
	struct kb_team team = { .threads = rp->threads };
	struct refault_arg *args = NULL;
	_Atomic unsigned char *first = NULL;
	unsigned char *mem, *expect = NULL;
	uint32_t *order = NULL;
	uint64_t out0, in0, in1, mn0, mj0, mn1, mj1, zo0 = 0, zc0 = 0, zo1, zc1, wall;
	bool zram = rp->swap && rp->swap->kind == KB_SWAP_ZRAM;
	size_t len = rp->pages * KB_PAGE, norder = 0;
	int ret;

	if (!rp->pages || rp->pages > UINT32_MAX || !rp->threads || rp->threads > 64)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	kb_hist_init(&r->hist);
	r->threads = rp->threads;
	r->pages = rp->pages;
	r->clock_ns = clock_cost_ns();

	ret = make_order(rp, &order, &norder);
	if (ret)
		return ret;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		ret = -errno;
		free(order);
		return ret;
	}
	madvise(mem, len, MADV_NOHUGEPAGE);
	args = calloc(rp->threads, sizeof(*args));
	expect = malloc(KB_PAGE);
	if (rp->pattern == KB_ZIPF)
		first = calloc(rp->pages, 1);
	if (!args || !expect || (rp->pattern == KB_ZIPF && !first)) {
		ret = -ENOMEM;
		goto out;
	}

	/* Fill, then push out. */
	ret = kb_vmstat("pswpout", &out0);
	if (ret)
		goto out;
	for (size_t i = 0; i < rp->pages; i++)
		page_fill(mem + i * KB_PAGE, i, rp->compressible);
	if (zram)
		zram_mm_stat(&zo0, &zc0);
	ret = pageout_all(mem, rp->pages, out0, r);
	if (ret)
		goto out;
	if (zram && !zram_mm_stat(&zo1, &zc1)) {
		r->zram_orig = zo1 - zo0;
		r->zram_compr = zc1 - zc0;
		r->bytes_source = "zram mm_stat compr_data_size delta / pages out";
		r->bytes_per_page = r->pages_out ?
			(double)r->zram_compr / (double)r->pages_out : 0;
	} else {
		r->bytes_source = "vmstat pswpout delta * 4096 / pages out";
		r->bytes_per_page = r->pages_out ?
			(double)r->pswpout_delta * KB_PAGE / (double)r->pages_out : 0;
	}

	/* Timed refault. */
	for (unsigned t = 0; t < rp->threads; t++) {
		args[t].team = &team;
		args[t].base = mem;
		args[t].order = order + norder * t / rp->threads;
		args[t].n = norder * (t + 1) / rp->threads - norder * t / rp->threads;
		args[t].first = first;
		kb_hist_init(&args[t].hist);
	}
	ret = kb_vmstat("pswpin", &in0);
	if (ret)
		goto out;
	rusage_faults(&mn0, &mj0);
	ret = run_team(&team, refault_thread, args, sizeof(*args), &wall);
	rusage_faults(&mn1, &mj1);
	kb_vmstat("pswpin", &in1);
	if (ret)
		goto out;
	for (unsigned t = 0; t < rp->threads; t++) {
		kb_hist_merge(&r->hist, &args[t].hist);
		r->accesses += args[t].accesses;
	}
	r->minflt = mn1 - mn0;
	r->majflt = mj1 - mj0;
	r->pswpin_delta = in1 - in0;
	fill_result(r, wall);
	r->swapcache_hits = r->count - (r->pswpin_delta < r->count ?
					r->pswpin_delta : r->count);

	/* Verify every page (untouched zipf pages fault in here, untimed). */
	for (size_t i = 0; i < rp->pages; i++) {
		page_fill(expect, i, rp->compressible);
		if (memcmp(expect, mem + i * KB_PAGE, KB_PAGE))
			r->mismatches++;
	}
	if (r->mismatches)
		ret = -EIO;
	else if (r->pages_out * 10 < (uint64_t)rp->pages * 9)
		ret = -EAGAIN;
out:
	munmap(mem, len);
	free((void *)first);
	free(expect);
	free(args);
	free(order);
	return ret;
}

/* ======================================================================
 * mmap_lock churn. Each churner owns a populated region and loops
 * mprotect(RO), mprotect(RW) over it (page-table walks under the write
 * lock) and mmap+munmap of a small region: four writer acquisitions.
 * ====================================================================== */

struct kb_churn_thread {
	pthread_t th;
	void *mem;
	size_t len;
	_Atomic bool stop;
	_Atomic uint64_t ops;
};

static void *churn_thread(void *p)
{
	struct kb_churn_thread *t = p;
	uint64_t ops = 0;

	/* relaxed: stop is a hint; join orders the final ops read */
	while (!atomic_load_explicit(&t->stop, memory_order_relaxed)) {
		void *q;

		mprotect(t->mem, t->len, PROT_READ);
		mprotect(t->mem, t->len, PROT_READ | PROT_WRITE);
		q = mmap(NULL, 16 * KB_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (q != MAP_FAILED)
			munmap(q, 16 * KB_PAGE);
		ops += 4;
		atomic_store_explicit(&t->ops, ops, memory_order_relaxed);
	}
	return NULL;
}

int kb_churn_start(struct kb_churn *c, unsigned threads, size_t bytes)
{
	int ret = 0;
	unsigned i;

	memset(c, 0, sizeof(*c));
	if (!threads)
		return -EINVAL;
	c->threads = threads;
	c->bytes = (bytes + KB_PAGE - 1) & ~(size_t)(KB_PAGE - 1);
	if (!c->bytes)
		c->bytes = KB_PAGE;
	c->t = calloc(threads, sizeof(*c->t));
	if (!c->t)
		return -ENOMEM;
	for (i = 0; i < threads; i++) {
		struct kb_churn_thread *t = &c->t[i];

		t->len = c->bytes;
		t->mem = mmap(NULL, t->len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (t->mem == MAP_FAILED) {
			ret = -errno;
			t->mem = NULL;
			break;
		}
		ret = -pthread_create(&t->th, NULL, churn_thread, t);
		if (ret) {
			munmap(t->mem, t->len);
			t->mem = NULL;
			break;
		}
	}
	if (ret) {
		c->threads = i;
		kb_churn_stop(c);
		memset(c, 0, sizeof(*c));
		return ret;
	}
	c->start_s = (double)now_ns() / 1e9;
	return 0;
}

int kb_churn_stop(struct kb_churn *c)
{
	double el;

	if (!c->t)
		return 0;
	for (unsigned i = 0; i < c->threads; i++)
		atomic_store_explicit(&c->t[i].stop, true, memory_order_relaxed);
	el = (double)now_ns() / 1e9 - c->start_s;
	c->ops = 0;
	for (unsigned i = 0; i < c->threads; i++) {
		pthread_join(c->t[i].th, NULL);
		c->ops += atomic_load_explicit(&c->t[i].ops, memory_order_relaxed);
		munmap(c->t[i].mem, c->t[i].len);
	}
	c->ops_per_s = el > 0 ? (double)c->ops / el : 0;
	free(c->t);
	c->t = NULL;
	return 0;
}
