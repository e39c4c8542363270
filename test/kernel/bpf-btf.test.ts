import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertLayout, BpfObject, Btf } from '../../src/bpf/index.js';
import { BPF_MAP_INFO_LAYOUT } from '../../src/bpf/map.js';
import { BPF_PROG_INFO_LAYOUT } from '../../src/bpf/program.js';
import { FeatureMissingError } from '../../src/errors.js';
import { bpfSkipReason, bpftoolStructLayout, objectPath } from '../helpers/bpf.js';

const skip = bpfSkipReason('test_maps', 'bench_restore', 'bench_dnat');

test('struct layouts read through libbpf match what bpftool dumps from the same object', { skip }, async () => {
  for (const [obj, struct] of [['test_maps', 'test_backend'], ['bench_restore', 'bench_packet'], ['bench_dnat', 'dnat_backend'], ['bench_dnat', 'dnat_flow']] as const) {
    const o = BpfObject.openFile(objectPath(obj));
    try {
      const mine = o.btf.structLayout(struct);
      const ref = await bpftoolStructLayout(objectPath(obj), struct);
      assert.equal(mine.size, ref.size, `${struct} size`);
      assert.deepEqual(mine.members.map(({ name, offset, size }) => ({ name, offset, size })), ref.members, struct);
      assertLayout({ size: ref.size, members: ref.members, exact: true }, mine);
    } finally {
      o.close();
    }
  }
});

test('member types keep typedef names (byte order is visible), enums and .rodata vars are read', { skip }, () => {
  const o = BpfObject.openFile(objectPath('test_maps'));
  try {
    const l = o.btf.structLayout('test_backend');
    assert.deepEqual(l.members.map((m) => m.type), ['__be32[4]', '__be16', '__u8', '__u8', '__u32', '__u64']);
    assert.deepEqual(o.btf.enumValues('test_verdict_source'), { TEST_FROM_KNOB: 1, TEST_FROM_MAP: 2 });
    assert.deepEqual(o.btf.sectionVars('.rodata'), [{ name: 'knob_verdict', offset: 0, size: 4 }, { name: 'knob_wide', offset: 8, size: 8 }]);
    assert.throws(() => o.btf.structLayout('nope'), /has no struct or union nope/);
  } finally {
    o.close();
  }
});

test('the UAPI offsets libbpf-ts uses (bpf_map_info, bpf_prog_info, xdp_md) match the kernel BTF', { skip }, (t) => {
  let k: Btf;
  try {
    k = Btf.vmlinux();
  } catch (e) {
    if (e instanceof FeatureMissingError) return void t.skip(e.message);
    throw e;
  }
  try {
    const m = BPF_MAP_INFO_LAYOUT;
    assertLayout({ members: [{ name: 'type', offset: m.type, size: 4 }, { name: 'id', offset: m.id, size: 4 }, { name: 'key_size', offset: m.key_size, size: 4 }, { name: 'value_size', offset: m.value_size, size: 4 }, { name: 'max_entries', offset: m.max_entries, size: 4 }, { name: 'map_flags', offset: m.map_flags, size: 4 }, { name: 'name', offset: m.name, size: 16 }] }, k.structLayout('bpf_map_info'));
    assert.ok(k.structLayout('bpf_map_info').size >= m.size);
    const p = BPF_PROG_INFO_LAYOUT;
    assertLayout({ members: [{ name: 'type', offset: p.type, size: 4 }, { name: 'id', offset: p.id, size: 4 }, { name: 'tag', offset: p.tag, size: 8 }, { name: 'name', offset: p.name, size: 16 }] }, k.structLayout('bpf_prog_info'));
    assertLayout({ size: 24, members: ['data', 'data_end', 'data_meta', 'ingress_ifindex', 'rx_queue_index', 'egress_ifindex'].map((name, i) => ({ name, offset: 4 * i, size: 4 })), exact: true }, k.structLayout('xdp_md'));
  } finally {
    k.close();
  }
});
