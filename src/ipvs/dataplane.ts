import type { Dataplane, Report } from '../dataplane/types.js';
import type { IpvsClient } from './types.js';
import { openIpvsClient } from './client.js';
import { IpvsReconciler } from './reconciler.js';
import { IpvsSyncDaemons, type SysctlPort } from './sync.js';
import type { IpvsSync } from '../model/ipvs.js';
import { explainIpvs } from './explain.js';
import { procConnections, type ConnectionSource } from './explain-conn.js';

export interface IpvsDataplaneOptions {
  /** Where ownership records live (crash-safe files). */
  stateDir: string;
  /** Where notes for the operator go; the agent logs them. */
  report: Report;
  /** Delete a draining backend after this many seconds even if it still has connections. Default 300. */
  drainTimeoutSeconds?: number;
  /** How often draining backends are checked for idleness, in seconds. Default 5. */
  drainPollSeconds?: number;
  /** The net.ipv4.vs sysctls (the agent's netns /proc/sys by default). */
  sysctls?: SysctlPort;
  /** The kernel's connection table as text (/proc/net/ip_vs_conn of the agent's netns by default). */
  connections?: ConnectionSource;
}

/**
 * Opens the IPVS dataplane. Throws FeatureMissingError when the kernel has no IPVS.
 * Draining backends are polled on an unref'd timer until idle or past their deadline.
 */
export async function createIpvsDataplane(options: IpvsDataplaneOptions): Promise<Dataplane> {
  return ipvsDataplaneOver(await openIpvsClient(), options);
}

/** The IPVS dataplane over a client: the kernel's (createIpvsDataplane) or a fake. It closes the client. */
export function ipvsDataplaneOver(client: IpvsClient, options: IpvsDataplaneOptions): Dataplane {
  const reconciler = new IpvsReconciler({
    client, stateDir: options.stateDir, report: options.report,
    drainTimeoutMs: (options.drainTimeoutSeconds ?? 300) * 1000,
  });
  const timer = setInterval(() => {
    reconciler.pollDrains().catch((e: unknown) => options.report({ level: 'error', fields: { err: e }, message: 'draining backends failed' }));
  }, (options.drainPollSeconds ?? 5) * 1000);
  timer.unref();
  const syncDaemons = new IpvsSyncDaemons(client, options.stateDir, options.sysctls);
  let sync: IpvsSync | undefined;
  return {
    name: 'ipvs',
    configure: (state) => { sync = state.ipvs?.sync; },
    reconcile: async (desired, opts) => {
      const result = await reconciler.reconcile(desired, opts);
      const syncSteps = await syncDaemons.reconcile(sync, { dryRun: opts?.dryRun ?? false });
      return syncSteps.length ? { ...result, steps: [...result.steps, ...syncSteps] } : result;
    },
    status: () => ({ sync: syncDaemons.status() }),
    stats: () => reconciler.stats(),
    drains: () => reconciler.drains(),
    explain: (flow, service) => explainIpvs(client, flow, options.connections ?? procConnections, service.backends),
    cleanup: async () => {
      await syncDaemons.cleanup();
      await reconciler.cleanup();
    },
    close: async () => {
      clearInterval(timer);
      await reconciler.close();
    },
  };
}
