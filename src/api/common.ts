import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Agent } from '../agent/agent.js';
import type { ChangeResult } from '../agent/change.js';
import type { EventBus } from '../events.js';
import type { Registry } from '../metrics.js';
import type { Logger } from '../log.js';
import type { ApiSettings } from '../model/agent.js';
import { FulcrumError } from '../errors.js';
import { Name, parseEndpoint } from '../model/index.js';
import type { Principal, TokenSet } from './auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

export interface ApiDeps {
  agent: Agent;
  events: EventBus;
  metrics: Registry;
  tokens: TokenSet;
  settings: ApiSettings;
  logger: Logger;
  /** PEM contents when the API serves TLS. */
  https?: { cert: Buffer; key: Buffer } | undefined;
  /** Re-reads the config file and applies it (POST /v1/reload); absent when there is no config file. */
  reload?: ((options: { dryRun?: boolean }) => Promise<ReloadResult>) | undefined;
}

export interface ReloadResult {
  change: ChangeResult;
  /** `agent:` settings that differ from the running ones (they need a restart). */
  restartNeeded: string[];
}

export const WriteQuery = z
  .object({
    dryRun: z
      .enum(['true', 'false', '1', '0'])
      .optional()
      .transform((v) => v === 'true' || v === '1')
      .describe('true: return the plan without applying it'),
  })
  .strict();

export const NameParams = z.object({ name: Name }).strict();

/** "10.0.0.2:80" or "[2001:db8::2]:80" in the path. */
export const Endpoint = z
  .string()
  .describe('backend as address:port, IPv6 as [address]:port')
  .transform((s, ctx) => {
    const ep = parseEndpoint(s);
    if (!ep) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not address:port (IPv6 as [address]:port)` });
      return z.NEVER;
    }
    return ep;
  });

export const BackendParams = z.object({ name: Name, endpoint: Endpoint }).strict();

/**
 * preValidation of `PUT /v1/<kind>/{name}`: the body may leave out the name (the path supplies
 * it); a different one is refused.
 */
export function nameFromPath(what: string) {
  return async (req: FastifyRequest): Promise<void> => {
    const name = (req.params as { name: string }).name;
    const body = req.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) return;
    if (body.name === undefined) req.body = { ...body, name };
    else if (body.name !== name)
      throw new FulcrumError('INVALID_REQUEST', `invalid body:\nname: "${String(body.name)}" differs from the path's ${what} name "${name}"`);
  };
}

/** The list with the item named `name` replaced by `item`, or `item` appended when none is. */
export function putNamed<T extends { name: string }>(list: readonly T[], item: T): T[] {
  return list.some((x) => x.name === item.name) ? list.map((x) => (x.name === item.name ? item : x)) : [...list, item];
}

/** The revision of an If-Match header ("7", "\"7\"", "W/\"7\""; "*" matches any). */
export function ifMatch(req: FastifyRequest): number | undefined {
  const raw = req.headers['if-match'];
  if (raw === undefined) return undefined;
  const text = (Array.isArray(raw) ? raw[0]! : raw).trim();
  if (text === '*') return undefined;
  const m = text.match(/^(?:W\/)?"?(\d+)"?$/);
  if (!m) throw new FulcrumError('INVALID_REQUEST', `If-Match: "${text}" is not a revision (an ETag from this API, e.g. "7")`);
  return Number(m[1]);
}

/**
 * True when an If-None-Match header matches `tag` (an ETag of this API): "*", or any entry of
 * the list under weak comparison (RFC 9110 13.1.2: W/"7" matches "7").
 */
export function ifNoneMatch(req: FastifyRequest, tag: string): boolean {
  const raw = req.headers['if-none-match'];
  if (raw === undefined) return false;
  if (raw === tag) return true;
  for (const part of (Array.isArray(raw) ? raw.join(',') : raw).split(',')) {
    const t = part.trim();
    if (t === '*' || t === tag || (t.startsWith('W/') && t.slice(2) === tag)) return true;
  }
  return false;
}

export function etag(revision: number): string {
  return `"${revision}"`;
}

/**
 * agent.store kind etcd: `{ stale: true|false }` for a read's body, and the header
 * `Fulcrum-Stale: true` while the watch is disconnected (the answer may be behind the cluster).
 * Nothing with the file store.
 */
export function staleMark(agent: Agent, reply: FastifyReply): { stale?: boolean } {
  const cluster = agent.cluster;
  if (!cluster) return {};
  if (cluster.stale) reply.header('fulcrum-stale', 'true');
  return { stale: cluster.stale };
}

export function actor(req: FastifyRequest): string {
  return req.principal?.name ?? 'anonymous';
}

/** The common answer of a write: the result, with the revision as ETag. */
export function sendChange(reply: FastifyReply, result: ChangeResult, extra: Record<string, unknown> = {}, status = 200) {
  reply.header('etag', etag(result.revision));
  return reply.code(result.dryRun ? 200 : status).send({ ...result, ...extra });
}

export const ChangeResultSchema = z.object({
  revision: z.number().int(),
  changed: z.boolean(),
  applied: z.boolean(),
  dryRun: z.boolean(),
  diff: z.array(z.object({ op: z.enum(['+', '-', '~']), subject: z.string(), text: z.string() })),
  plan: z.array(z.object({ dataplane: z.enum(['ipvs', 'xdp']), steps: z.array(z.object({ kind: z.string(), service: z.string(), description: z.string() })) })),
});

export const ErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  errno: z.number().int().optional(),
  errnoName: z.string().optional(),
  details: z.unknown().optional(),
});

export const errorResponses = {
  400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 412: ErrorSchema,
  429: ErrorSchema, 500: ErrorSchema, 502: ErrorSchema, 503: ErrorSchema,
};

export function notFound(name: string): FulcrumError {
  return new FulcrumError('NOT_FOUND', `no service named ${name}`);
}
