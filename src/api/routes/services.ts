import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { ServiceSchema, type DesiredState } from '../../model/index.js';
import { errorResponses, etag, ifNoneMatch, NameParams, notFound, type ApiDeps } from '../common.js';
import { putAndDeleteNamed } from '../named-item.js';

/** /v1/services: list, read, create-or-replace, delete, stats. */
export const servicesPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  // The list changes only with the stored state: serialise and encode it once per state. The key
  // is the frozen services array itself, not only the revision: a reseed from a config file that
  // only reorders services stores a new state under the same revision.
  let cache: { services: DesiredState['services']; revision: number; etag: string; body: Buffer } | undefined;
  app.get('/v1/services', {
    schema: { tags: ['services'], summary: 'All services of the desired state (If-None-Match with the ETag answers 304)', response: { 200: z.object({ revision: z.number(), services: z.array(ServiceSchema) }), 304: z.null() } },
  }, async (req, reply) => {
    const { revision, state: { services } } = agent;
    if (cache?.services !== services || cache.revision !== revision)
      cache = { services, revision, etag: etag(revision), body: Buffer.from(JSON.stringify({ revision, services })) };
    reply.header('etag', cache.etag);
    if (ifNoneMatch(req, cache.etag)) return reply.code(304).send();
    // A Buffer goes out as it is (a string would be UTF-8 encoded again on every request).
    return reply.type('application/json; charset=utf-8').send(cache.body);
  });

  app.get('/v1/services/:name', {
    schema: { tags: ['services'], summary: 'One service', params: NameParams, response: { 200: ServiceSchema, ...errorResponses } },
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof NameParams>;
    const svc = agent.service(name);
    if (!svc) throw notFound(name);
    reply.header('etag', etag(agent.revision));
    return svc;
  });

  putAndDeleteNamed(app, agent, {
    section: 'services', path: '/v1/services', tag: 'services', noun: 'service', pathNames: 'service', body: ServiceSchema,
    summaries: { put: 'Create or replace a service (idempotent)', delete: 'Delete a service (idempotent: deleting an absent service changes nothing)' },
  });

  const Counters = z.object({ packetsIn: z.number(), packetsOut: z.number(), bytesIn: z.number(), bytesOut: z.number(), connections: z.number() });
  app.get('/v1/services/:name/stats', {
    schema: {
      tags: ['services'], summary: 'Kernel counters of a service and its backends',
      params: NameParams,
      response: {
        200: z.object({
          service: z.string(),
          dataplane: z.enum(['ipvs', 'xdp']).optional(),
          totals: Counters,
          backends: z.array(z.object({ address: z.string(), port: z.number(), activeConnections: z.number().optional(), inactiveConnections: z.number().optional(), counters: Counters })),
        }),
        ...errorResponses,
      },
    },
  }, async (req) => {
    const { name } = req.params as z.output<typeof NameParams>;
    if (!agent.service(name)) throw notFound(name);
    const [stats] = await agent.stats(name);
    const zero = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, connections: 0 };
    if (!stats) return { service: name, totals: zero, backends: [] };
    // Counters are 64-bit in the kernel; as JSON numbers they stay exact up to 2^53.
    const num = (c: Record<string, bigint>) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, Number(v)]));
    return {
      service: stats.service,
      dataplane: stats.dataplane,
      totals: num(stats.totals as unknown as Record<string, bigint>),
      backends: stats.backends.map((b) => ({ ...b, counters: num(b.counters as unknown as Record<string, bigint>) })),
    };
  });
};
