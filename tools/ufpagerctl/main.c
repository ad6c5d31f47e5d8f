/* SPDX-License-Identifier: MIT */
/*
 * ufpagerctl - the command-line tool: check what this machine supports,
 * print the effective configuration, run the benchmarks, read a live
 * process's statistics. A user of the library like any other: it links
 * libufpager.so and includes only <ufpager.h>.
 */
#include <errno.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ufpager.h>

#include "bench.h"
#include "cli.h"
#include "observe.h"
#include "run.h"

/* The newest userfaultfd bits by their UAPI values (older kernel headers
 * lack the names); ufp_probe_machine reports what the running kernel has. */
#define FEATURE_WP_UNPOPULATED (1ull << 13)
#define FEATURE_POISON (1ull << 14)
#define FEATURE_WP_ASYNC (1ull << 15)
#define FEATURE_MOVE (1ull << 16)
#define IOCTL_MOVE 0x05

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ufpagerctl <command> [options]\n"
		"\n"
		"commands:\n"
		"  check            what this machine supports (userfaultfd features, io_uring,\n"
		"                   swap, privileges) and what to do about what is missing\n"
		"  config           the effective options and where each came from\n"
		"  bench [SUITE...] run benchmarks; no SUITE runs them all\n"
		"                   (ufpagerctl bench --help lists the suites and options)\n"
		"  stats PID        statistics of a live process's pagers (--json for JSON)\n"
		"  top PID          a refreshing screen of a live pager: rates, latencies, regions\n"
		"  run [--budget SIZE] [--] PROGRAM ARGS...\n"
		"                   run an unmodified program with its heap on ufpager\n"
		"  version          the library's version (also: ufpagerctl --version)\n"
		"  help [COMMAND]   this text, or a command's own help\n"
		"\n"
		"Every command takes --help.\n");
}

static bool is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/*
 * The options of a command that takes none but --help, with getopt_long
 * like every command. Returns -1 to go on, else the exit status: 0 after
 * printing use and help on stdout (--help), 2 after saying what was wrong.
 */
static int no_args(const char *cmd, int argc, char **argv, const char *use, const char *help)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;    /* glibc: full re-initialisation */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("%s\n%s", use, help);
			return 0;
		}
		cli_bad_option(cmd, argc, argv);
		fputs(use, stderr);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "ufpagerctl %s: unexpected argument '%s'\n%s", cmd, argv[optind], use);
		return 2;
	}
	return -1;
}

static const struct {
	uint64_t bit;
	const char *name;
	const char *why;
} features[] = {
	{ UFFD_FEATURE_PAGEFAULT_FLAG_WP, "PAGEFAULT_FLAG_WP", "write-protect faults" },
	{ UFFD_FEATURE_EVENT_FORK, "EVENT_FORK", "(not used: fork policy instead)" },
	{ UFFD_FEATURE_EVENT_REMAP, "EVENT_REMAP", "foreign mremap keeps the tree right" },
	{ UFFD_FEATURE_EVENT_REMOVE, "EVENT_REMOVE", "foreign madvise(DONTNEED) keeps page state right" },
	{ UFFD_FEATURE_EVENT_UNMAP, "EVENT_UNMAP", "foreign munmap keeps the tree right" },
	{ UFFD_FEATURE_SIGBUS, "SIGBUS", "self-paging delivery (the default)" },
	{ UFFD_FEATURE_THREAD_ID, "THREAD_ID", "handler self-fault check" },
	{ FEATURE_WP_UNPOPULATED, "WP_UNPOPULATED", "dirty tracking of never-touched pages" },
	{ FEATURE_POISON, "POISON", "poison a page after an I/O or checksum error" },
	{ FEATURE_WP_ASYNC, "WP_ASYNC", "dirty tracking with PAGEMAP_SCAN" },
	{ FEATURE_MOVE, "MOVE", "realloc without copies; atomic eviction" },
};

/* `check --swap WHERE`: can a pager put its swap there, and how much. */
static int check_swap(const char *where)
{
	uint64_t size = 0;
	int err = ufp_swap_probe(where, &size);

	printf("swap %s:\n", where);
	if (err) {
		printf("  UNUSABLE: %s (%s)\n", ufp_last_error(), strerror(-err));
		return 1;
	}
	if (strstr(where, "://"))
		printf("  connected: NBD export of %llu bytes (%.1f GiB): the swap space it offers\n",
		       (unsigned long long)size, (double)size / (1 << 30));
	else
		printf("  usable: a private swap file can be made there; %llu bytes (%.1f GiB) "
		       "free\n", (unsigned long long)size, (double)size / (1 << 30));
	printf("  use it: UFPAGER_SWAP='%s' (or ufp_params.swap_dir)\n", where);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	struct ufp_probe pr = { .size = sizeof(pr), .version = UFP_PROBE_VERSION };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "swap", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static const char use[] = "usage: ufpagerctl check [--swap DIR|URI]\n";
	const char *swap = NULL;
	int problems = 0, c;

	optind = 0;    /* glibc: full re-initialisation */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hs:", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("%s\nProbe userfaultfd (features, ioctls, privileges), io_uring and "
			       "swap on this machine.\n  --swap DIR|URI  only check a swap location: "
			       "a directory for the swap\n                  file, or an NBD URI "
			       "(nbd://HOST[:PORT]/EXPORT,\n                  nbd+unix:///EXPORT?"
			       "socket=PATH): does it connect, how big\n                  is the "
			       "export\nExit status: 0 if ufpager can run here (the swap location "
			       "is usable), 1 if not.\n", use);
			return 0;
		}
		if (c == 's') {
			swap = optarg;
			continue;
		}
		cli_bad_option("check", argc, argv);
		fputs(use, stderr);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "ufpagerctl check: unexpected argument '%s'\n%s", argv[optind], use);
		return 2;
	}
	if (swap)
		return check_swap(swap);
	if (ufp_probe_machine(&pr)) {
		fprintf(stderr, "ufpagerctl check: %s\n", ufp_last_error());
		return 1;
	}
	printf("userfaultfd:\n");
	if (pr.uffd_errno && !pr.user_mode_only) {
		printf("  UNAVAILABLE: %s\n", strerror(pr.uffd_errno));
		printf("  %s\n", pr.uffd_errno == ENOSYS ?
		       "fix: a kernel built with CONFIG_USERFAULTFD=y" :
		       "fix: run as root, or allow the userfaultfd syscall in the seccomp profile "
		       "(containers block it by default)");
		problems++;
	} else if (pr.user_mode_only) {
		printf("  RESTRICTED: only UFFD_USER_MODE_ONLY is allowed "
		       "(vm.unprivileged_userfaultfd=%d, no CAP_SYS_PTRACE, no /dev/userfaultfd access)\n",
		       pr.unprivileged_uffd);
		printf("  consequence: a system call that reads or writes paged-out memory fails with "
		       "EFAULT\n  fix: run as root, grant access to /dev/userfaultfd, or "
		       "sysctl -w vm.unprivileged_userfaultfd=1\n");
		problems++;
	} else {
		printf("  available (%s), vm.unprivileged_userfaultfd=%d\n",
		       pr.uffd_via_dev ? "/dev/userfaultfd" : "userfaultfd(2)", pr.unprivileged_uffd);
	}
	printf("  features 0x%llx:\n", (unsigned long long)pr.uffd_features);
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		printf("    %-3s %-18s %s\n", pr.uffd_features & features[i].bit ? "yes" : "NO",
		       features[i].name, features[i].why);
	printf("  ioctls on anonymous memory: COPY %s, ZEROPAGE %s, WAKE %s, MOVE %s\n",
	       pr.uffd_ioctls & (1ull << _UFFDIO_COPY) ? "yes" : "no",
	       pr.uffd_ioctls & (1ull << _UFFDIO_ZEROPAGE) ? "yes" : "no",
	       pr.uffd_ioctls & (1ull << _UFFDIO_WAKE) ? "yes" : "no",
	       pr.uffd_ioctls & (1ull << IOCTL_MOVE) ? "yes" : "no");
	printf("fault delivery:\n"
	       "  sigbus (default): the faulting thread serves itself; no cross-thread wakeup and\n"
	       "    no mmap_lock on the retry. Limit: a system call that touches a never-touched\n"
	       "    page gets EFAULT instead of waiting (touch it first, or use delivery=handler).\n"
	       "    A thread that blocks SIGBUS and faults is killed by the kernel.\n"
	       "  handler: handler threads serve faults; system calls wait like normal faults.\n");
	printf("io_uring: %s", pr.io_uring_errno ? "UNAVAILABLE" : "available");
	if (pr.io_uring_errno)
		printf(" (%s; kernel.io_uring_disabled=%d): the swap file backend cannot run",
		       strerror(pr.io_uring_errno), pr.io_uring_disabled);
	printf("\n");
	printf("privileges: %s\n", geteuid() == 0 ? "root (kernel swap baselines can run)" :
	       "not root (kernel swap baselines in the benchmarks are skipped)");
	{
		FILE *f = fopen("/proc/swaps", "r");
		char line[256];
		int n = -1;

		while (f && fgets(line, sizeof(line), f))
			n++;
		if (f)
			fclose(f);
		printf("kernel swap: %d device(s) active; zram: %s\n", n < 0 ? 0 : n,
		       access("/sys/block/zram0", F_OK) == 0 ? "/sys/block/zram0 present" : "absent");
	}
	printf("verdict: %s\n", problems ? "ufpager cannot run here as is (see above)" :
	       "ufpager can run here");
	return problems ? 1 : 0;
}

static int cmd_config(int argc, char **argv)
{
	static const char use[] = "usage: ufpagerctl config\n";
	int rc;

	if ((rc = no_args("config", argc, argv, use, "Print each option's effective value in "
			  "this environment and its source\n(default, or environment: "
			  "UFPAGER_<NAME>). A non-zero value an application\npasses in struct "
			  "ufp_params wins over both for that pager; `ufpagerctl stats\nPID` shows "
			  "a live pager's lock mode, delivery and budget.\n")) >= 0)
		return rc;
	if (ufp_config_print(NULL, stdout)) {
		fprintf(stderr, "ufpagerctl config: %s\n", ufp_last_error());
		return 1;
	}
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	static const char use[] = "usage: ufpagerctl version   (or: ufpagerctl --version)\n";
	int rc;

	if ((rc = no_args("version", argc, argv, use, "Print the version of the ufpager "
			  "library this tool runs with\n(ufp_version()) and of the header it was "
			  "built against.\n")) >= 0)
		return rc;
	printf("ufpagerctl %d.%d.%d, libufpager %s\n", UFP_VERSION_MAJOR, UFP_VERSION_MINOR,
	       UFP_VERSION_PATCH, ufp_version());
	return 0;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "check", cmd_check }, { "config", cmd_config }, { "bench", cmd_bench },
	{ "stats", cmd_stats }, { "top", cmd_top }, { "version", cmd_version },
	{ "run", cmd_run },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return cmd_version(1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || is_help(argv[1])) {
		if (argc > 2 && !is_help(argv[2])) {   /* help CMD: CMD --help */
			char *sub[] = { argv[2], "--help", NULL };

			for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
				if (!strcmp(argv[2], commands[i].name))
					return commands[i].run(2, sub);
			fprintf(stderr, "ufpagerctl: no command '%s'\n", argv[2]);
			usage(stderr);
			return 2;
		}
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "ufpagerctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
