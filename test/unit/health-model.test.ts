import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDesiredState, parseService } from '../../src/model/index.js';
import { FulcrumError } from '../../src/errors.js';

const base = { name: 'web', address: '10.0.0.1', port: 80, backends: [{ address: '10.0.1.1' }] };

function rejects(health: unknown, re: RegExp, extra: Record<string, unknown> = {}): void {
  assert.throws(() => parseDesiredState({ services: [{ ...base, ...extra, health }] }), (e: unknown) => {
    assert.ok(e instanceof FulcrumError);
    assert.equal(e.code, 'INVALID_CONFIG');
    assert.match(e.message, re);
    return true;
  });
}

test('health defaults: down until checked, inhibit on failure, rise 2 fall 3, jitter 10% of interval', () => {
  const svc = parseService({ ...base, health: { check: { kind: 'http' }, interval: 2 } });
  const h = svc.health!;
  assert.equal(h.initialState, 'down');
  assert.equal(h.inhibitOnFailure, true);
  assert.deepEqual([h.rise, h.fall, h.timeout, h.interval, h.jitter], [2, 3, 2, 2, 0.2]);
  assert.ok(h.check.kind === 'http');
  assert.deepEqual([h.check.method, h.check.path, h.check.status], ['GET', '/', [200]]);
});

test('every check kind parses with its options', () => {
  const kinds = [
    { kind: 'tcp' },
    { kind: 'http', method: 'HEAD', path: '/healthz', host: 'www.example', status: [200, '300-399'], bodyRegex: 'ok' },
    { kind: 'https', tls: { sni: 'www.example', verify: true, ca: '/etc/ssl/ca.pem' }, bodyDigest: { algorithm: 'md5', hex: 'D41D8CD98F00B204E9800998ECF8427E' } },
    { kind: 'udp', payloadHex: '00ff', expect: '^pong' },
    { kind: 'dns', name: 'health.example.com', type: 'AAAA', expect: ['2001:DB8::1'] },
    { kind: 'exec', program: '/usr/local/bin/check', args: ['{address}', '{port}'] },
  ];
  for (const check of kinds) {
    const svc = parseService({ ...base, health: { check } });
    assert.equal(svc.health!.check.kind, check.kind);
  }
  const https = parseService({ ...base, health: { check: kinds[2] } }).health!.check;
  assert.ok(https.kind === 'https' && https.bodyDigest?.hex === 'd41d8cd98f00b204e9800998ecf8427e');
});

test('bad health input names the field', () => {
  rejects({ check: { kind: 'smtp' } }, /services\[0\]\.health\.check\.kind/);
  rejects({ check: { kind: 'tcp' }, timeout: 5, interval: 1 }, /services\[0\]\.health\.timeout: must not exceed interval/);
  rejects({ check: { kind: 'tcp' }, rise: 0 }, /services\[0\]\.health\.rise/);
  rejects({ check: { kind: 'tcp' }, jitter: 3, interval: 5 }, /services\[0\]\.health\.jitter: must be below half/);
  rejects({ check: { kind: 'http', path: 'healthz' } }, /health\.check\.path: must start with "\/"/);
  rejects({ check: { kind: 'http', status: [99] } }, /health\.check\.status\[0\]/);
  rejects({ check: { kind: 'http', bodyRegex: '(' } }, /health\.check\.bodyRegex: is not a valid regular expression/);
  rejects({ check: { kind: 'http', bodyDigest: { hex: 'abcd' } } }, /health\.check\.bodyDigest\.hex: a sha256 digest has 64 hex digits/);
  rejects({ check: { kind: 'https', tls: { ca: '/ca.pem' } } }, /health\.check\.tls\.verify: must be true when a ca is given/);
  rejects({ check: { kind: 'https', tls: { ca: 'ca.pem', verify: true } } }, /health\.check\.tls\.ca: must be an absolute path/);
  rejects({ check: { kind: 'exec', program: 'check.sh' } }, /health\.check\.program: must be an absolute path/);
  rejects({ check: { kind: 'exec', program: '/bin/true', shell: 'x' } }, /health\.check: .*shell/);
  rejects({ check: { kind: 'udp', payload: 'a', payloadHex: '00' } }, /health\.check\.payloadHex: give payload or payloadHex/);
  rejects({ check: { kind: 'dns', name: 'bad name' } }, /health\.check\.name: must be a domain name/);
  rejects({ check: { kind: 'tcp' }, quorum: { min: 2, hysteresis: 2 } }, /health\.quorum\.hysteresis: hysteresis must be below min/);
  rejects({ check: { kind: 'tcp' }, sorryServer: { address: '2001:db8::9' } }, /health\.sorryServer\.address: 2001:db8::9 is inet6 but the service is inet/);
  rejects({ check: { kind: 'tcp' }, sorryServer: { address: '10.9.9.9', port: 8080 } }, /health\.sorryServer\.port: dr forwarding cannot change the port/, { forwarding: 'dr' });
  rejects({ check: { kind: 'tcp' }, address: 'fd00::1' }, /health\.address: fd00::1 is inet6/);
  rejects({ check: { kind: 'tcp' }, initialState: 'maybe' }, /health\.initialState/);
  // A fwmark service's backends have no port of their own: a tcp check then needs health.port.
  assert.throws(
    () => parseDesiredState({ services: [{ name: 'fw', fwmark: 3, backends: [{ address: '10.0.1.1' }], health: { check: { kind: 'tcp' } } }] }),
    /services\[0\]\.backends\[0\]\.port: has no port to check: set it or health\.port/,
  );
  assert.doesNotThrow(() => parseDesiredState({ services: [{ name: 'fw', fwmark: 3, backends: [{ address: '10.0.1.1' }], health: { check: { kind: 'tcp' }, port: 22 } }] }));
});
