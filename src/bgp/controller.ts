import { existsSync, readFileSync } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Report } from '../dataplane/types.js';
import type { EventBus } from '../events.js';
import type { BgpSettings } from '../model/bgp.js';
import type { Family } from '../model/net.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { BirdBfdSession, BirdControl, BirdProtocol } from './bird-client.js';
import { decide, groupByVip, type ServiceInput, type VipState } from './decide.js';
import { PROTO, renderBirdInclude } from './render.js';

/** One service as the controller sees it (the agent builds these from its state, the kernel and health). */
export type BgpServiceInput = { address: string; family: Family } & ServiceInput;

export interface NeighbourStatus {
  name: string;
  protocol: string;
  address: string;
  asn: number;
  /** BIRD's protocol state (up, start, down...) and info (Established, Idle, Active...). */
  state: string;
  info: string;
  established: boolean;
  bfd: string | undefined;
  /** Prefixes the session exports now (read back from BIRD). */
  exported: string[];
}

export interface BgpStatus {
  speaker: { controlSocket: string; includeFile: string; reachable: boolean; error?: string | undefined };
  maintenance: boolean;
  keepOnRestart: boolean;
  lastApply?: { time: string; result: 'ok' | 'error'; error?: string } | undefined;
  vips: Array<{ address: string; announced: boolean; since: string; reason?: string | undefined; communities: string[]; services: string[] }>;
  neighbours: NeighbourStatus[];
}

export interface BgpControllerOptions {
  settings: BgpSettings;
  bird: BirdControl;
  clock: Clock;
  metrics: Registry;
  events: EventBus;
  report: Report;
}

/**
 * The services now (desired state, kernel read-back, health), and whether the node runs the
 * cluster's current revision: called on every sync.
 */
export type BgpInputs = () => Promise<{ services: BgpServiceInput[]; caughtUp: boolean }>;

/**
 * Drives BIRD for this node: decides which VIPs to announce (decide.ts), writes the include,
 * `configure check` then `configure` (a refused include is put back as it was: nothing half
 * applied), and reads back sessions, exports and BFD on an interval. Never logs: notes go to `report`.
 */
export class BgpController {
  private vips = new Map<string, VipState>();
  private maintenance = false;
  private stopping = false;
  private closed = false;
  private applied: string | undefined;
  private lastApply: BgpStatus['lastApply'];
  private neighbours: NeighbourStatus[] = [];
  private reachable = false;
  private speakerError: string | undefined;
  private chain: Promise<void> = Promise.resolve();
  private pending = false;
  private pollTimer: TimerHandle | undefined;
  private wakeTimer: TimerHandle | undefined;
  private readonly m;
  private inputs: BgpInputs | undefined;

  constructor(private readonly o: BgpControllerOptions) {
    const registers = [o.metrics];
    this.m = {
      announced: new Gauge({ name: 'fulcrum_bgp_vip_announced', help: '1 while this node announces the VIP over BGP', labelNames: ['vip'], registers }),
      announcements: new Counter({ name: 'fulcrum_bgp_announcements_total', help: 'VIP announcements', labelNames: ['vip'], registers }),
      withdrawals: new Counter({ name: 'fulcrum_bgp_withdrawals_total', help: 'VIP withdrawals by reason', labelNames: ['vip', 'reason'], registers }),
      session: new Gauge({ name: 'fulcrum_bgp_session_up', help: '1 while the BGP session is established', labelNames: ['neighbour', 'address'], registers }),
      bfd: new Gauge({ name: 'fulcrum_bgp_bfd_session_up', help: '1 while the BFD session to the neighbour is up', labelNames: ['neighbour', 'address'], registers }),
      exported: new Gauge({ name: 'fulcrum_bgp_exported_routes', help: 'Routes the session exports (read back from BIRD)', labelNames: ['neighbour'], registers }),
      speaker: new Gauge({ name: 'fulcrum_bgp_speaker_up', help: '1 while BIRD answers on its control socket', registers }),
      applyErrors: new Counter({ name: 'fulcrum_bgp_apply_errors_total', help: 'Includes BIRD refused or could not be given', registers }),
    };
  }

  /** The first decision and apply, then the read-back loop. */
  async start(inputs: BgpInputs): Promise<void> {
    this.inputs = inputs;
    await this.sync();
    await this.readBack();
    this.schedulePoll();
  }

  /** Decide and apply again (after a reconcile, a change, a health transition). Coalesced, one at a time. */
  sync(): Promise<void> {
    if (this.pending) return this.chain;
    this.pending = true;
    this.chain = this.chain.then(async () => {
      this.pending = false;
      await this.syncNow();
    });
    return this.chain;
  }

  setMaintenance(enabled: boolean): Promise<void> {
    this.maintenance = enabled;
    return this.sync();
  }

  /** A clean stop: withdraws every VIP unless keepOnRestart (BIRD keeps announcing what the kernel still forwards). */
  async stop(): Promise<void> {
    if (this.closed) return;
    if (!this.o.settings.keepOnRestart) {
      this.stopping = true;
      await this.sync();
    }
    this.closed = true;
    if (this.pollTimer !== undefined) this.o.clock.clearTimer(this.pollTimer);
    if (this.wakeTimer !== undefined) this.o.clock.clearTimer(this.wakeTimer);
    await this.chain;
  }

  private schedulePoll(): void {
    if (this.closed) return;
    this.pollTimer = this.o.clock.setTimer(() => {
      void this.readBack().finally(() => this.schedulePoll());
    }, this.o.settings.pollSeconds * 1000);
  }

  private async syncNow(): Promise<void> {
    if (this.closed || !this.inputs) return;
    const { settings, clock } = this.o;
    let services: BgpServiceInput[], caughtUp: boolean;
    try {
      ({ services, caughtUp } = await this.inputs());
    } catch (e) {
      this.o.report({ level: 'error', message: `bgp: cannot read the services' state: ${(e as Error).message}` });
      return;
    }
    const d = decide(this.vips, groupByVip(services), {
      maintenance: this.maintenance, stopping: this.stopping, communities: settings.communities, announceDelayMs: settings.announceDelayMs, caughtUp,
    }, clock.now(), clock.wallNow());
    if (this.wakeTimer !== undefined) { clock.clearTimer(this.wakeTimer); this.wakeTimer = undefined; }
    if (d.wakeAt !== undefined && !this.closed) this.wakeTimer = clock.setTimer(() => void this.sync(), Math.max(0, d.wakeAt - clock.now()));
    const text = renderBirdInclude(settings, d.announcements);
    try {
      await this.apply(text);
    } catch (e) {
      const message = (e as Error).message;
      this.m.applyErrors.inc();
      this.lastApply = { time: new Date(clock.wallNow()).toISOString(), result: 'error', error: message };
      this.o.report({ level: 'error', message: `bgp: include not applied; BIRD keeps its previous announcements: ${message}`, fields: { includeFile: settings.includeFile } });
      this.o.events.publish({ type: 'bgp-error', component: 'bgp', message: `include not applied: ${message}` });
      // Announced stays as BIRD has it: the decision is retried on the next sync.
      return;
    }
    this.vips = d.vips;
    for (const v of d.vips.values()) this.m.announced.set({ vip: v.address }, v.announced ? 1 : 0);
    for (const t of d.transitions) {
      if (!d.vips.has(t.address)) this.m.announced.remove({ vip: t.address });
      if (t.action === 'announce') {
        this.m.announcements.inc({ vip: t.address });
        this.o.report({ level: 'info', message: `bgp: announcing ${t.address}`, fields: { vip: t.address, services: t.services } });
        this.o.events.publish({ type: 'bgp-announced', component: 'bgp', message: `announcing ${t.address} (${t.services.join(', ')})`, data: { vip: t.address, services: t.services } });
      } else {
        this.m.withdrawals.inc({ vip: t.address, reason: t.reason ?? 'removed' });
        this.o.report({ level: 'warn', message: `bgp: withdrew ${t.address}: ${t.reason}`, fields: { vip: t.address, reason: t.reason, services: t.services } });
        this.o.events.publish({ type: 'bgp-withdrawn', component: 'bgp', message: `withdrew ${t.address}: ${t.reason}`, data: { vip: t.address, reason: t.reason, services: t.services } });
      }
    }
  }

  /** Writes the include, has BIRD check it, and applies it; a refused include is put back. */
  private async apply(text: string): Promise<void> {
    const { settings, bird, clock } = this.o;
    const path = settings.includeFile;
    const onDisk = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    if (text === this.applied && onDisk === text) return;
    writeFileAtomic(path, text, 0o644);
    try {
      await bird.configureCheck();
    } catch (e) {
      if (onDisk === undefined) writeFileAtomic(path, renderBirdInclude(settings, []), 0o644);
      else writeFileAtomic(path, onDisk, 0o644);
      throw e;
    }
    await bird.configure();
    this.applied = text;
    this.lastApply = { time: new Date(clock.wallNow()).toISOString(), result: 'ok' };
  }

  /** Sessions, exports and BFD as BIRD has them now. */
  async readBack(): Promise<void> {
    const { settings, bird } = this.o;
    let protocols: BirdProtocol[], bfd: BirdBfdSession[];
    try {
      protocols = await bird.showProtocols();
      bfd = await bird.showBfdSessions();
    } catch (e) {
      if (this.reachable || this.speakerError === undefined) this.o.report({ level: 'warn', message: `bgp: BIRD does not answer: ${(e as Error).message}` });
      this.reachable = false;
      this.speakerError = (e as Error).message;
      this.m.speaker.set(0);
      for (const n of this.neighbours) { this.m.session.set({ neighbour: n.name, address: n.address }, 0); this.m.bfd.set({ neighbour: n.name, address: n.address }, 0); }
      return;
    }
    this.reachable = true;
    this.speakerError = undefined;
    this.m.speaker.set(1);
    const out: NeighbourStatus[] = [];
    for (const n of settings.neighbours) {
      const protocol = PROTO.neighbour(n);
      const p = protocols.find((x) => x.name === protocol);
      const established = p?.state === 'up' && /Established/.test(p.info);
      const exported = established ? await bird.showRouteExport(protocol).catch(() => []) : [];
      const session = bfd.find((s) => s.address === n.address);
      const status: NeighbourStatus = {
        name: n.name, protocol, address: n.address, asn: n.asn,
        state: p?.state ?? 'absent', info: p?.info ?? '', established, bfd: session?.state, exported,
      };
      const before = this.neighbours.find((x) => x.name === n.name);
      if (before && before.established !== established) {
        this.o.report({ level: established ? 'info' : 'warn', message: `bgp: session to ${n.address} ${established ? 'established' : `down (${status.state} ${status.info})`}` });
        this.o.events.publish({ type: 'bgp-session', component: 'bgp', message: `session to ${n.address} (AS ${n.asn}) ${established ? 'established' : 'down'}`, data: { neighbour: n.name, address: n.address, established, bfd: status.bfd } });
      }
      this.m.session.set({ neighbour: n.name, address: n.address }, established ? 1 : 0);
      this.m.bfd.set({ neighbour: n.name, address: n.address }, session?.state === 'Up' ? 1 : 0);
      this.m.exported.set({ neighbour: n.name }, exported.length);
      out.push(status);
    }
    this.neighbours = out;
  }

  status(): BgpStatus {
    const { settings } = this.o;
    return {
      speaker: { controlSocket: settings.controlSocket, includeFile: settings.includeFile, reachable: this.reachable, ...(this.speakerError ? { error: this.speakerError } : {}) },
      maintenance: this.maintenance,
      keepOnRestart: settings.keepOnRestart,
      lastApply: this.lastApply,
      vips: [...this.vips.values()].map((v) => ({
        address: v.address, announced: v.announced, since: new Date(v.since).toISOString(),
        ...(v.reason ? { reason: v.reason } : {}), communities: v.communities, services: v.services,
      })),
      neighbours: this.neighbours,
    };
  }
}
