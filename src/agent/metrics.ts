import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The agent's own metrics: revisions, changes, reconciles and the steps they took. */
export type AgentMetrics = ReturnType<typeof createAgentMetrics>;

export function createAgentMetrics(registry: Registry) {
  const registers = [registry];
  return {
    revision: new Gauge({ name: 'fulcrum_desired_revision', help: 'Revision of the stored desired state', registers }),
    available: new Gauge({ name: 'fulcrum_dataplane_available', help: '1 when the dataplane was found on this node', labelNames: ['dataplane'], registers }),
    services: new Gauge({ name: 'fulcrum_services', help: 'Services in the desired state', labelNames: ['dataplane'], registers }),
    reconciles: new Counter({ name: 'fulcrum_reconciles_total', help: 'Reconciles by trigger and result', labelNames: ['trigger', 'result'], registers }),
    steps: new Counter({ name: 'fulcrum_reconcile_steps_total', help: 'Kernel steps taken, by dataplane, kind and trigger', labelNames: ['dataplane', 'kind', 'trigger'], registers }),
    changes: new Counter({ name: 'fulcrum_changes_total', help: 'Desired-state changes by result', labelNames: ['result'], registers }),
    duration: new Histogram({ name: 'fulcrum_reconcile_duration_seconds', help: 'Duration of a reconcile', buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers }),
    lastReconcile: new Gauge({ name: 'fulcrum_last_reconcile_timestamp_seconds', help: 'Time of the last reconcile', registers }),
  };
}
