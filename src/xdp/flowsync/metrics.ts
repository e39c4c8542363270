import { Counter, Gauge, type Registry } from 'prom-client';

/** The flow sync's metrics, registered once per registry (a reopened XDP dataplane reuses them). */
export type FlowSyncMetrics = ReturnType<typeof create>;

const byRegistry = new WeakMap<Registry, FlowSyncMetrics>();

export function flowSyncMetrics(registry: Registry): FlowSyncMetrics {
  let m = byRegistry.get(registry);
  if (!m) byRegistry.set(registry, (m = create(registry)));
  return m;
}

function create(registry: Registry) {
  const registers = [registry];
  return {
    sentFlows: new Counter({ name: 'fulcrum_xdp_sync_sent_flows_total', help: 'Flows sent to a peer (new flows and snapshots)', labelNames: ['peer'], registers }),
    sentMessages: new Counter({ name: 'fulcrum_xdp_sync_sent_messages_total', help: 'Sync messages sent to a peer, by kind', labelNames: ['peer', 'kind'], registers }),
    sendErrors: new Counter({ name: 'fulcrum_xdp_sync_send_errors_total', help: 'Sync messages that could not be sent to a peer (unreachable, buffer full)', labelNames: ['peer'], registers }),
    receivedFlows: new Counter({ name: 'fulcrum_xdp_sync_received_flows_total', help: 'Flows received from a peer, by result (applied, kept_local)', labelNames: ['peer', 'result'], registers }),
    receivedMessages: new Counter({ name: 'fulcrum_xdp_sync_received_messages_total', help: 'Valid sync messages received from a peer, by kind', labelNames: ['peer', 'kind'], registers }),
    dropped: new Counter({ name: 'fulcrum_xdp_sync_dropped_total', help: 'Sync messages or records dropped, by reason', labelNames: ['reason'], registers }),
    ringExported: new Counter({ name: 'fulcrum_xdp_sync_ring_exported_total', help: 'Flows the XDP program wrote to its export ring', registers }),
    ringLost: new Counter({ name: 'fulcrum_xdp_sync_ring_lost_total', help: 'Flows the XDP program could not export (ring full)', registers }),
    lag: new Gauge({ name: 'fulcrum_xdp_sync_lag_seconds', help: "Age of the last flows message from a peer when it arrived (sender's clock to ours)", labelNames: ['peer'], registers }),
    snapshot: new Gauge({ name: 'fulcrum_xdp_sync_snapshot_state', help: "This node's snapshot from a peer: 0 pending, 1 received, 2 timed out", labelNames: ['peer'], registers }),
  };
}
