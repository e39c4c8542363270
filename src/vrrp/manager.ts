import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { EventBus } from '../events.js';
import { FulcrumError } from '../errors.js';
import type { VrrpInstance } from '../model/vrrp.js';
import { systemClock, type Clock } from '../util/clock.js';
import { SerialQueue } from '../util/serial-queue.js';
import { StateFile } from '../util/state-file.js';
import { z } from 'zod';
import { encodeAdvert } from './codec.js';
import { advertDestinations, advertOf, advertSource, machineConfig, ownAddresses, receiveCheck } from './advert.js';
import { AdvertDemux } from './demux.js';
import { newInstance, type Instance, type LastTransition } from './instance.js';
import { KernelHost, type VrrpHost } from './kernel.js';
import { LinkPoller } from './links.js';
import { VrrpMachine, type TransitionInfo, type VrrpState } from './machine.js';
import { STATE_VALUE, VrrpMetrics } from './metrics.js';
import { runNotify } from './notify.js';
import { followerMove, groupFaults } from './sync-groups.js';
import { TrackScripts } from './track-scripts.js';
import { faultReason, trackedPriority, type TrackedStates } from './tracking.js';
import { rawTransportFactory, type TransportFactory, type VrrpTransport } from './transport.js';
import { VipMover } from './vips.js';

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
  /**
   * Where maintenance (setMaintenance) is kept, so that a node restarted during a rolling upgrade
   * stays out of the election until maintenance is ended. Without it, maintenance lasts until exit.
   */
  maintenanceFile?: string;
}

/** What setMaintenance did (or would do, on a dry run). */
export interface MaintenanceResult {
  changed: boolean;
  instances: Array<{ name: string; state: VrrpState; maintenance: boolean }>;
}

const MaintenanceSchema = z.object({ enabled: z.boolean(), since: z.string() });

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
  lastTransition: LastTransition | undefined;
  /** In maintenance: handed over, stays backup (see setMaintenance). */
  maintenance: boolean;
}

export class VrrpManager {
  private readonly log: Logger;
  private readonly events: EventBus;
  private readonly clock: Clock;
  private hostValue: VrrpHost | undefined;
  private readonly instances = new Map<string, Instance>();
  private readonly serviceHealth = new Map<string, boolean>();
  private readonly metrics: VrrpMetrics;
  private readonly demux: AdvertDemux;
  private readonly vips: VipMover;
  private readonly linkPoller: LinkPoller;
  private propagating = false;
  private closed = false;
  private readonly updates = new SerialQueue();
  private readonly maintenanceFile: StateFile<typeof MaintenanceSchema> | undefined;
  private maintenance: boolean;

  /** Whether this node is in maintenance (kept across restarts with maintenanceFile). */
  get inMaintenance(): boolean {
    return this.maintenance;
  }

  constructor(options: VrrpManagerOptions) {
    this.log = options.logger.child({ component: 'vrrp' });
    this.events = options.events;
    this.clock = options.clock ?? systemClock;
    this.hostValue = options.host;
    const host = () => this.host;
    this.metrics = new VrrpMetrics(options.metrics);
    this.demux = new AdvertDemux(options.transportFactory ?? rawTransportFactory, this.metrics, this.log);
    this.vips = new VipMover(host, this.clock, this.events);
    this.linkPoller = new LinkPoller(host, this.clock, options.linkPollMs ?? 500, this.log);
    this.maintenanceFile = options.maintenanceFile === undefined ? undefined : new StateFile(options.maintenanceFile, 1, MaintenanceSchema, 'VRRP maintenance record');
    const kept = this.maintenanceFile?.load();
    this.maintenance = kept?.enabled ?? false;
    if (this.maintenance) this.log.warn({ since: kept?.since }, 'VRRP is in maintenance (kept from before the restart): no instance takes the VIPs until it is ended');
  }

  /**
   * Planned hand-over for all instances of this node: with `enabled`, every master gives its VIPs
   * up at once (priority 0, then make-before-break as on a stop) and every instance stays backup,
   * also after a restart, until maintenance is ended. The change is durable before it is made.
   */
  setMaintenance(enabled: boolean, options: { dryRun?: boolean } = {}): MaintenanceResult {
    if (this.closed) throw new FulcrumError('CONFLICT', 'the VRRP manager is closed');
    const changed = enabled !== this.maintenance;
    if (changed && !options.dryRun) {
      this.maintenanceFile?.save({ enabled, since: new Date(this.clock.wallNow()).toISOString() });
      this.maintenance = enabled;
      this.log.info({ enabled }, enabled ? 'VRRP maintenance: handing over every instance and staying backup' : 'VRRP maintenance ended: the instances take part in the election again');
      this.events.publish({ type: 'vrrp-maintenance', component: 'vrrp', message: enabled ? 'maintenance: VRRP instances hand over and stay backup' : 'maintenance ended', data: { enabled } });
      for (const inst of this.instances.values()) inst.machine?.setMaintenance(enabled);
    }
    return {
      changed,
      instances: this.status().map((s) => ({ name: s.name, state: s.state, maintenance: options.dryRun ? enabled : s.maintenance })),
    };
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
    return this.updates.run(() => this.apply(desired)).catch((e: unknown) => {
      this.log.error({ err: e }, 'applying VRRP instances failed');
      this.events.publish({ type: 'vrrp-error', component: 'vrrp', message: `applying VRRP instances failed: ${(e as Error).message}` });
    });
  }

  private async apply(desired: VrrpInstance[]): Promise<void> {
    const wanted = new Map(desired.map((d) => [d.name, d]));
    // Stopped together: each stopping master waits for its successor (VipMover.handover()).
    await Promise.all(
      [...this.instances].filter(([name, inst]) => JSON.stringify(wanted.get(name)) !== inst.key).map(([, inst]) => this.stopInstance(inst)),
    );
    await this.linkPoller.refresh();
    for (const cfg of desired) if (!this.instances.has(cfg.name)) await this.createInstance(cfg);
    this.schedulePoll();
  }

  private async createInstance(cfg: VrrpInstance): Promise<void> {
    const inst = newInstance(cfg);
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
      maintenance: inst.machine?.inMaintenance ?? this.maintenance,
    }));
  }

  /** Stops every instance (priority-0 advert from a master, VIPs removed) and closes the sockets. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.updates.idle();
    this.linkPoller.stop();
    await Promise.all([...this.instances.values()].map((inst) => this.stopInstance(inst)));
    this.demux.close();
    this.hostValue?.close();
  }

  // --- instance life cycle -------------------------------------------------------------------

  private async startInstance(inst: Instance): Promise<void> {
    const cfg = inst.cfg;
    const link = this.linkPoller.links.get(cfg.interface);
    if (!link) {
      this.setOwnFault(inst, `interface ${cfg.interface} not found`);
      return;
    }
    inst.link = link;
    const addrs = await this.host.addresses(link.index);
    const source = advertSource(cfg, addrs);
    if (!source) {
      this.setOwnFault(inst, `no ${cfg.family === 'inet' ? 'IPv4' : 'IPv6 link-local'} address on ${cfg.interface} to advertise from`);
      return;
    }

    let transport: VrrpTransport;
    try {
      transport = this.demux.attach(inst, { ifname: cfg.interface, ifindex: link.index, family: cfg.family, source, unicast: cfg.unicast !== undefined });
    } catch (e) {
      this.setOwnFault(inst, `cannot open the VRRP socket on ${cfg.interface}: ${(e as Error).message}`);
      return;
    }

    const dsts = advertDestinations(cfg);
    const ilog = this.log.child({ instance: cfg.name, vrid: cfg.vrid, interface: cfg.interface });
    inst.machine = new VrrpMachine(machineConfig(cfg, source), this.clock, {
      sendAdvert: (priority) => {
        const advert = advertOf(cfg, priority);
        for (const dst of dsts) transport.send(dst, source, encodeAdvert(advert, { src: source, dst }));
        this.metrics.sent.inc({ instance: cfg.name });
      },
      transition: (t) => this.onTransition(inst, t, ilog),
      splitBrain: (s) => {
        this.metrics.splitBrain.inc({ instance: cfg.name });
        const message = `${cfg.name}: ${s.peer} (priority ${s.peerPriority}) also claims master; ${s.weWin ? 'we keep it (RFC 5798 §6.4.3), it must yield' : 'it wins (RFC 5798 §6.4.3), we yield'}`;
        ilog.warn({ peer: s.peer, peerPriority: s.peerPriority, ourPriority: s.ourPriority, weWin: s.weWin }, 'split brain: another master on the link');
        this.events.publish({ type: 'vrrp-split-brain', component: 'vrrp', message, data: { instance: cfg.name, ...s } });
      },
    });
    inst.machine.setPriority(trackedPriority(cfg, this.tracked(inst)));
    inst.receiveCheck = receiveCheck(cfg, ownAddresses(cfg, addrs));
    this.metrics.state.set({ instance: cfg.name }, STATE_VALUE.init);
    this.metrics.sent.inc({ instance: cfg.name }, 0);
    this.metrics.received.inc({ instance: cfg.name }, 0);
    ilog.info({ priority: cfg.priority, version: cfg.version, advertInterval: cfg.advertInterval, source, vips: cfg.vips.map((v) => v.address) }, 'starting VRRP instance');
    inst.scripts = new TrackScripts(cfg.track.scripts, this.clock, (script, fails) => {
      if (inst.stopped || this.closed) return;
      this.log.info({ instance: cfg.name, script, failed: fails }, 'track script changed');
      this.applyTracking(inst);
    });
    this.applyTracking(inst);
    inst.machine.setMaintenance(this.maintenance);
    inst.machine.start(inst.ownFault ?? inst.groupFault);
  }

  private async stopInstance(inst: Instance): Promise<void> {
    inst.stopped = true;
    inst.scripts?.close();
    inst.machine?.stop();
    this.vips.cancelAnnouncements(inst);
    // Whatever the state was, leave no VIP behind.
    inst.queue = inst.queue.then(() => this.vips.remove(inst));
    await inst.queue;
    this.demux.detach(inst);
    this.instances.delete(inst.cfg.name);
    this.metrics.state.remove({ instance: inst.cfg.name });
  }

  // --- transitions -----------------------------------------------------------------------------

  private onTransition(inst: Instance, t: TransitionInfo, ilog: Logger): void {
    const cfg = inst.cfg;
    const machine = inst.machine!;
    // The VIPs first (the failover clients wait for), the bookkeeping after.
    if (t.to === 'master') {
      inst.queue = inst.queue.then(() => this.vips.add(inst, ilog));
    } else if (t.from === 'master' && (t.to === 'init' || machine.inMaintenance) && !inst.skipHandover) {
      // Planned stop or maintenance: keep serving until the successor announces itself (make before break).
      const wait = this.vips.handover(inst);
      inst.queue = inst.queue.then(() => wait).then(() => { this.vips.cancelAnnouncements(inst); return this.vips.remove(inst, ilog); });
    } else {
      this.vips.cancelAnnouncements(inst);
      inst.queue = inst.queue.then(() => this.vips.remove(inst, ilog));
    }
    inst.lastTransition = { from: t.from, to: t.to, reason: t.reason, time: new Date().toISOString() };
    this.metrics.state.set({ instance: cfg.name }, STATE_VALUE[t.to]);
    this.metrics.transitions.inc({ instance: cfg.name, to: t.to });
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

  /** The other members of a sync group follow a member into master or backup. */
  private propagateSync(inst: Instance, t: TransitionInfo): void {
    const group = inst.cfg.syncGroup;
    if (!group || this.propagating) return;
    const move = followerMove(group, inst.cfg.name, t);
    if (!move) return;
    // The followers' own transitions come back here; they must not propagate again.
    this.propagating = true;
    try {
      for (const other of this.instances.values()) {
        if (other === inst || other.cfg.syncGroup !== group || !other.machine) continue;
        if (move.to === 'master') other.machine.forceMaster(move.reason);
        else other.machine.forceBackup(move.reason);
      }
    } finally {
      this.propagating = false;
    }
  }

  // --- tracking --------------------------------------------------------------------------------

  private schedulePoll(): void {
    if (this.closed || this.instances.size === 0) return;
    this.linkPoller.schedule(() => this.poll());
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    await this.linkPoller.refresh();
    for (const inst of [...this.instances.values()]) {
      if (inst.stopped) continue;
      if (!inst.machine) {
        // Not started (interface or address missing): retry now that links may have changed.
        if (this.linkPoller.links.has(inst.cfg.interface)) {
          inst.ownFault = undefined;
          await this.startInstance(inst);
        }
        continue;
      }
      const now = this.linkPoller.links.get(inst.cfg.interface);
      if (now && inst.link && now.index !== inst.link.index) {
        // The interface was re-created: the socket's binding and group membership went with the
        // old one. Start the instance afresh on the new link.
        this.log.warn({ instance: inst.cfg.name, interface: inst.cfg.interface }, 'interface re-created; restarting the VRRP instance');
        inst.skipHandover = true;
        await this.stopInstance(inst);
        if (!this.closed) await this.createInstance(inst.cfg);
        continue;
      }
      this.applyTracking(inst);
    }
    this.schedulePoll();
  }

  private tracked(inst: Instance): TrackedStates {
    return { links: this.linkPoller.links, serviceHealth: this.serviceHealth, scriptFails: (name) => inst.scripts?.fails(name) ?? false };
  }

  private setOwnFault(inst: Instance, reason: string): void {
    if (inst.ownFault !== reason) this.log.warn({ instance: inst.cfg.name, reason }, 'VRRP instance in fault');
    inst.ownFault = reason;
    this.metrics.state.set({ instance: inst.cfg.name }, STATE_VALUE.fault);
  }

  private applyTracking(inst: Instance): void {
    if (inst.stopped) return;
    const tracked = this.tracked(inst);
    inst.ownFault = faultReason(inst.cfg, tracked);
    inst.machine?.setPriority(trackedPriority(inst.cfg, tracked));
    const group = inst.cfg.syncGroup;
    if (group) this.applyGroupFault(group);
    else this.applyFault(inst);
  }

  private applyGroupFault(group: string): void {
    const members = [...this.instances.values()].filter((i) => i.cfg.syncGroup === group && !i.stopped);
    const faults = groupFaults(group, members.map((m) => ({ name: m.cfg.name, ownFault: m.ownFault })));
    members.forEach((m, i) => { m.groupFault = faults[i]; });
    for (const m of members) this.applyFault(m);
  }

  private applyFault(inst: Instance): void {
    const machine = inst.machine;
    if (!machine || machine.state === 'init') return;
    const reason = inst.ownFault ?? inst.groupFault;
    machine.setFault(reason !== undefined, reason ?? 'fault cleared');
  }
}
