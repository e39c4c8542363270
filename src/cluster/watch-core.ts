/**
 * The resume logic of the spec watch, as a pure state machine: inputs are what the etcd stream
 * and the re-list report, outputs are actions for a driver (src/cluster/watch.ts) to carry out.
 * It trusts nothing but its own record of what it delivered:
 *
 * - before the first stream it reads the key as of the starting revision (its version), so that
 *   even the first event is checked;
 * - a stream always starts at `resumeFrom` = (last delivered revision or last full list) + 1,
 *   never where a library thinks it was;
 * - an event at or below the last delivered revision is a duplicate and dropped;
 * - every put of one key raises its `version` by exactly 1 (etcd mvcc), so a put whose version is
 *   not the last one + 1 means a change was missed or came out of order: the stream is dropped
 *   and reopened from the last delivered revision, which makes etcd send the missing ones again;
 * - when etcd answers that the start revision was compacted, the intermediate revisions are
 *   gone: the key is listed and its current value delivered as a `snapshot`, then the watch goes
 *   on from the list's revision + 1.
 */

export interface SpecKv {
  modRevision: number;
  createRevision: number;
  /** etcd's version of the key: 1 for the first put after creation, +1 per put; 0 in a delete. */
  version: number;
  value: Buffer | undefined;
}

export interface SpecEvent extends SpecKv { type: 'put' | 'delete' }

export interface Delivery {
  revision: number;
  /** put/delete: one revision of the key; snapshot: its value after a compaction (or a resync). */
  kind: 'put' | 'delete' | 'snapshot';
  /** undefined for a delete, or a snapshot of a key that does not exist. */
  value: Buffer | undefined;
}

export type WatchInput =
  | { type: 'start' }
  | { type: 'stop' }
  | { type: 'created'; stream: number }
  | { type: 'events'; stream: number; events: readonly SpecEvent[] }
  | { type: 'compacted'; stream: number; compactRevision: number }
  | { type: 'closed'; stream: number; error?: string | undefined }
  | { type: 'listed'; kv: SpecKv | undefined; revision: number }
  | { type: 'listFailed'; error: string }
  /** The key as of the starting revision (undefined: it did not exist then). */
  | { type: 'probed'; kv: SpecKv | undefined }
  | { type: 'probeFailed'; compacted: boolean; error: string }
  /** A periodic read of the key while watching: its mod_revision now. */
  | { type: 'checked'; modRevision: number }
  /** The backoff timer the driver set for the last `backoff` action fired. */
  | { type: 'retry' };

export type WatchAction =
  | { type: 'deliver'; delivery: Delivery }
  | { type: 'open'; stream: number; fromRevision: number }
  | { type: 'cancel'; stream: number }
  | { type: 'list' }
  /** Read the key as of this revision (a range with `revision`). */
  | { type: 'probe'; revision: number }
  | { type: 'backoff'; ms: number };

export interface WatchStats {
  streams: number;
  delivered: number;
  duplicates: number;
  gaps: number;
  relists: number;
  disconnects: number;
  /** etcd answered with a revision below the delivered one (restored from a backup). */
  rewinds: number;
  /** Streams dropped because they stopped delivering while the key moved on. */
  stalls: number;
}

export interface WatchResumeOptions {
  /** First retry delay after a failure (doubles per failure up to maxBackoffMs). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

type Phase = 'idle' | 'probing' | 'watching' | 'listing' | 'waiting' | 'stopped';

export class WatchResume {
  private phase: Phase = 'idle';
  private stream = 0;
  private delivered: number;
  private resumeFrom: number;
  /** version and create_revision of the key at `delivered`; undefined until first seen. */
  private lastVersion: number | undefined;
  private lastCreate: number | undefined;
  private failures = 0;
  /** After a gap, a `created` does not reset the backoff: only a delivery does. */
  private suspect = false;
  private next: 'open' | 'list' | 'probe' = 'open';
  /** The key's revision at the last check, when it was ahead of what was delivered. */
  private behindAt: number | undefined;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  readonly stats: WatchStats = { streams: 0, delivered: 0, duplicates: 0, gaps: 0, relists: 0, disconnects: 0, rewinds: 0, stalls: 0 };

  /** fromRevision: the last revision the caller has (applied); the watch delivers what follows. */
  constructor(fromRevision: number, options: WatchResumeOptions = {}) {
    this.delivered = fromRevision;
    this.resumeFrom = fromRevision + 1;
    if (fromRevision === 0) this.lastVersion = 0; // nothing existed at revision 0
    this.minBackoff = options.minBackoffMs ?? 100;
    this.maxBackoff = options.maxBackoffMs ?? 2000;
  }

  /** The last revision delivered (or the starting one). */
  get revision(): number {
    return this.delivered;
  }

  get state(): Phase {
    return this.phase;
  }

  step(input: WatchInput): WatchAction[] {
    if (this.phase === 'stopped') return [];
    switch (input.type) {
      case 'start':
        if (this.phase !== 'idle') return [];
        return this.lastVersion === undefined ? this.probe() : this.open();
      case 'probed':
        if (this.phase !== 'probing') return [];
        this.lastVersion = input.kv?.version ?? 0;
        this.lastCreate = input.kv?.createRevision;
        return this.open();
      case 'probeFailed':
        if (this.phase !== 'probing') return [];
        if (input.compacted) { this.stats.relists++; return this.list(); }
        return this.retryLater('probe');
      case 'stop': {
        const out: WatchAction[] = this.phase === 'watching' ? [{ type: 'cancel', stream: this.stream }] : [];
        this.phase = 'stopped';
        return out;
      }
      case 'created':
        if (!this.current(input.stream)) return [];
        if (!this.suspect) this.failures = 0;
        return [];
      case 'events':
        return this.current(input.stream) ? this.onEvents(input.events) : [];
      case 'compacted':
        if (!this.current(input.stream)) return [];
        this.stats.relists++;
        return this.list();
      case 'closed':
        if (!this.current(input.stream)) return [];
        this.stats.disconnects++;
        return this.retryLater('open');
      case 'listed':
        return this.phase === 'listing' ? this.onListed(input.kv, input.revision) : [];
      case 'listFailed':
        return this.phase === 'listing' ? this.retryLater('list') : [];
      case 'checked': {
        if (this.phase !== 'watching') return [];
        if (input.modRevision <= this.delivered) { this.behindAt = undefined; return []; }
        if (this.behindAt === undefined || this.behindAt <= this.delivered) { this.behindAt = input.modRevision; return []; }
        // Ahead at two checks and nothing of it delivered in between: the stream is stuck.
        this.behindAt = undefined;
        this.stats.stalls++;
        return [{ type: 'cancel', stream: this.stream }, ...this.retryLater('open')];
      }
      case 'retry':
        if (this.phase !== 'waiting') return [];
        return this.next === 'list' ? this.list() : this.next === 'probe' ? this.probe() : this.open();
    }
  }

  private current(stream: number): boolean {
    return this.phase === 'watching' && stream === this.stream;
  }

  private open(): WatchAction[] {
    this.phase = 'watching';
    this.stream++;
    this.stats.streams++;
    return [{ type: 'open', stream: this.stream, fromRevision: this.resumeFrom }];
  }

  private probe(): WatchAction[] {
    this.phase = 'probing';
    return [{ type: 'probe', revision: this.delivered }];
  }

  private list(): WatchAction[] {
    this.phase = 'listing';
    return [{ type: 'list' }];
  }

  private retryLater(next: 'open' | 'list' | 'probe'): WatchAction[] {
    this.phase = 'waiting';
    this.next = next;
    const ms = this.failures === 0 ? 0 : Math.min(this.maxBackoff, this.minBackoff * 2 ** (this.failures - 1));
    this.failures++;
    return [{ type: 'backoff', ms }];
  }

  private onEvents(events: readonly SpecEvent[]): WatchAction[] {
    const out: WatchAction[] = [];
    // etcd sends one key's events in revision order; sort anyway, the version check catches the rest.
    const sorted = [...events].sort((a, b) => a.modRevision - b.modRevision);
    for (const e of sorted) {
      if (e.modRevision <= this.delivered) { this.stats.duplicates++; continue; }
      if (!this.follows(e)) {
        // A change between the last delivered one and this one is missing: ask etcd again.
        this.stats.gaps++;
        this.suspect = true;
        out.push({ type: 'cancel', stream: this.stream }, ...this.retryLater('open'));
        return out;
      }
      this.delivered = e.modRevision;
      this.resumeFrom = e.modRevision + 1;
      this.lastVersion = e.type === 'delete' ? 0 : e.version;
      this.lastCreate = e.type === 'delete' ? undefined : e.createRevision;
      this.failures = 0;
      this.suspect = false;
      this.stats.delivered++;
      out.push({ type: 'deliver', delivery: { revision: e.modRevision, kind: e.type, value: e.type === 'delete' ? undefined : e.value } });
    }
    return out;
  }

  /** Whether e is the key's next change after the last delivered one. */
  private follows(e: SpecEvent): boolean {
    if (this.lastVersion === undefined) return true; // unreachable: start probes first
    if (e.type === 'delete') return this.lastVersion > 0;
    if (this.lastVersion === 0) return e.version === 1; // re-created after a delete
    return e.createRevision === this.lastCreate && e.version === this.lastVersion + 1;
  }

  private onListed(kv: SpecKv | undefined, revision: number): WatchAction[] {
    const out: WatchAction[] = [];
    const known = this.lastVersion !== undefined;
    if (revision < this.delivered) {
      // etcd is behind what was delivered: it was restored from a backup or replaced. Its state
      // is the truth now; the revision goes down once, and the watch goes on from there.
      this.stats.rewinds++;
      this.delivered = 0;
      this.resumeFrom = 1;
      out.push(this.snapshot(kv?.modRevision ?? revision, kv?.value));
    } else if (kv && kv.modRevision > this.delivered) out.push(this.snapshot(kv.modRevision, kv.value));
    else if (!kv && (!known || this.lastVersion! > 0) && revision > this.delivered) {
      // The key was deleted while compacted away: its state is empty from the list's revision on.
      out.push(this.snapshot(revision, undefined));
    }
    this.lastVersion = kv?.version ?? 0;
    this.lastCreate = kv?.createRevision;
    this.failures = 0;
    this.suspect = false;
    // Nothing changed the key up to `revision`: resume after it (not after `delivered`, which a
    // later compaction may pass again, and again).
    this.resumeFrom = Math.max(this.resumeFrom, revision + 1);
    out.push(...this.open());
    return out;
  }

  private snapshot(revision: number, value: Buffer | undefined): WatchAction {
    this.delivered = revision;
    this.stats.delivered++;
    return { type: 'deliver', delivery: { revision, kind: 'snapshot', value } };
  }
}
