import { FeatureMissingError, FulcrumError } from '../errors.js';
import { checkInt, failure } from './check.js';
import { isPerCpuMapType, MapFlag, MapType, mapTypeName, UpdateFlag, type UpdateMode } from './constants.js';
import { foreignView, lib } from './ffi.js';
import { errno } from './libc.js';
import { FdHandle } from './fd-handle.js';
import { possibleCpus } from './sys.js';

const ENOENT = 2;
const ENOSPC = 28;

export interface MapInfo {
  /** BPF_MAP_TYPE_* number and its lower-case name (e.g. 'lru_hash'). */
  type: number;
  typeName: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** Kernel object id (bpftool map show id N). */
  id: number;
  /** Kernel-side name (at most 15 bytes). */
  name: string;
}

/** struct bpf_map_info offsets (linux/bpf.h; checked against vmlinux BTF in test/kernel). */
export const BPF_MAP_INFO_LAYOUT = { size: 88, type: 0, id: 4, key_size: 8, value_size: 12, max_entries: 16, map_flags: 20, name: 24 } as const;

export function readMapInfo(fd: number): MapInfo {
  const L = BPF_MAP_INFO_LAYOUT;
  const buf = Buffer.alloc(L.size);
  const len = [L.size];
  checkInt('bpf_obj_get_info_by_fd(map)', lib().bpf_obj_get_info_by_fd(fd, buf, len));
  const nameEnd = buf.indexOf(0, L.name);
  const type = buf.readUInt32LE(L.type);
  return {
    type,
    typeName: mapTypeName(type),
    id: buf.readUInt32LE(L.id),
    keySize: buf.readUInt32LE(L.key_size),
    valueSize: buf.readUInt32LE(L.value_size),
    maxEntries: buf.readUInt32LE(L.max_entries),
    flags: buf.readUInt32LE(L.map_flags),
    name: buf.subarray(L.name, nameEnd < 0 || nameEnd > L.name + 16 ? L.name + 16 : nameEnd).toString(),
  };
}

export interface BatchResult {
  keys: Buffer[];
  values: Buffer[];
}

/**
 * A loaded BPF map, by file descriptor. Keys and values are Buffers of exactly keySize / valueSize
 * bytes; per-CPU maps take and return one value per possible CPU (lookupPerCpu / updatePerCpu).
 * A map opened from a pin owns its fd (close() closes it); a map of a BpfObject is closed with it.
 */
export class BpfMap extends FdHandle {
  #info: MapInfo;

  /** @internal Use BpfObject.map() or openPinnedMap(). */
  constructor(fd: number, owned: boolean, what: string) {
    super(fd, owned, what);
    this.#info = readMapInfo(fd);
  }


  get info(): MapInfo {
    return { ...this.#info };
  }

  get name(): string {
    return this.#info.name;
  }

  get isPerCpu(): boolean {
    return isPerCpuMapType(this.#info.type);
  }

  /** Bytes of one per-CPU slot in a per-CPU value array (value size rounded up to 8). */
  get perCpuStride(): number {
    return this.#valueStride;
  }

  /** The kernel lays values out at the value size rounded up to 8 (per-CPU slots, array elements). */
  get #valueStride(): number {
    return (this.#info.valueSize + 7) & ~7;
  }

  #key(key: Buffer): Buffer {
    if (key.length !== this.#info.keySize) {
      throw new FulcrumError('INVALID_REQUEST', `${this.what}: key is ${key.length} bytes, the map's key_size is ${this.#info.keySize}`);
    }
    return key;
  }

  #value(value: Buffer): Buffer {
    if (value.length !== this.#info.valueSize) {
      throw new FulcrumError('INVALID_REQUEST', `${this.what}: value is ${value.length} bytes, the map's value_size is ${this.#info.valueSize}`);
    }
    return value;
  }

  #requirePerCpu(perCpu: boolean, op: string): void {
    if (perCpu !== this.isPerCpu) {
      throw new FulcrumError('INVALID_REQUEST', `${this.what}: ${op} on a ${this.#info.typeName} map; use ${this.isPerCpu ? `${op}PerCpu` : op.replace(/PerCpu$/, '')}`);
    }
  }

  /** The value under key, or undefined when absent. */
  lookup(key: Buffer): Buffer | undefined {
    this.#requirePerCpu(false, 'lookup');
    const value = Buffer.alloc(this.#info.valueSize);
    const ret = lib().bpf_map_lookup_elem(this.fd, this.#key(key), value);
    if (ret === -ENOENT) return undefined;
    checkInt(`bpf_map_lookup_elem(${this.what})`, ret);
    return value;
  }

  /** One value per possible CPU (index = CPU number), or undefined when absent. */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    this.#requirePerCpu(true, 'lookupPerCpu');
    const ncpu = possibleCpus();
    const raw = Buffer.alloc(this.perCpuStride * ncpu);
    const ret = lib().bpf_map_lookup_elem(this.fd, this.#key(key), raw);
    if (ret === -ENOENT) return undefined;
    checkInt(`bpf_map_lookup_elem(${this.what})`, ret);
    return this.#splitPerCpu(raw);
  }

  #splitPerCpu(raw: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (let off = 0; off < raw.length; off += this.perCpuStride) out.push(Buffer.from(raw.subarray(off, off + this.#info.valueSize)));
    return out;
  }

  #joinPerCpu(values: Buffer[]): Buffer {
    const ncpu = possibleCpus();
    if (values.length !== ncpu) {
      throw new FulcrumError('INVALID_REQUEST', `${this.what}: ${values.length} per-CPU values given, this machine has ${ncpu} possible CPUs`);
    }
    const raw = Buffer.alloc(this.perCpuStride * ncpu);
    values.forEach((v, i) => this.#value(v).copy(raw, i * this.perCpuStride));
    return raw;
  }

  update(key: Buffer, value: Buffer, mode: UpdateMode = 'any'): void {
    this.#requirePerCpu(false, 'update');
    checkInt(`bpf_map_update_elem(${this.what})`, lib().bpf_map_update_elem(this.fd, this.#key(key), this.#value(value), UpdateFlag[mode]));
  }

  updatePerCpu(key: Buffer, values: Buffer[], mode: UpdateMode = 'any'): void {
    this.#requirePerCpu(true, 'updatePerCpu');
    checkInt(`bpf_map_update_elem(${this.what})`, lib().bpf_map_update_elem(this.fd, this.#key(key), this.#joinPerCpu(values), UpdateFlag[mode]));
  }

  /** Deletes key; false when it was absent. (Array maps cannot delete: EINVAL.) */
  delete(key: Buffer): boolean {
    const ret = lib().bpf_map_delete_elem(this.fd, this.#key(key));
    if (ret === -ENOENT) return false;
    checkInt(`bpf_map_delete_elem(${this.what})`, ret);
    return true;
  }

  /** The key after `key` (the first key when undefined), or undefined at the end. */
  nextKey(key?: Buffer): Buffer | undefined {
    const next = Buffer.alloc(this.#info.keySize);
    const ret = lib().bpf_map_get_next_key(this.fd, key ? this.#key(key) : null, next);
    if (ret === -ENOENT) return undefined;
    checkInt(`bpf_map_get_next_key(${this.what})`, ret);
    return next;
  }

  /** All keys by get_next_key (a concurrent delete may restart the walk; bounded by max_entries * 2). */
  keys(): Buffer[] {
    const out: Buffer[] = [];
    let k = this.nextKey();
    for (let i = 0; k && i < this.#info.maxEntries * 2 + 1; i++) {
      out.push(k);
      k = this.nextKey(k);
    }
    return out;
  }

  /**
   * Every entry with BPF_MAP_LOOKUP_BATCH, `chunk` entries per syscall. Values of per-CPU maps come
   * back as the raw per-CPU array (use splitPerCpu). EINVAL/ENOTSUPP for map types without batch ops.
   */
  lookupBatch(chunk = 256): BatchResult {
    const { keySize } = this.#info;
    const vsz = this.isPerCpu ? this.perCpuStride * possibleCpus() : this.#info.valueSize;
    let size = Math.max(1, chunk);
    let keys = Buffer.alloc(keySize * size);
    let values = Buffer.alloc(vsz * size);
    // The batch token is opaque to user space: its size is the key size for arrays and a u32 bucket for hashes.
    const token = Buffer.alloc(Math.max(keySize, 8));
    const out: BatchResult = { keys: [], values: [] };
    let first = true;
    for (let guard = 0; guard < this.#info.maxEntries + 64; guard++) {
      const count = [size];
      const ret = lib().bpf_map_lookup_batch(this.fd, first ? null : token, token, keys, values, count, batchOpts());
      const n = count[0] ?? 0;
      if (ret === -ENOSPC && n === 0 && size < this.#info.maxEntries) {
        // A hash bucket holds more entries than fit: retry the same position with more room.
        size *= 2;
        keys = Buffer.alloc(keySize * size);
        values = Buffer.alloc(vsz * size);
        continue;
      }
      for (let i = 0; i < n; i++) {
        out.keys.push(Buffer.from(keys.subarray(i * keySize, (i + 1) * keySize)));
        out.values.push(Buffer.from(values.subarray(i * vsz, (i + 1) * vsz)));
      }
      if (ret === -ENOENT) break;
      checkInt(`bpf_map_lookup_batch(${this.what})`, ret);
      first = false;
    }
    return out;
  }

  #raw(x: Buffer): Buffer {
    const want = this.perCpuStride * possibleCpus();
    if (x.length !== want) throw new FulcrumError('INVALID_REQUEST', `${this.what}: a raw per-CPU value is ${want} bytes, got ${x.length}`);
    return x;
  }

  /** Joins one value per possible CPU into the raw per-CPU array that updateBatch takes. */
  joinPerCpu(values: Buffer[]): Buffer {
    return this.#joinPerCpu(values);
  }

  /** True for an array created with BPF_F_MMAPABLE (mmap() works). */
  get isMmapable(): boolean {
    return this.#info.type === MapType.ARRAY && (this.#info.flags & MapFlag.MMAPABLE) !== 0;
  }

  /**
   * Maps the values of a BPF_F_MMAPABLE array into this process: writes are plain memory stores
   * that BPF programs see at once (a following bpf() syscall orders them before anything it
   * publishes). Values are laid out at a stride of value_size rounded up to 8, in key order.
   * FeatureMissingError for any other map; the region lives until its close() (or this map's).
   */
  mmap(): MappedRegion {
    if (!this.isMmapable) throw new FeatureMissingError('mmapable-map', `${this.what} is not an array created with BPF_F_MMAPABLE`);
    const stride = this.#valueStride;
    const len = stride * this.#info.maxEntries;
    const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_FAILED = 0xffffffffffffffffn;
    const ptr = lib().mmap(null, len, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, 0n) as bigint | null;
    if (ptr === null || ptr === MAP_FAILED || ptr === 0n) throw failure(`mmap(${this.what}, ${len} bytes)`, errno());
    const region = new MappedRegion(ptr, len, stride, this.what);
    this.#regions.add(region);
    return region;
  }

  #regions = new Set<MappedRegion>();

  override close(): void {
    for (const r of this.#regions) r.close();
    this.#regions.clear();
    super.close();
  }

  /** Splits one raw per-CPU value (from lookupBatch) into one Buffer per CPU. */
  splitPerCpu(raw: Buffer): Buffer[] {
    return this.#splitPerCpu(raw);
  }

  /** Writes all entries with BPF_MAP_UPDATE_BATCH; returns how many were written (all, or it throws). */
  updateBatch(keys: Buffer[], values: Buffer[], mode: UpdateMode = 'any'): number {
    if (keys.length !== values.length) throw new FulcrumError('INVALID_REQUEST', `${this.what}: ${keys.length} keys but ${values.length} values`);
    if (keys.length === 0) return 0;
    const k = Buffer.concat(keys.map((x) => this.#key(x)));
    // Per-CPU maps take each value as the raw per-CPU array (joinPerCpu / what lookupBatch returns).
    const v = Buffer.concat(values.map((x) => (this.isPerCpu ? this.#raw(x) : this.#value(x))));
    const count = [keys.length];
    const ret = lib().bpf_map_update_batch(this.fd, k, v, count, batchOpts(UpdateFlag[mode]));
    if (ret < 0) throw failure(`bpf_map_update_batch(${this.what}) after ${count[0]} of ${keys.length}`, -ret);
    return count[0] ?? 0;
  }

  /** Deletes keys with BPF_MAP_DELETE_BATCH; a missing key fails the call with ENOENT after the ones before it. */
  deleteBatch(keys: Buffer[]): number {
    if (keys.length === 0) return 0;
    const k = Buffer.concat(keys.map((x) => this.#key(x)));
    const count = [keys.length];
    const ret = lib().bpf_map_delete_batch(this.fd, k, count, batchOpts());
    if (ret < 0) throw failure(`bpf_map_delete_batch(${this.what}) after ${count[0]} of ${keys.length}`, -ret);
    return count[0] ?? 0;
  }

  /** Prog array: points slot `index` at `prog` for bpf_tail_call (null empties the slot). */
  setTailCall(index: number, prog: { fd: number } | null): void {
    if (this.#info.type !== MapType.PROG_ARRAY) throw new FulcrumError('INVALID_REQUEST', `${this.what} is a ${this.#info.typeName} map, not a prog_array`);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(index);
    if (prog === null) {
      this.delete(key);
      return;
    }
    const value = Buffer.alloc(4);
    value.writeUInt32LE(prog.fd);
    checkInt(`bpf_map_update_elem(${this.what}[${index}])`, lib().bpf_map_update_elem(this.fd, key, value, 0));
  }



}

function batchOpts(elemFlags = 0): Buffer {
  // struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; }
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}

/**
 * The values of an mmapable array map, mapped into this process (BpfMap.mmap()). The memory view
 * never leaves this class: every access is bounds-checked and refused after close(), since touching
 * unmapped memory would crash the process.
 */
export class MappedRegion {
  #view: Uint8Array | undefined;

  /** @internal Use BpfMap.mmap(). */
  constructor(
    private ptr: bigint,
    readonly length: number,
    /** Bytes from one value to the next (value_size rounded up to 8). */
    readonly stride: number,
    private readonly what: string,
  ) {
    this.#view = new Uint8Array(foreignView(ptr, length));
  }

  #range(offset: number, len: number, op: string): Uint8Array {
    const v = this.#view;
    if (!v) throw new FulcrumError('INTERNAL', `${op} on the closed mapping of ${this.what}`);
    if (!Number.isInteger(offset) || offset < 0 || offset + len > this.length)
      throw new FulcrumError('INVALID_REQUEST', `${op}: bytes [${offset}, ${offset + len}) are outside the ${this.length}-byte mapping of ${this.what}`);
    return v;
  }

  /** Copies `bytes` into the mapping at byte `offset`. */
  write(offset: number, bytes: Uint8Array): void {
    this.#range(offset, bytes.length, 'write').set(bytes, offset);
  }

  /** A copy of `len` bytes at byte `offset`. */
  read(offset: number, len: number): Buffer {
    return Buffer.from(this.#range(offset, len, 'read').subarray(offset, offset + len));
  }

  close(): void {
    if (!this.#view) return;
    this.#view = undefined;
    lib().munmap(this.ptr, this.length);
    this.ptr = 0n;
  }
}
