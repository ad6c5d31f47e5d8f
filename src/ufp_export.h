/* SPDX-License-Identifier: MIT */
/*
 * ufp_export.h - the layout of the live statistics segment
 * (/dev/shm/ufpager.<pid>.<id>) shared by the library (export.c) and its
 * readers (ufpagerctl stats / top). Versioned and size-checked: a reader
 * rejects any segment whose magic, version or sizes differ from its own.
 * Every field is 8 bytes so the whole segment copies as 64-bit words.
 */
#ifndef UFP_EXPORT_H
#define UFP_EXPORT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "ufpager.h"

#define UFP_EXPORT_MAGIC 0x3154415453504655ull   /* "UFPSTAT1" */
#define UFP_EXPORT_VERSION 3
#define UFP_EXPORT_ROWS 32

struct ufp_export_region {
	uint64_t start, end, prot, flags;
	uint64_t faults;
	uint64_t lock[4];          /* success, abort, retry, miss */
};

struct ufp_export {
	uint64_t magic;
	uint32_t version, header_size;
	uint32_t stats_size, row_size;
	uint32_t max_rows, total_size;
	uint64_t pid, pager_id;
	uint64_t lock_mode, delivery, budget;
	_Atomic uint64_t seq;        /* odd while the exporter writes */
	_Atomic uint64_t update_ns;  /* CLOCK_MONOTONIC of the last update */
	_Atomic uint64_t nrows;
	struct ufp_stats stats;
	struct ufp_export_region rows[UFP_EXPORT_ROWS];
};

_Static_assert(sizeof(struct ufp_stats) % 8 == 0, "stats copy as words");
_Static_assert(sizeof(struct ufp_export) % 8 == 0, "segment copies as words");

/* Validate the segment at path and copy a consistent snapshot into *out.
 * Opens without blocking (a FIFO at the path is refused, not waited on)
 * and never follows a symbolic link. Returns 0, or -errno with a sentence
 * in why (not a regular file, malformed, foreign, not yours, truncated,
 * wrong size). Normal context; may sleep briefly while a writer updates. */
int ufp_export_read(const char *path, struct ufp_export *out, char *why, size_t whylen);

/* The same on an open descriptor (path only names it in why): the file
 * must be a regular file owned by the caller (or the caller is root) of
 * exactly sizeof(struct ufp_export) bytes. The descriptor stays open. */
int ufp_export_read_fd(int fd, const char *path, struct ufp_export *out, char *why,
		       size_t whylen);

#endif
