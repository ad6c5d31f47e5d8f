/* SPDX-License-Identifier: MIT */
/*
 * ldso_text.h - where the dynamic linker's code is: [lo, hi) of ld.so's
 * executable segment, for telling its allocations (link maps, DTVs, TLS
 * blocks) from the program's by return address. Shared by the preload
 * and test_heap_interpose, which both keep them out of pager memory.
 */
#ifndef UFP_LDSO_TEXT_H
#define UFP_LDSO_TEXT_H

#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct ldso_text {
	uintptr_t lo, hi;
};

static inline int ldso_text_find(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct ldso_text *t = arg;

	(void)size;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "/ld-linux"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			t->lo = info->dlpi_addr + ph->p_vaddr;
			t->hi = t->lo + ph->p_memsz;
		}
	}
	return 1;
}

/* Fill *t; false when ld.so was not found (a static program). */
static inline bool ldso_text_get(struct ldso_text *t)
{
	t->lo = t->hi = 0;
	dl_iterate_phdr(ldso_text_find, t);
	return t->hi != 0;
}

static inline bool ldso_text_has(const struct ldso_text *t, const void *ra)
{
	return (uintptr_t)ra >= t->lo && (uintptr_t)ra < t->hi;
}

#endif /* UFP_LDSO_TEXT_H */
