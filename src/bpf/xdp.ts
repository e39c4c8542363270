import { KernelError } from '../errors.js';
import { failure } from './check.js';
import { XdpAttached, XdpFlags } from './constants.js';
import { lib } from './ffi.js';
import { clearLibbpfLog, ensurePrintHook, recentLibbpfLog } from './log.js';
import type { BpfProgram } from './program.js';
import { ifIndex } from './sys.js';

/** native = driver mode (XDP_FLAGS_DRV_MODE), generic = skb mode, offload = NIC, auto = kernel picks. */
export type XdpMode = 'native' | 'generic' | 'offload' | 'auto';

const MODE_FLAGS: Record<XdpMode, number> = {
  native: XdpFlags.DRV_MODE,
  generic: XdpFlags.SKB_MODE,
  offload: XdpFlags.HW_MODE,
  auto: 0,
};

const EBUSY = 16, EEXIST = 17, EOPNOTSUPP = 95, ENOTSUPP = 524;

export interface XdpAttachOptions {
  mode: XdpMode;
  /**
   * 'fail-if-attached' (XDP_FLAGS_UPDATE_IF_NOEXIST): EBUSY when a program is attached already.
   * 'replace-any': swap whatever is attached in this mode.
   * A BpfProgram: atomically replace exactly that program (XDP_FLAGS_REPLACE + old_prog_fd); EEXIST
   * if something else is attached. Default 'replace-any'.
   */
  existing?: 'fail-if-attached' | 'replace-any' | BpfProgram;
}

function attachOpts(oldFd: number): Buffer {
  // struct bpf_xdp_attach_opts { size_t sz; int old_prog_fd; size_t :0; } (16 bytes)
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(16n, 0);
  b.writeInt32LE(oldFd, 8);
  return b;
}

function resolve(dev: string | number): { ifindex: number; name: string } {
  ensurePrintHook(); // the kernel's extack reaches us through libbpf's log
  return typeof dev === 'number' ? { ifindex: dev, name: `ifindex ${dev}` } : { ifindex: ifIndex(dev), name: dev };
}

/** Attaches `prog` to a device (name or ifindex, in the calling thread's netns) through netlink. */
export function attachXdp(dev: string | number, prog: BpfProgram, opts: XdpAttachOptions): void {
  const { ifindex, name } = resolve(dev);
  let flags = MODE_FLAGS[opts.mode];
  let o: Buffer | null = null;
  const existing = opts.existing ?? 'replace-any';
  if (existing === 'fail-if-attached') flags |= XdpFlags.UPDATE_IF_NOEXIST;
  else if (existing !== 'replace-any') {
    flags |= XdpFlags.REPLACE;
    o = attachOpts(existing.fd);
  }
  clearLibbpfLog();
  const ret = lib().bpf_xdp_attach(ifindex, prog.fd, flags, o);
  if (ret < 0) {
    const e = -ret;
    const op = `bpf_xdp_attach(${name}, ${opts.mode})`;
    const kernelSays = extack();
    if (e === EOPNOTSUPP || e === ENOTSUPP) {
      throw failure(op, e, {
        featureMissing: { errnos: [e], feature: `xdp-${opts.mode}`, message: `${name} does not support ${opts.mode} XDP${kernelSays ? ` (${kernelSays})` : ''}` },
      });
    }
    let ours: string | undefined;
    if (e === EBUSY && existing === 'fail-if-attached') ours = 'a program is already attached';
    else if (e === EEXIST && typeof existing === 'object') ours = 'the attached program is not the one to replace';
    const meaning = [ours, kernelSays && `kernel: ${kernelSays}`].filter(Boolean).join('; ');
    throw meaning ? withMeaning(op, e, meaning) : failure(op, e);
  }
}

/** The kernel's netlink extended ack for the last call, as libbpf logged it (e.g. "Native and generic XDP can't be active at the same time"). */
function extack(): string | undefined {
  const prefix = 'libbpf: Kernel error message: ';
  const line = recentLibbpfLog().reverse().find((l) => l.startsWith(prefix));
  return line?.slice(prefix.length);
}

function withMeaning(op: string, e: number, meaning: string): KernelError {
  return new KernelError(op, e, meaning);
}

/**
 * Detaches the XDP program of `mode` from a device. With `expected`, only if that program is the one
 * attached (XDP_FLAGS_REPLACE semantics: EEXIST otherwise). Detaching when nothing is attached succeeds.
 */
export function detachXdp(dev: string | number, opts: { mode: XdpMode; expected?: BpfProgram }): void {
  const { ifindex, name } = resolve(dev);
  let flags = MODE_FLAGS[opts.mode];
  let o: Buffer | null = null;
  if (opts.expected) {
    flags |= XdpFlags.REPLACE;
    o = attachOpts(opts.expected.fd);
  }
  clearLibbpfLog();
  const ret = lib().bpf_xdp_detach(ifindex, flags, o);
  if (ret < 0) {
    const kernelSays = extack();
    const ours = -ret === EEXIST && opts.expected ? 'the attached program is not the expected one' : undefined;
    const meaning = [ours, kernelSays && `kernel: ${kernelSays}`].filter(Boolean).join('; ');
    if (meaning) throw withMeaning(`bpf_xdp_detach(${name}, ${opts.mode})`, -ret, meaning);
    throw failure(`bpf_xdp_detach(${name}, ${opts.mode})`, -ret);
  }
}

export interface XdpState {
  /** 'none', or which mode the one attached program runs in ('multi': several modes at once). */
  attachMode: 'none' | 'native' | 'generic' | 'offload' | 'multi';
  /** Program id when exactly one is attached (0 otherwise). */
  progId: number;
  nativeProgId: number;
  genericProgId: number;
  offloadProgId: number;
}

const ATTACH_MODES: Record<number, XdpState['attachMode']> = {
  [XdpAttached.NONE]: 'none', [XdpAttached.DRV]: 'native', [XdpAttached.SKB]: 'generic', [XdpAttached.HW]: 'offload', [XdpAttached.MULTI]: 'multi',
};

/** What is attached to a device (bpf_xdp_query over netlink). */
export function queryXdp(dev: string | number): XdpState {
  const { ifindex, name } = resolve(dev);
  // struct bpf_xdp_query_opts { size_t sz; __u32 prog_id, drv_prog_id, hw_prog_id, skb_prog_id; __u8 attach_mode; size_t :0; } (32 bytes)
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  const ret = lib().bpf_xdp_query(ifindex, 0, b);
  if (ret < 0) throw failure(`bpf_xdp_query(${name})`, -ret);
  return {
    attachMode: ATTACH_MODES[b.readUInt8(24)] ?? 'multi',
    progId: b.readUInt32LE(8),
    nativeProgId: b.readUInt32LE(12),
    offloadProgId: b.readUInt32LE(16),
    genericProgId: b.readUInt32LE(20),
  };
}
