import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { ServiceSchema } from '../../model/index.js';
import { actor, ChangeResultSchema, etag, errorResponses, ifMatch, nameFromPath, notFound, putNamed, sendChange, ServiceParams, WriteQuery, type ApiDeps } from '../common.js';

/** /v1/services: list, read, create-or-replace, delete, stats. */
export const servicesPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  let cache: { revision: number; body: Buffer } | undefined;
  app.get('/v1/services', {
    schema: { tags: ['services'], summary: 'All services of the desired state (If-None-Match with the ETag answers 304)', response: { 200: z.object({ revision: z.number(), services: z.array(ServiceSchema) }), 304: z.null() } },
  }, async (req, reply) => {
    // The list only changes with the revision: serialise and encode it once per revision.
    if (cache?.revision !== agent.revision) cache = { revision: agent.revision, body: Buffer.from(JSON.stringify({ revision: agent.revision, services: agent.state.services })) };
    reply.header('etag', etag(cache.revision));
    if (req.headers['if-none-match'] === etag(cache.revision)) return reply.code(304).send();
    // A Buffer goes out as it is (a string would be UTF-8 encoded again on every request).
    return reply.type('application/json; charset=utf-8').send(cache.body);
  });

  app.get('/v1/services/:name', {
    schema: { tags: ['services'], summary: 'One service', params: ServiceParams, response: { 200: ServiceSchema, ...errorResponses } },
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof ServiceParams>;
    const svc = agent.service(name);
    if (!svc) throw notFound(name);
    reply.header('etag', etag(agent.revision));
    return svc;
  });

  // The body may leave out the name; the path supplies it.
  app.put('/v1/services/:name', {
    schema: {
      tags: ['services'], summary: 'Create or replace a service (idempotent)',
      params: ServiceParams, querystring: WriteQuery, body: ServiceSchema,
      response: { 200: ChangeResultSchema, 201: ChangeResultSchema, ...errorResponses },
    },
    preValidation: nameFromPath('service'),
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof ServiceParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const body = req.body as z.output<typeof ServiceSchema>;
    const existed = agent.service(name) !== undefined;
    const result = await agent.change(
      (cur) => ({ ...cur, services: putNamed(cur.services, body) }),
      { actor: actor(req), action: `put service ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result, {}, existed || !result.changed ? 200 : 201);
  });

  app.delete('/v1/services/:name', {
    schema: {
      tags: ['services'], summary: 'Delete a service (idempotent: deleting an absent service changes nothing)',
      params: ServiceParams, querystring: WriteQuery, response: { 200: ChangeResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof ServiceParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const result = await agent.change(
      (cur) => ({ ...cur, services: cur.services.filter((s) => s.name !== name) }),
      { actor: actor(req), action: `delete service ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result);
  });

  const Counters = z.object({ packetsIn: z.number(), packetsOut: z.number(), bytesIn: z.number(), bytesOut: z.number(), connections: z.number() });
  app.get('/v1/services/:name/stats', {
    schema: {
      tags: ['services'], summary: 'Kernel counters of a service and its backends',
      params: ServiceParams,
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
    const { name } = req.params as z.output<typeof ServiceParams>;
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
