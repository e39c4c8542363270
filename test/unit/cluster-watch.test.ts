// The watch-resume core (src/cluster/watch-core.ts) stepped by hand, and its driver
// (src/cluster/watch.ts) against a fake etcd that disconnects, repeats, reorders and compacts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WatchResume, type SpecEvent, type WatchAction } from '../../src/cluster/watch-core.js';
import { CompactedError, SpecWatcher, type SpecWatchTransport } from '../../src/cluster/watch.js';
import type { Delivery } from '../../src/cluster/watch-core.js';
import type { Clock } from '../../src/util/clock.js';

const put = (rev: number, version: number, create = 2): SpecEvent => ({ type: 'put', modRevision: rev, createRevision: create, version, value: Buffer.from(`v${rev}`) });
const del = (rev: number): SpecEvent => ({ type: 'delete', modRevision: rev, createRevision: 0, version: 0, value: undefined });
const delivered = (as: WatchAction[]) => as.flatMap((a) => (a.type === 'deliver' ? [[a.delivery.kind, a.delivery.revision]] : []));
const kinds = (as: WatchAction[]) => as.map((a) => a.type);
const opened = (as: WatchAction[]) => as.flatMap((a) => (a.type === 'open' ? [a.fromRevision] : []));
/** Starts a core at fromRevision where the key had this version (the probe answered). */
function started(fromRevision: number, version: number, options = {}): WatchResume {
  const w = new WatchResume(fromRevision, options);
  assert.deepEqual(w.step({ type: 'start' }), [{ type: 'probe', revision: fromRevision }]);
  assert.deepEqual(opened(w.step({ type: 'probed', kv: version === 0 ? undefined : { modRevision: fromRevision, createRevision: 2, version, value: Buffer.from('p') } })), [fromRevision + 1]);
  return w;
}

describe('WatchResume (pure core)', () => {
  test('opens after the caller\'s revision, delivers in order, drops what it already delivered', () => {
    const w = started(4, 2);
    assert.deepEqual(w.step({ type: 'created', stream: 1 }), []);
    assert.deepEqual(delivered(w.step({ type: 'events', stream: 1, events: [put(5, 3), put(8, 4)] })), [['put', 5], ['put', 8]]);
    assert.deepEqual(delivered(w.step({ type: 'events', stream: 1, events: [put(8, 4), put(5, 3)] })), []);
    assert.equal(w.stats.duplicates, 2);
    assert.equal(w.revision, 8);
  });

  test('a disconnect mid-stream resumes after the last delivered revision, whatever came before', () => {
    const w = new WatchResume(0);
    w.step({ type: 'start' });
    w.step({ type: 'events', stream: 1, events: [put(3, 1), put(4, 2)] });
    assert.deepEqual(w.step({ type: 'closed', stream: 1, error: 'ECONNRESET' }), [{ type: 'backoff', ms: 0 }]);
    assert.deepEqual(w.step({ type: 'retry' }), [{ type: 'open', stream: 2, fromRevision: 5 }]);
    // Events of the dead stream that arrive late are ignored.
    assert.deepEqual(w.step({ type: 'events', stream: 1, events: [put(9, 3)] }), []);
    // etcd (or a proxy) repeats what was delivered: dropped; the new one goes through.
    assert.deepEqual(delivered(w.step({ type: 'events', stream: 2, events: [put(3, 1), put(4, 2), put(6, 3)] })), [['put', 6]]);
    assert.equal(w.stats.duplicates, 2);
    assert.equal(w.stats.disconnects, 1);
  });

  test('a missed change (version jump) or one out of order reopens from the last delivered revision', () => {
    const w = new WatchResume(0);
    w.step({ type: 'start' });
    w.step({ type: 'events', stream: 1, events: [put(3, 1)] });
    // 7 has version 3: the put with version 2 is missing. Nothing after the gap is delivered.
    const a = w.step({ type: 'events', stream: 1, events: [put(7, 3), put(9, 4)] });
    assert.deepEqual(kinds(a), ['cancel', 'backoff']);
    assert.deepEqual(delivered(a), []);
    assert.equal(w.stats.gaps, 1);
    assert.deepEqual(opened(w.step({ type: 'retry' })), [4]);
    // The created of a suspect stream does not reset the backoff; a delivery does.
    w.step({ type: 'created', stream: 2 });
    assert.deepEqual(delivered(w.step({ type: 'events', stream: 2, events: [put(9, 4), put(5, 2), put(7, 3)] })), [['put', 5], ['put', 7], ['put', 9]]);
  });

  test('delete and re-create keep the version chain', () => {
    const w = new WatchResume(0);
    w.step({ type: 'start' });
    assert.deepEqual(delivered(w.step({ type: 'events', stream: 1, events: [put(2, 1), del(3), put(4, 1, 4), put(5, 2, 4)] })), [['put', 2], ['delete', 3], ['put', 4], ['put', 5]]);
    // A re-created key (version 1, new create revision) without the delete in between is a gap.
    assert.deepEqual(kinds(w.step({ type: 'events', stream: 1, events: [put(8, 1, 8)] })), ['cancel', 'backoff']);
  });

  test('from revision 0 there is nothing to probe; the first event is checked too', () => {
    const w = new WatchResume(0);
    assert.deepEqual(w.step({ type: 'start' }), [{ type: 'open', stream: 1, fromRevision: 1 }]);
    assert.deepEqual(kinds(w.step({ type: 'events', stream: 1, events: [put(5, 2)] })), ['cancel', 'backoff'], 'version 2 first: the first put is missing');
  });

  test('the probe: the first event must follow the version at the start revision; a compacted start lists', () => {
    const w = started(10, 3);
    assert.deepEqual(kinds(w.step({ type: 'events', stream: 1, events: [put(14, 5)] })), ['cancel', 'backoff']);
    const c = new WatchResume(10);
    c.step({ type: 'start' });
    assert.deepEqual(c.step({ type: 'probeFailed', compacted: true, error: 'compacted' }), [{ type: 'list' }]);
    const f = new WatchResume(10);
    f.step({ type: 'start' });
    assert.deepEqual(f.step({ type: 'probeFailed', compacted: false, error: 'ECONNREFUSED' }), [{ type: 'backoff', ms: 0 }]);
    assert.deepEqual(f.step({ type: 'retry' }), [{ type: 'probe', revision: 10 }]);
  });

  test('etcd behind the delivered revision (restored from a backup): one snapshot of its state, then on from there', () => {
    const w = started(500, 4);
    w.step({ type: 'compacted', stream: 1, compactRevision: 0 });
    const a = w.step({ type: 'listed', kv: { modRevision: 30, createRevision: 2, version: 9, value: Buffer.from('r') }, revision: 40 });
    assert.deepEqual(delivered(a), [['snapshot', 30]]);
    assert.deepEqual(opened(a), [41]);
    assert.equal(w.stats.rewinds, 1);
  });

  test('compacted: lists, delivers a snapshot, resumes after the list revision; compacted again with no change: no delivery, no loop', () => {
    const w = started(10, 1);
    assert.deepEqual(w.step({ type: 'compacted', stream: 1, compactRevision: 40 }), [{ type: 'list' }]);
    const a = w.step({ type: 'listed', kv: { modRevision: 38, createRevision: 2, version: 20, value: Buffer.from('x') }, revision: 45 });
    assert.deepEqual(delivered(a), [['snapshot', 38]]);
    assert.deepEqual(opened(a), [46]);
    assert.deepEqual(w.step({ type: 'compacted', stream: 2, compactRevision: 60 }), [{ type: 'list' }]);
    const b = w.step({ type: 'listed', kv: { modRevision: 38, createRevision: 2, version: 20, value: Buffer.from('x') }, revision: 70 });
    assert.deepEqual(delivered(b), []);
    assert.deepEqual(opened(b), [71]);
    // The version chain continues from the snapshot.
    assert.deepEqual(delivered(w.step({ type: 'events', stream: 3, events: [put(72, 21)] })), [['put', 72]]);
    assert.equal(w.stats.relists, 2);
  });

  test('a key gone while compacted away is delivered as an empty snapshot at the list revision', () => {
    const w = started(10, 2);
    w.step({ type: 'events', stream: 1, events: [put(12, 3)] });
    w.step({ type: 'compacted', stream: 1, compactRevision: 20 });
    const a = w.step({ type: 'listed', kv: undefined, revision: 25 });
    assert.deepEqual(a.filter((x) => x.type === 'deliver'), [{ type: 'deliver', delivery: { revision: 25, kind: 'snapshot', value: undefined } }]);
  });

  test('failures back off exponentially up to the cap, and a delivery resets it', () => {
    const w = new WatchResume(0, { minBackoffMs: 100, maxBackoffMs: 500 });
    w.step({ type: 'start' });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const [b] = w.step({ type: 'closed', stream: i + 1 });
      delays.push((b as { ms: number }).ms);
      w.step({ type: 'retry' });
    }
    assert.deepEqual(delays, [0, 100, 200, 400, 500, 500]);
    w.step({ type: 'events', stream: 7, events: [put(3, 1)] });
    assert.deepEqual(w.step({ type: 'closed', stream: 7 }), [{ type: 'backoff', ms: 0 }]);
    // A failed list retries the list.
    w.step({ type: 'retry' });
    w.step({ type: 'compacted', stream: 8, compactRevision: 9 });
    // (the reconnect before it counts: no delivery in between)
    assert.deepEqual(w.step({ type: 'listFailed', error: 'ECONNREFUSED' }), [{ type: 'backoff', ms: 100 }]);
    assert.deepEqual(w.step({ type: 'retry' }), [{ type: 'list' }]);
  });

  test('a stream that stops delivering while the key moves on is dropped after two checks', () => {
    const w = started(10, 1);
    w.step({ type: 'events', stream: 1, events: [put(12, 2)] });
    assert.deepEqual(w.step({ type: 'checked', modRevision: 12 }), [], 'up to date');
    assert.deepEqual(w.step({ type: 'checked', modRevision: 15 }), [], 'ahead once: the event may be on its way');
    assert.deepEqual(delivered(w.step({ type: 'events', stream: 1, events: [put(15, 3)] })), [['put', 15]]);
    assert.deepEqual(w.step({ type: 'checked', modRevision: 20 }), [], 'delivered what the last check saw: not stuck');
    assert.deepEqual(kinds(w.step({ type: 'checked', modRevision: 21 })), ['cancel', 'backoff']);
    assert.equal(w.stats.stalls, 1);
    assert.deepEqual(opened(w.step({ type: 'retry' })), [16]);
  });

  test('stop cancels the stream and ignores everything after', () => {
    const w = new WatchResume(0);
    w.step({ type: 'start' });
    assert.deepEqual(w.step({ type: 'stop' }), [{ type: 'cancel', stream: 1 }]);
    assert.deepEqual(w.step({ type: 'events', stream: 1, events: [put(3, 1)] }), []);
    assert.deepEqual(w.step({ type: 'retry' }), []);
  });
});

/** A seeded PRNG (mulberry32): the same schedule for a seed, every run. */
function rng(seed: number): () => number {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An etcd with one key, misbehaving on purpose: it drops streams mid-batch, replays old events
 * after a reconnect, splits and reorders batches (keeping each stream's per-key order when told),
 * and compacts. Other keys advance the revision too (revisions are not consecutive).
 */
class FakeEtcd implements SpecWatchTransport {
  revision = 1;
  history: SpecEvent[] = [];
  all: SpecEvent[] = [];
  compacted = 0;
  readonly opens: number[] = [];
  /** Streams opened while this is set accept and then never send (a half-open connection). */
  silent = false;
  private streams = new Set<{ from: number; sent: number; l: Parameters<SpecWatchTransport["watch"]>[2]; dead: boolean; silent: boolean }>();
  constructor(private readonly random: () => number) {}

  write(): void {
    this.revision += 1 + Math.floor(this.random() * 3);
    const last = this.history.at(-1);
    const e = put(this.revision, (last?.version ?? 0) + 1);
    this.history.push(e);
    this.all.push(e);
  }

  compact(): void {
    this.compacted = this.revision;
    this.history = this.history.slice(-1); // etcd keeps the latest revision of each key
  }

  async get(_key: string, at?: number) {
    if (at !== undefined && at < this.compacted) throw new CompactedError(`required revision ${at} has been compacted (${this.compacted})`);
    const last = this.all.filter((e) => at === undefined || e.modRevision <= at).at(-1);
    return { kv: last && { ...last }, revision: at ?? this.revision };
  }

  watch(_key: string, from: number, l: Parameters<SpecWatchTransport['watch']>[2]) {
    this.opens.push(from);
    const s = { from, sent: 0, l, dead: false, silent: this.silent };
    this.streams.add(s);
    queueMicrotask(() => {
      if (s.dead) return;
      l.created();
      if (from <= this.compacted) { s.dead = true; this.streams.delete(s); l.compacted(this.compacted); }
    });
    return { cancel: () => { if (!s.dead) { s.dead = true; this.streams.delete(s); l.closed(undefined); } } };
  }

  /** Sends each live stream what it has not had yet, misbehaving by the dice. */
  pump(): void {
    for (const s of [...this.streams]) {
      if (s.dead || s.silent) continue;
      // A stream opened before a compaction goes on (as in etcd): offsets are into the full history.
      const pending = this.all.filter((e) => e.modRevision >= s.from).slice(s.sent);
      if (pending.length === 0) continue;
      const n = 1 + Math.floor(this.random() * pending.length);
      let batch = pending.slice(0, n);
      s.sent += n;
      const r = this.random();
      if (r < 0.15) batch = [...this.all.filter((e) => e.modRevision < s.from).slice(-2), ...batch]; // replay
      else if (r < 0.25) batch = [...batch].reverse(); // out of order within a batch
      else if (r < 0.3 && batch.length > 1) { // out of order across batches: the first is held back
        s.sent -= batch.length;
        batch = batch.slice(1);
        s.l.events(batch);
        continue; // the stream is now ahead of itself: the core must notice the version jump
      }
      s.l.events(batch);
      if (this.random() < 0.2) { s.dead = true; this.streams.delete(s); s.l.closed(new Error('ECONNRESET')); }
    }
  }

  dropAll(): void {
    for (const s of this.streams) { s.dead = true; s.l.closed(new Error('ECONNRESET')); }
    this.streams.clear();
  }
}

const tick = () => new Promise((r) => setImmediate(r));
/** Backoff timers fire on the next turn of the loop (the delays are the core's, tested above). */
const soonClock: Clock = {
  now: () => 0, wallNow: () => 0,
  setTimer: (fn) => setImmediate(fn),
  clearTimer: (h) => clearImmediate(h as NodeJS.Immediate),
};

describe('SpecWatcher (driver) against a misbehaving fake etcd', () => {
  test('over 150 random schedules: revisions strictly increasing, every put delivered once unless a snapshot covered it, ends at the last', async () => {
    const total = { duplicates: 0, gaps: 0, relists: 0, disconnects: 0 };
    for (let seed = 1; seed <= 150; seed++) {
      const random = rng(seed);
      const etcd = new FakeEtcd(random);
      etcd.write();
      const start = etcd.revision;
      const got: Delivery[] = [];
      const w = new SpecWatcher(etcd, '/k', start, (d) => { got.push(d); }, { clock: soonClock, stallCheckMs: 0 });
      w.start();
      const written: number[] = [];
      let compactions = 0;
      for (let step = 0; step < 120; step++) {
        const r = random();
        if (r < 0.5) { etcd.write(); written.push(etcd.revision); }
        else if (r < 0.55) etcd.dropAll();
        else if (r < 0.58) {
          // Writes the watcher has not seen, compacted, and its stream dropped: it must re-list.
          etcd.dropAll(); etcd.write(); written.push(etcd.revision); etcd.write(); written.push(etcd.revision);
          etcd.compact(); compactions++;
        }
        etcd.pump();
        await tick();
      }
      const last = etcd.revision;
      for (let i = 0; i < 200 && w.revision < etcd.history.at(-1)!.modRevision; i++) { etcd.pump(); await tick(); }
      await w.stop();
      const revs = got.map((d) => d.revision);
      assert.ok(revs.every((x, i) => i === 0 || x > revs[i - 1]!), `seed ${seed}: strictly increasing ${revs.join(',')}`);
      assert.equal(w.revision, etcd.history.at(-1)!.modRevision, `seed ${seed}: ${JSON.stringify(w.stats)} ends at the last write (etcd at ${last})`);
      // Every written revision is delivered as a put, once, except those a snapshot replaced: then
      // the first delivery at or after it is that snapshot.
      for (const rev of written) {
        const asPut = got.filter((d) => d.kind === 'put' && d.revision === rev).length;
        assert.ok(asPut <= 1, `seed ${seed}: revision ${rev} delivered ${asPut} times`);
        if (asPut === 0) assert.equal(got.find((d) => d.revision >= rev)?.kind, 'snapshot', `seed ${seed}: revision ${rev} neither delivered nor covered by a snapshot`);
      }
      for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += w.stats[k];
      if (compactions === 0) assert.deepEqual(revs, written, `seed ${seed}: without compaction every write, in order`);
      // Each reopen started right after what had been delivered (or after a list).
      assert.ok(etcd.opens.every((from) => from > start), `seed ${seed}: never reopened before its start`);
    }
    // The fake did misbehave in every way, and the core noticed.
    for (const [k, n] of Object.entries(total)) assert.ok(n > 10, `${k}: ${n}`);
  });

  test('reopens from the last delivered revision + 1, not from where the stream had got to', async () => {
    const etcd = new FakeEtcd(() => 0.99); // no misbehaviour by the dice
    const got: number[] = [];
    const w = new SpecWatcher(etcd, '/k', 1, (d) => { got.push(d.revision); }, { clock: soonClock, stallCheckMs: 0 });
    w.start();
    await tick();
    for (let i = 0; i < 3; i++) etcd.write();
    etcd.pump();
    await tick();
    const at = w.revision;
    for (let i = 0; i < 3; i++) etcd.write();
    etcd.dropAll();
    await tick(); await tick();
    assert.deepEqual(etcd.opens, [2, at + 1]);
    etcd.pump();
    await tick();
    assert.equal(got.length, 6);
    await w.stop();
  });

  test('a stream that accepts and never sends is found by the periodic check and replaced', async () => {
    const etcd = new FakeEtcd(() => 0.99);
    etcd.silent = true;
    const got: number[] = [];
    const w = new SpecWatcher(etcd, '/k', 1, (d) => { got.push(d.revision); }, { clock: soonClock, stallCheckMs: 1 });
    w.start();
    await tick();
    etcd.silent = false;
    etcd.write(); etcd.write();
    for (let i = 0; i < 50 && got.length < 2; i++) { etcd.pump(); await tick(); }
    assert.deepEqual(got, etcd.all.map((e) => e.modRevision));
    assert.equal(w.stats.stalls, 1);
    assert.deepEqual(etcd.opens, [2, 2]);
    await w.stop();
  });

  test('a slow delivery holds the next one back; one that throws is reported and the watch goes on', async () => {
    const etcd = new FakeEtcd(() => 0.99);
    const order: string[] = [];
    const errors: string[] = [];
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = new SpecWatcher(etcd, '/k', 1, async (d) => {
      order.push(`start ${d.revision}`);
      calls++;
      if (calls === 1) await gate;
      if (calls === 3) throw new Error('reconcile failed');
      order.push(`end ${d.revision}`);
    }, { clock: soonClock, stallCheckMs: 0, onError: (e) => errors.push(e.message) });
    w.start();
    await tick();
    etcd.write(); etcd.write(); etcd.write();
    etcd.pump();
    await tick();
    const [r1, r2, r3] = etcd.history.map((e) => e.modRevision);
    assert.deepEqual(order, [`start ${r1}`]);
    release();
    for (let i = 0; i < 5; i++) await tick();
    assert.deepEqual(order, [`start ${r1}`, `end ${r1}`, `start ${r2}`, `end ${r2}`, `start ${r3}`]);
    assert.deepEqual(errors, ['reconcile failed']);
    assert.equal(w.revision, r3);
    await w.stop();
  });
});
