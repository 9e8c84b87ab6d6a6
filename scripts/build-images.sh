#!/usr/bin/env bash
# Copy of ../shared/fixtures/build-images.sh (the steering repo's), used when that is not next to the clone.
# Builds real Linux disk images for tests and benchmarks, from Debian's package archive.
#
#   build-images.sh [OUT_DIR]        (default: ${CASK_FIXTURES:-$HOME/.cache/cask-fixtures})
#
# Produces, idempotently (an image that exists is kept):
#   bookworm-minbase.raw      2 GiB, MBR, one ext4 partition at sector 2048, Debian 12 minbase
#   bookworm-server.raw       same layout, minbase + openssh-server python3 curl vim-tiny less
#   trixie-minbase.raw        same layout, Debian 13 minbase
#   bookworm-minbase-63.raw   the bookworm-minbase root file system again, partition at legacy sector 63
#   vmlinuz, initrd.img       a Debian kernel and initramfs that boot any of them under QEMU
# Each root file system holds /sbin/bootcheck: boot with `init=/sbin/bootcheck`; it reads a
# large part of the disk, writes 16 MiB, syncs, prints BOOT-OK and powers the machine off.
# Needs root, debootstrap, e2fsprogs (mkfs.ext4 -d), fdisk (sfdisk); installs them with apt-get if missing.
set -euo pipefail
out=${1:-${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}}
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$out"; cd "$out"
exec 9>"$out/.build.lock"; flock 9   # one build per directory at a time (tests and benches may race)

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need debootstrap debootstrap; need mkfs.ext4 e2fsprogs; need sfdisk fdisk

bootcheck='#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -o remount,rw /
n=$(find /usr -type f | wc -l)
s=$(cat /usr/bin/* /usr/lib/x86_64-linux-gnu/*.so* 2>/dev/null | md5sum | cut -c1-8)
dd if=/dev/urandom of=/var/tmp/written bs=1M count=16 2>/dev/null; sync
echo "BOOTCHECK files=$n sum=$s uptime=$(cut -d" " -f1 /proc/uptime)"
echo BOOT-OK
echo o > /proc/sysrq-trigger; sleep 10'

rootfs() { # NAME SUITE [INCLUDE]
  [ -d "rootfs-$1" ] && return
  rm -rf "rootfs-$1.tmp"   # left by an interrupted build
  debootstrap --variant=minbase ${3:+--include=$3} "$2" "rootfs-$1.tmp" "$mirror" > "rootfs-$1.log" 2>&1 \
    || { echo "debootstrap $2 failed; the end of $out/rootfs-$1.log:"; tail -5 "rootfs-$1.log"; exit 1; } >&2
  printf '%s\n' "$bootcheck" > "rootfs-$1.tmp/sbin/bootcheck"; chmod +x "rootfs-$1.tmp/sbin/bootcheck"
  mv "rootfs-$1.tmp" "rootfs-$1"
}
disk() { # ROOTFS OUT START_SECTOR
  [ -f "$2" ] && return
  rm -f "$2.tmp" "$2.part"
  truncate -s 2G "$2.tmp"
  echo "start=$3, type=83, bootable" | sfdisk -q "$2.tmp"
  truncate -s $(( 2147483648 - $3 * 512 )) "$2.part"
  mkfs.ext4 -q -F -L root -U clear -E hash_seed=00000000-0000-0000-0000-000000000000 -d "rootfs-$1" "$2.part"
  dd if="$2.part" of="$2.tmp" bs=1M seek=$(( $3 * 512 )) oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$2.part"; mv "$2.tmp" "$2"
}
rootfs bookworm-minbase bookworm
rootfs bookworm-server bookworm openssh-server,python3,curl,vim-tiny,less
rootfs trixie-minbase trixie
disk bookworm-minbase bookworm-minbase.raw 2048
disk bookworm-server bookworm-server.raw 2048
disk trixie-minbase trixie-minbase.raw 2048
disk bookworm-minbase bookworm-minbase-63.raw 63

if [ ! -f vmlinuz ] || [ ! -f initrd.img ]; then
  if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-image-amd64 initramfs-tools >/dev/null
  fi
  k=$(ls /boot/vmlinuz-* | sort -V | tail -1); cp "$k" vmlinuz; cp "/boot/initrd.img-${k#/boot/vmlinuz-}" initrd.img
fi
ls -ls "$out"/*.raw "$out"/vmlinuz "$out"/initrd.img
