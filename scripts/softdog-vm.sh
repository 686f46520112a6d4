#!/usr/bin/env bash
# softdog-vm.sh: runs a program as root inside a throwaway QEMU (TCG) VM
# whose kernel has the softdog watchdog loaded with soft_noboot=1, for the
# watchdog tests on hosts whose own kernel cannot load softdog (no module
# support, or softdog already loaded WITHOUT soft_noboot, which the tests
# must not touch).
#
#   softdog-vm.sh PROGRAM [ARGS...]
#
# The VM boots Debian's cloud kernel (fetched once into
# $HACTL_TEST_CACHE/kernel, default /var/cache/hactl-tests, as
# vm-tests/fencing/ipmi-vm.sh does) with a busybox initramfs holding the
# kernel's watchdog.ko + softdog.ko, PROGRAM and its shared libraries.
# PROGRAM runs with HACTL_SOFTDOG_VM=1 in its environment. The guest's
# console is printed; the exit code is PROGRAM's (99 when the VM did not
# report one, e.g. it rebooted: qemu runs with -no-reboot).
# Needs: qemu-system-x86, busybox-static (scripts/setup.sh installs both).
set -euo pipefail
cache=${HACTL_TEST_CACHE:-/var/cache/hactl-tests}
# Under TCG on a loaded two-core machine the boot takes ~5-20 s.
vm_wall_limit_s=${HACTL_SOFTDOG_VM_LIMIT_S:-300}

die() { echo "softdog-vm: $*" >&2; exit 98; }
[ $# -ge 1 ] || die "usage: $0 PROGRAM [ARGS...]"
program=$(readlink -f "$1"); shift
[ -x "$program" ] || die "$program is not an executable"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86 (scripts/setup.sh)"
busybox=$(command -v busybox || true)
# The initramfs has no libraries for it: it must be the static build.
[ -n "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 ||
  die "a static busybox is missing: apt-get install busybox-static (scripts/setup.sh)"

kernel=$(ls "$cache"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
if [ -z "$kernel" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/ {print $2; exit}')
  [ -n "$pkg" ] || die "no linux-image-cloud-amd64 in the package lists (apt-get update?)"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download "$pkg" >/dev/null) || die "cannot download $pkg"
  mkdir -p "$cache/kernel"
  dpkg-deb -x "$tmp"/*.deb "$cache/kernel"
  rm -rf "$tmp"
  kernel=$(ls "$cache"/kernel/boot/vmlinuz-* | head -n 1)
fi
kver=${kernel##*/vmlinuz-}
mods=$cache/kernel/lib/modules/$kver/kernel/drivers/watchdog
[ -f "$mods/softdog.ko" ] && [ -f "$mods/watchdog.ko" ] || die "no softdog.ko/watchdog.ko under $mods"

work=$(mktemp -d /tmp/hactl-softdog-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,modules}
cp "$busybox" "$root/bin/busybox"
cp "$mods/watchdog.ko" "$mods/softdog.ko" "$root/modules/"
# The program, stripped (a debug test binary is mostly debug info), and
# every shared library it loads, at the same paths.
strip -o "$root/program" "$program" 2>/dev/null || cp "$program" "$root/program"
for lib in $(ldd "$program" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
args=""
for a in "$@"; do args="$args $(printf '%q' "$a")"; done
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
insmod /modules/watchdog.ko
insmod /modules/softdog.ko soft_noboot=1
# softdog does not export soft_noboot in sysfs; its load message says it.
echo "softdog-vm: \$(dmesg | grep -o 'softdog: initialized.*')"
cd /tmp
HACTL_SOFTDOG_VM=1 PATH=/bin /program$args
echo "softdog-vm: exit \$?"
reboot -f
EOF
chmod 0755 "$root/init"
(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd"

# -no-reboot: a guest reboot (a watchdog that really fired) ends qemu
# without an exit line, which fails the run.
timeout "$vm_wall_limit_s" qemu-system-x86_64 -accel tcg -machine pc -m 512 -smp 1 \
  -nodefaults -display none -no-reboot -serial "file:$work/console" \
  -kernel "$kernel" -initrd "$work/initrd" \
  -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" </dev/null ||
  echo "softdog-vm: qemu ended with $? (timeout ${vm_wall_limit_s}s?)" >&2
tr -d '\r' <"$work/console"
rc=$(tr -d '\r' <"$work/console" | sed -n 's/^softdog-vm: exit \([0-9]*\)$/\1/p' | tail -n 1)
exit "${rc:-99}"
