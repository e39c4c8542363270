import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { netnsSkipReason, run } from './netns.js';

const here = dirname(fileURLToPath(import.meta.url));
/** bpf/build of the repository, from dist/test/helpers. */
export const BPF_BUILD = join(here, '..', '..', '..', 'bpf', 'build');

export function objectPath(name: string): string {
  return join(BPF_BUILD, `${name}.bpf.o`);
}

/** Why kernel BPF tests cannot run here (root, the objects, bpftool), or undefined. */
export function bpfSkipReason(...objects: string[]): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (loading BPF programs, bpffs, netns)';
  const ns = netnsSkipReason();
  if (ns) return ns;
  for (const o of objects) if (!existsSync(objectPath(o))) return `${objectPath(o)} is missing (run scripts/build-bpf.sh)`;
  if (!existsSync('/usr/sbin/bpftool') && !existsSync('/usr/bin/bpftool') && !existsSync('/sbin/bpftool')) return 'needs bpftool (apt bpftool)';
  return undefined;
}

/** `bpftool -j ARGS` (optionally inside a netns), parsed. The independent read-back tool. */
export async function bpftool(args: string[], netns?: string): Promise<unknown> {
  const argv = ['-j', ...args];
  const r = netns ? await run('ip', ['netns', 'exec', netns, 'bpftool', ...argv]) : await run('bpftool', argv);
  return JSON.parse(r.stdout);
}

interface BtfJsonType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  vlen?: number;
  members?: Array<{ name: string; type_id: number; bits_offset: number; bitfield_size?: number }>;
  vars?: Array<{ type_id: number; name: string; offset: number; size: number }>;
  values?: Array<{ name: string; val: number }>;
}

/**
 * Struct layout computed from `bpftool btf dump file F -j` alone (no libbpf-ts code): the reference
 * the binding's Btf.structLayout() must agree with.
 */
export async function bpftoolStructLayout(file: string, name: string): Promise<{ size: number; members: Array<{ name: string; offset: number; size: number }> }> {
  const dump = (await bpftool(['btf', 'dump', 'file', file])) as { types: BtfJsonType[] };
  const byId = new Map(dump.types.map((t) => [t.id, t]));
  const sizeOf = (id: number): number => {
    const t = byId.get(id);
    if (!t) throw new Error(`no type ${id}`);
    switch (t.kind) {
      case 'INT': case 'STRUCT': case 'UNION': case 'ENUM': case 'ENUM64': case 'FLOAT': case 'DATASEC': return t.size!;
      case 'PTR': return 8;
      case 'ARRAY': return t.nr_elems! * sizeOf(t.type_id!);
      default: return sizeOf(t.type_id!); // TYPEDEF, CONST, VOLATILE, RESTRICT, TYPE_TAG
    }
  };
  const s = dump.types.find((t) => t.kind === 'STRUCT' && t.name === name);
  if (!s) throw new Error(`bpftool: no struct ${name}`);
  return { size: s.size!, members: s.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOf(m.type_id) })) };
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
