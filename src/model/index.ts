import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { ConfigFileSchema, DesiredStateSchema, ServiceSchema, type DesiredState, type Service } from './schema.js';

export * from './schema.js';
export * from './net.js';

export type ConfigFile = z.output<typeof ConfigFileSchema>;

/**
 * The issues an operator should read. A union whose every branch failed (a VIP given as text or
 * as an object) reports the branch that got past the type check instead of zod's bare
 * "Invalid input".
 */
export function operatorIssues(error: z.ZodError): Array<{ path: PropertyKey[]; message: string }> {
  const out: Array<{ path: PropertyKey[]; message: string }> = [];
  const walk = (issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]) => {
    for (const i of issues) {
      const path = [...prefix, ...i.path];
      if (i.code === 'invalid_union' && i.errors.length > 0) {
        const typed = i.errors.filter((branch) => !branch.every((b) => b.code === 'invalid_type' && b.path.length === 0));
        if (typed.length === 1) { walk(typed[0]!, path); continue; }
      }
      out.push({ path, message: i.message });
    }
  };
  walk(error.issues, []);
  return out;
}

/** "services[0].backends[1].port: must be at most 65535" for each issue, one per line. */
export function formatIssues(error: z.ZodError): string {
  return operatorIssues(error)
    .map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`)
    .join('\n');
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
    '',
  );
}

function parseWith<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new FulcrumError('INVALID_CONFIG', `invalid ${what}:\n${formatIssues(result.error)}`, {
      details: operatorIssues(result.error),
    });
  }
  return freezeSpec(result.data);
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

/** The desired-state part of a parsed config file (a spec: the same frozen objects, not re-parsed). */
export function desiredStateOf(config: ConfigFile): DesiredState {
  return freezeSpec({ services: config.services, ...(config.xdp ? { xdp: config.xdp } : {}), ...(config.ipvs ? { ipvs: config.ipvs } : {}), vrrp: config.vrrp });
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

/**
 * Every object a parse produced, by identity. A spec is never fed back into an input schema: a
 * change that keeps parsed parts (a PATCH of one backend keeps every other service object)
 * validates only what is new (see src/agent/validate.ts).
 */
const parsedSpecs = new WeakSet<object>();

/** Freezes a parse result and remembers each of its objects as a spec. */
export function freezeSpec<T>(value: T): T {
  if (value && typeof value === 'object' && !parsedSpecs.has(value)) {
    parsedSpecs.add(value);
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) freezeSpec(v);
  }
  return value;
}

/** True for an object that a parse of this process produced (and nobody could change: frozen). */
export function isParsedSpec(value: unknown): boolean {
  return typeof value === 'object' && value !== null && parsedSpecs.has(value);
}
