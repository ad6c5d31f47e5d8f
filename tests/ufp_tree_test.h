/* SPDX-License-Identifier: MIT */
/*
 * ufp_tree_test.h - tree lookups for tests that read the region tree from
 * outside any lock: each wraps the lookup in an RCU read section, as the
 * library's readers must (region_tree_lookup asserts it in debug builds).
 * The returned region is only a value to compare: not for use after.
 */
#ifndef UFP_TREE_TEST_H
#define UFP_TREE_TEST_H

#include "ufp_internal.h"

#define UFP_TREE_READ(call) ({ \
	__typeof__(call) _v; \
	ufp_thread_register(); \
	urcu_memb_read_lock(); \
	_v = (call); \
	urcu_memb_read_unlock(); \
	_v; \
})
#define t_lookup(t, a) UFP_TREE_READ(region_tree_lookup((t), (a)))
#define t_next(t, a) UFP_TREE_READ(region_tree_next((t), (a)))
#define t_prev(t, a) UFP_TREE_READ(region_tree_prev((t), (a)))

#endif /* UFP_TREE_TEST_H */
