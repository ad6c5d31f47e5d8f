/* SPDX-License-Identifier: MIT */
/*
 * test_swap_backend.c - the swap store on its own (no userfaultfd): round
 * trips through every tier with content checks, two threads with their
 * own contexts, swap full and recovery, slot reuse, hole punching, the
 * O_TMPFILE leaving nothing behind, checksum and I/O error injection
 * failing exactly the injected pages, loads from a signal handler.
 *
 * SWB_BENCH=1 runs a benchmark instead of the suite (store/load pages/s
 * for the file and the tier with 1 and 2 threads, one-page load latency).
 * Exits 77 (skip) when io_uring is unavailable.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "swap_backend.h"
#include "ufpager.h"

#define PG SWB_PAGE_SIZE

/* ---- helpers --------------------------------------------------------- */

static const char *test_dir(void)
{
	const char *d = getenv("SWB_TEST_DIR");

	return d ? d : "/var/tmp";
}

static struct swb *mk_swb(uint64_t file, uint64_t ztier, unsigned bufs, const char *dir)
{
	struct swb_params p = { .dir = dir ? dir : test_dir(), .file_size = file,
				.ztier_size = ztier, .ctx_bufs = bufs };
	struct swb *s = NULL;
	int r = swb_create(&p, &s);

	ck_assert_msg(r == 0, "swb_create: %d %s", r, ufp_last_error());
	return s;
}

static struct swb_ctx *mk_ctx(struct swb *s)
{
	struct swb_ctx *c = NULL;
	int r = swb_ctx_create(s, &c);

	ck_assert_msg(r == 0, "swb_ctx_create: %d %s", r, ufp_last_error());
	return c;
}

static uint64_t xs(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Incompressible. */
static void fill_random(void *page, uint64_t seed)
{
	uint64_t *w = page, x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (unsigned i = 0; i < PG / 8; i++)
		w[i] = xs(&x);
}

/* Compresses to well under 3/4 of a page; never same-filled. */
static void fill_text(void *page, uint64_t seed)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog ";
	char *p = page;
	uint64_t x = seed + 7;

	for (unsigned i = 0; i < PG; i++)
		p[i] = words[i % (sizeof(words) - 1)];
	for (unsigned i = 0; i < 16; i++)
		((uint64_t *)page)[xs(&x) % (PG / 8)] = xs(&x);
}

static void fill_word(void *page, uint64_t word)
{
	for (unsigned i = 0; i < PG / 8; i++)
		((uint64_t *)page)[i] = word;
}

static void *pages_alloc(unsigned n)
{
	void *p = NULL;

	ck_assert_int_eq(posix_memalign(&p, PG, (size_t)n * PG), 0);
	return p;
}

#define AT(base, i) ((char *)(base) + (size_t)(i) * PG)

static struct swb_usage usage(struct swb *s)
{
	struct swb_usage u;

	swb_usage(s, &u);
	return u;
}

/* Store n pages from src, load them into dst, compare. */
static void round_trip(struct swb_ctx *c, const void *src, unsigned n, void *const dst[],
		       uint64_t *h)
{
	const void *pages[SWB_MAX_BATCH];
	uint64_t failed = ~0ull;

	for (unsigned i = 0; i < n; i++)
		pages[i] = AT(src, i);
	ck_assert_int_eq(swb_store(c, pages, n, h), (int)n);
	for (unsigned i = 0; i < n; i++)
		ck_assert(h[i] != 0);
	ck_assert_int_eq(swb_load(c, h, n, dst, &failed), 0);
	ck_assert_uint_eq(failed, 0);
	for (unsigned i = 0; i < n; i++)
		ck_assert_msg(memcmp(dst[i], AT(src, i), PG) == 0, "page %u differs", i);
}

/* ---- tiers ----------------------------------------------------------- */

START_TEST(same_filled_pages_round_trip_without_io)
{
	static const uint64_t words[] = { 0, ~0ull, 1, 0x0101010101010101ull,
					  0xa5a5a5a5a5a5a5a5ull, 0x8000000000000001ull,
					  0x7fffffffffffffffull, 0x1000000000000000ull };
	enum { N = sizeof(words) / sizeof(words[0]) };
	struct swb *s = mk_swb(1 << 20, 1 << 20, 0, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N), *out = pages_alloc(N);
	void *dst[N];
	uint64_t h[N];

	for (unsigned i = 0; i < N; i++) {
		fill_word(AT(src, i), words[i]);
		dst[i] = AT(out, i);
	}
	round_trip(c, src, N, dst, h);
	for (unsigned i = 0; i < N; i++)
		ck_assert_msg(swb_handle_is_same(h[i]), "word %u", i);
	struct swb_usage u = usage(s);
	ck_assert_uint_eq(u.stores_same, N);
	ck_assert_uint_eq(u.loads_same, N);
	ck_assert_uint_eq(u.same_filled, N);
	ck_assert_uint_eq(u.bytes_written + u.bytes_read, 0);
	ck_assert_uint_eq(u.file_slots_used + u.ztier_entries, 0);
	for (unsigned i = 0; i < N; i++)
		swb_release(s, h[i]);
	ck_assert_uint_eq(usage(s).same_filled, 0);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
	free(out);
}
END_TEST

START_TEST(compressible_pages_round_trip_through_the_tier)
{
	enum { N = 32 };
	struct swb *s = mk_swb(1 << 20, 4 << 20, 0, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N), *out = pages_alloc(N);
	void *dst[N];
	uint64_t h[N];

	for (unsigned i = 0; i < N; i++) {
		fill_text(AT(src, i), i);
		/* half into registered pages, half into ordinary memory */
		dst[i] = i % 2 ? swb_ctx_buf(c, i) : AT(out, i);
	}
	round_trip(c, src, N, dst, h);
	for (unsigned i = 0; i < N; i++)
		ck_assert(swb_handle_is_ztier(h[i]));
	struct swb_usage u = usage(s);
	ck_assert_uint_eq(u.stores_ztier, N);
	ck_assert_uint_eq(u.loads_ztier, N);
	ck_assert_uint_eq(u.ztier_entries, N);
	ck_assert(u.ztier_bytes_used > 0 && u.ztier_bytes_used <= u.ztier_bytes_cap);
	ck_assert_uint_eq(u.ztier_raw_bytes, (uint64_t)N * PG);
	ck_assert_uint_eq(u.bytes_written + u.file_slots_used, 0);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
	free(out);
}
END_TEST

START_TEST(random_pages_round_trip_through_the_file)
{
	enum { N = 32 };
	struct swb *s = mk_swb(1 << 20, 4 << 20, 0, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N), *out = pages_alloc(N);
	void *dst[N];
	uint64_t h[N];

	for (unsigned i = 0; i < N; i++) {
		fill_random(AT(src, i), i);
		/* registered pages in reverse order (no copy), and heap pages
		 * (read through a bounce page that is not a destination) */
		dst[i] = i < N / 2 ? swb_ctx_buf(c, N - 1 - i) : AT(out, i);
	}
	round_trip(c, src, N, dst, h);
	for (unsigned i = 0; i < N; i++)
		ck_assert(swb_handle_is_file(h[i]));
	struct swb_usage u = usage(s);
	ck_assert_uint_eq(u.stores_file, N);
	ck_assert_uint_eq(u.loads_file, N);
	ck_assert_uint_eq(u.file_slots_used, N);
	ck_assert_uint_eq(u.bytes_written, (uint64_t)N * PG);
	ck_assert_uint_eq(u.bytes_read, (uint64_t)N * PG);
	ck_assert_uint_eq(u.ztier_entries, 0);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
	free(out);
}
END_TEST

START_TEST(mixed_batch_stored_from_registered_pages_round_trips)
{
	enum { N = 48 };
	struct swb *s = mk_swb(1 << 20, 4 << 20, 64, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N), *out = pages_alloc(N);
	const void *pages[N];
	void *dst[N];
	uint64_t h[N], failed;

	for (unsigned i = 0; i < N; i++) {
		if (i % 3 == 0)
			fill_random(AT(src, i), i + 100);
		else if (i % 3 == 1)
			fill_text(AT(src, i), i);
		else
			fill_word(AT(src, i), i * 0x0102030405060708ull);
	}
	/* the pages to store sit in registered pages, shuffled: stores must
	 * not overwrite a source with another page's bounce copy */
	for (unsigned i = 0; i < N; i++) {
		unsigned k = (i * 17 + 5) % 64;

		memcpy(swb_ctx_buf(c, k), AT(src, i), PG);
		pages[i] = swb_ctx_buf(c, k);
	}
	ck_assert_int_eq(swb_store(c, pages, N, h), N);
	for (unsigned i = 0; i < N; i++) {
		ck_assert(i % 3 != 0 || swb_handle_is_file(h[i]));
		ck_assert(i % 3 != 1 || swb_handle_is_ztier(h[i]));
		ck_assert(i % 3 != 2 || swb_handle_is_same(h[i]));
		dst[i] = i % 2 ? swb_ctx_buf(c, (i * 7) % 64) : AT(out, i);
	}
	ck_assert_int_eq(swb_load(c, h, N, dst, &failed), 0);
	for (unsigned i = 0; i < N; i++)
		ck_assert_msg(memcmp(dst[i], AT(src, i), PG) == 0, "page %u", i);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
	free(out);
}
END_TEST

START_TEST(compressible_pages_go_to_the_file_without_tier_room)
{
	/* no tier, then a tier smaller than one slab */
	for (int t = 0; t < 2; t++) {
		enum { N = 8 };
		struct swb *s = mk_swb(1 << 20, t ? 4096 : 0, 0, NULL);
		struct swb_ctx *c = mk_ctx(s);
		char *src = pages_alloc(N), *out = pages_alloc(N);
		void *dst[N];
		uint64_t h[N];

		for (unsigned i = 0; i < N; i++) {
			fill_text(AT(src, i), i);
			dst[i] = AT(out, i);
		}
		round_trip(c, src, N, dst, h);
		for (unsigned i = 0; i < N; i++)
			ck_assert(swb_handle_is_file(h[i]));
		swb_ctx_destroy(c);
		swb_destroy(s);
		free(src);
		free(out);
	}
}
END_TEST

START_TEST(released_tier_memory_is_freed_by_maintain)
{
	enum { N = 32 };
	struct swb *s = mk_swb(1 << 20, 4 << 20, 0, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N);
	const void *pages[N];
	uint64_t h[N];

	for (unsigned i = 0; i < N; i++) {
		fill_text(AT(src, i), i);
		pages[i] = AT(src, i);
	}
	ck_assert_int_eq(swb_store(c, pages, N, h), N);
	ck_assert(usage(s).ztier_bytes_used > 0);
	for (unsigned i = 0; i < N; i++)
		swb_release(s, h[i]);
	ck_assert_uint_eq(usage(s).ztier_entries, N);     /* deferred */
	ck_assert_int_eq(swb_maintain(s), 0);
	ck_assert_uint_eq(usage(s).ztier_entries, 0);
	ck_assert_uint_eq(usage(s).ztier_bytes_used, 0);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
}
END_TEST

START_TEST(tier_full_sends_pages_to_the_file)
{
	enum { N = 32 };
	struct swb *s = mk_swb(4 << 20, 32768, 0, NULL);  /* one slab */
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N);
	const void *pages[N];
	uint64_t h[N];
	unsigned nz = 0, nf = 0, rounds = 0;

	while (nf == 0 && rounds++ < 64) {
		for (unsigned i = 0; i < N; i++) {
			fill_text(AT(src, i), i + rounds * N);
			pages[i] = AT(src, i);
		}
		ck_assert_int_eq(swb_store(c, pages, N, h), N);
		for (unsigned i = 0; i < N; i++) {
			nz += swb_handle_is_ztier(h[i]);
			nf += swb_handle_is_file(h[i]);
		}
	}
	ck_assert(nz > 0 && nf > 0);
	ck_assert(usage(s).ztier_bytes_used <= 32768);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
}
END_TEST

/* ---- two threads ----------------------------------------------------- */

struct worker {
	struct swb *s;
	unsigned id, iters;
	pthread_barrier_t *bar;
	int bad;
};

static void *worker_main(void *arg)
{
	enum { N = 16, KEEP = 8 };
	struct worker *w = arg;
	struct swb_ctx *c = NULL;
	char *src = malloc((size_t)N * KEEP * PG), *out = aligned_alloc(PG, (size_t)N * PG);
	uint64_t h[KEEP][N];
	const void *pages[N];
	void *dst[N];

	if (!src || !out || swb_ctx_create(w->s, &c)) {
		w->bad = -1;
		pthread_barrier_wait(w->bar);
		return NULL;
	}
	memset(h, 0, sizeof(h));
	pthread_barrier_wait(w->bar);
	for (unsigned it = 0; it < w->iters && !w->bad; it++) {
		unsigned b = it % KEEP;
		char *bs = src + (size_t)b * N * PG;
		uint64_t failed;

		/* verify and release the batch stored KEEP iterations ago */
		if (h[b][0]) {
			for (unsigned i = 0; i < N; i++)
				dst[i] = i % 2 ? swb_ctx_buf(c, i) : AT(out, i);
			if (swb_load(c, h[b], N, dst, &failed)) {
				w->bad = 1;
				break;
			}
			for (unsigned i = 0; i < N; i++) {
				if (memcmp(dst[i], AT(bs, i), PG))
					w->bad = 2;
				swb_release(w->s, h[b][i]);
			}
		}
		for (unsigned i = 0; i < N; i++) {
			uint64_t seed = ((uint64_t)w->id << 40) | ((uint64_t)it << 8) | i;

			if (i % 4 == 0)
				fill_text(AT(bs, i), seed);
			else if (i % 8 == 1)
				fill_word(AT(bs, i), seed);
			else
				fill_random(AT(bs, i), seed);
			pages[i] = AT(bs, i);
		}
		if (swb_store(c, pages, N, h[b]) != N)
			w->bad = 3;
		if (w->id == 0 && it % 16 == 0)
			swb_maintain(w->s);
	}
	for (unsigned b = 0; b < KEEP; b++)
		for (unsigned i = 0; i < N; i++)
			swb_release(w->s, h[b][i]);
	swb_ctx_destroy(c);
	free(src);
	free(out);
	return NULL;
}

START_TEST(two_threads_with_own_contexts_store_load_release_concurrently)
{
	/* a small file (16 clusters) and tier, so clusters and tier memory
	 * are recycled while the other thread runs */
	struct swb *s = mk_swb(4 << 20, 1 << 20, 0, NULL);
	struct worker w[2];
	pthread_barrier_t bar;
	pthread_t t[2];

	pthread_barrier_init(&bar, NULL, 2);
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct worker){ .s = s, .id = i, .iters = 1500, .bar = &bar };
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (unsigned i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(w[i].bad == 0, "worker %u: %d", i, w[i].bad);
	}
	ck_assert_int_eq(swb_maintain(s), 0);
	struct swb_usage u = usage(s);
	ck_assert_uint_eq(u.file_slots_used, 0);
	ck_assert_uint_eq(u.ztier_entries, 0);
	ck_assert_uint_eq(u.same_filled, 0);
	ck_assert(u.punched_clusters > 0);
	ck_assert(u.stores_file > 0 && u.stores_ztier > 0 && u.stores_same > 0);
	pthread_barrier_destroy(&bar);
	swb_destroy(s);
}
END_TEST

/* ---- swap full, reuse, punching, no trace ---------------------------- */

START_TEST(store_reports_enospc_when_full_and_recovers_after_release)
{
	enum { SLOTS = 256, B = 32 };
	struct swb *s = mk_swb(SLOTS * PG, 0, B, NULL);     /* 4 clusters, no tier */
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(SLOTS + B), *out = pages_alloc(B);
	uint64_t h[SLOTS + B], failed;
	const void *pages[B];
	void *dst[B];
	unsigned stored = 0;
	int r;

	for (unsigned i = 0; i < SLOTS + B; i++)
		fill_random(AT(src, i), i);
	/* 7 full batches and a half one: 240 slots */
	for (unsigned b = 0; b < 8; b++) {
		unsigned n = b < 7 ? B : B / 2;

		for (unsigned i = 0; i < n; i++)
			pages[i] = AT(src, stored + i);
		ck_assert_int_eq(swb_store(c, pages, n, h + stored), n);
		stored += n;
	}
	/* 16 slots left for 32 pages: a prefix is stored, the rest is 0 */
	for (unsigned i = 0; i < B; i++)
		pages[i] = AT(src, stored + i);
	r = swb_store(c, pages, B, h + stored);
	ck_assert_int_eq(r, SLOTS - stored);
	for (unsigned i = (unsigned)r; i < B; i++)
		ck_assert_uint_eq(h[stored + i], 0);
	stored += (unsigned)r;
	ck_assert_uint_eq(usage(s).file_slots_used, SLOTS);
	r = swb_store(c, pages, 1, h + stored);
	ck_assert_int_eq(r, -ENOSPC);
	/* release 40 scattered pages: the next 32 fit in the holes */
	for (unsigned i = 0; i < 40; i++) {
		swb_release(s, h[i * 6]);
		h[i * 6] = 0;
	}
	for (unsigned i = 0; i < B; i++)
		pages[i] = AT(src, SLOTS + i);
	ck_assert_int_eq(swb_store(c, pages, B, h + SLOTS), B);
	/* everything still stored reads back */
	for (unsigned i = 0; i < SLOTS + B; i += B) {
		uint64_t hh[B];
		unsigned n = 0;

		for (unsigned k = i; k < i + B; k++)
			if (h[k]) {
				hh[n] = h[k];
				dst[n] = AT(out, n);
				n++;
			}
		ck_assert_int_eq(swb_load(c, hh, n, dst, &failed), 0);
		n = 0;
		for (unsigned k = i; k < i + B; k++)
			if (h[k])
				ck_assert_msg(memcmp(dst[n++], AT(src, k), PG) == 0, "page %u", k);
	}
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
	free(out);
}
END_TEST

START_TEST(released_slots_are_reused)
{
	enum { N = 64 };
	struct swb *s = mk_swb(N * PG, 0, N, NULL);          /* one cluster */
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N);
	const void *pages[N];
	uint64_t h[N], h2[N], seen = 0, seen2 = 0;

	for (unsigned i = 0; i < N; i++) {
		fill_random(AT(src, i), i);
		pages[i] = AT(src, i);
	}
	ck_assert_int_eq(swb_store(c, pages, N, h), N);
	ck_assert_int_eq(swb_store(c, pages, 1, h2), -ENOSPC);
	for (unsigned i = 0; i < N; i++) {
		seen |= 1ull << (h[i] & 63);
		swb_release(s, h[i]);
	}
	ck_assert_uint_eq(usage(s).file_slots_used, 0);
	ck_assert_int_eq(swb_store(c, pages, N, h2), N);  /* reaps, then reuses */
	for (unsigned i = 0; i < N; i++)
		seen2 |= 1ull << (h2[i] & 63);
	ck_assert_uint_eq(seen, ~0ull);
	ck_assert_uint_eq(seen2, ~0ull);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
}
END_TEST

START_TEST(punching_emptied_clusters_reduces_st_blocks)
{
	enum { N = 32, CLUSTERS = 4 };
	struct swb *s = mk_swb(16 << 20, 0, N, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N);
	uint64_t h[CLUSTERS * 64];
	const void *pages[N];
	struct stat st0, st1, st2;

	ck_assert_int_eq(fstat(swb_fd(s), &st0), 0);
	for (unsigned i = 0; i < N; i++) {
		fill_random(AT(src, i), i);
		pages[i] = AT(src, i);
	}
	for (unsigned b = 0; b < CLUSTERS * 64 / N; b++)
		ck_assert_int_eq(swb_store(c, pages, N, h + b * N), N);
	ck_assert_int_eq(fstat(swb_fd(s), &st1), 0);
	ck_assert_msg(st1.st_blocks >= st0.st_blocks + CLUSTERS * 64 * 8,
		      "blocks %ld -> %ld", (long)st0.st_blocks, (long)st1.st_blocks);
	for (unsigned i = 0; i < CLUSTERS * 64; i++)
		swb_release(s, h[i]);
	ck_assert_int_eq(swb_maintain(s), 0);
	ck_assert_int_eq(fstat(swb_fd(s), &st2), 0);
	ck_assert_uint_eq(usage(s).punched_clusters, CLUSTERS);
	/* 512-byte blocks: a cluster is 512 of them */
	ck_assert_msg(st1.st_blocks - st2.st_blocks >= CLUSTERS * 512,
		      "blocks %ld -> %ld", (long)st1.st_blocks, (long)st2.st_blocks);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
}
END_TEST

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

START_TEST(tmpfile_leaves_no_directory_entry)
{
	char dir[] = "/var/tmp/swbtest.XXXXXX";
	char *src = pages_alloc(8);
	const void *pages[8];
	uint64_t h[8];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(count_entries(dir), 0);
	struct swb *s = mk_swb(1 << 20, 0, 8, dir);
	struct swb_ctx *c = mk_ctx(s);

	for (unsigned i = 0; i < 8; i++) {
		fill_random(AT(src, i), i);
		pages[i] = AT(src, i);
	}
	ck_assert_int_eq(swb_store(c, pages, 8, h), 8);
	ck_assert_int_eq(count_entries(dir), 0);      /* in use, still invisible */
	swb_ctx_destroy(c);
	swb_destroy(s);
	ck_assert_int_eq(count_entries(dir), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	free(src);
}
END_TEST

START_TEST(swap_file_on_tmpfs_works_direct_or_buffered)
{
	enum { N = 16 };
	struct swb_params p = { .dir = "/dev/shm", .file_size = 1 << 20 };
	struct swb *s = NULL;
	int r = swb_create(&p, &s);

	if (r == -EOPNOTSUPP || r == -ENOENT) {
		fprintf(stderr, "skip tmpfs check: %s\n", ufp_last_error());
		return;
	}
	ck_assert_msg(r == 0, "%d %s", r, ufp_last_error());
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N), *out = pages_alloc(N);
	void *dst[N];
	uint64_t h[N];

	for (unsigned i = 0; i < N; i++) {
		fill_random(AT(src, i), i);
		dst[i] = AT(out, i);
	}
	round_trip(c, src, N, dst, h);
	fprintf(stderr, "tmpfs swap file: %s\n", usage(s).file_direct ? "O_DIRECT" : "buffered");
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
	free(out);
}
END_TEST

START_TEST(missing_directory_fails_with_a_reason)
{
	struct swb_params p = { .dir = "/nonexistent/swb" };
	struct swb *s = NULL;

	ck_assert_int_eq(swb_create(&p, &s), -ENOENT);
	ck_assert(strstr(ufp_last_error(), "/nonexistent/swb") != NULL);
}
END_TEST

/* In a child: io_uring_setup fails with EPERM, as under a container's
 * seccomp profile. Exit 0 when swb_ctx_create says so plainly. */
static int ctx_create_under_seccomp(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	struct swb_params p = { .dir = test_dir(), .file_size = 1 << 20 };
	struct swb *s;
	struct swb_ctx *c;
	int r;

	if (swb_create(&p, &s))
		return 2;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 3;
	r = swb_ctx_create(s, &c);
	fprintf(stderr, "under seccomp: %d: %s\n", r, ufp_last_error());
	if (r != -EPERM || !strstr(ufp_last_error(), "io_uring_disabled"))
		return 4;
	swb_destroy(s);
	return 0;
}

START_TEST(io_uring_blocked_fails_ctx_create_with_a_reason)
{
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(ctx_create_under_seccomp());
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}
END_TEST

/* One SQE on the context's ring; its completion's result. */
static int ring_try(struct io_uring *ring, struct io_uring_sqe *sqe)
{
	struct io_uring_cqe *cqe;
	int res;

	(void)sqe;
	ck_assert_int_eq(io_uring_submit(ring), 1);
	ck_assert_int_eq(io_uring_wait_cqe(ring, &cqe), 0);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

START_TEST(rings_refuse_what_swap_io_does_not_use)
{
	struct swb *s = mk_swb(1 << 20, 0, 0, NULL);
	struct swb_ctx *c = mk_ctx(s);
	struct io_uring *ring = swb_ctx_ring(c);
	char *b0 = swb_ctx_buf(c, 0), *src = pages_alloc(1);
	struct iovec iov = { b0, PG };
	struct io_uring_sqe *sqe;
	uint64_t h, failed = 0;
	void *dst[1] = { b0 };
	const void *pages[1] = { src };

	/* opcodes other than READ_FIXED / WRITE_FIXED */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_FIXED_FILE;
	ck_assert_int_eq(ring_try(ring, sqe), -EACCES);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_read(sqe, 0, b0, PG, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	ck_assert_int_eq(ring_try(ring, sqe), -EACCES);
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY, 0);
	ck_assert_int_eq(ring_try(ring, sqe), -EACCES);
	/* an allowed opcode on a plain fd (not the registered file) */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_read_fixed(sqe, swb_fd(s), b0, PG, 0, 0);
	ck_assert_int_eq(ring_try(ring, sqe), -EACCES);
	/* other flags than IOSQE_FIXED_FILE */
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_read_fixed(sqe, 0, b0, PG, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_DRAIN;
	ck_assert_int_eq(ring_try(ring, sqe), -EACCES);
	/* no register operation after the ring is enabled */
	ck_assert_int_eq(io_uring_unregister_files(ring), -EACCES);
	ck_assert_int_eq(io_uring_register_buffers(ring, &iov, 1), -EACCES);
	/* what the backend does still works: a file round trip */
	fill_random(src, 42);
	ck_assert_int_eq(swb_store(c, pages, 1, &h), 1);
	ck_assert(swb_handle_is_file(h));
	ck_assert_int_eq(swb_load(c, &h, 1, dst, &failed), 0);
	ck_assert_int_eq(memcmp(b0, src, PG), 0);
	swb_release(s, h);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
}
END_TEST

START_TEST(bad_arguments_and_handles_are_refused)
{
	struct swb *s = mk_swb(1 << 20, 0, 8, NULL);
	struct swb_ctx *c = mk_ctx(s);
	const void *pages[9] = { 0 };
	uint64_t h[9] = { 0, 1, SWB_TIER_FILE << SWB_TIER_SHIFT | 123456789 }, failed;
	void *dst[3] = { swb_ctx_buf(c, 0), swb_ctx_buf(c, 1), swb_ctx_buf(c, 2) };

	ck_assert_int_eq(swb_store(c, pages, 9, h + 3), -EINVAL);
	ck_assert_int_eq(swb_load(c, h, 9, dst, &failed), -EINVAL);
	ck_assert_int_eq(swb_load(c, h, 3, dst, &failed), -EINVAL);
	ck_assert_uint_eq(failed, 7);
	swb_release(s, 0);                          /* ignored */
	swb_release(s, h[2]);                       /* out of range: ignored */
	ck_assert_int_eq(swb_inject(s, 0, SWB_INJECT_EIO), -EINVAL);
	swb_ctx_destroy(c);
	swb_destroy(s);
}
END_TEST

START_TEST(double_release_is_ignored)
{
	struct swb *s = mk_swb(1 << 20, 1 << 20, 0, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(2);
	const void *pages[2] = { src, AT(src, 1) };
	uint64_t h[2];

	fill_random(src, 1);
	fill_text(AT(src, 1), 2);
	ck_assert_int_eq(swb_store(c, pages, 2, h), 2);
	for (int k = 0; k < 2; k++) {
		swb_release(s, h[0]);
		swb_release(s, h[1]);
	}
	ck_assert_int_eq(swb_maintain(s), 0);
	ck_assert_uint_eq(usage(s).file_slots_used, 0);
	ck_assert_uint_eq(usage(s).ztier_entries, 0);
	ck_assert_int_eq(swb_store(c, pages, 2, h), 2);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
}
END_TEST

/* ---- injected errors ------------------------------------------------- */

static void injected_errors_fail_only_their_pages(bool tier)
{
	enum { N = 8 };
	struct swb *s = mk_swb(1 << 20, tier ? 1 << 20 : 0, 0, NULL);
	struct swb_ctx *c = mk_ctx(s);
	char *src = pages_alloc(N), *out = pages_alloc(N);
	const void *pages[N];
	void *dst[N];
	uint64_t h[N], failed = 0;

	for (unsigned i = 0; i < N; i++) {
		if (tier)
			fill_text(AT(src, i), i);
		else
			fill_random(AT(src, i), i);
		pages[i] = AT(src, i);
		dst[i] = i % 2 ? AT(out, i) : swb_ctx_buf(c, i);
	}
	ck_assert_int_eq(swb_store(c, pages, N, h), N);
	for (unsigned i = 0; i < N; i++)
		ck_assert(tier ? swb_handle_is_ztier(h[i]) : swb_handle_is_file(h[i]));
	ck_assert_int_eq(swb_inject(s, h[2], SWB_INJECT_CORRUPT), 0);
	ck_assert_int_eq(swb_inject(s, h[5], SWB_INJECT_EIO), 0);
	ck_assert_int_eq(swb_load(c, h, N, dst, &failed), -EIO);
	ck_assert_uint_eq(failed, (1u << 2) | (1u << 5));
	for (unsigned i = 0; i < N; i++)
		if (i != 2 && i != 5)
			ck_assert_msg(memcmp(dst[i], AT(src, i), PG) == 0, "page %u", i);
	struct swb_usage u = usage(s);
	ck_assert_uint_eq(u.csum_errors, 1);
	ck_assert_uint_eq(u.io_errors, 1);
	/* EIO was for one load; the corruption stays */
	ck_assert_int_eq(swb_load(c, h, N, dst, &failed), -EBADMSG);
	ck_assert_uint_eq(failed, 1u << 2);
	ck_assert_int_eq(memcmp(dst[5], AT(src, 5), PG), 0);
	swb_ctx_destroy(c);
	swb_destroy(s);
	free(src);
	free(out);
}

START_TEST(file_corruption_and_eio_fail_exactly_the_injected_pages)
{
	injected_errors_fail_only_their_pages(false);
}
END_TEST

START_TEST(tier_corruption_and_eio_fail_exactly_the_injected_pages)
{
	injected_errors_fail_only_their_pages(true);
}
END_TEST

/* ---- signal handler -------------------------------------------------- */

enum { SIG_N = 12 };
static struct swb_ctx *sig_ctx;
static uint64_t sig_h[SIG_N];
static char *sig_src;
static volatile sig_atomic_t sig_ret = 1, sig_ok, sig_ran;

static void load_handler(int sig)
{
	void *dst[SIG_N];
	uint64_t failed = ~0ull;
	int ok = 1;

	(void)sig;
	for (unsigned i = 0; i < SIG_N; i++)
		dst[i] = swb_ctx_buf(sig_ctx, SIG_N - 1 - i);
	sig_ret = swb_load(sig_ctx, sig_h, SIG_N, dst, &failed);
	for (unsigned i = 0; i < SIG_N; i++)
		if (memcmp(dst[i], AT(sig_src, i), PG))
			ok = 0;
	sig_ok = ok && failed == 0;
	sig_ran = 1;
}

START_TEST(load_works_inside_a_signal_handler)
{
	struct swb *s = mk_swb(1 << 20, 1 << 20, 16, NULL);
	struct sigaction sa = { .sa_handler = load_handler };
	const void *pages[SIG_N];

	sig_ctx = mk_ctx(s);
	sig_src = pages_alloc(SIG_N);
	for (unsigned i = 0; i < SIG_N; i++) {
		if (i % 3 == 0)
			fill_random(AT(sig_src, i), i);
		else if (i % 3 == 1)
			fill_text(AT(sig_src, i), i);
		else
			fill_word(AT(sig_src, i), i);
		pages[i] = AT(sig_src, i);
	}
	ck_assert_int_eq(swb_store(sig_ctx, pages, SIG_N, sig_h), SIG_N);
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	raise(SIGUSR1);
	ck_assert(sig_ran);
	ck_assert_int_eq(sig_ret, 0);
	ck_assert(sig_ok);
	signal(SIGUSR1, SIG_DFL);
	swb_ctx_destroy(sig_ctx);
	swb_destroy(s);
	free(sig_src);
}
END_TEST

/* ---- benchmark (SWB_BENCH=1) ----------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct bench {
	struct swb *s;
	bool text;
	unsigned pages;
	uint64_t *h;
	pthread_barrier_t *bar;
	uint64_t store_ns, load_ns;
	int err;
};

static void *bench_main(void *arg)
{
	enum { B = 32 };
	struct bench *b = arg;
	struct swb_ctx *c;
	char *src = aligned_alloc(PG, (size_t)B * PG);
	const void *pages[B];
	void *dst[B];
	uint64_t t0, failed;

	if (swb_ctx_create(b->s, &c)) {
		b->err = -1;
		return NULL;
	}
	for (unsigned i = 0; i < B; i++) {
		if (b->text)
			fill_text(AT(src, i), i);
		else
			fill_random(AT(src, i), i);
		pages[i] = AT(src, i);
		dst[i] = swb_ctx_buf(c, i);
	}
	pthread_barrier_wait(b->bar);
	t0 = now_ns();
	for (unsigned i = 0; i < b->pages; i += B) {
		((uint64_t *)pages[0])[3] = i;      /* vary content a little */
		if (swb_store(c, pages, B, b->h + i) != B)
			b->err = 1;
	}
	b->store_ns = now_ns() - t0;
	pthread_barrier_wait(b->bar);
	t0 = now_ns();
	for (unsigned i = 0; i < b->pages; i += B)
		if (swb_load(c, b->h + i, B, dst, &failed))
			b->err = 2;
	b->load_ns = now_ns() - t0;
	swb_ctx_destroy(c);
	free(src);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void bench_latency(struct swb *s, const uint64_t *h, unsigned n, const char *what)
{
	enum { SAMPLES = 5000 };
	static uint64_t lat[SAMPLES];
	struct swb_ctx *c;
	uint64_t x = 12345, failed;
	void *dst;

	if (swb_ctx_create(s, &c))
		return;
	dst = swb_ctx_buf(c, 0);
	for (unsigned k = 0; k < SAMPLES; k++) {
		uint64_t hh = h[xs(&x) % n], t0 = now_ns();

		swb_load(c, &hh, 1, &dst, &failed);
		lat[k] = now_ns() - t0;
	}
	qsort(lat, SAMPLES, sizeof(lat[0]), cmp_u64);
	printf("%-5s load latency 1 page: p50 %6.1f us  p99 %6.1f us\n", what,
	       lat[SAMPLES / 2] / 1e3, lat[SAMPLES * 99 / 100] / 1e3);
	swb_ctx_destroy(c);
}

static int run_bench(void)
{
	const char *pe = getenv("SWB_BENCH_PAGES");
	unsigned per = pe ? (unsigned)strtoul(pe, NULL, 0) : 32768;

	per = (per + 31) / 32 * 32;
	printf("swap backend benchmark: %u pages per thread, batches of 32, dir %s\n", per,
	       test_dir());
	for (int tier = 0; tier < 2; tier++) {
		for (unsigned nt = 1; nt <= 2; nt++) {
			struct swb_params p = {
				.dir = test_dir(), .file_size = (uint64_t)per * nt * PG * 2,
				.ztier_size = tier ? (uint64_t)per * nt * PG : 0,
			};
			struct swb *s;
			struct bench b[2];
			pthread_barrier_t bar;
			pthread_t t[2];
			uint64_t smax = 0, lmax = 0;

			if (swb_create(&p, &s)) {
				printf("create: %s\n", ufp_last_error());
				return 1;
			}
			pthread_barrier_init(&bar, NULL, nt);
			for (unsigned i = 0; i < nt; i++) {
				b[i] = (struct bench){ .s = s, .text = tier, .pages = per, .bar = &bar,
						       .h = calloc(per, sizeof(uint64_t)) };
				pthread_create(&t[i], NULL, bench_main, &b[i]);
			}
			for (unsigned i = 0; i < nt; i++) {
				pthread_join(t[i], NULL);
				if (b[i].err)
					printf("thread %u error %d\n", i, b[i].err);
				smax = b[i].store_ns > smax ? b[i].store_ns : smax;
				lmax = b[i].load_ns > lmax ? b[i].load_ns : lmax;
			}
			struct swb_usage u;
			swb_usage(s, &u);
			printf("%-5s %u thread%s: store %9.0f pages/s  load %9.0f pages/s  "
			       "(file %llu, tier %llu, direct %llu)\n", tier ? "tier" : "file", nt,
			       nt > 1 ? "s" : " ", (double)per * nt * 1e9 / (double)smax,
			       (double)per * nt * 1e9 / (double)lmax,
			       (unsigned long long)u.stores_file, (unsigned long long)u.stores_ztier,
			       (unsigned long long)u.file_direct);
			if (nt == 1)
				bench_latency(s, b[0].h, per, tier ? "tier" : "file");
			for (unsigned i = 0; i < nt; i++)
				free(b[i].h);
			pthread_barrier_destroy(&bar);
			swb_destroy(s);
		}
	}
	return 0;
}

/* ---- suite ----------------------------------------------------------- */

static Suite *swap_backend_suite(void)
{
	Suite *s = suite_create("swap_backend");
	TCase *t = tcase_create("core");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, same_filled_pages_round_trip_without_io);
	tcase_add_test(t, compressible_pages_round_trip_through_the_tier);
	tcase_add_test(t, random_pages_round_trip_through_the_file);
	tcase_add_test(t, mixed_batch_stored_from_registered_pages_round_trips);
	tcase_add_test(t, compressible_pages_go_to_the_file_without_tier_room);
	tcase_add_test(t, released_tier_memory_is_freed_by_maintain);
	tcase_add_test(t, tier_full_sends_pages_to_the_file);
	tcase_add_test(t, two_threads_with_own_contexts_store_load_release_concurrently);
	tcase_add_test(t, store_reports_enospc_when_full_and_recovers_after_release);
	tcase_add_test(t, released_slots_are_reused);
	tcase_add_test(t, punching_emptied_clusters_reduces_st_blocks);
	tcase_add_test(t, tmpfile_leaves_no_directory_entry);
	tcase_add_test(t, swap_file_on_tmpfs_works_direct_or_buffered);
	tcase_add_test(t, missing_directory_fails_with_a_reason);
	tcase_add_test(t, io_uring_blocked_fails_ctx_create_with_a_reason);
	tcase_add_test(t, rings_refuse_what_swap_io_does_not_use);
	tcase_add_test(t, bad_arguments_and_handles_are_refused);
	tcase_add_test(t, double_release_is_ignored);
	tcase_add_test(t, file_corruption_and_eio_fail_exactly_the_injected_pages);
	tcase_add_test(t, tier_corruption_and_eio_fail_exactly_the_injected_pages);
	tcase_add_test(t, load_works_inside_a_signal_handler);
	suite_add_tcase(s, t);
	return s;
}

/* Skip (77) when this machine cannot run the backend at all. */
static int probe(void)
{
	struct swb_params p = { .dir = test_dir(), .file_size = 1 << 20 };
	struct swb *s;
	struct swb_ctx *c;
	int r = swb_create(&p, &s);

	if (r) {
		printf("skip: swap file in %s: %s\n", test_dir(), ufp_last_error());
		return 77;
	}
	r = swb_ctx_create(s, &c);
	if (r) {
		printf("skip: %s\n", ufp_last_error());
		swb_destroy(s);
		return 77;
	}
	swb_ctx_destroy(c);
	swb_destroy(s);
	return 0;
}

int main(void)
{
	SRunner *sr;
	int nfail, r = probe();

	if (r)
		return r;
	if (getenv("SWB_BENCH"))
		return run_bench();
	sr = srunner_create(swap_backend_suite());
	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail ? 1 : 0;
}
