import { FulcrumError } from '../errors.js';
import { canonicalIp, familyOf, formatEndpoint } from '../model/net.js';
import { IP_VS_SVC_F } from './codec.js';
import type { IpvsClient, IpvsDest, IpvsServiceKey } from './types.js';
import { parseIpvsConnections, type ConnectionSource, type IpvsConnection } from './explain-conn.js';
import { dhPick, mhPick, shPick, type SchedDest, type SchedPick } from './explain-sched.js';
import type { DataplaneExplanation, ExplainBackend, FlowQuery } from '../dataplane/explain.js';

/** What the kernel's scheduler weighs, for those whose pick cannot be reproduced from outside. */
const DEPENDS: Record<string, string> = {
  rr: 'the position of the round-robin cursor, which the kernel does not export: the next new connection goes to the destination after the last one picked, in list order, skipping weight 0',
  wrr: 'the weighted round-robin cursor and current weight (not exported): over a cycle each destination gets connections in proportion to its weight',
  lc: 'the fewest connections: the destination with the lowest active * 256 + inactive count at the moment the connection arrives',
  wlc: 'the weighted least connections: the lowest (active * 256 + inactive) / weight at the moment the connection arrives',
  sed: 'the shortest expected delay: the lowest (active + 1) / weight at the moment the connection arrives',
  nq: 'never queue: an idle destination (no active connection) if there is one, else the lowest (active + 1) / weight',
  fo: 'weighted failover: the available destination with the highest weight',
  ovf: 'overflow: the destination with the highest weight until its active connections reach its weight',
  lblc: 'locality-based least connections: the destination last used for the VIP address, unless overloaded (kernel state not exported)',
  lblcr: 'locality-based least connections with replication: a set per destination address (kernel state not exported)',
  twos: 'random two choices: two destinations drawn at random, the one with the lower weighted load wins',
};

/** Connection states from which a new connection of the same 4-tuple is scheduled afresh (conn_reuse_mode 1: TCP TIME_WAIT). */
function reusable(c: IpvsConnection): boolean {
  return c.protocol === 'tcp' && c.state === 'TIME_WAIT';
}

function ipv4Masked(address: string, netmask: number): string | undefined {
  const p = address.split('.').map(Number);
  if (p.length !== 4) return undefined;
  const n = (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) & netmask) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * Explains a flow on IPVS: an existing connection of the kernel's table (or a persistence
 * template) decides; else the sh/mh/dh pick reproduced from the destination list; else what the
 * scheduler's choice depends on, with the weights and connection counts it reads.
 */
export async function explainIpvs(client: IpvsClient, flow: FlowQuery, connections: ConnectionSource,
  /** The configured backends: their weights stand in for the last_weight of destinations at weight 0 (mh). */
  configured: ReadonlyArray<{ address: string; port: number; weight: number }> = []): Promise<DataplaneExplanation> {
  const family = familyOf(flow.vip);
  if (!family) throw new FulcrumError('INVALID_REQUEST', `vip: "${flow.vip}" is not an IP address`);
  const key: IpvsServiceKey = { family, protocol: flow.protocol, address: canonicalIp(flow.vip), port: flow.port };
  const svc = await client.getService(key);
  const base = { dataplane: 'ipvs' as const, detail: {} as Record<string, string | number | boolean> };
  if (!svc) return { ...base, source: 'none', backend: undefined, reason: `IPVS has no ${flow.protocol} service ${formatEndpoint(key.address, key.port)}`, backends: [] };
  const dests: IpvsDest[] = await client.listDestinations(key, { stats: false });
  const backends: ExplainBackend[] = dests.map((d) => ({ address: d.address, port: d.port, weight: d.weight, activeConnections: d.activeConnections, inactiveConnections: d.inactiveConnections }));
  const detail: Record<string, string | number | boolean> = { scheduler: svc.scheduler, flags: svc.flags };

  let table: IpvsConnection[];
  try {
    table = parseIpvsConnections(connections());
  } catch (e) {
    throw new FulcrumError('INTERNAL', `cannot read the IPVS connection table (/proc/net/ip_vs_conn): ${(e as Error).message}`, { cause: e });
  }
  const client4 = canonicalIp(flow.client);
  const mine = table.filter((c) => c.protocol === flow.protocol && c.client === client4 && c.vip === key.address && c.vport === flow.port
    && (flow.clientPort === undefined ? c.clientPort !== 0 : c.clientPort === flow.clientPort));
  const live = mine.find((c) => !reusable(c));
  if (live) {
    const others = flow.clientPort === undefined && mine.length > 1 ? ` (one of ${mine.length} connections from ${flow.client}; give the client port for one flow)` : '';
    return {
      ...base, source: 'connection', backend: { address: live.dest, port: live.dport },
      reason: `IPVS connection ${formatEndpoint(live.client, live.clientPort)} -> ${formatEndpoint(live.dest, live.dport)} in state ${live.state} (expires in ${live.expiresSeconds} s)${others}`,
      detail: { ...detail, state: live.state, expiresSeconds: live.expiresSeconds, clientPort: live.clientPort }, backends,
    };
  }
  const reuse = mine.find(reusable);
  if (reuse) detail.timeWait = `a connection from this port to ${formatEndpoint(reuse.dest, reuse.dport)} is in TIME_WAIT: a new one is scheduled afresh (conn_reuse_mode)`;

  if (svc.flags & IP_VS_SVC_F.PERSISTENT) {
    const net = family === 'inet' ? ipv4Masked(client4, svc.netmask) : client4;
    const tpl = table.find((c) => c.clientPort === 0 && c.client === net && c.vip === key.address && (c.vport === flow.port || c.vport === 0));
    if (tpl) {
      return {
        ...base, source: 'connection', backend: { address: tpl.dest, port: tpl.dport },
        reason: `IPVS persistence template for ${net} -> ${formatEndpoint(tpl.dest, tpl.dport)} (expires in ${tpl.expiresSeconds} s): new connections of this client follow it`,
        detail: { ...detail, persistence: true, expiresSeconds: tpl.expiresSeconds }, backends,
      };
    }
    detail.persistence = true;
  }

  const sched: SchedDest[] = dests.map((d) => {
    const overloaded = d.upperThreshold > 0 && d.activeConnections + d.inactiveConnections >= d.upperThreshold;
    if (d.weight > 0) return { address: d.address, port: d.port, weight: d.weight, overloaded };
    // The kernel keeps a weight-0 destination's last non-zero weight for mh's table but does not
    // export it: its configured weight is the best guess (health inhibit and drains set 0 over it).
    const lastWeight = configured.find((c) => c.address === d.address && c.port === d.port)?.weight ?? 0;
    if (svc.scheduler === 'mh') detail[`lastWeight ${formatEndpoint(d.address, d.port)}`] = `${lastWeight} (assumed: the configured weight)`;
    return { address: d.address, port: d.port, weight: 0, lastWeight, overloaded };
  });
  const flags = { fallback: (svc.flags & IP_VS_SVC_F.SCHED1) !== 0, port: (svc.flags & IP_VS_SVC_F.SCHED2) !== 0 };
  let pick: SchedPick | undefined, what = '';
  if (svc.scheduler === 'sh' || svc.scheduler === 'mh') {
    if (flags.port && flow.clientPort === undefined) {
      return { ...base, source: 'unpredictable', backend: undefined, reason: `${svc.scheduler} with the port flag hashes the client's source port too: give --client ADDRESS:PORT`, detail, backends };
    }
    pick = svc.scheduler === 'sh' ? shPick(sched, flags, client4, flow.clientPort ?? 0) : mhPick(sched, flags, client4, flow.clientPort ?? 0);
    what = svc.scheduler === 'sh' ? 'source hash bucket' : 'maglev hash slot';
  } else if (svc.scheduler === 'dh') {
    pick = dhPick(sched, key.address);
    what = 'destination hash bucket';
  }
  if (pick) {
    Object.assign(detail, { bucket: pick.bucket, tableSize: pick.tableSize, ...(pick.fallbackBucket !== undefined ? { fallbackBucket: pick.fallbackBucket } : {}), ...(pick.note ? { note: pick.note } : {}) });
    if (pick.dest === undefined) return { ...base, source: 'none', backend: undefined, reason: `a new connection gets no destination: ${pick.note ?? 'none available'}`, detail, backends };
    const d = dests[pick.dest]!;
    return {
      ...base, source: 'scheduler', backend: { address: d.address, port: d.port },
      reason: `no connection yet: the ${svc.scheduler} scheduler maps it to ${what} ${pick.fallbackBucket ?? pick.bucket} of ${pick.tableSize}${pick.note ? ` (${pick.note})` : ''}`,
      detail, backends,
    };
  }
  if (!dests.some((d) => d.weight > 0)) return { ...base, source: 'none', backend: undefined, reason: 'no connection yet, and no destination has a weight: a new connection is not scheduled', detail, backends };
  const depends = DEPENDS[svc.scheduler] ?? `the ${svc.scheduler} scheduler's own state`;
  return { ...base, source: 'unpredictable', backend: undefined, reason: `no connection yet; a new connection's destination cannot be predicted: it depends on ${depends}`, detail, backends };
}
