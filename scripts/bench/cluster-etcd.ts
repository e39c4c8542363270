/**
 * Cluster store benchmark (not a test), against a real etcd on loopback started here
 * (test/helpers/etcd.ts; needs Debian etcd-server):
 *  1. commit -> watcher delivery: EtcdStateStore.commit on one client until a watcher on another
 *     client has the revision (txn + watch fan-out + parse through the model), median/p99 over
 *     --writes writes, for a 1-service and a 1,000-service state, against one bare etcd
 *     put + get round trip through the same client in the same run;
 *  2. cold load of a 1,000-service state: a new client and EtcdStateStore.load() (connect, range,
 *     parse once) against FileStateStore.load() of the same state, min/median/max over --rounds.
 *
 *   node dist/scripts/bench/cluster-etcd.js [--writes 200] [--rounds 15]
 *
 * Run it alone (flock /tmp/fulcrum-kernel.lock): the machine is shared, so only ratios count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FileStateStore } from '../../src/agent/store.js';
import { EtcdClient } from '../../src/cluster/etcd-client.js';
import { EtcdStateStore, type SpecChange } from '../../src/cluster/etcd-store.js';
import { counterState } from '../../test/helpers/cluster-state.js';
import { EtcdProcess, etcdMissing } from '../../test/helpers/etcd.js';

const { values } = parseArgs({ options: { writes: { type: 'string', default: '200' }, rounds: { type: 'string', default: '15' } } });
const WRITES = Number(values.writes);
const ROUNDS = Number(values.rounds);

const missing = etcdMissing();
if (missing) { console.error(`cluster-etcd bench: ${missing}`); process.exit(2); }

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const med = (xs: number[]) => pct(xs, 50);
const ms = (x: number) => `${x.toFixed(2)} ms`;
const now = () => performance.now();

const etcd = await EtcdProcess.start();
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-cluster-'));
const opened: Array<{ close(): unknown }> = [];
const newStore = (cluster: string) => {
  const s = new EtcdStateStore({ client: new EtcdClient({ endpoints: [etcd.url] }), cluster });
  opened.push(s);
  return s;
};

try {
  console.log(`etcd ${etcd.url} (data dir under /tmp), ${WRITES} writes, ${ROUNDS} cold-load rounds`);

  // Baseline: one put + get round trip through the same client code.
  const client = new EtcdClient({ endpoints: [etcd.url] });
  opened.push(client);
  const rtt: number[] = [];
  const small = Buffer.from(JSON.stringify(counterState(1)));
  for (let i = 0; i < 20; i++) { await client.put('/bench/rtt', small); await client.range('/bench/rtt'); } // warm-up
  for (let i = 0; i < WRITES; i++) {
    const t = now();
    await client.put('/bench/rtt', small);
    await client.range('/bench/rtt');
    rtt.push(now() - t);
  }
  console.log(`baseline put+get round trip: median ${ms(med(rtt))}, p99 ${ms(pct(rtt, 99))}`);

  for (const services of [1, 1000]) {
    const writes = services === 1 ? WRITES : Math.min(WRITES, 50);
    const cluster = `bench-${services}`;
    const writer = newStore(cluster);
    const states = Array.from({ length: writes + 10 }, (_, k) => counterState(k + 1, services));
    let waiting: { revision: number; resolve: () => void } | undefined;
    let rev = await writer.commit(0, states[0]!);
    const watch = newStore(cluster).watch(rev, (c: SpecChange) => {
      if (c.kind === 'invalid') throw c.error;
      if (waiting && c.revision >= waiting.revision) { waiting.resolve(); waiting = undefined; }
    });
    const delivered = (revision: number) => new Promise<void>((resolve) => {
      if (watch.revision >= revision) resolve(); else waiting = { revision, resolve };
    });
    for (let k = 1; k < 10; k++) { rev = await writer.commit(rev, states[k]!); await delivered(rev); } // warm-up
    const lat: number[] = [];
    for (let k = 10; k < writes + 10; k++) {
      const t = now();
      rev = await writer.commit(rev, states[k]!);
      await delivered(rev);
      lat.push(now() - t);
    }
    await watch.stop();
    const bytes = Buffer.byteLength(JSON.stringify(states[0]));
    console.log(`commit -> watcher delivery, ${services} service(s) (${bytes < 10240 ? `${bytes} B` : `${(bytes / 1024).toFixed(0)} KiB`} of JSON): median ${ms(med(lat))}, p99 ${ms(pct(lat, 99))} over ${writes}; ` +
      `x${(med(lat) / med(rtt)).toFixed(1)} median, x${(pct(lat, 99) / pct(rtt, 99)).toFixed(1)} p99 of put+get`);
  }

  // Cold load of 1,000 services: etcd (new client, connect, range, parse) vs the file store.
  const big = counterState(1, 1000);
  const bigCluster = newStore('bench-cold');
  await bigCluster.commit(0, big);
  const file = new FileStateStore(dir);
  file.save({ revision: 1, state: big });
  const fromEtcd: number[] = [], fromFile: number[] = [];
  for (let r = 0; r < ROUNDS + 2; r++) {
    let t = now();
    const s = new EtcdStateStore({ client: new EtcdClient({ endpoints: [etcd.url] }), cluster: 'bench-cold' });
    const loaded = await s.load();
    const te = now() - t;
    await s.close();
    t = now();
    const f = new FileStateStore(dir).load()!;
    const tf = now() - t;
    if (loaded.state.services.length !== 1000 || f.state.services.length !== 1000) throw new Error('cold load: wrong state');
    if (r >= 2) { fromEtcd.push(te); fromFile.push(tf); } // two warm-up rounds
  }
  const mmm = (xs: number[]) => `min ${ms(sorted(xs)[0]!)}, median ${ms(med(xs))}, max ${ms(sorted(xs).at(-1)!)}`;
  console.log(`cold load, 1,000 services, etcd: ${mmm(fromEtcd)}`);
  console.log(`cold load, 1,000 services, file: ${mmm(fromFile)}`);
  console.log(`cold load ratio etcd/file: x${(med(fromEtcd) / med(fromFile)).toFixed(2)} (median)`);
} finally {
  for (const o of opened) await o.close();
  await etcd.close();
  rmSync(dir, { recursive: true, force: true });
}
