import { spawn } from 'node:child_process';
import type { HealthCheck } from '../model/health.js';
import { type Checker, type CheckOutcome, type CheckTarget, down, up } from './types.js';

type ExecCheck = Extract<HealthCheck, { kind: 'exec' }>;

/** Bytes of stdout and of stderr kept from one run (the rest is read and dropped). */
export const EXEC_OUTPUT_LIMIT = 4096;

/**
 * Exec check (keepalived MISC_CHECK): runs `program args...` directly (no shell; "{address}" and
 * "{port}" in args are replaced literally), with FULCRUM_CHECK_ADDRESS/PORT in its environment.
 * Exit 0 = up, 1 = down; any other exit code, a signal or a spawn error is a failure reported as
 * a check error ("exit 2: <first stderr line>"). On timeout its whole process group is killed.
 */
export function execChecker(check: ExecCheck): Checker {
  return {
    kind: 'exec',
    check(target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
      return new Promise((resolve) => {
        const args = check.args.map((a) => a.replaceAll('{address}', target.address).replaceAll('{port}', String(target.port)));
        const child = spawn(check.program, args, {
          shell: false,
          detached: true, // own process group, so a timeout kills its children too
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', FULCRUM_CHECK_ADDRESS: target.address, FULCRUM_CHECK_PORT: String(target.port) },
        });
        const out = { stdout: '', stderr: '' };
        const keep = (k: 'stdout' | 'stderr') => (c: Buffer) => {
          if (out[k].length < EXEC_OUTPUT_LIMIT) out[k] += c.toString('utf8', 0, Math.min(c.length, EXEC_OUTPUT_LIMIT - out[k].length));
        };
        child.stdout!.on('data', keep('stdout'));
        child.stderr!.on('data', keep('stderr'));
        let settled = false;
        const done = (o: CheckOutcome) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          resolve(o);
        };
        const killGroup = () => {
          if (child.pid === undefined) return;
          try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
        };
        const onAbort = () => { killGroup(); done(down('aborted', 'aborted')); };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        child.once('error', (e: NodeJS.ErrnoException) => done(down(`exec ${e.code ?? e.message}`, e.code ?? 'spawn')));
        child.once('close', (code, sig) => {
          const line = (out.stdout.trim() || out.stderr.trim()).split('\n')[0]?.slice(0, 200) ?? '';
          const detail = line ? `: ${line}` : '';
          if (code === 0) return done(up(`exit 0${detail}`));
          if (code === 1) return done(down(`exit 1${detail}`, 'exit_1'));
          if (sig) return done(down(`killed by ${sig}${detail}`, 'signal'));
          const err = (out.stderr.trim() || out.stdout.trim()).split('\n')[0]?.slice(0, 200) ?? '';
          done(down(`exit ${code} (check error)${err ? `: ${err}` : ''}`, 'exit_other'));
        });
      });
    },
  };
}
