import { EventEmitter } from 'node:events';
import type { Family } from '../model/net.js';
import { ipv6HopLimitFilter, RawIpSocket } from '../net/index.js';
import { decodeIpv4, encodeIpv4, IPPROTO_VRRP, VRRP_MCAST_V4, VRRP_MCAST_V6, VRRP_TTL } from './codec.js';

/**
 * VRRP packets in and out of one interface: IP protocol 112, one raw socket per (interface,
 * family) from src/net, bound with SO_BINDTODEVICE, joined to 224.0.0.18 / ff02::12 on that
 * interface.
 *
 * IPv4: with IP_HDRINCL we write the header: TTL 255, TOS 0xc0 and the source address the v3
 * checksum's pseudo-header was computed with. Received buffers carry the IPv4 header, so TTL and
 * destination are checked.
 *
 * IPv6: hop limits 255 and traffic class 0xc0 are socket options. The raw socket cannot pin the
 * source address: it is the kernel's choice (the interface's link-local address; IPv6 VIPs are
 * added deprecated so they are never chosen, see kernel.ts). It delivers no IPv6 header, so the
 * RFC's hop-limit-255 check is a socket filter (RFC 5798 §7.1): the kernel drops the rest before
 * we see them (they are not in the drop counters; `ttl` is undefined). The destination is taken to
 * be ff02::12 (or our own address for unicast).
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

class RawTransport implements VrrpTransport {
  private readonly events = new EventEmitter();
  private closed = false;

  constructor(readonly family: Family, private readonly sock: RawIpSocket, private readonly opts: TransportOptions) {
    sock.onMessage((buffer, source) => this.onMessage(buffer, source));
    sock.onError((e) => this.events.emit('error', e));
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
      this.sock.send(pkt, dst, after);
    } else {
      const scoped = dst.startsWith('fe80:') || dst.startsWith('ff02:') ? `${dst}%${this.opts.ifname}` : dst;
      this.sock.send(vrrp, scoped, after);
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

/** The real transport: a raw socket in the process's network namespace. */
export const rawTransportFactory: TransportFactory = (opts) => {
  const sock = RawIpSocket.open({ family: opts.family, protocol: IPPROTO_VRRP, bufferSize: 2048 });
  try {
    sock.bindToDevice(opts.ifname);
    if (opts.family === 'inet') {
      sock.includeIpHeader();
      sock.multicastHops(VRRP_TTL);
      sock.multicastLoop(false);
      sock.multicastInterface(opts.ifindex);
      sock.joinGroup(VRRP_MCAST_V4, opts.ifindex);
    } else {
      sock.multicastHops(VRRP_TTL);
      sock.unicastHops(VRRP_TTL);
      sock.multicastLoop(false);
      sock.multicastInterface(opts.ifindex);
      sock.joinGroup(VRRP_MCAST_V6, opts.ifindex);
      sock.trafficClass(0xc0);
      sock.attachFilter(ipv6HopLimitFilter(VRRP_TTL));
    }
  } catch (e) {
    sock.close();
    throw e;
  }
  return new RawTransport(opts.family, sock, opts);
};
