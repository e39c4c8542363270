import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { Netns, vethPair, run, uniqueName } from '../helpers/netns.js';
import { xdpSkipReason, SMALL } from '../helpers/xdp.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';
import { kill, startServer } from '../helpers/health-e2e.js';
import { addressesOn } from '../helpers/lb-pair.js';
import { nsHttp, type NsRequest } from '../helpers/ns-http.js';
import { DNSMASQ } from '../helpers/servers.js';

/**
 * The CLI verbs and API routes of the real `fulcrum agent` process that no other real-process test
 * drives, on the host kernel (XDP services, no IPVS). An LB netns (eth0 to a peer netns, eth1 to a
 * backend netns with HTTP, UDP and DNS servers) runs the agent with a tokens file (admin and read
 * roles), anonymous reads, a small body limit, health checks of five kinds (http, tcp, exec, udp,
 * dns), and a VRRP instance from the config file (v2, password, unicast, tracked script,
 * interface and service, notify exec, sync group).
 * Through the CLI and HTTP from inside the netns: get, apply (--dry-run, no change), status,
 * health, get vrrp, /v1/events, /metrics, /openapi.json, /docs/, every resource route, PUT
 * /v1/state of GET /v1/state (changed: false), a VRRP instance added by PUT /v1/state; refusals of
 * bad configs, of a second agent on the same state directory, and of `fulcrum ipvs` without IPVS;
 * a TLS agent with a rate limit, an `insecure: true` agent on a non-loopback address; SIGTERM and
 * --cleanup (with agent.log.level).
 */

const skip = xdpSkipReason();
const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
const HOST_HAS_IPVS = existsSync('/proc/net/ip_vs');
const HAVE_DNSMASQ = existsSync(DNSMASQ);
const XDP_TRAFFIC = fileURLToPath(new URL('../helpers/xdp-traffic.js', import.meta.url));
const ADMIN = randomBytes(16).toString('hex');
const READ = `read-${randomBytes(12).toString('hex')}`;
const VIP = '10.0.0.1', B1 = '10.1.0.1', B2 = '10.1.0.2', VRRP_VIP = '192.0.2.100';

let lb: Netns, peer: Netns, backend: Netns;
let dir: string, pinDir: string;
let configDoc: Record<string, unknown>;
let configPath: string, adminFile: string, readFile: string, noTokenFile: string, badTokenFile: string, notifyLog: string;
let agent: AgentProcess | undefined;
const extraAgents: AgentProcess[] = [];
const procs: ChildProcess[] = [];

const XDP = { interfaces: [{ name: 'eth0', mode: 'native' }, { name: 'eth1', mode: 'native' }], ...SMALL };
const health = (check: unknown) => ({ check, interval: 0.5, timeout: 0.3, rise: 1, fall: 1 });
const SERVICES = [
  { name: 'web', dataplane: 'xdp', address: VIP, port: 80, backends: [{ address: B1, port: 8080 }, { address: B2, port: 8080 }], health: health({ kind: 'http', path: '/' }) },
  { name: 'probe-tcp', dataplane: 'xdp', address: VIP, port: 81, backends: [{ address: B1, port: 8080 }], health: health({ kind: 'tcp' }) },
  // exit 0 for B1 only: /usr/bin/test {address} = B1, run without a shell.
  { name: 'probe-exec', dataplane: 'xdp', address: VIP, port: 82, backends: [{ address: B1, port: 8080 }, { address: B2, port: 8080 }], health: health({ kind: 'exec', program: '/usr/bin/test', args: ['{address}', '=', B1] }) },
  // xdp-traffic's server answers every datagram with "b1".
  { name: 'probe-udp', dataplane: 'xdp', address: VIP, port: 84, protocol: 'udp', backends: [{ address: B1, port: 9000 }], health: health({ kind: 'udp', payload: 'ping', expect: '^b1' }) },
  ...(HAVE_DNSMASQ ? [{ name: 'probe-dns', dataplane: 'xdp', address: VIP, port: 53, protocol: 'udp', backends: [{ address: B1, port: 5353 }], health: health({ kind: 'dns', name: 'health.test', type: 'A', expect: ['10.1.2.3'] }) }] : []),
];
const VI_FILE = {
  name: 'vi-file', interface: 'eth0', vrid: 51, priority: 100, version: 2, advertInterval: 1, vips: [`${VRRP_VIP}/24`],
  auth: { type: 'pass', password: 'secret12' },
  unicast: { peers: ['198.18.0.2'] },
  track: { interfaces: [{ interface: 'eth1', weight: -10 }], services: [{ service: 'web', weight: -30 }], scripts: [{ name: 'ok', argv: ['/bin/true'], interval: 0.5, weight: 5 }] },
  syncGroup: 'edge',
  notify: { exec: ['/bin/sh', '-c', 'echo "$*" >> "$0"', 'NOTIFY_LOG'] },
  garp: { repeat: 1, delay: 0 },
};
const VI_API = { name: 'vi-api', interface: 'eth0', vrid: 52, priority: 150, advertInterval: 0.5, vips: ['192.0.2.200'] };

const settingsFor = (stateDir: string, api: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  ({ stateDir, api: { port: 0, ...api }, xdp: { pinDir }, reconcileIntervalSeconds: 1, drainTimeoutSeconds: 5, ...extra });

function writeConfig(name: string, doc: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(doc));
  return path;
}

const cli = (words: string[], tokenFile = adminFile) => fulcrum(words, agent!.server, tokenFile, lb.name);
const json = async <T>(words: string[], tokenFile = adminFile): Promise<T> => {
  const r = await cli([...words, '-o', 'json'], tokenFile);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
};
/** One request to agent A from inside the LB netns; `token` "admin", "read" or none. */
const api = (method: string, path: string, opts: { token?: 'admin' | 'read'; body?: unknown; type?: string; headers?: Record<string, string> } & Pick<NsRequest, 'sseUntil' | 'sseEvents' | 'timeoutMs'> = {}) => {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token === 'admin' ? ADMIN : READ}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] = opts.type ?? 'application/json';
  }
  return nsHttp(lb.name, { url: `${agent!.server}${path}`, method, headers, ...(body !== undefined ? { body } : {}), ...(opts.sseEvents !== undefined ? { sseEvents: opts.sseEvents } : {}), ...(opts.sseUntil !== undefined ? { sseUntil: opts.sseUntil } : {}), ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
};

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Status {
  ready: boolean; revision: number; services: number;
  dataplanes: Array<{ name: string; available: boolean; reason?: string }>;
  vrrp?: Array<{ name: string; state: string; priority: number; configuredPriority: number; maintenance: boolean }>;
}
const status = () => json<Status>(['status']);

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-cli-api-'));
  pinDir = `/sys/fs/bpf/${uniqueName('flcli')}-${Date.now() % 100000}`;
  lb = await Netns.create('fca');
  peer = await Netns.create('fcp');
  backend = await Netns.create('fcb');
  await vethPair(lb, 'eth0', ['198.18.0.1/24'], peer, 'pe0', ['198.18.0.2/24']);
  await vethPair(lb, 'eth1', ['10.1.0.254/24'], backend, 'be0', [`${B1}/24`]);
  await backend.exec('ip', ['route', 'add', 'default', 'via', '10.1.0.254']);
  procs.push(await startServer(backend, 'b1', 8080));
  const udp = backend.spawn(process.execPath, [XDP_TRAFFIC, 'server', 'b1', 'udp:9000']);
  procs.push(udp);
  await new Promise((r) => udp.stdout!.once('data', r));
  if (HAVE_DNSMASQ) {
    procs.push(backend.spawn(DNSMASQ, ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll', '--bind-interfaces',
      `--listen-address=${B1}`, '--port=5353', '--pid-file=', '--log-facility=-', '--address=/health.test/10.1.2.3']));
  } else console.log(`# ${DNSMASQ} missing (apt dnsmasq-base): the dns check through the agent is not run`);

  adminFile = join(dir, 'admin.token');
  readFile = join(dir, 'read.token');
  noTokenFile = join(dir, 'none.token');
  badTokenFile = join(dir, 'bad.token');
  notifyLog = join(dir, 'notify.log');
  writeFileSync(adminFile, ADMIN, { mode: 0o600 });
  writeFileSync(readFile, READ, { mode: 0o600 });
  writeFileSync(noTokenFile, '', { mode: 0o600 });
  writeFileSync(badTokenFile, 'not-a-token-of-this-agent', { mode: 0o600 });
  writeFileSync(join(dir, 'tokens.yaml'), stringify({
    tokens: [
      { name: 'ops', role: 'admin', sha256: createHash('sha256').update(ADMIN).digest('hex') },
      { name: 'grafana', role: 'read', token: READ },
    ],
  }), { mode: 0o600 });
  const vi = { ...VI_FILE, notify: { exec: VI_FILE.notify.exec.map((a) => (a === 'NOTIFY_LOG' ? notifyLog : a)) } };
  configDoc = {
    agent: settingsFor(join(dir, 'state'), { tokensFile: join(dir, 'tokens.yaml'), anonymousRead: true, bodyLimit: 16384, rateLimit: false }),
    xdp: XDP, services: SERVICES, vrrp: [vi],
  };
  configPath = writeConfig('fulcrum.yaml', configDoc);
});

after(async () => {
  if (skip) return;
  for (const a of [...extraAgents, ...(agent ? [agent] : [])]) await a.kill9().catch(() => undefined);
  if (configPath) await AgentProcess.once(configPath, ['--cleanup'], lb?.name).catch(() => undefined);
  for (const p of procs) await kill(p);
  for (const ns of [lb, peer, backend]) await ns?.delete();
  if (pinDir) await run('rm', ['-rf', pinDir], { allowFail: true });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('bad configs are refused with exit 1 and one line per problem naming the field', { skip }, async () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['vrid', { vrrp: [{ ...VI_API, vrid: 300 }] }, /INVALID_CONFIG: .*invalid config:\nvrrp\[0\]\.vrid: Too big/],
    ['tracked service', { vrrp: [{ ...VI_API, track: { services: [{ service: 'nope' }] } }] }, /vrrp\[0\]\.track\.services\[0\]\.service: no service named nope in services/],
    ['public API without TLS', { agent: settingsFor(join(dir, 'bad'), { host: '198.18.0.1' }) }, /agent\.api\.tls: required when the API listens on 198\.18\.0\.1, which is not loopback \(or set insecure: true\)/],
    ['unknown field', { agent: settingsFor(join(dir, 'bad'), { colour: 'red' }) }, /agent\.api: Unrecognized key: "colour"/],
  ];
  for (const [what, doc, re] of cases) {
    const base = (doc as { agent?: unknown }).agent ? doc : { agent: settingsFor(join(dir, 'bad'), {}), ...(doc as object) };
    const r = await AgentProcess.once(writeConfig('bad.yaml', base), [], lb.name);
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, re, what);
  }
  // Files the config names are read at start, and a missing one is named.
  const missingCert = await AgentProcess.once(writeConfig('bad.yaml', { agent: settingsFor(join(dir, 'bad'), { tls: { cert: join(dir, 'nope.pem'), key: join(dir, 'nope.key') } }) }), [], lb.name);
  assert.equal(missingCert.code, 1);
  assert.match(missingCert.stderr, /INVALID_CONFIG: agent\.api\.tls\.cert: cannot read .*nope\.pem: ENOENT/);
  const missingTokens = await AgentProcess.once(writeConfig('bad.yaml', { agent: settingsFor(join(dir, 'bad'), { tokensFile: join(dir, 'nope.yaml') }) }), [], lb.name);
  assert.equal(missingTokens.code, 1);
  assert.match(missingTokens.stderr, /^fulcrum: INVALID_CONFIG: .*nope\.yaml/m);
});

test('fulcrum ipvs list / ipvs reconcile on a kernel without IPVS: exit 1, saying what is missing and what to do', { skip: skip ?? (HOST_HAS_IPVS ? 'this kernel has IPVS (the VM tier covers these commands)' : undefined) }, async () => {
  const file = writeConfig('ipvs.yaml', { services: [{ name: 'web', address: VIP, port: 80, backends: [{ address: B1 }] }] });
  for (const words of [['ipvs', 'list'], ['ipvs', 'reconcile', '--config', file, '--state-dir', join(dir, 'ipvs-state'), '--dry-run']]) {
    const r = await run('nsenter', [`--net=/run/netns/${lb.name}`, process.execPath, fileURLToPath(new URL('../../src/cli/main.js', import.meta.url)), ...words], { allowFail: true });
    assert.equal(r.code, 1, `${words.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^fulcrum: FEATURE_MISSING: this kernel has no IPVS .*modprobe ip_vs/m, words.join(' '));
  }
});

test('the agent starts with the config file: ready, XDP found, IPVS missing, VRRP from the file master with its tracked priority', { skip }, async () => {
  agent = await AgentProcess.start(configPath, { netns: lb.name });
  assert.equal((await api('GET', '/healthz')).status, 200);
  const ready = await api('GET', '/readyz');
  assert.equal(ready.status, 200, ready.body);
  assert.equal((JSON.parse(ready.body) as { status: string }).status, 'ready');

  const s = await status();
  assert.equal(s.ready, true);
  assert.deepEqual(s.dataplanes.map((d) => [d.name, d.available]), [['ipvs', HOST_HAS_IPVS], ['xdp', true]]);
  // The tracked script passes (+5); the tracked interface and service are fine (their negative weights do not apply).
  const vi = await waitFor('vi-file master at priority 105', async () => {
    const v = (await status()).vrrp?.find((i) => i.name === 'vi-file');
    return v?.state === 'master' && v.priority === 105 ? v : undefined;
  });
  assert.equal(vi.configuredPriority, 100);
  assert.ok((await addressesOn(lb, 'eth0')).includes(VRRP_VIP), 'the master holds the VIP');
  const table = await cli(['status']);
  assert.match(table.stdout, /^ready: +yes$/m);
  assert.match(table.stdout, /^vi-file +eth0 +51 +master +105 \(configured 100\) +.*192\.0\.2\.100/m);
  const notified = await waitFor('notify exec ran', async () => (existsSync(notifyLog) && readFileSync(notifyLog, 'utf8').includes('master') ? readFileSync(notifyLog, 'utf8') : undefined), 5000);
  assert.match(notified, /^vi-file master backup$/m, 'notify exec got instance, new state, old state');
});

test('tokens file roles through the CLI and HTTP: read reads, admin writes, anonymous reads only, unknown is refused', { skip }, async () => {
  assert.equal((await cli(['get', 'services'], readFile)).code, 0);
  const forbidden = await cli(['apply', '-f', configPath], readFile);
  assert.equal(forbidden.code, 1);
  assert.match(forbidden.stderr, /^fulcrum: FORBIDDEN: token grafana has role read; changes need admin$/m);
  const unknown = await cli(['status'], badTokenFile);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^fulcrum: UNAUTHORIZED: unknown or malformed bearer token$/m);
  assert.equal((await cli(['status'], noTokenFile)).code, 0, 'anonymousRead: a GET needs no token');
  const anonWrite = await api('DELETE', '/v1/services/web');
  assert.equal(anonWrite.status, 401);
  assert.equal(anonWrite.headers['www-authenticate'], 'Bearer realm="fulcrum"');
  assert.equal((await api('DELETE', '/v1/services/web', { token: 'read' })).status, 403);
  assert.equal((await status()).services, SERVICES.length, 'nothing was deleted');
});

test('fulcrum get services (all, one), health of http/tcp/exec/udp/dns checks, get vrrp', { skip }, async () => {
  const all = await cli(['get', 'services']);
  assert.equal(all.code, 0, all.stderr);
  assert.match(all.stdout, /^web +xdp +tcp 10\.0\.0\.1:80 +maglev +nat +10\.1\.0\.1:8080\*1,10\.1\.0\.2:8080\*1$/m);
  assert.match(all.stdout, /^probe-exec +xdp +tcp 10\.0\.0\.1:82 /m);
  const one = await json<{ name: string; port: number }>(['get', 'services', 'probe-tcp']);
  assert.deepEqual([one.name, one.port], ['probe-tcp', 81]);
  const missing = await cli(['get', 'services', 'nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^fulcrum: NOT_FOUND: /m);

  const byService = await waitFor('every backend checked', async () => {
    const h = await json<Array<{ service: string; backends: Array<{ address: string; state: string; checked: boolean; lastResult?: { reason: string } }> }>>(['health']);
    return h.every((s) => s.backends.every((b) => b.checked)) ? new Map(h.map((s) => [s.service, s.backends])) : undefined;
  });
  const states = (name: string) => byService.get(name)!.map((b) => `${b.address} ${b.state}`);
  assert.deepEqual(states('web'), [`${B1} up`, `${B2} down`]);
  assert.deepEqual(states('probe-tcp'), [`${B1} up`]);
  assert.deepEqual(states('probe-exec'), [`${B1} up`, `${B2} down`]);
  assert.match(byService.get('probe-exec')![1]!.lastResult!.reason, /^exit 1/);
  assert.deepEqual(states('probe-udp'), [`${B1} up`]);
  if (HAVE_DNSMASQ) assert.deepEqual(states('probe-dns'), [`${B1} up`]);
  const table = await cli(['health', 'web']);
  assert.match(table.stdout, /^web +10\.1\.0\.1:8080 +http +up /m);
  assert.match(table.stdout, /^web +10\.1\.0\.2:8080 +http +down /m);
  const none = await cli(['health', 'nope']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /NOT_FOUND: service nope has no health checks/);

  const vrrp = await cli(['get', 'vrrp']);
  assert.equal(vrrp.code, 0, vrrp.stderr);
  assert.match(vrrp.stdout, /vi-file/);
  assert.match(vrrp.stdout, /master/);
});

test('apply: --dry-run prints the diff and kernel steps and applies nothing; apply applies; a repeat is "no changes"', { skip }, async () => {
  const before = await status();
  // A config file for the agent may be applied as it is: its agent: section is not desired state.
  const changed = writeConfig('changed.yaml', {
    agent: { stateDir: '/nonexistent' }, xdp: XDP, vrrp: [readVi()],
    services: [...SERVICES, { name: 'added', dataplane: 'xdp', address: VIP, port: 83, backends: [{ address: B1, port: 8080 }] }],
  });
  const dry = await cli(['apply', '-f', changed, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^\+ service added tcp 10\.0\.0\.1:83 on xdp \(maglev, nat\)/m);
  assert.match(dry.stdout, /^xdp: [1-9]\d* kernel step\(s\)$/m);
  assert.match(dry.stdout, /dry run: nothing applied \(revision \d+\)/);
  assert.equal((await status()).revision, before.revision, 'a dry run keeps the revision');
  assert.equal((await cli(['get', 'services', 'added'])).code, 1, 'and adds nothing');

  const applied = await cli(['apply', '-f', changed]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, new RegExp(`applied: revision ${before.revision} -> ${before.revision + 1}`));
  const again = await cli(['apply', '-f', changed]);
  assert.match(again.stdout, new RegExp(`^no changes \\(revision ${before.revision + 1}\\)$`, 'm'));
  const vips = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${pinDir}/vips`])).stdout) as unknown[];
  assert.equal(vips.length, SERVICES.length + 1, 'bpftool sees the added VIP in the pinned map');
});

/** vi-file as the running agent has it (notify argv with the real log path). */
function readVi(): unknown {
  return { ...VI_FILE, notify: { exec: VI_FILE.notify.exec.map((a) => (a === 'NOTIFY_LOG' ? notifyLog : a)) } };
}

test('PUT /v1/state of GET /v1/state answers changed: false (JSON and YAML); a VRRP instance added by PUT /v1/state shows in fulcrum status', { skip }, async () => {
  const got = await api('GET', '/v1/state', { token: 'read' });
  assert.equal(got.status, 200);
  const { revision, state } = JSON.parse(got.body) as { revision: number; state: { vrrp: unknown[] } };
  const same = await api('PUT', '/v1/state', { token: 'admin', body: state });
  assert.equal(same.status, 200, same.body);
  assert.deepEqual(pick(JSON.parse(same.body)), { revision, changed: false, applied: false });
  const yaml = await api('PUT', '/v1/state', { token: 'admin', body: stringify(state), type: 'application/yaml' });
  assert.deepEqual(pick(JSON.parse(yaml.body)), { revision, changed: false, applied: false });

  const added = await api('PUT', '/v1/state', { token: 'admin', body: { ...state, vrrp: [...state.vrrp, VI_API] } });
  assert.equal(added.status, 200, added.body);
  assert.deepEqual(pick(JSON.parse(added.body)), { revision: revision + 1, changed: true, applied: true });
  await waitFor('vi-api master', async () => ((await status()).vrrp?.find((i) => i.name === 'vi-api')?.state === 'master' ? true : undefined));
  const table = await cli(['status']);
  assert.match(table.stdout, /^vi-file +eth0 +51 +master /m);
  assert.match(table.stdout, /^vi-api +eth0 +52 +master +150 /m);
  assert.ok((await addressesOn(lb, 'eth0')).includes('192.0.2.200'));
});

const pick = (r: { revision: number; changed: boolean; applied: boolean }) => ({ revision: r.revision, changed: r.changed, applied: r.applied });

test('/v1/vrrp routes: list with runtime, one, create-or-replace, delete (the master hands its VIP back)', { skip }, async () => {
  const list = JSON.parse((await api('GET', '/v1/vrrp', { token: 'read' })).body) as { instances: Array<{ spec: { name: string }; runtime?: { state: string } }> };
  assert.deepEqual(list.instances.map((i) => [i.spec.name, i.runtime?.state]), [['vi-file', 'master'], ['vi-api', 'master']]);
  const one = await api('GET', '/v1/vrrp/vi-api', { token: 'read' });
  assert.equal((JSON.parse(one.body) as { priority: number }).priority, 150);
  const replaced = await api('PUT', '/v1/vrrp/vi-api', { token: 'admin', body: { ...VI_API, name: undefined, priority: 140 } });
  assert.equal(replaced.status, 200, replaced.body);
  await waitFor('vi-api at 140', async () => ((await status()).vrrp?.find((i) => i.name === 'vi-api')?.priority === 140 ? true : undefined));
  const deleted = await api('DELETE', '/v1/vrrp/vi-api', { token: 'admin' });
  assert.equal(deleted.status, 200, deleted.body);
  assert.equal((JSON.parse(deleted.body) as { changed: boolean }).changed, true);
  await waitFor('192.0.2.200 released', async () => (!(await addressesOn(lb, 'eth0')).includes('192.0.2.200') ? true : undefined), 10_000);
  assert.deepEqual((await status()).vrrp?.map((v) => v.name), ['vi-file']);
  assert.equal((await api('GET', '/v1/vrrp/vi-api', { token: 'read' })).status, 404);
});

test('service, backend and drain routes through the real process: create, read, 304, stats, dry run, If-Match, PATCH, drain, delete', { skip }, async () => {
  const svc = { dataplane: 'xdp', address: VIP, port: 90, backends: [{ address: B1, port: 8080 }] };
  const dry = await api('PUT', '/v1/services/extra?dryRun=true', { token: 'admin', body: svc });
  assert.equal(dry.status, 200, dry.body);
  assert.equal((JSON.parse(dry.body) as { dryRun: boolean; applied: boolean }).applied, false);
  assert.equal((await api('GET', '/v1/services/extra', { token: 'read' })).status, 404);
  const created = await api('PUT', '/v1/services/extra', { token: 'admin', body: svc });
  assert.equal(created.status, 201, created.body);
  const rev = Number(String(created.headers.etag).replace(/"/g, ''));
  const list = await api('GET', '/v1/services', { token: 'read' });
  assert.equal(list.headers.etag, `"${rev}"`);
  assert.equal((await api('GET', '/v1/services', { token: 'read', headers: { 'if-none-match': `"${rev}"` } })).status, 304);

  const stats = await api('GET', '/v1/services/extra/stats', { token: 'read' });
  assert.equal(stats.status, 200, stats.body);
  assert.equal((JSON.parse(stats.body) as { dataplane: string; backends: unknown[] }).dataplane, 'xdp');

  const b = `/v1/services/extra/backends/${encodeURIComponent('10.1.0.3:8080')}`;
  assert.equal((await api('PUT', b, { token: 'admin', body: { weight: 2 } })).status, 201);
  const stale = await api('PATCH', b, { token: 'admin', body: { weight: 5 }, headers: { 'if-match': `"${rev}"` } });
  assert.equal(stale.status, 412, stale.body);
  assert.equal((JSON.parse(stale.body) as { code: string }).code, 'PRECONDITION_FAILED');
  assert.equal((await api('PATCH', b, { token: 'admin', body: { weight: 5 } })).status, 200);
  const bad = await api('PATCH', b, { token: 'admin', body: { weight: -1 } });
  assert.equal(bad.status, 400);
  assert.match((JSON.parse(bad.body) as { message: string }).message, /weight/);
  assert.match((await cli(['get', 'services', 'extra', '-o', 'json'])).stdout, /"address": "10\.1\.0\.3",\n\s+"port": 8080,\n\s+"weight": 5/);

  const dryDrain = await cli(['drain', 'extra', '10.1.0.3:8080', '--dry-run']);
  assert.equal(dryDrain.code, 0, dryDrain.stderr);
  assert.match(dryDrain.stdout, /^dry run: would drain 10\.1\.0\.3:8080 from extra$/m);
  const drained = await api('POST', `${b}/drain`, { token: 'admin' });
  assert.equal(drained.status, 202, drained.body);
  const progress = JSON.parse((await api('GET', `${b}/drain`, { token: 'read' })).body) as { state: string };
  assert.equal(progress.state, 'done', 'XDP drops a removed backend at once');
  assert.deepEqual(JSON.parse((await api('GET', '/v1/drains', { token: 'read' })).body), { drains: [] });
  const wait = await cli(['drain', 'extra', `${B1}:8080`, '--wait']);
  assert.equal(wait.code, 0, wait.stderr);
  assert.match(wait.stdout, /^extra 10\.1\.0\.1:8080: done$/m);
  const b1 = `/v1/services/extra/backends/${encodeURIComponent(`${B1}:8080`)}`;
  assert.equal((JSON.parse((await api('DELETE', b1, { token: 'admin' })).body) as { changed: boolean }).changed, false, 'deleting an absent backend changes nothing');
  assert.equal((await api('PUT', b1, { token: 'admin', body: {} })).status, 201);
  assert.equal((JSON.parse((await api('DELETE', b1, { token: 'admin' })).body) as { changed: boolean }).changed, true);
  const never = `/v1/services/extra/backends/${encodeURIComponent('10.1.0.9:8080')}/drain`;
  assert.equal((await api('GET', never, { token: 'read' })).status, 404, 'a backend never seen has no drain');

  const tooBig = await api('PUT', '/v1/services/extra', { token: 'admin', body: { ...svc, backends: Array.from({ length: 600 }, (_, i) => ({ address: `10.2.${i >> 8}.${i & 255}`, port: 8080 })) } });
  assert.equal(tooBig.status, 413, tooBig.body.slice(0, 300));
  assert.equal((JSON.parse(tooBig.body) as { code: string }).code, 'PAYLOAD_TOO_LARGE');
  assert.equal((await api('GET', '/v1/nope', { token: 'read' })).status, 404);
  const gone = await api('DELETE', '/v1/services/extra', { token: 'admin' });
  assert.equal((JSON.parse(gone.body) as { changed: boolean }).changed, true);
  assert.equal((JSON.parse((await api('DELETE', '/v1/services/extra', { token: 'admin' })).body) as { changed: boolean }).changed, false);
});

test('/v1/events streams a change live and replays after Last-Event-ID', { skip }, async () => {
  const stream = api('GET', '/v1/events', { token: 'read', sseEvents: 1, sseUntil: 'put service sse-probe', timeoutMs: 15_000 });
  await new Promise((r) => setTimeout(r, 1500)); // the stream's process starts and connects
  const put = await api('PUT', '/v1/services/sse-probe', { token: 'admin', body: { dataplane: 'xdp', address: VIP, port: 91, backends: [] } });
  assert.equal(put.status, 201, put.body);
  const answer = await stream;
  assert.equal(answer.status, 200);
  assert.match(String(answer.headers['content-type']), /^text\/event-stream/);
  const event = answer.events!.find((e) => /put service sse-probe/.test(e.data ?? ''))!;
  assert.ok(event, JSON.stringify(answer.events));
  assert.equal(event.event, 'apply');
  const replay = await api('GET', '/v1/events', { token: 'read', sseEvents: 1, headers: { 'last-event-id': String(Number(event.id) - 1) } });
  assert.equal(replay.events?.[0]?.id, event.id, 'Last-Event-ID replays what came after it');
  await api('DELETE', '/v1/services/sse-probe', { token: 'admin' });
});

test('/metrics (anonymous read), /openapi.json and /docs/ without a token', { skip }, async () => {
  const s = await status();
  const m = await api('GET', '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.body, new RegExp(`^fulcrum_desired_revision ${s.revision}$`, 'm'));
  assert.match(m.body, /^fulcrum_dataplane_available\{dataplane="xdp"\} 1$/m);
  assert.match(m.body, /^fulcrum_vrrp_state\{instance="vi-file"\} 2$/m);
  assert.match(m.body, /^fulcrum_health_backend_up\{service="web",backend="10\.1\.0\.1:8080"\} 1$/m);
  assert.match(m.body, /^fulcrum_api_requests_total\{method="GET",route="\/v1\/status",status="200"\} \d+$/m);
  const spec = await api('GET', '/openapi.json');
  assert.equal(spec.status, 200);
  const doc = JSON.parse(spec.body) as { openapi: string; paths: Record<string, unknown> };
  assert.equal(doc.openapi, '3.1.0');
  for (const p of ['/v1/state', '/v1/services/{name}', '/v1/vrrp/{name}', '/v1/events']) assert.ok(p in doc.paths, p);
  const ui = await api('GET', '/docs/');
  assert.equal(ui.status, 200);
  assert.match(ui.body, /swagger/i);
});

test('a second agent on the same state directory is refused, naming the running one', { skip }, async () => {
  const r = await AgentProcess.once(configPath, [], lb.name);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^fulcrum: CONFLICT: another agent \\(pid ${agent!.proc.pid}\\) uses the state directory `, 'm'));
  assert.equal((await api('GET', '/readyz')).status, 200, 'the running agent is untouched');
});

test('a TLS agent: the CLI with --ca works, without it the certificate is refused; the rate limit answers 429', { skip }, async () => {
  const stateDir = join(dir, 'tls-state');
  const tls = await AgentProcess.start(writeConfig('tls.yaml', {
    agent: settingsFor(stateDir, { tls: { cert: join(TLS, 'cert.pem'), key: join(TLS, 'key.pem') }, rateLimit: { max: 4, windowSeconds: 60 } }),
  }), { netns: lb.name });
  extraAgents.push(tls);
  assert.ok(tls.logs.some((l) => l.msg === 'API listening' && String(l.url).startsWith('https://')));
  const server = `https://127.0.0.1:${tls.port}`;
  const token = join(stateDir, 'admin.token');
  const ok = await fulcrum(['status', '--ca', join(TLS, 'cert.pem')], server, token, lb.name);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^ready: +yes$/m);
  const noCa = await fulcrum(['status'], server, token, lb.name);
  assert.equal(noCa.code, 1);
  assert.match(noCa.stderr, /certificate/i);
  const answers: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await nsHttp(lb.name, { url: `${server}/v1/status`, ca: join(TLS, 'cert.pem'), headers: { authorization: `Bearer ${readFileSync(token, 'utf8').trim()}` } });
    answers.push(r.status);
    if (r.status === 429) assert.equal((JSON.parse(r.body) as { code: string }).code, 'RATE_LIMITED');
  }
  assert.deepEqual(answers, [200, 200, 200, 429], 'the CLI call was the first of 4 allowed in the window');
  assert.equal(await tls.stop(), 0);
});

test('insecure: true serves plain HTTP on a non-loopback address, with a warning; a peer reaches it', { skip }, async () => {
  const open = await AgentProcess.start(writeConfig('insecure.yaml', { agent: settingsFor(join(dir, 'insecure-state'), { host: '198.18.0.1', insecure: true }) }), { netns: lb.name });
  extraAgents.push(open);
  assert.ok(open.logs.some((l) => l.level === 40 && /plain HTTP on a non-loopback address/.test(String(l.msg))));
  const r = await nsHttp(peer.name, { url: `http://198.18.0.1:${open.port}/readyz` });
  assert.equal(r.status, 200, r.body);
  assert.equal(await open.stop(), 0);
});

test('fulcrum vrrp maintenance on/off: the master hands over at once and stays backup, then takes the VIP back', { skip }, async () => {
  const on = await cli(['vrrp', 'maintenance', 'on']);
  assert.equal(on.code, 0, on.stderr);
  assert.match(on.stdout, /^vi-file +backup +yes$/m);
  // No peer answers here: the VIP goes after the make-before-break bound (4 advert intervals).
  await waitFor('the VIP handed over', async () => (!(await addressesOn(lb, 'eth0')).includes(VRRP_VIP) ? true : undefined), 10_000);
  await new Promise((r) => setTimeout(r, 4500)); // past Master_Down_Interval (3 s + skew): no takeover
  const held = (await status()).vrrp?.find((v) => v.name === 'vi-file');
  assert.deepEqual([held?.state, held?.maintenance], ['backup', true], 'maintenance holds with no master on the link');
  assert.ok(!(await addressesOn(lb, 'eth0')).includes(VRRP_VIP));
  assert.match((await cli(['status'])).stdout, /^vi-file +eth0 +51 +backup \(maintenance\) /m);
  const denied = await api('POST', '/v1/vrrp/maintenance', { token: 'read', body: { enabled: false } });
  assert.equal(denied.status, 403, 'maintenance needs admin');
  const off = await cli(['vrrp', 'maintenance', 'off', '-o', 'json']);
  assert.equal(off.code, 0, off.stderr);
  assert.equal((JSON.parse(off.stdout) as { changed: boolean }).changed, true);
  await waitFor('vi-file master again', async () => ((await status()).vrrp?.find((v) => v.name === 'vi-file')?.state === 'master' ? true : undefined), 10_000);
  await waitFor('the VIP back', async () => ((await addressesOn(lb, 'eth0')).includes(VRRP_VIP) ? true : undefined), 5000);
});

test('config reload: SIGHUP and POST /v1/reload apply a changed file; an invalid file is refused, the agent and its state stay', { skip }, async () => {
  const extra = { name: 'reloaded', dataplane: 'xdp', address: VIP, port: 96, backends: [{ address: B1, port: 8080 }] };
  const before = (await status()).revision;
  writeFileSync(configPath, stringify({ ...configDoc, services: [...SERVICES, extra] }));
  agent!.proc.kill('SIGHUP');
  await waitFor('the SIGHUP reload applied', async () => ((await status()).revision === before + 1 ? true : undefined));
  assert.equal((await status()).services, SERVICES.length + 1, "the file's desired state replaced the stored one");
  assert.equal((await cli(['get', 'services', 'reloaded'])).code, 0);

  writeFileSync(configPath, stringify({ ...configDoc, services: [...SERVICES, { ...extra, port: 70000 }] }));
  const refused = await api('POST', '/v1/reload', { token: 'admin' });
  assert.equal(refused.status, 400, refused.body);
  assert.match(refused.body, /INVALID_CONFIG/);
  assert.match(refused.body, /services\.\d+\.port|services\[\d+\]\.port/, 'the error names the field');
  agent!.proc.kill('SIGHUP');
  await waitFor('the refused SIGHUP reload logged', async () => (agent!.logs.some((l) => l.msg === 'config file reload refused; the running state is kept') ? true : undefined), 5000);
  assert.equal(agent!.proc.exitCode, null, 'a bad file on SIGHUP does not stop the agent');
  assert.equal((await status()).revision, before + 1, 'nothing changed');

  writeFileSync(configPath, stringify(configDoc));
  assert.equal((await api('POST', '/v1/reload', { token: 'read' })).status, 403, 'reload needs admin');
  const dry = JSON.parse((await api('POST', '/v1/reload?dryRun=true', { token: 'admin' })).body) as { changed: boolean; dryRun: boolean; diff: Array<{ subject: string }>; restartNeeded: string[] };
  assert.deepEqual([dry.changed, dry.dryRun, dry.restartNeeded], [true, true, []]);
  assert.ok(dry.diff.some((d) => d.subject.includes('reloaded')), JSON.stringify(dry.diff));
  assert.equal((await status()).revision, before + 1, 'a dry run changes nothing');
  const applied = JSON.parse((await api('POST', '/v1/reload', { token: 'admin' })).body) as { changed: boolean; revision: number };
  assert.deepEqual([applied.changed, applied.revision], [true, before + 2]);
  const again = JSON.parse((await api('POST', '/v1/reload', { token: 'admin' })).body) as { changed: boolean; revision: number };
  assert.deepEqual([again.changed, again.revision], [false, before + 2], 'an unchanged file changes nothing');
  assert.equal((await status()).services, SERVICES.length);
});

test('SIGTERM: exit 0, the VRRP master releases its VIP, XDP stays; --cleanup (agent.log.level warn: no info lines) detaches and unpins', { skip }, async () => {
  assert.equal(await agent!.stop(), 0);
  agent = undefined;
  assert.ok(!(await addressesOn(lb, 'eth0')).includes(VRRP_VIP), 'the VIP left with the agent');
  const link = () => lb.exec('ip', ['-j', '-d', 'link', 'show', 'dev', 'eth1']).then((r) => (JSON.parse(r.stdout) as Array<{ xdp?: unknown }>)[0]?.xdp);
  assert.notEqual(await link(), undefined, 'XDP stays attached after a graceful stop');
  const quiet = writeConfig('quiet.yaml', {
    agent: settingsFor(join(dir, 'state'), { tokensFile: join(dir, 'tokens.yaml') }, { log: { level: 'warn' } }), xdp: XDP, services: SERVICES,
  });
  const c = await AgentProcess.once(quiet, ['--cleanup'], lb.name);
  assert.equal(c.code, 0, c.stderr);
  assert.doesNotMatch(c.stdout, /"level":30/, 'log.level warn: no info lines');
  assert.equal(await link(), undefined, 'detached');
  assert.equal(existsSync(`${pinDir}/prog`), false, 'unpinned');
});
