import { FulcrumError } from '../errors.js';
import { Btf } from './btf.js';
import { checkInt, checkPtr, closedError, failure, notFound } from './check.js';
import { addressOf, copyOut, lib, type Ptr } from './ffi.js';
import { clearLibbpfLog, ensurePrintHook } from './log.js';
import { BpfMap } from './map.js';
import { BpfProgram } from './program.js';
import { requireBpffs } from './pin.js';

export interface OpenOptions {
  /** Overrides the object name (default: the file name without .o). */
  objectName?: string;
  /**
   * bpffs directory for maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)`: at load libbpf
   * reuses a compatible pin there (keeping its contents) or pins the new map there.
   */
  pinRoot?: string;
}

export type RodataValue = number | bigint | boolean | Buffer;

export interface LoadOptions extends OpenOptions {
  /** `const volatile` globals of .rodata, set before load (the verifier then sees them as constants). */
  rodata?: Record<string, RodataValue>;
  /** max_entries overrides per map name. */
  maxEntries?: Record<string, number>;
  /** Maps to take over from elsewhere (e.g. reopened pins): the object uses that kernel map. */
  reuseMaps?: Record<string, BpfMap>;
  /** Programs not to load. */
  skipPrograms?: string[];
}

function openOpts(o: OpenOptions, keep: Buffer[]): Buffer | null {
  if (!o.objectName && !o.pinRoot) return null;
  // libbpf would fail at load with a bare EINVAL; say what is missing instead.
  if (o.pinRoot) requireBpffs(o.pinRoot);
  // struct bpf_object_open_opts (libbpf 1.1): sz@0 object_name@8 relaxed_maps@16 pin_root_path@24 ... size 80
  const b = Buffer.alloc(80);
  b.writeBigUInt64LE(80n, 0);
  const str = (s: string) => {
    const c = Buffer.from(`${s}\0`);
    keep.push(c);
    return addressOf(c);
  };
  if (o.objectName) b.writeBigUInt64LE(str(o.objectName), 8);
  if (o.pinRoot) b.writeBigUInt64LE(str(o.pinRoot), 24);
  return b;
}

/**
 * A BPF ELF object: open (parse, no kernel), configure, load (verifier), then use its programs and
 * maps; close() releases everything (programs attached elsewhere, e.g. to XDP, and pinned maps stay
 * alive in the kernel). Double close is safe.
 */
export class BpfObject {
  #ptr: Ptr | undefined;
  #loaded = false;
  readonly #source: string;
  readonly #maps = new Map<string, BpfMap>();
  readonly #progs = new Map<string, BpfProgram>();
  #btf: Btf | undefined;
  /** Buffers whose addresses went into the open options: kept reachable for the object's life. */
  readonly #keep: Buffer[];

  private constructor(ptr: Ptr, source: string, keep: Buffer[]) {
    this.#ptr = ptr;
    this.#source = source;
    this.#keep = keep;
  }

  /** Parses an object file (no kernel work). */
  static openFile(path: string, opts: OpenOptions = {}): BpfObject {
    ensurePrintHook();
    clearLibbpfLog();
    const keep: Buffer[] = [];
    const o = openOpts(opts, keep);
    const p = checkPtr(`bpf_object__open_file(${path})`, lib().bpf_object__open_file(path, o), { withLog: true });
    return new BpfObject(p, path, keep);
  }

  /** Parses an object held in memory (libbpf copies it). */
  static openBuffer(buf: Buffer, opts: OpenOptions = {}): BpfObject {
    ensurePrintHook();
    clearLibbpfLog();
    const keep: Buffer[] = [];
    const o = openOpts(opts, keep);
    const p = checkPtr('bpf_object__open_mem', lib().bpf_object__open_mem(buf, buf.length, o), { withLog: true });
    return new BpfObject(p, opts.objectName ?? 'object in memory', keep);
  }

  get #p(): Ptr {
    if (this.#ptr === undefined) throw closedError(`BPF object ${this.#source}`);
    return this.#ptr;
  }

  get name(): string {
    return lib().bpf_object__name(this.#p) ?? '';
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  #mapPtr(name: string): Ptr {
    const m = lib().bpf_object__find_map_by_name(this.#p, name);
    if (!m) throw notFound(`${this.#source} has no map ${name} (maps: ${this.mapNames().join(', ')})`);
    return m;
  }

  #progPtr(name: string): Ptr {
    const p = lib().bpf_object__find_program_by_name(this.#p, name);
    if (!p) throw notFound(`${this.#source} has no program ${name} (programs: ${this.programNames().join(', ')})`);
    return p;
  }

  #beforeLoad(what: string): void {
    if (this.#loaded) throw new FulcrumError('INTERNAL', `${what}: ${this.#source} is already loaded`);
  }

  programNames(): string[] {
    const out: string[] = [];
    for (let p = lib().bpf_object__next_program(this.#p, null); p; p = lib().bpf_object__next_program(this.#p, p)) out.push(lib().bpf_program__name(p));
    return out;
  }

  mapNames(): string[] {
    const out: string[] = [];
    for (let m = lib().bpf_object__next_map(this.#p, null); m; m = lib().bpf_object__next_map(this.#p, m)) out.push(lib().bpf_map__name(m));
    return out;
  }

  /** Map type/sizes as declared (before load) — after load prefer map(name).info (adds id, fd). */
  declaredMap(name: string): { type: number; keySize: number; valueSize: number; maxEntries: number; flags: number } {
    const m = this.#mapPtr(name);
    const l = lib();
    return { type: l.bpf_map__type(m), keySize: l.bpf_map__key_size(m), valueSize: l.bpf_map__value_size(m), maxEntries: l.bpf_map__max_entries(m), flags: l.bpf_map__map_flags(m) };
  }

  /** The object's BTF (FeatureMissingError when compiled without -g). Valid until close(). */
  get btf(): Btf {
    if (!this.#btf) {
      const p = lib().bpf_object__btf(this.#p);
      if (!p) throw failure(`bpf_object__btf(${this.#source})`, 61, { featureMissing: { errnos: [61], feature: 'btf', message: 'the object has no BTF (compile with clang -g)' } });
      this.#btf = new Btf(p, false, `BTF of ${this.#source}`);
    }
    return this.#btf;
  }

  /** Sets `const volatile` globals before load, placed by the .rodata section's BTF. */
  setRodata(values: Record<string, RodataValue>): void {
    this.#beforeLoad('setRodata');
    const names = this.mapNames().filter((n) => n.endsWith('.rodata'));
    if (names.length !== 1) throw notFound(`${this.#source} has no single .rodata map (has: ${this.mapNames().join(', ')})`);
    const map = this.#mapPtr(names[0] as string);
    const vars = new Map(this.btf.sectionVars('.rodata').map((v) => [v.name, v]));
    const sizeOut = [0];
    const cur = checkPtr('bpf_map__initial_value(.rodata)', lib().bpf_map__initial_value(map, sizeOut));
    const data = copyOut(cur, Number(sizeOut[0]));
    for (const [name, value] of Object.entries(values)) {
      const v = vars.get(name);
      if (!v) throw new FulcrumError('INVALID_REQUEST', `${this.#source}: no const volatile ${name} in .rodata (has: ${[...vars.keys()].join(', ')})`);
      writeScalar(data, v.offset, v.size, value, name);
    }
    checkInt('bpf_map__set_initial_value(.rodata)', lib().bpf_map__set_initial_value(map, data, data.length));
  }

  setMaxEntries(mapName: string, n: number): void {
    this.#beforeLoad('setMaxEntries');
    checkInt(`bpf_map__set_max_entries(${mapName})`, lib().bpf_map__set_max_entries(this.#mapPtr(mapName), n));
  }

  setAutoload(progName: string, load: boolean): void {
    this.#beforeLoad('setAutoload');
    checkInt(`bpf_program__set_autoload(${progName})`, lib().bpf_program__set_autoload(this.#progPtr(progName), load));
  }

  /** Makes map `name` use an existing kernel map (same type/sizes) instead of creating one; libbpf dups the fd. */
  reuseMap(name: string, existing: BpfMap): void {
    this.#beforeLoad('reuseMap');
    checkInt(`bpf_map__reuse_fd(${name})`, lib().bpf_map__reuse_fd(this.#mapPtr(name), existing.fd));
  }

  /** Sets where libbpf pins (or reuses the pin of) map `name` at load. */
  setMapPinPath(name: string, path: string): void {
    this.#beforeLoad('setMapPinPath');
    checkInt(`bpf_map__set_pin_path(${name})`, lib().bpf_map__set_pin_path(this.#mapPtr(name), path));
  }

  /** Creates the maps and loads the programs (the verifier runs here). The error carries libbpf's log. */
  load(): void {
    this.#beforeLoad('load');
    clearLibbpfLog();
    checkInt(`bpf_object__load(${this.#source})`, lib().bpf_object__load(this.#p), { withLog: true });
    this.#loaded = true;
  }

  #afterLoad(what: string): void {
    if (!this.#loaded) throw new FulcrumError('INTERNAL', `${what}: ${this.#source} is not loaded yet`);
  }

  program(name: string): BpfProgram {
    this.#afterLoad(`program(${name})`);
    let p = this.#progs.get(name);
    if (!p) {
      const fd = lib().bpf_program__fd(this.#progPtr(name));
      if (fd < 0) throw notFound(`program ${name} of ${this.#source} was not loaded`);
      p = new BpfProgram(fd, false, `program ${name}`);
      this.#progs.set(name, p);
    }
    return p;
  }

  map(name: string): BpfMap {
    this.#afterLoad(`map(${name})`);
    let m = this.#maps.get(name);
    if (!m) {
      const fd = checkInt(`bpf_map__fd(${name})`, lib().bpf_map__fd(this.#mapPtr(name)));
      m = new BpfMap(fd, false, `map ${name}`);
      this.#maps.set(name, m);
    }
    return m;
  }

  /** Pins map `name` (at `path`, or at its pin path when it has one). */
  pinMap(name: string, path?: string): void {
    this.#afterLoad('pinMap');
    checkInt(`bpf_map__pin(${name}, ${path ?? 'pin path'})`, lib().bpf_map__pin(this.#mapPtr(name), path ?? null));
  }

  unpinMap(name: string, path?: string): void {
    checkInt(`bpf_map__unpin(${name})`, lib().bpf_map__unpin(this.#mapPtr(name), path ?? null));
  }

  pinProgram(name: string, path: string): void {
    this.#afterLoad('pinProgram');
    checkInt(`bpf_program__pin(${name}, ${path})`, lib().bpf_program__pin(this.#progPtr(name), path));
  }

  unpinProgram(name: string, path: string): void {
    checkInt(`bpf_program__unpin(${name}, ${path})`, lib().bpf_program__unpin(this.#progPtr(name), path));
  }

  /** Releases the object; its BpfMap/BpfProgram/Btf handles become closed. Safe to call twice. */
  close(): void {
    if (this.#ptr === undefined) return;
    for (const m of this.#maps.values()) m.invalidate();
    for (const p of this.#progs.values()) p.invalidate();
    this.#btf?.invalidate();
    lib().bpf_object__close(this.#ptr);
    this.#ptr = undefined;
    this.#keep.length = 0;
  }
}

function writeScalar(data: Buffer, offset: number, size: number, value: RodataValue, name: string): void {
  if (Buffer.isBuffer(value)) {
    if (value.length !== size) throw new FulcrumError('INVALID_REQUEST', `rodata ${name} is ${size} bytes, got ${value.length}`);
    value.copy(data, offset);
    return;
  }
  const big = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  if (![1, 2, 4, 8].includes(size)) throw new FulcrumError('INVALID_REQUEST', `rodata ${name} is ${size} bytes: pass a Buffer`);
  const bits = BigInt(size * 8);
  if (big < -(1n << (bits - 1n)) || big >= 1n << bits) throw new FulcrumError('INVALID_REQUEST', `rodata ${name}: ${value} does not fit in ${size} bytes`);
  const u = BigInt.asUintN(size * 8, big);
  for (let i = 0; i < size; i++) data[offset + i] = Number((u >> BigInt(8 * i)) & 0xffn);
}

/** Open + configure + load in one step; the object is closed again if any step fails. */
export function loadObject(source: string | Buffer, opts: LoadOptions = {}): BpfObject {
  const obj = typeof source === 'string' ? BpfObject.openFile(source, opts) : BpfObject.openBuffer(source, opts);
  try {
    if (opts.rodata && Object.keys(opts.rodata).length > 0) obj.setRodata(opts.rodata);
    for (const [m, n] of Object.entries(opts.maxEntries ?? {})) obj.setMaxEntries(m, n);
    for (const [m, existing] of Object.entries(opts.reuseMaps ?? {})) obj.reuseMap(m, existing);
    for (const p of opts.skipPrograms ?? []) obj.setAutoload(p, false);
    obj.load();
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}
