import { execFile } from 'node:child_process';
import type { VrrpInstance } from '../model/vrrp.js';

/**
 * Notify hooks run on every transition: an exec (argv, never a shell: the instance name, new and
 * old state are appended as arguments, keepalived's notify order) and a webhook POST with a JSON
 * body. Both are bounded by the hook timeout; a failure is returned, never thrown.
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

export async function runNotify(notify: NonNullable<VrrpInstance['notify']>, payload: NotifyPayload): Promise<string[]> {
  const failures: string[] = [];
  const jobs: Promise<void>[] = [];
  if (notify.exec) {
    const [cmd, ...args] = notify.exec as [string, ...string[]];
    jobs.push(
      new Promise<void>((resolve) => {
        execFile(cmd, [...args, payload.instance, payload.state, payload.previous], { timeout: notify.timeoutMs, killSignal: 'SIGKILL' }, (err) => {
          if (err) failures.push(`exec ${cmd}: ${err.killed ? `killed after ${notify.timeoutMs} ms` : err.message}`);
          resolve();
        });
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
