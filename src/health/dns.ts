import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import type { HealthCheck } from '../model/health.js';
import { canonicalIp } from '../model/net.js';
import { decodeResponse, encodeQuery, rcodeName, DNS_TYPE_CODES, type DnsResponse } from './dns-codec.js';
import { udpExchange } from './udp.js';
import { type Checker, type CheckOutcome, down, up } from './types.js';

type DnsCheck = Extract<HealthCheck, { kind: 'dns' }>;

const norm = (s: string) => {
  const t = s.toLowerCase().replace(/\.$/, '');
  return isIP(t) ? canonicalIp(t) : t;
};

/** Judges a decoded reply: NOERROR, at least one answer of the type, and every expected answer present. */
export function judgeDnsResponse(check: DnsCheck, res: DnsResponse): CheckOutcome {
  if (res.rcode !== 0) return down(`DNS ${rcodeName(res.rcode)}`, `dns_${rcodeName(res.rcode).toLowerCase()}`);
  if (res.truncated) return down('DNS reply truncated', 'dns_truncated');
  const got = res.answers.filter((a) => a.type === check.type).map((a) => norm(a.data));
  if (got.length === 0) return down(`DNS no ${check.type} answer for ${check.name}`, 'dns_no_answer');
  const missing = (check.expect ?? []).filter((e) => !got.includes(norm(e)));
  if (missing.length) return down(`DNS ${check.type} ${got.join(',')} lacks ${missing.join(',')}`, 'dns_mismatch');
  return up(`DNS ${check.type} ${got.join(',')}`);
}

/** DNS check (keepalived DNS_CHECK): one query over UDP to the target. */
export function dnsChecker(check: DnsCheck): Checker {
  return {
    kind: 'dns',
    check(target, signal) {
      const id = randomInt(0, 0x10000);
      const query = encodeQuery({ id, name: check.name, type: check.type });
      return udpExchange(target, query, signal, (msg) => {
        let res: DnsResponse;
        try { res = decodeResponse(msg); } catch (e) { return down(`DNS bad reply: ${(e as Error).message}`, 'dns_malformed'); }
        // RFC 5452 9.1: a reply must match the query's id and question; anything else is ignored.
        if (!res.isResponse || res.id !== id) return undefined;
        const q = res.questions[0];
        if (q && (q.type !== DNS_TYPE_CODES[check.type] || norm(q.name) !== norm(check.name))) return undefined;
        return judgeDnsResponse(check, res);
      });
    },
  };
}
