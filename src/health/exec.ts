import type { HealthCheck } from '../model/health.js';
import { execProgram } from '../util/exec.js';
import { type Checker, type CheckOutcome, type CheckTarget, down, up } from './types.js';

type ExecCheck = Extract<HealthCheck, { kind: 'exec' }>;

/** Characters of stdout and of stderr kept from one run (the rest is read and dropped). */
export const EXEC_OUTPUT_LIMIT = 4096;

/** ": <first line of `first`, else of `second`>", or nothing when both are empty. */
function detail(first: string, second: string): string {
  const line = (first.trim() || second.trim()).split('\n')[0]?.slice(0, 200) ?? '';
  return line ? `: ${line}` : '';
}

/**
 * Exec check (keepalived MISC_CHECK): runs `program args...` directly (no shell; "{address}" and
 * "{port}" in args are replaced literally), with FULCRUM_CHECK_ADDRESS/PORT in its environment.
 * Exit 0 = up, 1 = down; any other exit code, a signal or a spawn error is a failure reported as
 * a check error ("exit 2: <first stderr line>"). On abort its whole process group is killed.
 */
export function execChecker(check: ExecCheck): Checker {
  return {
    kind: 'exec',
    async check(target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
      const args = check.args.map((a) => a.replaceAll('{address}', target.address).replaceAll('{port}', String(target.port)));
      const r = await execProgram(check.program, args, {
        signal,
        outputLimit: EXEC_OUTPUT_LIMIT,
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', FULCRUM_CHECK_ADDRESS: target.address, FULCRUM_CHECK_PORT: String(target.port) },
      });
      switch (r.end) {
        case 'aborted':
          return down('aborted', 'aborted');
        case 'spawn-error':
          return down(`exec ${r.error.code ?? r.error.message}`, r.error.code ?? 'spawn');
        case 'signal':
          return down(`killed by ${r.signal}${detail(r.stdout, r.stderr)}`, 'signal');
        case 'exit':
          if (r.code === 0) return up(`exit 0${detail(r.stdout, r.stderr)}`);
          if (r.code === 1) return down(`exit 1${detail(r.stdout, r.stderr)}`, 'exit_1');
          return down(`exit ${r.code} (check error)${detail(r.stderr, r.stdout)}`, 'exit_other');
      }
    },
  };
}
