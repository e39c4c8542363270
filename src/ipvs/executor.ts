import { FulcrumError, isFulcrumError } from '../errors.js';
import type { IpvsClient, IpvsOperation } from './types.js';
import type { Step } from './plan.js';

/**
 * The executor: runs planned steps against an IpvsClient and, when one fails, undoes the steps
 * already applied (newest first) before throwing APPLY_FAILED with the failing step and its errno.
 *
 * Steps run in three phases so that many requests can be in flight at once (the client pipelines
 * them) without ordering assumptions inside a phase: (1) deletions and edits, (2) service
 * additions, (3) destination additions. Within a phase no step depends on another.
 *
 * A client with `batch()` gets each window of a phase as one batch (no promise per step: a full
 * load of 100,000 destinations spends its time on those otherwise); other clients get one call per
 * step. Either way, a window with a failure is the last one run, and the rollback is the same.
 */

/** How many steps the executor hands the client at once (the client bounds what is in flight). */
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

/** The kernel operation of a step. The switch is exhaustive: a new step kind fails to compile here. */
function stepOperation(step: Step): IpvsOperation {
  switch (step.kind) {
    case 'add-service': return { op: 'addService', spec: step.spec };
    case 'edit-service': return { op: 'editService', spec: step.spec };
    case 'delete-service': return { op: 'deleteService', key: step.key };
    case 'add-dest': return { op: 'addDestination', key: step.key, dest: step.dest };
    case 'edit-dest':
    case 'drain-dest': return { op: 'editDestination', key: step.key, dest: step.dest };
    case 'delete-dest': return { op: 'deleteDestination', key: step.key, dest: step.previous };
    default: {
      const never: never = step;
      throw new Error(`unhandled step ${(never as Step).kind}`);
    }
  }
}

/** Runs one IpvsOperation as the matching IpvsClient call (the one-at-a-time form of batch()). */
export function runOperation(client: IpvsClient, o: IpvsOperation): Promise<void> {
  switch (o.op) {
    case 'addService': return client.addService(o.spec);
    case 'editService': return client.editService(o.spec);
    case 'deleteService': return client.deleteService(o.key);
    case 'addDestination': return client.addDestination(o.key, o.dest);
    case 'editDestination': return client.editDestination(o.key, o.dest);
    case 'deleteDestination': return client.deleteDestination(o.key, o.dest);
  }
}

/** One kernel call per step. */
function runStep(client: IpvsClient, step: Step): Promise<void> {
  return runOperation(client, stepOperation(step));
}

/** The kernel calls that undo a step that succeeded. */
async function undoStep(client: IpvsClient, step: Step): Promise<void> {
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

interface StepResult { step: Step; error?: unknown }

/** Runs one window of independent steps; every step of it is tried, each outcome is reported. */
async function runWindow(client: IpvsClient, chunk: readonly Step[]): Promise<StepResult[]> {
  if (client.batch) {
    const ops = new Array<IpvsOperation>(chunk.length);
    for (let i = 0; i < chunk.length; i++) ops[i] = stepOperation(chunk[i]!);
    const outcomes = await client.batch(ops);
    return chunk.map((step, i) => {
      const o = outcomes[i];
      if (o === undefined) return { step, error: new FulcrumError('INTERNAL', `the IPVS client's batch gave no outcome for "${step.description}"`) };
      return o.ok ? { step } : { step, error: o.error };
    });
  }
  const settled = await Promise.allSettled(chunk.map((s) => runStep(client, s)));
  return settled.map((r, j) => (r.status === 'fulfilled' ? { step: chunk[j]! } : { step: chunk[j]!, error: r.reason }));
}

async function runWindowed(client: IpvsClient, items: readonly Step[]): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (let i = 0; i < items.length; i += WINDOW) {
    const settled = await runWindow(client, items.slice(i, i + WINDOW));
    for (const r of settled) results.push(r);
    if (settled.some((r) => r.error !== undefined)) break;
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
    const results = await runWindowed(client, phase);
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
