/* SPDX-License-Identifier: MIT */
/*
 * inject.h - fault injection at the one I/O wrapper (swap_backend.c) and
 * the uffd ioctl wrappers (uffd.c), configured by UFPAGER_INJECT or
 * by the internal test API below. Process-wide, like the kernel's
 * fail_make_request: one configuration, one set of counters.
 *
 * Hot path cost when off: one relaxed load of inject_armed
 * (inject_on()). Everything here is async-signal-safe (atomics and
 * nanosleep only) except inject_configure and inject_print.
 *
 * Base layer: calls nothing else of the library.
 */
#ifndef UFP_INJECT_H
#define UFP_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* What can be injected. Order matches the inject_* stat counters. */
enum inj_kind {
	INJ_EIO,       /* an I/O completion fails with -EIO */
	INJ_SHORT,     /* an I/O completion is short (half a page) */
	INJ_ENOSPC,    /* a swap slot cannot be had: swap full */
	INJ_EAGAIN,    /* UFFDIO_COPY/ZEROPAGE/MOVE: -EAGAIN (event pending) */
	INJ_DELAY,     /* an I/O completion arrives delay_us late */
	INJ_CSUM,      /* a read page is corrupted: checksum mismatch */
	INJ_KILL,      /* a service thread dies (leaves its loop) */
	INJ_NR
};

/* Where an I/O injection applies (the @read / @write suffix). */
#define INJ_READ  1u
#define INJ_WRITE 2u

/* Service threads that kill= can name. */
enum inj_thread {
	INJ_T_NONE = 0,
	INJ_T_RECLAIM,   /* the reclaim thread */
	INJ_T_HANDLER,   /* one fault handler thread (handler delivery) */
	INJ_T_EVENTS,    /* the event worker (applies foreign events) */
};

extern _Atomic bool inject_armed;

/* Is any injection configured? One relaxed load: pairs with nothing, the
 * configuration it guards is published with release in inject_configure
 * and read with acquire in inject_hit. */
static inline bool inject_on(void)
{
	return atomic_load_explicit(&inject_armed, memory_order_relaxed);
}

/*
 * Parse and apply a specification (NULL or "" disarms):
 *   eio=R[@read|@write]  short=R[@read|@write]  csum=R  enospc=R
 *   eagain=R  delay_us=US:R  seed=N  kill=reclaim|handler|events[:N]
 * R is a probability (0..1); kill:N dies at the N-th pass (default 1).
 * Resets the counters' decision sequence (not the counters). Returns 0 or
 * -EINVAL (nothing changed; *bad points at the bad item if bad != NULL).
 * Normal context; call while no injection point is running, or accept
 * that a concurrent decision sees the old or the new rates.
 */
int inject_configure(const char *spec, const char **bad);
/* Disarm every injection (the counters stay). */
void inject_disarm(void);

/* Decide whether to inject kind k now (deterministic per kind: the n-th
 * decision of a kind depends only on the seed and n). Counts a hit. */
bool inject_hit(enum inj_kind k);

/*
 * The I/O completion hook: res is the completion's result for a
 * page-sized read (dir INJ_READ) or write (INJ_WRITE). May sleep
 * delay_us (delay), may return -EIO (eio) or half a page (short).
 * Call only when inject_on().
 */
int inject_io_res(int res, unsigned dir);

/* Should the calling service thread of kind t die now? True at most once
 * per configuration, for the kind named by kill=. */
bool inject_kill(enum inj_thread t);

/* Faults injected so far, per kind (process-wide). */
uint64_t inject_count(enum inj_kind k);

/* Apply UFPAGER_INJECT (the option's value; NULL: leave as is). A bad
 * value fails pager creation: -EINVAL with the item in ufp_last_error(). */
int inject_from_options(const char *spec);

struct ufp_stats;
/* Copy the injection counters into a stats snapshot. */
void inject_stats(struct ufp_stats *out);

/* One line: the configuration in effect ("off" when disarmed). */
void inject_print(FILE *f);

#endif /* UFP_INJECT_H */
