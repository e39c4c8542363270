import type { VrrpInstance } from '../model/vrrp.js';
import { passwordAuthData, VRRP_MCAST_V4, VRRP_MCAST_V6, type VrrpAdvert } from './codec.js';
import type { HostAddress } from './kernel.js';
import type { MachineConfig, ReceiveCheckConfig } from './machine.js';

/**
 * What one instance sends and accepts, derived from its spec and the addresses of its interface.
 * Pure.
 */

/** The addresses of the interface that are ours (not VIPs): adverts from them are our own. */
export function ownAddresses(cfg: VrrpInstance, addrs: readonly HostAddress[]): string[] {
  const vips = new Set(cfg.vips.map((v) => v.address));
  const own = addrs.map((a) => a.address).filter((a) => !vips.has(a));
  if (cfg.unicast?.source && !own.includes(cfg.unicast.source)) own.push(cfg.unicast.source);
  return own;
}

/**
 * The advert source: unicast.source, else the interface's primary IPv4 address or (IPv6, RFC 5798
 * §5.1.2.1) its link-local address; undefined when it has none.
 */
export function advertSource(cfg: VrrpInstance, addrs: readonly HostAddress[]): string | undefined {
  const vips = new Set(cfg.vips.map((v) => v.address));
  const primary =
    cfg.family === 'inet'
      ? addrs.find((a) => a.family === 'inet' && !a.secondary && !vips.has(a.address))?.address
      : addrs.find((a) => a.family === 'inet6' && a.scope === 253 && !vips.has(a.address))?.address;
  return cfg.unicast?.source ?? primary;
}

/** The unicast peers, or the VRRP multicast group of the family. */
export function advertDestinations(cfg: VrrpInstance): string[] {
  return cfg.unicast?.peers ?? [cfg.family === 'inet' ? VRRP_MCAST_V4 : VRRP_MCAST_V6];
}

const advertIntervalCs = (cfg: VrrpInstance): number => Math.round(cfg.advertInterval * 100);
const authType = (cfg: VrrpInstance): 0 | 1 => (cfg.auth.type === 'pass' ? 1 : 0);
const authData = (cfg: VrrpInstance): Buffer => (cfg.auth.type === 'pass' ? passwordAuthData(cfg.auth.password) : Buffer.alloc(8));

export function machineConfig(cfg: VrrpInstance, source: string): MachineConfig {
  return {
    version: cfg.version, vrid: cfg.vrid, priority: cfg.priority, advertIntervalCs: advertIntervalCs(cfg), preempt: cfg.preempt,
    preemptDelayMs: cfg.preemptDelay * 1000, primaryAddress: source,
  };
}

/** The advert that carries `priority`. */
export function advertOf(cfg: VrrpInstance, priority: number): VrrpAdvert {
  return {
    version: cfg.version, vrid: cfg.vrid, priority, family: cfg.family,
    interval: cfg.version === 3 ? advertIntervalCs(cfg) : cfg.advertInterval,
    addresses: cfg.vips.map((v) => v.address),
    ...(cfg.version === 2 ? { authType: authType(cfg), authData: authData(cfg) } : {}),
  };
}

export function receiveCheck(cfg: VrrpInstance, own: readonly string[]): ReceiveCheckConfig {
  return {
    version: cfg.version, advertIntervalCs: advertIntervalCs(cfg), addresses: cfg.vips.map((v) => v.address), authType: authType(cfg),
    authData: authData(cfg), ownAddresses: [...own], ...(cfg.unicast ? { peers: cfg.unicast.peers } : {}),
  };
}
