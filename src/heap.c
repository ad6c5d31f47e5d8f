/* SPDX-License-Identifier: MIT */
/*
 * heap.c - ufp_heap_*: objects of any size on pager memory, served by
 * jemalloc 5.3.
 *
 * jemalloc is a private copy linked into the library (Debian's
 * libjemalloc_pic.a, its entry points renamed ufp_je_*, everything else
 * made local: cmake/jemalloc_private.sh), so the process's malloc stays
 * what it was. Each heap is one jemalloc arena created with
 * experimental.arenas_create_ext: its extent hooks take memory from the
 * pager, and its metadata (metadata_use_hooks = false) stays ordinary
 * memory, so jemalloc never faults on its own bookkeeping.
 *
 *   extent hook      ufpager
 *   alloc            ufp_map (UFP_MAP_FIXED when jemalloc names the address;
 *                    over-map and trim for alignments above a page)
 *   dalloc, destroy  ufp_unmap
 *   commit           nothing to do: pager memory is always usable
 *   decommit         refused: jemalloc purges instead
 *   purge_forced     ufp_advise(DONTNEED): the next touch reads zeros
 *   purge_lazy       none (there is no lazy discard; jemalloc skips it)
 *   split, merge     nothing to do: every ufp_ call works on ranges
 *
 * Thread caches: MALLOCX_ARENA alone would share the thread's automatic
 * jemalloc cache between arenas (an object of one heap could come back
 * from another), so every (thread, heap) pair has an explicit tcache
 * (tcache.create), found through this file's one TLS pointer. A thread's
 * caches are destroyed at its exit; a heap's when it is destroyed.
 *
 * Lock order: heaps_lock, then jemalloc's locks, then the pager's (the
 * hooks), then slab.c's. The hooks never take heaps_lock, and nothing the
 * library does under a pager lock allocates from a heap (slab.c).
 * pthread_atfork handlers keep that order across fork: ours is registered
 * after jemalloc's (its prepare runs first), fork.c's before it.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <jemalloc/jemalloc.h>

#include "base.h"
#include "sys.h"
#include "rcu.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "pagers.h"
#include "reclaim.h"
#include "sandbox.h"

/* The private jemalloc (cmake/jemalloc_private.sh renames them). */
void *ufp_je_mallocx(size_t size, int flags);
void *ufp_je_rallocx(void *ptr, size_t size, int flags);
size_t ufp_je_sallocx(const void *ptr, int flags);
void ufp_je_dallocx(void *ptr, int flags);
int ufp_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* jemalloc's arena_config_t (experimental.arenas_create_ext, 5.3). */
struct je_arena_config {
	extent_hooks_t *extent_hooks;
	bool metadata_use_hooks;
};

#define HEAP_SLOTS 64               /* heaps with thread caches */
#define TLS_DEAD ((struct heap_tls *)1)

struct ufp_heap {
	extent_hooks_t hooks;            /* first: the hooks get this pointer back */
	struct ufp_pager *p;             /* NULL: kernel memory */
	uintptr_t lo, hi;                /* the pager's arena (ufp_heap_owns) */
	unsigned arena;                  /* jemalloc arena index */
	int flags_none;                  /* MALLOCX_ARENA | MALLOCX_TCACHE_NONE */
	unsigned slot;                   /* HEAP_SLOTS: no thread caches */
	uint32_t gen;                    /* unique per heap: stale TLS entries differ */
	/* relaxed counters (ufp_heap_stats_get) */
	_Atomic uint64_t mapped, maps, unmaps, purges, tcaches;
};

/* One per thread that used a heap with a slot; on heaps_list. */
struct heap_tls {
	_Atomic uint32_t gen[HEAP_SLOTS];   /* == the heap's gen while tc[] is live */
	int flags[HEAP_SLOTS];              /* mallocx flags for that heap */
	unsigned tc[HEAP_SLOTS];            /* explicit tcache, or TC_NONE */
	struct heap_tls *next, **pprev;
};
#define TC_NONE UINT32_MAX

static __thread struct heap_tls *tls_heap __attribute__((tls_model("initial-exec")));

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ufp_heap *slots[HEAP_SLOTS];   /* heaps_lock */
static struct heap_tls *tls_list;            /* heaps_lock */
static uint32_t next_gen = 1;                /* heaps_lock */
static pthread_key_t heap_key;
static pthread_once_t heap_once = PTHREAD_ONCE_INIT;
static pthread_once_t heap_fork_once = PTHREAD_ONCE_INIT;

/* Fork children map new extents as plain memory inside the arena, from
 * the top down (the pager is inert there): a cursor per pager slot. */
static pthread_mutex_t child_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct ufp_pager *p;
	uintptr_t cursor;
} child_cursor[UFP_MAX_PAGERS];   /* child_lock */

/* ======================================================================
 * Extent hooks: called by jemalloc, maybe under its arena locks.
 * ====================================================================== */

static struct ufp_heap *hook_heap(extent_hooks_t *e)
{
	return (struct ufp_heap *)e;
}

static void *child_alloc(struct ufp_heap *h, size_t size, size_t align)
{
	struct ufp_pager *p = h->p;
	uintptr_t end, s = 0, *cur = NULL;
	void *m = NULL;

	pthread_mutex_lock(&child_lock);
	for (unsigned i = 0; i < UFP_MAX_PAGERS && !cur; i++)
		if (child_cursor[i].p == p || !child_cursor[i].p) {
			child_cursor[i].p = p;
			cur = &child_cursor[i].cursor;
		}
	if (!cur) {
		pthread_mutex_unlock(&child_lock);
		return NULL;
	}
	end = *cur ? *cur : p->arena_end;
	pager_read_lock(p);
	while (end - p->arena_base >= size + align) {
		struct ufp_region *r, *n;

		s = (end - size) & ~(uintptr_t)(align - 1);
		r = region_tree_lookup(&p->tree, s);
		n = region_tree_next(&p->tree, s);
		if (r) {
			end = region_start(r);
		} else if (n && region_start(n) < s + size) {
			end = region_start(n);
		} else {
			m = (void *)s;
			break;
		}
	}
	pager_read_unlock(p);
	if (m && sys_mmap(m, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		m = NULL;
	if (m)
		*cur = s;
	pthread_mutex_unlock(&child_lock);
	return m;
}

static void *hk_alloc(extent_hooks_t *e, void *new_addr, size_t size, size_t align,
		      bool *zero, bool *commit, unsigned ind)
{
	struct ufp_heap *h = hook_heap(e);
	void *out = NULL;

	if (align < UFP_PAGE_SIZE)
		align = UFP_PAGE_SIZE;
	if (h->p->forked_child) {
		if (new_addr)
			return NULL;
		out = child_alloc(h, size, align);
	} else if (new_addr) {
		if (ufp_map(h->p, new_addr, size, UFP_PROT_ALL, UFP_MAP_FIXED, &out))
			return NULL;
	} else if (align == UFP_PAGE_SIZE) {
		if (ufp_map(h->p, NULL, size, UFP_PROT_ALL, 0, &out))
			return NULL;
	} else {
		/* over-map, keep the aligned part */
		size_t len = size + align - UFP_PAGE_SIZE;
		uintptr_t m, a;

		if (len < size || ufp_map(h->p, NULL, len, UFP_PROT_ALL, 0, &out))
			return NULL;
		m = (uintptr_t)out;
		a = (m + align - 1) & ~(uintptr_t)(align - 1);
		if (a > m)
			ufp_unmap(h->p, out, a - m);
		if (a + size < m + len)
			ufp_unmap(h->p, (void *)(a + size), m + len - a - size);
		out = (void *)a;
	}
	if (!out)
		return NULL;
	*zero = true;     /* fresh pager memory reads zeros */
	*commit = true;
	/* relaxed: counters */
	atomic_fetch_add_explicit(&h->mapped, size, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->maps, 1, memory_order_relaxed);
	return out;
}

/* false: unmapped; true: keep it (jemalloc retains the range). */
static bool hk_dalloc(extent_hooks_t *e, void *addr, size_t size, bool committed,
		      unsigned ind)
{
	struct ufp_heap *h = hook_heap(e);

	if (h->p->forked_child || ufp_unmap(h->p, addr, size))
		return true;
	/* relaxed: counters */
	atomic_fetch_sub_explicit(&h->mapped, size, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->unmaps, 1, memory_order_relaxed);
	return false;
}

static void hk_destroy(extent_hooks_t *e, void *addr, size_t size, bool committed,
		       unsigned ind)
{
	hk_dalloc(e, addr, size, committed, ind);
}

static bool hk_commit(extent_hooks_t *e, void *addr, size_t size, size_t off,
		      size_t len, unsigned ind)
{
	return false;
}

static bool hk_decommit(extent_hooks_t *e, void *addr, size_t size, size_t off,
			size_t len, unsigned ind)
{
	return true;
}

static bool hk_purge_forced(extent_hooks_t *e, void *addr, size_t size, size_t off,
			    size_t len, unsigned ind)
{
	struct ufp_heap *h = hook_heap(e);
	char *a = (char *)addr + off;
	bool fail;

	if (h->p->forked_child)   /* plain memory in the child */
		fail = sys_madvise(a, len, MADV_DONTNEED) != 0;
	else
		fail = ufp_advise(h->p, a, len, UFP_ADV_DONTNEED) != 0;
	if (!fail)   /* relaxed: a counter */
		atomic_fetch_add_explicit(&h->purges, 1, memory_order_relaxed);
	return fail;
}

static bool hk_split(extent_hooks_t *e, void *addr, size_t size, size_t a, size_t b,
		     bool committed, unsigned ind)
{
	return false;
}

static bool hk_merge(extent_hooks_t *e, void *a, size_t sa, void *b, size_t sb,
		     bool committed, unsigned ind)
{
	return false;
}

static const extent_hooks_t pager_hooks = {
	.alloc = hk_alloc,
	.dalloc = hk_dalloc,
	.destroy = hk_destroy,
	.commit = hk_commit,
	.decommit = hk_decommit,
	.purge_lazy = NULL,
	.purge_forced = hk_purge_forced,
	.split = hk_split,
	.merge = hk_merge,
};

/* ======================================================================
 * Thread caches (heaps_lock for the lists; the TLS block is its thread's).
 * ====================================================================== */

static void tcache_destroy(unsigned tc)
{
	if (tc != TC_NONE)
		ufp_je_mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc));
}

/* Thread exit: drop the thread's caches of live heaps. Calls after this
 * (other TLS destructors) run without a cache. */
static void heap_thread_exit(void *arg)
{
	struct heap_tls *t = arg;

	pthread_mutex_lock(&heaps_lock);
	for (unsigned s = 0; s < HEAP_SLOTS; s++) {
		/* relaxed: written under heaps_lock, which we hold */
		uint32_t g = atomic_load_explicit(&t->gen[s], memory_order_relaxed);

		if (g && slots[s] && slots[s]->gen == g) {
			tcache_destroy(t->tc[s]);
			atomic_fetch_sub_explicit(&slots[s]->tcaches, 1, memory_order_relaxed);
		}
	}
	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	pthread_mutex_unlock(&heaps_lock);
	tls_heap = TLS_DEAD;
	slab_free(t);
}

static void heap_prefork(void)
{
	pthread_mutex_lock(&heaps_lock);
	pthread_mutex_lock(&child_lock);
}

static void heap_postfork(void)
{
	pthread_mutex_unlock(&child_lock);
	pthread_mutex_unlock(&heaps_lock);
}

static void heap_fork_setup(void)
{
	pthread_atfork(heap_prefork, heap_postfork, heap_postfork);
}

static void heap_setup(void)
{
	pthread_key_create(&heap_key, heap_thread_exit);
}

/* The mallocx flags of h for this thread: make its cache (once per
 * thread and heap) and register the thread with the pager. */
static __attribute__((noinline)) int heap_flags_slow(struct ufp_heap *h)
{
	struct heap_tls *t = tls_heap;
	unsigned tc = TC_NONE, s = h->slot;
	size_t sz = sizeof(tc);
	int flags;

	/* No cache for the library's own service threads (their setup may
	 * allocate through a heap that serves the process's malloc): a cache
	 * would be flushed at their exit, under their seccomp filter, and the
	 * flush may run the extent hooks (ufp_unmap, UFFDIO_*), which their
	 * filter forbids. They allocate nothing once their filter is loaded
	 * (sandbox.c). */
	if (t == TLS_DEAD || s >= HEAP_SLOTS || (h->p && h->p->forked_child) ||
	    sandbox_is_service_thread())
		return h->flags_none;
	if (!t) {
		t = slab_zalloc(sizeof(*t));
		if (!t)
			return h->flags_none;
		pthread_mutex_lock(&heaps_lock);
		t->next = tls_list;
		t->pprev = &tls_list;
		if (tls_list)
			tls_list->pprev = &t->next;
		tls_list = t;
		pthread_mutex_unlock(&heaps_lock);
		tls_heap = t;
		pthread_setspecific(heap_key, t);
	}
	if (ufp_je_mallctl("tcache.create", &tc, &sz, NULL, 0))
		tc = TC_NONE;
	flags = tc == TC_NONE ? h->flags_none : (int)MALLOCX_ARENA(h->arena) | MALLOCX_TCACHE(tc);
	pthread_mutex_lock(&heaps_lock);
	t->tc[s] = tc;
	t->flags[s] = flags;
	/* relaxed: read by this thread, and by others under heaps_lock */
	atomic_store_explicit(&t->gen[s], h->gen, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->tcaches, 1, memory_order_relaxed);
	pthread_mutex_unlock(&heaps_lock);
	/* the thread's faults on heap memory: RCU fast path, an I/O context */
	if (h->p) {
		thread_enter(h->p);
		if (!thread_is_service())
			reclaim_ctx_ensure(h->p, thread_stats(h->p, true));
	}
	return flags;
}

static inline int heap_flags(struct ufp_heap *h)
{
	struct heap_tls *t = tls_heap;
	unsigned s = h->slot;

	/* relaxed: this thread's own entry (heap destroy changes it only
	 * when no call on the heap runs) */
	if (ufp_likely(t > TLS_DEAD && s < HEAP_SLOTS &&
		       atomic_load_explicit(&t->gen[s], memory_order_relaxed) == h->gen))
		return t->flags[s];
	return heap_flags_slow(h);
}

/* ======================================================================
 * Public API.
 * ====================================================================== */

UFP_API int ufp_heap_create(ufp_pager *p, unsigned flags, ufp_heap **out)
{
	struct ufp_heap *h;
	size_t sz = sizeof(unsigned);
	int err;

	ufp_clear_error();
	if (out)
		*out = NULL;
	if (!out || flags)
		return ufp_error(-EINVAL, "ufp_heap_create: %s", !out ? "NULL out" :
				 "unknown flags");
	if (p && p->forked_child)
		return ufp_error(-ECHILD, "ufp_heap_create: the pager was inherited across "
				 "fork(); it is inert in the child");
	h = ufp_cacheline_zalloc(sizeof(*h));
	if (!h)
		return ufp_error(-ENOMEM, "ufp_heap_create: out of memory");
	pthread_once(&heap_once, heap_setup);
	/* fork.c's handlers before jemalloc's (which its first call
	 * registers), whatever kind of heap comes first: their prepare runs
	 * after jemalloc's (the lock order) */
	fork_handlers_install();
	h->p = p;
	h->slot = HEAP_SLOTS;
	if (p) {
		struct je_arena_config cfg = { .extent_hooks = &h->hooks,
					       .metadata_use_hooks = false };

		h->hooks = pager_hooks;
		/* liburcu makes its call_rcu worker on the first call_rcu, with
		 * malloc and pthread_create: here, not inside a hook (where the
		 * malloc could be this heap's, under its own arena lock) */
		urcu_memb_get_default_call_rcu_data();
		h->lo = p->arena_base;
		h->hi = p->arena_end;
		err = ufp_je_mallctl("experimental.arenas_create_ext", &h->arena, &sz,
				     &cfg, sizeof(cfg));
	} else {
		err = ufp_je_mallctl("arenas.create", &h->arena, &sz, NULL, 0);
	}
	if (err) {
		slab_free(h);
		return ufp_error(-err, "ufp_heap_create: jemalloc cannot create an arena: %s",
				 strerror(err));
	}
	pthread_once(&heap_fork_once, heap_fork_setup);
	h->flags_none = (int)MALLOCX_ARENA(h->arena) | MALLOCX_TCACHE_NONE;
	pthread_mutex_lock(&heaps_lock);
	h->gen = next_gen++;
	if (!next_gen)
		next_gen = 1;
	for (unsigned s = 0; s < HEAP_SLOTS; s++)
		if (!slots[s]) {
			slots[s] = h;
			h->slot = s;
			break;
		}
	pthread_mutex_unlock(&heaps_lock);
	*out = h;
	return 0;
}

UFP_API int ufp_heap_destroy(ufp_heap *h)
{
	char name[64];

	if (!h)
		return -EINVAL;
	ufp_clear_error();
	pthread_mutex_lock(&heaps_lock);
	if (h->slot < HEAP_SLOTS) {
		for (struct heap_tls *t = tls_list; t; t = t->next)
			/* relaxed: heaps_lock orders it */
			if (atomic_load_explicit(&t->gen[h->slot], memory_order_relaxed) == h->gen) {
				tcache_destroy(t->tc[h->slot]);
				atomic_store_explicit(&t->gen[h->slot], 0, memory_order_relaxed);
			}
		slots[h->slot] = NULL;
	}
	pthread_mutex_unlock(&heaps_lock);
	snprintf(name, sizeof(name), "arena.%u.destroy", h->arena);
	ufp_je_mallctl(name, NULL, NULL, NULL, 0);
	slab_free(h);
	return 0;
}

UFP_API void *ufp_heap_malloc(ufp_heap *h, size_t size)
{
	void *p = ufp_je_mallocx(size ? size : 1, heap_flags(h));

	if (ufp_unlikely(!p))
		errno = ENOMEM;
	return p;
}

UFP_API void *ufp_heap_calloc(ufp_heap *h, size_t n, size_t size)
{
	size_t bytes;
	void *p;

	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	bytes = n * size;
	p = ufp_je_mallocx(bytes ? bytes : 1, heap_flags(h) | MALLOCX_ZERO);
	if (ufp_unlikely(!p))
		errno = ENOMEM;
	return p;
}

UFP_API void *ufp_heap_realloc(ufp_heap *h, void *ptr, size_t size)
{
	void *p;

	if (!ptr)
		return ufp_heap_malloc(h, size);
	if (!size) {
		ufp_heap_free(h, ptr);
		return NULL;
	}
	p = ufp_je_rallocx(ptr, size, heap_flags(h));
	if (ufp_unlikely(!p))
		errno = ENOMEM;
	return p;
}

UFP_API void *ufp_heap_aligned_alloc(ufp_heap *h, size_t alignment, size_t size)
{
	void *p;

	if (!alignment || (alignment & (alignment - 1)) || alignment > ((size_t)1 << 40)) {
		errno = EINVAL;
		return NULL;
	}
	p = ufp_je_mallocx(size ? size : 1, heap_flags(h) | MALLOCX_ALIGN(alignment));
	if (ufp_unlikely(!p))
		errno = ENOMEM;
	return p;
}

UFP_API void ufp_heap_free(ufp_heap *h, void *ptr)
{
	if (ptr)
		ufp_je_dallocx(ptr, heap_flags(h));
}

UFP_API size_t ufp_heap_usable_size(ufp_heap *h, const void *ptr)
{
	return ptr ? ufp_je_sallocx(ptr, 0) : 0;
}

UFP_API int ufp_heap_owns(const ufp_heap *h, const void *ptr)
{
	return h && h->p && (uintptr_t)ptr >= h->lo && (uintptr_t)ptr < h->hi;
}

static uint64_t arena_stat(unsigned arena, const char *leaf)
{
	char name[96];
	size_t v = 0, sz = sizeof(v);

	snprintf(name, sizeof(name), "stats.arenas.%u.%s", arena, leaf);
	return ufp_je_mallctl(name, &v, &sz, NULL, 0) ? 0 : v;
}

UFP_API int ufp_heap_stats_get(ufp_heap *h, struct ufp_heap_stats *out)
{
	struct ufp_heap_stats st = { .size = sizeof(st), .version = UFP_HEAP_STATS_VERSION };
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch);

	ufp_clear_error();
	if (!h || !out || out->version != UFP_HEAP_STATS_VERSION ||
	    out->size < offsetof(struct ufp_heap_stats, reserved))
		return ufp_error(-EINVAL, "ufp_heap_stats_get: NULL argument, or a size or "
				 "version this library does not know");
	ufp_je_mallctl("epoch", &epoch, &sz, &epoch, sz);
	st.allocated = arena_stat(h->arena, "small.allocated") +
		       arena_stat(h->arena, "large.allocated");
	st.active = arena_stat(h->arena, "pactive") * UFP_PAGE_SIZE;
	/* relaxed: counters */
	st.mapped = h->p ? atomic_load_explicit(&h->mapped, memory_order_relaxed) :
			   arena_stat(h->arena, "mapped");
	st.extent_maps = atomic_load_explicit(&h->maps, memory_order_relaxed);
	st.extent_unmaps = atomic_load_explicit(&h->unmaps, memory_order_relaxed);
	st.purges = atomic_load_explicit(&h->purges, memory_order_relaxed);
	st.thread_caches = atomic_load_explicit(&h->tcaches, memory_order_relaxed);
	st.size = out->size < sizeof(st) ? out->size : (uint32_t)sizeof(st);
	memcpy(out, &st, st.size);
	return 0;
}
