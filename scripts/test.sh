#!/usr/bin/env bash
# Build ufpager and run the whole test suite three times: a debug build
# (assertions, lock-order checker), ASan+UBSan, and ThreadSanitizer on the
# race and stress tests; then a fourth build with clang for the bounded
# libFuzzer runs (label fuzz, about a minute; skipped, not failed, when
# clang cannot be had). Tests that need a missing kernel feature skip (77).
# Usage: scripts/test.sh [--stress]   (--stress adds the long stress label)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ufp_install_deps
jobs=$(nproc)
labels_default='unit|race|bench'
[ "${1:-}" = "--stress" ] && labels_default='unit|race|bench|stress'
fail=0
suite() {   # name, cmake args, ctest label regex, env
	local name=$1 args=$2 labels=$3
	echo "=== $name: building"
	cmake -S . -B "build-$name" -DUFP_BUILD_TESTS=ON $args >/dev/null
	cmake --build "build-$name" -j"$jobs" >/dev/null
	echo "=== $name: testing (labels $labels)"
	if ! (cd "build-$name" && ctest --output-on-failure -L "$labels" --timeout 900); then
		fail=1
	fi
}
# the debug stage also runs real programs under `ufpagerctl run` (label
# apps); the sanitizer stages cannot: their runtime must come first in
# LD_PRELOAD, before the preload's malloc
suite debug "-DUFP_DEBUG=ON -DCMAKE_BUILD_TYPE=Debug" "$labels_default|apps"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	suite asan "-DUFP_DEBUG=ON -DUFP_SANITIZE=address,undefined" "$labels_default"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
UFP_STRESS_SECONDS=${UFP_STRESS_SECONDS:-5} \
	suite tsan "-DUFP_SANITIZE=thread" "race"
if ufp_install_fuzz_deps; then
	CC=clang suite fuzz "-DUFP_BUILD_TESTS=OFF -DUFP_FUZZ=ON -DUFP_DEBUG=ON" "fuzz"
else
	echo "=== fuzz: SKIPPED: clang with libFuzzer (clang, libclang-rt-14-dev) is missing and cannot be installed"
fi
if [ $fail -ne 0 ]; then
	echo "ufpager: TEST SUITE FAILED"
	exit 1
fi
echo "ufpager: all test suites passed"
