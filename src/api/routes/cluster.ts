import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { FulcrumError } from '../../errors.js';
import { errorResponses, type ApiDeps } from '../common.js';

const Reconcile = z.object({ result: z.enum(['ok', 'failed']), revision: z.number(), message: z.string().optional(), at: z.string() });

/** GET /v1/cluster: every member of the cluster (agent.store kind etcd) and how it stands. */
export const clusterPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  app.get('/v1/cluster', {
    schema: {
      tags: ['status'], summary: "The cluster's revision and every node: current, behind, failed or gone (lease expired)",
      response: {
        200: z.object({
          revision: z.number(),
          nodes: z.array(z.object({
            id: z.string(), health: z.enum(['current', 'behind', 'failed', 'gone']),
            record: z.object({ id: z.string(), address: z.string().optional(), dataplanes: z.array(z.string()), appliedRevision: z.number(), lastReconcile: Reconcile.optional(), startedAt: z.string(), updatedAt: z.string() }).optional(),
            member: z.object({ id: z.string(), address: z.string().optional(), registeredAt: z.string() }).optional(),
          })),
        }),
        ...errorResponses,
      },
    },
  }, async () => {
    const cluster = agent.cluster;
    if (!cluster) throw new FulcrumError('NOT_FOUND', 'this agent is not in a cluster (agent.store kind file); see docs/cluster.md');
    return cluster.clusterStatus();
  });
};
