import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
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
 * one NAT service VIP:ECHO_PORT -> backends:ECHO_PORT whose backends run `echo-stream serve`,
 * and `ipvs.sync` on the back LAN (eth1) unless the test leaves it out.
 */

export const ECHO_PORT = 9000;
export const SYNC_INTERFACE = 'eth1';
const TOOL = fileURLToPath(new URL('./echo-stream.js', import.meta.url));

export interface SyncSettings { syncId: number; refreshPeriod?: number }

export class IpvsSyncLab {
  private readonly procs: ChildProcess[] = [];
  private constructor(readonly pair: IpvsPair) {}

  static async create(): Promise<IpvsSyncLab> {
    // No health checks: the test controls failover with links and signals alone.
    const pair = await IpvsPair.create({ advertInterval: 1, health: {}, reconcileIntervalSeconds: 2 });
    const lab = new IpvsSyncLab(pair);
    try {
      await Promise.all(pair.backends.map((ns, i) => lab.startEcho(ns, `b${i + 1}`)));
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
      services: [{ name: 'echo', address: VIP, port: ECHO_PORT, scheduler: 'rr', forwarding: 'nat', backends: BACKENDS.map((address) => ({ address, port: ECHO_PORT })) }],
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

  /** PUT /v1/state to the running agent (curl inside its netns: cheaper than the CLI under TCG). */
  async putState(n: PairNode, sync: SyncSettings | undefined): Promise<void> {
    const token = readFileSync(n.tokenFile, 'utf8').trim();
    await run('nsenter', [`--net=/run/netns/${n.ns.name}`, 'curl', '-sS', '--fail-with-body', '-m', '30', '-X', 'PUT',
      '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json',
      '--data-binary', JSON.stringify(this.desiredState(n, sync)), `${n.agent!.server}/v1/state`], { timeoutMs: 40_000 });
  }

  private async startEcho(ns: Netns, name: string): Promise<void> {
    const p = ns.spawn(process.execPath, [TOOL, 'serve', name, String(ECHO_PORT)]);
    this.procs.push(p);
    await withTimeout(lineStarting(p, 'listening'), 60_000, `${name} echo server did not start`);
  }

  /** COUNT long connections from the client through the VIP, each streaming every INTERVAL_MS. */
  async hold(count: number, intervalMs: number): Promise<HeldStreams> {
    const p = this.pair.client.spawn(process.execPath, [TOOL, 'hold', VIP, String(ECHO_PORT), String(count), String(intervalMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.procs.push(p);
    const streams = new HeldStreams(p);
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

  /** The client's connections to VIP:ECHO_PORT in the node's IPVS table: client port -> "STATE real-server". */
  async connections(n: PairNode): Promise<Map<number, { state: string; real: string }>> {
    const out = await this.pair.ipvsadm(n, '-Lnc');
    const m = new Map<number, { state: string; real: string }>();
    const re = new RegExp(`^TCP\\s+\\S+\\s+(\\S+)\\s+${esc(CLIENT)}:(\\d+)\\s+${esc(VIP)}:${ECHO_PORT}\\s+(\\S+)`);
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

  constructor(private readonly p: ChildProcess) {
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
