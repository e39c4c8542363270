import * as koffi from 'koffi';
import { FeatureMissingError } from '../errors.js';
import { libc, type Libc } from './libc.js';

/**
 * The raw FFI surface of libbpf.so.1 (Debian libbpf1, API 1.1), with the libc calls of ./libc.ts.
 * This module and its siblings in src/bpf are the only code that sees raw pointers (koffi BigInts);
 * nothing here is exported from src/bpf/index.ts.
 *
 * Conventions of libbpf 1.x: functions returning int return -errno on failure (and set errno);
 * functions returning pointers return NULL and set errno.
 */

export type Ptr = bigint;

function declare(libbpf: koffi.LibraryHandle) {
  const printFn = koffi.proto('int fulcrum_libbpf_print_fn(int level, const char *fmt, void *ap)');
  const sampleFn = koffi.proto('int fulcrum_ring_buffer_sample_fn(void *ctx, void *data, size_t size)');
  const f = (sig: string) => libbpf.func(sig);
  return {
    printFnPtr: koffi.pointer(printFn),
    sampleFnPtr: koffi.pointer(sampleFn),
    // ring buffer (BPF_MAP_TYPE_RINGBUF consumer)
    ring_buffer__new: f('void *ring_buffer__new(int map_fd, fulcrum_ring_buffer_sample_fn *sample_cb, void *ctx, void *opts)'),
    ring_buffer__consume: f('int ring_buffer__consume(void *rb)'),
    ring_buffer__poll: f('int ring_buffer__poll(void *rb, int timeout_ms)'),
    ring_buffer__epoll_fd: f('int ring_buffer__epoll_fd(void *rb)'),
    ring_buffer__free: f('void ring_buffer__free(void *rb)'),
    // object
    bpf_object__open_file: f('void *bpf_object__open_file(const char *path, void *opts)'),
    bpf_object__open_mem: f('void *bpf_object__open_mem(void *buf, size_t size, void *opts)'),
    bpf_object__load: f('int bpf_object__load(void *obj)'),
    bpf_object__close: f('void bpf_object__close(void *obj)'),
    bpf_object__name: f('const char *bpf_object__name(void *obj)'),
    bpf_object__btf: f('void *bpf_object__btf(void *obj)'),
    bpf_object__find_program_by_name: f('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    bpf_object__find_map_by_name: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    bpf_object__next_program: f('void *bpf_object__next_program(void *obj, void *prog)'),
    bpf_object__next_map: f('void *bpf_object__next_map(void *obj, void *map)'),
    // program
    bpf_program__name: f('const char *bpf_program__name(void *prog)'),
    bpf_program__section_name: f('const char *bpf_program__section_name(void *prog)'),
    bpf_program__fd: f('int bpf_program__fd(void *prog)'),
    bpf_program__type: f('int bpf_program__type(void *prog)'),
    bpf_program__set_autoload: f('int bpf_program__set_autoload(void *prog, bool autoload)'),
    bpf_program__pin: f('int bpf_program__pin(void *prog, const char *path)'),
    bpf_program__unpin: f('int bpf_program__unpin(void *prog, const char *path)'),
    // map (object side)
    bpf_map__name: f('const char *bpf_map__name(void *map)'),
    bpf_map__fd: f('int bpf_map__fd(void *map)'),
    bpf_map__type: f('int bpf_map__type(void *map)'),
    bpf_map__key_size: f('uint32_t bpf_map__key_size(void *map)'),
    bpf_map__value_size: f('uint32_t bpf_map__value_size(void *map)'),
    bpf_map__max_entries: f('uint32_t bpf_map__max_entries(void *map)'),
    bpf_map__map_flags: f('uint32_t bpf_map__map_flags(void *map)'),
    bpf_map__set_max_entries: f('int bpf_map__set_max_entries(void *map, uint32_t n)'),
    bpf_map__initial_value: f('void *bpf_map__initial_value(void *map, _Out_ size_t *size)'),
    bpf_map__set_initial_value: f('int bpf_map__set_initial_value(void *map, void *data, size_t size)'),
    bpf_map__pin: f('int bpf_map__pin(void *map, const char *path)'),
    bpf_map__unpin: f('int bpf_map__unpin(void *map, const char *path)'),
    bpf_map__set_pin_path: f('int bpf_map__set_pin_path(void *map, const char *path)'),
    bpf_map__pin_path: f('const char *bpf_map__pin_path(void *map)'),
    bpf_map__is_pinned: f('bool bpf_map__is_pinned(void *map)'),
    bpf_map__reuse_fd: f('int bpf_map__reuse_fd(void *map, int fd)'),
    // syscall wrappers (fd side)
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)'),
    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, void *key, void *value)'),
    bpf_map_lookup_elem_flags: f('int bpf_map_lookup_elem_flags(int fd, void *key, void *value, uint64_t flags)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, void *key, void *next)'),
    bpf_map_lookup_batch: f('int bpf_map_lookup_batch(int fd, void *inb, void *outb, void *keys, void *values, _Inout_ uint32_t *count, void *opts)'),
    bpf_map_update_batch: f('int bpf_map_update_batch(int fd, void *keys, void *values, _Inout_ uint32_t *count, void *opts)'),
    bpf_map_delete_batch: f('int bpf_map_delete_batch(int fd, void *keys, _Inout_ uint32_t *count, void *opts)'),
    bpf_obj_get: f('int bpf_obj_get(const char *path)'),
    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)'),
    bpf_prog_get_fd_by_id: f('int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_map_get_fd_by_id: f('int bpf_map_get_fd_by_id(uint32_t id)'),
    bpf_prog_test_run_opts: f('int bpf_prog_test_run_opts(int fd, void *opts)'),
    // xdp
    bpf_xdp_attach: f('int bpf_xdp_attach(int ifindex, int fd, uint32_t flags, void *opts)'),
    bpf_xdp_detach: f('int bpf_xdp_detach(int ifindex, uint32_t flags, void *opts)'),
    bpf_xdp_query: f('int bpf_xdp_query(int ifindex, int flags, void *opts)'),
    // btf
    btf__find_by_name_kind: f('int32_t btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
    btf__type_by_id: f('void *btf__type_by_id(void *btf, uint32_t id)'),
    btf__type_cnt: f('uint32_t btf__type_cnt(void *btf)'),
    btf__resolve_size: f('int64_t btf__resolve_size(void *btf, uint32_t id)'),
    btf__name_by_offset: f('const char *btf__name_by_offset(void *btf, uint32_t off)'),
    btf__parse: f('void *btf__parse(const char *path, void *ext)'),
    btf__load_vmlinux_btf: f('void *btf__load_vmlinux_btf(void)'),
    btf__free: f('void btf__free(void *btf)'),
    // misc
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),
    libbpf_set_print: f('void *libbpf_set_print(fulcrum_libbpf_print_fn *fn)'),
    libbpf_strerror: f('int libbpf_strerror(int err, _Out_ char *buf, size_t size)'),
  };
}

export type Native = ReturnType<typeof declare> & Libc;

let native: Native | undefined;
let loadError: unknown;

/** The FFI table, loaded on first use; FeatureMissingError when libbpf.so.1 is not installed. */
export function lib(): Native {
  if (native) return native;
  if (loadError === undefined) {
    try {
      native = { ...declare(koffi.load('libbpf.so.1')), ...libc() };
      return native;
    } catch (e) {
      loadError = e;
    }
  }
  throw new FeatureMissingError('libbpf', 'libbpf.so.1 cannot be loaded (install the libbpf1 package)', { cause: loadError });
}

/** Address of a Buffer's bytes, for pointer fields inside option structs (the Buffer must stay alive). */
export function addressOf(buf: Buffer | null | undefined): bigint {
  return buf ? koffi.address(buf) : 0n;
}

export function register(fn: (level: number, fmt: string, ap: Ptr) => number): bigint {
  return koffi.register(fn, lib().printFnPtr);
}

/** A ring buffer sample callback (ring_buffer__new); unregister() it once the ring buffer is freed. */
export function registerSample(fn: (ctx: Ptr, data: Ptr, size: number | bigint) => number): bigint {
  return koffi.register(fn, lib().sampleFnPtr);
}

export function unregister(cb: bigint): void {
  koffi.unregister(cb);
}

/** Reads a NUL-terminated C string of known length at a pointer. */
export function readCString(ptr: Ptr, len: number): string {
  return koffi.decode(ptr, 'char', len) as string;
}

/**
 * An ArrayBuffer over `len` bytes of foreign memory at `ptr`, without copying. Touching it after
 * the memory goes away crashes the process: only MappedRegion (map.ts) holds one, behind checks.
 */
export function foreignView(ptr: Ptr, len: number): ArrayBuffer {
  return koffi.view(ptr, len) as ArrayBuffer;
}

/** Copies `len` bytes at a libbpf-owned pointer into a fresh Buffer (the pointer must be valid now). */
export function copyOut(ptr: Ptr, len: number): Buffer {
  if (len === 0) return Buffer.alloc(0);
  return Buffer.from(new Uint8Array(koffi.view(ptr, len)));
}
