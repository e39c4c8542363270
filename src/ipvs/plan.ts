import { FulcrumError } from '../errors.js';
import type { IpvsDestSpec, IpvsServiceKey, IpvsServiceSpec } from './types.js';
import {
  comparableService, destId, destSpecOnly, keyString, sameDest, sameService, serviceSpecOnly,
  type DesiredIpvsService,
} from './model-specs.js';

/**
 * The IPVS planner: `plan(desired, observed, owned)` -> the steps that bring the kernel from
 * observed to desired. Pure. It changes only what differs, never flushes, and only touches services
 * whose key is in `owned`; a desired key held by a service Fulcrum does not own is a CONFLICT.
 */

/** What the kernel holds for one service (specs only; live counters ride along for drains). */
export interface ObservedIpvsService {
  spec: IpvsServiceSpec;
  dests: ObservedDest[];
}
export type ObservedDest = IpvsDestSpec & { activeConnections?: number; inactiveConnections?: number };

/** A backend being drained: removed from desired, weight 0, deleted when idle or at `deadline`. */
export interface DrainRecord {
  key: string;
  dest: string;
  service: string;
  startedAt: number;
  deadline: number;
}

interface StepBase {
  /** The service's name (or its kernel key for an owned service no longer desired). */
  service: string;
  key: IpvsServiceKey;
  /** keyString(key), computed once. */
  keyText: string;
  description: string;
}
export type Step =
  | (StepBase & { kind: 'add-service'; spec: IpvsServiceSpec })
  | (StepBase & { kind: 'edit-service'; spec: IpvsServiceSpec; previous: IpvsServiceSpec })
  | (StepBase & { kind: 'delete-service'; previous: ObservedIpvsService })
  | (StepBase & { kind: 'add-dest'; dest: IpvsDestSpec })
  | (StepBase & { kind: 'edit-dest'; dest: IpvsDestSpec; previous: IpvsDestSpec })
  | (StepBase & { kind: 'drain-dest'; dest: IpvsDestSpec; previous: IpvsDestSpec; activeConnections: number })
  | (StepBase & { kind: 'delete-dest'; previous: IpvsDestSpec; reason: 'removed' | 'drained' | 'drain-timeout' });
export type StepKind = Step['kind'];

export interface PlanOptions {
  /** Drain removed backends (weight 0 first) instead of deleting them at once. Default true. */
  drain?: boolean;
  /** Backends already draining, by `${key} ${dest}`. */
  drains?: ReadonlyMap<string, DrainRecord>;
  /** Current time in ms (for drain deadlines). */
  now?: number;
}

export function drainId(key: string, dest: string): string {
  return `${key} ${dest}`;
}

function fmtDest(d: IpvsDestSpec): string {
  let s = `${destId(d)} ${d.forward} weight ${d.weight}`;
  if (d.upperThreshold || d.lowerThreshold) s += ` thresholds ${d.lowerThreshold}-${d.upperThreshold}`;
  if (d.forward === 'tunnel') s += ` ${d.tunnelType ?? 'ipip'}${d.tunnelPort ? `:${d.tunnelPort}` : ''}`;
  return s;
}

function fmtService(spec: IpvsServiceSpec): string {
  const c = comparableService(spec);
  let s = `${keyString(spec.key)} ${c.scheduler}`;
  if (c.flags & ~1) s += ` flags 0x${(c.flags & ~1).toString(16)}`;
  if (c.flags & 1) s += ` persistent ${c.timeout}`;
  return s;
}

function serviceChanges(from: IpvsServiceSpec, to: IpvsServiceSpec): string {
  const a = comparableService(from), b = comparableService(to);
  const out: string[] = [];
  for (const f of ['scheduler', 'flags', 'timeout', 'netmask', 'pe'] as const) if (a[f] !== b[f]) out.push(`${f} ${a[f]} -> ${b[f]}`);
  return out.join(', ');
}

function destChanges(from: IpvsDestSpec, to: IpvsDestSpec): string {
  const out: string[] = [];
  for (const f of ['forward', 'weight', 'upperThreshold', 'lowerThreshold', 'tunnelType', 'tunnelPort', 'tunnelFlags'] as const)
    if ((from[f] ?? '') !== (to[f] ?? '')) out.push(`${f} ${from[f] ?? '-'} -> ${to[f] ?? '-'}`);
  return out.join(', ');
}

/** Kernel keys in `observed` that Fulcrum does not own: reported, never touched. */
export function foreignKeys(observed: ReadonlyMap<string, ObservedIpvsService>, owned: ReadonlySet<string>): string[] {
  return [...observed.keys()].filter((k) => !owned.has(k)).sort();
}

/**
 * Steps are ordered so that each is valid after the previous ones: service deletions, service
 * edits and additions, then per service its destination deletions, edits, drains and additions.
 */
export function plan(
  desired: readonly DesiredIpvsService[],
  observed: ReadonlyMap<string, ObservedIpvsService>,
  owned: ReadonlySet<string>,
  options: PlanOptions = {},
): Step[] {
  const drain = options.drain ?? true;
  const now = options.now ?? 0;
  const drains = options.drains ?? new Map<string, DrainRecord>();
  const wanted = new Map<string, DesiredIpvsService>();
  const conflicts: string[] = [];
  for (const d of desired) {
    const k = keyString(d.spec.key);
    wanted.set(k, d);
    if (observed.has(k) && !owned.has(k)) conflicts.push(`service ${d.name}: ${k} already exists in the kernel and is not owned by Fulcrum`);
  }
  if (conflicts.length > 0)
    throw new FulcrumError('CONFLICT', `${conflicts.join('\n')}\n(remove it with ipvsadm -D or change the service's address)`, { details: { conflicts } });

  const steps: Step[] = [];
  // Owned services no longer desired.
  for (const [k, obs] of observed) {
    if (!owned.has(k) || wanted.has(k)) continue;
    steps.push({ kind: 'delete-service', service: k, key: obs.spec.key, keyText: k, previous: obs, description: `- service ${k}` });
  }
  for (const [k, want] of wanted) {
    const obs = observed.get(k);
    const base = { service: want.name, key: want.spec.key, keyText: k };
    if (!obs) {
      steps.push({ ...base, kind: 'add-service', spec: want.spec, description: `+ service ${want.name} ${fmtService(want.spec)}` });
      for (const d of want.dests)
        steps.push({ ...base, kind: 'add-dest', dest: d, description: `+ backend ${fmtDest(d)} to ${want.name}` });
      continue;
    }
    if (!sameService(obs.spec, want.spec)) {
      steps.push({
        ...base, kind: 'edit-service', spec: want.spec, previous: serviceSpecOnly(obs.spec),
        description: `~ service ${want.name} ${k}: ${serviceChanges(obs.spec, want.spec)}`,
      });
    }
    const wantDests = new Map(want.dests.map((d) => [destId(d), d]));
    const adds: Step[] = [];
    for (const o of obs.dests) {
      const id = destId(o);
      const w = wantDests.get(id);
      if (w) {
        wantDests.delete(id);
        if (!sameDest(o, w))
          steps.push({ ...base, kind: 'edit-dest', dest: w, previous: destSpecOnly(o), description: `~ backend ${id} of ${want.name}: ${destChanges(o, w)}` });
        continue;
      }
      steps.push(...removeDest(base, want.name, k, o, drain, drains.get(drainId(k, id)), now));
    }
    for (const d of wantDests.values())
      adds.push({ ...base, kind: 'add-dest', dest: d, description: `+ backend ${fmtDest(d)} to ${want.name}` });
    steps.push(...adds);
  }
  return steps;
}

function removeDest(
  base: { service: string; key: IpvsServiceKey; keyText: string },
  name: string, k: string, o: ObservedDest, drain: boolean, record: DrainRecord | undefined, now: number,
): Step[] {
  const id = destId(o);
  const active = o.activeConnections ?? 0;
  const previous = destSpecOnly(o);
  const del = (reason: 'removed' | 'drained' | 'drain-timeout', why: string): Step[] => [
    { ...base, kind: 'delete-dest', previous, reason, description: `- backend ${id} from ${name}${why}` },
  ];
  if (!drain) return del('removed', '');
  if (active === 0) return del(record ? 'drained' : 'removed', record ? ' (drained)' : '');
  if (record && now >= record.deadline) return del('drain-timeout', ` (drain timeout, ${active} active connections)`);
  if (o.weight === 0) return []; // draining: nothing to change until it is idle or its deadline passes
  return [{
    ...base, kind: 'drain-dest', dest: { ...previous, weight: 0 }, previous, activeConnections: active,
    description: `~ backend ${id} of ${name}: drain (weight ${o.weight} -> 0, ${active} active connections)`,
  }];
}

/**
 * What the kernel holds after `steps` succeed on `observed` (the reconciler's cache and the
 * planner's property tests use it). Pure: returns a new map.
 */
export function applyToObserved(observed: ReadonlyMap<string, ObservedIpvsService>, steps: readonly Step[]): Map<string, ObservedIpvsService> {
  return applyToObservedInPlace(new Map(observed), steps);
}

/** The same, updating `out` itself (its service entries are still copied before they change). */
export function applyToObservedInPlace(out: Map<string, ObservedIpvsService>, steps: readonly Step[]): Map<string, ObservedIpvsService> {
  const copied = new Set<string>(); // copy each touched service once (copy on write)
  const touch = (k: string): ObservedIpvsService => {
    const s = out.get(k);
    if (!s) throw new Error(`applyToObserved: no service ${k}`);
    if (copied.has(k)) return s;
    const copy = { spec: s.spec, dests: [...s.dests] };
    out.set(k, copy);
    copied.add(k);
    return copy;
  };
  for (const step of steps) {
    const k = step.keyText;
    switch (step.kind) {
      case 'add-service': out.set(k, { spec: serviceSpecOnly(step.spec), dests: [] }); copied.add(k); break;
      case 'edit-service': touch(k).spec = serviceSpecOnly(step.spec); break;
      case 'delete-service': out.delete(k); break;
      case 'add-dest': touch(k).dests.push({ ...destSpecOnly(step.dest), activeConnections: 0, inactiveConnections: 0 }); break;
      case 'edit-dest':
      case 'drain-dest': {
        const s = touch(k);
        const i = s.dests.findIndex((d) => destId(d) === destId(step.dest));
        if (i >= 0) s.dests[i] = { ...s.dests[i], ...destSpecOnly(step.dest) };
        break;
      }
      case 'delete-dest': {
        const s = touch(k);
        s.dests = s.dests.filter((d) => destId(d) !== destId(step.previous));
        break;
      }
      default: {
        const never: never = step;
        throw new Error(`unhandled step ${(never as Step).kind}`);
      }
    }
  }
  return out;
}
