/* SPDX-License-Identifier: MIT */
/*
 * sandbox.h - the seccomp allowlist of ufpager's own service threads
 * (sandbox.c). Each service thread loads its own filter (no TSYNC: the
 * application's threads are never filtered); a forbidden system call ends
 * that thread with one line on stderr. sandbox.c calls nothing of the
 * library above it (only liburcu, libseccomp and swb_fd).
 */
#ifndef UFP_SANDBOX_H
#define UFP_SANDBOX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>

struct ufp_pager;

enum sandbox_role {
	SB_HANDLER,        /* handler delivery: reads faults and serves them */
	SB_EVENT_READER,   /* SIGBUS delivery: reads the uffd for events only */
	SB_EVENT_WORKER,   /* applies foreign UNMAP/REMOVE/REMAP events */
	SB_RECLAIM,        /* the reclaim thread */
	SB_EXPORTER,       /* the live stats exporter */
	SB_WATCHDOG,       /* the service-thread watchdog (watchdog.c) */
	SB_SWAP_IO,        /* an NBD swap store's loop: its sockets (swap_nbd.c) */
	SB_NROLES
};

/*
 * pthread_create for a service thread: the new thread starts with every
 * signal blocked (an application handler must never run on it) and with
 * the point a sandbox kill returns to, so a killed thread still ends
 * through the normal thread exit and can be joined. Normal context.
 * Returns pthread_create's result (0 or a positive error number).
 */
int sandbox_thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

/* A service thread with its started flag (events, reclaim, exporter). */
struct service_thread {
	pthread_t thread;
	bool started;
};
/* Start one through sandbox_thread_create. Returns 0 or -EAGAIN. */
int service_start(struct service_thread *t, void *(*fn)(void *), void *arg);
/* Stop one that was started: the caller has set the thread's stop
 * condition; bump and wake its futex word, join. Normal context. */
void service_stop(struct service_thread *t, _Atomic uint32_t *futex);

/*
 * Load the calling service thread's filter for `role`, after its setup
 * (RCU registration, counter block, I/O context) and before its loop.
 * Does nothing when the pager's `sandbox` option is off. If seccomp is
 * unavailable the thread runs unfiltered and sandbox_unavailable counts
 * it (said once per process on stderr): it never fails. Normal context.
 */
void sandbox_enter(struct ufp_pager *p, enum sandbox_role role);

const char *sandbox_role_name(enum sandbox_role role);
/* Was the calling thread started by sandbox_thread_create (one of the
 * library's service threads, filtered or about to be)? heap.c leaves
 * such threads as they are when they call malloc through a heap. */
bool sandbox_is_service_thread(void);

#ifdef UFP_INTERNAL_TESTING
/*
 * Test hook: when armed (role + 1), the next thread of that role to enter
 * the sandbox makes call `what` right after loading its filter. A thread
 * that survives stores the result (-errno on failure) and sets done.
 */
enum sandbox_test_what {
	SB_TEST_SOCKET = 1,    /* socket(AF_UNIX, SOCK_STREAM): never allowed */
	SB_TEST_IOCTL,         /* ioctl(uffd, UFFDIO_API): allowed fd, wrong request */
	SB_TEST_WRITE_STDOUT,  /* write(1, ...): write is for stderr only */
	SB_TEST_MMAP_EXEC,     /* mmap(PROT_EXEC): no executable mappings */
	SB_TEST_OPEN,          /* open(/proc/sys/vm/overcommit_memory): EACCES, not fatal */
};
struct sandbox_test_call {
	_Atomic int armed_role;   /* role + 1; 0: off */
	int what;                 /* enum sandbox_test_what */
	_Atomic int done;
	_Atomic long result;
};
extern struct sandbox_test_call sandbox_test_call;
#endif

#endif /* UFP_SANDBOX_H */
