import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * Settings of the agent process itself: the REST API, the state store, the reconcile loop. They
 * come only from the config file (`agent:` section); the desired state may also come from the API.
 */

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

export const TlsSettingsSchema = z
  .object({
    /** PEM certificate chain file. */
    cert: z.string().min(1),
    /** PEM private key file. */
    key: z.string().min(1),
  })
  .strict();

export const RateLimitSchema = z
  .object({
    /** Requests allowed per client (token name, or address when unauthenticated) per window. */
    max: z.number().int().min(1).max(1_000_000).default(600),
    windowSeconds: z.number().int().min(1).max(3600).default(60),
  })
  .strict();

export const ApiSettingsSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .refine((h) => isIP(h) !== 0 || h === 'localhost', { message: 'must be an IP address (or localhost)' })
      .default('127.0.0.1'),
    /** 0 picks a free port (the agent logs the one it got). */
    port: z.number().int().min(0).max(65535).default(9180),
    tls: TlsSettingsSchema.optional(),
    /**
     * YAML file of bearer tokens (see docs/api.md). Without it the agent creates
     * `<stateDir>/admin.token` (mode 0600) holding one admin token, for local use by root.
     */
    tokensFile: z.string().min(1).optional(),
    /** Let GET requests through without a token (metrics scrapers on a trusted network). */
    anonymousRead: z.boolean().default(false),
    /** Serve plain HTTP on a non-loopback address (tokens then cross the network in clear). */
    insecure: z.boolean().default(false),
    /** Largest request body accepted, in bytes. */
    bodyLimit: z.number().int().min(1024).max(64 << 20).default(4 << 20),
    /** false turns rate limiting off. */
    rateLimit: z.union([RateLimitSchema, z.literal(false)]).default({ max: 600, windowSeconds: 60 }),
  })
  .strict()
  .superRefine((api, ctx) => {
    if (!isLoopback(api.host) && !api.tls && !api.insecure)
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: `required when the API listens on ${api.host}, which is not loopback (or set insecure: true)`,
      });
  });

export const AgentSettingsSchema = z
  .object({
    api: ApiSettingsSchema.default(() => ApiSettingsSchema.parse({})),
    /** Where the desired state and the dataplanes' ownership records live. */
    stateDir: z.string().min(1).default('/var/lib/fulcrum'),
    /** Seconds between two drift-repairing reconciles (a reconcile also follows every change). */
    reconcileIntervalSeconds: z.number().min(1).max(86400).default(10),
    /** Seconds a drained backend keeps its connections before it is removed anyway. */
    drainTimeoutSeconds: z.number().int().min(0).max(86400).default(300),
    xdp: z
      .object({
        /** bpffs directory for the XDP dataplane's pins. */
        pinDir: z.string().min(1).default('/sys/fs/bpf/fulcrum'),
      })
      .strict()
      .default({ pinDir: '/sys/fs/bpf/fulcrum' }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

export type AgentSettings = z.output<typeof AgentSettingsSchema>;
export type ApiSettings = AgentSettings['api'];

/** The settings with every default filled in (no config file, or one without `agent:`). */
export function defaultAgentSettings(): AgentSettings {
  return AgentSettingsSchema.parse({});
}
