#!/usr/bin/env bash
# Builds the vmnetbar test guest: a Debian cloud kernel and a busybox
# initramfs whose /init (rootfs/init) brings up eth0 with DHCP (or the static
# address the kernel command line gives) and pings the gateway as the kernel
# command line asks.
#
# Usage: build.sh
#
# Prints two lines on stdout: the kernel path, then the initrd path. Progress
# goes to stderr. The result is cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/vmnetbar/testguest/<hash of this script and rootfs/>
# so later runs print the cached paths at once.
#
# Needs: bash, sha256sum, flock, cpio, gzip, dpkg-deb, apt-get (Debian),
# and busybox-static (/bin/busybox, statically linked). The kernel package is
# fetched with `apt-get download`; when the package lists are missing or stale
# and the script runs as root, it runs `apt-get update` once.
#
# Exit status: 0 on success, 2 when a dependency is missing (the message on
# stderr names it and how to install it), 1 on any other failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "testguest: $*" >&2; exit 1; }
missing() { echo "testguest: missing dependency: $*" >&2; exit 2; }
log() { echo "testguest: $*" >&2; }

# The modules the guest loads, with their dependencies resolved below.
# virtio_pci + virtio_net: the NIC. button + evdev: the ACPI power button
# as an input device, which busybox acpid turns into a power-off.
MODULES=(virtio_pci virtio_net button evdev)

for tool in sha256sum flock cpio gzip dpkg-deb apt-get apt-cache find sort; do
	command -v "$tool" >/dev/null 2>&1 || missing "$tool (Debian: apt-get install cpio gzip dpkg apt coreutils util-linux findutils)"
done
BUSYBOX=${VMNETBAR_BUSYBOX:-/bin/busybox}
[[ -x $BUSYBOX ]] || missing "busybox-static ($BUSYBOX not found; apt-get install busybox-static)"
LC_ALL=C grep -qa '/ld-linux' "$BUSYBOX" && missing "busybox-static ($BUSYBOX is dynamically linked; apt-get install busybox-static)"
[[ -f $here/rootfs/init ]] || die "$here/rootfs/init is missing"

hash=$(cd "$here" && { sha256sum build.sh; find rootfs -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/vmnetbar/testguest
out=$cache_root/$hash
mkdir -p "$cache_root" || die "cannot create cache directory $cache_root"

print_result() { printf '%s\n%s\n' "$out/vmlinuz" "$out/initrd.gz"; }
if [[ -s $out/vmlinuz && -s $out/initrd.gz ]]; then
	print_result
	exit 0
fi

# One build at a time per cache directory; whoever waited finds it done.
exec 9>"$cache_root/.lock"
flock 9
if [[ -s $out/vmlinuz && -s $out/initrd.gz ]]; then
	print_result
	exit 0
fi

work=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The versioned kernel package the metapackage depends on.
kernel_pkg() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}'
}
apt_update() {
	[[ $(id -u) == 0 ]] || missing "the package lists do not list linux-image-cloud-amd64; run 'apt-get update' as root"
	log "apt-get update"
	apt-get -o DPkg::Lock::Timeout=120 update -qq >&2 || die "apt-get update failed"
}
apt_opts=()
[[ $(id -u) == 0 ]] && apt_opts=(-o APT::Sandbox::User=root)
download() {
	(cd "$work" && apt-get "${apt_opts[@]}" download -qq "$1" >&2)
}

pkg=$(kernel_pkg)
if [[ -z $pkg ]]; then
	apt_update
	pkg=$(kernel_pkg)
	[[ -n $pkg ]] || die "linux-image-cloud-amd64 has no linux-image-*-cloud-amd64 dependency in the package lists"
fi
log "downloading $pkg"
if ! download "$pkg"; then
	apt_update
	pkg=$(kernel_pkg)
	download "$pkg" || die "apt-get download $pkg failed"
fi
deb=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
[[ -n $deb ]] || die "apt-get download $pkg produced no .deb"
dpkg-deb -x "$deb" "$work/kpkg"

kver=${pkg#linux-image-}
vmlinuz=$work/kpkg/boot/vmlinuz-$kver
moddir=$work/kpkg/lib/modules/$kver
[[ -f $vmlinuz ]] || die "$deb has no boot/vmlinuz-$kver"
[[ -d $moddir ]] || die "$deb has no lib/modules/$kver"

# Resolve module dependencies from each module's .modinfo section (kmod's
# modinfo need not be installed), in load order. Built-in modules need no file.
declare -A seen=()
ordered=()
module_file() {
	local name=$1 alt=${1//_/-}
	find "$moddir/kernel" \( -name "$name.ko" -o -name "$alt.ko" \) -print -quit
}
add_module() {
	local name=${1//-/_} file deps dep
	[[ -n ${seen[$name]:-} ]] && return 0
	seen[$name]=1
	file=$(module_file "$name")
	if [[ -z $file ]]; then
		grep -Eq "/${name//_/[-_]}\.ko$" "$moddir/modules.builtin" && return 0
		die "kernel $kver has no module $name (neither loadable nor built in)"
	fi
	deps=$(tr '\0' '\n' <"$file" | sed -n 's/^depends=//p' | head -n1)
	for dep in ${deps//,/ }; do
		add_module "$dep"
	done
	ordered+=("$file")
}
for m in "${MODULES[@]}"; do
	add_module "$m"
done

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,lib/modules}
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp -R "$here/rootfs/." "$root/"
chmod 0755 "$root/init" "$root/etc/udhcpc.script" "$root/etc/acpi/PWRF/00000080"
: >"$root/etc/modules"
for f in "${ordered[@]}"; do
	cp "$f" "$root/lib/modules/"
	echo "$(basename "$f")" >>"$root/etc/modules"
done
log "kernel $kver, modules: $(tr '\n' ' ' <"$root/etc/modules")"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) |
	gzip -9 -n >"$work/initrd.gz"
cp "$vmlinuz" "$work/vmlinuz"

mkdir -p "$work/out"
mv "$work/vmlinuz" "$work/initrd.gz" "$work/out/"
rm -rf "$out"
mv "$work/out" "$out"
log "built $out"
print_result
