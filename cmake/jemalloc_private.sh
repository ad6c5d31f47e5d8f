#!/bin/sh
# jemalloc_private.sh ARCHIVE OUT AR LD OBJCOPY: one relocatable object
# holding Debian's jemalloc (libjemalloc_pic.a, without its C++ operators)
# in which every symbol is local except the entry points heap.c uses,
# renamed ufp_je_*. Linked into libufpager.so (and the tests' static
# copy), it is a private allocator: it defines no malloc, free or
# mallocx that could interpose the process's own.
set -eu
archive=$1 out=$2 ar=$3 ld=$4 objcopy=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$ar" x "$archive"
rm -f jemalloc_cpp.pic.o jemalloc_cpp.o
"$ld" -r -o all.o ./*.o
set --
for s in mallocx rallocx sallocx dallocx mallctl malloc_conf; do
	set -- "$@" --redefine-sym "$s=ufp_je_$s"
done
"$objcopy" "$@" --wildcard --keep-global-symbol='ufp_je_*' all.o "$out"
