import { KernelError } from '../errors.js';
import { failure } from './check.js';
import { XdpAttached, XdpFlags } from './constants.js';
import { lib } from './ffi.js';
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
  const ret = lib().bpf_xdp_attach(ifindex, prog.fd, flags, o);
  if (ret < 0) {
    const e = -ret;
    const op = `bpf_xdp_attach(${name}, ${opts.mode})`;
    if (e === EBUSY && existing === 'fail-if-attached') throw withMeaning(op, e, 'a program is already attached');
    if (e === EEXIST && typeof existing === 'object') throw withMeaning(op, e, 'the attached program is not the one to replace');
    throw failure(op, e, {
      featureMissing: { errnos: [EOPNOTSUPP, ENOTSUPP], feature: `xdp-${opts.mode}`, message: `${name} does not support ${opts.mode} XDP` },
    });
  }
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
  const ret = lib().bpf_xdp_detach(ifindex, flags, o);
  if (ret < 0) {
    if (-ret === EEXIST && opts.expected) throw withMeaning(`bpf_xdp_detach(${name})`, -ret, 'the attached program is not the expected one');
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
