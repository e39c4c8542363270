import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { CMD_TABLE, IPVS_CMD, decode, encode, type IpvsWireMessage, type IpvsCmd } from '../../src/ipvs/codec.js';
import { GENL_ID_CTRL, NLMSG_DONE, NLMSG_ERROR, encodeAttrs, decodeAttrs, parseNlmsgs, parseNlmsgErr, type NlMessage } from '../../src/ipvs/netlink-wire.js';
import { destFromWire, ipvsRequest, serviceFromWire, daemonFromWire, timeoutsFromWire } from '../../src/ipvs/wire-messages.js';
import type { IpvsDestSpec, IpvsServiceKey, IpvsServiceSpec } from '../../src/ipvs/types.js';

/**
 * Golden bytes: test/unit/fixtures/ipvsadm-golden.json holds the generic-netlink datagrams that
 * ipvsadm 1.31 sent and received in the VM (scripts/ipvs/capture-golden.sh regenerates it).
 * Sequence numbers and port ids differ per run: comparisons reuse the captured header values.
 */
interface GoldenCase { name: string; argv: string[]; stdout: string; sent: string[]; received: string[] }
const golden = JSON.parse(readFileSync(new URL('../../../test/unit/fixtures/ipvsadm-golden.json', import.meta.url), 'utf8')) as { cases: GoldenCase[] };

function messages(hexes: string[]): NlMessage[] {
  return hexes.flatMap((h) => parseNlmsgs(Buffer.from(h, 'hex')));
}
function goldenCase(name: string): GoldenCase {
  const c = golden.cases.find((x) => x.name === name);
  assert.ok(c, `fixture case ${name}`);
  return c;
}
/** The IPVS family id of the capture: the type of every IPVS request (not nlctrl's 0x10). */
function ipvsFamily(c: GoldenCase): number {
  const m = messages(c.sent).find((x) => x.type !== GENL_ID_CTRL);
  assert.ok(m);
  return m.type;
}
/** The last IPVS request ipvsadm sent: the command itself (earlier ones resolve the family and GET_INFO). */
function command(c: GoldenCase): { raw: Buffer; nl: NlMessage } {
  const fam = ipvsFamily(c);
  const all = c.sent.map((h) => Buffer.from(h, 'hex')).filter((b) => b.readUInt16LE(4) === fam);
  const raw = all[all.length - 1];
  assert.ok(raw);
  return { raw, nl: parseNlmsgs(raw)[0]! };
}
function encodeLike(msg: IpvsWireMessage, nl: NlMessage): Buffer {
  return encode(msg, { family: nl.type, seq: nl.seq, pid: nl.pid, flags: nl.flags });
}

test('every IPVS request ipvsadm sent decodes and re-encodes to the same bytes', () => {
  let n = 0;
  for (const c of golden.cases) {
    const fam = ipvsFamily(c);
    for (const h of c.sent) {
      const raw = Buffer.from(h, 'hex');
      const [nl] = parseNlmsgs(raw);
      if (!nl || nl.type !== fam) continue;
      const msg = decode(nl);
      assert.deepEqual(encodeLike(msg, nl), raw, `${c.name}: ${msg.cmd}`);
      n++;
    }
  }
  assert.ok(n >= 40, `re-encoded ${n} messages`);
});

const v4 = (address: string, port: number, protocol: 'tcp' | 'udp' | 'sctp' = 'tcp'): IpvsServiceKey => ({ family: 'inet', protocol, address, port });
const v6 = (address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp'): IpvsServiceKey => ({ family: 'inet6', protocol, address, port });
const svc = (key: IpvsServiceKey, scheduler: string, more: Partial<IpvsServiceSpec> = {}): IpvsServiceSpec =>
  ({ key, scheduler, flags: 0, timeout: 0, netmask: key.family === 'inet' ? 0xffffffff : 128, ...more });

const SERVICE_CASES: Array<[string, IpvsServiceSpec, 'addService' | 'editService']> = [
  ['add-service-tcp', svc(v4('10.0.0.1', 80), 'rr'), 'addService'],
  ['add-service-persistent', svc(v4('10.0.0.2', 443), 'wlc', { flags: 0x1, timeout: 300, netmask: 0xffffff00 }), 'addService'],
  ['add-service-udp6-sched-flags', svc(v6('2001:db8::1', 53, 'udp'), 'sh', { flags: 0x8 | 0x10 }), 'addService'],
  ['add-service-persistent6', svc(v6('2001:db8::2', 443), 'lc', { flags: 0x1, timeout: 600, netmask: 64 }), 'addService'],
  ['add-service-fwmark', svc({ family: 'inet', fwmark: 42 }, 'mh', { flags: 0x10 }), 'addService'],
  ['add-service-fwmark6', svc({ family: 'inet6', fwmark: 43 }, 'rr'), 'addService'],
  ['add-service-sctp', svc(v4('10.0.0.3', 9000, 'sctp'), 'wrr'), 'addService'],
  ['add-service-udp-ops', svc(v4('10.0.0.5', 514, 'udp'), 'rr', { flags: 0x4 }), 'addService'],
  ['add-service-pe-sip', svc(v4('10.0.0.4', 5060, 'udp'), 'rr', { flags: 0x1, timeout: 60, pe: 'sip' }), 'addService'],
  ['edit-service', svc(v4('10.0.0.1', 80), 'wlc'), 'editService'],
];

for (const [name, spec, op] of SERVICE_CASES) {
  test(`golden: ${op} matches ipvsadm ${goldenCase(name).argv.join(' ')}`, () => {
    const { raw, nl } = command(goldenCase(name));
    assert.deepEqual(encodeLike(ipvsRequest[op](spec), nl), raw);
  });
}

const dest = (address: string, port: number, more: Partial<IpvsDestSpec> = {}): IpvsDestSpec =>
  ({ address, port, family: address.includes(':') ? 'inet6' : 'inet', forward: 'masq', weight: 1, upperThreshold: 0, lowerThreshold: 0, ...more });

const DEST_CASES: Array<[string, IpvsServiceKey, IpvsDestSpec, 'addDestination' | 'editDestination']> = [
  ['add-dest-nat', v4('10.0.0.1', 80), dest('10.0.1.1', 8080, { weight: 3, upperThreshold: 100, lowerThreshold: 10 }), 'addDestination'],
  ['add-dest-dr', v4('10.0.0.1', 80), dest('10.0.1.2', 80, { forward: 'route' }), 'addDestination'],
  ['add-dest-ipip', v4('10.0.0.1', 80), dest('10.0.1.3', 80, { forward: 'tunnel', tunnelType: 'ipip' }), 'addDestination'],
  ['add-dest-gue', v4('10.0.0.1', 80), dest('10.0.1.4', 80, { forward: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 0 }), 'addDestination'],
  ['add-dest-gre-csum', v4('10.0.0.1', 80), dest('10.0.1.5', 80, { forward: 'tunnel', tunnelType: 'gre', tunnelFlags: 1 }), 'addDestination'],
  ['add-dest-v6', v6('2001:db8::1', 53, 'udp'), dest('2001:db8::10', 5353, { weight: 2 }), 'addDestination'],
  ['add-dest-fwmark', { family: 'inet', fwmark: 42 }, dest('10.0.1.6', 0, { forward: 'route' }), 'addDestination'],
  ['edit-dest', v4('10.0.0.1', 80), dest('10.0.1.1', 8080, { weight: 0 }), 'editDestination'],
];

for (const [name, key, d, op] of DEST_CASES) {
  test(`golden: ${op} matches ipvsadm ${goldenCase(name).argv.join(' ')}`, () => {
    const { raw, nl } = command(goldenCase(name));
    const ours = ipvsRequest[op](key, d);
    const theirs = decode(nl);
    assert.equal(theirs.cmd, ours.cmd);
    // The destination attribute is byte-identical; ipvsadm pads the service with unused fields
    // (empty scheduler, flags, netmask) where we send only its key, which the kernel matches on.
    assert.deepEqual(encodeAttrs(CMD_TABLE, { dest: ours.attrs.dest } as never), encodeAttrs(CMD_TABLE, { dest: theirs.attrs.dest } as never));
    assert.deepEqual(serviceFromWire(theirs.attrs.service!).key, key);
    // And with ipvsadm's service attribute in place, the whole message is the captured one.
    assert.deepEqual(encodeLike({ ...ours, attrs: { ...ours.attrs, service: theirs.attrs.service! } }, nl), raw);
  });
}

test('golden: deletes and zero of one service carry the same identity as ipvsadm', () => {
  for (const [name, key, op] of [
    ['delete-service', v4('10.0.0.1', 80), 'deleteService'],
    ['delete-service-fwmark', { family: 'inet', fwmark: 42 }, 'deleteService'],
    ['zero-service', v4('10.0.0.1', 80), 'zero'],
  ] as const) {
    const theirs = decode(command(goldenCase(name)).nl);
    const ours = op === 'zero' ? ipvsRequest.zero(key) : ipvsRequest.deleteService(key);
    assert.equal(theirs.cmd, ours.cmd, name);
    assert.deepEqual(serviceFromWire(theirs.attrs.service!).key, key, name);
    assert.deepEqual(serviceFromWire({ ...theirs.attrs.service!, schedName: '' }).key, serviceFromWire(ours.attrs.service!).key);
  }
  const del = decode(command(goldenCase('delete-dest')).nl);
  const ours = ipvsRequest.deleteDestination(v4('10.0.0.1', 80), { address: '10.0.1.1', port: 8080, family: 'inet' });
  assert.equal(del.cmd, 'DEL_DEST');
  for (const k of ['addrFamily', 'addr', 'port'] as const) assert.deepEqual(ours.attrs.dest![k], del.attrs.dest![k], k);
});

test('golden: whole-table commands, timeouts and sync daemons are byte-identical', () => {
  const same = (name: string, msg: IpvsWireMessage): void => {
    const { raw, nl } = command(goldenCase(name));
    assert.deepEqual(encodeLike(msg, nl), raw, name);
  };
  same('flush', ipvsRequest.flush());
  same('zero-all', ipvsRequest.zero());
  same('set-timeouts', ipvsRequest.setTimeouts({ tcp: 900, tcpFin: 120, udp: 300 }));
  same('list-timeouts', ipvsRequest.getTimeouts());
  same('list-daemons', ipvsRequest.listDaemons());
  same('start-daemon-master', ipvsRequest.startDaemon({ state: 'master', interface: 'lo', syncId: 7 }));
  same('start-daemon-backup-options', ipvsRequest.startDaemon({ state: 'backup', interface: 'lo', syncId: 9, maxLength: 1400, group: '224.0.0.82', port: 8850, ttl: 2 }));
  // Every ipvsadm run starts with GET_INFO.
  const c = goldenCase('flush');
  const fam = ipvsFamily(c);
  const info = c.sent.map((h) => Buffer.from(h, 'hex')).find((b) => b.readUInt16LE(4) === fam)!;
  assert.deepEqual(encodeLike(ipvsRequest.info(), parseNlmsgs(info)[0]!), info);
  // ipvsadm also sends an empty interface and sync id when stopping; the kernel reads only the state.
  const stop = decode(command(goldenCase('stop-daemon')).nl);
  assert.equal(stop.cmd, 'DEL_DAEMON');
  assert.equal(stop.attrs.daemon!.state, ipvsRequest.stopDaemon({ state: 'master' }).attrs.daemon!.state);
});

test('golden: list requests (dumps) match ipvsadm -Ln', () => {
  const c = goldenCase('list-table');
  const fam = ipvsFamily(c);
  const reqs = c.sent.map((h) => Buffer.from(h, 'hex')).filter((b) => b.readUInt16LE(4) === fam);
  const svcDump = reqs.find((b) => b[16] === IPVS_CMD.GET_SERVICE)!;
  assert.deepEqual(encodeLike(ipvsRequest.listServices(), parseNlmsgs(svcDump)[0]!), svcDump);
  const destDump = reqs.find((b) => b[16] === IPVS_CMD.GET_DEST)!;
  assert.deepEqual(encodeLike(ipvsRequest.listDestinations(v4('10.0.0.1', 80)), parseNlmsgs(destDump)[0]!), destDump);
  // Our default flags for a list request are ipvsadm's: REQUEST|ACK|DUMP.
  assert.equal(encode(ipvsRequest.listServices(), { family: fam, seq: 1 }).readUInt16LE(6), parseNlmsgs(svcDump)[0]!.flags);
  assert.equal(encode(ipvsRequest.addService(svc(v4('10.0.0.1', 80), 'rr')), { family: fam, seq: 1 }).readUInt16LE(6), 0x5);
});

test('kernel dump replies decode to what ipvsadm -Ln printed', () => {
  const c = goldenCase('list-table');
  const fam = ipvsFamily(c);
  const replies = messages(c.received).filter((m) => m.type === fam).map((m) => decode(m));
  // The kernel dumps in hash order (ipvsadm sorts): compare in ipvsadm's order.
  const order = (k: IpvsServiceKey): string => `${k.fwmark === undefined ? 0 : 1}${k.family}${k.address ?? ''}`;
  const services = replies.filter((m) => m.cmd === 'NEW_SERVICE').map((m) => serviceFromWire(m.attrs.service!))
    .sort((a, b) => order(a.key).localeCompare(order(b.key)));
  assert.deepEqual(services.map((s) => [s.key, s.scheduler, s.flags, s.timeout, s.netmask]), [
    [v4('10.0.0.1', 80), 'rr', 0, 0, 0xffffffff],
    [v6('2001:db8::1', 53, 'udp'), 'wlc', 0, 0, 128],
    [{ family: 'inet', fwmark: 42 }, 'sh', 0x1 | 0x10, 120, 0xffffffff],
  ]);
  assert.equal(services[0]!.stats?.connections, 0n);
  // Without stats: the same configuration, no counters.
  const lean = replies.length && messages(c.received).filter((m) => m.type === fam).map((m) => decode(m, { stats: false }))
    .filter((m) => m.cmd === 'NEW_SERVICE').map((m) => serviceFromWire(m.attrs.service!)).sort((a, b) => order(a.key).localeCompare(order(b.key)));
  assert.ok(lean);
  assert.deepEqual(lean.map((s) => s.stats), [undefined, undefined, undefined]);
  assert.deepEqual(lean.map(({ stats: _s, ...rest }) => rest), services.map(({ stats: _s, ...rest }) => rest));
  const dests = replies.filter((m) => m.cmd === 'NEW_DEST').map((m) => destFromWire(m.attrs.dest!, 'inet'));
  assert.deepEqual(dests.map((d) => [d.address, d.port, d.forward, d.weight, d.family]).sort(), [
    ['10.0.1.1', 8080, 'masq', 3, 'inet'],
    ['10.0.1.2', 8080, 'masq', 1, 'inet'],
    ['2001:db8::10', 5353, 'masq', 2, 'inet6'],
  ]);
  assert.match(c.stdout, /TCP {2}10\.0\.0\.1:80 rr\n {2}-> 10\.0\.1\.1:8080 +Masq +3/);
  // Every dump ends with NLMSG_DONE; the nlctrl requests end with an ACK (NLMSG_ERROR, errno 0).
  const all = messages(c.received);
  assert.ok(all.some((m) => m.type === NLMSG_DONE));
  for (const m of all.filter((x) => x.type === NLMSG_ERROR)) assert.equal(parseNlmsgErr(m.payload).errno, 0);
});

test('kernel replies of GET_INFO, GET_CONFIG and GET_DAEMON decode', () => {
  const reply = (name: string, cmd: IpvsCmd): IpvsWireMessage => {
    const c = goldenCase(name);
    const fam = ipvsFamily(c);
    const m = messages(c.received).filter((x) => x.type === fam).map((x) => decode(x)).find((x) => x.cmd === cmd);
    assert.ok(m, `${name}: ${cmd} reply`);
    return m;
  };
  const info = reply('list-timeouts', 'SET_INFO');
  assert.deepEqual(info.info, { version: 0x010201, connTabSize: 4096 });
  assert.deepEqual(timeoutsFromWire(reply('list-timeouts', 'SET_CONFIG')), { tcp: 900, tcpFin: 120, udp: 300 });
  assert.deepEqual(daemonFromWire(reply('list-daemons', 'NEW_DAEMON').attrs.daemon!),
    { state: 'master', interface: 'lo', syncId: 7, maxLength: 1472, port: 8848, ttl: 1, group: '224.0.0.81' });
});

test('stats: 64-bit counters decode beyond 2^32 and prefer STATS64 over the 32-bit set', () => {
  const big = (1n << 40n) + 5n;
  const msg: IpvsWireMessage = { cmd: 'NEW_SERVICE', attrs: { service: {
    af: 2, protocol: 6, addr: Buffer.alloc(16), port: 80, schedName: 'rr', flags: { flags: 2, mask: 0xffffffff }, timeout: 0, netmask: 0xffffffff,
    stats: { conns: 1, inpkts: 2, outpkts: 3, inbytes: 4n, outbytes: 5n, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 },
    stats64: { conns: big, inpkts: big + 1n, outpkts: 3n, inbytes: big * 1000n, outbytes: 5n, cps: 1n, inpps: 2n, outpps: 3n, inbps: 4n, outbps: 5n },
  } } };
  const back = serviceFromWire(decode(encode(msg, { family: 0x20, seq: 9 })).attrs.service!);
  assert.equal(back.stats?.connections, big);
  assert.equal(back.stats?.bytesIn, big * 1000n);
  assert.equal(back.flags, 0, 'HASHED is not a user flag');
});

// Round trip: arbitrary wire messages survive encode -> decode unchanged.
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const addr = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
const name = fc.stringMatching(/^[a-z0-9_]{0,15}$/);
const stats64 = fc.record({ conns: u64, inpkts: u64, outpkts: u64, inbytes: u64, outbytes: u64, cps: u64, inpps: u64, outpps: u64, inbps: u64, outbps: u64 }, { requiredKeys: [] });
const wireService = fc.record({
  af: u16, protocol: u16, addr, port: u16, fwmark: u32, schedName: name, peName: name,
  flags: fc.record({ flags: u32, mask: u32 }), timeout: u32, netmask: u32, stats64,
}, { requiredKeys: [] });
const wireDest = fc.record({
  addrFamily: u16, addr, port: u16, fwdMethod: u32, weight: u32, tunType: fc.integer({ min: 0, max: 255 }), tunPort: u16, tunFlags: u16,
  uThresh: u32, lThresh: u32, activeConns: u32, inactConns: u32, persistConns: u32, stats64,
}, { requiredKeys: [] });
const wireDaemon = fc.record({
  state: u32, mcastIfn: name, syncId: u32, syncMaxlen: u16, mcastPort: u16, mcastTtl: fc.integer({ min: 0, max: 255 }),
  mcastGroup: fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a)), mcastGroup6: addr,
}, { requiredKeys: [] });
/** fast-check builds null-prototype records; the decoder builds plain objects. */
function plain<T>(v: T): T {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) as T;
}
const cmdName = fc.constantFrom(...(Object.keys(IPVS_CMD) as IpvsCmd[]).filter((c) => c !== 'SET_INFO'));

test('round trip: encode -> decode returns the same wire message (property)', () => {
  fc.assert(fc.property(cmdName, fc.record({ service: wireService, dest: wireDest, daemon: wireDaemon, timeoutTcp: u32, timeoutTcpFin: u32, timeoutUdp: u32 }, { requiredKeys: [] }), u32, (cmd, attrs, seq) => {
    const back = decode(encode({ cmd, attrs }, { family: 0x20, seq }));
    assert.equal(back.cmd, cmd);
    assert.equal(back.header.seq, seq);
    assert.deepEqual(back.attrs, plain(attrs));
  }), { numRuns: 300 });
});

test('malformed input fails with a clear error instead of garbage', () => {
  assert.throws(() => decodeAttrs(CMD_TABLE, Buffer.from([0x40, 0, 1, 0])), /malformed attribute/);
  assert.throws(() => parseNlmsgs(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), /malformed netlink message/);
  assert.throws(() => decode(encode({ cmd: 'FLUSH', attrs: {} }, { family: 0x20, seq: 1 }).fill(99, 16, 17)), /unknown IPVS command 99/);
  assert.throws(() => ipvsRequest.addService(svc({ family: 'inet', protocol: 'tcp', address: '2001:db8::1', port: 1 }, 'rr')), /not of family inet/);
});
