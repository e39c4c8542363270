import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { connect, isIP } from 'node:net';
import type { HealthCheck } from '../model/health.js';
import { type Checker, type CheckOutcome, type CheckTarget, down, errorOutcome, up } from './types.js';

type HttpCheck = Extract<HealthCheck, { kind: 'http' | 'https' }>;

/** At most this much of a body is read (for bodyRegex and bodyDigest). */
export const MAX_BODY = 64 * 1024;

/** Parses the accepted status set ([200, "300-399"]) into a predicate. */
export function statusMatcher(items: ReadonlyArray<number | string>): (status: number) => boolean {
  const ranges = items.map((i) => {
    if (typeof i === 'number') return [i, i] as const;
    const [a, b] = i.split('-');
    return [Number(a), Number(b ?? a)] as const;
  });
  return (s) => ranges.some(([a, b]) => s >= a && s <= b);
}

/**
 * HTTP(S) check (keepalived HTTP_GET / SSL_GET): a fresh connection per probe (no keep-alive, so
 * a probe sees what a new client would), the status must be in the accepted set, and the body must
 * match the regex or digest when one is given. TLS: SNI from `tls.sni` (or a `host` that is a
 * name); the certificate is verified only with `tls.verify`, against `tls.ca` when given.
 */
export function httpChecker(check: HttpCheck): Checker {
  const accepts = statusMatcher(check.status);
  const bodyRe = check.bodyRegex !== undefined ? new RegExp(check.bodyRegex) : undefined;
  const needBody = bodyRe !== undefined || check.bodyDigest !== undefined;
  let ca: { pem?: Buffer; error?: string } | undefined;
  const loadCa = () => {
    // Read once per checker (a config change makes a new checker); a missing file fails every probe, loudly.
    if (check.kind !== 'https' || check.tls.ca === undefined) return {};
    if (!ca) {
      try { ca = { pem: readFileSync(check.tls.ca) }; } catch (e) { ca = { error: `CA file ${check.tls.ca}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }; }
    }
    return ca;
  };

  // Plain HTTP that only judges the status: one socket, one request line, read up to the status
  // line (node's http client costs about twice as much CPU per probe; see scripts/bench/health.ts).
  if (check.kind === 'http' && !needBody) return { kind: 'http', check: (target, signal) => statusOnly(check, accepts, target, signal) };

  return {
    kind: check.kind,
    check(target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
      return new Promise((resolve) => {
        const tlsOpts: Record<string, unknown> = {};
        if (check.kind === 'https') {
          const c = loadCa();
          if (c.error) return resolve(down(c.error, 'ca_file'));
          const sni = check.tls.sni ?? (check.host && isIP(check.host) === 0 ? check.host.replace(/:\d+$/, '') : undefined);
          if (sni) tlsOpts.servername = sni;
          tlsOpts.rejectUnauthorized = check.tls.verify;
          if (c.pem) tlsOpts.ca = c.pem;
        }
        const req = (check.kind === 'https' ? httpsRequest : httpRequest)({
          host: target.address,
          port: target.port,
          method: check.method,
          path: check.path,
          agent: false,
          headers: { host: check.host ?? (isIP(target.address) === 6 ? `[${target.address}]` : target.address), 'user-agent': 'fulcrum-health', connection: 'close' },
          signal,
          ...tlsOpts,
        });
        let settled = false;
        const done = (o: CheckOutcome) => {
          if (settled) return;
          settled = true;
          req.destroy();
          resolve(o);
        };
        req.once('error', (e: NodeJS.ErrnoException) => {
          if (e.name === 'AbortError') return done(down('aborted', 'aborted'));
          // TLS verification failures carry codes such as DEPTH_ZERO_SELF_SIGNED_CERT.
          const tls = check.kind === 'https' && typeof e.code === 'string' && (/^ERR_(TLS|SSL)/.test(e.code) || !e.code.startsWith('E'));
          done(errorOutcome(tls ? 'tls' : 'connect', e));
        });
        req.once('response', (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          if (!accepts(status)) { res.resume(); return done(down(`HTTP ${status}`, 'http_status')); }
          if (!needBody) { res.resume(); return done(up(`HTTP ${status}`)); }
          const chunks: Buffer[] = [];
          let size = 0;
          const finish = () => {
            const body = Buffer.concat(chunks);
            if (bodyRe && !bodyRe.test(body.toString('utf8'))) return done(down(`HTTP ${status}, body does not match /${check.bodyRegex}/`, 'body_mismatch'));
            if (check.bodyDigest) {
              const got = createHash(check.bodyDigest.algorithm).update(body).digest('hex');
              if (got !== check.bodyDigest.hex) return done(down(`HTTP ${status}, body ${check.bodyDigest.algorithm} ${got.slice(0, 12)}... differs`, 'body_digest'));
            }
            done(up(`HTTP ${status}`));
          };
          res.on('data', (c: Buffer) => {
            const room = MAX_BODY - size;
            if (room > 0) { chunks.push(c.subarray(0, room)); size += Math.min(room, c.length); }
            // The regex may already match on a truncated body; the digest of a bigger body cannot be right.
            if (size >= MAX_BODY) finish();
          });
          res.once('end', finish);
          res.once('error', (e) => done(errorOutcome('read', e)));
        });
        req.end();
      });
    },
  };
}

const hostHeader = (check: HttpCheck, target: CheckTarget) => check.host ?? (isIP(target.address) === 6 ? `[${target.address}]` : target.address);

/** RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. */
const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: |\r\n)/;

function statusOnly(check: HttpCheck, accepts: (s: number) => boolean, target: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    const sock = connect({ host: target.address, port: target.port, noDelay: true });
    let buf = '';
    let settled = false;
    const done = (o: CheckOutcome) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(o);
    };
    const onAbort = () => done(down('aborted', 'aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => {
      sock.write(`${check.method} ${check.path} HTTP/1.1\r\nHost: ${hostHeader(check, target)}\r\nUser-Agent: fulcrum-health\r\nConnection: close\r\n\r\n`);
    });
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (;;) {
        if (buf.indexOf('\r\n') < 0) {
          if (buf.length > 8192) done(down('HTTP status line too long', 'http_malformed'));
          return;
        }
        const m = STATUS_LINE.exec(buf);
        if (!m) return done(down(`HTTP malformed status line: ${JSON.stringify(buf.slice(0, 40))}`, 'http_malformed'));
        const status = Number(m[1]);
        if (status >= 200) return done(accepts(status) ? up(`HTTP ${status}`) : down(`HTTP ${status}`, 'http_status'));
        // RFC 9110 15.2: interim 1xx responses precede the final one; skip each whole header block.
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        buf = buf.slice(end + 4);
        if (buf === '') return;
      }
    });
    sock.once('end', () => done(down('HTTP connection closed before a status line', 'http_no_response')));
    sock.once('error', (e) => done(errorOutcome('connect', e)));
  });
}
