/* SPDX-License-Identifier: MIT */
/*
 * inject.c - fault injection: the configuration (UFPAGER_INJECT, or the
 * test API), the deterministic decisions and the counters of what was
 * injected. The hooks sit in the I/O wrapper (swap_backend.c: write and
 * read completions, slot allocation, tier loads) and the ioctl wrappers
 * (uffd.c: UFFDIO_COPY/ZEROPAGE, UFFDIO_MOVE); the kill hooks sit in
 * the service threads' loops.
 *
 * Concurrency contract: the configuration is written by inject_configure
 * (normal context) and read lock-free by the hooks, which may run in a
 * signal handler: atomics and nanosleep only. Decisions are drawn from a
 * per-kind atomic sequence number hashed with the seed, so the n-th
 * decision of a kind is the same in every run; which thread meets it
 * depends on scheduling.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "inject.h"
#include "ufpager.h"

_Atomic bool inject_armed;

static const char *const kind_name[INJ_NR] = {
	"eio", "short", "enospc", "eagain", "delay_us", "csum", "kill",
};
static const char *const thread_name[] = { "", "reclaim", "handler", "events" };

static struct {
	_Atomic uint64_t thr[INJ_NR];     /* hit if hash32 < thr (2^32: always) */
	_Atomic unsigned dirs[INJ_NR];    /* INJ_READ | INJ_WRITE for eio/short */
	_Atomic uint64_t seed;
	_Atomic uint32_t delay_us;
	_Atomic int kill_thread;          /* enum inj_thread */
	_Atomic uint32_t kill_after;      /* passes before the kill */
	_Atomic uint32_t kill_passes;
	_Atomic bool killed;
	_Atomic uint64_t seq[INJ_NR];     /* decisions drawn per kind */
	_Atomic uint64_t hits[INJ_NR];    /* faults injected per kind */
} cfg;

static uint64_t mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* ======================================================================
 * Configuration (normal context).
 * ====================================================================== */

static int parse_rate(const char *s, char **end, uint64_t *thr)
{
	double r;

	errno = 0;
	r = strtod(s, end);
	if (errno || *end == s || r < 0 || r > 1)
		return -EINVAL;
	*thr = (uint64_t)(r * 4294967296.0);
	return 0;
}

static int parse_dirs(char **p, unsigned *dirs)
{
	*dirs = INJ_READ | INJ_WRITE;
	if (**p != '@')
		return 0;
	if (!strncmp(*p, "@read", 5)) {
		*dirs = INJ_READ;
		*p += 5;
	} else if (!strncmp(*p, "@write", 6)) {
		*dirs = INJ_WRITE;
		*p += 6;
	} else {
		return -EINVAL;
	}
	return 0;
}

int inject_configure(const char *spec, const char **bad)
{
	uint64_t thr[INJ_NR] = { 0 }, seed = 1;
	unsigned dirs[INJ_NR];
	uint32_t delay_us = 0, kill_after = 1;
	int kill_thread = INJ_T_NONE;
	bool any = false;
	const char *s = spec;

	for (unsigned k = 0; k < INJ_NR; k++)
		dirs[k] = INJ_READ | INJ_WRITE;
	while (s && *s) {
		const char *item = s, *eq = strchr(s, '=');
		char *end;
		size_t nl;
		unsigned k;

		if (!eq)
			goto bad_item;
		nl = (size_t)(eq - s);
		end = (char *)eq + 1;
		if (nl == 4 && !strncmp(s, "seed", 4)) {
			errno = 0;
			seed = strtoull(end, &end, 0);
			if (errno || end == eq + 1)
				goto bad_item;
		} else if (nl == 4 && !strncmp(s, "kill", 4)) {
			int t;

			for (t = INJ_T_RECLAIM; t <= INJ_T_EVENTS; t++) {
				size_t tl = strlen(thread_name[t]);

				if (!strncmp(end, thread_name[t], tl)) {
					end += tl;
					break;
				}
			}
			if (t > INJ_T_EVENTS)
				goto bad_item;
			kill_thread = t;
			if (*end == ':') {
				unsigned long n;
				char *num = end + 1;

				errno = 0;
				n = strtoul(num, &end, 10);
				if (errno || end == num || n < 1 || n > UINT32_MAX)
					goto bad_item;
				kill_after = (uint32_t)n;
			}
			any = true;
		} else if (nl == 8 && !strncmp(s, "delay_us", 8)) {
			unsigned long us;
			char *num = end;

			errno = 0;
			us = strtoul(num, &end, 10);
			if (errno || end == num || us > 10000000 || *end != ':' ||
			    parse_rate(end + 1, &end, &thr[INJ_DELAY]))
				goto bad_item;
			delay_us = (uint32_t)us;
			any |= thr[INJ_DELAY] != 0;
		} else {
			for (k = 0; k < INJ_NR; k++)
				if (k != INJ_DELAY && k != INJ_KILL && strlen(kind_name[k]) == nl &&
				    !strncmp(s, kind_name[k], nl))
					break;
			if (k == INJ_NR || parse_rate(end, &end, &thr[k]))
				goto bad_item;
			/* eagain=1: no UFFDIO_COPY/ZEROPAGE/MOVE could ever
			 * succeed, and their callers retry: a spin for ever */
			if (k == INJ_EAGAIN && thr[k] >= 4294967296ull)
				goto bad_item;
			if ((k == INJ_EIO || k == INJ_SHORT) && parse_dirs(&end, &dirs[k]))
				goto bad_item;
			any |= thr[k] != 0;
		}
		if (*end == ',')
			end++;
		else if (*end)
			goto bad_item;
		s = end;
		continue;
bad_item:
		if (bad)
			*bad = item;
		return -EINVAL;
	}
	/* Disarm while the rates change: a hook that saw the old "armed"
	 * reads either the old or the new rates, both valid. */
	atomic_store_explicit(&inject_armed, false, memory_order_relaxed);
	for (unsigned k = 0; k < INJ_NR; k++) {
		atomic_store_explicit(&cfg.thr[k], thr[k], memory_order_relaxed);
		atomic_store_explicit(&cfg.dirs[k], dirs[k], memory_order_relaxed);
		atomic_store_explicit(&cfg.seq[k], 0, memory_order_relaxed);
	}
	atomic_store_explicit(&cfg.seed, seed, memory_order_relaxed);
	atomic_store_explicit(&cfg.delay_us, delay_us, memory_order_relaxed);
	atomic_store_explicit(&cfg.kill_thread, kill_thread, memory_order_relaxed);
	atomic_store_explicit(&cfg.kill_after, kill_after, memory_order_relaxed);
	atomic_store_explicit(&cfg.kill_passes, 0, memory_order_relaxed);
	atomic_store_explicit(&cfg.killed, false, memory_order_relaxed);
	/* release: pairs with the acquire fence in inject_hit/inject_kill */
	atomic_store_explicit(&inject_armed, any, memory_order_release);
	return 0;
}

void inject_disarm(void)
{
	inject_configure(NULL, NULL);
}

/* ======================================================================
 * Decisions (any context, async-signal-safe).
 * ====================================================================== */

bool inject_hit(enum inj_kind k)
{
	uint64_t thr, n;

	if (!inject_on())
		return false;
	/* acquire: pairs with the release store of armed in inject_configure */
	atomic_thread_fence(memory_order_acquire);
	thr = atomic_load_explicit(&cfg.thr[k], memory_order_relaxed);
	if (!thr)
		return false;
	/* relaxed: a ticket; the hash makes the decision */
	n = atomic_fetch_add_explicit(&cfg.seq[k], 1, memory_order_relaxed);
	if ((mix64(atomic_load_explicit(&cfg.seed, memory_order_relaxed) ^
		   ((uint64_t)k << 56) ^ mix64(n)) >> 32) >= thr)
		return false;
	/* relaxed: a counter read by stats */
	atomic_fetch_add_explicit(&cfg.hits[k], 1, memory_order_relaxed);
	return true;
}

int inject_io_res(int res, unsigned dir)
{
	if (inject_hit(INJ_DELAY)) {
		uint32_t us = atomic_load_explicit(&cfg.delay_us, memory_order_relaxed);
		struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	if (res < 0)
		return res;
	/* relaxed: written before armed was published (see inject_hit) */
	if ((atomic_load_explicit(&cfg.dirs[INJ_EIO], memory_order_relaxed) & dir) &&
	    inject_hit(INJ_EIO))
		return -EIO;
	if ((atomic_load_explicit(&cfg.dirs[INJ_SHORT], memory_order_relaxed) & dir) &&
	    inject_hit(INJ_SHORT))
		return res / 2;
	return res;
}

bool inject_kill(enum inj_thread t)
{
	if (!inject_on())
		return false;
	/* acquire: pairs with the release store of armed in inject_configure */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&cfg.kill_thread, memory_order_relaxed) != (int)t ||
	    atomic_load_explicit(&cfg.killed, memory_order_relaxed))
		return false;
	/* relaxed: counters; the exchange below picks the one victim */
	if (atomic_fetch_add_explicit(&cfg.kill_passes, 1, memory_order_relaxed) + 1 <
	    atomic_load_explicit(&cfg.kill_after, memory_order_relaxed))
		return false;
	if (atomic_exchange_explicit(&cfg.killed, true, memory_order_relaxed))
		return false;
	atomic_fetch_add_explicit(&cfg.hits[INJ_KILL], 1, memory_order_relaxed);
	return true;
}

uint64_t inject_count(enum inj_kind k)
{
	/* relaxed: a counter */
	return atomic_load_explicit(&cfg.hits[k], memory_order_relaxed);
}

int inject_from_options(const char *spec)
{
	const char *bad = NULL;

	if (!spec || !*spec)
		return 0;
	if (inject_configure(spec, &bad))
		return ufp_error(-EINVAL, "ufpager: UFPAGER_INJECT=%s: bad item \"%s\" (rates "
				 "are 0 to 1, eagain below 1; README \"Fault injection\" lists "
				 "the syntax)", spec, bad ? bad : "");
	return 0;
}

void inject_stats(struct ufp_stats *out)
{
	out->inject_eio = inject_count(INJ_EIO);
	out->inject_short = inject_count(INJ_SHORT);
	out->inject_enospc = inject_count(INJ_ENOSPC);
	out->inject_eagain = inject_count(INJ_EAGAIN);
	out->inject_delay = inject_count(INJ_DELAY);
	out->inject_csum = inject_count(INJ_CSUM);
	out->inject_kill = inject_count(INJ_KILL);
}

void inject_print(FILE *f)
{
	bool first = true;

	if (!inject_on()) {
		fprintf(f, "off");
		return;
	}
	for (unsigned k = 0; k < INJ_NR; k++) {
		uint64_t thr = atomic_load_explicit(&cfg.thr[k], memory_order_relaxed);
		unsigned d = atomic_load_explicit(&cfg.dirs[k], memory_order_relaxed);

		if (!thr || k == INJ_KILL)
			continue;
		fprintf(f, "%s%s=", first ? "" : ",", kind_name[k]);
		if (k == INJ_DELAY)
			fprintf(f, "%u:", atomic_load_explicit(&cfg.delay_us, memory_order_relaxed));
		fprintf(f, "%g%s", (double)thr / 4294967296.0,
			d == INJ_READ ? "@read" : d == INJ_WRITE ? "@write" : "");
		first = false;
	}
	if (atomic_load_explicit(&cfg.kill_thread, memory_order_relaxed) != INJ_T_NONE) {
		fprintf(f, "%skill=%s:%u", first ? "" : ",",
			thread_name[atomic_load_explicit(&cfg.kill_thread, memory_order_relaxed)],
			atomic_load_explicit(&cfg.kill_after, memory_order_relaxed));
		first = false;
	}
	fprintf(f, ",seed=%llu",
		(unsigned long long)atomic_load_explicit(&cfg.seed, memory_order_relaxed));
}
