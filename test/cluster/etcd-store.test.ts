// The cluster tier: EtcdStateStore against a real etcd on loopback (test/helpers/etcd.ts).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdClient } from '../../src/cluster/etcd-client.js';
import { EtcdStateStore, type SpecChange } from '../../src/cluster/etcd-store.js';
import { isStoreUnavailable } from '../../src/cluster/errors.js';
import { FulcrumError } from '../../src/errors.js';
import { counterOf, counterState } from '../helpers/cluster-state.js';
import { EtcdProcess, etcdMissing } from '../helpers/etcd.js';

const missing = etcdMissing();
let etcd: EtcdProcess;
let seq = 0;
const stores: EtcdStateStore[] = [];

/** A store on its own cluster name, so that tests do not see each other's keys. */
function store(cluster: string, extra: Partial<ConstructorParameters<typeof EtcdStateStore>[0]> = {}): EtcdStateStore {
  const s = new EtcdStateStore({ client: new EtcdClient({ endpoints: [etcd.url], requestTimeoutMs: 2000 }), cluster, ...extra });
  stores.push(s);
  return s;
}
const newCluster = (name: string) => `${name}-${++seq}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Commits counterState(k) for k = from..to, each against the revision the last one returned. */
async function commitRange(s: EtcdStateStore, revision: number, from: number, to: number): Promise<number> {
  for (let k = from; k <= to; k++) revision = await s.commit(revision, counterState(k));
  return revision;
}

/** Collects deliveries; fails on an invalid one. */
function collector() {
  const seen: SpecChange[] = [];
  return {
    seen,
    onChange: (c: SpecChange) => { seen.push(c); },
    counters: () => seen.map((c) => (c.kind === 'invalid' ? -1 : counterOf(c.state))),
    revisions: () => seen.map((c) => c.revision),
  };
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

describe('EtcdStateStore against a real etcd', { skip: missing }, () => {
  before(async () => { etcd = await EtcdProcess.start(); });
  after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await etcd?.close();
  });

  test('commit then load: the revision is the spec key mod_revision as etcdctl reads it, the state round-trips', async () => {
    const cluster = newCluster('rt');
    const s = store(cluster);
    const empty = await s.load();
    assert.deepEqual({ revision: empty.revision, services: empty.state.services.length, source: empty.source }, { revision: 0, services: 0, source: 'etcd' });
    const state = counterState(7, 5);
    const rev = await s.commit(0, state);
    assert.ok(rev > 0);
    const loaded = await store(cluster).load();
    assert.equal(loaded.revision, rev);
    assert.deepEqual(loaded.state, state);
    assert.ok(Object.isFrozen(loaded.state.services[0]), 'parsed once into a frozen spec');
    const ctl = spawnSync('etcdctl', ['--endpoints', etcd.url, 'get', s.keys.spec, '-w', 'json'], { encoding: 'utf8' });
    assert.equal(ctl.status, 0, ctl.stderr);
    const kv = (JSON.parse(ctl.stdout) as { kvs: Array<{ mod_revision: number; value: string }> }).kvs[0]!;
    assert.equal(kv.mod_revision, rev);
    assert.deepEqual(JSON.parse(Buffer.from(kv.value, 'base64').toString()).services.map((x: { name: string }) => x.name), state.services.map((x) => x.name));
  });

  test('two writers with the same expected revision: one wins, the other gets 412 with the current revision', async () => {
    const cluster = newCluster('race');
    const a = store(cluster), b = store(cluster);
    let rev = await a.commit(0, counterState(0));
    for (let round = 1; round <= 20; round++) {
      const results = await Promise.allSettled([a.commit(rev, counterState(round * 2)), b.commit(rev, counterState(round * 2 + 1))]);
      const won = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<number>[];
      const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      assert.equal(won.length, 1, `round ${round}: exactly one writer wins`);
      const err = lost[0]!.reason as FulcrumError;
      assert.equal(err.code, 'PRECONDITION_FAILED');
      assert.equal(err.status, 412);
      assert.deepEqual(err.details, { current: won[0]!.value });
      const now = await a.load();
      assert.equal(now.revision, won[0]!.value);
      assert.equal(counterOf(now.state), results[0]!.status === 'fulfilled' ? round * 2 : round * 2 + 1, 'the winner\'s state is stored');
      rev = won[0]!.value;
    }
    await assert.rejects(a.commit(rev - 1, counterState(999)), (e: FulcrumError) => e.code === 'PRECONDITION_FAILED' && (e.details as { current: number }).current === rev);
  });

  test('etcd down: a write is STORE_UNAVAILABLE (503) naming the endpoint; load answers from the cache, stale; back up, it catches up', async () => {
    const cluster = newCluster('down');
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-cluster-cache-'));
    try {
      const s = store(cluster, { cacheDir: dir });
      const rev = await s.commit(0, counterState(3));
      s.recordApplied(rev, counterState(3));
      await etcd.stop();
      const err = await s.commit(rev, counterState(4)).then(() => undefined, (e: unknown) => e);
      assert.ok(isStoreUnavailable(err), String(err));
      assert.equal((err as FulcrumError).status, 503);
      assert.equal((err as FulcrumError).message, `etcd at ${etcd.url} is unreachable: ECONNREFUSED`);
      const cached = await store(cluster, { cacheDir: dir }).load();
      assert.deepEqual({ revision: cached.revision, counter: counterOf(cached.state), source: cached.source, stale: cached.stale }, { revision: rev, counter: 3, source: 'cache', stale: true });
      await assert.rejects(store(cluster).load(), (e: unknown) => isStoreUnavailable(e), 'no cache: unavailable');
      await etcd.restart();
      const rev2 = await s.commit(rev, counterState(4));
      const fresh = await s.load();
      assert.deepEqual({ revision: fresh.revision, counter: counterOf(fresh.state), source: fresh.source }, { revision: rev2, counter: 4, source: 'etcd' });
    } finally {
      if (!etcd.running) await etcd.restart();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a watcher sees every revision in order, once, while etcd is restarted 10 times during a stream of writes', { timeout: 240_000 }, async () => {
    const cluster = newCluster('restarts');
    const writer = store(cluster);
    const start = await writer.commit(0, counterState(0));
    const c = collector();
    const w = store(cluster).watch(start, c.onChange);
    const acked: number[] = [];
    let k = 0, rev = start, restarts = 0, stop = false;
    const writes = (async () => {
      while (!stop) {
        try {
          rev = await writer.commit(rev, counterState(k + 1));
          k++;
          acked.push(rev);
        } catch (e) {
          if (isStoreUnavailable(e)) { await sleep(20); continue; }
          // The connection broke after etcd had the write: it is there (412 against the old revision).
          if (e instanceof FulcrumError && e.code === 'PRECONDITION_FAILED') {
            const now = await writer.load();
            assert.equal(counterOf(now.state), k + 1, 'a 412 after a lost answer means our write landed');
            k++; rev = now.revision; acked.push(rev);
            continue;
          }
          throw e;
        }
      }
    })();
    let failed: unknown;
    writes.catch((e: unknown) => { failed = e; });
    const ok = () => { if (failed) throw failed; return true; };
    try {
      for (; restarts < 10; restarts++) {
        const target = k + 15;
        await until('15 more writes', () => (ok() && k >= target ? true : undefined), 30_000);
        await etcd.restart();
      }
      const final = k + 15;
      await until('writes after the last restart', () => (ok() && k >= final ? true : undefined), 30_000);
    } finally {
      stop = true;
      await writes.catch(() => undefined);
      if (!etcd.running) await etcd.restart();
    }
    ok();
    await until(`the watcher at revision ${rev}`, () => (w.revision === rev ? true : undefined), 30_000);
    assert.deepEqual(c.counters(), range(1, k), 'every write delivered once, in order');
    assert.deepEqual(c.revisions(), acked, 'at the revisions the writes were acknowledged with');
    assert.ok(c.seen.every((x) => x.kind === 'put'));
    assert.ok(w.stats.streams >= 11, `the watch was resumed after each restart (${w.stats.streams} streams)`);
    assert.equal(w.stats.relists, 0);
    await w.stop();
  });

  test('a watcher stopped while 1,500 commits happen catches up from its revision', { timeout: 240_000 }, async () => {
    const cluster = newCluster('catchup');
    const writer = store(cluster);
    const c1 = collector();
    const first = store(cluster).watch(0, c1.onChange);
    const r5 = await commitRange(writer, 0, 1, 5);
    await until('the first 5', () => (first.revision === r5 ? true : undefined));
    await first.stop();
    const last = await commitRange(writer, r5, 6, 1505);
    const c2 = collector();
    const second = store(cluster).watch(first.revision, c2.onChange);
    await until(`revision ${last}`, () => (second.revision === last ? true : undefined), 60_000);
    assert.deepEqual(c1.counters(), range(1, 5));
    assert.deepEqual(c2.counters(), range(6, 1505));
    assert.ok(increasing(c2.revisions()) && c2.seen.every((x) => x.kind === 'put'));
    assert.ok(last - r5 > 1000, 'more than 1,000 revisions behind');
    await second.stop();
  });

  test('compacted past a stopped watcher: it re-lists, delivers the current state as a snapshot, and goes on watching', { timeout: 60_000 }, async () => {
    const cluster = newCluster('compact');
    const writer = store(cluster);
    const r1 = await writer.commit(0, counterState(1));
    const r50 = await commitRange(writer, r1, 2, 50);
    const client = new EtcdClient({ endpoints: [etcd.url] });
    await client.compact(r50);
    client.close();
    const c = collector();
    const w = store(cluster).watch(r1, c.onChange);
    await until('the snapshot', () => (w.revision === r50 ? true : undefined));
    const r51 = await writer.commit(r50, counterState(51));
    await until('the next put', () => (w.revision === r51 ? true : undefined));
    assert.deepEqual(c.seen.map((x) => [x.kind, x.revision, x.kind === 'invalid' ? -1 : counterOf(x.state)]), [['snapshot', r50, 50], ['put', r51, 51]]);
    assert.equal(w.stats.relists, 1);
    await w.stop();
  });

  test('membership through etcd outages: a node registered or updated while etcd is down shows up when it returns; current, behind, failed', { timeout: 60_000 }, async () => {
    const cluster = newCluster('members');
    const a = store(cluster, { leaseTtlSeconds: 2 }), b = store(cluster, { leaseTtlSeconds: 2 });
    const health = async () => (await a.clusterStatus()).nodes.map((n) => `${n.id} ${n.health} ${n.record?.appliedRevision ?? '-'}`);
    try {
      await etcd.stop();
      await assert.rejects(a.register({ id: 'lb-a', address: 'https://10.0.0.11:9443', dataplanes: ['xdp'] }), (e: unknown) => isStoreUnavailable(e));
      await etcd.restart();
      await until('lb-a registered by its keepalive', async () => ((await a.nodes()).some((n) => n.id === 'lb-a') ? true : undefined));
      const rev = await a.commit(0, counterState(1));
      await b.register({ id: 'lb-b', dataplanes: ['xdp', 'ipvs'], appliedRevision: rev });
      assert.deepEqual(await health(), ['lb-a behind 0', `lb-b current ${rev}`]);
      await b.updateStatus({ lastReconcile: { result: 'failed', revision: rev, message: 'ipvs: ENOENT', at: new Date().toISOString() } });
      await etcd.stop();
      await assert.rejects(a.updateStatus({ appliedRevision: rev, lastReconcile: { result: 'ok', revision: rev, at: new Date().toISOString() } }), (e: unknown) => isStoreUnavailable(e));
      await etcd.restart();
      await until('lb-a current', async () => ((await health()).includes(`lb-a current ${rev}`) ? true : undefined));
      assert.deepEqual(await health(), [`lb-a current ${rev}`, `lb-b failed ${rev}`]);
      await b.close();
      assert.deepEqual(await health(), [`lb-a current ${rev}`, 'lb-b gone -'], 'a clean stop revokes the lease at once');
    } finally {
      if (!etcd.running) await etcd.restart();
    }
  });

  test('lease expiry removes a frozen node from nodes(); after SIGCONT it comes back', { timeout: 60_000 }, async () => {
    const cluster = newCluster('lease');
    const observer = store(cluster);
    const child: ChildProcess = spawn(process.execPath, [join(import.meta.dirname, '../helpers/cluster-node.js'), etcd.url, cluster, 'lb-2', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await until('registered', () => new Promise<true | undefined>((r) => { child.stdout!.once('data', () => r(true)); setTimeout(() => r(undefined), 5000); }));
      const ids = async () => (await observer.nodes()).map((n) => n.id);
      assert.deepEqual(await ids(), ['lb-2']);
      await sleep(3000); // longer than the TTL: the keepalives hold it
      assert.deepEqual(await ids(), ['lb-2']);
      child.kill('SIGSTOP');
      const frozenAt = Date.now();
      await until('the lease to expire', async () => ((await ids()).length === 0 ? true : undefined), 15_000);
      assert.ok(Date.now() - frozenAt >= 1000, 'listed until its lease ran out');
      const st = await observer.clusterStatus();
      assert.deepEqual(st.nodes.map((n) => [n.id, n.health]), [['lb-2', 'gone']]);
      child.kill('SIGCONT');
      await until('the node back', async () => ((await ids()).includes('lb-2') ? true : undefined), 15_000);
      const back = await observer.clusterStatus();
      assert.deepEqual(back.nodes.map((n) => [n.id, n.health]), [['lb-2', 'current']]);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    }
  });
});
