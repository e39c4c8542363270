import type { VrrpInstance } from '../model/vrrp.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { execProgram } from '../util/exec.js';
import { stepRiseFall, type RiseFallState } from '../util/rise-fall.js';

type TrackScript = VrrpInstance['track']['scripts'][number];

/**
 * Runs an instance's track scripts (keepalived vrrp_script): each at once and then `interval`
 * seconds after its previous run ended, killed (its process group) after `timeout` seconds. Exit 0
 * passes, anything else fails; rise/fall turns the results into passing or failing. A new script
 * passes until it has failed `fall` times.
 */
export class TrackScripts {
  private readonly states = new Map<string, RiseFallState>();
  private readonly timers = new Map<string, TimerHandle>();
  /** One per script run in progress. */
  private readonly running = new Set<AbortController>();
  private closed = false;

  /** `changed` is called when a script turns from passing to failing or back. */
  constructor(scripts: readonly TrackScript[], private readonly clock: Clock, private readonly changed: (name: string, fails: boolean) => void) {
    for (const script of scripts) {
      this.states.set(script.name, { passing: true, successes: 0, failures: 0 });
      this.run(script);
    }
  }

  fails(name: string): boolean {
    return !(this.states.get(name)?.passing ?? true);
  }

  /** Stops the runs (a running script is killed); `changed` is not called again. */
  close(): void {
    this.closed = true;
    for (const run of this.running) run.abort();
    for (const t of this.timers.values()) this.clock.clearTimer(t);
    this.timers.clear();
  }

  private run(script: TrackScript): void {
    const [program, ...args] = script.argv as [string, ...string[]];
    const run = new AbortController();
    this.running.add(run);
    const timeout = this.clock.setTimer(() => run.abort(), script.timeout * 1000);
    void execProgram(program, args, { signal: run.signal }).then((r) => {
      this.clock.clearTimer(timeout);
      this.running.delete(run);
      if (this.closed) return;
      const was = this.states.get(script.name)!;
      const now = stepRiseFall(was, script, r.end === 'exit' && r.code === 0);
      this.states.set(script.name, now);
      if (now.passing !== was.passing) this.changed(script.name, !now.passing);
      this.timers.set(script.name, this.clock.setTimer(() => this.run(script), script.interval * 1000));
    });
  }
}
