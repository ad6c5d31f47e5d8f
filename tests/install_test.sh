#!/bin/sh
# install_test.sh CMAKE BUILD_DIR SOURCE_DIR: install the build into a
# temporary prefix and use it as a user would: examples/quickstart.c and
# examples/heap.c built with pkg-config and with a CMake project that says
# find_package(ufpager), run (77 where they cannot run: no userfaultfd);
# the soname, the header's version against ufp_version(), ufpagerctl from
# the prefix, and the man pages rendered by man -l.
set -eu
cmake=$1 build=$2 src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "FAIL: $*"; exit 1; }

"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
	cat "$tmp/install.log"; fail "cmake --install"; }
libdir=$(cd "$prefix" && ls -d lib*/ | head -1)
libdir=$prefix/${libdir%/}
for f in include/ufpager.h bin/ufpagerctl share/man/man1/ufpagerctl.1 share/man/man3/ufpager.3; do
	[ -e "$prefix/$f" ] || fail "not installed: $f"
done
for f in libufpager.so libufpager.so.0 pkgconfig/ufpager.pc cmake/ufpager/ufpagerConfig.cmake \
	 cmake/ufpager/ufpagerConfigVersion.cmake cmake/ufpager/ufpagerTargets.cmake; do
	[ -e "$libdir/$f" ] || fail "not installed: $libdir/$f"
done
soname=$(readelf -d "$libdir/libufpager.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libufpager.so.0 ] || fail "soname is '$soname', not libufpager.so.0"
# the private jemalloc replaces nothing: no malloc among the exports
if nm -D --defined-only "$libdir/libufpager.so" | grep -qwE 'malloc|free|mallocx|calloc'; then
	fail "libufpager.so exports an allocator symbol"
fi

run() {   # name, program: 0 passes, 77 (no userfaultfd here) is accepted
	set +e
	"$2" >"$tmp/$1.out" 2>&1
	rc=$?
	set -e
	[ $rc -eq 0 ] || [ $rc -eq 77 ] || { cat "$tmp/$1.out"; fail "$1 exited $rc"; }
	[ $rc -eq 0 ] || skipped="$skipped $1"
	echo "$1: $(head -1 "$tmp/$1.out")"
}
skipped=

# 1. pkg-config, as the README says
export PKG_CONFIG_PATH=$libdir/pkgconfig
pcver=$(pkg-config --modversion ufpager) || fail "pkg-config does not find ufpager.pc"
"$prefix/bin/ufpagerctl" --version | grep -q "libufpager $pcver" ||
	fail "ufpager.pc says $pcver, the installed ufpagerctl: $("$prefix/bin/ufpagerctl" --version)"
for ex in quickstart heap; do
	cc -Wall -Werror "$src/examples/$ex.c" -o "$tmp/$ex-pc" $(pkg-config --cflags --libs ufpager) \
		-Wl,-rpath,"$libdir"
	run "$ex-pc" "$tmp/$ex-pc"
done

# 2. a CMake project with find_package(ufpager)
mkdir "$tmp/proj"
cp "$src/examples/quickstart.c" "$src/examples/heap.c" "$tmp/proj/"
cat >"$tmp/proj/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(uses_ufpager C)
find_package(ufpager 0.2 REQUIRED)
foreach(ex quickstart heap)
  add_executable(${ex} ${ex}.c)
  target_link_libraries(${ex} PRIVATE ufpager::ufpager)
endforeach()
CM
"$cmake" -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cm.log" 2>&1 ||
	{ cat "$tmp/cm.log"; fail "configuring a find_package(ufpager) project"; }
"$cmake" --build "$tmp/proj/build" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; fail "building it"; }
for ex in quickstart heap; do
	run "$ex-cmake" "$tmp/proj/build/$ex"
done

# 3. the header's version is the library's and the package's
cat >"$tmp/ver.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <ufpager.h>
int main(void)
{
	char h[32];
	snprintf(h, sizeof(h), "%d.%d.%d", UFP_VERSION_MAJOR, UFP_VERSION_MINOR, UFP_VERSION_PATCH);
	printf("%s\n", h);
	return strcmp(h, ufp_version()) != 0;
}
C
cc "$tmp/ver.c" -o "$tmp/ver" $(pkg-config --cflags --libs ufpager) -Wl,-rpath,"$libdir"
v=$("$tmp/ver") || fail "header version $v differs from ufp_version()"
[ "$v" = "$(pkg-config --modversion ufpager)" ] || fail "ufpager.pc says $(pkg-config --modversion ufpager), the header $v"

# 4. the CLI from the prefix, and the man pages
"$prefix/bin/ufpagerctl" --version >/dev/null || fail "installed ufpagerctl does not run"
for m in man1/ufpagerctl.1 man3/ufpager.3; do
	out=$(MANWIDTH=80 man -l "$prefix/share/man/$m" 2>&1) || fail "man -l $m"
	echo "$out" | grep -q NAME || fail "man -l $m rendered no NAME section"
	warn=$(groff -man -ww -z "$prefix/share/man/$m" 2>&1 || true)
	[ -z "$warn" ] || fail "groff warns about $m: $warn"
done
if [ -n "$skipped" ]; then
	echo "SKIP: installed and built; could not run (no userfaultfd):$skipped"
	exit 77
fi
echo "ok: installed into $prefix, built with pkg-config and find_package, ran"
