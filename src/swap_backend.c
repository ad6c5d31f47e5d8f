/* SPDX-License-Identifier: MIT */
/*
 * swap_backend.c - the swap store (see swap_backend.h for the tiers and
 * the handle layout): same-filled pages, the lz4 RAM tier, and the
 * io_uring swap file with its slot allocator.
 *
 * Slot allocator: the file is cut into clusters of 64 slots (256 KiB, like
 * the kernel's swap clusters). A context owns one cluster at a time and
 * allocates from it without contention; taking a cluster is one CAS on its
 * owner word. Releasing a slot clears its bit (one atomic, signal-safe);
 * a cluster that empties is punched out (FALLOC_FL_PUNCH_HOLE) by
 * swb_maintain, so disk use follows the working set.
 *
 * Concurrency contract: loads and releases are async-signal-safe (atomics,
 * io_uring_enter, lz4 decompression; no malloc, no locks). Stores and
 * maintenance run in normal context; tier memory is freed only there.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <lz4.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "swap_backend.h"

#define PAGE 4096u
#define CLUSTER_SLOTS 64u
#define SAME_MAX 4096u
#define Z_MAX_CLEN (PAGE * 3 / 4)   /* compress only to <= 3/4 page */

enum zstate { Z_FREE = 0, Z_USED = 1, Z_DEAD = 2 };

struct zent {
	_Atomic uint32_t state;
	uint32_t clen;
	void *data;
	uint64_t csum;
	_Atomic uint8_t inject;
};

struct cluster {
	_Atomic uint64_t used;       /* bit per slot */
	_Atomic uint32_t owner;      /* 1 while a context allocates from it */
	_Atomic uint32_t punch;      /* emptied since the last punch */
};

struct swb {
	int fd;
	bool direct;
	uint64_t nslots, nclusters;
	struct cluster *cl;
	uint64_t *csum;              /* per slot */
	_Atomic uint8_t *inject;     /* per slot: test hooks */
	_Atomic uint64_t cursor;     /* cluster search start */
	/* tier */
	uint64_t zcap, nz;
	struct zent *z;
	_Atomic uint64_t zcursor, zbytes;
	/* same-filled words */
	_Atomic uint64_t same_word[SAME_MAX];
	_Atomic uint8_t same_used[SAME_MAX];
	/* usage */
	_Atomic uint64_t u[18];
	unsigned qd, nbufs;
};

enum { U_STORES_FILE, U_STORES_Z, U_STORES_SAME, U_LOADS_FILE, U_LOADS_Z, U_LOADS_SAME,
       U_BREAD, U_BWRITE, U_IOERR, U_CSUMERR, U_PUNCHED, U_ZRAW, U_FILE_USED };

struct swb_ctx {
	struct swb *s;
	struct io_uring ring;
	void *bufs;
	unsigned nbufs;
	int64_t cluster;             /* owned cluster, -1 none */
};

static __thread char err_detail[256];

const char *swb_error_detail(void)
{
	return err_detail;
}

static void ustat(struct swb *s, int i, uint64_t v)
{
	atomic_fetch_add_explicit(&s->u[i], v, memory_order_relaxed);
}

/* ======================================================================
 * Setup.
 * ====================================================================== */

int swb_create(const struct swb_params *p, struct swb **out)
{
	const char *dir = p && p->dir ? p->dir : "/var/tmp";
	uint64_t size = p && p->file_size ? p->file_size : 1ull << 30;
	struct swb *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->qd = p && p->queue_depth ? p->queue_depth : 64;
	s->nbufs = p && p->ctx_bufs ? p->ctx_bufs : 32;
	s->nclusters = (size + CLUSTER_SLOTS * PAGE - 1) / (CLUSTER_SLOTS * PAGE);
	s->nslots = s->nclusters * CLUSTER_SLOTS;
	s->fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	s->direct = s->fd >= 0;
	if (s->fd < 0 && errno == EINVAL)       /* tmpfs: no O_DIRECT */
		s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		err = -errno;
		snprintf(err_detail, sizeof(err_detail),
			 "cannot create an O_TMPFILE swap file in %s: %s", dir, strerror(errno));
		free(s);
		return err;
	}
	if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, 0, 0) && errno == EOPNOTSUPP) {
		/* no fallocate: holes cannot be punched; still usable */
	}
	if (ftruncate(s->fd, (off_t)(s->nslots * PAGE))) {
		err = -errno;
		snprintf(err_detail, sizeof(err_detail), "cannot size the swap file: %s",
			 strerror(errno));
		close(s->fd);
		free(s);
		return err;
	}
	s->cl = calloc(s->nclusters, sizeof(*s->cl));
	s->csum = calloc(s->nslots, sizeof(*s->csum));
	s->inject = calloc(s->nslots, 1);
	s->zcap = p ? p->ztier_size : 0;
	s->nz = s->zcap ? s->zcap / 256 + 64 : 0;     /* entries: at 16x at most */
	s->z = s->nz ? calloc(s->nz, sizeof(*s->z)) : NULL;
	if (!s->cl || !s->csum || !s->inject || (s->nz && !s->z)) {
		swb_destroy(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void swb_destroy(struct swb *s)
{
	if (!s)
		return;
	for (uint64_t i = 0; s->z && i < s->nz; i++)
		free(s->z[i].data);
	free(s->z);
	free(s->cl);
	free(s->csum);
	free(s->inject);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

int swb_fd(struct swb *s)
{
	return s->fd;
}

int swb_ctx_create(struct swb *s, struct swb_ctx **out)
{
	struct swb_ctx *c = calloc(1, sizeof(*c));
	struct iovec iov;
	int err;

	if (!c)
		return -ENOMEM;
	c->s = s;
	c->nbufs = s->nbufs;
	c->cluster = -1;
	c->bufs = mmap(NULL, (size_t)c->nbufs * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (c->bufs == MAP_FAILED) {
		free(c);
		return -ENOMEM;
	}
	err = io_uring_queue_init(s->qd, &c->ring, 0);
	if (err) {
		snprintf(err_detail, sizeof(err_detail),
			 "io_uring unavailable (%s): check kernel.io_uring_disabled and the "
			 "seccomp profile", strerror(-err));
		munmap(c->bufs, (size_t)c->nbufs * PAGE);
		free(c);
		return err;
	}
	iov.iov_base = c->bufs;
	iov.iov_len = (size_t)c->nbufs * PAGE;
	if ((err = io_uring_register_buffers(&c->ring, &iov, 1)) ||
	    (err = io_uring_register_files(&c->ring, &s->fd, 1))) {
		snprintf(err_detail, sizeof(err_detail), "io_uring registration failed: %s",
			 strerror(-err));
		io_uring_queue_exit(&c->ring);
		munmap(c->bufs, (size_t)c->nbufs * PAGE);
		free(c);
		return err;
	}
	*out = c;
	return 0;
}

void swb_ctx_destroy(struct swb_ctx *c)
{
	if (!c)
		return;
	if (c->cluster >= 0)
		atomic_store_explicit(&c->s->cl[c->cluster].owner, 0, memory_order_release);
	io_uring_queue_exit(&c->ring);
	munmap(c->bufs, (size_t)c->nbufs * PAGE);
	free(c);
}

void *swb_ctx_buf(struct swb_ctx *c, unsigned i)
{
	return (char *)c->bufs + (size_t)i * PAGE;
}

unsigned swb_ctx_nbufs(struct swb_ctx *c)
{
	return c->nbufs;
}

/* ======================================================================
 * Slots.
 * ====================================================================== */

static int64_t slot_alloc(struct swb_ctx *c)
{
	struct swb *s = c->s;

	for (uint64_t tries = 0; tries <= s->nclusters; tries++) {
		if (c->cluster >= 0) {
			struct cluster *cl = &s->cl[c->cluster];
			uint64_t u = atomic_load_explicit(&cl->used, memory_order_relaxed);

			while (~u) {
				unsigned b = (unsigned)__builtin_ctzll(~u);

				/* relaxed: the owner is the only allocator; releases
				 * only clear bits */
				u = atomic_fetch_or_explicit(&cl->used, 1ull << b, memory_order_relaxed);
				if (!(u & (1ull << b))) {
					ustat(s, U_FILE_USED, 1);
					return (int64_t)((uint64_t)c->cluster * CLUSTER_SLOTS + b);
				}
			}
			atomic_store_explicit(&cl->owner, 0, memory_order_release);
			c->cluster = -1;
		}
		/* take another cluster that has room */
		uint64_t k = atomic_fetch_add_explicit(&s->cursor, 1, memory_order_relaxed) %
			     s->nclusters;
		uint32_t z = 0;

		if (~atomic_load_explicit(&s->cl[k].used, memory_order_relaxed) &&
		    atomic_compare_exchange_strong_explicit(&s->cl[k].owner, &z, 1,
				memory_order_acquire, memory_order_relaxed))
			c->cluster = (int64_t)k;
	}
	return -ENOSPC;
}

static void slot_free(struct swb *s, uint64_t slot)
{
	struct cluster *cl = &s->cl[slot / CLUSTER_SLOTS];
	uint64_t bit = 1ull << (slot % CLUSTER_SLOTS);
	/* release: the slot's last read happened before it can be reused */
	uint64_t u = atomic_fetch_and_explicit(&cl->used, ~bit, memory_order_release);

	atomic_fetch_sub_explicit(&s->u[U_FILE_USED], 1, memory_order_relaxed);
	if (u == bit)
		atomic_store_explicit(&cl->punch, 1, memory_order_relaxed);
}

/* ======================================================================
 * Store (normal context).
 * ====================================================================== */

static bool same_filled(const void *page, uint64_t *word)
{
	const uint64_t *w = page;

	for (unsigned i = 1; i < PAGE / 8; i++)
		if (w[i] != w[0])
			return false;
	*word = w[0];
	return true;
}

static int same_handle(struct swb *s, uint64_t word, uint64_t *h)
{
	if (word == 0) {
		*h = SWB_TIER_SAME << SWB_TIER_SHIFT;   /* index 0: the zero page */
		return 0;
	}
	for (unsigned i = (unsigned)(XXH3_64bits(&word, 8) % (SAME_MAX - 1)), n = 0;
	     n < SAME_MAX - 1; n++, i = (i + 1) % (SAME_MAX - 1)) {
		unsigned idx = i + 1;
		uint8_t st = atomic_load_explicit(&s->same_used[idx], memory_order_acquire);

		if (st == 2 && atomic_load_explicit(&s->same_word[idx], memory_order_relaxed) == word) {
			*h = (SWB_TIER_SAME << SWB_TIER_SHIFT) | idx;
			return 0;
		}
		if (st == 0) {
			uint8_t z = 0;

			if (atomic_compare_exchange_strong(&s->same_used[idx], &z, 1)) {
				atomic_store_explicit(&s->same_word[idx], word, memory_order_relaxed);
				/* release: pairs with the acquire above and in load */
				atomic_store_explicit(&s->same_used[idx], 2, memory_order_release);
				*h = (SWB_TIER_SAME << SWB_TIER_SHIFT) | idx;
				return 0;
			}
		}
	}
	return -ENOSPC;
}

static int ztier_store(struct swb *s, const void *page, uint64_t *h)
{
	char tmp[Z_MAX_CLEN];
	int clen;

	if (!s->nz || atomic_load_explicit(&s->zbytes, memory_order_relaxed) + Z_MAX_CLEN > s->zcap)
		return -ENOSPC;
	clen = LZ4_compress_default(page, tmp, (int)PAGE, (int)sizeof(tmp));
	if (clen <= 0)
		return -E2BIG;          /* incompressible: the file takes it */
	for (uint64_t n = 0; n < s->nz; n++) {
		uint64_t i = atomic_fetch_add_explicit(&s->zcursor, 1, memory_order_relaxed) % s->nz;
		uint32_t f = Z_FREE;

		if (!atomic_compare_exchange_strong(&s->z[i].state, &f, Z_USED))
			continue;
		s->z[i].data = malloc((size_t)clen);
		if (!s->z[i].data) {
			atomic_store(&s->z[i].state, Z_FREE);
			return -ENOMEM;
		}
		memcpy(s->z[i].data, tmp, (size_t)clen);
		s->z[i].clen = (uint32_t)clen;
		s->z[i].csum = XXH3_64bits(page, PAGE);
		atomic_store(&s->z[i].inject, 0);
		atomic_fetch_add_explicit(&s->zbytes, (uint64_t)clen, memory_order_relaxed);
		ustat(s, U_ZRAW, PAGE);
		*h = (SWB_TIER_Z << SWB_TIER_SHIFT) | i;
		return 0;
	}
	return -ENOSPC;
}

static void release_batch(struct swb *s, const uint64_t *h, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		swb_release(s, h[i]);
}

int swb_store(struct swb_ctx *c, const void *const pages[], unsigned n, uint64_t handles[])
{
	struct swb *s = c->s;
	unsigned nfile = 0, stored = 0;
	int err = 0;

	if (n > c->nbufs)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		uint64_t word;
		int64_t slot;

		if (same_filled(pages[i], &word) && same_handle(s, word, &handles[i]) == 0) {
			ustat(s, U_STORES_SAME, 1);
			stored++;
			continue;
		}
		if (ztier_store(s, pages[i], &handles[i]) == 0) {
			ustat(s, U_STORES_Z, 1);
			stored++;
			continue;
		}
		slot = slot_alloc(c);
		if (slot < 0)
			break;                  /* full: pages [i, n) are not stored */
		void *buf = swb_ctx_buf(c, nfile++);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);

		memcpy(buf, pages[i], PAGE);
		s->csum[slot] = XXH3_64bits(buf, PAGE);
		atomic_store_explicit(&s->inject[slot], 0, memory_order_relaxed);
		io_uring_prep_write_fixed(sqe, 0, buf, PAGE, (uint64_t)slot * PAGE, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
		handles[i] = (SWB_TIER_FILE << SWB_TIER_SHIFT) | (uint64_t)slot;
		stored++;
	}
	if (nfile) {
		struct io_uring_cqe *cqe;
		unsigned seen = 0;

		err = io_uring_submit_and_wait(&c->ring, nfile);
		err = err < 0 ? err : 0;
		while (seen < nfile && io_uring_wait_cqe(&c->ring, &cqe) == 0) {
			if (cqe->res != (int)PAGE)
				err = cqe->res < 0 ? cqe->res : -EIO;
			io_uring_cqe_seen(&c->ring, cqe);
			seen++;
		}
		if (err) {
			ustat(s, U_IOERR, 1);
			release_batch(s, handles, stored);
			return -EIO;
		}
		ustat(s, U_STORES_FILE, nfile);
		ustat(s, U_BWRITE, (uint64_t)nfile * PAGE);
	}
	return (int)stored;
}

/* ======================================================================
 * Load (async-signal-safe).
 * ====================================================================== */

static bool in_bufs(struct swb_ctx *c, const void *p)
{
	return (const char *)p >= (const char *)c->bufs &&
	       (const char *)p < (const char *)c->bufs + (size_t)c->nbufs * PAGE;
}

int swb_load(struct swb_ctx *c, const uint64_t handles[], unsigned n, void *const dst[],
	     uint64_t *failed)
{
	struct swb *s = c->s;
	unsigned nfile = 0, nbounce = 0, bufk[64];
	int err = 0;

	*failed = 0;
	if (n > c->nbufs || n > 64)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = handles[i], idx = h & ((1ull << 40) - 1);

		if (swb_handle_is_same(h)) {
			uint64_t w = idx ? atomic_load_explicit(&s->same_word[idx],
								memory_order_relaxed) : 0;
			uint64_t *d = dst[i];

			for (unsigned k = 0; k < PAGE / 8; k++)
				d[k] = w;
			ustat(s, U_LOADS_SAME, 1);
		} else if (swb_handle_is_ztier(h)) {
			struct zent *z = &s->z[idx];

			if (atomic_load(&z->inject) ||
			    LZ4_decompress_safe(z->data, dst[i], (int)z->clen, (int)PAGE) != (int)PAGE ||
			    XXH3_64bits(dst[i], PAGE) != z->csum) {
				*failed |= 1ull << i;
				ustat(s, U_CSUMERR, 1);
				err = -EBADMSG;
			}
			ustat(s, U_LOADS_Z, 1);
		} else {
			/* read straight into dst when it is one of our registered
			 * pages; otherwise into a bounce page from the top end */
			void *buf = in_bufs(c, dst[i]) ? dst[i] :
				    swb_ctx_buf(c, c->nbufs - 1 - nbounce++);
			struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);

			nfile++;
			bufk[i] = (unsigned)(((char *)buf - (char *)c->bufs) / PAGE);
			io_uring_prep_read_fixed(sqe, 0, buf, PAGE, idx * PAGE, 0);
			sqe->flags |= IOSQE_FIXED_FILE;
			sqe->user_data = i;
		}
	}
	if (nfile) {
		struct io_uring_cqe *cqe;
		unsigned seen = 0;
		int r = io_uring_submit_and_wait(&c->ring, nfile);

		while (r >= 0 && seen < nfile && io_uring_wait_cqe(&c->ring, &cqe) == 0) {
			unsigned i = (unsigned)cqe->user_data;
			uint64_t slot = handles[i] & ((1ull << 40) - 1);
			void *buf = swb_ctx_buf(c, bufk[i]);

			if (cqe->res != (int)PAGE ||
			    atomic_load_explicit(&s->inject[slot], memory_order_relaxed) == SWB_INJECT_EIO) {
				*failed |= 1ull << i;
				ustat(s, U_IOERR, 1);
				err = -EIO;
			} else if (XXH3_64bits(buf, PAGE) != s->csum[slot]) {
				*failed |= 1ull << i;
				ustat(s, U_CSUMERR, 1);
				if (!err)
					err = -EBADMSG;
			} else if (buf != dst[i]) {
				memcpy(dst[i], buf, PAGE);
			}
			io_uring_cqe_seen(&c->ring, cqe);
			seen++;
		}
		if (r < 0)
			return r;
		ustat(s, U_LOADS_FILE, nfile);
		ustat(s, U_BREAD, (uint64_t)nfile * PAGE);
	}
	return err;
}

/* ======================================================================
 * Release and maintenance.
 * ====================================================================== */

void swb_release(struct swb *s, uint64_t h)
{
	uint64_t idx = h & ((1ull << 40) - 1);

	if (swb_handle_is_file(h) && idx < s->nslots)
		slot_free(s, idx);
	else if (swb_handle_is_ztier(h) && idx < s->nz)
		/* freed by swb_maintain (normal context) */
		atomic_store_explicit(&s->z[idx].state, Z_DEAD, memory_order_release);
}

int swb_maintain(struct swb *s)
{
	for (uint64_t k = 0; k < s->nclusters; k++) {
		struct cluster *cl = &s->cl[k];

		if (atomic_load_explicit(&cl->punch, memory_order_relaxed) &&
		    !atomic_load_explicit(&cl->used, memory_order_acquire)) {
			atomic_store_explicit(&cl->punch, 0, memory_order_relaxed);
			if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(k * CLUSTER_SLOTS * PAGE),
				      (off_t)(CLUSTER_SLOTS * PAGE)) == 0)
				ustat(s, U_PUNCHED, 1);
		}
	}
	for (uint64_t i = 0; i < s->nz; i++) {
		/* acquire: pairs with the release in swb_release */
		if (atomic_load_explicit(&s->z[i].state, memory_order_acquire) != Z_DEAD)
			continue;
		atomic_fetch_sub_explicit(&s->zbytes, s->z[i].clen, memory_order_relaxed);
		atomic_fetch_sub_explicit(&s->u[U_ZRAW], PAGE, memory_order_relaxed);
		free(s->z[i].data);
		s->z[i].data = NULL;
		atomic_store_explicit(&s->z[i].state, Z_FREE, memory_order_release);
	}
	return 0;
}

void swb_usage(struct swb *s, struct swb_usage *u)
{
	memset(u, 0, sizeof(*u));
	u->file_slots_total = s->nslots;
	u->file_slots_used = atomic_load(&s->u[U_FILE_USED]);
	u->ztier_bytes_used = atomic_load(&s->zbytes);
	u->ztier_bytes_cap = s->zcap;
	u->ztier_raw_bytes = atomic_load(&s->u[U_ZRAW]);
	u->ztier_entries = u->ztier_raw_bytes / PAGE;
	u->punched_clusters = atomic_load(&s->u[U_PUNCHED]);
	u->stores_file = atomic_load(&s->u[U_STORES_FILE]);
	u->stores_ztier = atomic_load(&s->u[U_STORES_Z]);
	u->stores_same = atomic_load(&s->u[U_STORES_SAME]);
	u->same_filled = u->stores_same;
	u->loads_file = atomic_load(&s->u[U_LOADS_FILE]);
	u->loads_ztier = atomic_load(&s->u[U_LOADS_Z]);
	u->loads_same = atomic_load(&s->u[U_LOADS_SAME]);
	u->bytes_read = atomic_load(&s->u[U_BREAD]);
	u->bytes_written = atomic_load(&s->u[U_BWRITE]);
	u->io_errors = atomic_load(&s->u[U_IOERR]);
	u->csum_errors = atomic_load(&s->u[U_CSUMERR]);
}

int swb_inject(struct swb *s, uint64_t h, int what)
{
	uint64_t idx = h & ((1ull << 40) - 1);

	if (swb_handle_is_ztier(h) && idx < s->nz) {
		if (what == SWB_INJECT_EIO)
			atomic_store(&s->z[idx].inject, 1);
		else
			((unsigned char *)s->z[idx].data)[0] ^= 0xff;
		return 0;
	}
	if (!swb_handle_is_file(h) || idx >= s->nslots)
		return -EINVAL;
	if (what == SWB_INJECT_EIO) {
		atomic_store(&s->inject[idx], SWB_INJECT_EIO);
		return 0;
	}
	void *garbage;
	int err = 0;

	if (posix_memalign(&garbage, PAGE, PAGE))
		return -ENOMEM;
	memset(garbage, 0xA5, PAGE);
	if (pwrite(s->fd, garbage, PAGE, (off_t)(idx * PAGE)) != (ssize_t)PAGE)
		err = -EIO;
	free(garbage);
	return err;
}
