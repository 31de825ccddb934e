#!/usr/bin/env bash
# Takes docs/tray.png: the vmnetbar menu open in an Xfce panel on a virtual
# X display (Linux). It runs the real app with the test guest under QEMU and
# gvproxy (restarted in a loop, as launchd restarts socket_vmnet), asks for
# two reconnects and clicks the tray icon.
#
# Needs: xvfb xfce4-panel xfconf dbus-x11 xdotool x11-apps x11-utils
# imagemagick (apt-get install ...), qemu-system-x86, `make tools` (gvproxy)
# and the test guest (built by the tests into ~/.cache/vmnetbar/testguest).
#
# usage: docs/tray-screenshot.sh KERNEL INITRD
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
kernel=${1:?usage: $0 KERNEL INITRD}
initrd=${2:?usage: $0 KERNEL INITRD}
gvproxy=$repo/.tools/bin/gvproxy
[ -x "$gvproxy" ] || { echo "gvproxy missing: run make tools" >&2; exit 1; }

work=$(mktemp -d /tmp/vmnb-shot-XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/vmnetbar" .

mkdir -p "$work/home/.config/xfce4/xfconf/xfce-perchannel-xml" "$work/run"
chmod 700 "$work/run"
cat >"$work/home/.config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="28"/>
      <property name="icon-size" type="uint" value="22"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-2" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>
      <property name="icon-size" type="int" value="22"/>
    </property>
  </property>
</channel>
EOF
cat >"$work/config.yaml" <<EOF
vm:
  kernel: $kernel
  initrd: $initrd
  cmdline: "console=ttyS0 quiet panic=-1 vmnetbar.ping=forever vmnetbar.interval=1"
  cpus: 1
  memory: 256MiB
  console_log: $work/console.log
  accel: tcg
network:
  socket: $work/gv.sock
reconnect:
  initial_backoff: 50ms
  max_backoff: 500ms
EOF

# The part that runs inside the private session bus.
cat >"$work/inner.sh" <<'EOF'
#!/usr/bin/env bash
set -u
cd "$WORK"
xfce4-panel >panel.log 2>&1 &
panel=$!
has_watcher() {
	dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus.NameHasOwner string:org.kde.StatusNotifierWatcher 2>/dev/null | grep -q "boolean true"
}
for _ in $(seq 100); do has_watcher && break; sleep 0.1; done
touch run-gv
( while [ -e run-gv ]; do rm -f gv.sock; "$GVPROXY" -listen-qemu "unix://$WORK/gv.sock" -ssh-port -1 >>gv.log 2>&1; done ) &
gvloop=$!
for _ in $(seq 100); do [ -S gv.sock ] && break; sleep 0.1; done
./vmnetbar run --config config.yaml >app.log 2>&1 &
app=$!
for _ in $(seq 300); do ./vmnetbar status --json 2>/dev/null | grep -q '"state":"running"' && break; sleep 0.2; done
sleep 4
./vmnetbar reconnect; sleep 2; ./vmnetbar reconnect; sleep 3
width=$(xdpyinfo | awk '/dimensions/{split($2, a, "x"); print a[1]}')
xdotool mousemove $((width - 14)) 14 click 1
sleep 2
xwd -root -silent -out shot.xwd
xdotool key Escape
kill "$app"; wait "$app"
rm -f run-gv
pkill -P "$gvloop" gvproxy || true
wait "$gvloop" 2>/dev/null
kill "$panel"
EOF
chmod +x "$work/inner.sh"

Xvfb :99 -screen 0 640x400x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb=$!
sleep 1
env HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_RUNTIME_DIR="$work/run" \
	XDG_STATE_HOME="$work/home/.state" XDG_CACHE_HOME="$work/home/.cache" \
	DISPLAY=:99 WORK="$work" GVPROXY="$gvproxy" \
	timeout 300 dbus-run-session -- "$work/inner.sh"
kill "$xvfb"
# The menu opens below the icon at the right end of the 640 px wide panel.
convert "$work/shot.xwd" -crop 290x292+350+0 +repage docs/tray.png
echo "wrote docs/tray.png"
