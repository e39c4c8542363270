import { isIPv6 } from 'node:net';
import { udpSocket, type UdpSocket } from '../net/index.js';
import type { CheckTarget, CheckOutcome } from './types.js';
import { errorOutcome } from './types.js';

/**
 * Sends one datagram on a connected UDP socket and hands the first reply to `onReply`. A
 * connected socket receives the ICMP port unreachable as ECONNREFUSED, so a closed port fails
 * fast instead of waiting for the timeout.
 */
export function udpExchange(
  target: CheckTarget,
  payload: Buffer,
  signal: AbortSignal,
  onReply: (msg: Buffer) => CheckOutcome | undefined,
): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    let sock: UdpSocket | undefined;
    let settled = false;
    const done = (o: CheckOutcome) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      try { sock?.close(); } catch { /* already closed */ }
      resolve(o);
    };
    const onAbort = () => done(errorOutcome('udp', { code: 'aborted' }));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    sock = udpSocket(isIPv6(target.address) ? 'inet6' : 'inet');
    sock.on('error', (e) => done(errorOutcome('udp', e)));
    // A reply that does not belong to this exchange (onReply returns undefined) is ignored.
    sock.on('message', (msg) => { const o = onReply(msg); if (o) done(o); });
    sock.connect(target.port, target.address, () => {
      sock!.send(payload, (e) => { if (e) done(errorOutcome('udp send', e)); });
    });
  });
}

type UdpCheck = Extract<import('../model/health.js').HealthCheck, { kind: 'udp' }>;

/** UDP check (keepalived UDP_CHECK): send the payload, expect a reply (matching `expect` if set). */
export function udpChecker(check: UdpCheck): import('./types.js').Checker {
  const payload = check.payloadHex !== undefined ? Buffer.from(check.payloadHex, 'hex') : Buffer.from(check.payload ?? '', 'utf8');
  const re = check.expect !== undefined ? new RegExp(check.expect) : undefined;
  return {
    kind: 'udp',
    check: (target, signal) =>
      udpExchange(target, payload, signal, (msg) =>
        !re || re.test(msg.toString('latin1'))
          ? { up: true, reason: `reply of ${msg.length} bytes`, code: 'ok' }
          : { up: false, reason: `reply does not match /${check.expect}/`, code: 'reply_mismatch' },
      ),
  };
}
