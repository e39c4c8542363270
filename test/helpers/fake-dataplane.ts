import type { Dataplane, DrainStatus, PlannedStep, ReconcileResult, ServiceStats } from '../../src/dataplane/types.js';
import { FeatureMissingError } from '../../src/errors.js';
import type { Service } from '../../src/model/index.js';
import { formatEndpoint } from '../../src/model/index.js';
import type { DataplaneFactories } from '../../src/agent/ports.js';
import type { DataplaneExplanation, FlowQuery } from '../../src/dataplane/explain.js';
import { sameValue } from '../../src/util/json-value.js';

/**
 * An in-memory dataplane for unit tests: its "kernel" is a map of services; reconcile plans the
 * differences (like the real ones) and applies them, or fails on a chosen step and restores the
 * map (the rollback the interface promises).
 */
export class FakeDataplane implements Dataplane {
  kernel = new Map<string, Service>();
  calls: Array<{ dryRun: boolean; services: string[] }> = [];
  /** Return a KernelError (or any error) to make that step fail. */
  failOn: ((step: PlannedStep) => Error | undefined) | undefined;
  drainList: DrainStatus[] = [];
  /** What explain() answers: the first backend of the service in its kernel map, as an existing connection. */
  explained: Array<{ flow: FlowQuery; service: string }> = [];
  closed = false;
  cleanedUp = false;

  constructor(readonly name: 'ipvs' | 'xdp') {}

  async explain(flow: FlowQuery, service: Service): Promise<DataplaneExplanation> {
    this.explained.push({ flow, service: service.name });
    const backends = (this.kernel.get(service.name)?.backends ?? []).map((b) => ({ address: b.address, port: b.port, weight: b.weight }));
    const b = backends[0];
    return { dataplane: this.name, source: b ? 'connection' : 'none', backend: b && { address: b.address, port: b.port }, reason: b ? 'fake connection' : 'no backends', detail: {}, backends };
  }

  plan(desired: readonly Service[]): PlannedStep[] {
    const steps: PlannedStep[] = [];
    const want = new Map(desired.map((s) => [s.name, s]));
    for (const name of this.kernel.keys())
      if (!want.has(name)) steps.push({ kind: 'delete-service', service: name, description: `- service ${name}` });
    for (const s of desired) {
      const have = this.kernel.get(s.name);
      if (!have) {
        steps.push({ kind: 'add-service', service: s.name, description: `+ service ${s.name}` });
        for (const b of s.backends) steps.push({ kind: 'add-destination', service: s.name, description: `+ backend ${formatEndpoint(b.address, b.port)} weight ${b.weight} to ${s.name}` });
        continue;
      }
      const { backends: hb, ...hrest } = have;
      const { backends: wb, ...wrest } = s;
      if (!sameValue(hrest, wrest)) steps.push({ kind: 'edit-service', service: s.name, description: `~ service ${s.name}` });
      const key = (b: Service['backends'][number]) => formatEndpoint(b.address, b.port);
      const old = new Map(hb.map((b) => [key(b), b]));
      const now = new Map(wb.map((b) => [key(b), b]));
      for (const [k, b] of now) {
        const o = old.get(k);
        if (!o) steps.push({ kind: 'add-destination', service: s.name, description: `+ backend ${k} weight ${b.weight} to ${s.name}` });
        else if (!sameValue(o, b)) steps.push({ kind: 'edit-destination', service: s.name, description: `~ backend ${k} weight ${o.weight} -> ${b.weight} in ${s.name}` });
      }
      for (const k of old.keys()) if (!now.has(k)) steps.push({ kind: 'delete-destination', service: s.name, description: `- backend ${k} from ${s.name}` });
    }
    return steps;
  }

  async reconcile(desired: readonly Service[], options: { dryRun?: boolean } = {}): Promise<ReconcileResult> {
    this.calls.push({ dryRun: !!options.dryRun, services: desired.map((s) => s.name) });
    const steps = this.plan(desired);
    if (options.dryRun) return { dataplane: this.name, steps, applied: false };
    const saved = new Map(this.kernel);
    for (const step of steps) {
      const err = this.failOn?.(step);
      if (err) {
        this.kernel = saved;
        throw err;
      }
    }
    this.kernel = new Map(desired.map((s) => [s.name, s]));
    return { dataplane: this.name, steps, applied: true };
  }

  async stats(): Promise<ServiceStats[]> {
    return [...this.kernel.values()].map((s) => ({
      service: s.name,
      dataplane: this.name,
      totals: { packetsIn: 10n, packetsOut: 9n, bytesIn: 1000n, bytesOut: 900n, connections: 2n },
      backends: s.backends.map((b) => ({ address: b.address, port: b.port, activeConnections: 1, counters: { packetsIn: 5n, packetsOut: 4n, bytesIn: 500n, bytesOut: 450n, connections: 1n } })),
    }));
  }

  drains(): DrainStatus[] {
    return this.drainList;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async cleanup(): Promise<void> {
    this.kernel.clear();
    this.cleanedUp = true;
  }
}

/** Factories that hand out the given fakes; a missing one throws FeatureMissingError like the real ones. */
export function fakeFactories(dps: { ipvs?: FakeDataplane; xdp?: FakeDataplane }): DataplaneFactories {
  return {
    ipvs: async () => {
      if (!dps.ipvs) throw new FeatureMissingError('ipvs', 'no ip_vs in this (fake) kernel');
      return dps.ipvs;
    },
    xdp: async () => {
      if (!dps.xdp) throw new FeatureMissingError('xdp', 'no xdp in this (fake) kernel');
      return dps.xdp;
    },
  };
}
