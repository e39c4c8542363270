import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { FulcrumError } from '../../errors.js';
import { VrrpInstanceSchema } from '../../model/vrrp.js';
import type { VrrpInstanceStatus } from '../../vrrp/index.js';
import { errorResponses, etag, NameParams, type ApiDeps } from '../common.js';
import { putAndDeleteNamed } from '../named-item.js';

const RuntimeSchema = z.object({
  state: z.enum(['init', 'backup', 'master', 'fault']),
  priority: z.number(),
  masterAddress: z.string().optional(),
  fault: z.string().optional(),
  lastTransition: z.object({ from: z.string(), to: z.string(), reason: z.string(), time: z.string() }).optional(),
  maintenance: z.boolean(),
});

const MaintenanceBody = z.object({
  enabled: z.boolean(),
  dryRun: z.boolean().default(false),
}).strict();

const MaintenanceAnswer = z.object({
  changed: z.boolean(),
  dryRun: z.boolean(),
  instances: z.array(z.object({ name: z.string(), state: z.string(), maintenance: z.boolean() })),
});

/** /v1/vrrp: the VRRP instances of the desired state, each with its runtime state on this node. */
export const vrrpPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  const runtime = (name: string): z.output<typeof RuntimeSchema> | undefined => {
    const s = ((agent.status().vrrp ?? []) as VrrpInstanceStatus[]).find((i) => i.name === name);
    if (!s) return undefined;
    return { state: s.state, priority: s.priority, masterAddress: s.masterAddress, fault: s.fault, lastTransition: s.lastTransition, maintenance: s.maintenance };
  };
  const notFound = (name: string) => new FulcrumError('NOT_FOUND', `no VRRP instance named ${name}`);

  app.get('/v1/vrrp', {
    schema: { tags: ['vrrp'], summary: 'All VRRP instances with their state on this node', response: { 200: z.object({ revision: z.number(), instances: z.array(z.object({ spec: VrrpInstanceSchema, runtime: RuntimeSchema.optional() })) }) } },
  }, async (_req, reply) => {
    reply.header('etag', etag(agent.revision));
    return { revision: agent.revision, instances: agent.state.vrrp.map((spec) => ({ spec, runtime: runtime(spec.name) })) };
  });

  app.post('/v1/vrrp/maintenance', {
    schema: {
      tags: ['vrrp'],
      summary: 'Planned hand-over: every VRRP instance of this node gives its VIPs up at once (priority 0) and stays backup, also across restarts, until maintenance is ended (enabled: false)',
      body: MaintenanceBody,
      response: { 200: MaintenanceAnswer, ...errorResponses },
    },
  }, async (req) => {
    const { enabled, dryRun } = req.body as z.output<typeof MaintenanceBody>;
    return { ...agent.setVrrpMaintenance(enabled, { dryRun }), dryRun };
  });

  app.get('/v1/vrrp/:name', {
    schema: { tags: ['vrrp'], summary: 'One VRRP instance (the spec; its state on this node is in /v1/vrrp and /v1/status)', params: NameParams, response: { 200: VrrpInstanceSchema, ...errorResponses } },
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof NameParams>;
    const inst = agent.state.vrrp.find((i) => i.name === name);
    if (!inst) throw notFound(name);
    reply.header('etag', etag(agent.revision));
    return inst;
  });

  putAndDeleteNamed(app, agent, {
    section: 'vrrp', path: '/v1/vrrp', tag: 'vrrp', noun: 'vrrp instance', pathNames: 'instance', body: VrrpInstanceSchema,
    summaries: {
      put: 'Create or replace a VRRP instance (idempotent); a changed instance restarts, a master hands over first',
      delete: 'Delete a VRRP instance (a master hands its VIPs over first; deleting an absent one changes nothing)',
    },
  });
};
