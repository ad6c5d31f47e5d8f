/* SPDX-License-Identifier: MIT */
/*
 * slab.c - the library's own memory: every object the library allocates
 * (pagers, regions, tree nodes, per-thread blocks, counter blocks, event
 * nodes, swap metadata) comes from here, never from the process's malloc.
 *
 * Why: the process's malloc may be served by a ufpager heap (heap.c, or a
 * preload that forwards malloc to one). The heap's extent hooks call
 * ufp_map / ufp_unmap / ufp_advise while jemalloc holds an arena lock; if
 * those calls (or a fault, or a service thread holding a pager lock)
 * called malloc, malloc would re-enter the heap and wait for the lock its
 * own thread holds (the deadlock issue 13 reports from redis-server).
 *
 * Small objects (up to 32 KiB) live in size-class slabs: 256 KiB chunks
 * carved from one reserved range of address space (mprotect'ed in as
 * needed), a free list per class. A pointer inside the range is a slab
 * object; its chunk's header names the class. Classes that are multiples
 * of 64 are cache-line aligned; power-of-two classes from 4 KiB up are
 * aligned to their size. Larger or more aligned objects are mappings of
 * their own, with a header page in front. Chunks are never returned (the
 * library's metadata, like the kernel's slabs without a shrinker).
 *
 * Concurrency: a mutex per class and one for the chunk cursor; normal
 * context only (never from a signal handler). pthread_atfork takes every
 * lock before fork, so a child can allocate. The lowest layer: calls only
 * libc.
 *
 * Sanitizer builds (UFP_SANITIZE_BUILD) use libc's allocator instead, so
 * that ASan checks the library's objects as before.
 */
#include <pthread.h>
#include <stddef.h>
#include <sys/mman.h>

#include "base.h"
#include "sys.h"

#define SLAB_CHUNK (256u * 1024)
#define SLAB_RESERVE (4ull << 30)       /* address space for chunks */
#define SLAB_HDR 64u                    /* chunk header: the first cache line */
#define SLAB_MAGIC 0x75667073u          /* "ufps" */
#define LARGE_MAGIC 0x7566706cu         /* "ufpl" */

#ifndef UFP_SANITIZE_BUILD

static const uint32_t class_size[] = {
	16, 32, 48, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072,
	4096, 8192, 16384, 32768,
};
#define NCLASSES (sizeof(class_size) / sizeof(class_size[0]))
#define SMALL_MAX 32768u

struct chunk_hdr {
	uint32_t magic;
	uint32_t cls;
};

struct large_hdr {            /* the last 64 bytes before a large object */
	uint32_t magic;
	uint32_t pad;
	void *base;               /* the whole mapping */
	size_t len;
	size_t size;              /* usable bytes from the object on */
};

struct slab_class {
	pthread_mutex_t lock;
	void *free;               /* freed objects, linked through their first word */
	char *carve, *carve_end;  /* the class's current chunk, not yet handed out */
} ufp_cacheline_aligned;

static struct slab_class classes[NCLASSES];
static pthread_mutex_t chunk_lock = PTHREAD_MUTEX_INITIALIZER;
static char *res_base, *res_next, *res_end;
static pthread_once_t slab_once = PTHREAD_ONCE_INIT;

static void slab_prefork(void)
{
	pthread_mutex_lock(&chunk_lock);
	for (unsigned i = 0; i < NCLASSES; i++)
		pthread_mutex_lock(&classes[i].lock);
}

static void slab_postfork(void)
{
	for (unsigned i = NCLASSES; i-- > 0;)
		pthread_mutex_unlock(&classes[i].lock);
	pthread_mutex_unlock(&chunk_lock);
}

static void slab_init(void)
{
	void *m;

	for (unsigned i = 0; i < NCLASSES; i++)
		pthread_mutex_init(&classes[i].lock, NULL);
	/* CHUNK-aligned: a chunk's header is at (ptr - base) & ~(CHUNK - 1) */
	m = sys_mmap(NULL, SLAB_RESERVE + SLAB_CHUNK, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m != MAP_FAILED) {
		uintptr_t a = ((uintptr_t)m + SLAB_CHUNK - 1) & ~(uintptr_t)(SLAB_CHUNK - 1);

		if (a > (uintptr_t)m)
			sys_munmap(m, a - (uintptr_t)m);
		sys_munmap((char *)a + SLAB_RESERVE, (uintptr_t)m + SLAB_CHUNK - a);
		res_base = res_next = (char *)a;
		res_end = res_base + SLAB_RESERVE;
	}
	/* registered before the fork handlers of pagers and heaps (their
	 * first object comes from here): prepare handlers run last-registered
	 * first, so our locks are taken after theirs, which allocate */
	pthread_atfork(slab_prefork, slab_postfork, slab_postfork);
}

/* The smallest class that holds size bytes at alignment align, or -1. */
static int class_of(size_t size, size_t align)
{
	if (size > SMALL_MAX || align > SMALL_MAX)
		return -1;
	for (unsigned i = 0; i < NCLASSES; i++) {
		uint32_t c = class_size[i];

		if (c < size || c < align)
			continue;
		if (align <= 16 || (align <= 64 && c % 64 == 0) ||
		    (c >= 4096 && !(c & (c - 1))))
			return (int)i;
	}
	return -1;
}

/* The first object's offset in a chunk of class c. */
static size_t first_offset(uint32_t c)
{
	return c >= 4096 && !(c & (c - 1)) ? c : SLAB_HDR;
}

static char *chunk_new(unsigned cls)
{
	char *c = NULL;

	pthread_mutex_lock(&chunk_lock);
	if (res_next && res_next < res_end &&
	    !sys_mprotect(res_next, SLAB_CHUNK, PROT_READ | PROT_WRITE)) {
		c = res_next;
		res_next += SLAB_CHUNK;
	}
	pthread_mutex_unlock(&chunk_lock);
	if (c)
		*(struct chunk_hdr *)c = (struct chunk_hdr){ .magic = SLAB_MAGIC, .cls = cls };
	return c;
}

static void *small_alloc(unsigned cls)
{
	struct slab_class *sc = &classes[cls];
	uint32_t size = class_size[cls];
	void *obj = NULL;

	pthread_mutex_lock(&sc->lock);
	if (sc->free) {
		obj = sc->free;
		sc->free = *(void **)obj;
	} else {
		if (!sc->carve || sc->carve_end - sc->carve < (ptrdiff_t)size) {
			char *c = chunk_new(cls);

			if (c) {
				sc->carve = c + first_offset(size);
				sc->carve_end = c + SLAB_CHUNK;
			}
		}
		if (sc->carve && sc->carve_end - sc->carve >= (ptrdiff_t)size) {
			obj = sc->carve;
			sc->carve += size;
		}
	}
	pthread_mutex_unlock(&sc->lock);
	return obj;
}

static bool in_reserve(const void *p)
{
	return res_base && (const char *)p >= res_base && (const char *)p < res_end;
}

static struct chunk_hdr *chunk_of(const void *p)
{
	uintptr_t off = ((uintptr_t)p - (uintptr_t)res_base) & ~(uintptr_t)(SLAB_CHUNK - 1);
	struct chunk_hdr *h = (struct chunk_hdr *)(res_base + off);

	UFP_BUG_ON(h->magic != SLAB_MAGIC || h->cls >= NCLASSES);
	return h;
}

/* A mapping of its own: a header page (or more, for alignment), then
 * the object. */
static void *large_alloc(size_t size, size_t align)
{
	size_t a = align > UFP_PAGE_SIZE ? align : UFP_PAGE_SIZE;
	size_t body = (size + UFP_PAGE_SIZE - 1) & UFP_PAGE_MASK;
	size_t len = UFP_PAGE_SIZE + body + (a - UFP_PAGE_SIZE);
	char *m, *obj;
	struct large_hdr *h;

	if (size > (SIZE_MAX >> 2) || len < body)
		return NULL;
	m = sys_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	obj = (char *)(((uintptr_t)m + UFP_PAGE_SIZE + a - 1) & ~(uintptr_t)(a - 1));
	/* trim what alignment left over, keeping the header page */
	if (obj - UFP_PAGE_SIZE > m) {
		sys_munmap(m, (size_t)(obj - UFP_PAGE_SIZE - m));
		len -= (size_t)(obj - UFP_PAGE_SIZE - m);
		m = obj - UFP_PAGE_SIZE;
	}
	if (len > UFP_PAGE_SIZE + body) {
		sys_munmap(obj + body, len - UFP_PAGE_SIZE - body);
		len = UFP_PAGE_SIZE + body;
	}
	h = (struct large_hdr *)(obj - sizeof(*h));
	*h = (struct large_hdr){ .magic = LARGE_MAGIC, .base = m, .len = len, .size = body };
	return obj;
}

static struct large_hdr *large_of(const void *p)
{
	struct large_hdr *h = (struct large_hdr *)((uintptr_t)p - sizeof(*h));

	UFP_BUG_ON(((uintptr_t)p & ~UFP_PAGE_MASK) || h->magic != LARGE_MAGIC);
	return h;
}

/* size > 0, align a power of two >= 16 (slab_aligned_alloc checked). */
static void *slab_get(size_t align, size_t size)
{
	int cls;
	void *p;

	pthread_once(&slab_once, slab_init);
	cls = class_of(size, align);
	if (cls >= 0 && (p = small_alloc((unsigned)cls)))
		return p;
	return large_alloc(size, align);
}

void slab_free(void *p)
{
	if (!p)
		return;
	if (in_reserve(p)) {
		struct slab_class *sc = &classes[chunk_of(p)->cls];

		pthread_mutex_lock(&sc->lock);
		*(void **)p = sc->free;
		sc->free = p;
		pthread_mutex_unlock(&sc->lock);
		return;
	}
	struct large_hdr *h = large_of(p);

	sys_munmap(h->base, h->len);
}

size_t slab_usable_size(const void *p)
{
	if (in_reserve(p))
		return class_size[chunk_of(p)->cls];
	return large_of(p)->size;
}

#else  /* UFP_SANITIZE_BUILD: libc's allocator, checked by the sanitizer */

#include <malloc.h>

static void *slab_get(size_t align, size_t size)
{
	void *p = NULL;

	return posix_memalign(&p, align, size) ? NULL : p;
}

void slab_free(void *p)
{
	free(p);
}

size_t slab_usable_size(const void *p)
{
	return malloc_usable_size((void *)p);
}

#endif

void *slab_aligned_alloc(size_t align, size_t size)
{
	if (!size)
		size = 1;
	if (align < 16)
		align = 16;
	if (align & (align - 1))
		return NULL;
	return slab_get(align, size);
}

void *slab_alloc(size_t size)
{
	return slab_aligned_alloc(16, size);
}

void *slab_zalloc(size_t size)
{
	void *p = slab_alloc(size);

	if (p)
		memset(p, 0, size);
	return p;
}

void *slab_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return slab_zalloc(n * size);
}

void *slab_realloc(void *p, size_t size)
{
	void *n;
	size_t old;

	if (!p)
		return slab_alloc(size);
	old = slab_usable_size(p);
	if (size <= old)
		return p;
	n = slab_alloc(size);
	if (!n)
		return NULL;
	memcpy(n, p, old);
	slab_free(p);
	return n;
}
