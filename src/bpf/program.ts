import { FulcrumError } from '../errors.js';
import { checkInt } from './check.js';
import { addressOf, lib } from './ffi.js';
import { FdHandle } from './fd-handle.js';

export interface ProgramInfo {
  /** BPF_PROG_TYPE_* number (6 = XDP). */
  type: number;
  /** Kernel object id (bpftool prog show id N, `ip link` prog/xdp id N). */
  id: number;
  /** The 8-byte program tag as hex (bpftool prints it too). */
  tag: string;
  /** Kernel-side name (at most 15 bytes). */
  name: string;
}

/** struct bpf_prog_info offsets (linux/bpf.h; checked against vmlinux BTF in test/kernel). */
export const BPF_PROG_INFO_LAYOUT = { size: 80, type: 0, id: 4, tag: 8, name: 64 } as const;

export function readProgramInfo(fd: number): ProgramInfo {
  const L = BPF_PROG_INFO_LAYOUT;
  const buf = Buffer.alloc(L.size);
  checkInt('bpf_obj_get_info_by_fd(prog)', lib().bpf_obj_get_info_by_fd(fd, buf, [L.size]));
  const nameEnd = buf.indexOf(0, L.name);
  return {
    type: buf.readUInt32LE(L.type),
    id: buf.readUInt32LE(L.id),
    tag: buf.subarray(L.tag, L.tag + 8).toString('hex'),
    name: buf.subarray(L.name, nameEnd < 0 || nameEnd > L.name + 16 ? L.name + 16 : nameEnd).toString(),
  };
}

export interface TestRunOptions {
  /** The packet (for XDP: starting at the Ethernet header). */
  data: Buffer;
  /** Room for the output packet; default data.length + 256 (a program may grow the packet). */
  dataOutSize?: number;
  /** Runs of the program on the same buffer; the kernel reports the mean time per run. Default 1. */
  repeat?: number;
  /** Context in (XDP: struct xdp_md, see xdpContext()). */
  ctx?: Buffer;
  /** Room for the context out (0: none). */
  ctxOutSize?: number;
}

export interface TestRunResult {
  /** The program's return value (XDP: the verdict). */
  retval: number;
  /** Mean nanoseconds per repetition, as the kernel measured it. */
  durationNs: number;
  /** The packet after the LAST repetition. */
  data: Buffer;
  ctx?: Buffer;
}

/** struct xdp_md for test runs: data offsets are relative to the packet; ifindex/queue are optional. */
export function xdpContext(packetLength: number, opts: { ingressIfindex?: number; rxQueueIndex?: number } = {}): Buffer {
  const b = Buffer.alloc(24); // __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  b.writeUInt32LE(0, 0);
  b.writeUInt32LE(packetLength, 4);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(opts.ingressIfindex ?? 0, 12);
  b.writeUInt32LE(opts.rxQueueIndex ?? 0, 16);
  return b;
}

/**
 * A loaded BPF program, by file descriptor. A program of a BpfObject is closed with it; one opened
 * from a pin (openPinnedProgram) owns its fd.
 */
export class BpfProgram extends FdHandle {
  #info: ProgramInfo | undefined;

  /** @internal Use BpfObject.program() or openPinnedProgram(). */
  constructor(fd: number, owned: boolean, what: string) {
    super(fd, owned, what);
  }


  get info(): ProgramInfo {
    this.#info ??= readProgramInfo(this.fd);
    return { ...this.#info };
  }

  get id(): number {
    return this.info.id;
  }

  /** BPF_PROG_TEST_RUN (bpf_prog_test_run_opts). Synchronous: it blocks the event loop for repeat runs. */
  testRun(opts: TestRunOptions): TestRunResult {
    const repeat = opts.repeat ?? 1;
    if (!Number.isInteger(repeat) || repeat < 1 || repeat > 0x7fffffff) throw new FulcrumError('INVALID_REQUEST', `testRun: repeat ${repeat} is not a positive int`);
    const out = Buffer.alloc(opts.dataOutSize ?? opts.data.length + 256);
    const ctxOut = opts.ctxOutSize ? Buffer.alloc(opts.ctxOutSize) : undefined;
    const o = Buffer.alloc(80);
    o.writeBigUInt64LE(80n, 0); // sz
    o.writeBigUInt64LE(addressOf(opts.data), 8);
    o.writeBigUInt64LE(addressOf(out), 16);
    o.writeUInt32LE(opts.data.length, 24);
    o.writeUInt32LE(out.length, 28);
    o.writeBigUInt64LE(addressOf(opts.ctx), 32);
    o.writeBigUInt64LE(addressOf(ctxOut), 40);
    o.writeUInt32LE(opts.ctx?.length ?? 0, 48);
    o.writeUInt32LE(ctxOut?.length ?? 0, 52);
    o.writeInt32LE(repeat, 60);
    checkInt(`bpf_prog_test_run_opts(${this.what})`, lib().bpf_prog_test_run_opts(this.fd, o));
    const result: TestRunResult = {
      retval: o.readUInt32LE(56),
      durationNs: o.readUInt32LE(64),
      data: Buffer.from(out.subarray(0, o.readUInt32LE(28))),
    };
    if (ctxOut) result.ctx = Buffer.from(ctxOut.subarray(0, o.readUInt32LE(52)));
    return result;
  }



}
