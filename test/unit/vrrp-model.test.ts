import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDesiredState } from '../../src/model/index.js';
import { FulcrumError } from '../../src/errors.js';

const inst = (over: Record<string, unknown> = {}) => ({ name: 'vi1', interface: 'eth0', vrid: 7, vips: ['10.0.0.100'], ...over });
function errorOf(vrrp: unknown[]): string {
  try { parseDesiredState({ vrrp }); } catch (e) { assert.ok(e instanceof FulcrumError); assert.equal(e.code, 'INVALID_CONFIG'); return e.message; }
  assert.fail('expected INVALID_CONFIG');
}

test('vrrp model: defaults (v3, priority 100, 1 s, preempt, no auth, garp 5 / 5 s)', () => {
  const [i] = parseDesiredState({ vrrp: [inst()] }).vrrp;
  assert.ok(i);
  assert.equal(i.version, 3);
  assert.equal(i.priority, 100);
  assert.equal(i.advertInterval, 1);
  assert.equal(i.preempt, true);
  assert.equal(i.family, 'inet');
  assert.deepEqual(i.auth, { type: 'none' });
  assert.deepEqual(i.garp, { repeat: 5, intervalMs: 0, delay: 5 });
  assert.deepEqual(i.vips, [{ address: '10.0.0.100', prefix: 32, family: 'inet' }]);
});

test('vrrp model: nopreempt, IPv6 canonical VIPs with prefixes, 10 ms v3 interval', () => {
  const [i] = parseDesiredState({ vrrp: [inst({ nopreempt: true, vips: ['2001:DB8:0::100/64', 'fe80::1'], advertInterval: 0.01 })] }).vrrp;
  assert.equal(i!.preempt, false);
  assert.equal(i!.family, 'inet6');
  assert.deepEqual(i!.vips.map((v) => `${v.address}/${v.prefix}`), ['2001:db8::100/64', 'fe80::1/128']);
});

test('vrrp model: errors name the field', () => {
  assert.match(errorOf([inst({ version: 2, vips: ['2001:db8::1'] })]), /vrrp\[0\]\.version: VRRPv2 \(RFC 3768\) carries IPv4 only/);
  assert.match(errorOf([inst({ vips: ['10.0.0.1', '2001:db8::1'] })]), /vrrp\[0\]\.vips\[1\]: 2001:db8::1 is inet6 but vips\[0\] is inet/);
  assert.match(errorOf([inst({ vrid: 0 })]), /vrrp\[0\]\.vrid/);
  assert.match(errorOf([inst({ priority: 256 })]), /vrrp\[0\]\.priority/);
  assert.match(errorOf([inst({ advertInterval: 0.005 })]), /vrrp\[0\]\.advertInterval: VRRPv3 advertises centiseconds/);
  assert.match(errorOf([inst({ version: 2, advertInterval: 0.5 })]), /vrrp\[0\]\.advertInterval: VRRPv2 advertises whole seconds/);
  assert.match(errorOf([inst({ auth: { type: 'pass', password: 'secret' } })]), /vrrp\[0\]\.auth: VRRPv3 has no authentication/);
  assert.match(errorOf([inst({ version: 2, auth: { type: 'pass', password: '123456789' } })]), /vrrp\[0\]\.auth\.password: at most 8 bytes/);
  assert.match(errorOf([inst({ preempt: true, nopreempt: true })]), /vrrp\[0\]\.nopreempt: contradicts preempt: true/);
  assert.match(errorOf([inst({ unicast: { peers: ['2001:db8::2'] } })]), /vrrp\[0\]\.unicast\.peers\[0\]: 2001:db8::2 is not inet/);
  assert.match(errorOf([inst({ vips: ['10.0.0.1/33'] })]), /vrrp\[0\]\.vips\[0\]: 10\.0\.0\.1\/33: the prefix length must be 0-32/);
  assert.match(errorOf([inst({ vips: [] })]), /vrrp\[0\]\.vips: needs at least one virtual IP/);
  assert.match(errorOf([inst({ notify: { exec: [] } })]), /vrrp\[0\]\.notify\.exec: needs at least the program/);
  assert.match(errorOf([inst({ notify: { webhook: 'ftp://x' } })]), /vrrp\[0\]\.notify\.webhook/);
  assert.match(errorOf([inst({ interface: 'a/b' })]), /vrrp\[0\]\.interface/);
  assert.match(errorOf([inst({ bogus: 1 })]), /vrrp\[0\]/);
  assert.match(errorOf([inst(), inst({ vrid: 8 })]), /vrrp\[1\]\.name: duplicate VRRP instance name vi1/);
  assert.match(errorOf([inst(), inst({ name: 'vi2' })]), /vrrp\[1\]\.vrid: VRID 7 \(inet\) on eth0 is already \[0\]/);
});

test('vrrp model: the same VRID may serve IPv4 and IPv6 on one interface (separate routers, RFC 5798 §1)', () => {
  const list = parseDesiredState({ vrrp: [inst(), inst({ name: 'vi6', vips: ['2001:db8::1'] })] }).vrrp;
  assert.equal(list.length, 2);
});
