import { ipToBytes, bytesToIp, bytesToMac, macToBytes, type Family } from '../model/net.js';

/**
 * The control plane's view of bpf/fulcrum_xdp.h: struct layouts, map names and constants.
 * This is a CHECKED table, not a second definition: test/unit/xdp-abi.test.ts compares every entry
 * with the BTF of the compiled object (bpftool btf dump), and the dataplane compares the struct
 * sizes with the sizes the kernel reports for the loaded maps. Edit the header first, then here.
 */

export interface FieldLayout { offset: number; size: number }
export interface StructLayout { size: number; fields: Record<string, FieldLayout> }

export const STRUCTS = {
  fl_vip_key: { size: 20, fields: { addr: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, proto: { offset: 18, size: 1 }, family: { offset: 19, size: 1 } } },
  fl_vip_meta: { size: 12, fields: { id: { offset: 0, size: 4 }, table_hash: { offset: 4, size: 4 }, mode: { offset: 8, size: 1 }, slot: { offset: 9, size: 1 }, pad: { offset: 10, size: 2 } } },
  fl_backend: {
    size: 36,
    fields: {
      addr: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, mac: { offset: 18, size: 6 }, family: { offset: 24, size: 1 },
      flags: { offset: 25, size: 1 }, weight: { offset: 26, size: 2 }, vip_id: { offset: 28, size: 4 }, gen: { offset: 32, size: 4 },
    },
  },
  fl_flow_key: {
    size: 40,
    fields: {
      src: { offset: 0, size: 16 }, dst: { offset: 16, size: 16 }, sport: { offset: 32, size: 2 }, dport: { offset: 34, size: 2 },
      proto: { offset: 36, size: 1 }, family: { offset: 37, size: 1 }, pad: { offset: 38, size: 2 },
    },
  },
  fl_maglev_line: { size: 64, fields: { entry: { offset: 0, size: 64 } } },
  fl_config: {
    size: 16,
    fields: { maglev_size: { offset: 0, size: 4 }, maglev_stride: { offset: 4, size: 4 }, max_vips: { offset: 8, size: 4 }, max_backends: { offset: 12, size: 4 } },
  },
  fl_vip_slot: { size: 32, fields: { key: { offset: 0, size: 20 }, meta: { offset: 20, size: 12 } } },
  fl_ct_entry: {
    size: 64,
    fields: {
      key: { offset: 0, size: 40 }, backend: { offset: 40, size: 4 }, gen: { offset: 44, size: 2 }, tag: { offset: 46, size: 2 },
      seen: { offset: 48, size: 4 }, pad: { offset: 52, size: 12 },
    },
  },
  fl_ct_set: { size: 256, fields: { way: { offset: 0, size: 256 } } },
  fl_rnat: { size: 28, fields: { vip: { offset: 0, size: 16 }, vport: { offset: 16, size: 2 }, flags: { offset: 18, size: 2 }, vip_id: { offset: 20, size: 4 }, backend: { offset: 24, size: 4 } } },
  fl_counters: {
    size: 40,
    fields: {
      pkts_in: { offset: 0, size: 8 }, bytes_in: { offset: 8, size: 8 }, pkts_out: { offset: 16, size: 8 }, bytes_out: { offset: 24, size: 8 },
      new_flows: { offset: 32, size: 8 },
    },
  },
  fl_nexthop: {
    size: 32,
    fields: {
      dmac: { offset: 0, size: 6 }, smac: { offset: 6, size: 6 }, ifindex: { offset: 12, size: 4 }, gen: { offset: 16, size: 4 },
      pad: { offset: 20, size: 4 }, expires: { offset: 24, size: 8 },
    },
  },
  fl_backend_pcpu: { size: 72, fields: { counters: { offset: 0, size: 40 }, nh: { offset: 40, size: 32 } } },
  fl_flow_event: {
    size: 72,
    fields: {
      key: { offset: 0, size: 40 }, backend_addr: { offset: 40, size: 16 }, backend_port: { offset: 56, size: 2 }, mode: { offset: 58, size: 1 },
      pad: { offset: 59, size: 1 }, backend: { offset: 60, size: 4 }, gen: { offset: 64, size: 4 }, pad2: { offset: 68, size: 4 },
    },
  },
  fl_export_counters: { size: 16, fields: { exported: { offset: 0, size: 8 }, dropped: { offset: 8, size: 8 } } },
} as const satisfies Record<string, StructLayout>;

/** Enum constants of the header, by enum name. */
export const ENUMS = {
  fl_limits: {
    FL_DEFAULT_MAX_VIPS: 256, FL_DEFAULT_MAX_BACKENDS: 16384, FL_DEFAULT_MAGLEV_SIZE: 65537, FL_DEFAULT_CONNTRACK_SIZE: 262144,
    FL_MAGLEV_SLOTS: 2, FL_FILTER_WORDS: 1024, FL_FILTER_MULT: 0x9e3779b1, FL_NO_BACKEND: 0xffffffff,
    FL_CT_WAYS: 4, FL_CT_SEEN_SHIFT: 3, FL_VIP_INDEX_SIZE: 65536, FL_MAGLEV_LINE: 16, FL_DEFAULT_FLOW_RING: 262144,
  },
  fl_family: { FL_FAMILY_INET: 2, FL_FAMILY_INET6: 10 },
  fl_mode: { FL_MODE_NAT: 0, FL_MODE_DR: 1 },
  fl_backend_flag: { FL_BACKEND_ACTIVE: 1, FL_BACKEND_SHARED_NAT: 2 },
  fl_rnat_flag: { FL_RNAT_SHARED: 1 },
} as const;

export const L = ENUMS.fl_limits;

/** Map names in the object, with the key and value struct each one holds (u32 = array index/value). */
export const MAPS = {
  vips: { key: 'fl_vip_key', value: 'fl_vip_meta' },
  vip_index: { key: 'u32', value: 'fl_vip_slot' },
  maglev: { key: 'u32', value: 'fl_maglev_line' },
  config: { key: 'u32', value: 'fl_config' },
  backends: { key: 'u32', value: 'fl_backend' },
  conntrack: { key: 'u32', value: 'fl_ct_set' },
  reverse_nat: { key: 'fl_flow_key', value: 'fl_rnat' },
  nat_endpoints: { key: 'fl_vip_key', value: 'fl_rnat' },
  stats: { key: 'u32', value: 'fl_counters' },
  filter: { key: 'u32', value: 'u64' },
  backend_pcpu: { key: 'u32', value: 'fl_backend_pcpu' },
  /** A ring buffer: no key or value (records are fl_flow_event). */
  flow_events: { key: 'none', value: 'none' },
  flow_export_stats: { key: 'u32', value: 'fl_export_counters' },
} as const;
export type MapName = keyof typeof MAPS;

/** Load-time knobs (`const volatile` in the program's .rodata). */
export const KNOBS = ['maglev_size', 'maglev_stride', 'max_vips', 'max_backends', 'ct_sets', 'hash_seed', 'nexthop_ttl_jiffies', 'flow_export'] as const;

export const PROGRAM_NAME = 'fulcrum_xdp';

export const IPPROTO = { tcp: 6, udp: 17 } as const;

export function familyCode(f: Family): number {
  return f === 'inet' ? ENUMS.fl_family.FL_FAMILY_INET : ENUMS.fl_family.FL_FAMILY_INET6;
}

function put(buf: Buffer, s: StructLayout, field: string, bytes: Uint8Array): void {
  const f = s.fields[field];
  if (!f || bytes.length > f.size) throw new RangeError(`field ${field}: ${bytes.length} bytes do not fit`);
  buf.set(bytes, f.offset);
}
function off(s: StructLayout, field: string): number {
  const f = s.fields[field];
  if (!f) throw new RangeError(`no field ${field}`);
  return f.offset;
}

/** Address bytes as the program stores them: IPv4 in the first 4 of 16 bytes. */
export function addr16(address: string): Buffer {
  const out = Buffer.alloc(16);
  out.set(ipToBytes(address), 0);
  return out;
}

export interface VipKey { address: string; family: Family; port: number; protocol: 'tcp' | 'udp' }
export interface VipMeta { id: number; mode: 'nat' | 'dr'; slot: 0 | 1; tableHash: number }
export interface BackendValue { address: string; family: Family; port: number; mac: string | undefined; active: boolean; sharedNat: boolean; weight: number; vipId: number; gen: number }
/** A nat_endpoints value: the VIP replies of an endpoint get, the slot its flows must be on. */
export interface EndpointValue { vip: string; vport: number; vipId: number; slot: number; shared: boolean }
export interface CountersValue { pktsIn: bigint; bytesIn: bigint; pktsOut: bigint; bytesOut: bigint; newFlows: bigint }

export function encodeVipKey(k: VipKey): Buffer {
  const s = STRUCTS.fl_vip_key;
  const b = Buffer.alloc(s.size);
  put(b, s, 'addr', addr16(k.address));
  b.writeUInt16BE(k.port, off(s, 'port'));
  b.writeUInt8(IPPROTO[k.protocol], off(s, 'proto'));
  b.writeUInt8(familyCode(k.family), off(s, 'family'));
  return b;
}

export function decodeVipKey(b: Uint8Array): VipKey {
  const s = STRUCTS.fl_vip_key;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const family: Family = buf.readUInt8(off(s, 'family')) === ENUMS.fl_family.FL_FAMILY_INET ? 'inet' : 'inet6';
  const proto = buf.readUInt8(off(s, 'proto'));
  const a = buf.subarray(0, family === 'inet' ? 4 : 16);
  return { address: bytesToIp(a), family, port: buf.readUInt16BE(off(s, 'port')), protocol: proto === IPPROTO.udp ? 'udp' : 'tcp' };
}

export function encodeVipMeta(m: VipMeta): Buffer {
  const s = STRUCTS.fl_vip_meta;
  const b = Buffer.alloc(s.size);
  b.writeUInt32LE(m.id, off(s, 'id'));
  b.writeUInt32LE(m.tableHash >>> 0, off(s, 'table_hash'));
  b.writeUInt8(m.mode === 'dr' ? ENUMS.fl_mode.FL_MODE_DR : ENUMS.fl_mode.FL_MODE_NAT, off(s, 'mode'));
  b.writeUInt8(m.slot, off(s, 'slot'));
  return b;
}

export function decodeVipMeta(b: Uint8Array): VipMeta {
  const s = STRUCTS.fl_vip_meta;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return {
    id: buf.readUInt32LE(off(s, 'id')),
    mode: buf.readUInt8(off(s, 'mode')) === ENUMS.fl_mode.FL_MODE_DR ? 'dr' : 'nat',
    slot: (buf.readUInt8(off(s, 'slot')) & 1) as 0 | 1,
    tableHash: buf.readUInt32LE(off(s, 'table_hash')),
  };
}

/** A vip_index value: the VIP's key and meta side by side. */
export function encodeVipSlot(key: VipKey, meta: VipMeta): Buffer {
  return Buffer.concat([encodeVipKey(key), encodeVipMeta(meta)]);
}

/** undefined for an empty index (family 0). */
export function decodeVipSlot(b: Uint8Array): { key: VipKey; meta: VipMeta } | undefined {
  const s = STRUCTS.fl_vip_slot;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.readUInt8(off(s, 'key') + STRUCTS.fl_vip_key.fields.family.offset) === 0) return undefined;
  return { key: decodeVipKey(buf.subarray(0, STRUCTS.fl_vip_key.size)), meta: decodeVipMeta(buf.subarray(off(s, 'meta'))) };
}

export function encodeBackend(v: BackendValue): Buffer {
  const s = STRUCTS.fl_backend;
  const b = Buffer.alloc(s.size);
  put(b, s, 'addr', addr16(v.address));
  b.writeUInt16BE(v.port, off(s, 'port'));
  if (v.mac) put(b, s, 'mac', macToBytes(v.mac));
  b.writeUInt8(familyCode(v.family), off(s, 'family'));
  b.writeUInt8((v.active ? ENUMS.fl_backend_flag.FL_BACKEND_ACTIVE : 0) | (v.sharedNat ? ENUMS.fl_backend_flag.FL_BACKEND_SHARED_NAT : 0), off(s, 'flags'));
  b.writeUInt16LE(v.weight, off(s, 'weight'));
  b.writeUInt32LE(v.vipId, off(s, 'vip_id'));
  b.writeUInt32LE(v.gen >>> 0, off(s, 'gen'));
  return b;
}

export function decodeBackend(b: Uint8Array): BackendValue {
  const s = STRUCTS.fl_backend;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const family: Family = buf.readUInt8(off(s, 'family')) === ENUMS.fl_family.FL_FAMILY_INET6 ? 'inet6' : 'inet';
  const macBytes = buf.subarray(off(s, 'mac'), off(s, 'mac') + 6);
  const mac = macBytes.every((x) => x === 0) ? undefined : bytesToMac(macBytes);
  return {
    address: bytesToIp(buf.subarray(0, family === 'inet' ? 4 : 16)),
    family,
    port: buf.readUInt16BE(off(s, 'port')),
    mac,
    active: (buf.readUInt8(off(s, 'flags')) & ENUMS.fl_backend_flag.FL_BACKEND_ACTIVE) !== 0,
    sharedNat: (buf.readUInt8(off(s, 'flags')) & ENUMS.fl_backend_flag.FL_BACKEND_SHARED_NAT) !== 0,
    weight: buf.readUInt16LE(off(s, 'weight')),
    vipId: buf.readUInt32LE(off(s, 'vip_id')),
    gen: buf.readUInt32LE(off(s, 'gen')),
  };
}

export function encodeEndpoint(v: EndpointValue): Buffer {
  const s = STRUCTS.fl_rnat;
  const b = Buffer.alloc(s.size);
  put(b, s, 'vip', addr16(v.vip));
  b.writeUInt16BE(v.vport, off(s, 'vport'));
  b.writeUInt16LE(v.shared ? ENUMS.fl_rnat_flag.FL_RNAT_SHARED : 0, off(s, 'flags'));
  b.writeUInt32LE(v.vipId, off(s, 'vip_id'));
  b.writeUInt32LE(v.slot, off(s, 'backend'));
  return b;
}

export function decodeEndpoint(b: Uint8Array, family: Family): EndpointValue {
  const s = STRUCTS.fl_rnat;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return {
    vip: bytesToIp(buf.subarray(0, family === 'inet' ? 4 : 16)),
    vport: buf.readUInt16BE(off(s, 'vport')),
    vipId: buf.readUInt32LE(off(s, 'vip_id')),
    slot: buf.readUInt32LE(off(s, 'backend')),
    shared: (buf.readUInt16LE(off(s, 'flags')) & ENUMS.fl_rnat_flag.FL_RNAT_SHARED) !== 0,
  };
}

export function decodeCounters(b: Uint8Array): CountersValue {
  const s = STRUCTS.fl_counters;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return {
    pktsIn: buf.readBigUInt64LE(off(s, 'pkts_in')),
    bytesIn: buf.readBigUInt64LE(off(s, 'bytes_in')),
    pktsOut: buf.readBigUInt64LE(off(s, 'pkts_out')),
    bytesOut: buf.readBigUInt64LE(off(s, 'bytes_out')),
    newFlows: buf.readBigUInt64LE(off(s, 'new_flows')),
  };
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** Entries from one Maglev table to the next: the table size rounded up to whole lines. */
export function maglevStride(tableSize: number): number {
  return Math.ceil(tableSize / L.FL_MAGLEV_LINE) * L.FL_MAGLEV_LINE;
}

/** Entry (line * FL_MAGLEV_LINE + lane) of entry `h` of a VIP's maglev table in `slot`, as the program computes it. */
export function maglevIndex(vipId: number, slot: 0 | 1, h: number, tableSize: number): number {
  return (vipId * L.FL_MAGLEV_SLOTS + slot) * maglevStride(tableSize) + h;
}

/** XOR of the four little-endian words of the 16-byte address (the program's addr_fold). */
function addrFold(address: string): number {
  const a = addr16(address);
  return (a.readUInt32LE(0) ^ a.readUInt32LE(4) ^ a.readUInt32LE(8) ^ a.readUInt32LE(12)) >>> 0;
}

/** A port as the program loads it: the network-order u16 read on this little-endian host. */
function rawPort(port: number): number {
  return ((port & 0xff) << 8) | (port >>> 8);
}

/**
 * fl_endpoint_hash of bpf/fulcrum_xdp.h, bit for bit: the address words as the program loads them
 * on this (little-endian) host, the port as its raw network-order u16. The packet fixtures prove
 * the two agree (a VIP whose bit is missing would pass untouched).
 */
export function endpointHash(address: string, port: number, protocol: 'tcp' | 'udp'): number {
  const x = (addrFold(address) ^ (rawPort(port) << 8) ^ IPPROTO[protocol]) >>> 0;
  return Math.imul(x, L.FL_FILTER_MULT) >>> 16;
}

/** The filter bitmap (FL_FILTER_WORDS u64 words) with the bits of `endpoints` set. */
export function filterWords(endpoints: Iterable<{ address: string; port: number; protocol: 'tcp' | 'udp' }>): BigUint64Array {
  const words = new BigUint64Array(L.FL_FILTER_WORDS);
  for (const e of endpoints) {
    const h = endpointHash(e.address, e.port, e.protocol);
    words[h >>> 6] = words[h >>> 6]! | (1n << BigInt(h & 63));
  }
  return words;
}

const HASH_SEED = 0x9e3779b9; // the program's hash_seed default (the control plane does not change it)

export interface FlowTuple { src: string; dst: string; sport: number; dport: number; protocol: 'tcp' | 'udp' }

/**
 * flow_hash of bpf/lib/hash.h, bit for bit: the flow's Maglev entry is maglevPosition(),
 * its conntrack set conntrackSet(), its tag the low 16 bits. The packet fixtures prove the two
 * agree (they predict the backend and the set of flows from it).
 */
export function flowHash(f: FlowTuple): number {
  // 64-bit arithmetic on 32-bit halves (BigInt cost ~30 us a hash; the flow sync hashes every record).
  let [hi, lo] = mul64(addrFold(f.src), addrFold(f.dst), 0x9e3779b9, 0x7f4a7c15);
  lo = (lo ^ hi) >>> 0;
  hi = (hi ^ (((rawPort(f.sport) << 16) | rawPort(f.dport)) >>> 0)) >>> 0;
  lo = (lo ^ ((HASH_SEED ^ IPPROTO[f.protocol]) >>> 0)) >>> 0;
  [hi, lo] = mul64(hi, lo, 0xff51afd7, 0xed558ccd);
  lo = (lo ^ (((lo >>> 29) | (hi << 3)) >>> 0)) >>> 0;
  hi = (hi ^ (hi >>> 29)) >>> 0;
  [hi, lo] = mul64(hi, lo, 0xc4ceb9fe, 0x1a85ec53);
  return (lo ^ hi) >>> 0;
}

/** The low 64 bits of (ah:al) * (bh:bl), as [high 32, low 32] unsigned. */
function mul64(ah: number, al: number, bh: number, bl: number): [number, number] {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = p11 + Math.floor(p01 / 65536) + Math.floor(p10 / 65536) + Math.floor(mid / 65536);
  return [(carry + Math.imul(al, bh) + Math.imul(ah, bl)) >>> 0, lo];
}

/** The entry of a Maglev table of `size` that a flow hash reads (the program's maglev_pos). */
export function maglevPosition(hash: number, size: number): number {
  const r = ((hash << 16) | (hash >>> 16)) >>> 0;
  return Number((BigInt(r) * BigInt(size)) >> 32n);
}

/** The conntrack set a flow hash lives in. */
export function conntrackSet(hash: number, sets: number): number {
  return Number((BigInt(hash >>> 0) * BigInt(sets)) >> 32n);
}

export interface ConntrackEntry { src: string; dst: string; sport: number; dport: number; protocol: 'tcp' | 'udp'; backend: number; gen: number; tag: number; seen: number }

/** The used ways of one conntrack set (fl_ct_set). */
export function decodeConntrackSet(b: Uint8Array): ConntrackEntry[] {
  const e = STRUCTS.fl_ct_entry, k = STRUCTS.fl_flow_key;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const out: ConntrackEntry[] = [];
  for (let w = 0; w < L.FL_CT_WAYS; w++) {
    const at = w * e.size;
    const family = buf.readUInt8(at + k.fields.family.offset);
    if (family === 0) continue;
    const n = family === ENUMS.fl_family.FL_FAMILY_INET ? 4 : 16;
    out.push({
      src: bytesToIp(buf.subarray(at + k.fields.src.offset, at + k.fields.src.offset + n)),
      dst: bytesToIp(buf.subarray(at + k.fields.dst.offset, at + k.fields.dst.offset + n)),
      sport: buf.readUInt16BE(at + k.fields.sport.offset),
      dport: buf.readUInt16BE(at + k.fields.dport.offset),
      protocol: buf.readUInt8(at + k.fields.proto.offset) === IPPROTO.udp ? 'udp' : 'tcp',
      backend: buf.readUInt32LE(at + e.fields.backend.offset),
      gen: buf.readUInt16LE(at + e.fields.gen.offset),
      tag: buf.readUInt16LE(at + e.fields.tag.offset),
      seen: buf.readUInt32LE(at + e.fields.seen.offset),
    });
  }
  return out;
}
