import koffi from 'koffi';
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { KernelError, errnoFromName } from '../errors.js';
import { bytesToIp, bytesToMac, ipToBytes, type Family } from '../model/net.js';

/**
 * The VRRP manager's one way into the kernel besides its raw sockets (./transport.ts): links and
 * addresses over rtnetlink (the `netlink` package), and Ethernet frames (gratuitous ARP,
 * unsolicited NA) through an AF_PACKET socket opened with libc via koffi. Everything acts in the
 * network namespace of the process (run it under `ip netns exec` to act in another).
 */

export interface LinkInfo {
  index: number;
  name: string;
  mac: string;
  /** Administratively up and carrier present (IFF_UP and IFF_LOWER_UP/RUNNING). */
  up: boolean;
}

export interface HostAddress {
  address: string;
  prefix: number;
  family: Family;
  /** 253 = link, 0 = universe. */
  scope: number;
  secondary: boolean;
}

export interface VipSpec {
  address: string;
  prefix: number;
  family: Family;
}

export interface VrrpHost {
  links(): Promise<LinkInfo[]>;
  addresses(index: number): Promise<HostAddress[]>;
  /** Adds the VIP; already present is not an error. */
  addVip(index: number, vip: VipSpec): Promise<void>;
  /** Removes the VIP; already absent is not an error. */
  delVip(index: number, vip: VipSpec): Promise<void>;
  /** Sends a whole Ethernet frame out of the interface. */
  sendFrame(index: number, frame: Buffer): void;
  close(): void;
}

const AF_INET = 2;
const AF_INET6 = 10;
const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;

const macText = (b: Buffer | undefined) => (b ? bytesToMac(b) : '00:00:00:00:00:00');

/** "Request rejected: EEXIST" -> errno (the netlink package reports errors as text). */
function errnoOf(e: unknown): number | undefined {
  const m = /\b(E[A-Z0-9]+)\b/.exec((e as Error)?.message ?? '');
  return m?.[1] ? errnoFromName(m[1]) : undefined;
}

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number) => number;
  close: (fd: number) => number;
}
let libc: Libc | undefined;
function loadLibc(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      socket: lib.func('int socket(int, int, int)') as Libc['socket'],
      sendto: lib.func('long sendto(int, const void *, size_t, int, const void *, uint32_t)') as Libc['sendto'],
      close: lib.func('int close(int)') as Libc['close'],
    };
  }
  return libc;
}

export class KernelHost implements VrrpHost {
  private packetFd = -1;

  private constructor(private readonly rt: RtNetlinkSocket) {}

  static create(): KernelHost {
    return new KernelHost(createRtNetlink());
  }

  async links(): Promise<LinkInfo[]> {
    const links = await this.rt.getLinks();
    return links.map((l) => ({
      index: l.data.index ?? 0,
      name: l.attrs.ifname ?? '',
      mac: macText(l.attrs.address),
      up: Boolean(l.data.flags?.up && (l.data.flags.lowerUp || l.data.flags.running)),
    }));
  }

  async addresses(index: number): Promise<HostAddress[]> {
    const all = await this.rt.getAddresses();
    return all
      .filter((a) => a.data.index === index && (a.data.family === AF_INET || a.data.family === AF_INET6))
      .flatMap((a) => {
        const raw = a.attrs.local ?? a.attrs.address;
        if (!raw) return [];
        return [{
          address: bytesToIp(raw),
          prefix: a.data.prefixlen ?? 0,
          family: a.data.family === AF_INET ? 'inet' as const : 'inet6' as const,
          scope: a.data.scope ?? 0,
          secondary: Boolean(a.data.flags?.secondary),
        }];
      });
  }

  async addVip(index: number, vip: VipSpec): Promise<void> {
    const bytes = ipToBytes(vip.address);
    try {
      await this.rt.newAddress(
        { family: vip.family === 'inet' ? AF_INET : AF_INET6, prefixlen: vip.prefix, index, ...(vip.family === 'inet6' ? { flags: { nodad: true } } : {}) },
        // IPv6 VIPs are added deprecated (preferred lifetime 0): still ours to receive on and answer
        // from, but never chosen as a source (RFC 6724 rule 3), so a link-local VIP cannot become
        // the source of our adverts (raw sockets here cannot pin the source, see transport.ts).
        vip.family === 'inet' ? { local: bytes, address: bytes } : { address: bytes, cacheInfo: { ifaPrefered: 0, ifaValid: 0xffffffff } },
        // NLM_F_CREATE | NLM_F_EXCL: a present address answers EEXIST, which is success here.
        { flags: 0x400 | 0x200 },
      );
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === 17) return; // EEXIST
      throw new KernelError(`add ${vip.address}/${vip.prefix} to ifindex ${index}`, errno ?? 5, undefined, { cause: e });
    }
  }

  async delVip(index: number, vip: VipSpec): Promise<void> {
    const bytes = ipToBytes(vip.address);
    try {
      await this.rt.delAddress(
        { family: vip.family === 'inet' ? AF_INET : AF_INET6, prefixlen: vip.prefix, index },
        vip.family === 'inet' ? { local: bytes, address: bytes } : { address: bytes },
      );
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === 99 || errno === 19) return; // EADDRNOTAVAIL: already gone; ENODEV: link gone
      throw new KernelError(`remove ${vip.address}/${vip.prefix} from ifindex ${index}`, errno ?? 5, undefined, { cause: e });
    }
  }

  sendFrame(index: number, frame: Buffer): void {
    const c = loadLibc();
    if (this.packetFd < 0) {
      // Protocol 0: a send-only packet socket (receives nothing, so no queue to drain).
      const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      if (fd < 0) throw new KernelError('socket(AF_PACKET)', koffi.errno());
      this.packetFd = fd;
    }
    // struct sockaddr_ll: family, protocol (BE), ifindex, hatype, pkttype, halen, addr[8].
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(frame.readUInt16BE(12), 2);
    sll.writeInt32LE(index, 4);
    sll[11] = 6;
    frame.copy(sll, 12, 0, 6);
    const n = c.sendto(this.packetFd, frame, frame.length, 0, sll, sll.length);
    if (n < 0) throw new KernelError(`sendto(AF_PACKET, ifindex ${index})`, koffi.errno());
  }

  close(): void {
    if (this.packetFd >= 0) loadLibc().close(this.packetFd);
    this.packetFd = -1;
    this.rt.socket.close();
  }
}
