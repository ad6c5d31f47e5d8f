/* SPDX-License-Identifier: MIT */
/*
 * options.c - the option table: one row per option (name, default, parser),
 * read from UFPAGER_<NAME> environment variables, overridden by non-zero
 * API parameters. Both sources go through one validation (the row's range
 * and page alignment): a bad value from either makes ufp_pager_create fail
 * with -EINVAL and a detail in ufp_last_error() that names the variable or
 * the field. `ufpagerctl config` prints the result.
 * Called only from ufp_pager_create (normal context).
 */
#include <ctype.h>
#include <unistd.h>

#include "base.h"
#include "options.h"
#include "thread.h"

enum opt_kind { OK_SIZE, OK_UINT, OK_INT, OK_STR, OK_LOCK, OK_DELIVERY, OK_BOOL };

struct opt_desc {
	const char *name;        /* UFPAGER_<NAME> upper-cased */
	enum opt_kind kind;
	size_t off;              /* into struct ufp_options */
	int64_t def;
	int64_t min, max;        /* valid range (both sources) */
	bool page_multiple;      /* sizes: a multiple of the page size */
	const char *help;
};

#define OFF(f) offsetof(struct ufp_options, f)
#define PG true
/* Booleans and strings: no range of their own to state. */
#define BOOL_OPT(name, def, help) { #name, OK_BOOL, OFF(name), def, 0, 1, false, help }
#define STR_OPT(name, help) { #name, OK_STR, OFF(name), 0, 0, 0, false, help }
static const struct opt_desc opts[] = {
	{ "arena_size", OK_SIZE, OFF(arena_size), 64LL << 30, 4096, 1LL << 46, PG,
	  "virtual address space reserved per pager" },
	{ "budget", OK_SIZE, OFF(budget), 0, 0, 1LL << 46, PG, "resident budget (0: unlimited)" },
	{ "handler_threads", OK_UINT, OFF(handler_threads), 0, 0, 1024, 0,
	  "fault handler threads (0: one per core, at least 2; at most 1024)" },
	{ "lock_mode", OK_LOCK, OFF(lock_mode), UFP_LOCK_PER_REGION, 1, 3, 0,
	  "per-region | global | global-retry" },
	{ "delivery", OK_DELIVERY, OFF(delivery), UFP_DELIVERY_SIGBUS, 1, 2, 0,
	  "sigbus (self-paging) | handler (threads)" },
	{ "spin_us", OK_INT, OFF(spin_us), 50, -1, 1000000, 0,
	  "handler spin before blocking, microseconds (-1: never spin)" },
	{ "fault_around", OK_UINT, OFF(fault_around), 16, 1, 512, 0,
	  "pages zero-filled per first-touch fault (1: none; at most 512)" },
	BOOL_OPT(export_stats, 1, "publish stats in shared memory (0/1)"),
	{ "swap_size", OK_SIZE, OFF(swap_size), 1LL << 30, 1LL << 20, 1LL << 52, PG, "swap file size" },
	{ "ztier_size", OK_SIZE, OFF(ztier_size), 64LL << 20, 0, 1LL << 46, 0,
	  "compressed RAM tier cap (0: no tier)" },
	STR_OPT(swap_dir, "directory of the O_TMPFILE swap file (default /var/tmp)"),
	STR_OPT(swap, "where evicted pages go: a directory (as swap_dir), or an NBD URI "
		"nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH (beats swap_dir)"),
	BOOL_OPT(dirty_track, 1,
		 "track writes with UFFD WP_ASYNC + PAGEMAP_SCAN where the kernel has them (0/1)"),
	BOOL_OPT(second_chance, 1, "CLOCK second chance for referenced pages (0: FIFO sweep)"),
	{ "park_pct", OK_UINT, OFF(park_pct), 10, 0, 75, 0,
	  "share of the budget, percent, kept parked (soft inactive list; 0: none)" },
	BOOL_OPT(verbose, 0,
		 "print warnings on stderr (the library is silent otherwise; process-wide)"),
	BOOL_OPT(sandbox, 1, "seccomp allowlist on each service thread (0/1)"),
	STR_OPT(inject, "fault injection, tests only (README \"Fault injection\"): eio=R,short=R,..."),
};
#undef BOOL_OPT
#undef STR_OPT
#undef PG
#define NOPTS (sizeof(opts) / sizeof(opts[0]))
_Static_assert(NOPTS <= sizeof(((struct ufp_options *)0)->src) /
	       sizeof(((struct ufp_options *)0)->src[0]), "ufp_options.src has a slot per option");

int options_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (~0ull >> shift)))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static void env_name(const struct opt_desc *d, char env[64])
{
	unsigned j;

	memcpy(env, "UFPAGER_", 8);
	for (j = 0; d->name[j] && j < 50; j++)
		env[8 + j] = (char)toupper((unsigned char)d->name[j]);
	env[8 + j] = '\0';
}

/* The one validation for both sources. Returns 0 or -EINVAL with the
 * reason in why. */
static int check_value(const struct opt_desc *d, int64_t v, char *why, size_t len)
{
	if (d->kind == OK_STR)
		return 0;
	if (v < d->min || v > d->max) {
		snprintf(why, len, "%lld is out of range [%lld, %lld]", (long long)v,
			 (long long)d->min, (long long)d->max);
		return -EINVAL;
	}
	if (d->page_multiple && (v & (int64_t)(UFP_PAGE_SIZE - 1))) {
		snprintf(why, len, "%lld is not a multiple of the page size (%lu)", (long long)v,
			 UFP_PAGE_SIZE);
		return -EINVAL;
	}
	return 0;
}

static int parse_value(const struct opt_desc *d, const char *s, int64_t *v, const char **str)
{
	uint64_t u;
	char *end;

	switch (d->kind) {
	case OK_SIZE:
		if (options_parse_size(s, &u) || u > INT64_MAX)
			return -EINVAL;
		*v = (int64_t)u;
		return 0;
	case OK_UINT:
	case OK_INT:
	case OK_BOOL:
		errno = 0;
		*v = strtoll(s, &end, 10);
		if (errno || !*s || *end || (d->kind != OK_INT && *v < 0) ||
		    (d->kind == OK_BOOL && *v > 1))
			return -EINVAL;
		return 0;
	case OK_LOCK:
		if (!strcmp(s, "per-region")) *v = UFP_LOCK_PER_REGION;
		else if (!strcmp(s, "global")) *v = UFP_LOCK_GLOBAL;
		else if (!strcmp(s, "global-retry")) *v = UFP_LOCK_GLOBAL_RETRY;
		else return -EINVAL;
		return 0;
	case OK_DELIVERY:
		if (!strcmp(s, "sigbus")) *v = UFP_DELIVERY_SIGBUS;
		else if (!strcmp(s, "handler")) *v = UFP_DELIVERY_HANDLER;
		else return -EINVAL;
		return 0;
	case OK_STR:
		*str = s;
		return 0;
	}
	return -EINVAL;
}

static void store(struct ufp_options *o, const struct opt_desc *d, int64_t v, const char *str)
{
	char *base = (char *)o + d->off;

	if (d->kind == OK_STR)
		memcpy(base, &str, sizeof(str));
	else if (d->kind == OK_INT)
		memcpy(base, &v, sizeof(v));
	else {
		uint64_t u = (uint64_t)v;

		memcpy(base, &u, sizeof(u));
	}
}

static const struct opt_desc *opt_find(const char *name)
{
	for (unsigned i = 0; i < NOPTS; i++)
		if (!strcmp(opts[i].name, name))
			return &opts[i];
	return NULL;
}

/* An API field: 0 means "not set"; anything else is validated like the
 * environment's value and overrides it. */
static int api_set(struct ufp_options *o, const char *name, int64_t v)
{
	const struct opt_desc *d = opt_find(name);
	char why[128];

	if (!v)
		return 0;
	if (check_value(d, v, why, sizeof(why)))
		return ufp_error(-EINVAL, "ufp_params.%s: %s (%s)", name, why, d->help);
	store(o, d, v, NULL);
	o->src[d - opts] = UFP_SRC_API;
	return 0;
}

/* The effective swap location: UFPAGER_SWAP beats UFPAGER_SWAP_DIR (and
 * `ufpagerctl config` shows where the value came from). */
static int options_swap(struct ufp_options *o)
{
	if (o->swap && *o->swap) {
		o->swap_dir = o->swap;
		o->src[opt_find("swap_dir") - opts] = o->src[opt_find("swap") - opts];
	}
	return 0;
}

int options_resolve(const struct ufp_params *p, struct ufp_options *o)
{
	int err = 0;

	memset(o, 0, sizeof(*o));
	for (unsigned i = 0; i < NOPTS; i++) {
		const struct opt_desc *d = &opts[i];
		const char *s, *str = NULL;
		int64_t v = d->def;
		char env[64], why[128] = "cannot parse it";

		env_name(d, env);
		store(o, d, v, NULL);
		o->src[i] = UFP_SRC_DEFAULT;
		s = getenv(env);
		if (!s || !*s)
			continue;
		if (parse_value(d, s, &v, &str) || check_value(d, v, why, sizeof(why)))
			return ufp_error(-EINVAL, "%s=%s: %s (%s)", env, s, why, d->help);
		store(o, d, v, str);
		o->src[i] = UFP_SRC_ENV;
	}
	if (!p)
		return options_swap(o);
	if (p->size < offsetof(struct ufp_params, reserved) || p->version != UFP_PARAMS_VERSION)
		return ufp_error(-EINVAL, "struct ufp_params: size %u / version %u do not match "
				 "this library (set size = sizeof(struct ufp_params), version = "
				 "UFP_PARAMS_VERSION)", p->size, p->version);
	if (p->flags & ~UFP_PF_ALL)
		return ufp_error(-EINVAL, "ufp_params.flags: unknown flags 0x%x",
				 p->flags & ~UFP_PF_ALL);
	err = err ?: api_set(o, "arena_size", (int64_t)p->arena_size);
	err = err ?: api_set(o, "budget", (int64_t)p->budget);
	err = err ?: api_set(o, "handler_threads", p->handler_threads);
	err = err ?: api_set(o, "lock_mode", p->lock_mode);
	err = err ?: api_set(o, "delivery", p->delivery);
	err = err ?: api_set(o, "spin_us", p->spin_us);
	err = err ?: api_set(o, "fault_around", p->fault_around);
	err = err ?: api_set(o, "swap_size", (int64_t)p->swap_size);
	err = err ?: api_set(o, "ztier_size", (int64_t)p->ztier_size);
	if (err)
		return err;
	if ((int64_t)p->arena_size < 0 || (int64_t)p->budget < 0 ||
	    (int64_t)p->swap_size < 0 || (int64_t)p->ztier_size < 0)
		return ufp_error(-EINVAL, "ufp_params: a size is out of range");
	if (p->flags & UFP_PF_NO_EXPORT) {
		o->export_stats = 0;
		o->src[opt_find("export_stats") - opts] = UFP_SRC_API;
	}
	if (p->flags & UFP_PF_NO_SANDBOX) {
		o->sandbox = 0;
		o->src[opt_find("sandbox") - opts] = UFP_SRC_API;
	}
	if (p->swap_dir) {
		/* the API field takes a directory or an NBD URI, like UFPAGER_SWAP */
		store(o, opt_find("swap_dir"), 0, p->swap_dir);
		o->src[opt_find("swap_dir") - opts] = UFP_SRC_API;
		store(o, opt_find("swap"), 0, p->swap_dir);
		o->src[opt_find("swap") - opts] = UFP_SRC_API;
	}
	return options_swap(o);
}

void options_print(FILE *f, const struct ufp_options *o)
{
	static const char *srcname[] = { "default", "environment", "API" };

	for (unsigned i = 0; i < NOPTS; i++) {
		const struct opt_desc *d = &opts[i];
		const char *base = (const char *)o + d->off;
		char val[64];
		uint64_t u;
		int64_t v;
		const char *str;

		switch (d->kind) {
		case OK_STR:
			memcpy(&str, base, sizeof(str));
			snprintf(val, sizeof(val), "%s", str ? str : "(default)");
			break;
		case OK_INT:
			memcpy(&v, base, sizeof(v));
			snprintf(val, sizeof(val), "%lld", (long long)v);
			break;
		case OK_LOCK:
			memcpy(&u, base, sizeof(u));
			snprintf(val, sizeof(val), "%s", u == UFP_LOCK_GLOBAL ? "global" :
				 u == UFP_LOCK_GLOBAL_RETRY ? "global-retry" : "per-region");
			break;
		case OK_DELIVERY:
			memcpy(&u, base, sizeof(u));
			snprintf(val, sizeof(val), "%s", u == UFP_DELIVERY_HANDLER ? "handler" : "sigbus");
			break;
		default:
			memcpy(&u, base, sizeof(u));
			snprintf(val, sizeof(val), "%llu", (unsigned long long)u);
		}
		char env[64];

		env_name(d, env);
		fprintf(f, "%-26s %-14s %-12s %s\n", env, val, srcname[o->src[i]], d->help);
	}
}
