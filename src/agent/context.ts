import type { Registry } from 'prom-client';
import type { ClusterStatus } from '../cluster/etcd-store.js';
import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { AgentSettings } from '../model/agent.js';
import type { DesiredState } from '../model/index.js';
import type { Clock } from '../util/clock.js';
import type { Dataplanes } from './dataplanes.js';
import type { AgentMetrics } from './metrics.js';
import type { DataplaneFactories, HealthPort, VrrpPort } from './ports.js';
import type { ChangeOptions, ChangeResult, Mutation } from './change.js';
import type { ReconcileReport } from './reconcile.js';
import type { StateStore, StoredState } from './store.js';
import type { BgpPort } from './bgp.js';

export interface AgentDeps {
  settings: AgentSettings;
  factories: DataplaneFactories;
  store: StateStore;
  clock: Clock;
  logger: Logger;
  metrics: Registry;
  events: EventBus;
  /** The desired state of the config file, if one was given (see `start` for how it seeds the store). */
  seed?: DesiredState | undefined;
  health?: HealthPort | undefined;
  vrrp?: VrrpPort | undefined;
  /** agent.bgp: VIPs announced through BIRD (src/bgp). */
  bgp?: BgpPort | undefined;
  /** agent.store kind etcd: writes go to the cluster (cluster.ts); absent with the file store. */
  cluster?: ClusterPort | undefined;
}

/** What the agent and its API need of the cluster membership (src/agent/cluster.ts). */
export interface ClusterPort {
  /** An API write: validated and planned here, committed to etcd, then applied by the watch. */
  write(mutate: Mutation, options: ChangeOptions): Promise<ChangeResult>;
  /** The watch is not connected: what this node runs may be behind the cluster. */
  readonly stale: boolean;
  status(): unknown;
  /** Every member of the cluster and how it stands (GET /v1/cluster). */
  clusterStatus(): Promise<ClusterStatus>;
}

/** What the agent's parts (change, reconcile, status) share: its collaborators and its state. */
export interface AgentContext {
  readonly deps: AgentDeps;
  /** Bound once to `{ component: 'agent' }`. */
  readonly log: Logger;
  /** Bound once to `{ component: 'audit' }`: who changed what. */
  readonly audit: Logger;
  readonly m: AgentMetrics;
  readonly dataplanes: Dataplanes;
  stored: StoredState;
  lastReconcile: ReconcileReport | undefined;
  started: boolean;
  closed: boolean;
}
