import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhooks, webhookTargets, type WebhooksOptions } from '../../src/agent/webhooks.js';
import { EventBus, type FulcrumEvent } from '../../src/events.js';
import { createMetricsRegistry, type Registry } from '../../src/metrics.js';
import { AgentSettingsSchema, type WebhookSettings } from '../../src/model/agent.js';
import { systemClock } from '../../src/util/clock.js';

/**
 * agent.notify.webhooks against a receiver on loopback (node:http): the signature checks out with
 * node:crypto, 5xx and network errors are retried with backoff and 4xx is not, the queue bound
 * holds (the oldest dropped and counted), a hanging receiver never holds up EventBus.publish, and
 * close() ends deliveries.
 */

const SECRET = Buffer.from('s3cret-key-of-the-test');

interface Received { headers: IncomingHttpHeaders; body: string; res: ServerResponse }

class Receiver {
  readonly got: Received[] = [];
  private waiters: Array<() => void> = [];
  private constructor(private readonly server: Server) {}

  /** `answer` decides each response; it may keep `res` to answer later (a hanging receiver). */
  static async start(answer: (r: Received, n: number) => void): Promise<Receiver> {
    let rec: Receiver | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), res };
        rec!.got.push(r);
        answer(r, rec!.got.length);
        for (const w of rec!.waiters.splice(0)) w();
      });
    });
    rec = new Receiver(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return rec;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  async until(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.got.length < n) {
      if (Date.now() > deadline) throw new Error(`receiver got ${this.got.length} requests, not ${n}`);
      await new Promise<void>((resolve) => { this.waiters.push(resolve); setTimeout(resolve, 100); });
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const ok = (r: Received): void => { r.res.end('ok'); };

function settings(url: string, extra: Partial<WebhookSettings> = {}): WebhookSettings {
  const parsed = AgentSettingsSchema.parse({ notify: { webhooks: [{ name: 'test', url, events: ['apply', 'backend-down'], secretFile: '/unused' }] } });
  return { ...parsed.notify.webhooks[0]!, ...extra };
}

function start(s: WebhookSettings, extra: Partial<WebhooksOptions> = {}): { bus: EventBus; metrics: Registry; hooks: Webhooks; failures: string[] } {
  const bus = new EventBus();
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const failures: string[] = [];
  const hooks = new Webhooks({
    events: bus, metrics, clock: systemClock, node: 'lb-test', targets: [{ settings: s, secret: SECRET }],
    backoffMs: 5, maxBackoffMs: 20, onFailure: (w, e, reason) => failures.push(`${w} ${e.type} ${reason}`), ...extra,
  });
  return { bus, metrics, hooks, failures };
}

async function metric(reg: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = reg.getSingleMetric(name);
  if (!m) return undefined;
  const { values } = await m.get();
  return values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
}

const apply = (n: number): Omit<FulcrumEvent, 'time' | 'seq'> => ({ type: 'apply', component: 'agent', message: `change ${n}`, data: { revision: n } });

test('an event is posted as JSON with a valid HMAC-SHA256 signature over timestamp.body; unselected types are not', async () => {
  const rx = await Receiver.start(ok);
  const { bus, metrics, hooks } = start(settings(rx.url));
  try {
    bus.publish({ type: 'vrrp-transition', component: 'vrrp', message: 'not selected' });
    const sent = bus.publish({ ...apply(7), service: 'web' });
    await rx.until(1);
    const [r] = rx.got;
    const ts = r!.headers['x-fulcrum-timestamp'] as string;
    assert.match(ts, /^\d+$/);
    assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 60, 'the timestamp is now');
    const sig = r!.headers['x-fulcrum-signature'] as string;
    const expected = `sha256=${createHmac('sha256', SECRET).update(`${ts}.${r!.body}`).digest('hex')}`;
    assert.ok(timingSafeEqual(Buffer.from(sig), Buffer.from(expected)), `signature ${sig} is HMAC-SHA256(secret, timestamp.body)`);
    const wrongKey = `sha256=${createHmac('sha256', 'other').update(`${ts}.${r!.body}`).digest('hex')}`;
    assert.notEqual(sig, wrongKey);
    assert.equal(r!.headers['content-type'], 'application/json');
    assert.equal(r!.headers['x-fulcrum-event'], 'apply');
    assert.match(r!.headers['x-fulcrum-delivery'] as string, /^[0-9a-f-]{36}$/);
    assert.deepEqual(JSON.parse(r!.body), { node: 'lb-test', ...sent });
    await hooks.close();
    assert.equal(rx.got.length, 1, 'the vrrp-transition event was not selected');
    assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'test', result: 'delivered' }), 1);
    assert.equal(await metric(metrics, 'fulcrum_webhook_dropped_total', { webhook: 'test' }), 0);
  } finally {
    await rx.close();
  }
});

test('500 is retried with backoff (same delivery id and body, a fresh signature), 400 is not', async () => {
  const rx = await Receiver.start((r, n) => { r.res.statusCode = n <= 2 ? 500 : n === 4 ? 400 : 200; r.res.end(); });
  const { bus, metrics, hooks, failures } = start(settings(rx.url));
  try {
    bus.publish(apply(1));
    await rx.until(3);
    const ids = rx.got.map((r) => r.headers['x-fulcrum-delivery']);
    assert.equal(new Set(ids).size, 1, 'one delivery id across the retries');
    assert.equal(new Set(rx.got.map((r) => r.body)).size, 1, 'the same body each time');
    for (const r of rx.got) {
      const ts = r.headers['x-fulcrum-timestamp'] as string;
      assert.equal(r.headers['x-fulcrum-signature'], `sha256=${createHmac('sha256', SECRET).update(`${ts}.${r.body}`).digest('hex')}`);
    }
    bus.publish(apply(2));
    await rx.until(4);
    await hooks.close();
    assert.equal(rx.got.length, 4, '400 is not retried');
    assert.deepEqual(failures, ['test apply HTTP 400']);
    assert.equal(await metric(metrics, 'fulcrum_webhook_retries_total', { webhook: 'test' }), 2);
    assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'test', result: 'delivered' }), 1);
    assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'test', result: 'failed' }), 1);
  } finally {
    await rx.close();
  }
});

test('a refused connection is retried up to maxAttempts, then counted as failed', async () => {
  const rx = await Receiver.start(ok);
  const url = rx.url;
  await rx.close(); // nothing listens on the port now
  const { bus, metrics, hooks, failures } = start(settings(url, { maxAttempts: 3 }));
  bus.publish(apply(1));
  const deadline = Date.now() + 10_000;
  while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await hooks.close();
  assert.deepEqual(failures, ['test apply ECONNREFUSED']);
  assert.equal(await metric(metrics, 'fulcrum_webhook_retries_total', { webhook: 'test' }), 2);
  assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'test', result: 'failed' }), 1);
});

test('a try without an answer within timeoutMs is abandoned and retried', async () => {
  const rx = await Receiver.start(() => undefined);
  const { bus, metrics, hooks, failures } = start(settings(rx.url, { timeoutMs: 100, maxAttempts: 2 }));
  try {
    bus.publish(apply(1));
    await rx.until(2);
    const deadline = Date.now() + 10_000;
    while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await hooks.close();
    assert.deepEqual(failures, ['test apply no answer in 100 ms']);
    assert.equal(rx.got.length, 2);
    assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'test', result: 'failed' }), 1);
  } finally {
    await rx.close();
  }
});

test('a hanging receiver: 1,000 publishes return while it holds the first request; the queue keeps the newest queueSize, drops are counted', async () => {
  const held: ServerResponse[] = [];
  let hanging = true;
  const rx = await Receiver.start((r) => { if (hanging) held.push(r.res); else r.res.end(); });
  const { bus, metrics, hooks } = start(settings(rx.url, { queueSize: 100 }));
  try {
    bus.publish(apply(0));
    await rx.until(1);
    for (let i = 1; i <= 1000; i++) bus.publish(apply(i));
    // Every publish has returned, and the receiver has answered nothing yet.
    assert.equal(held.length, 1);
    assert.equal(held[0]!.writableEnded, false, 'the first request is still unanswered');
    assert.equal(await metric(metrics, 'fulcrum_webhook_dropped_total', { webhook: 'test' }), 900);
    assert.equal(await metric(metrics, 'fulcrum_webhook_queue_length', { webhook: 'test' }), 100);
    hanging = false;
    held[0]!.end();
    await rx.until(101);
    const revisions = rx.got.map((r) => (JSON.parse(r.body) as { data: { revision: number } }).data.revision);
    assert.deepEqual(revisions, [0, ...Array.from({ length: 100 }, (_, i) => 901 + i)], 'in order, the oldest dropped');
    await hooks.close();
    assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'test', result: 'delivered' }), 101);
    assert.equal(await metric(metrics, 'fulcrum_webhook_queue_length', { webhook: 'test' }), 0);
  } finally {
    await rx.close();
  }
});

test('close() with a hanging receiver ends after the grace time; the in-flight and queued events count as dropped', async () => {
  const rx = await Receiver.start(() => undefined);
  const { bus, metrics, hooks } = start(settings(rx.url));
  try {
    bus.publish(apply(1));
    await rx.until(1);
    bus.publish(apply(2));
    bus.publish(apply(3));
    await hooks.close(50);
    assert.equal(await metric(metrics, 'fulcrum_webhook_dropped_total', { webhook: 'test' }), 3);
    bus.publish(apply(4));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(rx.got.length, 1, 'nothing is posted after close');
  } finally {
    await rx.close();
  }
});

test('settings: unknown event types and non-http URLs are refused by name; the secret file is read once, without its newline', () => {
  const r = AgentSettingsSchema.safeParse({ notify: { webhooks: [{ url: 'ftp://h/x', events: ['apply', 'backend-gone'], secretFile: '/s' }] } });
  assert.equal(r.success, false);
  const issues = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  assert.ok(issues.includes('notify.webhooks.0.url: must be an http or https URL'), issues.join('\n'));
  assert.ok(issues.some((i) => /^notify\.webhooks\.0\.events\.1: unknown event type "backend-gone"; known: apply, .*vrrp-transition/.test(i)), issues.join('\n'));
  const dup = AgentSettingsSchema.safeParse({ notify: { webhooks: [{ url: 'http://h/x?a=1', events: ['apply'], secretFile: '/s' }, { url: 'http://h/x', events: ['apply'], secretFile: '/s' }] } });
  assert.match(dup.error!.issues[0]!.message, /duplicate webhook name http:\/\/h\/x/);

  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-webhook-'));
  try {
    writeFileSync(join(dir, 'key'), 'abc\n');
    writeFileSync(join(dir, 'empty'), '\n');
    const s = (file: string) => ({ ...settings('http://127.0.0.1:1/'), secretFile: join(dir, file) });
    assert.deepEqual(webhookTargets([s('key')])[0]!.secret, Buffer.from('abc'));
    const invalid = (re: RegExp) => (e: Error & { code?: string }) => e.code === 'INVALID_CONFIG' && re.test(e.message);
    assert.throws(() => webhookTargets([s('key'), s('empty')]), invalid(/^agent\.notify\.webhooks\[1\]\.secretFile: .*empty is empty$/));
    assert.throws(() => webhookTargets([s('nope')]), invalid(/^agent\.notify\.webhooks\[0\]\.secretFile: cannot read .*nope: ENOENT/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('update (a reload): an unchanged webhook keeps its queue, a changed secret signs the next events with the new key, a removed one stops, a new one starts', async () => {
  const rx = await Receiver.start(ok);
  const other = await Receiver.start(ok);
  const first = settings(rx.url);
  const { bus, metrics, hooks } = start(first);
  const sig = (r: Received, key: Buffer) => r.headers['x-fulcrum-signature'] === `sha256=${createHmac('sha256', key).update(`${r.headers['x-fulcrum-timestamp'] as string}.${r.body}`).digest('hex')}`;
  try {
    bus.publish(apply(1));
    await rx.until(1);
    hooks.update([{ settings: first, secret: SECRET }]);
    bus.publish(apply(2));
    await rx.until(2);
    assert.ok(sig(rx.got[1]!, SECRET), 'unchanged: the same key');
    const rotated = Buffer.from('the-rotated-key-of-the-test');
    hooks.update([{ settings: first, secret: rotated }, { settings: settings(other.url, { name: 'second' }), secret: SECRET }]);
    bus.publish(apply(3));
    await rx.until(3);
    await other.until(1);
    assert.ok(sig(rx.got[2]!, rotated) && !sig(rx.got[2]!, SECRET), 'the rotated key signs events after the reload');
    assert.equal(JSON.parse(other.got[0]!.body).message, 'change 3', 'the new webhook gets events from the reload on');
    hooks.update([{ settings: settings(other.url, { name: 'second' }), secret: SECRET }]);
    bus.publish(apply(4));
    await other.until(2);
    await hooks.close();
    assert.equal(rx.got.length, 3, 'the removed webhook got nothing after the reload');
    assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'test', result: 'delivered' }), 3);
    assert.equal(await metric(metrics, 'fulcrum_webhook_deliveries_total', { webhook: 'second', result: 'delivered' }), 2);
  } finally {
    await rx.close();
    await other.close();
  }
});
