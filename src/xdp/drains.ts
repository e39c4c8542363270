import { join } from 'node:path';
import { z } from 'zod';
import { formatEndpoint } from '../model/net.js';
import { StateFile } from '../util/state-file.js';
import { STRUCTS } from './abi.js';
import { vipKeyString, type DesiredBackend, type DesiredVip, type Observed } from './plan.js';
import type { XdpKernel } from './kernel.js';

/**
 * Draining xdp backends. A backend that leaves a desired VIP while flows are on it stays
 * programmed at weight 0: out of the Maglev table (no new flows), its slot and generation kept, so
 * its connection-table entries still match and its flows go on. It is removed once it has no
 * active flow (countActiveFlows) or its deadline passes.
 */

/** A drain in progress; `mac` is the programmed one (a dr backend keeps it while draining). */
export interface XdpDrainRecord { vip: string; service: string; address: string; port: number; mac: string | undefined; startedAt: number; deadline: number }

export function drainKey(vip: string, address: string, port: number): string {
  return `${vip} ${formatEndpoint(address, port)}`;
}

const RecordSchema = z.object({
  vip: z.string(), service: z.string(), address: z.string(), port: z.number().int(), mac: z.string().optional(), startedAt: z.number(), deadline: z.number(),
}).strict();
const DrainsSchema = z.object({ drains: z.array(RecordSchema) }).strict();

/** The drains in progress, in the state directory, so that a restarted agent neither resets their flows nor forgets their deadlines. */
export class XdpDrainStore {
  readonly #file: StateFile<typeof DrainsSchema>;
  constructor(stateDir: string) {
    this.#file = new StateFile(join(stateDir, 'xdp-drains.json'), 1, DrainsSchema, 'xdp drain record');
  }

  load(): Map<string, XdpDrainRecord> {
    const data = this.#file.load() ?? { drains: [] };
    return new Map(data.drains.map((d) => [drainKey(d.vip, d.address, d.port), { ...d, mac: d.mac }]));
  }

  save(records: ReadonlyMap<string, XdpDrainRecord>): void {
    this.#file.save({ drains: [...records.values()].map(({ mac, ...r }) => (mac === undefined ? r : { ...r, mac })) });
  }
}

export interface DrainEnd { record: XdpDrainRecord; reason: 'drained' | 'drain-timeout' }

export interface DrainPlan {
  /** The desired VIPs with their draining backends added at weight 0. */
  desired: DesiredVip[];
  /** The drains that go on (new ones included). */
  records: Map<string, XdpDrainRecord>;
  started: XdpDrainRecord[];
  /** Drains that end now: their backends are removed by this reconcile. */
  ended: DrainEnd[];
}

/** The slots of `observed` that carry a backend a desired VIP no longer has (drain candidates), with their generations. */
export function leavingSlots(desired: readonly DesiredVip[], observed: Observed): Map<number, number> {
  const out = new Map<number, number>();
  for (const { slot, b } of leaving(desired, observed)) out.set(slot, b.gen);
  return out;
}

function* leaving(desired: readonly DesiredVip[], observed: Observed) {
  const byKey = new Map(observed.vips.map((v) => [vipKeyString(v.key), v]));
  const slotsOf = new Map<number, number[]>();
  observed.backends.forEach((b, slot) => {
    if (!b.active) return;
    const list = slotsOf.get(b.vipId);
    if (list) list.push(slot);
    else slotsOf.set(b.vipId, [slot]);
  });
  for (const d of desired) {
    const obs = byKey.get(vipKeyString(d.key));
    if (!obs) continue;
    const wanted = new Set(d.backends.map((b) => formatEndpoint(b.address, b.port)));
    const seen = new Set<string>();
    for (const slot of slotsOf.get(obs.meta.id) ?? []) {
      const b = observed.backends[slot]!;
      const id = formatEndpoint(b.address, b.port);
      if (wanted.has(id) || seen.has(id)) continue; // a duplicate left by a crash is removed by the planner
      seen.add(id);
      yield { d, slot, b };
    }
  }
}

/**
 * Pure: which leaving backends drain and which drains end. `active` is the flow count of each
 * leaving slot (countActiveFlows). A backend without active flows is removed at once, as IPVS does;
 * a record whose backend is desired again, not programmed or whose VIP is gone is forgotten.
 */
export function planDrains(desired: readonly DesiredVip[], observed: Observed, records: ReadonlyMap<string, XdpDrainRecord>,
  o: { now: number; timeoutMs: number; active: ReadonlyMap<number, number> }): DrainPlan {
  const kept = new Map<string, XdpDrainRecord>();
  const extra = new Map<DesiredVip, DesiredBackend[]>();
  const started: XdpDrainRecord[] = [], ended: DrainEnd[] = [];
  for (const { d, slot, b } of leaving(desired, observed)) {
    const vip = vipKeyString(d.key);
    const key = drainKey(vip, b.address, b.port);
    const had = records.get(key);
    const count = o.active.get(slot) ?? 0;
    let rec: XdpDrainRecord | undefined;
    if (had) {
      if (count === 0) ended.push({ record: had, reason: 'drained' });
      else if (o.now >= had.deadline) ended.push({ record: had, reason: 'drain-timeout' });
      else rec = had;
    } else if (count > 0 && o.timeoutMs > 0) {
      rec = { vip, service: d.service, address: b.address, port: b.port, mac: b.mac, startedAt: o.now, deadline: o.now + o.timeoutMs };
      started.push(rec);
    }
    if (!rec) continue;
    kept.set(key, rec);
    extra.set(d, [...(extra.get(d) ?? []), { address: b.address, port: b.port, weight: 0, mac: b.mac }]);
  }
  return { desired: desired.map((d) => (extra.has(d) ? { ...d, backends: [...d.backends, ...extra.get(d)!] } : d)), records: kept, started, ended };
}

/**
 * Active flows per backend slot: connection-table entries that name the slot with its generation
 * (so they still steer packets to it) and saw a client packet within `idleSeconds`. One read of
 * the whole connection table (conntrackSize / 4 sets of 256 bytes).
 */
export function countActiveFlows(k: XdpKernel, slots: ReadonlyMap<number, number>, idleSeconds: number): Map<number, number> {
  const counts = new Map<number, number>();
  if (slots.size === 0) return counts;
  const clock = k.conntrackClock();
  const idle = Math.ceil(idleSeconds * clock.perSecond);
  const e = STRUCTS.fl_ct_entry, ways = STRUCTS.fl_ct_set.size / e.size;
  const familyAt = e.fields.key.offset + STRUCTS.fl_flow_key.fields.family.offset;
  const { values } = k.maps.conntrack.lookupBatch(1024);
  for (const set of values) {
    for (let w = 0; w < ways; w++) {
      const at = w * e.size;
      if (set[at + familyAt] === 0) continue;
      const slot = set.readUInt32LE(at + e.fields.backend.offset);
      const gen = slots.get(slot);
      if (gen === undefined || set.readUInt16LE(at + e.fields.gen.offset) !== (gen & 0xffff)) continue;
      // u32 tick stamps: the difference wraps; one a racing packet wrote after `now` reads as negative.
      if (((clock.now - set.readUInt32LE(at + e.fields.seen.offset)) | 0) > idle) continue;
      counts.set(slot, (counts.get(slot) ?? 0) + 1);
    }
  }
  return counts;
}
