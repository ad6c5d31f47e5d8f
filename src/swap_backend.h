/* SPDX-License-Identifier: MIT */
/*
 * swap_backend.h - the swap store: 4 KiB pages in, pages back out.
 *
 * Three places a page can live, chosen at store time:
 *  - same-filled: every 8-byte word equal (zero pages among them): the
 *    word is kept in the handle, no I/O, no memory;
 *  - the compressed RAM tier (lz4), when the page compresses to at most
 *    3/4 of a page and the tier is under its cap;
 *  - a slot of the swap file: O_TMPFILE (mode 0600, never visible, nothing
 *    left behind), O_DIRECT, written and read with io_uring from
 *    registered buffers and a registered file.
 * Every stored page carries an xxh3 checksum, verified on load.
 *
 * Handle layout (64 bits, never 0):
 *   bits 63..62  tier: 1 same-filled, 2 compressed tier, 3 file
 *   same-filled: bits 31..0 index into a table of fill words (the
 *                table dedups: at most SWB_SAME_MAX distinct words)
 *   tier / file: bits 39..0 entry or slot number
 *
 * Concurrency: one swb per pager; one swb_ctx per thread that does I/O
 * (its own ring, registered file and bounce buffers; never shared). Loads
 * and releases are async-signal-safe and lock-free; stores run in normal
 * context.
 */
#ifndef UFP_SWAP_BACKEND_H
#define UFP_SWAP_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

struct swb_params {
	const char *dir;        /* directory of the swap file; NULL: /var/tmp */
	uint64_t file_size;     /* bytes; 0: 1 GiB; rounded up to clusters */
	uint64_t ztier_size;    /* compressed tier cap, bytes; 0: no tier */
	unsigned queue_depth;   /* ring entries per context; 0: 64 */
	unsigned ctx_bufs;      /* bounce pages per context; 0: 32 */
};

struct swb;
struct swb_ctx;

#define SWB_TIER_SHIFT 62
#define SWB_TIER_SAME 1ull
#define SWB_TIER_Z 2ull
#define SWB_TIER_FILE 3ull

static inline bool swb_handle_is_same(uint64_t h)
{
	return (h >> SWB_TIER_SHIFT) == SWB_TIER_SAME;
}
static inline bool swb_handle_is_ztier(uint64_t h)
{
	return (h >> SWB_TIER_SHIFT) == SWB_TIER_Z;
}
static inline bool swb_handle_is_file(uint64_t h)
{
	return (h >> SWB_TIER_SHIFT) == SWB_TIER_FILE;
}

/* Normal context. Returns 0 or -errno (swb_error_detail() says why). */
int swb_create(const struct swb_params *p, struct swb **out);
void swb_destroy(struct swb *s);           /* contexts destroyed first */
int swb_ctx_create(struct swb *s, struct swb_ctx **out);
void swb_ctx_destroy(struct swb_ctx *c);
const char *swb_error_detail(void);

/* Bounce page i (< swb_ctx_nbufs) of a context: page aligned, registered
 * with the ring, contiguous with page i+1, outside any managed range. */
void *swb_ctx_buf(struct swb_ctx *c, unsigned i);
unsigned swb_ctx_nbufs(struct swb_ctx *c);

/*
 * Store n pages (n <= swb_ctx_nbufs). Each handles[i] is set for pages
 * stored. Returns the number stored: pages [0, ret) are stored, the rest
 * are not (ret < n only when the file and the tier are full; the caller
 * keeps those pages). -EIO on a write error (nothing stored). Normal
 * context.
 */
int swb_store(struct swb_ctx *c, const void *const pages[], unsigned n, uint64_t handles[]);

/*
 * Load n pages into dst[i] (page aligned; swb_ctx_buf(c, i) avoids a copy
 * for file slots). Returns 0, or -EIO / -EBADMSG with bit i of *failed set
 * for each page that could not be read or failed its checksum (the others
 * are good). Async-signal-safe.
 */
int swb_load(struct swb_ctx *c, const uint64_t handles[], unsigned n, void *const dst[],
	     uint64_t *failed);

/* Release a stored copy. Async-signal-safe and lock-free; freeing and
 * hole punching are deferred to swb_maintain. */
void swb_release(struct swb *s, uint64_t handle);
/* Normal context: punch holes for free clusters, free tier memory. */
int swb_maintain(struct swb *s);

struct swb_usage {
	uint64_t file_slots_total, file_slots_used;
	uint64_t ztier_bytes_used, ztier_bytes_cap, ztier_raw_bytes, ztier_entries;
	uint64_t same_filled, punched_clusters;
	uint64_t stores_file, stores_ztier, stores_same;
	uint64_t loads_file, loads_ztier, loads_same;
	uint64_t bytes_read, bytes_written, io_errors, csum_errors;
};
void swb_usage(struct swb *s, struct swb_usage *u);

/* Test hooks: the next load of handle fails with EIO, or its stored bytes
 * are corrupted so the checksum catches it. */
#define SWB_INJECT_EIO 1
#define SWB_INJECT_CORRUPT 2
int swb_inject(struct swb *s, uint64_t handle, int what);
int swb_fd(struct swb *s);

#endif /* UFP_SWAP_BACKEND_H */
