import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseConfigFile, parseDesiredState, desiredStateOf } from '../../src/model/index.js';
import { FileStateStore } from '../../src/agent/store.js';
import { harness, admin } from '../helpers/agent-harness.js';
import { desiredStateInputArb } from '../helpers/state-arbitraries.js';

/**
 * Whatever the agent stores it loads again unchanged, and whatever the API shows can be given back
 * to it unchanged: over generated valid states with every section (services on both dataplanes
 * with each health check kind, xdp settings, VRRP instances with tracking), the parsed spec is a
 * fixed point of the model (its re-parse is itself, key order included), survives the file store,
 * and GET /v1/state -> PUT /v1/state answers changed: false.
 */

const json = (v: unknown) => JSON.stringify(v);

test('model: every generated input parses, and the inputs reach every section and form', () => {
  fc.assert(fc.property(desiredStateInputArb, (input) => { parseDesiredState(input); }), { numRuns: 300 });
  // The properties below are only as good as what they are fed: check it reaches each form the
  // old double parse broke on (VIP text and objects, nopreempt, tracking) and every section.
  const sample = fc.sample(desiredStateInputArb, { numRuns: 300, seed: 42 });
  const seen = (pred: (s: any) => boolean) => sample.some(pred);
  assert.ok(seen((s) => s.vrrp?.some((i: any) => i.vips.some((v: unknown) => typeof v === 'string'))), 'VIPs as text');
  assert.ok(seen((s) => s.vrrp?.some((i: any) => i.vips.some((v: unknown) => typeof v === 'object'))), 'VIPs as objects');
  assert.ok(seen((s) => s.vrrp?.some((i: any) => i.nopreempt === true)), 'nopreempt');
  assert.ok(seen((s) => s.vrrp?.some((i: any) => i.track?.services.length > 0)), 'tracked services');
  assert.ok(seen((s) => s.vrrp?.some((i: any) => i.version === 2 && i.auth)), 'v2 with auth');
  assert.ok(seen((s) => s.xdp !== undefined), 'xdp settings');
  assert.ok(seen((s) => s.ipvs?.sync !== undefined), 'ipvs sync settings');
  for (const kind of ['tcp', 'http', 'https', 'udp', 'dns', 'exec'])
    assert.ok(seen((s) => s.services?.some((x: any) => x.health?.check.kind === kind)), `health check ${kind}`);
  assert.ok(seen((s) => s.services?.some((x: any) => x.fwmark !== undefined)), 'fwmark services');
  assert.ok(seen((s) => s.services?.some((x: any) => x.dataplane === 'xdp')), 'xdp services');
});

test('the issue as reported: a config file with a vrrp section seeds an agent (it was refused: "expected string, received object")', async () => {
  const config = parseConfigFile({ vrrp: [{ name: 'vi1', interface: 'eth0', vrid: 51, nopreempt: true, vips: ['192.0.2.10/24'] }] });
  const h = await harness({ seed: desiredStateOf(config) });
  try {
    assert.equal(h.agent.revision, 1);
    assert.deepEqual(h.agent.state.vrrp[0]!.vips, [{ address: '192.0.2.10', prefix: 24, family: 'inet' }]);
    // A later change re-checks the state: the seeded vrrp section must pass again.
    const r = await h.app.inject({ method: 'PUT', url: '/v1/services/web', headers: admin, payload: { address: '192.0.2.10', port: 80 } });
    assert.equal(r.statusCode, 201, r.body);
  } finally {
    await h.close();
  }
});

test('model: a parsed state is valid input and parses to itself, key order included', () => {
  fc.assert(
    fc.property(desiredStateInputArb, (input) => {
      const spec = parseDesiredState(input);
      const again = parseDesiredState(JSON.parse(json(spec)));
      assert.equal(json(again), json(spec));
    }),
    { numRuns: 300 },
  );
});

test('store: parse -> save -> load (a new store, as after a restart) -> equal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-roundtrip-'));
  try {
    fc.assert(
      fc.property(desiredStateInputArb, fc.integer({ min: 1, max: 1_000_000 }), (input, revision) => {
        const state = parseDesiredState(input);
        new FileStateStore(dir).save({ revision, state, seedDigest: 'abc', updatedAt: '2026-12-01T00:00:00.000Z' });
        const loaded = new FileStateStore(dir).load();
        assert.ok(loaded);
        assert.equal(loaded.revision, revision);
        assert.equal(json(loaded.state), json(state));
      }),
      { numRuns: 200 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config file: the desired state of a parsed config is the state parse of the same sections', () => {
  fc.assert(
    fc.property(desiredStateInputArb, (input) => {
      const fromConfig = desiredStateOf(parseConfigFile({ agent: { stateDir: '/tmp/x' }, ...input }));
      assert.equal(json(fromConfig), json(parseDesiredState(input)));
    }),
    { numRuns: 100 },
  );
});

test('API: PUT /v1/state of an input, then GET /v1/state given back by PUT answers changed: false', async () => {
  await fc.assert(
    fc.asyncProperty(desiredStateInputArb, async (input) => {
      const h = await harness({ withXdp: true });
      try {
        const put = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: admin, payload: input as object });
        assert.equal(put.statusCode, 200, put.body);
        const revision = put.json().revision as number;
        const got = await h.app.inject({ method: 'GET', url: '/v1/state', headers: admin });
        assert.equal(got.statusCode, 200);
        const { state } = got.json() as { state: unknown };
        assert.equal(json(state), json(parseDesiredState(input)));
        const again = await h.app.inject({ method: 'PUT', url: '/v1/state', headers: admin, payload: state as object });
        assert.equal(again.statusCode, 200, again.body);
        assert.equal(again.json().changed, false, `the GET output was taken as a change: ${json(again.json().diff)}`);
        assert.equal(again.json().revision, revision);
        // Each service the same way, through its own resource.
        for (const svc of (state as { services: Array<{ name: string }> }).services) {
          const one = await h.app.inject({ method: 'GET', url: `/v1/services/${svc.name}`, headers: admin });
          const back = await h.app.inject({ method: 'PUT', url: `/v1/services/${svc.name}`, headers: admin, payload: one.json() as object });
          assert.equal(back.statusCode, 200, back.body);
          assert.equal(back.json().changed, false, `GET /v1/services/${svc.name} was taken as a change`);
        }
        // And the store holds what the API shows (nothing yet when the PUT changed nothing).
        const stored = new FileStateStore(h.dir).load();
        assert.equal(json(stored?.state ?? parseDesiredState({})), json(state));
      } finally {
        await h.close();
      }
    }),
    { numRuns: 40 },
  );
});
