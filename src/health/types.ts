import type { CheckKind, HealthCheck } from '../model/health.js';

/** Where one probe goes: the backend (or health.address/port) of a service. */
export interface CheckTarget {
  address: string;
  port: number;
}

/**
 * The result of one probe. `reason` is for people ("HTTP 503", "connect ECONNREFUSED");
 * `code` is a short, low-cardinality class for metrics ("http_status", "ECONNREFUSED", "timeout").
 */
export interface CheckOutcome {
  up: boolean;
  reason: string;
  code: string;
}

/**
 * One way to probe a target. Implementations do I/O only: no state between calls, no timers of
 * their own for the check timeout (the scheduler aborts `signal` when the timeout passes and
 * reports "timeout after Ns"); they must release their sockets/processes when `signal` aborts.
 * They never throw: a failure is an outcome with up = false.
 */
export interface Checker {
  readonly kind: CheckKind;
  check(target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome>;
}

export type CheckerFactory = (check: HealthCheck, timeoutMs: number) => Checker;


export const up = (reason = 'ok'): CheckOutcome => ({ up: true, reason, code: 'ok' });
export const down = (reason: string, code: string): CheckOutcome => ({ up: false, reason, code });

/** Maps a socket error to an outcome: "connect ECONNREFUSED". */
export function errorOutcome(prefix: string, e: unknown): CheckOutcome {
  const err = e as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : 'error';
  const text = typeof err?.code === 'string' ? err.code : String(err?.message ?? e);
  return down(`${prefix} ${text}`, code);
}
