import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { run, type Netns } from './netns.js';
import { BACKENDS, CLIENT, GATEWAY, IpvsPair, VIP, type PairNode } from './ipvs-pair.js';
import { withTimeout } from './ipvs-lab.js';
import type { HeldConnection } from './echo-stream.js';

/**
 * The IPVS LB pair of ipvs-pair.ts (client -- front LAN -- lb-a/lb-b -- back LAN -- 2 backends,
 * VRRP for the VIP and the backends' gateway in one sync group) configured for connection sync:
 * one NAT service VIP:ECHO_PORT -> backends:ECHO_PORT and one DR service VIP:DR_ECHO_PORT (the
 * backends hold the VIP on lo) whose backends run `echo-stream serve`, and `ipvs.sync` on the back LAN (eth1) unless the test leaves it out.
 */

export const ECHO_PORT = 9000;
/** The DR service's port: DR cannot change the port, so each backend runs a second echo server on it. */
export const DR_ECHO_PORT = 9001;
export const SYNC_INTERFACE = 'eth1';
const TOOL = fileURLToPath(new URL('./echo-stream.js', import.meta.url));

export interface Keepalived { proc: ChildProcess; log: string }

export interface SyncSettings { syncId: number; refreshPeriod?: number }

export class IpvsSyncLab {
  private readonly procs: ChildProcess[] = [];
  private constructor(readonly pair: IpvsPair) {}

  static async create(): Promise<IpvsSyncLab> {
    // No health checks: the test controls failover with links and signals alone.
    const pair = await IpvsPair.create({ advertInterval: 1, health: {}, reconcileIntervalSeconds: 2 });
    const lab = new IpvsSyncLab(pair);
    try {
      await Promise.all(pair.backends.flatMap((ns, i) => [ECHO_PORT, DR_ECHO_PORT].map((port) => lab.startEcho(ns, `b${i + 1}`, port))));
    } catch (e) {
      await lab.cleanup();
      throw e;
    }
    return lab;
  }

  get a(): PairNode { return this.pair.a; }
  get b(): PairNode { return this.pair.b; }

  /** The node's desired state: the echo service, both VRRP instances, `ipvs.sync` when given. */
  desiredState(n: PairNode, sync: SyncSettings | undefined): Record<string, unknown> {
    const common = { priority: n.priority, advertInterval: 1, syncGroup: 'lb' };
    return {
      services: [
        { name: 'echo', address: VIP, port: ECHO_PORT, scheduler: 'rr', forwarding: 'nat', backends: BACKENDS.map((address) => ({ address, port: ECHO_PORT })) },
        { name: 'echo-dr', address: VIP, port: DR_ECHO_PORT, scheduler: 'rr', forwarding: 'dr', backends: BACKENDS.map((address) => ({ address, port: DR_ECHO_PORT })) },
      ],
      vrrp: [
        { name: 'front', interface: 'eth0', vrid: 61, vips: [VIP], ...common },
        { name: 'gateway', interface: 'eth1', vrid: 62, vips: [GATEWAY], ...common },
      ],
      ...(sync ? { ipvs: { sync: { interface: SYNC_INTERFACE, ...sync } } } : {}),
    };
  }

  /** Writes the node's config file (agent settings plus its desired state). */
  configure(n: PairNode, sync: SyncSettings | undefined): void {
    writeFileSync(n.config, stringify({
      agent: { stateDir: join(n.dir, 'state'), api: { port: 0 }, reconcileIntervalSeconds: 2 },
      ...this.desiredState(n, sync),
    }));
  }

  /**
   * keepalived's equivalent of desiredState for the node: the same VRRP instances in a sync
   * group (VRRPv3, as Fulcrum's default), the same NAT service without checkers (real servers
   * without a checker are up), and `lvs_sync_daemon` on the back LAN with the sync id. `nopreempt`
   * (with state BACKUP): a node that comes back stays backup, so a test decides every move.
   */
  keepalivedConf(n: PairNode, syncId: number): string {
    const instance = (name: string, dev: string, vrid: number, vip: string) => [
      `vrrp_instance ${name} {`, '  state BACKUP', '  nopreempt', `  interface ${dev}`, `  virtual_router_id ${vrid}`,
      `  priority ${n.priority}`, '  advert_int 1', '  virtual_ipaddress {', `    ${vip}`, '  }', '}',
    ];
    return [
      'global_defs {', `  router_id ${n.label}`, '  vrrp_version 3', `  lvs_sync_daemon ${SYNC_INTERFACE} gateway id ${syncId}`, '}',
      'vrrp_sync_group lb {', '  group {', '    front', '    gateway', '  }', '}',
      ...instance('front', 'eth0', 61, VIP),
      ...instance('gateway', 'eth1', 62, GATEWAY),
      ...([[ECHO_PORT, 'NAT'], [DR_ECHO_PORT, 'DR']] as const).flatMap(([port, kind]) => [
        `virtual_server ${VIP} ${port} {`, '  lb_algo rr', `  lb_kind ${kind}`, '  protocol TCP',
        ...BACKENDS.flatMap((b) => [`  real_server ${b} ${port} {`, '    weight 1', '  }']),
        '}',
      ]),
      '',
    ].join('\n');
  }

  /** Starts keepalived (VRRP and checker) in the node's netns on keepalivedConf. */
  startKeepalived(n: PairNode, syncId: number): Keepalived {
    const dir = mkdtempSync(join(n.dir, 'ka-'));
    const conf = join(dir, 'keepalived.conf');
    writeFileSync(conf, this.keepalivedConf(n, syncId));
    // Own pid files: keepalived refuses to start when its pid file names a live process.
    const p = n.ns.spawn('keepalived', ['-n', '-l', '-D', '-f', conf, '-p', join(dir, 'k.pid'), '-r', join(dir, 'v.pid'), '-c', join(dir, 'c.pid')]);
    this.procs.push(p);
    const ka: Keepalived = { proc: p, log: '' };
    const keep = (d: Buffer) => { ka.log = (ka.log + d.toString()).slice(-100_000); };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    return ka;
  }

  /** SIGKILL of every process in the node's netns (keepalived forks its VRRP and checker children). */
  async killAll(n: PairNode): Promise<void> {
    const pids = await run('ip', ['netns', 'pids', n.ns.name], { allowFail: true });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
  }

  /** PUT /v1/state to the running agent (curl inside its netns: cheaper than the CLI under TCG). */
  async putState(n: PairNode, sync: SyncSettings | undefined): Promise<void> {
    const token = readFileSync(n.tokenFile, 'utf8').trim();
    await run('nsenter', [`--net=/run/netns/${n.ns.name}`, 'curl', '-sS', '--fail-with-body', '-m', '30', '-X', 'PUT',
      '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json',
      '--data-binary', JSON.stringify(this.desiredState(n, sync)), `${n.agent!.server}/v1/state`], { timeoutMs: 40_000 });
  }

  private async startEcho(ns: Netns, name: string, port: number): Promise<void> {
    const p = ns.spawn(process.execPath, [TOOL, 'serve', name, String(port)]);
    this.procs.push(p);
    await withTimeout(lineStarting(p, 'listening'), 60_000, `${name} echo server did not start`);
  }

  /** COUNT long connections from the client through VIP:PORT, each streaming every INTERVAL_MS. */
  async hold(count: number, intervalMs: number, port = ECHO_PORT): Promise<HeldStreams> {
    const p = this.pair.client.spawn(process.execPath, [TOOL, 'hold', VIP, String(port), String(count), String(intervalMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.procs.push(p);
    const streams = new HeldStreams(p, port);
    const ready = await withTimeout(streams.next('ready'), 60_000, 'the held connections did not open');
    streams.opened = JSON.parse(ready) as Array<{ localPort: number; backend: string }>;
    return streams;
  }

  /** A new connection (greeting + one echo) every EVERY_MS for MS; resolves with every result. */
  probe(ms: number, everyMs: number): Promise<Array<{ backend: string; ok: boolean; error: string }>> {
    const p = this.pair.client.spawn(process.execPath, [TOOL, 'probe', VIP, String(ECHO_PORT), String(ms), String(everyMs)]);
    this.procs.push(p);
    return withTimeout(lineStarting(p, 'result '), ms + 60_000, 'the probe did not finish').then((l) => JSON.parse(l) as Array<{ backend: string; ok: boolean; error: string }>);
  }

  /** The client's connections to VIP:PORT in the node's IPVS table: client port -> "STATE real-server". */
  async connections(n: PairNode, port = ECHO_PORT): Promise<Map<number, { state: string; real: string }>> {
    const out = await this.pair.ipvsadm(n, '-Lnc');
    const m = new Map<number, { state: string; real: string }>();
    const re = new RegExp(`^TCP\\s+\\S+\\s+(\\S+)\\s+${esc(CLIENT)}:(\\d+)\\s+${esc(VIP)}:${port}\\s+(\\S+)`);
    for (const line of out.split('\n')) {
      const x = re.exec(line);
      if (x) m.set(Number(x[2]), { state: x[1]!, real: x[3]! });
    }
    return m;
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await this.pair.cleanup();
  }
}

const esc = (s: string) => s.replace(/\./g, '\\.');

/** The rest of the first stdout line of `p` that starts with `prefix`. */
function lineStarting(p: ChildProcess, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = '';
    p.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    createInterface({ input: p.stdout! }).on('line', (l) => { if (l.startsWith(prefix)) resolve(l.slice(prefix.length)); });
    p.once('exit', (code) => reject(new Error(`exited (${code}) before "${prefix}": ${err}`)));
  });
}

/** The `hold` process: progress on demand, the checked result at stop. */
export class HeldStreams {
  opened: Array<{ localPort: number; backend: string }> = [];
  private readonly waiting: Array<{ prefix: string; resolve: (rest: string) => void }> = [];

  constructor(private readonly p: ChildProcess, readonly port: number = ECHO_PORT) {
    createInterface({ input: p.stdout! }).on('line', (l) => {
      const i = this.waiting.findIndex((w) => l.startsWith(`${w.prefix} `));
      if (i >= 0) this.waiting.splice(i, 1)[0]!.resolve(l.slice(l.indexOf(' ') + 1));
    });
  }

  next(prefix: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ prefix, resolve });
      this.p.once('exit', (code) => reject(new Error(`echo-stream hold exited (${code})`)));
    });
  }

  /** Echoed bytes per connection so far (-1: the connection failed). */
  async progress(): Promise<number[]> {
    const line = this.next('progress');
    this.p.stdin!.write('progress\n');
    return JSON.parse(await withTimeout(line, 30_000, 'no progress report')) as number[];
  }

  async stop(): Promise<HeldConnection[]> {
    const line = this.next('result');
    this.p.stdin!.write('stop\n');
    const rest = await withTimeout(line, 60_000, 'no result from the held connections');
    if (this.p.exitCode === null && this.p.signalCode === null) await withTimeout(once(this.p, 'exit'), 10_000, 'echo-stream hold did not exit');
    return JSON.parse(rest) as HeldConnection[];
  }
}
