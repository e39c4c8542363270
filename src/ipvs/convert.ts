import type { Service } from '../model/schema.js';
import { canonicalIp, ipv4MaskToPrefix } from '../model/net.js';
import type { IpvsDestSpec, IpvsForward, IpvsServiceKey, IpvsServiceSpec } from './types.js';

/**
 * Converters between the model (a parsed Service) and the kernel-independent IPVS specs, plus the
 * canonical forms the planner compares. Pure.
 */

// include/uapi/linux/ip_vs.h, IP_VS_SVC_F_*.
export const SVC_F_PERSISTENT = 0x0001;
export const SVC_F_HASHED = 0x0002; // set by the kernel on every hashed service: never desired, never compared
export const SVC_F_ONEPACKET = 0x0004;
export const SVC_F_SCHED1 = 0x0008; // sh/mh: fallback
export const SVC_F_SCHED2 = 0x0010; // sh/mh: hash the source port too
export const SVC_F_SCHED3 = 0x0020;
/** The flags a user chooses; the rest belong to the kernel. */
export const SVC_F_USER_MASK = SVC_F_PERSISTENT | SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

// IP_VS_TUNNEL_ENCAP_FLAG_*.
export const TUN_F_CSUM = 0x1;
export const TUN_F_REMCSUM = 0x2;

/** The netmask ipvsadm (and the kernel) take for "no grouping": /32 for IPv4, /128 for IPv6. */
export function defaultNetmask(family: 'inet' | 'inet6'): number {
  return family === 'inet' ? 0xffffffff : 128;
}

function prefixToIpv4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The kernel identity of a model service. */
export function serviceKeyOf(svc: Service): IpvsServiceKey {
  if (svc.fwmark !== undefined) return { family: svc.family, fwmark: svc.fwmark };
  return { family: svc.family, protocol: svc.protocol, address: canonicalIp(svc.address ?? ''), port: svc.port ?? 0 };
}

// Addresses reaching these helpers are canonical already (the model canonicalises its input, the
// codec formats kernel bytes canonically), so they are only bracketed, not re-parsed: they run
// for every step of a 100k-step plan.
function endpointText(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** "tcp 10.0.0.1:80", "udp [2001:db8::1]:53", "fwmark 7 inet": the same text as model serviceKey(). */
export function keyString(key: IpvsServiceKey): string {
  if (key.fwmark !== undefined) return `fwmark ${key.fwmark} ${key.family}`;
  return `${key.protocol} ${endpointText(key.address, key.port)}`;
}

export function serviceSpecOf(svc: Service): IpvsServiceSpec {
  let flags = 0;
  if (svc.schedulerFlags?.fallback) flags |= SVC_F_SCHED1;
  if (svc.schedulerFlags?.port) flags |= SVC_F_SCHED2;
  let timeout = 0;
  let netmask = defaultNetmask(svc.family);
  if (svc.persistence) {
    flags |= SVC_F_PERSISTENT;
    timeout = svc.persistence.timeout;
    const m = svc.persistence.netmask;
    if (m !== undefined) {
      if (svc.family === 'inet6') netmask = typeof m === 'number' ? m : 128;
      else netmask = typeof m === 'number' ? prefixToIpv4Mask(m) : prefixToIpv4Mask(ipv4MaskToPrefix(m) ?? 32);
    }
  }
  return { key: serviceKeyOf(svc), scheduler: svc.scheduler, flags, timeout, netmask };
}

const FORWARD: Record<Service['forwarding'], IpvsForward> = { nat: 'masq', dr: 'route', tunnel: 'tunnel' };

export function destSpecsOf(svc: Service): IpvsDestSpec[] {
  const forward = FORWARD[svc.forwarding];
  return svc.backends.map((b) => {
    const dest: IpvsDestSpec = {
      address: canonicalIp(b.address),
      port: b.port,
      family: b.address.includes(':') ? 'inet6' : 'inet',
      forward,
      weight: b.weight,
      upperThreshold: b.upperThreshold,
      lowerThreshold: b.lowerThreshold,
    };
    if (forward === 'tunnel') {
      const t = svc.tunnel ?? { type: 'ipip' as const, checksum: 'none' as const };
      dest.tunnelType = t.type;
      dest.tunnelPort = t.type === 'gue' ? t.port ?? 0 : 0;
      dest.tunnelFlags = t.checksum === 'csum' ? TUN_F_CSUM : t.checksum === 'remcsum' ? TUN_F_REMCSUM : 0;
    }
    return dest;
  });
}

/** A model service as the reconciler wants it in the kernel. */
export interface DesiredIpvsService {
  name: string;
  spec: IpvsServiceSpec;
  dests: IpvsDestSpec[];
}

export function desiredOf(svc: Service): DesiredIpvsService {
  return { name: svc.name, spec: serviceSpecOf(svc), dests: destSpecsOf(svc) };
}

/** "10.0.1.1:80" / "[2001:db8::2]:80": a destination's identity within its service. */
export function destId(d: { address: string; port: number }): string {
  return endpointText(d.address, d.port);
}

/** Service attributes the kernel lets us edit in place, normalised for comparison. */
export function comparableService(spec: IpvsServiceSpec): { scheduler: string; flags: number; timeout: number; netmask: number; pe: string } {
  const flags = spec.flags & SVC_F_USER_MASK;
  const persistent = (flags & SVC_F_PERSISTENT) !== 0;
  // Timeout and netmask only mean something for a persistent service.
  return {
    scheduler: spec.scheduler,
    flags,
    timeout: persistent ? spec.timeout : 0,
    netmask: persistent ? spec.netmask : 0,
    pe: spec.pe ?? '',
  };
}

export function sameService(a: IpvsServiceSpec, b: IpvsServiceSpec): boolean {
  const x = comparableService(a), y = comparableService(b);
  return x.scheduler === y.scheduler && x.flags === y.flags && x.timeout === y.timeout && x.netmask === y.netmask && x.pe === y.pe;
}

export function sameDest(a: IpvsDestSpec, b: IpvsDestSpec): boolean {
  if (a.forward !== b.forward || a.weight !== b.weight || a.upperThreshold !== b.upperThreshold || a.lowerThreshold !== b.lowerThreshold)
    return false;
  if (a.forward !== 'tunnel') return true;
  return (a.tunnelType ?? 'ipip') === (b.tunnelType ?? 'ipip') && (a.tunnelPort ?? 0) === (b.tunnelPort ?? 0) && (a.tunnelFlags ?? 0) === (b.tunnelFlags ?? 0);
}

/** Only the fields of a destination spec (drops counters of an observed IpvsDest). */
export function destSpecOnly(d: IpvsDestSpec): IpvsDestSpec {
  const out: IpvsDestSpec = {
    address: d.address, port: d.port, family: d.family, forward: d.forward, weight: d.weight,
    upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold,
  };
  if (d.forward === 'tunnel') {
    out.tunnelType = d.tunnelType ?? 'ipip';
    out.tunnelPort = d.tunnelPort ?? 0;
    out.tunnelFlags = d.tunnelFlags ?? 0;
  }
  return out;
}

/** Only the fields of a service spec (drops stats and the kernel's HASHED flag). */
export function serviceSpecOnly(s: IpvsServiceSpec): IpvsServiceSpec {
  const out: IpvsServiceSpec = { key: s.key, scheduler: s.scheduler, flags: s.flags & SVC_F_USER_MASK, timeout: s.timeout, netmask: s.netmask };
  if (s.pe) out.pe = s.pe;
  return out;
}
