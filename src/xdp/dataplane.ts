import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { Counters, Dataplane, DrainStatus, PlannedStep, ReconcileResult, ServiceStats } from '../dataplane/types.js';
import type { Service } from '../model/schema.js';
import { XdpSettingsSchema, type XdpSettings } from '../model/xdp.js';
import { FeatureMissingError, FulcrumError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { decodeBackend, decodeCounters, decodeEndpoint, encodeEndpoint, decodeVipKey, decodeVipMeta, decodeVipSlot, encodeBackend, encodeVipKey, encodeVipMeta, encodeVipSlot, maglevIndex, maglevStride, u32, ENUMS, L, STRUCTS, type BackendValue } from './abi.js';
import { applyToObserved, desiredVip, describeStep, plan, PlanError, sameVip, vipKeyString, type Observed, type ObservedVip, type TableMember, type XdpStep } from './plan.js';
import { limitsFromSettings, openXdpKernel, type XdpKernel } from './kernel.js';
import { maglevTableForMembers } from './table.js';
import { KernelNeighbours, NeighbourLearner, type NeighbourTable } from './neighbours.js';
import { acceptLocalSources } from './accept-local.js';
import type { Family } from '../model/net.js';

export interface XdpDataplaneOptions {
  /** Node-wide XDP settings from the desired state (interfaces, attach mode...). */
  settings: XdpSettings | undefined;
  /** Where state files live. */
  stateDir: string;
  /** bpffs directory for pins; defaults to /sys/fs/bpf/fulcrum. */
  pinDir?: string;
  logger: Logger;
  /** The compiled BPF object (default: bpf/build/fulcrum_xdp.bpf.o of this package). */
  objectPath?: string;
  /** Where dr backends' MACs are learned (default: this network namespace's neighbour table). */
  neighbours?: NeighbourTable;
}

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/fulcrum';
const NAMES_FILE = 'xdp-services.json';

/**
 * Loads (or re-opens from bpffs pins) the XDP dataplane. Throws FeatureMissingError when the
 * kernel, the object file or the interfaces cannot carry it.
 */
export async function createXdpDataplane(options: XdpDataplaneOptions): Promise<Dataplane & { readonly kernel: XdpKernel }> {
  if (options.settings === undefined) throw new FeatureMissingError('xdp', 'XDP is not configured on this node (no xdp: section in the desired state)');
  const settings = XdpSettingsSchema.parse(options.settings);
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  const logger = options.logger.child({ component: 'xdp' });
  const kernel = openXdpKernel({ settings, pinDir, ...(options.objectPath ? { objectPath: options.objectPath } : {}) });
  try {
    if (kernel.reopened) {
      const s = limitsFromSettings(settings);
      const l = kernel.limits;
      if (l.maxVips !== s.maxVips || l.maxBackends !== s.maxBackends || l.maglevTableSize !== s.maglevTableSize || l.conntrackSize !== s.conntrackSize)
        logger.warn({ pinned: l }, 'the pinned XDP maps have other sizes than xdp settings; they are kept (flows survive) until fulcrum agent --cleanup');
    }
    const attached = kernel.attach(settings.interfaces);
    const local = acceptLocalSources(settings.interfaces.map((i) => i.name));
    if (local.changed.length > 0) logger.info({ interfaces: local.changed }, 'accept_local set: nat replies to clients without a neighbour entry yet are forwarded by the kernel');
    if (local.failed.length > 0) logger.warn({ failed: local.failed }, 'cannot set accept_local: a nat reply to a client without a neighbour entry is dropped while this node holds the VIP');
    logger.info({ pinDir: kernel.pinDir, reopened: kernel.reopened, attached, limits: kernel.limits }, kernel.reopened ? 'xdp program reopened from pins' : 'xdp program loaded and pinned');
  } catch (e) {
    kernel.close();
    throw e;
  }
  return new XdpDataplane(kernel, settings, options.stateDir, logger, options.neighbours ?? new KernelNeighbours());
}

/** The dataplane over an already opened kernel side (the agent uses createXdpDataplane). */
export function xdpDataplaneOver(kernel: XdpKernel, settings: XdpSettings, stateDir: string, logger: Logger, neighbours: NeighbourTable = new KernelNeighbours()): Dataplane & { readonly kernel: XdpKernel } {
  return new XdpDataplane(kernel, settings, stateDir, logger, neighbours);
}

const zero = (): Counters => ({ packetsIn: 0n, packetsOut: 0n, bytesIn: 0n, bytesOut: 0n, connections: 0n });

class XdpDataplane implements Dataplane {
  readonly name = 'xdp' as const;
  #queue: Promise<unknown> = Promise.resolve();
  #names: Record<string, string>;
  #closed = false;
  /**
   * The maps' content as of the last successful apply. The maps are ours alone, so after the first
   * read-back (at start) the planner works from this; any failure drops it and the next reconcile
   * reads the kernel again.
   */
  #observed: Observed | undefined;

  readonly #neighbours: NeighbourLearner;

  constructor(readonly kernel: XdpKernel, private readonly settings: XdpSettings, private readonly stateDir: string, private readonly logger: Logger, neighbours: NeighbourTable) {
    this.#names = loadNames(join(stateDir, NAMES_FILE));
    this.#neighbours = new NeighbourLearner(neighbours);
  }

  /** One reconcile at a time: each one plans against what the previous one left. */
  #serial<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  reconcile(desired: readonly Service[], options: { dryRun?: boolean } = {}): Promise<ReconcileResult> {
    return this.#serial(async () => {
      await this.#learnMacs(desired);
      return this.#reconcile(desired, options.dryRun ?? false);
    });
  }

  /** dr backends without a configured MAC: learn theirs from the neighbour table (see neighbours.ts). */
  async #learnMacs(desired: readonly Service[]): Promise<void> {
    const wanted = new Map<string, { address: string; family: Family }>();
    for (const s of desired) {
      if (s.dataplane !== 'xdp' || s.forwarding !== 'dr') continue;
      for (const b of s.backends) if (!b.mac) wanted.set(b.address, { address: b.address, family: s.family });
    }
    try {
      for (const c of await this.#neighbours.refresh([...wanted.values()]))
        this.logger.info({ backend: c.address, mac: c.mac, previous: c.previous }, 'learned the MAC of a dr backend from the neighbour table');
    } catch (e) {
      // The program still asks the FIB for the neighbour per packet; the next reconcile retries.
      this.logger.warn({ err: e }, 'reading the neighbour table failed');
    }
  }

  #reconcile(desired: readonly Service[], dryRun: boolean): ReconcileResult {
    if (this.#closed) throw new FulcrumError('INTERNAL', 'the xdp dataplane is closed');
    const vips = desired.filter((s) => s.dataplane === 'xdp').map((s) => desiredVip(s, (a) => this.#neighbours.macOf(a)));
    const observed = (this.#observed ??= readObserved(this.kernel));
    let steps: XdpStep[];
    try {
      steps = plan(vips, observed, this.kernel.limits);
    } catch (e) {
      if (e instanceof PlanError) throw new FulcrumError('INVALID_CONFIG', e.message);
      throw e;
    }
    const planned: PlannedStep[] = steps.map((s) => ({ kind: s.kind, service: s.service, description: describeStep(s) }));
    if (dryRun || steps.length === 0) {
      if (!dryRun) this.#saveNames(vips);
      return { dataplane: 'xdp', steps: planned, applied: !dryRun };
    }
    const undo: Array<() => void> = [];
    let done = 0;
    try {
      for (const step of steps) {
        undo.push(applyStep(this.kernel, step, observed));
        done++;
      }
    } catch (cause) {
      this.#observed = undefined;
      const failed = steps[done];
      for (const u of undo.reverse()) {
        try { u(); } catch (e) { this.logger.error({ err: e }, 'xdp rollback step failed'); }
      }
      throw new FulcrumError('APPLY_FAILED', `xdp: ${failed ? describeStep(failed) : 'a step'} failed: ${(cause as Error).message}; ${done} earlier steps were rolled back`, {
        cause, details: { step: failed?.kind, service: failed?.service },
      });
    }
    this.#observed = applyToObserved(observed, steps);
    this.#saveNames(vips);
    for (const p of planned) this.logger.info({ service: p.service, step: p.kind }, p.description);
    return { dataplane: 'xdp', steps: planned, applied: true };
  }

  #saveNames(vips: ReturnType<typeof desiredVip>[]): void {
    const names = Object.fromEntries(vips.map((v) => [vipKeyString(v.key), v.service]));
    if (JSON.stringify(names) === JSON.stringify(this.#names)) return;
    writeFileAtomic(join(this.stateDir, NAMES_FILE), `${JSON.stringify(names, null, 2)}\n`);
    this.#names = names;
  }

  async stats(): Promise<ServiceStats[]> {
    return this.#serial(() => {
      const observed = (this.#observed ??= readObserved(this.kernel));
      const out: ServiceStats[] = [];
      const byVip = new Map<number, ServiceStats['backends']>();
      observed.backends.forEach((b, slot) => {
        if (!b.active) return;
        const list = byVip.get(b.vipId) ?? [];
        list.push({ address: b.address, port: b.port, counters: readCounters(this.kernel, 'backend', slot) });
        byVip.set(b.vipId, list);
      });
      for (const v of observed.vips) {
        const keyText = vipKeyString(v.key);
        const backends = byVip.get(v.meta.id) ?? [];
        // The program counts per backend slot; stats[id] holds what removed slots had counted.
        const totals = readCounters(this.kernel, 'vip', v.meta.id);
        for (const b of backends) for (const f of Object.keys(totals) as Array<keyof Counters>) totals[f] += b.counters[f];
        out.push({ service: this.#names[keyText] ?? keyText, dataplane: 'xdp', totals, backends });
      }
      return out;
    });
  }

  /** XDP keeps no drain list: a weight-0 backend takes no new flows while its established flows go on. */
  drains(): DrainStatus[] {
    return [];
  }

  async close(): Promise<void> {
    await this.#serial(() => {
      if (this.#closed) return;
      this.#closed = true;
      if (this.settings.detachOnShutdown) {
        this.kernel.detach(this.settings.interfaces);
        this.logger.info({ interfaces: this.settings.interfaces.map((i) => i.name) }, 'xdp program detached (detachOnShutdown)');
      }
      this.kernel.close();
      this.#neighbours.close();
    });
  }

  async cleanup(): Promise<void> {
    await this.#serial(() => {
      if (this.#closed) throw new FulcrumError('INTERNAL', 'the xdp dataplane is closed');
      this.#closed = true;
      this.kernel.destroy(this.settings.interfaces);
      this.#neighbours.close();
      writeFileAtomic(join(this.stateDir, NAMES_FILE), '{}\n');
      this.logger.info({ pinDir: this.kernel.pinDir }, 'xdp program detached and unpinned');
    });
  }
}

function loadNames(path: string): Record<string, string> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (parsed && typeof parsed === 'object') return parsed as Record<string, string>;
  } catch { /* none yet, or unreadable: names fall back to the VIP key */ }
  return {};
}

/** What the pinned maps hold now. */
export function readObserved(k: XdpKernel): Observed {
  const vips = k.maps.vips.lookupBatch(1024);
  const empty = decodeBackend(Buffer.alloc(STRUCTS.fl_backend.size));
  const backends: BackendValue[] = new Array<BackendValue>(k.limits.maxBackends).fill(empty);
  const all = k.maps.backends.lookupBatch(4096);
  const flagsAt = STRUCTS.fl_backend.fields.flags.offset, genAt = STRUCTS.fl_backend.fields.gen.offset;
  all.keys.forEach((key, i) => {
    const v = all.values[i]!;
    // Inactive slots matter only for their generation: skip decoding the rest.
    const active = (v[flagsAt]! & ENUMS.fl_backend_flag.FL_BACKEND_ACTIVE) !== 0;
    const gen = v.readUInt32LE(genAt);
    if (active) backends[key.readUInt32LE(0)] = decodeBackend(v);
    else if (gen !== 0) backends[key.readUInt32LE(0)] = { ...empty, gen };
  });
  const filter = new BigUint64Array(L.FL_FILTER_WORDS);
  const f = k.maps.filter.lookupBatch(1024);
  f.keys.forEach((key, i) => {
    filter[key.readUInt32LE(0)] = f.values[i]!.readBigUInt64LE(0);
  });
  const eps = k.maps.nat_endpoints.lookupBatch(1024);
  const vipIndex: Observed['vipIndex'] = new Map();
  const idx = k.maps.vip_index.lookupBatch(4096);
  idx.keys.forEach((key, i) => {
    const v = decodeVipSlot(idx.values[i]!);
    if (v) vipIndex.set(key.readUInt32LE(0), v);
  });
  return {
    vipIndex,
    vips: vips.keys.map((key, i) => ({ key: decodeVipKey(key), meta: decodeVipMeta(vips.values[i]!) })),
    backends,
    filter,
    endpoints: eps.keys.map((key, i) => {
      const k2 = decodeVipKey(key);
      return { key: k2, value: decodeEndpoint(eps.values[i]!, k2.family) };
    }),
  };
}

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

/**
 * Moves a removed backend slot's counters into its VIP's stats entry, CPU by CPU, so the VIP's
 * totals keep them (packets still in flight when the slot went inactive may add a few after).
 * Returns the exact reverse.
 */
function foldCounters(k: XdpKernel, slot: number, vipId: number): () => void {
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
function resetCounters(k: XdpKernel, of: 'vip' | 'backend', index: number): void {
  const map = of === 'vip' ? k.maps.stats : k.maps.backend_pcpu;
  const per = map.lookupPerCpu(u32(index));
  if (!per) return;
  map.updatePerCpu(u32(index), per.map((v) => Buffer.alloc(v.length)));
}

/**
 * Writes a maglev table into (vip id, slot): one memory copy into the mmapped map when there is
 * one, else one batch update of the table's lines (a table starts on a line and its padding holds
 * FL_NO_BACKEND, so no line is shared with another table).
 */
class TableWriter {
  #keys: Buffer[] = [];
  constructor(private readonly k: XdpKernel) {}

  write(vipId: number, slot: 0 | 1, members: readonly TableMember[]): void {
    const size = this.k.limits.maglevTableSize;
    const stride = maglevStride(size);
    const table = new Uint32Array(stride).fill(L.FL_NO_BACKEND);
    table.set(maglevTableForMembers(members, size));
    const bytes = new Uint8Array(table.buffer); // little-endian host, as the program reads it
    const base = maglevIndex(vipId, slot, 0, size);
    const memory = this.k.maglevMemory;
    if (memory) {
      memory.write(base * 4, bytes);
      return;
    }
    const line = L.FL_MAGLEV_LINE, lines = stride / line;
    while (this.#keys.length < lines) this.#keys.push(Buffer.alloc(4));
    const keys = this.#keys.slice(0, lines);
    const values: Buffer[] = new Array<Buffer>(lines);
    for (let i = 0; i < lines; i++) {
      keys[i]!.writeUInt32LE(base / line + i, 0);
      values[i] = Buffer.from(bytes.buffer, i * line * 4, line * 4);
    }
    this.k.maps.maglev.updateBatch(keys, values);
  }
}

const writers = new WeakMap<XdpKernel, TableWriter>();
function writeTable(k: XdpKernel, vipId: number, slot: 0 | 1, members: readonly TableMember[]): void {
  let w = writers.get(k);
  if (!w) writers.set(k, (w = new TableWriter(k)));
  w.write(vipId, slot, members);
}

function writeFilter(k: XdpKernel, words: BigUint64Array): void {
  const keys: Buffer[] = [], values: Buffer[] = [];
  words.forEach((w, i) => {
    const v = Buffer.alloc(8);
    v.writeBigUInt64LE(w, 0);
    keys.push(u32(i));
    values.push(v);
  });
  k.maps.filter.updateBatch(keys, values);
}

/**
 * Rewrites vip_index[index] from `from` to `to` so that a packet reading it meanwhile never sees a
 * matching key with a half-written meta (an array update is a plain memcpy): an entry changes its
 * VIP, id or mode only while its family byte is 0 (no packet matches it), so that every write a
 * packet can match differs from the previous one in one byte (the family, or the live slot).
 */
function writeVipIndex(k: XdpKernel, index: number, from: ObservedVip | undefined, to: ObservedVip | undefined): void {
  const key = u32(index);
  const write = (v: ObservedVip, visible: boolean) => {
    const b = encodeVipSlot(v.key, v.meta);
    if (!visible) b[STRUCTS.fl_vip_slot.fields.key.offset + STRUCTS.fl_vip_key.fields.family.offset] = 0;
    k.maps.vip_index.update(key, b);
  };
  if (!(from && to && sameVip(from, to))) {
    if (from) write(from, false);
    if (to) write(to, false);
    else k.maps.vip_index.update(key, Buffer.alloc(STRUCTS.fl_vip_slot.size));
  }
  if (to) write(to, true);
}

/** Applies one step; returns how to undo it. */
function applyStep(k: XdpKernel, step: XdpStep, observed: Observed): () => void {
  const m = k.maps;
  switch (step.kind) {
    case 'add-backend': {
      // Restore the slot's exact bytes on rollback (an inactive slot keeps its generation).
      const before = m.backends.lookup(u32(step.slot)) ?? encodeBackend(observed.backends[step.slot]!);
      resetCounters(k, 'backend', step.slot);
      m.backends.update(u32(step.slot), encodeBackend(step.value));
      return () => m.backends.update(u32(step.slot), before);
    }
    case 'update-backend':
      m.backends.update(u32(step.slot), encodeBackend(step.value));
      return () => m.backends.update(u32(step.slot), encodeBackend(step.previous));
    case 'publish': {
      // The table goes into the slot no packet reads; the one vips update below makes it live.
      writeTable(k, step.meta.id, step.meta.slot, step.members);
      if (!step.previous) resetCounters(k, 'vip', step.meta.id);
      m.vips.update(encodeVipKey(step.key), encodeVipMeta(step.meta));
      const prev = step.previous;
      return prev ? () => m.vips.update(encodeVipKey(step.key), encodeVipMeta(prev)) : () => void m.vips.delete(encodeVipKey(step.key));
    }
    case 'remove-vip':
      m.vips.delete(encodeVipKey(step.key));
      return () => m.vips.update(encodeVipKey(step.key), encodeVipMeta(step.previous));
    case 'remove-backend': {
      m.backends.update(u32(step.slot), encodeBackend({ ...step.previous, active: false }));
      const unfold = foldCounters(k, step.slot, step.previous.vipId);
      return () => {
        unfold();
        m.backends.update(u32(step.slot), encodeBackend(step.previous));
      };
    }
    case 'set-filter':
      writeFilter(k, step.words);
      return () => writeFilter(k, step.previous);
    case 'set-endpoint': {
      m.nat_endpoints.update(encodeVipKey(step.key), encodeEndpoint(step.value));
      const prev = step.previous;
      return prev ? () => m.nat_endpoints.update(encodeVipKey(step.key), encodeEndpoint(prev)) : () => void m.nat_endpoints.delete(encodeVipKey(step.key));
    }
    case 'remove-endpoint':
      m.nat_endpoints.delete(encodeVipKey(step.key));
      return () => m.nat_endpoints.update(encodeVipKey(step.key), encodeEndpoint(step.previous));
    case 'set-vip-index':
      writeVipIndex(k, step.index, step.previous, step.value);
      return () => writeVipIndex(k, step.index, step.value, step.previous);
  }
}
