import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { KernelError } from '../../src/errors.js';
import { harness, admin, reader, ADMIN } from '../helpers/agent-harness.js';

const web = { address: '10.0.0.1', port: 80, scheduler: 'rr', backends: [{ address: '10.0.1.1', port: 8080 }] };

describe('REST API rules (fake dataplanes, app.inject)', () => {
  test('auth: reads need a token, writes need admin, unknown tokens are refused', async () => {
    const h = await harness();
    try {
      const none = await h.app.inject({ method: 'GET', url: '/v1/services' });
      assert.equal(none.statusCode, 401);
      assert.equal(none.json().code, 'UNAUTHORIZED');
      assert.match(String(none.headers['www-authenticate']), /^Bearer/);
      const wrong = await h.app.inject({ method: 'GET', url: '/v1/services', headers: { authorization: 'Bearer not-a-known-token-at-all' } });
      assert.equal(wrong.statusCode, 401);
      const basic = await h.app.inject({ method: 'GET', url: '/v1/services', headers: { authorization: `Basic ${ADMIN}` } });
      assert.equal(basic.statusCode, 401);
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/services', headers: reader })).statusCode, 200);
      const ro = await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: reader, payload: web });
      assert.equal(ro.statusCode, 403);
      assert.match(ro.json().message, /viewer has role read; changes need admin/);
      assert.equal(h.agent.revision, 0);
      assert.equal(h.ipvs.kernel.size, 0);
      // Liveness, readiness and the API description are public.
      for (const url of ['/healthz', '/readyz', '/openapi.json']) assert.equal((await h.app.inject({ url })).statusCode, 200, url);
      assert.equal((await h.app.inject({ url: '/metrics' })).statusCode, 401);
    } finally {
      await h.close();
    }
  });

  test('anonymousRead lets GETs through without a token but never writes', async () => {
    const h = await harness({ settings: { api: { anonymousRead: true } } });
    try {
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/services' })).statusCode, 200);
      assert.equal((await h.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
      assert.equal((await h.app.inject({ method: 'PUT', url: '/v1/services/web', payload: web })).statusCode, 401);
    } finally {
      await h.close();
    }
  });

  test('validation names the field and applies nothing', async () => {
    const h = await harness();
    try {
      const cases: Array<[string, string, unknown, RegExp]> = [
        ['PUT', '/v1/services/web', { ...web, port: 70000 }, /port: Too big/],
        ['PUT', '/v1/services/web', { ...web, scheduler: 'bogus' }, /scheduler: /],
        ['PUT', '/v1/services/web', { ...web, backends: [{ address: '10.0.1.1', port: 1 }, { address: '10.0.1.1', port: 1 }] }, /backends\[1\]: duplicate backend/],
        ['PUT', '/v1/services/web', { ...web, name: 'other' }, /name: "other" differs from the path/],
        ['PUT', '/v1/services/web', { ...web, colour: 'blue' }, /colour/],
        ['PUT', '/v1/services/bad%20name', web, /name: must be 1-63/],
        ['PUT', '/v1/state', { services: [{ name: 'a', ...web, backends: [{ address: 'nope' }] }] }, /services\[0\]\.backends\[0\]\.address: must be an IPv4 or IPv6 address/],
      ];
      for (const [method, url, payload, re] of cases) {
        const r = await h.app.inject({ method: method as 'PUT', url, payload: payload as object, headers: admin });
        assert.equal(r.statusCode, 400, `${url} ${r.body}`);
        assert.equal(r.json().code, 'INVALID_REQUEST');
        assert.match(r.json().message, re);
        assert.ok(!('stack' in r.json()));
      }
      const ep = await h.app.inject({ method: 'PUT', url: '/v1/services/web/backends/10.0.1.1', headers: admin, payload: {} });
      assert.equal(ep.statusCode, 400);
      assert.match(ep.json().message, /endpoint: "10.0.1.1" is not address:port/);
      const notJson = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: { ...admin, 'content-type': 'application/json' }, payload: '{"services": [' });
      assert.equal(notJson.statusCode, 400);
      assert.equal(notJson.json().code, 'INVALID_REQUEST');
      assert.equal(h.agent.revision, 0);
      assert.equal(h.ipvs.calls.filter((c) => !c.dryRun).length, 1, 'only the startup reconcile reached the dataplane');
    } finally {
      await h.close();
    }
  });

  test('state-level rules (duplicate VIP) are checked against the whole desired state', async () => {
    const h = await harness();
    try {
      assert.equal((await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web })).statusCode, 201);
      const dup = await h.app.inject({ method: 'PUT', url: '/v1/services/web2', headers: admin, payload: web });
      assert.equal(dup.statusCode, 400);
      assert.match(dup.json().message, /tcp 10\.0\.0\.1:80 is already services\[0\]/);
      assert.equal(h.agent.revision, 1);
    } finally {
      await h.close();
    }
  });

  test('atomicity: a failing dataplane rolls back, the state and revision stay, the error says why', async () => {
    const h = await harness({ withXdp: true });
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      const before = JSON.stringify(h.agent.state);
      const kernelBefore = JSON.stringify([...h.ipvs.kernel.values()]);
      // The ipvs dataplane applies first; xdp then fails: ipvs must be brought back too.
      h.xdp!.failOn = (step) => (step.kind === 'add-service' ? new KernelError('add xdp service', 28, 'the services map is full') : undefined);
      const state = {
        services: [
          { name: 'web', ...web, backends: [{ address: '10.0.1.9', port: 8080 }] },
          { name: 'fast', dataplane: 'xdp', address: '10.0.0.2', port: 80, backends: [{ address: '10.0.2.1', port: 80 }] },
        ],
      };
      const r = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: admin, payload: state });
      assert.equal(r.statusCode, 502);
      const body = r.json();
      assert.equal(body.code, 'KERNEL_ERROR');
      assert.equal(body.errno, 28);
      assert.equal(body.errnoName, 'ENOSPC');
      assert.match(body.message, /xdp: add xdp service: ENOSPC \(the services map is full\); the change was rolled back/);
      assert.equal(h.agent.revision, 1);
      assert.equal(JSON.stringify(h.agent.state), before);
      assert.equal(JSON.stringify([...h.ipvs.kernel.values()]), kernelBefore, 'ipvs rolled back to the stored state');
      assert.equal(h.xdp!.kernel.size, 0);
      const stored = h.store.load()!;
      assert.equal(stored.revision, 1);
      assert.equal(JSON.stringify(stored.state), before);
    } finally {
      await h.close();
    }
  });

  test('a store write failure rolls the kernel back and acknowledges nothing', async () => {
    const { FileStateStore } = await import('../../src/agent/store.js');
    const { FulcrumError } = await import('../../src/errors.js');
    let failing = false;
    class FlakyStore extends FileStateStore {
      override save(s: Parameters<InstanceType<typeof FileStateStore>['save']>[0]) {
        if (failing) throw new FulcrumError('STORE_ERROR', 'cannot write: ENOSPC (disk full)');
        super.save(s);
      }
    }
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-flaky-'));
    const h = await harness({ store: new FlakyStore(dir) });
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      failing = true;
      const r = await h.app.inject({ method: 'PATCH', url: '/v1/services/web/backends/10.0.1.1:8080', headers: admin, payload: { weight: 9 } });
      assert.equal(r.statusCode, 500);
      assert.equal(r.json().code, 'STORE_ERROR');
      assert.equal(h.ipvs.kernel.get('web')!.backends[0]!.weight, 1);
      assert.equal(h.agent.service('web')!.backends[0]!.weight, 1);
      assert.equal(h.agent.revision, 1);
    } finally {
      await h.close();
    }
  });

  test('a service on a dataplane this node lacks is refused with FEATURE_MISSING', async () => {
    const h = await harness();
    try {
      const r = await h.app.inject({ method: 'PUT', url: '/v1/services/fast', headers: admin, payload: { dataplane: 'xdp', address: '10.0.0.2', port: 80 } });
      assert.equal(r.statusCode, 503);
      assert.equal(r.json().code, 'FEATURE_MISSING');
      assert.match(r.json().message, /service fast: the xdp dataplane is not available on this node \(no xdp in this \(fake\) kernel\)/);
      assert.equal(h.agent.revision, 0);
    } finally {
      await h.close();
    }
  });

  test('idempotent writes: a repeat changes nothing and keeps the revision', async () => {
    const h = await harness();
    try {
      const a = await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      assert.equal(a.statusCode, 201);
      const calls = h.ipvs.calls.length;
      const b = await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      assert.equal(b.statusCode, 200);
      assert.equal(b.json().changed, false);
      assert.equal(b.json().revision, 1);
      assert.equal(b.headers.etag, '"1"');
      assert.equal(h.ipvs.calls.length, calls, 'no kernel work for a no-op');
      const put = await h.app.inject({ method: 'PUT', url: '/v1/services/web/backends/10.0.1.1:8080', headers: admin, payload: {} });
      assert.equal(put.json().changed, false);
      const d1 = await h.app.inject({ method: 'DELETE', url: '/v1/services/web', headers: admin });
      assert.equal(d1.json().changed, true);
      assert.equal(d1.json().revision, 2);
      const d2 = await h.app.inject({ method: 'DELETE', url: '/v1/services/web', headers: admin });
      assert.equal(d2.statusCode, 200);
      assert.equal(d2.json().changed, false);
      assert.equal(d2.json().revision, 2);
      // A whole-state PUT of what is already there is a no-op too (Ansible re-runs).
      const s1 = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: admin, payload: { services: [{ name: 'x', ...web }] } });
      const s2 = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: admin, payload: { services: [{ name: 'x', ...web }] } });
      assert.equal(s1.json().revision, 3);
      assert.equal(s2.json().changed, false);
      assert.equal(s2.json().revision, 3);
    } finally {
      await h.close();
    }
  });

  test('ETag carries the revision and If-Match is honoured (412 on mismatch)', async () => {
    const h = await harness();
    try {
      const list = await h.app.inject({ method: 'GET', url: '/v1/services', headers: reader });
      assert.equal(list.headers.etag, '"0"');
      const ok = await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: { ...admin, 'if-match': '"0"' }, payload: web });
      assert.equal(ok.statusCode, 201);
      assert.equal(ok.headers.etag, '"1"');
      const stale = await h.app.inject({ method: 'DELETE', url: '/v1/services/web', headers: { ...admin, 'if-match': '"0"' } });
      assert.equal(stale.statusCode, 412);
      assert.equal(stale.json().code, 'PRECONDITION_FAILED');
      assert.equal(stale.json().details.current, 1);
      assert.ok(h.agent.service('web'));
      const star = await h.app.inject({ method: 'PATCH', url: '/v1/services/web/backends/10.0.1.1:8080', headers: { ...admin, 'if-match': '*' }, payload: { weight: 4 } });
      assert.equal(star.statusCode, 200);
      const bad = await h.app.inject({ method: 'DELETE', url: '/v1/services/web', headers: { ...admin, 'if-match': 'yesterday' } });
      assert.equal(bad.statusCode, 400);
      const get = await h.app.inject({ method: 'GET', url: '/v1/services/web', headers: reader });
      assert.equal(get.headers.etag, '"2"');
      // The list is cached per revision and honours If-None-Match.
      const l1 = await h.app.inject({ method: 'GET', url: '/v1/services', headers: reader });
      assert.equal(l1.headers.etag, '"2"');
      assert.equal(l1.json().services[0].backends[0].weight, 4);
      assert.match(String(l1.headers['content-type']), /^application\/json/);
      const nm = await h.app.inject({ method: 'GET', url: '/v1/services', headers: { ...reader, 'if-none-match': '"2"' } });
      assert.equal(nm.statusCode, 304);
      await h.app.inject({ method: 'PATCH', url: '/v1/services/web/backends/10.0.1.1:8080', headers: admin, payload: { weight: 6 } });
      const l2 = await h.app.inject({ method: 'GET', url: '/v1/services', headers: { ...reader, 'if-none-match': '"2"' } });
      assert.equal(l2.statusCode, 200);
      assert.equal(l2.json().revision, 3);
      assert.equal(l2.json().services[0].backends[0].weight, 6, 'a new revision is served, not the cache');
    } finally {
      await h.close();
    }
  });

  test('dry run returns the plan and changes nothing', async () => {
    const h = await harness();
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      const r = await h.app.inject({ method: 'PATCH', url: '/v1/services/web/backends/10.0.1.1:8080?dryRun=true', headers: admin, payload: { weight: 7 } });
      assert.equal(r.statusCode, 200);
      const body = r.json();
      assert.equal(body.dryRun, true);
      assert.equal(body.applied, false);
      assert.equal(body.revision, 1);
      assert.deepEqual(body.diff.map((d: { op: string }) => d.op), ['~']);
      assert.match(body.diff[0].text, /weight 1 -> 10\.0\.1\.1:8080 weight 7/);
      assert.deepEqual(body.plan, [{ dataplane: 'ipvs', steps: [{ kind: 'edit-destination', service: 'web', description: '~ backend 10.0.1.1:8080 weight 1 -> 7 in web' }] }]);
      assert.equal(h.ipvs.kernel.get('web')!.backends[0]!.weight, 1);
      assert.equal(h.agent.service('web')!.backends[0]!.weight, 1);
      assert.equal(h.store.load()!.revision, 1);
    } finally {
      await h.close();
    }
  });

  test('backends: IPv6 as [addr]:port, PATCH weight, 404s, drain with progress', async () => {
    const h = await harness();
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/v6', headers: admin, payload: { address: '2001:db8::10', port: 443 } });
      const add = await h.app.inject({ method: 'PUT', url: '/v1/services/v6/backends/[2001:DB8:0::2]:8443', headers: admin, payload: { weight: 2 } });
      assert.equal(add.statusCode, 201);
      assert.deepEqual(h.agent.service('v6')!.backends.map((b) => [b.address, b.port, b.weight]), [['2001:db8::2', 8443, 2]]);
      const enc = await h.app.inject({ method: 'PATCH', url: '/v1/services/v6/backends/%5B2001%3Adb8%3A%3A2%5D%3A8443', headers: admin, payload: { weight: 0 } });
      assert.equal(enc.statusCode, 200);
      assert.equal(h.ipvs.kernel.get('v6')!.backends[0]!.weight, 0);
      assert.equal((await h.app.inject({ method: 'PATCH', url: '/v1/services/v6/backends/[2001:db8::3]:8443', headers: admin, payload: { weight: 1 } })).statusCode, 404);
      assert.equal((await h.app.inject({ method: 'PATCH', url: '/v1/services/nope/backends/[2001:db8::3]:8443', headers: admin, payload: { weight: 1 } })).statusCode, 404);
      assert.equal((await h.app.inject({ method: 'PATCH', url: '/v1/services/v6/backends/[2001:db8::2]:8443', headers: admin, payload: {} })).statusCode, 400);

      // Drain: the dataplane reports the backend as draining until its connections end.
      h.ipvs.drainList = [{ service: 'v6', address: '2001:db8::2', port: 8443, startedAt: '2026-01-01T00:00:00.000Z', deadline: '2026-01-01T00:05:00.000Z', activeConnections: 3 }];
      const d = await h.app.inject({ method: 'POST', url: '/v1/services/v6/backends/[2001:db8::2]:8443/drain', headers: admin });
      assert.equal(d.statusCode, 202);
      assert.equal(d.json().progress.state, 'draining');
      assert.equal(d.json().progress.activeConnections, 3);
      assert.equal(h.agent.service('v6')!.backends.length, 0);
      const again = await h.app.inject({ method: 'POST', url: '/v1/services/v6/backends/[2001:db8::2]:8443/drain', headers: admin });
      assert.equal(again.json().changed, false, 'draining again is a no-op');
      h.ipvs.drainList = [];
      const p = await h.app.inject({ method: 'GET', url: '/v1/services/v6/backends/[2001:db8::2]:8443/drain', headers: reader });
      assert.equal(p.json().state, 'done');
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/services/v6/backends/[2001:db8::9]:1/drain', headers: admin })).statusCode, 404);
    } finally {
      await h.close();
    }
  });

  test('status, stats, metrics and OpenAPI', async () => {
    const h = await harness();
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      const st = (await h.app.inject({ url: '/v1/status', headers: reader })).json();
      assert.equal(st.revision, 1);
      assert.deepEqual(st.dataplanes.map((d: { name: string; available: boolean }) => [d.name, d.available]), [['ipvs', true], ['xdp', false]]);
      assert.match(st.dataplanes[1].reason, /no xdp/);
      assert.equal(st.lastReconcile.result, 'ok');
      const stats = (await h.app.inject({ url: '/v1/services/web/stats', headers: reader })).json();
      assert.equal(stats.totals.bytesIn, 1000);
      assert.equal(stats.backends[0].counters.connections, 1);
      assert.equal((await h.app.inject({ url: '/v1/services/nope/stats', headers: reader })).statusCode, 404);
      const metrics = (await h.app.inject({ url: '/metrics', headers: reader })).body;
      assert.match(metrics, /fulcrum_desired_revision 1/);
      assert.match(metrics, /fulcrum_reconcile_steps_total\{dataplane="ipvs",kind="add-service",trigger="change"\} 1/);
      assert.match(metrics, /fulcrum_api_requests_total\{method="PUT",route="\/v1\/services\/:name",status="201"\} 1/);
      const doc = (await h.app.inject({ url: '/openapi.json' })).json();
      assert.equal(doc.openapi, '3.1.0');
      const put = doc.paths['/v1/services/{name}'].put;
      assert.ok(put.requestBody.content['application/json'].schema.properties.backends, 'service body schema from zod');
      assert.ok(doc.paths['/v1/services/{name}/backends/{endpoint}'].patch);
      assert.ok(doc.paths['/v1/state'].put);
      assert.equal((await h.app.inject({ url: '/docs/' })).statusCode, 200);
    } finally {
      await h.close();
    }
  });

  test('YAML bodies, body limit and rate limit use the catalogue', async () => {
    const h = await harness({ settings: { api: { bodyLimit: 2048, rateLimit: { max: 5, windowSeconds: 60 } } } });
    try {
      const yaml = 'services:\n  - name: web\n    address: 10.0.0.1\n    port: 80\n';
      const y = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: { ...admin, 'content-type': 'application/yaml' }, payload: yaml });
      assert.equal(y.statusCode, 200, y.body);
      assert.equal(h.agent.revision, 1);
      const big = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: admin, payload: { services: [], pad: 'x'.repeat(4096) } });
      assert.equal(big.statusCode, 413);
      assert.equal(big.json().code, 'PAYLOAD_TOO_LARGE');
      assert.match(big.json().message, /limit of 2048 bytes: raise agent\.api\.bodyLimit in its config file/);
      let limited;
      for (let i = 0; i < 6; i++) limited = await h.app.inject({ url: '/v1/services', headers: reader });
      assert.equal(limited!.statusCode, 429);
      assert.equal(limited!.json().code, 'RATE_LIMITED');
    } finally {
      await h.close();
    }
  });

  test('every change writes one audit line: who, what, result', async () => {
    const { pino } = await import('pino');
    const { Writable } = await import('node:stream');
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write(c, _e, cb) { for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
    const h = await harness({ logger: pino({ level: 'info' }, sink) });
    try {
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      await h.app.inject({ method: 'DELETE', url: '/v1/services/web', headers: { ...admin, 'if-match': '"0"' } });
      await h.app.inject({ method: 'PUT', url: '/v1/services/web?dryRun=true', headers: admin, payload: web });
      await new Promise((r) => setImmediate(r));
      const audit = lines.filter((l) => l.component === 'audit').map((l) => [l.who, l.what, l.result, l.code]);
      assert.deepEqual(audit, [
        ['ops', 'put service web', 'applied', undefined],
        ['ops', 'put service web', 'unchanged', undefined],
        ['ops', 'delete service web', 'failed', 'PRECONDITION_FAILED'],
      ]);
    } finally {
      await h.close();
    }
  });

  test('an internal error is a 500 from the catalogue without a stack', async () => {
    const h = await harness();
    try {
      h.ipvs.stats = async () => { throw new TypeError('boom at secret/path.ts:12'); };
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      const r = await h.app.inject({ url: '/v1/services/web/stats', headers: reader });
      assert.equal(r.statusCode, 500);
      assert.equal(r.json().code, 'INTERNAL');
      assert.doesNotMatch(r.body, /secret|boom|at /);
    } finally {
      await h.close();
    }
  });

  test('SSE: applies are streamed and Last-Event-ID replays what was missed', async () => {
    const h = await harness();
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (h.app.server.address() as { port: number }).port;
    const read = (headers: Record<string, string>, until: (text: string) => boolean) =>
      new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v1/events', headers: { ...reader, ...headers } }, (res) => {
          assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
            if (until(text)) { req.destroy(); resolve(text); }
          });
        });
        req.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
        setTimeout(() => { req.destroy(); reject(new Error('no event within 5 s')); }, 5000).unref();
        req.end();
      });
    try {
      const live = read({}, (t) => t.includes('event: apply'));
      await new Promise((r) => setTimeout(r, 100));
      await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: web });
      const text = await live;
      const m = text.match(/id: (\d+)\nevent: apply\ndata: (.*)\n/);
      assert.ok(m, text);
      const event = JSON.parse(m[2]!);
      assert.equal(event.component, 'agent');
      assert.equal(event.data.actor, 'ops');
      assert.match(event.message, /put service web \(revision 1/);
      await h.app.inject({ method: 'DELETE', url: '/v1/services/web', headers: admin });
      const replay = await read({ 'last-event-id': m[1]! }, (t) => t.includes('delete service web'));
      assert.doesNotMatch(replay, /put service web/);
      const unauth = await h.app.inject({ url: '/v1/events' });
      assert.equal(unauth.statusCode, 401);
    } finally {
      await h.close();
    }
  });
});
