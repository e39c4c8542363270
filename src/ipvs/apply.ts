import { FulcrumError, isFulcrumError } from '../errors.js';
import type { IpvsClient } from './types.js';
import type { Step } from './plan.js';

/**
 * The executor: runs planned steps against an IpvsClient and, when one fails, undoes the steps
 * already applied (newest first) before throwing APPLY_FAILED with the failing step and its errno.
 *
 * Steps run in three phases so that many requests can be in flight at once (the client pipelines
 * them) without ordering assumptions inside a phase: (1) deletions and edits, (2) service
 * additions, (3) destination additions. Within a phase no step depends on another.
 */

/** How many requests the executor hands the client at once (the client bounds what is in flight). */
const WINDOW = 8192;

function phaseOf(step: Step): 0 | 1 | 2 {
  switch (step.kind) {
    case 'delete-dest':
    case 'delete-service':
    case 'edit-service':
    case 'edit-dest':
    case 'drain-dest':
      return 0;
    case 'add-service':
      return 1;
    case 'add-dest':
      return 2;
    default: {
      const never: never = step;
      throw new Error(`unhandled step ${(never as Step).kind}`);
    }
  }
}

/** One kernel call per step. The switch is exhaustive: a new step kind fails to compile here. */
export function runStep(client: IpvsClient, step: Step): Promise<void> {
  switch (step.kind) {
    case 'add-service': return client.addService(step.spec);
    case 'edit-service': return client.editService(step.spec);
    case 'delete-service': return client.deleteService(step.key);
    case 'add-dest': return client.addDestination(step.key, step.dest);
    case 'edit-dest':
    case 'drain-dest': return client.editDestination(step.key, step.dest);
    case 'delete-dest': return client.deleteDestination(step.key, step.previous);
    default: {
      const never: never = step;
      throw new Error(`unhandled step ${(never as Step).kind}`);
    }
  }
}

/** The kernel calls that undo a step that succeeded. */
export async function undoStep(client: IpvsClient, step: Step): Promise<void> {
  switch (step.kind) {
    case 'add-service': return client.deleteService(step.key);
    case 'edit-service': return client.editService(step.previous);
    case 'delete-service': {
      await client.addService(step.previous.spec);
      await Promise.all(step.previous.dests.map((d) => client.addDestination(step.key, d)));
      return;
    }
    case 'add-dest': return client.deleteDestination(step.key, step.dest);
    case 'edit-dest':
    case 'drain-dest': return client.editDestination(step.key, step.previous);
    case 'delete-dest': return client.addDestination(step.key, step.previous);
    default: {
      const never: never = step;
      throw new Error(`unhandled step ${(never as Step).kind}`);
    }
  }
}

async function runWindowed(items: readonly Step[], fn: (s: Step) => Promise<void>): Promise<Array<{ step: Step; error?: unknown }>> {
  const results: Array<{ step: Step; error?: unknown }> = [];
  for (let i = 0; i < items.length; i += WINDOW) {
    const chunk = items.slice(i, i + WINDOW);
    const settled = await Promise.allSettled(chunk.map(fn));
    settled.forEach((r, j) => results.push(r.status === 'fulfilled' ? { step: chunk[j]! } : { step: chunk[j]!, error: r.reason }));
    if (settled.some((r) => r.status === 'rejected')) break;
  }
  return results;
}

export interface ApplyOutcome {
  /** Steps that succeeded (all of them when apply returns). */
  applied: Step[];
}

/**
 * Applies `steps`; on failure rolls back and throws FulcrumError('APPLY_FAILED') whose message
 * names the step, with `errno` of the kernel's answer and `details.rolledBack`.
 */
export async function applySteps(client: IpvsClient, steps: readonly Step[]): Promise<ApplyOutcome> {
  const phases: Step[][] = [[], [], []];
  for (const s of steps) phases[phaseOf(s)]!.push(s);
  const applied: Step[] = [];
  for (const phase of phases) {
    if (phase.length === 0) continue;
    const results = await runWindowed(phase, (s) => runStep(client, s));
    const failed = results.find((r) => r.error !== undefined);
    for (const r of results) if (r.error === undefined) applied.push(r.step);
    if (failed) throw await rollback(client, applied, failed.step, failed.error);
  }
  return { applied };
}

async function rollback(client: IpvsClient, applied: Step[], step: Step, cause: unknown): Promise<FulcrumError> {
  const undoErrors: string[] = [];
  // Newest phase first; within a phase the steps are independent, so they can be pipelined.
  const byPhase: Step[][] = [[], [], []];
  // A destination added to a service that is itself being removed again goes with it.
  const addedServices = new Set(applied.filter((s) => s.kind === 'add-service').map((s) => s.keyText));
  for (const s of applied) if (!(s.kind === 'add-dest' && addedServices.has(s.keyText))) byPhase[phaseOf(s)]!.push(s);
  for (const phase of byPhase.reverse()) {
    const settled = await Promise.allSettled(phase.map((s) => undoStep(client, s)));
    settled.forEach((r, i) => {
      if (r.status === 'rejected') undoErrors.push(`undo of "${phase[i]!.description}": ${(r.reason as Error).message}`);
    });
  }
  const errno = isFulcrumError(cause) ? cause.errno : undefined;
  const reason = cause instanceof Error ? cause.message : String(cause);
  const tail = undoErrors.length === 0
    ? `rolled back ${applied.length} applied step(s)`
    : `rollback INCOMPLETE (${undoErrors.length} of ${applied.length} undo(s) failed): ${undoErrors.join('; ')}`;
  return new FulcrumError('APPLY_FAILED', `step "${step.description}" failed: ${reason}; ${tail}`, {
    cause, errno,
    details: { step: { kind: step.kind, service: step.service, description: step.description }, rolledBack: applied.length, undoErrors },
  });
}
