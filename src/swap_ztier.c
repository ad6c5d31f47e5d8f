/* SPDX-License-Identifier: MIT */
/*
 * swap_ztier.c - the compressed RAM tier. Entries (checksum, length, data
 * pointer) live in an array indexed by entry number; compressed bytes
 * live in 32 KiB slabs cut into 64-byte size classes, up to the cap
 * counted in slab memory held. Calls nothing in the backend; lz4, xxh3,
 * liburcu's lfstack and the fault injector (inject.h).
 *
 * Concurrency: allocation happens in ztier_put under z->lock (normal
 * context; never taken on the load or release paths). A release marks the
 * entry DEAD with one CAS and pushes it on an lfstack (lock-free,
 * signal-safe); memory is freed by the next ztier_reap (store or
 * maintain). ztier_get is async-signal-safe: no lock, lz4 decompression.
 */
#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <urcu/compiler.h>
#include <xxhash.h>

#include "base.h"
#include "sys.h"
#include "swap_internal.h"
#include "vma_locks.h"
#include "inject.h"

#define Z_SLAB 32768u                /* slab size and alignment */
#define Z_SLAB_HDR 64u

/* A slab of one size class. Every field is under ztier.lock. */
struct zslab {
	struct zslab *next, *prev;       /* partial list of the class */
	void *free;                      /* freed objects, linked through them */
	uint32_t used, cap, carved;
	uint32_t cls;
};

/* ======================================================================
 * Slabs: under z->lock, normal context.
 * ====================================================================== */

static void ztier_slab_link(struct ztier *z, struct zslab *sl)
{
	sl->prev = NULL;
	sl->next = z->partial[sl->cls];
	if (sl->next)
		sl->next->prev = sl;
	z->partial[sl->cls] = sl;
}

static void ztier_slab_unlink(struct ztier *z, struct zslab *sl)
{
	if (sl->prev)
		sl->prev->next = sl->next;
	else
		z->partial[sl->cls] = sl->next;
	if (sl->next)
		sl->next->prev = sl->prev;
}

static void *ztier_slab_alloc(struct ztier *z, unsigned cls)
{
	struct zslab *sl = z->partial[cls];
	unsigned size = (cls + 1) * Z_GRAN;
	void *obj;

	if (!sl) {
		/* relaxed: only written under z->lock, which we hold */
		if (atomic_load_explicit(&z->slab_bytes, memory_order_relaxed) + Z_SLAB > z->cap)
			return NULL;
		sl = slab_aligned_alloc(Z_SLAB, Z_SLAB);
		if (!sl)
			return NULL;
		*sl = (struct zslab){ .cap = (Z_SLAB - Z_SLAB_HDR) / size, .cls = cls };
		ztier_slab_link(z, sl);
		/* relaxed: written under z->lock; swb_usage reads a snapshot */
		atomic_fetch_add_explicit(&z->slab_bytes, Z_SLAB, memory_order_relaxed);
	}
	if (sl->free) {
		obj = sl->free;
		sl->free = *(void **)obj;
	} else {
		obj = (char *)sl + Z_SLAB_HDR + (size_t)sl->carved++ * size;
	}
	if (++sl->used == sl->cap)
		ztier_slab_unlink(z, sl);
	return obj;
}

static void ztier_slab_free(struct ztier *z, void *obj)
{
	struct zslab *sl = (struct zslab *)((uintptr_t)obj & ~(uintptr_t)(Z_SLAB - 1));

	if (sl->used-- == sl->cap)
		ztier_slab_link(z, sl);
	if (!sl->used) {
		ztier_slab_unlink(z, sl);
		slab_free(sl);
		/* relaxed: written under z->lock; swb_usage reads a snapshot */
		atomic_fetch_sub_explicit(&z->slab_bytes, Z_SLAB, memory_order_relaxed);
		return;
	}
	*(void **)obj = sl->free;
	sl->free = obj;
}

/* ======================================================================
 * Setup and teardown (normal context).
 * ====================================================================== */

/* The caller checked that cap / Z_GRAN + 1 < Z_NONE. */
int ztier_init(struct ztier *z, uint64_t cap)
{
	uint64_t nent = cap / Z_GRAN + 1;

	z->cap = cap;
	z->free_ent = Z_NONE;
	__cds_lfs_init(&z->deadq);
	pthread_mutex_init(&z->lock, NULL);
	if (!cap)
		return 0;
	z->nent = (uint32_t)nent;
	/* untouched entries cost nothing: the free list reuses low ones */
	z->ent = sys_mmap(NULL, nent * sizeof(*z->ent), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (z->ent == MAP_FAILED) {
		z->ent = NULL;
		return -ENOMEM;
	}
	return 0;
}

void ztier_fini(struct ztier *z)
{
	if (z->ent) {
		ztier_reap(z);
		for (uint32_t i = 0; i < z->next_ent; i++)
			/* relaxed: no context is left; nothing runs concurrently */
			if (atomic_load_explicit(&z->ent[i].state, memory_order_relaxed) != Z_FREE)
				ztier_slab_free(z, z->ent[i].data);
		sys_munmap(z->ent, (size_t)z->nent * sizeof(*z->ent));
	}
	pthread_mutex_destroy(&z->lock);
}

int ztier_ctx_init(struct swb_ctx *c)
{
	c->lz4state = slab_alloc((size_t)LZ4_sizeofState());
	c->zbuf = slab_alloc(Z_MAX_CLEN);
	if (!c->lz4state || !c->zbuf) {
		ztier_ctx_fini(c);
		return -ENOMEM;
	}
	return 0;
}

void ztier_ctx_fini(struct swb_ctx *c)
{
	slab_free(c->lz4state);
	slab_free(c->zbuf);
	c->lz4state = NULL;
	c->zbuf = NULL;
}

/* ======================================================================
 * Store and reap: normal context, under z->lock.
 * ====================================================================== */

void ztier_reap(struct ztier *z)
{
	struct cds_lfs_head *head;
	struct cds_lfs_node *node, *next;

	if (!z->cap || cds_lfs_empty(&z->deadq))
		return;
	head = __cds_lfs_pop_all(&z->deadq);
	tsan_acquire(&z->deadq_sync);
	ufp_mutex_lock(&z->lock, LL_SWAP);
	for (node = head ? &head->node : NULL; node; node = next) {
		struct zent *e = caa_container_of(node, struct zent, dead);

		next = node->next;
		ztier_slab_free(z, e->data);
		e->data = NULL;
		/* relaxed: the entry is ours until it leaves the free list */
		atomic_store_explicit(&e->state, Z_FREE, memory_order_relaxed);
		e->next_free = z->free_ent;
		z->free_ent = (uint32_t)(e - z->ent);
		/* relaxed: a counter, written under z->lock */
		atomic_fetch_sub_explicit(&z->entries, 1, memory_order_relaxed);
	}
	/* relaxed: a hint for ztier_put; the lock orders the real state */
	atomic_store_explicit(&z->full, false, memory_order_relaxed);
	ufp_mutex_unlock(&z->lock, LL_SWAP);
}

int ztier_put(struct swb_ctx *c, const void *page, uint64_t csum, uint32_t *idxp)
{
	struct ztier *z = &c->s->z;
	struct zent *e;
	uint32_t idx;
	void *obj = NULL;
	int clen;

	/* relaxed: a hint (see ztier_reap) */
	if (!z->cap || atomic_load_explicit(&z->full, memory_order_relaxed))
		return -ENOSPC;
	clen = LZ4_compress_fast_extState(c->lz4state, page, c->zbuf, (int)PAGE,
					  (int)Z_MAX_CLEN, 1);
	if (clen <= 0)
		return -E2BIG;
	ufp_mutex_lock(&z->lock, LL_SWAP);
	idx = z->free_ent;
	if (idx != Z_NONE)
		z->free_ent = z->ent[idx].next_free;
	else if (z->next_ent < z->nent)
		idx = z->next_ent++;
	if (idx != Z_NONE)
		obj = ztier_slab_alloc(z, (unsigned)(clen - 1) / Z_GRAN);
	if (!obj) {
		if (idx != Z_NONE) {
			z->ent[idx].next_free = z->free_ent;
			z->free_ent = idx;
		}
		/* relaxed: a hint (see ztier_reap) */
		atomic_store_explicit(&z->full, true, memory_order_relaxed);
		ufp_mutex_unlock(&z->lock, LL_SWAP);
		return -ENOSPC;
	}
	/* relaxed: a counter, written under z->lock */
	atomic_fetch_add_explicit(&z->entries, 1, memory_order_relaxed);
	ufp_mutex_unlock(&z->lock, LL_SWAP);

	e = &z->ent[idx];
	memcpy(obj, c->zbuf, (size_t)clen);
	e->data = obj;
	e->clen = (uint16_t)clen;
	e->csum = csum;
	/* relaxed: a test hook, see ztier_get */
	atomic_store_explicit(&e->inject, 0, memory_order_relaxed);
	/* relaxed: the handle reaches loaders through the caller's own
	 * release/acquire publication */
	atomic_store_explicit(&e->state, Z_LIVE, memory_order_relaxed);
	*idxp = idx;
	return 0;
}

/* ======================================================================
 * Load and release: async-signal-safe, no lock.
 * ====================================================================== */

int ztier_get(struct ztier *z, uint64_t idx, void *dst)
{
	struct zent *e;
	int got;

	if (idx >= z->nent)
		return -EINVAL;
	e = &z->ent[idx];
	/* relaxed: catches stale handles only; the data came with the handle */
	if (atomic_load_explicit(&e->state, memory_order_relaxed) != Z_LIVE)
		return -EINVAL;
	/* relaxed: a test hook set by this or an earlier-synchronised thread */
	if (atomic_load_explicit(&e->inject, memory_order_relaxed) &&
	    atomic_exchange_explicit(&e->inject, 0, memory_order_relaxed))
		return -EIO;
	got = LZ4_decompress_safe(e->data, dst, e->clen, (int)PAGE);
	if (__builtin_expect(inject_on(), 0)) {
		int r = inject_io_res((int)PAGE, INJ_READ);

		if (r < 0)
			return r;
		if (r != (int)PAGE)
			got = r;
		else if (inject_hit(INJ_CSUM))
			((unsigned char *)dst)[PAGE - 1] ^= 0x5a;
	}
	if (got != (int)PAGE || XXH3_64bits(dst, PAGE) != e->csum)
		return -EBADMSG;
	return 0;
}

void ztier_release(struct ztier *z, uint64_t idx)
{
	struct zent *e;
	uint8_t st = Z_LIVE;

	if (idx >= z->nent)
		return;
	e = &z->ent[idx];
	/* relaxed CAS: the push's cmpxchg (a full barrier) orders it before
	 * the reaper's xchg in pop_all */
	if (atomic_compare_exchange_strong_explicit(&e->state, &st, Z_DEAD,
			memory_order_relaxed, memory_order_relaxed)) {
		tsan_release(&z->deadq_sync);
		cds_lfs_push(&z->deadq, &e->dead);
	}
}

/* ======================================================================
 * Test hook and counters (normal context).
 * ====================================================================== */

int ztier_inject(struct ztier *z, uint64_t idx, int what)
{
	struct zent *e = idx < z->nent ? &z->ent[idx] : NULL;

	/* relaxed: the test orders it before the load it asks for */
	if (!e || atomic_load_explicit(&e->state, memory_order_relaxed) != Z_LIVE)
		return -EINVAL;
	if (what == SWB_INJECT_EIO)
		atomic_store_explicit(&e->inject, 1, memory_order_relaxed);
	else
		((unsigned char *)e->data)[e->clen / 2] ^= 0xff;
	return 0;
}

void ztier_usage(struct ztier *z, struct swb_usage *u)
{
	/* relaxed: a snapshot of counters, pairing with nothing */
	u->ztier_bytes_cap = z->cap;
	u->ztier_bytes_used = atomic_load_explicit(&z->slab_bytes, memory_order_relaxed);
	u->ztier_entries = atomic_load_explicit(&z->entries, memory_order_relaxed);
	u->ztier_raw_bytes = u->ztier_entries * PAGE;
}
