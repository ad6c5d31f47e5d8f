/* SPDX-License-Identifier: MIT */
/*
 * bench_crew.c - crews of benchmark threads for `ufpagerctl bench`: spawn
 * the workers, hold them behind one gate until every one has done its
 * set-up, time the run, raise stop, join them and merge what they
 * measured. The calling (main) thread drives a crew; a worker touches
 * only its own crew_member and the crew's gate and stop flag.
 */
#include <unistd.h>

#include "bench.h"

/* ======================================================================
 * Crews: benchmark threads that start behind one gate and stop together.
 * The gate is a mutex and a condition variable rather than a barrier so
 * that a worker that could not be spawned never leaves the others waiting.
 * ====================================================================== */

int crew_init(struct bench_crew *c, unsigned cap)
{
	memset(c, 0, sizeof(*c));
	c->cap = cap;
	c->th = calloc(cap ? cap : 1, sizeof(*c->th));
	c->m = calloc(cap ? cap : 1, sizeof(*c->m));
	if (!c->th || !c->m) {
		free(c->th);
		free(c->m);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	atomic_init(&c->stop, false);
	return 0;
}

void crew_destroy(struct bench_crew *c)
{
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->th);
	free(c->m);
}

void crew_spawn(struct bench_crew *c, struct crew_member *m, void *(*fn)(void *), void *arg)
{
	int err;

	if (c->err)
		return;
	if (c->spawned == c->cap) {
		c->err = -E2BIG;
		return;
	}
	m->crew = c;
	err = pthread_create(&c->th[c->spawned], NULL, fn, arg);
	if (err) {
		fprintf(stderr, "bench: cannot start a thread: %s\n", strerror(err));
		c->err = -err;
		return;
	}
	c->m[c->spawned++] = m;
}

void crew_ready(struct crew_member *m)
{
	struct bench_crew *c = m->crew;

	pthread_mutex_lock(&c->mu);
	c->ready++;
	pthread_cond_broadcast(&c->cv);
	while (!c->open)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

/* Wait for every spawned worker to be ready, set the deadline, open the
 * gate; returns the start time. After a spawn error, stop is raised first
 * so the workers that did start leave at once. */
static double crew_open(struct bench_crew *c, double seconds)
{
	double t0;

	pthread_mutex_lock(&c->mu);
	while (c->ready < c->spawned)
		pthread_cond_wait(&c->cv, &c->mu);
	if (c->err)
		atomic_store_explicit(&c->stop, true, memory_order_relaxed);
	t0 = now_s();
	c->deadline = t0 + seconds;
	c->open = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return t0;
}

static int crew_join(struct bench_crew *c, double t0)
{
	for (unsigned i = 0; i < c->spawned; i++)
		pthread_join(c->th[i], NULL);
	c->elapsed = now_s() - t0;
	return c->err;
}

int crew_run_for(struct bench_crew *c, double seconds)
{
	double t0 = crew_open(c, seconds);

	if (!c->err) {
		usleep((useconds_t)(seconds * 1e6));
		atomic_store_explicit(&c->stop, true, memory_order_relaxed);
	}
	return crew_join(c, t0);
}

int crew_run_to_deadline(struct bench_crew *c, double seconds)
{
	return crew_join(c, crew_open(c, seconds));
}

void crew_collect(const struct bench_crew *c, unsigned first, unsigned n, struct kb_hist *lat,
		  uint64_t *ops)
{
	for (unsigned i = first; i < first + n && i < c->spawned; i++) {
		if (lat)
			kb_hist_merge(lat, &c->m[i]->lat);
		if (ops)
			*ops += c->m[i]->ops;
	}
}

void lat_summary(const struct kb_hist *h, struct ufp_latency *out)
{
	*out = (struct ufp_latency){
		.count = h->count, .p50 = kb_hist_p50(h), .p99 = kb_hist_p99(h),
		.p999 = kb_hist_p999(h), .max = h->max, .sum = h->sum,
	};
}
