import type { Clock } from '../util/clock.js';
import { compareAddresses, VRRP_TTL, type VrrpAdvert } from './codec.js';

/**
 * The VRRP state machine of one virtual router, RFC 5798 §6 (v3) and RFC 3768 §6 (v2). Pure: time
 * comes from the injected Clock, packets go out through `MachineOutput`, so tests step it.
 * States: Initialize ('init'), Backup, Master, plus 'fault' (keepalived's FAULT: a tracked link or
 * script forces the router silent, as if shut down, until it recovers).
 */

export type VrrpState = 'init' | 'backup' | 'master' | 'fault';

/** RFC 5798 §6.1: priority 255 is the address owner, 0 means "the master stopped". */
export const PRIORITY_OWNER = 255;
export const PRIORITY_STOP = 0;

export interface MachineConfig {
  version: 2 | 3;
  vrid: number;
  /** Configured priority (before tracking adjusts it). */
  priority: number;
  /** Advertisement_Interval in centiseconds (v2: whole seconds x 100). */
  advertIntervalCs: number;
  preempt: boolean;
  /** Milliseconds after start during which a lower-priority master is not preempted. */
  preemptDelayMs: number;
  /** Our primary address on the interface: the tie-break of §6.4.3. */
  primaryAddress: string;
}

export interface TransitionInfo {
  from: VrrpState;
  to: VrrpState;
  reason: string;
}

export interface SplitBrainInfo {
  peer: string;
  peerPriority: number;
  ourPriority: number;
  /** true: we keep mastership (the peer must yield); false: we yield to the peer. */
  weWin: boolean;
}

export interface MachineOutput {
  /** Send one advertisement carrying `priority` (0 when stopping). */
  sendAdvert(priority: number): void;
  /** Called after every state change; the owner adds/removes VIPs, sends GARP, publishes. */
  transition(info: TransitionInfo): void;
  /** Another router advertised while we were master (resolved per §6.4.3 before this is called). */
  splitBrain?(info: SplitBrainInfo): void;
}

/** Master_Adver_Interval, Skew_Time and Master_Down_Interval in ms for a priority. */
export function timers(version: 2 | 3, priority: number, masterAdverIntervalCs: number): { skewMs: number; masterDownMs: number } {
  if (version === 3) {
    // RFC 5798 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 (centiseconds);
    // Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
    const skewMs = ((256 - priority) * masterAdverIntervalCs * 10) / 256;
    return { skewMs, masterDownMs: 3 * masterAdverIntervalCs * 10 + skewMs };
  }
  // RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds; Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time.
  const skewMs = ((256 - priority) * 1000) / 256;
  return { skewMs, masterDownMs: 3 * masterAdverIntervalCs * 10 + skewMs };
}

export class VrrpMachine {
  private current: VrrpState = 'init';
  private timer: unknown;
  private effective: number;
  private masterAdverIntervalCs: number;
  private preemptAfter = 0;
  /** Planned hand-over (setMaintenance): stay backup, never take over. */
  private maintenance = false;
  /** Address and priority of the current master as last seen (ours when master). */
  private master: { address: string; priority: number } | undefined;

  constructor(private readonly cfg: MachineConfig, private readonly clock: Clock, private readonly out: MachineOutput) {
    this.effective = cfg.priority;
    this.masterAdverIntervalCs = cfg.advertIntervalCs;
  }

  get state(): VrrpState {
    return this.current;
  }

  get priority(): number {
    return this.effective;
  }

  get masterAddress(): string | undefined {
    return this.current === 'master' ? this.cfg.primaryAddress : this.master?.address;
  }

  get inMaintenance(): boolean {
    return this.maintenance;
  }

  get masterAdvertIntervalCs(): number {
    return this.masterAdverIntervalCs;
  }

  /** RFC 5798 §6.4.1: the Startup event; with a fault reason the router starts silent in fault. */
  start(faultReason?: string): void {
    if (this.current !== 'init') return;
    this.preemptAfter = this.clock.now() + this.cfg.preemptDelayMs;
    if (faultReason !== undefined) this.move('fault', faultReason);
    else if (this.effective === PRIORITY_OWNER && !this.maintenance) this.becomeMaster('owner (priority 255)');
    else this.becomeBackup(this.maintenance ? 'startup in maintenance' : 'startup');
  }

  /**
   * Planned hand-over: a master gives the VIPs up at once with priority 0, as on a stop, so a
   * backup takes over after its Skew_Time (RFC 5798 §6.4.2); the router then stays backup and never
   * takes over (no Master_Down timer) until maintenance ends, when it runs the election again.
   */
  setMaintenance(on: boolean): void {
    if (on === this.maintenance) return;
    this.maintenance = on;
    if (on && this.current === 'master') {
      this.cancel();
      this.out.sendAdvert(PRIORITY_STOP);
      this.master = undefined;
      this.becomeBackup('maintenance: handed over with priority 0');
    } else if (on && this.current === 'backup') {
      this.cancel();
    } else if (!on && this.current === 'backup') {
      if (this.effective === PRIORITY_OWNER) this.becomeMaster('maintenance ended: owner (priority 255)');
      else this.armMasterDown();
    }
  }

  /** RFC 5798 §6.4.2/§6.4.3 Shutdown: a master sends priority 0 so a backup takes over after Skew_Time. */
  stop(): void {
    this.cancel();
    if (this.current === 'master') this.out.sendAdvert(PRIORITY_STOP);
    if (this.current !== 'init') this.move('init', 'shutdown');
  }

  /** Tracking moved the effective priority; 255 stays 255 (the owner is never tracked down). */
  setPriority(priority: number): void {
    this.effective = this.cfg.priority === PRIORITY_OWNER ? PRIORITY_OWNER : Math.max(1, Math.min(254, priority));
  }

  /** A tracked link or script forces FAULT (true) or releases it (false). */
  setFault(fault: boolean, reason: string): void {
    if (fault && this.current !== 'fault') {
      this.cancel();
      if (this.current === 'master') this.out.sendAdvert(PRIORITY_STOP);
      this.move('fault', reason);
    } else if (!fault && this.current === 'fault') {
      this.current = 'init';
      this.preemptAfter = this.clock.now() + this.cfg.preemptDelayMs;
      if (this.effective === PRIORITY_OWNER && !this.maintenance) this.becomeMaster(reason, 'fault');
      else this.becomeBackup(reason, 'fault');
    }
  }

  /** Sync group: another member became master, follow it. */
  forceMaster(reason: string): void {
    if (this.current === 'backup' && !this.maintenance) this.becomeMaster(reason);
  }

  /** Sync group: another member yielded, yield too (no priority 0: the peer takes over by its timer). */
  forceBackup(reason: string): void {
    if (this.current === 'master') this.becomeBackup(reason);
  }

  /** An advertisement that passed validation (validateAdvert) for this VRID. */
  receive(advert: Pick<VrrpAdvert, 'priority' | 'interval'>, src: string): void {
    if (this.current === 'backup') this.receiveInBackup(advert, src);
    else if (this.current === 'master') this.receiveInMaster(advert, src);
    // init/fault: not listening (§6.4.1 has no receive event).
  }

  private receiveInBackup(advert: Pick<VrrpAdvert, 'priority' | 'interval'>, src: string): void {
    if (advert.priority === PRIORITY_STOP) {
      // §6.4.2: the master is going away; take over after Skew_Time only.
      this.master = undefined;
      if (this.maintenance) return;
      this.arm(timers(this.cfg.version, this.effective, this.masterAdverIntervalCs).skewMs, () => this.becomeMaster('master sent priority 0'));
      return;
    }
    const holding = this.cfg.preemptDelayMs > 0 && this.clock.now() < this.preemptAfter;
    // In maintenance every master is accepted (a lower priority one too): it holds the VIPs for us.
    if (this.maintenance || !this.cfg.preempt || holding || advert.priority >= this.effective) {
      // §6.4.2: accept this master; v3 learns its interval (v2 checked it matches ours).
      if (this.cfg.version === 3) this.masterAdverIntervalCs = advert.interval;
      this.master = { address: src, priority: advert.priority };
      this.armMasterDown();
    }
    // else: discard; the Master_Down_Timer runs out and we preempt.
  }

  private receiveInMaster(advert: Pick<VrrpAdvert, 'priority' | 'interval'>, src: string): void {
    if (advert.priority === PRIORITY_STOP) {
      // §6.4.3: another router is shutting down; reassert at once.
      this.out.sendAdvert(this.effective);
      this.armAdvert();
      return;
    }
    const theyWin = advert.priority > this.effective || (advert.priority === this.effective && compareAddresses(src, this.cfg.primaryAddress) > 0);
    this.out.splitBrain?.({ peer: src, peerPriority: advert.priority, ourPriority: this.effective, weWin: !theyWin });
    if (theyWin) {
      if (this.cfg.version === 3) this.masterAdverIntervalCs = advert.interval;
      this.master = { address: src, priority: advert.priority };
      this.becomeBackup(`higher priority master ${src} (${advert.priority})`);
    } else {
      // §6.4.3 says discard; like keepalived we also advertise at once so the peer yields now.
      this.out.sendAdvert(this.effective);
      this.armAdvert();
    }
  }

  private becomeMaster(reason: string, from?: VrrpState): void {
    this.cancel();
    this.master = undefined;
    // §6.4.1/§6.4.2: send an advert, (the owner) broadcasts gratuitous ARP, arm the Adver_Timer.
    this.out.sendAdvert(this.effective);
    this.armAdvert();
    this.move('master', reason, from);
  }

  private becomeBackup(reason: string, from?: VrrpState): void {
    this.cancel();
    // §6.4.1: Master_Adver_Interval starts at our own Advertisement_Interval until a master is heard.
    if (this.current !== 'master') this.masterAdverIntervalCs = this.cfg.advertIntervalCs;
    this.armMasterDown();
    this.move('backup', reason, from);
  }

  private move(to: VrrpState, reason: string, fromOverride?: VrrpState): void {
    const from = fromOverride ?? this.current;
    this.current = to;
    this.out.transition({ from, to, reason });
  }

  private armAdvert(): void {
    this.arm(this.cfg.advertIntervalCs * 10, () => {
      this.out.sendAdvert(this.effective);
      this.armAdvert();
    });
  }

  private armMasterDown(): void {
    if (this.maintenance) return this.cancel();
    this.arm(timers(this.cfg.version, this.effective, this.masterAdverIntervalCs).masterDownMs, () => this.becomeMaster('master down timer expired'));
  }

  private arm(ms: number, fn: () => void): void {
    this.cancel();
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      fn();
    }, ms);
  }

  private cancel(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }
}

/** Why a received packet is dropped (counted per reason), or why it is only logged. */
export type DropReason =
  | 'ttl'
  | 'version'
  | 'unknown-vrid'
  | 'auth-type'
  | 'auth-password'
  | 'interval-mismatch'
  | 'own-packet'
  | 'not-from-peer';

export interface ReceiveCheckConfig {
  version: 2 | 3;
  advertIntervalCs: number;
  addresses: string[];
  authType: 0 | 1;
  authData: Buffer;
  /** Unicast peers: adverts from anyone else are dropped. */
  peers?: string[];
  ownAddresses: string[];
}

export type ReceiveCheck = { ok: true; warnings: string[] } | { ok: false; reason: DropReason; detail: string };

/**
 * RFC 5798 §7.1 / RFC 3768 §7.1 receive checks beyond what the codec verifies (length, version
 * number, type, checksum, address count are the codec's).
 */
export function checkReceived(advert: VrrpAdvert, ttl: number | undefined, src: string, cfg: ReceiveCheckConfig): ReceiveCheck {
  if (cfg.ownAddresses.includes(src)) return { ok: false, reason: 'own-packet', detail: `from our own address ${src}` };
  // §7.1: MUST verify that the IP TTL / hop limit is 255 (a routed packet is not from this link).
  if (ttl !== undefined && ttl !== VRRP_TTL) return { ok: false, reason: 'ttl', detail: `TTL ${ttl} from ${src}` };
  if (advert.version !== cfg.version) return { ok: false, reason: 'version', detail: `VRRPv${advert.version} from ${src}, we run v${cfg.version}` };
  if (cfg.peers && !cfg.peers.includes(src)) return { ok: false, reason: 'not-from-peer', detail: `${src} is not a configured unicast peer` };
  const warnings: string[] = [];
  if (advert.version === 2) {
    // RFC 3768 §7.1: the Auth Type must match; type 1 carries the password in clear.
    if ((advert.authType ?? 0) !== cfg.authType) return { ok: false, reason: 'auth-type', detail: `auth type ${advert.authType} from ${src}, we use ${cfg.authType}` };
    if (cfg.authType === 1 && !cfg.authData.equals(advert.authData ?? Buffer.alloc(8))) return { ok: false, reason: 'auth-password', detail: `wrong password from ${src}` };
    // RFC 3768 §7.1: MUST discard an advert whose Adver Int differs from ours.
    if (advert.interval * 100 !== cfg.advertIntervalCs) return { ok: false, reason: 'interval-mismatch', detail: `advert interval ${advert.interval}s from ${src}, ours ${cfg.advertIntervalCs / 100}s` };
  } else if (advert.interval !== cfg.advertIntervalCs) {
    // RFC 5798 §6.4.2: a backup adopts the master's interval; the mismatch is only worth a log line.
    warnings.push(`advert interval ${advert.interval}cs from ${src}, ours ${cfg.advertIntervalCs}cs`);
  }
  // §7.1: MAY verify the address list; a mismatch SHOULD be logged (misconfiguration), not dropped.
  if (advert.priority !== PRIORITY_OWNER) {
    const theirs = [...advert.addresses].sort().join(',');
    const ours = [...cfg.addresses].sort().join(',');
    if (theirs !== ours) warnings.push(`address list from ${src} (${theirs}) differs from ours (${ours})`);
  }
  return { ok: true, warnings };
}
