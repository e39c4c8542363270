import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { plan, applyToObserved, type ObservedIpvsService, type Step } from '../../src/ipvs/plan.js';
import { applySteps } from '../../src/ipvs/executor.js';
import { keyString, destId, sameService, sameDest, type DesiredIpvsService } from '../../src/ipvs/model-specs.js';
import type { IpvsDestSpec, IpvsServiceSpec } from '../../src/ipvs/types.js';
import { FulcrumError } from '../../src/errors.js';
import { FakeIpvsClient } from '../helpers/fake-ipvs.js';

// Small pools so that desired and observed overlap often.
const vip = fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3', '2001:db8::1');
const svcSpec: fc.Arbitrary<IpvsServiceSpec> = fc
  .record({
    address: vip, port: fc.constantFrom(80, 443), protocol: fc.constantFrom('tcp' as const, 'udp' as const),
    scheduler: fc.constantFrom('rr', 'wrr', 'wlc', 'sh'), persistent: fc.boolean(), timeout: fc.constantFrom(60, 300),
    fwmark: fc.option(fc.constantFrom(1, 2), { nil: undefined }),
  })
  .map((r) => {
    const family = r.address.includes(':') ? ('inet6' as const) : ('inet' as const);
    return {
      key: r.fwmark !== undefined ? { family, fwmark: r.fwmark } : { family, protocol: r.protocol, address: r.address, port: r.port },
      scheduler: r.scheduler, flags: r.persistent ? 1 : 0, timeout: r.persistent ? r.timeout : 0, netmask: family === 'inet' ? 0xffffffff : 128,
    };
  });
const dests = (family: 'inet' | 'inet6') =>
  fc.uniqueArray(
    fc.record({
      host: fc.integer({ min: 1, max: 5 }), port: fc.constantFrom(80, 8080), weight: fc.integer({ min: 0, max: 3 }),
      forward: fc.constantFrom('masq' as const, 'route' as const),
    }),
    { selector: (d) => `${d.host}:${d.port}`, maxLength: 4 },
  ).map((ds) => ds.map((d): IpvsDestSpec => ({
    address: family === 'inet' ? `10.0.1.${d.host}` : `2001:db8:1::${d.host}`, port: d.port, family, forward: d.forward, weight: d.weight,
    upperThreshold: 0, lowerThreshold: 0,
  })));
const service = svcSpec.chain((spec) => dests(spec.key.family).map((ds) => ({ spec, dests: ds })));
const table = fc.uniqueArray(service, { selector: (s) => keyString(s.spec.key), maxLength: 5 });

function observedOf(list: { spec: IpvsServiceSpec; dests: IpvsDestSpec[] }[]): Map<string, ObservedIpvsService> {
  return new Map(list.map((s) => [keyString(s.spec.key), { spec: s.spec, dests: s.dests.map((d) => ({ ...d, activeConnections: 0 })) }]));
}
function desiredOf(list: { spec: IpvsServiceSpec; dests: IpvsDestSpec[] }[]): DesiredIpvsService[] {
  return list.map((s, i) => ({ name: `svc${i}`, spec: s.spec, dests: s.dests }));
}
function assertMatches(state: ReadonlyMap<string, { spec: IpvsServiceSpec; dests: IpvsDestSpec[] }>, desired: DesiredIpvsService[], owned: Set<string>): void {
  const ownedNow = [...state.keys()].filter((k) => owned.has(k)).sort();
  assert.deepEqual(ownedNow, desired.map((d) => keyString(d.spec.key)).sort());
  for (const d of desired) {
    const got = state.get(keyString(d.spec.key))!;
    assert.ok(sameService(got.spec, d.spec), `service ${keyString(d.spec.key)}`);
    assert.deepEqual([...got.dests].map(destId).sort(), d.dests.map(destId).sort());
    for (const want of d.dests) assert.ok(sameDest(got.dests.find((x) => destId(x) === destId(want))!, want));
  }
}

test('plan applied to observed yields desired (owned services only; foreign ones untouched)', () => {
  fc.assert(
    fc.property(table, table, table, (want, have, foreignRaw) => {
      const owned = new Set(have.map((s) => keyString(s.spec.key)));
      const wantKeys = new Set(want.map((s) => keyString(s.spec.key)));
      // Foreign services: in the kernel, not owned, not desired.
      const foreign = foreignRaw.filter((s) => !owned.has(keyString(s.spec.key)) && !wantKeys.has(keyString(s.spec.key)));
      const observed = observedOf([...have, ...foreign]);
      const desired = desiredOf(want);
      const allOwned = new Set([...owned, ...wantKeys]);
      const steps = plan(desired, observed, allOwned, { drain: false });
      const after = applyToObserved(observed, steps);
      assertMatches(after, desired, allOwned);
      for (const f of foreign) assert.deepEqual(after.get(keyString(f.spec.key)), observed.get(keyString(f.spec.key)));
      assert.ok(steps.every((s) => !foreign.some((f) => keyString(f.spec.key) === keyString(s.key))), 'no step touches a foreign service');
      // And it converges: planning again is empty.
      assert.deepEqual(plan(desired, after, allOwned, { drain: false }), []);
    }),
    { numRuns: 300 },
  );
});

test('plan of desired against itself is empty', () => {
  fc.assert(
    fc.property(table, (want) => {
      const observed = observedOf(want);
      assert.deepEqual(plan(desiredOf(want), observed, new Set(observed.keys())), []);
    }),
    { numRuns: 200 },
  );
});

async function kernelOf(have: { spec: IpvsServiceSpec; dests: IpvsDestSpec[] }[]): Promise<FakeIpvsClient> {
  const client = new FakeIpvsClient();
  for (const s of have) {
    await client.addService(s.spec);
    for (const d of s.dests) await client.addDestination(s.spec.key, d);
  }
  return client;
}
/** The fake kernel's table in a canonical form (destination order is not part of it). */
function snapshot(client: FakeIpvsClient): string {
  return JSON.stringify([...client.services].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, v.spec, [...v.dests].sort(([a], [b]) => a.localeCompare(b))]));
}
const OP_OF: Record<Step['kind'], string> = {
  'add-service': 'addService', 'edit-service': 'editService', 'delete-service': 'deleteService',
  'add-dest': 'addDestination', 'edit-dest': 'editDestination', 'drain-dest': 'editDestination', 'delete-dest': 'deleteDestination',
};
function stepTarget(s: Step): { address: string; port: number } | undefined {
  return s.kind === 'add-dest' || s.kind === 'edit-dest' || s.kind === 'drain-dest' ? s.dest : s.kind === 'delete-dest' ? s.previous : undefined;
}

for (const batched of [true, false]) {
  const mode = batched ? 'batch()' : 'one call per step';
  test(`the executor brings a kernel (fake client, ${mode}) to desired, whatever the starting table`, async () => {
    await fc.assert(
      fc.asyncProperty(table, table, async (want, have) => {
        const client = await kernelOf(have);
        const observed = observedOf(have);
        const desired = desiredOf(want);
        const owned = new Set([...observed.keys(), ...desired.map((d) => keyString(d.spec.key))]);
        client.calls.length = 0;
        await applySteps(batched ? client : client.withoutBatch(), plan(desired, observed, owned, { drain: false }));
        const state = new Map([...client.services].map(([k, v]) => [k, { spec: v.spec, dests: [...v.dests.values()] }]));
        assertMatches(state, desired, owned);
        assert.equal(client.batches > 0, batched && client.calls.length > 0);
      }),
      { numRuns: 150 },
    );
  });

  test(`a step failing anywhere (${mode}) rolls the kernel back to where it was and names that step with its errno`, async () => {
    await fc.assert(
      fc.asyncProperty(table, table, fc.nat(), async (want, have, pick) => {
        const client = await kernelOf(have);
        const observed = observedOf(have);
        const desired = desiredOf(want);
        const owned = new Set([...observed.keys(), ...desired.map((d) => keyString(d.spec.key))]);
        const steps = plan(desired, observed, owned, { drain: false });
        fc.pre(steps.length > 0);
        const bad = steps[pick % steps.length]!;
        const before = snapshot(client);
        let armed = true;
        client.failWhen = (op, key, dest) => {
          const hit = armed && op === OP_OF[bad.kind] && key !== undefined && keyString(key) === bad.keyText &&
            (stepTarget(bad) === undefined || (dest !== undefined && destId(dest) === destId(stepTarget(bad)!)));
          if (!hit) return undefined;
          armed = false; // only the step itself fails, not its undo
          return 22;
        };
        await assert.rejects(applySteps(batched ? client : client.withoutBatch(), steps), (e: unknown) => {
          assert.ok(e instanceof FulcrumError);
          assert.equal(e.code, 'APPLY_FAILED');
          assert.equal(e.errno, 22);
          assert.ok(e.message.startsWith(`step "${bad.description}" failed: `), e.message);
          assert.match(e.message, /rolled back \d+ applied step/);
          return true;
        });
        assert.equal(snapshot(client), before);
      }),
      { numRuns: 150 },
    );
  });
}

const spec = (address: string, scheduler = 'wlc'): IpvsServiceSpec => ({
  key: { family: 'inet', protocol: 'tcp', address, port: 80 }, scheduler, flags: 0, timeout: 0, netmask: 0xffffffff,
});
const dest = (host: number, weight = 1): IpvsDestSpec => ({
  address: `10.0.1.${host}`, port: 80, family: 'inet', forward: 'masq', weight, upperThreshold: 0, lowerThreshold: 0,
});

test('a desired service whose key a foreign service holds is a CONFLICT naming both, not a takeover', () => {
  const observed = observedOf([{ spec: spec('10.0.0.1'), dests: [dest(1)] }]);
  assert.throws(
    () => plan([{ name: 'web', spec: spec('10.0.0.1'), dests: [dest(1)] }], observed, new Set()),
    (e: unknown) => e instanceof FulcrumError && e.code === 'CONFLICT' && /service web: tcp 10\.0\.0\.1:80 .*not owned/.test(e.message),
  );
});

test('only what differs changes: one weight is one edit-dest step with a readable description', () => {
  const observed = observedOf([{ spec: spec('10.0.0.1'), dests: [dest(1), dest(2)] }]);
  const steps = plan([{ name: 'web', spec: spec('10.0.0.1'), dests: [dest(1), dest(2, 5)] }], observed, new Set(observed.keys()));
  assert.deepEqual(steps.map((s) => [s.kind, s.description]), [['edit-dest', '~ backend 10.0.1.2:80 of web: weight 1 -> 5']]);
});

test('scheduler change is an in-place edit; the kernel HASHED flag is not a difference', () => {
  const observed = observedOf([{ spec: { ...spec('10.0.0.1'), flags: 0x2 }, dests: [] }]);
  assert.deepEqual(plan([{ name: 'web', spec: spec('10.0.0.1'), dests: [] }], observed, new Set(observed.keys())), []);
  const steps = plan([{ name: 'web', spec: spec('10.0.0.1', 'rr'), dests: [] }], observed, new Set(observed.keys()));
  assert.deepEqual(steps.map((s) => s.description), ['~ service web tcp 10.0.0.1:80: scheduler wlc -> rr']);
});

test('a removed backend with connections drains first (weight 0), then is deleted when idle or at its deadline', () => {
  const k = 'tcp 10.0.0.1:80';
  const obs = (active: number, weight: number) =>
    new Map([[k, { spec: spec('10.0.0.1'), dests: [{ ...dest(1) }, { ...dest(2, weight), activeConnections: active }] }]]);
  const desired = [{ name: 'web', spec: spec('10.0.0.1'), dests: [dest(1)] }];
  const owned = new Set([k]);
  const s1 = plan(desired, obs(3, 1), owned, { now: 0 });
  assert.deepEqual(s1.map((s) => s.kind), ['drain-dest']);
  assert.equal((s1[0] as Extract<Step, { kind: 'drain-dest' }>).dest.weight, 0);
  const drains = new Map([[`${k} 10.0.1.2:80`, { key: k, dest: '10.0.1.2:80', service: 'web', startedAt: 0, deadline: 1000 }]]);
  assert.deepEqual(plan(desired, obs(3, 0), owned, { now: 500, drains }), [], 'still draining: nothing to do');
  assert.deepEqual(plan(desired, obs(0, 0), owned, { now: 500, drains }).map((s) => s.description), ['- backend 10.0.1.2:80 from web (drained)']);
  assert.deepEqual(plan(desired, obs(2, 0), owned, { now: 1000, drains }).map((s) => s.description), ['- backend 10.0.1.2:80 from web (drain timeout, 2 active connections)']);
  assert.deepEqual(plan(desired, obs(0, 1), owned, { now: 0 }).map((s) => s.kind), ['delete-dest'], 'idle backends go at once');
  assert.deepEqual(plan(desired, obs(3, 1), owned, { drain: false }).map((s) => s.kind), ['delete-dest'], 'drain off: delete at once');
});
