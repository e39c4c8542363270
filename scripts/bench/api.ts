/**
 * API benchmark (not a test): GET /v1/services with 1,000 services against bare node:http servers
 * returning the same JSON (serialised per request, and serialised once), in the same run; then the end-to-end latency of one backend change
 * (PATCH weight: validate, plan, apply to a fake dataplane, fsync'd store write, answer) against a
 * bare crash-safe write of the same state file; then GET /v1/status, /metrics and /v1/state against
 * GET /healthz of the same API.
 *
 *   node dist/scripts/bench/api.js [--seconds 3] [--rounds 5] [--connections 16] [--changes 200]
 *
 * The servers run in a child process, the load loop here (two processes, two cores); everything on
 * loopback, every loop bounded by count and time. Prints min/median/max over rounds and ratios.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { Agent as HttpAgent, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { buildAgent } from '../../src/agent/agent.js';
import { systemClock } from '../../src/util/clock.js';
import { FileStateStore } from '../../src/agent/store.js';
import { buildApp } from '../../src/api/app.js';
import { TokenSet } from '../../src/api/auth.js';
import { EventBus } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { AgentSettingsSchema } from '../../src/model/agent.js';
import { writeFileAtomic } from '../../src/util/atomic-file.js';
import { FakeDataplane, fakeFactories } from '../../test/helpers/fake-dataplane.js';

const TOKEN = 'bench-token-0123456789abcdef';
const SERVICES = 1000;
const BACKENDS = 4;

function desired() {
  return {
    services: Array.from({ length: SERVICES }, (_, i) => ({
      name: `svc-${i}`,
      address: `10.${(i >> 8) & 255}.${i & 255}.1`,
      port: 80,
      scheduler: 'wrr',
      backends: Array.from({ length: BACKENDS }, (_, j) => ({ address: `10.200.${i & 255}.${j + 1}`, port: 8000 + (i >> 8), weight: 1 })),
    })),
  };
}

// ---- child: the servers --------------------------------------------------------------------
async function serve(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
  const settings = AgentSettingsSchema.parse({ stateDir: dir, reconcileIntervalSeconds: 3600, api: { rateLimit: false } });
  const events = new EventBus();
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const agent = buildAgent({ settings, factories: fakeFactories({ ipvs: new FakeDataplane('ipvs') }), store: new FileStateStore(dir), clock: systemClock, logger: silentLogger(), metrics, events });
  await agent.start();
  await agent.change(() => desired(), { actor: 'bench', action: 'load' });
  const app = await buildApp({ agent, events, metrics, tokens: new TokenSet([{ name: 'bench', role: 'admin', token: TOKEN }]), settings: settings.api, logger: silentLogger() });
  await app.listen({ host: '127.0.0.1', port: 0 });
  // The baseline: node:http serialising the same object per request, as the API does.
  const bare = createServer((_req, res) => {
    const body = JSON.stringify({ revision: agent.revision, services: agent.state.services });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  // A second baseline: node:http sending bytes serialised once (as the API caches per revision).
  const bytes = Buffer.from(JSON.stringify({ revision: agent.revision, services: agent.state.services }));
  const bareCached = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length });
    res.end(bytes);
  });
  await new Promise<void>((r) => bareCached.listen(0, '127.0.0.1', r));
  const stateFile = join(dir, 'bench-baseline.json');
  process.on('message', (m: { op: string }) => {
    if (m.op === 'fsync-write') {
      // Baseline for a change: one crash-safe write of the whole state, as the store does.
      const t0 = process.hrtime.bigint();
      writeFileAtomic(stateFile, JSON.stringify({ format: 1, revision: agent.revision, state: agent.state }, null, 1) + '\n');
      process.send!({ op: 'fsync-write', ns: Number(process.hrtime.bigint() - t0) });
    } else if (m.op === 'stop') {
      void app.close().then(() => agent.close()).then(() => { bare.close(); bareCached.close(); rmSync(dir, { recursive: true, force: true }); process.exit(0); });
    }
  });
  process.send!({ op: 'ready', api: (app.server.address() as { port: number }).port, bare: (bare.address() as { port: number }).port, cached: (bareCached.address() as { port: number }).port });
}

// ---- parent: the load loop -----------------------------------------------------------------
interface Round { rps: number; p50: number; p99: number; errors: number; bytes: number }

function once(agent: HttpAgent, port: number, path: string, method = 'GET', body?: string, headers: Record<string, string> = {}): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent, headers: { ...headers, ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => { bytes += c.length; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function load(port: number, headers: Record<string, string>, seconds: number, connections: number): Promise<Round> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: connections });
  const lat: number[] = [];
  let errors = 0, bytes = 0;
  const end = Date.now() + seconds * 1000;
  const MAX = 200_000; // bound on requests per round whatever the speed
  const worker = async () => {
    while (Date.now() < end && lat.length < MAX) {
      const t0 = process.hrtime.bigint();
      try {
        const r = await once(agent, port, '/v1/services', 'GET', undefined, headers);
        if (r.status !== 200) errors++;
        bytes = r.bytes;
      } catch { errors++; }
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (Date.now() - t0) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { rps: lat.length / elapsed, p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors, bytes };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mmm = (xs: number[], digits = 1) => `min ${Math.min(...xs).toFixed(digits)} / median ${median(xs).toFixed(digits)} / max ${Math.max(...xs).toFixed(digits)}`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '5' }, connections: { type: 'string', default: '16' }, changes: { type: 'string', default: '200' } } });
  const seconds = Math.min(Number(values.seconds), 30), rounds = Math.min(Number(values.rounds), 20);
  const connections = Math.min(Number(values.connections), 256), changes = Math.min(Number(values.changes), 5000);
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: 'inherit' });
  const next = (op: string) => new Promise<Record<string, number>>((resolve) => {
    const h = (m: { op: string }) => { if (m.op === op) { child.off('message', h); resolve(m as unknown as Record<string, number>); } };
    child.on('message', h);
  });
  const ready = await next('ready');
  const auth = { authorization: `Bearer ${TOKEN}` };
  console.log(`GET /v1/services, ${SERVICES} services x ${BACKENDS} backends; ${connections} keep-alive connections, ${seconds} s per round, ${rounds} rounds each, alternating`);
  // Warm-up (JIT, caches), not counted.
  await load(ready.bare!, {}, 1, connections);
  await load(ready.api!, auth, 1, connections);
  await load(ready.cached!, {}, 1, connections);
  const bare: Round[] = [], cached: Round[] = [], api: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    bare.push(await load(ready.bare!, {}, seconds, connections));
    cached.push(await load(ready.cached!, {}, seconds, connections));
    api.push(await load(ready.api!, auth, seconds, connections));
  }
  const errs = [...bare, ...cached, ...api].reduce((n, x) => n + x.errors, 0);
  console.log(`  response body ${(api[0]!.bytes / 1024).toFixed(0)} KiB (bare ${(bare[0]!.bytes / 1024).toFixed(0)} KiB); errors ${errs}`);
  console.log(`  bare node:http, JSON.stringify per request  req/s ${mmm(bare.map((x) => x.rps))}; p99 ms ${mmm(bare.map((x) => x.p99), 2)}`);
  console.log(`  bare node:http, bytes serialised once       req/s ${mmm(cached.map((x) => x.rps))}; p99 ms ${mmm(cached.map((x) => x.p99), 2)}`);
  console.log(`  fulcrum API (bearer auth, metrics hooks)    req/s ${mmm(api.map((x) => x.rps))}; p99 ms ${mmm(api.map((x) => x.p99), 2)}`);
  for (const [name, base] of [['stringify-per-request', bare], ['serialised-once', cached]] as const) {
    const ratios = api.map((x, i) => x.rps / base[i]!.rps);
    console.log(`  vs bare ${name}: throughput ratio API/bare per round ${mmm(ratios, 3)}; p99 ratio (medians) ${(median(api.map((x) => x.p99)) / median(base.map((x) => x.p99))).toFixed(3)}`);
  }

  // One backend change end to end, sequential (each waits for its fsync'd store write).
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const lat: number[] = [];
  for (let i = 0; i < changes; i++) {
    const t0 = process.hrtime.bigint();
    const r = await once(agent, ready.api!, '/v1/services/svc-500/backends/10.200.244.1:8001', 'PATCH', JSON.stringify({ weight: 2 + (i % 2) }), auth);
    if (r.status !== 200) throw new Error(`PATCH answered ${r.status}`);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  agent.destroy();
  const base: number[] = [];
  for (let i = 0; i < Math.min(changes, 200); i++) {
    child.send({ op: 'fsync-write' });
    base.push((await next('fsync-write')).ns! / 1e6);
  }
  lat.sort((a, b) => a - b);
  base.sort((a, b) => a - b);
  console.log(`\nPATCH one backend's weight (${changes} sequential changes, 1,000-service state, fake dataplane, fsync'd store)`);
  console.log(`  API end to end  ms: min ${lat[0]!.toFixed(2)} / p50 ${pct(lat, 0.5).toFixed(2)} / p99 ${pct(lat, 0.99).toFixed(2)} / max ${lat[lat.length - 1]!.toFixed(2)}`);
  console.log(`  baseline: one crash-safe write of the same state  ms: min ${base[0]!.toFixed(2)} / p50 ${pct(base, 0.5).toFixed(2)} / p99 ${pct(base, 0.99).toFixed(2)}`);
  console.log(`  ratio p50 API/baseline: ${(pct(lat, 0.5) / pct(base, 0.5)).toFixed(2)}`);

  // The other reads an operator polls, sequential, against the API's cheapest route (/healthz:
  // routing, hooks and loopback round trip, no work) in the same run.
  const reads = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const sequential = async (path: string, headers: Record<string, string>) => {
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < Math.min(changes, 200) + 20; i++) {
      const t0 = process.hrtime.bigint();
      const r = await once(reads, ready.api!, path, 'GET', undefined, headers);
      if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}`);
      if (i >= 20) ms.push(Number(process.hrtime.bigint() - t0) / 1e6); // 20 warm-up requests
      bytes = r.bytes;
    }
    return { p50: median(ms), p99: pct([...ms].sort((a, b) => a - b), 0.99), bytes };
  };
  const floor = await sequential('/healthz', {});
  console.log(`\nOther reads at ${SERVICES} services, sequential, vs GET /healthz on the same API (p50 ${floor.p50.toFixed(3)} ms, p99 ${floor.p99.toFixed(3)} ms)`);
  for (const path of ['/v1/status', '/metrics', '/v1/state']) {
    const r = await sequential(path, auth);
    console.log(`  GET ${path.padEnd(11)} ${(r.bytes / 1024).toFixed(1).padStart(6)} KiB  ms: p50 ${r.p50.toFixed(3)} / p99 ${r.p99.toFixed(3)}; p50 ratio to /healthz ${(r.p50 / floor.p50).toFixed(2)}`);
  }
  reads.destroy();
  child.send({ op: 'stop' });
}

if (process.argv.includes('--serve')) void serve();
else main().catch((e) => { console.error(e); process.exit(1); });
