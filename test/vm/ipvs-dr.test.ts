import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ipvsSkipReason, ipvsadm, resetIpvs } from '../helpers/ipvs-vm.js';
import { IpvsLab } from '../helpers/ipvs-lab.js';
import { reconcilerIn, services, tempDir } from '../helpers/ipvs-fulcrum.js';
import type { IpvsReconciler } from '../../src/ipvs/reconciler.js';

const skip = ipvsSkipReason();
let lab: IpvsLab;
let r: IpvsReconciler;
let state: ReturnType<typeof tempDir>;

before(async () => {
  if (skip) return;
  await resetIpvs();
  lab = await IpvsLab.create('dr', 2);
  state = tempDir();
  r = await reconcilerIn(state.dir);
});
after(async () => {
  if (skip) return;
  await r?.cleanup().catch(() => undefined);
  await r?.close();
  await lab?.cleanup();
  state?.remove();
  await resetIpvs();
});

test('DR: backends holding the VIP on lo answer the client directly; rr alternates', { skip }, async () => {
  await r.reconcile(services([{
    name: 'web', address: lab.vip4, port: 80, scheduler: 'rr', forwarding: 'dr',
    backends: lab.backends.map((b) => ({ address: b.v4 })),
  }]));
  const listed = await ipvsadm('-Ln');
  for (const b of lab.backends) assert.ok(listed.includes(`  -> ${b.v4}:80`.padEnd(34) + 'Route   1 '), listed);
  const answers = await lab.get(`http://${lab.vip4}/`, 6);
  assert.deepEqual(new Set(answers), new Set(['backend1', 'backend2']), answers.join(','));
  for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i], answers[i - 1], answers.join(','));
  // The replies bypassed the LB: IPVS saw packets in, none out (DR forwards one way).
  // The kernel folds per-CPU counters into the totals it reports on its estimator tick (2 s).
  let web = (await r.stats()).find((s) => s.service === 'web')!;
  for (let i = 0; i < 20 && web.totals.packetsIn === 0n; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    web = (await r.stats()).find((s) => s.service === 'web')!;
  }
  assert.ok(web.totals.packetsIn > 0n, 'packets in');
  assert.equal(web.totals.packetsOut, 0n, 'DR replies never cross the LB');
});
