import { FeatureMissingError, FulcrumError } from '../errors.js';
import { checkInt, failure } from './check.js';
import { BPF_FS_MAGIC, CLONE_NEWNET } from './constants.js';
import { lib } from './ffi.js';
import { errno } from './libc.js';

let ncpus: number | undefined;

/** libbpf_num_possible_cpus(): the number of slots in every per-CPU map value. */
export function possibleCpus(): number {
  if (ncpus === undefined) ncpus = checkInt('libbpf_num_possible_cpus', lib().libbpf_num_possible_cpus());
  return ncpus;
}

/**
 * Pins the calling thread (Node's main thread, where synchronous libbpf calls run) to one CPU and
 * returns a function that restores the previous mask. Used to run BPF_PROG_TEST_RUN on a known CPU.
 */
export function pinThreadToCpu(cpu: number): () => void {
  const size = 128; // cpu_set_t is 1024 bits
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= size * 8) throw new FulcrumError('INVALID_REQUEST', `cpu ${cpu} is out of range`);
  const old = Buffer.alloc(size);
  if (lib().sched_getaffinity(0, size, old) < 0) throw failure('sched_getaffinity', errno());
  const mask = Buffer.alloc(size);
  mask[cpu >> 3] = 1 << (cpu & 7);
  if (lib().sched_setaffinity(0, size, mask) < 0) throw failure(`sched_setaffinity(cpu ${cpu})`, errno());
  return () => {
    lib().sched_setaffinity(0, size, old);
  };
}

/** True when `path` is a mounted bpffs (statfs f_type == BPF_FS_MAGIC). */
export function isBpffs(path: string): boolean {
  const buf = Buffer.alloc(120); // struct statfs; f_type is the first long on 64-bit Linux
  if (lib().statfs(path, buf) < 0) return false;
  return Number(buf.readBigInt64LE(0) & 0xffffffffn) === BPF_FS_MAGIC;
}

/**
 * Mounts bpffs at `path` (default /sys/fs/bpf) unless one is mounted there already. Explicit: nothing
 * in libbpf-ts mounts on its own. FeatureMissingError when the kernel has no bpffs.
 */
export function mountBpffs(path = '/sys/fs/bpf'): { mounted: boolean } {
  if (isBpffs(path)) return { mounted: false };
  if (lib().mount('bpf', path, 'bpf', 0, null) < 0) {
    const e = errno();
    throw failure(`mount bpffs at ${path}`, e, { featureMissing: { errnos: [19], feature: 'bpffs', message: 'the kernel has no bpf filesystem' } });
  }
  return { mounted: true };
}

/** if_nametoindex in the calling thread's network namespace. */
export function ifIndex(name: string): number {
  const idx = lib().if_nametoindex(name);
  if (idx === 0) throw failure(`if_nametoindex(${name})`, errno() || 19);
  return idx;
}

/**
 * Runs `fn` with the calling thread inside the network namespace at `nsPath` (e.g.
 * /run/netns/NAME, or just NAME for `ip netns` names) and switches back before returning.
 *
 * setns() moves only the calling thread, so this is reliable only for SYNCHRONOUS work on the main
 * thread: if_nametoindex, bpf_xdp_attach/detach/query (libbpf opens its netlink socket in the
 * calling thread). `fn` must not return a promise; libuv's thread pool and koffi .async calls stay in
 * the original namespace. For long-running agents in a namespace, run the process under `ip netns exec`.
 */
export function withNetnsSync<T>(nsPath: string, fn: () => T): T {
  const path = nsPath.includes('/') ? nsPath : `/run/netns/${nsPath}`;
  const O_RDONLY_CLOEXEC = 0o2000000;
  const self = lib().open(`/proc/thread-self/ns/net`, O_RDONLY_CLOEXEC, 0);
  if (self < 0) throw failure('open /proc/thread-self/ns/net', errno());
  const target = lib().open(path, O_RDONLY_CLOEXEC, 0);
  if (target < 0) {
    const e = errno();
    lib().close(self);
    throw failure(`open netns ${path}`, e);
  }
  try {
    if (lib().setns(target, CLONE_NEWNET) < 0) {
      const e = errno();
      throw failure(`setns(${path})`, e, { featureMissing: { errnos: [22], feature: 'netns', message: 'network namespaces are not supported' } });
    }
    let result: T;
    try {
      result = fn();
    } finally {
      if (lib().setns(self, CLONE_NEWNET) < 0) {
        // Staying in the wrong namespace would silently misdirect every later call: stop here.
        throw new FeatureMissingError('netns', `setns back to the original network namespace failed (errno ${errno()})`);
      }
    }
    if (result && typeof (result as { then?: unknown }).then === 'function') {
      throw new FulcrumError('INTERNAL', 'withNetnsSync: the callback returned a promise; only synchronous work runs inside the namespace');
    }
    return result;
  } finally {
    lib().close(target);
    lib().close(self);
  }
}
