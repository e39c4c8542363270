import type { Dataplane, Report } from '../dataplane/types.js';
import type { Service } from '../model/index.js';
import type { XdpSettings } from '../model/xdp.js';
import type { VrrpInstance } from '../model/vrrp.js';

/**
 * What the agent needs from its collaborators. Production wiring (src/agent/run.ts) passes the
 * real dataplane factories and managers; tests pass fakes of the same shapes.
 */

export type DataplaneName = 'ipvs' | 'xdp';

export interface DataplaneFactories {
  /** Throws FeatureMissingError when the kernel cannot carry IPVS. */
  ipvs(report: Report): Promise<Dataplane>;
  /** Throws FeatureMissingError when the kernel or the interfaces cannot carry XDP. */
  xdp(settings: XdpSettings | undefined, report: Report): Promise<Dataplane>;
}

/** The health checker (src/health HealthManager), as the agent drives it. */
export interface HealthPort {
  update(services: Service[]): void;
  /** The desired services with health applied (down backends at weight 0 or removed...). */
  effectiveServices(services: Service[]): Service[];
  status(): unknown;
  on(event: 'change', listener: () => void): unknown;
  close(): Promise<void> | void;
}

/** The VRRP manager (src/vrrp VrrpManager), as the agent drives it. */
export interface VrrpPort {
  update(instances: VrrpInstance[]): unknown;
  /** A tracked service crossed its health quorum (or lost its last healthy backend). */
  setServiceHealth?(service: string, healthy: boolean): void;
  /** Planned hand-over of every instance (see VrrpManager.setMaintenance). */
  setMaintenance?(enabled: boolean, options: { dryRun?: boolean }): VrrpMaintenanceResult;
  /** The node is in maintenance (restored at start from where setMaintenance keeps it). */
  readonly inMaintenance?: boolean;
  status(): unknown;
  close(): Promise<void> | void;
}

export interface VrrpMaintenanceResult {
  changed: boolean;
  instances: Array<{ name: string; state: string; maintenance: boolean }>;
}

