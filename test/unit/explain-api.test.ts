import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, admin, reader } from '../helpers/agent-harness.js';

/** GET /v1/explain through app.inject with fake dataplanes: validation, lookup of the service, health and drain state. */

const web = { address: '10.0.0.1', port: 80, scheduler: 'rr', backends: [{ address: '10.0.1.1', port: 8080, weight: 2 }, { address: '10.0.1.2', port: 8080 }],
  health: { check: { kind: 'tcp' }, initialState: 'up' } };

test('explain: bad query fields are 400 naming the field; an unknown VIP is 404; reads need a token', async () => {
  const h = await harness();
  try {
    const cases: Array<[string, RegExp]> = [
      ['client=10.9.0.5&vip=10.0.0.1&port=99999', /port/],
      ['client=10.9.0.5&vip=nope&port=80', /vip: must be an IPv4 or IPv6 address/],
      ['client=10.9.0.5:x&vip=10.0.0.1&port=80', /client: "10\.9\.0\.5:x" is not ADDRESS/],
      ['client=10.9.0.5&vip=10.0.0.1&port=80&proto=icmp', /proto/],
      ['vip=10.0.0.1&port=80', /client/],
      ['client=10.9.0.5&vip=10.0.0.1&port=80&colour=blue', /colour/],
    ];
    for (const [q, re] of cases) {
      const r = await h.app.inject({ url: `/v1/explain?${q}`, headers: reader });
      assert.equal(r.statusCode, 400, `${q}: ${r.body}`);
      assert.match(r.json().message, re, q);
    }
    assert.equal((await h.app.inject({ url: '/v1/explain?client=10.9.0.5&vip=10.0.0.1&port=80' })).statusCode, 401);
    const none = await h.app.inject({ url: '/v1/explain?client=10.9.0.5&vip=10.0.0.1&port=80', headers: reader });
    assert.equal(none.statusCode, 404);
    assert.match(none.json().message, /no service for tcp 10\.0\.0\.1:80/);
  } finally {
    await h.close();
  }
});

test('explain: the service owning the VIP is asked; the answer carries weight, health and drain state', async () => {
  const h = await harness();
  try {
    assert.equal((await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web })).statusCode, 201);
    h.ipvs.drainList = [{ service: 'web', address: '10.0.1.1', port: 8080, startedAt: '', deadline: '', activeConnections: 1 }];
    const r = await h.app.inject({ url: '/v1/explain?client=10.9.0.5:40000&vip=10.0.0.1&port=80&proto=tcp', headers: reader });
    assert.equal(r.statusCode, 200, r.body);
    const body = r.json();
    assert.deepEqual(h.ipvs.explained, [{ flow: { client: '10.9.0.5', clientPort: 40000, vip: '10.0.0.1', port: 80, protocol: 'tcp' }, service: 'web' }]);
    assert.equal(body.service, 'web');
    assert.equal(body.source, 'connection');
    assert.equal(body.backend.address, '10.0.1.1');
    assert.equal(body.backend.weight, 2);
    assert.equal(body.backend.draining, true);
    assert.ok(['up', 'down'].includes(body.backend.health), 'a checked service reports health');
    assert.equal(body.backends[1].draining, false);
  } finally {
    await h.close();
  }
});
