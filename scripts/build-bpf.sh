#!/usr/bin/env bash
# Compiles the BPF programs into bpf/build/<name>.bpf.o (with BTF, for libbpf and bpftool): the
# production entry points in bpf/, the test objects in bpf/test/ and the bench objects in bpf/bench/
# all land in the one directory, so a program's object path does not depend on its role.
# -mcpu=v3: 32-bit ALU and jumps (kernel 5.1+; the XDP program needs 5.5+ anyway), fewer instructions.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bpf/build
shopt -s nullglob
declare -A seen=()
for src in bpf/*.bpf.c bpf/test/*.bpf.c bpf/bench/*.bpf.c; do
  name="$(basename "${src%.c}")"
  if [ -n "${seen[$name]:-}" ]; then echo "build-bpf: $src and ${seen[$name]} would both build bpf/build/$name.o" >&2; exit 1; fi
  seen[$name]="$src"
  obj="bpf/build/$name.o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find bpf -name '*.h' -newer "$obj" -print -quit)" ]; then
    clang -O2 -g -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -Ibpf -c "$src" -o "$obj"
  fi
done
