/* SPDX-License-Identifier: MIT */
/* run.h - ufpagerctl run: an unmodified program under the preload. */
#ifndef UFPAGERCTL_RUN_H
#define UFPAGERCTL_RUN_H

#include <stdint.h>

int cmd_run(int argc, char **argv);

/* The preload library next to this executable, else the installed one;
 * NULL (after saying where it looked) when neither exists. */
const char *run_preload_path(void);

/* Counters summed over the JSON lines the preload appended to a stats
 * file (UFPAGER_STATS_FILE), one line per process that had a pager. */
struct run_counters {
	unsigned processes;
	uint64_t faults, swapins, swapouts, lock_success, lock_abort, lock_retry,
		 lock_fallback, maps, unmaps, events_fork;
};
/* 0, or -1 when the file cannot be read (nothing summed). */
int run_stats_sum(const char *path, struct run_counters *out);

#endif
