/* SPDX-License-Identifier: MIT */
/*
 * swap_internal.h - what the swap backend's files share; included by the
 * swap_*.c files only (everyone else uses swap_backend.h). The objects
 * (struct swb and its parts, struct swb_ctx), the sizes, the per-context
 * counters, and the calls each part offers the one above it.
 *
 * Layers: an arrow is "calls"; none runs back up, parts never call the
 * interface, and the handle encoding is known to swap_backend.c alone.
 *
 *   swap_backend.c   the interface (swb_*): handles, dispatch to the tiers,
 *    |               contexts, counters
 *    +-> swap_same.c    same-filled pages (same_*)
 *    +-> swap_ztier.c   the lz4 tier and its slab allocator (ztier_*)
 *    +-> swap_slots.c   clusters and slots of the file or export (slots_*)
 *    |    +-> swap_file.c, swap_nbd.c
 *    +-> swap_file.c    the O_TMPFILE file, io_uring rings (swfile_*)
 *    +-> swap_nbd.c     or an NBD export: connections, the loop (swnbd_*),
 *        swap_nbd_io.c  and the contexts' side: requests, readahead
 *
 * Concurrency: every call says its context. Loads and releases are
 * async-signal-safe all the way down; whatever allocates or takes a mutex
 * runs in normal context (see swap_backend.h).
 */
#ifndef UFP_SWAP_INTERNAL_H
#define UFP_SWAP_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <urcu/lfstack.h>

#include "swap_backend.h"

#define PAGE SWB_PAGE_SIZE
#define CL_SLOTS 64u                 /* slots per cluster (the kernel's) */
#define CL_BYTES ((uint64_t)CL_SLOTS * PAGE)

/* Every detail the backend gives ufp_last_error() starts with this. */
#define SWB_ERR "ufpager: swap backend: "

#define Z_MAX_CLEN (PAGE * 3 / 4)    /* store in the tier only at <= 3/4 page */
#define Z_GRAN 64u                   /* size-class granule */
#define Z_CLASSES (Z_MAX_CLEN / Z_GRAN)
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

/* ======================================================================
 * Objects.
 * ====================================================================== */

/* The swap file (swap_file.c). Written by swfile_open only. */
struct swfile {
	int fd;
	bool direct, can_falloc, can_punch;
};

enum { CL_FREE, CL_OWNED, CL_DETACHED, CL_PUNCH };

/* Invariant: only the OWNED cluster's owner sets bits in used; a cluster
 * is on punchq iff its state is CL_PUNCH; its freemap bit is set iff its
 * state is CL_FREE and nobody took it. */
struct cluster {
	_Atomic uint64_t used;           /* bit per slot in use */
	_Atomic uint32_t state;
	struct cds_lfs_node punch;       /* on slots.punchq while CL_PUNCH */
};

/* The file's clusters and slots (swap_slots.c), and per-slot metadata. */
struct slots {
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
};

/* Insert-only table of fill words (swap_same.c). */
struct same_table {
	_Atomic uint64_t word[SWB_SAME_TABLE];
	_Atomic uint8_t state[SWB_SAME_TABLE];  /* 0 empty, 1 filling, 2 ready */
	_Atomic int64_t live;            /* live same-filled handles */
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

struct zslab;

/* The compressed tier (swap_ztier.c). */
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

struct nbdq;

struct swb {
	unsigned nbufs, qd;
	struct swfile f;                 /* fd -1 when the slots are on NBD */
	struct nbdq *nbd;                /* NULL: the file */
	struct slots sl;
	struct same_table same;
	struct ztier z;
	pthread_mutex_t ctx_lock;        /* ctx list and gone */
	struct swb_ctx *ctxs;
	struct ctx_stats gone;
};

/* One thread's I/O context. Fields are grouped by the file that owns them. */
struct swb_ctx {
	struct swb *s;
	struct swb_ctx *next;            /* swb.ctxs, under ctx_lock */
	_Atomic int busy;                /* inside store/load (re-entry guard) */
	struct ctx_stats st;
	/* swap_file.c */
	struct io_uring ring;
	char *bufs;                      /* nbufs registered bounce pages */
	unsigned nbufs;
	bool broken;                     /* a submit failed: ring state unknown */
	/* swap_nbd.c (bufs above too) */
	struct nbd_req *nreqs;           /* nbufs requests: a batch's runs */
	unsigned nreq;                   /* queued in this batch */
	_Atomic uint32_t npending;       /* in flight; futex word */
	uint16_t *ktag;                  /* reads: bounce page -> caller's tag */
	uint64_t *kslot;                 /* reads: bounce page -> slot */
	uint16_t *rk;                    /* reads: bounce pages in prep order */
	unsigned nrk;
	/* swap_slots.c */
	uint32_t cl;                     /* owned cluster, UINT32_MAX: none */
	/* swap_ztier.c */
	void *lz4state;
	char *zbuf;                      /* compression output, Z_MAX_CLEN */
};

/* ======================================================================
 * swap_same.c: same-filled pages. put: normal context; get, release:
 * async-signal-safe. A payload is the handle less its tier bits.
 * ====================================================================== */

/* 0 and *payload when every word of page is equal and the table can name
 * it; -E2BIG (not same-filled) or -ENOSPC (table crowded) otherwise. */
int same_put(struct same_table *t, const void *page, uint64_t *payload);
/* Fill dst with the page of payload. 0 or -EINVAL (unknown table entry). */
int same_get(struct same_table *t, uint64_t payload, void *dst);
void same_release(struct same_table *t);
void same_usage(struct same_table *t, struct swb_usage *u);

/* ======================================================================
 * swap_ztier.c: the lz4 tier. init/fini, put, reap, inject: normal
 * context (put and reap take z->lock); get and release: async-signal-safe.
 * ====================================================================== */

int ztier_init(struct ztier *z, uint64_t cap);  /* 0 or -ENOMEM */
void ztier_fini(struct ztier *z);               /* no context left */
int ztier_ctx_init(struct swb_ctx *c);          /* 0 or -ENOMEM */
void ztier_ctx_fini(struct swb_ctx *c);
/* Compress page into the tier. Returns 0 with *idx, -E2BIG
 * (incompressible) or -ENOSPC (tier full or off). */
int ztier_put(struct swb_ctx *c, const void *page, uint64_t csum, uint32_t *idx);
/* Returns 0, -EIO (injected), -EBADMSG or -EINVAL. */
int ztier_get(struct ztier *z, uint64_t idx, void *dst);
void ztier_release(struct ztier *z, uint64_t idx);   /* lock-free */
void ztier_reap(struct ztier *z);                    /* frees released entries */
int ztier_inject(struct ztier *z, uint64_t idx, int what);
void ztier_usage(struct ztier *z, struct swb_usage *u);

/* ======================================================================
 * swap_slots.c: clusters and slots. init/fini, alloc, reap, ctx_release:
 * normal context; free: async-signal-safe, lock-free, any thread.
 * ====================================================================== */

int slots_init(struct swb *s, uint64_t nclusters);   /* 0 or -ENOMEM */
void slots_fini(struct swb *s);
/* A free slot from the context's cluster; -ENOSPC or -errno of fallocate. */
int64_t slots_alloc(struct swb_ctx *c);
void slots_free(struct swb *s, uint64_t slot);
/* The context gives its cluster up (it goes away). */
void slots_ctx_release(struct swb_ctx *c);
/* Punch emptied clusters and return them to the pool: 0 or -errno of the
 * first failed punch (the cluster is returned anyway). */
int slots_reap(struct swb *s);
void slots_usage(struct slots *sl, struct swb_usage *u);

/* ======================================================================
 * swap_file.c: the file and the rings. open/close, ctx_init/fini,
 * cluster_reserve/punch, corrupt: normal context; the rest is
 * async-signal-safe (io_uring_enter only) on a context the caller holds.
 * ====================================================================== */

/* Open, size and probe the file; the detail of a failure goes to
 * ufp_last_error(). 0 or -errno (see swb_create). */
int swfile_open(struct swfile *f, const char *dir, uint64_t size);
void swfile_close(struct swfile *f);
/* Bounce pages and a restricted ring for c (c->nbufs pages, c->s->qd
 * entries); the detail of a failure goes to ufp_last_error(). */
int swfile_ctx_init(struct swb_ctx *c);
void swfile_ctx_fini(struct swb_ctx *c);
/* Reserve cluster k's blocks: 0 or -errno (-ENOSPC: disk full). */
int swfile_cluster_reserve(struct swfile *f, uint32_t k);
/* Punch cluster k out: 1 punched, 0 not supported, -errno. */
int swfile_cluster_punch(struct swfile *f, uint32_t k);
/* Overwrite a slot with garbage (SWB_INJECT_CORRUPT). 0, -ENOMEM, -EIO. */
int swfile_corrupt(struct swfile *f, uint64_t slot);
/* Is p one of c's bounce pages? Then *k is its index. */
bool swfile_buf_index(struct swb_ctx *c, const void *p, unsigned *k);
/* Queue the write of bounce page k to slot. */
void swfile_write_prep(struct swb_ctx *c, unsigned k, uint64_t slot);
/* Submit the queued writes and reap all n: 0, or -errno / -EIO of the
 * first failed or short write, or of the ring (then c->broken). */
int swfile_write_wait(struct swb_ctx *c, unsigned n);
/* Queue the read of slot into bounce page k; tag comes back in res[]. */
void swfile_read_prep(struct swb_ctx *c, unsigned k, uint64_t slot, unsigned tag);
/* Submit the queued reads and reap them: res[tag] = bytes read or -errno
 * for each read reaped (the others keep what the caller put there).
 * Returns 0, or the ring's error (c->broken set; reads left unreaped). */
int swfile_read_wait(struct swb_ctx *c, unsigned n, int res[]);

/* ======================================================================
 * swap_nbd.c: the slots on an NBD export. open/close, ctx_init/fini,
 * cluster_trim, corrupt, usage, status: normal context; the prep/wait
 * calls are async-signal-safe (atomics, eventfd write, futex) on a
 * context the caller holds; swnbd_run is the loop thread's body.
 * ====================================================================== */

/* Is where an NBD URI (nbd://, nbd+unix://, or another nbd scheme that
 * open refuses with a reason)? */
bool swnbd_is_uri(const char *where);
/* Parse uri, connect every connection, read the export's size. 0 or
 * -errno (-EINVAL bad URI, -ECONNREFUSED / -ENOENT no server, -ENOSPC
 * export too small, -EROFS read-only), the detail in ufp_last_error(). */
int swnbd_open(const char *uri, struct nbdq **out, uint64_t *size);
void swnbd_close(struct nbdq *q);
/* The loop (returns after swnbd_stop); the eventfd that wakes it. */
void swnbd_run(struct nbdq *q);
void swnbd_stop(struct nbdq *q);
int swnbd_kick_fd(struct nbdq *q);
int swnbd_family(struct nbdq *q);
/* Bounce pages and requests for c. 0 or -ENOMEM. */
int swnbd_ctx_init(struct swb_ctx *c);
void swnbd_ctx_fini(struct swb_ctx *c);
/* As swfile_*: queue (contiguous slots of one cluster share a request),
 * then send the batch and wait for all of it. */
void swnbd_write_prep(struct swb_ctx *c, unsigned k, uint64_t slot);
int swnbd_write_wait(struct swb_ctx *c, unsigned n);
void swnbd_read_prep(struct swb_ctx *c, unsigned k, uint64_t slot, unsigned tag);
int swnbd_read_wait(struct swb_ctx *c, unsigned n, int res[]);
/* TRIM cluster k (the image of hole punching): 1 trimmed, 0 not
 * supported by the server, -errno. Waits for the reply. */
int swnbd_cluster_trim(struct nbdq *q, uint32_t k);
/* Overwrite a slot with garbage (SWB_INJECT_CORRUPT). 0, -ENOMEM, -EIO. */
int swnbd_corrupt(struct nbdq *q, uint64_t slot);
void swnbd_usage(struct nbdq *q, struct swb_usage *u);
/* A sentence on the connections into buf; returns 1 while the server is
 * unreachable. */
int swnbd_status(struct nbdq *q, char *buf, size_t len);

#endif /* UFP_SWAP_INTERNAL_H */
