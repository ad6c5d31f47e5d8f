/* SPDX-License-Identifier: MIT */
/*
 * observe.c - `ufpagerctl stats PID [--json]` and `ufpagerctl top PID`:
 * read a live process's statistics segments (/dev/shm/ufpager.<pid>.<id>)
 * through the validating reader in src/export.c.
 */
#include <glob.h>
#include <signal.h>
#include <unistd.h>

#include "ufp_internal.h"
#include "ufp_export.h"
#include "observe.h"

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v <= 0 || v > 4194304)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

/* Whether pid has exited (a zombie has too: its pagers are gone). */
static bool process_gone(pid_t pid)
{
	char path[64], buf[256], *rp;
	FILE *f;
	size_t n;

	if (kill(pid, 0) && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')');   /* "pid (comm) S ...": comm may hold spaces */
	return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Glob pid's segments into *g. Returns 0 (at least one), or exit status 1
 * after saying why: no such process, no segments, or segments left behind
 * by a process that is gone. */
static int find_segments(pid_t pid, glob_t *g)
{
	char pat[64];
	bool gone = process_gone(pid);

	snprintf(pat, sizeof(pat), "/dev/shm/ufpager.%d.*", (int)pid);
	if (glob(pat, 0, NULL, g) != 0) {
		if (gone)
			fprintf(stderr, "ufpagerctl: no process %d\n", (int)pid);
		else
			fprintf(stderr, "ufpagerctl: process %d exports no ufpager statistics (no "
				"pager, or UFPAGER_EXPORT_STATS=0)\n", (int)pid);
		return 1;
	}
	if (gone) {
		fprintf(stderr, "ufpagerctl: process %d is gone; %s is a stale segment left by a "
			"process that exited without ufp_pager_destroy (killed?): remove it with rm\n",
			(int)pid, g->gl_pathv[0]);
		globfree(g);
		return 1;
	}
	return 0;
}

static const char *mode_name(uint64_t m)
{
	return m == UFP_LOCK_GLOBAL ? "global" : m == UFP_LOCK_GLOBAL_RETRY ? "global-retry" :
	       "per-region";
}

/* Regions, busiest first (the exporter keeps the UFP_EXPORT_ROWS with the
 * most faults). With prev (top), a faults/s column from the same region
 * (same start and end) in the previous sample, dt seconds earlier. */
static void print_regions_text(const struct ufp_export *e, const struct ufp_export *prev,
			       double dt)
{
	printf("%-18s %-18s %5s %10s", "region start", "end", "prot", "faults");
	if (prev)
		printf(" %10s", "faults/s");
	printf(" %10s %8s %8s %8s\n", "lock ok", "abort", "retry", "miss");
	for (unsigned i = 0; i < e->nrows; i++) {
		const struct ufp_export_region *r = &e->rows[i];

		printf("0x%016llx 0x%016llx %c%c%c%c %10llu", (unsigned long long)r->start,
		       (unsigned long long)r->end, r->prot & UFP_PROT_READ ? 'r' : '-',
		       r->prot & UFP_PROT_WRITE ? 'w' : '-', r->flags & UFP_RF_ALLOC ? 'a' : '-', ' ',
		       (unsigned long long)r->faults);
		if (prev) {
			const struct ufp_export_region *q = NULL;

			for (unsigned j = 0; j < prev->nrows && !q; j++)
				if (prev->rows[j].start == r->start && prev->rows[j].end == r->end)
					q = &prev->rows[j];
			if (q && dt > 0 && r->faults >= q->faults)
				printf(" %10.0f", (double)(r->faults - q->faults) / dt);
			else
				printf(" %10s", "new");
		}
		printf(" %10llu %8llu %8llu %8llu\n", (unsigned long long)r->lock[0],
		       (unsigned long long)r->lock[1], (unsigned long long)r->lock[2],
		       (unsigned long long)r->lock[3]);
	}
}

static void print_json(const struct ufp_export *e)
{
	printf("{\"pid\":%llu,\"pager\":%llu,\"lock_mode\":\"%s\",\"delivery\":\"%s\","
	       "\"budget\":%llu,\"stats\":", (unsigned long long)e->pid,
	       (unsigned long long)e->pager_id, mode_name(e->lock_mode),
	       e->delivery == UFP_DELIVERY_HANDLER ? "handler" : "sigbus",
	       (unsigned long long)e->budget);
	ufp_stats_print_json(stdout, &e->stats);
	printf(",\"regions\":[");
	for (unsigned i = 0; i < e->nrows; i++) {
		const struct ufp_export_region *r = &e->rows[i];

		printf("%s{\"start\":%llu,\"end\":%llu,\"prot\":%llu,\"faults\":%llu,"
		       "\"lock_success\":%llu,\"lock_abort\":%llu,\"lock_retry\":%llu,"
		       "\"lock_miss\":%llu}", i ? "," : "", (unsigned long long)r->start,
		       (unsigned long long)r->end, (unsigned long long)r->prot,
		       (unsigned long long)r->faults, (unsigned long long)r->lock[0],
		       (unsigned long long)r->lock[1], (unsigned long long)r->lock[2],
		       (unsigned long long)r->lock[3]);
	}
	printf("]}\n");
}

int cmd_stats(int argc, char **argv)
{
	bool json = false;
	pid_t pid = 0;
	glob_t g;
	int rc = 0;
	unsigned shown = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: ufpagerctl stats PID [--json]\n\nPrint the statistics of every "
			       "pager of a live process: counters, latency\npercentiles (since the pager "
			       "started) and its busiest regions, from its\nshared-memory segments "
			       "/dev/shm/ufpager.PID.* (one per pager).\n\n"
			       "  --json   one JSON array, an object per pager: pid, pager, lock_mode,\n"
			       "           delivery, budget, stats {version, counters, latency_ns},\n"
			       "           regions [{start, end, prot, faults, lock_success,\n"
			       "           lock_abort, lock_retry, lock_miss}]\n");
			return 0;
		} else if (parse_pid(argv[i], &pid)) {
			fprintf(stderr, "ufpagerctl stats: bad argument '%s' (usage: stats PID [--json])\n",
				argv[i]);
			return 2;
		}
	}
	if (!pid) {
		fprintf(stderr, "usage: ufpagerctl stats PID [--json]\n");
		return 2;
	}
	if (find_segments(pid, &g))
		return 1;
	if (json)
		printf("[");
	for (size_t i = 0; i < g.gl_pathc; i++) {
		static struct ufp_export e;
		char why[256];

		if (ufp_export_read(g.gl_pathv[i], &e, why, sizeof(why))) {
			fprintf(stderr, "ufpagerctl: rejected: %s\n", why);
			rc = 1;
			continue;
		}
		if (e.pid != (uint64_t)pid) {
			fprintf(stderr, "ufpagerctl: rejected %s: it names pid %llu (foreign)\n",
				g.gl_pathv[i], (unsigned long long)e.pid);
			rc = 1;
			continue;
		}
		if (json) {
			printf("%s", shown++ ? "," : "");
			print_json(&e);
			continue;
		}
		printf("%spid %llu pager %llu: lock mode %s, delivery %s, budget %llu bytes\n",
		       shown++ ? "\n" : "", (unsigned long long)e.pid,
		       (unsigned long long)e.pager_id, mode_name(e.lock_mode),
		       e.delivery == UFP_DELIVERY_HANDLER ? "handler" : "sigbus",
		       (unsigned long long)e.budget);
		ufp_stats_print_text(stdout, &e.stats);
		print_regions_text(&e, NULL, 0);
	}
	if (json)
		printf("]\n");
	globfree(&g);
	return rc;
}

/* Read pager `want` of pid (0: the first that validates) into *e; *n gets
 * the number of pagers the process exports. Returns 0, or an exit status
 * after saying why. */
static int read_pager(pid_t pid, uint64_t want, struct ufp_export *e, unsigned *n)
{
	char why[256];
	glob_t g;
	int rc = 1;

	if (find_segments(pid, &g))
		return 1;
	*n = (unsigned)g.gl_pathc;
	for (size_t i = 0; i < g.gl_pathc && rc; i++) {
		if (ufp_export_read(g.gl_pathv[i], e, why, sizeof(why)))
			fprintf(stderr, "ufpagerctl: rejected: %s\n", why);
		else if (e->pid != (uint64_t)pid)
			fprintf(stderr, "ufpagerctl: rejected %s: it names pid %llu (foreign)\n",
				g.gl_pathv[i], (unsigned long long)e->pid);
		else if (!want || e->pager_id == want)
			rc = 0;
	}
	globfree(&g);
	if (rc && want)
		fprintf(stderr, "ufpagerctl: process %d has no pager %llu (ufpagerctl stats %d "
			"lists them)\n", (int)pid, (unsigned long long)want, (int)pid);
	return rc;
}

static void top_usage(FILE *f)
{
	fprintf(f, "usage: ufpagerctl top PID [--interval S] [--count N] [--pager ID]\n");
}

int cmd_top(int argc, char **argv)
{
	static struct ufp_export prev, cur;
	double interval = 1.0;
	long count = -1;
	uint64_t want = 0;
	pid_t pid = 0;
	bool tty = isatty(STDOUT_FILENO);
	unsigned npagers;
	int rc;

	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "--interval") || !strcmp(argv[i], "-d")) && i + 1 < argc) {
			interval = atof(argv[++i]);
		} else if ((!strcmp(argv[i], "--count") || !strcmp(argv[i], "-n")) && i + 1 < argc) {
			count = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--pager") && i + 1 < argc) {
			want = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			top_usage(stdout);
			printf("\nA refreshing screen of one pager of a live process, from its segment\n"
			       "/dev/shm/ufpager.PID.ID: rates per second over the last interval (faults,\n"
			       "swap-ins, swap-outs, per-region lock taken / pager-lock fallback /\n"
			       "retry / miss), latency percentiles since the pager started, and its\n"
			       "busiest regions sorted by faults (cumulative, and faults/s).\n"
			       "The first screen comes after one interval, so it has rates too.\n"
			       "\n"
			       "  -d, --interval S  seconds between screens (default 1; the pager\n"
			       "                    publishes every 0.2 s)\n"
			       "  -n, --count N     stop after N screens (default: until interrupted)\n"
			       "  --pager ID        which pager of the process (default: the first)\n");
			return 0;
		} else if (parse_pid(argv[i], &pid)) {
			fprintf(stderr, "ufpagerctl top: bad argument '%s'\n", argv[i]);
			top_usage(stderr);
			return 2;
		}
	}
	if (!pid || interval <= 0 || !count) {
		top_usage(stderr);
		return 2;
	}
	if ((rc = read_pager(pid, want, &prev, &npagers)))
		return rc;
	for (long n = 0; count < 0 || n < count; n++) {
		usleep((useconds_t)(interval * 1e6));
		if ((rc = read_pager(pid, prev.pager_id, &cur, &npagers)))
			return rc;
		double dt = (double)(cur.update_ns - prev.update_ns) / 1e9;
#define RATE(f) (dt > 0 ? (double)(cur.stats.f - prev.stats.f) / dt : 0.0)
		if (tty)
			printf("\033[H\033[2J");
		else if (n)
			printf("\n");
		printf("ufpagerctl top - pid %d pager %llu (of %u)  lock %s  delivery %s  regions %llu  "
		       "resident %llu pages\n", (int)pid, (unsigned long long)cur.pager_id, npagers,
		       mode_name(cur.lock_mode), cur.delivery == UFP_DELIVERY_HANDLER ? "handler" : "sigbus",
		       (unsigned long long)cur.stats.regions,
		       (unsigned long long)cur.stats.resident_pages);
		printf("faults/s %10.0f  swapins/s %9.0f  swapouts/s %9.0f  lock ok/s %10.0f  "
		       "fallback/s %7.0f  retry/s %7.0f  miss/s %6.0f\n", RATE(faults), RATE(swapins),
		       RATE(swapouts), RATE(lock_success), RATE(lock_fallback), RATE(lock_retry),
		       RATE(lock_miss));
		printf("fault latency p50 %llu ns  p99 %llu ns  max %llu ns   lock wait p99 %llu ns"
		       "   io p99 %llu ns\n\n", (unsigned long long)cur.stats.fault_lat.p50,
		       (unsigned long long)cur.stats.fault_lat.p99,
		       (unsigned long long)cur.stats.fault_lat.max,
		       (unsigned long long)cur.stats.lock_wait.p99,
		       (unsigned long long)cur.stats.io_lat.p99);
#undef RATE
		print_regions_text(&cur, &prev, dt);
		fflush(stdout);
		prev = cur;
	}
	return 0;
}
