/* SPDX-License-Identifier: MIT */
/*
 * pagers.h - the process's live pagers (pagers.c) and the fork policy (fork.c).
 */
#ifndef UFP_PAGERS_H
#define UFP_PAGERS_H

#include "base.h"

struct ufp_pager;
struct ufp_tstats;

/* pagers.c: the process's live pagers (below thread.c). */
int pagers_add(struct ufp_pager *p);
void pagers_del(struct ufp_pager *p);
/* Does the pager with this id still exist? Lock-free. */
bool pagers_id_alive(uint64_t id);
/* A thread is done with pager `id`: free its swap I/O context and retire
 * its counter block if the pager still lives. */
void pagers_thread_exit(uint64_t id, struct ufp_tstats *ts);
/* The table under its mutex (fork.c): lock, look at slot i, unlock. */
void pagers_lock_all(void);
void pagers_unlock_all(void);
struct ufp_pager *pagers_at(unsigned i);

/* fork.c: the pthread_atfork handlers, installed once. */
void fork_handlers_install(void);

#endif /* UFP_PAGERS_H */
