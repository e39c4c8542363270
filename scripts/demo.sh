#!/usr/bin/env bash
# The main command: set-up, then one boot of the IPVS VM (this host's kernel has no IPVS) in which
# the Fulcrum agent starts on its defaults, `fulcrum apply` gives it docs/examples/ipvs-demo.yaml,
# a client netns sends HTTP requests to the VIP (each answer names its backend), a backend is
# drained, `fulcrum ipvs list` and `ipvsadm -Ln` read the table back, and the agent stops while
# traffic keeps flowing.
# Usage (as root, from a fresh clone): bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/vm/run.sh --timeout 600 -- bash scripts/demo-guest.sh
