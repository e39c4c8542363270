import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { xdpSkipReason } from '../helpers/xdp.js';
import { ECHO } from '../helpers/xdp-agent-lab.js';
import { waitFor } from '../helpers/vrrp-peers.js';
import { birdSkipReason, blackhole, connectionsOf, createBgpLab, frrSkipReason, Held, lbAddr, LBS, nextHops, PORT, startAgent, VIP, type BgpLab } from '../helpers/bgp-lab.js';

/**
 * Interop: the same three agents (each driving its own BIRD 2) with FRR 8 as the router (bgpd with
 * maximum-paths, bfdd, zebra installing the ECMP route) instead of BIRD.
 */

const skip = xdpSkipReason() ?? birdSkipReason() ?? frrSkipReason();
let lab: BgpLab;
const ALL = LBS.map(lbAddr).sort();

before(async () => {
  if (skip) return;
  lab = await createBgpLab({ router: 'frr' });
  await Promise.all(lab.lbs.map((n) => startAgent(n)));
  await waitFor('three next hops for the VIP from FRR', async () => (await nextHops(lab.router)).length === 3, 60_000, 100);
}, { timeout: 180_000 });

after(async () => {
  if (skip || !lab) return;
  for (const n of lab.lbs) await n.agent?.stop().catch(() => undefined);
  await lab.delete();
});

const vtysh = async (cmd: string) => (await lab.router.exec('vtysh', ['--vty_socket', join(lab.dir, 'frr'), '-c', cmd])).stdout;

test('FRR router: one route with three next hops, three BGP sessions with BFD up, flows spread over the three nodes', { skip }, async () => {
  assert.deepEqual(await nextHops(lab.router), ALL);
  // bfdd brings a session up after the BGP session that asked for it.
  await waitFor('FRR: BFD up to the three nodes', async () => {
    const bfd = await vtysh('show bfd peers brief');
    return ALL.every((a) => new RegExp(`${a.replace(/\./g, '\\.')}\\s+up`).test(bfd));
  }, 15_000, 200);
  const before = await Promise.all(lab.lbs.map(connectionsOf));
  const r = await lab.client.exec(process.execPath, [ECHO, 'tcp', VIP, String(PORT), '96'], { timeoutMs: 120_000 });
  const ids = (JSON.parse(r.stdout) as { ids: string[] }).ids;
  const per = (await Promise.all(lab.lbs.map(connectionsOf))).map((c, k) => c - before[k]!);
  console.log(`# FRR router: flows per LB node ${per.map((c, k) => `lb${k + 1}=${c}`).join(' ')}`);
  assert.deepEqual(ids.filter((x) => !/^b[123]$/.test(x)), []);
  for (const [k, c] of per.entries()) assert.ok(c > 0, `lb${k + 1} carried no flow`);
});

test('FRR router: a blackholed node is removed by BFD, held dr connections go on, and it comes back', { skip }, async () => {
  const { held, first } = await Held.open(lab.client, 48);
  const t0 = Date.now();
  await blackhole(lab, 2, true);
  const hops = await waitFor('lb2 gone from the route', async () => { const h = await nextHops(lab.router); return h.includes(lbAddr(2)) ? undefined : h; }, 10_000, 10);
  console.log(`# FRR router: blackholed lb2 dropped from the route after ${Date.now() - t0} ms (BFD 100 ms x 3)`);
  assert.deepEqual(hops, [lbAddr(1), lbAddr(3)]);
  assert.deepEqual(await held.again(), first);
  held.quit();
  const t1 = Date.now();
  await blackhole(lab, 2, false);
  await waitFor('lb2 back', async () => (await nextHops(lab.router)).length === 3, 60_000, 50);
  console.log(`# FRR router: lb2 back in the route ${Date.now() - t1} ms after the blackhole ended`);
});
