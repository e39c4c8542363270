import type { Dataplane, DrainStatus, PlannedStep, ReconcileResult, Report, ServiceStats } from '../dataplane/types.js';
import type { Service } from '../model/schema.js';
import { XdpSettingsSchema, type XdpSettings } from '../model/xdp.js';
import { FeatureMissingError, FulcrumError } from '../errors.js';
import { applyToObserved, desiredVip, describeStep, plan, PlanError, vipKeyString, type Observed, type XdpStep } from './plan.js';
import { limitsFromSettings, mountDefaultBpffs, openXdpKernel, BPFFS_MOUNT_POINT, type XdpKernel } from './kernel.js';
import { readObserved } from './observe.js';
import { readServiceStats } from './counters.js';
import { StepExecutor } from './executor.js';
import { ServiceNames } from './names.js';
import { KernelNeighbours, NeighbourLearner, type NeighbourTable } from './neighbours.js';
import { acceptLocalSources } from './accept-local.js';
import { formatEndpoint, type Family } from '../model/net.js';
import { SerialQueue } from '../util/serial-queue.js';
import { every, systemClock, type Clock } from '../util/clock.js';
import type { Registry } from 'prom-client';
import { FlowSync } from './flowsync/service.js';
import { flowSyncMetrics } from './flowsync/metrics.js';
import { countActiveFlows, drainKey, leavingSlots, planDrains, XdpDrainStore, type XdpDrainRecord } from './drains.js';
import { explainXdp } from './explain.js';
import type { DataplaneExplanation, FlowQuery } from '../dataplane/explain.js';

export interface XdpDataplaneOptions {
  /** Node-wide XDP settings from the desired state (interfaces, attach mode...). */
  settings: XdpSettings | undefined;
  /** Where state files live. */
  stateDir: string;
  /** bpffs directory for pins; defaults to /sys/fs/bpf/fulcrum. */
  pinDir?: string;
  /** Where notes for the operator go; the agent logs them. */
  report: Report;
  /** The compiled BPF object (default: bpf/build/fulcrum_xdp.bpf.o of this package). */
  objectPath?: string;
  /** Where dr backends' MACs are learned (default: this network namespace's neighbour table). */
  neighbours?: NeighbourTable;
  /** Remove a draining backend after this many seconds even if it still has flows. Default 300. */
  drainTimeoutSeconds?: number;
  /** How often draining backends are checked for active flows, in seconds. Default 5. */
  drainPollSeconds?: number;
  /** Where the flow sync (xdp.sync) registers its metrics. */
  metrics?: Registry;
}

/** How removed backends drain (see ./drains.ts); the clock gives drain start times and deadlines and runs the poll. */
export interface XdpDrainOptions {
  timeoutSeconds: number;
  pollSeconds: number;
  /** A flow is active while its last client packet is at most this old. */
  flowIdleSeconds: number;
  clock: Clock;
}

export const DEFAULT_DRAIN: XdpDrainOptions = { timeoutSeconds: 300, pollSeconds: 5, flowIdleSeconds: 30, clock: systemClock };

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/fulcrum';

/**
 * Loads (or re-opens from bpffs pins) the XDP dataplane. Throws FeatureMissingError when the
 * kernel, the object file or the interfaces cannot carry it.
 */
export async function createXdpDataplane(options: XdpDataplaneOptions): Promise<Dataplane & { readonly kernel: XdpKernel }> {
  if (options.settings === undefined) throw new FeatureMissingError('xdp', 'XDP is not configured on this node (no xdp: section in the desired state)');
  const settings = XdpSettingsSchema.parse(options.settings);
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  const report = options.report;
  const names = new ServiceNames(options.stateDir);
  if (mountDefaultBpffs(pinDir))
    report({ level: 'info', fields: { mountPoint: BPFFS_MOUNT_POINT }, message: `no bpf filesystem was mounted at ${BPFFS_MOUNT_POINT}: mounted one for the XDP pins` });
  const kernel = openXdpKernel({ settings, pinDir, ...(options.objectPath ? { objectPath: options.objectPath } : {}) });
  try {
    if (kernel.reopened) {
      const s = limitsFromSettings(settings);
      const l = kernel.limits;
      if (l.maxVips !== s.maxVips || l.maxBackends !== s.maxBackends || l.maglevTableSize !== s.maglevTableSize || l.conntrackSize !== s.conntrackSize)
        report({ level: 'warn', fields: { pinned: l }, message: 'the pinned XDP maps have other sizes than xdp settings; they are kept (flows survive) until fulcrum agent --cleanup' });
    }
    const attached = kernel.attach(settings.interfaces);
    const local = acceptLocalSources(settings.interfaces.map((i) => i.name));
    if (local.changed.length > 0) report({ level: 'info', fields: { interfaces: local.changed }, message: 'accept_local set: nat replies to clients without a neighbour entry yet are forwarded by the kernel' });
    if (local.failed.length > 0) report({ level: 'warn', fields: { failed: local.failed }, message: 'cannot set accept_local: a nat reply to a client without a neighbour entry is dropped while this node holds the VIP' });
    report({ level: 'info', fields: { pinDir: kernel.pinDir, reopened: kernel.reopened, attached, limits: kernel.limits }, message: kernel.reopened ? 'xdp program reopened from pins' : 'xdp program loaded and pinned' });
  } catch (e) {
    kernel.close();
    throw e;
  }
  let sync: FlowSync | undefined;
  if (settings.sync) {
    try {
      sync = await FlowSync.start({ kernel, settings: settings.sync, report, metrics: options.metrics ? flowSyncMetrics(options.metrics) : undefined });
    } catch (e) {
      kernel.close();
      throw e;
    }
    report({ level: 'info', fields: { address: settings.sync.address, port: settings.sync.port, peers: settings.sync.peers, export: kernel.flowExport }, message: 'xdp flow sync started' });
  } else if (kernel.flowExport) {
    report({ level: 'warn', fields: { pinDir: kernel.pinDir }, message: 'the pinned XDP program exports flows but xdp.sync is not set: its export ring stays full (fulcrum agent --cleanup reloads it without)' });
  }
  const drain: XdpDrainOptions = {
    ...DEFAULT_DRAIN,
    ...(options.drainTimeoutSeconds !== undefined ? { timeoutSeconds: options.drainTimeoutSeconds } : {}),
    ...(options.drainPollSeconds !== undefined ? { pollSeconds: options.drainPollSeconds } : {}),
  };
  return new XdpDataplane(kernel, settings, options.stateDir, names, report, options.neighbours ?? new KernelNeighbours(), drain, sync);
}

/** The dataplane over an already opened kernel side (the agent uses createXdpDataplane). */
export function xdpDataplaneOver(kernel: XdpKernel, settings: XdpSettings, stateDir: string, report: Report, neighbours: NeighbourTable = new KernelNeighbours(),
  drain: XdpDrainOptions = DEFAULT_DRAIN): Dataplane & { readonly kernel: XdpKernel } {
  return new XdpDataplane(kernel, settings, stateDir, new ServiceNames(stateDir), report, neighbours, drain);
}

class XdpDataplane implements Dataplane {
  readonly name = 'xdp' as const;
  readonly #queue = new SerialQueue();
  #closed = false;
  /**
   * The maps' content as of the last successful apply. The maps are ours alone, so after the first
   * read-back (at start) the planner works from this; any failure drops it and the next reconcile
   * reads the kernel again.
   */
  #observed: Observed | undefined;

  readonly #neighbours: NeighbourLearner;
  readonly #executor: StepExecutor;
  readonly #drainStore: XdpDrainStore;
  /** Drains in progress by drainKey(), as last saved. */
  #drains: Map<string, XdpDrainRecord>;
  /** Active flows of each drain as last counted. */
  #active = new Map<string, number>();
  /** The last desired services applied: the drain poll reconciles them again; the same objects again plan nothing. */
  #lastDesired: readonly Service[] | undefined;
  readonly #stopPoll: () => void;

  constructor(readonly kernel: XdpKernel, private readonly settings: XdpSettings, stateDir: string, private readonly names: ServiceNames, private readonly report: Report,
    neighbours: NeighbourTable, private readonly drain: XdpDrainOptions, private readonly sync?: FlowSync) {
    this.#neighbours = new NeighbourLearner(neighbours);
    this.#executor = new StepExecutor(kernel, report);
    this.#drainStore = new XdpDrainStore(stateDir);
    this.#drains = this.#drainStore.load();
    this.#stopPoll = every(drain.clock, drain.pollSeconds * 1000, () => {
      this.pollDrains().catch((e: unknown) => this.report({ level: 'error', fields: { err: e }, message: 'draining xdp backends failed' }));
    });
  }

  /** Ends the drains that have no active flow left or are past their deadline (a reconcile of the last desired state). */
  pollDrains(): Promise<void> {
    return this.#serial(() => {
      if (this.#closed || this.#drains.size === 0 || !this.#lastDesired) return;
      this.#reconcile(this.#lastDesired, false);
    });
  }

  /** One reconcile at a time: each one plans against what the previous one left. */
  #serial<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.#queue.run(fn);
  }

  reconcile(desired: readonly Service[], options: { dryRun?: boolean } = {}): Promise<ReconcileResult> {
    return this.#serial(async () => {
      const macsChanged = await this.#learnMacs(desired);
      const dryRun = options.dryRun ?? false;
      // The maps are ours alone: when the same service objects as last applied come again, nothing
      // learned changed and no drain is pending, the plan is empty without planning (1,000 VIPs x
      // 100 backends take most of a second to plan).
      if (!dryRun && !macsChanged && this.#observed && this.#drains.size === 0 && sameServices(desired, this.#lastDesired))
        return { dataplane: 'xdp', steps: [], applied: true };
      const result = this.#reconcile(desired, dryRun);
      if (!dryRun) {
        const first = this.#lastDesired === undefined;
        this.#lastDesired = desired;
        if (this.sync) {
          this.sync.tablesChanged();
          // A starting node takes its peers' flows before it may take a VIP over (VRRP starts after the first reconcile).
          if (first) await this.sync.snapshotsDone();
        }
      }
      return result;
    });
  }

  /** dr backends without a configured MAC: learn theirs from the neighbour table (see neighbours.ts). True when a MAC changed. */
  async #learnMacs(desired: readonly Service[]): Promise<boolean> {
    const wanted = new Map<string, { address: string; family: Family }>();
    for (const s of desired) {
      if (s.dataplane !== 'xdp' || s.forwarding !== 'dr') continue;
      for (const b of s.backends) if (!b.mac) wanted.set(b.address, { address: b.address, family: s.family });
    }
    try {
      const changed = await this.#neighbours.refresh([...wanted.values()]);
      for (const c of changed)
        this.report({ level: 'info', fields: { backend: c.address, mac: c.mac, previous: c.previous }, message: 'learned the MAC of a dr backend from the neighbour table' });
      return changed.length > 0;
    } catch (e) {
      // The program still asks the FIB for the neighbour per packet; the next reconcile retries.
      this.report({ level: 'warn', fields: { err: e }, message: 'reading the neighbour table failed' });
      return false;
    }
  }

  #reconcile(desired: readonly Service[], dryRun: boolean): ReconcileResult {
    if (this.#closed) throw new FulcrumError('INTERNAL', 'the xdp dataplane is closed');
    const vips = desired.filter((s) => s.dataplane === 'xdp').map((s) => desiredVip(s, (a) => this.#neighbours.macOf(a)));
    const observed = (this.#observed ??= readObserved(this.kernel));
    const leaving = leavingSlots(vips, observed);
    const active = this.drain.timeoutSeconds > 0 ? this.#countFlows(leaving) : new Map<number, number>();
    const drains = planDrains(vips, observed, this.#drains, { now: this.drain.clock.wallNow(), timeoutMs: this.drain.timeoutSeconds * 1000, active });
    let steps: XdpStep[];
    try {
      steps = plan(drains.desired, observed, this.kernel.limits);
    } catch (e) {
      if (e instanceof PlanError) throw new FulcrumError('INVALID_CONFIG', e.message);
      throw e;
    }
    const planned: PlannedStep[] = steps.map((s) => ({ kind: s.kind, service: s.service, description: describeStep(s) }));
    if (dryRun) return { dataplane: 'xdp', steps: planned, applied: false };
    // A drain is on record before its backend goes to weight 0, and off record only after the
    // backend is gone: a crash in between restarts neither a drain nor its deadline.
    if (drains.started.length > 0) this.#drainStore.save(new Map([...this.#drains, ...drains.records]));
    if (steps.length > 0) {
      try {
        this.#executor.apply(steps, observed);
      } catch (e) {
        this.#observed = undefined;
        throw e;
      }
      this.#observed = applyToObserved(observed, steps);
    }
    if (!sameKeys(drains.records, this.#drains)) this.#drainStore.save(drains.records);
    this.#drains = drains.records;
    this.#active = new Map([...drains.records].map(([k, r]) => [k, active.get(slotOf(leaving, observed, r)) ?? 0]));
    for (const r of drains.started)
      this.report({ level: 'info', fields: { service: r.service, backend: formatEndpoint(r.address, r.port), activeFlows: this.#active.get(drainKey(r.vip, r.address, r.port)), deadline: new Date(r.deadline).toISOString() }, message: 'draining an xdp backend: weight 0, its flows go on' });
    for (const { record: r, reason } of drains.ended)
      this.report({ level: 'info', fields: { service: r.service, backend: formatEndpoint(r.address, r.port), reason, activeFlows: active.get(slotOf(leaving, observed, r)) ?? 0 }, message: reason === 'drained' ? 'xdp backend drained and removed' : 'xdp backend removed at its drain deadline' });
    this.#saveNames(vips);
    return { dataplane: 'xdp', steps: planned, applied: true };
  }

  /** Active flows of the leaving slots; when they cannot be counted, 1 each: drains then last until their deadline. */
  #countFlows(leaving: ReadonlyMap<number, number>): Map<number, number> {
    try {
      return countActiveFlows(this.kernel, leaving, this.drain.flowIdleSeconds);
    } catch (e) {
      this.report({ level: 'warn', fields: { err: e }, message: 'cannot count the flows of draining xdp backends: they are kept until their drain deadline' });
      return new Map([...leaving.keys()].map((slot) => [slot, 1]));
    }
  }

  #saveNames(vips: ReturnType<typeof desiredVip>[]): void {
    this.names.set(Object.fromEntries(vips.map((v) => [vipKeyString(v.key), v.service])));
  }

  async stats(): Promise<ServiceStats[]> {
    return this.#serial(() => readServiceStats(this.kernel, (this.#observed ??= readObserved(this.kernel)), (key) => this.names.nameOf(key)));
  }

  explain(flow: FlowQuery): Promise<DataplaneExplanation> {
    return this.#serial(() => {
      if (this.#closed) throw new FulcrumError('INTERNAL', 'the xdp dataplane is closed');
      return explainXdp(this.kernel, flow);
    });
  }

  drains(): DrainStatus[] {
    return [...this.#drains].map(([k, r]) => ({
      service: r.service, address: r.address, port: r.port,
      startedAt: new Date(r.startedAt).toISOString(), deadline: new Date(r.deadline).toISOString(),
      activeConnections: this.#active.get(k) ?? 0,
    }));
  }

  /** The flow sync's state (xdp.sync), for GET /v1/status. */
  status(): unknown {
    return this.sync ? { sync: this.sync.status() } : undefined;
  }

  async close(): Promise<void> {
    await this.#serial(async () => {
      if (this.#closed) return;
      this.#closed = true;
      this.#stopPoll();
      await this.sync?.close();
      if (this.settings.detachOnShutdown) {
        this.kernel.detach(this.settings.interfaces);
        this.report({ level: 'info', fields: { interfaces: this.settings.interfaces.map((i) => i.name) }, message: 'xdp program detached (detachOnShutdown)' });
      }
      this.kernel.close();
      this.#neighbours.close();
    });
  }

  async cleanup(): Promise<void> {
    await this.#serial(async () => {
      if (this.#closed) throw new FulcrumError('INTERNAL', 'the xdp dataplane is closed');
      this.#closed = true;
      this.#stopPoll();
      await this.sync?.close();
      this.kernel.destroy(this.settings.interfaces);
      this.#drains = new Map();
      this.#drainStore.save(this.#drains);
      this.#neighbours.close();
      this.names.clear();
      this.report({ level: 'info', fields: { pinDir: this.kernel.pinDir }, message: 'xdp program detached and unpinned' });
    });
  }
}

function sameServices(a: readonly Service[], b: readonly Service[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((s, i) => s === b[i]);
}

function sameKeys(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  return a.size === b.size && [...a.keys()].every((k) => b.has(k));
}

/** The slot the drained backend of `r` is programmed in (among the leaving slots). */
function slotOf(leaving: ReadonlyMap<number, number>, observed: Observed, r: XdpDrainRecord): number {
  for (const slot of leaving.keys()) {
    const b = observed.backends[slot]!;
    if (b.address === r.address && b.port === r.port && observed.vips.some((v) => v.meta.id === b.vipId && vipKeyString(v.key) === r.vip)) return slot;
  }
  return -1;
}
