// EtcdClient (src/cluster/etcd-client.ts) against a scripted HTTP server that answers as etcd
// 3.4's JSON gateway does (answers captured from a real etcd 3.4.23 with curl).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { EtcdClient, EtcdRequestError, type WatchEvent } from '../../src/cluster/etcd-client.js';
import { isStoreUnavailable } from '../../src/cluster/errors.js';

type Handler = (path: string, body: Record<string, unknown>, req: http.IncomingMessage, res: http.ServerResponse) => void;
let handler: Handler;
const requests: Array<{ path: string; body: Record<string, unknown>; auth: string | undefined }> = [];
let server: http.Server;
let url: string;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const header = { cluster_id: '15118495548433857066', member_id: '13668033151171901709', revision: '3', raft_term: '2' };
const json = (res: http.ServerResponse, status: number, body: unknown) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };

async function deadPort(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

describe('EtcdClient over the JSON gateway', () => {
  before(async () => {
    server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        const body = JSON.parse(text || '{}') as Record<string, unknown>;
        requests.push({ path: req.url!, body, auth: req.headers.authorization });
        handler(req.url!, body, req, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));

  test('range, put and txn: keys and values in base64, int64 as strings, both ways', async () => {
    requests.length = 0;
    handler = (path, _b, _q, res) => {
      if (path === '/v3/kv/range') json(res, 200, { header, kvs: [{ key: b64('/a'), create_revision: '2', mod_revision: '3', version: '2', value: b64('v2') }], count: '1' });
      else if (path === '/v3/kv/put') json(res, 200, { header: { ...header, revision: '4' } });
      else json(res, 200, { header: { ...header, revision: '3' }, responses: [{ response_range: { header: { revision: '3' }, kvs: [{ key: b64('/a'), create_revision: '2', mod_revision: '3', version: '2', value: b64('v2') }], count: '1' } }] });
    };
    const c = new EtcdClient({ endpoints: [url] });
    const r = await c.range('/fulcrum/v1/c/nodes/', { prefix: true, revision: 7 });
    assert.deepEqual(r, { revision: 3, count: 1, kvs: [{ key: '/a', value: Buffer.from('v2'), createRevision: 2, modRevision: 3, version: 2, lease: undefined }] });
    assert.deepEqual((await c.put('/k', 'é', { lease: '4111120379948114699' })), { revision: 4 });
    const t = await c.txn([{ key: '/k', target: 'MOD', result: 'EQUAL', value: 2 }], [{ put: { key: '/k', value: 'x' } }], [{ range: { key: '/k' } }]);
    assert.deepEqual({ succeeded: t.succeeded, revision: t.revision, mod: t.ranges[0]?.kvs[0]?.modRevision }, { succeeded: false, revision: 3, mod: 3 });
    const [range, put, txn] = requests;
    assert.deepEqual(range, { path: '/v3/kv/range', auth: undefined, body: { key: b64('/fulcrum/v1/c/nodes/'), range_end: b64('/fulcrum/v1/c/nodes0'), revision: '7' } });
    assert.deepEqual(put!.body, { key: b64('/k'), value: Buffer.from('é').toString('base64'), lease: '4111120379948114699' });
    assert.deepEqual(txn!.body, {
      compare: [{ key: b64('/k'), target: 'MOD', result: 'EQUAL', mod_revision: '2' }],
      success: [{ request_put: { key: b64('/k'), value: b64('x') } }],
      failure: [{ request_range: { key: b64('/k') } }],
    });
    c.close();
  });

  test('unreachable: StoreUnavailableError (503) naming the endpoint and the reason; a second endpoint takes over', async () => {
    const dead = await deadPort();
    const c1 = new EtcdClient({ endpoints: [dead] });
    const e = await c1.range('/k').then(() => undefined, (x: unknown) => x);
    assert.ok(isStoreUnavailable(e));
    assert.equal((e as Error).message, `etcd at ${dead} is unreachable: ECONNREFUSED`);
    assert.equal((e as { status: number }).status, 503);
    assert.deepEqual((e as { toJSON(): unknown }).toJSON(), { code: 'STORE_UNAVAILABLE', message: `etcd at ${dead} is unreachable: ECONNREFUSED`, details: { endpoints: [dead], path: '/v3/kv/range' } });
    handler = (_p, _b, _q, res) => json(res, 200, { header });
    const c2 = new EtcdClient({ endpoints: [dead, url] });
    assert.equal((await c2.range('/k')).revision, 3);
    assert.equal(c2.endpoint, url, 'stays on the endpoint that answered');
    const both = new EtcdClient({ endpoints: [dead, dead.replace('127.0.0.1', '127.0.0.2')] });
    await assert.rejects(both.range('/k'), (x: Error) => isStoreUnavailable(x) && /^no etcd endpoint is reachable \(http:\/\/127.0.0.1:\d+: ECONNREFUSED; http:\/\/127.0.0.2:\d+: ECONNREFUSED\)$/.test(x.message));
    [c1, c2, both].forEach((c) => c.close());
  });

  test('a request etcd does not answer times out, as unavailable', async () => {
    handler = () => undefined; // never answers
    const c = new EtcdClient({ endpoints: [url], requestTimeoutMs: 150 });
    await assert.rejects(c.range('/k'), (x: Error) => isStoreUnavailable(x) && x.message === `etcd at ${url} is unreachable: timed out after 150 ms`);
    c.close();
  });

  test('etcd errors: an unavailable member is StoreUnavailable; a refused request is EtcdRequestError with etcd\'s words', async () => {
    handler = (path, _b, _q, res) => path === '/v3/kv/put'
      ? json(res, 503, { error: 'etcdserver: no leader', message: 'etcdserver: no leader', code: 14 })
      : json(res, 400, { error: 'etcdserver: mvcc: required revision has been compacted', message: 'etcdserver: mvcc: required revision has been compacted', code: 11 });
    const c = new EtcdClient({ endpoints: [url] });
    await assert.rejects(c.put('/k', 'v'), (x: Error) => isStoreUnavailable(x) && x.message.includes('etcdserver: no leader'));
    await assert.rejects(c.range('/k', { revision: 2 }), (x: unknown) => x instanceof EtcdRequestError && x.grpcCode === 11 && x.code === 'STORE_ERROR' && x.message === `etcd at ${url} refused /v3/kv/range: etcdserver: mvcc: required revision has been compacted`);
    c.close();
  });

  test('user and password: authenticates once, sends the token, authenticates again when etcd says it is no longer valid', async () => {
    requests.length = 0;
    let tokens = 0, valid = '';
    handler = (path, body, req, res) => {
      if (path === '/v3/auth/authenticate') {
        if (body.name !== 'fulcrum' || body.password !== 's3cret') return json(res, 400, { error: 'etcdserver: authentication failed, invalid user ID or password', code: 3 });
        valid = `tok${++tokens}`;
        return json(res, 200, { header, token: valid });
      }
      if (req.headers.authorization !== valid) return json(res, 401, { error: 'etcdserver: invalid auth token', message: 'etcdserver: invalid auth token', code: 16 });
      json(res, 200, { header });
    };
    const c = new EtcdClient({ endpoints: [url], auth: { username: 'fulcrum', password: 's3cret' } });
    await c.range('/a');
    await c.range('/b');
    valid = 'expired'; // etcd restarted: the simple token is gone
    await c.range('/c');
    assert.deepEqual(requests.map((r) => [r.path, r.auth]), [
      ['/v3/auth/authenticate', undefined], ['/v3/kv/range', 'tok1'], ['/v3/kv/range', 'tok1'],
      ['/v3/kv/range', 'tok1'], ['/v3/auth/authenticate', undefined], ['/v3/kv/range', 'tok2'],
    ]);
    const bad = new EtcdClient({ endpoints: [url], auth: { username: 'fulcrum', password: 'wrong' } });
    await assert.rejects(bad.range('/a'), (x: Error) => x.message === `etcd at ${url} refused user fulcrum: etcdserver: authentication failed, invalid user ID or password`);
    c.close(); bad.close();
  });

  test('watch: messages split across chunks, DELETE events, compaction cancel; closed comes once, last', async () => {
    handler = (path, body, _q, res) => {
      assert.equal(path, '/v3/watch');
      assert.deepEqual(body, { create_request: { key: b64('/s'), start_revision: '5' } });
      res.writeHead(200, { 'content-type': 'application/json' });
      const msgs = [
        { result: { header, created: true } },
        { result: { header, events: [{ kv: { key: b64('/s'), create_revision: '2', mod_revision: '5', version: '3', value: b64('x') } }, { type: 'DELETE', kv: { key: b64('/s'), mod_revision: '6' } }] } },
        { result: { header: { ...header, revision: undefined }, canceled: true, compact_revision: '9' } },
      ].map((m) => JSON.stringify(m) + '\n').join('');
      let i = 0;
      const step = () => { if (i < msgs.length) { res.write(msgs.slice(i, i + 37)); i += 37; setImmediate(step); } else res.end(); };
      step();
    };
    const c = new EtcdClient({ endpoints: [url] });
    const seen: string[] = [];
    await new Promise<void>((done) => c.watch('/s', 5, {
      created: () => seen.push('created'),
      events: (ev: WatchEvent[]) => seen.push(...ev.map((e) => `${e.type} ${e.kv.modRevision} v${e.kv.version} ${e.kv.value.toString()}`)),
      canceled: (rev, reason) => seen.push(`canceled ${rev} ${reason}`),
      closed: (err) => { seen.push(`closed ${err?.message}`); done(); },
    }));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, ['created', 'put 5 v3 x', 'delete 6 v0 ', 'canceled 9 revision compacted (9)', 'closed undefined']);
    c.close();
  });

  test('a watch that cannot reach its endpoint sends the next one elsewhere; one refused for an expired token authenticates again', async () => {
    const open = (c: EtcdClient) => new Promise<string>((resolve) => {
      const h = c.watch('/s', 1, {
        created: () => { resolve('created'); h.cancel(); },
        events: () => undefined,
        canceled: () => undefined,
        closed: (err) => { if (err) resolve(`closed ${err.message}`); },
      });
    });
    let tokens = 0;
    let valid: string | undefined;
    handler = (path, _b, req, res) => {
      if (path === '/v3/auth/authenticate') { valid = `tok${++tokens}`; return json(res, 200, { header, token: valid }); }
      if (req.headers.authorization !== valid) return json(res, 401, { error: 'etcdserver: invalid auth token', message: 'etcdserver: invalid auth token', code: 16 });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify({ result: { header, created: true } }) + '\n');
    };
    const dead = await deadPort();
    const plain = new EtcdClient({ endpoints: [dead, url] });
    assert.equal(await open(plain), `closed etcd watch at ${dead} failed: ECONNREFUSED`);
    assert.equal(await open(plain), 'created');
    plain.close();
    const c = new EtcdClient({ endpoints: [url], auth: { username: 'u', password: 'p' } });
    assert.equal(await open(c), 'created');
    valid = 'expired';
    assert.equal(await open(c), `closed etcd at ${url} refused /v3/watch: etcdserver: invalid auth token`);
    assert.equal(await open(c), 'created');
    assert.equal(tokens, 2);
    c.close();
  });
});
