import type { FastifySchemaCompiler } from 'fastify';
import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { formatIssues, freezeSpec, operatorIssues } from '../model/index.js';

/**
 * zod as fastify's one validator and the source of the OpenAPI document: route schemas hold zod
 * types; this compiler validates with them, and `toOpenApi` converts them for @fastify/swagger.
 */

const PART_NAMES: Record<string, string> = { body: 'body', params: 'path', querystring: 'query', headers: 'header' };

export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  return (data: unknown) => {
    const result = schema.safeParse(data);
    // A parsed body is a spec: the agent takes it as it is (see src/agent/validate.ts).
    if (result.success) return { value: httpPart === 'body' ? freezeSpec(result.data) : result.data };
    const part = PART_NAMES[httpPart ?? 'body'] ?? 'request';
    const error = new FulcrumError(
      'INVALID_REQUEST',
      `invalid ${part}:\n${formatIssues(result.error)}`,
      { details: operatorIssues(result.error).map((i) => ({ in: part, ...i })) },
    );
    return { error };
  };
};

function isZod(value: unknown): value is z.ZodType {
  return !!value && typeof value === 'object' && '_zod' in value;
}

export function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
}

/** @fastify/swagger `transform`: zod route schemas -> JSON Schema. */
export function toOpenApi({ schema, url }: { schema: Record<string, unknown> | undefined; url: string }): { schema: Record<string, unknown>; url: string } {
  if (!schema) return { schema: {}, url };
  const out: Record<string, unknown> = { ...schema };
  for (const part of ['body', 'params', 'querystring', 'headers'] as const) {
    const v = schema[part];
    if (isZod(v)) out[part] = toJsonSchema(v, 'input');
  }
  const response = schema.response as Record<string, unknown> | undefined;
  if (response) {
    out.response = Object.fromEntries(
      Object.entries(response).map(([code, v]) => [code, isZod(v) ? toJsonSchema(v, 'output') : v]),
    );
  }
  return { schema: out, url };
}
