/* SPDX-License-Identifier: MIT */
/*
 * error.c - the one error channel: a detail per thread, read with
 * ufp_last_error(), kept in the thread's block (thread.c). Every failed
 * call leaves one (api_end's fallback names the call and its arguments).
 */
#include <stdarg.h>
#include <stdio.h>

#include "base.h"
#include "thread.h"
#include "ufpager.h"

/* ======================================================================
 * Error detail (ufp_last_error): the one error channel. The detail lives
 * in the calling thread's block (thread.c).
 * ====================================================================== */

/* For threads whose block could not be allocated: the error stays readable. */
static const char oom_error[] = "ufpager: out of memory for per-thread state";

static void error_vset(const char *fmt, va_list ap)
{
	size_t size;
	char *b = thread_error_buf(true, &size);

	if (b)
		vsnprintf(b, size, fmt, ap);
}

void ufp_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(fmt, ap);
	va_end(ap);
}

int ufp_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(fmt, ap);
	va_end(ap);
	return err;
}

void ufp_clear_error(void)
{
	size_t size;
	char *b = thread_error_buf(false, &size);

	thread_clear_oom();
	if (b)
		b[0] = '\0';
}

/* With no detail recorded yet, record "<fmt...>: <strerror(-err)>". */
void ufp_error_fallback(int err, const char *fmt, va_list ap)
{
	size_t size;
	char *b = thread_error_buf(false, &size);
	int n;

	if (!b || b[0])
		return;
	n = vsnprintf(b, size, fmt, ap);
	if (n >= 0 && (size_t)n < size)
		snprintf(b + n, size - (size_t)n, ": %s", strerror(-err));
}

UFP_API const char *ufp_last_error(void)
{
	size_t size;
	char *b = thread_error_buf(false, &size);

	if (thread_oom())
		return oom_error;
	return b ? b : "";
}
