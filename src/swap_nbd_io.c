/* SPDX-License-Identifier: MIT */
/*
 * swap_nbd_io.c - the contexts' side of the NBD swap store (the loop's
 * side is swap_nbd.c): a batch's pages become requests (contiguous slots
 * of one cluster share one), pushed on the loop's lock-free stack; the
 * eventfd wakes the loop only when it sleeps; the context waits on a
 * futex word until the loop has completed them all.
 *
 * Readahead: a load of several pages (the fault path's readahead is on:
 * the faults are sequential) also reads whole clusters -- the one it is
 * in and the next NBD_RA_AHEAD -- into a small cache (NBD_RA_ENTRIES
 * clusters, direct-mapped), asynchronously: the next loads find their
 * pages there, or wait for a read already in flight, instead of paying
 * a round trip per 16 pages. A page from the cache is used only when it
 * matches its slot's checksum (a slot rewritten since the cluster was
 * read is read again from the server: never stale data, never a poison).
 *
 * Concurrency: prep/wait and the readahead calls are async-signal-safe
 * (atomics, eventfd write, futex, memcpy, xxh3) on a context the caller
 * holds alone; ctx init/fini, trim and corrupt run in normal context.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "swap_nbd.h"
#include "base.h"
#include "sys.h"
#include "futex.h"

/* ======================================================================
 * Submitting and waiting (async-signal-safe).
 * ====================================================================== */

/* Queue r without waiting (a readahead read). */
static void swnbd_push(struct nbdq *q, struct nbd_req *r)
{
	uint64_t one = 1;

	cds_lfs_node_init(&r->node);
	tsan_release(&q->submit_sync);
	cds_lfs_push(&q->submit, &r->node);
	/* seq_cst: pairs with the loop's store of sleeping then empty check */
	if (atomic_load(&q->sleeping) && write(q->kick_fd, &one, sizeof(one)) < 0) {
		/* full counter: the loop wakes anyway */
	}
}

/* Queue n requests and wait for all. Returns 0 (results in each res). */
static void swnbd_submit_wait(struct nbdq *q, struct nbd_req *r, unsigned n,
			      _Atomic uint32_t *pending)
{
	uint64_t one = 1;
	uint32_t v;

	atomic_store_explicit(pending, n, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++) {
		r[i].pending = pending;
		cds_lfs_node_init(&r[i].node);
		tsan_release(&q->submit_sync);
		cds_lfs_push(&q->submit, &r[i].node);
	}
	/* seq_cst: pairs with the loop's store of sleeping then empty check */
	if (atomic_load(&q->sleeping) && write(q->kick_fd, &one, sizeof(one)) < 0) {
		/* full counter: the loop wakes anyway */
	}
	/* acquire: pairs with the release decrement in req_complete */
	while ((v = atomic_load_explicit(pending, memory_order_acquire)))
		futex_wait(pending, v, NULL);
}

/* Start reading cluster k into the cache unless it is there, on its way,
 * or its entry is busy with another cluster. Async-signal-safe. */
static void ra_start(struct nbdq *q, uint64_t k)
{
	struct ra_entry *e;
	uint32_t v;

	if (k >= q->nclusters)
		return;
	e = &q->ra[k % NBD_RA_ENTRIES];
	/* acquire: pairs with the release that published key's state */
	v = atomic_load_explicit(&e->ctl, memory_order_acquire);
	if ((RA_STATE(v) == RA_LOADING || RA_STATE(v) == RA_READY) &&
	    atomic_load_explicit(&e->key, memory_order_relaxed) == k + 1)
		return;
	if (RA_STATE(v) == RA_LOADING || RA_STATE(v) == RA_CLAIMED || RA_REFS(v))
		return;
	/* acquire: pairs with the release of the last reader's unref */
	if (!atomic_compare_exchange_strong_explicit(&e->ctl, &v,
			RA_CTL(RA_GEN(v) + 1, RA_CLAIMED), memory_order_acquire,
			memory_order_relaxed))
		return;
	atomic_store_explicit(&e->key, (uint32_t)(k + 1), memory_order_relaxed);
	e->req = (struct nbd_req){ .op = NR_READ, .off = k * CL_BYTES, .len = CL_BYTES,
				   .buf = e->buf, .ra = e, .conn = (uint32_t)(k % q->nconn) };
	/* release: key and req before LOADING (readers, then the loop) */
	atomic_store_explicit(&e->ctl, RA_CTL(RA_GEN(v) + 1, RA_LOADING), memory_order_release);
	atomic_fetch_add_explicit(&q->ra_reads, 1, memory_order_relaxed);
	swnbd_push(q, &e->req);
}

/* Copy slot's page from the cache into dst if it is there and matches
 * csum (1), else 0. Waits for a read of its cluster already in flight.
 * Async-signal-safe. */
static int ra_get(struct nbdq *q, uint64_t slot, void *dst, uint64_t csum)
{
	uint64_t k = slot / CL_SLOTS;
	struct ra_entry *e = &q->ra[k % NBD_RA_ENTRIES];
	struct timespec ts = { 0, 20000000 };
	int hit;

	for (;;) {
		/* acquire: pairs with the release that made it LOADING / READY */
		uint32_t v = atomic_load_explicit(&e->ctl, memory_order_acquire);

		if ((RA_STATE(v) != RA_LOADING && RA_STATE(v) != RA_READY) ||
		    atomic_load_explicit(&e->key, memory_order_relaxed) != k + 1)
			return 0;
		if (RA_STATE(v) == RA_LOADING) {
			futex_wait(&e->ctl, v, &ts);
			continue;
		}
		/* acquire: buf as the loop left it; refs keep a refill out */
		if (RA_REFS(v) < 0x3fffu &&
		    atomic_compare_exchange_weak_explicit(&e->ctl, &v, v + RA_REF,
				memory_order_acquire, memory_order_relaxed))
			break;
	}
	hit = atomic_load_explicit(&e->key, memory_order_relaxed) == k + 1;
	if (hit) {
		memcpy(dst, e->buf + (slot % CL_SLOTS) * PAGE, PAGE);
		hit = XXH3_64bits(dst, PAGE) == csum;   /* rewritten since: read it anew */
	}
	/* release: our reads of buf before a refill's claim */
	atomic_fetch_sub_explicit(&e->ctl, RA_REF, memory_order_release);
	if (hit)
		atomic_fetch_add_explicit(&q->ra_hits, 1, memory_order_relaxed);
	return hit;
}

/* Forget cluster k (written, trimmed): free its entry if nobody uses it.
 * A copy that stays has its checksum checked anyway. */
static void ra_drop(struct nbdq *q, uint64_t k)
{
	struct ra_entry *e = &q->ra[k % NBD_RA_ENTRIES];
	uint32_t v = atomic_load_explicit(&e->ctl, memory_order_relaxed);

	if (RA_STATE(v) == RA_READY && !RA_REFS(v) &&
	    atomic_load_explicit(&e->key, memory_order_relaxed) == k + 1)
		/* relaxed: nothing is published with FREE */
		atomic_compare_exchange_strong_explicit(&e->ctl, &v, RA_CTL(RA_GEN(v) + 1, RA_FREE),
				memory_order_relaxed, memory_order_relaxed);
}

static struct nbd_req *ctx_last(struct swb_ctx *c)
{
	return c->nreq ? &c->nreqs[c->nreq - 1] : NULL;
}

/* Add page k at slot to the batch, extending the last request when the
 * slot and the bounce page follow on, within one cluster. */
static void swnbd_prep(struct swb_ctx *c, uint8_t op, unsigned k, uint64_t slot)
{
	struct nbdq *q = c->s->nbd;
	struct nbd_req *l = ctx_last(c);
	uint64_t off = slot * PAGE;

	if (l && l->op == op && l->off + l->len == off && off % CL_BYTES &&
	    (char *)l->buf + l->len == c->bufs + (size_t)k * PAGE) {
		l->len += PAGE;
		return;
	}
	l = &c->nreqs[c->nreq++];
	l->op = op;
	l->off = off;
	l->len = PAGE;
	l->buf = c->bufs + (size_t)k * PAGE;
	l->k0 = (uint16_t)k;
	l->conn = (uint32_t)((slot / CL_SLOTS) % q->nconn);
}

void swnbd_write_prep(struct swb_ctx *c, unsigned k, uint64_t slot)
{
	ra_drop(c->s->nbd, slot / CL_SLOTS);
	swnbd_prep(c, NR_WRITE, k, slot);
}

int swnbd_write_wait(struct swb_ctx *c, unsigned n)
{
	unsigned nr = c->nreq;
	int err = 0;

	(void)n;
	c->nreq = 0;
	swnbd_submit_wait(c->s->nbd, c->nreqs, nr, &c->npending);
	for (unsigned i = 0; i < nr; i++)
		if (c->nreqs[i].res && !err)
			err = c->nreqs[i].res;
	return err;
}

/* The server refused a read of several pages (an I/O error on its side,
 * -EIO): read them again one by one, so that only the pages it cannot
 * read fail (are poisoned), not their neighbours in the request. */
static void swnbd_read_isolate(struct swb_ctx *c, unsigned nr, int res[])
{
	unsigned n = 0;

	for (unsigned i = 0; i < nr; i++) {
		struct nbd_req *r = &c->nreqs[i];

		if (r->res != -EIO || r->len == PAGE)
			continue;
		for (unsigned j = 0; j < r->len / PAGE; j++) {
			unsigned k = r->k0 + j;

			c->rk[n++] = (uint16_t)k;   /* rk is free again: reads are prepped */
		}
	}
	if (!n)
		return;
	for (unsigned i = 0; i < n; i++) {
		unsigned k = c->rk[i];
		uint64_t slot = c->kslot[k];

		c->nreqs[i] = (struct nbd_req){ .op = NR_READ, .off = slot * PAGE, .len = PAGE,
						.buf = c->bufs + (size_t)k * PAGE, .k0 = (uint16_t)k,
						.conn = (uint32_t)((slot / CL_SLOTS) %
								   c->s->nbd->nconn) };
	}
	swnbd_submit_wait(c->s->nbd, c->nreqs, n, &c->npending);
	for (unsigned i = 0; i < n; i++)
		res[c->ktag[c->nreqs[i].k0]] = c->nreqs[i].res ? c->nreqs[i].res : (int)PAGE;
}

void swnbd_read_prep(struct swb_ctx *c, unsigned k, uint64_t slot, unsigned tag)
{
	c->ktag[k] = (uint16_t)tag;
	c->kslot[k] = slot;
	c->rk[c->nrk++] = (uint16_t)k;
}

int swnbd_read_wait(struct swb_ctx *c, unsigned n, int res[])
{
	struct nbdq *q = c->s->nbd;
	unsigned nrk = c->nrk, nr;
	uint64_t last = 0;

	(void)n;
	c->nrk = 0;
	c->nreq = 0;
	/* pages the readahead cache has (or is reading), then the rest */
	for (unsigned i = 0; i < nrk; i++) {
		unsigned k = c->rk[i];
		uint64_t slot = c->kslot[k];

		last = slot;
		if (ra_get(q, slot, c->bufs + (size_t)k * PAGE, c->s->sl.csum[slot]))
			res[c->ktag[k]] = (int)PAGE;
		else
			swnbd_prep(c, NR_READ, k, slot);
	}
	/* a sequential stream (the fault path reads ahead): read the rest of
	 * this cluster and the next ones while the program works on these */
	if (nrk >= 4)
		for (uint64_t d = 0; d <= NBD_RA_AHEAD; d++)
			if (d || (last + 1) % CL_SLOTS)
				ra_start(q, last / CL_SLOTS + d);
	nr = c->nreq;
	c->nreq = 0;
	if (nr)
		swnbd_submit_wait(q, c->nreqs, nr, &c->npending);
	for (unsigned i = 0; i < nr; i++) {
		struct nbd_req *r = &c->nreqs[i];

		for (unsigned j = 0; j < r->len / PAGE; j++)
			res[c->ktag[r->k0 + j]] = r->res ? r->res : (int)PAGE;
	}
	swnbd_read_isolate(c, nr, res);
	return 0;
}

/* ======================================================================
 * Normal context: contexts, trim, corrupt, usage, open and close.
 * ====================================================================== */

int swnbd_ctx_init(struct swb_ctx *c)
{
	c->bufs = sys_mmap(NULL, (size_t)c->nbufs * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	c->nreqs = slab_calloc(c->nbufs, sizeof(*c->nreqs));
	c->ktag = slab_calloc(c->nbufs, sizeof(*c->ktag));
	c->kslot = slab_calloc(c->nbufs, sizeof(*c->kslot));
	c->rk = slab_calloc(c->nbufs, sizeof(*c->rk));
	if (c->bufs == MAP_FAILED || !c->nreqs || !c->ktag || !c->kslot || !c->rk) {
		if (c->bufs == MAP_FAILED)
			c->bufs = NULL;
		swnbd_ctx_fini(c);
		return ufp_error(-ENOMEM, SWB_ERR "out of memory for a context");
	}
	return 0;
}

void swnbd_ctx_fini(struct swb_ctx *c)
{
	if (c->bufs)
		sys_munmap(c->bufs, (size_t)c->nbufs * PAGE);
	c->bufs = NULL;
	slab_free(c->nreqs);
	slab_free(c->ktag);
	slab_free(c->kslot);
	slab_free(c->rk);
	c->nreqs = NULL;
	c->ktag = NULL;
	c->kslot = NULL;
	c->rk = NULL;
}

/* One request from normal context, waited for. */
static int swnbd_sync(struct nbdq *q, uint8_t op, uint64_t off, uint64_t len, void *buf)
{
	struct nbd_req r = { .op = op, .off = off, .len = len, .buf = buf,
			     .conn = (uint32_t)((off / CL_BYTES) % q->nconn) };
	_Atomic uint32_t pending;

	/* relaxed: a hint; without the loop nothing would complete */
	if (!atomic_load_explicit(&q->running, memory_order_relaxed))
		return -ENOTCONN;
	pthread_mutex_lock(&q->sync_lock);
	swnbd_submit_wait(q, &r, 1, &pending);
	pthread_mutex_unlock(&q->sync_lock);
	return r.res;
}

int swnbd_cluster_trim(struct nbdq *q, uint32_t k)
{
	int err;

	ra_drop(q, k);
	if (!q->can_trim)
		return 0;
	err = swnbd_sync(q, NR_TRIM, (uint64_t)k * CL_BYTES, CL_BYTES, NULL);
	return err ? err : 1;
}

int swnbd_corrupt(struct nbdq *q, uint64_t slot)
{
	void *garbage;
	int err;

	if (!(garbage = slab_aligned_alloc(PAGE, PAGE)))
		return -ENOMEM;
	memset(garbage, 0xa5, PAGE);
	ra_drop(q, slot / CL_SLOTS);
	err = swnbd_sync(q, NR_WRITE, slot * PAGE, PAGE, garbage);
	slab_free(garbage);
	return err ? -EIO : 0;
}

