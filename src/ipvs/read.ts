import type { IpvsClient, IpvsDest, IpvsListOptions, IpvsServiceKey } from './types.js';

/**
 * Destinations of many services. A netlink socket runs one dump at a time (a second one started
 * while the first is running gets EBUSY), and IPVS can only dump destinations per service, so
 * these dumps go one after another; ipvsadm -S/-L read the table the same way.
 */
export async function listDestinationsOf(client: IpvsClient, keys: readonly IpvsServiceKey[], opts?: IpvsListOptions): Promise<IpvsDest[][]> {
  const out: IpvsDest[][] = [];
  for (const key of keys) out.push(await client.listDestinations(key, opts));
  return out;
}
