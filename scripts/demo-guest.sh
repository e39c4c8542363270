#!/usr/bin/env bash
# Runs inside the IPVS VM (scripts/demo.sh boots it). The guest's own netns is the load balancer;
# netns demo-client and demo-be1..3 are the client and the backends (10.77.1.0/24, 10.77.2.0/24).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=docs/examples/ipvs-demo.yaml
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

DEMO=/tmp/fulcrum-demo
mkdir -p "$DEMO"
cat > "$DEMO/agent.yaml" <<EOS
agent:
  stateDir: $DEMO/state
  reconcileIntervalSeconds: 5
EOS
TOKEN=(--token-file "$DEMO/state/admin.token")
show() { node -e 'const a = JSON.parse(require("fs").readFileSync(0, "utf8")); a.forEach((b, i) => console.log(`request ${String(i + 1).padStart(2)} -> ${b}`));'; }

echo "== fulcrum agent --config $DEMO/agent.yaml (empty state, API on 127.0.0.1:9180; log in $DEMO/agent.log)"
fulcrum agent --config "$DEMO/agent.yaml" > "$DEMO/agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 1 300); do fulcrum status "${TOKEN[@]}" > /dev/null 2>&1 && break; sleep 0.5; done
fulcrum status "${TOKEN[@]}"

echo "== fulcrum apply -f $CONFIG --dry-run (the plan, nothing applied)"
fulcrum apply -f "$CONFIG" --dry-run "${TOKEN[@]}"
echo "== fulcrum apply -f $CONFIG"
fulcrum apply -f "$CONFIG" "${TOKEN[@]}"

echo "== 12 HTTP requests from the client netns to http://10.77.0.1/ (rr)"
ip netns exec demo-client node "$TOOL" get http://10.77.0.1/ 12 | show
echo "== 8 requests to http://10.77.0.1:8080/ (wrr 3:1)"
ip netns exec demo-client node "$TOOL" get http://10.77.0.1:8080/ 8 | show

echo "== fulcrum drain web 10.77.2.3:80 (weight 0 now; deleted once idle)"
fulcrum drain web 10.77.2.3:80 "${TOKEN[@]}"
echo "== 6 requests to http://10.77.0.1/: backend3 gets none"
ip netns exec demo-client node "$TOOL" get http://10.77.0.1/ 6 | show

echo "== fulcrum ipvs list"
fulcrum ipvs list
echo "== ipvsadm -Ln (the independent read-back)"
ipvsadm -Ln

echo "== SIGTERM to the agent: the kernel table stays, traffic keeps flowing"
kill -TERM "$AGENT"; wait "$AGENT" || true
ip netns exec demo-client node "$TOOL" get http://10.77.0.1/ 4 | show
