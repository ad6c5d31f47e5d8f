/* SPDX-License-Identifier: MIT */
/*
 * export.c - the live statistics segment: each pager (unless
 * UFPAGER_EXPORT_STATS=0 or UFP_PF_NO_EXPORT) publishes its merged stats
 * and its busiest regions in /dev/shm/ufpager.<pid>.<id>, mode 0600, so
 * `ufpagerctl stats PID` and `ufpagerctl top PID` can read a live process.
 *
 * Concurrency contract: one exporter thread per pager writes the segment
 * every UFP_EXPORT_MS under a sequence counter (odd while writing; relaxed
 * stores inside, release on the closing increment); readers copy and retry
 * until they see the same even sequence before and after. Nothing on the
 * fault path touches the segment. The reader validates everything: magic,
 * version, sizes against the file size, the owner, the pid.
 */
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "sys.h"
#include "futex.h"
#include "stats.h"
#include "thread.h"
#include "vma_locks.h"
#include "region.h"
#include "pager.h"
#include "export.h"
#include "ufp_export.h"
#include "sandbox.h"

#define UFP_EXPORT_MS 200

/*
 * Segments this process created, so that a program that exits without
 * ufp_pager_destroy leaves none behind: a destructor (runs at exit and at
 * dlclose) unlinks them. The pid guards against a fork child's exit
 * unlinking its parent's segments.
 */
static pthread_mutex_t seg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	pid_t pid;
	char name[64];
} segs[UFP_MAX_PAGERS];

static void seg_note(const char *name, bool add)
{
	pthread_mutex_lock(&seg_lock);
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++) {
		if (add && !segs[i].pid) {
			segs[i].pid = getpid();
			snprintf(segs[i].name, sizeof(segs[i].name), "%s", name);
			break;
		}
		if (!add && segs[i].pid && !strcmp(segs[i].name, name)) {
			segs[i].pid = 0;
			break;
		}
	}
	pthread_mutex_unlock(&seg_lock);
}

__attribute__((destructor)) static void seg_cleanup_at_exit(void)
{
	pid_t self = getpid();

	/* no lock: other threads may be gone mid-update at exit; a torn
	 * entry only fails to unlink */
	for (unsigned i = 0; i < UFP_MAX_PAGERS; i++)
		if (segs[i].pid == self)
			shm_unlink(segs[i].name);
}

static void copy_u64s(_Atomic uint64_t *dst, const uint64_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		atomic_store_explicit(&dst[i], src[i], memory_order_relaxed);
}

struct top_ctx {
	struct ufp_export_region rows[UFP_EXPORT_ROWS];
	unsigned n;
	const struct rc_snap *snap;    /* every thread's per-region slots */
	size_t nsnap;
};

/* Keep the UFP_EXPORT_ROWS regions with the most faults. */
static void top_region(struct ufp_region *r, void *arg)
{
	struct top_ctx *t = arg;
	struct ufp_export_region row = {
		.start = region_start(r), .end = region_end(r), .prot = (uint64_t)region_prot(r),
		.flags = r->flags,
	};
	uint64_t n[RC_NR];
	unsigned i;

	region_counts_sum(r, t->snap, t->nsnap, n);
	row.faults = n[RC_FAULTS];
	row.lock[0] = n[RC_SUCCESS];
	row.lock[1] = n[RC_ABORT];
	row.lock[2] = n[RC_RETRY];
	row.lock[3] = n[RC_MISS];
	if (t->n == UFP_EXPORT_ROWS && row.faults <= t->rows[t->n - 1].faults)
		return;
	i = t->n < UFP_EXPORT_ROWS ? t->n++ : t->n - 1;
	while (i > 0 && t->rows[i - 1].faults < row.faults) {
		t->rows[i] = t->rows[i - 1];
		i--;
	}
	t->rows[i] = row;
}

static void export_once(struct ufp_pager *p)
{
	struct ufp_export *e = p->exp.seg;
	struct ufp_stats st = { .size = sizeof(st), .version = UFP_STATS_VERSION };
	struct top_ctx top = { .n = 0 };

	struct rc_snap *snap = NULL;

	pager_stats_fill(p, &st);   /* not the public call: no signal guard here */
	/* the slots first (stats_lock is a leaf: not under the pager lock) */
	top.nsnap = region_counts_snapshot(p, &snap);
	top.snap = snap;
	pager_read_lock(p);   /* a stable tree for the walk; never on the fault path */
	region_tree_walk(&p->tree, top_region, &top);
	pager_read_unlock(p);
	slab_free(snap);

	/* relaxed: the sequence brackets the update */
	uint64_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
	atomic_store_explicit(&e->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);   /* pairs with the reader's acquire fence */
	copy_u64s((_Atomic uint64_t *)(void *)&e->stats, (const uint64_t *)(const void *)&st,
		  sizeof(st) / 8);
	copy_u64s((_Atomic uint64_t *)(void *)e->rows, (const uint64_t *)(const void *)top.rows,
		  sizeof(top.rows) / 8);
	atomic_store_explicit(&e->nrows, (uint64_t)top.n, memory_order_relaxed);
	atomic_store_explicit(&e->update_ns, ufp_now_ns(), memory_order_relaxed);
	/* release: pairs with the reader's acquire load of seq */
	atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
}

static void *export_main(void *arg)
{
	struct ufp_pager *p = arg;

	thread_mark_service(true);   /* ours: no I/O context, RCU registered */
	thread_enter(p);             /* its counter block, before the filter */
	sandbox_enter(p, SB_EXPORTER);
	while (!atomic_load_explicit(&p->exp.stop, memory_order_acquire)) {
		uint32_t w = atomic_load_explicit(&p->exp.futex, memory_order_acquire);
		struct timespec ts = { 0, UFP_EXPORT_MS * 1000000L };

		export_once(p);
		futex_wait(&p->exp.futex, w, &ts);
	}
	export_once(p);
	return NULL;
}

int export_start(struct ufp_pager *p)
{
	struct ufp_export *e;
	int fd;

	if (!p->opt.export_stats)
		return 0;
	snprintf(p->exp.name, sizeof(p->exp.name), "/ufpager.%d.%llu", (int)getpid(),
		 (unsigned long long)p->id);
	fd = shm_open(p->exp.name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* the name carries our pid: a segment under it was left by a
		 * dead process that had this pid before (pids are reused; a
		 * killed process unlinks nothing). It is stale: replace it. */
		shm_unlink(p->exp.name);
		fd = shm_open(p->exp.name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		/* observability must not stop the pager: run without it and say so */
		ufp_set_error("ufpager: no stats export (/dev/shm%s: %s); running without "
			      "live stats", p->exp.name, strerror(errno));
		ufp_log("%s\n", ufp_last_error());
		return 0;
	}
	/*
	 * Reserve the memory before mapping it: ftruncate alone makes a sparse
	 * file, and touching a page that tmpfs cannot back (a full /dev/shm)
	 * raises SIGBUS. posix_fallocate fails cleanly instead.
	 */
	int ferr = posix_fallocate(fd, 0, sizeof(*e));
	if (ferr) {
		close(fd);
		shm_unlink(p->exp.name);
		ufp_set_error("ufpager: no stats export (/dev/shm%s: %s); running without "
			      "live stats", p->exp.name, strerror(ferr));
		ufp_log("%s\n", ufp_last_error());
		return 0;
	}
	e = sys_mmap(NULL, sizeof(*e), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (e == MAP_FAILED) {
		shm_unlink(p->exp.name);
		return 0;
	}
	memset(e, 0, sizeof(*e));
	e->magic = UFP_EXPORT_MAGIC;
	e->version = UFP_EXPORT_VERSION;
	e->header_size = offsetof(struct ufp_export, stats);
	e->stats_size = sizeof(struct ufp_stats);
	e->row_size = sizeof(struct ufp_export_region);
	e->max_rows = UFP_EXPORT_ROWS;
	e->total_size = sizeof(*e);
	e->pid = (uint64_t)getpid();
	e->pager_id = p->id;
	e->lock_mode = p->lock_mode;
	e->delivery = p->delivery;
	e->budget = p->opt.budget;
	p->exp.seg = e;
	if (service_start(&p->exp.worker, export_main, p)) {
		sys_munmap(e, sizeof(*e));
		shm_unlink(p->exp.name);
		p->exp.seg = NULL;
		return 0;
	}
	seg_note(p->exp.name, true);
	return 0;
}

void export_stop(struct ufp_pager *p)
{
	if (p->exp.worker.started)
		atomic_store_explicit(&p->exp.stop, true, memory_order_release);
	service_stop(&p->exp.worker, &p->exp.futex);
	if (p->exp.seg) {
		sys_munmap(p->exp.seg, sizeof(struct ufp_export));
		shm_unlink(p->exp.name);
		seg_note(p->exp.name, false);
		p->exp.seg = NULL;
	}
}

/* ======================================================================
 * Reader (ufpagerctl, tests): validate and copy a segment.
 * ====================================================================== */

int ufp_export_read_fd(int fd, const char *path, struct ufp_export *out, char *why,
		       size_t whylen)
{
	struct stat sb;
	const struct ufp_export *e;
	int err = 0;

	if (fstat(fd, &sb)) {
		snprintf(why, whylen, "cannot stat %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file (a FIFO, device or directory): "
			 "not a ufpager segment", path);
		return -EINVAL;
	}
	if (sb.st_uid != geteuid() && geteuid() != 0) {
		snprintf(why, whylen, "%s belongs to uid %u, not to you", path, sb.st_uid);
		return -EPERM;
	}
	if ((size_t)sb.st_size < offsetof(struct ufp_export, stats)) {
		snprintf(why, whylen, "%s is truncated (%lld bytes): not a ufpager segment", path,
			 (long long)sb.st_size);
		return -EBADMSG;
	}
	if ((uint64_t)sb.st_size > sizeof(*e)) {
		/* never map more than the layout: an exporter writes exactly that */
		snprintf(why, whylen, "%s: size %lld, this tool's layout is %zu bytes (malformed)",
			 path, (long long)sb.st_size, sizeof(*e));
		return -EBADMSG;
	}
	e = sys_mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (e == MAP_FAILED) {
		snprintf(why, whylen, "cannot map %s: %s", path, strerror(errno));
		return -errno;
	}
	if (e->magic != UFP_EXPORT_MAGIC) {
		snprintf(why, whylen, "%s: bad magic: not a ufpager segment", path);
		err = -EBADMSG;
	} else if (e->version != UFP_EXPORT_VERSION) {
		snprintf(why, whylen, "%s: layout version %u, this tool reads %u", path,
			 e->version, UFP_EXPORT_VERSION);
		err = -EPROTO;
	} else if ((uint64_t)sb.st_size != sizeof(*e) ||
		   e->header_size != offsetof(struct ufp_export, stats) ||
		   e->stats_size != sizeof(struct ufp_stats) ||
		   e->row_size != sizeof(struct ufp_export_region) ||
		   e->max_rows != UFP_EXPORT_ROWS || e->total_size != sizeof(*e)) {
		snprintf(why, whylen, "%s: size %lld or the sizes it records do not match this "
			 "tool's layout (malformed)", path, (long long)sb.st_size);
		err = -EBADMSG;
	}
	for (int tries = 0; !err; tries++) {
		/* acquire: pairs with the exporter's closing release store */
		uint64_t s1 = atomic_load_explicit(&((struct ufp_export *)e)->seq, memory_order_acquire);

		/* word by word with relaxed loads: the writer may be mid-update */
		for (size_t w = 0; w < sizeof(*out) / 8; w++)
			((uint64_t *)(void *)out)[w] = atomic_load_explicit(
				&((_Atomic uint64_t *)(void *)e)[w], memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		uint64_t s2 = atomic_load_explicit(&((struct ufp_export *)e)->seq, memory_order_relaxed);

		if (!(s1 & 1) && s1 == s2)
			break;
		if (tries > 1000) {
			snprintf(why, whylen, "%s: the writer never finished an update", path);
			err = -EAGAIN;
		}
		usleep(100);
	}
	if (!err && out->nrows > UFP_EXPORT_ROWS) {
		snprintf(why, whylen, "%s: %llu rows exceed the maximum (malformed)", path,
			 (unsigned long long)out->nrows);
		err = -EBADMSG;
	}
	sys_munmap((void *)e, (size_t)sb.st_size);
	return err;
}

int ufp_export_read(const char *path, struct ufp_export *out, char *why, size_t whylen)
{
	/* O_NONBLOCK: opening a FIFO planted at the path must not wait for a
	 * writer; O_NOFOLLOW: a segment is never a symbolic link */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC), err;

	if (fd < 0) {
		err = -errno;
		snprintf(why, whylen, "cannot open %s: %s", path,
			 err == -ELOOP ? "a symbolic link, not a ufpager segment" : strerror(-err));
		return err;
	}
	err = ufp_export_read_fd(fd, path, out, why, whylen);
	close(fd);
	return err;
}
