import type { Logger } from '../log.js';
import { decodeAdvert, VrrpDecodeError, type VrrpAdvert } from './codec.js';
import type { Instance } from './instance.js';
import { checkReceived, type DropReason } from './machine.js';
import type { VrrpMetrics } from './metrics.js';
import type { ReceivedPacket, TransportFactory, TransportOptions, VrrpTransport } from './transport.js';

interface SharedTransport {
  transport: VrrpTransport;
  users: Set<Instance>;
  ifname: string;
}

/**
 * One VRRP socket per interface and family, shared by the instances on it: a received packet is
 * decoded once, routed to the instance of its VRID and checked there; anything else is dropped
 * and counted by reason (fulcrum_vrrp_drops_total), never thrown.
 */
export class AdvertDemux {
  private readonly transports = new Map<string, SharedTransport>();
  private readonly keys = new Map<Instance, string>();
  /** Advert mismatches already logged, per instance (each is logged once). */
  private readonly warned = new WeakMap<Instance, Set<string>>();

  constructor(private readonly factory: TransportFactory, private readonly metrics: VrrpMetrics, private readonly log: Logger) {}

  /** Adds `inst` to the socket of its interface and family (opened on first use; may throw). */
  attach(inst: Instance, options: TransportOptions): VrrpTransport {
    const key = `${options.ifname}/${options.family}`;
    let shared = this.transports.get(key);
    if (!shared) {
      const transport = this.factory(options);
      const created: SharedTransport = { transport, users: new Set(), ifname: options.ifname };
      transport.onPacket((p) => this.onPacket(created, p));
      transport.onError((e) => this.log.debug({ err: e, interface: options.ifname }, 'VRRP socket error'));
      this.transports.set(key, created);
      shared = created;
    }
    shared.users.add(inst);
    this.keys.set(inst, key);
    return shared.transport;
  }

  /** Removes `inst`; the socket closes with its last user. */
  detach(inst: Instance): void {
    const key = this.keys.get(inst);
    if (key === undefined) return;
    this.keys.delete(inst);
    const shared = this.transports.get(key);
    shared?.users.delete(inst);
    if (shared && shared.users.size === 0) {
      shared.transport.close();
      this.transports.delete(key);
    }
  }

  close(): void {
    for (const t of this.transports.values()) t.transport.close();
    this.transports.clear();
    this.keys.clear();
  }

  private drop(ifname: string, reason: DropReason | VrrpDecodeError['reason'], detail: string): void {
    this.metrics.drops.inc({ interface: ifname, reason });
    this.log.debug({ interface: ifname, reason, detail }, 'VRRP packet dropped');
  }

  private onPacket(shared: SharedTransport, p: ReceivedPacket): void {
    let advert: VrrpAdvert;
    try {
      advert = decodeAdvert(p.payload, shared.transport.family, { src: p.src, dst: p.dst });
    } catch (e) {
      if (e instanceof VrrpDecodeError) return this.drop(shared.ifname, e.reason, `${e.message} from ${p.src}`);
      return this.drop(shared.ifname, 'truncated', `undecodable packet from ${p.src}`);
    }
    let target: Instance | undefined;
    for (const u of shared.users) if (u.cfg.vrid === advert.vrid) target = u;
    if (!target?.machine || !target.receiveCheck) return this.drop(shared.ifname, 'unknown-vrid', `VRID ${advert.vrid} from ${p.src}`);
    const check = checkReceived(advert, p.ttl, p.src, target.receiveCheck);
    if (!check.ok) return this.drop(shared.ifname, check.reason, check.detail);
    if (target.handoverDone && advert.priority > 0) target.handoverDone();
    let warned = this.warned.get(target);
    if (!warned) this.warned.set(target, (warned = new Set()));
    for (const w of check.warnings) {
      if (warned.has(w)) continue;
      warned.add(w);
      this.log.warn({ instance: target.cfg.name, detail: w }, 'VRRP advert mismatch (logged once)');
    }
    this.metrics.received.inc({ instance: target.cfg.name });
    target.machine.receive(advert, p.src);
  }
}
