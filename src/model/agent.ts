import { isIP } from 'node:net';
import { z } from 'zod';
import { EVENT_TYPES } from '../events.js';
import { StoreSettingsSchema } from '../cluster/settings.js';
import { BgpSettingsSchema } from './bgp.js';

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
    /** Requests allowed per client address per window. */
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

export const WebhookSchema = z
  .object({
    /** The `webhook` label of its metrics and the name in the log; by default the URL without its query. */
    name: z.string().min(1).max(64).regex(/^[\w.:/-]+$/, 'letters, digits and . _ : / - only').optional(),
    url: z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }),
    /** The event types posted (src/events.ts EVENT_TYPES). */
    events: z
      .array(z.enum(EVENT_TYPES, { error: (issue) => `unknown event type ${JSON.stringify(issue.input)}; known: ${EVENT_TYPES.join(', ')}` }))
      .min(1),
    /** File holding the HMAC-SHA256 key (read at start; a trailing newline is not part of it). */
    secretFile: z.string().min(1),
    /** Events waiting for this webhook; beyond it the oldest is dropped (fulcrum_webhook_dropped_total). */
    queueSize: z.number().int().min(1).max(100_000).default(1000),
    /** Tries of one event, the first included; retried on a network error, a timeout, 429 and 5xx. */
    maxAttempts: z.number().int().min(1).max(20).default(5),
    /** Milliseconds before one try is abandoned. */
    timeoutMs: z.number().int().min(100).max(120_000).default(5000),
  })
  .strict();

export const NotifySettingsSchema = z
  .object({ webhooks: z.array(WebhookSchema).max(32).default([]) })
  .strict()
  .superRefine((n, ctx) => {
    const seen = new Map<string, number>();
    n.webhooks.forEach((w, i) => {
      const name = webhookName(w);
      const prev = seen.get(name);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['webhooks', i, 'name'], message: `duplicate webhook name ${name} (also webhooks[${prev}]); set name: to tell them apart` });
      else seen.set(name, i);
    });
  });

/** A webhook's name: its own, or its URL without credentials, query and fragment. */
export function webhookName(w: { name?: string | undefined; url: string }): string {
  if (w.name) return w.name;
  const u = new URL(w.url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

export const AgentSettingsSchema = z
  .object({
    api: ApiSettingsSchema.default(() => ApiSettingsSchema.parse({})),
    /** Where the desired state and the dataplanes' ownership records live. */
    stateDir: z.string().min(1).default('/var/lib/fulcrum'),
    /** Where the desired state lives: this node's file (default) or a cluster's etcd (docs/cluster.md). */
    store: StoreSettingsSchema,
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
    /** Webhooks posted on selected events (docs/alerts.md). */
    notify: NotifySettingsSchema.default({ webhooks: [] }),
    /** VIPs announced over BGP through a local BIRD 2 (docs/bgp.md); absent: no BGP. */
    bgp: BgpSettingsSchema.optional(),
  })
  .strict();

export type AgentSettings = z.output<typeof AgentSettingsSchema>;
export type ApiSettings = AgentSettings['api'];
export type WebhookSettings = AgentSettings['notify']['webhooks'][number];

/** The settings with every default filled in (no config file, or one without `agent:`). */
export function defaultAgentSettings(): AgentSettings {
  return AgentSettingsSchema.parse({});
}
