import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadObject, RingBuffer, XdpAction, type BpfObject } from '../../src/bpf/index.js';
import { FulcrumError } from '../../src/errors.js';
import { bpfSkipReason, bpftool, objectPath } from '../helpers/bpf.js';

const skip = bpfSkipReason('test_ringbuf', 'test_maps');
const RING = 4096;
/** A record is its 16 bytes behind the ring's 8-byte header. */
const PER_RECORD = 16 + 8;

function packet(i: number, len = 64): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt32BE(0xf1f50000 + i, 0);
  b.writeUInt32BE(i, 4);
  return b;
}

function lost(obj: BpfObject): bigint {
  const bss = obj.mapNames().find((n) => n.endsWith('.bss'))!;
  const v = obj.btf.sectionVars('.bss').find((x) => x.name === 'lost')!;
  return obj.map(bss).lookup(Buffer.alloc(4))!.readBigUInt64LE(v.offset);
}

test('RingBuffer.consume delivers every record the program submitted, in order, as copies', { skip }, async () => {
  const obj = loadObject(objectPath('test_ringbuf'));
  const got: Buffer[] = [];
  const rb = RingBuffer.open(obj.map('events'), (r) => got.push(r));
  try {
    const shown = (await bpftool(['map', 'show', 'id', String(obj.map('events').info.id)])) as { type: string; max_entries: number };
    assert.deepEqual([shown.type, shown.max_entries], ['ringbuf', RING]);
    assert.equal(rb.consume(), 0, 'nothing submitted yet');
    const prog = obj.program('xdp_emit');
    for (let i = 0; i < 10; i++) assert.equal(prog.testRun({ data: packet(i, 64 + i) }).retval, XdpAction.PASS);
    assert.equal(rb.consume(), 10);
    assert.equal(got.length, 10);
    got.forEach((r, i) => {
      assert.equal(r.length, 16);
      assert.deepEqual(r.subarray(0, 8), packet(i).subarray(0, 8), `record ${i} head`);
      assert.equal(r.readUInt32LE(8), 64 + i, `record ${i} length`);
      assert.equal(r.readUInt32LE(12), i, `record ${i} sequence`);
    });
    assert.equal(rb.consume(), 0, 'a second drain finds nothing');
    assert.equal(lost(obj), 0n);
  } finally {
    rb.close();
    obj.close();
  }
});

test('a full ring loses records (counted by the program) until the consumer drains it; then it takes records again', { skip }, () => {
  const obj = loadObject(objectPath('test_ringbuf'));
  const got: number[] = [];
  const rb = RingBuffer.open(obj.map('events'), (r) => got.push(r.readUInt32LE(12)));
  try {
    const prog = obj.program('xdp_emit');
    const runs = 400;
    let drops = 0;
    for (let i = 0; i < runs; i++) if (prog.testRun({ data: packet(i) }).retval === XdpAction.DROP) drops++;
    const fit = Math.floor(RING / PER_RECORD);
    assert.ok(drops > 0, "the ring filled up");
    assert.ok(rb.consume() > 0);
    assert.equal(got.length, runs - drops, 'every record the program kept is delivered');
    assert.ok(got.length <= fit && got.length >= fit - 1, `${got.length} records in a ${RING}-byte ring (${fit} fit)`);
    assert.equal(lost(obj), BigInt(drops), 'the program counted each lost record');
    assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i), 'the records kept are the first ones, in order');
    got.length = 0;
    assert.equal(prog.testRun({ data: packet(999) }).retval, XdpAction.PASS, 'drained: room again');
    assert.equal(rb.consume(), 1);
    assert.equal(got.length, 1);
  } finally {
    rb.close();
    obj.close();
  }
});

test('an exception in the record callback stops the drain and is thrown by consume(); the rest stays for the next one', { skip }, () => {
  const obj = loadObject(objectPath('test_ringbuf'));
  const got: number[] = [];
  const rb = RingBuffer.open(obj.map('events'), (r) => {
    const seq = r.readUInt32LE(12);
    if (seq === 2 && got.length === 2) throw new Error('bad record 2');
    got.push(seq);
  });
  try {
    const prog = obj.program('xdp_emit');
    for (let i = 0; i < 5; i++) prog.testRun({ data: packet(i) });
    assert.throws(() => rb.consume(), /bad record 2/);
    assert.deepEqual(got, [0, 1]);
    assert.equal(rb.consume(), 2, 'the records after the failed one');
    assert.deepEqual(got, [0, 1, 3, 4], 'the failed record counts as consumed');
  } finally {
    rb.close();
    obj.close();
  }
});

test('RingBuffer refuses a map that is not a ringbuf, and a closed one refuses consume()', { skip }, () => {
  const obj = loadObject(objectPath('test_ringbuf'));
  const other = loadObject(objectPath('test_maps'));
  try {
    assert.throws(() => RingBuffer.open(other.map('backends'), () => undefined), (e: unknown) => e instanceof FulcrumError && /not a ringbuf/.test(e.message));
    const rb = RingBuffer.open(obj.map('events'), () => undefined);
    rb.close();
    assert.equal(rb.closed, true);
    assert.throws(() => rb.consume(), /closed/);
    rb.close(); // twice is fine
    // Many open/close cycles: each unregisters its callback (koffi has a bounded number of slots).
    for (let i = 0; i < 200; i++) RingBuffer.open(obj.map('events'), () => undefined).close();
  } finally {
    other.close();
    obj.close();
  }
});
