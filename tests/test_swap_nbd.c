/* SPDX-License-Identifier: MIT */
/*
 * test_swap_nbd.c - swap over NBD against real servers from Debian's
 * packages: nbdkit (memory and file plugins, on a Unix socket and on
 * loopback TCP) and nbd-server. Page patterns over several times the
 * budget, both deliveries, the sandbox on; the server killed and
 * restarted mid-run (nothing lost); a server that stays away (eviction
 * stops, stats and ufp_last_error say so, all resumes when it is back);
 * a read the server refuses and a corrupted copy poison only their page;
 * bad URIs, a server that refuses, an export too small or read-only fail
 * at create time with a reason. Exits 77 without nbdkit or nbd-server.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ufp_test.h"
#include "ufp_internal.h"
#include "swap_backend.h"
#include "sandbox.h"

extern char **environ;

static const unsigned deliveries[2] = { UFP_DELIVERY_SIGBUS, UFP_DELIVERY_HANDLER };
static char tdir[64];

/* ---- servers --------------------------------------------------------- */

enum srv_kind { NBDKIT_MEM_UNIX, NBDKIT_MEM_TCP, NBDKIT_FILE_UNIX, NBDSRV_UNIX, NBDSRV_TCP };

struct srv {
	enum srv_kind kind;
	pid_t pid;
	int port;
	char sock[100], img[128], uri[256], log[128];
	const char *size;          /* memory plugin / image size */
	const char *extra[8];      /* nbdkit: filters and their parameters */
};

static bool have(const char *prog)
{
	char path[256];
	const char *dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };

	for (unsigned i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], prog);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert(fd >= 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Can a client connect to the server's socket yet? */
static bool srv_listening(struct srv *s)
{
	int fd, r;

	if (s->port) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		fd = socket(AF_INET, SOCK_STREAM, 0);
		r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		snprintf(a.sun_path, sizeof(a.sun_path), "%s", s->sock);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	}
	close(fd);
	return r == 0;
}

static void srv_spawn(struct srv *s)
{
	char port[16], conf[160], pidf[160];
	const char *argv[32];
	int n = 0;

	snprintf(port, sizeof(port), "%d", s->port);
	if (s->kind >= NBDSRV_UNIX) {
		FILE *f;

		snprintf(conf, sizeof(conf), "%s/nbd-server.%d.conf", tdir, (int)s->kind);
		snprintf(pidf, sizeof(pidf), "%s/nbd-server.%d.pid", tdir, (int)s->kind);
		f = fopen(conf, "w");
		ck_assert(f != NULL);
		if (s->port)
			fprintf(f, "[generic]\n\tlistenaddr = 127.0.0.1\n\tport = %d\n", s->port);
		else
			fprintf(f, "[generic]\n\tunixsock = %s\n", s->sock);
		fprintf(f, "[swap]\n\texportname = %s\n\ttrim = true\n", s->img);
		fclose(f);
		argv[n++] = "nbd-server";
		argv[n++] = "-C";
		argv[n++] = conf;
		argv[n++] = "-p";
		argv[n++] = pidf;
	} else {
		argv[n++] = "nbdkit";
		argv[n++] = "-f";
		argv[n++] = "--exit-with-parent";
		if (s->port) {
			argv[n++] = "-i";
			argv[n++] = "127.0.0.1";
			argv[n++] = "-p";
			argv[n++] = port;
		} else {
			argv[n++] = "-U";
			argv[n++] = s->sock;
		}
		for (unsigned i = 0; i < 8 && s->extra[i]; i++)   /* options, filters */
			if (s->extra[i][0] == '-')
				argv[n++] = s->extra[i];
		if (s->kind == NBDKIT_FILE_UNIX) {
			argv[n++] = "file";
			argv[n++] = s->img;
		} else {
			argv[n++] = "memory";
			argv[n++] = s->size;
		}
		for (unsigned i = 0; i < 8 && s->extra[i]; i++)   /* their key=value */
			if (s->extra[i][0] != '-')
				argv[n++] = s->extra[i];
	}
	argv[n] = NULL;
	if (!s->port)
		unlink(s->sock);          /* a killed server leaves its socket */
	/* posix_spawn, not fork: a fork runs the pager's fork policy, which
	 * reads every evicted page back -- from the server this very call
	 * is about to restart */
	posix_spawn_file_actions_t fa;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	ck_assert_int_eq(posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	if (s->kind >= NBDSRV_UNIX) {
		/* nbd-server daemonizes: the parent exits, the pid file names it */
		FILE *f;
		int st;

		waitpid(pid, &st, 0);
		for (int i = 0; i < 500; i++) {
			f = fopen(pidf, "r");
			if (f) {
				int ok = fscanf(f, "%d", &s->pid);

				fclose(f);
				if (ok == 1 && s->pid > 0)
					break;
			}
			usleep(10000);
		}
		unlink(pidf);
		/* nbd-server does not go with us (no --exit-with-parent): main
		 * ends every one this run started, whatever became of its test */
		snprintf(pidf, sizeof(pidf), "%s/nbd-server.pids", tdir);
		f = fopen(pidf, "a");
		if (f) {
			fprintf(f, "%d\n", s->pid);
			fclose(f);
		}
	} else {
		s->pid = pid;
	}
	for (int i = 0; i < 500 && !srv_listening(s); i++)
		usleep(10000);
	ck_assert_msg(srv_listening(s), "server did not come up (log %s)", s->log);
}

/* Start a server of kind; size: memory plugin size or image size. */
static void srv_start(struct srv *s, enum srv_kind kind, const char *size)
{
	static int seq;

	s->kind = kind;
	s->size = size;
	seq++;
	snprintf(s->sock, sizeof(s->sock), "%s/s%d.sock", tdir, seq);
	snprintf(s->img, sizeof(s->img), "%s/img%d", tdir, seq);
	snprintf(s->log, sizeof(s->log), "%s/server%d.log", tdir, seq);
	s->port = kind == NBDKIT_MEM_TCP || kind == NBDSRV_TCP ? free_port() : 0;
	if (kind == NBDKIT_FILE_UNIX || kind >= NBDSRV_UNIX) {
		uint64_t bytes;

		ck_assert_int_eq(options_parse_size(size, &bytes), 0);
		int fd = open(s->img, O_RDWR | O_CREAT | O_TRUNC, 0600);

		ck_assert(fd >= 0);
		ck_assert_int_eq(ftruncate(fd, (off_t)bytes), 0);
		close(fd);
	}
	if (s->port)
		snprintf(s->uri, sizeof(s->uri), "nbd://127.0.0.1:%d/%s", s->port,
			 kind >= NBDSRV_UNIX ? "swap" : "");
	else
		snprintf(s->uri, sizeof(s->uri), "nbd+unix:///%s?socket=%s",
			 kind >= NBDSRV_UNIX ? "swap" : "", s->sock);
	srv_spawn(s);
}

static void srv_kill(struct srv *s, int sig)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, sig);
	if (s->kind < NBDSRV_UNIX)
		waitpid(s->pid, NULL, 0);
	else
		for (int i = 0; i < 200 && kill(s->pid, 0) == 0; i++)
			usleep(10000);
	s->pid = 0;
}

static ufp_pager *nbd_pager(unsigned delivery, uint64_t budget, const char *uri)
{
	struct ufp_params pr = {
		.size = sizeof(pr), .version = UFP_PARAMS_VERSION, .delivery = delivery,
		.budget = budget, .arena_size = 1ull << 30, .ztier_size = 4096,   /* no tier */
		.swap_dir = uri, .flags = UFP_PF_NO_EXPORT,
	};
	ufp_pager *p = NULL;
	int r = ufp_pager_create(&pr, &p);

	ck_assert_msg(r == 0, "create on %s: %d %s", uri, r, ufp_last_error());
	return p;
}

/* ---- create-time errors ------------------------------------------------ */

START_TEST(bad_uris_fail_with_einval_and_a_reason)
{
	static const char *const bad[] = {
		"nbd://", "nbd:///export", "nbd+unix:///x", "nbd+unix://host/x?socket=/s",
		"nbds://127.0.0.1/x", "nbd+vsock://1/x", "nbd://127.0.0.1:12ab/x",
		"nbd://127.0.0.1/x?foo=1", "nbd://127.0.0.1/%zz", "nbd://127.0.0.1/x%4",
		"nbd+unix:///e?socket=/s&connections=0", "nbd+unix:///e?socket=/s&connections=99",
		"nbd://127.0.0.1/x?socket=/s", "nbd://[::1/x", "nbd+unix:///e?socket",
	};
	uint64_t size = 1;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = ufp_swap_probe(bad[i], &size);

		ck_assert_msg(r == -EINVAL, "%s: %d %s", bad[i], r, ufp_last_error());
		ck_assert_msg(strstr(ufp_last_error(), "NBD URI") ||
			      strstr(ufp_last_error(), "not an NBD"), "%s: %s", bad[i],
			      ufp_last_error());
	}
	ck_assert_int_eq(ufp_swap_probe(NULL, &size), -EINVAL);
	ck_assert_int_eq(ufp_swap_probe("nbd://127.0.0.1/x", NULL), -EINVAL);
	/* through the pager and the environment alike */
	setenv("UFPAGER_SWAP", "nbd+unix:///x", 1);
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
				 .budget = 1 << 20, .flags = UFP_PF_NO_EXPORT };
	ufp_pager *p;

	ck_assert_int_eq(ufp_pager_create(&pr, &p), -EINVAL);
	ck_assert_msg(strstr(ufp_last_error(), "socket=PATH"), "%s", ufp_last_error());
	/* UFPAGER_SWAP takes a directory too, and beats UFPAGER_SWAP_DIR */
	setenv("UFPAGER_SWAP_DIR", tdir, 1);
	setenv("UFPAGER_SWAP", "/nonexistent/ufp-swap", 1);
	ck_assert_int_eq(ufp_pager_create(&pr, &p), -ENOENT);
	ck_assert_msg(strstr(ufp_last_error(), "/nonexistent/ufp-swap"), "%s", ufp_last_error());
	unsetenv("UFPAGER_SWAP");
	unsetenv("UFPAGER_SWAP_DIR");
}
END_TEST

/* connections=N opens N connections; the loop uses every one of them. */
START_TEST(connections_parameter_sets_the_pool)
{
	struct srv s = { 0 };
	char uri[300];
	struct swb_usage u;
	ufp_pager *p;
	char *m;

	srv_start(&s, NBDKIT_MEM_UNIX, "16M");
	snprintf(uri, sizeof(uri), "%s&connections=%d", s.uri, _i ? 1 : 7);
	p = nbd_pager(UFP_DELIVERY_SIGBUS, 1 << 20, uri);
	ck_assert_int_eq(ufp_alloc(p, 512 * PAGE, (void **)&m), 0);
	for (int i = 0; i < 512; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 4);
	/* every page out (over all the connections: 8 clusters) and back */
	ck_assert_int_eq(ufp_advise(p, m, 512 * PAGE, UFP_ADV_PAGEOUT), 0);
	ck_assert_uint_ge(ufp_test_stats(p).swapouts, 512);
	for (int i = 0; i < 512; i++)
		ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 4));
	swb_usage(((struct ufp_pager *)p)->swb, &u);
	ck_assert_uint_eq(u.net_conns, _i ? 1 : 7);
	ck_assert_uint_eq(u.net_ready, _i ? 1 : 7);
	ck_assert_uint_ge(u.bytes_read, 512 * PAGE);
	ufp_pager_destroy(p);
	srv_kill(&s, SIGTERM);
}
END_TEST

START_TEST(refusing_small_or_read_only_servers_fail_at_create)
{
	struct srv small = { 0 }, ro = { .extra = { "-r" } };
	char uri[256];
	uint64_t size;
	ufp_pager *p;
	int r;

	/* nobody listening: Unix socket that does not exist, a closed port */
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/nobody.sock", tdir);
	r = ufp_swap_probe(uri, &size);
	ck_assert_msg(r == -ENOENT, "%d %s", r, ufp_last_error());
	ck_assert_msg(strstr(ufp_last_error(), "cannot connect"), "%s", ufp_last_error());
	snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%d/", free_port());
	r = ufp_swap_probe(uri, &size);
	ck_assert_msg(r == -ECONNREFUSED, "%d %s", r, ufp_last_error());
	struct ufp_params pr = { .size = sizeof(pr), .version = UFP_PARAMS_VERSION,
				 .budget = 1 << 20, .swap_dir = uri, .flags = UFP_PF_NO_EXPORT };

	ck_assert_int_eq(ufp_pager_create(&pr, &p), -ECONNREFUSED);
	ck_assert_msg(strstr(ufp_last_error(), uri), "%s", ufp_last_error());
	/* an export smaller than the least swap space (1 MiB) */
	srv_start(&small, NBDKIT_MEM_UNIX, "512K");
	r = ufp_swap_probe(small.uri, &size);
	ck_assert_msg(r == -ENOSPC, "%d %s", r, ufp_last_error());
	ck_assert_msg(strstr(ufp_last_error(), "too small"), "%s", ufp_last_error());
	/* a read-only export cannot take pages */
	srv_start(&ro, NBDKIT_MEM_UNIX, "16M");
	r = ufp_swap_probe(ro.uri, &size);
	ck_assert_msg(r == -EROFS, "%d %s", r, ufp_last_error());
	srv_kill(&small, SIGTERM);
	srv_kill(&ro, SIGTERM);
}
END_TEST

START_TEST(probe_reports_the_export_size)
{
	struct srv s = { 0 };
	uint64_t size = 0;

	srv_start(&s, _i ? NBDSRV_TCP : NBDKIT_MEM_TCP, "48M");
	ck_assert_msg(ufp_swap_probe(s.uri, &size) == 0, "%s", ufp_last_error());
	ck_assert_uint_eq(size, 48ull << 20);
	/* a directory: the space free in its filesystem */
	size = 0;
	ck_assert_int_eq(ufp_swap_probe(tdir, &size), 0);
	ck_assert_uint_gt(size, 0);
	srv_kill(&s, SIGTERM);
}
END_TEST

/* ---- data --------------------------------------------------------------- */

struct worker {
	char *base;
	size_t pages;
	unsigned seed, iters;
	uint32_t *gen;
	int errors;
};

/* Random pages: check what the page holds, write its next generation. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;

	ufp_thread_register();
	for (unsigned it = 0; it < w->iters; it++) {
		size_t i = (size_t)rand_r(&w->seed) % w->pages;
		char *pg = w->base + i * PAGE;

		if (w->gen[i] ? !ufp_check_rand(pg, w->gen[i]) : ufp_check_page(pg, 0) != 1)
			w->errors++;
		ufp_fill_rand(pg, ++w->gen[i]);
	}
	return NULL;
}

/* Every page of w holds its last generation (or zeros, never written). */
static void worker_verify(struct worker *w)
{
	for (size_t k = 0; k < w->pages; k++)
		ck_assert_msg(w->gen[k] ? ufp_check_rand(w->base + k * PAGE, w->gen[k]) :
			      ufp_check_page(w->base + k * PAGE, 0) == 1, "page %zu", k);
}

/* Sequential passes, then two threads at random: 4x the budget. */
START_TEST(patterns_survive_swap_over_nbd)
{
	static const enum srv_kind kinds[4] = { NBDKIT_MEM_UNIX, NBDKIT_MEM_TCP, NBDSRV_UNIX,
						NBDSRV_TCP };
	enum { PAGES = 1024, T = 2 };      /* 2 x 4 MiB against a 2 MiB budget */
	struct srv s = { 0 };
	struct worker w[T];
	pthread_t th[T];
	ufp_pager *p;

	srv_start(&s, kinds[_i / 2], "64M");
	p = nbd_pager(deliveries[_i % 2], 2 << 20, s.uri);
	for (int t = 0; t < T; t++) {
		w[t] = (struct worker){ .pages = PAGES, .seed = (unsigned)t + 7, .iters = 3000,
					.gen = calloc(PAGES, sizeof(uint32_t)) };
		ck_assert_int_eq(ufp_alloc(p, PAGES * PAGE, (void **)&w[t].base), 0);
		for (uint32_t g = 1; g <= 2; g++)          /* sequential, twice */
			for (size_t k = 0; k < PAGES; k++) {
				if (g > 1)
					ck_assert(ufp_check_rand(w[t].base + k * PAGE, g - 1));
				ufp_fill_rand(w[t].base + k * PAGE, g);
				w[t].gen[k] = g;
			}
	}
	/* every page through the server at least once, whatever the victim
	 * policy makes of the random phase (under load it has been seen to
	 * evict nothing there: README "Swap over NBD") */
	for (int t = 0; t < T; t++)
		ck_assert_int_eq(ufp_advise(p, w[t].base, PAGES * PAGE, UFP_ADV_PAGEOUT), 0);
	for (int t = 0; t < T; t++)
		pthread_create(&th[t], NULL, worker_main, &w[t]);
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < T; t++) {
		ck_assert_int_eq(w[t].errors, 0);
		worker_verify(&w[t]);
		free(w[t].gen);
	}
	struct ufp_stats st = ufp_test_stats(p);

	ck_assert_msg(st.swapouts >= T * PAGES, "swapouts %llu; sandbox_kills %llu, service_stalls "
		      "%llu, swap_full_events %llu, swap_unreachable %llu, reclaim_scans %llu: %s",
		      (unsigned long long)st.swapouts, (unsigned long long)st.sandbox_kills,
		      (unsigned long long)st.service_stalls,
		      (unsigned long long)st.swap_full_events,
		      (unsigned long long)st.swap_unreachable,
		      (unsigned long long)st.reclaim_scans, ufp_last_error());
	ck_assert_uint_gt(st.swapins, PAGES);
	ck_assert_uint_gt(st.bytes_written, (uint64_t)PAGES * PAGE);
	ck_assert_uint_eq(st.pages_poisoned, 0);
	ck_assert_uint_eq(st.sandbox_kills, 0);
	ck_assert_uint_eq(st.swap_unreachable, 0);
	/* the sequential pass read whole clusters ahead and used them */
	struct swb_usage u;

	swb_usage(((struct ufp_pager *)p)->swb, &u);
	ck_assert_uint_gt(u.net_ra_reads, 0);
	ck_assert_uint_gt(u.net_ra_hits, PAGES / 2);
	ck_assert_uint_eq(u.net_conns, 4);
	ufp_pager_destroy(p);
	srv_kill(&s, SIGTERM);
}
END_TEST

/* ---- faults ------------------------------------------------------------- */

START_TEST(server_killed_and_restarted_mid_run_loses_nothing)
{
	enum { PAGES = 1024, T = 2 };
	struct srv s = { 0 };
	struct worker w[T];
	pthread_t th[T];
	ufp_pager *p;

	srv_start(&s, NBDKIT_FILE_UNIX, "64M");      /* the data outlives the process */
	p = nbd_pager(deliveries[_i], 2 << 20, s.uri);
	for (int t = 0; t < T; t++) {
		w[t] = (struct worker){ .pages = PAGES, .seed = (unsigned)t + 3, .iters = 12000,
					.gen = calloc(PAGES, sizeof(uint32_t)) };
		ck_assert_int_eq(ufp_alloc(p, PAGES * PAGE, (void **)&w[t].base), 0);
		for (size_t k = 0; k < PAGES; k++)      /* all on the server first */
			ufp_fill_rand(w[t].base + k * PAGE, w[t].gen[k] = 1);
		ck_assert_int_eq(ufp_advise(p, w[t].base, PAGES * PAGE, UFP_ADV_PAGEOUT), 0);
	}
	for (int t = 0; t < T; t++)
		pthread_create(&th[t], NULL, worker_main, &w[t]);
	for (int k = 0; k < 3; k++) {
		usleep(150000);
		srv_kill(&s, SIGKILL);                  /* mid-request, no goodbye */
		usleep(100000 + 100000 * (unsigned)k);
		srv_spawn(&s);
	}
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < T; t++) {
		ck_assert_int_eq(w[t].errors, 0);
		worker_verify(&w[t]);
		free(w[t].gen);
	}
	struct ufp_stats st = ufp_test_stats(p);

	ck_assert_uint_ge(st.swapouts, T * PAGES);
	ck_assert_uint_ge(st.swap_reconnects, 1);
	ck_assert_uint_eq(st.pages_poisoned, 0);
	ck_assert_uint_eq(st.sandbox_kills, 0);
	ufp_pager_destroy(p);
	srv_kill(&s, SIGTERM);
}
END_TEST

/* The server goes away for good: eviction stops (pages over the budget
 * stay resident and correct), stats and ufp_last_error say so; when it
 * comes back, pages stored there read back and eviction resumes. */
START_TEST(server_away_stops_eviction_and_resumes_when_back)
{
	enum { PAGES = 512 };
	struct srv s = { 0 };
	struct ufp_stats st;
	char *a, *b;
	ufp_pager *p;
	uint64_t outs;

	srv_start(&s, NBDKIT_FILE_UNIX, "32M");
	p = nbd_pager(deliveries[_i], 1 << 20, s.uri);
	ck_assert_int_eq(ufp_alloc(p, PAGES * PAGE, (void **)&a), 0);
	ck_assert_int_eq(ufp_alloc(p, PAGES * PAGE, (void **)&b), 0);
	for (size_t k = 0; k < PAGES; k++)
		ufp_fill_rand(a + k * PAGE, 1);
	ck_assert_int_eq(ufp_advise(p, a, PAGES * PAGE, UFP_ADV_PAGEOUT), 0);
	srv_kill(&s, SIGKILL);
	/* new pages over the budget: they cannot go anywhere */
	for (size_t k = 0; k < PAGES; k++)
		ufp_fill_rand(b + k * PAGE, 2);
	for (int i = 0; i < 300; i++) {
		st = ufp_test_stats(p);
		if (st.swap_unreachable)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(st.swap_unreachable, 1);
	ck_assert_msg(strstr(ufp_last_error(), "unreachable for"), "%s", ufp_last_error());
	outs = st.swapouts;
	usleep(300000);                          /* eviction does not spin meanwhile */
	st = ufp_test_stats(p);
	ck_assert_uint_eq(st.swapouts, outs);
	ck_assert_uint_gt(st.resident_pages, (1 << 20) / PAGE);
	ck_assert_uint_le(st.swap_full_events, 10);
	for (size_t k = 0; k < PAGES; k++)
		ck_assert(ufp_check_rand(b + k * PAGE, 2));
	/* back: what it held reads back, and eviction goes on */
	srv_spawn(&s);
	for (size_t k = 0; k < PAGES; k++)
		ck_assert_msg(ufp_check_rand(a + k * PAGE, 1), "page %zu", k);
	for (int i = 0; i < 300; i++) {
		st = ufp_test_stats(p);
		if (st.swapouts > outs && !st.swap_unreachable)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(st.swap_unreachable, 0);
	ck_assert_uint_gt(st.swapouts, outs);
	ck_assert_uint_ge(st.swap_reconnects, 1);
	ck_assert_uint_eq(st.pages_poisoned, 0);
	for (size_t k = 0; k < PAGES; k++)
		ck_assert(ufp_check_rand(b + k * PAGE, 2));
	ufp_pager_destroy(p);
	srv_kill(&s, SIGTERM);
}
END_TEST


/* The server refuses one read (nbdkit's error filter, armed by a file)
 * and one stored copy is overwritten with garbage: each poisons its own
 * page (SIGBUS there), never wrong data, and no other page. */
START_TEST(failed_reads_and_bad_copies_poison_only_their_page)
{
	struct sigaction sa = { .sa_sigaction = ufp_test_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };
	char trigger[128], arg[160];
	struct srv s = { 0 };
	struct ufp_pager *ip;
	ufp_pager *p;
	char *m;

	snprintf(trigger, sizeof(trigger), "%s/fail-reads", tdir);
	snprintf(arg, sizeof(arg), "error-pread-file=%s", trigger);
	s.extra[0] = "--filter=error";
	s.extra[1] = "error-pread=EIO";
	s.extra[2] = "error-pread-rate=1";
	s.extra[3] = arg;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	srv_start(&s, NBDKIT_MEM_UNIX, "16M");
	p = nbd_pager(deliveries[_i], 1 << 20, s.uri);
	ip = (struct ufp_pager *)p;
	ck_assert_int_eq(ufp_alloc(p, 8 * PAGE, (void **)&m), 0);
	for (int i = 0; i < 8; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 5);
	ck_assert_int_eq(ufp_advise(p, m, 8 * PAGE, UFP_ADV_PAGEOUT), 0);
	uint64_t h6 = atomic_load(&ip->slots[pte_index(ip, (uintptr_t)m) + 6]);

	ck_assert(swb_handle_is_file(h6));
	ck_assert_int_eq(swb_inject(ip->swb, h6, SWB_INJECT_CORRUPT), 0);
	/* page 2 read while the server refuses reads (a lone, non-sequential
	 * fault: no readahead takes its neighbours along) */
	close(open(trigger, O_WRONLY | O_CREAT, 0600));
	ck_assert(ufp_test_read_faults(m + 2 * PAGE));
	unlink(trigger);
	for (int i = 0; i < 8; i++) {
		bool bad = i == 2 || i == 6;

		ck_assert_msg(ufp_test_read_faults(m + (size_t)i * PAGE) == bad, "page %d", i);
		if (!bad)
			ck_assert(ufp_check_rand(m + (size_t)i * PAGE, 5));
	}
	ck_assert_uint_eq(ufp_test_stats(p).pages_poisoned, 2);
	ck_assert(ufp_test_read_faults(m + 2 * PAGE));     /* stays poisoned */
	ufp_pager_destroy(p);
	signal(SIGBUS, SIG_DFL);
	srv_kill(&s, SIGTERM);
}
END_TEST

/* A bad block on the server (nbdkit's ddrescue filter) under one page of
 * a sequential run: the run is read in multi-page requests, and only
 * that page is poisoned, not its neighbours in the request. */
START_TEST(a_bad_block_poisons_its_page_not_its_request)
{
	struct sigaction sa = { .sa_sigaction = ufp_test_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };
	enum { N = 32, BAD = 9 };
	char map[160], arg[200];
	struct srv s = { 0 };
	struct ufp_pager *ip;
	ufp_pager *p;
	uint64_t h, bad, size = 16ull << 20;
	char *m;
	FILE *f;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	srv_start(&s, NBDKIT_FILE_UNIX, "16M");
	p = nbd_pager(deliveries[_i], 1 << 20, s.uri);
	ip = (struct ufp_pager *)p;
	ck_assert_int_eq(ufp_alloc(p, N * PAGE, (void **)&m), 0);
	for (int i = 0; i < N; i++)
		ufp_fill_rand(m + (size_t)i * PAGE, 3);
	ck_assert_int_eq(ufp_advise(p, m, N * PAGE, UFP_ADV_PAGEOUT), 0);
	h = atomic_load(&ip->slots[pte_index(ip, (uintptr_t)m) + BAD]);
	ck_assert(swb_handle_is_file(h));
	bad = (h & ((1ull << 40) - 1)) * PAGE;
	/* the same image again, with one bad 4 KiB block under page BAD */
	srv_kill(&s, SIGKILL);
	snprintf(map, sizeof(map), "%s/bad.map", tdir);
	f = fopen(map, "w");
	ck_assert(f != NULL);
	fprintf(f, "# Mapfile. Created by GNU ddrescue version 1.27\n"
		"# current_pos  current_status  current_pass\n0x00000000     +               1\n"
		"#      pos        size  status\n");
	if (bad)
		fprintf(f, "0x%08llx  0x%08llx  +\n", 0ull, (unsigned long long)bad);
	fprintf(f, "0x%08llx  0x%08llx  -\n", (unsigned long long)bad, (unsigned long long)PAGE);
	fprintf(f, "0x%08llx  0x%08llx  +\n", (unsigned long long)(bad + PAGE),
		(unsigned long long)(size - bad - PAGE));
	fclose(f);
	snprintf(arg, sizeof(arg), "ddrescue-mapfile=%s", map);
	s.extra[0] = "--filter=ddrescue";
	s.extra[1] = arg;
	srv_spawn(&s);
	for (int i = 0; i < N; i++) {           /* sequential: readahead batches */
		bool faults = ufp_test_read_faults(m + (size_t)i * PAGE);

		ck_assert_msg(faults == (i == BAD), "page %d", i);
		if (i != BAD)
			ck_assert_msg(ufp_check_rand(m + (size_t)i * PAGE, 3), "page %d", i);
	}
	struct ufp_stats st = ufp_test_stats(p);

	ck_assert_uint_eq(st.pages_poisoned, 1);
	ck_assert_uint_gt(st.swapins, N / 2);
	ufp_pager_destroy(p);
	signal(SIGBUS, SIG_DFL);
	srv_kill(&s, SIGTERM);
}
END_TEST

/* The swap I/O thread runs under its own filter: it may make sockets of
 * the server's kind only (a Unix socket beside a TCP server traps and
 * ends the thread; beside a Unix server it is allowed). */
START_TEST(swap_io_thread_makes_only_the_servers_sockets)
{
	struct srv tcp = { 0 }, unx = { 0 };
	ufp_pager *p;
	uint64_t kills = 0;

	srv_start(&tcp, NBDKIT_MEM_TCP, "16M");
	sandbox_test_call.what = SB_TEST_SOCKET;
	atomic_store(&sandbox_test_call.done, 0);
	atomic_store(&sandbox_test_call.armed_role, SB_SWAP_IO + 1);
	p = nbd_pager(UFP_DELIVERY_SIGBUS, 1 << 20, tcp.uri);
	for (int i = 0; i < 300 && !kills; i++) {
		kills = ufp_test_stats(p).sandbox_kills;
		usleep(10000);
	}
	ck_assert_uint_eq(kills, 1);
	ck_assert_int_eq(atomic_load(&sandbox_test_call.done), 0);
	ufp_pager_destroy(p);            /* joins the ended thread */
	srv_start(&unx, NBDKIT_MEM_UNIX, "16M");
	atomic_store(&sandbox_test_call.armed_role, SB_SWAP_IO + 1);
	p = nbd_pager(UFP_DELIVERY_SIGBUS, 1 << 20, unx.uri);
	for (int i = 0; i < 300 && !atomic_load(&sandbox_test_call.done); i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&sandbox_test_call.done), 1);
	ck_assert_int_ge(atomic_load(&sandbox_test_call.result), 0);
	ck_assert_uint_eq(ufp_test_stats(p).sandbox_kills, 0);
	ck_assert_uint_ge(ufp_test_stats(p).sandbox_threads, 1);
	ufp_pager_destroy(p);
	srv_kill(&tcp, SIGTERM);
	srv_kill(&unx, SIGTERM);
}
END_TEST

static Suite *nbd_suite(void)
{
	Suite *s = suite_create("swap_nbd");
	TCase *tc = tcase_create("nbd");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, bad_uris_fail_with_einval_and_a_reason);
	tcase_add_test(tc, refusing_small_or_read_only_servers_fail_at_create);
	tcase_add_loop_test(tc, probe_reports_the_export_size, 0, 2);
	tcase_add_loop_test(tc, connections_parameter_sets_the_pool, 0, 2);
	tcase_add_loop_test(tc, patterns_survive_swap_over_nbd, 0, 8);
	tcase_add_loop_test(tc, server_killed_and_restarted_mid_run_loses_nothing, 0, 2);
	tcase_add_loop_test(tc, server_away_stops_eviction_and_resumes_when_back, 0, 2);
	tcase_add_loop_test(tc, failed_reads_and_bad_copies_poison_only_their_page, 0, 2);
	tcase_add_loop_test(tc, a_bad_block_poisons_its_page_not_its_request, 0, 2);
	tcase_add_test(tc, swap_io_thread_makes_only_the_servers_sockets);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (!have("nbdkit") || !have("nbd-server")) {
		printf("SKIP: nbdkit and nbd-server are needed (Debian packages nbdkit, "
		       "nbd-server: scripts/deps.sh)\n");
		return UFP_SKIP;
	}
	ufp_test_require_swap();
	snprintf(tdir, sizeof(tdir), "/tmp/ufp-nbd-XXXXXX");
	if (!mkdtemp(tdir)) {
		perror("mkdtemp");
		return 1;
	}
	int r = ufp_run_suite(nbd_suite());
	char cmd[128];
	FILE *f;
	int pid;

	snprintf(cmd, sizeof(cmd), "%s/nbd-server.pids", tdir);
	f = fopen(cmd, "r");
	while (f && fscanf(f, "%d", &pid) == 1)
		if (pid > 0)
			kill(pid, SIGTERM);
	if (f)
		fclose(f);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tdir);
	if (system(cmd)) {
		/* leftovers in /tmp only */
	}
	return r;
}
