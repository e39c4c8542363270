#!/usr/bin/env bash
# Regenerates test/unit/fixtures/ipvsadm-golden.json: boots the IPVS VM and captures, with strace,
# the generic netlink bytes ipvsadm sends and receives for each case of capture-golden.ts.
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run build --silent
out=$(mktemp -d /tmp/fulcrum-golden.XXXXXX)
trap 'rm -rf "$out"' EXIT
bash scripts/vm/run.sh --out "$out" -- node dist/scripts/ipvs/capture-golden.js /run/fulcrum-job/ipvsadm-golden.json
cp "$out/ipvsadm-golden.json" test/unit/fixtures/ipvsadm-golden.json
echo "wrote test/unit/fixtures/ipvsadm-golden.json"
