import type { IpvsClient, IpvsOperation } from './types.js';

/** Runs one IpvsOperation as the matching IpvsClient call (the one-at-a-time form of batch()). */
export function runOperation(client: IpvsClient, o: IpvsOperation): Promise<void> {
  switch (o.op) {
    case 'addService': return client.addService(o.spec);
    case 'editService': return client.editService(o.spec);
    case 'deleteService': return client.deleteService(o.key);
    case 'addDestination': return client.addDestination(o.key, o.dest);
    case 'editDestination': return client.editDestination(o.key, o.dest);
    case 'deleteDestination': return client.deleteDestination(o.key, o.dest);
  }
}
