import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns, run } from './netns.js';

/**
 * VRRP routers as processes inside netns: keepalived (the Debian package, the reference peer) and
 * Fulcrum (`fulcrum vrrp run`), both with the same knobs, plus the probes the interop tests and
 * the failover benchmark share (VIP holder, neighbour cache, a 10 ms pinger).
 */

/** dist/test/helpers -> the repository root. */
export const repoRoot = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const fulcrumMain = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export interface RouterSpec {
  version: 2 | 3;
  vrid: number;
  priority: number;
  /** Seconds. */
  advertInterval: number;
  vips: string[];
  preempt?: boolean;
  /** v2 simple password. */
  password?: string;
  /** keepalived needs native_ipv6 for an IPv6 instance. */
  ipv6?: boolean;
}

export function keepalivedSkipReason(): string | undefined {
  for (const p of ['/usr/sbin/keepalived', '/sbin/keepalived', '/usr/bin/keepalived']) if (existsSync(p)) return undefined;
  return 'needs keepalived (apt-get install keepalived; listed in scripts/setup.sh)';
}

export function keepalivedConf(spec: RouterSpec, name = 'VI_1'): string {
  return [
    'global_defs {',
    `  vrrp_version ${spec.version}`,
    `  router_id ${name}`,
    // keepalived's defaults, spelt out: Fulcrum's garp defaults are the same (5 at once, again after 5 s).
    '  vrrp_garp_master_delay 5',
    '  vrrp_garp_master_repeat 5',
    '}',
    `vrrp_instance ${name} {`,
    '  state BACKUP',
    '  interface eth0',
    `  virtual_router_id ${spec.vrid}`,
    `  priority ${spec.priority}`,
    `  advert_int ${spec.advertInterval}`,
    ...(spec.ipv6 ? ['  native_ipv6'] : []),
    ...(spec.preempt === false ? ['  nopreempt'] : []),
    ...(spec.password ? ['  authentication {', '    auth_type PASS', `    auth_pass ${spec.password}`, '  }'] : []),
    '  virtual_ipaddress {',
    ...spec.vips.map((v) => `    ${v}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

export function fulcrumYaml(spec: RouterSpec, name = 'vi1'): string {
  return JSON.stringify({
    vrrp: [{
      name, interface: 'eth0', vrid: spec.vrid, priority: spec.priority, version: spec.version, advertInterval: spec.advertInterval,
      vips: spec.vips, ...(spec.preempt === false ? { preempt: false } : {}),
      ...(spec.password ? { auth: { type: 'pass', password: spec.password } } : {}),
    }],
  });
}

export interface Router {
  readonly kind: 'keepalived' | 'fulcrum';
  readonly ns: Netns;
  readonly proc: ChildProcess;
  output(): string;
  /** SIGTERM and wait for the exit (a master sends priority 0 and drops its VIPs). */
  stop(): Promise<void>;
  /** SIGKILL of every process in the router's netns: no priority 0, VIPs stay (pair with unplug). */
  kill(): Promise<void>;
  /** Fulcrum only: the last status written (instances with state and master address). */
  status(): { state: string; masterAddress?: string; priority: number }[] | undefined;
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

function startProcess(kind: Router['kind'], ns: Netns, cmd: string, args: string[], dir: string, statusFile?: string): Router {
  const proc = ns.spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-200_000); });
  proc.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-200_000); });
  const stopWith = async (sig: NodeJS.Signals) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited(proc);
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
  const killAll = async () => {
    // keepalived forks its VRRP child: SIGKILL of the parent leaves the child running. A dead node
    // is every process of its netns gone (the only processes there are this router's).
    const pids = await run('ip', ['netns', 'pids', ns.name], { allowFail: true });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    await stopWith('SIGKILL');
  };
  return {
    kind, ns, proc,
    output: () => out,
    stop: () => stopWith('SIGTERM'),
    kill: killAll,
    status: () => {
      if (!statusFile) return undefined;
      try { return JSON.parse(readFileSync(statusFile, 'utf8')); } catch { return undefined; }
    },
  };
}

export function startKeepalived(ns: Netns, spec: RouterSpec): Router {
  const dir = mkdtempSync(join(tmpdir(), 'fl-ka-'));
  const conf = join(dir, 'keepalived.conf');
  writeFileSync(conf, keepalivedConf(spec));
  // Unique pid files: keepalived refuses to start when its pid file names a live process.
  return startProcess('keepalived', ns, 'keepalived', ['-n', '-l', '-D', '-P', '-f', conf, '-p', join(dir, 'keepalived.pid'), '-r', join(dir, 'vrrp.pid')], dir);
}

export function startFulcrum(ns: Netns, spec: RouterSpec): Router {
  const dir = mkdtempSync(join(tmpdir(), 'fl-vrrp-'));
  const conf = join(dir, 'fulcrum.yaml');
  writeFileSync(conf, fulcrumYaml(spec));
  const statusFile = join(dir, 'status.json');
  return startProcess('fulcrum', ns, process.execPath, [fulcrumMain, 'vrrp', 'run', '--config', conf, '--status-file', statusFile], dir, statusFile);
}

export function startRouter(kind: Router['kind'], ns: Netns, spec: RouterSpec): Router {
  return kind === 'keepalived' ? startKeepalived(ns, spec) : startFulcrum(ns, spec);
}

/** Polls `probe` every `everyMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, probe: () => Promise<T> | T, timeoutMs: number, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function holdsVip(ns: Netns, vip: string): Promise<boolean> {
  const r = await ns.exec('ip', ['-o', 'addr', 'show', 'dev', 'eth0'], { allowFail: true });
  return r.stdout.split('\n').some((l) => l.includes(` ${vip}/`));
}

export async function neighbourMac(ns: Netns, ip: string): Promise<string | undefined> {
  const r = await ns.exec('ip', ['neigh', 'show', ip, 'dev', 'eth0'], { allowFail: true });
  return /lladdr ([0-9a-f:]{17})/.exec(r.stdout)?.[1];
}

/**
 * ping every 10 ms with receive timestamps (-D): each reply's arrival time in ms. The outage of a
 * failover is the largest gap between consecutive replies in a window.
 */
export class Pinger {
  readonly replies: number[] = [];
  private readonly proc: ChildProcess;
  private buf = '';

  constructor(ns: Netns, target: string, maxSeconds: number) {
    this.proc = ns.spawn('ping', ['-n', '-D', '-i', '0.01', '-W', '1', '-w', String(maxSeconds), target]);
    this.proc.stdout?.on('data', (d: Buffer) => {
      this.buf += d.toString();
      const lines = this.buf.split('\n');
      this.buf = lines.pop() ?? '';
      for (const l of lines) {
        const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l);
        if (m?.[1]) this.replies.push(Number(m[1]) * 1000);
      }
    });
  }

  /** Replies received after `since` (epoch ms). */
  repliesAfter(since: number): number {
    return this.replies.filter((t) => t > since).length;
  }

  /** Largest gap between consecutive replies received within [from, to] (and the reply around it). */
  largestGap(from: number, to: number): { gapMs: number; lastOld: number; firstNew: number } | undefined {
    const inside = this.replies.filter((t) => t >= from && t <= to);
    let best: { gapMs: number; lastOld: number; firstNew: number } | undefined;
    for (let i = 1; i < inside.length; i++) {
      const gap = inside[i]! - inside[i - 1]!;
      if (!best || gap > best.gapMs) best = { gapMs: gap, lastOld: inside[i - 1]!, firstNew: inside[i]! };
    }
    return best;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGINT');
      await exited(this.proc);
    }
  }
}

/** Sets eth0 of a netns down: the node is gone from the segment. */
export async function unplug(ns: Netns): Promise<void> {
  await ns.exec('ip', ['link', 'set', 'eth0', 'down']);
}

export async function plug(ns: Netns): Promise<void> {
  await ns.exec('ip', ['link', 'set', 'eth0', 'up']);
}

export { run };
