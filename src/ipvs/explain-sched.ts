import { ipToBytes } from '../model/net.js';

/**
 * The IPVS hashing schedulers (sh, mh, dh), reproduced from the kernel (net/netfilter/ipvs/
 * ip_vs_sh.c, ip_vs_mh.c, ip_vs_dh.c, lib/siphash.c) so that `fulcrum explain` can say which
 * destination a NEW connection will get. Pure functions of the destination list in the kernel's
 * order (the order a netlink dump returns: newest first, as list_add_rcu puts them at the head),
 * their weights, the service flags and the client's address and port. The VM tier proves that
 * real connections go where these say (test/vm/explain-ipvs.test.ts).
 *
 * Table sizes are build options of the kernel: Debian's (the VM's) CONFIG_IP_VS_SH_TAB_BITS=8 and
 * CONFIG_IP_VS_MH_TAB_INDEX=12 are the defaults here.
 */

export interface SchedDest {
  address: string;
  port: number;
  /** The current weight (dest->weight). */
  weight: number;
  /**
   * mh only: dest->last_weight, the latest non-zero weight (set to the weight on add, kept when the
   * weight goes to 0). The kernel does not export it; for a weight-0 destination the caller passes
   * the weight it had before (its configured weight).
   */
  lastWeight?: number;
  /** IP_VS_DEST_F_OVERLOAD (upper connection threshold reached). */
  overloaded?: boolean;
}

export interface SchedFlags {
  /** IP_VS_SVC_F_SCHED1: try other buckets when the chosen destination is unavailable. */
  fallback: boolean;
  /** IP_VS_SVC_F_SCHED2: hash the client's source port too. */
  port: boolean;
}

export interface SchedPick {
  /** Index into the destination list, or undefined when the kernel finds none (the packet is dropped or bypassed). */
  dest: number | undefined;
  /** The bucket (sh, dh: of 256; mh: of the table size) the client hashed to first. */
  bucket: number;
  tableSize: number;
  /** The bucket that gave the destination when the fallback walked on (sh/mh with fallback). */
  fallbackBucket?: number;
  /** Why there is no destination, or why the first one was skipped. */
  note?: string;
}

export const SH_TAB_BITS = 8;
export const MH_TAB_INDEX = 12;
const MH_PRIMES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];

/** ntohl(addr_fold): an IPv4 address as a host u32, an IPv6 one the XOR of its four words. */
export function addrFold(address: string): number {
  const b = ipToBytes(address);
  let x = 0;
  for (let i = 0; i < b.length; i += 4) x ^= b.readUInt32BE(i);
  return x >>> 0;
}

/** include/linux/hash.h hash_32: (val * GOLDEN_RATIO_32) >> (32 - bits). */
export function hash32(val: number, bits: number): number {
  return Math.imul(val >>> 0, 0x61c88647) >>> (32 - bits);
}

function unavailable(d: SchedDest): boolean {
  return d.weight <= 0 || d.overloaded === true;
}

// ---- sh -------------------------------------------------------------------------------------

/** ip_vs_sh_reassign: 2^bits buckets, each destination in list order taking `weight` in a row (at least one). */
export function shTable(dests: readonly SchedDest[], bits = SH_TAB_BITS): Array<number | undefined> {
  const size = 1 << bits;
  const out = new Array<number | undefined>(size).fill(undefined);
  if (dests.length === 0) return out;
  let p = 0, count = 0;
  for (let i = 0; i < size; i++) {
    out[i] = p;
    if (++count >= dests[p]!.weight) {
      p = (p + 1) % dests.length;
      count = 0;
    }
  }
  return out;
}

/** ip_vs_sh_hashkey. */
export function shHashKey(address: string, port: number, offset: number, bits = SH_TAB_BITS): number {
  const mask = (1 << bits) - 1;
  return (offset + hash32((port + addrFold(address)) >>> 0, bits)) & mask;
}

/** ip_vs_sh_schedule for a client address and source port. */
export function shPick(dests: readonly SchedDest[], flags: SchedFlags, client: string, clientPort: number, bits = SH_TAB_BITS): SchedPick {
  const table = shTable(dests, bits);
  const size = 1 << bits;
  const port = flags.port ? clientPort : 0;
  const first = shHashKey(client, port, 0, bits);
  const d = table[first];
  if (d === undefined) return { dest: undefined, bucket: first, tableSize: size, note: 'the service has no destinations' };
  if (!unavailable(dests[d]!)) return { dest: d, bucket: first, tableSize: size };
  if (!flags.fallback) return { dest: undefined, bucket: first, tableSize: size, note: `bucket ${first} holds an unavailable destination (weight 0 or overloaded) and the service has no fallback flag` };
  for (let offset = 0; offset < size; offset++) {
    const h = shHashKey(client, port, (offset + first) % size, bits);
    const e = table[h];
    if (e === undefined) break;
    if (!unavailable(dests[e]!)) return { dest: e, bucket: first, tableSize: size, fallbackBucket: h, note: `bucket ${first} holds an unavailable destination: the fallback found bucket ${h}` };
  }
  return { dest: undefined, bucket: first, tableSize: size, note: 'every destination the fallback tried is unavailable' };
}

// ---- mh -------------------------------------------------------------------------------------

const M64 = (1n << 64n) - 1n;
const rol = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & M64;

/**
 * hsiphash_1u32 on a 64-bit kernel (lib/siphash.c: there HalfSipHash is SipHash-1-3 with two u64
 * key words), truncated to u32 as its callers see it.
 */
export function hsiphash1u32(first: number, k0: bigint, k1: bigint): number {
  let v0 = 0x736f6d6570736575n ^ k0, v1 = 0x646f72616e646f6dn ^ k1, v2 = 0x6c7967656e657261n ^ k0, v3 = 0x7465646279746573n ^ k1;
  const round = () => {
    v0 = (v0 + v1) & M64; v1 = rol(v1, 13n); v1 ^= v0; v0 = rol(v0, 32n);
    v2 = (v2 + v3) & M64; v3 = rol(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M64; v3 = rol(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M64; v1 = rol(v1, 17n); v1 ^= v2; v2 = rol(v2, 32n);
  };
  const b = (4n << 56n) | BigInt(first >>> 0);
  v3 ^= b;
  round();
  v0 ^= b;
  v2 ^= 0xffn;
  round(); round(); round();
  return Number((v0 ^ v1 ^ v2 ^ v3) & 0xffffffffn);
}

// generate_hash_secret of ip_vs_mh.c
const MH_KEY1 = 2654435761n, MH_KEY2 = 2654446892n;

/** ip_vs_mh_hashkey with hash1 (which = 1) or hash2 (which = 2). */
export function mhHashKey(address: string, port: number, offset: number, which: 1 | 2): number {
  const v = (offset + port + addrFold(address)) >>> 0;
  const k = which === 1 ? MH_KEY1 : MH_KEY2;
  return hsiphash1u32(v, k, k);
}

export function mhTableSize(tabIndex = MH_TAB_INDEX): number {
  return MH_PRIMES[tabIndex - 8]!;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** ip_vs_mh_permutate + ip_vs_mh_populate: lookup[slot] = destination index (undefined: none). */
export function mhTable(dests: readonly SchedDest[], tabIndex = MH_TAB_INDEX): Array<number | undefined> {
  const size = mhTableSize(tabIndex);
  const tabBits = Math.trunc(tabIndex / 2);
  const out = new Array<number | undefined>(size).fill(undefined);
  const lw = dests.map((d) => d.lastWeight ?? d.weight);
  let g = 0;
  for (const w of lw) if (w > 0) g = g > 0 ? gcd(w, g) : w;
  if (g < 1) return out;
  const mw = Math.trunc(Math.max(...lw) / g);
  const shift = Math.max(0, (32 - Math.clz32(mw)) - tabBits); // fls(mw) - IP_VS_MH_TAB_BITS
  const setup = dests.map((d, i) => {
    const offset = mhHashKey(d.address, d.port, 0, 1) % size;
    const skip = (mhHashKey(d.address, d.port, 0, 2) % (size - 1)) + 1;
    const t = Math.trunc(lw[i]! / g) >> shift;
    return { perm: offset, skip, turns: t !== 0 ? t : lw[i]! !== 0 ? 1 : 0 };
  });
  const taken = new Uint8Array(size);
  let n = 0;
  // The kernel walks the list over and over; each destination places `turns` entries per visit.
  for (;;) {
    let dtCount = 0;
    for (let i = 0; i < dests.length;) {
      const ds = setup[i]!;
      if (ds.turns < 1) { i++; continue; }
      let c = ds.perm;
      while (taken[c]) {
        ds.perm += ds.skip;
        if (ds.perm >= size) ds.perm -= size;
        c = ds.perm;
      }
      taken[c] = 1;
      out[c] = i;
      if (++n === size) return out;
      if (++dtCount >= ds.turns) {
        dtCount = 0;
        i++;
      }
    }
  }
}

/** ip_vs_mh_schedule for a client address and source port. */
export function mhPick(dests: readonly SchedDest[], flags: SchedFlags, client: string, clientPort: number, tabIndex = MH_TAB_INDEX): SchedPick {
  const table = mhTable(dests, tabIndex);
  const size = table.length;
  const port = flags.port ? clientPort : 0;
  const first = mhHashKey(client, port, 0, 1) % size;
  const d = table[first];
  if (d === undefined) return { dest: undefined, bucket: first, tableSize: size, note: 'the lookup table is empty (no destination with a weight)' };
  if (!unavailable(dests[d]!)) return { dest: d, bucket: first, tableSize: size };
  if (!flags.fallback) return { dest: undefined, bucket: first, tableSize: size, note: `slot ${first} holds an unavailable destination (weight 0 or overloaded) and the service has no fallback flag` };
  for (let offset = 0; offset < size; offset++) {
    const h = mhHashKey(client, port, (offset + first) % size, 1) % size;
    const e = table[h];
    if (e === undefined) break;
    if (!unavailable(dests[e]!)) return { dest: e, bucket: first, tableSize: size, fallbackBucket: h, note: `slot ${first} holds an unavailable destination: the fallback found slot ${h}` };
  }
  return { dest: undefined, bucket: first, tableSize: size, note: 'every destination the fallback tried is unavailable' };
}

// ---- dh -------------------------------------------------------------------------------------

/** ip_vs_dh_reassign: 256 buckets, one destination after the other in list order (weights do not count). */
export function dhTable(dests: readonly SchedDest[], bits = SH_TAB_BITS): Array<number | undefined> {
  const size = 1 << bits;
  return Array.from({ length: size }, (_, i) => (dests.length === 0 ? undefined : i % dests.length));
}

/**
 * ip_vs_dh_schedule: hashed on the packet's destination address (the VIP for a service) with
 * hash_32, as ip_vs_dh_hashkey does since the kernel moved dh off its old multiplicative hash
 * (`addr * 2654435761 & mask`, which old copies of the source still show).
 */
export function dhPick(dests: readonly SchedDest[], destination: string, bits = SH_TAB_BITS): SchedPick {
  const size = 1 << bits;
  const table = dhTable(dests, bits);
  const bucket = hash32(addrFold(destination), bits);
  const d = table[bucket];
  if (d === undefined) return { dest: undefined, bucket, tableSize: size, note: 'the service has no destinations' };
  if (unavailable(dests[d]!)) return { dest: undefined, bucket, tableSize: size, note: `bucket ${bucket} holds an unavailable destination (weight 0 or overloaded)` };
  return { dest: d, bucket, tableSize: size };
}
