/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api.c - libFuzzer target for the public API. The input is a program:
 * its first byte picks a pager configuration, every following group of
 * bytes one call (map, unmap, protect, advise, alloc, free, realloc,
 * alloc_size, stats, misuse, a full check) or an access (write a page pattern, read and
 * check it). Each call runs against the pager and a page-level reference
 * model; a return code, a page's content, the region count, the kernel's
 * view of the protections (/proc/self/maps) or a tree invariant that
 * disagrees with the model aborts: that is a finding.
 *
 * One pager per configuration per process (creation starts threads), made
 * on first use, after libFuzzer installed its signal handlers, so the
 * pager's SIGBUS handler sits in front of them. A 4 MiB arena and a 1 MiB
 * budget make eviction, the swap tiers and swap-in run. Every input ends
 * with a full check and then frees and unmaps everything, so inputs do not
 * depend on each other (only the pager's bump pointer and its swap slots
 * carry over, which the model does not predict).
 *
 * Single-threaded: the pager's own threads (reclaim, handlers) are the
 * only concurrency.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ufpager.h"
#include "ufp_internal.h"

#define PAGE     4096UL
#define NPAGES   1024                 /* arena: 4 MiB */
#define BUDGET   (1ul << 20)          /* 256 resident pages: eviction runs */
#define MAXOBJ   16

/* ---- pagers ------------------------------------------------------------ */

static const struct {
	const char *name;
	uint32_t delivery, lock_mode;
} configs[] = {
	{ "sigbus/per-region", UFP_DELIVERY_SIGBUS, UFP_LOCK_PER_REGION },
	{ "handler/per-region", UFP_DELIVERY_HANDLER, UFP_LOCK_PER_REGION },
	{ "sigbus/global", UFP_DELIVERY_SIGBUS, UFP_LOCK_GLOBAL },
};
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))

static ufp_pager *pagers[NCONFIGS];

static ufp_pager *get_pager(unsigned c)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION,
		.arena_size = NPAGES * PAGE, .budget = BUDGET,
		.delivery = configs[c].delivery, .lock_mode = configs[c].lock_mode,
		.swap_size = 8ul << 20, .ztier_size = 256ul << 10,
		.flags = UFP_PF_NO_EXPORT,
	};
	int r;

	if (pagers[c])
		return pagers[c];
	r = ufp_pager_create(&pr, &pagers[c]);
	if (r) {
		/* not a finding: this machine cannot run the target at all */
		fprintf(stderr, "%sfuzz_api: ufp_pager_create(%s): %s\n%s\n",
			r == -EPERM || r == -ENOSYS || r == -EACCES || r == -EOPNOTSUPP ?
			"SKIP: " : "", configs[c].name, strerror(-r), ufp_last_error());
		exit(r == -EPERM || r == -ENOSYS || r == -EACCES || r == -EOPNOTSUPP ? 77 : 1);
	}
	return pagers[c];
}

/* ---- the reference model ------------------------------------------------ */

enum { FREE, PLAIN, OBJ };

struct mpage {
	uint8_t kind;    /* FREE, PLAIN (ufp_map) or OBJ (ufp_alloc) */
	uint8_t prot;    /* normalised: write implies read */
	uint8_t obj;     /* OBJ: index in objs[] */
	uint64_t tag;    /* content: 0 reads zeros, else fill_page(tag) */
};

struct mobj {
	bool live;
	size_t start, npages, size;
};

static struct mpage m[NPAGES];
static struct mobj objs[MAXOBJ];
static uint64_t next_tag = 1;
static uintptr_t base;
static ufp_pager *pg;
static unsigned cfg;
static long op_no;

#define FAIL(...) do {                                                          \
	fprintf(stderr, "fuzz_api: %s: op %ld: ", configs[cfg].name, op_no);   \
	fprintf(stderr, __VA_ARGS__);                                           \
	fputc('\n', stderr);                                                    \
	abort();                                                                \
} while (0)

#define EXPECT(call, want) do {                                                 \
	int got_ = (call), want_ = (want);                                      \
	if (got_ != want_)                                                      \
		FAIL("%s returned %d, the model expects %d (%s)", #call, got_,  \
		     want_, ufp_last_error());                                  \
} while (0)

static void *addr_of(size_t page)
{
	return (void *)(base + page * PAGE);
}

static int prot_norm(int prot)
{
	return prot & UFP_PROT_WRITE ? UFP_PROT_ALL : prot;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 29;
	x *= 0x94D049BB133111EBull;
	return x ^ (x >> 32);
}

/* Content is a function of the tag alone, so it survives realloc moves. */
static void fill_page(size_t page, uint64_t tag)
{
	uint64_t *w = addr_of(page), v = mix(tag) | 1;

	for (unsigned i = 0; i < PAGE / 8; i++)
		w[i] = v + i * 0x9E3779B97F4A7C15ull;
}

static void check_page(size_t page, const char *when)
{
	const uint64_t *w = addr_of(page);
	uint64_t tag = m[page].tag, v = mix(tag) | 1;

	for (unsigned i = 0; i < PAGE / 8; i++) {
		uint64_t want = tag ? v + i * 0x9E3779B97F4A7C15ull : 0;

		if (w[i] != want)
			FAIL("%s: page %zu word %u is 0x%llx, the model expects 0x%llx (tag %llu%s)",
			     when, page, i, (unsigned long long)w[i], (unsigned long long)want,
			     (unsigned long long)tag, tag ? "" : ": zeros");
	}
}

static bool readable(size_t i)
{
	return m[i].kind != FREE && (m[i].prot & UFP_PROT_READ);
}

static bool all_kind(size_t s, size_t n, int kind)
{
	for (size_t i = s; i < s + n; i++)
		if (m[i].kind != kind)
			return false;
	return true;
}

static bool any_free(size_t s, size_t n)
{
	for (size_t i = s; i < s + n; i++)
		if (m[i].kind == FREE)
			return true;
	return false;
}

/* Is there a run of n free pages anywhere (the pager's placement is
 * first-fit from a moving cursor: it finds a hole iff one exists)? */
static bool free_run_exists(size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < NPAGES; i++) {
		run = m[i].kind == FREE ? run + 1 : 0;
		if (run >= n)
			return true;
	}
	return false;
}

/* A returned address: aligned, inside the arena, over n free pages. */
static size_t placed_at(const void *p, size_t n, const char *what)
{
	uintptr_t a = (uintptr_t)p;
	size_t s;

	if (a < base || (a - base) % PAGE || (a - base) / PAGE + n > NPAGES)
		FAIL("%s placed %zu pages at %p, outside the arena %p+%lu", what, n, p,
		     (void *)base, (unsigned long)NPAGES * PAGE);
	s = (a - base) / PAGE;
	if (!all_kind(s, n, FREE))
		FAIL("%s placed %zu pages at page %zu over pages in use", what, n, s);
	return s;
}

static int free_obj_slot(void)
{
	for (int i = 0; i < MAXOBJ; i++)
		if (!objs[i].live)
			return i;
	return -1;
}

/* Regions the tree must hold: every object, and every maximal run of plain
 * pages with one protection (neighbours with equal attributes merge). */
static uint64_t model_regions(void)
{
	uint64_t n = 0;

	for (int i = 0; i < MAXOBJ; i++)
		n += objs[i].live;
	for (size_t i = 0; i < NPAGES; i++)
		if (m[i].kind == PLAIN &&
		    (i == 0 || m[i - 1].kind != PLAIN || m[i - 1].prot != m[i].prot))
			n++;
	return n;
}

/* The kernel's protection of every arena page agrees with the model (free
 * pages are the pager's PROT_NONE reserve). */
static void check_kernel_prots(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	static int kp[NPAGES];
	char line[512];

	if (!f)
		FAIL("cannot open /proc/self/maps");
	for (size_t i = 0; i < NPAGES; i++)
		kp[i] = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3 || e <= base ||
		    s >= base + NPAGES * PAGE)
			continue;
		if (s < base)
			s = base;
		if (e > base + NPAGES * PAGE)
			e = base + NPAGES * PAGE;
		for (unsigned long a = s; a < e; a += PAGE)
			kp[(a - base) / PAGE] = (perms[0] == 'r' ? UFP_PROT_READ : 0) |
						(perms[1] == 'w' ? UFP_PROT_WRITE : 0);
	}
	fclose(f);
	for (size_t i = 0; i < NPAGES; i++) {
		int want = m[i].kind == FREE ? 0 : m[i].prot;

		if (kp[i] != want)
			FAIL("page %zu: the kernel maps it with prot %d, the model says %d (%s)", i,
			     kp[i], want, m[i].kind == FREE ? "free" : m[i].kind == OBJ ? "object" :
			     "plain");
	}
}

static void check_stats(void)
{
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };

	EXPECT(ufp_stats_get(pg, &st), 0);
	if (st.regions != model_regions())
		FAIL("stats.regions %llu, the model has %llu", (unsigned long long)st.regions,
		     (unsigned long long)model_regions());
	if (st.handler_self_faults)
		FAIL("a handler thread faulted on managed memory (%llu)",
		     (unsigned long long)st.handler_self_faults);
	if (st.pages_poisoned)
		FAIL("%llu pages poisoned with no injected error",
		     (unsigned long long)st.pages_poisoned);
}

/* Everything the model knows, checked at once. */
static void check_all(const char *when)
{
	mm_check_invariants((struct ufp_pager *)pg);
	check_stats();
	check_kernel_prots();
	for (size_t i = 0; i < NPAGES; i++)
		if (readable(i))
			check_page(i, when);
}

/* ---- input decoding ---------------------------------------------------- */

struct input {
	const uint8_t *d;
	size_t n, i;
};

static unsigned get8(struct input *in)
{
	return in->i < in->n ? in->d[in->i++] : 0;
}

static unsigned get16(struct input *in)
{
	unsigned lo = get8(in);

	return lo | get8(in) << 8;
}

/* A page count: mostly small, sometimes hundreds (eviction, big holes). */
static size_t get_len(struct input *in)
{
	unsigned b = get8(in);

	return b < 224 ? 1 + b % 32 : 1 + (size_t)(b - 224) * 16;
}

/* A protection: 0-3 valid (normalised by the callee), 4-7 carry a bad bit. */
static int get_prot(struct input *in)
{
	unsigned b = get8(in);

	return b < 248 ? (int)(b % 4) : (int)(4 + b % 4);
}

/* ---- operations ---------------------------------------------------------- */

static void op_map_fixed(struct input *in)
{
	size_t s = get16(in) % NPAGES, n = get_len(in);
	int prot = get_prot(in);
	void *out;
	int want = prot & ~UFP_PROT_ALL ? -EINVAL : s + n > NPAGES ? -EINVAL :
		   !all_kind(s, n, FREE) ? -EEXIST : 0;

	EXPECT(ufp_map(pg, addr_of(s), n * PAGE, prot, UFP_MAP_FIXED, &out), want);
	if (want)
		return;
	if (out != addr_of(s))
		FAIL("UFP_MAP_FIXED at page %zu returned %p", s, out);
	for (size_t i = s; i < s + n; i++)
		m[i] = (struct mpage){ PLAIN, (uint8_t)prot_norm(prot), 0, 0 };
}

/* Map with no hint, or a hint that is taken only where it is free. */
static void op_map(struct input *in)
{
	unsigned mode = get8(in);
	size_t h = get16(in) % NPAGES, n = get_len(in), s;
	int prot = get_prot(in), r;
	bool hint = mode & 1, hint_ok = hint && h + n <= NPAGES && all_kind(h, n, FREE);
	void *out = NULL;

	r = ufp_map(pg, hint ? addr_of(h) : NULL, n * PAGE, prot, 0, &out);
	if (prot & ~UFP_PROT_ALL) {
		EXPECT(r, -EINVAL);
		return;
	}
	EXPECT(r, free_run_exists(n) ? 0 : -ENOMEM);
	if (r)
		return;
	s = placed_at(out, n, "ufp_map");
	if (hint_ok && s != h)
		FAIL("ufp_map ignored a free hint at page %zu (placed at %zu)", h, s);
	for (size_t i = s; i < s + n; i++)
		m[i] = (struct mpage){ PLAIN, (uint8_t)prot_norm(prot), 0, 0 };
}

static void op_unmap(struct input *in)
{
	size_t s = get16(in) % NPAGES, n = get_len(in);
	int want = s + n > NPAGES || !all_kind(s, n, PLAIN) ? -EINVAL : 0;

	EXPECT(ufp_unmap(pg, addr_of(s), n * PAGE), want);
	if (!want)
		for (size_t i = s; i < s + n; i++)
			m[i] = (struct mpage){ FREE, 0, 0, 0 };
}

static void op_protect(struct input *in)
{
	size_t s = get16(in) % NPAGES, n = get_len(in);
	int prot = get_prot(in), want = 0;

	if ((prot & ~UFP_PROT_ALL) || s + n > NPAGES)
		want = -EINVAL;
	else if (any_free(s, n))
		want = -ENOMEM;
	else    /* objects change protection only as a whole */
		for (int k = 0; k < MAXOBJ; k++)
			if (objs[k].live && objs[k].start < s + n &&
			    objs[k].start + objs[k].npages > s &&
			    (objs[k].start < s || objs[k].start + objs[k].npages > s + n))
				want = -EINVAL;
	EXPECT(ufp_protect(pg, addr_of(s), n * PAGE, prot), want);
	if (!want)
		for (size_t i = s; i < s + n; i++)
			m[i].prot = (uint8_t)prot_norm(prot);
}

static void op_advise(struct input *in)
{
	static const int advice[] = { UFP_ADV_DONTNEED, UFP_ADV_PAGEOUT, UFP_ADV_WILLNEED,
				      UFP_ADV_NORMAL, UFP_ADV_PAGEOUT, UFP_ADV_DONTNEED, 4, -1 };
	unsigned b = get8(in);
	size_t s = get16(in) % NPAGES, n = get_len(in);
	int adv = advice[b % 8];
	int want = adv < 0 || adv > UFP_ADV_PAGEOUT || s + n > NPAGES ? -EINVAL :
		   any_free(s, n) ? -ENOMEM : 0;

	EXPECT(ufp_advise(pg, addr_of(s), n * PAGE, adv), want);
	if (!want && adv == UFP_ADV_DONTNEED)
		for (size_t i = s; i < s + n; i++)
			m[i].tag = 0;
}

static void op_write(struct input *in)
{
	size_t s = get16(in) % NPAGES, n = get_len(in);

	for (size_t i = s; i < s + n && i < NPAGES; i++)
		if (m[i].kind != FREE && m[i].prot == UFP_PROT_ALL) {
			m[i].tag = next_tag++;
			fill_page(i, m[i].tag);
		}
}

static void op_read(struct input *in)
{
	size_t s = get16(in) % NPAGES, n = get_len(in);

	for (size_t i = s; i < s + n && i < NPAGES; i++)
		if (readable(i))
			check_page(i, "read");
}

/* A pointer argument for free / realloc / alloc_size: mostly a live
 * object's start, else any page (an object start only by chance), its
 * address plus one, or NULL. *k gets the object index or -1. */
static void *get_ptr(struct input *in, int *k)
{
	unsigned b = get8(in), live = 0;
	size_t pgno = get16(in) % NPAGES;

	*k = -1;
	for (int i = 0; i < MAXOBJ; i++)
		live += objs[i].live;
	if (b < 192 && live) {
		unsigned want = b % live;

		for (int i = 0; i < MAXOBJ; i++)
			if (objs[i].live && !want--) {
				*k = i;
				return addr_of(objs[i].start);
			}
	}
	if (b >= 250)
		return NULL;
	for (int i = 0; i < MAXOBJ; i++)
		if (objs[i].live && objs[i].start == pgno)
			*k = i;
	return (char *)addr_of(pgno) + (b >= 240 && *k < 0 ? 1 : 0);
}

static size_t get_size(struct input *in)
{
	size_t n = get_len(in);

	return (n - 1) * PAGE + 1 + get16(in) % PAGE;
}

static void op_alloc(struct input *in)
{
	size_t size = get_size(in), n = (size + PAGE - 1) / PAGE, s;
	int k = free_obj_slot();
	void *out;

	if (k < 0)
		return;     /* the model's table is full */
	EXPECT(ufp_alloc(pg, size, &out), free_run_exists(n) ? 0 : -ENOMEM);
	if (!free_run_exists(n))
		return;
	s = placed_at(out, n, "ufp_alloc");
	objs[k] = (struct mobj){ true, s, n, size };
	for (size_t i = s; i < s + n; i++)
		m[i] = (struct mpage){ OBJ, UFP_PROT_ALL, (uint8_t)k, 0 };
}

static void obj_release(int k)
{
	for (size_t i = objs[k].start; i < objs[k].start + objs[k].npages; i++)
		m[i] = (struct mpage){ FREE, 0, 0, 0 };
	objs[k].live = false;
}

static void op_free(struct input *in)
{
	int k;
	void *p = get_ptr(in, &k);

	EXPECT(ufp_free(pg, p), p && k < 0 ? -EINVAL : 0);
	if (k >= 0)
		obj_release(k);
}

static void op_alloc_size(struct input *in)
{
	int k;
	void *p = get_ptr(in, &k);
	size_t sz = 0;

	EXPECT(ufp_alloc_size(pg, p, &sz), k < 0 ? -EINVAL : 0);
	if (k >= 0 && sz != objs[k].size)
		FAIL("ufp_alloc_size %zu, the model says %zu", sz, objs[k].size);
}

/*
 * realloc: shrinks in place; grows in place where the pages after the
 * object are free; otherwise moves to a free run (the old object still
 * holds its pages while the new one is placed) or fails with -ENOMEM and
 * changes nothing. The contents of the kept pages move with the object,
 * and the object keeps its protection, as mremap keeps a mapping's.
 */
static void op_realloc(struct input *in)
{
	int k, nk;
	void *p = get_ptr(in, &k), *out = NULL;
	size_t size = get_size(in), n = (size + PAGE - 1) / PAGE, s;
	struct mobj o;
	int r;

	if (!p) {   /* realloc(NULL) allocates */
		if ((nk = free_obj_slot()) < 0)
			return;
		EXPECT(ufp_realloc(pg, NULL, size, &out), free_run_exists(n) ? 0 : -ENOMEM);
		if (!out)
			return;
		s = placed_at(out, n, "ufp_realloc(NULL)");
		objs[nk] = (struct mobj){ true, s, n, size };
		for (size_t i = s; i < s + n; i++)
			m[i] = (struct mpage){ OBJ, UFP_PROT_ALL, (uint8_t)nk, 0 };
		return;
	}
	if (k < 0) {
		EXPECT(ufp_realloc(pg, p, size, &out), -EINVAL);
		return;
	}
	o = objs[k];
	bool in_place = n <= o.npages ||
			(o.start + n <= NPAGES && all_kind(o.start + o.npages, n - o.npages, FREE));
	r = ufp_realloc(pg, p, size, &out);
	if (in_place) {
		EXPECT(r, 0);
		if (out != p)
			FAIL("ufp_realloc moved an object it could resize in place");
		for (size_t i = o.start + n; i < o.start + o.npages; i++)
			m[i] = (struct mpage){ FREE, 0, 0, 0 };
		for (size_t i = o.start + o.npages; i < o.start + n; i++)
			m[i] = (struct mpage){ OBJ, m[o.start].prot, (uint8_t)k, 0 };
		objs[k].npages = n;
		objs[k].size = size;
		return;
	}
	EXPECT(r, free_run_exists(n) ? 0 : -ENOMEM);
	if (r)
		return;
	s = placed_at(out, n, "ufp_realloc");
	for (size_t i = 0; i < n; i++)
		m[s + i] = (struct mpage){ OBJ, m[o.start].prot, (uint8_t)k,
					   i < o.npages ? m[o.start + i].tag : 0 };
	for (size_t i = o.start; i < o.start + o.npages; i++)
		m[i] = (struct mpage){ FREE, 0, 0, 0 };
	objs[k] = (struct mobj){ true, s, n, size };
}

/* Protect a whole object (objects change protection only as a whole). */
static void op_protect_obj(struct input *in)
{
	int k, prot = get_prot(in);
	void *p = get_ptr(in, &k);

	if (k < 0)
		return;
	EXPECT(ufp_protect(pg, p, objs[k].npages * PAGE, prot),
	       prot & ~UFP_PROT_ALL ? -EINVAL : 0);
	if (!(prot & ~UFP_PROT_ALL))
		for (size_t i = objs[k].start; i < objs[k].start + objs[k].npages; i++)
			m[i].prot = (uint8_t)prot_norm(prot);
}

/* Bad arguments: -EINVAL, and nothing changes. */
static void op_misuse(struct input *in)
{
	unsigned b = get8(in);
	size_t s = get16(in) % NPAGES;
	void *a = addr_of(s), *out;
	struct ufp_stats st = { .size = 8, .version = UFP_STATS_VERSION };

	switch (b % 10) {
	case 0: EXPECT(ufp_map(pg, (char *)a + 1, PAGE, UFP_PROT_ALL, UFP_MAP_FIXED, &out),
		       -EINVAL); break;
	case 1: EXPECT(ufp_map(pg, NULL, PAGE + 1, UFP_PROT_ALL, 0, &out), -EINVAL); break;
	case 2: EXPECT(ufp_map(pg, a, PAGE, UFP_PROT_ALL, 0x80, &out), -EINVAL); break;
	case 3: EXPECT(ufp_unmap(pg, a, 0), -EINVAL); break;
	case 4: EXPECT(ufp_unmap(pg, (char *)a + 8, PAGE), -EINVAL); break;
	case 5: EXPECT(ufp_protect(pg, (void *)(base - PAGE), PAGE, UFP_PROT_READ), -EINVAL);
		break;
	case 6: EXPECT(ufp_advise(pg, a, 3 * PAGE / 2, UFP_ADV_DONTNEED), -EINVAL); break;
	case 7: EXPECT(ufp_alloc(pg, 0, &out), -EINVAL); break;
	case 8: EXPECT(ufp_stats_get(pg, &st), -EINVAL); break;
	default: EXPECT(ufp_map(pg, (void *)(base + NPAGES * PAGE), PAGE, UFP_PROT_ALL,
				UFP_MAP_FIXED, &out), -EINVAL); break;
	}
	if (!ufp_last_error())
		FAIL("ufp_last_error returned NULL");
}

/* Free every object, unmap every plain run, and check the pager is empty. */
static void reset(void)
{
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };

	for (int k = 0; k < MAXOBJ; k++)
		if (objs[k].live) {
			EXPECT(ufp_free(pg, addr_of(objs[k].start)), 0);
			obj_release(k);
		}
	for (size_t i = 0; i < NPAGES;) {
		size_t j = i;

		while (j < NPAGES && m[j].kind == PLAIN)
			j++;
		if (j > i) {
			EXPECT(ufp_unmap(pg, addr_of(i), (j - i) * PAGE), 0);
			for (size_t x = i; x < j; x++)
				m[x] = (struct mpage){ FREE, 0, 0, 0 };
		}
		i = j + 1;
	}
	/* the gauge merges per-thread deltas: an eviction that was under way
	 * when its page was unmapped settles a moment later; a lasting count
	 * is a leak */
	for (int w = 0;; w++) {
		EXPECT(ufp_stats_get(pg, &st), 0);
		if (!st.resident_pages || w == 2000)
			break;
		usleep(1000);
	}
	if (st.regions || st.resident_pages)
		FAIL("after unmapping everything: %llu regions, %llu resident pages (2 s later)",
		     (unsigned long long)st.regions, (unsigned long long)st.resident_pages);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Exit 77 (a skip for ctest) here, outside any input, when this machine
 * cannot run a pager: libFuzzer turns an exit inside an input into a crash. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	for (unsigned c = 0; c < NCONFIGS; c++) {
		get_pager(c);
		ufp_pager_destroy(pagers[c]);
		pagers[c] = NULL;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };

	if (!size)
		return 0;
	cfg = get8(&in) % NCONFIGS;
	pg = get_pager(cfg);
	base = ((struct ufp_pager *)pg)->arena_base;
	/* Placement starts from the arena's base for every input, so an input
	 * replays alike in a fresh process (no structural op runs now). */
	((struct ufp_pager *)pg)->bump = base;
	memset(m, 0, sizeof(m));
	memset(objs, 0, sizeof(objs));
	for (op_no = 0; in.i < in.n; op_no++) {
		switch (get8(&in) % 16) {
		case 0: op_map_fixed(&in); break;
		case 1: op_map(&in); break;
		case 2: op_unmap(&in); break;
		case 3: op_protect(&in); break;
		case 4: op_advise(&in); break;
		case 5: case 6: op_write(&in); break;
		case 7: op_read(&in); break;
		case 8: op_alloc(&in); break;
		case 9: op_free(&in); break;
		case 10: op_realloc(&in); break;
		case 11: op_alloc_size(&in); break;
		case 12: check_stats(); break;
		case 13: op_misuse(&in); break;
		case 14: op_protect_obj(&in); break;
		default: check_all("check"); break;
		}
	}
	check_all("end of input");
	reset();
	return 0;
}
