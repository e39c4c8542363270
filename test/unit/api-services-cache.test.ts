import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseDesiredState } from '../../src/model/index.js';
import { harness, admin, reader, type Harness } from '../helpers/agent-harness.js';

const svc = (name: string, i: number, weight = 1) => ({ name, address: `10.0.0.${i}`, port: 80, scheduler: 'wrr', backends: [{ address: `10.0.1.${i}`, port: 8080, weight }] });

/** What GET /v1/services answered before its body was cached: the object through JSON.stringify. */
const reference = (h: Harness) => JSON.stringify({ revision: h.agent.revision, services: h.agent.state.services });

async function list(h: Harness, headers: Record<string, string> = reader) {
  return h.app.inject({ method: 'GET', url: '/v1/services', headers });
}

describe('GET /v1/services: the body cached per stored state', () => {
  test('every change is served at once, byte for byte what the state serialises to', async () => {
    const h = await harness();
    try {
      const seen = new Set<string>();
      const check = async (what: string) => {
        const r = await list(h);
        assert.equal(r.statusCode, 200, what);
        assert.equal(r.body, reference(h), what);
        assert.equal(r.headers.etag, `"${h.agent.revision}"`, what);
        assert.equal(r.headers['content-type'], 'application/json; charset=utf-8', what);
        assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)), what);
        assert.ok(!seen.has(r.body), `${what}: a body served before (stale)`);
        seen.add(r.body);
      };
      await check('empty');
      await h.app.inject({ method: 'PUT', url: '/v1/services/a', headers: admin, payload: svc('a', 1) });
      await check('PUT a');
      await h.app.inject({ method: 'PUT', url: '/v1/services/b', headers: admin, payload: svc('b', 2) });
      await check('PUT b');
      const p = await h.app.inject({ method: 'PATCH', url: '/v1/services/a/backends/10.0.1.1:8080', headers: admin, payload: { weight: 9 } });
      assert.equal(p.statusCode, 200);
      await check('PATCH a weight');
      assert.equal((await list(h)).json().services[0].backends[0].weight, 9);
      await h.app.inject({ method: 'PUT', url: '/v1/state', headers: admin, payload: { services: [svc('c', 3)] } });
      await check('PUT /v1/state');
      await h.app.inject({ method: 'DELETE', url: '/v1/services/c', headers: admin });
      await check('DELETE c');
      assert.equal(h.agent.revision, 5);
    } finally {
      await h.close();
    }
  });

  test('a reseed that only reorders services is a new revision (an ETag never names two bodies) and changes the body', async () => {
    const h = await harness({ seed: parseDesiredState({ services: [svc('a', 1), svc('b', 2)] }) });
    try {
      const before = await list(h);
      assert.deepEqual(before.json().services.map((s: { name: string }) => s.name), ['a', 'b']);
      const r = await h.agent.reseed(parseDesiredState({ services: [svc('b', 2), svc('a', 1)] }));
      assert.equal(r.changed, false);
      assert.equal(h.agent.revision, before.json().revision + 1, 'a different stored document, a new revision');
      const stale = await list(h, { ...reader, 'if-none-match': `"${before.json().revision}"` });
      assert.equal(stale.statusCode, 200, 'the old ETag no longer matches');
      const after = await list(h);
      assert.deepEqual(after.json().services.map((s: { name: string }) => s.name), ['b', 'a']);
      assert.equal(after.body, reference(h));
    } finally {
      await h.close();
    }
  });

  test('If-None-Match: 304 for the current ETag (weak, in a list, "*"), 200 for another or an old one', async () => {
    const h = await harness();
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/a', headers: admin, payload: svc('a', 1) });
      for (const inm of ['"1"', 'W/"1"', '"0", "1"', '"7",W/"1"', '*']) {
        const r = await list(h, { ...reader, 'if-none-match': inm });
        assert.equal(r.statusCode, 304, inm);
        assert.equal(r.body, '', inm);
        assert.equal(r.headers.etag, '"1"', inm);
      }
      for (const inm of ['"0"', '"10"', '1', 'W/"0"', '"1']) {
        const r = await list(h, { ...reader, 'if-none-match': inm });
        assert.equal(r.statusCode, 200, inm);
        assert.equal(r.body, reference(h), inm);
      }
      await h.app.inject({ method: 'PATCH', url: '/v1/services/a/backends/10.0.1.1:8080', headers: admin, payload: { weight: 3 } });
      const r = await list(h, { ...reader, 'if-none-match': '"1"' });
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers.etag, '"2"');
      assert.equal(r.json().services[0].backends[0].weight, 3);
    } finally {
      await h.close();
    }
  });

  test('auth is checked before the cache: no 200 and no 304 without a valid token', async () => {
    const h = await harness();
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/a', headers: admin, payload: svc('a', 1) });
      assert.equal((await list(h)).statusCode, 200, 'the cache is warm');
      for (const headers of [{}, { 'if-none-match': '"1"' }, { authorization: 'Bearer not-a-known-token-at-all' }, { authorization: 'Bearer not-a-known-token-at-all', 'if-none-match': '"1"' }] as Array<Record<string, string>>) {
        const r = await list(h, headers);
        assert.equal(r.statusCode, 401, JSON.stringify(headers));
        assert.equal(r.json().code, 'UNAUTHORIZED');
        assert.equal(r.headers.etag, undefined, 'the revision does not leak');
        assert.ok(!r.body.includes('10.0.0.1'));
      }
    } finally {
      await h.close();
    }
  });

  test('cached answers and 304s count against the rate limit', async () => {
    const h = await harness({ settings: { api: { rateLimit: { max: 4, windowSeconds: 60 } } } });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 6; i++) codes.push((await list(h, i % 2 ? { ...reader, 'if-none-match': '"0"' } : reader)).statusCode);
      assert.deepEqual(codes, [200, 304, 200, 304, 429, 429]);
    } finally {
      await h.close();
    }
  });
});
