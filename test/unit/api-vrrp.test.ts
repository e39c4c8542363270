import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, admin, reader } from '../helpers/agent-harness.js';

/** /v1/vrrp: VRRP instances through the API, as for services (fake dataplanes, app.inject). */

const vi1 = { interface: 'eth0', vrid: 51, priority: 150, vips: ['192.0.2.10/24'] };

test('vrrp API: create, read back (list and one), change, delete; diffs name the instance', async () => {
  const h = await harness();
  try {
    const created = await h.app.inject({ method: 'PUT', url: '/v1/vrrp/vi1', headers: admin, payload: vi1 });
    assert.equal(created.statusCode, 201, created.body);
    assert.deepEqual(created.json().diff.map((d: { text: string }) => d.text), ['vrrp vi1: VRID 51 v3 on eth0, priority 150, 192.0.2.10/24']);
    const list = await h.app.inject({ method: 'GET', url: '/v1/vrrp', headers: reader });
    assert.equal(list.statusCode, 200);
    const [item] = list.json().instances;
    assert.equal(item.spec.name, 'vi1');
    assert.deepEqual(item.spec.vips, [{ address: '192.0.2.10', prefix: 24, family: 'inet' }]);
    assert.equal(item.runtime, undefined, 'no VRRP manager in this harness: no runtime state');
    const one = await h.app.inject({ method: 'GET', url: '/v1/vrrp/vi1', headers: reader });
    // The spec given back unchanged changes nothing.
    const same = await h.app.inject({ method: 'PUT', url: '/v1/vrrp/vi1', headers: admin, payload: one.json() });
    assert.equal(same.statusCode, 200);
    assert.equal(same.json().changed, false);
    const changed = await h.app.inject({ method: 'PUT', url: '/v1/vrrp/vi1', headers: admin, payload: { ...vi1, priority: 90 } });
    assert.deepEqual(changed.json().diff.map((d: { text: string }) => d.text), ['vrrp vi1 priority: 150 -> 90']);
    assert.equal(h.agent.state.vrrp[0]!.priority, 90);
    const del = await h.app.inject({ method: 'DELETE', url: '/v1/vrrp/vi1', headers: admin });
    assert.equal(del.statusCode, 200);
    assert.equal(del.json().diff[0].op, '-');
    assert.equal(h.agent.state.vrrp.length, 0);
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/vrrp/vi1', headers: reader })).statusCode, 404);
  } finally {
    await h.close();
  }
});

test('vrrp API: bad input names the field and changes nothing; a tracked service must exist; reads cannot write', async () => {
  const h = await harness();
  try {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...vi1, vips: ['192.0.2.10/33'] }, /vips\[0\]: 192\.0\.2\.10\/33: the prefix length must be 0-32/],
      [{ ...vi1, version: 2, advertInterval: 0.5 }, /advertInterval: VRRPv2 advertises whole seconds/],
      [{ ...vi1, name: 'other' }, /name: "other" differs from the path's instance name "vi1"/],
    ];
    for (const [payload, re] of cases) {
      const r = await h.app.inject({ method: 'PUT', url: '/v1/vrrp/vi1', headers: admin, payload: payload as object });
      assert.equal(r.statusCode, 400, r.body);
      assert.match(r.json().message, re);
    }
    const tracked = await h.app.inject({ method: 'PUT', url: '/v1/vrrp/vi1', headers: admin, payload: { ...vi1, track: { services: [{ service: 'web' }] } } });
    assert.equal(tracked.statusCode, 400, tracked.body);
    assert.match(tracked.json().message, /vrrp\[0\]\.track\.services\[0\]\.service: no service named web in services/);
    assert.equal((await h.app.inject({ method: 'PUT', url: '/v1/vrrp/vi1', headers: reader, payload: vi1 })).statusCode, 403);
    assert.equal(h.agent.revision, 0);
  } finally {
    await h.close();
  }
});
