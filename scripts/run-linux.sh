#!/usr/bin/env bash
# The Linux newcomer path behind `make run`: installs what is missing, builds
# vmnetbar and the test guest, keeps gvproxy running as the stand-in for
# socket_vmnet (restarted whenever it exits, as launchd's KeepAlive restarts
# socket_vmnet) and starts vmnetbar with that guest. The tray appears where a
# tray host (StatusNotifierItem) runs; otherwise vmnetbar prints a status
# line per change.
#
# Everything it writes lives in .run/ in the repository (config, gvproxy
# socket and log, console log). Environment:
#   RUN_DIR=DIR          use DIR instead of .run/
#   ACCEL=tcg|kvm|auto   QEMU accelerator (default tcg: works everywhere)
#   HEADLESS=1           no tray, status lines only
#   VMNETBAR_ARGS=...    extra arguments for `vmnetbar run`
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=${RUN_DIR:-$root/.run}
say() { echo "make run: $*" >&2; }

# 1. Packages: QEMU, busybox and cpio for the guest, dbus for the tray.
APT_INSTALL_FOR="make run" scripts/apt-install.sh qemu-system-x86 busybox-static cpio dbus

# 2. vmnetbar, gvproxy and the guest.
make --no-print-directory build gvproxy >&2
mapfile -t guest < <(internal/testguest/build.sh)
kernel=${guest[0]} initrd=${guest[1]}
gvproxy=$root/.tools/bin/gvproxy

mkdir -p "$run"
sock=$run/gvproxy.sock
config=$run/config.yaml
if [[ ! -f $config ]]; then
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
	sed -i -e "s|^  kernel: .*|  kernel: $kernel|" -e "s|^  initrd: .*|  initrd: $initrd|" "$config"
	if [[ -n ${ACCEL:-} ]]; then sed -i "s|^  accel: .*|  accel: $ACCEL|" "$config"; fi
fi

# 3. gvproxy under a restart loop. gvproxy serves one client and exits when
# it leaves; the loop brings it back, as launchd does for socket_vmnet.
keepalive() {
	while :; do
		rm -f "$sock"
		"$gvproxy" -listen-qemu "unix://$sock" -ssh-port -1 >>"$run/gvproxy.log" 2>&1 || true
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
say "starting vmnetbar (config $config; console log $run/console.log)"
say "in another terminal: ./vmnetbar status, ./vmnetbar watch, ./vmnetbar reconnect"
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
