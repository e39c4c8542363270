import { buildMaglevTable, MAGLEV_EMPTY } from './maglev.js';
import { L, maglevIndex, maglevStride } from './abi.js';
import type { TableMember } from './plan.js';
import type { XdpKernel } from './kernel.js';

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

/**
 * Writes a maglev table into (vip id, slot): one memory copy into the mmapped map when there is
 * one, else one batch update of the table's lines (a table starts on a line and its padding holds
 * FL_NO_BACKEND, so no line is shared with another table).
 */
export class TableWriter {
  /** Batch keys, reused from table to table. */
  #keys: Buffer[] = [];
  constructor(private readonly k: XdpKernel) {}

  write(vipId: number, slot: 0 | 1, members: readonly TableMember[]): void {
    const size = this.k.limits.maglevTableSize;
    const stride = maglevStride(size);
    const table = new Uint32Array(stride).fill(L.FL_NO_BACKEND);
    table.set(maglevTableForMembers(members, size));
    const bytes = new Uint8Array(table.buffer); // little-endian host, as the program reads it
    const base = maglevIndex(vipId, slot, 0, size);
    const memory = this.k.maglevMemory;
    if (memory) {
      memory.write(base * 4, bytes);
      return;
    }
    const line = L.FL_MAGLEV_LINE, lines = stride / line;
    while (this.#keys.length < lines) this.#keys.push(Buffer.alloc(4));
    const keys = this.#keys.slice(0, lines);
    const values: Buffer[] = new Array<Buffer>(lines);
    for (let i = 0; i < lines; i++) {
      keys[i]!.writeUInt32LE(base / line + i, 0);
      values[i] = Buffer.from(bytes.buffer, i * line * 4, line * 4);
    }
    this.k.maps.maglev.updateBatch(keys, values);
  }
}
