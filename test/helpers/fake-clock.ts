// Two steppable clocks over one timer queue: ManualClock for health (async advance, letting
// promises settle after each timer) and FakeClock for VRRP (sync advance).
import type { Clock, TimerHandle } from '../../src/util/clock.js';

type Timer = { at: number; fn: () => void };

/** Timers keyed by id; `takeDue(end)` pops the earliest due timer (ties in creation order). */
class TimerQueue {
  protected t = 0;
  private seq = 0;
  protected readonly timers = new Map<number, Timer>();

  protected schedule(fn: () => void, ms: number): number {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  protected takeDue(end: number): Timer | undefined {
    let next: [number, Timer] | undefined;
    for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
    if (!next) return undefined;
    this.timers.delete(next[0]);
    this.t = next[1].at;
    return next[1];
  }
}

/** A clock that only moves when the test says so; timers fire in time order during advance(). */
export class ManualClock extends TimerQueue implements Clock {
  constructor(private readonly epoch = Date.UTC(2026, 0, 1)) { super(); }

  now(): number { return this.t; }
  wallNow(): number { return this.epoch + this.t; }
  setTimer(fn: () => void, ms: number): TimerHandle { return this.schedule(fn, ms); }
  clearTimer(handle: TimerHandle): void { this.timers.delete(handle as number); }
  get pending(): number { return this.timers.size; }

  /** Moves time forward by `ms`, firing due timers in order and letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (let timer = this.takeDue(end); timer; timer = this.takeDue(end)) {
      timer.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

/** Lets pending promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A steppable clock: timers fire in time order while `advance` moves time forward. */
export class FakeClock extends TimerQueue implements Clock {
  constructor(private readonly epoch = Date.UTC(2026, 0, 1)) { super(); }

  now(): number { return this.t; }
  wallNow(): number { return this.epoch + this.t; }
  setTimer(fn: () => void, ms: number): TimerHandle { return this.schedule(fn, ms); }
  clearTimer(handle: TimerHandle): void { this.timers.delete(handle as number); }

  /** Moves time forward by `ms`, firing due timers in order (timers they set fire too if due). */
  advance(ms: number): void {
    const end = this.t + ms;
    let guard = 0;
    for (let timer = this.takeDue(end); timer && guard < 1_000_000; timer = this.takeDue(end), guard++) timer.fn();
    this.t = end;
  }

  /** Time of the next pending timer, if any. */
  nextAt(): number | undefined {
    let min: number | undefined;
    for (const { at } of this.timers.values()) if (min === undefined || at < min) min = at;
    return min;
  }
}
