/* SPDX-License-Identifier: MIT */
/*
 * region.c - region objects and the RCU-protected region tree.
 *
 * The tree is a persistent AVL tree keyed by region start: an update copies
 * only the nodes on the paths it changes (O(log n) nodes, never all regions),
 * and publishes the new root with one release store. Readers walk whatever
 * root they loaded, lock-free, inside an RCU read section (or under the
 * pager lock). Replaced nodes and detached regions are freed after a grace
 * period with call_rcu, in one batch per update. This is the user-space
 * image of the maple tree's RCU mode.
 *
 * Concurrency contract:
 *  - writers (insert/erase/commit) hold the pager lock for write;
 *  - readers (lookup/next/prev) are in an RCU read section or hold the
 *    pager lock; they never write to the tree;
 *  - a published node is immutable; a node allocated in the current update
 *    (node->gen == tree->gen) is private to the writer until commit.
 */
#include "base.h"
#include "rcu.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include <urcu/static/urcu-memb.h>   /* the reader's registered flag */

#if defined(__SANITIZE_THREAD__)
char ufp_tsan_rcu_token;
#endif

struct rtree_node {
	uintptr_t key;                 /* region start when linked */
	struct ufp_region *region;
	struct rtree_node *left, *right;
	uint64_t gen;                  /* update that allocated the node */
	int height;
	struct rtree_node *retired_next; /* writer only: retire list link */
};

struct rtree_free_batch {
	struct rcu_head rcu;
	struct rtree_node *list;
};

/* ======================================================================
 * Readers (RCU read side or pager lock).
 * ====================================================================== */

/*
 * The writer keeps the root it is building here until commit (one update at
 * a time: pager write lock), and sees it in its own lookups.
 */
static __thread struct region_tree *pending_tree;
static __thread struct rtree_node *pending_root;

static inline struct rtree_node *tree_root(struct region_tree *t)
{
	if (ufp_unlikely(pending_tree == t))
		return pending_root;
	/* acquire: pairs with the release store in region_tree_commit, so a
	 * reader sees fully initialised nodes */
	return atomic_load_explicit(&t->root, memory_order_acquire);
}

static struct rtree_node *tree_floor(struct region_tree *t, uintptr_t addr)
{
	struct rtree_node *n = tree_root(t), *best = NULL;

	while (n) {
		if (n->key <= addr) {
			best = n;
			n = n->right;
		} else {
			n = n->left;
		}
	}
	return best;
}

struct ufp_region *region_tree_lookup(struct region_tree *t, uintptr_t addr)
{
	struct rtree_node *n = tree_floor(t, addr);

	tree_assert_readable(t);

	if (!n || addr >= region_end(n->region))
		return NULL;
	return n->region;
}

struct ufp_region *region_tree_next(struct region_tree *t, uintptr_t addr)
{
	struct rtree_node *n = tree_root(t), *best = NULL;

	tree_assert_readable(t);

	while (n) {
		if (n->key >= addr) {
			best = n;
			n = n->left;
		} else {
			n = n->right;
		}
	}
	return best ? best->region : NULL;
}

struct ufp_region *region_tree_prev(struct region_tree *t, uintptr_t addr)
{
	struct rtree_node *n = tree_root(t), *best = NULL;

	tree_assert_readable(t);

	while (n) {
		if (n->key < addr) {
			best = n;
			n = n->right;
		} else {
			n = n->left;
		}
	}
	return best ? best->region : NULL;
}

/* ======================================================================
 * Writer side: path copying. Pager lock held for write.
 * ====================================================================== */

static int height(const struct rtree_node *n)
{
	return n ? n->height : 0;
}

static void fix_height(struct rtree_node *n)
{
	int l = height(n->left), r = height(n->right);

	n->height = 1 + (l > r ? l : r);
}

static void retire(struct region_tree *t, struct rtree_node *n)
{
	if (n->gen == t->gen) {        /* never published: free now */
		slab_free(n);
		return;
	}
	n->retired_next = t->retired;
	t->retired = n;
}

/* A private copy of n that this update may change. */
static struct rtree_node *mut(struct region_tree *t, struct rtree_node *n)
{
	struct rtree_node *c;

	if (n->gen == t->gen)
		return n;
	c = slab_alloc(sizeof(*c));
	UFP_BUG_ON(!c);  /* TODO-free: allocation failure mid-update cannot be undone */
	*c = *n;
	c->gen = t->gen;
	c->retired_next = NULL;
	retire(t, n);
	return c;
}

/* Rotate right (the left child rises) or left (the right child rises);
 * n is private, the child is made private. Returns the new subtree root. */
static struct rtree_node *rotate(struct region_tree *t, struct rtree_node *n, bool right)
{
	struct rtree_node **up = right ? &n->left : &n->right;
	struct rtree_node *c = mut(t, *up);
	struct rtree_node **down = right ? &c->right : &c->left;

	*up = *down;
	*down = n;
	fix_height(n);
	fix_height(c);
	return c;
}

#define rotate_right(t, n) rotate((t), (n), true)
#define rotate_left(t, n) rotate((t), (n), false)

/* n is private. */
static struct rtree_node *rebalance(struct region_tree *t, struct rtree_node *n)
{
	int bal;

	fix_height(n);
	bal = height(n->left) - height(n->right);
	if (bal > 1) {
		if (height(n->left->left) < height(n->left->right))
			n->left = rotate_left(t, mut(t, n->left));
		return rotate_right(t, n);
	}
	if (bal < -1) {
		if (height(n->right->right) < height(n->right->left))
			n->right = rotate_right(t, mut(t, n->right));
		return rotate_left(t, n);
	}
	return n;
}

static struct rtree_node *avl_insert(struct region_tree *t, struct rtree_node *n,
				     struct rtree_node *nn, int *err)
{
	if (!n)
		return nn;
	if (nn->key == n->key) {
		*err = -EEXIST;
		return n;
	}
	n = mut(t, n);
	if (nn->key < n->key)
		n->left = avl_insert(t, n->left, nn, err);
	else
		n->right = avl_insert(t, n->right, nn, err);
	return rebalance(t, n);
}

static struct rtree_node *avl_erase_min(struct region_tree *t, struct rtree_node *n,
					uintptr_t *key, struct ufp_region **reg)
{
	struct rtree_node *r;

	if (!n->left) {
		*key = n->key;
		*reg = n->region;
		r = n->right;
		retire(t, n);
		return r;
	}
	n = mut(t, n);
	n->left = avl_erase_min(t, n->left, key, reg);
	return rebalance(t, n);
}

static struct rtree_node *avl_erase(struct region_tree *t, struct rtree_node *n,
				    uintptr_t key, int *err)
{
	struct rtree_node *r;

	if (!n) {
		*err = -ENOENT;
		return NULL;
	}
	if (key == n->key) {
		if (!n->left || !n->right) {
			r = n->left ? n->left : n->right;
			retire(t, n);
			return r;
		}
		n = mut(t, n);
		n->right = avl_erase_min(t, n->right, &n->key, &n->region);
		return rebalance(t, n);
	}
	/* Probe first so that a miss copies nothing. */
	if ((key < n->key ? n->left : n->right) == NULL) {
		*err = -ENOENT;
		return n;
	}
	n = mut(t, n);
	if (key < n->key)
		n->left = avl_erase(t, n->left, key, err);
	else
		n->right = avl_erase(t, n->right, key, err);
	return rebalance(t, n);
}

/* The root being built by the current update (private until commit). */
static struct rtree_node *work_root(struct region_tree *t)
{
	return atomic_load_explicit(&t->root, memory_order_relaxed);
}

static struct rtree_node *begin_root(struct region_tree *t)
{
	if (pending_tree != t) {
		UFP_BUG_ON(pending_tree != NULL);
		pending_tree = t;
		pending_root = work_root(t);
	}
	return pending_root;
}

int region_tree_insert(struct region_tree *t, struct ufp_region *r)
{
	struct rtree_node *nn = slab_alloc(sizeof(*nn));
	struct rtree_node *root;
	int err = 0;

	tree_assert_write_locked(t);

	if (!nn)
		return -ENOMEM;
	root = begin_root(t);
	*nn = (struct rtree_node){ .key = region_start(r), .region = r,
				   .gen = t->gen, .height = 1 };
	root = avl_insert(t, root, nn, &err);
	if (err) {
		slab_free(nn);
		return err;
	}
	pending_root = root;
	t->count++;
	return 0;
}

int region_tree_erase(struct region_tree *t, uintptr_t key)
{
	struct rtree_node *root = begin_root(t);
	int err = 0;

	tree_assert_write_locked(t);

	root = avl_erase(t, root, key, &err);
	if (err)
		return err;
	pending_root = root;
	t->count--;
	return 0;
}

static void region_free_cb(struct rcu_head *head);

static void free_batch_cb(struct rcu_head *head)
{
	struct rtree_free_batch *b = caa_container_of(head, struct rtree_free_batch, rcu);
	struct rtree_node *n, *next;

	ufp_rcu_callback_begin();
	n = b->list;
	for (; n; n = next) {
		next = n->retired_next;
		slab_free(n);
	}
	slab_free(b);
}

void region_tree_commit(struct region_tree *t)
{
	tree_assert_write_locked(t);
	if (pending_tree == t) {
		/* release: pairs with the acquire in tree_root(); readers see
		 * the new nodes complete */
		atomic_store_explicit(&t->root, pending_root, memory_order_release);
		pending_tree = NULL;
		pending_root = NULL;
	}
	if (t->retired) {
		struct rtree_free_batch *b = slab_alloc(sizeof(*b));

		if (b) {
			b->list = t->retired;
			ufp_call_rcu(&b->rcu, free_batch_cb);
		} else {   /* no memory for the batch: wait here instead */
			struct rtree_free_batch tmp = { .list = t->retired };

			urcu_memb_synchronize_rcu();
			for (struct rtree_node *n = tmp.list, *next; n; n = next) {
				next = n->retired_next;
				slab_free(n);
			}
		}
		t->retired = NULL;
	}
	/* Detached regions: their grace period starts only now that no new
	 * reader can find them. */
	while (t->detached) {
		struct ufp_region *r = t->detached;

		t->detached = r->free_next;
		ufp_call_rcu(&r->rcu, region_free_cb);
	}
	t->gen++;
}

void region_tree_init(struct region_tree *t)
{
	atomic_init(&t->root, NULL);
	t->gen = 1;
	t->retired = NULL;
	t->detached = NULL;
	t->count = 0;
}

static void destroy_rec(struct rtree_node *n, void (*fn)(struct ufp_region *))
{
	if (!n)
		return;
	destroy_rec(n->left, fn);
	destroy_rec(n->right, fn);
	if (fn)
		fn(n->region);
	slab_free(n);
}

/* Teardown: no reader can exist. */
void region_tree_destroy(struct region_tree *t, void (*fn)(struct ufp_region *))
{
	UFP_BUG_ON(pending_tree == t);
	UFP_BUG_ON(t->detached != NULL);
	destroy_rec(work_root(t), fn);
	atomic_store_explicit(&t->root, NULL, memory_order_relaxed);
	t->count = 0;
}

static void walk_rec(struct rtree_node *n, void (*fn)(struct ufp_region *, void *), void *arg)
{
	if (!n)
		return;
	walk_rec(n->left, fn, arg);
	fn(n->region, arg);
	walk_rec(n->right, fn, arg);
}

void region_tree_walk(struct region_tree *t, void (*fn)(struct ufp_region *, void *), void *arg)
{
	pager_assert_locked(tree_pager(t));
	walk_rec(pending_tree == t ? pending_root : tree_root(t), fn, arg);
}

struct check_state {
	uintptr_t last_end;
	size_t count;
};

static int check_rec(struct rtree_node *n, struct check_state *cs)
{
	int lh, rh;

	if (!n)
		return 0;
	lh = check_rec(n->left, cs);
	UFP_BUG_ON(n->key != region_start(n->region));
	UFP_BUG_ON(region_start(n->region) >= region_end(n->region));
	UFP_BUG_ON(n->key < cs->last_end);       /* order and no overlap */
	UFP_BUG_ON(atomic_load(&n->region->detached));
	cs->last_end = region_end(n->region);
	cs->count++;
	rh = check_rec(n->right, cs);
	UFP_BUG_ON(lh - rh > 1 || rh - lh > 1);
	UFP_BUG_ON(n->height != 1 + (lh > rh ? lh : rh));
	return n->height;
}

size_t region_tree_check(struct region_tree *t)
{
	struct check_state cs = { 0, 0 };

	check_rec(pending_tree == t ? pending_root : tree_root(t), &cs);
	UFP_BUG_ON(cs.count != t->count);
	return cs.count;
}

/* ======================================================================
 * Region objects.
 * ====================================================================== */

static _Atomic uint64_t next_region_id = 1;

struct ufp_region *region_alloc(struct ufp_pager *p, uintptr_t start,
				uintptr_t end, int prot, unsigned flags)
{
	struct ufp_region *r = ufp_cacheline_zalloc(sizeof(*r));

	if (!r)
		return NULL;
	/* relaxed: only uniqueness matters; published with the region */
	r->id = atomic_fetch_add_explicit(&next_region_id, 1, memory_order_relaxed);
	atomic_init(&r->start, start);
	atomic_init(&r->end, end);
	atomic_init(&r->prot, prot);
	r->flags = flags;
	r->pager = p;
	atomic_init(&r->detached, false);
	atomic_init(&r->readers, 0);
	/* a sequence that cannot equal the pager's until it wraps: even values
	 * are never a write section (open sections are odd) */
	atomic_init(&r->lock_seq, atomic_load(&p->lock.seq) & ~1u);
	return r;
}

void region_free_now(struct ufp_region *r)
{
	/* a reader holding it here would be a use-after-free in the making */
	UFP_BUG_ON(atomic_load_explicit(&r->readers, memory_order_relaxed) &
		   REGION_READERS_MASK);
	slab_free(r);
}

static void region_free_cb(struct rcu_head *head)
{
	ufp_rcu_callback_begin();
	region_free_now(caa_container_of(head, struct ufp_region, rcu));
}

void region_detach(struct ufp_pager *p, struct ufp_region *r)
{
	int err;

	region_assert_write_locked(r);
	err = region_tree_erase(&p->tree, region_start(r));
	UFP_BUG_ON(err);
	/* release: pairs with the acquire in lock_region_under_rcu */
	atomic_store_explicit(&r->detached, true, memory_order_release);
	r->free_next = p->tree.detached;   /* freed after commit + grace period */
	p->tree.detached = r;
}

/* ======================================================================
 * Per-region counters, per thread (see struct ufp_rc_slot).
 * ====================================================================== */

static unsigned rc_index(uint64_t rid)
{
	return (unsigned)((rid * 0x9E3779B97F4A7C15ull) >> 60) % UFP_RC_SLOTS;
}

/* Spill slot s into its region if that region is still in the tree.
 * Caller: RCU-registered, outside or inside a read section. */
static void rc_spill(struct ufp_pager *p, struct ufp_rc_slot *s)
{
	uint64_t rid = atomic_load_explicit(&s->rid, memory_order_relaxed);
	struct ufp_region *r;

	if (!rid)
		return;
	urcu_memb_read_lock();
	r = region_tree_lookup(&p->tree, s->addr);
	if (r && r->id == rid)   /* r's memory lasts to the end of our section */
		for (unsigned k = 0; k < RC_NR; k++)
			/* relaxed: counters */
			atomic_fetch_add_explicit(&r->spill[k],
				atomic_load_explicit(&s->n[k], memory_order_relaxed),
				memory_order_relaxed);
	ufp_rcu_read_unlock();
}

void region_count(struct ufp_pager *p, struct ufp_tstats *ts, struct ufp_region *r,
		  enum ufp_rcount k)
{
	struct ufp_rc_slot *s;

	/* the shared fallback block, and threads that cannot enter an RCU read
	 * section (they serve faults under the pager lock, a shared line
	 * already): count on the region itself */
	if (ufp_unlikely(ts->shared || !URCU_TLS(urcu_memb_reader).registered)) {
		atomic_fetch_add_explicit(&r->spill[k], 1, memory_order_relaxed);
		return;
	}
	s = &ts->rc[rc_index(r->id)];
	if (ufp_unlikely(atomic_load_explicit(&s->rid, memory_order_relaxed) != r->id)) {
		rc_spill(p, s);
		/* a seqlock write: rid 0 first, so a reader that sees the
		 * zeroed counts also sees rid change (release fence: pairs
		 * with the acquire fence in region_counts_snapshot) */
		atomic_store_explicit(&s->rid, 0, memory_order_relaxed);
		atomic_thread_fence(memory_order_release);
		for (unsigned j = 0; j < RC_NR; j++)
			atomic_store_explicit(&s->n[j], 0, memory_order_relaxed);
		s->addr = region_start(r);
		/* release: the zeroed counts before the new owner */
		atomic_store_explicit(&s->rid, r->id, memory_order_release);
	}
	/* single writer: load + store, relaxed (readers merge relaxed) */
	atomic_store_explicit(&s->n[k], atomic_load_explicit(&s->n[k], memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

void region_counts_spill(struct ufp_pager *p, struct ufp_tstats *ts)
{
	bool reg = URCU_TLS(urcu_memb_reader).registered;

	if (!reg)
		urcu_memb_register_thread();
	for (unsigned i = 0; i < UFP_RC_SLOTS; i++) {
		rc_spill(p, &ts->rc[i]);
		atomic_store_explicit(&ts->rc[i].rid, 0, memory_order_relaxed);
	}
	if (!reg)
		urcu_memb_unregister_thread();
}

size_t region_counts_snapshot(struct ufp_pager *p, struct rc_snap **out)
{
	size_t n = 0, cap = 0;
	struct rc_snap *v = NULL;

	ufp_mutex_lock(&p->stats.lock, LL_STATS);
	for (struct ufp_tstats *ts = p->stats.blocks; ts; ts = ts->next)
		cap += UFP_RC_SLOTS;
	v = cap ? slab_alloc(cap * sizeof(*v)) : NULL;
	for (struct ufp_tstats *ts = p->stats.blocks; v && ts; ts = ts->next)
		for (unsigned i = 0; i < UFP_RC_SLOTS; i++) {
			struct ufp_rc_slot *s = &ts->rc[i];
			/* a seqlock read: acquire pairs with the release store
			 * of rid in region_count */
			uint64_t rid = atomic_load_explicit(&s->rid, memory_order_acquire);

			if (!rid)
				continue;
			for (unsigned k = 0; k < RC_NR; k++)
				v[n].n[k] = atomic_load_explicit(&s->n[k], memory_order_relaxed);
			/* acquire: pairs with the release fence of a take-over */
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&s->rid, memory_order_relaxed) != rid)
				continue;   /* taken over meanwhile: spilled to the region */
			v[n++].rid = rid;
		}
	ufp_mutex_unlock(&p->stats.lock, LL_STATS);
	*out = v;
	return n;
}

void region_counts_sum(const struct ufp_region *r, const struct rc_snap *s, size_t n,
		       uint64_t out[RC_NR])
{
	for (unsigned k = 0; k < RC_NR; k++)
		out[k] = atomic_load_explicit(&r->spill[k], memory_order_relaxed);
	for (size_t i = 0; i < n; i++)
		if (s[i].rid == r->id)
			for (unsigned k = 0; k < RC_NR; k++)
				out[k] += s[i].n[k];
}
