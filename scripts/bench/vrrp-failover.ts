/**
 * VRRP failover as a client sees it: a pair of routers on one bridge (A priority 200, B 100), a
 * client netns pinging the VIP every 10 ms; the master A is stopped and the failover time is from
 * the last echo reply sent by A's MAC to the first one sent by B's MAC, as captured on the
 * client's interface (tcpdump -e). Then A is restarted, preempts, and the next round begins.
 * Three lines, same settings, same run, keepalived's the baseline:
 *   keepalived = a keepalived pair;
 *   fulcrum    = a `fulcrum vrrp run` pair (the VRRP engine alone);
 *   agent      = a pair of full `fulcrum agent` processes (own state and pin directories, API on a
 *                free port): the same VRRP instance plus XDP services on the VIP (native XDP on
 *                each node's eth0) whose backends, on a backend host of the same bridge, are
 *                health-checked (tcp, 1 s) and tracked by the instance (below quorum = FAULT);
 *                see vrrp-agent-node.ts. A restarted agent node keeps its store, health state and
 *                pinned XDP program.
 *
 * Usage (root, after `npm run build`):
 *   node dist/scripts/bench/vrrp-failover.js [--failovers 6] [--intervals 1,0.1] [--modes stop,crash]
 *     [--kinds keepalived,fulcrum,agent]
 * Modes: stop = SIGTERM (a master sends priority 0: takeover after Skew_Time);
 *        crash = the master's link down, then SIGKILL (takeover after Master_Down_Interval, which
 *        runs from the last advert heard: the outage varies by up to one advert interval with the
 *        phase of the crash, for every implementation alike).
 * The default run (6 failovers per case, 4 cases, 3 lines) takes about 10 minutes. Ctrl-C (or
 * SIGTERM) removes every netns, process, pin and directory the run made.
 */
import { loadavg } from 'node:os';
import { Lan } from '../../test/helpers/lan.js';
import { netnsSkipReason, type Netns } from '../../test/helpers/netns.js';
import { xdpSkipReason } from '../../test/helpers/xdp.js';
import {
  holdsVip, keepalivedSkipReason, neighbourMac, Pinger, plug, ReplyWatcher, startRouter, unplug, waitFor, type RouterSpec,
} from '../../test/helpers/vrrp-peers.js';
import { cleanupOnInterrupt } from './interrupt-cleanup.js';
import { AgentNode, startBackend, type BenchRouter } from './vrrp-agent-node.js';

type Kind = 'keepalived' | 'fulcrum' | 'agent';
type Mode = 'stop' | 'crash';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const FAILOVERS = Number(arg('failovers', '6'));
const INTERVALS = arg('intervals', '1,0.1').split(',').map(Number);
const MODES = arg('modes', 'stop,crash').split(',') as Mode[];
const KINDS = arg('kinds', 'keepalived,fulcrum,agent').split(',') as Kind[];
const VIP = '10.88.0.100';
const BACKEND = '10.88.0.10';
const MAC = { a: '02:00:5e:88:00:01', b: '02:00:5e:88:00:02', c: '02:00:5e:88:00:03', s: '02:00:5e:88:00:04' };

type Stats = { min: number; median: number; max: number; n: number };

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

/**
 * Starts routers of one kind on the LAN: keepalived and `fulcrum vrrp run` as processes, agents
 * as AgentNodes (one per host, restarted in place; disposed by `dispose`).
 */
async function routerStarter(kind: Kind, lan: Lan) {
  const nodes = new Map<Netns, AgentNode>();
  let backend: { stop(): Promise<void> } | undefined;
  if (kind === 'agent') backend = await startBackend(await lan.addHost('s', MAC.s, [`${BACKEND}/24`]));
  return {
    start: async (ns: Netns, spec: RouterSpec): Promise<BenchRouter> => {
      if (kind !== 'agent') return startRouter(kind, ns, spec);
      let node = nodes.get(ns);
      if (!node) nodes.set(ns, (node = new AgentNode(ns, spec, BACKEND)));
      return node.start();
    },
    /** What each agent runs (printed once per case, so the figures show what was measured). */
    describe: async () => {
      for (const [ns, n] of nodes) console.log(`    agent on ${lan.hosts.get('a') === ns ? 'A' : 'B'}: ${await n.summary()}`);
    },
    dispose: async () => {
      for (const n of nodes.values()) await n.dispose();
      await backend?.stop();
    },
  };
}

async function runPair(kind: Kind, interval: number, mode: Mode): Promise<number[]> {
  const lan = await Lan.create();
  const routers: BenchRouter[] = [];
  let starter: Awaited<ReturnType<typeof routerStarter>> | undefined;
  let pinger: Pinger | undefined;
  let watcher: ReplyWatcher | undefined;
  const cleanup = cleanupOnInterrupt(async () => {
    await pinger?.stop();
    await watcher?.stop();
    for (const r of routers) await r.kill().catch(() => undefined);
    await starter?.dispose();
    await lan.delete();
  });
  try {
    const a = await lan.addHost('a', MAC.a, ['10.88.0.1/24']);
    const b = await lan.addHost('b', MAC.b, ['10.88.0.2/24']);
    const c = await lan.addHost('c', MAC.c, ['10.88.0.3/24']);
    starter = await routerStarter(kind, lan);
    const spec: RouterSpec = { version: 3, vrid: 61, priority: 200, advertInterval: interval, vips: [VIP] };
    const startA = async () => { const r = await starter!.start(a, spec); routers.push(r); return r; };
    routers.push(await starter.start(b, { ...spec, priority: 100 }));
    let master = await startA();
    const settle = 3 * interval * 1000 + 1000;
    await waitFor('A master', () => holdsVip(a, VIP), 15_000 + settle);
    await waitFor('B backup', async () => !(await holdsVip(b, VIP)), 15_000);
    await starter.describe();
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
      // Bring A back: a dead node comes back without its stale VIP, then preempts.
      if (mode === 'crash') {
        await a.exec('ip', ['addr', 'del', `${VIP}/32`, 'dev', 'eth0'], { allowFail: true });
        await plug(a);
      }
      const restarted = Date.now();
      master = await startA();
      await waitFor('A to preempt', () => holdsVip(a, VIP), 15_000 + settle);
      // Not a figure of the table: how long a restarted node takes to be master again (its
      // start-up, health state, then Master_Down_Interval before it preempts).
      process.stdout.write(`  ${kind} ${interval}s ${mode} #${i + 1}: ${gap.gapMs.toFixed(0)} ms (A master again ${Date.now() - restarted} ms after its restart)\n`);
      await waitFor('B back to backup', async () => !(await holdsVip(b, VIP)), 15_000);
      // Let the preemption settle (B's last replies, the client's cache) before the next stop.
      await new Promise((r) => setTimeout(r, Math.max(1000, 5 * interval * 1000)));
    }
    return gaps;
  } finally {
    await cleanup();
  }
}

const fmt = (s: Stats) => `${s.min.toFixed(0)}/${s.median.toFixed(0)}/${s.max.toFixed(0)}`;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const skip = netnsSkipReason() ?? (KINDS.includes('keepalived') ? keepalivedSkipReason() : undefined);
  if (skip) {
    console.log(`vrrp-failover: skipped: ${skip}`);
    return;
  }
  let kinds = KINDS;
  const noXdp = kinds.includes('agent') ? xdpSkipReason() : undefined;
  if (noXdp) {
    // The agent line's services need XDP (the host has no IPVS): without it there is no full agent to measure.
    console.log(`vrrp-failover: agent line skipped: ${noXdp}`);
    kinds = kinds.filter((k) => k !== 'agent');
  }
  console.log(`vrrp-failover: ${FAILOVERS} failovers per case; lines ${kinds.join(', ')}; client pings every 10 ms; failover = last reply from the old master's MAC -> first reply from the new master's MAC`);
  console.log(`load average at start: ${load()}`);
  const started = Date.now();
  const rows: string[] = [];
  for (const mode of MODES) {
    for (const interval of INTERVALS) {
      const line = new Map<Kind, Stats>();
      for (const kind of kinds) line.set(kind, stats(await runPair(kind, interval, mode)));
      const ka = line.get('keepalived');
      const cells = [...line].map(([k, s]) => `${k} ${fmt(s).padEnd(16)}`);
      const ratios = ka ? [...line].filter(([k]) => k !== 'keepalived').map(([k, s]) => `${k}/keepalived ${(s.median / ka.median).toFixed(2)}`) : [];
      rows.push(`${mode.padEnd(6)} advert ${String(interval).padEnd(4)}s  ${cells.join(' ')}${ratios.length ? ` ratio (median) ${ratios.join(', ')}` : ''}`);
      console.log(`  [${rows.at(-1)}]  (${((Date.now() - started) / 1000).toFixed(0)} s elapsed, load ${load()})`);
    }
  }
  console.log(`\nfailover time in ms (min/median/max), ${FAILOVERS} failovers per case, ${((Date.now() - started) / 1000).toFixed(0)} s, load average at the end ${load()}:`);
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
