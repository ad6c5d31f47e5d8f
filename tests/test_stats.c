/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - statistics and their export: counters match a known
 * workload exactly, the JSON has every documented field, a live process is
 * read through its segment (and by `ufpagerctl stats` / `top`), and the
 * segment reader survives truncated and corrupted segments (fuzz).
 */
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"
#include "ufp_export.h"

static struct ufp_stats get(ufp_pager *p)
{
	struct ufp_stats s = { .size = sizeof(s), .version = UFP_STATS_VERSION };

	ck_assert_int_eq(ufp_stats_get(p, &s), 0);
	return s;
}

START_TEST(counters_match_a_known_workload)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .fault_around = 1,
		.delivery = _i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS,
		.flags = UFP_PF_NO_EXPORT,
	};
	ufp_pager *p;
	char *m;
	struct ufp_stats s;

	ck_assert_int_eq(ufp_pager_create(&pr, &p), 0);
	ck_assert_int_eq(ufp_map(p, NULL, 100 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 100; i++)
		m[(size_t)i * PAGE] = 1;            /* exactly one fault per page */
	for (int i = 0; i < 100; i++)
		m[(size_t)i * PAGE + 8] = 2;        /* present: no fault */
	/* a handler thread records a fault's latency after waking the thread:
	 * merged counters settle within moments (they are relaxed by design) */
	for (int w = 0; w < 1000 && get(p).fault_lat.count < 100; w++)
		usleep(1000);
	s = get(p);
	ck_assert_uint_eq(s.faults, 100);
	ck_assert_uint_eq(s.faults_missing, 100);
	ck_assert_uint_eq(s.faults_zero, 100);
	ck_assert_uint_eq(s.fault_around_pages, 0);
	ck_assert_uint_eq(s.resident_pages, 100);
	ck_assert_uint_eq(s.fault_lat.count, 100);
	ck_assert_uint_eq(s.sigbus_faults, _i ? 0 : 100);
	ck_assert_uint_eq(s.maps, 1);
	ck_assert_uint_eq(s.regions, 1);
	ck_assert_uint_eq(s.handler_self_faults, 0);
	ck_assert_uint_le(s.fault_lat.p50, s.fault_lat.p99);
	ck_assert_uint_le(s.fault_lat.p99, s.fault_lat.max);

	ck_assert_int_eq(ufp_protect(p, m + 10 * PAGE, 10 * PAGE, UFP_PROT_READ), 0);
	s = get(p);
	ck_assert_uint_eq(s.protects, 1);
	ck_assert_uint_eq(s.splits, 2);
	ck_assert_uint_eq(s.regions, 3);
	ck_assert_int_eq(ufp_protect(p, m + 10 * PAGE, 10 * PAGE, UFP_PROT_ALL), 0);
	s = get(p);
	ck_assert_uint_eq(s.merges, 2);
	ck_assert_uint_eq(s.regions, 1);
	ck_assert_int_eq(ufp_advise(p, m, 50 * PAGE, UFP_ADV_DONTNEED), 0);
	s = get(p);
	ck_assert_uint_eq(s.advises, 1);
	ck_assert_uint_eq(s.resident_pages, 50);
	ck_assert_int_eq(ufp_unmap(p, m, 100 * PAGE), 0);
	s = get(p);
	ck_assert_uint_eq(s.unmaps, 1);
	ck_assert_uint_eq(s.resident_pages, 0);
	ck_assert_uint_eq(s.regions, 0);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- per-region counters, kept per thread ------------------------------ */

enum { RC_REGIONS = 3 * UFP_RC_SLOTS, RC_PAGES = 4 };

struct rc_toucher {
	ufp_pager *p;
	char *base[RC_REGIONS];
};

static void *rc_touch(void *arg)
{
	struct rc_toucher *t = arg;

	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };

	/* a call on the pager: the thread gets its counter block and RCU
	 * registration, so its faults count in its own slots */
	ck_assert_int_eq(ufp_stats_get(t->p, &st), 0);
	for (unsigned i = 0; i < RC_REGIONS; i++)
		for (unsigned k = 0; k < RC_PAGES; k++)
			(void)*(volatile char *)(t->base[i] + k * PAGE);
	return NULL;
}

struct rc_sum {
	const struct rc_snap *s;
	size_t n;
	uint64_t total[RC_NR];
	unsigned regions;
};

static void rc_add(struct ufp_region *r, void *arg)
{
	struct rc_sum *a = arg;
	uint64_t n[RC_NR];

	region_counts_sum(r, a->s, a->n, n);
	for (unsigned k = 0; k < RC_NR; k++)
		a->total[k] += n[k];
	a->regions++;
}

/*
 * Per-region fault and lock counts are kept per thread (no shared write on
 * the fault path) and merged on read: over more regions than a thread has
 * slots (take-overs spill), across threads that exit (their slots spill),
 * the per-region counts add up to the pager's totals exactly.
 */
START_TEST(per_region_counts_add_up_to_the_totals)
{
	ufp_pager *p = ufp_test_pager(_i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS, 0, 0);
	struct ufp_pager *ip = (struct ufp_pager *)p;
	struct rc_toucher t = { .p = p };
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	struct rc_snap *snap;
	struct rc_sum sum = { 0 };
	pthread_t th[2];

	for (unsigned i = 0; i < RC_REGIONS; i++)   /* alternate prots: no merges */
		ck_assert_int_eq(ufp_map(p, NULL, RC_PAGES * PAGE, i & 1 ? UFP_PROT_READ :
					 UFP_PROT_READ | UFP_PROT_WRITE, 0, (void **)&t.base[i]), 0);
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_create(&th[i], NULL, rc_touch, &t), 0);
		pthread_join(th[i], NULL);        /* exits: its slots spill */
		ck_assert_int_eq(ufp_advise(p, t.base[0], PAGE, UFP_ADV_DONTNEED), 0);
	}
	rc_touch(&t);                             /* a live thread's slots */
	ck_assert_int_eq(ufp_stats_get(p, &st), 0);
	sum.n = region_counts_snapshot(ip, &snap);
	sum.s = snap;
	pager_read_lock(ip);
	region_tree_walk(&ip->tree, rc_add, &sum);
	pager_read_unlock(ip);
	slab_free(snap);
	ck_assert_uint_ge(sum.regions, RC_REGIONS);
	ck_assert_uint_gt(st.faults, RC_REGIONS);
	ck_assert_uint_eq(sum.total[RC_FAULTS], st.faults);
	if (_i == 0) {   /* SIGBUS: every fault took a region lock under RCU */
		ck_assert_uint_eq(sum.total[RC_SUCCESS], st.lock_success);
	}
	ufp_pager_destroy(p);
}
END_TEST

/* A segment left under our own pid by a dead process that had it before
 * (pids are reused; a killed process unlinks nothing) made the export fail
 * with EEXIST: the pager ran without live stats (seen as a flaky sandbox
 * test late in a long session). It is stale and is replaced. */
START_TEST(stale_segment_under_our_pid_is_replaced)
{
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION };
	struct ufp_snapshot snap = { .size = sizeof(snap), .version = UFP_SNAPSHOT_VERSION };
	ufp_pager *p = NULL;
	char path[128];
	glob_t g;
	unsigned long long id = 0;
	int fd;

	/* learn the next pager id from one pager's segment */
	ck_assert_int_eq(ufp_pager_create(&pr, &p), 0);
	snprintf(path, sizeof(path), UFP_SNAPSHOT_PATTERN, (int)getpid());
	ck_assert_int_eq(glob(path, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		unsigned long long v = strtoull(strrchr(g.gl_pathv[i], '.') + 1, NULL, 10);

		if (v > id)
			id = v;
	}
	globfree(&g);
	ufp_pager_destroy(p);
	/* a dead process's leftover under the name the next pager will use */
	snprintf(path, sizeof(path), "/dev/shm/ufpager.%d.%llu", (int)getpid(), id + 1);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "stale", 5), 5);
	close(fd);
	ck_assert_int_eq(ufp_pager_create(&pr, &p), 0);
	usleep(300 * 1000);   /* an exporter round */
	ck_assert_msg(ufp_snapshot_read(path, &snap) == 0, "no live segment: %s", ufp_last_error());
	ufp_pager_destroy(p);
	ck_assert_int_ne(access(path, F_OK), 0);   /* ours, unlinked at destroy */
}
END_TEST

START_TEST(json_has_every_documented_field)
{
	ufp_pager *p = ufp_test_pager(0, 0, 0);
	struct ufp_stats s = get(p);
	char *buf = NULL, key[96];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ufp_stats_print_json(f, &s);
	fclose(f);
	ck_assert_msg(buf[0] == '{' && buf[len - 2] == '}', "%s", buf);
	int depth = 0;
	for (size_t i = 0; i < len; i++) {
		depth += buf[i] == '{';
		depth -= buf[i] == '}';
		ck_assert_int_ge(depth, 0);
	}
	ck_assert_int_eq(depth, 0);
	snprintf(key, sizeof(key), "\"version\":%d", UFP_STATS_VERSION);
	ck_assert_ptr_nonnull(strstr(buf, key));
#define UFP_X_CHECK(name, kind, desc)                                          \
	snprintf(key, sizeof(key), "\"%s\":%llu", #name, (unsigned long long)s.name); \
	ck_assert_msg(strstr(buf, key), "missing %s in %s", key, buf);
	UFP_STAT_COUNTERS(UFP_X_CHECK)
#undef UFP_X_CHECK
#define UFP_X_CHECK(name, desc)                                                \
	snprintf(key, sizeof(key), "\"%s\":{\"count\":", #name);                \
	ck_assert_msg(strstr(buf, key), "missing %s", key);
	UFP_STAT_LATENCIES(UFP_X_CHECK)
#undef UFP_X_CHECK
	free(buf);
	ufp_pager_destroy(p);
}
END_TEST

/* A live child process with a pager; returns its pid, ready when read. */
static pid_t live_child(int *done_fd)
{
	int ready[2], done[2];
	pid_t c;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(done), 0);
	c = fork();
	if (c == 0) {
		struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
					 .fault_around = 1 };
		ufp_pager *p;
		char *m, x;

		close(ready[0]);
		close(done[1]);
		if (ufp_pager_create(&pr, &p) ||
		    ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m))
			_exit(1);
		for (int i = 0; i < 64; i++)
			m[(size_t)i * PAGE] = 1;
		usleep(400000);                  /* the exporter runs every 200 ms */
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		if (read(done[0], &x, 1) < 0)
			_exit(1);
		ufp_pager_destroy(p);
		_exit(0);
	}
	close(ready[1]);
	close(done[0]);
	char x;
	ck_assert_int_eq(read(ready[0], &x, 1), 1);
	close(ready[0]);
	*done_fd = done[1];
	return c;
}

START_TEST(live_process_is_read_through_its_segment)
{
	int done, st;
	pid_t c = live_child(&done);
	char pat[64], why[256], cmd[512], out[8192];
	static struct ufp_export e;
	glob_t g;

	snprintf(pat, sizeof(pat), "/dev/shm/ufpager.%d.*", (int)c);
	ck_assert_int_eq(glob(pat, 0, NULL, &g), 0);
	ck_assert_int_eq(ufp_export_read(g.gl_pathv[0], &e, why, sizeof(why)), 0);
	ck_assert_uint_eq(e.pid, (uint64_t)c);
	ck_assert_uint_eq(e.stats.faults, 64);
	ck_assert_uint_eq(e.nrows, 1);
	ck_assert_uint_eq(e.rows[0].faults, 64);
	/* the public reader sees the same */
	static struct ufp_snapshot snap = { .size = sizeof(snap), .version = UFP_SNAPSHOT_VERSION };
	ck_assert_int_eq(ufp_snapshot_read(g.gl_pathv[0], &snap), 0);
	ck_assert_uint_eq(snap.pid, (uint64_t)c);
	ck_assert_uint_eq(snap.stats.faults, 64);
	ck_assert_uint_eq(snap.stats.version, UFP_STATS_VERSION);
	ck_assert_uint_eq(snap.nregions, 1);
	ck_assert_uint_eq(snap.regions[0].faults, 64);
	ck_assert_uint_eq(snap.regions[0].prot, UFP_PROT_ALL);
	ck_assert_uint_eq(snap.regions[0].end - snap.regions[0].start, 64 * PAGE);
	globfree(&g);

	/* the CLI against the same live process */
	snprintf(cmd, sizeof(cmd), "%s stats %d --json", UFPAGERCTL_PATH, (int)c);
	FILE *f = popen(cmd, "r");
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	ck_assert_int_eq(pclose(f), 0);
	ck_assert_msg(strstr(out, "\"faults\":64,"), "%s", out);
	snprintf(cmd, sizeof(cmd), "%s top %d --count 2 --interval 0.2", UFPAGERCTL_PATH, (int)c);
	f = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	ck_assert_int_eq(pclose(f), 0);
	ck_assert_msg(strstr(out, "faults/s") && strstr(out, "region start"), "%s", out);

	ck_assert_int_eq(write(done, "d", 1), 1);
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_ne(glob(pat, 0, NULL, &g), 0);   /* removed at destroy */
	/* a process with no pager: a clear message, exit 1 */
	snprintf(cmd, sizeof(cmd), "%s stats %d 2>&1", UFPAGERCTL_PATH, (int)getpid());
	f = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	ck_assert_int_ne(pclose(f), 0);
	ck_assert_msg(strstr(out, "exports no ufpager statistics"), "%s", out);
}
END_TEST

static int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	ssize_t w = write(fd, buf, len);

	close(fd);
	return w == (ssize_t)len ? 0 : -1;
}

START_TEST(reader_rejects_truncated_and_corrupted_segments)
{
	static struct ufp_export good, out;
	char path[] = "/tmp/ufp-seg-XXXXXX", why[256];
	unsigned seed = 42;
	int fd = mkstemp(path);

	close(fd);
	memset(&good, 0, sizeof(good));
	good.magic = UFP_EXPORT_MAGIC;
	good.version = UFP_EXPORT_VERSION;
	good.header_size = offsetof(struct ufp_export, stats);
	good.stats_size = sizeof(struct ufp_stats);
	good.row_size = sizeof(struct ufp_export_region);
	good.max_rows = UFP_EXPORT_ROWS;
	good.total_size = sizeof(good);
	good.pid = 1;
	good.nrows = 3;
	ck_assert_int_eq(write_file(path, &good, sizeof(good)), 0);
	ck_assert_int_eq(ufp_export_read(path, &out, why, sizeof(why)), 0);
	ck_assert_uint_eq(out.nrows, 3);

	/* every truncation is rejected */
	for (size_t len = 0; len < sizeof(good); len += 8) {
		ck_assert_int_eq(write_file(path, &good, len), 0);
		ck_assert_msg(ufp_export_read(path, &out, why, sizeof(why)) < 0, "len %zu", len);
	}
	/* each header field corrupted is rejected with a reason */
	struct { size_t off; int err; } bad[] = {
		{ offsetof(struct ufp_export, magic), -EBADMSG },
		{ offsetof(struct ufp_export, version), -EPROTO },
		{ offsetof(struct ufp_export, stats_size), -EBADMSG },
		{ offsetof(struct ufp_export, row_size), -EBADMSG },
		{ offsetof(struct ufp_export, max_rows), -EBADMSG },
		{ offsetof(struct ufp_export, total_size), -EBADMSG },
		{ offsetof(struct ufp_export, nrows), -EBADMSG },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		static struct ufp_export b;

		b = good;
		((unsigned char *)&b)[bad[i].off] ^= 0x40;
		ck_assert_int_eq(write_file(path, &b, sizeof(b)), 0);
		why[0] = 0;
		ck_assert_int_eq(ufp_export_read(path, &out, why, sizeof(why)), bad[i].err);
		ck_assert(why[0] != 0);
	}
	/* fuzz: random flips anywhere never crash the reader; a good header
	 * with a garbage body still reads */
	for (int it = 0; it < 3000; it++) {
		static struct ufp_export b;
		size_t len = sizeof(b) - (it % 5 == 0 ? (size_t)rand_r(&seed) % sizeof(b) : 0);

		b = good;
		for (int k = 0; k < 1 + it % 8; k++)
			((unsigned char *)&b)[(size_t)rand_r(&seed) % sizeof(b)] ^=
				(unsigned char)(1 + rand_r(&seed) % 255);
		ck_assert_int_eq(write_file(path, &b, len), 0);
		int r = ufp_export_read(path, &out, why, sizeof(why));

		ck_assert(r == 0 || r == -EBADMSG || r == -EPROTO || r == -EAGAIN);
		if (r == 0)
			ck_assert_uint_le(out.nrows, UFP_EXPORT_ROWS);
	}
	unlink(path);
}
END_TEST

/* Run `ufpagerctl ARGS` under a 10 s timeout with stderr merged into the
 * output; returns its exit status (124: it hung and timeout killed it). */
static int run_cli(char *out, size_t cap, const char *fmt, ...)
{
	char args[512], cmd[1024];
	va_list ap;
	size_t n;
	FILE *f;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "timeout 10 %s %s 2>&1", UFPAGERCTL_PATH, args);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, cap - 1, f);
	out[n] = 0;
	st = pclose(f);
	ck_assert_msg(WIFEXITED(st), "%s: no exit status", cmd);
	return WEXITSTATUS(st);
}

START_TEST(stats_refuses_a_fifo_at_the_segment_path)
{
	char path[96], out[4096];
	int rc;

	/* a live pid (ours) with a FIFO planted where a segment would be: the
	 * reader must not block in open() waiting for a writer */
	snprintf(path, sizeof(path), "/dev/shm/ufpager.%d.999999", (int)getpid());
	unlink(path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	rc = run_cli(out, sizeof(out), "stats %d", (int)getpid());
	unlink(path);
	ck_assert_msg(rc == 1, "exit %d (124: hung on the FIFO): %s", rc, out);
	ck_assert_msg(strstr(out, path) && strstr(out, "not a regular file"), "%s", out);
}
END_TEST

START_TEST(stats_refuses_a_segment_of_the_wrong_size)
{
	static struct ufp_export e;
	char path[96], out[4096];
	int rc, fd;

	memset(&e, 0, sizeof(e));
	e.magic = UFP_EXPORT_MAGIC;
	e.version = UFP_EXPORT_VERSION;
	e.header_size = offsetof(struct ufp_export, stats);
	e.stats_size = sizeof(struct ufp_stats);
	e.row_size = sizeof(struct ufp_export_region);
	e.max_rows = UFP_EXPORT_ROWS;
	e.total_size = sizeof(e);
	e.pid = (uint64_t)getpid();
	snprintf(path, sizeof(path), "/dev/shm/ufpager.%d.999998", (int)getpid());
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, &e, sizeof(e)), (ssize_t)sizeof(e));
	rc = run_cli(out, sizeof(out), "stats %d --json", (int)getpid());
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);   /* the exact size reads */
	ck_assert_int_eq(ftruncate(fd, (off_t)sizeof(e) + 4096), 0);
	rc = run_cli(out, sizeof(out), "stats %d", (int)getpid());
	close(fd);
	unlink(path);
	ck_assert_msg(rc == 1 && strstr(out, path) && strstr(out, "size"), "exit %d: %s", rc, out);
}
END_TEST

/* Bad command lines: exit 2 at once with a message naming the culprit
 * (never a screen that runs forever, never a value silently used). */
START_TEST(cli_refuses_bad_numbers_and_extra_arguments)
{
	static const struct {
		const char *args, *says;
	} bad[] = {
		{ "top %d --count -5", "--count" },
		{ "top %d --count 0", "--count" },
		{ "top %d --count 3x", "--count" },
		{ "top %d -n 99999999999999999999", "--count" },
		{ "top %d --interval nan", "--interval" },
		{ "top %d --interval inf", "--interval" },
		{ "top %d --interval abc", "--interval: 'abc' is not a number" },
		{ "top %d --interval -1", "--interval" },
		{ "top %d --interval 0", "--interval" },
		{ "top %d -d 1e300", "--interval" },
		{ "top %d --pager 0", "--pager" },
		{ "top %d --pager -3", "--pager" },
		{ "top %d --pager x1", "--pager" },
		{ "top %d --interval", "--interval" },
		{ "top %d 1", "'1'" },
		{ "top %d --bogus", "--bogus" },
		{ "stats %d 2", "'2'" },
		{ "stats %d --json --bogus", "--bogus" },
		{ "stats %d -0", "-0" },
	};
	char out[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char args[128];
		int rc;

		snprintf(args, sizeof(args), bad[i].args, (int)getpid());
		rc = run_cli(out, sizeof(out), "%s", args);
		ck_assert_msg(rc == 2, "'%s': exit %d: %s", args, rc, out);
		ck_assert_msg(strstr(out, bad[i].says), "'%s' does not name %s: %s", args,
			      bad[i].says, out);
	}
	/* good values still parse (the process exports nothing: exit 1) */
	ck_assert_int_eq(run_cli(out, sizeof(out), "top %d -n 1 -d 0.01 --pager 2",
				 (int)getpid()), 1);
	ck_assert_msg(strstr(out, "exports no ufpager statistics"), "%s", out);
	ck_assert_int_eq(run_cli(out, sizeof(out), "stats --json %d", (int)getpid()), 1);
	ck_assert_int_eq(run_cli(out, sizeof(out), "stats"), 2);
	ck_assert_int_eq(run_cli(out, sizeof(out), "stats --help"), 0);
	ck_assert_int_eq(run_cli(out, sizeof(out), "help top"), 0);
	ck_assert_msg(strstr(out, "--interval"), "%s", out);
}
END_TEST

/* Run fn(stats, f) on a memory stream; returns its result, *text the output. */
static int print_to_string(int (*fn)(const struct ufp_stats *, FILE *),
			   const struct ufp_stats *s, char **text)
{
	size_t len = 0;
	FILE *f = open_memstream(text, &len);
	int r = fn(s, f);

	fclose(f);
	return r;
}

START_TEST(public_stats_printers_check_their_arguments)
{
	int (*fns[2])(const struct ufp_stats *, FILE *) = { ufp_stats_print, ufp_stats_json };
	ufp_pager *p = ufp_test_pager(0, 0, 0);
	struct ufp_stats s = get(p), bad;
	char *text = NULL;

	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(fns[i](NULL, stdout), -EINVAL);
		ck_assert_msg(strstr(ufp_last_error(), "stats is NULL"), "%s", ufp_last_error());
		ck_assert_int_eq(fns[i](&s, NULL), -EINVAL);
		ck_assert_msg(strstr(ufp_last_error(), "out is NULL"), "%s", ufp_last_error());
		bad = s;
		bad.version = 99;
		ck_assert_int_eq(fns[i](&bad, stdout), -EINVAL);
		ck_assert_msg(strstr(ufp_last_error(), "version 99"), "%s", ufp_last_error());
		bad = s;
		bad.size = 8;
		ck_assert_int_eq(fns[i](&bad, stdout), -EINVAL);
		ck_assert_int_eq(print_to_string(fns[i], &s, &text), 0);
		ck_assert_str_eq(ufp_last_error(), "");
		ck_assert_msg(strstr(text, i ? "\"faults\":" : "faults ") &&
			      strstr(text, "fault_lat") && strstr(text, "sandbox_kills"), "%s", text);
		free(text);
		/* a version-2 caller: accepted, the newer counters print as 0 */
		bad = s;
		bad.version = 2;
		bad.size = offsetof(struct ufp_stats, UFP_STATS_FIRST_V3);
		bad.sandbox_threads = 12345;   /* beyond its size: not read */
		ck_assert_int_eq(print_to_string(fns[i], &bad, &text), 0);
		ck_assert_msg(!strstr(text, "12345"), "%s", text);
		free(text);
		/* a version-3 caller: accepted, the version-4 counters print as 0 */
		bad = s;
		bad.version = 3;
		bad.size = offsetof(struct ufp_stats, UFP_STATS_FIRST_V4);
		bad.faults_parked = 54321;     /* beyond its size: not read */
		ck_assert_int_eq(print_to_string(fns[i], &bad, &text), 0);
		ck_assert_msg(!strstr(text, "54321") && strstr(text, "faults_parked"), "%s", text);
		free(text);
	}
	ck_assert_int_eq(print_to_string(ufp_stats_json, &s, &text), 0);
	ck_assert_msg(text[0] == '{' && strstr(text, "\"version\":4"), "%s", text);
	free(text);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(snapshot_reader_checks_its_arguments)
{
	static struct ufp_snapshot snap;

	snap = (struct ufp_snapshot){ .size = sizeof(snap), .version = UFP_SNAPSHOT_VERSION };
	ck_assert_int_eq(ufp_snapshot_read(NULL, &snap), -EINVAL);
	ck_assert_msg(strstr(ufp_last_error(), "path is NULL"), "%s", ufp_last_error());
	ck_assert_int_eq(ufp_snapshot_read("/dev/shm/x", NULL), -EINVAL);
	snap.size = 16;
	ck_assert_int_eq(ufp_snapshot_read("/dev/shm/x", &snap), -EINVAL);
	ck_assert_msg(strstr(ufp_last_error(), "size 16"), "%s", ufp_last_error());
	snap.size = sizeof(snap);
	snap.version = 7;
	ck_assert_int_eq(ufp_snapshot_read("/dev/shm/x", &snap), -EINVAL);
	snap.version = UFP_SNAPSHOT_VERSION;
	ck_assert_int_eq(ufp_snapshot_read("/dev/shm/ufpager.no.such.segment", &snap), -ENOENT);
	ck_assert_msg(strstr(ufp_last_error(), "/dev/shm/ufpager.no.such.segment"), "%s",
		      ufp_last_error());
	ck_assert_int_lt(ufp_snapshot_read("/etc/passwd", &snap), 0);   /* foreign file */
	ck_assert_str_ne(ufp_last_error(), "");
}
END_TEST

START_TEST(config_print_checks_its_arguments)
{
	struct ufp_params bad = { .size = 4, .version = UFP_PARAMS_VERSION };
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
				 .lock_mode = UFP_LOCK_GLOBAL };
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_int_eq(ufp_config_print(NULL, NULL), -EINVAL);
	ck_assert_msg(strstr(ufp_last_error(), "out is NULL"), "%s", ufp_last_error());
	ck_assert_int_eq(ufp_config_print(&bad, stdout), -EINVAL);
	ck_assert_msg(strstr(ufp_last_error(), "struct ufp_params"), "%s", ufp_last_error());
	setenv("UFPAGER_LOCK_MODE", "bogus", 1);
	ck_assert_int_eq(ufp_config_print(NULL, stdout), -EINVAL);
	ck_assert_msg(strstr(ufp_last_error(), "UFPAGER_LOCK_MODE=bogus"), "%s", ufp_last_error());
	unsetenv("UFPAGER_LOCK_MODE");
	f = open_memstream(&text, &len);
	ck_assert_int_eq(ufp_config_print(&pr, f), 0);
	fclose(f);
	ck_assert_msg(strstr(text, "VARIABLE") && strstr(text, "UFPAGER_LOCK_MODE") &&
		      strstr(text, "global") && strstr(text, "API"), "%s", text);
	free(text);
}
END_TEST

START_TEST(version_call_matches_the_header)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", UFP_VERSION_MAJOR, UFP_VERSION_MINOR,
		 UFP_VERSION_PATCH);
	ck_assert_str_eq(ufp_version(), want);
}
END_TEST

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, counters_match_a_known_workload, 0, 2);
	tcase_add_loop_test(tc, per_region_counts_add_up_to_the_totals, 0, 2);
	tcase_add_test(tc, stale_segment_under_our_pid_is_replaced);
	tcase_add_test(tc, json_has_every_documented_field);
	tcase_add_test(tc, live_process_is_read_through_its_segment);
	tcase_add_test(tc, reader_rejects_truncated_and_corrupted_segments);
	tcase_add_test(tc, stats_refuses_a_fifo_at_the_segment_path);
	tcase_add_test(tc, stats_refuses_a_segment_of_the_wrong_size);
	tcase_add_test(tc, cli_refuses_bad_numbers_and_extra_arguments);
	tcase_add_test(tc, public_stats_printers_check_their_arguments);
	tcase_add_test(tc, snapshot_reader_checks_its_arguments);
	tcase_add_test(tc, config_print_checks_its_arguments);
	tcase_add_test(tc, version_call_matches_the_header);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ufp_test_require_uffd();
	return ufp_run_suite(stats_suite());
}
