import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { KernelError, errnoFromName } from '../errors.js';
import { bytesToIp, bytesToMac, ipToBytes, type Family } from '../model/net.js';

/**
 * rtnetlink (the `netlink` package) in the network namespace of the process: links, addresses and
 * neighbours, as far as Fulcrum reads or changes them. Dumps keep the package's errors; changes
 * fail with a KernelError carrying the errno the kernel answered.
 */

export interface Link {
  index: number;
  name: string;
  /** 00:00:00:00:00:00 for a link without a hardware address. */
  mac: string;
  /** IFF_UP, IFF_LOWER_UP, IFF_RUNNING. */
  up: boolean;
  lowerUp: boolean;
  running: boolean;
}

export interface Address {
  index: number;
  address: string;
  prefix: number;
  family: Family;
  /** 253 = link, 0 = universe. */
  scope: number;
  secondary: boolean;
}

/** NUD_* (linux/neighbour.h). */
export type NeighbourState = 'incomplete' | 'reachable' | 'stale' | 'delay' | 'probe' | 'failed' | 'noarp' | 'permanent';

export interface Neighbour {
  family: Family;
  address: string;
  /** The link-layer address when it is a 6-byte one. */
  mac: string | undefined;
  states: ReadonlySet<NeighbourState>;
}

export interface AddressSpec {
  index: number;
  address: string;
  prefix: number;
  family: Family;
}

export interface NewAddressOptions {
  /** IFA_F_NODAD: no duplicate address detection (IPv6). */
  noDad?: boolean;
  /** IFA_CACHEINFO, in seconds (0xffffffff: forever). */
  lifetimes?: { preferred: number; valid: number };
}

const AF_INET = 2;
const AF_INET6 = 10;
const EIO = 5;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NEIGHBOUR_STATES: readonly NeighbourState[] = ['incomplete', 'reachable', 'stale', 'delay', 'probe', 'failed', 'noarp', 'permanent'];

const familyOf = (af: number | undefined): Family | undefined => (af === AF_INET ? 'inet' : af === AF_INET6 ? 'inet6' : undefined);
const afOf = (family: Family) => (family === 'inet' ? AF_INET : AF_INET6);

/** The netlink package reports a rejected request as text ("Request rejected: EEXIST"). */
function rejected(operation: string, e: unknown): KernelError {
  const m = /\b(E[A-Z0-9]+)\b/.exec((e as Error)?.message ?? '');
  const errno = m?.[1] ? errnoFromName(m[1]) : undefined;
  return new KernelError(operation, errno ?? EIO, undefined, { cause: e });
}

/** IPv4 addresses are IFA_LOCAL (IFA_ADDRESS is the peer, the same on a broadcast link); IPv6 only IFA_ADDRESS. */
const addressAttrs = (a: AddressSpec) => {
  const bytes = ipToBytes(a.address);
  return a.family === 'inet' ? { local: bytes, address: bytes } : { address: bytes };
};

export class Rtnetlink {
  private constructor(private readonly rt: RtNetlinkSocket) {}

  static open(): Rtnetlink {
    return new Rtnetlink(createRtNetlink());
  }

  async links(): Promise<Link[]> {
    const links = await this.rt.getLinks();
    return links.map((l) => ({
      index: l.data.index ?? 0,
      name: l.attrs.ifname ?? '',
      mac: l.attrs.address ? bytesToMac(l.attrs.address) : '00:00:00:00:00:00',
      up: Boolean(l.data.flags?.up),
      lowerUp: Boolean(l.data.flags?.lowerUp),
      running: Boolean(l.data.flags?.running),
    }));
  }

  /** IPv4 and IPv6 addresses of every link. */
  async addresses(): Promise<Address[]> {
    const all = await this.rt.getAddresses();
    return all.flatMap((a) => {
      const family = familyOf(a.data.family);
      const raw = a.attrs.local ?? a.attrs.address;
      if (!family || !raw) return [];
      return [{
        index: a.data.index ?? 0,
        address: bytesToIp(raw),
        prefix: a.data.prefixlen ?? 0,
        family,
        scope: a.data.scope ?? 0,
        secondary: Boolean(a.data.flags?.secondary),
      }];
    });
  }

  /** NLM_F_CREATE | NLM_F_EXCL: an address already present fails with EEXIST. */
  async addAddress(a: AddressSpec, options: NewAddressOptions = {}): Promise<void> {
    const { lifetimes } = options;
    try {
      await this.rt.newAddress(
        { family: afOf(a.family), prefixlen: a.prefix, index: a.index, ...(options.noDad ? { flags: { nodad: true } } : {}) },
        { ...addressAttrs(a), ...(lifetimes ? { cacheInfo: { ifaPrefered: lifetimes.preferred, ifaValid: lifetimes.valid } } : {}) },
        { flags: NLM_F_CREATE | NLM_F_EXCL },
      );
    } catch (e) {
      throw rejected(`add ${a.address}/${a.prefix} to ifindex ${a.index}`, e);
    }
  }

  async deleteAddress(a: AddressSpec): Promise<void> {
    try {
      await this.rt.delAddress({ family: afOf(a.family), prefixlen: a.prefix, index: a.index }, addressAttrs(a));
    } catch (e) {
      throw rejected(`remove ${a.address}/${a.prefix} from ifindex ${a.index}`, e);
    }
  }

  /** IPv4 and IPv6 neighbour entries that name their address. */
  async neighbours(): Promise<Neighbour[]> {
    const all = await this.rt.getNeighbors();
    return all.flatMap((n) => {
      const family = familyOf(n.data.family);
      const { dst, lladdr } = n.attrs;
      if (!family || !dst) return [];
      const state = n.data.state ?? {};
      return [{
        family,
        address: bytesToIp(dst),
        mac: lladdr?.length === 6 ? bytesToMac(lladdr) : undefined,
        states: new Set(NEIGHBOUR_STATES.filter((s) => state[s])),
      }];
    });
  }

  close(): void {
    this.rt.socket.close();
  }
}
