/** Kernel UAPI numbers (linux/bpf.h, linux/if_link.h, linux/btf.h) used by libbpf-ts. */

export const MapType = {
  UNSPEC: 0, HASH: 1, ARRAY: 2, PROG_ARRAY: 3, PERF_EVENT_ARRAY: 4, PERCPU_HASH: 5, PERCPU_ARRAY: 6,
  STACK_TRACE: 7, CGROUP_ARRAY: 8, LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11, ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13, DEVMAP: 14, SOCKMAP: 15, CPUMAP: 16, XSKMAP: 17, SOCKHASH: 18, CGROUP_STORAGE: 19,
  REUSEPORT_SOCKARRAY: 20, PERCPU_CGROUP_STORAGE: 21, QUEUE: 22, STACK: 23, SK_STORAGE: 24,
  DEVMAP_HASH: 25, STRUCT_OPS: 26, RINGBUF: 27, INODE_STORAGE: 28, TASK_STORAGE: 29,
} as const;

const MAP_TYPE_NAMES = Object.fromEntries(Object.entries(MapType).map(([k, v]) => [v, k.toLowerCase()]));
export function mapTypeName(t: number): string {
  return MAP_TYPE_NAMES[t] ?? `type${t}`;
}

/** Map types whose lookups return one value per possible CPU, each rounded up to 8 bytes. */
export function isPerCpuMapType(t: number): boolean {
  return t === MapType.PERCPU_HASH || t === MapType.PERCPU_ARRAY || t === MapType.LRU_PERCPU_HASH || t === MapType.PERCPU_CGROUP_STORAGE;
}

export const ProgType = {
  UNSPEC: 0, SOCKET_FILTER: 1, KPROBE: 2, SCHED_CLS: 3, SCHED_ACT: 4, TRACEPOINT: 5, XDP: 6,
} as const;

/** BPF_F_* map creation flags libbpf-ts looks at. */
export const MapFlag = { NO_PREALLOC: 1 << 0, NO_COMMON_LRU: 1 << 1, MMAPABLE: 1 << 10 } as const;

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST / BPF_F_LOCK for map updates. */
export const UpdateFlag = { any: 0, noexist: 1, exist: 2, lock: 4 } as const;
export type UpdateMode = keyof typeof UpdateFlag;

/** linux/if_link.h XDP_FLAGS_* */
export const XdpFlags = {
  UPDATE_IF_NOEXIST: 1 << 0,
  SKB_MODE: 1 << 1,
  DRV_MODE: 1 << 2,
  HW_MODE: 1 << 3,
  REPLACE: 1 << 4,
} as const;

/** linux/if_link.h XDP_ATTACHED_* */
export const XdpAttached = { NONE: 0, DRV: 1, SKB: 2, HW: 3, MULTI: 4 } as const;

/** XDP verdicts (enum xdp_action). */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

/** linux/btf.h BTF_KIND_* */
export const BtfKind = {
  UNKN: 0, INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9,
  CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17,
  TYPE_TAG: 18, ENUM64: 19,
} as const;

export const BPF_FS_MAGIC = 0xcafe4a11;
export const CLONE_NEWNET = 0x40000000;
