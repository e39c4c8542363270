import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ipvsSkipReason, ipvsadm, resetIpvs } from '../helpers/ipvs-vm.js';
import { IpvsLab } from '../helpers/ipvs-lab.js';
import { fulcrum, reconcilerIn, services, tempDir, writeConfig } from '../helpers/ipvs-fulcrum.js';
import type { IpvsReconciler } from '../../src/ipvs/reconciler.js';

const skip = ipvsSkipReason();
let lab: IpvsLab;
let state: ReturnType<typeof tempDir>;

before(async () => {
  if (skip) return;
  await resetIpvs();
  lab = await IpvsLab.create('nat', 2);
  state = tempDir();
});
after(async () => {
  if (skip) return;
  await lab?.cleanup();
  state?.remove();
  await resetIpvs();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const webWith = (backends: string[]) => [{ name: 'web', address: lab.vip4, port: 80, scheduler: 'rr', backends: backends.map((address) => ({ address })) }];

test('a restart (new process, same stateDir) during a long transfer plans nothing and drops nothing', { skip }, async () => {
  await resetIpvs();
  const dir = `${state.dir}/restart`;
  const config = writeConfig(state.dir, webWith(lab.backends.map((b) => b.v4)));
  const first = JSON.parse(await fulcrum('ipvs', 'reconcile', '--config', config, '--state-dir', dir, '--json'));
  assert.equal(first.steps.length, 3);
  const before = await ipvsadm('-Ln');
  // 40 s: the transfer must outlast a node start and a reconcile under TCG.
  const stream = await lab.startStream(`http://${lab.vip4}/stream?s=40`);
  let finished = false;
  void stream.done.then(() => { finished = true; });
  const again = JSON.parse(await fulcrum('ipvs', 'reconcile', '--config', config, '--state-dir', dir, '--json'));
  assert.equal(finished, false, 'the transfer was still running across the restart');
  assert.deepEqual(again.steps, [], 'the restarted reconciler has nothing to do');
  assert.equal(again.fullRead, true);
  const during = await ipvsadm('-Ln');
  assert.equal(during.replace(/ +\d+ +\d+ +\n/g, '\n'), before.replace(/ +\d+ +\d+ +\n/g, '\n'), 'same table (connection counters aside)');
  const result = await stream.done;
  assert.match(during, /Masq +1 +1 /, 'the connection is still active in IPVS after the restart');
  assert.deepEqual([result.ok, result.error, result.chunks], [true, '', 400], JSON.stringify(result));
  // Clean up through the same ownership record.
  const emptyConfig = writeConfig(state.dir, []);
  await fulcrum('ipvs', 'reconcile', '--config', emptyConfig, '--state-dir', dir);
  assert.doesNotMatch(await ipvsadm('-Ln'), /TCP/);
});

test('a backend removed mid-connection drains: weight 0, its connection keeps working, then it is deleted', { skip }, async () => {
  await resetIpvs();
  const r: IpvsReconciler = await reconcilerIn(`${state.dir}/drain`, { drainTimeoutMs: 120_000 });
  try {
    await r.reconcile(services(webWith(lab.backends.map((b) => b.v4))));
    const stream = await lab.startStream(`http://${lab.vip4}/stream?s=20`);
    let finished = false;
    void stream.done.then(() => { finished = true; });
    // Which backend carries it: the one with an active connection.
    const table = await ipvsadm('-Ln');
    const busy = lab.backends.find((b) => new RegExp(`-> ${b.v4.replace(/\./g, '\\.')}:80 +Masq +1 +1 `).test(table));
    assert.ok(busy, `one backend has the active connection:\n${table}`);
    const other = lab.backends.find((b) => b !== busy)!;
    const res = await r.reconcile(services(webWith([other.v4])));
    assert.deepEqual(res.steps.map((s) => s.kind), ['drain-dest']);
    assert.equal((await r.pollDrains())!.steps.length, 0, 'still busy: kept');
    assert.match(await ipvsadm('-Ln'), new RegExp(`-> ${busy.v4.replace(/\./g, '\\.')}:80 +Masq +0 +1 `));
    assert.deepEqual(r.drains().map((d) => [d.address, d.activeConnections]), [[busy.v4, 1]]);
    // New connections avoid the draining backend.
    assert.deepEqual(await lab.get(`http://${lab.vip4}/`, 3), [other.name, other.name, other.name]);
    assert.equal(finished, false, 'the transfer outlived the drain checks');
    const result = await stream.done;
    assert.deepEqual([result.name, result.ok, result.error, result.chunks], [busy.name, true, '', 200], JSON.stringify(result));
    // Once idle (FIN seen: the connection is no longer active) the next poll deletes it.
    let deleted = false;
    for (let i = 0; i < 20 && !deleted; i++) {
      const polled = await r.pollDrains();
      deleted = polled === undefined || polled.steps.some((s) => s.kind === 'delete-dest');
      if (!deleted) await sleep(500);
    }
    assert.ok(deleted, 'the drained backend was deleted once idle');
    assert.doesNotMatch(await ipvsadm('-Ln'), new RegExp(`-> ${busy.v4.replace(/\./g, '\\.')}:80`));
    assert.deepEqual(r.drains(), []);
  } finally {
    await r.cleanup().catch(() => undefined);
    await r.close();
  }
});

test('ipvsadm -D behind its back is detected as drift and repaired; traffic flows again', { skip }, async () => {
  await resetIpvs();
  const r: IpvsReconciler = await reconcilerIn(`${state.dir}/drift`);
  try {
    const desired = services(webWith(lab.backends.map((b) => b.v4)));
    await r.reconcile(desired);
    await ipvsadm('-D', '-t', `${lab.vip4}:80`);
    await ipvsadm('-A', '-t', `${lab.vip4}:81`, '-s', 'rr'); // someone else's: must survive
    const res = await r.reconcile(desired);
    assert.equal(res.drift.length, 3, res.drift.join('\n'));
    assert.ok(res.drift.includes(`+ service web tcp ${lab.vip4}:80 rr`), res.drift.join('\n'));
    assert.deepEqual(res.foreign, [`tcp ${lab.vip4}:81`]);
    const answers = await lab.get(`http://${lab.vip4}/`, 2);
    assert.deepEqual(new Set(answers), new Set(['backend1', 'backend2']));
    // A weight changed behind its back is put back too.
    await ipvsadm('-e', '-t', `${lab.vip4}:80`, '-r', `${lab.backends[0]!.v4}:80`, '-m', '-w', '9');
    const res2 = await r.reconcile(desired);
    assert.deepEqual(res2.drift, [`~ backend ${lab.backends[0]!.v4}:80 of web: weight 9 -> 1`]);
    assert.deepEqual((await r.reconcile(desired)).steps, []);
    await r.cleanup();
    assert.match(await ipvsadm('-Ln'), new RegExp(`TCP  ${lab.vip4.replace(/\./g, '\\.')}:81 rr`));
  } finally {
    await ipvsadm('-D', '-t', `${lab.vip4}:81`).catch(() => '');
    await r.close();
  }
});
