#!/usr/bin/env bash
# The Debian package under a real systemd: installs a .deb into a copy of the Debian fixture rootfs
# (scripts/build-images.sh; plus systemd, dbus and qemu-utils from the Debian mirror), enables
# cask.service, boots it in qemu-system-x86_64 (TCG) and, inside, checks what a container cannot:
# the hardened unit starts, systemd's empty StateDirectory becomes the store, /etc/cask/serve.conf
# adds a Unix socket in /run/cask, qemu-io writes over the socket and reads over TCP, LimitNOFILE applies, `systemctl stop` ends with Result=success and
# the writes are a version. Prints the guest's report and exits 0 when every check passed.
#
#   packaging/check-in-vm.sh [DEB]     (default: the newest target/deb/cask_*.deb)
#
# Not part of ./run-tests: it needs the network (apt) and takes 5-10 minutes. Needs root (chroot, mounts).
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
deb=${1:-$(ls -t "$here"/target/deb/cask_*.deb 2>/dev/null | head -1)}
[ -f "$deb" ] || { echo "check-in-vm: no .deb (run scripts/package-deb.sh first)" >&2; exit 1; }
fixtures=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
[ -d "$fixtures/rootfs-bookworm-server" ] && [ -f "$fixtures/vmlinuz" ] \
  || "$here/scripts/build-images.sh" "$fixtures" >&2
work=$(mktemp -d /tmp/cask-vm.XXXXXX)
root=$work/root
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  umount "$root/dev" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cp -a "$fixtures/rootfs-bookworm-server" "$root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
echo "check-in-vm: installing systemd and qemu-utils in the guest ..." >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -qq update
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
  systemd systemd-sysv dbus qemu-utils >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
echo "check-in-vm: dpkg -i $(basename "$deb") in the guest ..." >&2
cp "$deb" "$root/tmp/cask.deb"
chroot "$root" dpkg -i /tmp/cask.deb >&2
rm "$root/tmp/cask.deb"
umount "$root/proc" "$root/dev"
ln -sf /lib/systemd/system/cask.service "$root/etc/systemd/system/multi-user.target.wants/cask.service"
mkdir -p "$root/etc/cask"
printf 'socket = /run/cask/nbd.sock\ncheckpoint-interval = 1m\n' >"$root/etc/cask/serve.conf"

cat >"$root/usr/local/bin/cask-check" <<'EOF'
#!/bin/sh
# in the guest, after cask.service started: use it as an administrator would, stop it, report
exec >/dev/ttyS0 2>&1
ok=1
fail() { echo "CHECK-FAIL: $*"; ok=0; }
echo "CHECK-START"
for i in $(seq 1 300); do [ -S /run/cask/nbd.sock ] && break; sleep 1; done
systemctl is-active --quiet cask || fail "cask.service is not active"
systemctl status cask --no-pager -l | head -12
[ -f /var/lib/cask/cask.store ] || fail "/var/lib/cask is not a store"
cask --store /var/lib/cask create team/vm-1 4M || fail "cask create"
qemu-io -f raw -c "write -P 0xab 0 64k" -c flush "nbd+unix:///team/vm-1?socket=/run/cask/nbd.sock" || fail "write over the socket"
qemu-io -f raw -c "read -P 0xab 0 64k" "nbd://127.0.0.1:10809/team/vm-1" || fail "read over TCP"
pid=$(systemctl show -p MainPID --value cask)
grep -q "^Max open files *1048576" /proc/$pid/limits || fail "LimitNOFILE: $(grep 'open files' /proc/$pid/limits)"
grep -q /usr/lib/cask/app/cask.aot /proc/$pid/maps || fail "the start-up cache is not used"
systemctl stop cask
[ "$(systemctl show -p Result --value cask)" = success ] || fail "systemctl stop: $(systemctl show cask -p Result -p ExecMainStatus)"
[ "$(systemctl show -p ExecMainStatus --value cask)" = 0 ] || fail "exit status $(systemctl show -p ExecMainStatus --value cask)"
cask --store /var/lib/cask log team/vm-1
[ "$(cask --store /var/lib/cask log team/vm-1 --json | grep -c '"version"')" -ge 2 ] || fail "the writes are not a version"
journalctl -u cask --no-pager -o cat | tail -12
[ $ok = 1 ] && echo "CHECK-PASSED"
echo "CHECK-END"
systemctl poweroff
EOF
chmod +x "$root/usr/local/bin/cask-check"
cat >"$root/etc/systemd/system/cask-check.service" <<'EOF'
[Unit]
Description=check cask.service
After=cask.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/cask-check
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/cask-check.service "$root/etc/systemd/system/multi-user.target.wants/cask-check.service"
echo "/dev/vda / ext4 rw 0 1" >"$root/etc/fstab"

truncate -s 2G "$work/vm.raw"
mkfs.ext4 -q -F -d "$root" "$work/vm.raw"
echo "check-in-vm: booting (TCG, a few minutes) ..." >&2
timeout 1200 qemu-system-x86_64 -machine q35 -accel tcg -m 1536 -nographic -no-reboot \
  -kernel "$fixtures/vmlinuz" -initrd "$fixtures/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0 quiet" \
  -drive "file=$work/vm.raw,format=raw,if=virtio" >"$work/console" 2>&1 || true
sed -n '/CHECK-START/,/CHECK-END/p' "$work/console"
grep -q CHECK-PASSED "$work/console" || { echo "check-in-vm: FAILED (console: $(tail -c 2000 "$work/console"))" >&2; exit 1; }
echo "check-in-vm: passed" >&2
