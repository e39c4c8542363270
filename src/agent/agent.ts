import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Dataplane, DrainStatus, PlannedStep, ServiceStats } from '../dataplane/types.js';
import { FeatureMissingError, FulcrumError, isFulcrumError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { AgentSettings } from '../model/agent.js';
import { formatEndpoint, parseDesiredState, parseEndpoint, type DesiredState, type Service } from '../model/index.js';
import { changedServices, diffStates, type DiffLine } from './diff.js';
import { parseChangedState } from './validate.js';
import type { Clock, DataplaneFactories, DataplaneName, HealthPort, VrrpPort } from './ports.js';
import { canonicalJson, sameValue, stateDigest, type StateStore, type StoredState } from './store.js';

export interface AgentDeps {
  settings: AgentSettings;
  factories: DataplaneFactories;
  store: StateStore;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  events: EventBus;
  /** The desired state of the config file, if one was given (see `start` for how it seeds the store). */
  seed?: DesiredState | undefined;
  health?: HealthPort | undefined;
  vrrp?: VrrpPort | undefined;
}

export interface DataplaneInfo {
  name: DataplaneName;
  available: boolean;
  /** Why it is missing (the FeatureMissingError's message). */
  reason?: string;
  /** What it runs besides services (IPVS: its sync daemons). */
  status?: unknown;
}

export interface ReconcileReport {
  trigger: string;
  time: string;
  result: 'ok' | 'error';
  steps: number;
  durationMs: number;
  error?: string;
}

export interface DataplanePlan {
  dataplane: DataplaneName;
  steps: PlannedStep[];
}

/** What a write returns: the revision after it, and what it did (or would do, on a dry run). */
export interface ChangeResult {
  revision: number;
  changed: boolean;
  applied: boolean;
  dryRun: boolean;
  diff: DiffLine[];
  plan: DataplanePlan[];
}

export interface ChangeOptions {
  /** Who asks (token name), for the audit log. */
  actor: string;
  /** What, in a few words ("put service web"), for the audit log and events. */
  action: string;
  /** The revision the caller last saw (If-Match); a mismatch fails with PRECONDITION_FAILED. */
  ifMatch?: number | undefined;
  dryRun?: boolean | undefined;
}

type Mutation = (current: DesiredState) => unknown;

const EMPTY: DesiredState = parseDesiredState({});

/**
 * The agent of one LB node: owns the desired state (in the store), drives the dataplanes to it,
 * repairs drift on an interval, and takes changes atomically (all dataplanes reach the new state,
 * then the store is written, then the change is acknowledged; any failure rolls the dataplanes
 * back to the stored state and leaves the store untouched).
 */
export class Agent {
  private readonly log: Logger;
  private readonly dataplanes = new Map<DataplaneName, Dataplane>();
  private readonly info = new Map<DataplaneName, DataplaneInfo>();
  private stored: StoredState = { revision: 0, state: EMPTY };
  private lastReconcile: ReconcileReport | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private stopTimer: (() => void) | undefined;
  private started = false;
  private closed = false;
  private xdpSettingsKey = '';
  /** Backends drained through drain() since this process started ("service endpoint"). */
  private readonly drained = new Set<string>();
  private readonly m: ReturnType<typeof createAgentMetrics>;

  constructor(private readonly deps: AgentDeps) {
    this.log = deps.logger.child({ component: 'agent' });
    this.m = createAgentMetrics(deps.metrics);
  }

  get revision(): number {
    return this.stored.revision;
  }

  get state(): DesiredState {
    return this.stored.state;
  }

  get ready(): boolean {
    return this.started && !this.closed;
  }

  /**
   * Loads the stored state, seeds it from the config file when that file's desired state is new
   * or changed since it last seeded the store (otherwise the store, which carries API changes,
   * wins), detects the dataplanes, reconciles the kernel and starts the drift-repair loop.
   */
  async start(): Promise<void> {
    const { store, seed } = this.deps;
    const loaded = store.load();
    if (loaded) {
      this.stored = loaded;
      this.log.info({ revision: loaded.revision, services: loaded.state.services.length, store: store.location }, 'loaded the stored desired state');
    }
    let pendingSeed: DesiredState | undefined;
    if (seed) {
      const digest = stateDigest(seed);
      if (digest !== this.stored.seedDigest) pendingSeed = seed;
      else this.log.info('the config file is unchanged since it last seeded the store; the stored state wins');
    }
    await this.detect(pendingSeed ?? this.stored.state);
    this.deps.health?.update([...this.stored.state.services]);
    // Tracked services are known before the instances start: one whose backends are all down
    // (warming up, or down when the agent stopped) must not let the instance take the VIPs.
    this.reportHealthToVrrp();
    this.deps.health?.on('change', () => {
      this.reportHealthToVrrp();
      void this.reconcile('health').catch(() => undefined);
    });

    // Bring the kernel to the stored state first: a start that only re-asserts what the kernel
    // already holds plans no steps, so established flows are untouched.
    await this.reconcile('startup');
    if (pendingSeed) {
      this.log.info({ store: store.location }, loaded ? 'the config file changed: it replaces the stored desired state' : 'seeding the store from the config file');
      const digest = stateDigest(pendingSeed);
      await this.change(() => pendingSeed, { actor: 'config-file', action: 'seed from config file' }, digest);
    }
    // VRRP starts once, with the state this start ends at (a changed config file's, not the one it
    // replaces), after the kernel carries its services: a node takes no VIP it cannot serve yet.
    this.updateVrrp(this.stored.state);
    this.m.revision.set(this.stored.revision);
    const interval = this.deps.settings.reconcileIntervalSeconds * 1000;
    this.stopTimer = this.deps.clock.every(interval, () => void this.reconcile('interval').catch(() => undefined));
    this.started = true;
    this.log.info({ revision: this.stored.revision, intervalSeconds: this.deps.settings.reconcileIntervalSeconds }, 'agent started');
  }

  private async detect(state: DesiredState): Promise<void> {
    const tries: Array<[DataplaneName, () => Promise<Dataplane>]> = [
      ['ipvs', () => this.deps.factories.ipvs()],
      ['xdp', () => this.deps.factories.xdp(state.xdp)],
    ];
    this.xdpSettingsKey = canonicalJson(state.xdp ?? null);
    for (const [name, open] of tries) {
      try {
        const dp = await open();
        this.dataplanes.set(name, dp);
        this.info.set(name, { name, available: true });
        this.log.info({ dataplane: name }, `dataplane ${name} found`);
      } catch (e) {
        if (!(e instanceof FeatureMissingError)) throw e;
        this.info.set(name, { name, available: false, reason: e.message });
        this.log.warn({ dataplane: name, feature: e.feature, reason: e.message }, `dataplane ${name} not available`);
      }
      this.m.available.set({ dataplane: name }, this.dataplanes.has(name) ? 1 : 0);
    }
  }

  dataplaneInfo(): DataplaneInfo[] {
    return [...this.info.values()];
  }

  /** Runs `fn` after every earlier change or reconcile has finished (one at a time). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The services a dataplane should carry for `state`, after health. */
  private servicesFor(state: DesiredState, name: DataplaneName): Service[] {
    const mine = state.services.filter((s) => s.dataplane === name);
    return this.deps.health ? this.deps.health.effectiveServices(mine) : [...mine];
  }

  /** Brings one dataplane to `state`: its node-wide settings first, then its services. */
  private reconcileDataplane(name: DataplaneName, dp: Dataplane, state: DesiredState, options?: { dryRun?: boolean }) {
    dp.configure?.(state);
    return dp.reconcile(this.servicesFor(state, name), options);
  }

  /** One reconcile of every dataplane to the stored state; steps taken are drift repairs. */
  reconcile(trigger: string): Promise<ReconcileReport> {
    return this.serial(() => this.reconcileNow(trigger));
  }

  private async reconcileNow(trigger: string): Promise<ReconcileReport> {
    const started = Date.now();
    const state = this.stored.state;
    let steps = 0;
    const errors: string[] = [];
    for (const [name, dp] of this.dataplanes) {
      const log = this.deps.logger.child({ component: name });
      try {
        const r = await this.reconcileDataplane(name, dp, state);
        steps += r.steps.length;
        for (const step of r.steps) {
          this.m.steps.inc({ dataplane: name, kind: step.kind, trigger });
          const message = trigger === 'startup' ? 'reconciled at start' : trigger === 'health' ? 'applied a health change' : 'repaired drift';
          log.child({ service: step.service }).warn({ step: step.kind, trigger }, `${message}: ${step.description}`);
          this.deps.events.publish({
            type: trigger === 'health' ? 'health-applied' : 'drift-repaired',
            component: name,
            service: step.service,
            message: `${message}: ${step.description}`,
            data: { kind: step.kind, trigger },
          });
        }
      } catch (e) {
        const message = `${name}: ${(e as Error).message}`;
        errors.push(message);
        log.error({ err: errorFields(e), trigger }, 'reconcile failed');
        this.deps.events.publish({ type: 'reconcile-failed', component: name, message, data: errorFields(e) });
      }
    }
    for (const [name, info] of this.info) {
      if (info.available) continue;
      const orphans = state.services.filter((s) => s.dataplane === name);
      if (orphans.length > 0 && trigger === 'startup')
        this.log.error({ dataplane: name, services: orphans.map((s) => s.name) }, `the stored state has services on ${name}, which is not available here; they are not programmed`);
    }
    const report: ReconcileReport = {
      trigger,
      time: this.deps.clock.now().toISOString(),
      result: errors.length ? 'error' : 'ok',
      steps,
      durationMs: Date.now() - started,
      ...(errors.length ? { error: errors.join('; ') } : {}),
    };
    this.lastReconcile = report;
    this.m.reconciles.inc({ trigger, result: report.result });
    this.m.duration.observe(report.durationMs / 1000);
    this.m.lastReconcile.set(this.deps.clock.now().getTime() / 1000);
    this.log.debug(report, 'reconcile done');
    return report;
  }

  /**
   * Changes the desired state: validate, plan, apply to every dataplane, store (fsync), and only
   * then return. Idempotent: a change that yields the current state does nothing and keeps the
   * revision. On any failure the dataplanes are reconciled back to the stored state and the
   * error says why.
   */
  change(mutate: Mutation, options: ChangeOptions, seedDigest?: string): Promise<ChangeResult> {
    return this.serial(async () => {
      const audit = this.deps.logger.child({ component: 'audit' });
      try {
        const result = await this.changeNow(mutate, options, seedDigest);
        if (!options.dryRun)
          audit.info({ who: options.actor, what: options.action, result: result.changed ? 'applied' : 'unchanged', revision: result.revision }, 'change');
        return result;
      } catch (e) {
        if (!options.dryRun)
          audit.warn({ who: options.actor, what: options.action, result: 'failed', code: isFulcrumError(e) ? e.code : 'INTERNAL', error: (e as Error).message }, 'change');
        throw e;
      }
    });
  }

  private async changeNow(mutate: Mutation, options: ChangeOptions, seedDigest: string | undefined): Promise<ChangeResult> {
    if (this.closed) throw new FulcrumError('CONFLICT', 'the agent is stopping; nothing was changed (retry once it has started again)');
    const current = this.stored;
    if (options.ifMatch !== undefined && options.ifMatch !== current.revision)
      throw new FulcrumError('PRECONDITION_FAILED', `If-Match revision ${options.ifMatch} does not match the current revision ${current.revision}`, {
        details: { current: current.revision },
      });
    const next = parseChangedState(mutate(current.state));
    const diff = diffStates(current.state, next);
    const changed = diff.length > 0;
    const touched = changedServices(current.state, next);
    for (const svc of next.services) {
      if (!touched.has(svc.name) || this.dataplanes.has(svc.dataplane)) continue;
      const why = this.info.get(svc.dataplane)?.reason ?? 'not detected';
      // The config file's state is stored anyway (as a stored state is at start): refusing it
      // would keep the agent, and with it XDP and VRRP, from starting at all.
      if (seedDigest !== undefined) {
        this.log.error({ dataplane: svc.dataplane, service: svc.name, reason: why }, `service ${svc.name} of the config file is on ${svc.dataplane}, which is not available here; it is stored but not programmed`);
        continue;
      }
      throw new FeatureMissingError(svc.dataplane, `service ${svc.name}: the ${svc.dataplane} dataplane is not available on this node (${why})`, {
        details: { path: ['services', svc.name, 'dataplane'] },
      });
    }

    if (options.dryRun) {
      const plan: DataplanePlan[] = [];
      for (const [name, dp] of this.dataplanes) {
        const r = await this.reconcileDataplane(name, dp, next, { dryRun: true });
        plan.push({ dataplane: name, steps: r.steps });
      }
      return { revision: current.revision, changed, applied: false, dryRun: true, diff, plan };
    }
    if (!changed && seedDigest === undefined) return { revision: current.revision, changed: false, applied: false, dryRun: false, diff, plan: [] };

    const started = Date.now();
    await this.reopenXdpIfNeeded(next);
    const plan: DataplanePlan[] = [];
    const done: DataplaneName[] = [];
    try {
      for (const [name, dp] of this.dataplanes) {
        const r = await this.reconcileDataplane(name, dp, next);
        done.push(name);
        plan.push({ dataplane: name, steps: r.steps });
      }
    } catch (e) {
      const failed = [...this.dataplanes.keys()].find((n) => !done.includes(n)) ?? 'ipvs';
      // The failing dataplane rolled back its own steps; reconciling it too costs nothing when it did.
      await this.rollback([...done, failed], current.state);
      this.m.changes.inc({ result: 'rolled-back' });
      this.deps.events.publish({ type: 'apply-failed', component: 'agent', message: `${options.action}: ${(e as Error).message}; rolled back`, data: { revision: current.revision } });
      throw wrapApplyError(failed, e);
    }

    const saved: StoredState = {
      revision: current.revision + (changed ? 1 : 0),
      state: next,
      seedDigest: seedDigest ?? current.seedDigest,
      updatedAt: this.deps.clock.now().toISOString(),
    };
    try {
      this.deps.store.save(saved);
    } catch (e) {
      await this.rollback(done, current.state);
      this.m.changes.inc({ result: 'rolled-back' });
      throw e;
    }
    this.stored = saved;
    this.m.revision.set(saved.revision);
    this.m.changes.inc({ result: 'applied' });
    for (const dpName of ['ipvs', 'xdp'] as const)
      this.m.services.set({ dataplane: dpName }, next.services.filter((s) => s.dataplane === dpName).length);
    for (const p of plan)
      for (const step of p.steps) {
        this.m.steps.inc({ dataplane: p.dataplane, kind: step.kind, trigger: 'change' });
        this.deps.logger.child({ component: p.dataplane, service: step.service }).info({ step: step.kind, revision: saved.revision }, step.description);
      }
    this.deps.health?.update([...next.services]);
    this.reportHealthToVrrp();
    if (this.started && !sameValue(current.state.vrrp, next.vrrp)) this.updateVrrp(next);
    this.deps.events.publish({
      type: 'apply',
      component: 'agent',
      message: `${options.action} (revision ${saved.revision}, ${plan.reduce((n, p) => n + p.steps.length, 0)} kernel steps)`,
      data: { revision: saved.revision, actor: options.actor, diff: diff.map((d) => `${d.op} ${d.text}`) },
    });
    this.lastReconcile = { trigger: 'change', time: saved.updatedAt!, result: 'ok', steps: plan.reduce((n, p) => n + p.steps.length, 0), durationMs: Date.now() - started };
    return { revision: saved.revision, changed, applied: true, dryRun: false, diff, plan };
  }

  /** VRRP applies in the background; its failures are logged and published by the manager. */
  private updateVrrp(state: DesiredState): void {
    if (!this.deps.vrrp) return;
    try {
      void this.deps.vrrp.update([...state.vrrp]);
    } catch (e) {
      this.log.error({ err: errorFields(e) }, 'vrrp instances not applied');
    }
  }

  /** Tells VRRP which services hold their health quorum (for tracked services). */
  private reportHealthToVrrp(): void {
    const vrrp = this.deps.vrrp, health = this.deps.health;
    if (!vrrp?.setServiceHealth || !health) return;
    const status = health.status() as Array<{ service: string; quorum: { held: boolean } | null; backends: Array<{ state: string }> }>;
    for (const s of status) vrrp.setServiceHealth(s.service, s.quorum ? s.quorum.held : s.backends.some((b) => b.state === 'up'));
  }

  /** Brings dataplanes that already took the new state back to `state`; failures are logged. */
  private async rollback(names: DataplaneName[], state: DesiredState): Promise<void> {
    for (const name of names.reverse()) {
      try {
        await this.reconcileDataplane(name, this.dataplanes.get(name)!, state);
      } catch (e) {
        // The next interval reconcile retries; the stored state remains the truth.
        this.deps.logger.child({ component: name }).error({ err: errorFields(e) }, 'rollback failed; the reconcile loop will retry');
      }
    }
  }

  /** The XDP dataplane is opened with the node-wide xdp settings; a change of them reopens it. */
  private async reopenXdpIfNeeded(next: DesiredState): Promise<void> {
    const key = canonicalJson(next.xdp ?? null);
    if (key === this.xdpSettingsKey) return;
    const old = this.dataplanes.get('xdp');
    try {
      const dp = await this.deps.factories.xdp(next.xdp);
      if (old) await old.close();
      this.dataplanes.set('xdp', dp);
      this.info.set('xdp', { name: 'xdp', available: true });
      this.xdpSettingsKey = key;
      this.log.info('xdp settings changed: the xdp dataplane was reopened');
    } catch (e) {
      if (!(e instanceof FeatureMissingError)) throw e;
      // Only services that need xdp make this fatal (checked by the caller before).
      if (next.services.some((s) => s.dataplane === 'xdp'))
        throw new FeatureMissingError('xdp', `the new xdp settings cannot be applied: ${e.message}`, { cause: e });
    }
  }

  // ---- read side -------------------------------------------------------------------------

  service(name: string): Service | undefined {
    return this.stored.state.services.find((s) => s.name === name);
  }

  async stats(name?: string): Promise<ServiceStats[]> {
    const out: ServiceStats[] = [];
    for (const dp of this.dataplanes.values()) {
      for (const s of await dp.stats()) if (name === undefined || s.service === name) out.push(s);
    }
    return out;
  }

  drains(): DrainStatus[] {
    return [...this.dataplanes.values()].flatMap((dp) => dp.drains());
  }

  /**
   * Drains a backend: removes it from the desired state; the dataplane keeps its established
   * connections (weight 0) until they end or drainTimeoutSeconds passes, then deletes it.
   */
  async drain(service: string, endpoint: string, options: Omit<ChangeOptions, 'action'>): Promise<{ change: ChangeResult; progress: DrainProgress }> {
    const ep = parseEndpoint(endpoint);
    if (!ep) throw new FulcrumError('INVALID_REQUEST', `backend: "${endpoint}" is not address:port (IPv6 as [address]:port)`);
    const svc = this.service(service);
    if (!svc) throw new FulcrumError('NOT_FOUND', `no service named ${service}`);
    if (!svc.backends.some((b) => b.address === ep.address && b.port === ep.port)) {
      const progress = this.drainProgress(service, endpoint);
      return { change: { revision: this.revision, changed: false, applied: false, dryRun: !!options.dryRun, diff: [], plan: [] }, progress };
    }
    const change = await this.change(
      (cur) => ({
        ...cur,
        services: cur.services.map((s) => (s.name !== service ? s : { ...s, backends: s.backends.filter((b) => !(b.address === ep.address && b.port === ep.port)) })),
      }),
      { ...options, action: `drain ${endpoint} of ${service}` },
    );
    if (change.applied) this.drained.add(`${service} ${formatEndpoint(ep.address, ep.port)}`);
    return { change, progress: this.drainProgress(service, endpoint) };
  }

  drainProgress(service: string, endpoint: string): DrainProgress {
    const ep = parseEndpoint(endpoint);
    if (!ep) throw new FulcrumError('INVALID_REQUEST', `backend: "${endpoint}" is not address:port (IPv6 as [address]:port)`);
    const d = this.drains().find((x) => x.service === service && x.address === ep.address && x.port === ep.port);
    if (d) return { state: 'draining', service, backend: endpoint, activeConnections: d.activeConnections, startedAt: d.startedAt, deadline: d.deadline };
    if (this.service(service)?.backends.some((b) => b.address === ep.address && b.port === ep.port))
      return { state: 'not-draining', service, backend: endpoint, activeConnections: 0 };
    if (this.drained.has(`${service} ${formatEndpoint(ep.address, ep.port)}`)) return { state: 'done', service, backend: endpoint, activeConnections: 0 };
    throw new FulcrumError('NOT_FOUND', `service ${service} has no backend ${endpoint} and no drain of it is known`);
  }

  status(): AgentStatus {
    return {
      revision: this.stored.revision,
      updatedAt: this.stored.updatedAt,
      ready: this.ready,
      services: this.stored.state.services.length,
      dataplanes: this.dataplaneInfo().map((d) => {
        const extra = this.dataplanes.get(d.name)?.status?.();
        return extra === undefined ? d : { ...d, status: extra };
      }),
      lastReconcile: this.lastReconcile,
      reconcileIntervalSeconds: this.deps.settings.reconcileIntervalSeconds,
      store: this.deps.store.location,
      ...(this.deps.health ? { health: this.deps.health.status() } : {}),
      ...(this.deps.vrrp ? { vrrp: this.deps.vrrp.status() } : {}),
    };
  }

  /** Stops the loop and releases handles; the kernel keeps its tables (traffic keeps flowing). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer?.();
    await this.queue;
    await this.deps.health?.close();
    await this.deps.vrrp?.close();
    for (const dp of this.dataplanes.values()) await dp.close();
    this.log.info({ revision: this.stored.revision }, 'agent stopped; kernel tables left in place');
  }

  /** `fulcrum agent --cleanup`: removes from the kernel everything the dataplanes own. */
  async cleanup(): Promise<DataplaneName[]> {
    if (this.dataplanes.size === 0) {
      // Not started: open the dataplanes with the xdp settings of the store (or the config file).
      const stored = this.deps.store.load()?.state;
      await this.detect(stored?.xdp || !this.deps.seed ? (stored ?? EMPTY) : this.deps.seed);
    }
    const done: DataplaneName[] = [];
    for (const [name, dp] of this.dataplanes) {
      await dp.cleanup();
      done.push(name);
      this.log.info({ dataplane: name }, 'removed what Fulcrum owns');
    }
    return done;
  }
}

export interface DrainProgress {
  state: 'draining' | 'done' | 'not-draining';
  service: string;
  backend: string;
  activeConnections: number;
  startedAt?: string;
  deadline?: string;
}

export interface AgentStatus {
  revision: number;
  updatedAt: string | undefined;
  ready: boolean;
  services: number;
  dataplanes: DataplaneInfo[];
  lastReconcile: ReconcileReport | undefined;
  reconcileIntervalSeconds: number;
  store: string;
  health?: unknown;
  vrrp?: unknown;
}

export function buildAgent(deps: AgentDeps): Agent {
  return new Agent(deps);
}

function errorFields(e: unknown): Record<string, unknown> {
  if (isFulcrumError(e)) return e.toJSON();
  return { message: (e as Error)?.message ?? String(e) };
}

/** Keeps the kernel's errno and code; says that nothing was changed. */
function wrapApplyError(dataplane: string, e: unknown): FulcrumError {
  const message = `${dataplane}: ${(e as Error)?.message ?? String(e)}; the change was rolled back and the stored state is unchanged`;
  if (isFulcrumError(e)) return new FulcrumError(e.code === 'INTERNAL' ? 'APPLY_FAILED' : e.code, message, { cause: e, errno: e.errno, details: e.details });
  return new FulcrumError('APPLY_FAILED', message, { cause: e });
}

function createAgentMetrics(registry: Registry) {
  const registers = [registry];
  return {
    revision: new Gauge({ name: 'fulcrum_desired_revision', help: 'Revision of the stored desired state', registers }),
    available: new Gauge({ name: 'fulcrum_dataplane_available', help: '1 when the dataplane was found on this node', labelNames: ['dataplane'], registers }),
    services: new Gauge({ name: 'fulcrum_services', help: 'Services in the desired state', labelNames: ['dataplane'], registers }),
    reconciles: new Counter({ name: 'fulcrum_reconciles_total', help: 'Reconciles by trigger and result', labelNames: ['trigger', 'result'], registers }),
    steps: new Counter({ name: 'fulcrum_reconcile_steps_total', help: 'Kernel steps taken, by dataplane, kind and trigger', labelNames: ['dataplane', 'kind', 'trigger'], registers }),
    changes: new Counter({ name: 'fulcrum_changes_total', help: 'Desired-state changes by result', labelNames: ['result'], registers }),
    duration: new Histogram({ name: 'fulcrum_reconcile_duration_seconds', help: 'Duration of a reconcile', buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers }),
    lastReconcile: new Gauge({ name: 'fulcrum_last_reconcile_timestamp_seconds', help: 'Time of the last reconcile', registers }),
  };
}
