import type { IpvsClient } from './types.js';
import { openIpvsClient as openNetlink } from './client.js';

/**
 * The one place the reconciler, the CLI and the benchmark open the kernel's IPVS (generic netlink,
 * src/ipvs/client.ts). Throws FeatureMissingError when the kernel has no IPVS.
 */
export async function openIpvsClient(): Promise<IpvsClient> {
  return openNetlink();
}
