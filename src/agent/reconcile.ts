import { errorFields } from '../errors.js';
import type { AgentContext } from './context.js';

export interface ReconcileReport {
  trigger: string;
  time: string;
  result: 'ok' | 'error';
  steps: number;
  durationMs: number;
  error?: string;
}

/**
 * One reconcile of every dataplane to the stored state: steps taken are drift repairs (or, on
 * trigger "health", health changes applied). A failing dataplane does not stop the others.
 */
export async function reconcileOnce(ctx: AgentContext, trigger: string): Promise<ReconcileReport> {
  const { deps, m } = ctx;
  const started = Date.now();
  const state = ctx.stored.state;
  let steps = 0;
  const errors: string[] = [];
  for (const name of ctx.dataplanes.names()) {
    const log = ctx.dataplanes.logOf(name);
    try {
      const r = await ctx.dataplanes.reconcile(name, state);
      steps += r.steps.length;
      for (const step of r.steps) {
        m.steps.inc({ dataplane: name, kind: step.kind, trigger });
        const message = trigger === 'startup' ? 'reconciled at start' : trigger === 'health' ? 'applied a health change' : 'repaired drift';
        log.child({ service: step.service }).warn({ step: step.kind, trigger }, `${message}: ${step.description}`);
        deps.events.publish({
          type: trigger === 'health' ? 'health-applied' : 'drift-repaired',
          component: name,
          service: step.service,
          message: `${message}: ${step.description}`,
          data: { kind: step.kind, trigger },
        });
      }
    } catch (e) {
      const message = `${name}: ${(e as Error).message}`;
      errors.push(message);
      log.error({ err: errorFields(e), trigger }, 'reconcile failed');
      deps.events.publish({ type: 'reconcile-failed', component: name, message, data: errorFields(e) });
    }
  }
  for (const info of ctx.dataplanes.infos()) {
    if (info.available) continue;
    const orphans = state.services.filter((s) => s.dataplane === info.name);
    if (orphans.length > 0 && trigger === 'startup')
      ctx.log.error({ dataplane: info.name, services: orphans.map((s) => s.name) }, `the stored state has services on ${info.name}, which is not available here; they are not programmed`);
  }
  const report: ReconcileReport = {
    trigger,
    time: new Date(deps.clock.wallNow()).toISOString(),
    result: errors.length ? 'error' : 'ok',
    steps,
    durationMs: Date.now() - started,
    ...(errors.length ? { error: errors.join('; ') } : {}),
  };
  ctx.lastReconcile = report;
  m.reconciles.inc({ trigger, result: report.result });
  m.duration.observe(report.durationMs / 1000);
  m.lastReconcile.set(deps.clock.wallNow() / 1000);
  // Without its `time`: pino writes its own, and a line must not carry a key twice.
  const { time: _time, ...fields } = report;
  ctx.log.debug(fields, 'reconcile done');
  return report;
}
