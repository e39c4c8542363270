import type { VrrpInstance } from '../model/vrrp.js';
import { execProgram, type ExecResult } from '../util/exec.js';

/**
 * Notify hooks run on every transition: an exec (argv, never a shell: the instance name, new and
 * old state are appended as arguments, keepalived's notify order) and a webhook POST with a JSON
 * body. Both are bounded by the hook timeout (the exec's whole process group is killed); a failure
 * is returned, never thrown.
 */

export interface NotifyPayload {
  instance: string;
  vrid: number;
  interface: string;
  state: string;
  previous: string;
  priority: number;
  master: string | undefined;
  reason: string;
  time: string;
}

function execFailure(r: ExecResult, timeoutMs: number): string | undefined {
  switch (r.end) {
    case 'exit': return r.code === 0 ? undefined : `exit ${r.code}`;
    case 'signal': return `killed by ${r.signal}`;
    case 'aborted': return `killed after ${timeoutMs} ms`;
    case 'spawn-error': return r.error.message;
  }
}

export async function runNotify(notify: NonNullable<VrrpInstance['notify']>, payload: NotifyPayload): Promise<string[]> {
  const failures: string[] = [];
  const jobs: Promise<void>[] = [];
  if (notify.exec) {
    const [cmd, ...args] = notify.exec as [string, ...string[]];
    jobs.push(
      execProgram(cmd, [...args, payload.instance, payload.state, payload.previous], { signal: AbortSignal.timeout(notify.timeoutMs) }).then((r) => {
        const f = execFailure(r, notify.timeoutMs);
        if (f !== undefined) failures.push(`exec ${cmd}: ${f}`);
      }),
    );
  }
  if (notify.webhook) {
    const url = notify.webhook;
    jobs.push(
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(notify.timeoutMs),
      }).then(
        async (res) => {
          await res.arrayBuffer().catch(() => undefined);
          if (!res.ok) failures.push(`webhook ${url}: HTTP ${res.status}`);
        },
        (e: Error) => { failures.push(`webhook ${url}: ${e.name === 'TimeoutError' ? `no answer in ${notify.timeoutMs} ms` : e.message}`); },
      ),
    );
  }
  await Promise.all(jobs);
  return failures;
}
