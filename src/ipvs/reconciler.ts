import type { Service } from '../model/schema.js';
import type { Counters, Dataplane, DrainStatus, ReconcileResult, Report, ServiceStats } from '../dataplane/types.js';
import type { IpvsClient, IpvsDest, IpvsServiceKey, IpvsStats } from './types.js';
import { desiredOf, destId, keyString, serviceSpecOnly, destSpecOnly, type DesiredIpvsService } from './model-specs.js';
import { applyToObserved, applyToObservedInPlace, drainId, foreignKeys, plan, type DrainRecord, type ObservedIpvsService, type Step } from './plan.js';
import { applySteps } from './executor.js';
import { OwnershipStore } from './ownership.js';
import { listDestinationsOf } from './read.js';
import { SerialQueue } from '../util/serial-queue.js';
import { systemClock, type Clock } from '../util/clock.js';

/**
 * The IPVS dataplane over an IpvsClient: observe, plan, apply, remember.
 *
 * Observing: a full read of the kernel (every service and its destinations) happens on the first
 * reconcile, whenever the desired state is the same as last time (the periodic drift check), and at
 * least every `resyncIntervalMs`. Otherwise only the services whose desired spec changed are read
 * back with targeted gets and the rest comes from the state left by the last apply, so a one-weight
 * change in a 10k-service table costs a few netlink round trips, not a dump.
 */
export interface IpvsReconcilerOptions {
  client: IpvsClient;
  stateDir: string;
  /** Where notes for the operator go (kernel services left alone); the agent logs them. */
  report?: Report;
  /** Drain removed backends (weight 0, delete when idle). Default true. */
  drain?: boolean;
  /** Delete a draining backend after this long even if it still has connections. Default 300 s. */
  drainTimeoutMs?: number;
  /** A full kernel read at least this often. Default 30 s. */
  resyncIntervalMs?: number;
  /** Drain start times and deadlines are read from its wall time. */
  clock?: Clock;
}

export interface IpvsReconcileResult extends ReconcileResult {
  /** Kernel services Fulcrum does not own (left alone). */
  foreign: string[];
  /** Steps that repair changes made behind Fulcrum's back (desired did not change, the kernel did). */
  drift: string[];
  /** Whether this reconcile read the whole kernel table. */
  fullRead: boolean;
}

interface DesiredEntry {
  d: DesiredIpvsService;
  key: string;
  fingerprint: string;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 300_000;
const DEFAULT_RESYNC_MS = 30_000;
const READ_WINDOW = 512;

export class IpvsReconciler implements Dataplane {
  readonly name = 'ipvs' as const;
  private readonly client: IpvsClient;
  private readonly report: Report;
  private readonly store: OwnershipStore;
  private readonly owned: Set<string>;
  private readonly drainRecords: Map<string, DrainRecord>;
  private readonly clock: Clock;
  private readonly drainTimeoutMs: number;
  private readonly resyncMs: number;
  private readonly drainEnabled: boolean;
  /** The kernel as last read or left by the last apply (only owned services are kept fresh). */
  private observed: Map<string, ObservedIpvsService> | undefined;
  private lastFullRead = -Infinity;
  private lastDesired = new Map<string, DesiredEntry>();
  private lastInput: readonly Service[] | undefined;
  private readonly converted = new WeakMap<Service, DesiredEntry>();
  private lastForeign = '';
  private readonly queue = new SerialQueue();

  constructor(options: IpvsReconcilerOptions) {
    this.client = options.client;
    this.report = options.report ?? (() => undefined);
    this.store = new OwnershipStore(options.stateDir);
    const state = this.store.load();
    this.owned = state.owned;
    this.drainRecords = state.drains;
    this.clock = options.clock ?? systemClock;
    this.drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    this.resyncMs = options.resyncIntervalMs ?? DEFAULT_RESYNC_MS;
    this.drainEnabled = options.drain ?? true;
  }

  /** Service keys Fulcrum owns (as recorded durably). */
  ownedKeys(): string[] {
    return [...this.owned].sort();
  }

  reconcile(desired: readonly Service[], options: { dryRun?: boolean } = {}): Promise<IpvsReconcileResult> {
    return this.serial(() => this.run(desired, { dryRun: options.dryRun ?? false }));
  }

  /**
   * Moves drains along: re-reads only the services with draining backends and deletes those that
   * are idle or past their deadline. The dataplane factory calls it on a timer.
   */
  pollDrains(): Promise<IpvsReconcileResult | undefined> {
    return this.serial(async () => {
      if (this.drainRecords.size === 0 || !this.lastInput) return undefined;
      const scope = new Set([...this.drainRecords.values()].map((r) => r.key));
      return this.run(this.lastInput, { dryRun: false, scope });
    });
  }

  drains(): DrainStatus[] {
    return [...this.drainRecords.values()].map((r) => {
      const dest = this.observed?.get(r.key)?.dests.find((d) => destId(d) === r.dest);
      const [address, port] = splitDest(r.dest);
      return {
        service: r.service, address, port,
        startedAt: new Date(r.startedAt).toISOString(), deadline: new Date(r.deadline).toISOString(),
        activeConnections: dest?.activeConnections ?? 0,
      };
    });
  }

  async stats(): Promise<ServiceStats[]> {
    const services = await this.client.listServices();
    const names = new Map([...this.lastDesired].map(([k, e]) => [k, e.d.name]));
    const mine = services.filter((s) => this.owned.has(keyString(s.key)));
    const dests = await listDestinationsOf(this.client, mine.map((s) => s.key));
    return mine.map((s, i) => {
      const k = keyString(s.key);
      return {
        service: names.get(k) ?? k,
        dataplane: 'ipvs' as const,
        totals: counters(s.stats),
        backends: dests[i]!.map((d) => ({
          address: d.address, port: d.port, activeConnections: d.activeConnections, inactiveConnections: d.inactiveConnections,
          counters: counters(d.stats),
        })),
      };
    });
  }

  async close(): Promise<void> {
    await this.queue.idle();
    await this.client.close();
  }

  /** Deletes every service Fulcrum owns from the kernel and forgets them. */
  cleanup(): Promise<void> {
    return this.serial(async () => {
      const observed = await this.readAll();
      const steps: Step[] = [];
      for (const k of this.owned) {
        const obs = observed.get(k);
        if (obs) steps.push({ kind: 'delete-service', service: k, key: obs.spec.key, keyText: k, previous: obs, description: `- service ${k}` });
      }
      await applySteps(this.client, steps);
      this.owned.clear();
      this.drainRecords.clear();
      this.store.save({ owned: this.owned, drains: this.drainRecords });
      this.observed = applyToObserved(observed, steps);
      this.lastDesired = new Map();
      this.lastInput = undefined;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  /**
   * The desired services by key, and the keys whose desired spec differs from the last reconcile.
   * Services are immutable specs, so an unchanged object at the same index is unchanged: with a
   * few replaced objects this costs a pass of identity checks and a Map copy, not a re-conversion.
   */
  private desiredMap(input: readonly Service[]): { desired: Map<string, DesiredEntry>; changed: Set<string> } {
    const last = this.lastInput;
    const changed = new Set<string>();
    if (last && last.length === input.length) {
      const idx: number[] = [];
      for (let i = 0; i < input.length; i++) if (input[i] !== last[i]) idx.push(i);
      if (idx.length <= input.length / 4) {
        const desired = new Map(this.lastDesired);
        for (const i of idx) desired.delete(this.entryOf(last[i]!).key);
        for (const i of idx) { const e = this.entryOf(input[i]!); desired.set(e.key, e); }
        for (const i of idx) {
          const before = this.entryOf(last[i]!), after = this.entryOf(input[i]!);
          if (before.key !== after.key || before.fingerprint !== after.fingerprint) {
            if (desired.get(before.key)?.fingerprint !== this.lastDesired.get(before.key)?.fingerprint) changed.add(before.key);
            if (this.lastDesired.get(after.key)?.fingerprint !== after.fingerprint) changed.add(after.key);
          }
        }
        return { desired, changed };
      }
    }
    const desired = new Map<string, DesiredEntry>();
    for (const svc of input) { const e = this.entryOf(svc); desired.set(e.key, e); }
    for (const [k, e] of desired) if (this.lastDesired.get(k)?.fingerprint !== e.fingerprint) changed.add(k);
    for (const k of this.lastDesired.keys()) if (!desired.has(k)) changed.add(k);
    return { desired, changed };
  }

  private entryOf(svc: Service): DesiredEntry {
    let e = this.converted.get(svc);
    if (!e) {
      const d = desiredOf(svc);
      e = { d, key: keyString(d.spec.key), fingerprint: JSON.stringify(d) };
      this.converted.set(svc, e);
    }
    return e;
  }

  private async run(input: readonly Service[], opts: { dryRun: boolean; scope?: Set<string>; forceFull?: boolean }): Promise<IpvsReconcileResult> {
    const now = this.clock.wallNow();
    const { desired, changed } = this.desiredMap(input);
    const unchanged = this.lastInput !== undefined && changed.size === 0;
    const full = opts.scope === undefined &&
      (opts.forceFull === true || this.observed === undefined || unchanged || now - this.lastFullRead >= this.resyncMs);

    let scope: Set<string> | undefined;
    let observed: Map<string, ObservedIpvsService>;
    if (full) {
      observed = await this.readAll();
      this.lastFullRead = now;
    } else {
      const base = this.observed ?? new Map<string, ObservedIpvsService>();
      if (opts.scope) {
        // Drain polling: re-read the services with draining backends (their connection counts).
        scope = opts.scope;
        const keyFor = (k: string) => base.get(k)?.spec.key ?? desired.get(k)?.d.spec.key ?? this.lastDesired.get(k)?.d.spec.key;
        observed = await this.readSome(base, scope, keyFor);
      } else {
        // Desired changed for a few services: plan them against the state the last apply left
        // (no kernel reads at all). If the kernel drifted meanwhile, the apply fails cleanly
        // (ENOENT/ESRCH/EEXIST, rolled back) and we re-read everything and plan again.
        scope = changed;
        observed = base;
        // A backend leaving a service may drain: that needs its live connection count.
        const losing = new Set<string>();
        if (this.drainEnabled) {
          for (const k of scope) {
            const obs = base.get(k), want = desired.get(k);
            if (!obs || !want) continue;
            const ids = new Set(want.d.dests.map(destId));
            if (obs.dests.some((d) => !ids.has(destId(d)))) losing.add(k);
          }
        }
        if (losing.size > 0) observed = await this.readSome(base, losing, (k) => base.get(k)?.spec.key);
      }
    }
    this.observed = observed;

    // An owned key with no kernel service and no desire is a leftover of a crash or of an external delete.
    let dirty = false;
    for (const k of scope ? [...scope] : [...this.owned]) {
      if (this.owned.has(k) && !observed.has(k) && !desired.has(k) && !opts.dryRun) { this.owned.delete(k); dirty = true; }
    }

    const planDesired: DesiredIpvsService[] = [];
    if (scope) for (const k of scope) { const e = desired.get(k); if (e) planDesired.push(e.d); }
    else for (const e of desired.values()) planDesired.push(e.d);
    let planObserved: ReadonlyMap<string, ObservedIpvsService> = observed;
    if (scope) {
      const sub = new Map<string, ObservedIpvsService>();
      for (const k of scope) { const o = observed.get(k); if (o) sub.set(k, o); }
      planObserved = sub;
    }
    const steps = plan(planDesired, planObserved, this.owned, { drain: this.drainEnabled, drains: this.drainRecords, now });

    const foreign = full ? foreignKeys(observed, this.owned) : [];
    if (full && foreign.join(',') !== this.lastForeign) {
      this.lastForeign = foreign.join(',');
      if (foreign.length > 0) this.report({ level: 'info', fields: { foreign }, message: `leaving ${foreign.length} IPVS service(s) alone that Fulcrum does not own` });
    }
    const drift = steps
      .filter((s) => {
        const k = s.keyText;
        const was = this.lastDesired.get(k);
        if (s.kind === 'drain-dest' || s.kind === 'delete-dest') return false;
        return was !== undefined && was.fingerprint === desired.get(k)?.fingerprint && this.owned.has(k);
      })
      .map((s) => s.description);

    const result: IpvsReconcileResult = {
      dataplane: 'ipvs', applied: false, foreign, drift, fullRead: full,
      steps: steps.map((s) => ({ kind: s.kind, service: s.service, description: s.description })),
    };
    if (opts.dryRun) return result;

    // Own first, then add: a crash in between leaves an owned key without a service, never the reverse.
    const adding = steps.filter((s) => s.kind === 'add-service').map((s) => s.keyText);
    for (const k of adding) if (!this.owned.has(k)) { this.owned.add(k); dirty = true; }
    if (dirty) this.save();

    try {
      await applySteps(this.client, steps);
    } catch (e) {
      // The executor rolled back; what it added is gone again unless the rollback failed.
      const incomplete = (e as { details?: { undoErrors?: string[] } }).details?.undoErrors?.length ?? 0;
      if (incomplete === 0) for (const k of adding) if (!observed.has(k)) this.owned.delete(k);
      this.save();
      this.observed = undefined; // read everything next time
      const errno = (e as { errno?: number }).errno;
      if (!full && opts.scope === undefined && incomplete === 0 && (errno === 2 || errno === 3 || errno === 17)) {
        // The cached view was stale (someone changed the kernel): plan again from a full read.
        return this.run(input, { ...opts, forceFull: true });
      }
      throw e;
    }

    // `observed` is ours alone (a fresh read or the previous cache): update it in place.
    this.observed = applyToObservedInPlace(observed, steps);
    // A plan from a full read, applied without error, is exactly the kernel now (a long apply
    // must not make the next small change re-read everything).
    if (full) this.lastFullRead = this.clock.wallNow();
    dirty = false;
    for (const s of steps) if (s.kind === 'delete-service' && this.owned.delete(s.keyText)) dirty = true;
    if (this.trackDrains(desired, scope, now)) dirty = true;
    if (dirty) this.save();

    if (opts.scope === undefined) {
      this.lastDesired = desired;
      this.lastInput = input;
    }
    result.applied = true;
    return result;
  }

  /** Every owned, undesired, still-present backend has a drain record; every other record goes. */
  private trackDrains(desired: Map<string, DesiredEntry>, scope: Set<string> | undefined, now: number): boolean {
    const observed = this.observed!;
    const size = this.drainRecords.size;
    let added = false;
    for (const [id, r] of [...this.drainRecords]) {
      if (scope && !scope.has(r.key)) continue;
      const obs = observed.get(r.key);
      const want = desired.get(r.key)?.d.dests.some((d) => destId(d) === r.dest);
      if (!obs || want || !obs.dests.some((d) => destId(d) === r.dest)) this.drainRecords.delete(id);
    }
    if (!this.drainEnabled) return this.drainRecords.size !== size;
    for (const k of scope ?? observed.keys()) {
      const obs = observed.get(k);
      const wanted = desired.get(k);
      // After an apply the kernel holds exactly the desired backends plus the draining ones.
      if (!obs || !wanted || !this.owned.has(k) || obs.dests.length <= wanted.d.dests.length) continue;
      const want = new Set(wanted.d.dests.map(destId));
      for (const d of obs.dests) {
        const id = destId(d);
        if (want.has(id) || this.drainRecords.has(drainId(k, id))) continue;
        this.drainRecords.set(drainId(k, id), { key: k, dest: id, service: desired.get(k)!.d.name, startedAt: now, deadline: now + this.drainTimeoutMs });
        added = true;
      }
    }
    return added || this.drainRecords.size !== size;
  }

  private save(): void {
    this.store.save({ owned: this.owned, drains: this.drainRecords });
  }

  private async readAll(): Promise<Map<string, ObservedIpvsService>> {
    // Planning compares configuration and connection counts only: skip decoding the counters.
    const services = await this.client.listServices({ stats: false });
    const dests = await listDestinationsOf(this.client, services.map((s) => s.key), { stats: false });
    const out = new Map<string, ObservedIpvsService>();
    services.forEach((s, i) => out.set(keyString(s.key), { spec: serviceSpecOnly(s), dests: dests[i]!.map(observedDest) }));
    return out;
  }

  /** Re-reads only `keys` (targeted gets) into a copy of `base`. */
  private async readSome(
    base: Map<string, ObservedIpvsService>, keys: Set<string>, keyFor: (k: string) => IpvsServiceKey | undefined,
  ): Promise<Map<string, ObservedIpvsService>> {
    const out = new Map(base);
    const list = [...keys].map((k) => ({ k, key: keyFor(k) })).filter((x): x is { k: string; key: IpvsServiceKey } => x.key !== undefined);
    // Gets pipeline; the destination dumps go one at a time (one dump per socket).
    const specs = await mapWindowed(list, ({ key }) => this.client.getService(key));
    const present = list.filter((_, i) => specs[i] !== undefined);
    const dests = await listDestinationsOf(this.client, present.map((x) => x.key), { stats: false });
    const got = new Map(present.map((x, i) => [x.k, dests[i]!]));
    const gotSpec = new Map(list.map((x, i) => [x.k, specs[i]]));
    for (const { k } of list) {
      const spec = gotSpec.get(k);
      if (spec) out.set(k, { spec: serviceSpecOnly(spec), dests: got.get(k)!.map(observedDest) });
      else out.delete(k);
    }
    return out;
  }

}

function observedDest(d: IpvsDest) {
  return { ...destSpecOnly(d), activeConnections: d.activeConnections, inactiveConnections: d.inactiveConnections };
}

function splitDest(id: string): [string, number] {
  const i = id.lastIndexOf(':');
  return [id.slice(0, i).replace(/^\[|\]$/g, ''), Number(id.slice(i + 1))];
}

function counters(s: IpvsStats | undefined): Counters {
  return {
    packetsIn: s?.packetsIn ?? 0n, packetsOut: s?.packetsOut ?? 0n, bytesIn: s?.bytesIn ?? 0n, bytesOut: s?.bytesOut ?? 0n,
    connections: s?.connections ?? 0n,
  };
}

async function mapWindowed<T, R>(items: readonly T[], fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += READ_WINDOW) out.push(...(await Promise.all(items.slice(i, i + READ_WINDOW).map(fn))));
  return out;
}
