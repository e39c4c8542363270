// The cluster tier through the product path: three real `fulcrum agent` processes with
// agent.store kind etcd against a real etcd on loopback. No dataplane: the agents run on the host
// without xdp interfaces and the host has no IPVS, so the shared services are stored and served by
// the API but not programmed (traffic is the kernel tier's business); what is checked here is the
// shared state, its revisions and each node's membership.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdClient } from '../../src/cluster/etcd-client.js';
import { EtcdStateStore } from '../../src/cluster/etcd-store.js';
import { parseDesiredState } from '../../src/model/index.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';
import { configFor } from '../helpers/docs-agent.js';
import { agentConfigExamples, usesEtcd } from '../helpers/docs-examples.js';
import { EtcdProcess, etcdMissing, until } from '../helpers/etcd.js';

const missing = etcdMissing();
const CLUSTER = 'agents';
const LEASE_TTL = 3;


const service = (name: string, port: number) => ({
  name, protocol: 'tcp', address: '10.1.0.1', port, dataplane: 'xdp', backends: [{ address: '10.200.0.1' }],
});

interface Node {
  id: string;
  dir: string;
  config: string;
  agent: AgentProcess;
  token: string;
}

describe('three agents sharing their services through etcd', { skip: missing }, () => {
  let etcd: EtcdProcess;
  let root: string;
  const nodes: Node[] = [];

  async function http(n: Node, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const r = await fetch(`${n.agent.server}${path}`, {
      method,
      headers: { authorization: `Bearer ${n.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, any> };
  }
  const state = async (n: Node) => (await http(n, 'GET', '/v1/state')).body;
  const cluster = async (n: Node) => (await http(n, 'GET', '/v1/cluster')).body as { revision: number; nodes: Array<{ id: string; health: string; record?: { appliedRevision: number } }> };

  async function startNode(id: string): Promise<Node> {
    const dir = join(root, id);
    const config = join(dir, 'fulcrum.yaml');
    const existing = nodes.find((n) => n.id === id);
    if (!existing) {
      const doc = {
        agent: {
          stateDir: join(dir, 'state'),
          api: { port: 0, rateLimit: false },
          xdp: { pinDir: join(dir, 'bpf') },
          store: { kind: 'etcd', endpoints: [etcd.url], cluster: CLUSTER, nodeId: id, leaseTtlSeconds: LEASE_TTL, requestTimeoutMs: 1000 },
        },
        // A, started first, seeds the empty cluster with its services; B's and C's are ignored.
        services: [id === 'a' ? service('seeded', 79) : service(`ignored-${id}`, 78)],
      };
      mkdirSync(dir, { recursive: true });
      writeFileSync(config, JSON.stringify(doc));
    }
    const agent = await AgentProcess.start(config);
    const token = readFileSync(join(dir, 'state', 'admin.token'), 'utf8').trim();
    const n = { id, dir, config, agent, token };
    const i = nodes.findIndex((x) => x.id === id);
    if (i >= 0) nodes[i] = n;
    else nodes.push(n);
    return n;
  }

  /** Every node answers `revision` in GET /v1/state, and /v1/cluster lists them all current at it. */
  async function converged(revision: number, ids = nodes.map((n) => n.id)) {
    for (const n of nodes.filter((x) => ids.includes(x.id))) await until(`${n.id} at revision ${revision}`, async () => ((await state(n)).revision === revision ? true : undefined));
    return until(`/v1/cluster: ${ids.join(',')} current at ${revision}`, async () => {
      const c = await cluster(nodes[0]!);
      const ok = c.revision === revision && ids.every((id) => c.nodes.find((x) => x.id === id)?.health === 'current' && c.nodes.find((x) => x.id === id)?.record?.appliedRevision === revision);
      return ok ? c : undefined;
    });
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fulcrum-agent-cluster-'));
    etcd = await EtcdProcess.start();
    for (const id of ['a', 'b', 'c']) await startNode(id);
  });

  after(async () => {
    for (const n of nodes) {
      try { process.kill(n.agent.proc.pid!, 'SIGCONT'); } catch { /* gone */ }
      await n.agent.stop();
    }
    await etcd?.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('a PUT through A shows up in B and C, and /v1/cluster has all three at its revision', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const put = await http(a, 'PUT', '/v1/services/web', service('web', 80));
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const revision = put.body.revision as number;
    assert.ok(revision > 0);
    assert.equal(put.body.applied, true, 'A answers once it runs the revision it committed');
    assert.equal(put.headers.get('etag'), `"${revision}"`);
    // Read-your-write on A at once.
    assert.equal((await state(a)).revision, revision);
    const status = await converged(revision);
    assert.deepEqual(status.nodes.map((n) => n.id), ['a', 'b', 'c']);
    for (const n of [b, c]) {
      const s = await state(n);
      assert.deepEqual(s.state.services.map((x: { name: string }) => x.name), ['seeded', 'web']);
      assert.equal(s.stale, false);
      assert.ok(n.agent.logs.some((l) => /the config file's services are ignored/.test(String(l.msg))), `${n.id} says its config file's services are ignored`);
    }
    assert.ok(a.agent.logs.some((l) => /seeded it with the services of the config file/.test(String(l.msg))));
    // The CLI shows the same.
    const cli = await fulcrum(['cluster', 'status'], b.agent.server, join(b.dir, 'state', 'admin.token'));
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`revision: ${revision}`));
    for (const id of ['a', 'b', 'c']) assert.match(cli.stdout, new RegExp(`^${id}\\s+current\\s+${revision}\\s`, 'm'));
  });

  test('two writers with the same If-Match: one wins, the other gets 412 with the current revision', async () => {
    const [a, b] = nodes as [Node, Node];
    const seen = (await state(a)).revision as number;
    await until('B at A\'s revision', async () => ((await state(b)).revision === seen ? true : undefined));
    const [ra, rb] = await Promise.all([
      http(a, 'PUT', '/v1/services/race-a', service('race-a', 81), { 'if-match': `"${seen}"` }),
      http(b, 'PUT', '/v1/services/race-b', service('race-b', 82), { 'if-match': `"${seen}"` }),
    ]);
    const statuses = [ra.status, rb.status].sort();
    assert.deepEqual(statuses, [201, 412], `${JSON.stringify(ra.body)} ${JSON.stringify(rb.body)}`);
    const [won, lost] = ra.status === 201 ? [ra, rb] : [rb, ra];
    assert.equal(lost.body.code, 'PRECONDITION_FAILED');
    assert.ok(lost.body.details.current > seen);
    await converged(won.body.revision as number);
    const names = (await state(a)).state.services.map((x: { name: string }) => x.name);
    assert.equal(names.filter((x: string) => x.startsWith('race-')).length, 1);
  });

  test('etcd stopped: writes get 503, reads answer marked stale; after it is back every node converges', async () => {
    const [a, b] = nodes as [Node, Node];
    const before = (await state(a)).revision as number;
    await etcd.stop();
    try {
      const w = await http(a, 'PUT', '/v1/services/down', service('down', 83));
      assert.equal(w.status, 503, JSON.stringify(w.body));
      assert.equal(w.body.code, 'STORE_UNAVAILABLE');
      assert.match(w.body.message, /etcd at http:\/\/127\.0\.0\.1:\d+ is unreachable/);
      for (const n of [a, b]) {
        const r = await until(`${n.id} stale`, async () => {
          const s = await http(n, 'GET', '/v1/state');
          return s.body.stale === true ? s : undefined;
        });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('fulcrum-stale'), 'true');
        assert.equal(r.body.revision, before);
        const st = await http(n, 'GET', '/v1/status');
        assert.equal(st.status, 200);
        assert.equal(st.body.stale, true);
      }
    } finally {
      await etcd.restart();
    }
    const put = await until('a write after etcd is back', async () => {
      const r = await http(a, 'PUT', '/v1/services/back', service('back', 84));
      return r.status === 201 ? r : undefined;
    });
    await converged(put.body.revision as number);
    for (const n of nodes) assert.equal((await state(n)).stale, false);
  });

  test('a value in etcd that is not a valid spec: every node keeps its state and reports failed; a write through a node repairs it', async () => {
    const [a, b] = nodes as [Node, Node];
    const before = await state(b);
    const client = new EtcdClient({ endpoints: [etcd.url], requestTimeoutMs: 2000 });
    try {
      await client.put(`/fulcrum/v1/${CLUSTER}/spec`, JSON.stringify({ format: 1, services: [{ name: 'broken', port: 99999 }] }));
    } finally {
      client.close();
    }
    const failed = await until('every node failed', async () => {
      const c = await cluster(a);
      return c.nodes.every((n) => n.health === 'failed') ? c : undefined;
    });
    assert.ok(failed.revision > before.revision);
    for (const n of nodes) {
      const s = await state(n);
      assert.equal(s.revision, before.revision, `${n.id} keeps running revision ${before.revision}`);
      assert.deepEqual(s.state, before.state);
    }
    const fix = await http(b, 'PUT', '/v1/services/fixed', service('fixed', 85));
    assert.equal(fix.status, 201, JSON.stringify(fix.body));
    await converged(fix.body.revision as number);
  });

  test("a reload (POST /v1/reload, SIGHUP) applies the node's own sections only: the file's services are ignored", async () => {
    const a = nodes[0]!;
    const before = await state(a);
    const doc = JSON.parse(readFileSync(a.config, 'utf8')) as { services: unknown[] };
    writeFileSync(a.config, JSON.stringify({ ...doc, services: [service('from-reload', 86)] }));
    const r = await http(a, 'POST', '/v1/reload');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.changed, r.body.revision, r.body.restartNeeded], [false, before.revision, []], JSON.stringify(r.body));
    assert.deepEqual((await state(a)).state, before.state);
    // The log line reaches us through the agent's stdout, after its answer possibly.
    await until('the reload warning in the log', () => (a.agent.logs.some((l) => /reload: the config file's services are ignored/.test(String(l.msg))) ? true : undefined), 5000);
    const c = await cluster(a);
    assert.equal(c.revision, before.revision, 'nothing was written to etcd');
  });

  test('an agent killed while 1,500 changes are made catches up when it starts again', async () => {
    const b = nodes[1]!;
    const from = (await state(b)).revision as number;
    await b.agent.kill9();
    const store = new EtcdStateStore({ client: new EtcdClient({ endpoints: [etcd.url], requestTimeoutMs: 2000 }), cluster: CLUSTER });
    let revision = (await store.load()).revision;
    try {
      for (let k = 1; k <= 1500; k++)
        revision = await store.commit(revision, parseDesiredState({ services: [service('web', 80), service('count', 1000 + k)] }));
    } finally {
      await store.close();
    }
    assert.ok(revision - from > 1000, `${revision - from} revisions behind`);
    const restarted = await startNode('b');
    await converged(revision);
    const s = await state(restarted);
    assert.equal(s.state.services.find((x: { name: string }) => x.name === 'count').port, 2500);
  });

  test('an agent frozen with SIGSTOP drops out of /v1/cluster when its lease expires and comes back after SIGCONT', async () => {
    const [a, , c] = nodes as [Node, Node, Node];
    const pid = c.agent.proc.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      await until('c gone', async () => ((await cluster(a)).nodes.find((n) => n.id === 'c')?.health === 'gone' ? true : undefined), (LEASE_TTL + 10) * 1000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await until('c back', async () => ((await cluster(a)).nodes.find((n) => n.id === 'c')?.health === 'current' ? true : undefined), 20_000);
  });

  test("docs/cluster.md's agent config starts a real agent that joins its cluster", async () => {
    const examples = agentConfigExamples().filter((e) => e.source.startsWith('docs/cluster.md') && usesEtcd(e.doc));
    assert.ok(examples.length > 0, 'docs/cluster.md has an agent config with agent.store kind etcd');
    for (const example of examples) {
      const dir = mkdtempSync(join(root, 'docs-'));
      const doc = configFor(example.doc, dir, join(dir, 'bpf'), join(dir, 'tokens.yaml'));
      const agentDoc = doc.agent as { store: Record<string, unknown> };
      // The endpoints, TLS and auth files are the reader's: the loopback etcd of this test instead
      // (etcd-tls-auth.test.ts covers TLS and auth through the same schema).
      const { tls: _tls, auth: _auth, ...store } = agentDoc.store;
      agentDoc.store = { ...store, endpoints: [etcd.url] };
      const config = join(dir, 'fulcrum.yaml');
      writeFileSync(config, JSON.stringify(doc));
      const agent = await AgentProcess.start(config);
      try {
        const token = readFileSync(join(dir, 'state', 'admin.token'), 'utf8').trim();
        // The node registers right after its API listens (its record carries the API's address).
        await until(`${String(store.nodeId)} current in /v1/cluster`, async () => {
          const r = await fetch(`${agent.server}/v1/cluster`, { headers: { authorization: `Bearer ${token}` } });
          const body = (await r.json()) as { nodes: Array<{ id: string; health: string }> };
          return r.status === 200 && body.nodes.some((n) => n.id === store.nodeId && n.health === 'current') ? true : undefined;
        }, 10_000);
      } finally {
        assert.equal(await agent.stop(), 0);
      }
    }
  });

  test('a stopped agent revokes its lease: listed as gone at once', async () => {
    const [a, , c] = nodes as [Node, Node, Node];
    await c.agent.stop();
    const s = await cluster(a);
    assert.equal(s.nodes.find((n) => n.id === 'c')?.health, 'gone');
  });
});
