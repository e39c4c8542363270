import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDesiredState } from '../../src/model/index.js';
import { createXdpDataplane } from '../../src/xdp/dataplane.js';
import type { Dataplane } from '../../src/dataplane/types.js';
import type { XdpKernel } from '../../src/xdp/kernel.js';
import { conntrackSet, decodeBackend, decodeConntrackSet, flowHash, u32 } from '../../src/xdp/abi.js';
import { encodeMessage } from '../../src/xdp/flowsync/codec.js';
import type { FlowRecord } from '../../src/xdp/flowsync/record.js';
import type { FlowSyncStatus } from '../../src/xdp/flowsync/service.js';
import { buildPacket } from '../helpers/packets.js';
import { xdpSkipReason, testDirs, SMALL } from '../helpers/xdp.js';

/**
 * XDP flow sync between dataplanes in one process (BPF_PROG_TEST_RUN for the packets, UDP on
 * loopback for the sync): what the program exports and when, how a receiver places a flow on its
 * own slot of the same backend, what it keeps and what it drops, and the snapshot of a starting node.
 */

const skip = xdpSkipReason();
const PORT = 20000 + (process.pid % 20000);
const SECRET = Buffer.from('flowsync-kernel-test-secret-0123456789');
const ADDR = { a: '127.0.0.2', b: '127.0.0.3', c: '127.0.0.4' };
const VIP = '10.0.0.1';
const BACKENDS = ['10.1.0.1', '10.1.0.2'];

type Dp = Dataplane & { kernel: XdpKernel };
let a: Dp, b: Dp, c: Dp | undefined;
const dirs: Array<{ pinDir: string; stateDir: string }> = [];
let secretFile = '';

function service(backends: string[]) {
  return parseDesiredState({ services: [{ name: 'web', dataplane: 'xdp', address: VIP, port: 80, backends: backends.map((x) => ({ address: x, port: 8080 })) }] }).services;
}

async function open(self: string, peers: string[]): Promise<Dp> {
  const d = testDirs();
  dirs.push(d);
  return createXdpDataplane({
    settings: { interfaces: [], ...SMALL, detachOnShutdown: false, sync: { address: self, port: PORT, peers, secretFile, ringBytes: 65536, snapshotTimeoutSeconds: 3, maxClockSkewSeconds: 30 } },
    ...d, drainTimeoutSeconds: 0, report: () => undefined,
  }) as Promise<Dp>;
}

const status = (dp: Dataplane) => (dp.status!() as { sync: FlowSyncStatus }).sync;

/** The backend (address) the connection table of `dp` has for the flow, or undefined. */
function backendOf(dp: Dp, sport: number): string | undefined {
  const h = flowHash({ src: '10.9.0.5', dst: VIP, sport, dport: 80, protocol: 'tcp' });
  const set = dp.kernel.maps.conntrack.lookup(u32(conntrackSet(h, dp.kernel.maps.conntrack.info.maxEntries)))!;
  const e = decodeConntrackSet(set).find((x) => x.sport === sport && x.src === '10.9.0.5');
  if (!e) return undefined;
  return decodeBackend(dp.kernel.maps.backends.lookup(u32(e.backend))!).address;
}

function packet(dp: Dp, sport: number): void {
  dp.kernel.program.testRun({ data: buildPacket({ srcMac: '02:00:00:00:00:77', dstMac: '02:00:00:00:fe:fe', src: '10.9.0.5', dst: VIP, protocol: 'tcp', sport, dport: 80 }) });
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  if (skip) return;
  const d = testDirs();
  dirs.push(d);
  secretFile = join(d.stateDir, 'sync.key');
  writeFileSync(secretFile, `${SECRET.toString()}\n`, { mode: 0o600 });
  a = await open(ADDR.a, [ADDR.b, ADDR.c]);
  b = await open(ADDR.b, [ADDR.a]);
  // b has a backend more, listed first: its slots for 10.1.0.1 / 10.1.0.2 differ from a's, and its Maglev picks differ.
  await Promise.all([a.reconcile(service(BACKENDS)), b.reconcile(service(['10.1.0.3', ...BACKENDS]))]);
});

after(async () => {
  if (skip) return;
  for (const dp of [a, b, c]) await dp?.cleanup().catch(() => undefined);
  for (const d of dirs) rmSync(d.stateDir, { recursive: true, force: true });
});

test('a new flow is exported once, an established flow never; the peer places it on its own slot of the same backend', { skip }, async () => {
  const before = status(a).ring.exported;
  const sports = Array.from({ length: 40 }, (_, i) => 41000 + i);
  for (const s of sports) packet(a, s);
  await until('a to export 40 flows', () => status(a).ring.exported === before + 40);
  for (let i = 0; i < 5; i++) for (const s of sports) packet(a, s);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(status(a).ring.exported, before + 40, 'packets of established flows export nothing');
  assert.equal(status(a).ring.lost, 0);
  await until('b to apply 40 flows', () => status(b).peers[0]!.receivedFlows >= 40);
  for (const s of sports) {
    const onA = backendOf(a, s);
    assert.ok(onA && BACKENDS.includes(onA));
    assert.equal(backendOf(b, s), onA, `flow ${s} is on the same backend on b`);
  }
  assert.deepEqual(status(b).dropped, {});
  for (const s of sports) packet(b, s + 1000);
  // b's own new flows (placed by its Maglev over three backends) reach a as well, except those on 10.1.0.3, which a lacks.
  await until('a to hear of b\'s flows', () => (status(a).peers.find((p) => p.address === ADDR.b)!.receivedFlows + (status(a).dropped['unknown-backend'] ?? 0)) >= 40);
  assert.ok((status(a).dropped['unknown-backend'] ?? 0) > 0, 'flows on a backend a does not have are dropped as unknown-backend');
});

test('a flow the receiver already has on a live entry keeps its local backend', { skip }, async () => {
  packet(b, 45000);
  const local = backendOf(b, 45000)!;
  const other = ['10.1.0.1', '10.1.0.2', '10.1.0.3'].find((x) => x !== local && BACKENDS.includes(x))!;
  const kept = status(b).peers[0]!.keptLocal;
  send(ADDR.a, 'flows', [rec(45000, other)]);
  await until('b to keep its entry', () => status(b).peers[0]!.keptLocal === kept + 1);
  assert.equal(backendOf(b, 45000), local);
});

function rec(sport: number, backend: string, over: Partial<FlowRecord> = {}): FlowRecord {
  return { family: 'inet', protocol: 'tcp', mode: 'nat', client: '10.9.0.5', clientPort: sport, vip: VIP, vipPort: 80, backend, backendPort: 8080, ...over };
}

let seq = BigInt(Date.now()) * 1000n + 10_000_000n;
const sockets: Socket[] = [];
function raw(from: string, bytes: Buffer): void {
  const s = createSocket('udp4');
  sockets.push(s);
  s.bind({ address: from, port: 0 }, () => s.send(bytes, PORT, ADDR.b, () => s.close()));
}
function send(from: string, kind: 'flows' | 'snapshot', records: FlowRecord[], key = SECRET, s = seq++): Buffer {
  const m = encodeMessage(key, { kind, seq: s, timestamp: Date.now(), records });
  raw(from, m);
  return m;
}

test('bad sync input is dropped and counted per reason: truncated, wrong key, replayed, stale, unknown peer, unknown VIP, unknown backend', { skip }, async () => {
  const d0 = { ...status(b).dropped };
  const delta = () => Object.fromEntries(Object.entries(status(b).dropped).map(([k, v]) => [k, v - ((d0 as Record<string, number>)[k] ?? 0)]).filter(([, v]) => v !== 0));
  const good = send(ADDR.a, 'flows', [rec(46000, '10.1.0.1')]);
  await until('the good message', () => backendOf(b, 46000) === '10.1.0.1');
  raw(ADDR.a, good); // replayed
  raw(ADDR.a, good.subarray(0, 40)); // truncated
  send(ADDR.a, 'flows', [rec(46001, '10.1.0.1')], Buffer.from('another-secret-of-enough-length!!')); // wrong key
  raw(ADDR.a, encodeMessage(SECRET, { kind: 'flows', seq: seq++, timestamp: Date.now() - 120_000, records: [rec(46002, '10.1.0.1')] })); // stale
  send('127.0.0.9', 'flows', [rec(46003, '10.1.0.1')]); // unknown peer
  send(ADDR.a, 'flows', [rec(46004, '10.1.0.1', { vip: '10.0.0.99' })]); // unknown VIP
  send(ADDR.a, 'flows', [rec(46005, '10.1.0.99')]); // unknown backend
  const want = { replayed: 1, truncated: 1, 'bad-mac': 1, stale: 1, 'unknown-peer': 1, 'unknown-vip': 1, 'unknown-backend': 1 };
  await until('every drop counted', () => JSON.stringify(Object.entries(delta()).sort()) === JSON.stringify(Object.entries(want).sort())).catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(delta())}`);
  });
  for (const s of [46001, 46002, 46003, 46004, 46005]) assert.equal(backendOf(b, s), undefined, `flow ${s} not written`);
});

test('a starting node asks its peers for a snapshot and has their flows before its first reconcile returns', { skip }, async () => {
  for (let i = 0; i < 30; i++) packet(a, 47000 + i);
  await until('a to export', () => backendOf(a, 47029) !== undefined);
  c = await open(ADDR.c, [ADDR.a]);
  await c.reconcile(service(BACKENDS));
  const s = status(c).peers[0]!;
  assert.equal(s.snapshot, 'received');
  assert.ok(s.snapshotFlows >= 70, `snapshot flows ${s.snapshotFlows}`);
  for (let i = 0; i < 30; i++) assert.equal(backendOf(c, 47000 + i), backendOf(a, 47000 + i), `flow ${47000 + i} from the snapshot`);
  for (let i = 0; i < 40; i++) assert.equal(backendOf(c, 41000 + i), backendOf(a, 41000 + i));
});

test('a replacement flow sync (the agent reopens the dataplane when xdp settings change) binds before the old one closes, and receives once it is gone', { skip }, async () => {
  const b2 = await open(ADDR.b, [ADDR.a]);
  try {
    await b2.reconcile(service(['10.1.0.3', ...BACKENDS]));
    await b.close();
    send(ADDR.a, 'flows', [rec(48000, '10.1.0.2')]);
    await until('the replacement to apply the flow', () => backendOf(b2, 48000) !== undefined);
    assert.equal(backendOf(b2, 48000), '10.1.0.2');
    assert.equal(status(b2).peers[0]!.snapshot, 'received', 'it took a snapshot at its start');
  } finally {
    await b2.cleanup();
  }
});
