/* SPDX-License-Identifier: MIT */
/*
 * stats.c - per-thread counters and log-linear latency histograms, merged
 * on read, and the text / JSON printers generated from the X-macro list in
 * ufpager.h.
 *
 * Concurrency contract: a block is written only by its own thread, with
 * relaxed atomic stores (no RMW, no shared line on the fault path); readers
 * merge with relaxed loads under stats_lock (which only guards the list).
 * A thread that has no block and may not allocate one (signal context of a
 * thread that never called the library) uses the pager's shared block with
 * relaxed fetch_add: the fallback path, like the pager-lock fallback.
 */
#include <stdarg.h>

#include "base.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"

/* A new counter block for the calling thread, on the pager's list.
 * Normal context (allocates). NULL when out of memory. */
struct ufp_tstats *stats_block_new(struct ufp_pager *p)
{
	struct ufp_tstats *ts = ufp_cacheline_zalloc(sizeof(*ts));

	if (!ts)
		return NULL;
	ufp_mutex_lock(&p->stats.lock, LL_STATS);
	ts->next = p->stats.blocks;
	p->stats.blocks = ts;
	ufp_mutex_unlock(&p->stats.lock, LL_STATS);
	return ts;
}

/*
 * A thread is gone: fold its block into the pager's totals of exited
 * threads and free it, so that a pool that churns threads keeps a bounded
 * number of blocks. stats_lock held; the block's thread no longer runs.
 */
void stats_block_retire(struct ufp_pager *p, struct ufp_tstats *ts)
{
	struct ufp_tstats **pp;

	for (pp = &p->stats.blocks; *pp && *pp != ts; pp = &(*pp)->next)
		;
	if (!*pp)
		return;
	*pp = ts->next;
	for (unsigned i = 0; i < UFP_C_NR; i++)
		atomic_fetch_add_explicit(&p->stats.exited.c[i],
			atomic_load_explicit(&ts->c[i], memory_order_relaxed), memory_order_relaxed);
	for (unsigned l = 0; l < UFP_L_NR; l++) {
		struct ufp_hist *d = &p->stats.exited.h[l], *h = &ts->h[l];
		uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);

		for (unsigned i = 0; i < UFP_HIST_BUCKETS; i++)
			atomic_fetch_add_explicit(&d->b[i], atomic_load_explicit(&h->b[i],
					memory_order_relaxed), memory_order_relaxed);
		atomic_fetch_add_explicit(&d->sum, atomic_load_explicit(&h->sum,
				memory_order_relaxed), memory_order_relaxed);
		if (m > atomic_load_explicit(&d->max, memory_order_relaxed))
			atomic_store_explicit(&d->max, m, memory_order_relaxed);
	}
	slab_free(ts);
}

void stats_add(struct ufp_tstats *ts, enum ufp_counter c, int64_t v)
{
	if (ufp_unlikely(ts->shared)) {
		atomic_fetch_add_explicit(&ts->c[c], v, memory_order_relaxed);
		return;
	}
	/* single writer: load + store, relaxed (readers merge relaxed) */
	atomic_store_explicit(&ts->c[c],
		atomic_load_explicit(&ts->c[c], memory_order_relaxed) + v,
		memory_order_relaxed);
}

unsigned stats_hist_bucket(uint64_t v)
{
	unsigned msb;

	if (v < 16)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	return (msb - 2) * UFP_HIST_SUB + (unsigned)((v >> (msb - 3)) & 7);
}

uint64_t stats_hist_bucket_low(unsigned idx)
{
	unsigned msb, sub;

	if (idx < 16)
		return idx;
	msb = idx / UFP_HIST_SUB + 2;
	sub = idx % UFP_HIST_SUB;
	return (1ull << msb) | ((uint64_t)sub << (msb - 3));
}

static void relaxed_add(struct ufp_tstats *ts, _Atomic uint64_t *a, uint64_t v)
{
	if (ts->shared)
		atomic_fetch_add_explicit(a, v, memory_order_relaxed);
	else
		atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
				      memory_order_relaxed);
}

void stats_hist_record(struct ufp_tstats *ts, enum ufp_latency_id l, uint64_t ns)
{
	struct ufp_hist *h = &ts->h[l];
	uint64_t m;

	relaxed_add(ts, &h->b[stats_hist_bucket(ns)], 1);
	relaxed_add(ts, &h->sum, ns);
	m = atomic_load_explicit(&h->max, memory_order_relaxed);
	while (ns > m && !atomic_compare_exchange_weak_explicit(&h->max, &m, ns,
			memory_order_relaxed, memory_order_relaxed))
		;
}

void ufp_hist_summary(const uint64_t *b, uint64_t max, uint64_t sum,
		      struct ufp_latency *out)
{
	uint64_t total = 0, acc = 0;
	const double q[3] = { 0.50, 0.99, 0.999 };
	uint64_t *dst[3] = { &out->p50, &out->p99, &out->p999 };
	unsigned qi = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < UFP_HIST_BUCKETS; i++)
		total += b[i];
	out->count = total;
	out->max = max;
	out->sum = sum;
	if (!total)
		return;
	for (unsigned i = 0; i < UFP_HIST_BUCKETS && qi < 3; i++) {
		acc += b[i];
		while (qi < 3 && (double)acc >= q[qi] * (double)total) {
			/* the bucket's upper edge, never above the true max */
			uint64_t hi = stats_hist_bucket_low(i + 1) - 1;

			*dst[qi++] = hi < max ? hi : max;
		}
	}
}

static void merge_block(struct ufp_tstats *ts, int64_t *c, uint64_t (*b)[UFP_HIST_BUCKETS],
			uint64_t *max, uint64_t *sum)
{
	for (unsigned i = 0; i < UFP_C_NR; i++)
		c[i] += atomic_load_explicit(&ts->c[i], memory_order_relaxed);
	for (unsigned l = 0; l < UFP_L_NR; l++) {
		uint64_t m = atomic_load_explicit(&ts->h[l].max, memory_order_relaxed);

		for (unsigned i = 0; i < UFP_HIST_BUCKETS; i++)
			b[l][i] += atomic_load_explicit(&ts->h[l].b[i], memory_order_relaxed);
		if (m > max[l])
			max[l] = m;
		sum[l] += atomic_load_explicit(&ts->h[l].sum, memory_order_relaxed);
	}
}

/* Merge every block into *out (a whole struct ufp_stats). The bucket
 * sums live in the pager, under stats_lock: no 12 KiB on the caller's
 * stack or in thread-local storage. */
void stats_merge(struct ufp_pager *p, struct ufp_stats *out)
{
	int64_t c[UFP_C_NR] = { 0 };
	uint64_t (*b)[UFP_HIST_BUCKETS] = p->stats.merge_buckets;
	uint64_t max[UFP_L_NR] = { 0 }, sum[UFP_L_NR] = { 0 };

	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	out->version = UFP_STATS_VERSION;
	ufp_mutex_lock(&p->stats.lock, LL_STATS);
	memset(p->stats.merge_buckets, 0, sizeof(p->stats.merge_buckets));
	for (struct ufp_tstats *ts = p->stats.blocks; ts; ts = ts->next)
		merge_block(ts, c, b, max, sum);
	merge_block(&p->stats.shared, c, b, max, sum);
	merge_block(&p->stats.exited, c, b, max, sum);
#define UFP_X_LAT(name, desc) \
	ufp_hist_summary(b[UFP_L_##name], max[UFP_L_##name], sum[UFP_L_##name], &out->name);
	UFP_STAT_LATENCIES(UFP_X_LAT)
#undef UFP_X_LAT
	ufp_mutex_unlock(&p->stats.lock, LL_STATS);
#define UFP_X_COPY(name, kind, desc) out->name = c[UFP_C_##name] < 0 ? 0 : (uint64_t)c[UFP_C_##name];
	UFP_STAT_COUNTERS(UFP_X_COPY)
#undef UFP_X_COPY
}

int64_t stats_counter_sum(struct ufp_pager *p, enum ufp_counter c)
{
	int64_t sum;

	ufp_mutex_lock(&p->stats.lock, LL_STATS);
	sum = atomic_load_explicit(&p->stats.shared.c[c], memory_order_relaxed) +
	      atomic_load_explicit(&p->stats.exited.c[c], memory_order_relaxed);
	for (struct ufp_tstats *ts = p->stats.blocks; ts; ts = ts->next)
		sum += atomic_load_explicit(&ts->c[c], memory_order_relaxed);
	ufp_mutex_unlock(&p->stats.lock, LL_STATS);
	return sum;
}

void stats_free_all(struct ufp_pager *p)
{
	struct ufp_tstats *ts, *next;

	for (ts = p->stats.blocks; ts; ts = next) {
		next = ts->next;
		slab_free(ts);
	}
	p->stats.blocks = NULL;
}

/* ======================================================================
 * Printers, generated from the field lists.
 * ====================================================================== */

void ufp_stats_print_text(FILE *f, const struct ufp_stats *s)
{
#define UFP_X_PRINT(name, kind, desc) \
	fprintf(f, "%-22s %14llu  %s\n", #name, (unsigned long long)s->name, desc);
	UFP_STAT_COUNTERS(UFP_X_PRINT)
#undef UFP_X_PRINT
#define UFP_X_PRINT(name, desc) \
	fprintf(f, "%-22s n=%llu p50=%lluns p99=%lluns p999=%lluns max=%lluns  %s\n", #name, \
		(unsigned long long)s->name.count, (unsigned long long)s->name.p50, \
		(unsigned long long)s->name.p99, (unsigned long long)s->name.p999, \
		(unsigned long long)s->name.max, desc);
	UFP_STAT_LATENCIES(UFP_X_PRINT)
#undef UFP_X_PRINT
}

void ufp_stats_print_json(FILE *f, const struct ufp_stats *s)
{
	const char *sep = "";

	fprintf(f, "{\"version\":%u,\"counters\":{", s->version);
#define UFP_X_JSON(name, kind, desc) \
	fprintf(f, "%s\"%s\":%llu", sep, #name, (unsigned long long)s->name); sep = ",";
	UFP_STAT_COUNTERS(UFP_X_JSON)
#undef UFP_X_JSON
	fprintf(f, "},\"latency_ns\":{");
	sep = "";
#define UFP_X_JSON(name, desc) \
	fprintf(f, "%s\"%s\":{\"count\":%llu,\"p50\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu,\"sum\":%llu}", \
		sep, #name, (unsigned long long)s->name.count, (unsigned long long)s->name.p50, \
		(unsigned long long)s->name.p99, (unsigned long long)s->name.p999, \
		(unsigned long long)s->name.max, (unsigned long long)s->name.sum); sep = ",";
	UFP_STAT_LATENCIES(UFP_X_JSON)
#undef UFP_X_JSON
	fprintf(f, "}}\n");
}
