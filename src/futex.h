/* SPDX-License-Identifier: MIT */
/*
 * futex.h - the library's one futex(2) wrapper (private futexes on 32-bit
 * atomic words). Async-signal-safe: a system call and nothing else.
 */
#ifndef UFP_FUTEX_H
#define UFP_FUTEX_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleep while *w == v, at most *timeout (NULL: no limit). Returns 0 or -1
 * with errno (EAGAIN: *w changed; ETIMEDOUT; EINTR). The caller loaded v
 * with an ordering that pairs with the waker's store. */
static inline long futex_wait(_Atomic uint32_t *w, uint32_t v, const struct timespec *timeout)
{
	return syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, v, timeout, NULL, 0);
}

/* Wake up to n sleepers on w (INT32_MAX: all). The caller changed *w first. */
static inline long futex_wake(_Atomic uint32_t *w, int n)
{
	return syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* The waker's half of the sequence-word protocol: bump *w (release: pairs
 * with the acquire load of *w that the waiter made before futex_wait, so
 * what the waker wrote before is visible), then wake up to n sleepers. */
static inline void futex_bump_wake(_Atomic uint32_t *w, int n)
{
	atomic_fetch_add_explicit(w, 1, memory_order_release);
	futex_wake(w, n);
}

/* Sleep for ms milliseconds while *w == v. */
static inline long futex_wait_ms(_Atomic uint32_t *w, uint32_t v, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	return futex_wait(w, v, &ts);
}

#endif /* UFP_FUTEX_H */
