import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAgent } from '../../src/agent/agent.js';
import { diffStates } from '../../src/agent/diff.js';
import { FileStateStore, stateDigest } from '../../src/agent/store.js';
import { sameValue } from '../../src/util/json-value.js';
import { EventBus } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { AgentSettingsSchema } from '../../src/model/agent.js';
import { parseConfigFile, parseDesiredState } from '../../src/model/index.js';
import { FakeDataplane, fakeFactories } from '../helpers/fake-dataplane.js';
import { ManualClock } from '../helpers/agent-harness.js';

const svc = (name: string, vip: string, weight = 1) => ({ name, address: vip, port: 80, scheduler: 'rr', backends: [{ address: '10.0.1.1', port: 8080, weight }] });

function setup(dir: string, opts: { seed?: unknown; ipvs?: FakeDataplane } = {}) {
  const ipvs = opts.ipvs ?? new FakeDataplane('ipvs');
  const events = new EventBus();
  const clock = new ManualClock();
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const agent = buildAgent({
    settings: AgentSettingsSchema.parse({ stateDir: dir, reconcileIntervalSeconds: 5 }),
    factories: fakeFactories({ ipvs }),
    store: new FileStateStore(dir),
    clock, logger: silentLogger(), metrics, events,
    seed: opts.seed === undefined ? undefined : parseDesiredState(opts.seed),
  });
  return { agent, ipvs, events, clock, metrics };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'fulcrum-agent-'));
const change = (services: unknown[]) => () => ({ services });
const who = { actor: 'test', action: 'test' };

describe('agent settings', () => {
  test('defaults: loopback, 9180, /var/lib/fulcrum, 10 s', () => {
    const s = AgentSettingsSchema.parse({});
    assert.equal(s.api.host, '127.0.0.1');
    assert.equal(s.api.port, 9180);
    assert.equal(s.stateDir, '/var/lib/fulcrum');
    assert.equal(s.reconcileIntervalSeconds, 10);
    assert.equal(s.api.anonymousRead, false);
  });

  test('a bad field is named; a public address without TLS is refused', () => {
    const bad = (agent: unknown, re: RegExp) => assert.throws(() => parseConfigFile({ agent }), (e: Error) => re.test(e.message));
    bad({ api: { port: 70000 } }, /agent\.api\.port: Too big/);
    bad({ reconcileIntervalSeconds: 0 }, /agent\.reconcileIntervalSeconds/);
    bad({ api: { host: 'example.com' } }, /agent\.api\.host: must be an IP address/);
    bad({ api: { host: '0.0.0.0' } }, /agent\.api\.tls: required when the API listens on 0\.0\.0\.0/);
    bad({ colour: 1 }, /agent: Unrecognized key: "colour"/);
    bad({ log: { level: 'loud' } }, /agent\.log\.level/);
    assert.doesNotThrow(() => parseConfigFile({ agent: { api: { host: '0.0.0.0', tls: { cert: 'c.pem', key: 'k.pem' } } } }));
    assert.doesNotThrow(() => parseConfigFile({ agent: { api: { host: '::1' } } }));
  });
});

describe('agent: store, seeding, restart', () => {
  test('a change is durable before it is acknowledged; a restart reconciles without steps when the kernel matches', async () => {
    const dir = tmp();
    try {
      const a = setup(dir);
      await a.agent.start();
      const r = await a.agent.change(change([svc('web', '10.0.0.1')]), who);
      assert.equal(r.revision, 1);
      const onDisk = JSON.parse(readFileSync(join(dir, 'desired-state.json'), 'utf8'));
      assert.equal(onDisk.revision, 1);
      assert.equal(onDisk.state.services[0].name, 'web');
      await a.agent.close();
      assert.equal(a.ipvs.closed, true);
      assert.equal(a.ipvs.cleanedUp, false, 'close leaves kernel state in place');

      // Restart with the same kernel: the startup reconcile plans nothing (flows undisturbed).
      const b = setup(dir, { ipvs: a.ipvs });
      const before = a.ipvs.calls.length;
      await b.agent.start();
      assert.equal(b.agent.revision, 1);
      assert.equal(b.agent.status().lastReconcile?.steps, 0);
      assert.equal(a.ipvs.calls.length, before + 1);
      await b.agent.close();

      // Restart on an empty kernel (reboot): the stored state is programmed again.
      const c = setup(dir);
      await c.agent.start();
      assert.deepEqual([...c.ipvs.kernel.keys()], ['web']);
      assert.equal(c.agent.status().lastReconcile?.steps, 2);
      await c.agent.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the config file seeds the store on first start and when it changes; otherwise the store wins', async () => {
    const dir = tmp();
    try {
      const seed1 = { services: [svc('web', '10.0.0.1')] };
      const a = setup(dir, { seed: seed1 });
      await a.agent.start();
      assert.equal(a.agent.revision, 1);
      await a.agent.change(change([svc('web', '10.0.0.1', 5)]), who); // an API change
      await a.agent.close();

      const b = setup(dir, { seed: seed1 }); // same file: the API change survives
      await b.agent.start();
      assert.equal(b.agent.revision, 2);
      assert.equal(b.agent.service('web')!.backends[0]!.weight, 5);
      await b.agent.close();

      const seed2 = { services: [svc('web', '10.0.0.1'), svc('api', '10.0.0.2')] };
      const c = setup(dir, { seed: seed2 }); // edited file: it replaces the state
      await c.agent.start();
      assert.equal(c.agent.revision, 3);
      assert.deepEqual(c.agent.state.services.map((s) => [s.name, s.backends[0]!.weight]), [['web', 1], ['api', 1]]);
      assert.equal(new FileStateStore(dir).load()!.seedDigest, stateDigest(parseDesiredState(seed2)));
      await c.agent.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a corrupt store stops the start with STORE_ERROR naming the file', async () => {
    const dir = tmp();
    try {
      writeFileSync(join(dir, 'desired-state.json'), '{"format":1,"revision":3,"state":{"services":[{"name":"x"}]}}');
      const a = setup(dir);
      await assert.rejects(a.agent.start(), (e: Error & { code?: string }) => e.code === 'STORE_ERROR' && /desired-state\.json: invalid desired state:\nservices\[0\]\.address: required/.test(e.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('stored output parses back to itself (the store round-trips every field)', () => {
    const state = parseDesiredState({
      services: [
        { name: 'v6', address: '2001:DB8::1', port: 443, scheduler: 'mh', schedulerFlags: { port: true }, persistence: { timeout: 60, netmask: 64 }, backends: [{ address: '2001:db8::2' }] },
        { name: 'fw', fwmark: 7, backends: [{ address: '10.0.0.9', weight: 3 }] },
        { name: 'dr', address: '10.0.0.3', port: 80, forwarding: 'tunnel', tunnel: { type: 'gue', port: 6080 }, backends: [{ address: '10.0.0.4' }] },
        { name: 'x', dataplane: 'xdp', address: '10.0.0.5', port: 53, protocol: 'udp', backends: [{ address: '10.0.0.6', port: 53 }] },
      ],
    });
    const again = parseDesiredState(JSON.parse(JSON.stringify(state)));
    assert.deepEqual(again, state);
    assert.deepEqual(diffStates(state, again), []);
  });

  test('sameValue: deep, key order ignored, undefined keys absent, arrays ordered', () => {
    assert.equal(sameValue({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }), true);
    assert.equal(sameValue({ a: 1, x: undefined }, { a: 1 }), true);
    assert.equal(sameValue({ a: 1 }, { a: 1, b: null }), false);
    assert.equal(sameValue([1, 2], [2, 1]), false);
    assert.equal(sameValue({ a: [1] }, { a: { 0: 1 } }), false);
    assert.equal(sameValue({ a: { b: 1 } }, { a: { b: 2 } }), false);
  });
});

describe('agent: reconcile loop', () => {
  test('drift is repaired on the interval, logged as steps, counted and published', async () => {
    const dir = tmp();
    try {
      const a = setup(dir);
      await a.agent.start();
      await a.agent.change(change([svc('web', '10.0.0.1')]), who);
      const seen: string[] = [];
      a.events.subscribe((e) => seen.push(`${e.type} ${e.service ?? ''}`));
      // Someone deletes the service behind the agent's back.
      a.ipvs.kernel.delete('web');
      a.clock.tick();
      await new Promise((r) => setImmediate(r));
      const report = await a.agent.reconcile('test');
      assert.deepEqual([...a.ipvs.kernel.keys()], ['web'], 'the interval reconcile put it back');
      assert.equal(report.steps, 0, 'and nothing is left to do');
      assert.deepEqual(seen, ['drift-repaired web', 'drift-repaired web']);
      const m = await a.metrics.metrics();
      assert.match(m, /fulcrum_reconcile_steps_total\{dataplane="ipvs",kind="add-service",trigger="interval"\} 1/);
      assert.match(m, /fulcrum_reconciles_total\{trigger="interval",result="ok"\} 1/);
      await a.agent.close();
      assert.equal(a.clock.active, 0, 'close stops the loop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a failing reconcile is reported, not thrown, and the next one retries', async () => {
    const dir = tmp();
    try {
      const a = setup(dir);
      await a.agent.start();
      await a.agent.change(change([svc('web', '10.0.0.1')]), who);
      a.ipvs.kernel.delete('web');
      const { KernelError } = await import('../../src/errors.js');
      a.ipvs.failOn = () => new KernelError('add service', 16, 'device or resource busy');
      const bad = await a.agent.reconcile('interval');
      assert.equal(bad.result, 'error');
      assert.match(bad.error!, /ipvs: add service: EBUSY/);
      assert.equal(a.agent.status().lastReconcile?.result, 'error');
      a.ipvs.failOn = undefined;
      const good = await a.agent.reconcile('interval');
      assert.equal(good.result, 'ok');
      assert.equal(good.steps, 2);
      await a.agent.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('changes and reconciles run one at a time', async () => {
    const dir = tmp();
    try {
      const a = setup(dir);
      await a.agent.start();
      const results = await Promise.all([1, 2, 3, 4, 5].map((w) => a.agent.change(change([svc('web', '10.0.0.1', w)]), who)));
      assert.deepEqual(results.map((r) => r.revision), [1, 2, 3, 4, 5]);
      assert.equal(a.ipvs.kernel.get('web')!.backends[0]!.weight, 5);
      await a.agent.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('cleanup removes what the dataplanes own', async () => {
    const dir = tmp();
    try {
      const a = setup(dir);
      await a.agent.start();
      await a.agent.change(change([svc('web', '10.0.0.1')]), who);
      assert.deepEqual(await a.agent.cleanup(), ['ipvs']);
      assert.equal(a.ipvs.kernel.size, 0);
      await a.agent.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('agent: health and VRRP wiring', () => {
  test('a health change reconciles with health applied and tells VRRP which services hold quorum', async () => {
    const { EventEmitter } = await import('node:events');
    const dir = tmp();
    const down = new Set<string>();
    const health = Object.assign(new EventEmitter(), {
      updates: 0,
      update() { this.updates++; },
      effectiveServices: (services: any[]) => services.map((s) => ({ ...s, backends: s.backends.map((b: any) => (down.has(b.address) ? { ...b, weight: 0 } : b)) })),
      status: () => [{ service: 'web', quorum: null, backends: [{ state: down.size ? 'down' : 'up' }] }],
      close() {},
    });
    const vrrpCalls: string[] = [];
    const vrrp = { update: (i: unknown[]) => { vrrpCalls.push(`update ${i.length}`); return Promise.resolve(); }, setServiceHealth: (s: string, h: boolean) => vrrpCalls.push(`${s} ${h}`), status: () => [], close() {} };
    try {
      const ipvs = new FakeDataplane('ipvs');
      const agent = buildAgent({
        settings: AgentSettingsSchema.parse({ stateDir: dir }), factories: fakeFactories({ ipvs }), store: new FileStateStore(dir),
        clock: new ManualClock(), logger: silentLogger(), metrics: createMetricsRegistry({ defaultMetrics: false }), events: new EventBus(), health, vrrp,
      });
      await agent.start();
      assert.deepEqual(vrrpCalls, ['web true', 'update 0'], 'tracked services are reported before the instances start');
      await agent.change(change([svc('web', '10.0.0.1')]), who);
      assert.equal(health.updates, 2, 'health follows the desired state');
      down.add('10.0.1.1');
      health.emit('change');
      await agent.reconcile('test'); // queued after the health reconcile
      assert.equal(ipvs.kernel.get('web')!.backends[0]!.weight, 0, 'the down backend is at weight 0 in the kernel');
      assert.equal(agent.service('web')!.backends[0]!.weight, 1, 'the desired state is unchanged');
      assert.deepEqual(vrrpCalls, ['web true', 'update 0', 'web true', 'web false']);
      await agent.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('agent: incremental validation', () => {
  test('gives the same result and the same field-naming errors as a whole-state parse', async () => {
    const { parseChangedState } = await import('../../src/agent/validate.js');
    const base = (parseDesiredState({ services: [svc('a', '10.0.0.1'), svc('b', '10.0.0.2'), { name: 'v6', address: '2001:db8::1', port: 443, backends: [{ address: '2001:db8::2' }] }] }));
    // A mutation keeps unchanged services by identity and replaces one.
    const mutated = { ...base, services: base.services.map((s) => (s.name === 'b' ? { ...s, backends: [{ ...s.backends[0]!, weight: 7 }] } : s)) };
    const fast = parseChangedState(mutated);
    assert.deepEqual(fast, parseDesiredState(JSON.parse(JSON.stringify(mutated))));
    assert.equal(fast.services[0], base.services[0], 'unchanged services are kept, not re-parsed');
    assert.ok(Object.isFrozen(fast.services[1]!.backends[0]));
    // Errors: in a changed service, and across services (the state-level rules still apply).
    const bad = (input: unknown) => {
      let fastErr = '', fullErr = '';
      try { parseChangedState(input); } catch (e) { fastErr = (e as Error).message; }
      try { parseDesiredState(JSON.parse(JSON.stringify(input))); } catch (e) { fullErr = (e as Error).message; }
      assert.ok(fastErr, 'the incremental parse refuses it');
      assert.equal(fastErr, fullErr);
      return fastErr;
    };
    assert.match(bad({ ...base, services: [...base.services, { ...svc('c', '10.0.0.3'), port: 0 }] }), /services\[3\]\.port: Too small/);
    assert.match(bad({ ...base, services: [...base.services, svc('a', '10.0.0.9')] }), /services\[3\]\.name: duplicate service name a/);
    assert.match(bad({ ...base, services: [...base.services, svc('d', '10.0.0.1')] }), /services\[3\]: tcp 10\.0\.0\.1:80 is already services\[0\]/);
    assert.match(bad({ ...base, extra: 1 }), /Unrecognized key/);
  });
});

describe('agent: a change with the revision the cluster gives it (agent.store kind etcd)', () => {
  test('that revision is stored, also for an unchanged state; no If-Match check; a service on a missing dataplane is kept, not programmed', async () => {
    const { harness } = await import('../helpers/agent-harness.js');
    const h = await harness();
    try {
      const xdpService = { ...svc('fast', '10.9.0.1'), dataplane: 'xdp', scheduler: 'maglev' };
      const r = await h.agent.change(() => ({ services: [svc('web', '10.0.0.1'), xdpService] }), { actor: 'cluster', action: 'apply', revision: 7 });
      assert.deepEqual([r.revision, r.changed, r.applied], [7, true, true]);
      assert.equal(h.store.load()?.revision, 7);
      assert.deepEqual([...h.ipvs.kernel.keys()], ['web'], 'the xdp service is stored, not programmed');
      assert.deepEqual(h.agent.state.services.map((s) => s.name), ['web', 'fast']);
      const same = await h.agent.change((s) => s, { actor: 'cluster', action: 'apply', revision: 9, ifMatch: 1 });
      assert.deepEqual([same.revision, same.changed, h.agent.revision, h.store.load()?.revision], [9, false, 9, 9]);
      // Without a revision (the file store's path) the missing dataplane is still refused, If-Match still checked.
      await assert.rejects(h.agent.change((s) => ({ services: [...s.services, { ...xdpService, name: 'fast2', address: '10.9.0.2' }] }), { actor: 'api', action: 'put' }), { code: 'FEATURE_MISSING' });
      await assert.rejects(h.agent.change((s) => s, { actor: 'api', action: 'put', ifMatch: 1 }), { code: 'PRECONDITION_FAILED' });
      // The file store has no cluster: no stale mark, and GET /v1/cluster says so.
      const st = await h.app.inject({ method: 'GET', url: '/v1/state', headers: { authorization: 'Bearer admin-token-0123456789abcdef' } });
      assert.equal(st.json().stale, undefined);
      assert.equal(st.headers['fulcrum-stale'], undefined);
      const c = await h.app.inject({ method: 'GET', url: '/v1/cluster', headers: { authorization: 'Bearer admin-token-0123456789abcdef' } });
      assert.equal(c.statusCode, 404);
      assert.match(c.json().message, /not in a cluster/);
    } finally {
      await h.close();
    }
  });
});
