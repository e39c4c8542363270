import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { DesiredStateSchema } from '../../model/index.js';
import { actor, ChangeResultSchema, etag, errorResponses, ifMatch, sendChange, staleMark, WriteQuery, type ApiDeps } from '../common.js';

/** /v1/state: the whole desired state, read or replaced declaratively. */
export const statePlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  app.get('/v1/state', {
    schema: { tags: ['state'], summary: 'The whole desired state', response: { 200: z.object({ revision: z.number(), state: DesiredStateSchema, stale: z.boolean().optional() }) } },
  }, async (_req, reply) => {
    reply.header('etag', etag(agent.revision));
    return { revision: agent.revision, state: agent.state, ...staleMark(agent, reply) };
  });

  app.put('/v1/state', {
    schema: {
      tags: ['state'], summary: 'Replace the whole desired state (idempotent); JSON or YAML body',
      querystring: WriteQuery, body: DesiredStateSchema, response: { 200: ChangeResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const body = req.body as z.output<typeof DesiredStateSchema>;
    const result = await agent.change(() => body, { actor: actor(req), action: `put state (${body.services.length} services)`, ifMatch: ifMatch(req), dryRun });
    return sendChange(reply, result);
  });
};
