/* SPDX-License-Identifier: MIT */
/*
 * log.c - what the library says outside ufp_last_error(): warnings on
 * stderr only when UFPAGER_VERBOSE=1 (a library prints nothing by default,
 * like mimalloc's MIMALLOC_VERBOSE), and the messages of internal
 * corruption (BUG, assertion) just before it aborts, which always print.
 * The bottom layer: calls nothing of the library.
 */
#include <stdarg.h>
#include <unistd.h>

#include <stdatomic.h>
#include <stdio.h>

#include "base.h"

/* -1 unknown, 0 quiet, 1 verbose; read once (relaxed: idempotent). */
static _Atomic int verbose_state = -1;

bool ufp_verbose(void)
{
	int v = atomic_load_explicit(&verbose_state, memory_order_relaxed);

	if (v < 0) {
		const char *s = getenv("UFPAGER_VERBOSE");

		v = s && s[0] == '1' && !s[1];
		atomic_store_explicit(&verbose_state, v, memory_order_relaxed);
	}
	return v == 1;
}

void ufp_log(const char *fmt, ...)
{
	va_list ap;

	if (!ufp_verbose())
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

_Noreturn void ufp_bug(const char *expr, const char *file, int line)
{
	fprintf(stderr, "ufpager: BUG: %s at %s:%d\n", expr, file, line);
	abort();
}

#ifdef UFP_DEBUG
void ufp_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "ufpager: assertion failed: %s at %s:%d\n", expr, file, line);
	abort();
}
#endif

