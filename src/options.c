/* SPDX-License-Identifier: MIT */
/*
 * options.c - the option table: one row per option (name, default, parser),
 * read from UFPAGER_<NAME> environment variables, overridden by non-zero
 * API parameters. A bad environment value is reported and the default kept;
 * a bad API value is -EINVAL. `ufpagerctl config` prints the result.
 * Called only from ufp_pager_create (normal context).
 */
#include <ctype.h>
#include <unistd.h>

#include "ufp_internal.h"

enum opt_kind { OK_SIZE, OK_UINT, OK_INT, OK_STR, OK_LOCK, OK_DELIVERY, OK_BOOL };

struct opt_desc {
	const char *name;        /* UFPAGER_<NAME> upper-cased */
	enum opt_kind kind;
	size_t off;              /* into struct ufp_options */
	int64_t def;
	const char *help;
};

#define OFF(f) offsetof(struct ufp_options, f)
static const struct opt_desc opts[] = {
	{ "arena_size", OK_SIZE, OFF(arena_size), 64LL << 30, "virtual address space reserved per pager" },
	{ "budget", OK_SIZE, OFF(budget), 0, "resident budget (0: unlimited)" },
	{ "handler_threads", OK_UINT, OFF(handler_threads), 0, "fault handler threads (0: one per core, at least 2)" },
	{ "lock_mode", OK_LOCK, OFF(lock_mode), UFP_LOCK_PER_REGION, "per-region | global | global-retry" },
	{ "delivery", OK_DELIVERY, OFF(delivery), UFP_DELIVERY_SIGBUS, "sigbus (self-paging) | handler (threads)" },
	{ "spin_us", OK_INT, OFF(spin_us), 50, "handler spin before blocking, microseconds (-1: never spin)" },
	{ "fault_around", OK_UINT, OFF(fault_around), 16, "pages zero-filled per first-touch fault (1: none)" },
	{ "export_stats", OK_BOOL, OFF(export_stats), 1, "publish stats in shared memory (0/1)" },
	{ "swap_size", OK_SIZE, OFF(swap_size), 1LL << 30, "swap file size" },
	{ "ztier_size", OK_SIZE, OFF(ztier_size), 64LL << 20, "compressed RAM tier cap" },
	{ "swap_dir", OK_STR, OFF(swap_dir), 0, "directory of the O_TMPFILE swap file (default /var/tmp)" },
	{ "dirty_track", OK_BOOL, OFF(dirty_track), 1, "track writes with UFFD WP_ASYNC + PAGEMAP_SCAN where the kernel has them (0/1)" },
	{ "second_chance", OK_BOOL, OFF(second_chance), 1, "CLOCK second chance for referenced pages (0: FIFO sweep)" },
	{ "sandbox", OK_BOOL, OFF(sandbox), 1, "seccomp allowlist on each service thread (0/1)" },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

int ufp_parse_size(const char *s, uint64_t *out)
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

static int parse_value(const struct opt_desc *d, const char *s, int64_t *v, const char **str)
{
	uint64_t u;
	char *end;

	switch (d->kind) {
	case OK_SIZE:
		if (ufp_parse_size(s, &u) || u > INT64_MAX)
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

int ufp_options_resolve(const struct ufp_params *p, struct ufp_options *o)
{
	memset(o, 0, sizeof(*o));
	for (unsigned i = 0; i < NOPTS; i++) {
		const struct opt_desc *d = &opts[i];
		char env[64] = "UFPAGER_";
		const char *s, *str = NULL;
		int64_t v = d->def;

		for (unsigned j = 0; d->name[j] && j < 50; j++)
			env[8 + j] = (char)toupper((unsigned char)d->name[j]);
		store(o, d, v, NULL);
		o->src[i] = UFP_SRC_DEFAULT;
		s = getenv(env);
		if (s && *s) {
			if (parse_value(d, s, &v, &str)) {
				fprintf(stderr, "ufpager: ignoring %s=%s (bad value; %s); using the default\n",
					env, s, d->help);
			} else {
				store(o, d, v, str);
				o->src[i] = UFP_SRC_ENV;
			}
		}
	}
	if (!p)
		return 0;
	if (p->size < offsetof(struct ufp_params, reserved) || p->version != UFP_PARAMS_VERSION) {
		ufp_set_error("struct ufp_params: size %u / version %u do not match this library "
			      "(set size = sizeof(struct ufp_params), version = UFP_PARAMS_VERSION)",
			      p->size, p->version);
		return -EINVAL;
	}
	if (p->flags & ~UFP_PF_ALL)
		return ufp_set_error("unknown flags 0x%x", p->flags), -EINVAL;
	if (p->lock_mode > UFP_LOCK_GLOBAL_RETRY || p->delivery > UFP_DELIVERY_SIGBUS ||
	    p->spin_us < -1 || p->handler_threads > 1024 || p->fault_around > 512)
		return ufp_set_error("a parameter is out of range"), -EINVAL;
	if ((p->arena_size & ~UFP_PAGE_MASK) || (p->budget & ~UFP_PAGE_MASK))
		return ufp_set_error("arena_size and budget must be page multiples"), -EINVAL;
#define API(field, idx) do { o->field = p->field; o->src[idx] = UFP_SRC_API; } while (0)
	if (p->arena_size) API(arena_size, 0);
	if (p->budget) API(budget, 1);
	if (p->handler_threads) API(handler_threads, 2);
	if (p->lock_mode) API(lock_mode, 3);
	if (p->delivery) API(delivery, 4);
	if (p->spin_us) API(spin_us, 5);
	if (p->fault_around) API(fault_around, 6);
	if (p->flags & UFP_PF_NO_EXPORT) { o->export_stats = 0; o->src[7] = UFP_SRC_API; }
	if (p->swap_size) API(swap_size, 8);
	if (p->ztier_size) API(ztier_size, 9);
	if (p->swap_dir) API(swap_dir, 10);
	if (p->flags & UFP_PF_NO_SANDBOX) { o->sandbox = 0; o->src[13] = UFP_SRC_API; }
#undef API
	return 0;
}

void ufp_options_print(FILE *f, const struct ufp_options *o)
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
		char env[64] = "UFPAGER_";
		for (unsigned j = 0; d->name[j] && j < 50; j++)
			env[8 + j] = (char)toupper((unsigned char)d->name[j]);
		fprintf(f, "%-26s %-14s %-12s %s\n", env, val, srcname[o->src[i]], d->help);
	}
}
