import type { Logger } from '../log.js';
import type { Dataplane } from '../dataplane/types.js';
import { FeatureMissingError } from '../errors.js';

export interface IpvsDataplaneOptions {
  /** Where ownership records live (crash-safe files). */
  stateDir: string;
  logger: Logger;
}

/**
 * Opens the IPVS dataplane. Throws FeatureMissingError when the kernel has no IPVS.
 * (The implementation lands with the IPVS reconciler; until then this says so.)
 */
export async function createIpvsDataplane(_options: IpvsDataplaneOptions): Promise<Dataplane> {
  throw new FeatureMissingError('ipvs', 'the IPVS dataplane is not built into this version of Fulcrum yet');
}
