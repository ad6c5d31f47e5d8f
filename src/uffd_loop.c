/* SPDX-License-Identifier: MIT */
/*
 * uffd_loop.c - the userfaultfd service: open and probe, (un)registration,
 * the one ioctl wrapper, fault service, the handler-thread pool with
 * adaptive polling, the event worker for foreign UNMAP/REMOVE/REMAP, and
 * self-paging through UFFD_FEATURE_SIGBUS.
 *
 * Concurrency contract:
 *  - a handler thread never touches managed memory: UFFDIO_COPY sources are
 *    a static zero buffer (outside every registered range) and, with swap,
 *    bounce buffers; with UFFD_FEATURE_THREAD_ID every fault's thread id is
 *    checked against the handlers' (handler_self_faults must stay 0);
 *  - handler threads never block on the pager lock while holding an event
 *    unread: foreign events are queued to the event worker, which alone
 *    takes the pager lock for write on their behalf;
 *  - the SIGBUS handler is async-signal-safe: atomics, futex, ioctl,
 *    RCU read side for registered threads (urcu-memb), the pager-lock
 *    fallback for others; no malloc, no stdio, errno saved.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <linux/futex.h>
#include <limits.h>

#include "ufp_internal.h"
#include "inject.h"
#include "sandbox.h"


/* ======================================================================
 * Opening and probing (normal context).
 * ====================================================================== */

static int uffd_new(int flags, bool *via_dev)
{
	int dev, fd;

	*via_dev = false;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		close(dev);
		if (fd >= 0) {
			*via_dev = true;
			return fd;
		}
	}
	fd = (int)syscall(SYS_userfaultfd, flags);
	return fd < 0 ? -errno : fd;
}

static int read_sysctl_int(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC), v = -1;
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		v = atoi(buf);
	}
	close(fd);
	return v;
}

UFP_API int ufp_probe_machine(struct ufp_probe *out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct ufp_probe probe, *pr = &probe;
	uint32_t size;
	bool via_dev;
	void *page;
	int fd;

	ufp_clear_error();
	if (!out)
		return ufp_error(-EINVAL, "ufp_probe_machine: NULL");
	if (out->version != UFP_PROBE_VERSION || out->size < offsetof(struct ufp_probe, reserved))
		return ufp_error(-EINVAL, "ufp_probe_machine: size %u / version %u (set size = "
				 "sizeof(struct ufp_probe), version = UFP_PROBE_VERSION)",
				 out->size, out->version);
	size = out->size;
	memset(pr, 0, sizeof(*pr));
	pr->unprivileged_uffd = read_sysctl_int("/proc/sys/vm/unprivileged_userfaultfd");
	pr->io_uring_disabled = read_sysctl_int("/proc/sys/kernel/io_uring_disabled");

	fd = uffd_new(O_CLOEXEC | O_NONBLOCK, &via_dev);
	if (fd < 0) {
		pr->uffd_errno = -fd;
		fd = uffd_new(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, &via_dev);
		if (fd < 0)
			goto io_uring;
		pr->user_mode_only = 1;
	}
	pr->uffd_via_dev = via_dev;
	/* UFFDIO_API with no features reports what the kernel offers. */
	if (ioctl(fd, UFFDIO_API, &api) == 0)
		pr->uffd_features = api.features;
	close(fd);
	/* A second throwaway fd: UFFDIO_API may be called once per fd. */
	fd = uffd_new(O_CLOEXEC | O_NONBLOCK | (pr->user_mode_only ? UFFD_USER_MODE_ONLY : 0),
		      &via_dev);
	page = mmap(NULL, UFP_PAGE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd >= 0 && page != MAP_FAILED) {
		struct uffdio_api a2 = { .api = UFFD_API, .features = 0 };
		struct uffdio_register reg = {
			.range = { (uintptr_t)page, UFP_PAGE_SIZE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(fd, UFFDIO_API, &a2) == 0 && ioctl(fd, UFFDIO_REGISTER, &reg) == 0)
			pr->uffd_ioctls = reg.ioctls;
	}
	if (page != MAP_FAILED)
		munmap(page, UFP_PAGE_SIZE);
	if (fd >= 0)
		close(fd);
io_uring:
	{
		/* io_uring_setup(2) with 1 entry and a NULL params is -EFAULT when
		 * the syscall exists and is allowed; ENOSYS/EPERM otherwise. */
		long r = syscall(425 /* __NR_io_uring_setup */, 1, NULL);

		pr->io_uring_errno = (r < 0 && errno != EFAULT) ? errno : 0;
		if (r >= 0)
			close((int)r);
	}
	/* never more than the caller's struct holds */
	pr->size = size;
	pr->version = UFP_PROBE_VERSION;
	memcpy(out, pr, size < sizeof(*pr) ? size : sizeof(*pr));
	return 0;
}

static const char *uffd_fix_text(int err, bool user_mode_only_ok)
{
	switch (err) {
	case EPERM:
		return user_mode_only_ok ?
		       "userfaultfd is restricted to user-mode faults here "
		       "(vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE, no access to "
		       "/dev/userfaultfd). ufpager needs kernel-mode faults too, or system calls "
		       "that read or write paged-out memory would fail with EFAULT. Fix: run as "
		       "root, or grant access to /dev/userfaultfd (e.g. chmod/chgrp it for your "
		       "group), or sysctl -w vm.unprivileged_userfaultfd=1" :
		       "userfaultfd is not permitted (a seccomp profile, e.g. a container's "
		       "default, or an LSM blocks it). Fix: allow the userfaultfd syscall in the "
		       "profile, or run outside the container";
	case ENOSYS:
		return "this kernel has no userfaultfd (CONFIG_USERFAULTFD=n). Fix: use a kernel "
		       "built with it (Linux 6.4+ recommended)";
	case EACCES:
		return "/dev/userfaultfd is not accessible. Fix: chmod/chgrp /dev/userfaultfd or "
		       "sysctl -w vm.unprivileged_userfaultfd=1";
	default:
		return "userfaultfd could not be opened";
	}
}

/*
 * PAGEMAP_SCAN (6.7+) on a throwaway page: ENOTTY/EINVAL where the kernel
 * lacks it. Without it WP_ASYNC would tell us nothing: dirty tracking then
 * falls back to comparing a content hash at eviction.
 */
static bool pagemap_scan_works(void)
{
	void *page = mmap(NULL, UFP_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	struct page_region rg;
	struct pm_scan_arg a = {
		.size = sizeof(a), .start = (uintptr_t)page,
		.end = (uintptr_t)page + UFP_PAGE_SIZE, .vec = (uintptr_t)&rg, .vec_len = 1,
		.category_mask = PAGE_IS_PRESENT, .return_mask = PAGE_IS_PRESENT,
	};
	bool ok = false;

	if (page != MAP_FAILED && fd >= 0)
		ok = ioctl(fd, PAGEMAP_SCAN, &a) >= 0;
	if (fd >= 0)
		close(fd);
	if (page != MAP_FAILED)
		munmap(page, UFP_PAGE_SIZE);
	return ok;
}

int uffd_open(struct ufp_pager *p)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	uint64_t want;
	bool via_dev;
	int fd;

	fd = uffd_new(O_CLOEXEC | O_NONBLOCK, &via_dev);
	if (fd < 0) {
		int err = -fd, umo;

		umo = uffd_new(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, &via_dev);
		if (umo >= 0)
			close(umo);
		ufp_set_error("ufpager: cannot open userfaultfd: %s: %s", strerror(err),
			      uffd_fix_text(err, umo >= 0));
		return -err;
	}
	/* Probe on a throwaway fd (UFFDIO_API is once per fd). */
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;

		close(fd);
		ufp_set_error("ufpager: UFFDIO_API failed: %s", strerror(err));
		return -err;
	}
	close(fd);
	want = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
	       UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MOVE;
	if (p->delivery == UFP_DELIVERY_SIGBUS)
		want |= UFFD_FEATURE_SIGBUS;
	if (p->opt.dirty_track && p->opt.budget && pagemap_scan_works())
		want |= UFFD_FEATURE_WP_ASYNC;
	if (p->delivery == UFP_DELIVERY_SIGBUS && !(api.features & UFFD_FEATURE_SIGBUS)) {
		ufp_set_error("ufpager: this kernel lacks UFFD_FEATURE_SIGBUS; use delivery=handler");
		return -EOPNOTSUPP;
	}
	want &= api.features;

	fd = uffd_new(O_CLOEXEC | O_NONBLOCK, &via_dev);
	if (fd < 0)
		return fd;
	api = (struct uffdio_api){ .api = UFFD_API, .features = want };
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;

		close(fd);
		ufp_set_error("ufpager: UFFDIO_API(features=0x%llx) failed: %s",
			      (unsigned long long)want, strerror(err));
		return -err;
	}
	p->uffd = fd;
	p->features = want;
	p->pagemap_fd = -1;
	if (want & UFFD_FEATURE_WP_ASYNC) {
		p->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (p->pagemap_fd < 0)
			p->features &= ~(uint64_t)UFFD_FEATURE_WP_ASYNC;   /* hash only */
	}
	return 0;
}

/*
 * Collect the pages of [start, end) written since the last call (present,
 * uffd-wp cleared by the kernel's WP_ASYNC resolution) and write-protect
 * them again, atomically per pte. Only present pages match: a WP_MATCHING
 * scan of an empty pte would install a uffd-wp marker, on which
 * UFFDIO_COPY/ZEROPAGE fail with EEXIST while the page is still missing.
 * Calls fn(i, arg) for each written page index. Returns pages found or
 * -errno. Normal context.
 */
long uffd_scan_written(struct ufp_pager *p, uintptr_t start, uintptr_t end,
		       void (*fn)(struct ufp_pager *, size_t, void *), void *arg)
{
	struct page_region rg[32];
	long found = 0;

	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a), .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = start, .end = end, .vec = (uintptr_t)rg, .vec_len = 32,
			.category_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(p->pagemap_fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return found ? found : -errno;
		for (long k = 0; k < n; k++)
			for (uintptr_t q = rg[k].start; q < rg[k].end; q += UFP_PAGE_SIZE) {
				fn(p, pte_index(p, q), arg);
				found++;
			}
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return found;
}

int uffd_register(struct ufp_pager *p, uintptr_t start, size_t len)
{
	struct uffdio_register reg = {
		.range = { start, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	/* WP_ASYNC: writes to write-protected pages are resolved by the
	 * kernel without a message; PAGEMAP_SCAN reads who was written. */
	if (p->features & UFFD_FEATURE_WP_ASYNC)
		reg.mode |= UFFDIO_REGISTER_MODE_WP;
	if (ioctl(p->uffd, UFFDIO_REGISTER, &reg))
		return -errno;

	if (!(reg.ioctls & (1ull << _UFFDIO_COPY)))
		return -EOPNOTSUPP;
	return 0;
}

int uffd_unregister(struct ufp_pager *p, uintptr_t start, size_t len)
{
	struct uffdio_range r = { start, len };

	return ioctl(p->uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

/* ======================================================================
 * The ioctl wrapper. Async-signal-safe.
 * ====================================================================== */

int uffd_wake(struct ufp_pager *p, uintptr_t start, size_t len)
{
	struct uffdio_range r = { start, len };

	return ioctl(p->uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}

static long fill_once(struct ufp_pager *p, uintptr_t dst, const void *src, size_t len,
		      bool dontwake, bool wp)
{
	/* injected EAGAIN: what the kernel does while an event is pending,
	 * after partial progress where the range has more than one page */
	if (ufp_unlikely(inject_on()) && inject_hit(INJ_EAGAIN)) {
		if (len <= UFP_PAGE_SIZE)
			return -EAGAIN;
		len = UFP_PAGE_SIZE;
	}
	if (src) {
		struct uffdio_copy c = { .dst = dst, .src = (uintptr_t)src, .len = len,
					 .mode = dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0 };

		/* write-protected: a write clears the bit (WP_ASYNC), so the
		 * next scan sees the page written; zeroed pages have no copy
		 * to keep and are installed writable */
		if (wp)
			c.mode |= UFFDIO_COPY_MODE_WP;

		if (ioctl(p->uffd, UFFDIO_COPY, &c) == 0)
			return (long)len;
		/* partial progress is reported in .copy with EAGAIN */
		return c.copy > 0 ? (long)c.copy : -errno;
	} else {
		struct uffdio_zeropage z = { .range = { dst, len },
					     .mode = dontwake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0 };

		if (ioctl(p->uffd, UFFDIO_ZEROPAGE, &z) == 0)
			return (long)len;
		return z.zeropage > 0 ? (long)z.zeropage : -errno;
	}
}

long uffd_fill(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
	       const void *src, size_t len, bool stop_on_exist)
{
	return uffd_fill_mode(p, ts, dst, src, len, stop_on_exist, 0);
}

long uffd_fill_mode(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
		    const void *src, size_t len, bool stop_on_exist, unsigned flags)
{
	size_t done = 0;

	while (done < len) {
		long r = fill_once(p, dst + done, src ? (const char *)src + done : NULL,
				   len - done, flags & UFP_FILL_DONTWAKE, flags & UFP_FILL_WP);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		switch (-r) {
		case EAGAIN:
			/* a non-cooperative event is pending (mmap_changing):
			 * the caller drops its locks and retries */
			ufp_stat_add(ts, UFP_C_ioctl_eagain, 1);
			return done ? (long)done : -EAGAIN;
		case EEXIST:
			ufp_stat_add(ts, UFP_C_ioctl_eexist, 1);
			if (done == 0) {
				/* the faulting page is already there: resolved;
				 * wake whoever waits on it */
				uffd_wake(p, dst, UFP_PAGE_SIZE);
				done = UFP_PAGE_SIZE;
				if (stop_on_exist)
					return (long)done;
				continue;
			}
			if (stop_on_exist)
				return (long)done;
			uffd_wake(p, dst + done, UFP_PAGE_SIZE);
			done += UFP_PAGE_SIZE;
			continue;
		case ENOENT:
			ufp_stat_add(ts, UFP_C_ioctl_enoent, 1);
			return done ? (long)done : -ENOENT;
		case ESRCH:
			ufp_stat_add(ts, UFP_C_ioctl_esrch, 1);
			return done ? (long)done : -ESRCH;
		default:
			return done ? (long)done : r;
		}
	}
	return (long)done;
}

/*
 * After a failed UFFDIO_MOVE into an empty page: did the page land anyway?
 * Linux 6.18 can move a uffd-wp page that races a write fault and still
 * return -EEXIST (tests/kernel_move_wp_race.c). Read from pagemap: dst
 * present, src neither present nor swapped. Needs pagemap_fd (dirty
 * tracking, the only case with uffd-wp ptes). Normal context.
 */
bool uffd_move_landed(struct ufp_pager *p, uintptr_t dst, uintptr_t src)
{
	uint64_t d = 0, s = 0;

	if (p->pagemap_fd < 0 ||
	    pread(p->pagemap_fd, &d, 8, (off_t)(dst >> UFP_PAGE_SHIFT) * 8) != 8 ||
	    pread(p->pagemap_fd, &s, 8, (off_t)(src >> UFP_PAGE_SHIFT) * 8) != 8)
		return false;
	return (d >> 63) && !(s >> 63) && !((s >> 62) & 1);
}

long uffd_move(struct ufp_pager *p, struct ufp_tstats *ts, uintptr_t dst,
	       uintptr_t src, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_move m = {
			.dst = dst + done, .src = src + done, .len = len - done,
			.mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
		};

		if (ufp_unlikely(inject_on()) && inject_hit(INJ_EAGAIN)) {
			ufp_stat_add(ts, UFP_C_ioctl_eagain, 1);   /* injected */
			sched_yield();
			continue;
		}
		if (ioctl(p->uffd, UFFDIO_MOVE, &m) == 0)
			return (long)len;
		if (m.move > 0) {
			done += (size_t)m.move;
			continue;
		}
		if (errno == EAGAIN) {
			ufp_stat_add(ts, UFP_C_ioctl_eagain, 1);
			sched_yield();
			continue;
		}
		/* Linux 6.18 may move a uffd-wp page and still fail with EEXIST
		 * (tests/kernel_move_wp_race.c); our destinations are empty, so
		 * a page found there is the one we moved */
		if (errno == EEXIST && uffd_move_landed(p, dst + done, src + done)) {
			ufp_stat_add(ts, UFP_C_moves_misreported, 1);
			done += UFP_PAGE_SIZE;
			continue;
		}
		return done ? (long)done : -errno;
	}
	return (long)done;
}

/* ======================================================================
 * Event worker: applies foreign events under the pager write lock.
 * ====================================================================== */

static long futex_word(_Atomic uint32_t *w, int op, uint32_t v)
{
	return syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

static void apply_event(struct ufp_pager *p, const struct ufp_event *ev)
{
	const struct uffd_msg *m = &ev->msg;
	struct ufp_tstats *ts = ufp_tstats_get(p, true);

	if (m->event == UFFD_EVENT_REMAP) {
		/* counted first: remap_carry's end wakes the program */
		STAT_INC(ts, events_remap);
		/* carries the moved range's evicted pages over (remap.c),
		 * unless an UNMAP of the old range did it already */
		remap_carry(p, ts, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len,
			    ev->slot);
		remap_end(p, ev->slot);
		return;
	}
	/* an mremap's UNMAP of its old range may overtake its REMAP */
	remap_carry_before_unmap(p, ts, m->arg.remove.start, m->arg.remove.end);
	pager_write_lock(p);
	switch (m->event) {
	case UFFD_EVENT_REMOVE: {
		uintptr_t s = m->arg.remove.start, e = m->arg.remove.end;

		/* Pages are gone in the kernel: forget their state. Write-lock
		 * the regions so no fault in flight there races the reset. */
		pager_lock_range(p, s, e);
		pager_clear_ptes(p, s, e);
		STAT_INC(ts, events_remove);
		break;
	}
	case UFFD_EVENT_UNMAP:
		pager_unmap_locked(p, m->arg.remove.start, m->arg.remove.end, true);
		STAT_INC(ts, events_unmap);
		break;
	}
	region_tree_commit(&p->tree);
	pager_write_unlock(p);
}

static void *event_worker(void *arg)
{
	struct ufp_pager *p = arg;

	thread_mark_service(true);
	sandbox_enter(p, SB_EVENT_WORKER);
	for (;;) {
		struct cds_wfcq_node *node;
		uint32_t w = atomic_load_explicit(&p->evq_futex, memory_order_acquire);

		wd_beat(&p->wd_events);
		if (ufp_unlikely(inject_on()) && inject_kill(INJ_T_EVENTS))
			break;             /* injected death: the watchdog must see it */

		node = cds_wfcq_dequeue_blocking(&p->evq_head, &p->evq_tail);
		if (node) {
			struct ufp_event *ev = caa_container_of(node, struct ufp_event, node);

			apply_event(p, ev);
			free(ev);
			continue;
		}
		if (atomic_load_explicit(&p->stopping, memory_order_acquire))
			break;
		wd_idle(&p->wd_events, true);
		futex_word(&p->evq_futex, FUTEX_WAIT_PRIVATE, w);
		wd_idle(&p->wd_events, false);
	}
	thread_unmark_service();
	return NULL;
}

static void queue_event(struct ufp_pager *p, const struct uffd_msg *m, unsigned slot)
{
	struct ufp_event *ev = malloc(sizeof(*ev));

	if (!ev) {
		ufp_log("ufpager: out of memory queueing a uffd event; region tree "
			"may disagree with the kernel for [%llx..)\n",
			(unsigned long long)m->arg.remove.start);
		return;
	}
	cds_wfcq_node_init(&ev->node);
	ev->msg = *m;
	ev->slot = slot;
	cds_wfcq_enqueue(&p->evq_head, &p->evq_tail, &ev->node);
	/* release: pairs with the acquire load in event_worker */
	atomic_fetch_add_explicit(&p->evq_futex, 1, memory_order_release);
	futex_word(&p->evq_futex, FUTEX_WAKE_PRIVATE, 1);
}

/* Returns true if the message was an event (handled or queued). */
static void handle_event(struct ufp_pager *p, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		if (is_staging_range(p, m->arg.remove.start, m->arg.remove.end))
			return;
		queue_event(p, m, 0);
		return;
	case UFFD_EVENT_REMAP:
		/* publish the new range at once: faults there wait for it */
		queue_event(p, m, remap_publish(p, m->arg.remap.from, m->arg.remap.to,
						m->arg.remap.len));
		return;
	default:
		return;
	}
}

/* ======================================================================
 * Handler threads.
 * ====================================================================== */

#define MSG_BATCH 32
#define RETRY_MAX 64

struct pending_fault {
	uintptr_t addr;
	bool write;
};

static bool is_handler_tid(struct ufp_pager *p, pid_t tid)
{
	for (unsigned i = 0; i < p->nhandlers; i++)
		if (__atomic_load_n(&p->handlers[i].tid, __ATOMIC_ACQUIRE) == tid)
			return true;
	return false;
}

static void serve_msg(struct ufp_pager *p, struct ufp_tstats *ts, const struct uffd_msg *m,
		      struct pending_fault *retry, unsigned *nretry)
{
	uint64_t t0 = ufp_now_ns();
	uintptr_t addr = m->arg.pagefault.address;
	bool write = m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
	int r;

	if ((p->features & UFFD_FEATURE_THREAD_ID) &&
	    is_handler_tid(p, (pid_t)m->arg.pagefault.feat.ptid)) {
		/* a handler touched managed memory: it would deadlock */
		STAT_INC(ts, handler_self_faults);
		UFP_ASSERT(!"handler thread faulted on managed memory");
	}
	r = ufp_serve_fault(p, ts, addr, write, true);
	if (r == -EAGAIN) {
		if (*nretry < RETRY_MAX)
			retry[(*nretry)++] = (struct pending_fault){ addr, write };
		return;
	}
	if (r == -EFAULT) {
		/* no region (a race with unmap): wake, the retry finds no VMA or
		 * a new registration */
		uffd_wake(p, addr & UFP_PAGE_MASK, UFP_PAGE_SIZE);
		return;
	}
	ufp_hist_record(ts, UFP_L_fault_lat, ufp_now_ns() - t0);
}

static void *handler_main(void *arg)
{
	struct ufp_handler *h = arg;
	struct ufp_pager *p = h->pager;
	struct uffd_msg msgs[MSG_BATCH];
	struct pending_fault retry[RETRY_MAX];
	unsigned nretry = 0;
	struct ufp_tstats *ts;
	uint64_t spin_ns = p->opt.spin_us > 0 ? (uint64_t)p->opt.spin_us * 1000 : 0;

	thread_mark_service(true);
	ts = ufp_tstats_get(p, true);
	reclaim_thread_enter(p, ts);
	sandbox_enter(p, SB_HANDLER);

	while (!atomic_load_explicit(&p->stopping, memory_order_acquire)) {
		ssize_t n;

		wd_beat(&h->wd);
		/* injected death, holding no consumed message */
		if (ufp_unlikely(inject_on()) && !nretry && inject_kill(INJ_T_HANDLER))
			break;
		/* seq_cst: the section is open before the read dequeues */
		atomic_fetch_add(&h->section, 1);
		n = read(p->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			atomic_fetch_add_explicit(&h->section, 1, memory_order_release);
			if (errno != EAGAIN && errno != EINTR)
				break;
			if (nretry) {
				/* events pending: give the triggering op a moment */
				struct pending_fault cur[RETRY_MAX];
				unsigned nc = nretry;

				memcpy(cur, retry, sizeof(cur[0]) * nc);
				nretry = 0;
				sched_yield();
				for (unsigned i = 0; i < nc; i++) {
					struct uffd_msg fake = { .event = UFFD_EVENT_PAGEFAULT };

					fake.arg.pagefault.address = cur[i].addr;
					fake.arg.pagefault.flags = cur[i].write ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
					serve_msg(p, ts, &fake, retry, &nretry);
				}
				continue;
			}
			/* Adaptive polling: spin on the non-blocking fd for a
			 * while after the last message, then block. */
			/* One spinner at a time: on a machine with few cores
			 * several spinning handlers starve the faulting threads. */
			if (spin_ns && !atomic_exchange_explicit(&p->spinner, true,
								 memory_order_relaxed)) {
				uint64_t deadline = ufp_now_ns() + spin_ns;
				bool hit = false;

				while (ufp_now_ns() < deadline) {
					struct pollfd pf = { .fd = p->uffd, .events = POLLIN };

					if (poll(&pf, 1, 0) > 0) {
						hit = true;
						break;
					}
					caa_cpu_relax();
				}
				atomic_store_explicit(&p->spinner, false, memory_order_relaxed);
				if (hit) {
					STAT_INC(ts, handler_spins_hit);
					continue;
				}
			}
			struct pollfd pfd[2] = {
				{ .fd = p->uffd, .events = POLLIN },
				{ .fd = p->wake_fd, .events = POLLIN },
			};
			STAT_INC(ts, handler_blocks);
			wd_idle(&h->wd, true);
			poll(pfd, 2, -1);
			wd_idle(&h->wd, false);
			continue;
		}
		/* events first, then the section ends (remap.c ordering) */
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				handle_event(p, &msgs[i]);
		/* release: pairs with the acquire in remap_carry_before_unmap */
		atomic_fetch_add_explicit(&h->section, 1, memory_order_release);
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			wd_beat(&h->wd);
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				serve_msg(p, ts, &msgs[i], retry, &nretry);
		}
	}
	thread_unmark_service();
	return NULL;
}

/* Event-only reader for SIGBUS delivery: faults come as signals, but
 * non-cooperative events still arrive on the fd. */
static void *event_reader_main(void *arg)
{
	struct ufp_handler *h = arg;
	struct ufp_pager *p = h->pager;
	struct uffd_msg msgs[MSG_BATCH];

	thread_mark_service(false);
	sandbox_enter(p, SB_EVENT_READER);
	while (!atomic_load_explicit(&p->stopping, memory_order_acquire)) {
		ssize_t n;

		wd_beat(&h->wd);
		/* Raised from before the read until the events are published:
		 * an mremap caller resumes once its REMAP is read, and a SIGBUS
		 * on the moved range must find it published (remap.c). seq_cst:
		 * the increment is visible before the read dequeues anything. */
		atomic_fetch_add(&p->ev_reading, 1);
		n = read(p->uffd, msgs, sizeof(msgs));
		for (size_t i = 0; n > 0 && i < (size_t)n / sizeof(msgs[0]); i++)
			handle_event(p, &msgs[i]);
		/* release: pairs with the acquire in remap_wait_reader */
		atomic_fetch_sub_explicit(&p->ev_reading, 1, memory_order_release);
		if (n < 0) {
			struct pollfd pfd[2] = {
				{ .fd = p->uffd, .events = POLLIN },
				{ .fd = p->wake_fd, .events = POLLIN },
			};

			if (errno != EAGAIN && errno != EINTR)
				break;
			wd_idle(&h->wd, true);
			poll(pfd, 2, -1);
			wd_idle(&h->wd, false);
			continue;
		}
	}
	return NULL;
}

static void *handler_trampoline(void *arg)
{
	struct ufp_handler *h = arg;

	/* release: pairs with the acquire loads in uffd_start_threads and
	 * is_handler_tid */
	__atomic_store_n(&h->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	if (h->pager->delivery == UFP_DELIVERY_SIGBUS)
		return event_reader_main(arg);
	return handler_main(arg);
}

int uffd_start_threads(struct ufp_pager *p)
{
	sigset_t all, old;
	int err = 0;

	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0)
		return -errno;
	cds_wfcq_init(&p->evq_head, &p->evq_tail);
	p->nhandlers = p->delivery == UFP_DELIVERY_SIGBUS ? 1 : (unsigned)p->opt.handler_threads;
	p->handlers = calloc(p->nhandlers, sizeof(*p->handlers));
	if (!p->handlers)
		return -ENOMEM;
	/* Service threads block every signal: a signal handler of the
	 * application must never run on them (it could touch managed memory). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (sandbox_thread_create(&p->event_thread, event_worker, p)) {
		err = -EAGAIN;
		goto out;
	}
	p->event_thread_started = true;
	for (unsigned i = 0; i < p->nhandlers; i++) {
		p->handlers[i].pager = p;
		p->handlers[i].idx = i;
		if (sandbox_thread_create(&p->handlers[i].thread, handler_trampoline,
					  &p->handlers[i])) {
			p->nhandlers = i;
			err = -EAGAIN;
			break;
		}
	}
out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Handler tids are needed by the self-fault check: wait for them. */
	for (unsigned i = 0; i < p->nhandlers; i++)
		while (!__atomic_load_n(&p->handlers[i].tid, __ATOMIC_ACQUIRE))
			sched_yield();
	return err;
}

void uffd_stop_threads(struct ufp_pager *p)
{
	uint64_t one = 1;

	atomic_store_explicit(&p->stopping, true, memory_order_release);
	if (p->wake_fd >= 0 && write(p->wake_fd, &one, sizeof(one)) < 0) {
		/* the eventfd counter cannot overflow from one write */
	}
	for (unsigned i = 0; i < p->nhandlers; i++)
		pthread_join(p->handlers[i].thread, NULL);
	if (p->event_thread_started) {
		atomic_fetch_add_explicit(&p->evq_futex, 1, memory_order_release);
		futex_word(&p->evq_futex, FUTEX_WAKE_PRIVATE, INT_MAX);
		pthread_join(p->event_thread, NULL);
		p->event_thread_started = false;
	}
	free(p->handlers);
	p->handlers = NULL;
	p->nhandlers = 0;
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	p->wake_fd = -1;
	cds_wfcq_destroy(&p->evq_head, &p->evq_tail);
}

/* ======================================================================
 * Self-paging: the SIGBUS handler.
 * ====================================================================== */

static struct {
	struct ufp_pager *_Atomic p;
	_Atomic uint32_t refs;
} sig_pagers[UFP_MAX_PAGERS];
static struct sigaction old_sigbus;
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static bool sig_installed;

static void chain_sigbus(int sig, siginfo_t *si, void *uc)
{
	if (old_sigbus.sa_flags & SA_SIGINFO) {
		if (old_sigbus.sa_sigaction) {
			old_sigbus.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old_sigbus.sa_handler != SIG_DFL && old_sigbus.sa_handler != SIG_IGN) {
		old_sigbus.sa_handler(sig);
		return;
	}
	/* default action: restore it; returning re-executes the access and
	 * the kernel delivers SIGBUS with the default disposition */
	signal(SIGBUS, SIG_DFL);
}

static bool fault_was_write(void *ucv)
{
#if defined(__x86_64__)
	ucontext_t *uc = ucv;

	/* x86 page-fault error code: bit 1 set for a write access */
	return uc && (uc->uc_mcontext.gregs[REG_ERR] & 2);
#else
	(void)ucv;
	return true;
#endif
}

/* Async-signal-safe report of a fault we own but could not serve. */
static void sig_report(uintptr_t addr, int err)
{
	char buf[96] = "ufpager: cannot serve fault at 0x";
	size_t n = strlen(buf);

	for (int sh = 60; sh >= 0; sh -= 4)
		buf[n++] = "0123456789abcdef"[(addr >> sh) & 15];
	memcpy(buf + n, ": errno ", 8);
	n += 8;
	if (err < 0)
		err = -err;
	if (err >= 100)
		buf[n++] = (char)('0' + err / 100 % 10);
	if (err >= 10)
		buf[n++] = (char)('0' + err / 10 % 10);
	buf[n++] = (char)('0' + err % 10);
	buf[n++] = '\n';
	if (write(2, buf, n) < 0) {
		/* nothing more we can do from a signal handler */
	}
}

/* Take a reference on pager slot i; NULL if empty (async-signal-safe). */
static struct ufp_pager *sig_pager_get(unsigned i)
{
	struct ufp_pager *p;

	if (!atomic_load_explicit(&sig_pagers[i].p, memory_order_relaxed))
		return NULL;
	/* seq_cst: the ref is visible before we read p, pairs with
	 * sigbus_remove's clear-then-wait */
	atomic_fetch_add(&sig_pagers[i].refs, 1);
	p = atomic_load(&sig_pagers[i].p);
	if (!p || p->forked_child) {
		atomic_fetch_sub(&sig_pagers[i].refs, 1);
		return NULL;
	}
	return p;
}

static void sig_pager_put(unsigned i)
{
	atomic_fetch_sub(&sig_pagers[i].refs, 1);
}

enum sig_outcome { SIG_NOT_OURS, SIG_SERVED, SIG_FAILED };

static enum sig_outcome sigbus_serve(uintptr_t addr, void *uc)
{
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *p = sig_pager_get(i);
		int r;

		if (!p)
			continue;
		if (remap_covers(p, addr)) {
			/* a range the program mremapped: wait until it is carried
			 * over, then the access runs on present memory */
			remap_wait(p, addr);
			sig_pager_put(i);
			return SIG_SERVED;
		}
		if (!pager_owns(p, addr)) {
			sig_pager_put(i);
			continue;
		}
		struct ufp_tstats *ts = ufp_tstats_get(p, false);
		uint64_t t0 = ufp_now_ns();
		bool write = fault_was_write(uc);

		while ((r = ufp_serve_fault(p, ts, addr, write, thread_rcu_registered())) == -EAGAIN)
			sched_yield();
		if (r == 0) {
			ufp_hist_record(ts, UFP_L_fault_lat, ufp_now_ns() - t0);
			STAT_INC(ts, sigbus_faults);
		}
		sig_pager_put(i);
		if (r == 0)
			return SIG_SERVED;
		if (r != -EHWPOISON)
			sig_report(addr, r);
		return SIG_FAILED;   /* ours but unmapped (or failed): not resolvable */
	}
	return SIG_NOT_OURS;
}

/* No pager owns addr: is an event reader between reading a REMAP and
 * publishing it? Then the address may be a moved range: wait, look again. */
static bool sigbus_remap_pending(void)
{
	bool waited = false;

	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *p = sig_pager_get(i);

		if (!p)
			continue;
		waited |= remap_wait_reader(p);
		sig_pager_put(i);
	}
	return waited;
}

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uintptr_t addr = (uintptr_t)si->si_addr;

	if (si->si_code == BUS_ADRERR) {
		enum sig_outcome o = sigbus_serve(addr, uc);

		if (o == SIG_NOT_OURS && sigbus_remap_pending())
			o = sigbus_serve(addr, uc);
		if (o == SIG_SERVED) {
			errno = saved_errno;
			return;
		}
	}
	chain_sigbus(sig, si, uc);
	errno = saved_errno;
}

int sigbus_install(struct ufp_pager *p)
{
	int err = -ENOSPC;

	pthread_mutex_lock(&sig_lock);
	/* (Re)install when the current handler is not ours: the application
	 * may have replaced it since; chain to whatever it installed. */
	struct sigaction cur;
	if (sigaction(SIGBUS, NULL, &cur) == 0 &&
	    (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != sigbus_handler))
		sig_installed = false;
	if (!sig_installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sigbus_handler;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
		/* Asynchronous signals wait while we serve a fault: a handler of
		 * the program that touched managed memory here would need the
		 * region lock we may hold. SIGBUS stays deliverable (NODEFER),
		 * and so do the other synchronous signals. */
		sigfillset(&sa.sa_mask);
		sigdelset(&sa.sa_mask, SIGBUS);
		sigdelset(&sa.sa_mask, SIGSEGV);
		sigdelset(&sa.sa_mask, SIGILL);
		sigdelset(&sa.sa_mask, SIGFPE);
		sigdelset(&sa.sa_mask, SIGTRAP);
		if (sigaction(SIGBUS, &sa, &old_sigbus)) {
			err = -errno;
			goto out;
		}
		sig_installed = true;
	}
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		struct ufp_pager *expect = NULL;

		if (atomic_compare_exchange_strong(&sig_pagers[i].p, &expect, p)) {
			p->slot = i;
			err = 0;
			break;
		}
	}
	if (err)
		ufp_set_error("ufpager: more than %d SIGBUS-delivery pagers", UFP_MAX_PAGERS);
out:
	pthread_mutex_unlock(&sig_lock);
	return err;
}

void sigbus_remove(struct ufp_pager *p)
{
	unsigned i = p->slot;

	if (i >= UFP_MAX_PAGERS || atomic_load(&sig_pagers[i].p) != p)
		return;
	/* seq_cst store then wait for handlers that may have seen p */
	atomic_store(&sig_pagers[i].p, NULL);
	while (atomic_load(&sig_pagers[i].refs))
		sched_yield();
}
