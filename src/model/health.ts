import { z } from 'zod';
import { isAbsolute } from 'node:path';
import { isIPv4 } from 'node:net';
import { inShapeOrder } from './order.js';
import { IpAddress, Port } from './primitives.js';

/**
 * The `health` section of a service: how its backends are checked and what a failure does.
 * Times are in seconds (fractions allowed). Check kinds follow keepalived's checkers (TCP_CHECK,
 * HTTP_GET, SSL_GET, UDP_CHECK, DNS_CHECK, MISC_CHECK); see docs/health.md.
 */

const Seconds = (max: number) => z.number().positive().max(max);

/** A JavaScript regular expression that a reply must match. */
const Pattern = z
  .string()
  .max(1024)
  .refine((s) => { try { new RegExp(s); return true; } catch { return false; } }, { message: 'is not a valid regular expression' });

/** "200", 200, or an inclusive range "200-299". */
const StatusItem = z.union([
  z.number().int().min(100).max(599),
  z.string().regex(/^[1-5]\d\d(-[1-5]\d\d)?$/, 'must be a status code (200) or a range (200-299)'),
]);

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'OPTIONS'] as const;

const httpShape = {
  method: z.enum(HTTP_METHODS).default('GET'),
  path: z.string().startsWith('/', 'must start with "/"').max(2048).default('/'),
  /** Host header; defaults to the target address. */
  host: z.string().min(1).max(255).regex(/^[^\s\r\n]+$/, 'must not contain whitespace').optional(),
  /** Accepted status codes; a response outside the set is a failure ("HTTP 503"). */
  status: z.array(StatusItem).min(1).default([200]),
  /** The first 64 KiB of the body must match this regular expression. */
  bodyRegex: Pattern.optional(),
  /** Hex digest of the whole body (at most 64 KiB), as keepalived's `digest` (md5) or sha256. */
  bodyDigest: z
    .object({ algorithm: z.enum(['md5', 'sha256']).default('sha256'), hex: z.string().regex(/^[0-9a-fA-F]+$/, 'must be hexadecimal').transform((s) => s.toLowerCase()) })
    .strict()
    .optional(),
};

const TcpCheck = z.object({ kind: z.literal('tcp') }).strict();
const HttpCheck = z.object({ kind: z.literal('http'), ...httpShape }).strict();
const HttpsCheck = z
  .object({
    kind: z.literal('https'),
    ...httpShape,
    tls: z
      .object({
        /** Server name sent in the TLS ClientHello (SNI); defaults to `host` when it is a name. */
        sni: z.string().min(1).max(255).optional(),
        /** Verify the server certificate (against `ca`, or the system store without it). */
        verify: z.boolean().default(false),
        /** PEM file of the CA that signed the backends' certificates; implies verify. */
        ca: z.string().refine(isAbsolute, { message: 'must be an absolute path' }).optional(),
      })
      .strict()
      .default({ verify: false }),
  })
  .strict();
const UdpCheck = z
  .object({
    kind: z.literal('udp'),
    /** Datagram to send (UTF-8), or `payloadHex` for binary. */
    payload: z.string().max(1400).optional(),
    payloadHex: z.string().regex(/^([0-9a-fA-F]{2})*$/, 'must be hexadecimal bytes').max(2800).optional(),
    /** The reply (read as latin1) must match this regular expression; any reply passes without it. */
    expect: Pattern.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.payload !== undefined && c.payloadHex !== undefined)
      ctx.addIssue({ code: 'custom', path: ['payloadHex'], message: 'give payload or payloadHex, not both' });
  });
export const DNS_TYPES = ['A', 'AAAA', 'CNAME', 'NS', 'PTR', 'MX', 'TXT', 'SOA', 'SRV'] as const;
const DnsCheck = z
  .object({
    kind: z.literal('dns'),
    /** Name to query, e.g. "health.example.com". */
    name: z.string().min(1).max(253).regex(/^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$|^\.$/, 'must be a domain name'),
    type: z.enum(DNS_TYPES).default('A'),
    /** Each of these must be among the answers (addresses compared canonically); without it any answer of the type passes. */
    expect: z.array(z.string().min(1).max(255)).optional(),
  })
  .strict();
const ExecCheck = z
  .object({
    kind: z.literal('exec'),
    /** Absolute path of the program; run without a shell. */
    program: z.string().refine(isAbsolute, { message: 'must be an absolute path (no shell, no PATH lookup)' }),
    /** Arguments; "{address}" and "{port}" are replaced by the target (literally, no shell). */
    args: z.array(z.string().max(4096)).max(64).default([]),
  })
  .strict();

export const HealthCheckSchema = z.discriminatedUnion('kind', [TcpCheck, HttpCheck, HttpsCheck, UdpCheck, DnsCheck, ExecCheck]);

export const QuorumSchema = z
  .object({
    /** Minimum sum of the configured weights of healthy backends. */
    min: z.number().int().min(1).max(0xffffffff),
    /** Lost below min - hysteresis, regained at min + hysteresis (keepalived's rule). */
    hysteresis: z.number().int().min(0).max(0xffffffff).default(0),
  })
  .strict()
  .refine((q) => q.hysteresis < q.min, { message: 'hysteresis must be below min', path: ['hysteresis'] });

export const SorryServerSchema = z
  .object({
    address: IpAddress,
    /** Defaults to the service port. */
    port: Port.optional(),
  })
  .strict();

const healthShape = {
    check: HealthCheckSchema,
    /** Seconds between two checks of one backend. */
    interval: Seconds(3600).default(5),
    /** Each interval is moved by a random amount in [-jitter, +jitter] seconds; default 10% of interval. */
    jitter: z.number().min(0).max(3600).optional(),
    /** Seconds before a check that has not answered fails ("timeout after 2s"). */
    timeout: Seconds(3600).default(2),
    /** Consecutive successes that bring a down backend up. */
    rise: z.number().int().min(1).max(100).default(2),
    /** Consecutive failures that take an up backend down. */
    fall: z.number().int().min(1).max(100).default(3),
    /** Check this address instead of the backend's (e.g. a management address). */
    address: IpAddress.optional(),
    /** Check this port instead of the backend's. */
    port: Port.optional(),
    /** State of a backend before its first checks: down = it takes no traffic until it has passed `rise` checks. */
    initialState: z.enum(['down', 'up']).default('down'),
    /** true: a down backend keeps its place with weight 0 (existing connections finish); false: it is removed. */
    inhibitOnFailure: z.boolean().default(true),
    quorum: QuorumSchema.optional(),
    /** The only backend while the service is below quorum (quorum defaults to a healthy weight of 1). */
    sorryServer: SorryServerSchema.optional(),
};

export const HealthSchema = z
  .object(healthShape)
  .strict()
  .superRefine((h, ctx) => {
    if (h.timeout > h.interval)
      ctx.addIssue({ code: 'custom', path: ['timeout'], message: `must not exceed interval (${h.interval}s)` });
    if (h.jitter !== undefined && h.jitter >= h.interval / 2)
      ctx.addIssue({ code: 'custom', path: ['jitter'], message: `must be below half the interval (${h.interval / 2}s)` });
    if (h.check.kind === 'https' && h.check.tls.ca !== undefined && !h.check.tls.verify) {
      // A CA without verification would be silently ignored.
      ctx.addIssue({ code: 'custom', path: ['check', 'tls', 'verify'], message: 'must be true when a ca is given' });
    }
    if ((h.check.kind === 'http' || h.check.kind === 'https') && h.check.bodyRegex !== undefined && h.check.bodyDigest !== undefined)
      ctx.addIssue({ code: 'custom', path: ['check', 'bodyDigest'], message: 'give bodyRegex or bodyDigest, not both' });
    if ((h.check.kind === 'http' || h.check.kind === 'https') && h.check.bodyDigest !== undefined) {
      const want = h.check.bodyDigest.algorithm === 'md5' ? 32 : 64;
      if (h.check.bodyDigest.hex.length !== want)
        ctx.addIssue({ code: 'custom', path: ['check', 'bodyDigest', 'hex'], message: `a ${h.check.bodyDigest.algorithm} digest has ${want} hex digits` });
    }
  })
  .transform((h) => inShapeOrder({ ...h, jitter: h.jitter ?? h.interval / 10 }, healthShape));

export type Health = z.output<typeof HealthSchema>;
export type HealthInput = z.input<typeof HealthSchema>;
export type HealthCheck = Health['check'];
export type CheckKind = HealthCheck['kind'];

/**
 * Checks of the health section against its service (called from the service schema): a fwmark
 * service's backends may have no port, so a port-less check needs `health.port`; the sorry server
 * has the service's family and, under dr/tunnel forwarding, its port.
 */
export function refineHealthForService(
  svc: { health?: Health | undefined; port?: number | undefined; fwmark?: number | undefined; forwarding: string; backends: Array<{ port?: number | undefined }> },
  family: 'inet' | 'inet6' | undefined,
  issue: (path: (string | number)[], message: string) => void,
): void {
  const h = svc.health;
  if (!h) return;
  const needsPort = h.check.kind !== 'exec';
  if (needsPort && h.port === undefined) {
    svc.backends.forEach((b, i) => {
      if ((b.port ?? svc.port ?? 0) === 0) issue(['backends', i, 'port'], `has no port to check: set it or health.port`);
    });
  }
  const famOf = (a: string) => (isIPv4(a) ? 'inet' : 'inet6');
  if (h.address !== undefined && family && famOf(h.address) !== family)
    issue(['health', 'address'], `${h.address} is ${famOf(h.address)} but the service is ${family}`);
  const sorry = h.sorryServer;
  if (sorry) {
    if (family && famOf(sorry.address) !== family)
      issue(['health', 'sorryServer', 'address'], `${sorry.address} is ${famOf(sorry.address)} but the service is ${family}`);
    const port = sorry.port ?? svc.port;
    if ((svc.forwarding === 'dr' || svc.forwarding === 'tunnel') && svc.fwmark === undefined && sorry.port !== undefined && sorry.port !== svc.port)
      issue(['health', 'sorryServer', 'port'], `${svc.forwarding} forwarding cannot change the port (${svc.port} -> ${sorry.port})`);
    if (port === undefined && svc.fwmark === undefined) issue(['health', 'sorryServer', 'port'], 'required');
  }
}
