#!/usr/bin/env bash
# Build ufpager (release) and run the default benchmark comparison.
# Usage: scripts/run.sh [ufpagerctl bench options...]   (e.g. --quick, --json out.json)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ufp_install_deps gnuplot-nox
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DUFP_BUILD_TESTS=OFF >/dev/null
cmake --build build-rel -j"$(nproc)" >/dev/null
./build-rel/ufpagerctl check >/dev/null || { ./build-rel/ufpagerctl check; exit 1; }
mkdir -p out
exec ./build-rel/ufpagerctl bench --json out/bench.json --plot out/plots "$@"
