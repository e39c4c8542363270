import { z } from 'zod';
import { familyOf, ipv4MaskToPrefix, type Family } from './net.js';
import { HealthSchema, refineHealthForService } from './health.js';
import { checkVrrpInstances, VrrpInstanceSchema, type VrrpInstance } from './vrrp.js';
import { XdpSettingsSchema } from './xdp.js';
import { IpvsSettingsSchema } from './ipvs.js';
import { AgentSettingsSchema } from './agent.js';
import { inShapeOrder } from './order.js';
import { IpAddress, Name, Port } from './primitives.js';
import { ServiceBgpSchema } from './bgp.js';

export { IpAddress, Name } from './primitives.js';

/**
 * The declarative model: one zod schema for the desired state of a node, whichever dataplane
 * carries each service. Parsing it (see ./index.ts) yields an immutable, kernel-independent spec.
 */

export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;
export const XDP_SCHEDULERS = ['maglev'] as const;
export const SCHEDULERS = [...IPVS_SCHEDULERS, ...XDP_SCHEDULERS] as const;

/** A backend's port: 0 for a fwmark service's backends that keep the client's port. */
const BackendPort = z.number().int().min(0).max(65535);
/** A backend's weight (IPVS's u16 range; 0 takes no new connections). */
export const BackendWeight = z.number().int().min(0).max(65535);
/** An IPVS connection threshold of a backend (u32; 0 = none). */
export const ConnectionThreshold = z.number().int().min(0).max(0xffffffff);
export const Protocol = z.enum(['tcp', 'udp', 'sctp']);
export const Dataplane = z.enum(['ipvs', 'xdp']);
export const Scheduler = z.enum(SCHEDULERS);
export const Forwarding = z.enum(['nat', 'dr', 'tunnel']);
export const MacAddress = z
  .string()
  .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, 'must be a MAC address like 02:00:00:00:00:01')
  .transform((s) => s.toLowerCase());

export const BackendSchema = z
  .object({
    address: IpAddress,
    /** Defaults to the service port; must equal it for dr and tunnel. */
    port: BackendPort.optional(),
    weight: BackendWeight.default(1),
    /** IPVS upper/lower connection thresholds. */
    upperThreshold: ConnectionThreshold.default(0),
    lowerThreshold: ConnectionThreshold.default(0),
    /** XDP dr: the backend's MAC when it is not learned from the neighbour table. */
    mac: MacAddress.optional(),
  })
  .strict();

export const SchedulerFlagsSchema = z
  .object({
    /** sh/mh: pick another server when the chosen one is unavailable (IP_VS_SVC_F_SCHED_*_FALLBACK). */
    fallback: z.boolean().default(false),
    /** sh/mh: hash the source port too (IP_VS_SVC_F_SCHED_*_PORT). */
    port: z.boolean().default(false),
  })
  .strict();

export const TunnelSchema = z
  .object({
    type: z.enum(['ipip', 'gue', 'gre']).default('ipip'),
    /** GUE destination port. */
    port: Port.optional(),
    checksum: z.enum(['none', 'csum', 'remcsum']).default('none'),
  })
  .strict();

export const PersistenceSchema = z
  .object({
    /** Seconds a client stays pinned to its backend after its last connection. */
    timeout: z.number().int().min(1).max(31536000).default(300),
    /** Clients grouped by this mask share a backend: dotted IPv4 mask or a prefix length. */
    netmask: z.union([z.string(), z.number().int().min(0).max(128)]).optional(),
  })
  .strict();

const serviceShape = {
    name: Name,
    description: z.string().max(256).optional(),
    dataplane: Dataplane.default('ipvs'),
    address: IpAddress.optional(),
    port: Port.optional(),
    protocol: Protocol.default('tcp'),
    /** Firewall-mark service instead of address/port/protocol (IPVS only). */
    fwmark: z.number().int().min(1).max(0xffffffff).optional(),
    /** Address family of a fwmark service; derived from the address otherwise. */
    family: z.enum(['inet', 'inet6']).optional(),
    /** Defaults to wlc on IPVS (as ipvsadm) and maglev on XDP. */
    scheduler: Scheduler.optional(),
    schedulerFlags: SchedulerFlagsSchema.optional(),
    forwarding: Forwarding.default('nat'),
    tunnel: TunnelSchema.optional(),
    persistence: PersistenceSchema.optional(),
    backends: z.array(BackendSchema).default([]),
    health: HealthSchema.optional(),
    /** BGP announcement of this service's VIP (agent.bgp, docs/bgp.md). */
    bgp: ServiceBgpSchema.optional(),
};

export const ServiceSchema = z
  .object(serviceShape)
  .strict()
  .superRefine((svc, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const hasAddr = svc.address !== undefined || svc.port !== undefined;
    if (svc.fwmark !== undefined && hasAddr) issue(['fwmark'], 'a service has either address+port or fwmark, not both');
    if (svc.fwmark === undefined) {
      if (svc.address === undefined) issue(['address'], 'required (or give a fwmark)');
      if (svc.port === undefined) issue(['port'], 'required (or give a fwmark)');
    }
    const family: Family | undefined = svc.address !== undefined ? familyOf(svc.address) : svc.family ?? 'inet';
    if (svc.address !== undefined && svc.family !== undefined && svc.family !== family)
      issue(['family'], `is ${svc.family} but address ${svc.address} is ${family}`);

    if (svc.dataplane === 'xdp') {
      if (svc.fwmark !== undefined) issue(['fwmark'], 'the xdp dataplane has no fwmark services');
      if (svc.protocol === 'sctp') issue(['protocol'], 'the xdp dataplane balances tcp and udp only');
      if (svc.forwarding === 'tunnel') issue(['forwarding'], 'the xdp dataplane forwards by nat or dr');
      if (svc.scheduler !== undefined && svc.scheduler !== 'maglev') issue(['scheduler'], `the xdp dataplane schedules by maglev, not ${svc.scheduler}`);
      if (svc.persistence !== undefined) issue(['persistence'], 'the xdp dataplane keeps flows by its connection table; persistence is ipvs only');
    } else if (svc.scheduler === 'maglev') {
      issue(['scheduler'], 'maglev is the xdp scheduler; on ipvs use mh');
    }
    if (svc.schedulerFlags && svc.scheduler !== 'sh' && svc.scheduler !== 'mh')
      issue(['schedulerFlags'], 'only the sh and mh schedulers take flags');
    refineHealthForService(svc, family, issue);
    if (svc.tunnel && svc.forwarding !== 'tunnel') issue(['tunnel'], 'only with forwarding: tunnel');
    if (svc.tunnel?.type === 'gue' && svc.tunnel.port === undefined) issue(['tunnel', 'port'], 'required for gue');
    if (svc.tunnel && svc.tunnel.type !== 'gue' && svc.tunnel.port !== undefined) issue(['tunnel', 'port'], 'only for gue');

    if (svc.persistence?.netmask !== undefined) {
      const m = svc.persistence.netmask;
      if (typeof m === 'string') {
        if (family !== 'inet') issue(['persistence', 'netmask'], 'an IPv6 service takes a prefix length (0-128)');
        else if (ipv4MaskToPrefix(m) === undefined) issue(['persistence', 'netmask'], `${m} is not a contiguous IPv4 netmask`);
      } else if (family === 'inet' && m > 32) issue(['persistence', 'netmask'], 'an IPv4 prefix length is 0-32');
    }

    const seen = new Map<string, number>();
    svc.backends.forEach((b, i) => {
      const bFamily = familyOf(b.address);
      if (family && bFamily !== family)
        issue(['backends', i, 'address'], `${b.address} is ${bFamily} but the service is ${family}`);
      const port = b.port ?? svc.port ?? 0;
      if ((svc.forwarding === 'dr' || svc.forwarding === 'tunnel') && svc.fwmark === undefined && b.port !== undefined && b.port !== svc.port)
        issue(['backends', i, 'port'], `${svc.forwarding} forwarding cannot change the port (${svc.port} -> ${b.port})`);
      if (svc.dataplane === 'xdp' && (b.upperThreshold || b.lowerThreshold))
        issue(['backends', i], 'connection thresholds are ipvs only');
      if (svc.dataplane === 'xdp' && svc.forwarding === 'nat' && port === 0)
        issue(['backends', i, 'port'], 'required');
      if (b.lowerThreshold && b.upperThreshold && b.lowerThreshold > b.upperThreshold)
        issue(['backends', i, 'lowerThreshold'], 'must not exceed upperThreshold');
      const key = `${b.address}:${port}`;
      const first = seen.get(key);
      if (first !== undefined) issue(['backends', i], `duplicate backend ${key} (also backends[${first}])`);
      else seen.set(key, i);
    });
  })
  .transform((svc) => {
    const family: Family = svc.address !== undefined ? (familyOf(svc.address) as Family) : svc.family ?? 'inet';
    const port = svc.port ?? 0;
    return inShapeOrder({
      ...svc,
      family,
      scheduler: svc.scheduler ?? (svc.dataplane === 'xdp' ? 'maglev' : 'wlc'),
      backends: svc.backends.map((b) => inShapeOrder({ ...b, port: b.port ?? port }, BackendSchema.shape)),
    }, serviceShape);
  });

/**
 * The sections of a desired state, each built from its item schema. `item` wraps every item
 * schema: the identity here; the agent's validation of a change passes one that takes items a
 * parse already produced as they are (src/agent/validate.ts).
 */
function stateShape(item: <S extends z.ZodType>(schema: S) => S) {
  return {
    services: z.array(item(ServiceSchema)).default([]),
    xdp: item(XdpSettingsSchema).optional(),
    ipvs: item(IpvsSettingsSchema).optional(),
    vrrp: z.array(item(VrrpInstanceSchema)).superRefine(checkVrrpInstances).default([]),
  };
}

/** Rules across sections: service names and kernel identities unique; tracked services exist. */
function checkState(state: { services: Service[]; vrrp: VrrpInstance[] }, ctx: z.RefinementCtx): void {
  const names = new Map<string, number>();
  const vips = new Map<string, number>();
  state.services.forEach((svc, i) => {
    const prev = names.get(svc.name);
    if (prev !== undefined)
      ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `duplicate service name ${svc.name} (also services[${prev}])` });
    else names.set(svc.name, i);
    const key = serviceKey(svc);
    const other = vips.get(key);
    if (other !== undefined)
      ctx.addIssue({ code: 'custom', path: ['services', i], message: `${key} is already services[${other}]` });
    else vips.set(key, i);
  });
  state.vrrp.forEach((inst, i) =>
    (inst.track?.services ?? []).forEach((t, j) => {
      if (!names.has(t.service))
        ctx.addIssue({ code: 'custom', path: ['vrrp', i, 'track', 'services', j, 'service'], message: `no service named ${t.service} in services` });
    }),
  );
}

const asIs = <S extends z.ZodType>(schema: S): S => schema;

export const DesiredStateSchema = z.object(stateShape(asIs)).strict().superRefine(checkState);

/** DesiredStateSchema with every item schema wrapped by `item` (same sections, same rules). */
export function desiredStateSchemaWith(item: <S extends z.ZodType>(schema: S) => S) {
  return z.object(stateShape(item)).strict().superRefine(checkState);
}

/** The file `fulcrum agent --config` reads: the agent's own settings plus the desired state. */
export const ConfigFileSchema = z
  .object({ agent: AgentSettingsSchema.optional(), ...stateShape(asIs) })
  .strict()
  .superRefine(checkState);

export type DesiredStateInput = z.input<typeof DesiredStateSchema>;
export type DesiredState = z.output<typeof DesiredStateSchema>;
export type Service = z.output<typeof ServiceSchema>;
export type ServiceInput = z.input<typeof ServiceSchema>;
export type Backend = Service['backends'][number];
export type BackendInput = z.input<typeof BackendSchema>;

/** The identity of a service in the kernel: "tcp 10.0.0.1:80", "tcp [2001:db8::1]:80" or "fwmark 7 inet". */
export function serviceKey(svc: { protocol: string; address?: string | undefined; port?: number | undefined; fwmark?: number | undefined; family?: string | undefined }): string {
  if (svc.fwmark !== undefined) return `fwmark ${svc.fwmark} ${svc.family ?? 'inet'}`;
  const addr = svc.address ?? '';
  return `${svc.protocol} ${addr.includes(':') ? `[${addr}]` : addr}:${svc.port ?? 0}`;
}
