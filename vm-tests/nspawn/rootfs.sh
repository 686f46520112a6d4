#!/bin/bash
# rootfs.sh: build (once) the Debian bookworm minbase root filesystem that the
# systemd-nspawn tests boot: systemd as PID 1, dbus, journald, iproute2.
#
# Prints the path of the finished rootfs on stdout (progress goes to stderr).
#
#   rootfs.sh        the base image (test-unit.sh)
#   rootfs.sh web    the base image plus nginx, installed but disabled at boot
#                    (web-cluster.sh, scripts/demo.sh): the cluster starts it
#
#   HACTL_CACHE   cache directory (default /var/cache/hactl-test); the rootfs
#                 is $HACTL_CACHE/rootfs-bookworm-v$RECIPE
#   HACTL_MIRROR  Debian mirror (default: the host's first deb.debian.org-style
#                 source, else http://deb.debian.org/debian)
#
# Idempotent: a finished rootfs is reused as is. Safe to interrupt: the rootfs
# is built in a temporary directory beside it and renamed into place only when
# complete; a lock serialises concurrent builders, and the next builder
# removes what an interrupted one left (unmounting first: debootstrap mounts
# /proc and /sys, and may bind-mount /dev, inside its target).
# Needs root; installs debootstrap and systemd-container on the host if missing.
set -euo pipefail

# Bump when the recipe changes, so an old cached rootfs is not reused.
RECIPE=1
SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,iproute2
FLAVOR=${1:-}

CACHE=${HACTL_CACHE:-/var/cache/hactl-test}
case $FLAVOR in
  '') FINAL=$CACHE/rootfs-$SUITE-v$RECIPE ;;
  # nginx: the web server of the web-cluster scenario.
  web) PACKAGES=$PACKAGES,nginx; FINAL=$CACHE/rootfs-$SUITE-web-v$RECIPE ;;
  *) printf 'rootfs.sh: unknown flavour "%s" (known: web)\n' "$FLAVOR" >&2; exit 2 ;;
esac

log() { printf 'rootfs.sh: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (debootstrap, systemd-nspawn)"
  exit 1
fi

# A finished rootfs has systemd and the stamp written as the last build step.
if [ -f "$FINAL/.hactl-rootfs-complete" ]; then
  printf '%s\n' "$FINAL"
  exit 0
fi

# Host tools: debootstrap builds the tree, systemd-container boots it.
missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q "${missing[@]}" >&2; }
fi

mirror=${HACTL_MIRROR:-}
if [ -z "$mirror" ]; then
  # The host's own Debian source (it may be a local mirror); else the default.
  mirror=$( { cat /etc/apt/sources.list 2>/dev/null; cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null; } \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.rootfs${FLAVOR:+-$FLAVOR}.lock"
if ! flock -n 9; then
  log "another build holds $CACHE/.rootfs.lock; waiting for it"
  flock 9
fi
# The other builder may have finished while we waited.
if [ -f "$FINAL/.hactl-rootfs-complete" ]; then
  printf '%s\n' "$FINAL"
  exit 0
fi

# Removes a (partial) tree: every mount below it first, then the files,
# never crossing into another file system.
remove_tree() {
  local dir=$1 m
  [ -d "$dir" ] || return 0
  dir=$(realpath "$dir")
  # Deepest mounts first.
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2 "/", d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}

# Leftovers of interrupted builds (we hold the lock: nobody else is building).
for old in "$CACHE/.rootfs${FLAVOR:+-$FLAVOR}-build."*; do
  [ -e "$old" ] || continue
  log "removing an interrupted build: $old"
  remove_tree "$old"
done
# A final directory without the stamp is incomplete (should not happen: it is
# only renamed into place complete), so rebuild it.
[ -e "$FINAL" ] && remove_tree "$FINAL"

TMP=$(mktemp -d "$CACHE/.rootfs${FLAVOR:+-$FLAVOR}-build.XXXXXX")
trap 'remove_tree "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)
log "debootstrap --variant=minbase $SUITE from $mirror into $TMP (about a minute)"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$TMP/root" "$mirror" \
    > "$CACHE/debootstrap${FLAVOR:+-$FLAVOR}.log" 2>&1; then
  log "debootstrap failed; last lines of $CACHE/debootstrap${FLAVOR:+-$FLAVOR}.log:"
  tail -20 "$CACHE/debootstrap${FLAVOR:+-$FLAVOR}.log" >&2
  exit 1
fi
R=$TMP/root

# Container-friendly defaults, same for every test run:
# - a neutral host name (debootstrap copies the builder's); each test run
#   sets its own in its overlay;
# - no console login prompt on the nspawn console;
# - journal in memory only (nothing written to the cache);
# - apt's package lists and caches dropped (the tests install nothing).
echo hactl-test > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
rm -f "$R/etc/systemd/system/getty.target.wants/getty@tty1.service"
ln -sf /dev/null "$R/etc/systemd/system/console-getty.service"
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' > "$R/etc/systemd/journald.conf.d/hactl-test.conf"
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
# A service the cluster manages must not start at boot (what
# `systemctl disable nginx` does).
if [ "$FLAVOR" = web ]; then
  rm -f "$R/etc/systemd/system/multi-user.target.wants/nginx.service"
  [ -x "$R/usr/sbin/nginx" ] || { log "no nginx in the new rootfs"; exit 1; }
fi
[ -x "$R/usr/lib/systemd/systemd" ] || { log "no systemd in the new rootfs"; exit 1; }
date -u +%Y-%m-%dT%H:%M:%SZ > "$R/.hactl-rootfs-complete"

# Atomic publish: rename the complete tree into place.
mv -T "$R" "$FINAL"
log "built $FINAL in $(( $(date +%s) - start )) s"
printf '%s\n' "$FINAL"
