import { FeatureMissingError, FulcrumError } from '../errors.js';
import { canonicalIp, formatEndpoint, sameEndpoint } from '../model/net.js';
import type { Service } from '../model/index.js';
import type { Dataplane, DrainStatus } from '../dataplane/types.js';
import type { BackendHealth, ExplainBackend, ExplainedBackend, Explanation, FlowQuery } from '../dataplane/explain.js';

/** The slice of the health manager's status() that explain reads (see HealthManager.status). */
interface HealthRow { service: string; backends: Array<{ address: string; port: number; state: string }> }

function healthRows(status: unknown): HealthRow[] {
  if (!Array.isArray(status)) return [];
  return status.filter((r): r is HealthRow => typeof r === 'object' && r !== null && typeof (r as HealthRow).service === 'string' && Array.isArray((r as HealthRow).backends));
}

/** The service of the desired state that owns a VIP:port/protocol. */
export function serviceFor(services: readonly Service[], flow: FlowQuery): Service | undefined {
  const vip = canonicalIp(flow.vip);
  return services.find((s) => s.address !== undefined && canonicalIp(s.address) === vip && s.port === flow.port && s.protocol === flow.protocol);
}

/**
 * `fulcrum explain`: the dataplane's answer from its kernel tables, with the service's name and
 * each backend's health (the checker's state; `unchecked` without a health section) and drain state.
 */
export async function explainFlow(o: { services: readonly Service[]; dataplane: (name: 'ipvs' | 'xdp') => Dataplane | undefined; health: unknown; drains: readonly DrainStatus[] }, flow: FlowQuery): Promise<Explanation> {
  const svc = serviceFor(o.services, flow);
  if (!svc) throw new FulcrumError('NOT_FOUND', `no service for ${flow.protocol} ${formatEndpoint(canonicalIp(flow.vip), flow.port)}`);
  const dp = o.dataplane(svc.dataplane);
  if (!dp) throw new FeatureMissingError(svc.dataplane, `service ${svc.name} is on the ${svc.dataplane} dataplane, which this node does not have`);
  if (!dp.explain) throw new FulcrumError('INTERNAL', `the ${svc.dataplane} dataplane cannot explain flows`);
  const r = await dp.explain(flow, svc);
  const rows = healthRows(o.health).find((h) => h.service === svc.name);
  const enrich = (b: ExplainBackend): ExplainedBackend => {
    let health: BackendHealth = 'unchecked';
    if (svc.health) {
      const row = rows?.backends.find((x) => sameEndpoint(x, b));
      health = row?.state === 'up' ? 'up' : row ? 'down' : (svc.health.initialState === 'up' ? 'up' : 'down');
    }
    const draining = o.drains.some((d) => d.service === svc.name && sameEndpoint(d, b));
    return { ...b, health, draining };
  };
  const backends = r.backends.map(enrich);
  const chosen = r.backend ? backends.find((b) => sameEndpoint(b, r.backend!)) ?? enrich({ ...r.backend, weight: 0 }) : null;
  return { service: svc.name, dataplane: r.dataplane, flow, source: r.source, backend: chosen, reason: r.reason, detail: r.detail, backends };
}
