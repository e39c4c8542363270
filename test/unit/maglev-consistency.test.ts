import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maglevTableForMembers } from '../../src/xdp/table.js';
import { L } from '../../src/xdp/abi.js';
import type { TableMember } from '../../src/xdp/plan.js';

/**
 * Active-active nodes (docs/bgp.md) need the same backend for the same flow on every node: the
 * table the XDP program reads, resolved to backend endpoints, depends only on the set of
 * (endpoint, weight). Backend slots are node-local (allocated by each node's history), so the raw
 * slot numbers may differ while every entry still names the same backend; with the same slots the
 * bytes are identical. The bgp tier compares the live maps of three agents.
 */
const SIZE = 251;
const members = (order: number[], slotOf: (i: number) => number): TableMember[] =>
  order.map((i) => ({ key: `10.72.0.${10 + i}:80`, slot: slotOf(i), weight: 1 + (i % 3) }));
const resolve = (t: Uint32Array, m: TableMember[]) => Array.from(t, (s) => (s === L.FL_NO_BACKEND ? '-' : m.find((x) => x.slot === s)!.key));

test('maglev: same backends and weights give byte-identical tables in any order, and the same backends with other slots', () => {
  const a = members([0, 1, 2, 3, 4, 5], (i) => i);
  const b = members([5, 3, 1, 0, 4, 2], (i) => i);
  const c = members([2, 4, 0, 5, 1, 3], (i) => 40 - i); // another node: other slots
  const ta = maglevTableForMembers(a, SIZE);
  assert.deepEqual(Buffer.from(maglevTableForMembers(b, SIZE).buffer), Buffer.from(ta.buffer));
  const tc = maglevTableForMembers(c, SIZE);
  assert.notDeepEqual(Buffer.from(tc.buffer), Buffer.from(ta.buffer));
  assert.deepEqual(resolve(tc, c), resolve(ta, a));
  // A weight is part of the function: changing one moves entries.
  const w = a.map((m, i) => (i === 0 ? { ...m, weight: m.weight + 1 } : m));
  assert.notDeepEqual(resolve(maglevTableForMembers(w, SIZE), w), resolve(ta, a));
});
