/* SPDX-License-Identifier: MIT */
/*
 * kbase.h - kernel baselines for ufpager's benchmarks (prefix kb_): the
 * kernel's own first-touch anonymous fault, the kernel's own swap (a swap
 * file, zram) refaulted in several access orders, a real mmap_lock writer
 * in the same process, and the small log-linear latency histogram they
 * record into. Self-contained: no ufpager headers, no library.
 *
 * Every figure in a struct kb_result is measured in the call that fills it;
 * nothing is remembered from other runs.
 *
 * Timing: each timed access is bracketed by clock_gettime(CLOCK_MONOTONIC)
 * (vDSO, no syscall); the cost of one bracket on this machine is measured
 * and reported in kb_result.clock_ns, and is included in every sample.
 */
#ifndef UFPAGERCTL_KBASE_H
#define UFPAGERCTL_KBASE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Latency histogram. Log-linear: values below 2^KB_HIST_SUB_BITS have a
 * bucket each; above, every power of two is split into 2^KB_HIST_SUB_BITS
 * equal buckets (relative width <= 1/32, ~3%). Covers all of uint64_t.
 * Not thread-safe: one histogram per thread, merged after join.
 * ====================================================================== */

#define KB_HIST_SUB_BITS 5
#define KB_HIST_SUB      (1u << KB_HIST_SUB_BITS)
#define KB_HIST_BUCKETS  ((64 - KB_HIST_SUB_BITS + 1) * KB_HIST_SUB)

struct kb_hist {
	uint64_t count;
	uint64_t sum;            /* saturating */
	uint64_t min, max;       /* exact; min is UINT64_MAX while empty */
	uint64_t b[KB_HIST_BUCKETS];
};

/* One point of the cumulative distribution: frac of samples <= value_ns. */
struct kb_cdf_point {
	uint64_t value_ns;       /* a bucket's inclusive upper bound (or max) */
	double frac;
};

/* An empty histogram: kb_hist_init() or this initializer. */
#define KB_HIST_INIT { .min = UINT64_MAX }
void kb_hist_init(struct kb_hist *h);
/* Bucket of a value, and a bucket's inclusive bounds: lo <= v <= hi. */
unsigned kb_hist_bucket(uint64_t v);
uint64_t kb_hist_bucket_lo(unsigned idx);
uint64_t kb_hist_bucket_hi(unsigned idx);

static inline void kb_hist_record(struct kb_hist *h, uint64_t ns)
{
	h->b[kb_hist_bucket(ns)]++;
	h->count++;
	h->sum = h->sum + ns < h->sum ? UINT64_MAX : h->sum + ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

void kb_hist_merge(struct kb_hist *dst, const struct kb_hist *src);
/*
 * Nearest-rank percentile, q in [0, 1]: the inclusive upper bound of the
 * bucket holding the ceil(q * count)-th smallest sample, clamped to
 * [min, max]. So the exact answer lies in [kb_hist_bucket_lo(), result].
 * Returns 0 for an empty histogram.
 */
uint64_t kb_hist_pct(const struct kb_hist *h, double q);
static inline uint64_t kb_hist_p50(const struct kb_hist *h) { return kb_hist_pct(h, 0.50); }
static inline uint64_t kb_hist_p99(const struct kb_hist *h) { return kb_hist_pct(h, 0.99); }
static inline uint64_t kb_hist_p999(const struct kb_hist *h) { return kb_hist_pct(h, 0.999); }
/*
 * The CDF, one point per non-empty bucket in increasing order (the last
 * point is {max, 1.0}). Writes at most cap points to pts (pts may be NULL
 * when cap is 0) and the number that exist to *n. Returns 0, or -ENOSPC
 * when cap < *n (the first cap points are written).
 */
int kb_hist_cdf(const struct kb_hist *h, struct kb_cdf_point *pts, size_t cap,
		size_t *n);
/* The CDF as "value_ns frac" lines (gnuplot/matplotlib ready). 0 or -errno. */
int kb_hist_cdf_write(const struct kb_hist *h, FILE *f);

/* ======================================================================
 * Results.
 * ====================================================================== */

struct kb_result {
	unsigned threads;
	uint64_t pages;          /* pages in the mapping */
	uint64_t count;          /* timed first accesses (== hist.count) */
	uint64_t accesses;       /* all accesses made in the timed phase */
	double wall_s;           /* timed phase, first thread start to last end */
	double pages_per_s;      /* count / wall_s (faults/s for first touch) */
	uint64_t p50_ns, p99_ns, p999_ns, max_ns;
	double mean_ns;
	uint64_t clock_ns;       /* measured cost of one timing bracket */
	uint64_t minflt, majflt; /* getrusage(RUSAGE_SELF) deltas, timed phase */

	/* kb_refault only. /proc/vmstat counters are machine-wide. */
	uint64_t pswpout_delta;  /* from before fill to after pageout */
	uint64_t pages_out;      /* pages really out after pageout: neither
				  * mapped nor in the swap cache (mincore) */
	unsigned pageout_rounds; /* MADV_PAGEOUT passes made (1 + retries) */
	uint64_t pswpin_delta;   /* pages read from the device, timed phase */
	uint64_t swapcache_hits; /* count - pages whose access read the device,
				  * estimated as count - min(count, pswpin) */
	double bytes_per_page;   /* device bytes per page evicted, see source */
	const char *bytes_source;
	uint64_t zram_orig, zram_compr; /* mm_stat deltas (zram only) */
	uint64_t mismatches;     /* pages whose content differed: a failure */

	struct kb_hist hist;
};

/*
 * Kernel first-touch fault: mmap pages anonymous 4 KiB pages (THP off for
 * the range), threads split them into contiguous shares, each writes one
 * byte per page of its share and times each write. May block; call from
 * any thread. Returns 0 or -errno (-EINVAL for 0 pages or threads).
 */
int kb_first_touch(size_t pages, unsigned threads, struct kb_result *r);

/* ======================================================================
 * Kernel swap devices. Setup and teardown may block (swapon/swapoff) and
 * need root. Every active device is also recorded in a process-wide table
 * (mutex for setup/teardown; signal-safe teardown from a SIGINT/SIGTERM
 * handler and an atexit handler, installed on first setup), so it is torn
 * down on every exit path except SIGKILL; kb_swap_reap_stale() cleans
 * what a killed run left behind. The SIGINT/SIGTERM handler tears down,
 * restores the handlers it replaced and re-raises the signal.
 * ====================================================================== */

enum kb_swap_kind { KB_SWAP_NONE, KB_SWAP_FILE, KB_SWAP_ZRAM };

/* Caller-set flags, read by setup. */
#define KB_SWAP_ALLOW_OTHER 0x1u /* proceed although other swap is active */

#define KB_SWAP_PRIO 32000       /* swapon priority: above any default */

struct kb_swap {
	unsigned flags;          /* in: KB_SWAP_* (zero = refuse other swap) */
	/* out: */
	enum kb_swap_kind kind;
	bool active;
	int slot;                /* index in the process-wide table */
	int sys_errno;           /* errno of the failing call, when one failed */
	uint64_t bytes;          /* swap size, page aligned */
	char path[PATH_MAX];     /* the swap file, or /dev/zram0 */
	char algo[32];           /* zram only */
	char other[256];         /* other swap active at setup ("" if none) */
	bool zswap;              /* zswap enabled at setup: swap-file pages
				  * then go to zswap first, not the file */
	char why[256];           /* why setup failed / skipped */
};

/*
 * A swap file of bytes (rounded down to pages) in dir: created with
 * mkstemp ("kbase-swap.XXXXXX"), fallocate()d, given a swap header written
 * by this code (not /sbin/mkswap), enabled with swapon(2) at KB_SWAP_PRIO.
 * Returns 0; -EPERM (not root), -EBUSY (other swap active and
 * KB_SWAP_ALLOW_OTHER not set), -ENOTSUP (swapon refused the file, e.g. a
 * filesystem without swap-file support; errno in sys_errno) or another
 * -errno; on failure nothing is left behind and s->why says why.
 */
int kb_swap_file_setup(const char *dir, uint64_t bytes, struct kb_swap *s);
/*
 * /sys/block/zram0 as swap: reset, comp_algorithm = algo, disksize = bytes,
 * swap header (written by this code), swapon at KB_SWAP_PRIO. Returns 0;
 * -EPERM (not root), -ENODEV (zram0 missing), -EBUSY (zram0 initialised or
 * swapped on by someone else, or other swap active), -ENOTSUP (algo not
 * offered) or another -errno; on failure zram0 is reset and s->why says why.
 */
int kb_zram_setup(uint64_t bytes, const char *algo, struct kb_swap *s);
/* swapoff, then unlink (file) or reset (zram). Idempotent. 0 or -errno. */
int kb_swap_teardown(struct kb_swap *s);
/* Tear down every device this process set up. Returns the first error. */
int kb_swap_teardown_all(void);
/*
 * Reap what a killed run left: swapoff and unlink every active swap file
 * named kbase-swap.*, and zram0 if a marker says a dead process of ours
 * set it up. Returns how many were reaped, or -errno.
 */
int kb_swap_reap_stale(void);
/* Active swap areas in /proc/swaps (besides none). Writes their names,
 * space-separated, to buf (may be NULL). Returns the count or -errno. */
int kb_swap_active(char *buf, size_t len);
/* A /proc/vmstat counter by name; 0 or -errno. */
int kb_vmstat(const char *name, uint64_t *val);

/* ======================================================================
 * Refault through the kernel's swap.
 * ====================================================================== */

enum kb_pattern { KB_SEQ, KB_RANDOM, KB_ZIPF };

struct kb_refault_params {
	size_t pages;
	unsigned threads;
	enum kb_pattern pattern;
	bool compressible;       /* ~3-4x under lz4, not same-filled; else random */
	uint64_t accesses;       /* KB_ZIPF: total accesses (0 = pages) */
	double zipf_theta;       /* KB_ZIPF skew (0 = 0.99) */
	uint64_t seed;           /* orders (0 = fixed default) */
	const struct kb_swap *swap; /* optional: zram mm_stat for bytes/page */
};

/*
 * Fill rp->pages pages (each tagged with its index), push them out with
 * MADV_PAGEOUT in chunks (retrying up to 3 times while pswpout rose by less
 * than 90% of the pages), refault with rp->threads threads in rp->pattern
 * order timing each page's first access, then verify every page. Needs
 * active swap to do anything useful; may block for seconds. Returns 0,
 * -EIO if any page's content was wrong (r->mismatches), -EAGAIN if fewer
 * than 90% of the pages could be pushed out (r is still filled), -EINVAL
 * or another -errno.
 */
int kb_refault(const struct kb_refault_params *rp, struct kb_result *r);
const char *kb_pattern_name(enum kb_pattern p);

/* ======================================================================
 * Memory cgroups: v1's memory hierarchy where it is mounted
 * (/sys/fs/cgroup/memory), else v2 (/sys/fs/cgroup).
 * ====================================================================== */

/* Create the cgroup ufpager-bench-<pid> limited to limit bytes (v1 also
 * gets swappiness 100: swap rather than OOM); its path in dir. 0 or
 * -errno (-EPERM: the limit could not be set; nothing left behind). The
 * caller rmdir()s it when its processes are gone. */
int kb_cgroup_create(uint64_t limit, char *dir, size_t dlen);
/* Move the calling process into the cgroup at dir. 0 or -errno. */
int kb_cgroup_enter(const char *dir);
/* Change the cgroup's limit (the kernel reclaims down to it at once), and
 * read what it is charged now (v1 usage_in_bytes, v2 memory.current).
 * 0 or -errno. */
int kb_cgroup_set_limit(const char *dir, uint64_t limit);
int kb_cgroup_usage(const char *dir, uint64_t *bytes);
/* Bytes of [addr, addr+len) in RAM (mincore: mapped, or in the swap cache). */
uint64_t kb_resident_bytes(const void *addr, size_t len);
/*
 * Equal memory for the data: lower the cgroup's limit to budget plus what
 * it is charged for besides the working set (page tables, stacks, the
 * allocator: its usage minus data_in_ram, the working set's bytes in RAM
 * by kb_resident_bytes), measured now, after a warm-up under a looser
 * limit. Returns that charge in bytes, or -errno (the limit unchanged).
 */
int64_t kb_cgroup_fit(const char *dir, uint64_t budget, uint64_t data_in_ram);
/* A counter of the cgroup at dir from its memory.stat: the cgroup's own
 * line (v1 also prints total_*, the hierarchy's). What exists differs:
 * v1 has workingset_refault_anon and rss but no pswpin; v2 has anon,
 * workingset_refault_anon and, on recent kernels, pswpin. 0, -ENOENT (no
 * such line) or another -errno. */
int kb_cgroup_stat(const char *dir, const char *name, uint64_t *val);
/* Remove the cgroup kb_cgroup_create() made in process pid (v1 or v2),
 * once no process is left in it. 0 or -errno (-ENOENT: none there). */
int kb_cgroup_remove(int pid);

/* ======================================================================
 * mmap_lock churn: threads of this process looping mmap / mprotect /
 * munmap on memory of their own, each call a real mmap_lock writer.
 * start/stop from one controlling thread.
 * ====================================================================== */

struct kb_churn_thread;

struct kb_churn {
	unsigned threads;
	size_t bytes;            /* per thread */
	struct kb_churn_thread *t;
	double start_s;
	/* out of kb_churn_stop: */
	uint64_t ops;            /* mmap + mprotect + munmap calls made */
	double ops_per_s;
};

/* Start threads churners over bytes each (rounded up to pages).
 * 0 or -errno (nothing left running on failure). */
int kb_churn_start(struct kb_churn *c, unsigned threads, size_t bytes);
/* Stop and join; fills c->ops and c->ops_per_s. 0 or -errno. */
int kb_churn_stop(struct kb_churn *c);

#ifdef __cplusplus
}
#endif

#endif
