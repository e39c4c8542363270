/**
 * Client-seen outage when one of three active-active nodes is blackholed (ECMP + BFD 100 ms x 3,
 * the `bgp` tier's lab), against a VRRP pair of full agents whose master crashes, at 0.1 s adverts
 * (scripts/bench/vrrp-failover.ts, run as a child in the same run): median of the rounds.
 * ECMP: 48 TCP connections ask every 10 ms; a node's link drops everything (not a clean stop); the
 * outage of a round is the largest gap between two replies on any connection (those through the
 * dead node: BFD detection, then TCP's retransmission timer). Nodes are blackholed in turn.
 *
 * Usage (root, after `npm run build`): node dist/scripts/bench/bgp-outage.js [--rounds 10] [--no-vrrp]
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { birdSkipReason, blackhole, createBgpLab, lbAddr, LBS, nextHops, PORT, startAgent, VIP } from '../../test/helpers/bgp-lab.js';
import { waitFor } from '../../test/helpers/vrrp-peers.js';
import { xdpSkipReason } from '../../test/helpers/xdp.js';
import { cleanupOnInterrupt } from './interrupt-cleanup.js';
import { stats } from './xdp-lib.js';

const execFileP = promisify(execFile);
const ROUNDS = Number(process.argv[process.argv.indexOf('--rounds') + 1] ?? 10) || 10;
const PROBE = fileURLToPath(new URL('./bgp-probe.js', import.meta.url));
const VRRP = fileURLToPath(new URL('./vrrp-failover.js', import.meta.url));

const median = (xs: number[]) => stats(xs).median;
const mmm = (xs: number[]) => `${Math.min(...xs).toFixed(0)}/${median(xs).toFixed(0)}/${Math.max(...xs).toFixed(0)}`;

async function ecmp(): Promise<{ outages: number[]; detect: number[]; resets: number }> {
  const lab = await createBgpLab();
  const cleanup = cleanupOnInterrupt(async () => {
    for (const n of lab.lbs) await n.agent?.stop().catch(() => undefined);
    await lab.delete();
  });
  try {
    await Promise.all(lab.lbs.map((n) => startAgent(n)));
    const outages: number[] = [], detect: number[] = [];
    let resets = 0;
    for (let r = 0; r < ROUNDS; r++) {
      await waitFor('three next hops', async () => (await nextHops(lab.router)).length === 3, 60_000, 100);
      await new Promise((res) => setTimeout(res, 1500)); // BFD and the sessions settle
      const i = LBS[r % 3]!;
      const client = lab.client.exec(process.execPath, [PROBE, VIP, String(PORT), '48', '5'], { timeoutMs: 60_000 });
      await new Promise((res) => setTimeout(res, 1500));
      const t0 = Date.now();
      await blackhole(lab, i, true);
      await waitFor('node gone', async () => !(await nextHops(lab.router)).includes(lbAddr(i)), 10_000, 5);
      detect.push(Date.now() - t0);
      const gaps = (JSON.parse((await client).stdout) as { gaps: number[] }).gaps;
      resets += gaps.filter((g) => g < 0).length;
      outages.push(Math.max(...gaps));
      console.log(`  ecmp #${r + 1}: lb${i} blackholed, out of the route after ${detect.at(-1)} ms, client-seen outage ${outages.at(-1)} ms (largest gap of 48 connections), ${gaps.filter((g) => g < 0).length} reset`);
      await blackhole(lab, i, false);
    }
    return { outages, detect, resets };
  } finally {
    await cleanup();
  }
}

async function vrrp(): Promise<number | undefined> {
  const r = await execFileP(process.execPath, [VRRP, '--kinds', 'agent', '--intervals', '0.1', '--modes', 'crash', '--failovers', String(ROUNDS)], { timeout: 900_000, maxBuffer: 16 << 20 });
  process.stdout.write(r.stdout.split('\n').filter((l) => /agent 0\.1s crash #/.test(l)).map((l) => `${l}\n`).join(''));
  const m = /crash\s+advert 0\.1\s+s\s+agent\s+(\d+)\/(\d+)\/(\d+)/.exec(r.stdout);
  return m ? Number(m[2]) : undefined;
}

async function main(): Promise<void> {
  const skip = xdpSkipReason() ?? birdSkipReason();
  if (skip) { console.log(`bgp-outage: skipped: ${skip}`); return; }
  const e = await ecmp();
  const v = process.argv.includes('--no-vrrp') ? undefined : await vrrp();
  console.log(`\nECMP + BFD (1 of 3 nodes blackholed), ${ROUNDS} rounds, ms min/median/max: route withdrawn ${mmm(e.detect)}; client-seen outage ${mmm(e.outages)}; connections reset: ${e.resets}`);
  if (v !== undefined) console.log(`VRRP agent pair, master crash, 0.1 s adverts: median failover ${v} ms; ratio (median) ecmp/vrrp ${(median(e.outages) / v).toFixed(2)}`);
  else if (!process.argv.includes('--no-vrrp')) console.log('VRRP baseline: no figure parsed from vrrp-failover.js');
}

void main();
