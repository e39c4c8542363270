import { connect } from 'node:net';
import { type Checker, type CheckOutcome, type CheckTarget, errorOutcome, up } from './types.js';

/** TCP connect check (keepalived TCP_CHECK): up when the three-way handshake completes. */
export function tcpChecker(): Checker {
  return {
    kind: 'tcp',
    check(target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
      return new Promise((resolve) => {
        const sock = connect({ host: target.address, port: target.port, noDelay: true });
        const done = (o: CheckOutcome) => {
          signal.removeEventListener('abort', onAbort);
          sock.destroy();
          resolve(o);
        };
        const onAbort = () => done(errorOutcome('connect', { code: 'aborted' }));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        sock.once('connect', () => done(up('connected')));
        sock.once('error', (e) => done(errorOutcome('connect', e)));
      });
    },
  };
}
