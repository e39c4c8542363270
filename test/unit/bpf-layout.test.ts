import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertLayout, decodeStruct, encodeStruct, layoutMismatches, type StructLayout } from '../../src/bpf/layout.js';

// Shaped like what Btf.structLayout() returns for bpf/test/test_maps.h `struct test_backend`
// (the kernel tier checks the real BTF; this tier checks the pure logic).
const backend: StructLayout = {
  name: 'test_backend', kind: 'struct', size: 32,
  members: [
    { name: 'addr', offset: 0, size: 16, type: '__be32[4]' },
    { name: 'port', offset: 16, size: 2, type: '__be16' },
    { name: 'family', offset: 18, size: 1, type: '__u8' },
    { name: 'flags', offset: 19, size: 1, type: '__u8' },
    { name: 'weight', offset: 20, size: 4, type: '__u32' },
    { name: 'packets', offset: 24, size: 8, type: '__u64' },
  ],
};

test('layoutMismatches lists every difference, empty when they agree', () => {
  assert.deepEqual(layoutMismatches({ size: 32, members: [{ name: 'port', offset: 16, size: 2 }] }, backend), []);
  assert.deepEqual(
    layoutMismatches({ size: 24, members: [{ name: 'port', offset: 18 }, { name: 'weight', offset: 20, size: 2 }, { name: 'vip', offset: 0 }] }, backend),
    ['size is 32, expected 24', 'member port is at offset 16, expected 18', 'member weight is 4 bytes, expected 2', 'member vip is missing'],
  );
  assert.deepEqual(layoutMismatches({ members: [{ name: 'addr', offset: 0 }], exact: true }, backend).length, 5);
});

test('assertLayout throws naming the struct and the member', () => {
  assert.throws(() => assertLayout({ members: [{ name: 'port', offset: 18 }] }, backend), /struct test_backend does not match: member port is at offset 16, expected 18/);
  assertLayout({ size: 32, members: backend.members }, backend);
});

test('encodeStruct: host order for __u*, network order for __be*, Buffers for arrays (golden bytes)', () => {
  const addr = Buffer.from([10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const b = encodeStruct(backend, { addr, port: 8080, family: 2, weight: 0x01020304, packets: 5n });
  assert.equal(b.toString('hex'), '0a000001000000000000000000000000' + '1f90' + '02' + '00' + '04030201' + '0500000000000000');
  assert.deepEqual(decodeStruct(backend, b), { addr, port: 8080, family: 2, flags: 0, weight: 0x01020304, packets: 5n });
});

test('encodeStruct rejects unknown members, wrong sizes and overflow', () => {
  assert.throws(() => encodeStruct(backend, { vip: 1 }), /has no member vip/);
  assert.throws(() => encodeStruct(backend, { addr: Buffer.alloc(4) }), /addr is 16 bytes, got 4/);
  assert.throws(() => encodeStruct(backend, { port: 65536 }), /does not fit in 2 bytes/);
  assert.throws(() => encodeStruct(backend, { addr: 1 }), /takes a Buffer/);
});
