import { canonicalIp, familyOf } from '../../model/index.js';
import { DNS_TYPES } from '../../model/health.js';
import type { Statement } from './parse.js';
import { argvOf, flag, num, Reporter, type Obj } from './words.js';

/** keepalived's checkers (TCP_CHECK, HTTP_GET, SSL_GET, DNS_CHECK, UDP_CHECK, MISC_CHECK) -> a service's `health`. */

export interface CheckTimes { interval?: number; timeout?: number; retry?: number; delayBeforeRetry?: number; alpha?: boolean; inhibit?: boolean }

/** Timer keywords valid at virtual_server, real_server and checker level (the inner one wins). */
export function readTimes(st: Statement, t: CheckTimes, r: Reporter): boolean {
  switch (st.keyword) {
    case 'delay_loop': { const n = num(st, r); if (n !== undefined) t.interval = n; return true; }
    case 'connect_timeout': { const n = num(st, r); if (n !== undefined) t.timeout = n; return true; }
    case 'retry': case 'nb_get_retry': { const n = num(st, r, 0, { int: true }); if (n !== undefined) t.retry = n; return true; }
    case 'delay_before_retry': { const n = num(st, r); if (n !== undefined) t.delayBeforeRetry = n; return true; }
    case 'alpha': t.alpha = flag(st, r); return true;
    case 'inhibit_on_failure': t.inhibit = flag(st, r); return true;
    default: return false;
  }
}

export interface CheckResult { check: Obj; times: CheckTimes; address?: string; port?: number; at: Statement; kind: string }

function hexBytes(text: string): string {
  // keepalived's HEX_STR is free format: each space-separated word is hex digits, an odd one padded.
  return text.split(/\s+/).filter(Boolean).map((w) => (w.length % 2 ? `0${w}` : w)).join('');
}

export function translateChecker(st: Statement, inherited: CheckTimes, host: string | undefined, r: Reporter): CheckResult | undefined {
  const times: CheckTimes = { ...inherited };
  let address: string | undefined, port: number | undefined;
  const check: Obj = {};
  const kinds: Record<string, string> = { TCP_CHECK: 'tcp', HTTP_GET: 'http', SSL_GET: 'https', DNS_CHECK: 'dns', UDP_CHECK: 'udp', MISC_CHECK: 'exec' };
  const kind = kinds[st.keyword]!;
  check.kind = kind;
  let urlSeen = false, sni = false, vhost = host;
  let dnsName = '.', dnsType = 'SOA';
  for (const s of st.block ?? []) {
    if (readTimes(s, times, r)) continue;
    switch (s.keyword) {
      case 'connect_ip': if (familyOf(s.args[0] ?? '')) address = canonicalIp(s.args[0]!); else r.skip(s, `connect_ip ${s.args[0] ?? ''}: not an address`); continue;
      case 'connect_port': { const n = num(s, r, 0, { int: true }); if (n !== undefined) port = n; continue; }
      case 'warmup': r.note(s, 'warmup: Fulcrum spreads checks by health.jitter (10% of the interval by default), not by a start-up delay'); continue;
      case 'log_all_failures': r.skip(s, 'log_all_failures: Fulcrum logs every health transition'); continue;
    }
    if ((kind === 'http' || kind === 'https') && s.keyword === 'url') {
      if (urlSeen) { r.skip(s, 'url: a Fulcrum check tests one URL; only the first url block is translated'); continue; }
      urlSeen = true;
      const status: string[] = [];
      for (const u of s.block ?? []) {
        switch (u.keyword) {
          case 'path': check.path = u.args[0]?.startsWith('/') ? u.args[0] : `/${u.args[0] ?? ''}`; break;
          case 'digest': check.bodyDigest = { algorithm: 'md5', hex: u.args[0] ?? '' }; break;
          case 'status_code': status.push(...u.args); break;
          case 'virtualhost': vhost = u.args[0]; break;
          case 'regex': check.bodyRegex = u.args[0]; r.note(u, 'regex: Fulcrum matches a JavaScript regular expression against the first 64 KiB of the body (keepalived: PCRE2)'); break;
          default: r.skip(u, `url ${u.keyword}: no equivalent in a Fulcrum http check`);
        }
      }
      check.status = status.length > 0 ? status.map((x) => (/^\d+$/.test(x) ? Number(x) : x)) : ['200-299'];
      continue;
    }
    if (kind === 'http' || kind === 'https') {
      if (s.keyword === 'virtualhost') { vhost = s.args[0]; continue; }
      if (kind === 'https' && s.keyword === 'enable_sni') { sni = flag(s, r); continue; }
      if (s.keyword === 'http_protocol') { r.note(s, 'http_protocol: Fulcrum sends HTTP/1.1 with Connection: close'); continue; }
      if (s.keyword === 'fast_recovery') { r.skip(s, 'fast_recovery: a Fulcrum check tests one URL each interval'); continue; }
    }
    if (kind === 'dns') {
      if (s.keyword === 'name') { dnsName = s.args[0] ?? '.'; continue; }
      if (s.keyword === 'type') { dnsType = (s.args[0] ?? '').toUpperCase(); continue; }
    }
    if (kind === 'udp') {
      if (s.keyword === 'payload') { check.payloadHex = hexBytes(s.args.join(' ')); continue; }
      if (s.keyword === 'require_reply') {
        if (s.args.length > 0) {
          const hex = s.args.join(' ').split(/\s+/).filter(Boolean).map((w) => (w.length % 2 ? `0${w}` : w)).join('');
          if (/x/i.test(hex)) { r.skip(s, 'require_reply with X nibbles: not translated (a reply of any content passes)'); continue; }
          check.expect = `^${hex.replace(/../g, (b) => `\\x${b}`)}`;
          r.note(s, 'require_reply: Fulcrum requires the reply to start with these bytes (keepalived compares up to the shorter length)');
        }
        continue;
      }
      if (s.keyword === 'min_reply_length' || s.keyword === 'max_reply_length') { r.skip(s, `${s.keyword}: no reply length bounds in a Fulcrum udp check`); continue; }
    }
    if (kind === 'exec') {
      if (s.keyword === 'misc_path') {
        const argv = argvOf(s, 'program', r);
        if (argv) { check.program = argv[0]; check.args = argv.slice(1); }
        continue;
      }
      if (s.keyword === 'misc_timeout') { const n = num(s, r); if (n !== undefined) times.timeout = n; continue; }
      if (s.keyword === 'misc_dynamic') { r.skip(s, 'misc_dynamic: Fulcrum takes the exit status as pass/fail; it never changes a weight from it'); continue; }
      if (s.keyword === 'user') { r.skip(s, 'user: Fulcrum runs checks as the agent\'s user'); continue; }
    }
    r.skip(s, `${s.keyword}: not a ${st.keyword} option Fulcrum has`);
  }
  if (kind === 'http' || kind === 'https') {
    if (!urlSeen) check.status = ['200-299'];
    if (vhost !== undefined) check.host = vhost;
    if (kind === 'https') {
      check.tls = { verify: false, ...(sni && vhost ? { sni: vhost } : {}) };
      if (sni && !vhost) r.note(st, 'enable_sni without a virtualhost: Fulcrum sends no SNI for an address');
    }
  }
  if (kind === 'dns') {
    if (!(DNS_TYPES as readonly string[]).includes(dnsType)) { r.skip(st, `DNS_CHECK type ${dnsType}: not a query type Fulcrum has`); return undefined; }
    check.name = dnsName;
    check.type = dnsType;
  }
  if (kind === 'udp' && st.block?.every((s) => s.keyword !== 'require_reply'))
    r.note(st, 'UDP_CHECK without require_reply: keepalived passes unless an ICMP error comes back; Fulcrum needs a reply');
  if (kind === 'exec' && check.program === undefined) { r.skip(st, 'MISC_CHECK without misc_path'); return undefined; }
  return { check, times, ...(address ? { address } : {}), ...(port ? { port } : {}), at: st, kind: st.keyword };
}

export const CHECKERS = new Set(['TCP_CHECK', 'HTTP_GET', 'SSL_GET', 'DNS_CHECK', 'UDP_CHECK', 'MISC_CHECK']);
export const UNSUPPORTED_CHECKERS: Record<string, string> = {
  SMTP_CHECK: 'Fulcrum has no SMTP check (a tcp check to port 25 is the nearest)',
  PING_CHECK: 'Fulcrum has no ICMP check',
  BFD_CHECK: 'Fulcrum has no BFD',
  FILE_CHECK: 'Fulcrum has no file checker (an exec check can read the file)',
};

/** keepalived's retry count default by checker (keepalived.conf(5)). */
const RETRY_DEFAULT: Record<string, number> = { DNS_CHECK: 3, MISC_CHECK: 0 };

export function healthOf(c: CheckResult, r: Reporter): Obj {
  const t = c.times;
  const interval = t.interval ?? 60;
  let timeout = t.timeout ?? 5;
  if (timeout > interval) {
    r.note(c.at, `connect_timeout ${timeout}s exceeds delay_loop ${interval}s: Fulcrum's timeout is set to the interval`);
    timeout = interval;
  }
  const retry = t.retry ?? RETRY_DEFAULT[c.kind] ?? 1;
  if (retry > 99) r.skip(c.at, `retry ${retry}: at most 99 in Fulcrum (fall 100)`);
  if (t.delayBeforeRetry !== undefined)
    r.note(c.at, `delay_before_retry ${t.delayBeforeRetry}s: Fulcrum re-checks a failing backend at the normal interval; retry ${retry} becomes fall ${Math.min(retry + 1, 100)}`);
  return {
    check: c.check,
    interval,
    timeout,
    rise: 1,
    fall: Math.min(retry + 1, 100),
    ...(c.address ? { address: c.address } : {}),
    ...(c.port ? { port: c.port } : {}),
    initialState: t.alpha ? 'down' : 'up',
    inhibitOnFailure: t.inhibit ?? false,
  };
}
