import { systemClock, type Clock, type TimerHandle } from '../util/clock.js';
import { WatchResume, type Delivery, type SpecEvent, type SpecKv, type WatchAction, type WatchInput, type WatchResumeOptions, type WatchStats } from './watch-core.js';

/** A read at a revision that etcd has compacted away. */
export class CompactedError extends Error {}

/** What the watch driver needs from etcd (EtcdClient through etcdSpecTransport, or a fake). */
export interface SpecWatchTransport {
  /** The key now, or as of atRevision; throws CompactedError when atRevision was compacted. */
  get(key: string, atRevision?: number): Promise<{ kv: SpecKv | undefined; revision: number }>;
  watch(key: string, fromRevision: number, listener: {
    created(): void;
    events(events: SpecEvent[]): void;
    compacted(compactRevision: number): void;
    closed(error: Error | undefined): void;
  }): { cancel(): void };
}

export interface SpecWatchOptions extends WatchResumeOptions {
  clock?: Clock;
  /** How often to read the key to catch a stream that stopped delivering; default 30 s, 0: never. */
  stallCheckMs?: number;
  /** A failure the watch recovers from by itself (disconnect, failed list, a delivery that threw). */
  onError?: (error: Error) => void;
}

/**
 * Carries out WatchResume's actions: one stream at a time, deliveries awaited one after the
 * other (the next revision is not delivered before the callback for the previous one settled).
 */
export class SpecWatcher {
  private readonly core: WatchResume;
  private readonly clock: Clock;
  private readonly inbox: WatchInput[] = [];
  private pumping: Promise<void> | undefined;
  private handle: { stream: number; cancel(): void } | undefined;
  private timer: TimerHandle | undefined;
  private stallTimer: TimerHandle | undefined;
  private stopped = false;
  private live = false;

  constructor(
    private readonly transport: SpecWatchTransport,
    private readonly key: string,
    fromRevision: number,
    private readonly deliver: (d: Delivery) => void | Promise<void>,
    private readonly options: SpecWatchOptions = {},
  ) {
    this.core = new WatchResume(fromRevision, options);
    this.clock = options.clock ?? systemClock;
  }

  /** The last revision delivered. */
  get revision(): number {
    return this.core.revision;
  }

  get stats(): Readonly<WatchStats> {
    return this.core.stats;
  }

  /** True while a stream is open and etcd confirmed it. */
  get connected(): boolean {
    return this.live && this.core.state === 'watching';
  }

  start(): void {
    this.push({ type: 'start' });
    this.scheduleStallCheck();
  }

  private scheduleStallCheck(): void {
    const ms = this.options.stallCheckMs ?? 30_000;
    if (ms <= 0 || this.stopped) return;
    this.stallTimer = this.clock.setTimer(() => {
      this.stallTimer = undefined;
      if (this.core.state !== 'watching') return this.scheduleStallCheck();
      this.transport.get(this.key).then(
        (r) => this.push({ type: 'checked', modRevision: r.kv?.modRevision ?? 0 }),
        () => undefined, // unreachable: the stream notices by itself
      ).finally(() => this.scheduleStallCheck());
    }, ms);
  }

  /** Stops; resolves after the delivery in progress (if any) has settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.push({ type: 'stop' });
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    if (this.stallTimer !== undefined) this.clock.clearTimer(this.stallTimer);
    await this.pumping;
  }

  private push(input: WatchInput): void {
    this.inbox.push(input);
    this.pumping ??= this.pump().finally(() => { this.pumping = undefined; });
  }

  private async pump(): Promise<void> {
    for (let input = this.inbox.shift(); input; input = this.inbox.shift()) {
      for (const action of this.core.step(input)) await this.run(action);
    }
  }

  private async run(action: WatchAction): Promise<void> {
    switch (action.type) {
      case 'deliver':
        try {
          await this.deliver(action.delivery);
        } catch (e) {
          this.options.onError?.(e as Error);
        }
        return;
      case 'open': {
        const stream = action.stream;
        this.live = false;
        const h = this.transport.watch(this.key, action.fromRevision, {
          created: () => { if (this.handle?.stream === stream) this.live = true; this.push({ type: 'created', stream }); },
          events: (events) => this.push({ type: 'events', stream, events }),
          compacted: (compactRevision) => this.push({ type: 'compacted', stream, compactRevision }),
          closed: (error) => {
            if (this.handle?.stream === stream) { this.live = false; this.handle = undefined; }
            if (error) this.options.onError?.(error);
            this.push({ type: 'closed', stream, error: error?.message });
          },
        });
        // closed() may have come synchronously (a client that is closed); only keep a live handle.
        if (this.core.state === 'watching') this.handle = { stream, cancel: () => h.cancel() };
        return;
      }
      case 'cancel':
        if (this.handle?.stream === action.stream) {
          const h = this.handle;
          this.handle = undefined;
          this.live = false;
          h.cancel();
        }
        return;
      case 'list':
        this.transport.get(this.key).then(
          (r) => this.push({ type: 'listed', kv: r.kv, revision: r.revision }),
          (e: Error) => { this.options.onError?.(e); this.push({ type: 'listFailed', error: e.message }); },
        );
        return;
      case 'probe':
        this.transport.get(this.key, action.revision).then(
          (r) => this.push({ type: 'probed', kv: r.kv }),
          (e: Error) => {
            const compacted = e instanceof CompactedError;
            if (!compacted) this.options.onError?.(e);
            this.push({ type: 'probeFailed', compacted, error: e.message });
          },
        );
        return;
      case 'backoff':
        this.timer = this.clock.setTimer(() => { this.timer = undefined; this.push({ type: 'retry' }); }, action.ms);
        return;
    }
  }
}
