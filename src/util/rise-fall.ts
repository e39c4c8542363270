/**
 * Rise/fall hysteresis over consecutive results (keepalived's rise and fall): a failing subject
 * passes after `rise` consecutive passes, a passing one fails after `fall` consecutive failures.
 * Pure: health backends and VRRP track scripts step it with each result.
 */

export interface RiseFallRule {
  readonly rise: number;
  readonly fall: number;
}

export interface RiseFallState {
  readonly passing: boolean;
  /** Consecutive passes (reset by a failure) and consecutive failures (reset by a pass). */
  readonly successes: number;
  readonly failures: number;
}

export function stepRiseFall(s: RiseFallState, rule: RiseFallRule, passed: boolean): RiseFallState {
  const successes = passed ? s.successes + 1 : 0;
  const failures = passed ? 0 : s.failures + 1;
  let passing = s.passing;
  if (!s.passing && successes >= rule.rise) passing = true;
  else if (s.passing && failures >= rule.fall) passing = false;
  return { passing, successes, failures };
}
