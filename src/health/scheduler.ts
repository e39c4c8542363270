import type { Checker, CheckOutcome, CheckTarget } from './types.js';
import type { Clock, TimerHandle } from '../util/clock.js';

/**
 * Runs probes on their intervals. Each probe starts at a random point of its first interval and
 * then every interval +/- jitter (uniform), so thousands of checks do not fire together. At most
 * `maxInFlight` probes run at once (the rest wait in FIFO order), which bounds sockets and fds.
 * The check timeout is enforced here, on the injected clock: the checker's signal is aborted and
 * the result is "timeout after Ns".
 */

export interface ProbeSpec {
  key: string;
  checker: Checker;
  target: CheckTarget;
  intervalMs: number;
  jitterMs: number;
  timeoutMs: number;
}

export type ResultHandler = (key: string, outcome: CheckOutcome, latencyMs: number) => void;

interface Probe {
  spec: ProbeSpec;
  timer: TimerHandle | undefined;
  running: AbortController | undefined;
  queued: boolean;
  stopped: boolean;
}

export class ProbeScheduler {
  private readonly probes = new Map<string, Probe>();
  private readonly queue: Probe[] = [];
  private inFlight = 0;

  constructor(
    private readonly clock: Clock,
    private readonly onResult: ResultHandler,
    private readonly random: () => number = Math.random,
    private readonly maxInFlight = 4096,
  ) {}

  get size(): number { return this.probes.size; }
  get running(): number { return this.inFlight; }
  has(key: string): boolean { return this.probes.has(key); }

  add(spec: ProbeSpec): void {
    if (this.probes.has(spec.key)) return;
    const p: Probe = { spec, timer: undefined, running: undefined, queued: false, stopped: false };
    this.probes.set(spec.key, p);
    this.arm(p, this.random() * spec.intervalMs);
  }

  remove(key: string): void {
    const p = this.probes.get(key);
    if (!p) return;
    p.stopped = true;
    if (p.timer !== undefined) this.clock.clearTimer(p.timer);
    p.running?.abort();
    this.probes.delete(key);
  }

  close(): void {
    for (const key of [...this.probes.keys()]) this.remove(key);
    this.queue.length = 0;
  }

  private arm(p: Probe, delayMs: number): void {
    p.timer = this.clock.setTimer(() => { p.timer = undefined; this.due(p); }, Math.max(0, delayMs));
  }

  private due(p: Probe): void {
    if (p.stopped) return;
    if (this.inFlight >= this.maxInFlight) { p.queued = true; this.queue.push(p); return; }
    this.start(p);
  }

  private start(p: Probe): void {
    const { spec } = p;
    const started = this.clock.now();
    const ctl = new AbortController();
    p.running = ctl;
    this.inFlight++;
    let finished = false;
    const finish = (outcome: CheckOutcome) => {
      if (finished) return;
      finished = true;
      this.clock.clearTimer(timeout);
      p.running = undefined;
      this.inFlight--;
      this.drain();
      if (p.stopped) return;
      const now = this.clock.now();
      this.onResult(spec.key, outcome, now - started);
      // Next start: one interval (+/- jitter) after this one started, never before now.
      const jitter = (this.random() * 2 - 1) * spec.jitterMs;
      this.arm(p, started + spec.intervalMs + jitter - now);
    };
    const timeout = this.clock.setTimer(() => {
      ctl.abort();
      finish({ up: false, reason: `timeout after ${formatSeconds(spec.timeoutMs)}`, code: 'timeout' });
    }, spec.timeoutMs);
    spec.checker.check(spec.target, ctl.signal).then(finish, (e: unknown) =>
      finish({ up: false, reason: `check failed: ${(e as Error)?.message ?? String(e)}`, code: 'internal' }),
    );
  }

  private drain(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length) {
      const next = this.queue.shift()!;
      next.queued = false;
      if (!next.stopped) this.start(next);
    }
  }
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(s < 1 ? 3 : 1).replace(/0+$/, '')}s`;
}
