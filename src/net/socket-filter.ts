import * as koffi from 'koffi';

/** A classic BPF program for SO_ATTACH_FILTER: struct sock_filter { u16 code; u8 jt; u8 jf; u32 k }. */
export interface SocketFilter {
  /** What it accepts, for error messages. */
  readonly description: string;
  readonly instructions: ReadonlyArray<readonly [code: number, jt: number, jf: number, k: number]>;
}

/** SKF_NET_OFF: loads relative to the network header, whatever the socket's data offset. */
const SKF_NET_OFF = 0xfff00000;
const IPV6_HOP_LIMIT_OFFSET = 7;

/** Accepts only IPv6 packets whose hop limit is `hopLimit`: an AF_INET6 raw socket cannot see it. */
export function ipv6HopLimitFilter(hopLimit: number): SocketFilter {
  return {
    description: `hop limit ${hopLimit}`,
    instructions: [
      [0x30, 0, 0, SKF_NET_OFF + IPV6_HOP_LIMIT_OFFSET], // BPF_LD|BPF_B|BPF_ABS: the hop limit byte
      [0x15, 0, 1, hopLimit], // BPF_JMP|BPF_JEQ|BPF_K
      [0x06, 0, 0, 0xffffffff], // BPF_RET: whole packet
      [0x06, 0, 0, 0], // BPF_RET: drop
    ],
  };
}

/**
 * Calls `attach` with a struct sock_fprog { u16 len; struct sock_filter *filter } for the program.
 * The instructions live in memory from koffi.alloc whose address goes into the Buffer, valid only
 * during the call (the kernel copies them in setsockopt).
 */
export function withFilterProgram(filter: SocketFilter, attach: (fprog: Buffer) => void): void {
  const { instructions } = filter;
  const mem = koffi.alloc('uint8_t', instructions.length * 8);
  try {
    const code = Buffer.from(koffi.view(mem, instructions.length * 8));
    instructions.forEach(([op, jt, jf, k], i) => {
      code.writeUInt16LE(op, i * 8);
      code[i * 8 + 2] = jt;
      code[i * 8 + 3] = jf;
      code.writeUInt32LE(k >>> 0, i * 8 + 4);
    });
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(instructions.length, 0);
    fprog.writeBigUInt64LE(koffi.address(mem), 8);
    attach(fprog);
  } finally {
    koffi.free(mem);
  }
}
