/**
 * Packet cost of the Fulcrum XDP program (bpf/fulcrum_xdp.bpf.c) through BPF_PROG_TEST_RUN, against
 * the bare XDP_TX mac-swap program measured in the same run (harness: scripts/bench/xdp-lib.ts,
 * which restores the packet before every repetition). Needs root and bpffs.
 *   npm run build && bash scripts/build-bpf.sh && node dist/scripts/bench/xdp-packet.js [repeat] [runs]
 * The maps are programmed through the real dataplane (reconcile). The runs happen inside a netns
 * whose FIB has a route and a neighbour for every backend, so a VIP packet takes the full path:
 * parse, VIP lookup, conntrack, Maglev, rewrite + checksums, bpf_fib_lookup, MAC rewrite, redirect.
 * Goals (issue 3): VIP packets within 2.0x the bare program, non-VIP within 1.2x.
 * XDP_OBJECT=path measures another build of the program (ablations); CT=n sets the conntrack size.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ifIndex, loadObject, withNetnsSync, XdpAction, isBpffs, mountBpffs, type BpfObject } from '../../src/bpf/index.js';
import { parseDesiredState } from '../../src/model/index.js';
import { createXdpDataplane } from '../../src/xdp/dataplane.js';
import { buildPacket, parsePacket } from './packet.js';
import { DEFAULT_BPF_DIR, formatMeasurement, XdpBench, type Measurement, setUpBenchNetns } from './xdp-lib.js';

const repeat = Number(process.argv[2] ?? 1_000_000);
const runs = Number(process.argv[3] ?? 5);
const NBACKENDS = 100;
const VIP = '10.0.0.1', VPORT = 80;
const backend = (i: number) => `10.1.${i >> 8}.${(i & 255) + 1}`;
const NS = `flbench${process.pid}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });

if (!isBpffs('/sys/fs/bpf')) mountBpffs('/sys/fs/bpf');
const pinDir = `/sys/fs/bpf/flbench-${process.pid}`;
ip('netns', 'add', NS);
let dp: Awaited<ReturnType<typeof createXdpDataplane>> | undefined;
let floor: BpfObject | undefined;
const bench = XdpBench.open();
try {
  setUpBenchNetns(NS, Array.from({ length: NBACKENDS }, (_, i) => backend(i)));

  dp = await createXdpDataplane({
    settings: { interfaces: [], maxVips: 16, maxBackends: 1024, maglevTableSize: 65537, conntrackSize: Number(process.env.CT ?? 262_144), detachOnShutdown: false },
    stateDir: `/tmp/flbench-${process.pid}`, pinDir, report: () => undefined, ...(process.env.XDP_OBJECT ? { objectPath: process.env.XDP_OBJECT } : {}),
  });
  const services = parseDesiredState({
    services: [
      { name: 'web', dataplane: 'xdp', address: VIP, port: VPORT, backends: Array.from({ length: NBACKENDS }, (_, i) => ({ address: backend(i), port: 8080 })) },
      { name: 'web-dr', dataplane: 'xdp', address: '10.0.0.2', port: VPORT, forwarding: 'dr', backends: Array.from({ length: NBACKENDS }, (_, i) => ({ address: backend(i) })) },
    ],
  }).services;
  await dp.reconcile(services);
  const prog = dp.kernel.program;
  // The memory floor of a new flow: one write to a random line of a table as big as the connection table.
  const ctBytes = (dp.kernel.limits.conntrackSize / 4) * 256;
  const floorMiB = ctBytes / 2 ** 20;
  const floorObj = loadObject(join(DEFAULT_BPF_DIR, 'bench_floor.bpf.o'), { rodata: { lines: ctBytes / 64 }, maxEntries: { floor_table: ctBytes / 64 } });
  floor = floorObj;

  const syn = buildPacket({ saddr: '192.0.2.10', daddr: VIP, proto: 'tcp', sport: 40000, dport: VPORT, tcpFlags: 0x02 });
  const ack = buildPacket({ saddr: '192.0.2.11', daddr: VIP, proto: 'tcp', sport: 40001, dport: VPORT, tcpFlags: 0x10 });
  const drAck = buildPacket({ saddr: '192.0.2.13', daddr: '10.0.0.2', proto: 'tcp', sport: 40003, dport: VPORT, tcpFlags: 0x10 });
  const other = buildPacket({ saddr: '192.0.2.12', daddr: '10.0.0.7', proto: 'tcp', sport: 40002, dport: 22, tcpFlags: 0x10 });
  const natOk = (out: Buffer): string | void => {
    const p = parsePacket(out);
    if (!p.daddr.startsWith('10.1.') || p.dport !== 8080) return `not rewritten to a backend: ${p.daddr}:${p.dport}`;
    if (!p.ipChecksumOk || !p.l4ChecksumOk) return 'bad checksum after rewrite';
  };
  // One-armed, the usual LB topology (and Katran's): packets arrive on d0 and leave on d0 (XDP_TX),
  // like the bare program's. The two-armed line arrives on lo and leaves on d0 (bpf_redirect).
  const d0 = withNetnsSync(NS, () => ifIndex('d0'));
  const common = { repeat, runs, ingressIfindex: d0 };
  const results: Measurement[] = withNetnsSync(NS, () => [
    bench.measure({ ...common, name: 'bare XDP_TX (via restore)', program: bench.bare, packet: syn, expectVerdict: XdpAction.TX }),
    bench.measure({ ...common, name: 'nat: SYN, new flow every packet', program: prog, packet: syn, newFlowPerPacket: true, expectVerdict: XdpAction.TX, checkOutput: natOk }),
    bench.measure({ ...common, name: 'nat: SYN, same flow (retransmit)', program: prog, packet: syn, expectVerdict: XdpAction.TX, checkOutput: natOk }),
    bench.measure({ ...common, name: 'nat: established flow', program: prog, packet: ack, expectVerdict: XdpAction.TX, checkOutput: natOk }),
    bench.measure({ ...common, name: 'dr: established flow', program: prog, packet: drAck, expectVerdict: XdpAction.TX }),
    bench.measure({ ...common, name: 'non-VIP packet', program: prog, packet: other, expectVerdict: XdpAction.PASS, checkOutput: (o) => (o.equals(other) ? undefined : 'changed a foreign packet') }),
    bench.measure({ repeat, runs, name: 'nat: established, two-armed', program: prog, packet: ack, expectVerdict: XdpAction.REDIRECT, checkOutput: natOk }),
    bench.measure({ ...common, name: `floor: 1 line of ${floorMiB} MiB per flow`, program: floorObj.program('bench_floor'), packet: syn, newFlowPerPacket: true, expectVerdict: XdpAction.TX }),
  ]);
  console.log(`Fulcrum XDP cost per packet, ${NBACKENDS} backends, Maglev 65537, conntrack ${dp.kernel.limits.conntrackSize}, BPF_PROG_TEST_RUN repeat ${repeat}, ${runs} interleaved runs, min/median/max`);
  for (const m of results) console.log(formatMeasurement(m));
  const goal = (name: string, limit: number) => {
    const m = results.find((r) => r.name === name)!;
    console.log(`${name}: median ${m.ratio.median.toFixed(2)}x bare (goal <= ${limit}x) ${m.ratio.median <= limit ? 'MET' : 'NOT MET'}`);
  };
  goal('nat: SYN, new flow every packet', 2.0);
  const syn1 = results.find((r) => r.name.startsWith('nat: SYN, new'))!, fl = results.find((r) => r.name.startsWith('floor'))!;
  console.log(`nat: SYN, new flow every packet: ${(syn1.cost.median / fl.cost.median).toFixed(2)}x the memory floor of a new flow (${fl.cost.median} ns)`);
  goal('nat: SYN, same flow (retransmit)', 2.0);
  goal('nat: established flow', 2.0);
  goal('dr: established flow', 2.0);
  goal('non-VIP packet', 1.2);
} finally {
  bench.close();
  floor?.close();
  await dp?.cleanup().catch(() => undefined);
  execFileSync('ip', ['netns', 'del', NS]);
  execFileSync('rm', ['-rf', `/tmp/flbench-${process.pid}`]);
}
