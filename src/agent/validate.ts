import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { DesiredStateSchema, formatIssues, ServiceSchema, type DesiredState, type Service } from '../model/index.js';

/**
 * Validation of a changed desired state that re-checks only what changed. Services the agent
 * already validated (the frozen objects of the stored state, kept by identity through a mutation
 * such as "patch one backend") are taken as they are; every other service goes through
 * ServiceSchema; the state-level rules are DesiredStateSchema's own checks, so the result and the
 * error messages are those of parseDesiredState, at a fraction of the cost for a one-service
 * change to a large state (the whole-state parse dominated a PATCH on 1,000 services).
 */
const validated = new WeakSet<object>();

const isKnown = (v: unknown): v is Service => typeof v === 'object' && v !== null && validated.has(v);

const Services = z.array(z.unknown()).transform((items, ctx) =>
  items.map((item, i) => {
    if (isKnown(item)) return item;
    const r = ServiceSchema.safeParse(item);
    if (r.success) return r.data;
    for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [i, ...issue.path] } as Parameters<typeof ctx.addIssue>[0]);
    return z.NEVER;
  }),
);

const checks = DesiredStateSchema._zod.def.checks ?? [];
const IncrementalStateSchema = z
  .object({ ...DesiredStateSchema.shape, services: Services.default([]) })
  .strict()
  .check(...(checks as never[]));

/** Marks the services of a parsed (frozen) state as validated. */
export function rememberValid(state: DesiredState): DesiredState {
  for (const s of state.services) validated.add(s);
  return state;
}

export function parseChangedState(input: unknown): DesiredState {
  const r = IncrementalStateSchema.safeParse(input ?? {});
  if (!r.success) {
    throw new FulcrumError('INVALID_CONFIG', `invalid desired state:\n${formatIssues(r.error)}`, {
      details: r.error.issues.map((i) => ({ path: i.path, message: i.message })),
    });
  }
  // Frozen like parseDesiredState's output; already-frozen (known) services are skipped.
  return rememberValid(deepFreeze(r.data as DesiredState));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}


