import { FulcrumError } from '../errors.js';

/**
 * Struct layouts as read from BTF (pure data, no kernel): what the TypeScript side uses to encode
 * map keys/values, and what it checks its expectations against (STYLE #5: never hand-sync structs).
 */

export interface MemberLayout {
  name: string;
  /** Byte offset in the struct (for bitfields: the byte holding the first bit). */
  offset: number;
  /** Size in bytes (btf__resolve_size of the member type; for bitfields the storage unit). */
  size: number;
  /** A C-ish spelling of the type, typedef names kept: '__be32', '__u8[16]', 'struct foo'. */
  type: string;
  /** Set for bitfields only. */
  bitOffset?: number;
  bitSize?: number;
}

export interface StructLayout {
  name: string;
  kind: 'struct' | 'union';
  size: number;
  members: MemberLayout[];
}

export interface ExpectedLayout {
  size?: number;
  /** Members that must exist with this offset (and size when given). */
  members: Array<{ name: string; offset: number; size?: number }>;
  /** When true, the actual layout must have no other members. */
  exact?: boolean;
}

/** Differences between what the TypeScript side expects and what the BTF says; empty when they agree. */
export function layoutMismatches(expected: ExpectedLayout, actual: StructLayout): string[] {
  const out: string[] = [];
  if (expected.size !== undefined && expected.size !== actual.size) out.push(`size is ${actual.size}, expected ${expected.size}`);
  const byName = new Map(actual.members.map((m) => [m.name, m]));
  for (const m of expected.members) {
    const a = byName.get(m.name);
    if (!a) {
      out.push(`member ${m.name} is missing`);
      continue;
    }
    if (a.offset !== m.offset) out.push(`member ${m.name} is at offset ${a.offset}, expected ${m.offset}`);
    if (m.size !== undefined && a.size !== m.size) out.push(`member ${m.name} is ${a.size} bytes, expected ${m.size}`);
  }
  if (expected.exact) {
    const want = new Set(expected.members.map((m) => m.name));
    for (const a of actual.members) if (!want.has(a.name)) out.push(`unexpected member ${a.name} at offset ${a.offset}`);
  }
  return out;
}

/** Throws FulcrumError('INTERNAL') listing every mismatch (a build that drifted from its C header). */
export function assertLayout(expected: ExpectedLayout, actual: StructLayout): void {
  const bad = layoutMismatches(expected, actual);
  if (bad.length > 0) {
    throw new FulcrumError('INTERNAL', `${actual.kind} ${actual.name} does not match: ${bad.join('; ')}`, { details: { expected, actual } });
  }
}

export type FieldValue = number | bigint | Buffer;

function isScalar(m: MemberLayout): boolean {
  return [1, 2, 4, 8].includes(m.size) && !m.type.includes('[') && !/^(struct|union) /.test(m.type);
}

function isBigEndian(m: MemberLayout): boolean {
  return /^__be(16|32|64)$/.test(m.type);
}

/**
 * Encodes an object into a Buffer laid out as `layout` says. Integer members (1, 2, 4, 8 bytes) take
 * numbers/bigints in host order, or network order when their C type is __be16/__be32/__be64; other
 * members (arrays, nested structs) take a Buffer of their exact size. Missing members are zero.
 * Bitfields are not supported (throws).
 */
export function encodeStruct(layout: StructLayout, values: Record<string, FieldValue>): Buffer {
  const buf = Buffer.alloc(layout.size);
  const byName = new Map(layout.members.map((m) => [m.name, m]));
  for (const [name, v] of Object.entries(values)) {
    const m = byName.get(name);
    if (!m) throw new FulcrumError('INVALID_REQUEST', `${layout.kind} ${layout.name} has no member ${name}`);
    if (m.bitSize !== undefined) throw new FulcrumError('INVALID_REQUEST', `${layout.name}.${name} is a bitfield (unsupported)`);
    writeField(buf, m, v, layout.name);
  }
  return buf;
}

function writeField(buf: Buffer, m: MemberLayout, v: FieldValue, struct: string): void {
  if (Buffer.isBuffer(v)) {
    if (v.length !== m.size) throw new FulcrumError('INVALID_REQUEST', `${struct}.${m.name} is ${m.size} bytes, got ${v.length}`);
    v.copy(buf, m.offset);
    return;
  }
  const be = isBigEndian(m);
  const big = BigInt(v);
  const bits = BigInt(m.size * 8);
  if (!isScalar(m)) throw new FulcrumError('INVALID_REQUEST', `${struct}.${m.name} (${m.type}, ${m.size} bytes) takes a Buffer`);
  if (big < -(1n << (bits - 1n)) || big >= 1n << bits) throw new FulcrumError('INVALID_REQUEST', `${struct}.${m.name}: ${v} does not fit in ${m.size} bytes`);
  const u = BigInt.asUintN(Number(bits), big);
  for (let i = 0; i < m.size; i++) {
    const byte = Number((u >> BigInt(8 * i)) & 0xffn);
    buf[m.offset + (be ? m.size - 1 - i : i)] = byte;
  }
}

/** Decodes a Buffer laid out as `layout`: integers (unsigned) as number (bigint for 8 bytes), others as Buffer. */
export function decodeStruct(layout: StructLayout, buf: Buffer): Record<string, number | bigint | Buffer> {
  if (buf.length < layout.size) throw new FulcrumError('INVALID_REQUEST', `${layout.name}: ${buf.length} bytes, need ${layout.size}`);
  const out: Record<string, number | bigint | Buffer> = {};
  for (const m of layout.members) {
    if (m.bitSize !== undefined) continue;
    if (isScalar(m)) {
      let u = 0n;
      const be = isBigEndian(m);
      for (let i = 0; i < m.size; i++) u |= BigInt(buf[m.offset + (be ? m.size - 1 - i : i)] ?? 0) << BigInt(8 * i);
      out[m.name] = m.size === 8 ? u : Number(u);
    } else {
      out[m.name] = Buffer.from(buf.subarray(m.offset, m.offset + m.size));
    }
  }
  return out;
}
