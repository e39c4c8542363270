import type { Counters, ServiceStats } from '../dataplane/types.js';
import { decodeCounters, u32, STRUCTS } from './abi.js';
import { vipKeyString, type Observed } from './plan.js';
import type { XdpKernel } from './kernel.js';

/**
 * The per-CPU counter maps: the program counts per backend slot (backend_pcpu); stats[vip id] holds
 * what the slots a VIP no longer has had counted (folded in when a slot is removed).
 */

const zero = (): Counters => ({ packetsIn: 0n, packetsOut: 0n, bytesIn: 0n, bytesOut: 0n, connections: 0n });

/** Counters of a VIP id (stats) or a backend slot (the head of its backend_pcpu), summed over CPUs. */
function readCounters(k: XdpKernel, of: 'vip' | 'backend', index: number): Counters {
  const per = (of === 'vip' ? k.maps.stats : k.maps.backend_pcpu).lookupPerCpu(u32(index));
  const c = zero();
  for (const raw of per ?? []) {
    const v = decodeCounters(raw.subarray(0, STRUCTS.fl_counters.size));
    c.packetsIn += v.pktsIn;
    c.bytesIn += v.bytesIn;
    c.packetsOut += v.pktsOut;
    c.bytesOut += v.bytesOut;
    c.connections += v.newFlows;
  }
  return c;
}

/** Each VIP's totals (its backends' counters plus what removed slots had counted) and its backends'. */
export function readServiceStats(k: XdpKernel, observed: Observed, nameOf: (vipKey: string) => string): ServiceStats[] {
  const out: ServiceStats[] = [];
  const byVip = new Map<number, ServiceStats['backends']>();
  observed.backends.forEach((b, slot) => {
    if (!b.active) return;
    const list = byVip.get(b.vipId) ?? [];
    list.push({ address: b.address, port: b.port, counters: readCounters(k, 'backend', slot) });
    byVip.set(b.vipId, list);
  });
  for (const v of observed.vips) {
    const backends = byVip.get(v.meta.id) ?? [];
    const totals = readCounters(k, 'vip', v.meta.id);
    for (const b of backends) for (const f of Object.keys(totals) as Array<keyof Counters>) totals[f] += b.counters[f];
    out.push({ service: nameOf(vipKeyString(v.key)), dataplane: 'xdp', totals, backends });
  }
  return out;
}

/**
 * Moves a removed backend slot's counters into its VIP's stats entry, CPU by CPU, so the VIP's
 * totals keep them (packets still in flight when the slot went inactive may add a few after).
 * Returns the exact reverse.
 */
export function foldCounters(k: XdpKernel, slot: number, vipId: number): () => void {
  const size = STRUCTS.fl_counters.size;
  const from = k.maps.backend_pcpu.lookupPerCpu(u32(slot));
  const to = k.maps.stats.lookupPerCpu(u32(vipId));
  if (!from || !to) return () => undefined;
  const moved = from.map((b) => Buffer.from(b.subarray(0, size)));
  const folded = to.map((t, cpu) => {
    const out = Buffer.from(t);
    for (let o = 0; o < size; o += 8) out.writeBigUInt64LE(BigInt.asUintN(64, out.readBigUInt64LE(o) + moved[cpu]!.readBigUInt64LE(o)), o);
    return out;
  });
  const emptied = from.map((b) => {
    const out = Buffer.from(b);
    out.fill(0, 0, size);
    return out;
  });
  k.maps.stats.updatePerCpu(u32(vipId), folded);
  k.maps.backend_pcpu.updatePerCpu(u32(slot), emptied);
  return () => {
    k.maps.backend_pcpu.updatePerCpu(u32(slot), from);
    k.maps.stats.updatePerCpu(u32(vipId), to);
  };
}

/** Zeroes a VIP's counters, or a backend slot's per-CPU state (counters and next-hop cache). */
export function resetCounters(k: XdpKernel, of: 'vip' | 'backend', index: number): void {
  const map = of === 'vip' ? k.maps.stats : k.maps.backend_pcpu;
  const per = map.lookupPerCpu(u32(index));
  if (!per) return;
  map.updatePerCpu(u32(index), per.map((v) => Buffer.alloc(v.length)));
}
