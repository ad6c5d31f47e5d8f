/* SPDX-License-Identifier: MIT */
/*
 * test_api.c - the public API: a misuse table (every bad argument gets its
 * errno, nothing crashes, nothing changes), a randomized model test of
 * map / unmap / protect / advise against a page-level reference model and
 * the kernel's own view (/proc/self/maps), and the allocator calls.
 */
#include <signal.h>
#include <sys/mman.h>
#include "ufp_test.h"
#include "ufp_internal.h"

static unsigned delivery_of(int i) { return i ? UFP_DELIVERY_HANDLER : UFP_DELIVERY_SIGBUS; }

START_TEST(misuse_table_returns_errno)
{
	ufp_pager *p = ufp_test_pager(delivery_of(_i), 0, 64 * PAGE);
	struct ufp_params bad = { .size = 3, .version = UFP_PARAMS_VERSION };
	void *m, *o, *x;
	size_t sz;
	ufp_pager *q;

	/* create / destroy */
	ck_assert_int_eq(ufp_pager_create(NULL, NULL), -EINVAL);
	ck_assert_int_eq(ufp_pager_create(&bad, &q), -EINVAL);
	bad = (struct ufp_params){ .size = sizeof(bad), .version = 99 };
	ck_assert_int_eq(ufp_pager_create(&bad, &q), -EINVAL);
	bad = (struct ufp_params){ .size = sizeof(bad), .version = UFP_PARAMS_VERSION, .flags = 1u << 30 };
	ck_assert_int_eq(ufp_pager_create(&bad, &q), -EINVAL);
	bad = (struct ufp_params){ .size = sizeof(bad), .version = UFP_PARAMS_VERSION, .lock_mode = 99 };
	ck_assert_int_eq(ufp_pager_create(&bad, &q), -EINVAL);
	bad = (struct ufp_params){ .size = sizeof(bad), .version = UFP_PARAMS_VERSION, .arena_size = 12345 };
	ck_assert_int_eq(ufp_pager_create(&bad, &q), -EINVAL);
	ck_assert_int_eq(ufp_pager_destroy(NULL), -EINVAL);

	/* map */
	ck_assert_int_eq(ufp_map(NULL, NULL, PAGE, UFP_PROT_ALL, 0, &m), -EINVAL);
	ck_assert_int_eq(ufp_map(p, NULL, 0, UFP_PROT_ALL, 0, &m), -EINVAL);
	ck_assert_int_eq(ufp_map(p, NULL, 100, UFP_PROT_ALL, 0, &m), -EINVAL);
	ck_assert_int_eq(ufp_map(p, NULL, PAGE, 0x40, 0, &m), -EINVAL);
	ck_assert_int_eq(ufp_map(p, NULL, PAGE, UFP_PROT_ALL, 0x80, &m), -EINVAL);
	ck_assert_int_eq(ufp_map(p, NULL, PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &m), -EINVAL);
	ck_assert_int_eq(ufp_map(p, NULL, PAGE, UFP_PROT_ALL, 0, NULL), -EINVAL);
	ck_assert_int_eq(ufp_map(p, (void *)0x1000, PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &m), -EINVAL);
	ck_assert_int_eq(ufp_map(p, NULL, 65 * PAGE, UFP_PROT_ALL, 0, &m), -ENOMEM);
	ck_assert_int_eq(ufp_map(p, NULL, 8 * PAGE, UFP_PROT_ALL, 0, &m), 0);
	ck_assert_int_eq(ufp_map(p, (char *)m + 1, PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &x), -EINVAL);
	ck_assert_int_eq(ufp_map(p, (char *)m + PAGE, PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &x), -EEXIST);

	/* unmap */
	ck_assert_int_eq(ufp_unmap(p, (char *)m + 1, PAGE), -EINVAL);
	ck_assert_int_eq(ufp_unmap(p, m, 0), -EINVAL);
	ck_assert_int_eq(ufp_unmap(p, m, PAGE + 1), -EINVAL);
	ck_assert_int_eq(ufp_unmap(p, (void *)0x1000, PAGE), -EINVAL);
	ck_assert_int_eq(ufp_unmap(p, m, 9 * PAGE), -EINVAL);   /* runs past the map */
	ck_assert_int_eq(ufp_unmap(p, (char *)m + 7 * PAGE, PAGE), 0);
	ck_assert_int_eq(ufp_unmap(p, (char *)m + 7 * PAGE, PAGE), -EINVAL); /* double */

	/* protect / advise */
	ck_assert_int_eq(ufp_protect(p, m, PAGE, 0x10), -EINVAL);
	ck_assert_int_eq(ufp_protect(p, (char *)m + 1, PAGE, UFP_PROT_READ), -EINVAL);
	ck_assert_int_eq(ufp_protect(p, m, 8 * PAGE, UFP_PROT_READ), -ENOMEM);
	ck_assert_int_eq(ufp_advise(p, m, PAGE, 77), -EINVAL);
	ck_assert_int_eq(ufp_advise(p, m, 8 * PAGE, UFP_ADV_DONTNEED), -ENOMEM);
	ck_assert_int_eq(ufp_advise(p, m, 7 * PAGE, UFP_ADV_WILLNEED), 0);

	/* allocator */
	ck_assert_int_eq(ufp_alloc(p, 0, &o), -EINVAL);
	ck_assert_int_eq(ufp_alloc(p, 10, NULL), -EINVAL);
	ck_assert_int_eq(ufp_alloc(p, 1ull << 50, &o), -ENOMEM);
	ck_assert_int_eq(ufp_alloc(p, 3 * PAGE + 5, &o), 0);
	ck_assert_int_eq(ufp_alloc_size(p, o, &sz), 0);
	ck_assert_uint_eq(sz, 3 * PAGE + 5);
	ck_assert_int_eq(ufp_unmap(p, o, PAGE), -EINVAL);        /* objects: ufp_free */
	ck_assert_int_eq(ufp_protect(p, o, PAGE, UFP_PROT_READ), -EINVAL); /* partial */
	ck_assert_int_eq(ufp_free(p, (char *)o + PAGE), -EINVAL);
	ck_assert_int_eq(ufp_free(p, m), -EINVAL);               /* not an object */
	ck_assert_int_eq(ufp_realloc(p, o, 0, &x), -EINVAL);
	ck_assert_int_eq(ufp_realloc(p, (char *)o + 8, PAGE, &x), -EINVAL);
	ck_assert_int_eq(ufp_free(p, o), 0);
	ck_assert_int_eq(ufp_free(p, o), -EINVAL);               /* double free */
	ck_assert_int_eq(ufp_free(p, NULL), 0);
	ck_assert_int_eq(ufp_alloc_size(p, o, &sz), -EINVAL);

	/* stats */
	struct ufp_stats st = { .size = 8, .version = UFP_STATS_VERSION };
	ck_assert_int_eq(ufp_stats_get(p, &st), -EINVAL);
	st = (struct ufp_stats){ .size = sizeof(st), .version = 7 };
	ck_assert_int_eq(ufp_stats_get(p, &st), -EINVAL);
	ck_assert_int_eq(ufp_stats_get(NULL, &st), -EINVAL);

	mm_check_invariants(p);
	ck_assert_int_eq(ufp_pager_destroy(p), 0);
}
END_TEST

/* ---- randomized model test ---------------------------------------------- */

#define MPAGES 192

struct mpage {
	bool mapped;
	int prot;
	uint32_t gen;    /* 0: reads zero */
};

/* Protection of each arena page as the kernel sees it. */
static void kernel_prots(uintptr_t base, int *out)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < MPAGES; i++)
		out[i] = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3)
			continue;
		if (s < base)
			s = base;
		if (e > base + MPAGES * PAGE)
			e = base + MPAGES * PAGE;
		for (unsigned long a = s; a < e; a += PAGE) {
			out[(a - base) / PAGE] = (perms[0] == 'r' ? UFP_PROT_READ : 0) |
						 (perms[1] == 'w' ? UFP_PROT_WRITE : 0);
		}
	}
	fclose(f);
}

static void check_model(ufp_pager *p, uintptr_t base, struct mpage *m, bool contents)
{
	struct ufp_pager *ip = (struct ufp_pager *)p;
	int kp[MPAGES];

	mm_check_invariants(ip);
	kernel_prots(base, kp);
	pager_read_lock(ip);
	for (int i = 0; i < MPAGES; i++) {
		uintptr_t a = base + (uintptr_t)i * PAGE;
		struct ufp_region *r = region_tree_lookup(&ip->tree, a);

		ck_assert_msg((r != NULL) == m[i].mapped, "page %d mapped %d tree %p", i,
			      m[i].mapped, (void *)r);
		if (r)
			ck_assert_int_eq(region_prot(r), m[i].prot);
		/* the kernel agrees: unmapped pages are our PROT_NONE reserve */
		ck_assert_msg(kp[i] == (m[i].mapped ? m[i].prot : 0),
			      "page %d kernel prot %d model %d", i, kp[i], m[i].prot);
	}
	pager_read_unlock(ip);
	if (!contents)
		return;
	for (int i = 0; i < MPAGES; i++) {
		void *pg = (void *)(base + (uintptr_t)i * PAGE);

		if (!m[i].mapped || !(m[i].prot & UFP_PROT_READ))
			continue;
		ck_assert_int_eq(ufp_check_page(pg, m[i].gen), m[i].gen ? 0 : 1);
	}
}

START_TEST(random_ops_match_reference_model)
{
	ufp_pager *p = ufp_test_pager(delivery_of(_i), 0, MPAGES * PAGE);
	struct ufp_pager *ip = (struct ufp_pager *)p;
	uintptr_t base = ip->arena_base;
	static struct mpage m[MPAGES];
	unsigned seed = 777 + (unsigned)_i;
	uint32_t gen = 1;

	memset(m, 0, sizeof(m));
	for (int op = 0; op < 3000; op++) {
		int s = rand_r(&seed) % MPAGES, n = 1 + rand_r(&seed) % 16, k = rand_r(&seed) % 6;
		bool all = true, none = true;
		void *addr = (void *)(base + (uintptr_t)s * PAGE), *out;
		int r, prot = rand_r(&seed) % 4;

		if (prot & UFP_PROT_WRITE)   /* write implies read */
			prot |= UFP_PROT_READ;

		if (s + n > MPAGES)
			n = MPAGES - s;
		for (int i = s; i < s + n; i++) {
			all &= m[i].mapped;
			none &= !m[i].mapped;
		}
		switch (k) {
		case 0:  /* map fixed */
			r = ufp_map(p, addr, (size_t)n * PAGE, prot, UFP_MAP_FIXED, &out);
			ck_assert_int_eq(r, none ? 0 : -EEXIST);
			if (!r)
				for (int i = s; i < s + n; i++)
					m[i] = (struct mpage){ true, prot, 0 };
			break;
		case 1:  /* unmap */
			r = ufp_unmap(p, addr, (size_t)n * PAGE);
			ck_assert_int_eq(r, all ? 0 : -EINVAL);
			if (!r)
				for (int i = s; i < s + n; i++)
					m[i] = (struct mpage){ 0 };
			break;
		case 2:  /* protect */
			r = ufp_protect(p, addr, (size_t)n * PAGE, prot);
			ck_assert_int_eq(r, all ? 0 : -ENOMEM);
			if (!r)
				for (int i = s; i < s + n; i++)
					m[i].prot = prot;
			break;
		case 3:  /* DONTNEED */
			r = ufp_advise(p, addr, (size_t)n * PAGE, UFP_ADV_DONTNEED);
			ck_assert_int_eq(r, all ? 0 : -ENOMEM);
			if (!r)
				for (int i = s; i < s + n; i++)
					m[i].gen = 0;
			break;
		default: /* write a new generation where writable */
			gen++;
			for (int i = s; i < s + n; i++)
				if (m[i].mapped && m[i].prot == UFP_PROT_ALL) {
					ufp_fill_page((void *)(base + (uintptr_t)i * PAGE), gen);
					m[i].gen = gen;
				}
			break;
		}
		check_model(p, base, m, op % 50 == 0);
	}
	check_model(p, base, m, true);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(allocator_objects_keep_contents_through_realloc)
{
	ufp_pager *p = ufp_test_pager(delivery_of(_i), 0, 0);
	enum { N = 64 };
	void *obj[N];
	size_t len[N];
	unsigned seed = 99;

	for (int i = 0; i < N; i++) {
		len[i] = (size_t)(1 + rand_r(&seed) % 40) * PAGE;
		ck_assert_int_eq(ufp_alloc(p, len[i], &obj[i]), 0);
		for (size_t o = 0; o < len[i]; o += PAGE)
			if (o % (3 * PAGE) == 0)   /* leave holes: they must read zero */
				ufp_fill_page((char *)obj[i] + o, (uint32_t)i + 1);
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < N; i++) {
			size_t nl = (size_t)(1 + rand_r(&seed) % 60) * PAGE;
			void *np;
			uint8_t *old_base = obj[i];

			/* content is addressed relative to the object */
			for (size_t o = 0; o < len[i] && o < nl; o += PAGE)
				if (o % (3 * PAGE) == 0)
					ufp_fill_page(old_base + o, (uint32_t)i + 1);
			ck_assert_int_eq(ufp_realloc(p, obj[i], nl, &np), 0);
			/* patterns depend on the address: check against old positions */
			for (size_t o = 0; o < len[i] && o < nl; o += PAGE) {
				uint64_t want = o % (3 * PAGE) == 0 ?
					ufp_pattern((uintptr_t)(old_base + o), (uint32_t)i + 1) : 0;
				ck_assert_uint_eq(*(uint64_t *)((char *)np + o), want);
			}
			for (size_t o = len[i]; o < nl; o += PAGE)
				ck_assert_uint_eq(*(uint64_t *)((char *)np + o), 0);
			/* rewrite in place at the new address for the next round */
			memset(np, 0, nl);
			obj[i] = np;
			len[i] = nl;
		}
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(ufp_free(p, obj[i]), 0);
	mm_check_invariants((struct ufp_pager *)p);
	ufp_pager_destroy(p);
}
END_TEST

START_TEST(options_parse_sizes_and_env)
{
	uint64_t v;
	struct ufp_options o;

	ck_assert_int_eq(options_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(options_parse_size("256M", &v), 0);
	ck_assert_uint_eq(v, 256ull << 20);
	ck_assert_int_eq(options_parse_size("2g", &v), 0);
	ck_assert_uint_eq(v, 2ull << 30);
	ck_assert_int_eq(options_parse_size("1KB", &v), 0);
	ck_assert_int_eq(options_parse_size("-1", &v), -EINVAL);
	ck_assert_int_eq(options_parse_size("12Q", &v), -EINVAL);
	ck_assert_int_eq(options_parse_size("", &v), -EINVAL);
	ck_assert_int_eq(options_parse_size("99999999999T", &v), -EINVAL);

	setenv("UFPAGER_LOCK_MODE", "global", 1);
	setenv("UFPAGER_BUDGET", "64M", 1);
	/* a bad environment value is refused, with the variable named */
	setenv("UFPAGER_FAULT_AROUND", "nonsense", 1);
	ck_assert_int_eq(options_resolve(NULL, &o), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ufp_last_error(), "UFPAGER_FAULT_AROUND=nonsense"));
	unsetenv("UFPAGER_FAULT_AROUND");
	/* one validation for both sources: the API's limits hold for the
	 * environment too */
	static const char *bad_env[][2] = {
		{ "UFPAGER_FAULT_AROUND", "100000" }, { "UFPAGER_HANDLER_THREADS", "2000" },
		{ "UFPAGER_BUDGET", "12345" }, { "UFPAGER_ARENA_SIZE", "4097" },
		{ "UFPAGER_SPIN_US", "-2" }, { "UFPAGER_DIRTY_TRACK", "2" },
	};
	for (unsigned k = 0; k < sizeof(bad_env) / sizeof(bad_env[0]); k++) {
		char *old = getenv(bad_env[k][0]) ? strdup(getenv(bad_env[k][0])) : NULL;

		setenv(bad_env[k][0], bad_env[k][1], 1);
		ck_assert_msg(options_resolve(NULL, &o) == -EINVAL, "%s=%s accepted",
			      bad_env[k][0], bad_env[k][1]);
		ck_assert_msg(strstr(ufp_last_error(), bad_env[k][0]), "detail '%s' names no variable",
			      ufp_last_error());
		if (old)
			setenv(bad_env[k][0], old, 1);
		else
			unsetenv(bad_env[k][0]);
		free(old);
	}
	struct ufp_params bad = { .size = sizeof(bad), .version = UFP_PARAMS_VERSION,
				  .handler_threads = 2000 };
	ck_assert_int_eq(options_resolve(&bad, &o), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ufp_last_error(), "handler_threads"));
	bad = (struct ufp_params){ .size = sizeof(bad), .version = UFP_PARAMS_VERSION,
				   .budget = 12345 };
	ck_assert_int_eq(options_resolve(&bad, &o), -EINVAL);
	ck_assert_ptr_nonnull(strstr(ufp_last_error(), "page size"));
	ck_assert_int_eq(options_resolve(NULL, &o), 0);
	ck_assert_uint_eq(o.lock_mode, UFP_LOCK_GLOBAL);
	ck_assert_int_eq(o.src[3], UFP_SRC_ENV);
	ck_assert_uint_eq(o.budget, 64ull << 20);
	ck_assert_uint_eq(o.fault_around, 16);
	ck_assert_int_eq(o.src[6], UFP_SRC_DEFAULT);
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
				 .lock_mode = UFP_LOCK_PER_REGION };
	ck_assert_int_eq(options_resolve(&pr, &o), 0);   /* API beats env */
	ck_assert_uint_eq(o.lock_mode, UFP_LOCK_PER_REGION);
	ck_assert_int_eq(o.src[3], UFP_SRC_API);
	unsetenv("UFPAGER_LOCK_MODE");
	unsetenv("UFPAGER_BUDGET");
	unsetenv("UFPAGER_FAULT_AROUND");
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("api");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, misuse_table_returns_errno, 0, 2);
	tcase_add_loop_test(tc, random_ops_match_reference_model, 0, 2);
	tcase_add_loop_test(tc, allocator_objects_keep_contents_through_realloc, 0, 2);
	tcase_add_test(tc, options_parse_sizes_and_env);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ufp_test_require_uffd();
	return ufp_run_suite(api_suite());
}
