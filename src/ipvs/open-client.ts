import type { IpvsClient } from './types.js';
import { FeatureMissingError } from '../errors.js';

/** The one place that opens the generic-netlink IPVS client (src/ipvs/client.ts, branch ipvs-core). */
export async function openIpvsClient(): Promise<IpvsClient> {
  throw new FeatureMissingError('ipvs', 'the generic-netlink IPVS client is not merged into this branch yet');
}
