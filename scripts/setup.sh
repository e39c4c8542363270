#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine (as root): system packages, npm dependencies,
# the TypeScript build, the BPF objects and the VM kernel for the IPVS tier.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  clang llvm libbpf-dev libbpf1 bpftool            # BPF objects and the system libbpf (libbpf-ts)
  iproute2 iputils-ping tcpdump strace kmod cpio   # netns hosts, captures, module tools
  ethtool                                          # XDP netns tests: software checksums on veth test hosts
  qemu-system-x86 busybox-static linux-image-amd64 # the IPVS VM tier (kernel package is only downloaded)
  ipvsadm keepalived                               # independent peers and baselines
  openssl dnsmasq-base                             # health checks: test CA (https), a real DNS server
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  [ "$p" = linux-image-amd64 ] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: missing packages ${missing[*]} and not root" >&2; exit 1; fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# keepalived and ipvsadm are peers for tests, never services of this machine.
systemctl disable --now keepalived >/dev/null 2>&1 || true

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
bash scripts/build-bpf.sh
if [ -f scripts/vm/fetch-kernel.sh ]; then bash scripts/vm/fetch-kernel.sh; fi
echo "setup: ok"
