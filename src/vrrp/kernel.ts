import { KernelError } from '../errors.js';
import type { Family } from '../model/net.js';
import { PacketSender, Rtnetlink, type AddressSpec } from '../net/index.js';

/**
 * The VRRP manager's one way into the kernel besides its raw sockets (./transport.ts): links and
 * addresses over rtnetlink, and Ethernet frames (gratuitous ARP, unsolicited NA) through an
 * AF_PACKET socket, both from src/net. Everything acts in the network namespace of the process
 * (run it under `ip netns exec` to act in another).
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

const EEXIST = 17;
const ENODEV = 19;
const EADDRNOTAVAIL = 99;

const errnoOf = (e: unknown) => (e instanceof KernelError ? e.errno : undefined);
const onLink = (index: number, vip: VipSpec): AddressSpec => ({ index, address: vip.address, prefix: vip.prefix, family: vip.family });

export class KernelHost implements VrrpHost {
  private packet: PacketSender | undefined;

  private constructor(private readonly rt: Rtnetlink) {}

  static create(): KernelHost {
    return new KernelHost(Rtnetlink.open());
  }

  async links(): Promise<LinkInfo[]> {
    return (await this.rt.links()).map((l) => ({ index: l.index, name: l.name, mac: l.mac, up: l.up && (l.lowerUp || l.running) }));
  }

  async addresses(index: number): Promise<HostAddress[]> {
    return (await this.rt.addresses())
      .filter((a) => a.index === index)
      .map(({ address, prefix, family, scope, secondary }) => ({ address, prefix, family, scope, secondary }));
  }

  async addVip(index: number, vip: VipSpec): Promise<void> {
    try {
      // IPv6 VIPs are added deprecated (preferred lifetime 0): still ours to receive on and answer
      // from, but never chosen as a source (RFC 6724 rule 3), so a link-local VIP cannot become
      // the source of our adverts (raw sockets here cannot pin the source, see transport.ts).
      await this.rt.addAddress(onLink(index, vip), vip.family === 'inet6' ? { noDad: true, lifetimes: { preferred: 0, valid: 0xffffffff } } : {});
    } catch (e) {
      if (errnoOf(e) === EEXIST) return;
      throw e;
    }
  }

  async delVip(index: number, vip: VipSpec): Promise<void> {
    try {
      await this.rt.deleteAddress(onLink(index, vip));
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === EADDRNOTAVAIL || errno === ENODEV) return; // already gone; link gone
      throw e;
    }
  }

  sendFrame(index: number, frame: Buffer): void {
    this.packet ??= PacketSender.open();
    this.packet.send(index, frame);
  }

  close(): void {
    this.packet?.close();
    this.packet = undefined;
    this.rt.close();
  }
}
