import { EventEmitter } from 'node:events';

/**
 * The agent's event bus: applies, drift repairs, health transitions, VRRP transitions. Components
 * publish; the REST API streams them (SSE). Keeps a bounded ring of recent events for late readers.
 */
/** Every type of event the agent publishes (webhooks select from these; docs/alerts.md lists them). */
export const EVENT_TYPES = [
  'apply', 'apply-failed', 'reconcile-failed', 'drift-repaired', 'health-applied',
  'backend-up', 'backend-down', 'quorum-lost', 'quorum-regained',
  'vrrp-transition', 'vrrp-split-brain', 'vrrp-error', 'vrrp-notify-failed', 'vrrp-maintenance',
  'bgp-announced', 'bgp-withdrawn', 'bgp-session', 'bgp-error',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface FulcrumEvent {
  type: EventType;
  /** ISO-8601 time the event was published. */
  time: string;
  component: 'ipvs' | 'xdp' | 'agent' | 'api' | 'health' | 'vrrp' | 'bgp';
  service?: string;
  message: string;
  data?: unknown;
  /** Monotonic sequence number, set by the bus. */
  seq?: number;
}

export class EventBus {
  private readonly emitter = new EventEmitter();
  private readonly ring: FulcrumEvent[] = [];
  private seq = 0;

  constructor(private readonly keep = 1000, private readonly now: () => Date = () => new Date()) {
    this.emitter.setMaxListeners(0);
  }

  publish(event: Omit<FulcrumEvent, 'time' | 'seq'> & { time?: string }): FulcrumEvent {
    const full: FulcrumEvent = { ...event, time: event.time ?? this.now().toISOString(), seq: ++this.seq };
    this.ring.push(full);
    if (this.ring.length > this.keep) this.ring.shift();
    this.emitter.emit('event', full);
    return full;
  }

  /** Calls `listener` for every event from now on; returns the unsubscribe function. */
  subscribe(listener: (e: FulcrumEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  /** Events with a sequence number above `afterSeq` (for SSE Last-Event-ID). */
  recent(afterSeq = 0): FulcrumEvent[] {
    return this.ring.filter((e) => (e.seq ?? 0) > afterSeq);
  }
}
