import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { netnsSkipReason } from '../helpers/netns.js';
import { Lan } from '../helpers/lan.js';
import {
  holdsVip, keepalivedSkipReason, neighbourMac, Pinger, startRouter, unplug, waitFor, type Router, type RouterSpec,
} from '../helpers/vrrp-peers.js';
import { timers } from '../../src/vrrp/machine.js';

/**
 * VRRP interop on the host kernel: Fulcrum (`fulcrum vrrp run`) and keepalived (Debian package)
 * as the two routers of one L2 segment (a bridge in a 'switch' netns), and a third netns as the
 * client that pings the VIP every 10 ms and whose neighbour cache must follow the VIP.
 */

const skip = netnsSkipReason() ?? keepalivedSkipReason();
const MAC = { a: '02:00:5e:77:00:01', b: '02:00:5e:77:00:02', c: '02:00:5e:77:00:03' };
const VIP4 = '10.77.0.100';

interface Scene {
  lan: Lan;
  routers: Router[];
  pinger?: Pinger;
}

async function scene(t: TestContext, v6 = false): Promise<Scene> {
  const lan = await Lan.create();
  const s: Scene = { lan, routers: [] };
  t.after(async () => {
    await s.pinger?.stop();
    for (const r of s.routers) await r.kill().catch(() => undefined);
    await lan.delete();
  });
  const extra = (n: number) => (v6 ? [`2001:db8:77::${n}/64`] : []);
  await lan.addHost('a', MAC.a, ['10.77.0.1/24', ...extra(1)]);
  await lan.addHost('b', MAC.b, ['10.77.0.2/24', ...extra(2)]);
  await lan.addHost('c', MAC.c, ['10.77.0.3/24', ...extra(3)]);
  if (v6) await new Promise((r) => setTimeout(r, 2000)); // link-local addresses leave DAD
  return s;
}

function start(s: Scene, host: 'a' | 'b', kind: Router['kind'], spec: RouterSpec): Router {
  const r = startRouter(kind, s.lan.host(host), spec);
  s.routers.push(r);
  return r;
}

/** The bound for a backup to take over from a silent master: 3 x Advertisement_Interval + Skew_Time (RFC 5798 §6.1). */
function masterDownMs(spec: RouterSpec): number {
  return timers(spec.version, spec.priority, Math.round(spec.advertInterval * 100)).masterDownMs;
}

/** Slack for process scheduling, netlink and our 10 ms polling on a shared 2-core machine. */
const SLACK_MS = 500;

async function expectMaster(s: Scene, host: 'a' | 'b', vip: string, timeoutMs: number): Promise<void> {
  await waitFor(`${host} to hold ${vip}`, () => holdsVip(s.lan.host(host), vip), timeoutMs);
}

async function expectClientFollows(s: Scene, vip: string, mac: string): Promise<void> {
  const c = s.lan.host('c');
  await waitFor(`the client's neighbour entry for ${vip} to point at ${mac}`, async () => (await neighbourMac(c, vip)) === mac, 5000);
}

test('vrrp interop v3 IPv4: Fulcrum master, keepalived backup; the master dies, keepalived takes the VIP within 3 x advert + skew, ARP and pings follow', { skip }, async (t) => {
  const s = await scene(t);
  const fl: RouterSpec = { version: 3, vrid: 51, priority: 200, advertInterval: 1, vips: [VIP4] };
  const ka: RouterSpec = { ...fl, priority: 100 };
  const fulcrum = start(s, 'a', 'fulcrum', fl);
  start(s, 'b', 'keepalived', ka);
  await expectMaster(s, 'a', VIP4, 10_000);
  await waitFor('fulcrum status master', () => fulcrum.status()?.[0]?.state === 'master', 5000);
  // keepalived may have been master for an instant during start-up; it must settle as backup.
  await waitFor('keepalived to drop the VIP', async () => !(await holdsVip(s.lan.host('b'), VIP4)), 5000);
  s.pinger = new Pinger(s.lan.host('c'), VIP4, 60);
  await waitFor('client replies', () => s.pinger!.replies.length > 5, 5000);
  await expectClientFollows(s, VIP4, MAC.a);

  // The node dies: no priority 0, and it is gone from the segment.
  const t0 = Date.now();
  await unplug(s.lan.host('a'));
  await fulcrum.kill();
  await expectMaster(s, 'b', VIP4, 10_000);
  const took = Date.now() - t0;
  const bound = masterDownMs(ka);
  t.diagnostic(`keepalived took the VIP ${took} ms after the master died (bound ${bound.toFixed(0)} ms)`);
  assert.ok(took <= bound + SLACK_MS, `took ${took} ms, RFC bound ${bound} ms`);
  await expectClientFollows(s, VIP4, MAC.b);
  const after = Date.now();
  await waitFor('the client to get replies from the new master', () => s.pinger!.repliesAfter(after) > 3, 5000);
});

test('vrrp interop v3 IPv4: keepalived master, Fulcrum backup; keepalived stops (priority 0), Fulcrum takes over at once', { skip }, async (t) => {
  const s = await scene(t);
  const ka: RouterSpec = { version: 3, vrid: 52, priority: 200, advertInterval: 1, vips: [VIP4] };
  const fl: RouterSpec = { ...ka, priority: 100 };
  const keepalived = start(s, 'a', 'keepalived', ka);
  await expectMaster(s, 'a', VIP4, 10_000);
  const fulcrum = start(s, 'b', 'fulcrum', fl);
  await waitFor('fulcrum to follow keepalived as backup', () => {
    const st = fulcrum.status()?.[0];
    return st?.state === 'backup' && st.masterAddress === '10.77.0.1';
  }, 10_000);
  assert.equal(await holdsVip(s.lan.host('b'), VIP4), false);
  s.pinger = new Pinger(s.lan.host('c'), VIP4, 60);
  await waitFor('client replies', () => s.pinger!.replies.length > 5, 5000);
  await expectClientFollows(s, VIP4, MAC.a);

  const t0 = Date.now();
  await keepalived.stop();
  await expectMaster(s, 'b', VIP4, 10_000);
  const took = Date.now() - t0;
  t.diagnostic(`Fulcrum took the VIP ${took} ms after keepalived was told to stop (Skew_Time ${timers(3, 100, 100).skewMs.toFixed(0)} ms)`);
  assert.ok(took <= masterDownMs(fl) + SLACK_MS);
  assert.equal(await holdsVip(s.lan.host('a'), VIP4), false, 'keepalived removed its VIP');
  await expectClientFollows(s, VIP4, MAC.b);
  const after = Date.now();
  await waitFor('the client to get replies from Fulcrum', () => s.pinger!.repliesAfter(after) > 3, 5000);
  assert.match(fulcrum.output(), /"reason":"master sent priority 0"/);
});

test('vrrp interop v2 with a password: Fulcrum follows keepalived, keepalived follows Fulcrum', { skip }, async (t) => {
  const s = await scene(t);
  const ka: RouterSpec = { version: 2, vrid: 53, priority: 200, advertInterval: 1, vips: [VIP4], password: 'secret12' };
  const keepalived = start(s, 'a', 'keepalived', ka);
  await expectMaster(s, 'a', VIP4, 10_000);
  const fulcrum = start(s, 'b', 'fulcrum', { ...ka, priority: 150 });
  await waitFor('fulcrum backup of keepalived', () => fulcrum.status()?.[0]?.masterAddress === '10.77.0.1', 10_000);
  await keepalived.stop();
  await expectMaster(s, 'b', VIP4, 5000);
  await expectClientFollows(s, VIP4, MAC.b).catch(async () => {
    // No traffic yet from the client: its cache has no entry to update. Ping once, then look.
    await s.lan.host('c').exec('ping', ['-c', '1', '-W', '1', VIP4], { allowFail: true });
    await expectClientFollows(s, VIP4, MAC.b);
  });
  // keepalived comes back lower: it must accept Fulcrum's v2 adverts (auth, checksum) and stay backup.
  const back = start(s, 'a', 'keepalived', { ...ka, priority: 100 });
  await waitFor('keepalived to enter backup', () => /Entering BACKUP STATE/.test(back.output()), 10_000);
  await new Promise((r) => setTimeout(r, 4500)); // longer than its Master_Down_Interval (3.6 s)
  assert.equal(await holdsVip(s.lan.host('a'), VIP4), false, 'keepalived stayed backup');
  assert.doesNotMatch(back.output(), /Entering MASTER STATE/);
  assert.equal(fulcrum.status()?.[0]?.state, 'master');
});

test('vrrp interop: a higher-priority Fulcrum preempts keepalived; a higher-priority keepalived preempts Fulcrum', { skip }, async (t) => {
  const s = await scene(t);
  const base: RouterSpec = { version: 3, vrid: 54, priority: 100, advertInterval: 0.2, vips: [VIP4] };
  const keepalived = start(s, 'a', 'keepalived', base);
  await expectMaster(s, 'a', VIP4, 5000);
  const fulcrum = start(s, 'b', 'fulcrum', { ...base, priority: 200 });
  await expectMaster(s, 'b', VIP4, 5000);
  await waitFor('keepalived to yield', async () => !(await holdsVip(s.lan.host('a'), VIP4)), 3000);
  assert.match(keepalived.output(), /higher priority 200/);
  await keepalived.stop();
  // Now keepalived at 250 against Fulcrum at 200.
  start(s, 'a', 'keepalived', { ...base, priority: 250 });
  await expectMaster(s, 'a', VIP4, 5000);
  await waitFor('fulcrum to yield', async () => fulcrum.status()?.[0]?.state === 'backup' && !(await holdsVip(s.lan.host('b'), VIP4)), 3000);
  assert.equal(fulcrum.status()?.[0]?.masterAddress, '10.77.0.1');
});

test('vrrp interop: nopreempt holds a higher-priority Fulcrum backup until keepalived goes', { skip }, async (t) => {
  const s = await scene(t);
  const base: RouterSpec = { version: 3, vrid: 55, priority: 100, advertInterval: 0.2, vips: [VIP4] };
  const keepalived = start(s, 'a', 'keepalived', base);
  await expectMaster(s, 'a', VIP4, 5000);
  const fulcrum = start(s, 'b', 'fulcrum', { ...base, priority: 200, preempt: false });
  await waitFor('fulcrum backup', () => fulcrum.status()?.[0]?.state === 'backup', 5000);
  await new Promise((r) => setTimeout(r, 3000)); // 15 advert intervals, 4x its Master_Down_Interval
  assert.equal(fulcrum.status()?.[0]?.state, 'backup');
  assert.equal(await holdsVip(s.lan.host('a'), VIP4), true, 'keepalived still master');
  await keepalived.stop();
  await expectMaster(s, 'b', VIP4, 3000);
});

test('vrrp interop v3 IPv6: Fulcrum master, keepalived backup; Fulcrum stops and the VIP and neighbour cache move', { skip }, async (t) => {
  const s = await scene(t, true);
  const VIP6 = '2001:db8:77::100';
  const fl: RouterSpec = { version: 3, vrid: 56, priority: 200, advertInterval: 0.5, vips: [`${VIP6}/64`], ipv6: true };
  const fulcrum = start(s, 'a', 'fulcrum', fl);
  start(s, 'b', 'keepalived', { ...fl, priority: 100 });
  await expectMaster(s, 'a', VIP6, 10_000);
  await waitFor('keepalived to stay backup', async () => !(await holdsVip(s.lan.host('b'), VIP6)), 5000);
  const c = s.lan.host('c');
  await c.exec('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '1', VIP6]);
  assert.equal(await neighbourMac(c, VIP6), MAC.a);
  await fulcrum.stop();
  await expectMaster(s, 'b', VIP6, 5000);
  assert.equal(await holdsVip(s.lan.host('a'), VIP6), false, 'Fulcrum removed its VIP on stop');
  await expectClientFollows(s, VIP6, MAC.b);
  await c.exec('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '1', VIP6]);
});
