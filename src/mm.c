/* SPDX-License-Identifier: MIT */
/*
 * mm.c - the structural primitives, the image of mm/mmap.c: find a free
 * range, map and unmap under the pager write lock, split and merge
 * regions, lock the regions of a range in address order, clear the page
 * state of a range. The public calls (pager.c, alloc.c), the event worker
 * (events.c) and mremap (remap.c) build on these.
 *
 * Structural contract (PROTOCOL.md, "Which structural operations lock which
 * regions"): every structural op takes the pager lock for write, write-locks
 * exactly the regions it changes (in address order), changes the tree,
 * commits (one release store of the new root) and unlocks, which releases
 * all region marks at once. Faults on other regions keep running.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "base.h"
#include "sys.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "uffd.h"
#include "pte.h"
#include "mm.h"
#include "swap_backend.h"

/* ======================================================================
 * Helpers (pager write lock held unless said otherwise).
 * ====================================================================== */

int mm_check_range(struct ufp_pager *p, const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	if (!len || (a & ~UFP_PAGE_MASK) || (len & ~UFP_PAGE_MASK))
		return -EINVAL;
	if (a < p->arena_base || a >= p->arena_end || len > p->arena_end - a)
		return -EINVAL;
	return 0;
}

bool mm_range_mapped(struct ufp_pager *p, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	pager_assert_locked(p);

	while (a < end) {
		struct ufp_region *r = region_tree_lookup(&p->tree, a);

		if (!r || (r->flags & UFP_RF_HOLE))
			return false;
		a = region_end(r);
	}
	return true;
}

void mm_clear_ptes(struct ufp_pager *p, uintptr_t start, uintptr_t end)
{
	int64_t cleared = 0;

	pager_assert_write_locked(p);

	if (start < p->arena_base)
		start = p->arena_base;
	if (end > p->arena_end)
		end = p->arena_end;
	for (uintptr_t a = start; a < end; a += UFP_PAGE_SIZE)
		cleared += pte_discard(p, pte_index(p, a));
	if (cleared)
		STAT_ADD(thread_stats(p, true), resident_pages, -cleared);
}

int mm_find_free(struct ufp_pager *p, size_t len, uintptr_t *out)
{
	uintptr_t cand = p->bump;
	bool wrapped = false;

	pager_assert_write_locked(p);

	if (len > p->arena_end - p->arena_base)
		return -ENOMEM;
	for (;;) {
		struct ufp_region *r;

		if (cand < p->arena_base || cand > p->arena_end - len) {
			if (wrapped)
				return -ENOMEM;
			wrapped = true;
			cand = p->arena_base;
			continue;
		}
		r = region_tree_lookup(&p->tree, cand);
		if (r) {
			cand = region_end(r);
			continue;
		}
		r = region_tree_next(&p->tree, cand);
		if (!r || region_start(r) - cand >= len) {
			*out = cand;
			p->bump = cand + len;
			return 0;
		}
		cand = region_end(r);
		if (wrapped && cand >= p->bump)
			return -ENOMEM;
	}
}

bool mm_mergeable(const struct ufp_region *a, const struct ufp_region *b)
{
	return a && b && !((a->flags | b->flags) & (UFP_RF_ALLOC | UFP_RF_HOLE)) &&
	       region_end(a) == region_start(b) && region_prot(a) == region_prot(b);
}

struct ufp_region *mm_split(struct ufp_pager *p, struct ufp_region *r, uintptr_t addr)
{
	struct ufp_region *n;

	region_assert_write_locked(r);
	UFP_BUG_ON(addr <= region_start(r) || addr >= region_end(r));
	n = region_alloc(p, addr, region_end(r), region_prot(r), r->flags);
	if (!n)
		return NULL;
	n->alloc_size = r->alloc_size;
	/* the new half is invisible until commit, and locked with r */
	atomic_store_explicit(&n->lock_seq, atomic_load(&p->lock.seq), memory_order_relaxed);
	atomic_store_explicit(&r->end, addr, memory_order_relaxed);
	if (region_tree_insert(&p->tree, n)) {
		atomic_store_explicit(&r->end, region_end(n), memory_order_relaxed);
		slab_free(n);
		return NULL;
	}
	STAT_INC(thread_stats(p, true), splits);
	return n;
}

void mm_merge(struct ufp_pager *p, struct ufp_region *a, struct ufp_region *b)
{
	region_assert_write_locked(a);
	region_assert_write_locked(b);
	UFP_BUG_ON(region_end(a) != region_start(b));
	atomic_store_explicit(&a->end, region_end(b), memory_order_relaxed);
	/* b's spilled counts go with its pages (its threads' live slots die
	 * with its id: a merge is rare next to faults) */
	for (unsigned k = 0; k < RC_NR; k++)
		atomic_fetch_add_explicit(&a->spill[k],
			atomic_load_explicit(&b->spill[k], memory_order_relaxed),
			memory_order_relaxed);
	region_detach(p, b);
	STAT_INC(thread_stats(p, true), merges);
}

/* Lock a set of regions in address order (they are gathered sorted). */
static void lock_sorted(struct ufp_region **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i])
			region_write_lock(v[i]);
}

/* Regions overlapping [s, e), in address order, as a malloc'ed array. */
int mm_gather(struct ufp_pager *p, uintptr_t s, uintptr_t e,
		  struct ufp_region ***out, size_t *n)
{
	size_t cap = 8, cnt = 0;
	struct ufp_region **v = slab_alloc(cap * sizeof(*v));
	struct ufp_region *r = region_tree_lookup(&p->tree, s);

	pager_assert_locked(p);

	if (!v)
		return -ENOMEM;
	if (!r)
		r = region_tree_next(&p->tree, s);
	for (; r && region_start(r) < e; r = region_tree_next(&p->tree, region_end(r))) {
		if (cnt == cap) {
			struct ufp_region **nv = slab_realloc(v, (cap *= 2) * sizeof(*v));

			if (!nv) {
				slab_free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = r;
	}
	*out = v;
	*n = cnt;
	return 0;
}

void mm_lock_range(struct ufp_pager *p, uintptr_t s, uintptr_t e)
{
	pager_assert_write_locked(p);
	for (struct ufp_region *r = region_tree_lookup(&p->tree, s) ?: region_tree_next(&p->tree, s);
	     r && region_start(r) < e; r = region_tree_next(&p->tree, region_end(r)))
		region_write_lock(r);
}

/* ======================================================================
 * Structural primitives (pager write lock held).
 * ====================================================================== */

int mm_map_locked(struct ufp_pager *p, uintptr_t start, size_t len, int prot,
		     unsigned rflags, struct ufp_region **out)
{
	struct ufp_region *r, *prev = NULL, *next = NULL;
	int err;

	pager_assert_write_locked(p);
	if (sys_mmap((void *)start, len, prot_to_mmap(prot),
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -errno;
	err = uffd_register(p, start, len);
	if (err) {
		ufp_set_error("ufpager: UFFDIO_REGISTER failed: %s", strerror(-err));
		goto undo_mmap;
	}
	r = region_alloc(p, start, start + len, prot, rflags);
	if (!r) {
		err = -ENOMEM;
		goto undo_reg;
	}
	/* Merge candidates, kernel-style (plain maps only). */
	prev = region_tree_prev(&p->tree, start);
	next = region_tree_next(&p->tree, start + len);
	if (!mm_mergeable(prev, r))
		prev = NULL;
	if (!mm_mergeable(r, next))
		next = NULL;
	/* lock order: prev < r < next */
	if (prev)
		region_write_lock(prev);
	region_write_lock(r);      /* invisible yet: never waits */
	if (next)
		region_write_lock(next);
	err = region_tree_insert(&p->tree, r);
	if (err) {
		slab_free(r);
		goto undo_reg;
	}
	if (prev) {
		mm_merge(p, prev, r);
		r = prev;
	}
	if (next)
		mm_merge(p, r, next);
	if (out)
		*out = r;
	return 0;
undo_reg:
	uffd_unregister(p, start, len);
undo_mmap:
	sys_mmap((void *)start, len, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return err;
}

/*
 * The kernel's side of an unmap: unregister [s, e) (so our own MAP_FIXED
 * raises no UNMAP event for the event worker to misread) and re-reserve it
 * PROT_NONE. On failure the range is registered again and still mapped:
 * -ENOMEM (the map count limit), with the detail. A range that can be
 * neither replaced nor registered again would hand its missing pages to
 * the kernel's zero fill: that one stays a BUG.
 */
static int unmap_range(struct ufp_pager *p, uintptr_t s, uintptr_t e)
{
	int err = uffd_unregister(p, s, e - s);

	if (!err && sys_mmap((void *)s, e - s, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
			MAP_FAILED)
		err = -errno;
	if (!err)
		return 0;
	/* unregistering may have split and cleared part of the range */
	UFP_BUG_ON(uffd_register(p, s, e - s) != 0);
	return ufp_error(err, "ufpager: cannot unmap [%#lx, %#lx): %s (splitting its "
			 "mapping needs more VMAs than vm.max_map_count allows?)",
			 (unsigned long)s, (unsigned long)e, strerror(-err));
}

/*
 * Remove [s, e) from the tree: split at the edges, detach what is inside.
 * kernel_done: the kernel already unmapped it (a foreign UNMAP/REMAP
 * event): only re-reserve the hole, never MAP_FIXED over it blindly.
 */
int mm_unmap_locked(struct ufp_pager *p, uintptr_t s, uintptr_t e, bool kernel_done)
{
	struct ufp_region **v;
	size_t n;
	int err;

	pager_assert_write_locked(p);
	if (s < p->arena_base)
		s = p->arena_base;
	if (e > p->arena_end)
		e = p->arena_end;
	if (s >= e)
		return 0;
	err = mm_gather(p, s, e, &v, &n);
	if (err)
		return err;
	/* The kernel's part first, while it can still be undone: unmapping
	 * inside a region splits its VMA, which fails with ENOMEM at
	 * vm.max_map_count. Then nothing has changed (the pages are still
	 * there, still served by us) and the caller gets -ENOMEM. And before
	 * the regions are write-locked: UFFDIO_UNREGISTER and the MAP_FIXED
	 * take mmap_lock for write, which beside another writer in the
	 * process waits for milliseconds; faults elsewhere in a region that
	 * is only partly unmapped go on meanwhile (the pager lock alone is
	 * held, which per-region faults never take). A fault in the range
	 * itself finds it gone: its fill fails, and the entries are cleared
	 * below under the write locks. */
	if (!kernel_done) {
		err = unmap_range(p, s, e);
		if (err) {
			slab_free(v);
			return err;
		}
	}
	lock_sorted(v, n);
	for (size_t i = 0; i < n; i++) {
		struct ufp_region *r = v[i];

		if (region_start(r) < s) {
			r = mm_split(p, r, s);
			if (!r) {
				err = -ENOMEM;
				break;
			}
		}
		if (region_end(r) > e && !mm_split(p, r, e)) {
			err = -ENOMEM;
			break;
		}
		region_detach(p, r);
	}
	slab_free(v);
	/* out of memory for a tree node (the kernel range is gone already:
	 * an access there faults as PROT_NONE memory would) */
	if (err)
		return ufp_error(err, "ufpager: out of memory splitting regions to unmap "
				 "[%#lx, %#lx)", (unsigned long)s, (unsigned long)e);
	if (kernel_done && sys_mmap((void *)s, e - s, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
			-1, 0) == MAP_FAILED) {
		/* something else lives there now: keep the range out of use */
		struct ufp_region *h = region_alloc(p, s, e, 0, UFP_RF_HOLE);

		if (h && region_tree_insert(&p->tree, h))
			slab_free(h);
	}
	mm_clear_ptes(p, s, e);
	return 0;
}

/* Debug / tests: check the tree against the kernel-independent invariants. */
void mm_check_invariants(struct ufp_pager *p)
{
	pager_read_lock(p);
	region_tree_check(&p->tree);
	for (struct ufp_region *a = region_tree_next(&p->tree, 0), *b; a; a = b) {
		b = region_tree_next(&p->tree, region_end(a));
		/* adjacent plain regions with equal attributes are merged */
		UFP_BUG_ON(mm_mergeable(a, b));
	}
	pager_read_unlock(p);
}

