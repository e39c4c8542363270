import { createRequire } from 'node:module';
import koffi from 'koffi';
import { EventEmitter } from 'node:events';
import { ipToBytes, type Family } from '../model/net.js';
import { FeatureMissingError, KernelError } from '../errors.js';
import { decodeIpv4, encodeIpv4, IPPROTO_VRRP, VRRP_MCAST_V4, VRRP_MCAST_V6, VRRP_TTL } from './codec.js';

/**
 * VRRP packets in and out of one interface: IP protocol 112, one raw socket per (interface,
 * family), bound with SO_BINDTODEVICE, joined to 224.0.0.18 / ff02::12 on that interface.
 *
 * IPv4: @neuralegion/raw-socket with IP_HDRINCL, so we write the header: TTL 255, TOS 0xc0 and
 * the source address the v3 checksum's pseudo-header was computed with. Received buffers carry the
 * IPv4 header, so TTL and destination are checked.
 *
 * IPv6: the same package opens AF_INET6 raw sockets; IPV6_MULTICAST_HOPS/IPV6_UNICAST_HOPS 255,
 * IPV6_MULTICAST_IF, IPV6_JOIN_GROUP and IPV6_TCLASS are plain setsockopt calls with int or Buffer
 * values. What it lacks is bind(), sendmsg() and recvmsg(): the source address is the kernel's
 * choice (the interface's link-local address; IPv6 VIPs are added deprecated so they are never
 * chosen, see kernel.ts), and an AF_INET6 raw socket delivers no IPv6 header (the hop limit only
 * arrives as IPV6_HOPLIMIT ancillary data). So the RFC's hop-limit-255 check is a classic BPF
 * socket filter (SO_ATTACH_FILTER) that reads the hop limit from the network header: the kernel
 * drops the rest before we see them (they are not in the drop counters; `ttl` is undefined).
 * The destination is taken to be ff02::12 (or our own address for unicast).
 */

export interface ReceivedPacket {
  src: string;
  dst: string;
  /** IPv4 TTL; undefined where the socket cannot see it (IPv6, see above). */
  ttl: number | undefined;
  /** The VRRP message. */
  payload: Buffer;
}

export interface TransportOptions {
  ifname: string;
  ifindex: number;
  family: Family;
  /** Source address of our adverts (the interface's primary / link-local address, or unicast.source). */
  source: string;
  /** Unicast peers configured: IPv6 adverts are then addressed to `source`. */
  unicast: boolean;
}

export interface VrrpTransport {
  readonly family: Family;
  /** Sends one VRRP message to `dst` (the group or a unicast peer) from `src`. */
  send(dst: string, src: string, vrrp: Buffer): void;
  onPacket(listener: (p: ReceivedPacket) => void): void;
  /** Send or receive failures (the socket stays open). */
  onError(listener: (e: Error) => void): void;
  close(): void;
}

export type TransportFactory = (options: TransportOptions) => VrrpTransport;

// Linux socket option numbers (asm-generic/socket.h, linux/in.h, linux/in6.h).
const SOL_SOCKET = 1;
const SO_BINDTODEVICE = 25;
const IPPROTO_IP = 0;
const IP_HDRINCL = 3;
const IP_MULTICAST_IF = 32;
const IP_MULTICAST_TTL = 33;
const IP_MULTICAST_LOOP = 34;
const IP_ADD_MEMBERSHIP = 35;
const IPPROTO_IPV6 = 41;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MULTICAST_IF = 17;
const IPV6_MULTICAST_HOPS = 18;
const IPV6_MULTICAST_LOOP = 19;
const IPV6_JOIN_GROUP = 20;
const IPV6_TCLASS = 67;

/** The parts of @neuralegion/raw-socket we use, with setOption's Buffer form its typings omit. */
interface RawSocket {
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  send(buffer: Buffer, offset: number, length: number, address: string, after: (error: Error | null, bytes: number) => void): void;
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  close(): void;
}
interface RawSocketModule {
  createSocket(options: { protocol: number; addressFamily: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
}

let rawModule: RawSocketModule | undefined;
function raw(): RawSocketModule {
  if (!rawModule) {
    try {
      rawModule = createRequire(import.meta.url)('@neuralegion/raw-socket') as RawSocketModule;
    } catch (cause) {
      throw new FeatureMissingError('raw-socket', 'the raw-socket addon (@neuralegion/raw-socket) did not load: VRRP needs raw IP sockets; reinstall Fulcrum (npm ci) for this Node.js version', { cause });
    }
  }
  return rawModule;
}

function setopt(sock: RawSocket, what: string, level: number, option: number, value: number | Buffer): void {
  try {
    if (typeof value === 'number') sock.setOption(level, option, value);
    else sock.setOption(level, option, value, value.length);
  } catch (cause) {
    const m = /\((\d+)\)|errno (\d+)/.exec((cause as Error).message);
    throw new KernelError(`setsockopt ${what}`, Number(m?.[1] ?? m?.[2] ?? 1), (cause as Error).message, { cause });
  }
}

class RawTransport implements VrrpTransport {
  private readonly events = new EventEmitter();
  private closed = false;

  constructor(readonly family: Family, private readonly sock: RawSocket, private readonly opts: TransportOptions) {
    sock.on('message', (buffer, source) => this.onMessage(buffer, source));
    sock.on('error', (e) => this.events.emit('error', e));
  }

  private onMessage(buffer: Buffer, source: string): void {
    if (this.family === 'inet') {
      let ip;
      try {
        ip = decodeIpv4(buffer);
      } catch (e) {
        this.events.emit('error', e);
        return;
      }
      if (ip.protocol !== IPPROTO_VRRP) return;
      this.events.emit('packet', { src: ip.src, dst: ip.dst, ttl: ip.ttl, payload: Buffer.from(ip.payload) } satisfies ReceivedPacket);
    } else {
      const src = source.replace(/%.*$/, '');
      const dst = this.opts.unicast ? this.opts.source : VRRP_MCAST_V6;
      this.events.emit('packet', { src, dst, ttl: undefined, payload: Buffer.from(buffer) } satisfies ReceivedPacket);
    }
  }

  send(dst: string, src: string, vrrp: Buffer): void {
    if (this.closed) return;
    const after = (error: Error | null) => { if (error) this.events.emit('error', error); };
    if (this.family === 'inet') {
      const pkt = encodeIpv4(src, dst, vrrp);
      this.sock.send(pkt, 0, pkt.length, dst, after);
    } else {
      const scoped = dst.startsWith('fe80:') || dst.startsWith('ff02:') ? `${dst}%${this.opts.ifname}` : dst;
      this.sock.send(vrrp, 0, vrrp.length, scoped, after);
    }
  }

  onPacket(listener: (p: ReceivedPacket) => void): void {
    this.events.on('packet', listener);
  }

  onError(listener: (e: Error) => void): void {
    this.events.on('error', listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}

const SO_ATTACH_FILTER = 26;

/**
 * Classic BPF: accept only packets whose IPv6 hop limit is 255 (RFC 5798 §7.1). SKF_NET_OFF
 * addresses the network header whatever the socket's data offset. setsockopt takes a
 * struct sock_fprog { u16 len; struct sock_filter *filter }: the instructions live in memory from
 * koffi.alloc, whose address goes into the Buffer; the kernel copies them during the call.
 */
function attachHopLimitFilter(sock: RawSocket): void {
  const SKF_NET_OFF = 0xfff00000;
  const insns: [number, number, number, number][] = [
    [0x30, 0, 0, SKF_NET_OFF + 7], // BPF_LD|BPF_B|BPF_ABS: the hop limit byte
    [0x15, 0, 1, VRRP_TTL], // BPF_JMP|BPF_JEQ|BPF_K
    [0x06, 0, 0, 0xffffffff], // BPF_RET: whole packet
    [0x06, 0, 0, 0], // BPF_RET: drop
  ];
  const mem = koffi.alloc('uint8_t', insns.length * 8);
  try {
    const code = Buffer.from(koffi.view(mem, insns.length * 8));
    insns.forEach(([op, jt, jf, k], i) => {
      code.writeUInt16LE(op, i * 8);
      code[i * 8 + 2] = jt;
      code[i * 8 + 3] = jf;
      code.writeUInt32LE(k >>> 0, i * 8 + 4);
    });
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(insns.length, 0);
    fprog.writeBigUInt64LE(koffi.address(mem), 8);
    setopt(sock, 'SO_ATTACH_FILTER (hop limit 255)', SOL_SOCKET, SO_ATTACH_FILTER, fprog);
  } finally {
    koffi.free(mem);
  }
}

function ifnameBuffer(ifname: string): Buffer {
  const b = Buffer.alloc(16);
  b.write(ifname, 'utf8');
  return b;
}

/** The real transport: a raw socket in the process's network namespace. */
export const rawTransportFactory: TransportFactory = (opts) => {
  const mod = raw();
  const sock = mod.createSocket({ protocol: IPPROTO_VRRP, addressFamily: opts.family === 'inet' ? mod.AddressFamily.IPv4 : mod.AddressFamily.IPv6, bufferSize: 2048 });
  try {
    setopt(sock, 'SO_BINDTODEVICE', SOL_SOCKET, SO_BINDTODEVICE, ifnameBuffer(opts.ifname));
    if (opts.family === 'inet') {
      setopt(sock, 'IP_HDRINCL', IPPROTO_IP, IP_HDRINCL, 1);
      setopt(sock, 'IP_MULTICAST_TTL', IPPROTO_IP, IP_MULTICAST_TTL, VRRP_TTL);
      setopt(sock, 'IP_MULTICAST_LOOP', IPPROTO_IP, IP_MULTICAST_LOOP, 0);
      // struct ip_mreqn { imr_multiaddr, imr_address, imr_ifindex }
      const mreqn = Buffer.alloc(12);
      mreqn.writeInt32LE(opts.ifindex, 8);
      setopt(sock, 'IP_MULTICAST_IF', IPPROTO_IP, IP_MULTICAST_IF, mreqn);
      const join = Buffer.from(mreqn);
      ipToBytes(VRRP_MCAST_V4).copy(join, 0);
      setopt(sock, 'IP_ADD_MEMBERSHIP', IPPROTO_IP, IP_ADD_MEMBERSHIP, join);
    } else {
      setopt(sock, 'IPV6_MULTICAST_HOPS', IPPROTO_IPV6, IPV6_MULTICAST_HOPS, VRRP_TTL);
      setopt(sock, 'IPV6_UNICAST_HOPS', IPPROTO_IPV6, IPV6_UNICAST_HOPS, VRRP_TTL);
      setopt(sock, 'IPV6_MULTICAST_LOOP', IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0);
      setopt(sock, 'IPV6_MULTICAST_IF', IPPROTO_IPV6, IPV6_MULTICAST_IF, opts.ifindex);
      // struct ipv6_mreq { ipv6mr_multiaddr, ipv6mr_interface }
      const mreq = Buffer.alloc(20);
      ipToBytes(VRRP_MCAST_V6).copy(mreq, 0);
      mreq.writeInt32LE(opts.ifindex, 16);
      setopt(sock, 'IPV6_JOIN_GROUP', IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq);
      setopt(sock, 'IPV6_TCLASS', IPPROTO_IPV6, IPV6_TCLASS, 0xc0);
      attachHopLimitFilter(sock);
    }
  } catch (e) {
    sock.close();
    throw e;
  }
  return new RawTransport(opts.family, sock, opts);
};
