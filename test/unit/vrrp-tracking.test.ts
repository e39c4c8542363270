import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VrrpInstancesSchema, type VrrpInstanceInput } from '../../src/model/vrrp.js';
import type { LinkInfo } from '../../src/vrrp/kernel.js';
import { followerMove, groupFaults } from '../../src/vrrp/sync-groups.js';
import { faultReason, trackedPriority, type TrackedStates } from '../../src/vrrp/tracking.js';

const instance = (over: Partial<VrrpInstanceInput>) => VrrpInstancesSchema.parse([{ name: 'vi1', interface: 'eth0', vrid: 7, priority: 100, vips: ['10.0.0.100'], ...over }])[0]!;
const link = (name: string, up: boolean): [string, LinkInfo] => [name, { index: 2, name, mac: '02:00:00:00:00:01', up }];

function states(links: [string, LinkInfo][], services: [string, boolean][] = [], failing: string[] = []): TrackedStates {
  return { links: new Map(links), serviceHealth: new Map(services), scriptFails: (n) => failing.includes(n) };
}

test('tracking: a positive weight adds while OK, a negative one while failing (keepalived)', () => {
  const cfg = instance({
    track: {
      interfaces: [{ interface: 'eth1', weight: 10 }],
      services: [{ service: 'web', weight: -30 }],
      scripts: [{ name: 'chk', argv: ['true'], weight: -20 }],
    },
  });
  assert.equal(trackedPriority(cfg, states([link('eth0', true), link('eth1', true)])), 110);
  assert.equal(trackedPriority(cfg, states([link('eth0', true), link('eth1', false)])), 100);
  assert.equal(trackedPriority(cfg, states([link('eth0', true)], [['web', false]], ['chk'])), 50, 'a missing link counts as down');
  assert.equal(faultReason(cfg, states([link('eth0', true)], [['web', false]], ['chk'])), undefined, 'weighted trackers never force fault');
});

test('tracking: without a weight a failing tracker forces fault; an unreported service is healthy', () => {
  const cfg = instance({ track: { interfaces: [{ interface: 'eth1' }], services: [{ service: 'web' }], scripts: [{ name: 'chk', argv: ['true'] }] } });
  assert.equal(faultReason(cfg, states([link('eth0', true), link('eth1', true)])), undefined);
  assert.equal(faultReason(cfg, states([link('eth1', true)])), 'interface eth0 not found');
  assert.equal(faultReason(cfg, states([link('eth0', false), link('eth1', true)])), 'interface eth0 is down');
  assert.equal(faultReason(cfg, states([link('eth0', true), link('eth1', false)])), 'tracked interface eth1 is down');
  assert.equal(faultReason(cfg, states([link('eth0', true), link('eth1', true)], [['web', false]])), 'tracked service web is below quorum');
  assert.equal(faultReason(cfg, states([link('eth0', true), link('eth1', true)], [], ['chk'])), 'track script chk fails');
  assert.equal(trackedPriority(cfg, states([])), 100, 'unweighted trackers leave the priority');
});

test('sync groups: members follow into master, into backup only from master; one fault takes the others', () => {
  assert.deepEqual(followerMove('g', 'a', { from: 'backup', to: 'master', reason: 'x' }), { to: 'master', reason: 'sync group g: a became master' });
  assert.deepEqual(followerMove('g', 'a', { from: 'master', to: 'backup', reason: 'x' }), { to: 'backup', reason: 'sync group g: a became backup' });
  assert.equal(followerMove('g', 'a', { from: 'init', to: 'backup', reason: 'x' }), undefined);
  assert.equal(followerMove('g', 'a', { from: 'master', to: 'fault', reason: 'x' }), undefined);
  assert.deepEqual(groupFaults('g', [{ name: 'a', ownFault: undefined }, { name: 'b', ownFault: 'interface eth1 is down' }]), ['sync group g: b in fault (interface eth1 is down)', undefined]);
  assert.deepEqual(groupFaults('g', [{ name: 'a', ownFault: undefined }, { name: 'b', ownFault: undefined }]), [undefined, undefined]);
});
