import type { Logger } from '../log.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { LinkInfo, VrrpHost } from './kernel.js';

/**
 * The links of the host as last listed, re-listed every interval: instances see their own link
 * appear, go down or be re-created (a new ifindex), and tracked links change, by polling.
 */
export class LinkPoller {
  private current = new Map<string, LinkInfo>();
  private timer: TimerHandle | undefined;

  constructor(
    private readonly host: () => VrrpHost,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /** By name, as of the last refresh(). */
  get links(): ReadonlyMap<string, LinkInfo> {
    return this.current;
  }

  /** Lists the links again; on failure the last list stays (and the failure is logged). */
  async refresh(): Promise<void> {
    try {
      this.current = new Map((await this.host().links()).map((l) => [l.name, l]));
    } catch (e) {
      this.log.warn({ err: e }, 'cannot list links');
    }
  }

  /** Runs `poll` once, an interval from now, unless a run is already pending. */
  schedule(poll: () => Promise<void>): void {
    if (this.timer !== undefined) return;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      void poll();
    }, this.intervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }
}
