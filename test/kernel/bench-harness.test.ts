import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeStruct, loadObject, XdpAction, type BpfObject } from '../../src/bpf/index.js';
import { buildPacket, ipBytes, mac, parsePacket } from '../../scripts/bench/packet.js';
import { measure, XdpBench } from '../../scripts/bench/xdp-lib.js';
import { bpfSkipReason, BPF_BUILD, objectPath, u32 } from '../helpers/bpf.js';

/** The XDP bench harness must measure the right path: these check its behaviour, never its timings. */
const skip = bpfSkipReason('bench_restore', 'bench_bare', 'bench_dnat', 'test_maps');
const VIP = '10.0.0.100';

function loadDnat(): BpfObject {
  const obj = loadObject(objectPath('bench_dnat'), { rodata: { vip: ipBytes(VIP).readUInt32LE(0), vip_port: Buffer.from([0, 80]).readUInt16LE(0), nbackends: 2 } });
  const layout = obj.btf.structLayout('dnat_backend');
  for (const i of [0, 1]) {
    obj.map('dnat_backends').update(u32(i), encodeStruct(layout, { addr: ipBytes(`10.1.0.${i + 1}`), port: Buffer.from([0x1f, 0x90]), mac: mac(`02:be:00:00:00:0${i + 1}`) }));
  }
  return obj;
}

const ack = buildPacket({ saddr: '192.0.2.11', daddr: VIP, proto: 'tcp', sport: 40001, dport: 80, tcpFlags: 0x10 });

test('without restore, repeat re-runs on the rewritten packet; with restore every run sees the original', { skip }, () => {
  const bench = XdpBench.open(BPF_BUILD);
  const dnat = loadDnat();
  try {
    const prog = dnat.program('bench_dnat');
    const one = prog.testRun({ data: ack });
    assert.equal(one.retval, XdpAction.TX);
    const p = parsePacket(one.data);
    assert.ok(['10.1.0.1', '10.1.0.2'].includes(p.daddr) && p.dport === 8080 && p.ipChecksumOk && p.l4ChecksumOk);
    // The trap: the second repetition sees a packet no longer addressed to the VIP.
    assert.equal(prog.testRun({ data: ack, repeat: 2 }).retval, XdpAction.PASS);
    // Through restore, the 1000th repetition still takes the VIP path and produces the same packet.
    const many = bench.runThroughRestore(prog, ack, { repeat: 1000 });
    assert.equal(many.retval, XdpAction.TX);
    assert.deepEqual(many.data, one.data);
  } finally {
    dnat.close();
    bench.close();
  }
});

test('new flow per packet: source port and address vary per repetition, checksums stay valid', { skip }, () => {
  const bench = XdpBench.open(BPF_BUILD);
  try {
    const syn = buildPacket({ saddr: '192.0.2.10', daddr: VIP, proto: 'tcp', sport: 40000, dport: 80 });
    const a = bench.runThroughRestore(bench.bare, syn, { newFlowPerPacket: true, repeat: 70000 });
    const b = bench.runThroughRestore(bench.bare, syn, { newFlowPerPacket: true, repeat: 1 });
    assert.equal(a.retval, XdpAction.TX);
    const pa = parsePacket(a.data), pb = parsePacket(b.data);
    assert.notEqual(pa.sport, pb.sport);
    assert.notEqual(pa.saddr, '192.0.2.10', 'past 65536 flows the source address varies too');
    for (const q of [pa, pb]) assert.ok(q.ipChecksumOk && q.l4ChecksumOk, JSON.stringify(q));
    const udp = buildPacket({ saddr: '2001:db8::1', daddr: '2001:db8::100', proto: 'udp', sport: 5000, dport: 53, payload: Buffer.from('hi') });
    const u = parsePacket(bench.runThroughRestore(bench.bare, udp, { newFlowPerPacket: true, repeat: 3 }).data);
    assert.ok(u.l4ChecksumOk && u.sport !== 5000 && u.family === 6);
  } finally {
    bench.close();
  }
});

test('restore undoes a length change (adjust_head) before every repetition', { skip }, () => {
  const bench = XdpBench.open(BPF_BUILD);
  const obj = loadObject(objectPath('test_maps'));
  try {
    const r = bench.runThroughRestore(obj.program('xdp_grow'), ack, { repeat: 100 });
    assert.equal(r.retval, XdpAction.TX);
    assert.equal(r.data.length, ack.length + 4);
    assert.deepEqual(r.data.subarray(4), ack);
  } finally {
    obj.close();
    bench.close();
  }
});

test('measure() checks the verdict and the output packet before timing', { skip }, () => {
  const base = { objectPath: objectPath('bench_dnat'), programName: 'bench_dnat', packet: ack, repeat: 1000, runs: 2, bpfDir: BPF_BUILD,
    loadOptions: { rodata: { vip: ipBytes(VIP).readUInt32LE(0), vip_port: Buffer.from([0, 80]).readUInt16LE(0), nbackends: 1 } },
    setup: (o: BpfObject) => o.map('dnat_backends').update(u32(0), encodeStruct(o.btf.structLayout('dnat_backend'), { addr: ipBytes('10.1.0.9'), port: Buffer.from([0, 81]) })) };
  const m = measure({ ...base, expectVerdict: XdpAction.TX, checkOutput: (out) => (parsePacket(out).daddr === '10.1.0.9' ? undefined : 'wrong backend') });
  assert.equal(m.verdict, 'XDP_TX');
  assert.equal(parsePacket(m.output).dport, 81);
  for (const s of [m.bare, m.restoreBare, m.restoreX, m.cost]) assert.ok(s.min <= s.median && s.median <= s.max);
  assert.throws(() => measure({ ...base, expectVerdict: XdpAction.DROP }), /verdict XDP_TX, expected XDP_DROP/);
  assert.throws(() => measure({ ...base, expectVerdict: XdpAction.TX, checkOutput: () => 'nope' }), /output packet: nope/);
});
