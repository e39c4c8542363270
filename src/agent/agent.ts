import type { DrainStatus, ServiceStats } from '../dataplane/types.js';
import { FulcrumError } from '../errors.js';
import { parseDesiredState, type DesiredState, type Service } from '../model/index.js';
import { every } from '../util/clock.js';
import { SerialQueue } from '../util/serial-queue.js';
import { auditedChange, type ChangeOptions, type ChangeResult, type Mutation } from './change.js';
import type { AgentContext, AgentDeps, ClusterPort } from './context.js';
import { Dataplanes, type DataplaneInfo } from './dataplanes.js';
import { Drains, type DrainProgress } from './drains.js';
import { createAgentMetrics } from './metrics.js';
import { reportHealthToVrrp, updateVrrp } from './peers.js';
import type { DataplaneName, VrrpMaintenanceResult } from './ports.js';
import { reconcileOnce, type ReconcileReport } from './reconcile.js';
import { agentStatus, type AgentStatus } from './status.js';
import { stateDigest } from './store.js';
import { explainFlow } from './explain.js';
import type { Explanation, FlowQuery } from '../dataplane/explain.js';
import { bgpInputs } from './bgp.js';

export type { AgentDeps } from './context.js';

const EMPTY: DesiredState = parseDesiredState({});

/**
 * The agent of one LB node: owns the desired state (in the store), drives the dataplanes to it,
 * repairs drift on an interval, and takes changes atomically (all dataplanes reach the new state,
 * then the store is written, then the change is acknowledged; any failure rolls the dataplanes
 * back to the stored state and leaves the store untouched). Changes and reconciles run one at a
 * time, in the order they were asked for.
 */
export class Agent {
  private readonly ctx: AgentContext;
  private readonly queue = new SerialQueue();
  private readonly drainBook = new Drains(this);
  private stopTimer: (() => void) | undefined;

  constructor(private readonly deps: AgentDeps) {
    const log = deps.logger.child({ component: 'agent' });
    const m = createAgentMetrics(deps.metrics);
    this.ctx = {
      deps,
      log,
      audit: deps.logger.child({ component: 'audit' }),
      m,
      dataplanes: new Dataplanes(deps.factories, deps.logger, log, m, deps.health),
      stored: { revision: 0, state: EMPTY },
      lastReconcile: undefined,
      started: false,
      closed: false,
    };
  }

  get revision(): number {
    return this.ctx.stored.revision;
  }

  get state(): DesiredState {
    return this.ctx.stored.state;
  }

  /** agent.store kind etcd: the cluster this node belongs to. */
  get cluster(): ClusterPort | undefined {
    return this.deps.cluster;
  }

  get ready(): boolean {
    return this.ctx.started && !this.ctx.closed;
  }

  /**
   * Loads the stored state, seeds it from the config file when that file's desired state is new
   * or changed since it last seeded the store (otherwise the store, which carries API changes,
   * wins), detects the dataplanes, reconciles the kernel and starts the drift-repair loop.
   */
  async start(): Promise<void> {
    const { store, seed, health, vrrp, settings } = this.deps;
    const { log } = this.ctx;
    const loaded = store.load();
    if (loaded) {
      this.ctx.stored = loaded;
      log.info({ revision: loaded.revision, services: loaded.state.services.length, store: store.location }, 'loaded the stored desired state');
    }
    let pendingSeed: DesiredState | undefined;
    if (seed) {
      const digest = stateDigest(seed);
      if (digest !== this.ctx.stored.seedDigest) pendingSeed = seed;
      else log.info('the config file is unchanged since it last seeded the store; the stored state wins');
    }
    await this.ctx.dataplanes.detect(pendingSeed ?? this.ctx.stored.state);
    health?.update([...this.ctx.stored.state.services]);
    // Tracked services are known before the instances start: one whose backends are all down
    // (warming up, or down when the agent stopped) must not let the instance take the VIPs.
    reportHealthToVrrp(health, vrrp);
    health?.on('change', () => {
      reportHealthToVrrp(health, vrrp);
      void this.reconcile('health').catch(() => undefined);
    });

    // Bring the kernel to the stored state first: a start that only re-asserts what the kernel
    // already holds plans no steps, so established flows are untouched.
    await this.reconcile('startup');
    if (pendingSeed) {
      log.info({ store: store.location }, loaded ? 'the config file changed: it replaces the stored desired state' : 'seeding the store from the config file');
      const digest = stateDigest(pendingSeed);
      await this.change(() => pendingSeed, { actor: 'config-file', action: 'seed from config file' }, digest);
    }
    // VRRP starts once, with the state this start ends at (a changed config file's, not the one it
    // replaces), after the kernel carries its services: a node takes no VIP it cannot serve yet.
    updateVrrp(vrrp, this.ctx.stored.state, log);
    // BGP announces what the kernel carries now (read back), so it starts after the reconcile.
    if (settings.bgp) {
      // A node restarted in maintenance (a rolling upgrade) announces nothing until it ends.
      if (this.deps.vrrp?.inMaintenance) await this.deps.bgp?.setMaintenance(true);
      await this.deps.bgp?.start(bgpInputs(this.ctx, settings.bgp));
    }
    this.ctx.m.revision.set(this.ctx.stored.revision);
    const interval = settings.reconcileIntervalSeconds * 1000;
    this.stopTimer = every(this.deps.clock, interval, () => void this.reconcile('interval').catch(() => undefined));
    this.ctx.started = true;
    log.info({ revision: this.ctx.stored.revision, intervalSeconds: settings.reconcileIntervalSeconds }, 'agent started');
  }

  dataplaneInfo(): DataplaneInfo[] {
    return this.ctx.dataplanes.infos();
  }

  /** Runs `fn` after every earlier change or reconcile has finished (one at a time). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  /** One reconcile of every dataplane to the stored state; steps taken are drift repairs. */
  reconcile(trigger: string): Promise<ReconcileReport> {
    return this.serial(() => reconcileOnce(this.ctx, trigger)).finally(() => void this.deps.bgp?.sync());
  }

  /**
   * Changes the desired state (see change.ts): returns once every dataplane and the store have it.
   * `seedDigest` marks the config file's state seeding the store.
   */
  change(mutate: Mutation, options: ChangeOptions, seedDigest?: string): Promise<ChangeResult> {
    const { cluster } = this.deps;
    if (cluster && options.revision === undefined && seedDigest === undefined) return cluster.write(mutate, options);
    return this.serial(() => auditedChange(this.ctx, mutate, options, seedDigest)).finally(() => void this.deps.bgp?.sync());
  }

  /**
   * A reload of the config file (SIGHUP, POST /v1/reload): the file's desired state replaces the
   * stored one when it changed since it last seeded the store, as at a start; a file unchanged since
   * then changes nothing (the stored state carries the API's changes since). Applied like any change.
   */
  reseed(seed: DesiredState, options: { dryRun?: boolean } = {}): Promise<ChangeResult> {
    const digest = stateDigest(seed);
    return this.serial(async () => {
      const { stored } = this.ctx;
      if (digest === stored.seedDigest)
        return { revision: stored.revision, changed: false, applied: false, dryRun: !!options.dryRun, diff: [], plan: [] };
      return auditedChange(this.ctx, () => seed, { actor: 'config-file', action: 'reload of the config file', dryRun: options.dryRun }, digest);
    });
  }

  // ---- read side -------------------------------------------------------------------------

  service(name: string): Service | undefined {
    return this.ctx.stored.state.services.find((s) => s.name === name);
  }

  async stats(name?: string): Promise<ServiceStats[]> {
    const out: ServiceStats[] = [];
    for (const dp of this.ctx.dataplanes.values()) {
      for (const s of await dp.stats()) if (name === undefined || s.service === name) out.push(s);
    }
    return out;
  }

  drains(): DrainStatus[] {
    return [...this.ctx.dataplanes.values()].flatMap((dp) => dp.drains());
  }

  /** Drains a backend (see drains.ts). */
  drain(service: string, endpoint: string, options: Omit<ChangeOptions, 'action'>): Promise<{ change: ChangeResult; progress: DrainProgress }> {
    return this.drainBook.drain(service, endpoint, options);
  }

  drainProgress(service: string, endpoint: string): DrainProgress {
    return this.drainBook.progress(service, endpoint);
  }

  /** Which backend a flow reaches now and why (`fulcrum explain`). */
  explain(flow: FlowQuery): Promise<Explanation> {
    return explainFlow({ services: this.ctx.stored.state.services, dataplane: (n) => this.ctx.dataplanes.get(n), health: this.deps.health?.status(), drains: this.drains() }, flow);
  }

  status(): AgentStatus {
    return agentStatus(this.ctx, this.ready);
  }

  /** Puts this node's VRRP instances into maintenance (planned hand-over) or ends it. */
  setVrrpMaintenance(enabled: boolean, options: { dryRun?: boolean } = {}): VrrpMaintenanceResult {
    const vrrp = this.deps.vrrp;
    if (!vrrp?.setMaintenance || this.ctx.closed) throw new FulcrumError('CONFLICT', this.ctx.closed ? 'the agent is stopping' : 'VRRP does not run in this agent');
    const result = vrrp.setMaintenance(enabled, options);
    // A node in maintenance withdraws its BGP announcements too (after VRRP took the change).
    if (!options.dryRun) void this.deps.bgp?.setMaintenance(enabled);
    return result;
  }

  /** Stops the loop and releases handles; the kernel keeps its tables (traffic keeps flowing). */
  async close(): Promise<void> {
    if (this.ctx.closed) return;
    this.ctx.closed = true;
    this.stopTimer?.();
    await this.queue.idle();
    // Withdraw (unless keepOnRestart) while the dataplane still forwards.
    await this.deps.bgp?.stop();
    await this.deps.health?.close();
    await this.deps.vrrp?.close();
    for (const dp of this.ctx.dataplanes.values()) await dp.close();
    this.ctx.log.info({ revision: this.ctx.stored.revision }, 'agent stopped; kernel tables left in place');
  }

  /** `fulcrum agent --cleanup`: removes from the kernel everything the dataplanes own. */
  async cleanup(): Promise<DataplaneName[]> {
    if (this.ctx.dataplanes.size === 0) {
      // Not started: open the dataplanes with the xdp settings of the store (or the config file).
      const stored = this.deps.store.load()?.state;
      await this.ctx.dataplanes.detect(stored?.xdp || !this.deps.seed ? (stored ?? EMPTY) : this.deps.seed);
    }
    const done: DataplaneName[] = [];
    for (const [name, dp] of this.ctx.dataplanes.entries()) {
      await dp.cleanup();
      done.push(name);
      this.ctx.log.info({ dataplane: name }, 'removed what Fulcrum owns');
    }
    return done;
  }
}

export function buildAgent(deps: AgentDeps): Agent {
  return new Agent(deps);
}
