/* SPDX-License-Identifier: MIT */
/*
 * pager.c - the pager object and the mmap-like API: create/destroy,
 * map, unmap, protect, advise. Structural primitives are in mm.c, the
 * fork policy in fork.c, ufp_stats_get in pager_stats.c.
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

#include "base.h"
#include "sys.h"
#include "options.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "uffd.h"
#include "pagers.h"
#include "reclaim.h"
#include "mm.h"
#include "fault.h"
#include "delivery.h"
#include "export.h"
#include "inject.h"
#include "swap_backend.h"

static _Atomic uint64_t next_pager_id = 1;
/* Write implies read (as on x86 and arm64 page tables). */
static int prot_norm(int prot)
{
	return prot & UFP_PROT_WRITE ? prot | UFP_PROT_READ : prot;
}

/* ======================================================================
 * The swap I/O thread: an NBD store's loop (swap_nbd.c), which owns its
 * connections, under its own seccomp filter (sandbox.c, SB_SWAP_IO).
 * ====================================================================== */

static void *swap_io_main(void *arg)
{
	struct ufp_pager *p = arg;

	sandbox_enter(p, SB_SWAP_IO);
	swb_io_loop(p->swb);
	return NULL;
}

static int swap_io_start(struct ufp_pager *p)
{
	if (!p->swb || !swb_io_loop_needed(p->swb))
		return 0;
	if (service_start(&p->swap_io, swap_io_main, p)) {
		ufp_set_error("ufpager: cannot start the swap I/O thread");
		return -EAGAIN;
	}
	return 0;
}

/* After every user of the store stopped (handlers, reclaim, events). */
static void swap_io_stop(struct ufp_pager *p)
{
	_Atomic uint32_t unused = 0;

	if (!p->swap_io.started)
		return;
	swb_io_loop_stop(p->swb);
	service_stop(&p->swap_io, &unused);
}

/* ======================================================================
 * Public API.
 * ====================================================================== */

UFP_API int ufp_thread_register(void)
{
	thread_enter(NULL);
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
	p = ufp_cacheline_zalloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->uffd = -1;
	p->pagemap_fd = -1;
	p->reclaim.staging_uffd = -1;
	p->svc.wake_fd = -1;
	p->svc.kick_fd = -1;
	p->slot = UFP_MAX_PAGERS;
	err = options_resolve(params, &p->opt);
	/* a bad UFPAGER_INJECT fails here, like any bad option (process-wide:
	 * configured before any thread that could hit an injection point) */
	if (!err)
		err = inject_from_options(p->opt.inject);
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
	p->stats.shared.shared = true;
	pthread_mutex_init(&p->stats.lock, NULL);
	pager_lock_init(p, 0);
	region_tree_init(&p->tree);

	if (p->opt.arena_size < UFP_PAGE_SIZE || (p->opt.arena_size & ~UFP_PAGE_MASK)) {
		ufp_set_error("ufpager: arena_size must be a positive page multiple");
		err = -EINVAL;
		goto fail_free;
	}
	void *a = sys_mmap(NULL, p->opt.arena_size, PROT_NONE,
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
	void *pte = sys_mmap(NULL, p->npages * sizeof(uint64_t), PROT_READ | PROT_WRITE,
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
	fork_handlers_install();
	err = pagers_add(p);
	if (err) {
		ufp_set_error("ufpager: too many pagers (%d)", UFP_MAX_PAGERS);
		goto fail_sig;
	}
	/* Swap state is complete before any service thread can read it. */
	err = reclaim_init(p);
	if (!err)
		err = swap_io_start(p);
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
	/* before the exporter: it reads p->wd.dog (its thread's start
	 * orders this write before its reads) */
	watchdog_start(p);
	export_start(p);
	thread_enter(p);
	reclaim_ctx_ensure(p, thread_stats(p, true));
	*out = p;
	return 0;

fail_threads:
	reclaim_stop_thread(p);
	uffd_stop_threads(p);
	swap_io_stop(p);
	reclaim_fini(p);
	pagers_del(p);
fail_sig:
	sigbus_remove(p);
fail_uffd:
	close(p->uffd);
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
fail_pte:
	sys_munmap(p->pte, p->npages * sizeof(uint64_t));
fail_arena:
	sys_munmap(a, p->opt.arena_size);
fail_free:
	pthread_mutex_destroy(&p->stats.lock);
	slab_free(p);
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
		thread_enter(p);
		export_stop(p);        /* first: it reads the watchdog's counter */
		watchdog_stop(p);
		reclaim_stop_thread(p);
		sigbus_remove(p);
		pager_write_lock(p);
		uffd_unregister(p, p->arena_base, p->arena_end - p->arena_base);
		pager_write_unlock(p);
		uffd_stop_threads(p);
		swap_io_stop(p);
		reclaim_fini(p);
		/* every deferred free (tree nodes, regions) runs before we go */
		urcu_memb_barrier();
	}
	pagers_del(p);
	region_tree_destroy(&p->tree, p->forked_child ? NULL : free_region_cb);
	sys_munmap((void *)p->arena_base, p->arena_end - p->arena_base);
	sys_munmap(p->pte, p->npages * sizeof(uint64_t));
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
	stats_free_all(p);
	pthread_mutex_destroy(&p->stats.lock);
	slab_free(p);
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
	if (hint && mm_check_range(p, hint, len)) {
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
		err = mm_find_free(p, len, &start);
		if (err)
			goto out;
	}
	err = mm_map_locked(p, start, len, prot, 0, NULL);
	if (!err) {
		*out = (void *)start;
		STAT_INC(thread_stats(p, true), maps);
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

	err = mm_check_range(p, addr, len);
	if (err)
		return err;
	pager_write_lock(p);
	if (!mm_range_mapped(p, s, s + len) || range_has_alloc(p, s, s + len)) {
		err = -EINVAL;
		goto out;
	}
	err = mm_unmap_locked(p, s, s + len, false);
	if (!err)
		STAT_INC(thread_stats(p, true), unmaps);
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
	err = mm_check_range(p, addr, len);
	if (err)
		return err;
	pager_write_lock(p);
	if (!mm_range_mapped(p, s, e)) {
		err = -ENOMEM;
		goto out;
	}
	err = mm_gather(p, s, e, &v, &n);
	if (err)
		goto out;
	/* Allocator objects change protection only as a whole. */
	for (size_t i = 0; i < n; i++)
		if ((v[i]->flags & UFP_RF_ALLOC) &&
		    (region_start(v[i]) < s || region_end(v[i]) > e)) {
			slab_free(v);
			err = -EINVAL;
			goto out;
		}
	/* Window: prev, the overlapping regions, next; final prots; lock the
	 * regions whose attributes change and every region of a merge that
	 * involves one of them, in address order. */
	nw = n + 2;
	w = slab_calloc(nw, sizeof(*w));
	lock = slab_calloc(nw, sizeof(*lock));
	int *fprot = slab_calloc(nw, sizeof(*fprot));
	bool *chg = slab_calloc(nw, sizeof(*chg));
	if (!w || !lock || !fprot || !chg) {
		slab_free(v); slab_free(w); slab_free(lock); slab_free(fprot); slab_free(chg);
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
	/*
	 * The kernel's part first, before any region is write-locked:
	 * mprotect takes mmap_lock for write, and beside another writer in
	 * the process it waits for milliseconds. The kernel takes its VMA
	 * write locks only once it holds mmap_lock; we hold only the pager
	 * lock here (which per-region faults never take), so faults in these
	 * regions go on meanwhile. A fault that sees the old protection
	 * fills a page the kernel maps with the new one. Fails (ENOMEM at
	 * vm.max_map_count) with nothing changed.
	 */
	if (sys_mprotect((void *)s, len, prot_to_mmap(prot))) {
		err = -errno;
		slab_free(v); slab_free(w); slab_free(lock); slab_free(fprot); slab_free(chg);
		goto out;
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
			struct ufp_region *nr = mm_split(p, r, s);

			if (!nr) {
				err = -ENOMEM;
				break;
			}
			w[i] = r = nr;   /* the part inside the range */
		}
		if (region_end(r) > e && !mm_split(p, r, e)) {
			err = -ENOMEM;
			break;
		}
		atomic_store_explicit(&r->prot, prot, memory_order_relaxed);
	}
	if (err)   /* out of memory for a region: the kernel follows the tree */
		for (struct ufp_region *r = region_tree_lookup(&p->tree, s) ?:
					     region_tree_next(&p->tree, s);
		     r && region_start(r) < e; r = region_tree_next(&p->tree, region_end(r))) {
			uintptr_t a = region_start(r) < s ? s : region_start(r);
			uintptr_t b = region_end(r) > e ? e : region_end(r);

			sys_mprotect((void *)a, b - a, prot_to_mmap(region_prot(r)));
		}
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
			if (mm_mergeable(a, b) && region_is_write_locked(a) &&
			    region_is_write_locked(b)) {
				mm_merge(p, a, b);
				continue;
			}
			a = b;
		}
		STAT_INC(thread_stats(p, true), protects);
	}
	slab_free(v); slab_free(w); slab_free(lock); slab_free(fprot); slab_free(chg);
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
	struct ufp_tstats *ts = thread_stats(p, true);

	for (uintptr_t a = s; a < e; a += UFP_PAGE_SIZE) {
		uint64_t v = atomic_load_explicit(&p->pte[pte_index(p, a)], memory_order_acquire);
		int r;

		if (v & (PTE_PRESENT | PTE_POISON))
			continue;
		while ((r = fault_serve(p, ts, a, true, true)) == -EAGAIN)
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
	err = mm_check_range(p, addr, len);
	if (err)
		return err;
	if (advice == UFP_ADV_PAGEOUT) {
		long got;
		bool mapped;

		if (!p->swb)
			return ufp_error(-EOPNOTSUPP, "ufp_advise(PAGEOUT): the pager has no "
					 "budget, hence no swap to page out to");
		pager_read_lock(p);
		mapped = mm_range_mapped(p, s, e);
		pager_read_unlock(p);
		if (!mapped)
			return ufp_error(-ENOMEM, "ufp_advise(%p, len=%zu, PAGEOUT): part of the "
					 "range is not mapped", addr, len);
		got = reclaim_pageout(p, s, e);
		STAT_INC(thread_stats(p, true), advises);
		return got < 0 ? (int)got : 0;
	}
	if (advice == UFP_ADV_WILLNEED) {
		pager_read_lock(p);
		bool mapped = mm_range_mapped(p, s, e);
		pager_read_unlock(p);
		if (!mapped)
			return -ENOMEM;
		err = advise_willneed(p, s, e);
		STAT_INC(thread_stats(p, true), advises);
		return err;
	}
	pager_write_lock(p);
	if (!mm_range_mapped(p, s, e)) {
		err = -ENOMEM;
		goto out;
	}
	if (advice == UFP_ADV_DONTNEED) {
		mm_lock_range(p, s, e);   /* in address order */
		/*
		 * madvise(DONTNEED) on a registered range raises a REMOVE event and
		 * waits until a handler thread has read it; handler threads may be
		 * waiting for the pager lock we hold. Unregister, discard, register:
		 * our structural ops raise no events, so a writer never waits for a
		 * handler. (A thread racing the discard with its own accesses may
		 * get a page the kernel zero-fills without us: still zeros.)
		 */
		err = uffd_unregister(p, s, len);
		/* never on a range still registered: the REMOVE event would
		 * wait for a handler that may wait for our lock */
		if (!err && sys_madvise((void *)s, len, MADV_DONTNEED))
			err = -errno;
		/* unregistering split at most the range's own edges: this
		 * needs no new mapping, it merges them back */
		UFP_BUG_ON(uffd_register(p, s, len) != 0);
		if (err)
			ufp_set_error("ufpager: DONTNEED of [%#lx, %#lx): %s (at vm.max_map_count?)",
				      (unsigned long)s, (unsigned long)e, strerror(-err));
		else
			mm_clear_ptes(p, s, e);
	}
	STAT_INC(thread_stats(p, true), advises);
out:
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	return err;
}

/* ======================================================================
 * Public entry points: the guard (signals, thread, error detail) around
 * the calls above.
 * ====================================================================== */

UFP_API int ufp_map(ufp_pager *p, void *hint, size_t len, int prot, unsigned flags, void **out)
{
	return API_CALL(p, do_map(p, hint, len, prot, flags, out),
			"ufp_map(hint=%p, len=%zu, prot=%#x, flags=%#x)", hint, len, prot, flags);
}

UFP_API int ufp_unmap(ufp_pager *p, void *addr, size_t len)
{
	return API_CALL(p, do_unmap(p, addr, len),
			"ufp_unmap(%p, len=%zu)", addr, len);
}

UFP_API int ufp_protect(ufp_pager *p, void *addr, size_t len, int prot)
{
	return API_CALL(p, do_protect(p, addr, len, prot),
			"ufp_protect(%p, len=%zu, prot=%#x)", addr, len, prot);
}

UFP_API int ufp_advise(ufp_pager *p, void *addr, size_t len, int advice)
{
	return API_CALL(p, do_advise(p, addr, len, advice),
			"ufp_advise(%p, len=%zu, advice=%d)", addr, len, advice);
}

/*
 * A pager with no userfaultfd, no arena and no threads: the region tree and
 * the lock protocol alone, for the protocol benchmarks and unit tests.
 * base/size describe a notional address range that is never mapped.
 */
struct ufp_pager *pager_alloc_bare(uintptr_t base, size_t size, enum ufp_lock_mode mode)
{
	struct ufp_pager *p = ufp_cacheline_zalloc(sizeof(*p));

	if (!p)
		return NULL;
	pager_lock_init(p, 0);
	region_tree_init(&p->tree);
	p->arena_base = base;
	p->arena_end = base + size;
	p->lock_mode = mode;
	p->uffd = -1;
	p->pagemap_fd = -1;
	p->svc.wake_fd = -1;
	p->svc.kick_fd = -1;
	p->stats.shared.shared = true;
	pthread_mutex_init(&p->stats.lock, NULL);
	p->id = atomic_fetch_add(&next_pager_id, 1);
	return p;
}

void pager_free_bare(struct ufp_pager *p)
{
	urcu_memb_barrier();
	region_tree_destroy(&p->tree, free_region_cb);
	stats_free_all(p);
	pthread_mutex_destroy(&p->stats.lock);
	slab_free(p);
}
