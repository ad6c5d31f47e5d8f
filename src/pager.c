/* SPDX-License-Identifier: MIT */
/*
 * pager.c - the pager object and the mmap-like API: create/destroy,
 * map, unmap, protect, advise, stats, fork policy.
 *
 * Structural contract (PROTOCOL.md, "Which structural operations lock which
 * regions"): every structural op takes the pager lock for write, write-locks
 * exactly the regions it changes (in address order), changes the tree,
 * commits (one release store of the new root) and unlocks, which releases
 * all region marks at once. Faults on other regions keep running.
 * The library never touches managed memory while it holds a pager or
 * region lock (a fault on it would need that lock).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "ufp_internal.h"
#include "inject.h"
#include "swap_backend.h"

static _Atomic uint64_t next_pager_id = 1;
static pthread_mutex_t pagers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ufp_pager *pagers[UFP_MAX_PAGERS];
/* ids of live pagers, readable without pagers_lock (thread.c prunes its
 * per-thread tables with it, also from under pagers_lock at fork) */
static _Atomic uint64_t live_ids[UFP_MAX_PAGERS];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Write implies read (as on x86 and arm64 page tables). */
static int prot_norm(int prot)
{
	return prot & UFP_PROT_WRITE ? prot | UFP_PROT_READ : prot;
}

/* ======================================================================
 * Fork policy. Without UFFD_FEATURE_EVENT_FORK the child loses the
 * registration: its missing pages read as zeros. That is exactly right as
 * long as every page that ever held data is present at fork time, so the
 * prepare handler stops all structural work (pager write lock) and, with
 * swap, brings evicted pages back first. In the child the pager is inert:
 * its memory is ordinary memory, every ufp_ call returns -ECHILD.
 * ====================================================================== */

static void atfork_prepare(void)
{
	pthread_mutex_lock(&pagers_lock);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (pagers[i]) {
			reclaim_pause(pagers[i]);
			pager_write_lock(pagers[i]);
			swapin_all_locked(pagers[i]);
		}
}

static void atfork_parent(void)
{
	for (unsigned i = UFP_MAX_PAGERS; i-- > 0;)
		if (pagers[i]) {
			pager_write_unlock(pagers[i]);
			reclaim_resume(pagers[i]);
		}
	pthread_mutex_unlock(&pagers_lock);
}

static void atfork_child(void)
{
	for (unsigned i = UFP_MAX_PAGERS; i-- > 0;) {
		struct ufp_pager *p = pagers[i];

		if (!p)
			continue;
		p->forked_child = true;
		/* The inherited fd is the parent's context: never use it here. */
		close(p->uffd);
		p->uffd = -1;
		if (p->pagemap_fd >= 0)
			close(p->pagemap_fd);   /* the parent's pagemap */
		p->pagemap_fd = -1;
		pager_write_unlock(p);
	}
	pthread_mutex_unlock(&pagers_lock);
}

static void atfork_setup(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int pagers_add(struct ufp_pager *p)
{
	int err = -ENOSPC;

	pthread_once(&atfork_once, atfork_setup);
	pthread_mutex_lock(&pagers_lock);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (!pagers[i]) {
			pagers[i] = p;
			atomic_store_explicit(&live_ids[i], p->id, memory_order_relaxed);
			err = 0;
			break;
		}
	pthread_mutex_unlock(&pagers_lock);
	return err;
}

bool pager_id_alive(uint64_t id)
{
	/* relaxed: a hint for pruning; ids are never reused */
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (atomic_load_explicit(&live_ids[i], memory_order_relaxed) == id)
			return true;
	return false;
}

/*
 * A thread exits: destroy its swap I/O context for pager `id` if the pager
 * still exists (called from a TLS destructor: no lock held). Lock
 * order: pagers_lock, then stats_lock; pagers_lock keeps the pager (and its
 * backend: reclaim_fini runs before pagers_del) alive, stats_lock orders us
 * against reclaim_fini destroying the same context.
 */
void pager_thread_exit(uint64_t id, struct ufp_tstats *ts)
{
	pthread_mutex_lock(&pagers_lock);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *p = pagers[i];

		if (!p || p->id != id || p->forked_child)
			continue;
		pthread_mutex_lock(&p->stats_lock);
		if (ts->swb_ctx) {
			swb_ctx_destroy(ts->swb_ctx);
			ts->swb_ctx = NULL;
		}
		ufp_tstats_retire(p, ts);
		pthread_mutex_unlock(&p->stats_lock);
	}
	pthread_mutex_unlock(&pagers_lock);
}

static void pagers_del(struct ufp_pager *p)
{
	pthread_mutex_lock(&pagers_lock);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (pagers[i] == p) {
			pagers[i] = NULL;
			atomic_store_explicit(&live_ids[i], 0, memory_order_relaxed);
		}
	pthread_mutex_unlock(&pagers_lock);
}

bool pager_is_forked_child(struct ufp_pager *p)
{
	return p->forked_child;
}

/* ======================================================================
 * Helpers (pager write lock held unless said otherwise).
 * ====================================================================== */

int pager_check_range(struct ufp_pager *p, const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	if (!len || (a & ~UFP_PAGE_MASK) || (len & ~UFP_PAGE_MASK))
		return -EINVAL;
	if (a < p->arena_base || a >= p->arena_end || len > p->arena_end - a)
		return -EINVAL;
	return 0;
}

bool pager_range_mapped(struct ufp_pager *p, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	while (a < end) {
		struct ufp_region *r = region_tree_lookup(&p->tree, a);

		if (!r || (r->flags & UFP_RF_HOLE))
			return false;
		a = region_end(r);
	}
	return true;
}

void pager_clear_ptes(struct ufp_pager *p, uintptr_t start, uintptr_t end)
{
	int64_t cleared = 0;

	if (start < p->arena_base)
		start = p->arena_base;
	if (end > p->arena_end)
		end = p->arena_end;
	for (uintptr_t a = start; a < end; a += UFP_PAGE_SIZE)
		cleared += pte_discard(p, pte_index(p, a));
	if (cleared)
		STAT_ADD(ufp_tstats_get(p, true), resident_pages, -cleared);
}

int pager_find_free(struct ufp_pager *p, size_t len, uintptr_t *out)
{
	uintptr_t cand = p->bump;
	bool wrapped = false;

	if (len > p->arena_end - p->arena_base)
		return -ENOMEM;
	for (;;) {
		struct ufp_region *r;

		if (cand < p->arena_base || cand > p->arena_end - len) {
			if (wrapped)
				return -ENOMEM;
			wrapped = true;
			cand = p->arena_base;
			continue;
		}
		r = region_tree_lookup(&p->tree, cand);
		if (r) {
			cand = region_end(r);
			continue;
		}
		r = region_tree_next(&p->tree, cand);
		if (!r || region_start(r) - cand >= len) {
			*out = cand;
			p->bump = cand + len;
			return 0;
		}
		cand = region_end(r);
		if (wrapped && cand >= p->bump)
			return -ENOMEM;
	}
}

bool region_mergeable(const struct ufp_region *a, const struct ufp_region *b)
{
	return a && b && !((a->flags | b->flags) & (UFP_RF_ALLOC | UFP_RF_HOLE)) &&
	       region_end(a) == region_start(b) && region_prot(a) == region_prot(b);
}

struct ufp_region *region_split(struct ufp_pager *p, struct ufp_region *r, uintptr_t addr)
{
	struct ufp_region *n;

	region_assert_write_locked(r);
	UFP_BUG_ON(addr <= region_start(r) || addr >= region_end(r));
	n = region_alloc(p, addr, region_end(r), region_prot(r), r->flags);
	if (!n)
		return NULL;
	n->alloc_size = r->alloc_size;
	/* the new half is invisible until commit, and locked with r */
	atomic_store_explicit(&n->lock_seq, atomic_load(&p->lock_seq), memory_order_relaxed);
	atomic_store_explicit(&r->end, addr, memory_order_relaxed);
	if (region_tree_insert(&p->tree, n)) {
		atomic_store_explicit(&r->end, region_end(n), memory_order_relaxed);
		free(n);
		return NULL;
	}
	STAT_INC(ufp_tstats_get(p, true), splits);
	return n;
}

void region_merge(struct ufp_pager *p, struct ufp_region *a, struct ufp_region *b)
{
	region_assert_write_locked(a);
	region_assert_write_locked(b);
	UFP_BUG_ON(region_end(a) != region_start(b));
	atomic_store_explicit(&a->end, region_end(b), memory_order_relaxed);
	region_detach(p, b);
	STAT_INC(ufp_tstats_get(p, true), merges);
}

/* Lock a set of regions in address order (they are gathered sorted). */
static void lock_sorted(struct ufp_region **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i])
			region_write_lock(v[i]);
}

/* Regions overlapping [s, e), in address order, as a malloc'ed array. */
static int gather(struct ufp_pager *p, uintptr_t s, uintptr_t e,
		  struct ufp_region ***out, size_t *n)
{
	size_t cap = 8, cnt = 0;
	struct ufp_region **v = malloc(cap * sizeof(*v));
	struct ufp_region *r = region_tree_lookup(&p->tree, s);

	if (!v)
		return -ENOMEM;
	if (!r)
		r = region_tree_next(&p->tree, s);
	for (; r && region_start(r) < e; r = region_tree_next(&p->tree, region_end(r))) {
		if (cnt == cap) {
			struct ufp_region **nv = realloc(v, (cap *= 2) * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = r;
	}
	*out = v;
	*n = cnt;
	return 0;
}

void pager_lock_range(struct ufp_pager *p, uintptr_t s, uintptr_t e)
{
	pager_assert_write_locked(p);
	for (struct ufp_region *r = region_tree_lookup(&p->tree, s) ?: region_tree_next(&p->tree, s);
	     r && region_start(r) < e; r = region_tree_next(&p->tree, region_end(r)))
		region_write_lock(r);
}

/* ======================================================================
 * Structural primitives (pager write lock held).
 * ====================================================================== */

int pager_map_locked(struct ufp_pager *p, uintptr_t start, size_t len, int prot,
		     unsigned rflags, struct ufp_region **out)
{
	struct ufp_region *r, *prev = NULL, *next = NULL;
	int err;

	pager_assert_write_locked(p);
	if (mmap((void *)start, len, prot_to_mmap(prot),
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -errno;
	err = uffd_register(p, start, len);
	if (err) {
		ufp_set_error("ufpager: UFFDIO_REGISTER failed: %s", strerror(-err));
		goto undo_mmap;
	}
	r = region_alloc(p, start, start + len, prot, rflags);
	if (!r) {
		err = -ENOMEM;
		goto undo_reg;
	}
	/* Merge candidates, kernel-style (plain maps only). */
	prev = region_tree_prev(&p->tree, start);
	next = region_tree_next(&p->tree, start + len);
	if (!region_mergeable(prev, r))
		prev = NULL;
	if (!region_mergeable(r, next))
		next = NULL;
	/* lock order: prev < r < next */
	if (prev)
		region_write_lock(prev);
	region_write_lock(r);      /* invisible yet: never waits */
	if (next)
		region_write_lock(next);
	err = region_tree_insert(&p->tree, r);
	if (err) {
		free(r);
		goto undo_reg;
	}
	if (prev) {
		region_merge(p, prev, r);
		r = prev;
	}
	if (next)
		region_merge(p, r, next);
	if (out)
		*out = r;
	return 0;
undo_reg:
	uffd_unregister(p, start, len);
undo_mmap:
	mmap((void *)start, len, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return err;
}

/*
 * Remove [s, e) from the tree: split at the edges, detach what is inside.
 * kernel_done: the kernel already unmapped it (a foreign UNMAP/REMAP
 * event): only re-reserve the hole, never MAP_FIXED over it blindly.
 */
int pager_unmap_locked(struct ufp_pager *p, uintptr_t s, uintptr_t e, bool kernel_done)
{
	struct ufp_region **v;
	size_t n;
	int err;

	pager_assert_write_locked(p);
	if (s < p->arena_base)
		s = p->arena_base;
	if (e > p->arena_end)
		e = p->arena_end;
	if (s >= e)
		return 0;
	err = gather(p, s, e, &v, &n);
	if (err)
		return err;
	lock_sorted(v, n);
	for (size_t i = 0; i < n; i++) {
		struct ufp_region *r = v[i];

		if (region_start(r) < s) {
			r = region_split(p, r, s);
			if (!r) {
				err = -ENOMEM;
				break;
			}
		}
		if (region_end(r) > e && !region_split(p, r, e)) {
			err = -ENOMEM;
			break;
		}
		region_detach(p, r);
	}
	free(v);
	if (err)
		return err;
	if (!kernel_done) {
		uffd_unregister(p, s, e - s);
		if (mmap((void *)s, e - s, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
			UFP_BUG_ON("re-reserving an unmapped range failed");
	} else if (mmap((void *)s, e - s, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
			-1, 0) == MAP_FAILED) {
		/* something else lives there now: keep the range out of use */
		struct ufp_region *h = region_alloc(p, s, e, 0, UFP_RF_HOLE);

		if (h && region_tree_insert(&p->tree, h))
			free(h);
	}
	pager_clear_ptes(p, s, e);
	return 0;
}

/* ======================================================================
 * Public API.
 * ====================================================================== */

UFP_API int ufp_thread_register(void)
{
	ufp_thread_enter(NULL);
	return 0;
}

UFP_API int ufp_pager_create(const struct ufp_params *params, ufp_pager **out)
{
	struct ufp_pager *p;
	long ncpu;
	int err;

	ufp_clear_error();
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (sysconf(_SC_PAGESIZE) != (long)UFP_PAGE_SIZE) {
		ufp_set_error("ufpager: page size %ld is not supported (4 KiB only)",
			      sysconf(_SC_PAGESIZE));
		return -EOPNOTSUPP;
	}
	p = aligned_alloc(UFP_CACHELINE, (sizeof(*p) + UFP_CACHELINE - 1) &
			  ~(size_t)(UFP_CACHELINE - 1));
	if (!p)
		return -ENOMEM;
	memset(p, 0, sizeof(*p));
	p->uffd = -1;
	p->pagemap_fd = -1;
	p->wake_fd = -1;
	p->slot = UFP_MAX_PAGERS;
	err = ufp_options_resolve(params, &p->opt);
	if (err)
		goto fail_free;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (!p->opt.handler_threads)
		p->opt.handler_threads = ncpu < 2 ? 2 : (uint64_t)ncpu;
	if (p->opt.fault_around < 1)
		p->opt.fault_around = 1;
	if (p->opt.fault_around > 512)
		p->opt.fault_around = 512;
	p->lock_mode = (enum ufp_lock_mode)p->opt.lock_mode;
	p->delivery = (enum ufp_delivery)p->opt.delivery;
	p->id = atomic_fetch_add(&next_pager_id, 1);
	p->shared_ts.shared = true;
	pthread_mutex_init(&p->stats_lock, NULL);
	pager_lock_init(p, 0);
	region_tree_init(&p->tree);

	if (p->opt.arena_size < UFP_PAGE_SIZE || (p->opt.arena_size & ~UFP_PAGE_MASK)) {
		ufp_set_error("ufpager: arena_size must be a positive page multiple");
		err = -EINVAL;
		goto fail_free;
	}
	void *a = mmap(NULL, p->opt.arena_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a == MAP_FAILED) {
		err = -errno;
		ufp_set_error("ufpager: cannot reserve a %llu-byte arena: %s",
			      (unsigned long long)p->opt.arena_size, strerror(errno));
		goto fail_free;
	}
	p->arena_base = (uintptr_t)a;
	p->arena_end = p->arena_base + p->opt.arena_size;
	p->bump = p->arena_base;
	p->npages = p->opt.arena_size >> UFP_PAGE_SHIFT;
	void *pte = mmap(NULL, p->npages * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pte == MAP_FAILED) {
		err = -errno;
		goto fail_arena;
	}
	p->pte = pte;

	err = uffd_open(p);
	if (err)
		goto fail_pte;
	if (p->delivery == UFP_DELIVERY_SIGBUS) {
		err = sigbus_install(p);
		if (err)
			goto fail_uffd;
	}
	err = pagers_add(p);
	if (err) {
		ufp_set_error("ufpager: too many pagers (%d)", UFP_MAX_PAGERS);
		goto fail_sig;
	}
	/* Swap state is complete before any service thread can read it. */
	err = reclaim_init(p);
	if (err)
		goto fail_threads;
	err = uffd_start_threads(p);
	if (err) {
		ufp_set_error("ufpager: cannot start service threads");
		goto fail_threads;
	}
	err = reclaim_start(p);
	if (err)
		goto fail_threads;
	inject_from_options(p->opt.inject);
	/* before the exporter: it reads p->watchdog (its thread's start
	 * orders this write before its reads) */
	watchdog_start(p);
	export_start(p);
	ufp_thread_enter(p);
	*out = p;
	return 0;

fail_threads:
	reclaim_stop_thread(p);
	uffd_stop_threads(p);
	reclaim_fini(p);
	pagers_del(p);
fail_sig:
	sigbus_remove(p);
fail_uffd:
	close(p->uffd);
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
fail_pte:
	munmap(p->pte, p->npages * sizeof(uint64_t));
fail_arena:
	munmap(a, p->opt.arena_size);
fail_free:
	pthread_mutex_destroy(&p->stats_lock);
	free(p);
	return err;
}

static void free_region_cb(struct ufp_region *r)
{
	region_free_now(r);
}

UFP_API int ufp_pager_destroy(ufp_pager *p)
{
	if (!p)
		return -EINVAL;
	ufp_clear_error();
	if (!p->forked_child) {
		ufp_thread_enter(p);
		export_stop(p);        /* first: it reads the watchdog's counter */
		watchdog_stop(p);
		reclaim_stop_thread(p);
		sigbus_remove(p);
		pager_write_lock(p);
		uffd_unregister(p, p->arena_base, p->arena_end - p->arena_base);
		pager_write_unlock(p);
		uffd_stop_threads(p);
		reclaim_fini(p);
		/* every deferred free (tree nodes, regions) runs before we go */
		urcu_memb_barrier();
	}
	pagers_del(p);
	region_tree_destroy(&p->tree, p->forked_child ? NULL : free_region_cb);
	munmap((void *)p->arena_base, p->arena_end - p->arena_base);
	munmap(p->pte, p->npages * sizeof(uint64_t));
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
	ufp_stats_free_all(p);
	pthread_mutex_destroy(&p->stats_lock);
	free(p);
	return 0;
}

static int do_map(ufp_pager *p, void *hint, size_t len, int prot, unsigned flags, void **out)
{
	uintptr_t start;
	int err = 0;

	if (!out || !len || (len & ~UFP_PAGE_MASK) || (prot & ~UFP_PROT_ALL) ||
	    (flags & ~UFP_MAP_ALL) || ((flags & UFP_MAP_FIXED) && !hint) ||
	    ((uintptr_t)hint & ~UFP_PAGE_MASK))
		return -EINVAL;
	if (hint && pager_check_range(p, hint, len)) {
		if (flags & UFP_MAP_FIXED)
			return -EINVAL;
		hint = NULL;
	}
	prot = prot_norm(prot);
	pager_write_lock(p);
	start = (uintptr_t)hint;
	if (hint) {
		struct ufp_region *r = region_tree_lookup(&p->tree, start);
		struct ufp_region *nx = region_tree_next(&p->tree, start);

		if (r || (nx && region_start(nx) < start + len)) {
			if (flags & UFP_MAP_FIXED) {
				err = -EEXIST;
				goto out;
			}
			hint = NULL;
		}
	}
	if (!hint) {
		err = pager_find_free(p, len, &start);
		if (err)
			goto out;
	}
	err = pager_map_locked(p, start, len, prot, 0, NULL);
	if (!err) {
		*out = (void *)start;
		STAT_INC(ufp_tstats_get(p, true), maps);
	}
out:
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

/* Does [s, e) touch an allocator object? */
static bool range_has_alloc(struct ufp_pager *p, uintptr_t s, uintptr_t e)
{
	for (struct ufp_region *r = region_tree_lookup(&p->tree, s) ?:
		     region_tree_next(&p->tree, s);
	     r && region_start(r) < e; r = region_tree_next(&p->tree, region_end(r)))
		if (r->flags & UFP_RF_ALLOC)
			return true;
	return false;
}

static int do_unmap(ufp_pager *p, void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr;
	int err = 0;

	err = pager_check_range(p, addr, len);
	if (err)
		return err;
	pager_write_lock(p);
	if (!pager_range_mapped(p, s, s + len) || range_has_alloc(p, s, s + len)) {
		err = -EINVAL;
		goto out;
	}
	err = pager_unmap_locked(p, s, s + len, false);
	if (!err)
		STAT_INC(ufp_tstats_get(p, true), unmaps);
out:
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

static int do_protect(ufp_pager *p, void *addr, size_t len, int prot)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;
	struct ufp_region **w = NULL, **v;
	size_t n, nw;
	bool *lock;
	int err = 0;

	if (prot & ~UFP_PROT_ALL)
		return -EINVAL;
	prot = prot_norm(prot);
	err = pager_check_range(p, addr, len);
	if (err)
		return err;
	pager_write_lock(p);
	if (!pager_range_mapped(p, s, e)) {
		err = -ENOMEM;
		goto out;
	}
	err = gather(p, s, e, &v, &n);
	if (err)
		goto out;
	/* Allocator objects change protection only as a whole. */
	for (size_t i = 0; i < n; i++)
		if ((v[i]->flags & UFP_RF_ALLOC) &&
		    (region_start(v[i]) < s || region_end(v[i]) > e)) {
			free(v);
			err = -EINVAL;
			goto out;
		}
	/* Window: prev, the overlapping regions, next; final prots; lock the
	 * regions whose attributes change and every region of a merge that
	 * involves one of them, in address order. */
	nw = n + 2;
	w = calloc(nw, sizeof(*w));
	lock = calloc(nw, sizeof(*lock));
	int *fprot = calloc(nw, sizeof(*fprot));
	bool *chg = calloc(nw, sizeof(*chg));
	if (!w || !lock || !fprot || !chg) {
		free(v); free(w); free(lock); free(fprot); free(chg);
		err = -ENOMEM;
		goto out;
	}
	w[0] = region_tree_prev(&p->tree, region_start(v[0]));
	if (w[0] && region_end(w[0]) != region_start(v[0]))
		w[0] = NULL;
	memcpy(w + 1, v, n * sizeof(*v));
	w[n + 1] = region_tree_next(&p->tree, region_end(v[n - 1]));
	if (w[n + 1] && region_start(w[n + 1]) != region_end(v[n - 1]))
		w[n + 1] = NULL;
	for (size_t i = 0; i < nw; i++) {
		if (!w[i])
			continue;
		chg[i] = i >= 1 && i <= n && region_prot(w[i]) != prot;
		fprot[i] = (i >= 1 && i <= n) ? prot : region_prot(w[i]);
	}
	for (size_t i = 0; i + 1 < nw; i++) {
		struct ufp_region *a = w[i], *b = w[i + 1];

		if (a && b && !((a->flags | b->flags) & (UFP_RF_ALLOC | UFP_RF_HOLE)) &&
		    fprot[i] == fprot[i + 1] && (chg[i] || chg[i + 1]) &&
		    region_end(a) == region_start(b))
			lock[i] = lock[i + 1] = true;
	}
	for (size_t i = 0; i < nw; i++)
		if (w[i] && (lock[i] || chg[i]))
			region_write_lock(w[i]);
	/* Split the changed regions at the edges, set the new protection. */
	for (size_t i = 1; i <= n; i++) {
		struct ufp_region *r = w[i];

		if (!chg[i])
			continue;
		if (region_start(r) < s) {
			struct ufp_region *nr = region_split(p, r, s);

			if (!nr) {
				err = -ENOMEM;
				break;
			}
			w[i] = r = nr;   /* the part inside the range */
		}
		if (region_end(r) > e && !region_split(p, r, e)) {
			err = -ENOMEM;
			break;
		}
		atomic_store_explicit(&r->prot, prot, memory_order_relaxed);
	}
	if (!err && mprotect((void *)s, len, prot_to_mmap(prot)))
		err = -errno;
	/* Merge neighbours with equal attributes, left to right, among the
	 * regions locked above. */
	if (!err) {
		uintptr_t stop = w[n + 1] ? region_end(w[n + 1]) : e;
		struct ufp_region *a = region_tree_lookup(&p->tree,
				w[0] ? region_start(w[0]) : s);

		while (a) {
			struct ufp_region *b = region_tree_next(&p->tree, region_end(a));

			if (!b || region_start(b) >= stop)
				break;
			if (region_mergeable(a, b) && region_is_write_locked(a) &&
			    region_is_write_locked(b)) {
				region_merge(p, a, b);
				continue;
			}
			a = b;
		}
		STAT_INC(ufp_tstats_get(p, true), protects);
	}
	free(v); free(w); free(lock); free(fprot); free(chg);
out:
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

/* WILLNEED: populate [s, e) now through the fault path (zero fill with
 * fault-around, swap-in with readahead), region by region. Not a
 * structural op; touches no managed memory. */
static int advise_willneed(struct ufp_pager *p, uintptr_t s, uintptr_t e)
{
	struct ufp_tstats *ts = ufp_tstats_get(p, true);

	for (uintptr_t a = s; a < e; a += UFP_PAGE_SIZE) {
		uint64_t v = atomic_load_explicit(&p->pte[pte_index(p, a)], memory_order_acquire);
		int r;

		if (v & (PTE_PRESENT | PTE_POISON))
			continue;
		while ((r = ufp_serve_fault(p, ts, a, true, true)) == -EAGAIN)
			sched_yield();
		if (r == -EFAULT)
			return -ENOMEM;      /* unmapped meanwhile */
	}
	return 0;
}

static int do_advise(ufp_pager *p, void *addr, size_t len, int advice)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;
	int err = 0;

	if (advice != UFP_ADV_NORMAL && advice != UFP_ADV_WILLNEED &&
	    advice != UFP_ADV_DONTNEED && advice != UFP_ADV_PAGEOUT)
		return -EINVAL;
	err = pager_check_range(p, addr, len);
	if (err)
		return err;
	if (advice == UFP_ADV_PAGEOUT) {
		long got;
		bool mapped;

		if (!p->swb)
			return ufp_error(-EOPNOTSUPP, "ufp_advise(PAGEOUT): the pager has no "
					 "budget, hence no swap to page out to");
		pager_read_lock(p);
		mapped = pager_range_mapped(p, s, e);
		pager_read_unlock(p);
		if (!mapped)
			return ufp_error(-ENOMEM, "ufp_advise(%p, len=%zu, PAGEOUT): part of the "
					 "range is not mapped", addr, len);
		got = reclaim_pageout(p, s, e);
		STAT_INC(ufp_tstats_get(p, true), advises);
		return got < 0 ? (int)got : 0;
	}
	if (advice == UFP_ADV_WILLNEED) {
		pager_read_lock(p);
		bool mapped = pager_range_mapped(p, s, e);
		pager_read_unlock(p);
		if (!mapped)
			return -ENOMEM;
		err = advise_willneed(p, s, e);
		STAT_INC(ufp_tstats_get(p, true), advises);
		return err;
	}
	pager_write_lock(p);
	if (!pager_range_mapped(p, s, e)) {
		err = -ENOMEM;
		goto out;
	}
	if (advice == UFP_ADV_DONTNEED) {
		pager_lock_range(p, s, e);   /* in address order */
		/*
		 * madvise(DONTNEED) on a registered range raises a REMOVE event and
		 * waits until a handler thread has read it; handler threads may be
		 * waiting for the pager lock we hold. Unregister, discard, register:
		 * our structural ops raise no events, so a writer never waits for a
		 * handler. (A thread racing the discard with its own accesses may
		 * get a page the kernel zero-fills without us: still zeros.)
		 */
		uffd_unregister(p, s, len);
		if (madvise((void *)s, len, MADV_DONTNEED))
			err = -errno;
		UFP_BUG_ON(uffd_register(p, s, len) != 0);
		pager_clear_ptes(p, s, e);
	}
	STAT_INC(ufp_tstats_get(p, true), advises);
out:
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

static int do_stats_get(ufp_pager *p, struct ufp_stats *out)
{
	struct ufp_stats st;
	uint32_t size, version;

	if (!out)
		return ufp_error(-EINVAL, "ufp_stats_get: NULL out");
	size = out->size;
	version = out->version;
	if (out->version < 2 || out->version > UFP_STATS_VERSION)
		return ufp_error(-EINVAL, "ufp_stats_get: version %u unknown (this library "
				 "knows 2..%d)", out->version, UFP_STATS_VERSION);
	if (size < offsetof(struct ufp_stats, UFP_STATS_FIRST_V3))
		return ufp_error(-EINVAL, "ufp_stats_get: size %u is smaller than the "
				 "version-2 fields (%zu bytes)", size,
				 offsetof(struct ufp_stats, UFP_STATS_FIRST_V3));
	ufp_stats_merge(p, &st);
	inject_stats(&st);
	st.service_stalls = watchdog_stalls(p);
	if (!p->forked_child) {
		pager_read_lock(p);
		st.regions = p->tree.count;
		pager_read_unlock(p);
	}
	if (p->swb) {   /* the tier's content, from the backend */
		struct swb_usage u;

		swb_usage(p->swb, &u);
		st.ztier_bytes_in = u.ztier_raw_bytes;
		st.ztier_bytes_out = u.ztier_bytes_used;
	}
	/* a call that succeeds may leave a note: over budget for want of swap */
	if (p->swb && atomic_load_explicit(&p->swap_full, memory_order_relaxed) &&
	    st.resident_pages > p->budget_pages)
		ufp_set_error("ufpager: swap is full (%s): %llu pages resident against a "
			      "budget of %llu; nothing is lost, eviction resumes when swap "
			      "frees (swap_full_events %llu)",
			      strerror(p->swap_full_err ?: ENOSPC),
			      (unsigned long long)st.resident_pages,
			      (unsigned long long)p->budget_pages,
			      (unsigned long long)st.swap_full_events);
	/* never more than the caller's struct holds */
	memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
	out->size = size;
	out->version = version;
	return 0;
}

/* ======================================================================
 * Public entry points: the guard (signals, thread, error detail) around
 * the calls above.
 * ====================================================================== */

UFP_API int ufp_map(ufp_pager *p, void *hint, size_t len, int prot, unsigned flags, void **out)
{
	struct api_guard g;
	int err = api_begin(p, &g);

	if (!err)
		err = do_map(p, hint, len, prot, flags, out);
	return api_end(&g, err, "ufp_map(hint=%p, len=%zu, prot=%#x, flags=%#x)", hint, len,
		       prot, flags);
}

UFP_API int ufp_unmap(ufp_pager *p, void *addr, size_t len)
{
	struct api_guard g;
	int err = api_begin(p, &g);

	if (!err)
		err = do_unmap(p, addr, len);
	return api_end(&g, err, "ufp_unmap(%p, len=%zu)", addr, len);
}

UFP_API int ufp_protect(ufp_pager *p, void *addr, size_t len, int prot)
{
	struct api_guard g;
	int err = api_begin(p, &g);

	if (!err)
		err = do_protect(p, addr, len, prot);
	return api_end(&g, err, "ufp_protect(%p, len=%zu, prot=%#x)", addr, len, prot);
}

UFP_API int ufp_advise(ufp_pager *p, void *addr, size_t len, int advice)
{
	struct api_guard g;
	int err = api_begin(p, &g);

	if (!err)
		err = do_advise(p, addr, len, advice);
	return api_end(&g, err, "ufp_advise(%p, len=%zu, advice=%d)", addr, len, advice);
}

UFP_API int ufp_stats_get(ufp_pager *p, struct ufp_stats *out)
{
	struct api_guard g;
	int err;

	/* an inert fork child's counters are still readable */
	if (p && p->forked_child) {
		ufp_clear_error();
		return do_stats_get(p, out);
	}
	err = api_begin(p, &g);
	if (!err)
		err = do_stats_get(p, out);
	return api_end(&g, err, "ufp_stats_get");
}

/* Debug / tests: check the tree against the kernel-independent invariants. */
void pager_check_invariants(struct ufp_pager *p)
{
	pager_read_lock(p);
	region_tree_check(&p->tree);
	for (struct ufp_region *a = region_tree_next(&p->tree, 0), *b; a; a = b) {
		b = region_tree_next(&p->tree, region_end(a));
		/* adjacent plain regions with equal attributes are merged */
		UFP_BUG_ON(region_mergeable(a, b));
	}
	pager_read_unlock(p);
}

/*
 * A pager with no userfaultfd, no arena and no threads: the region tree and
 * the lock protocol alone, for the protocol benchmarks and unit tests.
 * base/size describe a notional address range that is never mapped.
 */
struct ufp_pager *pager_alloc_bare(uintptr_t base, size_t size, enum ufp_lock_mode mode)
{
	struct ufp_pager *p = aligned_alloc(UFP_CACHELINE, (sizeof(*p) + UFP_CACHELINE - 1) &
					    ~(size_t)(UFP_CACHELINE - 1));

	if (!p)
		return NULL;
	memset(p, 0, sizeof(*p));
	pager_lock_init(p, 0);
	region_tree_init(&p->tree);
	p->arena_base = base;
	p->arena_end = base + size;
	p->lock_mode = mode;
	p->uffd = -1;
	p->pagemap_fd = -1;
	p->wake_fd = -1;
	p->shared_ts.shared = true;
	pthread_mutex_init(&p->stats_lock, NULL);
	p->id = atomic_fetch_add(&next_pager_id, 1);
	return p;
}

void pager_free_bare(struct ufp_pager *p)
{
	urcu_memb_barrier();
	region_tree_destroy(&p->tree, free_region_cb);
	ufp_stats_free_all(p);
	pthread_mutex_destroy(&p->stats_lock);
	free(p);
}
