/* SPDX-License-Identifier: MIT */
/*
 * test_region.c - the region tree alone (no userfaultfd): insert / erase /
 * lookup / next / prev against a reference model with invariants checked
 * after every update, empty and single-region trees, split / merge / trim
 * through the pager primitives, and old snapshots staying valid for
 * readers until commit + grace period.
 */
#include "ufp_test.h"
#include "ufp_internal.h"
#include "ufp_tree_test.h"

static struct ufp_pager *fake_pager(void)
{
	struct ufp_pager *p = pager_alloc_bare(0x100000000ull, 1ull << 40, UFP_LOCK_PER_REGION);

	ck_assert_ptr_nonnull(p);
	return p;
}

static void fake_pager_free(struct ufp_pager *p)
{
	pager_free_bare(p);
}

static struct ufp_region *add(struct ufp_pager *p, uintptr_t s, uintptr_t e)
{
	struct ufp_region *r = region_alloc(p, s, e, UFP_PROT_ALL, 0);

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(region_tree_insert(&p->tree, r), 0);
	return r;
}

START_TEST(empty_and_single_region_trees)
{
	struct ufp_pager *p = fake_pager();

	urcu_memb_register_thread();
	ck_assert_ptr_null(t_lookup(&p->tree, 0));
	ck_assert_ptr_null(t_lookup(&p->tree, p->arena_base));
	ck_assert_ptr_null(t_next(&p->tree, 0));
	ck_assert_ptr_null(t_prev(&p->tree, UINTPTR_MAX));
	ck_assert_uint_eq(region_tree_check(&p->tree), 0);

	pager_write_lock(p);
	struct ufp_region *r = add(p, p->arena_base + PAGE, p->arena_base + 3 * PAGE);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	ck_assert_ptr_null(t_lookup(&p->tree, p->arena_base));
	ck_assert_ptr_eq(t_lookup(&p->tree, p->arena_base + PAGE), r);
	ck_assert_ptr_eq(t_lookup(&p->tree, p->arena_base + 3 * PAGE - 1), r);
	ck_assert_ptr_null(t_lookup(&p->tree, p->arena_base + 3 * PAGE));
	ck_assert_ptr_eq(t_next(&p->tree, 0), r);
	ck_assert_ptr_null(t_next(&p->tree, p->arena_base + PAGE + 1));
	ck_assert_ptr_eq(t_prev(&p->tree, UINTPTR_MAX), r);
	ck_assert_ptr_null(t_prev(&p->tree, p->arena_base + PAGE));
	ck_assert_uint_eq(region_tree_check(&p->tree), 1);

	pager_write_lock(p);
	region_write_lock(r);
	region_detach(p, r);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	ck_assert_ptr_null(t_lookup(&p->tree, p->arena_base + PAGE));
	ck_assert_uint_eq(region_tree_check(&p->tree), 0);
	fake_pager_free(p);
	urcu_memb_unregister_thread();
}
END_TEST

/* Random inserts / erases against a bitmap model of slot occupancy. */
START_TEST(random_updates_match_reference_model)
{
	enum { SLOTS = 2000, OPS = 20000 };
	struct ufp_pager *p = fake_pager();
	static struct ufp_region *model[SLOTS];
	unsigned seed = 12345;

	memset(model, 0, sizeof(model));
	urcu_memb_register_thread();
	for (unsigned op = 0; op < OPS; op++) {
		unsigned slot = (unsigned)rand_r(&seed) % SLOTS;
		uintptr_t s = p->arena_base + (uintptr_t)slot * 4 * PAGE;

		pager_write_lock(p);
		if (model[slot]) {
			region_write_lock(model[slot]);
			region_detach(p, model[slot]);
			model[slot] = NULL;
		} else {
			/* 1..3 pages long so neighbours never overlap */
			model[slot] = add(p, s, s + (1 + (uintptr_t)(op % 3)) * PAGE);
		}
		if (op % 7)   /* several updates in one commit sometimes */
			region_tree_commit(&p->tree);
		pager_write_unlock(p);
		if (op % 97 == 0 || op == OPS - 1) {
			size_t n = 0;

			for (unsigned i = 0; i < SLOTS; i++)
				n += model[i] != NULL;
			pager_write_lock(p);
			region_tree_commit(&p->tree);
			ck_assert_uint_eq(region_tree_check(&p->tree), n);
			pager_write_unlock(p);
			for (unsigned i = 0; i < SLOTS; i++) {
				uintptr_t a = p->arena_base + (uintptr_t)i * 4 * PAGE;

				ck_assert_ptr_eq(t_lookup(&p->tree, a), model[i]);
				ck_assert_ptr_eq(t_lookup(&p->tree, a + 3 * PAGE), NULL);
			}
		}
	}
	pager_write_lock(p);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	fake_pager_free(p);
	urcu_memb_unregister_thread();
}
END_TEST

/* Split, merge and trim through the pager primitives keep the tree valid. */
START_TEST(split_merge_keep_invariants)
{
	struct ufp_pager *p = fake_pager();
	uintptr_t b = p->arena_base;

	urcu_memb_register_thread();
	pager_write_lock(p);
	struct ufp_region *r = add(p, b, b + 16 * PAGE);
	region_write_lock(r);
	struct ufp_region *h = mm_split(p, r, b + 4 * PAGE);
	ck_assert_ptr_nonnull(h);
	struct ufp_region *t = mm_split(p, h, b + 8 * PAGE);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(region_tree_check(&p->tree), 3);
	ck_assert_ptr_eq(t_lookup(&p->tree, b + 5 * PAGE), h);
	ck_assert_ptr_eq(t_lookup(&p->tree, b + 8 * PAGE), t);
	ck_assert(region_is_write_locked(h) && region_is_write_locked(t));
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	/* the section ended: every mark is released at once */
	ck_assert(!region_is_write_locked(r) && !region_is_write_locked(h));

	pager_write_lock(p);
	region_write_lock(r);
	region_write_lock(h);
	mm_merge(p, r, h);
	ck_assert_uint_eq(region_end(r), b + 8 * PAGE);
	region_write_lock(t);
	mm_merge(p, r, t);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	ck_assert_uint_eq(region_tree_check(&p->tree), 1);
	ck_assert_ptr_eq(t_lookup(&p->tree, b + 15 * PAGE), r);
	fake_pager_free(p);
	urcu_memb_unregister_thread();
}
END_TEST

/* A reader holding an old root keeps a consistent snapshot. */
START_TEST(old_snapshot_stays_readable_until_grace_period)
{
	struct ufp_pager *p = fake_pager();
	uintptr_t b = p->arena_base;

	urcu_memb_register_thread();
	pager_write_lock(p);
	for (int i = 0; i < 64; i++)
		add(p, b + (uintptr_t)i * 2 * PAGE, b + (uintptr_t)i * 2 * PAGE + PAGE);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);

	urcu_memb_read_lock();
	struct ufp_region *before = t_lookup(&p->tree, b + 8 * PAGE);
	pager_write_lock(p);
	for (int i = 0; i < 64; i += 2) {
		struct ufp_region *r = t_lookup(&p->tree, b + (uintptr_t)i * 2 * PAGE);
		region_write_lock(r);
		region_detach(p, r);
	}
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
	/* still in the read section: the old region memory is intact */
	ck_assert_uint_eq(region_start(before), b + 8 * PAGE);
	ck_assert(atomic_load(&before->detached));
	ck_assert_ptr_null(t_lookup(&p->tree, b + 8 * PAGE));
	urcu_memb_read_unlock();
	ck_assert_uint_eq(region_tree_check(&p->tree), 32);
	fake_pager_free(p);
	urcu_memb_unregister_thread();
}
END_TEST

/*
 * A split shrinks the old region's end in place before the new half is
 * published: a reader on the old root finds no region for an address in
 * the upper half. That must mean "fall back to the pager lock", never
 * "unmapped" (which would kill the faulting thread with SIGBUS).
 */
struct split_reader {
	struct ufp_pager *p;
	uintptr_t addr;
	bool aborted;
	struct ufp_region *got;
};

static void *split_reader_main(void *arg)
{
	struct split_reader *sr = arg;

	urcu_memb_register_thread();
	sr->got = lock_region_under_rcu(sr->p, sr->addr, thread_stats(sr->p, true),
					&sr->aborted);
	if (sr->got)
		region_read_unlock(sr->got);
	urcu_memb_unregister_thread();
	return NULL;
}

START_TEST(lookup_during_unpublished_split_falls_back)
{
	struct ufp_pager *p = fake_pager();
	uintptr_t b = p->arena_base;
	struct split_reader sr = { .p = p, .addr = b + 6 * PAGE };
	pthread_t t;

	urcu_memb_register_thread();
	pager_write_lock(p);
	struct ufp_region *r = add(p, b, b + 8 * PAGE);
	region_tree_commit(&p->tree);
	pager_write_unlock(p);

	pager_write_lock(p);
	region_write_lock(r);
	ck_assert_ptr_nonnull(mm_split(p, r, b + 4 * PAGE));   /* not committed */
	pthread_create(&t, NULL, split_reader_main, &sr);
	pthread_join(t, NULL);
	ck_assert_ptr_null(sr.got);
	ck_assert_msg(sr.aborted, "an unpublished split must not look like an unmapped address");
	region_tree_commit(&p->tree);
	pager_write_unlock(p);

	sr.aborted = false;
	pthread_create(&t, NULL, split_reader_main, &sr);
	pthread_join(t, NULL);
	ck_assert_ptr_nonnull(sr.got);
	ck_assert_uint_eq(region_start(sr.got), b + 4 * PAGE);
	fake_pager_free(p);
	urcu_memb_unregister_thread();
}
END_TEST

static Suite *region_suite(void)
{
	Suite *s = suite_create("region");
	TCase *tc = tcase_create("tree");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, empty_and_single_region_trees);
	tcase_add_test(tc, random_updates_match_reference_model);
	tcase_add_test(tc, split_merge_keep_invariants);
	tcase_add_test(tc, old_snapshot_stays_readable_until_grace_period);
	tcase_add_test(tc, lookup_during_unpublished_split_falls_back);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ufp_run_suite(region_suite());
}
