/**
 * Maglev table build time, 65537 slots x 1000 backends (pure TypeScript, src/xdp/maglev.ts).
 *   npm run build && node dist/scripts/bench/maglev.js [repeats]
 * Reference: the Maglev paper (Eisenbud et al., NSDI 2016, section 5.3) reports 1.8 ms for its C
 * implementation at this size; printed as a reference ratio only (another machine, another
 * language). The same-run baseline is the build with ONE backend: one walk of one permutation over
 * all 65537 slots, the floor of any fill on this machine right now.
 */
import { buildMaglevTable, MAGLEV_DEFAULT_SIZE } from '../../src/xdp/maglev.js';
import { performance } from 'node:perf_hooks';

const repeats = Number(process.argv[2] ?? 30);
const PAPER_MS = 1.8;

function statsOf(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[s.length >> 1]!, max: s[s.length - 1]! };
}

function time(fn: () => void): number[] {
  for (let i = 0; i < 3; i++) fn(); // JIT warm-up
  const out: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const f = (x: number) => x.toFixed(3);
const one = [{ key: '10.0.0.1:80', weight: 1 }];
const floor = statsOf(time(() => buildMaglevTable(one, MAGLEV_DEFAULT_SIZE)));
console.log(`baseline: 1 backend (one permutation walk): ${f(floor.min)}/${f(floor.median)}/${f(floor.max)} ms`);
for (const [n, weighted] of [[1000, false], [1000, true], [100, false]] as const) {
  const backends = Array.from({ length: n }, (_, i) => ({ key: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:80`, weight: weighted ? 1 + (i % 16) : 1 }));
  const s = statsOf(time(() => buildMaglevTable(backends, MAGLEV_DEFAULT_SIZE)));
  console.log(
    `maglev ${MAGLEV_DEFAULT_SIZE} x ${n}${weighted ? ' (weights 1..16)' : ''}: ${f(s.min)}/${f(s.median)}/${f(s.max)} ms (min/median/max of ${repeats}); ` +
      `median / baseline = ${(s.median / floor.median).toFixed(1)}x, median / paper's C 1.8 ms = ${(s.median / PAPER_MS).toFixed(2)}x`,
  );
}
