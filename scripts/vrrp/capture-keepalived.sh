#!/usr/bin/env bash
# Regenerates the VRRP golden-byte fixtures in test/fixtures/vrrp/: runs keepalived (Debian package)
# as the only router of a veth link between two netns and captures its adverts with tcpdump.
# Each case keeps the keepalived.conf that produced it next to the capture (CASE.conf, CASE.pcap).
# Usage (root): bash scripts/vrrp/capture-keepalived.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=test/fixtures/vrrp
mkdir -p "$out"
tag="vcap$$"
ka="${tag}a"; cap="${tag}b"
work=$(mktemp -d)
cleanup() {
  [ -f "$work/mine.pid" ] && kill "$(cat "$work/mine.pid")" 2>/dev/null || true
  sleep 0.3
  ip netns del "$ka" 2>/dev/null || true
  ip netns del "$cap" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ka"; ip netns add "$cap"
ip link add "${tag}x" type veth peer name "${tag}y"
ip link set "${tag}x" netns "$ka"; ip link set "${tag}y" netns "$cap"
ip -n "$ka" link set "${tag}x" name eth0 address 02:00:00:00:00:0a
ip -n "$cap" link set "${tag}y" name eth0 address 02:00:00:00:00:0b
ip -n "$ka" addr add 192.0.2.10/24 dev eth0
ip -n "$cap" addr add 192.0.2.11/24 dev eth0
ip -n "$ka" addr add 2001:db8::10/64 dev eth0 nodad
ip -n "$cap" addr add 2001:db8::11/64 dev eth0 nodad
for ns in "$ka" "$cap"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
sleep 2   # IPv6 link-local addresses leave DAD

# name | version | family | advert_int | priority | extra instance lines | vips (space separated)
cases=(
  "v3-ipv4|3|4|1|150|nopreempt|192.0.2.100/32 192.0.2.101/32"
  "v3-ipv4-50ms|3|4|0.05|200||192.0.2.100/32"
  "v2-ipv4-auth|2|4|1|100|authentication {\n    auth_type PASS\n    auth_pass secret12\n  }|192.0.2.100/32 192.0.2.102/32"
  "v2-ipv4-noauth|2|4|2|254||192.0.2.100/32"
  "v3-ipv6|3|6|1|150||fe80::100/64 2001:db8::100/64"
  "v3-ipv4-owner-shutdown|3|4|1|255||192.0.2.100/32"
  "v3-ipv4-unicast|3|4|1|150|unicast_src_ip 192.0.2.10\n  unicast_peer {\n    192.0.2.11\n  }|192.0.2.100/32"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name version family adv prio extra vips <<<"$c"
  conf="$out/$name.conf"
  {
    echo "# Produced $name.pcap (scripts/vrrp/capture-keepalived.sh, keepalived $(keepalived --version 2>&1 | head -1 | awk '{print $2}'))"
    echo "global_defs {"
    echo "  vrrp_version $version"
    echo "  router_id fixture"
    echo "  vrrp_garp_master_delay 0"
    echo "  vrrp_garp_master_repeat 1"
    echo "}"
    echo "vrrp_instance VI_$name {"
    echo "  state MASTER"
    echo "  interface eth0"
    echo "  virtual_router_id 51"
    echo "  priority $prio"
    echo "  advert_int $adv"
    [ "$family" = 6 ] && echo "  native_ipv6"
    [ -n "$extra" ] && printf "  %b\n" "$extra"
    echo "  virtual_ipaddress {"
    for v in $vips; do echo "    $v"; done
    echo "  }"
    echo "}"
  } >"$conf"
  filter="ip proto 112"; [ "$family" = 6 ] && filter="ip6 proto 112"
  ip netns exec "$cap" timeout 30 tcpdump -i eth0 -U -c 3 -w "$out/$name.pcap" "$filter" 2>/dev/null &
  tcpd=$!
  sleep 0.5
  ip netns exec "$ka" keepalived -n -l -D -f "$conf" -p "$work/ka.pid" -r "$work/vrrp.pid" -P >"$work/$name.log" 2>&1 &
  kpid=$!
  echo "$kpid" >"$work/mine.pid"
  # The owner case: stop keepalived after two adverts; the third packet is its priority-0 advert.
  case "$name" in *shutdown) sleep 1.5; kill "$kpid" ;; esac
  wait "$tcpd" || { echo "capture $name failed"; cat "$work/$name.log"; exit 1; }
  kill "$kpid"; wait "$kpid" 2>/dev/null || true
  rm -f "$work/mine.pid"
  echo "captured $name: $(stat -c %s "$out/$name.pcap") bytes"
done
