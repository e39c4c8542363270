// The cluster tier with the XDP dataplane: three real `fulcrum agent` processes, each in its own
// LB netns on the host kernel (client -> LB -> two echo backends per node), sharing their services
// through one real etcd (helpers/xdp-cluster-lab.ts). What a node runs is read back from its
// kernel with bpftool, and real TCP goes through every LB. Needs root (netns, XDP); run it alone
// (flock /tmp/fulcrum-kernel.lock) next to other kernel tests.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { xdpSkipReason } from '../helpers/xdp.js';
import { etcdMissing, until as untilWithin } from '../helpers/etcd.js';
import { appliedRevisions, keyHistory, labService, XdpCluster } from '../helpers/xdp-cluster-lab.js';

const skip = etcdMissing() ?? xdpSkipReason()
  ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool (scripts/setup.sh installs it)')
  ?? (spawnSync('etcdctl', ['version']).status === 0 ? undefined : 'needs etcdctl (Debian etcd-client)');
const CLUSTER = 'xdp';
const SPEC = `/fulcrum/v1/${CLUSTER}/spec`;
const IDS = ['a', 'b', 'c'] as const;
const WEB = '10.0.0.1', STREAM = '10.0.0.2';
/** The lab's polls wait up to 30 s (three XDP agents on a 2-CPU machine). */
const until = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 30_000) => untilWithin(what, fn, ms);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


const backendsOnly = (ids: string[]) => ids.length > 0 && ids.every((i) => /^b[12]$/.test(i));

describe('three XDP load balancers sharing their services through etcd', { skip, timeout: 600_000 }, () => {
  let c: XdpCluster;
  const cluster = async (id: string) => (await c.http(id, 'GET', '/v1/cluster')).body as { revision: number; nodes: Array<{ id: string; health: string; record?: { appliedRevision: number } }> };
  const revisionOf = async (id: string) => (await c.http(id, 'GET', '/v1/state')).body.revision as number;

  /** Every running node at `revision` (GET /v1/state) and listed current at it in /v1/cluster. */
  async function converged(revision: number, ids: readonly string[] = IDS) {
    for (const id of ids) await until(`${id} at revision ${revision}`, async () => ((await revisionOf(id)) === revision ? true : undefined));
    return until(`/v1/cluster: ${ids.join(',')} current at ${revision}`, async () => {
      const s = await cluster(ids[0]!);
      const ok = s.revision === revision && ids.every((id) => {
        const n = s.nodes.find((x) => x.id === id);
        return n?.health === 'current' && n.record?.appliedRevision === revision;
      });
      if (!ok) throw new Error(`revision ${s.revision}: ${JSON.stringify(s.nodes.map((n) => [n.id, n.health, n.record?.appliedRevision]))}`);
      return s;
    });
  }

  /** A PUT through `id`, retried while etcd is unreachable (503) or the agent cannot be reached. */
  async function putRetrying(id: string, service: unknown, name: string): Promise<number> {
    return until(`PUT ${name} through ${id}`, async () => {
      const r = await c.http(id, 'PUT', `/v1/services/${name}`, service).catch(() => undefined);
      if (r && (r.status === 200 || r.status === 201)) return r.body.revision as number;
      if (r && r.status !== 503) throw new Error(`PUT answered ${r.status}: ${JSON.stringify(r.body)}`);
      return undefined;
    }, 60_000);
  }

  before(async () => {
    c = await XdpCluster.create('cx', [...IDS], { cluster: CLUSTER, leaseTtlSeconds: 3 });
    for (const id of IDS) await c.start(id);
  });

  after(async () => {
    await c?.delete();
  });

  test("a PUT through A is in B's and C's kernels (bpftool) and at one revision in /v1/cluster; traffic through every LB reaches the backends", async () => {
    for (const id of IDS) {
      assert.deepEqual(await c.kernelVips(id), [], `${id}: no VIP before the PUT`);
      assert.ok((await c.ask(id, 1)).every((x) => x.startsWith('error')), `${id}: nothing forwards before the PUT`);
    }
    const put = await c.http('a', 'PUT', '/v1/services/web', labService('web'));
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const revision = put.body.revision as number;
    const status = await converged(revision);
    assert.deepEqual(status.nodes.map((n) => [n.id, n.health, n.record?.appliedRevision]), IDS.map((id) => [id, 'current', revision]));
    for (const id of IDS) {
      assert.deepEqual(await c.kernelVips(id), [`tcp ${WEB}:80`], `${id}'s kernel`);
      // Maglev spreads flows by their ports: 24 flows all land on one of two backends with
      // probability 2^-23 (8 did with 1/128 per node, and once did in CI).
      const ids = await c.ask(id, 24);
      assert.ok(backendsOnly(ids), `${id}: ${ids.join(',')}`);
      assert.equal(new Set(ids).size, 2, `${id} spreads flows over both backends: ${ids.join(',')}`);
    }
  });

  test('etcd stopped: traffic keeps flowing through every LB, writes get 503, reads answer (stale); back, a write reaches every kernel', async () => {
    const before = await revisionOf('a');
    await c.etcd.stop();
    try {
      const w = await c.http('b', 'PUT', '/v1/services/down', labService('down', STREAM));
      assert.equal(w.status, 503, JSON.stringify(w.body));
      assert.equal(w.body.code, 'STORE_UNAVAILABLE');
      for (const id of IDS) {
        const r = await until(`${id} stale`, async () => {
          const s = await c.http(id, 'GET', '/v1/state');
          return s.body.stale === true ? s : undefined;
        });
        assert.equal(r.status, 200);
        assert.equal(r.body.revision, before);
        assert.deepEqual(r.body.state.services.map((s: { name: string }) => s.name), ['web']);
        const ids = await c.ask(id, 6);
        assert.ok(backendsOnly(ids), `${id} forwards while etcd is down: ${ids.join(',')}`);
        assert.deepEqual(await c.kernelVips(id), [`tcp ${WEB}:80`], `${id}: the 503 write left the kernel alone`);
      }
    } finally {
      await c.etcd.restart();
    }
    const revision = await putRetrying('c', labService('stream', STREAM, 1), 'stream');
    await converged(revision);
    for (const id of IDS) assert.deepEqual(await c.kernelVips(id), [`tcp ${WEB}:80`, `tcp ${STREAM}:1`], `${id}'s kernel`);
  });

  test('etcd restarted 10 times during a stream of writes: every node applies every revision in order, ends at the last, and its kernel has it', async () => {
    const from = await revisionOf('a');
    await converged(from);
    let restarting = true;
    const restarts = (async () => {
      try {
        for (let i = 0; i < 10; i++) {
          await sleep(400);
          await c.etcd.stop();
          await sleep(200);
          await c.etcd.restart();
        }
      } finally {
        restarting = false;
      }
    })();
    let k = 1, last = from;
    while (restarting || k < 30) {
      k++;
      last = await putRetrying(IDS[k % 3]!, labService('stream', STREAM, k), 'stream');
    }
    await restarts;
    await converged(last);
    const history = await keyHistory(c.etcd, SPEC, from + 1, last);
    assert.ok(history.length >= k - 1, `etcd has ${history.length} revisions of the spec for ${k - 1} writes`);
    for (const id of IDS) {
      const since = appliedRevisions(c.node(id).agent!).filter((x) => x.revision > from);
      assert.deepEqual(since.map((x) => x.revision), history, `${id} applied every revision of the spec, in order, once`);
      assert.ok(since.every((x) => x.kind === 'put' && x.result === 'applied'), JSON.stringify(since.filter((x) => x.kind !== 'put' || x.result !== 'applied')));
      assert.deepEqual(await c.kernelVips(id), [`tcp ${WEB}:80`, `tcp ${STREAM}:${k}`], `${id}'s kernel has the last write`);
    }
  });

  test('etcd compacted past a frozen agent: its watch cannot resume (etcdctl shows why), it re-lists and converges, kernel included', async () => {
    const from = await revisionOf('c');
    await converged(from);
    const pid = c.node('c').agent!.proc.pid!;
    process.kill(pid, 'SIGSTOP');
    let last = from;
    try {
      // C's stream breaks while C is frozen (etcd restarts), before any of the writes reach it:
      // it must open a new one after its revision, which the compaction takes away.
      await c.etcd.restart();
      for (let k = 101; k <= 105; k++) last = await putRetrying('a', labService('stream', STREAM, k), 'stream');
      const compact = spawnSync('etcdctl', [...c.etcd.ctlArgs(), 'compact', String(last)], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
      assert.equal(compact.status, 0, compact.stderr);
      // The control: a watch that resumes after C's revision, as a plain client would, fails.
      await assert.rejects(keyHistory(c.etcd, SPEC, from + 1, last), /compacted/);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await converged(last);
    const applied = appliedRevisions(c.node('c').agent!).filter((x) => x.revision > from);
    assert.equal(applied.at(-1)?.revision, last);
    assert.deepEqual(applied.map((x) => [x.revision, x.kind]), [[last, 'snapshot']], 'C re-listed and applied the current state once');
    for (const id of IDS) assert.deepEqual(await c.kernelVips(id), [`tcp ${WEB}:80`, `tcp ${STREAM}:105`], `${id}'s kernel`);
    const ids = await c.ask('c', 4, STREAM, 105);
    assert.ok(backendsOnly(ids), ids.join(','));
  });

  test('a node started while etcd is down runs its last applied state from its local cache; without the cache it has nothing to run', async () => {
    const revision = await revisionOf('c');
    await c.stop('c');
    await c.cleanup('c');
    assert.deepEqual(await c.kernelVips('c'), [], 'the cleanup took the XDP maps away');
    await c.etcd.stop();
    try {
      const agent = await c.start('c');
      assert.ok(agent.logs.some((l) => /running the last applied shared state from the local cache/.test(String(l.msg))));
      const s = await c.http('c', 'GET', '/v1/state');
      assert.equal(s.body.stale, true);
      assert.equal(s.body.revision, revision);
      assert.deepEqual(await c.kernelVips('c'), [`tcp ${WEB}:80`, `tcp ${STREAM}:105`]);
      const ids = await c.ask('c', 6);
      assert.ok(backendsOnly(ids), `C forwards from its cache: ${ids.join(',')}`);

      // The control: the same start with the cache gone.
      await c.stop('c');
      await c.cleanup('c');
      rmSync(c.node('c').cacheFile);
      const bare = await c.start('c');
      assert.ok(bare.logs.some((l) => /no local cache: starting with no shared services/.test(String(l.msg))));
      assert.deepEqual(await c.kernelVips('c'), []);
      assert.ok((await c.ask('c', 1)).every((x) => x.startsWith('error')), 'nothing forwards without the cache');
    } finally {
      await c.etcd.restart();
    }
    // etcd back: C catches up by itself.
    await converged(revision);
    assert.deepEqual(await c.kernelVips('c'), [`tcp ${WEB}:80`, `tcp ${STREAM}:105`]);
    assert.ok(backendsOnly(await c.ask('c', 4)));
  });
});
