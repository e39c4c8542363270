import type { Dataplane } from '../dataplane/types.js';
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
  ipvs(): Promise<Dataplane>;
  /** Throws FeatureMissingError when the kernel or the interfaces cannot carry XDP. */
  xdp(settings: XdpSettings | undefined): Promise<Dataplane>;
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
  status(): unknown;
  close(): Promise<void> | void;
}

/** Time and timers, injected so the reconcile loop can be stepped in tests. */
export interface Clock {
  now(): Date;
  /** Calls fn every ms milliseconds until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => new Date(),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};
