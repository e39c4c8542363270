import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';
import { FulcrumError } from '../errors.js';
import type { EventBus, FulcrumEvent } from '../events.js';
import { webhookName, type WebhookSettings } from '../model/agent.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { sameValue } from '../util/json-value.js';

/**
 * `agent.notify.webhooks`: each selected event is POSTed as JSON, signed with HMAC-SHA256 over
 * "<timestamp>.<body>" (docs/alerts.md shows the check). The bus listener only queues: delivery
 * runs beside the agent, one event at a time per webhook, in order; a slow or dead receiver fills
 * its own bounded queue (the oldest event is dropped and counted), never the agent's change path.
 */

export interface WebhookTarget {
  settings: WebhookSettings;
  /** The HMAC key (the contents of secretFile). */
  secret: Buffer;
}

export interface WebhooksOptions {
  events: EventBus;
  metrics: Registry;
  clock: Clock;
  targets: WebhookTarget[];
  /** Sent in every body as `node` (the agent passes the host name). */
  node: string;
  /** Wait before retry n: backoffMs * 2^(n-1), at most maxBackoffMs. Defaults 1000 and 30000. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Told of every event given up on (refused, or out of tries); the agent logs it. */
  onFailure?: (webhook: string, event: FulcrumEvent, reason: string) => void;
}

/** The signature header's value for one body sent at `timestamp` (unix seconds). */
export function webhookSignature(secret: Buffer, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Reads each webhook's secretFile; a missing, unreadable or empty one is INVALID_CONFIG naming the field. */
export function webhookTargets(webhooks: readonly WebhookSettings[]): WebhookTarget[] {
  return webhooks.map((settings, i) => {
    const field = `agent.notify.webhooks[${i}].secretFile`;
    let secret: Buffer;
    try {
      secret = readFileSync(settings.secretFile);
    } catch (e) {
      throw new FulcrumError('INVALID_CONFIG', `${field}: cannot read ${settings.secretFile}: ${(e as Error).message}`, { cause: e });
    }
    let end = secret.length;
    while (end > 0 && (secret[end - 1] === 0x0a || secret[end - 1] === 0x0d)) end--;
    if (end === 0) throw new FulcrumError('INVALID_CONFIG', `${field}: ${settings.secretFile} is empty`);
    return { settings, secret: secret.subarray(0, end) };
  });
}

interface Metrics {
  deliveries: Counter<'webhook' | 'result'>;
  retries: Counter<'webhook'>;
  dropped: Counter<'webhook'>;
  queued: Gauge<'webhook'>;
}

export class Webhooks {
  private queues: WebhookQueue[];
  /** Queues a reload replaced or removed, finishing their events within the grace time. */
  private readonly retiring = new Set<Promise<void>>();
  private readonly metrics: Metrics;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: WebhooksOptions) {
    const registers = [options.metrics];
    const m: Metrics = {
      deliveries: new Counter({ name: 'fulcrum_webhook_deliveries_total', help: 'Events given to a webhook, by result (delivered, or failed after every try)', labelNames: ['webhook', 'result'], registers }),
      retries: new Counter({ name: 'fulcrum_webhook_retries_total', help: 'Webhook tries after the first', labelNames: ['webhook'], registers }),
      dropped: new Counter({ name: 'fulcrum_webhook_dropped_total', help: 'Events a webhook never got: its queue was full, or the agent stopped', labelNames: ['webhook'], registers }),
      queued: new Gauge({ name: 'fulcrum_webhook_queue_length', help: 'Events waiting for a webhook', labelNames: ['webhook'], registers }),
    };
    this.metrics = m;
    this.queues = options.targets.map((t) => new WebhookQueue(t, m, options));
    this.unsubscribe = options.events.subscribe((e) => {
      for (const q of this.queues) q.offer(e);
    });
  }

  /**
   * The webhooks of a reloaded config file. One whose settings and secret are unchanged keeps its
   * queue; a new or changed one starts with an empty queue and gets every event from now on; the
   * events a replaced or removed one had queued still go out as they were queued (its old URL and
   * secret) within `graceMs`, then the rest are dropped and counted.
   */
  update(targets: WebhookTarget[], graceMs = 2000): void {
    const old = new Map(this.queues.map((q) => [q.name, q]));
    this.queues = targets.map((t) => {
      const q = old.get(webhookName(t.settings));
      if (q && q.serves(t)) {
        old.delete(q.name);
        return q;
      }
      return new WebhookQueue(t, this.metrics, this.options);
    });
    for (const q of old.values()) {
      const done: Promise<void> = q.close(graceMs).then(() => { this.retiring.delete(done); });
      this.retiring.add(done);
    }
  }

  /**
   * Stops taking events, gives the queued ones up to `graceMs` (the last VRRP transitions of a
   * stopping agent), then abandons the rest (counted as dropped).
   */
  async close(graceMs = 2000): Promise<void> {
    this.unsubscribe();
    await Promise.all([...this.queues.map((q) => q.close(graceMs)), ...this.retiring]);
  }
}

class WebhookQueue {
  readonly name: string;
  private readonly selected: ReadonlySet<string>;
  private readonly pending: FulcrumEvent[] = [];
  private busy = false;
  private closing = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private wake: { timer: TimerHandle; resolve: () => void } | undefined;
  private idle: Array<() => void> = [];

  constructor(private readonly target: WebhookTarget, private readonly m: Metrics, private readonly options: WebhooksOptions) {
    this.name = webhookName(target.settings);
    this.selected = new Set(target.settings.events);
    for (const result of ['delivered', 'failed']) m.deliveries.inc({ webhook: this.name, result }, 0);
    m.retries.inc({ webhook: this.name }, 0);
    m.dropped.inc({ webhook: this.name }, 0);
    m.queued.set({ webhook: this.name }, 0);
  }

  /** Whether this queue delivers exactly as `target` would (same settings, same secret). */
  serves(target: WebhookTarget): boolean {
    return sameValue(target.settings, this.target.settings) && target.secret.equals(this.target.secret);
  }

  /** Called from EventBus.publish: queues, never waits. */
  offer(event: FulcrumEvent): void {
    if (this.closing || !this.selected.has(event.type)) return;
    if (this.pending.length >= this.target.settings.queueSize) {
      this.pending.shift();
      this.m.dropped.inc({ webhook: this.name });
    }
    this.pending.push(event);
    this.m.queued.set({ webhook: this.name }, this.pending.length);
    this.pump();
  }

  private pump(): void {
    if (this.busy) return;
    const event = this.pending.shift();
    this.m.queued.set({ webhook: this.name }, this.pending.length);
    if (!event) {
      for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    this.busy = true;
    void this.deliver(event).then(() => {
      this.busy = false;
      this.pump();
    });
  }

  private async deliver(event: FulcrumEvent): Promise<void> {
    const { settings, secret } = this.target;
    const body = JSON.stringify({ node: this.options.node, ...event });
    const delivery = randomUUID();
    let reason = '';
    for (let attempt = 1; attempt <= settings.maxAttempts; attempt++) {
      if (attempt > 1) await this.sleep(Math.min((this.options.backoffMs ?? 1000) * 2 ** (attempt - 2), this.options.maxBackoffMs ?? 30_000));
      if (this.stopped) {
        this.m.dropped.inc({ webhook: this.name });
        return;
      }
      if (attempt > 1) this.m.retries.inc({ webhook: this.name });
      const timestamp = Math.floor(this.options.clock.wallNow() / 1000);
      let retryable: boolean;
      try {
        const res = await fetch(settings.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'fulcrum-agent',
            'x-fulcrum-event': event.type,
            'x-fulcrum-delivery': delivery,
            'x-fulcrum-timestamp': String(timestamp),
            'x-fulcrum-signature': webhookSignature(secret, timestamp, body),
          },
          body,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(settings.timeoutMs)]),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.m.deliveries.inc({ webhook: this.name, result: 'delivered' });
          return;
        }
        reason = `HTTP ${res.status}`;
        retryable = res.status >= 500 || res.status === 429;
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        reason = err.name === 'TimeoutError' ? `no answer in ${settings.timeoutMs} ms` : (err.cause?.code ?? err.message);
        retryable = true;
      }
      if (this.stopped) {
        this.m.dropped.inc({ webhook: this.name });
        return;
      }
      if (!retryable) break;
    }
    this.m.deliveries.inc({ webhook: this.name, result: 'failed' });
    this.options.onFailure?.(this.name, event, reason);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.options.clock.setTimer(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = { timer, resolve };
    });
  }

  close(graceMs: number): Promise<void> {
    this.closing = true;
    if (!this.busy && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const deadline = this.options.clock.setTimer(() => {
        this.stopped = true;
        this.abort.abort();
        if (this.wake) {
          this.options.clock.clearTimer(this.wake.timer);
          this.wake.resolve();
          this.wake = undefined;
        }
        this.m.dropped.inc({ webhook: this.name }, this.pending.length);
        this.pending.length = 0;
      }, graceMs);
      this.idle.push(() => {
        this.options.clock.clearTimer(deadline);
        resolve();
      });
    });
  }
}
