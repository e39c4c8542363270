/**
 * VRRP failover as a client sees it: a pair of routers on one bridge (A priority 200, B 100), a
 * client netns pinging the VIP every 10 ms; the master A is stopped and the failover time is from
 * the last echo reply sent by A's MAC to the first one sent by B's MAC, as captured on the
 * client's interface (tcpdump -e). Then A is restarted, preempts, and the next round begins.
 * Fulcrum pair and keepalived pair, same settings, same run.
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
  holdsVip, keepalivedSkipReason, neighbourMac, Pinger, plug, ReplyWatcher, startRouter, unplug, waitFor, type Router, type RouterSpec,
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
  let watcher: ReplyWatcher | undefined;
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
    watcher = new ReplyWatcher(c, VIP);
    await watcher.ready();
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
      // tcpdump's lines arrive a little after ping's: wait for the capture itself to show B.
      const gap = await waitFor('captured replies from B', () => watcher!.failover(MAC.a, MAC.b, t0), 15_000).catch(() => undefined);
      if (!gap) {
        const around = watcher.replies.filter((r) => r.t > t0 - 1000).map((r) => `${(r.t - t0).toFixed(0)}:${r.mac.slice(-2)}`);
        throw new Error(`no replies from A then B around the failover: ${around.join(' ')}`);
      }
      gaps.push(gap.gapMs);
      if (process.env.VRRP_BENCH_DEBUG) console.log(watcher.replies.filter((r) => r.t > t0 - 100 && r.t < gap.firstNew + 50).map((r) => `${(r.t - t0).toFixed(0)}:${r.mac.slice(-2)}`).join(' '));
      process.stdout.write(`  ${kind} ${interval}s ${mode} #${i + 1}: ${gap.gapMs.toFixed(0)} ms\n`);
      // Bring A back: a dead node comes back without its stale VIP, then preempts.
      if (mode === 'crash') {
        await a.exec('ip', ['addr', 'del', `${VIP}/32`, 'dev', 'eth0'], { allowFail: true });
        await plug(a);
      }
      master = startA();
      await waitFor('A to preempt', () => holdsVip(a, VIP), 15_000 + settle);
      await waitFor('B back to backup', async () => !(await holdsVip(b, VIP)), 15_000);
      // Let the preemption settle (B's last replies, the client's cache) before the next stop.
      await new Promise((r) => setTimeout(r, Math.max(1000, 5 * interval * 1000)));
    }
    return gaps;
  } finally {
    await pinger?.stop();
    await watcher?.stop();
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
  console.log(`vrrp-failover: ${FAILOVERS} failovers per case; client pings every 10 ms; failover = last reply from the old master's MAC -> first reply from the new master's MAC`);
  const rows: string[] = [];
  for (const mode of MODES) {
    for (const interval of INTERVALS) {
      const ka = stats(await runPair('keepalived', interval, mode));
      const fl = stats(await runPair('fulcrum', interval, mode));
      const f = (s: ReturnType<typeof stats>) => `${s.min.toFixed(0)}/${s.median.toFixed(0)}/${s.max.toFixed(0)}`;
      rows.push(`${mode.padEnd(6)} advert ${String(interval).padEnd(4)}s  keepalived ${f(ka).padEnd(16)} fulcrum ${f(fl).padEnd(16)} ratio (fulcrum/keepalived, median) ${(fl.median / ka.median).toFixed(2)}`);
    }
  }
  console.log('\nfailover time in ms (min/median/max):');
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
