import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { Agent } from '../agent/agent.js';
import type { DesiredState } from '../model/index.js';
import { actor, ChangeResultSchema, errorResponses, ifMatch, nameFromPath, NameParams, putNamed, sendChange, WriteQuery } from './common.js';

/** What differs between the named lists of the desired state (services, VRRP instances). */
export interface NamedSection<K extends 'services' | 'vrrp'> {
  section: K;
  /** The list's path, "/v1/services"; items are at `${path}/{name}`. */
  path: string;
  tag: string;
  /** What an item is, in the audit log's action ("put vrrp instance a"). */
  noun: string;
  /** What the path names, for a body whose name differs ("the path's instance name"). */
  pathNames: string;
  body: z.ZodType;
  summaries: { put: string; delete: string };
}

/**
 * PUT (create or replace; the body may leave out the name, the path supplies it) and DELETE
 * (idempotent) of one item of a named list.
 */
export function putAndDeleteNamed<K extends 'services' | 'vrrp'>(app: FastifyInstance, agent: Agent, s: NamedSection<K>): void {
  type Item = DesiredState[K][number];
  const list = (state: DesiredState) => state[s.section] as readonly Item[];

  app.put(`${s.path}/:name`, {
    schema: {
      tags: [s.tag], summary: s.summaries.put,
      params: NameParams, querystring: WriteQuery, body: s.body,
      response: { 200: ChangeResultSchema, 201: ChangeResultSchema, ...errorResponses },
    },
    preValidation: nameFromPath(s.pathNames),
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof NameParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const body = req.body as Item;
    const existed = list(agent.state).some((i) => i.name === name);
    const result = await agent.change(
      (cur) => ({ ...cur, [s.section]: putNamed(list(cur), body) }),
      { actor: actor(req), action: `put ${s.noun} ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result, {}, existed || !result.changed ? 200 : 201);
  });

  app.delete(`${s.path}/:name`, {
    schema: {
      tags: [s.tag], summary: s.summaries.delete,
      params: NameParams, querystring: WriteQuery, response: { 200: ChangeResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const { name } = req.params as z.output<typeof NameParams>;
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const result = await agent.change(
      (cur) => ({ ...cur, [s.section]: list(cur).filter((i) => i.name !== name) }),
      { actor: actor(req), action: `delete ${s.noun} ${name}`, ifMatch: ifMatch(req), dryRun },
    );
    return sendChange(reply, result);
  });
}
