/* SPDX-License-Identifier: MIT */
/*
 * export.h - the stats views: ufp_stats_get without the guard (pager_stats.c),
 * the live segment (export.c).
 */
#ifndef UFP_EXPORT_CALLS_H
#define UFP_EXPORT_CALLS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "ufpager.h"
#include "sandbox.h"

struct ufp_pager;

/* pager_stats.c: what ufp_stats_get returns, without the public-call
 * guard (the exporter's thread). */
int pager_stats_fill(struct ufp_pager *p, struct ufp_stats *out);

/* export.c's part of the pager */
struct ufp_export;
struct pager_export {
	struct ufp_export *seg;
	char name[64];
	struct service_thread worker;
	_Atomic bool stop;
	_Atomic uint32_t futex;
};

/* export.c */
struct ufp_export;
int export_start(struct ufp_pager *p);
void export_stop(struct ufp_pager *p);

#endif /* UFP_EXPORT_CALLS_H */
