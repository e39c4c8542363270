import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  decodeAdvert, decodeIpv4, decodeIpv6, encodeAdvert, encodeIpv4, internetChecksum, passwordAuthData,
  VrrpDecodeError, type VrrpAdvert,
} from '../../src/vrrp/codec.js';
import { ipOfFrame, readPcapFrames } from '../helpers/pcap.js';

// Fixtures: packets captured from keepalived 2.2.7 by scripts/vrrp/capture-keepalived.sh (each
// CASE.pcap sits next to the CASE.conf that produced it). dist/test/unit -> repo root.
const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const fixture = (name: string) => join(root, 'test', 'fixtures', 'vrrp', `${name}.pcap`);

function v4Packets(name: string) {
  return readPcapFrames(fixture(name)).map((f) => decodeIpv4(ipOfFrame(f)));
}

/** An independent, literal builder of the v3 IPv4 checksum, to cross-check the codec's. */
function referenceV3Ipv4Checksum(src: number[], dst: number[], msg: Buffer): number {
  const words: number[] = [];
  const bytes = [...src, ...dst, 0, 112, msg.length >> 8, msg.length & 0xff, ...msg];
  if (bytes.length % 2) bytes.push(0);
  for (let i = 0; i < bytes.length; i += 2) words.push(bytes[i]! * 256 + bytes[i + 1]!);
  let sum = words.reduce((a, b) => a + b, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return 0xffff - sum;
}

const cases: { name: string; advert: Omit<VrrpAdvert, 'family'>; dst: string }[] = [
  { name: 'v3-ipv4', dst: '224.0.0.18', advert: { version: 3, vrid: 51, priority: 150, interval: 100, addresses: ['192.0.2.100', '192.0.2.101'] } },
  { name: 'v3-ipv4-50ms', dst: '224.0.0.18', advert: { version: 3, vrid: 51, priority: 200, interval: 5, addresses: ['192.0.2.100'] } },
  { name: 'v3-ipv4-unicast', dst: '192.0.2.11', advert: { version: 3, vrid: 51, priority: 150, interval: 100, addresses: ['192.0.2.100'] } },
  { name: 'v3-ipv4-owner-shutdown', dst: '224.0.0.18', advert: { version: 3, vrid: 51, priority: 255, interval: 100, addresses: ['192.0.2.100'] } },
  {
    name: 'v2-ipv4-auth', dst: '224.0.0.18',
    advert: { version: 2, vrid: 51, priority: 100, interval: 1, addresses: ['192.0.2.100', '192.0.2.102'], authType: 1, authData: passwordAuthData('secret12') },
  },
  { name: 'v2-ipv4-noauth', dst: '224.0.0.18', advert: { version: 2, vrid: 51, priority: 254, interval: 2, addresses: ['192.0.2.100'], authType: 0, authData: Buffer.alloc(8) } },
];

for (const c of cases) {
  test(`codec: keepalived ${c.name} decodes and re-encodes byte for byte`, () => {
    const packets = v4Packets(c.name);
    assert.ok(packets.length >= 2, 'the capture holds adverts');
    const first = packets[0]!;
    assert.equal(first.ttl, 255);
    assert.equal(first.protocol, 112);
    assert.equal(first.src, '192.0.2.10');
    assert.equal(first.dst, c.dst);
    const ph = { src: first.src, dst: first.dst };
    const decoded = decodeAdvert(first.payload, 'inet', ph);
    assert.deepEqual(decoded, { ...c.advert, family: 'inet' });
    assert.deepEqual(encodeAdvert(decoded, ph), first.payload, 'golden bytes');
    if (c.advert.version === 3) {
      const zeroed = Buffer.from(first.payload);
      zeroed.writeUInt16BE(0, 6);
      assert.equal(referenceV3Ipv4Checksum([192, 0, 2, 10], c.dst.split('.').map(Number), zeroed), first.payload.readUInt16BE(6));
    }
  });
}

test('codec: keepalived v3 IPv4 checksum uses the IPv4 pseudo-header (not the IPv6 one, not none)', () => {
  const p = v4Packets('v3-ipv4')[0]!;
  assert.notEqual(internetChecksum([p.payload]), 0, 'a v2-style checksum (message only) would not verify');
  assert.throws(() => decodeAdvert(p.payload, 'inet', { src: p.src, dst: '224.0.0.19' }), (e: unknown) => e instanceof VrrpDecodeError && e.reason === 'bad-checksum');
});

test('codec: keepalived priority-0 advert on shutdown', () => {
  const packets = v4Packets('v3-ipv4-owner-shutdown');
  const last = packets[packets.length - 1]!;
  assert.equal(decodeAdvert(last.payload, 'inet', { src: last.src, dst: last.dst }).priority, 0);
});

test('codec: keepalived v3 IPv6 adverts (link-local source, ff02::12, IPv6 pseudo-header)', () => {
  const frames = readPcapFrames(fixture('v3-ipv6'));
  const ip = decodeIpv6(ipOfFrame(frames[0]!));
  assert.equal(ip.hopLimit, 255);
  assert.equal(ip.nextHeader, 112);
  assert.equal(ip.dst, 'ff02::12');
  assert.match(ip.src, /^fe80::/);
  const ph = { src: ip.src, dst: ip.dst };
  const advert = decodeAdvert(ip.payload, 'inet6', ph);
  assert.deepEqual(advert, { version: 3, vrid: 51, priority: 150, interval: 100, family: 'inet6', addresses: ['fe80::100', '2001:db8::100'] });
  assert.deepEqual(encodeAdvert(advert, ph), ip.payload);
});

test('codec: IPv4 header for IP_HDRINCL round-trips and carries TTL 255, TOS 0xc0', () => {
  const payload = encodeAdvert({ version: 3, vrid: 7, priority: 100, interval: 10, family: 'inet', addresses: ['10.0.0.1'] }, { src: '10.0.0.2', dst: '224.0.0.18' });
  const pkt = encodeIpv4('10.0.0.2', '224.0.0.18', payload);
  assert.equal(pkt[1], 0xc0);
  assert.equal(internetChecksum([pkt.subarray(0, 20)]), 0);
  const h = decodeIpv4(pkt);
  assert.deepEqual({ ttl: h.ttl, protocol: h.protocol, src: h.src, dst: h.dst }, { ttl: 255, protocol: 112, src: '10.0.0.2', dst: '224.0.0.18' });
  assert.deepEqual(h.payload, payload);
});

test('codec: errors are typed with a reason', () => {
  const good = encodeAdvert({ version: 3, vrid: 1, priority: 100, interval: 100, family: 'inet', addresses: ['10.0.0.1'] }, { src: '10.0.0.2', dst: '224.0.0.18' });
  const ph = { src: '10.0.0.2', dst: '224.0.0.18' };
  const reason = (buf: Buffer, family: 'inet' | 'inet6' = 'inet') => {
    try { decodeAdvert(buf, family, ph); return 'ok'; } catch (e) { assert.ok(e instanceof VrrpDecodeError); return e.reason; }
  };
  assert.equal(reason(good), 'ok');
  assert.equal(reason(good.subarray(0, 5)), 'truncated');
  const v4 = Buffer.from(good); v4[0] = 0x41; assert.equal(reason(v4), 'bad-version');
  const t2 = Buffer.from(good); t2[0] = 0x32; assert.equal(reason(t2), 'bad-type');
  const cnt = Buffer.from(good); cnt[3] = 2; assert.equal(reason(cnt), 'bad-address-count');
  const zero = Buffer.from(good); zero[3] = 0; assert.equal(reason(zero), 'bad-address-count');
  const sum = Buffer.from(good); sum[2] = 99; assert.equal(reason(sum), 'bad-checksum');
  const v2 = encodeAdvert({ version: 2, vrid: 1, priority: 100, interval: 1, family: 'inet', addresses: ['10.0.0.1'] });
  assert.equal(reason(v2, 'inet6'), 'bad-version');
});

test('codec: encode/decode round-trip for any advert (fast-check)', () => {
  const v4 = fc.ipV4();
  const v6 = fc.ipV6();
  fc.assert(
    fc.property(
      fc.oneof(
        fc.record({ version: fc.constant(3 as const), family: fc.constant('inet' as const), addresses: fc.array(v4, { minLength: 1, maxLength: 20 }), interval: fc.integer({ min: 1, max: 4095 }) }),
        fc.record({ version: fc.constant(3 as const), family: fc.constant('inet6' as const), addresses: fc.array(v6, { minLength: 1, maxLength: 8 }), interval: fc.integer({ min: 1, max: 4095 }) }),
        fc.record({ version: fc.constant(2 as const), family: fc.constant('inet' as const), addresses: fc.array(v4, { minLength: 1, maxLength: 20 }), interval: fc.integer({ min: 1, max: 255 }) }),
      ),
      fc.integer({ min: 1, max: 255 }), fc.integer({ min: 0, max: 255 }), v4, v6,
      (shape, vrid, priority, s4, s6) => {
        const ph = shape.family === 'inet' ? { src: s4, dst: '224.0.0.18' } : { src: s6, dst: 'ff02::12' };
        const advert: VrrpAdvert = { ...shape, vrid, priority };
        if (shape.version === 2) { advert.authType = 0; advert.authData = Buffer.alloc(8); }
        const decoded = decodeAdvert(encodeAdvert(advert, ph), shape.family, ph);
        const canon = (a: string) => decodeAdvert(encodeAdvert({ ...advert, addresses: [a] }, ph), shape.family, ph).addresses[0];
        assert.deepEqual(decoded, { ...advert, addresses: advert.addresses.map(canon) });
      },
    ),
    { numRuns: 300 },
  );
});

test('codec: the decoders never throw anything but VrrpDecodeError (fast-check)', () => {
  const seed = v4Packets('v2-ipv4-auth')[0]!.payload;
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    // Mutations of a real packet reach deeper than random bytes.
    fc.tuple(fc.integer({ min: 0, max: seed.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: seed.length })).map(([i, v, cut]) => {
      const b = Buffer.from(seed); b[i] = v; return b.subarray(0, cut);
    }),
  );
  fc.assert(
    fc.property(anyBytes, fc.constantFrom('inet' as const, 'inet6' as const), fc.boolean(), (bytes, family, withPh) => {
      const buf = Buffer.from(bytes);
      const ph = family === 'inet' ? { src: '192.0.2.10', dst: '224.0.0.18' } : { src: 'fe80::1', dst: 'ff02::12' };
      for (const fn of [() => decodeAdvert(buf, family, withPh ? ph : undefined), () => decodeIpv4(buf), () => decodeIpv6(buf)]) {
        try { fn(); } catch (e) { if (!(e instanceof VrrpDecodeError)) throw e; }
      }
    }),
    { numRuns: 3000 },
  );
});
