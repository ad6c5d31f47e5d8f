/* SPDX-License-Identifier: MIT */
/*
 * rcu.h - liburcu as the library uses it (memb flavour), and the ThreadSanitizer
 * annotations of its grace periods.
 */
#ifndef UFP_RCU_H
#define UFP_RCU_H


#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu/urcu-memb.h>
#include <urcu/call-rcu.h>
#include <urcu/wfcqueue.h>

/*
 * ThreadSanitizer cannot see liburcu's grace periods (its atomics and
 * futexes are not instrumented), so it would report every deferred free as
 * a race with the readers that preceded it. In TSan builds the RCU
 * primitives are wrapped to state the real happens-before edges: the end of
 * every read section, and every call_rcu, "release" a token that each
 * callback "acquires" (a grace period orders all earlier read sections
 * before the callback). No effect in other builds.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char ufp_tsan_rcu_token;
#define ufp_rcu_read_unlock() \
	do { __tsan_release(&ufp_tsan_rcu_token); urcu_memb_read_unlock(); } while (0)
#define ufp_call_rcu(head, fn) \
	do { __tsan_release(&ufp_tsan_rcu_token); urcu_memb_call_rcu(head, fn); } while (0)
#define ufp_rcu_callback_begin() __tsan_acquire(&ufp_tsan_rcu_token)
/* liburcu's wait-free queue hands a node over with its own (uninstrumented)
 * atomics: the enqueuer releases the node, the dequeuer acquires it */
#define ufp_tsan_handoff_release(node) __tsan_release(node)
#define ufp_tsan_handoff_acquire(node) __tsan_acquire(node)
#else
#define ufp_tsan_handoff_release(node) ((void)(node))
#define ufp_tsan_handoff_acquire(node) ((void)(node))
#define ufp_rcu_read_unlock() urcu_memb_read_unlock()
#define ufp_call_rcu(head, fn) urcu_memb_call_rcu(head, fn)
#define ufp_rcu_callback_begin() ((void)0)
#endif

#endif /* UFP_RCU_H */
