import type { DrainStatus } from '../dataplane/types.js';
import { FulcrumError } from '../errors.js';
import { formatEndpoint, parseEndpoint, sameEndpoint, type Service } from '../model/index.js';
import type { ChangeOptions, ChangeResult, Mutation } from './change.js';

export interface DrainProgress {
  state: 'draining' | 'done' | 'not-draining';
  service: string;
  backend: string;
  activeConnections: number;
  startedAt?: string;
  deadline?: string;
}

/** What the drain bookkeeping needs of the agent. */
export interface DrainHost {
  readonly revision: number;
  service(name: string): Service | undefined;
  change(mutate: Mutation, options: ChangeOptions): Promise<ChangeResult>;
  /** The dataplanes' drains in progress. */
  drains(): DrainStatus[];
}

type Endpoint = { address: string; port: number };

/**
 * Drains of backends: a drain removes the backend from the desired state; the dataplane keeps its
 * established connections (weight 0) until they end or drainTimeoutSeconds passes, then deletes
 * it. The drains finished are remembered for this process's lifetime only ("done" after that).
 */
export class Drains {
  /** "service endpoint" of each backend drained through drain() since this process started. */
  private readonly done = new Set<string>();

  constructor(private readonly host: DrainHost) {}

  async drain(service: string, endpoint: string, options: Omit<ChangeOptions, 'action'>): Promise<{ change: ChangeResult; progress: DrainProgress }> {
    const ep = endpointOf(endpoint);
    const svc = this.host.service(service);
    if (!svc) throw new FulcrumError('NOT_FOUND', `no service named ${service}`);
    if (!svc.backends.some((b) => sameEndpoint(b, ep))) {
      const progress = this.progress(service, endpoint);
      return { change: { revision: this.host.revision, changed: false, applied: false, dryRun: !!options.dryRun, diff: [], plan: [] }, progress };
    }
    const change = await this.host.change(
      (cur) => ({
        ...cur,
        services: cur.services.map((s) => (s.name !== service ? s : { ...s, backends: s.backends.filter((b) => !sameEndpoint(b, ep)) })),
      }),
      { ...options, action: `drain ${endpoint} of ${service}` },
    );
    if (change.applied) this.done.add(doneKey(service, ep));
    return { change, progress: this.progress(service, endpoint) };
  }

  progress(service: string, endpoint: string): DrainProgress {
    const ep = endpointOf(endpoint);
    const d = this.host.drains().find((x) => x.service === service && sameEndpoint(x, ep));
    if (d) return { state: 'draining', service, backend: endpoint, activeConnections: d.activeConnections, startedAt: d.startedAt, deadline: d.deadline };
    if (this.host.service(service)?.backends.some((b) => sameEndpoint(b, ep)))
      return { state: 'not-draining', service, backend: endpoint, activeConnections: 0 };
    if (this.done.has(doneKey(service, ep))) return { state: 'done', service, backend: endpoint, activeConnections: 0 };
    throw new FulcrumError('NOT_FOUND', `service ${service} has no backend ${endpoint} and no drain of it is known`);
  }
}

function endpointOf(endpoint: string): Endpoint {
  const ep = parseEndpoint(endpoint);
  if (!ep) throw new FulcrumError('INVALID_REQUEST', `backend: "${endpoint}" is not address:port (IPv6 as [address]:port)`);
  return ep;
}

function doneKey(service: string, ep: Endpoint): string {
  return `${service} ${formatEndpoint(ep.address, ep.port)}`;
}
