import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { FulcrumError } from '../../errors.js';
import { VrrpInstanceSchema } from '../../model/vrrp.js';
import type { VrrpInstanceStatus } from '../../vrrp/index.js';
import { actor, ChangeResultSchema, etag, errorResponses, ifMatch, nameFromPath, putNamed, sendChange, ServiceParams, WriteQuery, type ApiDeps } from '../common.js';

const InstanceParams = ServiceParams;

const RuntimeSchema = z.object({
  state: z.enum(['init', 'backup', 'master', 'fault']),
  priority: z.number(),
  masterAddress: z.string().optional(),
  fault: z.string().optional(),
  lastTransition: z.object({ from: z.string(), to: z.string(), reason: z.string(), time: z.string() }).optional(),
});

/** /v1/vrrp: the VRRP instances of the desired state, each with its runtime state on this node. */
export const vrrpPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  const runtime = (name: string): z.output<typeof RuntimeSchema> | undefined => {
    const s = ((agent.status().vrrp ?? []) as VrrpInstanceStatus[]).find((i) => i.name === name);
    if (!s) return undefined;
    return { state: s.state, priority: s.priority, masterAddress: s.masterAddress, fault: s.fault, lastTransition: s.lastTransition };
  };
  const notFound = (name: string) => new FulcrumError('NOT_FOUND', `no VRRP instance named ${name}`);

  app.get('/v1/vrrp', {
    schema: { tags: ['vrrp'], summary: 'All VRRP instances with their state on this node', response: { 200: z.object({ revision: z.number(), instances: z.array(z.object({ spec: VrrpInstanceSchema, runtime: RuntimeSchema.optional() })) }) } },
  }, async (_req, reply) => {
    reply.header('etag', etag(agent.revision));
    return { revision: agent.revision, instances: agent.state.vrrp.map((spec) => ({ spec, runtime: runtime(spec.name) })) };
  });

  app.get('/v1/vrrp/:name', {
    schema: { tags: ['vrrp'], summary: 'One VRRP instance (the spec; its state on this node is in /v1/vrrp and /v1/status)', params: InstanceParams, response: { 200: VrrpInstanceSchema, ...errorResponses } },
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof InstanceParams>;
    const inst = agent.state.vrrp.find((i) => i.name === name);
    if (!inst) throw notFound(name);
    reply.header('etag', etag(agent.revision));
    return inst;
  });

  app.put('/v1/vrrp/:name', {
    schema: {
      tags: ['vrrp'], summary: 'Create or replace a VRRP instance (idempotent); a changed instance restarts, a master hands over first',
      params: InstanceParams, querystring: WriteQuery, body: VrrpInstanceSchema,
      response: { 200: ChangeResultSchema, 201: ChangeResultSchema, ...errorResponses },
    },
    preValidation: nameFromPath('instance'),
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof InstanceParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const body = req.body as z.output<typeof VrrpInstanceSchema>;
    const existed = agent.state.vrrp.some((i) => i.name === name);
    const result = await agent.change(
      (cur) => ({ ...cur, vrrp: putNamed(cur.vrrp, body) }),
      { actor: actor(req), action: `put vrrp instance ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result, {}, existed || !result.changed ? 200 : 201);
  });

  app.delete('/v1/vrrp/:name', {
    schema: {
      tags: ['vrrp'], summary: 'Delete a VRRP instance (a master hands its VIPs over first; deleting an absent one changes nothing)',
      params: InstanceParams, querystring: WriteQuery, response: { 200: ChangeResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof InstanceParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const result = await agent.change(
      (cur) => ({ ...cur, vrrp: cur.vrrp.filter((i) => i.name !== name) }),
      { actor: actor(req), action: `delete vrrp instance ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result);
  });
};
