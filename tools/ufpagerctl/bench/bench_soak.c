/* SPDX-License-Identifier: MIT */
/*
 * bench_soak.c - `ufpagerctl bench soak`: a long data-integrity run.
 *
 * T worker threads each own a set of objects (ufp_alloc objects and
 * ufp_map regions, 1-32 pages) and loop over random operations: read and
 * verify a page, write its next generation, verify a whole object,
 * PAGEOUT, DONTNEED, protect read-only and back (split, merge), realloc,
 * free/unmap and allocate/map anew, WILLNEED. A 2 MiB budget keeps
 * eviction going all the time (swap file and lz4 tier). A fork thread
 * forks now and then; the child verifies a sample of every object and
 * exits with the count of bad pages. Faults are injected all along
 * (EAGAIN storms from UFFDIO_COPY/ZEROPAGE/MOVE, delayed completions,
 * write errors, short writes, ENOSPC): kinds that must never lose data.
 * Every page's content is derived from its object's key, its index and a
 * generation; every read is checked. Half the time runs with SIGBUS
 * delivery, half with handler threads, each on a fresh pager.
 *
 * Exit status 0 only when nothing was lost (and no page was poisoned and
 * no service thread stalled: none of the injected kinds may cause that).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define SOAK_OBJS 16
#define SOAK_MAX_PAGES 32
#define PG 4096u

struct soak_obj {
	char *base;              /* NULL: empty slot */
	size_t pages;
	bool alloc;              /* ufp_alloc object (else ufp_map region) */
	uint32_t key;
	uint32_t gen[SOAK_MAX_PAGES];
};

struct soak_worker {
	pthread_t th;
	unsigned id, seed;
	struct soak_obj obj[SOAK_OBJS];
	uint64_t ops, bytes, lost, structural;
	unsigned reported;
};

struct soak_run {
	ufp_pager *p;
	pthread_rwlock_t forklock;   /* workers read, fork write: a quiet fork */
	_Atomic bool stop;
	_Atomic uint32_t next_key;
	struct soak_worker *w;
	unsigned nw;
	uint64_t forks, fork_bad;
};

/* ---- page patterns ------------------------------------------------------ */

static uint64_t soak_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Odd generations: incompressible (the swap file); even: sparse words
 * (the lz4 tier). Generation 0 is "never written": zeros. */
static void soak_fill(char *pg, uint32_t key, size_t idx, uint32_t gen)
{
	uint64_t *w = (uint64_t *)pg, x = soak_mix(((uint64_t)key << 32) ^ (idx << 20) ^ gen) | 1;

	if (gen & 1) {
		for (unsigned i = 0; i < PG / 8; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			w[i] = x;
		}
	} else {
		for (unsigned i = 0; i < PG / 8; i++)
			w[i] = i % 64 ? 0 : x + i;
	}
}

static bool soak_check(const char *pg, uint32_t key, size_t idx, uint32_t gen)
{
	const uint64_t *w = (const uint64_t *)pg;
	uint64_t x = soak_mix(((uint64_t)key << 32) ^ (idx << 20) ^ gen) | 1;

	if (!gen) {
		for (unsigned i = 0; i < PG / 8; i++)
			if (w[i])
				return false;
		return true;
	}
	if (gen & 1) {
		for (unsigned i = 0; i < PG / 8; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			if (w[i] != x)
				return false;
		}
		return true;
	}
	for (unsigned i = 0; i < PG / 8; i++)
		if (w[i] != (i % 64 ? 0 : x + i))
			return false;
	return true;
}

/* ---- the workers --------------------------------------------------------- */

static void verify_page(struct soak_worker *w, struct soak_obj *o, size_t i, const char *what)
{
	w->bytes += PG;
	if (soak_check(o->base + i * PG, o->key, i, o->gen[i]))
		return;
	w->lost++;
	if (w->reported++ < 5)
		fprintf(stderr, "\nsoak: LOST: worker %u object %u page %zu (generation %u) "
			"after %s\n", w->id, o->key, i, o->gen[i], what);
}

static int obj_new(struct soak_run *r, struct soak_worker *w, struct soak_obj *o)
{
	size_t pages = 1 + (size_t)rand_r(&w->seed) % SOAK_MAX_PAGES;
	int err;

	o->alloc = rand_r(&w->seed) & 1;
	err = o->alloc ? ufp_alloc(r->p, pages * PG, (void **)&o->base)
		       : ufp_map(r->p, NULL, pages * PG, UFP_PROT_ALL, 0, (void **)&o->base);
	if (err) {
		o->base = NULL;
		return err;
	}
	o->pages = pages;
	o->key = atomic_fetch_add(&r->next_key, 1);
	memset(o->gen, 0, sizeof(o->gen));
	return 0;
}

static void obj_del(struct soak_run *r, struct soak_obj *o)
{
	int err = o->alloc ? ufp_free(r->p, o->base) : ufp_unmap(r->p, o->base, o->pages * PG);

	if (err)
		fprintf(stderr, "\nsoak: free/unmap failed: %d\n", err);
	o->base = NULL;
}

static void soak_op(struct soak_run *r, struct soak_worker *w)
{
	struct soak_obj *o = &w->obj[(unsigned)rand_r(&w->seed) % SOAK_OBJS];
	unsigned op = (unsigned)rand_r(&w->seed) % 100;
	size_t i, a, b;

	if (!o->base) {
		obj_new(r, w, o);
		return;
	}
	i = (size_t)rand_r(&w->seed) % o->pages;
	a = (size_t)rand_r(&w->seed) % o->pages;
	b = a + 1 + (size_t)rand_r(&w->seed) % (o->pages - a);
	if (op < 55) {                           /* read, verify, write next */
		verify_page(w, o, i, "a read");
		if (rand_r(&w->seed) % 4) {
			o->gen[i]++;
			soak_fill(o->base + i * PG, o->key, i, o->gen[i]);
		}
		return;
	}
	w->structural++;
	if (op < 62) {                           /* verify the whole object */
		for (size_t k = 0; k < o->pages; k++)
			verify_page(w, o, k, "a full check");
	} else if (op < 68) {                    /* evict now */
		int err = ufp_advise(r->p, o->base + a * PG, (b - a) * PG, UFP_ADV_PAGEOUT);

		if (err && err != -ENOSPC)
			fprintf(stderr, "\nsoak: PAGEOUT: %d\n", err);
	} else if (op < 73) {                    /* discard */
		if (!ufp_advise(r->p, o->base + a * PG, (b - a) * PG, UFP_ADV_DONTNEED))
			for (size_t k = a; k < b; k++)
				o->gen[k] = 0;
	} else if (op < 79) {                    /* split read-only, merge back */
		if (!ufp_protect(r->p, o->base + a * PG, (b - a) * PG, UFP_PROT_READ)) {
			for (size_t k = a; k < b; k++)
				verify_page(w, o, k, "protect read-only");
			ufp_protect(r->p, o->base + a * PG, (b - a) * PG, UFP_PROT_ALL);
		}
	} else if (op < 86 && o->alloc) {        /* realloc: grow or shrink */
		size_t np = 1 + (size_t)rand_r(&w->seed) % SOAK_MAX_PAGES;
		char *nb;

		if (!ufp_realloc(r->p, o->base, np * PG, (void **)&nb)) {
			for (size_t k = o->pages; k < np; k++)
				o->gen[k] = 0;
			o->base = nb;
			o->pages = np;
			for (size_t k = 0; k < np; k++)
				verify_page(w, o, k, "realloc");
		}
	} else if (op < 93) {                    /* free and start again */
		obj_del(r, o);
		obj_new(r, w, o);
	} else {
		ufp_advise(r->p, o->base + a * PG, (b - a) * PG, UFP_ADV_WILLNEED);
		for (size_t k = a; k < b; k++)
			verify_page(w, o, k, "WILLNEED");
	}
}

struct soak_arg {
	struct soak_run *r;
	struct soak_worker *w;
};

static void *soak_main(void *arg)
{
	struct soak_arg *sa = arg;
	struct soak_run *r = sa->r;
	struct soak_worker *w = sa->w;

	ufp_thread_register();
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		pthread_rwlock_rdlock(&r->forklock);
		for (int k = 0; k < 16; k++)
			soak_op(r, w);
		w->ops += 16;
		pthread_rwlock_unlock(&r->forklock);
	}
	for (unsigned k = 0; k < SOAK_OBJS; k++)
		if (w->obj[k].base) {
			for (size_t i = 0; i < w->obj[k].pages; i++)
				verify_page(w, &w->obj[k], i, "the final check");
			obj_del(r, &w->obj[k]);
		}
	return NULL;
}

/* Fork with every worker between operations; the child checks up to 4
 * pages of every object and exits with the number of bad pages. */
static void soak_fork(struct soak_run *r)
{
	pid_t pid;
	int st;

	pthread_rwlock_wrlock(&r->forklock);
	pid = fork();
	if (pid == 0) {
		unsigned bad = 0;

		for (unsigned t = 0; t < r->nw; t++)
			for (unsigned k = 0; k < SOAK_OBJS; k++) {
				struct soak_obj *o = &r->w[t].obj[k];

				for (size_t i = 0; o->base && i < o->pages; i += 1 + o->pages / 4)
					bad += !soak_check(o->base + i * PG, o->key, i, o->gen[i]);
			}
		_exit(bad > 250 ? 250 : (int)bad);
	}
	pthread_rwlock_unlock(&r->forklock);
	if (pid < 0)
		return;
	r->forks++;
	if (waitpid(pid, &st, 0) == pid && (!WIFEXITED(st) || WEXITSTATUS(st))) {
		r->fork_bad += WIFEXITED(st) ? (uint64_t)WEXITSTATUS(st) : 1;
		fprintf(stderr, "\nsoak: fork child found %d bad pages (status 0x%x)\n",
			WIFEXITED(st) ? WEXITSTATUS(st) : -1, st);
	}
}

/* ---- the run -------------------------------------------------------------- */

/* The kinds of injected fault, as struct ufp_stats counts them. */
enum { INJ_EIO, INJ_SHORT, INJ_ENOSPC, INJ_EAGAIN, INJ_DELAY, INJ_CSUM, INJ_KILL, INJ_NR };

struct soak_total {
	uint64_t ops, structural, bytes, lost, forks, fork_bad, injected, survived;
	uint64_t poisoned, stalls, swapins, swapouts, swap_full, eagain, fork_failed;
	uint64_t kinds[INJ_NR];
};

/* Faults injected so far in this process, by kind, from the inject_*
 * counters of struct ufp_stats (process-wide). Returns the sum. */
static uint64_t injected_now(ufp_pager *p, uint64_t kinds[INJ_NR])
{
	struct ufp_stats s = { .size = sizeof(s), .version = UFP_STATS_VERSION };
	uint64_t n = 0;

	ufp_stats_get(p, &s);
	kinds[INJ_EIO] = s.inject_eio;
	kinds[INJ_SHORT] = s.inject_short;
	kinds[INJ_ENOSPC] = s.inject_enospc;
	kinds[INJ_EAGAIN] = s.inject_eagain;
	kinds[INJ_DELAY] = s.inject_delay;
	kinds[INJ_CSUM] = s.inject_csum;
	kinds[INJ_KILL] = s.inject_kill;
	for (unsigned k = 0; k < INJ_NR; k++)
		n += kinds[k];
	return n;
}

static void soak_progress(const struct soak_total *t, struct soak_run *r, double el, double total,
		     uint64_t inj0, bool tty)
{
	/* t->lost already holds the earlier phases' fork_bad; this phase's
	 * is in r->fork_bad */
	uint64_t ops = t->ops, bytes = t->bytes, lost = t->lost + r->fork_bad, k[INJ_NR];

	for (unsigned i = 0; i < r->nw; i++) {
		ops += r->w[i].ops;
		bytes += r->w[i].bytes;
		lost += r->w[i].lost;
	}
	printf("soak: %6.0f/%.0f s  ops %llu  verified %.2f GiB  injected %llu  forks %llu  lost %llu%s",
	       el, total, (unsigned long long)ops, (double)bytes / (1 << 30),
	       (unsigned long long)(injected_now(r->p, k) - inj0 + t->injected),
	       (unsigned long long)(t->forks + r->forks), (unsigned long long)lost,
	       tty ? "   \r" : "\n");
	fflush(stdout);
}

static int soak_phase(unsigned delivery, unsigned nthreads, double seconds, double total,
		      double *elapsed, const char *spec, struct soak_total *t)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .delivery = delivery,
		.budget = 2 << 20, .swap_size = 256 << 20, .ztier_size = 1 << 20,
		.flags = UFP_PF_NO_EXPORT,
	};
	struct ufp_stats s = { .size = sizeof(s), .version = UFP_STATS_VERSION };
	struct soak_run r = { .nw = nthreads, .next_key = 1 };
	struct soak_arg *args;
	uint64_t t0 = now_ns(), last = t0, next_fork, inj0, k0[INJ_NR], k1[INJ_NR];
	uint64_t phase_lost = 0;
	bool tty = isatty(1);
	int err;

	/* the public route to injection: the option is read when the pager
	 * is created (an empty value: none) */
	if (setenv("UFPAGER_INJECT", spec, 1))
		return 1;
	err = ufp_pager_create(&pr, &r.p);
	if (err) {
		fprintf(stderr, "soak: ufp_pager_create: %d %s\n", err, ufp_last_error());
		if (err == -EINVAL)   /* a bad --inject (the library names the item) */
			return 2;
		return err == -EPERM || err == -ENOSYS || err == -EACCES ? 77 : 1;
	}
	/* Writer-preferring: glibc's default rwlock prefers readers, and four
	 * workers that take it back to back keep the count above zero for
	 * ever, so the fork thread (and with it the end of the phase) starved. */
	pthread_rwlockattr_t ra;

	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r.forklock, &ra);
	pthread_rwlockattr_destroy(&ra);
	r.w = calloc(nthreads, sizeof(*r.w));
	args = calloc(nthreads, sizeof(*args));
	inj0 = injected_now(r.p, k0);
	for (unsigned i = 0; i < nthreads; i++) {
		r.w[i].id = i;
		r.w[i].seed = 1234 + i * 7919 + delivery;
		args[i] = (struct soak_arg){ &r, &r.w[i] };
		pthread_create(&r.w[i].th, NULL, soak_main, &args[i]);
	}
	next_fork = t0 + 2000000000ull;
	for (;;) {
		uint64_t now = now_ns();

		if (now - t0 >= (uint64_t)(seconds * 1e9))
			break;
		if (now >= next_fork) {
			soak_fork(&r);
			next_fork = now + 3000000000ull;
		}
		if (now - last >= 5000000000ull) {
			last = now;
			soak_progress(t, &r, *elapsed + (double)(now - t0) / 1e9, total, inj0, tty);
		}
		usleep(20000);
	}
	soak_fork(&r);
	atomic_store(&r.stop, true);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(r.w[i].th, NULL);
	ufp_stats_get(r.p, &s);
	for (unsigned i = 0; i < nthreads; i++) {
		t->ops += r.w[i].ops;
		t->structural += r.w[i].structural;
		t->bytes += r.w[i].bytes;
		phase_lost += r.w[i].lost;
	}
	phase_lost += r.fork_bad;
	t->lost += phase_lost;
	t->forks += r.forks;
	t->fork_bad += r.fork_bad;
	uint64_t inj = injected_now(r.p, k1) - inj0;
	for (unsigned k = 0; k < INJ_NR; k++)
		t->kinds[k] += k1[k] - k0[k];
	t->injected += inj;
	if (!phase_lost && !s.service_stalls)
		t->survived += inj;
	t->poisoned += s.pages_poisoned;
	t->stalls += s.service_stalls;
	t->swapins += s.swapins;
	t->swapouts += s.swapouts;
	t->swap_full += s.swap_full_events;
	t->eagain += s.ioctl_eagain;
	t->fork_failed += s.fork_swapin_failed;
	ufp_pager_destroy(r.p);
	pthread_rwlock_destroy(&r.forklock);
	free(r.w);
	free(args);
	*elapsed += (double)(now_ns() - t0) / 1e9;
	return 0;
}

int bench_soak(struct bench_opts *o)
{
	static const char *spec_fmt = "eagain=0.05,delay_us=200:0.002,eio=0.01@write,"
				      "short=0.01@write,enospc=0.005,seed=%u";
	unsigned nthreads = o->soak_threads ? o->soak_threads : 4;
	double total = o->soak_seconds, elapsed = 0;
	struct soak_total t = { 0 };
	char spec[160];
	int rc;

	snprintf(spec, sizeof(spec), spec_fmt, (unsigned)time(NULL));
	if (o->soak_inject)   /* its syntax is checked by the library at ufp_pager_create */
		snprintf(spec, sizeof(spec), "%s", strcmp(o->soak_inject, "off") ? o->soak_inject : "");
	unsetenv("UFPAGER_INJECT");   /* the phases set it */
	printf("\n== soak: %u threads, %.0f s, 2 MiB budget, sigbus then handler delivery\n"
	       "   injecting %s\n", nthreads, total, spec);
	rc = soak_phase(UFP_DELIVERY_SIGBUS, nthreads, total / 2, total, &elapsed, spec, &t);
	if (!rc)
		rc = soak_phase(UFP_DELIVERY_HANDLER, nthreads, total / 2, total, &elapsed, spec, &t);
	unsetenv("UFPAGER_INJECT");
	if (rc == 77) {
		printf("soak: SKIP: userfaultfd unavailable here (%s)\n", ufp_last_error());
		return 0;
	}
	if (rc && !t.ops)
		return rc;   /* nothing ran (a bad --inject: 2): no summary to print */
	if (isatty(1))
		printf("\n");
	printf("soak summary (%.1f s, %u threads):\n"
	       "  operations        %llu (%llu structural: evict, discard, protect, realloc, free/map)\n"
	       "  bytes verified    %llu (%.2f GiB)\n"
	       "  forks             %llu (children that found a bad page: %llu; "
	       "pages a fork could not read back: %llu)\n"
	       "  swap-ins/outs     %llu / %llu (swap-full events %llu, ioctl EAGAIN %llu)\n"
	       "  faults injected   %llu (eio %llu, short %llu, enospc %llu, eagain %llu, delay %llu)\n"
	       "  faults survived   %llu\n"
	       "  pages poisoned    %llu (none expected: no read errors injected)\n"
	       "  service stalls    %llu\n"
	       "  lost              %llu\n",
	       elapsed, nthreads, (unsigned long long)t.ops, (unsigned long long)t.structural,
	       (unsigned long long)t.bytes, (double)t.bytes / (1 << 30),
	       (unsigned long long)t.forks, (unsigned long long)t.fork_bad,
	       (unsigned long long)t.fork_failed,
	       (unsigned long long)t.swapins, (unsigned long long)t.swapouts,
	       (unsigned long long)t.swap_full, (unsigned long long)t.eagain,
	       (unsigned long long)t.injected, (unsigned long long)t.kinds[INJ_EIO],
	       (unsigned long long)t.kinds[INJ_SHORT], (unsigned long long)t.kinds[INJ_ENOSPC],
	       (unsigned long long)t.kinds[INJ_EAGAIN], (unsigned long long)t.kinds[INJ_DELAY],
	       (unsigned long long)t.survived, (unsigned long long)t.poisoned,
	       (unsigned long long)t.stalls, (unsigned long long)t.lost);
	if (o->json) {
		json_row_begin(o, "soak");
		json_kv_num(o, "seconds", elapsed);
		json_kv_num(o, "ops", (double)t.ops);
		json_kv_num(o, "bytes_verified", (double)t.bytes);
		json_kv_num(o, "faults_injected", (double)t.injected);
		json_kv_num(o, "faults_survived", (double)t.survived);
		json_kv_num(o, "pages_poisoned", (double)t.poisoned);
		json_kv_num(o, "lost", (double)t.lost);
		json_row_end(o);
	}
	return t.lost || t.poisoned || t.stalls || rc ? 1 : 0;
}
