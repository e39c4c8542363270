import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';
import { Netns, run } from '../helpers/netns.js';
import { xdpSkipReason, SMALL } from '../helpers/xdp.js';
import { createXdpPairLab, setPairLinks, startPairAgent, type XdpPairLab, type XdpPairNode } from '../helpers/xdp-pair-lab.js';
import { fulcrum } from '../helpers/agent-process.js';
import { waitFor } from '../helpers/vrrp-peers.js';
import { heldVips } from '../helpers/lb-pair.js';
import { HeldStreams } from '../helpers/ipvs-sync-lab.js';
import { withTimeout } from '../helpers/ipvs-lab.js';
import type { HeldConnection } from '../helpers/echo-stream.js';
import type { FlowSyncStatus } from '../../src/xdp/flowsync/service.js';

/**
 * XDP flow sync through two real `fulcrum agent` processes (host kernel, XDP nat, VRRP):
 *
 *   client --[front]-- lb-a eth0 / lb-b eth0          VIP 10.51.0.100:9000 (nat)
 *             lb-a eth1 / lb-b eth1 --[back]-- b1..b4  gateway VIP 10.61.0.1; sync 10.61.0.2 <-> .3
 *
 * The client holds long TCP connections through the VIP, each streaming bytes it checks one by one
 * (test/helpers/echo-stream.ts). A backend is added on both nodes after the connections started
 * (Maglev on the backup now picks another backend for some of them), then the master is hard-failed
 * (links down, agent SIGKILLed): with xdp.sync every connection goes on through the backup. The
 * old master comes back (agent restarted, links up), takes the backup's flows as a snapshot before
 * its VRRP starts, and preempts: still no connection lost. The negative control: the same failover
 * without xdp.sync loses connections.
 */

const skip = xdpSkipReason()
  ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool');

const VIP = '10.51.0.100', GATEWAY = '10.61.0.1', PORT = 9000;
/** The dr service keeps the port: its backends hold the VIP on lo and answer on it. */
const DR_PORT = 9001;
const BACKENDS = ['10.61.0.11', '10.61.0.12', '10.61.0.13', '10.61.0.14'];
const ADVERT = 0.3;
const CONNS = 24;
const TOOL = fileURLToPath(new URL('../helpers/echo-stream.js', import.meta.url));

/** A pair node with its flow-sync secret file. */
type Node = XdpPairNode & { secret: string };

let lab: XdpPairLab | undefined;
let client: Netns;
let backendNs: Netns[] = [];
const procs: ChildProcess[] = [];
let nodes: Node[] = [];
const A = () => nodes[0]!, B = () => nodes[1]!;
const peerOf = (n: Node) => (n === A() ? B() : A());

/** The desired state of a node: `backends` of the echo service, flow sync on or off. */
function desiredState(n: Node, backends: number, sync: boolean) {
  const common = { priority: n.priority, advertInterval: ADVERT };
  return {
    xdp: {
      interfaces: [{ name: 'eth0', mode: 'native' }, { name: 'eth1', mode: 'native' }], ...SMALL,
      ...(sync ? { sync: { address: n.back.address, port: 8850, peers: [peerOf(n).back.address], secretFile: n.secret, snapshotTimeoutSeconds: 3 } } : {}),
    },
    services: [
      { name: 'echo', dataplane: 'xdp', address: VIP, port: PORT, forwarding: 'nat', backends: BACKENDS.slice(0, backends).map((b) => ({ address: b, port: PORT })) },
      { name: 'echo-dr', dataplane: 'xdp', address: VIP, port: DR_PORT, forwarding: 'dr', backends: BACKENDS.slice(0, backends).map((b) => ({ address: b })) },
    ],
    vrrp: [
      { name: 'front', interface: 'eth0', vrid: 61, vips: [VIP], syncGroup: 'lb', ...common },
      { name: 'gateway', interface: 'eth1', vrid: 62, vips: [GATEWAY], syncGroup: 'lb', ...common },
    ],
  };
}

function writeConfig(n: Node, backends: number, sync: boolean): void {
  writeFileSync(n.config, stringify({
    agent: { stateDir: join(n.dirs.stateDir, 'state'), api: { port: 0 }, xdp: { pinDir: n.dirs.pinDir }, reconcileIntervalSeconds: 2 },
    ...desiredState(n, backends, sync),
  }));
}

const cli = (n: Node, words: string[]) => fulcrum(words, n.agent!.server, n.tokenFile, n.ns.name);

/** Applies a desired state through the CLI (as an operator would). */
async function apply(n: Node, backends: number, sync: boolean): Promise<void> {
  const file = join(n.dirs.stateDir, `apply-${Date.now()}.yaml`);
  writeFileSync(file, stringify(desiredState(n, backends, sync)));
  const r = await cli(n, ['apply', '-f', file]);
  assert.equal(r.code, 0, r.stderr);
}

async function syncStatus(n: Node): Promise<FlowSyncStatus | undefined> {
  const r = await cli(n, ['status', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { dataplanes: Array<{ name: string; status?: { sync?: FlowSyncStatus } }> };
  return s.dataplanes.find((d) => d.name === 'xdp')?.status?.sync;
}

async function metrics(n: Node): Promise<string> {
  const token = (await run('cat', [n.tokenFile])).stdout.trim();
  const r = await run('nsenter', [`--net=/run/netns/${n.ns.name}`, 'curl', '-sf', '-H', `Authorization: Bearer ${token}`, `${n.agent!.server}/metrics`]);
  return r.stdout;
}

function metric(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && line.includes(labels) && !line.startsWith('#')) sum += Number(line.split(' ').pop());
  return sum;
}

async function holders(): Promise<[string[], string[]]> {
  const vips = [{ dev: 'eth0', address: VIP }, { dev: 'eth1', address: GATEWAY }];
  return [(await heldVips(A().ns, vips)).sort(), (await heldVips(B().ns, vips)).sort()];
}

/** Waits until `n` holds both VIPs and (unless the other node crashed and keeps stale ones) the other none. */
async function expectMaster(n: Node, timeoutMs: number, otherCrashed = false): Promise<void> {
  const want = n === A() ? 0 : 1;
  await waitFor(`lb-${n.label} to hold both VIPs`, async () => {
    const h = await holders();
    return h[want]!.length === 2 && (otherCrashed || h[1 - want]!.length === 0);
  }, timeoutMs, 50);
}

async function hold(count: number, port = PORT): Promise<HeldStreams> {
  const p = client.spawn(process.execPath, [TOOL, 'hold', VIP, String(port), String(count), '100'], { stdio: ['pipe', 'pipe', 'pipe'] });
  procs.push(p);
  const streams = new HeldStreams(p);
  streams.opened = JSON.parse(await withTimeout(streams.next('ready'), 60_000, 'the held connections did not open')) as Array<{ localPort: number; backend: string }>;
  return streams;
}

/** Waits until every connection echoed more than it had at `since` (or failed: -1). */
async function advancing(h: HeldStreams, what: string): Promise<void> {
  const base = await h.progress();
  await waitFor(`${what}: every connection to move on`, async () => {
    const now = await h.progress();
    return now.every((x, i) => x < 0 || x > base[i]!) || now.some((x) => x < 0);
  }, 20_000, 200);
}

const setLinks = setPairLinks;
const startAgent = startPairAgent;

/** Hard failure of a node: its links go down, then its agent dies (SIGKILL, no handover). */
async function crash(n: Node): Promise<void> {
  await setLinks(n, false);
  await n.agent!.kill9();
  n.agent = undefined;
}

const broken = (rs: HeldConnection[]) => rs.filter((r) => !r.ok).map((r) => `${r.localPort}->${r.backend}: ${r.error}`);

before(async () => {
  if (skip) return;
  lab = await createXdpPairLab({ prefix: 'fls', net: 51, backends: BACKENDS, gateway: GATEWAY, drVip: VIP });
  client = lab.client;
  backendNs = lab.backends;
  nodes = lab.nodes.map((n) => Object.assign(n, { secret: join(n.dirs.stateDir, 'sync.key') }));
  for (const n of nodes) {
    writeFileSync(n.secret, 'flowsync-test-shared-secret-0123456789\n', { mode: 0o600 });
    writeConfig(n, 2, true);
  }
  for (const [i, b] of backendNs.entries())
    for (const port of [PORT, DR_PORT]) procs.push(b.spawn(process.execPath, [TOOL, 'serve', `b${i + 1}`, String(port)]));
  for (const n of nodes) await startAgent(n);
});

after(async () => {
  if (skip) return;
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await lab?.delete();
});

let group1: HeldStreams, group2: HeldStreams, dr1: HeldStreams;

test('with xdp.sync, the backup learns every new flow of the master (metrics and status show it)', { skip }, async () => {
  await expectMaster(A(), 30_000);
  group1 = await hold(CONNS);
  assert.equal(group1.opened.length, CONNS);
  assert.ok(new Set(group1.opened.map((c) => c.backend)).size === 2, `spread over b1, b2: ${group1.opened.map((c) => c.backend).join(',')}`);
  await advancing(group1, 'through lb-a');
  dr1 = await hold(CONNS, DR_PORT);
  await advancing(dr1, 'dr through lb-a');
  await waitFor('lb-b to have received every flow', async () => ((await syncStatus(B()))?.peers[0]?.receivedFlows ?? 0) >= 2 * CONNS, 10_000, 100);
  const a = (await syncStatus(A()))!, b = (await syncStatus(B()))!;
  assert.equal(a.export, true);
  assert.ok(a.ring.exported >= 2 * CONNS, `lb-a exported ${a.ring.exported} (nat and dr flows)`);
  assert.equal(a.ring.lost, 0);
  assert.ok(a.peers[0]!.sentFlows >= CONNS);
  assert.equal(b.peers[0]!.address, A().back.address);
  assert.deepEqual(b.dropped, {}, 'nothing dropped');
  const m = await metrics(B());
  assert.ok(metric(m, 'fulcrum_xdp_sync_received_flows_total', `result="applied"`) >= CONNS, 'received flows in /metrics');
  assert.ok(metric(await metrics(A()), 'fulcrum_xdp_sync_ring_exported_total') >= CONNS, 'ring exports in /metrics');
  const text = await cli(B(), ['status']);
  assert.match(text.stdout, /xdp flow sync 10\.61\.0\.3:8850: export on/);
  assert.match(text.stdout, new RegExp(`FLOW SYNC PEER[^\\n]*\\n${A().back.address.replace(/\./g, '\\.')}\\s+\\d+\\s+${'\\d+'}`));
});

test('a backend added after the connections started, then the master hard-failed: every nat and dr connection goes on through the backup, byte for byte', { skip }, async () => {
  // b3 joins on both nodes: the backup's Maglev table now sends about a third of these flows elsewhere.
  for (const n of nodes) await apply(n, 3, true);
  await advancing(group1, 'after b3 joined');
  await advancing(dr1, 'dr after b3 joined');
  await crash(A());
  await expectMaster(B(), 15_000, true).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}: ${JSON.stringify(await holders())}`); });
  await advancing(group1, 'through lb-b');
  await advancing(dr1, 'dr through lb-b');
  // New connections during the failover (they exist only on lb-b: lb-a is down).
  group2 = await hold(CONNS);
  assert.ok(group2.opened.some((c) => c.backend === 'b3'), `new connections use b3 too: ${group2.opened.map((c) => c.backend).join(',')}`);
  await advancing(group2, 'new connections through lb-b');
  for (const g of [group1, dr1]) assert.deepEqual((await g.progress()).filter((x) => x < 0), [], 'no connection failed over the failover');
});

test('the old master comes back: it takes the backup\'s flows as a snapshot before its VRRP starts, preempts, and no connection is lost', { skip }, async () => {
  await setLinks(A(), true);
  await startAgent(A());
  const s = (await syncStatus(A()))!;
  assert.equal(s.peers[0]!.snapshot, 'received', 'the snapshot arrived before the agent served (its first reconcile waits for it)');
  assert.ok(s.peers[0]!.snapshotFlows >= 3 * CONNS, `snapshot flows: ${s.peers[0]!.snapshotFlows}`);
  await expectMaster(A(), 15_000);
  await advancing(group1, 'back through lb-a');
  await advancing(group2, 'back through lb-a');
  await advancing(dr1, 'dr back through lb-a');
  const r1 = await group1.stop(), r2 = await group2.stop(), rd = await dr1.stop();
  assert.deepEqual(broken(r1), [], 'the first connections survived failover and failback');
  assert.deepEqual(broken(rd), [], 'the dr connections survived failover and failback');
  assert.deepEqual(broken(r2), [], 'the connections opened during the failover survived the failback');
  for (const r of [...r1, ...r2, ...rd]) assert.ok(r.received === r.sent && r.sent > 0, `${r.localPort}: ${r.received}/${r.sent}`);
});

test('negative control: the same failover without xdp.sync loses connections', { skip }, async () => {
  for (const n of nodes) await apply(n, 3, false);
  await waitFor('both nodes without flow sync', async () => (await syncStatus(A())) === undefined && (await syncStatus(B())) === undefined, 10_000, 100);
  await expectMaster(A(), 15_000);
  const g = await hold(CONNS);
  await advancing(g, 'through lb-a');
  for (const n of nodes) await apply(n, 4, false);
  await crash(A());
  await expectMaster(B(), 15_000, true);
  await new Promise((r) => setTimeout(r, 3000));
  const rs = await g.stop();
  const lost = broken(rs);
  console.log(`# without sync: ${lost.length} of ${rs.length} connections lost after the failover`);
  assert.ok(lost.length > 0, 'some connections break without flow sync (Maglev on lb-b moved them)');
  await setLinks(A(), true);
});
