/* SPDX-License-Identifier: MIT */
/*
 * swap_backend.c - the swap store's interface (see swap_backend.h for the
 * tiers and the handle layout): creation and teardown, contexts, handle
 * encoding, and the dispatch of each page to its tier on store, load and
 * release; checksums and per-context counters. The parts it calls, none
 * of which calls back (layers in swap_internal.h):
 *   swap_same.c   same-filled pages          same_*
 *   swap_ztier.c  the lz4 tier               ztier_*
 *   swap_slots.c  the file's slot allocator  slots_*
 *   swap_file.c   the file and its rings     swfile_*
 *   swap_nbd.c    or an NBD export           swnbd_*
 * Failures of create and ctx_create leave their detail in ufp_last_error().
 *
 * Concurrency contract: swb_load and swb_release are async-signal-safe
 * (atomics, io_uring_enter, lz4 decompression, xxh3); swb_release is
 * lock-free. Everything that allocates or takes a mutex runs in normal
 * context: create/destroy, ctx create/destroy, store, maintain, usage.
 */
#include <errno.h>
#include <limits.h>
#include <sys/statvfs.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "swap_internal.h"
#include "vma_locks.h"
#include "base.h"
#include "inject.h"

/* ======================================================================
 * Handles (layout in swap_backend.h) and contexts.
 * ====================================================================== */

#define H_PAYLOAD_MASK ((1ull << SWB_TIER_SHIFT) - 1)
#define H_INDEX_MASK ((1ull << 40) - 1)   /* file slot, tier entry */

static inline uint64_t swb_handle_make(uint64_t tier, uint64_t payload)
{
	return (tier << SWB_TIER_SHIFT) | payload;
}

/* relaxed: single writer per context; swb_usage only sums */
#define CSTAT(c, f, v) atomic_store_explicit(&(c)->st.f, \
	atomic_load_explicit(&(c)->st.f, memory_order_relaxed) + (v), memory_order_relaxed)

static int swb_ctx_enter(struct swb_ctx *c)
{
	/* acquire: pairs with the release in swb_ctx_exit of the previous user */
	if (atomic_exchange_explicit(&c->busy, 1, memory_order_acquire))
		return -EBUSY;
	return 0;
}

static void swb_ctx_exit(struct swb_ctx *c)
{
	/* release: pairs with the acquire in swb_ctx_enter of the next user */
	atomic_store_explicit(&c->busy, 0, memory_order_release);
}

/* Set the bits of the bounce pages among ptrs[0, n) in map: they are
 * used where they are and never lent to the other pages of the batch. */
static void swb_bounce_mark(struct swb_ctx *c, const void *const ptrs[], unsigned n,
			    uint64_t map[])
{
	unsigned k;

	for (unsigned i = 0; i < n; i++)
		if (swfile_buf_index(c, ptrs[i], &k))
			map[k / 64] |= 1ull << (k % 64);
}

/* The next bounce page from *next on that is not in map; there are
 * always enough, since a batch has at most nbufs pages. */
static unsigned swb_bounce_next(const uint64_t map[], unsigned *next)
{
	while (map[*next / 64] & (1ull << (*next % 64)))
		(*next)++;
	return (*next)++;
}

/* The slots' transport: the file's ring, or NBD requests. */
static inline void io_write_prep(struct swb_ctx *c, unsigned k, uint64_t slot)
{
	if (c->s->nbd)
		swnbd_write_prep(c, k, slot);
	else
		swfile_write_prep(c, k, slot);
}

static inline int io_write_wait(struct swb_ctx *c, unsigned n)
{
	return c->s->nbd ? swnbd_write_wait(c, n) : swfile_write_wait(c, n);
}

static inline void io_read_prep(struct swb_ctx *c, unsigned k, uint64_t slot, unsigned tag)
{
	if (c->s->nbd)
		swnbd_read_prep(c, k, slot, tag);
	else
		swfile_read_prep(c, k, slot, tag);
}

static inline int io_read_wait(struct swb_ctx *c, unsigned n, int res[])
{
	return c->s->nbd ? swnbd_read_wait(c, n, res) : swfile_read_wait(c, n, res);
}

/* ======================================================================
 * Store (normal context).
 * ====================================================================== */

/* Release what this batch stored and free it now (after a write error). */
static void swb_store_undo(struct swb_ctx *c, uint64_t handles[], unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		swb_release(c->s, handles[i]);
		handles[i] = 0;
	}
	slots_reap(c->s);
	ztier_reap(&c->s->z);
}

int swb_store(struct swb_ctx *c, const void *const pages[], unsigned n, uint64_t handles[])
{
	struct swb *s = c->s;
	uint64_t issrc[SWB_MAX_BUFS / 64] = { 0 };
	unsigned i, k, nfile = 0, nz = 0, nsame = 0, nextb = 0;
	int err = 0;

	if (n > c->nbufs)
		return -EINVAL;
	if (swb_ctx_enter(c))
		return -EBUSY;
	if (c->broken) {
		swb_ctx_exit(c);
		return -EIO;
	}
	slots_reap(s);
	ztier_reap(&s->z);
	swb_bounce_mark(c, pages, n, issrc);
	for (i = 0; i < n; i++) {
		uint64_t payload, csum;
		uint32_t zidx;
		int64_t slot;

		if (same_put(&s->same, pages[i], &payload) == 0) {
			handles[i] = swb_handle_make(SWB_TIER_SAME, payload);
			nsame++;
			continue;
		}
		csum = XXH3_64bits(pages[i], PAGE);
		if (ztier_put(c, pages[i], csum, &zidx) == 0) {
			handles[i] = swb_handle_make(SWB_TIER_Z, zidx);
			nz++;
			continue;
		}
		if (__builtin_expect(inject_on(), 0) && inject_hit(INJ_ENOSPC))
			slot = -ENOSPC;     /* as if the disk were full */
		else
			slot = slots_alloc(c);
		if (slot < 0) {
			err = (int)slot;
			break;              /* full: pages [i, n) are not stored */
		}
		if (!swfile_buf_index(c, pages[i], &k)) {
			k = swb_bounce_next(issrc, &nextb);
			memcpy(swb_ctx_buf(c, k), pages[i], PAGE);
		}
		s->sl.csum[slot] = csum;
		/* relaxed: a test hook, see swb_load */
		atomic_store_explicit(&s->sl.inject[slot], 0, memory_order_relaxed);
		io_write_prep(c, k, (uint64_t)slot);
		handles[i] = swb_handle_make(SWB_TIER_FILE, (uint64_t)slot);
		nfile++;
	}
	for (k = i; k < n; k++)
		handles[k] = 0;
	if (nfile && (err = io_write_wait(c, nfile))) {
		CSTAT(c, io_errors, 1);
		swb_store_undo(c, handles, i);
		swb_ctx_exit(c);
		return err == -ENOTCONN ? err : -EIO;
	}
	CSTAT(c, stores_file, nfile);
	CSTAT(c, bytes_written, (uint64_t)nfile * PAGE);
	CSTAT(c, stores_ztier, nz);
	CSTAT(c, stores_same, nsame);
	swb_ctx_exit(c);
	return i == 0 && n ? err : (int)i;
}

/* ======================================================================
 * Load (async-signal-safe).
 * ====================================================================== */

#define UNREAPED INT_MIN             /* res[i]: no completion for page i */

/* Worst error wins: -EIO, then -EBADMSG, then -EINVAL. */
static void swb_load_fail(uint64_t *failed, unsigned i, int *err, int e)
{
	*failed |= 1ull << i;
	if (*err != -EIO && (e == -EIO || *err != -EBADMSG))
		*err = e;
}

/* Check the file pages whose reads completed and copy them to dst. */
static void swb_load_check(struct swb_ctx *c, const uint64_t handles[], unsigned n,
			   void *const dst[], const unsigned bufk[], const int res[],
			   uint64_t *failed, int *err)
{
	for (unsigned i = 0; i < n; i++) {
		char *buf = swb_ctx_buf(c, bufk[i]);

		if (!swb_handle_is_file(handles[i]) || res[i] == UNREAPED)
			continue;
		if (res[i] != (int)PAGE) {         /* error or short read */
			CSTAT(c, io_errors, 1);
			swb_load_fail(failed, i, err, -EIO);
		} else if (XXH3_64bits(buf, PAGE) != c->s->sl.csum[handles[i] & H_INDEX_MASK]) {
			CSTAT(c, csum_errors, 1);
			swb_load_fail(failed, i, err, -EBADMSG);
		} else if (buf != dst[i]) {
			memcpy(dst[i], buf, PAGE);
		}
	}
}

uint64_t swb_csum(struct swb *s, uint64_t h, const void *page)
{
	uint64_t i = h & H_INDEX_MASK;

	if (swb_handle_is_file(h))
		return s->sl.csum[i];
	if (swb_handle_is_ztier(h) && i < s->z.nent)
		return s->z.ent[i].csum;
	return XXH3_64bits(page, PAGE);
}

int swb_load(struct swb_ctx *c, const uint64_t handles[], unsigned n, void *const dst[],
	     uint64_t *failed)
{
	struct swb *s = c->s;
	uint64_t isdst[SWB_MAX_BUFS / 64] = { 0 };
	unsigned bufk[SWB_MAX_BATCH], nfile = 0, nz = 0, nsame = 0, nextb = 0, k;
	int res[SWB_MAX_BATCH], err = 0;

	*failed = 0;
	if (n > SWB_MAX_BATCH || n > c->nbufs)
		return -EINVAL;
	if (swb_ctx_enter(c))
		return -EBUSY;
	swb_bounce_mark(c, (const void *const *)dst, n, isdst);
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = handles[i], idx = h & H_INDEX_MASK;
		int r;

		res[i] = UNREAPED;
		bufk[i] = 0;
		switch (h >> SWB_TIER_SHIFT) {
		case SWB_TIER_SAME:
			if (same_get(&s->same, h & H_PAYLOAD_MASK, dst[i])) {
				swb_load_fail(failed, i, &err, -EINVAL);
				continue;
			}
			nsame++;
			continue;
		case SWB_TIER_Z:
			r = ztier_get(&s->z, idx, dst[i]);
			if (r == -EBADMSG)
				CSTAT(c, csum_errors, 1);
			else if (r == -EIO)
				CSTAT(c, io_errors, 1);
			if (r)
				swb_load_fail(failed, i, &err, r);
			nz++;
			continue;
		case SWB_TIER_FILE:
			break;
		default:
			swb_load_fail(failed, i, &err, -EINVAL);
			continue;
		}
		if (idx >= s->sl.nslots || c->broken) {
			swb_load_fail(failed, i, &err, c->broken ? -EIO : -EINVAL);
			continue;
		}
		/* relaxed: a test hook set before the load was asked for */
		if (atomic_load_explicit(&s->sl.inject[idx], memory_order_relaxed) &&
		    atomic_exchange_explicit(&s->sl.inject[idx], 0, memory_order_relaxed)) {
			CSTAT(c, io_errors, 1);
			swb_load_fail(failed, i, &err, -EIO);
			continue;
		}
		if (!swfile_buf_index(c, dst[i], &k))
			k = swb_bounce_next(isdst, &nextb);
		bufk[i] = k;
		io_read_prep(c, k, idx, i);
		nfile++;
	}
	if (nfile) {
		int r = io_read_wait(c, nfile, res);

		swb_load_check(c, handles, n, dst, bufk, res, failed, &err);
		if (r) {
			/* the ring is broken: every read not reaped failed */
			for (unsigned i = 0; i < n; i++)
				if (swb_handle_is_file(handles[i]))
					swb_load_fail(failed, i, &err, -EIO);
		}
		CSTAT(c, loads_file, nfile);
		CSTAT(c, bytes_read, (uint64_t)nfile * PAGE);
	}
	CSTAT(c, loads_ztier, nz);
	CSTAT(c, loads_same, nsame);
	swb_ctx_exit(c);
	return err;
}

/* ======================================================================
 * Release (async-signal-safe, lock-free) and maintenance (normal context).
 * ====================================================================== */

void swb_release(struct swb *s, uint64_t h)
{
	uint64_t idx = h & H_INDEX_MASK;

	switch (h >> SWB_TIER_SHIFT) {
	case SWB_TIER_SAME:
		same_release(&s->same);
		break;
	case SWB_TIER_Z:
		ztier_release(&s->z, idx);
		break;
	case SWB_TIER_FILE:
		if (idx < s->sl.nslots)
			slots_free(s, idx);
		break;
	}
}

int swb_maintain(struct swb *s)
{
	int err = slots_reap(s);

	ztier_reap(&s->z);
	return err;
}

void swb_usage(struct swb *s, struct swb_usage *u)
{
	memset(u, 0, sizeof(*u));
	slots_usage(&s->sl, u);
	ztier_usage(&s->z, u);
	same_usage(&s->same, u);
	u->file_direct = s->f.direct;
	if (s->nbd)
		swnbd_usage(s->nbd, u);
	/* relaxed: counters; each has one writer */
	ufp_mutex_lock(&s->ctx_lock, LL_SWAP);
#define X(f) u->f = atomic_load_explicit(&s->gone.f, memory_order_relaxed);
	CTX_STATS(X)
#undef X
	for (struct swb_ctx *c = s->ctxs; c; c = c->next) {
#define X(f) u->f += atomic_load_explicit(&c->st.f, memory_order_relaxed);
		CTX_STATS(X)
#undef X
	}
	ufp_mutex_unlock(&s->ctx_lock, LL_SWAP);
}

/* ======================================================================
 * Test hooks (normal context).
 * ====================================================================== */

int swb_inject(struct swb *s, uint64_t h, int what)
{
	uint64_t idx = h & H_INDEX_MASK;

	if (what != SWB_INJECT_EIO && what != SWB_INJECT_CORRUPT)
		return -EINVAL;
	if (swb_handle_is_ztier(h))
		return ztier_inject(&s->z, idx, what);
	if (!swb_handle_is_file(h) || idx >= s->sl.nslots)
		return -EINVAL;
	if (what == SWB_INJECT_CORRUPT)
		return s->nbd ? swnbd_corrupt(s->nbd, idx) : swfile_corrupt(&s->f, idx);
	/* relaxed: the test orders it before the load it asks for */
	atomic_store_explicit(&s->sl.inject[idx], 1, memory_order_relaxed);
	return 0;
}

int swb_fd(struct swb *s)
{
	return s->f.fd;
}

bool swb_io_loop_needed(struct swb *s)
{
	return s->nbd != NULL;
}

void swb_io_loop(struct swb *s)
{
	if (s->nbd)
		swnbd_run(s->nbd);
}

void swb_io_loop_stop(struct swb *s)
{
	if (s->nbd)
		swnbd_stop(s->nbd);
}

int swb_io_kick_fd(struct swb *s)
{
	return s->nbd ? swnbd_kick_fd(s->nbd) : -1;
}

int swb_io_socket_family(struct swb *s)
{
	return s->nbd ? swnbd_family(s->nbd) : -1;
}

int swb_status(struct swb *s, char *buf, size_t len)
{
	if (s->nbd)
		return swnbd_status(s->nbd, buf, len);
	snprintf(buf, len, "swap file (%s)", s->f.direct ? "O_DIRECT" : "buffered");
	return 0;
}

#ifdef UFP_INTERNAL_TESTING
struct io_uring *swb_ctx_ring(struct swb_ctx *c)
{
	return &c->ring;
}
#endif

/* ======================================================================
 * Setup and teardown (normal context).
 * ====================================================================== */

int swb_create(const struct swb_params *p, struct swb **out)
{
	static const struct swb_params defaults;
	const struct swb_params *pp = p ? p : &defaults;
	const char *dir = pp->dir ? pp->dir : "/var/tmp";
	uint64_t size = pp->file_size ? pp->file_size : 1ull << 30;
	uint64_t ncl;
	struct nbdq *nbd = NULL;
	struct swb *s;
	int err;

	if (swnbd_is_uri(dir)) {
		/* the export's size is the slot space: whole clusters of it */
		err = swnbd_open(dir, &nbd, &size);
		if (err)
			return err;
		size -= size % CL_BYTES;
	}
	ncl = (size + CL_BYTES - 1) / CL_BYTES;
	if (pp->ctx_bufs > SWB_MAX_BUFS || ncl > UINT32_MAX / 2) {
		swnbd_close(nbd);
		return ufp_error(-EINVAL, SWB_ERR "ctx_bufs must be at most %u and the file "
				 "below 2^43 bytes", SWB_MAX_BUFS);
	}
	if (pp->ztier_size / Z_GRAN + 1 >= Z_NONE) {
		swnbd_close(nbd);
		return ufp_error(-EINVAL, SWB_ERR "ztier_size %llu is too large",
				 (unsigned long long)pp->ztier_size);
	}
	s = slab_calloc(1, sizeof(*s));
	if (!s) {
		swnbd_close(nbd);
		return ufp_error(-ENOMEM, SWB_ERR "out of memory");
	}
	s->f.fd = -1;
	s->nbd = nbd;
	s->nbufs = pp->ctx_bufs ? pp->ctx_bufs : 32;
	s->qd = pp->queue_depth ? pp->queue_depth : 64;
	if (s->qd < s->nbufs)
		s->qd = s->nbufs;           /* one batch always fits one submit */
	pthread_mutex_init(&s->ctx_lock, NULL);
	err = slots_init(s, ncl);
	if (!err)
		err = ztier_init(&s->z, pp->ztier_size);
	if (err) {
		ufp_set_error(SWB_ERR "out of memory");
		goto fail;
	}
	if (!nbd) {
		err = swfile_open(&s->f, dir, s->sl.nslots * PAGE);
		if (err)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	swb_destroy(s);
	return err;
}

void swb_destroy(struct swb *s)
{
	if (!s)
		return;
	ztier_fini(&s->z);
	pthread_mutex_destroy(&s->ctx_lock);
	slots_fini(s);
	swfile_close(&s->f);
	swnbd_close(s->nbd);
	slab_free(s);
}

int swb_ctx_create(struct swb *s, struct swb_ctx **out)
{
	struct swb_ctx *c = slab_calloc(1, sizeof(*c));
	int err;

	if (!c || ztier_ctx_init(c)) {
		slab_free(c);
		return ufp_error(-ENOMEM, SWB_ERR "out of memory for a context");
	}
	c->s = s;
	c->nbufs = s->nbufs;
	c->cl = UINT32_MAX;
	err = s->nbd ? swnbd_ctx_init(c) : swfile_ctx_init(c);
	if (err) {
		ztier_ctx_fini(c);
		slab_free(c);
		return err;
	}
	ufp_mutex_lock(&s->ctx_lock, LL_SWAP);
	c->next = s->ctxs;
	s->ctxs = c;
	ufp_mutex_unlock(&s->ctx_lock, LL_SWAP);
	*out = c;
	return 0;
}

void swb_ctx_destroy(struct swb_ctx *c)
{
	struct swb *s;

	if (!c)
		return;
	s = c->s;
	slots_ctx_release(c);
	ufp_mutex_lock(&s->ctx_lock, LL_SWAP);
	for (struct swb_ctx **pp = &s->ctxs; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	/* relaxed: counters; the lock keeps swb_usage from counting twice */
#define X(f) atomic_fetch_add_explicit(&s->gone.f, \
	atomic_load_explicit(&c->st.f, memory_order_relaxed), memory_order_relaxed);
	CTX_STATS(X)
#undef X
	ufp_mutex_unlock(&s->ctx_lock, LL_SWAP);
	if (s->nbd)
		swnbd_ctx_fini(c);
	else
		swfile_ctx_fini(c);
	ztier_ctx_fini(c);
	slab_free(c);
}

void *swb_ctx_buf(struct swb_ctx *c, unsigned i)
{
	return c->bufs + (size_t)i * PAGE;
}

unsigned swb_ctx_nbufs(struct swb_ctx *c)
{
	return c->nbufs;
}

/* ======================================================================
 * The public probe of a swap location (normal context).
 * ====================================================================== */

UFP_API int ufp_swap_probe(const char *where, uint64_t *size)
{
	struct swb_params sp = { .dir = where, .file_size = CL_BYTES };
	struct swb *s;
	struct statvfs vfs;
	int err;

	ufp_clear_error();
	if (!where || !size)
		return ufp_error(-EINVAL, "ufp_swap_probe: NULL argument");
	err = swb_create(&sp, &s);
	if (err)
		return err;
	if (s->nbd)
		*size = s->sl.nslots * PAGE;
	else
		*size = statvfs(where, &vfs) ? 0 : (uint64_t)vfs.f_bavail * vfs.f_frsize;
	swb_destroy(s);
	return 0;
}
