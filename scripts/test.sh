#!/usr/bin/env bash
# The test command: set-up, then every tier (unit, kernel = netns on the host kernel, vm = IPVS in
# a qemu guest, cluster = a real etcd on loopback, ansible = the fulcrum.lb collection: offline
# checks and real ansible-playbook runs against agents in netns, ui = the dashboard in headless
# Chromium against a real agent, bgp = three XDP agents announcing a VIP over BGP + BFD through
# BIRD 2 to an ECMP router netns). A tier that cannot run here skips its tests with a printed reason.
# Usage: scripts/test.sh [unit|kernel|vm|cluster|ansible|ui|bgp ...]   (default: all tiers)
set -uo pipefail
cd "$(dirname "$0")/.."

tiers=("$@"); [ ${#tiers[@]} -eq 0 ] && tiers=(unit kernel vm cluster ansible ui bgp)
# setup.sh installs what only some tiers need (chromium for ui) when those tiers are named.
bash scripts/setup.sh "${tiers[@]}" || { echo "setup failed" >&2; exit 1; }
results=$(mktemp -d)
status=0
for tier in "${tiers[@]}"; do
  echo "=== tier: $tier"
  tap="$results/$tier.tap"
  case "$tier" in
    unit)   node --test --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/unit/ || status=1 ;;
    kernel) node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/kernel/ || status=1 ;;
    vm)     bash scripts/vm/run-tier.sh --tap "$tap" || status=1 ;;
    cluster) node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/cluster/ || status=1 ;;
    bgp)    node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/bgp/ || status=1 ;;
    ansible) node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/ansible/ || status=1 ;;
    ui)     node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" dist/test/ui/ || status=1 ;;
    *) echo "unknown tier $tier" >&2; exit 2 ;;
  esac
done

pass=0; fail=0; skip=0
for tier in "${tiers[@]}"; do
  tap="$results/$tier.tap"
  if [ ! -s "$tap" ]; then echo "tier $tier: produced no results (counted as one failure)"; status=1; fail=$((fail + 1)); continue; fi
  p=$(grep -E '^# pass ' "$tap" | tail -1 | awk '{print $3}'); f=$(grep -E '^# fail ' "$tap" | tail -1 | awk '{print $3}')
  s=$(grep -E '^# skipped ' "$tap" | tail -1 | awk '{print $3}'); c=$(grep -E '^# cancelled ' "$tap" | tail -1 | awk '{print $3}')
  t=$(grep -E '^# todo ' "$tap" | tail -1 | awk '{print $3}')
  # todo: known gaps that run and print what they see; never counted as passes.
  echo "tier $tier: ${p:-0} passed, ${f:-0} failed, ${c:-0} cancelled, ${s:-0} skipped$([ "${t:-0}" -gt 0 ] && echo ", $t todo")"
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${c:-0})); skip=$((skip + ${s:-0}))
done
# The failing tests by name, last, where a truncated log still shows them (TAP: "not ok N - name",
# subtests indented; todo entries are not failures).
for tier in "${tiers[@]}"; do
  tap="$results/$tier.tap"
  [ -s "$tap" ] && grep -E '^\s*not ok [0-9]+ - ' "$tap" | grep -v '# TODO' | sed -E "s/^\s*not ok [0-9]+ - /failed in $tier: /"
done
[ "$fail" -gt 0 ] && status=1
echo "total: $pass passed, $fail failed, $skip skipped"
exit $status
