/* SPDX-License-Identifier: MIT */
/*
 * bench_cost.c - a test-side program (standalone: plain syscalls, lz4,
 * xxhash, src/uffd_compat.h for the names Debian's headers lack): the cost
 * of each step of one swap-in fault and of evicting one page, measured
 * apart, single thread, alone and again beside a real mmap_lock writer (a
 * thread of this process looping mprotect over 128 MiB of populated
 * memory), side by side in one run, each row's two runs back to back.
 *   delivery: SIGBUS round trip (UFFD_FEATURE_SIGBUS) and a uffd message
 *             read by a handler thread (poll+read, or ufpager's adaptive
 *             50 us spin) plus the wake, install time taken out of both;
 *   source:   LZ4_decompress_safe of a half-compressible page, pread
 *             O_DIRECT of 4 KiB, a 4 KiB write into a resident page;
 *   install:  UFFDIO_COPY from a plain page; a 4 KiB write into a plain page
 *             that an earlier MOVE left a hole (the refault) + UFFDIO_MOVE
 *             of it into the arena; UFFDIO_POISON (a failed swap-in);
 *   hash:     XXH3_64bits of 4 KiB;
 *   evict:    UFFDIO_MOVE runs of 1 and 32 pages out of the arena into a
 *             staging area of a second userfaultfd, MADV_DONTNEED of 256
 *             staging pages, LZ4_compress_default, PAGEMAP_SCAN (WP_ASYNC)
 *             over 32 pages; all per page.
 * Every install is read back through the arena and its tag compared (and
 * every moved-out page in staging, every O_DIRECT read, decompress, hash,
 * scan result, DONTNEED (mincore) and poison (pagemap)); a mismatch makes
 * the exit status 1 (the ctest smoke bench_cost_smoke, --quick). Exit 77
 * when userfaultfd is not available; a row whose feature the kernel lacks
 * is skipped with the reason.
 * Usage: bench_cost [--quick] [--iters N] [--json FILE] [--only KEY,...]
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <lz4.h>
#include <xxhash.h>

#include "json.h"
#include "uffd_compat.h"

#define PG 4096UL
#define ARENA_PAGES 4096u     /* install and delivery targets, re-armed per pass */
#define STAGE_PAGES 256u      /* one eviction batch: MOVE runs, then one DONTNEED */
#define SCAN_PAGES 32u
#define WRITER_BYTES (128ul << 20)
#define HANDLER_SPIN_NS 50000u /* ufpager's default spin_us */

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static void die(const char *what)
{
	fprintf(stderr, "bench_cost: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- state -------------------------------------------------------------
 * Everything below is touched by the main thread only, except the SIGBUS
 * handler's fields (the main thread's own handler, same thread) and the
 * handler thread's fields (atomics, noted there). */

struct ctx {
	uint64_t features;         /* what UFFDIO_API offered on this kernel */
	int main_uffd;             /* SIGBUS | MOVE: the arena */
	int stage_uffd;            /* SIGBUS | MOVE: the staging area */
	int hand_uffd;             /* no SIGBUS: handler-thread delivery */
	int wp_uffd;               /* WP_ASYNC: the PAGEMAP_SCAN range */
	int pm_fd;                 /* /proc/self/pagemap */
	int dio_fd;                /* O_DIRECT file, -1 if none */
	const char *dio_why;       /* why not */
	char dio_path[256];
	unsigned dio_pages;
	char *arena, *stage, *harena, *wparea;
	char *src;                 /* plain page: COPY source */
	char *srcrun;              /* STAGE_PAGES plain pages: populates by COPY */
	char *movebuf;             /* plain page: MOVE source (a hole after each MOVE) */
	char *tmpl;                /* the half-compressible page */
	char *comp;                /* tmpl compressed */
	int clen;
	uint64_t hash;             /* XXH3_64bits(tmpl) */
	char *out;                 /* resident scratch page(s) */
	char *dio_buf;
	unsigned pass;             /* tag generation, bumped per re-arm */
	uint64_t seed;
};

static struct ctx C;

static uint64_t tag_of(unsigned pass, unsigned page)
{
	return 0x7a6b000000000000ull ^ ((uint64_t)pass << 24) ^ page;
}

static void tag_page(char *p, uint64_t t)
{
	memcpy(p, &t, 8);
	memcpy(p + PG - 8, &t, 8);
}

/* ---- SIGBUS: self-paging delivery, and a guard for read-backs ----------
 * One handler for the main thread. DELIVER: install C.src at the faulting
 * page of the arena and time the install; VERIFY: a read-back hit a missing
 * page, jump back. Anything else is not ours: default action. */

enum { SB_NONE, SB_DELIVER, SB_VERIFY };
static volatile sig_atomic_t sb_mode;
static sigjmp_buf sb_jmp;
static volatile uint64_t sb_install_ns;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr & ~(PG - 1);
	int saved = errno;

	(void)sig; (void)uc;
	if (sb_mode == SB_VERIFY)
		siglongjmp(sb_jmp, 1);
	if (sb_mode == SB_DELIVER && a >= (uintptr_t)C.arena &&
	    a < (uintptr_t)C.arena + ARENA_PAGES * PG) {
		struct uffdio_copy cp = { .dst = a, .src = (uintptr_t)C.src, .len = PG };
		uint64_t t0 = now_ns();

		if (ioctl(C.main_uffd, UFFDIO_COPY, &cp)) {
			static const char m[] = "bench_cost: UFFDIO_COPY in the SIGBUS handler failed\n";
			(void)!write(2, m, sizeof(m) - 1);
			_exit(1);
		}
		sb_install_ns = now_ns() - t0;
		errno = saved;
		return;
	}
	signal(SIGBUS, SIG_DFL);
}

/* Read the two tags of page p; false if the page is missing (SIGBUS). */
static bool read_tags(const char *p, uint64_t *head, uint64_t *tail)
{
	if (sigsetjmp(sb_jmp, 1)) {
		sb_mode = SB_NONE;
		return false;
	}
	sb_mode = SB_VERIFY;
	*head = *(const volatile uint64_t *)p;
	*tail = *(const volatile uint64_t *)(p + PG - 8);
	sb_mode = SB_NONE;
	return true;
}

static bool tags_are(const char *p, uint64_t t)
{
	uint64_t h, e;

	return read_tags(p, &h, &e) && h == t && e == t;
}

/* ---- the handler thread (hand_uffd) ------------------------------------
 * Serves faults on C.harena: poll+read (or, when h_spin, a read spinning
 * up to 50 us after the last message before it polls: ufpager's default),
 * UFFDIO_COPY of h_src with DONTWAKE (timed), UFFDIO_WAKE. h_install_ns is
 * stored (release) before the wake; the faulting thread loads it (acquire)
 * after its access returns. h_kick (eventfd) makes it re-read h_spin. The
 * thread lives until the process exits. */

static pthread_t h_thread;
static atomic_bool h_spin;
static _Atomic uint64_t h_install_ns;
static int h_kick;
static char *h_src;

static void *handler_main(void *arg)
{
	struct pollfd pf[2] = { { .fd = C.hand_uffd, .events = POLLIN },
				{ .fd = h_kick, .events = POLLIN } };

	(void)arg;
	for (;;) {
		struct uffd_msg m;
		ssize_t r = -1;

		if (atomic_load(&h_spin)) {
			/* the library's adaptive polling: spin HANDLER_SPIN_NS
			 * after the last message, then block */
			uint64_t deadline = now_ns() + HANDLER_SPIN_NS;

			while ((r = read(C.hand_uffd, &m, sizeof(m))) < 0 && now_ns() < deadline)
				cpu_relax();
		}
		if (r < 0) {
			if (poll(pf, 2, -1) < 0)
				continue;
			if (pf[1].revents & POLLIN) {
				uint64_t v;

				(void)!read(h_kick, &v, sizeof(v));
			}
			r = read(C.hand_uffd, &m, sizeof(m));
		}
		if (r != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uintptr_t a = m.arg.pagefault.address & ~(PG - 1);
		struct uffdio_copy cp = { .dst = a, .src = (uintptr_t)h_src, .len = PG,
					  .mode = UFFDIO_COPY_MODE_DONTWAKE };
		uint64_t t0 = now_ns();

		if (ioctl(C.hand_uffd, UFFDIO_COPY, &cp) && errno != EEXIST) {
			perror("bench_cost: handler UFFDIO_COPY");
			_exit(1);
		}
		/* pairs with the acquire load in step_handler after the access */
		atomic_store_explicit(&h_install_ns, now_ns() - t0, memory_order_release);
		struct uffdio_range wr = { .start = a, .len = PG };

		ioctl(C.hand_uffd, UFFDIO_WAKE, &wr);
	}
	return NULL;
}

static void handler_set_spin(bool spin)
{
	uint64_t one = 1;

	atomic_store(&h_spin, spin);
	(void)!write(h_kick, &one, sizeof(one));
}

/* ---- the mmap_lock writer ----------------------------------------------
 * A thread looping mprotect(PROT_READ) / mprotect(PROT_READ|PROT_WRITE)
 * over WRITER_BYTES of populated memory; paused between the rows' runs.
 * w_mu guards w_active / w_idle; w_pairs counts completed loops. */

static pthread_t w_thread;
static pthread_mutex_t w_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cv = PTHREAD_COND_INITIALIZER;
static bool w_active, w_idle, w_quit;
static atomic_ulong w_pairs;

static void *writer_main(void *arg)
{
	char *m = arg;

	for (;;) {
		pthread_mutex_lock(&w_mu);
		while (!w_active && !w_quit) {
			w_idle = true;
			pthread_cond_broadcast(&w_cv);
			pthread_cond_wait(&w_cv, &w_mu);
		}
		w_idle = false;
		if (w_quit) {
			pthread_mutex_unlock(&w_mu);
			return NULL;
		}
		pthread_mutex_unlock(&w_mu);
		mprotect(m, WRITER_BYTES, PROT_READ);
		mprotect(m, WRITER_BYTES, PROT_READ | PROT_WRITE);
		atomic_fetch_add(&w_pairs, 1);
	}
}

static void writer_start(void)
{
	char *m = mmap(NULL, WRITER_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		die("mmap writer memory");
	madvise(m, WRITER_BYTES, MADV_NOHUGEPAGE);  /* 4 KiB ptes: a real walk */
	memset(m, 1, WRITER_BYTES);
	if (pthread_create(&w_thread, NULL, writer_main, m))
		die("pthread_create writer");
}

static void writer_run(bool on)
{
	pthread_mutex_lock(&w_mu);
	w_active = on;
	pthread_cond_broadcast(&w_cv);
	while (!on && !w_idle)
		pthread_cond_wait(&w_cv, &w_mu);
	pthread_mutex_unlock(&w_mu);
	if (on) {   /* measure only once it is in its loop */
		unsigned long p = atomic_load(&w_pairs);

		while (atomic_load(&w_pairs) == p)
			usleep(100);
	}
}

/* ---- setup -------------------------------------------------------------- */

static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM)   /* our faults are all user mode */
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	return fd;
}

static int uffd_with(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_open();

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api))
		die("userfaultfd with the features this bench needs");
	return fd;
}

static char *map_pages(size_t pages)
{
	char *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	madvise(p, pages * PG, MADV_NOHUGEPAGE);   /* MOVE and DONTNEED of 4 KiB pages */
	return p;
}

static void uffd_register(int fd, void *a, size_t pages, uint64_t mode)
{
	struct uffdio_register r = { .range = { (uintptr_t)a, pages * PG }, .mode = mode };

	if (ioctl(fd, UFFDIO_REGISTER, &r))
		die("UFFDIO_REGISTER");
}

static uint64_t xorshift(void)
{
	C.seed ^= C.seed << 13;
	C.seed ^= C.seed >> 7;
	C.seed ^= C.seed << 17;
	return C.seed;
}

/* The typical page: half random bytes, half a repeated record. */
static void make_template(void)
{
	static const char rec[] = "key=000123 value=ufpager swap page; ";

	for (size_t i = 0; i < PG / 2; i += 8) {
		uint64_t v = xorshift();

		memcpy(C.tmpl + i, &v, 8);
	}
	for (size_t i = PG / 2; i < PG; i++)
		C.tmpl[i] = rec[i % (sizeof(rec) - 1)];
	C.comp = malloc(LZ4_compressBound(PG));
	C.clen = LZ4_compress_default(C.tmpl, C.comp, PG, LZ4_compressBound(PG));
	if (C.clen <= 0)
		die("LZ4_compress_default");
	C.hash = XXH3_64bits(C.tmpl, PG);
}

/* A file of C.dio_pages tagged pages, read back with O_DIRECT. */
static void dio_open(unsigned pages)
{
	static const char *dirs[] = { "/var/tmp", "." };

	C.dio_fd = -1;
	C.dio_why = "no directory allowed O_DIRECT (tried /var/tmp and .)";
	for (int d = 0; d < 2 && C.dio_fd < 0; d++) {
		char path[256], proc[64];
		int fd;

		snprintf(path, sizeof(path), "%s/bench_cost.XXXXXX", dirs[d]);
		fd = mkstemp(path);
		if (fd < 0)
			continue;
		unlink(path);
		for (unsigned i = 0; i < pages; i++) {
			memcpy(C.out, C.tmpl, PG);
			tag_page(C.out, tag_of(0, i));
			if (pwrite(fd, C.out, PG, (off_t)i * PG) != (ssize_t)PG)
				break;
		}
		fsync(fd);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		C.dio_fd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
		close(fd);
		if (C.dio_fd >= 0 && pread(C.dio_fd, C.dio_buf, PG, 0) != (ssize_t)PG) {
			close(C.dio_fd);
			C.dio_fd = -1;
		}
		if (C.dio_fd >= 0)
			snprintf(C.dio_path, sizeof(C.dio_path), "%s", dirs[d]);
	}
	C.dio_pages = pages;
}

static void setup(unsigned dio_pages)
{
	uint64_t base = UFFD_FEATURE_SIGBUS;
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };

	C.seed = 88172645463325252ull;
	if (C.features & UFFD_FEATURE_MOVE)
		base |= UFFD_FEATURE_MOVE;
	C.main_uffd = uffd_with(base);
	C.stage_uffd = uffd_with(base);
	C.hand_uffd = uffd_with(0);
	C.wp_uffd = -1;
	if (C.features & UFFD_FEATURE_WP_ASYNC)
		C.wp_uffd = uffd_with(UFFD_FEATURE_WP_ASYNC |
				      (C.features & UFFD_FEATURE_WP_UNPOPULATED));
	C.pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	C.arena = map_pages(ARENA_PAGES);
	C.harena = map_pages(ARENA_PAGES);
	C.stage = map_pages(STAGE_PAGES);
	C.wparea = map_pages(SCAN_PAGES);
	C.src = map_pages(1);
	C.srcrun = map_pages(STAGE_PAGES);
	C.movebuf = map_pages(1);
	C.tmpl = map_pages(1);
	C.out = map_pages(1);
	C.dio_buf = map_pages(1);
	h_src = map_pages(1);
	memset(C.srcrun, 0, STAGE_PAGES * PG);
	make_template();
	memcpy(C.src, C.tmpl, PG);
	memcpy(h_src, C.tmpl, PG);
	memcpy(C.out, C.tmpl, PG);
	uffd_register(C.main_uffd, C.arena, ARENA_PAGES, UFFDIO_REGISTER_MODE_MISSING);
	uffd_register(C.stage_uffd, C.stage, STAGE_PAGES, UFFDIO_REGISTER_MODE_MISSING);
	uffd_register(C.hand_uffd, C.harena, ARENA_PAGES, UFFDIO_REGISTER_MODE_MISSING);
	if (C.wp_uffd >= 0) {
		struct uffdio_writeprotect wp = {
			.range = { (uintptr_t)C.wparea, SCAN_PAGES * PG },
			.mode = UFFDIO_WRITEPROTECT_MODE_WP };

		uffd_register(C.wp_uffd, C.wparea, SCAN_PAGES, UFFDIO_REGISTER_MODE_WP);
		memset(C.wparea, 3, SCAN_PAGES * PG);
		if (ioctl(C.wp_uffd, UFFDIO_WRITEPROTECT, &wp))
			die("UFFDIO_WRITEPROTECT");
	}
	if (sigaction(SIGBUS, &sa, NULL))
		die("sigaction");
	dio_open(dio_pages);

	h_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h_kick < 0 || pthread_create(&h_thread, NULL, handler_main, NULL))
		die("handler thread");
}

/* ---- the steps ----------------------------------------------------------
 * step(i, ns): one timed sample (ns[0]; rows with parts fill ns[1..]);
 * returns false on a content mismatch. prep() runs before each of a row's
 * two runs and leaves its memory as the first step expects. */

static void arena_rearm(char *a, size_t pages)
{
	madvise(a, pages * PG, MADV_DONTNEED);
	C.pass++;
}

static void prep_arena(void)
{
	arena_rearm(C.arena, ARENA_PAGES);
}

static bool step_sigbus(unsigned i, double *ns)
{
	unsigned k = i % ARENA_PAGES;
	char *p = C.arena + (size_t)k * PG;
	uint64_t t0, t1, v, tag;

	if (k == 0 && i)
		arena_rearm(C.arena, ARENA_PAGES);
	tag = tag_of(C.pass, k);
	tag_page(C.src, tag);
	sb_install_ns = 0;
	sb_mode = SB_DELIVER;
	t0 = now_ns();
	v = *(const volatile uint64_t *)p;
	t1 = now_ns();
	sb_mode = SB_NONE;
	ns[0] = (double)(t1 - t0 - sb_install_ns);
	return v == tag && tags_are(p, tag);
}

static void prep_handler_block(void)
{
	arena_rearm(C.harena, ARENA_PAGES);
	handler_set_spin(false);
}

static void prep_handler_spin(void)
{
	arena_rearm(C.harena, ARENA_PAGES);
	handler_set_spin(true);
}

static bool step_handler(unsigned i, double *ns)
{
	unsigned k = i % ARENA_PAGES;
	char *p = C.harena + (size_t)k * PG;
	uint64_t t0, t1, v, tag;

	if (k == 0 && i)
		arena_rearm(C.harena, ARENA_PAGES);
	tag = tag_of(C.pass, k);
	tag_page(h_src, tag);
	t0 = now_ns();
	v = *(const volatile uint64_t *)p;
	t1 = now_ns();
	/* pairs with the release store in handler_main before its wake */
	ns[0] = (double)(t1 - t0 - atomic_load_explicit(&h_install_ns, memory_order_acquire));
	return v == tag && *(const volatile uint64_t *)(p + PG - 8) == tag;
}

static bool step_decompress(unsigned i, double *ns)
{
	uint64_t t0 = now_ns();
	int r = LZ4_decompress_safe(C.comp, C.out, C.clen, PG);

	ns[0] = (double)(now_ns() - t0);
	return r == (int)PG && (i % 1024 || !memcmp(C.out, C.tmpl, PG));
}

static bool step_pread(unsigned i, double *ns)
{
	unsigned k = (unsigned)(xorshift() % C.dio_pages);
	uint64_t t0 = now_ns(), v;
	ssize_t r = pread(C.dio_fd, C.dio_buf, PG, (off_t)k * PG);

	(void)i;
	ns[0] = (double)(now_ns() - t0);
	memcpy(&v, C.dio_buf, 8);
	return r == (ssize_t)PG && v == tag_of(0, k);
}

static bool step_write_resident(unsigned i, double *ns)
{
	uint64_t t0 = now_ns();

	memcpy(C.out, C.tmpl, PG);
	tag_page(C.out, i);
	ns[0] = (double)(now_ns() - t0);
	return true;
}

static bool step_copy(unsigned i, double *ns)
{
	unsigned k = i % ARENA_PAGES;
	char *p = C.arena + (size_t)k * PG;
	struct uffdio_copy cp = { .dst = (uintptr_t)p, .src = (uintptr_t)C.src, .len = PG };
	uint64_t t0, tag;
	int r;

	if (k == 0 && i)
		arena_rearm(C.arena, ARENA_PAGES);
	tag = tag_of(C.pass, k);
	tag_page(C.src, tag);
	t0 = now_ns();
	r = ioctl(C.main_uffd, UFFDIO_COPY, &cp);
	ns[0] = (double)(now_ns() - t0);
	return !r && cp.copy == (__s64)PG && tags_are(p, tag);
}

/* The MOVE install as a swap-in through MOVE costs: the page the last MOVE
 * took from movebuf is a hole, so writing the next page's 4 KiB into it
 * (what the decompress does) refaults (allocate + zero); then the MOVE.
 * ns[1] = the refault write, ns[2] = the MOVE ioctl. */
static bool step_move_in(unsigned i, double *ns)
{
	unsigned k = i % ARENA_PAGES;
	char *p = C.arena + (size_t)k * PG;
	struct uffdio_move mv = { .dst = (uintptr_t)p, .src = (uintptr_t)C.movebuf, .len = PG };
	uint64_t t0, t1, t2, tag;
	int r;

	if (k == 0 && i)
		arena_rearm(C.arena, ARENA_PAGES);
	tag = tag_of(C.pass, k);
	t0 = now_ns();
	memcpy(C.movebuf, C.tmpl, PG);
	tag_page(C.movebuf, tag);
	t1 = now_ns();
	r = ioctl(C.main_uffd, UFFDIO_MOVE, &mv);
	t2 = now_ns();
	ns[0] = (double)(t2 - t0);
	ns[1] = (double)(t1 - t0);
	ns[2] = (double)(t2 - t1);
	return !r && mv.move == (__s64)PG && tags_are(p, tag);
}

/* A failed swap-in: the page will read as a hardware error. Checked in
 * /proc/self/pagemap, not by reading it (the SIGBUS of a poisoned page is
 * BUS_ADRERR like a missing page's where CONFIG_MEMORY_FAILURE is off, and
 * a line in the kernel log where it is on): a poison marker is a
 * non-present entry with PM_SWAP (bit 62), a missing page an empty one. */
static bool step_poison(unsigned i, double *ns)
{
	unsigned k = i % ARENA_PAGES;
	char *p = C.arena + (size_t)k * PG;
	struct uffdio_poison po = { .range = { (uintptr_t)p, PG } };
	uint64_t t0, pme = 0;
	int r;

	if (k == 0 && i)
		arena_rearm(C.arena, ARENA_PAGES);
	t0 = now_ns();
	r = ioctl(C.main_uffd, UFFDIO_POISON, &po);
	ns[0] = (double)(now_ns() - t0);
	if (r || po.updated != (__s64)PG ||
	    pread(C.pm_fd, &pme, 8, (off_t)((uintptr_t)p / PG * 8)) != 8)
		return false;
	return (pme >> 62) == 1;
}

static bool step_xxh3(unsigned i, double *ns)
{
	uint64_t t0 = now_ns(), h = XXH3_64bits(C.tmpl, PG);

	ns[0] = (double)(now_ns() - t0);
	(void)i;
	return h == C.hash;
}

/* Eviction batches: the arena's first STAGE_PAGES pages are filled (COPY
 * of C.srcrun, untimed), moved out in runs into the empty staging area
 * (timed), the staging page tags checked, then the staging area emptied. */
static void evict_refill(void)
{
	struct uffdio_copy cp = { .dst = (uintptr_t)C.arena, .src = (uintptr_t)C.srcrun,
				  .len = STAGE_PAGES * PG };

	madvise(C.stage, STAGE_PAGES * PG, MADV_DONTNEED);
	C.pass++;
	for (unsigned k = 0; k < STAGE_PAGES; k++)
		tag_page(C.srcrun + (size_t)k * PG, tag_of(C.pass, k));
	if (ioctl(C.main_uffd, UFFDIO_COPY, &cp))
		die("UFFDIO_COPY (eviction refill)");
}

static void prep_evict(void)
{
	madvise(C.arena, ARENA_PAGES * PG, MADV_DONTNEED);
}

static bool step_move_out(unsigned i, double *ns, unsigned run)
{
	unsigned k = (i % (STAGE_PAGES / run)) * run;
	struct uffdio_move mv = { .dst = (uintptr_t)C.stage + (size_t)k * PG,
				  .src = (uintptr_t)C.arena + (size_t)k * PG, .len = run * PG };
	uint64_t t0;
	int r;

	if (k == 0)
		evict_refill();
	t0 = now_ns();
	r = ioctl(C.stage_uffd, UFFDIO_MOVE, &mv);
	ns[0] = (double)(now_ns() - t0) / run;
	return !r && mv.move == (__s64)(run * PG) &&
	       tags_are(C.stage + (size_t)k * PG, tag_of(C.pass, k)) &&
	       tags_are(C.stage + (size_t)(k + run - 1) * PG, tag_of(C.pass, k + run - 1));
}

static bool step_move_out1(unsigned i, double *ns)
{
	return step_move_out(i, ns, 1);
}

static bool step_move_out32(unsigned i, double *ns)
{
	return step_move_out(i, ns, 32);
}

static bool step_dontneed(unsigned i, double *ns)
{
	struct uffdio_copy cp = { .dst = (uintptr_t)C.stage, .src = (uintptr_t)C.srcrun,
				  .len = STAGE_PAGES * PG };
	unsigned char vec[STAGE_PAGES];
	uint64_t t0;
	int r;

	(void)i;
	if (ioctl(C.stage_uffd, UFFDIO_COPY, &cp))
		die("UFFDIO_COPY (staging fill)");
	t0 = now_ns();
	r = madvise(C.stage, STAGE_PAGES * PG, MADV_DONTNEED);
	ns[0] = (double)(now_ns() - t0) / STAGE_PAGES;
	if (r || mincore(C.stage, STAGE_PAGES * PG, vec))
		return false;
	for (unsigned k = 0; k < STAGE_PAGES; k++)
		if (vec[k] & 1)
			return false;
	return true;
}

static void prep_dontneed(void)
{
	madvise(C.stage, STAGE_PAGES * PG, MADV_DONTNEED);
}

static bool step_compress(unsigned i, double *ns)
{
	static char dst[LZ4_COMPRESSBOUND(4096)];
	uint64_t t0 = now_ns();
	int r = LZ4_compress_default(C.tmpl, dst, PG, (int)sizeof(dst));

	(void)i;
	ns[0] = (double)(now_ns() - t0);
	return r == C.clen;
}

/* PAGEMAP_SCAN over the WP_ASYNC range after writing 4 of its 32 pages:
 * it must report exactly those and re-protect them (WP_MATCHING). */
static int scan_written(uint32_t *mask, double *ns)
{
	struct page_region v[SCAN_PAGES];
	struct pm_scan_arg a = {
		.size = sizeof(a), .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)C.wparea, .end = (uintptr_t)C.wparea + SCAN_PAGES * PG,
		.vec = (uintptr_t)v, .vec_len = SCAN_PAGES,
		.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN };
	uint64_t t0 = now_ns();
	int n = ioctl(C.pm_fd, PAGEMAP_SCAN, &a);

	*ns = (double)(now_ns() - t0) / SCAN_PAGES;
	*mask = 0;
	for (int r = 0; r < n; r++)
		for (uint64_t p = v[r].start; p < v[r].end; p += PG)
			*mask |= 1u << ((p - (uintptr_t)C.wparea) / PG);
	return n < 0 ? -errno : 0;
}

static bool step_scan(unsigned i, double *ns)
{
	static const unsigned mul[4] = { 1, 7, 13, 29 }, add[4] = { 0, 3, 5, 11 };
	uint32_t want = 0, got;

	for (int d = 0; d < 4; d++) {
		unsigned k = (i * mul[d] + add[d]) % SCAN_PAGES;

		C.wparea[(size_t)k * PG + 64] = (char)i;
		want |= 1u << k;
	}
	return !scan_written(&got, ns) && got == want;
}

static void prep_scan(void)
{
	uint32_t m;
	double ns;

	scan_written(&m, &ns);   /* start with nothing written */
}

/* ---- rows and the runner ------------------------------------------------ */

struct res {
	unsigned n;
	double p50, p99, mean;
};

struct row {
	const char *group, *name, *key;
	void (*prep)(void);
	bool (*step)(unsigned i, double *ns);
	unsigned nparts;          /* the next nparts rows are parts of this one */
	bool part;                /* filled by the row above */
	const char *skip;         /* why not run (set at run time) */
	unsigned bad;             /* content mismatches, both runs */
	struct res r[2];          /* [0] alone, [1] beside the writer */
};

#define ROW(g, n, k, p, s) { .group = g, .name = n, .key = k, .prep = p, .step = s }
#define PART(g, n, k) { .group = g, .name = n, .key = k, .part = true }
static struct row rows[] = {
	ROW("delivery", "SIGBUS round trip (self-paging)", "deliver_sigbus", prep_arena,
	    step_sigbus),
	ROW("delivery", "uffd msg: poll+read, wake", "deliver_handler_poll", prep_handler_block,
	    step_handler),
	ROW("delivery", "uffd msg: 50 us spin+read, wake", "deliver_handler_spin", prep_handler_spin,
	    step_handler),
	ROW("source", "LZ4_decompress_safe 4 KiB", "lz4_decompress", NULL, step_decompress),
	ROW("source", "pread O_DIRECT 4 KiB", "pread_direct", NULL, step_pread),
	ROW("source", "write 4 KiB, resident page", "write_resident", NULL, step_write_resident),
	ROW("install", "UFFDIO_COPY", "install_copy", prep_arena, step_copy),
	{ .group = "install", .name = "refault write + UFFDIO_MOVE", .key = "install_move",
	  .prep = prep_arena, .step = step_move_in, .nparts = 2 },
	PART("install", "  of which refault write 4 KiB", "install_move_refault"),
	PART("install", "  of which UFFDIO_MOVE", "install_move_ioctl"),
	ROW("install", "UFFDIO_POISON (failed swap-in)", "install_poison", prep_arena, step_poison),
	ROW("hash", "XXH3_64bits 4 KiB", "xxh3", NULL, step_xxh3),
	ROW("evict", "UFFDIO_MOVE out, run of 1", "evict_move_1", prep_evict, step_move_out1),
	ROW("evict", "UFFDIO_MOVE out, run of 32", "evict_move_32", prep_evict, step_move_out32),
	ROW("evict", "MADV_DONTNEED 256 staging pages", "evict_dontneed_256", prep_dontneed,
	    step_dontneed),
	ROW("evict", "LZ4_compress_default 4 KiB", "lz4_compress", NULL, step_compress),
	ROW("evict", "PAGEMAP_SCAN 32 pages (WP_ASYNC)", "evict_pagemap_scan_32", prep_scan,
	    step_scan),
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

struct opts {
	unsigned iters, min_n;
	double budget_s;          /* per run, once min_n samples are in */
	bool quick;
	const char *json;
	const char *only;         /* comma-separated row keys, NULL: all */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct res summarize(double *v, unsigned n)
{
	struct res r = { .n = n };
	double sum = 0;

	if (!n)
		return r;
	qsort(v, n, sizeof(*v), cmp_double);
	for (unsigned i = 0; i < n; i++)
		sum += v[i];
	r.p50 = v[n / 2];
	r.p99 = v[(n * 99 + 99) / 100 - 1];
	r.mean = sum / n;
	return r;
}

/* One run of row w (and its parts): up to o->iters samples, stopping after
 * budget_s once min_n are in, and at 4 x budget_s regardless. */
static void run_row(struct row *w, int mode, const struct opts *o, double **buf)
{
	uint64_t start = now_ns(), budget = (uint64_t)(o->budget_s * 1e9);
	unsigned n = 0;

	if (w->prep)
		w->prep();
	for (unsigned i = 0; i < o->iters; i++) {
		double ns[3] = { 0, 0, 0 };
		uint64_t el;

		if (!w->step(i, ns))
			w->bad++;
		for (unsigned p = 0; p <= w->nparts; p++)
			buf[p][n] = ns[p];
		n++;
		el = now_ns() - start;
		if ((el > budget && n >= o->min_n) || el > 4 * budget)
			break;
	}
	for (unsigned p = 0; p <= w->nparts; p++)
		w[p].r[mode] = summarize(buf[p], n);
}

/* ---- output --------------------------------------------------------------- */

static const struct { uint64_t bit; const char *name; } feature_names[] = {
	{ UFFD_FEATURE_PAGEFAULT_FLAG_WP, "PAGEFAULT_FLAG_WP" },
	{ UFFD_FEATURE_EVENT_FORK, "EVENT_FORK" }, { UFFD_FEATURE_EVENT_REMAP, "EVENT_REMAP" },
	{ UFFD_FEATURE_EVENT_REMOVE, "EVENT_REMOVE" }, { UFFD_FEATURE_EVENT_UNMAP, "EVENT_UNMAP" },
	{ UFFD_FEATURE_MISSING_HUGETLBFS, "MISSING_HUGETLBFS" },
	{ UFFD_FEATURE_MISSING_SHMEM, "MISSING_SHMEM" }, { UFFD_FEATURE_SIGBUS, "SIGBUS" },
	{ UFFD_FEATURE_THREAD_ID, "THREAD_ID" }, { UFFD_FEATURE_MINOR_HUGETLBFS, "MINOR_HUGETLBFS" },
	{ UFFD_FEATURE_MINOR_SHMEM, "MINOR_SHMEM" }, { UFFD_FEATURE_EXACT_ADDRESS, "EXACT_ADDRESS" },
	{ UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "WP_HUGETLBFS_SHMEM" },
	{ UFFD_FEATURE_WP_UNPOPULATED, "WP_UNPOPULATED" }, { UFFD_FEATURE_POISON, "POISON" },
	{ UFFD_FEATURE_WP_ASYNC, "WP_ASYNC" }, { UFFD_FEATURE_MOVE, "MOVE" },
};

static double ratio(double a, double b)
{
	return b > 0 ? a / b : NAN;
}

static void print_table(void)
{
	const char *group = "";

	printf("\n%-34s %21s   %21s   %13s\n", "", "alone (ns)", "beside writer (ns)",
	       "writer/alone");
	printf("%-34s %6s %7s %7s   %6s %7s %7s   %6s %6s\n", "component", "p50", "p99", "mean",
	       "p50", "p99", "mean", "p50", "p99");
	for (unsigned i = 0; i < NROWS; i++) {
		struct row *w = &rows[i];

		if (strcmp(group, w->group)) {
			group = w->group;
			printf("%s%s\n", group, !strcmp(group, "evict") ? " (per page)" : "");
		}
		if (w->skip) {
			printf("  %-32s skipped: %s\n", w->name, w->skip);
			continue;
		}
		printf("  %-32s %6.0f %7.0f %7.0f   %6.0f %7.0f %7.0f   %6.2f %6.2f", w->name,
		       w->r[0].p50, w->r[0].p99, w->r[0].mean, w->r[1].p50, w->r[1].p99,
		       w->r[1].mean, ratio(w->r[1].p50, w->r[0].p50),
		       ratio(w->r[1].p99, w->r[0].p99));
		if (w->r[0].n < 1000 || w->r[1].n < 1000)
			printf("  (n %u/%u)", w->r[0].n, w->r[1].n);
		if (w->bad)
			printf("  %u MISMATCHES", w->bad);
		printf("\n");
	}
}

static struct row *row_by_key(const char *key)
{
	for (unsigned i = 0; i < NROWS; i++)
		if (!strcmp(rows[i].key, key))
			return &rows[i];
	return NULL;
}

static void print_install_verdict(void)
{
	struct row *cp = row_by_key("install_copy"), *mv = row_by_key("install_move");
	static const char *mode[2] = { "alone", "beside the writer" };

	if (cp->skip || mv->skip)
		return;
	printf("\ninstall, MOVE (refault write + MOVE) against COPY:\n");
	for (int m = 0; m < 2; m++) {
		const char *cheaper = mv->r[m].p50 < cp->r[m].p50 ? "MOVE" : "COPY";

		printf("  %-18s p50 %.0f vs %.0f ns (MOVE/COPY %.2f), p99 %.0f vs %.0f ns "
		       "(%.2f): %s cheaper at p50 by %.0f ns\n", mode[m], mv->r[m].p50,
		       cp->r[m].p50, ratio(mv->r[m].p50, cp->r[m].p50), mv->r[m].p99,
		       cp->r[m].p99, ratio(mv->r[m].p99, cp->r[m].p99), cheaper,
		       fabs(mv->r[m].p50 - cp->r[m].p50));
	}
}

static void write_res(struct json *j, const char *key, const struct res *r)
{
	json_object_begin(j, key);
	json_uint(j, "n", r->n);
	json_num(j, "p50_ns", r->p50);
	json_num(j, "p99_ns", r->p99);
	json_num(j, "mean_ns", r->mean);
	json_object_end(j);
}

static int write_json(const char *path, const struct utsname *u, const struct opts *o,
		      double writer_pairs_per_s, unsigned bad)
{
	struct row *cp = row_by_key("install_copy"), *mv = row_by_key("install_move");
	FILE *f = fopen(path, "w");
	struct json j;

	if (!f) {
		fprintf(stderr, "bench_cost: %s: %s\n", path, strerror(errno));
		return -1;
	}
	json_init(&j, f);
	j.newline_rows = true;
	json_object_begin(&j, NULL);
	json_str(&j, "bench", "cost");
	json_str(&j, "kernel", u->release);
	json_object_begin(&j, "features");
	for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++)
		json_bool(&j, feature_names[i].name, C.features & feature_names[i].bit);
	json_object_end(&j);
	json_bool(&j, "quick", o->quick);
	json_uint(&j, "iterations", o->iters);
	json_uint(&j, "writer_mib", WRITER_BYTES >> 20);
	json_num(&j, "writer_mprotect_pairs_per_s", writer_pairs_per_s);
	json_uint(&j, "lz4_compressed_bytes", (uint64_t)C.clen);
	json_array_begin(&j, "rows");
	for (unsigned i = 0; i < NROWS; i++) {
		struct row *w = &rows[i];

		json_object_begin(&j, NULL);
		json_str(&j, "group", w->group);
		json_str(&j, "key", w->key);
		json_str(&j, "name", w->name);
		if (w->skip) {
			json_str(&j, "skipped", w->skip);
		} else {
			write_res(&j, "alone", &w->r[0]);
			write_res(&j, "writer", &w->r[1]);
			json_ratio(&j, "ratio_p50", w->r[1].p50, w->r[0].p50, "alone p50");
			json_ratio(&j, "ratio_p99", w->r[1].p99, w->r[0].p99, "alone p99");
			json_uint(&j, "mismatches", w->bad);
		}
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_begin(&j, "install_move_over_copy");
	if (!cp->skip && !mv->skip) {
		json_ratio(&j, "p50_alone", mv->r[0].p50, cp->r[0].p50, "COPY p50");
		json_ratio(&j, "p99_alone", mv->r[0].p99, cp->r[0].p99, "COPY p99");
		json_ratio(&j, "p50_writer", mv->r[1].p50, cp->r[1].p50, "COPY p50");
		json_ratio(&j, "p99_writer", mv->r[1].p99, cp->r[1].p99, "COPY p99");
	}
	json_object_end(&j);
	json_uint(&j, "mismatches", bad);
	json_object_end(&j);
	fputc('\n', f);
	return fclose(f) ? -1 : 0;
}

/* ---- main ------------------------------------------------------------------ */

/* A row key is in a comma-separated list. */
static bool key_listed(const char *list, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = list; (p = strstr(p, key)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

static void decide_skips(const char *only)
{
	struct row *parent = rows;

	for (unsigned i = 0; i < NROWS; i++) {
		struct row *w = &rows[i];
		const char *k = w->key;

		if ((!strcmp(k, "install_move") || !strncmp(k, "evict_move", 10)) &&
		    !(C.features & UFFD_FEATURE_MOVE))
			w->skip = "the kernel lacks UFFD_FEATURE_MOVE (6.8+)";
		if (!strcmp(k, "install_poison") && !(C.features & UFFD_FEATURE_POISON))
			w->skip = "the kernel lacks UFFD_FEATURE_POISON (6.6+)";
		if (!strcmp(k, "evict_pagemap_scan_32")) {
			uint32_t m;
			double ns;
			int err;

			if (!(C.features & UFFD_FEATURE_WP_ASYNC))
				w->skip = "the kernel lacks UFFD_FEATURE_WP_ASYNC (6.7+)";
			else if ((err = scan_written(&m, &ns)))
				w->skip = err == -ENOTTY ? "the kernel lacks PAGEMAP_SCAN (6.7+)"
							 : "PAGEMAP_SCAN failed";
		}
		if (!strcmp(k, "pread_direct") && C.dio_fd < 0)
			w->skip = C.dio_why;
		if (only && !w->part && !key_listed(only, k))
			w->skip = "not in --only";
		if (w->part)
			w->skip = parent->skip;
		else
			parent = w;
	}
}

int main(int argc, char **argv)
{
	struct opts o = { .iters = 20000, .min_n = 200, .budget_s = 2.0 };
	struct uffdio_api api = { .api = UFFD_API };
	struct utsname u;
	double *buf[3], w_secs = 0;
	unsigned long w_pairs0 = 0, w_pairs_total = 0;
	unsigned bad = 0;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o.quick = true;
			o.iters = 2000;
			o.min_n = 20;
			o.budget_s = 0.03;
		} else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			o.iters = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			o.json = argv[++i];
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			o.only = argv[++i];
		} else {
			fprintf(stderr, "usage: bench_cost [--quick] [--iters N] [--json FILE] "
				"[--only KEY,...]\n");
			return 2;
		}
	}
	if (!o.iters)
		o.iters = 1;
	uname(&u);
	printf("bench_cost: per-fault cost components, single thread; kernel %s %s\n",
	       u.release, u.version);
	fd = uffd_open();
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) {
		printf("skip: userfaultfd is not available here (%s): needs root, "
		       "CAP_SYS_PTRACE, /dev/userfaultfd or vm.unprivileged_userfaultfd=1\n",
		       strerror(errno));
		return 77;
	}
	close(fd);
	C.features = api.features;
	printf("userfaultfd features (0x%llx):", (unsigned long long)C.features);
	for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++)
		if (C.features & feature_names[i].bit)
			printf(" %s", feature_names[i].name);
	printf("\n");
	if (!(C.features & UFFD_FEATURE_SIGBUS)) {
		printf("skip: the kernel lacks UFFD_FEATURE_SIGBUS (4.14+)\n");
		return 77;
	}
	setup(o.quick ? 256 : 4096);
	decide_skips(o.only);
	for (unsigned i = 0; i < NROWS; i++)
		if (rows[i].skip && !rows[i].part && !o.only)
			printf("skipping \"%s\": %s\n", rows[i].name, rows[i].skip);
	printf("page: lz4 %d of 4096 bytes; O_DIRECT file in %s; writer: mprotect "
	       "RO/RW over %lu MiB populated (4 KiB ptes); up to %u samples per run%s\n",
	       C.clen, C.dio_fd >= 0 ? C.dio_path : "(none)", WRITER_BYTES >> 20, o.iters,
	       o.quick ? " (--quick)" : "");
	fflush(stdout);

	for (int p = 0; p < 3; p++)
		if (!(buf[p] = malloc(sizeof(double) * o.iters)))
			die("malloc");
	writer_start();
	for (unsigned i = 0; i < NROWS; i++) {
		struct row *w = &rows[i];

		if (w->skip || w->part)
			continue;
		writer_run(false);
		run_row(w, 0, &o, buf);
		writer_run(true);
		uint64_t t0 = now_ns();

		w_pairs0 = atomic_load(&w_pairs);
		run_row(w, 1, &o, buf);
		w_secs += (double)(now_ns() - t0) / 1e9;
		w_pairs_total += atomic_load(&w_pairs) - w_pairs0;
		if (w->step == step_handler)
			handler_set_spin(false);
		bad += w->bad;
	}
	writer_run(false);

	print_table();
	print_install_verdict();
	printf("\nwriter: %.0f mprotect pairs/s while measuring beside it\n",
	       w_secs > 0 ? w_pairs_total / w_secs : 0.0);
	printf("(delivery rows exclude the install the handler does; evict rows are per "
	       "page: a run's time / its pages)\n");
	for (int p = 0; p < 3; p++)
		free(buf[p]);
	free(C.comp);
	if (o.json && write_json(o.json, &u, &o, w_secs > 0 ? w_pairs_total / w_secs : 0.0, bad))
		return 1;
	if (bad) {
		printf("FAIL: %u samples installed or read the wrong content\n", bad);
		return 1;
	}
	return 0;
}
