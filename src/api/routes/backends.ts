import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { FulcrumError } from '../../errors.js';
import { BackendSchema, BackendWeight, ConnectionThreshold, formatEndpoint, sameEndpoint, type Service } from '../../model/index.js';
import { actor, BackendParams, ChangeResultSchema, errorResponses, ifMatch, notFound, sendChange, WriteQuery, type ApiDeps } from '../common.js';

/** /v1/services/{name}/backends/{address}:{port}: add or replace, re-weight, remove. */
export const backendsPlugin: FastifyPluginAsync<ApiDeps> = async (app, { agent }) => {
  const PutBody = BackendSchema.partial({ address: true, port: true });
  const PatchBody = z
    .object({
      weight: BackendWeight.optional(),
      upperThreshold: ConnectionThreshold.optional(),
      lowerThreshold: ConnectionThreshold.optional(),
    })
    .strict()
    .refine((b) => Object.keys(b).length > 0, { message: 'give at least one of weight, upperThreshold, lowerThreshold' });

  const withBackends = (name: string, f: (s: Service) => unknown[]) => (cur: { services: readonly Service[] }) => ({
    ...cur,
    services: cur.services.map((s) => (s.name === name ? { ...s, backends: f(s) } : s)),
  });

  app.put('/v1/services/:name/backends/:endpoint', {
    schema: {
      tags: ['backends'], summary: 'Add or replace a backend (idempotent)',
      params: BackendParams, querystring: WriteQuery, body: PutBody,
      response: { 200: ChangeResultSchema, 201: ChangeResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const { name, endpoint } = req.params as z.output<typeof BackendParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const body = req.body as z.output<typeof PutBody>;
    const text = formatEndpoint(endpoint.address, endpoint.port);
    if ((body.address !== undefined && body.address !== endpoint.address) || (body.port !== undefined && body.port !== endpoint.port))
      throw new FulcrumError('INVALID_REQUEST', `invalid body:\naddress/port: ${formatEndpoint(body.address ?? endpoint.address, body.port ?? endpoint.port)} differs from the path's ${text}`);
    const svc = agent.service(name);
    if (!svc) throw notFound(name);
    const backend = { ...body, address: endpoint.address, port: endpoint.port };
    const existed = svc.backends.some((b) => sameEndpoint(b, endpoint));
    const result = await agent.change(
      withBackends(name, (s) => (existed ? s.backends.map((b) => (sameEndpoint(b, endpoint) ? backend : b)) : [...s.backends, backend])),
      { actor: actor(req), action: `put backend ${text} of ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result, {}, existed || !result.changed ? 200 : 201);
  });

  app.patch('/v1/services/:name/backends/:endpoint', {
    schema: {
      tags: ['backends'], summary: 'Change the weight (or thresholds) of a backend',
      params: BackendParams, querystring: WriteQuery, body: PatchBody,
      response: { 200: ChangeResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const { name, endpoint } = req.params as z.output<typeof BackendParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const patch = req.body as z.output<typeof PatchBody>;
    const text = formatEndpoint(endpoint.address, endpoint.port);
    const svc = agent.service(name);
    if (!svc) throw notFound(name);
    if (!svc.backends.some((b) => sameEndpoint(b, endpoint))) throw new FulcrumError('NOT_FOUND', `service ${name} has no backend ${text}`);
    const result = await agent.change(
      withBackends(name, (s) => s.backends.map((b) => (sameEndpoint(b, endpoint) ? { ...b, ...patch } : b))),
      { actor: actor(req), action: `patch backend ${text} of ${name} (${JSON.stringify(patch)})`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result);
  });

  app.delete('/v1/services/:name/backends/:endpoint', {
    schema: {
      tags: ['backends'], summary: 'Remove a backend from the desired state (the dataplane drains its connections as for drain); idempotent',
      params: BackendParams, querystring: WriteQuery, response: { 200: ChangeResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const { name, endpoint } = req.params as z.output<typeof BackendParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    if (!agent.service(name)) throw notFound(name);
    const result = await agent.change(
      withBackends(name, (s) => s.backends.filter((b) => !sameEndpoint(b, endpoint))),
      { actor: actor(req), action: `delete backend ${formatEndpoint(endpoint.address, endpoint.port)} of ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result);
  });
};
