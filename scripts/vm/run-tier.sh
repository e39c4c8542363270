#!/usr/bin/env bash
# The VM test tier: runs every compiled test of dist/test/vm/ inside one boot of the IPVS VM
# (scripts/vm/run.sh), spec output to stdout, TAP to --tap FILE (read by scripts/test.sh).
# When qemu or the kernel cannot be had, the TAP records the tier as skipped with the reason.
# Usage: scripts/vm/run-tier.sh [--tap FILE] [--timeout SECONDS] [TEST_PATH...]
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"

tap=""; timeout_s=2700; paths=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tap) tap=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    *) paths+=("$1"); shift ;;
  esac
done
[ ${#paths[@]} -eq 0 ] && paths=(dist/test/vm/)
[ -n "$tap" ] || tap=$(mktemp /tmp/fulcrum-vm-tap.XXXXXX)

# Records the whole tier as one skipped test, with the reason, in the TAP file.
skip_tier() {
  echo "tier vm: SKIPPED: $1" >&2
  local d; d=$(mktemp -d /tmp/fulcrum-vm-skip.XXXXXX)
  cat > "$d/vm-tier.test.mjs" <<'EOS'
import { test } from 'node:test';
test('VM tier (IPVS in a qemu guest)', (t) => { t.skip(process.env.FULCRUM_SKIP_REASON); });
EOS
  FULCRUM_SKIP_REASON="$1" node --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" "$d/vm-tier.test.mjs"
  rm -rf "$d"
  exit 0
}

command -v qemu-system-x86_64 >/dev/null || skip_tier "qemu-system-x86_64 is not installed (apt package qemu-system-x86)"
bash "$HERE/fetch-kernel.sh" >/dev/null || skip_tier "the Debian kernel with IPVS could not be fetched (scripts/vm/fetch-kernel.sh failed)"
[ -d dist/test/vm ] || { echo "run-tier: dist/test/vm missing: run npm run build first" >&2; exit 1; }

out=$(mktemp -d /tmp/fulcrum-vm-out.XXXXXX)
trap 'rm -rf "$out"' EXIT
bash "$HERE/run.sh" --timeout "$timeout_s" --out "$out" -- \
  node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination=/run/fulcrum-job/vm.tap "${paths[@]}"
rc=$?
if [ -s "$out/vm.tap" ]; then cp "$out/vm.tap" "$tap"; else : > "$tap"; fi
case $rc in
  0) ;;
  124) echo "run-tier: the VM tier timed out after ${timeout_s}s" >&2 ;;
  125) echo "run-tier: the VM could not boot" >&2 ;;
esac
exit $rc
