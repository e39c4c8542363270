import type { AgentContext } from './context.js';
import type { DataplaneInfo } from './dataplanes.js';
import type { ReconcileReport } from './reconcile.js';

export interface AgentStatus {
  revision: number;
  updatedAt: string | undefined;
  ready: boolean;
  services: number;
  dataplanes: DataplaneInfo[];
  lastReconcile: ReconcileReport | undefined;
  reconcileIntervalSeconds: number;
  store: string;
  health?: unknown;
  vrrp?: unknown;
  bgp?: unknown;
  /** agent.store kind etcd: the watch is disconnected, what this node runs may be behind. */
  stale?: boolean;
  cluster?: unknown;
}

/** What `GET /status` and `fulcrum status` show. */
export function agentStatus(ctx: AgentContext, ready: boolean): AgentStatus {
  const { deps, stored } = ctx;
  return {
    revision: stored.revision,
    updatedAt: stored.updatedAt,
    ready,
    services: stored.state.services.length,
    dataplanes: ctx.dataplanes.infos().map((d) => {
      const extra = ctx.dataplanes.get(d.name)?.status?.();
      return extra === undefined ? d : { ...d, status: extra };
    }),
    lastReconcile: ctx.lastReconcile,
    reconcileIntervalSeconds: deps.settings.reconcileIntervalSeconds,
    store: deps.store.location,
    ...(deps.health ? { health: deps.health.status() } : {}),
    ...(deps.vrrp ? { vrrp: deps.vrrp.status() } : {}),
    ...(deps.bgp ? { bgp: deps.bgp.status() } : {}),
    ...(deps.cluster ? { stale: deps.cluster.stale, cluster: deps.cluster.status() } : {}),
  };
}
