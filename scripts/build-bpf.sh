#!/usr/bin/env bash
# Compiles every bpf/*.bpf.c into bpf/build/*.bpf.o (with BTF, for libbpf and bpftool).
# -mcpu=v3: 32-bit ALU and jumps (kernel 5.1+; the XDP program needs 5.5+ anyway), fewer instructions.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bpf/build
shopt -s nullglob
for src in bpf/*.bpf.c; do
  obj="bpf/build/$(basename "${src%.c}").o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find bpf -name '*.h' -newer "$obj" -print -quit)" ]; then
    clang -O2 -g -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -Ibpf -c "$src" -o "$obj"
  fi
done
