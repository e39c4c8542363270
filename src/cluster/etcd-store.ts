import { join } from 'node:path';
import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { parseDesiredState, type DesiredState } from '../model/index.js';
import { systemClock, type Clock, type TimerHandle } from '../util/clock.js';
import { SerialQueue } from '../util/serial-queue.js';
import { StateFile } from '../util/state-file.js';
import { EtcdRequestError, GrpcCode, type EtcdClient, type KeyValue } from './etcd-client.js';
import { isStoreUnavailable, revisionConflict } from './errors.js';
import {
  clusterKeys, decodeRecord, decodeSpec, encodeSpec, MemberRecordSchema, nodeHealth, NodeRecordSchema, specRevision,
  type ClusterKeys, type MemberRecord, type NodeHealth, type NodeRecord, type ReconcileResult,
} from './keys.js';
import { CompactedError, SpecWatcher, type SpecWatchOptions, type SpecWatchTransport } from './watch.js';
import type { Delivery } from './watch-core.js';

/**
 * The shared desired state of a cluster in etcd, with the node's membership and a local cache.
 * The state held here is the shared part only (services); the agent adds its own XDP, IPVS and
 * VRRP sections from its config file (see docs/cluster.md).
 */

export interface LoadedSpec {
  /** The spec key's mod_revision (0: never written). */
  revision: number;
  state: DesiredState;
  /** etcd, or the local cache when etcd was unreachable (then `stale`). */
  source: 'etcd' | 'cache';
  stale: boolean;
}

export type SpecChange =
  | { revision: number; kind: 'put' | 'delete' | 'snapshot'; state: DesiredState }
  /** A value in etcd that is not a valid spec (written around Fulcrum): the node keeps what it runs. */
  | { revision: number; kind: 'invalid'; error: FulcrumError };

export interface SpecWatch {
  /** The last revision delivered. */
  readonly revision: number;
  readonly connected: boolean;
  readonly stats: SpecWatcher['stats'];
  stop(): Promise<void>;
}

export interface NodeInfo {
  id: string;
  address?: string | undefined;
  dataplanes: readonly string[];
  appliedRevision?: number | undefined;
}

export interface StatusUpdate {
  appliedRevision?: number;
  lastReconcile?: ReconcileResult;
}

export interface ClusterNodeStatus {
  id: string;
  health: NodeHealth;
  record: NodeRecord | undefined;
  member: MemberRecord | undefined;
}

export interface ClusterStatus {
  /** The shared state's revision now. */
  revision: number;
  nodes: ClusterNodeStatus[];
}

export interface EtcdStateStoreOptions {
  client: EtcdClient;
  cluster: string;
  prefix?: string | undefined;
  /** Directory of the local cache (the agent's stateDir); none: no cache. */
  cacheDir?: string | undefined;
  /** Lease TTL of the node record: how long a frozen or cut-off node stays listed. Default 10 s. */
  leaseTtlSeconds?: number | undefined;
  clock?: Clock | undefined;
  /** Failures the store recovers from (keepalive, watch): for the agent's log. */
  onError?: ((error: Error, what: string) => void) | undefined;
}

const CacheSchema = z.object({
  cluster: z.string(),
  revision: z.number().int().nonnegative(),
  /** The spec document as it was in etcd (encodeSpec). */
  spec: z.string(),
  appliedAt: z.string(),
}).strict();

const nowIso = (clock: Clock): string => new Date(clock.wallNow()).toISOString();

/** The watch transport over the real client. */
export function etcdSpecTransport(client: EtcdClient): SpecWatchTransport {
  const kv = (k: KeyValue) => ({ modRevision: k.modRevision, createRevision: k.createRevision, version: k.version, value: k.value });
  return {
    async get(key, atRevision) {
      let r;
      try {
        r = await client.range(key, atRevision ? { revision: atRevision } : {});
      } catch (e) {
        if (e instanceof EtcdRequestError && e.grpcCode === GrpcCode.OutOfRange) throw new CompactedError(e.message);
        throw e;
      }
      return { kv: r.kvs[0] ? kv(r.kvs[0]) : undefined, revision: r.revision };
    },
    watch(key, fromRevision, l) {
      return client.watch(key, fromRevision, {
        created: () => l.created(),
        events: (events) => l.events(events.map((e) => ({ type: e.type, ...kv(e.kv), value: e.type === 'delete' ? undefined : e.kv.value }))),
        canceled: (compactRevision, reason) => {
          if (compactRevision !== undefined) l.compacted(compactRevision);
          else l.closed(new FulcrumError('STORE_ERROR', `etcd cancelled the watch of ${key}: ${reason}`));
        },
        closed: (error) => l.closed(error),
      });
    },
  };
}

export class EtcdStateStore {
  readonly keys: ClusterKeys;
  readonly cluster: string;
  private readonly client: EtcdClient;
  private readonly clock: Clock;
  private readonly ttl: number;
  private readonly cache: StateFile<typeof CacheSchema> | undefined;
  private readonly queue = new SerialQueue();
  private readonly watches = new Set<SpecWatcher>();
  private record: NodeRecord | undefined;
  private member: MemberRecord | undefined;
  /** The record (or the member record) changed but is not in etcd yet: the keepalive puts it. */
  private dirty = false;
  private memberWritten = false;
  private lease: string | undefined;
  private keepaliveTimer: TimerHandle | undefined;
  private closed = false;

  constructor(private readonly options: EtcdStateStoreOptions) {
    this.client = options.client;
    this.cluster = options.cluster;
    this.keys = clusterKeys(options.cluster, options.prefix);
    this.clock = options.clock ?? systemClock;
    this.ttl = options.leaseTtlSeconds ?? 10;
    if (!Number.isInteger(this.ttl) || this.ttl < 2) throw new FulcrumError('INVALID_CONFIG', `lease TTL ${this.ttl} s: must be a whole number of seconds, at least 2`);
    this.cache = options.cacheDir ? new StateFile(join(options.cacheDir, `cluster-${options.cluster}-spec.json`), 1, CacheSchema, 'cluster state cache') : undefined;
  }

  /** For logs and `status`: "etcd http://127.0.0.1:2379 /fulcrum/v1/prod/spec". */
  get location(): string {
    return `etcd ${this.client.endpoints.join(',')} ${this.keys.spec}`;
  }

  /**
   * The shared state now, parsed once. When etcd cannot be reached, the last state this node
   * applied (recordApplied) marked stale; with no cache either, StoreUnavailableError.
   */
  async load(): Promise<LoadedSpec> {
    try {
      const r = await this.client.range(this.keys.spec);
      const kv = r.kvs[0];
      return { revision: specRevision(kv), state: kv ? decodeSpec(kv.value, this.where(kv)) : parseDesiredState({}), source: 'etcd', stale: false };
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      const cached = this.loadCached();
      if (!cached) throw e;
      return { ...cached, source: 'cache', stale: true };
    }
  }

  /**
   * Writes the shared state in one txn if the spec key is still at expectedRevision (If-Match;
   * 0 for a key never written). Returns the new revision. A lost race throws PRECONDITION_FAILED
   * with `details.current`; etcd unreachable throws StoreUnavailableError (nothing was written,
   * unless the connection broke after etcd had it: the watch then delivers it).
   */
  async commit(expectedRevision: number, state: DesiredState): Promise<number> {
    const key = this.keys.spec;
    const r = await this.client.txn(
      [{ key, target: 'MOD', result: 'EQUAL', value: expectedRevision }],
      [{ put: { key, value: encodeSpec(state) } }],
      [{ range: { key } }],
    );
    if (!r.succeeded) throw revisionConflict(expectedRevision, specRevision(r.ranges[0]?.kvs[0]));
    return r.revision;
  }

  /**
   * Delivers every revision of the shared state after fromRevision, in order, each once; after a
   * disconnect it resumes after the last one delivered; when etcd compacted past it, it delivers
   * the current state as a `snapshot`. onChange is awaited before the next delivery.
   */
  watch(fromRevision: number, onChange: (change: SpecChange) => void | Promise<void>, options: Omit<SpecWatchOptions, 'clock'> = {}): SpecWatch {
    const deliver = (d: Delivery) => onChange(this.change(d));
    const onError = options.onError ?? ((e: Error) => this.options.onError?.(e, 'watch'));
    const w = new SpecWatcher(etcdSpecTransport(this.client), this.keys.spec, fromRevision, deliver, { ...options, clock: this.clock, onError });
    this.watches.add(w);
    w.start();
    return {
      get revision() { return w.revision; },
      get connected() { return w.connected; },
      get stats() { return w.stats; },
      stop: async () => { this.watches.delete(w); await w.stop(); },
    };
  }

  /** Remembers (crash-safely) the state this node runs, for a start while etcd is down. */
  recordApplied(revision: number, state: DesiredState): void {
    this.cache?.save({ cluster: this.cluster, revision, spec: encodeSpec(state), appliedAt: nowIso(this.clock) });
  }

  /** The last applied state from the local cache, parsed; undefined when there is none. */
  loadCached(): { revision: number; state: DesiredState } | undefined {
    const c = this.cache?.load();
    if (!c) return undefined;
    if (c.cluster !== this.cluster) throw new FulcrumError('STORE_ERROR', `the cluster state cache ${this.cache!.path} belongs to cluster ${c.cluster}, not ${this.cluster}`);
    return { revision: c.revision, state: decodeSpec(c.spec, this.cache!.path) };
  }

  /**
   * Makes this node a member and keeps its record alive under a lease (keepalive every TTL/3).
   * When etcd is unreachable it keeps trying in the background; a lease that expired (the node
   * was frozen, or cut off longer than the TTL) is granted again and the record put back.
   */
  async register(node: NodeInfo): Promise<void> {
    const now = nowIso(this.clock);
    this.record = NodeRecordSchema.parse({
      id: node.id, ...(node.address ? { address: node.address } : {}), dataplanes: [...node.dataplanes],
      appliedRevision: node.appliedRevision ?? 0, startedAt: now, updatedAt: now,
    });
    this.member = { id: node.id, ...(node.address ? { address: node.address } : {}), registeredAt: now };
    this.dirty = true;
    try {
      await this.queue.run(() => this.flush());
    } finally {
      this.scheduleKeepalive();
    }
  }

  /** Changes this node's record (applied revision, last reconcile); put at once under the lease. */
  async updateStatus(update: StatusUpdate): Promise<void> {
    if (!this.record) throw new FulcrumError('STORE_ERROR', 'updateStatus before register');
    this.record = { ...this.record, ...update, updatedAt: nowIso(this.clock) };
    this.dirty = true;
    await this.queue.run(() => this.flush());
  }

  /** The live nodes (a node whose lease expired is not among them). */
  async nodes(): Promise<NodeRecord[]> {
    const r = await this.client.range(this.keys.nodes, { prefix: true });
    return r.kvs.map((kv) => decodeRecord(NodeRecordSchema, kv.value, kv.key));
  }

  /** Every member with how it stands: current, behind, failed, or gone (no live record). */
  async clusterStatus(): Promise<ClusterStatus> {
    const r = await this.client.txn([], [{ range: { key: this.keys.spec } }, { range: { key: this.keys.nodes, prefix: true } }, { range: { key: this.keys.members, prefix: true } }]);
    const [spec, nodes, members] = r.ranges;
    const revision = specRevision(spec?.kvs[0]);
    const live = new Map((nodes?.kvs ?? []).map((kv) => [kv.key.slice(this.keys.nodes.length), decodeRecord(NodeRecordSchema, kv.value, kv.key)]));
    const known = new Map((members?.kvs ?? []).map((kv) => [kv.key.slice(this.keys.members.length), decodeRecord(MemberRecordSchema, kv.value, kv.key)]));
    const ids = [...new Set([...known.keys(), ...live.keys()])].sort();
    return { revision, nodes: ids.map((id) => ({ id, health: nodeHealth(live.get(id), revision), record: live.get(id), member: known.get(id) })) };
  }

  /** Removes a member for good (a node taken out of the cluster). */
  async forget(id: string): Promise<void> {
    await this.client.txn([], [{ delete: { key: this.keys.node(id) } }, { delete: { key: this.keys.member(id) } }]);
  }

  /** Stops watches and keepalives; revokes the lease (the node leaves `nodes()` at once) unless etcd is gone. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.keepaliveTimer !== undefined) this.clock.clearTimer(this.keepaliveTimer);
    await Promise.all([...this.watches].map((w) => w.stop()));
    this.watches.clear();
    await this.queue.run(async () => {
      if (this.lease) await this.client.leaseRevoke(this.lease).catch((e: Error) => this.options.onError?.(e, 'lease revoke'));
      this.lease = undefined;
    });
    this.client.close();
  }

  private change(d: Delivery): SpecChange {
    if (d.value === undefined) return { revision: d.revision, kind: d.kind, state: parseDesiredState({}) };
    try {
      return { revision: d.revision, kind: d.kind, state: decodeSpec(d.value, `${this.keys.spec} at revision ${d.revision}`) };
    } catch (e) {
      return { revision: d.revision, kind: 'invalid', error: e as FulcrumError };
    }
  }

  private where(kv: KeyValue | undefined): string {
    return kv ? `${this.keys.spec} at revision ${kv.modRevision}` : this.keys.spec;
  }

  /** Puts what is not in etcd yet (member record, node record); left dirty when etcd fails. */
  private async flush(): Promise<void> {
    if (!this.dirty) return;
    if (!this.memberWritten) {
      await this.client.put(this.keys.member(this.member!.id), JSON.stringify(this.member));
      this.memberWritten = true;
    }
    const rec = this.record!;
    await this.putRecord(rec);
    // updateStatus may have changed the record while this put was in flight: that one is still
    // to be put (its own flush, queued behind this one, must not find it clean).
    if (this.record === rec) this.dirty = false;
  }

  /** Puts the record under the lease, granting a lease first when there is none (or it expired). */
  private async putRecord(rec: NodeRecord): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (!this.lease) this.lease = (await this.client.leaseGrant(this.ttl)).id;
      try {
        await this.client.put(this.keys.node(rec.id), JSON.stringify(rec), { lease: this.lease });
        return;
      } catch (e) {
        // "etcdserver: requested lease not found": it expired between grant/keepalive and put.
        if (attempt === 0 && e instanceof EtcdRequestError && e.grpcCode === GrpcCode.NotFound) { this.lease = undefined; continue; }
        throw e;
      }
    }
  }

  private scheduleKeepalive(): void {
    if (this.closed) return;
    // A third of the TTL: two keepalives may fail (a slow etcd, a leader change) before it expires.
    this.keepaliveTimer = this.clock.setTimer(() => {
      this.keepaliveTimer = undefined;
      this.queue.run(() => this.keepalive()).catch((e: Error) => this.options.onError?.(e, 'lease keepalive')).finally(() => this.scheduleKeepalive());
    }, (this.ttl * 1000) / 3);
  }

  private async keepalive(): Promise<void> {
    if (this.closed || !this.record) return;
    if (this.lease && (await this.client.leaseKeepAlive(this.lease)) > 0) return this.flush();
    // The lease is gone (expired while frozen or cut off): register again under a new one.
    this.lease = undefined;
    this.record = { ...this.record, updatedAt: nowIso(this.clock) };
    this.dirty = true;
    await this.flush();
  }
}
