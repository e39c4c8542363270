import type { Logger } from '../log.js';
import type { Dataplane } from '../dataplane/types.js';
import type { IpvsClient } from './types.js';
import { openIpvsClient } from './open-client.js';
import { IpvsReconciler } from './reconciler.js';
import { IpvsSyncDaemons, type SysctlPort } from './sync.js';
import type { IpvsSync } from '../model/ipvs.js';

export interface IpvsDataplaneOptions {
  /** Where ownership records live (crash-safe files). */
  stateDir: string;
  logger: Logger;
  /** Delete a draining backend after this many seconds even if it still has connections. Default 300. */
  drainTimeoutSeconds?: number;
  /** How often draining backends are checked for idleness, in seconds. Default 5. */
  drainPollSeconds?: number;
  /** The net.ipv4.vs sysctls (the agent's netns /proc/sys by default). */
  sysctls?: SysctlPort;
}

/**
 * Opens the IPVS dataplane. Throws FeatureMissingError when the kernel has no IPVS.
 * Draining backends are polled on an unref'd timer until idle or past their deadline.
 */
export async function createIpvsDataplane(options: IpvsDataplaneOptions): Promise<Dataplane> {
  const client = await openIpvsClient();
  return wrapReconciler(client, options);
}

/** The dataplane over a given client (the factory above passes the real one). */
export function wrapReconciler(client: IpvsClient, options: IpvsDataplaneOptions): Dataplane {
  const log = options.logger.child({ component: 'ipvs' });
  const reconciler = new IpvsReconciler({
    client, stateDir: options.stateDir, logger: log,
    drainTimeoutMs: (options.drainTimeoutSeconds ?? 300) * 1000,
  });
  const timer = setInterval(() => {
    reconciler.pollDrains().catch((e: unknown) => log.error({ err: e }, 'draining backends failed'));
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
