import { FulcrumError } from '../errors.js';
import { failure } from './check.js';
import { MapType } from './constants.js';
import { copyOut, lib, registerSample, unregister, type Ptr } from './ffi.js';
import { errno } from './libc.js';
import type { BpfMap } from './map.js';

/**
 * A consumer of a BPF_MAP_TYPE_RINGBUF map, over libbpf's ring_buffer (which mmaps the ring and
 * keeps the consumer position). consume() drains every record submitted so far, calling `onRecord`
 * synchronously with a copy of each (the ring's memory never escapes); it never blocks, so the
 * caller polls it on a timer (programs may then submit with BPF_RB_NO_WAKEUP). One koffi callback per
 * ring buffer, unregistered by close().
 */
export class RingBuffer {
  #rb: Ptr | undefined;
  #cb: bigint | undefined;
  #error: unknown;
  #consuming = false;

  private constructor(private readonly what: string, private readonly onRecord: (record: Buffer) => void) {}

  /** Opens a consumer of `map` (which must be a ringbuf map). `onRecord` must not call consume(). */
  static open(map: BpfMap, onRecord: (record: Buffer) => void): RingBuffer {
    if (map.info.type !== MapType.RINGBUF) throw new FulcrumError('INVALID_REQUEST', `map "${map.name}" is a ${map.info.typeName} map, not a ringbuf`);
    const r = new RingBuffer(`ring buffer of map "${map.name}"`, onRecord);
    r.#cb = registerSample((_ctx, data, size) => r.#sample(data, Number(size)));
    const rb = lib().ring_buffer__new(map.fd, r.#cb, null, null) as Ptr | null;
    if (rb === null || rb === 0n) {
      const e = errno();
      unregister(r.#cb);
      r.#cb = undefined;
      throw failure(`ring_buffer__new(${r.what})`, e);
    }
    r.#rb = rb;
    return r;
  }

  #sample(data: Ptr, size: number): number {
    try {
      this.onRecord(copyOut(data, size));
      return 0;
    } catch (e) {
      // Stop the drain: the error is rethrown by consume() (a JS exception must not unwind C frames).
      this.#error = e;
      return -1;
    }
  }

  /** Calls onRecord for every record in the ring now; returns how many were consumed. */
  consume(): number {
    if (this.#rb === undefined) throw new FulcrumError('INTERNAL', `consume() on the closed ${this.what}`);
    if (this.#consuming) throw new FulcrumError('INTERNAL', `consume() of ${this.what} from its own record callback`);
    this.#consuming = true;
    this.#error = undefined;
    let n: number;
    try {
      n = lib().ring_buffer__consume(this.#rb) as number;
    } finally {
      this.#consuming = false;
    }
    if (this.#error !== undefined) {
      const e = this.#error;
      this.#error = undefined;
      throw e;
    }
    if (n < 0) throw failure(`ring_buffer__consume(${this.what})`, -n);
    return n;
  }

  get closed(): boolean {
    return this.#rb === undefined;
  }

  close(): void {
    if (this.#rb !== undefined) lib().ring_buffer__free(this.#rb);
    this.#rb = undefined;
    if (this.#cb !== undefined) unregister(this.#cb);
    this.#cb = undefined;
  }
}
