import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, encodeMessage, HEADER_BYTES, MAC_BYTES, MAX_RECORDS, ReplayWindow, secretFrom, Sequence, type Message } from '../../src/xdp/flowsync/codec.js';
import { RECORD_BYTES, recordFromEvent, type FlowRecord } from '../../src/xdp/flowsync/record.js';
import { XdpSyncSchema, XdpSettingsSchema } from '../../src/model/xdp.js';
import { addr16, flowHash, STRUCTS } from '../../src/xdp/abi.js';
import { canonicalIp } from '../../src/model/net.js';
import { createHmac } from 'node:crypto';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const OTHER = Buffer.from('fedcba9876543210fedcba9876543210');

const rec = (i: number, over: Partial<FlowRecord> = {}): FlowRecord => ({
  family: 'inet', protocol: 'tcp', mode: 'nat', client: `10.50.0.${10 + (i % 200)}`, clientPort: 40000 + i, vip: '10.50.0.100', vipPort: 80,
  backend: '10.60.0.11', backendPort: 8080, ...over,
});

const v4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 })).map((a) => a.join('.'));
const v6 = fc.tuple(fc.integer({ min: 0x2001, max: 0x2fff }), fc.nat(0xffff), fc.nat(0xffff), fc.integer({ min: 1, max: 0xffff })).map(([a, b, c, d]) => canonicalIp(`${a.toString(16)}:db8:${b.toString(16)}::${c.toString(16)}:${d.toString(16)}`));
const port = fc.integer({ min: 1, max: 65535 });
const record: fc.Arbitrary<FlowRecord> = fc.constantFrom('inet' as const, 'inet6' as const).chain((family) => {
  const ip = family === 'inet' ? v4 : v6;
  return fc.record({
    family: fc.constant(family), protocol: fc.constantFrom('tcp' as const, 'udp' as const), mode: fc.constantFrom('nat' as const, 'dr' as const),
    client: ip, clientPort: port, vip: ip, vipPort: port, backend: ip, backendPort: port,
  });
});
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ kind: fc.constantFrom('flows' as const, 'snapshot' as const), seq: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), timestamp: fc.integer({ min: 0, max: 2 ** 48 }), records: fc.array(record, { maxLength: MAX_RECORDS }) }),
  fc.record({ kind: fc.constantFrom('snapshotRequest' as const, 'snapshotEnd' as const), seq: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), timestamp: fc.integer({ min: 0, max: 2 ** 48 }), records: fc.constant([] as FlowRecord[]) }),
);

test('a message round-trips through encode/decode, records and all, at the documented size', () => {
  fc.assert(fc.property(message, (m) => {
    const b = encodeMessage(KEY, m);
    assert.equal(b.length, HEADER_BYTES + m.records.length * RECORD_BYTES + MAC_BYTES);
    const d = decodeMessage(KEY, b);
    assert.ok(d.ok, d.ok ? '' : d.reason);
    // fast-check's records are not plain objects: compare with plain copies.
    assert.deepEqual(d.message, { kind: m.kind, seq: m.seq, timestamp: m.timestamp, records: [...m.records.map((r) => ({ ...r }))] });
  }), { numRuns: 300 });
});

test('every truncation, every flipped bit and a wrong key are dropped with their reason, never accepted', () => {
  const b = encodeMessage(KEY, { kind: 'flows', seq: 7n, timestamp: 1_700_000_000_000, records: [rec(1), rec(2, { family: 'inet6', client: '2001:db8::5', vip: '2001:db8::100', backend: '2001:db8:1::11' })] });
  for (let n = 0; n < b.length; n++) {
    const d = decodeMessage(KEY, b.subarray(0, n));
    assert.equal(d.ok, false, `cut at ${n}`);
    assert.ok(!d.ok && ['truncated', 'bad-length', 'bad-magic', 'bad-version', 'bad-type'].includes(d.reason), `cut at ${n}: ${!d.ok && d.reason}`);
  }
  for (let i = 0; i < b.length * 8; i++) {
    const x = Buffer.from(b);
    x[i >> 3]! ^= 1 << (i & 7);
    const d = decodeMessage(KEY, x);
    assert.equal(d.ok, false, `bit ${i} flipped`);
  }
  const wrong = decodeMessage(OTHER, b);
  assert.deepEqual(wrong, { ok: false, reason: 'bad-mac' });
  assert.deepEqual(decodeMessage(KEY, Buffer.concat([b, Buffer.alloc(1)])), { ok: false, reason: 'bad-length' });
});

test('fuzz: arbitrary bytes, and mutations of valid messages, never throw and never pass without the key', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
    const d = decodeMessage(KEY, Buffer.from(bytes));
    assert.equal(d.ok, false);
  }), { numRuns: 2000 });
  fc.assert(fc.property(message, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }), (m, flips) => {
    const b = encodeMessage(KEY, m);
    for (const [at, x] of flips) b[at % b.length]! ^= x;
    const d = decodeMessage(KEY, b);
    // A mutation can cancel itself out (the same byte flipped twice); anything else is dropped.
    if (d.ok) assert.deepEqual(b, encodeMessage(KEY, m));
  }), { numRuns: 1000 });
});

test('a record with an out-of-range field is malformed even under a good MAC (the sender is trusted, its bytes are not)', () => {
  const good = encodeMessage(KEY, { kind: 'flows', seq: 1n, timestamp: 1, records: [rec(0)] });
  const cases: Array<[string, (b: Buffer) => void]> = [
    ['family 7', (b) => { b[HEADER_BYTES] = 7; }],
    ['protocol 1 (icmp)', (b) => { b[HEADER_BYTES + 1] = 1; }],
    ['mode 2', (b) => { b[HEADER_BYTES + 2] = 2; }],
    ['padding', (b) => { b[HEADER_BYTES + 3] = 1; }],
    ['IPv4 address with bytes past the 4th', (b) => { b[HEADER_BYTES + 4 + 9] = 1; }],
    ['client port 0', (b) => { b.writeUInt16BE(0, HEADER_BYTES + 20); }],
  ];
  for (const [name, mutate] of cases) {
    const b = Buffer.from(good);
    mutate(b);
    // Re-sign, as a sender with the key would.
    const body = b.length - MAC_BYTES;
    createHmac('sha256', KEY).update(b.subarray(0, body)).digest().copy(b, body);
    assert.deepEqual(decodeMessage(KEY, b), { ok: false, reason: 'malformed' }, name);
  }
  assert.throws(() => encodeMessage(KEY, { kind: 'flows', seq: 1n, timestamp: 1, records: Array.from({ length: MAX_RECORDS + 1 }, (_, i) => rec(i)) }), /at most/);
  assert.throws(() => encodeMessage(KEY, { kind: 'snapshotEnd', seq: 1n, timestamp: 1, records: [rec(0)] }), /no records/);
});

test('the replay window takes each sequence once, in any order within 64, and refuses old or off-clock messages', () => {
  const now = 1_700_000_000_000;
  const w = new ReplayWindow(30_000);
  assert.equal(w.check(1000n, now, now), 'ok');
  assert.equal(w.check(1000n, now, now), 'replayed', 'the same message again');
  assert.equal(w.check(1002n, now, now), 'ok');
  assert.equal(w.check(1001n, now, now), 'ok', 'late but inside the window');
  assert.equal(w.check(1001n, now, now), 'replayed');
  assert.equal(w.check(1100n, now, now), 'ok');
  assert.equal(w.check(1037n, now, now), 'ok', '63 below the highest: still in the window');
  assert.equal(w.check(1036n, now, now), 'replayed', '64 below: older than the window');
  assert.equal(w.check(2000n, now - 31_000, now), 'stale', 'a timestamp 31 s old');
  assert.equal(w.check(2001n, now + 31_000, now), 'stale', 'a timestamp 31 s ahead');
  assert.equal(w.check(2002n, now + 29_000, now), 'ok');
  // Property: a shuffled run of distinct sequences within the window is all accepted once, then all refused.
  fc.assert(fc.property(fc.shuffledSubarray(Array.from({ length: 64 }, (_, i) => 5000n + BigInt(i)), { minLength: 1 }), (seqs) => {
    const r = new ReplayWindow(1000);
    for (const s of seqs) assert.equal(r.check(s, 0, 0), 'ok', `first ${s}`);
    for (const s of seqs) assert.equal(r.check(s, 0, 0), 'replayed', `again ${s}`);
    assert.equal(r.check(4000n, 0, 0), 'replayed', 'far below the window');
  }), { numRuns: 200 });
  const a = new Sequence(now), b = new Sequence(now + 1);
  const last = a.next();
  assert.ok(b.next() > last + 1n, 'a sender restarted a millisecond later starts above everything it sent before (1000 per ms)');
});

test('the secret needs 16 bytes (a trailing newline is not part of it)', () => {
  assert.deepEqual(secretFrom(Buffer.from('0123456789abcdef\n'), 'f'), Buffer.from('0123456789abcdef'));
  assert.throws(() => secretFrom(Buffer.from('short\n'), 'xdp.sync.secretFile'), /xdp\.sync\.secretFile: the secret is 5 bytes/);
});

test('a ring record (struct fl_flow_event) becomes a flow record with the backend identity', () => {
  const s = STRUCTS.fl_flow_event, k = STRUCTS.fl_flow_key;
  const ev = Buffer.alloc(s.size);
  addr16('10.50.0.10').copy(ev, k.fields.src.offset);
  addr16('10.50.0.100').copy(ev, k.fields.dst.offset);
  ev.writeUInt16BE(41000, k.fields.sport.offset);
  ev.writeUInt16BE(80, k.fields.dport.offset);
  ev[k.fields.proto.offset] = 6;
  ev[k.fields.family.offset] = 2;
  addr16('10.60.0.12').copy(ev, s.fields.backend_addr.offset);
  ev.writeUInt16BE(8080, s.fields.backend_port.offset);
  ev[s.fields.mode.offset] = 1;
  assert.deepEqual(recordFromEvent(ev), { family: 'inet', protocol: 'tcp', mode: 'dr', client: '10.50.0.10', clientPort: 41000, vip: '10.50.0.100', vipPort: 80, backend: '10.60.0.12', backendPort: 8080 });
  assert.equal(recordFromEvent(ev.subarray(0, 10)), undefined, 'short');
  ev[k.fields.family.offset] = 0;
  assert.equal(recordFromEvent(ev), undefined, 'no family');
});

test('xdp.sync is validated with errors that name the field', () => {
  const ok = XdpSyncSchema.parse({ address: '10.70.0.2', peers: ['10.70.0.3'], secretFile: '/etc/fulcrum/sync.key' });
  assert.equal(ok.port, 8850);
  assert.equal(ok.ringBytes, 262144);
  const issues = (input: unknown) => {
    const r = XdpSettingsSchema.safeParse({ sync: input });
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  assert.ok(issues({ address: '10.70.0.2', peers: [], secretFile: '/k' }).some((m) => m.startsWith('sync.peers: needs at least one peer')));
  assert.ok(issues({ address: '10.70.0.2', peers: ['10.70.0.2'], secretFile: '/k' }).some((m) => m === "sync.peers.0: 10.70.0.2 is this node's own sync address"));
  assert.ok(issues({ address: '10.70.0.2', peers: ['10.70.0.3', '10.70.0.3'], secretFile: '/k' }).some((m) => m === 'sync.peers.1: duplicate peer 10.70.0.3'));
  assert.ok(issues({ address: '10.70.0.2', peers: ['10.70.0.3'], secretFile: 'k' }).some((m) => m === 'sync.secretFile: must be an absolute path'));
  assert.ok(issues({ address: '10.70.0.2', peers: ['10.70.0.3'], secretFile: '/k', ringBytes: 10000 }).some((m) => m.startsWith('sync.ringBytes: must be a power of 2')));
  assert.ok(issues({ address: 'nope', peers: ['10.70.0.3'], secretFile: '/k' }).some((m) => m.startsWith('sync.address:')));
  assert.ok(issues({ address: '10.70.0.2', peers: ['10.70.0.3'], secretFile: '/k', extra: 1 }).some((m) => m.includes('extra')));
});

/** flow_hash of bpf/lib/hash.h in BigInt, the reference for abi.ts's 32-bit-halves flowHash. */
function flowHashReference(f: { src: string; dst: string; sport: number; dport: number; protocol: 'tcp' | 'udp' }): number {
  const M64 = (1n << 64n) - 1n;
  const fold = (a: string) => { const b = addr16(a); return BigInt((b.readUInt32LE(0) ^ b.readUInt32LE(4) ^ b.readUInt32LE(8) ^ b.readUInt32LE(12)) >>> 0); };
  const raw = (p: number) => ((p & 0xff) << 8) | (p >>> 8);
  const a = (fold(f.src) << 32n) | fold(f.dst);
  const b = (BigInt(((raw(f.sport) << 16) | raw(f.dport)) >>> 0) << 32n) | BigInt((0x9e3779b9 ^ (f.protocol === 'tcp' ? 6 : 17)) >>> 0);
  let h = (a * 0x9e3779b97f4a7c15n) & M64;
  h ^= h >> 32n;
  h ^= b;
  h = (h * 0xff51afd7ed558ccdn) & M64;
  h ^= h >> 29n;
  h = (h * 0xc4ceb9fe1a85ec53n) & M64;
  h ^= h >> 32n;
  return Number(h & 0xffffffffn);
}

test('flowHash (32-bit halves) equals the 64-bit reference of bpf/lib/hash.h on every input', () => {
  fc.assert(fc.property(record, (r) => {
    const f = { src: r.client, dst: r.vip, sport: r.clientPort, dport: r.vipPort, protocol: r.protocol };
    assert.equal(flowHash(f), flowHashReference(f));
  }), { numRuns: 5000 });
  for (const src of ['255.255.255.255', '0.0.0.1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) {
    const f = { src, dst: src, sport: 65535, dport: 65535, protocol: 'udp' as const };
    assert.equal(flowHash(f), flowHashReference(f));
  }
});
