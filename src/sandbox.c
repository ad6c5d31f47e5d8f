/* SPDX-License-Identifier: MIT */
/*
 * sandbox.c - a seccomp allowlist for each of ufpager's own service
 * threads (handlers, the SIGBUS-mode event reader, the event worker, the
 * reclaim thread, the stats exporter, the watchdog, an NBD swap store's
 * I/O loop), loaded by each thread for itself
 * after its setup: no SECCOMP_FILTER_FLAG_TSYNC, so the application's
 * threads are never filtered. What each role may call is the table below;
 * ioctl is allowed only with the request numbers that role uses, on the
 * userfaultfd or /proc/self/pagemap, read and pread only on those fds,
 * fallocate only on the swap file, write only to stderr, mmap and
 * mprotect never with PROT_EXEC; open/openat fail with EACCES (glibc's
 * lazy reads of /proc and /sys, see build_filter).
 *
 * A forbidden call traps (SCMP_ACT_TRAP, not KILL_THREAD: a thread killed
 * by the kernel leaves no reason anywhere the user looks, and a joiner
 * cannot tell). The SIGSYS handler writes one line naming the thread, the
 * system call and its first arguments, counts sandbox_kills and returns
 * the thread to sandbox_thread_create's start routine, which ends it
 * through the normal thread exit (so pager destroy can join it). The
 * handler is process-wide: a SIGSYS on any other thread goes to the
 * handler installed before ours (or the default action), as the kernel
 * would have done without us.
 *
 * Concurrency contract: the SIGSYS handler is async-signal-safe (write,
 * atomics, siglongjmp) and may only make calls the filter allows (SIGSYS
 * is blocked while it runs: a nested trap would take the default action
 * and end the process). Filters are built under build_lock (libseccomp's
 * lazy global state); everything else is per thread.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/audit.h>
#include <seccomp.h>
#include <setjmp.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "base.h"
#include "sys.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "pager.h"
#include <urcu/static/urcu-memb.h>   /* the reader's registered flag */
#include "sandbox.h"
#include "swap_backend.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1        /* si_code of a seccomp trap */
#endif

#if defined(UFP_SANITIZE_BUILD) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SB_SANITIZER 1
#endif

static const char *const role_names[SB_NROLES] = {
	[SB_HANDLER] = "handler", [SB_EVENT_READER] = "event reader",
	[SB_EVENT_WORKER] = "event worker", [SB_RECLAIM] = "reclaim",
	[SB_EXPORTER] = "stats exporter", [SB_WATCHDOG] = "watchdog",
	[SB_SWAP_IO] = "swap I/O",
};

const char *sandbox_role_name(enum sandbox_role role)
{
	return role < SB_NROLES ? role_names[role] : "?";
}

#ifdef UFP_INTERNAL_TESTING
struct sandbox_test_call sandbox_test_call;
#endif

/* ======================================================================
 * The allowlists. Bits: which roles may make the call at all; the
 * argument-filtered rules follow in add_arg_rules.
 * ====================================================================== */

#define H (1u << SB_HANDLER)
#define R (1u << SB_EVENT_READER)
#define W (1u << SB_EVENT_WORKER)
#define C (1u << SB_RECLAIM)
#define X (1u << SB_EXPORTER)
#define D (1u << SB_WATCHDOG)
#define N (1u << SB_SWAP_IO)
#define ALL (H | R | W | C | X | D | N)

static const struct {
	int nr;
	unsigned roles;
} plain_rules[] = {
	/* thread runtime: locks (pthread, urcu, our futexes), time, yields */
	{ SCMP_SYS(futex), ALL },
	{ SCMP_SYS(sched_yield), ALL },
	{ SCMP_SYS(clock_gettime), ALL },          /* vDSO fallback */
	{ SCMP_SYS(restart_syscall), ALL },
	{ SCMP_SYS(nanosleep), ALL },              /* injected delays (inject.c) */
	{ SCMP_SYS(clock_nanosleep), ALL },
	{ SCMP_SYS(rt_sigreturn), ALL },           /* return from SIGSYS forwarding */
	{ SCMP_SYS(rt_sigprocmask), ALL },         /* glibc internals, abort() */
	/* malloc (arenas, large blocks, trimming); thread exit (stack madvise) */
	{ SCMP_SYS(munmap), ALL },
	{ SCMP_SYS(madvise), ALL },                /* + staging reset (MADV_DONTNEED) */
	{ SCMP_SYS(brk), ALL },
	{ SCMP_SYS(exit), ALL },
	/* malloc sizes its arena limit from the CPU count once per process,
	 * possibly on one of our threads (glibc's get_nprocs falls back to
	 * it when the /sys file cannot be opened, see openat below) */
	{ SCMP_SYS(sched_getaffinity), ALL },
	/* abort() on an assertion or UFP_BUG_ON (tgkill: see the arg rules) */
	{ SCMP_SYS(getpid), ALL },
	{ SCMP_SYS(gettid), ALL },
	/* waiting on the uffd and the stop eventfd (ppoll: glibc's poll on
	 * architectures without poll(2)) */
	{ SCMP_SYS(poll), H | R | W | D | N },    /* + the watchdog's look at the uffd */
	{ SCMP_SYS(ppoll), H | R | W | D | N },   /* N: the NBD sockets and its eventfd */
	/*
	 * liburcu starts its call_rcu worker thread on the first call_rcu
	 * in the process, from whichever thread makes it; the event worker
	 * frees regions, so it may be that thread (pthread_create: clone
	 * with CLONE_THREAD, see the arg rules). The worker inherits this
	 * filter and needs, besides the base: its thread start
	 * (set_robust_list, rseq), grace periods (membarrier) and its
	 * 10 ms naps (poll). Starting the worker before the filter instead
	 * would leave a thread running after the last pager is gone, which
	 * breaks fork-based test runners under TSan and changes fork for
	 * applications.
	 */
	{ SCMP_SYS(set_robust_list), W },
	{ SCMP_SYS(rseq), W },
	{ SCMP_SYS(membarrier), W },
	/* swap I/O on the thread's restricted ring (swap_backend.c); the
	 * event worker reads a mremapped range's evicted pages (remap.c) on
	 * a pooled ring */
	{ SCMP_SYS(io_uring_enter), H | C | W },
	/* thread exit destroys the thread's I/O context (ring fd); the swap
	 * I/O loop closes a dead connection's socket */
	{ SCMP_SYS(close), H | C | X | N },
	/*
	 * The NBD swap store (swap_nbd.c): one loop thread owns every
	 * connection, so only it talks to the server; the threads that do
	 * swap I/O (H, C, W) only wake it (write on its eventfd, below) and
	 * wait on a futex. libnbd sends and receives with send/recv
	 * (sendto/recvfrom; sendmsg/recvmsg for completeness), never
	 * read/write on the socket. The socket's fd changes with every
	 * reconnection, so these cannot be tied to an fd; they only work on
	 * sockets, and the only sockets this thread can make are the
	 * server's kind (socket's domain and type are checked below).
	 * Reconnecting (socket, connect, getsockopt(SO_ERROR) after a
	 * non-blocking connect, fcntl for O_NONBLOCK) is this role's alone:
	 * the address was resolved at create time, so no name lookup and no
	 * file is opened here.
	 */
	{ SCMP_SYS(sendto), N },
	{ SCMP_SYS(recvfrom), N },
	{ SCMP_SYS(sendmsg), N },
	{ SCMP_SYS(recvmsg), N },
	{ SCMP_SYS(connect), N },
	{ SCMP_SYS(getsockopt), N },
	{ SCMP_SYS(setsockopt), N },
	{ SCMP_SYS(shutdown), N },
#ifdef SB_SANITIZER
	/* sanitizer runtimes on our threads: allocator, thread teardown,
	 * reports (symbolizing reads /proc/self/maps and the binaries) */
	{ SCMP_SYS(mremap), ALL },
	{ SCMP_SYS(sigaltstack), ALL },
	{ SCMP_SYS(prlimit64), ALL },
	{ SCMP_SYS(getrlimit), ALL },
	{ SCMP_SYS(sched_getaffinity), ALL },
	{ SCMP_SYS(openat), ALL },
	{ SCMP_SYS(open), ALL },
	{ SCMP_SYS(read), ALL },
	{ SCMP_SYS(pread64), ALL },
	{ SCMP_SYS(readlink), ALL },
	{ SCMP_SYS(readlinkat), ALL },
	{ SCMP_SYS(newfstatat), ALL },
	{ SCMP_SYS(fstat), ALL },
	{ SCMP_SYS(lseek), ALL },
	{ SCMP_SYS(fcntl), ALL },                  /* libbacktrace sets FD_CLOEXEC on what it opens */
	{ SCMP_SYS(gettimeofday), ALL },           /* TSan's report path */
	{ SCMP_SYS(close), ALL },
	{ SCMP_SYS(uname), ALL },
	{ SCMP_SYS(exit_group), ALL },
	{ SCMP_SYS(nanosleep), ALL },
	{ SCMP_SYS(clock_nanosleep), ALL },
#endif
};

/* uffd ioctls per role */
static const struct {
	unsigned long req;
	unsigned roles;
} uffd_ioctls[] = {
	{ UFFDIO_COPY, H | W },              /* W: mremap carries pages (remap.c) */
	{ UFFDIO_ZEROPAGE, H },
	{ UFFDIO_WAKE, H | W },
	{ UFFDIO_POISON, H | W },
	{ UFFDIO_MOVE, H | C | W },          /* eviction (direct reclaim too); W: a parked
					       * page carried over an mremap (remap.c) */
	{ UFFDIO_UNREGISTER, W },            /* foreign REMAP */
};

#undef H
#undef R
#undef W
#undef C
#undef X
#undef D
#undef N
#undef ALL

/* The kernel reads int and unsigned int arguments (fds, ioctl requests)
 * from the low 32 bits of the register: compare only those. */
#define ARG_MASKED_EQ(i, mask, v) \
	((struct scmp_arg_cmp){ .arg = (i), .op = SCMP_CMP_MASKED_EQ, \
				.datum_a = (mask), .datum_b = (v) })
#define ARG32_EQ(i, v) ARG_MASKED_EQ(i, 0xffffffffu, (uint32_t)(v))

static bool role_in(unsigned roles, enum sandbox_role role)
{
	return (roles >> role) & 1;
}

/* Every rule the role needs with its argument checks. Returns 0 or the
 * first libseccomp error. */
static int add_arg_rules(scmp_filter_ctx f, struct ufp_pager *p, enum sandbox_role role)
{
	int rc = 0;
	bool swap_io = role == SB_HANDLER || role == SB_RECLAIM;

#define RULE(nr, ...) do { if (!rc) rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, __VA_ARGS__); } while (0)
	/* error messages and the kill line: stderr only */
	RULE(SCMP_SYS(write), 1, ARG32_EQ(0, 2));
	/* stdio's first output to stderr, if the application made it buffered */
	RULE(SCMP_SYS(fstat), 1, ARG32_EQ(0, 2));
	RULE(SCMP_SYS(newfstatat), 1, ARG32_EQ(0, 2));
	/* abort(): a signal to this process only */
	RULE(SCMP_SYS(tgkill), 1, ARG32_EQ(0, (uint32_t)getpid()));
	/* malloc and the foreign-event re-reservation: never executable */
	RULE(SCMP_SYS(mmap), 1, ARG_MASKED_EQ(2, PROT_EXEC, 0));
	RULE(SCMP_SYS(mprotect), 1, ARG_MASKED_EQ(2, PROT_EXEC, 0));
	if (role == SB_HANDLER || role == SB_EVENT_READER)
		RULE(SCMP_SYS(read), 1, ARG32_EQ(0, (uint32_t)p->uffd));
	if (role == SB_HANDLER && p->svc.kick_fd >= 0) {   /* handed-off faults */
		RULE(SCMP_SYS(read), 1, ARG32_EQ(0, (uint32_t)p->svc.kick_fd));
		RULE(SCMP_SYS(write), 1, ARG32_EQ(0, (uint32_t)p->svc.kick_fd));
	}
	if (role == SB_EVENT_WORKER)   /* a thread, never a process */
		RULE(SCMP_SYS(clone), 1, ARG_MASKED_EQ(0, CLONE_THREAD | CLONE_VM,
						       CLONE_THREAD | CLONE_VM));
	for (size_t i = 0; i < sizeof(uffd_ioctls) / sizeof(uffd_ioctls[0]); i++)
		if (role_in(uffd_ioctls[i].roles, role))
			RULE(SCMP_SYS(ioctl), 2, ARG32_EQ(0, (uint32_t)p->uffd),
			     ARG32_EQ(1, (uint32_t)uffd_ioctls[i].req));
	if (swap_io && p->reclaim.staging_uffd >= 0)   /* eviction into staging */
		RULE(SCMP_SYS(ioctl), 2, ARG32_EQ(0, (uint32_t)p->reclaim.staging_uffd),
		     ARG32_EQ(1, (uint32_t)UFFDIO_MOVE));
	if (swap_io && p->pagemap_fd >= 0) {
		/* dirty tracking (PAGEMAP_SCAN) and the UFFDIO_MOVE misreport check */
		RULE(SCMP_SYS(ioctl), 2, ARG32_EQ(0, (uint32_t)p->pagemap_fd),
		     ARG32_EQ(1, (uint32_t)PAGEMAP_SCAN));
		RULE(SCMP_SYS(pread64), 1, ARG32_EQ(0, (uint32_t)p->pagemap_fd));
	}
	if (role == SB_EVENT_WORKER && p->pagemap_fd >= 0)   /* its UFFDIO_MOVE's misreport check */
		RULE(SCMP_SYS(pread64), 1, ARG32_EQ(0, (uint32_t)p->pagemap_fd));
#ifdef SB_SANITIZER
	/* a sanitizer report asks whether stderr is a terminal */
	RULE(SCMP_SYS(ioctl), 2, ARG32_EQ(0, 2), ARG32_EQ(1, TCGETS));
#endif
	if (swap_io && p->swb && swb_fd(p->swb) >= 0)   /* cluster reservation, hole punching */
		RULE(SCMP_SYS(fallocate), 1, ARG32_EQ(0, (uint32_t)swb_fd(p->swb)));
	/* an NBD store: the threads that do swap I/O wake its loop (the event
	 * worker too: it reads a mremapped range's evicted pages) */
	if ((swap_io || role == SB_EVENT_WORKER) && p->swb && swb_io_kick_fd(p->swb) >= 0)
		RULE(SCMP_SYS(write), 1, ARG32_EQ(0, (uint32_t)swb_io_kick_fd(p->swb)));
	if (role == SB_SWAP_IO && p->swb && swb_io_kick_fd(p->swb) >= 0) {
		int fam = swb_io_socket_family(p->swb);

		/* the eventfd's count; the server's kind of socket only */
		RULE(SCMP_SYS(read), 1, ARG32_EQ(0, (uint32_t)swb_io_kick_fd(p->swb)));
		RULE(SCMP_SYS(socket), 2, ARG32_EQ(0, (uint32_t)fam),
		     ARG_MASKED_EQ(1, 0xf, SOCK_STREAM));
		RULE(SCMP_SYS(fcntl), 1, ARG32_EQ(1, F_GETFL));
		RULE(SCMP_SYS(fcntl), 1, ARG32_EQ(1, F_SETFL));
		RULE(SCMP_SYS(fcntl), 1, ARG32_EQ(1, F_GETFD));
		RULE(SCMP_SYS(fcntl), 1, ARG32_EQ(1, F_SETFD));
	}
#undef RULE
	return rc;
}

static scmp_filter_ctx build_filter(struct ufp_pager *p, enum sandbox_role role)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
	int rc = 0;

	if (!f)
		return NULL;
	/* we set NO_NEW_PRIVS ourselves (sandbox_enter); a call made under
	 * another ABI (int 0x80) traps like any other forbidden call */
	rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 0);
	if (!rc)
		rc = seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP);
	for (size_t i = 0; !rc && i < sizeof(plain_rules) / sizeof(plain_rules[0]); i++)
		if (role_in(plain_rules[i].roles, role))
			rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, plain_rules[i].nr, 0);
	if (!rc)
		rc = add_arg_rules(f, p, role);
	/* clone3 passes its flags in memory, where a filter cannot look:
	 * ENOSYS makes glibc fall back to clone, whose flags are checked */
	if (!rc && role == SB_EVENT_WORKER)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
#ifndef SB_SANITIZER
	/* No service thread opens a file, but glibc may, lazily, once per
	 * process, on whichever thread gets there first: free() reads
	 * /proc/sys/vm/overcommit_memory the first time it trims a heap,
	 * malloc reads /sys/devices/system/cpu/online when it first sizes
	 * its arenas. Both cope with a refusal, so opening fails with EACCES
	 * here instead of ending the thread (seen in test_locks). */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0);
#endif
	if (rc) {
		seccomp_release(f);
		return NULL;
	}
	return f;
}

/* ======================================================================
 * Per-thread state and the SIGSYS handler (signal context).
 * ====================================================================== */

/* A service thread's sandbox state, on its own stack (sandbox_start):
 * thread-local storage stays one pointer. */
struct sb_thread {
	struct ufp_pager *pager;   /* non-NULL: the filter is loaded */
	int role;
	bool can_return;           /* inside sandbox_start's call of fn */
	_Atomic uint32_t *ready;   /* the creator waits for 1 here (sandbox_ready) */
	sigjmp_buf back;
};

static __thread struct sb_thread *tls_sb __attribute__((tls_model("initial-exec")));

/* Where tls_sb points once a sandboxed thread's function has returned (its
 * TLS destructors still run under the filter): a trap there still ends the
 * thread, named but without its pager. */
static struct sb_thread sb_leaving = { .role = SB_NROLES };

static struct sigaction old_sigsys;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool said_unavailable;

static size_t put_str(char *b, size_t n, const char *s)
{
	while (*s && n < 500)
		b[n++] = *s++;
	return n;
}

static size_t put_num(char *b, size_t n, unsigned long v, unsigned base)
{
	char d[24];
	int k = 0;

	if (base == 16)
		n = put_str(b, n, "0x");
	do
		d[k++] = "0123456789abcdef"[v % base];
	while ((v /= base) && k < 24);
	while (k && n < 500)
		b[n++] = d[--k];
	return n;
}

/* "sym+0xoff" or "lib+0xoff" for a code address; 0 characters when the
 * address is in no loaded object. dladdr takes the loader's recursive
 * lock (a futex, allowed): safe even if this thread trapped inside dlopen. */
static size_t put_code_addr(char *b, size_t n, const void *a)
{
	Dl_info di;
	const char *name, *slash;
	uintptr_t base;

	if (!a || !dladdr(a, &di) || !di.dli_fname)
		return n;
	name = di.dli_sname;
	base = (uintptr_t)di.dli_saddr;
	if (!name) {
		slash = strrchr(di.dli_fname, '/');
		name = slash ? slash + 1 : di.dli_fname;
		base = (uintptr_t)di.dli_fbase;
	}
	n = put_str(b, n, " ");
	n = put_str(b, n, name);
	n = put_str(b, n, "+");
	return put_num(b, n, (uintptr_t)a - base, 16);
}

static void sandbox_kill(const siginfo_t *si, const void *ucv)
{
	struct sb_thread *sb = tls_sb;
	struct ufp_pager *p = sb->pager;
	char b[512];
	size_t n = 0;

	n = put_str(b, n, "ufpager: sandbox: the ");
	n = put_str(b, n, sandbox_role_name((enum sandbox_role)sb->role));
	n = put_str(b, n, " thread (tid ");
	n = put_num(b, n, (unsigned long)syscall(SYS_gettid), 10);
	if (p) {
		n = put_str(b, n, ", pager ");
		n = put_num(b, n, (unsigned long)p->id, 10);
	}
	n = put_str(b, n, ") made forbidden system call ");
	n = put_num(b, n, (unsigned long)si->si_syscall, 10);
#if defined(__x86_64__)
	if (ucv) {
		const ucontext_t *uc = ucv;

		n = put_str(b, n, "(");
		n = put_num(b, n, (unsigned long)uc->uc_mcontext.gregs[REG_RDI], 16);
		n = put_str(b, n, ", ");
		n = put_num(b, n, (unsigned long)uc->uc_mcontext.gregs[REG_RSI], 16);
		n = put_str(b, n, ", ");
		n = put_num(b, n, (unsigned long)uc->uc_mcontext.gregs[REG_RDX], 16);
		n = put_str(b, n, ", ...)");
	}
	if (si->si_arch != AUDIT_ARCH_X86_64)
		n = put_str(b, n, " under a foreign ABI");
#endif
	/* where: the call instruction, then the words near the stack top
	 * that point into code (the likely callers; a heuristic without
	 * unwind tables, but it names the library function that made it) */
	n = put_str(b, n, " at");
	n = put_code_addr(b, n, si->si_call_addr);
#if defined(__x86_64__)
	if (ucv) {
		const ucontext_t *uc = ucv;
		const uintptr_t *sp = (const uintptr_t *)uc->uc_mcontext.gregs[REG_RSP];
		int shown = 0;

		n = put_str(b, n, ", called from");
		for (int i = 0; i < 48 && shown < 4 && n < 440; i++) {
			size_t m = put_code_addr(b, n, (const void *)sp[i]);

			shown += m != n;
			n = m;
		}
	}
#else
	(void)ucv;
#endif
	n = put_str(b, n, "; the thread ends (UFPAGER_SANDBOX=0 turns the sandbox off)\n");
	if (write(2, b, n) < 0) {
		/* nothing more we can do from a signal handler */
	}
	/* relaxed: a counter; the shared block takes atomic adds */
	if (p)
		atomic_fetch_add_explicit(&p->stats.shared.c[UFP_C_sandbox_kills], 1,
					  memory_order_relaxed);
	if (sb->can_return) {
		sb->can_return = false;
		siglongjmp(sb->back, 1);
	}
	/* not started by sandbox_thread_create, or trapped again on its way
	 * out (or after its function returned): end the thread where it is;
	 * the kernel still clears its tid, so a joiner does not wait */
	syscall(SYS_exit, 0);
}

/* Someone else's SIGSYS: what would have happened without our handler. */
static void chain_sigsys(int sig, siginfo_t *si, void *uc)
{
	if (si->si_code == SYS_SECCOMP && !(old_sigsys.sa_flags & SA_SIGINFO) &&
	    old_sigsys.sa_handler == SIG_DFL) {
		/* a trap on a thread we did not start, about to kill the
		 * process (the application has no handler): its own filter, or
		 * a thread that inherited one of ours. Say which call, for the
		 * report (async-signal-safe) */
		char b[512];
		size_t n = put_str(b, 0, "ufpager: sandbox: seccomp trap on thread ");
		n = put_num(b, n, (unsigned long)syscall(SYS_gettid), 10);
		n = put_str(b, n, " (not a ufpager service thread), system call ");
		n = put_num(b, n, (unsigned long)si->si_syscall, 10);
		n = put_str(b, n, ": the default action follows\n");
		if (write(2, b, n) < 0) {
			/* nothing more we can do from a signal handler */
		}
	}
	if (old_sigsys.sa_flags & SA_SIGINFO) {
		if (old_sigsys.sa_sigaction) {
			old_sigsys.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old_sigsys.sa_handler == SIG_IGN && si->si_code != SYS_SECCOMP) {
		return;
	} else if (old_sigsys.sa_handler != SIG_DFL && old_sigsys.sa_handler != SIG_IGN) {
		old_sigsys.sa_handler(sig);
		return;
	}
	/* the default action (the kernel forces it for a seccomp trap that
	 * finds SIGSYS ignored): SIGSYS is blocked while we run, so this
	 * one is delivered, with the default disposition, when we return */
	signal(SIGSYS, SIG_DFL);
	syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGSYS);
}

static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;

	if (tls_sb && (tls_sb->pager || tls_sb == &sb_leaving)) {
		if (si->si_code == SYS_SECCOMP)
			sandbox_kill(si, uc);      /* does not return */
		/* a process-directed SIGSYS picked our thread (the only signal
		 * it does not block): hand it to the main thread, never run
		 * the application's handler here */
		syscall(SYS_tgkill, getpid(), getpid(), SIGSYS);
	} else {
		chain_sigsys(sig, si, uc);
	}
	errno = saved_errno;
}

/* Install our SIGSYS handler in front of whatever is there (again, if the
 * application replaced it since). Returns 0 or -errno. */
static int sigsys_install(void)
{
	struct sigaction cur, sa;
	int err = 0;

	pthread_mutex_lock(&install_lock);
	if (sigaction(SIGSYS, NULL, &cur) == 0 &&
	    (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != sigsys_handler)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sigsys_handler;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, &old_sigsys))
			err = -errno;
	}
	pthread_mutex_unlock(&install_lock);
	return err;
}

/* ======================================================================
 * Service threads (normal context).
 * ====================================================================== */

struct start {
	void *(*fn)(void *);
	void *arg;
	_Atomic uint32_t ready;    /* 1: the thread's setup is done (creator's) */
};

/* The thread's setup is over (its filter loaded, or its function ended):
 * release the creator. */
static void sandbox_ready(void)
{
	if (tls_sb && tls_sb->ready) {
		/* release: pairs with the creator's acquire load; the creator
		 * frees the word once it sees 1, so no access after this */
		atomic_store_explicit(tls_sb->ready, 1, memory_order_release);
		futex_wake(tls_sb->ready, 1);
		tls_sb->ready = NULL;
	}
}

static void *sandbox_start(void *v)
{
	struct start *sp = v;
	struct start st = { .fn = sp->fn, .arg = sp->arg };
	struct sb_thread sb = { .role = SB_NROLES, .ready = &sp->ready };
	void *volatile ret = NULL;   /* kept across the siglongjmp back */

	tls_sb = &sb;
	if (sigsetjmp(sb.back, 1) == 0) {
		sb.can_return = true;
		ret = st.fn(st.arg);
		sb.can_return = false;
		sandbox_ready();
	} else {
		sandbox_ready();
		if (URCU_TLS(urcu_memb_reader).registered)
			/* killed by the sandbox (sandbox_kill): leave RCU (the
			 * thread may have been inside a read section) and end
			 * through the normal exit, whose TLS destructors give
			 * back the thread's I/O context (thread.c sees it left
			 * RCU) */
			urcu_memb_unregister_thread();
	}
	/* compiler barrier: tls_sb is read by the SIGSYS handler of this
	 * thread only; it never points at a dead frame */
	tls_sb = sb.pager ? &sb_leaving : NULL;
	atomic_signal_fence(memory_order_seq_cst);
	return ret;
}

bool sandbox_is_service_thread(void)
{
	return tls_sb != NULL;
}

int sandbox_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	struct start *st = slab_alloc(sizeof(*st));
	sigset_t all, old;
	int err;

	if (!st)
		return ENOMEM;
	st->fn = fn;
	st->arg = arg;
	/* service threads block every signal: an application handler must
	 * never run on them (it could touch managed memory). Not SIGBUS: a
	 * synchronous SIGBUS on a thread that blocks it kills the process
	 * (and resets the disposition for every thread); unblocked, one on
	 * managed memory is served by ufpager's own handler, as before. */
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	atomic_init(&st->ready, 0);
	err = pthread_create(t, NULL, sandbox_start, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/*
	 * Wait until the thread has set itself up (sandbox_enter or the end of
	 * its function): its setup allocates with the process's malloc
	 * (libseccomp builds the filter), which may become a ufpager heap as
	 * soon as ufp_pager_create returns, and a service thread must never
	 * touch managed memory. acquire: pairs with sandbox_ready.
	 */
	while (!err && !atomic_load_explicit(&st->ready, memory_order_acquire))
		futex_wait(&st->ready, 0, NULL);
	slab_free(st);
	return err;
}

#ifdef UFP_INTERNAL_TESTING
static void test_call(struct ufp_pager *p, enum sandbox_role role)
{
	int expect = (int)role + 1;
	long r = 0;

	if (!atomic_compare_exchange_strong(&sandbox_test_call.armed_role, &expect, 0))
		return;
	switch (sandbox_test_call.what) {
	case SB_TEST_SOCKET:
		r = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (r >= 0)
			close((int)r);
		break;
	case SB_TEST_IOCTL: {
		struct uffdio_api api = { .api = UFFD_API };

		r = ioctl(p->uffd, UFFDIO_API, &api);   /* EINVAL: done once already */
		break;
	}
	case SB_TEST_WRITE_STDOUT:
		r = write(1, "", 0);
		break;
	case SB_TEST_OPEN:
		r = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
		if (r >= 0)
			close((int)r);
		break;
	case SB_TEST_MMAP_EXEC: {
		void *m = sys_mmap(NULL, UFP_PAGE_SIZE, PROT_READ | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		r = m == MAP_FAILED ? -1 : 0;
		if (m != MAP_FAILED)
			sys_munmap(m, UFP_PAGE_SIZE);
		break;
	}
	}
	atomic_store(&sandbox_test_call.result, r < 0 ? -errno : r);
	atomic_store(&sandbox_test_call.done, 1);
}
#endif

static void say_unavailable(const char *what, int err)
{
	bool f = false;

	if (atomic_compare_exchange_strong(&said_unavailable, &f, true))
		ufp_log("ufpager: seccomp sandbox unavailable (%s: %s); service threads run "
			"unsandboxed (sandbox_unavailable counts them)\n", what, strerror(err));
}

/*
 * Load f on the calling thread and release it, with nothing left to free
 * once the filter is in force: the filter's program is exported (a memfd)
 * and f released first, then the program is loaded with seccomp(2), as
 * seccomp_load would (no flags: no TSYNC; NO_NEW_PRIVS is set already).
 * Why: libseccomp's objects come from the process's malloc, which may be
 * a ufpager heap; freeing them under the filter could run the heap's
 * extent hooks (ufp_unmap, UFFDIO_*) on this thread, which its filter
 * forbids. Returns 0 or -errno.
 */
static int filter_load(scmp_filter_ctx f)
{
	struct sock_fprog prog = { 0 };
	struct stat st;
	int fd = memfd_create("ufp-seccomp", MFD_CLOEXEC), err = 0;

	if (fd < 0) {
		seccomp_release(f);
		return -errno;
	}
	err = seccomp_export_bpf(f, fd);
	seccomp_release(f);
	if (!err && fstat(fd, &st))
		err = -errno;
	if (!err && (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) ||
		     st.st_size / (off_t)sizeof(struct sock_filter) > 0xffff))
		err = -EINVAL;
	if (!err) {
		prog.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
		prog.filter = slab_alloc((size_t)st.st_size);
		if (!prog.filter)
			err = -ENOMEM;
		else if (pread(fd, prog.filter, (size_t)st.st_size, 0) != st.st_size)
			err = -EIO;
	}
	close(fd);
	if (!err && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		err = -errno;
	slab_free(prog.filter);   /* slab.c: munmap or a free list, both allowed */
	return err;
}

void sandbox_enter(struct ufp_pager *p, enum sandbox_role role)
{
	static const char *const names[SB_NROLES] = {
		"ufp-handler", "ufp-evreader", "ufp-events", "ufp-reclaim", "ufp-export",
		"ufp-watchdog", "ufp-swapio",
	};
	scmp_filter_ctx f;
	sigset_t sys;
	int err;

	pthread_setname_np(pthread_self(), names[role]);
	if (!p->opt.sandbox)
		goto test;
	err = -sigsys_install();
	if (err) {
		say_unavailable("sigaction(SIGSYS)", err);
		goto unavailable;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		say_unavailable("prctl(PR_SET_NO_NEW_PRIVS)", errno);
		goto unavailable;
	}
	pthread_mutex_lock(&build_lock);
	f = build_filter(p, role);
	pthread_mutex_unlock(&build_lock);
	if (!f) {
		say_unavailable("building the filter", ENOMEM);
		goto unavailable;
	}
	if (!tls_sb) {   /* not started by sandbox_thread_create */
		say_unavailable("a thread not started by sandbox_thread_create", EINVAL);
		goto unavailable;
	}
	tls_sb->pager = p;
	tls_sb->role = (int)role;
	/* a trap on a thread that blocks SIGSYS would take the default
	 * action (the kernel forces it): the whole process would die */
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	err = filter_load(f);   /* this thread only: no TSYNC */
	if (err) {
		tls_sb->pager = NULL;
		pthread_sigmask(SIG_BLOCK, &sys, NULL);
		say_unavailable("seccomp_load", -err);
		goto unavailable;
	}
	atomic_fetch_add_explicit(&p->stats.shared.c[UFP_C_sandbox_threads], 1, memory_order_relaxed);
	goto test;
unavailable:
	/* relaxed: a counter; the shared block takes atomic adds */
	atomic_fetch_add_explicit(&p->stats.shared.c[UFP_C_sandbox_unavailable], 1,
				  memory_order_relaxed);
test:
	sandbox_ready();
#ifdef UFP_INTERNAL_TESTING
	test_call(p, role);
#endif
	return;
}

int service_start(struct service_thread *t, void *(*fn)(void *), void *arg)
{
	if (sandbox_thread_create(&t->thread, fn, arg))
		return -EAGAIN;
	t->started = true;
	return 0;
}

void service_stop(struct service_thread *t, _Atomic uint32_t *futex)
{
	if (!t->started)
		return;
	/* release (in futex_bump_wake): the stop condition set before it is
	 * visible to the thread's acquire load of the word */
	futex_bump_wake(futex, INT32_MAX);
	pthread_join(t->thread, NULL);
	t->started = false;
}
