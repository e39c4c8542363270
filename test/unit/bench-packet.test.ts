import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPacket, inetChecksum, ipBytes, parsePacket } from '../../scripts/bench/packet.js';
import { stats } from '../../scripts/bench/xdp-lib.js';

test('inetChecksum: the classic IPv4 header example (checksum b861)', () => {
  const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  assert.equal(inetChecksum(hdr), 0xb861);
  hdr.writeUInt16BE(0xb861, 10);
  assert.equal(inetChecksum(hdr), 0);
});

test('ipBytes parses IPv4 and compressed IPv6', () => {
  assert.equal(ipBytes('10.0.0.1').toString('hex'), '0a000001');
  assert.equal(ipBytes('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
  assert.equal(ipBytes('::').toString('hex'), '0'.repeat(32));
  assert.throws(() => ipBytes('10.0.0'));
});

test('build -> parse round trip, VLAN, IPv4/IPv6, TCP/UDP, valid checksums; a flipped byte is caught', () => {
  for (const spec of [
    { saddr: '192.0.2.1', daddr: '10.0.0.100', proto: 'tcp' as const, sport: 1234, dport: 80 },
    { saddr: '192.0.2.1', daddr: '10.0.0.100', proto: 'udp' as const, sport: 1234, dport: 53, vlan: 7, payload: Buffer.from('abc') },
    { saddr: '2001:db8::1', daddr: '2001:db8::100', proto: 'tcp' as const, sport: 1, dport: 443 },
  ]) {
    const pkt = buildPacket(spec);
    const p = parsePacket(pkt);
    assert.equal(p.sport, spec.sport);
    assert.equal(p.dport, spec.dport);
    assert.ok(p.ipChecksumOk && p.l4ChecksumOk);
    if ('vlan' in spec) assert.equal(p.vlan, 7);
    const bad = Buffer.from(pkt);
    bad[bad.length - 1]! ^= 0xff;
    bad[p.l4Offset + 2]! ^= 0x01;
    assert.equal(parsePacket(bad).l4ChecksumOk, false);
  }
});

test('stats: min/median/max, even and odd counts', () => {
  assert.deepEqual(stats([3, 1, 2]), { min: 1, median: 2, max: 3 });
  assert.deepEqual(stats([4, 1, 3, 2]), { min: 1, median: 2.5, max: 4 });
});
