#!/usr/bin/env bash
# The Linux newcomer path behind `make run`: installs what is missing, builds
# vmnetbar and a Debian 12 cloud image (once, from Debian packages; cached),
# keeps gvproxy running as the stand-in for socket_vmnet (restarted whenever
# it exits, as launchd's KeepAlive restarts socket_vmnet) and starts vmnetbar
# with a VM booting that image (EFI, cloud-init: your user, your SSH keys).
# `./vmnetbar ssh dev` logs in: gvproxy forwards 127.0.0.1:2222 to the
# guest's port 22 (ssh_address), since gvproxy ends the guest's TCP in user
# space and the host cannot route to the guest. The tray appears where a
# tray host (StatusNotifierItem) runs; otherwise vmnetbar prints a status
# line per change. Nothing changes the host's own network.
#
# Everything it writes lives in .run/ in the repository (config, gvproxy
# socket and log, the VM's state). Environment:
#   RUN_DIR=DIR          use DIR instead of .run/
#   ACCEL=tcg|kvm|auto   QEMU accelerator (default tcg: works everywhere)
#   GUEST=busybox        the small test guest (kernel + initramfs) instead
#   SSH_PORT=N           the host port gvproxy forwards to the guest's SSH
#                        (default 2222)
#   HEADLESS=1           no tray, status lines only
#   VMNETBAR_ARGS=...    extra arguments for `vmnetbar run`
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=${RUN_DIR:-$root/.run}
say() { echo "make run: $*" >&2; }

# 1. Packages: QEMU, busybox and cpio for the test guest, OVMF for EFI, the
# image's build tools, dbus for the tray, ssh.
APT_INSTALL_FOR="make run" scripts/apt-install.sh qemu-system-x86 busybox-static cpio dbus ovmf openssh-client
if [[ ${GUEST:-} != busybox ]]; then
	APT_INSTALL_FOR="make run" scripts/apt-install.sh mmdebstrap qemu-utils dosfstools mtools fdisk grub-efi-amd64-bin e2fsprogs
fi

# 2. vmnetbar, gvproxy and the guest.
make --no-print-directory build gvproxy >&2
gvproxy=$root/.tools/bin/gvproxy

mkdir -p "$run"
sock=$run/gvproxy.sock
config=$run/config.yaml
if [[ ${GUEST:-} != busybox ]]; then
	# The image's build needs root (mmdebstrap): through sudo when needed.
	say "the Debian cloud image: built once (a few minutes), then cached"
	if [[ $(id -u) == 0 ]]; then
		image=$(internal/testimage/build.sh)
	else
		# The cache stays the user's: made by the user first, and what root
		# built in it handed back.
		cache=${XDG_CACHE_HOME:-$HOME/.cache}/vmnetbar/testimage
		mkdir -p "$cache"
		image=$(sudo env XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}" internal/testimage/build.sh)
		sudo chown -R "$(id -u):$(id -g)" "$cache"
	fi
	config=$run/config-image.yaml
	if [[ ! -f $config ]]; then
		cat >"$config" <<CONFIG
# vmnetbar config written by make run: a Debian 12 cloud image on gvproxy.
vms:
  dev:
    image: $image
    disk_size: 8GiB
    cpus: 2
    memory: 1GiB
    accel: ${ACCEL:-tcg}
    # gvproxy's DHCP gives this MAC 192.168.127.2, whose port 22 it
    # forwards to 127.0.0.1:${SSH_PORT:-2222} ('vmnetbar ssh dev' goes there).
    mac: "5a:94:ef:e4:0c:ee"
    ssh_address: 127.0.0.1:${SSH_PORT:-2222}
    network:
      socket: $sock
CONFIG
	else
		# The image and the port gvproxy forwards SSH from follow this run.
		sed -i -e "s|^    image: .*|    image: $image|" \
			-e "s|^    ssh_address: 127\.0\.0\.1:[0-9]*\$|    ssh_address: 127.0.0.1:${SSH_PORT:-2222}|" \
			-e "s|forwards to 127\.0\.0\.1:[0-9]* |forwards to 127.0.0.1:${SSH_PORT:-2222} |" "$config"
		if [[ -n ${ACCEL:-} ]]; then sed -i "s|^    accel: .*|    accel: $ACCEL|" "$config"; fi
	fi
	ssh_port=${SSH_PORT:-2222}
elif [[ ! -f $config ]]; then
	mapfile -t guest < <(internal/testguest/build.sh)
	kernel=${guest[0]} initrd=${guest[1]}
	cat >"$config" <<CONFIG
# vmnetbar config written by make run: the test guest on gvproxy.
vm:
  kernel: $kernel
  initrd: $initrd
  # The guest pings its gateway (inside gvproxy) every 2 s; see console.log.
  cmdline: "console=ttyS0 quiet panic=-1 vmnetbar.ping=forever vmnetbar.interval=2"
  cpus: 1
  memory: 256MiB
  console_log: console.log
  accel: ${ACCEL:-tcg}
network:
  socket: $sock
autostart_vm: true
CONFIG
else
	# Keep the user's file but point it at the current guest build.
	mapfile -t guest < <(internal/testguest/build.sh)
	kernel=${guest[0]} initrd=${guest[1]}
	sed -i -e "s|^  kernel: .*|  kernel: $kernel|" -e "s|^  initrd: .*|  initrd: $initrd|" "$config"
	if [[ -n ${ACCEL:-} ]]; then sed -i "s|^  accel: .*|  accel: $ACCEL|" "$config"; fi
fi

# 3. gvproxy under a restart loop. gvproxy serves one client and exits when
# it leaves; the loop brings it back, as launchd does for socket_vmnet.
keepalive() {
	while :; do
		rm -f "$sock"
		"$gvproxy" -listen-qemu "unix://$sock" -ssh-port "${ssh_port:--1}" >>"$run/gvproxy.log" 2>&1 || true
		sleep 0.2
	done
}
# The loop runs in its own process group (job control on for that one
# command), so that cleanup can stop the loop and its gvproxy together and a
# Ctrl-C does not make it start a new gvproxy while the VM shuts down.
set -m
keepalive &
loop=$!
set +m
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
cleanup() {
	kill -- -"$loop" 2>/dev/null || true
	wait "$loop" 2>/dev/null || true
	rm -f "$sock"
}
trap cleanup EXIT

args=(run --config "$config")
[[ -n ${HEADLESS:-} ]] && args+=(--headless)
# shellcheck disable=SC2206
args+=(${VMNETBAR_ARGS:-})
say "starting vmnetbar (config $config)"
if [[ -n ${ssh_port:-} ]]; then
	say "in another terminal: ./vmnetbar ssh dev (waits for the guest: 1-3 minutes under TCG), ./vmnetbar list, ./vmnetbar status dev"
else
	say "in another terminal: ./vmnetbar status, ./vmnetbar watch, ./vmnetbar reconnect"
fi
# Not exec: the EXIT trap must stop gvproxy when vmnetbar ends. vmnetbar runs
# in its own session so that Ctrl-C reaches it once, through this script (a
# second signal would make it skip the graceful stop); the script then waits
# for the VM to stop.
setsid "$root/vmnetbar" "${args[@]}" &
app=$!
trap 'kill -TERM "$app" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$app" 2>/dev/null; do
	wait "$app" && status=0 || status=$?
done
exit "$status"
