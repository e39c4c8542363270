/**
 * Time from a VIP added through the API until the router has a route to it (and from its delete
 * until the route is gone), through the `bgp` tier's lab: three real agents each driving its own
 * BIRD 2, a BIRD router with ECMP (test/helpers/bgp-lab.ts). The baseline, in the same run, is the
 * API call itself: it returns once the XDP dataplane holds the service and the store has it, so
 * "route / api" is what announcing over BGP adds (decide, include, `configure check`, `configure`,
 * an UPDATE, the router's kernel route).
 *
 * Usage (root, after `npm run build`): node dist/scripts/bench/bgp-announce.js [--rounds 10]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { birdSkipReason, createBgpLab, lbAddr, nextHops, PORT, startAgent, webService, type LbNode } from '../../test/helpers/bgp-lab.js';
import { waitFor } from '../../test/helpers/vrrp-peers.js';
import { xdpSkipReason } from '../../test/helpers/xdp.js';
import { cleanupOnInterrupt } from './interrupt-cleanup.js';
import { stats, type Stats } from './xdp-lib.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const ROUNDS = Number(arg('rounds', '10'));

const fmt = (x: Stats) => `${x.min.toFixed(0)}/${x.median.toFixed(0)}/${x.max.toFixed(0)}`;

async function api(n: LbNode, method: 'PUT' | 'DELETE', name: string, body?: unknown): Promise<void> {
  const token = readFileSync(join(n.stateDir, 'admin.token'), 'utf8').trim();
  await n.ns.exec('curl', ['-sf', '-X', method, '-H', `Authorization: Bearer ${token}`,
    ...(body === undefined ? [] : ['-H', 'content-type: application/json', '--data', JSON.stringify(body)]), `${n.agent!.server}/v1/services/${name}`]);
}

async function main(): Promise<void> {
  const skip = xdpSkipReason() ?? birdSkipReason();
  if (skip) { console.log(`bgp-announce: skipped: ${skip}`); return; }
  const lab = await createBgpLab();
  const cleanup = cleanupOnInterrupt(async () => {
    for (const n of lab.lbs) await n.agent?.stop().catch(() => undefined);
    await lab.delete();
  });
  try {
    await Promise.all(lab.lbs.map((n) => startAgent(n)));
    await waitFor('three next hops', async () => (await nextHops(lab.router)).length === 3, 60_000, 100);
    const n = lab.lbs[0]!;
    const apiMs: number[] = [], routeMs: number[] = [], goneMs: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      const vip = `10.80.1.${i}`;
      const name = `bench${i}`;
      // No health check: the service is healthy as soon as it is programmed.
      const t0 = performance.now();
      await api(n, 'PUT', name, { ...webService({ name, address: vip }), health: undefined, port: PORT });
      const t1 = performance.now();
      await waitFor(`route to ${vip}`, async () => (await nextHops(lab.router, vip)).includes(lbAddr(1)), 30_000, 5);
      const t2 = performance.now();
      await api(n, 'DELETE', name);
      await waitFor(`${vip} withdrawn`, async () => (await nextHops(lab.router, vip)).length === 0, 30_000, 5);
      const t3 = performance.now();
      apiMs.push(t1 - t0); routeMs.push(t2 - t0); goneMs.push(t3 - t2);
      console.log(`  #${i}: api ${(t1 - t0).toFixed(0)} ms, route on the router ${(t2 - t0).toFixed(0)} ms, gone ${(t3 - t2).toFixed(0)} ms after the delete`);
    }
    const a = stats(apiMs), r = stats(routeMs), g = stats(goneMs);
    console.log(`\nms (min/median/max) over ${ROUNDS} VIPs: api (baseline: programmed and stored) ${fmt(a)}; route on the router ${fmt(r)}; withdrawn after a delete ${fmt(g)}`);
    console.log(`ratio (median) route/api ${(r.median / a.median).toFixed(2)}`);
  } finally {
    await cleanup();
  }
}

void main();
