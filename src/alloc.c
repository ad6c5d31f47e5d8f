/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the large-object allocator on top of the pager: each object is
 * one region flagged UFP_RF_ALLOC (never merged), so faults on one object
 * never contend with structural work on another.
 *
 * realloc is the "remap" structural op: the old region is write-locked
 * before its pages move and the new one before it is linked. Pages move
 * with UFFDIO_MOVE (no copy of resident data), which never faults in this
 * thread, so it may run under the locks. A page the kernel will not move
 * (-EBUSY: shared after fork, KSM) is copied afterwards with no lock held,
 * because a copy touches managed memory and a fault needs the locks.
 */
#include <sys/mman.h>

#include "base.h"
#include "sys.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "uffd.h"
#include "mm.h"

static size_t page_round(size_t n)
{
	return (n + UFP_PAGE_SIZE - 1) & UFP_PAGE_MASK;
}

/* Map an object of size bytes at start (free, found by mm_find_free). */
static int alloc_at_locked(struct ufp_pager *p, uintptr_t start, size_t size,
			   struct ufp_region **out)
{
	int err = mm_map_locked(p, start, page_round(size), UFP_PROT_ALL, UFP_RF_ALLOC, out);

	if (!err)
		(*out)->alloc_size = size;
	return err;
}

static int alloc_locked(struct ufp_pager *p, size_t size, struct ufp_region **out)
{
	uintptr_t start;
	int err = mm_find_free(p, page_round(size), &start);

	return err ? err : alloc_at_locked(p, start, size, out);
}

/* The allocator object starting exactly at ptr, or NULL. */
static struct ufp_region *object_at(struct ufp_pager *p, const void *ptr)
{
	struct ufp_region *r = region_tree_lookup(&p->tree, (uintptr_t)ptr);

	if (!r || !(r->flags & UFP_RF_ALLOC) || region_start(r) != (uintptr_t)ptr)
		return NULL;
	return r;
}

static int do_alloc(ufp_pager *p, size_t size, void **out)
{
	struct ufp_region *r;
	int err = 0;

	if (!out || !size)
		return -EINVAL;
	if (size > p->arena_end - p->arena_base)
		return -ENOMEM;
	pager_write_lock(p);
	err = alloc_locked(p, size, &r);
	if (!err)
		*out = (void *)region_start(r);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

static int do_free(ufp_pager *p, void *ptr)
{
	struct ufp_region *r;
	int err = 0;

	if (!ptr)
		return 0;  /* like free(NULL) */
	pager_write_lock(p);
	r = object_at(p, ptr);
	if (!r)
		err = -EINVAL;   /* not an object start, or already freed */
	else
		err = mm_unmap_locked(p, region_start(r), region_end(r), false);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

static int do_alloc_size(ufp_pager *p, const void *ptr, size_t *out)
{
	struct ufp_region *r;

	if (!out)
		return -EINVAL;
	pager_read_lock(p);
	r = object_at(p, ptr);
	if (r)
		*out = r->alloc_size;
	pager_read_unlock(p);
	return r ? 0 : -EINVAL;
}

/* Grow r in place to newlen if the address space after it is free. */
static int grow_in_place(struct ufp_pager *p, struct ufp_region *r, size_t newlen)
{
	uintptr_t s = region_start(r), oe = region_end(r), ne = s + newlen;
	struct ufp_region *nx;
	int err;

	if (ne > p->arena_end || ne < s)
		return -ENOMEM;
	nx = region_tree_next(&p->tree, oe);
	if (nx && region_start(nx) < ne)
		return -ENOMEM;
	region_write_lock(r);
	/* the object keeps its protection, whole: the tail gets the same */
	if (sys_mmap((void *)oe, ne - oe, prot_to_mmap(region_prot(r)),
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -errno;
	err = uffd_register(p, oe, ne - oe);
	if (err) {
		sys_mmap((void *)oe, ne - oe, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
		return err;
	}
	atomic_store_explicit(&r->end, ne, memory_order_relaxed);
	return 0;
}

static void shrink_locked(struct ufp_pager *p, struct ufp_region *r, size_t newlen)
{
	uintptr_t s = region_start(r), ne = s + newlen, oe = region_end(r);

	region_write_lock(r);
	uffd_unregister(p, ne, oe - ne);
	sys_mmap((void *)ne, oe - ne, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	atomic_store_explicit(&r->end, ne, memory_order_relaxed);
	mm_clear_ptes(p, ne, oe);
}

/*
 * Move the pages of [src, src+len) to dst (fresh, empty), both regions
 * write-locked. Resident pages move with UFFDIO_MOVE, their state (and a
 * clean page's stored copy) with them. Pages the kernel refused to move,
 * and pages that are evicted or in flight, are listed in busy[] (offsets,
 * ascending) for the caller to copy with no lock held (the copy faults
 * them in); past busy_cap, everything from *copy_from on is copied.
 */
static size_t move_pages(struct ufp_pager *p, uintptr_t dst, uintptr_t src, size_t len,
			 uintptr_t *busy, size_t busy_cap, size_t *copy_from)
{
	struct ufp_tstats *ts = thread_stats(p, true);
	size_t nbusy = 0;

	*copy_from = len;
	if (!(p->features & UFFD_FEATURE_MOVE)) {
		*copy_from = 0;
		return 0;
	}
	for (size_t off = 0; off < len; off += UFP_PAGE_SIZE) {
		size_t si = pte_index(p, src + off), di = pte_index(p, dst + off);
		uint64_t v = atomic_load_explicit(&p->pte[si], memory_order_acquire);

		if (!(v & PTE_STATE_MASK))
			continue;                    /* never touched: stays zero */
		bool moved = false;

		if ((v & (PTE_PRESENT | PTE_INFLIGHT)) == PTE_PRESENT) {
			/* a hole (the program's own DONTNEED, its REMOVE not
			 * applied yet) moves as nothing: the entry says present,
			 * a fault there fills zeros, as the kernel would */
			moved = uffd_move(p, ts, dst + off, src + off, UFP_PAGE_SIZE,
					  UFP_MOVE_SRC_HOLES) ==
				(long)UFP_PAGE_SIZE;
		}
		if (moved) {
			/* relaxed: both regions are write-locked */
			if (p->slots)
				atomic_store_explicit(&p->slots[di],
					atomic_load_explicit(&p->slots[si], memory_order_relaxed),
					memory_order_relaxed);
			if (p->chash)
				atomic_store_explicit(&p->chash[di],
					atomic_load_explicit(&p->chash[si], memory_order_relaxed),
					memory_order_relaxed);
			atomic_store_explicit(&p->pte[di],
				(atomic_load_explicit(&p->pte[di], memory_order_relaxed) & PTE_GEN_MASK) |
				(v & ~PTE_GEN_MASK), memory_order_relaxed);
			/* the source entry is empty now; its copy moved */
			atomic_store_explicit(&p->pte[si], (v & PTE_GEN_MASK) + PTE_GEN_ONE,
					      memory_order_relaxed);
			continue;
		}
		/* evicted, in flight, or refused (-EBUSY: shared, pinned) */
		if (nbusy == busy_cap) {
			*copy_from = off;
			break;
		}
		busy[nbusy++] = off;
	}
	return nbusy;
}

#define BUSY_CAP 64

static int do_realloc(ufp_pager *p, void *ptr, size_t size, void **out)
{
	struct ufp_region *r, *nr;
	uintptr_t busy[BUSY_CAP];
	size_t oldlen, newlen, nbusy = 0, movelen, copy_from = 0;
	uintptr_t old_start, dst;
	int oprot, err = 0;

	if (!out || !size)
		return -EINVAL;
	if (!ptr)
		return do_alloc(p, size, out);
	if (size > p->arena_end - p->arena_base)
		return -ENOMEM;
	newlen = page_round(size);

	pager_write_lock(p);
	r = object_at(p, ptr);
	if (!r) {
		err = -EINVAL;
		goto out_unlock;
	}
	oldlen = region_end(r) - region_start(r);
	if (newlen <= oldlen) {
		if (newlen < oldlen)
			shrink_locked(p, r, newlen);
		r->alloc_size = size;
		*out = ptr;
		goto out_unlock;
	}
	if (grow_in_place(p, r, newlen) == 0) {
		r->alloc_size = size;
		*out = ptr;
		goto out_unlock;
	}
	/* Move: old region locked before the pages move, new one before it
	 * is linked (alloc_at_locked links it write-locked), the two in
	 * address order: the new place is chosen first, and it may lie below
	 * the old object once the placement cursor has wrapped. The new object
	 * is writable until the copies are done, then gets the old protection
	 * (the object keeps it, whole); the program sees it only after.
	 * UFFDIO_MOVE moves only between equal protections: the pages of a
	 * protected object are all copied. */
	oprot = region_prot(r);
	err = mm_find_free(p, newlen, &dst);
	if (err)
		goto out_unlock;
	if (dst > region_start(r))
		region_write_lock(r);
	err = alloc_at_locked(p, dst, size, &nr);
	if (err)
		goto out_unlock;
	region_write_lock(r);   /* a no-op if taken above */
	old_start = region_start(r);
	movelen = oldlen;
	if (!(oprot & UFP_PROT_READ)) {
		/* the copy below reads the old object: it is going away */
		sys_mprotect((void *)old_start, oldlen, PROT_READ);
		atomic_store_explicit(&r->prot, UFP_PROT_READ, memory_order_relaxed);
	}
	nbusy = move_pages(p, region_start(nr), old_start, movelen, busy, BUSY_CAP, &copy_from);
	*out = (void *)region_start(nr);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);

	/* Copies touch managed memory: no lock held from here. */
	for (size_t i = 0; i < nbusy; i++)
		memcpy((char *)*out + busy[i], (char *)ptr + busy[i], UFP_PAGE_SIZE);
	if (copy_from < movelen)
		memcpy((char *)*out + copy_from, (char *)ptr + copy_from, movelen - copy_from);

	pager_write_lock(p);
	r = object_at(p, ptr);
	if (r)
		err = mm_unmap_locked(p, region_start(r), region_end(r), false);
	nr = object_at(p, *out);
	if (nr && oprot != UFP_PROT_ALL) {
		region_write_lock(nr);
		sys_mprotect(*out, newlen, prot_to_mmap(oprot));
		atomic_store_explicit(&nr->prot, oprot, memory_order_relaxed);
	}
out_unlock:
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

/* ======================================================================
 * Public entry points (see api_begin).
 * ====================================================================== */

UFP_API int ufp_alloc(ufp_pager *p, size_t size, void **out)
{
	return API_CALL(p, do_alloc(p, size, out),
			"ufp_alloc(size=%zu)", size);
}

UFP_API int ufp_free(ufp_pager *p, void *ptr)
{
	return API_CALL(p, do_free(p, ptr),
			"ufp_free(%p): not the start of a live ufp_alloc object", ptr);
}

UFP_API int ufp_alloc_size(ufp_pager *p, const void *ptr, size_t *out)
{
	return API_CALL(p, do_alloc_size(p, ptr, out),
			"ufp_alloc_size(%p)", ptr);
}

UFP_API int ufp_realloc(ufp_pager *p, void *ptr, size_t size, void **out)
{
	return API_CALL(p, do_realloc(p, ptr, size, out),
			"ufp_realloc(%p, size=%zu)", ptr, size);
}
