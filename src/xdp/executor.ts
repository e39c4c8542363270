import type { Report } from '../dataplane/types.js';
import { FulcrumError } from '../errors.js';
import { encodeBackend, encodeEndpoint, encodeVipKey, encodeVipMeta, encodeVipSlot, u32, STRUCTS } from './abi.js';
import { describeStep, sameVip, type Observed, type ObservedVip, type XdpStep } from './plan.js';
import { foldCounters, resetCounters } from './counters.js';
import { TableWriter } from './table.js';
import type { XdpKernel } from './kernel.js';

/** Applies planned steps to the maps, all or nothing. */
export class StepExecutor {
  readonly #tables: TableWriter;

  constructor(private readonly k: XdpKernel, private readonly report: Report) {
    this.#tables = new TableWriter(k);
  }

  /**
   * Applies `steps` in order. When one fails, the steps before it are undone in reverse order (a
   * failed undo is reported and the rest go on) and APPLY_FAILED is thrown.
   */
  apply(steps: readonly XdpStep[], observed: Observed): void {
    const undo: Array<() => void> = [];
    let done = 0;
    try {
      for (const step of steps) {
        undo.push(this.#step(step, observed));
        done++;
      }
    } catch (cause) {
      const failed = steps[done];
      for (const u of undo.reverse()) {
        try { u(); } catch (e) { this.report({ level: 'error', fields: { err: e }, message: 'xdp rollback step failed' }); }
      }
      throw new FulcrumError('APPLY_FAILED', `xdp: ${failed ? describeStep(failed) : 'a step'} failed: ${(cause as Error).message}; ${done} earlier steps were rolled back`, {
        cause, details: { step: failed?.kind, service: failed?.service },
      });
    }
  }

  /** Applies one step; returns how to undo it. */
  #step(step: XdpStep, observed: Observed): () => void {
    const k = this.k, m = k.maps;
    switch (step.kind) {
      case 'add-backend': {
        // Restore the slot's exact bytes on rollback (an inactive slot keeps its generation).
        const before = m.backends.lookup(u32(step.slot)) ?? encodeBackend(observed.backends[step.slot]!);
        resetCounters(k, 'backend', step.slot);
        m.backends.update(u32(step.slot), encodeBackend(step.value));
        return () => m.backends.update(u32(step.slot), before);
      }
      case 'update-backend':
        m.backends.update(u32(step.slot), encodeBackend(step.value));
        return () => m.backends.update(u32(step.slot), encodeBackend(step.previous));
      case 'publish': {
        // The table goes into the slot no packet reads; the one vips update below makes it live.
        this.#tables.write(step.meta.id, step.meta.slot, step.members);
        if (!step.previous) resetCounters(k, 'vip', step.meta.id);
        m.vips.update(encodeVipKey(step.key), encodeVipMeta(step.meta));
        const prev = step.previous;
        return prev ? () => m.vips.update(encodeVipKey(step.key), encodeVipMeta(prev)) : () => void m.vips.delete(encodeVipKey(step.key));
      }
      case 'remove-vip':
        m.vips.delete(encodeVipKey(step.key));
        return () => m.vips.update(encodeVipKey(step.key), encodeVipMeta(step.previous));
      case 'remove-backend': {
        m.backends.update(u32(step.slot), encodeBackend({ ...step.previous, active: false }));
        const unfold = foldCounters(k, step.slot, step.previous.vipId);
        return () => {
          unfold();
          m.backends.update(u32(step.slot), encodeBackend(step.previous));
        };
      }
      case 'set-filter':
        writeFilter(k, step.words);
        return () => writeFilter(k, step.previous);
      case 'set-endpoint': {
        m.nat_endpoints.update(encodeVipKey(step.key), encodeEndpoint(step.value));
        const prev = step.previous;
        return prev ? () => m.nat_endpoints.update(encodeVipKey(step.key), encodeEndpoint(prev)) : () => void m.nat_endpoints.delete(encodeVipKey(step.key));
      }
      case 'remove-endpoint':
        m.nat_endpoints.delete(encodeVipKey(step.key));
        return () => m.nat_endpoints.update(encodeVipKey(step.key), encodeEndpoint(step.previous));
      case 'set-vip-index':
        writeVipIndex(k, step.index, step.previous, step.value);
        return () => writeVipIndex(k, step.index, step.value, step.previous);
    }
  }
}

function writeFilter(k: XdpKernel, words: BigUint64Array): void {
  const keys: Buffer[] = [], values: Buffer[] = [];
  words.forEach((w, i) => {
    const v = Buffer.alloc(8);
    v.writeBigUInt64LE(w, 0);
    keys.push(u32(i));
    values.push(v);
  });
  k.maps.filter.updateBatch(keys, values);
}

/**
 * Rewrites vip_index[index] from `from` to `to` so that a packet reading it meanwhile never sees a
 * matching key with a half-written meta (an array update is a plain memcpy): an entry changes its
 * VIP, id or mode only while its family byte is 0 (no packet matches it), so that every write a
 * packet can match differs from the previous one in one byte (the family, or the live slot).
 */
function writeVipIndex(k: XdpKernel, index: number, from: ObservedVip | undefined, to: ObservedVip | undefined): void {
  const key = u32(index);
  const write = (v: ObservedVip, visible: boolean) => {
    const b = encodeVipSlot(v.key, v.meta);
    if (!visible) b[STRUCTS.fl_vip_slot.fields.key.offset + STRUCTS.fl_vip_key.fields.family.offset] = 0;
    k.maps.vip_index.update(key, b);
  };
  if (!(from && to && sameVip(from, to))) {
    if (from) write(from, false);
    if (to) write(to, false);
    else k.maps.vip_index.update(key, Buffer.alloc(STRUCTS.fl_vip_slot.size));
  }
  if (to) write(to, true);
}
