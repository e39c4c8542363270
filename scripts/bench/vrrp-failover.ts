/**
 * VRRP failover as a client sees it: a pair of routers on one bridge (A priority 200, B 100), a
 * client netns pinging the VIP every 10 ms; the master A is stopped and the outage is the gap from
 * the last reply before to the first reply after (whoever answers). Then A is restarted, preempts,
 * and the next round begins. Fulcrum pair and keepalived pair, same settings, same run.
 *
 * Usage (root, after `npm run build`):
 *   node dist/scripts/bench/vrrp-failover.js [--failovers 10] [--intervals 1,0.1] [--modes stop,crash]
 * Modes: stop = SIGTERM (a master sends priority 0: takeover after Skew_Time);
 *        crash = the master's link down, then SIGKILL (takeover after Master_Down_Interval, which
 *        runs from the last advert heard: the outage varies by up to one advert interval with the
 *        phase of the crash, for both implementations alike).
 */
import { Lan } from '../../test/helpers/lan.js';
import { netnsSkipReason } from '../../test/helpers/netns.js';
import {
  holdsVip, keepalivedSkipReason, neighbourMac, Pinger, plug, startRouter, unplug, waitFor, type Router, type RouterSpec,
} from '../../test/helpers/vrrp-peers.js';

type Kind = Router['kind'];
type Mode = 'stop' | 'crash';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const FAILOVERS = Number(arg('failovers', '10'));
const INTERVALS = arg('intervals', '1,0.1').split(',').map(Number);
const MODES = arg('modes', 'stop,crash').split(',') as Mode[];
const VIP = '10.88.0.100';
const MAC = { a: '02:00:5e:88:00:01', b: '02:00:5e:88:00:02', c: '02:00:5e:88:00:03' };

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

async function runPair(kind: Kind, interval: number, mode: Mode): Promise<number[]> {
  const lan = await Lan.create();
  const routers: Router[] = [];
  let pinger: Pinger | undefined;
  try {
    const a = await lan.addHost('a', MAC.a, ['10.88.0.1/24']);
    const b = await lan.addHost('b', MAC.b, ['10.88.0.2/24']);
    const c = await lan.addHost('c', MAC.c, ['10.88.0.3/24']);
    const spec: RouterSpec = { version: 3, vrid: 61, priority: 200, advertInterval: interval, vips: [VIP] };
    const startA = () => { const r = startRouter(kind, a, spec); routers.push(r); return r; };
    routers.push(startRouter(kind, b, { ...spec, priority: 100 }));
    let master = startA();
    const settle = 3 * interval * 1000 + 1000;
    await waitFor('A master', () => holdsVip(a, VIP), 15_000 + settle);
    await waitFor('B backup', async () => !(await holdsVip(b, VIP)), 15_000);
    pinger = new Pinger(c, VIP, 3600);
    const gaps: number[] = [];
    for (let i = 0; i < FAILOVERS; i++) {
      await waitFor('client replies from A', async () => (await neighbourMac(c, VIP)) === MAC.a && pinger!.repliesAfter(Date.now() - 200) > 5, 15_000);
      const t0 = Date.now();
      if (mode === 'stop') await master.stop();
      // A dead node: first gone from the segment (the client's last reply and A's last advert
      // both precede this), then its processes die, so nothing is sent in between.
      else { await unplug(a); await master.kill(); }
      await waitFor('B to take the VIP', () => holdsVip(b, VIP), 15_000 + settle);
      await waitFor('client replies from B', async () => (await neighbourMac(c, VIP)) === MAC.b && pinger!.repliesAfter(Date.now() - 200) > 5, 15_000);
      const gap = pinger.largestGap(t0 - 500, Date.now());
      if (!gap) throw new Error('no replies around the failover');
      gaps.push(gap.gapMs);
      process.stdout.write(`  ${kind} ${interval}s ${mode} #${i + 1}: ${gap.gapMs.toFixed(0)} ms\n`);
      // Bring A back: a dead node comes back without its stale VIP, then preempts.
      if (mode === 'crash') {
        await a.exec('ip', ['addr', 'del', `${VIP}/32`, 'dev', 'eth0'], { allowFail: true });
        await plug(a);
      }
      master = startA();
      await waitFor('A to preempt', () => holdsVip(a, VIP), 15_000 + settle);
      await waitFor('B back to backup', async () => !(await holdsVip(b, VIP)), 15_000);
    }
    return gaps;
  } finally {
    await pinger?.stop();
    for (const r of routers) await r.kill().catch(() => undefined);
    await lan.delete();
  }
}

async function main(): Promise<void> {
  const skip = netnsSkipReason() ?? keepalivedSkipReason();
  if (skip) {
    console.log(`vrrp-failover: skipped: ${skip}`);
    return;
  }
  console.log(`vrrp-failover: ${FAILOVERS} failovers per case; client pings every 10 ms; outage = last reply before -> first reply after`);
  const rows: string[] = [];
  for (const mode of MODES) {
    for (const interval of INTERVALS) {
      const ka = stats(await runPair('keepalived', interval, mode));
      const fl = stats(await runPair('fulcrum', interval, mode));
      const f = (s: ReturnType<typeof stats>) => `${s.min.toFixed(0)}/${s.median.toFixed(0)}/${s.max.toFixed(0)}`;
      rows.push(`${mode.padEnd(6)} advert ${String(interval).padEnd(4)}s  keepalived ${f(ka).padEnd(16)} fulcrum ${f(fl).padEnd(16)} ratio (fulcrum/keepalived, median) ${(fl.median / ka.median).toFixed(2)}`);
    }
  }
  console.log('\nfailover outage in ms (min/median/max):');
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
