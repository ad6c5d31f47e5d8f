/* SPDX-License-Identifier: MIT */
/*
 * fuzz_export.c - libFuzzer target for the statistics-segment reader
 * (src/export.c, ufp_export_read_fd): the input bytes are the segment,
 * written into a memfd. The reader must never crash, hang or read out of
 * bounds (ASan, and the mapping is exactly the input's size); it returns
 * 0 or one of its documented errors, always with a reason; and what it
 * accepts must be a byte-exact copy of a segment whose magic, version,
 * sizes and row count are this tool's. Accepted segments then go through
 * the text and JSON printers that `ufpagerctl stats` uses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ufp_internal.h"
#include "ufp_export.h"

static int memfd = -1;
static FILE *sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ufp_export out;
	char why[256];
	int r;

	if (memfd < 0) {
		memfd = memfd_create("fuzz_export", MFD_CLOEXEC);
		sink = fopen("/dev/null", "w");
		if (memfd < 0 || !sink) {
			perror("fuzz_export: memfd_create or /dev/null");
			exit(1);
		}
	}
	if (ftruncate(memfd, 0) || pwrite(memfd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_export: writing the memfd");
		exit(1);
	}
	memset(&out, 0xa5, sizeof(out));
	memset(why, 0x5a, sizeof(why));
	why[sizeof(why) - 1] = 0;
	why[0] = 0;
	r = ufp_export_read_fd(memfd, "segment", &out, why, sizeof(why));
	if (r != 0 && r != -EBADMSG && r != -EPROTO && r != -EAGAIN) {
		fprintf(stderr, "fuzz_export: unexpected error %d (%s)\n", r, why);
		abort();
	}
	if (r) {
		if (!why[0] || !memchr(why, 0, sizeof(why))) {
			fprintf(stderr, "fuzz_export: rejected (%d) without a reason\n", r);
			abort();
		}
		return 0;
	}
	if (size != sizeof(out) || memcmp(&out, data, size) ||
	    out.magic != UFP_EXPORT_MAGIC || out.version != UFP_EXPORT_VERSION ||
	    out.header_size != offsetof(struct ufp_export, stats) ||
	    out.stats_size != sizeof(struct ufp_stats) ||
	    out.row_size != sizeof(struct ufp_export_region) || out.max_rows != UFP_EXPORT_ROWS ||
	    out.total_size != sizeof(out) || out.nrows > UFP_EXPORT_ROWS || (out.seq & 1)) {
		fprintf(stderr, "fuzz_export: accepted a segment it should have refused "
			"(%zu bytes, nrows %llu)\n", size, (unsigned long long)out.nrows);
		abort();
	}
	ufp_stats_print_text(sink, &out.stats);
	ufp_stats_print_json(sink, &out.stats);
	return 0;
}
