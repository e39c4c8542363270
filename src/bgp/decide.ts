import type { Family } from '../model/net.js';
import type { Announcement } from './render.js';

/**
 * When a node announces a VIP (pure; the caller gives the inputs and the time). A VIP is
 * announced while at least one of its services that wants it announced is programmed in the
 * dataplane (read back from the kernel) and has a healthy backend (its health quorum held), the
 * node is not in maintenance and the agent is not stopping; it must have been so for
 * `announceDelayMs` first, and a VIP not announced yet waits until the node runs the cluster's
 * current revision. Every other case withdraws it, with the reason.
 */

export type WithdrawReason = 'not-wanted' | 'not-programmed' | 'no-healthy-backend' | 'maintenance' | 'agent-stop' | 'behind-cluster' | 'removed';

export interface ServiceInput {
  name: string;
  /** The service asks to be announced (its bgp.announce, or agent.bgp.announce). */
  wanted: boolean;
  /** The dataplane holds the service (read back from the kernel, not assumed from the plan). */
  programmed: boolean;
  /** It has a healthy backend (its quorum held, when it has one). */
  healthy: boolean;
  communities: readonly string[];
}

export interface VipInput {
  address: string;
  family: Family;
  services: readonly ServiceInput[];
}

export interface NodeInput {
  maintenance: boolean;
  /** A clean agent stop that should withdraw (keepOnRestart false). */
  stopping: boolean;
  /** Added to every VIP's communities. */
  communities: readonly string[];
  announceDelayMs: number;
  /**
   * The node runs the cluster's current shared state (always, with the file store). A node that is
   * not (started from its local cache while etcd is down, or its watch is cut off) announces no VIP
   * it was not announcing: routers must not send it flows for a state the cluster may have left.
   * What it announces already stays (every node is briefly behind after each write).
   */
  caughtUp: boolean;
}

export interface VipState {
  address: string;
  family: Family;
  announced: boolean;
  /** Wall-clock ms of the last change of `announced`. */
  since: number;
  /** Why the VIP is not announced. */
  reason?: WithdrawReason | undefined;
  /** Monotonic ms since which it could be announced (for announceDelayMs). */
  eligibleSince?: number | undefined;
  communities: string[];
  /** The services that carry the announcement. */
  services: string[];
}

export interface Transition {
  address: string;
  action: 'announce' | 'withdraw';
  reason?: WithdrawReason;
  services: string[];
}

export interface Decision {
  vips: Map<string, VipState>;
  transitions: Transition[];
  /** What the speaker should announce now. */
  announcements: Announcement[];
  /** Monotonic ms at which to decide again (a VIP waiting for announceDelayMs). */
  wakeAt?: number | undefined;
}

function blocker(vip: VipInput, node: NodeInput): WithdrawReason | undefined {
  const wanted = vip.services.filter((s) => s.wanted);
  if (wanted.length === 0) return 'not-wanted';
  if (node.stopping) return 'agent-stop';
  if (node.maintenance) return 'maintenance';
  const programmed = wanted.filter((s) => s.programmed);
  if (programmed.length === 0) return 'not-programmed';
  if (!programmed.some((s) => s.healthy)) return 'no-healthy-backend';
  return undefined;
}

export function decide(prev: ReadonlyMap<string, VipState>, vips: readonly VipInput[], node: NodeInput, now: number, wallNow: number): Decision {
  const next = new Map<string, VipState>();
  const transitions: Transition[] = [];
  let wakeAt: number | undefined;
  for (const vip of vips) {
    const before = prev.get(vip.address);
    const reason = blocker(vip, node) ?? (!node.caughtUp && !before?.announced ? 'behind-cluster' : undefined);
    const carriers = vip.services.filter((s) => s.wanted && s.programmed && s.healthy);
    const services = carriers.map((s) => s.name).sort();
    const communities = [...new Set([...node.communities, ...carriers.flatMap((s) => s.communities)])].sort();
    let state: VipState;
    if (reason) {
      state = { address: vip.address, family: vip.family, announced: false, since: before && !before.announced ? before.since : wallNow, reason, communities: [], services: [] };
      if (before?.announced) transitions.push({ address: vip.address, action: 'withdraw', reason, services: before.services });
    } else {
      const eligibleSince = before?.announced ? before.eligibleSince ?? now : before?.eligibleSince ?? now;
      const ready = before?.announced || now - eligibleSince >= node.announceDelayMs;
      if (ready) {
        state = { address: vip.address, family: vip.family, announced: true, since: before?.announced ? before.since : wallNow, eligibleSince, communities, services };
        if (!before?.announced) transitions.push({ address: vip.address, action: 'announce', services });
      } else {
        state = { address: vip.address, family: vip.family, announced: false, since: before?.since ?? wallNow, reason: before?.reason ?? 'not-programmed', eligibleSince, communities: [], services: [] };
        const at = eligibleSince + node.announceDelayMs;
        wakeAt = wakeAt === undefined ? at : Math.min(wakeAt, at);
      }
    }
    next.set(vip.address, state);
  }
  for (const [address, before] of prev) {
    if (next.has(address) || !before.announced) continue;
    transitions.push({ address, action: 'withdraw', reason: 'removed', services: before.services });
  }
  const announcements = [...next.values()].filter((v) => v.announced).map((v) => ({ address: v.address, family: v.family, communities: v.communities }));
  return { vips: next, transitions, announcements, wakeAt };
}

/**
 * The VIPs of a desired state with their services' inputs: one entry per address (services on
 * several ports of one VIP share its route).
 */
export function groupByVip(services: ReadonlyArray<{ address: string; family: Family } & ServiceInput>): VipInput[] {
  const out = new Map<string, { address: string; family: Family; services: ServiceInput[] }>();
  for (const s of services) {
    const { address, family, ...input } = s;
    let v = out.get(address);
    if (!v) out.set(address, (v = { address, family, services: [] }));
    v.services.push(input);
  }
  return [...out.values()];
}
