import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { familyOf } from './net.js';
import { IpAddress, Port } from './primitives.js';

/**
 * BGP announcement of this node's VIPs through a local BIRD 2 (docs/bgp.md). Fulcrum does not
 * speak BGP: it renders an include file for BIRD, checks it (`configure check`), applies it
 * (`configure`, no restart) and reads back sessions, exports and BFD over BIRD's control socket.
 * The node section lives in the node's own config file (`agent.bgp`); a service's own choice
 * (announce or not, communities) is the service's `bgp` field.
 */

/** A 2- or 4-byte AS number (0 and 65535, 4294967295 are reserved). */
export const Asn = z
  .number()
  .int()
  .min(1)
  .max(4_294_967_294)
  .refine((n) => n !== 65535 && n !== 23456, { message: 'is a reserved AS number (65535, 23456 AS_TRANS)' });

const u16 = (s: string) => /^\d{1,5}$/.test(s) && Number(s) <= 65535;
const u32 = (s: string) => /^\d{1,10}$/.test(s) && Number(s) <= 4_294_967_295;

/** "65000:100" (RFC 1997 community) or "65000:1:2" (RFC 8092 large community). */
export const Community = z.string().refine(
  (s) => {
    const p = s.split(':');
    return (p.length === 2 && p.every(u16)) || (p.length === 3 && p.every(u32));
  },
  { message: 'must be a community ASN:VALUE (each 0-65535) or a large community A:B:C (each 0-4294967295)' },
);

export const BfdSettingsSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** BFD's own timers, milliseconds: a peer is down after multiplier x interval without a packet. */
    minRxMs: z.number().int().min(10).max(60_000).default(100),
    minTxMs: z.number().int().min(10).max(60_000).default(100),
    multiplier: z.number().int().min(1).max(255).default(3),
  })
  .strict();

const BIRD_SYMBOL = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

export const BgpNeighbourSchema = z
  .object({
    /** The BIRD protocol name suffix (fulcrum_<name>); by default derived from the address. */
    name: z.string().regex(BIRD_SYMBOL, 'must be a letter then up to 31 letters, digits or _ (a BIRD symbol)').optional(),
    address: IpAddress,
    asn: Asn,
    /** TCP port of the peer (179). */
    port: Port.default(179),
    /** BFD for this session (default: agent.bgp.bfd.enabled). */
    bfd: z.boolean().optional(),
    /** Seconds; BFD is the failure detector, the hold timer only its fallback. */
    holdTimeSeconds: z.number().int().min(3).max(65535).optional(),
    /** Seconds before a failed or dropped session (BFD down) is tried again (BIRD's defaults are 60-300 s). */
    reconnectSeconds: z.number().int().min(1).max(3600).default(5),
    /** eBGP multihop TTL (the peer is not on a connected network). */
    multihop: z.number().int().min(1).max(255).optional(),
    /** The local address of the session (BIRD `source address`). */
    sourceAddress: IpAddress.optional(),
  })
  .strict()
  .superRefine((n, ctx) => {
    if (n.sourceAddress && familyOf(n.sourceAddress) !== familyOf(n.address))
      ctx.addIssue({ code: 'custom', path: ['sourceAddress'], message: `${n.sourceAddress} is not of the family of ${n.address}` });
  })
  .transform((n) => ({ ...n, name: n.name ?? `n_${n.address.replace(/[.:]/g, '_')}` }));

export const BgpSettingsSchema = z
  .object({
    /** This node's AS number. */
    asn: Asn,
    /** BGP router id: an IPv4 address, unique per node. */
    routerId: z.string().refine((s) => isIPv4(s), { message: 'must be an IPv4 address (BGP router ids are 32-bit)' }),
    neighbours: z.array(BgpNeighbourSchema).min(1, 'needs at least one neighbour').max(64),
    bfd: BfdSettingsSchema.default({ enabled: true, minRxMs: 100, minTxMs: 100, multiplier: 3 }),
    /** BIRD's control socket (bird -s). */
    controlSocket: z.string().min(1).default('/run/bird/bird.ctl'),
    /** The file Fulcrum writes and BIRD's own config includes (`include "<file>";`). */
    includeFile: z.string().min(1).default('/etc/bird/fulcrum.conf'),
    /** Which services are announced without a `bgp.announce` of their own: all (default) or none. */
    announce: z.enum(['all', 'none']).default('all'),
    /** Communities added to every announced VIP. */
    communities: z.array(Community).max(32).default([]),
    /** Milliseconds a VIP must stay programmed and healthy before it is announced (again). */
    announceDelayMs: z.number().int().min(0).max(600_000).default(0),
    /** Keep the VIPs announced across a clean agent stop (the kernel keeps forwarding); default: withdraw. */
    keepOnRestart: z.boolean().default(false),
    /** Seconds between two read-backs of sessions, exports and BFD. */
    pollSeconds: z.number().min(0.2).max(3600).default(2),
  })
  .strict()
  .superRefine((s, ctx) => {
    const names = new Map<string, number>();
    const addrs = new Map<string, number>();
    s.neighbours.forEach((n, i) => {
      const prev = names.get(n.name);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['neighbours', i, 'name'], message: `duplicate neighbour name ${n.name} (also neighbours[${prev}])` });
      else names.set(n.name, i);
      const other = addrs.get(n.address);
      if (other !== undefined) ctx.addIssue({ code: 'custom', path: ['neighbours', i, 'address'], message: `duplicate neighbour ${n.address} (also neighbours[${other}])` });
      else addrs.set(n.address, i);
    });
  });

/** A service's own announcement choice (`services[].bgp`). */
export const ServiceBgpSchema = z
  .object({
    /** Announce this service's VIP (default: agent.bgp.announce). */
    announce: z.boolean().optional(),
    /** Communities of this VIP's route, besides agent.bgp.communities. */
    communities: z.array(Community).max(32).default([]),
  })
  .strict();

export type BgpSettings = z.output<typeof BgpSettingsSchema>;
export type BgpSettingsInput = z.input<typeof BgpSettingsSchema>;
export type BgpNeighbour = BgpSettings['neighbours'][number];
export type ServiceBgp = z.output<typeof ServiceBgpSchema>;
