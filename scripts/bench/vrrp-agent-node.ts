/**
 * A full `fulcrum agent` as one VRRP node of the failover benchmark: its own state directory and
 * bpffs pin directory, the API on a free port, the bench's VRRP instance (the same knobs as the
 * `fulcrum vrrp run` and keepalived lines) plus XDP services on the VIP whose backends are
 * health-checked and tracked by the instance (a node whose services are below quorum goes to
 * FAULT and gives the VIP up). The host has no IPVS, so the services use the XDP dataplane,
 * attached natively to the node's eth0; ICMP, ARP and VRRP pass through the program to the kernel.
 *
 * One AgentNode is started and stopped many times over a bench case (a restarted node keeps its
 * store, health state and pinned XDP program, as a real node does); dispose() runs
 * `fulcrum agent --cleanup` and removes both directories.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProcess, fulcrum } from '../../test/helpers/agent-process.js';
import { Netns, run, uniqueName } from '../../test/helpers/netns.js';
import { fulcrumYaml, waitFor, type RouterSpec } from '../../test/helpers/vrrp-peers.js';

/** What the bench needs of a running node, whichever implementation it is. */
export interface BenchRouter {
  /** SIGTERM and wait for the exit (planned stop). */
  stop(): Promise<void>;
  /** SIGKILL of every process in the node's netns (a dead node; pair with unplug). */
  kill(): Promise<void>;
}

/** The backend host every agent node checks: TCP listeners on these ports. */
export const BACKEND_PORTS = [8080, 8443] as const;

/** The services on the VIP: one per backend port, all health-checked and tracked. */
function services(vip: string, backend: string) {
  return BACKEND_PORTS.map((port, i) => ({
    name: `svc${i + 1}`,
    dataplane: 'xdp',
    address: vip,
    port: 80 + i,
    backends: [{ address: backend, port }],
    health: { check: { kind: 'tcp' }, interval: 1, timeout: 1, rise: 2, fall: 3 },
  }));
}

/** Small tables: they load fast (the bench is about failover, not table sizes). */
const XDP = { interfaces: [{ name: 'eth0', mode: 'native' }], maxVips: 8, maxBackends: 64, maglevTableSize: 251, conntrackSize: 4096 };

export function agentConfig(spec: RouterSpec, backend: string, stateDir: string, pinDir: string): object {
  const vrrp = (JSON.parse(fulcrumYaml(spec)) as { vrrp: Array<Record<string, unknown>> }).vrrp;
  const svcs = services(spec.vips[0]!, backend);
  return {
    agent: { stateDir, api: { port: 0 }, xdp: { pinDir } },
    xdp: XDP,
    services: svcs,
    // No weight: a tracked service below quorum forces FAULT (the node must not hold the VIP).
    vrrp: vrrp.map((v) => ({ ...v, track: { services: svcs.map((s) => ({ service: s.name })) } })),
  };
}

async function killNetns(ns: Netns): Promise<void> {
  const pids = await run('ip', ['netns', 'pids', ns.name], { allowFail: true });
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
  }
}

export class AgentNode {
  private readonly dir: string;
  private readonly configPath: string;
  private readonly pinDir: string;
  private running: AgentProcess | undefined;

  constructor(readonly ns: Netns, spec: RouterSpec, backend: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'fl-bench-agent-'));
    this.pinDir = `/sys/fs/bpf/${uniqueName('flbench')}-${Date.now() % 100000}`;
    this.configPath = join(this.dir, 'fulcrum.json');
    writeFileSync(this.configPath, JSON.stringify(agentConfig(spec, backend, join(this.dir, 'state'), this.pinDir)));
  }

  /** Starts the agent and waits until its API listens. */
  async start(): Promise<BenchRouter> {
    const agent = await AgentProcess.start(this.configPath, { netns: this.ns.name, timeoutMs: 30_000 });
    this.running = agent;
    const exited = async () => {
      await waitFor('the agent to exit', () => agent.proc.exitCode !== null || agent.proc.signalCode !== null, 15_000);
      if (this.running === agent) this.running = undefined;
    };
    return {
      stop: async () => {
        const timer = setTimeout(() => agent.proc.kill('SIGKILL'), 10_000);
        await agent.stop();
        clearTimeout(timer);
        await exited();
      },
      kill: async () => {
        await killNetns(this.ns);
        await exited();
      },
    };
  }

  /**
   * One line on what the running agent does, from `fulcrum status` and the link: the dataplanes
   * found, the XDP program on eth0, each service's healthy backends, the VRRP state and priority.
   */
  async summary(): Promise<string> {
    const agent = this.running;
    if (!agent) return 'not running';
    const r = await fulcrum(['status', '-o', 'json'], agent.server, join(this.dir, 'state', 'admin.token'), this.ns.name);
    if (r.code !== 0) return `status failed: ${r.stderr.trim()}`;
    const s = JSON.parse(r.stdout) as {
      dataplanes: Array<{ name: string; available: boolean }>;
      health?: Array<{ service: string; backends: Array<{ state: string }> }>;
      vrrp?: Array<{ name: string; state: string; priority: number; fault?: string }>;
    };
    const link = JSON.parse((await this.ns.exec('ip', ['-j', '-d', 'link', 'show', 'dev', 'eth0'])).stdout) as Array<{ xdp?: { mode?: number; prog?: { id?: number } } }>;
    const xdp = link[0]?.xdp;
    return [
      `dataplanes ${s.dataplanes.map((d) => `${d.name}:${d.available ? 'yes' : 'no'}`).join(',')}`,
      `eth0 xdp ${xdp ? `prog ${xdp.prog?.id ?? '?'} mode ${xdp.mode === 1 ? 'native' : String(xdp.mode)}` : 'none'}`,
      `health ${(s.health ?? []).map((h) => `${h.service}:${h.backends.filter((b) => b.state === 'up').length}/${h.backends.length} up`).join(',')}`,
      `vrrp ${(s.vrrp ?? []).map((v) => `${v.name}:${v.state} priority ${v.priority}${v.fault ? ` (${v.fault})` : ''}`).join(',')}`,
    ].join('; ');
  }

  /** The agent's log records (JSON lines) of the running process, for diagnosis. */
  logs(): Array<Record<string, unknown>> {
    return this.running?.logs ?? [];
  }

  /** Kills a running agent, removes what it put in the kernel and both directories. */
  async dispose(): Promise<void> {
    if (this.running) await this.running.kill9().catch(() => undefined);
    this.running = undefined;
    await AgentProcess.once(this.configPath, ['--cleanup'], this.ns.name).catch(() => undefined);
    await run('rm', ['-rf', this.pinDir], { allowFail: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The backend host: a TCP listener per BACKEND_PORTS port that accepts and closes. */
export async function startBackend(ns: Netns): Promise<{ stop(): Promise<void> }> {
  const script = `const net=require('net');for(const p of ${JSON.stringify(BACKEND_PORTS)})net.createServer((s)=>s.end()).listen(p,()=>console.log('listening '+p));`;
  const proc = ns.spawn(process.execPath, ['-e', script]);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor('the backend to listen', () => BACKEND_PORTS.every((p) => out.includes(`listening ${p}`)), 10_000);
  return {
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}
