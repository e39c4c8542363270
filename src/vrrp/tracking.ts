import type { VrrpInstance } from '../model/vrrp.js';
import type { LinkInfo } from './kernel.js';

/**
 * From what an instance tracks (links, services, scripts) to its effective priority and fault, by
 * keepalived's rules. Pure: the caller passes the states.
 */

export interface TrackedStates {
  /** The host's links by name. */
  readonly links: ReadonlyMap<string, LinkInfo>;
  /** Services below their health quorum are false; a service not reported yet counts as healthy. */
  readonly serviceHealth: ReadonlyMap<string, boolean>;
  /** Whether the instance's track script of that name fails (after rise/fall). */
  scriptFails(name: string): boolean;
}

const linkUp = (s: TrackedStates, name: string): boolean => s.links.get(name)?.up ?? false;
const serviceHealthy = (s: TrackedStates, name: string): boolean => s.serviceHealth.get(name) ?? true;

/** keepalived's rule: weight > 0 adds while the tracked thing is OK, weight < 0 adds while it fails. */
export function trackedPriority(cfg: VrrpInstance, s: TrackedStates): number {
  let p = cfg.priority;
  const add = (ok: boolean, weight: number | undefined) => {
    if (weight === undefined) return;
    if (weight > 0 && ok) p += weight;
    if (weight < 0 && !ok) p += weight;
  };
  for (const t of cfg.track.interfaces) add(linkUp(s, t.interface), t.weight);
  for (const t of cfg.track.services) add(serviceHealthy(s, t.service), t.weight);
  for (const t of cfg.track.scripts) add(!s.scriptFails(t.name), t.weight);
  return p;
}

/** Why the instance is in fault: its own link missing or down, or a failing tracked thing without a weight. */
export function faultReason(cfg: VrrpInstance, s: TrackedStates): string | undefined {
  const own = s.links.get(cfg.interface);
  if (!own) return `interface ${cfg.interface} not found`;
  if (!own.up) return `interface ${cfg.interface} is down`;
  for (const t of cfg.track.interfaces) if (t.weight === undefined && !linkUp(s, t.interface)) return `tracked interface ${t.interface} is down`;
  for (const t of cfg.track.services) if (t.weight === undefined && !serviceHealthy(s, t.service)) return `tracked service ${t.service} is below quorum`;
  for (const t of cfg.track.scripts) if (t.weight === undefined && s.scriptFails(t.name)) return `track script ${t.name} fails`;
  return undefined;
}
