import type { Dataplane, ReconcileResult } from '../dataplane/types.js';
import { FeatureMissingError } from '../errors.js';
import { reportTo, type Logger } from '../log.js';
import type { DesiredState, Service } from '../model/index.js';
import type { AgentMetrics } from './metrics.js';
import type { DataplaneFactories, DataplaneName, HealthPort } from './ports.js';
import { canonicalJson } from '../util/json-value.js';

export interface DataplaneInfo {
  name: DataplaneName;
  available: boolean;
  /** Why it is missing (the FeatureMissingError's message). */
  reason?: string;
  /** What it runs besides services (IPVS: its sync daemons). */
  status?: unknown;
}

/**
 * The dataplanes of this node: which were found, the logger of each (bound once to its component,
 * which also logs the notes of the Report it is given), and how one is brought to a desired state.
 */
export class Dataplanes {
  private readonly open = new Map<DataplaneName, Dataplane>();
  private readonly info = new Map<DataplaneName, DataplaneInfo>();
  private readonly logs = new Map<DataplaneName, Logger>();
  private xdpSettingsKey = '';

  constructor(
    private readonly factories: DataplaneFactories,
    /** The root logger: each dataplane's is a child of it. */
    private readonly logger: Logger,
    /** The agent's logger. */
    private readonly log: Logger,
    private readonly m: AgentMetrics,
    private readonly health: HealthPort | undefined,
  ) {}

  get size(): number {
    return this.open.size;
  }

  has(name: DataplaneName): boolean {
    return this.open.has(name);
  }

  entries(): IterableIterator<[DataplaneName, Dataplane]> {
    return this.open.entries();
  }

  values(): IterableIterator<Dataplane> {
    return this.open.values();
  }

  names(): DataplaneName[] {
    return [...this.open.keys()];
  }

  get(name: DataplaneName): Dataplane | undefined {
    return this.open.get(name);
  }

  /** Every dataplane tried, found or not. */
  infos(): DataplaneInfo[] {
    return [...this.info.values()];
  }

  infoOf(name: DataplaneName): DataplaneInfo | undefined {
    return this.info.get(name);
  }

  logOf(name: DataplaneName): Logger {
    let log = this.logs.get(name);
    if (!log) this.logs.set(name, (log = this.logger.child({ component: name })));
    return log;
  }

  /** Opens every dataplane the kernel can carry; the xdp one with the node-wide settings of `state`. */
  async detect(state: DesiredState): Promise<void> {
    const tries: Array<[DataplaneName, () => Promise<Dataplane>]> = [
      ['ipvs', () => this.factories.ipvs(reportTo(this.logOf('ipvs')))],
      ['xdp', () => this.factories.xdp(state.xdp, reportTo(this.logOf('xdp')))],
    ];
    this.xdpSettingsKey = canonicalJson(state.xdp ?? null);
    for (const [name, open] of tries) {
      try {
        const dp = await open();
        this.open.set(name, dp);
        this.info.set(name, { name, available: true });
        this.log.info({ dataplane: name }, `dataplane ${name} found`);
      } catch (e) {
        if (!(e instanceof FeatureMissingError)) throw e;
        this.info.set(name, { name, available: false, reason: e.message });
        this.log.warn({ dataplane: name, feature: e.feature, reason: e.message }, `dataplane ${name} not available`);
      }
      this.m.available.set({ dataplane: name }, this.open.has(name) ? 1 : 0);
    }
  }

  /** The XDP dataplane is opened with the node-wide xdp settings; a change of them reopens it. */
  async reopenXdpIfNeeded(next: DesiredState): Promise<void> {
    const key = canonicalJson(next.xdp ?? null);
    if (key === this.xdpSettingsKey) return;
    const old = this.open.get('xdp');
    try {
      const dp = await this.factories.xdp(next.xdp, reportTo(this.logOf('xdp')));
      if (old) await old.close();
      this.open.set('xdp', dp);
      this.info.set('xdp', { name: 'xdp', available: true });
      this.xdpSettingsKey = key;
      this.log.info('xdp settings changed: the xdp dataplane was reopened');
    } catch (e) {
      if (!(e instanceof FeatureMissingError)) throw e;
      // Only services that need xdp make this fatal (checked by the caller before).
      if (next.services.some((s) => s.dataplane === 'xdp'))
        throw new FeatureMissingError('xdp', `the new xdp settings cannot be applied: ${e.message}`, { cause: e });
    }
  }

  /** Brings one dataplane to `state`: its node-wide settings first, then its services after health. */
  reconcile(name: DataplaneName, state: DesiredState, options?: { dryRun?: boolean }): Promise<ReconcileResult> {
    const dp = this.open.get(name)!;
    dp.configure?.(state);
    return dp.reconcile(this.servicesFor(state, name), options);
  }

  private servicesFor(state: DesiredState, name: DataplaneName): Service[] {
    const mine = state.services.filter((s) => s.dataplane === name);
    return this.health ? this.health.effectiveServices(mine) : [...mine];
  }
}
