/* SPDX-License-Identifier: MIT */
/*
 * uffd.c - userfaultfd itself: opening and probing the features this
 * kernel has, (un)registration, and the one tested wrapper for the
 * resolving ioctls (UFFDIO_COPY/ZEROPAGE/MOVE/WAKE), which handles
 * EAGAIN, EEXIST, ENOENT and ESRCH in one place. A low layer: it calls
 * only the counters (stats.c), the error channel and fault injection.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "sys.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "pager.h"
#include "uffd.h"
#include "inject.h"

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
	page = sys_mmap(NULL, UFP_PAGE_SIZE, PROT_READ | PROT_WRITE,
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
		sys_munmap(page, UFP_PAGE_SIZE);
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
	void *page = sys_mmap(NULL, UFP_PAGE_SIZE, PROT_READ | PROT_WRITE,
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
		sys_munmap(page, UFP_PAGE_SIZE);
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

/*
 * Staging (reclaim.c) gets a userfaultfd of its own: UFFDIO_MOVE needs its
 * destination registered with the context it is issued on, and nothing
 * else. This context has no events, so MADV_DONTNEED empties staging
 * without a REMOVE to wait for (a handler doing direct reclaim would wait
 * for another handler to read it), and staging never has to be
 * unregistered and registered again around the discard: UFFDIO_REGISTER
 * and UNREGISTER take mmap_lock for write, 38-42 ms p50 beside a thread
 * looping mprotect (DESIGN.md). SIGBUS mode: a stray touch of an empty
 * staging page by the library is a signal, not a wait for a reader that
 * does not exist.
 */
int uffd_open_staging(struct ufp_pager *p, uintptr_t start, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS };
	struct uffdio_register reg = { .range = { start, len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	bool via_dev;
	int fd = uffd_new(O_CLOEXEC | O_NONBLOCK, &via_dev), err;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg)) {
		err = -errno;
		close(fd);
		return err;
	}
	p->reclaim.staging_uffd = fd;
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
			stats_add(ts, UFP_C_ioctl_eagain, 1);
			return done ? (long)done : -EAGAIN;
		case EEXIST:
			stats_add(ts, UFP_C_ioctl_eexist, 1);
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
			stats_add(ts, UFP_C_ioctl_enoent, 1);
			return done ? (long)done : -ENOENT;
		case ESRCH:
			stats_add(ts, UFP_C_ioctl_esrch, 1);
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
	       uintptr_t src, size_t len, unsigned flags)
{
	/* the kernel checks only that dst is registered with the fd's context */
	int fd = (flags & UFP_MOVE_TO_STAGING) ? p->reclaim.staging_uffd : p->uffd;
	size_t done = 0;

	while (done < len) {
		struct uffdio_move m = {
			.dst = dst + done, .src = src + done, .len = len - done,
			.mode = ((flags & UFP_MOVE_SRC_HOLES) ? UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES : 0) |
				((flags & UFP_MOVE_DONTWAKE) ? UFFDIO_MOVE_MODE_DONTWAKE : 0),
		};

		if (ufp_unlikely(inject_on()) && inject_hit(INJ_EAGAIN)) {
			stats_add(ts, UFP_C_ioctl_eagain, 1);   /* injected */
			if ((flags & UFP_MOVE_NOWAIT) && !done)
				return -EAGAIN;
			sched_yield();
			continue;
		}
		if (ioctl(fd, UFFDIO_MOVE, &m) == 0)
			return (long)len;
		if (m.move > 0) {
			done += (size_t)m.move;
			continue;
		}
		if (errno == EAGAIN) {
			stats_add(ts, UFP_C_ioctl_eagain, 1);
			if ((flags & UFP_MOVE_NOWAIT) && !done)
				return -EAGAIN;
			sched_yield();
			continue;
		}
		/* Linux 6.18 may move a uffd-wp page and still fail with EEXIST
		 * (tests/kernel_move_wp_race.c); our destinations are empty, so
		 * a page found there is the one we moved. The same race can
		 * leave the move's internal retry looking at the source it has
		 * just emptied: -ENOENT without ALLOW_SRC_HOLES (with it, that
		 * hole counted as moved). Taken for a zapped page, the moved
		 * page's entry went back to "present" and the next fault
		 * filled zeros (test_stress under ASan, once). */
		if ((errno == EEXIST || errno == ENOENT) &&
		    uffd_move_landed(p, dst + done, src + done)) {
			stats_add(ts, UFP_C_moves_misreported, 1);
			done += UFP_PAGE_SIZE;
			continue;
		}
		return done ? (long)done : -errno;
	}
	return (long)done;
}

