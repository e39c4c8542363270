import { execFile } from 'node:child_process';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { EventBus } from '../events.js';
import { FulcrumError } from '../errors.js';
import type { VrrpInstance } from '../model/vrrp.js';
import { decodeAdvert, encodeAdvert, passwordAuthData, VRRP_MCAST_V4, VRRP_MCAST_V6, VrrpDecodeError, type VrrpAdvert } from './codec.js';
import { checkReceived, systemClock, VrrpMachine, type Clock, type DropReason, type ReceiveCheckConfig, type TransitionInfo, type VrrpState } from './machine.js';
import { rawTransportFactory, type ReceivedPacket, type TransportFactory, type VrrpTransport } from './transport.js';
import { KernelHost, type LinkInfo, type VrrpHost } from './kernel.js';
import { gratuitousArp, unsolicitedNa } from './announce.js';
import { runNotify } from './notify.js';

export type { VrrpState } from './machine.js';
export type { TransportFactory, VrrpTransport } from './transport.js';
export type { VrrpHost } from './kernel.js';

/**
 * VrrpManager: runs one VRRP state machine per configured instance, moves the VIPs with the
 * state, and publishes every transition (event bus, log line, metrics, notify hooks).
 * The agent calls update(instances) with the desired state, status() for `fulcrum status`,
 * setServiceHealth() when a tracked service crosses its quorum, and close() on shutdown.
 */

export interface VrrpManagerOptions {
  logger: Logger;
  events: EventBus;
  metrics: Registry;
  clock?: Clock;
  transportFactory?: TransportFactory;
  /** Links, addresses and frames; the kernel (rtnetlink + AF_PACKET) by default. */
  host?: VrrpHost;
  /** Milliseconds between link-state polls (own and tracked interfaces). */
  linkPollMs?: number;
}

export interface VrrpInstanceStatus {
  name: string;
  interface: string;
  vrid: number;
  version: 2 | 3;
  family: 'inet' | 'inet6';
  state: VrrpState;
  /** Effective priority (configured priority adjusted by tracking). */
  priority: number;
  configuredPriority: number;
  /** Our address when master, the master's as last heard when backup. */
  masterAddress: string | undefined;
  vips: string[];
  /** Why the instance is in fault, if it is. */
  fault: string | undefined;
  syncGroup: string | undefined;
  /** The last state change of this instance (since it started in this process). */
  lastTransition: { from: VrrpState; to: VrrpState; reason: string; time: string } | undefined;
}

const STATE_VALUE: Record<VrrpState, number> = { init: 0, backup: 1, master: 2, fault: 3 };

interface Instance {
  cfg: VrrpInstance;
  key: string;
  machine: VrrpMachine | undefined;
  link: LinkInfo | undefined;
  source: string | undefined;
  ownAddresses: string[];
  transportKey: string | undefined;
  /** Per-tracker failure (name -> failed) for links and scripts. */
  scriptFailed: Map<string, boolean>;
  scriptCounters: Map<string, { ok: number; bad: number }>;
  scriptTimers: unknown[];
  ownFault: string | undefined;
  groupFault: string | undefined;
  /** Serializes VIP changes of this instance. */
  queue: Promise<void>;
  garpTimers: unknown[];
  warned: Set<string>;
  stopped: boolean;
  receiveCheck: ReceiveCheckConfig | undefined;
  /** Set while a stopping master waits for its successor's first advert (see handover()). */
  handoverDone: (() => void) | undefined;
  /** Stop without waiting for a successor (the link it served is gone). */
  skipHandover: boolean;
  lastTransition: VrrpInstanceStatus['lastTransition'];
}

interface SharedTransport {
  transport: VrrpTransport;
  users: Set<Instance>;
  ifname: string;
}

export class VrrpManager {
  private readonly log: Logger;
  private readonly events: EventBus;
  private readonly clock: Clock;
  private readonly transportFactory: TransportFactory;
  private hostValue: VrrpHost | undefined;
  private readonly linkPollMs: number;
  private readonly instances = new Map<string, Instance>();
  private readonly transports = new Map<string, SharedTransport>();
  private readonly serviceHealth = new Map<string, boolean>();
  private pollTimer: unknown;
  private links = new Map<string, LinkInfo>();
  private propagating = false;
  private closed = false;
  private updating: Promise<void> = Promise.resolve();

  private readonly mState: Gauge<'instance'>;
  private readonly mTransitions: Counter<'instance' | 'to'>;
  private readonly mSent: Counter<'instance'>;
  private readonly mReceived: Counter<'instance'>;
  private readonly mDrops: Counter<'interface' | 'reason'>;
  private readonly mSplit: Counter<'instance'>;

  constructor(options: VrrpManagerOptions) {
    this.log = options.logger.child({ component: 'vrrp' });
    this.events = options.events;
    this.clock = options.clock ?? systemClock;
    this.transportFactory = options.transportFactory ?? rawTransportFactory;
    this.hostValue = options.host;
    this.linkPollMs = options.linkPollMs ?? 500;
    const registers = [options.metrics];
    this.mState = new Gauge({ name: 'fulcrum_vrrp_state', help: 'VRRP instance state: 0 init, 1 backup, 2 master, 3 fault', labelNames: ['instance'], registers });
    this.mTransitions = new Counter({ name: 'fulcrum_vrrp_transitions_total', help: 'VRRP state transitions by target state', labelNames: ['instance', 'to'], registers });
    this.mSent = new Counter({ name: 'fulcrum_vrrp_adverts_sent_total', help: 'VRRP advertisements sent', labelNames: ['instance'], registers });
    this.mReceived = new Counter({ name: 'fulcrum_vrrp_adverts_received_total', help: 'VRRP advertisements accepted', labelNames: ['instance'], registers });
    this.mDrops = new Counter({ name: 'fulcrum_vrrp_drops_total', help: 'VRRP packets dropped, by reason', labelNames: ['interface', 'reason'], registers });
    this.mSplit = new Counter({ name: 'fulcrum_vrrp_split_brain_total', help: 'Adverts from another master while master', labelNames: ['instance'], registers });
  }

  private get host(): VrrpHost {
    this.hostValue ??= KernelHost.create();
    return this.hostValue;
  }

  /**
   * Applies the desired instances: new ones start (as backup, or master when owner), removed
   * ones stop (priority 0, VIPs removed), changed ones restart. The instances are specs (parsed
   * and checked as a set by the model). The returned promise (settled when the
   * change is applied) never rejects: a runtime failure is logged and published as `vrrp-error`,
   * so a caller that does not await it cannot crash on an unhandled rejection.
   */
  update(instances: readonly VrrpInstance[]): Promise<void> {
    if (this.closed) throw new FulcrumError('CONFLICT', 'the VRRP manager is closed');
    const desired = [...instances];
    const run = this.updating.then(() => this.apply(desired)).catch((e: unknown) => {
      this.log.error({ err: e }, 'applying VRRP instances failed');
      this.events.publish({ type: 'vrrp-error', component: 'vrrp', message: `applying VRRP instances failed: ${(e as Error).message}` });
    });
    this.updating = run;
    return run;
  }

  private async apply(desired: VrrpInstance[]): Promise<void> {
    const wanted = new Map(desired.map((d) => [d.name, d]));
    // Stopped together: each stopping master waits for its successor (handover()).
    await Promise.all(
      [...this.instances].filter(([name, inst]) => JSON.stringify(wanted.get(name)) !== inst.key).map(([, inst]) => this.stopInstance(inst)),
    );
    await this.refreshLinks();
    for (const cfg of desired) if (!this.instances.has(cfg.name)) await this.createInstance(cfg);
    this.schedulePoll();
  }

  private async createInstance(cfg: VrrpInstance): Promise<void> {
    const inst: Instance = {
      cfg, key: JSON.stringify(cfg), machine: undefined, link: undefined, source: undefined, ownAddresses: [],
      transportKey: undefined, scriptFailed: new Map(), scriptCounters: new Map(), scriptTimers: [], ownFault: undefined,
      groupFault: undefined, queue: Promise.resolve(), garpTimers: [], warned: new Set(), stopped: false, receiveCheck: undefined, handoverDone: undefined, skipHandover: false, lastTransition: undefined,
    };
    this.instances.set(cfg.name, inst);
    await this.startInstance(inst);
  }

  /** The agent reports a tracked service crossing its health quorum. */
  setServiceHealth(service: string, healthy: boolean): void {
    if (this.serviceHealth.get(service) === healthy) return;
    this.serviceHealth.set(service, healthy);
    for (const inst of this.instances.values()) if (inst.cfg.track.services.some((s) => s.service === service)) this.applyTracking(inst);
  }

  status(): VrrpInstanceStatus[] {
    return [...this.instances.values()].map((inst) => ({
      name: inst.cfg.name,
      interface: inst.cfg.interface,
      vrid: inst.cfg.vrid,
      version: inst.cfg.version,
      family: inst.cfg.family,
      state: inst.machine?.state ?? 'fault',
      priority: inst.machine?.priority ?? inst.cfg.priority,
      configuredPriority: inst.cfg.priority,
      masterAddress: inst.machine?.masterAddress,
      vips: inst.cfg.vips.map((v) => `${v.address}/${v.prefix}`),
      fault: inst.ownFault ?? inst.groupFault,
      syncGroup: inst.cfg.syncGroup,
      lastTransition: inst.lastTransition,
    }));
  }

  /** Stops every instance (priority-0 advert from a master, VIPs removed) and closes the sockets. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.updating;
    if (this.pollTimer !== undefined) this.clock.clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    await Promise.all([...this.instances.values()].map((inst) => this.stopInstance(inst)));
    for (const t of this.transports.values()) t.transport.close();
    this.transports.clear();
    this.hostValue?.close();
  }

  // --- instance life cycle -------------------------------------------------------------------

  private async startInstance(inst: Instance): Promise<void> {
    const cfg = inst.cfg;
    const link = this.links.get(cfg.interface);
    if (!link) {
      this.setOwnFault(inst, `interface ${cfg.interface} not found`);
      return;
    }
    inst.link = link;
    const addrs = await this.host.addresses(link.index);
    const vipSet = new Set(cfg.vips.map((v) => v.address));
    inst.ownAddresses = addrs.map((a) => a.address).filter((a) => !vipSet.has(a));
    const primary =
      cfg.family === 'inet'
        ? addrs.find((a) => a.family === 'inet' && !a.secondary && !vipSet.has(a.address))?.address
        : addrs.find((a) => a.family === 'inet6' && a.scope === 253 && !vipSet.has(a.address))?.address;
    const source = cfg.unicast?.source ?? primary;
    if (!source) {
      this.setOwnFault(inst, `no ${cfg.family === 'inet' ? 'IPv4' : 'IPv6 link-local'} address on ${cfg.interface} to advertise from`);
      return;
    }
    inst.source = source;
    if (cfg.unicast?.source && !inst.ownAddresses.includes(cfg.unicast.source)) inst.ownAddresses.push(cfg.unicast.source);

    let shared: SharedTransport;
    try {
      shared = this.transportFor(cfg.interface, link.index, cfg.family, source, cfg.unicast !== undefined);
    } catch (e) {
      this.setOwnFault(inst, `cannot open the VRRP socket on ${cfg.interface}: ${(e as Error).message}`);
      return;
    }
    shared.users.add(inst);
    inst.transportKey = `${cfg.interface}/${cfg.family}`;

    const advertIntervalCs = Math.round(cfg.advertInterval * 100);
    const authData = cfg.auth.type === 'pass' ? passwordAuthData(cfg.auth.password) : Buffer.alloc(8);
    const dsts = cfg.unicast?.peers ?? [cfg.family === 'inet' ? VRRP_MCAST_V4 : VRRP_MCAST_V6];
    const ilog = this.log.child({ instance: cfg.name, vrid: cfg.vrid, interface: cfg.interface });
    inst.machine = new VrrpMachine(
      { version: cfg.version, vrid: cfg.vrid, priority: cfg.priority, advertIntervalCs, preempt: cfg.preempt, preemptDelayMs: cfg.preemptDelay * 1000, primaryAddress: source },
      this.clock,
      {
        sendAdvert: (priority) => {
          const advert: VrrpAdvert = {
            version: cfg.version, vrid: cfg.vrid, priority, family: cfg.family,
            interval: cfg.version === 3 ? advertIntervalCs : cfg.advertInterval,
            addresses: cfg.vips.map((v) => v.address),
            ...(cfg.version === 2 ? { authType: cfg.auth.type === 'pass' ? 1 as const : 0 as const, authData } : {}),
          };
          for (const dst of dsts) shared.transport.send(dst, source, encodeAdvert(advert, { src: source, dst }));
          this.mSent.inc({ instance: cfg.name });
        },
        transition: (t) => this.onTransition(inst, t, ilog),
        splitBrain: (s) => {
          this.mSplit.inc({ instance: cfg.name });
          const message = `${cfg.name}: ${s.peer} (priority ${s.peerPriority}) also claims master; ${s.weWin ? 'we keep it (RFC 5798 §6.4.3), it must yield' : 'it wins (RFC 5798 §6.4.3), we yield'}`;
          ilog.warn({ peer: s.peer, peerPriority: s.peerPriority, ourPriority: s.ourPriority, weWin: s.weWin }, 'split brain: another master on the link');
          this.events.publish({ type: 'vrrp-split-brain', component: 'vrrp', message, data: { instance: cfg.name, ...s } });
        },
      },
    );
    inst.machine.setPriority(this.trackedPriority(inst));
    inst.receiveCheck = {
      version: cfg.version, advertIntervalCs, addresses: cfg.vips.map((v) => v.address), authType: cfg.auth.type === 'pass' ? 1 as const : 0 as const,
      authData, ownAddresses: inst.ownAddresses, ...(cfg.unicast ? { peers: cfg.unicast.peers } : {}),
    };
    this.mState.set({ instance: cfg.name }, STATE_VALUE.init);
    this.mSent.inc({ instance: cfg.name }, 0);
    this.mReceived.inc({ instance: cfg.name }, 0);
    ilog.info({ priority: cfg.priority, version: cfg.version, advertInterval: cfg.advertInterval, source, vips: cfg.vips.map((v) => v.address) }, 'starting VRRP instance');
    this.startScripts(inst);
    this.refreshLinkFault(inst);
    inst.machine.start(inst.ownFault ?? inst.groupFault);
  }

  private async stopInstance(inst: Instance): Promise<void> {
    inst.stopped = true;
    for (const t of inst.scriptTimers) this.clock.clearTimeout(t);
    inst.scriptTimers = [];
    inst.machine?.stop();
    this.cancelGarp(inst);
    // Whatever the state was, leave no VIP behind.
    inst.queue = inst.queue.then(() => this.removeVips(inst));
    await inst.queue;
    if (inst.transportKey) {
      const shared = this.transports.get(inst.transportKey);
      shared?.users.delete(inst);
      if (shared && shared.users.size === 0) {
        shared.transport.close();
        this.transports.delete(inst.transportKey);
      }
    }
    this.instances.delete(inst.cfg.name);
    this.mState.remove({ instance: inst.cfg.name });
  }

  // --- transitions -----------------------------------------------------------------------------

  private onTransition(inst: Instance, t: TransitionInfo, ilog: Logger): void {
    const cfg = inst.cfg;
    const machine = inst.machine!;
    // The VIPs first (the failover clients wait for), the bookkeeping after.
    if (t.to === 'master') {
      inst.queue = inst.queue.then(() => this.addVips(inst, ilog));
    } else if (t.from === 'master' && t.to === 'init' && !inst.skipHandover) {
      // Planned stop: keep serving until the successor announces itself (make before break).
      const wait = this.handover(inst);
      inst.queue = inst.queue.then(() => wait).then(() => { this.cancelGarp(inst); return this.removeVips(inst, ilog); });
    } else {
      this.cancelGarp(inst);
      inst.queue = inst.queue.then(() => this.removeVips(inst, ilog));
    }
    inst.lastTransition = { from: t.from, to: t.to, reason: t.reason, time: new Date().toISOString() };
    this.mState.set({ instance: cfg.name }, STATE_VALUE[t.to]);
    this.mTransitions.inc({ instance: cfg.name, to: t.to });
    const master = machine.masterAddress;
    ilog.info({ from: t.from, to: t.to, reason: t.reason, priority: machine.priority, master }, `VRRP ${cfg.name}: ${t.from} -> ${t.to}`);
    this.events.publish({
      type: 'vrrp-transition',
      component: 'vrrp',
      message: `${cfg.name} (VRID ${cfg.vrid} on ${cfg.interface}): ${t.from} -> ${t.to}: ${t.reason}`,
      data: { instance: cfg.name, vrid: cfg.vrid, interface: cfg.interface, from: t.from, to: t.to, reason: t.reason, priority: machine.priority, master },
    });
    if (cfg.notify) {
      const notify = cfg.notify;
      void runNotify(notify, {
        instance: cfg.name, vrid: cfg.vrid, interface: cfg.interface, state: t.to, previous: t.from, priority: machine.priority,
        master, reason: t.reason, time: new Date().toISOString(),
      }).then((failures) => {
        for (const f of failures) {
          ilog.warn({ hook: f }, 'notify hook failed');
          this.events.publish({ type: 'vrrp-notify-failed', component: 'vrrp', message: `${cfg.name}: ${f}`, data: { instance: cfg.name } });
        }
      });
    }
    this.propagateSync(inst, t);
  }

  private async addVips(inst: Instance, ilog?: Logger): Promise<void> {
    if (inst.machine?.state !== 'master' || !inst.link) return;
    const link = inst.link;
    for (const vip of inst.cfg.vips) {
      try {
        await this.host.addVip(link.index, vip);
      } catch (e) {
        ilog?.error({ err: e, vip: vip.address }, 'cannot add the virtual IP');
        this.events.publish({ type: 'vrrp-error', component: 'vrrp', message: `${inst.cfg.name}: cannot add ${vip.address}: ${(e as Error).message}`, data: { instance: inst.cfg.name } });
      }
    }
    this.announce(inst, ilog);
    const { delay } = inst.cfg.garp;
    if (delay > 0) inst.garpTimers.push(this.clock.setTimeout(() => this.announce(inst, ilog), delay * 1000));
  }

  /** One burst of gratuitous ARPs / unsolicited NAs for every VIP (garp.repeat, garp.intervalMs apart). */
  private announce(inst: Instance, ilog?: Logger): void {
    const { repeat, intervalMs } = inst.cfg.garp;
    const sendAll = () => {
      if (inst.machine?.state !== 'master' || !inst.link) return;
      for (const vip of inst.cfg.vips) {
        const frame = vip.family === 'inet' ? gratuitousArp(inst.link.mac, vip.address) : unsolicitedNa(inst.link.mac, vip.address);
        try {
          this.host.sendFrame(inst.link.index, frame);
        } catch (e) {
          ilog?.warn({ err: e, vip: vip.address }, 'cannot send gratuitous ARP / NA');
        }
      }
    };
    sendAll();
    for (let i = 1; i < repeat; i++) {
      if (intervalMs === 0) sendAll();
      else inst.garpTimers.push(this.clock.setTimeout(sendAll, i * intervalMs));
    }
  }

  /**
   * After its priority-0 advert a stopping master keeps its VIPs until the backup that takes over
   * sends its first advert (it sends its gratuitous ARPs right after), or, with no backup, until a
   * backup's Master_Down_Interval would have run out. The RFC only says "transition to Initialize";
   * holding the addresses for that one Skew_Time turns a planned stop into a near-zero outage for
   * clients instead of a Skew_Time-long one.
   */
  private handover(inst: Instance): Promise<void> {
    const limitMs = 4 * inst.cfg.advertInterval * 1000;
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(() => done(), limitMs);
      const done = () => {
        this.clock.clearTimeout(timer);
        inst.handoverDone = undefined;
        resolve();
      };
      inst.handoverDone = done;
    });
  }

  private cancelGarp(inst: Instance): void {
    for (const t of inst.garpTimers) this.clock.clearTimeout(t);
    inst.garpTimers = [];
  }

  private async removeVips(inst: Instance, ilog?: Logger): Promise<void> {
    if (inst.machine?.state === 'master' || !inst.link) return;
    for (const vip of inst.cfg.vips) {
      try {
        await this.host.delVip(inst.link.index, vip);
      } catch (e) {
        ilog?.error({ err: e, vip: vip.address }, 'cannot remove the virtual IP');
      }
    }
  }

  /** Sync groups (keepalived vrrp_sync_group): members follow a member into master or backup. */
  private propagateSync(inst: Instance, t: TransitionInfo): void {
    const group = inst.cfg.syncGroup;
    if (!group || this.propagating) return;
    this.propagating = true;
    try {
      for (const other of this.instances.values()) {
        if (other === inst || other.cfg.syncGroup !== group || !other.machine) continue;
        if (t.to === 'master') other.machine.forceMaster(`sync group ${group}: ${inst.cfg.name} became master`);
        else if (t.to === 'backup' && t.from === 'master') other.machine.forceBackup(`sync group ${group}: ${inst.cfg.name} became backup`);
      }
    } finally {
      this.propagating = false;
    }
  }

  // --- receive ---------------------------------------------------------------------------------

  private transportFor(ifname: string, ifindex: number, family: 'inet' | 'inet6', source: string, unicast: boolean): SharedTransport {
    const key = `${ifname}/${family}`;
    let shared = this.transports.get(key);
    if (!shared) {
      const transport = this.transportFactory({ ifname, ifindex, family, source, unicast });
      const created: SharedTransport = { transport, users: new Set(), ifname };
      transport.onPacket((p) => this.onPacket(created, p));
      transport.onError((e) => this.log.debug({ err: e, interface: ifname }, 'VRRP socket error'));
      this.transports.set(key, created);
      shared = created;
    }
    return shared;
  }

  private drop(ifname: string, reason: DropReason | VrrpDecodeError['reason'], detail: string): void {
    this.mDrops.inc({ interface: ifname, reason });
    this.log.debug({ interface: ifname, reason, detail }, 'VRRP packet dropped');
  }

  private onPacket(shared: SharedTransport, p: ReceivedPacket): void {
    let advert: VrrpAdvert;
    const family = shared.transport.family;
    try {
      advert = decodeAdvert(p.payload, family, { src: p.src, dst: p.dst });
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
    for (const w of check.warnings) {
      if (target.warned.has(w)) continue;
      target.warned.add(w);
      this.log.warn({ instance: target.cfg.name, detail: w }, 'VRRP advert mismatch (logged once)');
    }
    this.mReceived.inc({ instance: target.cfg.name });
    target.machine.receive(advert, p.src);
  }

  // --- tracking --------------------------------------------------------------------------------

  private schedulePoll(): void {
    if (this.pollTimer !== undefined || this.closed || this.instances.size === 0) return;
    this.pollTimer = this.clock.setTimeout(() => {
      this.pollTimer = undefined;
      void this.poll();
    }, this.linkPollMs);
  }

  private async refreshLinks(): Promise<void> {
    try {
      this.links = new Map((await this.host.links()).map((l) => [l.name, l]));
    } catch (e) {
      this.log.warn({ err: e }, 'cannot list links');
    }
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    await this.refreshLinks();
    for (const inst of [...this.instances.values()]) {
      if (inst.stopped) continue;
      if (!inst.machine) {
        // Not started (interface or address missing): retry now that links may have changed.
        if (this.links.has(inst.cfg.interface)) {
          inst.ownFault = undefined;
          await this.startInstance(inst);
        }
        continue;
      }
      const now = this.links.get(inst.cfg.interface);
      if (now && inst.link && now.index !== inst.link.index) {
        // The interface was re-created: the socket's binding and group membership went with the
        // old one. Start the instance afresh on the new link.
        this.log.warn({ instance: inst.cfg.name, interface: inst.cfg.interface }, 'interface re-created; restarting the VRRP instance');
        inst.skipHandover = true;
        await this.stopInstance(inst);
        if (!this.closed) await this.createInstance(inst.cfg);
        continue;
      }
      this.refreshLinkFault(inst);
    }
    this.schedulePoll();
  }

  private refreshLinkFault(inst: Instance): void {
    inst.ownFault = this.faultReason(inst);
    this.applyTracking(inst);
  }

  private startScripts(inst: Instance): void {
    for (const script of inst.cfg.track.scripts) {
      inst.scriptCounters.set(script.name, { ok: 0, bad: 0 });
      const runOnce = () => {
        if (inst.stopped || this.closed) return;
        const [cmd, ...args] = script.argv as [string, ...string[]];
        execFile(cmd, args, { timeout: script.timeout * 1000, killSignal: 'SIGKILL' }, (err) => {
          if (inst.stopped || this.closed) return;
          const c = inst.scriptCounters.get(script.name)!;
          if (err) { c.bad++; c.ok = 0; } else { c.ok++; c.bad = 0; }
          const was = inst.scriptFailed.get(script.name) ?? false;
          if (!was && c.bad >= script.fall) inst.scriptFailed.set(script.name, true);
          if (was && c.ok >= script.rise) inst.scriptFailed.set(script.name, false);
          if ((inst.scriptFailed.get(script.name) ?? false) !== was) {
            this.log.info({ instance: inst.cfg.name, script: script.name, failed: !was }, 'track script changed');
            this.applyTracking(inst);
          }
          inst.scriptTimers.push(this.clock.setTimeout(runOnce, script.interval * 1000));
        });
      };
      runOnce();
    }
  }

  /** Priority from the trackers, keepalived's rule: weight > 0 adds while OK, weight < 0 adds while failed. */
  private trackedPriority(inst: Instance): number {
    let p = inst.cfg.priority;
    const add = (ok: boolean, weight: number | undefined) => {
      if (weight === undefined) return;
      if (weight > 0 && ok) p += weight;
      if (weight < 0 && !ok) p += weight;
    };
    for (const t of inst.cfg.track.interfaces) add(this.links.get(t.interface)?.up ?? false, t.weight);
    for (const t of inst.cfg.track.services) add(this.serviceHealth.get(t.service) ?? true, t.weight);
    for (const t of inst.cfg.track.scripts) add(!(inst.scriptFailed.get(t.name) ?? false), t.weight);
    return p;
  }

  private faultReason(inst: Instance): string | undefined {
    const own = this.links.get(inst.cfg.interface);
    if (!own) return `interface ${inst.cfg.interface} not found`;
    if (!own.up) return `interface ${inst.cfg.interface} is down`;
    for (const t of inst.cfg.track.interfaces) if (t.weight === undefined && !(this.links.get(t.interface)?.up ?? false)) return `tracked interface ${t.interface} is down`;
    for (const t of inst.cfg.track.services) if (t.weight === undefined && !(this.serviceHealth.get(t.service) ?? true)) return `tracked service ${t.service} is below quorum`;
    for (const t of inst.cfg.track.scripts) if (t.weight === undefined && (inst.scriptFailed.get(t.name) ?? false)) return `track script ${t.name} fails`;
    return undefined;
  }

  private setOwnFault(inst: Instance, reason: string): void {
    if (inst.ownFault !== reason) this.log.warn({ instance: inst.cfg.name, reason }, 'VRRP instance in fault');
    inst.ownFault = reason;
    this.mState.set({ instance: inst.cfg.name }, STATE_VALUE.fault);
  }

  private applyTracking(inst: Instance): void {
    if (inst.stopped) return;
    inst.ownFault = this.faultReason(inst);
    const machine = inst.machine;
    if (machine) machine.setPriority(this.trackedPriority(inst));
    this.applyGroupFault(inst.cfg.syncGroup);
    if (!inst.cfg.syncGroup) this.applyFault(inst);
  }

  /** A member in fault takes its whole sync group into fault (keepalived's rule). */
  private applyGroupFault(group: string | undefined): void {
    if (!group) return;
    const members = [...this.instances.values()].filter((i) => i.cfg.syncGroup === group && !i.stopped);
    for (const m of members) {
      const other = members.find((o) => o !== m && o.ownFault !== undefined);
      m.groupFault = other ? `sync group ${group}: ${other.cfg.name} in fault (${other.ownFault})` : undefined;
    }
    for (const m of members) this.applyFault(m);
  }

  private applyFault(inst: Instance): void {
    const machine = inst.machine;
    if (!machine || machine.state === 'init') return;
    const reason = inst.ownFault ?? inst.groupFault;
    machine.setFault(reason !== undefined, reason ?? 'fault cleared');
  }
}
