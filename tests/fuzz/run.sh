#!/bin/sh
# A bounded libFuzzer run (the ctest entries fuzz_*): every input of the
# committed corpus first, then SECONDS of fuzzing from it. New inputs go to
# WORK/new and a crashing input to WORK/crash-*, never into the corpus.
# Usage: run.sh FUZZER CORPUS WORK SECONDS [libFuzzer options...]
# Exit: 0 clean, 77 this machine cannot run the target (it says why),
# anything else a finding (the crash file is named in the output).
set -eu
fuzzer=$1 corpus=$2 work=$3 seconds=$4
shift 4
mkdir -p "$work/new"
exec "$fuzzer" -max_total_time="$seconds" -runs=5000000 -timeout=20 -max_len=8192 \
	-print_final_stats=1 -artifact_prefix="$work/" "$@" "$work/new" "$corpus"
