import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDesiredState, serviceKey } from '../../src/model/index.js';
import { FulcrumError } from '../../src/errors.js';

function rejects(input: unknown, pathAndText: RegExp): void {
  assert.throws(() => parseDesiredState(input), (e: unknown) => {
    assert.ok(e instanceof FulcrumError, 'a FulcrumError');
    assert.equal(e.code, 'INVALID_CONFIG');
    assert.match(e.message, pathAndText);
    return true;
  });
}

const web = { name: 'web', address: '10.0.0.1', port: 80, backends: [{ address: '10.0.1.1' }, { address: '10.0.1.2', port: 8080, weight: 3 }] };

test('a valid service gets defaults: ipvs, tcp, wlc, nat, backend port = service port', () => {
  const s = parseDesiredState({ services: [web] });
  const svc = s.services[0]!;
  assert.equal(svc.dataplane, 'ipvs');
  assert.equal(svc.protocol, 'tcp');
  assert.equal(svc.scheduler, 'wlc');
  assert.equal(svc.forwarding, 'nat');
  assert.equal(svc.family, 'inet');
  assert.deepEqual(svc.backends.map((b) => [b.port, b.weight]), [[80, 1], [8080, 3]]);
  assert.ok(Object.isFrozen(svc.backends[0]), 'parsed specs are immutable');
});

test('xdp services default to maglev; IPv6 addresses are canonicalised', () => {
  const s = parseDesiredState({ services: [{ name: 'v6', dataplane: 'xdp', address: '2001:DB8:0:0::1', port: 443, backends: [{ address: '2001:db8::0:2' }] }] });
  assert.equal(s.services[0]!.scheduler, 'maglev');
  assert.equal(s.services[0]!.address, '2001:db8::1');
  assert.equal(s.services[0]!.backends[0]!.address, '2001:db8::2');
  assert.equal(serviceKey(s.services[0]!), 'tcp [2001:db8::1]:443');
});

test('bad input names the field', () => {
  rejects({ services: [{ ...web, port: 70000 }] }, /services\[0\]\.port: .*65535/);
  rejects({ services: [{ ...web, scheduler: 'fastest' }] }, /services\[0\]\.scheduler/);
  rejects({ services: [{ ...web, backends: [{ address: '2001:db8::1' }] }] }, /services\[0\]\.backends\[0\]\.address: 2001:db8::1 is inet6 but the service is inet/);
  rejects({ services: [{ ...web, backends: [{ address: '10.0.1.1' }, { address: '10.0.1.1', port: 80 }] }] }, /services\[0\]\.backends\[1\]: duplicate backend 10\.0\.1\.1:80/);
  rejects({ services: [{ ...web, forwarding: 'dr', backends: [{ address: '10.0.1.1', port: 8080 }] }] }, /services\[0\]\.backends\[0\]\.port: dr forwarding cannot change the port/);
  rejects({ services: [{ ...web, address: '10.0.0.300' }] }, /services\[0\]\.address: must be an IPv4 or IPv6 address/);
  rejects({ services: [web, { ...web, name: 'web2' }] }, /services\[1\]: tcp 10\.0\.0\.1:80 is already services\[0\]/);
  rejects({ services: [web, { ...web, port: 81 }] }, /services\[1\]\.name: duplicate service name web/);
  rejects({ services: [{ ...web, fwmark: 3 }] }, /services\[0\]\.fwmark: a service has either/);
  rejects({ services: [{ ...web, bogus: 1 }] }, /services\[0\]: .*bogus/);
  rejects({ services: [{ ...web, dataplane: 'xdp', protocol: 'sctp' }] }, /services\[0\]\.protocol: the xdp dataplane/);
  rejects({ services: [{ ...web, persistence: { timeout: 60, netmask: '255.0.255.0' } }] }, /persistence\.netmask: .*not a contiguous/);
  rejects({ services: [{ ...web, forwarding: 'tunnel', tunnel: { type: 'gue' } }] }, /tunnel\.port: required for gue/);
});

test('fwmark services take their family explicitly', () => {
  const s = parseDesiredState({ services: [{ name: 'fw', fwmark: 7, family: 'inet6', backends: [{ address: 'fd00::1' }] }] });
  assert.equal(serviceKey(s.services[0]!), 'fwmark 7 inet6');
  rejects({ services: [{ name: 'fw', fwmark: 7, backends: [{ address: 'fd00::1' }] }] }, /backends\[0\]\.address: fd00::1 is inet6 but the service is inet/);
});
