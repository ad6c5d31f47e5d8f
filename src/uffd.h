/* SPDX-License-Identifier: MIT */
/*
 * uffd.h - userfaultfd (uffd.c): probe, registration, the one ioctl wrapper.
 */
#ifndef UFP_UFFD_H
#define UFP_UFFD_H

#include "base.h"
#include "ufpager.h"

struct ufp_pager;
struct ufp_tstats;
struct ufp_probe;

/* uffd.c: open, probe, register, and the one ioctl wrapper */
int uffd_open_probe(struct ufp_probe *pr);
int uffd_open(struct ufp_pager *p);
int uffd_register(struct ufp_pager *p, uintptr_t start, size_t len);
int uffd_unregister(struct ufp_pager *p, uintptr_t start, size_t len);
/* Open the staging area's own userfaultfd and register [start, start+len)
 * with it (p->reclaim.staging_uffd). Returns 0 or -errno. */
int uffd_open_staging(struct ufp_pager *p, uintptr_t start, size_t len);
/*
 * The one wrapper for UFFDIO_COPY / UFFDIO_ZEROPAGE (src == NULL).
 * Installs [dst, dst+len). EAGAIN with progress resumes from the partial
 * count; EEXIST on the first page counts that page as resolved (it is
 * woken) and continues unless stop_on_exist. Returns the bytes resolved
 * (> 0), or -EAGAIN (event pending, nothing done: drop locks and retry),
 * -ENOENT (range gone), -ESRCH (process exiting), other -errno.
 */
long uffd_fill(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
	       const void *src, size_t len, bool stop_on_exist);
/* As uffd_fill; with dontwake the caller wakes (uffd_wake) after it has
 * recorded the page state, so a woken thread never sees a stale entry. */
#define UFP_FILL_DONTWAKE 1u   /* the caller wakes (handler delivery) */
#define UFP_FILL_WP 2u         /* install write-protected (dirty tracking) */
long uffd_fill_mode(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
		    const void *src, size_t len, bool stop_on_exist, unsigned flags);
/* Pages of [start, end) written since the last scan, write-protected
 * again; fn(p, index, arg) per page. Needs UFFD_FEATURE_WP_ASYNC. */
long uffd_scan_written(struct ufp_pager *p, uintptr_t start, uintptr_t end,
		       void (*fn)(struct ufp_pager *, size_t, void *), void *arg);
int uffd_wake(struct ufp_pager *p, uintptr_t start, size_t len);
bool uffd_move_landed(struct ufp_pager *p, uintptr_t dst, uintptr_t src);
/* UFFDIO_MOVE of [src, src+len) to dst; returns bytes moved (short at a
 * page it could not move) or -errno. */
#define UFP_MOVE_SRC_HOLES 1u   /* skip missing source pages (ALLOW_SRC_HOLES)
				 * instead of stopping at them with -ENOENT */
#define UFP_MOVE_TO_STAGING 2u  /* dst is staging: the staging uffd's ioctl */
#define UFP_MOVE_DONTWAKE 4u    /* the caller wakes (handler delivery) */
#define UFP_MOVE_NOWAIT 8u      /* -EAGAIN (an event pending, nothing moved yet)
				 * returns at once instead of being retried: a
				 * caller holding a region lock drops it first */
long uffd_move(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
	       uintptr_t src, size_t len, unsigned flags);

#endif /* UFP_UFFD_H */
