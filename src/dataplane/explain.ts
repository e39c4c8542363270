/**
 * `fulcrum explain`: which backend a client's flow to a VIP reaches now, and why. A dataplane
 * answers for its kernel state (DataplaneExplanation); the agent adds the service, health and
 * drain state (Explanation).
 */

export interface FlowQuery {
  client: string;
  /** The client's source port; without it only what does not depend on it can be said. */
  clientPort?: number | undefined;
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp';
}

/**
 * Where the answer comes from: `connection` an entry of the kernel's connection table (the flow
 * exists), `scheduler` the pick for a new flow reproduced exactly (XDP Maglev, IPVS sh/mh/dh),
 * `unpredictable` a scheduler whose pick depends on state the kernel does not export (rr, wlc...),
 * `none` no backend would be reached.
 */
export type ExplainSource = 'connection' | 'scheduler' | 'unpredictable' | 'none';

export interface ExplainBackend {
  address: string;
  port: number;
  /** The weight in the kernel now. */
  weight: number;
  activeConnections?: number | undefined;
  inactiveConnections?: number | undefined;
}

export interface DataplaneExplanation {
  dataplane: 'ipvs' | 'xdp';
  source: ExplainSource;
  /** The backend the flow reaches (undefined for unpredictable and none). */
  backend: { address: string; port: number } | undefined;
  /** One sentence: the entry or the slot or the rule that decides. */
  reason: string;
  /** The facts behind the reason (set, slot, bucket, state, scheduler...). */
  detail: Record<string, string | number | boolean>;
  /** Every backend of the VIP in the kernel now. */
  backends: ExplainBackend[];
}

export type BackendHealth = 'up' | 'down' | 'unchecked';

export interface ExplainedBackend extends ExplainBackend {
  health: BackendHealth;
  draining: boolean;
}

export interface Explanation {
  service: string;
  dataplane: 'ipvs' | 'xdp';
  flow: FlowQuery;
  source: ExplainSource;
  backend: ExplainedBackend | null;
  reason: string;
  detail: Record<string, string | number | boolean>;
  backends: ExplainedBackend[];
}
