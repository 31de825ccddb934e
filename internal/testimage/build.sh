#!/usr/bin/env bash
# Builds a Debian 12 (bookworm) cloud image for vmnetbar's tests and
# `make run`: an EFI-bootable GPT disk (ESP with GRUB at the fallback path
# \EFI\BOOT\BOOTX64.EFI, ext4 root) with the Debian cloud kernel, systemd,
# systemd-networkd, openssh-server and cloud-init (NoCloud datasource only),
# shipped as a compressed qcow2 as distros ship theirs.
#
# Usage: build.sh
#
# Prints one line on stdout: the path of the qcow2 image. Progress goes to
# stderr. The result is cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/vmnetbar/testimage/<hash of this script>/
# so later runs print the cached path at once. Never modify the cached
# image: boot a copy or a qcow2 overlay of it.
#
# The image has no root password, no SSH host keys (cloud-init generates
# them on the first boot), no user (cloud-init makes the one its user-data
# asks for, or Debian's default "debian") and an empty machine-id. The
# kernel command line is
#   root=UUID=... ro console=tty0 console=hvc0 console=ttyS0,115200
# so the console is the serial port under QEMU and hvc0 under
# Virtualization.framework; it lives in /boot/grub/grub.cfg of the root
# file system, which the GRUB on the ESP loads.
#
# Needs (Debian packages): mmdebstrap, qemu-utils, dosfstools, mtools, fdisk,
# grub-efi-amd64-bin, e2fsprogs, coreutils, util-linux; and root (mmdebstrap
# runs in its root mode: the root file system is made with `mke2fs -d` from
# a directory, so its files must be owned by their real owners). Packages
# come from http://deb.debian.org (override with VMNETBAR_DEBIAN_MIRROR and
# VMNETBAR_DEBIAN_SECURITY_MIRROR). No loop devices and no mounts of the
# image are used: the partitions are made as files and joined with dd.
#
# Exit status: 0 on success, 2 when a dependency is missing (the message on
# stderr names it and how to install it), 1 on any other failure.
set -euo pipefail

die() { echo "testimage: $*" >&2; exit 1; }
missing() { echo "testimage: missing dependency: $*" >&2; exit 2; }
log() { echo "testimage: [$((SECONDS - start))s] $*" >&2; }
start=$SECONDS

export PATH=$PATH:/usr/sbin:/sbin
HOST_PACKAGES="mmdebstrap qemu-utils dosfstools mtools fdisk grub-efi-amd64-bin e2fsprogs"

# Every tool, with the Debian package that has it; all missing ones are
# named at once.
TOOLS=(
	sha256sum:coreutils flock:util-linux du:coreutils truncate:coreutils dd:coreutils
	mmdebstrap:mmdebstrap qemu-img:qemu-utils mkfs.vfat:dosfstools mmd:mtools mcopy:mtools
	sfdisk:fdisk grub-mkimage:grub-efi-amd64-bin mke2fs:e2fsprogs
)
lacking=() packages=()
for t in "${TOOLS[@]}"; do
	command -v "${t%%:*}" >/dev/null 2>&1 && continue
	lacking+=("${t%%:*}")
	[[ " ${packages[*]} " == *" ${t#*:} "* ]] || packages+=("${t#*:}")
done
((${#lacking[@]} == 0)) ||
	missing "${lacking[*]} (Debian: apt-get install ${packages[*]}; everything the build needs: apt-get install $HOST_PACKAGES)"
[[ -d /usr/lib/grub/x86_64-efi ]] || missing "GRUB's x86_64-efi modules (/usr/lib/grub/x86_64-efi; apt-get install grub-efi-amd64-bin)"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
hash=$(cd "$here" && sha256sum build.sh | cut -c1-16)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/vmnetbar/testimage
out=$cache_root/$hash
image=$out/debian-12-vmnetbar-amd64.qcow2
mkdir -p "$cache_root" || die "cannot create cache directory $cache_root"

if [[ -s $image ]]; then
	echo "$image"
	exit 0
fi
[[ $(id -u) == 0 ]] || missing "root: building the image runs mmdebstrap in its root mode (run this script as root, e.g. sudo $0, once: the image is cached in $cache_root)"

# One build at a time per cache directory; whoever waited finds it done.
exec 9>"$cache_root/.lock"
flock 9
if [[ -s $image ]]; then
	echo "$image"
	exit 0
fi

work=$(mktemp -d "$cache_root/.build.XXXXXX")
# --one-file-system: should mmdebstrap have left its /proc or /dev mounts in
# the chroot (it was killed), never delete through them.
trap 'rm -rf --one-file-system "$work"' EXIT

mirror=${VMNETBAR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${VMNETBAR_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# The guest's packages. Networking is netplan with its systemd-networkd
# backend, as in Debian's own cloud images: cloud-init writes the seed's
# network-config v2 as it is, and netplan honours all of it (cloud-init
# 22.4's own networkd renderer drops `dhcp-identifier: mac`, so the lease
# would follow a DUID). No ifupdown. systemd-resolved gives it a resolver.
# openssh-sftp-server: scp uses SFTP by default. cloud-guest-utils
# (growpart), fdisk and e2fsprogs let cloud-init grow the root partition and
# file system when vmnetbar enlarges the disk.
PACKAGES=(
	linux-image-cloud-amd64 initramfs-tools
	systemd systemd-sysv systemd-resolved udev dbus netplan.io
	openssh-server openssh-sftp-server
	cloud-init cloud-guest-utils fdisk e2fsprogs
	sudo iproute2 netbase ca-certificates less procps
)

root=$work/root
log "mmdebstrap bookworm into $root (${#PACKAGES[@]} packages and their dependencies)"
# Hooks run as root outside the chroot, with the chroot's path as $1.
mmdebstrap --mode=root --variant=minbase --format=directory \
	--components=main \
	--include="$(IFS=,; echo "${PACKAGES[*]}")" \
	--aptopt='Acquire::Retries "3"' \
	--essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo COMPRESS=gzip >"$1/etc/initramfs-tools/conf.d/vmnetbar"' \
	--customize-hook='chroot "$1" systemctl enable systemd-networkd.service systemd-resolved.service' \
	--customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service' \
	bookworm "$root" \
	"deb $mirror bookworm main" \
	"deb $mirror bookworm-updates main" \
	"deb $security bookworm-security main" >&2 ||
	die "mmdebstrap failed (see above)"

log "configuring the guest"
root_uuid=$(cat /proc/sys/kernel/random/uuid)
esp_id=$(printf '%08X' $((16#${root_uuid:0:8} ^ 16#5a5a5a5a)))

# No host keys (cloud-init makes them), no machine id (systemd makes one on
# the first boot, so every VM gets its own), no root password (the
# shadow entry stays locked as Debian leaves it).
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
grep -q '^root:[*!]' "$root/etc/shadow" || die "root has a password in /etc/shadow"

echo debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
# cloud-init's locale module fails unless the system locale is set, and
# C.UTF-8 is the one locale glibc has without the locales package.
echo 'LANG=C.UTF-8' >"$root/etc/default/locale"
echo 'LANG=C.UTF-8' >"$root/etc/locale.conf"

cat >"$root/etc/fstab" <<EOF
UUID=$root_uuid	/	ext4	rw,discard,errors=remount-ro	0	1
EOF

mkdir -p "$root/etc/cloud/cloud.cfg.d"
cat >"$root/etc/cloud/cloud.cfg.d/99_vmnetbar.cfg" <<'EOF'
# vmnetbar's image: the seed is a NoCloud volume labelled cidata.
datasource_list: [ NoCloud, None ]
# Otherwise every sudo waits on DNS for the hostname.
manage_etc_hosts: true
locale: C.UTF-8
system_info:
  network:
    renderers: [ netplan ]
    activators: [ netplan, networkd ]
EOF

# A dead link must not hold the boot for 120 s (the wait is masked above);
# this is the timeout should a user unmask it.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/vmnetbar.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20
EOF

# The kernel and initrd through Debian's /vmlinuz and /initrd.img links, so
# kernel upgrades inside the guest take effect at the next boot.
[[ -e $root/vmlinuz && -e $root/initrd.img ]] ||
	die "the root file system has no /vmlinuz or /initrd.img (kernel or initramfs not installed?)"
mkdir -p "$root/boot/grub"
cat >"$root/boot/grub/grub.cfg" <<EOF
# Loaded by the GRUB on the ESP (\\EFI\\BOOT\\BOOTX64.EFI). Edit freely.
set timeout=0
insmod gzio
linux /vmlinuz root=UUID=$root_uuid ro console=tty0 console=hvc0 console=ttyS0,115200
initrd /initrd.img
boot
EOF

# Leftovers of the build.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
	"$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*
rm -f "$root/etc/resolv.conf" && ln -s ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

log "GRUB for EFI"
cat >"$work/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $root_uuid
set prefix=(\$root)/boot/grub
configfile \$prefix/grub.cfg
echo "vmnetbar image: no root file system with UUID $root_uuid, or no /boot/grub/grub.cfg on it"
EOF
grub-mkimage -O x86_64-efi -o "$work/BOOTX64.EFI" -c "$work/early.cfg" -p /boot/grub \
	part_gpt fat ext2 search search_fs_uuid normal configfile linux boot echo test gzio \
	all_video efi_gop serial terminal sleep ls cat ||
	die "grub-mkimage failed"

# Sizes in MiB. The GPT needs 1 MiB at the start (alignment) and 33 sectors
# at the end; the root file system gets its content plus a little room, as
# the VM's disk is grown later.
esp_mib=64
used_mib=$(du -sm -x "$root" | cut -f1)
root_mib=$((used_mib + used_mib / 5 + 160))
disk_mib=$((1 + esp_mib + root_mib + 1))

log "ESP (${esp_mib} MiB, FAT32)"
mkfs.vfat -F 32 -n EFI -i "$esp_id" -C "$work/esp.img" $((esp_mib * 1024)) >&2 || die "mkfs.vfat failed"
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

log "root file system (${root_mib} MiB ext4, ${used_mib} MiB used)"
mke2fs -q -F -t ext4 -L debian-root -U "$root_uuid" -i 8192 -m 1 -E root_owner=0:0 \
	-d "$root" "$work/root.img" "${root_mib}M" >&2 || die "mke2fs failed"

log "GPT disk (${disk_mib} MiB)"
disk=$work/disk.raw
truncate -s "${disk_mib}M" "$disk"
sector_mib=2048 # 512-byte sectors per MiB
sfdisk -q --no-reread --no-tell-kernel "$disk" >&2 <<EOF || die "sfdisk failed"
label: gpt
first-lba: 2048
start=$sector_mib, size=$((esp_mib * sector_mib)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System"
start=$(((1 + esp_mib) * sector_mib)), size=$((root_mib * sector_mib)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"
EOF
dd if="$work/esp.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$disk" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none

log "qcow2 (compressed)"
mkdir -p "$work/out"
qemu-img convert -c -O qcow2 "$disk" "$work/out/$(basename "$image")" || die "qemu-img convert failed"

rm -rf "$out"
mv "$work/out" "$out"
log "built $image ($(du -h "$image" | cut -f1) on disk, ${disk_mib} MiB virtual)"
echo "$image"
