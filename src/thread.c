/* SPDX-License-Identifier: MIT */
/*
 * thread.c - the library's state per thread: one pointer of thread-local
 * storage to a block allocated on the thread's first ufp_ call. The block
 * holds the thread's RCU registration, whether it is one of our service
 * threads, its counter block per pager, and its last error detail.
 *
 * The library runs in other people's threads, some with small stacks: TLS
 * is carved out of every thread's stack in the process (static TLS), so it
 * stays a pointer. A thread that never called the library has no block;
 * in a signal handler it uses the pager's shared counters and the
 * pager-lock fallback.
 *
 * Concurrency contract: a block is owned by its thread. The SIGBUS handler
 * may interrupt the owner while it grows its pager table: the table is
 * replaced, never edited in place, and the new one is published with a
 * signal fence, so the handler sees the old table or the new one, whole.
 * At thread exit every counter block is handed back to its pager (folded
 * into the pager's totals, its I/O context destroyed) if the pager lives,
 * through the hooks the pager layer registered (thread_set_hooks).
 *
 * The lowest layer with state: calls only stats.c (new counter blocks).
 * The error channel on top of the block is error.c; the guard of public
 * calls is api.c.
 */
#include <stdarg.h>
#include <sys/mman.h>

#include "base.h"
#include "stats.h"
#include "thread.h"
#include "region.h"
#include "pager.h"
#include <urcu/static/urcu-memb.h>   /* the reader's registered flag */

struct thread_ts {
	uint64_t id;                 /* pager id: unique, never reused */
	struct ufp_tstats *ts;
};

struct ufp_thread {
	struct thread_ts *tab;       /* replaced whole (signal-safe readers) */
	unsigned ntab, cap;
	unsigned last;               /* index of the last hit */
	bool is_service;             /* one of ufpager's own threads */
	bool rcu_registered;
	char last_error[512];
};

static __thread struct ufp_thread *tls_thread __attribute__((tls_model("initial-exec")));

static __thread bool tls_oom __attribute__((tls_model("initial-exec")));

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

/* What a thread's exit and a table's pruning ask of the pager layer
 * (pagers.c registers them): thread.c is below every other layer and
 * calls none of them. */
static const struct thread_hooks *_Atomic hooks;

void thread_set_hooks(const struct thread_hooks *h)
{
	/* release: pairs with the acquire loads below */
	atomic_store_explicit(&hooks, h, memory_order_release);
}

/* Thread exit: give every counter block back to its pager, leave RCU. */
static void thread_exit(void *arg)
{
	struct ufp_thread *t = arg;
	const struct thread_hooks *h = atomic_load_explicit(&hooks, memory_order_acquire);

	for (unsigned i = 0; h && i < t->ntab; i++)
		h->thread_exit(t->tab[i].id, t->tab[i].ts);
	/* not if a sandbox kill left RCU already (sandbox.c) */
	if (t->rcu_registered && URCU_TLS(urcu_memb_reader).registered)
		urcu_memb_unregister_thread();
	tls_thread = NULL;
	slab_free(t->tab);
	slab_free(t);
}

static void thread_key_make(void)
{
	pthread_key_create(&thread_key, thread_exit);
}

/* This thread's block; allocated on first use (normal context only). */
static struct ufp_thread *thread_self(bool may_alloc)
{
	struct ufp_thread *t = tls_thread;

	if (ufp_likely(t) || !may_alloc)
		return t;
	t = slab_calloc(1, sizeof(*t));
	if (!t) {
		tls_oom = true;
		return NULL;
	}
	pthread_once(&thread_key_once, thread_key_make);
	pthread_setspecific(thread_key, t);
	tls_thread = t;
	return t;
}

bool thread_is_service(void)
{
	struct ufp_thread *t = tls_thread;

	return t && t->is_service;
}

bool thread_rcu_registered(void)
{
	return URCU_TLS(urcu_memb_reader).registered;
}

/* Register the thread with RCU unless it already is (by us, or by an
 * application that uses liburcu itself: registering twice aborts inside
 * liburcu). t->rcu_registered: we did it, so we undo it at exit. */
static void thread_rcu_enter(struct ufp_thread *t)
{
	if (!t->rcu_registered && !URCU_TLS(urcu_memb_reader).registered) {
		urcu_memb_register_thread();
		t->rcu_registered = true;
	}
}

int thread_mark_service(bool rcu)
{
	struct ufp_thread *t = thread_self(true);

	if (!t)
		return -ENOMEM;
	t->is_service = true;
	if (rcu)
		thread_rcu_enter(t);
	return 0;
}

void thread_unmark_service(void)
{
	struct ufp_thread *t = tls_thread;

	if (t && t->rcu_registered) {
		urcu_memb_unregister_thread();
		t->rcu_registered = false;
	}
}

void thread_enter(struct ufp_pager *p)
{
	struct ufp_thread *t = thread_self(true);

	if (t && ufp_unlikely(!t->rcu_registered) && !t->is_service)
		thread_rcu_enter(t);
	if (p)
		thread_stats(p, true);
}

/* The calling thread's error buffer (error.c), allocating the block when
 * may_alloc; NULL if there is none (out of memory: *oom is set). */
char *thread_error_buf(bool may_alloc, size_t *size)
{
	struct ufp_thread *t = thread_self(may_alloc);

	*size = sizeof(t->last_error);
	return t ? t->last_error : NULL;
}

bool thread_oom(void)
{
	return tls_oom;
}

void thread_clear_oom(void)
{
	tls_oom = false;
}

/* ======================================================================
 * Counter blocks per pager.
 * ====================================================================== */

/* Drop entries of pagers that are gone, then make room for one more.
 * Normal context. Returns false when out of memory. */
static bool tab_make_room(struct ufp_thread *t)
{
	struct thread_ts *nt;
	unsigned n = 0, cap;

	if (t->ntab < t->cap)
		return true;
	cap = t->cap ? t->cap * 2 : 4;
	nt = slab_alloc(cap * sizeof(*nt));
	if (!nt)
		return false;
	const struct thread_hooks *h = atomic_load_explicit(&hooks, memory_order_acquire);

	for (unsigned i = 0; i < t->ntab; i++)
		if (!h || h->id_alive(t->tab[i].id))
			nt[n++] = t->tab[i];
	struct thread_ts *old = t->tab;

	/* publish whole: a signal handler on this thread sees no entries
	 * (it falls back to the shared block), or the old table, or the new */
	t->ntab = 0;
	atomic_signal_fence(memory_order_release);
	t->tab = nt;
	t->cap = cap;
	t->last = 0;
	atomic_signal_fence(memory_order_release);
	t->ntab = n;
	atomic_signal_fence(memory_order_release);
	slab_free(old);
	return true;
}

struct ufp_tstats *thread_stats(struct ufp_pager *p, bool may_alloc)
{
	struct ufp_thread *t = tls_thread;
	struct ufp_tstats *ts;

	if (t) {
		unsigned n = t->ntab, last = t->last;
		struct thread_ts *tab = t->tab;

		atomic_signal_fence(memory_order_acquire);
		if (last < n && tab[last].id == p->id)
			return tab[last].ts;
		for (unsigned i = 0; i < n; i++)
			if (tab[i].id == p->id) {
				t->last = i;
				return tab[i].ts;
			}
	}
	if (!may_alloc)
		return &p->stats.shared;
	t = thread_self(true);
	if (!t || !tab_make_room(t))
		return &p->stats.shared;
	ts = stats_block_new(p);
	if (!ts)
		return &p->stats.shared;
	t->tab[t->ntab].id = p->id;
	t->tab[t->ntab].ts = ts;
	atomic_signal_fence(memory_order_release);  /* entry before count */
	t->last = t->ntab++;
	return ts;
}

