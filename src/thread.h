/* SPDX-License-Identifier: MIT */
/*
 * thread.h - the per-thread block (thread.c) and the guard of public calls (api.c).
 */
#ifndef UFP_THREAD_H
#define UFP_THREAD_H

#include <signal.h>
#include "base.h"

struct ufp_pager;
struct ufp_tstats;

/* Per-thread state (thread.c). thread_enter: register the calling
 * thread with RCU and give it its counter block for p (p may be NULL);
 * normal context. thread_mark_service: the calling thread is one of ours
 * (handler, event worker...), rcu: register it. */
void thread_enter(struct ufp_pager *p);
bool thread_rcu_registered(void);
/* The pager layer's answers, registered once (pagers.c). */
struct thread_hooks {
	bool (*id_alive)(uint64_t id);                      /* lock-free */
	void (*thread_exit)(uint64_t id, struct ufp_tstats *ts);
};
void thread_set_hooks(const struct thread_hooks *h);
/* The error detail's buffer (error.c); NULL if the block is missing. */
char *thread_error_buf(bool may_alloc, size_t *size);
bool thread_oom(void);
void thread_clear_oom(void);
bool thread_is_service(void);
int thread_mark_service(bool rcu);
void thread_unmark_service(void);
/* Public calls (api.c): api_begin checks the pager, blocks asynchronous
 * signals and enters the thread; api_end restores the mask and, for a failure
 * with no detail yet, writes "<fmt...>: <strerror>" to ufp_last_error. */
struct api_guard {
	sigset_t old;
	bool blocked;
};
int api_begin(struct ufp_pager *p, struct api_guard *g);
/* The body of a guarded public call: API_CALL(p, do_x(p, a, b), "ufp_x(%p)", a)
 * evaluates the call between api_begin and api_end and returns its result. */
#define API_CALL(p, call, ...) ({ \
	struct api_guard g_; \
	int e_ = api_begin((p), &g_); \
	if (!e_) \
		e_ = (call); \
	api_end(&g_, e_, __VA_ARGS__); \
})
int api_end(struct api_guard *g, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* UFP_THREAD_H */
