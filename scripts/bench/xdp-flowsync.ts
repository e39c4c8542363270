/**
 * XDP flow sync costs (docs/xdp.md, "Flow sync"), each against a baseline measured in the same run:
 *  1. the program's cost per new-flow packet with flow export on (a ring record per flow) vs off
 *     (the same program loaded without the knob), and per established-flow packet on vs off
 *     (must not change); BPF_PROG_TEST_RUN through the restore harness (scripts/bench/xdp-lib.ts);
 *  2. export: ring records drained per second by the agent's consumer (libbpf-ts RingBuffer);
 *  3. insert: flows per second a receiver writes from sync messages (decode + HMAC + resolve +
 *     conntrack update, batches of 20 as on the wire), against a plain loop of BPF_MAP_UPDATE of the
 *     same sets with the values precomputed.
 * Needs root and bpffs.
 *   npm run build && bash scripts/build-bpf.sh && node dist/scripts/bench/xdp-flowsync.js [repeat] [runs] [flows]
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ifIndex, withNetnsSync, XdpAction, isBpffs, mountBpffs, RingBuffer } from '../../src/bpf/index.js';
import { parseDesiredState } from '../../src/model/index.js';
import { openXdpKernel, type XdpKernel } from '../../src/xdp/kernel.js';
import { xdpDataplaneOver } from '../../src/xdp/dataplane.js';
import { conntrackSet, flowHash, u32 } from '../../src/xdp/abi.js';
import { decodeMessage, encodeMessage, MAX_RECORDS } from '../../src/xdp/flowsync/codec.js';
import { KernelFlowTable } from '../../src/xdp/flowsync/table.js';
import type { FlowRecord } from '../../src/xdp/flowsync/record.js';
import type { XdpSettings } from '../../src/model/xdp.js';
import { buildPacket } from './packet.js';
import { formatMeasurement, stats, XdpBench, setUpBenchNetns } from './xdp-lib.js';

const repeat = Number(process.argv[2] ?? 100_000);
const runs = Number(process.argv[3] ?? 5);
const FLOWS = Number(process.argv[4] ?? 20_000);
const NBACKENDS = 100;
const VIP = '10.0.0.1', VPORT = 80;
const backend = (i: number) => `10.1.${i >> 8}.${(i & 255) + 1}`;
const NS = `flbenchfs${process.pid}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });
const KEY = Buffer.from('bench-secret-0123456789abcdef');

if (!isBpffs('/sys/fs/bpf')) mountBpffs('/sys/fs/bpf');
ip('netns', 'add', NS);
const kernels: XdpKernel[] = [];
const bench = XdpBench.open();
const base = { interfaces: [], maxVips: 16, maxBackends: 1024, maglevTableSize: 65537, conntrackSize: 262_144, detachOnShutdown: false } as const;
const services = parseDesiredState({
  services: [{ name: 'web', dataplane: 'xdp', address: VIP, port: VPORT, backends: Array.from({ length: NBACKENDS }, (_, i) => ({ address: backend(i), port: 8080 })) }],
}).services;

async function node(name: string, sync: boolean): Promise<XdpKernel> {
  const settings: XdpSettings = { ...base, interfaces: [], ...(sync ? { sync: { address: '127.0.0.1', port: 1, peers: ['127.0.0.2'], secretFile: '/dev/null', ringBytes: 1 << 27, snapshotTimeoutSeconds: 0, maxClockSkewSeconds: 30 } } : {}) };
  const k = openXdpKernel({ settings, pinDir: `/sys/fs/bpf/flbench-${name}-${process.pid}` });
  kernels.push(k);
  // The dataplane programs the maps; the flow sync service is not started (the bench drains the ring itself).
  await xdpDataplaneOver(k, settings, `/tmp/flbench-${name}-${process.pid}`, () => undefined).reconcile(services);
  return k;
}

try {
  setUpBenchNetns(NS, Array.from({ length: NBACKENDS }, (_, i) => backend(i)));
  const off = await node('off', false), on = await node('on', true);
  if (off.flowExport || !on.flowExport) throw new Error('the export knob did not load as asked');
  let drained = 0;
  const ring = RingBuffer.open(on.maps.flow_events, () => { drained++; });
  const syn = buildPacket({ saddr: '192.0.2.10', daddr: VIP, proto: 'tcp', sport: 40000, dport: VPORT, tcpFlags: 0x02 });
  const ack = buildPacket({ saddr: '192.0.2.11', daddr: VIP, proto: 'tcp', sport: 40001, dport: VPORT, tcpFlags: 0x10 });
  const d0 = withNetnsSync(NS, () => ifIndex('d0'));
  const common = { repeat, runs, ingressIfindex: d0 };
  const lost = () => on.maps.flow_export_stats.lookupPerCpu(u32(0))!.reduce((s, v) => s + Number(v.readBigUInt64LE(8)), 0);
  const m = withNetnsSync(NS, () => {
    const out = [bench.measure({ ...common, name: 'bare XDP_TX (via restore)', program: bench.bare, packet: syn, expectVerdict: XdpAction.TX })];
    out.push(bench.measure({ ...common, name: 'nat new flow/packet, export off', program: off.program, packet: syn, newFlowPerPacket: true, expectVerdict: XdpAction.TX }));
    ring.consume();
    out.push(bench.measure({ ...common, name: 'nat new flow/packet, export on', program: on.program, packet: syn, newFlowPerPacket: true, expectVerdict: XdpAction.TX }));
    out.push(bench.measure({ ...common, name: 'nat established, export off', program: off.program, packet: ack, expectVerdict: XdpAction.TX }));
    out.push(bench.measure({ ...common, name: 'nat established, export on', program: on.program, packet: ack, expectVerdict: XdpAction.TX }));
    return out;
  });
  console.log(`XDP flow export: cost per packet, ${NBACKENDS} backends, BPF_PROG_TEST_RUN repeat ${repeat}, ${runs} interleaved runs, min/median/max`);
  for (const x of m) console.log(formatMeasurement(x));
  const [, newOff, newOn, estOff, estOn] = m;
  console.log(`new flow: export on costs ${(newOn!.cost.median - newOff!.cost.median).toFixed(1)} ns more (${(newOn!.cost.median / newOff!.cost.median).toFixed(2)}x export off); ring records lost in the run: ${lost()}`);
  console.log(`established flow: export on / off = ${(estOn!.cost.median / estOff!.cost.median).toFixed(2)}x (the fast path has no export code)`);

  // 2. Export side: drain what the runs left in the ring.
  drained = 0;
  const t0 = performance.now();
  const n = ring.consume();
  const drainMs = performance.now() - t0;
  console.log(`export: ${n} ring records drained in ${drainMs.toFixed(0)} ms = ${Math.round(n / (drainMs / 1000))} records/s (RingBuffer.consume, one koffi callback per record)`);
  ring.close();

  // 3. Insert side: FLOWS distinct flows as sync messages into a fresh table, vs plain map updates.
  const records: FlowRecord[] = Array.from({ length: FLOWS }, (_, i) => ({
    family: 'inet', protocol: 'tcp', mode: 'nat', client: `192.0.${2 + (i >> 16)}.${(i >> 8) & 255}`, clientPort: 1024 + (i & 0xffff) % 60000, vip: VIP, vipPort: VPORT,
    backend: backend(i % NBACKENDS), backendPort: 8080,
  }));
  const messages: Buffer[] = [];
  let seq = 1n;
  for (let i = 0; i < records.length; i += MAX_RECORDS) messages.push(encodeMessage(KEY, { kind: 'flows', seq: seq++, timestamp: Date.now(), records: records.slice(i, i + MAX_RECORDS) }));
  const sets = off.maps.conntrack.info.maxEntries;
  // Baseline values: each flow's set as it will end up, one update per flow (what a plain loop pays).
  const keys = records.map((r) => u32(conntrackSet(flowHash({ src: r.client, dst: r.vip, sport: r.clientPort, dport: r.vipPort, protocol: 'tcp' }), sets)));
  const insert: number[] = [], plain: number[] = [];
  for (let r = 0; r < runs; r++) {
    const zero = Buffer.alloc(256);
    for (const k of new Set(keys.map((x) => x.readUInt32LE(0)))) off.maps.conntrack.update(u32(k), zero);
    const table = new KernelFlowTable(off);
    let s = performance.now();
    let applied = 0;
    for (const msg of messages) {
      const d = decodeMessage(KEY, msg);
      if (!d.ok) throw new Error(d.reason);
      applied += table.apply(d.message.records).filter((x) => x === 'applied').length;
    }
    insert.push(FLOWS / ((performance.now() - s) / 1000));
    if (applied < FLOWS * 0.9) throw new Error(`only ${applied} of ${FLOWS} applied`);
    const values = keys.map((k) => off.maps.conntrack.lookup(k)!);
    s = performance.now();
    for (let i = 0; i < keys.length; i++) off.maps.conntrack.update(keys[i]!, values[i]!);
    plain.push(FLOWS / ((performance.now() - s) / 1000));
  }
  const si = stats(insert), sp = stats(plain);
  console.log(`insert: ${FLOWS} synced flows, ${runs} runs, flows/s min/median/max: sync ${Math.round(si.min)}/${Math.round(si.median)}/${Math.round(si.max)}; plain BPF_MAP_UPDATE loop ${Math.round(sp.min)}/${Math.round(sp.median)}/${Math.round(sp.max)}; ratio ${(si.median / sp.median).toFixed(2)}x`);
} finally {
  bench.close();
  for (const k of kernels) k.destroy([]);
  execFileSync('ip', ['netns', 'del', NS]);
  execFileSync('rm', ['-rf', `/tmp/flbench-off-${process.pid}`, `/tmp/flbench-on-${process.pid}`]);
}
