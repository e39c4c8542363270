import { errorFields, FulcrumError, isFulcrumError } from '../errors.js';
import { isStoreUnavailable } from '../cluster/errors.js';
import { openEtcdStore, type EtcdStoreSettings } from '../cluster/config.js';
import type { ClusterStatus, EtcdStateStore, SpecChange, SpecWatch } from '../cluster/etcd-store.js';
import type { ReconcileResult } from '../cluster/keys.js';
import type { Logger } from '../log.js';
import type { DesiredState } from '../model/index.js';
import { sameValue } from '../util/json-value.js';
import type { Agent } from './agent.js';
import type { ChangeOptions, ChangeResult, Mutation } from './change.js';
import type { ClusterPort } from './context.js';
import type { StateStore, StoredState } from './store.js';
import { parseChangedState } from './validate.js';

/**
 * The agent as a member of a cluster (agent.store kind etcd, docs/cluster.md): the shared part of
 * the desired state (services) comes from etcd, the node's own sections (xdp, ipvs, vrrp) from its
 * config file; the agent runs their merge. Every API write is validated and planned against that
 * merge here, committed to etcd, and applied by this node's watch like every other node's.
 */

/** How long an API write waits for this node to apply what it committed (read-your-write). */
const APPLY_WAIT_MS = 10_000;
/** Commits retried on a newer state when a write without If-Match loses a race. */
const WRITE_ATTEMPTS = 3;

type OwnSections = Omit<DesiredState, 'services'>;

const ownOf = (s: DesiredState): OwnSections => {
  const { services: _services, ...own } = s;
  return own;
};
const sharedOf = (s: DesiredState): DesiredState => parseChangedState({ services: s.services });
const merge = (own: OwnSections, shared: DesiredState): DesiredState => parseChangedState({ ...own, services: shared.services });

/** The agent's StateStore with etcd: the running state in memory, the local cache on disk. */
class ClusterCache implements StateStore {
  constructor(private readonly store: EtcdStateStore, private readonly initial: StoredState) {}

  get location(): string {
    return this.store.location;
  }

  load(): StoredState {
    return this.initial;
  }

  save(stored: StoredState): void {
    this.store.recordApplied(stored.revision, sharedOf(stored.state));
  }
}

export class ClusterMember implements ClusterPort {
  private agent: Agent | undefined;
  private watch: SpecWatch | undefined;
  /** The last shared revision the watch handled (applied, or failed and reported). */
  private handled: number;
  private waiters: Array<{ revision: number; wake: () => void }> = [];
  private lastReconcile: ReconcileResult | undefined;
  private readonly audit: Logger;

  private constructor(
    readonly store: EtcdStateStore,
    readonly nodeId: string,
    private own: OwnSections,
    readonly cache: StateStore,
    initialRevision: number,
    private startedStale: boolean,
    private readonly log: Logger,
  ) {
    this.handled = initialRevision;
    this.audit = log.child({ component: 'audit' });
  }

  /**
   * Opens the store and reads the shared state (etcd, or the local cache when etcd is down). The
   * config file's services seed a cluster whose state was never written; otherwise they are
   * ignored (with a warning when they differ): the cluster's state wins.
   */
  static async open(settings: EtcdStoreSettings, stateDir: string, config: DesiredState | undefined, logger: Logger): Promise<ClusterMember> {
    const log = logger.child({ component: 'cluster' });
    const { store, nodeId } = openEtcdStore(settings, { stateDir, onError: (e, what) => log.warn({ err: errorFields(e), what }, `etcd: ${what} failed; retrying`) });
    const own = config ? ownOf(config) : ownOf(parseChangedState({}));
    const fileServices = config?.services ?? [];
    let revision = 0;
    let shared = parseChangedState({});
    let stale = false;
    try {
      const loaded = await store.load();
      ({ revision, state: shared, stale } = loaded);
      if (loaded.source === 'cache') log.warn({ revision, store: store.location }, 'etcd is unreachable: running the last applied shared state from the local cache (stale)');
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      stale = true;
      log.error({ err: errorFields(e), store: store.location }, 'etcd is unreachable and there is no local cache: starting with no shared services');
    }
    if (!stale && revision === 0 && fileServices.length > 0) {
      try {
        const seed = sharedOf(parseChangedState({ services: fileServices }));
        revision = await store.commit(0, seed);
        shared = seed;
        log.info({ revision, services: fileServices.length, store: store.location }, 'the cluster had no shared state: seeded it with the services of the config file');
      } catch (e) {
        // Another node seeded it first (one txn against revision 0): its state wins.
        if (!isFulcrumError(e) || e.code !== 'PRECONDITION_FAILED') throw e;
        ({ revision, state: shared } = await store.load());
      }
    }
    if (revision > 0 && fileServices.length > 0 && !sameValue(fileServices, shared.services)) {
      log.warn({ services: fileServices.length, store: store.location }, "the config file's services are ignored: with agent.store kind etcd the services are the cluster's (they seed only a cluster that has none)");
    }
    let initial: DesiredState;
    try {
      initial = merge(own, shared);
    } catch (e) {
      await store.close();
      throw new FulcrumError('INVALID_CONFIG', `this node's sections do not fit the cluster's services (revision ${revision}): ${(e as Error).message}`, { cause: e, details: (e as FulcrumError).details });
    }
    const cache = new ClusterCache(store, { revision, state: initial });
    return new ClusterMember(store, nodeId, own, cache, revision, stale, log);
  }

  get stale(): boolean {
    return this.watch ? !this.watch.connected : this.startedStale;
  }

  status(): unknown {
    return {
      cluster: this.store.cluster, nodeId: this.nodeId, store: this.store.location,
      watching: this.watch?.connected ?? false, lastReconcile: this.lastReconcile,
    };
  }

  clusterStatus(): Promise<ClusterStatus> {
    return this.store.clusterStatus();
  }

  /** Registers the node (under its lease) and watches from the revision the agent runs. */
  async join(agent: Agent, address: string | undefined): Promise<void> {
    this.agent = agent;
    const dataplanes = agent.dataplaneInfo().filter((d) => d.available).map((d) => d.name);
    try {
      await this.store.register({ id: this.nodeId, address, dataplanes, appliedRevision: agent.revision });
      this.log.info({ nodeId: this.nodeId, cluster: this.store.cluster, revision: agent.revision }, 'registered in the cluster');
    } catch (e) {
      this.log.warn({ err: errorFields(e) }, 'cannot register in the cluster now; retrying in the background');
    }
    this.watch = this.store.watch(agent.revision, (c) => this.onChange(c));
  }

  /** Stops the watch and revokes the lease: the node is listed as gone at once. */
  async close(): Promise<void> {
    await this.store.close();
    for (const w of this.waiters.splice(0)) w.wake();
  }

  async write(mutate: Mutation, options: ChangeOptions): Promise<ChangeResult> {
    const agent = this.agent;
    if (!agent) throw new FulcrumError('CONFLICT', 'the agent is starting; nothing was changed');
    for (let attempt = 1; ; attempt++) {
      // A caller who saw a newer revision (through another node) waits for this node to run it.
      if (options.ifMatch !== undefined && options.ifMatch > agent.revision) await this.waitHandled(options.ifMatch);
      const base = { revision: agent.revision, state: agent.state };
      if (options.ifMatch !== undefined && options.ifMatch !== base.revision)
        throw new FulcrumError('PRECONDITION_FAILED', `If-Match revision ${options.ifMatch} does not match the current revision ${base.revision}`, { details: { current: base.revision } });
      const next = parseChangedState(mutate(base.state));
      if (!sameValue(ownOf(next), ownOf(base.state)))
        throw new FulcrumError('CONFLICT', `in cluster ${this.store.cluster} only services are shared: this node's xdp, ipvs and vrrp sections come from its config file (change it and reload)`);
      // The revisions the watch handled after the one the node runs all failed here (invalid, or
      // not mergeable): a write from this node replaces them with a state built on the one it runs.
      const seen = Math.max(base.revision, this.handled);
      const plan = await agent.change(() => next, { ...options, ifMatch: undefined, dryRun: true, revision: base.revision });
      if (options.dryRun) return plan;
      if (!plan.changed && seen === base.revision) return { ...plan, dryRun: false };
      let committed: number;
      try {
        committed = await this.store.commit(seen, sharedOf(next));
      } catch (e) {
        this.audit.warn({ who: options.actor, what: options.action, result: 'failed', code: isFulcrumError(e) ? e.code : 'INTERNAL', error: (e as Error).message }, 'change');
        const current = isFulcrumError(e) && e.code === 'PRECONDITION_FAILED' ? (e.details as { current?: number } | undefined)?.current : undefined;
        if (current !== undefined && options.ifMatch === undefined && attempt < WRITE_ATTEMPTS) {
          await this.waitHandled(current);
          continue;
        }
        throw e;
      }
      this.audit.info({ who: options.actor, what: options.action, result: 'committed', revision: committed }, 'change');
      await this.waitHandled(committed);
      return { revision: committed, changed: plan.changed, applied: agent.revision >= committed, dryRun: false, diff: plan.diff, plan: plan.plan };
    }
  }

  /**
   * SIGHUP / POST /v1/reload with kind etcd: the config file's own sections (xdp, ipvs, vrrp)
   * replace the running ones; its services are not the node's to change.
   */
  async reloadOwn(config: DesiredState, options: { dryRun?: boolean }): Promise<ChangeResult> {
    const agent = this.agent;
    if (!agent) throw new FulcrumError('CONFLICT', 'the agent is starting; nothing was changed');
    if (config.services.length > 0 && !sameValue(config.services, agent.state.services))
      this.log.warn("reload: the config file's services are ignored (the services are the cluster's)");
    const own = ownOf(config);
    const result = await agent.change((current) => merge(own, current), {
      actor: 'config-file', action: "reload of the config file (this node's sections)", dryRun: options.dryRun, revision: agent.revision,
    });
    if (!options.dryRun) this.own = own;
    return result;
  }

  private async onChange(c: SpecChange): Promise<void> {
    const agent = this.agent!;
    const at = new Date().toISOString();
    let result: ReconcileResult;
    if (c.kind === 'invalid') {
      result = { result: 'failed', revision: c.revision, message: c.error.message, at };
    } else {
      try {
        const state = c.state;
        await agent.change(() => merge(this.own, state), { actor: 'cluster', action: `apply cluster revision ${c.revision} (${c.kind})`, revision: c.revision });
        result = { result: 'ok', revision: c.revision, at };
      } catch (e) {
        result = { result: 'failed', revision: c.revision, message: (e as Error).message, at };
      }
    }
    if (result.result === 'failed') this.log.error({ revision: c.revision, error: result.message }, 'cluster revision not applied; this node keeps running its state');
    this.lastReconcile = result;
    this.handled = c.revision;
    this.waiters = this.waiters.filter((w) => (w.revision <= c.revision ? (w.wake(), false) : true));
    await this.store.updateStatus({ appliedRevision: agent.revision, lastReconcile: result }).catch((e: Error) => {
      this.log.debug({ err: errorFields(e) }, 'node record not updated now; the keepalive puts it');
    });
  }

  /** Resolves once the watch handled `revision`, or after APPLY_WAIT_MS. */
  private waitHandled(revision: number): Promise<void> {
    if (this.handled >= revision) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve();
      }, APPLY_WAIT_MS);
      const w = { revision, wake: () => { clearTimeout(t); resolve(); } };
      this.waiters.push(w);
    });
  }
}
