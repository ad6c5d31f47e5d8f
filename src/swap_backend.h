/* SPDX-License-Identifier: MIT */
/*
 * swap_backend.h - the swap store: 4 KiB pages in, handles out, pages back.
 *
 * Owns the swap file, its slot allocator, the compressed RAM tier and the
 * per-page checksums. Knows nothing of userfaultfd, regions or page tables.
 *
 * Where a page lives, chosen at store time, first match wins:
 *  - same-filled: every 8-byte word of the page is equal (zero pages among
 *    them). The word is in the handle or in a small table: no I/O, no
 *    memory per page;
 *  - the compressed tier (lz4), when the page compresses to at most 3/4 of
 *    a page and the tier is under its cap (ztier_size, counted in slab
 *    memory actually held);
 *  - a slot of the swap file: an O_TMPFILE in params.dir (mode 0600, never
 *    linked, so no other process can open it and nothing is left behind),
 *    written and read with io_uring (registered file, registered bounce
 *    pages, READ_FIXED / WRITE_FIXED, one submit per batch).
 * Every stored page carries an xxh3 checksum, verified on every load.
 *
 * Handle layout (64 bits; 0 is never a handle):
 *   63..62  tier: 1 same-filled, 2 compressed tier, 3 file (0: invalid)
 *   same-filled, bit 61 = 0: bits 60..0 are the fill word, sign-extended
 *           from bit 60 (every word whose bits 63..60 are equal: 0, ~0,
 *           small integers, bytes 0x00-0x0f / 0xf0-0xff repeated)
 *   same-filled, bit 61 = 1: bits 11..0 index an insert-only table of fill
 *           words (SWB_SAME_TABLE distinct words per swb; when it is full,
 *           such pages go to the tier or the file like any other)
 *   compressed tier: bits 31..0 entry number
 *   file:   bits 39..0 slot number (file offset = slot * 4096)
 *
 * The swap file: O_DIRECT when the filesystem allows it. Where it does not
 * (open refuses O_DIRECT, or a probe write with it fails), the backend
 * falls back to buffered I/O on the same file and says so in
 * swb_usage.file_direct = 0 (tmpfs: the "swap" then lives in RAM; the
 * caller should warn). A directory whose filesystem refuses O_TMPFILE
 * fails swb_create with -EOPNOTSUPP. Blocks are reserved per cluster of
 * 64 slots (fallocate) when a context takes the cluster, and punched out
 * (FALLOC_FL_PUNCH_HOLE) when the cluster empties, so disk use follows the
 * working set and a full disk shows as -ENOSPC from swb_store, never as a
 * write error.
 *
 * Concurrency: one swb per pager; one swb_ctx per thread that does I/O
 * (its own ring, registered file and bounce pages). A context is used by
 * one thread at a time (it may be handed over with release/acquire); a
 * signal handler that interrupts a thread inside swb_store/swb_load on the
 * same context gets -EBUSY rather than corrupting the ring. swb_load and
 * swb_release are async-signal-safe; swb_release is lock-free and may be
 * called from any thread. Everything else runs in normal context.
 */
#ifndef UFP_SWAP_BACKEND_H
#define UFP_SWAP_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

struct swb_params {
	const char *dir;        /* directory of the swap file; NULL: /var/tmp; or an
				 * NBD URI (swap_nbd.c), whose export's size is the
				 * slot space (file_size is then unused) */
	uint64_t file_size;     /* bytes; 0: 1 GiB; rounded up to 256 KiB clusters */
	uint64_t ztier_size;    /* compressed tier cap, bytes; 0: no tier */
	unsigned queue_depth;   /* ring entries per context; 0: 64; raised to ctx_bufs */
	unsigned ctx_bufs;      /* bounce pages per context; 0: 32; at most SWB_MAX_BUFS */
};

struct swb;
struct swb_ctx;

#define SWB_PAGE_SIZE 4096u
#define SWB_MAX_BATCH 64u       /* most pages per swb_load (bits of *failed) */
#define SWB_MAX_BUFS 1024u
#define SWB_SAME_TABLE 4096u

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

/*
 * Create the store: open and size the swap file, set up the tier. Normal
 * context. Returns 0 or -errno: -EOPNOTSUPP (no O_TMPFILE on dir's
 * filesystem), -ENOSPC (no room for the first cluster), -EINVAL (bad
 * params), -ENOMEM, or the open/ftruncate errno. ufp_last_error() says
 * why in a sentence.
 */
int swb_create(const struct swb_params *p, struct swb **out);
/* Normal context; every context must have been destroyed first. */
void swb_destroy(struct swb *s);

/*
 * Create a context for the calling thread: io_uring ring, registered swap
 * file, ctx_bufs registered bounce pages. Normal context (allocates).
 * Returns 0, -EPERM / -ENOSYS when io_uring is disabled
 * (kernel.io_uring_disabled, seccomp) or absent, -ENOMEM; the reason is in
 * ufp_last_error().
 */
int swb_ctx_create(struct swb *s, struct swb_ctx **out);
void swb_ctx_destroy(struct swb_ctx *c);

/* Bounce page i (< swb_ctx_nbufs) of a context: page aligned, registered
 * with the ring, contiguous with page i+1, outside any managed range. */
void *swb_ctx_buf(struct swb_ctx *c, unsigned i);
unsigned swb_ctx_nbufs(struct swb_ctx *c);

/*
 * Store n pages (n <= swb_ctx_nbufs). pages[i] may point anywhere
 * readable (the bounce pages included) and is not modified. Normal
 * context (may allocate); writes to the file are one io_uring submit.
 *
 * Returns n when every page is stored. When the file and the tier are
 * full, the result is a prefix: returns k (0 < k < n) with pages [0, k)
 * stored and handles [k, n) set to 0 (not stored, nothing to release), or
 * -ENOSPC when not even page 0 fits. -EIO: a write failed; nothing of the
 * batch is stored (every handle 0). -EINVAL: n too large. -EBUSY: the
 * context is in use (re-entered from a signal handler).
 */
int swb_store(struct swb_ctx *c, const void *const pages[], unsigned n, uint64_t handles[]);

/*
 * Load n pages (n <= swb_ctx_nbufs and n <= SWB_MAX_BATCH) into dst[i],
 * each a page-aligned page; dst[i] = swb_ctx_buf(c, j) for any j saves a
 * copy for file slots (bounce pages that are not a destination are used
 * for the others). All file reads go in one submit. Every page's checksum
 * is verified. The handles stay valid (release them separately).
 *
 * Returns 0 when every page is good. Otherwise bit i of *failed is set for
 * exactly the pages that could not be read (their dst content is
 * undefined: poison them) and the return says the worst cause: -EIO (an
 * I/O error or a short read), else -EBADMSG (checksum mismatch), else
 * -EINVAL (an invalid handle, or a tier entry already released; a
 * released file slot is not detected). The other pages are good.
 * -EINVAL with *failed = 0: bad n; -EBUSY with *failed = 0: the context is
 * in use by the code this signal handler interrupted (nothing was read).
 *
 * Async-signal-safe: no allocation, no locks, no stdio; only atomics,
 * io_uring_enter and lz4 decompression.
 */
int swb_load(struct swb_ctx *c, const uint64_t handles[], unsigned n, void *const dst[],
	     uint64_t *failed);
/*
 * XXH3_64bits of the content stored under handle h, as swb_load verified
 * it: kept from the store for file and tier copies (no second hash on the
 * install path); a same-filled copy's is computed from page, the loaded
 * content. The caller owns h (not released meanwhile). Async-signal-safe.
 */
uint64_t swb_csum(struct swb *s, uint64_t h, const void *page);

/*
 * Release a stored copy; handle 0 is ignored, a second release of the same
 * handle is ignored. Async-signal-safe and lock-free, any thread: the
 * slot bit or entry state changes with one atomic; freeing tier memory and
 * punching emptied clusters wait for the next swb_store or swb_maintain.
 */
void swb_release(struct swb *s, uint64_t handle);

/* Normal context: punch holes for emptied clusters and return them to the
 * free pool, free released tier memory. Returns 0 or the first punch
 * error (-errno). */
int swb_maintain(struct swb *s);

struct swb_usage {
	uint64_t file_slots_total, file_slots_used;
	uint64_t ztier_bytes_used;  /* slab memory held (counts against the cap) */
	uint64_t ztier_bytes_cap, ztier_raw_bytes, ztier_entries;
	uint64_t same_filled;       /* live same-filled handles */
	uint64_t punched_clusters;  /* hole punches done since creation */
	uint64_t stores_file, stores_ztier, stores_same;
	uint64_t loads_file, loads_ztier, loads_same;
	uint64_t bytes_read, bytes_written, io_errors, csum_errors;
	uint64_t file_direct;       /* 1: O_DIRECT; 0: buffered fallback */
	/* NBD (0 for the file): connections, those up, 1 while the server
	 * is unreachable, connections re-established, requests sent again,
	 * requests that failed */
	uint64_t net_conns, net_ready, net_down, net_reconnects, net_retries, net_errors;
	/* NBD readahead: whole clusters read ahead of a sequential stream,
	 * and pages served from them */
	uint64_t net_ra_reads, net_ra_hits;
};
/* Normal context (takes the context-list lock). */
void swb_usage(struct swb *s, struct swb_usage *u);

/*
 * Test hooks, normal context: SWB_INJECT_EIO makes the next load of handle
 * fail with -EIO (file or tier); SWB_INJECT_CORRUPT corrupts the stored
 * bytes (file: garbage written to the slot; tier: one compressed byte
 * flipped) so the checksum catches it. Returns 0, or -EINVAL for a handle
 * with no stored bytes (same-filled, invalid).
 */
#define SWB_INJECT_EIO 1
#define SWB_INJECT_CORRUPT 2
int swb_inject(struct swb *s, uint64_t handle, int what);
/* The swap file descriptor, for tests (fstat) and the sandbox; -1 on NBD. */
int swb_fd(struct swb *s);

/*
 * An NBD store needs its I/O loop to run on a thread of the caller's
 * (the pager's "swap I/O" service thread, sandboxed): swb_io_loop_needed
 * says whether it does, swb_io_loop runs it until swb_io_loop_stop
 * (normal context, any thread). Until the loop runs, NBD stores and loads
 * wait. swb_io_kick_fd: the eventfd that contexts write to wake the loop
 * (-1 for the file), for the sandbox's allowlist.
 */
bool swb_io_loop_needed(struct swb *s);
void swb_io_loop(struct swb *s);
void swb_io_loop_stop(struct swb *s);
int swb_io_kick_fd(struct swb *s);
/* The address family of the NBD server's socket (AF_UNIX, AF_INET,
 * AF_INET6; -1 for the file), for the sandbox. */
int swb_io_socket_family(struct swb *s);
/* One sentence on the store's health into buf (NBD: connections, how
 * long the server has been away, the last error); returns 1 while the
 * store cannot be reached, 0 otherwise (always 0 for the file). Normal
 * context. */
int swb_status(struct swb *s, char *buf, size_t len);
#ifdef UFP_INTERNAL_TESTING
/* A context's ring, for tests of its restrictions (liburing's type). */
struct io_uring;
struct io_uring *swb_ctx_ring(struct swb_ctx *c);
#endif

#endif /* UFP_SWAP_BACKEND_H */
