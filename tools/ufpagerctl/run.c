/* SPDX-License-Identifier: MIT */
/*
 * run.c - `ufpagerctl run [OPTIONS] [--] PROGRAM ARGS...`: run an
 * unmodified program with its large allocations and anonymous mappings on
 * ufpager (libufpager_preload.so, tools/preload/preload.c). The options
 * become the UFPAGER_* environment the library and the preload read; the
 * program runs as a child so that whatever way it ends (exit without
 * freeing, _exit, a signal) its statistics segments are removed after it,
 * and its exit status is handed back (128+N for a signal, like a shell).
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ufpager.h>

#include "cli.h"
#include "run.h"

#ifndef UFP_PRELOAD_INSTALLED
#define UFP_PRELOAD_INSTALLED "/usr/local/lib/libufpager_preload.so"
#endif
#define PRELOAD_NAME "libufpager_preload.so"

static const char run_use[] =
	"usage: ufpagerctl run [--budget SIZE] [--delivery handler|sigbus] [--swap DIR|URI]\n"
	"                      [--swap-size SIZE] [--swap-dir DIR] [--ztier SIZE] [--min SIZE]\n"
	"                      [--no-exec-follow]\n"
	"                      [--stats] [--stats-file FILE] [--preload PATH] [--] PROGRAM ARGS...\n";

static const char run_help[] =
	"Run PROGRAM with its large allocations (malloc family) and large anonymous\n"
	"private mappings (mmap, with munmap/mprotect/madvise/mremap on them) on ufpager,\n"
	"through the preload library " PRELOAD_NAME ". Everything else passes through.\n"
	"\n"
	"  --budget SIZE      resident budget (UFPAGER_BUDGET; K/M/G suffixes); above it\n"
	"                     pages are swapped to the lz4 tier and the swap file\n"
	"  --delivery MODE    handler (default here: system calls on paged memory wait\n"
	"                     for the page) or sigbus (faster faults, but a system call\n"
	"                     that reads or writes a missing page fails with EFAULT)\n"
	"  --swap DIR|URI     where evicted pages go: a directory for the swap file, or\n"
	"                     an NBD export, nbd://HOST[:PORT]/EXPORT or\n"
	"                     nbd+unix:///EXPORT?socket=PATH (UFPAGER_SWAP; try it first\n"
	"                     with ufpagerctl check --swap)\n"
	"  --swap-size SIZE   swap file size (UFPAGER_SWAP_SIZE, default 1G)\n"
	"  --swap-dir DIR     directory of the swap file (UFPAGER_SWAP_DIR)\n"
	"  --ztier SIZE       lz4 RAM tier cap (UFPAGER_ZTIER_SIZE; 0: none)\n"
	"  --min SIZE         smallest block or mapping routed (UFPAGER_PRELOAD_MIN, 256K)\n"
	"  --no-exec-follow   programs PROGRAM execs run without the preload\n"
	"                     (UFPAGER_PRELOAD_EXEC=0)\n"
	"  --stats            print the summed counters of every process on stderr at the end\n"
	"  --stats-file FILE  each process appends its counters there at exit, one JSON\n"
	"                     line {\"pid\",\"exe\",\"stats\"} (UFPAGER_STATS_FILE)\n"
	"  --preload PATH     the preload library (default: next to ufpagerctl, else\n"
	"                     " UFP_PRELOAD_INSTALLED ")\n"
	"\n"
	"Other UFPAGER_* variables in the environment apply as they are (README \"Options\").\n"
	"While it runs: ufpagerctl stats PID. Exit status: PROGRAM's (128+N if killed by\n"
	"signal N); 2 for a usage error, 127 if PROGRAM cannot be run.\n";

const char *run_preload_path(void)
{
	static char path[PATH_MAX + 64];
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/%s", exe, PRELOAD_NAME);
			if (!access(path, R_OK))
				return path;
			/* installed layout: PREFIX/bin/ufpagerctl, PREFIX/lib/... */
			snprintf(path, sizeof(path), "%s/../lib/%s", exe, PRELOAD_NAME);
			if (!access(path, R_OK))
				return path;
		}
	}
	if (!access(UFP_PRELOAD_INSTALLED, R_OK))
		return UFP_PRELOAD_INSTALLED;
	fprintf(stderr, "ufpagerctl run: %s not found next to ufpagerctl nor at %s "
		"(build the target ufpager_preload, or pass --preload PATH)\n",
		PRELOAD_NAME, UFP_PRELOAD_INSTALLED);
	return NULL;
}

static uint64_t json_u64(const char *line, const char *key)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

int run_stats_sum(const char *path, struct run_counters *out)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (!strstr(line, "\"counters\":"))
			continue;
		out->processes++;
		out->faults += json_u64(line, "faults");
		out->swapins += json_u64(line, "swapins");
		out->swapouts += json_u64(line, "swapouts");
		out->lock_success += json_u64(line, "lock_success");
		out->lock_abort += json_u64(line, "lock_abort");
		out->lock_retry += json_u64(line, "lock_retry");
		out->lock_fallback += json_u64(line, "lock_fallback");
		out->maps += json_u64(line, "maps");
		out->unmaps += json_u64(line, "unmaps");
		out->events_fork += json_u64(line, "events_fork");
	}
	free(line);
	fclose(f);
	return 0;
}

/* The segments a process left when it ended without its destructors
 * (killed, _exit): the library's destructor removes them otherwise. */
static void remove_segments(pid_t pid)
{
	char pat[64];
	glob_t g;

	snprintf(pat, sizeof(pat), UFP_SNAPSHOT_PATTERN, (int)pid);
	if (glob(pat, 0, NULL, &g))
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		unlink(g.gl_pathv[i]);
	globfree(&g);
}

static pid_t child;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static int prepend_preload(const char *lib)
{
	const char *cur = getenv("LD_PRELOAD");
	char buf[8192];

	if (cur && *cur)
		snprintf(buf, sizeof(buf), "%s:%s", lib, cur);
	else
		snprintf(buf, sizeof(buf), "%s", lib);
	return setenv("LD_PRELOAD", buf, 1);
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "budget", required_argument, NULL, 'b' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "swap", required_argument, NULL, 'W' },
		{ "swap-size", required_argument, NULL, 's' },
		{ "swap-dir", required_argument, NULL, 'D' },
		{ "ztier", required_argument, NULL, 'z' },
		{ "min", required_argument, NULL, 'm' },
		{ "no-exec-follow", no_argument, NULL, 'n' },
		{ "stats", no_argument, NULL, 'S' },
		{ "stats-file", required_argument, NULL, 'F' },
		{ "preload", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *preload = NULL, *stats_file = NULL;
	char tmp_stats[64] = "";
	int c, print_stats = 0;

	optind = 0;
	opterr = 0;
	/* "+": stop at the program's name, its options are its own */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf("%s\n%s", run_use, run_help);
			return 0;
		case 'b': setenv("UFPAGER_BUDGET", optarg, 1); break;
		case 'd':
			if (strcmp(optarg, "handler") && strcmp(optarg, "sigbus")) {
				fprintf(stderr, "ufpagerctl run: --delivery: '%s' is not handler "
					"or sigbus\n%s", optarg, run_use);
				return 2;
			}
			setenv("UFPAGER_DELIVERY", optarg, 1);
			break;
		case 'W': setenv("UFPAGER_SWAP", optarg, 1); break;
		case 's': setenv("UFPAGER_SWAP_SIZE", optarg, 1); break;
		case 'D': setenv("UFPAGER_SWAP_DIR", optarg, 1); break;
		case 'z': setenv("UFPAGER_ZTIER_SIZE", optarg, 1); break;
		case 'm': {
			uint64_t v;
			char *end;

			v = strtoull(optarg, &end, 10);
			if (end == optarg || (*end && strcmp(end, "K") && strcmp(end, "M")) ||
			    (v << (*end == 'K' ? 10 : *end == 'M' ? 20 : 0)) < 4096) {
				fprintf(stderr, "ufpagerctl run: --min: '%s' is not a size of at "
					"least 4096 (digits, optional K or M)\n%s", optarg, run_use);
				return 2;
			}
			setenv("UFPAGER_PRELOAD_MIN", optarg, 1);
			break;
		}
		case 'n': setenv("UFPAGER_PRELOAD_EXEC", "0", 1); break;
		case 'S': print_stats = 1; break;
		case 'F': stats_file = optarg; break;
		case 'P': preload = optarg; break;
		default:
			cli_bad_option("run", argc, argv);
			fputs(run_use, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ufpagerctl run: no PROGRAM given\n%s", run_use);
		return 2;
	}
	/* handler delivery unless asked: README "ufpagerctl run" says why */
	setenv("UFPAGER_DELIVERY", getenv("UFPAGER_DELIVERY") ? getenv("UFPAGER_DELIVERY") :
	       "handler", 1);
	/* every UFPAGER_* value checked here, before the program starts */
	FILE *null = fopen("/dev/null", "w");
	int err = null ? ufp_config_print(NULL, null) : 0;
	if (null)
		fclose(null);
	if (err) {
		fprintf(stderr, "ufpagerctl run: %s\n", ufp_last_error());
		return 2;
	}
	/* the swap location must work before the program depends on it */
	const char *where = getenv("UFPAGER_SWAP");
	uint64_t swap_bytes;

	if (where && *where && (err = ufp_swap_probe(where, &swap_bytes))) {
		fprintf(stderr, "ufpagerctl run: --swap / UFPAGER_SWAP %s: %s\n%s\n", where,
			strerror(-err), ufp_last_error());
		return 2;
	}
	if (!preload && !(preload = run_preload_path()))
		return 2;
	if (access(preload, R_OK)) {
		fprintf(stderr, "ufpagerctl run: --preload %s: %s\n", preload, strerror(errno));
		return 2;
	}
	if (print_stats && !stats_file) {
		int fd;

		snprintf(tmp_stats, sizeof(tmp_stats), "/tmp/ufpagerctl-run.XXXXXX");
		fd = mkstemp(tmp_stats);
		if (fd < 0) {
			fprintf(stderr, "ufpagerctl run: mkstemp: %s\n", strerror(errno));
			return 1;
		}
		close(fd);
		stats_file = tmp_stats;
	}
	if (stats_file)
		setenv("UFPAGER_STATS_FILE", stats_file, 1);
	/* Every library bound at load, not lazily: the service threads call
	 * into liburing, lz4 and libc, and a lazy PLT resolution reads the
	 * dynamic linker's link maps, which live in the program's heap,
	 * pager memory here (a handler would fault on managed memory). */
	setenv("LD_BIND_NOW", "1", 1);
	if (prepend_preload(preload)) {
		fprintf(stderr, "ufpagerctl run: LD_PRELOAD: %s\n", strerror(errno));
		return 1;
	}
	fflush(NULL);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "ufpagerctl run: fork: %s\n", strerror(errno));
		return 1;
	}
	if (child == 0) {
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "ufpagerctl run: %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	/* the terminal's ^C reaches the child itself, as with system() */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTERM, forward);
	signal(SIGHUP, forward);
	int status, rc;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	remove_segments(child);
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (print_stats) {
		struct run_counters s;

		if (run_stats_sum(stats_file, &s) == 0)
			fprintf(stderr, "ufpagerctl run: %u process(es) with a pager: faults %llu, "
				"swap-ins %llu, swap-outs %llu, lock success %llu abort %llu "
				"retry %llu fallback %llu, maps %llu\n", s.processes,
				(unsigned long long)s.faults, (unsigned long long)s.swapins,
				(unsigned long long)s.swapouts, (unsigned long long)s.lock_success,
				(unsigned long long)s.lock_abort, (unsigned long long)s.lock_retry,
				(unsigned long long)s.lock_fallback, (unsigned long long)s.maps);
		if (tmp_stats[0])
			unlink(tmp_stats);
	}
	return rc;
}
