import type { CheckKind, HealthCheck } from '../model/health.js';
import { tcpChecker } from './tcp.js';
import { httpChecker } from './http.js';
import { udpChecker } from './udp.js';
import { dnsChecker } from './dns.js';
import { execChecker } from './exec.js';
import type { Checker } from './types.js';

/** The real checker for a check definition. */
export function createChecker(check: HealthCheck): Checker {
  switch (check.kind) {
    case 'tcp': return tcpChecker();
    case 'http': case 'https': return httpChecker(check);
    case 'udp': return udpChecker(check);
    case 'dns': return dnsChecker(check);
    case 'exec': return execChecker(check);
    default: { const never: never = check; throw new TypeError(`unknown check kind ${(never as { kind: CheckKind }).kind}`); }
  }
}
