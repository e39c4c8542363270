import { z } from 'zod';
import { canonicalIp, familyOf, type Family } from './net.js';
import { inShapeOrder } from './order.js';
import { InterfaceName, IpAddress, Name } from './primitives.js';

/**
 * A VRRP instance: one virtual router (VRID) on one interface, holding a set of virtual IPs.
 * VRRPv3 (RFC 5798) for IPv4 or IPv6, VRRPv2 (RFC 3768) for IPv4 only. Field names follow
 * keepalived's where an operator would look for them (see docs/vrrp.md for the mapping).
 */

/**
 * A virtual IP: "192.0.2.10", "192.0.2.10/24", "2001:db8::10/64" (the prefix defaults to a host
 * route) or the spec's own form {address, prefix, family}, so that a parsed state is valid input
 * again and parses to itself (GET /v1/state can be PUT back unchanged).
 */
const VipText = z.string().transform((text, ctx) => {
  const [addr = '', prefixText, ...rest] = text.split('/');
  const family = familyOf(addr);
  if (!family || rest.length > 0) {
    ctx.addIssue({ code: 'custom', message: `${text} is not an address or address/prefix` });
    return z.NEVER;
  }
  const max = family === 'inet' ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText ?? '0') || prefix > max) {
    ctx.addIssue({ code: 'custom', message: `${text}: the prefix length must be 0-${max}` });
    return z.NEVER;
  }
  return { address: canonicalIp(addr), prefix, family };
});

const VipObject = z
  .object({
    address: IpAddress,
    prefix: z.number().int().min(0).max(128).optional(),
    family: z.enum(['inet', 'inet6']).optional(),
  })
  .strict()
  .transform((v, ctx) => {
    const family = familyOf(v.address)!;
    const max = family === 'inet' ? 32 : 128;
    if (v.prefix !== undefined && v.prefix > max) {
      ctx.addIssue({ code: 'custom', path: ['prefix'], message: `the prefix length must be 0-${max}` });
      return z.NEVER;
    }
    if (v.family !== undefined && v.family !== family) {
      ctx.addIssue({ code: 'custom', path: ['family'], message: `is ${v.family} but ${v.address} is ${family}` });
      return z.NEVER;
    }
    return { address: v.address, prefix: v.prefix ?? max, family };
  });

const Vip = z.union([VipText, VipObject]);

/** Argv run without a shell; the first element is the program. */
const Argv = z.array(z.string().min(1)).min(1, 'needs at least the program to run');

const Weight = z.number().int().min(-254).max(254);

export const TrackInterfaceSchema = z
  .object({
    interface: InterfaceName,
    /** Added to the priority while the link is down; without it a down link forces FAULT (as keepalived). */
    weight: Weight.optional(),
  })
  .strict();

export const TrackServiceSchema = z
  .object({
    /** A service name of the desired state; the agent reports whether it is above its health quorum. */
    service: Name,
    weight: Weight.optional(),
  })
  .strict();

export const TrackScriptSchema = z
  .object({
    name: Name,
    argv: Argv,
    /** Seconds between runs. */
    interval: z.number().min(0.1).max(3600).default(2),
    /** Seconds before a run counts as failed and is killed. */
    timeout: z.number().min(0.1).max(3600).default(5),
    /** Consecutive results needed to change state (keepalived rise/fall). */
    rise: z.number().int().min(1).max(100).default(1),
    fall: z.number().int().min(1).max(100).default(1),
    /** Added to the priority while the script fails (exit code != 0); without it a failing script forces FAULT. */
    weight: Weight.optional(),
  })
  .strict();

export const VrrpNotifySchema = z
  .object({
    /** Run on every transition with the argv plus: instance name, new state, old state. No shell. */
    exec: Argv.optional(),
    /** POSTed a JSON body {instance, vrid, interface, state, previous, priority, master, time}. */
    webhook: z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }).optional(),
    /** Milliseconds before a hook is abandoned (the exec is killed). */
    timeoutMs: z.number().int().min(10).max(120_000).default(5000),
  })
  .strict();

export const GarpSchema = z
  .object({
    /** Gratuitous ARPs / unsolicited NAs per burst (keepalived garp_master_repeat). */
    repeat: z.number().int().min(1).max(100).default(5),
    /** Milliseconds between the messages of a burst (keepalived garp_interval). */
    intervalMs: z.number().int().min(0).max(10_000).default(0),
    /** Seconds after becoming master before a second burst; 0 = none (keepalived garp_master_delay). */
    delay: z.number().min(0).max(3600).default(5),
  })
  .strict();

export const VrrpAuthSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  /** RFC 2338 simple text password (type 1), as keepalived's auth_type PASS: at most 8 bytes. */
  z
    .object({
      type: z.literal('pass'),
      password: z.string().min(1).refine((s) => Buffer.byteLength(s) <= 8, { message: 'at most 8 bytes' }),
    })
    .strict(),
]);

const instanceShape = {
    name: Name,
    interface: InterfaceName,
    vrid: z.number().int().min(1).max(255),
    /** Derived from the vips; given, it must match them (the parsed form carries it). */
    family: z.enum(['inet', 'inet6']).optional(),
    /** 255 = the address owner (the VIPs are its own addresses); 1-254 otherwise. */
    priority: z.number().int().min(1).max(255).default(100),
    version: z.union([z.literal(2), z.literal(3)]).default(3),
    /** Seconds. v3: 0.01-40.95 in steps of 0.01 (centiseconds on the wire); v2: whole seconds 1-255. */
    advertInterval: z.number().positive().default(1),
    vips: z.array(Vip).min(1, 'needs at least one virtual IP').max(255, 'at most 255 virtual IPs'),
    /** A higher-priority backup takes over a running master (default true). */
    preempt: z.boolean().optional(),
    /** keepalived spelling of preempt: false. */
    nopreempt: z.boolean().optional(),
    /** Seconds after start-up (or after seeing a lower-priority master) before preempting it. */
    preemptDelay: z.number().min(0).max(1000).default(0),
    unicast: z
      .object({
        /** Source address of the adverts; defaults to the interface's primary address. */
        source: IpAddress.optional(),
        peers: z.array(IpAddress).min(1, 'needs at least one peer'),
      })
      .strict()
      .optional(),
    auth: VrrpAuthSchema.optional(),
    track: z
      .object({
        interfaces: z.array(TrackInterfaceSchema).default([]),
        services: z.array(TrackServiceSchema).default([]),
        scripts: z.array(TrackScriptSchema).default([]),
      })
      .strict()
      .optional(),
    /** Instances with the same sync group fail over together. */
    syncGroup: Name.optional(),
    notify: VrrpNotifySchema.optional(),
    garp: GarpSchema.default({ repeat: 5, intervalMs: 0, delay: 5 }),
};

export const VrrpInstanceSchema = z
  .object(instanceShape)
  .strict()
  .superRefine((inst, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const family: Family | undefined = inst.vips[0]?.family;
    if (inst.family !== undefined && family !== undefined && inst.family !== family) issue(['family'], `is ${inst.family} but the vips are ${family}`);
    inst.vips.forEach((v, i) => {
      if (v.family !== family) issue(['vips', i], `${v.address} is ${v.family} but vips[0] is ${family}; one family per instance`);
    });
    const seen = new Map<string, number>();
    inst.vips.forEach((v, i) => {
      const first = seen.get(v.address);
      if (first !== undefined) issue(['vips', i], `duplicate virtual IP ${v.address} (also vips[${first}])`);
      else seen.set(v.address, i);
    });
    if (inst.version === 2) {
      if (family === 'inet6') issue(['version'], 'VRRPv2 (RFC 3768) carries IPv4 only; use version 3 for IPv6');
      if (!Number.isInteger(inst.advertInterval) || inst.advertInterval < 1 || inst.advertInterval > 255)
        issue(['advertInterval'], 'VRRPv2 advertises whole seconds, 1-255');
    } else {
      const cs = Math.round(inst.advertInterval * 100);
      if (Math.abs(cs - inst.advertInterval * 100) > 1e-6 || cs < 1 || cs > 4095)
        issue(['advertInterval'], 'VRRPv3 advertises centiseconds: 0.01-40.95 s in steps of 0.01');
      if (inst.auth && inst.auth.type !== 'none') issue(['auth'], 'VRRPv3 has no authentication (RFC 5798 §9); only version 2 takes auth');
    }
    if (inst.nopreempt !== undefined && inst.preempt !== undefined && inst.nopreempt === inst.preempt)
      issue(['nopreempt'], `contradicts preempt: ${inst.preempt}`);
    if (inst.unicast) {
      if (inst.unicast.source && familyOf(inst.unicast.source) !== family)
        issue(['unicast', 'source'], `${inst.unicast.source} is not ${family} like the vips`);
      inst.unicast.peers.forEach((p, i) => {
        if (familyOf(p) !== family) issue(['unicast', 'peers', i], `${p} is not ${family} like the vips`);
      });
    }
    const scripts = new Set<string>();
    inst.track?.scripts.forEach((s, i) => {
      if (scripts.has(s.name)) issue(['track', 'scripts', i, 'name'], `duplicate script name ${s.name}`);
      scripts.add(s.name);
    });
  })
  .transform((inst) => {
    const family = inst.vips[0]!.family;
    const { nopreempt, ...rest } = inst;
    return inShapeOrder({
      ...rest,
      family,
      preempt: inst.preempt ?? (nopreempt === undefined ? true : !nopreempt),
      auth: inst.auth ?? { type: 'none' as const },
      track: inst.track ?? { interfaces: [], services: [], scripts: [] },
    }, instanceShape);
  });

/** All instances of a node: names unique, one instance per (interface, VRID, family). */
export function checkVrrpInstances(list: readonly VrrpInstance[], ctx: z.RefinementCtx): void {
  const names = new Map<string, number>();
  const routers = new Map<string, number>();
  list.forEach((inst, i) => {
    const prev = names.get(inst.name);
    if (prev !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate VRRP instance name ${inst.name} (also [${prev}])` });
    else names.set(inst.name, i);
    const key = `${inst.interface}/${inst.vrid}/${inst.family}`;
    const other = routers.get(key);
    if (other !== undefined)
      ctx.addIssue({ code: 'custom', path: [i, 'vrid'], message: `VRID ${inst.vrid} (${inst.family}) on ${inst.interface} is already [${other}]` });
    else routers.set(key, i);
  });
}

export const VrrpInstancesSchema = z.array(VrrpInstanceSchema).superRefine(checkVrrpInstances);

export type VrrpInstanceInput = z.input<typeof VrrpInstanceSchema>;
export type VrrpInstance = z.output<typeof VrrpInstanceSchema>;
export type VrrpVip = VrrpInstance['vips'][number];
