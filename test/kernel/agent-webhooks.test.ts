import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { Netns, netnsSkipReason, uniqueName, vethPair } from '../helpers/netns.js';
import { AgentProcess } from '../helpers/agent-process.js';
import { kill } from '../helpers/health-e2e.js';
import { nsHttp } from '../helpers/ns-http.js';

/**
 * agent.notify.webhooks through the real `fulcrum agent` process, in an LB netns (eth0 to a peer
 * netns) with a receiver on the netns's loopback (helpers/webhook-receiver.ts). Two webhooks: "ops"
 * (apply, vrrp-transition) answers at once, "stuck" (apply) never answers. A VRRP instance put
 * through the API produces a signed `apply` event (after the one of the config file's seed) and the instance's transitions at "ops"; the
 * API keeps answering changes while "stuck" holds its request; SIGTERM stops the agent (exit 0)
 * with its last transition (master -> init) delivered.
 */

const skip = netnsSkipReason();
const RECEIVER = fileURLToPath(new URL('../helpers/webhook-receiver.js', import.meta.url));
const SECRET = 'webhook-secret-of-the-kernel-test';
const VI = { interface: 'eth0', vrid: 61, priority: 150, advertInterval: 0.5, vips: ['192.0.2.61/24'] };

interface Request { path: string; headers: Record<string, string>; body: string }

let lb: Netns, peer: Netns;
let dir: string, stateDir: string, configPath: string;
let agent: AgentProcess | undefined;
let receiver: ChildProcess | undefined;
const requests: Request[] = [];

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-webhooks-'));
  stateDir = join(dir, 'state');
  lb = await Netns.create('fwa');
  peer = await Netns.create('fwp');
  await vethPair(lb, 'eth0', ['198.18.0.1/24'], peer, 'pe0', ['198.18.0.2/24']);
  receiver = lb.spawn(process.execPath, [RECEIVER]);
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: receiver!.stdout! }).on('line', (line) => {
      const rec = JSON.parse(line) as { port?: number } & Request;
      if (rec.port !== undefined) resolve(rec.port);
      else requests.push(rec);
    });
    receiver!.once('exit', (code) => reject(new Error(`webhook receiver exited (${code})`)));
  });
  writeFileSync(join(dir, 'webhook.key'), `${SECRET}\n`, { mode: 0o600 });
  configPath = join(dir, 'agent.yaml');
  writeFileSync(configPath, stringify({
    agent: {
      stateDir, api: { port: 0 }, xdp: { pinDir: `/sys/fs/bpf/${uniqueName('flwh')}` },
      notify: {
        webhooks: [
          { name: 'ops', url: `http://127.0.0.1:${port}/ops`, events: ['apply', 'vrrp-transition'], secretFile: join(dir, 'webhook.key') },
          { name: 'stuck', url: `http://127.0.0.1:${port}/hang`, events: ['apply'], secretFile: join(dir, 'webhook.key'), timeoutMs: 60_000 },
        ],
      },
    },
  }));
  agent = await AgentProcess.start(configPath, { netns: lb.name });
});

after(async () => {
  if (skip) return;
  await agent?.kill9().catch(() => undefined);
  if (receiver) await kill(receiver);
  for (const ns of [lb, peer]) await ns?.delete();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const token = (): string => readFileSync(join(stateDir, 'admin.token'), 'utf8').trim();
const api = (method: string, path: string, body?: unknown) =>
  nsHttp(lb.name, {
    url: `${agent!.server}${path}`, method,
    headers: { authorization: `Bearer ${token()}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the receiver got: ${requests.map((r) => `${r.path} ${r.headers['x-fulcrum-event']}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const event = (r: Request) => JSON.parse(r.body) as { node: string; type: string; message: string; data: { from?: string; to?: string; revision?: number } };
const at = (path: string, type: string, match: (e: ReturnType<typeof event>) => boolean = () => true) =>
  requests.find((r) => r.path === path && r.headers['x-fulcrum-event'] === type && match(event(r)));

test('a change through the API reaches the webhook signed; a stuck webhook does not hold up the next change; a reload rotates the key and removes a webhook; SIGTERM delivers the last transition', { skip }, async () => {
  const put = await api('PUT', '/v1/vrrp/vi', VI);
  assert.equal(put.status, 201, put.body);
  const revision = (JSON.parse(put.body) as { revision: number }).revision;
  const applied = await waitFor('the apply event of the PUT at /ops', () => at('/ops', 'apply', (e) => e.data.revision === revision));
  const ts = applied.headers['x-fulcrum-timestamp']!;
  assert.equal(applied.headers['x-fulcrum-signature'], `sha256=${createHmac('sha256', SECRET).update(`${ts}.${applied.body}`).digest('hex')}`,
    'HMAC-SHA256 with the secret file (without its newline) over timestamp.body');
  assert.equal(applied.headers['content-type'], 'application/json');
  assert.equal(event(applied).type, 'apply');
  assert.match(event(applied).message, /vi/);
  assert.ok(event(applied).node.length > 0, 'the body names the node');

  // Its first request is the apply of the config file's seed at start.
  await waitFor('the stuck webhook holding its first request', () => at('/hang', 'apply'));
  await waitFor('vi master at /ops', () => at('/ops', 'vrrp-transition', (e) => e.data.to === 'master'));
  // The stuck receiver still holds its request: the next change is applied and answered all the same.
  const again = await api('PUT', '/v1/vrrp/vi', { ...VI, priority: 140 });
  assert.equal(again.status, 200, again.body);
  await waitFor('the second apply at /ops', () => at('/ops', 'apply', (e) => e.data.revision === revision + 1));
  assert.equal(requests.filter((r) => r.path === '/hang').length, 1, 'one request at a time per webhook: the two PUTs wait in its queue');

  const metrics = (await nsHttp(lb.name, { url: `${agent!.server}/metrics`, headers: { authorization: `Bearer ${token()}` } })).body;
  assert.match(metrics, /^fulcrum_webhook_deliveries_total\{webhook="ops",result="delivered"\} [3-9]$/m);
  assert.match(metrics, /^fulcrum_webhook_queue_length\{webhook="stuck"\} 2$/m);
  assert.match(metrics, /^fulcrum_webhook_dropped_total\{webhook="stuck"\} 0$/m);

  // A reload (SIGHUP) with a rotated key and "stuck" removed: no restart; the next change reaches
  // /ops signed with the new key, /hang gets nothing more.
  const ROTATED = 'the-rotated-webhook-key-of-the-kernel-test';
  writeFileSync(join(dir, 'webhook-2.key'), `${ROTATED}\n`, { mode: 0o600 });
  const cfg = parse(readFileSync(configPath, 'utf8')) as { agent: { notify: { webhooks: Array<{ name: string; secretFile: string }> } } };
  cfg.agent.notify.webhooks = cfg.agent.notify.webhooks.filter((w) => w.name === 'ops').map((w) => ({ ...w, secretFile: join(dir, 'webhook-2.key') }));
  writeFileSync(configPath, stringify(cfg));
  const hangBefore = requests.filter((r) => r.path === '/hang').length;
  agent!.proc.kill('SIGHUP');
  const reloaded = await waitFor('the reload logged', () => agent!.logs.find((l) => String(l.msg).startsWith('config file reloaded')));
  assert.ok(!(reloaded.restartNeeded as string[]).includes('agent.notify'), JSON.stringify(reloaded));
  const third = await api('PUT', '/v1/vrrp/vi', { ...VI, priority: 130 });
  assert.equal(third.status, 200, third.body);
  const rotated = await waitFor('the third apply at /ops', () => at('/ops', 'apply', (e) => e.data.revision === revision + 2));
  const ts3 = rotated.headers['x-fulcrum-timestamp']!;
  assert.equal(rotated.headers['x-fulcrum-signature'], `sha256=${createHmac('sha256', ROTATED).update(`${ts3}.${rotated.body}`).digest('hex')}`, 'signed with the rotated key');
  assert.notEqual(rotated.headers['x-fulcrum-signature'], `sha256=${createHmac('sha256', SECRET).update(`${ts3}.${rotated.body}`).digest('hex')}`);
  assert.equal(requests.filter((r) => r.path === '/hang').length, hangBefore, 'the removed webhook got no new request');

  assert.equal(await agent!.stop(), 0, 'SIGTERM ends the agent with a stuck webhook');
  // Delivered before the agent exited; the receiver's line may still be on its way to us.
  await waitFor('the hand-over at stop (master -> init) at /ops', () => at('/ops', 'vrrp-transition', (e) => e.data.from === 'master' && e.data.to === 'init'), 5000);
});
