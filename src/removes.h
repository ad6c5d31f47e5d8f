/* SPDX-License-Identifier: MIT */
/* removes.h - the program's MADV_DONTNEED of managed memory (REMOVE
 * events) between the kernel's zap and the event worker (removes.c). */
#ifndef UFP_REMOVES_H
#define UFP_REMOVES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct ufp_pager;

#define UFP_REMOVE_SLOTS 16

struct pager_removes {
	struct {
		_Atomic uintptr_t start;
		_Atomic uintptr_t end;       /* 0 free, 1 claimed, else published */
	} slots[UFP_REMOVE_SLOTS];
	_Atomic uint32_t published;          /* ranges not yet applied: a fast "none" */
	_Atomic uint32_t overflow;           /* ranges without a slot: cover everything */
	_Atomic uint32_t futex;              /* bumped when a range is applied */
};

/* Event reader: publish [start, end) as read and not yet applied (never
 * waits). Returns the slot, for removes_done. */
unsigned removes_publish(struct ufp_pager *p, uintptr_t start, uintptr_t end);
/* Event worker, after the entries are discarded: free the slot. */
void removes_done(struct ufp_pager *p, unsigned slot);
/* Is addr in a published range (async-signal-safe, no wait)? */
bool removes_covers(struct ufp_pager *p, uintptr_t addr);
/* Could a REMOVE of addr be read and not yet applied: a reader between its
 * read and publishing, or a published range covering addr. No wait. */
bool removes_pending(struct ufp_pager *p, uintptr_t addr);
/* Handler delivery: wait until every handler's read of the uffd in
 * progress now has published its events (async-signal-safe; also remap.c's
 * ordering of an UNMAP after its REMAP). */
void removes_wait_sections(struct ufp_pager *p);
/* Wait, holding no lock, until every read in progress has published its
 * events and no published range covers addr (async-signal-safe). */
void removes_wait(struct ufp_pager *p, uintptr_t addr);

#endif /* UFP_REMOVES_H */
