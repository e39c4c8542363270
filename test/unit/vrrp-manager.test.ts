import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { EventBus, type FulcrumEvent } from '../../src/events.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { VrrpManager } from '../../src/vrrp/index.js';
import type { HostAddress, LinkInfo, VipSpec, VrrpHost } from '../../src/vrrp/kernel.js';
import type { ReceivedPacket, TransportOptions, VrrpTransport } from '../../src/vrrp/transport.js';
import { decodeAdvert, encodeAdvert, passwordAuthData, type VrrpAdvert } from '../../src/vrrp/codec.js';
import { VrrpInstancesSchema, type VrrpInstanceInput } from '../../src/model/vrrp.js';
import { FakeClock } from '../helpers/fake-clock.js';

class FakeHost implements VrrpHost {
  links_: LinkInfo[] = [
    { index: 2, name: 'eth0', mac: '02:00:00:00:00:01', up: true },
    { index: 3, name: 'eth1', mac: '02:00:00:00:00:02', up: true },
  ];
  vips = new Set<string>();
  log: string[] = [];
  frames: { index: number; frame: Buffer }[] = [];
  async links() { return this.links_.map((l) => ({ ...l })); }
  async addresses(index: number): Promise<HostAddress[]> {
    const base: HostAddress[] = index === 2
      ? [{ address: '10.0.0.1', prefix: 24, family: 'inet', scope: 0, secondary: false }, { address: 'fe80::1', prefix: 64, family: 'inet6', scope: 253, secondary: false }]
      : [{ address: '10.1.0.1', prefix: 24, family: 'inet', scope: 0, secondary: false }];
    return base;
  }
  async addVip(index: number, vip: VipSpec) { this.vips.add(`${index}:${vip.address}`); this.log.push(`add ${vip.address}`); }
  async delVip(index: number, vip: VipSpec) { if (this.vips.delete(`${index}:${vip.address}`)) this.log.push(`del ${vip.address}`); }
  sendFrame(index: number, frame: Buffer) { this.frames.push({ index, frame }); }
  close() {}
}

class FakeTransport implements VrrpTransport {
  sent: { dst: string; src: string; advert: VrrpAdvert }[] = [];
  private listener: ((p: ReceivedPacket) => void) | undefined;
  closed = false;
  constructor(readonly opts: TransportOptions) {}
  get family() { return this.opts.family; }
  send(dst: string, src: string, vrrp: Buffer) { this.sent.push({ dst, src, advert: decodeAdvert(vrrp, this.opts.family, { src, dst }) }); }
  onPacket(l: (p: ReceivedPacket) => void) { this.listener = l; }
  onError() {}
  close() { this.closed = true; }
  inject(p: ReceivedPacket) { this.listener?.(p); }
}

async function setup(extra: { maintenanceFile?: string } = {}) {
  const clock = new FakeClock();
  const host = new FakeHost();
  const transports: FakeTransport[] = [];
  const events = new EventBus();
  const seen: FulcrumEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  /** A manager on this host and clock (a second one stands for the process after a restart). */
  const newManager = () => new VrrpManager({
    logger: silentLogger(), events, metrics: createMetricsRegistry({ defaultMetrics: false }), clock, host, linkPollMs: 200, ...extra,
    transportFactory: (o) => { const t = new FakeTransport(o); transports.push(t); return t; },
  });
  const manager = new VrrpManager({
    logger: silentLogger(), events, metrics, clock, host, linkPollMs: 200, ...extra,
    transportFactory: (o) => { const t = new FakeTransport(o); transports.push(t); return t; },
  });
  const flush = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
  const step = async (ms: number) => { clock.advance(ms); await flush(); };
  /** Runs the fake clock until `p` settles (a stopping master waits for its successor, bounded). */
  const settle = async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    const out = p.finally(() => { done = true; });
    for (let i = 0; i < 200 && !done; i++) await step(100);
    return out;
  };
  return { clock, host, transports, events, seen, metrics, manager, newManager, flush, step, settle };
}

const base = (over: Partial<VrrpInstanceInput> = {}): VrrpInstanceInput => ({ name: 'vi1', interface: 'eth0', vrid: 7, priority: 150, vips: ['10.0.0.100'], ...over });
const parse = (list: VrrpInstanceInput[]) => VrrpInstancesSchema.parse(list);

function advertFrom(src: string, over: Partial<VrrpAdvert> = {}, ttl = 255): ReceivedPacket {
  const advert: VrrpAdvert = { version: 3, vrid: 7, priority: 200, interval: 100, family: 'inet', addresses: ['10.0.0.100'], ...over };
  return { src, dst: '224.0.0.18', ttl, payload: encodeAdvert(advert, { src, dst: '224.0.0.18' }) };
}

test('manager: alone on the link it becomes master, adds the VIP, sends GARP, publishes and counts', async () => {
  const { manager, host, transports, seen, metrics, step, flush, settle } = await setup();
  await manager.update(parse([base()]));
  await flush();
  assert.equal(manager.status()[0]!.state, 'backup');
  assert.equal(host.vips.size, 0);
  await step(3500);
  const st = manager.status()[0]!;
  assert.equal(st.state, 'master');
  assert.equal(st.masterAddress, '10.0.0.1');
  assert.deepEqual([...host.vips], ['2:10.0.0.100']);
  assert.equal(host.frames.length, 5, 'garp.repeat defaults to 5');
  const arp = host.frames[0]!.frame;
  assert.equal(arp.readUInt16BE(12), 0x0806);
  assert.deepEqual([...arp.subarray(28, 32)], [10, 0, 0, 100], 'sender IP = VIP');
  const t = transports[0]!;
  assert.equal(t.opts.ifname, 'eth0');
  assert.equal(t.sent[0]!.dst, '224.0.0.18');
  assert.equal(t.sent[0]!.src, '10.0.0.1');
  assert.deepEqual(t.sent[0]!.advert.addresses, ['10.0.0.100']);
  assert.deepEqual(seen.filter((e) => e.type === 'vrrp-transition').map((e) => (e.data as { to: string }).to), ['backup', 'master']);
  const text = await metrics.metrics();
  assert.match(text, /fulcrum_vrrp_state\{instance="vi1"\} 2/);
  assert.match(text, /fulcrum_vrrp_transitions_total\{instance="vi1",to="master"\} 1/);
  assert.match(text, /fulcrum_vrrp_adverts_sent_total\{instance="vi1"\} 1/);
  await step(5000);
  assert.equal(host.frames.length, 10, 'a second burst after garp.delay (5 s)');
  await settle(manager.close());
  assert.deepEqual([...host.vips], [], 'close removes the VIP');
  assert.equal(t.sent.at(-1)!.advert.priority, 0, 'close sends priority 0');
  assert.ok(t.closed);
});

test('manager: a higher-priority peer keeps us backup; its priority 0 hands over after Skew_Time', async () => {
  const { manager, host, transports, step, flush, settle } = await setup();
  await manager.update(parse([base()]));
  await flush();
  const t = transports[0]!;
  for (let i = 0; i < 5; i++) { t.inject(advertFrom('10.0.0.2')); await step(1000); }
  assert.equal(manager.status()[0]!.state, 'backup');
  assert.equal(manager.status()[0]!.masterAddress, '10.0.0.2');
  t.inject(advertFrom('10.0.0.2', { priority: 0 }));
  await step(((256 - 150) * 1000) / 256 + 1);
  assert.equal(manager.status()[0]!.state, 'master');
  assert.deepEqual([...host.vips], ['2:10.0.0.100']);
  await settle(manager.close());
});

test('manager: malformed and foreign packets are dropped with a counted reason, never thrown', async () => {
  const { manager, transports, metrics, flush, settle } = await setup();
  await manager.update(parse([base()]));
  await flush();
  const t = transports[0]!;
  t.inject({ src: '10.0.0.2', dst: '224.0.0.18', ttl: 255, payload: Buffer.from([0x31, 7]) });
  t.inject(advertFrom('10.0.0.2', {}, 64));
  t.inject(advertFrom('10.0.0.2', { vrid: 8 }));
  t.inject(advertFrom('10.0.0.2', { version: 2, interval: 1, authType: 0, authData: Buffer.alloc(8) }));
  const bad = advertFrom('10.0.0.2');
  bad.payload[2] = 1; // priority changed, checksum now wrong
  t.inject(bad);
  t.inject(advertFrom('10.0.0.1'));
  const text = await metrics.metrics();
  for (const reason of ['truncated', 'ttl', 'unknown-vrid', 'version', 'bad-checksum', 'own-packet'])
    assert.match(text, new RegExp(`fulcrum_vrrp_drops_total\\{interface="eth0",reason="${reason}"\\} 1`), reason);
  assert.match(text, /fulcrum_vrrp_adverts_received_total\{instance="vi1"\} 0/);
  await settle(manager.close());
});

test('manager: v2 with a password sends it and drops adverts with another one', async () => {
  const { manager, transports, metrics, step, flush, settle } = await setup();
  await manager.update(parse([base({ version: 2, auth: { type: 'pass', password: 'secret12' } })]));
  await flush();
  const t = transports[0]!;
  t.inject({ src: '10.0.0.2', dst: '224.0.0.18', ttl: 255, payload: encodeAdvert({ version: 2, vrid: 7, priority: 200, interval: 1, family: 'inet', addresses: ['10.0.0.100'], authType: 1, authData: passwordAuthData('wrong') }) });
  await step(4000);
  assert.equal(manager.status()[0]!.state, 'master', 'the wrong-password advert did not count');
  const sent = t.sent.at(-1)!.advert;
  assert.equal(sent.version, 2);
  assert.equal(sent.authType, 1);
  assert.deepEqual(sent.authData, passwordAuthData('secret12'));
  assert.match(await metrics.metrics(), /reason="auth-password"\} 1/);
  await settle(manager.close());
});

test('manager: unicast peers get the adverts instead of the group, others are dropped', async () => {
  const { manager, transports, metrics, step, flush, settle } = await setup();
  await manager.update(parse([base({ unicast: { peers: ['10.0.0.2', '10.0.0.3'] } })]));
  await flush();
  const t = transports[0]!;
  t.inject(advertFrom('10.0.0.9'));
  await step(4000);
  assert.deepEqual(t.sent.slice(0, 2).map((s) => s.dst), ['10.0.0.2', '10.0.0.3']);
  assert.match(await metrics.metrics(), /reason="not-from-peer"\} 1/);
  await settle(manager.close());
});

test('manager: tracked interface down without weight forces fault (VIP removed), back up recovers', async () => {
  const { manager, host, transports, seen, step, flush, settle } = await setup();
  await manager.update(parse([base({ track: { interfaces: [{ interface: 'eth1' }] } })]));
  await flush();
  await step(4000);
  assert.equal(manager.status()[0]!.state, 'master');
  host.links_[1]!.up = false;
  await step(250);
  assert.equal(manager.status()[0]!.state, 'fault');
  assert.match(manager.status()[0]!.fault ?? '', /eth1 is down/);
  assert.deepEqual([...host.vips], []);
  assert.equal(transports[0]!.sent.at(-1)!.advert.priority, 0, 'a master entering fault sends priority 0');
  host.links_[1]!.up = true;
  await step(250);
  assert.equal(manager.status()[0]!.state, 'backup');
  assert.ok(seen.some((e) => e.type === 'vrrp-transition' && (e.data as { to: string }).to === 'fault'));
  await settle(manager.close());
});

test('manager: weights: a tracked service below quorum and a failing script lower the priority', async () => {
  const { manager, transports, step, flush, settle } = await setup();
  await manager.update(parse([base({ track: { services: [{ service: 'web', weight: -30 }], scripts: [{ name: 'chk', argv: ['false'], interval: 1, weight: -20 }] } })]));
  await flush();
  await new Promise((r) => setTimeout(r, 200)); // the script (a real process) runs once
  await flush();
  assert.equal(manager.status()[0]!.priority, 130);
  manager.setServiceHealth('web', false);
  assert.equal(manager.status()[0]!.priority, 100);
  manager.setServiceHealth('web', true);
  assert.equal(manager.status()[0]!.priority, 130);
  await step(4000);
  assert.equal(transports[0]!.sent[0]!.advert.priority, 130, 'the advert carries the tracked priority');
  await settle(manager.close());
});

test('manager: sync group members follow each other into master and fault', async () => {
  const { manager, host, transports, step, flush, settle } = await setup();
  await manager.update(parse([
    base({ name: 'a', syncGroup: 'g', priority: 150 }),
    base({ name: 'b', interface: 'eth1', vrid: 8, vips: ['10.1.0.100'], syncGroup: 'g', priority: 100 }),
  ]));
  await flush();
  await step(3300); // a's master down (3 s + 414 ms skew) not yet... 
  await step(200);
  const states = Object.fromEntries(manager.status().map((s) => [s.name, s.state]));
  assert.deepEqual(states, { a: 'master', b: 'master' }, 'b followed a before its own timer');
  assert.equal(host.vips.size, 2);
  host.links_[1]!.up = false; // b's own interface
  await step(250);
  assert.deepEqual(Object.fromEntries(manager.status().map((s) => [s.name, s.state])), { a: 'fault', b: 'fault' });
  assert.equal(host.vips.size, 0);
  assert.ok(transports.length === 2);
  await settle(manager.close());
});

test('manager: update restarts changed instances and stops removed ones', async () => {
  const { manager, host, step, flush, settle } = await setup();
  await manager.update(parse([base()]));
  await step(4000);
  assert.deepEqual([...host.vips], ['2:10.0.0.100']);
  await settle(manager.update(parse([base({ vips: ['10.0.0.101'] })])));
  await flush();
  assert.deepEqual([...host.vips], [], 'the old VIP went with the old instance');
  await step(4000);
  assert.deepEqual([...host.vips], ['2:10.0.0.101']);
  await settle(manager.update([]));
  await flush();
  assert.deepEqual(manager.status(), []);
  assert.deepEqual([...host.vips], []);
  await settle(manager.close());
});

test('manager: split brain is detected and published', async () => {
  const { manager, transports, seen, step, flush, settle } = await setup();
  await manager.update(parse([base()]));
  await flush();
  await step(4000);
  transports[0]!.inject(advertFrom('10.0.0.2', { priority: 100 }));
  await flush();
  const e = seen.find((x) => x.type === 'vrrp-split-brain');
  assert.ok(e);
  assert.equal((e.data as { weWin: boolean }).weWin, true);
  assert.equal(manager.status()[0]!.state, 'master');
  await settle(manager.close());
});

test('manager: IPv6 instance uses the link-local source, ff02::12 and unsolicited NAs', async () => {
  const { manager, host, transports, step, flush, settle } = await setup();
  await manager.update(parse([base({ vips: ['2001:db8::100/64'] })]));
  await flush();
  await step(4000);
  const t = transports[0]!;
  assert.equal(t.opts.family, 'inet6');
  assert.equal(t.sent[0]!.src, 'fe80::1');
  assert.equal(t.sent[0]!.dst, 'ff02::12');
  const na = host.frames[0]!.frame;
  assert.equal(na.readUInt16BE(12), 0x86dd);
  assert.equal(na[14 + 40], 136, 'ICMPv6 neighbour advertisement');
  await settle(manager.close());
});

test('manager: a stopping master keeps its VIPs until the successor advertises (make before break)', async () => {
  const { manager, host, transports, step, flush } = await setup();
  await manager.update(parse([base()]));
  await flush();
  await step(4000);
  assert.equal(manager.status()[0]!.state, 'master');
  const closing = manager.close();
  await flush();
  const t = transports[0]!;
  assert.equal(t.sent.at(-1)!.advert.priority, 0, 'priority 0 sent at once');
  await step(300);
  assert.deepEqual([...host.vips], ['2:10.0.0.100'], 'still serving while the backup waits Skew_Time');
  t.inject(advertFrom('10.0.0.2', { priority: 100 }));
  await flush();
  await closing;
  assert.deepEqual([...host.vips], [], 'removed as soon as the successor advertised');
});

test('manager: a stopping master with no successor removes its VIPs after 4 advert intervals', async () => {
  const { manager, host, step, flush } = await setup();
  await manager.update(parse([base({ advertInterval: 0.5 })]));
  await flush();
  await step(2500);
  assert.equal(manager.status()[0]!.state, 'master');
  let closed = false;
  const closing = manager.close().then(() => { closed = true; });
  await flush();
  await step(1900);
  assert.equal(closed, false);
  assert.equal(host.vips.size, 1);
  await step(200);
  await closing;
  assert.equal(host.vips.size, 0);
});

test('manager: a missing interface is a fault that clears when the link appears; kernel errors never reject update()', async () => {
  const { manager, host, seen, step, flush, settle } = await setup();
  await manager.update(parse([base({ interface: 'eth9' })]));
  assert.equal(manager.status()[0]!.state, 'fault');
  assert.match(manager.status()[0]!.fault ?? '', /interface eth9 not found/);
  host.links_.push({ index: 9, name: 'eth9', mac: '02:00:00:00:00:09', up: true });
  await step(250);
  await flush();
  assert.equal(manager.status()[0]!.state, 'backup');
  await settle(manager.close());

  const broken = await setup();
  broken.host.addresses = async () => { throw new Error('netlink: EPERM'); };
  await broken.manager.update(parse([base()]));
  assert.ok(broken.seen.some((e) => e.type === 'vrrp-error' && /EPERM/.test(e.message)));
  await broken.settle(broken.manager.close());
  assert.ok(seen.length > 0);
});

test('manager: a re-created interface (new ifindex) restarts the instance on a new socket', async () => {
  const { manager, host, transports, step, flush, settle } = await setup();
  await manager.update(parse([base()]));
  await flush();
  await step(4000);
  assert.equal(manager.status()[0]!.state, 'master');
  host.links_[0] = { ...host.links_[0]!, index: 12 };
  await step(250);
  await step(100); // no handover wait: the old link is gone
  assert.equal(transports.length, 2, 'a second socket for the new link');
  assert.ok(transports[0]!.closed);
  assert.equal(transports[1]!.opts.ifindex, 12);
  await step(4000);
  assert.equal(manager.status()[0]!.state, 'master');
  assert.deepEqual([...host.vips], ['12:10.0.0.100'], 'the VIP on the new link, none left on the old index');
  await settle(manager.close());
});

test('manager: maintenance hands a master over (priority 0, VIPs kept until the successor speaks), stays backup, and is kept across a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-vrrp-maint-'));
  try {
    const file = join(dir, 'vrrp-maintenance.json');
    const { manager: m1, newManager, host, transports, step, flush, settle } = await setup({ maintenanceFile: file });
    await m1.update(parse([base()]));
    await flush();
    await step(4000);
    assert.equal(m1.status()[0]!.state, 'master');
    const t = transports.at(-1)!;
    const dry = m1.setMaintenance(true, { dryRun: true });
    assert.deepEqual(dry, { changed: true, instances: [{ name: 'vi1', state: 'master', maintenance: true }] }, 'a dry run says what would change');
    assert.equal(m1.status()[0]!.maintenance, false, 'and changes nothing');
    const r = m1.setMaintenance(true);
    assert.equal(r.changed, true);
    await flush();
    assert.equal(t.sent.at(-1)!.advert.priority, 0, 'priority 0 at once');
    assert.equal(m1.status()[0]!.state, 'backup');
    assert.deepEqual([...host.vips], ['2:10.0.0.100'], 'the VIP stays until the successor advertises');
    t.inject(advertFrom('10.0.0.2', { priority: 100 }));
    await flush();
    assert.deepEqual([...host.vips], [], 'handed over');
    await step(20_000);
    assert.equal(m1.status()[0]!.state, 'backup', 'no takeover while the peer is silent: maintenance holds');
    assert.equal(m1.setMaintenance(true).changed, false, 'idempotent');
    await settle(m1.close());

    // A restart (a rolling upgrade) keeps maintenance: the new process never takes the VIPs.
    const m2 = newManager();
    await m2.update(parse([base()]));
    await flush();
    await step(20_000);
    assert.deepEqual(m2.status().map((s) => [s.state, s.maintenance]), [['backup', true]]);
    assert.equal(host.vips.size, 0);
    assert.equal(m2.setMaintenance(false).changed, true);
    await step(4000);
    assert.equal(m2.status()[0]!.state, 'master', 'ended: the election runs again and it takes over');
    await settle(m2.close());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
