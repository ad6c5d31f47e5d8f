/* SPDX-License-Identifier: MIT */
/*
 * ufpager.h - user-space paging of anonymous memory with userfaultfd.
 *
 * The only public header. Every fallible call returns 0 or a negative errno
 * value; objects are handed back through out-parameters. Types are opaque
 * except the parameter and statistics structs, which begin with size and
 * version fields so they can grow.
 */
#ifndef UFPAGER_H
#define UFPAGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define UFP_API __attribute__((visibility("default")))
#else
#define UFP_API
#endif

typedef struct ufp_pager ufp_pager;

/* The library's version: these macros for the header a program was built
 * against, ufp_version() for the library it runs with. */
#define UFP_VERSION_MAJOR 0
#define UFP_VERSION_MINOR 2
#define UFP_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the running library; a static string. Any
 * context, never fails. */
UFP_API const char *ufp_version(void);

/* Lock modes. DEFAULT picks UFPAGER_LOCK_MODE from the environment, else
 * PER_REGION. */
enum ufp_lock_mode {
	UFP_LOCK_DEFAULT = 0,
	UFP_LOCK_PER_REGION = 1,   /* per-VMA lock protocol (kernel 6.4+ image) */
	UFP_LOCK_GLOBAL = 2,       /* every fault takes the pager lock: mmap_lock */
	UFP_LOCK_GLOBAL_RETRY = 3, /* GLOBAL, but swap-in I/O drops the lock */
};

/* Fault delivery. DEFAULT picks UFPAGER_DELIVERY, else SIGBUS (measured:
 * README "Fault delivery"). */
enum ufp_delivery {
	UFP_DELIVERY_DEFAULT = 0,
	UFP_DELIVERY_HANDLER = 1,  /* handler threads read the userfaultfd */
	UFP_DELIVERY_SIGBUS = 2,   /* faulting thread serves itself (self-paging) */
};

#define UFP_PARAMS_VERSION 1

/*
 * Pager parameters. A zero-initialised struct (or a NULL pointer) means "all
 * defaults"; a zero field means "default for that field" (environment
 * variable UFPAGER_<NAME>, else the built-in value). `size` must be
 * sizeof(struct ufp_params) of the caller's header, `version`
 * UFP_PARAMS_VERSION.
 */
struct ufp_params {
	uint32_t size;
	uint32_t version;
	uint64_t arena_size;       /* virtual reservation, bytes (default 64G) */
	uint64_t budget;           /* resident budget, bytes (0: unlimited) */
	uint32_t handler_threads;  /* default: one per core, at least 2 */
	uint32_t lock_mode;        /* enum ufp_lock_mode */
	uint32_t delivery;         /* enum ufp_delivery */
	int32_t spin_us;           /* handler spin before blocking; -1: none */
	uint32_t fault_around;     /* pages zero-filled per first-touch fault */
	uint32_t flags;            /* UFP_PF_* */
	/* swap (the swap backend; 0 means default) */
	const char *swap_dir;      /* a directory, or an NBD URI (README "Swap over NBD") */
	uint64_t swap_size;
	uint64_t ztier_size;
	uint64_t reserved[8];
};

#define UFP_PF_NO_EXPORT   (1u << 0)  /* no shared-memory stats segment */
#define UFP_PF_NO_SANDBOX  (1u << 1)  /* no seccomp filter on the service threads */
#define UFP_PF_ALL         (UFP_PF_NO_EXPORT | UFP_PF_NO_SANDBOX)

/*
 * Create a pager: reserve its arena, open and probe userfaultfd, start the
 * handler threads. May block; call from a normal thread context.
 * Returns 0, or -EPERM/-ENOSYS/-EACCES when userfaultfd is unavailable (see
 * ufp_last_error() for the cause and the fix), -EINVAL for bad parameters,
 * -ENOMEM.
 */
UFP_API int ufp_pager_create(const struct ufp_params *params, ufp_pager **out);

/*
 * Destroy a pager: unmap every region, stop the threads, free everything.
 * No other call on the pager may run concurrently or follow. Returns 0 or
 * -EINVAL for a NULL pager.
 */
UFP_API int ufp_pager_destroy(ufp_pager *pager);

/*
 * Register the calling thread with the pager's RCU domain (the first ufp_
 * call from a thread does it too). In SIGBUS delivery mode a thread that
 * faults on managed memory without being registered is served through the
 * pager-lock fallback (slower, still correct). Normal context only.
 */
UFP_API int ufp_thread_register(void);

/* Human-readable detail of the last failed ufp_ call in this thread (the
 * cause and the fix; at least the call and its arguments), or a note left
 * by a call that succeeded with a caveat (a pager created without its
 * stats segment, stats read while swap is full), or "" when none. Valid
 * until the next ufp_ call in this thread. */
UFP_API const char *ufp_last_error(void);

/* ---- mmap-like interface ------------------------------------------------ */

#define UFP_PROT_NONE  0x0
#define UFP_PROT_READ  0x1
#define UFP_PROT_WRITE 0x2  /* implies UFP_PROT_READ */
#define UFP_PROT_ALL   (UFP_PROT_READ | UFP_PROT_WRITE)

#define UFP_MAP_FIXED  (1u << 0)  /* map exactly at hint; -EEXIST if taken */
#define UFP_MAP_ALL    (UFP_MAP_FIXED)

/*
 * Map len bytes (a multiple of the page size, > 0) of zero-filled memory
 * managed by the pager. hint is NULL, or with UFP_MAP_FIXED a page-aligned
 * address inside the arena. May block (structural op). Returns 0 and the
 * address in *out, or -EINVAL (bad length, flags, prot or hint), -EEXIST
 * (UFP_MAP_FIXED over a mapped range), -ENOMEM (arena full).
 */
UFP_API int ufp_map(ufp_pager *pager, void *hint, size_t len, int prot,
		    unsigned flags, void **out);

/*
 * Unmap [addr, addr+len): every page in it must be mapped (stricter than
 * munmap, so that a double unmap is caught: -EINVAL, nothing changed).
 * A partial unmap trims or splits regions. Memory of allocator objects
 * (ufp_alloc) can only be released with ufp_free: -EINVAL.
 */
UFP_API int ufp_unmap(ufp_pager *pager, void *addr, size_t len);

/*
 * Change the protection of [addr, addr+len) (all mapped, else -ENOMEM as
 * mprotect). Splits regions at the edges; neighbours with equal attributes
 * merge back.
 */
UFP_API int ufp_protect(ufp_pager *pager, void *addr, size_t len, int prot);

#define UFP_ADV_NORMAL   0
#define UFP_ADV_WILLNEED 1  /* bring pages in now (zero-fill or swap-in) */
#define UFP_ADV_DONTNEED 2  /* discard contents: next access reads zeros */
#define UFP_ADV_PAGEOUT  3  /* evict resident pages now (needs a budget) */

/* Advise on [addr, addr+len) (all mapped, else -ENOMEM). */
UFP_API int ufp_advise(ufp_pager *pager, void *addr, size_t len, int advice);

/* ---- allocator interface ------------------------------------------------ */

/*
 * Page-granular objects: each object is its own region, so faults on it
 * never contend with structural work on other objects. size > 0; the
 * object is zero-filled and page aligned. ufp_free takes only a pointer
 * returned by ufp_alloc/ufp_realloc (else -EINVAL). ufp_realloc grows in
 * place where the following address space is free, otherwise moves the
 * pages (UFFDIO_MOVE where the kernel has it, no copy of resident pages);
 * on failure the old object is untouched. ufp_realloc(p=NULL) allocates.
 * An object keeps its protection (ufp_protect on the whole object) through
 * realloc, whole: a tail grown in place gets it, a moved object gets it
 * (the pages of a protected object are copied, not moved).
 */
UFP_API int ufp_alloc(ufp_pager *pager, size_t size, void **out);
UFP_API int ufp_free(ufp_pager *pager, void *ptr);
UFP_API int ufp_realloc(ufp_pager *pager, void *ptr, size_t size, void **out);
/* Requested size of an allocator object, or -EINVAL. */
UFP_API int ufp_alloc_size(ufp_pager *pager, const void *ptr, size_t *out);

/* ---- heap: malloc-grade objects on pager memory ------------------------- */

/*
 * A heap serves objects of any size (the malloc family) from a pager's
 * memory, so they are budgeted, swapped and counted like any managed page.
 * It is jemalloc 5.3 (a private copy inside libufpager.so: the process's
 * malloc is not replaced) with one arena per heap whose extents come from
 * the pager: extent alloc/dalloc/destroy are ufp_map/ufp_unmap, a forced
 * purge is ufp_advise(DONTNEED), split and merge need nothing (every ufp_
 * call works on address ranges). jemalloc's own metadata is ordinary
 * memory, never pager memory. Small objects share slabs; a large object
 * is an extent of its own, carved from a mapping that grows geometrically.
 *
 * Thread safety: every call may run concurrently with every other on the
 * same heap, except ufp_heap_destroy. Each thread gets a thread cache per
 * heap on its first call (for the first 64 live heaps; later ones run
 * without one); the first call also registers the thread with the pager
 * (ufp_thread_register), so its faults on heap memory take the fast path.
 * Thread caches are returned when their thread exits.
 *
 * The allocation calls behave as their libc namesakes, so a preload can
 * forward to them one for one: NULL with errno ENOMEM (EINVAL for a bad
 * alignment) on failure, size 0 gives a unique pointer, calloc checks the
 * multiplication. They never return memory of another heap, and must only
 * be given pointers of this heap (free and realloc of another heap's
 * pointer is undefined, as with two mallocs). They are not
 * async-signal-safe (neither is malloc).
 *
 * Memory of a pager heap is pager memory: system calls that write into it
 * need delivery=handler when pages may be missing (README "Fault
 * delivery"). In a fork child the pager is inert: the heap keeps serving
 * from the memory it has and maps new extents as ordinary memory inside
 * the pager's arena.
 */
typedef struct ufp_heap ufp_heap;

/*
 * Create a heap on pager's memory. pager NULL: the same kind of heap (its
 * own jemalloc arena, the same thread caches) on ordinary kernel memory,
 * through jemalloc's default extent hooks: the baseline that `ufpagerctl
 * bench alloc` compares with. flags: 0 (no flag is defined yet; others are -EINVAL). Normal
 * context; may block. Returns 0 and the heap in *out, or -EINVAL, -ENOMEM,
 * -ECHILD (the pager was inherited across fork).
 */
UFP_API int ufp_heap_create(ufp_pager *pager, unsigned flags, ufp_heap **out);

/*
 * Destroy a heap: every object it served is freed at once (their memory
 * unmapped from the pager) and every thread cache of it dropped. No other
 * call on the heap may run concurrently or follow; the pager must still
 * live. Returns 0, or -EINVAL for NULL.
 */
UFP_API int ufp_heap_destroy(ufp_heap *heap);

/* malloc(size): at least size bytes, uninitialised, aligned to 16 (an
 * object under 16 bytes to 8: jemalloc's smallest class). */
UFP_API void *ufp_heap_malloc(ufp_heap *heap, size_t size);
/* calloc(n, size): n * size zeroed bytes; NULL with ENOMEM on overflow. */
UFP_API void *ufp_heap_calloc(ufp_heap *heap, size_t n, size_t size);
/*
 * realloc(ptr, size): ptr NULL allocates; size 0 with ptr frees it and
 * returns NULL (as glibc); otherwise the contents up to the smaller size
 * are kept, in place when possible. On failure ptr is untouched.
 */
UFP_API void *ufp_heap_realloc(ufp_heap *heap, void *ptr, size_t size);
/* aligned_alloc(alignment, size): alignment a power of two (any size),
 * else NULL with EINVAL. posix_memalign, memalign and valloc are this. */
UFP_API void *ufp_heap_aligned_alloc(ufp_heap *heap, size_t alignment, size_t size);
/* free(ptr); NULL is ignored. */
UFP_API void ufp_heap_free(ufp_heap *heap, void *ptr);
/* malloc_usable_size(ptr): the bytes usable at ptr (>= the size asked);
 * 0 for NULL. */
UFP_API size_t ufp_heap_usable_size(ufp_heap *heap, const void *ptr);
/*
 * Could ptr be an object of this heap? 1 when it lies inside the heap's
 * pager arena (the heap's objects always do), else 0; always 0 for a heap
 * on kernel memory (pager NULL). Lock-free, O(1), async-signal-safe: a
 * preload tells the heap's pointers from those of the malloc it replaced
 * with it. (Memory the program ufp_map()s in the same pager is in the
 * arena too; it is never passed to free.)
 */
UFP_API int ufp_heap_owns(const ufp_heap *heap, const void *ptr);

#define UFP_HEAP_STATS_VERSION 1

/* What a heap holds, in bytes (jemalloc's arena statistics, refreshed on
 * each call). */
struct ufp_heap_stats {
	uint32_t size;             /* sizeof(struct ufp_heap_stats), set by the caller */
	uint32_t version;          /* UFP_HEAP_STATS_VERSION, set by the caller */
	uint64_t allocated;        /* bytes in live objects (usable sizes) */
	uint64_t active;           /* bytes in pages that hold live objects */
	uint64_t mapped;           /* bytes of pager memory mapped by the heap */
	uint64_t extent_maps;      /* extents mapped (ufp_map calls) */
	uint64_t extent_unmaps;    /* extents unmapped (ufp_unmap calls) */
	uint64_t purges;           /* ranges discarded (ufp_advise DONTNEED) */
	uint64_t thread_caches;    /* live thread caches of this heap */
	uint64_t reserved[8];
};

/* Fill *out (at most out->size bytes). Any thread, normal context; it
 * flushes nothing. Returns 0, or -EINVAL (NULL, a bad size or version). */
UFP_API int ufp_heap_stats_get(ufp_heap *heap, struct ufp_heap_stats *out);

/* ---- statistics ---------------------------------------------------------- */

#define UFP_STATS_VERSION 4

/* Latency summary in nanoseconds (from log-linear histograms). */
struct ufp_latency {
	uint64_t count;
	uint64_t p50, p99, p999, max;
	uint64_t sum;
};

/*
 * The statistics fields, one X-macro list (name, kind, description) that
 * generates the struct below, the text printer and the JSON writer, so they
 * cannot drift. kind: C = counter (monotonic), G = gauge.
 */
#define UFP_STAT_COUNTERS_V2(X) \
	X(faults,              C, "faults served") \
	X(faults_missing,      C, "missing-page faults") \
	X(reserved_wp,         C, "always 0: write-protect faults never reach ufpager (WP_ASYNC)") \
	X(faults_zero,         C, "faults served by zero fill") \
	X(faults_ztier,        C, "faults served from the compressed RAM tier") \
	X(faults_file,         C, "faults served from the swap file") \
	X(fault_around_pages,  C, "extra pages installed by fault-around") \
	X(sigbus_faults,       C, "faults served in the SIGBUS handler") \
	X(foreign_sigbus,      C, "SIGBUS not for ufpager, chained (process-wide)") \
	X(handler_self_faults, C, "faults raised by a handler thread (must be 0)") \
	X(ioctl_eagain,        C, "uffd ioctl EAGAIN (event pending)") \
	X(ioctl_eexist,        C, "uffd ioctl EEXIST (already resolved)") \
	X(ioctl_enoent,        C, "uffd ioctl ENOENT (range gone)") \
	X(ioctl_esrch,         C, "uffd ioctl ESRCH (process exiting)") \
	X(events_unmap,        C, "foreign UNMAP events") \
	X(events_remove,       C, "foreign REMOVE events") \
	X(events_remap,        C, "foreign REMAP events") \
	X(events_fork,         C, "forks this pager went through (evicted pages read back first)") \
	X(handler_spins_hit,   C, "messages found while a handler spun") \
	X(handler_blocks,      C, "times a handler blocked in poll") \
	X(lock_success,        C, "per-region read lock taken under RCU") \
	X(lock_abort,          C, "per-region lock failed: fell back") \
	X(lock_retry,          C, "fault dropped its lock to wait (VM_FAULT_RETRY)") \
	X(lock_miss,           C, "region changed under lookup: re-walked") \
	X(lock_fallback,       C, "faults served under the pager lock") \
	X(maps,                C, "map calls") \
	X(unmaps,              C, "unmap calls") \
	X(protects,            C, "protect calls") \
	X(advises,             C, "advise calls") \
	X(splits,              C, "region splits") \
	X(merges,              C, "region merges") \
	X(swapins,             C, "pages swapped in") \
	X(swapouts,            C, "pages swapped out") \
	X(swapouts_clean,      C, "evictions that kept a valid stored copy (no write)") \
	X(swapouts_hashed,     C, "clean-candidate evictions checked by content hash") \
	X(swapouts_raced,      C, "clean candidates written just before eviction (hash caught)") \
	X(dirty_found,         C, "swapped-in pages found written by PAGEMAP_SCAN") \
	X(swap_full_events,    C, "times eviction stopped because swap was full") \
	X(bytes_read,          C, "bytes read from the swap file") \
	X(bytes_written,       C, "bytes written to the swap file") \
	X(ztier_bytes_in,      G, "bytes held in the compressed tier (raw)") \
	X(ztier_bytes_out,     G, "memory the compressed tier holds for them") \
	X(reclaim_scans,       C, "pages scanned by reclaim") \
	X(reclaim_waits,       C, "times a fault over the budget waited for reclaim") \
	X(moves_misreported,   C, "UFFDIO_MOVE moved a page yet failed (kernel bug, README)") \
	X(pages_poisoned,      C, "pages poisoned after an I/O or checksum error") \
	X(regions,             G, "regions in the tree") \
	X(resident_pages,      G, "pages resident in managed memory")

/*
 * Counters added after version 2. They sit after the latencies, in what
 * were reserved slots, so that a version-2 struct stays a prefix of this
 * one; new counters go at the end of this list and shrink reserved[].
 */
#define UFP_STAT_COUNTERS_V3(X) \
	X(fork_swapin_failed,  C, "evicted pages a fork could not read back (child sees zeros)") \
	X(remap_swapins,       C, "evicted pages brought back into a range the program mremapped") \
	X(service_stalls,      C, "service threads found dead or stuck by the watchdog") \
	X(inject_eio,          C, "injected I/O errors (UFPAGER_INJECT, process-wide)") \
	X(inject_short,        C, "injected short reads and writes (process-wide)") \
	X(inject_enospc,       C, "injected swap-full (ENOSPC) slot allocations (process-wide)") \
	X(inject_eagain,       C, "injected uffd ioctl EAGAIN (process-wide)") \
	X(inject_delay,        C, "injected delayed I/O completions (process-wide)") \
	X(inject_csum,         C, "injected checksum mismatches on load (process-wide)") \
	X(inject_kill,         C, "service threads killed by injection (process-wide)") \
	X(sandbox_threads,     C, "service threads started under their seccomp filter") \
	X(sandbox_unavailable, C, "service threads that ran unsandboxed (seccomp failed)") \
	X(sandbox_kills,       C, "service threads ended by the sandbox (forbidden call)") \
	X(swap_reconnects,     C, "connections to the NBD swap server re-established") \
	X(swap_unreachable,    G, "1 while the NBD swap server cannot be reached (eviction stops)")
#define UFP_STAT_V3_COUNT 15
#define UFP_STATS_FIRST_V3 fork_swapin_failed  /* the first field after version 2 */

/*
 * Counters added in version 4, after version 3's reserved slot (a
 * version-3 struct stays a prefix); new ones take reserved4[] slots.
 */
#define UFP_STAT_COUNTERS_V4(X) \
	X(faults_parked,       C, "faults served by moving a parked page back (a reference)") \
	X(pages_parked,        C, "pages parked: moved out of the arena, still in RAM") \
	X(parked_evictions,    C, "parked pages evicted after a whole pass of the ring") \
	X(faults_handed_off,   C, "faults needing a read a busy handler passed to another")
#define UFP_STAT_V4_COUNT 4
#define UFP_STATS_FIRST_V4 faults_parked   /* the first field after version 3 */

#define UFP_STAT_COUNTERS(X) UFP_STAT_COUNTERS_V2(X) UFP_STAT_COUNTERS_V3(X) \
	UFP_STAT_COUNTERS_V4(X)

/* Latency histograms: fault service, lock wait, swap I/O. */
#define UFP_STAT_LATENCIES(X) \
	X(fault_lat, "fault service latency") \
	X(lock_wait, "lock wait (fallback and structural)") \
	X(io_lat,    "swap I/O latency")

/*
 * Snapshot of a pager's counters, merged from per-thread counters.
 * The caller sets size = sizeof(struct ufp_stats) and version.
 */
struct ufp_stats {
	uint32_t size;
	uint32_t version;
#define UFP_X_FIELD(name, kind, desc) uint64_t name;
	UFP_STAT_COUNTERS_V2(UFP_X_FIELD)
#define UFP_X_LAT(name, desc) struct ufp_latency name;
	UFP_STAT_LATENCIES(UFP_X_LAT)
#undef UFP_X_LAT
	UFP_STAT_COUNTERS_V3(UFP_X_FIELD)
	uint64_t reserved[16 - UFP_STAT_V3_COUNT];
	UFP_STAT_COUNTERS_V4(UFP_X_FIELD)
#undef UFP_X_FIELD
	uint64_t reserved4[16 - UFP_STAT_V4_COUNT];
};

/*
 * Fill *out. The caller sets out->version (2, 3 or UFP_STATS_VERSION) and
 * out->size = sizeof(struct ufp_stats) of its header; at most out->size
 * bytes are written, so a caller built against an older, smaller struct
 * gets the fields it knows. May be called from any thread; never blocks
 * faults. Returns 0, or -EINVAL (NULL arguments, an unknown version, a
 * size smaller than the version-2 fields).
 */
UFP_API int ufp_stats_get(ufp_pager *pager, struct ufp_stats *out);

/*
 * Print *stats to out: ufp_stats_print one line per counter and per
 * latency ("name value description"), ufp_stats_json one JSON object
 * {"version":N,"counters":{...},"latency_ns":{"fault_lat":{"count",
 * "p50","p99","p999","max","sum"},...}} and a newline. stats->size and
 * stats->version are checked as ufp_stats_get checks them; the counters a
 * version-2 struct lacks print as 0. Normal context (stdio). Returns 0,
 * or -EINVAL (NULL arguments, a bad size or version; ufp_last_error()
 * says which), or -EIO when writing to out failed.
 */
UFP_API int ufp_stats_print(const struct ufp_stats *stats, FILE *out);
UFP_API int ufp_stats_json(const struct ufp_stats *stats, FILE *out);

/* ---- reading another process's statistics ------------------------------- */

/*
 * A pager exports its statistics in a shared-memory segment,
 * /dev/shm/ufpager.<pid>.<pager id> (unless UFP_PF_NO_EXPORT or
 * UFPAGER_EXPORT_STATS=0), updated every 0.2 s. ufp_snapshot_read copies
 * one consistently. `ufpagerctl stats` and `top` are built on it.
 */
#define UFP_SNAPSHOT_VERSION 1
#define UFP_SNAPSHOT_REGIONS 32
#define UFP_SNAPSHOT_PATTERN "/dev/shm/ufpager.%d.*"   /* printf with a pid: a glob */

#define UFP_REGION_ALLOC (1u << 0)   /* ufp_region_stats.flags: an allocator object */

/* One region of a snapshot: the busiest by faults. */
struct ufp_region_stats {
	uint64_t start, end;       /* [start, end) */
	uint32_t prot;             /* UFP_PROT_* */
	uint32_t flags;            /* UFP_REGION_* */
	uint64_t faults;
	uint64_t lock_success, lock_abort, lock_retry, lock_miss;
};

struct ufp_snapshot {
	uint32_t size;             /* sizeof(struct ufp_snapshot), set by the caller */
	uint32_t version;          /* UFP_SNAPSHOT_VERSION, set by the caller */
	uint64_t pid;              /* the exporting process */
	uint64_t pager_id;
	uint32_t lock_mode;        /* enum ufp_lock_mode in effect */
	uint32_t delivery;         /* enum ufp_delivery in effect */
	uint64_t budget;           /* bytes, 0: unlimited */
	uint64_t update_ns;        /* CLOCK_MONOTONIC of the exporter's last update */
	uint32_t nregions;         /* valid entries of regions[] */
	uint32_t pad;
	struct ufp_stats stats;    /* size and version filled in */
	struct ufp_region_stats regions[UFP_SNAPSHOT_REGIONS];
	uint64_t reserved[8];
};

/*
 * Validate the segment at path and copy a consistent snapshot into *out.
 * Never blocks on the path (a FIFO is refused, not waited on), never
 * follows a symbolic link, and refuses a file that is not the caller's
 * (unless root) or whose layout differs from this library's. Normal
 * context; may sleep briefly while the exporter writes. Returns 0, or
 * -EINVAL (NULL arguments, a bad size or version, not a regular file),
 * -ENOENT, -EPERM, -EBADMSG (malformed or foreign), -EPROTO (another
 * layout version), -EAGAIN (the writer never finished an update); the
 * sentence is in ufp_last_error().
 */
UFP_API int ufp_snapshot_read(const char *path, struct ufp_snapshot *out);

/* ---- configuration ------------------------------------------------------- */

/*
 * Print every option's effective value for params (NULL: the environment
 * alone) and where it came from, one line per option after a header line:
 * "UFPAGER_<NAME>  value  default|environment|API  meaning". Normal
 * context. Returns 0, or -EINVAL (NULL out, a bad params struct or value,
 * a bad UFPAGER_* variable; ufp_last_error() says which), or -EIO.
 */
UFP_API int ufp_config_print(const struct ufp_params *params, FILE *out);

/* ---- machine probe ------------------------------------------------------- */

#define UFP_PROBE_VERSION 1

struct ufp_probe {
	uint32_t size;
	uint32_t version;
	int uffd_errno;          /* 0 if a userfaultfd could be opened */
	int uffd_via_dev;        /* opened through /dev/userfaultfd */
	int user_mode_only;      /* only UFFD_USER_MODE_ONLY was allowed */
	uint64_t uffd_features;  /* features the kernel offers */
	uint64_t uffd_ioctls;    /* ioctls on a registered anonymous range */
	int io_uring_errno;      /* 0 if io_uring_setup works */
	int unprivileged_uffd;   /* vm.unprivileged_userfaultfd, -1 unknown */
	int io_uring_disabled;   /* kernel.io_uring_disabled, -1 unknown */
	uint64_t reserved[8];
};

/* Probe what this machine supports; never fails on a missing feature
 * (that is reported in the struct). The caller sets out->size =
 * sizeof(struct ufp_probe) and out->version = UFP_PROBE_VERSION; at most
 * out->size bytes are written. Returns 0 or -EINVAL. */
UFP_API int ufp_probe_machine(struct ufp_probe *out);

/*
 * Check a swap location before a pager uses it (`ufpagerctl check
 * --swap`): a directory (an O_TMPFILE swap file can be made there;
 * *size gets the bytes free in its filesystem) or an NBD URI
 * (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH: every
 * connection is made and its handshake completed; *size gets the
 * export's size, the swap space it offers). Normal context; may block
 * for the connection (5 s at most). Returns 0, or -EINVAL (a bad URI,
 * NULL arguments), -ECONNREFUSED / -ENOENT (no server there), -ENOSPC
 * (an export too small), -EROFS, or the errno of the directory; the
 * sentence is in ufp_last_error().
 */
UFP_API int ufp_swap_probe(const char *where, uint64_t *size);

#ifdef __cplusplus
}
#endif
#endif /* UFPAGER_H */
