import type { PlannedStep } from '../dataplane/types.js';
import { errorFields, FeatureMissingError, FulcrumError, isFulcrumError } from '../errors.js';
import type { DesiredState } from '../model/index.js';
import type { AgentContext } from './context.js';
import { changedServices, diffStates, type DiffLine } from './diff.js';
import { reportHealthToVrrp, updateVrrp } from './peers.js';
import type { DataplaneName } from './ports.js';
import { sameValue } from '../util/json-value.js';
import type { StoredState } from './store.js';
import { parseChangedState } from './validate.js';

export interface DataplanePlan {
  dataplane: DataplaneName;
  steps: PlannedStep[];
}

/** What a write returns: the revision after it, and what it did (or would do, on a dry run). */
export interface ChangeResult {
  revision: number;
  changed: boolean;
  applied: boolean;
  dryRun: boolean;
  diff: DiffLine[];
  plan: DataplanePlan[];
}

export interface ChangeOptions {
  /** Who asks (token name), for the audit log. */
  actor: string;
  /** What, in a few words ("put service web"), for the audit log and events. */
  action: string;
  /** The revision the caller last saw (If-Match); a mismatch fails with PRECONDITION_FAILED. */
  ifMatch?: number | undefined;
  dryRun?: boolean | undefined;
  /**
   * The revision this change gets (agent.store kind etcd: the shared state's etcd revision, or the
   * running one for a change of the node's own sections). No If-Match check; a service on a
   * dataplane this node lacks is kept but not programmed, as the config file's are.
   */
  revision?: number | undefined;
}

export type Mutation = (current: DesiredState) => unknown;

/** One change, as applyChange makes it, with its line in the audit log (dry runs have none). */
export async function auditedChange(ctx: AgentContext, mutate: Mutation, options: ChangeOptions, seedDigest: string | undefined): Promise<ChangeResult> {
  try {
    const result = await applyChange(ctx, mutate, options, seedDigest);
    if (!options.dryRun)
      ctx.audit.info({ who: options.actor, what: options.action, result: result.changed ? 'applied' : 'unchanged', revision: result.revision }, 'change');
    return result;
  } catch (e) {
    if (!options.dryRun)
      ctx.audit.warn({ who: options.actor, what: options.action, result: 'failed', code: isFulcrumError(e) ? e.code : 'INTERNAL', error: (e as Error).message }, 'change');
    throw e;
  }
}

/**
 * Validate, plan, apply to every dataplane, store (fsync), and only then return. Idempotent: a
 * change that yields the current state does nothing and keeps the revision. On any failure the
 * dataplanes are reconciled back to the stored state and the error says why. `seedDigest` is
 * given when the config file seeds the store: the state is stored even when it is unchanged.
 */
async function applyChange(ctx: AgentContext, mutate: Mutation, options: ChangeOptions, seedDigest: string | undefined): Promise<ChangeResult> {
  const { deps, m, dataplanes } = ctx;
  if (ctx.closed) throw new FulcrumError('CONFLICT', 'the agent is stopping; nothing was changed (retry once it has started again)');
  const current = ctx.stored;
  const fromCluster = options.revision !== undefined;
  if (!fromCluster && options.ifMatch !== undefined && options.ifMatch !== current.revision)
    throw new FulcrumError('PRECONDITION_FAILED', `If-Match revision ${options.ifMatch} does not match the current revision ${current.revision}`, {
      details: { current: current.revision },
    });
  const next = parseChangedState(mutate(current.state));
  const diff = diffStates(current.state, next);
  const changed = diff.length > 0;
  const touched = changedServices(current.state, next);
  for (const svc of next.services) {
    if (!touched.has(svc.name) || dataplanes.has(svc.dataplane)) continue;
    const why = dataplanes.infoOf(svc.dataplane)?.reason ?? 'not detected';
    // The config file's state is stored anyway (as a stored state is at start): refusing it
    // would keep the agent, and with it XDP and VRRP, from starting at all.
    if (seedDigest !== undefined || fromCluster) {
      if (!(fromCluster && options.dryRun))
        ctx.log.error({ dataplane: svc.dataplane, service: svc.name, reason: why }, `service ${svc.name} of the ${fromCluster ? 'shared state' : 'config file'} is on ${svc.dataplane}, which is not available here; it is stored but not programmed`);
      continue;
    }
    throw new FeatureMissingError(svc.dataplane, `service ${svc.name}: the ${svc.dataplane} dataplane is not available on this node (${why})`, {
      details: { path: ['services', svc.name, 'dataplane'] },
    });
  }

  if (options.dryRun) {
    const plan: DataplanePlan[] = [];
    for (const name of dataplanes.names()) {
      const r = await dataplanes.reconcile(name, next, { dryRun: true });
      plan.push({ dataplane: name, steps: r.steps });
    }
    return { revision: current.revision, changed, applied: false, dryRun: true, diff, plan };
  }
  if (!changed && seedDigest === undefined && (options.revision ?? current.revision) === current.revision) return { revision: current.revision, changed: false, applied: false, dryRun: false, diff, plan: [] };

  const started = Date.now();
  await dataplanes.reopenXdpIfNeeded(next);
  const plan: DataplanePlan[] = [];
  const done: DataplaneName[] = [];
  try {
    for (const name of dataplanes.names()) {
      const r = await dataplanes.reconcile(name, next);
      done.push(name);
      plan.push({ dataplane: name, steps: r.steps });
    }
  } catch (e) {
    const failed = dataplanes.names().find((n) => !done.includes(n)) ?? 'ipvs';
    // The failing dataplane rolled back its own steps; reconciling it too costs nothing when it did.
    await rollback(ctx, [...done, failed], current.state);
    m.changes.inc({ result: 'rolled-back' });
    deps.events.publish({ type: 'apply-failed', component: 'agent', message: `${options.action}: ${(e as Error).message}; rolled back`, data: { revision: current.revision } });
    throw wrapApplyError(failed, e);
  }

  // A seed that only reorders (no diff) still stores a different document: a new revision, so an
  // ETag never names two bodies.
  const stored = changed || !sameValue(next, current.state);
  const saved: StoredState = {
    revision: options.revision ?? current.revision + (stored ? 1 : 0),
    state: next,
    seedDigest: seedDigest ?? current.seedDigest,
    updatedAt: new Date(deps.clock.wallNow()).toISOString(),
  };
  try {
    deps.store.save(saved);
  } catch (e) {
    await rollback(ctx, done, current.state);
    m.changes.inc({ result: 'rolled-back' });
    throw e;
  }
  ctx.stored = saved;
  m.revision.set(saved.revision);
  m.changes.inc({ result: 'applied' });
  for (const dpName of ['ipvs', 'xdp'] as const)
    m.services.set({ dataplane: dpName }, next.services.filter((s) => s.dataplane === dpName).length);
  for (const p of plan)
    for (const step of p.steps) {
      m.steps.inc({ dataplane: p.dataplane, kind: step.kind, trigger: 'change' });
      dataplanes.logOf(p.dataplane).child({ service: step.service }).info({ step: step.kind, revision: saved.revision }, step.description);
    }
  deps.health?.update([...next.services]);
  reportHealthToVrrp(deps.health, deps.vrrp);
  if (ctx.started && !sameValue(current.state.vrrp, next.vrrp)) updateVrrp(deps.vrrp, next, ctx.log);
  const steps = plan.reduce((n, p) => n + p.steps.length, 0);
  deps.events.publish({
    type: 'apply',
    component: 'agent',
    message: `${options.action} (revision ${saved.revision}, ${steps} kernel steps)`,
    data: { revision: saved.revision, actor: options.actor, diff: diff.map((d) => `${d.op} ${d.text}`) },
  });
  ctx.lastReconcile = { trigger: 'change', time: saved.updatedAt!, result: 'ok', steps, durationMs: Date.now() - started };
  return { revision: saved.revision, changed, applied: true, dryRun: false, diff, plan };
}

/** Brings dataplanes that already took the new state back to `state`; failures are logged. */
async function rollback(ctx: AgentContext, names: DataplaneName[], state: DesiredState): Promise<void> {
  for (const name of names.reverse()) {
    try {
      await ctx.dataplanes.reconcile(name, state);
    } catch (e) {
      // The next interval reconcile retries; the stored state remains the truth.
      ctx.dataplanes.logOf(name).error({ err: errorFields(e) }, 'rollback failed; the reconcile loop will retry');
    }
  }
}

/** Keeps the kernel's errno and code; says that nothing was changed. */
function wrapApplyError(dataplane: string, e: unknown): FulcrumError {
  const message = `${dataplane}: ${(e as Error)?.message ?? String(e)}; the change was rolled back and the stored state is unchanged`;
  if (isFulcrumError(e)) return new FulcrumError(e.code === 'INTERNAL' ? 'APPLY_FAILED' : e.code, message, { cause: e, errno: e.errno, details: e.details });
  return new FulcrumError('APPLY_FAILED', message, { cause: e });
}
