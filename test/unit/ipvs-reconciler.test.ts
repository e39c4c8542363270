import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDesiredState, type Service } from '../../src/model/index.js';
import { IpvsReconciler } from '../../src/ipvs/reconciler.js';
import { FulcrumError } from '../../src/errors.js';
import { FakeIpvsClient } from '../helpers/fake-ipvs.js';
import { systemClock, type Clock } from '../../src/util/clock.js';

const MUTATING = ['addService', 'editService', 'deleteService', 'addDestination', 'editDestination', 'deleteDestination', 'flush'];

function services(weight2 = 1, extra: object[] = []): Service[] {
  return parseDesiredState({
    services: [
      { name: 'web', address: '10.0.0.1', port: 80, scheduler: 'rr', backends: [{ address: '10.0.1.1' }, { address: '10.0.1.2', weight: weight2 }] },
      { name: 'dns', address: '10.0.0.1', port: 53, protocol: 'udp', backends: [{ address: '10.0.1.3' }] },
      ...extra,
    ],
  }).services;
}

function setup(opts: { clock?: Clock; drainTimeoutMs?: number } = {}, batch = true) {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-ipvs-'));
  const client = new FakeIpvsClient();
  const make = () => new IpvsReconciler({ client: batch ? client : client.withoutBatch(), stateDir: dir, ...opts });
  return { dir, client, make, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const web = { family: 'inet' as const, protocol: 'tcp' as const, address: '10.0.0.1', port: 80 };

test('first reconcile adds everything and records ownership; the next one plans nothing', async () => {
  const { dir, make, done } = setup();
  try {
    const r = make();
    const first = await r.reconcile(services());
    assert.equal(first.applied, true);
    assert.deepEqual(first.steps.map((s) => s.kind).sort(), ['add-dest', 'add-dest', 'add-dest', 'add-service', 'add-service']);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'ipvs-owned.json'), 'utf8')).data.owned, ['tcp 10.0.0.1:80', 'udp 10.0.0.1:53']);
    const second = await r.reconcile(services());
    assert.deepEqual(second.steps, []);
    assert.equal(second.fullRead, true, 'unchanged desired state re-reads the kernel (drift check)');
  } finally { done(); }
});

test('a restart (new reconciler, same stateDir) plans nothing and still owns what it made', async () => {
  const { client, make, done } = setup();
  try {
    await make().reconcile(services());
    client.calls.length = 0;
    const again = make();
    assert.deepEqual((await again.reconcile(services())).steps, []);
    assert.deepEqual(client.calls.filter((c) => MUTATING.includes(c)), []);
    const removed = await again.reconcile(services().slice(0, 1));
    assert.deepEqual(removed.steps.map((s) => s.description), ['- service udp 10.0.0.1:53']);
    assert.deepEqual(again.ownedKeys(), ['tcp 10.0.0.1:80']);
  } finally { done(); }
});

test('foreign services are reported and never touched; taking their key is a CONFLICT with nothing applied', async () => {
  const { client, make, done } = setup();
  try {
    await client.addService({ key: { family: 'inet', protocol: 'tcp', address: '10.9.9.9', port: 80 }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
    const r = make();
    const res = await r.reconcile(services());
    assert.deepEqual(res.foreign, ['tcp 10.9.9.9:80']);
    assert.ok(client.services.has('tcp 10.9.9.9:80'));
    client.calls.length = 0;
    const clash = services(1, [{ name: 'other', address: '10.9.9.9', port: 80, backends: [{ address: '10.0.1.9' }] }]);
    await assert.rejects(r.reconcile(clash), (e: unknown) => e instanceof FulcrumError && e.code === 'CONFLICT' && /service other: tcp 10\.9\.9\.9:80/.test(e.message));
    assert.deepEqual(client.calls.filter((c) => MUTATING.includes(c)), []);
    assert.equal(client.services.get('tcp 10.9.9.9:80')!.dests.size, 0);
  } finally { done(); }
});

test('drift behind our back (service deleted, weight changed) is repaired and reported', async () => {
  const { client, make, done } = setup();
  try {
    const r = make();
    await r.reconcile(services());
    client.services.delete('udp 10.0.0.1:53');
    await client.editDestination(web, { address: '10.0.1.1', port: 80, family: 'inet', forward: 'masq', weight: 9, upperThreshold: 0, lowerThreshold: 0 });
    const res = await r.reconcile(services());
    assert.deepEqual(res.drift.sort(), [
      '+ backend 10.0.1.3:53 masq weight 1 to dns',
      '+ service dns udp 10.0.0.1:53 wlc',
      '~ backend 10.0.1.1:80 of web: weight 9 -> 1',
    ]);
    assert.equal(client.services.get('tcp 10.0.0.1:80')!.dests.get('10.0.1.1:80')!.weight, 1);
    assert.ok(client.services.has('udp 10.0.0.1:53'));
  } finally { done(); }
});

test('one weight change is one netlink request (planned against the last applied state), no dump', async () => {
  const { client, make, done } = setup();
  try {
    const r = make();
    const base = services();
    await r.reconcile(base);
    client.calls.length = 0;
    const changed = [services(7)[0]!, base[1]!]; // dns is the same object: untouched
    const res = await r.reconcile(changed);
    assert.equal(res.fullRead, false);
    assert.deepEqual(res.steps.map((s) => s.description), ['~ backend 10.0.1.2:80 of web: weight 1 -> 7']);
    assert.deepEqual(client.calls, ['editDestination']);
  } finally { done(); }
});

test('a change planned on a stale view (kernel drifted) fails cleanly, then re-reads everything and succeeds', async () => {
  const { client, make, done } = setup();
  try {
    const r = make();
    const base = services();
    await r.reconcile(base);
    client.services.get('tcp 10.0.0.1:80')!.dests.delete('10.0.1.2:80'); // ipvsadm -d behind our back
    const res = await r.reconcile([services(7)[0]!, base[1]!]);
    assert.equal(res.fullRead, true);
    assert.deepEqual(res.steps.map((s) => s.description), ['+ backend 10.0.1.2:80 masq weight 7 to web']);
    assert.equal(client.services.get('tcp 10.0.0.1:80')!.dests.get('10.0.1.2:80')!.weight, 7);
  } finally { done(); }
});

test('dry run plans without changing the kernel or the ownership record', async () => {
  const { dir, client, make, done } = setup();
  try {
    const res = await make().reconcile(services(), { dryRun: true });
    assert.equal(res.applied, false);
    assert.equal(res.steps.length, 5);
    assert.deepEqual(client.calls.filter((c) => MUTATING.includes(c)), []);
    assert.throws(() => readFileSync(join(dir, 'ipvs-owned.json')));
  } finally { done(); }
});

for (const batch of [true, false]) test(`ownership is on disk before the kernel add; a failing step rolls back, keeps errno and names the step (${batch ? 'batched' : 'one call per step'})`, async () => {
  const { dir, client, make, done } = setup({}, batch);
  try {
    const r = make();
    await r.reconcile(services());
    let ownedAtAdd: string[] = [];
    client.failWhen = (op, _key, dest) => {
      if (op === 'addService') ownedAtAdd = JSON.parse(readFileSync(join(dir, 'ipvs-owned.json'), 'utf8')).data.owned;
      return op === 'addDestination' && dest?.address === '10.0.2.2' ? 22 : undefined;
    };
    const before = JSON.stringify([...client.services].map(([k, v]) => [k, v.spec, [...v.dests]]));
    const next = services(5, [{ name: 'api', address: '10.0.0.2', port: 80, backends: [{ address: '10.0.2.1' }, { address: '10.0.2.2' }] }]);
    await assert.rejects(r.reconcile(next), (e: unknown) => {
      assert.ok(e instanceof FulcrumError);
      assert.equal(e.code, 'APPLY_FAILED');
      assert.equal(e.errno, 22);
      assert.match(e.message, /step "\+ backend 10\.0\.2\.2:80 masq weight 1 to api" failed: addDestination: EINVAL .*rolled back \d+ applied step/);
      return true;
    });
    assert.ok(ownedAtAdd.includes('tcp 10.0.0.2:80'), 'the new key was recorded before the kernel add');
    assert.equal(JSON.stringify([...client.services].map(([k, v]) => [k, v.spec, [...v.dests]])), before, 'kernel back to where it was');
    assert.deepEqual(r.ownedKeys(), ['tcp 10.0.0.1:80', 'udp 10.0.0.1:53'], 'rolled-back add is no longer owned');
    client.failWhen = undefined;
    const ok = await r.reconcile(next);
    assert.equal(ok.fullRead, true, 'after a failure the next reconcile reads the whole kernel');
    assert.ok(client.services.get('tcp 10.0.0.2:80')!.dests.has('10.0.2.2:80'));
    assert.equal(client.batches > 0, batch, batch ? 'the executor used batch()' : 'no batch() on the client: one call per step');
  } finally { done(); }
});

test('a removed backend drains: weight 0, listed by drains(), deleted when idle or at the timeout (injected clock)', async () => {
  let now = 1_000_000;
  const { client, make, done } = setup({ clock: { ...systemClock, wallNow: () => now }, drainTimeoutMs: 60_000 });
  try {
    const r = make();
    await r.reconcile(services());
    client.setActive(web, { address: '10.0.1.2', port: 80 }, 4);
    const oneBackend = parseDesiredState({ services: [{ name: 'web', address: '10.0.0.1', port: 80, scheduler: 'rr', backends: [{ address: '10.0.1.1' }] }, { name: 'dns', address: '10.0.0.1', port: 53, protocol: 'udp', backends: [{ address: '10.0.1.3' }] }] }).services;
    const res = await r.reconcile(oneBackend);
    assert.deepEqual(res.steps.map((s) => s.kind), ['drain-dest']);
    assert.equal(client.services.get('tcp 10.0.0.1:80')!.dests.get('10.0.1.2:80')!.weight, 0);
    assert.deepEqual(r.drains().map((d) => [d.service, d.address, d.port, d.activeConnections, d.deadline]), [['web', '10.0.1.2', 80, 4, new Date(now + 60_000).toISOString()]]);
    now += 10_000;
    assert.deepEqual((await r.pollDrains())!.steps, [], 'still busy: kept');
    // A restart keeps the drain and its deadline.
    const r2 = make();
    assert.deepEqual(r2.drains().map((d) => d.deadline), [new Date(now - 10_000 + 60_000).toISOString()]);
    client.setActive(web, { address: '10.0.1.2', port: 80 }, 0);
    const fin = await r.pollDrains();
    assert.deepEqual(fin!.steps.map((s) => s.description), ['- backend 10.0.1.2:80 from web (drained)']);
    assert.deepEqual(r.drains(), []);
    // Timeout path.
    await r.reconcile(services());
    client.setActive(web, { address: '10.0.1.2', port: 80 }, 2);
    await r.reconcile(oneBackend);
    now += 60_000;
    const timedOut = await r.pollDrains();
    assert.deepEqual(timedOut!.steps.map((s) => s.description), ['- backend 10.0.1.2:80 from web (drain timeout, 2 active connections)']);
  } finally { done(); }
});

test('a backend put back while draining gets its weight back and leaves drains()', async () => {
  const { client, make, done } = setup();
  try {
    const r = make();
    await r.reconcile(services());
    client.setActive(web, { address: '10.0.1.2', port: 80 }, 1);
    await r.reconcile([parseDesiredState({ services: [{ name: 'web', address: '10.0.0.1', port: 80, scheduler: 'rr', backends: [{ address: '10.0.1.1' }] }] }).services[0]!, services()[1]!]);
    assert.equal(r.drains().length, 1);
    const back = await r.reconcile(services());
    assert.deepEqual(back.steps.map((s) => s.description), ['~ backend 10.0.1.2:80 of web: weight 0 -> 1']);
    assert.deepEqual(r.drains(), []);
  } finally { done(); }
});

test('cleanup removes only what Fulcrum owns', async () => {
  const { client, make, done } = setup();
  try {
    await client.addService({ key: { family: 'inet', fwmark: 3 }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
    const r = make();
    await r.reconcile(services());
    await r.cleanup();
    assert.deepEqual([...client.services.keys()], ['fwmark 3 inet']);
    assert.deepEqual(r.ownedKeys(), []);
  } finally { done(); }
});
