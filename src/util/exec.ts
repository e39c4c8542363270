import { spawn } from 'node:child_process';

/**
 * The one way to run a program with a bound: argv as an array, never a shell. The program gets its
 * own process group (detached), so an abort (a timeout: `AbortSignal.timeout(ms)`) kills the group
 * with SIGKILL: children it started (a shell script's `sleep`, `curl`) go with it instead of
 * outliving the run.
 */

export interface ExecOptions {
  /** Aborting kills the run's process group; it ends as `aborted`. */
  signal?: AbortSignal;
  /** The program's whole environment; the caller's by default. */
  env?: NodeJS.ProcessEnv;
  /** Characters of stdout and of stderr kept (the rest is read and dropped); 0 (default) discards both. */
  outputLimit?: number;
}

export type ExecResult =
  | { readonly end: 'exit'; readonly code: number; readonly stdout: string; readonly stderr: string }
  | { readonly end: 'signal'; readonly signal: NodeJS.Signals; readonly stdout: string; readonly stderr: string }
  | { readonly end: 'aborted' }
  | { readonly end: 'spawn-error'; readonly error: NodeJS.ErrnoException };

/**
 * Runs `program args...` and settles with how it ended; never rejects. An abort settles at once,
 * without waiting for the killed group's pipes to close.
 */
export function execProgram(program: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const limit = options.outputLimit ?? 0;
  return new Promise((resolve) => {
    const child = spawn(program, args, {
      shell: false,
      detached: true,
      stdio: ['ignore', limit > 0 ? 'pipe' : 'ignore', limit > 0 ? 'pipe' : 'ignore'],
      ...(options.env ? { env: options.env } : {}),
    });
    const out = { stdout: '', stderr: '' };
    const keep = (k: 'stdout' | 'stderr') => (c: Buffer) => {
      if (out[k].length < limit) out[k] += c.toString('utf8', 0, Math.min(c.length, limit - out[k].length));
    };
    child.stdout?.on('data', keep('stdout'));
    child.stderr?.on('data', keep('stderr'));
    let settled = false;
    const done = (r: ExecResult) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const killGroup = () => {
      if (child.pid === undefined) return;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    };
    const onAbort = () => { killGroup(); done({ end: 'aborted' }); };
    child.once('error', (error: NodeJS.ErrnoException) => done({ end: 'spawn-error', error }));
    child.once('close', (code, signal) => {
      if (signal) done({ end: 'signal', signal, ...out });
      else done({ end: 'exit', code: code ?? 0, ...out });
    });
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
