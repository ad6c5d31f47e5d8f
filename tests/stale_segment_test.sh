#!/bin/sh
# SPDX-License-Identifier: MIT
# stale_segment_test.sh UFPAGERCTL: a live process whose pid an earlier,
# killed process had is not read through that process's leftover segment.
# pid numbers wrap (pid_max 32768 here) and a process killed before
# ufp_pager_destroy leaves /dev/shm/ufpager.<pid>.<id>: `ufpagerctl stats`
# read a stale segment as the new process's (test_stats failed so in CI).
# Makes the pid reuse happen: a segment for a free pid P, then (root)
# ns_last_pid so that the next child gets P.
ctl=$1
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (/proc/sys/kernel/ns_last_pid)"; exit 77; }
[ -w /proc/sys/kernel/ns_last_pid ] || { echo "SKIP: ns_last_pid not writable"; exit 77; }
P=$(( $(cat /proc/sys/kernel/ns_last_pid) + 300 ))
while [ -e /proc/$P ] || ls /dev/shm/ufpager.$P.* >/dev/null 2>&1; do P=$((P + 1)); done
seg=/dev/shm/ufpager.$P.77
trap 'rm -f "$seg"' EXIT
printf 'left by a process that is gone' > "$seg"
sleep 2                                   # older than the next process by > 1 s
echo $((P - 1)) > /proc/sys/kernel/ns_last_pid
sleep 30 &
c=$!
if [ "$c" != "$P" ]; then
	kill $c
	echo "SKIP: another process took pid $P first"
	exit 77
fi
out=$("$ctl" stats $P 2>&1)
rc=$?
kill $c
if [ $rc != 1 ] || ! echo "$out" | grep -q "earlier process with the same pid"; then
	echo "FAIL: ufpagerctl stats $P: exit $rc: $out"
	exit 1
fi
echo "ok: $out"
