#!/usr/bin/env bash
# Installs the Debian packages that cask's tests drive (real tools, never mocks), when missing.
# Needs root (or sudo) and apt; does nothing when everything is already there.
set -euo pipefail
declare -A pkg=(
  [qemu-img]=qemu-utils
  [qemu-nbd]=qemu-utils
  [qemu-io]=qemu-utils
  [sfdisk]=fdisk
  [mkfs.ext4]=e2fsprogs
  [qemu-system-x86_64]=qemu-system-x86
  [nbdinfo]=libnbd-bin
  [nbdcopy]=libnbd-bin
  [nbdkit]=nbdkit
  [fio]=fio
  [debootstrap]=debootstrap
  [losetup]=mount
  [gcc]=gcc
  # the Debian package (scripts/package-deb.sh, PackageDebIT): jpackage runs dpkg-deb under fakeroot
  [fakeroot]=fakeroot
  [dpkg-deb]=dpkg
  [zip]=zip
  [unzip]=unzip
)
missing=()
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
# cask-postgres's tests start a real PostgreSQL server (initdb, pg_ctl); Debian keeps them off the
# PATH, under /usr/lib/postgresql/VERSION/bin, and runuser (util-linux) runs them as 'postgres' when we are root.
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || command -v pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
[ ${#missing[@]} -eq 0 ] && exit 0
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
echo "install-deps: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}" >/dev/null
