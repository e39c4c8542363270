import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigFile } from '../../src/model/index.js';
import { FulcrumError } from '../../src/errors.js';

const base = { asn: 65001, routerId: '10.71.1.2', neighbours: [{ address: '10.71.1.1', asn: 65000 }] };

function refused(input: unknown): string {
  try {
    parseConfigFile(input);
  } catch (e) {
    assert.ok(e instanceof FulcrumError);
    return e.message;
  }
  assert.fail('accepted');
}

test('agent.bgp: defaults filled in, neighbour names derived from the address', () => {
  const c = parseConfigFile({ agent: { bgp: base } });
  const bgp = c.agent!.bgp!;
  assert.deepEqual(bgp.bfd, { enabled: true, minRxMs: 100, minTxMs: 100, multiplier: 3 });
  assert.equal(bgp.neighbours[0]!.name, 'n_10_71_1_1');
  assert.equal(bgp.neighbours[0]!.port, 179);
  assert.equal(bgp.keepOnRestart, false);
  assert.equal(bgp.announce, 'all');
  assert.equal(bgp.controlSocket, '/run/bird/bird.ctl');
});

test('agent.bgp: errors name the field', () => {
  assert.match(refused({ agent: { bgp: { ...base, asn: 0 } } }), /agent\.bgp\.asn: /);
  assert.match(refused({ agent: { bgp: { ...base, asn: 65535 } } }), /agent\.bgp\.asn: is a reserved AS number/);
  assert.match(refused({ agent: { bgp: { ...base, routerId: '2001:db8::1' } } }), /agent\.bgp\.routerId: must be an IPv4 address/);
  assert.match(refused({ agent: { bgp: { ...base, neighbours: [] } } }), /agent\.bgp\.neighbours: needs at least one neighbour/);
  assert.match(refused({ agent: { bgp: { ...base, neighbours: [{ address: 'router', asn: 65000 }] } } }), /agent\.bgp\.neighbours\[0\]\.address: must be an IPv4 or IPv6 address/);
  assert.match(refused({ agent: { bgp: { ...base, neighbours: [base.neighbours[0], base.neighbours[0]] } } }), /agent\.bgp\.neighbours\[1\]\.name: duplicate neighbour name/);
  assert.match(refused({ agent: { bgp: { ...base, neighbours: [{ name: 'a-b', address: '10.0.0.1', asn: 1 }] } } }), /agent\.bgp\.neighbours\[0\]\.name: must be a letter/);
  assert.match(refused({ agent: { bgp: { ...base, neighbours: [{ address: '10.0.0.1', asn: 1, sourceAddress: '2001:db8::2' }] } } }), /neighbours\[0\]\.sourceAddress: 2001:db8::2 is not of the family/);
  assert.match(refused({ agent: { bgp: { ...base, bfd: { minRxMs: 1 } } } }), /agent\.bgp\.bfd\.minRxMs: /);
  assert.match(refused({ agent: { bgp: { ...base, communities: ['65536:1'] } } }), /agent\.bgp\.communities\[0\]: must be a community/);
  assert.match(refused({ agent: { bgp: { ...base, speaker: 'gobgp' } } }), /agent\.bgp: .*speaker/);
});

test('services[].bgp: announce and communities, checked per service', () => {
  const svc = { name: 'web', dataplane: 'xdp', address: '10.80.0.1', port: 80, backends: [{ address: '10.1.0.1', port: 80 }] };
  const c = parseConfigFile({ services: [{ ...svc, bgp: { announce: false, communities: ['65000:7', '1:2:3'] } }] });
  assert.deepEqual(c.services[0]!.bgp, { announce: false, communities: ['65000:7', '1:2:3'] });
  assert.match(refused({ services: [{ ...svc, bgp: { communities: ['x'] } }] }), /services\[0\]\.bgp\.communities\[0\]: must be a community/);
  assert.match(refused({ services: [{ ...svc, bgp: { announce: 'yes' } }] }), /services\[0\]\.bgp\.announce: /);
});
