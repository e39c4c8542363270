import { FulcrumError } from '../errors.js';

/**
 * Weighted Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
 * Load Balancer", NSDI 2016, section 3.4), with Katran's weighted population (MaglevHashV2): every
 * round each backend adds its weight to a running credit and takes a turn each time the credit
 * reaches the largest weight, so a backend's share of slots is proportional to its weight.
 *
 * Pure and deterministic: the table depends only on the set of (key, weight) pairs, not on their
 * order (backends are visited sorted by key) nor on earlier tables.
 */

/** Prime table sizes that work well (the size must be prime so every skip is a full cycle). */
export const MAGLEV_DEFAULT_SIZE = 65537;
/** Slot value when no backend has a positive weight. */
export const MAGLEV_EMPTY = 0xffffffff;

export interface MaglevBackend {
  /** Stable identity of the backend (e.g. "10.0.0.1:80"); decides its permutation and its order. */
  key: string;
  /** Relative weight; 0 takes no slots. */
  weight: number;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

const encoder = new TextEncoder();

/** MurmurHash3 x86 32-bit (Appleby): the two permutation hashes use different seeds. */
export function murmur3(bytes: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51, c2 = 0x1b873593;
  const n = bytes.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[blocks + 2]! << 16;
    if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
    k ^= bytes[blocks]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const SEED_OFFSET = 0x2307;
const SEED_SKIP = 0x2718;

/** offset = h1(key) mod M, skip = h2(key) mod (M - 1) + 1 (paper, section 3.4). */
export function permutationOf(key: string, size: number): { offset: number; skip: number } {
  const b = encoder.encode(key);
  return { offset: murmur3(b, SEED_OFFSET) % size, skip: (murmur3(b, SEED_SKIP) % (size - 1)) + 1 };
}

/**
 * Builds the lookup table: table[slot] = index into `backends` (the caller's array), or MAGLEV_EMPTY
 * when no backend has weight. Throws INVALID_REQUEST for a non-prime size, duplicate keys, or bad
 * weights.
 */
export function buildMaglevTable(backends: readonly MaglevBackend[], size = MAGLEV_DEFAULT_SIZE): Uint32Array {
  if (!isPrime(size)) throw new FulcrumError('INVALID_REQUEST', `maglev table size ${size} is not a prime`);
  const seen = new Set<string>();
  for (const [i, b] of backends.entries()) {
    if (seen.has(b.key)) throw new FulcrumError('INVALID_REQUEST', `backends[${i}].key ${b.key} is a duplicate`);
    seen.add(b.key);
    if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > 0xffffffff) {
      throw new FulcrumError('INVALID_REQUEST', `backends[${i}].weight ${b.weight} must be an integer 0..4294967295`);
    }
  }
  // Filled as Int32 with -1 for empty (small integers stay unboxed in V8; 0xffffffff would not), and
  // returned as a Uint32Array view of the same memory, where -1 reads as MAGLEV_EMPTY.
  const table = new Int32Array(size).fill(-1);
  const result = new Uint32Array(table.buffer);
  // Stable order: by key (code units), so the caller's order does not matter.
  const order = backends
    .map((b, i) => ({ i, key: b.key, weight: b.weight }))
    .filter((b) => b.weight > 0)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const n = order.length;
  if (n === 0) return result;

  const index = new Int32Array(n);
  const weight = new Float64Array(n);
  const cur = new Uint32Array(n); // current position in each backend's permutation
  const skip = new Uint32Array(n);
  const credit = new Float64Array(n);
  let maxWeight = 0;
  for (let j = 0; j < n; j++) {
    const b = order[j]!;
    const p = permutationOf(b.key, size);
    index[j] = b.i;
    weight[j] = b.weight;
    cur[j] = p.offset;
    skip[j] = p.skip;
    if (b.weight > maxWeight) maxWeight = b.weight;
  }

  let filled = 0;
  for (;;) {
    for (let j = 0; j < n; j++) {
      credit[j]! += weight[j]!;
      if (credit[j]! < maxWeight) continue;
      credit[j]! -= maxWeight;
      // Walk this backend's permutation to its next free slot: next = (prev + skip) mod M.
      let c = cur[j]!;
      const s = skip[j]!;
      while (table[c] !== -1) {
        c += s;
        if (c >= size) c -= size;
      }
      table[c] = index[j]!;
      c += s;
      if (c >= size) c -= size;
      cur[j] = c;
      if (++filled === size) return result;
    }
  }
}

/** Slots per backend index (for tests, metrics and `fulcrum` status). */
export function slotCounts(table: Uint32Array, backends: number): Uint32Array {
  const counts = new Uint32Array(backends);
  for (const v of table) if (v !== MAGLEV_EMPTY) counts[v]! += 1;
  return counts;
}
