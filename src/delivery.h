/* SPDX-License-Identifier: MIT */
/*
 * delivery.h - the two fault deliveries: the handler pool (uffd_loop.c) and
 * self-paging (sigbus.c); foreign events (events.c).
 */
#ifndef UFP_DELIVERY_H
#define UFP_DELIVERY_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include "base.h"
#include "sandbox.h"
#include "rcu.h"
#include "watchdog.h"
#include "uffd_compat.h"

struct ufp_pager;
struct uffd_msg;

struct ufp_pager;

struct ufp_handler {
	struct ufp_pager *pager;
	pthread_t thread;
	pid_t tid;
	/* odd from before a read of the uffd until the events it returned
	 * are published and queued (events.c ordering, see remap.c) */
	_Atomic uint64_t section ufp_cacheline_aligned;
	struct wd_beat wd;             /* heartbeat (watchdog.h) */
};

/* uffd_loop.c's part of the pager */
#define UFP_HANDOFF_SLOTS 32
struct pager_service {
	struct ufp_handler *handlers;
	unsigned nhandlers;
	int wake_fd;                    /* eventfd: stop the handlers */
	int kick_fd;                    /* eventfd: a fault was handed off */
	_Atomic bool stopping;
	_Atomic bool spinner;           /* a handler is spinning (at most one) */
	/* faults that need a read, handed off by a handler that has one of
	 * its own to wait for: page address | 1 if a write; 0 = free */
	_Atomic uint64_t handoff[UFP_HANDOFF_SLOTS];
};

struct ufp_event {                  /* a foreign event for the event worker */
	struct cds_wfcq_node node;
	struct uffd_msg msg;
	unsigned slot;                  /* REMAP, REMOVE: the published range (remap.c,
					 * removes.c) */
};

/* events.c's part of the pager */
struct pager_events {
	struct service_thread worker;
	struct cds_wfcq_head head;
	struct cds_wfcq_tail tail;
	_Atomic uint32_t futex;
	_Atomic uint32_t reading;       /* SIGBUS delivery: the event reader is between
					 * reading messages and publishing them */
};

/* uffd_loop.c: the handler pool (handler delivery) or the event reader */
int uffd_start_threads(struct ufp_pager *p);
void uffd_stop_threads(struct ufp_pager *p);
/* events.c: foreign events; events_handle queues one (any reader thread) */
int events_start(struct ufp_pager *p);
void events_stop(struct ufp_pager *p);
void events_handle(struct ufp_pager *p, const struct uffd_msg *m);
/* sigbus.c: self-paging */
int sigbus_install(struct ufp_pager *p);
/* SIGBUS passed on to the application (process-wide count). */
uint64_t sigbus_foreign_count(void);
void sigbus_remove(struct ufp_pager *p);

#endif /* UFP_DELIVERY_H */
