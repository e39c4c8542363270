import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeResponse, DnsDecodeError, encodeQuery } from '../../src/health/dns-codec.js';

// Golden bytes: the queries glibc 2.36's stub resolver sent (`getent ahostsv4 www.example.com` and
// `getent hosts -s dns mail.example.org` in a netns, captured with `strace -xx -e sendto`); only the
// random id is replaced (0x8722 -> 0x1234, 0xe98f -> 0x0001). Both have flags 0x0100 (RD).
const GOLDEN_QUERY = Buffer.from('12340100000100000000000003777777076578616d706c6503636f6d0000010001', 'hex');
const GOLDEN_AAAA = Buffer.from('000101000001000000000000046d61696c076578616d706c65036f72670000' + '1c0001', 'hex');

test('encodeQuery produces the RFC 1035 query bytes', () => {
  assert.deepEqual(encodeQuery({ id: 0x1234, name: 'www.example.com', type: 'A' }), GOLDEN_QUERY);
  assert.deepEqual(encodeQuery({ id: 0x1234, name: 'www.example.com.', type: 'A' }), GOLDEN_QUERY, 'a trailing dot is the same name');
  assert.deepEqual(encodeQuery({ id: 1, name: 'mail.example.org', type: 'AAAA' }), GOLDEN_AAAA);
  const aaaa = encodeQuery({ id: 1, name: 'a.b', type: 'AAAA', recursionDesired: false });
  assert.equal(aaaa.toString('hex'), '000100000001000000000000' + '016101620000' + '1c0001');
  assert.throws(() => encodeQuery({ id: 1, name: 'x'.repeat(64) + '.com', type: 'A' }), /1-63 bytes/);
});

/** An independent, simple builder of a response: compression pointers to the question name at offset 12. */
function response(id: number, rcode: number, answers: Array<[type: number, rdata: Buffer]>): Buffer {
  const q = Buffer.from('03777777076578616d706c6503636f6d0000010001', 'hex');
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x8180 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const rrs = answers.map(([type, rd]) => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(0xc00c, 0); h.writeUInt16BE(type, 2); h.writeUInt16BE(1, 4); h.writeUInt32BE(300, 6); h.writeUInt16BE(rd.length, 10);
    return Buffer.concat([h, rd]);
  });
  return Buffer.concat([header, q, ...rrs]);
}

test('decodeResponse reads answers through name compression', () => {
  const cname = Buffer.from([3, 0x77, 0x65, 0x62, 0xc0, 0x10]); // "web" + pointer to "example.com"
  const r = decodeResponse(response(0x1234, 0, [[1, Buffer.from([10, 0, 0, 7])], [5, cname], [28, Buffer.from('20010db8000000000000000000000001', 'hex')], [16, Buffer.from('\x02hi\x03you')]]));
  assert.equal(r.id, 0x1234);
  assert.equal(r.isResponse, true);
  assert.equal(r.rcode, 0);
  assert.deepEqual(r.questions, [{ name: 'www.example.com', type: 1 }]);
  assert.deepEqual(r.answers.map((a) => [a.name, a.type, a.ttl, a.data]), [
    ['www.example.com', 'A', 300, '10.0.0.7'],
    ['www.example.com', 'CNAME', 300, 'web.example.com'],
    ['www.example.com', 'AAAA', 300, '2001:db8::1'],
    ['www.example.com', 'TXT', 300, 'hiyou'],
  ]);
  assert.equal(decodeResponse(response(7, 3, [])).rcode, 3);
});

test('decodeResponse refuses malformed messages instead of reading past them', () => {
  assert.throws(() => decodeResponse(Buffer.alloc(5)), DnsDecodeError);
  const full = response(1, 0, [[1, Buffer.from([10, 0, 0, 7])]]);
  assert.throws(() => decodeResponse(full.subarray(0, full.length - 2)), /runs past/);
  const loop = Buffer.from(full);
  loop.writeUInt16BE(0xc00c, 12); // the question name points at itself
  assert.throws(() => decodeResponse(loop), /compression loop/);
});
