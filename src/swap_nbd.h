/* SPDX-License-Identifier: MIT */
/*
 * swap_nbd.h - what the two halves of the NBD swap store share: the
 * loop's side (swap_nbd.c: URI, connections, the loop) and the contexts'
 * side (swap_nbd_io.c: queueing, waiting, readahead). Included by those
 * two files only; the rest of the backend sees swap_internal.h's swnbd_*
 * calls.
 */
#ifndef UFP_SWAP_NBD_H
#define UFP_SWAP_NBD_H

#include <sys/socket.h>

#include "swap_internal.h"

struct nbd_handle;

#define NBD_MAX_CONNS 16
#define NBD_DEF_CONNS 4
#define NBD_MIN_EXPORT (1ull << 20)             /* the swap_size option's minimum */
#define NBD_WRITE_DEADLINE_NS 5000000000ull
#define NBD_READ_DEADLINE_NS 20000000000ull
#define NBD_TRIM_DEADLINE_NS 2000000000ull
#define NBD_CONNECT_TIMEOUT_MS 5000
#define NBD_BACKOFF_MIN_NS 5000000ull
#define NBD_BACKOFF_MAX_NS 500000000ull

enum { NR_READ, NR_WRITE, NR_TRIM };

#define NBD_RA_ENTRIES 16u                      /* clusters cached: 4 MiB */
#define NBD_RA_AHEAD 3u                         /* clusters read ahead */

struct ra_entry;

/* A request: written by its owner before the push, then by the loop
 * alone until it completes it (the release decrement of *pending); the
 * owner reads res after its acquire load sees the count reach 0. */
struct nbd_req {
	struct cds_lfs_node node;       /* on nbdq.submit */
	struct nbd_req *next;           /* the loop's lists */
	uint64_t off, len;
	void *buf;
	_Atomic uint32_t *pending;      /* owner's count: last one wakes it */
	struct ra_entry *ra;            /* a readahead read (no owner waits) */
	uint64_t deadline;              /* set by the loop when it first sees it */
	int res;                        /* 0 or -errno when complete */
	int cb_err;                     /* libnbd's completion callback */
	bool cb_done;
	uint8_t op;
	uint16_t k0;                    /* first bounce page (reads: tags) */
	uint32_t conn;
};

/* DOWN -> SOCKET (our non-blocking connect in progress on fd) ->
 * CONNECTING (libnbd's handshake on h) -> READY; any failure -> DOWN. */
enum { CN_DOWN, CN_SOCKET, CN_CONNECTING, CN_READY };

/*
 * A readahead cluster. ctl = gen << 16 | refs << 2 | state: FREE ->
 * CLAIMED (by one context, which writes key and req) -> LOADING (the loop
 * owns buf) -> READY (readers take a ref to copy; a refill needs refs 0)
 * -> CLAIMED again for another cluster, or FREE (dropped, failed). Every
 * claim bumps gen. key (cluster + 1) is written while CLAIMED and read
 * after an acquire load that saw LOADING or READY.
 */
enum { RA_FREE, RA_CLAIMED, RA_LOADING, RA_READY };
#define RA_STATE(v) ((v) & 3u)
#define RA_REFS(v) (((v) >> 2) & 0x3fffu)
#define RA_REF 4u
#define RA_GEN(v) ((v) >> 16)
#define RA_CTL(gen, st) (((uint32_t)(gen) << 16) | (st))

struct ra_entry {
	_Atomic uint32_t ctl;           /* futex word: waiters for LOADING */
	_Atomic uint32_t key;
	char *buf;                      /* CL_BYTES */
	struct nbd_req req;
};

struct nbd_conn {
	struct nbd_handle *h;
	int fd;                         /* SOCKET only: ours until the handshake */
	int state;
	uint64_t next_try, backoff;
	uint64_t since;                 /* CONNECTING: when it began */
	struct nbd_req *inflight;       /* issued on h, loop only */
};

struct nbdq {
	/* the URI, resolved at create */
	char *uri, *export;
	struct sockaddr_storage sa;
	socklen_t salen;
	int family;
	unsigned nconn;
	uint64_t size;
	bool can_trim;
	/* the loop */
	int kick_fd;                    /* eventfd: wakes the loop */
	_Atomic bool sleeping;          /* the loop is (about to be) in ppoll */
	_Atomic bool stop;
	_Atomic bool running;
	struct __cds_lfs_stack submit;
	_Atomic unsigned long submit_sync;    /* TSan only: see tsan_release */
	struct nbd_req *pending, *pending_tail;   /* loop only */
	struct nbd_conn conn[NBD_MAX_CONNS];
	/* state others read (relaxed: gauges and counters, one writer) */
	_Atomic uint32_t ready;         /* connections ready */
	_Atomic bool down;              /* no connection and reconnecting fails */
	_Atomic uint64_t down_since, reconnects, retries, errors;
	pthread_mutex_t err_lock;       /* last_err; normal context only */
	char last_err[200];
	/* synchronous requests of normal context (trim, corrupt) */
	pthread_mutex_t sync_lock;
	/* readahead */
	uint64_t nclusters;
	struct ra_entry ra[NBD_RA_ENTRIES];
	char *ra_bufs;
	_Atomic uint64_t ra_reads, ra_hits;
};

#endif /* UFP_SWAP_NBD_H */
