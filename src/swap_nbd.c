/* SPDX-License-Identifier: MIT */
/*
 * swap_nbd.c - the swap store's slots on a Network Block Device export,
 * through libnbd's asynchronous API: the URI, the pool of connections,
 * the one loop that drives them, reconnection, and each context's
 * requests. Takes the place of swap_file.c's file and rings when the swap
 * location is an NBD URI (nbd://host[:port]/export,
 * nbd+unix:///export?socket=PATH); slots, checksums, the lz4 tier and
 * same-filled pages stay as they are (swap_backend.c), so only pages
 * that leave RAM cross the network.
 *
 * Why a loop thread: swb_load runs in the SIGBUS handler (self-paging),
 * where libnbd cannot (it takes pthread mutexes and allocates per
 * command). A context therefore never calls libnbd: it queues its
 * requests on a lock-free stack, wakes the loop (eventfd) only when the
 * loop sleeps, and waits on a futex word -- async-signal-safe. One loop
 * thread (swnbd_run, started by the pager as the "swap I/O" service
 * thread under its own seccomp filter) owns every libnbd handle: it
 * issues nbd_aio_pread/pwrite/trim with completion callbacks and polls
 * the connections' sockets (nbd_aio_get_direction, nbd_aio_notify_read /
 * write): any number of requests in flight, no thread per request.
 *
 * Connections: `connections` (default 4) to the same export, each
 * cluster of slots always on the same connection (cluster % n), so a
 * read never overtakes the write it depends on even on a server that
 * does not promise consistency across connections (multi-conn).
 * Contiguous slots of one batch go in one request.
 *
 * Faults: a connection that dies (EOF, error, a request stuck past its
 * deadline) is closed; every request it had in flight goes back to the
 * queue and is sent again on the new connection, which the loop opens
 * with backoff (5 ms doubling to 500 ms) from the address resolved at
 * create time (no name lookup, no file opened in the loop: the sandbox
 * allows socket/connect and the socket calls only). Writes give up after
 * NBD_WRITE_DEADLINE_NS (the store fails: eviction puts the page back),
 * at once while the server is known to be away; reads after
 * NBD_READ_DEADLINE_NS (the page is poisoned: SIGBUS, never wrong data).
 * A late duplicate of a retried write or trim that the old connection
 * had already sent cannot give wrong data either: every slot's checksum
 * is verified on load.
 *
 * The contexts' side (queueing, waiting, the readahead cache) is
 * swap_nbd_io.c; the objects both share are in swap_nbd.h.
 *
 * Concurrency: open/close, usage and status run in normal context;
 * swnbd_run is the loop thread. The loop alone touches connections and
 * the private request lists.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libnbd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <urcu/compiler.h>

#include "swap_nbd.h"
#include "base.h"
#include "sys.h"
#include "futex.h"

/* ======================================================================
 * The URI (normal context).
 * ====================================================================== */

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* The library's own copy of a string (slab.c, never the process's malloc). */
static char *nbd_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = slab_alloc(n);

	return d ? memcpy(d, s, n) : NULL;
}

/* Percent-decode [s, s+n) into a new string; NULL on a bad escape. */
static char *uri_decode(const char *s, size_t n)
{
	char *o = slab_alloc(n + 1), *d = o;

	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			*d++ = s[i];
			continue;
		}
		if (i + 2 >= n) {          /* "%X" or "%" at the end */
			slab_free(o);
			return NULL;
		}
		int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);

		if (a < 0 || b < 0) {
			slab_free(o);
			return NULL;
		}
		*d++ = (char)(a * 16 + b);
		i += 2;
	}
	*d = 0;
	return o;
}

bool swnbd_is_uri(const char *where)
{
	return where && !strncmp(where, "nbd", 3) && strstr(where, "://") &&
	       (size_t)(strstr(where, "://") - where) < 16;
}

#define URI_ERR(...) ufp_error(-EINVAL, SWB_ERR __VA_ARGS__)
#define URI_FORMS "nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"

/* Parse the query: socket=PATH, connections=N. */
static int uri_query(struct nbdq *q, const char *qs, char **sock)
{
	while (qs && *qs) {
		const char *amp = strchr(qs, '&'), *end = amp ? amp : qs + strlen(qs);
		const char *eq = memchr(qs, '=', (size_t)(end - qs));
		char *v;

		if (!eq)
			return URI_ERR("NBD URI %s: query parameter without a value", q->uri);
		v = uri_decode(eq + 1, (size_t)(end - eq - 1));
		if (!v)
			return URI_ERR("NBD URI %s: bad %%-escape", q->uri);
		if ((size_t)(eq - qs) == 6 && !strncmp(qs, "socket", 6)) {
			slab_free(*sock);
			*sock = v;
		} else if ((size_t)(eq - qs) == 11 && !strncmp(qs, "connections", 11)) {
			char *e;
			unsigned long n = strtoul(v, &e, 10);

			if (!*v || *e || n < 1 || n > NBD_MAX_CONNS) {
				slab_free(v);
				return URI_ERR("NBD URI %s: connections must be 1..%d", q->uri,
					       NBD_MAX_CONNS);
			}
			q->nconn = (unsigned)n;
			slab_free(v);
		} else {
			slab_free(v);
			return URI_ERR("NBD URI %s: unknown query parameter '%.*s' (known: "
				       "socket, connections)", q->uri, (int)(eq - qs), qs);
		}
		qs = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* Resolve the URI into q->sa and q->export. */
static int uri_parse(struct nbdq *q)
{
	const char *u = q->uri, *rest, *slash, *qm, *auth_end;
	char *sock = NULL, host[256], port[16] = "10809";
	bool unix_ = false;
	int err;

	if (!strncmp(u, "nbd://", 6))
		rest = u + 6;
	else if (!strncmp(u, "nbd+unix://", 11)) {
		rest = u + 11;
		unix_ = true;
	} else if (!strncmp(u, "nbds", 4) || !strncmp(u, "nbd+vsock", 9))
		return URI_ERR("NBD URI %s: TLS (nbds) and vsock are not supported; use "
			       URI_FORMS, u);
	else
		return URI_ERR("not an NBD URI: %s (expected " URI_FORMS ")", u);
	qm = strchr(rest, '?');
	slash = strchr(rest, '/');
	if (slash && qm && slash > qm)
		slash = NULL;
	auth_end = slash ? slash : qm ? qm : rest + strlen(rest);
	q->export = slash ? uri_decode(slash + 1, (size_t)((qm ? qm : slash + strlen(slash)) -
							   (slash + 1)))
			  : nbd_strdup("");
	if (!q->export)
		return URI_ERR("NBD URI %s: bad %%-escape in the export name", u);
	err = uri_query(q, qm ? qm + 1 : NULL, &sock);
	if (err)
		goto out;
	if (unix_) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&q->sa;

		if (auth_end != rest) {
			err = URI_ERR("NBD URI %s: nbd+unix takes no host (nbd+unix:///EXPORT?"
				      "socket=PATH)", u);
			goto out;
		}
		if (!sock || !*sock) {
			err = URI_ERR("NBD URI %s: nbd+unix needs ?socket=PATH", u);
			goto out;
		}
		if (strlen(sock) >= sizeof(sun->sun_path)) {
			err = URI_ERR("NBD URI %s: socket path longer than %zu bytes", u,
				      sizeof(sun->sun_path) - 1);
			goto out;
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, sock);
		q->salen = sizeof(*sun);
		q->family = AF_UNIX;
		goto out;
	}
	if (sock) {
		err = URI_ERR("NBD URI %s: socket= belongs to nbd+unix://", u);
		goto out;
	}
	/* host, [v6] or name, then :port */
	const char *h = rest, *he, *pc;

	if (*h == '[') {
		he = memchr(h, ']', (size_t)(auth_end - h));
		if (!he) {
			err = URI_ERR("NBD URI %s: unclosed [ in the host", u);
			goto out;
		}
		pc = he + 1 < auth_end && he[1] == ':' ? he + 1 : NULL;
		h++;
	} else {
		pc = memchr(h, ':', (size_t)(auth_end - h));
		he = pc ? pc : auth_end;
	}
	if (he == h || (size_t)(he - h) >= sizeof(host)) {
		err = URI_ERR("NBD URI %s: no host (" URI_FORMS ")", u);
		goto out;
	}
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = 0;
	if (pc) {
		size_t pl = (size_t)(auth_end - pc - 1);

		if (!pl || pl >= sizeof(port) || strspn(pc + 1, "0123456789") < pl) {
			err = URI_ERR("NBD URI %s: bad port", u);
			goto out;
		}
		memcpy(port, pc + 1, pl);
		port[pl] = 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int g = getaddrinfo(host, port, &hints, &ai);

	if (g) {
		err = ufp_error(g == EAI_NONAME ? -ENOENT : -EHOSTUNREACH,
				SWB_ERR "NBD URI %s: cannot resolve %s: %s", u, host,
				gai_strerror(g));
		goto out;
	}
	memcpy(&q->sa, ai->ai_addr, ai->ai_addrlen);
	q->salen = ai->ai_addrlen;
	q->family = ai->ai_family;
	freeaddrinfo(ai);
out:
	slab_free(sock);
	return err;
}

/* ======================================================================
 * Connections.
 * ====================================================================== */

static void nbd_say(struct nbdq *q, const char *what, int err, const char *detail)
{
	pthread_mutex_lock(&q->err_lock);
	snprintf(q->last_err, sizeof(q->last_err), "%s: %s%s%s", what, strerror(err),
		 detail ? " -- " : "", detail ? detail : "");
	pthread_mutex_unlock(&q->err_lock);
}

/* The socket is connected: libnbd takes it over for the handshake. */
static int conn_handshake(struct nbdq *q, struct nbd_conn *c)
{
	int fd = c->fd;

	c->fd = -1;
	c->h = nbd_create();
	if (!c->h) {
		close(fd);
		return -ENOMEM;
	}
	if (nbd_set_export_name(c->h, q->export) == -1 ||
	    nbd_aio_connect_socket(c->h, fd) == -1) {
		int err = nbd_get_errno() ?: EIO;

		nbd_say(q, "handshake", err, nbd_get_error());
		nbd_close(c->h);        /* the handle owns fd now */
		c->h = NULL;
		return -err;
	}
	c->state = CN_CONNECTING;
	return 0;
}

/*
 * Start connecting c (loop or create): our own non-blocking socket and
 * connect to the address resolved at create time (so the loop makes no
 * name lookup, and a refused connect is seen as such: libnbd's own
 * connect left a refused Unix socket stuck in CONNECT.START), then
 * libnbd's handshake on it. 0, or -errno with the reason said.
 */
static int conn_start(struct nbdq *q, struct nbd_conn *c)
{
	int err;

	c->since = ufp_now_ns();
	c->fd = socket(q->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = errno;
		nbd_say(q, "socket", err, NULL);
		return -err;
	}
	if (connect(c->fd, (const struct sockaddr *)&q->sa, q->salen) == 0)
		return conn_handshake(q, c);
	if (errno == EINPROGRESS) {
		c->state = CN_SOCKET;
		return 0;
	}
	err = errno;
	nbd_say(q, "connect", err, NULL);
	close(c->fd);
	c->fd = -1;
	return -err;
}

/* SOCKET and poll said it is writable: connected, or why not. */
static int conn_socket_done(struct nbdq *q, struct nbd_conn *c)
{
	int soerr = 0;
	socklen_t l = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &l))
		soerr = errno;
	if (!soerr)
		return conn_handshake(q, c);
	nbd_say(q, "connect", soerr, NULL);
	close(c->fd);
	c->fd = -1;
	return -soerr;
}

/* Tell libnbd what poll saw on c's socket. An error or hangup goes to
 * the direction libnbd waits for: a refused non-blocking connect shows
 * as POLLERR|POLLHUP while libnbd waits to write, and a read there is
 * "invalid in state CONNECT.START" (no error learnt, the handle stuck);
 * as a write, libnbd reads SO_ERROR and fails with ECONNREFUSED. */
static void conn_notify(struct nbd_conn *c, short revents, unsigned dir)
{
	bool err = revents & (POLLHUP | POLLERR);

	if ((revents & POLLIN) || (err && (dir & LIBNBD_AIO_DIRECTION_READ)))
		nbd_aio_notify_read(c->h);
	if (((revents & POLLOUT) || (err && (dir & LIBNBD_AIO_DIRECTION_WRITE))) &&
	    !nbd_aio_is_dead(c->h) && !nbd_aio_is_closed(c->h))
		nbd_aio_notify_write(c->h);
}

/* Create time: connect c and wait for the handshake. */
static int conn_open_sync(struct nbdq *q, struct nbd_conn *c)
{
	uint64_t t0 = ufp_now_ns();
	int err = conn_start(q, c);

	while (!err && (c->state == CN_SOCKET || nbd_aio_is_connecting(c->h))) {
		int64_t left = NBD_CONNECT_TIMEOUT_MS - (int64_t)((ufp_now_ns() - t0) / 1000000);
		unsigned dir = c->state == CN_SOCKET ? LIBNBD_AIO_DIRECTION_WRITE :
			       nbd_aio_get_direction(c->h);
		struct pollfd pf = { .fd = c->state == CN_SOCKET ? c->fd : nbd_aio_get_fd(c->h),
				     .events = (short)(
			(dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
			(dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0)) };

		if (left <= 0) {
			nbd_say(q, "connect", ETIMEDOUT, NULL);
			err = -ETIMEDOUT;
			break;
		}
		if (pf.fd < 0) {
			err = -(nbd_get_errno() ?: EIO);
			nbd_say(q, "handshake", -err, nbd_get_error());
			break;
		}
		if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
			err = -errno;
		else if (pf.revents && c->state == CN_SOCKET)
			err = conn_socket_done(q, c);
		else if (pf.revents)
			conn_notify(c, pf.revents, dir);
	}
	if (!err && !nbd_aio_is_ready(c->h)) {
		err = -(nbd_get_errno() ?: ECONNREFUSED);
		nbd_say(q, "handshake", -err, nbd_get_error());
	}
	if (err) {
		if (c->fd >= 0)
			close(c->fd);
		if (c->h)
			nbd_close(c->h);
		c->fd = -1;
		c->h = NULL;
		c->state = CN_DOWN;
		return err;
	}
	c->state = CN_READY;
	return 0;
}

/* ======================================================================
 * The loop (the swap I/O thread only).
 * ====================================================================== */

static int nbd_done_cb(void *ud, int *error)
{
	struct nbd_req *r = ud;

	r->cb_err = *error;
	r->cb_done = true;
	return 1;            /* retire the command: we keep our own state */
}

/* Hand r back to its owner; r is not touched after this. */
static void req_complete(struct nbdq *q, struct nbd_req *r, int res)
{
	_Atomic uint32_t *pend = r->pending;

	if (r->ra) {
		struct ra_entry *e = r->ra;
		uint32_t v = atomic_load_explicit(&e->ctl, memory_order_relaxed);

		/* release: pairs with the acquire of readers that see READY
		 * (buf filled); a failed read just leaves the cache */
		atomic_store_explicit(&e->ctl, RA_CTL(RA_GEN(v), res ? RA_FREE : RA_READY),
				      memory_order_release);
		futex_wake(&e->ctl, INT32_MAX);
		return;
	}
	if (res)
		atomic_fetch_add_explicit(&q->errors, 1, memory_order_relaxed);
	r->res = res;
	/* release: pairs with the owner's acquire load of the count; the last
	 * one wakes it */
	if (atomic_fetch_sub_explicit(pend, 1, memory_order_release) == 1)
		futex_wake(pend, 1);
}

static void pending_add(struct nbdq *q, struct nbd_req *r)
{
	r->next = NULL;
	if (q->pending_tail)
		q->pending_tail->next = r;
	else
		q->pending = r;
	q->pending_tail = r;
}

/* The next attempt: 5 ms after a drop, doubling to 500 ms. */
static void conn_backoff(struct nbd_conn *c, uint64_t now)
{
	c->backoff = !c->backoff ? NBD_BACKOFF_MIN_NS : c->backoff * 2 > NBD_BACKOFF_MAX_NS ?
		     NBD_BACKOFF_MAX_NS : c->backoff * 2;
	c->next_try = now + c->backoff;
}

static void conn_fail(struct nbdq *q, struct nbd_conn *c, const char *why)
{
	struct nbd_req *r, *nx;
	int err = nbd_get_errno() ?: ECONNRESET;

	if (c->state == CN_READY)
		atomic_fetch_sub_explicit(&q->ready, 1, memory_order_relaxed);
	if (why) {     /* NULL: the caller said why already */
		nbd_say(q, why, err, c->h ? nbd_get_error() : NULL);
		ufp_log("ufpager: swap: NBD connection %u to %s: %s (%s); reconnecting\n",
			(unsigned)(c - q->conn), q->uri, why, strerror(err));
	}
	/* everything it had in flight is sent again on the next connection */
	for (r = c->inflight; r; r = nx) {
		nx = r->next;
		atomic_fetch_add_explicit(&q->retries, 1, memory_order_relaxed);
		pending_add(q, r);
	}
	c->inflight = NULL;
	if (c->h)
		nbd_close(c->h);    /* no callback of ours runs after this */
	if (c->fd >= 0)
		close(c->fd);
	c->h = NULL;
	c->fd = -1;
	c->state = CN_DOWN;
	conn_backoff(c, ufp_now_ns());
	if (!atomic_load_explicit(&q->ready, memory_order_relaxed) &&
	    !atomic_load_explicit(&q->down_since, memory_order_relaxed))
		atomic_store_explicit(&q->down_since, ufp_now_ns(), memory_order_relaxed);
}

static void conn_up(struct nbdq *q, struct nbd_conn *c)
{
	c->state = CN_READY;
	c->backoff = 0;
	atomic_fetch_add_explicit(&q->ready, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&q->reconnects, 1, memory_order_relaxed);
	atomic_store_explicit(&q->down, false, memory_order_relaxed);
	atomic_store_explicit(&q->down_since, 0, memory_order_relaxed);
}

/* Issue r on its connection: true when it is in flight. */
static bool req_issue(struct nbdq *q, struct nbd_req *r)
{
	struct nbd_conn *c = &q->conn[r->conn];
	nbd_completion_callback cb = { .callback = nbd_done_cb, .user_data = r };
	int64_t ck;

	r->cb_done = false;
	r->cb_err = 0;
	if (r->op == NR_READ)
		ck = nbd_aio_pread(c->h, r->buf, r->len, r->off, cb, 0);
	else if (r->op == NR_WRITE)
		ck = nbd_aio_pwrite(c->h, r->buf, r->len, r->off, cb, 0);
	else
		ck = nbd_aio_trim(c->h, r->len, r->off, cb, 0);
	if (ck == -1) {
		conn_fail(q, c, r->op == NR_READ ? "read" : r->op == NR_WRITE ? "write" : "trim");
		return false;       /* back on pending (conn_fail does not see r) */
	}
	r->next = c->inflight;
	c->inflight = r;
	return true;
}

/* New requests from the contexts, in the order they were pushed. */
static void take_submitted(struct nbdq *q, uint64_t now)
{
	struct cds_lfs_head *head = __cds_lfs_pop_all(&q->submit);
	struct cds_lfs_node *n, *nx;
	struct nbd_req *rev = NULL;

	tsan_acquire(&q->submit_sync);
	if (!head)
		return;
	for (n = &head->node; n; n = nx) {
		struct nbd_req *r = caa_container_of(n, struct nbd_req, node);

		nx = n->next;
		r->next = rev;
		rev = r;
	}
	while (rev) {
		struct nbd_req *r = rev;
		bool away = atomic_load_explicit(&q->down, memory_order_relaxed);

		rev = r->next;
		/* the server is away: a write or trim fails at once (the page
		 * stays resident), a read waits for it */
		if (away && r->op != NR_READ) {
			req_complete(q, r, -ENOTCONN);
			continue;
		}
		r->deadline = now + (r->op == NR_READ ? NBD_READ_DEADLINE_NS : r->op == NR_WRITE ?
				     NBD_WRITE_DEADLINE_NS : NBD_TRIM_DEADLINE_NS);
		pending_add(q, r);
	}
}

/* Send what can be sent; fail what waited past its deadline. */
static void dispatch(struct nbdq *q, uint64_t now)
{
	struct nbd_req *r = q->pending, *keep = NULL, *tail = NULL;

	q->pending = q->pending_tail = NULL;
	bool away = atomic_load_explicit(&q->down, memory_order_relaxed);

	while (r) {
		struct nbd_req *nx = r->next;

		if (now > r->deadline || (away && r->op != NR_READ))
			req_complete(q, r, r->op == NR_READ ? -EIO : -ENOTCONN);
		else if (q->conn[r->conn].state == CN_READY && req_issue(q, r))
			;
		else {
			r->next = NULL;
			if (tail)
				tail->next = r;
			else
				keep = r;
			tail = r;
		}
		r = nx;
	}
	/* conn_fail in req_issue may have queued others meanwhile */
	if (tail) {
		tail->next = q->pending;
		if (!q->pending)
			q->pending_tail = tail;
		q->pending = keep;
	}
}

/* Completed requests of c: done, or sent again after a transport error. */
static void reap(struct nbdq *q, struct nbd_conn *c, uint64_t now, bool dying)
{
	struct nbd_req **pp = &c->inflight, *r;
	bool stuck = false;

	while ((r = *pp)) {
		if (!r->cb_done) {
			stuck |= now > r->deadline;
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (!r->cb_err)
			req_complete(q, r, 0);
		else if (dying || r->cb_err == ENOTCONN || r->cb_err == ESHUTDOWN ||
			 r->cb_err == ECONNRESET || r->cb_err == EPIPE) {
			/* the transport failed, not the request: again */
			atomic_fetch_add_explicit(&q->retries, 1, memory_order_relaxed);
			pending_add(q, r);
		} else {
			/* the server refused it: a read poisons its pages */
			req_complete(q, r, r->op == NR_READ ? -EIO : -r->cb_err);
		}
	}
	/* a request past its deadline on a live socket: the server hangs;
	 * start over on a new connection (the requests go back to pending) */
	if (stuck)
		conn_fail(q, c, "request timed out");
}

static void reconnect(struct nbdq *q, uint64_t now)
{
	for (unsigned i = 0; i < q->nconn; i++) {
		struct nbd_conn *c = &q->conn[i];

		if (c->state == CN_DOWN && now >= c->next_try && conn_start(q, c))
			conn_backoff(c, now);
		/* libnbd may finish a handshake inside nbd_aio_connect_socket
		 * (a fast server): no poll event will say so */
		if (c->state == CN_CONNECTING && nbd_aio_is_ready(c->h))
			conn_up(q, c);
		if ((c->state == CN_CONNECTING || c->state == CN_SOCKET) &&
		    now > c->since && now - c->since > NBD_CONNECT_TIMEOUT_MS * 1000000ull)
			conn_fail(q, c, "connect timed out");
	}
	/* the server is away: every connection down, and one full backoff
	 * round failed (the first reconnect attempt after a drop usually
	 * finds a restarted server) */
	uint64_t since = atomic_load_explicit(&q->down_since, memory_order_relaxed);

	if (since && now - since > 200000000ull)
		atomic_store_explicit(&q->down, true, memory_order_relaxed);
}

void swnbd_run(struct nbdq *q)
{
	struct pollfd pf[NBD_MAX_CONNS + 1];
	unsigned idx[NBD_MAX_CONNS + 1], dirs[NBD_MAX_CONNS + 1];

	atomic_store_explicit(&q->running, true, memory_order_relaxed);
	/* acquire: pairs with the release store in swnbd_stop */
	while (!atomic_load_explicit(&q->stop, memory_order_acquire)) {
		uint64_t now = ufp_now_ns(), wake = now + 100000000ull;
		unsigned n = 0;
		uint64_t v;

		reconnect(q, now);
		take_submitted(q, now);
		dispatch(q, now);
		pf[n].fd = q->kick_fd;
		pf[n].events = POLLIN;
		idx[n++] = UINT32_MAX;
		for (unsigned i = 0; i < q->nconn; i++) {
			struct nbd_conn *c = &q->conn[i];

			if (c->state == CN_DOWN) {
				if (c->next_try < wake)
					wake = c->next_try;
				continue;
			}
			dirs[n] = c->state == CN_SOCKET ? LIBNBD_AIO_DIRECTION_WRITE :
				  nbd_aio_get_direction(c->h);
			pf[n].fd = c->state == CN_SOCKET ? c->fd : nbd_aio_get_fd(c->h);
			pf[n].events = (short)((dirs[n] & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
					       (dirs[n] & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0));
			if (pf[n].fd < 0) {
				conn_fail(q, c, "no socket");
				continue;
			}
			idx[n++] = i;
		}
		for (struct nbd_req *r = q->pending; r; r = r->next)
			if (r->deadline < wake)
				wake = r->deadline;
		/* seq_cst store then load: pairs with swnbd_submit's push then
		 * load of sleeping (either it sees us asleep and kicks, or we
		 * see its request) */
		for (unsigned j = 0; j < n; j++)
			pf[j].revents = 0;      /* poll skipped: nothing to notify */
		atomic_store(&q->sleeping, true);
		/* seq_cst: cds_lfs_empty is a plain load; keep it after the
		 * store (the submitter's push is a full barrier on its side) */
		atomic_thread_fence(memory_order_seq_cst);
		if (cds_lfs_empty(&q->submit)) {
			int ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;

			if (poll(pf, n, ms) < 0 && errno != EINTR)
				usleep(1000);
		}
		atomic_store(&q->sleeping, false);
		if (pf[0].revents & POLLIN && read(q->kick_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: someone else drained it */
		}
		now = ufp_now_ns();
		for (unsigned j = 1; j < n; j++) {
			struct nbd_conn *c = &q->conn[idx[j]];
			bool was_connecting = c->state == CN_CONNECTING;

			if (c->state == CN_SOCKET) {
				if (pf[j].revents && conn_socket_done(q, c))
					conn_fail(q, c, NULL);
				continue;
			}
			if (pf[j].revents)
				conn_notify(c, pf[j].revents, dirs[j]);
			if (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h)) {
				/* what it finished before it died is done; what
				 * failed with it goes again on the next one */
				reap(q, c, now, true);
				conn_fail(q, c, was_connecting ? "connect" : "connection lost");
				continue;
			}
			if (was_connecting && nbd_aio_is_ready(c->h))
				conn_up(q, c);
		}
		for (unsigned i = 0; i < q->nconn; i++)
			if (q->conn[i].state == CN_READY)
				reap(q, &q->conn[i], now, false);
	}
	/* stopping: nobody submits any more (the pager stopped its users);
	 * anything left fails */
	take_submitted(q, ufp_now_ns());
	for (struct nbd_req *r = q->pending, *nx; r; r = nx) {
		nx = r->next;
		req_complete(q, r, -ESHUTDOWN);
	}
	q->pending = q->pending_tail = NULL;
	atomic_store_explicit(&q->running, false, memory_order_relaxed);
}

void swnbd_stop(struct nbdq *q)
{
	uint64_t one = 1;

	/* release: pairs with the loop's acquire load */
	atomic_store_explicit(&q->stop, true, memory_order_release);
	if (write(q->kick_fd, &one, sizeof(one)) < 0) {
		/* the counter is full: the loop is awake anyway */
	}
}

int swnbd_kick_fd(struct nbdq *q)
{
	return q->kick_fd;
}

int swnbd_family(struct nbdq *q)
{
	return q->family;
}

void swnbd_usage(struct nbdq *q, struct swb_usage *u)
{
	/* relaxed: gauges and counters */
	u->net_conns = q->nconn;
	u->net_ready = atomic_load_explicit(&q->ready, memory_order_relaxed);
	u->net_down = atomic_load_explicit(&q->down, memory_order_relaxed);
	u->net_reconnects = atomic_load_explicit(&q->reconnects, memory_order_relaxed);
	u->net_retries = atomic_load_explicit(&q->retries, memory_order_relaxed);
	u->net_errors = atomic_load_explicit(&q->errors, memory_order_relaxed);
	u->net_ra_reads = atomic_load_explicit(&q->ra_reads, memory_order_relaxed);
	u->net_ra_hits = atomic_load_explicit(&q->ra_hits, memory_order_relaxed);
}

int swnbd_status(struct nbdq *q, char *buf, size_t len)
{
	/* relaxed: gauges */
	uint64_t since = atomic_load_explicit(&q->down_since, memory_order_relaxed);
	uint32_t ready = atomic_load_explicit(&q->ready, memory_order_relaxed);
	char dur[64] = "";

	if (since)
		snprintf(dur, sizeof(dur), ", unreachable for %.1f s",
			 (double)(ufp_now_ns() - since) / 1e9);
	pthread_mutex_lock(&q->err_lock);
	snprintf(buf, len, "NBD server %s: %u of %u connections up%s%s%s", q->uri, ready,
		 q->nconn, dur, q->last_err[0] ? "; last error: " : "", q->last_err);
	pthread_mutex_unlock(&q->err_lock);
	return since != 0;
}

void swnbd_close(struct nbdq *q)
{
	if (!q)
		return;
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++)
		if (q->conn[i].h)
			/* no nbd_shutdown: it waits for the server's goodbye,
			 * forever if the server hangs; we keep no data there */
			nbd_close(q->conn[i].h);
		else if (q->conn[i].fd >= 0)
			close(q->conn[i].fd);
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	if (q->ra_bufs)
		sys_munmap(q->ra_bufs, (size_t)NBD_RA_ENTRIES * CL_BYTES);
	pthread_mutex_destroy(&q->err_lock);
	pthread_mutex_destroy(&q->sync_lock);
	slab_free(q->uri);
	slab_free(q->export);
	slab_free(q);
}

int swnbd_open(const char *uri, struct nbdq **out, uint64_t *size)
{
	struct nbdq *q = slab_calloc(1, sizeof(*q));
	int err;

	if (!q || !(q->uri = nbd_strdup(uri))) {
		slab_free(q);
		return ufp_error(-ENOMEM, SWB_ERR "out of memory");
	}
	q->kick_fd = -1;
	q->nconn = NBD_DEF_CONNS;
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++)
		q->conn[i].fd = -1;
	pthread_mutex_init(&q->err_lock, NULL);
	pthread_mutex_init(&q->sync_lock, NULL);
	__cds_lfs_init(&q->submit);
	err = uri_parse(q);
	if (err)
		goto fail;
	q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->kick_fd < 0) {
		err = ufp_error(-errno, SWB_ERR "eventfd: %s", strerror(errno));
		goto fail;
	}
	for (unsigned i = 0; i < q->nconn; i++) {
		err = conn_open_sync(q, &q->conn[i]);
		if (err) {
			err = ufp_error(err, SWB_ERR "cannot connect to the NBD server %s: %s", uri,
					q->last_err);
			goto fail;
		}
		atomic_fetch_add_explicit(&q->ready, 1, memory_order_relaxed);
	}
	int64_t sz = nbd_get_size(q->conn[0].h);

	if (sz < 0) {
		err = ufp_error(-EIO, SWB_ERR "NBD server %s: no export size: %s", uri,
				nbd_get_error());
		goto fail;
	}
	if (nbd_is_read_only(q->conn[0].h) == 1) {
		err = ufp_error(-EROFS, SWB_ERR "NBD export %s is read-only", uri);
		goto fail;
	}
	if ((uint64_t)sz < NBD_MIN_EXPORT) {
		err = ufp_error(-ENOSPC, SWB_ERR "NBD export %s is too small: %lld bytes (swap "
				"needs at least %llu)", uri, (long long)sz,
				(unsigned long long)NBD_MIN_EXPORT);
		goto fail;
	}
	q->size = (uint64_t)sz;
	q->nclusters = q->size / CL_BYTES;
	q->ra_bufs = sys_mmap(NULL, (size_t)NBD_RA_ENTRIES * CL_BYTES, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->ra_bufs == MAP_FAILED) {
		q->ra_bufs = NULL;
		err = ufp_error(-ENOMEM, SWB_ERR "out of memory for the NBD readahead");
		goto fail;
	}
	for (unsigned i = 0; i < NBD_RA_ENTRIES; i++)
		q->ra[i].buf = q->ra_bufs + (size_t)i * CL_BYTES;
	q->can_trim = nbd_can_trim(q->conn[0].h) == 1;
	q->last_err[0] = 0;
	*size = q->size;
	*out = q;
	return 0;
fail:
	swnbd_close(q);
	return err;
}
