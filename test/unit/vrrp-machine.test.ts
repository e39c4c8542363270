import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkReceived, timers, VrrpMachine, type MachineConfig, type SplitBrainInfo, type TransitionInfo } from '../../src/vrrp/machine.js';
import type { VrrpAdvert } from '../../src/vrrp/codec.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** A LAN of machines on one fake clock; an advert reaches the others 1 ms after it is sent. */
class Lan {
  readonly clock = new FakeClock();
  readonly nodes = new Map<string, { m: VrrpMachine; sent: number[]; transitions: TransitionInfo[]; splits: SplitBrainInfo[]; up: boolean }>();

  add(address: string, cfg: Partial<MachineConfig>): VrrpMachine {
    const full: MachineConfig = { version: 3, vrid: 1, priority: 100, advertIntervalCs: 100, preempt: true, preemptDelayMs: 0, primaryAddress: address, ...cfg };
    const node = { m: undefined as unknown as VrrpMachine, sent: [] as number[], transitions: [] as TransitionInfo[], splits: [] as SplitBrainInfo[], up: true };
    node.m = new VrrpMachine(full, this.clock, {
      sendAdvert: (priority) => {
        node.sent.push(priority);
        if (!node.up) return;
        for (const [addr, other] of this.nodes) {
          if (addr === address || !other.up) continue;
          this.clock.setTimer(() => other.m.receive({ priority, interval: full.advertIntervalCs / (full.version === 2 ? 100 : 1) }, address), 1);
        }
      },
      transition: (t) => node.transitions.push(t),
      splitBrain: (s) => node.splits.push(s),
    });
    this.nodes.set(address, node);
    return node.m;
  }

  node(address: string) {
    return this.nodes.get(address)!;
  }

  /** The node vanishes from the wire (power cut: no priority 0). */
  crash(address: string): void {
    this.node(address).up = false;
    this.node(address).m.stop();
  }
}

const down = (prio: number, cs = 100, v: 2 | 3 = 3) => timers(v, prio, cs).masterDownMs;

test('machine: RFC 5798 timers (Skew_Time, Master_Down_Interval) for v3 and v2', () => {
  assert.deepEqual(timers(3, 100, 100), { skewMs: (156 * 1000) / 256, masterDownMs: 3000 + (156 * 1000) / 256 });
  assert.deepEqual(timers(3, 255, 1), { skewMs: 10 / 256, masterDownMs: 30 + 10 / 256 });
  assert.deepEqual(timers(2, 100, 100), { skewMs: (156 * 1000) / 256, masterDownMs: 3000 + (156 * 1000) / 256 });
  assert.deepEqual(timers(2, 200, 300), { skewMs: (56 * 1000) / 256, masterDownMs: 9000 + (56 * 1000) / 256 });
});

test('machine: election: the higher priority becomes master after its Master_Down_Interval, the other stays backup', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 200 });
  const b = lan.add('10.0.0.2', { priority: 100 });
  a.start(); b.start();
  assert.equal(a.state, 'backup');
  lan.clock.advance(Math.floor(down(200)));
  assert.equal(a.state, 'backup', 'not before Master_Down_Interval');
  lan.clock.advance(1);
  assert.equal(a.state, 'master');
  lan.clock.advance(20_000);
  assert.equal(a.state, 'master');
  assert.equal(b.state, 'backup');
  assert.equal(b.masterAddress, '10.0.0.1');
  assert.equal(a.masterAddress, '10.0.0.1');
  assert.ok(lan.node('10.0.0.1').sent.length >= 20, 'the master advertises every second');
});

test('machine: priority 255 (owner) is master at once on startup', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 255 });
  a.start();
  assert.equal(a.state, 'master');
  assert.deepEqual(lan.node('10.0.0.1').sent, [255]);
  assert.deepEqual(lan.node('10.0.0.1').transitions, [{ from: 'init', to: 'master', reason: 'owner (priority 255)' }]);
});

test('machine: a higher priority router preempts a running master (preempt on by default)', () => {
  const lan = new Lan();
  const low = lan.add('10.0.0.2', { priority: 100 });
  low.start();
  lan.clock.advance(5000);
  assert.equal(low.state, 'master');
  const high = lan.add('10.0.0.1', { priority: 200 });
  high.start();
  lan.clock.advance(down(200) + 100);
  assert.equal(high.state, 'master');
  assert.equal(low.state, 'backup');
  assert.equal(low.masterAddress, '10.0.0.1');
  assert.deepEqual(lan.node('10.0.0.2').splits[0], { peer: '10.0.0.1', peerPriority: 200, ourPriority: 100, weWin: false });
});

test('machine: nopreempt holds: a higher priority backup does not take over a live master', () => {
  const lan = new Lan();
  const low = lan.add('10.0.0.2', { priority: 100 });
  low.start();
  lan.clock.advance(5000);
  const high = lan.add('10.0.0.1', { priority: 200, preempt: false });
  high.start();
  lan.clock.advance(60_000);
  assert.equal(high.state, 'backup');
  assert.equal(low.state, 'master');
  // ... but it takes over when the master dies.
  lan.crash('10.0.0.2');
  lan.clock.advance(down(200) + 10);
  assert.equal(high.state, 'master');
});

test('machine: preemptDelay postpones preemption after startup', () => {
  const lan = new Lan();
  const low = lan.add('10.0.0.2', { priority: 100 });
  low.start();
  lan.clock.advance(5000);
  const high = lan.add('10.0.0.1', { priority: 200, preemptDelayMs: 10_000 });
  high.start();
  lan.clock.advance(9_000);
  assert.equal(high.state, 'backup', 'still holding');
  lan.clock.advance(1_000 + down(200) + 100);
  assert.equal(high.state, 'master', 'preempted once the delay ran out');
  assert.equal(low.state, 'backup');
});

test('machine: priority 0 on shutdown hands over after Skew_Time, not Master_Down_Interval', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 200 });
  const b = lan.add('10.0.0.2', { priority: 100 });
  a.start(); b.start();
  lan.clock.advance(10_000);
  assert.equal(a.state, 'master');
  a.stop();
  assert.equal(lan.node('10.0.0.1').sent.at(-1), 0, 'the last advert carries priority 0');
  assert.equal(a.state, 'init');
  const skew = timers(3, 100, 100).skewMs; // 609 ms
  lan.clock.advance(1 + Math.floor(skew) - 1);
  assert.equal(b.state, 'backup');
  lan.clock.advance(2);
  assert.equal(b.state, 'master');
});

test('machine: a master that dies silently is replaced after Master_Down_Interval', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 200 });
  const b = lan.add('10.0.0.2', { priority: 100 });
  a.start(); b.start();
  lan.clock.advance(10_000);
  const lastAdvert = Math.floor(lan.clock.now() / 1000) * 1000; // adverts every 1 s from ~3219 ms
  lan.crash('10.0.0.1');
  lan.clock.advance(down(100) + 1000);
  assert.equal(b.state, 'master');
  const became = lan.node('10.0.0.2').transitions.find((t) => t.to === 'master');
  assert.equal(became?.reason, 'master down timer expired');
  assert.ok(lastAdvert > 0);
});

test('machine: equal priority: the higher primary address wins (§6.4.3 tie-break)', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.9', { priority: 100 });
  const b = lan.add('10.0.0.10', { priority: 100 });
  // Both become master alone (split brain), then they hear each other.
  lan.node('10.0.0.9').up = false; lan.node('10.0.0.10').up = false;
  a.start(); b.start();
  lan.clock.advance(5000);
  assert.equal(a.state, 'master'); assert.equal(b.state, 'master');
  lan.node('10.0.0.9').up = true; lan.node('10.0.0.10').up = true;
  lan.clock.advance(3000);
  assert.equal(b.state, 'master', '10.0.0.10 > 10.0.0.9 numerically (not as text)');
  assert.equal(a.state, 'backup');
  assert.ok(lan.node('10.0.0.10').splits.some((s) => s.weWin && s.peer === '10.0.0.9'), 'the winner saw the split brain');
  assert.ok(lan.node('10.0.0.9').splits.some((s) => !s.weWin));
});

test('machine: 10 ms adverts in v3: master down after 30 ms + skew', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 200, advertIntervalCs: 1 });
  const b = lan.add('10.0.0.2', { priority: 100, advertIntervalCs: 1 });
  a.start(); b.start();
  lan.clock.advance(1000);
  assert.equal(a.state, 'master');
  const before = lan.node('10.0.0.1').sent.length;
  lan.clock.advance(100);
  assert.equal(lan.node('10.0.0.1').sent.length - before, 10, 'one advert per 10 ms');
  lan.crash('10.0.0.1');
  const t0 = lan.clock.now();
  lan.clock.advance(down(100, 1) + 1);
  assert.equal(b.state, 'master');
  const became = lan.node('10.0.0.2').transitions.find((t) => t.to === 'master')!;
  assert.ok(became);
  assert.ok(lan.clock.now() - t0 < 40, 'within 3 x 10 ms + skew (+ the 1 ms wire)');
});

test('machine: v3 backup learns the master\'s advert interval (Master_Adver_Interval)', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 200, advertIntervalCs: 50 });
  const b = lan.add('10.0.0.2', { priority: 100, advertIntervalCs: 100 });
  a.start(); b.start();
  lan.clock.advance(5000);
  assert.equal(b.masterAdvertIntervalCs, 50);
  lan.crash('10.0.0.1');
  lan.clock.advance(down(100, 50) + 2);
  assert.equal(b.state, 'master', 'master down computed from the learned 500 ms interval');
});

test('machine: tracking lowers the priority so a backup preempts; the owner is never tracked down', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 150 });
  const b = lan.add('10.0.0.2', { priority: 100 });
  a.start(); b.start();
  lan.clock.advance(5000);
  assert.equal(a.state, 'master');
  a.setPriority(150 - 60);
  lan.clock.advance(down(100) + 1100);
  assert.equal(b.state, 'master');
  assert.equal(a.state, 'backup');
  const owner = new VrrpMachine({ version: 3, vrid: 1, priority: 255, advertIntervalCs: 100, preempt: true, preemptDelayMs: 0, primaryAddress: '10.0.0.3' }, lan.clock, { sendAdvert() {}, transition() {} });
  owner.setPriority(100);
  assert.equal(owner.priority, 255);
});

test('machine: fault silences a master with priority 0 and recovery restarts as backup', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 200 });
  const b = lan.add('10.0.0.2', { priority: 100 });
  a.start(); b.start();
  lan.clock.advance(5000);
  a.setFault(true, 'eth0 down');
  assert.equal(a.state, 'fault');
  assert.equal(lan.node('10.0.0.1').sent.at(-1), 0);
  const sent = lan.node('10.0.0.1').sent.length;
  lan.clock.advance(5000);
  assert.equal(lan.node('10.0.0.1').sent.length, sent, 'silent in fault');
  assert.equal(b.state, 'master');
  a.setFault(false, 'eth0 up');
  assert.equal(a.state, 'backup');
  lan.clock.advance(down(200) + 100);
  assert.equal(a.state, 'master', 'and preempts again');
  assert.deepEqual(lan.node('10.0.0.1').transitions.map((t) => `${t.from}>${t.to}`), ['init>backup', 'backup>master', 'master>fault', 'fault>backup', 'backup>master']);
});

test('machine: v2 runs the same election with seconds-based timers', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { version: 2, priority: 200, advertIntervalCs: 100 });
  const b = lan.add('10.0.0.2', { version: 2, priority: 100, advertIntervalCs: 100 });
  a.start(); b.start();
  lan.clock.advance(Math.ceil(down(200, 100, 2)) + 1);
  assert.equal(a.state, 'master');
  a.stop();
  lan.clock.advance(Math.ceil(timers(2, 100, 100).skewMs) + 2);
  assert.equal(b.state, 'master');
});

test('machine: stop in backup sends nothing and is silent afterwards', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 100 });
  a.start();
  a.stop();
  lan.clock.advance(60_000);
  assert.deepEqual(lan.node('10.0.0.1').sent, []);
  assert.equal(a.state, 'init');
});

const advert = (over: Partial<VrrpAdvert>): VrrpAdvert => ({ version: 3, vrid: 1, priority: 100, interval: 100, family: 'inet', addresses: ['10.0.0.100'], ...over });
const cfg = { version: 3 as const, advertIntervalCs: 100, addresses: ['10.0.0.100'], authType: 0 as const, authData: Buffer.alloc(8), ownAddresses: ['10.0.0.1'] };

test('receive checks: TTL, version, own packets, peers, v2 auth and interval; v3 mismatches only warn', () => {
  assert.deepEqual(checkReceived(advert({}), 255, '10.0.0.2', cfg), { ok: true, warnings: [] });
  const reason = (r: ReturnType<typeof checkReceived>) => (r.ok ? 'ok' : r.reason);
  assert.equal(reason(checkReceived(advert({}), 254, '10.0.0.2', cfg)), 'ttl');
  assert.equal(reason(checkReceived(advert({}), 255, '10.0.0.1', cfg)), 'own-packet');
  assert.equal(reason(checkReceived(advert({ version: 2 }), 255, '10.0.0.2', cfg)), 'version');
  assert.equal(reason(checkReceived(advert({}), 255, '10.0.0.3', { ...cfg, peers: ['10.0.0.2'] })), 'not-from-peer');
  const v2 = { ...cfg, version: 2 as const, authType: 1 as const, authData: Buffer.from('secret12') };
  const a2 = (o: Partial<VrrpAdvert>) => advert({ version: 2, interval: 1, authType: 1, authData: Buffer.from('secret12'), ...o });
  assert.equal(reason(checkReceived(a2({}), 255, '10.0.0.2', v2)), 'ok');
  assert.equal(reason(checkReceived(a2({ authType: 0 }), 255, '10.0.0.2', v2)), 'auth-type');
  assert.equal(reason(checkReceived(a2({ authData: Buffer.from('secret13') }), 255, '10.0.0.2', v2)), 'auth-password');
  assert.equal(reason(checkReceived(a2({ interval: 2 }), 255, '10.0.0.2', v2)), 'interval-mismatch');
  const w = checkReceived(advert({ interval: 50, addresses: ['10.0.0.101'] }), 255, '10.0.0.2', cfg);
  assert.ok(w.ok && w.warnings.length === 2, 'interval and address list mismatch are logged, not dropped');
});

test('machine: maintenance hands over with priority 0 at once, stays backup (even past Master_Down and as owner), and ends with a new election', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 200 });
  const b = lan.add('10.0.0.2', { priority: 100 });
  a.start(); b.start();
  lan.clock.advance(10_000);
  assert.equal(a.state, 'master');
  a.setMaintenance(true);
  assert.equal(a.inMaintenance, true);
  assert.equal(lan.node('10.0.0.1').sent.at(-1), 0, 'the hand-over advert carries priority 0');
  assert.equal(a.state, 'backup');
  const skew = timers(3, 100, 100).skewMs;
  lan.clock.advance(2 + Math.ceil(skew));
  assert.equal(b.state, 'master', 'the peer takes over after Skew_Time, as on a planned stop');
  lan.clock.advance(3000);
  assert.equal(a.masterAddress, '10.0.0.2', 'the lower-priority master is known (it holds the VIPs for us)');
  // Without maintenance, a (priority 200, preempt) would take the VIPs back at the next advert.
  lan.crash('10.0.0.2');
  lan.clock.advance(10 * down(200));
  assert.equal(a.state, 'backup', 'in maintenance the router never takes over, even with no master');
  a.setMaintenance(false);
  lan.clock.advance(down(200) + 1);
  assert.equal(a.state, 'master', 'maintenance ended: the election runs again');
});

test('machine: a router started in maintenance (the owner too) stays backup; a sync-group push cannot make it master', () => {
  const lan = new Lan();
  const a = lan.add('10.0.0.1', { priority: 255 });
  a.setMaintenance(true);
  a.start();
  assert.equal(a.state, 'backup');
  a.forceMaster('sync group');
  lan.clock.advance(10_000);
  assert.equal(a.state, 'backup');
  assert.deepEqual(lan.node('10.0.0.1').sent, [], 'a router in maintenance sends nothing');
  a.setMaintenance(false);
  assert.equal(a.state, 'master', 'the owner takes over at once when maintenance ends');
});
