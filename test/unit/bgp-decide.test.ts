import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { decide, groupByVip, type NodeInput, type VipState } from '../../src/bgp/decide.js';
import { BgpController, type BgpServiceInput } from '../../src/bgp/controller.js';
import type { BirdControl } from '../../src/bgp/bird-client.js';
import { EventBus } from '../../src/events.js';
import { BgpSettingsSchema } from '../../src/model/bgp.js';
import { ManualClock } from '../helpers/fake-clock.js';

const node: NodeInput = { maintenance: false, stopping: false, communities: [], announceDelayMs: 0, caughtUp: true };
const svc = (over: Partial<BgpServiceInput> = {}): BgpServiceInput => ({
  name: 'web', address: '10.80.0.1', family: 'inet', wanted: true, programmed: true, healthy: true, communities: [], ...over,
});
const step = (prev: ReadonlyMap<string, VipState>, services: BgpServiceInput[], n: Partial<NodeInput> = {}, now = 0) =>
  decide(prev, groupByVip(services), { ...node, ...n }, now, 1_000_000 + now);

test('announced only once programmed; withdrawn with the reason when health, maintenance or a stop say so', () => {
  let d = step(new Map(), [svc({ programmed: false })]);
  assert.deepEqual(d.announcements, []);
  assert.equal(d.vips.get('10.80.0.1')!.reason, 'not-programmed');
  assert.deepEqual(d.transitions, []);
  d = step(d.vips, [svc()]);
  assert.deepEqual(d.announcements, [{ address: '10.80.0.1', family: 'inet', communities: [] }]);
  assert.deepEqual(d.transitions, [{ address: '10.80.0.1', action: 'announce', services: ['web'] }]);
  // The same inputs again: no transition.
  assert.deepEqual(step(d.vips, [svc()]).transitions, []);
  for (const [services, n, reason] of [
    [[svc({ healthy: false })], {}, 'no-healthy-backend'],
    [[svc()], { maintenance: true }, 'maintenance'],
    [[svc()], { stopping: true }, 'agent-stop'],
    [[svc({ wanted: false })], {}, 'not-wanted'],
    [[], {}, 'removed'],
  ] as const) {
    const w = step(d.vips, [...services], n);
    assert.deepEqual(w.announcements, [], reason);
    assert.deepEqual(w.transitions, [{ address: '10.80.0.1', action: 'withdraw', reason, services: ['web'] }]);
  }
});

test('a VIP of two services stays announced while one of them is healthy; communities of the carriers only', () => {
  const both = [svc({ communities: ['65000:1'] }), svc({ name: 'web-tls', communities: ['65000:2'] })];
  let d = step(new Map(), both, { communities: ['65001:9'] });
  assert.deepEqual(d.announcements[0]!.communities, ['65000:1', '65000:2', '65001:9']);
  d = step(d.vips, [both[0]!, { ...both[1]!, healthy: false }], { communities: ['65001:9'] });
  assert.deepEqual(d.transitions, []);
  assert.deepEqual(d.announcements[0]!.communities, ['65000:1', '65001:9']);
  assert.deepEqual(d.vips.get('10.80.0.1')!.services, ['web']);
  d = step(d.vips, [{ ...both[0]!, healthy: false }, { ...both[1]!, healthy: false }]);
  assert.equal(d.transitions[0]!.reason, 'no-healthy-backend');
});

test('a node behind the cluster (etcd watch cut off, or started from its cache) announces nothing new and keeps what it announces', () => {
  const behind = step(new Map(), [svc()], { caughtUp: false });
  assert.deepEqual(behind.announcements, []);
  assert.equal(behind.vips.get('10.80.0.1')!.reason, 'behind-cluster');
  assert.deepEqual(behind.transitions, []);
  const caught = step(behind.vips, [svc()]);
  assert.deepEqual(caught.transitions, [{ address: '10.80.0.1', action: 'announce', services: ['web'] }]);
  // Already announced: a cut-off watch is no reason to withdraw (every node is behind for a moment after each write).
  const cut = step(caught.vips, [svc(), svc({ name: 'other', address: '10.80.0.2' })], { caughtUp: false });
  assert.deepEqual(cut.transitions, []);
  assert.deepEqual(cut.announcements.map((a) => a.address), ['10.80.0.1']);
  assert.equal(cut.vips.get('10.80.0.2')!.reason, 'behind-cluster');
  // Health still withdraws while behind.
  assert.equal(step(cut.vips, [svc({ healthy: false })], { caughtUp: false }).transitions[0]!.reason, 'no-healthy-backend');
});

test('announceDelayMs: announced once eligible that long without a break, by the injected clock', () => {
  const n = { announceDelayMs: 500 };
  let d = step(new Map(), [svc()], n, 0);
  assert.deepEqual(d.announcements, []);
  assert.equal(d.wakeAt, 500);
  d = step(d.vips, [svc()], n, 300);
  assert.deepEqual(d.announcements, []);
  d = step(d.vips, [svc({ healthy: false })], n, 400); // a break restarts the wait
  d = step(d.vips, [svc()], n, 450);
  assert.equal(d.wakeAt, 950);
  d = step(d.vips, [svc()], n, 949);
  assert.deepEqual(d.announcements, []);
  d = step(d.vips, [svc()], n, 950);
  assert.equal(d.announcements.length, 1);
  assert.equal(d.vips.get('10.80.0.1')!.since, 1_000_000 + 950);
});

class FakeBird implements BirdControl {
  readonly socketPath = '/fake';
  refuse = false;
  calls: string[] = [];
  seen: string[] = [];
  constructor(private readonly file: string) {}
  async configureCheck() { this.calls.push('check'); this.seen.push(readFileSync(this.file, 'utf8')); if (this.refuse) throw new Error('syntax error'); return 'Configuration OK'; }
  async configure() { this.calls.push('configure'); return 'Reconfigured'; }
  async showProtocols() { return [{ name: 'fulcrum_n_10_71_1_1', proto: 'BGP', table: '---', state: 'up', since: '05:00:00', info: 'Established' }]; }
  async showRouteExport() { return ['10.80.0.1/32']; }
  async showBfdSessions() { return [{ address: '10.71.1.1', interface: 'eth0', state: 'Up', since: '05:00:00' }]; }
}

test('controller: check then configure; a refused include is put back; withdrawals are events and metrics; stop withdraws', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bgp-unit-'));
  try {
    const file = join(dir, 'fulcrum.conf');
    const settings = BgpSettingsSchema.parse({ asn: 65001, routerId: '10.71.1.2', neighbours: [{ address: '10.71.1.1', asn: 65000 }], includeFile: file, announceDelayMs: 200 });
    const clock = new ManualClock();
    const bird = new FakeBird(file);
    const events = new EventBus();
    const seen: string[] = [];
    events.subscribe((e) => seen.push(e.type));
    const metrics = new Registry();
    let services = [svc()];
    const c = new BgpController({ settings, bird, clock, metrics, events, report: () => undefined });
    await c.start(async () => ({ services, caughtUp: true }));
    assert.doesNotMatch(readFileSync(file, 'utf8'), /route 10\.80\.0\.1/, 'not announced before announceDelayMs');
    await clock.advance(200);
    assert.match(readFileSync(file, 'utf8'), /route 10\.80\.0\.1\/32 blackhole;/);
    assert.deepEqual(bird.calls.slice(-2), ['check', 'configure']);
    assert.deepEqual(seen, ['bgp-announced']);
    const st = c.status() as { neighbours: Array<{ established: boolean; bfd: string; exported: string[] }> };
    assert.deepEqual([st.neighbours[0]!.established, st.neighbours[0]!.bfd, st.neighbours[0]!.exported], [true, 'Up', ['10.80.0.1/32']]);

    // BIRD refuses: the previous include is back on disk, nothing counts as withdrawn.
    bird.refuse = true;
    services = [svc({ healthy: false })];
    const before = readFileSync(file, 'utf8');
    await c.sync();
    assert.equal(readFileSync(file, 'utf8'), before);
    assert.doesNotMatch(bird.seen.at(-1)!, /route 10\.80\.0\.1/, 'BIRD was asked to check the withdrawal');
    assert.deepEqual(seen, ['bgp-announced', 'bgp-error']);
    assert.match(await metrics.metrics(), /fulcrum_bgp_vip_announced\{vip="10.80.0.1"\} 1/);

    bird.refuse = false;
    await c.sync();
    assert.deepEqual(seen, ['bgp-announced', 'bgp-error', 'bgp-withdrawn']);
    const text = await metrics.metrics();
    assert.match(text, /fulcrum_bgp_withdrawals_total\{vip="10.80.0.1",reason="no-healthy-backend"\} 1/);
    assert.match(text, /fulcrum_bgp_vip_announced\{vip="10.80.0.1"\} 0/);

    services = [svc()];
    await c.sync();
    await clock.advance(200);
    assert.match(readFileSync(file, 'utf8'), /route 10\.80\.0\.1/);
    await c.stop();
    assert.doesNotMatch(readFileSync(file, 'utf8'), /route 10\.80\.0\.1/, 'a clean stop withdraws');
    assert.match(await metrics.metrics(), /reason="agent-stop"\} 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('controller: keepOnRestart leaves the announcements in place on a clean stop', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bgp-unit-'));
  try {
    const file = join(dir, 'fulcrum.conf');
    const settings = BgpSettingsSchema.parse({ asn: 65001, routerId: '10.71.1.2', neighbours: [{ address: '10.71.1.1', asn: 65000 }], includeFile: file, keepOnRestart: true });
    const c = new BgpController({ settings, bird: new FakeBird(file), clock: new ManualClock(), metrics: new Registry(), events: new EventBus(), report: () => undefined });
    await c.start(async () => ({ services: [svc()], caughtUp: true }));
    await c.stop();
    assert.match(readFileSync(file, 'utf8'), /route 10\.80\.0\.1\/32/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
