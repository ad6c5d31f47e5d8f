/* SPDX-License-Identifier: MIT */
/*
 * bench_apps.c - `ufpagerctl bench apps`: programs nobody here wrote, run
 * three ways side by side in one run: on the kernel without a limit (the
 * reference output and time), under `ufpagerctl run --budget B` (its
 * output must equal the reference, and the pager must have served
 * faults), and on the kernel in a memory cgroup limited to B with a swap
 * file (root, cgroup and swapon needed; the column says why when it is
 * skipped). Per program: wall times, the pager's fault, swap-in and
 * lock counters (summed over every process of the program that had a
 * pager: the preload's UFPAGER_STATS_FILE lines), and a metric the
 * program reports (redis-benchmark requests/s) when it has one.
 * Exit status 1 when a program's result differs or nothing was paged:
 * the ctest label "apps" runs it per program (--app NAME).
 *
 * Each program is a shell script run with sh in a fresh directory ($DIR)
 * where a function `run` starts the program under test (plain, under
 * ufpagerctl run, or in the cgroup); $N sizes the work.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "run.h"

struct app {
	const char *name;
	const char *needs;        /* programs that must be on PATH */
	unsigned n_quick, n_full; /* $N */
	const char *budget_quick, *budget_full;
	const char *what;         /* one line for the table's legend */
	const char *script;       /* sh, in $DIR; stdout is the result */
};

#define PY_WORK \
	"run /usr/bin/python3 - \"$N\" <<'EOF'\n" \
	"import hashlib, sys\n" \
	"n = int(sys.argv[1])\n" \
	"b = bytearray(n << 20)\n" \
	"for i in range(0, len(b), 512): b[i] = (i * 7) % 251\n" \
	"l = [i * i for i in range(n * 20000)]\n" \
	"d = {i: str(i) * 3 for i in range(n * 4000)}\n" \
	"s = sorted(l[::7], reverse=True)\n" \
	"h = hashlib.sha256(b)\n" \
	"h.update(repr(sum(l)).encode()); h.update(repr(s[:5]).encode())\n" \
	"h.update(repr(sum(len(v) for v in d.values())).encode())\n" \
	"print(n, len(l), len(d), h.hexdigest())\n" \
	"EOF\n"

#define SQL_WORK \
	"cat > q.sql <<EOF\n" \
	"CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);\n" \
	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<$N)\n" \
	"INSERT INTO t SELECT x, printf('k%08d', (x*7919)%$N), " \
	"CAST(printf('%0600d', x*104729) AS BLOB) FROM c;\n" \
	"CREATE INDEX tk ON t(k);\n" \
	"CREATE TABLE u AS SELECT id%1000 AS g, length(v) AS l, k FROM t;\n" \
	"CREATE INDEX uk ON u(k);\n" \
	"SELECT count(*), sum(length(v)), hex(substr(max(v),1,16)) FROM t;\n" \
	"SELECT g, count(*), sum(l), min(k), max(k) FROM u GROUP BY g ORDER BY g LIMIT 5;\n" \
	"SELECT k FROM t WHERE k BETWEEN 'k00001000' AND 'k00001010' ORDER BY k;\n" \
	"SELECT sum(t.id) FROM t JOIN u ON u.k = t.k WHERE u.g < 10;\n" \
	"SELECT count(*), sum(id) FROM t WHERE substr(v, 590, 3) = '729';\n" \
	"EOF\n" \
	"# a page cache of N*2/3 pages of 4400 bytes: one malloc (sqlite3 -pagecache)\n" \
	"run sqlite3 -pagecache 4400 $((N * 2 / 3)) :memory: < q.sql\n"

#define SORT_WORK \
	"awk -v n=$N 'BEGIN { srand(1); for (i = 0; i < n; i++) " \
	"printf \"%08x%08x line %d\\n\", int(rand() * 4294967296), int(rand() * 4294967296), i }' " \
	"> in.txt\n" \
	"run sort -S 512M in.txt -o out.txt\n" \
	"wc -l < out.txt; cksum < out.txt\n"

#define VM_WORK \
	"run stress-ng --vm 2 --vm-bytes ${N}M --vm-keep --verify -t 3 > log 2>&1\n" \
	"rc=$?; grep -iE 'fail|error' log >&2\n" \
	"[ $rc = 0 ] && grep -q 'successful run completed' log && " \
	"! grep -qiE 'fail|error' log && echo verified\n"

#define MALLOC_WORK \
	"run stress-ng --malloc 2 --malloc-bytes ${N}M --verify -t 3 > log 2>&1\n" \
	"rc=$?; grep -iE 'fail|error' log >&2\n" \
	"[ $rc = 0 ] && grep -q 'successful run completed' log && " \
	"! grep -qiE 'fail|error' log && echo verified\n"

/* SET N keys with 1000-byte values through a pipeline, GET every one
 * back and compare, DEBUG DIGEST of the whole dataset; then (when
 * $FULL) redis-benchmark on other keys for throughput. */
#define REDIS_WORK \
	"run redis-server --port 0 --unixsocket \"$DIR/sock\" --save '' --appendonly no " \
	"--enable-debug-command yes --daemonize no > server.log 2>&1 &\n" \
	"srv=$!\n" \
	"i=0; while [ ! -S \"$DIR/sock\" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done\n" \
	"/usr/bin/python3 - \"$DIR/sock\" \"$N\" <<'EOF'\n" \
	"import hashlib, socket, sys\n" \
	"s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); n = int(sys.argv[2])\n" \
	"f = s.makefile('rb')\n" \
	"def cmd(*a):\n" \
	"    out = b'*%d\\r\\n' % len(a)\n" \
	"    for x in a: out += b'$%d\\r\\n%s\\r\\n' % (len(x), x)\n" \
	"    return out\n" \
	"def reply():\n" \
	"    l = f.readline()\n" \
	"    if l[:1] == b'$':\n" \
	"        k = int(l[1:]); v = f.read(k + 2)[:-2] if k >= 0 else None; return v\n" \
	"    if l[:1] == b'-': raise SystemExit('redis: ' + l.decode())\n" \
	"    return l.strip()\n" \
	"def val(i):\n" \
	"    return (hashlib.sha256(b'%d' % i).hexdigest().encode() * 16)[:1000]\n" \
	"for lo in range(0, n, 1000):\n" \
	"    r = range(lo, min(n, lo + 1000))\n" \
	"    s.sendall(b''.join(cmd(b'SET', b'key:%d' % i, val(i)) for i in r))\n" \
	"    for i in r: reply()\n" \
	"bad = 0\n" \
	"for lo in range(0, n, 1000):\n" \
	"    r = range(lo, min(n, lo + 1000))\n" \
	"    s.sendall(b''.join(cmd(b'GET', b'key:%d' % i) for i in r))\n" \
	"    for i in r: bad += reply() != val(i)\n" \
	"s.sendall(cmd(b'DEBUG', b'DIGEST')); d = reply()\n" \
	"print(n, 'keys', bad, 'wrong', d.decode())\n" \
	"EOF\n" \
	"if [ -n \"${FULL:-}\" ]; then redis-benchmark -s \"$DIR/sock\" -t set,get -n $((N * 2)) " \
	"-d 1000 -r $N -q 2>/dev/null | tr '\\r' '\\n' | grep 'requests per second' | " \
	"tail -2 | tr '\\n' ' ' > metric; fi\n" \
	"redis-cli -s \"$DIR/sock\" shutdown nosave >/dev/null 2>&1\n" \
	"wait $srv\n"

#define JAVA_WORK \
	"cat > Work.java <<'EOF'\n" \
	"import java.util.*;\n" \
	"public class Work {\n" \
	"  public static void main(String[] a) {\n" \
	"    int n = Integer.parseInt(a[0]); long sum = 0;\n" \
	"    List<long[]> keep = new ArrayList<>(); HashMap<Integer, String> m = new HashMap<>();\n" \
	"    for (int i = 0; i < n; i++) {\n" \
	"      long[] x = new long[128];\n" \
	"      for (int j = 0; j < x.length; j++) x[j] = (long) i * 31 + j;\n" \
	"      keep.add(x); if (i % 4 == 0) m.put(i, \"v\" + i);\n" \
	"    }\n" \
	"    for (int r = 0; r < 2; r++) for (long[] x : keep) for (long v : x) sum = sum * 1000003 + v;\n" \
	"    long ms = 0;\n" \
	"    for (Map.Entry<Integer, String> e : m.entrySet()) ms += e.getKey() ^ e.getValue().hashCode();\n" \
	"    System.out.println(n + \" \" + sum + \" \" + ms);\n" \
	"  }\n" \
	"}\n" \
	"EOF\n" \
	"run java -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1 Work.java $N\n"

/* Sizes: the quick ones keep the whole label under 3 minutes on 2 cores
 * (debug build); each budget is well below the program's working set. */
static const struct app apps[] = {
	{ "python", "/usr/bin/python3", 64, 384, "24M", "96M",
	  "python3: bytearray, list, dict, sort; sha256 of it all", PY_WORK },
	{ "sqlite", "sqlite3", 60000, 400000, "24M", "96M",
	  "sqlite3 :memory: with a -pagecache buffer: tables, indexes, joins", SQL_WORK },
	{ "sort", "sort awk", 400000, 4000000, "12M", "64M",
	  "sort -S 512M of a file several times the budget", SORT_WORK },
	{ "stress-vm", "stress-ng", 48, 256, "24M", "96M",
	  "stress-ng --vm 2 --vm-bytes N --vm-keep --verify (budget per worker)", VM_WORK },
	{ "stress-malloc", "stress-ng", 4, 32, "16M", "64M",
	  "stress-ng --malloc 2 --malloc-bytes N --verify", MALLOC_WORK },
	{ "redis", "redis-server redis-cli /usr/bin/python3", 30000, 300000, "16M", "128M",
	  "redis-server: N keys x 1000 B set, read back, compared; DEBUG DIGEST", REDIS_WORK },
	{ "java", "java", 100000, 1000000, "48M", "256M",
	  "java 17 (SerialGC): N long[128] arrays and a HashMap, checksummed", JAVA_WORK },
};
#define NAPPS (sizeof(apps) / sizeof(apps[0]))

static bool have_program(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* What the app needs that is missing, or NULL. */
static const char *missing(const struct app *a)
{
	static char buf[128];
	char list[128], *save = NULL;

	snprintf(list, sizeof(list), "%s", a->needs);
	for (char *t = strtok_r(list, " ", &save); t; t = strtok_r(NULL, " ", &save))
		if (!have_program(t)) {
			snprintf(buf, sizeof(buf), "%s", t);
			return buf;
		}
	return NULL;
}

enum mode { M_PLAIN, M_UFP, M_CGROUP, M_NR };
static const char *const mode_name[M_NR] = { "kernel", "ufpager", "kernel-cgroup" };

struct outcome {
	bool ran, ok;
	double wall_s;
	char why[160];
	char metric[160];
};

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static bool same_file(const char *a, const char *b)
{
	char cmd[1300];

	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

/*
 * Run the app once in mode m in dir. The script gets the `run` function
 * of its mode; stdout goes to dir/out.<mode>, stderr to dir/err.<mode>.
 */
static void run_app(const struct app *a, enum mode m, const char *dir, unsigned n,
		    const char *budget, bool full, const char *cgdir, struct outcome *r)
{
	char path[512], out[512], err[512];
	FILE *f;
	int st;
	uint64_t t0;
	pid_t c;

	snprintf(path, sizeof(path), "%s/script.%s.sh", dir, mode_name[m]);
	f = fopen(path, "w");
	if (!f) {
		snprintf(r->why, sizeof(r->why), "cannot write the script: %s", strerror(errno));
		return;
	}
	fprintf(f, "set -u\ncd \"$DIR\" || exit 1\nrm -f metric\n");
	if (m == M_UFP) {
		char exe[512];
		ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		exe[k > 0 ? k : 0] = '\0';
		fprintf(f, "run() { '%s' run --budget %s --stats-file \"$DIR/stats\" -- \"$@\" || "
			"exit $?; }\n", exe, budget);
	} else {   /* a program that fails (or is OOM-killed) fails the script */
		fprintf(f, "run() { \"$@\" || exit $?; }\n");
	}
	fputs(a->script, f);
	fclose(f);
	snprintf(out, sizeof(out), "%s/out.%s", dir, mode_name[m]);
	snprintf(err, sizeof(err), "%s/err.%s", dir, mode_name[m]);
	snprintf(path, sizeof(path), "%s/stats", dir);
	unlink(path);
	t0 = now_ns();
	c = fork();
	if (c == 0) {
		char nbuf[32], cg[600];
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		setpgid(0, 0);   /* what the script leaves running is killed with it */
		if (m == M_CGROUP) {
			snprintf(cg, sizeof(cg), "%s/cgroup.procs", cgdir);
			snprintf(nbuf, sizeof(nbuf), "%d", (int)getpid());
			int fd = open(cg, O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, nbuf, strlen(nbuf)) < 0)
				_exit(125);
			close(fd);
		}
		snprintf(nbuf, sizeof(nbuf), "%u", n);
		setenv("N", nbuf, 1);
		setenv("DIR", dir, 1);
		if (full)
			setenv("FULL", "1", 1);
		else
			unsetenv("FULL");
		snprintf(path, sizeof(path), "%s/script.%s.sh", dir, mode_name[m]);
		execl("/bin/sh", "sh", path, (char *)NULL);
		_exit(127);
	}
	if (c < 0) {
		snprintf(r->why, sizeof(r->why), "fork: %s", strerror(errno));
		return;
	}
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	r->wall_s = (double)(now_ns() - t0) / 1e9;
	kill(-c, SIGKILL);   /* a server the script failed to stop */
	r->ran = true;
	snprintf(path, sizeof(path), "%s/metric", dir);
	read_file(path, r->metric, sizeof(r->metric));
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		char tail[160];

		int k = read_file(err, tail, sizeof(tail));
		for (int i = 0; i < k; i++)
			if (tail[i] == '\n')
				tail[i] = ' ';
		snprintf(r->why, sizeof(r->why), "%s %d: %.100s",
			 WIFEXITED(st) ? "exit" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), k > 0 ? tail : "");
		return;
	}
	r->ok = true;
}

/* A memory cgroup limited to limit bytes (v2 at /sys/fs/cgroup, else v1's
 * memory hierarchy), and a swap file to go with it. "" and why on
 * failure. */
static void cgroup_setup(uint64_t limit, char *dir, size_t dlen, struct kb_swap *sw,
			 char *why, size_t wlen)
{
	dir[0] = '\0';
	if (geteuid() != 0) {
		snprintf(why, wlen, "needs root (a memory cgroup and a swap file)");
		return;
	}
	int err = kb_cgroup_create(limit, dir, dlen);
	if (err) {
		snprintf(why, wlen, "no memory cgroup (%s)", strerror(-err));
		dir[0] = '\0';
		return;
	}
	if (kb_swap_file_setup("/var/tmp", 1ull << 30, sw)) {
		snprintf(why, wlen, "no swap for the kernel: %s", sw->why);
		rmdir(dir);
		dir[0] = '\0';
	}
}

static uint64_t parse_budget(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	return *end == 'M' ? v << 20 : *end == 'G' ? v << 30 : v;
}

int bench_apps(struct bench_opts *o)
{
	int rc = 0;
	char cgwhy[320] = "";

	if (o->apps_only) {
		size_t i = 0;

		while (i < NAPPS && strcmp(apps[i].name, o->apps_only))
			i++;
		if (i == NAPPS) {
			fprintf(stderr, "ufpagerctl bench: --app: '%s' is not one of", o->apps_only);
			for (i = 0; i < NAPPS; i++)
				fprintf(stderr, " %s", apps[i].name);
			fputc('\n', stderr);
			return 2;
		}
	}

	printf("\napps: programs nobody here wrote; ufpager = ufpagerctl run --budget B "
	       "(handler delivery);\n      kernel = no limit (the reference output); "
	       "kernel-cgroup = memory cgroup of B + a swap file\n");
	printf("%-14s %6s %8s | %9s %9s %9s %7s | %9s %9s %9s %s\n", "program", "N", "budget",
	       "kernel s", "ufpager s", "cgroup s", "ufp/krn", "faults", "swap-ins", "lock ret",
	       "verified");
	for (size_t i = 0; i < NAPPS; i++) {
		const struct app *a = &apps[i];
		unsigned n = o->apps_full ? a->n_full : a->n_quick;
		const char *budget = o->apps_full ? a->budget_full : a->budget_quick;
		struct outcome r[M_NR];
		struct run_counters cnt = { 0 };
		char dir[] = "/var/tmp/ufpager-apps.XXXXXX", path[600], cg[320];
		struct kb_swap sw = { 0 };
		const char *miss;

		if (o->apps_only && strcmp(o->apps_only, a->name))
			continue;
		memset(r, 0, sizeof(r));
		if ((miss = missing(a))) {
			printf("%-14s skipped: %s is not installed (scripts/deps.sh installs it)\n",
			       a->name, miss);
			if (o->apps_only)
				rc = 77;
			continue;
		}
		if (!mkdtemp(dir)) {
			fprintf(stderr, "bench apps: mkdtemp: %s\n", strerror(errno));
			return 1;
		}
		for (int m = 0; m < M_NR; m++) {
			if (m == M_CGROUP) {
				if (o->apps_no_cgroup) {
					snprintf(cgwhy, sizeof(cgwhy), "--no-cgroup");
					break;
				}
				cgroup_setup(parse_budget(budget), cg, sizeof(cg), &sw, cgwhy,
					     sizeof(cgwhy));
				if (!cg[0]) {
					snprintf(r[M_CGROUP].why, sizeof(r[M_CGROUP].why),
						 "skipped: %.140s", cgwhy);
					break;
				}
			}
			fprintf(stderr, "[apps] %s: %s run (N=%u, budget %s)\n", a->name,
				mode_name[m], n, budget);
			run_app(a, (enum mode)m, dir, n, budget, o->apps_full, cg, &r[m]);
			if (m == M_UFP) {
				snprintf(path, sizeof(path), "%s/stats", dir);
				run_stats_sum(path, &cnt);
			}
			if (m == M_CGROUP) {
				kb_swap_teardown(&sw);
				rmdir(cg);
			}
		}
		/* verified: the ufpager result equals the kernel's, and the pager
		 * served faults (so the comparison says something) */
		char pl[600], up[600];
		snprintf(pl, sizeof(pl), "%s/out.%s", dir, mode_name[M_PLAIN]);
		snprintf(up, sizeof(up), "%s/out.%s", dir, mode_name[M_UFP]);
		const char *verdict = "yes";
		if (!r[M_PLAIN].ok)
			verdict = "no: the kernel run failed";
		else if (!r[M_UFP].ok)
			verdict = "no: the ufpager run failed";
		else if (!same_file(pl, up))
			verdict = "no: the output differs from the kernel run";
		else if (!cnt.processes || !cnt.faults || !cnt.swapouts)
			verdict = "no: nothing was paged, or nothing evicted (the budget is "
				  "below the working set: it must evict)";
		else if (r[M_CGROUP].ran && (!r[M_CGROUP].ok || !same_file(pl, (snprintf(
				path, sizeof(path), "%s/out.%s", dir, mode_name[M_CGROUP]), path))))
			verdict = "yes (the kernel-cgroup run failed or differs: below)";
		bool ok = !strncmp(verdict, "yes", 3);
		char cgs[16];
		if (r[M_CGROUP].ran && r[M_CGROUP].ok)
			snprintf(cgs, sizeof(cgs), "%9.2f", r[M_CGROUP].wall_s);
		else if (r[M_CGROUP].ran)
			snprintf(cgs, sizeof(cgs), "%9s", "failed");
		else
			snprintf(cgs, sizeof(cgs), "%9s", "-");
		printf("%-14s %6u %8s | %9.2f %9.2f %s %7.2f | %9llu %9llu %9llu %s\n", a->name, n,
		       budget, r[M_PLAIN].wall_s, r[M_UFP].wall_s, cgs,
		       r[M_PLAIN].wall_s > 0 ? r[M_UFP].wall_s / r[M_PLAIN].wall_s : 0,
		       (unsigned long long)cnt.faults, (unsigned long long)cnt.swapins,
		       (unsigned long long)cnt.lock_retry, verdict);
		printf("%-14s   %s; %u process(es) paged, swap-outs %llu, lock success %llu "
		       "abort %llu fallback %llu\n", "", a->what, cnt.processes,
		       (unsigned long long)cnt.swapouts, (unsigned long long)cnt.lock_success,
		       (unsigned long long)cnt.lock_abort, (unsigned long long)cnt.lock_fallback);
		for (int m = 0; m < M_NR; m++) {
			if (r[m].metric[0])
				printf("%-14s   %s: %s\n", "", mode_name[m], r[m].metric);
			if (r[m].why[0])
				printf("%-14s   %s run: %s\n", "", mode_name[m], r[m].why);
		}
		json_row_begin(o, "apps");
		json_kv_str(o, "program", a->name);
		json_kv_num(o, "n", n);
		json_kv_str(o, "budget", budget);
		json_kv_num(o, "kernel_s", r[M_PLAIN].wall_s);
		json_kv_num(o, "ufpager_s", r[M_UFP].wall_s);
		if (r[M_CGROUP].ok)
			json_kv_num(o, "kernel_cgroup_s", r[M_CGROUP].wall_s);
		json_kv_num(o, "faults", (double)cnt.faults);
		json_kv_num(o, "swapins", (double)cnt.swapins);
		json_kv_num(o, "swapouts", (double)cnt.swapouts);
		json_kv_num(o, "lock_success", (double)cnt.lock_success);
		json_kv_num(o, "lock_retry", (double)cnt.lock_retry);
		json_kv_num(o, "lock_fallback", (double)cnt.lock_fallback);
		json_kv_num(o, "verified", ok);
		json_row_end(o);
		if (strcmp(verdict, "yes")) {
			rc = ok ? rc : 1;
			printf("%-14s   files kept in %s\n", "", dir);
		} else {
			snprintf(path, sizeof(path), "rm -rf '%s'", dir);
			if (system(path))
				fprintf(stderr, "bench apps: could not remove %s\n", dir);
		}
	}
	if (cgwhy[0])
		printf("kernel-cgroup column skipped: %s\n", cgwhy);
	return rc;
}
