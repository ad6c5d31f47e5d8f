/* SPDX-License-Identifier: MIT */
/*
 * test_inject.c - fault injection (inject.c) and the watchdog
 * (watchdog.c): write errors, short writes and ENOSPC at eviction keep
 * every page; read errors, short reads and checksum mismatches at swap-in
 * poison exactly the pages they hit (SIGBUS there, neighbours fine);
 * EAGAIN storms from UFFDIO_COPY/ZEROPAGE/MOVE and delayed completions
 * lose and duplicate nothing; a dying service thread is reported once
 * and nothing hangs. Every workload carries page patterns; both delivery
 * modes where the behaviour could differ.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"
#include "inject.h"

static const unsigned deliveries[2] = { UFP_DELIVERY_SIGBUS, UFP_DELIVERY_HANDLER };

struct pcfg {
	unsigned delivery;
	uint64_t budget, swap, ztier;
	uint32_t handlers, fault_around;
};

static ufp_pager *mk_pager(struct pcfg c)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .delivery = c.delivery,
		.budget = c.budget, .swap_size = c.swap, .ztier_size = c.ztier,
		.handler_threads = c.handlers, .fault_around = c.fault_around,
		.flags = UFP_PF_NO_EXPORT,
	};
	ufp_pager *p = NULL;
	int r = ufp_pager_create(&pr, &p);

	ck_assert_msg(r == 0, "create: %d %s", r, ufp_last_error());
	return p;
}

static void arm(const char *spec)
{
	const char *bad = NULL;

	ck_assert_msg(inject_configure(spec, &bad) == 0, "spec %s: bad at %s", spec, bad);
}


static void catch_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = ufp_test_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
}

/* ---- the specification ------------------------------------------------ */

START_TEST(spec_parses_rejects_and_decides_deterministically)
{
	static const char *good[] = {
		"eio=0.01,short=0.01,enospc=0.005,eagain=0.05,delay_us=200:0.01,seed=42,kill=reclaim",
		"eio=1@read", "short=0.5@write", "csum=0.1", "kill=handler:3", "kill=events",
		"seed=7", "",
	};
	static const char *bad[] = {
		"eio", "eio=2", "eio=-0.1", "eio=0.1@sideways", "bogus=0.1", "delay_us=200",
		"delay_us=x:0.1", "kill=nobody", "kill=reclaim:0", "eio=0.1;short=0.1",
		"csum=0.1@read", "seed=",
	};
	bool a[2000];
	unsigned hits = 0;

	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(inject_configure(good[i], NULL) == 0, "good spec %s", good[i]);
	arm("eio=0.25");
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *where = NULL;

		ck_assert_msg(inject_configure(bad[i], &where) == -EINVAL, "bad spec %s", bad[i]);
		ck_assert_ptr_nonnull(where);
	}
	/* a rejected spec changed nothing: eio=0.25 is still armed */
	ck_assert(inject_on());
	arm("eio=0.25,seed=42");
	for (unsigned i = 0; i < 2000; i++)
		hits += a[i] = inject_hit(INJ_EIO);
	ck_assert_msg(hits > 400 && hits < 600, "%u of 2000 at 0.25", hits);
	arm("eio=0.25,seed=42");
	for (unsigned i = 0; i < 2000; i++)
		ck_assert_msg(inject_hit(INJ_EIO) == a[i], "decision %u differs", i);
	ck_assert(!inject_hit(INJ_SHORT));            /* kinds are independent */
	/* @read does not touch writes */
	arm("eio=1@read");
	ck_assert_int_eq(inject_io_res(4096, INJ_WRITE), 4096);
	ck_assert_int_eq(inject_io_res(4096, INJ_READ), -EIO);
	arm("short=1@write");
	ck_assert_int_eq(inject_io_res(4096, INJ_WRITE), 2048);
	/* kill fires once, at the N-th pass, for the named thread only */
	arm("kill=handler:3");
	ck_assert(!inject_kill(INJ_T_RECLAIM));
	ck_assert(!inject_kill(INJ_T_HANDLER));
	ck_assert(!inject_kill(INJ_T_HANDLER));
	ck_assert(inject_kill(INJ_T_HANDLER));
	ck_assert(!inject_kill(INJ_T_HANDLER));
	inject_disarm();
	ck_assert(!inject_on());
	ck_assert(!inject_hit(INJ_EIO));
}
END_TEST

/* A bad UFPAGER_INJECT fails creation with the item named (it was only
 * printed on stderr and ignored before: a test run could believe it ran
 * with injection). */
START_TEST(bad_inject_env_fails_create)
{
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
				 .flags = UFP_PF_NO_EXPORT };
	ufp_pager *p = NULL;

	setenv("UFPAGER_INJECT", "eio=0.5,bogus=1", 1);
	ck_assert_int_eq(ufp_pager_create(&pr, &p), -EINVAL);
	unsetenv("UFPAGER_INJECT");
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(ufp_last_error(), "UFPAGER_INJECT") &&
		      strstr(ufp_last_error(), "bogus"), "detail: %s", ufp_last_error());
	inject_disarm();
}
END_TEST

/* ---- failures at eviction keep pages resident -------------------------- */

/*
 * _i: delivery (bit 0) x kind (bits 1-2): write EIO, short write, ENOSPC.
 * The budget is larger than the data: only PAGEOUT evicts, so the counts
 * below are exact.
 */
START_TEST(failed_evictions_keep_every_page)
{
	static const char *specs[3] = { "eio=0.3@write,seed=3", "short=0.3@write,seed=4",
					"enospc=0.2,seed=5" };
	ufp_pager *p = mk_pager((struct pcfg){ .delivery = deliveries[_i & 1],
					       .budget = 64 << 20, .swap = 64 << 20, .ztier = 4096 });
	unsigned kind = (unsigned)_i >> 1;
	const size_t n = 256;
	struct ufp_stats s0, s;
	uint64_t injected;
	char *m;

	ck_assert_int_eq(ufp_map(p, NULL, n * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (size_t i = 0; i < n; i++)
		ufp_fill_rand(m + i * PAGE, 1);
	s0 = ufp_test_stats(p);
	arm(specs[kind]);
	for (int round = 0; round < 8; round++) {
		int r = ufp_advise(p, m, n * PAGE, UFP_ADV_PAGEOUT);

		ck_assert_msg(r == 0 || r == -ENOSPC, "pageout: %d", r);
		usleep(120000);   /* reclaim clears swap_full after 100 ms */
	}
	inject_disarm();
	s = ufp_test_stats(p);
	injected = kind == 0 ? s.inject_eio - s0.inject_eio :
		   kind == 1 ? s.inject_short - s0.inject_short : s.inject_enospc - s0.inject_enospc;
	ck_assert_uint_gt(injected, 0);
	/* a failed store is "swap full" for the pager: reported, eviction stops */
	ck_assert_uint_gt(s.swap_full_events, s0.swap_full_events);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(ufp_check_rand(m + i * PAGE, 1), "page %zu lost after %llu injected",
			      i, (unsigned long long)injected);
	ck_assert_uint_eq(ufp_test_stats(p).pages_poisoned, 0);
	/* and the pages still go out and come back once the faults stop */
	usleep(120000);
	ck_assert_int_eq(ufp_advise(p, m, n * PAGE, UFP_ADV_PAGEOUT), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(ufp_check_rand(m + i * PAGE, 1), "page %zu lost", i);
	ufp_pager_destroy(p);
}
END_TEST

/* A store fails while the page's region changes protection: UFFDIO_MOVE
 * cannot put the page back across VMAs of different protection; the page
 * must come back anyway (it aborted with "eviction could neither store
 * nor restore a page"). _i: delivery. */
struct toggler {
	ufp_pager *p;
	char *m;
	_Atomic bool stop;
	uint64_t flips;
};

static void *toggle_main(void *arg)
{
	struct toggler *t = arg;

	ufp_thread_register();
	while (!atomic_load(&t->stop)) {
		ck_assert_int_eq(ufp_protect(t->p, t->m + 16 * PAGE, 32 * PAGE, UFP_PROT_READ), 0);
		ck_assert_int_eq(ufp_protect(t->p, t->m + 16 * PAGE, 32 * PAGE, UFP_PROT_ALL), 0);
		t->flips++;
	}
	return NULL;
}

START_TEST(failed_store_restores_across_a_protect)
{
	ufp_pager *p = mk_pager((struct pcfg){ .delivery = deliveries[_i], .budget = 64 << 20,
					       .swap = 64 << 20, .ztier = 4096 });
	struct ufp_pager *ip = (struct ufp_pager *)p;
	struct toggler t = { .p = p };
	uint64_t end, rounds = 0;
	pthread_t th;

	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&t.m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_rand(t.m + (size_t)i * PAGE, 4);
	arm("eio=1@write");
	ck_assert_int_eq(pthread_create(&th, NULL, toggle_main, &t), 0);
	end = ufp_now_ns() + 1500000000ull;
	while (ufp_now_ns() < end) {
		atomic_store(&ip->reclaim.swap_full, false);   /* let every round try */
		int r = ufp_advise(p, t.m, 64 * PAGE, UFP_ADV_PAGEOUT);

		ck_assert_msg(r == 0 || r == -ENOSPC, "pageout: %d", r);
		rounds++;
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	inject_disarm();
	ck_assert_uint_gt(t.flips, 10);
	ck_assert_uint_gt(rounds, 10);
	for (int i = 0; i < 64; i++)
		ck_assert_msg(ufp_check_rand(t.m + (size_t)i * PAGE, 4), "page %d lost", i);
	ufp_pager_destroy(p);
}
END_TEST

/* ---- failures at swap-in poison exactly the pages hit ----------------- */

/*
 * _i: delivery (bit 0) x store (bit 1: file / compressed tier) x kind
 * (bits 2-3: read EIO, short read, checksum mismatch).
 */
START_TEST(failed_swapins_poison_exactly_their_pages)
{
	static const char *specs[3] = { "eio=0.2@read,seed=11", "short=0.2@read,seed=12",
					"csum=0.2,seed=13" };
	bool ztier = (_i >> 1) & 1;
	unsigned kind = (unsigned)_i >> 2;
	const size_t n = 96;
	bool bad[96];
	size_t nbad = 0;
	struct ufp_stats s0, s;
	ufp_pager *p;
	char *m;

	catch_sigbus();
	p = mk_pager((struct pcfg){ .delivery = deliveries[_i & 1], .budget = 64 << 20,
				    .swap = 64 << 20, .ztier = ztier ? 16 << 20 : 4096 });
	ck_assert_int_eq(ufp_map(p, NULL, n * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (size_t i = 0; i < n; i++) {
		if (ztier)
			ufp_fill_page(m + i * PAGE, 2);   /* compressible */
		else
			ufp_fill_rand(m + i * PAGE, 2);
	}
	ck_assert_int_eq(ufp_advise(p, m, n * PAGE, UFP_ADV_PAGEOUT), 0);
	s0 = ufp_test_stats(p);
	ck_assert_uint_eq(s0.resident_pages, 0);
	arm(specs[kind]);
	for (size_t i = 0; i < n; i++) {
		bad[i] = ufp_test_read_faults(m + i * PAGE);
		nbad += bad[i];
		/* counted before the faulting thread was woken (readahead
		 * may have poisoned pages not yet touched: >=) */
		ck_assert_uint_ge(ufp_test_stats(p).pages_poisoned - s0.pages_poisoned, nbad);
		if (!bad[i])
			ck_assert_msg(ztier ? ufp_check_page(m + i * PAGE, 2) == 0 :
				      ufp_check_rand(m + i * PAGE, 2), "page %zu: wrong data", i);
	}
	inject_disarm();
	s = ufp_test_stats(p);
	ck_assert_uint_gt(nbad, 0);
	ck_assert_uint_lt(nbad, n);
	/* one injected fault, one poisoned page: never a neighbour */
	ck_assert_uint_eq(s.pages_poisoned - s0.pages_poisoned, nbad);
	ck_assert_uint_eq(kind == 0 ? s.inject_eio - s0.inject_eio :
			  kind == 1 ? s.inject_short - s0.inject_short :
			  s.inject_csum - s0.inject_csum, nbad);
	/* poisoned pages stay poisoned; the others read fine again, also
	 * after another round trip through the store */
	ck_assert_int_eq(ufp_advise(p, m, n * PAGE, UFP_ADV_PAGEOUT), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(ufp_test_read_faults(m + i * PAGE) == bad[i], "page %zu changed", i);
		if (!bad[i])
			ck_assert_msg(ztier ? ufp_check_page(m + i * PAGE, 2) == 0 :
				      ufp_check_rand(m + i * PAGE, 2), "page %zu: wrong data", i);
	}
	/* writing a poisoned page is refused too, never silently zeroed */
	for (size_t i = 0; i < n; i++)
		if (bad[i]) {
			ck_assert(ufp_test_write_faults(m + i * PAGE));
			break;
		}
	/* DONTNEED clears the poison: the page reads zeros */
	for (size_t i = 0; i < n; i++)
		if (bad[i]) {
			ck_assert_int_eq(ufp_advise(p, m + i * PAGE, PAGE, UFP_ADV_DONTNEED), 0);
			ck_assert(!ufp_test_read_faults(m + i * PAGE));
			ck_assert_int_eq(ufp_check_page(m + i * PAGE, 0), 1);
		}
	ufp_pager_destroy(p);
	signal(SIGBUS, SIG_DFL);
}
END_TEST

/* ---- EAGAIN storms and delays: slower, never wrong -------------------- */

struct worker {
	char *base;
	size_t pages;
	unsigned seed;
	uint32_t *gen;
	int errors;
	uint64_t ops;
	double seconds;
};

/* Each worker owns its own pages: check the last generation written (or
 * zeros), write the next one. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t end = ufp_now_ns() + (uint64_t)(w->seconds * 1e9);

	ufp_thread_register();
	while (ufp_now_ns() < end) {
		size_t i = (size_t)rand_r(&w->seed) % w->pages;
		char *pg = w->base + i * PAGE;

		if (w->gen[i] ? !ufp_check_rand(pg, w->gen[i]) : ufp_check_page(pg, 0) != 1)
			w->errors++;
		if (rand_r(&w->seed) % 4) {
			w->gen[i]++;
			ufp_fill_rand(pg, w->gen[i]);
		}
		w->ops++;
	}
	return NULL;
}

static void run_workers(ufp_pager *p, size_t pages, unsigned nthreads, double seconds,
			int *errors, uint64_t *ops)
{
	struct worker w[4];
	pthread_t th[4];
	char *m;

	ck_assert_int_eq(ufp_map(p, NULL, pages * nthreads * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (unsigned t = 0; t < nthreads; t++) {
		w[t] = (struct worker){ .base = m + t * pages * PAGE, .pages = pages,
					.seed = 77 + t, .seconds = seconds,
					.gen = calloc(pages, sizeof(uint32_t)) };
		ck_assert_int_eq(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	*errors = 0;
	*ops = 0;
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(th[t], NULL);
		*errors += w[t].errors;
		*ops += w[t].ops;
		/* a final pass over every page */
		for (size_t i = 0; i < pages; i++) {
			char *pg = w[t].base + i * PAGE;

			if (w[t].gen[i] ? !ufp_check_rand(pg, w[t].gen[i]) : ufp_check_page(pg, 0) != 1)
				(*errors)++;
		}
		free(w[t].gen);
	}
	ck_assert_int_eq(ufp_unmap(p, m, pages * nthreads * PAGE), 0);
}

/* _i: delivery (bit 0) x (bit 1: EAGAIN storm / delayed completions).
 * 3 MiB of data under a 512 KiB budget: eviction and swap-in all along. */
START_TEST(eagain_storms_and_delays_lose_nothing)
{
	bool delay = (_i >> 1) & 1;
	ufp_pager *p = mk_pager((struct pcfg){ .delivery = deliveries[_i & 1],
					       .budget = 512 << 10, .swap = 64 << 20,
					       .ztier = 4096 });
	struct ufp_stats s0, s;
	uint64_t ops;
	int errors;

	s0 = ufp_test_stats(p);
	arm(delay ? "delay_us=300:0.2,seed=21" : "eagain=0.4,seed=22");
	run_workers(p, 256, 3, 1.5, &errors, &ops);
	inject_disarm();
	s = ufp_test_stats(p);
	ck_assert_msg(errors == 0, "%d wrong pages in %llu ops", errors, (unsigned long long)ops);
	ck_assert_uint_gt(s.swapins - s0.swapins, 50);
	ck_assert_uint_eq(s.pages_poisoned, 0);
	if (delay) {
		ck_assert_uint_gt(s.inject_delay - s0.inject_delay, 10);
	} else {
		ck_assert_uint_gt(s.inject_eagain - s0.inject_eagain, 10);
		ck_assert_uint_ge(s.ioctl_eagain - s0.ioctl_eagain, 1);
	}
	ufp_pager_destroy(p);
}
END_TEST

/* ---- dying service threads and the watchdog --------------------------- */

static struct ufp_stats wait_stall(ufp_pager *p, double seconds)
{
	uint64_t end = ufp_now_ns() + (uint64_t)(seconds * 1e9);
	struct ufp_stats s;

	do {
		s = ufp_test_stats(p);
		if (s.service_stalls)
			break;
		usleep(20000);
	} while (ufp_now_ns() < end);
	return s;
}

/*
 * The reclaim thread dies. The watchdog reports it once; faults over the
 * budget stop waiting for it (SIGBUS delivery: 50 ms of throttling per
 * fault before, so 1024 faults would take 50 s); every page keeps its
 * data; destroy returns.
 */
START_TEST(dead_reclaim_thread_is_reported_and_faults_stop_waiting)
{
	ufp_pager *p;
	struct ufp_stats s;
	uint64_t t0;
	const size_t n = 1024;
	char *m;

	alarm(120);
	atomic_store(&watchdog_stall_ms, 200);
	arm("kill=reclaim");
	p = mk_pager((struct pcfg){ .delivery = deliveries[_i], .budget = 256 << 10,
				    .swap = 64 << 20, .ztier = 4096, .fault_around = 1 });
	s = wait_stall(p, 10);
	ck_assert_uint_eq(s.inject_kill, 1);
	ck_assert_uint_eq(s.service_stalls, 1);
	atomic_store(&watchdog_stall_ms, 2000);   /* no false alarm under load */
	ck_assert_int_eq(ufp_map(p, NULL, 2 * n * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	/* The thread died having published a resident estimate over the
	 * throttle limit (it was about to evict): faults must not wait for
	 * an eviction that never comes. */
	atomic_store(&((struct ufp_pager *)p)->reclaim.resident_est, 1ull << 40);
	t0 = ufp_now_ns();
	for (size_t i = 0; i < n; i++)
		ufp_fill_rand(m + i * PAGE, 5);
	ck_assert_msg(ufp_now_ns() - t0 < 5000000000ull, "%zu faults took %.1f s", n,
		      (double)(ufp_now_ns() - t0) / 1e9);
	/* eviction on request still works without the thread */
	ck_assert_int_eq(ufp_advise(p, m, n * PAGE, UFP_ADV_PAGEOUT), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(ufp_check_rand(m + i * PAGE, 5), "page %zu", i);
	usleep(500000);
	ck_assert_uint_eq(ufp_test_stats(p).service_stalls, 1);   /* reported once */
	inject_disarm();
	ufp_pager_destroy(p);
	alarm(0);
}
END_TEST

/* One of two handler threads dies: reported; the other serves every fault. */
START_TEST(dead_handler_thread_is_reported_and_the_others_serve)
{
	ufp_pager *p;
	struct ufp_stats s;
	int errors;
	uint64_t ops;

	alarm(120);
	atomic_store(&watchdog_stall_ms, 200);
	arm("kill=handler");
	p = mk_pager((struct pcfg){ .delivery = UFP_DELIVERY_HANDLER, .handlers = 2,
				    .budget = 512 << 10, .swap = 64 << 20, .ztier = 4096 });
	s = wait_stall(p, 10);
	ck_assert_uint_eq(s.inject_kill, 1);
	ck_assert_uint_eq(s.service_stalls, 1);
	atomic_store(&watchdog_stall_ms, 2000);   /* no false alarm under load */
	run_workers(p, 256, 2, 1.0, &errors, &ops);
	ck_assert_msg(errors == 0, "%d wrong pages in %llu ops", errors, (unsigned long long)ops);
	ck_assert_uint_eq(ufp_test_stats(p).service_stalls, 1);
	inject_disarm();
	ufp_pager_destroy(p);
	alarm(0);
}
END_TEST

/* The event worker dies: reported; faults and structural ops go on. */
START_TEST(dead_event_worker_is_reported_and_nothing_hangs)
{
	ufp_pager *p;
	struct ufp_stats s;
	char *m;

	alarm(120);
	atomic_store(&watchdog_stall_ms, 200);
	arm("kill=events");
	p = mk_pager((struct pcfg){ .delivery = deliveries[_i], .budget = 1 << 20,
				    .swap = 64 << 20, .ztier = 4096 });
	s = wait_stall(p, 10);
	ck_assert_uint_eq(s.inject_kill, 1);
	ck_assert_uint_eq(s.service_stalls, 1);
	atomic_store(&watchdog_stall_ms, 2000);   /* no false alarm under load */
	ck_assert_int_eq(ufp_map(p, NULL, 64 * PAGE, UFP_PROT_ALL, 0, (void **)&m), 0);
	for (int i = 0; i < 64; i++)
		ufp_fill_rand(m + i * PAGE, 9);
	ck_assert_int_eq(ufp_protect(p, m, 16 * PAGE, UFP_PROT_READ), 0);
	ck_assert_int_eq(ufp_advise(p, m, 64 * PAGE, UFP_ADV_PAGEOUT), 0);
	for (int i = 0; i < 64; i++)
		ck_assert(ufp_check_rand(m + i * PAGE, 9));
	ck_assert_int_eq(ufp_unmap(p, m, 64 * PAGE), 0);
	inject_disarm();
	ufp_pager_destroy(p);
	alarm(0);
}
END_TEST

/* No false alarms: idle and busy pagers with a short stall time report
 * nothing. */
START_TEST(live_threads_are_never_reported)
{
	ufp_pager *p;
	int errors;
	uint64_t ops;

	atomic_store(&watchdog_stall_ms, 1000);   /* half the default */
	inject_disarm();
	p = mk_pager((struct pcfg){ .delivery = deliveries[_i], .budget = 512 << 10,
				    .swap = 64 << 20, .ztier = 4096 });
	usleep(600000);                       /* idle */
	run_workers(p, 256, 2, 1.0, &errors, &ops);   /* busy */
	usleep(400000);                       /* idle again */
	ck_assert_int_eq(errors, 0);
	ck_assert_uint_eq(ufp_test_stats(p).service_stalls, 0);
	ufp_pager_destroy(p);
}
END_TEST

static Suite *inject_suite(void)
{
	Suite *s = suite_create("inject");
	TCase *tc = tcase_create("inject");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, spec_parses_rejects_and_decides_deterministically);
	tcase_add_test(tc, bad_inject_env_fails_create);
	tcase_add_loop_test(tc, failed_evictions_keep_every_page, 0, 6);
	tcase_add_loop_test(tc, failed_store_restores_across_a_protect, 0, 2);
	tcase_add_loop_test(tc, failed_swapins_poison_exactly_their_pages, 0, 12);
	tcase_add_loop_test(tc, eagain_storms_and_delays_lose_nothing, 0, 4);
	tcase_add_loop_test(tc, dead_reclaim_thread_is_reported_and_faults_stop_waiting, 0, 2);
	tcase_add_test(tc, dead_handler_thread_is_reported_and_the_others_serve);
	tcase_add_loop_test(tc, dead_event_worker_is_reported_and_nothing_hangs, 0, 2);
	tcase_add_loop_test(tc, live_threads_are_never_reported, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ufp_test_require_swap();
	return ufp_run_suite(inject_suite());
}
