import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FeatureMissingError } from '../../src/errors.js';
import { kernelHz, kernelJiffies } from '../../src/xdp/kernel.js';
import { conntrackSet, flowHash, maglevPosition, ENUMS, MAPS, STRUCTS, KNOBS, PROGRAM_NAME, decodeBackend, encodeBackend, decodeVipMeta, encodeVipMeta, decodeVipKey, encodeVipKey, decodeEndpoint, encodeEndpoint } from '../../src/xdp/abi.js';

// The compiled object's BTF is the source of truth (bpf/fulcrum_xdp.h); src/xdp/abi.ts must match it.
const OBJECT = fileURLToPath(new URL('../../../bpf/build/fulcrum_xdp.bpf.o', import.meta.url));

interface BtfType { id: number; kind: string; name?: string; size?: number; type_id?: number; members?: Array<{ name: string; type_id: number; bits_offset: number }>; values?: Array<{ name: string; val: string | number }>; vars?: Array<{ type_id: number }>; nr_elems?: number }

function loadBtf(): Map<number, BtfType> | string {
  if (!existsSync(OBJECT)) return `${OBJECT} is not built (run scripts/build-bpf.sh)`;
  let text: string;
  try {
    text = execFileSync('bpftool', ['btf', 'dump', 'file', OBJECT, '-j'], { encoding: 'utf8' });
  } catch (e) {
    return `bpftool cannot dump the BTF: ${(e as Error).message}`;
  }
  // Enum values beyond 2^53 (a -1 shown unsigned) must not go through a double.
  text = text.replace(/"val":\s*(-?\d{15,})/g, '"val":"$1"');
  const types = (JSON.parse(text) as { types: BtfType[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

const btf = loadBtf();
const skip = typeof btf === 'string' ? btf : undefined;

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id)!;
  switch (t.kind) {
    case 'INT': case 'STRUCT': case 'UNION': case 'ENUM': return t.size!;
    case 'ARRAY': return (t as unknown as { nr_elems: number; type_id: number }).nr_elems * sizeOf(types, (t as unknown as { type_id: number }).type_id);
    case 'TYPEDEF': case 'VOLATILE': case 'CONST': return sizeOf(types, t.type_id!);
    default: throw new Error(`size of ${t.kind}`);
  }
}

test('struct layouts in src/xdp/abi.ts match the BTF of fulcrum_xdp.bpf.o', { skip }, () => {
  const types = btf as Map<number, BtfType>;
  for (const [name, layout] of Object.entries(STRUCTS)) {
    const t = [...types.values()].find((x) => x.kind === 'STRUCT' && x.name === name);
    assert.ok(t, `struct ${name} is in the BTF`);
    assert.equal(t.size, layout.size, `sizeof(struct ${name})`);
    const btfFields = Object.fromEntries(t.members!.map((m) => [m.name, { offset: m.bits_offset / 8, size: sizeOf(types, m.type_id) }]));
    assert.deepEqual(layout.fields, btfFields, `fields of struct ${name}`);
  }
});

test('enum constants in src/xdp/abi.ts match the BTF', { skip }, () => {
  const types = btf as Map<number, BtfType>;
  for (const [name, values] of Object.entries(ENUMS)) {
    const t = [...types.values()].find((x) => x.kind === 'ENUM' && x.name === name);
    assert.ok(t, `enum ${name} is in the BTF`);
    const fromBtf = Object.fromEntries(t.values!.map((v) => [v.name, Number(BigInt(v.val) & 0xffffffffn)]));
    assert.deepEqual(values, fromBtf, `enum ${name}`);
  }
});

test('map names, knobs and the program name match the object', { skip }, () => {
  const types = btf as Map<number, BtfType>;
  const varsOf = (sec: string) => {
    const ds = [...types.values()].find((x) => x.kind === 'DATASEC' && x.name === sec);
    assert.ok(ds, `section ${sec}`);
    return ds.vars!.map((v) => types.get(v.type_id)!.name);
  };
  assert.deepEqual(varsOf('.maps').sort(), Object.keys(MAPS).sort());
  for (const k of KNOBS) assert.ok(varsOf('.rodata').includes(k), `knob ${k} in .rodata`);
  assert.ok([...types.values()].some((x) => x.kind === 'FUNC' && x.name === PROGRAM_NAME), `program ${PROGRAM_NAME}`);
});

test('encoders round-trip and put fields at the table offsets', () => {
  const key = { address: '2001:db8::10', family: 'inet6' as const, port: 443, protocol: 'udp' as const };
  assert.deepEqual(decodeVipKey(encodeVipKey(key)), key);
  const k4 = encodeVipKey({ address: '10.0.0.1', family: 'inet', port: 80, protocol: 'tcp' });
  assert.equal(k4.toString('hex'), '0a000001' + '00'.repeat(12) + '0050' + '06' + '02');
  const meta = { id: 7, mode: 'dr' as const, slot: 1 as const, tableHash: 0xdeadbeef };
  assert.deepEqual(decodeVipMeta(encodeVipMeta(meta)), meta);
  const be = { address: '10.1.0.2', family: 'inet' as const, port: 8080, mac: '02:aa:bb:cc:dd:ee', active: true, sharedNat: true, weight: 3, vipId: 5, gen: 9 };
  const enc = encodeBackend(be);
  assert.equal(enc.length, STRUCTS.fl_backend.size);
  assert.equal(enc.readUInt16BE(16), 8080);
  assert.equal(enc.subarray(18, 24).toString('hex'), '02aabbccddee');
  assert.equal(enc.readUInt8(25), 3, 'flags: active | shared nat');
  assert.deepEqual(decodeBackend(enc), be);
  const ep = { vip: '2001:db8::1', vport: 80, vipId: 3, slot: 17, shared: true };
  assert.deepEqual(decodeEndpoint(encodeEndpoint(ep), 'inet6'), ep);
});

test('kernelHz reads CONFIG_HZ from the first config that has it, and falls back to 100 (never a longer next-hop TTL)', () => {
  const fail = () => { throw new Error('no such file'); };
  assert.equal(kernelHz([fail, () => 'CONFIG_X=y\nCONFIG_HZ=250\nCONFIG_HZ_250=y\n']), 250);
  assert.equal(kernelHz([() => '# CONFIG_HZ is not set\n', () => 'CONFIG_HZ=1000\n']), 1000);
  assert.equal(kernelHz([fail, fail]), 100);
});

test('flowHash spreads flows evenly over Maglev entries and conntrack sets', () => {
  const size = 251, sets = 64, n = 64 * 251;
  const entries = new Uint32Array(size), bySet = new Uint32Array(sets);
  for (let i = 0; i < n; i++) {
    const h = flowHash({ src: `10.9.${i >> 8 & 255}.${i & 255}`, dst: '10.0.0.1', sport: 1024 + (i % 50000), dport: 80, protocol: 'tcp' });
    entries[maglevPosition(h, size)]!++;
    bySet[conntrackSet(h, sets)]!++;
  }
  // Poisson-ish: mean 64 per entry, 251 per set; no bucket far off.
  assert.ok(Math.max(...entries) < 64 * 2 && Math.min(...entries) > 64 / 3, `entries ${Math.min(...entries)}..${Math.max(...entries)}`);
  assert.ok(Math.max(...bySet) < 251 * 1.5 && Math.min(...bySet) > 251 / 1.5, `sets ${Math.min(...bySet)}..${Math.max(...bySet)}`);
});

test('kernelJiffies reads the "jiffies:" line of /proc/timer_list; without it the feature is missing', () => {
  assert.equal(kernelJiffies(() => 'Timer List Version: v0.9\nnow at 15334009341474 nsecs\n  .last_jiffies   : 4298725736\njiffies: 4298726197\n'), 4298726197n);
  assert.throws(() => kernelJiffies(() => 'now at 1 nsecs\n'), (e: unknown) => e instanceof FeatureMissingError && e.feature === 'timer-list');
  assert.throws(() => kernelJiffies(() => { throw new Error('EACCES'); }), (e: unknown) => e instanceof FeatureMissingError && /EACCES/.test(e.message));
});
