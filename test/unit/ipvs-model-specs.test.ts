import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDesiredState } from '../../src/model/index.js';
import { desiredOf, keyString } from '../../src/ipvs/model-specs.js';

const one = (svc: object) => desiredOf(parseDesiredState({ services: [svc] }).services[0]!);

test('scheduler flags, persistence and forwarding map to IPVS flags and forward methods', () => {
  const sh = one({ name: 'a', address: '10.0.0.1', port: 80, scheduler: 'sh', schedulerFlags: { fallback: true, port: true }, persistence: { timeout: 60, netmask: '255.255.255.0' }, forwarding: 'dr', backends: [{ address: '10.0.1.1' }] });
  assert.deepEqual(sh.spec, { key: { family: 'inet', protocol: 'tcp', address: '10.0.0.1', port: 80 }, scheduler: 'sh', flags: 0x1 | 0x8 | 0x10, timeout: 60, netmask: 0xffffff00 });
  assert.equal(sh.dests[0]!.forward, 'route');
  const mh = one({ name: 'b', address: '10.0.0.1', port: 80, scheduler: 'mh', schedulerFlags: { port: true }, persistence: { netmask: 16 } });
  assert.equal(mh.spec.flags, 0x1 | 0x10);
  assert.equal(mh.spec.timeout, 300);
  assert.equal(mh.spec.netmask, 0xffff0000);
  const plain = one({ name: 'c', address: '2001:db8::1', port: 80, backends: [{ address: '2001:db8:1::2', port: 8080, weight: 3 }] });
  assert.deepEqual([plain.spec.flags, plain.spec.timeout, plain.spec.netmask, plain.spec.scheduler], [0, 0, 128, 'wlc']);
  assert.deepEqual(plain.dests[0], { address: '2001:db8:1::2', port: 8080, family: 'inet6', forward: 'masq', weight: 3, upperThreshold: 0, lowerThreshold: 0 });
  const v6p = one({ name: 'd', address: '2001:db8::1', port: 80, persistence: { netmask: 64 } });
  assert.equal(v6p.spec.netmask, 64);
});

test('tunnel forwarding carries type, port and checksum flags; fwmark services key by mark and family', () => {
  const gue = one({ name: 't', fwmark: 7, family: 'inet', forwarding: 'tunnel', tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' }, backends: [{ address: '10.0.1.1' }] });
  assert.equal(keyString(gue.spec.key), 'fwmark 7 inet');
  assert.deepEqual(gue.dests[0], { address: '10.0.1.1', port: 0, family: 'inet', forward: 'tunnel', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 2 });
  const ipip = one({ name: 'u', address: '10.0.0.1', port: 80, forwarding: 'tunnel', backends: [{ address: '10.0.1.1' }] });
  assert.deepEqual([ipip.dests[0]!.tunnelType, ipip.dests[0]!.tunnelPort, ipip.dests[0]!.tunnelFlags], ['ipip', 0, 0]);
});
