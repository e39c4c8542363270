import { createRequire } from 'node:module';
import { FeatureMissingError, KernelError } from '../errors.js';
import { ipToBytes, type Family } from '../model/net.js';
import { withFilterProgram, type SocketFilter } from './socket-filter.js';

/**
 * Raw IP sockets of one IP protocol, through @neuralegion/raw-socket (loaded on first use, so that
 * a missing addon fails only what needs it). The addon opens AF_INET and AF_INET6 raw sockets and
 * sets options with int or Buffer values; it has no bind(), sendmsg() or recvmsg(): the source
 * address of an IPv6 packet is the kernel's choice, and an AF_INET6 raw socket delivers no IPv6
 * header (a check on it needs a socket filter, ./socket-filter.ts). IPv4 with IP_HDRINCL writes
 * and receives the whole header.
 */

// Linux socket option numbers (asm-generic/socket.h, linux/in.h, linux/in6.h).
const SOL_SOCKET = 1;
const SO_BINDTODEVICE = 25;
const SO_ATTACH_FILTER = 26;
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
const IFNAMSIZ = 16;

/** The parts of @neuralegion/raw-socket we use, with setOption's Buffer form its typings omit. */
interface AddonSocket {
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  send(buffer: Buffer, offset: number, length: number, address: string, after: (error: Error | null, bytes: number) => void): void;
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  close(): void;
}
interface AddonModule {
  createSocket(options: { protocol: number; addressFamily: number; bufferSize?: number }): AddonSocket;
  AddressFamily: { IPv4: number; IPv6: number };
}

let addon: AddonModule | undefined;
function rawSocketAddon(): AddonModule {
  if (!addon) {
    try {
      addon = createRequire(import.meta.url)('@neuralegion/raw-socket') as AddonModule;
    } catch (cause) {
      throw new FeatureMissingError('raw-socket', 'the raw-socket addon (@neuralegion/raw-socket) did not load: VRRP needs raw IP sockets; reinstall Fulcrum (npm ci) for this Node.js version', { cause });
    }
  }
  return addon;
}

export interface RawIpOptions {
  family: Family;
  protocol: number;
  /** Receive buffer of the addon, in bytes. */
  bufferSize: number;
}

/** One raw IP socket. The option setters throw KernelError naming the option. */
export class RawIpSocket {
  private constructor(readonly family: Family, private readonly sock: AddonSocket) {}

  static open(o: RawIpOptions): RawIpSocket {
    const mod = rawSocketAddon();
    const sock = mod.createSocket({ protocol: o.protocol, addressFamily: o.family === 'inet' ? mod.AddressFamily.IPv4 : mod.AddressFamily.IPv6, bufferSize: o.bufferSize });
    return new RawIpSocket(o.family, sock);
  }

  private setopt(what: string, level: number, option: number, value: number | Buffer): void {
    try {
      if (typeof value === 'number') this.sock.setOption(level, option, value);
      else this.sock.setOption(level, option, value, value.length);
    } catch (cause) {
      const m = /\((\d+)\)|errno (\d+)/.exec((cause as Error).message);
      throw new KernelError(`setsockopt ${what}`, Number(m?.[1] ?? m?.[2] ?? 1), (cause as Error).message, { cause });
    }
  }

  bindToDevice(ifname: string): void {
    const name = Buffer.alloc(IFNAMSIZ);
    name.write(ifname, 'utf8');
    this.setopt('SO_BINDTODEVICE', SOL_SOCKET, SO_BINDTODEVICE, name);
  }

  /** IPv4: we write the IP header of what we send. */
  includeIpHeader(): void {
    this.setopt('IP_HDRINCL', IPPROTO_IP, IP_HDRINCL, 1);
  }

  multicastHops(hops: number): void {
    if (this.family === 'inet') this.setopt('IP_MULTICAST_TTL', IPPROTO_IP, IP_MULTICAST_TTL, hops);
    else this.setopt('IPV6_MULTICAST_HOPS', IPPROTO_IPV6, IPV6_MULTICAST_HOPS, hops);
  }

  /** IPv6 (IPv4 unicast TTL goes in the header we write). */
  unicastHops(hops: number): void {
    this.setopt('IPV6_UNICAST_HOPS', IPPROTO_IPV6, IPV6_UNICAST_HOPS, hops);
  }

  multicastLoop(on: boolean): void {
    if (this.family === 'inet') this.setopt('IP_MULTICAST_LOOP', IPPROTO_IP, IP_MULTICAST_LOOP, on ? 1 : 0);
    else this.setopt('IPV6_MULTICAST_LOOP', IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on ? 1 : 0);
  }

  multicastInterface(ifindex: number): void {
    if (this.family === 'inet') this.setopt('IP_MULTICAST_IF', IPPROTO_IP, IP_MULTICAST_IF, ipMreqn('0.0.0.0', ifindex));
    else this.setopt('IPV6_MULTICAST_IF', IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex);
  }

  joinGroup(group: string, ifindex: number): void {
    if (this.family === 'inet') {
      this.setopt('IP_ADD_MEMBERSHIP', IPPROTO_IP, IP_ADD_MEMBERSHIP, ipMreqn(group, ifindex));
    } else {
      // struct ipv6_mreq { ipv6mr_multiaddr, ipv6mr_interface }
      const mreq = Buffer.alloc(20);
      ipToBytes(group).copy(mreq, 0);
      mreq.writeInt32LE(ifindex, 16);
      this.setopt('IPV6_JOIN_GROUP', IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq);
    }
  }

  /** IPv6 (IPv4's TOS goes in the header we write). */
  trafficClass(tclass: number): void {
    this.setopt('IPV6_TCLASS', IPPROTO_IPV6, IPV6_TCLASS, tclass);
  }

  attachFilter(filter: SocketFilter): void {
    withFilterProgram(filter, (fprog) => this.setopt(`SO_ATTACH_FILTER (${filter.description})`, SOL_SOCKET, SO_ATTACH_FILTER, fprog));
  }

  /** `address` may carry a zone (fe80::1%eth0). */
  send(packet: Buffer, address: string, after: (error: Error | null) => void): void {
    this.sock.send(packet, 0, packet.length, address, after);
  }

  /** Each packet received, with its source address (IPv6: with a zone). */
  onMessage(listener: (packet: Buffer, source: string) => void): void {
    this.sock.on('message', listener);
  }

  onError(listener: (error: Error) => void): void {
    this.sock.on('error', listener);
  }

  close(): void {
    this.sock.close();
  }
}

/** struct ip_mreqn { imr_multiaddr, imr_address (any), imr_ifindex } */
function ipMreqn(group: string, ifindex: number): Buffer {
  const mreqn = Buffer.alloc(12);
  ipToBytes(group).copy(mreqn, 0);
  mreqn.writeInt32LE(ifindex, 8);
  return mreqn;
}
