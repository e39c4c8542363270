import type { DesiredState, Service } from '../model/index.js';
import { formatEndpoint, serviceKey } from '../model/index.js';
import { canonicalJson, sameValue } from '../util/json-value.js';

/**
 * A readable, dataplane-independent diff of two desired states: what `fulcrum apply --dry-run`
 * prints before the dataplanes' own steps. Pure.
 */
export interface DiffLine {
  op: '+' | '-' | '~';
  /** Service name, or "xdp"/"vrrp" for node-wide sections. */
  subject: string;
  text: string;
}

const SERVICE_FIELDS = ['dataplane', 'address', 'port', 'protocol', 'fwmark', 'family', 'scheduler', 'schedulerFlags', 'forwarding', 'tunnel', 'persistence', 'health', 'description'] as const;

function show(v: unknown): string {
  return v === undefined ? '(none)' : typeof v === 'object' ? canonicalJson(v) : String(v);
}

function backendText(b: Service['backends'][number]): string {
  const extra = [`weight ${b.weight}`];
  if (b.upperThreshold) extra.push(`upper ${b.upperThreshold}`);
  if (b.lowerThreshold) extra.push(`lower ${b.lowerThreshold}`);
  if (b.mac) extra.push(`mac ${b.mac}`);
  return `${formatEndpoint(b.address, b.port)} ${extra.join(' ')}`;
}

export function diffServices(before: Service | undefined, after: Service | undefined): DiffLine[] {
  const subject = (after ?? before)!.name;
  if (!before && after) {
    return [
      { op: '+', subject, text: `service ${subject} ${serviceKey(after)} on ${after.dataplane} (${after.scheduler}, ${after.forwarding})` },
      ...after.backends.map((b) => ({ op: '+' as const, subject, text: `  backend ${backendText(b)}` })),
    ];
  }
  if (before && !after) return [{ op: '-', subject, text: `service ${subject} ${serviceKey(before)} on ${before.dataplane} with ${before.backends.length} backend(s)` }];
  if (!before || !after || sameValue(before, after)) return [];
  const lines: DiffLine[] = [];
  for (const f of SERVICE_FIELDS) {
    const a = before[f], b = after[f];
    if (!sameValue(a, b)) lines.push({ op: '~', subject, text: `service ${subject} ${f}: ${show(a)} -> ${show(b)}` });
  }
  const key = (b: Service['backends'][number]) => formatEndpoint(b.address, b.port);
  const old = new Map(before.backends.map((b) => [key(b), b]));
  const now = new Map(after.backends.map((b) => [key(b), b]));
  for (const [k, b] of now) {
    const o = old.get(k);
    if (!o) lines.push({ op: '+', subject, text: `  backend ${backendText(b)} to ${subject}` });
    else if (!sameValue(o, b)) lines.push({ op: '~', subject, text: `  backend ${k} of ${subject}: ${backendText(o)} -> ${backendText(b)}` });
  }
  for (const [k, b] of old) if (!now.has(k)) lines.push({ op: '-', subject, text: `  backend ${backendText(b)} from ${subject}` });
  return lines;
}

export function diffStates(before: DesiredState, after: DesiredState): DiffLine[] {
  const lines: DiffLine[] = [];
  const old = new Map(before.services.map((s) => [s.name, s]));
  const now = new Map(after.services.map((s) => [s.name, s]));
  for (const s of before.services) if (!now.has(s.name)) lines.push(...diffServices(s, undefined));
  for (const s of after.services) lines.push(...diffServices(old.get(s.name), s));
  if (!sameValue(before.xdp, after.xdp))
    lines.push({ op: '~', subject: 'xdp', text: `xdp settings: ${show(before.xdp)} -> ${show(after.xdp)}` });
  if (!sameValue(before.ipvs, after.ipvs))
    lines.push({ op: '~', subject: 'ipvs', text: `ipvs settings: ${show(before.ipvs)} -> ${show(after.ipvs)}` });
  lines.push(...diffVrrp(before.vrrp, after.vrrp));
  return lines;
}

type VrrpInstance = DesiredState['vrrp'][number];

function instanceText(i: VrrpInstance): string {
  return `vrrp ${i.name}: VRID ${i.vrid} v${i.version} on ${i.interface}, priority ${i.priority}, ${i.vips.map((v) => `${v.address}/${v.prefix}`).join(' ')}`;
}

/** One line per instance added or removed, one per changed field of a kept instance. */
export function diffVrrp(before: readonly VrrpInstance[], after: readonly VrrpInstance[]): DiffLine[] {
  const lines: DiffLine[] = [];
  const old = new Map(before.map((i) => [i.name, i]));
  const now = new Map(after.map((i) => [i.name, i]));
  for (const i of before) if (!now.has(i.name)) lines.push({ op: '-', subject: i.name, text: instanceText(i) });
  for (const i of after) {
    const o = old.get(i.name);
    if (!o) { lines.push({ op: '+', subject: i.name, text: instanceText(i) }); continue; }
    for (const f of Object.keys({ ...o, ...i }) as Array<keyof VrrpInstance>)
      if (!sameValue(o[f], i[f])) lines.push({ op: '~', subject: i.name, text: `vrrp ${i.name} ${f}: ${show(o[f])} -> ${show(i[f])}` });
  }
  return lines;
}

/** Names of services added, removed or changed between two states. */
export function changedServices(before: DesiredState, after: DesiredState): Set<string> {
  const out = new Set<string>();
  const old = new Map(before.services.map((s) => [s.name, s]));
  for (const s of after.services) if (!sameValue(old.get(s.name), s)) out.add(s.name);
  const now = new Set(after.services.map((s) => s.name));
  for (const name of old.keys()) if (!now.has(name)) out.add(name);
  return out;
}
