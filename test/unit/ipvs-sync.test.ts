import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FulcrumError } from '../../src/errors.js';
import { IpvsSyncSchema, type IpvsSync } from '../../src/model/ipvs.js';
import { parseDesiredState } from '../../src/model/index.js';
import { IpvsSyncDaemons, desiredSysctls, planSync, type SysctlPort } from '../../src/ipvs/sync.js';
import { FakeIpvsClient } from '../helpers/fake-ipvs.js';

/** The sync-daemon keeper over a fake IPVS client and fake sysctls (the VM tier runs the kernel's). */

const sync = (over: Partial<IpvsSync> = {}): IpvsSync => IpvsSyncSchema.parse({ interface: 'eth1', syncId: 7, ...over });

class FakeSysctls implements SysctlPort {
  values = new Map<string, string>([['sync_version', '1'], ['sync_refresh_period', '0'], ['sync_retries', '0'], ['sync_threshold', '3\t50']]);
  writes: string[] = [];
  read(n: string) { return this.values.get(n); }
  write(n: string, v: string) { this.writes.push(`${n}=${v}`); this.values.set(n, v); }
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-sync-'));
  const client = new FakeIpvsClient();
  const sysctls = new FakeSysctls();
  const keeper = () => new IpvsSyncDaemons(client, dir, sysctls);
  return { dir, client, sysctls, keeper, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('ipvs.sync model: defaults, and errors that name the field', () => {
  const s = parseDesiredState({ ipvs: { sync: { interface: 'eth1', syncId: 7 } } }).ipvs!.sync!;
  assert.deepEqual(s, { interface: 'eth1', syncId: 7, refreshPeriod: 10, retries: 0 });
  const bad = (over: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseDesiredState({ ipvs: { sync: { interface: 'eth1', syncId: 7, ...over } } }), (e: unknown) => e instanceof FulcrumError && re.test(e.message));
  bad({ syncId: 0 }, /ipvs\.sync\.syncId/);
  bad({ group: '10.0.0.1' }, /ipvs\.sync\.group: must be an IPv4 \(224\.0\.0\.0\/4\) or IPv6 \(ff00::\/8\) multicast group/);
  bad({ interface: 'eth0:1' }, /ipvs\.sync\.interface: must be an interface name/);
  bad({ retries: 4 }, /ipvs\.sync\.retries/);
});

test('sync: starts a master and a backup daemon with one sync id, sets the sysctls, then plans nothing', async () => {
  const t = setup();
  try {
    const k = t.keeper();
    const steps = await k.reconcile(sync(), { dryRun: false });
    assert.deepEqual(steps.map((s) => s.description), [
      '+ master sync daemon on eth1, sync id 7',
      '+ backup sync daemon on eth1, sync id 7',
      '~ net.ipv4.vs.sync_refresh_period = 10 (was 0)',
      // /proc prints the vector tab-separated: compared by value.
      '~ net.ipv4.vs.sync_threshold = 3 0 (was 3 50)',
    ]);
    assert.deepEqual([...t.client.daemons.keys()].sort(), ['backup', 'master']);
    assert.deepEqual(t.sysctls.writes, ['sync_refresh_period=10', 'sync_threshold=3 0']);
    t.sysctls.values.set('sync_threshold', '3\t0');
    // The kernel reports its defaults for what was left out: still the same daemons.
    assert.deepEqual(await k.reconcile(sync(), { dryRun: false }), []);
    assert.deepEqual(await t.keeper().reconcile(sync(), { dryRun: false }), [], 'a restarted agent owns them from its record');
    assert.deepEqual(k.status().daemons.map((d) => [d.state, d.owned]), [['master', true], ['backup', true]]);
  } finally {
    t.done();
  }
});

test('sync: sync_threshold period 0 with a refresh period (quiet connections are refreshed); the kernel default without one', () => {
  assert.deepEqual(Object.fromEntries(desiredSysctls(sync())).sync_threshold, '3 0');
  assert.deepEqual(Object.fromEntries(desiredSysctls(sync({ refreshPeriod: 0 }))).sync_threshold, '3 50');
});

test('sync: drift is repaired, a changed setting restarts the daemons, removing the section stops only ours', async () => {
  const t = setup();
  try {
    const k = t.keeper();
    await k.reconcile(sync(), { dryRun: false });
    t.client.daemons.delete('backup'); // ipvsadm --stop-daemon backup, behind Fulcrum's back
    assert.deepEqual((await k.reconcile(sync(), { dryRun: false })).map((s) => s.kind), ['start-sync-daemon']);
    t.sysctls.values.set('sync_refresh_period', '0');
    assert.deepEqual((await k.reconcile(sync(), { dryRun: false })).map((s) => s.kind), ['set-sysctl']);
    const moved = await k.reconcile(sync({ port: 8900 }), { dryRun: true });
    assert.deepEqual(moved.map((s) => s.kind), ['stop-sync-daemon', 'start-sync-daemon', 'stop-sync-daemon', 'start-sync-daemon']);
    assert.equal(t.client.daemons.get('master')!.port, 8848, 'a dry run changes nothing');
    await k.reconcile(sync({ port: 8900 }), { dryRun: false });
    assert.equal(t.client.daemons.get('master')!.port, 8900);
    assert.deepEqual((await k.reconcile(undefined, { dryRun: false })).map((s) => s.kind), ['stop-sync-daemon', 'stop-sync-daemon']);
    assert.equal(t.client.daemons.size, 0);
    const before = t.client.calls.length;
    assert.deepEqual(await k.reconcile(undefined, { dryRun: false }), []);
    assert.equal(t.client.calls.length, before, 'no section and nothing owned: not even a read');
  } finally {
    t.done();
  }
});

test('sync: a daemon Fulcrum did not start is left alone; in the way, it is a conflict that says what to do', async () => {
  const t = setup();
  try {
    await t.client.startDaemon({ state: 'backup', interface: 'eth1', syncId: 9 }); // keepalived's, say
    const k = t.keeper();
    await assert.rejects(k.reconcile(sync(), { dryRun: false }), (e: unknown) =>
      e instanceof FulcrumError && e.code === 'CONFLICT' && /a backup sync daemon on eth1, sync id 9.* runs that Fulcrum did not start.*ipvsadm --stop-daemon backup/.test(e.message));
    assert.equal(t.client.daemons.get('backup')!.syncId, 9);
    // The same settings as Fulcrum wants: it is not Fulcrum's to stop, and no conflict.
    t.client.daemons.set('backup', { state: 'backup', interface: 'eth1', syncId: 7, port: 8848, ttl: 1, group: '224.0.0.81', maxLength: 1472 });
    assert.deepEqual((await k.reconcile(sync(), { dryRun: false })).map((s) => s.description), ['+ master sync daemon on eth1, sync id 7', '~ net.ipv4.vs.sync_refresh_period = 10 (was 0)', '~ net.ipv4.vs.sync_threshold = 3 0 (was 3 50)']);
    await k.reconcile(undefined, { dryRun: false });
    assert.deepEqual([...t.client.daemons.keys()], ['backup'], 'only the daemon Fulcrum started is stopped');
    await k.cleanup();
    assert.deepEqual([...t.client.daemons.keys()], ['backup']);
  } finally {
    t.done();
  }
});

test('sync: ownership is recorded before a start, so a failed start is retried, never forgotten', async () => {
  const t = setup();
  try {
    t.client.failWhen = (op) => (op === 'startDaemon' ? 19 : undefined); // ENODEV: no such interface
    await assert.rejects(t.keeper().reconcile(sync(), { dryRun: false }));
    t.client.failWhen = undefined;
    assert.equal((await t.keeper().reconcile(sync(), { dryRun: false })).filter((s) => s.kind === 'start-sync-daemon').length, 2);
  } finally {
    t.done();
  }
});

test('planSync is pure: kernel defaults compare equal, an IPv6 group has no v4 default', () => {
  const have = [{ state: 'master' as const, interface: 'eth1', syncId: 7, port: 8848, ttl: 1, group: '224.0.0.81', maxLength: 1472 }];
  assert.deepEqual(planSync(sync(), have, new Set(['master']), () => undefined).steps.filter((s) => s.kind !== 'set-sysctl').map((s) => s.kind), ['start-sync-daemon']);
  assert.equal(planSync(sync({ group: 'ff02::81' }), have, new Set(['master']), () => undefined).steps[0]!.kind, 'stop-sync-daemon');
});
