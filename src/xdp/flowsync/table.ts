import { addr16, conntrackSet, decodeBackend, decodeVipKey, decodeVipMeta, encodeEndpoint, familyCode, flowHash, IPPROTO, L, STRUCTS, u32 } from '../abi.js';
import type { XdpKernel } from '../kernel.js';
import { performance } from 'node:perf_hooks';
import { bytesToIp } from '../../model/net.js';
import type { FlowRecord } from './record.js';

/** What became of one received record. */
export type ApplyResult = 'applied' | 'kept-local' | 'unknown-vip' | 'unknown-backend';

interface VipInfo { id: number; mode: 'nat' | 'dr'; key: ReturnType<typeof decodeVipKey> }
interface SlotInfo { slot: number; gen: number; vipId: number; address: string; port: number; sharedNat: boolean }

const E = STRUCTS.fl_ct_entry, K = STRUCTS.fl_flow_key;

/** The 40-byte fl_flow_key of a record's client -> VIP flow. */
export function flowKey(r: FlowRecord): Buffer {
  const b = Buffer.alloc(K.size);
  addr16(r.client).copy(b, K.fields.src.offset);
  addr16(r.vip).copy(b, K.fields.dst.offset);
  b.writeUInt16BE(r.clientPort, K.fields.sport.offset);
  b.writeUInt16BE(r.vipPort, K.fields.dport.offset);
  b[K.fields.proto.offset] = IPPROTO[r.protocol];
  b[K.fields.family.offset] = familyCode(r.family);
  return b;
}

/**
 * The node's XDP connection table as the flow sync sees it: received records are written into it
 * (resolved against this node's own VIPs and backend slots), and a snapshot of its flows is read
 * from it. Writes go through the syscall (a whole set at a time); the program may write another
 * way of the same set at that moment and lose it (the next packet of that flow places it again).
 */
export class KernelFlowTable {
  #vips: Map<string, VipInfo> | undefined;
  #vipById = new Map<number, VipInfo>();
  #byIdentity = new Map<string, SlotInfo>();
  #bySlot = new Map<number, SlotInfo>();

  /** A sample of the conntrack clock (it costs a read of /proc/timer_list), extrapolated for 10 s. */
  #clock: { at: number; now: number; perSecond: number } | undefined;

  constructor(private readonly kernel: XdpKernel) {}

  #ticks(): number {
    const t = performance.now();
    if (!this.#clock || t - this.#clock.at > 10_000) this.#clock = { at: t, ...this.kernel.conntrackClock() };
    return (this.#clock.now + Math.floor(((t - this.#clock.at) / 1000) * this.#clock.perSecond)) >>> 0;
  }

  /** The VIPs or backends changed (a reconcile ran): read them again on next use. */
  invalidate(): void {
    this.#vips = undefined;
  }

  #index(): Map<string, VipInfo> {
    if (this.#vips) return this.#vips;
    const vips = new Map<string, VipInfo>();
    this.#vipById = new Map();
    for (const k of this.kernel.maps.vips.keys()) {
      const v = this.kernel.maps.vips.lookup(k);
      if (!v) continue;
      const meta = decodeVipMeta(v);
      const info = { id: meta.id, mode: meta.mode, key: decodeVipKey(k) };
      vips.set(`${info.key.address}|${info.key.port}|${info.key.protocol}`, info);
      this.#vipById.set(meta.id, info);
    }
    this.#byIdentity = new Map();
    this.#bySlot = new Map();
    const { keys, values } = this.kernel.maps.backends.lookupBatch(1024);
    values.forEach((v, i) => {
      const b = decodeBackend(v);
      if (!b.active) return;
      const info = { slot: keys[i]!.readUInt32LE(0), gen: b.gen, vipId: b.vipId, address: b.address, port: b.port, sharedNat: b.sharedNat };
      this.#byIdentity.set(`${b.vipId}|${b.address}|${b.port}`, info);
      this.#bySlot.set(info.slot, info);
    });
    this.#vips = vips;
    return vips;
  }

  /** Writes the records' flows where this node has the VIP and the backend, unless the flow already has a live local entry. */
  apply(records: readonly FlowRecord[]): ApplyResult[] {
    const vips = this.#index();
    const results: ApplyResult[] = [];
    const sets = this.kernel.maps.conntrack.info.maxEntries;
    let now: number | undefined;
    const dirty = new Map<number, Buffer>();
    for (const r of records) {
      const vip = vips.get(`${r.vip}|${r.vipPort}|${r.protocol}`);
      if (!vip) { results.push('unknown-vip'); continue; }
      const slot = this.#byIdentity.get(`${vip.id}|${r.backend}|${r.backendPort}`);
      if (!slot) { results.push('unknown-backend'); continue; }
      const hash = flowHash({ src: r.client, dst: r.vip, sport: r.clientPort, dport: r.vipPort, protocol: r.protocol });
      const setIndex = conntrackSet(hash, sets);
      let set = dirty.get(setIndex);
      if (!set) {
        set = this.kernel.maps.conntrack.lookup(u32(setIndex)) ?? Buffer.alloc(STRUCTS.fl_ct_set.size);
        dirty.set(setIndex, set);
      }
      now ??= this.#ticks();
      const key = flowKey(r);
      const tag = hash & 0xffff;
      let victim = -1, empty = -1, oldest = 0, oldestAge = -1;
      let live = false;
      for (let w = 0; w < L.FL_CT_WAYS; w++) {
        const at = w * E.size;
        if (set[at + K.fields.family.offset] === 0) { if (empty < 0) empty = w; continue; }
        if (set.subarray(at, at + K.size).equals(key)) {
          const s = this.#bySlot.get(set.readUInt32LE(at + E.fields.backend.offset));
          live = set.readUInt16LE(at + E.fields.tag.offset) === tag && s !== undefined && (s.gen & 0xffff) === set.readUInt16LE(at + E.fields.gen.offset);
          victim = w;
          break;
        }
        const age = (now - set.readUInt32LE(at + E.fields.seen.offset)) >>> 0;
        if (age > oldestAge) { oldestAge = age; oldest = w; }
      }
      if (live) { results.push('kept-local'); continue; }
      if (victim < 0) victim = empty >= 0 ? empty : oldest;
      const at = victim * E.size;
      set.fill(0, at, at + E.size);
      key.copy(set, at);
      set.writeUInt32LE(slot.slot, at + E.fields.backend.offset);
      set.writeUInt16LE(slot.gen & 0xffff, at + E.fields.gen.offset);
      set.writeUInt16LE(tag, at + E.fields.tag.offset);
      set.writeUInt32LE(now >>> 0, at + E.fields.seen.offset);
      if (slot.sharedNat && vip.mode === 'nat') {
        // The reply of an endpoint several VIPs share says which VIP it answers for (reverse_nat).
        const rk = flowKey({ ...r, client: r.backend, clientPort: r.backendPort, vip: r.client, vipPort: r.clientPort });
        this.kernel.maps.reverse_nat.update(rk, encodeEndpoint({ vip: r.vip, vport: r.vipPort, vipId: vip.id, slot: slot.slot, shared: false }));
      }
      results.push('applied');
    }
    for (const [i, set] of dirty) this.kernel.maps.conntrack.update(u32(i), set);
    return results;
  }

  /** Every flow of the table whose backend slot is still the one it was placed on. */
  snapshot(): FlowRecord[] {
    this.#index();
    const out: FlowRecord[] = [];
    const { values } = this.kernel.maps.conntrack.lookupBatch(1024);
    for (const set of values) {
      for (let w = 0; w < L.FL_CT_WAYS; w++) {
        const at = w * E.size;
        const fam = set[at + K.fields.family.offset];
        if (fam === 0) continue;
        const s = this.#bySlot.get(set.readUInt32LE(at + E.fields.backend.offset));
        if (!s || (s.gen & 0xffff) !== set.readUInt16LE(at + E.fields.gen.offset)) continue;
        const vip = this.#vipById.get(s.vipId);
        if (!vip) continue;
        const family = vip.key.family, n = family === 'inet' ? 4 : 16;
        const src = set.subarray(at + K.fields.src.offset, at + K.fields.src.offset + n);
        out.push({
          family, protocol: vip.key.protocol, mode: vip.mode,
          client: bytesToIp(src), clientPort: set.readUInt16BE(at + K.fields.sport.offset),
          vip: vip.key.address, vipPort: vip.key.port,
          backend: s.address, backendPort: s.port,
        });
      }
    }
    return out;
  }
}
