/* SPDX-License-Identifier: MIT */
/*
 * stats_print.c - the public read-outs a tool needs without reaching into
 * the library (mimalloc's mi_stats_print / mi_stats_get_json /
 * mi_options_print): the version, the statistics as text and JSON, the
 * effective configuration, and the validating reader of another process's
 * statistics segment. Thin doors onto stats.c, options.c and export.c;
 * every argument is checked here and every failure is explained through
 * ufp_last_error(). Normal context (stdio, open, mmap); no lock is taken.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "options.h"
#include "stats.h"
#include "thread.h"
#include "region.h"
#include "ufp_export.h"

#define UFP_STR2(x) #x
#define UFP_STR(x) UFP_STR2(x)

UFP_API const char *ufp_version(void)
{
	return UFP_STR(UFP_VERSION_MAJOR) "." UFP_STR(UFP_VERSION_MINOR) "."
	       UFP_STR(UFP_VERSION_PATCH);
}

/* ======================================================================
 * Statistics as text and JSON.
 * ====================================================================== */

/* Copy a caller's struct (version 2 to 4, checked like ufp_stats_get)
 * into a full one; the fields it lacks stay 0. Returns 0 or -EINVAL. */
static int stats_copy_in(const char *call, const struct ufp_stats *s, FILE *out,
			 struct ufp_stats *full)
{
	size_t v2 = offsetof(struct ufp_stats, UFP_STATS_FIRST_V3);

	if (!s || !out)
		return ufp_error(-EINVAL, "%s: %s is NULL", call, !s ? "stats" : "out");
	if (s->version < 2 || s->version > UFP_STATS_VERSION || s->size < v2)
		return ufp_error(-EINVAL, "%s: struct ufp_stats size %u / version %u: not a "
				 "struct this library knows (set size = sizeof(struct ufp_stats), "
				 "version = UFP_STATS_VERSION)", call, s->size, s->version);
	memset(full, 0, sizeof(*full));
	memcpy(full, s, s->size < sizeof(*full) ? s->size : sizeof(*full));
	return 0;
}

static int stats_out(const char *call, FILE *out)
{
	return ferror(out) ? ufp_error(-EIO, "%s: writing failed", call) : 0;
}

/* Check, copy, print with one of stats.c's printers. */
static int stats_print_with(const char *call, const struct ufp_stats *stats, FILE *out,
			    void (*print)(FILE *f, const struct ufp_stats *s))
{
	struct ufp_stats full;
	int err;

	ufp_clear_error();
	if ((err = stats_copy_in(call, stats, out, &full)))
		return err;
	print(out, &full);
	return stats_out(call, out);
}

UFP_API int ufp_stats_print(const struct ufp_stats *stats, FILE *out)
{
	return stats_print_with("ufp_stats_print", stats, out, ufp_stats_print_text);
}

UFP_API int ufp_stats_json(const struct ufp_stats *stats, FILE *out)
{
	return stats_print_with("ufp_stats_json", stats, out, ufp_stats_print_json);
}

/* ======================================================================
 * The effective configuration.
 * ====================================================================== */

UFP_API int ufp_config_print(const struct ufp_params *params, FILE *out)
{
	struct ufp_options o;
	int err;

	ufp_clear_error();
	if (!out)
		return ufp_error(-EINVAL, "ufp_config_print: out is NULL");
	if ((err = options_resolve(params, &o)))
		return err;   /* the detail is set */
	fprintf(out, "%-26s %-14s %-12s %s\n", "VARIABLE", "VALUE", "SOURCE", "MEANING");
	options_print(out, &o);
	return stats_out("ufp_config_print", out);
}

/* ======================================================================
 * Another process's statistics segment.
 * ====================================================================== */

UFP_API int ufp_snapshot_read(const char *path, struct ufp_snapshot *out)
{
	struct ufp_export e;
	char why[256] = "";
	int err;

	ufp_clear_error();
	if (!path || !out)
		return ufp_error(-EINVAL, "ufp_snapshot_read: %s is NULL", !path ? "path" : "out");
	if (out->size < sizeof(*out) || out->version != UFP_SNAPSHOT_VERSION)
		return ufp_error(-EINVAL, "ufp_snapshot_read: struct ufp_snapshot size %u / "
				 "version %u do not match this library (set size = sizeof(struct "
				 "ufp_snapshot), version = UFP_SNAPSHOT_VERSION)", out->size,
				 out->version);
	if ((err = ufp_export_read(path, &e, why, sizeof(why))))
		return ufp_error(err, "ufp_snapshot_read: %s", why);
	memset((char *)out + 2 * sizeof(uint32_t), 0, sizeof(*out) - 2 * sizeof(uint32_t));
	out->pid = e.pid;
	out->pager_id = e.pager_id;
	out->lock_mode = (uint32_t)e.lock_mode;
	out->delivery = (uint32_t)e.delivery;
	out->budget = e.budget;
	out->update_ns = e.update_ns;
	out->stats = e.stats;
	out->stats.size = sizeof(out->stats);
	out->stats.version = UFP_STATS_VERSION;
	out->nregions = (uint32_t)e.nrows;   /* <= UFP_EXPORT_ROWS: checked by the reader */
	_Static_assert(UFP_EXPORT_ROWS <= UFP_SNAPSHOT_REGIONS, "every exported row fits");
	for (unsigned i = 0; i < out->nregions; i++) {
		const struct ufp_export_region *r = &e.rows[i];

		out->regions[i] = (struct ufp_region_stats){
			.start = r->start, .end = r->end, .prot = (uint32_t)r->prot,
			.flags = r->flags & UFP_RF_ALLOC ? UFP_REGION_ALLOC : 0,
			.faults = r->faults, .lock_success = r->lock[0], .lock_abort = r->lock[1],
			.lock_retry = r->lock[2], .lock_miss = r->lock[3],
		};
	}
	return 0;
}
