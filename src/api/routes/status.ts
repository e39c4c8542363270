import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { etag, staleMark, type ApiDeps } from '../common.js';

/** /v1/status, /healthz, /readyz, /metrics. */
export const statusPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent, metrics }) => {
  app.get('/v1/status', {
    schema: {
      tags: ['status'], summary: 'Dataplanes found and missing, revision, last reconcile',
      response: {
        200: z.object({
          revision: z.number(), updatedAt: z.string().optional(), ready: z.boolean(), services: z.number(),
          dataplanes: z.array(z.object({ name: z.enum(['ipvs', 'xdp']), available: z.boolean(), reason: z.string().optional() })),
          lastReconcile: z.object({ trigger: z.string(), time: z.string(), result: z.enum(['ok', 'error']), steps: z.number(), durationMs: z.number(), error: z.string().optional() }).optional(),
          reconcileIntervalSeconds: z.number(), store: z.string(), health: z.unknown().optional(), vrrp: z.unknown().optional(),
          stale: z.boolean().optional(), cluster: z.unknown().optional(),
        }),
      },
    },
  }, async (_req, reply) => {
    reply.header('etag', etag(agent.revision));
    staleMark(agent, reply);
    return agent.status();
  });

  app.get('/healthz', { schema: { tags: ['status'], summary: 'The process is alive' } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { tags: ['status'], summary: 'The agent has started and reconciled once' } }, async (_req, reply) => {
    if (!agent.ready) return reply.code(503).send({ status: 'starting' });
    return { status: 'ready', revision: agent.revision };
  });

  app.get('/metrics', { schema: { tags: ['status'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    reply.header('content-type', metrics.contentType);
    return metrics.metrics();
  });
};
