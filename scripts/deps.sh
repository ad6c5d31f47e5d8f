#!/usr/bin/env bash
# Install the Debian 12 packages ufpager needs, only those missing
# (libnbd-dev: swap over NBD, nbdkit/nbd-server: its tests, nbdkit-plugin-dev:
# the bench's latency filter; libjemalloc-dev: the heap's jemalloc; man-db:
# the install test renders the man pages with man -l).
# Sourced by run.sh and test.sh; needs root (apt-get) when something is missing.
ufp_install_deps() {
	# the fourth line: the programs the apps label runs under `ufpagerctl run`
	local pkgs=(build-essential cmake pkg-config liburing-dev liburcu-dev libseccomp-dev
		    check liblz4-dev libxxhash-dev libnbd-dev nbdkit nbd-server nbdkit-plugin-dev
		    libjemalloc-dev man-db
		    python3 sqlite3 stress-ng redis-server redis-tools default-jre-headless
		    zlib1g "$@")
	local missing=()
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "ufpager: installing missing packages: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "ufpager: need root to install them (sudo $0)" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# clang and its libFuzzer runtime (libclang-rt-14-dev on Debian 12) for the
# fuzz suite. Never fatal: returns 1 (the suite then skips) when they are
# missing and cannot be installed.
ufp_install_fuzz_deps() {
	command -v clang >/dev/null && dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
		grep -q "install ok installed" && return 0
	ufp_install_deps clang libclang-rt-14-dev 2>/dev/null || return 1
	command -v clang >/dev/null
}
