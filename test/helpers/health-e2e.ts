import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Netns } from './netns.js';

/** Shared pieces of the health end-to-end tests (agent logs, client, SYN capture). */

export const HEALTH_TRAFFIC = fileURLToPath(new URL('./health-traffic.js', import.meta.url));
export const FULCRUM_CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface LogLine { time: number; msg: string; component?: string; [k: string]: unknown }

/** Collects the JSON lines a child writes on stdout (pino logs, client results). */
export class Lines<T> {
  readonly items: T[] = [];
  constructor(proc: ChildProcess, parse: (line: string) => T | undefined = (l) => JSON.parse(l) as T) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      try { const v = parse(l); if (v !== undefined) this.items.push(v); } catch { /* not JSON */ }
    });
  }
  async waitFor(what: string, pred: (v: T) => boolean, ms = 30_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = this.items.find(pred);
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

export interface ClientResult { t: number; id?: string; error?: string }

/** A client in `ns` sending one HTTP request on a fresh connection every `everyMs` for `ms`. */
export function startClient(ns: Netns, host: string, port: number, ms: number, everyMs: number): { proc: ChildProcess; results: Lines<ClientResult> } {
  const proc = ns.spawn(process.execPath, [HEALTH_TRAFFIC, 'client', host, String(port), String(ms), String(everyMs)]);
  return { proc, results: new Lines<ClientResult>(proc) };
}

/** An HTTP server answering "id" in `ns`; resolves once it listens. */
export async function startServer(ns: Netns, id: string, port: number, timeoutMs = 30_000): Promise<ChildProcess> {
  const proc = ns.spawn(process.execPath, [HEALTH_TRAFFIC, 'server', id, String(port)]);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server ${id} did not start`)), timeoutMs);
    proc.stdout!.once('data', () => { clearTimeout(t); resolve(); });
    proc.once('exit', (c) => { clearTimeout(t); reject(new Error(`server ${id} exited ${c}`)); });
  });
  return proc;
}

export async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((r) => { proc.once('exit', () => r()); proc.kill('SIGKILL'); });
}

/**
 * tcpdump in `ns` on `dev`: the epoch times (ms) of TCP SYNs from `src` to port `port`, i.e. new
 * client connections that reached this host.
 */
export async function captureSyns(ns: Netns, dev: string, src: string, port: number): Promise<{ proc: ChildProcess; times: number[] }> {
  const proc = ns.spawn('tcpdump', ['-i', dev, '-n', '-l', '-tt', '-Q', 'in', `tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0 and src host ${src} and dst port ${port}`]);
  const times: number[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const m = l.match(/^(\d+)\.(\d{6}) /);
    if (m) times.push(Number(m[1]) * 1000 + Number(m[2]) / 1000);
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
    proc.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('listening on')) { clearTimeout(t); resolve(); } });
    proc.once('exit', (c) => { clearTimeout(t); reject(new Error(`tcpdump exited ${c}`)); });
  });
  return { proc, times };
}

/**
 * The agent process (`fulcrum agent --config`) inside `ns` (nsenter, not `ip netns exec`, which
 * remounts /sys and hides /sys/fs/bpf), or in this process's netns when `ns` is undefined.
 */
export function startAgent(ns: Netns | undefined, config: string): { proc: ChildProcess; logs: Lines<LogLine> } {
  const argv = [process.execPath, FULCRUM_CLI, 'agent', '--config', config];
  const proc = ns
    ? spawn('nsenter', [`--net=/run/netns/${ns.name}`, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return { proc, logs: new Lines<LogLine>(proc) };
}

/** N kept-alive client connections in `ns`: `first` holds the ids that answered, `again()` asks on the same connections. */
export function holdConnections(ns: Netns, host: string, port: number, n: number) {
  const proc = ns.spawn(process.execPath, [HEALTH_TRAFFIC, 'hold', host, String(port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = new Lines<{ ids: string[] }>(proc);
  let seen = 0;
  const next = async () => { const want = ++seen; await lines.waitFor(`hold round ${want}`, () => lines.items.length >= want, 20_000); return lines.items[want - 1]!.ids; };
  return { proc, first: next(), again: async () => { proc.stdin!.write('again\n'); return next(); }, quit: () => proc.stdin!.end('quit\n') };
}
