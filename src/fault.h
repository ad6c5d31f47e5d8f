/* SPDX-License-Identifier: MIT */
/*
 * fault.h - serving one fault (fault.c).
 */
#ifndef UFP_FAULT_H
#define UFP_FAULT_H

#include "base.h"

struct ufp_pager;
struct ufp_tstats;

/* fault.c: serve one missing fault at addr (handler thread or SIGBUS
 * handler). Returns 0, -EAGAIN (retry later), -EFAULT (not ours). */
int fault_serve(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t addr,
		    bool write, bool rcu_ok);
/* Would serving a fault at addr wait for a read (its page is on the swap
 * file or the NBD export)? A hint, read without locks. */
bool fault_needs_read(struct ufp_pager *p, uintptr_t addr);

#endif /* UFP_FAULT_H */
