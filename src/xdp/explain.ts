import { formatEndpoint } from '../model/net.js';
import type { DataplaneExplanation, ExplainBackend, FlowQuery } from '../dataplane/explain.js';
import {
  conntrackSet, decodeBackend, decodeConntrackSet, decodeVipMeta, encodeVipKey, flowHash, maglevIndex, maglevPosition, u32, ENUMS, L, STRUCTS,
  type BackendValue, type ConntrackEntry, type VipKey, type VipMeta,
} from './abi.js';
import { familyOf, canonicalIp } from '../model/net.js';
import type { XdpKernel } from './kernel.js';

/**
 * What the program does with a flow's next packet, read from the live maps: the connection-table
 * entry it would follow (same key, tag of its flow hash, a backend slot still active with the
 * generation the entry recorded, of this VIP), else the Maglev entry of the VIP's live table.
 * The same rules as bpf/fulcrum_xdp.bpf.c, in the same order.
 */

export interface MaglevHit { entry: number; slot: number; backend: BackendValue | undefined }

/** The backend slot the live Maglev table of a VIP gives a flow hash (the program's lookup). */
export function maglevLookup(k: XdpKernel, meta: VipMeta, hash: number): MaglevHit {
  const size = k.limits.maglevTableSize;
  const entry = maglevPosition(hash, size);
  const at = maglevIndex(meta.id, meta.slot, entry, size);
  const line = L.FL_MAGLEV_LINE;
  const value = k.maps.maglev.lookup(u32(Math.floor(at / line)));
  const slot = value ? value.readUInt32LE((at % line) * 4) : L.FL_NO_BACKEND;
  if (slot === L.FL_NO_BACKEND) return { entry, slot, backend: undefined };
  const b = k.maps.backends.lookup(u32(slot));
  return { entry, slot, backend: b ? decodeBackend(b) : undefined };
}

/** The connection-table entry holding a flow's key, if any (valid or not). */
export function conntrackLookup(k: XdpKernel, hash: number, flow: { src: string; dst: string; sport: number; dport: number; protocol: 'tcp' | 'udp' }): { set: number; entry: ConntrackEntry | undefined } {
  const set = conntrackSet(hash, k.limits.conntrackSize / L.FL_CT_WAYS);
  const v = k.maps.conntrack.lookup(u32(set));
  const entry = v ? decodeConntrackSet(v).find((e) => e.src === flow.src && e.dst === flow.dst && e.sport === flow.sport && e.dport === flow.dport && e.protocol === flow.protocol) : undefined;
  return { set, entry };
}

function vipBackends(k: XdpKernel, vipId: number): ExplainBackend[] {
  const all = k.maps.backends.lookupBatch(4096);
  const flagsAt = STRUCTS.fl_backend.fields.flags.offset;
  const out: ExplainBackend[] = [];
  all.values.forEach((v) => {
    if ((v[flagsAt]! & ENUMS.fl_backend_flag.FL_BACKEND_ACTIVE) === 0) return;
    const b = decodeBackend(v);
    if (b.vipId === vipId) out.push({ address: b.address, port: b.port, weight: b.weight });
  });
  return out;
}

export function explainXdp(k: XdpKernel, flow: FlowQuery): DataplaneExplanation {
  const family = familyOf(flow.vip) ?? 'inet';
  const key: VipKey = { address: canonicalIp(flow.vip), family, port: flow.port, protocol: flow.protocol };
  const metaBuf = k.maps.vips.lookup(encodeVipKey(key));
  const base = { dataplane: 'xdp' as const };
  if (!metaBuf) return { ...base, source: 'none', backend: undefined, reason: `the XDP program has no VIP ${flow.protocol} ${formatEndpoint(key.address, key.port)}: its packets pass to the kernel`, detail: {}, backends: [] };
  const meta = decodeVipMeta(metaBuf);
  const backends = vipBackends(k, meta.id);
  const detail: Record<string, string | number | boolean> = { vipId: meta.id, mode: meta.mode, tableSlot: meta.slot, tableSize: k.limits.maglevTableSize };
  if (flow.clientPort === undefined) {
    return { ...base, source: 'unpredictable', backend: undefined, reason: 'XDP hashes the whole 5-tuple (Maglev over the flow hash): give the client port (--client ADDRESS:PORT)', detail, backends };
  }
  const tuple = { src: canonicalIp(flow.client), dst: key.address, sport: flow.clientPort, dport: flow.port, protocol: flow.protocol };
  const hash = flowHash(tuple);
  detail.flowHash = hash;
  const ct = conntrackLookup(k, hash, tuple);
  detail.conntrackSet = ct.set;
  if (ct.entry) {
    const e = ct.entry;
    const raw = k.maps.backends.lookup(u32(e.backend));
    const b = raw ? decodeBackend(raw) : undefined;
    const valid = e.tag === (hash & 0xffff) && b !== undefined && b.active && (b.gen & 0xffff) === e.gen && b.vipId === meta.id;
    if (valid) {
      let idle = '';
      try {
        const clock = k.conntrackClock();
        const seconds = (((clock.now - e.seen) | 0) / clock.perSecond);
        detail.idleSeconds = Math.max(0, Math.round(seconds * 10) / 10);
        idle = `, last packet ${detail.idleSeconds} s ago`;
      } catch { /* no jiffies clock: the age is left out */ }
      Object.assign(detail, { backendSlot: e.backend, generation: e.gen });
      // What a new flow with this hash would get now: differs when the table moved under the flow.
      const now = maglevLookup(k, meta, hash);
      if (now.backend?.active) detail.maglevNow = formatEndpoint(now.backend.address, now.backend.port);
      return {
        ...base, source: 'connection', backend: { address: b.address, port: b.port },
        reason: `connection-table entry in set ${ct.set} -> backend slot ${e.backend} (generation ${e.gen})${idle}: the flow stays on it`,
        detail, backends,
      };
    }
    detail.staleEntry = e.tag !== (hash & 0xffff) ? 'an entry with this key whose tag is not this flow\'s (torn write): ignored'
      : 'an entry with this key names a backend slot that is gone or reused: the next packet is placed by Maglev again';
  }
  const hit = maglevLookup(k, meta, hash);
  Object.assign(detail, { maglevEntry: hit.entry, backendSlot: hit.slot });
  if (hit.slot === L.FL_NO_BACKEND || !hit.backend || !hit.backend.active || hit.backend.vipId !== meta.id) {
    return { ...base, source: 'none', backend: undefined, reason: `maglev entry ${hit.entry} of ${k.limits.maglevTableSize} holds no usable backend (the VIP has none with a weight): packets pass to the kernel`, detail, backends };
  }
  return {
    ...base, source: 'scheduler', backend: { address: hit.backend.address, port: hit.backend.port },
    reason: `not in the connection table: a new flow; maglev entry ${hit.entry} of ${k.limits.maglevTableSize} (live table ${meta.slot}) -> backend slot ${hit.slot}`,
    detail, backends,
  };
}
