/* SPDX-License-Identifier: MIT */
/*
 * options.h - the option table (options.c): struct ufp_params and UFPAGER_<NAME>
 * environment variables resolved into one struct.
 */
#ifndef UFP_OPTIONS_H
#define UFP_OPTIONS_H

#include <stdio.h>
#include "base.h"
#include "ufpager.h"

/* ======================================================================
 * Options (options.c): one table, UFPAGER_<NAME> environment variables.
 * ====================================================================== */

enum ufp_opt_source { UFP_SRC_DEFAULT, UFP_SRC_ENV, UFP_SRC_API };

struct ufp_options {
	uint64_t arena_size;
	uint64_t budget;
	uint64_t handler_threads;
	uint64_t lock_mode;
	uint64_t delivery;
	int64_t spin_us;
	uint64_t fault_around;
	uint64_t export_stats;
	uint64_t swap_size;
	uint64_t ztier_size;
	const char *swap_dir;          /* the effective swap location: UFPAGER_SWAP
					* beats UFPAGER_SWAP_DIR (options_resolve) */
	const char *swap;              /* UFPAGER_SWAP: a directory or an NBD URI */
	uint64_t dirty_track;
	uint64_t second_chance;
	uint64_t park_pct;
	uint64_t verbose;
	const char *inject;            /* fault injection spec (inject.h) */
	uint64_t sandbox;
	enum ufp_opt_source src[24];
};

/* Resolve params (may be NULL) + environment into *o. Returns 0 or -EINVAL
 * for a bad API value (a bad environment value is reported and ignored). */
int options_resolve(const struct ufp_params *p, struct ufp_options *o);
/* Print the effective options and their sources, one per line. */
void options_print(FILE *f, const struct ufp_options *o);
/* Parse a size with an optional K/M/G/T suffix. Returns 0 or -EINVAL. */
int options_parse_size(const char *s, uint64_t *out);

#endif /* UFP_OPTIONS_H */
