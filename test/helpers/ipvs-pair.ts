import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Netns, run, uniqueName } from './netns.js';
import { Lan } from './lan.js';
import { AgentProcess, fulcrum } from './agent-process.js';
import { kill, startClient, startServer, type ClientResult } from './health-e2e.js';

/**
 * An LB pair on IPVS inside the VM, each node a netns running the real `fulcrum agent`:
 *
 *   client --[front bridge]-- lb-a eth0 / lb-b eth0              VIP (VRRP instance `front`)
 *             lb-a eth1 / lb-b eth1 --[back bridge]-- backends   GATEWAY (VRRP instance `gateway`)
 *
 * The backends route via GATEWAY, so NAT replies return through the master; they also hold the VIP
 * on lo (arp_ignore/arp_announce) for the DR service. Each backend runs one HTTP server on
 * BACKEND_PORT answering its name, which both services use (NAT VIP:80 -> :81, DR VIP:81 -> :81).
 */

export const VIP = '10.81.0.100', GATEWAY = '10.82.0.1', CLIENT = '10.81.0.10';
export const BACKENDS = ['10.82.0.11', '10.82.0.12'];
export const NAT_PORT = 80, DR_PORT = 81, BACKEND_PORT = 81;
export const VIPS = [{ dev: 'eth0', address: VIP }, { dev: 'eth1', address: GATEWAY }];

export interface PairNode {
  label: 'lb-a' | 'lb-b';
  ns: Netns;
  priority: number;
  front: string;
  back: string;
  dir: string;
  config: string;
  tokenFile: string;
  agent?: AgentProcess | undefined;
}

export interface PairOptions {
  advertInterval: number;
  health: Record<string, unknown>;
  reconcileIntervalSeconds: number;
}

export interface VrrpStatus {
  name: string; state: string; priority: number; configuredPriority: number; masterAddress?: string; vips: string[]; fault?: string | null;
  lastTransition?: { from: string; to: string; reason: string; time: string } | null;
}
export interface AgentStatus {
  ready: boolean;
  dataplanes: Array<{ name: string; available: boolean }>;
  vrrp: VrrpStatus[];
  health: Array<{ service: string; backends: Array<{ address: string; port: number; state: string }> }>;
}

/** One IPVS real server as `ipvsadm -Ln` lists it under a virtual service. */
export interface RealServer { forward: string; weight: number }

export class IpvsPair {
  readonly nodes: PairNode[] = [];
  readonly backends: Netns[] = [];
  readonly servers: ChildProcess[] = [];
  private readonly procs: ChildProcess[] = [];
  private constructor(readonly front: Lan, readonly back: Lan, readonly client: Netns, readonly opts: PairOptions) {}

  get a(): PairNode { return this.nodes[0]!; }
  get b(): PairNode { return this.nodes[1]!; }

  static async create(opts: PairOptions): Promise<IpvsPair> {
    const front = await Lan.create();
    const back = await Lan.create();
    const client = await front.addHost('client', '02:00:5e:51:00:0a', [`${CLIENT}/24`]);
    const pair = new IpvsPair(front, back, client, opts);
    try {
      await pair.build();
    } catch (e) {
      await pair.cleanup();
      throw e;
    }
    return pair;
  }

  private async build(): Promise<void> {
    for (const [i, label] of (['lb-a', 'lb-b'] as const).entries()) {
      const ns = await Netns.create(`flq${label.slice(-1)}`);
      const dir = mkdtempSync(join(tmpdir(), `fl-ipvs-pair-${label}-`));
      const n: PairNode = {
        label, ns, priority: i === 0 ? 200 : 100, front: `10.81.0.${i + 2}`, back: `10.82.0.${i + 2}`, dir,
        config: join(dir, 'fulcrum.yaml'), tokenFile: join(dir, 'state', 'admin.token'),
      };
      this.nodes.push(n);
      await plug(this.front, ns, 'eth0', `02:00:5e:51:00:0${i + 2}`, `${n.front}/24`);
      await plug(this.back, ns, 'eth1', `02:00:5e:52:00:0${i + 2}`, `${n.back}/24`);
      // DR replies come back through the master (the backends' gateway) with the VIP as source,
      // an address local to it: without accept_local the kernel drops them as martians.
      await ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth1.rp_filter=0']);
      this.configure(n, true);
    }
    for (const [i, address] of BACKENDS.entries()) {
      const b = await this.back.addHost(`b${i + 1}`, `02:00:5e:52:00:1${i + 1}`, [`${address}/24`]);
      this.backends.push(b);
      await b.exec('ip', ['route', 'add', 'default', 'via', GATEWAY]);
      await b.exec('ip', ['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
      for (const k of ['all', 'eth0']) await b.exec('sysctl', ['-qw', `net.ipv4.conf.${k}.arp_ignore=1`, `net.ipv4.conf.${k}.arp_announce=2`]);
      await this.startBackend(i);
    }
  }

  /** The desired state of a node: both nodes the same but for the priority. */
  desiredState(n: PairNode, preempt: boolean): Record<string, unknown> {
    const backends = BACKENDS.map((address) => ({ address, port: BACKEND_PORT }));
    const common = { priority: n.priority, advertInterval: this.opts.advertInterval, syncGroup: 'lb', ...(preempt ? {} : { preempt: false }) };
    return {
      services: [
        { name: 'web', address: VIP, port: NAT_PORT, scheduler: 'rr', forwarding: 'nat', backends, health: this.opts.health },
        { name: 'web-dr', address: VIP, port: DR_PORT, scheduler: 'rr', forwarding: 'dr', backends, health: this.opts.health },
      ],
      vrrp: [
        // No weight: either service without a healthy backend puts the group in FAULT.
        { name: 'front', interface: 'eth0', vrid: 61, vips: [VIP], track: { services: [{ service: 'web' }, { service: 'web-dr' }] }, ...common },
        { name: 'gateway', interface: 'eth1', vrid: 62, vips: [GATEWAY], ...common },
      ],
    };
  }

  /** Writes the node's config file (agent section plus its desired state). */
  configure(n: PairNode, preempt: boolean): void {
    writeFileSync(n.config, stringify({
      agent: { stateDir: join(n.dir, 'state'), api: { port: 0 }, reconcileIntervalSeconds: this.opts.reconcileIntervalSeconds },
      ...this.desiredState(n, preempt),
    }));
  }

  async startAgent(n: PairNode): Promise<void> {
    n.agent = await AgentProcess.start(n.config, { netns: n.ns.name, timeoutMs: 120_000 });
  }

  async startBackend(i: number): Promise<void> {
    this.servers[i] = await startServer(this.backends[i]!, `b${i + 1}`, BACKEND_PORT, 60_000);
  }

  async stopBackend(i: number): Promise<void> {
    await kill(this.servers[i]!);
  }

  async setLinks(n: PairNode, up: boolean): Promise<void> {
    for (const dev of ['eth0', 'eth1']) await n.ns.exec('ip', ['link', 'set', dev, up ? 'up' : 'down']);
  }

  /** `fulcrum WORDS...` against the node's agent, inside its netns. */
  cli(n: PairNode, words: string[]) {
    return fulcrum(words, n.agent!.server, n.tokenFile, n.ns.name);
  }

  /** GET /v1/status with curl inside the node's netns (cheaper than the CLI for polling under TCG). */
  async status(n: PairNode): Promise<AgentStatus> {
    const token = readFileSync(n.tokenFile, 'utf8').trim();
    const r = await run('nsenter', [`--net=/run/netns/${n.ns.name}`, 'curl', '-sS', '--fail-with-body', '-m', '10',
      '-H', `authorization: Bearer ${token}`, `${n.agent!.server}/v1/status`], { timeoutMs: 15_000 });
    return JSON.parse(r.stdout) as AgentStatus;
  }

  /** Which of the pair's VIPs `ip addr` shows on the node. */
  async held(n: PairNode): Promise<string[]> {
    const out: string[] = [];
    for (const v of VIPS) {
      const r = await n.ns.exec('ip', ['-j', '-4', 'addr', 'show', 'dev', v.dev], { allowFail: true });
      const links = JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ local: string }> }>;
      if (links.some((l) => (l.addr_info ?? []).some((a) => a.local === v.address))) out.push(v.address);
    }
    return out;
  }

  /** `ipvsadm -Ln` in the node's netns. */
  async ipvsadm(n: PairNode, ...args: string[]): Promise<string> {
    return (await n.ns.exec('ipvsadm', args.length ? args : ['-Ln'])).stdout;
  }

  /** The real servers of VIP:port in the node's IPVS table (`ipvsadm -Ln`), keyed address:port. */
  async realServers(n: PairNode, port: number): Promise<Map<string, RealServer> | undefined> {
    return parseService(await this.ipvsadm(n), `${VIP}:${port}`);
  }

  /**
   * The client's connections in the node's IPVS connection table (`ipvsadm -Lnc`), as
   * "client-port -> VIP port -> real server" (entries stay about 2 minutes in TIME_WAIT after a request).
   */
  /**
   * The node's IPVS connections from the client (`ipvsadm -Lnc`), each with its seconds to expiry.
   * The expiry tells a new connection from an old entry whose client port the new one reused: the
   * kernel reuses the entry of a TIME_WAIT connection for a new SYN on the same 4-tuple, and
   * restarts its timer.
   */
  async clientConnections(n: PairNode): Promise<Map<string, number>> {
    const out = await this.ipvsadm(n, '-Lnc');
    const conns = new Map<string, number>();
    for (const l of out.split('\n')) {
      // The VIP port belongs to the key: a NAT and a DR connection made at the same time may share
      // a client port (their 4-tuples differ), and both reach the same backend.
      const m = new RegExp(`^\\S+\\s+(\\d+):(\\d+)\\s+\\S+\\s+${CLIENT.replace(/\./g, '\\.')}:(\\d+)\\s+${VIP.replace(/\./g, '\\.')}:(\\d+)\\s+(\\S+)`).exec(l.trim());
      if (m) conns.set(`${m[3]} -> ${m[4]} -> ${m[5]}`, Number(m[1]) * 60 + Number(m[2]));
    }
    return conns;
  }

  /** A fresh HTTP connection to VIP:port every `everyMs` for `ms`; every result. */
  async burst(port: number, ms: number, everyMs = 100): Promise<ClientResult[]> {
    const c = startClient(this.client, VIP, port, ms, everyMs);
    this.procs.push(c.proc);
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { c.proc.kill('SIGKILL'); resolve(); }, ms + 30_000);
      c.proc.once('exit', () => { clearTimeout(t); resolve(); });
    });
    return c.results.items;
  }

  async cleanup(): Promise<void> {
    for (const p of [...this.procs, ...this.servers]) if (p) await kill(p);
    for (const n of this.nodes) if (n.agent && n.agent.proc.exitCode === null && n.agent.proc.signalCode === null) await n.agent.kill9().catch(() => undefined);
    for (const n of this.nodes) {
      await run('ip', ['netns', 'exec', n.ns.name, 'ipvsadm', '-C'], { allowFail: true });
      await n.ns.delete();
      rmSync(n.dir, { recursive: true, force: true });
    }
    await this.front.delete();
    await this.back.delete();
  }
}

/**
 * tcpdump of the VRRP adverts (IP protocol 112) seen on `dev` in `ns`: kernel timestamps and
 * senders, to measure a takeover as the RFC defines it (last advert of the old master to the first
 * of the new one) without the latency of polling `ip addr` under TCG.
 */
export class AdvertCapture {
  readonly adverts: Array<{ t: number; from: string }> = [];
  private constructor(private readonly proc: ChildProcess) {}

  static async start(ns: Netns, dev: string): Promise<AdvertCapture> {
    const proc = ns.spawn('tcpdump', ['-i', dev, '-n', '-tt', '-l', 'ip proto 112']);
    const c = new AdvertCapture(proc);
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = /^(\d+\.\d+) IP (\S+) > /.exec(l);
      if (m) c.adverts.push({ t: Number(m[1]) * 1000, from: m[2]! });
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('tcpdump did not start')), 30_000);
      proc.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('listening on')) { clearTimeout(t); resolve(); } });
      proc.once('exit', (code) => { clearTimeout(t); reject(new Error(`tcpdump exited ${code}`)); });
    });
    return c;
  }

  /** The gap from the last advert by `oldMaster` to the first by `newMaster` after it, or undefined. */
  takeover(oldMaster: string, newMaster: string): { lastOld: number; firstNew: number; gapMs: number } | undefined {
    const lastOld = this.adverts.filter((a) => a.from === oldMaster).at(-1);
    const firstNew = lastOld && this.adverts.find((a) => a.from === newMaster && a.t > lastOld.t);
    return lastOld && firstNew ? { lastOld: lastOld.t, firstNew: firstNew.t, gapMs: firstNew.t - lastOld.t } : undefined;
  }

  async stop(): Promise<void> {
    await kill(this.proc);
  }
}

/** Plugs `ns` into `lan` with a new interface `ifname` (MAC and one address). */
async function plug(lan: Lan, ns: Netns, ifname: string, mac: string, addr: string): Promise<void> {
  const inner = uniqueName('qi'), outer = uniqueName('qo');
  await run('ip', ['link', 'add', inner, 'type', 'veth', 'peer', 'name', outer]);
  await run('ip', ['link', 'set', inner, 'netns', ns.name]);
  await run('ip', ['link', 'set', outer, 'netns', lan.sw.name]);
  await ns.exec('ip', ['link', 'set', inner, 'name', ifname, 'address', mac]);
  await ns.exec('ip', ['addr', 'add', addr, 'dev', ifname]);
  await ns.exec('ip', ['link', 'set', ifname, 'up']);
  await lan.sw.exec('ip', ['link', 'set', outer, 'master', 'br0']);
  await lan.sw.exec('ip', ['link', 'set', outer, 'up']);
}

/** The real servers `ipvsadm -Ln` lists under the TCP service `vs` (address:port), or undefined. */
export function parseService(listing: string, vs: string): Map<string, RealServer> | undefined {
  let inside = false, found = false;
  const out = new Map<string, RealServer>();
  for (const line of listing.split('\n')) {
    if (/^(TCP|UDP|SCTP|FWM) /.test(line)) {
      inside = line.split(/\s+/)[1] === vs && line.startsWith('TCP');
      found ||= inside;
      continue;
    }
    const m = /^\s+-> (\S+)\s+(\S+)\s+(\d+)/.exec(line);
    if (inside && m) out.set(m[1]!, { forward: m[2]!, weight: Number(m[3]) });
  }
  return found ? out : undefined;
}
