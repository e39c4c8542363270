import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipvsadm } from '../helpers/ipvs-vm.js';
import { labWithReconciler, services } from '../helpers/ipvs-fulcrum.js';

const fx = labWithReconciler('dr', 2);
const skip = fx.skip;

test('DR: backends holding the VIP on lo answer the client directly; rr alternates', { skip }, async () => {
  await fx.r.reconcile(services([{
    name: 'web', address: fx.lab.vip4, port: 80, scheduler: 'rr', forwarding: 'dr',
    backends: fx.lab.backends.map((b) => ({ address: b.v4 })),
  }]));
  const listed = await ipvsadm('-Ln');
  for (const b of fx.lab.backends) assert.ok(listed.includes(`  -> ${b.v4}:80`.padEnd(34) + 'Route   1 '), listed);
  const answers = await fx.lab.get(`http://${fx.lab.vip4}/`, 6);
  assert.deepEqual(new Set(answers), new Set(['backend1', 'backend2']), answers.join(','));
  for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i], answers[i - 1], answers.join(','));
  // The replies bypassed the LB: IPVS saw packets in, none out (DR forwards one way).
  // The kernel folds per-CPU counters into the totals it reports on its estimator tick (2 s).
  let web = (await fx.r.stats()).find((s) => s.service === 'web')!;
  for (let i = 0; i < 20 && web.totals.packetsIn === 0n; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    web = (await fx.r.stats()).find((s) => s.service === 'web')!;
  }
  assert.ok(web.totals.packetsIn > 0n, 'packets in');
  assert.equal(web.totals.packetsOut, 0n, 'DR replies never cross the LB');
});
