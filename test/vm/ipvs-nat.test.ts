import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipvsadm } from '../helpers/ipvs-vm.js';
import { fulcrum, labWithReconciler, services } from '../helpers/ipvs-fulcrum.js';

const fx = labWithReconciler('nat', 3);
const skip = fx.skip;

const web = (extra: object, backends?: object[]) => ({
  name: 'web', address: fx.lab.vip4, port: 80, forwarding: 'nat',
  backends: backends ?? [{ address: fx.lab.backends[0]!.v4 }, { address: fx.lab.backends[1]!.v4 }], ...extra,
});

test('NAT rr: real HTTP from the client through the VIP alternates between the backends', { skip }, async () => {
  const res = await fx.r.reconcile(services([web({ scheduler: 'rr' })]));
  assert.equal(res.applied, true);
  const answers = await fx.lab.get(`http://${fx.lab.vip4}/`, 8);
  assert.deepEqual(new Set(answers), new Set(['backend1', 'backend2']), `answers: ${answers.join(',')}`);
  for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i], answers[i - 1], `rr alternates: ${answers.join(',')}`);
});

test('NAT wrr follows the weights (3:1)', { skip }, async () => {
  await fx.r.reconcile(services([web({ scheduler: 'wrr' }, [{ address: fx.lab.backends[0]!.v4, weight: 3 }, { address: fx.lab.backends[1]!.v4, weight: 1 }])]));
  const answers = await fx.lab.get(`http://${fx.lab.vip4}/`, 8);
  assert.equal(answers.filter((a) => a === 'backend1').length, 6, answers.join(','));
  assert.equal(answers.filter((a) => a === 'backend2').length, 2, answers.join(','));
});

test('persistence pins a client to one backend even under rr', { skip }, async () => {
  await fx.r.reconcile(services([web({ scheduler: 'rr', persistence: { timeout: 60 } })]));
  const answers = await fx.lab.get(`http://${fx.lab.vip4}/`, 6);
  assert.equal(new Set(answers).size, 1, answers.join(','));
  assert.match(answers[0]!, /^backend[12]$/);
});

for (const scheduler of ['sh', 'mh'] as const) {
  test(`${scheduler} is stable for one client`, { skip }, async () => {
    await fx.r.reconcile(services([web({ scheduler }, fx.lab.backends.map((b) => ({ address: b.v4 })))]));
    const answers = await fx.lab.get(`http://${fx.lab.vip4}/`, 6);
    assert.equal(new Set(answers).size, 1, answers.join(','));
    assert.match(answers[0]!, /^backend[123]$/);
  });
}

test('IPv6 service with IPv6 backends carries traffic (rr over both)', { skip }, async () => {
  await fx.r.reconcile(services([{ name: 'web6', address: fx.lab.vip6, port: 80, scheduler: 'rr', backends: [{ address: fx.lab.backends[0]!.v6 }, { address: fx.lab.backends[1]!.v6 }] }]));
  const answers = await fx.lab.get(`http://[${fx.lab.vip6}]/`, 4);
  assert.deepEqual(new Set(answers), new Set(['backend1', 'backend2']), answers.join(','));
});

test('ipvsadm -Ln reads back what the model says, and `fulcrum ipvs list` prints the same bytes', { skip }, async () => {
  const [b1, b2, b3] = fx.lab.backends;
  await fx.r.reconcile(services([
    { name: 'web', address: fx.lab.vip4, port: 80, scheduler: 'wlc', backends: [{ address: b1!.v4, port: 8080, weight: 3 }, { address: b2!.v4 }] },
    { name: 'pin', address: fx.lab.vip4, port: 443, scheduler: 'sh', schedulerFlags: { fallback: true, port: true }, persistence: { timeout: 60, netmask: '255.255.255.0' }, backends: [{ address: b3!.v4, weight: 0 }] },
    { name: 'dns', address: fx.lab.vip4, port: 53, protocol: 'udp', scheduler: 'mh', schedulerFlags: { port: true }, backends: [{ address: b1!.v4 }] },
    { name: 'web6', address: fx.lab.vip6, port: 80, scheduler: 'rr', persistence: { timeout: 100, netmask: 64 }, backends: [{ address: b1!.v6 }] },
    { name: 'mark', fwmark: 7, scheduler: 'rr', forwarding: 'dr', backends: [{ address: b2!.v4 }] },
    { name: 'mark6', fwmark: 8, family: 'inet6', scheduler: 'rr' },
  ]));
  const kernel = await ipvsadm('-Ln');
  const ours = await fulcrum('ipvs', 'list');
  assert.equal(ours, kernel);
  const N = fx.lab.vip4;
  for (const line of [
    `TCP  ${N}:80 wlc`,
    `  -> ${b1!.v4}:8080`.padEnd(34) + 'Masq    3      ',
    `TCP  ${N}:443 sh (sh-fallback,sh-port) persistent 60 mask 255.255.255.0`,
    `  -> ${b3!.v4}:443`.padEnd(34) + 'Masq    0      ',
    `UDP  ${N}:53 mh (mh-port)`,
    `TCP  [${fx.lab.vip6}]:80 rr persistent 100 mask 64`,
    'FWM  7 rr',
    `  -> ${b2!.v4}:0`.padEnd(34) + 'Route   1      ',
    'FWM  8 IPv6 rr',
  ]) assert.ok(kernel.includes(line), `ipvsadm -Ln shows "${line}":\n${kernel}`);
});

test('a service Fulcrum does not own is left alone; taking its key is a conflict', { skip }, async () => {
  await ipvsadm('-A', '-t', `${fx.lab.vip4}:8000`, '-s', 'rr');
  try {
    await fx.r.reconcile(services([web({ scheduler: 'rr' })]));
    const res = await fx.r.reconcile(services([web({ scheduler: 'rr' })])); // unchanged desired: a full read
    assert.equal(res.fullRead, true);
    assert.deepEqual(res.foreign, [`tcp ${fx.lab.vip4}:8000`]);
    await assert.rejects(fx.r.reconcile(services([web({ scheduler: 'rr' }), { name: 'theirs', address: fx.lab.vip4, port: 8000, backends: [{ address: fx.lab.backends[0]!.v4 }] }])), /CONFLICT|not owned/);
    assert.match(await ipvsadm('-Ln', '-t', `${fx.lab.vip4}:8000`), new RegExp(`TCP  ${fx.lab.vip4.replace(/\./g, '\\.')}:8000 rr\\n(?!  ->)`));
  } finally {
    await ipvsadm('-D', '-t', `${fx.lab.vip4}:8000`);
  }
});
