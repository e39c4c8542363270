import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProcess, fulcrum } from './agent-process.js';
import { run, type Netns } from './netns.js';
import { fulcrumYaml, type RouterSpec } from './vrrp-peers.js';
import type { VrrpInstanceStatus } from '../../src/vrrp/index.js';
import type { FulcrumEvent } from '../../src/events.js';

/**
 * A VRRP node run by the real `fulcrum agent` process in a netns: its own state directory and
 * config in a temp dir, the API on a free port of the netns's loopback (reached with curl and the
 * CLI run inside that netns), and the probes the agent VRRP tests share (VIP holders, overlap).
 */

export interface AgentStatusBody {
  revision: number;
  ready: boolean;
  vrrp?: VrrpInstanceStatus[];
}

export class VrrpAgent {
  readonly dir = mkdtempSync(join(tmpdir(), 'fl-vrrp-agent-'));
  readonly configPath = join(this.dir, 'fulcrum.json');
  readonly stateDir = join(this.dir, 'state');
  readonly tokenFile = join(this.stateDir, 'admin.token');
  process: AgentProcess | undefined;
  private readonly streams: EventStream[] = [];

  constructor(readonly ns: Netns, spec: RouterSpec) {
    this.configure(spec);
  }

  /** (Re)writes the config file: agent settings plus one VRRP instance `vi1` on eth0. */
  configure(spec: RouterSpec): void {
    const config = { agent: { stateDir: this.stateDir, api: { port: 0 } }, ...(JSON.parse(fulcrumYaml(spec)) as object) };
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
  }

  async start(): Promise<AgentProcess> {
    this.process = await AgentProcess.start(this.configPath, { netns: this.ns.name, timeoutMs: 30_000 });
    return this.process;
  }

  private get live(): AgentProcess {
    if (!this.process) throw new Error('agent not started');
    return this.process;
  }

  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null> {
    return this.live.stop();
  }

  kill9(): Promise<number | null> {
    return this.live.kill9();
  }

  private token(): string {
    return readFileSync(this.tokenFile, 'utf8').trim();
  }

  /** GET a JSON path of the API from inside the netns (the API listens on its loopback). */
  async get<T>(path: string): Promise<T> {
    const r = await run('nsenter', [`--net=/run/netns/${this.ns.name}`, 'curl', '-sS', '--fail-with-body', '-m', '10',
      '-H', `authorization: Bearer ${this.token()}`, `${this.live.server}${path}`], { timeoutMs: 15_000 });
    return JSON.parse(r.stdout) as T;
  }

  status(): Promise<AgentStatusBody> {
    return this.get<AgentStatusBody>('/v1/status');
  }

  async vrrp(): Promise<VrrpInstanceStatus> {
    const v = (await this.status()).vrrp?.[0];
    if (!v) throw new Error('no vrrp[0] in /v1/status');
    return v;
  }

  /** `fulcrum WORDS...` against this agent, run inside its netns. */
  cli(words: string[]) {
    return fulcrum(words, this.live.server, this.tokenFile, this.ns.name);
  }

  /** GET /v1/events?since=0 (SSE) of the running process: everything from its start, then live. */
  events(): EventStream {
    const s = new EventStream(this.ns, `${this.live.server}/v1/events?since=0`, this.token());
    this.streams.push(s);
    return s;
  }

  /** Kills what is left (process, streams) and removes the temp dir. */
  async dispose(): Promise<void> {
    for (const s of this.streams) s.close();
    if (this.process && this.process.proc.exitCode === null && this.process.proc.signalCode === null) await this.process.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The agent's SSE stream read by curl inside the netns, parsed into events. */
export class EventStream {
  readonly events: FulcrumEvent[] = [];
  private readonly proc: ChildProcess;
  private buf = '';

  constructor(ns: Netns, url: string, token: string) {
    this.proc = spawn('nsenter', [`--net=/run/netns/${ns.name}`, 'curl', '-sS', '-N', '-m', '300', '-H', `authorization: Bearer ${token}`, url], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      const blocks = this.buf.split('\n\n');
      this.buf = blocks.pop() ?? '';
      for (const block of blocks) {
        const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (data) this.events.push(JSON.parse(data) as FulcrumEvent);
      }
    });
  }

  /** The vrrp-transition events seen so far, as "from->to". */
  transitions(): string[] {
    return this.events.filter((e) => e.type === 'vrrp-transition').map((e) => {
      const d = e.data as { from: string; to: string };
      return `${d.from}->${d.to}`;
    });
  }

  close(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/** The IPv4/IPv6 addresses on eth0 of a netns (`ip -j addr`). */
export async function eth0Addresses(ns: Netns): Promise<string[]> {
  const r = await run('ip', ['-n', ns.name, '-j', 'addr', 'show', 'dev', 'eth0'], { allowFail: true, timeoutMs: 5000 });
  try {
    const links = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
    return links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? '')).filter(Boolean);
  } catch {
    return [];
  }
}

export interface OverlapReport {
  /** Longest time both nodes held the VIP, measured from the samples bracketing it (upper bound). */
  longestMs: number;
  /** The same overlap as first to last sample that saw both (lower bound). */
  longestSeenMs: number;
  samples: number;
  /** Largest gap between two samples (the resolution actually achieved). */
  maxGapMs: number;
  /** Per node, in how many samples it held the VIP. */
  heldIn: Record<string, number>;
}

/**
 * Polls `ip -j addr` of every node at a short period and records who holds the VIP, so the
 * longest "held by two" window can be computed. Bounded by `maxMs`.
 */
export class VipWatch {
  private readonly samples: Array<{ t: number; holders: string[] }> = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly nodes: Record<string, Netns>, private readonly vip: string, periodMs = 20, maxMs = 60_000) {
    this.loop = this.poll(periodMs, maxMs);
  }

  private async poll(periodMs: number, maxMs: number): Promise<void> {
    const end = Date.now() + maxMs;
    while (this.running && Date.now() < end) {
      const t0 = Date.now();
      const held = await Promise.all(Object.entries(this.nodes).map(async ([label, ns]) => ((await eth0Addresses(ns)).includes(this.vip) ? label : '')));
      // The sample time is when the reads started; both reads take a few ms.
      this.samples.push({ t: t0, holders: held.filter(Boolean) });
      const wait = periodMs - (Date.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Stops polling; returns the overlap over all samples. */
  async stop(): Promise<OverlapReport> {
    this.running = false;
    await this.loop;
    return this.overlap();
  }

  /** The overlap over all samples so far, or only from `sinceMs` (epoch ms) on. */
  overlap(sinceMs?: number): OverlapReport {
    return overlapOf(sinceMs === undefined ? this.samples : clipped(this.samples, sinceMs));
  }
}

/** The samples from `since` on, led by one at `since` carrying the holders known then. */
function clipped(samples: ReadonlyArray<{ t: number; holders: string[] }>, since: number): Array<{ t: number; holders: string[] }> {
  const earlier = samples.filter((s) => s.t < since).at(-1);
  return [...(earlier ? [{ t: since, holders: earlier.holders }] : []), ...samples.filter((s) => s.t >= since)];
}

export function overlapOf(samples: ReadonlyArray<{ t: number; holders: string[] }>): OverlapReport {
  let longestMs = 0, longestSeenMs = 0, maxGapMs = 0;
  for (let i = 1; i < samples.length; i++) maxGapMs = Math.max(maxGapMs, samples[i]!.t - samples[i - 1]!.t);
  for (let i = 0; i < samples.length; i++) {
    if (samples[i]!.holders.length < 2) continue;
    let j = i;
    while (j + 1 < samples.length && samples[j + 1]!.holders.length >= 2) j++;
    const before = samples[i - 1]?.t ?? samples[i]!.t;
    const after = samples[j + 1]?.t ?? samples[j]!.t;
    longestMs = Math.max(longestMs, after - before);
    longestSeenMs = Math.max(longestSeenMs, samples[j]!.t - samples[i]!.t);
    i = j;
  }
  const heldIn: Record<string, number> = {};
  for (const s of samples) for (const h of s.holders) heldIn[h] = (heldIn[h] ?? 0) + 1;
  return { longestMs, longestSeenMs, samples: samples.length, maxGapMs, heldIn };
}
