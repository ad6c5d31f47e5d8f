/* SPDX-License-Identifier: MIT */
/*
 * mm.h - structural primitives (mm.c), the image of mm/mmap.c; mremap (remap.c).
 */
#ifndef UFP_MM_H
#define UFP_MM_H

#include <stdatomic.h>
#include "base.h"

struct ufp_pager;
struct ufp_region;
struct ufp_tstats;

/* Validate [addr, addr+len) as an aligned, non-empty arena range. */
int mm_check_range(struct ufp_pager *p, const void *addr, size_t len);
/* Is every page of [start, end) covered by regions (no HOLE)? */
bool mm_range_mapped(struct ufp_pager *p, uintptr_t start, uintptr_t end);
/* Structural primitives, pager write lock held. */
int mm_map_locked(struct ufp_pager *p, uintptr_t start, size_t len, int prot,
		     unsigned rflags, struct ufp_region **out);
int mm_unmap_locked(struct ufp_pager *p, uintptr_t start, uintptr_t end,
		       bool kernel_done);
int mm_find_free(struct ufp_pager *p, size_t len, uintptr_t *out);
void mm_clear_ptes(struct ufp_pager *p, uintptr_t start, uintptr_t end);
/* Split r at addr (start < addr < end): r keeps [start, addr), the new
 * region [addr, end) is returned. r must be write-locked. */
struct ufp_region *mm_split(struct ufp_pager *p, struct ufp_region *r,
				uintptr_t addr);
/* Merge b into a (adjacent, a before b): b is detached. Both write-locked. */
void mm_merge(struct ufp_pager *p, struct ufp_region *a, struct ufp_region *b);
bool mm_mergeable(const struct ufp_region *a, const struct ufp_region *b);
void mm_check_invariants(struct ufp_pager *p);
/* The regions overlapping [s, e), in address order, in a malloc'd array
 * (pager lock held). Returns 0 or -ENOMEM. */
int mm_gather(struct ufp_pager *p, uintptr_t s, uintptr_t e, struct ufp_region ***out,
	      size_t *n);
/* Write-lock every region overlapping [s, e) (pager write lock held). */
void mm_lock_range(struct ufp_pager *p, uintptr_t s, uintptr_t e);

/* remap.c's part of the pager: mremapped ranges being carried over */
#define UFP_REMAP_SLOTS 4
#define UFP_REMAP_POISON (~0ull)    /* remap.c: a poisoned page moved */
struct pager_remap {
	struct {
		_Atomic uintptr_t to, end;
		uintptr_t from;             /* set before end is published */
		_Atomic bool carried;       /* event worker: done early (an UNMAP of
					     * the old range came first) */
	} slots[UFP_REMAP_SLOTS];
	_Atomic uint32_t futex;          /* bumped when a range is done */
};

/* remap.c: a program's mremap of managed memory. */
bool remap_covers(struct ufp_pager *p, uintptr_t addr);
unsigned remap_publish(struct ufp_pager *p, uintptr_t from, uintptr_t to, size_t len);
/* The REMAP event is done: free its slot, wake faults held back. */
void remap_end(struct ufp_pager *p, unsigned slot);
void remap_carry_before_unmap(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t s,
			      uintptr_t e);
void remap_wait(struct ufp_pager *p, uintptr_t addr);
bool remap_wait_reader(struct ufp_pager *p);
void remap_carry(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t from, uintptr_t to,
		 size_t len, unsigned slot);

#endif /* UFP_MM_H */
