import type { Service } from '../model/schema.js';
import { formatEndpoint, type Family } from '../model/net.js';
import { endpointHash, filterWords, type BackendValue, type EndpointValue, type VipKey, type VipMeta } from './abi.js';

/**
 * plan(desired, observed) -> XdpStep[]: pure. Observed is what the pinned maps hold (read back
 * from the kernel), so a restarted agent plans against the truth, not a cache. VIP ids and backend
 * slots are allocated here, deterministically (lowest free first).
 *
 * Order of the steps is the order of application and keeps every packet consistent:
 * backends are written before any table points at them; a table is written into the VIP's spare
 * slot and made live by ONE vips-map update (publish); a backend slot is deactivated only after no
 * live table points at it; a VIP is unpublished before its backends go.
 *
 * vip_index holds copies of VIP entries for the fast path. A copy that would name another VIP, id
 * or mode is cleared before anything else (packets then read `vips`); copies are (re)written right
 * after the publishes, while the tables and backends they may still name are all intact.
 */

export interface DesiredBackend { address: string; port: number; weight: number; mac: string | undefined }
export interface DesiredVip { service: string; key: VipKey; mode: 'nat' | 'dr'; backends: DesiredBackend[] }

export interface ObservedVip { key: VipKey; meta: VipMeta }
export interface Observed {
  vips: ObservedVip[];
  /** Every backend slot, indexed by slot (inactive ones too: their generation is reused +1). */
  backends: BackendValue[];
  /** The endpoint filter bitmap. */
  filter: BigUint64Array;
  /** nat_endpoints: nat backend endpoint -> the VIP its replies get. */
  endpoints: Array<{ key: VipKey; value: EndpointValue }>;
  /** vip_index: the non-empty entries, by index. */
  vipIndex: Map<number, ObservedVip>;
}

export interface Limits { maxVips: number; maxBackends: number; maglevTableSize: number }

/** One entry of a Maglev table's input: the backend's endpoint (its permutation), slot and weight. */
export interface TableMember { key: string; slot: number; weight: number }

export type XdpStep =
  | { kind: 'add-backend'; service: string; slot: number; value: BackendValue }
  | { kind: 'update-backend'; service: string; slot: number; value: BackendValue; previous: BackendValue }
  | { kind: 'publish'; service: string; key: VipKey; meta: VipMeta; previous: VipMeta | undefined; members: TableMember[]; reason: string }
  | { kind: 'remove-backend'; service: string; slot: number; previous: BackendValue }
  | { kind: 'remove-vip'; service: string; key: VipKey; previous: VipMeta }
  | { kind: 'set-filter'; service: string; words: BigUint64Array; previous: BigUint64Array; bits: number }
  | { kind: 'set-endpoint'; service: string; key: VipKey; value: EndpointValue; previous: EndpointValue | undefined }
  | { kind: 'remove-endpoint'; service: string; key: VipKey; previous: EndpointValue }
  | { kind: 'set-vip-index'; service: string; index: number; value: ObservedVip | undefined; previous: ObservedVip | undefined };

export type XdpStepKind = XdpStep['kind'];

export function vipKeyString(k: VipKey): string {
  return `${k.protocol} ${formatEndpoint(k.address, k.port)}`;
}

function backendId(address: string, port: number): string {
  return formatEndpoint(address, port);
}

/** `learnedMac`: the MAC learned for a dr backend without a configured one (./neighbours.ts). */
/** Same VIP, id and mode: a vip_index copy may go from one to the other in place (only the live slot differs). */
export function sameVip(a: ObservedVip, b: ObservedVip): boolean {
  return vipKeyString(a.key) === vipKeyString(b.key) && a.meta.id === b.meta.id && a.meta.mode === b.meta.mode;
}

export function desiredVip(svc: Service, learnedMac: (address: string) => string | undefined = () => undefined): DesiredVip {
  if (svc.address === undefined || svc.port === undefined) throw new TypeError(`service ${svc.name} has no address/port`);
  if (svc.protocol !== 'tcp' && svc.protocol !== 'udp') throw new TypeError(`service ${svc.name}: xdp balances tcp and udp only`);
  if (svc.forwarding !== 'nat' && svc.forwarding !== 'dr') throw new TypeError(`service ${svc.name}: xdp forwards by nat or dr`);
  const family: Family = svc.family;
  return {
    service: svc.name,
    key: { address: svc.address, family, port: svc.port, protocol: svc.protocol },
    mode: svc.forwarding,
    backends: svc.backends.map((b) => ({
      address: b.address,
      // dr cannot change the port: the packet keeps its VIP destination.
      port: svc.forwarding === 'dr' ? svc.port! : b.port,
      weight: b.weight,
      mac: b.mac ?? (svc.forwarding === 'dr' ? learnedMac(b.address) : undefined),
    })),
  };
}

/** FNV-1a over the table's inputs: equal fingerprints mean the live table is already right. */
export function tableFingerprint(members: readonly TableMember[], tableSize: number): number {
  let h = 0x811c9dc5;
  const text = `maglev-v1|${tableSize}|${members.map((m) => `${m.key}@${m.slot}:${m.weight}`).join(',')}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class PlanError extends Error {}

export function plan(desired: readonly DesiredVip[], observed: Observed, limits: Limits): XdpStep[] {
  const adds: XdpStep[] = [], publishes: XdpStep[] = [], removes: XdpStep[] = [], vipRemovals: XdpStep[] = [];
  const observedByKey = new Map(observed.vips.map((v) => [vipKeyString(v.key), v]));
  const usedIds = new Set(observed.vips.map((v) => v.meta.id));
  const referenced = new Set<number>();
  const slotsOfVip = new Map<number, number[]>();
  observed.backends.forEach((b, slot) => {
    if (!b.active) return;
    const list = slotsOfVip.get(b.vipId) ?? [];
    list.push(slot);
    slotsOfVip.set(b.vipId, list);
  });

  // Free backend slots, lowest first; generations continue from what the slot last held.
  const freeSlots: number[] = [];
  for (let s = 0; s < limits.maxBackends; s++) if (!observed.backends[s]?.active) freeSlots.push(s);
  freeSlots.reverse();
  const takeSlot = (service: string): number => {
    const s = freeSlots.pop();
    if (s === undefined) throw new PlanError(`service ${service}: no free backend slot (xdp.maxBackends is ${limits.maxBackends})`);
    return s;
  };
  let nextId = 0;
  const takeId = (service: string): number => {
    while (nextId < limits.maxVips && usedIds.has(nextId)) nextId++;
    if (nextId >= limits.maxVips) throw new PlanError(`service ${service}: no free VIP id (xdp.maxVips is ${limits.maxVips})`);
    usedIds.add(nextId);
    return nextId++;
  };

  // nat backend endpoints: one reply entry each; "shared" when several nat VIPs use the endpoint.
  const epKey = (protocol: string, address: string, port: number) => `${protocol} ${formatEndpoint(address, port)}`;
  const epUsers = new Map<string, number>();
  for (const d of desired) {
    if (d.mode !== 'nat') continue;
    for (const b of new Set(d.backends.map((b) => epKey(d.key.protocol, b.address, b.port)))) epUsers.set(b, (epUsers.get(b) ?? 0) + 1);
  }
  const observedEp = new Map(observed.endpoints.map((e) => [epKey(e.key.protocol, e.key.address, e.key.port), e]));
  const desiredEp = new Map<string, { key: VipKey; value: EndpointValue; service: string }>();
  const endpointSets: XdpStep[] = [], endpointRemovals: XdpStep[] = [];

  const desiredKeys = new Set<string>();
  for (const d of desired) {
    const keyText = vipKeyString(d.key);
    if (desiredKeys.has(keyText)) throw new PlanError(`service ${d.service}: ${keyText} is given twice`);
    desiredKeys.add(keyText);
    const obs = observedByKey.get(keyText);
    const id = obs ? obs.meta.id : takeId(d.service);
    const current = new Map<string, number>();
    for (const slot of obs ? slotsOfVip.get(id) ?? [] : []) {
      const b = observed.backends[slot]!;
      const bid = backendId(b.address, b.port);
      if (current.has(bid)) continue; // a duplicate left by a crash: removed below as unreferenced
      current.set(bid, slot);
    }
    const members: TableMember[] = [];
    const memberSlots = new Set<number>();
    for (const b of d.backends) {
      const bid = backendId(b.address, b.port);
      const ek = epKey(d.key.protocol, b.address, b.port);
      const sharedNat = d.mode === 'nat' && (epUsers.get(ek) ?? 0) > 1;
      const value = (slot: number, gen: number): BackendValue => ({
        address: b.address, family: d.key.family, port: b.port, mac: b.mac, active: true, sharedNat, weight: b.weight, vipId: id, gen,
      });
      let slot = current.get(bid);
      if (slot === undefined) {
        slot = takeSlot(d.service);
        const gen = ((observed.backends[slot]?.gen ?? 0) + 1) >>> 0;
        adds.push({ kind: 'add-backend', service: d.service, slot, value: value(slot, gen) });
      } else {
        const prev = observed.backends[slot]!;
        const next = value(slot, prev.gen);
        if (prev.mac !== next.mac || prev.weight !== next.weight || prev.sharedNat !== next.sharedNat)
          adds.push({ kind: 'update-backend', service: d.service, slot, value: next, previous: prev });
      }
      if (d.mode === 'nat') {
        // The endpoint's VIP: the one it already names when that one still uses it (its flows keep
        // working without per-flow entries), else the first.
        const mine = { key: { address: b.address, family: d.key.family, port: b.port, protocol: d.key.protocol }, service: d.service,
          value: { vip: d.key.address, vport: d.key.port, vipId: id, slot, shared: sharedNat } };
        const had = observedEp.get(ek);
        const cur = desiredEp.get(ek);
        if (!cur || (had && had.value.vipId === id && had.value.slot === slot)) desiredEp.set(ek, mine);
      }
      memberSlots.add(slot);
      if (b.weight > 0) members.push({ key: bid, slot, weight: b.weight });
    }
    members.sort((a, b) => a.slot - b.slot);
    const tableHash = tableFingerprint(members, limits.maglevTableSize);
    for (const s of memberSlots) referenced.add(s);
    if (!obs) {
      publishes.push({ kind: 'publish', service: d.service, key: d.key, meta: { id, mode: d.mode, slot: 0, tableHash }, previous: undefined, members, reason: 'new VIP' });
    } else if (obs.meta.tableHash !== tableHash || obs.meta.mode !== d.mode) {
      const reasons = [obs.meta.tableHash !== tableHash ? 'backend set changed' : '', obs.meta.mode !== d.mode ? `mode ${obs.meta.mode} -> ${d.mode}` : '']
        .filter(Boolean).join(', ');
      const slot = (1 - obs.meta.slot) as 0 | 1;
      publishes.push({ kind: 'publish', service: d.service, key: d.key, meta: { id, mode: d.mode, slot, tableHash }, previous: obs.meta, members, reason: reasons });
    }
  }

  // vip_index: where exactly one desired VIP hashes, a copy of its final entry.
  const published = new Map<string, VipMeta>();
  for (const p of publishes) if (p.kind === 'publish') published.set(vipKeyString(p.key), p.meta);
  const finalVips: Array<{ service: string; vip: ObservedVip }> = [];
  for (const d of desired) {
    const keyText = vipKeyString(d.key);
    const meta = published.get(keyText) ?? observedByKey.get(keyText)!.meta;
    finalVips.push({ service: d.service, vip: { key: d.key, meta } });
  }
  const byIndex = new Map<number, Array<{ service: string; vip: ObservedVip }>>();
  for (const f of finalVips) {
    const h = endpointHash(f.vip.key.address, f.vip.key.port, f.vip.key.protocol);
    byIndex.set(h, [...(byIndex.get(h) ?? []), f]);
  }
  const indexClears: XdpStep[] = [], indexSets: XdpStep[] = [];
  const sameEntry = (a: ObservedVip, b: ObservedVip) => sameVip(a, b) && a.meta.slot === b.meta.slot && a.meta.tableHash === b.meta.tableHash;
  for (const index of new Set([...observed.vipIndex.keys(), ...byIndex.keys()])) {
    const users = byIndex.get(index) ?? [];
    const want = users.length === 1 ? users[0]!.vip : undefined;
    const service = users.length === 1 ? users[0]!.service : '*';
    let have = observed.vipIndex.get(index);
    if (have && (!want || !sameVip(have, want))) {
      indexClears.push({ kind: 'set-vip-index', service, index, value: undefined, previous: have });
      have = undefined;
    }
    if (want && (!have || !sameEntry(have, want))) indexSets.push({ kind: 'set-vip-index', service, index, value: want, previous: have });
  }

  for (const [k, e] of desiredEp) {
    const had = observedEp.get(k);
    const v = e.value, p = had?.value;
    if (!p || p.vip !== v.vip || p.vport !== v.vport || p.vipId !== v.vipId || p.slot !== v.slot || p.shared !== v.shared)
      endpointSets.push({ kind: 'set-endpoint', service: e.service, key: e.key, value: v, previous: p });
  }
  for (const [k, e] of observedEp) {
    if (!desiredEp.has(k)) endpointRemovals.push({ kind: 'remove-endpoint', service: `${e.key.protocol} ${formatEndpoint(e.key.address, e.key.port)}`, key: e.key, previous: e.value });
  }

  const nameOfId = new Map<number, string>();
  for (const d of desired) {
    const obs = observedByKey.get(vipKeyString(d.key));
    if (obs) nameOfId.set(obs.meta.id, d.service);
  }
  for (const v of observed.vips) {
    if (desiredKeys.has(vipKeyString(v.key))) continue;
    const service = vipKeyString(v.key);
    nameOfId.set(v.meta.id, service);
    vipRemovals.push({ kind: 'remove-vip', service, key: v.key, previous: v.meta });
  }
  // Every active slot that no desired VIP keeps (removed backends, removed VIPs, crash leftovers).
  observed.backends.forEach((b, slot) => {
    if (!b.active || referenced.has(slot)) return;
    removes.push({ kind: 'remove-backend', service: nameOfId.get(b.vipId) ?? `vip#${b.vipId}`, slot, previous: b });
  });

  // The endpoint filter must let a VIP (and its nat backends' replies) through before it is
  // published, and may drop stale bits only after everything else: superset first, exact last.
  const endpoints = desired.flatMap((d) => [
    { address: d.key.address, port: d.key.port, protocol: d.key.protocol },
    ...(d.mode === 'nat' ? d.backends.map((b) => ({ address: b.address, port: b.port, protocol: d.key.protocol })) : []),
  ]);
  const exact = filterWords(endpoints);
  const superset = exact.map((w, i) => w | (observed.filter[i] ?? 0n));
  const filterFirst: XdpStep[] = [], filterLast: XdpStep[] = [];
  if (!sameWords(superset, observed.filter))
    filterFirst.push({ kind: 'set-filter', service: '*', words: superset, previous: observed.filter, bits: popcount(superset) });
  if (!sameWords(exact, superset))
    filterLast.push({ kind: 'set-filter', service: '*', words: exact, previous: superset, bits: popcount(exact) });
  // Reply entries name live slots: set after the slots are written, before the VIP is published;
  // removed after the slots they name are gone.
  return [...indexClears, ...filterFirst, ...adds, ...endpointSets, ...publishes, ...indexSets, ...vipRemovals, ...removes, ...endpointRemovals, ...filterLast];
}

function sameWords(a: BigUint64Array, b: BigUint64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function popcount(words: BigUint64Array): number {
  let n = 0;
  for (let w of words) while (w) { w &= w - 1n; n++; }
  return n;
}

export function describeStep(s: XdpStep): string {
  switch (s.kind) {
    case 'add-backend':
      return `+ backend ${formatEndpoint(s.value.address, s.value.port)} weight ${s.value.weight} slot ${s.slot} to ${s.service}`;
    case 'update-backend':
      return `~ backend ${formatEndpoint(s.value.address, s.value.port)} of ${s.service}: weight ${s.previous.weight} -> ${s.value.weight}, mac ${s.previous.mac ?? 'fib'} -> ${s.value.mac ?? 'fib'}`;
    case 'publish':
      return s.previous
        ? `~ ${s.service} (${vipKeyString(s.key)}): maglev table slot ${s.previous.slot} -> ${s.meta.slot} with ${s.members.length} backends (${s.reason})`
        : `+ ${s.service} (${vipKeyString(s.key)}) ${s.meta.mode} id ${s.meta.id} with ${s.members.length} backends`;
    case 'remove-backend':
      return `- backend ${formatEndpoint(s.previous.address, s.previous.port)} slot ${s.slot} of ${s.service}`;
    case 'remove-vip':
      return `- ${s.service} id ${s.previous.id}`;
    case 'set-filter':
      return `~ endpoint filter: ${s.bits} bits set`;
    case 'set-endpoint':
      return `${s.previous ? '~' : '+'} nat replies from ${s.key.protocol} ${formatEndpoint(s.key.address, s.key.port)} -> ${formatEndpoint(s.value.vip, s.value.vport)} (slot ${s.value.slot}${s.value.shared ? ', shared by several VIPs' : ''})`;
    case 'remove-endpoint':
      return `- nat replies from ${s.key.protocol} ${formatEndpoint(s.key.address, s.key.port)}`;
    case 'set-vip-index':
      return s.value
        ? `~ vip index ${s.index}: ${vipKeyString(s.value.key)} id ${s.value.meta.id} slot ${s.value.meta.slot}`
        : `- vip index ${s.index} (${s.previous ? vipKeyString(s.previous.key) : 'empty'}): packets use the vips map`;
  }
}

/** What the maps hold after `steps` were applied to `observed` (the executor's effect, purely). */
export function applyToObserved(observed: Observed, steps: readonly XdpStep[]): Observed {
  const next: Observed = { vips: [], backends: observed.backends.slice(), filter: observed.filter, endpoints: [], vipIndex: new Map(observed.vipIndex) };
  const ek = (k: VipKey) => `${k.protocol} ${formatEndpoint(k.address, k.port)}`;
  const endpoints = new Map(observed.endpoints.map((e) => [ek(e.key), e]));
  const vips = new Map(observed.vips.map((v) => [v.meta.id, v]));
  for (const s of steps) {
    switch (s.kind) {
      case 'add-backend':
      case 'update-backend':
        next.backends[s.slot] = s.value;
        break;
      case 'remove-backend':
        next.backends[s.slot] = { ...s.previous, active: false };
        break;
      case 'publish':
        vips.set(s.meta.id, { key: s.key, meta: s.meta });
        break;
      case 'remove-vip':
        vips.delete(s.previous.id);
        break;
      case 'set-filter':
        next.filter = s.words;
        break;
      case 'set-endpoint':
        endpoints.set(ek(s.key), { key: s.key, value: s.value });
        break;
      case 'remove-endpoint':
        endpoints.delete(ek(s.key));
        break;
      case 'set-vip-index':
        if (s.value) next.vipIndex.set(s.index, s.value);
        else next.vipIndex.delete(s.index);
        break;
    }
  }
  next.endpoints = [...endpoints.values()];
  next.vips = [...vips.values()];
  return next;
}
