/* SPDX-License-Identifier: MIT */
/*
 * base.h - the bottom layer every library file may include: page and
 * cache-line constants, branch hints, assertions and BUG_ON, the clock,
 * the library's object allocator (slab.c), the error channel (ufp_set_error /
 * ufp_error, defined in thread.c: a detail per thread for ufp_last_error)
 * and the log switch (error.c: silent unless UFPAGER_VERBOSE).
 */
#ifndef UFP_BASE_H
#define UFP_BASE_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UFP_PAGE_SHIFT 12
#define UFP_PAGE_SIZE (1UL << UFP_PAGE_SHIFT)
#define UFP_PAGE_MASK (~(UFP_PAGE_SIZE - 1))
#define UFP_CACHELINE 64
#define ufp_cacheline_aligned __attribute__((aligned(UFP_CACHELINE)))

#define ufp_likely(x) __builtin_expect(!!(x), 1)
#define ufp_unlikely(x) __builtin_expect(!!(x), 0)

#ifdef UFP_DEBUG
void ufp_assert_fail(const char *expr, const char *file, int line);
#define UFP_ASSERT(e) ((e) ? (void)0 : ufp_assert_fail(#e, __FILE__, __LINE__))
#else
#define UFP_ASSERT(e) ((void)0)
#endif
/* Internal corruption that must abort even in release builds. */
#define UFP_BUG_ON(e) do { if (ufp_unlikely(e)) ufp_bug(#e, __FILE__, __LINE__); } while (0)
_Noreturn void ufp_bug(const char *expr, const char *file, int line);

/* The library's own memory (slab.c): never the process's malloc, which a
 * ufpager heap may serve (its extent hooks call into the library while
 * jemalloc holds a lock). Normal context; NULL when out of memory;
 * slab_free takes any of them (NULL ignored). slab_zalloc and slab_calloc
 * zero; slab_realloc keeps the contents; alignments are powers of two. */
void *slab_alloc(size_t size);
void *slab_zalloc(size_t size);
void *slab_calloc(size_t n, size_t size);
void *slab_realloc(void *p, size_t size);
void *slab_aligned_alloc(size_t align, size_t size);
void slab_free(void *p);
size_t slab_usable_size(const void *p);

/* The library's own objects (pagers, regions, counter blocks): zeroed, on
 * their own cache lines. NULL when out of memory; slab_free() them. */
static inline void *ufp_cacheline_zalloc(size_t size)
{
	size_t n = (size + UFP_CACHELINE - 1) & ~(size_t)(UFP_CACHELINE - 1);
	void *m = slab_aligned_alloc(UFP_CACHELINE, n);

	if (m)
		memset(m, 0, n);
	return m;
}

static inline uint64_t ufp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Print a warning on stderr when UFPAGER_VERBOSE=1 (error.c); the library
 * is silent otherwise. Normal context. */
void ufp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool ufp_verbose(void);

/* Record the calling thread's error detail for ufp_last_error() (thread.c):
 * the one error channel. ufp_error returns err, for `return ufp_error(...)`. */
void ufp_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ufp_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ufp_clear_error(void);
/* api_end: with no detail yet, "<fmt...>: <strerror(-err)>" (error.c). */
void ufp_error_fallback(int err, const char *fmt, va_list ap);

#endif /* UFP_BASE_H */
