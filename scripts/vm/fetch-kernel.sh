#!/usr/bin/env bash
# Idempotent: fetch Debian's kernel (the one linux-image-amd64 depends on; it carries IPVS and every
# scheduler as modules) into .cache/vm/, index its modules, and build a tiny initramfs that can mount
# the host root over 9p. scripts/vm/run.sh boots the result under qemu.
# Prints the cache directory of the kernel on success. Exits 1 with the reason when it cannot.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
CACHE="$PWD/.cache/vm"
mkdir -p "$CACHE"

exec 9>"$CACHE/.lock"
flock 9   # several callers (test tiers, benches) may race here

fail() { echo "fetch-kernel: $*" >&2; exit 1; }
for tool in apt-cache apt-get dpkg depmod modprobe cpio gzip; do
  command -v "$tool" >/dev/null || fail "missing tool '$tool' (apt packages dpkg, apt, kmod, cpio)"
done
[ -x /bin/busybox ] || fail "missing /bin/busybox (apt package busybox-static)"

# The versioned package, e.g. linux-image-6.1.0-56-amd64.
pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
PKG=$(pkg || true)
if [ -z "$PKG" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  PKG=$(pkg || true)
fi
if [ -z "$PKG" ]; then
  # Offline and no package lists: fall back to the newest kernel already in the cache.
  [ -f "$CACHE/current" ] && { cat "$CACHE/current"; exit 0; }
  fail "cannot resolve the kernel package linux-image-amd64 depends on (apt-get update failed?)"
fi
VERSION=${PKG#linux-image-}
DIR="$CACHE/$VERSION"

if [ ! -f "$DIR/.extracted" ]; then
  rm -rf "$DIR"; mkdir -p "$DIR/dl"
  ( cd "$DIR/dl" && apt-get download "$PKG" >/dev/null 2>&1 ) || fail "apt-get download $PKG failed"
  dpkg -x "$DIR"/dl/*.deb "$DIR/root"
  rm -rf "$DIR/dl"
  # The package ships no modules.dep; modprobe -d needs it.
  depmod -b "$DIR/root" "$VERSION"
  [ -f "$DIR/root/boot/vmlinuz-$VERSION" ] || fail "no vmlinuz in $PKG"
  touch "$DIR/.extracted"
fi

# initramfs: busybox + the 9p modules (with their dependencies, in load order) + /init (init.sh).
# Rebuilt whenever init.sh changes.
if [ ! -f "$DIR/initrd.gz" ] || ! cmp -s "$HERE/init.sh" "$DIR/init.sh"; then
  IR=$(mktemp -d "$CACHE/initrd.XXXXXX")
  trap 'rm -rf "$IR"' EXIT
  mkdir -p "$IR"/{bin,dev,proc,sys,host,modules}
  cp /bin/busybox "$IR/bin/busybox"
  for m in virtio_pci 9pnet_virtio 9p; do
    modprobe -d "$DIR/root" -S "$VERSION" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | { n=0; while read -r ko; do
    n=$((n + 1)); cp "$ko" "$IR/modules/$(printf '%02d' "$n")-$(basename "$ko")"
  done; }
  cp "$HERE/init.sh" "$IR/init"
  chmod +x "$IR/init"
  ( cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$DIR/initrd.gz.tmp"
  mv "$DIR/initrd.gz.tmp" "$DIR/initrd.gz"
  cp "$HERE/init.sh" "$DIR/init.sh"
  rm -rf "$IR"; trap - EXIT
fi
echo "$DIR" > "$CACHE/current"
echo "$DIR"
