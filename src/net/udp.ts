import { createSocket } from 'node:dgram';
import type { Family } from '../model/net.js';

/** The parts of a node:dgram socket Fulcrum uses. */
export interface UdpSocket {
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'message', listener: (msg: Buffer) => void): this;
  /** A connected socket receives ICMP port unreachable as ECONNREFUSED. */
  connect(port: number, address: string, connected: () => void): void;
  /** On a connected socket. */
  send(msg: Buffer, after: (error: Error | null) => void): void;
  send(msg: Buffer, port: number, address: string, after: (error: Error | null) => void): void;
  /** Throws when the socket is already closed. */
  close(): void;
}

export function udpSocket(family: Family): UdpSocket {
  return createSocket(family === 'inet' ? 'udp4' : 'udp6');
}

/** A UDP socket bound to one local address and port (the XDP flow sync's). */
export interface BoundUdpSocket {
  onMessage(listener: (msg: Buffer, from: string) => void): void;
  onError(listener: (error: Error) => void): void;
  send(msg: Buffer, port: number, address: string, after: (error: Error | null) => void): void;
  close(): Promise<void>;
}

/**
 * Binds address:port with SO_REUSEADDR, so that a replacement socket can bind before the one it
 * replaces closes (the last one bound receives); `bufferBytes` asks for larger send and receive
 * buffers (best effort).
 */
export async function bindUdpSocket(address: string, port: number, bufferBytes?: number): Promise<BoundUdpSocket> {
  const s = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address, port }, () => { s.off('error', reject); resolve(); });
  }).catch((e: unknown) => {
    s.close();
    throw e;
  });
  if (bufferBytes) {
    try {
      s.setSendBufferSize(bufferBytes);
      s.setRecvBufferSize(bufferBytes);
    } catch { /* the kernel's defaults then */ }
  }
  return {
    onMessage: (l) => { s.on('message', (msg, rinfo) => l(msg, rinfo.address)); },
    onError: (l) => { s.on('error', l); },
    send: (msg, p, a, after) => s.send(msg, p, a, after),
    close: () => new Promise<void>((resolve) => { try { s.close(() => resolve()); } catch { resolve(); } }),
  };
}
