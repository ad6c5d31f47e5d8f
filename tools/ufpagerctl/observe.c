/* SPDX-License-Identifier: MIT */
/*
 * observe.c - `ufpagerctl stats PID [--json]` and `ufpagerctl top PID`:
 * read a live process's statistics segments (/dev/shm/ufpager.<pid>.<id>)
 * through the library's validating reader, ufp_snapshot_read().
 */
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ufpager.h>

#include "cli.h"
#include "json.h"
#include "observe.h"

/* ======================================================================
 * Command-line arguments: every number is checked whole, and a bad one is
 * named with its option (exit status 2, like every usage error).
 * ====================================================================== */

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v <= 0 || v > 4194304)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

/* After getopt_long: the one PID operand, else a message and -1. */
static int parse_pid_operand(const char *cmd, int argc, char **argv, pid_t *pid)
{
	if (optind >= argc) {
		fprintf(stderr, "ufpagerctl %s: no PID given\n", cmd);
		return -1;
	}
	if (parse_pid(argv[optind], pid)) {
		fprintf(stderr, "ufpagerctl %s: '%s' is not a process id\n", cmd, argv[optind]);
		return -1;
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "ufpagerctl %s: unexpected argument '%s' (one PID only)\n", cmd,
			argv[optind + 1]);
		return -1;
	}
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

/* When pid started, in seconds since the epoch (boot time + its start in
 * clock ticks, /proc/PID/stat field 22); 0 when unknown. */
static double process_start(pid_t pid)
{
	char path[64], buf[1024], *rp;
	unsigned long long ticks = 0, btime = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!(rp = strrchr(buf, ')')))
		return 0;
	/* after "pid (comm)": state is field 3, starttime field 22 */
	if (sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
		   "%*d %*d %*d %llu", &ticks) != 1)
		return 0;
	if (!(f = fopen("/proc/stat", "r")))
		return 0;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	return btime ? (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK) : 0;
}

/* Drop from *g the segments made before pid started: left behind by an
 * earlier process with the same pid (pid numbers wrap; a process killed
 * before ufp_pager_destroy leaves its segment). A segment's ctime is set
 * when its exporter creates and sizes it; writes through the mapping do
 * not change it. One second of slack: boot time is whole seconds. Returns
 * how many were dropped; the first one's path in stale. */
static size_t drop_older_segments(pid_t pid, glob_t *g, char *stale, size_t len)
{
	double start = process_start(pid);
	size_t kept = 0, dropped = 0;

	if (!start)
		return 0;
	for (size_t i = 0; i < g->gl_pathc; i++) {
		struct stat st;

		if (!stat(g->gl_pathv[i], &st) && (double)st.st_ctime < start - 1.0) {
			if (!dropped++)
				snprintf(stale, len, "%s", g->gl_pathv[i]);
			continue;
		}
		/* swap, not overwrite: the dropped paths stay in the vector */
		char *t = g->gl_pathv[kept];

		g->gl_pathv[kept++] = g->gl_pathv[i];
		g->gl_pathv[i] = t;
	}
	g->gl_pathc = kept;   /* the dropped ones after it (freed with the process) */
	return dropped;
}

/* Glob pid's segments into *g. Returns 0 (at least one), or exit status 1
 * after saying why: no such process, no segments, or segments left behind
 * by a process that is gone (or by an earlier process with its pid). */
static int find_segments(pid_t pid, glob_t *g)
{
	char pat[64], stale[PATH_MAX];
	bool gone = process_gone(pid);
	size_t total;

	snprintf(pat, sizeof(pat), UFP_SNAPSHOT_PATTERN, (int)pid);
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
	total = g->gl_pathc;
	if (drop_older_segments(pid, g, stale, sizeof(stale)) && !g->gl_pathc) {
		g->gl_pathc = total;
		globfree(g);
		fprintf(stderr, "ufpagerctl: process %d exports no ufpager statistics; %s is a "
			"stale segment left by an earlier process with the same pid (killed before "
			"ufp_pager_destroy?): remove it with rm\n", (int)pid, stale);
		return 1;
	}
	return 0;
}

static const char *mode_name(uint64_t m)
{
	return m == UFP_LOCK_GLOBAL ? "global" : m == UFP_LOCK_GLOBAL_RETRY ? "global-retry" :
	       "per-region";
}

/* Regions, busiest first (the exporter keeps the UFP_SNAPSHOT_REGIONS with the
 * most faults). With prev (top), a faults/s column from the same region
 * (same start and end) in the previous sample, dt seconds earlier. */
static void print_regions_text(const struct ufp_snapshot *e, const struct ufp_snapshot *prev,
			       double dt)
{
	printf("%-18s %-18s %5s %10s", "region start", "end", "prot", "faults");
	if (prev)
		printf(" %10s", "faults/s");
	printf(" %10s %8s %8s %8s\n", "lock ok", "abort", "retry", "miss");
	for (unsigned i = 0; i < e->nregions; i++) {
		const struct ufp_region_stats *r = &e->regions[i];

		printf("0x%016llx 0x%016llx %c%c%c%c %10llu", (unsigned long long)r->start,
		       (unsigned long long)r->end, r->prot & UFP_PROT_READ ? 'r' : '-',
		       r->prot & UFP_PROT_WRITE ? 'w' : '-', r->flags & UFP_REGION_ALLOC ? 'a' : '-', ' ',
		       (unsigned long long)r->faults);
		if (prev) {
			const struct ufp_region_stats *q = NULL;

			for (unsigned j = 0; j < prev->nregions && !q; j++)
				if (prev->regions[j].start == r->start && prev->regions[j].end == r->end)
					q = &prev->regions[j];
			if (q && dt > 0 && r->faults >= q->faults)
				printf(" %10.0f", (double)(r->faults - q->faults) / dt);
			else
				printf(" %10s", "new");
		}
		printf(" %10llu %8llu %8llu %8llu\n", (unsigned long long)r->lock_success,
		       (unsigned long long)r->lock_abort, (unsigned long long)r->lock_retry,
		       (unsigned long long)r->lock_miss);
	}
}

static int write_stats_json(const void *stats, FILE *f)
{
	return ufp_stats_json(stats, f);
}

static void print_json(struct json *j, const struct ufp_snapshot *e)
{
	json_object_begin(j, NULL);
	json_uint(j, "pid", e->pid);
	json_uint(j, "pager", e->pager_id);
	json_str(j, "lock_mode", mode_name(e->lock_mode));
	json_str(j, "delivery", e->delivery == UFP_DELIVERY_HANDLER ? "handler" : "sigbus");
	json_uint(j, "budget", e->budget);
	json_value_from(j, "stats", write_stats_json, &e->stats);
	json_array_begin(j, "regions");
	for (unsigned i = 0; i < e->nregions; i++) {
		const struct ufp_region_stats *r = &e->regions[i];

		json_object_begin(j, NULL);
		json_uint(j, "start", r->start);
		json_uint(j, "end", r->end);
		json_uint(j, "prot", r->prot);
		json_uint(j, "faults", r->faults);
		json_uint(j, "lock_success", r->lock_success);
		json_uint(j, "lock_abort", r->lock_abort);
		json_uint(j, "lock_retry", r->lock_retry);
		json_uint(j, "lock_miss", r->lock_miss);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

/* Read the segment at path into *e (size and version set here); 0, or -1
 * after saying why it was rejected. */
static int read_segment(const char *path, pid_t pid, struct ufp_snapshot *e)
{
	e->size = sizeof(*e);
	e->version = UFP_SNAPSHOT_VERSION;
	if (ufp_snapshot_read(path, e)) {
		fprintf(stderr, "ufpagerctl: rejected: %s\n", ufp_last_error());
		return -1;
	}
	if (e->pid != (uint64_t)pid) {
		fprintf(stderr, "ufpagerctl: rejected %s: it names pid %llu (foreign)\n", path,
			(unsigned long long)e->pid);
		return -1;
	}
	return 0;
}

static void stats_usage(FILE *f)
{
	fprintf(f, "usage: ufpagerctl stats PID [--json]\n");
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	struct json j;
	pid_t pid = 0;
	glob_t g;
	int rc = 0, c;
	unsigned shown = 0;

	optind = 0;    /* glibc: full re-initialisation */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			stats_usage(stdout);
			printf("\nPrint the statistics of every "
			       "pager of a live process: counters, latency\npercentiles (since the pager "
			       "started) and its busiest regions, from its\nshared-memory segments "
			       "/dev/shm/ufpager.PID.* (one per pager).\n\n"
			       "  --json   one JSON array, an object per pager: pid, pager, lock_mode,\n"
			       "           delivery, budget, stats {version, counters, latency_ns},\n"
			       "           regions [{start, end, prot, faults, lock_success,\n"
			       "           lock_abort, lock_retry, lock_miss}]\n");
			return 0;
		default:
			cli_bad_option("stats", argc, argv);
			stats_usage(stderr);
			return 2;
		}
	}
	if (parse_pid_operand("stats", argc, argv, &pid)) {
		stats_usage(stderr);
		return 2;
	}
	if (find_segments(pid, &g))
		return 1;
	json_init(&j, stdout);
	if (json)
		json_array_begin(&j, NULL);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		static struct ufp_snapshot e;

		if (read_segment(g.gl_pathv[i], pid, &e)) {
			rc = 1;
			continue;
		}
		if (json) {
			print_json(&j, &e);
			continue;
		}
		printf("%spid %llu pager %llu: lock mode %s, delivery %s, budget %llu bytes\n",
		       shown++ ? "\n" : "", (unsigned long long)e.pid,
		       (unsigned long long)e.pager_id, mode_name(e.lock_mode),
		       e.delivery == UFP_DELIVERY_HANDLER ? "handler" : "sigbus",
		       (unsigned long long)e.budget);
		ufp_stats_print(&e.stats, stdout);
		print_regions_text(&e, NULL, 0);
	}
	if (json) {
		json_array_end(&j);
		printf("\n");
	}
	globfree(&g);
	return rc;
}

/* Read pager `want` of pid (0: the first that validates) into *e; *n gets
 * the number of pagers the process exports. Returns 0, or an exit status
 * after saying why. */
static int read_pager(pid_t pid, uint64_t want, struct ufp_snapshot *e, unsigned *n)
{
	glob_t g;
	int rc = 1;

	if (find_segments(pid, &g))
		return 1;
	*n = (unsigned)g.gl_pathc;
	for (size_t i = 0; i < g.gl_pathc && rc; i++)
		if (!read_segment(g.gl_pathv[i], pid, e) && (!want || e->pager_id == want))
			rc = 0;
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

/* Longest --interval: a day (and the sleep below stays exact). */
#define TOP_MAX_INTERVAL 86400.0

int cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'n' },
		{ "pager", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ufp_snapshot prev, cur;
	double interval = 1.0;
	uint64_t count = 0, want = 0;   /* count 0: until interrupted */
	pid_t pid = 0;
	bool tty = isatty(STDOUT_FILENO);
	unsigned npagers;
	int rc, c;

	optind = 0;    /* glibc: full re-initialisation */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "d:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (cli_parse_positive("top", "--interval", optarg, TOP_MAX_INTERVAL,
					       &interval))
				return 2;
			break;
		case 'n':
			if (cli_parse_uint("top", "--count", optarg, 1, LONG_MAX, &count))
				return 2;
			break;
		case 'p':
			if (cli_parse_uint("top", "--pager", optarg, 1, UINT64_MAX, &want))
				return 2;
			break;
		case 'h':
			top_usage(stdout);
			printf("\nA refreshing screen of one pager of a live process, from its segment\n"
			       "/dev/shm/ufpager.PID.ID: rates per second over the last interval (faults,\n"
			       "swap-ins, swap-outs, per-region lock taken / pager-lock fallback /\n"
			       "retry / miss), latency percentiles since the pager started, and its\n"
			       "busiest regions sorted by faults (cumulative, and faults/s).\n"
			       "The first screen comes after one interval, so it has rates too.\n"
			       "\n"
			       "  -d, --interval S  seconds between screens, above 0 (default 1; the\n"
			       "                    pager publishes every 0.2 s)\n"
			       "  -n, --count N     stop after N screens, N >= 1 (default: until\n"
			       "                    interrupted)\n"
			       "  --pager ID        which pager of the process, ID >= 1 (default: the\n"
			       "                    first)\n");
			return 0;
		default:
			cli_bad_option("top", argc, argv);
			top_usage(stderr);
			return 2;
		}
	}
	if (parse_pid_operand("top", argc, argv, &pid)) {
		top_usage(stderr);
		return 2;
	}
	if ((rc = read_pager(pid, want, &prev, &npagers)))
		return rc;
	for (uint64_t n = 0; !count || n < count; n++) {
		struct timespec ts = { (time_t)interval,
				       (long)((interval - floor(interval)) * 1e9) };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
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
