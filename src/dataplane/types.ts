import type { DesiredState, Service } from '../model/schema.js';
import type { DataplaneExplanation, FlowQuery } from '../dataplane/explain.js';

/**
 * What the agent sees of a dataplane (IPVS or XDP). Each implementation owns its kernel objects,
 * plans with a pure `plan(desired, observed)` and applies the steps atomically (rolling back the
 * steps it took when one fails). Only services with `dataplane === name` are passed in.
 */
export interface Dataplane {
  readonly name: 'ipvs' | 'xdp';
  /**
   * Brings the kernel to `desired` (the full set of this dataplane's services). With dryRun it only
   * observes and plans. Changes nothing that Fulcrum does not own.
   */
  reconcile(desired: readonly Service[], options?: { dryRun?: boolean }): Promise<ReconcileResult>;
  /**
   * Takes the node-wide settings of this dataplane from the desired state (IPVS: `ipvs.sync`).
   * The agent calls it before every reconcile, with the state that reconcile brings the kernel to
   * (so a rollback restores the settings too).
   */
  configure?(state: DesiredState): void;
  /** What the dataplane runs besides services (IPVS: its sync daemons), for `GET /v1/status`. */
  status?(): unknown;
  /** Per-service, per-backend counters as the kernel reports them. */
  stats(): Promise<ServiceStats[]>;
  /** Backends being drained (removed from desired, still carrying connections). */
  drains(): DrainStatus[];
  /** Which backend a flow reaches now and why, from the kernel's tables (`fulcrum explain`); `service` is its desired form. */
  explain?(flow: FlowQuery, service: Service): Promise<DataplaneExplanation>;
  /** Releases sockets and handles; leaves kernel state in place. */
  close(): Promise<void>;
  /** Removes everything this dataplane owns from the kernel (`fulcrum agent --cleanup`). */
  cleanup(): Promise<void>;
}

/**
 * Something a dataplane did or saw that an operator should read (a repaired drift, a pinned map
 * kept, a background failure). Dataplanes never log: they hand notes to the `Report` the agent
 * gives them, and the agent logs each once, bound to the dataplane's component.
 */
export interface DataplaneNote {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields?: Record<string, unknown>;
}
export type Report = (note: DataplaneNote) => void;

export interface PlannedStep {
  /** Step kind, e.g. "add-service", "edit-destination". */
  kind: string;
  /** Service name the step belongs to (or its kernel key when it is not ours by name). */
  service: string;
  /** One readable line: "+ backend 10.0.0.2:80 weight 1 to web". */
  description: string;
}

export interface ReconcileResult {
  dataplane: 'ipvs' | 'xdp';
  steps: PlannedStep[];
  applied: boolean;
}

export interface Counters {
  packetsIn: bigint;
  packetsOut: bigint;
  bytesIn: bigint;
  bytesOut: bigint;
  connections: bigint;
}

export interface ServiceStats {
  service: string;
  dataplane: 'ipvs' | 'xdp';
  totals: Counters;
  backends: Array<{ address: string; port: number; activeConnections?: number; inactiveConnections?: number; counters: Counters }>;
}

export interface DrainStatus {
  service: string;
  address: string;
  port: number;
  startedAt: string;
  deadline: string;
  activeConnections: number;
}
