import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildAgent, type Agent } from '../../src/agent/agent.js';
import type { Clock } from '../../src/util/clock.js';
import { FileStateStore, type StateStore } from '../../src/agent/store.js';
import { buildApp } from '../../src/api/app.js';
import { TokenSet } from '../../src/api/auth.js';
import { EventBus } from '../../src/events.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { AgentSettingsSchema, type AgentSettings } from '../../src/model/agent.js';
import type { DesiredState } from '../../src/model/index.js';
import { FakeDataplane, fakeFactories } from './fake-dataplane.js';

export const ADMIN = 'admin-token-0123456789abcdef';
export const READER = 'reader-token-0123456789abcdef';

/** A clock whose timers fire only when the test calls tick() (all pending ones, once). */
export class ManualClock implements Clock {
  private timers: Array<{ fn: () => void }> = [];
  time = new Date('2026-01-01T00:00:00Z');
  now(): number {
    return 0;
  }
  wallNow(): number {
    return this.time.getTime();
  }
  setTimer(fn: () => void): unknown {
    const t = { fn };
    this.timers.push(t);
    return t;
  }
  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((x) => x !== handle);
  }
  tick(): void {
    const due = this.timers;
    this.timers = [];
    for (const t of due) t.fn();
  }
  get active(): number {
    return this.timers.length;
  }
}

export interface Harness {
  agent: Agent;
  app: FastifyInstance;
  ipvs: FakeDataplane;
  xdp: FakeDataplane | undefined;
  events: EventBus;
  clock: ManualClock;
  dir: string;
  store: StateStore;
  close(): Promise<void>;
}

export async function harness(opts: { settings?: Record<string, unknown>; seed?: DesiredState; withXdp?: boolean; dir?: string; store?: StateStore; https?: { cert: Buffer; key: Buffer }; logger?: Logger } = {}): Promise<Harness> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'fulcrum-agent-'));
  const settings: AgentSettings = AgentSettingsSchema.parse({ stateDir: dir, ...opts.settings });
  const ipvs = new FakeDataplane('ipvs');
  const xdp = opts.withXdp ? new FakeDataplane('xdp') : undefined;
  const events = new EventBus();
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const clock = new ManualClock();
  const logger = opts.logger ?? silentLogger();
  const store = opts.store ?? new FileStateStore(dir);
  const agent = buildAgent({ settings, factories: fakeFactories({ ipvs, ...(xdp ? { xdp } : {}) }), store, clock, logger, metrics, events, seed: opts.seed });
  await agent.start();
  const tokens = new TokenSet([
    { name: 'ops', role: 'admin', token: ADMIN },
    { name: 'viewer', role: 'read', token: READER },
  ]);
  const app = await buildApp({ agent, events, metrics, tokens, settings: settings.api, logger, https: opts.https });
  await app.ready();
  return {
    agent, app, ipvs, xdp, events, clock, dir, store,
    async close() {
      await app.close();
      await agent.close();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const admin = { authorization: `Bearer ${ADMIN}` };
export const reader = { authorization: `Bearer ${READER}` };
