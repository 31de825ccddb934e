#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet,
# with apt-get: directly as root, otherwise through sudo (non-interactive
# when stdin is not a terminal, so CI never waits for a password).
#
# Usage: scripts/apt-install.sh PACKAGE...
# Environment: APT_INSTALL_FOR names the caller in messages (default
# apt-install), e.g. "make run" or "ci".
#
# Exit status: 0 when every package is installed; 2 when some are missing and
# cannot be installed here (not root and no sudo, or no apt-get: the message
# says what to install by hand); 1 when apt-get fails.
set -euo pipefail
who=${APT_INSTALL_FOR:-apt-install}
say() { echo "$who: $*" >&2; }

if (($# == 0)); then
	say "usage: scripts/apt-install.sh PACKAGE..."
	exit 2
fi

missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	say "${missing[*]} missing and there is no apt-get: install them with your package manager"
	exit 2
fi
as_root=()
if [[ $(id -u) != 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		say "${missing[*]} missing: run as root, or install them first (apt-get install ${missing[*]})"
		exit 2
	fi
	as_root=(sudo)
	[[ -t 0 ]] || as_root+=(-n)
fi
say "installing ${missing[*]}"
# env passes the setting through sudo, which would otherwise drop it.
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120)
"${as_root[@]+"${as_root[@]}"}" "${apt[@]}" update -qq || { say "apt-get update failed"; exit 1; }
"${as_root[@]+"${as_root[@]}"}" "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" ||
	{ say "apt-get install ${missing[*]} failed"; exit 1; }
