#!/usr/bin/env bash
# The test command: set-up, then every tier (unit, kernel = netns on the host kernel, vm = IPVS in
# a qemu guest). A tier that cannot run here skips its tests with a printed reason.
# Usage: scripts/test.sh [unit|kernel|vm ...]   (default: all tiers)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed" >&2; exit 1; }

tiers=("$@"); [ ${#tiers[@]} -eq 0 ] && tiers=(unit kernel vm)
results=$(mktemp -d)
status=0
for tier in "${tiers[@]}"; do
  echo "=== tier: $tier"
  tap="$results/$tier.tap"
  case "$tier" in
    unit)   node --test --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/unit/ || status=1 ;;
    kernel) node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/kernel/ || status=1 ;;
    vm)     bash scripts/vm/run-tier.sh --tap "$tap" || status=1 ;;
    *) echo "unknown tier $tier" >&2; exit 2 ;;
  esac
done

pass=0; fail=0; skip=0
for tier in "${tiers[@]}"; do
  tap="$results/$tier.tap"
  if [ ! -s "$tap" ]; then echo "tier $tier: produced no results (counted as one failure)"; status=1; fail=$((fail + 1)); continue; fi
  p=$(grep -E '^# pass ' "$tap" | tail -1 | awk '{print $3}'); f=$(grep -E '^# fail ' "$tap" | tail -1 | awk '{print $3}')
  s=$(grep -E '^# skipped ' "$tap" | tail -1 | awk '{print $3}'); c=$(grep -E '^# cancelled ' "$tap" | tail -1 | awk '{print $3}')
  echo "tier $tier: ${p:-0} passed, ${f:-0} failed, ${c:-0} cancelled, ${s:-0} skipped"
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${c:-0})); skip=$((skip + ${s:-0}))
done
[ "$fail" -gt 0 ] && status=1
echo "total: $pass passed, $fail failed, $skip skipped"
exit $status
