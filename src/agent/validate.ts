import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { desiredStateSchemaWith, formatIssues, freezeSpec, isParsedSpec, operatorIssues, type DesiredState } from '../model/index.js';

/**
 * Validation of a changed desired state that parses only what is new. Parts that a parse already
 * produced (the frozen objects of the stored state, or of a request body the API parsed, kept by
 * identity through a mutation such as "patch one backend") are taken as they are: a spec is never
 * fed back into an input schema. Everything else goes through its schema; the sections and the
 * state-level rules are DesiredStateSchema's own (desiredStateSchemaWith), so the result and the
 * error messages are those of parseDesiredState, at a fraction of the cost for a one-service
 * change to a large state (the whole-state parse dominated a PATCH on 1,000 services).
 */
function reuseParsed<S extends z.ZodType>(schema: S): S {
  const reuse = z.unknown().transform((item, ctx): z.output<S> => {
    if (isParsedSpec(item)) return item as z.output<S>;
    const r = schema.safeParse(item);
    if (r.success) return r.data;
    for (const issue of r.error.issues) ctx.addIssue(issue as Parameters<typeof ctx.addIssue>[0]);
    return z.NEVER;
  });
  // Same output as `schema`; only the input side differs (anything, checked here).
  return reuse as unknown as S;
}

const IncrementalStateSchema = desiredStateSchemaWith(reuseParsed);

export function parseChangedState(input: unknown): DesiredState {
  if (isParsedSpec(input)) return input as DesiredState;
  const r = IncrementalStateSchema.safeParse(input ?? {});
  if (!r.success) {
    throw new FulcrumError('INVALID_CONFIG', `invalid desired state:\n${formatIssues(r.error)}`, {
      details: operatorIssues(r.error),
    });
  }
  return freezeSpec(r.data as DesiredState);
}
