import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthManager } from '../../src/health/index.js';
import { createChecker } from '../../src/health/checkers.js';
import { EventBus, type FulcrumEvent } from '../../src/events.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { parseService, type Service } from '../../src/model/index.js';
import { HealthSchema } from '../../src/model/health.js';
import {
  DNSMASQ, dnsmasqServer, freeUdpPort, haveOpenssl, httpServer, httpsServer, makePki, tcpServer, udpEchoServer, type RestartableServer,
} from '../helpers/servers.js';

/**
 * Real checks against real servers on loopback: each server is checked up, stopped (the backend
 * must fall after exactly `fall` failures), restarted (it must rise after exactly `rise` passes).
 */

const RISE = 2, FALL = 2;

async function waitFor<T>(what: string, fn: () => T | undefined, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function fallAndRise(health: Record<string, unknown>, server: RestartableServer, port?: number) {
  await server.start();
  const svc: Service = parseService({
    name: 'real', address: '10.0.0.1', port: 80,
    backends: [{ address: '127.0.0.1', port: port ?? server.port }],
    health: { interval: 0.2, timeout: 0.15, jitter: 0.02, rise: RISE, fall: FALL, ...health },
  });
  const events = new EventBus();
  const seen: FulcrumEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const mgr = new HealthManager({ logger: silentLogger(), events, metrics: createMetricsRegistry({ defaultMetrics: false }) });
  const backend = () => mgr.status()[0]!.backends[0]!;
  try {
    mgr.update([svc]);
    assert.equal(mgr.effectiveServices([svc])[0]!.backends[0]!.weight, 0, 'warm-up: no traffic before the first checks');
    const rose = await waitFor('first rise', () => seen.find((e) => e.type === 'backend-up'));
    assert.equal((rose.data as { successes: number }).successes, RISE);
    assert.equal(mgr.effectiveServices([svc])[0]!.backends[0]!.weight, 1);
    const upReason = backend().lastResult!.reason;

    await server.stop();
    const fell = await waitFor('fall', () => seen.find((e) => e.type === 'backend-down'));
    assert.equal((fell.data as { failures: number }).failures, FALL, 'fell after exactly fall failures');
    assert.equal(mgr.effectiveServices([svc])[0]!.backends[0]!.weight, 0);
    const downReason = backend().lastResult!.reason;

    await server.start();
    const rose2 = await waitFor('rise after restart', () => seen.filter((e) => e.type === 'backend-up')[1]);
    assert.equal((rose2.data as { successes: number }).successes, RISE);
    assert.equal(backend().state, 'up');
    return { upReason, downReason };
  } finally {
    mgr.close();
    await server.stop();
  }
}

/** One probe with the real checker, outside the manager. */
async function probeOnce(health: Record<string, unknown>, port: number, timeoutMs = 1000) {
  const h = HealthSchema.parse({ ...health });
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), timeoutMs);
  try { return await createChecker(h.check).check({ address: '127.0.0.1', port }, ctl.signal); } finally { clearTimeout(t); }
}

test('tcp: a listener up, stopped (connect ECONNREFUSED), restarted', async () => {
  const r = await fallAndRise({ check: { kind: 'tcp' } }, tcpServer());
  assert.equal(r.upReason, 'connected');
  assert.equal(r.downReason, 'connect ECONNREFUSED');
});

test('http: status set, body regex and digest; HTTP 503 is a failure', async () => {
  let status = 200;
  const server = httpServer((req, res) => { res.statusCode = status; res.end(req.url === '/healthz' ? 'all good' : 'nope'); });
  const r = await fallAndRise({ check: { kind: 'http', path: '/healthz', bodyRegex: 'good$' } }, server);
  assert.equal(r.upReason, 'HTTP 200');
  assert.equal(r.downReason, 'connect ECONNREFUSED');
  await server.start();
  try {
    assert.deepEqual(await probeOnce({ check: { kind: 'http', path: '/other', bodyRegex: 'good' } }, server.port), { up: false, reason: 'HTTP 200, body does not match /good/', code: 'body_mismatch' });
    const sha = createHash('sha256').update('all good').digest('hex');
    assert.equal((await probeOnce({ check: { kind: 'http', path: '/healthz', bodyDigest: { hex: sha } } }, server.port)).up, true);
    assert.equal((await probeOnce({ check: { kind: 'http', path: '/other', bodyDigest: { hex: sha } } }, server.port)).code, 'body_digest');
    status = 503;
    assert.deepEqual(await probeOnce({ check: { kind: 'http' } }, server.port), { up: false, reason: 'HTTP 503', code: 'http_status' });
    assert.equal((await probeOnce({ check: { kind: 'http', status: ['500-503'] } }, server.port)).up, true);
  } finally { await server.stop(); }
});

test('https: verified against a self-signed CA with SNI; unverifiable or wrong name fails', { skip: haveOpenssl() ? false : 'needs the openssl CLI (apt openssl)' }, async () => {
  const pki = makePki('backend.test');
  let sni: string | undefined;
  const server = httpsServer(pki, (req, res) => { sni = (req.socket as TLSSocket).servername || undefined; res.end('ok'); });
  try {
    const tls = { sni: 'backend.test', verify: true, ca: pki.caFile };
    const r = await fallAndRise({ check: { kind: 'https', host: 'backend.test', tls } }, server);
    assert.equal(r.upReason, 'HTTP 200');
    assert.equal(sni, 'backend.test', 'the server saw our SNI');
    await server.start();
    const noCa = await probeOnce({ check: { kind: 'https', tls: { verify: true } } }, server.port);
    assert.equal(noCa.up, false);
    assert.match(noCa.reason, /^tls (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/);
    const wrongName = await probeOnce({ check: { kind: 'https', tls: { sni: 'other.test', verify: true, ca: pki.caFile } } }, server.port);
    assert.deepEqual([wrongName.up, wrongName.reason], [false, 'tls ERR_TLS_CERT_ALTNAME_INVALID']);
    assert.equal((await probeOnce({ check: { kind: 'https', tls: { verify: false } } }, server.port)).up, true, 'without verify any certificate passes');
    const missing = await probeOnce({ check: { kind: 'https', tls: { verify: true, ca: join(pki.dir, 'nope.pem') } } }, server.port);
    assert.match(missing.reason, /^CA file .*nope\.pem: ENOENT$/);
  } finally { await server.stop(); pki.cleanup(); }
});

test('udp: an echo server up, stopped (ICMP unreachable -> udp ECONNREFUSED), restarted; reply match', async () => {
  const server = udpEchoServer();
  const r = await fallAndRise({ check: { kind: 'udp', payload: 'ping', expect: '^echo:ping$' } }, server);
  assert.equal(r.upReason, 'reply of 9 bytes');
  assert.equal(r.downReason, 'udp ECONNREFUSED');
  await server.start();
  try {
    assert.deepEqual(await probeOnce({ check: { kind: 'udp', payload: 'ping', expect: 'pong' } }, server.port), { up: false, reason: 'reply does not match /pong/', code: 'reply_mismatch' });
  } finally { await server.stop(); }
});

test('dns: dnsmasq answering A, stopped, restarted; wrong answer and NXDOMAIN fail', { skip: existsSync(DNSMASQ) ? false : 'needs dnsmasq (apt dnsmasq-base)' }, async () => {
  const port = await freeUdpPort();
  const server = dnsmasqServer({ 'health.test': '10.1.2.3' }, port);
  const r = await fallAndRise({ check: { kind: 'dns', name: 'health.test', type: 'A', expect: ['10.1.2.3'] } }, server, port);
  assert.equal(r.upReason, 'DNS A 10.1.2.3');
  assert.equal(r.downReason, 'udp ECONNREFUSED');
  await server.start();
  try {
    assert.deepEqual(await probeOnce({ check: { kind: 'dns', name: 'health.test', expect: ['10.9.9.9'] } }, port), { up: false, reason: 'DNS A 10.1.2.3 lacks 10.9.9.9', code: 'dns_mismatch' });
    const nx = await probeOnce({ check: { kind: 'dns', name: 'missing.invalid' } }, port);
    assert.equal(nx.up, false);
    assert.match(nx.reason, /^DNS (NXDOMAIN|REFUSED)$/);
  } finally { await server.stop(); }
});

test('exec: exit 0 up, exit 1 down, other codes and timeouts are check errors; no shell', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-exec-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const flag = join(dir, 'healthy');
  const script = join(dir, 'check.sh');
  writeFileSync(script, '#!/bin/sh\n# $1: flag file, $2 $3: target\necho "checked $2:$3"\n[ -e "$1" ] && exit 0\nexit 1\n');
  chmodSync(script, 0o755);
  // The "server" is the flag file: present = healthy.
  const server: RestartableServer = { port: 7, start: async () => writeFileSync(flag, ''), stop: async () => { if (existsSync(flag)) unlinkSync(flag); } };
  const r = await fallAndRise({ check: { kind: 'exec', program: script, args: [flag, '{address}', '{port}'] } }, server);
  assert.equal(r.upReason, 'exit 0: checked 127.0.0.1:7');
  assert.equal(r.downReason, 'exit 1: checked 127.0.0.1:7');
  const other = join(dir, 'other.sh');
  const canary = join(dir, 'pwned');
  writeFileSync(other, '#!/bin/sh\necho "broken: $1" >&2\nexit 3\n');
  chmodSync(other, 0o755);
  const arg = `$(touch ${canary}); x`;
  assert.deepEqual(await probeOnce({ check: { kind: 'exec', program: other, args: [arg] } }, 7), { up: false, reason: `exit 3 (check error): broken: ${arg}`, code: 'exit_other' });
  assert.equal(existsSync(canary), false, 'arguments never reach a shell');
  const slow = join(dir, 'slow.sh');
  writeFileSync(slow, '#!/bin/sh\nsleep 30\n');
  chmodSync(slow, 0o755);
  const started = Date.now();
  assert.equal((await probeOnce({ check: { kind: 'exec', program: slow } }, 7, 200)).code, 'aborted');
  assert.ok(Date.now() - started < 5000, 'killed on abort, not waited for');
  assert.equal((await probeOnce({ check: { kind: 'exec', program: join(dir, 'missing') } }, 7)).reason, 'exec ENOENT');
  const chatty = join(dir, 'chatty.sh');
  writeFileSync(chatty, '#!/bin/sh\nhead -c 1000000 /dev/zero | tr "\\0" x\nexit 0\n');
  chmodSync(chatty, 0o755);
  const c = await probeOnce({ check: { kind: 'exec', program: chatty } }, 7, 5000);
  assert.equal(c.up, true);
  assert.ok(c.reason.length < 300, 'output bounded');
});

test('http status-only checks: a plain GET with Host, interim 1xx skipped, garbage and early close fail', async () => {
  const { createServer } = await import('node:net');
  let reply = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n';
  let seen = '';
  const server = createServer((c) => {
    let req = '';
    c.on('data', (d) => { req += d.toString('latin1'); if (req.includes('\r\n\r\n')) { seen = req; if (reply) c.end(reply); else c.end(); } });
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    const ok = await probeOnce({ check: { kind: 'http', method: 'HEAD', path: '/ready?x=1', host: 'app.test', status: ['200-299'] } }, port);
    assert.deepEqual(ok, { up: true, reason: 'HTTP 204', code: 'ok' });
    assert.match(seen, /^HEAD \/ready\?x=1 HTTP\/1\.1\r\nHost: app\.test\r\n/);
    reply = 'SSH-2.0-OpenSSH_9.2\r\n';
    assert.equal((await probeOnce({ check: { kind: 'http' } }, port)).code, 'http_malformed');
    reply = '';
    assert.deepEqual(await probeOnce({ check: { kind: 'http' } }, port), { up: false, reason: 'HTTP connection closed before a status line', code: 'http_no_response' });
  } finally { await new Promise<void>((r) => server.close(() => r())); }
});

test('http status-only: a real node:http server up, stopped, restarted', async () => {
  const r = await fallAndRise({ check: { kind: 'http', path: '/x' } }, httpServer((_req, res) => res.end('ok')));
  assert.equal(r.upReason, 'HTTP 200');
  assert.equal(r.downReason, 'connect ECONNREFUSED');
});
