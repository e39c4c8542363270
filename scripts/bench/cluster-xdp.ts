/**
 * Cluster benchmark through real agents on the host kernel (not a test): three `fulcrum agent`
 * processes with the XDP dataplane, each in its own LB netns, sharing their services through one
 * real etcd (test/helpers/xdp-cluster-lab.ts). Needs root, Debian etcd-server, built BPF objects.
 *  1. write -> every kernel: a PUT through node A's API (one service's port changes, so its VIP key
 *     in the XDP maps changes) until the new key is in all three nodes' pinned vips maps (looked up
 *     in place with libbpf, polled), median/p99 over --writes writes; against one etcd put + get
 *     round trip (EtcdClient, same process, same run). The PUT's own time (A has applied it when
 *     it answers) is printed too.
 *  2. cold start with 1,000 services: a node whose kernel is empty (`--cleanup` after each round)
 *     started from etcd (agent.store kind etcd) until its API listens and until its kernel holds all
 *     1,000 VIPs, against the same node started from the file store (the same 1,000 services in
 *     its desired-state.json, its config file unchanged since it seeded it); both config files
 *     list the 1,000 services and differ only in agent.store (the etcd node ignores them: the
 *     cluster has its own). min/median/max over --rounds rounds each, alternating.
 *
 *   node dist/scripts/bench/cluster-xdp.js [--writes 200] [--rounds 5]
 *
 * Run it alone (flock /tmp/fulcrum-kernel.lock): the machine is shared, so only ratios count.
 */
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openPinnedMap, type BpfMap } from '../../src/bpf/index.js';
import { EtcdClient } from '../../src/cluster/etcd-client.js';
import { EtcdStateStore } from '../../src/cluster/etcd-store.js';
import { parseDesiredState } from '../../src/model/index.js';
import { encodeVipKey } from '../../src/xdp/abi.js';
import { AgentProcess } from '../../test/helpers/agent-process.js';
import { etcdMissing } from '../../test/helpers/etcd.js';
import { run, uniqueName } from '../../test/helpers/netns.js';
import { xdpSkipReason } from '../../test/helpers/xdp.js';
import { labService, XdpCluster } from '../../test/helpers/xdp-cluster-lab.js';

const { values } = parseArgs({ options: { writes: { type: 'string', default: '200' }, rounds: { type: 'string', default: '5' } } });
const WRITES = Number(values.writes);
const ROUNDS = Number(values.rounds);
const SERVICES = 1000;
const STREAM = '10.0.0.2';

const missing = etcdMissing() ?? xdpSkipReason();
if (missing) { console.error(`cluster-xdp bench: ${missing}`); process.exit(2); }

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const med = (xs: number[]) => pct(xs, 50);
const ms = (x: number) => `${x.toFixed(2)} ms`;
const mmm = (xs: number[]) => `min ${ms(sorted(xs)[0]!)}, median ${ms(med(xs))}, max ${ms(sorted(xs).at(-1)!)}`;
const now = () => performance.now();
const vipKey = (address: string, port: number) => encodeVipKey({ address, family: 'inet', port, protocol: 'tcp' });
const bigServices = () => Array.from({ length: SERVICES }, (_, i) => labService(`svc-${i}`, `10.100.${i >> 8}.${i & 255}`));

const XDP = { interfaces: [{ name: 'l0', mode: 'native' }, { name: 'lb1', mode: 'native' }, { name: 'lb2', mode: 'native' }], maxVips: 1024, maxBackends: 4096, maglevTableSize: 251, conntrackSize: 4096 };
const c = await XdpCluster.create('cb', ['a', 'b', 'c'], { cluster: 'bench', leaseTtlSeconds: 5, xdp: XDP });
const maps: BpfMap[] = [];
let filePin: string | undefined;
try {
  console.log(`etcd ${c.etcd.url}, 3 XDP agents in LB netns, ${WRITES} writes, ${ROUNDS} cold-start rounds per store`);
  for (const id of ['a', 'b', 'c']) await c.start(id);

  // Baseline: one put + get round trip to the same etcd.
  const client = new EtcdClient({ endpoints: [c.etcd.url] });
  const rtt: number[] = [];
  const small = Buffer.from(JSON.stringify(labService('x')));
  for (let i = 0; i < 20; i++) { await client.put('/bench/rtt', small); await client.range('/bench/rtt'); }
  for (let i = 0; i < WRITES; i++) {
    const t = now();
    await client.put('/bench/rtt', small);
    await client.range('/bench/rtt');
    rtt.push(now() - t);
  }
  client.close();
  console.log(`baseline etcd put+get round trip: median ${ms(med(rtt))}, p99 ${ms(pct(rtt, 99))}`);

  // 1. write on A -> in all three kernels.
  const put = async (port: number) => {
    const r = await c.http('a', 'PUT', '/v1/services/stream', labService('stream', STREAM, port));
    if (r.status !== 200 && r.status !== 201) throw new Error(`PUT answered ${r.status}: ${JSON.stringify(r.body)}`);
  };
  await put(1);
  for (const n of c.nodes) {
    for (let t = Date.now(); ; ) {
      try { maps.push(openPinnedMap(`${n.pinDir}/vips`)); break; } catch (e) { if (Date.now() - t > 20_000) throw e; await new Promise((r) => setTimeout(r, 50)); }
    }
  }
  const inAll = (key: Buffer) => maps.every((m) => m.lookup(key) !== undefined);
  const total: number[] = [], ack: number[] = [];
  for (let k = 2; k <= WRITES + 11; k++) {
    const key = vipKey(STREAM, k);
    const t = now();
    await put(k);
    const acked = now() - t;
    const deadline = Date.now() + 20_000;
    while (!inAll(key)) {
      if (Date.now() > deadline) throw new Error(`port ${k} not in every kernel after 20 s`);
      await new Promise((r) => setImmediate(r));
    }
    if (k > 11) { total.push(now() - t); ack.push(acked); } // ten warm-up writes
  }
  console.log(`PUT on A answered (A applied it): median ${ms(med(ack))}, p99 ${ms(pct(ack, 99))}`);
  console.log(`write on A -> in all 3 kernels: median ${ms(med(total))}, p99 ${ms(pct(total, 99))} over ${total.length}; ` +
    `x${(med(total) / med(rtt)).toFixed(1)} median, x${(pct(total, 99) / pct(rtt, 99)).toFixed(1)} p99 of one etcd put+get`);
  for (const m of maps.splice(0)) m.close();

  // 2. cold start of node A with 1,000 services: etcd against the file store.
  await c.stop('b');
  await c.stop('c');
  await c.stop('a');
  const services = bigServices();
  const store = new EtcdStateStore({ client: new EtcdClient({ endpoints: [c.etcd.url] }), cluster: 'bench' });
  const current = await store.load();
  const revision = await store.commit(current.revision, parseDesiredState({ services }));
  await store.close();

  const a = c.node('a');
  const fileDir = join(c.root, 'file-node');
  mkdirSync(fileDir, { recursive: true });
  filePin = `/sys/fs/bpf/${uniqueName('flcbf')}`;
  const fileConfig = join(fileDir, 'fulcrum.json');
  // The same config file for both but for agent.store (and the node's own dirs): the etcd node
  // ignores its services (the cluster has them), the file node's stored state wins over them.
  const etcdDoc = JSON.parse(readFileSync(a.config, 'utf8')) as { agent: Record<string, unknown> };
  writeFileSync(a.config, JSON.stringify({ ...etcdDoc, services }));
  const { store: _store, ...fileAgent } = etcdDoc.agent;
  writeFileSync(fileConfig, JSON.stringify({ agent: { ...fileAgent, stateDir: join(fileDir, 'state'), xdp: { pinDir: filePin } }, xdp: XDP, services }));
  // The file node seeds its store once; from then on it starts from desired-state.json. Each
  // node leaves the kernel empty behind it (the other one's program would hold the interfaces).
  const cleanup = async (config: string) => {
    const r = await AgentProcess.once(config, ['--cleanup'], a.lab.lb.name);
    if (r.code !== 0) throw new Error(`--cleanup: ${r.stderr}`);
  };
  await cleanup(a.config);
  const seeded = await AgentProcess.start(fileConfig, { netns: a.lab.lb.name, timeoutMs: 120_000 });
  await seeded.stop();
  await cleanup(fileConfig);

  const coldStart = async (config: string, pinDir: string, expectRevision: number | undefined) => {
    const t = now();
    const agent = await AgentProcess.start(config, { netns: a.lab.lb.name, timeoutMs: 120_000 });
    const listening = now() - t;
    let count = 0;
    for (const deadline = Date.now() + 60_000; count < SERVICES; ) {
      try {
        const m = openPinnedMap(`${pinDir}/vips`);
        try { count = m.keys().length; } finally { m.close(); }
      } catch { /* not pinned yet */ }
      if (count >= SERVICES) break;
      if (Date.now() > deadline) throw new Error(`${count} of ${SERVICES} VIPs in the kernel after 60 s`);
      await new Promise((res) => setTimeout(res, 5));
    }
    const kernel = now() - t;
    if (expectRevision !== undefined) {
      // The node registers right after its API listens.
      const registered = () => agent.logs.find((l) => l.msg === 'registered in the cluster');
      for (const deadline = Date.now() + 10_000; !registered() && Date.now() < deadline; ) await new Promise((res) => setTimeout(res, 20));
      const rev = registered()?.revision;
      if (rev !== expectRevision) throw new Error(`the etcd node registered at revision ${String(rev)}, not ${expectRevision}`);
    }
    await agent.stop();
    await cleanup(config);
    return { listening, kernel };
  };
  const fromEtcd: Array<{ listening: number; kernel: number }> = [], fromFile: typeof fromEtcd = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const e = await coldStart(a.config, a.pinDir, revision);
    const f = await coldStart(fileConfig, filePin, undefined);
    if (r > 0) { fromEtcd.push(e); fromFile.push(f); } // one warm-up round
  }
  const col = (xs: typeof fromEtcd, k: 'listening' | 'kernel') => xs.map((x) => x[k]);
  console.log(`cold start, ${SERVICES} services, etcd: API listening ${mmm(col(fromEtcd, 'listening'))}; all VIPs in the kernel ${mmm(col(fromEtcd, 'kernel'))}`);
  console.log(`cold start, ${SERVICES} services, file: API listening ${mmm(col(fromFile, 'listening'))}; all VIPs in the kernel ${mmm(col(fromFile, 'kernel'))}`);
  console.log(`cold start ratio etcd/file (median): API listening x${(med(col(fromEtcd, 'listening')) / med(col(fromFile, 'listening'))).toFixed(2)}, ` +
    `kernel complete x${(med(col(fromEtcd, 'kernel')) / med(col(fromFile, 'kernel'))).toFixed(2)}`);
} finally {
  for (const m of maps) m.close();
  await c.delete();
  if (filePin) await run('rm', ['-rf', filePin], { allowFail: true });
}
