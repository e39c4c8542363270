/**
 * XDP packet-cost benchmark of the harness itself (scripts/bench/xdp-lib.ts), on the bare XDP_TX
 * program and on bpf/bench/bench_dnat.bpf.c, a small DNAT demonstration program. Needs root.
 *   npm run build && bash scripts/build-bpf.sh && node dist/scripts/bench/xdp.js [repeat] [runs]
 * Prints corrected ns/packet and the ratio to the bare program measured in the same run.
 */
import { join } from 'node:path';
import { encodeStruct, loadObject, XdpAction } from '../../src/bpf/index.js';
import { buildPacket, ipBytes, mac, parsePacket } from './packet.js';
import { DEFAULT_BPF_DIR, formatMeasurement, XdpBench } from './xdp-lib.js';

const repeat = Number(process.argv[2] ?? 1_000_000);
const runs = Number(process.argv[3] ?? 5);
const VIP = '10.0.0.100', VPORT = 80, NBACKENDS = 100;
const backendAddr = (i: number) => `10.1.${i >> 8}.${i & 255}`;

const bench = XdpBench.open();
const dnat = loadObject(join(DEFAULT_BPF_DIR, 'bench_dnat.bpf.o'), {
  rodata: { vip: ipBytes(VIP).readUInt32LE(0), vip_port: Buffer.from([VPORT >> 8, VPORT & 255]).readUInt16LE(0), nbackends: NBACKENDS },
});
try {
  const layout = dnat.btf.structLayout('dnat_backend');
  const keys: Buffer[] = [], values: Buffer[] = [];
  for (let i = 0; i < NBACKENDS; i++) {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    keys.push(k);
    values.push(encodeStruct(layout, { addr: ipBytes(backendAddr(i)), port: Buffer.from([0x1f, 0x90]), mac: mac(`02:be:00:00:00:${(i & 255).toString(16).padStart(2, '0')}`) }));
  }
  dnat.map('dnat_backends').updateBatch(keys, values);

  const syn = buildPacket({ saddr: '192.0.2.10', daddr: VIP, proto: 'tcp', sport: 40000, dport: VPORT, tcpFlags: 0x02 });
  const ack = buildPacket({ saddr: '192.0.2.11', daddr: VIP, proto: 'tcp', sport: 40001, dport: VPORT, tcpFlags: 0x10 });
  const other = buildPacket({ saddr: '192.0.2.12', daddr: '10.0.0.7', proto: 'tcp', sport: 40002, dport: 22, tcpFlags: 0x10 });
  const checkDnat = (out: Buffer): string | void => {
    const p = parsePacket(out);
    if (!p.daddr.startsWith('10.1.') || p.dport !== 8080) return `not rewritten to a backend: ${p.daddr}:${p.dport}`;
    if (!p.ipChecksumOk || !p.l4ChecksumOk) return 'bad checksum after rewrite';
  };
  const prog = dnat.program('bench_dnat');
  const common = { repeat, runs };
  console.log(`XDP cost per packet, BPF_PROG_TEST_RUN repeat ${repeat}, ${runs} interleaved runs, min/median/max`);
  const results = [
    bench.measure({ ...common, name: 'bare XDP_TX (via restore)', program: bench.bare, packet: syn, expectVerdict: XdpAction.TX }),
    bench.measure({ ...common, name: 'dnat: established flow', program: prog, packet: ack, expectVerdict: XdpAction.TX, checkOutput: checkDnat }),
    bench.measure({ ...common, name: 'dnat: new flow every packet (SYN)', program: prog, packet: syn, newFlowPerPacket: true, expectVerdict: XdpAction.TX, checkOutput: checkDnat }),
    bench.measure({ ...common, name: 'dnat: non-VIP packet', program: prog, packet: other, expectVerdict: XdpAction.PASS, checkOutput: (o) => (o.equals(other) ? undefined : 'changed a foreign packet') }),
  ];
  for (const m of results) console.log(formatMeasurement(m));
  const naive = bench.naive(prog, ack, common);
  console.log(`naive repeat of dnat (no restore, measures the wrong path after run 1): ${naive.min}/${naive.median}/${naive.max} ns`);
} finally {
  dnat.close();
  bench.close();
}
