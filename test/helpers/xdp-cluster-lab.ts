import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { decodeVipKey } from '../../src/xdp/abi.js';
import { AgentProcess } from './agent-process.js';
import { EtcdProcess } from './etcd.js';
import { run, uniqueName } from './netns.js';
import { createXdpAgentLab, ECHO, LAB_XDP, labBackend, type XdpAgentLab } from './xdp-agent-lab.js';

/**
 * A cluster of XDP load balancers on the host kernel for the cluster tier and its bench: per node
 * an XDP agent lab (client -> LB netns -> two echo backends, helpers/xdp-agent-lab.ts) and a
 * management link from the LB netns to the test's own namespace (host end 10.213.<i>.1, LB end
 * 10.213.<i>.2). One real etcd listens on 127.0.0.1 and on every host end; each node's `fulcrum
 * agent` runs in its LB netns with agent.store kind etcd and serves its API on its LB end (plain
 * HTTP on that private link: insecure), which the test reaches directly.
 */

export interface XdpClusterNode {
  id: string;
  lab: XdpAgentLab;
  /** The LB end of the management link (the agent's API address). */
  address: string;
  dir: string;
  config: string;
  pinDir: string;
  /** The local cache of the shared state (EtcdStateStore.recordApplied). */
  cacheFile: string;
  agent: AgentProcess | undefined;
}

/** The service every test of the lab can reach: VIP 10.0.0.1:80 on both echo backends. */
export const labService = (name: string, address = '10.0.0.1', port = 80) => ({
  name, protocol: 'tcp', dataplane: 'xdp', address, port, backends: [1, 2].map((i) => ({ address: labBackend(i), port: 8080 })),
});

export interface XdpClusterOptions {
  cluster: string;
  leaseTtlSeconds?: number;
  /** The nodes' xdp section (default LAB_XDP: small tables). */
  xdp?: Record<string, unknown>;
}

export class XdpCluster {
  readonly nodes: XdpClusterNode[] = [];
  private constructor(readonly etcd: EtcdProcess, readonly root: string, readonly options: XdpClusterOptions) {}

  /** Netns names start with `prefix` (3 characters at most: 4 netns per node). */
  static async create(prefix: string, ids: string[], options: XdpClusterOptions): Promise<XdpCluster> {
    const labs: XdpAgentLab[] = [];
    const root = mkdtempSync(join(tmpdir(), `fulcrum-${prefix}-`));
    try {
      for (const [i, id] of ids.entries()) {
        const lab = await createXdpAgentLab(`${prefix}${id}`);
        labs.push(lab);
        const host = uniqueName('clm'), inner = uniqueName('clmi');
        await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', inner]);
        await run('ip', ['link', 'set', inner, 'netns', lab.lb.name]);
        await lab.lb.exec('ip', ['link', 'set', inner, 'name', 'm0']);
        await lab.lb.exec('ip', ['addr', 'add', `10.213.${i + 1}.2/24`, 'dev', 'm0']);
        await lab.lb.exec('ip', ['link', 'set', 'm0', 'up']);
        await run('ip', ['addr', 'add', `10.213.${i + 1}.1/24`, 'dev', host]);
        await run('ip', ['link', 'set', host, 'up']);
      }
      const etcd = await EtcdProcess.start({ hosts: ids.map((_, i) => `10.213.${i + 1}.1`) });
      const c = new XdpCluster(etcd, root, options);
      for (const [i, id] of ids.entries()) {
        const dir = join(root, id);
        mkdirSync(dir, { recursive: true });
        const pinDir = `/sys/fs/bpf/${uniqueName(`fl${prefix}`)}-${id}`;
        const config = join(dir, 'fulcrum.json');
        writeFileSync(config, JSON.stringify({
          agent: {
            stateDir: join(dir, 'state'),
            api: { host: `10.213.${i + 1}.2`, port: 0, insecure: true, rateLimit: false },
            xdp: { pinDir },
            drainTimeoutSeconds: 0,
            store: {
              kind: 'etcd', endpoints: [etcd.urlOn(`10.213.${i + 1}.1`)], cluster: options.cluster, nodeId: id,
              leaseTtlSeconds: options.leaseTtlSeconds ?? 3, requestTimeoutMs: 1000,
            },
          },
          xdp: options.xdp ?? LAB_XDP,
        }));
        c.nodes.push({ id, lab: labs[i]!, address: `10.213.${i + 1}.2`, dir, config, pinDir, cacheFile: join(dir, 'state', `cluster-${options.cluster}-spec.json`), agent: undefined });
      }
      return c;
    } catch (e) {
      for (const lab of labs) await lab.delete();
      rmSync(root, { recursive: true, force: true });
      throw e;
    }
  }

  node(id: string): XdpClusterNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async start(id: string): Promise<AgentProcess> {
    const n = this.node(id);
    n.agent = await AgentProcess.start(n.config, { netns: n.lab.lb.name });
    return n.agent;
  }

  async stop(id: string): Promise<void> {
    const n = this.node(id);
    await n.agent?.stop();
    n.agent = undefined;
  }

  /** `fulcrum agent --cleanup` in the node's netns: its XDP program and maps leave the kernel. */
  async cleanup(id: string): Promise<void> {
    const n = this.node(id);
    const r = await AgentProcess.once(n.config, ['--cleanup'], n.lab.lb.name);
    if (r.code !== 0) throw new Error(`--cleanup of ${id} failed: ${r.stderr}`);
  }

  async http(id: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const n = this.node(id);
    if (!n.agent) throw new Error(`${id} is not running`);
    const token = readFileSync(join(n.dir, 'state', 'admin.token'), 'utf8').trim();
    const r = await fetch(`${n.agent.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, any> };
  }

  /** The VIPs in the node's kernel, read back with bpftool from the pinned map: "tcp 10.0.0.1:80". */
  async kernelVips(id: string): Promise<string[]> {
    const n = this.node(id);
    const r = await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${n.pinDir}/vips`], { allowFail: true });
    if (r.code !== 0) {
      // bpftool -j reports its errors as JSON on stdout.
      if (/No such file or directory/.test(r.stderr + r.stdout)) return [];
      throw new Error(`bpftool map dump of ${n.pinDir}/vips: ${r.stderr}${r.stdout}`);
    }
    const entries = JSON.parse(r.stdout) as Array<{ key: string[] }>;
    return entries.map((e) => decodeVipKey(Buffer.from(e.key.map((h) => parseInt(h, 16))))).map((k) => `${k.protocol} ${k.address}:${k.port}`).sort();
  }

  /** `count` fresh TCP connections from the node's client netns to address:port: the backends' ids or errors. */
  async ask(id: string, count: number, address = '10.0.0.1', port = 80): Promise<string[]> {
    const r = await this.node(id).lab.client.exec(process.execPath, [ECHO, 'tcp', address, String(port), String(count)], { timeoutMs: 60_000 });
    return (JSON.parse(r.stdout) as { ids: string[] }).ids;
  }

  async delete(): Promise<void> {
    for (const n of this.nodes) {
      if (n.agent) {
        try { process.kill(n.agent.proc.pid!, 'SIGCONT'); } catch { /* gone */ }
        await n.agent.kill9().catch(() => undefined);
      }
      await AgentProcess.once(n.config, ['--cleanup'], n.lab.lb.name).catch(() => undefined);
      await n.lab.delete();
      await run('rm', ['-rf', n.pinDir], { allowFail: true });
    }
    await this.etcd.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * The revisions of one key in etcd's history from `from` to `to`, read with etcdctl (`watch
 * --rev`), independently of Fulcrum's client. Throws etcd's words when `from` was compacted.
 */
export async function keyHistory(etcd: EtcdProcess, key: string, from: number, to: number): Promise<number[]> {
  const child = spawn('etcdctl', [...etcd.ctlArgs(), '-w', 'json', 'watch', '--rev', String(from), key], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => { stderr += c; });
  const revisions: number[] = [];
  try {
    return await new Promise<number[]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`etcdctl watch: no revision ${to} within 20 s (got ${revisions.length}; ${stderr})`)), 20_000);
      child.once('exit', (code) => { clearTimeout(t); reject(new Error(`etcdctl watch --rev ${from} exited (${code}): ${stderr.trim()}`)); });
      createInterface({ input: child.stdout }).on('line', (line) => {
        const msg = JSON.parse(line) as { Events?: Array<{ kv: { mod_revision: number } }>; CompactRevision?: number };
        for (const e of msg.Events ?? []) revisions.push(Number(e.kv.mod_revision));
        if (revisions.at(-1) !== undefined && revisions.at(-1)! >= to) { clearTimeout(t); resolve(revisions.filter((r) => r <= to)); }
      });
    });
  } finally {
    child.removeAllListeners('exit');
    child.kill('SIGKILL');
  }
}

/** The cluster revisions the agent applied, in order, as its audit log says ("apply cluster revision N (kind)"). */
export function appliedRevisions(agent: AgentProcess): Array<{ revision: number; kind: string; result: string }> {
  return agent.logs.flatMap((l) => {
    if (l.msg !== 'change' || l.who !== 'cluster') return [];
    const m = /^apply cluster revision (\d+) \((\w+)\)$/.exec(String(l.what));
    return m ? [{ revision: Number(m[1]), kind: m[2]!, result: String(l.result) }] : [];
  });
}
