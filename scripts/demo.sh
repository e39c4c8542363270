#!/usr/bin/env bash
# The main command: set-up, then one boot of the IPVS VM (this host's kernel has no IPVS) in which
# two LB netns each run `fulcrum agent` from docs/examples/ipvs-pair-{a,b}.yaml (IPVS NAT, HTTP health
# checks, VRRP tracking the service): the VIP on the master, client traffic, a change applied through
# the API, a backend failing its checks and leaving both nodes' tables, a drain, the master crashing
# and the backup taking over while the client keeps requesting, the master preempting back, and a
# planned stop. Each step is read back with ip addr, ipvsadm -Ln and fulcrum status; exit 1 when a
# step does not happen.
# Usage (as root, from a fresh clone): bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/vm/run.sh --timeout 600 -- bash scripts/demo-guest.sh
