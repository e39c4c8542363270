import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { BpfObject, loadObject, MapType, pinThreadToCpu, possibleCpus, routeLibbpfLog, XdpAction, xdpContext, type BpfObject as Obj } from '../../src/bpf/index.js';
import { FulcrumError, KernelError } from '../../src/errors.js';
import { bpfSkipReason, bpftool, objectPath, u32, u64 } from '../helpers/bpf.js';

const skip = bpfSkipReason('test_maps', 'test_reject');
const OBJ = objectPath('test_maps');

function load(opts: Parameters<typeof loadObject>[1] = {}): Obj {
  return loadObject(OBJ, opts);
}

function eth(dst: string, src: string): Buffer {
  const b = Buffer.alloc(64);
  Buffer.from(dst.replace(/:/g, ''), 'hex').copy(b, 0);
  Buffer.from(src.replace(/:/g, ''), 'hex').copy(b, 6);
  b.writeUInt16BE(0x0800, 12);
  return b;
}

test('open lists programs and maps; declared map info before load, kernel info after', { skip }, async () => {
  const obj = BpfObject.openFile(OBJ);
  try {
    assert.deepEqual(obj.programNames().sort(), ['xdp_count', 'xdp_dispatch', 'xdp_drop', 'xdp_grow', 'xdp_knob', 'xdp_mm', 'xdp_pass', 'xdp_swap']);
    assert.ok(obj.mapNames().includes('backends') && obj.mapNames().some((n) => n.endsWith('.rodata')));
    assert.deepEqual(obj.declaredMap('backends'), { type: MapType.HASH, keySize: 4, valueSize: 32, maxEntries: 1024, flags: 0 });
    assert.throws(() => obj.map('backends'), /not loaded yet/);
    obj.setMaxEntries('lru', 256);
    obj.load();
    const info = obj.map('lru').info;
    const shown = (await bpftool(['map', 'show', 'id', String(info.id)])) as { type: string; bytes_key: number; bytes_value: number; max_entries: number; name: string };
    assert.deepEqual([shown.type, shown.bytes_key, shown.bytes_value, shown.max_entries, shown.name], ['lru_hash', 8, 8, 256, 'lru']);
    assert.deepEqual([info.typeName, info.keySize, info.valueSize, info.maxEntries, info.name], ['lru_hash', 8, 8, 256, 'lru']);
    const prog = obj.program('xdp_pass').info;
    const p = (await bpftool(['prog', 'show', 'id', String(prog.id)])) as { type: string; name: string; tag: string };
    assert.deepEqual([p.type, p.name, p.tag], ['xdp', 'xdp_pass', prog.tag]);
    assert.throws(() => obj.program('nope'), (e: unknown) => e instanceof FulcrumError && e.code === 'NOT_FOUND' && /no program nope/.test(e.message));
  } finally {
    obj.close();
  }
});

test('an object opened from memory under another name loads the same', { skip }, () => {
  const obj = BpfObject.openBuffer(readFileSync(OBJ), { objectName: 'fl_mem' });
  try {
    assert.equal(obj.name, 'fl_mem');
    obj.load();
    assert.equal(obj.program('xdp_drop').testRun({ data: Buffer.alloc(64) }).retval, XdpAction.DROP);
  } finally {
    obj.close();
  }
});

test('hash map: update modes, lookup, delete, iteration; bpftool sees the same entries', { skip }, async () => {
  const obj = load();
  try {
    const m = obj.map('backends');
    const v = (x: number) => Buffer.alloc(32, x);
    m.update(u32(1), v(1));
    m.update(u32(2), v(2), 'noexist');
    assert.throws(() => m.update(u32(2), v(9), 'noexist'), (e: unknown) => e instanceof KernelError && e.errno === 17 && /bpf_map_update_elem\(map backends\)/.test(e.message));
    assert.throws(() => m.update(u32(3), v(3), 'exist'), (e: unknown) => e instanceof KernelError && e.errno === 2);
    m.update(u32(2), v(22), 'exist');
    assert.deepEqual(m.lookup(u32(2)), v(22));
    assert.equal(m.lookup(u32(3)), undefined);
    assert.throws(() => m.lookup(Buffer.alloc(8)), /key is 8 bytes, the map's key_size is 4/);
    assert.throws(() => m.update(u32(5), Buffer.alloc(3)), /value is 3 bytes/);
    assert.throws(() => m.lookupPerCpu(u32(1)), /use lookup/);
    const keys = m.keys().map((k) => k.readUInt32LE(0)).sort();
    assert.deepEqual(keys, [1, 2]);
    const dump = (await bpftool(['map', 'dump', 'id', String(m.info.id)])) as Array<{ key: number | string[]; value: unknown }>;
    assert.equal(dump.length, 2);
    assert.equal(m.delete(u32(1)), true);
    assert.equal(m.delete(u32(1)), false);
    assert.equal(m.nextKey()?.readUInt32LE(0), 2);
    assert.equal(m.nextKey(u32(2)), undefined);
  } finally {
    obj.close();
  }
});

test('array map: zero-initialised, no delete (EINVAL)', { skip }, () => {
  const obj = load();
  try {
    const a = obj.map('arr');
    assert.deepEqual(a.lookup(u32(15)), u64(0));
    assert.equal(a.lookup(u32(16)), undefined, 'out of range is not found');
    a.update(u32(3), u64(42n));
    assert.deepEqual(a.lookup(u32(3)), u64(42n));
    assert.throws(() => a.delete(u32(3)), (e: unknown) => e instanceof KernelError && e.errno === 22);
  } finally {
    obj.close();
  }
});

test('per-CPU maps: one value per possible CPU; the program counts on the CPU it ran on', { skip }, () => {
  const obj = load();
  try {
    const n = possibleCpus();
    const pc = obj.map('pcpu');
    assert.equal(pc.isPerCpu, true);
    assert.throws(() => pc.lookup(u32(0)), /use lookupPerCpu/);
    const before = pc.lookupPerCpu(u32(0))!;
    assert.equal(before.length, n);
    const cpu = n - 1;
    const restore = pinThreadToCpu(cpu);
    try {
      const r = obj.program('xdp_count').testRun({ data: Buffer.alloc(64), repeat: 7 });
      assert.equal(r.retval, XdpAction.PASS);
    } finally {
      restore();
    }
    const after = pc.lookupPerCpu(u32(0))!;
    assert.equal(after[cpu]!.readBigUInt64LE(0) - before[cpu]!.readBigUInt64LE(0), 7n);
    for (let i = 0; i < n; i++) if (i !== cpu) assert.deepEqual(after[i], before[i]);
    const values = Array.from({ length: n }, (_, i) => u64(100 + i));
    pc.updatePerCpu(u32(1), values);
    assert.deepEqual(pc.lookupPerCpu(u32(1)), values);
    assert.throws(() => pc.updatePerCpu(u32(1), values.slice(1)), /per-CPU values given/);
    // per-CPU hash: 4-byte values are padded to 8 per CPU by the kernel
    const ph = obj.map('pcpu_hash');
    assert.equal(ph.perCpuStride, 8);
    const small = Array.from({ length: n }, (_, i) => u32(7 * (i + 1)));
    ph.updatePerCpu(u32(9), small);
    assert.deepEqual(ph.lookupPerCpu(u32(9)), small);
  } finally {
    obj.close();
  }
});

test('LRU hash evicts instead of failing when full', { skip }, () => {
  const obj = load();
  try {
    const lru = obj.map('lru');
    for (let i = 0; i < 1000; i++) lru.update(u64(i), u64(i * 2));
    const n = lru.keys().length;
    assert.ok(n > 0 && n <= 128, `${n} entries`);
    assert.deepEqual(lru.lookup(u64(999)), u64(1998), 'the most recent insert is present');
  } finally {
    obj.close();
  }
});

test('batch ops: update, lookup in chunks, delete; per-CPU batch values', { skip }, () => {
  const obj = load();
  try {
    const m = obj.map('backends');
    const keys = Array.from({ length: 500 }, (_, i) => u32(i + 1000));
    const values = keys.map((k) => Buffer.alloc(32, k[0]!));
    assert.equal(m.updateBatch(keys, values), 500);
    const got = m.lookupBatch(64);
    assert.equal(got.keys.length, 500);
    assert.equal(m.lookupBatch(1).keys.length, 500, 'a chunk smaller than a hash bucket grows instead of failing (ENOSPC)');
    const map = new Map(got.keys.map((k, i) => [k.readUInt32LE(0), got.values[i]!]));
    for (const [i, k] of keys.entries()) assert.deepEqual(map.get(k.readUInt32LE(0)), values[i]);
    assert.equal(m.deleteBatch(keys.slice(0, 250)), 250);
    assert.equal(m.keys().length, 250);
    assert.throws(() => m.deleteBatch([u32(1)]), (e: unknown) => e instanceof KernelError && e.errno === 2);

    const arr = obj.map('arr').lookupBatch(5);
    assert.equal(arr.keys.length, 16, 'array maps batch over every index');

    const ph = obj.map('pcpu_hash');
    const n = possibleCpus();
    const raw = ph.joinPerCpu(Array.from({ length: n }, (_, c) => u32(c + 1)));
    ph.updateBatch([u32(1), u32(2)], [raw, raw]);
    const b = ph.lookupBatch();
    assert.equal(b.keys.length, 2);
    assert.deepEqual(ph.splitPerCpu(b.values[0]!), Array.from({ length: n }, (_, c) => u32(c + 1)));
  } finally {
    obj.close();
  }
});

test('const volatile knobs are set before load; bpftool reads them back from .rodata', { skip }, async () => {
  const obj = load({ rodata: { knob_verdict: XdpAction.DROP, knob_wide: 0x1122334455n } });
  try {
    assert.equal(obj.program('xdp_knob').testRun({ data: Buffer.alloc(64) }).retval, XdpAction.DROP);
    const rodata = obj.mapNames().find((n) => n.endsWith('.rodata'))!;
    const dump = (await bpftool(['map', 'dump', 'id', String(obj.map(rodata).info.id)])) as Array<{ formatted: { value: { '.rodata': Array<Record<string, number>> } } }>;
    const vars = Object.assign({}, ...dump[0]!.formatted.value['.rodata']);
    assert.equal(vars.knob_verdict, XdpAction.DROP);
    assert.equal(vars.knob_wide, 0x1122334455);
  } finally {
    obj.close();
  }
  const dflt = load();
  try {
    assert.equal(dflt.program('xdp_knob').testRun({ data: Buffer.alloc(64) }).retval, XdpAction.PASS);
  } finally {
    dflt.close();
  }
  assert.throws(() => load({ rodata: { nope: 1 } }), /no const volatile nope in \.rodata \(has: knob_verdict, knob_wide\)/);
  assert.throws(() => load({ rodata: { knob_verdict: 2 ** 32 } }), /does not fit in 4 bytes/);
});

test('test run: output packet, verdicts, tail calls through a prog array', { skip }, () => {
  const obj = load();
  try {
    const out = obj.program('xdp_swap').testRun({ data: eth('02:00:00:00:00:02', '02:00:00:00:00:01') });
    assert.equal(out.retval, XdpAction.TX);
    assert.deepEqual(out.data.subarray(0, 12), eth('02:00:00:00:00:01', '02:00:00:00:00:02').subarray(0, 12));
    assert.equal(out.data.length, 64);
    const dispatch = obj.program('xdp_dispatch');
    assert.equal(dispatch.testRun({ data: Buffer.alloc(64) }).retval, XdpAction.ABORTED);
    const jump = obj.map('jump');
    jump.setTailCall(0, obj.program('xdp_drop'));
    assert.equal(dispatch.testRun({ data: Buffer.alloc(64) }).retval, XdpAction.DROP);
    jump.setTailCall(0, obj.program('xdp_pass'));
    assert.equal(dispatch.testRun({ data: Buffer.alloc(64), repeat: 100 }).retval, XdpAction.PASS);
    jump.setTailCall(0, null);
    assert.equal(dispatch.testRun({ data: Buffer.alloc(64) }).retval, XdpAction.ABORTED);
    assert.throws(() => obj.map('arr').setTailCall(0, dispatch), /not a prog_array/);
    // An XDP context in and out (ingress_ifindex 1 = lo exists in every namespace).
    const withCtx = obj.program('xdp_pass').testRun({ data: Buffer.alloc(64), ctx: xdpContext(64, { ingressIfindex: 1 }), ctxOutSize: 24 });
    assert.equal(withCtx.retval, XdpAction.PASS);
    assert.equal(withCtx.ctx?.readUInt32LE(4), 64, 'data_end');
    assert.equal(withCtx.ctx?.readUInt32LE(12), 1, 'ingress_ifindex');
  } finally {
    obj.close();
  }
});

test('a program the verifier rejects: KernelError with errno and the verifier log', { skip }, () => {
  assert.throws(() => loadObject(objectPath('test_reject')), (e: unknown) => {
    assert.ok(e instanceof KernelError);
    assert.equal(e.errno, 13);
    assert.match(e.message, /bpf_object__load/);
    const log = (e.details as { libbpfLog: string[] }).libbpfLog.join('\n');
    assert.match(log, /invalid access to packet/);
    return true;
  });
  assert.throws(() => BpfObject.openFile('/nonexistent/x.bpf.o'), (e: unknown) => e instanceof KernelError && e.errno === 2);
});

test("libbpf's log goes to the pino logger given", { skip }, () => {
  const lines: Array<{ level: number; msg: string; component: string }> = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } });
  const stop = routeLibbpfLog(pino({ level: 'debug' }, sink));
  try {
    assert.throws(() => loadObject(objectPath('test_reject')));
  } finally {
    stop();
  }
  assert.ok(lines.some((l) => l.component === 'libbpf' && l.level === 40 && /BPF program load failed/.test(l.msg)), JSON.stringify(lines.slice(0, 3)));
  assert.ok(lines.some((l) => l.level === 20 && /libbpf:/.test(l.msg)), 'debug lines too');
});

test('close: handles die with their object, double close is safe', { skip }, () => {
  const obj = load();
  const m = obj.map('arr');
  const p = obj.program('xdp_pass');
  obj.close();
  obj.close();
  assert.throws(() => m.lookup(u32(0)), /map arr is closed/);
  assert.throws(() => p.testRun({ data: Buffer.alloc(64) }), /program xdp_pass is closed/);
  assert.throws(() => obj.programNames(), /is closed/);
});

test('mmap of an mmapable array: stores are what the program and lookups see; closed regions and other maps refuse', { skip }, () => {
  const obj = load();
  try {
    const mm = obj.map('mm');
    assert.equal(mm.isMmapable, true);
    const region = mm.mmap();
    assert.equal(region.stride, 8, 'u32 values at a stride of 8');
    assert.equal(region.length, 16 * 8);
    const run = () => obj.program('xdp_mm').testRun({ data: eth('02:00:00:00:00:01', '02:00:00:00:00:02') }).retval;
    assert.equal(run(), XdpAction.PASS);
    region.write(1 * region.stride, u32(XdpAction.DROP));
    assert.equal(run(), XdpAction.DROP, 'the program sees the store');
    assert.deepEqual(mm.lookup(u32(1)), u32(XdpAction.DROP), 'so does a lookup');
    mm.update(u32(2), u32(7));
    assert.deepEqual(region.read(2 * region.stride, 4), u32(7), 'and the mapping sees updates');
    assert.throws(() => region.write(region.length - 2, u32(1)), /outside the 128-byte mapping/);
    region.close();
    assert.throws(() => region.read(0, 4), /closed mapping/);
    assert.equal(run(), XdpAction.DROP, 'the values stay in the map after munmap');
    assert.equal(obj.map('arr').isMmapable, false);
    assert.throws(() => obj.map('arr').mmap(), (e: unknown) => (e as Error).name === 'FeatureMissingError' && /BPF_F_MMAPABLE/.test((e as Error).message));
  } finally {
    obj.close();
  }
});
