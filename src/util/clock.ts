/**
 * Time and timers, injected so that state machines, schedulers and the reconcile loop can be
 * stepped in tests (test/helpers/fake-clock.ts). The one clock of the agent.
 */
export interface Clock {
  /** Milliseconds, monotonic: for intervals and deadlines. */
  now(): number;
  /** Milliseconds since the epoch: for the times shown to people and stored. */
  wallNow(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}
export type TimerHandle = unknown;

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // A timer never keeps the process alive on its own: sockets and servers do, and close() ends timers.
    t.unref();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Calls fn every ms milliseconds (first call after ms) until the returned function is called. */
export function every(clock: Clock, ms: number, fn: () => void): () => void {
  let handle: TimerHandle | undefined;
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    handle = clock.setTimer(tick, ms);
    fn();
  };
  handle = clock.setTimer(tick, ms);
  return () => {
    stopped = true;
    if (handle !== undefined) clock.clearTimer(handle);
  };
}
