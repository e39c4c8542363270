import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthManager, type Checker, type CheckOutcome, type CheckTarget } from '../../src/health/index.js';
import { initialBackendHealth, stepBackend, stepQuorum } from '../../src/health/state.js';
import { EventBus, type FulcrumEvent } from '../../src/events.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { parseDesiredState, type ServiceInput } from '../../src/model/index.js';
import { ManualClock, flush } from '../helpers/fake-clock.js';

type Behaviour = 'up' | 'down' | 'hang';

/** A fake transport: each target answers as the test says; every probe is counted. */
class FakeNet {
  readonly behaviour = new Map<string, Behaviour>();
  readonly calls: Array<{ target: string; at: number }> = [];
  aborted = 0;
  constructor(private readonly clock: ManualClock) {}
  set(target: string, b: Behaviour) { this.behaviour.set(target, b); }
  checker(): Checker {
    return {
      kind: 'tcp',
      check: (t: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> => {
        const key = `${t.address}:${t.port}`;
        this.calls.push({ target: key, at: this.clock.now() });
        const b = this.behaviour.get(key) ?? 'down';
        if (b === 'hang') return new Promise((resolve) => signal.addEventListener('abort', () => { this.aborted++; resolve({ up: false, reason: 'aborted', code: 'aborted' }); }));
        return Promise.resolve(b === 'up' ? { up: true, reason: 'connected', code: 'ok' } : { up: false, reason: 'connect ECONNREFUSED', code: 'ECONNREFUSED' });
      },
    };
  }
  count(target: string) { return this.calls.filter((c) => c.target === target).length; }
}

function setup(services: ServiceInput[], random = () => 0.5) {
  const clock = new ManualClock();
  const net = new FakeNet(clock);
  const events = new EventBus();
  const seen: FulcrumEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const mgr = new HealthManager({ logger: silentLogger(), clock, events, metrics, random, checkers: { tcp: () => net.checker(), http: () => net.checker() } });
  let changes = 0;
  mgr.on('change', () => changes++);
  const state = parseDesiredState({ services });
  mgr.update(state.services);
  return { clock, net, events, seen, metrics, mgr, state, changes: () => changes };
}

const health = (extra: Record<string, unknown> = {}) => ({ check: { kind: 'tcp' }, interval: 1, timeout: 0.5, jitter: 0, rise: 2, fall: 3, ...extra });
const svc = (extra: Record<string, unknown> = {}, h: Record<string, unknown> = {}): ServiceInput => ({
  name: 'web', address: '10.0.0.1', port: 80,
  backends: [{ address: '10.0.1.1', weight: 2 }, { address: '10.0.1.2', weight: 3 }],
  health: health(h), ...extra,
} as ServiceInput);

const weights = (m: HealthManager, services: ReturnType<typeof parseDesiredState>['services']) =>
  m.effectiveServices(services).map((s) => s.backends.map((b) => `${b.address}:${b.port}=${b.weight}`).join(' '));

test('state machine: rise and fall need consecutive results; warm-up starts down', () => {
  const t = { rise: 2, fall: 3 };
  let b = initialBackendHealth('down', 0);
  const r = (upv: boolean, at: number) => ({ up: upv, reason: upv ? 'ok' : 'bad', code: upv ? 'ok' : 'x', at, latencyMs: 1 });
  const seq: string[] = [];
  for (const [i, u] of [true, false, true, true, false, false, true, false, false, false].entries()) {
    const s = stepBackend(b, t, r(u, i));
    b = s.next;
    seq.push(b.state + (s.changed ? '!' : ''));
  }
  assert.deepEqual(seq, ['down', 'down', 'down', 'up!', 'up', 'up', 'up', 'up', 'up', 'down!']);
  assert.equal(b.since, 9);
  assert.equal(stepBackend(initialBackendHealth('up', 0), { rise: 1, fall: 1 }, r(false, 1)).next.state, 'down');
});

test('state machine: quorum holds down to min - hysteresis and returns at min + hysteresis', () => {
  const rule = { min: 5, hysteresis: 2 };
  assert.equal(stepQuorum(undefined, 5, rule), true);
  assert.equal(stepQuorum(undefined, 4, rule), false);
  assert.equal(stepQuorum(true, 3, rule), true);
  assert.equal(stepQuorum(true, 2, rule), false);
  assert.equal(stepQuorum(false, 6, rule), false);
  assert.equal(stepQuorum(false, 7, rule), true);
});

test('warm-up: new backends take no traffic until they pass rise checks (keepalived#2064)', async () => {
  const { clock, net, mgr, state, seen } = setup([svc()]);
  net.set('10.0.1.1:80', 'up');
  net.set('10.0.1.2:80', 'up');
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=0 10.0.1.2:80=0'], 'down (weight 0) before any check');
  await clock.advance(600); // first probe at random 0.5 * interval
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=0 10.0.1.2:80=0'], 'one pass is not rise=2');
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=3']);
  assert.deepEqual(seen.map((e) => e.type).sort(), ['backend-up', 'backend-up']);
  const st = mgr.status()[0]!;
  assert.equal(st.backends[0]!.state, 'up');
  assert.equal(st.backends[0]!.lastResult!.reason, 'connected');
  mgr.close();
});

test('initialState up serves at once; fall consecutive failures take it out within fall x interval + timeout', async () => {
  const { clock, net, mgr, state, seen, changes } = setup([svc({}, { initialState: 'up' })]);
  net.set('10.0.1.1:80', 'up');
  net.set('10.0.1.2:80', 'up');
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=3']);
  await clock.advance(2000);
  net.set('10.0.1.2:80', 'hang'); // the server stops answering
  const failedAt = clock.now();
  let downAt: number | undefined;
  mgr.on('change', () => { downAt ??= clock.now(); });
  for (let i = 0; i < 60 && downAt === undefined; i++) await clock.advance(100);
  assert.ok(downAt !== undefined, 'taken out');
  assert.ok(downAt - failedAt <= 3 * 1000 + 500, `detected after ${downAt - failedAt} ms, bound 3500 ms`);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=0'], 'inhibitOnFailure: weight 0');
  const down = seen.find((e) => e.type === 'backend-down')!;
  assert.equal(down.service, 'web');
  assert.match(down.message, /10\.0\.1\.2:80 down: timeout after 0\.5s/);
  assert.ok(net.aborted >= 3, 'hung probes were aborted');
  assert.ok(changes() >= 1);
  assert.equal(mgr.status()[0]!.backends[1]!.lastResult!.reason, 'timeout after 0.5s');
  // Restart: back after rise (2) passes, with its configured weight.
  net.set('10.0.1.2:80', 'up');
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=0']);
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=3']);
  mgr.close();
});

test('inhibitOnFailure false removes a down backend', async () => {
  const { clock, net, mgr, state } = setup([svc({}, { inhibitOnFailure: false })]);
  net.set('10.0.1.1:80', 'up');
  await clock.advance(3000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2']);
  mgr.close();
});

test('quorum with hysteresis switches to the sorry server and back, with alert events', async () => {
  const { clock, net, mgr, state, seen } = setup([svc({
    backends: [{ address: '10.0.1.1', weight: 2 }, { address: '10.0.1.2', weight: 2 }, { address: '10.0.1.3', weight: 2 }],
  }, { initialState: 'up', rise: 1, fall: 1, quorum: { min: 4, hysteresis: 1 }, sorryServer: { address: '10.0.9.9', port: 8080 } })]);
  for (const b of ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.3:80']) net.set(b, 'up');
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=2 10.0.1.3:80=2']);
  net.set('10.0.1.3:80', 'down'); // healthy 4: still >= 4 - 1
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=2 10.0.1.3:80=0']);
  net.set('10.0.1.2:80', 'down'); // healthy 2 < 3: quorum lost
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.9.9:8080=1'], 'the sorry server is the only backend');
  const lost = seen.find((e) => e.type === 'quorum-lost')!;
  assert.match(lost.message, /quorum lost: healthy weight 2 < 3 \(sorry server 10\.0\.9\.9:8080\)/);
  assert.deepEqual((lost.data as { alert: boolean }).alert, true);
  assert.equal(mgr.status()[0]!.quorum!.sorryServerActive, true);
  net.set('10.0.1.2:80', 'up'); // healthy 4 < 5 = min + hysteresis: not yet
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.9.9:8080=1']);
  net.set('10.0.1.3:80', 'up'); // healthy 6 >= 5
  await clock.advance(1000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=2 10.0.1.3:80=2']);
  assert.ok(seen.some((e) => e.type === 'quorum-regained'));
  mgr.close();
});

test('a sorry server alone means quorum 1: all down -> sorry server; warm-up starts there', async () => {
  const { clock, net, mgr, state } = setup([svc({}, { sorryServer: { address: '10.0.9.9' } })]);
  assert.deepEqual(weights(mgr, state.services), ['10.0.9.9:80=1']);
  net.set('10.0.1.1:80', 'up');
  await clock.advance(2000);
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=0']);
  mgr.close();
});

test('one probe serves every service sharing a backend and check definition (keepalived#2358)', async () => {
  const a = svc({ name: 'a', port: 80 });
  const b = svc({ name: 'b', port: 81, backends: [{ address: '10.0.1.1', port: 80 }, { address: '10.0.1.2', port: 80 }] });
  const c = svc({ name: 'c', port: 82, backends: [{ address: '10.0.1.1', port: 80 }] }, { rise: 5 }); // other rise, same probe
  const d = svc({ name: 'd', port: 83, backends: [{ address: '10.0.1.1', port: 80 }] }, { interval: 2 }); // other interval: own probe
  const { clock, net, mgr, state } = setup([a, b, c, d]);
  assert.equal(mgr.probeCount, 3, '10.0.1.1:80 @1s, 10.0.1.2:80 @1s, 10.0.1.1:80 @2s');
  net.set('10.0.1.1:80', 'up');
  await clock.advance(10_000);
  assert.equal(net.count('10.0.1.1:80'), 10 + 5, 'one probe a second for a, b and c, one every 2 s for d');
  assert.deepEqual(weights(mgr, state.services), ['10.0.1.1:80=2 10.0.1.2:80=0', '10.0.1.1:80=1 10.0.1.2:80=0', '10.0.1.1:80=1', '10.0.1.1:80=1']);
  assert.equal(mgr.status().find((s) => s.service === 'a')!.backends[0]!.sharedBy, 3);
  mgr.close();
});

test('update starts, re-targets and stops probes; state survives a change of weight', async () => {
  const { clock, net, mgr } = setup([svc()]);
  net.set('10.0.1.1:80', 'up');
  await clock.advance(3000);
  assert.equal(mgr.probeCount, 2);
  const next = parseDesiredState({ services: [svc({ backends: [{ address: '10.0.1.1', weight: 7 }, { address: '10.0.1.3' }] })] }).services;
  mgr.update(next);
  assert.equal(mgr.probeCount, 2, '10.0.1.2 stopped, 10.0.1.3 started');
  assert.deepEqual(weights(mgr, next), ['10.0.1.1:80=7 10.0.1.3:80=0']);
  const before = net.count('10.0.1.2:80');
  await clock.advance(3000);
  assert.equal(net.count('10.0.1.2:80'), before, 'no probe of a removed backend');
  // The check moves to another port: same state, new probe.
  const moved = parseDesiredState({ services: [svc({ backends: [{ address: '10.0.1.1', weight: 7 }] }, { port: 9000 })] }).services;
  mgr.update(moved);
  assert.deepEqual(weights(mgr, moved), ['10.0.1.1:80=7']);
  assert.equal(mgr.status()[0]!.backends[0]!.check, '10.0.1.1:9000');
  await clock.advance(3000);
  assert.ok(net.count('10.0.1.1:9000') >= 2);
  assert.deepEqual(weights(mgr, moved), ['10.0.1.1:80=0'], '10.0.1.1:9000 refuses: down after fall');
  mgr.update([]);
  assert.equal(mgr.probeCount, 0);
  assert.equal(clock.pending, 0, 'no timer left');
  assert.deepEqual(mgr.status(), []);
  mgr.close();
});

test('services without health are returned unchanged and not probed', () => {
  const { mgr, state } = setup([{ name: 'plain', address: '10.0.0.2', port: 80, backends: [{ address: '10.0.2.1' }] }]);
  assert.equal(mgr.probeCount, 0);
  assert.equal(mgr.effectiveServices(state.services)[0], state.services[0]);
  mgr.close();
});

test('jitter: first probes spread over the interval, then interval +/- jitter', async () => {
  const backends = Array.from({ length: 200 }, (_, i) => ({ address: `10.1.${i >> 8}.${(i & 255) + 1}` }));
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const { clock, net, mgr } = setup([svc({ backends }, { interval: 1, jitter: 0.1 })], random);
  await clock.advance(1000);
  // 200 first probes over 1000 ms: no 100 ms bucket holds more than twice its share.
  const buckets = new Array(10).fill(0);
  const first = new Map<string, number>();
  for (const c of net.calls) if (!first.has(c.target)) first.set(c.target, c.at);
  for (const at of first.values()) buckets[Math.min(9, Math.floor(at / 100))]++;
  assert.equal(first.size, 200);
  assert.ok(Math.max(...buckets) <= 40, `buckets ${buckets}`);
  await clock.advance(5000);
  const gaps: number[] = [];
  const byTarget = new Map<string, number[]>();
  for (const c of net.calls) byTarget.set(c.target, [...(byTarget.get(c.target) ?? []), c.at]);
  for (const times of byTarget.values()) for (let i = 1; i < times.length; i++) gaps.push(times[i]! - times[i - 1]!);
  assert.ok(gaps.every((g) => g >= 900 && g <= 1100), 'every gap is 1 s +/- 100 ms');
  assert.ok(new Set(gaps.map((g) => Math.round(g))).size > 20, 'and the gaps differ (jitter applied)');
  mgr.close();
});

test('metrics: backend state gauge, latency histogram, failures by reason', async () => {
  const { clock, net, mgr, metrics } = setup([svc({}, { initialState: 'up', fall: 1 })]);
  net.set('10.0.1.1:80', 'up');
  await clock.advance(1000);
  const text = await metrics.metrics();
  assert.match(text, /fulcrum_health_backend_up\{service="web",backend="10\.0\.1\.1:80"\} 1/);
  assert.match(text, /fulcrum_health_backend_up\{service="web",backend="10\.0\.1\.2:80"\} 0/);
  assert.match(text, /fulcrum_health_check_failures_total\{kind="tcp",reason="ECONNREFUSED"\} 1/);
  assert.match(text, /fulcrum_health_check_duration_seconds_count\{kind="tcp"\} 2/);
  assert.match(text, /fulcrum_health_transitions_total\{service="web",to="down"\} 1/);
  mgr.close();
});

test('one change event for the transitions of a short window', async () => {
  const { clock, net, mgr } = setup([svc({}, { rise: 1 })], () => 0); // both probes due at the same instant
  net.set('10.0.1.1:80', 'up');
  net.set('10.0.1.2:80', 'up');
  let n = 0;
  mgr.on('change', () => n++);
  await clock.advance(1);
  assert.equal(n, 0, 'not before the window closes');
  await clock.advance(50);
  await flush();
  assert.equal(n, 1, 'two transitions, one change');
  mgr.close();
});

test('maxInFlight bounds concurrent probes; the rest wait', async () => {
  const clock = new ManualClock();
  const net = new FakeNet(clock);
  const backends = Array.from({ length: 10 }, (_, i) => ({ address: `10.1.0.${i + 1}` }));
  for (const b of backends) net.set(`${b.address}:80`, 'hang');
  const mgr = new HealthManager({ logger: silentLogger(), clock, events: new EventBus(), metrics: createMetricsRegistry({ defaultMetrics: false }), random: () => 0, maxInFlight: 4, checkers: { tcp: () => net.checker() } });
  mgr.update(parseDesiredState({ services: [svc({ backends })] }).services);
  await clock.advance(1);
  assert.equal(net.calls.length, 4);
  await clock.advance(500); // the 4 time out, the next 4 start
  assert.equal(net.calls.length, 8);
  mgr.close();
});

test('the health state file is versioned; the unversioned form earlier agents wrote still restores', async () => {
  const { mkdtempSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-health-state-'));
  try {
    const stateFile = join(dir, 'health-state.json');
    const clock = new ManualClock();
    const net = new FakeNet(clock);
    net.set('10.0.1.1:80', 'up');
    const make = () => new HealthManager({ logger: silentLogger(), clock, events: new EventBus(), metrics: createMetricsRegistry({ defaultMetrics: false }), random: () => 0.5, stateFile, checkers: { tcp: () => net.checker() } });
    const services = parseDesiredState({ services: [svc()] }).services;
    const first = make();
    first.update(services);
    await clock.advance(3000);
    first.close();
    const doc = JSON.parse(readFileSync(stateFile, 'utf8')) as { version: number; data: { savedAt: number; backends: unknown[] } };
    assert.equal(doc.version, 1);
    assert.equal(doc.data.backends.length, 2);

    // What earlier agents wrote: the data alone, compact, no version.
    writeFileSync(stateFile, JSON.stringify(doc.data));
    const second = make();
    second.update(services);
    assert.deepEqual(weights(second, services), ['10.0.1.1:80=2 10.0.1.2:80=0'], 'restored from the unversioned form');
    second.close();

    writeFileSync(stateFile, JSON.stringify({ version: 1, data: { savedAt: clock.wallNow(), backends: [{ service: 'web' }] } }));
    const third = make();
    third.update(services);
    assert.deepEqual(weights(third, services), ['10.0.1.1:80=0 10.0.1.2:80=0'], 'an invalid file is not trusted: warm-up');
    third.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a restarted manager takes the saved states (no warm-up drop), unless stale or the check changed', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-health-state-'));
  try {
    const stateFile = join(dir, 'health-state.json');
    const clock = new ManualClock();
    const net = new FakeNet(clock);
    net.set('10.0.1.1:80', 'up');
    const make = () => new HealthManager({ logger: silentLogger(), clock, events: new EventBus(), metrics: createMetricsRegistry({ defaultMetrics: false }), random: () => 0.5, stateFile, checkers: { tcp: () => net.checker() } });
    const services = parseDesiredState({ services: [svc()] }).services;
    const first = make();
    first.update(services);
    await clock.advance(3000);
    assert.deepEqual(weights(first, services), ['10.0.1.1:80=2 10.0.1.2:80=0']);
    first.close();

    await clock.advance(10_000);
    const second = make();
    second.update(services);
    assert.deepEqual(weights(second, services), ['10.0.1.1:80=2 10.0.1.2:80=0'], 'restored: 10.0.1.1 keeps its traffic');
    second.close();

    await clock.advance(301_000);
    const third = make();
    third.update(services);
    assert.deepEqual(weights(third, services), ['10.0.1.1:80=0 10.0.1.2:80=0'], 'older than restoreMaxAgeSeconds: warm-up again');
    await clock.advance(3000);
    assert.deepEqual(weights(third, services), ['10.0.1.1:80=2 10.0.1.2:80=0']);
    third.close();

    const changed = parseDesiredState({ services: [svc({}, { port: 8080 })] }).services;
    const fourth = make();
    fourth.update(changed);
    assert.deepEqual(weights(fourth, changed), ['10.0.1.1:80=0 10.0.1.2:80=0'], 'another check: warm-up again');
    fourth.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('effectiveServices returns the same object while a service\'s effective backends stay the same (dataplanes skip no-op reconciles by identity)', async () => {
  const { clock, net, mgr, state } = setup([svc({}, { initialState: 'up' })]);
  net.set('10.0.1.1:80', 'up');
  net.set('10.0.1.2:80', 'up');
  const first = mgr.effectiveServices(state.services)[0]!;
  assert.notEqual(first, state.services[0], 'a service with health is a derived object');
  assert.equal(mgr.effectiveServices(state.services)[0], first, 'nothing changed: the same object');
  net.set('10.0.1.2:80', 'down');
  await clock.advance(4000);
  const down = mgr.effectiveServices(state.services)[0]!;
  assert.notEqual(down, first, 'a backend went down: a new object');
  assert.deepEqual(down.backends.map((b) => b.weight), [2, 0]);
  assert.equal(mgr.effectiveServices(state.services)[0], down);
  net.set('10.0.1.2:80', 'up');
  await clock.advance(3000);
  const back = mgr.effectiveServices(state.services)[0]!;
  assert.deepEqual(back.backends.map((b) => b.weight), [2, 3]);
  assert.notEqual(back, down);
  mgr.close();
});
