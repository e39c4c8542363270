#!/usr/bin/env bash
# Runs one command inside a qemu guest that boots Debian's kernel (which has IPVS). The guest sees the
# host root read-only (so node, ipvsadm and this repo are there), tmpfs /tmp and /run, and loads
# kernel modules on demand (ip_vs is loaded before the command starts).
#
# Usage: scripts/vm/run.sh [--timeout SECONDS] [--cwd DIR] [--env NAME=VALUE]... [--out DIR] -- COMMAND [ARG]...
#   The command runs as root with cwd = DIR (default: the repo root). Its stdout/stderr stream to
#   ours and its exit code is ours. Inside, /run/fulcrum-job is a writable directory shared with the
#   host: files written there are copied to --out DIR (if given) after the run.
#   Exit codes: the command's own; 124 on timeout (default 1800 s); 125 when the VM cannot boot.
# Several runs may go on at once (each has its own temp dir). KVM hangs on this machine: TCG only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

timeout_s=1800; cwd=$REPO; out=""; envs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_s=$2; shift 2 ;;
    --cwd) cwd=$(cd "$2" && pwd); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option $1 (usage: run.sh [--timeout S] [--cwd DIR] [--env N=V] [--out DIR] -- CMD...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "run.sh: no command given" >&2; exit 2; }

command -v qemu-system-x86_64 >/dev/null || { echo "run.sh: qemu-system-x86_64 not installed (apt package qemu-system-x86)" >&2; exit 125; }
KDIR=$(bash "$HERE/fetch-kernel.sh" | tail -1) || { echo "run.sh: no VM kernel (see fetch-kernel.sh output above)" >&2; exit 125; }
VERSION=$(basename "$KDIR")

JOB=$(mktemp -d /tmp/fulcrum-vm.XXXXXX)
qpid=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  rm -rf "$JOB"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf 'MODROOT=%q\nREPO=%q\n' "$KDIR/root" "$REPO" > "$JOB/config"
{
  echo 'set -e'
  for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
  printf 'cd %q\n' "$cwd"
  echo 'set +e'
  printf 'exec'; printf ' %q' "$@"; echo
} > "$JOB/job.sh"
: > "$JOB/stdout"; : > "$JOB/stderr"

# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic
# ("IO-APIC + timer doesn't work"); the check is meaningless in a VM.
boot() {
  timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot \
    -kernel "$KDIR/root/boot/vmlinuz-$VERSION" -initrd "$KDIR/initrd.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check" \
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev "local,id=repo,path=$REPO,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=repo,mount_tag=repo \
    -fsdev "local,id=job,path=$JOB,security_model=none" \
    -device virtio-9p-pci,fsdev=job,mount_tag=job \
    -nic none < /dev/null > "$JOB/console.log" 2>&1 &
  qpid=$!
  # Stream the guest command's output while it runs.
  tail -q -n +1 -f --pid="$qpid" "$JOB/stdout" &
  t1=$!
  tail -q -n +1 -f --pid="$qpid" "$JOB/stderr" >&2 &
  t2=$!
  set +e
  wait "$qpid"; qrc=$?
  qpid=""
  wait "$t1" "$t2" 2>/dev/null
  set -e
}

# A boot that died before the command wrote anything (a kernel panic at boot) is retried; a
# command that started is never run twice.
for attempt in 1 2 3; do
  boot
  if [ -f "$JOB/rc" ] || [ -s "$JOB/stdout" ] || [ -s "$JOB/stderr" ] || [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then break; fi
  echo "run.sh: boot attempt $attempt failed (qemu exit $qrc); console tail:" >&2
  tail -n 5 "$JOB/console.log" >&2
done

if [ -n "$out" ]; then
  mkdir -p "$out"
  find "$JOB" -mindepth 1 -maxdepth 1 ! -name config ! -name job.sh ! -name stdout ! -name stderr \
    ! -name console.log ! -name rc -exec cp -r {} "$out"/ \;
fi
if [ -f "$JOB/rc" ]; then
  rc=$(cat "$JOB/rc")
  if grep -q failed "$JOB/modprobe.log" 2>/dev/null; then echo "run.sh: in the guest: $(cat "$JOB/modprobe.log")" >&2; fi
  exit "$rc"
fi
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
  echo "run.sh: timed out after ${timeout_s}s" >&2; exit 124
fi
echo "run.sh: the VM ended without running the command (qemu exit $qrc); console:" >&2
tail -n 30 "$JOB/console.log" >&2
exit 125
