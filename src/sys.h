/* SPDX-License-Identifier: MIT */
/*
 * sys.h - the library's own memory system calls (mmap, munmap, mprotect,
 * madvise, mremap), made directly rather than through libc's symbols.
 *
 * Those symbols can be interposed: `ufpagerctl run`'s preload routes a
 * program's anonymous mmap and its munmap/mprotect/madvise on pager
 * ranges to the pager. The library's own calls (reserving and replacing
 * arena ranges, staging, its slab, the export segment) must reach the
 * kernel: going through the preload they came back into the library
 * (a MAP_FIXED over an arena range became ufp_unmap inside ufp_unmap,
 * which waited for its own pager lock: a JVM hung at exit), or put the
 * library's own memory on a pager. Sanitizer builds keep libc's calls:
 * their interceptors keep the shadow memory right, and the preload does
 * not run there.
 */
#ifndef UFP_SYS_H
#define UFP_SYS_H

#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(UFP_SANITIZE_BUILD) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define sys_mmap mmap
#define sys_munmap munmap
#define sys_mprotect mprotect
#define sys_madvise madvise
#define sys_mremap mremap
#else
/* As the libc calls: -1 (MAP_FAILED) and errno on failure. */
static inline void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static inline int sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

static inline int sys_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

static inline int sys_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

/* new_addr only with MREMAP_FIXED, as mremap(2) */
static inline void *sys_mremap(void *old, size_t old_len, size_t new_len, int flags,
			       void *new_addr)
{
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}
#endif

#endif /* UFP_SYS_H */
