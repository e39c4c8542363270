import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDesiredState } from '../../src/model/index.js';
import { XdpSettingsSchema } from '../../src/model/xdp.js';
import { applyToObserved, desiredVip, plan, describeStep, tableFingerprint, PlanError, type Observed, type XdpStep } from '../../src/xdp/plan.js';
import { endpointHash, type BackendValue } from '../../src/xdp/abi.js';

const limits = { maxVips: 4, maxBackends: 8, maglevTableSize: 251 };

function services(...svcs: unknown[]) {
  return parseDesiredState({ services: svcs }).services.map((s) => desiredVip(s));
}
const web = (backends: unknown[], extra: Record<string, unknown> = {}) =>
  ({ name: 'web', dataplane: 'xdp', address: '10.0.0.1', port: 80, backends, ...extra });

const empty = (): Observed => ({ vips: [], backends: Array.from({ length: limits.maxBackends }, () => inactive()), filter: new BigUint64Array(1024), endpoints: [], vipIndex: new Map() });
/** Step kinds without the endpoint-filter, reply-entry and vip-index steps (tested on their own below). */
const kinds = (steps: XdpStep[]) => steps.filter((s) => !['set-filter', 'set-endpoint', 'remove-endpoint', 'set-vip-index'].includes(s.kind)).map((s) => s.kind);
type IndexStep = Extract<XdpStep, { kind: 'set-vip-index' }>;
const indexSteps = (steps: XdpStep[]) => steps.filter((s): s is IndexStep => s.kind === 'set-vip-index');
function inactive(gen = 0): BackendValue {
  return { address: '0.0.0.0', family: 'inet', port: 0, mac: undefined, active: false, sharedNat: false, weight: 0, vipId: 0, gen };
}

const apply = applyToObserved;

test('a new VIP: backends first, then one publish into slot 0', () => {
  const steps = plan(services(web([{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080, weight: 2 }])), empty(), limits);
  assert.deepEqual(kinds(steps), ['add-backend', 'add-backend', 'publish']);
  const pub = steps.find((s) => s.kind === 'publish') as Extract<XdpStep, { kind: 'publish' }>;
  assert.equal(pub.meta.slot, 0);
  assert.equal(pub.meta.id, 0);
  assert.deepEqual(pub.members, [{ key: '10.1.0.1:8080', slot: 0, weight: 1 }, { key: '10.1.0.2:8080', slot: 1, weight: 2 }]);
  assert.equal((steps.find((s) => s.kind === 'add-backend') as Extract<XdpStep, { kind: 'add-backend' }>).value.gen, 1);
  assert.match(describeStep(pub), /\+ web \(tcp 10.0.0.1:80\) nat id 0 with 2 backends/);
});

test('the same desired state again plans nothing', () => {
  const d = services(web([{ address: '10.1.0.1', port: 8080 }]));
  const obs = apply(empty(), plan(d, empty(), limits));
  assert.deepEqual(plan(d, obs, limits), []);
});

test('adding a backend writes it, swaps the table to the spare slot, and removes nothing', () => {
  const obs = apply(empty(), plan(services(web([{ address: '10.1.0.1', port: 8080 }])), empty(), limits));
  const steps = plan(services(web([{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.3', port: 8080 }])), obs, limits);
  assert.deepEqual(kinds(steps), ['add-backend', 'publish']);
  const pub = steps.find((s) => s.kind === 'publish') as Extract<XdpStep, { kind: 'publish' }>;
  assert.equal(pub.meta.slot, 1);
  assert.equal(pub.previous?.slot, 0);
});

test('removing a backend: table swap first, then the slot is deactivated; reusing the slot bumps its generation', () => {
  const two = services(web([{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080 }]));
  const obs = apply(empty(), plan(two, empty(), limits));
  const one = services(web([{ address: '10.1.0.1', port: 8080 }]));
  const steps = plan(one, obs, limits);
  assert.deepEqual(kinds(steps), ['publish', 'remove-backend']);
  const obs2 = apply(obs, steps);
  const again = plan(services(web([{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.9', port: 8080 }])), obs2, limits);
  const add = again.find((s) => s.kind === 'add-backend') as Extract<XdpStep, { kind: 'add-backend' }>;
  assert.equal(add.slot, 1);
  assert.equal(add.value.gen, 2, 'a reused slot gets a new generation so old flows do not follow it');
});

test('weight 0 keeps the slot (established flows finish) but takes it out of the table', () => {
  const obs = apply(empty(), plan(services(web([{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080 }])), empty(), limits));
  const steps = plan(services(web([{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080, weight: 0 }])), obs, limits);
  assert.deepEqual(kinds(steps), ['update-backend', 'publish']);
  assert.deepEqual((steps.find((s) => s.kind === 'publish') as Extract<XdpStep, { kind: 'publish' }>).members, [{ key: '10.1.0.1:8080', slot: 0, weight: 1 }]);
});

test('a mode change republishes; a removed VIP is unpublished before its backends go', () => {
  const obs = apply(empty(), plan(services(web([{ address: '10.1.0.1', port: 80 }])), empty(), limits));
  const dr = plan(services(web([{ address: '10.1.0.1' }], { forwarding: 'dr' })), obs, limits);
  assert.deepEqual(kinds(dr), ['publish']);
  assert.match(describeStep(dr.find((s) => s.kind === 'publish')!), /mode nat -> dr/);
  const gone = plan([], obs, limits);
  assert.deepEqual(kinds(gone), ['remove-vip', 'remove-backend']);
  assert.equal(gone.find((s) => s.kind === 'remove-vip')!.service, 'tcp 10.0.0.1:80');
});

test('dr backends keep the VIP port; leftovers of a crash are removed', () => {
  const d = services(web([{ address: '10.1.0.1', mac: '02:00:00:00:00:aa' }], { forwarding: 'dr' }));
  assert.equal(d[0]!.backends[0]!.port, 80);
  const obs = empty();
  obs.backends[5] = { address: '10.9.9.9', family: 'inet', port: 80, mac: undefined, active: true, sharedNat: false, weight: 1, vipId: 3, gen: 4 };
  const steps = plan(d, obs, limits);
  assert.deepEqual(kinds(steps), ['add-backend', 'publish', 'remove-backend']);
  assert.equal((steps.find((s) => s.kind === 'remove-backend') as Extract<XdpStep, { kind: 'remove-backend' }>).slot, 5);
});

test('running out of VIP ids or backend slots is a clear error naming the setting', () => {
  const many = Array.from({ length: 9 }, (_, i) => ({ address: `10.1.0.${i + 1}`, port: 80 }));
  assert.throws(() => plan(services(web(many)), empty(), limits), (e: unknown) => e instanceof PlanError && /xdp.maxBackends is 8/.test((e as Error).message));
  const vips = Array.from({ length: 5 }, (_, i) => ({ name: `s${i}`, dataplane: 'xdp', address: `10.0.0.${i + 1}`, port: 80 }));
  assert.throws(() => plan(services(...vips), empty(), limits), /xdp.maxVips is 4/);
});

test('IPv6 and udp VIPs are keyed apart from tcp', () => {
  const d = services(
    { name: 'v6', dataplane: 'xdp', address: '2001:db8::1', port: 53, protocol: 'udp', backends: [{ address: '2001:db8:1::1' }] },
    { name: 'v6t', dataplane: 'xdp', address: '2001:db8::1', port: 53, protocol: 'tcp', backends: [{ address: '2001:db8:1::1' }] },
  );
  const steps = plan(d, empty(), limits);
  const pubs = steps.filter((s) => s.kind === 'publish') as Array<Extract<XdpStep, { kind: 'publish' }>>;
  assert.deepEqual(pubs.map((p) => [p.key.protocol, p.meta.id]), [['udp', 0], ['tcp', 1]]);
});

test('the table fingerprint changes with slots, weights and table size', () => {
  const m = (slot: number, weight: number, key = '10.0.0.1:80') => [{ key, slot, weight }];
  const a = tableFingerprint(m(0, 1), 251);
  assert.equal(a, tableFingerprint(m(0, 1), 251));
  assert.notEqual(a, tableFingerprint(m(1, 1), 251));
  assert.notEqual(a, tableFingerprint(m(0, 2), 251));
  assert.notEqual(a, tableFingerprint(m(0, 1, '10.0.0.2:80'), 251));
  assert.notEqual(a, tableFingerprint(m(0, 1), 65537));
});

test('xdp settings: defaults, and clear errors naming the field', () => {
  const s = XdpSettingsSchema.parse({ interfaces: [{ name: 'eth0' }] });
  assert.deepEqual(s, { interfaces: [{ name: 'eth0', mode: 'native' }], conntrackSize: 262144, maglevTableSize: 65537, maxVips: 256, maxBackends: 16384, detachOnShutdown: false });
  assert.throws(() => parseDesiredState({ xdp: { maglevTableSize: 65536 } }), /xdp.maglevTableSize: must be a prime number/);
  assert.throws(() => parseDesiredState({ xdp: { interfaces: [{ name: 'eth0' }, { name: 'eth0', mode: 'generic' }] } }), /xdp.interfaces\[1\].name: duplicate interface eth0/);
  assert.throws(() => parseDesiredState({ xdp: { interfaces: [{ name: 'eth0', mode: 'offload' }] } }), /xdp.interfaces\[0\].mode/);
  assert.throws(() => parseDesiredState({ xdp: { maxVips: 4096, maglevTableSize: 1000003 } }), /xdp.maxVips: .* MiB/);
  assert.throws(() => parseDesiredState({ xdp: { bogus: 1 } }), /xdp/);
});

test('endpoint filter: the superset goes first, the exact set last; VIPs and nat backends have bits', () => {
  const d = services(web([{ address: '10.1.0.1', port: 8080 }]));
  const steps = plan(d, empty(), limits);
  assert.equal(steps[0]!.kind, 'set-filter', 'bits are set before anything is published');
  const words = (steps[0] as Extract<XdpStep, { kind: 'set-filter' }>).words;
  const has = (a: string, p: number) => { const h = endpointHash(a, p, 'tcp'); return (words[h >>> 6]! >> BigInt(h & 63)) & 1n; };
  assert.equal(has('10.0.0.1', 80), 1n);
  assert.equal(has('10.1.0.1', 8080), 1n);
  assert.notEqual(steps.at(-1)!.kind, 'set-filter', 'no stale bits to clear on a fresh node');
  const obs = apply(empty(), steps);
  const moved = plan(services(web([{ address: '10.1.0.2', port: 8080 }])), obs, limits);
  assert.equal(moved[0]!.kind, 'set-filter');
  assert.equal(moved.at(-1)!.kind, 'set-filter', 'the old backend bit is cleared after it is removed');
  const last = (moved.at(-1) as Extract<XdpStep, { kind: 'set-filter' }>).words;
  const h = endpointHash('10.1.0.1', 8080, 'tcp');
  assert.equal((last[h >>> 6]! >> BigInt(h & 63)) & 1n, 0n);
  assert.deepEqual(plan(services(web([{ address: '10.1.0.2', port: 8080 }])), apply(obs, moved), limits), []);
});

test('endpoint hash: IPv4 and IPv6 spread over the 65536 bits', () => {
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(endpointHash(`10.0.${i >> 8}.${i & 255}`, 80, 'tcp'));
  assert.ok(seen.size > 980, `${seen.size} distinct of 1000`);
  assert.notEqual(endpointHash('2001:db8::1', 80, 'tcp'), endpointHash('2001:db8::1', 80, 'udp'));
  assert.ok(endpointHash('2001:db8::1', 443, 'tcp') < 65536);
});

test('nat reply entries: one per backend endpoint, written before publish, removed after the slot goes', () => {
  const steps = plan(services(web([{ address: '10.1.0.1', port: 8080 }])), empty(), limits);
  const all = steps.map((s) => s.kind);
  assert.ok(all.indexOf('set-endpoint') > all.indexOf('add-backend') && all.indexOf('set-endpoint') < all.indexOf('publish'));
  const ep = steps.find((s) => s.kind === 'set-endpoint') as Extract<XdpStep, { kind: 'set-endpoint' }>;
  assert.deepEqual(ep.key, { address: '10.1.0.1', family: 'inet', port: 8080, protocol: 'tcp' });
  assert.deepEqual(ep.value, { vip: '10.0.0.1', vport: 80, vipId: 0, slot: 0, shared: false });
  const obs = apply(empty(), steps);
  const gone = plan([], obs, limits).map((s) => s.kind);
  assert.ok(gone.indexOf('remove-endpoint') > gone.indexOf('remove-backend'));
  // dr has no reply entries.
  assert.equal(plan(services(web([{ address: '10.1.0.1' }], { forwarding: 'dr' })), empty(), limits).some((s) => s.kind === 'set-endpoint'), false);
});

test('an endpoint used by two nat VIPs is shared (per-flow entries) and keeps the VIP it named', () => {
  const a = web([{ address: '10.1.0.1', port: 8080 }]);
  const b = { ...web([{ address: '10.1.0.1', port: 8080 }]), name: 'web2', address: '10.0.0.2' };
  const obs = apply(empty(), plan(services(a), empty(), limits));
  const steps = plan(services(b, a), obs, limits);
  const ep = steps.find((s) => s.kind === 'set-endpoint') as Extract<XdpStep, { kind: 'set-endpoint' }>;
  assert.equal(ep.value.shared, true);
  assert.equal(ep.value.vip, '10.0.0.1', "the old VIP's flows keep working through it without per-flow entries");
  const flagged = steps.filter((s) => (s.kind === 'add-backend' || s.kind === 'update-backend') && s.value.sharedNat);
  assert.equal(flagged.length, 2, 'both slots insert per-flow reply entries from now on');
  const both = apply(obs, steps);
  // Back to one VIP: the endpoint is unique again and names the VIP that is left.
  const back = plan(services(b), both, limits);
  const ep2 = back.find((s) => s.kind === 'set-endpoint') as Extract<XdpStep, { kind: 'set-endpoint' }>;
  assert.deepEqual([ep2.value.vip, ep2.value.shared], ['10.0.0.2', false]);
  assert.deepEqual(plan(services(b), apply(both, back), limits), []);
});

test('vip_index: a copy of each VIP after its publish; swaps rewrite it in place; other changes clear it first', () => {
  const h = endpointHash('10.0.0.1', 80, 'tcp');
  const first = plan(services(web([{ address: '10.1.0.1', port: 8080 }])), empty(), limits);
  const all = first.map((s) => s.kind);
  assert.ok(all.indexOf('set-vip-index') > all.indexOf('publish'), 'written after the publish');
  assert.deepEqual(indexSteps(first).map((s) => [s.index, s.value?.meta.slot, s.previous]), [[h, 0, undefined]]);
  const obs = apply(empty(), first);
  assert.equal(obs.vipIndex.get(h)?.meta.id, 0);
  assert.equal(plan(services(web([{ address: '10.1.0.1', port: 8080 }])), obs, limits).length, 0, 'nothing to do when nothing changed');

  // A backend change: one rewrite to the new live slot, after the publish that swapped it.
  const swap = plan(services(web([{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080 }])), obs, limits);
  const sk = swap.map((s) => s.kind);
  assert.deepEqual(indexSteps(swap).map((s) => [s.value?.meta.slot, s.previous?.meta.slot]), [[1, 0]]);
  assert.ok(sk.indexOf('set-vip-index') > sk.indexOf('publish'));

  // A mode change: cleared before anything else, written again after the publish.
  const dr = plan(services(web([{ address: '10.1.0.1' }], { forwarding: 'dr' })), obs, limits);
  const di = indexSteps(dr);
  assert.deepEqual(di.map((s) => s.value?.meta.mode), [undefined, 'dr']);
  assert.equal(dr[0]!.kind, 'set-vip-index');
  assert.ok(dr.indexOf(di[1]!) > dr.findIndex((s) => s.kind === 'publish'));

  // Removal: cleared before the VIP is unpublished.
  const gone = plan([], obs, limits);
  assert.equal(gone[0]!.kind, 'set-vip-index');
  assert.equal((gone[0] as IndexStep).value, undefined);
  assert.equal(apply(obs, gone).vipIndex.size, 0);
});

test('vip_index: two VIPs with the same index get no copy (both use the vips map)', () => {
  // Find a second VIP address whose endpoint hash collides with 10.0.0.1:80/tcp.
  const h = endpointHash('10.0.0.1', 80, 'tcp');
  let other = '';
  for (let i = 0; i < 1 << 22 && !other; i++) {
    const a = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    if (a !== '10.0.0.1' && endpointHash(a, 80, 'tcp') === h) other = a;
  }
  assert.ok(other, 'a colliding address exists');
  const two = services(web([{ address: '10.1.0.1', port: 8080 }]), { ...web([{ address: '10.1.0.2', port: 8080 }]), name: 'web2', address: other });
  const steps = plan(two, empty(), limits);
  assert.equal(indexSteps(steps).length, 0);
  // One of them goes: the other gets the copy.
  const obs = apply(empty(), steps);
  const one = plan(services(web([{ address: '10.1.0.1', port: 8080 }])), obs, limits);
  assert.deepEqual(indexSteps(one).map((s) => s.value?.key.address), ['10.0.0.1']);
});
