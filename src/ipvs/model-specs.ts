import type { Service } from '../model/schema.js';
import { canonicalIp, ipv4MaskToPrefix } from '../model/net.js';
import { IP_VS_SVC_F, IP_VS_TUNNEL_ENCAP_FLAG } from './codec.js';
import type { IpvsDestSpec, IpvsForward, IpvsServiceKey, IpvsServiceSpec } from './types.js';

/**
 * The IPVS specs of model services: a parsed Service as the kernel-independent specs of types.ts
 * (desiredOf), the identity texts of keys and destinations, and the canonical forms the planner
 * compares specs in. Pure. (Specs to and from wire messages: wire-messages.ts.)
 */

const { PERSISTENT, ONEPACKET, SCHED1, SCHED2, SCHED3 } = IP_VS_SVC_F;
/** The flags a user chooses; the rest (HASHED) belong to the kernel. SCHED1/2: sh and mh fallback / source port. */
const SVC_F_USER_MASK = PERSISTENT | ONEPACKET | SCHED1 | SCHED2 | SCHED3;

/** The netmask ipvsadm (and the kernel) take for "no grouping": /32 for IPv4, /128 for IPv6. */
function defaultNetmask(family: 'inet' | 'inet6'): number {
  return family === 'inet' ? 0xffffffff : 128;
}

function prefixToIpv4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The kernel identity of a model service. */
function serviceKeyOf(svc: Service): IpvsServiceKey {
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

function serviceSpecOf(svc: Service): IpvsServiceSpec {
  let flags = 0;
  if (svc.schedulerFlags?.fallback) flags |= SCHED1;
  if (svc.schedulerFlags?.port) flags |= SCHED2;
  let timeout = 0;
  let netmask = defaultNetmask(svc.family);
  if (svc.persistence) {
    flags |= PERSISTENT;
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

function destSpecsOf(svc: Service): IpvsDestSpec[] {
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
      dest.tunnelFlags = t.checksum === 'csum' ? IP_VS_TUNNEL_ENCAP_FLAG.CSUM : t.checksum === 'remcsum' ? IP_VS_TUNNEL_ENCAP_FLAG.REMCSUM : IP_VS_TUNNEL_ENCAP_FLAG.NOCSUM;
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
  const persistent = (flags & PERSISTENT) !== 0;
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
