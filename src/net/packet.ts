import { KernelError } from '../errors.js';
import { errno, libc } from '../bpf/libc.js';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const ETH_ALEN = 6;

/**
 * A send-only AF_PACKET socket (protocol 0: it receives nothing, so there is no queue to drain):
 * whole Ethernet frames out of any interface of the process's network namespace.
 */
export class PacketSender {
  private constructor(private fd: number) {}

  static open(): PacketSender {
    const fd = libc().socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) throw new KernelError('socket(AF_PACKET)', errno());
    return new PacketSender(fd);
  }

  /** Sends `frame` (destination MAC, source MAC, EtherType, payload) as it is. */
  send(ifindex: number, frame: Buffer): void {
    // struct sockaddr_ll: family, protocol (BE), ifindex, hatype, pkttype, halen, addr[8].
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(frame.readUInt16BE(12), 2);
    sll.writeInt32LE(ifindex, 4);
    sll[11] = ETH_ALEN;
    frame.copy(sll, 12, 0, ETH_ALEN);
    const n = libc().sendto(this.fd, frame, frame.length, 0, sll, sll.length) as number;
    if (n < 0) throw new KernelError(`sendto(AF_PACKET, ifindex ${ifindex})`, errno());
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }
}
