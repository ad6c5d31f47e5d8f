/* SPDX-License-Identifier: MIT */
/*
 * swap_backend.c - the swap store (see swap_backend.h for the tiers and
 * the handle layout). Owns: the O_TMPFILE swap file and its cluster/slot
 * allocator, the per-context io_uring rings, the lz4 tier and its slab
 * allocator, the same-filled word table, per-page checksums.
 *
 * Slot allocator. The file is cut into clusters of 64 slots (256 KiB, the
 * kernel's swap cluster). Each cluster has a bitmap word of used slots and
 * a state:
 *
 *   FREE --take (freemap CAS)--> OWNED --full / ctx gone--> DETACHED
 *     ^                            ^                            |
 *     |                            +--take (state CAS, scan)----+
 *   punched <--maintain/store-- PUNCH <--last slot released-----+
 *
 * A context allocates from its OWNED cluster alone: setting a bit needs no
 * CAS loop, since only the owner sets bits (releases only clear them).
 * Free clusters sit in an atomic bitmap (lock-free take and put). A
 * release that empties a DETACHED cluster moves it to PUNCH and pushes it
 * on a liburcu lfstack (push is lock-free and signal-safe); the next
 * swb_store or swb_maintain pops the whole stack, punches each cluster and
 * returns it to the free bitmap. An OWNED cluster that empties stays with
 * its owner until detached; the detach checks for emptiness (see
 * cluster_detach for the Dekker pairing with slot_free).
 *
 * Compressed tier. Entries (checksum, length, data pointer) live in an
 * array indexed by entry number; compressed bytes live in 32 KiB slabs cut
 * into 64-byte size classes. Allocation happens in swb_store under a mutex
 * (normal context; never taken on the load or release paths). A release
 * marks the entry DEAD with one CAS and pushes it on a second lfstack;
 * memory is freed by the next store or maintain.
 *
 * Concurrency contract: swb_load and swb_release are async-signal-safe
 * (atomics, io_uring_enter, lz4 decompression, xxh3); swb_release is
 * lock-free. Everything that allocates or takes a mutex runs in normal
 * context: create/destroy, ctx create/destroy, store, maintain, usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <urcu/compiler.h>
#include <urcu/lfstack.h>
#include <xxhash.h>

#include "swap_backend.h"
#include "inject.h"
#include "ufp_internal.h"

#define PAGE SWB_PAGE_SIZE
#define CL_SLOTS 64u
#define CL_BYTES ((uint64_t)CL_SLOTS * PAGE)
#define SLOT_MASK ((1ull << 40) - 1)
#define H_SAME_TABLE (1ull << 61)
#define SAME_PROBES 64u

#define Z_MAX_CLEN (PAGE * 3 / 4)    /* store in the tier only at <= 3/4 page */
#define Z_GRAN 64u                   /* size-class granule */
#define Z_CLASSES (Z_MAX_CLEN / Z_GRAN)
#define Z_SLAB 32768u                /* slab size and alignment */
#define Z_SLAB_HDR 64u
#define Z_NONE UINT32_MAX

/*
 * ThreadSanitizer cannot see liburcu's inline-asm atomics, so the handoff
 * "push on a stack, pop_all, use the node" looks like a race to it. Under
 * TSan only, mirror each push with a C11 release and each pop_all with an
 * acquire on a counter next to the stack (as ufp_call_rcu does).
 */
#ifdef __SANITIZE_THREAD__
#define tsan_release(a) atomic_fetch_add_explicit(a, 1, memory_order_release)
#define tsan_acquire(a) ((void)atomic_load_explicit(a, memory_order_acquire))
#else
#define tsan_release(a) ((void)(a))
#define tsan_acquire(a) ((void)(a))
#endif

static inline uint64_t mkhandle(uint64_t tier, uint64_t v)
{
	return (tier << SWB_TIER_SHIFT) | v;
}

/* ======================================================================
 * Objects.
 * ====================================================================== */

enum { CL_FREE, CL_OWNED, CL_DETACHED, CL_PUNCH };

/* Invariant: only the OWNED cluster's owner sets bits in used; a cluster
 * is on punchq iff its state is CL_PUNCH; its freemap bit is set iff its
 * state is CL_FREE and nobody took it. */
struct cluster {
	_Atomic uint64_t used;           /* bit per slot in use */
	_Atomic uint32_t state;
	struct cds_lfs_node punch;       /* on swb.punchq while CL_PUNCH */
};

enum { Z_FREE, Z_LIVE, Z_DEAD };

/* A tier entry. data/clen/csum are written by the store that makes it
 * LIVE, before the handle is returned; loads read them after the caller
 * published the handle. */
struct zent {
	struct cds_lfs_node dead;        /* on ztier.deadq while Z_DEAD */
	void *data;
	uint64_t csum;
	uint32_t next_free;              /* free list, under ztier.lock */
	uint16_t clen;
	_Atomic uint8_t state;
	_Atomic uint8_t inject;
};

/* A slab of one size class. Every field is under ztier.lock. */
struct zslab {
	struct zslab *next, *prev;       /* partial list of the class */
	void *free;                      /* freed objects, linked through them */
	uint32_t used, cap, carved;
	uint32_t cls;
};

struct ztier {
	uint64_t cap;                    /* 0: no tier */
	struct zent *ent;
	uint32_t nent;
	pthread_mutex_t lock;            /* store / reap only: normal context */
	uint32_t free_ent, next_ent;     /* under lock */
	struct zslab *partial[Z_CLASSES];/* under lock */
	_Atomic uint64_t slab_bytes, entries;   /* written under lock */
	_Atomic bool full;               /* hint: skip compression while set */
	struct __cds_lfs_stack deadq;
	_Atomic unsigned long deadq_sync;      /* TSan only: see tsan_release */
};

/* Per-context counters: one writer (the context's user), read by
 * swb_usage; folded into swb.gone when the context goes. */
#define CTX_STATS(X) X(stores_file) X(stores_ztier) X(stores_same) X(loads_file) \
	X(loads_ztier) X(loads_same) X(bytes_read) X(bytes_written) X(io_errors) X(csum_errors)

struct ctx_stats {
#define X(f) _Atomic uint64_t f;
	CTX_STATS(X)
#undef X
};

struct swb {
	int fd;
	bool direct, can_falloc, can_punch;
	unsigned nbufs, qd;
	uint32_t nclusters, nfreewords;
	uint64_t nslots;
	struct cluster *cl;
	_Atomic uint64_t *freemap;       /* bit per CL_FREE cluster */
	_Atomic uint32_t free_hint, scan_hint;
	struct __cds_lfs_stack punchq;
	_Atomic unsigned long punchq_sync;     /* TSan only: see tsan_release */
	_Atomic uint64_t punched;
	uint64_t *csum;                  /* per slot, written by the storing ctx */
	_Atomic uint8_t *inject;         /* per slot: SWB_INJECT_EIO pending */
	_Atomic uint64_t same_word[SWB_SAME_TABLE];
	_Atomic uint8_t same_state[SWB_SAME_TABLE];  /* 0 empty, 1 filling, 2 ready */
	_Atomic int64_t same_live;
	struct ztier z;
	pthread_mutex_t ctx_lock;        /* ctx list and gone */
	struct swb_ctx *ctxs;
	struct ctx_stats gone;
};

struct swb_ctx {
	struct swb *s;
	struct swb_ctx *next;            /* swb.ctxs, under ctx_lock */
	struct io_uring ring;
	char *bufs;
	unsigned nbufs;
	uint32_t cl;                     /* owned cluster, UINT32_MAX: none */
	bool broken;                     /* a submit failed: ring state unknown */
	_Atomic int busy;                /* inside store/load (re-entry guard) */
	void *lz4state;
	char *zbuf;                      /* compression output, Z_MAX_CLEN */
	struct ctx_stats st;
};

/* The one error channel: a detail for ufp_last_error(). */
#define detail(fmt, ...) ufp_set_error("ufpager: swap backend: " fmt, ##__VA_ARGS__)

/* relaxed: single writer per context; swb_usage only sums */
#define CSTAT(c, f, v) atomic_store_explicit(&(c)->st.f, \
	atomic_load_explicit(&(c)->st.f, memory_order_relaxed) + (v), memory_order_relaxed)

static int ctx_enter(struct swb_ctx *c)
{
	/* acquire: pairs with the release in ctx_exit of the previous user */
	if (atomic_exchange_explicit(&c->busy, 1, memory_order_acquire))
		return -EBUSY;
	return 0;
}

static void ctx_exit(struct swb_ctx *c)
{
	/* release: pairs with the acquire in ctx_enter of the next user */
	atomic_store_explicit(&c->busy, 0, memory_order_release);
}

/* ======================================================================
 * Clusters and slots. Take/detach: normal context (the owning context).
 * slot_free: any context, signal-safe.
 * ====================================================================== */

static void freemap_put(struct swb *s, uint32_t k)
{
	/* release: pairs with the acquire in freemap_take (punch done first) */
	atomic_fetch_or_explicit(&s->freemap[k / 64], 1ull << (k % 64), memory_order_release);
}

static int64_t freemap_take(struct swb *s)
{
	uint32_t n = s->nfreewords;
	/* relaxed: a search hint; pairs with nothing */
	uint32_t start = atomic_load_explicit(&s->free_hint, memory_order_relaxed) % n;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t w = (start + i) % n;
		/* relaxed: only a guess; the CAS below acquires */
		uint64_t v = atomic_load_explicit(&s->freemap[w], memory_order_relaxed);

		while (v) {
			uint64_t bit = v & -v;

			/* acquire: pairs with the release in freemap_put */
			if (atomic_compare_exchange_weak_explicit(&s->freemap[w], &v, v & ~bit,
					memory_order_acquire, memory_order_relaxed)) {
				/* relaxed: a search hint */
				atomic_store_explicit(&s->free_hint, w, memory_order_relaxed);
				return (int64_t)w * 64 + __builtin_ctzll(bit);
			}
		}
	}
	return -1;
}

/* Punch the clusters that emptied and give them back to the free pool.
 * Normal context; concurrent callers get disjoint sets (pop_all is one
 * xchg). Returns the number returned to the pool, or -errno of a failed
 * punch (the cluster is returned to the pool anyway). */
static int reap_clusters(struct swb *s, unsigned *nret)
{
	struct cds_lfs_head *head;
	struct cds_lfs_node *node, *next;
	int err = 0;

	*nret = 0;
	if (cds_lfs_empty(&s->punchq))
		return 0;
	head = __cds_lfs_pop_all(&s->punchq);
	tsan_acquire(&s->punchq_sync);
	/* not cds_lfs_for_each_safe: it takes &head->node of a NULL head
	 * when a concurrent reaper emptied the stack first (UBSan) */
	for (node = head ? &head->node : NULL; node; node = next) {
		struct cluster *cl = caa_container_of(node, struct cluster, punch);
		uint32_t k = (uint32_t)(cl - s->cl);

		next = node->next;      /* before the cluster can be queued again */
		if (s->can_punch) {
			/* relaxed: a counter for swb_usage */
			if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(k * CL_BYTES), (off_t)CL_BYTES) == 0)
				atomic_fetch_add_explicit(&s->punched, 1, memory_order_relaxed);
			else if (!err)
				err = -errno;
		}
		/* relaxed: published by freemap_put's release */
		atomic_store_explicit(&cl->state, CL_FREE, memory_order_relaxed);
		freemap_put(s, k);
		(*nret)++;
	}
	return err;
}

/* The owner gives its cluster up (it is full, or the context goes). */
static void cluster_detach(struct swb *s, uint32_t k)
{
	struct cluster *cl = &s->cl[k];
	uint32_t st = CL_DETACHED;

	/* seq_cst store then load: pairs with slot_free's seq_cst fetch_and
	 * then CAS on state (Dekker): if we see slots in use, the releaser of
	 * the last one sees DETACHED; if both see each other, the CAS picks
	 * one, so an emptied cluster is queued exactly once */
	atomic_store(&cl->state, CL_DETACHED);
	if (atomic_load(&cl->used) == 0 &&
	    atomic_compare_exchange_strong(&cl->state, &st, CL_PUNCH)) {
		tsan_release(&s->punchq_sync);
		cds_lfs_push(&s->punchq, &cl->punch);
	}
}

static int64_t detached_take(struct swb *s)
{
	uint32_t n = s->nclusters;
	/* relaxed: a search hint; pairs with nothing */
	uint32_t start = atomic_load_explicit(&s->scan_hint, memory_order_relaxed) % n;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = (start + i) % n;
		struct cluster *cl = &s->cl[k];
		uint32_t st = CL_DETACHED;

		/* relaxed: a pre-check; the CAS below decides */
		if (atomic_load_explicit(&cl->state, memory_order_relaxed) != CL_DETACHED ||
		    !~atomic_load_explicit(&cl->used, memory_order_relaxed))
			continue;
		/* acquire: pairs with the seq_cst store in cluster_detach */
		if (atomic_compare_exchange_strong_explicit(&cl->state, &st, CL_OWNED,
				memory_order_acquire, memory_order_relaxed)) {
			/* relaxed: a search hint */
			atomic_store_explicit(&s->scan_hint, k + 1, memory_order_relaxed);
			return k;
		}
	}
	return -1;
}

/* Give context c a cluster with free slots: a free one (blocks reserved
 * with fallocate), else one from the punch queue, else a detached one with
 * holes. Returns 0 or -ENOSPC / -errno of fallocate. */
static int cluster_get(struct swb_ctx *c)
{
	struct swb *s = c->s;
	unsigned reaped;
	int64_t k;

	k = freemap_take(s);
	if (k < 0) {
		reap_clusters(s, &reaped);
		if (reaped)
			k = freemap_take(s);
	}
	if (k >= 0) {
		if (s->can_falloc &&
		    fallocate(s->fd, 0, (off_t)((uint64_t)k * CL_BYTES), (off_t)CL_BYTES)) {
			int err = -errno;

			freemap_put(s, (uint32_t)k);
			return err;
		}
		/* relaxed: only we hold it (freemap_take acquired it) */
		atomic_store_explicit(&s->cl[k].state, CL_OWNED, memory_order_relaxed);
		c->cl = (uint32_t)k;
		return 0;
	}
	k = detached_take(s);
	if (k < 0)
		return -ENOSPC;
	c->cl = (uint32_t)k;
	return 0;
}

static int64_t slot_alloc(struct swb_ctx *c)
{
	struct swb *s = c->s;

	for (;;) {
		if (c->cl != UINT32_MAX) {
			struct cluster *cl = &s->cl[c->cl];
			/* acquire: pairs with the release in slot_free, so the last
			 * reader of a freed slot is done before we overwrite it */
			uint64_t u = atomic_load_explicit(&cl->used, memory_order_acquire);

			if (~u) {
				unsigned b = (unsigned)__builtin_ctzll(~u);
				int64_t slot = (int64_t)c->cl * CL_SLOTS + b;

				/* relaxed: only the owner sets bits; ordered by the load */
				u = atomic_fetch_or_explicit(&cl->used, 1ull << b, memory_order_relaxed);
				if (!~(u | 1ull << b)) {
					/* full: detach now, so that it can be punched
					 * as soon as its slots are released */
					cluster_detach(s, c->cl);
					c->cl = UINT32_MAX;
				}
				return slot;
			}
			cluster_detach(s, c->cl);
			c->cl = UINT32_MAX;
		}
		int err = cluster_get(c);

		if (err)
			return err;
	}
}

/* Signal-safe, lock-free. */
static void slot_free(struct swb *s, uint64_t slot)
{
	struct cluster *cl = &s->cl[slot / CL_SLOTS];
	uint64_t bit = 1ull << (slot % CL_SLOTS);
	uint32_t st = CL_DETACHED;
	/* seq_cst: pairs with cluster_detach (see there); also the release
	 * that slot_alloc's acquire load pairs with */
	uint64_t old = atomic_fetch_and(&cl->used, ~bit);

	if (!(old & bit))
		return;                     /* double release: ignore */
	if (old == bit && atomic_compare_exchange_strong(&cl->state, &st, CL_PUNCH)) {
		tsan_release(&s->punchq_sync);
		cds_lfs_push(&s->punchq, &cl->punch);
	}
}

/* ======================================================================
 * Same-filled pages. Encoding: any context; table insert: normal context.
 * ====================================================================== */

static bool page_same(const void *page, uint64_t *word)
{
	const uint64_t *w = page;
	uint64_t v = w[0];

	for (unsigned i = 1; i < PAGE / 8; i++)
		if (w[i] != v)
			return false;
	*word = v;
	return true;
}

static int same_encode(struct swb *s, uint64_t word, uint64_t *h)
{
	uint64_t sx = (uint64_t)((int64_t)(word << 3) >> 3);
	unsigned i = (unsigned)(XXH3_64bits(&word, sizeof(word)) % SWB_SAME_TABLE);

	if (sx == word) {
		*h = mkhandle(SWB_TIER_SAME, word & (H_SAME_TABLE - 1));
		return 0;
	}
	for (unsigned n = 0; n < SAME_PROBES; n++, i = (i + 1) % SWB_SAME_TABLE) {
		/* acquire: pairs with the release that made the entry ready */
		uint8_t st = atomic_load_explicit(&s->same_state[i], memory_order_acquire);

		if (st == 0) {
			/* seq_cst CAS: claims the entry against other stores */
			if (!atomic_compare_exchange_strong(&s->same_state[i], &st, 1))
				continue;
			/* relaxed: published by the release store below */
			atomic_store_explicit(&s->same_word[i], word, memory_order_relaxed);
			/* release: pairs with the acquire above and in same_decode */
			atomic_store_explicit(&s->same_state[i], 2, memory_order_release);
			st = 2;
		}
		/* relaxed: ordered after the acquire load of same_state */
		if (st == 2 && atomic_load_explicit(&s->same_word[i], memory_order_relaxed) == word) {
			*h = mkhandle(SWB_TIER_SAME, H_SAME_TABLE | i);
			return 0;
		}
	}
	return -ENOSPC;                     /* table crowded: store it elsewhere */
}

/* Signal-safe. */
static int same_decode(struct swb *s, uint64_t h, uint64_t *word)
{
	unsigned i = (unsigned)(h & (SWB_SAME_TABLE - 1));

	if (!(h & H_SAME_TABLE)) {
		*word = (uint64_t)((int64_t)(h << 3) >> 3);
		return 0;
	}
	/* acquire: pairs with the release in same_encode */
	if ((h & ~mkhandle(SWB_TIER_SAME, H_SAME_TABLE)) >= SWB_SAME_TABLE ||
	    atomic_load_explicit(&s->same_state[i], memory_order_acquire) != 2)
		return -EINVAL;
	*word = atomic_load_explicit(&s->same_word[i], memory_order_relaxed);
	return 0;
}

/* ======================================================================
 * Compressed tier. Store and reap: normal context, under z->lock.
 * Load and release: signal-safe, no lock.
 * ====================================================================== */

static void zslab_link(struct ztier *z, struct zslab *sl)
{
	sl->prev = NULL;
	sl->next = z->partial[sl->cls];
	if (sl->next)
		sl->next->prev = sl;
	z->partial[sl->cls] = sl;
}

static void zslab_unlink(struct ztier *z, struct zslab *sl)
{
	if (sl->prev)
		sl->prev->next = sl->next;
	else
		z->partial[sl->cls] = sl->next;
	if (sl->next)
		sl->next->prev = sl->prev;
}

static void *zslab_alloc(struct ztier *z, unsigned cls)
{
	struct zslab *sl = z->partial[cls];
	unsigned size = (cls + 1) * Z_GRAN;
	void *obj;

	if (!sl) {
		/* relaxed: only written under z->lock, which we hold */
		if (atomic_load_explicit(&z->slab_bytes, memory_order_relaxed) + Z_SLAB > z->cap)
			return NULL;
		sl = aligned_alloc(Z_SLAB, Z_SLAB);
		if (!sl)
			return NULL;
		*sl = (struct zslab){ .cap = (Z_SLAB - Z_SLAB_HDR) / size, .cls = cls };
		zslab_link(z, sl);
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
		zslab_unlink(z, sl);
	return obj;
}

static void zslab_free(struct ztier *z, void *obj)
{
	struct zslab *sl = (struct zslab *)((uintptr_t)obj & ~(uintptr_t)(Z_SLAB - 1));

	if (sl->used-- == sl->cap)
		zslab_link(z, sl);
	if (!sl->used) {
		zslab_unlink(z, sl);
		free(sl);
		/* relaxed: written under z->lock; swb_usage reads a snapshot */
		atomic_fetch_sub_explicit(&z->slab_bytes, Z_SLAB, memory_order_relaxed);
		return;
	}
	*(void **)obj = sl->free;
	sl->free = obj;
}

/* Free released entries. Normal context. */
static void ztier_reap(struct ztier *z)
{
	struct cds_lfs_head *head;
	struct cds_lfs_node *node, *next;

	if (!z->cap || cds_lfs_empty(&z->deadq))
		return;
	head = __cds_lfs_pop_all(&z->deadq);
	tsan_acquire(&z->deadq_sync);
	pthread_mutex_lock(&z->lock);
	for (node = head ? &head->node : NULL; node; node = next) {
		struct zent *e = caa_container_of(node, struct zent, dead);

		next = node->next;
		zslab_free(z, e->data);
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
	pthread_mutex_unlock(&z->lock);
}

/* Compress page into the tier. Returns 0 with *h, -E2BIG (incompressible)
 * or -ENOSPC (tier full). */
static int ztier_put(struct swb_ctx *c, const void *page, uint64_t csum, uint64_t *h)
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
	pthread_mutex_lock(&z->lock);
	idx = z->free_ent;
	if (idx != Z_NONE)
		z->free_ent = z->ent[idx].next_free;
	else if (z->next_ent < z->nent)
		idx = z->next_ent++;
	if (idx != Z_NONE)
		obj = zslab_alloc(z, (unsigned)(clen - 1) / Z_GRAN);
	if (!obj) {
		if (idx != Z_NONE) {
			z->ent[idx].next_free = z->free_ent;
			z->free_ent = idx;
		}
		/* relaxed: a hint (see ztier_reap) */
		atomic_store_explicit(&z->full, true, memory_order_relaxed);
		pthread_mutex_unlock(&z->lock);
		return -ENOSPC;
	}
	/* relaxed: a counter, written under z->lock */
	atomic_fetch_add_explicit(&z->entries, 1, memory_order_relaxed);
	pthread_mutex_unlock(&z->lock);

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
	*h = mkhandle(SWB_TIER_Z, idx);
	return 0;
}

/* Signal-safe. Returns 0, -EIO (injected), -EBADMSG or -EINVAL. */
static int ztier_get(struct ztier *z, uint64_t idx, void *dst)
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

/* ======================================================================
 * io_uring helpers (async-signal-safe: io_uring_enter only).
 * ====================================================================== */

/* Submit everything queued and wait for want completions to be ready. */
static int ring_submit(struct swb_ctx *c, unsigned want)
{
	int ret;

	for (;;) {
		ret = io_uring_submit_and_wait(&c->ring, want);
		if (ret >= 0 || ret == -EINTR) {
			if (!io_uring_sq_ready(&c->ring))
				return 0;       /* all submitted; waits retry below */
			continue;
		}
		if (ret != -EAGAIN) {
			c->broken = true;       /* SQEs may be left queued */
			return ret;
		}
	}
}

static int ring_wait(struct swb_ctx *c, struct io_uring_cqe **cqe)
{
	int ret;

	do
		ret = io_uring_wait_cqe(&c->ring, cqe);
	while (ret == -EINTR);
	if (ret)
		c->broken = true;
	return ret;
}

/* ======================================================================
 * Store (normal context).
 * ====================================================================== */

/* Is p one of the context's registered pages? Then *k is its index. */
static bool in_bufs(struct swb_ctx *c, const void *p, unsigned *k)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)c->bufs;

	if ((uintptr_t)p < (uintptr_t)c->bufs || off >= (size_t)c->nbufs * PAGE || off % PAGE)
		return false;
	*k = (unsigned)(off / PAGE);
	return true;
}

/* Release what this batch stored and free it now (after a write error). */
static void store_undo(struct swb_ctx *c, uint64_t handles[], unsigned n)
{
	unsigned reaped;

	for (unsigned i = 0; i < n; i++) {
		swb_release(c->s, handles[i]);
		handles[i] = 0;
	}
	reap_clusters(c->s, &reaped);
	ztier_reap(&c->s->z);
}

int swb_store(struct swb_ctx *c, const void *const pages[], unsigned n, uint64_t handles[])
{
	struct swb *s = c->s;
	uint64_t issrc[SWB_MAX_BUFS / 64] = { 0 };
	unsigned i, k, nfile = 0, reaped, nz = 0, nsame = 0, nextb = 0;
	int err = 0;

	if (n > c->nbufs)
		return -EINVAL;
	if (ctx_enter(c))
		return -EBUSY;
	if (c->broken) {
		ctx_exit(c);
		return -EIO;
	}
	reap_clusters(s, &reaped);
	ztier_reap(&s->z);
	/* registered pages that are sources are written from where they are
	 * and never used as bounce pages for the others */
	for (i = 0; i < n; i++)
		if (in_bufs(c, pages[i], &k))
			issrc[k / 64] |= 1ull << (k % 64);
	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe;
		uint64_t word, csum;
		int64_t slot;
		char *buf;

		if (page_same(pages[i], &word) && same_encode(s, word, &handles[i]) == 0) {
			/* relaxed: a counter for swb_usage */
			atomic_fetch_add_explicit(&s->same_live, 1, memory_order_relaxed);
			nsame++;
			continue;
		}
		csum = XXH3_64bits(pages[i], PAGE);
		if (ztier_put(c, pages[i], csum, &handles[i]) == 0) {
			nz++;
			continue;
		}
		if (__builtin_expect(inject_on(), 0) && inject_hit(INJ_ENOSPC))
			slot = -ENOSPC;     /* as if the disk were full */
		else
			slot = slot_alloc(c);
		if (slot < 0) {
			err = (int)slot;
			break;              /* full: pages [i, n) are not stored */
		}
		if (!in_bufs(c, pages[i], &k)) {
			while (issrc[nextb / 64] & (1ull << (nextb % 64)))
				nextb++;
			k = nextb++;        /* enough: n <= nbufs */
			memcpy(c->bufs + (size_t)k * PAGE, pages[i], PAGE);
		}
		buf = c->bufs + (size_t)k * PAGE;
		s->csum[slot] = csum;
		/* relaxed: a test hook, see swb_load */
		atomic_store_explicit(&s->inject[slot], 0, memory_order_relaxed);
		sqe = io_uring_get_sqe(&c->ring);   /* qd >= nbufs: never NULL */
		io_uring_prep_write_fixed(sqe, 0, buf, PAGE, (uint64_t)slot * PAGE, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
		handles[i] = mkhandle(SWB_TIER_FILE, (uint64_t)slot);
		nfile++;
	}
	for (k = i; k < n; k++)
		handles[k] = 0;
	if (nfile) {
		struct io_uring_cqe *cqe;
		int werr = ring_submit(c, nfile);

		/* reap every completion, failed or not: none may be left for
		 * the next batch to mistake for its own */
		for (unsigned seen = 0; !c->broken && seen < nfile; seen++) {
			int res;

			if (ring_wait(c, &cqe)) {
				werr = -EIO;
				break;
			}
			res = cqe->res;
			if (__builtin_expect(inject_on(), 0))
				res = inject_io_res(res, INJ_WRITE);
			if (res != (int)PAGE && !werr)  /* error or short write */
				werr = res < 0 ? res : -EIO;
			io_uring_cqe_seen(&c->ring, cqe);
		}
		if (werr) {
			CSTAT(c, io_errors, 1);
			store_undo(c, handles, i);
			ctx_exit(c);
			return -EIO;
		}
	}
	CSTAT(c, stores_file, nfile);
	CSTAT(c, bytes_written, (uint64_t)nfile * PAGE);
	CSTAT(c, stores_ztier, nz);
	CSTAT(c, stores_same, nsame);
	ctx_exit(c);
	return i == 0 && n ? err : (int)i;
}

/* ======================================================================
 * Load (async-signal-safe).
 * ====================================================================== */

/* Worst error wins: -EIO, then -EBADMSG, then -EINVAL. */
static void load_fail(uint64_t *failed, unsigned i, int *err, int e)
{
	*failed |= 1ull << i;
	if (*err != -EIO && (e == -EIO || *err != -EBADMSG))
		*err = e;
}

int swb_load(struct swb_ctx *c, const uint64_t handles[], unsigned n, void *const dst[],
	     uint64_t *failed)
{
	struct swb *s = c->s;
	uint64_t isdst[SWB_MAX_BUFS / 64] = { 0 };
	unsigned bufk[SWB_MAX_BATCH], nfile = 0, nz = 0, nsame = 0, nextb = 0, k;
	int err = 0;

	*failed = 0;
	if (n > SWB_MAX_BATCH || n > c->nbufs)
		return -EINVAL;
	if (ctx_enter(c))
		return -EBUSY;
	/* registered pages that are destinations are never bounce pages */
	for (unsigned i = 0; i < n; i++)
		if (in_bufs(c, dst[i], &k))
			isdst[k / 64] |= 1ull << (k % 64);
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = handles[i], idx = h & SLOT_MASK, word;
		struct io_uring_sqe *sqe;
		int r;

		switch (h >> SWB_TIER_SHIFT) {
		case SWB_TIER_SAME:
			if (same_decode(s, h, &word)) {
				load_fail(failed, i, &err, -EINVAL);
				continue;
			}
			for (unsigned w = 0; w < PAGE / 8; w++)
				((uint64_t *)dst[i])[w] = word;
			nsame++;
			continue;
		case SWB_TIER_Z:
			r = ztier_get(&s->z, idx, dst[i]);
			if (r == -EBADMSG)
				CSTAT(c, csum_errors, 1);
			else if (r == -EIO)
				CSTAT(c, io_errors, 1);
			if (r)
				load_fail(failed, i, &err, r);
			nz++;
			continue;
		case SWB_TIER_FILE:
			break;
		default:
			load_fail(failed, i, &err, -EINVAL);
			continue;
		}
		if (idx >= s->nslots || c->broken) {
			load_fail(failed, i, &err, c->broken ? -EIO : -EINVAL);
			continue;
		}
		/* relaxed: a test hook set before the load was asked for */
		if (atomic_load_explicit(&s->inject[idx], memory_order_relaxed) &&
		    atomic_exchange_explicit(&s->inject[idx], 0, memory_order_relaxed)) {
			CSTAT(c, io_errors, 1);
			load_fail(failed, i, &err, -EIO);
			continue;
		}
		if (!in_bufs(c, dst[i], &k)) {
			while (isdst[nextb / 64] & (1ull << (nextb % 64)))
				nextb++;
			k = nextb++;            /* enough: n <= nbufs */
		}
		bufk[i] = k;
		sqe = io_uring_get_sqe(&c->ring);   /* qd >= nbufs >= n */
		io_uring_prep_read_fixed(sqe, 0, c->bufs + (size_t)k * PAGE, PAGE, idx * PAGE, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
		sqe->user_data = i;
		nfile++;
	}
	if (nfile) {
		struct io_uring_cqe *cqe;
		unsigned seen = 0;
		int r = ring_submit(c, nfile);

		for (; !r && seen < nfile; seen++) {
			unsigned i;
			char *buf;
			int res;

			r = ring_wait(c, &cqe);
			if (r)
				break;
			i = (unsigned)cqe->user_data;
			buf = c->bufs + (size_t)bufk[i] * PAGE;
			res = cqe->res;
			if (__builtin_expect(inject_on(), 0)) {
				res = inject_io_res(res, INJ_READ);
				if (res == (int)PAGE && inject_hit(INJ_CSUM))
					buf[PAGE - 1] ^= 0x5a;    /* the checksum must catch it */
			}
			if (res != (int)PAGE) {        /* error or short read */
				CSTAT(c, io_errors, 1);
				load_fail(failed, i, &err, -EIO);
			} else if (XXH3_64bits(buf, PAGE) != s->csum[handles[i] & SLOT_MASK]) {
				CSTAT(c, csum_errors, 1);
				load_fail(failed, i, &err, -EBADMSG);
			} else if (buf != dst[i]) {
				memcpy(dst[i], buf, PAGE);
			}
			io_uring_cqe_seen(&c->ring, cqe);
		}
		if (r) {
			/* the ring is broken: every read not reaped failed */
			for (unsigned i = 0; i < n; i++)
				if (swb_handle_is_file(handles[i]))
					load_fail(failed, i, &err, -EIO);
		}
		CSTAT(c, loads_file, nfile);
		CSTAT(c, bytes_read, (uint64_t)nfile * PAGE);
	}
	CSTAT(c, loads_ztier, nz);
	CSTAT(c, loads_same, nsame);
	ctx_exit(c);
	return err;
}

/* ======================================================================
 * Release (async-signal-safe, lock-free) and maintenance (normal context).
 * ====================================================================== */

void swb_release(struct swb *s, uint64_t h)
{
	uint64_t idx = h & SLOT_MASK;

	switch (h >> SWB_TIER_SHIFT) {
	case SWB_TIER_SAME:
		/* relaxed: a counter for swb_usage */
		atomic_fetch_sub_explicit(&s->same_live, 1, memory_order_relaxed);
		break;
	case SWB_TIER_Z:
		if (idx < s->z.nent) {
			struct zent *e = &s->z.ent[idx];
			uint8_t st = Z_LIVE;

			/* relaxed CAS: the push's cmpxchg (a full barrier) orders it
			 * before the reaper's xchg in pop_all */
			if (atomic_compare_exchange_strong_explicit(&e->state, &st, Z_DEAD,
					memory_order_relaxed, memory_order_relaxed)) {
				tsan_release(&s->z.deadq_sync);
				cds_lfs_push(&s->z.deadq, &e->dead);
			}
		}
		break;
	case SWB_TIER_FILE:
		if (idx < s->nslots)
			slot_free(s, idx);
		break;
	}
}

int swb_maintain(struct swb *s)
{
	unsigned reaped;
	int err = reap_clusters(s, &reaped);

	ztier_reap(&s->z);
	return err;
}

void swb_usage(struct swb *s, struct swb_usage *u)
{
	/* relaxed, here and below: counters and a snapshot, pairing with nothing */
	int64_t same = atomic_load_explicit(&s->same_live, memory_order_relaxed);

	memset(u, 0, sizeof(*u));
	u->file_slots_total = s->nslots;
	for (uint32_t k = 0; k < s->nclusters; k++)
		u->file_slots_used += (uint64_t)__builtin_popcountll(
			atomic_load_explicit(&s->cl[k].used, memory_order_relaxed));
	u->ztier_bytes_cap = s->z.cap;
	u->ztier_bytes_used = atomic_load_explicit(&s->z.slab_bytes, memory_order_relaxed);
	u->ztier_entries = atomic_load_explicit(&s->z.entries, memory_order_relaxed);
	u->ztier_raw_bytes = u->ztier_entries * PAGE;
	u->same_filled = same > 0 ? (uint64_t)same : 0;
	u->punched_clusters = atomic_load_explicit(&s->punched, memory_order_relaxed);
	u->file_direct = s->direct;
	/* relaxed: counters; each has one writer */
	pthread_mutex_lock(&s->ctx_lock);
#define X(f) u->f = atomic_load_explicit(&s->gone.f, memory_order_relaxed);
	CTX_STATS(X)
#undef X
	for (struct swb_ctx *c = s->ctxs; c; c = c->next) {
#define X(f) u->f += atomic_load_explicit(&c->st.f, memory_order_relaxed);
		CTX_STATS(X)
#undef X
	}
	pthread_mutex_unlock(&s->ctx_lock);
}

/* ======================================================================
 * Test hooks (normal context).
 * ====================================================================== */

int swb_inject(struct swb *s, uint64_t h, int what)
{
	uint64_t idx = h & SLOT_MASK;
	void *garbage;
	int err = 0;

	if (what != SWB_INJECT_EIO && what != SWB_INJECT_CORRUPT)
		return -EINVAL;
	if (swb_handle_is_ztier(h)) {
		struct zent *e = idx < s->z.nent ? &s->z.ent[idx] : NULL;

		if (!e || atomic_load_explicit(&e->state, memory_order_relaxed) != Z_LIVE)
			return -EINVAL;
		/* relaxed: the test orders it before the load it asks for */
		if (what == SWB_INJECT_EIO)
			atomic_store_explicit(&e->inject, 1, memory_order_relaxed);
		else
			((unsigned char *)e->data)[e->clen / 2] ^= 0xff;
		return 0;
	}
	if (!swb_handle_is_file(h) || idx >= s->nslots)
		return -EINVAL;
	if (what == SWB_INJECT_EIO) {
		/* relaxed: the test orders it before the load it asks for */
		atomic_store_explicit(&s->inject[idx], 1, memory_order_relaxed);
		return 0;
	}
	if (posix_memalign(&garbage, PAGE, PAGE))
		return -ENOMEM;
	memset(garbage, 0xa5, PAGE);
	if (pwrite(s->fd, garbage, PAGE, (off_t)(idx * PAGE)) != (ssize_t)PAGE)
		err = -EIO;
	free(garbage);
	return err;
}

int swb_fd(struct swb *s)
{
	return s->fd;
}

/* ======================================================================
 * Setup and teardown (normal context).
 * ====================================================================== */

/* Open the O_TMPFILE, size it, probe fallocate, punching and O_DIRECT. */
static int file_open(struct swb *s, const char *dir)
{
	void *probe = NULL;
	int err;

	s->direct = true;
	s->fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	if (s->fd < 0 && errno == EINVAL) {         /* O_DIRECT refused */
		s->direct = false;
		s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	}
	if (s->fd < 0) {
		err = errno;
		if (err == EOPNOTSUPP || err == EISDIR) {
			detail("the filesystem of %s does not support O_TMPFILE (needed so the "
			       "swap file is private and leaves nothing behind)", dir);
			return -EOPNOTSUPP;
		}
		detail("cannot create a swap file in %s: %s", dir, strerror(err));
		return -err;
	}
	if (ftruncate(s->fd, (off_t)(s->nslots * PAGE))) {
		err = -errno;
		detail("cannot size the swap file in %s to %llu bytes: %s", dir,
		       (unsigned long long)(s->nslots * PAGE), strerror(-err));
		return err;
	}
	/* blocks are reserved per cluster; probe with the first one */
	s->can_falloc = fallocate(s->fd, 0, 0, (off_t)CL_BYTES) == 0;
	if (!s->can_falloc && errno == ENOSPC) {
		detail("no space in %s for the swap file", dir);
		return -ENOSPC;
	}
	if (s->direct) {
		if (posix_memalign(&probe, PAGE, PAGE))
			return -ENOMEM;
		memset(probe, 0, PAGE);
		if (pwrite(s->fd, probe, PAGE, 0) != (ssize_t)PAGE ||
		    pread(s->fd, probe, PAGE, 0) != (ssize_t)PAGE) {
			/* accepted at open, refused at I/O: go buffered */
			s->direct = false;
			if (fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) & ~O_DIRECT)) {
				err = -errno;
				free(probe);
				detail("cannot clear O_DIRECT on the swap file: %s", strerror(-err));
				return err;
			}
		}
		free(probe);
	}
	s->can_punch = fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 0, (off_t)CL_BYTES) == 0;
	return 0;
}

static int ztier_init(struct ztier *z, uint64_t cap)
{
	uint64_t nent = cap / Z_GRAN + 1;

	z->cap = cap;
	z->free_ent = Z_NONE;
	__cds_lfs_init(&z->deadq);
	pthread_mutex_init(&z->lock, NULL);
	if (!cap)
		return 0;
	if (nent >= Z_NONE) {
		detail("ztier_size %llu is too large", (unsigned long long)cap);
		return -EINVAL;
	}
	z->nent = (uint32_t)nent;
	/* untouched entries cost nothing: the free list reuses low ones */
	z->ent = mmap(NULL, nent * sizeof(*z->ent), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (z->ent == MAP_FAILED) {
		z->ent = NULL;
		return -ENOMEM;
	}
	return 0;
}

int swb_create(const struct swb_params *p, struct swb **out)
{
	static const struct swb_params defaults;
	const struct swb_params *pp = p ? p : &defaults;
	const char *dir = pp->dir ? pp->dir : "/var/tmp";
	uint64_t size = pp->file_size ? pp->file_size : 1ull << 30;
	uint64_t ncl = (size + CL_BYTES - 1) / CL_BYTES;
	struct swb *s;
	int err;

	if (pp->ctx_bufs > SWB_MAX_BUFS || ncl > UINT32_MAX / 2) {
		detail("ctx_bufs must be at most %u and the file below 2^43 bytes",
		       SWB_MAX_BUFS);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->nbufs = pp->ctx_bufs ? pp->ctx_bufs : 32;
	s->qd = pp->queue_depth ? pp->queue_depth : 64;
	if (s->qd < s->nbufs)
		s->qd = s->nbufs;           /* one batch always fits one submit */
	s->nclusters = (uint32_t)ncl;
	s->nslots = ncl * CL_SLOTS;
	s->nfreewords = (uint32_t)((ncl + 63) / 64);
	__cds_lfs_init(&s->punchq);
	pthread_mutex_init(&s->ctx_lock, NULL);
	s->cl = calloc(ncl, sizeof(*s->cl));
	s->freemap = calloc(s->nfreewords, sizeof(*s->freemap));
	s->csum = calloc(s->nslots, sizeof(*s->csum));
	s->inject = calloc(s->nslots, sizeof(*s->inject));
	err = -ENOMEM;
	if (!s->cl || !s->freemap || !s->csum || !s->inject)
		goto fail;
	for (uint32_t k = 0; k < ncl; k++)
		freemap_put(s, k);
	err = ztier_init(&s->z, pp->ztier_size);
	if (err)
		goto fail;
	err = file_open(s, dir);
	if (err)
		goto fail;
	*out = s;
	return 0;
fail:
	if (err == -ENOMEM)     /* the ENOMEM paths leave no detail of their own */
		detail("out of memory");
	swb_destroy(s);
	return err;
}

void swb_destroy(struct swb *s)
{
	if (!s)
		return;
	if (s->z.ent) {
		ztier_reap(&s->z);
		for (uint32_t i = 0; i < s->z.next_ent; i++)
			/* relaxed: no context is left; nothing runs concurrently */
			if (atomic_load_explicit(&s->z.ent[i].state, memory_order_relaxed) != Z_FREE)
				zslab_free(&s->z, s->z.ent[i].data);
		munmap(s->z.ent, (size_t)s->z.nent * sizeof(*s->z.ent));
	}
	pthread_mutex_destroy(&s->z.lock);
	pthread_mutex_destroy(&s->ctx_lock);
	free(s->cl);
	free(s->freemap);
	free(s->csum);
	free(s->inject);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static void ring_detail(int err)
{
	char v[16] = "?";
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t r = read(fd, v, sizeof(v) - 1);

		v[r > 0 ? r : 0] = 0;
		v[strcspn(v, "\n")] = 0;
		close(fd);
	}
	detail("io_uring unavailable (%s; kernel.io_uring_disabled=%s): the swap file needs "
	       "it; a seccomp profile (containers) may also block it", strerror(-err), v);
}

/*
 * The ring may do exactly what swb_store and swb_load ask of it: read and
 * write through the registered file (IOSQE_FIXED_FILE required) with the
 * registered buffers. It is created disabled, gets its buffers and file,
 * is restricted, then enabled; no register operation is allowed after
 * that (none is needed: the file and buffers never change). A kernel
 * without IORING_SETUP_R_DISABLED (before 5.10) gets an unrestricted ring.
 */
static int ring_restrict(struct io_uring *ring)
{
	struct io_uring_restriction res[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READ_FIXED },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITE_FIXED },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_FIXED_FILE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
	};
	/* the system call itself: Debian's liburing 2.3 declares
	 * io_uring_register_restrictions / io_uring_enable_rings but its
	 * shared library does not export them */
	if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_RESTRICTIONS, res,
		    (unsigned)(sizeof(res) / sizeof(res[0]))) < 0 ||
	    syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
		return -errno;
	return 0;
}

int swb_ctx_create(struct swb *s, struct swb_ctx **out)
{
	struct io_uring_params prm = { .flags = IORING_SETUP_R_DISABLED };
	struct swb_ctx *c = calloc(1, sizeof(*c));
	struct iovec iov;
	int err;

	if (!c)
		return -ENOMEM;
	c->s = s;
	c->nbufs = s->nbufs;
	c->cl = UINT32_MAX;
	c->lz4state = malloc((size_t)LZ4_sizeofState());
	c->zbuf = malloc(Z_MAX_CLEN);
	c->bufs = mmap(NULL, (size_t)c->nbufs * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (c->bufs == MAP_FAILED || !c->lz4state || !c->zbuf) {
		if (c->bufs != MAP_FAILED)
			munmap(c->bufs, (size_t)c->nbufs * PAGE);
		free(c->lz4state);
		free(c->zbuf);
		free(c);
		detail("out of memory for a context");
		return -ENOMEM;
	}
	err = io_uring_queue_init_params(s->qd, &c->ring, &prm);
	if (err == -EINVAL) {
		prm = (struct io_uring_params){ .flags = 0 };
		err = io_uring_queue_init_params(s->qd, &c->ring, &prm);
	}
	if (err) {
		ring_detail(err);
		goto fail_ring;
	}
	iov.iov_base = c->bufs;
	iov.iov_len = (size_t)c->nbufs * PAGE;
	if ((err = io_uring_register_buffers(&c->ring, &iov, 1)) ||
	    (err = io_uring_register_files(&c->ring, &s->fd, 1))) {
		detail("io_uring buffer/file registration failed: %s%s", strerror(-err),
		       err == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
		io_uring_queue_exit(&c->ring);
		goto fail_ring;
	}
	if ((c->ring.flags & IORING_SETUP_R_DISABLED) && (err = ring_restrict(&c->ring))) {
		detail("io_uring ring restriction failed: %s", strerror(-err));
		io_uring_queue_exit(&c->ring);
		goto fail_ring;
	}
	pthread_mutex_lock(&s->ctx_lock);
	c->next = s->ctxs;
	s->ctxs = c;
	pthread_mutex_unlock(&s->ctx_lock);
	*out = c;
	return 0;
fail_ring:
	munmap(c->bufs, (size_t)c->nbufs * PAGE);
	free(c->lz4state);
	free(c->zbuf);
	free(c);
	return err;
}

void swb_ctx_destroy(struct swb_ctx *c)
{
	struct swb *s;

	if (!c)
		return;
	s = c->s;
	if (c->cl != UINT32_MAX)
		cluster_detach(s, c->cl);
	pthread_mutex_lock(&s->ctx_lock);
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
	pthread_mutex_unlock(&s->ctx_lock);
	io_uring_queue_exit(&c->ring);
	munmap(c->bufs, (size_t)c->nbufs * PAGE);
	free(c->lz4state);
	free(c->zbuf);
	free(c);
}

void *swb_ctx_buf(struct swb_ctx *c, unsigned i)
{
	return c->bufs + (size_t)i * PAGE;
}

unsigned swb_ctx_nbufs(struct swb_ctx *c)
{
	return c->nbufs;
}

#ifdef UFP_INTERNAL_TESTING
struct io_uring *swb_ctx_ring(struct swb_ctx *c)
{
	return &c->ring;
}
#endif
