#!/usr/bin/env bash
# Runs inside the IPVS VM (scripts/demo.sh boots it). The guest's own netns is the load balancer;
# netns demo-client and demo-be1..3 are the client and the backends (10.77.1.0/24, 10.77.2.0/24).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=docs/examples/ipvs-demo.yaml
STATE=/tmp/fulcrum-demo-state
TOOL=dist/test/helpers/http-tool.js
fulcrum() { node dist/src/cli/main.js "$@"; }

sysctl -qw net.ipv4.ip_forward=1
ip link add demo-br type bridge && ip link set demo-br up
ip addr add 10.77.2.254/24 dev demo-br
ip link add demo-vip type dummy && ip link set demo-vip up
ip addr add 10.77.0.1/32 dev demo-vip
ip netns add demo-client
ip link add demo-c type veth peer name eth0 netns demo-client
ip addr add 10.77.1.254/24 dev demo-c && ip link set demo-c up
ip -n demo-client addr add 10.77.1.10/24 dev eth0
ip -n demo-client link set eth0 up && ip -n demo-client link set lo up
ip -n demo-client route add default via 10.77.1.254
for i in 1 2 3; do
  ip netns add "demo-be$i"
  ip link add "demo-b$i" type veth peer name eth0 netns "demo-be$i"
  ip link set "demo-b$i" master demo-br up
  ip -n "demo-be$i" addr add "10.77.2.$i/24" dev eth0
  ip -n "demo-be$i" link set eth0 up && ip -n "demo-be$i" link set lo up
  ip -n "demo-be$i" route add default via 10.77.2.254
  ip netns exec "demo-be$i" node "$TOOL" serve "backend$i" 80 > "/tmp/demo-be$i.log" 2>&1 &
done
for i in 1 2 3; do
  for _ in $(seq 1 100); do grep -q listening "/tmp/demo-be$i.log" && break; sleep 0.2; done
done

echo "== fulcrum ipvs reconcile --config $CONFIG (the diff it applied)"
fulcrum ipvs reconcile --config "$CONFIG" --state-dir "$STATE"
echo "== again: nothing to do"
fulcrum ipvs reconcile --config "$CONFIG" --state-dir "$STATE"

echo "== 20 HTTP requests from the client netns to http://10.77.0.1/ (rr)"
ip netns exec demo-client node "$TOOL" get http://10.77.0.1/ 20 |
  node -e 'const a = JSON.parse(require("fs").readFileSync(0, "utf8")); a.forEach((b, i) => console.log(`request ${String(i + 1).padStart(2)} -> ${b}`));'
echo "== 8 requests to http://10.77.0.1:8080/ (wrr 3:1)"
ip netns exec demo-client node "$TOOL" get http://10.77.0.1:8080/ 8 |
  node -e 'const a = JSON.parse(require("fs").readFileSync(0, "utf8")); a.forEach((b, i) => console.log(`request ${String(i + 1).padStart(2)} -> ${b}`));'

echo "== fulcrum ipvs list"
fulcrum ipvs list
echo "== ipvsadm -Ln"
ipvsadm -Ln
