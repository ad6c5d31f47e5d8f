/* SPDX-License-Identifier: MIT */
/*
 * test_heap_interpose.c - a pager's heap serves this process's malloc
 * (the way a preload would: malloc, free, calloc, realloc, memalign,
 * posix_memalign, aligned_alloc, valloc, malloc_usable_size are defined
 * here and forward to ufp_heap_*), and the library never re-enters it
 * nor deadlocks with it.
 *
 * Issue 13: an LD_PRELOAD that sent jemalloc's chunk mmaps to ufp_map
 * deadlocked because the library's own bookkeeping (region objects, tree
 * nodes, pager creation) called malloc while jemalloc held its arena lock.
 * Here every heap call marks its thread; a malloc arriving while the mark
 * is set is counted (and served by glibc instead of deadlocking), so a
 * regression fails with the count instead of hanging. A service thread
 * (reclaim, handlers, event worker) that called malloc under a pager lock
 * would hang the run instead: ctest's timeout catches that.
 *
 * The workload: threads churning objects from 1 byte to 6 MiB under a
 * budget far below their total (eviction and swap-in), jemalloc purging at
 * once (MALLOC_CONF=dirty_decay_ms:0, so extents are unmapped and
 * discarded through the hooks all the time), a second pager created and
 * used while the heap is the process's malloc, and a fork whose child
 * allocates. Usage: test_heap_interpose sigbus|handler
 */
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <execinfo.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ufpager.h"
#include "../tools/preload/ldso_text.h"

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t s);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void __libc_free(void *p);

static ufp_heap *_Atomic live;            /* the heap, once it serves malloc */
static __thread int in_heap;              /* this thread is inside a heap call */
static _Atomic long reentered;            /* mallocs from inside a heap call */
static _Atomic long served;               /* mallocs the heap served */
static size_t (*libc_usable)(void *);

/*
 * The dynamic linker's own allocations (each thread's DTV, dynamic TLS
 * blocks) stay glibc's: the SIGBUS handler reads TLS of other libraries
 * (liburcu's reader state) through the DTV, so the DTV must never be
 * pager memory that could be missing when a fault is being served. A
 * preload must do the same. `ldso`: ld.so's text.
 */
static struct ldso_text ldso;

/* The heap to use, or NULL (glibc): before the switch, for ld.so's
 * allocations, and on re-entry. */
#define heap_in() heap_for(__builtin_return_address(0))
static ufp_heap *heap_for(void *caller)
{
	/* acquire: pairs with the release store that publishes the heap */
	ufp_heap *h = atomic_load_explicit(&live, memory_order_acquire);

	if (ldso_text_has(&ldso, caller))
		return NULL;
	if (h && in_heap) {
		/* where from (the first few): the library allocated inside a heap call */
		if (atomic_fetch_add(&reentered, 1) < 3) {
			void *bt[32];

			backtrace_symbols_fd(bt, backtrace(bt, 32), 2);
			write(2, "--\n", 3);
		}
		return NULL;
	}
	return h;
}

#define VIA_HEAP(h, call) ({ in_heap++; __typeof__(call) r_ = (call); in_heap--; \
			     atomic_fetch_add_explicit(&served, 1, memory_order_relaxed); r_; })

void *malloc(size_t n)
{
	ufp_heap *h = heap_in();

	return h ? VIA_HEAP(h, ufp_heap_malloc(h, n)) : __libc_malloc(n);
}

void *calloc(size_t n, size_t s)
{
	ufp_heap *h = heap_in();

	return h ? VIA_HEAP(h, ufp_heap_calloc(h, n, s)) : __libc_calloc(n, s);
}

static bool owned(const void *p)
{
	/* acquire: as heap_in */
	ufp_heap *h = atomic_load_explicit(&live, memory_order_acquire);

	return h && ufp_heap_owns(h, p);
}

void free(void *p)
{
	if (!p)
		return;
	if (owned(p)) {
		ufp_heap *h = atomic_load(&live);

		in_heap++;
		ufp_heap_free(h, p);
		in_heap--;
		return;
	}
	__libc_free(p);
}

void *realloc(void *p, size_t n)
{
	if (!p) {
		ufp_heap *h = heap_in();

		return h ? VIA_HEAP(h, ufp_heap_malloc(h, n)) : __libc_malloc(n);
	}
	if (owned(p)) {
		ufp_heap *h = atomic_load(&live);

		return VIA_HEAP(h, ufp_heap_realloc(h, p, n));
	}
	return __libc_realloc(p, n);   /* glibc's object stays glibc's */
}

void *memalign(size_t a, size_t n)
{
	ufp_heap *h = heap_in();

	return h ? VIA_HEAP(h, ufp_heap_aligned_alloc(h, a, n)) : __libc_memalign(a, n);
}

void *aligned_alloc(size_t a, size_t n)
{
	ufp_heap *h = heap_in();

	return h ? VIA_HEAP(h, ufp_heap_aligned_alloc(h, a, n)) : __libc_memalign(a, n);
}

int posix_memalign(void **out, size_t a, size_t n)
{
	ufp_heap *h;
	void *p;

	if (a < sizeof(void *) || (a & (a - 1)))
		return EINVAL;
	h = heap_in();
	p = h ? VIA_HEAP(h, ufp_heap_aligned_alloc(h, a, n)) : __libc_memalign(a, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t n)
{
	ufp_heap *h = heap_in();

	return h ? VIA_HEAP(h, ufp_heap_aligned_alloc(h, 4096, n)) : __libc_memalign(4096, n);
}

size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	if (owned(p))
		return ufp_heap_usable_size(atomic_load(&live), p);
	return libc_usable ? libc_usable(p) : 0;
}

/* ---- the workload -------------------------------------------------------- */

#define THREADS 3
#define SLOTS 2048

struct obj {
	size_t size;
	uint64_t seed;
};

static unsigned char pat(uint64_t seed, size_t k)
{
	return (unsigned char)((seed * 0x9E3779B97F4A7C15ull + k * 0x85EBCA6Bull) >> 56 | 1);
}

static void stamp(unsigned char *p, size_t n, uint64_t seed)
{
	struct obj o = { n, seed };

	memcpy(p, &o, sizeof(o));
	for (size_t k = sizeof(o); k < n; k += (k < 64 ? 1 : 509))
		p[k] = pat(seed, k);
	p[n - 1] = pat(seed, n - 1);
}

static bool intact(const unsigned char *p)
{
	struct obj o;

	memcpy(&o, p, sizeof(o));
	if (o.size < sizeof(o) + 1 || o.size > (6u << 20) + 64)
		return false;
	for (size_t k = sizeof(o); k < o.size; k += (k < 64 ? 1 : 509))
		if (p[k] != pat(o.seed, k))
			return false;
	return p[o.size - 1] == pat(o.seed, o.size - 1);
}

static _Atomic long bad;

static void *churn(void *arg)
{
	unsigned char **slot = calloc(SLOTS, sizeof(*slot));   /* from the heap too */
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 17;

	for (int it = 0; it < 30000; it++) {
		unsigned k = (unsigned)rand_r(&seed) % SLOTS;
		unsigned r = (unsigned)rand_r(&seed), z = (unsigned)rand_r(&seed);
		size_t n = sizeof(struct obj) + 1 +
			   (z % 500 == 0 ? (size_t)(z % (6u << 20)) :
			    z % 20 == 0 ? (size_t)(z % 100000) : (size_t)(z % 700));

		if (slot[k] && !intact(slot[k]))
			atomic_fetch_add(&bad, 1);
		switch (r % 4) {
		case 0:
			free(slot[k]);
			slot[k] = NULL;
			break;
		case 1:
			if (slot[k]) {
				struct obj o;

				memcpy(&o, slot[k], sizeof(o));
				unsigned char *q = realloc(slot[k], n);

				if (!q) {
					atomic_fetch_add(&bad, 1);
					break;
				}
				/* the kept prefix is intact; restamp at the new size */
				if (memcmp(q, &o, sizeof(o)))
					atomic_fetch_add(&bad, 1);
				slot[k] = q;
				stamp(q, n, (uint64_t)r << 20 | k);
				break;
			}
			/* fall through */
		default: {
			unsigned char *q;

			free(slot[k]);
			if (r % 3 == 0) {
				if (posix_memalign((void **)&q, (size_t)64 << (r % 7), n))
					q = NULL;
			} else {
				q = r % 2 ? malloc(n) : calloc(1, n);
			}
			if (!q) {
				atomic_fetch_add(&bad, 1);
				slot[k] = NULL;
				break;
			}
			stamp(q, n, (uint64_t)r << 20 | k);
			slot[k] = q;
		}
		}
	}
	for (unsigned k = 0; k < SLOTS; k++) {
		if (slot[k] && !intact(slot[k]))
			atomic_fetch_add(&bad, 1);
		free(slot[k]);
	}
	free(slot);
	return NULL;
}

/* A second pager made and used while the heap is the process's malloc:
 * ufp_pager_create and ufp_map allocate their own objects. */
static int second_pager(void)
{
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
				 .arena_size = 1ull << 28, .flags = UFP_PF_NO_EXPORT };
	ufp_pager *q;
	char *m;
	int err = ufp_pager_create(&pr, &q);

	if (err)
		return err;
	err = ufp_map(q, NULL, 1 << 20, UFP_PROT_ALL, 0, (void **)&m);
	if (!err) {
		memset(m, 7, 1 << 20);
		err = ufp_protect(q, m + 4096, 4096, UFP_PROT_READ) ?:
		      ufp_unmap(q, m, 1 << 20);
	}
	ufp_pager_destroy(q);
	return err;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "sigbus";
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.delivery = strcmp(mode, "handler") ? UFP_DELIVERY_SIGBUS : UFP_DELIVERY_HANDLER,
		.budget = 24 << 20, .arena_size = 8ull << 30, .swap_size = 1ull << 30,
		.ztier_size = 8 << 20, .flags = UFP_PF_NO_EXPORT,
	};
	struct ufp_heap_stats hs = { .size = sizeof(hs), .version = UFP_HEAP_STATS_VERSION };
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	struct ufp_probe probe = { .size = sizeof(probe), .version = UFP_PROBE_VERSION };
	pthread_t th[THREADS];
	ufp_pager *p;
	ufp_heap *h;
	int err, status;
	pid_t pid;

	libc_usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	if (!ldso_text_get(&ldso))
		return printf("FAIL: cannot find ld.so's text\n"), 1;
	{
		void *bt[4];

		backtrace(bt, 4);   /* loads libgcc_s now, not from inside malloc */
	}
	printf("test_heap_interpose: %s delivery\n", mode);   /* stdout's buffer: glibc's */
	fflush(stdout);
	/* the private jemalloc reads it at its first call: purge at once */
	setenv("MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0", 1);
	ufp_probe_machine(&probe);
	if (probe.uffd_errno || probe.io_uring_errno || !(probe.uffd_features & (1ull << 16))) {
		printf("SKIP: needs userfaultfd with UFFDIO_MOVE and io_uring (eviction)\n");
		return 77;
	}
	err = ufp_pager_create(&pr, &p);
	if (err) {
		printf("%s: ufp_pager_create: %s\n%s\n", err == -EPERM ? "SKIP" : "FAIL",
		       strerror(-err), ufp_last_error());
		return err == -EPERM || err == -ENOSYS ? 77 : 1;
	}
	err = ufp_heap_create(p, 0, &h);
	if (err) {
		printf("FAIL: ufp_heap_create: %s\n", ufp_last_error());
		return 1;
	}
	/* release: pairs with the acquire loads in heap_in and owned */
	atomic_store_explicit(&live, h, memory_order_release);

	for (long i = 0; i < THREADS; i++)
		if (pthread_create(&th[i], NULL, churn, (void *)i))
			return printf("FAIL: pthread_create\n"), 1;
	err = second_pager();
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	if (err) {
		printf("FAIL: a second pager while the heap serves malloc: %s (%s)\n",
		       strerror(-err), ufp_last_error());
		return 1;
	}
	/* a fork child allocates from the heap (new extents: plain memory) */
	char *keep = malloc(3 << 20);

	memset(keep, 0x3c, 3 << 20);
	pid = fork();
	if (pid == 0) {
		char *c = malloc(12 << 20);
		int ok = c && keep[12345] == 0x3c && keep[(3 << 20) - 1] == 0x3c;

		if (c)
			memset(c, 1, 12 << 20);
		free(c);
		_exit(ok ? 0 : 3);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		printf("FAIL: the fork child could not use the heap (status %#x)\n", status);
		return 1;
	}
	free(keep);

	ufp_heap_stats_get(h, &hs);
	ufp_stats_get(p, &st);
	printf("%s: %ld mallocs served by the heap, %ld re-entered; extents mapped %llu, "
	       "unmapped %llu, purged %llu; pager swapouts %llu, swapins %llu, faults %llu\n",
	       mode, (long)served, (long)reentered, (unsigned long long)hs.extent_maps,
	       (unsigned long long)hs.extent_unmaps, (unsigned long long)hs.purges,
	       (unsigned long long)st.swapouts, (unsigned long long)st.swapins,
	       (unsigned long long)st.faults);
	if (reentered || bad) {
		printf("FAIL: %ld mallocs from inside a heap call (the library allocated "
		       "through the heap it serves), %ld damaged objects\n",
		       (long)reentered, (long)bad);
		return 1;
	}
	if (served < THREADS * 20000L || !hs.extent_unmaps || !st.swapouts || !st.swapins) {
		printf("FAIL: the workload did not exercise the heap (unmaps, eviction)\n");
		return 1;
	}
	/* like a preload, never tear down: libc keeps objects of the heap
	 * (stdio buffers, thread blocks) until the process is gone */
	printf("ok\n");
	return 0;
}
