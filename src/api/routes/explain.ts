import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { familyOf, parseEndpoint, canonicalIp } from '../../model/index.js';
import { IpAddress } from '../../model/primitives.js';
import { errorResponses, type ApiDeps } from '../common.js';

const PortText = z.string().regex(/^\d{1,5}$/, 'must be a port number 1-65535').transform(Number).pipe(z.number().int().min(1).max(65535, 'must be a port number 1-65535'));

/** "10.0.0.9", "10.0.0.9:40000", "[2001:db8::9]:40000" or a bare IPv6 address. */
const ClientText = z.string().transform((s, ctx) => {
  if (familyOf(s)) return { address: canonicalIp(s), port: undefined };
  const ep = parseEndpoint(s);
  if (!ep || ep.port < 1) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not ADDRESS or ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)` });
    return z.NEVER;
  }
  return { address: ep.address, port: ep.port as number | undefined };
});

export const ExplainQuery = z.object({
  client: ClientText.describe('the client as ADDRESS or ADDRESS:PORT (IPv6 as [ADDRESS]:PORT); the port is the flow\'s source port'),
  vip: IpAddress.describe('the VIP the client connects to'),
  port: PortText.describe('the VIP port'),
  proto: z.enum(['tcp', 'udp']).default('tcp').describe('tcp or udp'),
}).strict();

const Backend = z.object({
  address: z.string(), port: z.number(), weight: z.number(), health: z.enum(['up', 'down', 'unchecked']), draining: z.boolean(),
  activeConnections: z.number().optional(), inactiveConnections: z.number().optional(),
});

export const ExplanationSchema = z.object({
  service: z.string(),
  dataplane: z.enum(['ipvs', 'xdp']),
  flow: z.object({ client: z.string(), clientPort: z.number().optional(), vip: z.string(), port: z.number(), protocol: z.enum(['tcp', 'udp']) }),
  source: z.enum(['connection', 'scheduler', 'unpredictable', 'none']),
  backend: Backend.nullable(),
  reason: z.string(),
  detail: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  backends: z.array(Backend),
});

/** GET /v1/explain: which backend a flow reaches now and why (docs/explain.md). */
export const explainPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  app.get('/v1/explain', {
    schema: {
      tags: ['status'], summary: 'Which backend a client flow to a VIP reaches now, and why',
      querystring: ExplainQuery, response: { 200: ExplanationSchema, ...errorResponses },
    },
  }, async (req) => {
    const q = req.query as z.output<typeof ExplainQuery>;
    return agent.explain({ client: q.client.address, ...(q.client.port !== undefined ? { clientPort: q.client.port } : {}), vip: q.vip, port: q.port, protocol: q.proto });
  });
};
