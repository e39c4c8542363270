import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Netns, run, uniqueName } from './netns.js';

/**
 * A load-balancing lab inside the IPVS VM. The guest's init netns is the LB (IPVS lives there, so
 * the test's IpvsClient runs in-process); a client netns and backend netns hang off it:
 *
 *   nat: client --veth-- LB (router, VIP on a dummy) --bridge-- backends (default route via LB)
 *   dr:  client, LB and backends share one bridge; backends hold the VIP on lo with
 *        arp_ignore=1 / arp_announce=2 and answer the client directly.
 *
 * Every backend runs `http-tool serve NAME` (answers its own name). `cleanup()` removes it all.
 */

const TOOL = fileURLToPath(new URL('./http-tool.js', import.meta.url));
let labs = 0;

export interface LabBackend {
  name: string;
  ns: Netns;
  v4: string;
  v6: string;
  server: ChildProcess;
}

async function sysctl(ns: Netns | undefined, key: string, value: string): Promise<void> {
  const args = ['-qw', `${key}=${value}`];
  if (ns) await ns.exec('sysctl', args);
  else await run('sysctl', args);
}

export class IpvsLab {
  readonly client: Netns;
  readonly backends: LabBackend[] = [];
  /** IPv4 and IPv6 VIPs (local to the LB). */
  readonly vip4: string;
  readonly vip6: string;
  private readonly links: string[] = [];
  private readonly procs: ChildProcess[] = [];

  private constructor(readonly mode: 'nat' | 'dr', private readonly net: number, client: Netns) {
    this.client = client;
    this.vip4 = mode === 'nat' ? `10.${net}.0.1` : `10.${net}.3.100`;
    this.vip6 = `fd00:${net}::1`;
  }

  static async create(mode: 'nat' | 'dr', backendCount: number): Promise<IpvsLab> {
    labs += 1;
    const net = 20 + ((process.pid * 7 + labs) % 200);
    const lab = new IpvsLab(mode, net, await Netns.create('cl'));
    try {
      await lab.build(backendCount);
    } catch (e) {
      await lab.cleanup();
      throw e;
    }
    return lab;
  }

  private async veth(ns: Netns, ifInNs: string, addrs: string[]): Promise<string> {
    const host = uniqueName('lb');
    const tmp = uniqueName('lp');
    await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', tmp]);
    this.links.push(host);
    await run('ip', ['link', 'set', tmp, 'netns', ns.name]);
    await ns.exec('ip', ['link', 'set', tmp, 'name', ifInNs]);
    for (const a of addrs) await ns.exec('ip', ['addr', 'add', a, 'dev', ifInNs, ...(a.includes(':') ? ['nodad'] : [])]);
    await ns.exec('ip', ['link', 'set', ifInNs, 'up']);
    await run('ip', ['link', 'set', host, 'up']);
    return host;
  }

  private async build(n: number): Promise<void> {
    const N = this.net;
    await sysctl(undefined, 'net.ipv4.ip_forward', '1');
    await sysctl(undefined, 'net.ipv6.conf.all.forwarding', '1');
    const br = uniqueName('br');
    await run('ip', ['link', 'add', br, 'type', 'bridge']);
    this.links.push(br);
    await run('ip', ['link', 'set', br, 'up']);
    const dummy = uniqueName('vip');
    await run('ip', ['link', 'add', dummy, 'type', 'dummy']);
    this.links.push(dummy);
    await run('ip', ['link', 'set', dummy, 'up']);
    await run('ip', ['addr', 'add', `${this.vip4}/32`, 'dev', dummy]);
    await run('ip', ['addr', 'add', `${this.vip6}/128`, 'dev', dummy, 'nodad']);

    const lanV4 = this.mode === 'nat' ? `10.${N}.2` : `10.${N}.3`;
    const lanV6 = `fd00:${N}:2:`;
    await run('ip', ['addr', 'add', `${lanV4}.254/24`, 'dev', br]);
    await run('ip', ['addr', 'add', `${lanV6}:fe/64`, 'dev', br, 'nodad']);

    if (this.mode === 'nat') {
      const host = await this.veth(this.client, 'eth0', [`10.${N}.1.10/24`, `fd00:${N}:1::10/64`]);
      await run('ip', ['addr', 'add', `10.${N}.1.254/24`, 'dev', host]);
      await run('ip', ['addr', 'add', `fd00:${N}:1::fe/64`, 'dev', host, 'nodad']);
      await this.client.exec('ip', ['route', 'add', 'default', 'via', `10.${N}.1.254`]);
      await this.client.exec('ip', ['-6', 'route', 'add', 'default', 'via', `fd00:${N}:1::fe`]);
    } else {
      const host = await this.veth(this.client, 'eth0', [`${lanV4}.10/24`]);
      await run('ip', ['link', 'set', host, 'master', br]);
    }

    for (let i = 0; i < n; i++) {
      const name = `backend${i + 1}`;
      const ns = await Netns.create('be');
      const v4 = `${lanV4}.${i + 1}`, v6 = `${lanV6}:${i + 1}`;
      const host = await this.veth(ns, 'eth0', [`${v4}/24`, `${v6}/64`]);
      await run('ip', ['link', 'set', host, 'master', br]);
      await ns.exec('ip', ['route', 'add', 'default', 'via', `${lanV4}.254`]);
      await ns.exec('ip', ['-6', 'route', 'add', 'default', 'via', `${lanV6}:fe`]);
      if (this.mode === 'dr') {
        await ns.exec('ip', ['addr', 'add', `${this.vip4}/32`, 'dev', 'lo']);
        for (const k of ['all', 'eth0']) {
          await sysctl(ns, `net.ipv4.conf.${k}.arp_ignore`, '1');
          await sysctl(ns, `net.ipv4.conf.${k}.arp_announce`, '2');
        }
      }
      const server = ns.spawn(process.execPath, [TOOL, 'serve', name, '80']);
      this.procs.push(server);
      this.backends.push({ name, ns, v4, v6, server });
    }
    // Wait for every server to listen (node starts slowly under TCG).
    await Promise.all(this.backends.map(async (b) => {
      let out = '';
      b.server.stdout!.setEncoding('utf8');
      const ready = new Promise<void>((resolve, reject) => {
        b.server.stdout!.on('data', (c: string) => { out += c; if (out.includes('listening')) resolve(); });
        b.server.once('exit', (code) => reject(new Error(`${b.name} server exited with ${code}`)));
      });
      await withTimeout(ready, 60_000, `${b.name} server did not start`);
    }));
  }

  /** COUNT sequential HTTP requests from the client, each on a new connection; the answers. */
  async get(url: string, count: number): Promise<string[]> {
    const r = await this.client.exec(process.execPath, [TOOL, 'get', url, String(count)], { timeoutMs: 120_000 });
    return JSON.parse(r.stdout) as string[];
  }

  /** Starts a long transfer from the client; resolves when the first chunk arrived. */
  async startStream(url: string): Promise<{ done: Promise<{ name: string; chunks: number; ok: boolean; error: string }> }> {
    const p = this.client.spawn(process.execPath, [TOOL, 'stream', url]);
    this.procs.push(p);
    let out = '', err = '';
    p.stdout!.setEncoding('utf8');
    p.stderr!.setEncoding('utf8');
    p.stdout!.on('data', (c: string) => (out += c));
    const started = new Promise<void>((resolve, reject) => {
      p.stderr!.on('data', (c: string) => { err += c; if (err.includes('streaming')) resolve(); });
      p.once('exit', () => reject(new Error(`stream ended before it started: ${out} ${err}`)));
    });
    const done = once(p, 'exit').then(() => JSON.parse(out) as { name: string; chunks: number; ok: boolean; error: string });
    await withTimeout(started, 30_000, 'stream did not start');
    return { done };
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) p.kill('SIGKILL');
    for (const b of this.backends) await b.ns.delete();
    await this.client.delete();
    for (const l of this.links) await run('ip', ['link', 'del', l], { allowFail: true });
  }
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(t);
  }
}
