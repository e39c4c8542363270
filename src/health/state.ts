import type { Health } from '../model/health.js';
import { stepRiseFall, type RiseFallRule } from '../util/rise-fall.js';
import type { CheckOutcome } from './types.js';

/**
 * The pure state machines of health: one per backend (rise/fall hysteresis, warm-up) and one per
 * service (quorum with hysteresis). No I/O, no clock of their own: the caller passes the time.
 */

export type HealthState = 'up' | 'down';

export interface LastResult extends CheckOutcome {
  /** Wall-clock milliseconds of the result. */
  at: number;
  latencyMs: number;
}

export interface BackendHealth {
  readonly state: HealthState;
  /** Consecutive passes (reset by a failure) and consecutive failures (reset by a pass). */
  readonly successes: number;
  readonly failures: number;
  /** Wall-clock milliseconds since the backend is in `state`. */
  readonly since: number;
  /** false until the first result: the backend is still warming up. */
  readonly checked: boolean;
  readonly last: LastResult | undefined;
}

/**
 * A new backend starts in `initialState` (down by default: it takes no traffic until it has passed
 * `rise` checks; keepalived#2064 sent traffic to servers nobody had checked yet).
 */
export function initialBackendHealth(initialState: HealthState, at: number): BackendHealth {
  return { state: initialState, successes: 0, failures: 0, since: at, checked: false, last: undefined };
}

/** Applies one result: a down backend rises after `rise` consecutive passes, an up one falls after `fall` consecutive failures. */
export function stepBackend(b: BackendHealth, t: RiseFallRule, result: LastResult): { next: BackendHealth; changed: boolean } {
  const { passing, successes, failures } = stepRiseFall({ passing: b.state === 'up', successes: b.successes, failures: b.failures }, t, result.up);
  const state: HealthState = passing ? 'up' : 'down';
  const changed = state !== b.state;
  return { next: { state, successes, failures, since: changed ? result.at : b.since, checked: true, last: result }, changed };
}

export interface QuorumRule {
  min: number;
  hysteresis: number;
}

/**
 * The quorum a service keeps: as configured, or a healthy weight of 1 when only a sorry server is
 * set (keepalived's default quorum); none (never lost) otherwise.
 */
export function quorumRule(h: Health): QuorumRule | undefined {
  if (h.quorum) return { min: h.quorum.min, hysteresis: h.quorum.hysteresis };
  if (h.sorryServer) return { min: 1, hysteresis: 0 };
  return undefined;
}

/**
 * Quorum with hysteresis (keepalived): held while the healthy weight stays at or above
 * min - hysteresis, regained only at min + hysteresis. Without a previous state, held iff >= min.
 */
export function stepQuorum(previous: boolean | undefined, healthyWeight: number, rule: QuorumRule): boolean {
  if (previous === undefined) return healthyWeight >= rule.min;
  if (previous) return healthyWeight >= rule.min - rule.hysteresis;
  return healthyWeight >= rule.min + rule.hysteresis;
}
