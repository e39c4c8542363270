#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine (as root): system packages, npm dependencies,
# the TypeScript build, the BPF objects and the VM kernel for the IPVS tier.
# Usage: scripts/setup.sh [TIER ...]: with no tier, everything; with tiers (scripts/test.sh passes
# the ones it runs), the large packages of the other tiers are left out (chromium: ui only).
set -euo pipefail
cd "$(dirname "$0")/.."
TIERS=("$@")
wants() { [ ${#TIERS[@]} -eq 0 ] && return 0; local t; for t in "${TIERS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

APT_PACKAGES=(
  clang llvm libbpf-dev libbpf1 bpftool            # BPF objects and the system libbpf (libbpf-ts)
  iproute2 iputils-ping tcpdump strace kmod cpio   # netns hosts, captures, module tools
  ethtool                                          # XDP netns tests: software checksums on veth test hosts
  qemu-system-x86 busybox-static linux-image-amd64 # the IPVS VM tier (kernel package is only downloaded)
  ipvsadm keepalived                               # independent peers and baselines
  openssl dnsmasq-base                             # health checks: test CA (https), a real DNS server
  etcd-server etcd-client                          # the cluster tier: a real etcd on loopback (and etcdctl)
  bird2 frr                                        # the bgp tier: BIRD 2 on every LB node and as the ECMP router; FRR as the other router
  prometheus                                       # promtool: docs/alerts/fulcrum-rules.yml checked and unit-tested
  ansible-core yamllint python3-pytest python3-pytest-xdist python3-pytest-mock python3-mock python3-pytest-forked python3-voluptuous  # the ansible tier: ansible-test units, validate-modules, yamllint
)
# The ui tier: headless Chromium from Debian (puppeteer-core drives it and downloads no browser).
if wants ui; then APT_PACKAGES+=(chromium); fi

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
# keepalived, ipvsadm and etcd are peers for tests, never services of this machine (the tests start
# their own etcd on random loopback ports with a data dir under /tmp); prometheus is there for promtool.
systemctl disable --now keepalived >/dev/null 2>&1 || true
systemctl disable --now etcd >/dev/null 2>&1 || true
systemctl disable --now prometheus >/dev/null 2>&1 || true
systemctl disable --now bird >/dev/null 2>&1 || true
systemctl disable --now frr >/dev/null 2>&1 || true

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
bash scripts/build-bpf.sh
if [ -f scripts/vm/fetch-kernel.sh ]; then bash scripts/vm/fetch-kernel.sh; fi
echo "setup: ok"
