import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { Netns, run, vethPair } from './netns.js';
import { PASS_OBJECT, SMALL, testDirs } from './xdp.js';
import { ECHO } from './xdp-agent-lab.js';
import { AgentProcess, fulcrum } from './agent-process.js';
import { openPinnedMap } from '../../src/bpf/index.js';
import { decodeBackend, decodeVipMeta, encodeVipKey, L, maglevIndex, maglevStride, u32, type VipKey } from '../../src/xdp/abi.js';

/**
 * The BGP/ECMP lab on the host kernel, all in netns made here:
 *
 *   client c0 10.70.0.10 --- router (c0 10.70.0.1; BIRD 2, ECMP, BFD) --- r<i> 10.71.i.1 <-> lb<i> eth0 10.71.i.2 (i = 1..3)
 *   router br0 10.72.0.1: a bridge with lb<i> eth1 10.72.0.2i and the backends b<j> eth0 10.72.0.1j (j = 1..3)
 *
 * Each LB runs its own BIRD (include written by its agent) and a real `fulcrum agent` (XDP on eth0
 * and eth1) announcing the VIP; backends hold the VIP on lo (dr) and answer with their id (the echo
 * server of the XDP tests) on port 80; their replies go straight back through the router.
 */

/** XDP drop in, tc drop out: bpf/test/fulcrum_blackhole.bpf.c. */
export const BLACKHOLE_OBJECT = fileURLToPath(new URL('../../../bpf/build/fulcrum_blackhole.bpf.o', import.meta.url));

export const VIP = '10.80.0.100';
export const PORT = 80;
export const CLIENT = '10.70.0.10';
export const LBS = [1, 2, 3] as const;
export const BACKENDS = ['10.72.0.11', '10.72.0.12', '10.72.0.13'];
export const lbAddr = (i: number) => `10.71.${i}.2`;
export const routerAddr = (i: number) => `10.71.${i}.1`;
export const ROUTER_ASN = 65000, LB_ASN = 65001;
export const HEALTH = { check: { kind: 'tcp' }, interval: 0.3, timeout: 0.25, jitter: 0.05, rise: 2, fall: 2 };

export function birdSkipReason(): string | undefined {
  return existsSync('/usr/sbin/bird') ? undefined : 'needs BIRD 2 (apt-get install bird2; scripts/setup.sh installs it)';
}

export interface LbNode {
  i: number;
  ns: Netns;
  dir: string;
  pinDir: string;
  stateDir: string;
  config: string;
  ctl: string;
  include: string;
  agent?: AgentProcess | undefined;
}

export interface BgpLab {
  dir: string;
  router: Netns;
  client: Netns;
  lbs: LbNode[];
  backends: Netns[];
  servers: Array<ChildProcess | undefined>;
  routerCtl: string;
  delete(): Promise<void>;
}

export function routerBirdConf(dir: string, opts: { bfd?: boolean } = {}): string {
  const bfd = opts.bfd ?? true;
  return [
    `log "${dir}/router-bird.log" all;`,
    'router id 10.70.0.1;',
    'protocol device { scan time 10; }',
    // ECMP: one kernel route with a next hop per LB that announces the VIP.
    'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
    'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }',
    `template bgp lb { local as ${ROUTER_ASN}; connect retry time 2; error wait time 1, 5; bfd ${bfd ? 'on' : 'off'}; ipv4 { import all; export none; }; }`,
    ...LBS.map((i) => `protocol bgp lb${i} from lb { neighbor ${lbAddr(i)} as ${LB_ASN}; }`),
    '',
  ].join('\n');
}

/** A service of the lab: dr to the three backends, TCP-checked. */
export function webService(extra: Record<string, unknown> = {}) {
  return { name: 'web', dataplane: 'xdp', address: VIP, port: PORT, forwarding: 'dr', backends: BACKENDS.map((address) => ({ address, port: PORT })), health: HEALTH, ...extra };
}

export function agentConfig(lb: LbNode, opts: { xdpInterfaces?: string[]; services?: unknown[] } = {}): string {
  const doc = {
    agent: {
      stateDir: lb.stateDir,
      api: { port: 0 },
      xdp: { pinDir: lb.pinDir },
      reconcileIntervalSeconds: 2,
      log: { level: 'info' },
      bgp: {
        asn: LB_ASN, routerId: lbAddr(lb.i),
        neighbours: [{ name: 'router', address: routerAddr(lb.i), asn: ROUTER_ASN, reconnectSeconds: 2 }],
        controlSocket: lb.ctl, includeFile: lb.include, pollSeconds: 0.5,
      },
    },
    xdp: { interfaces: (opts.xdpInterfaces ?? ['eth0', 'eth1']).map((name) => ({ name, mode: 'native' })), ...SMALL },
    services: opts.services ?? [webService()],
  };
  return stringify(doc);
}

async function startBird(ns: Netns, conf: string, ctl: string, pid: string): Promise<void> {
  await ns.exec('bird', ['-c', conf, '-s', ctl, '-P', pid]);
}

/** FRR 8 as the router (bgpd's part): ECMP by maximum-paths, BFD on every session. */
export function frrRouterConf(): string {
  return [
    'frr defaults traditional',
    'hostname router',
    'router bgp 65000',
    ' bgp router-id 10.70.0.1',
    ' no bgp ebgp-requires-policy',
    ' neighbor LB peer-group',
    ` neighbor LB remote-as ${LB_ASN}`,
    ' neighbor LB bfd',
    ' neighbor LB bfd profile lb',
    ' neighbor LB timers connect 2',
    ...LBS.map((i) => ` neighbor ${lbAddr(i)} peer-group LB`),
    ' address-family ipv4 unicast',
    '  maximum-paths 16',
    ' exit-address-family',
    'exit',
    '',
  ].join('\n');
}

export function frrBfdConf(): string {
  return [
    'frr defaults traditional',
    'bfd',
    ' profile lb',
    '  receive-interval 100',
    '  transmit-interval 100',
    '  detect-multiplier 3',
    ' exit',
    'exit',
    '',
  ].join('\n');
}

async function startFrr(router: Netns, dir: string): Promise<void> {
  const conf = join(dir, 'bgpd.conf');
  writeFileSync(conf, frrRouterConf());
  writeFileSync(join(dir, 'bfdd.conf'), frrBfdConf());
  // The daemons drop to the frr user (root is not in the frrvty group): the directory is theirs.
  chmodSync(dirname(dir), 0o755);
  await run('chown', ['-R', 'frr:frr', dir]);
  const common = ['-d', '-P', '0', '-z', join(dir, 'zserv.api'), '--vty_socket', dir, '--log', `file:${dir}/frr.log`];
  await router.exec('/usr/lib/frr/zebra', [...common, '-i', join(dir, 'zebra.pid'), '-f', join(dir, 'empty.conf')]);
  await router.exec('/usr/lib/frr/bfdd', [...common, '-i', join(dir, 'bfdd.pid'), '-f', join(dir, 'bfdd.conf'), '--bfdctl', join(dir, 'bfdd.sock')]);
  await router.exec('/usr/lib/frr/bgpd', [...common, '-i', join(dir, 'bgpd.pid'), '-f', conf]);
}

export function frrSkipReason(): string | undefined {
  return existsSync('/usr/lib/frr/bgpd') && existsSync('/usr/lib/frr/bfdd') ? undefined : 'needs FRR (apt-get install frr; scripts/setup.sh installs it)';
}

export async function createBgpLab(opts: { router?: 'bird' | 'frr' } = {}): Promise<BgpLab> {
  const dir = mkdtempSync(join(tmpdir(), 'bgp-lab-'));
  const made: Netns[] = [];
  const servers: Array<ChildProcess | undefined> = [];
  const lbs: LbNode[] = [];
  const create = async (p: string) => { const ns = await Netns.create(p); made.push(ns); return ns; };
  const remove = async () => {
    for (const lb of lbs) if (lb.agent) await lb.agent.kill9().catch(() => undefined);
    for (const s of servers) if (s && s.exitCode === null) s.kill('SIGKILL');
    for (const ns of made) await ns.delete();
    for (const lb of lbs) rmSync(lb.pinDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const router = await create('bgpr');
    const client = await create('bgpc');
    await vethPair(client, 'c0', ['10.70.0.10/24'], router, 'c0', ['10.70.0.1/24']);
    await client.exec('ip', ['route', 'add', 'default', 'via', '10.70.0.1']);
    for (const [k, v] of [['net.ipv4.ip_forward', '1'], ['net.ipv4.fib_multipath_hash_policy', '1'], ['net.ipv4.fib_multipath_use_neigh', '1'], ['net.ipv4.conf.all.rp_filter', '0'], ['net.ipv4.conf.default.rp_filter', '0']])
      await router.exec('sysctl', ['-qw', `${k}=${v}`]);
    await router.exec('ip', ['link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await router.exec('ip', ['addr', 'add', '10.72.0.1/24', 'dev', 'br0']);
    await router.exec('ip', ['link', 'set', 'br0', 'up']);
    for (const i of LBS) {
      const ns = await create(`bgpl${i}`);
      await vethPair(ns, 'eth0', [`${lbAddr(i)}/24`], router, `r${i}`, [`${routerAddr(i)}/24`]);
      await vethPair(ns, 'eth1', [`10.72.0.2${i}/24`], router, `lbb${i}`, []);
      await router.exec('ip', ['link', 'set', `lbb${i}`, 'master', 'br0']);
      // Native XDP on veth delivers a redirected frame only when the peer runs XDP too.
      await router.exec('ip', ['link', 'set', 'dev', `lbb${i}`, 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
      await router.exec('ip', ['link', 'set', 'dev', `r${i}`, 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
      await ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      const lbDir = join(dir, `lb${i}`);
      const { pinDir, stateDir } = testDirs();
      const node: LbNode = { i, ns, dir: lbDir, pinDir, stateDir, config: join(dir, `lb${i}.yaml`), ctl: join(dir, `lb${i}.ctl`), include: join(dir, `lb${i}-fulcrum.conf`) };
      writeFileSync(node.include, '');
      // The operator's own part of bird.conf: logging, a device protocol, the include.
      writeFileSync(join(dir, `lb${i}-bird.conf`), `log "${dir}/lb${i}-bird.log" all;\nprotocol device {}\ninclude "${node.include}";\n`);
      await startBird(ns, join(dir, `lb${i}-bird.conf`), node.ctl, join(dir, `lb${i}.pid`));
      lbs.push(node);
    }
    const backends: Netns[] = [];
    for (const [j, addr] of BACKENDS.entries()) {
      const b = await create(`bgpb${j + 1}`);
      backends.push(b);
      await vethPair(b, 'eth0', [`${addr}/24`], router, `bb${j + 1}`, []);
      await router.exec('ip', ['link', 'set', `bb${j + 1}`, 'master', 'br0']);
      await b.exec('ip', ['route', 'add', 'default', 'via', '10.72.0.1']);
      await b.exec('ip', ['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
      for (const k of ['net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0'])
        await b.exec('sysctl', ['-qw', k]);
      await b.exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
      servers.push(await startEcho(b, `b${j + 1}`));
    }
    await client.exec('ethtool', ['-K', 'c0', 'tx', 'off']);
    for (const lb of lbs) for (const addr of BACKENDS) await lb.ns.exec('ping', ['-c1', '-W2', addr]);
    const routerCtl = join(dir, 'router.ctl');
    if (opts.router === 'frr') {
      const frrDir = join(dir, 'frr');
      mkdirSync(frrDir);
      writeFileSync(join(frrDir, 'empty.conf'), '');
      await startFrr(router, frrDir);
    } else {
      const routerConf = join(dir, 'router-bird.conf');
      writeFileSync(routerConf, routerBirdConf(dir));
      await startBird(router, routerConf, routerCtl, join(dir, 'router.pid'));
    }
    return { dir, router, client, lbs, backends, servers, routerCtl, delete: remove };
  } catch (e) {
    await remove();
    throw e;
  }
}


export async function startEcho(ns: Netns, id: string): Promise<ChildProcess> {
  const srv = ns.spawn(process.execPath, [ECHO, 'server', id, `tcp:${PORT}`]);
  await new Promise((r) => srv.stdout!.once('data', r));
  return srv;
}

/** The router kernel's next hops for the VIP ([] when it has no route). */
export async function nextHops(router: Netns, vip = VIP): Promise<string[]> {
  const r = await router.exec('ip', ['-j', 'route', 'show', `${vip}/32`]);
  const routes = JSON.parse(r.stdout || '[]') as Array<{ gateway?: string; nexthops?: Array<{ gateway: string }> }>;
  const out: string[] = [];
  for (const rt of routes) {
    if (rt.gateway) out.push(rt.gateway);
    for (const nh of rt.nexthops ?? []) out.push(nh.gateway);
  }
  return out.sort();
}

/** Drops everything between the router and LB i, both ways, on the router's port (not a clean stop). */
export async function blackhole(lab: BgpLab, i: number, on: boolean): Promise<void> {
  const dev = `r${i}`;
  if (on) {
    await lab.router.exec('tc', ['qdisc', 'add', 'dev', dev, 'clsact']);
    await lab.router.exec('tc', ['filter', 'add', 'dev', dev, 'egress', 'bpf', 'da', 'obj', BLACKHOLE_OBJECT, 'sec', 'tc']);
    await lab.router.exec('ip', ['link', 'set', 'dev', dev, 'xdpdrv', 'off']);
    await lab.router.exec('ip', ['link', 'set', 'dev', dev, 'xdpdrv', 'obj', BLACKHOLE_OBJECT, 'sec', 'xdp']);
  } else {
    await lab.router.exec('ip', ['link', 'set', 'dev', dev, 'xdpdrv', 'off']);
    await lab.router.exec('ip', ['link', 'set', 'dev', dev, 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
    await lab.router.exec('tc', ['qdisc', 'del', 'dev', dev, 'clsact']);
  }
}

export async function startAgent(lb: LbNode, opts: Parameters<typeof agentConfig>[1] = {}): Promise<AgentProcess> {
  writeFileSync(lb.config, agentConfig(lb, opts));
  lb.agent = await AgentProcess.start(lb.config, { netns: lb.ns.name });
  return lb.agent;
}

export async function agentStatus(lb: LbNode): Promise<{ bgp: { vips: Array<{ address: string; announced: boolean; reason?: string }>; neighbours: Array<{ established: boolean; bfd?: string; exported: string[] }> } }> {
  const r = await fulcrum(['status', '-o', 'json'], lb.agent!.server, join(lb.stateDir, 'admin.token'), lb.ns.name);
  if (r.code !== 0) throw new Error(`fulcrum status: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** New connections the LB's XDP program counted for the service (its kernel counters). */
export async function connectionsOf(lb: LbNode): Promise<number> {
  const token = readFileSync(join(lb.stateDir, 'admin.token'), 'utf8').trim();
  const r = await lb.ns.exec('curl', ['-sf', '-H', `Authorization: Bearer ${token}`, `${lb.agent!.server}/v1/services/web/stats`]);
  return (JSON.parse(r.stdout) as { totals: { connections: number } }).totals.connections;
}

/**
 * The live Maglev table of a VIP in an agent's pinned maps: the raw entries (backend slots) as the
 * program reads them, and each entry resolved to the backend endpoint it sends a flow to.
 */
export function liveMaglevTable(pinDir: string, key: VipKey, size: number): { raw: Buffer; endpoints: string[] } {
  const vips = openPinnedMap(join(pinDir, 'vips'));
  const maglev = openPinnedMap(join(pinDir, 'maglev'));
  const backends = openPinnedMap(join(pinDir, 'backends'));
  try {
    const metaBytes = vips.lookup(encodeVipKey(key));
    if (!metaBytes) throw new Error(`no VIP ${key.address}:${key.port} in ${pinDir}`);
    const meta = decodeVipMeta(metaBytes);
    const line = L.FL_MAGLEV_LINE;
    const base = maglevIndex(meta.id, meta.slot, 0, size) / line;
    const parts: Buffer[] = [];
    for (let k = 0; k < maglevStride(size) / line; k++) parts.push(maglev.lookup(u32(base + k))!);
    const raw = Buffer.concat(parts).subarray(0, size * 4);
    const names = new Map<number, string>();
    const endpoints: string[] = [];
    for (let h = 0; h < size; h++) {
      const slot = raw.readUInt32LE(h * 4);
      if (slot === L.FL_NO_BACKEND) { endpoints.push('-'); continue; }
      let name = names.get(slot);
      if (name === undefined) {
        const b = decodeBackend(backends.lookup(u32(slot))!);
        names.set(slot, (name = `${b.address}:${b.port}`));
      }
      endpoints.push(name);
    }
    return { raw, endpoints };
  } finally {
    vips.close(); maglev.close(); backends.close();
  }
}

/** The echo tool's `hold` mode: N connections kept open, asked again on demand. */
export class Held {
  private readonly rounds: string[][] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      try { this.rounds.push((JSON.parse(l) as { ids: string[] }).ids); } catch { return; }
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async open(client: Netns, n: number): Promise<{ held: Held; first: string[] }> {
    const held = new Held(client.spawn(process.execPath, [ECHO, 'hold', VIP, String(PORT), String(n)], { stdio: ['pipe', 'pipe', 'pipe'] }));
    return { held, first: await held.next(0) };
  }
  private next(index: number): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no reply round from the held connections')), 60_000);
      const check = () => { if (this.rounds.length > index) { clearTimeout(t); resolve(this.rounds[index]!); } else this.waiters.push(check); };
      check();
    });
  }
  again(): Promise<string[]> {
    const index = this.rounds.length;
    this.proc.stdin!.write('again\n');
    return this.next(index);
  }
  quit(): void {
    this.proc.stdin!.write('quit\n');
  }
}

