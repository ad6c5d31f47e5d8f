/* SPDX-License-Identifier: MIT */
/*
 * swap_file.c - the swap file and the rings that read and write it: the
 * O_TMPFILE (probes for O_DIRECT, fallocate, hole punching), per-cluster
 * block reservation and punching, each context's bounce pages and its
 * restricted io_uring ring, batched fixed-buffer reads and writes.
 * Calls nothing in the backend: liburing, the fault injector (inject.h),
 * and the library's error channel (ufp_error, ufp_last_error()).
 *
 * Concurrency: open/close, ctx_init/fini, cluster reserve/punch and
 * corrupt run in normal context. The I/O calls are async-signal-safe
 * (io_uring_enter only) and act on a context the caller holds alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "swap_internal.h"
#include "base.h"
#include "sys.h"
#include "inject.h"

/* ======================================================================
 * The file (normal context).
 * ====================================================================== */

int swfile_open(struct swfile *f, const char *dir, uint64_t size)
{
	void *probe = NULL;
	int err;

	f->direct = true;
	f->fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	if (f->fd < 0 && errno == EINVAL) {         /* O_DIRECT refused */
		f->direct = false;
		f->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	}
	if (f->fd < 0) {
		err = errno;
		if (err == EOPNOTSUPP || err == EISDIR)
			return ufp_error(-EOPNOTSUPP, SWB_ERR "the filesystem of %s does not "
					 "support O_TMPFILE (needed so the swap file is private "
					 "and leaves nothing behind)", dir);
		return ufp_error(-err, SWB_ERR "cannot create a swap file in %s: %s", dir,
				 strerror(err));
	}
	if (ftruncate(f->fd, (off_t)size)) {
		err = -errno;
		return ufp_error(err, SWB_ERR "cannot size the swap file in %s to %llu bytes: %s",
				 dir, (unsigned long long)size, strerror(-err));
	}
	/* blocks are reserved per cluster; probe with the first one */
	f->can_falloc = fallocate(f->fd, 0, 0, (off_t)CL_BYTES) == 0;
	if (!f->can_falloc && errno == ENOSPC)
		return ufp_error(-ENOSPC, SWB_ERR "no space in %s for the swap file", dir);
	if (f->direct) {
		if (!(probe = slab_aligned_alloc(PAGE, PAGE)))
			return ufp_error(-ENOMEM, SWB_ERR "out of memory");
		memset(probe, 0, PAGE);
		if (pwrite(f->fd, probe, PAGE, 0) != (ssize_t)PAGE ||
		    pread(f->fd, probe, PAGE, 0) != (ssize_t)PAGE) {
			/* accepted at open, refused at I/O: go buffered */
			f->direct = false;
			if (fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) & ~O_DIRECT)) {
				err = -errno;
				slab_free(probe);
				return ufp_error(err, SWB_ERR "cannot clear O_DIRECT on the swap "
						 "file: %s", strerror(-err));
			}
		}
		slab_free(probe);
	}
	f->can_punch = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 0, (off_t)CL_BYTES) == 0;
	return 0;
}

void swfile_close(struct swfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int swfile_cluster_reserve(struct swfile *f, uint32_t k)
{
	if (f->can_falloc && fallocate(f->fd, 0, (off_t)(k * CL_BYTES), (off_t)CL_BYTES))
		return -errno;
	return 0;
}

int swfile_cluster_punch(struct swfile *f, uint32_t k)
{
	if (!f->can_punch)
		return 0;
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(k * CL_BYTES), (off_t)CL_BYTES))
		return -errno;
	return 1;
}

int swfile_corrupt(struct swfile *f, uint64_t slot)
{
	void *garbage;
	int err = 0;

	if (!(garbage = slab_aligned_alloc(PAGE, PAGE)))
		return -ENOMEM;
	memset(garbage, 0xa5, PAGE);
	if (pwrite(f->fd, garbage, PAGE, (off_t)(slot * PAGE)) != (ssize_t)PAGE)
		err = -EIO;
	slab_free(garbage);
	return err;
}

/* ======================================================================
 * Rings: setup and teardown (normal context).
 * ====================================================================== */

static int swfile_ring_error(int err)
{
	char v[16] = "?";
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t r = read(fd, v, sizeof(v) - 1);

		v[r > 0 ? r : 0] = 0;
		v[strcspn(v, "\n")] = 0;
		close(fd);
	}
	return ufp_error(err, SWB_ERR "io_uring unavailable (%s; kernel.io_uring_disabled=%s): "
			 "the swap file needs it; a seccomp profile (containers) may also "
			 "block it", strerror(-err), v);
}

/*
 * The ring may do exactly what swb_store and swb_load ask of it: read and
 * write through the registered file (IOSQE_FIXED_FILE required) with the
 * registered buffers. It is created disabled, gets its buffers and file,
 * is restricted, then enabled; no register operation is allowed after
 * that (none is needed: the file and buffers never change). A kernel
 * without IORING_SETUP_R_DISABLED (before 5.10) gets an unrestricted ring.
 */
static int swfile_ring_restrict(struct io_uring *ring)
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

int swfile_ctx_init(struct swb_ctx *c)
{
	struct io_uring_params prm = { .flags = IORING_SETUP_R_DISABLED };
	struct swb *s = c->s;
	struct iovec iov;
	int err;

	c->bufs = sys_mmap(NULL, (size_t)c->nbufs * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (c->bufs == MAP_FAILED) {
		c->bufs = NULL;
		return ufp_error(-ENOMEM, SWB_ERR "out of memory for a context");
	}
	err = io_uring_queue_init_params(s->qd, &c->ring, &prm);
	if (err == -EINVAL) {
		prm = (struct io_uring_params){ .flags = 0 };
		err = io_uring_queue_init_params(s->qd, &c->ring, &prm);
	}
	if (err) {
		swfile_ring_error(err);
		goto fail_ring;
	}
	iov.iov_base = c->bufs;
	iov.iov_len = (size_t)c->nbufs * PAGE;
	if ((err = io_uring_register_buffers(&c->ring, &iov, 1)) ||
	    (err = io_uring_register_files(&c->ring, &s->f.fd, 1))) {
		ufp_set_error(SWB_ERR "io_uring buffer/file registration failed: %s%s",
			      strerror(-err), err == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
		io_uring_queue_exit(&c->ring);
		goto fail_ring;
	}
	if ((c->ring.flags & IORING_SETUP_R_DISABLED) && (err = swfile_ring_restrict(&c->ring))) {
		ufp_set_error(SWB_ERR "io_uring ring restriction failed: %s", strerror(-err));
		io_uring_queue_exit(&c->ring);
		goto fail_ring;
	}
	return 0;
fail_ring:
	sys_munmap(c->bufs, (size_t)c->nbufs * PAGE);
	c->bufs = NULL;
	return err;
}

void swfile_ctx_fini(struct swb_ctx *c)
{
	io_uring_queue_exit(&c->ring);
	sys_munmap(c->bufs, (size_t)c->nbufs * PAGE);
	c->bufs = NULL;
}

bool swfile_buf_index(struct swb_ctx *c, const void *p, unsigned *k)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)c->bufs;

	if ((uintptr_t)p < (uintptr_t)c->bufs || off >= (size_t)c->nbufs * PAGE || off % PAGE)
		return false;
	*k = (unsigned)(off / PAGE);
	return true;
}

/* ======================================================================
 * I/O (async-signal-safe: io_uring_enter only; the caller holds c).
 * ====================================================================== */

/* Submit everything queued and wait for want completions to be ready. */
static int swfile_ring_submit(struct swb_ctx *c, unsigned want)
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

static int swfile_ring_wait(struct swb_ctx *c, struct io_uring_cqe **cqe)
{
	int ret;

	do
		ret = io_uring_wait_cqe(&c->ring, cqe);
	while (ret == -EINTR);
	if (ret)
		c->broken = true;
	return ret;
}

void swfile_write_prep(struct swb_ctx *c, unsigned k, uint64_t slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);   /* qd >= nbufs: never NULL */

	io_uring_prep_write_fixed(sqe, 0, c->bufs + (size_t)k * PAGE, PAGE, slot * PAGE, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
}

int swfile_write_wait(struct swb_ctx *c, unsigned n)
{
	struct io_uring_cqe *cqe;
	int werr = swfile_ring_submit(c, n);

	/* reap every completion, failed or not: none may be left for the
	 * next batch to mistake for its own */
	for (unsigned seen = 0; !c->broken && seen < n; seen++) {
		int res;

		if (swfile_ring_wait(c, &cqe)) {
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
	return werr;
}

/* user_data of a read: its bounce page and the caller's tag */
void swfile_read_prep(struct swb_ctx *c, unsigned k, uint64_t slot, unsigned tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);   /* qd >= nbufs >= n */

	io_uring_prep_read_fixed(sqe, 0, c->bufs + (size_t)k * PAGE, PAGE, slot * PAGE, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = (uint64_t)k << 32 | tag;
}

int swfile_read_wait(struct swb_ctx *c, unsigned n, int res[])
{
	struct io_uring_cqe *cqe;
	int r = swfile_ring_submit(c, n);

	for (unsigned seen = 0; !r && seen < n; seen++) {
		char *buf;
		int v;

		r = swfile_ring_wait(c, &cqe);
		if (r)
			break;
		buf = c->bufs + (size_t)(cqe->user_data >> 32) * PAGE;
		v = cqe->res;
		if (__builtin_expect(inject_on(), 0)) {
			v = inject_io_res(v, INJ_READ);
			if (v == (int)PAGE && inject_hit(INJ_CSUM))
				buf[PAGE - 1] ^= 0x5a;    /* the checksum must catch it */
		}
		res[(uint32_t)cqe->user_data] = v;
		io_uring_cqe_seen(&c->ring, cqe);
	}
	return r;
}
