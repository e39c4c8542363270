import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipvsDataplaneOver } from '../../src/ipvs/dataplane.js';
import { parseDesiredState } from '../../src/model/index.js';
import { FakeIpvsClient } from '../helpers/fake-ipvs.js';

test('the IPVS Dataplane reconciles, reports stats by service name, drains, and closes its client', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-dp-'));
  const client = new FakeIpvsClient();
  const dp = ipvsDataplaneOver(client, { stateDir: dir, report: () => undefined, drainPollSeconds: 3600 });
  try {
    assert.equal(dp.name, 'ipvs');
    const svcs = parseDesiredState({ services: [{ name: 'web', address: '10.0.0.1', port: 80, backends: [{ address: '10.0.1.1' }] }] }).services;
    const res = await dp.reconcile(svcs, { dryRun: true });
    assert.deepEqual(res.steps.map((s) => s.description), ['+ service web tcp 10.0.0.1:80 wlc', '+ backend 10.0.1.1:80 masq weight 1 to web']);
    assert.equal(client.services.size, 0);
    await dp.reconcile(svcs);
    const stats = await dp.stats();
    assert.deepEqual(stats.map((s) => [s.service, s.backends.map((b) => `${b.address}:${b.port}`)]), [['web', ['10.0.1.1:80']]]);
    assert.deepEqual(dp.drains(), []);
  } finally {
    await dp.close();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(client.closed, true);
});
