/**
 * Benchmark: one HealthManager checking N backends (default 10,000: half TCP, half HTTP) every
 * second against real loopback listeners (127.1.x.y:9000, one listener per backend, served by a
 * child process). Prints, over repeated windows (min/median/max):
 *  - CPU share of the checking process (user+system / wall, 100% = one core),
 *  - event-loop delay p99 (perf_hooks.monitorEventLoopDelay),
 *  - detection time of a failure from the moment a server stops, against the configured bound
 *    fall x interval + timeout (jitter adds up to fall x jitter);
 * and the same CPU and delay for a baseline measured in the same run: a bare prober doing the same
 * connects / HTTP requests on the same schedule with node:net and no health logic.
 *
 * With --keepalived (where IPVS exists: in the VM, `scripts/vm/run.sh -- bash -c 'ulimit -n 65536;
 * node dist/scripts/bench/health.js --keepalived ...'`), keepalived's checker process (keepalived -C,
 * TCP_CHECK / HTTP_GET with the same interval, timeout and retries) checks the same N servers and
 * its CPU share is compared with the HealthManager's.
 *
 * Usage: node dist/scripts/bench/health.js [--backends 10000] [--window 10] [--repeats 3] [--keepalived]
 * Needs about N + 2,000 file descriptors in each process (ulimit -n).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { HealthManager } from '../../src/health/index.js';
import { EventBus } from '../../src/events.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { parseDesiredState, type Service } from '../../src/model/index.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('backends', 10_000);
const WINDOW_S = arg('window', 10);
const REPEATS = arg('repeats', 3);
const PORT = 9000;
const INTERVAL = 1, TIMEOUT = 0.5, JITTER = 0.1, RISE = 2, FALL = 3;
const KILL = Math.min(50, Math.floor(N / 10)); // backends stopped per detection round

const addressOf = (i: number) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
const isHttp = (i: number) => i % 2 === 1;
const HTTP_OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';

// ---------------------------------------------------------------- the servers (child process)
async function serve(): Promise<void> {
  const servers: Server[] = [];
  for (let i = 0; i < N; i++) {
    const s = isHttp(i)
      ? createServer((c) => {
          let buf = '';
          c.on('data', (d) => { buf += d.toString('latin1'); if (buf.includes('\r\n\r\n')) c.end(HTTP_OK); });
          c.on('error', () => {});
        })
      : createServer((c) => { c.on('error', () => {}); c.end(); });
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(PORT, addressOf(i), () => resolve()); });
    servers.push(s);
  }
  const cpu0 = process.cpuUsage();
  process.on('message', (m: { stop?: number[]; start?: number[]; cpu?: boolean }) => {
    if (m.stop) {
      for (const i of m.stop) servers[i]!.close();
      process.send!({ stopped: m.stop, at: Date.now() });
    } else if (m.start) {
      Promise.all(m.start.map((i) => new Promise<void>((r) => servers[i]!.listen(PORT, addressOf(i), () => r())))).then(() => process.send!({ started: m.start }));
    } else if (m.cpu) {
      const c = process.cpuUsage(cpu0);
      process.send!({ cpuUs: c.user + c.system });
    }
  });
  process.send!({ ready: N });
}

// ---------------------------------------------------------------- helpers (parent)
function request(child: ChildProcess, msg: object, key: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const on = (m: Record<string, unknown>) => { if (key in m) { child.off('message', on); resolve(m); } };
    child.on('message', on);
    child.send(msg);
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
};
const fmt = (x: { min: number; median: number; max: number }, unit: string, digits = 1) =>
  `min ${x.min.toFixed(digits)}${unit}  median ${x.median.toFixed(digits)}${unit}  max ${x.max.toFixed(digits)}${unit}`;

/** CPU share (percent of one core) and event-loop delay p99 (ms) over one window. */
async function measure(windowS: number): Promise<{ cpu: number; p99: number }> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const c0 = process.cpuUsage(), t0 = performance.now();
  await sleep(windowS * 1000);
  const c = process.cpuUsage(c0), wall = performance.now() - t0;
  h.disable();
  return { cpu: ((c.user + c.system) / 1000 / wall) * 100, p99: h.percentile(99) / 1e6 };
}

// ---------------------------------------------------------------- the baseline: bare probing
function bareProber(): { stop(): void; failures: () => number } {
  let stopped = false, failures = 0;
  const timers: NodeJS.Timeout[] = [];
  const probe = (i: number) => {
    const sock = connect({ host: addressOf(i), port: PORT });
    const t = setTimeout(() => { failures++; sock.destroy(); }, TIMEOUT * 1000);
    sock.on('error', () => { failures++; clearTimeout(t); });
    sock.on('connect', () => {
      if (!isHttp(i)) { clearTimeout(t); sock.destroy(); return; }
      sock.write(`GET / HTTP/1.1\r\nHost: ${addressOf(i)}\r\nConnection: close\r\n\r\n`);
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        if (buf.includes('\r\n\r\n')) { clearTimeout(t); if (!buf.startsWith('HTTP/1.1 200')) failures++; sock.destroy(); }
      });
    });
  };
  for (let i = 0; i < N; i++) {
    const loop = () => { if (stopped) return; probe(i); timers[i] = setTimeout(loop, INTERVAL * 1000 + (Math.random() * 2 - 1) * JITTER * 1000); };
    timers[i] = setTimeout(loop, Math.random() * INTERVAL * 1000);
  }
  return { stop: () => { stopped = true; timers.forEach(clearTimeout); }, failures: () => failures };
}

// ---------------------------------------------------------------- keepalived's checker on the same servers
const KEEPALIVED = '/usr/sbin/keepalived';
const CLK_TCK = 100; // USER_HZ, the unit of /proc/PID/stat utime and stime on Linux

function keepalivedConf(): string {
  const rs = (i: number) => isHttp(i)
    ? `  real_server ${addressOf(i)} ${PORT} {\n    HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n      connect_timeout ${TIMEOUT}\n      retry ${FALL - 1}\n      delay_before_retry ${INTERVAL}\n    }\n  }\n`
    : `  real_server ${addressOf(i)} ${PORT} {\n    TCP_CHECK {\n      connect_timeout ${TIMEOUT}\n      retry ${FALL - 1}\n      delay_before_retry ${INTERVAL}\n    }\n  }\n`;
  const vs = (port: number, http: boolean) => {
    let out = `virtual_server 10.255.0.1 ${port} {\n  delay_loop ${INTERVAL}\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  inhibit_on_failure\n`;
    for (let i = 0; i < N; i++) if (isHttp(i) === http) out += rs(i);
    return `${out}}\n`;
  };
  return `global_defs {\n  router_id fulcrum_bench\n}\n${vs(80, false)}${vs(81, true)}`;
}

const procCpuSeconds = (pid: number): number => {
  // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
};

/** keepalived's checker CPU share per window, or why it cannot run here. */
async function keepalivedWindows(): Promise<Array<{ cpu: number }> | string> {
  if (!existsSync('/proc/net/ip_vs')) return 'this kernel has no IPVS, which keepalived\'s checker needs: run it in the VM (scripts/vm/run.sh)';
  if (!existsSync(KEEPALIVED)) return 'keepalived is not installed';
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-ka-'));
  const conf = join(dir, 'keepalived.conf'), pid = join(dir, 'k.pid'), cpid = join(dir, 'c.pid');
  writeFileSync(conf, keepalivedConf());
  const ka = spawn(KEEPALIVED, ['--dont-fork', '--log-console', '--check', '-f', conf, '-p', pid, '-c', cpid], { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    let checker = 0;
    for (let i = 0; i < 300 && !checker; i++) { await sleep(100); if (existsSync(cpid)) checker = Number(readFileSync(cpid, 'utf8').trim()); }
    if (!checker) return 'keepalived did not start its checker';
    // Wait until it programmed every real server into IPVS, then for its warm-up.
    const dests = () => readFileSync('/proc/net/ip_vs', 'utf8').split('\n').filter((l) => l.includes('->') && !l.includes('RemoteAddress')).length;
    for (let i = 0; i < 600 && dests() < N; i++) await sleep(200);
    console.log(`keepalived: checker pid ${checker}, ${dests()} real servers in IPVS`);
    await sleep((INTERVAL + 1) * 1000);
    const out: Array<{ cpu: number }> = [];
    for (let r = 0; r < REPEATS; r++) {
      const c0 = procCpuSeconds(checker), t0 = performance.now();
      await sleep(WINDOW_S * 1000);
      out.push({ cpu: ((procCpuSeconds(checker) - c0) / ((performance.now() - t0) / 1000)) * 100 });
    }
    return out;
  } finally {
    await new Promise<void>((r) => { if (ka.exitCode !== null) r(); else { ka.once('exit', () => r()); ka.kill('SIGTERM'); setTimeout(r, 20_000).unref(); } });
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  console.log(`health bench: ${N} backends (${Math.ceil(N / 2)} tcp, ${Math.floor(N / 2)} http), interval ${INTERVAL}s, timeout ${TIMEOUT}s, jitter ${JITTER}s, rise ${RISE}, fall ${FALL}; windows of ${WINDOW_S}s x ${REPEATS}`);
  const child = fork(process.argv[1]!, ['--serve', '--backends', String(N)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`server process exited ${code} (fd limit? ulimit -n)`)));
  });
  console.log(`servers: ${N} listeners ready`);

  const services = (initialState: 'up' | 'down'): Service[] => parseDesiredState({
    services: ['tcp', 'http'].map((kind, k) => ({
      name: `bench-${kind}`, address: '10.0.0.1', port: 80 + k,
      backends: Array.from({ length: N }, (_, i) => i).filter((i) => isHttp(i) === (kind === 'http')).map((i) => ({ address: addressOf(i), port: PORT })),
      health: { check: { kind }, interval: INTERVAL, timeout: TIMEOUT, jitter: JITTER, rise: RISE, fall: FALL, initialState },
    })),
  }).services;
  const events = new EventBus(100);
  const downAt = new Map<string, number>();
  events.subscribe((e) => { if (e.type === 'backend-down') downAt.set((e.data as { backend: string }).backend, Date.now()); });
  const newManager = () => new HealthManager({ logger: silentLogger(), events, metrics: createMetricsRegistry({ defaultMetrics: false }) });
  const upCount = (m: HealthManager) => m.status().reduce((n, s) => n + s.backends.filter((b) => b.state === 'up').length, 0);

  // Warm-up of a fresh manager (every backend starts down).
  let mgr = newManager();
  const t0 = Date.now();
  mgr.update(services('down'));
  for (let i = 0; i < 100 && upCount(mgr) < N; i++) await sleep(100);
  console.log(`warm-up: ${upCount(mgr)}/${N} up after ${((Date.now() - t0) / 1000).toFixed(1)}s (rise ${RISE} x interval ${INTERVAL}s)`);
  mgr.close();
  await sleep(1500);

  // CPU and event-loop delay: baseline and HealthManager windows alternate, so that the load of a
  // shared machine drifts over both alike; each ratio pairs two neighbouring windows.
  const base: Array<{ cpu: number; p99: number }> = [];
  const hm: Array<{ cpu: number; p99: number }> = [];
  let bareFailures = 0;
  for (let r = 0; r < REPEATS; r++) {
    const bare = bareProber();
    await sleep(2000);
    base.push(await measure(WINDOW_S));
    bare.stop();
    bareFailures += bare.failures();
    await sleep(1500);
    mgr = newManager();
    mgr.update(services('up'));
    await sleep(2000);
    hm.push(await measure(WINDOW_S));
    if (r < REPEATS - 1) { mgr.close(); await sleep(1500); }
  }
  console.log(`baseline (bare node:net prober) failures during its windows: ${bareFailures}`);

  // Detection: stop KILL listeners at once, REPEATS rounds.
  const detections: number[] = [];
  let missed = 0;
  for (let r = 0; r < REPEATS; r++) {
    const victims = Array.from({ length: KILL }, (_, k) => (r * KILL + k * 97) % N);
    downAt.clear();
    const { at } = (await request(child, { stop: victims }, 'stopped')) as { at: number };
    const bound = (FALL * INTERVAL + TIMEOUT) * 1000;
    const deadline = Date.now() + bound + FALL * JITTER * 1000 + 2000;
    while (Date.now() < deadline && downAt.size < KILL) await sleep(20);
    for (const i of victims) {
      const d = downAt.get(`${addressOf(i)}:${PORT}`);
      if (d === undefined) missed++;
      else detections.push(d - at);
    }
    await request(child, { start: victims }, 'started');
    await sleep((RISE + 1) * INTERVAL * 1000);
  }
  const bound = (FALL * INTERVAL + TIMEOUT) * 1000;
  mgr.close();
  const ka = process.argv.includes('--keepalived') ? await keepalivedWindows() : 'not asked (--keepalived)';
  const serverCpu = (await request(child, { cpu: true }, 'cpuUs')) as { cpuUs: number };
  child.kill();

  const b = stats(base.map((x) => x.cpu)), h = stats(hm.map((x) => x.cpu));
  console.log('\nresults');
  console.log(`  CPU, bare prober (baseline):   ${fmt(b, '%')}`);
  console.log(`  CPU, HealthManager:            ${fmt(h, '%')}`);
  console.log(`  CPU ratio HealthManager/bare:  ${fmt(stats(hm.map((x, i) => x.cpu / base[i]!.cpu)), 'x', 2)}`);
  console.log(`  event-loop p99, bare:          ${fmt(stats(base.map((x) => x.p99)), ' ms')}`);
  console.log(`  event-loop p99, HealthManager: ${fmt(stats(hm.map((x) => x.p99)), ' ms')}`);
  if (detections.length) {
    const d = stats(detections);
    console.log(`  detection (${detections.length} stops, ${missed} missed): ${fmt(d, ' ms', 0)}; bound fall x interval + timeout = ${bound} ms (+ up to ${Math.round(FALL * JITTER * 1000)} ms jitter); within bound: ${detections.filter((x) => x <= bound).length}/${detections.length}, ratio median/bound ${(d.median / bound).toFixed(2)}`);
  } else console.log(`  detection: none observed (${missed} missed)`);
  if (typeof ka === 'string') console.log(`  keepalived checker: not measured: ${ka}`);
  else {
    console.log(`  CPU, keepalived checker:       ${fmt(stats(ka.map((x) => x.cpu)), '%')}`);
    console.log(`  CPU ratio HealthManager/keepalived: ${fmt(stats(hm.map((x, i) => x.cpu / Math.max(ka[i]!.cpu, 0.01))), 'x', 2)}`);
  }
  console.log(`  server process CPU over the run: ${(serverCpu.cpuUs / 1e6).toFixed(1)} s`);
}

if (process.argv.includes('--serve')) void serve();
else main().catch((e) => { console.error(e); process.exit(1); });
