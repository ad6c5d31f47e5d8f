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

#endif /* UFP_FAULT_H */
