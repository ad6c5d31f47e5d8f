#!/usr/bin/env bash
# Install the Debian 12 packages ufpager needs, only those missing.
# Sourced by run.sh and test.sh; needs root (apt-get) when something is missing.
ufp_install_deps() {
	local pkgs=(build-essential cmake pkg-config liburing-dev liburcu-dev libseccomp-dev
		    check liblz4-dev libxxhash-dev "$@")
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
