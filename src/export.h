/* SPDX-License-Identifier: MIT */
/*
 * export.h - the stats views: ufp_stats_get without the guard (pager_stats.c),
 * the live segment (export.c).
 */
#ifndef UFP_EXPORT_CALLS_H
#define UFP_EXPORT_CALLS_H

#include "ufpager.h"

struct ufp_pager;

/* pager_stats.c: what ufp_stats_get returns, without the public-call
 * guard (the exporter's thread). */
int pager_stats_fill(struct ufp_pager *p, struct ufp_stats *out);

/* export.c */
struct ufp_export;
int export_start(struct ufp_pager *p);
void export_stop(struct ufp_pager *p);

#endif /* UFP_EXPORT_CALLS_H */
