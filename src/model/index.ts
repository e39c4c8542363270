import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { ConfigFileSchema, DesiredStateSchema, ServiceSchema, type DesiredState, type Service } from './schema.js';

export * from './schema.js';
export * from './net.js';

export type ConfigFile = z.output<typeof ConfigFileSchema>;

/** "services[0].backends[1].port: must be at most 65535" for each issue, one per line. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.reduce<string>(
        (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
        '',
      );
      return `${path || '(root)'}: ${i.message}`;
    })
    .join('\n');
}

function parseWith<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new FulcrumError('INVALID_CONFIG', `invalid ${what}:\n${formatIssues(result.error)}`, {
      details: result.error.issues.map((i) => ({ path: i.path, message: i.message })),
    });
  }
  return deepFreeze(result.data);
}

export function parseDesiredState(input: unknown): DesiredState {
  return parseWith(DesiredStateSchema, input ?? {}, 'desired state');
}

export function parseService(input: unknown): Service {
  return parseWith(ServiceSchema, input, 'service');
}

export function parseConfigFile(input: unknown): ConfigFile {
  return parseWith(ConfigFileSchema, input ?? {}, 'config');
}

/** Reads a YAML (or JSON) file; a syntax error names the file and line. */
export function readYamlFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new FulcrumError('INVALID_CONFIG', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return parseYaml(text);
  } catch (cause) {
    throw new FulcrumError('INVALID_CONFIG', `${path}: ${(cause as Error).message}`, { cause });
  }
}

export function loadConfigFile(path: string): ConfigFile {
  const parsed = readYamlFile(path);
  try {
    return parseConfigFile(parsed);
  } catch (e) {
    if (e instanceof FulcrumError) throw new FulcrumError(e.code, `${path}: ${e.message}`, { details: e.details });
    throw e;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}
