import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type HTTPRequest, type Page } from 'puppeteer-core';
import { stringify } from 'yaml';
import { run, type Netns } from '../helpers/netns.js';
import { xdpSkipReason, testDirs } from '../helpers/xdp.js';
import { createXdpAgentLab, ECHO, LAB_XDP, labBackend, type XdpAgentLab } from '../helpers/xdp-agent-lab.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';

/**
 * The dashboard (/ui/) in headless Chromium (Debian's, driven by puppeteer-core: nothing is
 * downloaded) against the real `fulcrum agent` process: XDP in an LB netns, TCP health checks on
 * two echo backends in their own netns, a VRRP instance, a tokens file with a read token. Chromium
 * runs in the LB netns too (nsenter, DevTools over a pipe), so it reaches the agent's loopback API.
 *
 * - Without a token the page asks for one (nothing shown); a wrong one is refused; the read token
 *   opens it. The token is then nowhere in the DOM, the URL, a request URL or localStorage.
 * - Services, backends (weight, health) and VRRP instances are what /v1/services and /v1/status say.
 * - Traffic through the VIP shows as a connection rate.
 * - The echo server of b2 is killed: the page marks b2 down within 2 s of the API first answering
 *   down, without a reload (both moments measured on this machine's clock). The page polls only
 *   every 5 s: it is the event stream that makes it this fast (here: about 50 ms). Shown once
 *   without it: with onFrame in src/ui/app.js refreshing nothing on an event, the page lagged the
 *   API by 4637 ms and the assertion failed.
 * - A drain of b1 with held connections shows its progress as /v1/drains reports it.
 * - Every request the page made went to the agent's origin.
 * - A second agent with anonymousRead (no dataplane) shows its services without a token; restarted
 *   with a changed config file, the open page reconnects, lists the new agent's events (numbered
 *   from 1 again) and shows the new backend, without a reload. Shown once without it: with the
 *   page reconnecting with ?since=<last id seen> the new agent's first event never appeared.
 *
 * A screenshot is written to test-results/ui/dashboard.png (printed as a diagnostic).
 */

// The page's globals, for the functions puppeteer runs in the page (the project compiles without the DOM lib).
declare const document: any, window: any, location: any, localStorage: any, sessionStorage: any;
interface El { dataset: Record<string, string | undefined>; textContent: string | null; hidden: boolean; value: string; querySelector(s: string): El | null }

const CHROMIUM = '/usr/bin/chromium';
const skip = xdpSkipReason()
  ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool (scripts/setup.sh installs it)')
  ?? (existsSync(CHROMIUM) ? undefined : `needs Debian's chromium at ${CHROMIUM} (scripts/setup.sh installs it for the ui tier)`);

const RESULTS = fileURLToPath(new URL('../../../test-results/ui/', import.meta.url));
const READ_TOKEN = `read-${randomBytes(18).toString('base64url')}`;
const ADMIN_TOKEN = `admin-${randomBytes(18).toString('base64url')}`;
const b4 = labBackend;
const WEB = {
  name: 'web', dataplane: 'xdp', address: '10.0.0.1', port: 80, description: 'the lab web service',
  backends: [{ address: b4(1), port: 8080, weight: 2 }, { address: b4(2), port: 8080, weight: 1 }],
  health: { check: { kind: 'tcp' }, interval: 0.5, timeout: 0.3, rise: 2, fall: 2 },
};
/** A fixed port (the page must find the agent again after its restart); the LB netns has its own loopback. */
const ANON_PORT = 9181;
const VRRP = { name: 'vi1', interface: 'l0', vrid: 51, priority: 150, advertInterval: 1, vips: ['10.9.0.100/24'] };

let lab: XdpAgentLab | undefined;
let client: Netns, lb: Netns;
let dirs: { pinDir: string; stateDir: string };
let agent: AgentProcess | undefined, anon: AgentProcess | undefined;
let configPath: string, anonConfig: string, adminFile: string;
let browser: Browser | undefined;
const procs: ChildProcess[] = [];

/** The anonymousRead agent: no dataplane section, one (ipvs) service that is stored, not programmed. */
function writeAnonConfig(backends: string[]): void {
  writeFileSync(anonConfig, stringify({
    agent: { stateDir: join(dirs.stateDir, 'anon-state'), api: { port: ANON_PORT, anonymousRead: true } },
    services: [{ name: 'stored', address: '10.0.0.9', port: 443, backends: backends.map((address) => ({ address, port: 8443 })) }],
  }));
}

async function get<T>(server: string, path: string, token?: string): Promise<T> {
  const r = await run('nsenter', [`--net=/run/netns/${lb.name}`, 'curl', '-sfS', '--max-time', '5', ...(token ? ['-H', `authorization: Bearer ${token}`] : []), `${server}${path}`]);
  return JSON.parse(r.stdout) as T;
}

interface HealthStatus { service: string; backends: Array<{ address: string; port: number; state: string }> }
interface VrrpStatus { name: string; state: string; priority: number; vrid: number; interface: string; masterAddress?: string; vips: string[] }
interface Status { revision: number; health?: HealthStatus[]; vrrp?: VrrpStatus[] }

before(async () => {
  if (skip) return;
  dirs = testDirs();
  lab = await createXdpAgentLab('fui');
  ({ client, lb } = lab);
  const state = join(dirs.stateDir, 'state');
  mkdirSync(state, { recursive: true });
  const tokens = join(dirs.stateDir, 'tokens.yaml');
  writeFileSync(tokens, stringify({ tokens: [{ name: 'ops', role: 'admin', token: ADMIN_TOKEN }, { name: 'viewer', role: 'read', token: READ_TOKEN }] }), { mode: 0o600 });
  adminFile = join(dirs.stateDir, 'admin.token');
  writeFileSync(adminFile, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  configPath = join(dirs.stateDir, 'fulcrum.yaml');
  writeFileSync(configPath, stringify({
    agent: { stateDir: state, api: { port: 0, tokensFile: tokens }, xdp: { pinDir: dirs.pinDir }, reconcileIntervalSeconds: 2 },
    xdp: LAB_XDP, services: [WEB], vrrp: [VRRP],
  }));
  anonConfig = join(dirs.stateDir, 'anon.yaml');
  writeAnonConfig(['10.1.9.1']);
  // Chromium in the LB netns; puppeteer talks to it over the inherited pipe (fds 3, 4), which nsenter keeps.
  const wrapper = join(dirs.stateDir, 'chromium-in-netns.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=/run/netns/${lb.name} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  browser = await puppeteer.launch({
    executablePath: wrapper, pipe: true, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    userDataDir: join(dirs.stateDir, 'chromium-profile'),
  });
});

after(async () => {
  if (skip) return;
  await browser?.close().catch(() => undefined);
  for (const a of [agent, anon]) if (a) await a.kill9().catch(() => undefined);
  if (configPath) await AgentProcess.once(configPath, ['--cleanup'], lb?.name).catch(() => undefined);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  await lab?.delete();
  if (dirs) {
    await run('rm', ['-rf', dirs.pinDir], { allowFail: true });
    rmSync(dirs.stateDir, { recursive: true, force: true });
  }
});

/** A page that records every request (and lets through only those to `origin`) and counts navigations. */
async function openPage(origin: string): Promise<{ page: Page; requests: HTTPRequest[]; navigations: () => number }> {
  const page = await browser!.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const requests: HTTPRequest[] = [];
  await page.setRequestInterception(true);
  page.on('request', (r) => {
    requests.push(r);
    if (new URL(r.url()).origin === origin) void r.continue();
    else void r.abort('blockedbyclient');
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push((e as Error).message));
  // Chromium reports what the Content-Security-Policy blocked on the console.
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text()); });
  let navs = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navs++; });
  return { page, requests, navigations: () => { assert.deepEqual(errors, [], 'no script error and nothing blocked by the CSP in the page'); return navs; } };
}

/** What the page shows: services with their backends, VRRP instances. */
function shown(page: Page) {
  return page.evaluate(() => ({
    services: [...document.querySelectorAll('[data-service]')].map((s: El) => ({
      name: s.dataset.service!,
      vip: s.querySelector('.vip')?.textContent ?? '',
      backends: [...(s as unknown as { querySelectorAll(q: string): El[] }).querySelectorAll('[data-backend]')].map((r) => ({ backend: r.dataset.backend!, weight: Number(r.dataset.weight), health: r.dataset.health! })),
    })),
    vrrp: [...document.querySelectorAll('[data-vrrp]')].map((r: El) => ({ name: r.dataset.vrrp!, state: r.dataset.state!, text: r.textContent ?? '' })),
  }));
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

const downSelector = `[data-service="web"] [data-backend="${b4(2)}:8080"][data-health="down"]`;

test('the dashboard shows the agent live, with a read token, and asks nothing of another origin', { skip, timeout: 240_000 }, async (t) => {
  agent = await AgentProcess.start(configPath, { netns: lb.name });
  const origin = agent.server;
  const api = <T>(path: string) => get<T>(origin, path, READ_TOKEN);
  // Both backends up and the VRRP instance master (alone on its link) before the page opens.
  await until('both backends up and VRRP master', async () => {
    const st = await api<Status>('/v1/status');
    return st.health?.[0]?.backends.every((b) => b.state === 'up') && st.vrrp?.[0]?.state === 'master' && st;
  }, 30_000, 200);

  const { page, requests, navigations } = await openPage(origin);
  await page.goto(`${origin}/ui/`);
  await page.waitForSelector('#login:not([hidden])', { timeout: 10_000 });
  assert.equal(await page.$eval('#dashboard', (e) => (e as El).hidden), true, 'nothing is shown without a token');

  await page.type('#token', 'wrong-token-0123456789');
  await page.click('#login-form button[type="submit"]');
  await page.waitForFunction(() => /401/.test(document.getElementById('login-error')!.textContent ?? ''), { timeout: 10_000 });
  assert.equal(await page.$eval('#dashboard', (e) => (e as El).hidden), true);

  await page.type('#token', READ_TOKEN);
  const signedIn = requests.length;
  await page.click('#login-form button[type="submit"]');
  await page.waitForSelector('[data-service="web"] [data-backend]', { timeout: 10_000 });
  await page.waitForSelector('#live[data-live="on"]', { timeout: 10_000 });
  await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42; });
  const navsBefore = navigations();

  // Services, backends and VRRP as the API has them.
  const services = (await api<{ services: Array<{ name: string; address: string; port: number; protocol: string; backends: Array<{ address: string; port: number; weight: number }> }> }>('/v1/services')).services;
  const status = await api<Status>('/v1/status');
  const expected = services.map((s) => ({
    name: s.name, vip: `${s.address}:${s.port}/${s.protocol}`,
    backends: s.backends.map((b) => ({
      backend: `${b.address}:${b.port}`, weight: b.weight,
      health: status.health!.find((h) => h.service === s.name)!.backends.find((x) => x.address === b.address && x.port === b.port)!.state,
    })),
  }));
  assert.deepEqual(expected.map((s) => s.backends.map((b) => `${b.backend} w${b.weight} ${b.health}`)), [[`${b4(1)}:8080 w2 up`, `${b4(2)}:8080 w1 up`]], 'the API side of the comparison');
  const seen = await until('the page to show every backend up', async () => { const s = await shown(page); return JSON.stringify(s.services) === JSON.stringify(expected) && s; }, 10_000)
    .catch(async (e: Error) => { throw new Error(`${e.message}; page: ${JSON.stringify((await shown(page)).services)}; API: ${JSON.stringify(expected)}`); });
  const vi = status.vrrp![0]!;
  assert.deepEqual(seen.vrrp.map((v) => [v.name, v.state]), [[vi.name, vi.state]]);
  for (const part of [vi.interface, String(vi.vrid), String(vi.priority), vi.masterAddress!, ...vi.vips]) assert.ok(seen.vrrp[0]!.text.includes(part), `VRRP row shows ${part}: ${seen.vrrp[0]!.text}`);
  assert.ok(await page.$$eval('#events [data-event="vrrp-transition"]', (l) => l.length) >= 1, 'the transition to master is among the recent events');

  // Traffic through the VIP (bounded: at most 40 rounds of 8 connections) shows as a connection rate.
  let rounds = 0;
  await until('a connection rate on the page', async () => {
    if (rounds++ < 40) await client.exec(process.execPath, [ECHO, 'tcp', WEB.address, String(WEB.port), '8'], { timeoutMs: 30_000 });
    return page.$$eval('[data-service="web"] [data-conn-rate]', (rows) => rows.some((r) => Number((r as El).dataset.connRate) > 0));
  }, 40_000, 0);

  // b2's server dies: its check fails; the page follows the API within 2 s, without a reload.
  const pageDown = page.waitForFunction((sel: string) => (document.querySelector(sel) ? Date.now() : false), { polling: 'mutation', timeout: 30_000 }, downSelector);
  lab!.procs[1]!.kill('SIGKILL');
  const apiDownAt = await until('the API to report b2 down', async () => {
    const st = await api<Status>('/v1/status');
    return st.health![0]!.backends.find((b) => b.address === b4(2))!.state === 'down' && Date.now();
  }, 30_000, 20);
  const pageDownAt = await (await pageDown).jsonValue() as number;
  const lag = pageDownAt - apiDownAt;
  t.diagnostic(`b2 down: the page showed it ${lag} ms after the API first answered down (negative: before)`);
  assert.ok(lag <= 2000, `the page showed b2 down ${lag} ms after the API did`);
  assert.equal(navigations(), navsBefore, 'no navigation');
  assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'the same document: no reload');
  assert.ok(await page.$$eval('#events [data-event="backend-down"]', (l) => l.length) >= 1, 'the backend-down event is listed');

  // A drain of b1 with held connections (all on b1, b2 is down) shows the progress /v1/drains reports.
  const holder = client.spawn(process.execPath, [ECHO, 'hold', WEB.address, String(WEB.port), '6'], { stdio: ['pipe', 'pipe', 'inherit'] });
  procs.push(holder);
  await new Promise((r) => holder.stdout!.once('data', r));
  const d = await fulcrum(['drain', 'web', `${b4(1)}:8080`], origin, adminFile, lb.name);
  assert.equal(d.code, 0, d.stderr);
  const drainsNow = async () => (await api<{ drains: Array<{ backend: string; activeConnections: number }> }>('/v1/drains')).drains;
  const drains = await drainsNow();
  assert.deepEqual(drains.map((x) => x.backend), [`${b4(1)}:8080`]);
  // The XDP count also holds the flows of the traffic above that are not yet idle (30 s).
  assert.ok(drains[0]!.activeConnections >= 6, `at least the 6 held connections: ${drains[0]!.activeConnections}`);
  const drainRow = await page.waitForSelector(`[data-service="web"] [data-backend="${b4(1)}:8080"][data-drain="draining"]`, { timeout: 15_000 });
  const same = await until('the page to show the drain count /v1/drains reports', async () => {
    const onPage = Number(await drainRow!.evaluate((r) => (r as El).dataset.drainActive));
    return onPage === (await drainsNow())[0]!.activeConnections && onPage;
  }, 20_000, 200);
  assert.match(await drainRow!.evaluate((r) => r.textContent ?? ''), new RegExp(`draining, ${same} connection\\(s\\) left`));

  mkdirSync(RESULTS, { recursive: true });
  const shot = join(RESULTS, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`screenshot: ${shot}`);

  // The token is in sessionStorage only: not in the DOM (markup or field values), the URL or any request URL.
  const leaks = await page.evaluate((tok: string) => ({
    html: document.documentElement.outerHTML.includes(tok),
    text: document.body.innerText.includes(tok),
    inputs: [...document.querySelectorAll('input')].some((i: El) => i.value.includes(tok)),
    url: location.href.includes(tok),
    local: Object.keys(localStorage).length,
    session: sessionStorage.getItem('fulcrum.token') === tok,
  }), READ_TOKEN);
  assert.deepEqual(leaks, { html: false, text: false, inputs: false, url: false, local: 0, session: true });
  assert.ok(!page.url().includes(READ_TOKEN));
  assert.ok(requests.length > 10, `the page made ${requests.length} requests`);
  const foreign = requests.filter((r) => new URL(r.url()).origin !== origin).map((r) => r.url());
  assert.deepEqual(foreign, [], 'every request went to the agent');
  assert.ok(requests.every((r) => !r.url().includes(READ_TOKEN)), 'no token in a request URL');
  const apiCalls = requests.slice(signedIn).filter((r) => new URL(r.url()).pathname.startsWith('/v1/'));
  assert.ok(apiCalls.some((r) => new URL(r.url()).pathname === '/v1/events'), 'the event stream was read');
  assert.deepEqual(apiCalls.filter((r) => r.headers().authorization !== `Bearer ${READ_TOKEN}`).map((r) => r.url()), [],
    'after sign-in every API request carries the token in the Authorization header');
  assert.ok(requests.slice(0, signedIn).every((r) => r.headers().authorization !== `Bearer ${READ_TOKEN}`));
  await page.close();
  holder.stdin!.end('quit\n');
});

test('with anonymousRead the dashboard needs no token, and follows the agent through a restart', { skip, timeout: 60_000 }, async () => {
  anon = await AgentProcess.start(anonConfig, { netns: lb.name });
  const origin = anon.server;
  const { page, requests, navigations } = await openPage(origin);
  await page.goto(`${origin}/ui/`);
  await page.waitForSelector('[data-service="stored"] [data-backend="10.1.9.1:8443"]', { timeout: 10_000 });
  assert.equal(await page.$eval('#login', (e) => (e as El).hidden), true, 'no sign-in asked');
  const s = await shown(page);
  assert.deepEqual(s.services, [{ name: 'stored', vip: '10.0.0.9:443/tcp', backends: [{ backend: '10.1.9.1:8443', weight: 1, health: 'unchecked' }] }]);
  assert.equal(await page.$eval('#agent', (e) => e.textContent ?? ''), `revision 1 · ready · ${(await get<{ dataplanes: Array<{ name: string; available: boolean }> }>(origin, '/v1/status')).dataplanes.map((d) => `${d.name} ${d.available ? 'available' : 'missing'}`).join(', ')}`);
  await page.waitForSelector('#live[data-live="on"]', { timeout: 10_000 });
  const navs = navigations();

  // The agent restarts with a changed config file: the page reconnects by itself, lists the new
  // agent's events (numbered from 1 again) and shows the new backend, without a reload.
  assert.equal(await anon.stop(), 0);
  anon = undefined;
  await page.waitForSelector('#live[data-live="off"]', { timeout: 10_000 });
  writeAnonConfig(['10.1.9.1', '10.1.9.2']);
  anon = await AgentProcess.start(anonConfig, { netns: lb.name });
  assert.equal(anon.server, origin);
  await page.waitForSelector('[data-service="stored"] [data-backend="10.1.9.2:8443"]', { timeout: 15_000 });
  await page.waitForFunction(() => document.querySelectorAll('#events [data-event="apply"]').length === 2, { timeout: 10_000 })
    .catch(async (e: Error) => { throw new Error(`${e.message}: events listed: ${await page.$eval('#events', (l) => l.textContent)}`); });
  assert.equal(navigations(), navs, 'no navigation');

  assert.deepEqual(requests.filter((r) => new URL(r.url()).origin !== origin).map((r) => r.url()), []);
  assert.ok(requests.every((r) => r.headers().authorization === undefined), 'no Authorization header without a token');
  await page.close();
  assert.equal(await anon.stop(), 0);
  anon = undefined;
});
