import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { canonicalJson } from '../util/json-value.js';
import { StateFile } from '../util/state-file.js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { EventBus } from '../events.js';
import type { Backend, Service } from '../model/schema.js';
import type { CheckKind, Health } from '../model/health.js';
import { formatEndpoint } from '../model/net.js';
import { createChecker } from './checkers.js';
import { ProbeScheduler } from './scheduler.js';
import {
  initialBackendHealth, quorumRule, stepBackend, stepQuorum,
  type BackendHealth, type HealthState, type LastResult, type QuorumRule,
} from './state.js';
import type { CheckerFactory, CheckOutcome } from './types.js';
import { systemClock, type Clock } from '../util/clock.js';

export type { Checker, CheckerFactory, CheckOutcome, CheckTarget } from './types.js';
export type { BackendHealth, HealthState } from './state.js';

export interface HealthManagerOptions {
  logger: Logger;
  events: EventBus;
  metrics: Registry;
  clock?: Clock;
  /** Replace the checker of some kinds (tests inject fakes here). */
  checkers?: Partial<Record<CheckKind, CheckerFactory>>;
  /** Uniform [0, 1) source for the jitter. */
  random?: () => number;
  /** Probes running at once; the others wait their turn. */
  maxInFlight?: number;
  /** Transitions within this many ms give one 'change' event (default 20). */
  changeDelayMs?: number;
  /**
   * Where the backends' states are kept across agent restarts (written after transitions and on
   * close, crash-safe). A restarted agent takes a backend's saved state instead of initialState
   * when the same check was saved less than `restoreMaxAgeSeconds` ago, so a restart does not
   * send every backend through warm-up again (which would drop traffic).
   */
  stateFile?: string;
  restoreMaxAgeSeconds?: number;
}

/** The backends' states kept across restarts (version 1; earlier agents wrote the same data unversioned). */
const SavedStateSchema = z.object({
  savedAt: z.number(),
  backends: z.array(z.object({ service: z.string(), backend: z.string(), probe: z.string(), state: z.enum(['up', 'down']), since: z.number() })),
});
type SavedState = z.output<typeof SavedStateSchema>;

export interface BackendStatus {
  address: string;
  port: number;
  /** What is probed (health.address/port, or the backend). */
  check: string;
  state: HealthState;
  /** false while warming up (no result yet). */
  checked: boolean;
  since: string;
  successes: number;
  failures: number;
  lastResult: { up: boolean; reason: string; at: string; latencyMs: number } | null;
  /** How many (service, backend) pairs this backend's probe serves. */
  sharedBy: number;
}

export interface ServiceHealthStatus {
  service: string;
  kind: CheckKind;
  quorum: { held: boolean; healthyWeight: number; min: number; hysteresis: number; sorryServerActive: boolean } | null;
  backends: BackendStatus[];
}

interface BackendEntry {
  service: string;
  key: string; // address:port of the backend in its service
  address: string;
  port: number;
  probeKey: string;
  health: BackendHealth;
}

interface ServiceEntry {
  svc: Service;
  health: Health;
  rule: QuorumRule | undefined;
  quorumHeld: boolean | undefined;
  backends: Map<string, BackendEntry>;
  log: Logger;
}

const backendKey = (b: { address: string; port: number }) => formatEndpoint(b.address, b.port);

/** Where a backend is probed: the health address/port when given, else the backend itself. */
export function checkTarget(h: Health, b: Pick<Backend, 'address' | 'port'>): { address: string; port: number } {
  return { address: h.address ?? b.address, port: h.port ?? b.port };
}

/**
 * The identity of a probe: one probe serves every (service, backend) that checks the same target
 * with the same definition, interval and timeout (keepalived#2358 asks for exactly this).
 */
export function probeKey(h: Health, b: Pick<Backend, 'address' | 'port'>): string {
  const t = checkTarget(h, b);
  return `${formatEndpoint(t.address, t.port)} ${h.interval}/${h.timeout}/${h.jitter} ${canonicalJson(h.check)}`;
}

/**
 * Health checks of the backends of every service that has a `health` section. `update()` starts,
 * stops and re-targets probes; each result steps the backend's rise/fall machine and its service's
 * quorum machine; every transition is logged, counted, published on the event bus and followed by
 * one 'change' event (coalesced over changeDelayMs) on which the agent reconciles `effectiveServices()`.
 */
export class HealthManager extends EventEmitter {
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly events: EventBus;
  private readonly scheduler: ProbeScheduler;
  private readonly services = new Map<string, ServiceEntry>();
  /** probe key -> the backends it serves. */
  private readonly subscribers = new Map<string, Set<BackendEntry>>();
  private readonly probeKinds = new Map<string, CheckKind>();
  private readonly factories: Partial<Record<CheckKind, CheckerFactory>>;
  private changePending = false;
  private changeTimer: unknown;
  private readonly stateFile: StateFile<typeof SavedStateSchema> | undefined;
  /** Saved states not yet claimed by a backend: "service|backend|probe" -> state. */
  private readonly restored = new Map<string, { state: HealthState; since: number }>();
  private readonly changeDelayMs: number;
  private closed = false;
  /** The last effective version of each desired service (see effectiveServices). */
  private readonly effective = new WeakMap<Service, Service>();
  private readonly m: {
    up: Gauge; duration: Histogram; failures: Counter; transitions: Counter; quorum: Gauge; probes: Gauge; inFlight: Gauge;
  };

  constructor(opts: HealthManagerOptions) {
    super();
    this.log = opts.logger.child({ component: 'health' });
    this.clock = opts.clock ?? systemClock;
    this.events = opts.events;
    this.factories = opts.checkers ?? {};
    this.changeDelayMs = opts.changeDelayMs ?? 20;
    this.stateFile = opts.stateFile === undefined ? undefined : new StateFile(opts.stateFile, 1, SavedStateSchema, 'health state file', (doc) => doc);
    if (this.stateFile) this.loadState(this.stateFile, (opts.restoreMaxAgeSeconds ?? 300) * 1000);
    this.scheduler = new ProbeScheduler(this.clock, (key, outcome, latency) => this.onResult(key, outcome, latency), opts.random, opts.maxInFlight);
    const reg = opts.metrics;
    const metric = <T>(name: string, make: () => T): T => (reg.getSingleMetric(name) as T | undefined) ?? make();
    this.m = {
      up: metric('fulcrum_health_backend_up', () => new Gauge({ name: 'fulcrum_health_backend_up', help: 'Health state of a backend in a service (1 up, 0 down)', labelNames: ['service', 'backend'], registers: [reg] })),
      duration: metric('fulcrum_health_check_duration_seconds', () => new Histogram({ name: 'fulcrum_health_check_duration_seconds', help: 'Latency of health check probes', labelNames: ['kind'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [reg] })),
      failures: metric('fulcrum_health_check_failures_total', () => new Counter({ name: 'fulcrum_health_check_failures_total', help: 'Failed health check probes by reason', labelNames: ['kind', 'reason'], registers: [reg] })),
      transitions: metric('fulcrum_health_transitions_total', () => new Counter({ name: 'fulcrum_health_transitions_total', help: 'Backend health transitions', labelNames: ['service', 'to'], registers: [reg] })),
      quorum: metric('fulcrum_health_service_quorum', () => new Gauge({ name: 'fulcrum_health_service_quorum', help: 'Whether a service holds its quorum (1) or serves its sorry server / alerts (0)', labelNames: ['service'], registers: [reg] })),
      probes: metric('fulcrum_health_probes', () => new Gauge({ name: 'fulcrum_health_probes', help: 'Distinct health probes scheduled', registers: [reg] })),
      inFlight: metric('fulcrum_health_probes_in_flight', () => new Gauge({ name: 'fulcrum_health_probes_in_flight', help: 'Health probes running now', registers: [reg] })),
    };
  }

  /** Starts, stops or modifies probes so that they match `services` (those without health are ignored). */
  update(services: readonly Service[]): void {
    if (this.closed) throw new Error('HealthManager is closed');
    const wanted = new Map(services.filter((s) => s.health).map((s) => [s.name, s]));
    for (const [name, entry] of this.services) {
      if (!wanted.has(name)) {
        for (const b of entry.backends.values()) this.dropBackend(entry, b);
        this.m.quorum.remove({ service: name });
        this.services.delete(name);
        entry.log.info('health checks stopped');
      }
    }
    const now = this.clock.wallNow();
    for (const svc of wanted.values()) {
      const h = svc.health!;
      let entry = this.services.get(svc.name);
      if (!entry) {
        entry = { svc, health: h, rule: undefined, quorumHeld: undefined, backends: new Map(), log: this.log.child({ service: svc.name }) };
        this.services.set(svc.name, entry);
        entry.log.info({ kind: h.check.kind, backends: svc.backends.length }, 'health checks started');
      }
      entry.svc = svc;
      entry.health = h;
      entry.rule = quorumRule(h);
      const keep = new Set<string>();
      for (const b of svc.backends) {
        const key = backendKey(b);
        keep.add(key);
        const pk = probeKey(h, b);
        let be = entry.backends.get(key);
        if (be && be.probeKey !== pk) {
          // The check changed: keep the state (no traffic moves on a config change), restart counting.
          this.unsubscribe(be);
          be.health = { ...be.health, successes: 0, failures: 0 };
          be.probeKey = pk;
          this.subscribe(be, h, b);
        } else if (!be) {
          const saved = this.restored.get(`${svc.name}|${key}|${pk}`);
          this.restored.delete(`${svc.name}|${key}|${pk}`);
          const health = saved ? { ...initialBackendHealth(saved.state, saved.since), checked: true } : initialBackendHealth(h.initialState, now);
          if (saved) entry.log.info({ backend: key, state: saved.state }, `backend ${key} ${saved.state} (restored)`);
          be = { service: svc.name, key, address: b.address, port: b.port, probeKey: pk, health };
          entry.backends.set(key, be);
          this.subscribe(be, h, b);
          this.m.up.set({ service: svc.name, backend: key }, be.health.state === 'up' ? 1 : 0);
        }
      }
      for (const [key, be] of entry.backends) if (!keep.has(key)) this.dropBackend(entry, be);
      this.evaluateQuorum(entry, true);
    }
    this.m.probes.set(this.scheduler.size);
  }

  /**
   * The desired state with health applied (reads the current health, changes no health state).
   * A down backend gets weight 0 (inhibitOnFailure, the default) or is removed; a service below
   * quorum with a sorry server has the sorry server as its only backend. A backend the manager has
   * not seen yet counts as in its initialState. Services without health are returned unchanged; a
   * service whose effective backends did not change since the last call comes back as the same
   * object, so a dataplane tells a no-op reconcile by identity without comparing backend lists.
   */
  effectiveServices(services: readonly Service[]): Service[] {
    return services.map((svc) => {
      const next = this.effectiveService(svc);
      if (next === svc) return svc;
      const last = this.effective.get(svc);
      if (last && sameBackends(last.backends, next.backends)) return last;
      this.effective.set(svc, next);
      return next;
    });
  }

  private effectiveService(svc: Service): Service {
    const h = svc.health;
    if (!h) return svc;
    const entry = this.services.get(svc.name);
    const stateOf = (b: Backend): HealthState => entry?.backends.get(backendKey(b))?.health.state ?? h.initialState;
    const healthy = svc.backends.filter((b) => stateOf(b) === 'up');
    const rule = quorumRule(h);
    if (rule && h.sorryServer) {
      const weight = healthy.reduce((sum, b) => sum + b.weight, 0);
      const held = entry?.quorumHeld ?? stepQuorum(undefined, weight, rule);
      if (!held) {
        const sorry: Backend = { address: h.sorryServer.address, port: h.sorryServer.port ?? svc.port ?? 0, weight: 1, upperThreshold: 0, lowerThreshold: 0 };
        return { ...svc, backends: [sorry] };
      }
    }
    const backends = h.inhibitOnFailure
      ? svc.backends.map((b) => (stateOf(b) === 'up' || b.weight === 0 ? b : { ...b, weight: 0 }))
      : healthy;
    return { ...svc, backends };
  }

  status(): ServiceHealthStatus[] {
    return [...this.services.values()].map((e) => {
      const weight = this.healthyWeight(e);
      return {
        service: e.svc.name,
        kind: e.health.check.kind,
        quorum: e.rule
          ? { held: e.quorumHeld ?? true, healthyWeight: weight, min: e.rule.min, hysteresis: e.rule.hysteresis, sorryServerActive: e.quorumHeld === false && e.health.sorryServer !== undefined }
          : null,
        backends: [...e.backends.values()].map((b) => {
          const t = checkTarget(e.health, b);
          const last = b.health.last;
          return {
            address: b.address, port: b.port, check: formatEndpoint(t.address, t.port), state: b.health.state, checked: b.health.checked,
            since: new Date(b.health.since).toISOString(), successes: b.health.successes, failures: b.health.failures,
            lastResult: last ? { up: last.up, reason: last.reason, at: new Date(last.at).toISOString(), latencyMs: Math.round(last.latencyMs * 1000) / 1000 } : null,
            sharedBy: this.subscribers.get(b.probeKey)?.size ?? 0,
          };
        }),
      };
    });
  }

  /** Number of distinct probes running (after deduplication). */
  get probeCount(): number { return this.scheduler.size; }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.scheduler.close();
    if (this.changeTimer !== undefined) this.clock.clearTimer(this.changeTimer);
    this.saveState();
    this.subscribers.clear();
    this.services.clear();
    this.removeAllListeners();
  }

  private subscribe(be: BackendEntry, h: Health, b: Backend): void {
    let subs = this.subscribers.get(be.probeKey);
    if (!subs) {
      subs = new Set();
      this.subscribers.set(be.probeKey, subs);
      const factory = this.factories[h.check.kind];
      const timeoutMs = h.timeout * 1000;
      const checker = factory ? factory(h.check, timeoutMs) : createChecker(h.check);
      this.probeKinds.set(be.probeKey, h.check.kind);
      this.scheduler.add({ key: be.probeKey, checker, target: checkTarget(h, b), intervalMs: h.interval * 1000, jitterMs: h.jitter * 1000, timeoutMs });
    }
    subs.add(be);
  }

  private unsubscribe(be: BackendEntry): void {
    const subs = this.subscribers.get(be.probeKey);
    if (!subs) return;
    subs.delete(be);
    if (subs.size === 0) {
      this.subscribers.delete(be.probeKey);
      this.probeKinds.delete(be.probeKey);
      this.scheduler.remove(be.probeKey);
    }
  }

  private dropBackend(entry: ServiceEntry, be: BackendEntry): void {
    this.unsubscribe(be);
    entry.backends.delete(be.key);
    this.m.up.remove({ service: entry.svc.name, backend: be.key });
  }

  private healthyWeight(e: ServiceEntry): number {
    let sum = 0;
    for (const b of e.svc.backends) if (e.backends.get(backendKey(b))?.health.state === 'up') sum += b.weight;
    return sum;
  }

  private onResult(key: string, outcome: CheckOutcome, latencyMs: number): void {
    const subs = this.subscribers.get(key);
    if (!subs) return;
    const kind = this.probeKinds.get(key) ?? 'tcp';
    this.m.duration.observe({ kind }, latencyMs / 1000);
    this.m.inFlight.set(this.scheduler.running);
    if (!outcome.up) this.m.failures.inc({ kind, reason: outcome.code });
    const result: LastResult = { ...outcome, at: this.clock.wallNow(), latencyMs };
    const touched = new Set<ServiceEntry>();
    for (const be of subs) {
      const entry = this.services.get(be.service);
      if (!entry) continue;
      const { next, changed } = stepBackend(be.health, entry.health, result);
      be.health = next;
      if (!changed) continue;
      touched.add(entry);
      const fields = { backend: be.key, state: next.state, reason: outcome.reason, successes: next.successes, failures: next.failures };
      const message = `backend ${be.key} ${next.state}: ${outcome.reason}`;
      if (next.state === 'down') entry.log.warn(fields, message);
      else entry.log.info(fields, message);
      this.m.up.set({ service: be.service, backend: be.key }, next.state === 'up' ? 1 : 0);
      this.m.transitions.inc({ service: be.service, to: next.state });
      this.events.publish({
        type: next.state === 'up' ? 'backend-up' : 'backend-down', component: 'health', service: be.service, message,
        data: { backend: be.key, address: be.address, port: be.port, reason: outcome.reason, successes: next.successes, failures: next.failures },
      });
    }
    for (const entry of touched) this.evaluateQuorum(entry, false);
    if (touched.size) this.scheduleChange();
  }

  /** Steps the service's quorum machine; `quiet` (on update) sets the first state without an alert. */
  private evaluateQuorum(entry: ServiceEntry, quiet: boolean): void {
    const name = entry.svc.name;
    if (!entry.rule) { entry.quorumHeld = undefined; return; }
    const weight = this.healthyWeight(entry);
    const prev = entry.quorumHeld;
    const held = stepQuorum(prev, weight, entry.rule);
    entry.quorumHeld = held;
    this.m.quorum.set({ service: name }, held ? 1 : 0);
    if (prev === held || (quiet && prev === undefined)) return;
    const sorry = entry.health.sorryServer;
    const to = sorry ? ` (sorry server ${formatEndpoint(sorry.address, sorry.port ?? entry.svc.port ?? 0)})` : '';
    const message = held
      ? `quorum regained: healthy weight ${weight} >= ${entry.rule.min + entry.rule.hysteresis}${sorry ? '; back to the backends' : ''}`
      : `quorum lost: healthy weight ${weight} < ${entry.rule.min - entry.rule.hysteresis}${to}`;
    if (held) entry.log.info({ healthyWeight: weight }, message);
    else entry.log.error({ healthyWeight: weight, alert: true }, message);
    this.events.publish({ type: held ? 'quorum-regained' : 'quorum-lost', component: 'health', service: name, message, data: { healthyWeight: weight, ...entry.rule, alert: !held } });
    this.scheduleChange();
  }

  private loadState(file: StateFile<typeof SavedStateSchema>, maxAgeMs: number): void {
    const path = file.path;
    let saved: SavedState | undefined;
    try {
      saved = file.load();
    } catch (e) {
      this.log.warn({ err: e, path }, 'health state file unreadable; starting from initialState');
      return;
    }
    if (!saved) return;
    const age = this.clock.wallNow() - saved.savedAt;
    if (!(age >= 0 && age <= maxAgeMs)) {
      this.log.info({ path, ageSeconds: Math.round(age / 1000) }, 'health state file too old; starting from initialState');
      return;
    }
    for (const b of saved.backends) this.restored.set(`${b.service}|${b.backend}|${b.probe}`, { state: b.state, since: b.since });
  }

  private saveState(): void {
    if (!this.stateFile) return;
    const data: SavedState = { savedAt: this.clock.wallNow(), backends: [] };
    for (const e of this.services.values())
      for (const b of e.backends.values())
        // A backend still warming up from its initialState has nothing worth keeping.
        if (b.health.checked) data.backends.push({ service: b.service, backend: b.key, probe: b.probeKey, state: b.health.state, since: b.health.since });
    try {
      this.stateFile.save(data);
    } catch (e) {
      this.log.error({ err: e, path: this.stateFile.path }, 'cannot save the health state');
    }
  }

  /** One 'change' for the transitions of a short window (a switch failing takes many backends at once). */
  private scheduleChange(): void {
    if (this.changePending) return;
    this.changePending = true;
    this.changeTimer = this.clock.setTimer(() => {
      this.changePending = false;
      this.changeTimer = undefined;
      if (this.closed) return;
      this.saveState();
      this.emit('change');
    }, this.changeDelayMs);
  }
}

/** Same backends in the same order: the same objects, or copies differing in nothing. */
function sameBackends(a: readonly Backend[], b: readonly Backend[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x === y) continue;
    const keys = Object.keys(x) as Array<keyof Backend>;
    if (keys.length !== Object.keys(y).length || keys.some((k) => x[k] !== y[k])) return false;
  }
  return true;
}
