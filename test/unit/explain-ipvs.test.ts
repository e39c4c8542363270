import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dhPick, dhTable, hash32, hsiphash1u32, mhPick, mhTable, mhTableSize, shPick, shTable, type SchedDest } from '../../src/ipvs/explain-sched.js';
import { parseIpvsConnections } from '../../src/ipvs/explain-conn.js';
import { explainIpvs } from '../../src/ipvs/explain.js';
import { FakeIpvsClient } from '../helpers/fake-ipvs.js';

/**
 * The pure parts of IPVS explain. Agreement with the kernel's schedulers is proven with real
 * connections in the VM (test/vm/explain-ipvs.test.ts); these pin the table-building rules.
 */

const dests = (weights: number[]): SchedDest[] => weights.map((weight, i) => ({ address: `10.0.0.${i + 1}`, port: 80, weight }));
const count = (t: Array<number | undefined>, n: number) => Array.from({ length: n }, (_, i) => t.filter((x) => x === i).length);

test('hash_32 is the golden-ratio multiply of include/linux/hash.h', () => {
  assert.equal(hash32(1, 8), 0x61c88647 >>> 24);
  assert.equal(hash32(0, 8), 0);
});

test('hsiphash1u32 is SipHash-1-3 of one u32 (64-bit kernel); different keys give different values', () => {
  const a = hsiphash1u32(12345, 2654435761n, 2654435761n), b = hsiphash1u32(12345, 2654446892n, 2654446892n);
  assert.ok(Number.isInteger(a) && a >= 0 && a <= 0xffffffff);
  assert.notEqual(a, b);
  assert.equal(hsiphash1u32(12345, 2654435761n, 2654435761n), a, 'deterministic');
});

test('sh: 256 buckets, each destination taking its weight in a row, a weight-0 one still one bucket', () => {
  assert.deepEqual(count(shTable(dests([1, 2, 3])), 3), [43, 86, 127]);
  const t = shTable(dests([0, 1]));
  assert.deepEqual(t.slice(0, 4), [0, 1, 0, 1]);
  assert.deepEqual(shTable([]).filter((x) => x !== undefined), []);
});

test('sh: a weight-0 destination\'s buckets give no destination without fallback, another one with it', () => {
  const d = dests([0, 1]);
  const ports = Array.from({ length: 64 }, (_, i) => 1000 + i);
  const zeroHits = ports.map((p) => shPick(d, { fallback: false, port: true }, '10.9.0.1', p)).filter((r) => r.dest === undefined);
  assert.ok(zeroHits.length > 0);
  for (const p of ports) {
    const r = shPick(d, { fallback: true, port: true }, '10.9.0.1', p);
    assert.equal(r.dest, 1);
  }
  assert.equal(shPick(d, { fallback: false, port: false }, '10.9.0.1', 1).bucket, shPick(d, { fallback: false, port: false }, '10.9.0.1', 2).bucket, 'without the port flag the port does not count');
});

test('mh: the table (4093 entries on Debian) is full, shares follow the weights, and zero last_weight takes none', () => {
  assert.equal(mhTableSize(), 4093);
  const t = mhTable(dests([1, 2, 3]));
  const c = count(t, 3);
  assert.equal(c[0]! + c[1]! + c[2]!, 4093);
  assert.ok(c[0]! < c[1]! && c[1]! < c[2]!, JSON.stringify(c));
  const z = mhTable([...dests([1, 1]), { address: '10.0.0.9', port: 80, weight: 0, lastWeight: 0 }]);
  assert.equal(count(z, 3)[2], 0);
  // A destination at weight 0 keeps its slots (last_weight), so flows hashed there get none without fallback.
  const drained = [{ ...dests([1])[0]!, weight: 0, lastWeight: 1 }, ...dests([1, 1]).slice(1)];
  const picks = Array.from({ length: 100 }, (_, i) => mhPick(drained, { fallback: false, port: true }, '10.9.0.1', 2000 + i));
  assert.ok(picks.some((p) => p.dest === undefined) && picks.some((p) => p.dest === 1));
  for (let i = 0; i < 100; i++) assert.equal(mhPick(drained, { fallback: true, port: true }, '10.9.0.1', 2000 + i).dest, 1);
});

test('dh hashes the destination address over a table that ignores weights', () => {
  assert.deepEqual(count(dhTable(dests([1, 5, 0])), 3), [86, 85, 85]);
  const a = dhPick(dests([1, 1, 1]), '10.0.0.100');
  assert.equal(a.tableSize, 256);
  assert.ok(a.dest !== undefined);
  // Seen in the VM (Debian 6.1): a dh service on 10.145.0.1:8085 with 10.145.2.1, .2, .3 added in
  // that order (the list, newest first: .3, .2, .1) sends a new connection to 10.145.2.1. hash_32
  // puts 10.145.0.1 in bucket 53 (53 % 3 = 2: the last of the list); the old multiplicative hash
  // would say bucket 177 (177 % 3 = 0: 10.145.2.3).
  const vm = ['10.145.2.3', '10.145.2.2', '10.145.2.1'].map((address, i) => ({ address, port: 8080, weight: 3 - i }));
  const pick = dhPick(vm, '10.145.0.1');
  assert.equal(pick.bucket, 53);
  assert.equal(vm[pick.dest!]!.address, '10.145.2.1');
});

test('/proc/net/ip_vs_conn rows parse (IPv4 hex and IPv6), the header and odd lines are skipped', () => {
  const text = [
    'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData',
    'TCP 0A140A0A 9C40 0A140001 1F93 0A140201 1F90 ESTABLISHED     899',
    'TCP 0A140A0B 0000 0A140001 1F93 0A140202 1F90 NONE            359',
    'UDP fd00:0014:0001:0000:0000:0000:0000:0010 3039 fd00:0014:0000:0000:0000:0000:0000:0001 0035 fd00:0014:0002:0000:0000:0000:0000:0001 0035 UDP             299',
    'garbage',
  ].join('\n');
  assert.deepEqual(parseIpvsConnections(text), [
    { protocol: 'tcp', client: '10.20.10.10', clientPort: 40000, vip: '10.20.0.1', vport: 8083, dest: '10.20.2.1', dport: 8080, state: 'ESTABLISHED', expiresSeconds: 899 },
    { protocol: 'tcp', client: '10.20.10.11', clientPort: 0, vip: '10.20.0.1', vport: 8083, dest: '10.20.2.2', dport: 8080, state: 'NONE', expiresSeconds: 359 },
    { protocol: 'udp', client: 'fd00:14:1::10', clientPort: 12345, vip: 'fd00:14::1', vport: 53, dest: 'fd00:14:2::1', dport: 53, state: 'UDP', expiresSeconds: 299 },
  ]);
});

test('explainIpvs: a connection decides; TIME_WAIT does not; rr is unpredictable with what it depends on', async () => {
  const c = new FakeIpvsClient();
  const key = { family: 'inet' as const, protocol: 'tcp' as const, address: '10.20.0.1', port: 8083 };
  await c.addService({ key, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  for (const a of ['10.20.2.1', '10.20.2.2']) await c.addDestination(key, { address: a, port: 8080, family: 'inet', forward: 'masq', weight: 1, upperThreshold: 0, lowerThreshold: 0 });
  const table = (state: string) => () => `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires\nTCP 0A140A0A 9C40 0A140001 1F93 0A140202 1F90 ${state}     10\n`;
  const flow = { client: '10.20.10.10', clientPort: 40000, vip: '10.20.0.1', port: 8083, protocol: 'tcp' as const };
  const e = await explainIpvs(c, flow, table('ESTABLISHED'));
  assert.equal(e.source, 'connection');
  assert.deepEqual(e.backend, { address: '10.20.2.2', port: 8080 });
  assert.match(e.reason, /in state ESTABLISHED/);
  const t = await explainIpvs(c, flow, table('TIME_WAIT'));
  assert.equal(t.source, 'unpredictable');
  assert.match(t.reason, /round-robin cursor/);
  assert.match(String(t.detail.timeWait), /scheduled afresh/);
  assert.equal(t.backends.length, 2);
  const none = await explainIpvs(c, { ...flow, port: 9999 }, table('ESTABLISHED'));
  assert.equal(none.source, 'none');
});
