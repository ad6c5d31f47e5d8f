/* SPDX-License-Identifier: MIT */
/*
 * libufpager_preload.so - puts an unmodified program's heap and large
 * anonymous mappings on ufpager (`ufpagerctl run`, or LD_PRELOAD by
 * hand). A user of the library like any other: libufpager.so through
 * <ufpager.h> only.
 *
 * What is routed to the pager:
 *  - malloc, calloc, realloc, reallocarray, memalign, posix_memalign,
 *    aligned_alloc, valloc, pvalloc, malloc_usable_size, free: the
 *    library's heap (ufp_heap_*: jemalloc arenas on pager memory), every
 *    size, from the first call after this library's constructor (blocks
 *    from before, or with UFPAGER_PRELOAD_MALLOC=0, are the program's own
 *    allocator's: the next malloc, glibc's or a jemalloc it links; ufp_heap_owns
 *    tells them apart). The library's own blocks go to glibc's allocator
 *    under its internal names (see "the malloc family" below: no bootstrap
 *    arena is needed, dlsym's own allocations are the library's);
 *  - anonymous private mmap of UFPAGER_PRELOAD_MIN bytes or more (default
 *    256K) without PROT_EXEC, MAP_STACK, MAP_GROWSDOWN or MAP_HUGETLB:
 *    ufp_map; munmap, mprotect, madvise and mremap on those ranges:
 *    ufp_unmap, ufp_protect, ufp_advise, and mremap emulated with ufp_map
 *    (in place when the following space is free, else a new range and a
 *    copy).
 * Everything else goes to the next definition (dlsym(RTLD_NEXT)).
 *
 * Recursion: the library's own calls (and its service threads, which are
 * created inside a ufp_ call) run with a thread-local guard set, under
 * which every call here passes straight through: the library's own
 * mallocs and mmaps never come back into the pager.
 *
 * fork: the library makes the inherited pager inert in the child (its
 * memory becomes plain memory, README "Fork"). The child hands that
 * memory's munmap/mprotect/madvise/mremap to the kernel, keeps the heap
 * (which goes on serving, with plain memory), and creates a pager of its
 * own for its first large mapping (a stress-ng --vm worker keeps being
 * paged).
 *
 * exec: LD_PRELOAD stays in the environment, so the preload follows into
 * the new program; UFPAGER_PRELOAD_EXEC=0 takes it out at start.
 *
 * Statistics: the pager's live segment (`ufpagerctl stats PID`); with
 * UFPAGER_STATS_FILE each process appends one JSON line at exit:
 * {"pid":N,"exe":"...","stats":<ufp_stats_json>}.
 */
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <ufpager.h>

#include "ldso_text.h"

#define PAGE 4096ul

/* glibc's allocator under its own names (exported by libc.so.6). */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);


/* Address range a pager has handed out: every address in [lo, hi) lies
 * in its arena, which nothing else can map. */
struct span {
	_Atomic uintptr_t lo, hi;
};

enum { ST_NONE, ST_STARTING, ST_READY, ST_OFF };

static ufp_pager *pager;                /* this process's live pager */
/* The malloc family's heap (see below): stored with release once created,
 * loaded with acquire (cur_heap) by every thread that allocates or frees. */
static ufp_heap *_Atomic heap;
/* Heaps of pagers inherited across fork: their blocks are still freed,
 * reallocated and measured by them (plain memory in this process). */
#define MAX_INHERITED 8
static ufp_heap *inherited[MAX_INHERITED];
static unsigned ninherited;             /* written in a fork child only (one thread) */
#define CHILD_OWN_PAGER (1ul << 20)
static _Atomic size_t child_bytes;   /* relaxed: a threshold, nothing published */

/*
 * The dynamic linker's own allocations (link maps of dlopen'd libraries,
 * each thread's DTV and dynamic TLS blocks) stay out of the heap, as the
 * library's do: the fault path reads other libraries' thread-local
 * variables through the DTV, and the linker walks link maps, so neither
 * may be pager memory (README "Link the heap", the rule test_heap_interpose
 * found). A call whose return address is in ld.so's text is one of them.
 */
static struct ldso_text ldso;   /* written once by the constructor */

static bool from_ldso(const void *ra)
{
	return ldso_text_has(&ldso, ra);
}

static ufp_heap *cur_heap(void)
{
	return atomic_load_explicit(&heap, memory_order_acquire);   /* pairs with set_heap */
}

static void set_heap(ufp_heap *h)
{
	atomic_store_explicit(&heap, h, memory_order_release);   /* pairs with cur_heap */
}

static _Atomic int state;               /* ST_*: release on READY pairs with acquire in usable() */
static struct span live = { UINTPTR_MAX, 0 };
static size_t min_bytes = 256 << 10;   /* mappings routed from this size */
static bool route_malloc = true;        /* UFPAGER_PRELOAD_MALLOC=0: the program's malloc */
static bool inited;                     /* the constructor ran */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

/* >0 while inside the library (or on one of its threads): pass through. */
static __thread int guard __attribute__((tls_model("initial-exec")));

static void *(*next_mmap)(void *, size_t, int, int, int, off_t);
static int (*next_munmap)(void *, size_t);
static int (*next_mprotect)(void *, size_t, int);
static int (*next_madvise)(void *, size_t, int);
static void *(*next_mremap)(void *, size_t, size_t, int, ...);
static size_t (*next_usable)(void *);
static int (*next_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void resolve_malloc(void);

static void resolve_once(void)
{
	guard++;   /* dlsym's own allocations: library blocks */
	next_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
	next_mprotect = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "mprotect");
	next_madvise = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "madvise");
	next_mremap = (void *(*)(void *, size_t, size_t, int, ...))dlsym(RTLD_NEXT, "mremap");
	next_usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	next_pthread_create = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
				       void *))dlsym(RTLD_NEXT, "pthread_create");
	next_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
	resolve_malloc();
	guard--;
}

static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void resolve(void)
{
	pthread_once(&resolved, resolve_once);
}

/* ---- the kernel's calls, for what is not ours ---------------------------- */

static void *k_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	if (next_mmap)
		return next_mmap(a, l, p, f, fd, o);
	return (void *)syscall(SYS_mmap, a, l, p, f, fd, o);
}

static int k_munmap(void *a, size_t l)
{
	return next_munmap ? next_munmap(a, l) : (int)syscall(SYS_munmap, a, l);
}

static int k_mprotect(void *a, size_t l, int p)
{
	return next_mprotect ? next_mprotect(a, l, p) : (int)syscall(SYS_mprotect, a, l, p);
}

static int k_madvise(void *a, size_t l, int adv)
{
	return next_madvise ? next_madvise(a, l, adv) : (int)syscall(SYS_madvise, a, l, adv);
}

/* ---- spans ---------------------------------------------------------------- */

static void span_note(struct span *s, void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, e = a + len;
	uintptr_t cur = atomic_load_explicit(&s->lo, memory_order_relaxed);

	/* relaxed: a span only widens, and an address is in it only after the
	 * caller got it back from this very call (program order) or through
	 * the program's own synchronisation with the thread that did */
	while (a < cur && !atomic_compare_exchange_weak_explicit(&s->lo, &cur, a,
			memory_order_relaxed, memory_order_relaxed))
		;
	cur = atomic_load_explicit(&s->hi, memory_order_relaxed);
	while (e > cur && !atomic_compare_exchange_weak_explicit(&s->hi, &cur, e,
			memory_order_relaxed, memory_order_relaxed))
		;
}

static bool span_has(struct span *s, const void *p)
{
	uintptr_t a = (uintptr_t)p;

	return a >= atomic_load_explicit(&s->lo, memory_order_relaxed) &&
	       a < atomic_load_explicit(&s->hi, memory_order_relaxed);
}

static bool in_live(const void *p)
{
	return atomic_load_explicit(&state, memory_order_acquire) == ST_READY &&
	       span_has(&live, p);
}

/* ---- the pager ------------------------------------------------------------- */

static void start_pager(void);

/* The pager may serve a new allocation from this thread now. */
static bool usable(void)
{
	int s;

	if (guard || !inited)
		return false;
	s = atomic_load_explicit(&state, memory_order_acquire);   /* pairs with the release in start_pager */
	if (s == ST_READY)
		return true;
	if (s == ST_NONE) {
		start_pager();
		return atomic_load_explicit(&state, memory_order_acquire) == ST_READY;
	}
	return false;
}

static void atfork_prepare(void)
{
	guard++;   /* the library's own fork handlers run inside this window */
}

static void atfork_parent(void)
{
	guard--;
}

/* The child's pager is inert (plain memory, README "Fork"): the live span
 * empties, so its munmap/mprotect/madvise/mremap go to the kernel, and
 * the child gets a pager (and heap) of its own for its next large mapping
 * or after its first CHILD_OWN_PAGER bytes of blocks. */
static void atfork_child(void)
{
	guard--;
	if (atomic_load_explicit(&state, memory_order_relaxed) == ST_READY) {
		atomic_store_explicit(&live.lo, UINTPTR_MAX, memory_order_relaxed);
		atomic_store_explicit(&live.hi, 0, memory_order_relaxed);
		pager = NULL;
		atomic_store_explicit(&child_bytes, 0, memory_order_relaxed);
		if (cur_heap() && ninherited < MAX_INHERITED) {
			/* the child's next block comes from a heap on its own pager */
			inherited[ninherited++] = cur_heap();
			set_heap(NULL);
		}
		/* past MAX_INHERITED generations the child keeps the last heap
		 * (its new blocks are plain memory) */
		atomic_store_explicit(&state, ST_NONE, memory_order_relaxed);
	}
	pthread_mutex_init(&start_lock, NULL);
}

static void start_pager(void)
{
	struct ufp_params prm = { .size = sizeof(prm), .version = UFP_PARAMS_VERSION };
	ufp_pager *p = NULL;
	int err;

	pthread_mutex_lock(&start_lock);
	if (atomic_load_explicit(&state, memory_order_relaxed) != ST_NONE) {
		pthread_mutex_unlock(&start_lock);
		return;
	}
	atomic_store_explicit(&state, ST_STARTING, memory_order_relaxed);
	resolve();
	/* Handler delivery unless asked otherwise: the kernel waits for the
	 * page when a system call reads or writes managed memory (SIGBUS
	 * delivery would fail such a call with EFAULT). */
	if (!getenv("UFPAGER_DELIVERY"))
		prm.delivery = UFP_DELIVERY_HANDLER;
	guard++;
	err = ufp_pager_create(&prm, &p);
	guard--;
	if (err) {
		say("ufpager preload: no pager (%s); the program runs on the kernel's memory\n",
		    ufp_last_error());
		atomic_store_explicit(&state, ST_OFF, memory_order_release);
	} else {
		pager = p;
		if (route_malloc && !cur_heap()) {   /* past MAX_INHERITED: keeps the last */
			ufp_heap *h = NULL;

			guard++;
			err = ufp_heap_create(p, 0, &h);
			guard--;
			if (err)
				say("ufpager preload: no heap (%s); malloc stays the program's\n",
				    ufp_last_error());
			set_heap(h);
		}
		atomic_store_explicit(&state, ST_READY, memory_order_release);
	}
	pthread_mutex_unlock(&start_lock);
}

/* Service threads: a thread created inside a ufp_ call is the library's;
 * it runs with the guard set for its whole life. */
struct start_arg {
	void *(*fn)(void *);
	void *arg;
};

static void *guarded_start(void *v)
{
	struct start_arg a = *(struct start_arg *)v;

	__libc_free(v);
	guard = 1;
	return a.fn(a.arg);
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	resolve();
	if (guard) {
		struct start_arg *a = __libc_malloc(sizeof(*a));

		if (!a)
			return EAGAIN;
		a->fn = fn;
		a->arg = arg;
		int err = next_pthread_create(t, attr, guarded_start, a);
		if (err)
			__libc_free(a);
		return err;
	}
	return next_pthread_create(t, attr, fn, arg);
}

/* ---- the malloc family ------------------------------------------------------ */

/*
 * Three sources. Big blocks: the pager. Blocks the library itself asks
 * for (the guard is set): glibc's allocator under its internal names,
 * never the program's (a program's jemalloc may be inside its own lock,
 * mapping memory, when that mmap reaches the pager), tagged with a header
 * so that a free from anywhere (a thread-exit destructor of the library
 * runs unguarded) finds its way back. Everything else: the program's own
 * allocator, the next malloc after this library (glibc's, or a jemalloc
 * the program links).
 */
#define LIB_MAGIC 0x6c69627566706167ull   /* "libufpag" */
#define LIB_ALIGN 64ul
#define LIB_OFF 48ul   /* a library block is 48 mod 64: never page-aligned */

struct lib_hdr {
	uint64_t magic;
	uint64_t size;
};

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void *(*next_memalign)(size_t, size_t);

static void resolve_malloc(void)
{
	next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
	next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
}

static void *lib_alloc(size_t n, bool zero)
{
	char *base;
	struct lib_hdr *h;

	if (n > (1ull << 46))
		return NULL;
	base = __libc_memalign(LIB_ALIGN, n + LIB_OFF);
	if (!base)
		return NULL;
	if (zero)
		memset(base + LIB_OFF, 0, n);
	h = (struct lib_hdr *)(base + LIB_OFF) - 1;
	h->magic = LIB_MAGIC ^ (uintptr_t)h;
	h->size = n;
	return base + LIB_OFF;
}

/* p is not page-aligned, so the 16 bytes before it are in its own page. */
static struct lib_hdr *lib_hdr(void *p)
{
	struct lib_hdr *h;

	if (!p || ((uintptr_t)p & (LIB_ALIGN - 1)) != LIB_OFF)
		return NULL;
	h = (struct lib_hdr *)p - 1;
	return h->magic == (LIB_MAGIC ^ (uintptr_t)h) ? h : NULL;
}

static void lib_free(struct lib_hdr *h, void *p)
{
	h->magic = 0;
	__libc_free((char *)p - LIB_OFF);
}

/*
 * Library blocks with an alignment above 16 (the lz4 tier's 32K slabs, the
 * swap file's probe pages): glibc's memalign, their addresses in a table
 * (a header in front of a page-aligned pointer could not be read safely
 * for a pointer that is not ours). Few: one per slab.
 */
#define ALIGNED_SLOTS 16384u
static uintptr_t aligned_tab[ALIGNED_SLOTS];   /* 0 free, 1 deleted */
static pthread_mutex_t aligned_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long aligned_live;   /* relaxed: only skips the lookup when 0 */

static bool guard_aligned_blocks(void)
{
	return atomic_load_explicit(&aligned_live, memory_order_relaxed) != 0;
}

static unsigned aligned_slot(uintptr_t a, unsigned i)
{
	return (unsigned)(((a >> 4) * 0x9E3779B97F4A7C15ull) >> 40) + i;
}

static void *lib_alloc_aligned(size_t align, size_t n)
{
	void *p = __libc_memalign(align, n);
	unsigned i;

	if (!p)
		return NULL;
	pthread_mutex_lock(&aligned_lock);
	for (i = 0; i < ALIGNED_SLOTS; i++) {
		uintptr_t *e = &aligned_tab[aligned_slot((uintptr_t)p, i) % ALIGNED_SLOTS];

		if (*e <= 1) {
			*e = (uintptr_t)p;
			atomic_fetch_add_explicit(&aligned_live, 1, memory_order_relaxed);
			break;
		}
	}
	pthread_mutex_unlock(&aligned_lock);
	if (i == ALIGNED_SLOTS) {
		__libc_free(p);
		return NULL;
	}
	return p;
}

/* Takes p out of the table: true if it was a library block. */
static bool lib_aligned_take(void *p)
{
	bool found = false;

	if ((uintptr_t)p & 15)
		return false;
	pthread_mutex_lock(&aligned_lock);
	for (unsigned i = 0; i < ALIGNED_SLOTS; i++) {
		uintptr_t *e = &aligned_tab[aligned_slot((uintptr_t)p, i) % ALIGNED_SLOTS];

		if (*e == (uintptr_t)p) {
			*e = 1;
			atomic_fetch_sub_explicit(&aligned_live, 1, memory_order_relaxed);
			found = true;
			break;
		}
		if (!*e)
			break;
	}
	pthread_mutex_unlock(&aligned_lock);
	return found;
}

/*
 * The heap (ufp_heap_*, jemalloc arenas whose extents are pager memory),
 * created with the process's first pager. A fork child keeps it: the
 * library lets it go on serving from what it has and map new extents as
 * plain memory (include/ufpager.h), so the child's malloc keeps working
 * and its frees of the parent's blocks find them. Its calls run with the
 * guard set: jemalloc's own metadata mappings go to the kernel.
 */
/*
 * A fork child allocates from the heap it inherited (plain memory) until
 * it has taken CHILD_OWN_PAGER bytes, then from a pager and heap of its
 * own: a shell's short-lived subshells never pay for a pager (pyenv's
 * shim forks hundreds), a stress-ng worker does after its first blocks.
 */

/* The heap for a new block of n bytes in this thread now (starting the
 * pager, and the heap with it, on the first call), or NULL. */
static ufp_heap *heap_for(size_t n)
{
	if (guard || !route_malloc)
		return NULL;
	if (!cur_heap()) {
		if (ninherited &&
		    atomic_fetch_add_explicit(&child_bytes, n, memory_order_relaxed) + n <
		    CHILD_OWN_PAGER)
			return inherited[ninherited - 1];
		usable();
	}
	return cur_heap() ? cur_heap() : ninherited ? inherited[ninherited - 1] : NULL;
}

/* The heap that served p (this process's or an inherited one), or NULL. */
static ufp_heap *owner(const void *p)
{
	ufp_heap *cur = cur_heap();

	if (cur && ufp_heap_owns(cur, p))
		return cur;
	for (unsigned i = ninherited; i-- > 0;)
		if (ufp_heap_owns(inherited[i], p))
			return inherited[i];
	return NULL;
}

/* Usable size of any block; 0 for NULL. */
static size_t block_size(void *p)
{
	struct lib_hdr *lh;

	if (!p)
		return 0;
	ufp_heap *h = owner(p);
	if (h)
		return ufp_heap_usable_size(h, p);
	if ((lh = lib_hdr(p)))
		return lh->size;
	resolve();
	return next_usable(p);
}

void *malloc(size_t n)
{
	ufp_heap *h;
	void *p;

	if (guard || from_ldso(__builtin_return_address(0)))
		return lib_alloc(n, false);
	if ((h = heap_for(n))) {
		guard++;
		p = ufp_heap_malloc(h, n);
		guard--;
		return p;
	}
	resolve();
	return next_malloc(n);
}

void free(void *p)
{
	struct lib_hdr *lh;

	if (!p)
		return;
	ufp_heap *h = owner(p);
	if (h) {
		guard++;
		ufp_heap_free(h, p);
		guard--;
	} else if ((lh = lib_hdr(p))) {
		lib_free(lh, p);
	} else if (guard_aligned_blocks() && lib_aligned_take(p)) {
		__libc_free(p);
	} else {
		resolve();
		next_free(p);
	}
}

void *calloc(size_t n, size_t m)
{
	ufp_heap *h;
	size_t t;
	void *p;

	if (__builtin_mul_overflow(n, m, &t)) {
		errno = ENOMEM;
		return NULL;
	}
	if (guard || from_ldso(__builtin_return_address(0)))
		return lib_alloc(t, true);
	if ((h = heap_for(t))) {
		guard++;
		p = ufp_heap_calloc(h, n, m);
		guard--;
		return p;
	}
	resolve();
	return next_calloc(n, m);
}

size_t malloc_usable_size(void *p)
{
	return block_size(p);
}

void *realloc(void *p, size_t n)
{
	void *q;

	if (!p)
		return malloc(n);
	ufp_heap *h = owner(p);
	/* in its heap; in a fork child without a heap of its own yet, in the
	 * inherited one */
	if (h && (h == cur_heap() || !cur_heap())) {
		guard++;
		q = ufp_heap_realloc(h, p, n);
		guard--;
		return q;
	}
	if (h) {   /* inherited: the new block from this process's heap */
		size_t old = block_size(p);

		if (n == 0) {
			free(p);
			return NULL;
		}
		q = malloc(n);
		if (q) {
			memcpy(q, p, old < n ? old : n);
			free(p);
		}
		return q;
	}
	if (!lib_hdr(p)) {   /* the program's allocator's, from before the heap */
		if (from_ldso(__builtin_return_address(0)) && n) {   /* the DTV grows */
			size_t old = block_size(p);

			guard++;
			q = lib_alloc(n, false);
			guard--;
			if (q) {
				memcpy(q, p, old < n ? old : n);
				free(p);
			}
			return q;
		}
		resolve();
		return next_realloc(p, n);
	}
	if (n == 0) {
		free(p);
		return NULL;
	}
	/* a library block: stays one */
	size_t old = block_size(p);
	guard++;
	q = lib_alloc(n, false);
	guard--;
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

void *reallocarray(void *p, size_t n, size_t m)
{
	size_t t;

	if (__builtin_mul_overflow(n, m, &t)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, t);
}

void *memalign(size_t align, size_t n)
{
	ufp_heap *h;
	void *p;

	if (align <= 16)
		return malloc(n);
	if (guard)
		return lib_alloc_aligned(align, n);
	if ((h = heap_for(n))) {
		guard++;
		p = ufp_heap_aligned_alloc(h, align, n);
		guard--;
		return p;
	}
	resolve();
	return next_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	p = memalign(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	if (!align || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	return memalign(align, n);
}

void *valloc(size_t n)
{
	return memalign(PAGE, n);
}

void *pvalloc(size_t n)
{
	return memalign(PAGE, (n + PAGE - 1) & ~(PAGE - 1));
}

/* ---- mappings ---------------------------------------------------------------- */

static int ufp_prot(int prot)
{
	if (prot & PROT_WRITE)
		return UFP_PROT_ALL;
	return prot & PROT_READ ? UFP_PROT_READ : UFP_PROT_NONE;
}

static size_t pages(size_t len)
{
	return (len + PAGE - 1) & ~(PAGE - 1);
}

/* errno from a ufp_ result; returns -1 for the caller to hand back. */
static int fail(int err)
{
	errno = err == -EINVAL ? EINVAL : -err;
	return -1;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	const int not_ours = MAP_STACK | MAP_GROWSDOWN | MAP_HUGETLB;

	/* not ours, or PROT_EXEC over our range: the kernel maps it, and the
	 * library applies the UNMAP event for what it replaced */
	if (!len || !(flags & MAP_ANONYMOUS) || (flags & not_ours) ||
	    (flags & MAP_TYPE) != MAP_PRIVATE || (prot & ~(PROT_READ | PROT_WRITE)) ||
	    len < min_bytes || guard) {
		/* over our own range (a JVM commits its code cache PROT_EXEC
		 * into a reservation it got from us): ours goes first, cleanly;
		 * where that fails (holes) the library applies the UNMAP event */
		if (!guard && (flags & MAP_FIXED) && in_live(addr) && !((uintptr_t)addr & (PAGE - 1))) {
			guard++;
			ufp_unmap(pager, addr, pages(len));
			guard--;
		}
		return k_mmap(addr, len, prot, flags, fd, off);
	}
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		void *out;
		int err;

		if (!in_live(addr) || ((uintptr_t)addr & (PAGE - 1)))
			return k_mmap(addr, len, prot, flags, fd, off);
		guard++;
		err = ufp_map(pager, addr, pages(len), ufp_prot(prot), UFP_MAP_FIXED, &out);
		if (err == -EEXIST && !(flags & MAP_FIXED_NOREPLACE)) {
			/* MAP_FIXED over our own memory: fresh zero pages */
			err = ufp_protect(pager, addr, pages(len), ufp_prot(prot));
			if (!err)
				err = ufp_advise(pager, addr, pages(len), UFP_ADV_DONTNEED);
			out = addr;
		}
		if (!err && (flags & MAP_POPULATE))
			ufp_advise(pager, out, pages(len), UFP_ADV_WILLNEED);
		guard--;
		if (err) {
			fail(err == -EINVAL ? -ENOMEM : err);
			return MAP_FAILED;
		}
		return out;
	}
	if (usable()) {
		void *out;
		int err;

		guard++;
		err = ufp_map(pager, NULL, pages(len), ufp_prot(prot), 0, &out);
		if (!err && (flags & MAP_POPULATE))
			ufp_advise(pager, out, pages(len), UFP_ADV_WILLNEED);
		guard--;
		if (!err) {
			span_note(&live, out, pages(len));
			return out;
		}
		/* arena full or the like: the kernel's memory */
	}
	return k_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

int munmap(void *addr, size_t len)
{
	if (!guard && in_live(addr) && !((uintptr_t)addr & (PAGE - 1)) && len) {
		guard++;
		int err = ufp_unmap(pager, addr, pages(len));
		guard--;
		if (!err)
			return 0;
		/* holes in the range (munmap allows them, ufp_unmap does not):
		 * the kernel unmaps, the library applies the UNMAP event */
	}
	return k_munmap(addr, len);
}

int mprotect(void *addr, size_t len, int prot)
{
	if (!guard && in_live(addr) && !((uintptr_t)addr & (PAGE - 1)) && len &&
	    !(prot & ~(PROT_READ | PROT_WRITE))) {
		guard++;
		int err = ufp_protect(pager, addr, pages(len), ufp_prot(prot));
		guard--;
		return err ? fail(err) : 0;
	}
	if (!guard && in_live(addr) && (prot & PROT_EXEC)) {
		errno = EACCES;   /* pager memory is never executable */
		return -1;
	}
	return k_mprotect(addr, len, prot);
}

int madvise(void *addr, size_t len, int advice)
{
	int adv;

	if (guard || !in_live(addr) || ((uintptr_t)addr & (PAGE - 1)) || !len)
		return k_madvise(addr, len, advice);
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_FREE:
	case MADV_REMOVE:
		adv = UFP_ADV_DONTNEED;
		break;
	case MADV_WILLNEED:
		adv = UFP_ADV_WILLNEED;
		break;
	case MADV_PAGEOUT:
		adv = UFP_ADV_PAGEOUT;
		break;
	case MADV_NORMAL:
	case MADV_RANDOM:
	case MADV_SEQUENTIAL:
	case MADV_COLD:
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_DONTDUMP:
	case MADV_DODUMP:
	case MADV_DONTFORK:
	case MADV_DOFORK:
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE:
		return 0;   /* hints the pager has no use for */
	default:
		errno = EINVAL;
		return -1;
	}
	guard++;
	int err = ufp_advise(pager, addr, pages(len), adv);
	guard--;
	if (err == -EINVAL && adv == UFP_ADV_PAGEOUT)
		return 0;   /* PAGEOUT without a budget: a hint */
	return err ? fail(err) : 0;
}

void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *fixed = NULL;
	va_list ap;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		fixed = va_arg(ap, void *);
	va_end(ap);
	resolve();
	if (guard || !in_live(old) || (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) ||
	    ((uintptr_t)old & (PAGE - 1)) || !newlen)
		return next_mremap(old, oldlen, newlen, flags, fixed);

	size_t ol = pages(oldlen), nl = pages(newlen);
	void *out = old;
	int err = 0;

	guard++;
	if (nl < ol) {
		err = ufp_unmap(pager, (char *)old + nl, ol - nl);
	} else if (nl > ol) {
		/* in place when the space after it is free; the prot of the
		 * grown tail is read-write (the pager does not say what the
		 * range had: programs that mremap grow heaps) */
		void *tail;

		err = ufp_map(pager, (char *)old + ol, nl - ol, UFP_PROT_ALL, UFP_MAP_FIXED, &tail);
		if (err == -EEXIST || err == -EINVAL || err == -ENOMEM) {
			if (!(flags & MREMAP_MAYMOVE)) {
				err = -ENOMEM;
			} else {
				err = ufp_map(pager, NULL, nl, UFP_PROT_ALL, 0, &out);
				if (!err) {
					span_note(&live, out, nl);
					guard--;   /* the copy faults like the program would */
					memcpy(out, old, ol);
					guard++;
					ufp_unmap(pager, old, ol);
				}
			}
		} else if (!err) {
			span_note(&live, tail, nl - ol);
		}
	}
	guard--;
	if (err) {
		fail(err);
		return MAP_FAILED;
	}
	return out;
}

/* ---- start and exit ------------------------------------------------------------ */

static void strip_from_ld_preload(void)
{
	const char *cur = getenv("LD_PRELOAD");
	char buf[4096], *save = NULL, *tok;
	size_t o = 0;

	if (!cur || strlen(cur) >= sizeof(buf))
		return;
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", cur);
	buf[0] = '\0';
	for (tok = strtok_r(copy, ": ", &save); tok; tok = strtok_r(NULL, ": ", &save)) {
		if (strstr(tok, "libufpager_preload"))
			continue;
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", o ? ":" : "", tok);
	}
	if (o)
		setenv("LD_PRELOAD", buf, 1);
	else
		unsetenv("LD_PRELOAD");
}

__attribute__((constructor)) static void preload_init(void)
{
	const char *s = getenv("UFPAGER_PRELOAD_MIN");

	resolve();
	if (s) {
		char *end;
		unsigned long long v = strtoull(s, &end, 10);

		if (*end == 'K' || *end == 'k')
			v <<= 10;
		else if (*end == 'M' || *end == 'm')
			v <<= 20;
		if (v >= PAGE)
			min_bytes = v;
		else
			say("ufpager preload: UFPAGER_PRELOAD_MIN=%s: below a page, kept %zu\n",
			    s, min_bytes);
	}
	s = getenv("UFPAGER_PRELOAD_MALLOC");
	if (s && !strcmp(s, "0"))
		route_malloc = false;
	s = getenv("UFPAGER_PRELOAD_EXEC");
	if (s && !strcmp(s, "0"))
		strip_from_ld_preload();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	/* the pager starts on the first large allocation (usable()): a
	 * program that never makes one (a shell between `run` and the
	 * program) pays nothing */
	s = getenv("UFPAGER_PRELOAD");
	if (s && !strcmp(s, "0"))
		atomic_store_explicit(&state, ST_OFF, memory_order_release);
	ldso_text_get(&ldso);
	inited = true;
}

/* One JSON line per process that had a pager, appended with one write. */
static void write_stats(void)
{
	const char *path = getenv("UFPAGER_STATS_FILE");
	static char buf[32768];
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	char exe[256] = "";
	FILE *f;
	int fd;

	if (!path || !*path || atomic_load_explicit(&state, memory_order_acquire) != ST_READY)
		return;
	guard++;
	if (ufp_stats_get(pager, &st))
		goto out;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	f = fmemopen(buf, sizeof(buf), "w");
	if (!f)
		goto out;
	fprintf(f, "{\"pid\":%d,\"exe\":\"%s\",\"stats\":", (int)getpid(), exe);
	ufp_stats_json(&st, f);   /* ends with a newline */
	long len = ftell(f);
	fclose(f);
	if (len <= 2 || (size_t)len >= sizeof(buf))
		goto out;
	/* replace the newline with "}\n" */
	buf[len - 1] = '}';
	buf[len] = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)!write(fd, buf, (size_t)len + 1);
		close(fd);
	}
out:
	guard--;
}

__attribute__((destructor)) static void preload_fini(void)
{
	write_stats();
}

/*
 * A process that ends with _exit (a fork child: stress-ng's workers,
 * redis's save child) runs no destructor: its statistics line is written
 * here, and its segments (the library's destructor removes them on exit)
 * are removed here.
 */
static void exit_now(int status) __attribute__((noreturn));
static void exit_now(int status)
{
	if (atomic_load_explicit(&state, memory_order_acquire) == ST_READY) {
		char pat[64];
		glob_t g;

		write_stats();
		snprintf(pat, sizeof(pat), UFP_SNAPSHOT_PATTERN, (int)getpid());
		guard++;
		if (!glob(pat, 0, NULL, &g)) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		}
		guard--;
	}
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

void _exit(int status)
{
	exit_now(status);
}

void _Exit(int status)
{
	exit_now(status);
}
