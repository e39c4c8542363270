/**
 * XDP control-plane cost at scale: 1,000 nat VIPs x 100 backends in real BPF maps (host kernel, no
 * interface attached). Needs root and bpffs.
 *   npm run build && bash scripts/build-bpf.sh && node dist/scripts/bench/xdp-control.js [vips] [backends] [repeats]
 * Prints, each beside its baseline from the same run:
 *   - programming from empty through the dataplane, against the floor of that work: every VIP's
 *     Maglev table built and copied into the map (TableWriter, no planning, no other map);
 *   - a no-op reconcile (the same desired state again), against one lookup of every VIP entry;
 *   - one backend added to one VIP, against one table build + copy.
 * Goals (issue 18): no-op <= 50 ms, one change <= 50 ms, from empty <= 1.5x the floor.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { XdpSettingsSchema } from '../../src/model/xdp.js';
import { parseDesiredState } from '../../src/model/index.js';
import { openXdpKernel } from '../../src/xdp/kernel.js';
import { xdpDataplaneOver } from '../../src/xdp/dataplane.js';
import { TableWriter } from '../../src/xdp/table.js';
import { encodeVipKey } from '../../src/xdp/abi.js';
import type { NeighbourTable } from '../../src/xdp/neighbours.js';

const VIPS = Number(process.argv[2] ?? 1000), BACKENDS = Number(process.argv[3] ?? 100), REPEATS = Number(process.argv[4] ?? 10);
const settings = XdpSettingsSchema.parse({ maxVips: VIPS + 8, maxBackends: VIPS * BACKENDS + 1024, maglevTableSize: 65537, conntrackSize: 1024 });
const pinDir = `/sys/fs/bpf/fulcrum-bench-control-${process.pid}`;
const stateDir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-control-'));
const noNeighbours: NeighbourTable = { macs: async () => new Map(), solicit: () => undefined, close: () => undefined };

const vip = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const backend = (i: number, j: number) => `10.${(i >> 8) & 255}.${i & 255}.${j + 1}`;
const serviceOf = (i: number, n = BACKENDS) => ({
  name: `s${i}`, dataplane: 'xdp', address: vip(i), port: 80,
  backends: Array.from({ length: n }, (_, j) => ({ address: backend(i, j), port: 8080 })),
});
const state = (extra = false) => parseDesiredState({ services: Array.from({ length: VIPS }, (_, i) => serviceOf(i, i === 0 && extra ? BACKENDS + 1 : BACKENDS)) }).services;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))]!;
const ms = (x: number) => `${x.toFixed(1)} ms`;
async function time(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const kernel = openXdpKernel({ settings, pinDir });
try {
  const dp = xdpDataplaneOver(kernel, settings, stateDir, () => undefined, noNeighbours);
  const base = state(), plus = state(true);

  // Floor of programming from empty: the tables alone, written where the dataplane will write them.
  const writer = new TableWriter(kernel);
  const members = (i: number, n = BACKENDS) => Array.from({ length: n }, (_, j) => ({ key: `${backend(i, j)}:8080`, slot: i * BACKENDS + j, weight: 1 }));
  const floor = await time(() => { for (let i = 0; i < VIPS; i++) writer.write(i, 1, members(i)); });
  const fromEmpty = await time(() => dp.reconcile(base));

  const vipLookup: number[] = [], noop: number[] = [], change: number[] = [], oneTable: number[] = [];
  const keys = base.map((s) => encodeVipKey({ address: s.address!, family: s.family, port: 80, protocol: 'tcp' }));
  let current = base;
  for (let r = 0; r < REPEATS; r++) {
    vipLookup.push(await time(() => { for (const k of keys) kernel.maps.vips.lookup(k); }));
    noop.push(await time(() => dp.reconcile(current)));
    // Into a VIP id no service uses: the live tables stay as the dataplane wrote them.
    oneTable.push(await time(() => writer.write(VIPS, 1, members(0, BACKENDS + 1))));
    // A new document with one backend more (or less) for one VIP: every service object is new.
    current = current === base ? plus : base;
    change.push(await time(() => dp.reconcile(current)));
  }
  console.log(`xdp control plane, ${VIPS} VIPs x ${BACKENDS} backends, maglev ${settings.maglevTableSize} (real maps, ${REPEATS} repeats, median / p99):`);
  console.log(`  from empty: ${ms(fromEmpty)}; floor (${VIPS} table builds + copies): ${ms(floor)}; ratio ${(fromEmpty / floor).toFixed(2)}x (goal <= 1.5x)`);
  console.log(`  no-op reconcile: ${ms(median(noop))} / ${ms(p99(noop))}; ${VIPS} VIP lookups: ${ms(median(vipLookup))}; ratio ${(median(noop) / median(vipLookup)).toFixed(1)}x (goal <= 50 ms)`);
  console.log(`  one backend added/removed: ${ms(median(change))} / ${ms(p99(change))}; one table build + copy: ${ms(median(oneTable))}; ratio ${(median(change) / median(oneTable)).toFixed(1)}x (goal <= 50 ms)`);
  await dp.close();
} finally {
  kernel.destroy([]);
  rmSync(stateDir, { recursive: true, force: true });
}
