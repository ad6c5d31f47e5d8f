#!/usr/bin/env python3
"""check_no_malloc.py OBJDIR: no library object but slab.c's calls the
process's allocator (malloc, calloc, realloc, reallocarray, free,
aligned_alloc, posix_memalign, memalign, valloc, strdup, strndup). The
process's malloc may be a ufpager heap, whose extent hooks run library code
under jemalloc's locks (README "The library's own memory never comes from
the heap"): the library's objects come from src/slab.c. Exit 1 naming each
offender."""
import os, subprocess, sys

BANNED = {'malloc', 'calloc', 'realloc', 'reallocarray', 'free', 'aligned_alloc',
          'posix_memalign', 'memalign', 'valloc', 'pvalloc', 'strdup', 'strndup'}
objdir = sys.argv[1]
bad, seen = [], 0
for root, _, files in os.walk(objdir):
    for f in files:
        if not f.endswith('.o') or f == 'slab.c.o':
            continue
        seen += 1
        out = subprocess.run(['nm', '-u', os.path.join(root, f)], capture_output=True,
                             text=True, check=True).stdout
        for line in out.split('\n'):
            p = line.split()
            if p and p[-1].split('@')[0] in BANNED:
                bad.append('%s calls %s (use slab_* from src/base.h)' % (f[:-2], p[-1]))
if not seen:
    sys.exit('no objects under ' + objdir)
for b in bad:
    print(b)
if not bad:
    print('%d objects: none calls the process allocator' % seen)
sys.exit(1 if bad else 0)
