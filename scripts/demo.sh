#!/usr/bin/env bash
# The main command until the agent lands: set-up, then one boot of the IPVS VM in which Fulcrum
# programs IPVS from docs/examples/ipvs-demo.yaml, a client netns sends HTTP requests to the VIP
# and each answer names the backend that served it. Ends with `fulcrum ipvs list` and `ipvsadm -Ln`.
# Usage (as root, from a fresh clone): bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/vm/run.sh --timeout 600 -- bash scripts/demo-guest.sh
