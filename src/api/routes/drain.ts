import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { formatEndpoint } from '../../model/index.js';
import { actor, BackendParams, ChangeResultSchema, errorResponses, ifMatch, sendChange, WriteQuery, type ApiDeps } from '../common.js';

const Progress = z.object({
  state: z.enum(['draining', 'done', 'not-draining']),
  service: z.string(),
  backend: z.string(),
  activeConnections: z.number(),
  startedAt: z.string().optional(),
  deadline: z.string().optional(),
});

/**
 * Drain: takes a backend out of the desired state; the dataplane keeps its established
 * connections (weight 0) until they end or the drain timeout passes. Progress can be read.
 */
export const drainPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  app.post('/v1/services/:name/backends/:endpoint/drain', {
    schema: {
      tags: ['drain'], summary: 'Start draining a backend (idempotent)',
      params: BackendParams, querystring: WriteQuery,
      response: { 202: ChangeResultSchema.extend({ progress: Progress }), 200: ChangeResultSchema.extend({ progress: Progress }), ...errorResponses },
    },
  }, async (req, reply) => {
    const { name, endpoint } = req.params as z.output<typeof BackendParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const text = formatEndpoint(endpoint.address, endpoint.port);
    const { change, progress } = await agent.drain(name, text, { actor: actor(req), ifMatch: ifMatch(req), dryRun });
    return sendChange(reply, change, { progress }, 202);
  });

  app.get('/v1/services/:name/backends/:endpoint/drain', {
    schema: { tags: ['drain'], summary: 'Progress of a drain', params: BackendParams, response: { 200: Progress, ...errorResponses } },
  }, async (req) => {
    const { name, endpoint } = req.params as z.output<typeof BackendParams>;
    return agent.drainProgress(name, formatEndpoint(endpoint.address, endpoint.port));
  });

  app.get('/v1/drains', {
    schema: { tags: ['drain'], summary: 'Every backend being drained', response: { 200: z.object({ drains: z.array(Progress) }) } },
  }, async () => ({
    drains: agent.drains().map((d) => ({
      state: 'draining' as const, service: d.service, backend: formatEndpoint(d.address, d.port),
      activeConnections: d.activeConnections, startedAt: d.startedAt, deadline: d.deadline,
    })),
  }));
};
