/**
 * Time to program 1,000 VIPs x 100 backends through the XDP dataplane (reconcile from empty), a no-op
 * reconcile, a one-backend change and the removal of everything; with two baselines measured in the
 * same run: the pure Maglev builds alone (src/xdp/maglev.ts) and raw writes of the same bytes (a
 * copy into the mmapped map, and batch updates of lines), what any control plane must at least pay. Needs root and bpffs (~540 MB of maps).
 *   npm run build && bash scripts/build-bpf.sh && node dist/scripts/bench/xdp-program.js [vips] [backends] [runs]
 */
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isBpffs, mountBpffs } from '../../src/bpf/index.js';
import { parseDesiredState, type Service } from '../../src/model/index.js';
import { createXdpDataplane } from '../../src/xdp/dataplane.js';
import { buildMaglevTable } from '../../src/xdp/maglev.js';
import { maglevStride, u32 } from '../../src/xdp/abi.js';
import { stats } from './xdp-lib.js';

const NVIPS = Number(process.argv[2] ?? 1000);
const NBACKENDS = Number(process.argv[3] ?? 100);
const RUNS = Number(process.argv[4] ?? 3);
const TABLE = 65537;

function services(nvips: number, nbackends: number, extra = 0): Service[] {
  return parseDesiredState({
    services: Array.from({ length: nvips }, (_, v) => ({
      name: `svc${v}`, dataplane: 'xdp', address: `10.${100 + (v >> 8)}.${v & 255}.1`, port: 80,
      backends: Array.from({ length: nbackends + (v === 0 ? extra : 0) }, (_, b) => ({ address: `10.${(b >> 8) + 1}.${b & 255}.${(v % 250) + 1}`, port: 8080 })),
    })),
  }).services;
}

if (!isBpffs('/sys/fs/bpf')) mountBpffs('/sys/fs/bpf');
const pinDir = `/sys/fs/bpf/flbench-prog-${process.pid}`;
const stateDir = `/tmp/flbench-prog-${process.pid}`;
const t0 = performance.now();
const dp = await createXdpDataplane({
  settings: { interfaces: [], maxVips: Math.max(NVIPS, 16), maxBackends: Math.max(2 * NVIPS * NBACKENDS, 1024), maglevTableSize: TABLE, conntrackSize: 262_144, detachOnShutdown: false },
  pinDir, stateDir, report: () => undefined,
});
const loadMs = performance.now() - t0;
const desired = services(NVIPS, NBACKENDS);
const changed = services(NVIPS, NBACKENDS, 1);
const series: Record<string, number[]> = { apply: [], noop: [], change: [], remove: [], maglev: [], copy: [], batch: [] };
const time = async (name: string, fn: () => unknown) => {
  const s = performance.now();
  await fn();
  series[name]!.push(performance.now() - s);
};
try {
  for (let r = 0; r < RUNS; r++) {
    await time('apply', () => dp.reconcile(desired));
    await time('noop', () => dp.reconcile(desired));
    await time('change', () => dp.reconcile(changed));
    await time('remove', () => dp.reconcile([]));
    // Baseline 1: the Maglev tables alone.
    await time('maglev', () => {
      for (let v = 0; v < NVIPS; v++) buildMaglevTable(Array.from({ length: NBACKENDS }, (_, b) => ({ key: `10.${(b >> 8) + 1}.${b & 255}.${(v % 250) + 1}:8080`, weight: 1 })), TABLE);
    });
    // Baseline 2: the same table bytes written raw, no planning, no encoding: into the mmapped
    // map (what the dataplane does), and as batch updates of lines (its fallback; the old way).
    const stride = maglevStride(TABLE);
    const bytes = new Uint8Array(new Uint32Array(stride).map((_, i) => i % NBACKENDS).buffer);
    await time('copy', () => {
      for (let v = 0; v < NVIPS; v++) dp.kernel.maglevMemory!.write(v * 2 * stride * 4, bytes);
    });
    const lines = stride / 16;
    const keys: Buffer[] = Array.from({ length: lines }, (_, i) => u32(i));
    const values: Buffer[] = Array.from({ length: lines }, (_, i) => Buffer.from(bytes.buffer, i * 64, 64));
    await time('batch', () => {
      for (let v = 0; v < NVIPS; v++) {
        for (let i = 0; i < lines; i++) keys[i]!.writeUInt32LE((v * 2 * stride) / 16 + i, 0);
        dp.kernel.maps.maglev.updateBatch(keys, values);
      }
    });
  }
  const f = (xs: number[]) => { const s = stats(xs); return `${(s.min / 1000).toFixed(2)}/${(s.median / 1000).toFixed(2)}/${(s.max / 1000).toFixed(2)} s`; };
  console.log(`XDP dataplane programming, ${NVIPS} VIPs x ${NBACKENDS} backends, Maglev ${TABLE}, ${RUNS} runs, min/median/max`);
  console.log(`load + pin program and maps (once)      ${(loadMs / 1000).toFixed(2)} s`);
  console.log(`reconcile from empty (all VIPs)        ${f(series.apply!)}`);
  console.log(`no-op reconcile (plan, nothing to do)  ${f(series.noop!)}`);
  console.log(`one backend added to one VIP           ${f(series.change!)}`);
  console.log(`remove everything                      ${f(series.remove!)}`);
  console.log(`baseline: Maglev builds alone          ${f(series.maglev!)}`);
  console.log(`baseline: table bytes copied (mmap)    ${f(series.copy!)}`);
  console.log(`baseline: table lines, batch updates   ${f(series.batch!)}`);
  const ratio = stats(series.apply!.map((a, i) => a / ((series.maglev![i] ?? 1) + (series.copy![i] ?? 1))));
  console.log(`reconcile / (Maglev + copy)            ${ratio.min.toFixed(2)}/${ratio.median.toFixed(2)}/${ratio.max.toFixed(2)}`);
} finally {
  await dp.cleanup();
  rmSync(stateDir, { recursive: true, force: true });
}
