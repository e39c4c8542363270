#!/usr/bin/env bash
# Runs inside the IPVS VM (scripts/demo.sh boots it): the keepalived job on an LB pair.
#   demo-client (10.77.1.10) --[demo-front]-- demo-lb-a eth0 (.2) / demo-lb-b eth0 (.3)   VIP 10.77.1.100
#   demo-lb-a eth1 (.252) / demo-lb-b eth1 (.253) --[demo-back]-- demo-be1..3 (10.77.2.1-3)  gateway VIP 10.77.2.254
# Each LB netns runs `fulcrum agent` from docs/examples/ipvs-pair-{a,b}.yaml (IPVS NAT, HTTP health
# checks, VRRP tracking the service). Every step is read back with ip addr / ipvsadm -Ln in each LB
# netns and with fulcrum status; a step that does not happen ends the demo with exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOL=dist/test/helpers/http-tool.js
TRAFFIC=dist/test/helpers/health-traffic.js
DEMO=/tmp/fulcrum-demo
VIP=10.77.1.100 GATEWAY=10.77.2.254
mkdir -p "$DEMO"

on() { local ns=$1; shift; nsenter --net="/run/netns/demo-$ns" "$@"; }
# The CLI against the agent of one node (its API listens on 127.0.0.1:9180 in the node's netns).
fulcrum() { local n=$1; shift; on "lb-$n" node dist/src/cli/main.js "$@" --token-file "$DEMO/$n/state/admin.token"; }
step() { printf '\n== %s\n' "$*"; }
fail() { echo "DEMO FAILED: $*" >&2; exit 1; }
# wait_for SECONDS WHAT COMMAND...: polls every 0.2 s; ends the demo when WHAT does not happen in time.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local end=$((SECONDS + seconds))
  until "$@" > /dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || fail "$what (not within ${seconds} s)"
    sleep 0.2
  done
}
holds_vip() { ip -n "demo-lb-$1" -4 -o addr show dev eth0 | grep -q " $VIP/"; }
lacks_vip() { ! holds_vip "$1"; }
# The weight IPVS in node N gives backend RS (address:port) under service VS, or nothing.
weight() { on "lb-$1" ipvsadm -Ln -t "$2" | awk -v rs="$3" '$1 == "->" && $2 == rs { print $4 }'; }
weight_is() { [ "$(weight "$1" "$2" "$3")" = "$4" ]; }
on_both() { "$1" a "${@:2}" && "$1" b "${@:2}"; }
show_ip() { for n in a b; do echo "lb-$n: $(ip -n "demo-lb-$n" -4 -o addr show | awk '$2 ~ /^eth/ { printf "%s %s  ", $2, $4 }')"; done; }
show_ipvs() { for n in "$@"; do echo "-- ipvsadm -Ln in lb-$n"; on "lb-$n" ipvsadm -Ln; done; }
# COUNT requests from the client (each a new connection); prints them; fails when one got no answer.
requests() {
  local out; out=$(on client node "$TOOL" get "$1" "$2")
  node -e 'const a = JSON.parse(process.argv[1]); a.forEach((b, i) => console.log(`request ${String(i + 1).padStart(2)} -> ${b}`)); if (a.some((b) => b.startsWith("error"))) process.exit(1);' "$out"
}

# --- the network ---------------------------------------------------------------------------------
for br in demo-front demo-back; do ip link add "$br" type bridge && ip link set "$br" up; done
# plug NS IF BRIDGE ADDR/PREFIX
plug() {
  ip netns list | grep -qw "demo-$1" || { ip netns add "demo-$1"; ip -n "demo-$1" link set lo up; }
  ip link add "dm-$1-$2" type veth peer name "$2" netns "demo-$1"
  ip link set "dm-$1-$2" master "$3" up
  ip -n "demo-$1" addr add "$4" dev "$2" && ip -n "demo-$1" link set "$2" up
}
plug client eth0 demo-front 10.77.1.10/24
plug lb-a eth0 demo-front 10.77.1.2/24 && plug lb-a eth1 demo-back 10.77.2.252/24
plug lb-b eth0 demo-front 10.77.1.3/24 && plug lb-b eth1 demo-back 10.77.2.253/24
for n in a b; do on "lb-$n" sysctl -qw net.ipv4.ip_forward=1; done
for i in 1 2 3; do
  plug "be$i" eth0 demo-back "10.77.2.$i/24"
  ip -n "demo-be$i" route add default via "$GATEWAY"
done
# Background processes start with nsenter itself (not through a function) so that $! is their pid.
start_backend() { nsenter --net="/run/netns/demo-be$1" node "$TOOL" serve "backend$1" 80 > "$DEMO/be$1.log" 2>&1 & echo $! > "$DEMO/be$1.pid"; disown; }
for i in 1 2 3; do start_backend "$i"; done
for i in 1 2 3; do wait_for 60 "backend$i to listen" grep -q listening "$DEMO/be$i.log"; done

# --- the pair -----------------------------------------------------------------------------------
# Each node's config file is the example (its desired state) plus an agent section for the demo's
# state directory (the guest's /var/lib is read-only).
start_agent() {
  { echo "agent: { stateDir: $DEMO/$1/state, reconcileIntervalSeconds: 5 }"; cat "docs/examples/ipvs-pair-$1.yaml"; } > "$DEMO/lb-$1.yaml"
  nsenter --net="/run/netns/demo-lb-$1" node dist/src/cli/main.js agent --config "$DEMO/lb-$1.yaml" >> "$DEMO/agent-$1.log" 2>&1 &
  echo $! > "$DEMO/agent-$1.pid"; disown
}
step "two LB nodes, each: fulcrum agent --config docs/examples/ipvs-pair-{a,b}.yaml (priority 200 / 100; logs in $DEMO)"
start_agent a; start_agent b
wait_for 180 "both agents to serve their API" on_both fulcrum status
wait_for 90 "lb-a to become master (backends warm up first: rise 2 checks)" holds_vip a
wait_for 30 "lb-b to stay backup" lacks_vip b
step "ip addr: the VIP $VIP and the gateway $GATEWAY are on the master only"
show_ip
step "fulcrum status on lb-a (master) and lb-b (backup)"
fulcrum a status; echo; fulcrum b status
for rs in 10.77.2.1:80 10.77.2.2:80 10.77.2.3:80; do wait_for 30 "$rs at weight 1 on both nodes" on_both weight_is "$VIP:80" "$rs" 1; done
step "ipvsadm -Ln on both nodes: both program the same table; only the master's gets traffic (it holds the VIP)"
show_ipvs a b

step "12 HTTP requests from the client to http://$VIP/ (rr, through the master)"
requests "http://$VIP/" 12 || fail "requests through lb-a"

step "fulcrum apply through the API, on both nodes: one more service (wrr 3:1 on :8080); the plan first"
for n in a b; do
  node -e 'const Y = require("yaml"); const fs = require("fs"); const s = Y.parse(fs.readFileSync(process.argv[1], "utf8"));
    s.services.push({ name: "web-weighted", address: "10.77.1.100", port: 8080, scheduler: "wrr", forwarding: "nat",
      backends: [{ address: "10.77.2.1", port: 80, weight: 3 }, { address: "10.77.2.2", port: 80, weight: 1 }], health: s.services[0].health });
    fs.writeFileSync(process.argv[2], Y.stringify(s));' "docs/examples/ipvs-pair-$n.yaml" "$DEMO/lb-$n-v2.yaml"
done
fulcrum a apply -f "$DEMO/lb-a-v2.yaml" --dry-run
fulcrum a apply -f "$DEMO/lb-a-v2.yaml" && fulcrum b apply -f "$DEMO/lb-b-v2.yaml"
wait_for 30 "web-weighted's backends in after their checks" weight_is a "$VIP:8080" 10.77.2.2:80 1
step "8 requests to http://$VIP:8080/ (wrr 3:1)"
requests "http://$VIP:8080/" 8 || fail "requests to web-weighted"

step "backend3 fails (its server stops): both nodes' checks take it out (weight 0, fall 2 checks)"
kill "$(cat "$DEMO/be3.pid")"
wait_for 30 "backend3 at weight 0 on both nodes" on_both weight_is "$VIP:80" 10.77.2.3:80 0
show_ipvs a b
echo "-- fulcrum health web on lb-a"
fulcrum a health web
step "6 requests: backend3 gets none; lb-a stays master (2 healthy backends)"
requests "http://$VIP/" 6 || fail "requests with backend3 down"
holds_vip a || fail "lb-a gave the VIP up with 2 healthy backends"
start_backend 3
wait_for 30 "backend3 to listen again" grep -q listening "$DEMO/be3.log"
wait_for 30 "backend3 back at weight 1 on both nodes (rise 2 checks)" on_both weight_is "$VIP:80" 10.77.2.3:80 1
echo "backend3 is back at weight 1 on lb-a and lb-b"

step "fulcrum drain web 10.77.2.2:80 on both nodes (weight 0 now; deleted once idle); fulcrum ipvs list on lb-a"
fulcrum a drain web 10.77.2.2:80 && fulcrum b drain web 10.77.2.2:80
on lb-a node dist/src/cli/main.js ipvs list
requests "http://$VIP/" 4 || fail "requests after the drain"

step "the master crashes: SIGKILL to lb-a's agent and its links down, while the client sends a request every 100 ms"
nsenter --net=/run/netns/demo-client node "$TRAFFIC" client "$VIP" 80 12000 100 > "$DEMO/failover.jsonl" &
CLIENT=$!
sleep 3
kill -KILL "$(cat "$DEMO/agent-a.pid")"
KILLED=$(date +%s%3N)
ip -n demo-lb-a link set eth0 down && ip -n demo-lb-a link set eth1 down
wait_for 15 "lb-b to take the VIP" holds_vip b
echo "lb-b holds the VIP $(( $(date +%s%3N) - KILLED )) ms after the kill, seen by polling ip addr every 0.2 s (RFC bound: 3 x 1 s advert + skew 0.61 s = 3.61 s from lb-a's last advert)"
show_ip
echo "-- fulcrum status on lb-b"
fulcrum b status
show_ipvs b
wait "$CLIENT" || true
node -e 'const rs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const failed = rs.filter((r) => r.error); const t0 = Number(process.argv[2]);
  console.log(`client: ${rs.length} requests across the failover, ${failed.length} failed` + (failed.length ?
    ` (from ${failed[0].t - t0} ms to ${failed.at(-1).t - t0} ms after the kill: ${[...new Set(failed.map((r) => r.error))].join(", ")})` : ""));
  const after = rs.filter((r) => r.t > (failed.at(-1)?.t ?? 0));
  console.log(`after the failover: ${after.length} requests answered by ${[...new Set(after.map((r) => r.id))].join(", ")}`);
  if (after.length < 10 || after.some((r) => r.error)) process.exit(1);' "$DEMO/failover.jsonl" "$KILLED" || fail "the client is not served through lb-b"

step "lb-a comes back (agent restarted, links up) and takes over again (preempt, priority 200 > 100)"
start_agent a
wait_for 120 "lb-a's agent to serve its API" fulcrum a status
ip -n demo-lb-a link set eth0 up && ip -n demo-lb-a link set eth1 up
wait_for 60 "lb-a to preempt" holds_vip a
wait_for 15 "lb-b to give the VIP back" lacks_vip b
show_ip
requests "http://$VIP/" 4 || fail "requests through lb-a again"

step "SIGTERM to lb-a's agent (a planned stop) while the client sends a request every 100 ms: it hands over first"
nsenter --net=/run/netns/demo-client node "$TRAFFIC" client "$VIP" 80 8000 100 > "$DEMO/stop.jsonl" &
CLIENT=$!
sleep 2
kill -TERM "$(cat "$DEMO/agent-a.pid")"
wait_for 15 "lb-b to take the VIP" holds_vip b
wait "$CLIENT" || true
node -e 'const rs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
  console.log(`client: ${rs.length} requests across the hand-over, ${rs.filter((r) => r.error).length} failed`);' "$DEMO/stop.jsonl"
fulcrum b status | tail -n 4
show_ipvs a
echo
echo "demo: done"
