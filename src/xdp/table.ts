import { buildMaglevTable, MAGLEV_EMPTY } from './maglev.js';
import { L } from './abi.js';
import type { TableMember } from './plan.js';

/**
 * A VIP's Maglev table as the program reads it: entry -> backend slot (or FL_NO_BACKEND). The
 * permutation of a backend depends on its endpoint, not its slot, so a backend that comes back in
 * another slot keeps its share of entries.
 */
export function maglevTableForMembers(members: readonly TableMember[], size: number): Uint32Array {
  const positions = buildMaglevTable(members.map((m) => ({ key: m.key, weight: m.weight })), size);
  const out = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    const p = positions[i]!;
    out[i] = p === MAGLEV_EMPTY ? L.FL_NO_BACKEND : members[p]!.slot;
  }
  return out;
}
