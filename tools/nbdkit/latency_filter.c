/* SPDX-License-Identifier: MIT */
/*
 * latency_filter.c - an nbdkit filter that delays every read, write,
 * trim and zero by latency-us microseconds (nbdkit's own delay filter
 * counts in whole milliseconds). `ufpagerctl bench swap --backend nbd`
 * starts nbdkit with it to time swap over NBD at 50 us and 500 us per
 * request; by hand:
 *   nbdkit -U /tmp/s.sock --filter=.../ufp-latency-filter.so memory 1G latency-us=500
 * Each request sleeps on its own nbdkit worker thread, so requests in
 * flight together overlap their delays, as on a network.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <nbdkit-filter.h>

static unsigned latency_us;

static int lat_config(nbdkit_next_config *next, nbdkit_backend *nxdata, const char *key,
		      const char *value)
{
	if (strcmp(key, "latency-us") == 0) {
		char *end;
		unsigned long v = strtoul(value, &end, 10);

		if (!*value || *end || v > 10000000) {
			nbdkit_error("latency-us: '%s' is not a number of microseconds (<= 10 s)",
				     value);
			return -1;
		}
		latency_us = (unsigned)v;
		return 0;
	}
	return next(nxdata, key, value);
}

static void lat_sleep(void)
{
	struct timespec ts = { latency_us / 1000000, (long)(latency_us % 1000000) * 1000 };

	while (latency_us && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int lat_pread(nbdkit_next *next, void *handle, void *buf, uint32_t count,
		     uint64_t offset, uint32_t flags, int *err)
{
	(void)handle;
	lat_sleep();
	return next->pread(next, buf, count, offset, flags, err);
}

static int lat_pwrite(nbdkit_next *next, void *handle, const void *buf, uint32_t count,
		      uint64_t offset, uint32_t flags, int *err)
{
	(void)handle;
	lat_sleep();
	return next->pwrite(next, buf, count, offset, flags, err);
}

static int lat_trim(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
		    uint32_t flags, int *err)
{
	(void)handle;
	lat_sleep();
	return next->trim(next, count, offset, flags, err);
}

static int lat_zero(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
		    uint32_t flags, int *err)
{
	(void)handle;
	lat_sleep();
	return next->zero(next, count, offset, flags, err);
}

static struct nbdkit_filter filter = {
	.name = "ufplatency",
	.longname = "ufpager latency filter (microseconds per request)",
	.config = lat_config,
	.config_help = "latency-us=N  delay every read, write, trim and zero by N microseconds",
	.pread = lat_pread,
	.pwrite = lat_pwrite,
	.trim = lat_trim,
	.zero = lat_zero,
};

/* the entry point the macro below defines (clang's -Wmissing-prototypes) */
struct nbdkit_filter *filter_init(void);
NBDKIT_REGISTER_FILTER(filter)
